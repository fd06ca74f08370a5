//! Cuts a call's audio into utterances for a recogniser, sans-IO: 20 ms frames go in (a gap
//! in the audio is fed as silent frames, so time is counted in frames), and out come the
//! moments to recognise — a partial result of the speech so far every so often, the speech
//! so far at the start of each pause (so that it can be recognised while the pause decides
//! whether the turn is over), the final utterance when the caller has been silent long
//! enough, or word that nobody spoke in time.
//! Audio is widened to 16 kHz with a band-limited resampler as it arrives (speech.md: a
//! linear upsample raised the error rate).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::resample::Upsampler;
use switchboard_media::{FRAME, Frame};

/// A frame louder than this (RMS of 16-bit samples) is voice.
const VOICE_RMS: f64 = 300.0;
/// Speech starts after this many voiced frames in a row (a click is not speech).
const START_FRAMES: u32 = 3;
/// Audio kept from before the start, so the first syllable is not cut.
const PREROLL_FRAMES: usize = 15;
const FRAME_MS: u64 = 20;
const WIDE: usize = 320;
/// Silent frames kept at the end of an utterance (a word's soft ending is not cut).
const TAIL_FRAMES: u64 = 10;
/// A pause this many frames long is reported with the speech before it
/// ([`Utterance::Pause`]): the final utterance's speech if the caller says nothing more (with
/// less of the silence after it), so its recognition can serve as the final one, started
/// while the pause is waited out. Short, so that recognition starts early; a pause in the
/// middle of a sentence costs a recognition whose answer is dropped.
const PAUSE_FRAMES: u64 = 5;
pub const PAUSE: Duration = Duration::from_millis(PAUSE_FRAMES * FRAME_MS);
/// A shorter pause is reported too ([`Utterance::EarlyPause`]), for a guess that is worth it
/// only when a worker is free: gaps this long come between words as well as at a turn's end,
/// so guessing at each one under load delays the final results of others. Measured with the
/// ConversationRelay bench: guessing at 60 ms always took one session's prompt p50 from 314 ms
/// to 222, and twenty sessions' from 436–596 to 944–994.
const EARLY_PAUSE_FRAMES: u64 = 3;
/// A pause this long is reported as well ([`Utterance::LongPause`]): long enough for what
/// the caller said before it to end the turn when it reads as a whole sentence. Gaps inside
/// a phrase reach 130 ms (Piper's voice: "please stop for a moment · and let me…"), and the
/// recogniser punctuates a fragment as a sentence, so [`PAUSE`] would cut callers short.
const LONG_PAUSE_FRAMES: u64 = 10;
pub const LONG_PAUSE: Duration = Duration::from_millis(LONG_PAUSE_FRAMES * FRAME_MS);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointerConfig {
    /// How long to wait for speech to start (Twilio's `timeout`); `None` waits for ever.
    pub start_timeout: Option<Duration>,
    /// Silence after speech that ends the utterance (`speechTimeout`).
    pub end_silence: Duration,
    /// The longest utterance (`maxSpeechTime`): it ends there, speech or not.
    pub max_speech: Duration,
    /// Ask for a partial result this often while speech goes on; `None` asks for none.
    pub partial_every: Option<Duration>,
}

