//! Telnyx Call Control against the real binary, driven by Telnyx's official Python and Node
//! SDKs (tests/compat/telnyx_call_control.py and .js, in the environments scripts/test.sh
//! sets up): the seed
//! voice-AI app dials with a bidirectional PCMU stream, verifies every webhook's Ed25519
//! signature with the SDK, turns on noise suppression and hangs up. The test is the callee's
//! ear and mouth: it hears the app's 600 Hz tone that came over the socket, and talks back at
//! 1 kHz (then noise), which the app must hear on the stream's inbound track — the noise much
//! quieter once the app has turned suppression on. And a leg cut by a `kill -9` still gets its
//! signed `call.hangup` after the restart.

use crate::common;

use common::sdk_app::telnyx::{self, ACCOUNT, CONNECTION, KEY, PUBLIC_KEY, SEED, TOKEN};
use common::sdk_app::{
    all_verified, call_refused, callee_checking, callee_phone, expect_step, hear, sdk_script_with,
    spawn_node_script, spawn_script, summary_of,
};
use common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_media::{FRAME, Law, tone};

/// The share of `samples`' power at `freq` (Goertzel): near 1 for a pure tone.
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    let energy: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    2.0 * power / (samples.len() as f64 * energy.max(1.0))
}

#[test]
fn the_official_telnyx_sdk_runs_a_streamed_call() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    seed_app(101, |server, args| {
        spawn_script(&python, "telnyx_call_control.py", server, args)
    })
    .1
    .stop();
}

