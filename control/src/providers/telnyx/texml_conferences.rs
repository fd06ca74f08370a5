//! TeXML's REST conferences (reference §4): `…/Conferences` lists the account's rooms (those
//! in progress and those over; `FriendlyName`, `Status`, paged), `…/Conferences/{sid}` reads
//! one or changes it (`Status=completed` ends it; `AnnounceUrl` plays into it), and
//! `…/Conferences/{sid}/Participants` lists the participants in progress or dials a new one
//! in, each read, changed (`Muted`, `Hold` with `HoldUrl`, `AnnounceUrl` to it alone) or taken
//! out (its recordings are listed with the account's, `texml_recordings`). The same rooms every
//! dialect meets in ([`account_conferences`]); Twilio's shape with Telnyx's call ids.

use super::Telnyx;
use super::errors::ApiError;
use super::texml_calls::{self, Fields};
use super::texml_rest::{self, account_id, texml_account};
use crate::call::ids::CallId;
use crate::call::{CallCommand, ConferenceSnapshot, ParticipantSnapshot};
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::store::ConferenceRow;
use crate::markup::rfc2822;
use crate::markup::voice::{Dialect, JoinOptions, VoiceApp, amd};
use crate::providers::twilio::rest::json as rest_json;
use crate::services::account_conferences::{self, room_name};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// Participant update's parameters (the SDK's) not carried out here.
const PARTICIPANT_UNSERVED: &[&str] = &[
    "BeepOnExit",
    "CallSidToCoach",
    "Coaching",
    "EndConferenceOnExit",
    "HoldMethod",
    "WaitUrl",
];

fn base(account: &Account, sid: &str) -> String {
    format!(
        "/v2/texml/Accounts/{}/Conferences/{sid}",
        account_id(account)
    )
}

/// A call's TeXML id (its call control id).
fn call_id(call: &str) -> Option<String> {
    CallId::from_sid(call).map(CallId::control_id)
}

fn conference(account: &Account, c: &ConferenceRow) -> Value {
    let b = base(account, &c.sid);
    json!({
        "account_sid": account_id(account),
        "api_version": "2010-04-01",
        "call_sid_ending_conference": c.ended_by.as_deref().and_then(call_id),
        "date_created": rfc2822(c.created_at),
        "date_updated": rfc2822(c.updated_at),
        "friendly_name": room_name(&c.name),
        "reason_conference_ended": c.reason_ended,
        "region": "us",
        "sid": c.sid,
        "status": c.status,
        "subresource_uris": {
            "participants": format!("{b}/Participants.json"),
            "recordings": format!("{b}/Recordings.json"),
        },
        "uri": format!("{b}.json"),
    })
}

fn participant(account: &Account, conference: &str, p: &ParticipantSnapshot) -> Value {
    let id = call_id(&p.call);
    let coach = p.coaching.as_deref().and_then(call_id);
    json!({
        "account_sid": account_id(account),
        "api_version": "2010-04-01",
        "call_sid": id,
        "call_sid_legacy": id,
        "coaching": p.coaching.is_some(),
        "coaching_call_sid": coach,
        "coaching_call_sid_legacy": coach,
        "conference_sid": conference,
        "date_created": rfc2822(p.joined_at),
        "date_updated": rfc2822(p.joined_at),
        "end_conference_on_exit": p.end_on_exit,
        "hold": p.held,
        "muted": p.muted,
        "status": "connected",
        "uri": format!(
            "{}/Participants/{}.json",
            base(account, conference),
            id.as_deref().unwrap_or(&p.call)
        ),
    })
}

async fn stored(api: &Telnyx, account: &Account) -> Result<Vec<ConferenceRow>, ApiError> {
    account_conferences::stored(&api.parts.store, &api.parts.writer, &account.sid)
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))
}

pub(super) async fn stored_one(
    api: &Telnyx,
    account: &Account,
    file: &str,
) -> Result<ConferenceRow, ApiError> {
    let sid = file.trim_end_matches(".json");
    let (store, writer) = (&api.parts.store, &api.parts.writer);
    (account_conferences::stored_one(store, writer, &account.sid, sid))
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?
        .ok_or_else(|| ApiError::not_found(format!("No conference {sid}.")))
}

/// The conference in progress, with its participants.
async fn live(api: &Telnyx, account: &Account, sid: &str) -> Result<ConferenceSnapshot, ApiError> {
    (account_conferences::in_progress(&api.parts.control, &account.sid))
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?
        .into_iter()
        .find(|c| c.sid == sid)
        .ok_or_else(ApiError::conference_ended)
}

/// The participant a path names (its call's TeXML id).
async fn one_participant(
    api: &Telnyx,
    account: &Account,
    conference: &str,
    file: &str,
) -> Result<(ConferenceSnapshot, ParticipantSnapshot), ApiError> {
    let c = live(api, account, conference.trim_end_matches(".json")).await?;
    let named = file.trim_end_matches(".json");
    let sid = CallId::from_control_id(named).map(CallId::sid);
    let p = (c.participants.iter())
        .find(|p| Some(&p.call) == sid.as_ref())
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No participant {named}.")))?;
    Ok((c, p))
}

