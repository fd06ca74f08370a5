//! Recording: media workers hand decoded 20 ms frames of an endpoint's two tracks (or one of
//! them) to one recorder thread, which lines them up by their shared clock and writes WAV files
//! (PCM16 or μ-law; mono mixed, or dual with the inbound track left and the outbound right).
//! MP3 recordings and trimmed ones are written as WAV while they run (so a crash loses
//! nothing) and finished when they stop.
//!
//! Nothing here can stall a worker: frames go through an unbounded channel whose backlog is
//! capped, per recording and in all, and frames past a cap are dropped and counted. The WAV
//! header is rewritten every second, so a file cut short by a crash is off by at most a second
//! and [`repair_wav`] makes it whole again. Finishing a stopped recording (trimming, MP3
//! encoding: seconds for a long call) runs on a thread of its own, so the frames of the
//! recordings still running are not held up behind it. Writing, finishing and repairing the files is `file`'s part.

mod file;
#[cfg(test)]
mod tests;

use file::{HEADER_LEN, create_wav, finish_file, push_sample, write_sizes};
pub use file::{Repaired, read_wav, repair_wav, wav_mono_at, wav_pcm16};

use crate::endpoint_media::{FRAME, Frame, TapTracks};
use crate::health::{Beat, supervise};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The two directions of an endpoint's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// From the peer.
    Inbound,
    /// To the peer.
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// Both tracks mixed.
    Mono,
    /// Inbound left, outbound right.
    Dual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// WAV, 16-bit linear.
    Pcm16,
    /// WAV, μ-law.
    Ulaw,
    /// MP3 at 32 kbit/s (`path` gets the `.mp3` extension when the recording is finished).
    Mp3,
}

impl RecordFormat {
    /// The WAV format tag and bits per sample of the file written while recording.
    fn wav(self) -> (u16, u16) {
        match self {
            RecordFormat::Pcm16 | RecordFormat::Mp3 => (1, 16),
            RecordFormat::Ulaw => (7, 8),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecordSpec {
    pub recording: u64,
    pub path: PathBuf,
    pub format: RecordFormat,
    pub channels: Channels,
    /// The tracks recorded (Twilio's `RecordingTrack`); with one, the other is silence.
    pub tracks: TapTracks,
    /// Leading and trailing silence is cut when the recording finishes.
    pub trim_silence: bool,
    /// When the recording stops by itself.
    pub stop: StopWhen,
}

/// When a recording stops by itself (Twilio's `<Record timeout maxLength>`, Telnyx's record
/// `timeout_secs` and `max_length`). Judged on the media clock as frames arrive, so a frame
/// that waited in a queue is not taken for a late one; a party that sends nothing at all is
/// silent too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StopWhen {
    /// After this much recording (pauses left out).
    pub max_length: Option<Duration>,
    /// After the party (the inbound track) has been silent this long.
    pub silence: Option<Duration>,
    /// Silence counts only once the party has spoken (Telnyx's rule); else from the start too
    /// (Twilio's).
    pub silence_after_speech: bool,
}

/// Why a recording stopped by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    MaxLength,
    Silence,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxLength => "max-length",
            Self::Silence => "silence",
        }
    }
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSaved {
    pub recording: u64,
    pub path: PathBuf,
    pub duration_ms: u64,
    pub channels: u8,
    pub bytes: u64,
    /// Frames lost because the recorder fell behind (or the file could not be written).
    pub dropped_frames: u64,
    pub error: Option<String>,
}

/// Frames allowed to wait for the recorder thread, over all recordings (16 minutes of audio,
/// about 20 MB).
const MAX_BACKLOG: i64 = 50_000;
/// Frames one recording may have waiting (5 s).
const MAX_BACKLOG_PER_RECORDING: i64 = 250;
/// Frames the recorder thread holds back before writing, so that the track behind (by up to
/// [`GAP_FRAMES`], while the other may lead by [`LEAD_FRAMES`]) still finds its slot; what
/// comes later than this is lost (240 ms).
const ALIGN_LAG: u32 = GAP_FRAMES + LEAD_FRAMES;

pub(crate) enum RecorderMsg {
    Start(RecordSpec, Arc<AtomicI64>),
    Frame {
        recording: u64,
        track: Track,
        index: u32,
        samples: Box<Frame>,
    },
    Stop {
        recording: u64,
        dropped: u64,
        /// Frames of recording time at the stop: the file lasts that long, silence where no
        /// frame came (a call where nobody sends is recorded for its length).
        until: u32,
    },
}

