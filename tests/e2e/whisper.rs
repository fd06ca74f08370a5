//! `<Dial><Number url>` (Twilio's whisper, or call screening) against the real binary: a SIPp
//! caller on one trunk dials a number whose TwiML dials a SIPp callee on the other; once the
//! callee answers, the whisper document runs on the callee's leg while the caller keeps
//! hearing ringback. The callee hears the whisper and accepts with a digit (the caller is then
//! put through), or the whisper hangs up and the caller goes on with the `<Dial>`'s action.

use crate::common;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use common::voice_app::*;
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_media::{FRAME, Law, tone};

const SCREENED: &str = "+17775550230";
const DECLINED: &str = "+17775550231";

async fn start_app(ip: &str) -> App {
    let router = Router::new()
        .route(
            "/screened",
            answers(r#"<Response><Dial hangupOnStar="true" action="/dialed" timeout="10"><Number url="/whisper" statusCallback="/leg" statusCallbackEvent="answered completed">+15551234</Number></Dial></Response>"#),
        )
        .route(
            // The callee hears the tone and presses 1; without it, the call is refused.
            "/whisper",
            answers(r#"<Response><Gather numDigits="1" action="/accept" timeout="10"><Play>/tone.wav</Play></Gather><Hangup/></Response>"#),
        )
        .route(
            // Running out of verbs puts the callee through.
            "/accept",
            answers("<Response/>"),
        )
        .route(
            "/declined",
            answers(r#"<Response><Dial action="/dialed" timeout="10"><Number url="/decline" method="GET">+15551234</Number></Dial></Response>"#),
        )
        .route(
            "/decline",
            get(|State(app): State<App>, uri: Uri, RawQuery(q): RawQuery, h: HeaderMap| async move {
                app.hit("GET", &uri, q, &h, "");
                twiml("<Response><Say>Not now.</Say><Hangup/></Response>")
            }),
        )
        .route(
            "/dialed",
            answers("<Response><Play>/tone.wav</Play><Hangup/></Response>"),
        )
        .route(
            "/leg",
            post(|State(app): State<App>, uri: Uri, h: HeaderMap, body: String| async move {
                app.hit("POST", &uri, None, &h, &body);
                ""
            }),
        )
        .route(
            "/tone.wav",
            get(|| async { ([("content-type", "audio/wav")], wav_1khz()) }),
        );
    App::serve(ip, router).await
}

/// Audio on `sock` until `windows` 100 ms windows of `freq` were heard (or `max` passed), and
/// where it came from.
fn hear(sock: &UdpSocket, freq: f32, windows: usize, max: Duration) -> (Vec<i16>, SocketAddr) {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (mut audio, mut from) = (Vec::new(), None);
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    while start.elapsed() < max && common::sdk_app::windows_of(&audio, freq) < windows {
        let Ok((n, src)) = sock.recv_from(&mut buf) else {
            continue;
        };
        from = Some(src);
        let mut pcm = [0i16; FRAME];
        Law::Ulaw.decode(&buf[12..n], &mut pcm);
        audio.extend_from_slice(&pcm[..n - 12]);
    }
    (audio, from.expect("no audio"))
}

/// The callee hears the whisper (the caller hears ringback, not the whisper), presses 1, and
/// is put through: what the caller says reaches it. The whisper's requests are the leg's, as
/// Twilio makes them: its own CallSid, the parent's as ParentCallSid, Direction
/// `outbound-dial`, signed with the account's token. `*` then ends the bridge (hangupOnStar)
/// and the action hears of a bridged dial.
#[test]
fn a_whisper_runs_on_the_callee_who_accepts_with_a_digit_and_is_put_through() {
    let net = Arc::new(Net::new(217));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(SCREENED, "voice_url = \"{base}/screened\"")],
    ));
    let server = Server::start(&net, &config);
    let (callee, callee_sipp) = common::sdk_app::callee_phone(&net, 7);
    let (phone, caller) = call_with_phone(&net, &server, SCREENED);
    let ringing = {
        let phone = phone.try_clone().unwrap();
        std::thread::spawn(move || hear(&phone, 1000.0, 1, Duration::from_secs(4)))
    };
    // The callee answers and hears the whisper; the caller meanwhile hears ringback only.
    let (whisper, to_server) = hear(&callee, 1000.0, 4, Duration::from_secs(15));
    assert!(
        common::sdk_app::windows_of(&whisper, 1000.0) >= 4,
        "the callee did not hear the whisper\n{}",
        server.log()
    );
    let (ringback, caller_endpoint) = ringing.join().unwrap();
    assert!(
        tone::share_at(&ringback, 1000.0) < 0.05 && tone::share_at(&ringback, 440.0) > 0.2,
        "the caller heard the whisper, or no ringback"
    );
    let mut seq = 200;
    send_rfc4733(&callee, to_server, 1, &mut seq, 160 * 200);
    let accept = app.hits_to("/accept", 1, Duration::from_secs(10));
    assert_eq!(accept[0].param("Digits"), Some("1"));

    // Put through: the caller's 700 Hz reaches the callee.
    let spoken = tone::sines(&[700.0], 8000.0, 1000);
    let mut heard = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::sdk_app::windows_of(&heard, 700.0) < 7 && Instant::now() < deadline {
        send_audio(&phone, caller_endpoint, &spoken, 10);
        heard = listen(&callee, Duration::from_millis(300), Duration::from_secs(3)).0;
    }
    assert!(
        common::sdk_app::windows_of(&heard, 700.0) >= 7,
        "the callee did not hear the caller once put through"
    );

    // The whisper's requests are the leg's.
    let parent = app.hits_to("/screened", 1, Duration::ZERO)[0]
        .param("CallSid")
        .unwrap()
        .to_owned();
    let whispered = app.hits_to("/whisper", 1, Duration::ZERO);
    let leg = whispered[0].param("CallSid").unwrap().to_owned();
    assert!(leg.starts_with("CA") && leg != parent, "{leg}");
    assert_eq!(whispered[0].param("ParentCallSid"), Some(parent.as_str()));
    assert_eq!(whispered[0].param("Direction"), Some("outbound-dial"));
    assert_eq!(whispered[0].param("CallStatus"), Some("in-progress"));
    assert_eq!(whispered[0].param("To"), Some("+15551234"));
    assert!(whispered[0].signed_with(TOKEN));
    assert_eq!(accept[0].param("CallSid"), Some(leg.as_str()));
    assert!(accept[0].signed_with(TOKEN));

    // `*`: the callee's leg ends, the caller goes on with the action.
    send_rfc4733(&phone, caller_endpoint, 10, &mut seq, 160 * 400);
    assert!(
        callee_sipp.finished_ok(Duration::from_secs(10)),
        "the callee got no BYE\n{}",
        server.log()
    );
    let after = app.hits_to("/dialed", 1, Duration::from_secs(10));
    assert_eq!(after[0].param("DialCallStatus"), Some("completed"));
    assert_eq!(after[0].param("DialBridged"), Some("true"));
    assert_eq!(after[0].param("DialCallSid"), Some(leg.as_str()));
    // The leg's status callbacks went on while the whisper held its events.
    let statuses = app.hits_to("/leg", 2, Duration::from_secs(10));
    let seen: Vec<_> = statuses.iter().map(|h| h.param("CallStatus")).collect();
    assert_eq!(seen, [Some("in-progress"), Some("completed")]);
    assert!(statuses.iter().all(|h| h.param("CallSid") == Some(&leg)));
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}

