//! Twilio's browser signalling: the socket `@twilio/voice-sdk` opens to `wss://HOST/signal`
//! (its `chunderw` option names HOST; the SDK forces the scheme and the path), served on the
//! HTTP listeners' `/signal` (WSS on the HTTPS one). Frames are JSON `{type, version,
//! payload}` ("PStream" 1.6, `lib/twilio/pstream.ts`); a `"\n"` keeps the socket alive both
//! ways. A device signs in with an access token (HS256, signed with one of the account's API
//! key secrets); it then is a SIP user of the core through the browser gateway, as
//! `client:IDENTITY` of its account: `device.connect()` runs the token's App (`AP…`) with the
//! page's parameters, and `<Dial><Client>` / `To=client:…` ring it. A call up carries a
//! `reconnect` token: when the socket drops, a device that asked for it (`listen`'s
//! `reconnectTimeout`, the SDK's `maxCallSignalingTimeoutMs`) has its calls kept that long,
//! and its `invite` with the token on a new socket takes each back — the media never left.
//! This module only translates. Facts: ../shared/reference/browser-sdks.md §1c.

use super::access_token::{Grant, TokenError, verify_token};
use super::rest::TwilioApi;
use crate::infra::http::throttle::Failures;
use crate::infra::http::websocket;
use crate::infra::webhook::request::WebhookRequest;
use crate::markup::voice::CLIENT_PARAMS_HEADER;
use crate::providers::twilio::user_messages::{MAX_CONTENT, ToDevice};
use crate::services::browser_gateway::{Command, MAX_CALLS_PER_SESSION, SessionEvent, SessionId};
use crate::services::directory::sip_logins::Login;
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info};

/// The largest frame taken (an offer with many candidates is a few KB).
const MAX_MESSAGE: usize = 256 * 1024;
/// The SDK closes a socket silent for 15 s: the heartbeat goes out well within it.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// To sign in after connecting; and the longest silence from a signed-in device (the SDK
/// answers every heartbeat).
const LISTEN_WAIT: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(60);
/// The longest `device.connect()` parameters string taken.
const MAX_PARAMS: usize = 4096;
/// The longest a device's calls wait for it to come back (the SDK's own cap).
const MAX_RECONNECT: Duration = Duration::from_secs(30);
const VERSION: &str = "1.6";
/// The SDK's `messageType` of a user-defined message.
const USER_DEFINED: &str = "user-defined-message";
/// The application's messages waiting for a device's socket, at most.
const MESSAGES_QUEUED: usize = 16;
/// A device's messages on their way to the subscriptions at once, at most; past it the
/// device gets the SDK's rate error.
const MESSAGES_IN_FLIGHT: usize = 32;

/// Sessions get gateway ids from the top half, clear of the Verto sessions' counter.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1 << 62);

/// `GET /signal` with `Upgrade: websocket`: a device's session.
pub(crate) async fn upgrade(State(api): State<TwilioApi>, req: Request<Body>) -> Response {
    let failures = req.extensions().get::<Failures>().cloned();
    websocket::upgrade(req, MAX_MESSAGE, move |socket, place| {
        serve(api, socket, place, failures)
    })
}

/// A call of the session: the gateway's name for it, Twilio's (`CA…`, once known), whether
/// it came to the device and whether it is up.
struct SessionCall {
    sid: Option<String>,
    incoming: bool,
    answered: bool,
}

struct Session {
    id: SessionId,
    /// Its socket's place: signed in with the first good token.
    place: websocket::SignIn,
    signed_in: Option<(Login, Grant)>,
    /// The token in force (the last `listen`'s), checked again whenever the account's keys
    /// change, and when it runs out.
    token: String,
    expires: tokio::time::Instant,
    registered: Option<bool>,
    want_ready: bool,
    /// By the gateway's call name (the SDK's temporary id for the device's own calls).
    calls: HashMap<String, SessionCall>,
    /// How long its calls wait for it should its socket drop (`listen`'s `reconnectTimeout`).
    reconnect: Duration,
    /// Cancels of incoming calls said again (see [`RECANCEL`]): when, and the call's SID.
    recancels: Vec<(tokio::time::Instant, String)>,
    /// The gateway's session for a device that signed in, opened once the core has its login.
    opening: Option<(tokio::sync::oneshot::Receiver<()>, Command)>,
    /// Where the applications' user-defined messages for its calls come in.
    messages: mpsc::Sender<ToDevice>,
    /// Its messages on their way to subscriptions (see [`MESSAGES_IN_FLIGHT`]).
    sending: Arc<tokio::sync::Semaphore>,
}

