//! The live socket: a browser frontend follows an account's calls (or one call) as they
//! happen, without its application relaying anything. The application mints a short-lived
//! token with its account's credentials (`POST /v1/live/tokens`, Basic auth as for the REST
//! API: the account SID and auth token, or an API key), hands it to its page, and the page
//! opens `GET /v1/live?token=…` (a WebSocket): each event of the account's calls comes as one
//! JSON text message, the call's event as the core emits it (`call`, `seq`, `at`, `event` and
//! its fields). A token names its account and, if scoped, its call; it expires; it is
//! verified without being stored (HS256 with a key derived from the account's auth token, so
//! a new auth token revokes every live token). A call's token may also ask for the call's
//! audio (`&audio=inbound|outbound|both`, `&encoding=pcmu|l16`): an `audio` message naming
//! the format, then a `media` message per track every 20 ms (base64 payload, as Twilio's
//! media streams carry it); transcripts come as the call's `transcript` events. At most [`PER_TOKEN`] sockets share a token.
//! A socket whose reader falls behind is closed with the reason (1008, "slow reader") rather
//! than slowing the calls. Switchboard's own API, described in `/openapi.json`.

use crate::call::{ALL_CALLS, CallCommand, CallControl, EventKind};
use crate::infra::accounts::{Account, Directory};
use crate::infra::http::websocket;
use crate::infra::jwt::{self, Algorithm};
use crate::operator::admin::error;
use crate::operator::frontend::{Viewer, shown, unauthorized};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_media::record::Track;
use switchboard_media::{Law, TapFrame, TapId, TapTracks};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Sockets one token may have open at once.
pub const PER_TOKEN: usize = 3;
/// A token's life when the request names none, and the longest it may ask for.
const DEFAULT_TTL: u64 = 300;
const MAX_TTL: u64 = 3600;
/// Events waiting for a socket's reader; past them it is a slow reader.
const QUEUE: usize = 1024;
/// Frames of a call's audio waiting for a socket: past them the tap drops frames (and counts
/// them) rather than slowing the call.
const TAP_QUEUE: usize = 64;
/// The largest message a page may send (it has nothing to say but pings and a close).
const MAX_MESSAGE: usize = 4096;

#[derive(Clone)]
pub struct LiveApi {
    pub directory: Arc<Directory>,
    pub control: CallControl,
    /// The operator's token (`http.admin_token`): its live tokens follow every call.
    pub admin_token: Option<String>,
    /// Open sockets by token id.
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl LiveApi {
    pub fn new(
        directory: Arc<Directory>,
        control: CallControl,
        admin_token: Option<String>,
    ) -> Self {
        Self {
            directory,
            control,
            admin_token,
            open: Arc::default(),
        }
    }

    /// The key a token of `subject` is signed with: an account's (derived from its auth
    /// token) or, for [`ALL_CALLS`], the operator's (from the admin token).
    fn key_of(&self, subject: &str) -> Option<Vec<u8>> {
        if subject == ALL_CALLS {
            let token = self.admin_token.as_deref()?;
            return Some(
                Algorithm::Hs256.mac(token.as_bytes(), b"switchboard live socket, operator"),
            );
        }
        self.directory.account(subject).map(|a| key(&a))
    }
}

pub fn router(api: LiveApi) -> Router {
    Router::new()
        .route("/v1/live/tokens", post(mint))
        .route("/v1/live", get(upgrade))
        .with_state(api)
}

/// The key an account's live tokens are signed with: derived from its auth token.
fn key(account: &Account) -> Vec<u8> {
    Algorithm::Hs256.mac(account.auth_token.as_bytes(), b"switchboard live socket")
}

fn now_secs() -> i64 {
    crate::infra::clock::now_ms() / 1000
}

/// `POST {"call_sid": "CA…"?, "ttl_secs": N?}`: a token for the account's calls (or that
/// call's), 201 `{token, expires_at, url}`.
async fn mint(State(api): State<LiveApi>, headers: HeaderMap, body: Bytes) -> Response {
    let viewer = Viewer::of(&api.directory, api.admin_token.as_deref(), &headers);
    let Some(viewer) = viewer else {
        return unauthorized();
    };
    let subject = viewer.scope().unwrap_or(ALL_CALLS).to_owned();
    let asked: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return error(StatusCode::BAD_REQUEST, "expected a JSON object"),
        }
    };
    let call = match &asked["call_sid"] {
        Value::Null => None,
        Value::String(sid) if crate::infra::sid::is_sid(sid, "CA") => Some(sid.clone()),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "call_sid must be a call's SID (CA…)",
            );
        }
    };
    let ttl = match &asked["ttl_secs"] {
        Value::Null => DEFAULT_TTL,
        v => match v.as_u64().filter(|t| (1..=MAX_TTL).contains(t)) {
            Some(t) => t,
            None => return error(StatusCode::BAD_REQUEST, "ttl_secs must be 1 to 3600"),
        },
    };
    let exp = now_secs() + ttl as i64;
    let claims = json!({"sub": subject, "call": call, "exp": exp,
                        "jti": crate::services::directory::sip_logins::uuid_v4()});
    let Some(key) = api.key_of(&subject) else {
        return error(StatusCode::UNAUTHORIZED, "no such account");
    };
    let token = jwt::sign(Algorithm::Hs256, &key, Default::default(), &claims);
    let expires_at = crate::infra::store::format_ms(exp * 1000);
    let url = format!("/v1/live?token={token}");
    let body = json!({"token": token, "expires_at": expires_at, "url": url, "call_sid": call});
    (StatusCode::CREATED, Json(body)).into_response()
}

