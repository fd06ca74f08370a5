//! A number driven by TwiML, end to end against the real binary: SIPp calls in on a trunk,
//! Switchboard fetches the number's voice URL from an application on loopback (which checks
//! every request's X-Twilio-Signature), speaks, gathers the digits the phone sends as RFC 4733,
//! follows the action and a GET redirect, plays a WAV fetched by a relative URL, hangs up, and
//! posts the status callback. A second number `<Dial>`s a trunk number, bridges the callee and
//! reports the dial to its action.

use crate::common;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use common::voice_app::*;
use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_media::{FRAME, Law, rtp, tone};

const NUMBER: &str = "+17775550100";

async fn start_app(ip: &str) -> App {
    let router = Router::new()
        .route(
            "/voice",
            answers(r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Gather numDigits="2" action="/gathered" timeout="6">
    <Say voice="Polly.Joanna">Please enter your two digit code.</Say>
  </Gather>
  <Say>We did not receive any input. Goodbye.</Say>
</Response>"#),
        )
        .route(
            "/gathered",
            answers(r#"<Response><Play>tone.wav</Play><Redirect method="GET">/bye</Redirect></Response>"#),
        )
        .route(
            "/bye",
            get(|State(app): State<App>, uri: Uri, RawQuery(q): RawQuery, h: HeaderMap| async move {
                app.hit("GET", &uri, q, &h, "");
                twiml(r#"<Response><Say voice="alice">Goodbye.</Say><Hangup/></Response>"#)
            }),
        )
        .route(
            "/dial",
            answers(r#"<Response><Dial action="/dialed" timeout="10" record="record-from-answer-dual" recordingStatusCallback="/status"><Number statusCallback="/status" statusCallbackEvent="initiated ringing answered completed">+15551234</Number></Dial><Say>Not reached.</Say></Response>"#),
        )
        .route(
            "/dialed",
            answers("<Response><Hangup/></Response>"),
        )
        .route(
            "/dial-client",
            answers(r#"<Response><Dial action="/dialed" timeout="10"><Client>alice</Client></Dial></Response>"#),
        )
        .route(
            // carrier-b of the test that dials it (net 62), by its address.
            "/dial-sip",
            answers(r#"<Response><Dial action="/dialed" timeout="10"><Sip>sip:+15551234@127.0.62.3:5060</Sip></Dial></Response>"#),
        )
        .route(
            "/dial-sip-auth",
            answers(r#"<Response><Dial action="/dialed" timeout="10" timeLimit="2"><Sip username="sbuser" password="sbpass">sip:+15551234@127.0.66.3:5060</Sip></Dial></Response>"#),
        )
        .route(
            "/voicemail",
            answers(r##"<Response><Say>Leave a message after the beep.</Say><Record maxLength="8" timeout="3" finishOnKey="#" action="/recorded" recordingStatusCallback="/status"/></Response>"##),
        )
        .route(
            "/recorded",
            answers("<Response><Hangup/></Response>"),
        )
        .route(
            "/brief",
            answers("<Response><Say>One moment.</Say><Hangup/></Response>"),
        )
        .route(
            "/broken",
            answers("<Response><Dance/></Response>"),
        )
        .route(
            "/down",
            post(|State(app): State<App>, uri: Uri, h: HeaderMap, body: String| async move {
                app.hit("POST", &uri, None, &h, &body);
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            }),
        )
        .route(
            "/flaky-status",
            post(|State(app): State<App>, uri: Uri, h: HeaderMap, body: String| async move {
                use std::sync::atomic::Ordering;
                app.hit("POST", &uri, None, &h, &body);
                let failing = app
                    .flaky
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }),
        )
        .route(
            "/status",
            post(|State(app): State<App>, uri: Uri, h: HeaderMap, body: String| async move {
                app.hit("POST", &uri, None, &h, &body);
                ""
            }),
        )
        .route(
            "/star",
            answers(r#"<Response><Dial hangupOnStar="true" ringTone="de" action="/after-star"><Number>+15551234</Number></Dial><Say>Not reached.</Say></Response>"#),
        )
        .route(
            "/after-star",
            answers("<Response><Play>/tone.wav</Play><Hangup/></Response>"),
        )
        .route(
            "/background",
            answers(r#"<Response><Start><Recording name="bg" channels="dual" recordingStatusCallback="/status"/></Start><Play>/tone.wav</Play><Pause length="4"/><Stop><Recording name="bg"/></Stop><Hangup/></Response>"#),
        )
        .route(
            "/echo",
            answers(r#"<Response><Play>/tone.wav</Play><Echo timeout="5"/><Play>/tone.wav</Play><Denoise>on</Denoise><Echo timeout="5"/><Hangup/></Response>"#),
        )
        .route(
            "/tone.wav",
            get(|| async { ([("content-type", "audio/wav"), ("etag", "\"t1\"")], wav_1khz()) }),
        )
        ;
    App::serve(ip, router).await
}

#[test]
fn an_inbound_call_is_driven_by_its_numbers_twiml() {
    let net = Arc::new(Net::new(48));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(
            NUMBER,
            "voice_url = \"{base}/voice\"\nstatus_callback = \"{base}/status\"",
        )],
    ));
    let server = Server::start(&net, &config);

    let (phone, caller) = call_with_phone(&net, &server, NUMBER);

    // The prompt: speech, a second or more of it.
    let (speech, endpoint) = listen(&phone, Duration::from_millis(800), Duration::from_secs(10));
    let endpoint = endpoint.expect("the prompt's audio");
    assert!(speech.len() > 8000, "{} samples of prompt", speech.len());
    let loud = speech
        .chunks(FRAME)
        .filter(|f| f.iter().any(|s| s.abs() > 1000))
        .count();
    assert!(loud * 3 > speech.len() / FRAME, "speech, not silence");

    // The caller keys 4, 2.
    let mut seq = 1;
    send_rfc4733(&phone, endpoint, 4, &mut seq, 10_000);
    send_rfc4733(&phone, endpoint, 2, &mut seq, 14_000);

    // The tone from tone.wav (resolved against /gathered), then "Goodbye.".
    let (after, _) = listen(&phone, Duration::from_millis(1500), Duration::from_secs(10));
    assert!(
        after.len() > 4800,
        "{} samples after the digits",
        after.len()
    );
    let share = tone::share_at(&after[800..4000], 1000.0);
    assert!(share > 0.9, "the WAV's 1 kHz: {share}");

    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    // The application saw four signed requests, in order, with Twilio's parameters.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.hits.lock().unwrap().len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let hits = app.hits.lock().unwrap().clone();
    let paths: Vec<(&str, &str)> = hits
        .iter()
        .map(|h| (h.method.as_str(), h.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("POST", "/voice"),
            ("POST", "/gathered"),
            ("GET", "/bye"),
            ("POST", "/status")
        ]
    );
    assert!(
        hits.iter()
            .all(|h| h.signed_with(TOKEN) && h.signalwire_signature.is_none()),
        "every request is signed: {hits:#?}"
    );
    let param = |h: &Hit, k: &str| {
        h.param(k)
            .unwrap_or_else(|| panic!("{k} missing from {}", h.path))
            .to_owned()
    };
    let sid = param(&hits[0], "CallSid");
    assert!(sid.starts_with("CA") && sid.len() == 34);
    for (k, v) in [
        ("AccountSid", ACCOUNT),
        ("From", "+15550001"),
        ("To", NUMBER),
        ("Caller", "+15550001"),
        ("Called", NUMBER),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
        ("CallStatus", "ringing"),
        ("FromCity", ""),
    ] {
        assert_eq!(param(&hits[0], k), v, "{k}");
    }
    assert_eq!(param(&hits[1], "Digits"), "42");
    assert_eq!(param(&hits[1], "FinishedOnKey"), "");
    assert_eq!(param(&hits[1], "CallStatus"), "in-progress");
    assert_eq!(param(&hits[2], "CallSid"), sid);
    assert_eq!(param(&hits[3], "CallStatus"), "completed");
    assert_eq!(param(&hits[3], "CallbackSource"), "call-progress-events");
    assert!(param(&hits[3], "Timestamp").ends_with(" +0000"));

    let calls = server.ended_calls(1);
    assert_eq!(calls[0]["status"], "completed");
    assert_eq!(calls[0]["id"], sid.as_str());
}

#[test]
fn dial_bridges_a_routed_number_and_reports_to_the_action() {
    const DIALER: &str = "+17775550200";
    let net = Arc::new(Net::new(49));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(DIALER, "voice_url = \"{base}/dial\"")],
    ));
    let server = Server::start(&net, &config);
    // The callee answers and hangs up after a second.
    let uas = scenario(&net, "uas_hangup.xml", &[]);
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    call_until_bye(&net, &server, DIALER, 30);
    assert!(
        callee.finished_ok(Duration::from_secs(5)),
        "{}",
        server.log()
    );

    // The dial's recording reports through the outbox, after the action.
    let deadline = Instant::now() + Duration::from_secs(10);
    // The leg's own status callbacks too: initiated, answered, completed (the callee answers
    // without ringing first).
    let hits = loop {
        let hits = app.hits.lock().unwrap().clone();
        if hits.len() >= 6 {
            break hits;
        }
        assert!(Instant::now() < deadline, "{hits:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (leg, hits): (Vec<Hit>, Vec<Hit>) = hits
        .into_iter()
        .partition(|h| h.param("ParentCallSid").is_some());
    let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/dial", "/dialed", "/status"]);
    assert!(hits.iter().chain(&leg).all(|h| h.signed_with(TOKEN)));
    let param = |k: &str| hits[1].param(k).unwrap_or_default().to_owned();
    assert_eq!(param("DialCallStatus"), "completed");
    assert_eq!(param("DialBridged"), "true");
    let child = param("DialCallSid");
    assert!(child.starts_with("CA") && child.len() == 34, "{child}");
    assert!(param("DialCallDuration").parse::<u64>().unwrap() <= 3);
    let recording = param("RecordingSid");
    assert!(recording.starts_with("RE"), "{recording}");
    assert!(param("RecordingUrl").ends_with(&format!("/Recordings/{recording}")));
    let saved = |k: &str| hits[2].param(k).unwrap_or_default().to_owned();
    assert_eq!(saved("RecordingSid"), recording);
    assert_eq!(saved("RecordingSource"), "DialVerb");
    assert_eq!(saved("RecordingChannels"), "2");
    assert_eq!(saved("RecordingStatus"), "completed");
    let leg_param = |i: usize, k: &str| leg[i].param(k).unwrap_or_default().to_owned();
    let statuses: Vec<String> = (0..leg.len()).map(|i| leg_param(i, "CallStatus")).collect();
    assert_eq!(statuses, ["initiated", "in-progress", "completed"]);
    for i in 0..leg.len() {
        assert_eq!(leg_param(i, "CallSid"), child);
        assert_eq!(leg_param(i, "Direction"), "outbound-dial");
        assert_eq!(leg_param(i, "To"), "+15551234");
        assert_eq!(leg_param(i, "SequenceNumber"), i.to_string());
        assert_eq!(
            leg_param(i, "ParentCallSid"),
            hits[0].param("CallSid").unwrap()
        );
    }
    assert!(leg_param(2, "CallDuration").parse::<u64>().unwrap() <= 3);
    assert_eq!(leg_param(2, "SipResponseCode"), "200");

    // Two calls in the CDRs: the inbound parent and its outbound-dial child.
    let calls = server.ended_calls(2);
    let by_id = |id: &str| calls.iter().find(|c| c["id"] == id).cloned().unwrap();
    let child_row = by_id(&child);
    assert_eq!(child_row["direction"], "outbound-dial");
    assert_eq!(child_row["to"], "+15551234");
    let parent = child_row["parent_id"].as_str().unwrap().to_owned();
    assert_eq!(by_id(&parent)["direction"], "inbound");
    assert_eq!(by_id(&parent)["status"], "completed");
}

/// `<Dial hangupOnStar>`: the caller presses `*` while bridged: the dialed party is hung up
/// (its phone gets the BYE), and the caller goes on with the action (`DialCallStatus`
/// `completed`), whose WAV it hears. An attribute not served here (`ringTone`) leaves a
/// schema warning among the call's notifications.
#[test]
fn dial_hangup_on_star_hangs_up_the_dialed_party_and_the_caller_goes_on() {
    const STAR: &str = "+17775550210";
    let net = Arc::new(Net::new(213));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(STAR, "voice_url = \"{base}/star\"")],
    ));
    let server = Server::start(&net, &config);
    let (callee, callee_sipp) = common::sdk_app::callee_phone(&net, 7);
    let (phone, caller) = call_with_phone(&net, &server, STAR);
    // Bridged: what the phone says reaches the callee.
    let (_, endpoint) = listen(&phone, Duration::from_millis(300), Duration::from_secs(10));
    let endpoint = endpoint.expect("Switchboard's media for the caller");
    let spoken = tone::sines(&[700.0], 8000.0, 1000);
    send_audio(&phone, endpoint, &spoken, 10);
    let (heard, _) = listen(&callee, Duration::from_millis(300), Duration::from_secs(5));
    assert!(
        common::sdk_app::windows_of(&heard, 700.0) >= 7,
        "the callee did not hear the caller"
    );
    // The caller presses `*`: the callee's leg ends, the caller's goes on with the action.
    let mut seq = 100;
    send_rfc4733(&phone, endpoint, 10, &mut seq, 160 * 100);
    assert!(
        callee_sipp.finished_ok(Duration::from_secs(10)),
        "the callee got no BYE\n{}",
        server.log()
    );
    let after = app.hits_to("/after-star", 1, Duration::from_secs(10));
    assert_eq!(after[0].param("DialCallStatus"), Some("completed"));
    assert_eq!(after[0].param("DialBridged"), Some("true"));
    assert!(
        after[0]
            .param("DialCallSid")
            .is_some_and(|s| s.starts_with("CA"))
    );
    let (wav, _) = listen(&phone, Duration::from_millis(300), Duration::from_secs(10));
    assert!(
        common::sdk_app::windows_of(&wav, 1000.0) >= 4,
        "the caller did not hear the action's WAV"
    );
    // `ringTone` is not served here: the document ran, and the call's notifications carry
    // Twilio's schema warning for it (log level 1, a warning).
    let call = after[0].param("CallSid").unwrap().to_owned();
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}/Notifications.json");
    let (_, notes) = server.http("GET", &path, Some((ACCOUNT, TOKEN)), "");
    let notes: serde_json::Value = serde_json::from_str(&notes).unwrap();
    let warned: Vec<&serde_json::Value> = (notes["notifications"].as_array().unwrap().iter())
        .filter(|n| n["error_code"] == "12200")
        .collect();
    assert_eq!(warned.len(), 1, "{notes}");
    assert_eq!(warned[0]["log"], "1", "{notes}");
    assert!(
        warned[0]["message_text"]
            .as_str()
            .unwrap()
            .contains("Dial+ringTone"),
        "{notes}"
    );
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}

/// `<Start><Recording>`: the call is recorded in the background while the document goes on
/// (the WAV it plays, the caller's tone during the pause), `<Stop><Recording>` by its name
/// ends it, and it is the REST API's recording: two channels, the caller in one and what the
/// caller heard in the other, reported to its `recordingStatusCallback` as
/// `StartCallRecordingTwiML`.
#[test]
fn start_recording_records_in_the_background_until_stop() {
    const BACKGROUND: &str = "+17775550220";
    let net = Arc::new(Net::new(214));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(BACKGROUND, "voice_url = \"{base}/background\"")],
    ));
    let public_url = format!("http://{}:8080", net.ip(1));
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_HTTP__PUBLIC_URL", &public_url)],
    );
    let (phone, caller) = call_with_phone(&net, &server, BACKGROUND);
    // The WAV plays while the recording runs; then the caller speaks (440 Hz) in the pause.
    let (heard, endpoint) = listen(&phone, Duration::from_millis(600), Duration::from_secs(15));
    assert!(common::sdk_app::windows_of(&heard, 1000.0) >= 4);
    let endpoint = endpoint.expect("the WAV");
    send_audio(&phone, endpoint, &tone::sines(&[440.0], 8000.0, 1500), 100);
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);

    let status = app.hits_to("/status", 1, Duration::from_secs(15));
    let got = |k: &str| status[0].param(k).unwrap_or_default().to_owned();
    assert!(status[0].signed_with(TOKEN));
    assert_eq!(got("RecordingStatus"), "completed");
    assert_eq!(got("RecordingSource"), "StartCallRecordingTwiML");
    assert_eq!(got("RecordingChannels"), "2");
    assert_eq!(got("RecordingTrack"), "both");
    let seconds: u64 = got("RecordingDuration").parse().unwrap();
    assert!((3..=7).contains(&seconds), "{seconds} s recorded");
    let url = got("RecordingUrl");
    let (status, wav) = get_url(&rt, url, false);
    assert_eq!(status, 200);
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let channel = |n: usize| -> Vec<i16> { samples.iter().skip(n).step_by(2).copied().collect() };
    let (first, second) = (channel(0), channel(1));
    let windows = |c: &[i16], f: f32| common::sdk_app::windows_of(c, f);
    // The caller's tone in one channel, the WAV the caller heard in the other.
    let caller_first = windows(&first, 440.0) >= 10 && windows(&second, 1000.0) >= 4;
    let caller_second = windows(&second, 440.0) >= 10 && windows(&first, 1000.0) >= 4;
    assert!(
        caller_first || caller_second,
        "440 Hz: {} / {} windows, 1000 Hz: {} / {}",
        windows(&first, 440.0),
        windows(&second, 440.0),
        windows(&first, 1000.0),
        windows(&second, 1000.0)
    );
}

