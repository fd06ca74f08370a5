//! Several nodes, one room: a call on node A and a call on node B dial the same
//! `<Conference>`. A opened the room, so B's call visits it over SIP (a leg from B to A seated
//! as B's call); each callee hears the other's tone. Through either node the conference lists
//! both calls by their own SIDs; a participant removed through B (forwarded to the room's
//! home) leaves — B's call, its document done, hangs up — while A's callee stops hearing it.
//! B's `<Conference statusCallback>`, the first to ask, gets the room's events once each, in
//! order, though the room is on A. A queue is one queue the same way: a caller waiting on A
//! is taken by an agent's `<Dial><Queue>` on B.

use crate::common;
use common::voice_app::{ACCOUNT, App, TOKEN, answers, place_call, records};
use common::*;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use switchboard_media::{Law, tone};

/// A phone that talks `freq` Hz to `to` until told to stop.
pub(crate) fn talk(
    phone: &UdpSocket,
    to: SocketAddr,
    freq: f32,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let talking = Arc::new(AtomicBool::new(true));
    let (phone, on) = (phone.try_clone().unwrap(), talking.clone());
    let talker = std::thread::spawn(move || {
        let words = tone::sines(&[freq], 8000.0, 1000);
        let mut seq = 0u16;
        while on.load(Ordering::Relaxed) {
            send_audio(&phone, to, &words, seq);
            seq = seq.wrapping_add(50);
        }
    });
    (talking, talker)
}

/// The share of `freq` in what `phone` hears from now on for a second.
pub(crate) fn hears(phone: &UdpSocket, freq: f32) -> f32 {
    rig::drain(phone);
    let (heard, _) = rig::receive_audio(phone, 50, Law::Ulaw);
    tone::share_at(&heard, freq)
}

/// Two nodes on `database`, sharing `secret`, each with the test account and two trunks.
fn two_nodes(
    database: &str,
    nets: (&Net, &Net),
    ids: (&str, &str),
    secret: &str,
) -> (Server, Server) {
    let accounts = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n"
    );
    let node = |net: &Net, id: &str| {
        Server::start_with(
            net,
            &net.two_trunks(&accounts),
            &[
                ("SWITCHBOARD_STORAGE__DATABASE_URL", database),
                ("SWITCHBOARD_STORAGE__NODE_ID", id),
                ("SWITCHBOARD_SIP__DIGEST_SECRET", secret),
            ],
        )
    };
    (node(nets.0, ids.0), node(nets.1, ids.1))
}

