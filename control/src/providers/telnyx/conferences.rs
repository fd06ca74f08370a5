//! `/v2/conferences`: Telnyx's conferences on the rooms every dialect shares
//! ([`account_conferences`]): a Telnyx call and a Twilio `<Conference>` naming the same room
//! meet, and the room's rules (start on enter, end on exit, hold, coaching) are the core's.
//! `create` opens a room from a call, `join`/`leave`/`mute`/`unmute`/`hold`/`unhold`/`update`
//! (the supervisor role: `monitor` is muted, `whisper` is a coach heard by its
//! `whisper_call_control_ids` alone, `barge` a participant again) and `end` act on it; the
//! `conference.*` webhooks come from the legs' events (see `leg`), and `send_dtmf` sends digits
//! to the named participants. `play` and `speak` play into the room, or to the named
//! participants alone (the core's announcements), and `stop` stops them; `record_*` record
//! the room's mix. `gather_using_audio` gathers one participant's digits after its prompt,
//! through the participant's leg.

use super::calls::leg_of;
use super::errors::ApiError;
use super::events::timestamp;
use super::leg::{Gone, Leg, LegHandle};
use super::page::Page;
use super::params::Params;
use super::recording::RecordParams;
use super::{Telnyx, authenticate};
use crate::call::ids::{CallId, sid_as_uuid, uuid_as_sid};
use crate::call::{
    Beep, CallCommand, CallError, ConferenceSnapshot, JoinSpec, ParticipantSnapshot, RecordChange,
    RoomAnnouncement,
};
use crate::infra::accounts::Account;
use crate::infra::clock::now_ms;
use crate::infra::store::ConferenceRow;
use crate::services::account_conferences::{self, room, room_name};
use crate::services::cluster::rooms::{Joined, Visiting};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A conference expires this long after it was created (Telnyx's four hours).
const LIFETIME_MS: i64 = 4 * 3600 * 1000;
/// The longest room name.
const MAX_NAME: usize = 255;
/// `send_dtmf` digits at most (as the call action's).
const MAX_DIGITS: usize = 128;

/// The conference's Telnyx id.
fn id_of(sid: &str) -> String {
    sid_as_uuid(sid, "CF").unwrap_or_default()
}

/// A call's Telnyx ids from its SID: control id, leg id.
fn ids(call: &str) -> (Option<String>, Option<String>) {
    let id = CallId::from_sid(call);
    (id.map(CallId::control_id), id.map(CallId::uuid))
}

/// `status`: `init`, `in_progress` or `completed` (see [`conference`]).
fn status(c: &ConferenceRow, live: &[ConferenceSnapshot]) -> String {
    let starting = (live.iter().find(|l| l.sid == c.sid))
        .is_some_and(|l| l.started || l.participants.iter().any(|p| p.start_on_enter));
    match c.status.as_str() {
        "init" if starting => "in_progress".to_owned(),
        other => other.replace('-', "_"),
    }
}

/// A conference resource; `live` are the account's conferences in progress. The core starts
/// a room once two are in; Telnyx's is in progress from its creation by a participant who
/// starts it (`start_conference_on_create`, `start_conference_on_enter`), alone or not.
/// `legs` holds those of the rows' `ended_by` calls that are still known (see [`enders`]).
fn conference(
    c: &ConferenceRow,
    live: &[ConferenceSnapshot],
    legs: &HashMap<String, Arc<LegHandle>>,
) -> Value {
    let status = status(c, live);
    let ended_by = c.ended_by.as_deref().map(|call| {
        let session = legs.get(call).map(|leg| leg.view().context.session.clone());
        json!({
            "call_control_id": ids(call).0,
            "call_session_id": session.as_deref().and_then(CallId::from_sid).map(CallId::session_uuid),
        })
    });
    json!({
        "record_type": "conference",
        "id": id_of(&c.sid),
        "name": room_name(&c.name),
        "created_at": timestamp(c.created_at),
        "updated_at": timestamp(c.updated_at),
        "expires_at": timestamp(c.created_at.saturating_add(LIFETIME_MS)),
        "region": "US",
        "status": status,
        "end_reason": c.reason_ended.as_deref().map(super::events::end_reason),
        "ended_by": ended_by,
    })
}

fn participant(c: &ConferenceSnapshot, p: &ParticipantSnapshot) -> Value {
    let (control_id, leg_id) = ids(&p.call);
    let whisper: Vec<String> = (p.coaching.as_deref())
        .and_then(|c| ids(c).0)
        .into_iter()
        .collect();
    json!({
        "record_type": "participant",
        "id": leg_id,
        "call_control_id": control_id,
        "call_leg_id": leg_id,
        "conference": {"id": id_of(&c.sid), "name": room_name(&c.name)},
        "created_at": timestamp(p.joined_at),
        "updated_at": timestamp(p.joined_at),
        "end_conference_on_exit": p.end_on_exit,
        "soft_end_conference_on_exit": false,
        "muted": p.muted,
        "on_hold": p.held,
        "status": "joined",
        "whisper_call_control_ids": whisper,
    })
}

async fn stored(api: &Telnyx, account: &Account) -> Result<Vec<ConferenceRow>, ApiError> {
    account_conferences::stored(&api.parts.store, &api.parts.writer, &account.sid)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn live(api: &Telnyx, account: &Account) -> Result<Vec<ConferenceSnapshot>, ApiError> {
    account_conferences::in_progress(&api.parts.control, &account.sid)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The account's conference with Telnyx id `id`, as stored.
async fn find(api: &Telnyx, account: &Account, id: &str) -> Result<ConferenceRow, ApiError> {
    let not_found = || ApiError::not_found(format!("No conference {id}."));
    let sid = uuid_as_sid(id, "CF").ok_or_else(not_found)?;
    let (store, writer) = (&api.parts.store, &api.parts.writer);
    (account_conferences::stored_one(store, writer, &account.sid, &sid))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(not_found)
}

/// The account's conference `id` in progress (its participants with it).
async fn find_live(
    api: &Telnyx,
    account: &Account,
    id: &str,
) -> Result<ConferenceSnapshot, ApiError> {
    let sid = uuid_as_sid(id, "CF");
    let found = (live(api, account).await?)
        .into_iter()
        .find(|c| Some(&c.sid) == sid.as_ref());
    match found {
        Some(c) => Ok(c),
        None => {
            find(api, account, id).await?;
            Err(ApiError::conference_ended())
        }
    }
}

/// `beep_enabled`.
fn beep(p: &Params) -> Result<Beep, ApiError> {
    Ok(match p.str("beep_enabled")? {
        None | Some("never") => Beep::Off,
        Some("always") => Beep::Both,
        Some("on_enter") => Beep::OnEnter,
        Some("on_exit") => Beep::OnExit,
        Some(other) => {
            return Err(ApiError::invalid(
                "beep_enabled",
                format!("'{other}' is not one of always, never, on_enter, on_exit."),
            ));
        }
    })
}

/// A call control id of the account's as the core's call SID (a leg of this dialect, or any
/// call of the account's in the room).
async fn call_of(api: &Telnyx, account: &Account, control_id: &str) -> Result<String, ApiError> {
    if let Ok(leg) = leg_of(api, account, control_id).await {
        return Ok(leg.call.clone());
    }
    CallId::from_control_id(control_id)
        .map(|id| id.sid())
        .ok_or_else(ApiError::invalid_call)
}

/// Seats `leg` in the account's room `name` as `spec` asks (the room's home claimed as
/// every dialect's joins claim it). In a room another node holds, the leg sits through a
/// visit bridged with it; its reports come from the room's home.
async fn seat(
    api: &Telnyx,
    leg: &mut Leg,
    spec: JoinSpec,
    wait_url: Option<&str>,
) -> Result<(), ApiError> {
    let from = leg.state.context.from.clone();
    let reports = super::conference_visits::reports(leg);
    let visiting = Visiting {
        account: &leg.account,
        from: &from,
        wait_url,
        reports: Some(&reports),
    };
    match api.parts.markup.rooms.join(&leg.call, spec, visiting).await {
        Ok(Joined::Here) => Ok(()),
        Ok(Joined::There { conference, .. }) => {
            leg.state.visiting = Some(conference.clone());
            super::conference_visits::catch_up(api, &conference).await;
            Ok(())
        }
        Err(CallError::NotAnswered) => Err(ApiError::not_answered()),
        Err(CallError::NoRoute(_)) => Err(ApiError::unprocessable(
            "The conference's node did not take the call.".into(),
        )),
        Err(CallError::BadArgument(why)) => Err(ApiError::unprocessable(why)),
        Err(e) => Err(ApiError::unprocessable(e.to_string())),
    }
}

/// `supervisor_role` and `whisper_call_control_ids`: whether the party is muted, and whom
/// it coaches.
async fn supervisor(
    api: &Telnyx,
    account: &Account,
    p: &Params,
) -> Result<Option<(bool, Option<String>)>, ApiError> {
    let whisper = p.strings("whisper_call_control_ids")?;
    let role = match p.str("supervisor_role")? {
        None => return Ok(None),
        Some(r) => r,
    };
    Ok(Some(match role {
        "barge" | "none" => (false, None),
        "monitor" => (true, None),
        // Without anyone to whisper to, a whisperer only listens (Telnyx's rule).
        "whisper" => match whisper.as_slice() {
            [] => (true, None),
            [one] => (false, Some(call_of(api, account, one).await?)),
            _ => {
                return Err(ApiError::invalid(
                    "whisper_call_control_ids",
                    "A supervisor whispers to one participant here.".into(),
                ));
            }
        },
        other => {
            return Err(ApiError::invalid(
                "supervisor_role",
                format!("'{other}' is not one of barge, monitor, none, whisper."),
            ));
        }
    }))
}

/// `POST /v2/conferences`: opens the room `name` with the call in it.
pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    p.refuse_unserved(&[
        "duration_minutes",
        "hold_media_name",
        "max_participants",
        "region",
        "comfort_noise",
    ])?;
    let leg = leg_of(&api, &account, p.required("call_control_id")?).await?;
    let name = p.required("name")?;
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::invalid(
            "name",
            format!("A name is 1 to {MAX_NAME} bytes."),
        ));
    }
    let room = room(&account.sid, name);
    if live(&api, &account).await?.iter().any(|c| c.name == room)
        || in_progress_elsewhere(&api, &account, &room).await?
    {
        return Err(ApiError::param(
            "90033",
            "Conference name conflict",
            "name",
            format!("A conference named '{name}' is in progress."),
        ));
    }
    let started = p.bool("start_conference_on_create")?.unwrap_or(true);
    let hold_url = p.url("hold_audio_url")?.filter(|_| !started);
    let wait_music = match &hold_url {
        Some(url) => Some(
            api.parts
                .prompts
                .url(url, account.reach)
                .await
                .map_err(|e| {
                    ApiError::invalid("hold_audio_url", format!("The audio cannot be played: {e}"))
                })?,
        ),
        None => None,
    };
    let client_state = p.client_state()?;
    let spec = JoinSpec {
        name: room.clone(),
        muted: false,
        start_on_enter: started,
        end_on_exit: false,
        wait_music,
        record: None,
        trim_silence: false,
        beep: beep(&p)?,
        label: None,
        sid: None,
        shown_as: None,
        coach: None,
    };
    // Seated by the leg's task: the join it reports is read after `creating_conference`.
    let task_api = api.clone();
    leg.run(move |leg| {
        Box::pin(async move {
            if let Some(state) = client_state {
                leg.state.context.client_state = Some(state);
            }
            leg.state.creating_conference = true;
            let seated = seat(&task_api, leg, spec, hold_url.as_deref()).await;
            if seated.is_err() {
                leg.state.creating_conference = false;
            }
            seated
        })
    })
    .await
    .map_err(|Gone| ApiError::call_ended())??;
    let created = (stored(&api, &account).await?)
        .into_iter()
        .find(|c| c.name == room)
        .ok_or_else(|| ApiError::internal("the conference was not stored".into()))?;
    let live = live(&api, &account).await?;
    let legs = enders(&api, std::slice::from_ref(&created)).await;
    Ok(Json(json!({"data": conference(&created, &live, &legs)})))
}

