//! Session timers (RFC 4028): a dialog that both ends agreed to refresh every so often is kept
//! alive by a re-INVITE or UPDATE from its refresher at half the interval, and ended with a BYE
//! by the other end when no refresh came in time. Here: what the headers say, what we ask for,
//! and when each leg's next refresh or expiry is due.

use super::leg::LegState;
use super::{LegEvent, LegId, UserAgent};
use crate::message::{Headers, Request, Response};
use crate::transaction::TxId;
use std::cmp::Reverse;
use std::time::{Duration, Instant};

/// What this user agent asks for and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimers {
    /// The interval asked for in the INVITEs we send (`Session-Expires`).
    pub expires: Duration,
    /// The shortest interval accepted (`Min-SE`); a request asking for less gets 422.
    pub min_se: Duration,
}

impl Default for SessionTimers {
    fn default() -> Self {
        Self {
            // RFC 4028 §4 recommends 1800 s; 90 s is the least any element may ask for.
            expires: Duration::from_secs(1800),
            min_se: Duration::from_secs(90),
        }
    }
}

/// Who refreshes, as a `refresher` parameter names it: the transaction's client or server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` header: the interval in seconds and who refreshes, if it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionExpires {
    pub(crate) secs: u32,
    pub(crate) refresher: Option<Refresher>,
}

impl SessionExpires {
    /// The header of `headers` (long or compact form `x`); `None` when absent or not a
    /// number. Intervals past a day are read as a day: nothing needs a longer one, and the
    /// arithmetic on them stays small.
    pub(crate) fn of(headers: &Headers) -> Option<Self> {
        let value = headers
            .get("Session-Expires")
            .or_else(|| headers.get("x"))?;
        let mut parts = value.split(';').map(str::trim);
        let secs: u64 = parts.next()?.parse().ok()?;
        let refresher = parts.find_map(|p| {
            let (name, value) = p.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("refresher") {
                return None;
            }
            match value.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => None,
            }
        });
        Some(Self {
            secs: secs.min(86_400) as u32,
            refresher,
        })
    }

    pub(crate) fn header(&self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.secs, r.as_str()),
            None => self.secs.to_string(),
        }
    }
}

/// Whether `headers` list the `timer` option tag in a `Supported` (or compact `k`) header.
pub(crate) fn supports_timer(headers: &Headers) -> bool {
    headers
        .tokens("Supported")
        .chain(headers.tokens("k"))
        .any(|t| t.eq_ignore_ascii_case("timer"))
}

/// The `Min-SE` of `headers` in seconds.
pub(crate) fn min_se(headers: &Headers) -> Option<u32> {
    let value = headers.get("Min-SE")?;
    value.split(';').next()?.trim().parse().ok()
}

/// A leg's running session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LegTimer {
    pub(crate) interval: Duration,
    /// We send the refreshes; else the peer does and we end the session without them.
    pub(crate) ours: bool,
    /// When our refresh is due, or when the session ends for want of the peer's.
    pub(crate) due: Instant,
}

impl LegTimer {
    /// The timer a refresh at `now` (the session's start, or a refresh's 2xx) starts.
    pub(crate) fn start(now: Instant, interval: Duration, ours: bool) -> Self {
        let due = if ours {
            // RFC 4028 §10: at half the interval.
            now + interval / 2
        } else {
            // RFC 4028 §10: the session ends before the interval does, by a third of it or 32
            // seconds, whichever is less, so that a late refresh in flight is not cut.
            now + interval - (interval / 3).min(Duration::from_secs(32))
        };
        Self {
            interval,
            ours,
            due,
        }
    }
}

