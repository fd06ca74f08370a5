//! SIP over WebSocket (RFC 7118) with a real browser softphone stack: JsSIP (tests/compat/
//! jssip_phone.js, under Node) registers with Switchboard over `wss:` — trusting the test's CA
//! through NODE_EXTRA_CA_CERTS, as a browser trusts its store — with digest authentication,
//! then a call from a trunk routed to that user reaches it over the very connection it
//! registered on (its Contact is an unreachable `.invalid` host), and its 486 comes back to
//! the caller. A client that does not ask for the `sip` subprotocol is refused at the
//! handshake.

use crate::common;
use crate::sip_tls::{issue, test_ca};

use common::page::Browser;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The JSON steps a JsSIP script prints, one a line: `next(event)` waits up to `wait` for the
/// next one and checks it is `event`.
pub(crate) fn steps<'a>(
    script: &mut std::process::Child,
    server: &'a Server,
    wait: Duration,
) -> impl Fn(&str) -> Value + 'a {
    let (lines_tx, lines) = std::sync::mpsc::channel::<Value>();
    let stdout = script.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("browser: {line}");
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = lines_tx.send(v);
            }
        }
    });
    move |what: &str| {
        let v = lines
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("JsSIP said nothing of {what}\n{}", server.log()));
        assert_eq!(v["event"], what, "{v}\n{}", server.log());
        v
    }
}

