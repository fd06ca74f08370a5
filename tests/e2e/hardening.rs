//! Hostile tenants against the real binary: what an account's URLs and `sip:` targets may
//! reach, and that the reason reaches the account as a Notification.

use crate::common;

use axum::Router;
use axum::routing::post;
use common::voice_app::*;
use common::*;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// An account denied loopback (as a production config denies it) points a call at an
/// application on this machine: nothing is fetched, and the account learns why. A `sip:` URI
/// at a host that is neither a trunk nor allowed is refused with 21215.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_denied_loopback_cannot_reach_it_nor_dial_any_sip_host() {
    let net = Net::new(90);
    let app = App::serve(
        &net.ip(9),
        Router::new().route("/voice", post(answers("<Response><Hangup/></Response>"))),
    )
    .await;
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\nallow_loopback = false\n"
    ));
    let server = Server::start(&net, &config);
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);

    let calls = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json");
    let body = format!(
        "To=%2B15551234&From=%2B15550001&Url={}",
        urlencode(&format!("{}/voice", app.base))
    );
    let (status, created) = server.http("POST", &calls, Some((ACCOUNT, TOKEN)), &body);
    assert_eq!(status, 201, "{created}");
    let call = json(&created)["sid"].as_str().unwrap().to_owned();

    // The answered call's document cannot be fetched: error 11205 names the reason.
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}/Notifications.json");
    let deadline = Instant::now() + WAIT;
    let notification = loop {
        let (_, body) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
        if let Some(n) = json(&body)["notifications"]
            .as_array()
            .and_then(|l| l.first().cloned())
        {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no notification:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(notification["error_code"], "11205", "{notification}");
    let text = notification["message_text"].as_str().unwrap();
    assert!(text.contains("loopback"), "{text}");
    assert!(
        app.hits.lock().unwrap().is_empty(),
        "the application was not reached"
    );

    // sip: URIs only where the trunks are (or the operator allows).
    let stranger =
        "To=sip%3Avictim%40127.0.90.77%3A5060&From=%2B15550001&Url=https%3A%2F%2Fexample.com%2Fv";
    let (status, refused) = server.http("POST", &calls, Some((ACCOUNT, TOKEN)), stranger);
    assert_eq!(status, 400, "{refused}");
    assert_eq!(json(&refused)["code"], 21215, "{refused}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An application's URLs carry credentials (`user:password@`): the document URL and a stream's
/// URL. None of the passwords appears in the log or in a Notification, though the stream and a
/// redirect (to a document the app does not have) fail and are logged and reported with their
/// URLs.
#[tokio::test(flavor = "multi_thread")]
async fn passwords_in_an_applications_urls_reach_neither_the_log_nor_notifications() {
    let net = Net::new(129);
    let ip9 = net.ip(9);
    // Port 9 (discard) has nobody listening on loopback: the stream cannot connect.
    let document = format!(
        r#"<Response><Start><Stream url="ws://sk:streampw@{ip9}:9/media"/></Start><Pause length="1"/><Redirect>/missing</Redirect></Response>"#
    );
    let app = App::serve(&ip9, Router::new().route("/voice", post(answers(document)))).await;
    let base = app.base.replacen("http://", "http://vu:voicepw@", 1);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n"
    ));
    let server = Server::start(&net, &config);
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);

    let calls = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json");
    let body = format!(
        "To=%2B15551234&From=%2B15550001&Url={}",
        urlencode(&format!("{base}/voice"))
    );
    let (status, created) = server.http("POST", &calls, Some((ACCOUNT, TOKEN)), &body);
    assert_eq!(status, 201, "{created}");
    let call = json(&created)["sid"].as_str().unwrap().to_owned();
    assert_eq!(app.hits_to("/voice", 1, WAIT).len(), 1);

    // The stream's failure and the missing document are both reported, URLs redacted.
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}/Notifications.json");
    let deadline = Instant::now() + WAIT;
    let notifications = loop {
        let (_, body) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
        let list = json(&body)["notifications"].as_array().cloned().unwrap();
        if list.len() >= 2 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "notifications: {body}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = server.log();
    for secret in ["voicepw", "streampw"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(
            !notifications.contains(secret),
            "{secret} in {notifications}"
        );
    }
    assert!(
        notifications.contains("ws://***@") && notifications.contains("http://***@"),
        "the URLs are reported, redacted: {notifications}"
    );
    assert!(
        log.contains("ws://***@"),
        "the stream's URL is logged redacted:\n{log}"
    );
}