/// When a cancel is said again after the first. The SDK listens for a call's cancel only once
/// it has built the call (after awaiting its input device and its stream), so a cancel that
/// comes in between — a second device rung and cancelled at once because the first answered
/// — is lost, and that device would ring on. A repeat for a call the SDK has done with is
/// ignored (its cancel listener is gone, and the device knows no call of that SID).
const RECANCEL: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(2000)];
/// Cancels said again at once, at most (each call's twice).
const MAX_RECANCELS: usize = 64;

impl Session {
    /// The device holds call `sid` now: the application's messages for it come here.
    fn holds(&self, api: &TwilioApi, sid: &str) {
        if let Some((_, grant)) = &self.signed_in {
            (api.user_messages).attach(sid, &grant.account, self.messages.clone());
        }
    }

    /// The gateway's name of the call a message names (`CA…` or the SDK's temporary id).
    fn call_named(&self, callsid: &str) -> Option<String> {
        if self.calls.contains_key(callsid) {
            return Some(callsid.to_owned());
        }
        (self.calls.iter())
            .find(|(_, c)| c.sid.as_deref() == Some(callsid))
            .map(|(name, _)| name.clone())
    }
}

fn frame(kind: &str, payload: Value) -> Message {
    let v = json!({"type": kind, "version": VERSION, "payload": payload});
    Message::Text(v.to_string().into())
}

/// A call the device cannot take back: Twilio's "connection error", which ends it.
fn reconnect_failed(callsid: &str) -> Message {
    frame(
        "hangup",
        json!({"callsid": callsid,
        "error": {"code": 31005, "message": "The call cannot be reconnected"}}),
    )
}

fn error_frame(code: u32, message: &str, callsid: Option<&str>) -> Message {
    let mut payload = json!({"error": {"code": code, "message": message}});
    if let Some(sid) = callsid {
        payload["callsid"] = json!(sid);
    }
    frame("error", payload)
}

