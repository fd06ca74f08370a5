//! The Recordings resource: lists (of the account, of a call), metadata (`.json`,
//! authenticated), the media itself (no suffix or `.wav`, and `.mp3`, converted as needed;
//! public by default, as on Twilio, the SID being the capability) and delete; and recording a
//! live call: start, pause, resume, stop.

use super::json::{self, Json, form, param};
use super::{ApiError, Listing, TwilioApi, authenticate, live_call};
use crate::accounts::is_sid;
use crate::call::{CallCommand, RecordOptions, RecordingOrigin};
use crate::providers::twilio::rfc2822;
use crate::providers::twilio::voice::{RecordingCallback, recording_source};
use crate::store::RecordingRow;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchboard_media::TapTracks;
use switchboard_media::record::{Channels, RecordFormat, read_wav, wav_pcm16};

fn uri(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Recordings/{sid}.json")
}

/// The recording and the account its call belongs to.
async fn find(api: &TwilioApi, account: &str, sid: &str) -> Result<RecordingRow, ApiError> {
    let missing = || ApiError::not_found(&uri(account, sid));
    api.writer.sync().await;
    let row = api
        .store
        .recording(sid)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(missing)?;
    let call = api
        .store
        .get_call(&row.call_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(missing)?;
    if call.account_sid.as_deref() != Some(account) {
        return Err(missing());
    }
    Ok(row)
}

fn resource(r: &RecordingRow, account: &str) -> serde_json::Value {
    let status = match r.status.as_str() {
        "failed" => "absent",
        s => s,
    };
    let duration = if status == "completed" {
        (r.duration_ms / 1000).to_string()
    } else {
        "-1".to_owned()
    };
    json!({
        "account_sid": account,
        "api_version": "2010-04-01",
        "call_sid": r.call_id,
        "conference_sid": null,
        "date_created": rfc2822(r.started_at),
        "date_updated": rfc2822(r.ended_at.unwrap_or(r.started_at)),
        "start_time": rfc2822(r.started_at),
        "duration": duration,
        "sid": r.id,
        "price": null,
        "price_unit": "USD",
        "status": status,
        "channels": r.channels,
        "source": RecordingOrigin::from_name(&r.origin).map_or("StartCallRecordingAPI", recording_source),
        "error_code": null,
        "uri": uri(account, &r.id),
        "encryption_details": null,
        "media_url": format!("/2010-04-01/Accounts/{account}/Recordings/{}", r.id),
        "subresource_uris": {
            "add_on_results": format!("/2010-04-01/Accounts/{account}/Recordings/{}/AddOnResults.json", r.id),
            "transcriptions": format!("/2010-04-01/Accounts/{account}/Recordings/{}/Transcriptions.json", r.id),
        },
    })
}

/// `GET /Recordings/{RE}.json|.wav|.mp3|(bare)`.
pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (sid, kind) = match file.rsplit_once('.') {
        Some((sid, ext)) => (sid, ext),
        None => (file.as_str(), "wav"),
    };
    if !is_sid(sid, "RE") {
        return Err(ApiError::not_found(&uri(&account, &file)));
    }
    if kind == "json" {
        let account = authenticate(&api.directory, &headers, &account)?;
        let row = find(&api, &account.sid, sid).await?;
        return Ok(Json(resource(&row, account.api_sid())).into_response());
    }
    // Media is public (as on Twilio): the path's account, by SID or project id, is enough.
    let owner = api
        .directory
        .named(&account)
        .map_or(account.clone(), |a| a.sid.clone());
    let row = find(&api, &owner, sid).await?;
    if row.status != "completed" {
        return Err(ApiError::not_found(&uri(&account, sid)));
    }
    let bytes = tokio::fs::read(&row.path)
        .await
        .map_err(|_| ApiError::not_found(&uri(&account, sid)))?;
    let stored_mp3 = row.format == "mp3";
    let kind = kind.to_owned();
    let converted = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, &str), String> {
        Ok(match (kind.as_str(), stored_mp3) {
            ("mp3", true) | ("wav", false) => (bytes, content_type(&kind)),
            ("mp3", false) => {
                let (samples, channels) = read_wav(&bytes).ok_or("unreadable WAV")?;
                let mp3 = switchboard_media::mp3::encode(&samples, channels as u8)
                    .map_err(|e| e.to_string())?;
                (mp3, "audio/mpeg")
            }
            ("wav", true) => {
                let samples = switchboard_media::decode::decode_to_8k(bytes, Some("mp3"))
                    .map_err(|e| e.to_string())?;
                (wav_pcm16(&samples, 1), "audio/x-wav")
            }
            _ => return Err(format!("no .{kind} form")),
        })
    })
    .await
    .map_err(ApiError::internal)?;
    match converted {
        Ok((body, content_type)) => {
            Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
        }
        Err(e) => Err(ApiError::new(StatusCode::NOT_FOUND, 20404, e)),
    }
}

fn content_type(kind: &str) -> &'static str {
    if kind == "mp3" {
        "audio/mpeg"
    } else {
        "audio/x-wav"
    }
}

