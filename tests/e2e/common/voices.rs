//! Speech for the tests, made here and offline: Piper's neural voice (from PyPI, installed by
//! scripts/install-speech.sh) and espeak-ng's robotic one, as 8 kHz samples.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where scripts/install-speech.sh put the models (SWITCHBOARD_SPEECH_DIR, set by
/// scripts/test.sh, or the default target/speech).
pub fn speech_dir() -> PathBuf {
    std::env::var_os("SWITCHBOARD_SPEECH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // Both the workspace's and the media crate's tests use this file.
            let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let root = if here.join("media").is_dir() {
                here
            } else {
                here.join("..")
            };
            root.join("target/speech")
        })
}

/// `text` spoken by Piper's en_US joe voice, as 8 kHz samples. Its generator's noise is off,
/// so that a phrase is the same audio every run: with it on, each rendering differs and a test
/// of what the recogniser hears would pass or fail by the draw.
pub fn piper(text: &str) -> Vec<i16> {
    let dir = speech_dir();
    let out = tempfile::NamedTempFile::with_suffix(".wav").unwrap();
    let mut child = Command::new(dir.join("venv/bin/piper"))
        .arg("-m")
        .arg(dir.join("piper/en_US-joe-medium.onnx"))
        .arg("-f")
        .arg(out.path())
        .args(["--noise-scale", "0", "--noise-w-scale", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("piper (scripts/install-speech.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "piper failed on {text:?}");
    switchboard_media::decode::decode_to_8k(std::fs::read(out.path()).unwrap(), Some("wav"))
        .unwrap()
}

/// `text` spoken by espeak-ng, as 8 kHz samples.
pub fn espeak(text: &str) -> Vec<i16> {
    espeak_in("en", text)
}

/// `text` spoken by espeak-ng's voice of `language` (`es`, `fr`…), as 8 kHz samples: the
/// voice of that language on any Debian machine (no natural voice of it comes from the
/// registries here).
pub fn espeak_in(language: &str, text: &str) -> Vec<i16> {
    let out = Command::new("espeak-ng")
        .args(["--stdout", "-s", "150", "-v", language, text])
        .output()
        .expect("espeak-ng");
    switchboard_media::decode::decode_to_8k(out.stdout, Some("wav")).unwrap()
}

/// Lower-case words without punctuation, for comparing what was heard with what was said.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            // An apostrophe inside a word stays ("don't"); one around it is a quote mark,
            // which the recogniser sometimes puts around a sentence ("'Anything else?'").
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
                .trim_matches('\'')
                .to_owned()
        })
        .map(|w| match w.as_str() {
            "2" => "two".to_owned(),
            _ => w,
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance between what was said and what was heard.
pub fn word_errors(said: &[String], heard: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, r) in said.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(r != h)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[heard.len()]
}

/// That `heard` is `said` but for at most one word: the engine's measured error rate on
/// these phrases is about 2 %, and a cut or noise the live path adds can cost a word; silence,
/// another phrase or a garbled one fail (each of these phrases has six words or more).
#[track_caller]
pub fn assert_heard(heard: &str, said: &str) {
    let (s, h) = (words(said), words(heard));
    assert!(s.len() >= 6, "a phrase too short for this check: {said:?}");
    let errors = word_errors(&s, &h);
    assert!(
        errors <= 1,
        "heard {heard:?} for {said:?}: {errors} words wrong"
    );
}

/// The digits in a transcript, whether written as digits or as words.
pub fn digits_in(text: &str) -> String {
    const NAMES: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .flat_map(|w| {
            let w = w.to_lowercase();
            if w.chars().all(|c| c.is_ascii_digit()) {
                w
            } else {
                (NAMES.iter().position(|n| *n == w))
                    .or((w == "oh").then_some(0))
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            }
            .chars()
            .collect::<Vec<_>>()
        })
        .collect()
}
