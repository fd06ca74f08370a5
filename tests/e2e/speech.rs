//! Speech input end to end against the real binary: a SIPp caller on a trunk, the number's
//! TwiML asks `<Gather input="speech">`, the phone speaks a phrase made by Piper as PCMU RTP,
//! and the action gets the recognised words (local engine, scripts/install-speech.sh) with a
//! valid X-Twilio-Signature; partial results arrive in order while the caller speaks.

use crate::common;

use axum::Router;
use common::hearing::recognise;
use common::voice_app::*;
use common::voices::{assert_heard, piper, speech_dir, words};
use common::*;
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::tone;

const FREE: &str = "+17775550900";
const DIGITS: &str = "+17775550901";
const VOICEMAIL: &str = "+17775550902";
const LIVE: &str = "+17775550903";
const SAY: &str = "+17775550905";
const LISTEN: &str = "+17775550906";
const LONG: &str = "+17775550907";

/// The first sentence of [`long_text`].
const LONG_FIRST: &str = "Thank you for calling the county library.";

/// Nearly the longest text `<Say>` takes (4,096 characters): some four minutes of speech.
fn long_text() -> String {
    let mut text = LONG_FIRST.to_owned();
    let mut n = 1;
    while text.len() < 3900 {
        text.push_str(&format!(
            " Service number {n} is described in the brochure at the front desk, with its hours."
        ));
        n += 1;
    }
    text
}

