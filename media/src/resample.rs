//! Streaming conversion between the engine's 8 kHz and the wider rates media streams offer
//! applications (linear PCM at 16 or 24 kHz): band-limited FFT resamplers (rubato) over fixed
//! 20 ms chunks, so that a stream of frames stays a stream (state carries over, nothing is
//! allocated per frame once running).

use crate::endpoint_media::{FRAME, Frame};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// The rates a stream may use besides 8 kHz.
pub const WIDE_RATES: [u32; 2] = [16000, 24000];

/// Samples in 20 ms at `rate`.
pub fn frame_len(rate: u32) -> usize {
    rate as usize / 50
}

fn fft(from: u32, to: u32, chunk: usize) -> Fft<f32> {
    Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Both)
        .expect("fixed, valid rates and chunk")
}

/// 8 kHz frames up to a wider rate.
pub struct Upsampler {
    fft: Fft<f32>,
    narrow: [f32; FRAME],
    wide: Vec<f32>,
}

impl Upsampler {
    /// `rate` is one of [`WIDE_RATES`].
    pub fn new(rate: u32) -> Self {
        Self {
            fft: fft(8000, rate, FRAME),
            narrow: [0.0; FRAME],
            wide: vec![0.0; frame_len(rate)],
        }
    }

    /// The next 20 ms at the wide rate (delayed by the resampler's latency).
    pub fn frame(&mut self, frame: &Frame) -> impl Iterator<Item = i16> + '_ {
        for (n, &s) in self.narrow.iter_mut().zip(frame) {
            *n = s as f32 / 32768.0;
        }
        let len = self.wide.len();
        let input = InterleavedSlice::new(&self.narrow[..], 1, FRAME).expect("one channel");
        let mut output = InterleavedSlice::new_mut(&mut self.wide[..], 1, len).expect("sized");
        self.fft
            .process_into_buffer(&input, &mut output, None)
            .expect("buffers of the fixed chunk size");
        self.wide.iter().map(|&x| to_i16(x))
    }
}

/// A stream of samples at a wide rate, in pieces of any size, down to 8 kHz frames.
pub struct Downsampler {
    fft: Fft<f32>,
    pending: Vec<f32>,
    chunk: usize,
    narrow: [f32; FRAME],
}

impl Downsampler {
    /// `rate` is one of [`WIDE_RATES`].
    pub fn new(rate: u32) -> Self {
        let chunk = frame_len(rate);
        Self {
            fft: fft(rate, 8000, chunk),
            pending: Vec::with_capacity(chunk),
            chunk,
            narrow: [0.0; FRAME],
        }
    }

    /// Takes samples; every completed 20 ms becomes an 8 kHz frame in `out`.
    pub fn push(&mut self, samples: impl IntoIterator<Item = i16>, out: &mut Vec<Frame>) {
        for s in samples {
            self.pending.push(s as f32 / 32768.0);
            if self.pending.len() == self.chunk {
                let input =
                    InterleavedSlice::new(&self.pending[..], 1, self.chunk).expect("one channel");
                let mut output =
                    InterleavedSlice::new_mut(&mut self.narrow[..], 1, FRAME).expect("sized");
                self.fft
                    .process_into_buffer(&input, &mut output, None)
                    .expect("buffers of the fixed chunk size");
                let mut frame = [0i16; FRAME];
                for (f, &x) in frame.iter_mut().zip(&self.narrow) {
                    *f = to_i16(x);
                }
                out.push(frame);
                self.pending.clear();
            }
        }
    }

    /// Samples waiting for the rest of their 20 ms.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Completes the waiting samples with silence.
    pub fn flush(&mut self, out: &mut Vec<Frame>) {
        if !self.pending.is_empty() {
            let missing = self.chunk - self.pending.len();
            self.push(std::iter::repeat_n(0, missing), out);
        }
    }

    /// Forgets the waiting samples.
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

fn to_i16(x: f32) -> i16 {
    (x * 32768.0).clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone;

    #[test]
    fn a_tone_goes_up_and_back_down_at_every_wide_rate() {
        for rate in WIDE_RATES {
            let mut up = Upsampler::new(rate);
            let mut down = Downsampler::new(rate);
            let tone = tone::sines(&[440.0], 8000.0, 400);
            let mut wide = Vec::new();
            for f in tone.chunks(FRAME) {
                wide.extend(up.frame(f.try_into().unwrap()));
            }
            assert_eq!(wide.len(), 20 * frame_len(rate));
            // The wide stream carries the same tone at its own rate.
            let settled = &wide[wide.len() / 2..];
            assert!(
                tone::share_at_rate(settled, 440.0, rate as f32) > 0.9,
                "{rate}"
            );
            // Pieces of odd sizes come back as whole 8 kHz frames.
            let mut frames = Vec::new();
            for piece in wide.chunks(333) {
                down.push(piece.iter().copied(), &mut frames);
            }
            assert_eq!(frames.len(), 20);
            assert_eq!(down.pending(), 0);
            let narrow: Vec<i16> = frames[10..].iter().flatten().copied().collect();
            assert!(tone::share_at(&narrow, 440.0) > 0.9, "{rate}");
        }
    }

    #[test]
    fn a_partial_frame_is_flushed_with_silence() {
        let mut down = Downsampler::new(16000);
        let mut frames = Vec::new();
        down.push(std::iter::repeat_n(1000, 100), &mut frames);
        assert!(frames.is_empty());
        assert_eq!(down.pending(), 100);
        down.flush(&mut frames);
        assert_eq!(frames.len(), 1);
        assert_eq!(down.pending(), 0);
    }
}
