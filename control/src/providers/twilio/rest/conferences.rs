//! Conferences and their Participants: the account's conferences (rooms its TwiML
//! `<Dial><Conference>`s opened; those over too, as stored), ending one, and adding, muting,
//! holding and removing participants.

use super::json::{Json, form, method, param, params_all, refuse_unserved, url};
use super::{ApiError, Listing, TwilioApi, authenticate, calls};
use crate::call::{CallCommand, ConferenceSnapshot, ParticipantSnapshot};
use crate::infra::accounts::Account;
use crate::infra::sid::is_sid;
use crate::infra::store::ConferenceRow;
use crate::markup::rfc2822;
use crate::markup::voice::{JoinOptions, VoiceApp, amd};
use crate::services::account_conferences;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn base(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Conferences/{sid}")
}

/// The account's conferences in progress.
async fn of_account(api: &TwilioApi, account: &str) -> Result<Vec<ConferenceSnapshot>, ApiError> {
    account_conferences::in_progress(&api.control, account)
        .await
        .map_err(ApiError::internal)
}

async fn find(api: &TwilioApi, account: &str, file: &str) -> Result<ConferenceSnapshot, ApiError> {
    let sid = file.strip_suffix(".json").unwrap_or(file);
    of_account(api, account)
        .await?
        .into_iter()
        .find(|c| c.sid == sid)
        .ok_or_else(|| ApiError::not_found(&format!("{}.json", base(account, sid))))
}

/// The account's conferences as stored (those in progress and those over), newest first.
async fn stored(api: &TwilioApi, account: &str) -> Result<Vec<ConferenceRow>, ApiError> {
    account_conferences::stored(&api.store, &api.writer.reader(), account)
        .await
        .map_err(ApiError::internal)
}

/// A Conference resource.
fn conference(c: &ConferenceRow, account: &str) -> Value {
    let room = account_conferences::room_name(&c.name);
    let b = base(account, &c.sid);
    json!({
        "account_sid": account,
        "date_created": rfc2822(c.created_at),
        "date_updated": rfc2822(c.updated_at),
        "api_version": "2010-04-01",
        "friendly_name": room,
        "region": "us1",
        "sid": c.sid,
        "status": c.status,
        "uri": format!("{b}.json"),
        "subresource_uris": {
            "participants": format!("{b}/Participants.json"),
            "recordings": format!("{b}/Recordings.json"),
        },
        "reason_conference_ended": c.reason_ended,
        "call_sid_ending_conference": c.ended_by,
    })
}

fn participant(p: &ParticipantSnapshot, conference: &str, account: &str) -> Value {
    json!({
        "account_sid": account,
        "call_sid": p.call,
        "label": null,
        "call_sid_to_coach": p.coaching,
        "coaching": p.coaching.is_some(),
        "conference_sid": conference,
        "date_created": rfc2822(p.joined_at),
        "date_updated": rfc2822(p.joined_at),
        "end_conference_on_exit": p.end_on_exit,
        "muted": p.muted,
        "hold": p.held,
        "start_conference_on_enter": p.start_on_enter,
        "status": "connected",
        "queue_time": null,
        "uri": format!("{}/Participants/{}.json", base(account, conference), p.call),
    })
}

pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = &list.account;
    let mut found = stored(&api, &account.sid).await?;
    if let Some(name) = list.param("FriendlyName").filter(|n| !n.is_empty()) {
        let room = format!("{}:{name}", account.sid);
        found.retain(|c| c.name == room);
    }
    if let Some(status) = list.param("Status").filter(|s| !s.is_empty()) {
        found.retain(|c| c.status == status);
    }
    let items = list.page_of(found);
    Ok(list.respond(
        "conferences",
        "Conferences.json",
        items,
        |c| c.sid.clone(),
        |c| conference(c, account.api_sid()),
    ))
}

pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let c = stored_one(&api, &account, &file).await?;
    Ok(Json(conference(&c, account.api_sid())))
}

