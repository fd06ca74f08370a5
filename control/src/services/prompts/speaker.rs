//! Speech rendered while it plays. A text not in the caches starts rendering piece by piece
//! (a turn at the engine per piece, fair between accounts, see [`super::turns`]) into a
//! [`GrowingClip`] that the call plays from the first piece on; once whole it is cached in
//! memory and on disk. Calls asking for a text already rendering share that rendering. A
//! rendering goes on to its end when its call stops listening (a caller who presses a digit
//! during a menu), so that the next caller finds it cached; what it costs is bounded by the
//! text's length and comes out of its account's share of the engine.

use super::disk::DiskBudget;
use super::tts::Tts;
use super::turns::Turns;
use super::{ClipCache, PromptError, write_atomically};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use switchboard_media::{Clip, GrowingClip};
use tokio::sync::watch;
use tracing::{info, warn};

/// How far a rendering has come.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Parts rendered (an engine may hand a piece out in several).
    pub pieces: usize,
    /// `Some` once over: whole, or what went wrong.
    pub end: Option<Result<(), PromptError>>,
}

/// A text rendering (or rendered) into a growing clip.
#[derive(Debug, Clone)]
pub struct Rendering {
    pub clip: Arc<GrowingClip>,
    pub progress: watch::Receiver<Progress>,
}

struct InFlight {
    clip: Weak<GrowingClip>,
    progress: watch::Receiver<Progress>,
}

pub(super) struct Speaker {
    pub(super) tts: Arc<dyn Tts>,
    turns: Arc<Turns>,
    speech_dir: PathBuf,
    disk: Arc<DiskBudget>,
    clips: Arc<Mutex<ClipCache>>,
    /// Renderings under way, by cache key.
    in_flight: Mutex<HashMap<String, InFlight>>,
}

/// A text to render: its cache key and file, in an engine voice, for an account.
pub(super) struct Job {
    pub(super) key: String,
    pub(super) text: String,
    pub(super) voice: String,
    /// The pace asked of the voice (1.0: its own).
    pub(super) rate: f32,
    /// The voice's loudness changed by this many dB (SSML's `<prosody volume>`; 0: as is).
    pub(super) gain_db: i8,
    pub(super) account: String,
    pub(super) file: PathBuf,
}

