//! The Recordings resource: lists (of the account, of a call), metadata (`.json`,
//! authenticated), the media itself (no suffix or `.wav`, and `.mp3`, converted as needed;
//! public by default, as on Twilio, the SID being the capability) and delete; and recording a
//! live call: start, pause, resume, stop.

use super::json::{self, Json, form, param};
use super::{ApiError, Listing, TwilioApi, authenticate, live_call};
use crate::call::{CallCommand, RecordChange, RecordOptions, RecordingOrigin};
use crate::infra::sid::is_sid;
use crate::infra::store::RecordingRow;
use crate::markup::rfc2822;
use crate::markup::voice::{RecordingCallback, recording_source};
use crate::services::recordings::{MediaKind, RecordingError};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchboard_media::record::PauseBehavior;
use switchboard_media::record::{Channels, RecordFormat};

fn uri(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Recordings/{sid}.json")
}

/// The recording, if it belongs to `account`.
async fn find(api: &TwilioApi, account: &str, sid: &str) -> Result<RecordingRow, ApiError> {
    api.recordings
        .find(account, sid)
        .await
        .map_err(|e| recording_error(e, account, sid))
}

fn recording_error(e: RecordingError, account: &str, sid: &str) -> ApiError {
    match e {
        RecordingError::Store(e) => ApiError::internal(e),
        RecordingError::InProgress => ApiError::bad_request(
            21220,
            "The recording is in progress: stop it before deleting it.",
        ),
        RecordingError::Media(e) => ApiError::new(StatusCode::NOT_FOUND, 20404, e),
        RecordingError::NotFound => ApiError::not_found(&uri(account, sid)),
    }
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
        // A conference's mix is filed under the conference.
        "call_sid": (!r.call_id.starts_with("CF")).then_some(&r.call_id),
        "conference_sid": r.call_id.starts_with("CF").then_some(&r.call_id),
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
    let kind = MediaKind::from_extension(kind)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, 20404, format!("no .{kind} form")))?;
    let body = api
        .recordings
        .media(&row, kind)
        .await
        .map_err(|e| match e {
            // Not there yet, as far as the media URL goes.
            RecordingError::InProgress => ApiError::not_found(&uri(&account, sid)),
            e => recording_error(e, &account, sid),
        })?;
    Ok(([(header::CONTENT_TYPE, kind.content_type())], body).into_response())
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
    api.recordings
        .delete(&row)
        .await
        .map_err(|e| recording_error(e, &account.sid, sid))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /Recordings.json` (filter `CallSid`) and `GET /Calls/{CA}/Recordings.json`.
async fn list_of(
    api: &TwilioApi,
    list: Listing,
    call: Option<&str>,
    path: &str,
) -> Result<Json, ApiError> {
    let call = call.or(list.param("CallSid"));
    let (offset, limit) = list.offset_limit();
    let rows = api
        .recordings
        .list(&list.account.sid, call, offset, limit)
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
    let tracks =
        crate::markup::voice::recording_tracks(param(&p, "RecordingTrack")).ok_or_else(|| {
            let name = param(&p, "RecordingTrack").unwrap_or_default();
            ApiError::bad_request(20001, format!("Invalid RecordingTrack: {name}"))
        })?;
    let sid = crate::infra::sid::new_sid("RE");
    if let Some(url) = json::url(&p, "RecordingStatusCallback")? {
        api.apps
            .on_recording(
                &account,
                &call,
                &sid,
                RecordingCallback {
                    url,
                    method: json::method(&p, "RecordingStatusCallbackMethod")?,
                    origin: RecordingOrigin::Api,
                    events: json::recording_events(&p),
                    track: crate::markup::voice::recording_track(tracks),
                },
                &crate::markup::voice::Dialect::Twilio,
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
                stop: Default::default(),
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
    let (change, shown) = status_change(&p)?;
    let command = match change {
        RecordChange::Pause(how) => CallCommand::RecordPause(how),
        RecordChange::Resume => CallCommand::RecordResume,
        RecordChange::Stop => CallCommand::RecordStop,
    };
    let named = file.strip_suffix(".json").unwrap_or(&file);
    let recordings = api
        .recordings
        .list(&account.sid, Some(&call), 0, 100)
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

/// `GET /Conferences/{CF}/Recordings.json`: the conference's recordings (of its mix).
pub(super) async fn list_of_conference(
    State(api): State<TwilioApi>,
    Path((account, conference)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let path = format!("Conferences/{conference}/Recordings.json");
    list_of(&api, list, Some(&conference), &path).await
}

/// `GET /Conferences/{CF}/Recordings/{RE}.json` (a recording of that conference).
pub(super) async fn fetch_of_conference(
    State(api): State<TwilioApi>,
    Path((account, conference, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    let row = find(&api, &account.sid, sid).await?;
    if row.call_id != conference {
        return Err(ApiError::not_found(&uri(account.api_sid(), sid)));
    }
    Ok(Json(resource(&row, account.api_sid())))
}

/// `DELETE /Conferences/{CF}/Recordings/{RE}.json`.
pub(super) async fn delete_of_conference(
    State(api): State<TwilioApi>,
    Path((account, conference, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let owner = authenticate(&api.directory, &headers, &account)?;
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    let row = find(&api, &owner.sid, sid).await?;
    if row.call_id != conference {
        return Err(ApiError::not_found(&uri(owner.api_sid(), sid)));
    }
    delete(State(api), Path((account, file)), headers).await
}

/// `POST /Conferences/{CF}/Recordings/{RE}.json` (or `Twilio.CURRENT`): pauses, resumes or
/// stops the recording of the mix of a conference in progress.
pub(super) async fn update_of_conference(
    State(api): State<TwilioApi>,
    Path((account, conference, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    let (change, shown) = status_change(&p)?;
    let named = file.strip_suffix(".json").unwrap_or(&file);
    let live = crate::services::account_conferences::in_progress(&api.control, &account.sid)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let room = live.into_iter().find(|c| c.sid == conference);
    let running = room.as_ref().and_then(|c| Some((c.recording.clone()?, c)));
    let Some((running, room)) = running.filter(|(r, _)| named == "Twilio.CURRENT" || named == r)
    else {
        // Over (or never running): Twilio's answer for a recording that cannot change now.
        let row = find(&api, &account.sid, named).await?;
        if row.call_id != conference {
            return Err(ApiError::not_found(&uri(account.api_sid(), named)));
        }
        return Err(ApiError::bad_request(21220, "The recording has ended."));
    };
    // The room's recording changes through any of its participants.
    let by = (room.participants.first())
        .ok_or_else(|| ApiError::bad_request(21220, "The conference has no participant left."))?;
    (api.control)
        .command(&by.call, CallCommand::ConferenceRecording(change))
        .await
        .map_err(|e| ApiError::bad_request(21220, e.to_string()))?;
    let mut row = find(&api, &account.sid, &running).await?;
    row.status = shown.to_owned();
    Ok(Json(resource(&row, account.api_sid())))
}

/// `Status`: `paused` (with its `PauseBehavior`: `silence` by default, as Twilio's, or
/// `skip`), `in-progress` (resumed) or `stopped`, and how the answer shows it.
fn status_change(p: &[(String, String)]) -> Result<(RecordChange, &'static str), ApiError> {
    Ok(match param(p, "Status") {
        Some("paused") => {
            let how = match param(p, "PauseBehavior") {
                None | Some("" | "silence") => PauseBehavior::Silence,
                Some("skip") => PauseBehavior::Skip,
                Some(other) => {
                    return Err(ApiError::bad_request(
                        20001,
                        format!("Invalid PauseBehavior: {other} (skip or silence)"),
                    ));
                }
            };
            (RecordChange::Pause(how), "paused")
        }
        Some("in-progress") => (RecordChange::Resume, "in-progress"),
        Some("stopped") => (RecordChange::Stop, "stopped"),
        other => {
            return Err(ApiError::bad_request(
                20001,
                format!("Invalid Status: {}", other.unwrap_or("")),
            ));
        }
    })
}
