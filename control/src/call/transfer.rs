//! Blind transfer of a routed call by its phone (REFER, RFC 3515): one party (the referrer)
//! asks for the other to be connected to the `Refer-To` target instead of itself. The target
//! is routed like a dialed number (its user part; trunks and registered users alike) and
//! called with the referrer's media endpoint — the other party's audio never stops, nor is
//! it re-INVITEd, since Switchboard anchors the media. The referrer hears how it goes in
//! NOTIFYs (`100 Trying`, then the new call's final status); once the target answers, the
//! referrer's dialog is hung up and the target's takes its place in the call. If the target
//! fails, the call goes on as before (or ends, if the referrer already hung up). A REFER
//! naming a dialog to replace is an attended transfer ([`super::attended`]).

use super::admission::resolve;
use super::attended::Replaces;
use super::model::{Party, Phase};
use super::{CallCore, CallKey};
use std::time::Instant;
use switchboard_sip::message::headers::uri_of_name_addr;
use switchboard_sip::sdp::offer_answer::relay_offer;
use switchboard_sip::ua::{Body, LegEvent, LegId};
use tracing::{info, warn};

/// The index the transfer's new leg has in the core's leg index while it is being placed (it
/// is not yet one of the call's legs).
pub(super) const TRANSFER_LEG: usize = usize::MAX;

/// A transfer being placed.
pub(super) struct Transfer {
    /// Who asked, and whose place the new leg takes.
    pub(super) referrer: Party,
    /// The referrer's dialog, kept to NOTIFY and then hang up (`None` once it hung up).
    pub(super) referrer_leg: Option<LegId>,
    /// The new call's leg, and where it goes.
    pub(super) leg: LegId,
    pub(super) trunk: Option<String>,
    pub(super) user: Option<String>,
}

