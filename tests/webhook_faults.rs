//! No webhook is lost to a receiver that is down or to a shutdown, against the real binary:
//! calls placed through the REST API run while the application's status-callback receiver is
//! down (retries shortened by config, as a ten-minute outage would be at the default backoff);
//! once it is back, every event arrives, in order per call, exactly once. A call still up when
//! the server is stopped has its `completed` queued by the shutdown and sent.

mod common;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use common::voice_app::{ACCOUNT, TOKEN, form};
use common::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One status callback as received: its call, its status and its idempotency token.
#[derive(Debug, Clone)]
struct Callback {
    call: String,
    status: String,
    sequence: u32,
    token: String,
}

/// A receiver of status callbacks on `addr` (a port reserved earlier), started late.
fn start_receiver(rt: &tokio::runtime::Runtime, addr: &str) -> Arc<Mutex<Vec<Callback>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let router = Router::new().route(
        "/status",
        post(move |headers: HeaderMap, body: String| {
            let p = form(&body);
            let get = |k: &str| {
                p.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            sink.lock().unwrap().push(Callback {
                call: get("CallSid"),
                status: get("CallStatus"),
                sequence: get("SequenceNumber").parse().unwrap_or(u32::MAX),
                token: headers
                    .get("i-twilio-idempotency-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            });
            async { "" }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .expect("the reserved port");
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    seen
}

/// Places a call to carrier-b running `twiml`, with every status event sent to `callback`.
fn place(server: &Server, twiml: &str, callback: &str) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("To", "+15551234")
        .append_pair("From", "+15550001")
        .append_pair("Twiml", twiml)
        .append_pair("StatusCallback", callback)
        .append_pair(
            "StatusCallbackEvent",
            "initiated ringing answered completed",
        )
        .finish();
    let (status, answer) = server.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
        Some((ACCOUNT, TOKEN)),
        &body,
    );
    assert_eq!(status, 201, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    v["sid"].as_str().unwrap().to_owned()
}

fn call_status(server: &Server, sid: &str) -> String {
    let (_, body) = server.http(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["status"].as_str().unwrap_or_default().to_owned()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn webhooks_survive_a_receiver_outage_and_a_shutdown() {
    let net = Arc::new(Net::new(96));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver_addr = {
        let l = std::net::TcpListener::bind(format!("{}:0", net.ip(10))).unwrap();
        l.local_addr().unwrap().to_string()
    };
    let callback = format!("http://{receiver_addr}/status");
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n\
         [webhooks]\nretry_max_secs = 1\n"
    ));
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "4"]);
    let server = Server::start(&net, &config);

    // The receiver is down: three short calls run to their end, a fourth stays up.
    let short: Vec<String> = (0..3)
        .map(|_| {
            place(
                &server,
                "<Response><Pause length=\"1\"/><Hangup/></Response>",
                &callback,
            )
        })
        .collect();
    let long = place(
        &server,
        "<Response><Pause length=\"60\"/></Response>",
        &callback,
    );
    wait_until("the short calls to end", Duration::from_secs(20), || {
        short.iter().all(|s| call_status(&server, s) == "completed")
    });
    assert_eq!(call_status(&server, &long), "in-progress");
    let failed = server
        .metric("switchboard_webhook_attempts_total{outcome=\"failed\"}")
        .unwrap_or(0.0);
    assert!(
        failed >= 3.0,
        "the outage was seen: {failed} failed attempts"
    );

    // Back up: everything so far arrives.
    let seen = start_receiver(&rt, &receiver_addr);
    wait_until(
        "the callbacks after the outage",
        Duration::from_secs(20),
        || seen.lock().unwrap().len() >= 3 * 4 + 3,
    );

    // Stopped with the long call up: its `completed` is queued by the shutdown; whatever the
    // shutdown could not send goes out after the restart.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let _again = Server::start(&net, &config);
    wait_until("the long call's completed", Duration::from_secs(20), || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|c| c.call == long && c.status == "completed")
    });
    // Retries are 1 s apart at most: a duplicate would show within this.
    std::thread::sleep(Duration::from_secs(3));

    let seen = seen.lock().unwrap().clone();
    let mut per_call: HashMap<&str, Vec<&Callback>> = HashMap::new();
    for c in &seen {
        per_call.entry(c.call.as_str()).or_default().push(c);
    }
    assert_eq!(per_call.len(), 4, "{seen:#?}");
    for sid in short.iter().chain([&long]) {
        let got = &per_call[sid.as_str()];
        let statuses: Vec<&str> = got.iter().map(|c| c.status.as_str()).collect();
        assert_eq!(
            statuses,
            ["initiated", "ringing", "in-progress", "completed"],
            "{sid}: in order, once each: {got:#?}"
        );
        let sequence: Vec<u32> = got.iter().map(|c| c.sequence).collect();
        assert_eq!(sequence, [0, 1, 2, 3], "{sid}");
    }
    let mut tokens: Vec<&str> = seen.iter().map(|c| c.token.as_str()).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), seen.len(), "one token per event: {seen:#?}");
    assert!(tokens.iter().all(|t| t.len() == 36));
}
