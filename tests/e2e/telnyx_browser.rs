//! Telnyx's browser SDK against Switchboard: `@telnyx/webrtc` (unmodified) in headless
//! Chromium and Firefox ESR, pointed at Switchboard with its `host` option, signs in with a telephony
//! credential's token minted through the REST API (the official Node SDK), places a call to a
//! number routed to a trunk and is called by an application's `dial` to the credential's SIP
//! URI. The browser is a SIP user of the core through the browser gateway; its media is a
//! WebRTC leg (ICE-lite, DTLS-SRTP) anchored against plain RTP to the trunk.

use crate::common;
use crate::sip_websocket::{assert_hears_1khz, assert_tone, talk};
use common::page::Browser;
use common::sdk_app::telnyx::{ACCOUNT, CONNECTION, KEY};
use common::sdk_app::{expect_step, spawn_script, summary_of};
use common::*;
use std::time::Duration;

/// The most 20 ms frames of 600 Hz on one channel of a stereo recording under the server's
/// recordings directory, and of 1 kHz on its other channel.
fn recorded_tones(net: &Net) -> (usize, usize) {
    use switchboard_media::tone::share_at;
    let mut best = (0, 0);
    let calls = std::fs::read_dir(net.path("data/recordings"))
        .into_iter()
        .flatten()
        .flatten();
    for file in calls.flat_map(|c| std::fs::read_dir(c.path()).into_iter().flatten().flatten()) {
        let wav = std::fs::read(file.path()).unwrap_or_default();
        if wav.len() < 44 || u16::from_le_bytes([wav[22], wav[23]]) != 2 {
            continue;
        }
        let samples: Vec<i16> = (wav[44..].chunks_exact(2))
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let channel = |c: usize| {
            samples
                .iter()
                .skip(c)
                .step_by(2)
                .copied()
                .collect::<Vec<_>>()
        };
        let frames = |pcm: &[i16], hz: f32| {
            (pcm.chunks_exact(160))
                .filter(|f| f.iter().any(|s| s.abs() > 1000) && share_at(f, hz) > 0.7)
                .count()
        };
        let (left, right) = (channel(0), channel(1));
        for (a, b) in [(&left, &right), (&right, &left)] {
            let found = (frames(a, 600.0), frames(b, 1000.0));
            if found.0.min(found.1) > best.0.min(best.1) {
                best = found;
            }
        }
    }
    best
}

/// The whole browser flow of a Telnyx app: credentials and a token through the REST API, a
/// forged token refused with the SDK's own error, the real one signed in, a call from the page
/// to a trunk (tones both ways, the page hangs up and the trunk gets the BYE, the CDR names
/// the credential as the caller and the trunk as the callee); then, its connection given a
/// webhook URL, a call from the page reaches the app as `call.initiated` and is answered,
/// played to and hung up through Call Control, the page knowing its call_control_id; then
/// `dial` to
/// `sip:gencred…@sip.telnyx.com` rings the page, it answers, hears the app's `playback_start`
/// (1 kHz), and the app's hang-up ends the page's call; dialed again, the page's socket drops
/// mid-call, the SDK logs in again and the call is reattached: still up, still heard, and its
/// hang-up reaches the page.
#[test]
fn telnyx_webrtc_sdk_in_chromium_signs_in_with_a_token_calls_a_trunk_and_is_dialed() {
    telnyx_webrtc_sdk_flow(Browser::Chromium, 164);
}

/// The same flow in Firefox ESR.
#[test]
fn telnyx_webrtc_sdk_in_firefox_signs_in_with_a_token_calls_a_trunk_and_is_dialed() {
    telnyx_webrtc_sdk_flow(Browser::Firefox, 202);
}

