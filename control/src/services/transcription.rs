//! Real-time transcription of a call, the same for every dialect: a listener
//! ([`crate::services::speech`]) per transcribed track, going on utterance after utterance, its results
//! merged into one ordered channel of [`Transcript`]s, each also reported as the call's
//! `transcript` event. The ones an application starts and stops
//! by name are kept per call in [`LiveTranscriptions`]: Twilio's `<Start><Transcription>` and
//! REST `Transcriptions`, Telnyx's `transcription_start`/`_stop` translate them; the transcripts
//! beside a media stream live and end with their stream.

use crate::call::{CallCommand, CallControl, CallError, EventKind};
use crate::services::speech::{Heard, ListenSpec, Speech};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_media::{TapId, TapTracks};
use switchboard_speech::{EndpointerConfig, SpeechError};
use tokio::sync::mpsc;

/// The party a transcript is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// What the party says (Twilio's `inbound_track`).
    Inbound,
    /// What it hears.
    Outbound,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub side: Side,
    pub text: String,
    pub confidence: f32,
    /// A final result of an utterance; else an interim one, which a later result replaces.
    pub is_final: bool,
}

/// What to transcribe.
#[derive(Debug, Clone)]
pub struct TranscriptionSpec {
    pub tracks: TapTracks,
    /// Interim results while the party speaks.
    pub interim: bool,
    /// The language spoken (a BCP 47 tag); `None` is English.
    pub language: Option<String>,
    /// The engine the operator maps the application's named provider to, if it named one
    /// they map (see [`crate::services::speech::SpeechProviders`]).
    pub engine: Option<crate::services::speech::EngineKind>,
    pub hints: Vec<String>,
}

/// Interim results, about this often while someone speaks.
const INTERIM_EVERY: Duration = Duration::from_millis(1000);
/// The pause that ends an utterance.
const END_SILENCE: Duration = Duration::from_millis(700);
/// An utterance is cut (and transcribed) at this length, speech or not.
const LONGEST: Duration = Duration::from_secs(20);

/// A running transcription: its results, and the taps that stop it.
pub struct Transcription {
    pub results: mpsc::Receiver<Transcript>,
    taps: Vec<TapId>,
}