/// The legs of the calls that ended `rows`, those still known (for their session ids).
async fn enders(api: &Telnyx, rows: &[ConferenceRow]) -> HashMap<String, Arc<LegHandle>> {
    api.legs
        .get_all(rows.iter().filter_map(|c| c.ended_by.clone()).collect())
        .await
}

/// Whether the account's room `room` is in progress on another node.
async fn in_progress_elsewhere(
    api: &Telnyx,
    account: &Account,
    room: &str,
) -> Result<bool, ApiError> {
    for row in stored(api, account).await? {
        if row.name == room
            && row.status != "completed"
            && (api.parts.store.room_elsewhere(&row.sid, now_ms()).await)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `GET /v2/conferences` (`filter[name]`, `filter[status]`), newest first.
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let name = query.get("filter[name]");
    let wanted = query.get("filter[status]");
    let live = live(&api, &account).await?;
    let rows: Vec<ConferenceRow> = (stored(&api, &account).await?)
        .into_iter()
        .filter(|c| name.is_none_or(|n| room_name(&c.name) == n))
        .filter(|c| wanted.is_none_or(|s| &status(c, &live) == s))
        .collect();
    let legs = enders(&api, &rows).await;
    Ok(Json(page.of(&rows, |c| conference(c, &live, &legs))))
}

/// `GET /v2/conferences/{id}`.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let c = find(&api, &account, &id).await?;
    let live = live(&api, &account).await?;
    let legs = enders(&api, std::slice::from_ref(&c)).await;
    Ok(Json(json!({"data": conference(&c, &live, &legs)})))
}