/// `GET …/Conferences`: the account's rooms, newest first (`FriendlyName`, `Status`, paged).
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Path(account_path): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let q = texml_rest::query(query.as_deref());
    let mut found = stored(&api, &account).await?;
    if let Some(name) = rest_json::param(&q, "FriendlyName").filter(|n| !n.is_empty()) {
        found.retain(|c| room_name(&c.name) == name);
    }
    if let Some(status) = rest_json::param(&q, "Status").filter(|s| !s.is_empty()) {
        found.retain(|c| c.status == status);
    }
    let path = format!(
        "/v2/texml/Accounts/{}/Conferences.json",
        account_id(&account)
    );
    let page = texml_rest::page_of(
        &q,
        "conferences",
        &path,
        found,
        |c| c.sid.clone(),
        |c| conference(&account, c),
    )?;
    Ok(Json(page))
}

/// `GET …/Conferences/{sid}`.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let c = stored_one(&api, &account, &file).await?;
    Ok(Json(conference(&account, &c)))
}

/// `POST …/Conferences/{sid}`: `Status=completed` ends the room; `AnnounceUrl` (and
/// `AnnounceMethod`) plays into it.
pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let c = stored_one(&api, &account, &file).await?;
    let f = Fields::parse(&headers, &body)?;
    if let Some(url) = f.url("AnnounceUrl")? {
        let room = live(&api, &account, &c.sid).await?;
        let by = (room.participants.iter().min_by_key(|p| p.joined_at))
            .ok_or_else(ApiError::conference_ended)?;
        let method = f.method("AnnounceMethod")?.unwrap_or(HttpMethod::Post);
        (api.parts.markup).announce(&account, &c.sid, &by.call, false, (url, method));
    }
    match f.get("Status") {
        None | Some("") => {}
        Some("completed") => {
            (api.parts.control.end_conference(&c.sid))
                .await
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "Status",
                format!("'{other}' is not completed."),
            ));
        }
    }
    let c = stored_one(&api, &account, &file).await?;
    Ok(Json(conference(&account, &c)))
}

/// `GET …/Conferences/{sid}/Participants`: those in the room now.
pub(super) async fn participants(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, sid)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let sid = sid.trim_end_matches(".json");
    stored_one(&api, &account, sid).await?;
    let q = texml_rest::query(query.as_deref());
    // A room over has nobody in it.
    let people = match live(&api, &account, sid).await {
        Ok(c) => c.participants,
        Err(_) => Vec::new(),
    };
    let path = format!("{}/Participants.json", base(&account, sid));
    let page = texml_rest::page_of(
        &q,
        "participants",
        &path,
        people,
        |p| p.call.clone(),
        |p| participant(&account, sid, p),
    )?;
    Ok(Json(page))
}

/// `GET …/Participants/{call_sid}`.
pub(super) async fn participant_retrieve(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, conference, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let (c, p) = one_participant(&api, &account, &conference, &file).await?;
    Ok(Json(participant(&account, &c.sid, &p)))
}

/// `POST …/Participants/{call_sid}`: `Muted`, `Hold` (with `HoldUrl` music), `AnnounceUrl`
/// to the participant alone.
pub(super) async fn participant_update(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, conference, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let (c, mut p) = one_participant(&api, &account, &conference, &file).await?;
    let f = Fields::parse(&headers, &body)?;
    if let Some(name) = PARTICIPANT_UNSERVED.iter().find(|n| f.get(n).is_some()) {
        return Err(ApiError::invalid(
            name,
            format!("'{name}' is not carried out here."),
        ));
    }
    let (control, call) = (&api.parts.control, p.call.clone());
    let command = |c| {
        let call = call.clone();
        async move {
            (control.command(&call, c).await).map_err(|e| ApiError::unprocessable(e.to_string()))
        }
    };
    if f.get("Muted").is_some() {
        let muted = f.flag("Muted")?;
        command(CallCommand::Mute(muted)).await?;
        p.muted = muted;
    }
    if f.get("Hold").is_some() {
        let held = f.flag("Hold")?;
        let hold = if held {
            let music = match f.url("HoldUrl")? {
                Some(url) => Some((api.parts.prompts.url(&url, account.reach).await).map_err(
                    |e| ApiError::invalid("HoldUrl", format!("The audio cannot be played: {e}")),
                )?),
                None => None,
            };
            CallCommand::Hold(music)
        } else {
            CallCommand::Unhold
        };
        command(hold).await?;
        p.held = held;
    }
    if let Some(url) = f.url("AnnounceUrl")? {
        let method = f.method("AnnounceMethod")?.unwrap_or(HttpMethod::Post);
        (api.parts.markup).announce(&account, &c.sid, &p.call, true, (url, method));
    }
    Ok(Json(participant(&account, &c.sid, &p)))
}

