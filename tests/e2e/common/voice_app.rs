//! The application side of TwiML tests: an HTTP server on loopback that answers TwiML and
//! records every request Switchboard makes (checking its X-Twilio-Signature), and a SIPp
//! caller whose media is a socket of the test's.

use super::{Net, Server, SippRun, eregs, run_sipp, scenario};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_control::infra::webhook::signature::{Algorithm, sign};
use switchboard_media::{FRAME, Law, tone};

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "s3cr3t-auth-token";

#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub method: String,
    pub params: Vec<(String, String)>,
    /// What a validator signs: the URL as configured (with the query for GET) and the POST
    /// parameters.
    pub signed_url: String,
    pub signed_params: Vec<(String, String)>,
    pub twilio_signature: String,
    pub signalwire_signature: Option<String>,
    /// Whether the body carries the test Telnyx account's Ed25519 signature (TeXML's).
    pub telnyx_signed: bool,
    /// Every header, names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body as sent (a JSON webhook's).
    pub body: String,
}

impl Hit {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether X-Twilio-Signature is right for `key`.
    pub fn signed_with(&self, key: &str) -> bool {
        self.twilio_signature
            == sign(
                key,
                &self.signed_url,
                &self.signed_params,
                Algorithm::HmacSha1,
            )
    }
}

#[derive(Clone)]
pub struct App {
    pub base: String,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    /// /flaky-status fails this many times before it answers 200.
    pub flaky: Arc<std::sync::atomic::AtomicUsize>,
}

pub fn form(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl App {
    /// Serves `routes` on `ip` (any free port) with a new recorder as their state.
    pub async fn serve(ip: &str, routes: Router<App>) -> App {
        let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
            .await
            .unwrap();
        let app = App {
            base: format!("http://{}", listener.local_addr().unwrap()),
            hits: Arc::default(),
            flaky: Arc::new(2.into()),
        };
        let router = routes.with_state(app.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        app
    }

    /// The requests to `path` so far, once there are at least `n` (panics after `wait`).
    pub fn hits_to(&self, path: &str, n: usize, wait: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + wait;
        loop {
            let hits: Vec<Hit> = self
                .hits
                .lock()
                .unwrap()
                .iter()
                .filter(|h| h.path == path)
                .cloned()
                .collect();
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests to {path}: {:#?}",
                hits.len(),
                self.hits.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Records a request and checks its signature: POST over URL + parameters, GET over the
    /// full URL.
    pub fn hit(
        &self,
        method: &str,
        uri: &Uri,
        query: Option<String>,
        headers: &HeaderMap,
        body: &str,
    ) {
        let url = format!("{}{}", self.base, uri.path());
        let (signed_url, params) = match method {
            "GET" => (
                format!("{url}?{}", query.clone().unwrap_or_default()),
                form(&query.unwrap_or_default()),
            ),
            _ => (url, form(body)),
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let signed_params = if method == "GET" {
            vec![]
        } else {
            params.clone()
        };
        self.hits.lock().unwrap().push(Hit {
            path: uri.path().to_owned(),
            method: method.to_owned(),
            params,
            signed_url,
            signed_params,
            twilio_signature: header("x-twilio-signature").unwrap_or_default(),
            signalwire_signature: header("x-signalwire-signature"),
            headers: (headers.iter())
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            telnyx_signed: super::sdk_app::telnyx::signed(
                &header("telnyx-timestamp").unwrap_or_default(),
                &header("telnyx-signature-ed25519").unwrap_or_default(),
                body,
            ),
            body: body.to_owned(),
        });
    }
}

/// A POST route that records the request and answers `document` as TwiML.
pub fn answers(document: impl Into<String>) -> axum::routing::MethodRouter<App> {
    let document: String = document.into();
    post(
        move |State(app): State<App>, uri: Uri, h: HeaderMap, body: String| {
            let document = document.clone();
            async move {
                app.hit("POST", &uri, None, &h, &body);
                twiml(document)
            }
        },
    )
}

/// A POST route that records the request and answers 200 with nothing (a status callback).
pub fn records() -> axum::routing::MethodRouter<App> {
    post(
        |State(app): State<App>, uri: Uri, h: HeaderMap, body: String| async move {
            app.hit("POST", &uri, None, &h, &body);
            ""
        },
    )
}

pub fn twiml(body: impl Into<String>) -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "text/xml")], body.into())
}

pub fn wav_1khz() -> Vec<u8> {
    let data: Vec<u8> = tone::sines(&[1000.0], 8000.0, 600)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 1 | (1 << 16), 8000, 16000, 2 | (16 << 16)] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// The test account and its numbers: each a phone number and its other keys (TOML), where
/// `{base}` stands for the test application's address.
/// `Calls.create` through `server`'s REST API as [`ACCOUNT`]: +15550001 calls +15551234 (the
/// usual route to carrier-b) running `twiml`, with `extra` form fields (`&Record=true`…);
/// the new call's SID.
pub fn place_call(server: &Server, twiml: &str, extra: &str) -> String {
    let twiml = url::form_urlencoded::byte_serialize(twiml.as_bytes()).collect::<String>();
    let (status, body) = server.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
        Some((ACCOUNT, TOKEN)),
        &format!("To=%2B15551234&From=%2B15550001&Twiml={twiml}{extra}"),
    );
    assert_eq!(status, 201, "{body}\n{}", server.log());
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    created["sid"].as_str().unwrap().to_owned()
}

pub fn numbers_config(base: &str, numbers: &[(&str, &str)]) -> String {
    let mut toml = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n"
    );
    for (phone, keys) in numbers {
        toml += &format!(
            "[[numbers]]\nphone_number = \"{phone}\"\naccount_sid = \"{ACCOUNT}\"\n{}\n",
            keys.replace("{base}", base)
        );
    }
    toml
}