async fn serve(
    api: TwilioApi,
    socket: websocket::Socket,
    place: websocket::SignIn,
    failures: Option<Failures>,
) {
    let (mut sink, mut source) = socket.split();
    let (events_tx, mut events) = mpsc::channel::<SessionEvent>(256);
    let (messages_tx, mut messages) = mpsc::channel::<ToDevice>(MESSAGES_QUEUED);
    let mut keys = api.directory.changes();
    let mut s = Session {
        id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        place,
        signed_in: None,
        token: String::new(),
        expires: tokio::time::Instant::now() + LISTEN_WAIT,
        registered: None,
        want_ready: false,
        calls: HashMap::new(),
        reconnect: Duration::ZERO,
        recancels: Vec::new(),
        opening: None,
        messages: messages_tx,
        sending: Arc::new(tokio::sync::Semaphore::new(MESSAGES_IN_FLIGHT)),
    };
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let opened = tokio::time::Instant::now();
    let mut last_heard = opened;
    loop {
        let deadline = match s.signed_in {
            None => opened + LISTEN_WAIT,
            Some(_) => last_heard + IDLE,
        };
        let (out, close): (Vec<Message>, bool) = tokio::select! {
            m = tokio::time::timeout_at(deadline, source.next()) => match m {
                Ok(Some(Ok(Message::Text(t)))) => {
                    last_heard = tokio::time::Instant::now();
                    on_message(&api, &mut s, &events_tx, t.as_str())
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {
                    last_heard = tokio::time::Instant::now();
                    continue;
                }
                Ok(Some(Ok(Message::Binary(_) | Message::Frame(_)))) => continue,
                _ => break,
            },
            Some(e) = events.recv() => (on_event(&api, &mut s, e).await, false),
            Some(m) = messages.recv() => (vec![user_message(m)], false),
            _ = heartbeat.tick() => (vec![Message::Text("\n".into())], false),
            // Twilio's gateway ends a session whose token ran out (the SDK's 20104, after the
            // `tokenWillExpire` the `connected` frame's ttl timed) unless `updateToken` sent a
            // new one.
            _ = tokio::time::sleep_until(s.expires), if s.signed_in.is_some() => {
                info!(session = s.id, "browser device's token expired: signed out");
                let expired = TokenError::Expired;
                (vec![error_frame(expired.code(), expired.message(), None)], true)
            }
            // A key deleted (or its secret changed) ends every session its tokens opened.
            Ok(()) = keys.changed(), if s.signed_in.is_some() => {
                let now = crate::infra::clock::now_ms() / 1000;
                match verify_token(|sid| api.directory.account(sid), &s.token, now) {
                    Ok(_) => continue,
                    Err(e) => {
                        info!(session = s.id, code = e.code(), "browser device's token revoked: signed out");
                        (vec![error_frame(e.code(), e.message(), None)], true)
                    }
                }
            }
            _ = tokio::time::sleep_until(recancel_due(&s)), if !s.recancels.is_empty() => {
                let now = tokio::time::Instant::now();
                let (due, later) = s.recancels.drain(..).partition(|(at, _)| *at <= now);
                s.recancels = later;
                let due: Vec<(tokio::time::Instant, String)> = due;
                (due.into_iter().map(|(_, callsid)| frame("cancel", json!({"callsid": callsid}))).collect(), false)
            }
        };
        if let Some((in_force, open)) = s.opening.take() {
            // The core answers at once unless it is stopping; the session opens either way.
            let _ = tokio::time::timeout(Duration::from_secs(2), in_force).await;
            api.browser.send(open);
        }
        let sent = websocket::send_all(&mut sink, out).await;
        if close && s.signed_in.is_none() {
            // A refused token counts against the address, as a 401 would.
            if let Some(f) = &failures {
                f.failed();
            }
        }
        if !sent || close {
            break;
        }
    }
    if let Some((login, grant)) = &s.signed_in {
        let up = s.calls.values().any(|c| c.answered);
        let command = match (up, s.reconnect) {
            (true, keep) if !keep.is_zero() => Command::Detach {
                session: s.id,
                keep,
            },
            _ => Command::Close { session: s.id },
        };
        // Calls that wait for the device keep their subscriptions; the others are over.
        for sid in s.calls.values().filter_map(|c| c.sid.as_deref()) {
            match command {
                Command::Detach { .. } => api.user_messages.detach(sid),
                _ => api.user_messages.forget(sid),
            }
        }
        api.browser.send(command);
        api.sip_logins.close_device(&login.user);
        info!(session = s.id, identity = %grant.identity, "browser device signed out");
    }
    websocket::close(&mut sink).await;
}

/// A device's frame as read off the socket: its type, its payload and the call SID it names
/// (cut to 64 characters; empty when none).
pub struct Frame {
    pub kind: String,
    pub payload: Value,
    pub callsid: String,
}

impl Frame {
    /// `None` for what is not a JSON frame.
    pub fn read(text: &str) -> Option<Self> {
        let mut msg = serde_json::from_str::<Value>(text).ok()?;
        let kind = msg["type"].as_str().unwrap_or_default().to_owned();
        let payload = msg
            .get_mut("payload")
            .map(Value::take)
            .unwrap_or(Value::Null);
        let callsid = (payload["callsid"].as_str().unwrap_or_default().chars())
            .take(64)
            .collect();
        Some(Self {
            kind,
            payload,
            callsid,
        })
    }
}

/// When the next repeated cancel is due (far off when none is).
fn recancel_due(s: &Session) -> tokio::time::Instant {
    (s.recancels.iter().map(|(at, _)| *at).min())
        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600))
}

