//! Answering-machine detection on the called party's audio, the way the classic detectors do
//! it (Asterisk's `app_amd`, and the timing parameters Twilio's `MachineDetection*` and
//! Telnyx's `answering_machine_detection_config` expose): each 20 ms frame is voice, a tone or
//! silence; a person answers with a short "Hello?" and waits, a machine talks on through its
//! greeting and ends it with a beep or with silence; a fax calls with its tones. Sans-IO:
//! frames and their time go in, one verdict (and, when asked for, the end of the greeting)
//! comes out.

use crate::tone::share_at;
use std::time::Duration;

/// A frame quieter than this (RMS of 16-bit samples) is silence.
const VOICE_RMS: f64 = 300.0;
/// A frame whose energy is this concentrated at its own frequency is a tone, not a voice.
const TONE_SHARE: f32 = 0.8;
/// A beep: one steady tone for this long, between these frequencies.
const BEEP_FRAMES: u32 = 8;
const BEEP_HZ: std::ops::RangeInclusive<f32> = 300.0..=2500.0;
/// A tone's frequency may wander this much between frames (zero-crossing estimates).
const TONE_DRIFT_HZ: f32 = 40.0;
/// Fax: the calling tone (CNG, 1100 Hz) or the answer tone (CED, 2100 Hz) for this long.
const FAX_FRAMES: u32 = 20;

/// The detector's thresholds (Twilio's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdConfig {
    /// `MachineDetectionSilenceTimeout`: silence from the start this long is `Unknown`.
    pub silence_timeout: Duration,
    /// `MachineDetectionSpeechThreshold`: a greeting longer than this is a machine's.
    pub speech_threshold: Duration,
    /// `MachineDetectionSpeechEndThreshold`: silence this long ends a greeting.
    pub speech_end: Duration,
    /// `MachineDetectionTimeout`: the analysis ends by then.
    pub timeout: Duration,
    /// `DetectMessageEnd`: after `Machine`, wait for the end of the greeting.
    pub detect_message_end: bool,
}

impl Default for AmdConfig {
    fn default() -> Self {
        Self {
            silence_timeout: Duration::from_millis(5000),
            speech_threshold: Duration::from_millis(2400),
            speech_end: Duration::from_millis(1200),
            timeout: Duration::from_secs(30),
            detect_message_end: false,
        }
    }
}

/// How a machine's greeting ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreetingEnd {
    /// A beep, which started this far into the analysis.
    Beep {
        at: Duration,
    },
    Silence,
    /// The analysis ran out of time first.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Human,
    /// A machine's greeting has begun (Twilio's `machine_start`).
    Machine,
    /// Its end (with `detect_message_end`; Twilio's `machine_end_*`).
    MachineEnd(GreetingEnd),
    Fax,
    /// Silence, or no decision in time.
    Unknown,
}

impl Verdict {
    /// Twilio's `AnsweredBy`.
    pub fn answered_by(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Machine => "machine_start",
            Self::MachineEnd(GreetingEnd::Beep { .. }) => "machine_end_beep",
            Self::MachineEnd(GreetingEnd::Silence) => "machine_end_silence",
            Self::MachineEnd(GreetingEnd::Other) => "machine_end_other",
            Self::Fax => "fax",
            Self::Unknown => "unknown",
        }
    }
}

/// What one frame holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sound {
    Silence,
    Voice,
    Tone(f32),
}

#[derive(Debug)]
pub struct Detector {
    config: AmdConfig,
    /// Time analysed so far, in frames' worth.
    elapsed: Duration,
    /// When the first voice was heard.
    speech_start: Option<Duration>,
    /// When the last voice frame was heard.
    last_voice: Option<Duration>,
    /// The tone running now: its frequency, its first frame's time, and its frames.
    tone: Option<(f32, Duration, u32)>,
    /// Decided: a machine, waiting for the end of its greeting.
    machine: bool,
    /// Verdicts not yet taken.
    out: Vec<Verdict>,
    done: bool,
    /// What the analysis heard, run by run, for the log of a verdict.
    timeline: Timeline,
}

/// The frames analysed as runs of one kind ("voice 1.20 s, missing 1.40 s, …"): why a
/// verdict was given, told in a log line. Bounded: runs past the first [`MAX_RUNS`] are only
/// counted.
#[derive(Debug, Default)]
struct Timeline {
    runs: Vec<(Heard, u32)>,
    more: u32,
}

