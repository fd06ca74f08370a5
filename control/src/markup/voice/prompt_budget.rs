//! What one `<Gather>`'s prompts may add up to.

use super::MAX_PROMPT_SAMPLES;

/// What one `<Gather>`'s prompts may add up to: the audio they hold in memory (speech and
/// fetched files; silence holds none) and how long they play (repetitions and pauses
/// included). Each prompt is capped on its own; without this their sum was not.
pub(super) struct PromptBudget {
    held: usize,
    played: u64,
}

impl PromptBudget {
    /// Ten minutes of distinct audio (19 MB), played for at most an hour.
    const HELD: usize = MAX_PROMPT_SAMPLES;
    const PLAYED: u64 = 3600 * 8000;

    pub(super) fn new() -> Self {
        Self { held: 0, played: 0 }
    }

    /// Whether a clip of `samples` more may be held.
    pub(super) fn hold(&mut self, samples: usize) -> bool {
        match self.held.checked_add(samples) {
            Some(n) if n <= Self::HELD => {
                self.held = n;
                true
            }
            _ => false,
        }
    }

    /// How many of `times` plays of `samples` fit in what is left to play (at least one
    /// while anything is left, cut short by the caller's cap of each part).
    pub(super) fn play(&mut self, samples: u64, times: u64) -> u64 {
        let left = Self::PLAYED.saturating_sub(self.played);
        if samples == 0 {
            return times.min(1);
        }
        let fit = (left / samples).min(times);
        self.played += fit * samples;
        fit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gathers_prompts_are_bounded_in_audio_held_and_time_played() {
        let mut b = PromptBudget::new();
        // Eighty ten-minute pauses: the first six fill the hour, the rest play nothing.
        let pause = 600 * 8000;
        let played: u64 = (0..80).map(|_| b.play(pause, 1)).sum();
        assert_eq!(played, 6);
        let mut b = PromptBudget::new();
        // A clip looped a thousand times plays as often as the hour holds.
        assert_eq!(b.play(8000, 1000), 1000);
        assert_eq!(b.play(8000 * 60, 1000), 43);
        // Distinct audio held: ten minutes in all.
        let mut b = PromptBudget::new();
        assert!(b.hold(MAX_PROMPT_SAMPLES - 1));
        assert!(b.hold(1));
        assert!(!b.hold(1));
    }
}