/// What a paused recording keeps of the pause (Twilio's `PauseBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PauseBehavior {
    /// Nothing: the file goes on from where it paused, shorter by the pause.
    #[default]
    Skip,
    /// Its length, as silence: the file keeps the call's time.
    Silence,
}

/// The worker's side of one recording: turns frames into indexed messages.
pub(crate) struct RecordFeed {
    recording: u64,
    tracks: TapTracks,
    tx: mpsc::Sender<RecorderMsg>,
    backlog: Arc<AtomicI64>,
    /// This recording's share of `backlog`.
    own_backlog: Arc<AtomicI64>,
    started: Instant,
    /// Since when it is paused, and what the pause leaves in the file.
    paused_at: Option<(Instant, PauseBehavior)>,
    /// The skipped pauses' total: time the file leaves out.
    paused_total: Duration,
    /// Next frame index of each track: frames are numbered in arrival order, so network jitter
    /// does not push two of them into one slot, and re-anchored to the clock after a gap.
    next: [u32; 2],
    dropped: u64,
    max_length: Option<Duration>,
    silence: Option<crate::silence::SilenceTimer>,
}

/// How far (in frames) a track's numbering may fall behind the clock and go on where it was: a
/// stall of the media worker or of the network up to this long (200 ms) is followed by a burst
/// that fills it, every frame in place. A longer gap is real (loss, DTX, a hold) and kept as
/// silence: the track re-anchors to the clock.
const GAP_FRAMES: u32 = 10;
/// How far a track's numbering may run ahead of the clock. Frames are numbered by counting, so
/// a burst after a gap longer than [`GAP_FRAMES`] (the socket's backlog once a stalled worker
/// runs again, the media clock's catch-up ticks), or a sender whose clock runs fast, would
/// carry the track ahead for good, and every frame of the other track, at the clock, would
/// then come too late for its slot and be lost. Past this lead the track re-anchors to the
/// clock: a few frames of the burst are overwritten once, and the tracks stay aligned.
const LEAD_FRAMES: u32 = 2;

impl RecordFeed {
    pub(crate) fn feed(&mut self, track: Track, frame: &Frame, now: Instant) {
        if self.paused_at.is_some() {
            return;
        }
        if track == Track::Inbound
            && let Some(s) = &mut self.silence
        {
            s.push(now, frame);
        }
        if !self.tracks.wants(track) {
            return;
        }
        if self.backlog.load(Ordering::Relaxed) >= MAX_BACKLOG
            || self.own_backlog.load(Ordering::Relaxed) >= MAX_BACKLOG_PER_RECORDING
        {
            self.dropped += 1;
            return;
        }
        let wall = self.wall_frames(now);
        let next = &mut self.next[track as usize];
        if *next + GAP_FRAMES < wall || *next > wall + LEAD_FRAMES {
            *next = wall;
        }
        let index = *next;
        *next += 1;
        self.backlog.fetch_add(1, Ordering::Relaxed);
        self.own_backlog.fetch_add(1, Ordering::Relaxed);
        let msg = RecorderMsg::Frame {
            recording: self.recording,
            track,
            index,
            samples: Box::new(*frame),
        };
        if self.tx.send(msg).is_err() {
            self.dropped += 1;
        }
    }

    /// While paused nothing is recorded; a skipped pause leaves no gap in the file, a silent
    /// one leaves its length of silence (the track re-anchors to the clock on resuming, and
    /// what it did not get is silence).
    pub(crate) fn pause(&mut self, now: Instant, behavior: PauseBehavior) {
        self.paused_at.get_or_insert((now, behavior));
    }

    pub(crate) fn resume(&mut self, now: Instant) {
        if let Some((at, PauseBehavior::Skip)) = self.paused_at.take() {
            self.paused_total += now.saturating_duration_since(at);
        }
    }

    /// Until when the file's time runs at `now`: a skipped pause stops it.
    fn time_until(&self, now: Instant) -> Instant {
        match self.paused_at {
            Some((at, PauseBehavior::Skip)) => at,
            _ => now,
        }
    }

