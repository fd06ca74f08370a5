//! Noise suppression for one direction of a call: RNNoise (nnnoiseless, 48 kHz, 10 ms frames)
//! between an 8 → 48 kHz and a 48 → 8 kHz resampler (rubato). Works as a delay line over the
//! stream: every sample in gives one sample out, so packets keep their size and timestamps,
//! and nothing is allocated once it runs.

use crate::endpoint_media::FRAME;
use nnnoiseless::DenoiseState;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use std::collections::VecDeque;

/// 48 kHz samples per 20 ms chunk: two RNNoise frames.
const WIDE: usize = FRAME * 6;
/// Packets larger than this (60 ms) pass through untouched.
pub const MAX_PACKET: usize = 3 * FRAME;

pub struct Denoiser {
    up: Fft<f32>,
    down: Fft<f32>,
    rnn: Box<DenoiseState<'static>>,
    narrow: [f32; FRAME],
    wide_in: [f32; WIDE],
    wide_out: [f32; WIDE],
    /// Samples waiting to fill a 20 ms chunk.
    pending_in: VecDeque<i16>,
    /// Processed samples waiting to leave.
    pending_out: VecDeque<i16>,
}

impl Default for Denoiser {
    fn default() -> Self {
        let resampler = |from, to, chunk| {
            Fft::<f32>::new(from, to, chunk, 1, FixedSync::Both).expect("fixed, valid rates")
        };
        Self {
            up: resampler(8000, 48000, FRAME),
            down: resampler(48000, 8000, WIDE),
            rnn: DenoiseState::new(),
            narrow: [0.0; FRAME],
            wide_in: [0.0; WIDE],
            wide_out: [0.0; WIDE],
            pending_in: VecDeque::with_capacity(MAX_PACKET + FRAME),
            pending_out: VecDeque::with_capacity(2 * MAX_PACKET + FRAME),
        }
    }
}

impl Denoiser {
    /// Replaces `samples` with the suppressed stream, delayed by the pipeline's latency.
    pub fn process(&mut self, samples: &mut [i16]) {
        if samples.len() > MAX_PACKET {
            return;
        }
        self.pending_in.extend(samples.iter().copied());
        while self.pending_in.len() >= FRAME {
            self.chunk();
        }
        // The first packets of an odd size find too little processed: the deficit becomes
        // silence ahead of the stream, a latency paid once.
        while self.pending_out.len() < samples.len() {
            self.pending_out.push_front(0);
        }
        for s in samples.iter_mut() {
            *s = self.pending_out.pop_front().expect("filled above");
        }
    }

    /// 20 ms from `pending_in` through upsampling, RNNoise and downsampling into `pending_out`.
    fn chunk(&mut self) {
        for (n, s) in self.narrow.iter_mut().zip(self.pending_in.drain(..FRAME)) {
            *n = s as f32 / 32768.0;
        }
        let input = InterleavedSlice::new(&self.narrow[..], 1, FRAME).expect("one channel");
        let mut output = InterleavedSlice::new_mut(&mut self.wide_in[..], 1, WIDE).expect("sized");
        self.up
            .process_into_buffer(&input, &mut output, None)
            .expect("buffers of the fixed chunk size");
        // RNNoise takes samples on the 16-bit scale.
        for x in self.wide_in.iter_mut() {
            *x *= 32768.0;
        }
        let half = nnnoiseless::FRAME_SIZE;
        for i in 0..WIDE / half {
            let range = i * half..(i + 1) * half;
            self.rnn
                .process_frame(&mut self.wide_out[range.clone()], &self.wide_in[range]);
        }
        for x in self.wide_out.iter_mut() {
            *x /= 32768.0;
        }
        let input = InterleavedSlice::new(&self.wide_out[..], 1, WIDE).expect("one channel");
        let mut output = InterleavedSlice::new_mut(&mut self.narrow[..], 1, FRAME).expect("sized");
        self.down
            .process_into_buffer(&input, &mut output, None)
            .expect("buffers of the fixed chunk size");
        self.pending_out.extend(
            self.narrow
                .iter()
                .map(|&x| (x * 32768.0).clamp(i16::MIN as f32, i16::MAX as f32) as i16),
        );
    }

