//! Several nodes on one PostgreSQL as one provider: an application behind a load balancer
//! reaches a call through whichever node it lands on. Node A carries a call the REST API
//! placed through it; through node B the same call is read (the owner's answer, forwarded)
//! and hung up (the callee gets the BYE from A). A guesser going through B is slowed at A as
//! itself, not as B. When A dies with a call up, B says at once that the call is not in
//! progress instead of a 200 that hangs up nothing, and once A is taken for dead (three seconds
//! here) B closes the call and completes the recording A was writing to the nodes' shared
//! storage, with their callbacks made once, and serves the recording.

use crate::common;
use common::voice_app::{ACCOUNT, App, TOKEN, answers, call_until_bye, place_call, records};
use common::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn any_node_answers_for_a_call_another_node_carries() {
    let Some(database) = cluster_database("cluster_any_node") else {
        return;
    };
    let (net_a, net_b) = (Net::new(38), Net::new(39));
    // The nodes' recordings are on storage both reach, at the same path.
    let shared = net_a.dir.path().join("shared-recordings");
    let shared_dir = shared.to_str().unwrap().to_owned();
    let accounts = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n"
    );
    let node = |net: &Net, id: &str| {
        Server::start_with(
            net,
            &net.two_trunks(&accounts),
            &[
                ("SWITCHBOARD_STORAGE__DATABASE_URL", &database),
                ("SWITCHBOARD_STORAGE__NODE_ID", id),
                // The nodes' shared secret: it also signs the clients they forward.
                ("SWITCHBOARD_SIP__DIGEST_SECRET", "cluster-secret-1"),
                ("SWITCHBOARD_STORAGE__RECORDINGS_DIR", &shared_dir),
                ("SWITCHBOARD_CLUSTER__DEAD_AFTER_SECS", "3"),
            ],
        )
    };
    let (a, b) = (node(&net_a, "node-a"), node(&net_b, "node-b"));
    let calls = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls");
    let place = |callee_net: &Net| {
        let callee = SippServer::start(
            callee_net,
            &scenario(callee_net, "uas_answer.xml", &[]),
            &callee_net.ip(3),
            5060,
            &["-m", "1"],
        );
        let sid = place_call(&a, "<Response><Pause length=\"30\"/></Response>", "");
        (sid, callee)
    };
    // Read through B: A's answer, once A has the call up.
    let status_via_b = |sid: &str| -> (u16, Value) {
        let (status, body) = b.http(
            "GET",
            &format!("{calls}/{sid}.json"),
            Some((ACCOUNT, TOKEN)),
            "",
        );
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    };
    let (sid, callee) = place(&net_a);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, call) = status_via_b(&sid);
        assert_eq!(status, 200, "{call}");
        if call["status"] == "in-progress" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{call}\n{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Hung up through B: A sends the BYE.
    let (status, body) = b.http(
        "POST",
        &format!("{calls}/{sid}.json"),
        Some((ACCOUNT, TOKEN)),
        "Status=completed",
    );
    assert_eq!(status, 200, "{body}\n{}", b.log());
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the callee never got A's BYE\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    let ended = a.ended_calls(1).remove(0);
    assert_eq!(ended["id"], sid.as_str());
    assert_eq!(ended["status"], "completed", "{ended}");

    // A dies with a call up, recording, its status and recording callbacks asked for at an
    // application beside B: B does not pretend to hang it up, and once A is taken for dead
    // B closes the call and completes its recording, each callback made once.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::serve(
        &net_b.ip(8),
        axum::Router::new()
            .route("/status", records())
            .route("/recording", records()),
    ));
    let phone = rig::rtp_socket(&net_a, 6);
    let (_callee, switchboard_media) = callee_telling_media(&net_a, &phone);
    let hooks = format!(
        "&Record=true&StatusCallback={0}/status&RecordingStatusCallback={0}/recording",
        app.base
    );
    let sid = place_call(&a, "<Response><Pause length=\"30\"/></Response>", &hooks);
    let talking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let talker = {
        let (phone, talking, to) = (
            phone.try_clone().unwrap(),
            talking.clone(),
            switchboard_media(),
        );
        std::thread::spawn(move || {
            let tone = switchboard_media::tone::sines(&[700.0], 8000.0, 1000);
            let mut seq = 0u16;
            while talking.load(std::sync::atomic::Ordering::Relaxed) {
                send_audio(&phone, to, &tone, seq);
                seq = seq.wrapping_add(50);
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status_via_b(&sid).1["status"] != "in-progress" {
        assert!(std::time::Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // A guesser going through B is counted against its own address at A, not against B's
    // (B signs who the client is): after its burst it is slowed at A too, and other clients
    // coming through B are still served.
    let guesser: std::net::IpAddr = net_b.ip(9).parse().unwrap();
    let path = format!("{calls}/{sid}.json");
    let mut guessed = Vec::new();
    while guessed.last() != Some(&429) && guessed.len() < 20 {
        guessed.push(b.http_from(guesser, "GET", &path, (ACCOUNT, "not-the-token"), ""));
    }
    let refused = guessed.iter().filter(|&&s| s == 401).count();
    assert!(refused >= 10 && guessed.last() == Some(&429), "{guessed:?}");
    let direct = a.http_from(guesser, "GET", &path, (ACCOUNT, TOKEN), "");
    assert_eq!(
        direct, 429,
        "A counted the guesser's failures against the guesser"
    );
    let (status, call) = status_via_b(&sid);
    assert_eq!(status, 200, "B's other clients are not slowed at A: {call}");
    // Two seconds of the callee's words are on the shared storage before A dies.
    let recorded = || -> u64 {
        let call_dir = shared.join(&sid);
        (std::fs::read_dir(call_dir).into_iter().flatten().flatten())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while recorded() < 44 + 2 * 16_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} bytes recorded
{}",
            recorded(),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed = std::time::Instant::now();
    a.kill();
    talking.store(false, std::sync::atomic::Ordering::Relaxed);
    talker.join().unwrap();
    let (status, body) = b.http(
        "POST",
        &format!("{calls}/{sid}.json"),
        Some((ACCOUNT, TOKEN)),
        "Status=completed",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["code"], 21220, "{body}");
    let ended = app.hits_to("/status", 1, Duration::from_secs(15));
    let closed_after = killed.elapsed();
    let saved = app.hits_to("/recording", 1, Duration::from_secs(10));
    eprintln!("A's call closed by B {closed_after:?} after A was killed (dead after 3 s)");
    assert!(closed_after < Duration::from_secs(8), "{closed_after:?}");
    assert_eq!(ended[0].param("CallSid"), Some(sid.as_str()));
    assert_eq!(
        ended[0].param("CallStatus"),
        Some("failed"),
        "{:?}",
        ended[0]
    );
    assert!(ended[0].signed_with(TOKEN));
    let recording = saved[0].param("RecordingSid").unwrap().to_owned();
    assert_eq!(
        saved[0].param("RecordingStatus"),
        Some("completed"),
        "{:?}",
        saved[0]
    );
    let seconds: u64 = saved[0]
        .param("RecordingDuration")
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds >= 2, "{:?}", saved[0]);
    // B serves the file A wrote, repaired: a WAV of what the callee said.
    let (status, wav) = b.http_bytes(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings/{recording}.wav"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 200);
    assert!(
        // At least the two seconds on storage when A died.
        wav.starts_with(b"RIFF") && wav.len() >= 44 + 2 * 16_000,
        "{} bytes",
        wav.len()
    );
    // Once each: a few more of B's beats make no second callback.
    let beats = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < beats {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(app.hits_to("/status", 1, Duration::ZERO).len(), 1);
    assert_eq!(app.hits_to("/recording", 1, Duration::ZERO).len(), 1);
    let stored = b
        .ended_calls(1)
        .into_iter()
        .find(|c| c["id"] == sid.as_str());
    assert_eq!(stored.map(|c| c["status"].clone()), Some("failed".into()));
}

/// The shipped topology (`config/cluster/kamailio.cfg`, unchanged, with a dispatcher list of
/// the two nodes): a carrier's calls through Kamailio are spread over both nodes and complete,
/// in-dialog requests coming back through the proxy; once node A is killed, every new call
/// still completes, on B, the ones sent to A before Kamailio marks it down passed over to B.
#[test]
fn a_dispatcher_spreads_calls_over_the_nodes_and_passes_a_dead_one_over() {
    let Some(database) = cluster_database("cluster_dispatcher") else {
        return;
    };
    let (edge, net_a, net_b) = (Net::new(171), Net::new(172), Net::new(173));
    let (proxy, callee_ip) = (edge.ip(5), edge.ip(3));
    // The carrier's calls come from the dispatcher; the nodes call carrier-b themselves.
    let trunks = format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{proxy}:5060\"\ninbound_sources = [\"{proxy}/32\"]\n\
         [[trunks]]\nname = \"carrier-b\"\naddress = \"{callee_ip}:5060\"\ninbound_sources = [\"{callee_ip}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\ntrunk = \"carrier-b\"\n"
    );
    let node = |net: &Net, id: &str| {
        Server::start_with(
            net,
            &trunks,
            &[
                ("SWITCHBOARD_STORAGE__DATABASE_URL", &database),
                ("SWITCHBOARD_STORAGE__NODE_ID", id),
                ("SWITCHBOARD_SIP__DIGEST_SECRET", "cluster-secret-2"),
            ],
        )
    };
    let (a, b) = (node(&net_a, "edge-a"), node(&net_b, "edge-b"));
    let list = edge.path("dispatcher.list");
    std::fs::write(&list, format!("1 sip:{}\n1 sip:{}\n", a.sip, b.sip)).unwrap();
    let kamailio = kamailio::Kamailio::start(
        &edge,
        "../../config/cluster/kamailio.cfg",
        5,
        &[
            ("DISPATCHER_LIST", &format!("\"{}\"", list.display())),
            ("FR_TIMER", "1000"),
            ("PING_INTERVAL", "1"),
        ],
    );
    let _callee = SippServer::start(
        &edge,
        &scenario(&edge, "uas_answer.xml", &[]),
        &callee_ip,
        5060,
        &[],
    );
    let target: std::net::SocketAddr = format!("{proxy}:5060").parse().unwrap();
    let calls = |n: u64| {
        let run = run_sipp(
            &edge,
            &scenario(&edge, "uac_short.xml", &[]),
            &edge.ip(2),
            5060,
            target,
            &["-m", &n.to_string(), "-r", "5", "-s", "+15551234"],
            Duration::from_secs(40),
        );
        assert_eq!(
            (run.successful, run.failed),
            (n, 0),
            "{}\nkamailio:\n{}",
            run.errors,
            kamailio.log()
        );
    };
    let completed = |node: &Server| {
        node.metric("switchboard_calls_total{status=\"completed\"}")
            .unwrap_or(0.0)
    };
    calls(10);
    let (on_a, on_b) = (completed(&a), completed(&b));
    assert_eq!(on_a + on_b, 10.0, "A {on_a}, B {on_b}");
    assert!(on_a >= 3.0 && on_b >= 3.0, "spread: A {on_a}, B {on_b}");

    a.kill();
    let killed = std::time::Instant::now();
    calls(10);
    eprintln!(
        "10 calls after A's death completed within {:?} of the kill; Kamailio failed over {} of them",
        killed.elapsed(),
        kamailio.log().matches("failing over").count()
    );
    assert_eq!(
        completed(&b),
        on_b + 10.0,
        "every call after A's death is B's"
    );
}

/// A change made through one node applies on the other at once: a number claimed through A
/// (its voice URL the application's `/one`) is known to B, whose next call to it fetches
/// `/one`; its voice URL changed through A to `/two`, B's next call fetches `/two`; a Telnyx
/// application created through A is found through B; the number released through A is no
/// longer B's to answer; an account's call limits set through A's admin API are B's limits; a
/// SIP domain's credential made through A registers with B; a Telnyx IP connection made
/// through A admits its PBX's call out through B.
/// B reads what it holds in memory (not the database) for each, so each step waits for A's
/// notification to reach B — the time it took is printed.
#[test]
fn a_change_made_through_one_node_applies_on_the_other() {
    let Some(database) = cluster_database("cluster_changes") else {
        return;
    };
    const KEY: &str = "KEY0123456789ABCDEF_cluster";
    let (net_a, net_b) = (Net::new(174), Net::new(175));
    let accounts = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         number_ranges = [\"+1666*\"]\ntelnyx_api_keys = [\"{KEY}\"]\n"
    );
    let node = |net: &Net, id: &str| {
        Server::start_with(
            net,
            &net.two_trunks(&accounts),
            &[
                ("SWITCHBOARD_STORAGE__DATABASE_URL", &database),
                ("SWITCHBOARD_STORAGE__NODE_ID", id),
                ("SWITCHBOARD_SIP__DIGEST_SECRET", "cluster-secret-3"),
                ("SWITCHBOARD_HTTP__ADMIN_TOKEN", "admin-token-3"),
            ],
        )
    };
    let (a, b) = (node(&net_a, "change-a"), node(&net_b, "change-b"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::serve(
        &net_b.ip(8),
        axum::Router::new()
            .route("/one", answers("<Response><Hangup/></Response>"))
            .route("/two", answers("<Response><Hangup/></Response>")),
    ));
    let numbers = format!("/2010-04-01/Accounts/{ACCOUNT}/IncomingPhoneNumbers");
    // Waits until B's own view of `path` satisfies `seen` (asking 50 times a second, under
    // the account's request rate); how long that took.
    let b_sees = |path: &str, seen: &dyn Fn(u16, &Value) -> bool| {
        let start = std::time::Instant::now();
        loop {
            let (status, body) = b.http("GET", path, Some((ACCOUNT, TOKEN)), "");
            let body = serde_json::from_str(&body).unwrap_or(Value::Null);
            if seen(status, &body) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "B shows {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let call_b = || call_until_bye(&net_b, &b, "+16660001", 10);

    let (status, body) = a.http(
        "POST",
        &format!("{numbers}.json"),
        Some((ACCOUNT, TOKEN)),
        &format!("PhoneNumber=%2B16660001&VoiceUrl={}/one", app.base),
    );
    assert_eq!(status, 201, "{body}");
    let sid = json(&body)["sid"].as_str().unwrap().to_owned();
    let one = format!("{}/one", app.base);
    let claimed = b_sees(&format!("{numbers}/{sid}.json"), &|s, n| {
        s == 200 && n["voice_url"] == one.as_str()
    });
    call_b();
    assert_eq!(app.hits_to("/one", 1, Duration::from_secs(5)).len(), 1);

    let (status, body) = a.http(
        "POST",
        &format!("{numbers}/{sid}.json"),
        Some((ACCOUNT, TOKEN)),
        &format!("VoiceUrl={}/two", app.base),
    );
    assert_eq!(status, 200, "{body}");
    let two = format!("{}/two", app.base);
    let changed = b_sees(&format!("{numbers}/{sid}.json"), &|s, n| {
        s == 200 && n["voice_url"] == two.as_str()
    });
    call_b();
    assert_eq!(app.hits_to("/two", 1, Duration::from_secs(5)).len(), 1);
    assert_eq!(
        app.hits_to("/one", 1, Duration::ZERO).len(),
        1,
        "B used the new URL"
    );

    // A Telnyx Call Control application made through A.
    let (status, body) = a.request(
        "POST",
        "/v2/call_control_applications",
        &format!("Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"),
        br#"{"application_name": "made on A", "webhook_event_url": "https://app.example.com/hooks"}"#,
    );
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 201, "{body}");
    let id = json(&body)["data"]["id"].as_str().unwrap().to_owned();
    let start = std::time::Instant::now();
    loop {
        let (status, _) = b.request(
            "GET",
            &format!("/v2/call_control_applications/{id}"),
            &format!("Authorization: Bearer {KEY}\r\n"),
            b"",
        );
        if status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "B: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let application = start.elapsed();

    let (status, _) = a.http(
        "DELETE",
        &format!("{numbers}/{sid}.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 204);
    let released = b_sees(&format!("{numbers}/{sid}.json"), &|s, _| s == 404);

    // The account's limits set through A: B enforces them.
    let limits = format!("/admin/v1/accounts/{ACCOUNT}/limits");
    let admin = "Authorization: Bearer admin-token-3\r\nContent-Type: application/json\r\n";
    let (status, body) = a.request(
        "PUT",
        &limits,
        admin,
        br#"{"max_calls": 3, "calls_per_second": 0.5}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let start = std::time::Instant::now();
    loop {
        let (status, body) = b.request("GET", &limits, admin, b"");
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status == 200 && body["max_calls"] == 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "B: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let limited = start.elapsed();

    // A SIP domain with a credential list mapped for registrations, made through A: its
    // phone registers with B.
    let sip = format!("/2010-04-01/Accounts/{ACCOUNT}/SIP");
    let post = |path: &str, form: &str| -> Value {
        let (status, body) = a.http(
            "POST",
            &format!("{sip}/{path}"),
            Some((ACCOUNT, TOKEN)),
            form,
        );
        assert_eq!(status, 201, "{path}: {body}");
        json(&body)
    };
    let list = post("CredentialLists.json", "FriendlyName=phones")["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        &format!("CredentialLists/{list}/Credentials.json"),
        "Username=alice&Password=Alice-Secret-1",
    );
    let domain = post(
        "Domains.json",
        "DomainName=acme.sip.twilio.com&SipRegistration=true",
    )["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        &format!("Domains/{domain}/Auth/Registrations/CredentialListMappings.json"),
        &format!("CredentialListSid={list}"),
    );
    let register = scenario(
        &net_b,
        "domain_register.xml",
        &[
            ("USER", "alice"),
            ("DOMAIN", "acme.sip.twilio.com"),
            ("PASSWORD", "Alice-Secret-1"),
            ("CONTACT_PORT", "5062"),
        ],
    );
    let start = std::time::Instant::now();
    loop {
        let run = run_sipp(
            &net_b,
            &register,
            &net_b.ip(4),
            5061,
            b.sip,
            &["-m", "1"],
            Duration::from_secs(5),
        );
        if run.status.success() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "B: {run:?}");
    }
    let domain_login = start.elapsed();

    // A Telnyx IP connection with the PBX's address, made through A: the PBX's call out
    // through B is the connection's, and leaves by B's carrier.
    let telnyx = |path: &str, body: String| -> Value {
        let (status, body) = a.request(
            "POST",
            path,
            &format!("Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"),
            body.as_bytes(),
        );
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(status == 200 || status == 201, "{path}: {status} {body}");
        json(&body)["data"].clone()
    };
    let connection = telnyx(
        "/v2/ip_connections",
        r#"{"connection_name": "pbx"}"#.to_owned(),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pbx = net_b.ip(5);
    telnyx(
        "/v2/ips",
        format!(r#"{{"ip_address": "{pbx}", "connection_id": "{connection}"}}"#),
    );
    let carrier = SippServer::start(
        &net_b,
        &scenario(&net_b, "uas_wait_bye.xml", &[]),
        &net_b.ip(3),
        5060,
        &["-m", "1"],
    );
    let start = std::time::Instant::now();
    loop {
        let run = run_sipp(
            &net_b,
            &scenario(&net_b, "uac_short.xml", &[]),
            &pbx,
            5065,
            b.sip,
            &["-s", "+15551234", "-m", "1"],
            Duration::from_secs(5),
        );
        if run.status.success() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "B: {run:?}");
    }
    let trunk = start.elapsed();
    assert!(carrier.finished_ok(Duration::from_secs(10)), "{}", b.log());
    let out = (b.calls().into_iter())
        .find(|c| c["trunk_in"] == connection.as_str())
        .unwrap_or_else(|| panic!("{}", b.log()));
    assert_eq!(out["account_sid"], ACCOUNT, "{out}");
    eprintln!(
        "B saw A's changes after: claim {claimed:?}, new URL {changed:?}, application {application:?}, release {released:?}, limits {limited:?}, SIP domain login {domain_login:?}, IP connection {trunk:?}"
    );
}
