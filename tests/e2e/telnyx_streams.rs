//! Telnyx's media-streaming format through the call core, as the Telnyx dialect will drive it
//! (it only has to wire `stream_url`, `streaming_start` and `streaming_stop` to this): the
//! call core runs in the test with a SIPp phone whose RTP is the test's socket, and a
//! WebSocket server of the test's is the application. Checked: the handshake's token, the
//! exact frames (`connected`, `start`, `media` on both tracks as big-endian L16 at 16 kHz,
//! `dtmf` with `occurred_at`, `mark`, `error`, `stop`), the application's L16 and MP3 audio at
//! the phone's ear, clear, noise suppression still at work on a streamed call, and the end of
//! the stream when the call ends.

use crate::common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::rig::*;
use common::ws_app::*;
use common::{Net, noise, rms, send_audio, send_rfc4733};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_control::call::{CallCommand, EventKind};
use switchboard_control::services::stream::audio::Encoding;
use switchboard_control::services::stream::wire::Wire;
use switchboard_control::services::stream::{
    MediaStreams, Playback, StopCause, StreamConfig, StreamEvent, StreamSpec,
};
use switchboard_media::{FRAME, Law, TapTracks, tone};

const WAIT: Duration = Duration::from_secs(10);
const L16_16K: Encoding = Encoding::L16 {
    rate: 16000,
    big_endian: true,
};

fn telnyx(
    spec_id: &str,
    call: &str,
    playback: Playback,
    encoding: Encoding,
    url: String,
) -> StreamSpec {
    StreamSpec {
        id: spec_id.into(),
        call: call.into(),
        url,
        name: None,
        tracks: TapTracks::Both,
        encoding,
        playback,
        playback_to: Default::default(),
        wire: Wire::Telnyx {
            call_control_id: format!("v3:{call}"),
            call_session_id: "4f1c2a7e-0000-4000-8000-000000000001".into(),
            user_id: "7d2b5c1a-0000-4000-8000-000000000002".into(),
            from: "+15550001".into(),
            to: "room".into(),
            client_state: Some("aGVsbG8=".into()),
            auth_token: Some("t0ken".into()),
        },
        parameters: vec![("agent".into(), "a1".into())],
        headers: vec![("x-telnyx-streaming-auth-token".into(), "t0ken".into())],
        dtmf: true,
        transcripts: false,
        reach: Default::default(),
    }
}

/// How the stream stopped: its last event, once its events are over.
async fn stopped(events: &mut tokio::sync::mpsc::Receiver<StreamEvent>) -> StopCause {
    let mut last = None;
    while let Some(e) = tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
        last = Some(e);
    }
    match last {
        Some(StreamEvent::Stopped { cause, .. }) => cause,
        other => panic!("the stream ended with {other:?}"),
    }
}

/// Big-endian 16-bit samples.
fn l16_be(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .collect()
}

/// Frames the phone hears over `span`, by packet.
fn hear(phone: &std::net::UdpSocket, span: Duration) -> Vec<Vec<i16>> {
    phone
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    let mut frames = Vec::new();
    let mut buf = [0u8; 2048];
    while start.elapsed() < span {
        if let Ok(n) = phone.recv(&mut buf) {
            let mut pcm = vec![0i16; n - 12];
            Law::Ulaw.decode(&buf[12..n], &mut pcm);
            frames.push(pcm);
        }
    }
    frames
}