/// `<Echo>`: what the caller says comes back to them (a tone, and noise as loud as it was
/// sent); after `<Denoise>on</Denoise>` the same noise comes back suppressed. Each echo ends at
/// its `timeout` and the document goes on (the WAV between them, the hang-up after).
#[test]
fn echo_plays_the_caller_back_and_denoise_suppresses_its_noise() {
    const ECHO: &str = "+17775550230";
    let net = Arc::new(Net::new(215));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(ECHO, "voice_url = \"{base}/echo\"")],
    ));
    let server = Server::start(&net, &config);
    let (phone, caller) = call_with_phone(&net, &server, ECHO);
    // White noise, the same every run.
    let mut x: u32 = 12345;
    let noise: Vec<i16> = (0..8000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 16) as i16 % 4000
        })
        .collect();
    let rms = |s: &[i16]| {
        (s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    };
    let wav = || listen(&phone, Duration::from_millis(600), Duration::from_secs(15));

    let (heard, endpoint) = wav();
    assert!(
        common::sdk_app::windows_of(&heard, 1000.0) >= 4,
        "the first WAV"
    );
    let endpoint = endpoint.expect("the WAV");
    let mut said = tone::sines(&[700.0], 8000.0, 1000);
    said.extend_from_slice(&noise);
    send_audio(&phone, endpoint, &said, 100);
    let (back, _) = listen(&phone, Duration::from_millis(500), Duration::from_secs(4));
    assert!(
        common::sdk_app::windows_of(&back, 700.0) >= 7,
        "the caller's tone did not come back"
    );
    let plain = rms(&back[back.len().saturating_sub(8000)..]);
    assert!(
        plain > 0.5 * rms(&noise),
        "the noise came back at {plain:.0} of {:.0}",
        rms(&noise)
    );

    // The echo's timeout ends it: the WAV, then noise suppression and the second echo.
    let (heard, _) = wav();
    assert!(
        common::sdk_app::windows_of(&heard, 1000.0) >= 4,
        "the second WAV"
    );
    send_audio(&phone, endpoint, &noise, 200);
    let (back, _) = listen(&phone, Duration::from_millis(500), Duration::from_secs(4));
    // It came back (a second of packets), and quiet in its second half: the suppressor has
    // learnt the noise by then.
    assert!(back.len() >= 7000, "{} samples came back", back.len());
    let suppressed = rms(&back[back.len() / 2..]);
    assert!(
        suppressed < 0.25 * plain,
        "suppressed noise came back at {suppressed:.0}, unsuppressed at {plain:.0}"
    );
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}

