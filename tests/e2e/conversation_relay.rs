//! `<Connect><ConversationRelay>` end to end: a caller on a SIPp leg speaks recorded phrases
//! (Piper), the application is a WebSocket server here speaking the ConversationRelay protocol,
//! and what each side got is checked — the `setup` fields and the handshake's signature, the
//! caller's words as the app's `prompt`, the app's streamed tokens as speech the caller hears
//! (recognised back), the caller's barge-in (the agent's audio stops, `interrupt` carries the
//! words heard), a digit as `dtmf`, and `end` as the `<Connect action>` request.

use crate::common;
use axum::Router;
use common::hearing::recognise;
use common::rig::drain;
use common::voice_app::*;
use common::voices::{assert_heard, piper, words};
use common::ws_app::{WsConn, WsServer};
use common::*;
use serde_json::{Value, json};
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;
use switchboard_control::infra::webhook::signature::{Algorithm, sign};
use switchboard_media::tone;

const AGENT: &str = "+17775550950";
const GONE: &str = "+17775550951";
pub(crate) const GREETING: &str =
    "Thank you for calling the county library. How can I help you today?";
pub(crate) const ASKED: &str = "i would like to renew the books i borrowed last week";
pub(crate) const ANSWER: [&str; 4] = [
    "Of course",
    ". Your three books",
    " are renewed until the end of next month",
    ". Anything else?",
];
/// About 25 s of speech: a test thread held up by the load still speaks while it plays (with
/// half of it, a loaded run got no interrupt: most likely its caller spoke after the end).
pub(crate) const LONG: &str = "Let me read you the whole list of our opening hours. On Monday we open at nine \
                    in the morning and close at eight in the evening. On Tuesday we open at ten in \
                    the morning and close at six in the evening. On Wednesday we open at nine in \
                    the morning and close at eight in the evening. On Thursday we open at ten in \
                    the morning and close at six in the evening. On Friday we open at nine in the \
                    morning and close at five in the afternoon.";
pub(crate) const WAIT: Duration = Duration::from_secs(20);
/// Quiet this long ends an agent's turn as the phone hears it: the clauses of one turn follow
/// each other with less (on a loaded machine a clause's voice took over 1.5 s to follow the
/// one before).
pub(crate) const TURN_END: Duration = Duration::from_millis(3000);

/// Every `debug` channel: the application gets `info` frames for each.
const DEBUG: &str = "debugging speaker-events tokens-played";

/// The `info` frames among `frames`, as (name, value).
fn infos(frames: &[Value]) -> Vec<(String, String)> {
    (frames.iter())
        .filter(|f| f["type"] == "info")
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap_or_else(|| panic!("{f}")).to_owned();
            (text("name"), text("value"))
        })
        .collect()
}