/// The account's conference a `{CF}.json` path names, as stored.
async fn stored_one(
    api: &TwilioApi,
    account: &Account,
    file: &str,
) -> Result<ConferenceRow, ApiError> {
    let sid = file.strip_suffix(".json").unwrap_or(file);
    let reader = api.writer.reader();
    (account_conferences::stored_one(&api.store, &reader, &account.sid, sid))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(&format!("{}.json", base(account.api_sid(), sid))))
}

/// `Status=completed` ends the conference; its participants' calls go on.
pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let c = stored_one(&api, &account, &file).await?;
    let p = form(&body);
    if let Some(url) = url(&p, "AnnounceUrl")? {
        let live = account_conferences::in_progress(&api.control, &account.sid)
            .await
            .map_err(ApiError::internal)?;
        let room = live.iter().find(|l| l.sid == c.sid);
        let by = room.and_then(|r| r.participants.iter().min_by_key(|p| p.joined_at));
        let Some(by) = by else {
            return Err(ApiError::bad_request(
                21220,
                "The conference is not in progress.",
            ));
        };
        let announced = (url, method(&p, "AnnounceMethod")?);
        api.apps
            .announce(&account, &c.sid, &by.call, false, announced);
    }
    match param(&p, "Status") {
        // Ending one that is over already changes nothing.
        Some("completed") => {
            api.control
                .end_conference(&c.sid)
                .await
                .map_err(ApiError::internal)?;
        }
        None | Some("") => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                20001,
                format!("Invalid Status: {other}"),
            ));
        }
    }
    let c = stored_one(&api, &account, &file).await?;
    Ok(Json(conference(&c, account.api_sid())))
}

/// Participants create's parameters (twilio-node's `ParticipantListInstanceCreateOptions`)
/// not carried out here.
const PARTICIPANT_CREATE_UNSERVED: &[&str] = &[
    "WaitMethod",
    "EarlyMedia",
    "MaxParticipants",
    "ConferenceTrim",
    "Region",
    "ConferenceRecordingStatusCallback",
    "ConferenceRecordingStatusCallbackMethod",
    "ConferenceRecordingStatusCallbackEvent",
    "JitterBufferSize",
    "Byoc",
    "CallReason",
    "RecordingConfigurationId",
    "CallToken",
    "Passports",
    "ClientNotificationUrl",
    "CallerDisplayName",
    "EmergencyAddress",
    "EmergencyCallerLocation",
    "EmergencyCallerPosition",
    "EmergencyCity",
    "EmergencyCountry",
    "EmergencyName",
    "EmergencyState",
    "EmergencyZipCode",
];

