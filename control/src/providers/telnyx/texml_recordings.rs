//! TeXML's REST recordings (reference §4): `…/Calls/{call_sid}/Recordings.json` starts one
//! (`RecordingChannels`, `RecordingTrack`, `RecordingStatusCallback` with its
//! event and method — reported as the TeXML session's recordings are, Ed25519-signed) and
//! lists the call's; `…/Calls/{call_sid}/Recordings/{sid}.json` pauses, resumes or stops one;
//! `…/Recordings.json` lists the account's and `…/Recordings/{sid}.json` reads or deletes one;
//! `…/Transcriptions.json` and `…/Transcriptions/{sid}.json` their transcriptions. The same recordings the
//! core makes for every dialect; Twilio's shape with Telnyx's ids and ISO 8601 dates, as the
//! Telnyx SDK's models read them.

use super::Telnyx;
use super::errors::ApiError;
use super::texml_calls::{Fields, stored_call};
use super::texml_rest::{self, account_id, texml_account};
use crate::call::ids::{CallId, sid_as_uuid, uuid_as_sid};
use crate::call::{CallCommand, RecordOptions, RecordingOrigin};
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::store::{CallStatus, RecordingRow, TranscriptionRow};
use crate::markup::voice::{Dialect, RecordingCallback, recording_source};
use crate::providers::twilio::rest::json as rest_json;
use crate::services::recordings::RecordingError;
use crate::services::stream::iso8601;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard_media::record::{Channels, RecordFormat};

/// A recording as TeXML's REST API shows it.
fn resource(api: &Telnyx, account: &Account, r: &RecordingRow) -> Value {
    let account_id = account_id(account);
    let conference = r.call_id.starts_with("CF");
    let call = (!conference)
        .then(|| CallId::from_sid(&r.call_id).map(CallId::control_id))
        .flatten();
    let source = RecordingOrigin::from_name(&r.origin).map(recording_source);
    // Named by its UUID, as TeXML's recording callbacks name it.
    let id = sid_as_uuid(&r.id, "RE").unwrap_or_else(|| r.id.clone());
    let status = match r.status.as_str() {
        "failed" => "completed",
        other => other,
    };
    json!({
        "account_sid": account_id,
        "call_sid": call,
        "conference_sid": conference.then_some(&r.call_id),
        "channels": r.channels.clamp(1, 2),
        "date_created": iso8601(r.started_at),
        "date_updated": iso8601(r.ended_at.unwrap_or(r.started_at)),
        "start_time": iso8601(r.started_at),
        "duration": r.ended_at.map(|_| (r.duration_ms / 1000).to_string()),
        "error_code": r.error.as_ref().map(|_| "failed"),
        "price": null,
        "price_unit": "USD",
        "media_url": format!("{}/v2/recording_files/{id}.wav", api.parts.public_url),
        "sid": id,
        "source": source,
        "status": status,
        "track": "both",
        "uri": format!("/v2/texml/Accounts/{account_id}/Recordings/{id}.json"),
    })
}

/// The stored SID of the recording a path names (by its UUID, or its `RE…` SID).
fn named(file: &str) -> String {
    let file = file.trim_end_matches(".json");
    uuid_as_sid(file, "RE").unwrap_or_else(|| file.to_owned())
}

fn recording_error(e: RecordingError, sid: &str) -> ApiError {
    match e {
        RecordingError::NotFound => ApiError::not_found(format!("No recording {sid}.")),
        RecordingError::InProgress => {
            ApiError::unprocessable(format!("The recording {sid} is still running."))
        }
        other => ApiError::unprocessable(other.to_string()),
    }
}

