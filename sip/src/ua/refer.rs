//! REFER (RFC 3515) inside a confirmed dialog: a phone asking for its peer to be transferred
//! elsewhere. The user agent hands the `Refer-To` target up ([`LegEvent::Refer`]) and keeps
//! the transaction for the answer the core chooses ([`UserAgent::answer_refer`]: 202 or a
//! refusal); the implicit subscription's progress goes back as NOTIFYs with a `message/sipfrag`
//! status line ([`UserAgent::notify_refer`]). One REFER at a time per leg; another crossing it
//! gets 491.

use super::leg::{LegState, TxRole};
use super::{LegEvent, LegId, UserAgent};
use crate::message::{Method, Request, reason_phrase};
use crate::transaction::TxId;
use std::time::Instant;

/// How long the implicit subscription is said to last (RFC 3515 §2.4.4); its final NOTIFY
/// comes well before.
const SUBSCRIPTION_SECS: u32 = 60;

impl UserAgent {
    /// A REFER in a leg's dialog.
    pub(super) fn on_refer(&mut self, now: Instant, id: LegId, tx: TxId, request: Request) {
        let leg = self.legs.get_mut(&id).expect("checked by the caller");
        let refused = if leg.state != LegState::Confirmed {
            Some(403)
        } else if leg.refer_tx.is_some() {
            Some(491)
        } else {
            None
        };
        let target = request.headers.get("Refer-To").map(str::to_owned);
        let (code, target) = match (refused, target) {
            (Some(code), _) => (code, None),
            // Exactly one Refer-To (§2.4.1).
            (None, Some(t)) if request.headers.all("Refer-To").count() == 1 => (0, Some(t)),
            (None, _) => (400, None),
        };
        let Some(target) = target else {
            let r = request.response(code, Some(&leg.dialog.local_tag));
            return self.layer.respond(now, tx, &r);
        };
        leg.refer_tx = Some((tx, request));
        self.emit(id, LegEvent::Refer { target });
    }

    /// Answers a leg's pending REFER: 202 (accepted; NOTIFYs follow) or a refusal.
    pub fn answer_refer(&mut self, now: Instant, leg_id: LegId, code: u16) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some((tx, request)) = leg.refer_tx.take() else {
            return;
        };
        let mut r = request.response(code, Some(&leg.dialog.local_tag));
        r.headers.push("Server", self.config.user_agent.as_str());
        if code == 202 {
            r.headers.push("Contact", leg.local_contact.as_str());
        }
        self.layer.respond(now, tx, &r);
    }

    /// Tells the referrer how its transfer goes: the status line of the new call (`100`
    /// while it is tried; its final status), ending the subscription with a final one.
    pub fn notify_refer(&mut self, now: Instant, leg_id: LegId, code: u16) -> bool {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        if leg.state != LegState::Confirmed {
            return false;
        }
        let mut req = leg.dialog.request(Method::Notify);
        let peer = Self::dialog_peer(&self.config, &self.legs[&leg_id]);
        let h = &mut req.headers;
        h.push("Via", self.via(&peer));
        h.push("Event", "refer");
        let state = if code >= 200 {
            "terminated;reason=noresource".to_owned()
        } else {
            format!("active;expires={SUBSCRIPTION_SECS}")
        };
        h.push("Subscription-State", state);
        h.push("Content-Type", "message/sipfrag;version=2.0");
        h.push("User-Agent", self.config.user_agent.as_str());
        req.body = format!("SIP/2.0 {code} {}\r\n", reason_phrase(code)).into();
        self.send_leg_request(now, leg_id, req, peer, TxRole::Other)
            .is_some()
    }
}
