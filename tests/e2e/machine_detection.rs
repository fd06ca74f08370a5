//! Answering-machine detection end to end against the real binary: a REST-created call with
//! `MachineDetection` goes to a SIPp callee whose media is this test's socket; the test plays
//! the callee's side (a voicemail greeting and its beep, or a person's "Hello?") as PCMU RTP,
//! and the application hears the verdict: in the TwiML request (synchronous) or in
//! `AsyncAmdStatusCallback`, and in the status callbacks, signed.

use crate::common;

use axum::Router;
use common::voice_app::*;
use common::voices::{espeak, piper};
use common::*;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::tone;

const GREETING: &str = "Hello, you have reached the voicemail of Alex Morgan. I cannot take your call right now. Please leave your name and number after the tone.";

async fn start_app(ip: &str) -> App {
    let router = Router::new()
        .route(
            "/voice",
            answers(r#"<Response><Pause length="1"/><Hangup/></Response>"#),
        )
        .route(
            "/wait",
            answers(r#"<Response><Pause length="5"/><Hangup/></Response>"#),
        )
        .route("/status", records())
        .route("/amd", records());
    App::serve(ip, router).await
}

fn place(server: &Server, app: &App, path: &str, extra: &[(&str, &str)]) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("To", "+15551234")
        .append_pair("From", "+15550001")
        .append_pair("Url", &format!("{}{path}", app.base))
        .append_pair("StatusCallback", &format!("{}/status", app.base))
        .append_pair("StatusCallbackEvent", "answered completed")
        .extend_pairs(extra)
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

#[test]
fn a_voicemail_greeting_and_its_beep_is_machine_end_beep_before_the_twiml() {
    let net = Arc::new(Net::new(113));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = Server::start(&net, &net.two_trunks(&numbers_config(&app.base, &[])));
    let phone = UdpSocket::bind(format!("{}:0", net.ip(5))).unwrap();
    let (_callee, media) = callee_telling_media(&net, &phone);
    let greeting = espeak(GREETING);
    let sid = place(
        &server,
        &app,
        "/voice",
        &[("MachineDetection", "DetectMessageEnd")],
    );
    let to = media();
    // The greeting, a short pause, the beep, then quiet.
    let mut audio = tone::silence(300);
    audio.extend(&greeting);
    audio.extend(tone::silence(400));
    let beep_at = audio.len() as u64 / 8;
    audio.extend(tone::sines(&[1000.0], 8000.0, 600));
    audio.extend(tone::silence(1000));
    send_audio(&phone, to, &audio, 1);

    let voice = app.hits_to("/voice", 1, Duration::from_secs(10));
    let voice = &voice[0];
    assert!(voice.signed_with(TOKEN));
    assert_eq!(voice.param("CallSid"), Some(sid.as_str()));
    assert_eq!(
        voice.param("AnsweredBy"),
        Some("machine_end_beep"),
        "{}",
        server.log()
    );
    // The verdict came with the beep, not at the greeting's start nor at the timeout. The
    // phone's audio starts as soon as it knows where to send, before its answer reaches the
    // server; the detector's time starts when its tap of the answered call does, which on a
    // loaded machine can be a few hundred ms later. So the verdict may seem to come a little
    // before the beep, but not before the greeting ended.
    let took: u64 = voice
        .param("MachineDetectionDuration")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (beep_at - 400..beep_at + 1000).contains(&took),
        "decided after {took} ms, the beep began at {beep_at} ms\n{}",
        server.log()
    );
    // The completed status callback says it too.
    let status = app.hits_to("/status", 2, Duration::from_secs(10));
    let completed = status
        .iter()
        .find(|h| h.param("CallStatus") == Some("completed"))
        .expect("completed");
    assert!(completed.signed_with(TOKEN));
    assert_eq!(completed.param("AnsweredBy"), Some("machine_end_beep"));
}

#[test]
fn a_short_hello_is_human_reported_to_the_async_callback_while_the_twiml_runs() {
    let net = Arc::new(Net::new(114));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = Server::start(&net, &net.two_trunks(&numbers_config(&app.base, &[])));
    let phone = UdpSocket::bind(format!("{}:0", net.ip(5))).unwrap();
    let (_callee, media) = callee_telling_media(&net, &phone);
    let hello = piper("Hello?");
    let sid = place(
        &server,
        &app,
        "/wait",
        &[
            ("MachineDetection", "Enable"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", &format!("{}/amd", app.base)),
        ],
    );
    let to = media();
    // The TwiML is fetched at once, before anyone spoke.
    let voice = app.hits_to("/wait", 1, Duration::from_secs(5));
    assert_eq!(voice[0].param("AnsweredBy"), Some("unknown"));
    let mut audio = tone::silence(200);
    audio.extend(&hello);
    audio.extend(tone::silence(1600));
    send_audio(&phone, to, &audio, 1);
    let amd = app.hits_to("/amd", 1, Duration::from_secs(10));
    let amd = &amd[0];
    assert!(amd.signed_with(TOKEN));
    assert_eq!(amd.param("CallSid"), Some(sid.as_str()));
    assert_eq!(amd.param("AnsweredBy"), Some("human"), "{}", server.log());
    let took: u64 = amd
        .param("MachineDetectionDuration")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1000..4000).contains(&took), "{took} ms");
}

