//! Telnyx speech against the real binary, driven by Telnyx's official Python SDK
//! (tests/compat/telnyx_speech.py): a dial with `answering_machine_detection=detect_beep`
//! reaches a callee (this test) that plays a voicemail greeting and its beep; the app gets
//! `call.machine.detection.ended` (machine) and `call.machine.greeting.ended`
//! (beep_detected); the dial's `transcription` runs from the answer (a second
//! `transcription_start` is refused with 90054), and the callee's words (spoken by Piper, sent
//! as PCMU RTP) come back as `call.transcription`, every webhook verified by the SDK's
//! `webhooks.unwrap`. The words are recorded meanwhile with `transcription`, and the saved
//! recording's `call.recording.transcription.saved` carries them.

use crate::common;

use common::sdk_app::telnyx::{self, CONNECTION, KEY, PUBLIC_KEY};
use common::sdk_app::{all_verified, expect_step, spawn_script, summary_of};
use common::voices::{assert_heard, espeak, piper};
use common::*;
use std::time::Duration;
use switchboard_media::tone;

const GREETING: &str = "Hi, this is Jordan. Sorry I missed you. Leave a message and I will get back to you as soon as I can.";
const PHRASE: &str = "i would like to book a table for two";

#[test]
fn the_official_telnyx_sdk_hears_a_machine_and_a_transcript() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let net = Net::new(115);
    let hooks = format!("{}:18080", net.ip(6));
    let config = net.two_trunks(&telnyx::config(&hooks, "", &[]));
    let server = Server::start_with_speech(&net, &config);
    let phone = std::net::UdpSocket::bind(format!("{}:0", net.ip(5))).unwrap();
    let (_callee, media) = callee_telling_media(&net, &phone);
    let (greeting, phrase) = (espeak(GREETING), piper(PHRASE));

    let (mut child, mut lines) = spawn_script(
        &python,
        "telnyx_speech.py",
        &server,
        &[KEY, PUBLIC_KEY, CONNECTION, &hooks],
    );
    expect_step(&mut child, &mut lines, "ANSWERED", &server);
    let to = media();
    let mut audio = tone::silence(300);
    audio.extend(&greeting);
    audio.extend(tone::silence(400));
    audio.extend(tone::sines(&[1000.0], 8000.0, 500));
    audio.extend(tone::silence(500));
    send_audio(&phone, to, &audio, 1);
    expect_step(&mut child, &mut lines, "TRANSCRIBING", &server);
    let mut audio = tone::silence(300);
    audio.extend(&phrase);
    audio.extend(tone::silence(1500));
    send_audio(&phone, to, &audio, 2000);

    let summary = summary_of(child, lines, &server);
    assert!(all_verified(&summary), "{summary}");
    let events = summary["events"].as_array().unwrap();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e[0] == kind)
            .map(|e| &e[1])
            .collect()
    };
    let ccid = summary["call_control_id"].as_str().unwrap();
    let detection = of("call.machine.detection.ended");
    assert_eq!(detection.len(), 1, "{summary}");
    assert_eq!(detection[0]["result"], "machine");
    assert_eq!(detection[0]["call_control_id"], ccid);
    let greeting = of("call.machine.greeting.ended");
    assert_eq!(greeting[0]["result"], "beep_detected", "{summary}");
    assert_eq!(summary["again"], "90054");
    let transcripts = of("call.transcription");
    let finals: Vec<_> = transcripts
        .iter()
        .filter(|t| t["transcription_data"]["is_final"] == true)
        .collect();
    // The greeting's (espeak, transcribed from the answer), then the words'.
    assert_eq!(finals.len(), 2, "{summary}");
    let data = &finals[1]["transcription_data"];
    assert_eq!(data["transcription_track"], "inbound");
    assert_heard(data["transcript"].as_str().unwrap(), PHRASE);
    let confidence = data["confidence"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&confidence), "{confidence}");
    // The recording of the words, transcribed once saved.
    let saved = of("call.recording.saved");
    let transcribed = of("call.recording.transcription.saved");
    assert_eq!((saved.len(), transcribed.len()), (1, 1), "{summary}");
    let t = transcribed[0];
    assert_eq!(t["recording_id"], saved[0]["recording_id"]);
    assert_eq!(t["call_control_id"], ccid);
    assert_eq!(t["status"], "completed");
    let id = t["recording_transcription_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_heard(t["transcription_text"].as_str().unwrap(), PHRASE);
    server.stop();
}