/// `POST /Conferences/{CF or name}/Participants.json`: calls `To` and, once answered, puts the
/// call in the room (by the TwiML `<Dial><Conference>` its attributes make), so the room's
/// rules, beeps and callbacks apply as to any participant.
pub(super) async fn participant_create(
    State(api): State<TwilioApi>,
    Path((account, conference)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?.clone();
    let p = form(&body);
    refuse_unserved(&p, PARTICIPANT_CREATE_UNSERVED)?;
    let (to, from) = calls::to_and_from(&p)?;
    // An existing conference by SID, or a room by name (opened by this participant if no
    // conference of that name is in progress).
    let (room, sid) = if is_sid(&conference, "CF") {
        let c = find(&api, &account.sid, &conference).await?;
        let room = account_conferences::room_name(&c.name).to_owned();
        (room, Some(c.sid))
    } else {
        let name = account_conferences::room(&account.sid, &conference);
        let open = of_account(&api, &account.sid).await?;
        let sid = open.into_iter().find(|c| c.name == name).map(|c| c.sid);
        (conference.clone(), sid)
    };
    let flag = |name: &str| match param(&p, name) {
        None | Some("") | Some("false" | "False") => Ok(false),
        Some("true" | "True") => Ok(true),
        Some(v) => Err(ApiError::bad_request(20001, format!("Invalid {name}: {v}"))),
    };
    let coach = coaching(flag("Coaching")?, param(&p, "CallSidToCoach"))?;
    let options = JoinOptions::read(
        |k| param(&p, k).map(str::to_owned),
        url(&p, "WaitUrl")?,
        url(&p, "ConferenceStatusCallback")?,
        params_all(&p, "ConferenceStatusCallbackEvent"),
        coach,
    )
    .map_err(|(_, message)| ApiError::bad_request(20001, message))?;
    let twiml = options.document(&room);
    let mut status_events = params_all(&p, "StatusCallbackEvent");
    if status_events.is_empty() {
        status_events.push("completed".into());
    }
    let app = VoiceApp {
        twiml: Some(twiml),
        status_callback: url(&p, "StatusCallback")?,
        status_callback_method: method(&p, "StatusCallbackMethod")?,
        status_events,
        // Joined at once, the verdict to `AmdStatusCallback`.
        machine_detection: amd::parse_participant(|k| param(&p, k).map(str::to_owned))
            .map_err(|(_, message)| ApiError::bad_request(20001, message))?,
        // Its call recorded and limited as a call's create would (`Record`, `TimeLimit`).
        ..calls::call_options(&p, None)?
    };
    let caller_id = param(&p, "CallerId")
        .filter(|c| !c.is_empty())
        .unwrap_or(from);
    let timeout = calls::ring_timeout(&p)?;
    let credentials = calls::sip_auth(&p);
    let call = calls::place_call(
        &api,
        &account,
        (to, from, caller_id),
        timeout,
        app,
        credentials,
    )
    .await?;
    // A call's asynchronous detection parameters are not the Participants API's: Twilio warns
    // of them (21263) and goes on.
    let async_amd = [
        "AsyncAmd",
        "AsyncAmdStatusCallback",
        "AsyncAmdStatusCallbackMethod",
    ];
    if async_amd.iter().any(|k| param(&p, k).is_some()) {
        let message = "AsyncAmd parameters are not taken by the Participants API: \
                       AmdStatusCallback gets the verdict";
        api.apps.warn(&account, &call, 21263, message).await;
    }
    let shown = options.snapshot(call, crate::infra::clock::now_ms());
    let mut resource = participant(
        &shown,
        sid.as_deref().unwrap_or_default(),
        account.api_sid(),
    );
    resource["status"] = json!("queued");
    resource["label"] = json!(param(&p, "Label"));
    if sid.is_none() {
        resource["conference_sid"] = Value::Null;
        resource["uri"] = Value::Null;
    }
    Ok((StatusCode::CREATED, Json(resource)).into_response())
}

pub(super) async fn participants(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = &list.account;
    // A conference that is over has no participants left.
    let c = stored_one(&api, account, &file).await?;
    let live = of_account(&api, &account.sid)
        .await?
        .into_iter()
        .find(|l| l.sid == c.sid);
    let flag = |name: &str| list.param(name).map(|v| v == "true");
    let matching = live
        .iter()
        .flat_map(|l| &l.participants)
        .filter(|p| flag("Muted").is_none_or(|m| p.muted == m))
        .filter(|p| flag("Hold").is_none_or(|h| p.held == h))
        .cloned();
    let items = list.page_of(matching);
    let path = format!("Conferences/{}/Participants.json", c.sid);
    Ok(list.respond(
        "participants",
        &path,
        items,
        |p| p.call.clone(),
        |p| participant(p, &c.sid, account.api_sid()),
    ))
}

async fn find_participant(
    api: &TwilioApi,
    account: &str,
    conference: &str,
    call: &str,
) -> Result<(ConferenceSnapshot, ParticipantSnapshot), ApiError> {
    let c = find(api, account, conference).await?;
    let call = call.strip_suffix(".json").unwrap_or(call);
    let p = c
        .participants
        .iter()
        .find(|p| p.call == call)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(&format!(
                "{}/Participants/{call}.json",
                base(account, &c.sid)
            ))
        })?;
    Ok((c, p))
}

