//! Audio on a media stream's socket, both ways, with no IO: the call's 8 kHz frames encoded
//! for the application (μ-law, A-law, or 16-bit linear at 8, 16 or 24 kHz), and the
//! application's audio — in pieces of any size — assembled into the 8 kHz frames the call
//! core plays, with each mark kept at its place in the audio rather than at a frame boundary.
//!
//! That last point matters for voice bots: many send a chunk of 50 ms (or whatever their
//! speech engine produced) and a mark after every chunk. Padding each chunk out to whole
//! frames would put silence inside every word; instead a partial frame waits for the next
//! chunk, and is completed with silence only when the queue ahead of it would otherwise run
//! dry (the application stopped talking).

use std::time::{Duration, Instant};
use switchboard_media::resample::{Downsampler, Upsampler, WIDE_RATES};
use switchboard_media::{FRAME, Frame, Law};

/// 20 ms.
const FRAME_TIME: Duration = Duration::from_millis(20);
/// How long a partial frame waits for the rest of its audio when nothing is queued ahead
/// of it.
const PARTIAL_WAIT: Duration = Duration::from_millis(20);

/// How audio is carried on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Pcmu,
    Pcma,
    /// 16-bit linear PCM at `rate` (8000, 16000 or 24000), in the byte order given.
    L16 {
        rate: u32,
        big_endian: bool,
    },
}

impl Encoding {
    pub fn rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::L16 { rate, .. } => rate,
        }
    }

    /// Whether the rate is one the engine's 8 kHz audio converts to.
    pub fn supported(self) -> bool {
        match self {
            Self::Pcmu | Self::Pcma => true,
            Self::L16 { rate, .. } => rate == 8000 || WIDE_RATES.contains(&rate),
        }
    }

    /// The G.711 law of a G.711 encoding.
    pub fn law(self) -> Option<Law> {
        match self {
            Self::Pcmu => Some(Law::Ulaw),
            Self::Pcma => Some(Law::Alaw),
            Self::L16 { .. } => None,
        }
    }

    /// Bytes of 20 ms.
    pub fn frame_bytes(self) -> usize {
        match self {
            Self::Pcmu | Self::Pcma => FRAME,
            Self::L16 { rate, .. } => rate as usize / 50 * 2,
        }
    }
}

/// The call's frames in the stream's encoding.
pub struct Encoder {
    encoding: Encoding,
    up: Option<Upsampler>,
    bytes: Vec<u8>,
}

impl Encoder {
    pub fn new(encoding: Encoding) -> Self {
        let up = match encoding {
            Encoding::L16 { rate, .. } if rate != 8000 => Some(Upsampler::new(rate)),
            _ => None,
        };
        Self {
            encoding,
            up,
            bytes: Vec::with_capacity(encoding.frame_bytes()),
        }
    }

    /// One 20 ms frame, encoded (the buffer is reused).
    pub fn encode(&mut self, frame: &Frame) -> &[u8] {
        self.bytes.clear();
        match self.encoding {
            Encoding::Pcmu | Encoding::Pcma => {
                let law = self.encoding.law().expect("G.711");
                self.bytes.resize(FRAME, 0);
                law.encode(frame, &mut self.bytes);
            }
            Encoding::L16 { big_endian, .. } => {
                let put = |bytes: &mut Vec<u8>, s: i16| {
                    bytes.extend_from_slice(&if big_endian {
                        s.to_be_bytes()
                    } else {
                        s.to_le_bytes()
                    })
                };
                match &mut self.up {
                    Some(up) => {
                        for s in up.frame(frame) {
                            put(&mut self.bytes, s);
                        }
                    }
                    None => {
                        for &s in frame {
                            put(&mut self.bytes, s);
                        }
                    }
                }
            }
        }
        &self.bytes
    }
}

/// Audio to hand to the call core: frames to queue, then a mark to report once they played.
#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    pub frames: Vec<Frame>,
    pub mark: Option<String>,
}

/// Samples on their way to 8 kHz frames: kept as they are at 8 kHz, resampled otherwise.
enum Narrowing {
    Direct(Vec<i16>),
    Down(Box<Downsampler>),
}

impl Narrowing {
    fn push(&mut self, samples: impl IntoIterator<Item = i16>, out: &mut Vec<Frame>) {
        match self {
            Self::Direct(residual) => {
                for s in samples {
                    residual.push(s);
                    if residual.len() == FRAME {
                        out.push(residual[..].try_into().expect("one frame"));
                        residual.clear();
                    }
                }
            }
            Self::Down(d) => d.push(samples, out),
        }
    }

    fn pending(&self) -> bool {
        match self {
            Self::Direct(residual) => !residual.is_empty(),
            Self::Down(d) => d.pending() > 0,
        }
    }

