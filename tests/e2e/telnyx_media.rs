//! Recording and forking Telnyx calls, driven by Telnyx's official Python SDK
//! (tests/compat/telnyx_media.py): a recording started, paused, resumed and stopped on an
//! incoming call, a dial recorded from its answer, both read, listed, downloaded and deleted
//! through the SDK; the incoming call forked as RTP to two UDP targets. The test is the phones
//! and the fork's targets: what it says while the recording runs is what the downloaded files
//! must hold, what it says while it is paused must not be there, and each fork target gets
//! its direction's audio until the fork stops.

use crate::common;

use common::rig::rtp_socket;
use common::sdk_app::telnyx::{self, CONNECTION, KEY, PUBLIC_KEY};
use common::sdk_app::{
    all_verified, callee_phone, expect_step, hear, spawn_script, summary_of, tell, windows_of,
};
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::record::read_wav;
use switchboard_media::tone;

/// The samples of a downloaded recording, and its channel count.
fn wav(path: &std::path::Path) -> (Vec<i16>, u16) {
    let bytes = std::fs::read(path).unwrap();
    read_wav(&bytes).unwrap_or_else(|| panic!("{} is not a WAV", path.display()))
}

#[test]
fn the_official_telnyx_sdk_records_and_forks_calls() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const RECORDED: &str = "+15557770301";
    const CALLEE: &str = "+15551234";
    let net = Arc::new(Net::new(105));
    let hooks = format!("{}:18080", net.ip(6));
    let config = telnyx::config(&hooks, "", &[RECORDED]);
    let public_url = format!("http://{}:8080", net.ip(1));
    let server = Server::start_with(
        &net,
        &net.two_trunks(&config),
        &[("SWITCHBOARD_HTTP__PUBLIC_URL", &public_url)],
    );
    let out = net.path("downloads");
    std::fs::create_dir_all(&out).unwrap();
    let fork_rx = rtp_socket(&net, 8);
    let fork_tx = rtp_socket(&net, 8);
    let (rx_addr, tx_addr) = (
        fork_rx.local_addr().unwrap().to_string(),
        fork_tx.local_addr().unwrap().to_string(),
    );
    let (mut app, mut lines) = spawn_script(
        &python,
        "telnyx_media.py",
        &server,
        &[
            KEY,
            PUBLIC_KEY,
            &hooks,
            RECORDED,
            CALLEE,
            CONNECTION,
            out.to_str().unwrap(),
            &rx_addr,
            &tx_addr,
        ],
    );
    expect_step(&mut app, &mut lines, "READY", &server);

    // The incoming call: the recording starts with a beep at the caller (which tells the
    // test where to talk); 1 kHz is recorded, 700 Hz said while paused is not, 1 kHz again
    // after the resume.
    let (phone, caller) = common::voice_app::call_with_phone(&net, &server, RECORDED);
    expect_step(&mut app, &mut lines, "RECORDING", &server);
    let (beep, endpoint) = hear(&phone, Duration::from_secs(10), Duration::from_millis(500));
    let endpoint = endpoint.expect("the recording's beep");
    assert!(
        windows_of(&beep, 1000.0) >= 3,
        "the beep: {} samples",
        beep.len()
    );
    let say = |freq: f32, ms: u32, seq: u16| {
        send_audio(&phone, endpoint, &tone::sines(&[freq], 8000.0, ms), seq);
    };
    say(1000.0, 1500, 100);
    tell(&mut app, "PAUSE");
    expect_step(&mut app, &mut lines, "PAUSED", &server);
    say(700.0, 1500, 200);
    tell(&mut app, "RESUME");
    expect_step(&mut app, &mut lines, "RESUMED", &server);
    say(1000.0, 1000, 300);
    tell(&mut app, "STOP");
    expect_step(&mut app, &mut lines, "SAVED", &server);

    // The fork: what the caller says (1 kHz) at rx, what it hears (the app's 600 Hz) at tx,
    // each as PCMU RTP; nothing once the fork is stopped.
    expect_step(&mut app, &mut lines, "FORKED", &server);
    let talking = {
        let phone = phone.try_clone().unwrap();
        std::thread::spawn(move || {
            send_audio(&phone, endpoint, &tone::sines(&[1000.0], 8000.0, 1500), 500)
        })
    };
    let (said, _) = hear(&fork_rx, Duration::from_secs(5), Duration::from_millis(500));
    talking.join().unwrap();
    assert!(
        windows_of(&said, 1000.0) >= 10,
        "rx: {} samples",
        said.len()
    );
    let (heard, _) = hear(&fork_tx, Duration::from_secs(5), Duration::from_millis(500));
    assert!(
        windows_of(&heard, 600.0) >= 10,
        "tx: {} samples",
        heard.len()
    );
    tell(&mut app, "UNFORK");
    expect_step(&mut app, &mut lines, "UNFORKED", &server);
    // Drain what was sent before the stop; then the caller talks and rx stays silent.
    let _ = hear(
        &fork_rx,
        Duration::from_millis(300),
        Duration::from_millis(300),
    );
    send_audio(&phone, endpoint, &tone::sines(&[1000.0], 8000.0, 500), 600);
    let (after, _) = hear(
        &fork_rx,
        Duration::from_millis(800),
        Duration::from_millis(100),
    );
    assert!(
        after.is_empty(),
        "rx after the stop: {} samples",
        after.len()
    );
    // A recording with timeout_secs=1 stops by itself a second after the caller, having
    // spoken a second, falls silent (its line still sending quiet RTP).
    tell(&mut app, "SILENCE");
    expect_step(&mut app, &mut lines, "SILENCE-RECORDING", &server);
    let mut speech = tone::sines(&[1000.0], 8000.0, 1000);
    speech.extend(vec![0i16; 8000 * 4]);
    let talking = {
        let phone = phone.try_clone().unwrap();
        std::thread::spawn(move || send_audio(&phone, endpoint, &speech, 700))
    };
    expect_step(&mut app, &mut lines, "SILENCED", &server);
    talking.join().unwrap();
    tell(&mut app, "BYE");
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    // The dial, recorded from its answer: the callee hears the app's 600 Hz and says 1 kHz.
    // It asked for silence when idle: after the 2 s of audio the callee's RTP goes on, silent.
    let (callee_phone, callee) = callee_phone(&net, 7);
    expect_step(&mut app, &mut lines, "DIALED", &server);
    let (first, b_media) = hear(
        &callee_phone,
        Duration::from_secs(15),
        Duration::from_millis(1),
    );
    let b_media = b_media.expect("the dial's audio_url at the callee");
    let (rest, _) = common::voice_app::listen(
        &callee_phone,
        Duration::from_millis(1000),
        Duration::from_secs(4),
    );
    let heard = [first, rest].concat();
    assert!(windows_of(&heard, 600.0) >= 10, "{} samples", heard.len());
    assert!(
        heard.len() >= 8000 * 35 / 10,
        "RTP stopped after {} samples",
        heard.len()
    );
    let tail = &heard[heard.len() - 4000..];
    assert!(
        tail.iter().all(|&s| s.abs() < 50),
        "silence after the audio"
    );
    send_audio(
        &callee_phone,
        b_media,
        &tone::sines(&[1000.0], 8000.0, 1500),
        400,
    );
    tell(&mut app, "HANGUP");
    assert!(callee.finished_ok(Duration::from_secs(10)), "the callee");

    let s = summary_of(app, lines, &server);
    assert!(all_verified(&s), "{s}");
    assert!(s["errors"]["acting"].is_null(), "{s}");

    // What the inbound recording holds: about 2.5 s of 1 kHz, none of the paused 700 Hz.
    let (samples, channels) = wav(&out.join("inbound.wav"));
    assert_eq!(channels, 1);
    let ones = windows_of(&samples, 1000.0);
    assert!((18..=30).contains(&ones), "1 kHz windows: {ones}");
    assert_eq!(windows_of(&samples, 700.0), 0, "the pause was recorded");
    assert_eq!(
        std::fs::read(out.join("inbound-url.wav")).unwrap(),
        std::fs::read(out.join("inbound.wav")).unwrap(),
        "the webhook's URL serves the same file"
    );
    let mp3 = std::fs::read(out.join("inbound.mp3")).unwrap();
    let decoded = switchboard_media::decode::decode_to_8k(mp3, Some("mp3")).unwrap();
    assert!(windows_of(&decoded, 1000.0) >= 18, "the mp3 conversion");
    // The recording that stopped itself: the second of speech and the second of silence.
    let silence = s["saved"]["silence"]["duration_millis"]
        .as_i64()
        .unwrap_or(-1);
    assert!((1500..=3500).contains(&silence), "{s}");
    let inbound = &s["saved"]["inbound"];
    assert_eq!(inbound["wav_type"], "audio/x-wav");
    assert_eq!(inbound["mp3_type"], "audio/mpeg");
    let event = &inbound["event"];
    assert_eq!(event["channels"], "single");
    assert_eq!(event["format"], "wav");
    assert_eq!(event["connection_id"], CONNECTION);
    assert!(
        event["call_control_id"]
            .as_str()
            .unwrap()
            .starts_with("v3:")
    );
    let resource = &inbound["resource"];
    assert_eq!(resource["id"], event["recording_id"]);
    assert_eq!(resource["record_type"], "recording");
    assert_eq!(resource["call_control_id"], event["call_control_id"]);
    assert_eq!(resource["call_session_id"], event["call_session_id"]);
    assert_eq!(resource["connection_id"], CONNECTION);
    assert_eq!(resource["initiated_by"], "StartCallRecordingAPI");
    assert_eq!(resource["status"], "completed");
    assert_eq!(resource["to"], RECORDED);
    assert_eq!(resource["from"], "+15550001");
    let millis = resource["duration_millis"].as_i64().unwrap();
    // What was said (2.5 s) and the quiet around it; the pause is checked by its tone.
    assert!((2500..=6000).contains(&millis), "duration {millis} ms");
    assert_eq!(s["errors"]["second_start"], "90000", "{s}");
    assert_eq!(s["errors"]["stop_unrecorded"], "90000", "{s}");
    assert_eq!(s["errors"]["stop_unforked"], "90031", "{s}");
    let forks: Vec<(&str, &Value)> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[0].as_str().unwrap().starts_with("call.fork."))
        .map(|e| (e[0].as_str().unwrap(), &e[1]["stream_type"]))
        .collect();
    assert_eq!(
        forks,
        [
            ("call.fork.started", &Value::from("raw")),
            ("call.fork.stopped", &Value::from("raw"))
        ]
    );

    // The dial's recording: named in the dial's response, saved after the hang-up, dual.
    let dialed = &s["saved"]["dialed"]["event"];
    assert_eq!(dialed["recording_id"], s["summary"]["dial_recording_id"]);
    assert_eq!(dialed["channels"], "dual");
    assert_eq!(dialed["format"], "mp3");
    assert_eq!(s["saved"]["dialed"]["mp3_type"], "audio/mpeg");
    let mp3 = std::fs::read(out.join("dialed.mp3")).unwrap();
    let decoded = switchboard_media::decode::decode_to_8k(mp3, Some("mp3")).unwrap();
    assert!(
        windows_of(&decoded, 600.0) + windows_of(&decoded, 1000.0) >= 10,
        "the dial's recording holds its call"
    );
    let callee_events: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[1]["to"] == CALLEE)
        .map(|e| e[0].as_str().unwrap())
        .collect();
    let hangup = callee_events.iter().position(|e| *e == "call.hangup");
    let saved = callee_events
        .iter()
        .position(|e| *e == "call.recording.saved");
    assert!(
        hangup.is_some() && saved > hangup,
        "saved after the hang-up: {callee_events:?}"
    );

    // The list: both, newest first, one per page; filtered; then deleted.
    let both = [
        dialed["recording_id"].clone(),
        event["recording_id"].clone(),
    ];
    assert_eq!(s["summary"]["all_ids"], serde_json::json!(both));
    let meta = &s["summary"]["first_page"]["meta"];
    assert_eq!(
        (
            &meta["total_pages"],
            &meta["total_results"],
            &meta["page_size"]
        ),
        (&Value::from(2), &Value::from(2), &Value::from(1))
    );
    assert_eq!(s["summary"]["of_connection"], serde_json::json!(both));
    assert_eq!(s["summary"]["of_other_connection"], serde_json::json!([]));
    assert_eq!(s["summary"]["of_callee"], serde_json::json!([both[0]]));
    assert_eq!(s["summary"]["to_callee"], serde_json::json!([both[0]]));
    assert_eq!(s["summary"]["deleted"], both[1]);
    assert_eq!(s["summary"]["bulk"]["status"], "ok");
    assert_eq!(s["summary"]["after_ids"], serde_json::json!([]));
    assert_eq!(s["errors"]["retrieve_deleted"], "10005");
    assert_eq!(s["errors"]["download_deleted"], 404);
    server.stop();
}

