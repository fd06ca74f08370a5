//! How long a party has been silent, for recordings that stop after a silence (Twilio's
//! `<Record timeout>`, Telnyx's record `timeout_secs`). Sans-IO: frames and the time go in, the
//! verdict comes out. Time is wall time, not counted frames, so a party that stops sending
//! RTP altogether is silent too (its caller asks [`SilenceTimer::expired`] on a tick).

use std::time::{Duration, Instant};

/// A 20 ms frame quieter than this (RMS of 16-bit samples) is silence.
pub const SILENCE_RMS: f32 = 250.0;

#[derive(Debug, Clone)]
pub struct SilenceTimer {
    limit: Duration,
    started: Instant,
    /// When sound was last heard.
    heard_at: Option<Instant>,
    /// Count silence only once the party has spoken (Telnyx's rule); otherwise from the start
    /// too (Twilio's).
    after_speech: bool,
}

impl SilenceTimer {
    pub fn new(now: Instant, limit: Duration, after_speech: bool) -> Self {
        Self {
            limit,
            started: now,
            heard_at: None,
            after_speech,
        }
    }

    /// Takes a frame of the party's audio.
    pub fn push(&mut self, now: Instant, samples: &[i16]) {
        if samples.is_empty() {
            return;
        }
        let energy: f32 = samples.iter().map(|&s| f32::from(s).powi(2)).sum();
        if (energy / samples.len() as f32).sqrt() > SILENCE_RMS {
            self.heard_at = Some(now);
        }
    }

    /// Whether the party has been silent for the limit by `now`.
    pub fn expired(&self, now: Instant) -> bool {
        let since = match (self.heard_at, self.after_speech) {
            (Some(at), _) => at,
            (None, false) => self.started,
            (None, true) => return false,
        };
        now.saturating_duration_since(since) >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone;

    #[test]
    fn silence_counts_from_the_last_sound_and_optionally_from_the_start() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let loud = tone::sines(&[1000.0], 8000.0, 20);
        let quiet = vec![30i16; 160];

        // Twilio's: silence from the start counts.
        let mut t = SilenceTimer::new(t0, Duration::from_secs(1), false);
        t.push(ms(20), &quiet);
        assert!(!t.expired(ms(999)));
        assert!(t.expired(ms(1000)));
        // Sound restarts the count.
        t.push(ms(1000), &loud);
        assert!(!t.expired(ms(1500)));
        assert!(t.expired(ms(2000)), "no frames at all is silence too");

        // Telnyx's: nothing counts before the first sound.
        let mut t = SilenceTimer::new(t0, Duration::from_secs(1), true);
        t.push(ms(20), &quiet);
        assert!(!t.expired(ms(60_000)));
        t.push(ms(60_000), &loud);
        t.push(ms(60_500), &quiet);
        assert!(!t.expired(ms(60_999)));
        assert!(t.expired(ms(61_000)));
    }
}
