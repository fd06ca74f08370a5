//! A node of two call-core shards (`sip.call_shards = 2`), end to end: the SIP front hands
//! each call's messages to one shard, the shards share the registrar and the media engine,
//! and each media event reaches the shard whose call it is about — checked through what
//! SIPp saw, the CDRs' per-leg packet counts (which the endpoints' final events carry) and
//! how the calls were shared.

use crate::common;

use common::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);
/// Calls of each kind: with Call-IDs spread by a hash, all of them on one of two shards has
/// a chance of 2^-11.
const CALLS: usize = 12;

#[test]
fn two_shards_share_the_calls_the_registrar_and_the_media_engine() {
    let net = Net::new(60);
    let extra = "[[users]]\nusername = \"alice\"\npassword = \"s3cret\"\n[[routes]]\npattern = \"^alice$\"\nuser = \"alice\"\n";
    let server = Server::start_with(
        &net,
        &net.two_trunks(extra),
        &[("SWITCHBOARD_SIP__CALL_SHARDS", "2")],
    );
    let calls = CALLS.to_string();

    // A phone registers once, through whichever shard its REGISTER's Call-ID names; calls
    // to it arrive on both shards, and each finds its binding.
    let phone = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(4),
        5062,
        &["-m", &calls],
    );
    let register = scenario(
        &net,
        "phone_register.xml",
        &[
            ("USER", "alice"),
            ("PASSWORD", "s3cret"),
            ("CONTACT_PORT", "5062"),
        ],
    );
    let reg = run_sipp(
        &net,
        &register,
        &net.ip(4),
        5061,
        server.sip,
        &["-m", "1"],
        LONG,
    );
    assert!(
        reg.status.success(),
        "registration: {reg:?}\n{}",
        server.log()
    );
    let run = run_sipp(
        &net,
        &scenario(&net, "uac_short.xml", &[]),
        &net.ip(2),
        5060,
        server.sip,
        &["-s", "alice", "-m", &calls, "-r", "4", "-l", "4"],
        LONG,
    );
    assert!(
        run.status.success() && run.successful == CALLS as u64,
        "{run:?}\n{}",
        server.log()
    );
    assert!(
        phone.finished_ok(Duration::from_secs(10)),
        "the phone answered every call\n{}",
        server.log()
    );

    // Calls with RTP both ways between the trunks: every packet of every call is in its
    // CDR, counted by the endpoints' final events, which each shard got for its own calls.
    let _callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-mp", "6000", "-rtp_echo"],
    );
    let run = run_sipp(
        &net,
        &scenario(&net, "uac_pcap.xml", &[]),
        &net.ip(2),
        5060,
        server.sip,
        &[
            "-s",
            "+15551234",
            "-mp",
            "7000",
            "-m",
            &calls,
            "-r",
            "4",
            "-l",
            &calls,
        ],
        LONG,
    );
    assert!(
        run.status.success() && run.successful == CALLS as u64,
        "{run:?}\n{}",
        server.log()
    );
    let records = server.ended_calls(2 * CALLS);
    let media: Vec<_> = (records.iter())
        .filter(|c| c["to"] == "+15551234")
        .collect();
    assert_eq!(media.len(), CALLS);
    for call in media {
        assert_eq!(call["status"], "completed", "{call}");
        let (caller, callee) = (leg(call, "caller"), leg(call, "callee"));
        // 236 A-law packets from g711a.pcap plus 10 RFC 2833 event packets, echoed back.
        assert_eq!(caller["packets_in"], 246, "{call}");
        assert_eq!(callee["packets_out"], 246, "{call}");
        assert_eq!(callee["packets_in"], 246, "{call}");
        assert_eq!(caller["packets_out"], 246, "{call}");
    }
    let to_alice = (records.iter())
        .filter(|c| c["user_out"] == "alice")
        .count();
    assert_eq!(to_alice, CALLS);

    // Both shards carried calls, and every call was one shard's.
    let shard = |n: u8| {
        (server.metric(&format!("switchboard_shard_calls_total{{shard=\"{n}\"}}"))).unwrap_or(0.0)
    };
    let (first, second) = (shard(0), shard(1));
    assert!(
        first >= 1.0 && second >= 1.0 && first + second == (2 * CALLS) as f64,
        "calls per shard: {first} and {second}"
    );
    assert_eq!(server.metric("switchboard_calls_active"), Some(0.0));
}