#[test]
fn dial_reaches_a_registered_client_and_a_sip_uri() {
    const TO_CLIENT: &str = "+17775550300";
    const TO_SIP: &str = "+17775550301";
    let net = Arc::new(Net::new(62));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let numbers = numbers_config(
        &app.base,
        &[
            (TO_CLIENT, "voice_url = \"{base}/dial-client\""),
            (TO_SIP, "voice_url = \"{base}/dial-sip\""),
        ],
    );
    let config = net.two_trunks(&format!(
        "[[users]]\nusername = \"alice\"\npassword = \"s3cret\"\naccount_sid = \"{ACCOUNT}\"\n{numbers}"
    ));
    let server = Server::start(&net, &config);
    // alice's phone registers, then answers (and hangs up after a second) on port 5062.
    let uas = scenario(&net, "uas_hangup.xml", &[]);
    let phone = SippServer::start(&net, &uas, &net.ip(4), 5062, &["-m", "1"]);
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
        Duration::from_secs(10),
    );
    assert!(reg.status.success(), "{reg:?}\n{}", server.log());
    // The SIP URI is carrier-b's address: no route is involved.
    let far_end = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);

    call_until_bye(&net, &server, TO_CLIENT, 30);
    assert!(
        phone.finished_ok(Duration::from_secs(5)),
        "{}",
        server.log()
    );
    call_until_bye(&net, &server, TO_SIP, 30);
    assert!(
        far_end.finished_ok(Duration::from_secs(5)),
        "{}",
        server.log()
    );

    let hits = app.hits.lock().unwrap().clone();
    let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/dial-client", "/dialed", "/dial-sip", "/dialed"]);
    assert!(hits.iter().all(|h| h.signed_with(TOKEN)));
    for dialed in [&hits[1], &hits[3]] {
        assert_eq!(dialed.param("DialCallStatus"), Some("completed"));
        assert_eq!(dialed.param("DialBridged"), Some("true"));
    }
}

