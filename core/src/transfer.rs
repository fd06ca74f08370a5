//! Blind transfer of a routed call by its phone (REFER, RFC 3515): one party (the referrer)
//! asks for the other to be connected to the `Refer-To` target instead of itself. The target
//! is routed like a dialed number (its user part; trunks and registered users alike) and
//! called with the referrer's media endpoint — the other party's audio never stops, nor is
//! it re-INVITEd, since Switchboard anchors the media. The referrer hears how it goes in
//! NOTIFYs (`100 Trying`, then the new call's final status); once the target answers, the
//! referrer's dialog is hung up and the target's takes its place in the call. If the target
//! fails, the call goes on as before (or ends, if the referrer already hung up). A REFER
//! naming a dialog to replace is an attended transfer ([`super::attended`]).

use super::admission::{Destination, resolve};
use super::attended::Replaces;
use super::context::{CallContext, CoreAsk};
use super::model::{Call, Party, Phase};
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
    /// It takes the phone's place in a call of another shard (see [`Call::place_transfer`]).
    pub(super) attended: bool,
}

impl Call {
    /// A REFER from `party`: 202 and a new leg toward its target, or a refusal.
    pub(super) fn on_refer(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        party: Party,
        target: String,
    ) {
        let _span = self.span.clone().entered();
        let Some(referrer_leg) = self.legs[party.index()].dialog else {
            return;
        };
        let busy = self
            .route()
            .is_none_or(|r| r.transfer.is_some() || r.resuming.is_some());
        if self.phase != Phase::Answered || busy {
            cx.ua.answer_refer(now, referrer_leg, 491);
            return;
        }
        // An attended transfer (Refer-To naming a dialog to replace, RFC 3891) joins the
        // call already up with the target instead of ringing it again.
        if let Some(replaces) = Replaces::in_refer_to(&target) {
            cx.asks.push(CoreAsk::JoinReplaced {
                party,
                referrer_leg,
                replaces,
            });
            return;
        }
        let Some(number) = uri_of_name_addr(&target).and_then(|u| u.user().map(str::to_owned))
        else {
            cx.ua.answer_refer(now, referrer_leg, 400);
            return;
        };
        let (health, routing, ua) = (cx.trunk_health, cx.routing, &*cx.ua);
        let up = |trunk: &str| super::trunk_health::takes_calls(health, routing, ua, trunk);
        let to = (number.as_str(), self.record.account_sid.as_deref());
        let dest = match resolve(cx.routing, cx.ua, now, to, up) {
            Ok(dest) => dest,
            Err(code) => {
                info!(%number, code, "transfer refused: no route");
                cx.ua.answer_refer(now, referrer_leg, code);
                return;
            }
        };
        self.place_transfer(cx, now, (party, referrer_leg), (dest, Vec::new()), false);
    }

    /// Places the transfer's new leg to `dest` (its INVITE with `headers`) from the
    /// referrer's endpoint, offering the other party's stream; the referrer hears 202 and
    /// `100 Trying`. `attended`: the leg takes the phone's place in its call with the party
    /// it is being transferred to, on another shard ([`Call::transfer_to_shard`]), and a
    /// party the phone left on hold is taken off it once the leg answers.
    pub(super) fn place_transfer(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        (party, referrer_leg): (Party, LegId),
        (dest, headers): (Destination, Vec<(String, String)>),
        attended: bool,
    ) {
        let other = &self.legs[party.other().index()];
        let Some(mut offer) = other.side.remote.as_ref().and_then(|s| relay_offer(s).ok()) else {
            cx.ua.answer_refer(now, referrer_leg, 488);
            return;
        };
        if attended {
            // The party the phone held is taken off hold once this leg is up: the leg talks.
            offer.direction = switchboard_sip::sdp::Direction::SendRecv;
        }
        // Who the target sees calling: the party being transferred to it.
        let from_user = match party {
            Party::Callee => self.record.from.clone(),
            Party::Caller => self.record.to.clone(),
        };
        let target = (cx.routing).peer_media(dest.trunk.as_deref(), dest.user.as_deref());
        let body = self.legs[party.index()].side.offer_as(&offer, target.srtp);
        let from = format!("<{}>", cx.ua.local_uri(&from_user, &dest.peer));
        cx.ua.answer_refer(now, referrer_leg, 202);
        cx.ua.notify_refer(now, referrer_leg, 100);
        let mut invite = dest.invite(from, Some(body), cx.ring_timeout);
        invite.headers = headers;
        let leg = cx.ua.invite(now, invite);
        info!(?party, number = %dest.number, trunk = ?dest.trunk, user = ?dest.user, "transferring");
        cx.dialogs.insert(leg, (cx.key, TRANSFER_LEG));
        if let Some(route) = self.route() {
            route.transfer = Some(Transfer {
                referrer: party,
                referrer_leg: Some(referrer_leg),
                leg,
                trunk: dest.trunk,
                user: dest.user,
                attended,
            });
        }
    }