    /// The recording this feeds.
    pub(crate) fn recording(&self) -> u64 {
        self.recording
    }

    /// Whether the recording should stop by itself at `now` (never while paused).
    pub(crate) fn due_stop(&self, now: Instant) -> Option<StopReason> {
        if self.paused_at.is_some() {
            return None;
        }
        let recorded = now
            .saturating_duration_since(self.started)
            .saturating_sub(self.paused_total);
        if self.max_length.is_some_and(|max| recorded >= max) {
            return Some(StopReason::MaxLength);
        }
        (self.silence.as_ref())
            .is_some_and(|s| s.expired(now))
            .then_some(StopReason::Silence)
    }

    /// Frames of recording time by `now`: the time since the start, less the skipped pauses.
    fn wall_frames(&self, now: Instant) -> u32 {
        let end = self.time_until(now);
        let elapsed = end
            .saturating_duration_since(self.started)
            .saturating_sub(self.paused_total);
        (elapsed.as_millis() / 20) as u32
    }

    pub(crate) fn stop(self, now: Instant) {
        let _ = self.tx.send(RecorderMsg::Stop {
            recording: self.recording,
            dropped: self.dropped,
            until: self.wall_frames(now),
        });
    }
}

/// The recorder thread's handle.
pub(crate) struct Recorder {
    tx: mpsc::Sender<RecorderMsg>,
    backlog: Arc<AtomicI64>,
    /// The recorder thread and the finisher thread.
    threads: [Option<JoinHandle<()>>; 2],
}

impl Recorder {
    pub(crate) fn spawn(
        beat: Arc<Beat>,
        saved: impl Fn(RecordingSaved) + Send + 'static,
    ) -> io::Result<Self> {
        // The finisher ends once the recorder thread, which holds its sender, has ended and
        // it has finished every recording sent to it.
        let (finish_tx, finish_rx) = mpsc::channel::<Stopped>();
        let finisher_beat = beat.clone();
        let finisher = std::thread::Builder::new()
            .name("recorder-finish".into())
            .spawn(move || {
                supervise(&finisher_beat, || {
                    for stopped in finish_rx {
                        saved(finish(stopped));
                    }
                });
            })?;
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(AtomicI64::new(0));
        let b = backlog.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                supervise(&beat, || record(rx, b, finish_tx));
            })?;
        Ok(Self {
            tx,
            backlog,
            threads: [Some(thread), Some(finisher)],
        })
    }

    pub(crate) fn start(&self, spec: RecordSpec, now: Instant) -> RecordFeed {
        let (recording, tracks, stop) = (spec.recording, spec.tracks, spec.stop);
        let own_backlog = Arc::new(AtomicI64::new(0));
        let _ = self.tx.send(RecorderMsg::Start(spec, own_backlog.clone()));
        RecordFeed {
            recording,
            tracks,
            tx: self.tx.clone(),
            backlog: self.backlog.clone(),
            own_backlog,
            started: now,
            paused_at: None,
            paused_total: Duration::ZERO,
            next: [0; 2],
            dropped: 0,
            max_length: stop.max_length,
            silence: (stop.silence).map(|limit| {
                crate::silence::SilenceTimer::new(now, limit, stop.silence_after_speech)
            }),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has written what was queued.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        // The recorder first: its end lets the finisher end.
        for t in self.threads.iter_mut().filter_map(Option::take) {
            let _ = t.join();
        }
    }
}

struct Open {
    spec: RecordSpec,
    backlog: Arc<AtomicI64>,
    file: Option<File>,
    error: Option<String>,
    /// Index of the next frame to write.
    next: u32,
    pending: BTreeMap<u32, [Option<Box<Frame>>; 2]>,
    latest: u32,
    data_bytes: u64,
    header_at: Instant,
}

/// A stopped recording on its way to the finisher thread.
struct Stopped {
    spec: RecordSpec,
    saved: RecordingSaved,
}

