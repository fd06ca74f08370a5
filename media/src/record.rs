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
//! recordings still running are not held up behind it.
//!
//! WAV is written by hand rather than with `hound`, which only writes its sizes at finalisation;
//! the periodic header refresh is what makes a crash survivable.

use crate::endpoint_media::{FRAME, Frame, TapTracks};
use crate::health::{Beat, supervise};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
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
/// Frames a track may lag the other before the gap is written as silence (100 ms).
const ALIGN_LAG: u32 = 5;

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

/// The worker's side of one recording: turns frames into indexed messages.
pub(crate) struct RecordFeed {
    recording: u64,
    tracks: TapTracks,
    tx: mpsc::Sender<RecorderMsg>,
    backlog: Arc<AtomicI64>,
    /// This recording's share of `backlog`.
    own_backlog: Arc<AtomicI64>,
    started: Instant,
    paused_at: Option<Instant>,
    paused_total: Duration,
    /// Next frame index of each track: frames are numbered in arrival order, so network jitter
    /// does not push two of them into one slot, and re-anchored to the clock after a gap.
    next: [u32; 2],
    dropped: u64,
    max_length: Option<Duration>,
    silence: Option<crate::silence::SilenceTimer>,
}

/// How far (in frames) a track's numbering may fall behind the clock before the gap is kept.
const GAP_FRAMES: u32 = 3;

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
        if *next + GAP_FRAMES < wall {
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

    /// While paused nothing is recorded and the paused time leaves no gap in the file.
    pub(crate) fn pause(&mut self, now: Instant) {
        self.paused_at.get_or_insert(now);
    }

    pub(crate) fn resume(&mut self, now: Instant) {
        if let Some(at) = self.paused_at.take() {
            self.paused_total += now.saturating_duration_since(at);
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

    /// Frames of recording time by `now`: the time since the start, less the pauses.
    fn wall_frames(&self, now: Instant) -> u32 {
        let end = self.paused_at.unwrap_or(now);
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

fn push_sample(out: &mut Vec<u8>, format: RecordFormat, s: i16) {
    match format {
        RecordFormat::Pcm16 | RecordFormat::Mp3 => out.extend_from_slice(&s.to_le_bytes()),
        RecordFormat::Ulaw => out.push(crate::g711::linear_to_ulaw(s)),
    }
}

/// A 20 ms block whose every sample is under this is silence to `trim_silence` (-42 dBFS).
const SILENCE_PEAK: i16 = 256;

/// Finishes a stopped recording's WAV: cuts leading and trailing silence if asked, and turns
/// it into MP3 if asked. Returns the final path, its size and the duration.
fn finish_file(spec: &RecordSpec) -> io::Result<(PathBuf, u64, u64)> {
    let bytes = std::fs::read(&spec.path)?;
    let data = bytes.get(HEADER_LEN as usize..).unwrap_or_default();
    let mut pcm: Vec<i16> = match spec.format {
        RecordFormat::Ulaw => data
            .iter()
            .map(|&b| crate::g711::ulaw_to_linear(b))
            .collect(),
        _ => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    };
    let channels = spec.channels.count() as usize;
    if spec.trim_silence {
        let block = FRAME * channels;
        let loud = |c: &[i16]| c.iter().any(|s| s.unsigned_abs() >= SILENCE_PEAK as u16);
        let blocks: Vec<&[i16]> = pcm.chunks(block).collect();
        let first = blocks.iter().position(|c| loud(c));
        let last = blocks.iter().rposition(|c| loud(c));
        pcm = match (first, last) {
            (Some(f), Some(l)) => pcm[f * block..((l + 1) * block).min(pcm.len())].to_vec(),
            _ => Vec::new(),
        };
    }
    let duration_ms = (pcm.len() / channels / 8) as u64;
    if spec.format == RecordFormat::Mp3 {
        let mp3 = crate::mp3::encode(&pcm, channels as u8)?;
        let path = spec.path.with_extension("mp3");
        std::fs::write(&path, &mp3)?;
        std::fs::remove_file(&spec.path)?;
        return Ok((path, mp3.len() as u64, duration_ms));
    }
    let mut out = Vec::with_capacity(pcm.len() * 2);
    for &s in &pcm {
        push_sample(&mut out, spec.format, s);
    }
    let mut f = create_wav(spec)?;
    f.write_all(&out)?;
    write_sizes(&mut f, out.len() as u64)?;
    f.sync_all()?;
    Ok((
        spec.path.clone(),
        out.len() as u64 + HEADER_LEN,
        duration_ms,
    ))
}

const HEADER_LEN: u64 = 44;

fn create_wav(spec: &RecordSpec) -> io::Result<File> {
    if let Some(dir) = spec.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&spec.path)?;
    f.write_all(&wav_header(spec.format, spec.channels.count() as u16, 0))?;
    Ok(f)
}

/// The 44-byte header of an 8 kHz WAV holding `data_bytes` of samples.
fn wav_header(format: RecordFormat, channels: u16, data_bytes: u32) -> Vec<u8> {
    wav_header_at(format, channels, 8000, data_bytes)
}

fn wav_header_at(format: RecordFormat, channels: u16, rate: u32, data_bytes: u32) -> Vec<u8> {
    let (tag, bits) = format.wav();
    let block = channels * bits / 8;
    let mut h = Vec::with_capacity(HEADER_LEN as usize);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&tag.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * block as u32).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    h
}

/// An 8 kHz PCM16 WAV file of interleaved `samples`.
pub fn wav_pcm16(samples: &[i16], channels: u16) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = wav_header(RecordFormat::Pcm16, channels, data.len() as u32);
    out.extend_from_slice(&data);
    out
}

/// A mono PCM16 WAV file of `samples` at `rate` (speech at other rates than the call's).
pub fn wav_mono_at(samples: &[i16], rate: u32) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = wav_header_at(RecordFormat::Pcm16, 1, rate, data.len() as u32);
    out.extend_from_slice(&data);
    out
}