/// Account A tries to present account B's number as its caller ID through REST `From`,
/// `<Dial callerId>` and Telnyx's `from`: each is refused the provider's way (Twilio 21210,
/// Dial error 13214 with DialCallStatus=failed, Telnyx 422 10010) and no INVITE carries it;
/// A's own number, and a number the operator allows A, reach the carrier in From.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_cannot_present_another_tenants_number() {
    use common::sdk_app::{callee_checking, telnyx};
    const OTHER: &str = "AC22222222222222222222222222222222";
    const OURS: &str = "+14445550200";
    const THEIRS: &str = "+14445550100";
    let net = Net::new(132);
    let dial = format!(
        r#"<Response><Dial callerId="{THEIRS}" action="/after"><Number>+15551234</Number></Dial></Response>"#
    );
    let app = App::serve(
        &net.ip(9),
        Router::new()
            .route("/voice", post(answers(dial)))
            .route("/after", post(answers("<Response><Hangup/></Response>")))
            .route("/hangup", post(answers("<Response><Hangup/></Response>"))),
    )
    .await;
    // A has a number of its own answering with the <Dial> above, a Telnyx key and
    // connection, and one range the operator allows it; B owns THEIRS.
    let config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n\
         telnyx_api_keys = [\"{key}\"]\ncaller_ids = [\"+1999*\"]\n\
         [[connections]]\nid = \"{connection}\"\naccount_sid = \"{ACCOUNT}\"\n\
         webhook_event_url = \"{base}/telnyx\"\n\
         [[numbers]]\nphone_number = \"{OURS}\"\naccount_sid = \"{ACCOUNT}\"\nvoice_url = \"{base}/voice\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\n\
         [[numbers]]\nphone_number = \"{THEIRS}\"\naccount_sid = \"{OTHER}\"\nvoice_url = \"{base}/hangup\"\n",
        key = telnyx::KEY,
        connection = telnyx::CONNECTION,
        base = app.base,
    );
    let server = Server::start(&net, &net.two_trunks(&config));
    let twilio = (ACCOUNT, TOKEN);
    let calls = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json");
    let url = urlencode(&format!("{}/hangup", app.base));

    // Through REST: B's number, with or without its +, is refused before any INVITE.
    for from in [THEIRS, "14445550100", "+1 (444) 555-0100"] {
        let body = format!("To=%2B15551234&From={}&Url={url}", urlencode(from));
        let (status, refused) = server.http("POST", &calls, Some(twilio), &body);
        assert_eq!(status, 400, "{from}: {refused}");
        assert_eq!(json(&refused)["code"], 21210, "{refused}");
    }
    // A's own number and an allowed one reach the carrier in From.
    for from in [OURS, "+19990001"] {
        let digits = from.trim_start_matches('+');
        let (_phone, callee) = callee_checking(&net, 6, &[("From:", digits)]);
        let callee = callee;
        let body = format!("To=%2B15551234&From={}&Url={url}", urlencode(from));
        let (status, created) = server.http("POST", &calls, Some(twilio), &body);
        assert_eq!(status, 201, "{from}: {created}");
        let answered = tokio::task::block_in_place(|| callee.finished_ok(WAIT));
        assert!(
            answered,
            "the carrier got an INVITE from {from}\n{}",
            server.log()
        );
    }

    // <Dial callerId> naming B's number, on a call to A's number: the Dial fails.
    let uac = scenario(&net, "uac_wait_bye.xml", &[]);
    let run = tokio::task::block_in_place(|| {
        run_sipp(
            &net,
            &uac,
            &net.ip(2),
            5060,
            server.sip,
            &["-s", OURS, "-m", "1"],
            WAIT,
        )
    });
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    let after = app.hits_to("/after", 1, WAIT);
    assert_eq!(after[0].param("DialCallStatus"), Some("failed"));
    let call = after[0].param("CallSid").unwrap().to_owned();
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}/Notifications.json");
    let (_, notes) = server.http("GET", &path, Some(twilio), "");
    assert!(notes.contains("\"error_code\":\"13214\""), "{notes}");

    // Telnyx `from`: the same number is refused with 422 10010 on `from`.
    let body = format!(
        r#"{{"connection_id":"{}","to":"+15551234","from":"{THEIRS}"}}"#,
        telnyx::CONNECTION
    );
    let headers = format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        telnyx::KEY
    );
    let (status, refused) = server.request("POST", "/v2/calls", &headers, body.as_bytes());
    let refused = String::from_utf8_lossy(&refused).into_owned();
    assert_eq!(status, 422, "{refused}");
    let error = &json(&refused)["errors"][0];
    assert_eq!(error["code"], "10010", "{refused}");
    assert_eq!(error["source"]["pointer"], "/from", "{refused}");
}