impl Default for EndpointerConfig {
    fn default() -> Self {
        Self {
            start_timeout: Some(Duration::from_secs(5)),
            end_silence: Duration::from_millis(800),
            max_speech: Duration::from_secs(60),
            partial_every: None,
        }
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Utterance {
    /// Recognise the speech so far for a partial result (16 kHz).
    Partial(Arc<[f32]>),
    /// The caller has paused for 60 ms: the speech so far, as [`Utterance::Pause`]'s, which
    /// follows if the pause lasts to [`PAUSE`].
    EarlyPause(Arc<[f32]>),
    /// The caller paused for [`PAUSE`] (less than the end of the utterance): the speech so
    /// far, which is the final utterance's speech if the pause lasts (16 kHz).
    Pause(Arc<[f32]>),
    /// The pause has lasted [`LONG_PAUSE`] (and still less than the end of the utterance).
    LongPause,
    /// The caller spoke again after a [`Utterance::EarlyPause`] or a [`Utterance::Pause`]:
    /// its audio is not final.
    Resumed,
    /// The utterance is over: recognise it for the final result (16 kHz).
    Final(Arc<[f32]>),
    /// Nobody spoke within the start timeout.
    NoSpeech,
}

enum State {
    Waiting {
        frames: u64,
        voiced_run: u32,
    },
    Speaking {
        frames: u64,
        silent_run: u64,
        /// A [`Utterance::Pause`] was reported for the current silence.
        paused: bool,
    },
    Done,
}

pub struct Endpointer {
    config: EndpointerConfig,
    up: Upsampler,
    preroll: VecDeque<[f32; WIDE]>,
    audio: Vec<f32>,
    state: State,
    since_partial: u64,
}

fn frames(d: Duration) -> u64 {
    (d.as_millis() as u64).div_ceil(FRAME_MS).max(1)
}

impl Endpointer {
    pub fn new(config: EndpointerConfig) -> Self {
        Self {
            config,
            up: Upsampler::new(super::RATE),
            preroll: VecDeque::with_capacity(PREROLL_FRAMES + 1),
            audio: Vec::new(),
            state: State::Waiting {
                frames: 0,
                voiced_run: 0,
            },
            since_partial: 0,
        }
    }

    /// Listens again from scratch (continuous transcription, after a final result).
    pub fn restart(&mut self) {
        self.config.start_timeout = None;
        self.audio.clear();
        self.preroll.clear();
        self.state = State::Waiting {
            frames: 0,
            voiced_run: 0,
        };
        self.since_partial = 0;
    }

    /// Whether speech has started (barge-in: the prompt should stop).
    pub fn speaking(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    pub fn done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The next 20 ms of the caller's audio.
    pub fn push(&mut self, frame: &Frame) -> Option<Utterance> {
        let mut wide = [0f32; WIDE];
        for (w, s) in wide.iter_mut().zip(self.up.frame(frame)) {
            *w = s as f32 / 32768.0;
        }
        let voiced = voiced(frame);
        match &mut self.state {
            State::Done => None,
            State::Waiting {
                frames: n,
                voiced_run,
            } => {
                *n += 1;
                *voiced_run = if voiced { *voiced_run + 1 } else { 0 };
                self.preroll.push_back(wide);
                if self.preroll.len() > PREROLL_FRAMES {
                    self.preroll.pop_front();
                }
                if *voiced_run >= START_FRAMES {
                    for f in self.preroll.drain(..) {
                        self.audio.extend_from_slice(&f);
                    }
                    self.state = State::Speaking {
                        frames: START_FRAMES as u64,
                        silent_run: 0,
                        paused: false,
                    };
                    self.since_partial = 0;
                    return None;
                }
                if let Some(limit) = self.config.start_timeout
                    && *n >= frames(limit)
                {
                    self.state = State::Done;
                    return Some(Utterance::NoSpeech);
                }
                None
            }
            State::Speaking {
                frames: n,
                silent_run,
                paused,
            } => {
                *n += 1;
                *silent_run = if voiced { 0 } else { *silent_run + 1 };
                self.audio.extend_from_slice(&wide);
                if *silent_run >= frames(self.config.end_silence)
                    || *n >= frames(self.config.max_speech)
                {
                    // The trailing silence is not speech; keep a little of it.
                    let keep = self
                        .audio
                        .len()
                        .saturating_sub(silent_run.saturating_sub(TAIL_FRAMES) as usize * WIDE);
                    self.audio.truncate(keep);
                    self.state = State::Done;
                    return Some(Utterance::Final(std::mem::take(&mut self.audio).into()));
                }
                if voiced && *paused {
                    *paused = false;
                    return Some(Utterance::Resumed);
                }
                if *silent_run == EARLY_PAUSE_FRAMES {
                    *paused = true;
                    return Some(Utterance::EarlyPause(self.audio.as_slice().into()));
                }
                if *silent_run == PAUSE_FRAMES {
                    *paused = true;
                    return Some(Utterance::Pause(self.audio.as_slice().into()));
                }
                if *silent_run == LONG_PAUSE_FRAMES {
                    return Some(Utterance::LongPause);
                }
                self.since_partial += 1;
                if let Some(every) = self.config.partial_every
                    && self.since_partial >= frames(every)
                    && *silent_run == 0
                {
                    self.since_partial = 0;
                    return Some(Utterance::Partial(self.audio.as_slice().into()));
                }
                None
            }
        }
    }
}

/// Whether a frame is loud enough to be voice.
pub fn voiced(frame: &Frame) -> bool {
    rms(frame) >= VOICE_RMS
}

fn rms(frame: &Frame) -> f64 {
    let sum: f64 = frame.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / FRAME as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_media::tone;

    fn feed(e: &mut Endpointer, samples: &[i16]) -> Vec<Utterance> {
        samples
            .chunks(FRAME)
            .filter_map(|c| {
                let mut f = [0i16; FRAME];
                f[..c.len()].copy_from_slice(c);
                e.push(&f)
            })
            .collect()
    }

    fn voice(ms: u32) -> Vec<i16> {
        tone::sines(&[300.0, 700.0, 1200.0], 8000.0, ms)
    }

    #[test]
    fn speech_then_silence_is_one_utterance_with_its_partials() {
        let mut e = Endpointer::new(EndpointerConfig {
            partial_every: Some(Duration::from_millis(400)),
            ..Default::default()
        });
        let mut out = feed(&mut e, &tone::silence(500));
        assert!(out.is_empty() && !e.speaking());
        out.extend(feed(&mut e, &voice(1000)));
        assert!(e.speaking());
        out.extend(feed(&mut e, &tone::silence(1000)));
        let partials = out
            .iter()
            .filter(|u| matches!(u, Utterance::Partial(_)))
            .count();
        assert_eq!(partials, 2, "one every 400 ms of speech");
        let Some(Utterance::Final(audio)) = out.last() else {
            panic!("{out:?}")
        };
        // The second of voice, the pre-roll before it and a little of the silence after,
        // at 16 kHz; not the whole half second before nor the 800 ms ending it.
        let secs = audio.len() as f32 / 16000.0;
        assert!((1.2..1.6).contains(&secs), "{secs}");
        assert!(e.done());
        assert!(feed(&mut e, &voice(500)).is_empty(), "done means done");
    }

    #[test]
    fn nobody_speaking_is_no_speech_at_the_timeout_and_a_click_is_not_speech() {
        let mut e = Endpointer::new(EndpointerConfig {
            start_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        });
        let mut click = tone::silence(400);
        click.extend(voice(40));
        click.extend(tone::silence(1000));
        let out = feed(&mut e, &click);
        assert_eq!(out, vec![Utterance::NoSpeech]);
    }

    #[test]
    fn an_endless_talker_is_cut_at_the_longest_utterance_and_a_restart_listens_again() {
        let mut e = Endpointer::new(EndpointerConfig {
            max_speech: Duration::from_secs(2),
            ..Default::default()
        });
        let out = feed(&mut e, &voice(3000));
        assert!(matches!(out.as_slice(), [Utterance::Final(a)] if a.len() > 30000));
        e.restart();
        // No start timeout after a restart: a long silence ends nothing.
        assert!(feed(&mut e, &tone::silence(10_000)).is_empty());
        let out = feed(&mut e, &[voice(500), tone::silence(1000)].concat());
        assert!(matches!(
            out.as_slice(),
            [
                Utterance::EarlyPause(_),
                Utterance::Pause(_),
                Utterance::LongPause,
                Utterance::Final(_)
            ]
        ));
    }

    #[test]
    fn a_pause_gives_the_speech_so_far_which_is_the_final_audio_when_nothing_follows() {
        let mut e = Endpointer::new(EndpointerConfig::default());
        let said = [
            tone::silence(300),
            voice(600),
            tone::silence(300),
            voice(400),
            tone::silence(1000),
        ]
        .concat();
        let out = feed(&mut e, &said);
        let [
            Utterance::EarlyPause(_),
            Utterance::Pause(_),
            Utterance::LongPause,
            Utterance::Resumed,
            Utterance::EarlyPause(early),
            Utterance::Pause(paused),
            Utterance::LongPause,
            Utterance::Final(last),
        ] = out.as_slice()
        else {
            panic!(
                "{:?}",
                out.iter().map(std::mem::discriminant).collect::<Vec<_>>()
            )
        };
        // The pause's audio is the final utterance's, with less of the silence after it.
        let pause_frames = (TAIL_FRAMES - PAUSE_FRAMES) as usize;
        assert_eq!(paused.len() + pause_frames * WIDE, last.len());
        assert_eq!(paused[..], last[..paused.len()]);
        // The early pause's is the same speech, with less silence still.
        let early_frames = (PAUSE_FRAMES - EARLY_PAUSE_FRAMES) as usize;
        assert_eq!(early.len() + early_frames * WIDE, paused.len());
        assert_eq!(early[..], paused[..early.len()]);
        // A pause as long as the end of the utterance is that end, not a pause (an early
        // pause comes before it).
        let mut e = Endpointer::new(EndpointerConfig {
            end_silence: PAUSE,
            ..Default::default()
        });
        let out = feed(&mut e, &[voice(500), tone::silence(500)].concat());
        assert!(matches!(
            out.as_slice(),
            [Utterance::EarlyPause(_), Utterance::Final(_)]
        ));
    }
}