    fn flush(&mut self, out: &mut Vec<Frame>) {
        match self {
            Self::Direct(residual) => {
                if !residual.is_empty() {
                    residual.resize(FRAME, 0);
                    out.push(residual[..].try_into().expect("one frame"));
                    residual.clear();
                }
            }
            Self::Down(d) => d.flush(out),
        }
    }

    fn clear(&mut self) {
        match self {
            Self::Direct(residual) => residual.clear(),
            Self::Down(d) => d.clear(),
        }
    }
}

/// The application's audio and marks, turned into what the call core plays.
pub struct Assembler {
    encoding: Encoding,
    narrowing: Narrowing,
    /// Marks that came while a partial frame waited: they follow the frame it completes.
    waiting_marks: Vec<String>,
    /// When the frames queued so far will have been played (the engine plays one every
    /// 20 ms), as far as this side can tell.
    played_by: Instant,
    /// When a partial frame is completed with silence.
    flush_at: Option<Instant>,
}

impl Assembler {
    pub fn new(encoding: Encoding, now: Instant) -> Self {
        let narrowing = match encoding {
            Encoding::L16 { rate, .. } if rate != 8000 => {
                Narrowing::Down(Box::new(Downsampler::new(rate)))
            }
            _ => Narrowing::Direct(Vec::with_capacity(FRAME)),
        };
        Self {
            encoding,
            narrowing,
            waiting_marks: Vec::new(),
            played_by: now,
            flush_at: None,
        }
    }

    /// Audio in the stream's encoding. An odd trailing byte of 16-bit audio is dropped.
    pub fn audio(&mut self, bytes: &[u8], now: Instant) -> Vec<Play> {
        match self.encoding {
            Encoding::Pcmu | Encoding::Pcma => {
                let law = self.encoding.law().expect("G.711");
                let mut pcm = [0i16; FRAME];
                let mut samples = Vec::with_capacity(bytes.len());
                for chunk in bytes.chunks(FRAME) {
                    law.decode(chunk, &mut pcm[..chunk.len()]);
                    samples.extend_from_slice(&pcm[..chunk.len()]);
                }
                self.samples(samples, now)
            }
            Encoding::L16 { big_endian, .. } => {
                let samples = bytes.chunks_exact(2).map(|b| {
                    let b = [b[0], b[1]];
                    if big_endian {
                        i16::from_be_bytes(b)
                    } else {
                        i16::from_le_bytes(b)
                    }
                });
                self.samples(samples, now)
            }
        }
    }

    /// Audio already decoded to samples at the stream's rate (a decoded file).
    pub fn samples(&mut self, samples: impl IntoIterator<Item = i16>, now: Instant) -> Vec<Play> {
        let mut frames = Vec::new();
        self.narrowing.push(samples, &mut frames);
        let mut out = Vec::new();
        if !frames.is_empty() {
            // The marks that waited were inside the first of these frames' audio.
            let mut rest = frames.split_off(1);
            let first = std::mem::take(&mut frames);
            let marks = std::mem::take(&mut self.waiting_marks);
            self.queue(first, marks, now, &mut out);
            if !rest.is_empty() {
                self.queue(std::mem::take(&mut rest), Vec::new(), now, &mut out);
            }
        }
        self.flush_at = self
            .narrowing
            .pending()
            .then(|| self.played_by.max(now + PARTIAL_WAIT));
        out
    }

    /// A mark after the audio sent so far.
    pub fn mark(&mut self, name: String, now: Instant) -> Vec<Play> {
        if self.narrowing.pending() {
            self.waiting_marks.push(name);
            return Vec::new();
        }
        let mut out = Vec::new();
        self.queue(Vec::new(), vec![name], now, &mut out);
        out
    }

    /// Everything not yet handed over is dropped: the marks that waited with it are
    /// returned (to be echoed as cleared, as those queued in the call are).
    pub fn clear(&mut self, now: Instant) -> Vec<String> {
        self.narrowing.clear();
        self.flush_at = None;
        self.played_by = now;
        std::mem::take(&mut self.waiting_marks)
    }

    /// Completes a partial frame with silence and hands it over, with its marks.
    pub fn flush(&mut self, now: Instant) -> Vec<Play> {
        let mut frames = Vec::new();
        self.narrowing.flush(&mut frames);
        self.flush_at = None;
        let mut out = Vec::new();
        let marks = std::mem::take(&mut self.waiting_marks);
        if !frames.is_empty() || !marks.is_empty() {
            self.queue(frames, marks, now, &mut out);
        }
        out
    }

    /// Marks waiting for a partial frame to be completed.
    pub fn waiting_marks(&self) -> usize {
        self.waiting_marks.len()
    }

