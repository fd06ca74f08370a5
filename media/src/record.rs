//! Recording: media workers hand decoded 20 ms frames of an endpoint's two tracks to one
//! recorder thread, which lines them up by their shared clock and writes WAV files (PCM16 or
//! μ-law; mono mixed, or dual with the inbound track left and the outbound right).
//!
//! Nothing here can stall a worker: frames go through an unbounded channel whose backlog is
//! capped, and frames past the cap are dropped and counted. The WAV header is rewritten every
//! second, so a file cut short by a crash is off by at most a second and [`repair_wav`] makes
//! it whole again.
//!
//! WAV is written by hand rather than with `hound`, which only writes its sizes at finalisation;
//! the periodic header refresh is what makes a crash survivable.

use crate::endpoint_media::{FRAME, Frame};
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
pub enum WavFormat {
    Pcm16,
    Ulaw,
}

#[derive(Debug, Clone)]
pub struct RecordSpec {
    pub recording: u64,
    pub path: PathBuf,
    pub format: WavFormat,
    pub channels: Channels,
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

/// Frames allowed to wait for the recorder thread, over all recordings (about 40 s of one).
const MAX_BACKLOG: i64 = 2000;
/// Frames a track may lag the other before the gap is written as silence (100 ms).
const ALIGN_LAG: u32 = 5;

pub(crate) enum RecorderMsg {
    Start(RecordSpec),
    Frame {
        recording: u64,
        track: Track,
        index: u32,
        samples: Box<Frame>,
    },
    Stop {
        recording: u64,
        dropped: u64,
    },
}

/// The worker's side of one recording: turns frames into indexed messages.
pub(crate) struct RecordFeed {
    recording: u64,
    tx: mpsc::Sender<RecorderMsg>,
    backlog: Arc<AtomicI64>,
    started: Instant,
    paused_at: Option<Instant>,
    paused_total: Duration,
    /// Next frame index of each track: frames are numbered in arrival order, so network jitter
    /// does not push two of them into one slot, and re-anchored to the clock after a gap.
    next: [u32; 2],
    dropped: u64,
}

/// How far (in frames) a track's numbering may fall behind the clock before the gap is kept.
const GAP_FRAMES: u32 = 3;

impl RecordFeed {
    pub(crate) fn feed(&mut self, track: Track, frame: &Frame, now: Instant) {
        if self.paused_at.is_some() {
            return;
        }
        if self.backlog.load(Ordering::Relaxed) >= MAX_BACKLOG {
            self.dropped += 1;
            return;
        }
        let elapsed = now
            .saturating_duration_since(self.started)
            .saturating_sub(self.paused_total);
        let wall = (elapsed.as_millis() / 20) as u32;
        let next = &mut self.next[track as usize];
        if *next + GAP_FRAMES < wall {
            *next = wall;
        }
        let index = *next;
        *next += 1;
        self.backlog.fetch_add(1, Ordering::Relaxed);
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

    pub(crate) fn stop(self) {
        let _ = self.tx.send(RecorderMsg::Stop {
            recording: self.recording,
            dropped: self.dropped,
        });
    }
}

/// The recorder thread's handle.
pub(crate) struct Recorder {
    tx: mpsc::Sender<RecorderMsg>,
    backlog: Arc<AtomicI64>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub(crate) fn spawn(saved: impl Fn(RecordingSaved) + Send + 'static) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(AtomicI64::new(0));
        let b = backlog.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(rx, b, saved))?;
        Ok(Self {
            tx,
            backlog,
            thread: Some(thread),
        })
    }

