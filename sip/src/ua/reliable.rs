//! Reliable provisional responses (RFC 3262, `100rel`), each leg on its own.
//!
//! As UAS: a provisional response is sent reliably when the caller's INVITE requires `100rel`,
//! or supports it and the response carries a session description (early media, the case
//! where losing it matters). It gets `Require: 100rel` and an `RSeq`, and is retransmitted
//! from T1, doubling, until its PRACK arrives; none in 64·T1 and the INVITE is refused with
//! 504 ([`LegEvent::PrackTimeout`]). One is outstanding at a time: a later provisional with a
//! body waits for the PRACK (one without is dropped: a second ringing says nothing new), and a
//! 2xx waits for it too when the provisional carried a description (§3).
//!
//! As UAC: our INVITEs say `Supported: 100rel`; a provisional that requires it is answered
//! with a PRACK naming its `RSeq` and the INVITE's CSeq (`RAck`), once: a retransmission, or
//! one out of order, is passed over.

use super::leg::TxRole;
use super::{Body, LegEvent, LegId, UserAgent};
use crate::message::{Headers, Method, Request, Response};
use crate::transaction::TxId;
use std::cmp::Reverse;
use std::time::{Duration, Instant};

/// What the peer said of `100rel` in its INVITE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Support {
    #[default]
    None,
    Supported,
    Required,
}

impl Support {
    pub(super) fn of(headers: &Headers) -> Self {
        let has = |name| {
            headers
                .tokens(name)
                .any(|t| t.eq_ignore_ascii_case("100rel"))
        };
        if has("Require") {
            Support::Required
        } else if has("Supported") {
            Support::Supported
        } else {
            Support::None
        }
    }
}

/// A reliable provisional response of ours waiting for its PRACK.
#[derive(Debug)]
pub(super) struct Unacked {
    response: Response,
    rseq: u32,
    with_body: bool,
    /// When it was first sent, and its next retransmission.
    sent: Instant,
    next: Instant,
    interval: Duration,
}

/// What a UAS leg holds back until the outstanding provisional is acknowledged.
#[derive(Debug)]
pub(super) enum Held {
    Provisional(u16, Option<Body>),
    Final(u16, Option<Body>, Vec<(String, String)>),
}

/// A leg's reliable provisional state.
#[derive(Debug, Default)]
pub(super) struct Reliable {
    pub(super) peer: Support,
    /// UAS: the RSeq of our next reliable provisional.
    next_rseq: u32,
    pub(super) unacked: Option<Unacked>,
    /// UAS: responses waiting for the outstanding PRACK, in order.
    pub(super) held: Vec<Held>,
    /// UAC: the RSeq of the last reliable provisional we acknowledged.
    last_rseq: Option<u32>,
}

impl Reliable {
    pub(super) fn for_uas(request: &Request) -> Self {
        Self {
            peer: Support::of(&request.headers),
            // A random start below 2^31 (§3), so that RSeqs do not repeat across calls.
            next_rseq: rand::random::<u32>() % (1 << 30) + 1,
            ..Self::default()
        }
    }
}

/// How a UAS should send a response now.
pub(super) enum Sending {
    /// As usual (unreliably, or a final response).
    Plain,
    /// Reliably: add these headers, and keep it until its PRACK.
    Reliable,
    /// Not yet: it was held until the outstanding PRACK.
    Held,
    /// Not at all: a provisional that adds nothing while one is outstanding.
    Dropped,
}

