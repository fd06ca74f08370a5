//! Answering-machine detection on a labelled set made here: voicemail greetings (ending in a
//! beep, or in silence) and people answering, spoken by Piper and by espeak-ng and carried
//! as 8 kHz μ-law. Prints the accuracy; the beeps must be found where they are.

use std::time::Duration;
use switchboard_media::amd::{AmdConfig, Detector, GreetingEnd, Verdict};
use switchboard_media::{FRAME, Law, tone};

#[allow(unreachable_pub, dead_code)]
#[path = "../../tests/e2e/common/voices.rs"]
mod voices;
use voices::{espeak, piper};

const MACHINES: [&str; 5] = [
    "Hello, you have reached the voicemail of Alex Morgan. I cannot take your call right now. Please leave your name and number after the tone.",
    "Hi, this is Jordan. Sorry I missed you. Leave a message and I will get back to you as soon as I can.",
    "Thank you for calling Northside Dental. Our office is currently closed. Please leave a message after the beep.",
    "The person you are calling is not available. Please record your message at the tone. When you are finished, hang up.",
    "You have reached the Miller family. We are not home right now, but if you leave a message we will call you back.",
];
const HUMANS: [&str; 5] = [
    "Hello?",
    "Hello, who is this?",
    "Yes?",
    "Hi, this is Sam.",
    "Hello, speaking.",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    Human,
    /// A machine whose greeting ends in a beep this far in (ms), or in silence.
    Machine(Option<u64>),
}

fn over_the_line(samples: &[i16]) -> Vec<i16> {
    let mut law = vec![0u8; samples.len()];
    Law::Ulaw.encode(samples, &mut law);
    let mut back = vec![0i16; samples.len()];
    Law::Ulaw.decode(&law, &mut back);
    back
}

/// The call's audio from the answer: a moment of quiet, the words, then (machines) a beep or
/// nothing, then quiet.
fn call(words: &[i16], beep: bool) -> (Vec<i16>, Option<u64>) {
    let mut audio = tone::silence(300);
    audio.extend_from_slice(words);
    audio.extend(tone::silence(500));
    let at = beep.then_some(audio.len() as u64 / 8);
    if beep {
        audio.extend(tone::sines(&[1000.0], 8000.0, 500));
    }
    audio.extend(tone::silence(3000));
    (over_the_line(&audio), at)
}

fn run(audio: &[i16]) -> Vec<(Verdict, Duration)> {
    let mut d = Detector::new(AmdConfig {
        detect_message_end: true,
        ..Default::default()
    });
    let mut out = Vec::new();
    for c in audio.chunks(FRAME) {
        let mut f = [0i16; FRAME];
        f[..c.len()].copy_from_slice(c);
        d.push(&f);
        while let Some(v) = d.poll() {
            out.push((v, d.elapsed()));
        }
    }
    out
}

#[test]
fn a_labelled_set_of_greetings_and_hellos() {
    let mut set: Vec<(String, Vec<i16>, Label)> = Vec::new();
    for (voice, speak) in [("piper", piper as fn(&str) -> Vec<i16>), ("espeak", espeak)] {
        for (i, text) in MACHINES.iter().enumerate() {
            // Four of five greetings end with a beep, one in silence.
            let (audio, beep) = call(&speak(text), i != 4);
            set.push((format!("{voice}: {text}"), audio, Label::Machine(beep)));
        }
        for text in HUMANS {
            let (audio, _) = call(&speak(text), false);
            set.push((format!("{voice}: {text}"), audio, Label::Human));
        }
    }
    let mut right = 0;
    for (name, audio, label) in &set {
        let verdicts = run(audio);
        let last = verdicts.last().copied();
        let ok = match (label, last) {
            (Label::Human, Some((Verdict::Human, _))) => true,
            (
                Label::Machine(Some(beep_at)),
                Some((Verdict::MachineEnd(GreetingEnd::Beep { at }), _)),
            ) => {
                let at = at.as_millis() as u64;
                // The beep's start, within a frame or two of where it was put.
                assert!(
                    at.abs_diff(*beep_at) <= 60,
                    "{name}: beep at {at} ms, put at {beep_at} ms"
                );
                true
            }
            (Label::Machine(None), Some((Verdict::MachineEnd(GreetingEnd::Silence), _))) => true,
            _ => false,
        };
        if ok {
            right += 1;
        } else {
            eprintln!("  wrong: {name:?} → {verdicts:?}");
        }
    }
    let accuracy = right as f64 / set.len() as f64;
    eprintln!(
        "AMD on {} labelled calls (Piper and espeak-ng, μ-law): {right} right, accuracy {:.0} %",
        set.len(),
        accuracy * 100.0
    );
    assert!(accuracy >= 0.9, "accuracy {:.0} %", accuracy * 100.0);
}