/// `<Dial><Sip username password>`, and a REST call to a SIP URI with `SipAuthUsername` and
/// `SipAuthPassword`: the far end's digest challenge is answered with them (it takes a call
/// only with the right answer), and the calls complete.
#[test]
fn dial_sip_answers_the_far_ends_challenge_with_its_credentials() {
    const TO_SIP: &str = "+17775550302";
    let net = Arc::new(Net::new(66));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let numbers = numbers_config(
        &app.base,
        &[(TO_SIP, "voice_url = \"{base}/dial-sip-auth\"")],
    );
    let server = Server::start(&net, &net.two_trunks(&numbers));
    let far_end = SippServer::start(&net, &challenging_uas(&net), &net.ip(3), 5060, &["-m", "2"]);
    call_until_bye(&net, &server, TO_SIP, 30);
    let hits = app.hits.lock().unwrap().clone();
    let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/dial-sip-auth", "/dialed"]);
    assert_eq!(hits[1].param("DialCallStatus"), Some("completed"));
    let twiml = "%3CResponse%3E%3CPause%20length%3D%221%22%2F%3E%3C%2FResponse%3E";
    let to = "sip%3A%2B15551234%40127.0.66.3%3A5060";
    let (status, body) = server.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
        Some((ACCOUNT, TOKEN)),
        &format!(
            "To={to}&From=%2B15550001&Twiml={twiml}&SipAuthUsername=sbuser&SipAuthPassword=sbpass"
        ),
    );
    assert_eq!(status, 201, "{body}");
    assert!(
        far_end.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let rest = server.ended_calls(3);
    assert!(rest.iter().all(|c| c["status"] == "completed"), "{rest:#?}");
    // The REST call's record shows the SIP URI it dialed as its To, as Twilio's does.
    let dialed = "sip:+15551234@127.0.66.3:5060";
    assert!(rest.iter().any(|c| c["to"] == dialed), "{rest:#?}");
}