/// The relay document, as Twilio's official Python SDK builds it (`VoiceResponse`,
/// `Connect.conversation_relay`, `parameter`) when the test command set it up.
fn python_doc(url: &str) -> Option<String> {
    let python = compat_env("SWITCHBOARD_TWILIO_PYTHON")?;
    let script = format!(
        "from twilio.twiml.voice_response import VoiceResponse, Connect\n\
         r = VoiceResponse()\nc = Connect(action='/after')\n\
         cr = c.conversation_relay(url='{url}', welcome_greeting='{GREETING}', dtmf_detection=True, interruptible='any', debug='{DEBUG}')\n\
         cr.parameter(name='customer', value='42')\nr.append(c)\nr.say('Not reached.')\nprint(r)\n"
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// The same, as twilio-node builds it (`twiml.VoiceResponse`, `connect().conversationRelay`).
fn node_doc(url: &str) -> Option<String> {
    let modules = compat_env("SWITCHBOARD_TWILIO_NODE_PATH")?;
    let script = format!(
        "const VoiceResponse = require('twilio').twiml.VoiceResponse;\n\
         const r = new VoiceResponse();\n\
         const cr = r.connect({{action: '/after'}}).conversationRelay({{url: '{url}', welcomeGreeting: '{GREETING}', dtmfDetection: true, interruptible: 'any', debug: '{DEBUG}'}});\n\
         cr.parameter({{name: 'customer', value: '42'}});\nr.say('Not reached.');\nconsole.log(r.toString());\n"
    );
    let out = std::process::Command::new("node")
        .args(["-e", &script])
        .env("NODE_PATH", modules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// The app's answers: the relay document for each number (built by the providers' SDKs when
/// the test command set them up), and the action.
async fn start_app(ip: &str, relay: &str, nowhere: &str) -> App {
    let doc = |url: &str| {
        format!(
            r#"<Response><Connect action="/after"><ConversationRelay url="{url}" welcomeGreeting="{GREETING}" dtmfDetection="true" interruptible="any" debug="{DEBUG}"><Parameter name="customer" value="42"/></ConversationRelay></Connect><Say>Not reached.</Say></Response>"#
        )
    };
    let agent = python_doc(relay).unwrap_or_else(|| doc(relay));
    let gone = node_doc(nowhere).unwrap_or_else(|| doc(nowhere));
    let router = Router::new()
        .route("/agent", answers(agent))
        .route("/gone", answers(gone))
        .route("/after", answers("<Response><Hangup/></Response>"));
    App::serve(ip, router).await
}

/// Audio the phone receives from its first loud frame until `quiet` passes with nothing loud,
/// and where it came from.
pub(crate) fn hear_from(
    phone: &UdpSocket,
    quiet: Duration,
    max: Duration,
) -> (Vec<i16>, Option<std::net::SocketAddr>) {
    phone
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut heard, mut buf, mut source) = (Vec::new(), [0u8; 2048], None);
    // Where the last loud frame ended: the quiet after it is not the turn's (a recogniser
    // given a second of it may take it for a word).
    let mut loud_end = 0;
    let start = std::time::Instant::now();
    let mut last_loud: Option<std::time::Instant> = None;
    while start.elapsed() < max {
        if last_loud.is_some_and(|t| t.elapsed() > quiet) {
            break;
        }
        let Ok((n, from)) = phone.recv_from(&mut buf) else {
            continue;
        };
        source = Some(from);
        if n <= 12 || buf[1] & 0x7f != 0 {
            continue;
        }
        let mut frame = vec![0i16; n - 12];
        switchboard_media::Law::Ulaw.decode(&buf[12..n], &mut frame);
        let loud = frame.iter().any(|s| s.abs() > 300);
        if loud {
            last_loud = Some(std::time::Instant::now());
        }
        if last_loud.is_some() {
            heard.extend(frame);
        }
        if loud {
            loud_end = heard.len();
        }
    }
    heard.truncate(loud_end + 800);
    (heard, source)
}

/// `length` of the audio the phone receives from its first loud frame (waited for `WAIT`).
pub(crate) fn hear_start(phone: &UdpSocket, length: Duration) -> Vec<i16> {
    phone.set_read_timeout(Some(WAIT)).unwrap();
    let (mut heard, mut buf) = (Vec::new(), [0u8; 2048]);
    let samples = length.as_millis() as usize * 8;
    while heard.len() < samples {
        let Ok((n, _)) = phone.recv_from(&mut buf) else {
            break;
        };
        if n <= 12 || buf[1] & 0x7f != 0 {
            continue;
        }
        let mut frame = vec![0i16; n - 12];
        switchboard_media::Law::Ulaw.decode(&buf[12..n], &mut frame);
        if heard.is_empty() && frame.iter().all(|s| s.abs() <= 300) {
            continue;
        }
        heard.extend(frame);
    }
    heard
}

pub(crate) fn hear_turn(phone: &UdpSocket, quiet: Duration, max: Duration) -> Vec<i16> {
    hear_from(phone, quiet, max).0
}

/// Speaks `samples` (with a little quiet before and a second and a half after) to Switchboard.
pub(crate) fn say(phone: &UdpSocket, to: std::net::SocketAddr, samples: &[i16], seq: u16) {
    let mut audio = tone::silence(200);
    audio.extend_from_slice(samples);
    audio.extend(tone::silence(1500));
    send_audio(phone, to, &audio, seq);
}

/// The next message of `kind` from Switchboard, or `None` when none comes in time (the
/// socket's own wait is longer, so that this one's ends it without a panic).
async fn try_next_of_all(conn: &mut WsConn, kind: &str) -> Option<(Vec<Value>, Value)> {
    let find = async {
        let mut before = Vec::new();
        loop {
            let (_, v) = conn.json(WAIT * 2).await?;
            if v["type"] == kind {
                return Some((before, v));
            }
            before.push(v);
        }
    };
    tokio::time::timeout(WAIT, find).await.ok().flatten()
}

/// The next message of `kind` from Switchboard, and those before it.
pub(crate) async fn next_of(conn: &mut WsConn, kind: &str) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        let (_, v) = conn
            .json(WAIT)
            .await
            .unwrap_or_else(|| panic!("the session ended before {kind:?}: {before:?}"));
        if v["type"] == kind {
            return (before, v);
        }
        before.push(v);
    }
}

#[test]
fn a_conversation_relay_app_hears_the_caller_and_speaks_back_barge_in_dtmf_and_end() {
    let net = Arc::new(Net::new(191));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let relay_url = ws.url("/relay");
    let app = rt.block_on(start_app(
        &net.ip(9),
        &relay_url,
        "ws://127.0.0.1:1/nowhere",
    ));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[
            (AGENT, "voice_url = \"{base}/agent\""),
            (GONE, "voice_url = \"{base}/gone\""),
        ],
    ));
    let server = Server::start_with_speech(&net, &config);
    let asked = piper(ASKED);
    // Greeting, question, answer, a long answer cut short, a digit and the end: under load this
    // conversation took more than the usual 40 s a test call may last.
    let (phone, caller) = call_with_phone_for(&net, &server, AGENT, Duration::from_secs(120));

    // The session opens with `setup`, signed as Twilio signs a stream's handshake.
    let mut conn = rt.block_on(ws.accept(WAIT));
    let voice = app.hits_to("/agent", 1, WAIT);
    let call = voice[0].param("CallSid").unwrap().to_owned();
    assert_eq!(
        conn.headers.get("x-twilio-signature"),
        Some(&sign(TOKEN, &relay_url, &[], Algorithm::HmacSha1))
    );
    let (_, setup) = rt.block_on(next_of(&mut conn, "setup"));
    assert!(
        setup["sessionId"].as_str().unwrap().starts_with("VX"),
        "{setup}"
    );
    assert_eq!(setup["callSid"], call.as_str());
    assert_eq!(setup["accountSid"], ACCOUNT);
    assert_eq!(setup["to"], AGENT);
    assert_eq!(setup["from"], "+15550001");
    assert_eq!(setup["direction"], "inbound");
    assert_eq!(setup["callType"], "PSTN");
    assert_eq!(setup["customParameters"], json!({"customer": "42"}));

    // The welcome greeting is heard; then the caller asks, and the app gets their words.
    let (greeting, from) = hear_from(&phone, TURN_END, WAIT);
    assert_heard(&recognise(&rt, &greeting), GREETING);
    let from = from.expect("the greeting came from Switchboard");
    // The phone's RTP clock runs from its first packet: a later phrase's packets are stamped
    // by the time that passed, as a phone that sent nothing while quiet stamps them.
    let clock = std::time::Instant::now();
    let seq_now = || 100 + (clock.elapsed().as_millis() / 20) as u16;
    say(&phone, from, &asked, seq_now());
    let (before, prompt) = rt.block_on(next_of(&mut conn, "prompt"));
    assert_heard(prompt["voicePrompt"].as_str().unwrap(), ASKED);
    assert_eq!(
        (prompt["lang"].as_str(), prompt["last"].as_bool()),
        (Some("en-US"), Some(true))
    );
    // `debug`: the agent spoke the greeting whole, then the caller spoke.
    let info = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    assert_eq!(
        infos(&before),
        [
            info("agentSpeaking", "on"),
            info("tokensPlayed", GREETING),
            info("agentSpeaking", "off"),
            info("clientSpeaking", "on"),
            info("clientSpeaking", "off"),
        ]
    );

    // The app streams its answer token by token: the caller hears it.
    for (i, token) in ANSWER.iter().enumerate() {
        conn.send_json(json!({"type": "text", "token": token, "last": i == ANSWER.len() - 1}));
    }
    let answer = hear_turn(&phone, TURN_END, WAIT);
    assert_heard(&recognise(&rt, &answer), &ANSWER.concat());

    // A long answer; the caller speaks over it after a second and a half: the agent stops,
    // and the app learns the words heard until then.
    conn.send_json(json!({"type": "text", "token": LONG, "last": true}));
    let started = hear_start(&phone, Duration::from_millis(1500));
    assert!(started.len() >= 12000, "the long answer was not playing");
    let cut_in = piper("wait a moment please");
    let sending = std::thread::spawn({
        let (phone, seq) = (phone.try_clone().unwrap(), seq_now());
        move || say(&phone, from, &cut_in, seq)
    });
    let interrupted = rt.block_on(try_next_of_all(&mut conn, "interrupt"));
    let (before, interrupt) =
        interrupted.unwrap_or_else(|| panic!("no interrupt\n{}", server.log()));
    // The app's first token came after the prompt (a round trip), the answer was heard whole,
    // the long one started, and the caller started speaking over it.
    let seen = infos(&before);
    let round_trip = &seen[0];
    assert_eq!(round_trip.0, "roundTripDelayMs", "{seen:?}");
    assert!(
        round_trip.1.parse::<u64>().is_ok_and(|ms| ms < 20_000),
        "{seen:?}"
    );
    assert_eq!(
        seen[1..],
        [
            info("agentSpeaking", "on"),
            info("tokensPlayed", &ANSWER.concat()),
            info("agentSpeaking", "off"),
            info("agentSpeaking", "on"),
            info("clientSpeaking", "on"),
        ]
    );
    let heard_words = words(interrupt["utteranceUntilInterrupt"].as_str().unwrap());
    let long_words = words(LONG);
    assert!(
        !heard_words.is_empty()
            && heard_words.len() < long_words.len()
            && long_words.starts_with(&heard_words),
        "{interrupt}"
    );
    let ms = interrupt["durationUntilInterruptMs"].as_u64().unwrap();
    assert!((1000..20_000).contains(&ms), "{interrupt}");
    // What the phone was sent until then waits unread in its socket: dropped here. From
    // now on it hears no more of the long answer.
    drain(&phone);
    sending.join().unwrap();
    let after = hear_turn(&phone, Duration::from_millis(500), Duration::from_secs(2));
    assert!(
        after.len() < 8000 / 2,
        "{} samples of agent audio after the interrupt",
        after.len()
    );
    let (after_cut, cut_prompt) = rt.block_on(next_of(&mut conn, "prompt"));
    let cut_heard = interrupt["utteranceUntilInterrupt"].as_str().unwrap();
    assert_eq!(
        infos(&after_cut),
        [
            info("tokensPlayed", cut_heard),
            info("agentSpeaking", "off"),
            info("clientSpeaking", "off"),
        ],
        "what was played of the cut answer follows the interrupt"
    );
    assert!(!cut_prompt["voicePrompt"].as_str().unwrap().is_empty());

    // A digit reaches the app; the app ends the session and the action gets its handoff.
    let mut seq = seq_now();
    let ts = u32::from(seq) * 160;
    send_rfc4733(&phone, from, 5, &mut seq, ts);
    let (_, dtmf) = rt.block_on(next_of(&mut conn, "dtmf"));
    assert_eq!(dtmf["digit"], "5");
    conn.send_json(json!({"type": "end", "handoffData": "{\"reason\":\"renewed\"}"}));
    let after = app.hits_to("/after", 1, WAIT);
    let a = &after[0];
    assert!(a.signed_with(TOKEN));
    assert_eq!(a.param("CallSid"), Some(call.as_str()));
    // `ended` when the application ends the session (as a captured Twilio session shows).
    assert_eq!(a.param("SessionStatus"), Some("ended"));
    assert_eq!(a.param("HandoffData"), Some("{\"reason\":\"renewed\"}"));
    assert_eq!(a.param("SessionId"), setup["sessionId"].as_str());
    assert!(a.param("SessionDuration").unwrap().parse::<u64>().unwrap() >= 5);
    // The session's turns are the call's transcript (its history; the live socket shows the
    // same events as they happen): what the app got of the caller, and what the caller heard
    // of the agent — a turn played whole, and the long one up to the caller's cut.
    let (status, body) = server.http(
        "GET",
        &format!("/v1/calls/{call}/events"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let history: Value = serde_json::from_str(&body).unwrap();
    let said = |track: &str| -> Vec<String> {
        (history["events"].as_array().unwrap().iter())
            .filter(|e| e["event"] == "transcript" && e["track"] == track)
            .map(|e| e["text"].as_str().unwrap().to_owned())
            .collect()
    };
    let (caller_said, agent_said) = (said("inbound"), said("outbound"));
    assert!(
        caller_said
            .iter()
            .any(|t| t == prompt["voicePrompt"].as_str().unwrap()),
        "{caller_said:?}"
    );
    assert!(
        agent_said.contains(&GREETING.to_owned()) && agent_said.contains(&ANSWER.concat()),
        "{agent_said:?}"
    );
    let cut = interrupt["utteranceUntilInterrupt"].as_str().unwrap();
    assert!(agent_said.iter().any(|t| t == cut), "{agent_said:?}");
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    // An application that cannot be reached: the action says so with Twilio's 64102.
    let (_phone, caller) = call_with_phone(&net, &server, GONE);
    let after = app.hits_to("/after", 2, WAIT);
    let failed = &after[1];
    assert_eq!(failed.param("SessionStatus"), Some("failed"));
    assert_eq!(failed.param("ErrorCode"), Some("64102"));
    assert!(failed.param("ErrorMessage").is_some_and(|m| !m.is_empty()));
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}

/// An application that takes the connection but never answers the WebSocket upgrade: the
/// session fails when the connect deadline passes, the `<Connect action>` says so with Twilio's
/// 64102, and the call goes on with the action's TwiML.
#[test]
fn an_app_that_never_answers_the_upgrade_fails_the_session_with_64102() {
    use std::io::Read;
    const NUMBER: &str = "+17775550952";
    let net = Arc::new(Net::new(212));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let silent = std::net::TcpListener::bind(format!("{}:0", net.ip(9))).unwrap();
    let url = format!("ws://{}/relay", silent.local_addr().unwrap());
    // Takes the connection and reads the upgrade, and answers nothing.
    let held = std::thread::spawn(move || {
        let (mut conn, _) = silent.accept().unwrap();
        let mut request = vec![0u8; 4096];
        let n = conn.read(&mut request).unwrap();
        request.truncate(n);
        (conn, String::from_utf8_lossy(&request).into_owned())
    });
    let doc = format!(
        r#"<Response><Connect action="/after"><ConversationRelay url="{url}" welcomeGreeting="{GREETING}"/></Connect></Response>"#
    );
    let router = Router::new()
        .route("/agent", answers(doc))
        .route("/after", answers("<Response><Hangup/></Response>"));
    let app = rt.block_on(App::serve(&net.ip(9), router));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(NUMBER, "voice_url = \"{base}/agent\"")],
    )) + "[streams]\nconnect_timeout_secs = 2\n";
    let server = Server::start_with_speech(&net, &config);
    let (_phone, caller) = call_with_phone(&net, &server, NUMBER);
    let after = app.hits_to("/after", 1, WAIT);
    let (_conn, request) = held.join().unwrap();
    assert!(request.starts_with("GET /relay HTTP/1.1\r\n"), "{request}");
    let a = &after[0];
    assert_eq!(a.param("SessionStatus"), Some("failed"));
    assert_eq!(a.param("ErrorCode"), Some("64102"));
    assert!(
        a.param("ErrorMessage")
            .is_some_and(|m| m.contains("no answer")),
        "{:?}",
        a.params
    );
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}