/// A device's frame: what to send back, and whether to close the socket then.
fn on_message(
    api: &TwilioApi,
    s: &mut Session,
    events: &mpsc::Sender<SessionEvent>,
    text: &str,
) -> (Vec<Message>, bool) {
    if text.trim().is_empty() {
        // The heartbeat's echo.
        return (Vec::new(), false);
    }
    let Some(Frame {
        kind,
        payload: p,
        callsid,
    }) = Frame::read(text)
    else {
        return (
            vec![error_frame(31100, "Generic malformed request", None)],
            false,
        );
    };
    let kind = kind.as_str();
    let p = &p;
    if kind == "listen" {
        let seconds = p["reconnectTimeout"].as_u64().unwrap_or(0);
        s.reconnect = Duration::from_secs(seconds).min(MAX_RECONNECT);
        return listen(api, s, events, p["token"].as_str().unwrap_or_default());
    }
    let Some((_, grant)) = s.signed_in.clone() else {
        return (vec![error_frame(31204, "JWT token is invalid", None)], true);
    };
    let gateway = &api.browser;
    let out = match kind {
        "register" => {
            let audio = p["media"]["audio"].as_bool().unwrap_or(false);
            s.want_ready = audio;
            match (audio, s.registered) {
                (true, Some(true)) => vec![frame("ready", json!({}))],
                (true, _) => Vec::new(),
                (false, _) => vec![frame("offline", json!({}))],
            }
        }
        // The device is back on a new socket: it takes its call (`CA…`) back by its token.
        "invite" if p["reconnect"].is_string() => {
            let token = p["reconnect"].as_str().unwrap_or_default();
            let fresh = s.call_named(&callsid).is_none() && s.calls.len() < MAX_CALLS_PER_SESSION;
            let resume = Command::Resume {
                session: s.id,
                call: callsid.clone(),
                token: token.chars().take(64).collect(),
            };
            if fresh && !callsid.is_empty() && gateway.send(resume) {
                let call = SessionCall {
                    sid: Some(callsid.clone()),
                    incoming: false,
                    answered: true,
                };
                s.calls.insert(callsid, call);
                Vec::new()
            } else {
                vec![reconnect_failed(&callsid)]
            }
        }
        "invite" => invite(api, s, &grant, &callsid, p),
        "answer" => {
            if let Some(call) = s.call_named(&callsid) {
                if let Some(c) = s.calls.get_mut(&call) {
                    c.answered = true;
                }
                let sdp = p["sdp"].as_str().unwrap_or_default().to_owned();
                gateway.send(Command::Answer {
                    session: s.id,
                    call,
                    sdp,
                });
            }
            Vec::new()
        }
        "reject" | "hangup" => {
            if let Some(call) = s.call_named(&callsid) {
                let code = if kind == "reject" { 603 } else { 487 };
                if let Some(sid) = s.calls.remove(&call).and_then(|c| c.sid) {
                    api.user_messages.forget(&sid);
                }
                gateway.send(Command::Hangup {
                    session: s.id,
                    call,
                    code,
                });
            }
            Vec::new()
        }
        // An ICE restart: the new offer to the far end, its answer back as `answer`.
        "reinvite" => {
            let sdp = p["sdp"].as_str().unwrap_or_default();
            if let (Some(call), false) = (s.call_named(&callsid), sdp.is_empty()) {
                gateway.send(Command::Renegotiate {
                    session: s.id,
                    call,
                    sdp: sdp.to_owned(),
                });
            }
            Vec::new()
        }
        "dtmf" => {
            if let (Some(call), Some(digits)) = (s.call_named(&callsid), p["dtmf"].as_str()) {
                let digits = digits.chars().take(32).collect();
                gateway.send(Command::Dtmf {
                    session: s.id,
                    call,
                    digits,
                });
            }
            Vec::new()
        }
        "message" => device_message(api, s, &callsid, p),
        other => {
            debug!(
                session = s.id,
                kind = other,
                "unsupported signalling message"
            );
            Vec::new()
        }
    };
    (out, false)
}

/// The application's message for one of the device's calls, as the SDK reads it.
fn user_message(m: ToDevice) -> Message {
    frame(
        "message",
        json!({"callsid": m.call, "content": m.content, "contenttype": "application/json",
               "messagetype": USER_DEFINED, "voiceeventsid": m.sid}),
    )
}