/// The interleaved samples and channel count of a WAV this recorder wrote (PCM16 or μ-law).
pub fn read_wav(bytes: &[u8]) -> Option<(Vec<i16>, u16)> {
    if bytes.len() < HEADER_LEN as usize || &bytes[0..4] != b"RIFF" || &bytes[36..40] != b"data" {
        return None;
    }
    let tag = u16::from_le_bytes([bytes[20], bytes[21]]);
    let channels = u16::from_le_bytes([bytes[22], bytes[23]]).max(1);
    let data = &bytes[HEADER_LEN as usize..];
    let samples = match tag {
        1 => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
        7 => data
            .iter()
            .map(|&b| crate::g711::ulaw_to_linear(b))
            .collect(),
        _ => return None,
    };
    Some((samples, channels))
}

/// Writes the RIFF and data sizes for `data_bytes` of samples, leaving the position at the end.
fn write_sizes(f: &mut File, data_bytes: u64) -> io::Result<()> {
    let data = data_bytes.min(u32::MAX as u64 - 36) as u32;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&(36 + data).to_le_bytes())?;
    f.seek(SeekFrom::Start(40))?;
    f.write_all(&data.to_le_bytes())?;
    f.seek(SeekFrom::End(0))?;
    Ok(())
}

/// A WAV file made whole again by [`repair_wav`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Sample bytes the header now declares.
    pub data_bytes: u64,
    pub duration_ms: u64,
}