/// What a verified token allows: the account ([`ALL_CALLS`] for the operator's), the call
/// if scoped, and the token's id.
struct Grant {
    account: String,
    call: Option<String>,
    id: String,
    /// When it runs out (seconds since the epoch).
    exp: i64,
}

fn verify(api: &LiveApi, token: &str) -> Option<Grant> {
    let (_, claims) = jwt::peek(token).ok()?;
    let subject = claims.get("sub")?.as_str()?.to_owned();
    let key = api.key_of(&subject)?;
    let claims = jwt::verify(token, Algorithm::Hs256, &key, now_secs()).ok()?;
    Some(Grant {
        account: subject,
        call: claims
            .get("call")
            .and_then(Value::as_str)
            .map(str::to_owned),
        id: claims.get("jti")?.as_str()?.to_owned(),
        exp: claims.get("exp")?.as_i64()?,
    })
}

/// A socket counted against its token while it lives.
struct Seat {
    open: Arc<Mutex<HashMap<String, usize>>>,
    id: String,
}

impl Seat {
    fn take(open: &Arc<Mutex<HashMap<String, usize>>>, id: &str) -> Option<Self> {
        let mut map = open.lock().expect("not poisoned");
        let n = map.entry(id.to_owned()).or_insert(0);
        if *n >= PER_TOKEN {
            return None;
        }
        *n += 1;
        Some(Self {
            open: open.clone(),
            id: id.to_owned(),
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut map = self.open.lock().expect("not poisoned");
        if let Some(n) = map.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.id);
            }
        }
    }
}

/// A call's audio on a socket, as the page asked for it (`audio=…&encoding=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AudioSpec {
    tracks: TapTracks,
    /// μ-law, else 16-bit linear PCM in the browser's byte order (little-endian).
    ulaw: bool,
}

impl AudioSpec {
    /// From the query; `Ok(None)` when it asks for no audio.
    fn parse(query: &str) -> Result<Option<Self>, &'static str> {
        let value =
            |name: &str| (query.split('&')).find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
        let tracks = match value("audio") {
            None => return Ok(None),
            Some("inbound") => TapTracks::Inbound,
            Some("outbound") => TapTracks::Outbound,
            Some("both") => TapTracks::Both,
            Some(_) => return Err("audio must be inbound, outbound or both"),
        };
        let ulaw = match value("encoding") {
            None | Some("pcmu") => true,
            Some("l16") => false,
            Some(_) => return Err("encoding must be pcmu or l16"),
        };
        Ok(Some(Self { tracks, ulaw }))
    }

    fn encoding(self) -> &'static str {
        if self.ulaw {
            "audio/x-mulaw"
        } else {
            "audio/l16"
        }
    }

    /// A frame's samples as the page asked for them, in base64.
    fn payload(self, samples: &[i16]) -> String {
        use base64::Engine;
        let bytes = if self.ulaw {
            let mut out = vec![0u8; samples.len()];
            Law::Ulaw.encode(samples, &mut out);
            out
        } else {
            samples.iter().flat_map(|s| s.to_le_bytes()).collect()
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// `GET /v1/live?token=…` with `Upgrade: websocket`; a call's token may add
/// `&audio=inbound|outbound|both` (and `&encoding=pcmu|l16`) for the call's audio.
async fn upgrade(State(api): State<LiveApi>, req: Request<Body>) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let token = (query.split('&'))
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or_default()
        .to_owned();
    let Some(grant) = verify(&api, &token) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "a valid, unexpired live token is required",
        );
    };
    let audio = match AudioSpec::parse(&query) {
        Ok(audio) => audio,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if audio.is_some() && grant.call.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "audio is a call's: mint a token for the call (call_sid)",
        );
    }
    let Some(seat) = Seat::take(&api.open, &grant.id) else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "this token has its sockets open already",
        );
    };
    websocket::upgrade(req, MAX_MESSAGE, move |mut socket, place| async move {
        // The token was checked before the upgrade: the socket signs in at once, for its
        // account, unless the account holds all the signed-in sockets it may.
        if place.sign_in(&grant.account) != websocket::SignedIn::Yes {
            let close = CloseFrame {
                code: CloseCode::Again,
                reason: "this account has all its sockets open".into(),
            };
            websocket::send(&mut socket, Message::Close(Some(close))).await;
            return;
        }
        serve(api, socket, token, grant, audio, seat).await
    })
}

/// A call's tap feeding a socket.
struct Listening {
    tap: TapId,
    frames: mpsc::Receiver<TapFrame>,
}

