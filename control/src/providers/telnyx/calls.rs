//! `POST /v2/calls` (dial), `GET /v2/calls/{call_control_id}` and
//! `GET /v2/connections/{id}/active_calls`.

use super::errors::ApiError;
use super::events::{self, LegContext};
use super::leg::{self, Dialed, LegHandle, OnAnswer};
use super::params::Params;
use super::params::record::RecordParams;
use super::{Telnyx, authenticate};
use crate::call::SupervisorRole;
use crate::call::ids::CallId;
use crate::call::{CallError, CallEvent, Originate, Target};
use crate::infra::accounts::{Account, Connection, HttpMethod};
use crate::services::directory::sip_logins::SipLogins;
use crate::services::subscriptions::NewSubscription;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Whether `n` is `+` and 1 to 15 digits.
pub(super) fn is_e164(n: &str) -> bool {
    n.strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) fn e164(params: &Params, field: &str) -> Result<String, ApiError> {
    let n = params.required(field)?;
    if !is_e164(n) {
        return Err(ApiError::param(
            "10016",
            "Phone number must be in +E164 format",
            field,
            format!("'{n}' is not a +E.164 number."),
        ));
    }
    Ok(n.to_owned())
}

/// The login a Telnyx destination names, if it is one of `account`'s: `sip:USER@sip.telnyx.com`
/// (or a SIP subdomain of it), or the bare `USER`, reaches the phones and browsers signed in
/// as `USER`, as on Telnyx.
fn login_of(logins: &SipLogins, account: &str, to: &str) -> Option<String> {
    let user = match to.strip_prefix("sip:") {
        Some(rest) => {
            let (user, host) = rest.split_once('@')?;
            let host = host.split([';', '?', ':']).next()?.to_ascii_lowercase();
            let telnyx = host == "sip.telnyx.com" || host.ends_with(".sip.telnyx.com");
            telnyx.then_some(user)?
        }
        None => to,
    };
    let login = logins.by_user(user).filter(|l| l.account == account)?;
    Some(login.user)
}

/// `to`: a +E.164 number or a `sip:` URI (an array of one); a URI naming one of the
/// account's SIP logins, or the login's user name, reaches where it is signed in.
pub(super) async fn destination(
    params: &Params,
    logins: Option<(&SipLogins, &str)>,
) -> Result<(String, Target), ApiError> {
    let to = match params.array("to").map(Vec::as_slice) {
        Some([one]) => one.as_str(),
        Some([]) => None,
        // Several at once (Telnyx's simultaneous ring) is not served.
        Some(_) => {
            return Err(ApiError::out_of_range(
                "to",
                "dialing several destinations at once is not served here".into(),
            ));
        }
        None => params.str("to")?,
    }
    .filter(|t| !t.is_empty())
    .ok_or_else(|| ApiError::missing("to"))?
    .to_owned();
    if let Some(user) = logins.and_then(|(logins, account)| login_of(logins, account, &to)) {
        return Ok((to, Target::User(user)));
    }
    let target = reachable(&to, "to").await?;
    Ok((to, target))
}

/// A destination Telnyx dials, named by the request's `field`: a +E.164 number or a `sip:`
/// URI that can be reached, else Telnyx's 10016.
pub(super) async fn reachable(to: &str, field: &str) -> Result<Target, ApiError> {
    if !(is_e164(to) || to.starts_with("sip:")) {
        return Err(ApiError::param(
            "10016",
            "Phone number must be in +E164 format",
            field,
            format!("'{to}' is neither a +E.164 number nor a sip: URI."),
        ));
    }
    let target = crate::services::dial_targets::resolve(to).await;
    target.ok_or_else(|| {
        ApiError::param(
            "10016",
            "Invalid destination",
            field,
            format!("'{to}' cannot be reached"),
        )
    })
}

/// The response to a dial: the leg's ids (and the recording's, if it asked to be recorded).
fn dialed(call: &str, client_state: Option<&str>, recording: Option<&str>) -> Value {
    let id = CallId::from_sid(call);
    let mut data = json!({
        "call_control_id": id.map(CallId::control_id),
        "call_leg_id": id.map(CallId::uuid),
        "call_session_id": id.map(CallId::session_uuid),
        "is_alive": false,
        "record_type": "call",
    });
    if let Some(state) = client_state {
        data["client_state"] = json!(state);
    }
    if let Some(sid) = recording {
        data["recording_id"] = json!(crate::call::ids::sid_as_uuid(sid, "RE"));
    }
    json!({ "data": data })
}