/// A SIPp caller on carrier-a dialing `number`, whose media (PCMU and telephone-event) is the
/// returned socket's; it stays on the line until Switchboard hangs up.
pub fn call_with_phone(
    net: &Arc<Net>,
    server: &Server,
    number: &'static str,
) -> (UdpSocket, std::thread::JoinHandle<SippRun>) {
    call_with_headers(net, server, number, &[], (&[], &[]))
}

/// [`call_with_phone`] for a call that lasts up to `limit` (40 s otherwise): one the test
/// ends itself after waiting on something slower on a busy machine.
pub fn call_with_phone_for(
    net: &Arc<Net>,
    server: &Server,
    number: &'static str,
    limit: Duration,
) -> (UdpSocket, std::thread::JoinHandle<SippRun>) {
    call_within(net, server, number, &[], (&[], &[]), (limit, None))
}

/// [`call_with_phone`] whose INVITE has the Call-ID `call_id` (SIPp's `-cid_str`): a call a
/// node of several call-core shards takes on the shard that Call-ID names.
pub fn call_with_phone_as(
    net: &Arc<Net>,
    server: &Server,
    number: &'static str,
    call_id: String,
) -> (UdpSocket, std::thread::JoinHandle<SippRun>) {
    let limit = Duration::from_secs(40);
    call_within(net, server, number, &[], (&[], &[]), (limit, Some(call_id)))
}

/// `(where, regexp)` checks of a SIP message (see [`eregs`]).
pub type Checks<'a> = &'a [(&'a str, &'a str)];

/// [`call_with_phone`] with more INVITE `headers`, whose 200 and BYE must pass their checks
/// or SIPp fails the call.
pub fn call_with_headers(
    net: &Arc<Net>,
    server: &Server,
    number: &'static str,
    headers: &[(&str, &str)],
    checks: (Checks<'_>, Checks<'_>),
) -> (UdpSocket, std::thread::JoinHandle<SippRun>) {
    call_within(
        net,
        server,
        number,
        headers,
        checks,
        (Duration::from_secs(40), None),
    )
}

