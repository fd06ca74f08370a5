//! Media streams against the real binary: a SIPp caller whose RTP is the test's socket calls a
//! number whose TwiML streams the call to a WebSocket server of the test's (the
//! application). What is checked is what each side got: the messages on the socket (exact
//! fields and types, counters), the caller's audio on the right track (by tone), the
//! application's audio at the caller's ear, marks echoed once their audio played, `clear`,
//! digits, status callbacks signed as Twilio signs them, and the call going on when the
//! stream cannot connect or breaks.

mod common;

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
use switchboard_control::webhook::signature::{Algorithm, sign};
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

/// The phone's ear: every packet Switchboard sends it, decoded, with when it came.
struct Ear {
    heard: Arc<std::sync::Mutex<Vec<(Instant, Vec<i16>)>>>,
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
    assert_eq!(hit.param("StreamName"), Some(stream));
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

    // The caller speaks (700 Hz for a second): it arrives as inbound media, 20 ms a message.
    let talking = talk(&phone, endpoint, 700.0, 1000);
    let mut heard = Vec::new();
    while heard.len() < 60 * FRAME {
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
        heard.extend(pcm);
        seen.push(m);
    }
    talking.join().unwrap();
    let voiced: Vec<i16> = heard
        .chunks(FRAME)
        .filter(|f| f.iter().any(|s| s.abs() > 1000))
        .flatten()
        .copied()
        .collect();
    assert!(voiced.len() >= 45 * FRAME, "the caller's second of audio");
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
    // 60 frames span 1.2 s of the stream's clock.
    let span = stamps[stamps.len() - 1] - stamps[0];
    assert!((1000..1500).contains(&span), "{span} ms for 60 frames");

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