/// A device's `call.sendMessage`: acknowledged, and sent to each of the call's
/// subscriptions (none: nobody listens, as on Twilio). A message of another type, or too
/// large, gets the SDK's own error for it.
fn device_message(api: &TwilioApi, s: &Session, callsid: &str, p: &Value) -> Vec<Message> {
    let event = p["voiceeventsid"].as_str().unwrap_or_default();
    let refuse = |code: u32, message: &str| {
        let mut payload = json!({"error": {"code": code, "message": message}, "callsid": callsid});
        if !event.is_empty() && event.len() <= 64 {
            payload["voiceeventsid"] = json!(event);
        }
        vec![frame("error", payload)]
    };
    if p["messagetype"].as_str() != Some(USER_DEFINED) {
        return refuse(31210, "Call Message Event Type is invalid.");
    }
    let content = p["content"].to_string();
    if content.len() > MAX_CONTENT || event.is_empty() || event.len() > 64 {
        return refuse(
            31212,
            "Call Message Event Payload size exceeded authorized limit.",
        );
    }
    let sid = (s.call_named(callsid))
        .and_then(|name| s.calls.get(&name))
        .and_then(|c| c.sid.clone());
    let Some(sid) = sid else {
        return refuse(31100, "Generic malformed request: no such call");
    };
    let content_type = p["contenttype"].as_str().unwrap_or("application/json");
    if let Some((account, subscriptions)) = api.user_messages.subscribers(&sid)
        && !subscriptions.is_empty()
    {
        let Ok(permit) = s.sending.clone().try_acquire_owned() else {
            return refuse(31206, "Rate exceeded authorized limit.");
        };
        let account_sid = api.directory.account(&account);
        let account_sid = account_sid
            .as_ref()
            .map_or(account.as_str(), |a| a.api_sid());
        let params: Vec<(String, String)> = [
            ("AccountSid", account_sid),
            ("CallSid", sid.as_str()),
            ("Sid", event),
            ("Content", content.as_str()),
            ("ContentType", content_type),
            ("MessageType", USER_DEFINED),
            (
                "Timestamp",
                &crate::markup::rfc2822(crate::infra::clock::now_ms()),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        let outbox = api.apps.subscriptions.outbox().clone();
        tokio::spawn(async move {
            for sub in subscriptions {
                let request = WebhookRequest::twilio(&sub.callback, sub.method, &params);
                outbox.send(&account, &sid, request).await;
            }
            drop(permit);
        });
    }
    vec![frame(
        "ack",
        json!({"acktype": "message", "callsid": callsid, "voiceeventsid": event}),
    )]
}

fn listen(
    api: &TwilioApi,
    s: &mut Session,
    events: &mpsc::Sender<SessionEvent>,
    token: &str,
) -> (Vec<Message>, bool) {
    let now = crate::infra::clock::now_ms() / 1000;
    let grant = match verify_token(|sid| api.directory.account(sid), token, now) {
        Ok(g) => g,
        Err(e) => {
            info!(
                session = s.id,
                code = e.code(),
                "browser device sign-in refused"
            );
            return (vec![error_frame(e.code(), e.message(), None)], true);
        }
    };
    let connected = frame(
        "connected",
        json!({"region": "us1", "edge": "roaming",
               "token": {"identity": grant.identity, "ttl": grant.ttl}}),
    );
    let expires = tokio::time::Instant::now() + Duration::from_secs(grant.ttl.max(0) as u64);
    // A token refreshed (`device.updateToken`) on a session signed in already.
    if let Some((_, held)) = &mut s.signed_in {
        if held.identity != grant.identity || held.account != grant.account {
            return (vec![error_frame(31204, "JWT token is invalid", None)], true);
        }
        *held = grant;
        s.token = token.to_owned();
        s.expires = expires;
        return (vec![connected], false);
    }
    match s.place.sign_in(&grant.account) {
        websocket::SignedIn::Yes => {}
        // Its place went to a newcomer a moment ago: the socket is closing.
        websocket::SignedIn::Evicted => return (Vec::new(), true),
        websocket::SignedIn::AccountFull => {
            info!(session = s.id, account = %grant.account, "browser device refused: the account's sockets are all taken");
            let message = "Too Many Requests: the account has all the devices it may sign in";
            return (vec![error_frame(20429, message, None)], true);
        }
    }
    s.token = token.to_owned();
    s.expires = expires;
    let (login, in_force) = api.sip_logins.open_device(
        &grant.account,
        &grant.identity,
        grant.application_sid.as_deref(),
    );
    info!(session = s.id, identity = %grant.identity, account = %grant.account, "browser device signed in");
    s.signed_in = Some((login.clone(), grant));
    let open = Command::Open {
        session: s.id,
        login,
        events: events.clone(),
    };
    s.opening = Some((in_force, open));
    (vec![connected], false)
}

/// The device's own call: the token's App runs it, with the page's parameters.
fn invite(
    api: &TwilioApi,
    s: &mut Session,
    grant: &Grant,
    callsid: &str,
    p: &Value,
) -> Vec<Message> {
    let sdp = p["sdp"].as_str().unwrap_or_default().to_owned();
    let params = p["twilio"]["params"].as_str().unwrap_or_default();
    if callsid.is_empty() || sdp.is_empty() || params.len() > MAX_PARAMS {
        return vec![error_frame(
            31100,
            "Generic malformed request",
            Some(callsid),
        )];
    }
    // A call the session has already, or one past its limit: refused here, so the session's
    // map never holds more than the gateway would carry.
    if s.calls.contains_key(callsid) || s.calls.len() >= MAX_CALLS_PER_SESSION {
        return vec![frame(
            "hangup",
            json!({"callsid": callsid,
            "error": {"code": 31486, "message": "Busy"}}),
        )];
    }
    let Some(app) = grant.application_sid.clone() else {
        return vec![frame(
            "hangup",
            json!({"callsid": callsid,
            "error": {"code": 31002, "message": "The token grants no outgoing application"}}),
        )];
    };
    let (to, encoded) = dialled(&grant.params, params, &app);
    let sent = api.browser.send(Command::Invite {
        session: s.id,
        call: callsid.to_owned(),
        to,
        sdp,
        headers: vec![(CLIENT_PARAMS_HEADER.to_owned(), encoded)],
    });
    if !sent {
        return vec![frame(
            "hangup",
            json!({"callsid": callsid,
            "error": {"code": 31005, "message": "The service is overloaded"}}),
        )];
    }
    let call = SessionCall {
        sid: None,
        incoming: false,
        answered: false,
    };
    s.calls.insert(callsid.to_owned(), call);
    Vec::new()
}

/// What a device's `connect()` dials: the token's parameters, then the page's (`params`, a
/// form; the page's win a name both have), and whom they name (`To` when it is a number or a
/// client's name, else the token's App `app`); the merged parameters, form-encoded.
pub fn dialled(token_params: &[(String, String)], params: &str, app: &str) -> (String, String) {
    let mut merged: Vec<(String, String)> = token_params.to_vec();
    for (k, v) in crate::providers::twilio::rest::json::form(params) {
        merged.retain(|(name, _)| *name != k);
        merged.push((k, v));
    }
    let to = (merged.iter())
        .find(|(k, _)| k == "To")
        .map(|(_, v)| v.as_str())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+*#".contains(c))
        })
        .unwrap_or(app)
        .to_owned();
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(merged.iter())
        .finish();
    (to, encoded)
}