/// The application of tests/compat/twilio_webhook_app.py, run with the official `twilio` SDK:
/// it validates every request with `RequestValidator` and prints what it saw.
struct SdkApp {
    child: std::process::Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<String>,
}

impl SdkApp {
    /// `None` when the SDK's venv is not set up (scripts/test.sh sets it up, and requires it).
    fn start(ip: &str) -> Option<Self> {
        let python = compat_env("SWITCHBOARD_TWILIO_PYTHON")?;
        use std::io::BufRead;
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/compat/twilio_webhook_app.py"
        );
        let mut child = std::process::Command::new(python)
            .args([script, TOKEN, ip])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map(owned)
            .expect("start the SDK application");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the app listens");
        let port = first.strip_prefix("listening ").unwrap().parse().unwrap();
        Some(Self { child, port, lines })
    }
}

impl Drop for SdkApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `url` (with the account's credentials when `auth`): the status and the body.
fn get_url(rt: &tokio::runtime::Runtime, url: String, auth: bool) -> (u16, Vec<u8>) {
    rt.block_on(async move {
        let mut r = switchboard_control::infra::egress::Clients::default()
            .for_url(&url, Default::default())
            .unwrap()
            .get(url);
        if auth {
            r = r.basic_auth(ACCOUNT, Some(TOKEN));
        }
        let response = r.send().await.unwrap();
        (
            response.status().as_u16(),
            response.bytes().await.unwrap().to_vec(),
        )
    })
}

#[test]
fn twilios_own_request_validator_accepts_every_webhook() {
    const SDK_NUMBER: &str = "+17775550300";
    let net = Net::new(50);
    let Some(app) = SdkApp::start(&net.ip(9)) else {
        return;
    };
    let base = format!("http://{}:{}", net.ip(9), app.port);
    let config = net.two_trunks(&numbers_config(
        &base,
        &[(
            SDK_NUMBER,
            "voice_url = \"{base}/voice\"\nstatus_callback = \"{base}/status?leg=1\"",
        )],
    ));
    let server = Server::start(&net, &config);
    call_until_bye(&net, &server, SDK_NUMBER, 30);

    // The voice URL (POST), the redirect (GET with a query), the status callback (POST to a
    // URL with a query): all validated by the SDK.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = app
            .lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("requests seen: {seen:?}\n{}", server.log()));
        seen.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    let summary: Vec<(String, String, bool)> = seen
        .iter()
        .map(|v| {
            (
                v["method"].as_str().unwrap().to_owned(),
                v["path"].as_str().unwrap().to_owned(),
                v["valid"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("POST".into(), "/voice".into(), true),
            ("GET".into(), "/bye".into(), true),
            ("POST".into(), "/status".into(), true),
        ]
    );
    assert_eq!(seen[1]["params"]["step"], "2");
    assert_eq!(seen[1]["params"]["CallStatus"], "in-progress");
    assert_eq!(seen[2]["params"]["CallStatus"], "completed");
}

#[test]
fn record_takes_a_message_the_api_serves_as_wav_and_mp3() {
    const VOICEMAIL: &str = "+17775550400";
    let net = Arc::new(Net::new(52));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(VOICEMAIL, "voice_url = \"{base}/voicemail\"")],
    ));
    let public_url = format!("http://{}:8080", net.ip(1));
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_HTTP__PUBLIC_URL", &public_url)],
    );
    let (phone, caller) = call_with_phone(&net, &server, VOICEMAIL);

    // The prompt and the beep, then the caller speaks (a 440 Hz tone) and presses #.
    let (_, endpoint) = listen(&phone, Duration::from_millis(600), Duration::from_secs(15));
    let endpoint = endpoint.expect("the prompt");
    let tone = tone::sines(&[440.0], 8000.0, 1500);
    for (i, chunk) in tone.chunks(FRAME).enumerate() {
        let mut p = vec![0u8; 12 + chunk.len()];
        rtp::write_header(&mut p, 0, i == 0, 100 + i as u16, i as u32 * 160, 0x5eed);
        Law::Ulaw.encode(chunk, &mut p[12..]);
        phone.send_to(&p, endpoint).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut seq = 500;
    send_rfc4733(&phone, endpoint, 11, &mut seq, 300_000);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    let hits = app.hits.lock().unwrap().clone();
    let recorded = hits
        .iter()
        .find(|h| h.path == "/recorded")
        .expect("the action");
    assert!(recorded.signed_with(TOKEN));
    let param = |k: &str| recorded.param(k).unwrap_or_default().to_owned();
    assert_eq!(param("Digits"), "#");
    let seconds: u64 = param("RecordingDuration").parse().unwrap();
    assert!((1..=2).contains(&seconds), "{seconds} s recorded");
    let sid = param("RecordingSid");
    let url = param("RecordingUrl");
    assert_eq!(
        url,
        format!("{public_url}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}")
    );

    // The media, as WAV (no suffix) and MP3, without credentials; the metadata with them.
    let get = |u: String, auth: bool| get_url(&rt, u, auth);
    let (status, wav) = get(url.clone(), false);
    assert_eq!(status, 200);
    let samples: Vec<i16> = wav[44..]
        .chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let share = tone::share_at(&samples, 440.0);
    assert!(share > 0.6, "the caller's tone in the recording: {share}");
    let (status, mp3) = get(format!("{url}.mp3"), false);
    assert_eq!(status, 200);
    let decoded = switchboard_media::decode::decode_to_8k(mp3, Some("mp3")).unwrap();
    assert!(tone::share_at(&decoded, 440.0) > 0.5);
    let (status, _) = get(format!("{url}.json"), false);
    assert_eq!(status, 401, "metadata needs credentials");
    let (status, body) = get(format!("{url}.json"), true);
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta["sid"], sid.as_str());
    assert_eq!(meta["status"], "completed");
    assert_eq!(meta["channels"], 1);
    assert_eq!(meta["source"], "RecordVerb");
    assert_eq!(meta["duration"], seconds.to_string());
    assert_eq!(meta["call_sid"], param("CallSid").as_str());

    // The recording status callback, through the outbox.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let hits = app.hits.lock().unwrap().clone();
        if let Some(h) = hits.into_iter().find(|h| h.path == "/status") {
            break h;
        }
        assert!(Instant::now() < deadline, "no recording status callback");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.signed_with(TOKEN));
    let got = |k: &str| status.param(k).unwrap_or_default().to_owned();
    assert_eq!(got("RecordingSid"), sid);
    assert_eq!(got("RecordingStatus"), "completed");
    assert_eq!(got("RecordingSource"), "RecordVerb");
    assert_eq!(got("RecordingChannels"), "1");
    assert_eq!(got("RecordingDuration"), seconds.to_string());
    assert_eq!(got("RecordingUrl"), url);
}

