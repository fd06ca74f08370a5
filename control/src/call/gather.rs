//! Digits an application asked for: a gather collects them (RFC 4733, INFO or in-band) until
//! its key, its count or its timeouts, which run from the end of its prompt when asked to.

use super::api::{EventKind, GatherSpec};
use super::timers::CallTimer;
use super::{CallCore, CallKey};
use std::time::Instant;
use switchboard_media::dtmf::{Digit, DtmfMethod, DtmfReport};
use switchboard_sip::ua::Body;

/// When a gather whose timeout starts at `now` gives up waiting for its first digit (its
/// `total_timeout`, a timer of its own, may end it sooner).
pub(super) fn first_deadline(spec: &GatherSpec, now: Instant) -> Instant {
    now + spec.first_timeout.unwrap_or(spec.timeout)
}

/// Digits the application asked for, being collected. Its timeouts are the call's
/// ([`CallTimer::Gather`], unset while it waits for its prompt to end, and
/// [`CallTimer::GatherTotal`]).
pub(super) struct Gather {
    pub(super) spec: GatherSpec,
    pub(super) digits: String,
}

/// A digit carried by SIP INFO: `application/dtmf-relay` (`Signal=5`, `Duration=160`) or
/// `application/dtmf` (the digit alone).
pub(super) fn info_digit(body: &Body) -> Option<DtmfReport> {
    let text = std::str::from_utf8(&body.data).ok()?;
    let ct = body.content_type.to_ascii_lowercase();
    let (signal, duration) = if ct.starts_with("application/dtmf-relay") {
        let field = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        };
        (
            field("Signal")?,
            field("Duration").and_then(|d| d.parse().ok()),
        )
    } else if ct.starts_with("application/dtmf") {
        (text.trim(), None)
    } else {
        return None;
    };
    let digit = match signal.parse::<u8>() {
        Ok(event @ 10..=15) => Digit::from_event(event)?,
        _ => Digit::new(signal.chars().next()?)?,
    };
    Some(DtmfReport {
        digit,
        duration_ms: duration.unwrap_or(100),
        method: DtmfMethod::SipInfo,
    })
}

impl CallCore {
    /// A digit from the call: an event, and the gather it may complete.
    pub(super) fn on_digit(&mut self, now: Instant, key: CallKey, report: DtmfReport) {
        let digit = report.digit.as_char();
        self.emit(
            key,
            EventKind::Dtmf {
                digit,
                duration_ms: report.duration_ms,
                method: report.method,
            },
        );
        let Some(g) = self.calls.get_mut(&key).and_then(|c| c.gather.as_mut()) else {
            return;
        };
        if g.spec.finish_on_key == Some(digit) {
            return self.end_gather(key, "finish-key");
        }
        g.digits.push(digit);
        if g.spec.num_digits.is_some_and(|n| g.digits.len() >= n) {
            return self.end_gather(key, "num-digits");
        }
        // Each digit restarts the wait for the next (the whole gather's timer runs on).
        let next = now + g.spec.timeout;
        self.set_timer(key, CallTimer::Gather, next);
    }

    /// The call's playback is over: a gather waiting for it starts its timeout.
    pub(super) fn on_playback_ended(&mut self, now: Instant, key: CallKey, playback: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.playing == Some(playback) {
            call.playing = None;
        }
        let waiting = call
            .gather
            .as_ref()
            .filter(|_| !call.timers.is_set(CallTimer::Gather));
        if call.playing.is_none()
            && let Some(g) = waiting
        {
            let at = first_deadline(&g.spec, now);
            self.set_timer(key, CallTimer::Gather, at);
        }
    }

    pub(super) fn end_gather(&mut self, key: CallKey, reason: &'static str) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.timers.stop(CallTimer::Gather);
        call.timers.stop(CallTimer::GatherTotal);
        if let Some(g) = call.gather.take() {
            self.emit(
                key,
                EventKind::GatherEnded {
                    digits: g.digits,
                    reason,
                },
            );
        }
    }
}
