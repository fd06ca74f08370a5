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

#[test]
fn a_voice_bot_hears_the_caller_and_talks_back_with_marks_clear_and_digits() {
    let net = Arc::new(Net::new(70));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let ws_url = ws.url("/media");
    let voice = format!(
        r#"<Response><Play>/tone.wav</Play><Connect action="/next"><Stream url="{ws_url}" statusCallback="/stream-status"><Parameter name="FirstName" value="Jane"/></Stream></Connect></Response>"#
    );
    let app = rt.block_on(App::serve(
        &net.ip(9),
        routes(
            voice,
            "<Response><Play>/tone.wav</Play><Hangup/></Response>".into(),
        ),
    ));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(NUMBER, "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start(&net, &config);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);

    // The greeting tells the phone where Switchboard's RTP is.
    let (greeting, endpoint) = listen(&phone, Duration::from_millis(300), WAIT);
    let endpoint = endpoint.expect("the greeting");
    assert!(tone::share_at(&greeting[800..4000], 1000.0) > 0.9);
    let ear = Ear::listen(&phone);

    let mut conn = rt.block_on(ws.accept(WAIT));
    // The upgrade carries Twilio's signature over the stream URL (no parameters).
    assert_eq!(conn.path, "/media");
    assert_eq!(
        conn.headers.get("x-twilio-signature").map(String::as_str),
        Some(sign(TOKEN, &ws_url, &[], Algorithm::HmacSha1).as_str())
    );
    // Twilio's stream client names itself as a real handshake does: apps test the prefix.
    assert_eq!(
        conn.headers.get("user-agent").map(String::as_str),
        Some("Twilio.TmeWs/1.0")
    );
    let mut seen = Vec::new();
    let (_, connected) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(
        connected,
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    );
    let (_, start) = rt.block_on(conn.json(WAIT)).unwrap();
    let stream = start["streamSid"].as_str().unwrap().to_owned();
    let call = start["start"]["callSid"].as_str().unwrap().to_owned();
    assert!(stream.starts_with("MZ") && stream.len() == 34, "{stream}");
    assert!(call.starts_with("CA") && call.len() == 34);
    assert_eq!(
        start,
        json!({"event": "start", "sequenceNumber": "1", "streamSid": stream,
            "start": {"accountSid": ACCOUNT, "streamSid": stream, "callSid": call,
                "tracks": ["inbound"], "customParameters": {"FirstName": "Jane"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    );
    seen.push(start);

    // The caller speaks (700 Hz for a second): it arrives as inbound media, 20 ms a message,
    // after the silence since the stream started (every slot has its message).
    let talking = talk(&phone, endpoint, 700.0, 1000);
    let mut heard: Vec<Vec<i16>> = Vec::new();
    let loud = |f: &Vec<i16>| f.iter().any(|s| s.abs() > 1000);
    // Until the second of speech and the silence after it have come.
    while heard.iter().filter(|f| loud(f)).count() < 45 || heard.last().is_some_and(loud) {
        let (_, m) = rt.block_on(conn.json(WAIT)).unwrap();
        assert_eq!(m["event"], "media", "{m}");
        let media = &m["media"];
        assert_eq!(media["track"], "inbound");
        assert_eq!(m["streamSid"], stream.as_str());
        for key in ["chunk", "timestamp"] {
            assert!(media[key].is_string(), "{key} is a string: {m}");
        }
        let pcm = decode_ulaw(media["payload"].as_str().unwrap());
        assert_eq!(pcm.len(), FRAME);
        heard.push(pcm);
        seen.push(m);
        assert!(heard.len() < 500, "the caller's second of audio never came");
    }
    talking.join().unwrap();
    let voiced: Vec<i16> = heard
        .iter()
        .filter(|f| loud(f))
        .flatten()
        .copied()
        .collect();
    assert!(voiced.len() <= 52 * FRAME, "one second, once");
    assert!(tone::share_at(&voiced, 700.0) > 0.9);
    let chunks: Vec<u64> = seen[1..]
        .iter()
        .map(|m| m["media"]["chunk"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(chunks, (1..=chunks.len() as u64).collect::<Vec<_>>());
    let stamps: Vec<u64> = seen[1..]
        .iter()
        .map(|m| m["media"]["timestamp"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[1] > w[0]),
        "timestamps grow: {stamps:?}"
    );
    // N frames span (N - 1) × 20 ms of the stream's clock.
    let span = stamps[stamps.len() - 1] - stamps[0];
    let expected = (stamps.len() as u64 - 1) * 20;
    assert!(
        span.abs_diff(expected) < 100,
        "{span} ms for {} frames",
        stamps.len()
    );

    // A whole utterance in one message (a second of 1500 Hz), then a mark: the caller hears
    // it, and the mark comes back once it has played.
    let sent = Instant::now();
    conn.send_json(media(&ulaw_tone(1500.0, 1000)));
    conn.send_json(json!({"event": "mark", "streamSid": stream, "mark": {"name": "utterance"}}));
    let frames = ear.since(sent, Duration::from_millis(1300));
    assert!(
        frames_of(&frames, 1500.0) >= 45,
        "{} frames of the utterance",
        frames_of(&frames, 1500.0)
    );
    let (before, (at, mark)) = rt.block_on(conn.until("mark", WAIT));
    seen.extend(before);
    assert_eq!(mark["mark"]["name"], "utterance");
    let after = at - sent;
    assert!(
        after >= Duration::from_millis(900),
        "the mark came {after:?} after its second of audio was sent"
    );
    seen.push(mark);

    // 50 ms chunks, each followed by a mark (as voice bots send them): the marks come back in
    // order and the audio is heard without gaps.
    let chunks_sent = Instant::now();
    for i in 0..6 {
        conn.send_json(media(&ulaw_tone(900.0, 300)[i * 400..(i + 1) * 400]));
        conn.send_json(json!({"event": "mark", "mark": {"name": format!("chunk {i}")}}));
    }
    let frames = ear.since(chunks_sent, Duration::from_millis(600));
    let chunked: Vec<i16> = frames
        .iter()
        .filter(|f| f.iter().any(|s| s.abs() > 1000))
        .flatten()
        .copied()
        .collect();
    assert_eq!(chunked.len(), 15 * FRAME, "300 ms of audio, not padded");
    assert!(tone::share_at(&chunked, 900.0) > 0.95);
    let mut names = Vec::new();
    while names.len() < 6 {
        let (before, (_, m)) = rt.block_on(conn.until("mark", WAIT));
        seen.extend(before);
        names.push(m["mark"]["name"].as_str().unwrap().to_owned());
        seen.push(m);
    }
    assert_eq!(
        names,
        (0..6).map(|i| format!("chunk {i}")).collect::<Vec<_>>()
    );

    // Barge-in: three seconds queued, then `clear` half a second in. The audio stops and the
    // pending mark comes back at once.
    conn.send_json(media(&ulaw_tone(1100.0, 3000)));
    conn.send_json(json!({"event": "mark", "mark": {"name": "long"}}));
    std::thread::sleep(Duration::from_millis(500));
    let cleared = Instant::now();
    conn.send_json(json!({"event": "clear", "streamSid": stream}));
    let (before, (at, m)) = rt.block_on(conn.until("mark", WAIT));
    seen.extend(before);
    assert_eq!(m["mark"]["name"], "long");
    assert!(
        at - cleared < Duration::from_millis(400),
        "the cleared mark came {:?} after the clear",
        at - cleared
    );
    seen.push(m);
    let before_clear = ear.since(cleared - Duration::from_millis(400), Duration::ZERO);
    assert!(
        frames_of(&before_clear, 1100.0) >= 15,
        "it played until the clear"
    );
    // What was in flight may still arrive; nothing like the 2.5 s that remained.
    let frames = ear.since(
        cleared + Duration::from_millis(100),
        Duration::from_millis(2500),
    );
    assert!(
        frames_of(&frames, 1100.0) < 3,
        "{} frames after the clear",
        frames_of(&frames, 1100.0)
    );

    // The caller presses 5: a `dtmf` message.
    let mut seq = 1000;
    send_rfc4733(&phone, endpoint, 5, &mut seq, 200_000);
    let (before, (_, m)) = rt.block_on(conn.until("dtmf", WAIT));
    seen.extend(before);
    assert_eq!(m["dtmf"], json!({"track": "inbound_track", "digit": "5"}));
    assert_eq!(m["streamSid"], stream.as_str());
    seen.push(m);

    // Every message after `connected` counts in one sequence.
    let seqs: Vec<u64> = seen
        .iter()
        .map(|m| m["sequenceNumber"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // The application hangs up the socket: the document goes on with the <Connect action>.
    conn.close();
    let next = app.hits_to("/next", 1, WAIT);
    assert_eq!(next[0].param("CallSid"), Some(call.as_str()));
    let run = caller.join().unwrap();
    drop(ear);
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());

    // stream-started, then stream-stopped, as the TwiML asked.
    let status = app.hits_to("/stream-status", 2, WAIT);
    stream_status(&status[0], "stream-started", &stream, &call);
    stream_status(&status[1], "stream-stopped", &stream, &call);
    assert_eq!(status[1].param("StreamError"), None);
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

#[test]
fn a_forked_stream_carries_both_tracks_beside_a_recording_and_stops_by_name() {
    let net = Arc::new(Net::new(71));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let voice = format!(
        r#"<Response><Start><Stream name="fork" track="both_tracks" url="{}" statusCallback="/stream-status"/></Start><Play>/tone.wav</Play><Record maxLength="2" timeout="5" playBeep="false" action="/next"/></Response>"#,
        ws.url("/fork")
    );
    let next =
        r#"<Response><Stop><Stream name="fork"/></Stop><Play>/tone.wav</Play><Hangup/></Response>"#;
    let app = rt.block_on(App::serve(&net.ip(9), routes(voice, next.into())));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(NUMBER, "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start(&net, &config);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);

    let mut conn = rt.block_on(ws.accept(WAIT));
    rt.block_on(conn.json(WAIT)).unwrap();
    let (_, start) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(start["start"]["tracks"], json!(["inbound", "outbound"]));
    let stream = start["streamSid"].as_str().unwrap().to_owned();
    let call = start["start"]["callSid"].as_str().unwrap().to_owned();
    // A one-way stream takes nothing back: this is refused (a warning), the stream goes on.
    conn.send_json(media(&ulaw_tone(500.0, 100)));

    // The greeting plays (the outbound track); then the caller speaks into <Record>.
    let (_, endpoint) = listen(&phone, Duration::from_millis(300), WAIT);
    let talking = talk(&phone, endpoint.unwrap(), 700.0, 1500);

    // The stream runs until <Stop> (after the recording's two seconds): `stop`, then close.
    let mut messages = Vec::new();
    while let Some((_, m)) = rt.block_on(conn.json(WAIT)) {
        let stop = m["event"] == "stop";
        messages.push(m);
        if stop {
            break;
        }
    }
    talking.join().unwrap();
    let stop = messages.pop().unwrap();
    assert_eq!(
        stop,
        json!({"event": "stop", "sequenceNumber": (messages.len() + 2).to_string(),
            "streamSid": stream, "stop": {"accountSid": ACCOUNT, "callSid": call}})
    );
    assert!(rt.block_on(conn.json(WAIT)).is_none(), "closed after stop");
    let track = |name: &str| -> (Vec<u64>, Vec<i16>) {
        let ms: Vec<&Value> = messages
            .iter()
            .filter(|m| m["media"]["track"] == name)
            .collect();
        let chunks = ms
            .iter()
            .map(|m| m["media"]["chunk"].as_str().unwrap().parse().unwrap())
            .collect();
        let audio = ms
            .iter()
            .flat_map(|m| decode_ulaw(m["media"]["payload"].as_str().unwrap()))
            .collect();
        (chunks, audio)
    };
    let (in_chunks, inbound) = track("inbound");
    let (out_chunks, outbound) = track("outbound");
    assert_eq!(messages.len(), in_chunks.len() + out_chunks.len());
    for chunks in [&in_chunks, &out_chunks] {
        assert_eq!(*chunks, (1..=chunks.len() as u64).collect::<Vec<_>>());
    }
    // Both tracks run the whole time, 20 ms a message: about 2.6 s each.
    assert!(
        (110..=180).contains(&in_chunks.len()) && in_chunks.len().abs_diff(out_chunks.len()) <= 5,
        "{} inbound, {} outbound",
        in_chunks.len(),
        out_chunks.len()
    );
    let loud = |audio: &[i16], freq: f32| {
        audio
            .chunks(FRAME)
            .filter(|f| tone::share_at(f, freq) > 0.8 && f.iter().any(|s| s.abs() > 1000))
            .count()
    };
    assert!(
        loud(&inbound, 700.0) >= 60,
        "the caller on the inbound track"
    );
    assert_eq!(loud(&inbound, 1000.0), 0);
    assert!(
        loud(&outbound, 1000.0) >= 25,
        "the greeting on the outbound track"
    );
    assert_eq!(loud(&outbound, 700.0), 0);

    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    let sent = server
        .metric("switchboard_stream_frames_sent_total")
        .unwrap();
    assert!(
        sent >= messages.len() as f64,
        "{sent} frames counted, {} received",
        messages.len()
    );

    // The recording made beside the stream has the caller's tone.
    let recorded = app.hits_to("/next", 1, WAIT);
    let url = recorded[0].param("RecordingUrl").unwrap();
    let path = &url[url.find("/2010-04-01").unwrap()..];
    let (status, wav) = server.http_bytes("GET", path, None, "");
    assert_eq!(status, 200);
    let (samples, channels) = switchboard_media::record::read_wav(&wav).expect("a WAV");
    assert_eq!(channels, 1);
    assert!(
        samples
            .chunks(FRAME)
            .filter(|f| tone::share_at(f, 700.0) > 0.8)
            .count()
            >= 50,
        "the caller's second and a half in the recording"
    );
    let status = app.hits_to("/stream-status", 2, WAIT);
    stream_status(&status[0], "stream-started", &stream, &call);
    assert_eq!(status[0].param("StreamName"), Some("fork"));
    assert_eq!(status[1].param("StreamEvent"), Some("stream-stopped"));
    // The media message on the one-way stream: warning 31951, once.
    assert_eq!(
        notifications(&server, &call),
        [("31951".to_owned(), "1".to_owned())]
    );
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

#[test]
fn a_stream_that_cannot_connect_or_breaks_leaves_the_call_to_its_twiml() {
    let net = Arc::new(Net::new(72));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind(format!("{}:0", net.ip(9))).unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let cases = [
        Case {
            name: "refused",
            number: "+17775550711",
            url: format!("ws://{}:{dead_port}/media", net.ip(9)),
            notified: vec![("31902", "0")],
            statuses: vec!["stream-error"],
        },
        Case {
            name: "not-websocket",
            number: "+17775550712",
            url: "/not-ws".into(),
            notified: vec![("31920", "0")],
            statuses: vec!["stream-error"],
        },
        Case {
            name: "not-tls",
            number: "+17775550713",
            url: format!("wss://{}/media", ws.addr),
            notified: vec![("31910", "0")],
            statuses: vec!["stream-error"],
        },
        Case {
            name: "https",
            number: "+17775550714",
            url: format!("https://{}/media", net.ip(9)),
            notified: vec![("31922", "0")],
            statuses: vec!["stream-error"],
        },
        Case {
            name: "closes-at-once",
            number: "+17775550715",
            url: ws.url("/media"),
            notified: vec![],
            statuses: vec!["stream-started", "stream-stopped"],
        },
        Case {
            name: "overflowing",
            number: "+17775550717",
            url: ws.url("/media"),
            notified: vec![("31931", "1")],
            statuses: vec!["stream-started", "stream-stopped"],
        },
        Case {
            name: "garbage-then-oversized",
            number: "+17775550716",
            url: ws.url("/media"),
            notified: vec![("31924", "0"), ("31950", "1"), ("31951", "1")],
            statuses: vec!["stream-started", "stream-error", "stream-stopped"],
        },
    ];
    let mut routes = routes(String::new(), String::new());
    for c in &cases {
        routes = routes
            .route(
                &format!("/voice-{}", c.name),
                answers(format!(
                    r#"<Response><Connect><Stream url="{}" statusCallback="/status-{}"/></Connect><Redirect>/after-{}</Redirect></Response>"#,
                    c.url, c.name, c.name
                )),
            )
            .route(&format!("/after-{}", c.name), answers("<Response><Hangup/></Response>"))
            .route(&format!("/status-{}", c.name), records());
    }
    let app = rt.block_on(App::serve(&net.ip(9), routes));
    let numbers: Vec<(&str, String)> = cases
        .iter()
        .map(|c| {
            (
                c.number,
                format!("voice_url = \"{{base}}/voice-{}\"", c.name),
            )
        })
        .collect();
    let numbers: Vec<(&str, &str)> = numbers.iter().map(|(n, k)| (*n, k.as_str())).collect();
    let config = net.two_trunks(&numbers_config(&app.base, &numbers));
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_STREAMS__MAX_MESSAGE_BYTES", "65536"),
            ("SWITCHBOARD_STREAMS__MAX_BUFFER_SECS", "1"),
        ],
    );

    for c in &cases {
        let caller = {
            let (net, number) = (net.clone(), c.number);
            let sip = server.sip;
            std::thread::spawn(move || {
                let uac = scenario(&net, "uac_wait_bye.xml", &[]);
                run_sipp(
                    &net,
                    &uac,
                    &net.ip(2),
                    5060,
                    sip,
                    &["-s", number, "-m", "1"],
                    Duration::from_secs(20),
                )
            })
        };
        match c.name {
            "closes-at-once" => {
                let conn = rt.block_on(ws.accept(WAIT));
                conn.close();
            }
            "overflowing" => {
                // Three seconds at once, twice, where one second is held: the rest is
                // discarded, reported once; the mark after it still comes back.
                let mut conn = rt.block_on(ws.accept(WAIT));
                rt.block_on(conn.until("start", WAIT));
                conn.send_json(media(&ulaw_tone(800.0, 3000)));
                conn.send_json(media(&ulaw_tone(800.0, 3000)));
                conn.send_json(json!({"event": "mark", "mark": {"name": "after"}}));
                let sent = Instant::now();
                let (_, (at, mark)) = rt.block_on(conn.until("mark", WAIT));
                assert_eq!(mark["mark"]["name"], "after");
                let played = at - sent;
                assert!(
                    played < Duration::from_millis(1800),
                    "one second played, not six: {played:?}"
                );
                conn.close();
            }
            "garbage-then-oversized" => {
                let mut conn = rt.block_on(ws.accept(WAIT));
                rt.block_on(conn.until("start", WAIT));
                conn.send(tokio_tungstenite::tungstenite::Message::text("not json"));
                conn.send(tokio_tungstenite::tungstenite::Message::binary(vec![
                    1, 2, 3,
                ]));
                conn.send_json(json!({"event": "mark", "mark": {"name": "still here"}}));
                let (_, (_, mark)) = rt.block_on(conn.until("mark", WAIT));
                assert_eq!(mark["mark"]["name"], "still here", "the stream went on");
                conn.send_json(media(&vec![0xff; 60_000]));
                // Switchboard ends the stream: `stop` (a broken stream gets one if it can).
                let (_, (_, stop)) = rt.block_on(conn.until("stop", WAIT));
                assert!(stop["stop"]["callSid"].is_string());
            }
            _ => {}
        }
        let run = caller.join().unwrap();
        assert_eq!(
            (run.successful, run.failed),
            (1, 0),
            "{}: {}\n{}",
            c.name,
            run.errors,
            server.log()
        );
        // The document went on after <Connect>.
        let after = app.hits_to(&format!("/after-{}", c.name), 1, WAIT);
        let call = after[0].param("CallSid").unwrap().to_owned();
        let statuses = app.hits_to(&format!("/status-{}", c.name), c.statuses.len(), WAIT);
        let events: Vec<&str> = statuses
            .iter()
            .map(|h| h.param("StreamEvent").unwrap())
            .collect();
        assert_eq!(events, c.statuses, "{}", c.name);
        assert!(statuses.iter().all(|h| h.signed_with(TOKEN)));
        if let Some(error) = statuses
            .iter()
            .find(|h| h.param("StreamEvent") == Some("stream-error"))
        {
            let code = c.notified[0].0;
            let text = error.param("StreamError").unwrap();
            assert!(text.starts_with(code), "{}: StreamError {text:?}", c.name);
        }
        let expected: Vec<(String, String)> = c
            .notified
            .iter()
            .map(|(code, log)| (code.to_string(), log.to_string()))
            .collect();
        assert_eq!(notifications(&server, &call), expected, "{}", c.name);
    }
    assert_eq!(
        server.metric("switchboard_stream_errors_total{reason=\"connect\"}"),
        Some(1.0)
    );
    assert_eq!(server.metric("switchboard_streams_active"), Some(0.0));
    let discarded = server
        .metric("switchboard_stream_frames_discarded_total")
        .unwrap();
    // Six seconds sent, one held (less what played between the two messages).
    assert!(
        (240.0..=250.0).contains(&discarded),
        "{discarded} frames discarded"
    );
}

#[test]
fn signalwire_streams_sign_with_its_key_speak_l16_and_take_the_laml_api() {
    use tokio_tungstenite::tungstenite::Message;
    const SIGNING_KEY: &str = "PSK_switchboard_test";
    const PROJECT: &str = "11111111-2222-3333-4444-555555555555";
    const OTHER: &str = "ACfedcba9876543210fedcba9876543210";
    let net = Arc::new(Net::new(74));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    // As SignalWire's Go package answers: a bare <Stream> (it talks back on it), `both`, a
    // query string; with SignalWire's codec and bearer token.
    let ws_url = ws.url("/api/telephony/calls/stream/s1?call_sid=x");
    let voice = format!(
        r#"<Response><Play>/tone.wav</Play><Stream url="{}" track="both" codec="L16@16000h" authBearerToken="bearer-1"></Stream></Response>"#,
        ws_url.replace('&', "&amp;")
    );
    let app = rt.block_on(App::serve(&net.ip(9), routes(voice, String::new())));
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         signing_key = \"{SIGNING_KEY}\"\nproject_id = \"{PROJECT}\"\n\
         [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{ACCOUNT}\"\n\
         voice_url = \"{}/voice\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\ncaller_ids = [\"+1555*\"]\n",
        app.base
    ));
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_STREAMS__PING_INTERVAL_SECS", "1")],
    );
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    let (_, endpoint) = listen(&phone, Duration::from_millis(300), WAIT);
    let endpoint = endpoint.unwrap();

    let mut conn = rt.block_on(ws.accept(WAIT));
    let signature = sign(SIGNING_KEY, &ws_url, &[], Algorithm::HmacSha1);
    for h in ["x-signalwire-signature", "x-twilio-signature"] {
        assert_eq!(conn.headers.get(h), Some(&signature), "{h}");
    }
    // Not Twilio's client: SignalWire's streams do not claim its User-Agent.
    assert_eq!(conn.headers.get("user-agent"), None);
    assert_eq!(
        conn.headers.get("authorization").map(String::as_str),
        Some("Bearer bearer-1")
    );
    let (_, connected) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(connected["version"], "0.2.0");
    let (_, start) = rt.block_on(conn.json(WAIT)).unwrap();
    assert_eq!(start["start"]["accountSid"], PROJECT);
    assert_eq!(start["start"]["tracks"], json!(["inbound", "outbound"]));
    assert_eq!(
        start["start"]["mediaFormat"],
        json!({"encoding": "audio/x-L16", "sampleRate": 16000, "channels": 1})
    );
    let call = start["start"]["callSid"].as_str().unwrap().to_owned();

    // The caller's audio arrives as 16-bit little-endian at 16 kHz.
    let talking = talk(&phone, endpoint, 700.0, 600);
    let mut inbound = Vec::new();
    let mut pinged = false;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        let r = rt.block_on(conn.recv(WAIT)).unwrap();
        match r.message {
            Message::Ping(_) => pinged = true,
            Message::Text(text) => {
                let m: Value = serde_json::from_str(&text).unwrap();
                if m["media"]["track"] == "inbound" {
                    let bytes = B64.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
                    assert_eq!(bytes.len(), 640);
                    inbound.extend(
                        bytes
                            .chunks_exact(2)
                            .map(|b| i16::from_le_bytes([b[0], b[1]])),
                    );
                }
            }
            _ => {}
        }
    }
    talking.join().unwrap();
    assert!(pinged, "Switchboard pings every second as configured");
    let voiced = inbound
        .chunks(320)
        .filter(|f| {
            tone::share_at_rate(f, 700.0, 16000.0) > 0.8 && f.iter().any(|s| s.abs() > 1000)
        })
        .count();
    assert!(voiced >= 25, "{voiced} frames of the caller at 16 kHz");

    // The application answers pings, and talks back as the Go package does: no streamSid,
    // a `track` field, 16-bit little-endian audio at 16 kHz.
    conn.send(Message::Ping(b"are you there".to_vec().into()));
    let reply: Vec<u8> = (0..8000)
        .map(|i| ((std::f32::consts::TAU * 1200.0 * i as f32 / 16000.0).sin() * 6000.0) as i16)
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let ear = Ear::listen(&phone);
    let sent = Instant::now();
    conn.send_json(
        json!({"event": "media", "media": {"track": "outbound", "payload": B64.encode(&reply)}}),
    );
    let mut ponged = false;
    while !ponged {
        let r = rt.block_on(conn.recv(WAIT)).unwrap();
        ponged = matches!(&r.message, Message::Pong(p) if &p[..] == b"are you there");
    }
    let heard = ear.since(sent, Duration::from_millis(800));
    assert!(
        frames_of(&heard, 1200.0) >= 20,
        "{} frames of the reply",
        frames_of(&heard, 1200.0)
    );

    // A second, one-way stream through the LaML API (SignalWire's documented prefix), with
    // the project id and token; then stopped by name.
    let mut rest_ws = rt.block_on(WsServer::start(&net.ip(9)));
    let base = format!("/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{call}/Streams");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Url", &rest_ws.url("/rest"))
        .append_pair("Name", "rest1")
        .append_pair("Track", "both_tracks")
        .append_pair("Parameter1.Name", "agent")
        .append_pair("Parameter1.Value", "a1")
        .finish();
    let (status, created) = server.http(
        "POST",
        &format!("{base}.json"),
        Some((PROJECT, TOKEN)),
        &body,
    );
    assert_eq!(status, 200, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["name"], "rest1");
    assert_eq!(created["status"], "in-progress");
    assert_eq!(created["account_sid"], PROJECT);
    assert_eq!(created["call_sid"], call.as_str());
    let sid = created["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("MZ"));
    let mut rest = rt.block_on(rest_ws.accept(WAIT));
    let (_, (_, start)) = rt.block_on(rest.until("start", WAIT));
    assert_eq!(start["streamSid"], sid.as_str());
    assert_eq!(start["start"]["customParameters"], json!({"agent": "a1"}));
    assert_eq!(start["start"]["tracks"], json!(["inbound", "outbound"]));
    let (status, stopped) = server.http(
        "POST",
        &format!("{base}/rest1.json"),
        Some((PROJECT, TOKEN)),
        "Status=stopped",
    );
    assert_eq!(status, 200, "{stopped}");
    let stopped: Value = serde_json::from_str(&stopped).unwrap();
    assert_eq!(
        (&stopped["sid"], &stopped["status"]),
        (&json!(sid), &json!("stopped"))
    );
    rt.block_on(rest.until("stop", WAIT));
    // Stopped streams are gone: a second stop finds nothing; another account sees nothing.
    let (status, _) = server.http(
        "POST",
        &format!("{base}/rest1.json"),
        Some((PROJECT, TOKEN)),
        "Status=stopped",
    );
    assert_eq!(status, 404);

    // The application closes its socket: the document has nothing after the stream.
    conn.close();
    drop(ear);
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
}

/// tests/compat/media_streams_echo.js: a Node bot built as Twilio's `connect-basic` sample
/// is (Twilio's Node SDK for the TwiML, the `websocket` package for the socket) echoes the
/// caller back in one-second pieces with a mark each, then closes; the call goes on.
#[test]
fn a_node_bot_built_like_twilios_sample_echoes_the_caller() {
    let Some(modules) = compat_env("SWITCHBOARD_TWILIO_NODE_PATH") else {
        return;
    };
    use std::io::BufRead;
    let net = Arc::new(Net::new(75));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/compat/media_streams_echo.js"
    );
    struct Bot(std::process::Child);
    impl Drop for Bot {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut bot = Bot(std::process::Command::new("node")
        .args([script, &net.ip(9), "3"])
        .env("NODE_PATH", modules)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map(owned)
        .expect("node"));
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = bot.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let first = lines.recv_timeout(WAIT).expect("the bot listens");
    let port = first.strip_prefix("listening ").unwrap();
    let base = format!("http://{}:{port}", net.ip(9));
    let config = net.two_trunks(&numbers_config(
        &base,
        &[(NUMBER, "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start(&net, &config);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    // "Echo test." tells the phone where to talk; then it talks for three seconds.
    let (_, endpoint) = listen(&phone, Duration::from_millis(300), WAIT);
    let ear = Ear::listen(&phone);
    let talking = talk(&phone, endpoint.unwrap(), 700.0, 4000);
    let talked = Instant::now();
    let mut seen: Vec<Value> = Vec::new();
    while !seen.iter().any(|v| v["closed"] == true) {
        let line = lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the bot saw {seen:?}\n{}", server.log()));
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            seen.push(v);
        }
    }
    talking.join().unwrap();
    // Its own voice, a second late (the bot's first second also holds the silence before the
    // caller spoke): heard while it still talks.
    let heard = ear.since(talked, Duration::ZERO);
    assert!(
        frames_of(&heard, 700.0) >= 20,
        "{} frames of the echo",
        frames_of(&heard, 700.0)
    );
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    drop(bot);

    let start = seen.iter().find(|v| v["event"] == "start").unwrap();
    assert_eq!(start["start"]["customParameters"], json!({"bot": "echo"}));
    assert_eq!(start["start"]["tracks"], json!(["inbound"]));
    let stream = start["streamSid"].as_str().unwrap();
    // The echoes' marks came back in order, for this stream, each after its second of audio
    // (the last echo is cut short by the bot's close, and the one before may be too).
    let marks: Vec<&Value> = seen.iter().filter(|v| v["mark"].is_string()).collect();
    assert!((1..=2).contains(&marks.len()), "{seen:?}\n{}", server.log());
    for (i, m) in marks.iter().enumerate() {
        assert_eq!(m["mark"], format!("Repeat message {i}"));
        assert_eq!(m["streamSid"], stream);
    }
    let echoes: Vec<&Value> = seen.iter().filter(|v| v["echoed"].is_number()).collect();
    assert_eq!(echoes.len(), 3);
    assert!(echoes.iter().all(|v| v["bytes"] == 8000));
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

/// `wss://` streams are verified against the system's roots and the configured CA file: a
/// server with a certificate from that CA is streamed to; one whose certificate names another
/// host is refused as a TLS failure.
#[test]
fn wss_streams_trust_the_configured_ca_and_check_the_name() {
    let net = Arc::new(Net::new(76));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca, good) = tls_server(&[&net.ip(9)]);
    let (_, wrong_name) = tls_server(&["127.0.76.8"]);
    let ca_file = net.path("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let mut secure = rt.block_on(WsServer::start_tls(&net.ip(9), good));
    let mut impostor = rt.block_on(WsServer::start_tls(&net.ip(9), wrong_name));
    let secure_url = format!("wss://{}/secure", secure.addr);
    let impostor_url = format!("wss://{}/secure", impostor.addr);
    let doc = |url: &str, status: &str| {
        format!(
            r#"<Response><Connect><Stream url="{url}" statusCallback="/{status}"/></Connect><Hangup/></Response>"#
        )
    };
    let routes = routes(
        doc(&secure_url, "good-status"),
        doc(&impostor_url, "bad-status"),
    )
    .route("/good-status", records())
    .route("/bad-status", records());
    let app = rt.block_on(App::serve(&net.ip(9), routes));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[
            ("+17775550761", "voice_url = \"{base}/voice\""),
            ("+17775550762", "voice_url = \"{base}/next\""),
        ],
    ));
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_STREAMS__CA_FILE", ca_file.to_str().unwrap())],
    );

    let caller = {
        let (net, sip) = (net.clone(), server.sip);
        std::thread::spawn(move || {
            let uac = scenario(&net, "uac_wait_bye.xml", &[]);
            run_sipp(
                &net,
                &uac,
                &net.ip(2),
                5060,
                sip,
                &["-s", "+17775550761", "-m", "1"],
                WAIT,
            )
        })
    };
    let mut conn = rt.block_on(secure.accept(WAIT));
    let (_, (_, start)) = rt.block_on(conn.until("start", WAIT));
    let call = start["start"]["callSid"].as_str().unwrap().to_owned();
    assert_eq!(
        conn.headers.get("x-twilio-signature").map(String::as_str),
        Some(sign(TOKEN, &secure_url, &[], Algorithm::HmacSha1).as_str())
    );
    conn.close();
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    let events: Vec<String> = app
        .hits_to("/good-status", 2, WAIT)
        .iter()
        .map(|h| h.param("StreamEvent").unwrap().to_owned())
        .collect();
    assert_eq!(events, ["stream-started", "stream-stopped"]);
    assert!(notifications(&server, &call).is_empty());

    call_until_bye(&net, &server, "+17775550762", 20);
    assert!(
        rt.block_on(impostor.try_accept(Duration::from_millis(500)))
            .is_none()
    );
    let error = &app.hits_to("/bad-status", 1, WAIT)[0];
    assert_eq!(error.param("StreamEvent"), Some("stream-error"));
    let text = error.param("StreamError").unwrap();
    assert!(
        text.starts_with("31910") && text.contains("certificate"),
        "{text}"
    );
}
