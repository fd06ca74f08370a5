//! `POST /v2/calls/{call_control_id}/actions/{action}` (and `PUT …/client_state_update`):
//! each action is one or two call-core commands. Every action takes `client_state` (it
//! replaces the leg's, for the webhooks that follow) and `command_id` (a repeat on the same
//! leg answers as the first did and runs nothing).

use super::calls::leg_of;
use super::commands::{carry_out, command, fetch, inline_audio, speech};
use super::errors::ApiError;
use super::forking;
use super::leg::plan::{self, Clip};
use super::leg::{Gone, Leg, LegHandle, Play};
use super::params::Params;
use super::params::record::RecordParams;
use super::queueing;
use super::recording;
use super::{Telnyx, authenticate};
use crate::call::{CallCommand, RecordingOrigin};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard_media::Prompt;

fn ok() -> Json<Value> {
    Json(json!({"data": {"result": "ok"}}))
}

/// An action: a POST, but `client_state_update`, which is a PUT in both SDK generations.
/// What takes time and needs no leg (audio fetched, speech rendered) is done here; the rest
/// runs in the leg's task, after the actions posted before it.
pub(super) async fn run(
    State(api): State<Arc<Telnyx>>,
    Path((call, action)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?.clone();
    let leg = leg_of(&api, &account, &call).await?;
    let p = Params::parse(&body)?;
    let put = method == Method::PUT;
    if put != (action == "client_state_update") {
        return Err(ApiError::not_found(format!(
            "No action {action} with this method."
        )));
    }
    on_leg(&api, &account, &leg, action, p).await
}

/// `action` on `leg`, as the call's action endpoint runs it (a conference's
/// `gather_using_audio` runs the named participant's here too).
pub(super) async fn on_leg(
    api: &Arc<Telnyx>,
    account: &crate::infra::accounts::Account,
    leg: &LegHandle,
    action: String,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let command_id = p.command_id()?;
    let prepared = prepare(api, account, &action, &p).await?;
    let (task_api, id) = (api.clone(), command_id.clone());
    let ran = leg
        .run(move |leg| Box::pin(perform(task_api, leg, action, p, id, prepared)))
        .await;
    match ran {
        Ok(answer) => answer,
        // Its task is gone with its call; a repeat answers as the first did (a retried
        // hangup).
        Err(Gone) if command_id.is_some_and(|id| leg.view().last_commands.contains(&id)) => {
            Ok(ok())
        }
        Err(Gone) => Err(ApiError::call_ended()),
    }
}

/// An action on the leg, in its task.
async fn perform(
    api: Arc<Telnyx>,
    leg: &mut Leg,
    action: String,
    p: Params,
    command_id: Option<String>,
    prepared: Prepared,
) -> Result<Json<Value>, ApiError> {
    let (api, action) = (&api, action.as_str());
    let client_state = p.client_state()?;
    let first = !std::mem::replace(&mut leg.state.commanded, true);
    if first {
        // Whatever it is, the app's first action stands a first-command wait down.
        let _ = (api.parts.control)
            .command(&leg.call, CallCommand::ExpectCommand(None))
            .await;
    }
    // A repeat answers as the first did, even once the call is over (a retried hangup).
    if command_id.as_ref().is_some_and(|id| leg.ran(id)) {
        return Ok(ok());
    }
    if leg.state.ended_at.is_some() {
        return Err(ApiError::call_ended());
    }
    let mut answer = ok();
    if action == "client_state_update" {
        let state = client_state.ok_or_else(|| ApiError::missing("client_state"))?;
        leg.state.context.client_state = Some(state);
    } else {
        if let Some(state) = client_state {
            leg.state.context.client_state = Some(state);
        }
        if action == "conversation_relay_start" {
            let id = super::relaying::start(api, leg, &p).await?;
            answer = Json(json!({"data": {"result": "ok", "conversation_relay_id": id}}));
        } else {
            let Prepared { play, gather } = prepared;
            match plan::plan(&mut leg.state, action, &p, play, gather)? {
                Some(plan) => carry_out(api, leg, plan).await?,
                None => act(api, leg, action, &p).await?,
            }
        }
    }
    if let Some(id) = &command_id {
        leg.record_command(id);
    }
    Ok(answer)
}

/// What an action has ready before it reaches the leg: the audio it plays.
#[derive(Default)]
pub(super) struct Prepared {
    /// `speak`, `playback_start`: what plays, how often.
    play: Option<(Prompt, u32, Play)>,
    /// `gather_using_*`: the prompt, and what plays after invalid input.
    gather: Option<(Clip, Option<Clip>)>,
}

/// Checks the parameters of an action and, for one that plays audio, fetches or renders it
/// before the action reaches the leg's task (whose events would wait for it otherwise).
async fn prepare(
    api: &Telnyx,
    account: &crate::infra::accounts::Account,
    action: &str,
    p: &Params,
) -> Result<Prepared, ApiError> {
    let mut prepared = Prepared::default();
    if let Some((_, keys)) = UNSERVED.iter().find(|(a, _)| *a == action) {
        p.refuse_unserved(keys)?;
    }
    let account = account.sid.as_str();
    match action {
        "speak" => {
            let (clip, kind) = speech(api, account, p, "payload")
                .await?
                .ok_or_else(|| ApiError::missing("payload"))?;
            prepared.play = Some((clip, 1, kind));
        }
        "playback_start" => {
            if p.has("media_name") {
                return Err(ApiError::invalid(
                    "media_name",
                    "'media_name' is not served here (no media storage); give audio_url or playback_content".into(),
                ));
            }
            if p.bool("overlay")? == Some(true) {
                return Err(ApiError::invalid(
                    "overlay",
                    "overlaid playback is not served here".into(),
                ));
            }
            let loops = p.loops()?;
            // The audio inline (base64 MP3 or WAV: its events name no URL) or at a URL.
            let (clip, kind) = match (p.str("playback_content")?, p.url("audio_url")?) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::invalid(
                        "playback_content",
                        "Give either 'audio_url' or 'playback_content', not both.".into(),
                    ));
                }
                (Some(content), None) => {
                    (inline_audio(api, content).await?, Play::Audio { url: None })
                }
                (None, Some(url)) => fetch(api, account, &url).await?,
                (None, None) => return Err(ApiError::missing("audio_url")),
            };
            prepared.play = Some((clip, loops, kind));
        }
        "gather_using_speak" => {
            let prompt = speech(api, account, p, "payload")
                .await?
                .ok_or_else(|| ApiError::missing("payload"))?;
            let invalid = speech(api, account, p, "invalid_payload").await?;
            prepared.gather = Some((prompt, invalid));
        }
        "gather_using_audio" => {
            for unsupported in ["media_name", "invalid_media_name"] {
                if p.has(unsupported) {
                    return Err(ApiError::invalid(
                        unsupported,
                        format!("'{unsupported}' is not served here; give a URL"),
                    ));
                }
            }
            let url = p
                .url("audio_url")?
                .ok_or_else(|| ApiError::missing("audio_url"))?;
            let prompt = fetch(api, account, &url).await?;
            let invalid = match p.url("invalid_audio_url")? {
                Some(url) => Some(fetch(api, account, &url).await?),
                None => None,
            };
            prepared.gather = Some((prompt, invalid));
        }
        _ => {}
    }
    Ok(prepared)
}