/// The same app on Telnyx's official Node SDK (tests/compat/telnyx_call_control.js), which
/// also records the callee's tone while it talks, finds the recording with the SDK's
/// `recordings.list` and downloads its wav, and checks that a tampered webhook fails
/// `webhooks.unwrap`.
#[test]
fn the_official_telnyx_node_sdk_runs_a_streamed_call() {
    let Some(modules) = compat_env("SWITCHBOARD_TELNYX_NODE_PATH") else {
        return;
    };
    let (summary, server) = seed_app(108, |server, args| {
        spawn_node_script(&modules, "telnyx_call_control.js", server, args)
    });
    assert_eq!(summary["tampered_verified"], false, "{summary}");
    let recording = &summary["recording"];
    assert_eq!(recording["started"], "ok", "{recording}");
    let listed = recording["listed"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{recording}");
    assert_eq!(listed[0]["id"], recording["saved_id"], "{recording}");
    assert_eq!(listed[0]["call_control_id"], summary["call_control_id"]);
    assert_eq!(listed[0]["status"], "completed", "{recording}");
    // The callee's 2 s of 1 kHz (100 frames) are in the downloaded wav.
    assert!(
        recording["wav_1khz_frames"].as_u64().unwrap() >= 80,
        "{recording}"
    );
    server.stop();
}

/// The seed voice-AI app, started by `start` with the server and its arguments: the test is
/// its callee's ear and mouth and checks what the app saw. Returns the app's summary and the
/// server, still running.
fn seed_app(
    net: u8,
    start: impl FnOnce(&Server, &[&str]) -> (std::process::Child, common::sdk_app::Printed),
) -> (Value, Server) {
    let net = Net::new(net);
    let hooks = format!("{}:18080", net.ip(6));
    let config = net.two_trunks(&telnyx::config(&hooks, "", &[]));
    // Recordings' download URLs name the server where the app can reach it.
    let public_url = format!("http://{}:8080", net.ip(1));
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_HTTP__PUBLIC_URL", &public_url)],
    );
    // The dial's from_display_name and custom_headers are on the callee's INVITE (its SIPp
    // exits with an error otherwise).
    let (phone, callee) = callee_checking(
        &net,
        5,
        &[
            ("From:", r#"^ *"Seed Bot" <sip:\+15550002222@"#),
            ("X-Seed-Id:", "42"),
        ],
    );

    let (mut child, mut lines) = start(&server, &[KEY, PUBLIC_KEY, CONNECTION, &hooks]);
    expect_step(&mut child, &mut lines, "TALKING", &server);

    // The app's voice, from the socket, at the callee's ear: its 600 Hz tone.
    phone
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut heard = Vec::new();
    let mut from = None;
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    while heard.len() < 8000 * 2 && start.elapsed() < Duration::from_secs(10) {
        if let Ok((n, src)) = phone.recv_from(&mut buf)
            && n > 12
        {
            let mut pcm = vec![0i16; n - 12];
            Law::Ulaw.decode(&buf[12..n], &mut pcm);
            heard.extend(pcm);
            from = Some(src);
        }
    }
    let loud: Vec<&[i16]> = heard
        .chunks(FRAME)
        .filter(|f| f.iter().map(|&x| i32::from(x).abs()).max().unwrap_or(0) > 2000)
        .collect();
    let tonal = loud.iter().filter(|f| tone_share(f, 600.0) > 0.7).count();
    assert!(
        tonal >= 50,
        "the callee heard {tonal} frames of 600 Hz in {} samples",
        heard.len()
    );

    // The callee talks: 1 kHz for 2 s, then noise for 2 s, which the app must hear on the
    // inbound track; once the app has turned suppression on, the same noise again.
    let to = from.expect("Switchboard's media address");
    send_audio(&phone, to, &tone::sines(&[1000.0], 8000.0, 2000), 100);
    send_audio(&phone, to, &noise(16_000, 8000.0), 200);
    let next = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(next, "SUPPRESSED", "{}", server.log());
    send_audio(&phone, to, &noise(24_000, 8000.0), 400);

    let summary = summary_of(child, lines, &server);
    let events: Vec<&str> = summary["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[0].as_str().unwrap())
        .collect();
    // Every webhook verified by the SDK, in the call's order.
    assert!(all_verified(&summary), "{summary}");
    let position = |e: &str| events.iter().position(|x| *x == e).unwrap_or(usize::MAX);
    assert!(
        position("call.initiated") < position("call.answered")
            && position("call.answered") < position("streaming.started")
            && position("streaming.started") < position("call.hangup")
            && position("call.hangup") < usize::MAX,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == "call.hangup").count(),
        1,
        "{events:?}"
    );
    let payload = |e: &str| {
        summary["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x[0] == e)
            .map(|x| x[1].clone())
            .unwrap()
    };
    let ccid = summary["call_control_id"].as_str().unwrap();
    let initiated = payload("call.initiated");
    assert_eq!(initiated["call_control_id"], ccid);
    assert_eq!(initiated["connection_id"], CONNECTION);
    assert_eq!(initiated["direction"], "outgoing");
    assert_eq!(initiated["state"], "bridging");
    assert_eq!(initiated["client_state"], "c2VlZC1hcHA=");
    assert_eq!(initiated["from"], "+15550002222");
    assert_eq!(initiated["to"], "+15551234");
    let hangup = payload("call.hangup");
    assert_eq!(hangup["hangup_cause"], "normal_clearing");
    assert_eq!(hangup["hangup_source"], "caller");
    assert_eq!(hangup["sip_hangup_cause"], "200");
    // The client_state the app set last rides on the hang-up.
    assert_eq!(hangup["client_state"], "YWZ0ZXI=");

    let stream = &summary["stream"];
    assert_eq!(stream["token_header"], "s3cret-token");
    assert_eq!(stream["events"][0], "connected");
    assert_eq!(stream["start"]["start"]["call_control_id"], ccid);
    assert_eq!(stream["start"]["start"]["media_format"]["encoding"], "PCMU");
    assert_eq!(stream["tracks"], serde_json::json!(["inbound", "outbound"]));
    assert!(stream["tone_frames"].as_u64().unwrap() >= 50, "{stream}");
    // suppression_start {direction: both}: the callee's noise reaches the app much quieter.
    // After it, the 3 s of noise are the loudest 2 s stretch of what the app heard.
    let before = summary["noise_rms"]["before"].as_f64().unwrap();
    let after: Vec<f64> = summary["noise_rms"]["after"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let loudest = after
        .windows(100)
        .map(|w| {
            let mut w = w.to_vec();
            w.sort_by(f64::total_cmp);
            w[50]
        })
        .fold(0.0, f64::max);
    assert!(
        before > 2000.0 && loudest < before * 0.3,
        "noise RMS {before:.0} before suppression, {loudest:.0} after"
    );
    assert_eq!(
        summary["final_status"],
        serde_json::json!({"is_alive": false, "client_state": "YWZ0ZXI="})
    );
    assert_eq!(summary["errors"]["ended"], "90018");
    assert_eq!(summary["errors"]["missing"]["code"], "10004");
    assert_eq!(summary["errors"]["missing"]["source"]["pointer"], "/to");
    assert_eq!(summary["errors"]["auth"], 401);
    // The callee's checks of the INVITE held (SIPp fails the call otherwise).
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the callee's INVITE checks"
    );
    (summary, server)
}

/// Telnyx webhooks a receiver got: each body, and whether its Ed25519 signature verified with
/// the account's public key over `"{timestamp}|{body}"`.
type Received = Arc<Mutex<Vec<(Value, bool)>>>;

fn telnyx_receiver(rt: &tokio::runtime::Runtime, addr: &str) -> Received {
    use axum::http::HeaderMap;
    let received: Received = Arc::default();
    let sink = received.clone();
    let router = axum::Router::new().route(
        "/telnyx",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let verified = telnyx::signed(
                &header("telnyx-timestamp"),
                &header("telnyx-signature-ed25519"),
                &body,
            );
            sink.lock().unwrap().push((json(&body), verified));
            async { "" }
        }),
    );
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    received
}

/// The payload of the first webhook named `name` the receiver got (its signature verified),
/// waited for.
fn first_event(received: &Received, name: &str) -> Value {
    let mut found = None;
    wait_for(name, Duration::from_secs(15), || {
        found = (received.lock().unwrap().iter())
            .find(|(b, _)| b["data"]["event_type"] == name)
            .map(|(b, verified)| {
                assert!(verified, "{b}");
                b["data"]["payload"].clone()
            });
        found.is_some()
    });
    found.unwrap()
}