    /// Samples of delay from input to output once running (20 ms packets).
    pub fn latency(&self) -> usize {
        // Resampler delays are in their own rates; RNNoise adds one 10 ms frame at 48 kHz.
        (self.up.output_delay() + nnnoiseless::FRAME_SIZE) / 6 + self.down.output_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone;

    fn rms(s: &[i16]) -> f32 {
        (s.iter().map(|&x| (x as f32).powi(2)).sum::<f32>() / s.len() as f32).sqrt()
    }

    #[test]
    fn packets_keep_their_size_whatever_the_ptime() {
        for ptime in [FRAME / 2, FRAME, FRAME * 3 / 2, FRAME * 3] {
            let mut d = Denoiser::default();
            let mut total = 0;
            for _ in 0..50 {
                let mut p = vec![1000i16; ptime];
                d.process(&mut p);
                total += p.len();
            }
            assert_eq!(total, 50 * ptime);
            assert!(d.pending_out.len() < FRAME * 2, "{ptime}: bounded backlog");
        }
    }

    #[test]
    fn silence_stays_silent_and_noise_is_cut() {
        let mut d = Denoiser::default();
        let mut silence = [0i16; FRAME];
        for _ in 0..10 {
            d.process(&mut silence);
        }
        assert!(rms(&silence) < 5.0);

        // White noise alone: RNNoise hears no voice in it and takes a good part of it away.
        let input: Vec<i16> = white_noise(3 * 8000).iter().map(|&x| x as i16).collect();
        let mut out = input.clone();
        for packet in out.chunks_mut(FRAME) {
            d.process(packet);
        }
        let (before, after) = (rms(&input[8000..]), rms(&out[8000..]));
        assert!(after < before / 1.6, "noise {before} → {after}");
        // 30 ms: the two resamplers and RNNoise's frame.
        assert_eq!(d.latency(), 240);
    }

    struct Measured {
        noise_db: f64,
        tone_db: f64,
        snr_gain_db: f64,
    }

    /// How the tone and the noise changed: the output is split into the clean tone (scaled by
    /// the least-squares gain, `lag` samples late) and a residual counted as noise.
    fn measure(clean: &[f32], noise: &[f32], out: &[i16], lag: usize, skip: usize) -> Measured {
        let range = skip..clean.len() - lag;
        let dot = |f: &dyn Fn(usize) -> f64| range.clone().map(f).sum::<f64>();
        let tone_in = dot(&|i| (clean[i] as f64).powi(2));
        let noise_in = dot(&|i| (noise[i] as f64).powi(2));
        let gain = dot(&|i| out[i + lag] as f64 * clean[i] as f64) / tone_in;
        let noise_out = dot(&|i| (out[i + lag] as f64 - gain * clean[i] as f64).powi(2));
        let db = |x: f64| 10.0 * x.log10();
        Measured {
            noise_db: db(noise_out / noise_in),
            tone_db: db(gain * gain),
            snr_gain_db: db(gain * gain * tone_in / noise_out) - db(tone_in / noise_in),
        }
    }

    /// Each test's noise: white, ±2000, from a fixed seed.
    fn white_noise(n: usize) -> Vec<f32> {
        let mut rng = 0x1234_5678u32;
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                (rng % 4001) as f32 - 2000.0
            })
            .collect()
    }

    #[test]
    fn a_noisy_voiced_tone_keeps_its_tone_and_loses_noise() {
        let clean: Vec<f32> = tone::voiced(8000).iter().map(|&x| x as f32).collect();
        let noise = white_noise(clean.len());
        let noisy: Vec<i16> = clean
            .iter()
            .zip(&noise)
            .map(|(c, e)| (c + e) as i16)
            .collect();
        let mut d = Denoiser::default();
        let mut out = noisy.clone();
        for packet in out.chunks_mut(FRAME) {
            d.process(packet);
        }
        // Measured after RNNoise has settled, against the clean tone delayed by the latency.
        let m = measure(&clean, &noise, &out, d.latency(), 3 * 8000);
        assert!(m.noise_db < -3.0, "noise changed by {:.1} dB", m.noise_db);
        assert!(m.tone_db > -3.0, "tone changed by {:.1} dB", m.tone_db);
        assert!(m.snr_gain_db > 2.0, "SNR gained {:.1} dB", m.snr_gain_db);
    }
}