/// `POST …/Calls/{call_sid}/Recordings.json`: starts recording the call, which must be in
/// progress and running TeXML.
pub(super) async fn start(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let record = stored_call(&api, &account, &call).await?;
    let dialect = (api.parts.markup.dialect_of(&record.id))
        .filter(|f| matches!(f, Dialect::Texml { .. }) && record.status == CallStatus::InProgress)
        .ok_or_else(|| {
            ApiError::unprocessable("The call is not in progress with TeXML running.".into())
        })?;
    let f = Fields::parse(&headers, &body)?;
    let channels = match f.get("RecordingChannels") {
        None | Some("single" | "mono") => Channels::Mono,
        Some("dual") => Channels::Dual,
        Some(other) => {
            return Err(ApiError::invalid(
                "RecordingChannels",
                format!("'{other}' is not single or dual."),
            ));
        }
    };
    let tracks =
        crate::markup::voice::recording_tracks(f.get("RecordingTrack")).ok_or_else(|| {
            ApiError::invalid(
                "RecordingTrack",
                "'RecordingTrack' is inbound, outbound or both.".into(),
            )
        })?;
    // The status callbacks always carry `RecordingUrl` here.
    if f.get("SendRecordingUrl").is_some() && !f.flag("SendRecordingUrl")? {
        return Err(ApiError::invalid(
            "SendRecordingUrl",
            "Status callbacks without RecordingUrl are not served here.".into(),
        ));
    }
    let sid = crate::infra::sid::new_sid("RE");
    if let Some(url) = f.url("RecordingStatusCallback")? {
        let callback = RecordingCallback {
            url,
            method: f
                .method("RecordingStatusCallbackMethod")?
                .unwrap_or(HttpMethod::Post),
            origin: RecordingOrigin::Api,
            events: match f.words("RecordingStatusCallbackEvent") {
                e if e.is_empty() => vec!["completed".into()],
                e => e,
            },
            track: crate::markup::voice::recording_track(tracks),
        };
        (api.parts.markup)
            .on_recording(&account, &record.id, &sid, callback, &dialect)
            .await;
    }
    // A beep would be played over the TeXML the call runs, which owns its playback here.
    if f.flag("PlayBeep")? {
        return Err(ApiError::invalid(
            "PlayBeep",
            "A beep over the running TeXML is not served here; play one from the TeXML.".into(),
        ));
    }
    let control = &api.parts.control;
    let options = RecordOptions {
        channels,
        format: RecordFormat::Pcm16,
        tracks,
        trim_silence: false,
        sid: Some(sid.clone()),
        origin: RecordingOrigin::Api,
        stop: Default::default(),
    };
    (control.command(&record.id, CallCommand::RecordStart(options)))
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let row = (api.parts.recordings.find(&account.sid, &sid))
        .await
        .map_err(|e| recording_error(e, &sid))?;
    Ok((StatusCode::CREATED, Json(resource(&api, &account, &row))))
}

/// `GET …/Calls/{call_sid}/Recordings.json`: the call's recordings, newest first, in pages.
pub(super) async fn list_of_call(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, call)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let record = stored_call(&api, &account, &call).await?;
    let call_id = call.trim_end_matches(".json");
    let path = format!(
        "/v2/texml/Accounts/{}/Calls/{call_id}/Recordings.json",
        account_id(&account)
    );
    list_of(&api, &account, Some(&record.id), &path, query).await
}

/// `GET …/Conferences/{sid}/Recordings(.json)`: the recordings of one of the account's
/// conferences (in progress or over), newest first, in pages.
pub(super) async fn list_of_conference(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, conference)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let c = super::texml_conferences::stored_one(&api, &account, &conference).await?;
    let path = format!(
        "/v2/texml/Accounts/{}/Conferences/{}/Recordings.json",
        account_id(&account),
        c.sid
    );
    list_of(&api, &account, Some(&c.sid), &path, query).await
}

/// `GET …/Recordings.json`: the account's recordings, newest first, in pages.
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Path(account_path): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let path = format!(
        "/v2/texml/Accounts/{}/Recordings.json",
        account_id(&account)
    );
    list_of(&api, &account, None, &path, query).await
}

/// A page of recordings (`Page`, `PageSize`), of one call or the account's.
async fn list_of(
    api: &Telnyx,
    account: &Account,
    call: Option<&str>,
    path: &str,
    query: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let q = texml_rest::query(query.as_deref());
    if rest_json::param(&q, "DateCreated").is_some() {
        return Err(ApiError::invalid(
            "DateCreated",
            "Filtering recordings by DateCreated is not served here.".into(),
        ));
    }
    // Paged in the store: an account's recordings may be many.
    let (page, size) = texml_rest::paging(&q)?;
    let rows = (api
        .parts
        .recordings
        .list(&account.sid, call, page * size, size + 1))
    .await
    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(Json(rest_json::envelope(
        "recordings",
        path,
        &q,
        (page, size),
        rows,
        |r| r.id.clone(),
        |r| resource(api, account, r),
    )))
}