/// Makes the header of a WAV file this recorder wrote agree with its length again (after a
/// crash cut it short). Sizes are rounded down to whole sample blocks; the duration follows
/// from the header's byte rate.
pub fn repair_wav(path: &Path) -> io::Result<Repaired> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let mut header = [0u8; HEADER_LEN as usize];
    io::Read::read_exact(&mut f, &mut header)?;
    if &header[0..4] != b"RIFF" || &header[8..16] != b"WAVEfmt " || &header[36..40] != b"data" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a WAV file written by the recorder",
        ));
    }
    let block = u16::from_le_bytes([header[32], header[33]]).max(1) as u64;
    let data = (len.saturating_sub(HEADER_LEN)) / block * block;
    f.set_len(HEADER_LEN + data)?;
    write_sizes(&mut f, data)?;
    f.sync_all()?;
    let byte_rate = u32::from_le_bytes([header[28], header[29], header[30], header[31]]).max(1);
    Ok(Repaired {
        data_bytes: data,
        duration_ms: data * 1000 / byte_rate as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A feed started at `t0` that stops `when` (its frames go nowhere).
    fn stopping_feed(t0: Instant, when: StopWhen) -> RecordFeed {
        let (tx, _) = mpsc::channel();
        RecordFeed {
            recording: 1,
            tracks: TapTracks::Inbound,
            tx,
            backlog: Arc::new(AtomicI64::new(0)),
            own_backlog: Arc::new(AtomicI64::new(0)),
            started: t0,
            paused_at: None,
            paused_total: Duration::ZERO,
            next: [0; 2],
            dropped: 0,
            max_length: when.max_length,
            silence: (when.silence)
                .map(|l| crate::silence::SilenceTimer::new(t0, l, when.silence_after_speech)),
        }
    }

    #[test]
    fn a_recording_stops_by_itself_at_its_length_or_after_silence() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let loud = crate::tone::sines(&[1000.0], 8000.0, 20);
        let loud: Frame = loud[..FRAME].try_into().unwrap();

        // Its length, pauses left out.
        let second = StopWhen {
            max_length: Some(Duration::from_secs(1)),
            ..StopWhen::default()
        };
        let mut f = stopping_feed(t0, second);
        assert_eq!(f.due_stop(ms(999)), None);
        f.pause(ms(500));
        assert_eq!(f.due_stop(ms(5000)), None, "not while paused");
        f.resume(ms(1000));
        assert_eq!(f.due_stop(ms(1499)), None);
        assert_eq!(f.due_stop(ms(1500)), Some(StopReason::MaxLength));

        // A second of silence after the party spoke (frames stamped as they arrived).
        let quiet = StopWhen {
            silence: Some(Duration::from_secs(1)),
            ..StopWhen::default()
        };
        let mut f = stopping_feed(t0, quiet);
        for n in 0..20 {
            f.feed(Track::Inbound, &loud, ms(n * 20));
        }
        f.feed(Track::Inbound, &frame(3), ms(400));
        assert_eq!(f.due_stop(ms(1379)), None);
        assert_eq!(f.due_stop(ms(1380)), Some(StopReason::Silence));
        // What the party hears is not what it says.
        let mut f = stopping_feed(t0, quiet);
        f.feed(Track::Outbound, &loud, ms(900));
        assert_eq!(f.due_stop(ms(1000)), Some(StopReason::Silence));

        // Telnyx's rule: no silence counts before the party speaks.
        let after_speech = StopWhen {
            silence_after_speech: true,
            ..quiet
        };
        let f = stopping_feed(t0, after_speech);
        assert_eq!(f.due_stop(ms(60_000)), None);
    }

    fn frame(v: i16) -> Frame {
        [v; FRAME]
    }

    fn record(
        channels: Channels,
        format: RecordFormat,
        frames: &[(Track, u32, i16)],
    ) -> (RecordingSaved, Vec<u8>) {
        let frames: Vec<_> = frames.iter().map(|&(t, i, v)| (t, i, frame(v))).collect();
        record_spec(channels, format, TapTracks::Both, false, &frames)
    }

    fn record_spec(
        channels: Channels,
        format: RecordFormat,
        tracks: TapTracks,
        trim_silence: bool,
        frames: &[(Track, u32, Frame)],
    ) -> (RecordingSaved, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.wav");
        let saved = Arc::new(Mutex::new(None));
        let s = saved.clone();
        let recorder = Recorder::spawn(Beat::new("recorder", None), move |r| {
            *s.lock().unwrap() = Some(r)
        })
        .unwrap();
        let start = Instant::now();
        let mut feed = recorder.start(
            RecordSpec {
                recording: 1,
                path,
                format,
                channels,
                tracks,
                trim_silence,
                stop: Default::default(),
            },
            start,
        );
        for (track, index, samples) in frames {
            feed.feed(
                *track,
                samples,
                start + Duration::from_millis(*index as u64 * 20 + 1),
            );
        }
        feed.stop(start);
        drop(recorder);
        let saved = saved.lock().unwrap().take().unwrap();
        let bytes = std::fs::read(&saved.path).unwrap();
        (saved, bytes)
    }

    fn pcm16(wav: &[u8]) -> Vec<i16> {
        wav[44..]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    /// A long MP3 is encoded after its stop while another recording's frames keep being
    /// written: the second recording's frames are taken before the first is saved.
    #[test]
    fn finishing_a_long_mp3_does_not_hold_up_other_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let l = log.clone();
        let recorder = Recorder::spawn(Beat::new("recorder", None), move |r| {
            assert_eq!(r.error, None);
            l.lock().unwrap().push(format!("saved {}", r.recording));
        })
        .unwrap();
        let spec = |recording, name: &str, format| RecordSpec {
            recording,
            path: dir.path().join(name),
            format,
            channels: Channels::Dual,
            tracks: TapTracks::Both,
            trim_silence: false,
            stop: Default::default(),
        };
        let drained = |feed: &RecordFeed| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while feed.own_backlog.load(Ordering::Relaxed) > 0 {
                assert!(
                    Instant::now() < deadline,
                    "the recorder stopped taking frames"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let start = Instant::now();
        let mut a = recorder.start(spec(1, "a.wav", RecordFormat::Mp3), start);
        // Ten minutes on both tracks, fed as fast as the recorder takes them.
        for i in 0..30_000u32 {
            if a.own_backlog.load(Ordering::Relaxed) >= MAX_BACKLOG_PER_RECORDING - 2 {
                drained(&a);
            }
            let at = start + Duration::from_millis(i as u64 * 20 + 1);
            a.feed(Track::Inbound, &frame(4000), at);
            a.feed(Track::Outbound, &frame(-4000), at);
        }
        drained(&a);
        assert_eq!(a.dropped, 0);
        a.stop(start + Duration::from_secs(600));
        let mut b = recorder.start(spec(2, "b.wav", RecordFormat::Pcm16), Instant::now());
        for _ in 0..50 {
            b.feed(Track::Inbound, &frame(7), Instant::now());
        }
        drained(&b);
        log.lock().unwrap().push("b's frames taken".into());
        b.stop(Instant::now());
        drop(recorder);
        assert_eq!(
            *log.lock().unwrap(),
            ["b's frames taken", "saved 1", "saved 2"]
        );
        assert!(dir.path().join("a.mp3").exists());
    }

    /// A recording whose frames are not taken fills its own share and then drops, leaving
    /// the rest of the shared budget to other recordings.
    #[test]
    fn one_recording_cannot_take_the_whole_backlog() {
        let (tx, _rx) = mpsc::channel();
        let shared = Arc::new(AtomicI64::new(0));
        let feed = |recording| RecordFeed {
            recording,
            tracks: TapTracks::Both,
            tx: tx.clone(),
            backlog: shared.clone(),
            own_backlog: Arc::new(AtomicI64::new(0)),
            started: Instant::now(),
            paused_at: None,
            paused_total: Duration::ZERO,
            next: [0; 2],
            dropped: 0,
            max_length: None,
            silence: None,
        };
        let (mut stuck, mut other) = (feed(1), feed(2));
        let now = Instant::now();
        for _ in 0..300 {
            stuck.feed(Track::Inbound, &frame(1), now);
        }
        assert_eq!(stuck.dropped, 300 - MAX_BACKLOG_PER_RECORDING as u64);
        for _ in 0..10 {
            other.feed(Track::Inbound, &frame(1), now);
        }
        assert_eq!(other.dropped, 0);
        assert_eq!(
            shared.load(Ordering::Relaxed),
            MAX_BACKLOG_PER_RECORDING + 10
        );
    }

    #[test]
    fn one_track_only_leaves_the_other_out() {
        let frames: Vec<_> = (0..20)
            .flat_map(|i| {
                [
                    (Track::Inbound, i, frame(100)),
                    (Track::Outbound, i, frame(2000)),
                ]
            })
            .collect();
        let (saved, bytes) = record_spec(
            Channels::Mono,
            RecordFormat::Pcm16,
            TapTracks::Inbound,
            false,
            &frames,
        );
        assert_eq!(saved.duration_ms, 400);
        assert!(pcm16(&bytes).iter().all(|&s| s == 100));
    }

    #[test]
    fn silence_is_trimmed_at_both_ends() {
        let level = |i: u32| if (3..7).contains(&i) { 1000 } else { 3 };
        let frames: Vec<_> = (0..10)
            .map(|i| (Track::Inbound, i, frame(level(i))))
            .collect();
        for format in [RecordFormat::Pcm16, RecordFormat::Ulaw] {
            let (saved, bytes) =
                record_spec(Channels::Mono, format, TapTracks::Both, true, &frames);
            assert_eq!(saved.duration_ms, 80, "{format:?}");
            assert_eq!(saved.bytes, bytes.len() as u64);
            assert_eq!(
                u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize,
                bytes.len() - 44
            );
        }
        let (_, bytes) = record_spec(
            Channels::Mono,
            RecordFormat::Pcm16,
            TapTracks::Both,
            true,
            &frames,
        );
        assert!(pcm16(&bytes).iter().all(|&s| s == 1000));
    }

    #[test]
    fn an_mp3_recording_replaces_its_wav_when_stopped() {
        let tone = crate::tone::sines(&[1000.0], 8000.0, 1000);
        let frames: Vec<_> = tone
            .chunks(FRAME)
            .enumerate()
            .map(|(i, c)| (Track::Inbound, i as u32, c.try_into().unwrap()))
            .collect();
        let (saved, bytes) = record_spec(
            Channels::Mono,
            RecordFormat::Mp3,
            TapTracks::Both,
            false,
            &frames,
        );
        assert_eq!(saved.path.extension().unwrap(), "mp3");
        assert!(!saved.path.with_extension("wav").exists());
        assert_eq!((saved.duration_ms, saved.bytes), (1000, bytes.len() as u64));
        let back = crate::decode::decode_to_8k(bytes, Some("mp3")).unwrap();
        assert!(crate::tone::share_at(&back[1000..7000], 1000.0) > 0.8);
    }

    #[test]
    fn a_recording_lasts_its_time_even_when_nobody_sends() {
        let dir = tempfile::tempdir().unwrap();
        let saved = Arc::new(Mutex::new(None));
        let s = saved.clone();
        let recorder = Recorder::spawn(Beat::new("recorder", None), move |r| {
            *s.lock().unwrap() = Some(r)
        })
        .unwrap();
        let start = Instant::now();
        let spec = RecordSpec {
            recording: 1,
            path: dir.path().join("quiet.wav"),
            format: RecordFormat::Pcm16,
            channels: Channels::Dual,
            tracks: TapTracks::Both,
            trim_silence: false,
            stop: Default::default(),
        };
        let mut feed = recorder.start(spec, start);
        // One frame at 100 ms, then nothing; paused for half a second of the 1.5 s.
        feed.feed(
            Track::Inbound,
            &frame(500),
            start + Duration::from_millis(100),
        );
        feed.pause(start + Duration::from_millis(600));
        feed.resume(start + Duration::from_millis(1100));
        feed.stop(start + Duration::from_millis(1500));
        drop(recorder);
        let saved = saved.lock().unwrap().take().unwrap();
        assert_eq!(saved.duration_ms, 1000, "1.5 s less the pause");
        let (samples, channels) = read_wav(&std::fs::read(&saved.path).unwrap()).unwrap();
        assert_eq!((samples.len(), channels), (16_000, 2));
        assert_eq!(samples.iter().filter(|&&s| s != 0).count(), FRAME);
    }

    #[test]
    fn dual_channel_puts_inbound_left_and_outbound_right() {
        let frames = [
            (Track::Inbound, 0, 100),
            (Track::Outbound, 0, -200),
            (Track::Inbound, 1, 300),
            (Track::Outbound, 6, 7),
        ];
        let (saved, bytes) = record(Channels::Dual, RecordFormat::Pcm16, &frames);
        assert_eq!(
            (saved.channels, saved.duration_ms, saved.dropped_frames),
            (2, 140, 0)
        );
        assert_eq!(bytes.len() as u64, saved.bytes);
        let sample = |frame: usize, ch: usize| {
            let o = 44 + (frame * FRAME * 2 + ch) * 2;
            i16::from_le_bytes([bytes[o], bytes[o + 1]])
        };
        assert_eq!((sample(0, 0), sample(0, 1)), (100, -200));
        assert_eq!(
            (sample(1, 0), sample(1, 1)),
            (300, 0),
            "outbound missing: silence"
        );
        assert_eq!((sample(2, 0), sample(2, 1)), (0, 0), "a gap on both tracks");
        assert_eq!(sample(6, 1), 7, "re-anchored to the clock after a gap");
        assert_eq!(
            u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize,
            bytes.len() - 44
        );
    }

    #[test]
    fn mono_mixes_and_ulaw_is_one_byte_per_sample() {
        let (saved, bytes) = record(
            Channels::Mono,
            RecordFormat::Ulaw,
            &[(Track::Inbound, 0, 1000), (Track::Outbound, 0, 500)],
        );
        assert_eq!((saved.channels, saved.duration_ms), (1, 20));
        assert_eq!(
            u16::from_le_bytes([bytes[20], bytes[21]]),
            7,
            "format tag: mu-law"
        );
        assert_eq!(bytes[44], crate::g711::linear_to_ulaw(1500));
    }

    #[test]
    fn a_file_cut_short_is_repaired() {
        let (_, bytes) = record(
            Channels::Dual,
            RecordFormat::Pcm16,
            &[(Track::Inbound, 0, 1), (Track::Inbound, 9, 1)],
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crashed.wav");
        // As left by a crash: sizes from an earlier refresh, and half a sample block at the end.
        let mut cut = bytes[..bytes.len() - 1001].to_vec();
        cut[40..44].copy_from_slice(&640u32.to_le_bytes());
        std::fs::write(&path, &cut).unwrap();
        let Repaired {
            data_bytes: data,
            duration_ms,
        } = repair_wav(&path).unwrap();
        assert_eq!(data % 4, 0);
        assert_eq!(duration_ms, data / 32, "8000 dual 16-bit frames per second");
        let fixed = std::fs::read(&path).unwrap();
        assert_eq!(fixed.len() as u64, 44 + data);
        assert_eq!(
            u32::from_le_bytes(fixed[40..44].try_into().unwrap()) as u64,
            data
        );
        assert_eq!(
            u32::from_le_bytes(fixed[4..8].try_into().unwrap()) as u64,
            36 + data
        );
    }
}