/// The session timer a 2xx we send for a request with `request` headers agrees to, and the
/// headers that say so: the interval asked for (our own when the caller supports timers and
/// asked none), refreshed by whom it named, else by the caller when it supports timers, else
/// by us (RFC 4028 §9). `None` when neither side wants one.
pub(crate) fn as_server(
    request: &Headers,
    ours: &SessionTimers,
) -> Option<(SessionExpires, Vec<(&'static str, String)>)> {
    let supports = supports_timer(request);
    let asked = SessionExpires::of(request);
    let secs = match asked {
        Some(se) => se.secs,
        None if supports => ours.expires.as_secs().min(86_400) as u32,
        None => return None,
    };
    let refresher = asked.and_then(|se| se.refresher).unwrap_or(if supports {
        Refresher::Uac
    } else {
        Refresher::Uas
    });
    let agreed = SessionExpires {
        secs,
        refresher: Some(refresher),
    };
    let mut headers = vec![("Session-Expires", agreed.header())];
    if supports {
        headers.push(("Require", "timer".to_owned()));
    }
    Some((agreed, headers))
}

impl UserAgent {
    /// Our INVITE asks for a session timer: ours, refreshed by whoever the callee says (its
    /// `Supported: timer` is written with the other extensions).
    pub(super) fn ask_for_session(&self, headers: &mut Headers) {
        let ours = &self.config.session_timers;
        headers.push("Session-Expires", ours.expires.as_secs().to_string());
        headers.push("Min-SE", ours.min_se.as_secs().to_string());
    }

    /// A request asking for a shorter session than we accept is refused with 422 and our
    /// `Min-SE` (RFC 4028 §8.1); true when it was.
    pub(super) fn too_brief(&mut self, now: Instant, tx: TxId, request: &Request) -> bool {
        let min = self.config.session_timers.min_se.as_secs();
        match SessionExpires::of(&request.headers) {
            Some(se) if u64::from(se.secs) < min => {
                let mut r = request.response(422, Some(&crate::ua::random_token()));
                r.headers.push("Min-SE", min.to_string());
                r.headers.push("Server", self.config.user_agent.as_str());
                self.layer.respond(now, tx, &r);
                true
            }
            _ => false,
        }
    }

    /// Our 2xx to the peer's INVITE, re-INVITE or UPDATE (`request`): the session timer it
    /// agrees to goes into it and starts; a refresh that names none goes on as before.
    pub(super) fn session_as_server(
        &mut self,
        now: Instant,
        leg_id: LegId,
        request: &Headers,
        response: &mut Response,
    ) {
        match as_server(request, &self.config.session_timers) {
            Some((se, headers)) => {
                for (name, value) in headers {
                    response.headers.push(name, value);
                }
                let ours = se.refresher == Some(Refresher::Uas);
                self.arm_session(now, leg_id, Duration::from_secs(se.secs.into()), ours);
            }
            None => self.rearm_session(now, leg_id),
        }
    }

    /// The 2xx to our INVITE, re-INVITE or UPDATE: the session timer it names (we refresh
    /// unless it says the callee does), else the one running goes on.
    pub(super) fn session_as_client(&mut self, now: Instant, leg_id: LegId, response: &Headers) {
        match SessionExpires::of(response) {
            Some(se) if se.secs > 0 => {
                let ours = se.refresher != Some(Refresher::Uas);
                self.arm_session(now, leg_id, Duration::from_secs(se.secs.into()), ours);
            }
            _ => self.rearm_session(now, leg_id),
        }
    }

    /// A 422 to our INVITE: tried again once, asking for the callee's `Min-SE` (RFC 4028 §7.4).
    pub(super) fn retry_with_min_se(
        &mut self,
        now: Instant,
        leg_id: LegId,
        response: &Response,
    ) -> bool {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        let Some(req) = leg.request.clone() else {
            return false;
        };
        let asked = SessionExpires::of(&req.headers).map_or(0, |se| se.secs);
        let Some(min) = min_se(&response.headers).filter(|m| *m > asked && *m <= 86_400) else {
            return false;
        };
        if leg.failed {
            return false;
        }
        self.resend_invite(now, leg_id, req, |headers| {
            headers.set("Session-Expires", min.to_string());
            headers.set("Min-SE", min.to_string());
        });
        true
    }

    fn arm_session(&mut self, now: Instant, leg_id: LegId, interval: Duration, ours: bool) {
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            let timer = LegTimer::start(now, interval, ours);
            leg.timer = Some(timer);
            self.schedule_session(leg_id, timer.due);
        }
    }

    /// Puts a leg's timer in the heap, unless an entry for the leg already waits there that is
    /// due no later (it finds the timer moved and schedules it then): a peer flooding refreshes
    /// moves its timer, not the heap's size.
    fn schedule_session(&mut self, leg_id: LegId, due: Instant) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        if leg.session_entry.is_some_and(|queued| queued <= due) {
            return;
        }
        leg.session_entry = Some(due);
        self.session_timers.push(Reverse((due, leg_id)));
    }

    /// A refresh without new terms: the running timer starts over.
    fn rearm_session(&mut self, now: Instant, leg_id: LegId) {
        if let Some(t) = self.legs.get(&leg_id).and_then(|l| l.timer) {
            self.arm_session(now, leg_id, t.interval, t.ours);
        }
    }

    /// A leg's session timer is due (unless it moved since: `at` is then stale): our refresh,
    /// or the end of a session the peer stopped refreshing.
    pub(super) fn on_session_timer(&mut self, now: Instant, leg_id: LegId, at: Instant) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        if leg.session_entry == Some(at) {
            leg.session_entry = None;
        }
        let Some(timer) = leg.timer else {
            return;
        };
        if timer.due != at {
            // Moved since this entry went in: due later now.
            return self.schedule_session(leg_id, timer.due);
        }
        let leg = &self.legs[&leg_id];
        if leg.state != LegState::Confirmed {
            return;
        }
        if !timer.ours {
            return self.expire_session(now, leg_id);
        }
        let (update, body) = (leg.peer_allows_update, leg.last_body.clone());
        // An UPDATE needs no description; a re-INVITE repeats ours unchanged.
        let body = if update { None } else { body };
        if !self.send_offer(now, leg_id, body, update, true) {
            // An offer of ours or the peer's is under way (its 2xx refreshes too): look again
            // shortly.
            self.retry_refresh(leg_id, now + REFRESH_RETRY);
        }
    }

    /// The answer to our refresh: a 2xx restarted the timer already; a dialog the peer no
    /// longer knows (481) or that does not answer (408) is over (RFC 4028 §10); a refresh
    /// that crossed the peer's offer (491) or was refused otherwise is tried again shortly,
    /// the session ending on time if none succeeds.
    pub(super) fn on_refresh_result(&mut self, now: Instant, leg_id: LegId, code: u16) {
        match code {
            200..=299 => {}
            408 | 481 => self.expire_session(now, leg_id),
            _ => self.retry_refresh(leg_id, now + REFRESH_RETRY),
        }
    }

    fn retry_refresh(&mut self, leg_id: LegId, at: Instant) {
        if let Some(t) = self.legs.get_mut(&leg_id).and_then(|l| l.timer.as_mut()) {
            t.due = at;
            self.schedule_session(leg_id, at);
        }
    }

    fn expire_session(&mut self, now: Instant, leg_id: LegId) {
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.timer = None;
        }
        self.send_bye(now, leg_id);
        self.emit(leg_id, LegEvent::SessionExpired);
    }
}