/// A recording's transcription as TeXML's REST API shows it.
fn transcription(account: &Account, t: &TranscriptionRow) -> Value {
    let account_id = account_id(account);
    json!({
        "account_sid": account_id,
        "api_version": "2010-04-01",
        "call_sid": t.call_sid.as_deref().and_then(CallId::from_sid).map(CallId::control_id),
        "date_created": iso8601(t.created_at),
        "date_updated": iso8601(t.updated_at),
        "duration": (t.duration_ms / 1000).to_string(),
        "recording_sid": sid_as_uuid(&t.recording_sid, "RE"),
        "sid": t.sid,
        "status": if t.status == "failed" { "completed" } else { t.status.as_str() },
        "transcription_text": t.text,
        "uri": format!("/v2/texml/Accounts/{account_id}/Transcriptions/{}.json", t.sid),
    })
}

/// `GET …/Transcriptions.json`: the account's recordings' transcriptions, in pages.
pub(super) async fn transcriptions(
    State(api): State<Arc<Telnyx>>,
    Path(account_path): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let q = texml_rest::query(query.as_deref());
    let rows = (api.parts.store.transcriptions(&account.sid, None))
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let path = format!(
        "/v2/texml/Accounts/{}/Transcriptions.json",
        account_id(&account)
    );
    let page = texml_rest::page_of(
        &q,
        "transcriptions",
        &path,
        rows,
        |t| t.sid.clone(),
        |t| transcription(&account, t),
    )?;
    Ok(Json(page))
}

/// `GET …/Transcriptions/{sid}.json`.
pub(super) async fn transcription_retrieve(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let sid = file.trim_end_matches(".json");
    let found = (api.parts.store.transcription(&account.sid, sid))
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let t = found.ok_or_else(|| ApiError::not_found(format!("No transcription {sid}.")))?;
    Ok(Json(transcription(&account, &t)))
}

/// `DELETE …/Transcriptions/{sid}.json`.
pub(super) async fn transcription_delete(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let sid = file.trim_end_matches(".json");
    let deleted = (api.parts.store.delete_transcription(&account.sid, sid))
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if !deleted {
        return Err(ApiError::not_found(format!("No transcription {sid}.")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/Calls/{call_sid}/Recordings/{sid}.json`: `Status` paused, in-progress (resumed)
/// or stopped, on the call's running recording.
pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let record = stored_call(&api, &account, &call).await?;
    let sid = &named(&file);
    let mut row = (api.parts.recordings.find(&account.sid, sid))
        .await
        .map_err(|e| recording_error(e, sid))?;
    if row.call_id != record.id {
        return Err(ApiError::not_found(format!(
            "No recording {sid} of the call."
        )));
    }
    let f = Fields::parse(&headers, &body)?;
    let (command, shown) = match f.get("Status") {
        // The paused time is left out unless `PauseBehavior` is `silence`.
        Some("paused") => {
            let how = match f.get("PauseBehavior") {
                None | Some("" | "skip") => switchboard_media::record::PauseBehavior::Skip,
                Some("silence") => switchboard_media::record::PauseBehavior::Silence,
                Some(other) => {
                    return Err(ApiError::invalid(
                        "PauseBehavior",
                        format!("'{other}' is not skip or silence."),
                    ));
                }
            };
            (CallCommand::RecordPause(how), "paused")
        }
        Some("in-progress") => (CallCommand::RecordResume, "in-progress"),
        Some("stopped") => (CallCommand::RecordStop, "stopped"),
        other => {
            return Err(ApiError::invalid(
                "Status",
                format!(
                    "'{}' is not in-progress, paused or stopped.",
                    other.unwrap_or("")
                ),
            ));
        }
    };
    if !matches!(row.status.as_str(), "in-progress" | "paused") {
        return Err(ApiError::unprocessable(format!(
            "The recording {sid} has ended."
        )));
    }
    (api.parts.control.command(&record.id, command))
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    row.status = shown.to_owned();
    Ok(Json(resource(&api, &account, &row)))
}

/// `GET …/Recordings/{sid}.json`: one of the account's recordings.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let sid = &named(&file);
    let row = (api.parts.recordings.find(&account.sid, sid))
        .await
        .map_err(|e| recording_error(e, sid))?;
    Ok(Json(resource(&api, &account, &row)))
}

/// `DELETE …/Recordings/{sid}.json`: a finished recording, its file with it.
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let sid = &named(&file);
    let recordings = &api.parts.recordings;
    let row = (recordings.find(&account.sid, sid).await).map_err(|e| recording_error(e, sid))?;
    recordings
        .delete(&row)
        .await
        .map_err(|e| recording_error(e, sid))?;
    Ok(StatusCode::NO_CONTENT)
}
