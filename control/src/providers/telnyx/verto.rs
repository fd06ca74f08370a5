//! Telnyx's browser signalling: the JSON-RPC ("Verto") WebSocket that `@telnyx/webrtc`
//! opens to its `host` (`new TelnyxRTC({host: "ws://…", login_token})`), served on the HTTP
//! listener's `/`, and `POST /call_report`, where the SDK sends its call-quality reports.
//! A session signs in with a telephony credential's token or a credential connection's (or
//! credential's) user name and password; it then is a SIP user of the core through the
//! browser gateway, which carries its calls. This module only translates: `telnyx_rtc.*`
//! requests into gateway commands and gateway events into `telnyx_rtc.*` requests to the
//! page. Message shapes: ../shared/reference/browser-sdks.md §1a and the SDK's
//! `VertoHandler.ts` / `BaseCall.ts`.
//!
//! A page whose socket drops keeps its calls up: the SDK reconnects on its own and logs in
//! again with its `sessid` and `reconnection: true` (it does so once it was given a
//! `voice_sdk_id`, which the login result carries). The same login gets the same session back:
//! the calls it had up are taken over by the new socket ([`Command::Resume`]) and listed in
//! `clientReady`'s `reattached_sessions`, so the SDK keeps them; then, as Telnyx does, each is
//! offered to the page anew in a `telnyx_rtc.attach` ([`Command::Attach`]), which the SDK
//! answers (its own `telnyx_rtc.attach`) with a new peer connection — what a reloaded page,
//! whose SDK logs in with the sessid it kept in sessionStorage, needs to hear its call again.
//! A browser that never comes back loses its calls when its media's consent lapses, or at
//! [`RECONNECT_WAIT`]. A session whose login stops being good (its credential deleted or
//! expired, its connection deleted) is sent `telnyx_rtc.punt`, and its calls end.

use super::Telnyx;
use super::verto_sessions::Waiting;
use crate::call::ids::CallId;
use crate::infra::http::throttle::Failures;
use crate::infra::http::websocket;
use crate::services::browser_gateway::{Command, SessionEvent, SessionId};
use crate::services::directory::sip_logins::{Login, uuid_v4};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

/// The largest message taken (an SDP offer with many candidates is a few KB).
const MAX_MESSAGE: usize = 256 * 1024;
/// To sign in after connecting.
const LOGIN_WAIT: Duration = Duration::from_secs(10);
/// A page that says nothing (the SDK pings every 35 s when idle) for this long is gone.
const IDLE: Duration = Duration::from_secs(90);
/// The largest call report kept in the log.
const MAX_REPORT: usize = 1024 * 1024;
/// How long a page's calls wait for it to log in again after its socket dropped (the SDK
/// retries every 2–6 s).
const RECONNECT_WAIT: Duration = Duration::from_secs(60);

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// `GET /` with `Upgrade: websocket`: a Verto session.
pub(super) async fn upgrade(State(api): State<Arc<Telnyx>>, req: Request<Body>) -> Response {
    // `/` is Verto's path for the SDK; a person opening the server's address in a browser
    // wants the console.
    if !websocket::asks_upgrade(req.headers()) {
        return axum::response::Redirect::to("/console/").into_response();
    }
    let failures = req.extensions().get::<Failures>().cloned();
    websocket::upgrade(req, MAX_MESSAGE, move |socket, place| {
        serve(api, socket, place, failures)
    })
}