fn telnyx_webrtc_sdk_flow(browser: Browser, n: u8) {
    use switchboard_media::tone;
    let (Some(browser_modules), Some(telnyx_modules)) = (
        compat_env("SWITCHBOARD_JSSIP_NODE_PATH"),
        compat_env("SWITCHBOARD_TELNYX_NODE_PATH"),
    ) else {
        return;
    };
    let net = browser.net(n);
    let hooks = format!("{}:18080", net.ip(6));
    let config = net.two_trunks(&sdk_app::telnyx::config(&hooks, "", &[]));
    let server = Server::start(&net, &config);
    // The trunk's phone (carrier-b, +1555…): SIPp answers with the test's own RTP socket.
    let phone = rig::rtp_socket(&net, 6);
    let (callee, media) = phone_telling_media(&net, &phone, (&net.ip(3), 5060));
    let wav = net.path("microphone.wav");
    write_wav(&wav, &tone::sines(&[600.0], 8000.0, 30_000));
    let tone_wav = net.path("tone.wav");
    write_wav(&tone_wav, &tone::sines(&[1000.0], 8000.0, 20_000));
    let mut browser = page::script_in(
        browser,
        "telnyx_browser.js",
        &[
            &format!("http://{}", server.http),
            KEY,
            &browser.page_host(&net),
            &wav.display().to_string(),
            "+15551230000",
            &tone_wav.display().to_string(),
            CONNECTION,
        ],
        &format!("{browser_modules}:{telnyx_modules}"),
    );
    let mut next = page::events(&mut browser, &server, Duration::from_secs(70), false);
    let connection = next("connection");
    assert_eq!(connection["record_type"], "credential_connection");
    let credential = next("credential");
    let user = credential["sip_username"].as_str().unwrap().to_owned();
    assert!(user.starts_with("gencred"), "{credential}");
    let token = next("token");
    assert_eq!(token["lifetime"], 86_400, "{token}");
    assert_eq!(token["sub"], true, "{token}");
    // A forged token: the SDK reports its login failure (LOGIN_FAILED, from the server's
    // -32001 Authentication Failure).
    let refused = next("bad_token");
    assert_eq!(refused["name"], "LOGIN_FAILED", "{refused}");
    next("ready");

    // The page calls the trunk: the phone hears the page's 600 Hz, the page hears 1 kHz.
    let heard_by_phone = talk(&phone, media(), &server);
    assert_tone(
        &heard_by_phone,
        600.0,
        "the trunk's phone hears the browser",
        &server,
    );
    assert_hears_1khz(&next("heard"), &server);
    let ended = next("ended");
    assert_eq!(ended["direction"], "outbound", "{ended}");
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the trunk got the browser's BYE\n{}",
        server.log()
    );
    let calls = server.ended_calls(1);
    let own = &calls[0];
    assert_eq!(own["user_in"], user, "{own}");
    assert_eq!(
        own["account_sid"], ACCOUNT,
        "the credential's account: {own}"
    );
    assert_eq!(own["trunk_out"], "carrier-b", "{own}");
    assert_eq!(own["status"], "completed", "{own}");

    // With a webhook URL on its connection, the page's call is a Call Control call: the app
    // gets call.initiated, answers, plays 1 kHz (the page hears it) and hangs up; the page
    // was told the call's call_control_id.
    assert!(
        next("webhook_set")["url"]
            .as_str()
            .unwrap()
            .ends_with("/hooks")
    );
    let initiated = next("call_initiated");
    assert_eq!(initiated["direction"], "incoming", "{initiated}");
    assert_eq!(initiated["from"], user.as_str(), "{initiated}");
    assert_eq!(initiated["to"], "+15557770000", "{initiated}");
    assert_eq!(initiated["connection"], true, "{initiated}");
    assert_eq!(initiated["calling_party_type"], "sip", "{initiated}");
    let active = next("outbound_active");
    assert_eq!(active["second"], true, "{active}");
    let echoed = next("ids_echoed");
    assert_eq!(echoed["same"], true, "{echoed}");
    assert_hears_1khz(&next("heard_app"), &server);
    // Held, the page gets nothing (the server sends nothing to a sendonly peer): no packet
    // arrives after the first 750 ms of the hold (on a busy machine the engine may take that
    // long to apply what the answer says), and once the browser has played out what it had
    // buffered (its jitter buffer and audio graph, up to 900 ms behind on a loaded machine:
    // seen rising for 750 ms after the last packet) the page hears nothing new; resumed, the
    // tone again.
    assert_eq!(next("held")["state"], "held");
    let held = next("heard_held");
    let stopped = page::silent_from(&held);
    assert!(
        stopped.is_some_and(|look| look <= 4 && page::fading_from(&held, look + 7)),
        "the app was still sent to the page while it held: {held}\n{}",
        server.log()
    );
    assert_eq!(next("resumed")["state"], "active");
    assert_hears_1khz(&next("heard_resumed"), &server);
    // The SDK's ICE restart (telnyx_rtc.modify updateMedia): new credentials both ways, the
    // call's media goes on.
    let restarted = next("ice_restarted");
    assert_eq!(restarted["started"], true, "{restarted}");
    assert_eq!(restarted["local_changed"], true, "{restarted}");
    assert_eq!(
        restarted["remote_changed"], true,
        "our new ICE credentials: {restarted}"
    );
    assert_hears_1khz(&next("heard_restarted"), &server);
    next("hold_done");
    // The page's keypad, through Verto's info and SIP INFO, reaches the app.
    assert_eq!(next("dtmf")["digits"], "1#");
    let ended = next("ended");
    assert_eq!(ended["direction"], "outbound", "{ended}");
    let done = next("call_control_done");
    assert_eq!(done["answered"], true, "{done}");
    assert_eq!(done["hangup_cause"], "normal_clearing", "{done}");
    assert_eq!(done["recording_channels"], "dual", "{done}");
    // The recording holds both parties, one a channel: the page's 600 Hz and the app's 1 kHz,
    // each for 5 s at least of the call's 15.
    let (browser_side, app_side) = recorded_tones(&net);
    assert!(
        browser_side >= 250 && app_side >= 250,
        "frames of the page's 600 Hz on one channel: {browser_side}, of the app's 1 kHz on the other: {app_side}"
    );

    // The app dials the credential's SIP URI: the page rings, answers and hears the app's
    // playback; the app hangs up. (The script's own lines, `dialed` and `hung_up`, race the
    // page's `incoming` and `ended`: only the page's are waited for, in their order.)
    let incoming = next("incoming");
    assert_eq!(incoming["from"], "+15550001", "{incoming}");
    next("incoming_answered");
    assert_hears_1khz(&next("heard_incoming"), &server);
    let ended = next("ended");
    assert_eq!(ended["direction"], "inbound", "{ended}");
    assert_eq!(ended["sipCode"], 200, "{ended}");
    // Dialed again: the page's socket drops mid-call; the SDK logs in again with its session,
    // which takes the call back (the same call, up all along); the server offers it anew
    // (`telnyx_rtc.attach`), the SDK answers on a new peer connection and still hears the
    // app's tone; the app's hang-up reaches the page on its new socket.
    next("socket_dropped");
    let reattached = next("reattached");
    assert_eq!(
        (
            &reattached["same"],
            &reattached["state"],
            &reattached["alive"]
        ),
        (&true.into(), &"active".into(), &true.into()),
        "{reattached}\n{}",
        server.log()
    );
    assert_hears_1khz(&next("heard_reattached"), &server);
    // The page reloads mid-call: the new page's SDK signs in with the session it kept, the
    // call is attached to it and it hears the app's tone on its own new peer connection.
    let reloaded = next("reloaded");
    assert_eq!(
        (&reloaded["same"], &reloaded["state"], &reloaded["alive"]),
        (&true.into(), &"active".into(), &true.into()),
        "{reloaded}\n{}",
        server.log()
    );
    assert_hears_1khz(&next("heard_reloaded"), &server);
    next("reattached_ended");
    // The credential deleted mid-call: the page is punted (its SDK purges the call) and the
    // call ends (the script checks both).
    next("punted");
    server.wait_for_log("browser's login revoked: punted");
    // The three dials to the browser are closed in the store (a record is written a moment
    // after the call ends: waited for, not assumed).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut dials = loop {
        let dials: Vec<serde_json::Value> = (server.calls().into_iter())
            .filter(|c| c["user_out"] == user.as_str())
            .collect();
        if dials.len() == 3 && dials.iter().all(|c| !c["ended_at"].is_null()) {
            break dials;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the three dials to the browser are not all closed: {dials:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    dials.sort_by_key(|c| c["started_at"].as_str().unwrap_or_default().to_owned());
    for dialed in &dials[..2] {
        assert_eq!(dialed["status"], "completed", "{dialed}");
    }
    let status = browser.wait().unwrap();
    assert!(
        status.success(),
        "the browser script ended badly: {status:?}"
    );
}

/// Credential connections and telephony credentials through the official Python SDK
/// (tests/compat/telnyx_credentials.py): made, listed, filtered, read, changed, tokens minted
/// (none for an expired credential), another account sees none of them, and Telnyx's errors;
/// a SIP phone registers with a telephony credential, and cannot once it is deleted.
#[test]
fn the_official_telnyx_sdk_manages_credentials_and_a_phone_registers_with_one() {
    use common::sdk_app::telnyx::{SEED, TOKEN};
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const OTHER: &str = "AC11111111111111111111111111111111";
    const OTHER_KEY: &str = "KEY1111111111111111_other";
    let net = Net::new(165);
    let config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n\
         telnyx_api_keys = [\"{KEY}\"]\ntelnyx_private_key = \"{SEED}\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\n\
         telnyx_api_keys = [\"{OTHER_KEY}\"]\n\
         [[connections]]\nid = \"{CONNECTION}\"\naccount_sid = \"{ACCOUNT}\"\n\
         webhook_event_url = \"http://127.0.0.1:9/hooks\"\n"
    );
    let server = Server::start(&net, &net.two_trunks(&config));
    let (mut app, mut lines) = spawn_script(
        &python,
        "telnyx_credentials.py",
        &server,
        &[KEY, OTHER_KEY, CONNECTION],
    );
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    let mut words = line.split(' ');
    let (Some("CREDENTIAL"), Some(user), Some(password)) =
        (words.next(), words.next(), words.next())
    else {
        panic!("no credential: {line}\n{}", server.log());
    };
    let register = |user: &str, password: &str| {
        let scenario = scenario(
            &net,
            "phone_register.xml",
            &[
                ("USER", user),
                ("PASSWORD", password),
                ("CONTACT_PORT", "5062"),
            ],
        );
        run_sipp(
            &net,
            &scenario,
            &net.ip(4),
            5061,
            server.sip,
            &["-m", "1", "-recv_timeout", "3000"],
            Duration::from_secs(10),
        )
        .status
        .success()
    };
    assert!(
        register(user, password),
        "the phone registers\n{}",
        server.log()
    );
    assert!(!register(user, "wrong"), "a wrong password is refused");
    use std::io::Write;
    writeln!(app.stdin.as_mut().unwrap(), "REGISTERED").unwrap();
    expect_step(&mut app, &mut lines, "DELETED", &server);
    assert!(
        !register(user, password),
        "a deleted credential registers no more\n{}",
        server.log()
    );
    writeln!(app.stdin.as_mut().unwrap(), "DONE").unwrap();
    let s = summary_of(app, lines, &server);
    let c = &s["connection"];
    assert_eq!(c["record_type"], "credential_connection", "{c}");
    assert_eq!(c["user_name"], "deskphones1", "{c}");
    assert_eq!(c["connection_name"], "desk phones", "{c}");
    assert!(
        c["id"]
            .as_str()
            .is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit()))
    );
    let e = &s["errors"];
    for (name, status, code) in [
        ("taken", 422, "10032"),
        ("malformed", 422, "10032"),
        ("short_password", 422, "10033"),
        ("no_password", 422, "10004"),
        ("other_account_connection", 404, "10005"),
        ("not_a_credential_connection", 404, "10005"),
        ("credential_on_an_application", 422, "10032"),
        ("expired_token", 422, "90000"),
        ("other_account_credential", 404, "10005"),
        ("other_account_token", 404, "10005"),
        ("deleted", 404, "10005"),
    ] {
        assert_eq!(e[name]["status"], status, "{name}: {e}");
        assert_eq!(e[name]["code"], code, "{name}: {e}");
    }
    assert_eq!(
        s["listed"],
        serde_json::json!(["desk phones", "front desk"])
    );
    assert_eq!(s["filtered"], serde_json::json!(["desk phones"]));
    assert_eq!(s["retrieved"]["user_name"], "deskphones1");
    assert_eq!(s["updated"]["connection_name"], "desk phones v2");
    assert_eq!(
        s["updated"]["webhook_event_url"],
        "http://127.0.0.1:9/hooks"
    );
    let cred = &s["credential"];
    assert_eq!(cred["record_type"], "credential", "{cred}");
    assert_eq!(cred["name"], "alice");
    assert_eq!(cred["tag"], "team-a");
    assert_eq!(cred["expired"], false);
    assert_eq!(
        cred["resource_id"],
        format!("connection:{}", c["id"].as_str().unwrap())
    );
    assert!(
        cred["sip_username"]
            .as_str()
            .unwrap()
            .starts_with("gencred")
    );
    assert_eq!(s["by_tag"], serde_json::json!(["alice"]));
    assert_eq!(s["all"], serde_json::json!(["alice", "bob"]));
    assert_eq!(
        s["credential_retrieved"]["sip_username"],
        cred["sip_username"]
    );
    assert_eq!(s["token_parts"], 3);
    assert_eq!(s["expired"]["expired"], true);
}

