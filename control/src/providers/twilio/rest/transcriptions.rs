//! The Transcriptions resource: the text of the account's recordings (`<Record transcribe>`),
//! listed for the account or for one recording, fetched as JSON (or `.txt`, the bare text),
//! deleted.

use super::json::Json;
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::providers::twilio::rfc2822;
use crate::store::TranscriptionRow;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn resource(t: &TranscriptionRow, account: &str) -> Value {
    json!({
        "account_sid": account,
        "api_version": "2010-04-01",
        "date_created": rfc2822(t.created_at),
        "date_updated": rfc2822(t.updated_at),
        "duration": (t.duration_ms / 1000).to_string(),
        "price": null,
        "price_unit": "USD",
        "recording_sid": t.recording_sid,
        "sid": t.sid,
        "status": t.status,
        "transcription_text": t.text,
        "type": "fast",
        "uri": format!("/2010-04-01/Accounts/{account}/Transcriptions/{}.json", t.sid),
    })
}

async fn list_of(
    api: &TwilioApi,
    list: Listing<'_>,
    recording: Option<&str>,
    path: &str,
) -> Result<Json, ApiError> {
    let rows = api
        .store
        .transcriptions(&list.account.sid, recording)
        .await
        .map_err(ApiError::internal)?;
    let rows = list.page_of(rows);
    let api_sid = list.account.api_sid();
    Ok(list.respond(
        "transcriptions",
        path,
        rows,
        |t| t.sid.clone(),
        |t| resource(t, api_sid),
    ))
}

pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    list_of(&api, list, None, "Transcriptions.json").await
}

pub(super) async fn list_of_recording(
    State(api): State<TwilioApi>,
    Path((account, recording)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let path = format!("Recordings/{recording}/Transcriptions.json");
    list_of(&api, list, Some(&recording), &path).await
}

pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let (sid, text) = match file.strip_suffix(".txt") {
        Some(sid) => (sid, true),
        None => (file.strip_suffix(".json").unwrap_or(&file), false),
    };
    let found = (api.store.transcription(&account.sid, sid).await).map_err(ApiError::internal)?;
    let Some(t) = found else {
        return Err(ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{}/Transcriptions/{sid}.json",
            account.api_sid()
        )));
    };
    Ok(if text {
        (
            [("content-type", "text/plain; charset=utf-8")],
            t.text.unwrap_or_default(),
        )
            .into_response()
    } else {
        Json(resource(&t, account.api_sid())).into_response()
    })
}

pub(super) async fn delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    let deleted =
        (api.store.delete_transcription(&account.sid, sid).await).map_err(ApiError::internal)?;
    if !deleted {
        return Err(ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{}/Transcriptions/{sid}.json",
            account.api_sid()
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
