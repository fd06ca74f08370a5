//! Media streams against the real binary: a SIPp caller whose RTP is the test's socket calls a
//! number whose TwiML streams the call to a WebSocket server of the test's (the
//! application). What is checked is what each side got: the messages on the socket (exact
//! fields and types, counters), the caller's audio on the right track (by tone), the
//! application's audio at the caller's ear, marks echoed once their audio played, `clear`,
//! digits, status callbacks signed as Twilio signs them, and the call going on when the
//! stream cannot connect or breaks.

use crate::common;

use axum::Router;

use axum::http::StatusCode;

use axum::routing::get;

use base64::Engine;

use base64::engine::general_purpose::STANDARD as B64;

use common::voice_app::*;

use common::ws_app::*;

use common::*;

use serde_json::{Value, json};

use std::net::{SocketAddr, UdpSocket};

use std::sync::Arc;

use std::time::{Duration, Instant};

use switchboard_control::infra::webhook::signature::{Algorithm, sign};

use switchboard_media::{FRAME, Law, tone};

mod bots;
mod failures;
mod forks;
mod signalwire;
mod wss;

const WAIT: Duration = Duration::from_secs(10);

/// μ-law bytes of a tone.
fn ulaw_tone(freq: f32, ms: u32) -> Vec<u8> {
    let pcm = tone::sines(&[freq], 6000.0, ms);
    let mut out = vec![0u8; pcm.len()];
    Law::Ulaw.encode(&pcm, &mut out);
    out
}

fn media(payload: &[u8]) -> Value {
    json!({"event": "media", "media": {"payload": B64.encode(payload)}})
}

fn decode_ulaw(payload: &str) -> Vec<i16> {
    let bytes = B64.decode(payload).unwrap();
    let mut pcm = vec![0i16; bytes.len()];
    Law::Ulaw.decode(&bytes, &mut pcm);
    pcm
}

/// Frames heard, with when they came.
type Heard = Arc<std::sync::Mutex<Vec<(Instant, Vec<i16>)>>>;

/// The phone's ear: every packet Switchboard sends it, decoded, with when it came.
struct Ear {
    heard: Heard,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl Ear {
    fn listen(phone: &UdpSocket) -> Self {
        let sock = phone.try_clone().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (heard, done) = (
            Arc::<std::sync::Mutex<Vec<_>>>::default(),
            Arc::<std::sync::atomic::AtomicBool>::default(),
        );
        let (h, d) = (heard.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !d.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let mut pcm = vec![0i16; n - 12];
                    Law::Ulaw.decode(&buf[12..n], &mut pcm);
                    h.lock().unwrap().push((Instant::now(), pcm));
                }
            }
        });
        Self { heard, done }
    }

    /// The frames heard from `from` on, after waiting `span` for them.
    fn since(&self, from: Instant, span: Duration) -> Vec<Vec<i16>> {
        std::thread::sleep((from + span).saturating_duration_since(Instant::now()));
        self.heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, f)| f.clone())
            .collect()
    }
}

impl Drop for Ear {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Frames in which `freq` dominates.
fn frames_of(frames: &[Vec<i16>], freq: f32) -> usize {
    frames
        .iter()
        .filter(|f| f.len() == FRAME && tone::share_at(f, freq) > 0.8)
        .count()
}

/// Sends `freq` from the phone for `ms` in the background.
fn talk(phone: &UdpSocket, to: SocketAddr, freq: f32, ms: u32) -> std::thread::JoinHandle<()> {
    let sock = phone.try_clone().unwrap();
    std::thread::spawn(move || send_audio(&sock, to, &tone::sines(&[freq], 6000.0, ms), 100))
}

/// The application's routes: `/voice` answers `voice`, `/next` answers `next`, status
/// callbacks are recorded, `/tone.wav` is a 600 ms 1 kHz tone, `/not-ws` refuses upgrades.
fn routes(voice: String, next: String) -> Router<App> {
    Router::new()
        .route("/voice", answers(voice))
        .route("/next", answers(next))
        .route("/stream-status", records())
        .route(
            "/tone.wav",
            get(|| async { ([("content-type", "audio/wav")], wav_1khz()) }),
        )
        .route("/not-ws", get(|| async { StatusCode::NOT_FOUND }))
}

const NUMBER: &str = "+17775550700";

/// Checks a stream status callback: Twilio's parameters, signed with the account's token.
fn stream_status(hit: &Hit, event: &str, stream: &str, call: &str) {
    assert!(hit.signed_with(TOKEN), "signed: {hit:?}");
    assert_eq!(hit.param("StreamEvent"), Some(event), "{hit:?}");
    assert_eq!(hit.param("StreamSid"), Some(stream));
    let name = hit.param("StreamName").unwrap();
    assert!(name == stream || name == "fork", "{name}");
    assert_eq!(hit.param("CallSid"), Some(call));
    assert_eq!(hit.param("AccountSid"), Some(ACCOUNT));
    let ts = hit.param("Timestamp").unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.contains('T'),
        "{ts}"
    );
}

/// The call's notifications, through the REST API: (error code, log level) in order.
fn notifications(server: &Server, call: &str) -> Vec<(String, String)> {
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}/Notifications.json");
    let (status, body) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut list: Vec<(String, String)> = v["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["error_code"].as_str().unwrap().to_owned(),
                n["log"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

/// What happens to a stream in one of the failure cases below.
struct Case {
    name: &'static str,
    number: &'static str,
    url: String,
    /// Notifications expected: (code, log).
    notified: Vec<(&'static str, &'static str)>,
    /// Stream status callbacks expected, in order.
    statuses: Vec<&'static str>,
}

/// A CA and a server certificate it signed for `names`: (the CA in PEM, the server's TLS
/// configuration).
fn tls_server(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}