/// Parameters the SDK's `CallDialParams` carry that dial does not carry out: refused (10032)
/// when set to something that would change the call.
const DIAL_UNSERVED: &[&str] = &[
    "bridge_intent",
    "bridge_on_answer",
    "conference_config",
    "deepfake_detection",
    "dialogflow_config",
    "diversion",
    "enable_dialogflow",
    "link_to",
    "media_encryption",
    "preferred_codecs",
    "prevent_double_bridge",
    "privacy",
    "retry_on_timeout",
    "route_to_mobile",
    "send_digits_on_answer",
    "sip_region",
    "sip_transport_protocol",
    "sound_modifications",
    "stream_establish_before_call_originate",
    "webhook_retries_policies",
    "webhook_urls",
    "webhook_urls_method",
];

pub(super) async fn dial(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?.clone();
    let p = Params::parse(&body)?;
    p.refuse_unserved(DIAL_UNSERVED)?;
    let connection_id = p.required("connection_id")?;
    let connection = api
        .parts
        .connections
        .call_control(&account.sid, connection_id)
        .map(|row| row.connection)
        .ok_or_else(|| {
            ApiError::param(
                "10015",
                "Invalid value for connection_id",
                "connection_id",
                format!("No Call Control application {connection_id} on this account."),
            )
        })?;
    let logins = (&*api.parts.sip_logins, account.sid.as_str());
    let (to, target) = destination(&p, Some(logins)).await?;
    let from = e164(&p, "from")?;
    let client_state = p.client_state()?;
    let command_id = p.command_id()?;
    if let Some(id) = &command_id
        && let Some(earlier) = api.legs.dialed(&account.sid, id).await
    {
        let (call, recording) = (earlier.call, earlier.recording);
        return Ok(Json(dialed(
            &call,
            client_state.as_deref(),
            recording.as_deref(),
        )));
    }
    let leg = LegParams::read(&p, &connection, &api.parts.speech)?;
    let supervise = supervision(&api, &account, &p).await?;
    let recording = leg.record.as_ref().map(|r| r.sid.clone());
    let stream = p.stream()?;
    let call = place(
        &api,
        &account,
        &connection,
        Placement {
            to,
            target,
            from,
            client_state: client_state.clone(),
            parent: None,
            leg,
            stream,
            bridge_with: None,
            supervise,
        },
    )
    .await?;
    if let Some(id) = &command_id {
        let made = Dialed {
            call: call.clone(),
            recording: recording.clone(),
        };
        api.legs.remember_dial(&account.sid, id, made).await;
    }
    Ok(Json(dialed(
        &call,
        client_state.as_deref(),
        recording.as_deref(),
    )))
}

/// `supervise_call_control_id` and `supervisor_role` (`barge`, the default, `whisper` or
/// `monitor`): once answered, the new leg joins the bridge of that live call of the account
/// as its supervisor (see [`crate::call::SupervisorRole`]).
async fn supervision(
    api: &Telnyx,
    account: &Account,
    p: &Params,
) -> Result<Option<(String, SupervisorRole)>, ApiError> {
    let role = p.supervisor_role("supervisor_role", "barge")?;
    let Some(id) = p.str("supervise_call_control_id")? else {
        if p.has("supervisor_role") {
            return Err(ApiError::invalid(
                "supervisor_role",
                "'supervisor_role' needs 'supervise_call_control_id'.".into(),
            ));
        }
        return Ok(None);
    };
    let supervised = leg_of(api, account, id).await.map_err(|_| {
        ApiError::param(
            "90015",
            "Invalid Call Control ID",
            "supervise_call_control_id",
            format!("No live call {id} on this account."),
        )
    })?;
    if supervised.ended() {
        return Err(ApiError::call_ended());
    }
    Ok(Some((supervised.call.clone(), role)))
}