/// Telnyx's verified numbers through the official SDK (tests/compat/telnyx_verified_numbers.py):
/// a number outside the account's is refused as `from`; a verification call speaks a code,
/// which this test — the phone — hears and recognises with the local engine; the SDK submits
/// it (a wrong one first), the number is then listed and may be presented, and once deleted
/// not any more.
#[test]
fn the_official_telnyx_sdk_verifies_a_number_by_its_spoken_code() {
    use common::hearing::recognise;
    use common::rig::rtp_socket;
    use common::sdk_app::sdk_script_with;
    use common::voices::digits_in;
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let net = Net::new(142);
    let route = "[[routes]]\npattern = \"^\\\\+?1999\"\ntrunk = \"carrier-b\"\n";
    let hooks = format!("{}:18080", net.ip(6));
    let config = net.two_trunks(&(telnyx::config(&hooks, "", &[]) + route));
    let server = Server::start_with_speech(&net, &config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut phone, mut answerer) = (None, None);
    sdk_script_with(
        &python,
        &server,
        "telnyx_verified_numbers.py",
        &[KEY, CONNECTION],
        |line| match line {
            "HEAR" => {
                let socket = rtp_socket(&net, 5);
                let (callee, _media) = callee_telling_media(&net, &socket);
                phone = Some((socket, callee));
                Some("done".into())
            }
            "CODE" => {
                let (socket, callee) = phone.take().expect("HEAR before CODE");
                let (heard, _) = common::voice_app::listen(
                    &socket,
                    Duration::from_secs(2),
                    Duration::from_secs(60),
                );
                if !callee.finished_ok(Duration::from_secs(30)) {
                    return Some("Switchboard did not hang up".into());
                }
                let text = recognise(&rt, &heard);
                eprintln!("the verification call said {text:?}");
                // The code is read twice ("… once again, your code is …"): like a person, the
                // phone takes a reading it heard six digits in, so one misheard digit in the
                // first reading does not shift the code into the second.
                // A person who knows a code is digits also hears "free" as three: the
                // recogniser, which does not, takes Piper's "three" for "free" on some runs.
                let lower = text.to_lowercase();
                let as_digits = |reading: &str| digits_in(&heard_as_digits(reading));
                let readings: Vec<String> = lower.split("again").map(as_digits).collect();
                let code = (readings.iter().find(|r| r.len() == 6))
                    .cloned()
                    .unwrap_or_else(|| as_digits(&lower).chars().take(6).collect());
                Some(code)
            }
            "ANSWER" => {
                let uas = scenario(&net, "uas_answer.xml", &[]);
                answerer = Some(SippServer::start(
                    &net,
                    &uas,
                    &net.ip(3),
                    5060,
                    &["-m", "1"],
                ));
                Some("done".into())
            }
            _ => None,
        },
    );
    drop(answerer);
    server.stop();
}

/// A reading of digits with the words that sound like one written as it: a code's listener
/// expects nothing else there (the prompt around it has none of these words, "a" included).
fn heard_as_digits(reading: &str) -> String {
    fn sounds_like(w: &str) -> &str {
        match w {
            "free" | "tree" => "three",
            "to" | "too" => "two",
            "for" | "fore" => "four",
            "won" => "one",
            // Piper's "eight", said alone between commas, is heard as the article on some runs.
            "ate" | "a" => "eight",
            w => w,
        }
    }
    // Piper's "eight" also comes out glued to the numerals after it ("a19903"): letters and
    // numerals are words of their own.
    let mut spaced = String::with_capacity(reading.len() * 2);
    let mut last: Option<char> = None;
    for c in reading.chars() {
        if last.is_some_and(|l| l.is_ascii_digit() != c.is_ascii_digit() && l.is_alphanumeric()) {
            spaced.push(' ');
        }
        spaced.push(c);
        last = Some(c);
    }
    (spaced.split(|c: char| !c.is_alphanumeric()))
        .map(sounds_like)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_reading_of_digits_takes_the_words_that_sound_like_them() {
    let words = |r: &str| {
        (heard_as_digits(r).split_whitespace())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(words("codis a19903."), ["codis", "eight", "19903"]);
    assert_eq!(words("free, a, to"), ["three", "eight", "two"]);
    let heard = "hello, your verification codis a19903. once again, your codis a19903. goodbye.";
    let readings: Vec<String> = (heard.split("again"))
        .map(|r| common::voices::digits_in(&heard_as_digits(r)))
        .collect();
    assert_eq!(readings, ["819903", "819903"]);
}