/// A browser that vanishes mid-call (its process killed: no bye, its socket and media gone):
/// its calls wait for it to log in again, but its media's consent lapses (RFC 7675, 30 s
/// without a check): the server ends the call, hangs up the trunk and closes the record with
/// the cause.
#[test]
fn a_browser_whose_media_vanishes_is_hung_up_when_its_consent_lapses() {
    use switchboard_media::tone;
    let (Some(browser_modules), Some(telnyx_modules)) = (
        compat_env("SWITCHBOARD_JSSIP_NODE_PATH"),
        compat_env("SWITCHBOARD_TELNYX_NODE_PATH"),
    ) else {
        return;
    };
    let net = Net::new(168);
    let hooks = format!("{}:18080", net.ip(6));
    let server = Server::start(
        &net,
        &net.two_trunks(&sdk_app::telnyx::config(&hooks, "", &[])),
    );
    let phone = rig::rtp_socket(&net, 6);
    let (callee, media) = phone_telling_media(&net, &phone, (&net.ip(3), 5060));
    let wav = net.path("microphone.wav");
    write_wav(&wav, &tone::sines(&[600.0], 8000.0, 30_000));
    let mut browser = page::script(
        "telnyx_browser.js",
        &[
            &format!("http://{}", server.http),
            KEY,
            &net.ip(9),
            &wav.display().to_string(),
            "+15551230000",
            &wav.display().to_string(),
            CONNECTION,
            "vanish",
        ],
        &format!("{browser_modules}:{telnyx_modules}"),
    );
    let mut next = page::events(&mut browser, &server, Duration::from_secs(80), false);
    next("ready");
    let heard_by_phone = talk(&phone, media(), &server);
    assert_tone(
        &heard_by_phone,
        600.0,
        "the trunk's phone hears the browser",
        &server,
    );
    next("killed");
    let killed = std::time::Instant::now();
    assert!(
        callee.finished_ok(Duration::from_secs(50)),
        "the trunk got the BYE\n{}",
        server.log()
    );
    let ms = killed.elapsed().as_millis();
    assert!(
        (25_000..45_000).contains(&ms),
        "the trunk's BYE came {ms} ms after the browser was killed"
    );
    let calls = server.ended_calls(1);
    assert_eq!(calls[0]["hangup_cause"], "consent-expired", "{}", calls[0]);
    assert!(browser.wait().unwrap().success());
}