async fn start_app(ip: &str) -> App {
    let router = Router::new()
        .route(
            "/free",
            answers(r#"<Response><Gather input="speech" action="/heard" speechTimeout="auto" partialResultCallback="/partial" hints="account balance, billing department"><Say>How can I help?</Say></Gather><Say>Nothing heard.</Say><Hangup/></Response>"#),
        )
        .route(
            "/digits",
            answers(r#"<Response><Gather input="dtmf speech" action="/heard" speechTimeout="1" hints="$OOV_CLASS_DIGIT_SEQUENCE"><Say>Say your code.</Say></Gather><Hangup/></Response>"#),
        )
        .route(
            "/voicemail",
            answers(r#"<Response><Record transcribe="true" transcribeCallback="/transcribed" timeout="2" maxLength="20" action="/recorded"/></Response>"#),
        )
        .route("/recorded", answers("<Response><Hangup/></Response>"))
        .route("/transcribed", records())
        .route(
            "/live",
            answers(r#"<Response><Start><Transcription name="notes" statusCallbackUrl="/events" partialResults="true"/></Start><Say>Go ahead.</Say><Pause length="9"/><Stop><Transcription name="notes"/></Stop><Pause length="1"/><Hangup/></Response>"#),
        )
        .route("/events", records())
        .route(
            "/listen",
            answers(r#"<Response><Say>Go ahead.</Say><Pause length="12"/><Hangup/></Response>"#),
        )
        .route(
            "/say",
            answers(r#"<Response><Say voice="Polly.Joanna">Thank you for calling. Your package will arrive tomorrow morning.</Say><Hangup/></Response>"#),
        )
        .route(
            "/long",
            answers(format!(
                r#"<Response><Gather numDigits="1" action="/heard"><Say voice="Polly.Joanna">{}</Say></Gather><Hangup/></Response>"#,
                long_text()
            )),
        )
        .route("/heard", answers("<Response><Hangup/></Response>"))
        .route("/partial", records());
    App::serve(ip, router).await
}

fn start(net: &Arc<Net>, app: &App) -> Server {
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[
            (FREE, "voice_url = \"{base}/free\""),
            (DIGITS, "voice_url = \"{base}/digits\""),
            (VOICEMAIL, "voice_url = \"{base}/voicemail\""),
            (LIVE, "voice_url = \"{base}/live\""),
            (SAY, "voice_url = \"{base}/say\""),
            (LISTEN, "voice_url = \"{base}/listen\""),
            (LONG, "voice_url = \"{base}/long\""),
        ],
    ));
    Server::start_with_speech(net, &config)
}

#[test]
fn gather_speech_hears_the_callers_words_with_partial_results_in_order() {
    const PHRASE: &str = "i would like to check my account balance";
    let net = Arc::new(Net::new(111));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = start(&net, &app);
    let speech = piper(PHRASE);
    let (phone, caller) = call_with_phone(&net, &server, FREE);
    say_after_prompt(&phone, &speech);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    let heard = app.hits_to("/heard", 1, Duration::from_secs(5));
    let heard = heard
        .first()
        .unwrap_or_else(|| panic!("no action\n{}", server.log()));
    assert!(heard.signed_with(TOKEN));
    let result = heard.param("SpeechResult").unwrap_or_default();
    assert_heard(result, PHRASE);
    let confidence: f32 = heard.param("Confidence").unwrap().parse().unwrap();
    assert!((0.5..=1.0).contains(&confidence), "{confidence}");
    assert_eq!(heard.param("Digits"), None);

    // Partial results: numbered from 1 in order, each a beginning of the phrase's words.
    let partials = app.hits_to("/partial", 0, Duration::from_secs(2));
    // The log says how long each recognition took and how late the audio's reader ran:
    // partials come only while the caller still speaks.
    assert!(
        !partials.is_empty(),
        "no partial result for a 3 s phrase\n{}",
        server.log()
    );
    for (n, p) in partials.iter().enumerate() {
        assert!(p.signed_with(TOKEN));
        assert_eq!(
            p.param("SequenceNumber"),
            Some((n + 1).to_string().as_str())
        );
        assert_eq!(p.param("CallSid"), heard.param("CallSid"));
        let unstable = words(p.param("UnstableSpeechResult").unwrap());
        assert!(!unstable.is_empty());
        // A partial is an early, unstable version of the phrase: it may end mid-word and guess
        // the rest of a cut sentence wrong, but it begins as the phrase does.
        let said = words(PHRASE);
        let settled = &unstable[..(unstable.len() - 1).min(3)];
        assert!(
            said.starts_with(settled),
            "partial {unstable:?} does not begin as {said:?}"
        );
    }
}

/// The `SpeechResult` the free-speech `<Gather>` (/free) reports when a caller on network `n`
/// says `phrase` (Piper) after its prompt.
fn free_speech_result(n: u8, phrase: &str) -> String {
    let net = Arc::new(Net::new(n));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = start(&net, &app);
    let speech = piper(phrase);
    let (phone, caller) = call_with_phone(&net, &server, FREE);
    say_after_prompt(&phone, &speech);
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    let heard = app.hits_to("/heard", 1, Duration::from_secs(5));
    heard[0]
        .param("SpeechResult")
        .unwrap_or_default()
        .to_owned()
}

/// The caller's words reach the app spelt as the providers' engines spell them — "tomorrow" —
/// not as the model learnt them from old books ("to-morrow", which it writes for this phrase
/// in six of six renderings without the spelling step), so an app matching keywords finds them.
#[test]
fn gather_speech_spells_words_as_the_providers_do() {
    let result = free_speech_result(127, "we will ship it tomorrow");
    assert!(
        words(&result).contains(&"tomorrow".to_owned()) && !result.contains('-'),
        "{result:?}"
    );
}

/// Twilio's `<Gather>` masks profanity in its speech results unless `profanityFilter` is
/// `false`: so does Switchboard's (the first letter kept, the rest starred).
#[test]
fn gather_speech_masks_profanity_by_default() {
    let result = free_speech_result(217, "this fucking printer is broken again");
    assert!(
        result.to_lowercase().contains("f******") && !result.to_lowercase().contains("fuck"),
        "{result:?}"
    );
    assert!(words(&result).contains(&"printer".to_owned()), "{result:?}");
}

#[test]
fn gather_speech_with_the_digit_class_hint_gives_the_digits() {
    let net = Arc::new(Net::new(112));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = start(&net, &app);
    let speech = piper("four five six seven");
    let (phone, caller) = call_with_phone(&net, &server, DIGITS);
    say_after_prompt(&phone, &speech);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    let heard = app.hits_to("/heard", 1, Duration::from_secs(5));
    let heard = heard
        .first()
        .unwrap_or_else(|| panic!("no action\n{}", server.log()));
    assert_eq!(heard.param("SpeechResult"), Some("4567"));
}

#[test]
fn a_recording_is_transcribed_to_its_callback_and_the_transcriptions_resource() {
    const PHRASE: &str = "please send me a copy of the receipt";
    let net = Arc::new(Net::new(116));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = start(&net, &app);
    let speech = piper(PHRASE);
    let (phone, caller) = call_with_phone(&net, &server, VOICEMAIL);
    // After the beep, the caller speaks; two seconds of quiet end the recording.
    let mut audio = speech.clone();
    audio.extend(tone::silence(1500));
    say_after_prompt(&phone, &audio);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    let hit = app.hits_to("/transcribed", 1, Duration::from_secs(20));
    let hit = &hit[0];
    assert!(hit.signed_with(TOKEN));
    assert_eq!(hit.param("TranscriptionStatus"), Some("completed"));
    let text = hit.param("TranscriptionText").unwrap();
    assert_heard(text, PHRASE);
    let sid = hit.param("TranscriptionSid").unwrap().to_owned();
    let recording = hit.param("RecordingSid").unwrap().to_owned();
    assert!(sid.starts_with("TR") && sid.len() == 34);
    let url = hit.param("TranscriptionUrl").unwrap();
    assert!(
        url.ends_with(&format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Transcriptions/{sid}"
        )),
        "{url}"
    );

    // The resource: listed for the account and the recording, fetched, as text, deleted.
    let auth = Some((ACCOUNT, TOKEN));
    let base = format!("/2010-04-01/Accounts/{ACCOUNT}");
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    let (status, body) = server.http("GET", &format!("{base}/Transcriptions.json"), auth, "");
    assert_eq!(status, 200, "{body}");
    let listed = json(&body);
    assert_eq!(listed["transcriptions"][0]["sid"], sid.as_str());
    assert_eq!(listed["transcriptions"][0]["status"], "completed");
    assert_eq!(
        listed["transcriptions"][0]["recording_sid"],
        recording.as_str()
    );
    assert_eq!(listed["transcriptions"][0]["transcription_text"], text);
    let (_, body) = server.http(
        "GET",
        &format!("{base}/Recordings/{recording}/Transcriptions.json"),
        auth,
        "",
    );
    assert_eq!(json(&body)["transcriptions"].as_array().unwrap().len(), 1);
    let (status, body) = server.http("GET", &format!("{base}/Transcriptions/{sid}.txt"), auth, "");
    assert_eq!((status, body.as_str()), (200, text));
    let (status, _) = server.http(
        "GET",
        &format!("{base}/Transcriptions/{sid}.json"),
        None,
        "",
    );
    assert_eq!(status, 401);
    let (status, _) = server.http(
        "DELETE",
        &format!("{base}/Transcriptions/{sid}.json"),
        auth,
        "",
    );
    assert_eq!(status, 204);
    let (status, body) = server.http(
        "GET",
        &format!("{base}/Transcriptions/{sid}.json"),
        auth,
        "",
    );
    assert_eq!(status, 404);
    assert_eq!(json(&body)["code"], 20404);
}

#[test]
fn real_time_transcription_events_arrive_in_order_while_the_caller_speaks() {
    const FIRST: &str = "my flight was cancelled this morning";
    const SECOND: &str = "could you call me back this afternoon";
    let net = Arc::new(Net::new(117));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = start(&net, &app);
    let (first, second) = (piper(FIRST), piper(SECOND));
    let (phone, caller) = call_with_phone(&net, &server, LIVE);
    let mut audio = first.clone();
    audio.extend(tone::silence(1200));
    audio.extend_from_slice(&second);
    audio.extend(tone::silence(1500));
    say_after_prompt(&phone, &audio);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    let events = app.hits_to("/events", 4, Duration::from_secs(10));
    let last = events.last().unwrap();
    assert_eq!(
        last.param("TranscriptionEvent"),
        Some("transcription-stopped"),
        "{events:#?}"
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.param("TranscriptionEvent").unwrap())
        .collect();
    assert_eq!(kinds[0], "transcription-started");
    let sid = events[0].param("TranscriptionSid").unwrap();
    assert!(sid.starts_with("GT"));
    for (n, e) in events.iter().enumerate() {
        assert!(e.signed_with(TOKEN));
        assert_eq!(e.param("SequenceId"), Some((n + 1).to_string().as_str()));
        assert_eq!(e.param("TranscriptionSid"), Some(sid));
        assert_eq!(e.param("TranscriptionName"), Some("notes"));
    }
    let contents: Vec<(serde_json::Value, bool)> = events
        .iter()
        .filter(|e| e.param("TranscriptionEvent") == Some("transcription-content"))
        .map(|e| {
            assert_eq!(e.param("Track"), Some("inbound_track"));
            let data = serde_json::from_str(e.param("TranscriptionData").unwrap()).unwrap();
            (data, e.param("Final") == Some("true"))
        })
        .collect();
    let finals: Vec<String> = contents
        .iter()
        .filter(|(_, f)| *f)
        .map(|(d, _)| d["transcript"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(finals.len(), 2, "{contents:?}");
    assert_heard(&finals[0], FIRST);
    assert_heard(&finals[1], SECOND);
    // Partial results came while each sentence was spoken, before its final one.
    let first_final = contents.iter().position(|(_, f)| *f).unwrap();
    assert!(
        first_final > 0,
        "no partial result before the first final: {contents:?}"
    );
    for (d, f) in &contents {
        if *f {
            let c = d["confidence"].as_f64().unwrap();
            assert!((0.5..=1.0).contains(&c), "{c}");
        }
    }
}

/// Switchboard's extension: a stream that asks for `transcripts` gets `transcription`
/// messages beside the caller's audio, in the stream's own numbering.
#[test]
fn a_media_stream_with_transcripts_gets_the_callers_words_beside_the_audio() {
    const PHRASE: &str = "my internet has been down since yesterday";
    const STREAMED: &str = "+17775550904";
    let net = Arc::new(Net::new(118));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(common::ws_app::WsServer::start(&net.ip(9)));
    let twiml = format!(
        r#"<Response><Start><Stream url="{}" transcripts="true"/></Start><Say>Go ahead.</Say><Pause length="8"/><Hangup/></Response>"#,
        ws.url("/media")
    );
    let app = rt.block_on(App::serve(
        &net.ip(9),
        Router::new().route("/streamed", answers(twiml)),
    ));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(STREAMED, "voice_url = \"{base}/streamed\"")],
    ));
    let server = Server::start_with_speech(&net, &config);
    let speech = piper(PHRASE);
    let (phone, caller) = call_with_phone(&net, &server, STREAMED);
    let mut conn = rt.block_on(ws.accept(Duration::from_secs(10)));
    let mut audio = speech.clone();
    audio.extend(tone::silence(1500));
    say_after_prompt(&phone, &audio);
    let (before, (_, last)) = rt.block_on(async {
        let mut seen = Vec::new();
        loop {
            let (at, v) = conn
                .json(Duration::from_secs(10))
                .await
                .expect("the stream");
            if v["event"] == "transcription" && v["transcription"]["final"] == true {
                return (seen, (at, v));
            }
            seen.push(v);
        }
    });
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    let t = &last["transcription"];
    assert_eq!(t["track"], "inbound");
    assert_heard(t["transcript"].as_str().unwrap(), PHRASE);
    assert!(
        (0.5..=1.0).contains(&t["confidence"].as_f64().unwrap()),
        "{t}"
    );
    // The caller's audio came on the same stream, and at least one interim result before the
    // final one; sequence numbers run on through both kinds of message.
    let media = before.iter().filter(|m| m["event"] == "media").count();
    assert!(media > 100, "{media} media messages");
    let interim: Vec<_> = before
        .iter()
        .filter(|m| m["event"] == "transcription")
        .collect();
    assert!(!interim.is_empty(), "no interim transcript");
    assert!(interim.iter().all(|m| m["transcription"]["final"] == false));
    let seqs: Vec<u64> = before
        .iter()
        .chain([&last])
        // `connected` comes before the numbering starts.
        .filter_map(|m| m["sequenceNumber"].as_str())
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(last["streamSid"], before[1]["streamSid"]);
}

/// English `<Say>` is spoken by the Piper voice when it is installed: what reaches the phone
/// is recognised (by the same local engine, in this test) as the text that was said.
#[test]
fn english_say_is_spoken_by_the_neural_voice() {
    let net = Arc::new(Net::new(119));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = start(&net, &app);
    assert!(
        server.log().contains("engine=\"piper+espeak-ng\""),
        "{}",
        server.log()
    );
    let (phone, caller) = call_with_phone(&net, &server, SAY);
    let (heard, _) = listen(&phone, Duration::from_millis(800), Duration::from_secs(15));
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    assert!(heard.len() > 8000 * 2, "{} samples", heard.len());
    assert_heard(
        &recognise(&rt, &heard),
        "thank you for calling your package will arrive tomorrow morning",
    );
}

/// A long `<Say>` is heard from its first sentence while the rest still renders (Piper renders
/// it piece by piece into the playing prompt), a digit barges in, and the rendering goes on to
/// its end so that it is cached whole for the next caller.
#[test]
fn a_long_say_is_heard_from_its_first_sentence_while_the_rest_renders() {
    let net = Arc::new(Net::new(133));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = start(&net, &app);
    let rendered = format!("speech rendered chars={}", long_text().chars().count());
    let (phone, caller) = call_with_phone(&net, &server, LONG);
    // Four seconds of what the phone receives from the first loud frame on.
    phone
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (mut heard, mut endpoint, mut buf) = (Vec::new(), None, [0u8; 2048]);
    while heard.len() < 4 * 8000 {
        let (n, from) = phone.recv_from(&mut buf).expect("the prompt");
        if n <= 12 || buf[1] & 0x7f != 0 {
            continue;
        }
        endpoint = Some(from);
        let mut frame = vec![0i16; n - 12];
        switchboard_media::Law::Ulaw.decode(&buf[12..n], &mut frame);
        if heard.is_empty() && frame.iter().all(|s| s.abs() < 300) {
            continue;
        }
        heard.extend(frame);
    }
    assert!(
        !server.log().contains(&rendered),
        "the whole text rendered before its first sentence was heard:\n{}",
        server.log()
    );
    let text = recognise(&rt, &heard);
    let first = words(LONG_FIRST);
    let heard_words = words(&text);
    assert_heard(
        &heard_words[..first.len().min(heard_words.len())].join(" "),
        LONG_FIRST,
    );
    // A digit ends the gather; the call hangs up.
    let mut seq = 1;
    send_rfc4733(&phone, endpoint.unwrap(), 1, &mut seq, 160_000);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    let action = app.hits_to("/heard", 1, Duration::from_secs(5));
    assert_eq!(action[0].param("Digits"), Some("1"));
    // The rendering finishes after the call, and once.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !server.log().contains(&rendered) {
        assert!(
            std::time::Instant::now() < deadline,
            "the rendering never finished\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.log().matches(&rendered).count(), 1);
}

/// `speech.engine = "http"`: each utterance goes as a WAV file to a transcription service in
/// the OpenAI audio API's shape. The service here is the test's, recognising with the local
/// model in this process; Switchboard's Gather gets its words.
#[test]
fn a_network_engine_chosen_by_configuration_hears_the_gather() {
    use axum::http::HeaderMap;
    const PHRASE: &str = "how much does the premium plan cost";
    let net = Arc::new(Net::new(120));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = switchboard_speech::moonshine::Model::find(&speech_dir()).unwrap();
    let pool = switchboard_speech::Pool::start(model.factory().unwrap(), 1, 4, true);
    let asked = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let service = {
        let (pool, asked) = (pool.clone(), asked.clone());
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (pool, asked) = (pool.clone(), asked.clone());
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let boundary = header("content-type")
                    .split("boundary=")
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let parts = multipart(&body, &boundary);
                let model = String::from_utf8_lossy(&parts["model"]).into_owned();
                asked.lock().unwrap().push((header("authorization"), model));
                let (samples, _) = switchboard_media::record::read_wav(&parts["file"]).unwrap();
                let audio: Vec<f32> = samples.iter().map(|&s| s as f32 / 32768.0).collect();
                let r = pool
                    .recognize(audio.into())
                    .unwrap()
                    .await
                    .unwrap()
                    .unwrap();
                axum::Json(serde_json::json!({ "text": r.text }))
            }
        })
    };
    let app = rt.block_on(start_app(&net.ip(9)));
    let stt = rt.block_on(App::serve(
        &net.ip(9),
        Router::new().route("/v1/audio/transcriptions", service),
    ));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(FREE, "voice_url = \"{base}/free\"")],
    ));
    let url = format!("{}/v1/audio/transcriptions", stt.base);
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_SPEECH__ENGINE", "http"),
            ("SWITCHBOARD_SPEECH__HTTP_URL", &url),
            ("SWITCHBOARD_SPEECH__HTTP_TOKEN", "sk-local"),
            ("SWITCHBOARD_SPEECH__WORKERS", "1"),
        ],
    );
    assert!(
        server.log().contains("speech recognition: network"),
        "{}",
        server.log()
    );
    let speech = piper(PHRASE);
    let (phone, caller) = call_with_phone(&net, &server, FREE);
    say_after_prompt(&phone, &speech);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );
    let heard = app.hits_to("/heard", 1, Duration::from_secs(5));
    let result = heard[0].param("SpeechResult").unwrap_or_default();
    assert_heard(result, PHRASE);
    let asked = asked.lock().unwrap().clone();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|(auth, model)| auth == "Bearer sk-local" && model == "whisper-1"),
        "{asked:?}"
    );
}