/// Accounts share the media ports and the carriers: each is held to its own number of calls
/// and calls a second (config, then the admin API, which persists them), so one account ringing
/// many calls leaves another's alone — its incoming calls count too; and a registered phone is
/// rung only by its own account.
#[tokio::test(flavor = "multi_thread")]
async fn each_account_is_held_to_its_call_limits_and_its_own_phones() {
    const OTHER: &str = "AC33333333333333333333333333333333";
    const OURS: &str = "+14445550300";
    let net = Net::new(134);
    let app = App::serve(
        &net.ip(9),
        Router::new().route("/voice", post(answers("<Response><Reject/></Response>"))),
    )
    .await;
    let config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         max_calls = 2\ncalls_per_second = 100.0\n\
         [[numbers]]\nphone_number = \"{OURS}\"\naccount_sid = \"{ACCOUNT}\"\nvoice_url = \"{}/voice\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\ncaller_ids = [\"+1555*\"]\n\
         calls_per_second = 1.0\n\
         [[users]]\nusername = \"alice\"\npassword = \"s3cret\"\naccount_sid = \"{ACCOUNT}\"\n",
        app.base
    );
    let env = [("SWITCHBOARD_HTTP__ADMIN_TOKEN", "operator-token")];
    let server = Server::start_with(&net, &net.two_trunks(&config), &env);
    // The carrier rings every call until it is cancelled.
    let ringing = scenario(&net, "uas_ring_until_cancel.xml", &[]);
    let _carrier = SippServer::start(&net, &ringing, &net.ip(3), 5060, &["-m", "20"]);
    let place = |account: &str, token: &str, to: &str| {
        let calls = format!("/2010-04-01/Accounts/{account}/Calls.json");
        let body = format!(
            "To={}&From=%2B15550001&Url=http%3A%2F%2F127.0.0.1%3A9%2Fv",
            urlencode(to)
        );
        let (status, body) = server.http("POST", &calls, Some((account, token)), &body);
        (status, json(&body))
    };

    // A call to A's number reaches its application (which rejects it: 603) while A is under
    // its limit.
    let call_ours = |code: &str| {
        let caller = scenario(&net, "uac_expect_failure.xml", &[("CODE", code)]);
        let args = ["-s", OURS, "-m", "1"];
        let run = run_sipp(&net, &caller, &net.ip(2), 5060, server.sip, &args, WAIT);
        assert!(run.status.success(), "{code}: {run:?}\n{}", server.log());
    };
    tokio::task::block_in_place(|| call_ours("603"));
    assert_eq!(app.hits_to("/voice", 1, WAIT).len(), 1);

    // A may have two calls at once; its third is refused, B's is not.
    assert_eq!(place(ACCOUNT, TOKEN, "+15551234").0, 201);
    assert_eq!(place(ACCOUNT, TOKEN, "+15551234").0, 201);
    let (status, refused) = place(ACCOUNT, TOKEN, "+15551234");
    assert_eq!(
        (status, refused["code"].as_i64()),
        (429, Some(20429)),
        "{refused}"
    );
    assert_eq!(place(OTHER, "other-token", "+15551234").0, 201);
    // B places one call a second: a second one at once is refused.
    let (status, refused) = place(OTHER, "other-token", "+15551234");
    assert_eq!(
        (status, refused["code"].as_i64()),
        (429, Some(20429)),
        "{refused}"
    );
    assert!(
        refused["message"].as_str().unwrap().contains("faster"),
        "{refused}"
    );

    // The operator raises A's limit: in force at once, and stored.
    let admin = format!("/admin/v1/accounts/{ACCOUNT}/limits");
    let body = br#"{"max_calls": 3, "calls_per_second": 100}"#;
    let headers = "Authorization: Bearer operator-token\r\nContent-Type: application/json\r\n";
    let (status, set) = server.request("PUT", &admin, headers, body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&set));
    assert_eq!(place(ACCOUNT, TOKEN, "+15551234").0, 201);
    let (status, refused) = place(ACCOUNT, TOKEN, "+15551234");
    assert_eq!(
        (status, refused["code"].as_i64()),
        (429, Some(20429)),
        "{refused}"
    );

    // A has three calls now, its limit: an incoming call is refused busy, its application
    // not asked, and the call kept as busy in A's records.
    tokio::task::block_in_place(|| call_ours("486"));
    assert_eq!(app.hits.lock().unwrap().len(), 1, "the app was asked");
    let deadline = Instant::now() + WAIT;
    while !(server.calls().iter()).any(|c| c["status"] == "busy" && c["to"] == OURS) {
        assert!(Instant::now() < deadline, "no busy call:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // alice is A's phone: B may not ring her (whether or not she is registered).
    let (status, refused) = place(OTHER, "other-token", "client:alice");
    assert_eq!(
        (status, refused["code"].as_i64()),
        (400, Some(21215)),
        "{refused}"
    );

    // The limit survives a restart (it is a row in the database).
    drop(server);
    let server = Server::start_with(&net, &net.two_trunks(&config), &env);
    let (status, limits) = server.request("GET", &admin, headers, b"");
    let limits = json(&String::from_utf8_lossy(&limits));
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["max_calls"], 3, "{limits}");
}