/// `DELETE /Recordings/{RE}.json`: the row and the file.
pub(super) async fn delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    let row = find(&api, &account.sid, sid).await?;
    if row.status == "in-progress" || row.status == "paused" {
        return Err(ApiError::bad_request(
            21220,
            "The recording is in progress: stop it before deleting it.",
        ));
    }
    let _ = tokio::fs::remove_file(&row.path).await;
    api.store
        .delete_recording(sid)
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /Recordings.json` (filter `CallSid`) and `GET /Calls/{CA}/Recordings.json`.
async fn list_of(
    api: &TwilioApi,
    list: Listing<'_>,
    call: Option<&str>,
    path: &str,
) -> Result<Json, ApiError> {
    let call = call.or(list.param("CallSid"));
    api.writer.sync().await;
    let (offset, limit) = list.offset_limit();
    let rows = api
        .store
        .account_recordings(&list.account.sid, call, offset, limit)
        .await
        .map_err(ApiError::internal)?;
    let api_sid = list.account.api_sid();
    Ok(list.respond(
        "recordings",
        path,
        rows,
        |r| r.id.clone(),
        |r| resource(r, api_sid),
    ))
}

pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    list_of(&api, list, None, "Recordings.json").await
}

pub(super) async fn list_of_call(
    State(api): State<TwilioApi>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let path = format!("Calls/{call}/Recordings.json");
    list_of(&api, list, Some(&call), &path).await
}

/// `POST /Calls/{CA}/Recordings.json`: starts recording the call.
pub(super) async fn start(
    State(api): State<TwilioApi>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    live_call(&api, &account.sid, &call, "Cannot start a recording.").await?;
    let p = form(&body);
    let channels = match param(&p, "RecordingChannels") {
        None | Some("") | Some("mono") => Channels::Mono,
        Some("dual") => Channels::Dual,
        Some(other) => {
            return Err(ApiError::bad_request(
                20001,
                format!("Invalid RecordingChannels: {other}"),
            ));
        }
    };
    let tracks = match param(&p, "RecordingTrack") {
        None | Some("") | Some("both") => TapTracks::Both,
        Some("inbound") => TapTracks::Inbound,
        Some("outbound") => TapTracks::Outbound,
        Some(other) => {
            return Err(ApiError::bad_request(
                20001,
                format!("Invalid RecordingTrack: {other}"),
            ));
        }
    };
    let sid = crate::accounts::new_sid("RE");
    if let Some(url) = json::url(&p, "RecordingStatusCallback")? {
        api.apps
            .on_recording(
                account,
                &call,
                &sid,
                RecordingCallback {
                    url,
                    method: json::method(&p, "RecordingStatusCallbackMethod")?,
                    origin: RecordingOrigin::Api,
                    events: json::recording_events(&p),
                    track: match tracks {
                        TapTracks::Inbound => "inbound",
                        TapTracks::Outbound => "outbound",
                        TapTracks::Both => "both",
                    },
                },
            )
            .await;
    }
    api.control
        .command(
            &call,
            CallCommand::RecordStart(RecordOptions {
                channels,
                format: RecordFormat::Pcm16,
                tracks,
                trim_silence: param(&p, "Trim") == Some("trim-silence"),
                sid: Some(sid.clone()),
                origin: RecordingOrigin::Api,
            }),
        )
        .await
        .map_err(|e| ApiError::bad_request(21220, e.to_string()))?;
    let row = find(&api, &account.sid, &sid).await?;
    Ok((StatusCode::CREATED, Json(resource(&row, account.api_sid()))).into_response())
}

/// `POST /Calls/{CA}/Recordings/{RE|Twilio.CURRENT}.json`: `Status` paused, in-progress or
/// stopped.
pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    let (command, shown) = match param(&p, "Status") {
        Some("paused") => (CallCommand::RecordPause, "paused"),
        Some("in-progress") => (CallCommand::RecordResume, "in-progress"),
        Some("stopped") => (CallCommand::RecordStop, "stopped"),
        other => {
            return Err(ApiError::bad_request(
                20001,
                format!("Invalid Status: {}", other.unwrap_or("")),
            ));
        }
    };
    let named = file.strip_suffix(".json").unwrap_or(&file);
    api.writer.sync().await;
    let recordings = api
        .store
        .account_recordings(&account.sid, Some(&call), 0, 100)
        .await
        .map_err(ApiError::internal)?;
    let mut row = recordings
        .into_iter()
        .find(|r| {
            if named == "Twilio.CURRENT" {
                r.status == "in-progress" || r.status == "paused"
            } else {
                r.id == named
            }
        })
        .ok_or_else(|| ApiError::not_found(&uri(&account.sid, named)))?;
    if row.status == "completed" || row.status == "failed" {
        return Err(ApiError::bad_request(21220, "The recording has ended."));
    }
    api.control
        .command(&call, command)
        .await
        .map_err(|e| ApiError::bad_request(21220, e.to_string()))?;
    row.status = shown.to_owned();
    Ok(Json(resource(&row, account.api_sid())))
}