/// Taps the call's audio; `None` while the call has no media to tap (not begun, or over), and
/// for a call that is not the grant's account's (a token may name any call SID: only its own
/// account's calls are heard, every call only by the operator's).
async fn listen(
    control: &CallControl,
    grant: &Grant,
    call: &str,
    spec: AudioSpec,
) -> Option<Listening> {
    let view = control.view(call).await.ok()?;
    if grant.account != ALL_CALLS && view.account.as_deref() != Some(grant.account.as_str()) {
        return None;
    }
    let (tx, frames) = mpsc::channel(TAP_QUEUE);
    let tap = TapId::next();
    let start = CallCommand::TapStart {
        tap,
        tracks: spec.tracks,
        tx: tx.into(),
    };
    control.command(call, start).await.ok()?;
    Some(Listening { tap, frames })
}

async fn serve(
    api: LiveApi,
    socket: websocket::Socket,
    token: String,
    grant: Grant,
    audio: Option<AudioSpec>,
    seat: Seat,
) {
    let _seat = seat;
    let (mut sink, mut source) = socket.split();
    // The token is good until it runs out or its account's auth token changes (a reload
    // here; every node reloads its own): then the socket closes.
    let left = u64::try_from(grant.exp.saturating_sub(now_secs())).unwrap_or(0);
    let expires = tokio::time::Instant::now() + Duration::from_secs(left);
    let mut accounts = api.directory.changes();
    let (tx, mut events) = mpsc::channel(QUEUE);
    if grant.account == ALL_CALLS {
        api.control.watch_all(tx);
    } else {
        api.control.watch_account(&grant.account, tx);
    }
    let call = grant.call.clone().unwrap_or_default();
    // The call's audio from the start if it is up, else from its answer.
    let mut listening = match audio {
        Some(spec) => listen(&api.control, &grant, &call, spec).await,
        None => None,
    };
    let announce = |spec: AudioSpec| {
        let tracks = match spec.tracks {
            TapTracks::Inbound => json!(["inbound"]),
            TapTracks::Outbound => json!(["outbound"]),
            TapTracks::Both => json!(["inbound", "outbound"]),
        };
        json!({"event": "audio", "call": call, "tracks": tracks,
               "encoding": spec.encoding(), "sample_rate": 8000})
        .to_string()
    };
    if let (Some(spec), Some(_)) = (audio, &listening)
        && !websocket::send(&mut sink, Message::Text(announce(spec).into())).await
    {
        return stop(&api, &call, listening).await;
    }
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    let reason = loop {
        tokio::select! {
            e = events.recv() => match e {
                Some(event) => {
                    if grant.call.as_deref().is_some_and(|c| c != event.call) {
                        continue;
                    }
                    let answered = matches!(event.kind, EventKind::Answered { .. });
                    let text = shown(&event).to_string();
                    if !websocket::send(&mut sink, Message::Text(text.into())).await {
                        return stop(&api, &call, listening).await;
                    }
                    if let (Some(spec), None, true) = (audio, &listening, answered) {
                        listening = listen(&api.control, &grant, &call, spec).await;
                        if listening.is_some()
                            && !websocket::send(&mut sink, Message::Text(announce(spec).into())).await
                        {
                            return stop(&api, &call, listening).await;
                        }
                    }
                }
                // The core let go of a watcher that fell behind.
                None => break "slow reader",
            },
            f = next_frame(&mut listening) => match (f, audio) {
                (Some(frame), Some(spec)) => {
                    let track = match frame.track {
                        Track::Inbound => "inbound",
                        Track::Outbound => "outbound",
                    };
                    let text = json!({"event": "media", "call": call, "track": track,
                        "timestamp": frame.at_ms, "payload": spec.payload(&frame.samples)})
                    .to_string();
                    if !websocket::send(&mut sink, Message::Text(text.into())).await {
                        return stop(&api, &call, listening).await;
                    }
                }
                // The call's media ended (its tap with it).
                _ => listening = None,
            },
            m = source.next() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    return stop(&api, &call, listening).await;
                }
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if !websocket::send(&mut sink, Message::Ping(Bytes::new())).await {
                    return stop(&api, &call, listening).await;
                }
            }
            _ = tokio::time::sleep_until(expires) => break "token expired",
            Ok(()) = accounts.changed() => {
                if verify(&api, &token).is_none() {
                    break "token revoked";
                }
            }
        }
    };
    stop(&api, &call, listening).await;
    let frame = CloseFrame {
        code: CloseCode::Policy,
        reason: reason.into(),
    };
    websocket::send(&mut sink, Message::Close(Some(frame))).await;
}

/// The next frame of the tap, if there is one; pending forever without.
async fn next_frame(listening: &mut Option<Listening>) -> Option<TapFrame> {
    match listening {
        Some(l) => l.frames.recv().await,
        None => std::future::pending().await,
    }
}

/// Releases the call's tap when the socket goes (a tap ended with its call needs nothing).
async fn stop(api: &LiveApi, call: &str, listening: Option<Listening>) {
    if let Some(l) = listening {
        let _ = api.control.command(call, CallCommand::TapStop(l.tap)).await;
    }
}