/// `POST /call_report`: the SDK's report of a call's quality, logged (its id, duration and
/// how many samples) and acknowledged. Only a signed-in page sends one: the SDK posts it with
/// the `call_report_id` its session was given (`x-call-report-id`), and anything else is
/// refused with 401 unlogged. What it logs comes from the network: the log escapes its
/// control characters (see the server's log writer), and the call id is cut short here.
pub(super) async fn call_report(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| (headers.get(name)).and_then(|v| v.to_str().ok());
    let id = header("x-call-report-id");
    let user = match id {
        Some(id) => api.verto_sessions.user_of(id).await,
        None => None,
    };
    let Some(user) = user else {
        return super::errors::ApiError::unauthenticated().into_response();
    };
    if body.len() > MAX_REPORT {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let report: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let summary = &report["summary"];
    let call: String = (summary["callId"].as_str().unwrap_or_default().chars())
        .take(64)
        .collect();
    info!(
        %user,
        %call,
        duration_secs = summary["durationSeconds"].as_f64().unwrap_or_default(),
        stats = report["stats"].as_array().map_or(0, Vec::len),
        agent = %header(header::USER_AGENT.as_str()).unwrap_or_default(),
        "browser call report"
    );
    (StatusCode::OK, axum::Json(json!({}))).into_response()
}

/// One signed-in page.
struct Session {
    id: SessionId,
    /// Its socket's place: signed in with the login.
    place: websocket::SignIn,
    /// The id its call reports come with (once signed in).
    call_report_id: Option<String>,
    sessid: String,
    login: Option<Login>,
    registered: Option<bool>,
    client_ready_sent: bool,
    next_request: u64,
    /// Each call's `telnyx_rtc.modify` waiting for the far end (its request id and action).
    modifying: HashMap<String, (Value, String)>,
    /// A login was refused: the socket is closed after the reply.
    refused: bool,
    /// Each call's token to take it back after a reconnection, once it is up.
    calls: HashMap<String, CallState>,
    /// The calls a reconnection brought back, for `clientReady`.
    reattached: Vec<String>,
    /// Its login was revoked: the page was punted, and its calls end.
    punted: bool,
}

#[derive(Default)]
struct CallState {
    resume: Option<String>,
    answered: bool,
}

impl Session {
    fn request(&mut self, method: &str, params: Value) -> Message {
        self.next_request += 1;
        let id = self.next_request;
        text(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

fn result(id: &Value, result: Value) -> Message {
    text(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn error(id: &Value, code: i64, message: &str) -> Message {
    text(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

/// The Q.850 cause Verto reports for a SIP status that ended a call.
fn cause(code: u16) -> (&'static str, u16) {
    match code {
        200 => ("NORMAL_CLEARING", 16),
        404 | 484 => ("UNALLOCATED_NUMBER", 1),
        486 | 600 => ("USER_BUSY", 17),
        480 => ("NO_USER_RESPONSE", 18),
        408 => ("NO_ANSWER", 19),
        487 => ("ORIGINATOR_CANCEL", 487),
        403 | 603 => ("CALL_REJECTED", 21),
        503 => ("NORMAL_TEMPORARY_FAILURE", 41),
        _ => ("NORMAL_UNSPECIFIED", 31),
    }
}

/// The SIP status a page's `telnyx_rtc.bye` stands for, for a call not answered yet: the
/// cause it names (USER_BUSY declines as busy), else a decline.
pub fn hangup_code(params: &Value) -> u16 {
    match params["cause"].as_str() {
        Some("USER_BUSY") => 486,
        _ => 603,
    }
}

async fn serve(
    api: Arc<Telnyx>,
    socket: websocket::Socket,
    place: websocket::SignIn,
    failures: Option<Failures>,
) {
    let (mut sink, mut source) = socket.split();
    let (events_tx, mut events) = mpsc::channel::<SessionEvent>(256);
    let mut s = Session {
        id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        place,
        call_report_id: None,
        sessid: uuid_v4(),
        login: None,
        registered: None,
        client_ready_sent: false,
        next_request: 0,
        modifying: HashMap::new(),
        refused: false,
        calls: HashMap::new(),
        reattached: Vec::new(),
        punted: false,
    };
    let gateway = &api.parts.browser;
    let mut logins = api.parts.sip_logins.watch();
    let opened = tokio::time::Instant::now();
    loop {
        let deadline = match s.login {
            None => opened + LOGIN_WAIT,
            Some(_) => tokio::time::Instant::now() + IDLE,
        };
        let out: Vec<Message> = tokio::select! {
            m = tokio::time::timeout_at(deadline, source.next()) => match m {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let out = on_message(&api, &mut s, &events_tx, t.as_str()).await;
                    if s.refused {
                        // A failed login counts against the address (as a 401 would) and ends
                        // the socket: guessing costs a connection per try.
                        if let Some(f) = &failures {
                            f.failed();
                        }
                        websocket::send_all(&mut sink, out).await;
                        break;
                    }
                    out
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_) | Message::Frame(_)))) => continue,
                _ => break,
            },
            Some(e) = events.recv() => on_event(&api, &mut s, e).await,
            Ok(()) = logins.changed(), if s.login.is_some() => {
                let good = logins.borrow_and_update().clone();
                let login = s.login.as_ref().expect("signed in");
                if good.get(&login.user) == Some(&login.password) {
                    continue;
                }
                // Its credential was deleted or expired, or its connection deleted: the page
                // is told as Telnyx tells it (the SDK drops its calls and its socket), and
                // its calls end.
                info!(session = s.id, user = %login.user, "browser's login revoked: punted");
                s.punted = true;
                let punt = s.request("telnyx_rtc.punt", json!({}));
                websocket::send(&mut sink, punt).await;
                break;
            }
        };
        if !websocket::send_all(&mut sink, out).await {
            break;
        }
    }
    if let Some(id) = &s.call_report_id {
        api.verto_sessions.closed(id).await;
    }
    if let Some(login) = &s.login {
        let up: Vec<(String, String)> = (s.calls.iter())
            .filter(|(_, c)| c.answered)
            .filter_map(|(call, c)| Some((call.clone(), c.resume.clone()?)))
            .collect();
        if up.is_empty() || s.punted {
            gateway.send(Command::Close { session: s.id });
            info!(session = s.id, "browser signed out");
        } else {
            // The page may come back (a network blip): its calls wait for it.
            gateway.send(Command::Detach {
                session: s.id,
                keep: RECONNECT_WAIT,
            });
            let until = tokio::time::Instant::now() + RECONNECT_WAIT;
            let user = login.user.clone();
            (api.verto_sessions)
                .park(
                    &s.sessid,
                    Waiting {
                        user,
                        calls: up,
                        until,
                    },
                )
                .await;
            info!(
                session = s.id,
                "browser's socket dropped: its calls wait for it"
            );
        }
    }
    websocket::close(&mut sink).await;
}

/// A page's message: the replies and requests to send back.
async fn on_message(
    api: &Telnyx,
    s: &mut Session,
    events: &mpsc::Sender<SessionEvent>,
    text: &str,
) -> Vec<Message> {
    let Some(RpcMessage { id, method, params }) = RpcMessage::read(text) else {
        return vec![error(&Value::Null, -32700, "Parse error")];
    };
    let Some(method) = method.as_deref() else {
        // A result or error: the page acknowledging one of ours.
        return Vec::new();
    };
    let params = &params;
    let gateway = &api.parts.browser;
    if s.login.is_none() && method != "login" {
        return vec![error(&id, -32000, "Authentication Required")];
    }
    let dialog = &params["dialogParams"];
    let call_id = || call_id_of(params);
    match method {
        "login" => {
            if s.login.is_some() {
                return vec![result(
                    &id,
                    json!({"message": "logged in", "sessid": s.sessid}),
                )];
            }
            let login = match (params["login_token"].as_str(), params["login"].as_str()) {
                (Some(token), _) => api.parts.sip_logins.check_token(token).ok(),
                (None, Some(user)) => {
                    let password = (params["passwd"].as_str())
                        .or(params["password"].as_str())
                        .unwrap_or_default();
                    api.parts.sip_logins.check_password(user, password)
                }
                _ => None,
            };
            let Some(login) = login else {
                info!(session = s.id, "browser sign-in refused");
                s.refused = true;
                // Verto's codes (FreeSWITCH mod_verto): -32001 is a failed login, final;
                // -32000 asks the client to log in, which the SDK does again at once.
                return vec![error(&id, -32001, "Authentication Failure")];
            };
            match s.place.sign_in(&login.account) {
                websocket::SignedIn::Yes => {}
                // Its place went to a newcomer a moment ago: the socket is closing.
                websocket::SignedIn::Evicted => return Vec::new(),
                websocket::SignedIn::AccountFull => {
                    info!(session = s.id, account = %login.account, "browser sign-in refused: the account's sockets are all taken");
                    s.refused = true;
                    // Final like -32001 (the SDK does not log in again at once), and told apart.
                    return vec![error(&id, -32003, "Too Many Sessions")];
                }
            }
            s.call_report_id = api.verto_sessions.issue(&login.user).await;
            s.login = Some(login.clone());
            // The same page back after its socket dropped: its session and calls.
            let mut back = None;
            if params["reconnection"].as_bool() == Some(true)
                && let Some(sessid) = params["sessid"].as_str()
                && let Some(calls) = api.verto_sessions.take(sessid, &login.user).await
            {
                back = Some((sessid, calls));
            }
            let opened = gateway.send(Command::Open {
                session: s.id,
                login,
                events: events.clone(),
            });
            if !opened {
                return vec![error(&id, -32000, "Service Unavailable")];
            }
            if let Some((sessid, calls)) = back {
                s.sessid = sessid.to_owned();
                for (call, token) in calls {
                    let resume = Command::Resume {
                        session: s.id,
                        call: call.clone(),
                        token,
                    };
                    if gateway.send(resume) {
                        s.calls.insert(call.clone(), CallState::default());
                        s.reattached.push(call);
                    }
                }
                info!(
                    session = s.id,
                    calls = s.reattached.len(),
                    "browser back: its calls reattached"
                );
            }
            // The SDK logs in again with its sessid once it holds a voice_sdk_id.
            let mut reply = json!({"jsonrpc": "2.0", "id": id,
                "result": {"message": "logged in", "sessid": s.sessid}});
            reply["voice_sdk_id"] = json!(s.sessid);
            vec![Message::Text(reply.to_string().into())]
        }
        "telnyx_rtc.gatewayState" => {
            let state = match s.registered {
                Some(true) => "REGED",
                Some(false) => "FAILED",
                None => "TRYING",
            };
            let mut params = json!({"state": state});
            if let (Some(true), Some(report)) = (s.registered, &s.call_report_id) {
                // The SDK takes the id its call reports go with from REGED.
                params["call_report_id"] = json!(report);
            }
            vec![result(&id, json!({"params": params, "sessid": s.sessid}))]
        }
        "telnyx_rtc.ping" => vec![result(&id, json!({"message": "pong", "sessid": s.sessid}))],
        "telnyx_rtc.invite" => {
            let call = call_id();
            let to = (dialog["destination_number"].as_str()).unwrap_or_default();
            let to: String = to
                .chars()
                .filter(|c| !c.is_whitespace())
                .take(128)
                .collect();
            let sdp = params["sdp"].as_str().unwrap_or_default().to_owned();
            if call.is_empty() || to.is_empty() || sdp.is_empty() {
                return vec![error(
                    &id,
                    -32602,
                    "Invalid params: callID, destination_number and sdp are required",
                )];
            }
            let headers = (dialog["custom_headers"].as_array())
                .map(|h| {
                    h.iter()
                        .take(16)
                        .filter_map(|h| {
                            Some((
                                h["name"].as_str()?.to_owned(),
                                h["value"].as_str()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if s.calls.len() >= crate::services::browser_gateway::MAX_CALLS_PER_SESSION {
                return vec![error(&id, -32000, "Too many calls")];
            }
            s.calls.insert(call.clone(), CallState::default());
            gateway.send(Command::Invite {
                session: s.id,
                call: call.clone(),
                to,
                sdp,
                headers,
            });
            vec![result(
                &id,
                json!({"message": "CALL CREATED", "callID": call, "sessid": s.sessid}),
            )]
        }
        // The page's answer to our `telnyx_rtc.attach`: its new peer connection's description.
        "telnyx_rtc.answer" | "telnyx_rtc.attach" => {
            let call = call_id();
            if let Some(c) = s.calls.get_mut(&call) {
                c.answered = true;
            }
            let sdp = params["sdp"].as_str().unwrap_or_default().to_owned();
            gateway.send(Command::Answer {
                session: s.id,
                call: call.clone(),
                sdp,
            });
            vec![result(
                &id,
                json!({"message": "CALL ANSWERED", "callID": call, "sessid": s.sessid}),
            )]
        }
        "telnyx_rtc.bye" => {
            let call = call_id();
            s.calls.remove(&call);
            gateway.send(Command::Hangup {
                session: s.id,
                call: call.clone(),
                code: hangup_code(params),
            });
            let (cause, code) = cause(200);
            vec![result(
                &id,
                json!({"message": "CALL ENDED", "callID": call, "sessid": s.sessid,
                       "cause": cause, "causeCode": code}),
            )]
        }
        "telnyx_rtc.modify" => {
            let call = call_id();
            let action = params["action"].as_str().unwrap_or_default();
            let hold = match action {
                "hold" => Some(Some(true)),
                "unhold" => Some(Some(false)),
                // The gateway knows whether the call is held.
                "toggleHold" => Some(None),
                // The SDK's ICE restart: its new offer, our answer back in the result.
                "updateMedia" if params["sdp"].is_string() => None,
                _ => return vec![error(&id, -32602, "Invalid params: action")],
            };
            if s.modifying.contains_key(&call) || s.modifying.len() >= 16 {
                return vec![error(&id, -32000, "A modify is in progress")];
            }
            s.modifying.insert(call.clone(), (id, action.to_owned()));
            let Some(hold) = hold else {
                let sdp = params["sdp"].as_str().unwrap_or_default().to_owned();
                gateway.send(Command::Renegotiate {
                    session: s.id,
                    call,
                    sdp,
                });
                return Vec::new();
            };
            gateway.send(Command::Hold {
                session: s.id,
                call,
                hold,
            });
            Vec::new()
        }
        "telnyx_rtc.info" => {
            if let Some(digits) = params["dtmf"].as_str() {
                gateway.send(Command::Dtmf {
                    session: s.id,
                    call: call_id(),
                    digits: digits.chars().take(32).collect(),
                });
            }
            vec![result(&id, json!({"message": "SENT", "sessid": s.sessid}))]
        }
        // ICE-lite: the server learns the browser's addresses from its connectivity checks,
        // so trickled candidates are not needed (and the SDK gathers fully by default).
        "telnyx_rtc.candidate" | "telnyx_rtc.endOfCandidates" => {
            vec![result(&id, json!({"message": "OK", "sessid": s.sessid}))]
        }
        "anonymous_login" => vec![error(&id, -32000, "Anonymous login is not available")],
        other => {
            debug!(session = s.id, method = other, "unsupported Verto method");
            vec![error(&id, -32601, "Method not found")]
        }
    }
}

/// The Telnyx ids of the call a gateway leg belongs to, as the page's `telnyx_*` params: what
/// the page shows its app to correlate with Call Control (`call.telnyxIDs`).
async fn telnyx_ids(api: &Telnyx, sip_call_id: &str) -> serde_json::Map<String, Value> {
    let mut ids = serde_json::Map::new();
    let call = api.parts.control.call_of_sip_call_id(sip_call_id).await;
    if let Some(id) = call.as_deref().and_then(CallId::from_sid) {
        ids.insert("telnyx_call_control_id".into(), json!(id.control_id()));
        ids.insert("telnyx_session_id".into(), json!(id.session_uuid()));
        ids.insert("telnyx_leg_id".into(), json!(id.uuid()));
    }
    ids
}

/// The params of a request about a call: `fields` and the call's Telnyx ids.
fn with_ids(fields: Value, ids: &serde_json::Map<String, Value>) -> Value {
    let mut params = fields;
    if let Some(o) = params.as_object_mut() {
        o.extend(ids.clone());
    }
    params
}

/// A page's JSON-RPC message as read off the socket: its id, its method (none for a result or
/// an error answering one of ours) and its parameters.
pub struct RpcMessage {
    pub id: Value,
    pub method: Option<String>,
    pub params: Value,
}

impl RpcMessage {
    /// `None` for what is not JSON.
    pub fn read(text: &str) -> Option<Self> {
        let mut msg = serde_json::from_str::<Value>(text).ok()?;
        let take = |msg: &mut Value, name: &str| msg.get_mut(name).map(Value::take);
        Some(Self {
            id: take(&mut msg, "id").unwrap_or(Value::Null),
            method: msg["method"].as_str().map(str::to_owned),
            params: take(&mut msg, "params").unwrap_or(Value::Null),
        })
    }
}

/// The call a request names (`dialogParams.callID`, or `callID`), cut to 64 characters.
pub fn call_id_of(params: &Value) -> String {
    (params["dialogParams"]["callID"].as_str())
        .or(params["callID"].as_str())
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect()
}

/// A gateway event as the page's requests.
async fn on_event(api: &Telnyx, s: &mut Session, event: SessionEvent) -> Vec<Message> {
    match event {
        SessionEvent::Registered(ok) => {
            s.registered = Some(ok);
            if !ok {
                warn!(session = s.id, "browser's registration failed");
            }
            if ok && !s.client_ready_sent {
                s.client_ready_sent = true;
                let reattached = std::mem::take(&mut s.reattached);
                return vec![s.request(
                    "telnyx_rtc.clientReady",
                    json!({"reattached_sessions": reattached}),
                )];
            }
            Vec::new()
        }
        SessionEvent::Ringing {
            call,
            sdp,
            sip_call_id,
        } => {
            let ids = telnyx_ids(api, &sip_call_id).await;
            let mut out = vec![s.request(
                "telnyx_rtc.ringing",
                with_ids(json!({"callID": call}), &ids),
            )];
            if let Some(sdp) = sdp {
                out.push(s.request("telnyx_rtc.media", json!({"callID": call, "sdp": sdp})));
            }
            out
        }
        SessionEvent::Answered {
            call,
            sdp,
            sip_call_id,
            resume,
        } => {
            if let Some(c) = s.calls.get_mut(&call) {
                c.answered = true;
                c.resume = Some(resume);
            }
            let ids = telnyx_ids(api, &sip_call_id).await;
            let params = with_ids(json!({"callID": call, "sdp": sdp}), &ids);
            vec![s.request("telnyx_rtc.answer", params)]
        }
        SessionEvent::Incoming {
            call,
            from,
            from_name,
            to,
            sdp,
            headers,
            sip_call_id,
            resume,
        } => {
            if s.calls.len() < crate::services::browser_gateway::MAX_CALLS_PER_SESSION {
                let state = CallState {
                    resume: Some(resume),
                    answered: false,
                };
                s.calls.insert(call.clone(), state);
            }
            let ids = telnyx_ids(api, &sip_call_id).await;
            let custom: Vec<Value> = (headers.iter())
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            let params = json!({"callID": call, "sdp": sdp, "caller_id_name": from_name,
                   "caller_id_number": from, "callee_id_name": to, "callee_id_number": to,
                   "display_direction": "inbound",
                   "dialogParams": {"custom_headers": custom}});
            vec![s.request("telnyx_rtc.invite", with_ids(params, &ids))]
        }
        SessionEvent::Held { call, held, ok } => {
            let Some((id, action)) = s.modifying.remove(&call) else {
                return Vec::new();
            };
            if !ok {
                return vec![error(&id, -32000, "The far end refused the change")];
            }
            let state = if held { "held" } else { "active" };
            vec![result(
                &id,
                json!({"callID": call, "action": action, "holdState": state, "sessid": s.sessid}),
            )]
        }
        SessionEvent::Resumed { call, resume } => match resume {
            Some(resume) => {
                let state = CallState {
                    resume: Some(resume),
                    answered: true,
                };
                s.calls.insert(call.clone(), state);
                // As Telnyx does after a reconnection, the call is offered to the page anew
                // (`telnyx_rtc.attach`): the SDK answers with a new peer connection, which a
                // reloaded page needs and a page whose media lived takes as well.
                api.parts.browser.send(Command::Attach {
                    session: s.id,
                    call,
                });
                Vec::new()
            }
            // Gone meanwhile: the page's call ends.
            None => {
                s.calls.remove(&call);
                let (cause, cause_code) = cause(200);
                vec![s.request(
                    "telnyx_rtc.bye",
                    json!({"callID": call, "cause": cause, "causeCode": cause_code}),
                )]
            }
        },
        SessionEvent::Attach {
            call,
            sdp: Some(sdp),
            from,
            to,
            sip_call_id,
        } => {
            let ids = telnyx_ids(api, &sip_call_id).await;
            let params = json!({"callID": call, "sdp": sdp, "caller_id_name": from,
                   "caller_id_number": from, "callee_id_name": to, "callee_id_number": to});
            vec![s.request("telnyx_rtc.attach", with_ids(params, &ids))]
        }
        // Not offered anew (the call is changing, or gone): the page keeps the media it has.
        SessionEvent::Attach { sdp: None, .. } => Vec::new(),
        SessionEvent::Renegotiated { call, sdp, ok } => {
            let Some((id, action)) = s.modifying.remove(&call) else {
                return Vec::new();
            };
            match sdp.filter(|_| ok) {
                Some(sdp) => vec![result(
                    &id,
                    json!({"callID": call, "action": action, "sdp": sdp, "sessid": s.sessid}),
                )],
                None => vec![error(&id, -32000, "The far end refused the new media")],
            }
        }
        SessionEvent::Ended { call, code } => {
            s.calls.remove(&call);
            let mut out = Vec::new();
            if let Some((id, _)) = s.modifying.remove(&call) {
                out.push(error(&id, -32000, "The call ended"));
            }
            let (cause, cause_code) = cause(code);
            out.push(s.request(
                "telnyx_rtc.bye",
                json!({"callID": call, "cause": cause, "causeCode": cause_code, "sipCode": code}),
            ));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_follow_the_sip_status() {
        assert_eq!(super::cause(200), ("NORMAL_CLEARING", 16));
        assert_eq!(super::cause(486), ("USER_BUSY", 17));
        assert_eq!(super::cause(487).1, 487);
        assert_eq!(super::cause(599).0, "NORMAL_UNSPECIFIED");
    }
}