#[derive(Debug, thiserror::Error)]
pub enum TranscriptionError {
    #[error(transparent)]
    Speech(#[from] SpeechError),
    #[error("the call cannot be transcribed: {0}")]
    Call(#[from] CallError),
    #[error("the call has {MAX_PER_CALL} transcriptions running already")]
    TooMany,
}

impl Transcription {
    /// Starts transcribing `call`.
    pub async fn start(
        control: &CallControl,
        speech: &Speech,
        call: &str,
        spec: TranscriptionSpec,
    ) -> Result<Self, TranscriptionError> {
        let sides: &[Side] = match spec.tracks {
            TapTracks::Inbound => &[Side::Inbound],
            TapTracks::Outbound => &[Side::Outbound],
            TapTracks::Both => &[Side::Inbound, Side::Outbound],
        };
        let (tx, results) = mpsc::channel(64);
        let mut taps = Vec::new();
        for &side in sides {
            let (tap_tx, frames) = mpsc::channel(64);
            let mut heard = speech.listen(
                frames,
                ListenSpec {
                    language: spec.language.clone(),
                    engine: spec.engine,
                    endpointer: EndpointerConfig {
                        start_timeout: None,
                        end_silence: END_SILENCE,
                        max_speech: LONGEST,
                        partial_every: spec.interim.then_some(INTERIM_EVERY),
                    },
                    grammar: Default::default(),
                    hints: spec.hints.clone(),
                    continuous: true,
                    end_on_sentence: false,
                },
            )?;
            let tap = TapId::next();
            let tracks = match side {
                Side::Inbound => TapTracks::Inbound,
                Side::Outbound => TapTracks::Outbound,
            };
            if let Err(e) = control
                .command(
                    call,
                    CallCommand::TapStart {
                        tap,
                        tracks,
                        tx: tap_tx.into(),
                    },
                )
                .await
            {
                stop_taps(control, call, &taps).await;
                return Err(e.into());
            }
            taps.push(tap);
            let (tx, control, call) = (tx.clone(), control.clone(), call.to_owned());
            tokio::spawn(async move {
                while let Some(h) = heard.recv().await {
                    let t = match h {
                        Heard::Partial { text, .. } => Transcript {
                            side,
                            text,
                            confidence: 0.0,
                            is_final: false,
                        },
                        Heard::Final { text, confidence } if !text.is_empty() => Transcript {
                            side,
                            text,
                            confidence,
                            is_final: true,
                        },
                        _ => continue,
                    };
                    // Every transcript is also the call's event, whoever asked for it: the
                    // call's history keeps what was said, and its observers (the live
                    // socket) see it as it is heard.
                    let report = EventKind::Transcript {
                        track: side.as_str(),
                        text: t.text.clone(),
                        confidence: t.confidence,
                        is_final: t.is_final,
                    };
                    let _ = control.command(&call, CallCommand::Report(report)).await;
                    if tx.send(t).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(Self { results, taps })
    }

    /// Stops listening; results already made still arrive, then the channel closes.
    pub async fn stop(&self, control: &CallControl, call: &str) {
        stop_taps(control, call, &self.taps).await;
    }

    /// The taps, for a holder that stops them later without the results (they went to a task).
    pub fn into_parts(self) -> (Vec<TapId>, mpsc::Receiver<Transcript>) {
        (self.taps, self.results)
    }
}

/// Stops a transcription's taps.
pub async fn stop_taps(control: &CallControl, call: &str, taps: &[TapId]) {
    for &tap in taps {
        let _ = control.command(call, CallCommand::TapStop(tap)).await;
    }
}

/// Transcriptions running on one call at most, past which a start is refused (each holds a
/// recognition worker's attention and a tap per track).
pub const MAX_PER_CALL: usize = 4;

/// The real-time transcriptions applications started, per call: found and stopped by their
/// SID or name, let go when their results end (stopped, or the call ended).
pub struct LiveTranscriptions {
    control: CallControl,
    speech: Arc<Speech>,
    running: Mutex<HashMap<String, Vec<Running>>>,
}

struct Running {
    sid: String,
    name: Option<String>,
    taps: Vec<TapId>,
}

/// A transcription started: its SID (`GT…`) and its results, which end when it is stopped or
/// its call ends.
pub struct Started {
    pub sid: String,
    pub results: mpsc::Receiver<Transcript>,
}

impl LiveTranscriptions {
    pub fn new(control: CallControl, speech: Arc<Speech>) -> Arc<Self> {
        Arc::new(Self {
            control,
            speech,
            running: Mutex::default(),
        })
    }

    /// Starts transcribing `call`, as `name` if given.
    pub async fn start(
        self: &Arc<Self>,
        call: &str,
        name: Option<String>,
        spec: TranscriptionSpec,
    ) -> Result<Started, TranscriptionError> {
        if self.running(call) >= MAX_PER_CALL {
            return Err(TranscriptionError::TooMany);
        }
        let started = Transcription::start(&self.control, &self.speech, call, spec).await?;
        let (taps, mut inner) = started.into_parts();
        let sid = crate::infra::sid::new_sid("GT");
        let entry = Running {
            sid: sid.clone(),
            name,
            taps,
        };
        // Checked again where it counts: two starts may have passed the first check together.
        let refused = {
            let mut running = self.lock();
            let list = running.entry(call.to_owned()).or_default();
            if list.len() >= MAX_PER_CALL {
                Some(entry)
            } else {
                list.push(entry);
                None
            }
        };
        if let Some(entry) = refused {
            stop_taps(&self.control, call, &entry.taps).await;
            return Err(TranscriptionError::TooMany);
        }
        // Results pass through here so that the entry goes with them: a holder need not
        // remember to let it go.
        let (tx, results) = mpsc::channel(64);
        let (this, call, gt) = (self.clone(), call.to_owned(), sid.clone());
        tokio::spawn(async move {
            while let Some(t) = inner.recv().await {
                if tx.send(t).await.is_err() {
                    break;
                }
            }
            this.let_go(&call, |r| r.sid == gt);
        });
        Ok(Started { sid, results })
    }

    /// How many run on `call`.
    pub fn running(&self, call: &str) -> usize {
        self.lock().get(call).map_or(0, Vec::len)
    }

    /// Stops the call's transcriptions `which` names (its SID or name; every one for `None`);
    /// returns those stopped, as (SID, name). Results already made still arrive.
    pub async fn stop(&self, call: &str, which: Option<&str>) -> Vec<(String, Option<String>)> {
        let named = |r: &Running| which.is_none_or(|w| r.sid == w || r.name.as_deref() == Some(w));
        let stopping = self.let_go(call, named);
        let mut stopped = Vec::new();
        for r in stopping {
            stop_taps(&self.control, call, &r.taps).await;
            stopped.push((r.sid, r.name));
        }
        stopped
    }

    /// Takes the call's transcriptions that `which` matches out of the registry.
    fn let_go(&self, call: &str, which: impl Fn(&Running) -> bool) -> Vec<Running> {
        let mut running = self.lock();
        let Some(list) = running.get_mut(call) else {
            return Vec::new();
        };
        let (gone, kept) = std::mem::take(list).into_iter().partition(which);
        *list = kept;
        if list.is_empty() {
            running.remove(call);
        }
        gone
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Running>>> {
        self.running.lock().expect("not poisoned")
    }
}