/// `GET /v2/conferences/{id}/participants`: those in it now.
pub(super) async fn participants(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let c = match find_live(&api, &account, &id).await {
        Ok(c) => c,
        // Over: nobody is in it.
        Err(e) if e == ApiError::conference_ended() => {
            return Ok(Json(page.of::<Value>(&[], Clone::clone)));
        }
        Err(e) => return Err(e),
    };
    let muted = query.get("filter[muted]").map(|m| m == "true");
    let held = query.get("filter[on_hold]").map(|h| h == "true");
    let rows: Vec<&ParticipantSnapshot> = (c.participants.iter())
        .filter(|p| muted.is_none_or(|m| p.muted == m))
        .filter(|p| held.is_none_or(|h| p.held == h))
        .collect();
    Ok(Json(page.of(&rows, |p| participant(&c, p))))
}

/// The room a `join` of conference `id` seats the call in, and whether another node holds
/// it (the call then visits it there).
async fn joinable(api: &Telnyx, account: &Account, id: &str) -> Result<(String, bool), ApiError> {
    let sid = uuid_as_sid(id, "CF");
    let here = (live(api, account).await?)
        .into_iter()
        .find(|c| Some(&c.sid) == sid.as_ref());
    if let Some(c) = here {
        return Ok((c.name, false));
    }
    let row = find(api, account, id).await?;
    let elsewhere = row.status != "completed"
        && (api.parts.store.room_elsewhere(&row.sid, now_ms()).await)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .is_some();
    if !elsewhere {
        return Err(ApiError::conference_ended());
    }
    Ok((row.name, true))
}

