//! Generated audio at 8 kHz: sines, DTMF pairs, call-progress tones and silence.

use crate::dtmf::Digit;
use std::f32::consts::TAU;

pub const RATE: u32 = 8000;

/// The sum of sines at `freqs`, each at `amplitude`, for `ms` milliseconds.
pub fn sines(freqs: &[f32], amplitude: f32, ms: u32) -> Vec<i16> {
    let n = (RATE * ms / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let v: f32 = freqs.iter().map(|f| (TAU * f * t).sin()).sum::<f32>() * amplitude;
            v.clamp(i16::MIN as f32, i16::MAX as f32) as i16
        })
        .collect()
}

/// A DTMF digit's tone pair at about -10 dBm0 per tone.
pub fn dtmf(digit: Digit, ms: u32) -> Vec<i16> {
    let (row, col) = digit.frequencies();
    sines(&[row, col], 7000.0, ms)
}

/// The beep before a recording: 1 kHz for half a second.
pub fn beep() -> Vec<i16> {
    sines(&[1000.0], 8000.0, 500)
}

/// North American ringback: 440 + 480 Hz, two seconds on, four off; `ms` long.
pub fn ringback(ms: u32) -> Vec<i16> {
    let cycle: Vec<i16> = sines(&[440.0, 480.0], 4000.0, 2000)
        .into_iter()
        .chain(silence(4000))
        .collect();
    cycle
        .iter()
        .copied()
        .cycle()
        .take((RATE * ms / 1000) as usize)
        .collect()
}

/// A voice-like test signal: a 150 Hz buzz (19 harmonics) with ±30 Hz vibrato at 5 Hz and a
/// 3 Hz syllable envelope. Unlike a steady tone, speech processing treats it as voice.
pub fn voiced(ms: u32) -> Vec<i16> {
    let n = (RATE * ms / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let phase = TAU * (150.0 * t - 30.0 / (TAU * 5.0) * (TAU * 5.0 * t).cos());
            let buzz: f32 = (1..20).map(|h| (phase * h as f32).sin() / h as f32).sum();
            let envelope = 0.55 + 0.45 * (TAU * 3.0 * t).sin();
            (buzz * envelope * 5000.0) as i16
        })
        .collect()
}

pub fn silence(ms: u32) -> Vec<i16> {
    vec![0; (u64::from(RATE) * u64::from(ms) / 1000) as usize]
}

/// The share of the energy of `samples` that lies at `freq` (a Goertzel filter normalised by the
/// total energy): about 1 for a pure tone at `freq`, about 0 for other tones. Used to check
/// what arrived where audio is compared by content.
pub fn share_at(samples: &[i16], freq: f32) -> f32 {
    share_at_rate(samples, freq, RATE as f32)
}

/// [`share_at`] for samples at another rate than 8 kHz.
pub fn share_at_rate(samples: &[i16], freq: f32, rate: f32) -> f32 {
    let k = 2.0 * (TAU * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s = x as f32 + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - k * s1 * s2;
    let energy: f32 = samples.iter().map(|&x| (x as f32).powi(2)).sum();
    2.0 * power / (energy * samples.len() as f32).max(1.0)
}