/// Calls of different shards joined: the first call dialing a `<Conference>` opens the room
/// on its shard, and a call of the other shard visits it there (a leg from its shard to the
/// node itself, handed to the room's shard by its Request-URI); each callee hears the other's
/// tone, the conference lists both calls by their own SIDs, and the visitor removed by its
/// SID leaves. Then a queue: an agent's `<Dial><Queue>` on one shard takes a caller waiting
/// on the other, and each hears the other.
#[test]
fn calls_of_two_shards_share_a_room_and_a_queue() {
    use crate::cluster_rooms::{hears, talk};
    use common::voice_app::{ACCOUNT, TOKEN, place_call};
    use serde_json::{Value, json};
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    use switchboard_control::call::shard_of_call;

    // Each callee's SIPp logs in a directory of its own (where its media port is read), so
    // each is on a network of its own, reached through a trunk of its own.
    let net = Net::new(64);
    let far: Vec<Net> = [67, 68, 69].into_iter().map(Net::new).collect();
    // Two calls at once at most: the legs that carry a call from one shard to the other are
    // no calls of the account's.
    let mut config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         max_calls = 2\n"
    );
    for (n, callee) in far.iter().enumerate() {
        config += &format!(
            "[[trunks]]\nname = \"far-{n}\"\naddress = \"{}:5060\"\n\
             [[routes]]\npattern = \"^\\\\+1666{n}\"\ntrunk = \"far-{n}\"\n",
            callee.ip(3)
        );
    }
    let server = Server::start_with(
        &net,
        &net.two_trunks(&config),
        &[("SWITCHBOARD_SIP__CALL_SHARDS", "2")],
    );
    // The account's live socket, followed from the start.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, minted) = common::ws_client::mint_live(&server, (ACCOUNT, TOKEN), json!({}));
    assert_eq!(status, 201, "{minted}");
    let path = format!("/v1/live?token={}", minted["token"].as_str().unwrap());
    let mut live = rt
        .block_on(common::ws_client::connect(
            server.http,
            &path,
            &net.ip(9),
            false,
        ))
        .expect("the live socket");
    // A call to the callee on `far[n]`, running `twiml` when answered.
    let place_far = |n: usize, twiml: &str| {
        let twiml = url::form_urlencoded::byte_serialize(twiml.as_bytes()).collect::<String>();
        let (status, body) = server.http(
            "POST",
            &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
            Some((ACCOUNT, TOKEN)),
            &format!("To=%2B1666{n}550100&From=%2B15550001&Twiml={twiml}"),
        );
        assert_eq!(status, 201, "{body}\n{}", server.log());
        let created: Value = serde_json::from_str(&body).unwrap();
        created["sid"].as_str().unwrap().to_owned()
    };
    let far_callee = |n: usize, host: u8| {
        let phone = rig::rtp_socket(&far[n], host);
        let (callee, media) = phone_telling_media(&far[n], &phone, (&far[n].ip(3), 5060));
        (phone, callee, media)
    };
    let up = |sid: &str| {
        let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
            if body.contains("\"in-progress\"") {
                break;
            }
            assert!(Instant::now() < deadline, "{body}\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The far callee's media, at the server's media address.
    let at_server = |port: u16| std::net::SocketAddr::new(net.ip(1).parse().unwrap(), port);

    let room = "<Response><Dial><Conference beep=\"false\">room1</Conference></Dial></Response>";
    let phone_a = rig::rtp_socket(&net, 6);
    let (callee_a, media_a) = callee_telling_media(&net, &phone_a);
    let sid_a = place_call(&server, room, "");
    up(&sid_a);
    let (talking_a, talker_a) = talk(&phone_a, media_a(), 700.0);
    let conferences = format!("/2010-04-01/Accounts/{ACCOUNT}/Conferences");
    let deadline = Instant::now() + Duration::from_secs(10);
    let conference = loop {
        let (_, body) = server.http(
            "GET",
            &format!("{conferences}.json?FriendlyName=room1"),
            Some((ACCOUNT, TOKEN)),
            "",
        );
        let listed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if let Some(sid) = listed["conferences"][0]["sid"].as_str() {
            break sid.to_owned();
        }
        assert!(Instant::now() < deadline, "no room\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let (phone_c, callee_c, media_c) = far_callee(0, 6);
    let sid_c = place_far(0, room);
    assert_ne!(
        shard_of_call(&sid_a, 2),
        shard_of_call(&sid_c, 2),
        "calls placed in turn go to the shards in turn"
    );
    up(&sid_c);
    let (talking_c, talker_c) = talk(&phone_c, at_server(media_c().port()), 1300.0);

    std::thread::sleep(Duration::from_millis(600));
    let (a_hears_c, c_hears_a) = (hears(&phone_a, 1300.0), hears(&phone_c, 700.0));
    assert!(
        a_hears_c > 0.6,
        "A's callee hears C's: {a_hears_c}\n{}",
        server.log()
    );
    assert!(
        c_hears_a > 0.6,
        "C's callee hears A's: {c_hears_a}\n{}",
        server.log()
    );

    let participants = || -> Vec<String> {
        let (status, body) = server.http(
            "GET",
            &format!("{conferences}/{conference}/Participants.json"),
            Some((ACCOUNT, TOKEN)),
            "",
        );
        assert_eq!(status, 200, "{body}");
        let listed: Value = serde_json::from_str(&body).unwrap();
        let mut calls: Vec<String> = (listed["participants"].as_array().unwrap().iter())
            .map(|p| p["call_sid"].as_str().unwrap().to_owned())
            .collect();
        calls.sort();
        calls
    };
    let mut both = vec![sid_a.clone(), sid_c.clone()];
    both.sort();
    assert_eq!(participants(), both);
    // The account's calls are its two, not the legs of the visit between the shards.
    let (status, body) = server.http(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    let mut calls: Vec<&str> = (listed["calls"].as_array().unwrap().iter())
        .map(|c| c["sid"].as_str().unwrap())
        .collect();
    calls.sort();
    assert_eq!(calls, both, "{body}");

    // The visitor removed by its own SID: its call leaves the room, its document ends and it
    // hangs up; A's callee no longer hears it.
    let (status, body) = server.http(
        "DELETE",
        &format!("{conferences}/{conference}/Participants/{sid_c}.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 204, "{body}\n{}", server.log());
    assert!(
        callee_c.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    talking_c.store(false, Ordering::Relaxed);
    talker_c.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = hears(&phone_a, 1300.0);
    assert!(after < 0.05, "C's callee still heard: {after}");
    assert_eq!(participants(), vec![sid_a.clone()]);
    let (status, body) = server.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid_a}.json"),
        Some((ACCOUNT, TOKEN)),
        "Status=completed",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        callee_a.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    talking_a.store(false, Ordering::Relaxed);
    talker_a.join().unwrap();
    // The account's live socket told of its two calls, to their hang-ups, and of no leg
    // between the shards.
    let mut seen = std::collections::BTreeMap::<String, Vec<String>>::new();
    while !(both.iter()).all(|c| seen.get(c).is_some_and(|e| e.iter().any(|e| e == "hangup"))) {
        let event = rt
            .block_on(common::ws_client::next_json(
                &mut live,
                Duration::from_secs(10),
            ))
            .expect("the live socket open");
        let (call, kind) = (event["call"].as_str(), event["event"].as_str());
        let (Some(call), Some(kind)) = (call, kind) else {
            panic!("{event}");
        };
        seen.entry(call.to_owned())
            .or_default()
            .push(kind.to_owned());
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        both.iter().collect::<Vec<_>>(),
        "{seen:?}"
    );

    // A queue: the caller waits on one shard, the agent's `<Dial><Queue>` is on the other.
    let queues = format!("/2010-04-01/Accounts/{ACCOUNT}/Queues.json");
    let (status, body) = server.http(
        "POST",
        &queues,
        Some((ACCOUNT, TOKEN)),
        "FriendlyName=support",
    );
    assert_eq!(status, 201, "{body}");
    let (phone_q, callee_q, media_q) = far_callee(1, 6);
    let caller = place_far(1, "<Response><Enqueue>support</Enqueue></Response>");
    up(&caller);
    let (talking_q, talker_q) = talk(&phone_q, at_server(media_q().port()), 700.0);
    let (phone_g, callee_g, media_g) = far_callee(2, 6);
    let agent = place_far(
        2,
        "<Response><Dial><Queue>support</Queue></Dial></Response>",
    );
    assert_ne!(shard_of_call(&caller, 2), shard_of_call(&agent, 2));
    up(&agent);
    let (talking_g, talker_g) = talk(&phone_g, at_server(media_g().port()), 1300.0);
    // A caller waiting in a queue may hear nothing at all (no packet): that is not the agent.
    let hears_within = |phone: &std::net::UdpSocket, freq: f32| {
        let (mut share, deadline) = (0.0, Instant::now() + Duration::from_secs(8));
        while Instant::now() < deadline && share <= 0.6 {
            rig::drain(phone);
            share = rig::try_receive_audio(phone, 50, switchboard_media::Law::Ulaw)
                .map_or(0.0, |(heard, _)| {
                    switchboard_media::tone::share_at(&heard, freq)
                });
        }
        share
    };
    let q_hears_g = hears_within(&phone_q, 1300.0);
    assert!(
        q_hears_g > 0.6,
        "the caller hears the agent: {q_hears_g}\n{}",
        server.log()
    );
    let g_hears_q = hears_within(&phone_g, 700.0);
    assert!(
        g_hears_q > 0.6,
        "the agent hears the caller: {g_hears_q}\n{}",
        server.log()
    );
    let (status, body) = server.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{agent}.json"),
        Some((ACCOUNT, TOKEN)),
        "Status=completed",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        callee_g.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    assert!(
        callee_q.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    for (talking, talker) in [(talking_q, talker_q), (talking_g, talker_g)] {
        talking.store(false, Ordering::Relaxed);
        talker.join().unwrap();
    }
}

/// An account's limit of calls at once holds over the node, whichever shard carries each
/// call: with two calls up (placed in turn, one on each shard) a third is refused with
/// Twilio's 429 / 20429, and once one ends a new one is taken.
#[test]
fn an_accounts_limit_holds_over_both_shards() {
    use common::voice_app::{ACCOUNT, TOKEN};
    use serde_json::Value;
    use switchboard_control::call::shard_of_call;

    let net = Net::new(78);
    let config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         max_calls = 2\ncalls_per_second = 100.0\n"
    );
    let server = Server::start_with(
        &net,
        &net.two_trunks(&config),
        &[("SWITCHBOARD_SIP__CALL_SHARDS", "2")],
    );
    // The carrier rings every call until it is cancelled.
    let ringing = scenario(&net, "uas_ring_until_cancel.xml", &[]);
    let _carrier = SippServer::start(&net, &ringing, &net.ip(3), 5060, &["-m", "10"]);
    let calls = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls");
    let place = || {
        let body = "To=%2B15551234&From=%2B15550001&Url=http%3A%2F%2F127.0.0.1%3A9%2Fv";
        let (status, body) = server.http(
            "POST",
            &format!("{calls}.json"),
            Some((ACCOUNT, TOKEN)),
            body,
        );
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    let (first, second) = (place(), place());
    assert_eq!((first.0, second.0), (201, 201), "{first:?} {second:?}");
    let sids: Vec<String> = [&first.1, &second.1]
        .iter()
        .map(|c| c["sid"].as_str().unwrap().to_owned())
        .collect();
    assert_ne!(shard_of_call(&sids[0], 2), shard_of_call(&sids[1], 2));
    let (status, refused) = place();
    assert_eq!(
        (status, refused["code"].as_i64()),
        (429, Some(20429)),
        "{refused}\n{}",
        server.log()
    );
    // One ends: the account may place another.
    let (status, body) = server.http(
        "POST",
        &format!("{calls}/{}.json", sids[0]),
        Some((ACCOUNT, TOKEN)),
        "Status=canceled",
    );
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = place();
        if status == 201 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One shard pings the trunks for the node and tells the others what it finds: a trunk
/// whose keep-alives go unanswered is marked down once (one keep-alive an interval, not one
/// per shard), and calls on both shards pass over it from then on.
#[test]
fn one_shard_pings_the_trunks_and_every_shard_passes_over_one_down() {
    let net = Net::new(79);
    // Nothing listens at .6, probed every second.
    let config = format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n\
         [[trunks]]\nname = \"probed\"\naddress = \"{probed}:5060\"\noptions_interval_secs = 1\n\
         [[trunks]]\nname = \"good\"\naddress = \"{good}:5060\"\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\ntrunks = [\"probed\", \"good\"]\n",
        a = net.ip(2),
        probed = net.ip(6),
        good = net.ip(3),
    );
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_SIP__T1_MS", "100"),
            ("SWITCHBOARD_SIP__CALL_SHARDS", "2"),
        ],
    );
    server.wait_for_log("trunk down: routes pass over it until it answers trunk=probed code=408");
    let good = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", &CALLS.to_string()],
    );
    let run = run_sipp(
        &net,
        &scenario(&net, "uac_short.xml", &[]),
        &net.ip(2),
        5060,
        server.sip,
        &[
            "-s",
            "+15551234",
            "-m",
            &CALLS.to_string(),
            "-r",
            "4",
            "-l",
            "4",
        ],
        LONG,
    );
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    assert!(
        good.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let log = server.log();
    // Every call, on either shard, went to the good trunk at once: none tried the one down.
    for call in server.ended_calls(CALLS) {
        assert_eq!(call["trunk_out"], "good", "{call}");
    }
    assert!(
        !log.contains(r#"trying trunk=Some("probed")"#) && !log.contains(r#"from=Some("probed")"#),
        "{log}"
    );
    assert_eq!(
        log.matches("trunk down: routes pass over it until it answers trunk=probed")
            .count(),
        1,
        "the trunk is pinged by one shard\n{log}"
    );
    let shard = |n: u8| {
        (server.metric(&format!("switchboard_shard_calls_total{{shard=\"{n}\"}}"))).unwrap_or(0.0)
    };
    assert!(
        shard(0) >= 1.0 && shard(1) >= 1.0,
        "{} {}",
        shard(0),
        shard(1)
    );
}
