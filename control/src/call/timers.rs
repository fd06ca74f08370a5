//! The calls' timers in the core's heap: time limits, the wait for an application's first
//! command, gathers' timeouts and applications' alarms. An entry that no longer matches its call (replaced, or the
//! call ended) is passed over.

use super::status::{CallStatus, HangupBy};
use super::{CallCore, CallKey};
use std::cmp::Reverse;
use std::time::Instant;
use tracing::info;

/// What a call's entry in the core's timer heap is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum CallTimer {
    TimeLimit,
    /// The wait for the application's first command (`ExpectCommand`).
    Command,
    /// A gather's timeout (for digits, or overall); the number tells the gather's
    /// generation.
    Gather(u64),
    /// The application's alarm ([`super::CallCommand::SetAlarm`]).
    Alarm,
    /// The application's answer to the party's REFER ([`super::CallCommand::AnswerRefer`]).
    Refer,
}

impl CallCore {
    /// Every timer that is due: calls whose time limit is up are hung up, incoming calls
    /// their application left without a command are rejected, gathers time out.
    pub(super) fn expire_call_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, key, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                CallTimer::Gather(generation) => self.expire_gather(now, key, generation),
                CallTimer::Alarm => self.ring_alarm(at, key),
                CallTimer::Refer => self.refuse_refer(now, at, key),
                CallTimer::TimeLimit | CallTimer::Command => self.expire_call(now, at, key, timer),
            }
        }
    }

    fn expire_call(&mut self, now: Instant, at: Instant, key: CallKey, timer: CallTimer) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        // A timer replaced since, or a call that ended, leaves a stale entry.
        let due = match timer {
            CallTimer::TimeLimit => call.time_limit,
            CallTimer::Command => call.command_deadline,
            CallTimer::Gather(_) | CallTimer::Alarm | CallTimer::Refer => None,
        };
        if call.ended() || due != Some(at) {
            return;
        }
        let _span = call.span.clone().entered();
        let leg = call.own().dialog;
        if timer == CallTimer::TimeLimit {
            info!("time limit reached: hanging up");
            self.hang_up(now, key, 487, "time-limit", &[]);
        } else {
            info!("no command from the application: rejecting");
            if let Some(leg) = leg {
                self.ua.respond(now, leg, 480, None);
            }
            let (status, cause) = (CallStatus::NoAnswer, Some("no-command"));
            self.end_call(now, key, status, Some(480), HangupBy::System, cause);
        }
    }

    /// The party's REFER went unanswered by the application: 603.
    fn refuse_refer(&mut self, now: Instant, at: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.refer_deadline != Some(at) {
            return;
        }
        call.refer_deadline = None;
        if let Some(leg) = call.own().dialog {
            self.ua.answer_refer(now, leg, 603);
        }
    }

    /// The application's alarm is due, unless it was replaced or cleared since or the call
    /// ended.
    fn ring_alarm(&mut self, at: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some((id, due)) = call.alarm.filter(|_| !call.ended()) else {
            return;
        };
        if due != at {
            return;
        }
        call.alarm = None;
        self.emit(key, super::api::EventKind::Alarm { id });
    }

    /// Sets a timer in the core's heap.
    pub(super) fn arm(&mut self, at: Instant, key: CallKey, timer: CallTimer) {
        self.timers.push(Reverse((at, key, timer)));
    }

    pub(super) fn next_call_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }
}