/// Parameters Telnyx's SDK (4.189.0, its `Action*Params` types) sends with an action that
/// are not carried out here: refused with 10032 naming the parameter, not dropped.
const UNSERVED: &[(&str, &[&str])] = &[
    (
        "answer",
        &[
            "deepfake_detection",
            "preferred_codecs",
            "sound_modifications",
            "webhook_retries_policies",
            "webhook_urls",
            "webhook_urls_method",
        ],
    ),
    ("speak", &["service_level", "stop", "target_legs"]),
    (
        "playback_start",
        &["audio_type", "cache_audio", "stop", "target_legs"],
    ),
    ("gather_using_speak", &["service_level"]),
    (
        "record_start",
        &[
            "transcription_max_speaker_count",
            "transcription_min_speaker_count",
            "transcription_profanity_filter",
            "transcription_speaker_diarization",
        ],
    ),
    (
        "transfer",
        &[
            "diversion",
            "early_media",
            "media_encryption",
            "mute_dtmf",
            "preferred_codecs",
            "privacy",
            "route_to_mobile",
            "send_digits_on_answer",
            "sip_region",
            "sip_transport_protocol",
            "sound_modifications",
            "webhook_retries_policies",
            "webhook_urls",
            "webhook_urls_method",
        ],
    ),
    (
        "bridge",
        &[
            "hold_after_unbridge",
            "mute_dtmf",
            "play_ringtone",
            "prevent_double_bridge",
            "ringtone",
            "video_room_context",
        ],
    ),
    (
        "streaming_start",
        &["dialogflow_config", "enable_dialogflow"],
    ),
];