/// TeXML's `<Connect><ConversationRelay>`: the same session on Telnyx's terms — `setup` names
/// the call by its call control id, session and leg UUIDs and the account's UUID; a message
/// the protocol lacks gets Telnyx's `error` and the session goes on; `end` requests the
/// action, signed as Telnyx signs (Ed25519), with the handoff data.
#[test]
fn a_texml_conversation_relay_speaks_telnyxs_terms() {
    use common::sdk_app::telnyx;
    const NUMBER: &str = "+15557770460";
    const TEXML_APP: &str = "1494404757140276800";
    let net = Arc::new(Net::new(192));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let voice = format!(
        r#"<Response><Connect action="/next"><ConversationRelay url="{}" transcriptionProvider="deepgram" interruptible="true"><Parameter name="customer_id" value="customer_123"/></ConversationRelay></Connect></Response>"#,
        ws.url("/relay")
    );
    let routes = Router::new()
        .route("/texml", answers(voice))
        .route("/next", answers("<Response><Hangup/></Response>"));
    let app = rt.block_on(App::serve(&net.ip(9), routes));
    let config = format!(
        "{}[[texml_applications]]\nid = \"{TEXML_APP}\"\naccount_sid = \"{}\"\n\
         voice_url = \"{}/texml\"\n\
         [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{}\"\n\
         connection_id = \"{TEXML_APP}\"\n",
        telnyx::config("127.0.0.1:9", "", &[]),
        telnyx::ACCOUNT,
        app.base,
        telnyx::ACCOUNT,
    );
    let server = Server::start_with_speech(&net, &net.two_trunks(&config));
    let asked = piper(ASKED);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);

    let mut conn = rt.block_on(ws.accept(WAIT));
    let fetched = app.hits_to("/texml", 1, WAIT);
    let call = fetched[0].param("CallSid").unwrap().to_owned();
    let (_, setup) = rt.block_on(next_of(&mut conn, "setup"));
    assert_eq!(setup["callControlId"], call.as_str(), "{setup}");
    assert_eq!(setup["callSid"], call.as_str());
    assert_eq!(setup["accountSid"], "01234567-89ab-cdef-0123-456789abcdef");
    for id in ["sessionId", "callSessionId", "callLegId"] {
        assert_eq!(setup[id].as_str().map(str::len), Some(36), "{id}: {setup}");
    }
    assert_eq!(setup["callStatus"], "active");
    assert_eq!(
        setup["customParameters"],
        json!({"customer_id": "customer_123"})
    );

    // A message the protocol lacks: Telnyx's error, and the session goes on.
    conn.send_json(json!({"type": "foo"}));
    let (_, error) = rt.block_on(next_of(&mut conn, "error"));
    assert_eq!(error["description"], "Invalid message: unknown type: foo");

    // The app speaks first, in tokens that end no sentence and without `last` (they are
    // spoken once it pauses); the caller answers; the app hears it and ends the session.
    for token in ["Hello", ", this is", " the county", " library"] {
        conn.send_json(json!({"type": "text", "token": token}));
    }
    let (hello, from) = hear_from(&phone, TURN_END, WAIT);
    assert_heard(&recognise(&rt, &hello), "Hello, this is the county library");
    say(&phone, from.expect("the agent's audio"), &asked, 100);
    let (_, prompt) = rt.block_on(next_of(&mut conn, "prompt"));
    assert_heard(prompt["voicePrompt"].as_str().unwrap(), ASKED);
    // An utterance is bounded (its audio is kept while it plays): the token that takes it past
    // 4,096 characters is refused. (Dots: nothing worth rendering if the first is spoken.)
    conn.send_json(json!({"type": "text", "token": ".".repeat(4000)}));
    conn.send_json(json!({"type": "text", "token": ".".repeat(200)}));
    let (_, error) = rt.block_on(next_of(&mut conn, "error"));
    assert_eq!(
        error["description"],
        "Invalid message: text: an utterance of more than 4096 characters"
    );
    conn.send_json(json!({"type": "end", "handoffData": "{\"to\":\"agent\"}"}));
    let next = app.hits_to("/next", 1, WAIT);
    assert!(next[0].telnyx_signed);
    assert_eq!(next[0].param("CallSid"), Some(call.as_str()));
    assert_eq!(next[0].param("HandoffData"), Some("{\"to\":\"agent\"}"));
    assert_eq!(next[0].param("SessionStatus"), Some("ended"));
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
}

