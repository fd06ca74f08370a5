//! Twilio's Voice JavaScript SDK against Switchboard: `@twilio/voice-sdk` (unmodified) in
//! headless Chromium and Firefox ESR, pointed at Switchboard with its `chunderw` option (the SDK opens
//! wss://HOST/signal: the HTTPS listener), signs in with an access token the official Node SDK
//! minted, places a call through a TwiML App made with the REST API and is called with
//! `To=client:alice`. The device is a SIP user of the core through the browser gateway; its
//! media is a WebRTC leg anchored against plain RTP to the trunk.

use crate::common;
use crate::sip_tls::{issue, test_ca};
use crate::sip_websocket::{assert_hears_1khz, assert_tone};
use common::page::Browser;
use common::voice_app::{ACCOUNT, TOKEN};
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use switchboard_media::Law;

/// The trunk's phone talking 1 kHz to Switchboard from its socket until dropped (in 100 ms
/// pieces, so that it stops at once).
struct Talker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Talker {
    fn start(phone: &UdpSocket, to: SocketAddr) -> Self {
        let (sock, stop) = (phone.try_clone().unwrap(), Arc::new(AtomicBool::new(false)));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let piece = switchboard_media::tone::sines(&[1000.0], 8000.0, 100);
            let mut seq = 1u16;
            while !stopped.load(Ordering::Relaxed) {
                send_audio(&sock, to, &piece, seq);
                seq = seq.wrapping_add(5);
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Talker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The next two seconds of what the phone hears from `from`, what came before dropped.
/// Without them, the failure shows `server`'s log (the browser leg's transport and counters).
///
/// A gap of up to 10 s between packets is waited out: a browser starved of CPU on a loaded
/// machine stops its microphone for seconds (its page logs "microphone behind"), and what
/// is asserted is the tone that crosses, not the browser's real time.
fn hear_from_now(phone: &UdpSocket, from: SocketAddr, server: &Server) -> Vec<i16> {
    phone.set_nonblocking(true).unwrap();
    while phone.recv_from(&mut [0u8; 2048]).is_ok() {}
    phone.set_nonblocking(false).unwrap();
    let between = phone.read_timeout().unwrap();
    phone
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let heard = rig::try_receive_audio(phone, 100, Law::Ulaw);
    phone.set_read_timeout(between).unwrap();
    let (audio, source) =
        heard.unwrap_or_else(|e| panic!("audio from Switchboard: {e}\n{}", server.log()));
    assert_eq!(
        source, from,
        "the browser's audio comes from Switchboard's address"
    );
    audio
}

const KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
const KEY_SECRET: &str = "voice-sdk-key-secret";

/// The whole flow of a Twilio browser app: a TwiML App through the REST API; a token signed
/// with a wrong secret refused with 31204 (the SDK's AccessTokenInvalid); the real one registers `alice`; `device.connect()`
/// runs the App with Twilio's parameters (`From=client:alice`, `Direction=inbound`, the App's
/// SID, the page's and the token's parameters), gathers the key the page presses (RFC 4733),
/// then its `<Dial>` reaches the trunk: tones both
/// ways; the page's signalling socket drops and the SDK takes the call back on a new one
/// (tones both ways again), the page hangs up, the trunk gets the BYE; then `Calls.create(To=client:alice)`
/// rings the page, which accepts and hears the call's `<Play>`, and the REST API ends it;
/// then bob's device calls `client:alice`: the App's `<Dial><Client>` (with a `<Parameter>`)
/// rings both of alice's devices, the first answers, the other is cancelled (and its
/// cancellation does not end the answered call), and the two browsers hear each other; the
/// REST API's next call to `client:alice` rings both devices as one call the same way; last,
/// alice's call to the App's voice bot is a bidirectional media stream: the bot hears the
/// page's 600 Hz and the page hears the bot's 1 kHz.
#[test]
fn twilio_voice_sdk_in_chromium_registers_calls_through_a_twiml_app_and_is_called() {
    twilio_voice_sdk_flow(Browser::Chromium, 166);
}

/// The same flow in Firefox ESR.
#[test]
fn twilio_voice_sdk_in_firefox_registers_calls_through_a_twiml_app_and_is_called() {
    twilio_voice_sdk_flow(Browser::Firefox, 203);
}

fn twilio_voice_sdk_flow(browser: Browser, n: u8) {
    use switchboard_media::tone;
    let (Some(browser_modules), Some(twilio_modules)) = (
        compat_env("SWITCHBOARD_JSSIP_NODE_PATH"),
        compat_env("SWITCHBOARD_TWILIO_NODE_PATH"),
    ) else {
        return;
    };
    let net = browser.net(n);
    let sb = net.ip(1);
    let ca = test_ca(&net);
    issue(&net, &ca, &[&sb], "switchboard");
    let path = |f: &str| net.path(f).display().to_string();
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         api_keys = [{{ sid = \"{KEY_SID}\", secret = \"{KEY_SECRET}\" }}]\n"
    ));
    let https = format!("{sb}:8443");
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_HTTP__TLS_LISTEN", &https),
            (
                "SWITCHBOARD_HTTP__TLS_CERTIFICATE",
                &path("switchboard.pem"),
            ),
            ("SWITCHBOARD_HTTP__TLS_KEY", &path("switchboard.key")),
        ],
    );
    // The trunk's phone (carrier-b, +1555…): SIPp answers with the test's own RTP socket.
    let phone = rig::rtp_socket(&net, 6);
    let (callee, media) = phone_telling_media(&net, &phone, (&net.ip(3), 5060));
    let wav = net.path("microphone.wav");
    write_wav(&wav, &tone::sines(&[600.0], 8000.0, 30_000));
    let tone_wav = net.path("tone.wav");
    write_wav(&tone_wav, &tone::sines(&[1000.0], 8000.0, 20_000));
    // What the voice bot says: 1 kHz, μ-law.
    let tone_ulaw = net.path("tone.ulaw");
    let pcm = tone::sines(&[1000.0], 8000.0, 10_000);
    let mut ulaw = vec![0u8; pcm.len()];
    switchboard_media::Law::Ulaw.encode(&pcm, &mut ulaw);
    std::fs::write(&tone_ulaw, ulaw).unwrap();
    let mut browser = page::script_in(
        browser,
        "twilio_browser.js",
        &[
            &format!("http://{}", server.http),
            ACCOUNT,
            TOKEN,
            KEY_SID,
            KEY_SECRET,
            &https,
            &browser.page_host(&net),
            &wav.display().to_string(),
            "+15551230000",
            &tone_wav.display().to_string(),
            &tone_ulaw.display().to_string(),
        ],
        &format!("{browser_modules}:{twilio_modules}"),
    );
    let mut next = page::events(&mut browser, &server, Duration::from_secs(100), true);
    let app = next("application");
    assert!(app["sid"].as_str().unwrap().starts_with("AP"), "{app}");
    assert_eq!(app["voice_url"], true, "{app}");
    // The server's 31204 is the SDK's AccessTokenInvalid (20101).
    let key = next("api_key");
    assert!(key["sid"].as_str().unwrap().starts_with("SK"), "{key}");
    assert_eq!(
        (key["has_secret"].as_bool(), key["listed"].as_bool()),
        (Some(true), Some(true))
    );
    let refused = next("bad_token");
    assert_eq!(refused["name"], "AccessTokenInvalid", "{refused}");
    assert_eq!(refused["code"], 20101, "{refused}");
    // An expired one: the server's 31205 is the SDK's AccessTokenExpired (20104).
    let expired = next("expired_token");
    assert_eq!(expired["name"], "AccessTokenExpired", "{expired}");
    assert_eq!(expired["code"], 20104, "{expired}");
    assert_eq!(next("registered")["identity"], "alice");

    // The page's key, RFC 4733 from its RTCDTMFSender, reaches the App's <Gather>.
    let gathered = next("gathered");
    assert_eq!(gathered["digits"], "7", "{gathered}");
    let asked = next("app_asked");
    assert_eq!(asked["from"], "client:alice", "{asked}");
    assert_eq!(asked["caller"], "client:alice", "{asked}");
    assert_eq!(asked["to"], "+15551230000", "{asked}");
    assert_eq!(asked["called"], "+15551230000", "{asked}");
    assert_eq!(asked["direction"], "inbound", "{asked}");
    assert_eq!(asked["application"], true, "{asked}");
    assert_eq!(asked["flavor"], "vanilla", "the page's parameter: {asked}");
    assert_eq!(asked["from_token"], "yes", "the token's parameter: {asked}");
    assert_eq!(asked["account"], true, "{asked}");
    // The trunk is dialed: the phone hears the page's 600 Hz, the page hears 1 kHz (the
    // phone talks until the call is over).
    let to = media();
    let talker = Talker::start(&phone, to);
    let heard_by_phone = hear_from_now(&phone, to, &server);
    assert_tone(
        &heard_by_phone,
        600.0,
        "the trunk's phone hears the browser",
        &server,
    );
    let accepted = next("accepted");
    assert_eq!(
        accepted["sid"], asked["call_sid"],
        "the page knows its CallSid: {accepted}"
    );
    assert_hears_1khz(&next("heard"), &server);
    // The page's signalling socket drops: the SDK reconnects with the call's token and the
    // call goes on, audio both ways.
    let reconnecting = next("reconnecting");
    assert_eq!(reconnecting["code"], 53001, "{reconnecting}");
    let reconnected = next("reconnected");
    assert_eq!(reconnected["sid"], accepted["sid"], "{reconnected}");
    let heard_by_phone = hear_from_now(&phone, to, &server);
    assert_tone(
        &heard_by_phone,
        600.0,
        "the trunk's phone hears the browser after its socket came back",
        &server,
    );
    assert_hears_1khz(&next("heard_after_reconnect"), &server);
    next("disconnected");
    drop(talker);
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the trunk got the browser's BYE\n{}",
        server.log()
    );

    let calling = next("calling_client");
    let incoming = next("incoming");
    assert_eq!(incoming["from"], "+15550001", "{incoming}");
    assert_eq!(incoming["to"], "client:alice", "{incoming}");
    assert_eq!(incoming["sid"], calling["sid"], "{incoming}");
    next("incoming_accepted");
    assert_hears_1khz(&next("heard_incoming_rest"), &server);
    next("incoming_disconnected");
    let done = next("client_call");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["to"], "client:alice", "{done}");