/// An action that reaches beyond the leg (not planned by [`plan`]).
async fn act(api: &Arc<Telnyx>, leg: &mut Leg, action: &str, p: &Params) -> Result<(), ApiError> {
    match action {
        "bridge" => bridge(api, leg, p).await,
        "transfer" => transfer(api, leg, p).await,
        "answer" => {
            if leg.state.context.direction != "incoming" {
                return Err(ApiError::unprocessable(
                    "Only an incoming call can be answered; this one was dialed.".into(),
                ));
            }
            let stream = p.stream()?;
            if let Some(url) = p.webhook_url()? {
                leg.state.webhook_url = url;
            }
            let record = RecordParams::of_call(p)?;
            let headers = p.all_headers()?;
            let silence_when_idle = p.bool("send_silence_when_idle")?.unwrap_or(false);
            let transcription = super::transcribing::on_answer(p, &api.parts.speech, &leg.account)?;
            let relay = super::params::relay::on_answer(p, &api.parts.speech, &leg.account)?;
            {
                let s = &mut leg.state;
                s.on_answer.transcription = transcription;
                s.on_answer.relay = relay;
                s.on_answer.stream = stream;
                s.on_answer.record = record;
                s.on_answer.silence_when_idle = silence_when_idle;
            }
            command(api, &leg.call, CallCommand::AnswerWith(headers)).await
        }
        "record_start" => {
            let params = RecordParams::of_action(p, &api.parts.speech, &leg.account)?;
            recording::start(api, leg, params, RecordingOrigin::Api)
                .await
                .map(drop)
        }
        "enqueue" => queueing::enqueue(api, leg, p).await,
        "leave_queue" => queueing::leave(api, leg).await,
        "fork_start" => forking::start(api, leg, p).await,
        "transcription_start" => super::transcribing::start(api, leg, p).await,
        "transcription_stop" => super::transcribing::stop(api, leg).await,
        "conversation_relay_stop" => super::relaying::stop(leg),
        "fork_stop" => forking::stop(api, leg, p).await,
        "record_stop" => recording::change(api, leg, p, CallCommand::RecordStop).await,
        // Telnyx's paused time is left out of the file.
        "record_pause" => {
            let pause = CallCommand::RecordPause(switchboard_media::record::PauseBehavior::Skip);
            recording::change(api, leg, p, pause).await
        }
        "record_resume" => recording::change(api, leg, p, CallCommand::RecordResume).await,
        "streaming_start" => {
            let stream = p.stream()?.ok_or_else(|| ApiError::missing("stream_url"))?;
            if !leg.answered(api).await {
                return Err(ApiError::not_answered());
            }
            super::streaming::start(api, leg.handle(), stream)
                .map(drop)
                .map_err(|e| {
                    ApiError::param(
                        "90045",
                        "Media Streaming is used",
                        "stream_url",
                        e.to_string(),
                    )
                })
        }
        "streaming_stop" => {
            let running = api.parts.streams.of_call(&leg.call);
            match p.str("stream_id")? {
                Some(id) => {
                    api.parts.streams.stop(&leg.call, id).ok_or_else(|| {
                        ApiError::invalid("stream_id", format!("No stream {id} on this call."))
                    })?;
                }
                None => {
                    for s in running {
                        api.parts.streams.stop(&leg.call, &s.id);
                    }
                }
            }
            Ok(())
        }
        other => Err(ApiError::not_found(format!(
            "The action {other} is not served by Switchboard."
        ))),
    }
}

/// `park_after_unbridge`: `self` keeps the leg up when the other hangs up.
pub(super) fn park_after_unbridge(p: &Params) -> Result<bool, ApiError> {
    Ok(p.has("park_after_unbridge")
        && p.choice("park_after_unbridge", &["self"], "self")? == "self")
}