impl CallCore {
    /// A REFER from `party`: 202 and a new leg toward its target, or a refusal.
    pub(super) fn on_refer(&mut self, now: Instant, key: CallKey, party: Party, target: String) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(referrer_leg) = call.legs[party.index()].dialog else {
            return;
        };
        let busy = call
            .route()
            .is_none_or(|r| r.transfer.is_some() || r.resuming.is_some());
        if call.phase != Phase::Answered || busy {
            return self.ua.answer_refer(now, referrer_leg, 491);
        }
        // An attended transfer (Refer-To naming a dialog to replace, RFC 3891) joins the
        // call already up with the target instead of ringing it again.
        if let Some(replaces) = Replaces::in_refer_to(&target) {
            return self.on_attended_refer(now, key, party, referrer_leg, replaces);
        }
        let Some(number) = uri_of_name_addr(&target).and_then(|u| u.user().map(str::to_owned))
        else {
            return self.ua.answer_refer(now, referrer_leg, 400);
        };
        let (health, routing, ua) = (&self.trunk_health, &self.routing, &self.ua);
        let up = |trunk: &str| super::trunk_health::takes_calls(health, routing, ua, trunk);
        let dest = match resolve(&self.routing, &self.ua, now, &number, up) {
            Ok(dest) => dest,
            Err(code) => {
                info!(%number, code, "transfer refused: no route");
                return self.ua.answer_refer(now, referrer_leg, code);
            }
        };
        let other = &call.legs[party.other().index()];
        let Some(offer) = other.side.remote.as_ref().and_then(|s| relay_offer(s).ok()) else {
            return self.ua.answer_refer(now, referrer_leg, 488);
        };
        // Who the target sees calling: the party being transferred to it.
        let from_user = match party {
            Party::Callee => call.record.from.clone(),
            Party::Caller => call.record.to.clone(),
        };
        let target = (self.routing).peer_media(dest.trunk.as_deref(), dest.user.as_deref());
        let body = call.legs[party.index()].side.offer_as(&offer, target.srtp);
        let from = format!("<{}>", self.ua.local_uri(&from_user, &dest.peer));
        self.ua.answer_refer(now, referrer_leg, 202);
        self.ua.notify_refer(now, referrer_leg, 100);
        let invite = dest.invite(from, Some(body), self.config.ring_timeout);
        let leg = self.ua.invite(now, invite);
        info!(?party, %number, trunk = ?dest.trunk, user = ?dest.user, "transferring");
        self.legs.insert(leg, (key, TRANSFER_LEG));
        if let Some(route) = self.calls.get_mut(&key).and_then(|c| c.route()) {
            route.transfer = Some(Transfer {
                referrer: party,
                referrer_leg: Some(referrer_leg),
                leg,
                trunk: dest.trunk,
                user: dest.user,
            });
        }
    }

    /// What happens to the transfer's new leg.
    pub(super) fn on_transfer_leg_event(&mut self, now: Instant, key: CallKey, event: LegEvent) {
        match event {
            LegEvent::Answered { body } => self.on_transfer_answered(now, key, body),
            LegEvent::Failed { code } => self.on_transfer_failed(now, key, code),
            _ => {}
        }
    }

    fn on_transfer_answered(&mut self, now: Instant, key: CallKey, body: Option<Body>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(t) = call.route().and_then(|r| r.transfer.take()) else {
            return;
        };
        self.ua.ack(t.leg, None);
        self.legs.remove(&t.leg);
        let answer = super::session::parse_answer(body.as_ref());
        let (Ok(answer), false) = (answer, call.ended()) else {
            warn!("the transfer target answered unusably, or the call is over");
            self.ua.hangup(now, t.leg, 487);
            if let Some(referrer) = t.referrer_leg {
                self.ua.notify_refer(now, referrer, 488);
            }
            return;
        };
        let media = (self.routing).peer_media(t.trunk.as_deref(), t.user.as_deref());
        let peer = self.ua.peer_of(t.leg);
        let leg = &mut call.legs[t.referrer.index()];
        if let Some(peer) = &peer {
            leg.side.retarget(media, peer);
        }
        if let Err(p) = leg.side.take_answer(answer) {
            warn!(
                code = p.status(),
                "the transfer target's answer refuses our SRTP terms"
            );
            self.ua.hangup(now, t.leg, 488);
            if let Some(referrer) = t.referrer_leg {
                self.ua.notify_refer(now, referrer, 488);
            }
            return;
        }
        leg.configure(&mut self.media, true);
        self.legs.remove(&leg.first_dialog);
        leg.first_dialog = t.leg;
        leg.dialog = Some(t.leg);
        leg.name_dialog(&self.ua, t.leg);
        self.legs.insert(t.leg, (key, t.referrer.index()));
        match t.referrer {
            Party::Caller => call.record.trunk_in = t.trunk.clone(),
            Party::Callee => call.record.trunk_out = t.trunk.clone(),
        }
        self.accept_from_trunk(t.leg, t.trunk.as_deref());
        if let Some(referrer) = t.referrer_leg {
            self.ua.notify_refer(now, referrer, 200);
            self.ua.hangup(now, referrer, 487);
        }
        info!(trunk = ?t.trunk, user = ?t.user, "transferred");
    }

    fn on_transfer_failed(&mut self, now: Instant, key: CallKey, code: u16) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(t) = call.route().and_then(|r| r.transfer.take()) else {
            return;
        };
        self.legs.remove(&t.leg);
        info!(code, "transfer failed");
        match t.referrer_leg {
            // The referrer is still there: the call goes on with it.
            Some(referrer) => {
                self.ua.notify_refer(now, referrer, code);
            }
            // It hung up meanwhile: no one is left for the other party.
            None => self.hang_up(now, key, 487, "transfer-failed", &[]),
        }
    }

    /// The referrer hung up while its transfer is placed: the call waits for the target.
    /// `false` when no transfer of `party`'s is pending.
    pub(super) fn referrer_left(&mut self, key: CallKey, party: Party) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some(t) = call.route().and_then(|r| r.transfer.as_mut()) else {
            return false;
        };
        if t.referrer != party {
            return false;
        }
        t.referrer_leg = None;
        call.legs[party.index()].dialog = None;
        info!(?party, "the referrer hung up; the transfer goes on");
        true
    }
}