/// A Call Control action on leg `id`: its status and JSON answer.
fn leg_action(server: &Server, id: &str, name: &str, body: Value) -> (u16, Value) {
    let headers = format!("Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n");
    let path = format!("/v2/calls/{id}/actions/{name}");
    let (status, body) = server.request("POST", &path, &headers, body.to_string().as_bytes());
    (
        status,
        serde_json::from_slice::<Value>(&body).unwrap_or_default(),
    )
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A leg whose node is killed mid-call: the restarted server closes it and sends its
/// `call.hangup` — once, signed, with the leg's client_state — from the stored subscription and
/// events, after the `call.initiated` and `call.answered` it had sent.
#[test]
fn a_leg_cut_by_a_crash_still_gets_its_hangup() {
    let net = Net::new(102);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hooks = format!("{}:18080", net.ip(10));
    let received = telnyx_receiver(&rt, &hooks);
    let config = net.two_trunks(&format!(
        "{}[webhooks]\nretry_max_secs = 1\n",
        telnyx::config(&hooks, "", &[])
    ));
    let uas = scenario(&net, "uas_pcap.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    let server = Server::start(&net, &config);
    let auth = format!("Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n");
    let body = format!(
        r#"{{"connection_id":"{CONNECTION}","to":"+15551234","from":"+15550002222","client_state":"Y3Jhc2g="}}"#
    );
    let (status, reply) = server.request("POST", "/v2/calls", &auth, body.as_bytes());
    let reply = json(&String::from_utf8_lossy(&reply));
    assert_eq!(status, 200, "{reply}");
    let ccid = reply["data"]["call_control_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let types = |r: &Received| -> Vec<String> {
        r.lock()
            .unwrap()
            .iter()
            .map(|(b, _)| b["data"]["event_type"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    wait_for("call.answered", Duration::from_secs(20), || {
        types(&received).iter().any(|t| t == "call.answered")
    });
    // Killed once the two deliveries are on record (else they could be made again).
    let delivered = "switchboard_webhook_attempts_total{outcome=\"delivered\"}";
    wait_for("the deliveries on record", Duration::from_secs(20), || {
        server.metric(delivered).unwrap_or(0.0) >= 2.0
    });
    server.kill();

    let again = Server::start(&net, &config);
    wait_for("the cut leg's call.hangup", Duration::from_secs(20), || {
        types(&received).iter().any(|t| t == "call.hangup")
    });
    // Retries are 1 s apart at most: a duplicate would show within this.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        types(&received),
        ["call.initiated", "call.answered", "call.hangup"]
    );
    let received = received.lock().unwrap().clone();
    assert!(
        received.iter().all(|(_, verified)| *verified),
        "{received:?}"
    );
    let (hangup, _) = &received[2];
    assert_eq!(hangup["meta"]["attempt"], 1);
    let p = &hangup["data"]["payload"];
    assert_eq!(p["call_control_id"], ccid.as_str());
    assert_eq!(p["client_state"], "Y3Jhc2g=");
    // Nobody hung up: the call ended with its node.
    assert_eq!(
        (
            &p["hangup_cause"],
            &p["hangup_source"],
            &p["sip_hangup_cause"]
        ),
        (
            &Value::from("unspecified"),
            &Value::from("unknown"),
            &Value::from("unspecified")
        )
    );
    let log = again.log();
    assert!(
        log.contains("webhooks rebuilt from stored call events"),
        "{log}"
    );
}

/// Incoming calls to numbers on a connection, handled by an app written with the official SDK
/// (tests/compat/telnyx_inbound.py): the call it answers plays the app's 600 Hz WAV to the
/// caller and gathers the caller's two digits; the call it rejects busy gets 486; the call it
/// ignores is hung up with 480 by the connection's first-command timeout; the call it transfers
/// to a callee is bridged with it once the callee has heard the transfer's audio, and the two
/// hear each other. Every webhook is verified by the SDK (a tampered one is not).
#[test]
fn the_official_telnyx_sdk_answers_rejects_ignores_and_transfers_incoming_calls() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    inbound_app(103, |server, args| {
        spawn_script(&python, "telnyx_inbound.py", server, args)
    });
}

/// The same app on Telnyx's official Node SDK (tests/compat/telnyx_inbound.js).
#[test]
fn the_official_telnyx_node_sdk_answers_rejects_ignores_and_transfers_incoming_calls() {
    let Some(modules) = compat_env("SWITCHBOARD_TELNYX_NODE_PATH") else {
        return;
    };
    inbound_app(110, |server, args| {
        spawn_node_script(&modules, "telnyx_inbound.js", server, args)
    });
}

/// The inbound app, started by `start` with the server and its arguments, on network `n`.
fn inbound_app(
    n: u8,
    start: impl FnOnce(&Server, &[&str]) -> (std::process::Child, common::sdk_app::Printed),
) {
    const ANSWERED: &str = "+15557770001";
    const BUSY: &str = "+15557770002";
    const IGNORED: &str = "+15557770003";
    const TRANSFERRED: &str = "+15557770004";
    const CALLEE: &str = "+15551234";
    let net = Arc::new(Net::new(n));
    let hooks = format!("{}:18080", net.ip(6));
    let config = telnyx::config(
        &hooks,
        "first_command_timeout = true\nfirst_command_timeout_secs = 2\n",
        &[ANSWERED, BUSY, IGNORED, TRANSFERRED],
    );
    let server = Server::start(&net, &net.two_trunks(&config));
    let (mut app, mut lines) = start(
        &server,
        &[
            KEY,
            PUBLIC_KEY,
            &hooks,
            ANSWERED,
            BUSY,
            IGNORED,
            TRANSFERRED,
            CALLEE,
        ],
    );
    expect_step(&mut app, &mut lines, "READY", &server);

    // Answered: the app's WAV prompt at the caller's ear; the caller says nothing, hears it
    // again (the second try), then keys 4, 2 and the app hangs up (the caller's SIPp waits
    // for the BYE). The caller's X- and User-to-User headers reach call.initiated; the app's
    // custom_headers reach the caller on the 200 (answer) and on the BYE (hangup).
    let (phone, caller) = common::voice_app::call_with_headers(
        &net,
        &server,
        ANSWERED,
        &[
            ("X-Case-Id", "77"),
            ("User-to-User", "56a390f3d2b7310023a2;encoding=hex"),
            ("P-Asserted-Identity", "<sip:+15550009@carrier>"),
        ],
        (
            &[("X-Answered-By:", "^ *inbound-bot *$")],
            &[("X-Reason:", "^ *gathered *$")],
        ),
    );
    let is_tone = |heard: &[i16]| {
        let share = tone::share_at(&heard[heard.len().min(800)..heard.len().min(12_000)], 600.0);
        heard.len() >= 12_000 && share > 0.9
    };
    let (heard, endpoint) = hear(&phone, Duration::from_secs(10), Duration::from_millis(1500));
    let endpoint = endpoint.unwrap_or_else(|| panic!("the app's prompt\n{}", server.log()));
    assert!(is_tone(&heard), "{} samples of the prompt", heard.len());
    let (replay, _) = hear(&phone, Duration::from_secs(8), Duration::from_millis(700));
    assert!(is_tone(&replay), "{} samples of the replay", replay.len());
    let mut seq = 1;
    common::send_rfc4733(&phone, endpoint, 4, &mut seq, 20_000);
    common::send_rfc4733(&phone, endpoint, 2, &mut seq, 24_000);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    // Rejected busy, and ignored until the connection's timeout: the SIP the caller gets.
    for (number, code) in [(BUSY, "486"), (IGNORED, "480")] {
        call_refused(&net, &server, number, code);
    }

    // Transferred, unanswered, to a callee on carrier-b: the callee hears the transfer's WAV
    // (before the bridge is made), then the two talk through the bridge (1 kHz one way,
    // 700 Hz the other); the app hangs up the callee's leg and the caller's follows.
    let (callee_phone, callee) = callee_phone(&net, 7);
    let (phone, caller) = common::voice_app::call_with_phone(&net, &server, TRANSFERRED);
    let (heard, b_media) = hear(
        &callee_phone,
        Duration::from_secs(15),
        Duration::from_millis(1500),
    );
    let b_media = b_media.expect("the transfer's audio_url at the callee");
    let share = tone::share_at(&heard[heard.len().min(800)..heard.len().min(12_000)], 600.0);
    assert!(
        heard.len() >= 12_000 && share > 0.9,
        "callee: 600 Hz share {share}"
    );
    let talk = |from: &std::net::UdpSocket, to: std::net::SocketAddr, freq: f32| {
        let from = from.try_clone().unwrap();
        std::thread::spawn(move || send_audio(&from, to, &tone::sines(&[freq], 8000.0, 1500), 300))
    };
    let talking = talk(&callee_phone, b_media, 1000.0);
    let (heard, a_media) = hear(&phone, Duration::from_secs(5), Duration::from_millis(1000));
    talking.join().unwrap();
    let a_media = a_media.expect("the callee's voice at the caller");
    let share = tone::share_at(&heard[heard.len().min(800)..heard.len().min(8_000)], 1000.0);
    assert!(
        heard.len() >= 8_000 && share > 0.9,
        "caller: 1 kHz share {share}"
    );
    let talking = talk(&phone, a_media, 700.0);
    let (heard, _) = hear(
        &callee_phone,
        Duration::from_secs(5),
        Duration::from_millis(1000),
    );
    talking.join().unwrap();
    let share = tone::share_at(&heard[heard.len().min(800)..heard.len().min(8_000)], 700.0);
    assert!(
        heard.len() >= 8_000 && share > 0.9,
        "callee: 700 Hz share {share}"
    );
    use std::io::Write;
    writeln!(app.stdin.as_mut().unwrap(), "HANGUP").unwrap();
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "caller of the transfer: {}\n{}",
        run.errors,
        server.log()
    );
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "callee of the transfer"
    );

    let summary = summary_of(app, lines, &server);
    assert!(all_verified(&summary), "{summary}");
    assert_eq!(summary["tampered_verified"], false);
    assert_eq!(
        summary["errors"]["answer_after_reject"], "90018",
        "{summary}"
    );
    assert!(summary["errors"]["acting"].is_null(), "{summary}");
    assert_eq!(summary["errors"]["bridge_unknown"], "90015", "{summary}");
    assert_eq!(summary["errors"]["bridge_self"], "10032", "{summary}");
    // Asked of the core, not of a copy of the call's state.
    assert_eq!(summary["errors"]["record_unanswered"], "90020", "{summary}");
    assert_eq!(summary["errors"]["fork_unanswered"], "90034", "{summary}");
    let of = |number: &str| -> Vec<(String, Value)> {
        summary["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e[1]["to"] == number)
            .map(|e| (e[0].as_str().unwrap().to_owned(), e[1].clone()))
            .collect()
    };
    let kinds = |events: &[(String, Value)]| -> Vec<String> {
        events.iter().map(|(k, _)| k.clone()).collect()
    };

    let answered = of(ANSWERED);
    assert_eq!(
        kinds(&answered)[..9],
        [
            "call.initiated",
            "call.answered",
            "call.playback.started",
            "call.playback.ended",
            "call.playback.started",
            "call.playback.ended",
            "call.dtmf.received",
            "call.dtmf.received",
            "call.gather.ended",
        ],
        "{summary}"
    );
    // Then the speak starting and its gather stopped, in either order (the playback's start
    // comes from the media engine), and the hang-up.
    let mut tail = kinds(&answered)[9..11].to_vec();
    tail.sort();
    assert_eq!(
        tail,
        ["call.gather.ended", "call.speak.started"],
        "{summary}"
    );
    assert!(kinds(&answered).contains(&"call.hangup".to_owned()));
    let initiated = &answered[0].1;
    assert_eq!(initiated["direction"], "incoming");
    assert_eq!(initiated["state"], "parked");
    assert_eq!(initiated["from"], "+15550001");
    assert_eq!(initiated["connection_id"], CONNECTION);
    assert!(initiated["client_state"].is_null());
    assert_eq!(
        initiated["custom_headers"],
        json!([{"name": "X-Case-Id", "value": "77"}]),
        "{initiated}"
    );
    assert_eq!(
        initiated["sip_headers"],
        json!([{"name": "User-to-User", "value": "56a390f3d2b7310023a2;encoding=hex"}]),
        "{initiated}"
    );
    let ccid = initiated["call_control_id"].as_str().unwrap();
    assert!(ccid.starts_with("v3:"), "{ccid}");
    assert!(answered.iter().all(|(_, p)| p["call_control_id"] == ccid));
    // The client_state given with answer rides on every later webhook.
    let state = "aW5ib3VuZC1hcHA=";
    assert!(
        answered[1..]
            .iter()
            .all(|(_, p)| p["client_state"] == state)
    );
    assert_eq!(answered[3].1["status"], "completed");
    let digits: Vec<&Value> = answered[6..8].iter().map(|(_, p)| &p["digit"]).collect();
    assert_eq!(digits, ["4", "2"]);
    assert_eq!(answered[8].1["digits"], "42");
    assert_eq!(answered[8].1["status"], "valid");
    assert_eq!(answered[8].1["gather_id"], "code");
    // gather_stop: the speak's gather ends cancelled, and the app hangs up on it.
    let cancelled = answered[9..11]
        .iter()
        .find(|(k, _)| k == "call.gather.ended")
        .unwrap();
    assert_eq!(cancelled.1["status"], "cancelled");
    let hangup = &answered.iter().find(|(k, _)| k == "call.hangup").unwrap().1;
    assert_eq!(
        (
            &hangup["hangup_cause"],
            &hangup["hangup_source"],
            &hangup["sip_hangup_cause"]
        ),
        (
            &Value::from("normal_clearing"),
            &Value::from("callee"),
            &Value::from("200")
        )
    );

    for (number, cause, sip) in [(BUSY, "user_busy", "486"), (IGNORED, "timeout", "480")] {
        let events = of(number);
        assert_eq!(
            kinds(&events),
            ["call.initiated", "call.hangup"],
            "{number}: {summary}"
        );
        assert_eq!(events[0].1["state"], "parked");
        let p = &events[1].1;
        assert_eq!(
            (
                &p["hangup_cause"],
                &p["hangup_source"],
                &p["sip_hangup_cause"]
            ),
            (
                &Value::from(cause),
                &Value::from("callee"),
                &Value::from(sip)
            ),
            "{number}"
        );
    }
    // The transfer: the caller's leg answered when the callee did, both bridged, and the
    // caller's hung up after the callee's; one session.
    let a = of(TRANSFERRED);
    assert_eq!(
        kinds(&a),
        [
            "call.initiated",
            "call.answered",
            "call.bridged",
            "call.hangup"
        ],
        "{summary}"
    );
    let b = of(CALLEE);
    assert_eq!(
        kinds(&b),
        [
            "call.initiated",
            "call.answered",
            "call.playback.started",
            "call.playback.ended",
            "call.bridged",
            "call.hangup"
        ],
        "{summary}"
    );
    assert_eq!(b[0].1["direction"], "outgoing");
    assert_eq!(
        b[0].1["from"], "+15550001",
        "the caller's number by default"
    );
    assert_eq!(b[0].1["client_state"], "Yi1sZWc=");
    assert_eq!(b[0].1["call_session_id"], a[0].1["call_session_id"]);
    assert_ne!(b[0].1["call_leg_id"], a[0].1["call_leg_id"]);
    assert_eq!(b[5].1["hangup_source"], "caller");
    assert_eq!(a[3].1["hangup_cause"], "normal_clearing");
    let calls = server.ended_calls(5);
    assert!(
        calls.iter().all(|c| c["account_sid"] == ACCOUNT),
        "{calls:?}"
    );
    server.stop();
}

/// Call Control applications through the official SDK (tests/compat/telnyx_applications.py):
/// created, listed page by page and filtered, read, changed, deleted; a dial through one the
/// SDK made sends its webhooks to that application's (changed) URL; another account sees none
/// of them (and its failover URL gets them when that URL fails); and the errors are Telnyx's.
#[test]
fn the_official_telnyx_sdk_manages_call_control_applications() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const OTHER: &str = "AC11111111111111111111111111111111";
    const OTHER_KEY: &str = "KEY1111111111111111_other";
    let net = Net::new(104);
    let hooks = format!("{}:18080", net.ip(6));
    const NUMBER: &str = "+15557770101";
    let mut config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         telnyx_api_keys = [\"{KEY}\"]\ntelnyx_private_key = \"{SEED}\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\ncaller_ids = [\"+1555*\"]\n\
         telnyx_api_keys = [\"{OTHER_KEY}\"]\n"
    );
    for (number, account) in [
        (NUMBER, ACCOUNT),
        ("+15557770102", ACCOUNT),
        ("+15557770201", OTHER),
    ] {
        config +=
            &format!("[[numbers]]\nphone_number = \"{number}\"\naccount_sid = \"{account}\"\n");
    }
    let server = Server::start(&net, &net.two_trunks(&config));
    let uas = scenario(&net, "uas_hangup.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    let (mut app, mut lines) = spawn_script(
        &python,
        "telnyx_applications.py",
        &server,
        &[KEY, OTHER_KEY, PUBLIC_KEY, &hooks, NUMBER],
    );
    expect_step(&mut app, &mut lines, "PATCHED", &server);
    // The number now belongs to the application the SDK made: its call is parked there and
    // ended by that application's 2 s first-command timeout (480).
    call_refused(&net, &server, NUMBER, "480");
    use std::io::Write;
    writeln!(app.stdin.as_mut().unwrap(), "CALLED").unwrap();
    let s = summary_of(app, lines, &server);
    let created = &s["created"];
    assert_eq!(created["record_type"], "call_control_application");
    assert!(
        created["id"]
            .as_str()
            .is_some_and(|id| id.len() >= 19 && id.bytes().all(|b| b.is_ascii_digit())),
        "{created}"
    );
    assert_eq!(created["application_name"], "alpha bot");
    assert_eq!(created["first_command_timeout"], true);
    assert_eq!(created["first_command_timeout_secs"], 2);
    assert_eq!(created["dtmf_type"], "RFC 2833");
    assert_eq!(created["anchorsite_override"], "Latency");
    assert_eq!(created["inbound"]["channel_limit"], serde_json::Value::Null);
    assert_eq!(created["tags"], serde_json::json!([]));
    assert_eq!(created["webhook_api_version"], "2");
    // Newest first, two per page, all three pages' worth through the SDK's paginator.
    assert_eq!(
        s["listed"],
        serde_json::json!(["gamma ivr", "beta bot", "alpha bot"])
    );
    assert_eq!(s["filtered"], serde_json::json!(["beta bot", "alpha bot"]));
    assert_eq!(s["retrieved"]["application_name"], "beta bot");
    let updated = &s["updated"];
    assert_eq!(updated["application_name"], "beta bot v2");
    assert_eq!(updated["first_command_timeout"], false);
    assert_eq!(updated["dtmf_type"], "RFC 2833");
    assert_eq!(updated["tags"], serde_json::json!(["seed", "v2"]));
    assert_eq!(updated["webhook_timeout_secs"], 1);
    assert!(
        updated["webhook_event_failover_url"]
            .as_str()
            .unwrap()
            .ends_with("/beta-failover")
    );
    assert_eq!(s["other_sees"], serde_json::json!([]));
    // Each webhook went to the changed URL, which did not answer within the application's
    // `webhook_timeout_secs`, and then to the failover URL (the same attempt, `delivered_to`
    // naming where it went).
    let hooks: Vec<(&str, &str, bool, i64, bool)> = s["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["path"] != "/alpha")
        .map(|h| {
            let path = h["path"].as_str().unwrap();
            (
                path,
                h["event"].as_str().unwrap(),
                h["verified"].as_bool().unwrap(),
                h["attempt"].as_i64().unwrap(),
                h["delivered_to"].as_str().unwrap().ends_with(path),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for event in ["call.initiated", "call.answered", "call.hangup"] {
        expected.push(("/beta2", event, true, 1, true));
        expected.push(("/beta-failover", event, true, 1, true));
    }
    assert_eq!(hooks, expected, "{}", server.log());
    // The numbers: the account's own, one given to the first application, whose call went
    // there.
    assert_eq!(s["numbers"], serde_json::json!([NUMBER, "+15557770102"]));
    assert_eq!(s["other_numbers"], serde_json::json!(["+15557770201"]));
    let patched = &s["patched"];
    assert_eq!(patched["record_type"], "phone_number");
    assert_eq!(patched["phone_number"], NUMBER);
    assert_eq!(patched["connection_id"], created["id"]);
    assert_eq!(patched["connection_name"], "alpha bot");
    assert_eq!(s["by_connection"], serde_json::json!([NUMBER]));
    assert_eq!(s["errors"]["others_connection"], "10015");
    assert_eq!(s["errors"]["others_number"], 404);
    assert_eq!(s["errors"]["tags"], "10032");
    let incoming: Vec<(&str, bool)> = s["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["path"] == "/alpha")
        .map(|h| (h["event"].as_str().unwrap(), h["verified"] == true))
        .collect();
    assert_eq!(incoming, [("call.initiated", true), ("call.hangup", true)]);
    // Deleting the application gave the number back.
    assert!(s["number_after_delete"].is_null(), "{s}");
    assert_eq!(s["deleted"], true);
    assert_eq!(s["errors"]["deleted"], 404);
    assert_eq!(s["errors"]["other_account"], 404);
    assert_eq!(s["errors"]["missing"]["code"], "10004");
    assert_eq!(
        s["errors"]["missing"]["source"]["pointer"],
        "/webhook_event_url"
    );
    assert_eq!(s["errors"]["version_1"], "10032");
    // What is not served is refused, pointing at the field (a SIP subdomain, DTMF by SIP
    // INFO), not kept and left undone.
    assert_eq!(
        s["errors"]["unserved_dtmf_type"],
        serde_json::json!(["10032", "/dtmf_type"])
    );
    assert_eq!(
        s["errors"]["unserved_inbound"],
        serde_json::json!(["10032", "/inbound/sip_subdomain"])
    );
    assert_eq!(s["errors"]["dial_deleted"], "10015");
    assert_eq!(s["remaining"], serde_json::json!(["beta bot v2"]));
    server.stop();
}

/// `playback_start` with `playback_content`: a base64 WAV given inline is played to the caller
/// (heard as its 1000 Hz), its `call.playback.*` events name no URL; content that is not
/// audio, or given beside an `audio_url`, is refused naming `playback_content`.
#[test]
fn playback_start_plays_inline_audio() {
    use base64::Engine;
    use common::voice_app::{call_with_phone, listen, wav_1khz};
    const NUMBER: &str = "+15557770490";
    let net = Arc::new(Net::new(216));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hooks = format!("{}:18080", net.ip(6));
    let received = telnyx_receiver(&rt, &hooks);
    let config = telnyx::config(&hooks, "", &[NUMBER]);
    let server = Server::start(&net, &net.two_trunks(&config));
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    let event = |name: &str| first_event(&received, name);
    let id = event("call.initiated")["call_control_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let action = |name: &str, body: Value| leg_action(&server, &id, name, body);
    assert_eq!(action("answer", json!({})).0, 200);
    let b64 = base64::engine::general_purpose::STANDARD;
    for bad in [
        json!({"playback_content": "not base64!"}),
        json!({"playback_content": b64.encode(b"plain text, not audio")}),
        json!({"playback_content": b64.encode(wav_1khz()), "audio_url": "http://127.0.0.1:1/x.wav"}),
    ] {
        let (status, refused) = action("playback_start", bad.clone());
        assert_eq!(status, 422, "{bad}: {refused}");
        assert_eq!(
            refused["errors"][0]["source"]["pointer"], "/playback_content",
            "{refused}"
        );
    }
    let (status, body) = action(
        "playback_start",
        json!({"playback_content": b64.encode(wav_1khz())}),
    );
    assert_eq!(status, 200, "{body}");
    let (heard, _) = listen(&phone, Duration::from_millis(600), Duration::from_secs(10));
    assert!(
        common::sdk_app::windows_of(&heard, 1000.0) >= 4,
        "the inline WAV was not heard"
    );
    let started = event("call.playback.started");
    assert_eq!(started["media_url"], Value::Null, "{started}");
    let ended = event("call.playback.ended");
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(action("hangup", json!({})).0, 200);
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}

/// `fork_start` with one `target`: both directions of the leg reach one UDP port, each packet
/// behind Telnyx's 24-byte encapsulation header — `11`, version 1, the A leg (an incoming
/// call), the direction bit, the header's length, the `call_leg_id` as 16 bytes — so the
/// caller's 700 Hz is on the received direction and the app's 1 kHz on the sent one. Both
/// forms at once, or a `decrypted` stream to one target, are refused naming the field.
#[test]
fn fork_start_with_one_target_encapsulates_both_directions() {
    use base64::Engine;
    use common::voice_app::{call_with_phone, listen, wav_1khz};
    use std::sync::atomic::{AtomicBool, Ordering};
    const NUMBER: &str = "+15557770491";
    let net = Arc::new(Net::new(236));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hooks = format!("{}:18080", net.ip(6));
    let received = telnyx_receiver(&rt, &hooks);
    let config = telnyx::config(&hooks, "", &[NUMBER]);
    let server = Server::start(&net, &net.two_trunks(&config));
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    let event = |name: &str| first_event(&received, name);
    let initiated = event("call.initiated");
    let id = initiated["call_control_id"].as_str().unwrap().to_owned();
    let leg: u128 = u128::from_str_radix(
        &initiated["call_leg_id"].as_str().unwrap().replace('-', ""),
        16,
    )
    .unwrap();
    let action = |name: &str, body: Value| leg_action(&server, &id, name, body);
    assert_eq!(action("answer", json!({})).0, 200);

    let fork = common::rig::rtp_socket(&net, 8);
    fork.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let target = format!("udp:{}", fork.local_addr().unwrap());
    for (bad, field) in [
        (json!({"target": target, "rx": target}), "/target"),
        (
            json!({"target": target, "stream_type": "decrypted"}),
            "/stream_type",
        ),
        (json!({"target": "udp:example.com:9000"}), "/target"),
    ] {
        let (status, refused) = action("fork_start", bad.clone());
        assert_eq!(status, 422, "{bad}: {refused}");
        assert_eq!(
            refused["errors"][0]["source"]["pointer"], field,
            "{refused}"
        );
    }
    let (status, body) = action("fork_start", json!({"target": target}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(event("call.fork.started")["stream_type"], "raw");

    // Everything the target gets, read as it comes (the fork sends 50 packets a second each way).
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut datagrams = Vec::new();
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = fork.recv(&mut buf) {
                    datagrams.push(buf[..n].to_vec());
                }
            }
            datagrams
        })
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let (status, body) = action(
        "playback_start",
        json!({"playback_content": b64.encode(wav_1khz())}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, endpoint) = listen(&phone, Duration::from_millis(400), Duration::from_secs(10));
    send_audio(
        &phone,
        endpoint.expect("the app's audio came"),
        &tone::sines(&[700.0], 6000.0, 1200),
        100,
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let datagrams = collector.join().unwrap();

    let mut said = Vec::new();
    let mut heard = Vec::new();
    for d in &datagrams {
        assert_eq!(d.len(), 24 + 12 + FRAME, "a header, then PCMU RTP");
        assert_eq!(d[0] & 0b1111_1110, 0b1100_0100, "11, version 1, A leg");
        assert_eq!((d[1], &d[2..8]), (24, &[0u8; 6][..]));
        assert_eq!(u128::from_be_bytes(d[8..24].try_into().unwrap()), leg);
        assert_eq!(d[24] >> 6, 2, "RTP follows the header");
        let mut samples = [0i16; FRAME];
        Law::Ulaw.decode(&d[36..], &mut samples);
        match d[0] & 1 {
            0 => said.extend_from_slice(&samples),
            _ => heard.extend_from_slice(&samples),
        }
    }
    let windows = common::sdk_app::windows_of;
    assert!(
        windows(&said, 700.0) >= 5 && windows(&said, 1000.0) == 0,
        "the caller's tone on the received direction ({} datagrams)",
        datagrams.len()
    );
    assert!(
        windows(&heard, 1000.0) >= 4 && windows(&heard, 700.0) == 0,
        "the app's tone on the sent direction ({} datagrams)",
        datagrams.len()
    );
    assert_eq!(action("fork_stop", json!({})).0, 200);
    assert_eq!(event("call.fork.stopped")["stream_type"], "raw");
    assert_eq!(action("hangup", json!({})).0, 200);
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}

/// tests/compat/telnyx_sip_auth.py: `calls.dial` to a SIP URI with `sip_auth_username` and
/// `sip_auth_password` answers the far end's digest challenge with them — a wrong password is
/// refused there and the call fails, the right one is answered and the SDK hangs it up.
#[test]
fn the_official_telnyx_sdk_dials_a_sip_uri_with_credentials_for_its_challenge() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let net = Net::new(82);
    let server = Server::start(
        &net,
        &net.two_trunks(&telnyx::config("127.0.0.1:9", "", &[])),
    );
    let far_end = SippServer::start(&net, &challenging_uas(&net), &net.ip(3), 5060, &["-m", "2"]);
    let sip_uri = format!("sip:+15551234@{}:5060", net.ip(3));
    // The account's calls as Twilio's API lists them, with `status` (the dialect's own call
    // resource says whether a call is alive, not whether it was answered).
    let calls_with = |status: &str| -> Vec<Value> {
        let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json?Status={status}");
        let (code, body) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
        assert_eq!(code, 200, "{body}");
        json(&body)["calls"].as_array().unwrap().clone()
    };
    let until = |status: &'static str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while calls_with(status).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no call {status}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        calls_with(status)
    };
    sdk_script_with(
        &python,
        &server,
        "telnyx_sip_auth.py",
        &[KEY, CONNECTION, &sip_uri],
        |line| match line.split_whitespace().nth(1) {
            Some("wrong") => {
                let failed = until("failed");
                assert_eq!(failed[0]["to"], sip_uri.as_str(), "{failed:?}");
                assert!(calls_with("in-progress").is_empty());
                Some("failed".into())
            }
            Some("right") => {
                let up = until("in-progress");
                assert_eq!(up[0]["to"], sip_uri.as_str(), "{up:?}");
                Some("answered".into())
            }
            _ => None,
        },
    );
    assert!(
        far_end.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let ended = server.ended_calls(2);
    let mut statuses: Vec<&str> = ended
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["completed", "failed"], "{ended:#?}");
}
