//! Several nodes on one PostgreSQL as one provider: an application behind a load balancer
//! reaches a call through whichever node it lands on. Node A carries a call the REST API
//! placed through it; through node B the same call is read (the owner's answer, forwarded)
//! and hung up (the callee gets the BYE from A). A guesser going through B is slowed at A as
//! itself, not as B. When A dies with a call up, B says at once that the call is not in
//! progress instead of a 200 that hangs up nothing.

use crate::common;
use common::voice_app::{ACCOUNT, TOKEN, place_call};
use common::*;
use serde_json::Value;
use std::time::Duration;

/// The database scripts/test.sh's PostgreSQL keeps for this test.
fn database() -> Option<String> {
    let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_POSTGRES").is_err(),
            "PostgreSQL required but not configured"
        );
        eprintln!("SWITCHBOARD_TEST_POSTGRES_URL not set; several nodes not exercised");
        return None;
    };
    let base = url.rsplit_once('/').expect("URL with a database").0;
    Some(format!("{base}/switchboard_cluster"))
}

#[test]
fn any_node_answers_for_a_call_another_node_carries() {
    let Some(database) = database() else {
        return;
    };
    let (net_a, net_b) = (Net::new(38), Net::new(39));
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

    // A dies with a call up: B does not pretend to hang it up.
    let (sid, _callee) = place(&net_a);
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
    a.kill();
    let (status, body) = b.http(
        "POST",
        &format!("{calls}/{sid}.json"),
        Some((ACCOUNT, TOKEN)),
        "Status=completed",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["code"], 21220, "{body}");
}