/// What a new outgoing leg is given by dial and transfer alike.
pub(super) struct LegParams {
    ring_timeout: Duration,
    time_limit: Duration,
    webhook_url: String,
    audio_url: Option<String>,
    record: Option<RecordParams>,
    display_name: Option<String>,
    headers: Vec<(String, String)>,
    silence_when_idle: bool,
    amd: Option<super::params::amd::AmdParams>,
    transcription: Option<crate::services::transcription::TranscriptionSpec>,
    relay: Option<super::params::relay::OnAnswer>,
    /// `sip_auth_username` and `sip_auth_password`: a SIP URI's challenge is answered with them.
    credentials: Option<(String, String)>,
    /// `park_after_unbridge: self`.
    park_after_unbridge: bool,
}

impl LegParams {
    /// `timeout_secs`, `time_limit_secs`, `webhook_url` (else the connection's),
    /// `audio_url`, `from_display_name`, `custom_headers`, `sip_headers` and the SIP
    /// credentials.
    pub(super) fn read(
        p: &Params,
        connection: &Connection,
        speech: &crate::services::speech::Speech,
    ) -> Result<Self, ApiError> {
        let ring_timeout = p.int("timeout_secs", 5..=600)?.unwrap_or(30);
        let time_limit = p.int("time_limit_secs", 30..=14_400)?.unwrap_or(14_400);
        let webhook_url = p
            .webhook_url()?
            .unwrap_or_else(|| connection.webhook_event_url.clone());
        if p.has("media_name") {
            return Err(ApiError::invalid(
                "media_name",
                "stored media is not served here; give audio_url".into(),
            ));
        }
        Ok(Self {
            record: RecordParams::of_call(p)?,
            ring_timeout: Duration::from_secs(ring_timeout as u64),
            time_limit: Duration::from_secs(time_limit as u64),
            webhook_url,
            audio_url: p.url("audio_url")?,
            display_name: p.display_name("from_display_name")?,
            headers: p.all_headers()?,
            silence_when_idle: p.bool("send_silence_when_idle")?.unwrap_or(false),
            amd: super::params::amd::AmdParams::read(p)?,
            transcription: super::transcribing::on_answer(p, speech, &connection.account_sid)?,
            relay: super::params::relay::on_answer(p, speech, &connection.account_sid)?,
            park_after_unbridge: super::actions::park_after_unbridge(p)?,
            credentials: match p.short("sip_auth_username", 256)? {
                Some(user) if !user.is_empty() => Some((
                    user.to_owned(),
                    p.short("sip_auth_password", 256)?
                        .unwrap_or_default()
                        .to_owned(),
                )),
                _ => None,
            },
        })
    }
}

/// A leg to place.
pub(super) struct Placement {
    pub(super) to: String,
    pub(super) target: Target,
    pub(super) from: String,
    pub(super) client_state: Option<String>,
    /// The leg it is placed from (a transfer's): the new leg is in its session.
    pub(super) parent: Option<Arc<LegHandle>>,
    pub(super) leg: LegParams,
    pub(super) stream: Option<super::params::StreamParams>,
    /// Once answered, it is bridged with this leg's call (a transfer's).
    pub(super) bridge_with: Option<String>,
    /// Once answered, it supervises this call's bridge in this role (dial's).
    pub(super) supervise: Option<(String, SupervisorRole)>,
}