/// The webhook of `event` the app got at /telnyx (waited for).
fn telnyx_event(app: &App, event: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found = (app.hits_to("/telnyx", 0, WAIT).iter())
            .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
            .find(|v| v["data"]["event_type"] == event);
        if let Some(v) = found {
            return v["data"]["payload"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no {event} webhook");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Call Control's ConversationRelay started by `answer`'s `conversation_relay_config`: the
/// session on the answered leg, its settings from Telnyx's parameters (the greeting, custom
/// parameters and dynamic variables; a vendor-only setting refused), one at a time per call,
/// and its end when the application drops its socket as `call.conversation.ended` with
/// `reason: customer_disconnect`.
#[test]
fn call_control_runs_a_conversation_relay_until_the_app_drops_it() {
    use common::sdk_app::telnyx;
    const NUMBER: &str = "+15557770470";
    const HELLO: &str = "Hello, you have reached the county library information desk.";
    let net = Arc::new(Net::new(193));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let routes = Router::new().route("/telnyx", records());
    let app = rt.block_on(App::serve(&net.ip(9), routes));
    let hooks = app.base.trim_start_matches("http://").to_owned();
    let config = telnyx::config(&hooks, "", &[NUMBER]);
    let server = Server::start_with_speech(&net, &net.two_trunks(&config));
    let asked = piper(ASKED);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    let initiated = telnyx_event(&app, "call.initiated");
    let id = initiated["call_control_id"].as_str().unwrap().to_owned();
    let action = |name: &str, body: Value| {
        let headers = format!(
            "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
            telnyx::KEY
        );
        let path = format!("/v2/calls/{id}/actions/{name}");
        let (status, body) = server.request("POST", &path, &headers, body.to_string().as_bytes());
        (
            status,
            serde_json::from_slice::<Value>(&body).unwrap_or_default(),
        )
    };
    // The session starts with the answer (`conversation_relay_config`, the embedded form of
    // `conversation_relay_start`); the assistant's dynamic variables and the custom
    // parameters are its custom parameters.
    let start = json!({
        "url": ws.url("/relay"),
        "greeting": HELLO,
        "assistant": {"dynamic_variables": {"branch": "central"}},
        "custom_parameters": {"customer_id": "c1"},
        "transcription_engine": "Deepgram",
    });
    // One the session could not serve fails the answer, naming the parameter.
    let mut bad = start.clone();
    bad["voice_settings"] = json!({"api_key_ref": "my-elevenlabs-key"});
    let (status, refused) = action("answer", json!({"conversation_relay_config": bad}));
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        refused["errors"][0]["source"]["pointer"], "/voice_settings",
        "{refused}"
    );
    let (status, answered) = action("answer", json!({"conversation_relay_config": start}));
    assert_eq!(status, 200, "{answered}");

    let mut conn = rt.block_on(ws.accept(WAIT));
    let (_, setup) = rt.block_on(next_of(&mut conn, "setup"));
    assert_eq!(setup["callControlId"], id.as_str(), "{setup}");
    let relay = setup["sessionId"].as_str().unwrap().to_owned();
    assert_eq!(relay.len(), 36, "{setup}");
    assert_eq!(
        setup["customParameters"],
        json!({"branch": "central", "customer_id": "c1"})
    );
    // One session per call.
    let (status, refused) = action("conversation_relay_start", json!({"url": ws.url("/relay")}));
    assert_eq!(status, 422, "{refused}");
    let (greeting, from) = hear_from(&phone, TURN_END, WAIT);
    assert_heard(&recognise(&rt, &greeting), HELLO);
    say(&phone, from.expect("the greeting's source"), &asked, 100);
    let (_, prompt) = rt.block_on(next_of(&mut conn, "prompt"));
    assert_heard(prompt["voicePrompt"].as_str().unwrap(), ASKED);

    // The application drops its socket: the session ends, and the app hears why.
    drop(conn);
    let ended = telnyx_event(&app, "call.conversation.ended");
    assert_eq!(ended["reason"], "customer_disconnect", "{ended}");
    assert_eq!(ended["conversation_relay_id"], relay.as_str());
    assert_eq!(ended["call_control_id"], id.as_str());
    assert_eq!(action("hangup", json!({})).0, 200);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
}

/// The caller hangs up while the session runs: the session ends, and the `<Connect action>` is
/// requested all the same with `SessionStatus=completed` and the call's `completed` status (a
/// captured Twilio session shows both).
#[test]
fn a_caller_who_hangs_up_ends_the_session_and_the_action_hears_of_it() {
    const NUMBER: &str = "+17775550953";
    let net = Arc::new(Net::new(231));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let doc = format!(
        r#"<Response><Connect action="/after"><ConversationRelay url="{}"/></Connect></Response>"#,
        ws.url("/relay")
    );
    let router = Router::new().route("/agent", answers(doc)).route(
        "/after",
        answers("<Response><Say>Not run.</Say></Response>"),
    );
    let app = rt.block_on(App::serve(&net.ip(9), router));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(NUMBER, "voice_url = \"{base}/agent\"")],
    ));
    let server = Server::start_with_speech(&net, &config);
    let uac = scenario(&net, "uac_hang_up.xml", &[("pause_ms", "4000")]);
    let caller = std::thread::spawn({
        let (net, sip) = (net.clone(), server.sip);
        move || {
            let args = ["-s", NUMBER, "-m", "1"];
            run_sipp(&net, &uac, &net.ip(2), 5060, sip, &args, WAIT)
        }
    });
    let mut conn = rt.block_on(ws.accept(WAIT));
    let (_, setup) = rt.block_on(next_of(&mut conn, "setup"));
    let call = setup["callSid"].as_str().unwrap().to_owned();
    // The session ends with the call: the socket is closed.
    let closed = rt.block_on(async { conn.json(WAIT).await });
    assert!(closed.is_none(), "{closed:?}");
    let after = app.hits_to("/after", 1, WAIT);
    let a = &after[0];
    assert!(a.signed_with(TOKEN));
    assert_eq!(a.param("CallSid"), Some(call.as_str()));
    assert_eq!(a.param("SessionStatus"), Some("completed"));
    assert_eq!(a.param("CallStatus"), Some("completed"));
    assert_eq!(a.param("SessionId"), setup["sessionId"].as_str());
    assert!(a.param("SessionDuration").is_some());
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
}