/// A gateway event as the device's frames.
async fn on_event(api: &TwilioApi, s: &mut Session, event: SessionEvent) -> Vec<Message> {
    let sid_of = |sip_call_id: String| {
        let control = api.control.clone();
        async move { control.call_of_sip_call_id(&sip_call_id).await }
    };
    match event {
        SessionEvent::Registered(ok) => {
            s.registered = Some(ok);
            match (ok, s.want_ready) {
                (true, true) => vec![frame("ready", json!({}))],
                (false, _) => vec![error_frame(31201, "Authentication failed", None)],
                _ => Vec::new(),
            }
        }
        SessionEvent::Ringing {
            call,
            sdp,
            sip_call_id,
        } => {
            let sid = sid_of(sip_call_id).await;
            let Some(c) = s.calls.get_mut(&call) else {
                return Vec::new();
            };
            c.sid = sid.clone().or(c.sid.take());
            let known = c.sid.clone();
            let mut payload = json!({"callsid": c.sid.clone().unwrap_or(call)});
            if let Some(sid) = known {
                s.holds(api, &sid);
            }
            if let Some(sdp) = sdp {
                payload["sdp"] = json!(sdp);
            }
            vec![frame("ringing", payload)]
        }
        SessionEvent::Answered {
            call,
            sdp,
            sip_call_id,
            resume,
        } => {
            let sid = sid_of(sip_call_id).await;
            let Some(c) = s.calls.get_mut(&call) else {
                return Vec::new();
            };
            c.sid = sid.or(c.sid.take());
            c.answered = true;
            let callsid = c.sid.clone().unwrap_or(call);
            s.holds(api, &callsid);
            vec![frame(
                "answer",
                json!({"callsid": callsid, "sdp": sdp, "reconnect": resume}),
            )]
        }
        SessionEvent::Resumed { call, resume } => match resume {
            // The SDK's call is open again; it keeps the media it has. Only now, its token
            // good, do the application's messages for it come here.
            Some(resume) => {
                s.holds(api, &call);
                vec![frame(
                    "answer",
                    json!({"callsid": call, "reconnect": resume}),
                )]
            }
            None => {
                s.calls.remove(&call);
                vec![reconnect_failed(&call)]
            }
        },
        SessionEvent::Incoming {
            call,
            from,
            sdp,
            headers,
            sip_call_id,
            resume,
            ..
        } => {
            let Some((_, grant)) = s.signed_in.clone() else {
                return Vec::new();
            };
            if !grant.incoming || !s.want_ready {
                api.browser.send(Command::Hangup {
                    session: s.id,
                    call,
                    code: 480,
                });
                return Vec::new();
            }
            let Some(sid) = sid_of(sip_call_id).await else {
                api.browser.send(Command::Hangup {
                    session: s.id,
                    call,
                    code: 480,
                });
                return Vec::new();
            };
            let custom: Vec<(String, String)> = (headers.iter())
                .filter(|(name, _)| name.eq_ignore_ascii_case(CLIENT_PARAMS_HEADER))
                .flat_map(|(_, v)| crate::providers::twilio::rest::json::form(v))
                .collect();
            let params = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(custom.iter())
                .finish();
            let account = api.directory.account(&grant.account);
            // A browser client calling is `client:IDENTITY`, as Twilio shows it.
            let from = match crate::call::dial_plan::client_of(&from) {
                Some((identity, _)) => format!("client:{identity}"),
                None => from,
            };
            let parameters = json!({
                "CallSid": sid,
                "AccountSid": account.as_ref().map_or(grant.account.as_str(), |a| a.api_sid()),
                "From": from,
                "To": format!("client:{}", grant.identity),
                "ApiVersion": "2010-04-01",
                "Params": params,
            });
            s.calls.insert(
                call,
                SessionCall {
                    sid: Some(sid.clone()),
                    incoming: true,
                    answered: false,
                },
            );
            s.holds(api, &sid);
            vec![frame(
                "invite",
                json!({"callsid": sid, "sdp": sdp, "parameters": parameters, "reconnect": resume}),
            )]
        }
        SessionEvent::Held { .. } => Vec::new(),
        SessionEvent::Renegotiated { call, sdp, ok } => {
            let Some(c) = s.calls.get(&call) else {
                return Vec::new();
            };
            let callsid = c.sid.clone().unwrap_or(call);
            match sdp.filter(|_| ok) {
                Some(sdp) => vec![frame("answer", json!({"callsid": callsid, "sdp": sdp}))],
                // The SDK retries an ICE restart that gets no answer; the call goes on.
                None => Vec::new(),
            }
        }
        // Twilio's SDK keeps its peer connection across a reconnection: nothing to attach.
        SessionEvent::Attach { .. } => Vec::new(),
        SessionEvent::Ended { call, code } => {
            let Some(c) = s.calls.remove(&call) else {
                return Vec::new();
            };
            let callsid = c.sid.unwrap_or(call);
            api.user_messages.forget(&callsid);
            if c.incoming && !c.answered {
                let now = tokio::time::Instant::now();
                for after in RECANCEL {
                    if s.recancels.len() < MAX_RECANCELS {
                        s.recancels.push((now + after, callsid.clone()));
                    }
                }
                return vec![frame("cancel", json!({"callsid": callsid}))];
            }
            let mut payload = json!({"callsid": callsid});
            if !c.answered && code >= 400 {
                payload["error"] =
                    json!({"code": 31005, "message": format!("The call failed: SIP {code}")});
            }
            vec![frame("hangup", payload)]
        }
    }
}