/// A whisper (fetched with GET, as `method` asks) that hangs up refuses the call: the callee
/// gets a BYE, the caller is never put through and goes on with the action, whose tone it
/// hears; the action is told nobody was bridged.
#[test]
fn a_whisper_that_hangs_up_refuses_the_call_and_the_caller_goes_on() {
    let net = Arc::new(Net::new(218));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(DECLINED, "voice_url = \"{base}/declined\"")],
    ));
    let server = Server::start(&net, &config);
    let (_callee, callee_sipp) = common::sdk_app::callee_phone(&net, 7);
    let (phone, caller) = call_with_phone(&net, &server, DECLINED);
    assert!(
        callee_sipp.finished_ok(Duration::from_secs(15)),
        "the callee got no BYE\n{}",
        server.log()
    );
    let declined = app.hits_to("/decline", 1, Duration::from_secs(5));
    assert_eq!(declined[0].method, "GET");
    assert!(declined[0].signed_with(TOKEN));
    assert_eq!(declined[0].param("Direction"), Some("outbound-dial"));
    let after = app.hits_to("/dialed", 1, Duration::from_secs(10));
    // The callee answered and the whisper hung it up: the leg completed, unbridged.
    assert_eq!(after[0].param("DialBridged"), Some("false"));
    assert_eq!(after[0].param("DialCallStatus"), Some("completed"));
    let (heard, _) = hear(&phone, 1000.0, 4, Duration::from_secs(10));
    assert!(
        common::sdk_app::windows_of(&heard, 1000.0) >= 4,
        "the caller did not hear the action's tone"
    );
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}