fn call_within(
    net: &Arc<Net>,
    server: &Server,
    number: &'static str,
    headers: &[(&str, &str)],
    (on_answer, on_bye): (Checks<'_>, Checks<'_>),
    (limit, call_id): (Duration, Option<String>),
) -> (UdpSocket, std::thread::JoinHandle<SippRun>) {
    let phone = UdpSocket::bind(format!("{}:0", net.ip(5))).unwrap();
    let port = phone.local_addr().unwrap().port().to_string();
    let audio = "0 101\n      a=rtpmap:0 PCMU/8000\n      a=rtpmap:101 telephone-event/8000";
    let headers: String = (headers.iter())
        .map(|(name, value)| format!("\n      {name}: {value}"))
        .collect();
    let action = |checks: &[(&str, &str)]| match checks {
        [] => String::new(),
        checks => format!("<action>{}</action>", eregs(checks)),
    };
    let uac = scenario(
        net,
        "uac_media_wait_bye.xml",
        &[
            ("RTP_IP", &net.ip(5)),
            ("RTP_PORT", &port),
            ("AUDIO", audio),
            ("HEADERS", &headers),
            ("ANSWER_CHECKS", &action(on_answer)),
            ("BYE_CHECKS", &action(on_bye)),
        ],
    );
    let (net, sip) = (net.clone(), server.sip);
    let caller = std::thread::spawn(move || {
        let ip = net.ip(2);
        let mut args = vec!["-s", number, "-m", "1"];
        if let Some(call_id) = &call_id {
            args.extend(["-cid_str", call_id.as_str()]);
        }
        run_sipp(&net, &uac, &ip, 5060, sip, &args, limit)
    });
    (phone, caller)
}

/// Waits for the prompt the phone is played to end, then says `samples` and a second and a
/// half of quiet; the address it sent to.
pub fn say_after_prompt(phone: &UdpSocket, samples: &[i16]) -> SocketAddr {
    let (_, endpoint) = listen(phone, Duration::from_millis(600), Duration::from_secs(15));
    let endpoint = endpoint.expect("the prompt");
    let mut audio = tone::silence(200);
    audio.extend_from_slice(samples);
    audio.extend(tone::silence(1500));
    super::send_audio(phone, endpoint, &audio, 100);
    endpoint
}

/// RTP audio from Switchboard, from its first packet (waited for up to `max`: the call's
/// setup and its first prompt may take a while on a busy machine) until `quiet` passes without
/// a packet (or `max` elapses).
pub fn listen(sock: &UdpSocket, quiet: Duration, max: Duration) -> (Vec<i16>, Option<SocketAddr>) {
    sock.set_read_timeout(Some(max)).unwrap();
    let (mut audio, mut from) = (Vec::new(), None);
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    while start.elapsed() < max {
        let Ok((n, src)) = sock.recv_from(&mut buf) else {
            break;
        };
        if from.is_none() {
            sock.set_read_timeout(Some(quiet)).unwrap();
        }
        from = Some(src);
        let mut pcm = [0i16; FRAME];
        Law::Ulaw.decode(&buf[12..n], &mut pcm);
        audio.extend_from_slice(&pcm[..n - 12]);
    }
    (audio, from)
}

/// A SIPp caller on carrier-a dialing `number` and staying until Switchboard hangs up; the
/// call must complete within `secs`.
pub fn call_until_bye(net: &Net, server: &Server, number: &str, secs: u64) {
    let uac = scenario(net, "uac_wait_bye.xml", &[]);
    let args = ["-s", number, "-m", "1"];
    let run = run_sipp(
        net,
        &uac,
        &net.ip(2),
        5060,
        server.sip,
        &args,
        Duration::from_secs(secs),
    );
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
}

/// A speech service in the OpenAI audio API's shape (`POST /v1/audio/speech`) whose voices
/// are espeak-ng's (`voice` names one, `es`): a real synthesiser behind the operator's engine's
/// wire, and the requests it got (their `Authorization` and JSON body).
pub async fn speech_service(
    ip: &str,
) -> (App, Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>) {
    use axum::http::HeaderMap;
    let spoken = Arc::new(std::sync::Mutex::new(Vec::new()));
    let service = {
        let spoken = spoken.clone();
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let spoken = spoken.clone();
            async move {
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let auth = (headers.get("authorization"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                spoken.lock().unwrap().push((auth, body.clone()));
                let voice = body["voice"].as_str().unwrap_or_default().to_owned();
                let input = body["input"].as_str().unwrap_or_default().to_owned();
                let wav = tokio::task::spawn_blocking(move || {
                    std::process::Command::new("espeak-ng")
                        .args(["--stdout", "-s", "150", "-v", &voice, &input])
                        .output()
                        .expect("espeak-ng")
                        .stdout
                })
                .await
                .unwrap();
                ([("content-type", "audio/wav")], wav)
            }
        })
    };
    let app = App::serve(ip, Router::new().route("/v1/audio/speech", service)).await;
    (app, spoken)
}