impl UserAgent {
    /// Whether and how a UAS leg's response with `code` goes out now (see the module's
    /// rules); a held one is queued here.
    pub(super) fn reliability(
        &mut self,
        leg_id: LegId,
        code: u16,
        body: &Option<Body>,
        headers: &[(String, String)],
    ) -> Sending {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return Sending::Plain;
        };
        let r = &mut leg.reliable;
        match code {
            101..=199 => {
                let wanted =
                    r.peer == Support::Required || (r.peer == Support::Supported && body.is_some());
                if !wanted {
                    return Sending::Plain;
                }
                if r.unacked.is_none() {
                    return Sending::Reliable;
                }
                if body.is_none() {
                    return Sending::Dropped;
                }
                r.held.retain(|h| !matches!(h, Held::Provisional(..)));
                r.held.push(Held::Provisional(code, body.clone()));
                Sending::Held
            }
            200..=299 if r.unacked.as_ref().is_some_and(|u| u.with_body) => {
                // One final response is held at most: a later one replaces it.
                r.held.retain(|h| !matches!(h, Held::Final(..)));
                r.held
                    .push(Held::Final(code, body.clone(), headers.to_vec()));
                Sending::Held
            }
            _ => {
                // A final response ends the provisional's retransmissions.
                r.unacked = None;
                r.held.clear();
                Sending::Plain
            }
        }
    }

    /// Makes `response` reliable and keeps it for retransmission until its PRACK.
    pub(super) fn send_reliably(
        &mut self,
        now: Instant,
        leg_id: LegId,
        tx: TxId,
        mut response: Response,
    ) {
        let t1 = self.layer.timers().t1;
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let r = &mut leg.reliable;
        let rseq = r.next_rseq;
        r.next_rseq = rseq.wrapping_add(1);
        response.headers.push("Require", "100rel");
        response.headers.push("RSeq", rseq.to_string());
        // Over a stream transport the layer below delivers it; only the PRACK's deadline runs.
        let interval = if leg.peer.transport.is_reliable() {
            t1 * 64
        } else {
            t1
        };
        r.unacked = Some(Unacked {
            with_body: !response.body.is_empty(),
            response: response.clone(),
            rseq,
            sent: now,
            next: now + interval,
            interval,
        });
        self.prack_timers.push(Reverse((now + interval, leg_id)));
        self.layer.respond(now, tx, &response);
    }

    /// A leg's reliable provisional is due again, or its PRACK is overdue.
    pub(super) fn on_prack_timer(&mut self, now: Instant, leg_id: LegId, at: Instant) {
        let t1 = self.layer.timers().t1;
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let (Some(u), Some(tx)) = (leg.reliable.unacked.as_mut(), leg.invite_tx) else {
            return;
        };
        if u.next != at {
            return;
        }
        if now.duration_since(u.sent) >= t1 * 64 {
            leg.reliable.unacked = None;
            leg.reliable.held.clear();
            self.respond(now, leg_id, 504, None);
            self.emit(leg_id, LegEvent::PrackTimeout);
            return;
        }
        u.interval *= 2;
        // The last wait ends at 64·T1, when it is given up.
        u.next = (now + u.interval).min(u.sent + t1 * 64);
        let (next, response) = (u.next, u.response.clone());
        self.prack_timers.push(Reverse((next, leg_id)));
        self.layer.respond(now, tx, &response);
    }

    /// A PRACK in a leg's early dialog: 200 if it acknowledges the outstanding provisional
    /// (then what was held goes out), 481 otherwise (§3).
    pub(super) fn on_prack(&mut self, now: Instant, leg_id: LegId, tx: TxId, request: Request) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let rack = request.headers.get("RAck").and_then(parse_rack);
        let matches = match (&leg.reliable.unacked, rack) {
            (Some(u), Some((rseq, cseq, method))) => {
                u.rseq == rseq && cseq == leg.invite_cseq && method.eq_ignore_ascii_case("INVITE")
            }
            _ => false,
        };
        if !matches {
            let r = request.response(481, Some(&leg.dialog.local_tag));
            return self.layer.respond(now, tx, &r);
        }
        leg.reliable.unacked = None;
        let held = std::mem::take(&mut leg.reliable.held);
        let mut ok = request.response(200, Some(&leg.dialog.local_tag));
        ok.headers.push("Server", self.config.user_agent.as_str());
        self.layer.respond(now, tx, &ok);
        for h in held {
            match h {
                Held::Provisional(code, body) => self.respond(now, leg_id, code, body),
                Held::Final(code, body, headers) => {
                    self.respond_with(now, leg_id, code, body, &headers)
                }
            }
        }
    }

    /// A UAC leg's provisional response that requires `100rel`: PRACKed once, in order;
    /// `false` when it is a retransmission or out of order and is to be passed over.
    pub(super) fn acknowledge_provisional(
        &mut self,
        now: Instant,
        leg_id: LegId,
        response: &Response,
    ) -> bool {
        let required =
            (response.headers.tokens("Require")).any(|t| t.eq_ignore_ascii_case("100rel"));
        if !required {
            return true;
        }
        let Some(rseq) = (response.headers.get("RSeq")).and_then(|v| v.trim().parse::<u32>().ok())
        else {
            // Requires reliability but carries no RSeq: not a reliable provisional we can name.
            return false;
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        if leg
            .reliable
            .last_rseq
            .is_some_and(|last| rseq != last.wrapping_add(1))
        {
            return false;
        }
        leg.reliable.last_rseq = Some(rseq);
        let mut prack = leg.dialog.request(Method::PRack);
        prack
            .headers
            .push("RAck", format!("{rseq} {} INVITE", leg.invite_cseq));
        let peer = Self::dialog_peer(&self.config, leg);
        prack.headers.push("Via", self.via(&peer));
        prack
            .headers
            .push("User-Agent", self.config.user_agent.as_str());
        self.send_leg_request(now, leg_id, prack, peer, TxRole::Other);
        true
    }
}

/// `RAck: rseq cseq method` (§7.2).
fn parse_rack(value: &str) -> Option<(u32, u32, &str)> {
    let mut parts = value.split_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let cseq = parts.next()?.parse().ok()?;
    let method = parts.next()?;
    parts.next().is_none().then_some((rseq, cseq, method))
}