/// `join`: seats the call in room `name`, here or (`elsewhere`) on the node holding it.
async fn join(
    api: &Arc<Telnyx>,
    account: &Account,
    (name, elsewhere): (String, bool),
    p: &Params,
) -> Result<(), ApiError> {
    p.refuse_unserved(&["hold_media_name", "region", "soft_end_conference_on_exit"])?;
    let leg = leg_of(api, account, p.required("call_control_id")?).await?;
    let command_id = p.command_id()?;
    let client_state = p.client_state()?;
    let (monitor, coach) = supervisor(api, account, p).await?.unwrap_or((false, None));
    let spec = JoinSpec {
        name,
        muted: p.bool("mute")?.unwrap_or(false) || monitor,
        start_on_enter: p.bool("start_conference_on_enter")?.unwrap_or(true),
        end_on_exit: p.bool("end_conference_on_exit")?.unwrap_or(false),
        wait_music: None,
        record: None,
        trim_silence: false,
        beep: beep(p)?,
        label: None,
        sid: None,
        shown_as: None,
        coach,
    };
    let hold = match p.bool("hold")? {
        // The seat's hold is the room's home's to give: asked of it, as any participant's.
        Some(true) if elsewhere => {
            return Err(ApiError::invalid(
                "hold",
                "The conference is held by another node: join, then put the participant on hold with the conference's `hold` action.".into(),
            ));
        }
        Some(true) => Some(hold_music(api, account, p, "hold_audio_url").await?),
        _ => None,
    };
    // In the leg's task: the leg's command ids and `client_state` are its own.
    let task_api = api.clone();
    let joined = leg.run(move |leg| {
        Box::pin(async move {
            let api = &task_api;
            if command_id.as_ref().is_some_and(|id| leg.ran(id)) {
                return Ok(());
            }
            if let Some(state) = client_state {
                leg.state.context.client_state = Some(state);
            }
            seat(api, leg, spec, None).await?;
            if let Some(music) = hold {
                let hold = CallCommand::Hold(music);
                (api.parts.control.command(&leg.call, hold).await)
                    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            }
            if let Some(id) = &command_id {
                leg.record_command(id);
            }
            Ok(())
        })
    });
    joined.await.map_err(|Gone| ApiError::call_ended())?
}