#[test]
fn a_room_dialed_on_two_nodes_is_one_room() {
    let Some(database) = cluster_database("cluster_rooms") else {
        return;
    };
    let (net_a, net_b) = (Net::new(180), Net::new(181));
    let (a, b) = two_nodes(
        &database,
        (&net_a, &net_b),
        ("rooms-a", "rooms-b"),
        "cluster-secret-5",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::serve(
        &net_b.ip(8),
        axum::Router::new().route("/conference", records()),
    ));
    let room = "<Response><Dial><Conference beep=\"false\">room1</Conference></Dial></Response>";
    let room_reporting = format!(
        "<Response><Dial><Conference beep=\"false\" statusCallback=\"{}/conference\" \
         statusCallbackEvent=\"start end join leave\">room1</Conference></Dial></Response>",
        app.base
    );
    let up = |server: &Server, sid: &str| {
        let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
            let call: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if call["status"] == "in-progress" {
                break;
            }
            assert!(Instant::now() < deadline, "{body}\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // A's callee (700 Hz) opens the room on A; B's callee (1300 Hz) comes to it through B.
    let phone_a = rig::rtp_socket(&net_a, 6);
    let (callee_a, media_a) = callee_telling_media(&net_a, &phone_a);
    let sid_a = place_call(&a, room, "");
    up(&a, &sid_a);
    let (talking_a, talker_a) = talk(&phone_a, media_a(), 700.0);
    let conferences = format!("/2010-04-01/Accounts/{ACCOUNT}/Conferences");
    let listed = |server: &Server| -> Value {
        let (status, body) = server.http(
            "GET",
            &format!("{conferences}.json?FriendlyName=room1"),
            Some((ACCOUNT, TOKEN)),
            "",
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    // Alone in it, A's call waits for a second caller: the room is `init`.
    let conference = loop {
        if let Some(sid) = listed(&a)["conferences"][0]["sid"].as_str() {
            assert_eq!(listed(&a)["conferences"][0]["status"], "init");
            break sid.to_owned();
        }
        assert!(Instant::now() < deadline, "no room on A\n{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let phone_b = rig::rtp_socket(&net_b, 6);
    let (callee_b, media_b) = callee_telling_media(&net_b, &phone_b);
    let sid_b = place_call(&b, &room_reporting, "");
    up(&b, &sid_b);
    let (talking_b, talker_b) = talk(&phone_b, media_b(), 1300.0);

    // One room: each callee hears the other, across the nodes.
    std::thread::sleep(Duration::from_millis(600));
    let (a_hears_b, b_hears_a) = (hears(&phone_a, 1300.0), hears(&phone_b, 700.0));
    assert!(
        a_hears_b > 0.6,
        "A's callee hears B's: {a_hears_b}\n{}",
        b.log()
    );
    assert!(
        b_hears_a > 0.6,
        "B's callee hears A's: {b_hears_a}\n{}",
        a.log()
    );

    // Both nodes list the one conference with both calls, each by its own SID.
    let participants = |server: &Server, conference: &str| -> Vec<String> {
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
    let mut both = vec![sid_a.clone(), sid_b.clone()];
    both.sort();
    assert_eq!(participants(&a, &conference), both);
    assert_eq!(
        participants(&b, &conference),
        both,
        "through B, forwarded to the room's home"
    );
    assert_eq!(
        listed(&b)["conferences"][0]["sid"].as_str(),
        Some(conference.as_str())
    );

    // B's participant removed through B: B's call leaves the room, its document ends and it
    // hangs up; A's callee no longer hears B's.
    let (status, body) = b.http(
        "DELETE",
        &format!("{conferences}/{conference}/Participants/{sid_b}.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 204, "{body}");
    assert!(callee_b.finished_ok(Duration::from_secs(10)), "{}", b.log());
    talking_b.store(false, Ordering::Relaxed);
    talker_b.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = hears(&phone_a, 1300.0);
    assert!(after < 0.05, "B's callee still heard: {after}");
    assert_eq!(participants(&a, &conference), vec![sid_a.clone()]);

    // A's call hung up: the room ends; its callee gets A's BYE.
    let (status, body) = b.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid_a}.json"),
        Some((ACCOUNT, TOKEN)),
        "Status=completed",
    );
    assert_eq!(status, 200, "{body}");
    assert!(callee_a.finished_ok(Duration::from_secs(10)), "{}", a.log());
    talking_a.store(false, Ordering::Relaxed);
    talker_a.join().unwrap();

    // The room's events from B's arrival on, each once and in order, to B's callback.
    let expected = [
        ("participant-join", sid_b.as_str()),
        ("conference-start", ""),
        ("participant-leave", sid_b.as_str()),
        ("participant-leave", sid_a.as_str()),
        ("conference-end", ""),
    ];
    app.hits_to("/conference", expected.len(), Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let hits = app.hits_to("/conference", expected.len(), Duration::ZERO);
    let seen: Vec<(String, String, String)> = (hits.iter())
        .map(|h| {
            let param = |k: &str| h.param(k).unwrap_or_default().to_owned();
            (
                param("StatusCallbackEvent"),
                param("CallSid"),
                param("SequenceNumber"),
            )
        })
        .collect();
    let wanted: Vec<(String, String, String)> = (expected.iter().enumerate())
        .map(|(i, (event, call))| (event.to_string(), call.to_string(), (i + 1).to_string()))
        .collect();
    assert_eq!(seen, wanted, "{}", a.log());
    for h in &hits {
        assert_eq!(h.param("ConferenceSid"), Some(conference.as_str()));
        assert_eq!(h.param("FriendlyName"), Some("room1"));
    }

    // Ended with A's call, the room is nobody's: the next call to it, on B, opens it anew
    // there, under a new SID, and A forwards requests about it to B.
    let phone_c = rig::rtp_socket(&net_b, 7);
    let (callee_c, _) = callee_telling_media(&net_b, &phone_c);
    let sid_c = place_call(&b, room, "");
    up(&b, &sid_c);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reopened = loop {
        let newest = listed(&b)["conferences"][0].clone();
        if newest["sid"] != conference.as_str() && newest["status"] != "completed" {
            break newest["sid"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "not reopened\n{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let conference = reopened;
    assert_eq!(participants(&b, &conference), vec![sid_c.clone()]);
    assert_eq!(
        participants(&a, &conference),
        vec![sid_c.clone()],
        "through A, forwarded to B"
    );
    let (status, body) = a.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid_c}.json"),
        Some((ACCOUNT, TOKEN)),
        "Status=completed",
    );
    assert_eq!(status, 200, "{body}");
    assert!(callee_c.finished_ok(Duration::from_secs(10)), "{}", b.log());
}

/// An agent's `<Dial><Queue>` waiting on node B for an empty queue takes a caller the moment
/// it is put in the queue on node A: A tells the other nodes (a change notice, as for a
/// number), and B looks at the queue at once — without it, B would look again only at the
/// minute's safety net, long after this test's bound. Each then hears the other.
#[test]
fn an_agent_waiting_on_one_node_takes_a_caller_queued_on_another_at_once() {
    let Some(database) = cluster_database("cluster_queue_wait") else {
        return;
    };
    let (net_a, net_b) = (Net::new(194), Net::new(195));
    let (a, b) = two_nodes(
        &database,
        (&net_a, &net_b),
        ("waiting-a", "waiting-b"),
        "cluster-secret-7",
    );
    let queues = format!("/2010-04-01/Accounts/{ACCOUNT}/Queues.json");
    let (status, body) = a.http("POST", &queues, Some((ACCOUNT, TOKEN)), "FriendlyName=late");
    assert_eq!(status, 201, "{body}");

    // The agent on B answers and waits in the empty queue.
    let phone_b = rig::rtp_socket(&net_b, 6);
    let (callee_b, media_b) = callee_telling_media(&net_b, &phone_b);
    let agent = place_call(
        &b,
        r#"<Response><Dial timeout="40"><Queue>late</Queue></Dial></Response>"#,
        "",
    );
    let (talking_b, talker_b) = talk(&phone_b, media_b(), 1300.0);
    let call = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{agent}.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = b.http("GET", &call, Some((ACCOUNT, TOKEN)), "");
        if body.contains("\"in-progress\"") {
            break;
        }
        assert!(Instant::now() < deadline, "{body}\n{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its document reaches the `<Dial>` within milliseconds of the answer; a second on, it
    // is waiting (were it not yet, it would find the caller at once and the test would pass
    // without the notice — never fail for want of it).
    std::thread::sleep(Duration::from_secs(1));

    // The caller is put in the queue on A.
    let phone_a = rig::rtp_socket(&net_a, 6);
    let (callee_a, media_a) = callee_telling_media(&net_a, &phone_a);
    let queued = Instant::now();
    place_call(&a, "<Response><Enqueue>late</Enqueue></Response>", "");
    let (talking_a, talker_a) = talk(&phone_a, media_a(), 700.0);
    // A caller waiting in a queue may hear nothing at all (no packet): that is not the agent.
    let mut a_hears_b = 0.0;
    while queued.elapsed() < Duration::from_secs(8) && a_hears_b <= 0.6 {
        rig::drain(&phone_a);
        a_hears_b = rig::try_receive_audio(&phone_a, 50, Law::Ulaw)
            .map_or(0.0, |(heard, _)| tone::share_at(&heard, 1300.0));
    }
    assert!(
        a_hears_b > 0.6,
        "the caller does not hear the waiting agent 8 s after joining: {a_hears_b}\n{}\n{}",
        a.log(),
        b.log()
    );
    let b_hears_a = hears(&phone_b, 700.0);
    assert!(b_hears_a > 0.6, "the agent hears the caller: {b_hears_a}");

    let (status, body) = b.http("POST", &call, Some((ACCOUNT, TOKEN)), "Status=completed");
    assert_eq!(status, 200, "{body}");
    assert!(callee_b.finished_ok(Duration::from_secs(10)), "{}", b.log());
    assert!(callee_a.finished_ok(Duration::from_secs(10)), "{}", a.log());
    for (talking, talker) in [(talking_a, talker_a), (talking_b, talker_b)] {
        talking.store(false, Ordering::Relaxed);
        talker.join().unwrap();
    }
}

/// Several nodes, one queue: a caller put in `support` on node A is seen waiting through B,
/// and an agent's `<Dial><Queue>` on B takes it (B visits A, which bridges its leg with the
/// caller): each callee hears the other's tone; the queue is then empty for both nodes. The
/// agent hung up through A (forwarded to B), both calls end.
#[test]
fn a_queue_on_two_nodes_is_one_queue() {
    let Some(database) = cluster_database("cluster_queues") else {
        return;
    };
    let (net_a, net_b) = (Net::new(182), Net::new(183));
    let (a, b) = two_nodes(
        &database,
        (&net_a, &net_b),
        ("queues-a", "queues-b"),
        "cluster-secret-6",
    );
    let queues = format!("/2010-04-01/Accounts/{ACCOUNT}/Queues");
    let get = |server: &Server, path: &str| -> Value {
        let (status, body) = server.http("GET", path, Some((ACCOUNT, TOKEN)), "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };

    // The caller waits on A.
    let phone_a = rig::rtp_socket(&net_a, 6);
    let (callee_a, media_a) = callee_telling_media(&net_a, &phone_a);
    let caller = place_call(&a, "<Response><Enqueue>support</Enqueue></Response>", "");
    let (talking_a, talker_a) = talk(&phone_a, media_a(), 700.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let queue = loop {
        let listed = get(&b, &format!("{queues}.json"));
        if listed["queues"][0]["current_size"] == 1 {
            break listed["queues"][0]["sid"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "{listed}\n{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    // B lists A's caller as the queue's front.
    let front = get(&b, &format!("{queues}/{queue}/Members/Front.json"));
    assert_eq!(front["call_sid"], caller.as_str(), "{front}");
    assert_eq!(front["position"], 1, "{front}");

    // The agent on B takes it.
    let phone_b = rig::rtp_socket(&net_b, 6);
    let (callee_b, media_b) = callee_telling_media(&net_b, &phone_b);
    let agent = place_call(
        &b,
        "<Response><Dial><Queue>support</Queue></Dial></Response>",
        "",
    );
    let (talking_b, talker_b) = talk(&phone_b, media_b(), 1300.0);
    std::thread::sleep(Duration::from_millis(800));
    let (a_hears_b, b_hears_a) = (hears(&phone_a, 1300.0), hears(&phone_b, 700.0));
    assert!(
        a_hears_b > 0.6,
        "the caller hears the agent: {a_hears_b}\n{}",
        b.log()
    );
    assert!(
        b_hears_a > 0.6,
        "the agent hears the caller: {b_hears_a}\n{}",
        a.log()
    );
    for server in [&a, &b] {
        let q = get(server, &format!("{queues}/{queue}.json"));
        assert_eq!(q["current_size"], 0, "{q}");
    }

    // The agent hung up through A: both calls end.
    let (status, body) = a.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{agent}.json"),
        Some((ACCOUNT, TOKEN)),
        "Status=completed",
    );
    assert_eq!(status, 200, "{body}");
    assert!(callee_b.finished_ok(Duration::from_secs(10)), "{}", b.log());
    assert!(callee_a.finished_ok(Duration::from_secs(10)), "{}", a.log());
    for (talking, talker) in [(talking_a, talker_a), (talking_b, talker_b)] {
        talking.store(false, Ordering::Relaxed);
        talker.join().unwrap();
    }

    // A second caller waiting on A, the queue's front, is sent to other TwiML through B
    // (Members/Front, forwarded to A): it leaves the queue and runs the document, which hangs
    // it up.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::serve(
        &net_b.ip(8),
        axum::Router::new().route("/dequeued", answers("<Response><Hangup/></Response>")),
    ));
    let (callee_c, _) = callee_telling_media(&net_a, &rig::rtp_socket(&net_a, 7));
    let second = place_call(&a, "<Response><Enqueue>support</Enqueue></Response>", "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&b, &format!("{queues}/{queue}.json"))["current_size"] != 1 {
        assert!(Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = b.http(
        "POST",
        &format!("{queues}/{queue}/Members/Front.json"),
        Some((ACCOUNT, TOKEN)),
        &format!("Url={}/dequeued", app.base),
    );
    assert_eq!(status, 200, "{body}\n{}", a.log());
    let hit = app.hits_to("/dequeued", 1, Duration::from_secs(10));
    assert_eq!(hit[0].param("CallSid"), Some(second.as_str()));
    assert!(callee_c.finished_ok(Duration::from_secs(10)), "{}", a.log());
    assert_eq!(
        get(&b, &format!("{queues}/{queue}.json"))["current_size"],
        0
    );
}

/// Telnyx's `/v2/conferences` on two nodes: a call on A opens the conference on A; a call on
/// B joins it through A's API — the join is served where the joining call is (B), which
/// visits the room's home. Each callee hears the other; B's leg gets its
/// `conference.participant.joined` (from the room's home) and no `call.bridged`; the
/// participants listed through B are both calls; muted through B (forwarded to A), B's
/// callee falls silent in the room; B's call leaves through B and stays up, told
/// `conference.participant.left`, and A's callee no longer hears it.
#[test]
fn a_telnyx_call_joins_a_conference_another_node_holds() {
    use common::sdk_app::telnyx::{self, CONNECTION, KEY};
    let Some(database) = cluster_database("cluster_rooms_telnyx") else {
        return;
    };
    let (net_a, net_b) = (Net::new(246), Net::new(247));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::serve(
        &net_b.ip(8),
        axum::Router::new().route("/telnyx", records()).route(
            "/tone.wav",
            axum::routing::get(|| async {
                (
                    [("content-type", "audio/wav")],
                    common::voice_app::wav_1khz(),
                )
            }),
        ),
    ));
    let hooks = app.base.trim_start_matches("http://").to_owned();
    let node = |net: &Net, id: &str| {
        let config = format!("{}{}", net.two_trunks(""), telnyx::config(&hooks, "", &[]));
        Server::start_with(
            net,
            &config,
            &[
                ("SWITCHBOARD_STORAGE__DATABASE_URL", database.as_str()),
                ("SWITCHBOARD_STORAGE__NODE_ID", id),
                ("SWITCHBOARD_SIP__DIGEST_SECRET", "cluster-secret-9"),
            ],
        )
    };
    let (a, b) = (
        node(&net_a, "telnyx-rooms-a"),
        node(&net_b, "telnyx-rooms-b"),
    );
    let bearer = format!("Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n");
    let api = |server: &Server, method: &str, path: &str, body: Value| -> (u16, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, answer) = server.request(method, path, &bearer, body.as_bytes());
        (
            status,
            serde_json::from_slice(&answer).unwrap_or(Value::Null),
        )
    };
    let events_of = |call: &str| -> Vec<String> {
        (app.hits_to("/telnyx", 0, Duration::ZERO).iter())
            .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
            .filter(|e| e["data"]["payload"]["call_control_id"] == call)
            .map(|e| {
                e["data"]["event_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let wait_for = |call: &str, event: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !events_of(call).iter().any(|e| e == event) {
            assert!(
                Instant::now() < deadline,
                "no {event} for {call}: {:?}\n{}\n{}",
                events_of(call),
                a.log(),
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A call through `server`, answered by a callee on its node's trunk talking `freq` Hz.
    let dial = |server: &Server, net: &Net, port: u8, freq: f32| {
        let phone = rig::rtp_socket(net, port);
        let (callee, media) = callee_telling_media(net, &phone);
        let (status, dialed) = api(
            server,
            "POST",
            "/v2/calls",
            serde_json::json!({"connection_id": CONNECTION, "to": "+15551234", "from": "+15550001"}),
        );
        assert_eq!(status, 200, "{dialed}\n{}", server.log());
        let id = dialed["data"]["call_control_id"]
            .as_str()
            .unwrap()
            .to_owned();
        wait_for(&id, "call.answered");
        let talker = talk(&phone, media(), freq);
        (id, phone, callee, talker)
    };

    let (id_a, phone_a, callee_a, talker_a) = dial(&a, &net_a, 6, 700.0);
    let (status, created) = api(
        &a,
        "POST",
        "/v2/conferences",
        serde_json::json!({"call_control_id": id_a, "name": "support", "beep_enabled": "never"}),
    );
    assert_eq!(status, 200, "{created}\n{}", a.log());
    let conference = created["data"]["id"].as_str().unwrap().to_owned();
    let (id_b, phone_b, callee_b, talker_b) = dial(&b, &net_b, 6, 1300.0);
    // Through A, though B carries the call: served on B, which visits A.
    let (status, joined) = api(
        &a,
        "POST",
        &format!("/v2/conferences/{conference}/actions/join"),
        serde_json::json!({"call_control_id": id_b, "client_state": "Ymln", "beep_enabled": "never"}),
    );
    assert_eq!(status, 200, "{joined}\n{}\n{}", a.log(), b.log());
    wait_for(&id_b, "conference.participant.joined");
    std::thread::sleep(Duration::from_millis(600));
    let (a_hears_b, b_hears_a) = (hears(&phone_a, 1300.0), hears(&phone_b, 700.0));
    assert!(a_hears_b > 0.6, "A's callee hears B's: {a_hears_b}");
    assert!(b_hears_a > 0.6, "B's callee hears A's: {b_hears_a}");
    let joined_hook = (app.hits_to("/telnyx", 0, Duration::ZERO).iter())
        .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
        .find(|e| {
            e["data"]["event_type"] == "conference.participant.joined"
                && e["data"]["payload"]["call_control_id"] == id_b.as_str()
        })
        .unwrap();
    let payload = &joined_hook["data"]["payload"];
    assert_eq!(payload["conference_id"], conference.as_str());
    assert_eq!(payload["client_state"], "Ymln");
    assert_eq!(payload["connection_id"], CONNECTION);
    assert!(
        !events_of(&id_b).iter().any(|e| e == "call.bridged"),
        "{:?}",
        events_of(&id_b)
    );

    // Through B, forwarded to the room's home: both calls, by their own ids.
    let (status, listed) = api(
        &b,
        "GET",
        &format!("/v2/conferences/{conference}/participants"),
        Value::Null,
    );
    assert_eq!(status, 200, "{listed}");
    let mut ids: Vec<&str> = (listed["data"].as_array().unwrap().iter())
        .map(|p| p["call_control_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut both = vec![id_a.as_str(), id_b.as_str()];
    both.sort();
    assert_eq!(ids, both, "{listed}");

    let act = |server: &Server, action: &str, body: Value| {
        let path = format!("/v2/conferences/{conference}/actions/{action}");
        let (status, answer) = api(server, "POST", &path, body);
        assert_eq!(status, 200, "{action}: {answer}\n{}", server.log());
    };
    act(&b, "mute", serde_json::json!({"call_control_ids": [id_b]}));
    std::thread::sleep(Duration::from_millis(300));
    let muted = hears(&phone_a, 1300.0);
    assert!(muted < 0.05, "B's callee muted, still heard: {muted}");
    act(
        &b,
        "unmute",
        serde_json::json!({"call_control_ids": [id_b]}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let unmuted = hears(&phone_a, 1300.0);
    assert!(unmuted > 0.6, "B's callee unmuted: {unmuted}");

    // Played to B's call alone (through B, by the room's home A): B's leg is told of it as
    // it would be in a room of its own node, in the webhooks of B's call.
    let tone = format!("{}/tone.wav", app.base);
    let play = serde_json::json!({"audio_url": tone, "call_control_ids": [id_b]});
    act(&b, "play", play);
    wait_for(&id_b, "conference.participant.playback.ended");
    let told = (app.hits_to("/telnyx", 0, Duration::ZERO).iter())
        .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
        .filter(|e| {
            (e["data"]["event_type"].as_str().unwrap_or_default())
                .starts_with("conference.participant.playback.")
        })
        .collect::<Vec<_>>();
    let told_of = |e: &Value| {
        let p = &e["data"]["payload"];
        let event = e["data"]["event_type"].as_str().unwrap().to_owned();
        (event, p["conference_id"].clone(), p["media_url"].clone())
    };
    assert_eq!(
        told.iter().map(told_of).collect::<Vec<_>>(),
        ["started", "ended"].map(|s| (
            format!("conference.participant.playback.{s}"),
            Value::from(conference.as_str()),
            Value::from(tone.as_str())
        )),
        "{told:#?}"
    );
    assert!(
        (told.iter()).all(|e| e["data"]["payload"]["call_control_id"] == id_b.as_str()),
        "{told:#?}"
    );

    // B's call leaves: it stays up, and A's callee no longer hears it.
    act(&b, "leave", serde_json::json!({"call_control_id": id_b}));
    wait_for(&id_b, "conference.participant.left");
    std::thread::sleep(Duration::from_millis(500));
    let gone = hears(&phone_a, 1300.0);
    assert!(gone < 0.05, "B's callee left, still heard: {gone}");
    assert!(
        !events_of(&id_b).iter().any(|e| e == "call.hangup"),
        "{:?}",
        events_of(&id_b)
    );
    let (status, call) = api(&b, "GET", &format!("/v2/calls/{id_b}"), Value::Null);
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["data"]["is_alive"], true, "{call}");

    for (server, id, callee, (talking, talker)) in [
        (&b, &id_b, callee_b, talker_b),
        (&a, &id_a, callee_a, talker_a),
    ] {
        let path = format!("/v2/calls/{id}/actions/hangup");
        let (status, answer) = api(server, "POST", &path, serde_json::json!({}));
        assert_eq!(status, 200, "{answer}");
        assert!(
            callee.finished_ok(Duration::from_secs(10)),
            "{}",
            server.log()
        );
        talking.store(false, Ordering::Relaxed);
        talker.join().unwrap();
    }
    let joins = (events_of(&id_b).iter())
        .filter(|e| e.starts_with("conference.participant.") && !e.contains("playback"))
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(
        joins,
        [
            "conference.participant.joined",
            "conference.participant.left"
        ],
        "each once"
    );
}

/// A Telnyx caller waiting on node A, bridged by the app with an agent's call on node B (B
/// takes the queue's front and visits A), then enqueued again leaves the bridge, not the
/// agent: the agent's call stays up, as it would were both calls on one node. Without the
/// visit leg's BYE saying its call moved on, B would hear the leg's end as the caller's and
/// hang the agent up. The app then bridges the two by the caller's call_control_id, which B
/// does not carry: B visits A for it (before, 90015 "Invalid Call Control ID"). Bridging the
/// caller with a call still ringing on B is refused with 90034, as on one node.
#[test]
fn a_telnyx_caller_enqueued_again_leaves_its_agent_on_another_node_up() {
    let Some(database) = cluster_database("cluster_requeue") else {
        return;
    };
    let (net_a, net_b) = (Net::new(196), Net::new(197));
    let pair = TelnyxPair::start(&database, (&net_a, &net_b), "requeue", "");
    let (a, b) = (&pair.a, &pair.b);
    let api = |node: &Server, path: &str, body: Value| pair.api(node, path, body);
    let nth = |event: &str, id: &str, n: usize| pair.nth(event, id, n);
    let dial = |node: &Server| pair.dial(node, "+15551234");

    // The caller, on A, waits in "support".
    let phone_a = rig::rtp_socket(&net_a, 6);
    let (callee_a, media_a) = callee_telling_media(&net_a, &phone_a);
    let caller = dial(a);
    let enqueue = || {
        let path = format!("/v2/calls/{caller}/actions/enqueue");
        let (status, answer) = api(a, &path, serde_json::json!({"queue_name": "support"}));
        assert_eq!(status, 200, "{answer}\n{}", a.log());
    };
    enqueue();
    nth("call.enqueued", &caller, 1);

    // A call ringing on B is no call to bridge with yet: B refuses A's visit for it (480),
    // which A's app is told as Telnyx tells it (90034).
    let ringing = SippServer::start(
        &net_b,
        &scenario(&net_b, "uas_ring_until_cancel.xml", &[]),
        &net_b.ip(3),
        5060,
        &["-m", "1"],
    );
    let to = serde_json::json!({
        "connection_id": common::sdk_app::telnyx::CONNECTION, "to": "+15551234", "from": "+15550001"
    });
    let (status, dialed) = api(b, "/v2/calls", to);
    assert_eq!(status, 200, "{dialed}");
    let unanswered = dialed["data"]["call_control_id"]
        .as_str()
        .unwrap()
        .to_owned();
    nth("call.initiated", &unanswered, 1);
    let path = format!("/v2/calls/{caller}/actions/bridge");
    let asked = serde_json::json!({"call_control_id": unanswered});
    // The ringing call's row reaches the database within the writer's gathering (100 ms):
    // until then A cannot know it (90015).
    let deadline = Instant::now() + Duration::from_secs(3);
    let refused = loop {
        let (status, answer) = api(a, &path, asked.clone());
        let code = answer["errors"][0]["code"].clone();
        if code != "90015" || Instant::now() > deadline {
            break (status, code, answer);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (refused.0, refused.1.as_str()),
        (422, Some("90034")),
        "{}",
        refused.2
    );
    let (status, answer) = api(
        b,
        &format!("/v2/calls/{unanswered}/actions/hangup"),
        serde_json::json!({}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(ringing.finished_ok(Duration::from_secs(10)), "{}", b.log());

    // The agent, on B, is bridged with the queue's front: the caller on A.
    let phone_b = rig::rtp_socket(&net_b, 6);
    let (callee_b, media_b) = callee_telling_media(&net_b, &phone_b);
    let agent = dial(b);
    let path = format!("/v2/calls/{agent}/actions/bridge");
    let front = serde_json::json!({"call_control_id": "", "queue": "support"});
    let (status, answer) = api(b, &path, front);
    assert_eq!(status, 200, "{answer}\n{}", b.log());
    nth("call.bridged", &agent, 1);
    let (talking_a, talker_a) = talk(&phone_a, media_a(), 700.0);
    let (talking_b, talker_b) = talk(&phone_b, media_b(), 1300.0);
    let each_hears_the_other = |when: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut b_hears_a = 0.0;
        while Instant::now() < deadline && b_hears_a <= 0.6 {
            b_hears_a = hears(&phone_b, 700.0);
        }
        assert!(
            b_hears_a > 0.6,
            "{when}: the agent hears the caller: {b_hears_a}"
        );
        let a_hears_b = hears(&phone_a, 1300.0);
        assert!(
            a_hears_b > 0.6,
            "{when}: the caller hears the agent: {a_hears_b}"
        );
    };
    each_hears_the_other("bridged");

    // Enqueued again, the caller leaves the bridge; the agent stays up, and is bridged with
    // the caller again by its call_control_id, though A carries it (B visits A for it).
    enqueue();
    nth("call.enqueued", &caller, 2);
    let path = format!("/v2/calls/{agent}/actions/bridge");
    let (status, answer) = api(b, &path, serde_json::json!({"call_control_id": caller}));
    assert_eq!(
        status,
        200,
        "the agent was hung up, or the caller not found: {answer}\n{}\n{}",
        a.log(),
        b.log()
    );
    nth("call.bridged", &agent, 2);
    nth("call.bridged", &caller, 2);
    nth("call.dequeued", &caller, 2);
    each_hears_the_other("bridged again");

    // The agent hung up ends the bridge for good: the caller, its peer ended, is hung up too
    // (its BYE says nothing of moving on).
    let path = format!("/v2/calls/{agent}/actions/hangup");
    let (status, answer) = api(b, &path, serde_json::json!({}));
    assert_eq!(status, 200, "{answer}");
    nth("call.hangup", &caller, 1);
    assert!(callee_b.finished_ok(Duration::from_secs(10)), "{}", b.log());
    assert!(callee_a.finished_ok(Duration::from_secs(10)), "{}", a.log());
    for (talking, talker) in [(talking_a, talker_a), (talking_b, talker_b)] {
        talking.store(false, Ordering::Relaxed);
        talker.join().unwrap();
    }
}

/// A Telnyx supervisor dialed through node B for an agent's call that node A carries (bridged
/// with a customer's call on B, by the agent's call_control_id: A visits B) is placed by A,
/// where the bridge is — the dial is forwarded there by its `supervise_call_control_id`, as a
/// supervisor is placed on the supervised call's shard. Monitoring, it hears both and neither
/// hears it; switched to whisper through B, the agent hears it and the customer, across the
/// visit, does not. Before, B answered 90015 "Invalid Call Control ID".
#[test]
fn a_telnyx_supervisor_dialed_through_one_node_joins_a_bridge_another_node_holds() {
    use serde_json::json;
    let Some(database) = cluster_database("cluster_supervision") else {
        return;
    };
    let (net_a, net_b, net_s) = (Net::new(198), Net::new(199), Net::new(200));
    let supervisors = format!(
        "[[trunks]]\nname = \"supervisors\"\naddress = \"{}:5060\"\n\
         [[routes]]\npattern = \"^\\\\+1777\"\ntrunk = \"supervisors\"\n",
        net_s.ip(3)
    );
    let pair = TelnyxPair::start(&database, (&net_a, &net_b), "supervision", &supervisors);
    let (a, b) = (&pair.a, &pair.b);
    let hear_within = |phone: &UdpSocket, freq: f32, at_least: f32| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut heard = 0.0;
        while Instant::now() < deadline && heard <= at_least {
            heard = hears(phone, freq);
        }
        heard
    };

    // The agent on A, the customer on B, bridged by the agent's call_control_id.
    let phone_a = rig::rtp_socket(&net_a, 6);
    let (callee_a, media_a) = callee_telling_media(&net_a, &phone_a);
    let agent = pair.dial(a, "+15551234");
    let phone_b = rig::rtp_socket(&net_b, 6);
    let (callee_b, media_b) = callee_telling_media(&net_b, &phone_b);
    let customer = pair.dial(b, "+15551234");
    let path = format!("/v2/calls/{agent}/actions/bridge");
    let (status, answer) = pair.api(a, &path, json!({"call_control_id": customer}));
    assert_eq!(status, 200, "{answer}\n{}", a.log());
    pair.nth("call.bridged", &agent, 1);
    pair.nth("call.bridged", &customer, 1);
    let (talking_a, talker_a) = talk(&phone_a, media_a(), 700.0);
    let (talking_b, talker_b) = talk(&phone_b, media_b(), 1300.0);

    // The supervisor, dialed through B, is placed by A through its supervisors' trunk.
    let phone_s = rig::rtp_socket(&net_s, 6);
    let (callee_s, media_s) = phone_telling_media(&net_s, &phone_s, (&net_s.ip(3), 5060));
    let supervising = json!({
        "to": "+17770001", "supervise_call_control_id": agent, "supervisor_role": "monitor"
    });
    let supervisor = pair.dial_with(b, supervising);
    let at_a = SocketAddr::new(net_a.ip(1).parse().unwrap(), media_s().port());
    let (talking_s, talker_s) = talk(&phone_s, at_a, 1000.0);
    let agent_heard = hear_within(&phone_s, 700.0, 0.25);
    let customer_heard = hear_within(&phone_s, 1300.0, 0.25);
    assert!(
        agent_heard > 0.25 && customer_heard > 0.25,
        "the monitor hears the agent ({agent_heard}) and the customer ({customer_heard})\n{}",
        a.log()
    );
    let (to_agent, to_customer) = (hears(&phone_a, 1000.0), hears(&phone_b, 1000.0));
    assert!(
        to_agent < 0.05 && to_customer < 0.05,
        "a monitor is heard by nobody: {to_agent}, {to_customer}"
    );

    // Whisper, asked through B (forwarded to A by the supervisor's id).
    let path = format!("/v2/calls/{supervisor}/actions/switch_supervisor_role");
    let (status, answer) = pair.api(b, &path, json!({"role": "whisper"}));
    assert_eq!(status, 200, "{answer}");
    let to_agent = hear_within(&phone_a, 1000.0, 0.25);
    assert!(to_agent > 0.25, "the agent hears the whisper: {to_agent}");
    let to_customer = hears(&phone_b, 1000.0);
    assert!(
        to_customer < 0.05,
        "the customer hears the whisper: {to_customer}"
    );

    // The supervisor hangs up (through B); the agent too, which ends the customer's call.
    let hangup = |node: &Server, id: &str| {
        let path = format!("/v2/calls/{id}/actions/hangup");
        let (status, answer) = pair.api(node, &path, json!({}));
        assert_eq!(status, 200, "{answer}");
    };
    hangup(b, &supervisor);
    hangup(a, &agent);
    pair.nth("call.hangup", &customer, 1);
    for callee in [callee_s, callee_a, callee_b] {
        assert!(
            callee.finished_ok(Duration::from_secs(10)),
            "{}\n{}",
            a.log(),
            b.log()
        );
    }
    for (talking, talker) in [
        (talking_a, talker_a),
        (talking_b, talker_b),
        (talking_s, talker_s),
    ] {
        talking.store(false, Ordering::Relaxed);
        talker.join().unwrap();
    }
}

/// Two nodes on one database serving Telnyx's Call Control, each with the test account and
/// two trunks (node A also `extra_a`), and an app on B's network recording their webhooks.
struct TelnyxPair {
    _rt: tokio::runtime::Runtime,
    app: App,
    a: Server,
    b: Server,
    bearer: String,
}

impl TelnyxPair {
    fn start(database: &str, (net_a, net_b): (&Net, &Net), name: &str, extra_a: &str) -> Self {
        use common::sdk_app::telnyx::{self, KEY};
        let rt = tokio::runtime::Runtime::new().unwrap();
        let app = rt.block_on(App::serve(
            &net_b.ip(8),
            axum::Router::new().route("/telnyx", records()),
        ));
        let hooks = app.base.trim_start_matches("http://").to_owned();
        let node = |net: &Net, id: &str, extra: &str| {
            let telnyx = telnyx::config(&hooks, "", &[]);
            let config = format!("{}{telnyx}{extra}", net.two_trunks(""));
            Server::start_with(
                net,
                &config,
                &[
                    ("SWITCHBOARD_STORAGE__DATABASE_URL", database),
                    ("SWITCHBOARD_STORAGE__NODE_ID", id),
                    ("SWITCHBOARD_SIP__DIGEST_SECRET", "cluster-secret-9"),
                ],
            )
        };
        let a = node(net_a, &format!("{name}-a"), extra_a);
        let b = node(net_b, &format!("{name}-b"), "");
        let bearer = format!("Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n");
        Self {
            _rt: rt,
            app,
            a,
            b,
            bearer,
        }
    }

    /// `POST path` with `body` through `node`: the status and the answer.
    fn api(&self, node: &Server, path: &str, body: Value) -> (u16, Value) {
        let (status, answer) =
            node.request("POST", path, &self.bearer, body.to_string().as_bytes());
        let answer = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        (status, answer)
    }

    /// The `n`th webhook `event` of the leg `id` (from either node).
    fn nth(&self, event: &str, id: &str, n: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let hits = self.app.hits_to("/telnyx", 0, Duration::ZERO);
            let found: Vec<Value> = (hits.iter())
                .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
                .filter(|e| {
                    e["data"]["event_type"] == event
                        && e["data"]["payload"]["call_control_id"] == id
                })
                .collect();
            if let Some(e) = found.get(n - 1) {
                return e.clone();
            }
            assert!(Instant::now() < deadline, "no {event} #{n} of {id}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A call to `to` dialed through `node`, once answered: its call_control_id.
    fn dial(&self, node: &Server, to: &str) -> String {
        self.dial_with(node, serde_json::json!({ "to": to }))
    }

    /// A dial through `node` with `body` (its `connection_id` and `from` added), once answered.
    fn dial_with(&self, node: &Server, mut body: Value) -> String {
        body["connection_id"] = common::sdk_app::telnyx::CONNECTION.into();
        body["from"] = "+15550001".into();
        let (status, dialed) = self.api(node, "/v2/calls", body);
        assert_eq!(status, 200, "{dialed}\n{}", node.log());
        let id = dialed["data"]["call_control_id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.nth("call.answered", &id, 1);
        id
    }
}