/// Places an outgoing leg and follows it; returns its call id.
pub(super) async fn place(
    api: &Arc<Telnyx>,
    account: &Account,
    connection: &Connection,
    placement: Placement,
) -> Result<String, ApiError> {
    let Placement {
        to,
        target,
        from,
        client_state,
        parent,
        leg,
        stream,
        bridge_with,
        supervise,
    } = placement;
    let channels = super::outbound_voice_profiles::channels(api, account, connection, &to).await?;
    let (events_tx, events) = mpsc::channel(256);
    let originate = Originate {
        to: target,
        from: from.clone(),
        display_name: leg.display_name.clone(),
        headers: leg.headers.clone(),
        ring_timeout: leg.ring_timeout,
        parent: parent.as_ref().map(|p| p.call.clone()),
        account: Some(account.sid.clone()),
        system: false,
        channels,
        credentials: leg.credentials.clone(),
    };
    let control = &api.parts.control;
    // A supervisor is placed beside the call it is to supervise (on its call-core shard).
    let placed = match (&parent, &supervise) {
        (None, Some((supervised, _))) => {
            (control.originate_beside(originate, events_tx, supervised)).await
        }
        _ => control.originate(originate, events_tx).await,
    };
    let call = placed.map_err(|e| originate_error(&to, e, ("to", "from")))?;
    let session = parent.map_or_else(|| call.clone(), |p| p.view().context.session.clone());
    let calling_party_type = if to.starts_with("sip:") {
        "sip"
    } else {
        "pstn"
    }
    .into();
    let context = LegContext {
        call: call.clone(),
        session,
        connection_id: connection.id.clone(),
        from,
        to,
        direction: "outgoing".into(),
        client_state,
        start_time: crate::infra::clock::now_ms(),
        hangup_cause: None,
        failover_url: connection.webhook_event_failover_url.clone(),
        webhook_timeout_secs: super::connection_settings::webhook_timeout(connection),
        invite_headers: Vec::new(),
        calling_party_type,
        offered: None,
    };
    start_leg(
        api,
        account,
        context,
        leg.webhook_url,
        OnAnswer {
            stream,
            audio_url: leg.audio_url,
            time_limit: Some(leg.time_limit),
            record: leg.record,
            bridge_with,
            supervise,
            silence_when_idle: leg.silence_when_idle,
            amd: leg.amd,
            transcription: leg.transcription,
            relay: leg.relay,
            park_after_unbridge: leg.park_after_unbridge,
        },
        (None, events),
    )
    .await;
    Ok(call)
}

/// Follows a new leg: its lifecycle subscription is stored before its first event is read
/// (`first`, when the leg's first event came before it had a leg: an incoming call's offer).
pub(super) async fn start_leg(
    api: &Arc<Telnyx>,
    account: &Account,
    context: LegContext,
    webhook_url: String,
    on_answer: OnAnswer,
    (first, events): (Option<CallEvent>, mpsc::Receiver<CallEvent>),
) -> Arc<LegHandle> {
    let mut subscription = api
        .parts
        .subscriptions
        .subscribe(NewSubscription {
            call: context.call.clone(),
            account: account.sid.clone(),
            renderer: events::RENDERER,
            url: webhook_url.clone(),
            method: HttpMethod::Post,
            context: serde_json::to_string(&context).unwrap_or_default(),
        })
        .await;
    if let Some(first) = first {
        subscription.on_event(&first).await;
    }
    let on_events = (events, subscription);
    let apply = super::leg_effects::apply;
    leg::start(
        api,
        account,
        context,
        webhook_url,
        on_answer,
        on_events,
        apply,
    )
    .await
}

/// Why a call could not be placed, in Telnyx's shape; `fields` name the request's `to` and
/// `from` as its API spells them (`to`/`from` for Call Control, `To`/`From` for TeXML).
pub(super) fn originate_error(
    to: &str,
    e: CallError,
    (to_field, from_field): (&str, &str),
) -> ApiError {
    match e {
        CallError::NoRoute(code) => ApiError::param(
            "10016",
            "Invalid destination",
            to_field,
            format!("'{to}' cannot be reached (SIP {code})"),
        ),
        CallError::NotAllowed(uri) => ApiError::param(
            "10016",
            "Invalid destination",
            to_field,
            format!("This account may not call {uri}"),
        ),
        CallError::CallerIdNotAllowed(from) => ApiError::caller_id_not_allowed(from_field, &from),
        CallError::ShuttingDown => ApiError::shutting_down(),
        CallError::AccountLimit(e) => ApiError::account_limit(e),
        // Telnyx's D2/D3 ("channel limit exceeded"), as the API's refusal.
        CallError::ChannelLimit { group, max } => ApiError::param(
            "10010",
            "Authorization failed",
            "connection_id",
            format!("Channel limit exceeded: {group} has {max} calls, its limit."),
        ),
        // Not 503: the SDKs would retry a dial by themselves.
        other => ApiError::unprocessable(other.to_string()),
    }
}