    /// When [`Assembler::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.flush_at
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Play> {
        match self.flush_at {
            Some(at) if at <= now => self.flush(now),
            _ => Vec::new(),
        }
    }

    fn queue(&mut self, frames: Vec<Frame>, marks: Vec<String>, now: Instant, out: &mut Vec<Play>) {
        let n = u32::try_from(frames.len()).unwrap_or(u32::MAX);
        self.played_by = self.played_by.max(now) + FRAME_TIME * n;
        let mut marks = marks.into_iter();
        out.push(Play {
            frames,
            mark: marks.next(),
        });
        out.extend(marks.map(|m| Play {
            frames: Vec::new(),
            mark: Some(m),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_media::tone;

    fn frames(plays: &[Play]) -> usize {
        plays.iter().map(|p| p.frames.len()).sum()
    }

    fn marks(plays: &[Play]) -> Vec<&str> {
        plays.iter().filter_map(|p| p.mark.as_deref()).collect()
    }

    #[test]
    fn chunks_of_50_ms_with_a_mark_each_play_without_gaps() {
        let now = Instant::now();
        let mut a = Assembler::new(Encoding::Pcmu, now);
        let tone = tone::sines(&[600.0], 6000.0, 200);
        let mut ulaw = vec![0u8; tone.len()];
        Law::Ulaw.encode(&tone, &mut ulaw);
        let mut played = Vec::new();
        for (i, chunk) in ulaw.chunks(400).enumerate() {
            played.extend(a.audio(chunk, now));
            played.extend(a.mark(format!("m{i}"), now));
        }
        // 200 ms is ten frames, none padded; the last mark waits for nothing.
        assert_eq!(frames(&played), 10);
        assert_eq!(marks(&played), ["m0", "m1", "m2", "m3"]);
        let audio: Vec<i16> = played.iter().flat_map(|p| p.frames.concat()).collect();
        assert!(tone::share_at(&audio, 600.0) > 0.95);
        // m0 came after 400 bytes (2.5 frames): it is reported after the third frame.
        let before_m0: usize = played
            .iter()
            .take_while(|p| p.mark.as_deref() != Some("m0"))
            .map(|p| p.frames.len())
            .sum::<usize>()
            + played
                .iter()
                .find(|p| p.mark.as_deref() == Some("m0"))
                .unwrap()
                .frames
                .len();
        assert_eq!(before_m0, 3);
    }

    #[test]
    fn a_partial_frame_is_completed_when_the_queue_runs_dry() {
        let now = Instant::now();
        let mut a = Assembler::new(Encoding::Pcmu, now);
        // 50 ms: two frames queued (40 ms of playing), 80 bytes waiting, then a mark.
        assert_eq!(frames(&a.audio(&[0x55; 400], now)), 2);
        assert!(a.mark("end".into(), now).is_empty());
        let due = a.poll_timeout().unwrap();
        assert_eq!(due, now + Duration::from_millis(40));
        assert!(a.handle_timeout(now + Duration::from_millis(30)).is_empty());
        let flushed = a.handle_timeout(due);
        assert_eq!(frames(&flushed), 1);
        assert_eq!(marks(&flushed), ["end"]);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn clear_drops_the_waiting_audio_and_returns_its_marks() {
        let now = Instant::now();
        let mut a = Assembler::new(Encoding::Pcmu, now);
        a.audio(&[0x55; 100], now);
        a.mark("a".into(), now);
        a.mark("b".into(), now);
        assert_eq!(a.clear(now), ["a", "b"]);
        assert_eq!(a.poll_timeout(), None);
        // Nothing waits now: a mark is handed over at once.
        assert_eq!(marks(&a.mark("c".into(), now)), ["c"]);
    }

    #[test]
    fn wide_linear_audio_in_either_byte_order_becomes_8khz_frames() {
        let now = Instant::now();
        for big_endian in [false, true] {
            for rate in [8000, 16000, 24000] {
                let encoding = Encoding::L16 { rate, big_endian };
                let mut enc = Encoder::new(encoding);
                let mut a = Assembler::new(encoding, now);
                let tone = tone::sines(&[500.0], 6000.0, 400);
                let mut played = Vec::new();
                for f in tone.chunks(FRAME) {
                    let bytes = enc.encode(f.try_into().unwrap()).to_vec();
                    assert_eq!(bytes.len(), encoding.frame_bytes());
                    played.extend(a.audio(&bytes, now));
                }
                assert_eq!(frames(&played), 20, "{rate} {big_endian}");
                let audio: Vec<i16> = played
                    .iter()
                    .flat_map(|p| p.frames.concat())
                    .skip(1600)
                    .collect();
                assert!(tone::share_at(&audio, 500.0) > 0.9, "{rate} {big_endian}");
            }
        }
    }
}