    /// What happens to the transfer's new leg.
    pub(super) fn on_transfer_leg_event(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        event: LegEvent,
    ) {
        match event {
            LegEvent::Answered { body } => self.on_transfer_answered(cx, now, body),
            LegEvent::Failed { code } => self.on_transfer_failed(cx, now, code),
            _ => {}
        }
    }

    fn on_transfer_answered(&mut self, cx: &mut CallContext, now: Instant, body: Option<Body>) {
        let _span = self.span.clone().entered();
        let Some(t) = self.route().and_then(|r| r.transfer.take()) else {
            return;
        };
        cx.ua.ack(t.leg, None);
        cx.dialogs.remove(&t.leg);
        let answer = super::session::parse_answer(body.as_ref());
        let (Ok(answer), false) = (answer, self.ended()) else {
            warn!("the transfer target answered unusably, or the call is over");
            cx.ua.hangup(now, t.leg, 487);
            if let Some(referrer) = t.referrer_leg {
                cx.ua.notify_refer(now, referrer, 488);
            }
            return;
        };
        let media = (cx.routing).peer_media(t.trunk.as_deref(), t.user.as_deref());
        let peer = cx.ua.peer_of(t.leg);
        let leg = &mut self.legs[t.referrer.index()];
        if let Some(peer) = &peer {
            leg.side.retarget(media, peer);
        }
        if let Err(p) = leg.side.take_answer(answer) {
            warn!(
                code = p.status(),
                "the transfer target's answer refuses our SRTP terms"
            );
            cx.ua.hangup(now, t.leg, 488);
            if let Some(referrer) = t.referrer_leg {
                cx.ua.notify_refer(now, referrer, 488);
            }
            return;
        }
        leg.configure(cx.media, true);
        cx.dialogs.remove(&leg.first_dialog);
        leg.first_dialog = t.leg;
        leg.dialog = Some(t.leg);
        leg.name_dialog(cx.ua, t.leg);
        cx.dialogs.insert(t.leg, (cx.key, t.referrer.index()));
        match t.referrer {
            Party::Caller => self.record.trunk_in = t.trunk.clone(),
            Party::Callee => self.record.trunk_out = t.trunk.clone(),
        }
        cx.accept_from_trunk(t.leg, t.trunk.as_deref());
        if let Some(referrer) = t.referrer_leg {
            cx.ua.notify_refer(now, referrer, 200);
            cx.ua.hangup(now, referrer, 487);
        }
        info!(trunk = ?t.trunk, user = ?t.user, "transferred");
        if t.attended {
            self.resume_held(cx, now, 0);
        }
    }

    /// `true` when the call must end: the referrer hung up meanwhile, so no one is left for
    /// the other party.
    fn on_transfer_failed(&mut self, cx: &mut CallContext, now: Instant, code: u16) {
        let _span = self.span.clone().entered();
        let Some(t) = self.route().and_then(|r| r.transfer.take()) else {
            return;
        };
        cx.dialogs.remove(&t.leg);
        info!(code, "transfer failed");
        match t.referrer_leg {
            // The referrer is still there: the call goes on with it.
            Some(referrer) => {
                cx.ua.notify_refer(now, referrer, code);
            }
            // It hung up meanwhile: no one is left for the other party.
            None => cx.hang_up(487, "transfer-failed"),
        }
    }

    /// The referrer hung up while its transfer is placed: the call waits for the target.
    /// `false` when no transfer of `party`'s is pending.
    pub(super) fn referrer_left(&mut self, party: Party) -> bool {
        let Some(t) = self.route().and_then(|r| r.transfer.as_mut()) else {
            return false;
        };
        if t.referrer != party {
            return false;
        }
        t.referrer_leg = None;
        self.legs[party.index()].dialog = None;
        let _span = self.span.clone().entered();
        info!(?party, "the referrer hung up; the transfer goes on");
        true
    }
}