/// A conference participant created with `MachineDetection` and `AmdStatusCallback` joins the
/// room at once (detection does not hold it), and the verdict on the callee's "Hello?" goes to
/// `AmdStatusCallback`, signed, with the participant's call.
#[test]
fn a_participants_verdict_goes_to_its_amd_status_callback_while_it_is_in_the_room() {
    let net = Arc::new(Net::new(84));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = Server::start(&net, &net.two_trunks(&numbers_config(&app.base, &[])));
    let phone = UdpSocket::bind(format!("{}:0", net.ip(5))).unwrap();
    let (_callee, media) = callee_telling_media(&net, &phone);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("To", "+15551234")
        .append_pair("From", "+15550001")
        .append_pair("MachineDetection", "Enable")
        .append_pair("AmdStatusCallback", &format!("{}/amd", app.base))
        .append_pair("AmdStatusCallbackMethod", "POST")
        // A call's parameter the Participants API does not take: warned of (21263).
        .append_pair("AsyncAmd", "false")
        .finish();
    let conferences = format!("/2010-04-01/Accounts/{ACCOUNT}/Conferences");
    let (status, answer) = server.http(
        "POST",
        &format!("{conferences}/standup/Participants.json"),
        Some((ACCOUNT, TOKEN)),
        &body,
    );
    assert_eq!(status, 201, "{answer}");
    let call = json(&answer)["call_sid"].as_str().unwrap().to_owned();
    let to = media();
    // In the room before anyone spoke (before any verdict).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let room = loop {
        let (_, listed) = server.http(
            "GET",
            &format!("{conferences}.json?FriendlyName=standup"),
            Some((ACCOUNT, TOKEN)),
            "",
        );
        if let Some(sid) = json(&listed)["conferences"][0]["sid"].as_str() {
            break sid.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "{listed}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, seated) = server.http(
        "GET",
        &format!("{conferences}/{room}/Participants.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(
        json(&seated)["participants"][0]["call_sid"],
        call.as_str(),
        "{seated}"
    );
    let early = app.hits.lock().unwrap().iter().any(|h| h.path == "/amd");
    assert!(!early, "a verdict before anyone spoke");

    let mut audio = tone::silence(200);
    audio.extend(&piper("Hello?"));
    audio.extend(tone::silence(1600));
    send_audio(&phone, to, &audio, 1);
    let amd = app.hits_to("/amd", 1, Duration::from_secs(10));
    let amd = &amd[0];
    assert!(amd.signed_with(TOKEN));
    assert_eq!(amd.param("CallSid"), Some(call.as_str()));
    assert_eq!(amd.param("AnsweredBy"), Some("human"), "{}", server.log());
    assert!(amd.param("MachineDetectionDuration").is_some());
    let (_, notices) = server.http(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}/Notifications.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    let warned = (json(&notices)["notifications"].as_array().unwrap().iter())
        .any(|n| n["error_code"] == "21263" && n["log"] == "1");
    assert!(warned, "{notices}");

    // The call's own AsyncAmd parameters are not the Participants API's: a bad method is
    // named as the participant's parameter.
    let bad = format!("{body}&AmdStatusCallbackMethod=PUT");
    let (status, answer) = server.http(
        "POST",
        &format!("{conferences}/standup/Participants.json"),
        Some((ACCOUNT, TOKEN)),
        &bad.replace("AmdStatusCallbackMethod=POST&", ""),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("AmdStatusCallbackMethod"), "{answer}");
}
