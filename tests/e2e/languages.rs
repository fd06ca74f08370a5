//! Speech in the caller's language, end to end against the real binary: a SIPp caller speaks
//! Spanish (espeak-ng's Spanish voice, as PCMU RTP) to a `<Gather input="speech"
//! language="es-MX">`, and the action gets the Spanish words, heard by a real Whisper server
//! run beside the local English engine (scripts/install-speech.sh installs both). That the
//! language is what the server is told shows where it changes what is heard: the same Spanish
//! audio, gathered as `en-US` by a server whose every language is Whisper's, comes back as
//! Whisper's English rendering of it. A ConversationRelay session that switches to Spanish
//! mid-call hears the caller's Spanish from then on. And a `<Say language="es-MX">` reaches the caller as
//! Spanish: the same recogniser, told Spanish, hears the text in what the phone received.

use crate::common;

use crate::conversation_relay::{TURN_END, WAIT, hear_from, next_of, say};
use axum::Router;
use common::voice_app::*;
use common::voices::{espeak_in, word_errors, words};
use common::whisper::Whisper;
use common::ws_app::WsServer;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const SPANISH: &str = "+17775551200";
const ENGLISH: &str = "+17775551201";
const SAY: &str = "+17775551202";
const RELAY: &str = "+17775551203";
const MAPPED: &str = "+17775551204";
const UNMAPPED: &str = "+17775551205";

/// What the caller says (espeak-ng's Spanish voice says it so that Whisper base hears it
/// exactly, through the 8 kHz μ-law of the call).
const PHRASE: &str = "Quiero hablar con ventas, por favor.";

async fn start_app(ip: &str, relay: &str) -> App {
    let gather = |language: &str| {
        answers(format!(
            r#"<Response><Gather input="speech" language="{language}" action="/heard" speechTimeout="auto"><Say>How can I help?</Say></Gather><Hangup/></Response>"#
        ))
    };
    let router = Router::new()
        .route("/spanish", gather("es-MX"))
        .route("/english", gather("en-US"))
        .route("/heard", answers("<Response><Hangup/></Response>"))
        .route(
            "/relay",
            answers(format!(
                r#"<Response><Connect><ConversationRelay url="{relay}" welcomeGreeting="Hello, how can I help?" transcriptionLanguage="en-US"/></Connect></Response>"#
            )),
        )
        .route("/mapped", relay_of(relay, "ElevenLabs", "Deepgram"))
        .route("/unmapped", relay_of(relay, "Google", "Google"))
        .route(
            "/say",
            answers(format!(
                r#"<Response><Say language="es-MX">{PHRASE}</Say><Hangup/></Response>"#
            )),
        );
    App::serve(ip, router).await
}

/// A ConversationRelay naming providers (`ttsProvider`, `transcriptionProvider`), English.
fn relay_of(relay: &str, tts: &str, transcription: &str) -> axum::routing::MethodRouter<App> {
    answers(format!(
        r#"<Response><Connect><ConversationRelay url="{relay}" welcomeGreeting="{GREETING}" ttsProvider="{tts}" transcriptionProvider="{transcription}" transcriptionLanguage="en-US"/></Connect></Response>"#
    ))
}

const GREETING: &str = "Hello there, how can I help?";

/// The `SpeechResult` the gather at `number` reports when the caller says [`PHRASE`].
fn gathered(net: &Arc<Net>, server: &Server, app: &App, number: &'static str) -> String {
    let (phone, caller) = call_with_phone(net, server, number);
    say_after_prompt(&phone, &espeak_in("es", PHRASE));
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    let heard = app.hits_to("/heard", 1, Duration::from_secs(10));
    let heard = heard
        .last()
        .unwrap_or_else(|| panic!("no action\n{}", server.log()));
    assert!(heard.signed_with(TOKEN));
    heard.param("SpeechResult").unwrap_or_default().to_owned()
}

