//! The web console in Debian's headless Chromium (puppeteer-core), as an operator uses it: the
//! server's address leads to it, wrong credentials are refused, an account signs in, a call
//! the REST API places appears live with its length ticking and ends, its page shows its
//! events and plays its recording — whose audio, decoded by the browser, is the callee's
//! tone — and the numbers page lists the account's number. Screenshots of every view are
//! kept in `target/screenshots/console/`.

use crate::common;
use common::voice_app::{ACCOUNT, TOKEN, numbers_config, place_call};
use common::*;
use std::time::Duration;

const ADMIN_TOKEN: &str = "console-operator-token";

/// An `Authorization: Basic` header line.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {encoded}\r\n")
}
use switchboard_media::tone;

#[test]
fn an_operator_signs_in_follows_a_live_call_and_plays_its_recording() {
    let Some(modules) = compat_env("SWITCHBOARD_JSSIP_NODE_PATH") else {
        return;
    };
    let net = Net::new(37);
    let config = net.two_trunks(&numbers_config(
        "http://127.0.0.1:9",
        &[("+15557770001", "voice_url = \"{base}/voice\"")],
    ));
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
            // Calls' SIP messages are kept (off by default).
            ("SWITCHBOARD_SIP__TRACE_RETENTION_SECS", "3600"),
        ],
    );
    let phone = rig::rtp_socket(&net, 6);
    let (callee, callee_side) = callee_telling_media(&net, &phone);
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/console");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let mut browser = page::script(
        "console_browser.js",
        &[
            &format!("http://{}", server.http),
            ACCOUNT,
            TOKEN,
            &shots.display().to_string(),
            ADMIN_TOKEN,
        ],
        &modules,
    );
    let mut next = page::events(&mut browser, &server, Duration::from_secs(90), true);
    let opened = next("opened");
    assert!(
        opened["url"].as_str().unwrap().ends_with("/console/"),
        "{opened}"
    );
    let refused = next("refused");
    assert_eq!(refused["text"], "Those credentials were refused.");
    assert_eq!(next("signed_in")["who"], ACCOUNT);

    // A call placed now, recorded; the callee gives a tone for the length of it. Eight seconds:
    // the page must see its length tick past two while it is live, and on a loaded machine a
    // four-second call left too short a window (the row showed in progress, then ended before
    // the page's ticker showed 0:02).
    let twiml = "<Response><Pause length=\"8\"/><Hangup/></Response>";
    let sid = place_call(&server, twiml, "&Record=true");
    let to = callee_side();
    let talking =
        std::thread::spawn(move || send_audio(&phone, to, &tone::sines(&[700.0], 6000.0, 8000), 1));

    let shown = next("live");
    assert_eq!(shown["call"], sid.as_str(), "{shown}");
    let ended = next("ended");
    assert_eq!(ended["call"], sid.as_str());
    let length = ended["length"].as_str().unwrap();
    assert!(matches!(length, "0:07" | "0:08" | "0:09"), "{ended}");
    talking.join().unwrap();
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );

    let page = next("call_page");
    let events: Vec<&str> = (page["events"].as_array().unwrap().iter())
        .map(|e| e.as_str().unwrap())
        .collect();
    // A recording's event names it, not where its file lies on the server's disk.
    let details: Vec<&str> = (page["details"].as_array().unwrap().iter())
        .map(|d| d.as_str().unwrap())
        .collect();
    let details = details.join("\n");
    assert!(details.contains("\"recording\":\"RE"), "{details}");
    assert!(!details.contains("/recordings/"), "{details}");
    for kind in [
        "initiated",
        "ringing",
        "answered",
        "recording-started",
        "hangup",
    ] {
        assert!(events.contains(&kind), "{kind} in {events:?}");
    }
    assert_eq!(page["recordingStatus"], "completed", "{page}");
    assert_eq!(page["facts"]["call"], sid.as_str());
    assert_eq!(page["facts"]["status"], "completed", "{page}");
    assert_eq!(page["facts"]["to"], "+15551234");

    // Its SIP ladder: Switchboard's INVITE to the trunk, the answer, ACK, BYE and its 200.
    let ladder = next("ladder");
    let said: Vec<String> = (ladder["ladder"].as_array().unwrap().iter())
        .map(|m| {
            format!(
                "{} {}",
                m["direction"].as_str().unwrap(),
                m["label"].as_str().unwrap()
            )
        })
        .collect();
    let mut expected = ["out INVITE", "in 200 OK", "out ACK", "out BYE", "in 200 OK"].into_iter();
    let mut want = expected.next();
    for m in &said {
        if Some(m.as_str()) == want {
            want = expected.next();
        }
    }
    assert_eq!(want, None, "in order: {said:?}");
    let first = ladder["first"].as_str().unwrap();
    assert!(first.contains("\n\nINVITE sip:+15551234@"), "{first}");
    assert!(
        first.contains(&format!("to {}:5060 over UDP", net.ip(3))),
        "{first}"
    );

    // The same messages as a pcap: Wireshark's reader decodes them as SIP.
    let pcap = net.path("call.pcap");
    let (status, bytes) = server.request(
        "GET",
        &format!("/v1/calls/{sid}/sip.pcap"),
        &basic(ACCOUNT, TOKEN),
        b"",
    );
    assert_eq!(status, 200);
    std::fs::write(&pcap, bytes).unwrap();
    let read = std::process::Command::new("tshark")
        .args(["-r", &pcap.display().to_string(), "-T", "fields"])
        .args([
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "sip.Method",
            "-e",
            "sip.Status-Code",
        ])
        .output()
        .expect("tshark (scripts/test.sh installs it)");
    assert!(read.status.success(), "{read:?}");
    let decoded = String::from_utf8(read.stdout).unwrap();
    let rows: Vec<Vec<&str>> = decoded.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), said.len(), "{decoded}");
    let (sb, trunk) = (net.ip(1), net.ip(3));
    let invite = rows.iter().find(|r| r[2] == "INVITE").expect(&decoded);
    assert_eq!(
        (invite[0], invite[1]),
        (sb.as_str(), trunk.as_str()),
        "{decoded}"
    );
    let answers = rows.iter().filter(|r| r[3] == "200").count();
    assert_eq!(answers, 2, "the INVITE's and the BYE's: {decoded}");
    assert!(rows.iter().any(|r| r[2] == "BYE"), "{decoded}");

    // What the page played is the call: the callee's tone.
    let played = next("played");
    assert_eq!(played["rate"], 8000);
    let duration = played["duration"].as_f64().unwrap();
    assert!((7.0..9.5).contains(&duration), "{duration} s");
    let samples: Vec<i16> = (played["samples"].as_array().unwrap().iter())
        .map(|s| s.as_i64().unwrap() as i16)
        .collect();
    let loud: Vec<i16> = (samples.chunks(160))
        .filter(|f| f.iter().any(|s| s.abs() > 1000))
        .flatten()
        .copied()
        .collect();
    assert!(loud.len() > 2 * 8000, "{} loud samples", loud.len());
    assert!(tone::share_at(&loud, 700.0) > 0.8);

    assert_eq!(
        next("numbers")["numbers"],
        serde_json::json!(["+15557770001"])
    );

    // The operator sees every call, and follows one routed between two trunks.
    let operator = next("operator");
    assert_eq!(operator["who"], "operator");
    assert_eq!(operator["numbersShown"], false, "numbers are an account's");
    assert!(operator["calls"].as_u64().unwrap() >= 1, "{operator}");
    let callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let caller = scenario(&net, "uac_talk.xml", &[("TALK_MS", "2000")]);
    let args = ["-m", "1", "-s", "+15551234"];
    let run = run_sipp(
        &net,
        &caller,
        &net.ip(2),
        5060,
        server.sip,
        &args,
        Duration::from_secs(15),
    );
    assert!(run.status.success(), "caller: {run:?}\n{}", server.log());
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let routed = next("routed");
    assert_eq!(routed["trunks"], "carrier-a → carrier-b", "{routed}");
    let parties: Vec<&str> = (routed["parties"].as_array().unwrap().iter())
        .map(|p| p.as_str().unwrap())
        .collect();
    let (a, b) = (format!("{}:5060", net.ip(2)), format!("{}:5060", net.ip(3)));
    assert_eq!(parties, ["Switchboard", a.as_str(), b.as_str()], "{routed}");
    let ladder: Vec<&str> = (routed["ladder"].as_array().unwrap().iter())
        .map(|m| m.as_str().unwrap())
        .collect();
    for m in [
        "in INVITE",
        "out INVITE",
        "in 200 OK",
        "out 200 OK",
        "in ACK",
        "out ACK",
        "in BYE",
        "out BYE",
    ] {
        assert!(ladder.contains(&m), "{m} in {ladder:?}");
    }
    let status = browser.wait().unwrap();
    assert!(status.success(), "{status:?}");
    for shot in [
        "01-sign-in",
        "02-calls",
        "03-live-call",
        "04-call",
        "05-numbers",
    ] {
        let png = std::fs::read(shots.join(format!("{shot}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "{shot}");
    }
}

/// The console's softphone (`#/phone`, tests/compat/console_phone.js): signed in with a
/// credential connection's SIP login made through the Telnyx REST API, it is a browser leg
/// like the SDKs' pages. It calls a number routed to a trunk: the trunk's phone hears the
/// page's microphone (600 Hz) and the page hears the phone (1 kHz); the page hangs up and the
/// trunk gets the BYE. Then the account's Call Control application dials the login: the page
/// rings, answers, and hears the application's playback (1 kHz). Both calls are stored as the
/// login's.
#[test]
fn the_consoles_softphone_calls_a_trunk_and_answers_an_applications_call() {
    use crate::sip_websocket::{assert_hears_1khz, assert_tone, talk};
    use common::sdk_app::telnyx::{CONNECTION, KEY, TOKEN as AUTH_TOKEN};
    let Some(modules) = compat_env("SWITCHBOARD_JSSIP_NODE_PATH") else {
        return;
    };
    let net = Net::new(169);
    let user = "consolephone1";
    let config = net.two_trunks(&common::sdk_app::telnyx::config("127.0.0.1:9", "", &[]));
    let server = Server::start(&net, &config);
    // The trunk's phone (carrier-b, +1555…): SIPp answers with the test's own RTP socket.
    let phone = rig::rtp_socket(&net, 6);
    let (callee, media) = phone_telling_media(&net, &phone, (&net.ip(3), 5060));
    let wav = net.path("microphone.wav");
    write_wav(&wav, &tone::sines(&[600.0], 8000.0, 30_000));
    let tone_wav = net.path("tone.wav");
    write_wav(&tone_wav, &tone::sines(&[1000.0], 8000.0, 20_000));
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/console");
    std::fs::create_dir_all(&shots).unwrap();
    let mut browser = page::script(
        "console_phone.js",
        &[
            &format!("http://{}", server.http),
            ACCOUNT,
            AUTH_TOKEN,
            KEY,
            user,
            "console-phone-secret-1",
            &wav.display().to_string(),
            "+15551230000",
            CONNECTION,
            &tone_wav.display().to_string(),
            &shots.display().to_string(),
        ],
        &modules,
    );
    let mut next = page::events(&mut browser, &server, Duration::from_secs(60), false);
    assert_eq!(next("connection")["status"], 201);
    assert_eq!(next("ready")["user"], user);

    // The page calls the trunk: tones both ways.
    let calling = next("calling");
    assert_eq!(calling["direction"], "outbound", "{calling}");
    let heard_by_phone = talk(&phone, media(), &server);
    assert_tone(
        &heard_by_phone,
        600.0,
        "the trunk's phone hears the page",
        &server,
    );
    assert_hears_1khz(&next("heard"), &server);
    next("call_ended");
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the trunk got the page's BYE\n{}",
        server.log()
    );

    // The application's call rings the page, which answers and hears its playback.
    let incoming = next("incoming");
    assert!(
        incoming["text"].as_str().unwrap().contains("+15550001"),
        "{incoming}"
    );
    assert_hears_1khz(&next("heard_incoming"), &server);
    next("incoming_ended");
    let calls = server.ended_calls(2);
    let placed = calls
        .iter()
        .find(|c| c["user_in"] == user)
        .unwrap_or_else(|| panic!("the page's call: {calls:?}"));
    assert_eq!(placed["trunk_out"], "carrier-b", "{placed}");
    assert_eq!(placed["status"], "completed", "{placed}");
    let dialed = calls
        .iter()
        .find(|c| c["user_out"] == user)
        .unwrap_or_else(|| panic!("the application's call to the page: {calls:?}"));
    assert_eq!(dialed["status"], "completed", "{dialed}");
    let status = browser.wait().unwrap();
    assert!(
        status.success(),
        "the page's script ended badly: {status:?}"
    );
}

/// The operator's pages (tests/compat/console_admin.js): the trunks page lists the file's
/// trunks, shows the admin API's refusal of a trunk whose address does not resolve (naming the
/// key), and adds one that the server then has; a route to it and an account are added on
/// their pages (the account's token shown hidden); the audit page lists the three changes;
/// the route and the trunk are removed from their pages, and the server no longer has them.
/// The account added signs in at once, and its console has none of the operator's links.
#[test]
fn the_operator_manages_trunks_routes_and_accounts_from_the_console() {
    let Some(modules) = compat_env("SWITCHBOARD_JSSIP_NODE_PATH") else {
        return;
    };
    const ADDED: &str = "AC0000000000000000000000000000c0c0";
    let net = Net::new(249);
    let config = net.two_trunks(&numbers_config("http://127.0.0.1:9", &[]));
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_HTTP__ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/console");
    std::fs::create_dir_all(&shots).unwrap();
    let trunk = format!("{}:5060", net.ip(7));
    let mut browser = page::script(
        "console_admin.js",
        &[
            &format!("http://{}", server.http),
            ADMIN_TOKEN,
            &shots.display().to_string(),
            &trunk,
            ADDED,
            "added-secret",
        ],
        &modules,
    );
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let get = |path: &str| -> serde_json::Value {
        let (status, body) = server.request("GET", path, &admin, b"");
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    };
    let mut next = page::events(&mut browser, &server, Duration::from_secs(90), true);
    let links = next("operator");
    assert_eq!(
        links["links"],
        serde_json::json!(["Trunks", "Routes", "Accounts", "Audit"])
    );
    assert_eq!(next("trunks")["file"], "carrier-a, carrier-b");
    let refused = next("refused")["text"].as_str().unwrap().to_owned();
    assert!(refused.contains("address"), "names the key: {refused}");
    assert_eq!(
        next("trunk_added")["rows"],
        serde_json::json!(["carrier-c"])
    );
    assert_eq!(get("/admin/v1/trunks")["api"][0]["address"], trunk.as_str());
    let route = next("route_added");
    assert!(
        route["detail"].as_str().unwrap().contains("carrier-c"),
        "{route}"
    );
    let routes = get("/admin/v1/routes");
    assert_eq!(routes["api"][0]["id"], route["id"], "{routes}");
    let account = next("account_added");
    assert!(
        account["detail"]
            .as_str()
            .unwrap()
            .contains("\"auth_token\":\"***\""),
        "{account}"
    );
    // In force at once: the account authenticates the REST API.
    let path = format!("/2010-04-01/Accounts/{ADDED}/Calls.json");
    assert_eq!(
        server
            .http("GET", &path, Some((ADDED, "added-secret")), "")
            .0,
        200
    );
    let audit = next("audit");
    assert_eq!(
        audit["actions"],
        serde_json::json!(["put", "add", "put"]),
        "{audit}"
    );
    let subjects = audit["subjects"].as_array().unwrap();
    assert_eq!(subjects[0], format!("account {ADDED}").as_str());
    assert_eq!(subjects[2], "trunk carrier-c");
    next("removed");
    assert_eq!(get("/admin/v1/trunks")["api"], serde_json::json!([]));
    assert_eq!(get("/admin/v1/routes")["api"], serde_json::json!([]));
    assert_eq!(next("account")["links"], serde_json::json!([]));
    let status = browser.wait().unwrap();
    assert!(status.success(), "{status:?}");
    for shot in ["07-trunks", "08-routes", "09-accounts", "10-audit"] {
        let png = std::fs::read(shots.join(format!("{shot}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "{shot}");
    }
}