/// `POST /v2/conferences/{id}/actions/{action}`.
pub(super) async fn act(
    State(api): State<Arc<Telnyx>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    // Served on the joining call's node (see `cluster::forward`), wherever the room is.
    if action == "join" {
        let room = joinable(&api, &account, &id).await?;
        join(&api, &account, room, &p).await?;
        return Ok(ok());
    }
    let c = find_live(&api, &account, &id).await?;
    let command = |call: String, command: CallCommand| {
        let control = api.parts.control.clone();
        async move {
            control
                .command(&call, command)
                .await
                .map_err(|e| ApiError::unprocessable(e.to_string()))
        }
    };
    // The participants `call_control_ids` names, or all of them when it names none.
    let named = async |p: &Params| -> Result<Vec<String>, ApiError> {
        let asked = p.strings("call_control_ids")?;
        if asked.is_empty() {
            return Ok(c.participants.iter().map(|x| x.call.clone()).collect());
        }
        let mut calls = Vec::with_capacity(asked.len());
        for id in &asked {
            let call = call_of(&api, &account, id).await?;
            if !c.participants.iter().any(|x| x.call == call) {
                return Err(ApiError::invalid(
                    "call_control_ids",
                    format!("{id} is not in the conference."),
                ));
            }
            calls.push(call);
        }
        Ok(calls)
    };
    match action.as_str() {
        "leave" => {
            p.refuse_unserved(&["beep_enabled"])?;
            let call = call_of(&api, &account, p.required("call_control_id")?).await?;
            command(call, CallCommand::ConferenceLeave).await?;
        }
        "mute" | "unmute" => {
            for call in named(&p).await? {
                command(call, CallCommand::Mute(action == "mute")).await?;
            }
        }
        "hold" => {
            p.refuse_unserved(&["media_name"])?;
            let music = hold_music(&api, &account, &p, "audio_url").await?;
            for call in named(&p).await? {
                command(call, CallCommand::Hold(music.clone())).await?;
            }
        }
        "unhold" => {
            for call in named(&p).await? {
                command(call, CallCommand::Unhold).await?;
            }
        }
        "update" => {
            let call = call_of(&api, &account, p.required("call_control_id")?).await?;
            let (muted, coach) = supervisor(&api, &account, &p)
                .await?
                .ok_or_else(|| ApiError::missing("supervisor_role"))?;
            command(call.clone(), CallCommand::ConferenceCoach(coach)).await?;
            command(call, CallCommand::Mute(muted)).await?;
        }
        "send_dtmf" => {
            p.refuse_unserved(&["duration_millis"])?;
            let digits = p.required("digits")?;
            if digits.len() > MAX_DIGITS
                || !digits.chars().all(|c| "0123456789ABCDabcd*#wW".contains(c))
            {
                return Err(ApiError::invalid(
                    "digits",
                    format!(
                        "'{digits}' holds something other than DTMF digits (at most {MAX_DIGITS})."
                    ),
                ));
            }
            for call in named(&p).await? {
                command(call, CallCommand::SendDigits(digits.to_owned())).await?;
            }
        }
        "play" | "speak" => {
            let (clip, tag, loops) = if action == "play" {
                if p.has("media_name") {
                    return Err(ApiError::invalid(
                        "media_name",
                        "'media_name' is not served here (no media storage); give audio_url".into(),
                    ));
                }
                let loops = p.loops()?;
                let url = p
                    .url("audio_url")?
                    .ok_or_else(|| ApiError::missing("audio_url"))?;
                let clip = (api.parts.prompts.url(&url, account.reach))
                    .await
                    .map_err(|e| {
                        ApiError::invalid("audio_url", format!("The audio cannot be played: {e}"))
                    })?;
                (clip, format!("playback {url}"), loops)
            } else {
                p.refuse_unserved(&["voice_settings"])?;
                let speak = super::commands::Speak::of(&p, "payload")?
                    .ok_or_else(|| ApiError::missing("payload"))?;
                let clip = (api.parts.prompts)
                    .say_whole(&speak.said, Some(speak.voice), speak.language, &account.sid)
                    .await
                    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
                (clip, "speak".to_owned(), 1)
            };
            let command_id = p.command_id()?;
            if let Some(id) = &command_id
                && ran(&api, &c, id).await
            {
                return Ok(ok());
            }
            // To the room through a participant (whose app hears of it), or to each named
            // participant alone.
            let alone = !p.strings("call_control_ids")?.is_empty();
            let to = if alone {
                named(&p).await?
            } else {
                vec![voice_of(&api, &c).await?]
            };
            for call in &to {
                let a = RoomAnnouncement {
                    clip: clip.clone(),
                    loops,
                    alone,
                    tag: tag.clone(),
                };
                command(call.clone(), CallCommand::ConferenceAnnounce(a)).await?;
            }
            if let Some(id) = &command_id {
                api.legs.conference_command(&c.sid, id).await;
            }
        }
        "record_start" => {
            let command_id = p.command_id()?;
            if let Some(id) = &command_id
                && ran(&api, &c, id).await
            {
                return Ok(ok());
            }
            let params = RecordParams::of_conference(&p)?;
            // The participant that reports it: a Telnyx call of the account's.
            let by = voice_of(&api, &c).await?;
            let leg = (api.legs.get(&by).await).ok_or_else(|| {
                ApiError::unprocessable(
                    "No participant of the conference is a call of this API to report the recording to."
                        .into(),
                )
            })?;
            if params.beeps() {
                let beep = RoomAnnouncement {
                    clip: switchboard_media::tone::beep().into(),
                    loops: 1,
                    alone: false,
                    tag: "beep".into(),
                };
                command(by.clone(), CallCommand::ConferenceAnnounce(beep)).await?;
            }
            super::recording::start_conference(&api, &leg, params, &c.sid).await?;
            if let Some(id) = &command_id {
                api.legs.conference_command(&c.sid, id).await;
            }
        }
        "record_stop" | "record_pause" | "record_resume" => {
            if let Some(id) = p.command_id()?
                && ran(&api, &c, &id).await
            {
                return Ok(ok());
            }
            let Some(running) = &c.recording else {
                return Err(ApiError::unprocessable(
                    "The conference is not being recorded.".into(),
                ));
            };
            if let Some(id) = p.str("recording_id")?
                && uuid_as_sid(id, "RE").as_ref() != Some(running)
            {
                return Err(ApiError::invalid(
                    "recording_id",
                    format!("'{id}' is not the conference's running recording."),
                ));
            }
            let change = match action.as_str() {
                "record_stop" => RecordChange::Stop,
                "record_pause" => {
                    RecordChange::Pause(switchboard_media::record::PauseBehavior::Skip)
                }
                _ => RecordChange::Resume,
            };
            let by = voice_of(&api, &c).await?;
            command(by.clone(), CallCommand::ConferenceRecording(change)).await?;
            if let Some(id) = p.command_id()? {
                api.legs.conference_command(&c.sid, &id).await;
            }
        }
        "stop" => {
            if p.strings("call_control_ids")?.is_empty() {
                let by = voice_of(&api, &c).await?;
                command(by, CallCommand::ConferenceStopAnnouncements(false)).await?;
            } else {
                for call in named(&p).await? {
                    command(call, CallCommand::ConferenceStopAnnouncements(true)).await?;
                }
            }
        }
        "gather_using_audio" => {
            // One participant hears the prompt (in place of the room, while it plays) and is
            // gathered from as its call would be: `call.playback.*`, `call.dtmf.received` and
            // `call.gather.ended` on its leg. Digits stop the prompt, as on a call.
            if p.bool("stop_playback_on_dtmf")? == Some(false) {
                return Err(ApiError::invalid(
                    "stop_playback_on_dtmf",
                    "a prompt that plays on over the caller's digits is not served here".into(),
                ));
            }
            let leg = leg_of(&api, &account, p.required("call_control_id")?).await?;
            if !c.participants.iter().any(|x| x.call == leg.call) {
                return Err(ApiError::invalid(
                    "call_control_id",
                    "The call is not in the conference.".into(),
                ));
            }
            let action = action.clone();
            return super::actions::on_leg(&api, &account, &leg, action, p).await;
        }
        "end" => {
            (api.parts.control)
                .end_conference(&c.sid)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        other => {
            return Err(ApiError::not_found(format!(
                "The conference action '{other}' is not served here."
            )));
        }
    }
    Ok(ok())
}

/// The participant a room-wide announcement goes through, whose app hears of it: the
/// earliest in the room that is a Telnyx call of the account's, else the earliest.
async fn voice_of(api: &Telnyx, c: &ConferenceSnapshot) -> Result<String, ApiError> {
    let mut by_joining: Vec<&ParticipantSnapshot> = c.participants.iter().collect();
    by_joining.sort_by_key(|p| p.joined_at);
    for p in &by_joining {
        if api.legs.get(&p.call).await.is_some() {
            return Ok(p.call.clone());
        }
    }
    (by_joining.first())
        .map(|p| p.call.clone())
        .ok_or_else(ApiError::conference_ended)
}

/// Whether a command with this `command_id` already ran on the conference.
async fn ran(api: &Telnyx, c: &ConferenceSnapshot, id: &str) -> bool {
    api.legs.conference_ran(&c.sid, id).await
}

fn ok() -> Json<Value> {
    Json(json!({"data": {"result": "ok"}}))
}

/// The hold music `key` names (silence without).
async fn hold_music(
    api: &Telnyx,
    account: &Account,
    p: &Params,
    key: &str,
) -> Result<Option<switchboard_media::Clip>, ApiError> {
    match p.url(key)? {
        Some(url) => Ok(Some(
            api.parts
                .prompts
                .url(&url, account.reach)
                .await
                .map_err(|e| ApiError::invalid(key, format!("The audio cannot be played: {e}")))?,
        )),
        None => Ok(None),
    }
}
