//! Digits an application asked for: a gather collects them (RFC 4733, INFO or in-band) until
//! its key, its count or its timeouts, which run from the end of its prompt when asked to.

use super::api::{EventKind, GatherSpec};
use super::context::CallContext;
use super::model::Call;
use super::timers::CallTimer;
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

impl Call {
    /// A digit from the call: an event, and the gather it may complete.
    pub(super) fn on_digit(&mut self, cx: &mut CallContext, now: Instant, report: DtmfReport) {
        let digit = report.digit.as_char();
        let dtmf = EventKind::Dtmf {
            digit,
            duration_ms: report.duration_ms,
            method: report.method,
        };
        self.emit(cx, dtmf);
        let Some(g) = self.gather.as_mut() else {
            return;
        };
        if g.spec.finish_on_key == Some(digit) {
            return self.end_gather(cx, "finish-key");
        }
        g.digits.push(digit);
        if g.spec.num_digits.is_some_and(|n| g.digits.len() >= n) {
            return self.end_gather(cx, "num-digits");
        }
        // Each digit restarts the wait for the next (the whole gather's timer runs on).
        let next = now + g.spec.timeout;
        self.set_timer(cx, CallTimer::Gather, next);
    }

    /// Starts collecting digits (a gather under way is replaced, its deadlines with it).
    pub(super) fn start_gather(&mut self, cx: &mut CallContext, now: Instant, spec: GatherSpec) {
        // A gather waiting for its prompt starts its timeout when the prompt ends.
        let waits = spec.after_playback && self.playing.is_some();
        let (first, total) = (first_deadline(&spec, now), spec.total_timeout);
        self.gather = Some(Gather {
            spec,
            digits: String::new(),
        });
        self.timers.stop(CallTimer::Gather);
        self.timers.stop(CallTimer::GatherTotal);
        if !waits {
            self.set_timer(cx, CallTimer::Gather, first);
        }
        if let Some(at) = total.and_then(|t| now.checked_add(t)) {
            // It ends then even if its prompt is still playing.
            self.set_timer(cx, CallTimer::GatherTotal, at);
        }
    }

    /// The call's playback is over: a gather waiting for it starts its timeout.
    pub(super) fn on_playback_ended(&mut self, cx: &mut CallContext, now: Instant, playback: u64) {
        if self.playing == Some(playback) {
            self.playing = None;
        }
        let waiting = (self.gather.as_ref()).filter(|_| !self.timers.is_set(CallTimer::Gather));
        if self.playing.is_none()
            && let Some(g) = waiting
        {
            let at = first_deadline(&g.spec, now);
            self.set_timer(cx, CallTimer::Gather, at);
        }
    }

    /// Ends the gather under way, if any, saying why.
    pub(super) fn end_gather(&mut self, cx: &mut CallContext, reason: &'static str) {
        self.timers.stop(CallTimer::Gather);
        self.timers.stop(CallTimer::GatherTotal);
        if let Some(g) = self.gather.take() {
            let digits = g.digits;
            self.emit(cx, EventKind::GatherEnded { digits, reason });
        }
    }
}
