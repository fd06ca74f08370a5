//! Hostile tenants against the real binary: what an account's URLs and `sip:` targets may
//! reach, and that the reason reaches the account as a Notification.

mod common;

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
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\nallow_loopback = false\n"
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
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n"
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