#[test]
fn a_signalwire_account_signs_with_its_signing_key_in_both_headers() {
    const SPACE_ACCOUNT: &str = "AC00112233445566778899aabbccddeeff";
    const SIGNING_KEY: &str = "PSK_switchboard_test";
    const NUMBER: &str = "+17775550500";
    let net = Arc::new(Net::new(53));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{SPACE_ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         signing_key = \"{SIGNING_KEY}\"\nproject_id = \"11111111-2222-3333-4444-555555555555\"\n\
         [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{SPACE_ACCOUNT}\"\n\
         voice_url = \"{base}/dial\"\n",
        base = app.base
    ));
    let server = Server::start(&net, &config);
    // /dial dials +15551234, where nobody answers within its 10 s, and reports to /dialed.
    call_until_bye(&net, &server, NUMBER, 60);
    let all = app.hits.lock().unwrap().clone();
    // The application's requests; the dialed leg's status callbacks come on the side.
    let hits: Vec<&Hit> = all
        .iter()
        .filter(|h| h.param("ParentCallSid").is_none())
        .collect();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    for h in &all {
        assert!(h.signed_with(SIGNING_KEY), "{h:#?}");
        assert!(!h.signed_with(TOKEN));
        assert_eq!(
            h.signalwire_signature.as_deref(),
            Some(h.twilio_signature.as_str())
        );
    }
    let status = hits[1]
        .params
        .iter()
        .find(|(k, _)| k == "DialCallStatus")
        .map(|(_, v)| v.as_str());
    assert_eq!(status, Some("no-answer"), "nobody at carrier-b");
}

