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

pub fn silence(ms: u32) -> Vec<i16> {
    vec![0; (RATE * ms / 1000) as usize]
}