/// Call queues through the official SDK (tests/compat/telnyx_queues.py): a caller enqueued,
/// refused a second time, taken out by `leave_queue`, enqueued again with a one-second
/// `max_wait_time_secs` and taken out by it; another caller waits in the queue hearing the
/// app's hold music until a dialed leg is bridged with the queue's front, and the two then
/// hear each other — until the app enqueues it again, which takes it out of the bridge. The
/// node runs two call-core shards, the waiter on the second and the dialed leg on the first
/// (the first the app places): the bridge is a visit between the shards, and the waiter's
/// leaving it leaves the callee up, as a bridge in one core does.
#[test]
fn the_official_telnyx_sdk_queues_callers_and_bridges_the_front() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const LEAVER: &str = "+15557770401";
    const WAITER: &str = "+15557770402";
    const CALLEE: &str = "+15551234";
    let net = Arc::new(Net::new(106));
    let hooks = format!("{}:18080", net.ip(6));
    let config = telnyx::config(&hooks, "", &[LEAVER, WAITER]);
    let env = [("SWITCHBOARD_SIP__CALL_SHARDS", "2")];
    let server = Server::start_with(&net, &net.two_trunks(&config), &env);
    let (mut app, mut lines) = spawn_script(
        &python,
        "telnyx_queues.py",
        &server,
        &[KEY, PUBLIC_KEY, &hooks, CONNECTION, LEAVER, WAITER, CALLEE],
    );
    expect_step(&mut app, &mut lines, "READY", &server);

    // The leaver: in and out of two queues, then hung up by the app.
    let (_, leaver) = common::voice_app::call_with_phone(&net, &server, LEAVER);
    let run = leaver.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);

    // The waiter hears the hold music (which tells the test where it talks from) ...
    let on_second_shard = common::call_id_on_shard(&net.ip(2), 2, 1);
    let (phone, waiter) =
        common::voice_app::call_with_phone_as(&net, &server, WAITER, on_second_shard);
    expect_step(&mut app, &mut lines, "ENQUEUED", &server);
    let (music, endpoint) = hear(&phone, Duration::from_secs(10), Duration::from_millis(700));
    let endpoint = endpoint.expect("the hold music");
    assert!(windows_of(&music, 600.0) >= 10, "{} samples", music.len());
    // ... until the app dials the callee and bridges it with the queue's front.
    let (callee_phone, callee) = callee_phone(&net, 7);
    tell(&mut app, "DIAL");
    expect_step(&mut app, &mut lines, "BRIDGED", &server);
    let talk = |from: &std::net::UdpSocket, to: std::net::SocketAddr, freq: f32| {
        let from = from.try_clone().unwrap();
        std::thread::spawn(move || send_audio(&from, to, &tone::sines(&[freq], 8000.0, 1500), 700))
    };
    let talking = talk(&phone, endpoint, 700.0);
    let (heard, b_media) = hear(
        &callee_phone,
        Duration::from_secs(5),
        Duration::from_millis(700),
    );
    talking.join().unwrap();
    assert!(
        windows_of(&heard, 700.0) >= 8,
        "callee: {} samples",
        heard.len()
    );
    let talking = talk(&callee_phone, b_media.unwrap(), 1000.0);
    let (heard, _) = hear(&phone, Duration::from_secs(5), Duration::from_millis(700));
    talking.join().unwrap();
    assert!(
        windows_of(&heard, 1000.0) >= 8,
        "waiter: {} samples",
        heard.len()
    );
    // Enqueued again while bridged: it leaves the bridge for the queue, and the callee no
    // longer hears it.
    tell(&mut app, "REQUEUE");
    expect_step(&mut app, &mut lines, "REQUEUED", &server);
    let talking = talk(&phone, endpoint, 700.0);
    let (heard, _) = hear(
        &callee_phone,
        Duration::from_secs(3),
        Duration::from_millis(700),
    );
    talking.join().unwrap();
    assert_eq!(
        windows_of(&heard, 700.0),
        0,
        "callee after the requeue: {} samples",
        heard.len()
    );
    tell(&mut app, "HANGUP");
    let run = waiter.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    assert!(callee.finished_ok(Duration::from_secs(10)), "the callee");

    let s = summary_of(app, lines, &server);
    assert!(all_verified(&s), "{s}");
    assert!(s["errors"]["acting"].is_null(), "{s}");
    assert_eq!(s["errors"]["enqueued_twice"], "90038", "{s}");
    assert_eq!(s["errors"]["leave_unqueued"], "90000", "{s}");
    assert_eq!(s["errors"]["unknown_queue"], "10032", "{s}");
    // The queues' own resources, read while the waiter waited ("support" was made by the
    // leaver's enqueue, at the default size: the waiter's `max_size` does not resize it).
    let rest = &s["rest"];
    assert_eq!(rest["support"], json!(["support", 1, 100, "queue"]), "{s}");
    assert_eq!(rest["calls"], json!([[true, 1, "queue_call", true]]), "{s}");
    assert_eq!(rest["call"], json!([true, "+15550001", true]), "{s}");
    assert_eq!(rest["created"], json!(["spare", 5, 0]), "{s}");
    assert_eq!(rest["updated"], 7, "{s}");
    assert_eq!(rest["listed"], json!(["short", "spare", "support"]), "{s}");
    assert_eq!(rest["keep_after_hangup"], "10032", "{s}");
    assert_eq!(rest["delete_busy"], "90000", "{s}");
    assert_eq!(rest["deleted"], "gone", "{s}");
    let of = |number: &str, prefix: &str| -> Vec<(String, Value)> {
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e[1]["to"] == number && e[0].as_str().unwrap().starts_with(prefix))
            .map(|e| (e[0].as_str().unwrap().to_owned(), e[1].clone()))
            .collect()
    };
    let queue_events = |number: &str| -> Vec<(String, Value, Value, Value)> {
        of(number, "call.")
            .into_iter()
            .filter(|(k, _)| k.contains("queued"))
            .map(|(k, p)| {
                let at = if k == "call.enqueued" {
                    p["current_position"].clone()
                } else {
                    p["queue_position"].clone()
                };
                (k, p["queue"].clone(), at, p["reason"].clone())
            })
            .collect()
    };
    let e = |k: &str, q: &str, at: i64, reason: Option<&str>| {
        (
            k.to_owned(),
            Value::from(q),
            Value::from(at),
            reason.map_or(Value::Null, Value::from),
        )
    };
    assert_eq!(
        queue_events(LEAVER),
        [
            e("call.enqueued", "support", 1, None),
            e("call.dequeued", "support", 1, Some("leave")),
            e("call.enqueued", "short", 1, None),
            e("call.dequeued", "short", 1, Some("timeout")),
        ],
        "{s}"
    );
    let timed_out = &of(LEAVER, "call.dequeued")[1].1;
    assert!(
        timed_out["wait_time_secs"].as_i64().unwrap() <= 2,
        "{timed_out}"
    );
    assert_eq!(
        queue_events(WAITER),
        [
            e("call.enqueued", "support", 1, None),
            e("call.dequeued", "support", 1, Some("bridged")),
            e("call.enqueued", "support", 1, None),
            e("call.dequeued", "support", 1, Some("hangup")),
        ],
        "{s}"
    );
    assert_eq!(of(WAITER, "call.bridged").len(), 1, "{s}");
    assert_eq!(of(CALLEE, "call.bridged").len(), 1, "{s}");
    server.stop();
}
