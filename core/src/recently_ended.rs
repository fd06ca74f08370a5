//! Calls that ended a moment ago, by SID: how many events each has, so that a result made of
//! a call's last moments after the core let it go (the transcript of its last words, still
//! being recognised when it hung up) joins the call's history as its next event rather than
//! being lost. Bounded: past [`REMEMBERED`] calls the oldest is forgotten.

use std::collections::{HashMap, VecDeque};

/// Calls remembered: at a thousand calls a second, the last four seconds' — longer than a
/// recognition of the last utterance takes.
const REMEMBERED: usize = 4096;

#[derive(Default)]
pub(super) struct RecentlyEnded {
    next: HashMap<String, u32>,
    order: VecDeque<String>,
}

impl RecentlyEnded {
    /// `sid` ended with `seq` events.
    pub(super) fn note(&mut self, sid: String, seq: u32) {
        if self.order.len() >= REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.next.remove(&oldest);
        }
        self.next.insert(sid.clone(), seq);
        self.order.push_back(sid);
    }

    /// The position of `sid`'s next event, taken; `None` for a call not (or no longer) known.
    pub(super) fn next_seq(&mut self, sid: &str) -> Option<u32> {
        let next = self.next.get_mut(sid)?;
        let seq = *next;
        *next = next.saturating_add(1);
        Some(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_follow_on_and_the_oldest_call_is_forgotten_first() {
        let mut ended = RecentlyEnded::default();
        ended.note("CA1".into(), 7);
        assert_eq!(ended.next_seq("CA1"), Some(7));
        assert_eq!(ended.next_seq("CA1"), Some(8));
        assert_eq!(ended.next_seq("CA2"), None);
        for n in 0..REMEMBERED {
            ended.note(format!("CB{n}"), 0);
        }
        assert_eq!(ended.next_seq("CA1"), None);
        assert_eq!(ended.next_seq("CB1"), Some(0));
        assert_eq!(ended.next.len(), REMEMBERED);
    }
}