/// Connects the leg's audio with another live leg of the account (`call_control_id`); both
/// get `call.bridged`. When either hangs up the other is hung up too, unless it asked to
/// stay (`park_after_unbridge: self`).
async fn bridge(api: &Arc<Telnyx>, leg: &mut Leg, p: &Params) -> Result<(), ApiError> {
    if p.has("video_room_id") {
        return Err(ApiError::invalid(
            "video_room_id",
            "bridging to a video room is not served here; give call_control_id".into(),
        ));
    }
    if let Some(queue) = p.str("queue")? {
        leg.state.park_after_unbridge = park_after_unbridge(p)?;
        return queueing::bridge_front(api, leg, queue).await;
    }
    let other_id = p.required("call_control_id")?;
    let account = api_account(api, leg)?;
    let other = match leg_of(api, &account, other_id).await {
        Ok(other) => other,
        Err(_) => match call_elsewhere(api, leg, other_id).await {
            Some((sid, node)) => return bridge_elsewhere(api, leg, p, &sid, &node).await,
            None => {
                return Err(ApiError::param(
                    "90015",
                    "Invalid Call Control ID",
                    "call_control_id",
                    format!("No live call {other_id} on this account."),
                ));
            }
        },
    };
    if other.call == leg.call {
        return Err(ApiError::invalid(
            "call_control_id",
            "A call cannot be bridged with itself.".into(),
        ));
    }
    if other.ended() {
        return Err(ApiError::call_ended());
    }
    if !leg.answered(api).await || !other.answered(api).await {
        return Err(ApiError::not_answered());
    }
    let park = park_after_unbridge(p)?;
    leg.state.park_after_unbridge = park;
    command(api, &leg.call, CallCommand::Bridge(other.call.clone())).await
}

/// The call (its SID) that `other_id` names and the node carrying it, when another node of
/// the cluster carries a live call of the leg's account by that id.
async fn call_elsewhere(api: &Telnyx, leg: &Leg, other_id: &str) -> Option<(String, String)> {
    let sid = crate::call::ids::CallId::from_control_id(other_id)?.sid();
    let now = crate::infra::clock::now_ms();
    match (api.parts.store)
        .call_node_elsewhere(&sid, &leg.account, now)
        .await
    {
        Ok(node) => node.map(|node| (sid, node)),
        Err(e) => {
            tracing::warn!(error = %e, call = sid, "cannot learn which node carries the call");
            None
        }
    }
}

/// `bridge` with call `sid`, which `node` carries: through a visit to that node, which
/// bridges the visit's leg with the call (as a queue's front on another node is taken).
async fn bridge_elsewhere(
    api: &Arc<Telnyx>,
    leg: &mut Leg,
    p: &Params,
    sid: &str,
    node: &str,
) -> Result<(), ApiError> {
    if !leg.answered(api).await {
        return Err(ApiError::not_answered());
    }
    leg.state.park_after_unbridge = park_after_unbridge(p)?;
    let from = leg.state.context.from.clone();
    let rooms = &api.parts.markup.rooms;
    match (rooms.bridge_elsewhere(&leg.call, &from, &leg.account, sid, node)).await {
        Ok(_) => Ok(()),
        Err(crate::call::CallError::NotAnswered) => Err(ApiError::not_answered()),
        Err(crate::call::CallError::NotFound(_)) => Err(ApiError::call_ended()),
        Err(e) => Err(ApiError::unprocessable(e.to_string())),
    }
}

/// Places a new leg to `to` from this one and bridges the two once it answers (a parked
/// incoming leg is answered then). If the new leg fails, this one stays as it is.
async fn transfer(api: &Arc<Telnyx>, leg: &mut Leg, p: &Params) -> Result<(), ApiError> {
    let account = api_account(api, leg)?;
    let connection_id = leg.state.context.connection_id.clone();
    let connection = (api.parts.connections.get(&account.sid, &connection_id))
        .map(|row| row.connection)
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "The call's Call Control application {connection_id} is gone."
            ))
        })?;
    let logins = (&*api.parts.sip_logins, account.sid.as_str());
    let (to, target) = super::calls::destination(p, Some(logins)).await?;
    let from = match p.str("from")? {
        Some(_) => super::calls::e164(p, "from")?,
        None => leg.state.context.from.clone(),
    };
    let client_state = p.client_state_of("target_leg_client_state")?;
    let params = super::calls::LegParams::read(p, &connection, &api.parts.speech)?;
    leg.state.park_after_unbridge = park_after_unbridge(p)?;
    super::calls::place(
        api,
        &account,
        &connection,
        super::calls::Placement {
            to,
            target,
            from,
            client_state,
            parent: Some(leg.handle().clone()),
            leg: params,
            stream: None,
            bridge_with: Some(leg.call.clone()),
            supervise: None,
        },
    )
    .await
    .map(drop)
}

fn api_account(api: &Telnyx, leg: &Leg) -> Result<crate::infra::accounts::Account, ApiError> {
    api.parts
        .directory
        .account(&leg.account)
        .ok_or_else(ApiError::invalid_call)
}