impl Speaker {
    pub(super) fn new(
        tts: Arc<dyn Tts>,
        speech_dir: PathBuf,
        disk: Arc<DiskBudget>,
        clips: Arc<Mutex<ClipCache>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            turns: Turns::new(tts.parallel()),
            tts,
            speech_dir,
            disk,
            clips,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// Pieces waiting for a turn at the engine.
    pub(super) fn waiting(&self) -> usize {
        self.turns.waiting()
    }

    pub(super) fn speech_dir(&self) -> &Path {
        &self.speech_dir
    }

    /// The job's rendering: the one under way for its key, or a new one. Returns once the
    /// first piece is there (or the rendering failed before it).
    pub(super) async fn render(self: &Arc<Self>, job: Job) -> Result<Rendering, PromptError> {
        let rendering = self.join_or_start(job);
        let mut progress = rendering.progress.clone();
        let seen = progress
            .wait_for(|p| p.pieces > 0 || p.end.is_some())
            .await
            .map(|p| p.clone())
            .unwrap_or_else(|_| Progress {
                pieces: 0,
                end: Some(Err(PromptError::Tts("the rendering stopped".into()))),
            });
        match seen.end {
            Some(Err(e)) if seen.pieces == 0 => Err(e),
            _ => Ok(rendering),
        }
    }

    fn join_or_start(self: &Arc<Self>, job: Job) -> Rendering {
        let mut in_flight = self.in_flight.lock().expect("in flight");
        if let Some(f) = in_flight.get(&job.key)
            && let Some(clip) = f.clip.upgrade()
        {
            return Rendering {
                clip,
                progress: f.progress.clone(),
            };
        }
        let clip = GrowingClip::new();
        let (tx, progress) = watch::channel(Progress::default());
        in_flight.insert(
            job.key.clone(),
            InFlight {
                clip: Arc::downgrade(&clip),
                progress: progress.clone(),
            },
        );
        tokio::spawn(self.clone().run(job, clip.clone(), tx));
        Rendering { clip, progress }
    }

    /// Renders a job to its end, then caches it whole.
    async fn run(self: Arc<Self>, job: Job, clip: Arc<GrowingClip>, tx: watch::Sender<Progress>) {
        let result = self.render_pieces(&job, &clip, &tx).await;
        clip.finish();
        {
            let mut in_flight = self.in_flight.lock().expect("in flight");
            if in_flight
                .get(&job.key)
                .is_some_and(|f| std::ptr::eq(f.clip.as_ptr(), Arc::as_ptr(&clip)))
            {
                in_flight.remove(&job.key);
            }
        }
        match &result {
            Ok(()) => {
                info!(chars = job.text.chars().count(), "speech rendered");
                if let Some(whole) = clip.joined() {
                    self.keep(&job, whole).await;
                }
            }
            Err(e) => warn!(error = %e, "speech rendering stopped"),
        }
        tx.send_modify(|p| p.end = Some(result));
    }

    async fn render_pieces(
        &self,
        job: &Job,
        clip: &Arc<GrowingClip>,
        tx: &watch::Sender<Progress>,
    ) -> Result<(), PromptError> {
        let (tts, text, voice) = (self.tts.clone(), job.text.clone(), job.voice.clone());
        let pieces = tokio::task::spawn_blocking(move || tts.pieces(&text, &voice))
            .await
            .map_err(|e| PromptError::Tts(e.to_string()))??;
        for piece in pieces {
            let turn = self.turns.take(&job.account).await.map_err(|_| {
                PromptError::Tts("too many texts of this account are being rendered".into())
            })?;
            let (tts, voice, rate, gain) =
                (self.tts.clone(), job.voice.clone(), job.rate, job.gain_db);
            let (clip, tx) = (clip.clone(), tx.clone());
            // Each part plays as soon as the engine hands it out.
            tokio::task::spawn_blocking(move || {
                tts.render_streamed(&piece, &voice, rate, &mut |audio| {
                    clip.push(louder(audio, gain).into());
                    tx.send_modify(|p| p.pieces += 1);
                })
            })
            .await
            .map_err(|e| PromptError::Tts(e.to_string()))??;
            drop(turn);
        }
        if clip.samples() == 0 {
            return Err(PromptError::Tts("the engine produced no audio".into()));
        }
        Ok(())
    }

    /// Keeps a whole rendering in memory and on disk.
    async fn keep(&self, job: &Job, whole: Clip) {
        let bytes: Vec<u8> = whole.iter().flat_map(|s| s.to_le_bytes()).collect();
        match write_atomically(&self.speech_dir, &job.file, &bytes).await {
            Ok(()) => self.disk.wrote(bytes.len() as u64),
            Err(e) => warn!(error = %e, "cannot cache rendered speech"),
        }
        self.clips
            .lock()
            .expect("clip cache")
            .insert(job.key.clone(), whole);
    }
}

/// `samples` `db` decibels louder (softer when negative), held within the sample range; as
/// they are at 0.
fn louder(mut samples: Vec<i16>, db: i8) -> Vec<i16> {
    if db != 0 {
        let factor = 10f32.powf(f32::from(db) / 20.0);
        for s in &mut samples {
            *s = (f32::from(*s) * factor).round().clamp(-32768.0, 32767.0) as i16;
        }
    }
    samples
}

#[cfg(test)]
mod loudness_tests {
    #[test]
    fn a_gain_scales_the_samples_and_holds_them_in_range() {
        assert_eq!(super::louder(vec![1000, -1000], 0), [1000, -1000]);
        assert_eq!(super::louder(vec![1000, -1000], -6), [501, -501]);
        assert_eq!(super::louder(vec![20000, -20000], 6), [32767, -32768]);
    }
}