/// The leg a path names, if it is this account's (another account's is as unknown).
pub(super) async fn leg_of(
    api: &Telnyx,
    account: &Account,
    id: &str,
) -> Result<Arc<LegHandle>, ApiError> {
    let id = CallId::from_control_id(id).ok_or_else(ApiError::invalid_call)?;
    (api.legs.get(&id.sid()).await)
        .filter(|leg| leg.account == account.sid)
        .ok_or_else(ApiError::invalid_call)
}

/// A leg's status object.
fn status_of(leg: &LegHandle) -> Value {
    let s = leg.view();
    let c = &s.context;
    let id = CallId::from_sid(&c.call);
    let now = crate::infra::clock::now_ms();
    let end = s.ended_at.unwrap_or(now);
    let mut data = json!({
        "record_type": "call",
        "call_control_id": id.map(CallId::control_id),
        "call_leg_id": id.map(CallId::uuid),
        "call_session_id": CallId::from_sid(&c.session).map(CallId::session_uuid),
        "client_state": c.client_state,
        "is_alive": s.ended_at.is_none(),
        "call_duration": (end - c.start_time).max(0) / 1000,
        "start_time": events::timestamp(c.start_time),
        "connection_id": c.connection_id,
    });
    if let Some(at) = s.ended_at {
        data["end_time"] = json!(events::timestamp(at));
    }
    data
}

pub(super) async fn status(
    State(api): State<Arc<Telnyx>>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let leg = leg_of(&api, &account, &call).await?;
    Ok(Json(json!({ "data": status_of(&leg) })))
}

/// Live legs of a connection, with Telnyx's cursor pagination (`page[limit]`, `page[after]`:
/// the last call control id of the previous page).
pub(super) async fn active(
    State(api): State<Arc<Telnyx>>,
    Path(connection): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    if api
        .parts
        .connections
        .get(&account.sid, &connection)
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "No Call Control application {connection}."
        )));
    }
    let limit = match query.get("page[limit]") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=250).contains(l))
            .ok_or_else(|| {
                ApiError::out_of_range("page[limit]", "page[limit] must be 1 to 250".into())
            })?,
    };
    let legs = api.legs.of_connection(&connection).await;
    let total = legs.len();
    let start = match query.get("page[after]") {
        None => 0,
        Some(after) => legs
            .iter()
            .position(|l| {
                CallId::from_sid(&l.call).map(CallId::control_id).as_deref() == Some(after)
            })
            .map_or(total, |i| i + 1),
    };
    let page: Vec<Value> = legs
        .iter()
        .skip(start)
        .take(limit)
        .map(|l| {
            let mut s = status_of(l);
            if let Some(o) = s.as_object_mut() {
                o.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "call_control_id"
                            | "call_leg_id"
                            | "call_session_id"
                            | "client_state"
                            | "call_duration"
                            | "record_type"
                    )
                });
            }
            s
        })
        .collect();
    let after = (start + page.len() < total)
        .then(|| page.last().map(|p| p["call_control_id"].clone()))
        .flatten();
    Ok(Json(json!({
        "data": page,
        "meta": {
            "cursors": {"after": after, "before": Value::Null},
            "total_items": total,
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn to_is_a_number_a_sip_uri_or_an_array_of_one() {
        let to = |body: &str| {
            let p = Params::parse(body.as_bytes()).unwrap();
            async move { destination(&p, None).await.map(|(to, _)| to) }
        };
        assert_eq!(to(r#"{"to":"+15551234"}"#).await.unwrap(), "+15551234");
        assert_eq!(to(r#"{"to":["+15551234"]}"#).await.unwrap(), "+15551234");
        let code = |r: Result<String, ApiError>| r.unwrap_err().code;
        assert_eq!(code(to(r#"{"to":["+1555","+1666"]}"#).await), "10033");
        assert_eq!(code(to(r#"{"to":[]}"#).await), "10004");
        assert_eq!(code(to(r#"{}"#).await), "10004");
        assert_eq!(code(to(r#"{"to":[5]}"#).await), "10004");
        assert_eq!(code(to(r#"{"to":"15551234"}"#).await), "10016");
        assert_eq!(code(to(r#"{"to":7}"#).await), "10032");
    }
}