fn record(rx: mpsc::Receiver<RecorderMsg>, backlog: Arc<AtomicI64>, finish: mpsc::Sender<Stopped>) {
    let mut open: HashMap<u64, Open> = HashMap::new();
    for msg in rx {
        match msg {
            RecorderMsg::Start(spec, own_backlog) => {
                let (file, error) = match create_wav(&spec) {
                    Ok(f) => (Some(f), None),
                    Err(e) => (None, Some(format!("{}: {e}", spec.path.display()))),
                };
                let rec = Open {
                    spec,
                    backlog: own_backlog,
                    file,
                    error,
                    next: 0,
                    pending: BTreeMap::new(),
                    latest: 0,
                    data_bytes: 0,
                    header_at: Instant::now(),
                };
                open.insert(rec.spec.recording, rec);
            }
            RecorderMsg::Frame {
                recording,
                track,
                index,
                samples,
            } => {
                backlog.fetch_sub(1, Ordering::Relaxed);
                let Some(rec) = open.get_mut(&recording) else {
                    continue;
                };
                rec.backlog.fetch_sub(1, Ordering::Relaxed);
                if index < rec.next {
                    continue; // later than its slot; already written
                }
                rec.pending.entry(index).or_default()[track as usize] = Some(samples);
                rec.latest = rec.latest.max(index);
                rec.flush(rec.latest.saturating_sub(ALIGN_LAG));
            }
            RecorderMsg::Stop {
                recording,
                dropped,
                until,
            } => {
                if let Some(mut rec) = open.remove(&recording) {
                    let saved = rec.close(dropped, until);
                    let _ = finish.send(Stopped {
                        spec: rec.spec,
                        saved,
                    });
                }
            }
        }
    }
}

impl Open {
    /// Writes every frame before `upto`, silence where a track has none.
    fn flush(&mut self, upto: u32) {
        let mut out = Vec::with_capacity(FRAME * self.spec.channels.count() as usize * 2);
        while self.next < upto {
            let tracks = self.pending.remove(&self.next).unwrap_or_default();
            let get = |t: usize, i: usize| tracks[t].as_ref().map_or(0, |f| f[i]);
            for i in 0..FRAME {
                let samples: &[i16] = match self.spec.channels {
                    Channels::Mono => &[get(0, i).saturating_add(get(1, i))],
                    Channels::Dual => &[get(0, i), get(1, i)],
                };
                for &s in samples {
                    push_sample(&mut out, self.spec.format, s);
                }
            }
            self.next += 1;
        }
        if out.is_empty() {
            return;
        }
        self.data_bytes += out.len() as u64;
        if let Some(f) = &mut self.file {
            let result = f.write_all(&out).and_then(|_| {
                if self.header_at.elapsed() >= Duration::from_secs(1) {
                    self.header_at = Instant::now();
                    write_sizes(f, self.data_bytes)?;
                }
                Ok(())
            });
            if let Err(e) = result {
                self.error = Some(e.to_string());
                self.file = None;
            }
        }
    }

    /// Writes what is left and the final sizes; what is still to do for the format (trim,
    /// MP3) is the finisher's.
    fn close(&mut self, dropped: u64, until: u32) -> RecordingSaved {
        // Everything still pending, up to the last frame seen or the recording's length.
        let last = self.pending.keys().next_back().map_or(0, |&l| l + 1);
        self.flush(last.max(until));
        if let Some(f) = &mut self.file
            && let Err(e) = write_sizes(f, self.data_bytes).and_then(|_| f.sync_all())
        {
            self.error = Some(e.to_string());
        }
        let channels = self.spec.channels.count();
        let bytes_per_ms = 8 * channels as u64 * (self.spec.format.wav().1 / 8) as u64;
        self.file = None;
        RecordingSaved {
            recording: self.spec.recording,
            path: self.spec.path.clone(),
            duration_ms: self.data_bytes / bytes_per_ms,
            channels,
            bytes: self.data_bytes + HEADER_LEN,
            dropped_frames: dropped,
            error: self.error.clone(),
        }
    }
}

/// A closed recording made final: trimmed and encoded as its spec asks.
fn finish(Stopped { spec, mut saved }: Stopped) -> RecordingSaved {
    let rework = spec.trim_silence || spec.format == RecordFormat::Mp3;
    if rework && saved.error.is_none() {
        match finish_file(&spec) {
            Ok((path, bytes, duration_ms)) => {
                (saved.path, saved.bytes, saved.duration_ms) = (path, bytes, duration_ms)
            }
            Err(e) => saved.error = Some(e.to_string()),
        }
    }
    saved
}

impl Channels {
    pub fn count(self) -> u8 {
        match self {
            Channels::Mono => 1,
            Channels::Dual => 2,
        }
    }
}