/// The Spanish caller is heard in Spanish by the Whisper server the operator put beside the
/// local engine for `es` (`speech.http_languages`), English staying on the local one; and
/// `<Say language="es-MX">` speaks Spanish (espeak-ng's Spanish voice, the one Spanish voice
/// here): what the phone hears, given to the recogniser told Spanish, is the text.
#[test]
fn spanish_is_heard_by_the_engine_beside_the_local_one_and_spoken_by_say() {
    let net = Arc::new(Net::new(122));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let app = rt.block_on(start_app(&net.ip(9), &ws.url("/relay")));
    let whisper = Whisper::start(&net.ip(9));
    let (voice, spoken) = rt.block_on(speech_service(&net.ip(9)));
    let mut config = net.two_trunks(&numbers_config(
        &app.base,
        &[
            (SPANISH, "voice_url = \"{base}/spanish\""),
            (SAY, "voice_url = \"{base}/say\""),
            (RELAY, "voice_url = \"{base}/relay\""),
        ],
    ));
    config += &format!(
        "\n[speech]\nhttp_url = \"{}\"\nhttp_languages = [\"es\"]\n\
         tts_http_url = \"{}/v1/audio/speech\"\ntts_http_languages = [\"es\"]\n\
         tts_http_voice_male = \"es\"\ntts_http_voice_female = \"es\"\ntts_http_token = \"sk-voice\"\n",
        whisper.url, voice.base
    );
    let server = Server::start_with_speech(&net, &config);
    let log = server.log();
    assert!(
        log.contains("speech recognition: local") && log.contains("speech recognition: network"),
        "{log}"
    );
    let result = gathered(&net, &server, &app, SPANISH);
    let errors = word_errors(&words(PHRASE), &words(&result));
    assert!(
        errors <= 1,
        "heard {result:?} for {PHRASE:?}: {errors} words wrong\n{}",
        whisper.log()
    );

    let (phone, caller) = call_with_phone(&net, &server, SAY);
    let (heard, _) = listen(&phone, Duration::from_millis(1500), Duration::from_secs(20));
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    let (text, language) = whisper.transcribe(&heard, Some("es")).unwrap();
    let errors = word_errors(&words(PHRASE), &words(&text));
    assert!(
        language == "es" && errors <= 1,
        "the phone heard {text:?} ({language}) for {PHRASE:?}: {errors} words wrong\n{}",
        server.log()
    );
    // It was the operator's voice engine that spoke it (the text is one sentence: one piece).
    let asked = spoken.lock().unwrap().clone();
    let said = json!({"model": "tts-1", "input": PHRASE, "voice": "es", "response_format": "wav", "speed": 1.0});
    assert!(
        asked
            .iter()
            .any(|(auth, body)| auth == "Bearer sk-voice" && *body == said),
        "{asked:?}"
    );

    // A ConversationRelay session begun in English switches to Spanish mid-call (the app's
    // `language` message): the caller's Spanish is heard by the Spanish engine from then on,
    // and its prompt says so.
    let (phone, caller) = call_with_phone(&net, &server, RELAY);
    let mut conn = rt.block_on(ws.accept(WAIT));
    rt.block_on(next_of(&mut conn, "setup"));
    let (_, from) = hear_from(&phone, TURN_END, WAIT);
    let from = from.expect("the greeting came from Switchboard");
    conn.send_json(json!({"type": "language", "transcriptionLanguage": "es-MX"}));
    // The session takes the app's messages in order and listens again before the next: once
    // the phone hears the answer sent after the switch, the switch is in effect.
    conn.send_json(json!({"type": "text", "token": "Dígame.", "last": true}));
    hear_from(&phone, TURN_END, WAIT);
    say(&phone, from, &espeak_in("es", PHRASE), 400);
    let (_, prompt) = rt.block_on(next_of(&mut conn, "prompt"));
    let heard = prompt["voicePrompt"].as_str().unwrap_or_default();
    let errors = word_errors(&words(PHRASE), &words(heard));
    assert!(
        prompt["lang"] == "es-MX" && errors <= 1,
        "prompt {prompt} for {PHRASE:?}: {errors} words wrong\n{}",
        server.log()
    );
    conn.send_json(json!({"type": "end"}));
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
}

/// The language the application asks for is the one the HTTP engine tells the server: the
/// same Spanish words gathered as `en-US` come back in English (Whisper renders speech in the
/// language it is told), not as the Spanish the server would otherwise have heard.
#[test]
fn the_http_engine_tells_the_server_the_language_the_application_asked_for() {
    let net = Arc::new(Net::new(123));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9), "ws://127.0.0.1:1/unused"));
    let whisper = Whisper::start(&net.ip(9));
    let mut config = net.two_trunks(&numbers_config(
        &app.base,
        &[(ENGLISH, "voice_url = \"{base}/english\"")],
    ));
    config += &format!(
        "\n[speech]\nengine = \"http\"\nhttp_url = \"{}\"\n",
        whisper.url
    );
    let server = Server::start_with_speech(&net, &config);
    let result = words(&gathered(&net, &server, &app, ENGLISH));
    let spanish = words(PHRASE);
    assert!(
        !result.iter().any(|w| spanish.contains(w)) && result.iter().any(|w| w == "want"),
        "heard {result:?}: not Whisper's English rendering of {PHRASE:?}\n{}",
        whisper.log()
    );
}