const MAX_RUNS: usize = 48;

/// A frame's kind in the timeline: what [`Sound`] classified, or no audio at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    Silence,
    Voice,
    Tone,
    /// No frame came for this time (fed as silence).
    Missing,
}

impl Timeline {
    fn note(&mut self, heard: Heard) {
        // Once full, only a frame that extends the last run is kept in it.
        if self.more > 0 || (self.runs.len() == MAX_RUNS && self.runs[MAX_RUNS - 1].0 != heard) {
            self.more = self.more.saturating_add(1);
            return;
        }
        match self.runs.last_mut() {
            Some((last, n)) if *last == heard => *n += 1,
            _ => self.runs.push((heard, 1)),
        }
    }
}

impl std::fmt::Display for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (heard, frames)) in self.runs.iter().enumerate() {
            let kind = match heard {
                Heard::Silence => "silence",
                Heard::Voice => "voice",
                Heard::Tone => "tone",
                Heard::Missing => "missing",
            };
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{kind} {:.2} s", f64::from(*frames) * 0.02)?;
        }
        if self.more > 0 {
            write!(f, ", then {:.2} s more", f64::from(self.more) * 0.02)?;
        }
        Ok(())
    }
}

impl Detector {
    pub fn new(config: AmdConfig) -> Self {
        Self {
            config,
            elapsed: Duration::ZERO,
            speech_start: None,
            last_voice: None,
            tone: None,
            machine: false,
            out: Vec::new(),
            done: false,
            timeline: Timeline::default(),
        }
    }

    /// What was analysed, run by run ("silence 0.40 s, voice 2.40 s"), to say in a log why a
    /// verdict was given.
    pub fn timeline(&self) -> impl std::fmt::Display + '_ {
        &self.timeline
    }

    /// Audio analysed so far (the time a verdict took, when it is given).
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Whether the analysis is over (every verdict has been given).
    pub fn done(&self) -> bool {
        self.done
    }

    /// The next verdict: `Human`, `Fax` or `Unknown` end the analysis; `Machine` may be
    /// followed by `MachineEnd`.
    pub fn poll(&mut self) -> Option<Verdict> {
        (!self.out.is_empty()).then(|| self.out.remove(0))
    }

    fn decide(&mut self, verdict: Verdict) {
        self.out.push(verdict);
        match verdict {
            Verdict::Machine if self.config.detect_message_end => self.machine = true,
            _ => self.done = true,
        }
    }

    /// Takes the party's next 20 ms frame (160 samples at 8 kHz).
    pub fn push(&mut self, frame: &[i16]) {
        let sound = classify(frame);
        let heard = match sound {
            Sound::Silence => Heard::Silence,
            Sound::Voice => Heard::Voice,
            Sound::Tone(_) => Heard::Tone,
        };
        self.analyse(sound, heard);
    }

    /// Takes 20 ms for which no audio came: silence, told apart in the timeline.
    pub fn push_missing(&mut self) {
        self.analyse(Sound::Silence, Heard::Missing);
    }

    fn analyse(&mut self, sound: Sound, heard: Heard) {
        if self.done {
            return;
        }
        self.timeline.note(heard);
        let now = self.elapsed;
        self.elapsed += Duration::from_millis(20);
        self.follow_tone(sound, now);
        if self.done {
            return;
        }
        if sound == Sound::Voice {
            self.speech_start.get_or_insert(now);
            self.last_voice = Some(now);
        }
        let silent_for = self
            .last_voice
            .map(|v| self.elapsed.saturating_sub(v + FRAME_TIME));
        match (self.machine, self.speech_start) {
            // Waiting for a greeting.
            (false, None) => {
                if self.elapsed >= self.config.silence_timeout {
                    self.decide(Verdict::Unknown);
                }
            }
            // In a greeting: short and then quiet is a person; long is a machine.
            (false, Some(start)) => {
                let spoken = self.last_voice.unwrap_or(start) + FRAME_TIME - start;
                if spoken >= self.config.speech_threshold {
                    self.decide(Verdict::Machine);
                } else if silent_for.is_some_and(|s| s >= self.config.speech_end) {
                    self.decide(Verdict::Human);
                }
            }
            // A machine's greeting, until it falls silent (a beep ends it in follow_tone).
            (true, _) => {
                if silent_for.is_some_and(|s| s >= self.config.speech_end) {
                    self.decide(Verdict::MachineEnd(GreetingEnd::Silence));
                }
            }
        }
        if !self.done && self.elapsed >= self.config.timeout {
            let verdict = if self.machine {
                Verdict::MachineEnd(GreetingEnd::Other)
            } else {
                Verdict::Unknown
            };
            self.decide(verdict);
        }
    }

    /// Tracks a steady tone: a fax's tone decides `Fax`; a beep ends a machine's greeting
    /// (or, after too short a greeting to tell, shows it was one).
    fn follow_tone(&mut self, sound: Sound, now: Duration) {
        let Sound::Tone(f) = sound else {
            self.tone = None;
            return;
        };
        let (frequency, started, frames) = match self.tone {
            Some((g, started, n)) if (f - g).abs() <= TONE_DRIFT_HZ => (g, started, n + 1),
            _ => (f, now, 1),
        };
        self.tone = Some((frequency, started, frames));
        let fax = [1100.0, 2100.0]
            .iter()
            .any(|hz: &f32| (frequency - hz).abs() <= TONE_DRIFT_HZ);
        if fax && frames >= FAX_FRAMES && !self.machine && self.speech_start.is_none() {
            self.decide(Verdict::Fax);
        } else if frames == BEEP_FRAMES && BEEP_HZ.contains(&frequency) {
            let heard_voice = self.speech_start.is_some();
            if !self.machine && (heard_voice || !fax) {
                self.decide(Verdict::Machine);
            }
            if self.machine {
                self.decide(Verdict::MachineEnd(GreetingEnd::Beep { at: started }));
            }
        }
    }
}