/// Two carriers' callers reuse one Call-ID (the caller chooses it), one calling account A's
/// number and one account B's: each call's SIP ladder, read by its account and by the
/// operator, holds its own dialog's messages and none of the other's.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_id_reused_by_another_tenants_caller_stays_out_of_a_ladder() {
    const OTHER: &str = "AC44444444444444444444444444444444";
    const OURS: &str = "+14445550400";
    const THEIRS: &str = "+14445550401";
    const OPERATOR: &str = "ladder-operator-token";
    let net = Net::new(190);
    let app = App::serve(
        &net.ip(9),
        Router::new().route(
            "/voice",
            post(answers(
                "<Response><Pause length=\"1\"/><Hangup/></Response>",
            )),
        ),
    )
    .await;
    let config = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n\
         [[numbers]]\nphone_number = \"{OURS}\"\naccount_sid = \"{ACCOUNT}\"\nvoice_url = \"{base}/voice\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\n\
         [[numbers]]\nphone_number = \"{THEIRS}\"\naccount_sid = \"{OTHER}\"\nvoice_url = \"{base}/voice\"\n",
        base = app.base,
    );
    let server = Server::start_with(
        &net,
        &net.two_trunks(&config),
        &[
            ("SWITCHBOARD_SIP__TRACE_RETENTION_SECS", "3600"),
            ("SWITCHBOARD_HTTP__ADMIN_TOKEN", OPERATOR),
        ],
    );
    // Carrier A's caller to A's number, then carrier B's to B's, with the same Call-ID.
    let uac = scenario(&net, "uac_wait_bye.xml", &[]);
    for (host, number) in [(2, OURS), (3, THEIRS)] {
        let args = [
            "-s",
            number,
            "-m",
            "1",
            "-cid_str",
            "reused-call-id@carrier",
        ];
        let run = tokio::task::block_in_place(|| {
            run_sipp(&net, &uac, &net.ip(host), 5060, server.sip, &args, WAIT)
        });
        assert!(run.status.success(), "{run:?}\n{}", server.log());
    }
    let hits = app.hits_to("/voice", 2, WAIT);
    let sid_of = |number: &str| {
        (hits.iter())
            .find(|h| h.param("To") == Some(number))
            .and_then(|h| h.param("CallSid"))
            .unwrap_or_else(|| panic!("no call to {number}"))
            .to_owned()
    };
    let (ours, theirs) = (sid_of(OURS), sid_of(THEIRS));

    let ladder = |call: &str, headers: &str| {
        let (status, body) = server.request("GET", &format!("/v1/calls/{call}/sip"), headers, b"");
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "{body}");
        let messages: Vec<String> = (json(&body)["messages"].as_array().unwrap().iter())
            .map(|m| m["message"].as_str().unwrap().to_owned())
            .collect();
        messages
    };
    let basic = |user: &str, password: &str| {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Authorization: Basic {token}\r\n")
    };
    let operator = format!("Authorization: Bearer {OPERATOR}\r\n");
    for (call, viewer, own, foreign) in [
        (&ours, basic(ACCOUNT, TOKEN), OURS, THEIRS),
        (&ours, operator.clone(), OURS, THEIRS),
        (&theirs, basic(OTHER, "other-token"), THEIRS, OURS),
        (&theirs, operator.clone(), THEIRS, OURS),
    ] {
        let messages = ladder(call, &viewer);
        let first_lines: Vec<&str> = (messages.iter())
            .map(|m| m.lines().next().unwrap_or_default())
            .collect();
        // Its own dialog whole: the INVITE, its 200, the ACK, our BYE and its 200.
        for line in ["INVITE sip:", "SIP/2.0 200 OK", "ACK sip:", "BYE sip:"] {
            assert!(
                first_lines.iter().any(|l| l.starts_with(line)),
                "{line} in the ladder of the call to {own}: {first_lines:?}"
            );
        }
        let own = own.trim_start_matches('+');
        let foreign = foreign.trim_start_matches('+');
        for m in &messages {
            assert!(m.contains(own), "a message of another dialog:\n{m}");
            assert!(!m.contains(foreign), "the other tenant's message:\n{m}");
        }
    }
}