/// `DELETE …/Participants/{call_sid}`: out of the room; its call goes on.
pub(super) async fn participant_delete(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, conference, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let (_, p) = one_participant(&api, &account, &conference, &file).await?;
    (api.parts
        .control
        .command(&p.call, CallCommand::ConferenceLeave))
    .await
    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Participant create's parameters (the SDK's `ParticipantParticipantsParams`) not carried
/// out here, each with the value that asks for nothing beyond the empty and false ones.
const PARTICIPANT_CREATE_UNSERVED: &[(&str, &str)] = &[
    ("CancelPlaybackOnDetectMessageEnd", ""),
    ("CancelPlaybackOnMachineDetection", ""),
    ("ConferenceRecordingStatusCallback", ""),
    ("ConferenceRecordingStatusCallbackEvent", ""),
    ("ConferenceRecordingStatusCallbackMethod", "POST"),
    ("ConferenceRecordingTimeout", "0"),
    ("ConferenceTrim", "do-not-trim"),
    ("CustomHeaders", ""),
    ("EarlyMedia", ""),
    ("MaxParticipants", ""),
    ("PreferredCodecs", ""),
    ("WaitMethod", "POST"),
];

/// `POST …/Conferences/{sid}/Participants`: calls `To` from `From` and, once answered, puts
/// the call in the conference by the `<Dial><Conference>` its options make ([`JoinOptions`],
/// as Twilio's create does). The call runs in the TeXML application `ApplicationSid`, else in
/// that of a participant already in the room.
pub(super) async fn participant_create(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, conference)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let f = Fields::parse(&headers, &body)?;
    f.refuse_unserved(PARTICIPANT_CREATE_UNSERVED)?;
    let sid = conference.trim_end_matches(".json");
    let c = live(&api, &account, sid).await?;
    let application = match f.get("ApplicationSid").filter(|a| !a.is_empty()) {
        Some(id) => id.to_owned(),
        None => (c.participants.iter())
            .find_map(|p| match api.parts.markup.dialect_of(&p.call)? {
                Dialect::Texml { connection_id } => Some(connection_id),
                Dialect::Twilio => None,
            })
            .ok_or_else(|| ApiError::missing("ApplicationSid"))?,
    };
    let application = (api.parts.connections.texml(&account.sid, &application))
        .ok_or_else(|| texml_calls::invalid_application(&application))?;
    let coach = match f.get("CallSidToCoach").filter(|s| !s.is_empty()) {
        Some(id) => Some(
            (CallId::from_control_id(id).map(CallId::sid))
                .filter(|sid| c.participants.iter().any(|p| &p.call == sid))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "CallSidToCoach",
                        format!("'{id}' is not a participant of the conference."),
                    )
                })?,
        ),
        None if f.flag("Coaching")? => return Err(ApiError::missing("CallSidToCoach")),
        None => None,
    };
    let options = JoinOptions::read(
        |k| f.get(k).map(str::to_owned),
        f.url("WaitUrl")?,
        f.url("ConferenceStatusCallback")?,
        f.words("ConferenceStatusCallbackEvent"),
        coach,
    )
    .map_err(|(name, message)| ApiError::invalid(name, message))?;
    let (to, target) = texml_calls::destination(&f).await?;
    let from = f.required("From")?.to_owned();
    let ring_timeout = match f.get("TimeoutSeconds") {
        Some(_) => texml_calls::ring_timeout(&f, "TimeoutSeconds")?,
        None => texml_calls::ring_timeout(&f, "Timeout")?,
    };
    let mut status_events = f.words("StatusCallbackEvent");
    if status_events.is_empty() {
        status_events.push("completed".into());
    }
    let app = VoiceApp {
        twiml: Some(options.document(room_name(&c.name))),
        status_callback: f.url("StatusCallback")?,
        status_callback_method: f
            .method("StatusCallbackMethod")?
            .unwrap_or(HttpMethod::Post),
        status_events,
        dialect: Dialect::Texml {
            connection_id: application.connection.id.clone(),
        },
        // Joined at once, the verdict to `AmdStatusCallback`.
        machine_detection: amd::parse_participant(|k| f.get(k).map(str::to_owned))
            .map_err(|(name, message)| ApiError::invalid(name, message))?,
        // Recorded and limited as a call's create would be.
        ..texml_calls::call_options(&f)?
    };
    let channels =
        super::outbound_voice_profiles::channels(&api, &account, &application.connection, &to)
            .await?;
    let placing = texml_calls::Placing {
        to: (to, target),
        from,
        display_name: None,
        ring_timeout,
        channels,
        credentials: f.sip_auth(),
    };
    let call = texml_calls::originate(&api, &account, placing, app).await?;
    let shown = options.snapshot(call, crate::infra::clock::now_ms());
    let mut created = participant(&account, &c.sid, &shown);
    created["status"] = json!("connecting");
    Ok((StatusCode::CREATED, Json(created)))
}
