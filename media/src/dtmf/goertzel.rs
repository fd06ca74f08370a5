//! In-band DTMF detection for legs that do not negotiate telephone-event: Goertzel filters at
//! the eight DTMF frequencies over each 20 ms frame, with the usual guards (level, twist,
//! dominance within each group, share of the frame's energy) and a two-frame debounce.

use super::{Digit, DtmfMethod, DtmfReport};
use std::f32::consts::TAU;

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Frames a digit must be seen in (or missing from) before it starts (or ends): 40 ms.
const DEBOUNCE: u32 = 2;
/// Weakest tone accepted, as a sample amplitude (about -36 dBm0).
const MIN_AMPLITUDE: f32 = 400.0;
/// Twist: the column tone may be this much stronger than the row tone (8 dB) and the row
/// tone this much stronger than the column tone (4 dB), in power ratio.
const NORMAL_TWIST: f32 = 6.3;
const REVERSE_TWIST: f32 = 2.5;

#[derive(Debug, Default)]
pub struct GoertzelDetector {
    /// The digit being heard, frames it has lasted, frames it has been missing.
    current: Option<(Digit, u32, u32)>,
    /// A candidate not yet confirmed, and how many frames in a row it was seen.
    candidate: Option<(Digit, u32)>,
}

/// The Goertzel coefficients of the rows then the columns.
static COEFFS: std::sync::LazyLock<[f32; 8]> = std::sync::LazyLock::new(|| {
    let mut c = [0.0; 8];
    for (k, f) in ROWS.iter().chain(&COLS).enumerate() {
        c[k] = 2.0 * (TAU * f / 8000.0).cos();
    }
    c
});

/// The power at each DTMF frequency (rows, then columns). The eight recurrences run side by
/// side in one pass over the frame: each alone is a chain of dependent multiply-adds, eight
/// independent ones fill the pipeline (and vector lanes), several times faster than eight
/// passes for the same arithmetic. It runs on every frame of every call that has no
/// telephone-event.
fn powers(samples: &[i16]) -> ([f32; 4], [f32; 4]) {
    let coeff = &*COEFFS;
    let (mut s1, mut s2) = ([0.0f32; 8], [0.0f32; 8]);
    for &x in samples {
        let x = x as f32;
        for k in 0..8 {
            let s = x + coeff[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s;
        }
    }
    let p = |k: usize| s1[k] * s1[k] + s2[k] * s2[k] - coeff[k] * s1[k] * s2[k];
    ([p(0), p(1), p(2), p(3)], [p(4), p(5), p(6), p(7)])
}

/// The digit a frame holds, if it passes every guard.
fn classify(frame: &[i16]) -> Option<Digit> {
    let n = frame.len() as f32;
    let (rows, cols) = powers(frame);
    let strongest = |p: &[f32; 4]| {
        let (i, &max) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        // Four times (6 dB) above every other tone of its group.
        p.iter()
            .enumerate()
            .all(|(j, &q)| j == i || q * 4.0 < max)
            .then_some((i, max))
    };
    let (r, pr) = strongest(&rows)?;
    let (c, pc) = strongest(&cols)?;
    // A tone of amplitude A gives (A·N/2)² at its own frequency.
    let min_power = (MIN_AMPLITUDE * n / 2.0).powi(2);
    if pr < min_power || pc < min_power || pc > pr * NORMAL_TWIST || pr > pc * REVERSE_TWIST {
        return None;
    }
    // The pair must carry three quarters of the frame's energy: speech and music spread it.
    let energy: f32 = frame.iter().map(|&x| (x as f32).powi(2)).sum();
    if (pr + pc) < 0.75 * energy * n / 2.0 {
        return None;
    }
    Digit::new(KEYPAD[r][c])
}

impl GoertzelDetector {
    /// Feeds one 20 ms frame; returns a digit when it ends.
    pub fn on_frame(&mut self, frame: &[i16]) -> Option<DtmfReport> {
        let seen = classify(frame);
        if let Some((digit, frames, missing)) = &mut self.current {
            if seen == Some(*digit) {
                *frames += 1 + *missing;
                *missing = 0;
                return None;
            }
            *missing += 1;
            if *missing < DEBOUNCE {
                return None;
            }
            let report = DtmfReport {
                digit: *digit,
                duration_ms: *frames * 20,
                method: DtmfMethod::InBand,
            };
            self.current = None;
            self.candidate = seen.map(|d| (d, 1));
            return Some(report);
        }
        self.candidate = match (seen, self.candidate) {
            (Some(d), Some((c, k))) if d == c => Some((d, k + 1)),
            (Some(d), _) => Some((d, 1)),
            (None, _) => None,
        };
        if let Some((d, k)) = self.candidate.filter(|(_, k)| *k >= DEBOUNCE) {
            self.current = Some((d, k, 0));
            self.candidate = None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone;

    fn detect(samples: &[i16]) -> Vec<(char, u32)> {
        let mut d = GoertzelDetector::default();
        samples
            .chunks(160)
            .filter_map(|f| d.on_frame(f))
            .map(|r| (r.digit.as_char(), r.duration_ms))
            .collect()
    }

    #[test]
    fn detects_every_digit() {
        for c in "0123456789*#ABCD".chars() {
            let mut s = tone::dtmf(Digit::new(c).unwrap(), 100);
            s.extend(tone::silence(100));
            assert_eq!(detect(&s), [(c, 100)], "digit {c}");
        }
    }

    #[test]
    fn sequence_with_gaps_and_weak_noise() {
        let mut s = Vec::new();
        let mut seed = 1u32;
        for c in "1590#".chars() {
            s.extend(tone::dtmf(Digit::new(c).unwrap(), 80));
            s.extend(tone::silence(60));
        }
        for x in &mut s {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *x = x.saturating_add(((seed >> 16) % 600) as i16 - 300);
        }
        let digits: String = detect(&s).iter().map(|(c, _)| c).collect();
        assert_eq!(digits, "1590#");
    }

    #[test]
    fn single_tones_music_and_short_blips_are_not_digits() {
        assert!(
            detect(&tone::sines(&[440.0], 8000.0, 500)).is_empty(),
            "a single tone"
        );
        assert!(
            detect(&tone::sines(&[697.0, 1209.0, 440.0, 2000.0], 4000.0, 300)).is_empty(),
            "a chord"
        );
        let (r, c) = Digit::new('5').unwrap().frequencies();
        assert!(
            detect(&tone::sines(&[r, c], 7000.0, 20)).is_empty(),
            "20 ms is too short"
        );
        assert!(
            detect(&tone::sines(&[r, c], 100.0, 200)).is_empty(),
            "too weak"
        );
        // Row tone 12 dB stronger than the column tone: beyond the reverse twist.
        let mut s = tone::sines(&[r], 8000.0, 200);
        for (x, y) in s.iter_mut().zip(tone::sines(&[c], 2000.0, 200)) {
            *x = x.saturating_add(y);
        }
        assert!(detect(&s).is_empty(), "twist");
    }
}
