//! The calls' timers in the core's heap: time limits, and the wait for an application's
//! first command. An entry that no longer matches its call (replaced, or the call ended) is
//! passed over.

use super::CallCore;
use super::status::{CallStatus, HangupBy};
use std::cmp::Reverse;
use std::time::Instant;
use tracing::info;

/// What a call's entry in the core's timer heap is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum CallTimer {
    TimeLimit,
    /// The wait for the application's first command (`ExpectCommand`).
    Command,
}

impl CallCore {
    /// Calls whose time limit is up are hung up; incoming calls their application left
    /// without a command are rejected.
    pub(super) fn expire_call_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, key, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(call) = self.controlled.get(&key) else {
                continue;
            };
            // A timer replaced since, or a call that ended, leaves a stale entry.
            let due = match timer {
                CallTimer::TimeLimit => call.time_limit,
                CallTimer::Command => call.command_deadline,
            };
            if call.ended() || due != Some(at) {
                continue;
            }
            let _span = call.span.clone().entered();
            let (answered, leg) = (call.answered(), call.leg);
            match timer {
                CallTimer::TimeLimit => {
                    info!("time limit reached: hanging up");
                    if let Some(leg) = leg {
                        self.ua.hangup_with(now, leg, 487, &[]);
                    }
                    let (status, code) = if answered {
                        (CallStatus::Completed, 200)
                    } else {
                        (CallStatus::Canceled, 487)
                    };
                    let cause = Some("time-limit");
                    self.end_controlled(key, status, Some(code), HangupBy::System, cause);
                }
                CallTimer::Command => {
                    info!("no command from the application: rejecting");
                    if let Some(leg) = leg {
                        self.ua.respond(now, leg, 480, None);
                    }
                    let (status, cause) = (CallStatus::NoAnswer, Some("no-command"));
                    self.end_controlled(key, status, Some(480), HangupBy::System, cause);
                }
            }
        }
    }

    pub(super) fn next_call_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }
}