#[test]
fn a_jssip_phone_registers_over_wss_and_a_routed_call_reaches_it_there() {
    let Some(modules) = compat_env("SWITCHBOARD_JSSIP_NODE_PATH") else {
        return;
    };
    let net = Net::new(151);
    let sb = net.ip(1);
    let ca = test_ca(&net);
    issue(&net, &ca, &[&sb], "switchboard");
    let path = |f: &str| net.path(f).display().to_string();
    let config = format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n\
         [[users]]\nusername = \"alice\"\npassword = \"secret\"\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\nuser = \"alice\"\n",
        a = net.ip(2)
    );
    let listen = format!("[\"udp:{sb}:5060\", \"ws:{sb}:5080\", \"wss:{sb}:5081\"]");
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_SIP__LISTEN", &listen),
            ("SWITCHBOARD_SIP__TLS_CERTIFICATE", &path("switchboard.pem")),
            ("SWITCHBOARD_SIP__TLS_KEY", &path("switchboard.key")),
        ],
    );

    // Without the sip subprotocol: no WebSocket.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refused = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(format!("{sb}:5080"))
            .await
            .unwrap();
        tokio_tungstenite::client_async(format!("ws://{sb}:5080/"), tcp).await
    });
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("a handshake without the sip subprotocol is refused: {other:?}"),
    }

    let script = format!("{}/tests/compat/jssip_phone.js", env!("CARGO_MANIFEST_DIR"));
    let mut phone = owned(
        Command::new("node")
            .arg(&script)
            .args([
                &format!("wss://{sb}:5081"),
                "alice",
                "secret",
                "switchboard",
            ])
            .env("NODE_PATH", &modules)
            .env("NODE_EXTRA_CA_CERTS", path("ca.pem"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node"),
    );
    page::forward_stderr(&mut phone);
    let next = steps(&mut phone, &server, Duration::from_secs(15));
    let registered = next("registered");
    assert_eq!(registered["status"], 200);
    assert!(server.log().contains("transport=WSS"), "{}", server.log());

    let caller = scenario(&net, "uac_expect_failure.xml", &[("CODE", "486")]);
    let args = ["-s", "+15551234", "-m", "1"];
    let run = run_sipp(
        &net,
        &caller,
        &net.ip(2),
        5060,
        server.sip,
        &args,
        Duration::from_secs(30),
    );
    let incoming = next("incoming");
    assert_eq!(incoming["from"], "+15550001", "{incoming}");
    // Our Via names the secure WebSocket transport; the Request-URI is the phone's Contact.
    let via = incoming["via"].as_str().unwrap();
    assert!(via.starts_with("SIP/2.0/WSS "), "{via}");
    assert!(
        incoming["ruri"].as_str().unwrap().contains(".invalid"),
        "{incoming}"
    );
    let rejected = next("rejected");
    assert_eq!(rejected["cause"], "Rejected", "{rejected}");
    assert!(
        run.status.success(),
        "the caller gets the phone's 486: {run:?}\n{}",
        server.log()
    );
    let call = server.ended_calls(1).remove(0);
    assert_eq!(
        (
            call["status"].as_str(),
            call["sip_code"].as_u64(),
            call["user_out"].as_str()
        ),
        (Some("busy"), Some(486), Some("alice")),
        "{call}"
    );
    let status = phone.wait().unwrap();
    assert!(status.success(), "JsSIP ended badly: {status:?}");
}

/// A phone on the far side of a browser's call: sends 6 s of 1 kHz to `to` while it takes
/// 2 s of what comes from there (which must come from that address). Without it, the
/// failure shows `server`'s log (the browser leg's transport and counters).
pub(crate) fn talk(
    phone: &std::net::UdpSocket,
    to: std::net::SocketAddr,
    server: &Server,
) -> Vec<i16> {
    use switchboard_media::{Law, tone};
    std::thread::scope(|scope| {
        let talker = scope.spawn(|| {
            send_audio(phone, to, &tone::sines(&[1000.0], 8000.0, 6000), 1);
        });
        let (audio, from) = rig::try_receive_audio(phone, 100, Law::Ulaw)
            .unwrap_or_else(|e| panic!("audio from Switchboard: {e}\n{}", server.log()));
        assert_eq!(
            from, to,
            "the browser's audio comes from Switchboard's address"
        );
        talker.join().unwrap();
        audio
    })
}

/// The last second of `audio` is the tone at `hz`.
pub(crate) fn assert_tone(audio: &[i16], hz: f32, what: &str, server: &Server) {
    let share = switchboard_media::tone::share_at(&audio[audio.len() - 8000..], hz);
    assert!(
        share > 0.8,
        "{what}: share {share:.2} at {hz} Hz\n{}",
        server.log()
    );
}

/// The page's look at what it heard: 1 kHz, loud, steadily once it began (see
/// [`page::hears_steadily`]).
pub(crate) fn assert_hears_1khz(heard: &Value, server: &Server) {
    assert!(
        common::page::hears_steadily(heard, 1000.0),
        "the page hears the phone's 1 kHz in {} of 20 looks: {heard}\n{}",
        common::page::looks_at(heard, 1000.0),
        server.log()
    );
}

/// The same softphone in a real browser: JsSIP in Debian's headless Chromium
/// (tests/compat/jssip_browser.js, puppeteer-core) registers over `wss:`; a call from a trunk
/// reaches it on that connection with our WebRTC offer and it answers; then it calls a number
/// routed to a trunk with the browser's own RTCPeerConnection. Both ways: ICE-lite, DTLS-SRTP
/// and rtcp-mux toward the browser, plain RTP toward the trunk, PCMU on both legs (no
/// transcoding). The browser's microphone plays 600 Hz and the trunk's phone (the test) hears
/// it; the phone sends 1 kHz and the page's Web Audio hears that; the browser hangs up each call
/// and the trunk gets the BYE.
#[test]
fn jssip_in_headless_chromium_answers_and_places_calls_with_trunks_over_webrtc() {
    jssip_answers_and_places_calls_with_trunks(Browser::Chromium, 161);
}

/// The same in Firefox ESR, whose WebRTC stack (ICE, DTLS with its own TLS 1.3-era
/// ClientHello, SRTP) is another implementation than Chromium's.
#[test]
fn jssip_in_headless_firefox_answers_and_places_calls_with_trunks_over_webrtc() {
    jssip_answers_and_places_calls_with_trunks(Browser::Firefox, 201);
}

fn jssip_answers_and_places_calls_with_trunks(browser: Browser, n: u8) {
    use switchboard_media::tone;
    let Some(modules) = compat_env("SWITCHBOARD_JSSIP_NODE_PATH") else {
        return;
    };
    let net = browser.net(n);
    let sb = net.ip(1);
    let ca = test_ca(&net);
    issue(&net, &ca, &[&sb], "switchboard");
    let path = |f: &str| net.path(f).display().to_string();
    let config = format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n\
         [[trunks]]\nname = \"carrier-b\"\naddress = \"{b}:5060\"\ninbound_sources = [\"{b}/32\"]\n\
         [[users]]\nusername = \"alice\"\npassword = \"secret\"\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\nuser = \"alice\"\n\
         [[routes]]\npattern = \"^\\\\+?1666\"\ntrunk = \"carrier-b\"\n",
        a = net.ip(2),
        b = net.ip(3),
    );
    let listen = format!("[\"udp:{sb}:5060\", \"wss:{sb}:5081\"]");
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_SIP__LISTEN", &listen),
            ("SWITCHBOARD_SIP__TLS_CERTIFICATE", &path("switchboard.pem")),
            ("SWITCHBOARD_SIP__TLS_KEY", &path("switchboard.key")),
        ],
    );
    // The trunk's phone: SIPp answers with the test's own RTP socket.
    let phone = rig::rtp_socket(&net, 6);
    let (callee, media) = phone_telling_media(&net, &phone, (&net.ip(3), 5060));
    let wav = net.path("microphone.wav");
    write_wav(&wav, &tone::sines(&[600.0], 8000.0, 20_000));
    let mut browser = page::script_in(
        browser,
        "jssip_browser.js",
        &[
            &format!("wss://{sb}:5081"),
            "alice",
            "secret",
            "switchboard",
            &browser.page_host(&net),
            &format!("sip:+16660000@{sb}"),
            &wav.display().to_string(),
        ],
        &modules,
    );
    let next = steps(&mut browser, &server, Duration::from_secs(40));
    assert_eq!(next("registered")["status"], 200);

    // A call from carrier-a to alice: our offer to a phone on a WebSocket is a WebRTC one.
    let caller_rtp = rig::rtp_socket(&net, 7);
    let media_at = caller_rtp.local_addr().unwrap();
    let log = r#"<action><ereg regexp="m=audio [0-9]+" search_in="body" check_it="true" assign_to="m"/><log message="CALLER-MEDIA [$m]"/></action>"#;
    let caller = scenario(
        &net,
        "uac_media_wait_bye.xml",
        &[
            ("RTP_IP", &media_at.ip().to_string()),
            ("RTP_PORT", &media_at.port().to_string()),
            ("AUDIO", "0\n      a=rtpmap:0 PCMU/8000"),
            ("HEADERS", ""),
            ("ANSWER_CHECKS", log),
            ("BYE_CHECKS", ""),
        ],
    );
    let (heard_by_caller, run) = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            let args = ["-s", "+15551234", "-m", "1", "-trace_logs"];
            run_sipp(
                &net,
                &caller,
                &net.ip(2),
                5060,
                server.sip,
                &args,
                Duration::from_secs(30),
            )
        });
        let incoming = next("incoming");
        assert_eq!(incoming["from"], "+15550001", "{incoming}");
        assert!(
            incoming["via"]
                .as_str()
                .unwrap()
                .starts_with("SIP/2.0/WSS "),
            "{incoming}"
        );
        assert_eq!(incoming["webrtc"], true, "a WebRTC offer: {incoming}");
        let port = sipp_logged(net.dir.path(), "CALLER-MEDIA m=audio ", "not answered");
        let to = format!("{sb}:{port}").parse().unwrap();
        let heard = talk(&caller_rtp, to, &server);
        (heard, run.join().unwrap())
    });
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    assert_tone(
        &heard_by_caller,
        600.0,
        "the caller hears the browser",
        &server,
    );
    assert!(next("answered").is_object());
    assert_hears_1khz(&next("heard_incoming"), &server);
    assert_eq!(next("incoming_ended")["originator"], "local");

    assert_eq!(
        next("calling")["webrtc"],
        true,
        "Chromium's own WebRTC offer"
    );
    // The trunk is called; its phone talks (1 kHz) and listens while the browser does.
    let heard_by_phone = talk(&phone, media(), &server);
    assert_tone(
        &heard_by_phone,
        600.0,
        "the trunk's phone hears the browser",
        &server,
    );
    assert!(next("call_confirmed").is_object());
    assert_hears_1khz(&next("heard"), &server);
    let ended = next("call_ended");
    assert_eq!(ended["originator"], "local", "{ended}");
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the trunk got the browser's BYE\n{}",
        server.log()
    );
    let calls = server.ended_calls(2);
    let own = calls
        .iter()
        .find(|c| c["user_in"] == "alice")
        .expect("the browser's call");
    assert_eq!(own["status"], "completed", "{own}");
    assert_eq!(own["trunk_out"], "carrier-b", "{own}");
    assert_eq!(leg(own, "caller")["codec"], "PCMU", "{own}");
    assert_eq!(leg(own, "callee")["codec"], "PCMU", "{own}");
    let status = browser.wait().unwrap();
    assert!(
        status.success(),
        "the browser script ended badly: {status:?}"
    );
}