    pub(crate) fn start(&self, spec: RecordSpec, now: Instant) -> RecordFeed {
        let recording = spec.recording;
        let _ = self.tx.send(RecorderMsg::Start(spec));
        RecordFeed {
            recording,
            tx: self.tx.clone(),
            backlog: self.backlog.clone(),
            started: now,
            paused_at: None,
            paused_total: Duration::ZERO,
            next: [0; 2],
            dropped: 0,
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has written what was queued.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Open {
    spec: RecordSpec,
    file: Option<File>,
    error: Option<String>,
    /// Index of the next frame to write.
    next: u32,
    pending: BTreeMap<u32, [Option<Box<Frame>>; 2]>,
    latest: u32,
    data_bytes: u64,
    header_at: Instant,
}

fn run(rx: mpsc::Receiver<RecorderMsg>, backlog: Arc<AtomicI64>, saved: impl Fn(RecordingSaved)) {
    let mut open: HashMap<u64, Open> = HashMap::new();
    for msg in rx {
        match msg {
            RecorderMsg::Start(spec) => {
                let (file, error) = match create_wav(&spec) {
                    Ok(f) => (Some(f), None),
                    Err(e) => (None, Some(format!("{}: {e}", spec.path.display()))),
                };
                let rec = Open {
                    spec,
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
                if index < rec.next {
                    continue; // later than its slot; already written
                }
                rec.pending.entry(index).or_default()[track as usize] = Some(samples);
                rec.latest = rec.latest.max(index);
                rec.flush(rec.latest.saturating_sub(ALIGN_LAG));
            }
            RecorderMsg::Stop { recording, dropped } => {
                if let Some(mut rec) = open.remove(&recording) {
                    saved(rec.finish(dropped));
                }
            }
        }
    }
}

impl Open {
    /// Writes every frame before `upto`, silence where a track has none.
    fn flush(&mut self, upto: u32) {
        let channels = if self.spec.channels == Channels::Dual {
            2
        } else {
            1
        };
        let mut out = Vec::with_capacity(FRAME * channels * 2);
        while self.next < upto {
            let tracks = self.pending.remove(&self.next).unwrap_or_default();
            let get = |t: usize, i: usize| tracks[t].as_ref().map_or(0, |f| f[i]);
            for i in 0..FRAME {
                let samples: &[i16] = match self.spec.channels {
                    Channels::Mono => &[get(0, i).saturating_add(get(1, i))],
                    Channels::Dual => &[get(0, i), get(1, i)],
                };
                for &s in samples {
                    match self.spec.format {
                        WavFormat::Pcm16 => out.extend_from_slice(&s.to_le_bytes()),
                        WavFormat::Ulaw => out.push(crate::g711::linear_to_ulaw(s)),
                    }
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

    fn finish(&mut self, dropped: u64) -> RecordingSaved {
        // Everything still pending, up to the last frame seen.
        if let Some(&last) = self.pending.keys().next_back() {
            self.flush(last + 1);
        }
        if let Some(f) = &mut self.file
            && let Err(e) = write_sizes(f, self.data_bytes).and_then(|_| f.sync_all())
        {
            self.error = Some(e.to_string());
        }
        let channels = if self.spec.channels == Channels::Dual {
            2
        } else {
            1
        };
        let bytes_per_ms = 8
            * channels
            * if self.spec.format == WavFormat::Pcm16 {
                2
            } else {
                1
            };
        RecordingSaved {
            recording: self.spec.recording,
            path: self.spec.path.clone(),
            duration_ms: self.data_bytes / bytes_per_ms,
            channels: channels as u8,
            bytes: self.data_bytes + HEADER_LEN,
            dropped_frames: dropped,
            error: self.error.clone(),
        }
    }
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
    let channels: u16 = if spec.channels == Channels::Dual {
        2
    } else {
        1
    };
    let (format, bits): (u16, u16) = match spec.format {
        WavFormat::Pcm16 => (1, 16),
        WavFormat::Ulaw => (7, 8),
    };
    let block = channels * bits / 8;
    let mut h = Vec::with_capacity(HEADER_LEN as usize);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&36u32.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&format.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&8000u32.to_le_bytes());
    h.extend_from_slice(&(8000 * block as u32).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&0u32.to_le_bytes());
    f.write_all(&h)?;
    Ok(f)
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

    fn frame(v: i16) -> Frame {
        [v; FRAME]
    }

    fn record(
        channels: Channels,
        format: WavFormat,
        frames: &[(Track, u32, i16)],
    ) -> (RecordingSaved, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.wav");
        let saved = Arc::new(Mutex::new(None));
        let s = saved.clone();
        let recorder = Recorder::spawn(move |r| *s.lock().unwrap() = Some(r)).unwrap();
        let start = Instant::now();
        let mut feed = recorder.start(
            RecordSpec {
                recording: 1,
                path: path.clone(),
                format,
                channels,
            },
            start,
        );
        for &(track, index, value) in frames {
            feed.feed(
                track,
                &frame(value),
                start + Duration::from_millis(index as u64 * 20 + 1),
            );
        }
        feed.stop();
        drop(recorder);
        let saved = saved.lock().unwrap().take().unwrap();
        (saved, std::fs::read(&path).unwrap())
    }

    #[test]
    fn dual_channel_puts_inbound_left_and_outbound_right() {
        let frames = [
            (Track::Inbound, 0, 100),
            (Track::Outbound, 0, -200),
            (Track::Inbound, 1, 300),
            (Track::Outbound, 6, 7),
        ];
        let (saved, bytes) = record(Channels::Dual, WavFormat::Pcm16, &frames);
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
            WavFormat::Ulaw,
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
            WavFormat::Pcm16,
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