const FRAME_TIME: Duration = Duration::from_millis(20);

/// Silence, a voice, or a steady tone (with its frequency, from its zero crossings).
fn classify(frame: &[i16]) -> Sound {
    if frame.is_empty() {
        return Sound::Silence;
    }
    let energy: f64 = frame.iter().map(|&s| f64::from(s).powi(2)).sum();
    if (energy / frame.len() as f64).sqrt() < VOICE_RMS {
        return Sound::Silence;
    }
    let crossings = frame
        .windows(2)
        .filter(|w| (w[0] >= 0) != (w[1] >= 0))
        .count();
    // Zero crossings place a pure tone within a few tens of hertz; the best of the
    // frequencies around that estimate is its own.
    let estimate = crossings as f32 * 8000.0 / (2.0 * frame.len() as f32);
    let (share, frequency) = (-5..=5)
        .map(|step| estimate + step as f32 * 10.0)
        .map(|f| (share_at(frame, f), f))
        .fold(
            (0.0, estimate),
            |best, probe| if probe.0 > best.0 { probe } else { best },
        );
    if share >= TONE_SHARE {
        Sound::Tone(frequency)
    } else {
        Sound::Voice
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FRAME;
    use crate::tone::sines;

    /// Something voice-like: a vowel's harmonics under a syllable envelope, `ms` long.
    fn talk(ms: u32) -> Vec<i16> {
        let harmonics = sines(&[220.0, 440.0, 660.0, 880.0, 1320.0], 2500.0, ms);
        harmonics
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let syllable = (i % 1600) as f32 / 1600.0;
                let envelope = 0.4 + 0.6 * (std::f32::consts::PI * syllable).sin();
                (f32::from(s) * envelope) as i16
            })
            .collect()
    }

    fn quiet(ms: u32) -> Vec<i16> {
        vec![0; (ms * 8) as usize]
    }

    /// Runs the detector over `audio`; its verdicts with when each came (ms).
    fn run(config: AmdConfig, audio: &[i16]) -> Vec<(Verdict, u64)> {
        let mut d = Detector::new(config);
        let mut out = Vec::new();
        for (i, frame) in audio.chunks(FRAME).enumerate() {
            d.push(frame);
            while let Some(v) = d.poll() {
                out.push((v, (i as u64 + 1) * 20));
            }
        }
        out
    }

    fn with_end() -> AmdConfig {
        AmdConfig {
            detect_message_end: true,
            ..AmdConfig::default()
        }
    }

    #[test]
    fn a_short_hello_then_silence_is_a_person() {
        let audio = [quiet(300), talk(600), quiet(3000)].concat();
        let verdicts = run(AmdConfig::default(), &audio);
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        let (verdict, at) = verdicts[0];
        assert_eq!(verdict, Verdict::Human);
        // Decided once the 1.2 s of silence after the hello have passed.
        assert!((2050..=2200).contains(&at), "{at}");
    }

    #[test]
    fn the_timeline_tells_what_was_heard_and_what_never_came() {
        let mut d = Detector::new(AmdConfig::default());
        for frame in [quiet(200), talk(600)].concat().chunks(FRAME) {
            d.push(frame);
        }
        for _ in 0..60 {
            d.push_missing();
        }
        assert_eq!(d.poll(), Some(Verdict::Human));
        // The hello's first frame may fall either side of the voice threshold.
        let told = d.timeline().to_string();
        assert!(
            told.starts_with("silence 0.2")
                && told.contains(", voice 0.")
                && told.ends_with(", missing 1.20 s"),
            "{told}"
        );
        // Bounded: a long call's runs past the first are counted, not kept.
        let mut d = Detector::new(AmdConfig {
            timeout: Duration::from_secs(3600),
            silence_timeout: Duration::from_secs(3600),
            ..AmdConfig::default()
        });
        for _ in 0..1000 {
            d.push_missing();
            d.push(&sines(&[1000.0], 3000.0, 20));
        }
        assert_eq!(d.timeline.runs.len(), MAX_RUNS);
        let told = d.timeline().to_string();
        assert!(told.ends_with("then 39.04 s more"), "{told}");
    }

    #[test]
    fn a_long_greeting_is_a_machine_and_its_beep_ends_it() {
        // Words with short pauses between them, 4 s in all, then a 1 kHz beep.
        let greeting: Vec<i16> = (0..8)
            .flat_map(|_| [talk(400), quiet(100)].concat())
            .collect();
        let audio = [
            quiet(200),
            greeting,
            quiet(300),
            sines(&[1000.0], 6000.0, 500),
            quiet(1000),
        ]
        .concat();
        let verdicts = run(AmdConfig::default(), &audio);
        assert_eq!(verdicts.len(), 1);
        assert_eq!(verdicts[0].0, Verdict::Machine);
        assert!((2550..=2700).contains(&verdicts[0].1), "{verdicts:?}");

        let verdicts = run(with_end(), &audio);
        assert_eq!(verdicts.len(), 2, "{verdicts:?}");
        assert_eq!(verdicts[0].0, Verdict::Machine);
        let Verdict::MachineEnd(GreetingEnd::Beep { at }) = verdicts[1].0 else {
            panic!("{verdicts:?}")
        };
        // The beep starts at 200 + 4000 + 300 ms.
        assert!(
            (Duration::from_millis(4480)..=Duration::from_millis(4540)).contains(&at),
            "{at:?}"
        );
        assert!(verdicts[1].0.answered_by() == "machine_end_beep");
    }

    #[test]
    fn a_greeting_that_falls_silent_ends_without_a_beep() {
        let audio = [talk(3000), quiet(2000)].concat();
        let verdicts = run(with_end(), &audio);
        let kinds: Vec<Verdict> = verdicts.iter().map(|v| v.0).collect();
        assert_eq!(
            kinds,
            [Verdict::Machine, Verdict::MachineEnd(GreetingEnd::Silence)]
        );
        assert!((4200..=4300).contains(&verdicts[1].1), "{verdicts:?}");
    }

    #[test]
    fn silence_is_unknown_and_a_fax_is_a_fax() {
        let verdicts = run(AmdConfig::default(), &quiet(6000));
        assert_eq!(verdicts, [(Verdict::Unknown, 5000)]);
        // CNG: 1100 Hz for half a second.
        let cng = [sines(&[1100.0], 6000.0, 500), quiet(3000)].concat();
        assert_eq!(run(AmdConfig::default(), &cng)[0].0, Verdict::Fax);
    }

    #[test]
    fn a_greeting_still_running_at_the_timeout_ends_as_other() {
        let config = AmdConfig {
            timeout: Duration::from_secs(5),
            ..with_end()
        };
        let kinds: Vec<Verdict> = run(config, &talk(8000)).iter().map(|v| v.0).collect();
        assert_eq!(
            kinds,
            [Verdict::Machine, Verdict::MachineEnd(GreetingEnd::Other)]
        );
    }
}