    // Browser to browser: bob's call to client:alice rings both of alice's devices (the
    // <Client>'s <Parameter> reaches them); the first answers, the other is cancelled, and
    // alice hears bob's 600 Hz.
    next("more_registered");
    let mut rung = [next("incoming"), next("incoming")];
    rung.sort_by_key(|v| v["device"].as_str().unwrap_or_default().to_owned());
    assert_eq!(rung[0]["device"], "alice", "{rung:?}");
    assert_eq!(rung[1]["device"], "alice2", "{rung:?}");
    for r in &rung {
        assert_eq!(r["from"], "client:bob", "{r}");
        assert_eq!(r["params"], "ticket=42", "{r}");
    }
    assert_eq!(next("incoming_accepted")["device"], "alice");
    assert_eq!(next("incoming_cancelled")["device"], "alice2");
    next("bob_accepted");
    for (who, event) in [
        ("alice hears bob", "heard_incoming_bob"),
        ("bob hears alice", "heard_by_bob"),
    ] {
        let heard = next(event);
        let looks = page::looks_at(&heard, 600.0);
        assert!(
            page::hears_steadily(&heard, 600.0),
            "{who}'s 600 Hz in {looks} of 20 looks: {heard}\n{}",
            server.log()
        );
    }
    next("bob_disconnected");
    // The REST API's call to client:alice rings both her devices, with the call's SID; the
    // first answers and hears the call's <Play>, the other is cancelled.
    let calling = next("calling_devices");
    let mut rung = [next("incoming"), next("incoming")];
    rung.sort_by_key(|v| v["device"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        (&rung[0]["device"], &rung[1]["device"]),
        (&"alice".into(), &"alice2".into()),
        "{rung:?}"
    );
    for r in &rung {
        assert_eq!(r["sid"], calling["sid"], "one call rings both: {r}");
        assert_eq!(r["to"], "client:alice", "{r}");
    }
    assert_eq!(next("incoming_accepted")["device"], "alice");
    assert_eq!(next("incoming_cancelled")["device"], "alice2");
    assert_hears_1khz(&next("heard_incoming_fork"), &server);
    let done = next("fork_call");
    assert_eq!(done["status"], "completed", "{done}");

    // A browser call streamed to a voice bot (`<Connect><Stream>`): the bot hears the page's
    // 600 Hz, and the page hears what the bot says (1 kHz).
    let accepted = next("bot_accepted");
    assert_hears_1khz(&next("heard_bot"), &server);
    next("bot_disconnected");
    let bot = next("bot_done");
    let start = &bot["start"];
    assert_eq!(start["callSid"], accepted["sid"], "{bot}");
    assert_eq!(start["accountSid"], ACCOUNT, "{bot}");
    assert_eq!(start["tracks"], serde_json::json!(["inbound"]), "{bot}");
    assert_eq!(start["customParameters"]["who"], "browser", "{bot}");
    let heard = {
        use base64::Engine;
        let bytes = (base64::engine::general_purpose::STANDARD)
            .decode(bot["heard"].as_str().unwrap())
            .unwrap();
        let mut pcm = vec![0i16; bytes.len()];
        switchboard_media::Law::Ulaw.decode(&bytes, &mut pcm);
        pcm
    };
    // A whole second of the page's tone, wherever it lies: the end of the stream is the
    // hang-up's, which may come after the page stopped sending (later on a loaded machine).
    // Judged 50 ms at a time: the browser's capture and jitter buffer may stretch or cut the
    // tone and shift its phase, which one filter a second long takes for a weaker tone (seen:
    // 0.80 for a second of a steady tone on a loaded machine).
    let shares: Vec<f32> = (heard.chunks_exact(400))
        .map(|piece| tone::share_at(piece, 600.0))
        .collect();
    let share = (shares.windows(20))
        .map(|second| second.iter().sum::<f32>() / 20.0)
        .fold(0.0f32, f32::max);
    assert!(
        share > 0.8,
        "the bot heard the browser's 600 Hz for a second: {} samples, best share {share:.2}\n{}",
        heard.len(),
        server.log()
    );
    // User-defined messages both ways on alice's next call (tests/compat/twilio_browser.js):
    // the page's `call.sendMessage` reached the app's subscription, signed; the app's
    // UserDefinedMessage reached the page's `messageReceived` once for two requests with one
    // IdempotencyKey; once unsubscribed, the page's next message went nowhere.
    let m = next("user_messages");
    let call = m["call"].as_str().unwrap();
    assert!(m["subscription"].as_str().unwrap().starts_with("ZY"), "{m}");
    assert_eq!(m["subscription_call"], call, "{m}");
    let cb = &m["callback"];
    assert_eq!(
        (&cb["CallSid"], &cb["AccountSid"], &cb["Sid"]),
        (&m["call"], &ACCOUNT.into(), &m["page_sid"]),
        "{m}"
    );
    assert_eq!(cb["MessageType"], "user-defined-message", "{m}");
    let content: serde_json::Value = serde_json::from_str(cb["Content"].as_str().unwrap()).unwrap();
    assert_eq!(content, serde_json::json!({"order": 42}), "{m}");
    assert_eq!(m["valid"], true, "the SDK's validateRequest: {m}");
    assert!(m["message_sid"].as_str().unwrap().starts_with("KX"), "{m}");
    assert_eq!(
        (&m["message_call"], &m["same_again"]),
        (&m["call"], &true.into()),
        "{m}"
    );
    let received = m["received"].as_array().unwrap();
    assert_eq!(received.len(), 1, "one message for one IdempotencyKey: {m}");
    assert_eq!(
        received[0]["content"],
        serde_json::json!({"reply": "ok"}),
        "{m}"
    );
    assert_eq!(received[0]["voiceEventSid"], m["message_sid"], "{m}");
    assert_eq!(received[0]["messageType"], "user-defined-message", "{m}");
    assert_eq!(
        m["after_unsubscribe"], 1,
        "a message after the unsubscription: {m}"
    );
    // alice and bob in one conference: each hears the other's microphone through the mix.
    for who in ["alice", "bob"] {
        let heard = next(&format!("heard_room_{who}"));
        assert!(
            page::hears_steadily(&heard, 600.0),
            "{who} hears the other's 600 Hz in the room: {heard}\n{}",
            server.log()
        );
    }
    // bob's token was signed with the key made through Keys; the key authenticates REST
    // requests too, and none once deleted.
    let deleted = next("key_deleted");
    assert_eq!(deleted["worked_before"], true, "{deleted}");
    assert_eq!(deleted["status_after"], 401, "{deleted}");
    let status = browser.wait().unwrap();
    assert!(
        status.success(),
        "the browser script ended badly: {status:?}"
    );
}
