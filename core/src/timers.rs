//! A call's timers, as quinn-proto keeps a connection's: a small table with one slot per
//! kind of timer ([`CallTimer`]), owned by the call, set and stopped where the call decides.
//! The core holds only a heap of (deadline, call) to know which call to wake when: an entry is
//! pushed when a call's next deadline comes earlier than the one the heap holds for it, and an
//! entry that no longer matches its call (a timer stopped or moved, the call gone) is passed
//! over when it comes up.

use super::context::CallContext;
use super::model::Call;
use std::cmp::Reverse;
use std::time::Instant;

/// What a call's timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallTimer {
    /// The call is hung up at its time limit (`<Dial timeLimit>`, a route's, Telnyx's
    /// `time_limit_secs`).
    TimeLimit,
    /// The wait for the application's first command (`ExpectCommand`).
    Command,
    /// The gather's wait for its next digit (for the first one from the end of its prompt
    /// when asked to); unset while the prompt plays.
    Gather,
    /// When the whole gather is over, digits or not (`total_timeout`).
    GatherTotal,
    /// The application's alarm ([`super::CallCommand::SetAlarm`]).
    Alarm,
    /// The application's answer to the party's REFER ([`super::CallCommand::AnswerRefer`]).
    Refer,
}

impl CallTimer {
    const ALL: [CallTimer; 6] = [
        CallTimer::TimeLimit,
        CallTimer::Command,
        CallTimer::Gather,
        CallTimer::GatherTotal,
        CallTimer::Alarm,
        CallTimer::Refer,
    ];
}

/// What a call's timer asks of the core.
pub(super) enum Expiry {
    /// Its time limit is up: hung up.
    TimeLimit,
    /// Its application never commanded it: rejected (the 480 is sent).
    NoCommand,
}

/// A call's deadlines, one per [`CallTimer`].
#[derive(Debug, Default, Clone)]
pub(super) struct TimerTable {
    at: [Option<Instant>; CallTimer::ALL.len()],
    /// The deadline the core's heap holds for this call, so it pushes another only when one
    /// comes earlier.
    scheduled: Option<Instant>,
}

impl TimerTable {
    pub(super) fn get(&self, timer: CallTimer) -> Option<Instant> {
        self.at[timer as usize]
    }

    pub(super) fn is_set(&self, timer: CallTimer) -> bool {
        self.get(timer).is_some()
    }

    /// Stops a timer; says whether it was running.
    pub(super) fn stop(&mut self, timer: CallTimer) -> bool {
        self.at[timer as usize].take().is_some()
    }

    /// Every timer stopped (the call ended).
    pub(super) fn stop_all(&mut self) {
        self.at = Default::default();
    }

    /// The earliest deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Whether the heap's entry due `at` is the one it holds for this call now (an older
    /// one is stale); it is taken if so.
    pub(super) fn woken(&mut self, at: Instant) -> bool {
        let current = self.scheduled == Some(at);
        if current {
            self.scheduled = None;
        }
        current
    }

    /// When the call is next due, from now on what the heap holds for it.
    pub(super) fn reschedule(&mut self) -> Option<Instant> {
        self.scheduled = self.next_timeout();
        self.scheduled
    }

    /// Takes one timer that is due at `now`, earliest first.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<CallTimer> {
        let timer = (CallTimer::ALL.into_iter())
            .filter(|t| self.get(*t).is_some_and(|at| at <= now))
            .min_by_key(|t| self.get(*t))?;
        self.stop(timer);
        Some(timer)
    }
}

impl Call {
    /// Sets one of the call's timers (a later set replaces it), telling the core's heap when
    /// the call is next due if that is sooner than it knew.
    pub(super) fn set_timer(&mut self, cx: &mut CallContext, timer: CallTimer, at: Instant) {
        self.timers.at[timer as usize] = Some(at);
        if self.timers.scheduled.is_none_or(|s| at < s) {
            self.timers.scheduled = Some(at);
            cx.wakes.push(Reverse((at, cx.key)));
        }
    }

    /// One of the call's timers went off; what only the core can do (end the call) it asks
    /// for.
    pub(super) fn handle_timeout(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        timer: CallTimer,
    ) -> Option<Expiry> {
        if self.ended() {
            return None;
        }
        let leg = self.own().dialog;
        match timer {
            CallTimer::TimeLimit => return Some(Expiry::TimeLimit),
            CallTimer::Command => {
                if let Some(leg) = leg {
                    cx.ua.respond(now, leg, 480, None);
                }
                return Some(Expiry::NoCommand);
            }
            // The party's REFER went unanswered by the application: 603.
            CallTimer::Refer => {
                if let Some(leg) = leg {
                    cx.ua.answer_refer(now, leg, 603);
                }
            }
            CallTimer::Alarm => {
                if let Some(id) = self.alarm.take() {
                    self.emit(cx, super::api::EventKind::Alarm { id });
                }
            }
            CallTimer::Gather | CallTimer::GatherTotal => self.end_gather(cx, "timeout"),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_table_gives_its_due_timers_earliest_first_and_forgets_stopped_ones() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut table = TimerTable::default();
        table.at[CallTimer::Alarm as usize] = Some(t0 + 3 * s);
        table.at[CallTimer::TimeLimit as usize] = Some(t0 + 2 * s);
        table.at[CallTimer::Refer as usize] = Some(t0 + s);
        assert_eq!(table.next_timeout(), Some(t0 + s));
        assert!(table.stop(CallTimer::Refer));
        assert!(!table.stop(CallTimer::Refer), "stopped once");
        assert_eq!(table.next_timeout(), Some(t0 + 2 * s));
        assert_eq!(table.take_due(t0 + s), None, "nothing due yet");
        let due: Vec<_> = std::iter::from_fn(|| table.take_due(t0 + 5 * s)).collect();
        assert_eq!(due, [CallTimer::TimeLimit, CallTimer::Alarm]);
        assert_eq!(table.next_timeout(), None);
    }
}