fn loud_frames(frames: &[Vec<i16>], freq: f32) -> usize {
    frames
        .iter()
        .filter(|f| f.len() == FRAME && tone::share_at(f, freq) > 0.8 && rms(f) > 500.0)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telnyx_format_streams_both_tracks_as_l16_and_plays_l16_and_mp3_back() {
    let net = Arc::new(Net::new(73));
    let core = start_core(&net, 34700..=34719).await;
    let mut ws = WsServer::start(&net.ip(9)).await;
    let streams = MediaStreams::new(
        core.control.clone(),
        StreamConfig {
            ping_interval: Duration::from_millis(500),
            ..StreamConfig::default()
        },
    )
    .unwrap();
    let mut phone = call_phone(&net, &core, 4).await;
    let call = phone.sid.clone();

    let mut events = streams
        .start(telnyx(
            "2d1a3c5e-0000-4000-8000-00000000abcd",
            &call,
            Playback::Audio(L16_16K),
            L16_16K,
            ws.url("/telnyx"),
        ))
        .unwrap();
    let mut conn = ws.accept(WAIT).await;
    assert_eq!(
        conn.headers
            .get("x-telnyx-streaming-auth-token")
            .map(String::as_str),
        Some("t0ken")
    );
    assert!(matches!(
        tokio::time::timeout(WAIT, events.recv()).await.unwrap(),
        Some(StreamEvent::Started { .. })
    ));
    let (_, connected) = conn.json(WAIT).await.unwrap();
    assert_eq!(
        connected,
        json!({"event": "connected", "version": "1.0.0",
            "connected": {"x-telnyx-streaming-auth-token": "t0ken"}})
    );
    let (_, start) = conn.json(WAIT).await.unwrap();
    assert_eq!(
        start,
        json!({"event": "start", "sequence_number": "1",
            "stream_id": "2d1a3c5e-0000-4000-8000-00000000abcd",
            "start": {"user_id": "7d2b5c1a-0000-4000-8000-000000000002",
                "call_control_id": format!("v3:{call}"),
                "call_session_id": "4f1c2a7e-0000-4000-8000-000000000001",
                "from": "+15550001", "to": "room", "client_state": "aGVsbG8=",
                "custom_parameters": {"agent": "a1"},
                "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1}}})
    );

    // A prompt plays to the phone (the outbound track), and tells it where to send.
    core.control
        .command(
            &call,
            CallCommand::Play {
                clip: tone::sines(&[1000.0], 6000.0, 400).into(),
                loops: 1,
                barge_in: false,
            },
        )
        .await
        .unwrap();
    let rtp = phone.rtp.try_clone().unwrap();
    let (_, endpoint) = rtp.recv_from(&mut [0u8; 2048]).unwrap();
    // The phone speaks: 700 Hz for 600 ms (the inbound track).
    let talker = phone.rtp.try_clone().unwrap();
    let talking = std::thread::spawn(move || {
        send_audio(&talker, endpoint, &tone::sines(&[700.0], 6000.0, 600), 10)
    });
    let mut tracks: [Vec<i16>; 2] = Default::default();
    let mut seqs = vec![1u64];
    let mut chunks = [0u64; 2];
    let mut pings = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        let r = conn.recv(WAIT).await.unwrap();
        let text = match r.message {
            tokio_tungstenite::tungstenite::Message::Text(t) => t,
            tokio_tungstenite::tungstenite::Message::Ping(_) => {
                pings += 1;
                continue;
            }
            _ => continue,
        };
        let m: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(m["event"], "media", "{m}");
        assert_eq!(m["stream_id"], "2d1a3c5e-0000-4000-8000-00000000abcd");
        seqs.push(m["sequence_number"].as_str().unwrap().parse().unwrap());
        let i = match m["media"]["track"].as_str().unwrap() {
            "inbound" => 0,
            "outbound" => 1,
            t => panic!("track {t}"),
        };
        chunks[i] += 1;
        assert_eq!(m["media"]["chunk"], chunks[i].to_string());
        let bytes = B64.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len(), 640, "20 ms of L16 at 16 kHz");
        tracks[i].extend(l16_be(&bytes));
    }
    talking.join().unwrap();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(pings >= 1, "Switchboard pings the application");
    let loud = |audio: &[i16], freq: f32| {
        audio
            .chunks(320)
            .filter(|f| tone::share_at_rate(f, freq, 16000.0) > 0.8 && rms(f) > 500.0)
            .count()
    };
    assert!(
        loud(&tracks[0], 700.0) >= 25,
        "the phone on the inbound track"
    );
    assert!(
        loud(&tracks[1], 1000.0) >= 15,
        "the prompt on the outbound track"
    );
    assert_eq!(loud(&tracks[0], 1000.0) + loud(&tracks[1], 700.0), 0);

    // The application talks back in L16 at 16 kHz (big-endian, as RTP carries L16): half a
    // second in one message, then a mark.
    let reply: Vec<u8> = (0..8000)
        .map(|i| ((std::f32::consts::TAU * 1500.0 * i as f32 / 16000.0).sin() * 6000.0) as i16)
        .flat_map(|s| s.to_be_bytes())
        .collect();
    conn.send_json(json!({"event": "media", "media": {"payload": B64.encode(&reply)}}));
    conn.send_json(json!({"event": "mark", "mark": {"name": "reply"}}));
    let heard = hear(&rtp, Duration::from_millis(700));
    assert!(
        loud_frames(&heard, 1500.0) >= 20,
        "{}",
        loud_frames(&heard, 1500.0)
    );
    let (_, (_, mark)) = conn.until("mark", WAIT).await;
    assert_eq!(mark["mark"], json!({"name": "reply"}));
    assert_eq!(mark["stream_id"], "2d1a3c5e-0000-4000-8000-00000000abcd");

    // Digits: `dtmf` with when it happened.
    let mut seq = 500;
    send_rfc4733(&rtp, endpoint, 11, &mut seq, 90_000);
    let (_, (_, dtmf)) = conn.until("dtmf", WAIT).await;
    assert_eq!(dtmf["dtmf"], json!({"digit": "#"}));
    let at = dtmf["occurred_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.len() == 24, "{at}");

    // Noise suppression works on a streamed call: the phone's noise reaches the stream
    // much quieter once it is on. Two seconds of noise each time, all of it heard (however
    // late the stream runs on a busy machine), its median level compared: the suppressor's
    // first milestone_events, before it has learnt the noise, do not decide.
    let noisy = noise(16_000, 6000.0);
    let mut heard_noise = Vec::new();
    for (on, seq0) in [(false, 2000), (true, 3000)] {
        core.control
            .command(
                &call,
                CallCommand::Suppress {
                    inbound: on,
                    outbound: false,
                },
            )
            .await
            .unwrap();
        let (talker, samples) = (phone.rtp.try_clone().unwrap(), noisy.clone());
        let sending = std::thread::spawn(move || send_audio(&talker, endpoint, &samples, seq0));
        let mut inbound = Vec::new();
        let mut quiet_since: Option<Instant> = None;
        // Until the noise is sent and half a second of the stream has passed since.
        while quiet_since.is_none_or(|t| t.elapsed() < Duration::from_millis(500)) {
            if quiet_since.is_none() && sending.is_finished() {
                quiet_since = Some(Instant::now());
            }
            if let Some((_, m)) = conn.json(WAIT).await
                && m["media"]["track"] == "inbound"
            {
                inbound.extend(l16_be(
                    &B64.decode(m["media"]["payload"].as_str().unwrap()).unwrap(),
                ));
            }
        }
        sending.join().unwrap();
        // The loudest 2 s (100 frames of 20 ms): the noise, not the silence around it; their
        // median.
        let mut frames: Vec<f64> = inbound.chunks(320).map(rms).collect();
        frames.sort_by(|a, b| b.partial_cmp(a).unwrap());
        assert!(
            frames.len() >= 80,
            "{} frames of the noise streamed",
            frames.len()
        );
        heard_noise.push(frames[frames.len().min(100) / 2]);
    }
    let cut_db = 20.0 * (heard_noise[1] / heard_noise[0]).log10();
    assert!(
        cut_db < -6.0,
        "suppression on a streamed call: {cut_db:.1} dB"
    );

    // Barge-in: a long reply, then clear; the mark comes back at once.
    let long: Vec<u8> = vec![0x10; 16000 * 2 * 3];
    conn.send_json(json!({"event": "media", "media": {"payload": B64.encode(&long)}}));
    conn.send_json(json!({"event": "mark", "mark": {"name": "long"}}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cleared = Instant::now();
    conn.send_json(json!({"event": "clear"}));
    let (_, (at, mark)) = conn.until("mark", WAIT).await;
    assert_eq!(mark["mark"]["name"], "long");
    assert!(at - cleared < Duration::from_millis(400));

    // Stopped by the application (streaming_stop): `stop` with Telnyx's ids, then a close.
    assert!(
        streams
            .stop(&call, "2d1a3c5e-0000-4000-8000-00000000abcd")
            .is_some()
    );
    let (_, (_, stop)) = conn.until("stop", WAIT).await;
    assert_eq!(
        stop["stop"],
        json!({"user_id": "7d2b5c1a-0000-4000-8000-000000000002", "call_control_id": format!("v3:{call}")})
    );
    assert!(conn.json(WAIT).await.is_none());
    assert_eq!(stopped(&mut events).await, StopCause::Requested);

    // MP3 mode: each media message is a whole file, played in order; a second file within a
    // second is refused with Telnyx's rate-limit error.
    let mut events = streams
        .start(telnyx(
            "2d1a3c5e-0000-4000-8000-00000000beef",
            &call,
            Playback::Mp3,
            Encoding::Pcmu,
            ws.url("/mp3"),
        ))
        .unwrap();
    let mut conn = ws.accept(WAIT).await;
    conn.until("start", WAIT).await;
    let mp3 = switchboard_media::mp3::encode(&tone::sines(&[600.0], 6000.0, 800), 1).unwrap();
    conn.send_json(json!({"event": "media", "media": {"payload": B64.encode(&mp3)}}));
    conn.send_json(json!({"event": "media", "media": {"payload": B64.encode(&mp3)}}));
    let (_, (_, error)) = conn.until("error", WAIT).await;
    assert_eq!(error["payload"]["code"], 100005);
    assert_eq!(error["payload"]["title"], "rate_limit_reached");
    let heard = hear(&rtp, Duration::from_millis(1200));
    let tone_frames = loud_frames(&heard, 600.0);
    assert!(
        (20..=45).contains(&tone_frames),
        "one file's 800 ms, not two: {tone_frames}"
    );

    // The call ends: the stream ends with it.
    core.control
        .command(&call, CallCommand::Hangup)
        .await
        .unwrap();
    let (_, (_, stop)) = conn.until("stop", WAIT).await;
    assert_eq!(stop["event"], "stop");
    assert_eq!(stopped(&mut events).await, StopCause::CallEnded);
    assert!(streams.of_call(&call).is_empty());
    until(&mut phone.events, |e| matches!(e, EventKind::Hangup { .. })).await;
}

/// What two phones hear over the same 900 ms.
async fn hear_both(
    a: &std::net::UdpSocket,
    b: &std::net::UdpSocket,
) -> (Vec<Vec<i16>>, Vec<Vec<i16>>) {
    let listen = |sock: &std::net::UdpSocket| {
        let sock = sock.try_clone().unwrap();
        tokio::task::spawn_blocking(move || hear(&sock, Duration::from_millis(900)))
    };
    let (a, b) = tokio::join!(listen(a), listen(b));
    (a.unwrap(), b.unwrap())
}

/// `stream_bidirectional_target_legs: opposite`: the application's audio goes to the call
/// bridged with the streamed one — not to the streamed call — and its mark comes back once;
/// when the bridge is broken there is no one to hear it. `both`: the two calls hear it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applications_audio_goes_to_the_legs_it_targets() {
    use switchboard_control::services::stream::PlaybackTo;
    let net = Arc::new(Net::new(77));
    let core = start_core(&net, 34800..=34819).await;
    let mut ws = WsServer::start(&net.ip(9)).await;
    let streams = MediaStreams::new(core.control.clone(), StreamConfig::default()).unwrap();
    let a = call_phone(&net, &core, 4).await;
    let b = call_phone(&net, &core, 5).await;
    core.control
        .command(&a.sid, CallCommand::Bridge(b.sid.clone()))
        .await
        .unwrap();
    let pcmu_tone = |freq: f32| {
        let samples = tone::sines(&[freq], 6000.0, 600);
        let mut bytes = vec![0u8; samples.len()];
        Law::Ulaw.encode(&samples, &mut bytes);
        json!({"event": "media", "media": {"payload": B64.encode(&bytes)}})
    };
    let url = ws.url("/targets");
    let start = |id: &str, to: PlaybackTo| {
        let mut spec = telnyx(
            id,
            &a.sid,
            Playback::Audio(Encoding::Pcmu),
            Encoding::Pcmu,
            url.clone(),
        );
        spec.playback_to = to;
        streams.start(spec).unwrap_or_else(|e| panic!("{id}: {e}"))
    };

    let mut opposite = start("00000000-0000-4000-8000-0000000000a1", PlaybackTo::Peer);
    let mut conn = ws.accept(WAIT).await;
    conn.until("start", WAIT).await;
    conn.send_json(pcmu_tone(600.0));
    conn.send_json(json!({"event": "mark", "mark": {"name": "said"}}));
    let (heard_a, heard_b) = hear_both(&a.rtp, &b.rtp).await;
    assert!(loud_frames(&heard_b, 600.0) >= 20, "the other leg hears it");
    assert_eq!(loud_frames(&heard_a, 600.0), 0, "the streamed leg does not");
    let (_, (_, mark)) = conn.until("mark", WAIT).await;
    assert_eq!(mark["mark"], json!({"name": "said"}));

    // The bridge is broken: the application's audio has no one to go to.
    core.control
        .command(&a.sid, CallCommand::Unbridge)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.send_json(pcmu_tone(800.0));
    let (_, heard_b) = hear_both(&a.rtp, &b.rtp).await;
    assert_eq!(
        loud_frames(&heard_b, 800.0),
        0,
        "unbridged, the other leg hears nothing"
    );
    conn.close();
    assert_eq!(stopped(&mut opposite).await, StopCause::ApplicationClosed);

    // Bridged again, a stream for both legs: each hears the application.
    core.control
        .command(&a.sid, CallCommand::Bridge(b.sid.clone()))
        .await
        .unwrap();
    let _both = start("00000000-0000-4000-8000-0000000000a2", PlaybackTo::Both);
    let mut conn = ws.accept(WAIT).await;
    conn.until("start", WAIT).await;
    conn.send_json(pcmu_tone(1200.0));
    let (heard_a, heard_b) = hear_both(&a.rtp, &b.rtp).await;
    assert!(loud_frames(&heard_a, 1200.0) >= 20, "the streamed leg");
    assert!(loud_frames(&heard_b, 1200.0) >= 20, "the other leg");
}