/// Status callbacks go through the durable outbox: a failing endpoint gets the same signed
/// callback again (backoff 1 s, 2 s) until it answers 200, and a callback still undelivered when
/// the server is killed is delivered after it restarts.
#[test]
fn status_callbacks_are_retried_and_survive_a_restart() {
    const FLAKY: &str = "+17775550600";
    const LATE: &str = "+17775550700";
    let net = Arc::new(Net::new(54));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    // A port nobody listens on yet.
    let late_port = std::net::TcpListener::bind(format!("{}:0", net.ip(10)))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let late = format!(
        "voice_url = \"{{base}}/brief\"\nstatus_callback = \"http://{}:{late_port}/status\"",
        net.ip(10)
    );
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[
            (
                FLAKY,
                "voice_url = \"{base}/brief\"\nstatus_callback = \"{base}/flaky-status\"",
            ),
            (LATE, &late),
        ],
    ));
    let server = Server::start(&net, &config);
    call_until_bye(&net, &server, FLAKY, 30);
    let deadline = Instant::now() + Duration::from_secs(15);
    let statuses = loop {
        let hits: Vec<Hit> = app
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == "/flaky-status")
            .cloned()
            .collect();
        if hits.len() >= 3 || Instant::now() > deadline {
            break hits;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        statuses.len(),
        3,
        "two failures, then delivered: {statuses:#?}"
    );
    assert!(statuses.iter().all(|h| h.signed_with(TOKEN)));
    assert!(
        statuses.windows(2).all(|w| w[0].params == w[1].params),
        "the same callback each time"
    );

    // Undeliverable while the server runs; delivered after a kill -9 and a restart.
    let failed = "switchboard_webhook_attempts_total{outcome=\"failed\"}";
    let failed_before = server.metric(failed).unwrap_or(0.0);
    call_until_bye(&net, &server, LATE, 30);
    // Killed once an attempt of it failed (it is in the outbox, owed).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.metric(failed).unwrap_or(0.0) <= failed_before {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    let late = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(format!("{}:{late_port}", net.ip(10)))
            .await
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let tx = Arc::new(Mutex::new(tx));
        let router = Router::new().route(
            "/status",
            post(move |body: String| {
                let tx = tx.clone();
                async move {
                    let _ = tx.lock().unwrap().send(body);
                    ""
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        rx
    });
    let _server = Server::start(&net, &config);
    let body = late
        .recv_timeout(Duration::from_secs(20))
        .expect("the pending callback after the restart");
    let params = form(&body);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("CallStatus"), Some("completed"));
    assert_eq!(get("To"), Some(LATE));
    assert_eq!(get("CallbackSource"), Some("call-progress-events"));
}