/// How soon a refresh that could not go is tried again.
const REFRESH_RETRY: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (name, value) in lines {
            h.push(*name, *value);
        }
        h
    }

    #[test]
    fn the_headers_are_read_in_either_form_and_bounded() {
        let h = headers(&[("Session-Expires", "1800; Refresher=UAS")]);
        assert_eq!(
            SessionExpires::of(&h),
            Some(SessionExpires {
                secs: 1800,
                refresher: Some(Refresher::Uas)
            })
        );
        let compact = headers(&[("x", "90"), ("k", "100rel, timer")]);
        assert_eq!(SessionExpires::of(&compact).map(|s| s.secs), Some(90));
        assert!(supports_timer(&compact));
        let huge = headers(&[("Session-Expires", "99999999999")]);
        assert_eq!(SessionExpires::of(&huge).map(|s| s.secs), Some(86_400));
        assert_eq!(
            SessionExpires::of(&headers(&[("Session-Expires", "soon")])),
            None
        );
        assert_eq!(min_se(&headers(&[("Min-SE", "120;x=1")])), Some(120));
    }

    #[test]
    fn a_server_agrees_to_what_was_asked_and_names_the_refresher() {
        let ours = SessionTimers::default();
        // Asked with a refresher: kept, and required since the caller supports timers.
        let asked = headers(&[
            ("Supported", "timer"),
            ("Session-Expires", "600;refresher=uas"),
        ]);
        let (se, extra) = as_server(&asked, &ours).unwrap();
        assert_eq!((se.secs, se.refresher), (600, Some(Refresher::Uas)));
        assert_eq!(
            extra,
            [
                ("Session-Expires", "600;refresher=uas".to_owned()),
                ("Require", "timer".to_owned())
            ]
        );
        // A caller that supports timers but asked none: ours, refreshed by the caller.
        let (se, _) = as_server(&headers(&[("Supported", "timer")]), &ours).unwrap();
        assert_eq!((se.secs, se.refresher), (1800, Some(Refresher::Uac)));
        // A proxy asked on behalf of a caller without timers: we refresh, nothing required.
        let (se, extra) = as_server(&headers(&[("Session-Expires", "300")]), &ours).unwrap();
        assert_eq!(se.refresher, Some(Refresher::Uas));
        assert_eq!(extra.len(), 1);
        assert_eq!(as_server(&headers(&[]), &ours), None);
    }

    #[test]
    fn a_refresher_is_due_at_half_and_the_other_end_before_the_end() {
        let now = Instant::now();
        let ours = LegTimer::start(now, Duration::from_secs(90), true);
        assert_eq!(ours.due, now + Duration::from_secs(45));
        let theirs = LegTimer::start(now, Duration::from_secs(90), false);
        assert_eq!(theirs.due, now + Duration::from_secs(60));
        let long = LegTimer::start(now, Duration::from_secs(1800), false);
        assert_eq!(long.due, now + Duration::from_secs(1800 - 32));
    }
}
