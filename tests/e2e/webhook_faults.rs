//! No webhook is lost to a receiver that is down or to a shutdown, against the real binary:
//! calls placed through the REST API run while the application's status-callback receiver is
//! down (retries shortened by config, as a ten-minute outage would be at the default backoff);
//! once it is back, every event arrives, in order per call, exactly once. A call still up when
//! the server is stopped has its `completed` queued by the shutdown and sent.

use crate::common;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use common::voice_app::{ACCOUNT, TOKEN, form};
use common::ws_app::WsServer;
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

/// One stream status callback as received: its stream and event.
#[derive(Debug, Clone, PartialEq)]
struct StreamCallback {
    call: String,
    stream: String,
    event: String,
}

/// One `<Enqueue action>` request as received.
#[derive(Debug, Clone, PartialEq)]
struct QueueResult {
    call: String,
    result: String,
    queue: String,
    status: String,
}

/// One recording status callback as received.
#[derive(Debug, Clone)]
struct RecordingCallback {
    call: String,
    recording: String,
    status: String,
    duration: u64,
}

type Seen<T> = Arc<Mutex<Vec<T>>>;

fn param(p: &[(String, String)], name: &str) -> String {
    let found = p.iter().find(|(n, _)| n == name);
    found.map(|(_, v)| v.clone()).unwrap_or_default()
}

/// A receiver of status callbacks on `addr` (a port reserved earlier), started late.
fn start_receiver(rt: &tokio::runtime::Runtime, addr: &str) -> Seen<Callback> {
    start_receivers(rt, addr).status
}

/// What the receivers of [`start_receivers`] saw.
struct Receivers {
    status: Seen<Callback>,
    recordings: Seen<RecordingCallback>,
    streams: Seen<StreamCallback>,
    queues: Seen<QueueResult>,
}