/// The parts of a multipart/form-data body by name (enough for the test's service).
fn multipart(body: &[u8], boundary: &str) -> std::collections::HashMap<String, Vec<u8>> {
    let delimiter = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut parts = std::collections::HashMap::new();
    let mut at = find(body, delimiter.as_bytes(), 0).unwrap() + delimiter.len();
    while let Some(head_end) = find(body, b"\r\n\r\n", at) {
        let head = String::from_utf8_lossy(&body[at..head_end]).into_owned();
        let Some(next) = find(body, delimiter.as_bytes(), head_end) else {
            break;
        };
        let name = head
            .split("name=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_owned();
        // The part ends with CRLF before the next delimiter.
        parts.insert(name, body[head_end + 4..next - 2].to_vec());
        at = next + delimiter.len();
    }
    parts
}

/// The REST way to the same real-time transcription, driven by Twilio's official Python SDK
/// (tests/compat/twilio_transcriptions.py): `calls(sid).transcriptions.create`, then
/// `.transcriptions(name).update(status="stopped")`.
#[test]
fn the_official_sdk_starts_and_stops_a_real_time_transcription() {
    use common::sdk_app::{expect_step, spawn_script, summary_of};
    const PHRASE: &str = "the package never arrived at my house";
    let Some(python) = compat_env("SWITCHBOARD_TWILIO_PYTHON") else {
        return;
    };
    let net = Arc::new(Net::new(121));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let server = start(&net, &app);
    let speech = piper(PHRASE);
    let (phone, caller) = call_with_phone(&net, &server, LISTEN);
    let asked = app.hits_to("/listen", 1, Duration::from_secs(10));
    let call = asked[0].param("CallSid").unwrap().to_owned();
    // The document is fetched while the call rings; the application may start a transcription
    // only once the call is answered (in progress).
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while json(&server.http("GET", &path, Some((ACCOUNT, TOKEN)), "").1)["status"] != "in-progress"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the call was not answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let callback = format!("{}/events", app.base);
    let (mut child, mut lines) = spawn_script(
        &python,
        "twilio_transcriptions.py",
        &server,
        &[ACCOUNT, TOKEN, &call, &callback],
    );
    expect_step(&mut child, &mut lines, "STARTED", &server);
    let mut audio = speech.clone();
    audio.extend(tone::silence(1500));
    say_after_prompt(&phone, &audio);
    let finals = || {
        app.hits_to("/events", 0, Duration::ZERO)
            .iter()
            .filter(|e| e.param("Final") == Some("true"))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while finals() == 0 {
        assert!(std::time::Instant::now() < deadline, "no final result");
        std::thread::sleep(Duration::from_millis(50));
    }
    use std::io::Write;
    child.stdin.as_mut().unwrap().write_all(b"stop\n").unwrap();
    let summary = summary_of(child, lines, &server);
    assert_eq!(summary["started"]["status"], "in-progress", "{summary}");
    assert_eq!(summary["started"]["name"], "notes");
    assert_eq!(summary["started"]["call_sid"], call.as_str());
    assert_eq!(summary["stopped"]["status"], "stopped");
    assert_eq!(summary["stopped"]["sid"], summary["started"]["sid"]);
    assert_eq!(summary["unknown"], 404);
    let sid = summary["started"]["sid"].as_str().unwrap();
    assert!(sid.starts_with("GT"));
    let events = app.hits_to("/events", 3, Duration::from_secs(5));
    let events = app.hits_to("/events", events.len().max(3), Duration::from_secs(5));
    assert!(
        events
            .iter()
            .all(|e| e.signed_with(TOKEN) && e.param("TranscriptionSid") == Some(sid))
    );
    assert_eq!(
        events[0].param("TranscriptionEvent"),
        Some("transcription-started")
    );
    let last_final = events
        .iter()
        .rfind(|e| e.param("Final") == Some("true"))
        .unwrap();
    let data: serde_json::Value =
        serde_json::from_str(last_final.param("TranscriptionData").unwrap()).unwrap();
    assert_heard(data["transcript"].as_str().unwrap(), PHRASE);
    // Stopped: its last event says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let all = app.hits_to("/events", 1, Duration::ZERO);
        if all.last().unwrap().param("TranscriptionEvent") == Some("transcription-stopped") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{all:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(phone);
    let _ = caller.join();
}

/// A server with no speech engine (its models not installed) reports a `<Start><Transcription>`
/// it cannot start as Twilio reports a failed one: a signed `transcription-error` event
/// (`TranscriptionErrorCode` 32651, the provider's error) at its statusCallbackUrl and the
/// account's Notification for the call, instead of a line in its own log; the call goes on
/// with its document. A speech `<Gather>` there hears no input and warns the account (13331).
#[test]
fn a_transcription_without_an_engine_is_reported_to_the_application() {
    let net = Arc::new(Net::new(28));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[
            (LIVE, "voice_url = \"{base}/live\""),
            (FREE, "voice_url = \"{base}/free\""),
        ],
    ));
    // Its data directory holds no models.
    let server = Server::start(&net, &config);
    let (_phone, caller) = call_with_phone(&net, &server, LIVE);
    let events = app.hits_to("/events", 1, Duration::from_secs(10));
    let error = &events[0];
    assert_eq!(
        error.param("TranscriptionEvent"),
        Some("transcription-error"),
        "{events:#?}"
    );
    assert_eq!(error.param("TranscriptionErrorCode"), Some("32651"));
    assert!(
        error
            .param("TranscriptionError")
            .is_some_and(|m| m.contains("not available")),
        "{events:#?}"
    );
    assert!(
        error
            .param("TranscriptionSid")
            .is_some_and(|s| s.starts_with("GT"))
    );
    assert_eq!(error.param("TranscriptionName"), Some("notes"));
    assert!(error.signed_with(TOKEN));
    let call = error.param("CallSid").unwrap().to_owned();
    // The document went on: the call ends with its <Hangup/>.
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    let (status, body) = server.http(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{call}/Notifications.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let codes: Vec<&str> = (listed["notifications"].as_array().unwrap().iter())
        .filter_map(|n| n["error_code"].as_str())
        .collect();
    assert!(codes.contains(&"32651"), "{body}");
    // A speech <Gather> on such a server is no input, and the account is told (Twilio's
    // warning 13331: the language is not served).
    let (_phone, caller) = call_with_phone(&net, &server, FREE);
    let asked = app.hits_to("/free", 1, Duration::from_secs(10));
    let gathered = asked[0].param("CallSid").unwrap().to_owned();
    // Nothing heard: the document goes on past the <Gather> to its <Hangup/>.
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    assert!(
        app.hits_to("/heard", 0, Duration::from_millis(10))
            .is_empty()
    );
    let (status, body) = server.http(
        "GET",
        &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{gathered}/Notifications.json"),
        Some((ACCOUNT, TOKEN)),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let notice = (listed["notifications"].as_array().unwrap().iter())
        .find(|n| n["error_code"] == "13331")
        .unwrap_or_else(|| panic!("no 13331 in {body}"));
    assert_eq!(notice["log"], "1", "a warning: {notice}");
    assert!(
        notice["message_text"]
            .as_str()
            .is_some_and(|m| m.contains("no+speech+recognition")),
        "{notice}"
    );
}

/// A first start without the models: the server runs, fetches them with its installer (here
/// one that copies what scripts/install-speech.sh installed, so that the test reaches no
/// registry), logs the installer's progress, and loads them without a restart: the caller's
/// words are heard from then on.
#[test]
fn a_first_start_fetches_the_missing_models_and_loads_them_without_a_restart() {
    const PHRASE: &str = "i would like to check my account balance";
    let net = Arc::new(Net::new(242));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(start_app(&net.ip(9)));
    let installer = net.path("fetch-models.sh");
    std::fs::write(
        &installer,
        format!(
            "#!/bin/sh\nset -e\necho \"fetching the models into $1\" >&2\nmkdir -p \"$1\"\n\
             cp -r {0}/moonshine-base-en {0}/lib {0}/piper \"$1\"/\necho \"installed\" >&2\n",
            speech_dir().display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&installer, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut config = net.two_trunks(&numbers_config(
        &app.base,
        &[(FREE, "voice_url = \"{base}/free\"")],
    ));
    config += &format!("\n[speech]\nfetch_command = \"{}\"\n", installer.display());
    let env = [
        ("SWITCHBOARD_SPEECH__FETCH", "true"),
        ("SWITCHBOARD_SPEECH__WORKERS", "1"),
    ];
    let server = Server::start_with(&net, &config, &env);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ready = |log: String| {
        log.contains("speech engine ready") && log.contains("speech models fetched and loaded")
    };
    while !ready(server.log()) {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.log();
    assert!(
        log.contains("speech recognition unavailable")
            && log.contains("fetching the models into")
            && log.contains("speech models fetched and loaded"),
        "{log}"
    );
    let (phone, caller) = call_with_phone(&net, &server, FREE);
    say_after_prompt(&phone, &piper(PHRASE));
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());
    let heard = app.hits_to("/heard", 1, Duration::from_secs(5));
    assert_heard(heard[0].param("SpeechResult").unwrap_or_default(), PHRASE);
}
