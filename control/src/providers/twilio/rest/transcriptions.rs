//! The Transcriptions resource: the text of the account's recordings (`<Record transcribe>`),
//! listed for the account or for one recording, fetched as JSON (or `.txt`, the bare text),
//! deleted.

use super::json::Json;
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::infra::store::TranscriptionRow;
use crate::markup::rfc2822;
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
    list: Listing,
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

/// A call's real-time transcription (`GT…`) in the REST shape.
fn live(account: &str, call: &str, sid: &str, name: Option<&str>, status: &str) -> Json {
    Json(json!({
        "sid": sid,
        "account_sid": account,
        "call_sid": call,
        "name": name,
        "status": status,
        "date_updated": rfc2822(crate::infra::clock::now_ms()),
        "uri": format!("/2010-04-01/Accounts/{account}/Calls/{call}/Transcriptions/{sid}.json"),
    }))
}

/// `POST /Calls/{CA}/Transcriptions.json`: starts a real-time transcription (`Name`,
/// `Track`, `StatusCallbackUrl(Method)`, `PartialResults`, `LanguageCode`,
/// `TranscriptionEngine`, `Hints`), as `<Start><Transcription>` does.
pub(super) async fn create_live(
    State(api): State<TwilioApi>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    use super::json::{form, method, param, url};
    use crate::markup::voice::live_transcription::{LiveTranscription, split_hints};
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    // What `<Start><Transcription>` warns about, refused here (the REST answer is the
    // provider's error).
    super::json::refuse_unserved(
        &p,
        &[
            "ProfanityFilter",
            "SpeechModel",
            "EnableAutomaticPunctuation",
            "InboundTrackLabel",
            "OutboundTrackLabel",
            "IntelligenceService",
            "ConversationConfiguration",
            "ConversationId",
            "EnableProviderData",
            "TranscriptionConfigurationId",
        ],
    )?;
    let track = super::json::track(&p)?;
    let callback = url(&p, "StatusCallbackUrl")?;
    let t = LiveTranscription {
        name: param(&p, "Name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        callback: match callback {
            Some(u) => Some((u, method(&p, "StatusCallbackMethod")?)),
            None => None,
        },
        track,
        partial_results: param(&p, "PartialResults") == Some("true"),
        language_code: param(&p, "LanguageCode").unwrap_or("en-US").to_owned(),
        engine: param(&p, "TranscriptionEngine")
            .unwrap_or("google")
            .to_owned(),
        hints: split_hints(param(&p, "Hints").unwrap_or_default()),
    };
    super::live_call(&api, &account.sid, &call, "Cannot start a transcription.").await?;
    let name = t.name.clone();
    let dialect = Default::default();
    let sid = (api
        .apps
        .start_transcription(&account, &call, &dialect, t)
        .await)
        .map_err(|e| ApiError::bad_request(20001, e.to_string()))?;
    Ok(live(
        account.api_sid(),
        &call,
        &sid,
        name.as_deref(),
        "in-progress",
    ))
}

/// `POST /Calls/{CA}/Transcriptions/{GT or name}.json` with `Status=stopped`.
pub(super) async fn update_live(
    State(api): State<TwilioApi>,
    Path((account, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    use super::json::{form, param};
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    if param(&p, "Status") != Some("stopped") {
        return Err(ApiError::bad_request(
            20001,
            format!(
                "Invalid Status: {}; a transcription can only be stopped",
                param(&p, "Status").unwrap_or("")
            ),
        ));
    }
    let named = file.strip_suffix(".json").unwrap_or(&file);
    let missing = || {
        ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{}/Calls/{call}/Transcriptions/{named}.json",
            account.api_sid()
        ))
    };
    // Only the account's own call: another account's call is not found, not stopped.
    api.writer.sync().await;
    let owned = (api.store.get_call(&call).await)
        .map_err(ApiError::internal)?
        .is_some_and(|c| c.account_sid.as_deref() == Some(account.sid.as_str()));
    if !owned {
        return Err(missing());
    }
    let stopped = api.apps.stop_transcriptions(&call, Some(named)).await;
    let (sid, name) = stopped.into_iter().next().ok_or_else(missing)?;
    Ok(live(
        account.api_sid(),
        &call,
        &sid,
        name.as_deref(),
        "stopped",
    ))
}