/// Broken applications: TwiML that breaks the schema gets Twilio's apology and a hang-up; a
/// voice URL that fails sends Switchboard to the fallback URL, with ErrorCode and ErrorUrl.
#[test]
fn broken_twiml_apologises_and_a_failing_url_falls_back() {
    const BROKEN: &str = "+17775550800";
    const DOWN: &str = "+17775550900";
    let net = Arc::new(Net::new(56));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[
            (BROKEN, "voice_url = \"{base}/broken\""),
            (
                DOWN,
                "voice_url = \"{base}/down\"\nvoice_fallback_url = \"{base}/brief\"",
            ),
        ],
    ));
    let server = Server::start(&net, &config);

    // The apology is spoken (a few seconds of speech), then the call is hung up.
    let (phone, caller) = call_with_phone(&net, &server, BROKEN);
    let (speech, _) = listen(&phone, Duration::from_millis(800), Duration::from_secs(15));
    let seconds = speech.len() as f32 / 8000.0;
    assert!((2.0..8.0).contains(&seconds), "{seconds} s of apology");
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);

    // 503 from the voice URL: the fallback URL runs, told why.
    call_until_bye(&net, &server, DOWN, 30);
    let hits = app.hits.lock().unwrap().clone();
    let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/broken", "/down", "/brief"]);
    let fallback = &hits[2];
    assert_eq!(fallback.param("ErrorCode"), Some("11200"));
    assert_eq!(
        fallback.param("ErrorUrl"),
        Some(format!("{}/down", app.base).as_str())
    );
    assert!(fallback.signed_with(TOKEN));
}