/// Providers the operator maps to engines are served by them: the account maps ElevenLabs to
/// the operator's voice engine (`speech_providers`), the operator maps Deepgram to the
/// Whisper server (`speech.providers`), and neither engine has a language of its own. A
/// ConversationRelay naming them is greeted by the voice engine and heard by Whisper (the
/// server's requests counted in its log); one naming Google (mapped by nobody) stays on the
/// local engines: no request reaches either.
#[test]
fn providers_the_operator_maps_are_served_by_their_engines() {
    let net = Arc::new(Net::new(234));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let app = rt.block_on(start_app(&net.ip(9), &ws.url("/relay")));
    let whisper = Whisper::start(&net.ip(9));
    let (voice, spoken) = rt.block_on(speech_service(&net.ip(9)));
    let numbers = numbers_config(
        &app.base,
        &[
            (MAPPED, "voice_url = \"{base}/mapped\""),
            (UNMAPPED, "voice_url = \"{base}/unmapped\""),
        ],
    )
    .replacen(
        "caller_ids = [\"+1555*\"]\n",
        "caller_ids = [\"+1555*\"]\nspeech_providers = [\"ElevenLabs=http\"]\n",
        1,
    );
    let mut config = net.two_trunks(&numbers);
    config += &format!(
        "\n[speech]\nhttp_url = \"{}\"\ntts_http_url = \"{}/v1/audio/speech\"\n\
         tts_http_voice_male = \"en-us\"\ntts_http_voice_female = \"en-us\"\n\
         providers = [\"deepgram=http\"]\n",
        whisper.url, voice.base
    );
    let server = Server::start_with_speech(&net, &config);
    let transcriptions = || {
        whisper
            .log()
            .matches("POST /v1/audio/transcriptions")
            .count()
    };
    // One breath, no comma: a pause inside it would end the caller's turn early (with
    // `speechTimeout="auto"`, after what reads as a whole sentence).
    const ASKED: &str = "I want to talk to somebody in sales";

    // One session, to `number`: the greeting heard, the caller's words heard back as a prompt.
    let mut converse = |number: &'static str| {
        let (phone, caller) = call_with_phone(&net, &server, number);
        let mut conn = rt.block_on(ws.accept(WAIT));
        rt.block_on(next_of(&mut conn, "setup"));
        let (_, from) = hear_from(&phone, TURN_END, WAIT);
        let from = from.expect("the greeting came from Switchboard");
        let before = transcriptions();
        say(&phone, from, &espeak_in("en-us", ASKED), 400);
        let (_, prompt) = rt.block_on(next_of(&mut conn, "prompt"));
        let heard = prompt["voicePrompt"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let errors = word_errors(&words(ASKED), &words(&heard));
        assert!(
            errors <= 1,
            "heard {heard:?} for {ASKED:?}\n{}",
            server.log()
        );
        conn.send_json(json!({"type": "end"}));
        let run = caller.join().unwrap();
        assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
        transcriptions() - before
    };

    let by_whisper = converse(MAPPED);
    assert!(
        by_whisper >= 1,
        "Deepgram's words went elsewhere\n{}",
        whisper.log()
    );
    // Spoken a clause at a time, as a relay's text is.
    let greeted = spoken.lock().unwrap().clone();
    let said: Vec<&str> = (greeted.iter())
        .filter_map(|(_, body)| body["input"].as_str())
        .collect();
    assert_eq!(
        said.join(" "),
        GREETING,
        "ElevenLabs' greeting was not the voice engine's: {greeted:?}"
    );

    let by_whisper = converse(UNMAPPED);
    assert_eq!(
        by_whisper,
        0,
        "Google's words reached Whisper\n{}",
        whisper.log()
    );
    assert_eq!(
        spoken.lock().unwrap().len(),
        greeted.len(),
        "Google's greeting reached the voice engine"
    );
}

/// With nothing configured, a Spanish `<Gather>` is heard by the multilingual recogniser
/// scripts/install-speech.sh installs, which the server runs itself: not at its start, but at
/// the first utterance in Spanish; and it goes when the server goes (even killed).
#[test]
fn a_spanish_caller_is_heard_by_the_multilingual_server_the_server_starts_on_first_use() {
    let net = Arc::new(Net::new(85));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9), "ws://127.0.0.1:1/unused"));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(SPANISH, "voice_url = \"{base}/spanish\"")],
    ));
    let server = Server::start_with_speech(&net, &config);
    let started = "the multilingual recogniser's server started";
    let log = server.log();
    assert!(
        log.contains("speech recognition: local multilingual") && !log.contains(started),
        "{log}"
    );
    let result = gathered(&net, &server, &app, SPANISH);
    let errors = word_errors(&words(PHRASE), &words(&result));
    assert!(
        errors <= 1,
        "heard {result:?} for {PHRASE:?}: {errors} words wrong\n{}",
        server.log()
    );
    let log = server.log();
    let line = (log.lines().find(|l| l.contains(started)))
        .unwrap_or_else(|| panic!("no {started:?}:\n{log}"));
    let pid: u32 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"));
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains("faster_whisper_server"))
    };
    assert!(alive(), "{line}");
    // The server is killed (SIGKILL, as a test's process ends): its child goes with it.
    drop(server);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive() {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} outlived the server"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