/// A receiver of status callbacks (`/status`), recording status callbacks (`/recording`),
/// stream status callbacks (`/stream`) and `<Enqueue action>`s (`/queue`).
fn start_receivers(rt: &tokio::runtime::Runtime, addr: &str) -> Receivers {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let (router, queues) = receiver(Router::new(), "/queue", |get| QueueResult {
        call: get("CallSid"),
        result: get("QueueResult"),
        queue: get("QueueSid"),
        status: get("CallStatus"),
    });
    let (router, streams) = receiver(router, "/stream", |get| StreamCallback {
        call: get("CallSid"),
        stream: get("StreamSid"),
        event: get("StreamEvent"),
    });
    let (router, recordings) = receiver(router, "/recording", |get| RecordingCallback {
        call: get("CallSid"),
        recording: get("RecordingSid"),
        status: get("RecordingStatus"),
        duration: get("RecordingDuration").parse().unwrap_or(0),
    });
    let router = router.route(
        "/status",
        post(move |headers: HeaderMap, body: String| {
            let p = form(&body);
            let get = |k: &str| param(&p, k);
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
    Receivers {
        status: seen,
        recordings,
        streams,
        queues,
    }
}

/// A reader of a form's parameters by name ("" when absent).
type Params<'a> = &'a dyn Fn(&str) -> String;

/// `router` with a route at `path` that keeps what `read` makes of each form POSTed to it
/// (given a reader of its parameters) and answers an empty TwiML document.
fn receiver<T: Send + 'static>(
    router: Router,
    path: &str,
    read: fn(Params<'_>) -> T,
) -> (Router, Seen<T>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let router = router.route(
        path,
        post(move |body: String| {
            let p = form(&body);
            sink.lock().unwrap().push(read(&|k: &str| param(&p, k)));
            async { "<Response/>" }
        }),
    );
    (router, seen)
}

/// Places a call to carrier-b running `twiml`, with every status event sent to `callback`.
fn place(server: &Server, twiml: &str, callback: &str) -> String {
    place_with(server, twiml, callback, &[])
}

fn place_with(server: &Server, twiml: &str, callback: &str, extra: &[(&str, &str)]) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(extra)
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

/// Places a call to carrier-b running `twiml`, without callbacks.
fn place_plain(server: &Server, twiml: &str) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("To", "+15551234")
        .append_pair("From", "+15550001")
        .append_pair("Twiml", twiml)
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
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
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

/// A crash loses no status callback: the server is killed (SIGKILL) with a call up whose
/// `initiated`, `ringing` and `in-progress` were sent, and which is being recorded; the
/// restarted server closes the call (failed, as its CDR says) and makes its `completed` from
/// the stored subscription and events — `SequenceNumber` 3, once — and the recording it
/// repaired (the callee's audio up to the crash) is reported `completed` with its length. (Before, the session that would have sent
/// them died with the process and nothing else knew of them.)
#[test]
fn a_call_cut_by_a_crash_still_reports_completed() {
    let net = Arc::new(Net::new(100));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver_addr = {
        let l = std::net::TcpListener::bind(format!("{}:0", net.ip(10))).unwrap();
        l.local_addr().unwrap().to_string()
    };
    let Receivers {
        status: seen,
        recordings,
        streams,
        queues,
    } = start_receivers(&rt, &receiver_addr);
    let callback = format!("http://{receiver_addr}/status");
    let recording_callback = format!("http://{receiver_addr}/recording");
    let stream_callback = format!("http://{receiver_addr}/stream");
    let mut bot = rt.block_on(WsServer::start(&net.ip(10)));
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         [webhooks]\nretry_max_secs = 1\n"
    ));
    let uas = scenario(&net, "uas_pcap.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "2"]);
    let server = Server::start(&net, &config);
    let twiml = format!(
        "<Response><Start><Stream url=\"{}\" statusCallback=\"{stream_callback}\"/></Start>\
         <Pause length=\"60\"/></Response>",
        bot.url("/media")
    );
    let sid = place_with(
        &server,
        &twiml,
        &callback,
        &[
            ("Record", "true"),
            ("RecordingStatusCallback", &recording_callback),
            ("RecordingStatusCallbackEvent", "in-progress completed"),
        ],
    );
    wait_until(
        "the answered call's callbacks",
        Duration::from_secs(20),
        || {
            seen.lock().unwrap().len() >= 3
                && !recordings.lock().unwrap().is_empty()
                && !streams.lock().unwrap().is_empty()
        },
    );
    let _media = rt.block_on(bot.accept(Duration::from_secs(5)));
    // A second call waits in a queue, its <Enqueue action> owed when it leaves.
    let queued = place_plain(
        &server,
        &format!(
            "<Response><Enqueue action=\"http://{receiver_addr}/queue\">support</Enqueue></Response>"
        ),
    );
    wait_until("the call in the queue", Duration::from_secs(20), || {
        call_status(&server, &queued) == "in-progress"
    });
    assert_eq!(call_status(&server, &sid), "in-progress");
    // Two seconds of recording.
    std::thread::sleep(Duration::from_secs(2));
    server.kill();

    let again = Server::start(&net, &config);
    wait_until(
        "the crashed call's completed",
        Duration::from_secs(20),
        || seen.lock().unwrap().iter().any(|c| c.status == "failed"),
    );
    // Retries are 1 s apart at most: a duplicate would show within this.
    std::thread::sleep(Duration::from_secs(3));
    let seen = seen.lock().unwrap().clone();
    let got: Vec<(&str, &str, u32)> = seen
        .iter()
        .map(|c| (c.call.as_str(), c.status.as_str(), c.sequence))
        .collect();
    let s = sid.as_str();
    assert_eq!(
        got,
        [
            (s, "initiated", 0),
            (s, "ringing", 1),
            (s, "in-progress", 2),
            (s, "failed", 3)
        ],
        "{seen:#?}"
    );
    assert_eq!(call_status(&again, &sid), "failed", "as its CDR says");
    wait_until(
        "the repaired recording's callback",
        Duration::from_secs(10),
        || recordings.lock().unwrap().len() >= 2,
    );
    let recordings = recordings.lock().unwrap().clone();
    assert_eq!(recordings.len(), 2, "{recordings:#?}");
    let (started, saved) = (&recordings[0], &recordings[1]);
    assert_eq!(
        (started.call.as_str(), started.status.as_str()),
        (s, "in-progress")
    );
    assert_eq!(
        (
            saved.call.as_str(),
            saved.recording.as_str(),
            saved.status.as_str()
        ),
        (s, started.recording.as_str(), "completed")
    );
    assert!(
        (1..=4).contains(&saved.duration),
        "the recording up to the crash: {} s",
        saved.duration
    );
    // The queued call's action: requested once after the restart, as its hang-up.
    wait_until("the queued call's action", Duration::from_secs(10), || {
        !queues.lock().unwrap().is_empty()
    });
    let queues = queues.lock().unwrap().clone();
    assert_eq!(queues.len(), 1, "{queues:#?}");
    assert_eq!(
        (
            queues[0].call.as_str(),
            queues[0].result.as_str(),
            queues[0].status.as_str()
        ),
        (queued.as_str(), "hangup", "failed"),
        "{queues:#?}"
    );
    assert!(queues[0].queue.starts_with("QU"), "{queues:#?}");
    // The stream it was sending: started before the crash, stopped once after it.
    wait_until("the stream's stop", Duration::from_secs(10), || {
        streams.lock().unwrap().len() >= 2
    });
    let streams = streams.lock().unwrap().clone();
    let stream = streams[0].stream.clone();
    assert!(stream.starts_with("MZ"), "{streams:#?}");
    let event = |e: &str| StreamCallback {
        call: sid.clone(),
        stream: stream.clone(),
        event: e.into(),
    };
    assert_eq!(
        streams,
        [event("stream-started"), event("stream-stopped")],
        "{streams:#?}"
    );
    let log = again.log();
    assert!(
        log.contains("webhooks rebuilt from stored call events"),
        "{log}"
    );
}

/// A conference whose node is killed (SIGKILL) reports, after the restart, what its
/// participants could not: each still in leaves, then it ends — each once, numbered on from
/// what it reported before — and the REST API shows it completed, as its calls failed.
#[test]
fn a_conference_cut_by_a_crash_still_reports_its_end() {
    let net = Arc::new(Net::new(124));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reports: Seen<Vec<(String, String)>> = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let router = Router::new().route(
        "/conference",
        post(move |body: String| {
            sink.lock().unwrap().push(form(&body));
            async { "" }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(format!("{}:0", net.ip(10))))
        .unwrap();
    let receiver = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         [webhooks]\nretry_max_secs = 1\n"
    ));
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callees = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "2"]);
    let server = Server::start(&net, &config);
    let twiml = format!(
        "<Response><Dial><Conference statusCallback=\"http://{receiver}/conference\" \
         statusCallbackEvent=\"start end join leave\">sales</Conference></Dial></Response>"
    );
    let a = place_plain(&server, &twiml);
    let b = place_plain(&server, &twiml);
    let events = |reports: &Seen<Vec<(String, String)>>| -> Vec<(String, String, String)> {
        let seen = reports.lock().unwrap().clone();
        seen.iter()
            .map(|p| {
                (
                    param(p, "StatusCallbackEvent"),
                    param(p, "CallSid"),
                    param(p, "SequenceNumber"),
                )
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while events(&reports).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "both joined and the start, not {:?}\n{}",
            events(&reports),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    server.kill();

    let again = Server::start(&net, &config);
    wait_until("the conference's end", Duration::from_secs(20), || {
        events(&reports)
            .iter()
            .any(|(e, _, _)| e == "conference-end")
    });
    // Retries are 1 s apart at most: a duplicate would show within this.
    std::thread::sleep(Duration::from_secs(3));
    let seen = events(&reports);
    let e = |event: &str, call: &str, n: u32| (event.to_owned(), call.to_owned(), n.to_string());
    // The two calls join in either order; they leave in the order they joined.
    let (first, second) = if seen[0].1 == a { (&a, &b) } else { (&b, &a) };
    assert_eq!(
        seen,
        [
            e("participant-join", first, 1),
            e("participant-join", second, 2),
            e("conference-start", "", 3),
            e("participant-leave", first, 4),
            e("participant-leave", second, 5),
            e("conference-end", "", 6),
        ],
        "{seen:#?}"
    );
    let reports = reports.lock().unwrap().clone();
    let conference = param(&reports[0], "ConferenceSid");
    assert!(
        reports
            .iter()
            .all(|p| param(p, "ConferenceSid") == conference)
    );
    assert_eq!(
        param(&reports[5], "ReasonConferenceEnded"),
        "last-participant-left"
    );
    let (status, body) = again.http(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Conferences/{conference}.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(call_status(&again, &a), "failed");
}