pub(super) async fn participant_fetch(
    State(api): State<TwilioApi>,
    Path((account, conference, call)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let (c, p) = find_participant(&api, &account.sid, &conference, &call).await?;
    Ok(Json(participant(&p, &c.sid, account.api_sid())))
}

/// Whom a participant coaches, from `Coaching` and `CallSidToCoach` as Twilio reads them: a
/// SID to coach makes a coach unless `Coaching` is false; `Coaching` true needs one.
fn coaching(coaching: bool, to_coach: Option<&str>) -> Result<Option<String>, ApiError> {
    let to_coach = to_coach.filter(|s| !s.is_empty());
    match (coaching, to_coach) {
        (true, None) => Err(ApiError::bad_request(
            21220,
            "CallSidToCoach is required when Coaching is true",
        )),
        (_, Some(sid)) if !is_sid(sid, "CA") => Err(ApiError::bad_request(
            20001,
            format!("Invalid CallSidToCoach: {sid}"),
        )),
        (_, Some(sid)) => Ok(Some(sid.to_owned())),
        (false, None) => Ok(None),
    }
}

/// `Muted`, `Hold` (with `HoldUrl` audio; silence without), `Coaching` and `CallSidToCoach`.
pub(super) async fn participant_update(
    State(api): State<TwilioApi>,
    Path((account, conference, call)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let (c, mut p) = find_participant(&api, &account.sid, &conference, &call).await?;
    let form = form(&body);
    refuse_unserved(
        &form,
        &[
            "HoldMethod",
            "WaitUrl",
            "WaitMethod",
            "BeepOnExit",
            "EndConferenceOnExit",
        ],
    )?;
    let boolean = |name: &str| -> Result<Option<bool>, ApiError> {
        match param(&form, name) {
            None | Some("") => Ok(None),
            Some("true" | "True") => Ok(Some(true)),
            Some("false" | "False") => Ok(Some(false)),
            Some(v) => Err(ApiError::bad_request(20001, format!("Invalid {name}: {v}"))),
        }
    };
    let command = |c| async { api.control.command(&p.call, c).await };
    if let Some(url) = url(&form, "AnnounceUrl")? {
        let announced = (url, method(&form, "AnnounceMethod")?);
        api.apps
            .announce(&account, &c.sid, &p.call, true, announced);
    }
    if let Some(muted) = boolean("Muted")? {
        command(CallCommand::Mute(muted))
            .await
            .map_err(|e| ApiError::bad_request(21220, e.to_string()))?;
        p.muted = muted;
    }
    if let Some(held) = boolean("Hold")? {
        let hold = if held {
            let music = match param(&form, "HoldUrl").filter(|u| !u.is_empty()) {
                Some(url) => api.apps.prompts.url(url, account.reach).await.ok(),
                None => None,
            };
            CallCommand::Hold(music)
        } else {
            CallCommand::Unhold
        };
        command(hold)
            .await
            .map_err(|e| ApiError::bad_request(21220, e.to_string()))?;
        p.held = held;
    }
    let to_coach = param(&form, "CallSidToCoach");
    let coach = match boolean("Coaching")? {
        Some(false) => Some(None),
        Some(true) => Some(coaching(true, to_coach.or(p.coaching.as_deref()))?),
        None if to_coach.is_some() => Some(coaching(false, to_coach)?),
        None => None,
    };
    if let Some(coach) = coach {
        command(CallCommand::ConferenceCoach(coach.clone()))
            .await
            .map_err(|e| ApiError::bad_request(21220, e.to_string()))?;
        p.coaching = coach;
    }
    Ok(Json(participant(&p, &c.sid, account.api_sid())))
}

/// Removes the participant from the conference (Twilio's kick); its call goes on.
pub(super) async fn participant_delete(
    State(api): State<TwilioApi>,
    Path((account, conference, call)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let (_, p) = find_participant(&api, &account.sid, &conference, &call).await?;
    api.control
        .command(&p.call, CallCommand::ConferenceLeave)
        .await
        .map_err(|e| ApiError::bad_request(21220, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}
