//! REFER (RFC 3515) inside a confirmed dialog, both ways. A phone asking for its peer to be
//! transferred elsewhere: the user agent hands the `Refer-To` target up ([`LegEvent::Refer`])
//! and keeps the transaction for the answer the core chooses ([`UserAgent::answer_refer`]: 202
//! or a refusal); the implicit subscription's progress goes back as NOTIFYs with a
//! `message/sipfrag` status line ([`UserAgent::notify_refer`]). One REFER at a time per leg;
//! another crossing it gets 491. And ours ([`UserAgent::refer`]: an application handing its
//! caller elsewhere): the answer goes up ([`LegEvent::ReferAnswered`]), then each NOTIFY's
//! status line ([`LegEvent::ReferProgress`]) until the last.

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

    /// Asks the leg's peer to call `target` (a URI, put in `Refer-To` as given) in our place.
    /// False when the leg is not established or a REFER of ours is still in progress on it.
    pub fn refer(&mut self, now: Instant, leg_id: LegId, target: &str) -> bool {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        if leg.state != LegState::Confirmed || leg.referring {
            return false;
        }
        leg.referring = true;
        let mut req = leg.dialog.request(Method::Refer);
        let contact = leg.local_contact.clone();
        let peer = Self::dialog_peer(&self.config, &self.legs[&leg_id]);
        let h = &mut req.headers;
        h.push("Via", self.via(&peer));
        h.push("Refer-To", format!("<{target}>"));
        h.push("Contact", contact);
        h.push("User-Agent", self.config.user_agent.as_str());
        self.send_leg_request(now, leg_id, req, peer, TxRole::Refer)
            .is_some()
    }

    /// Our REFER's final answer.
    pub(super) fn on_refer_answered(&mut self, leg_id: LegId, code: u16) {
        if let Some(leg) = self.legs.get_mut(&leg_id)
            && code >= 300
        {
            leg.referring = false;
        }
        self.emit(leg_id, LegEvent::ReferAnswered { code });
    }

    /// A NOTIFY in a leg's dialog: the progress of our REFER (RFC 3515 §2.4.5) while it has
    /// one; any other is for a subscription we do not have (481, RFC 6665 §4.1.3).
    pub(super) fn on_notify(&mut self, now: Instant, id: LegId, tx: TxId, request: Request) {
        let leg = self.legs.get_mut(&id).expect("checked by the caller");
        let event = request.headers.get("Event").unwrap_or_default();
        let refer = event.split(';').next().unwrap_or_default().trim();
        if !leg.referring || !refer.eq_ignore_ascii_case("refer") {
            return self.reply(now, tx, &request, 481);
        }
        let code = std::str::from_utf8(&request.body)
            .ok()
            .and_then(sipfrag_status);
        let terminated = (request.headers.get("Subscription-State")).is_some_and(|s| {
            s.trim_start()
                .to_ascii_lowercase()
                .starts_with("terminated")
        });
        let last = terminated || code.is_some_and(|c| c >= 200);
        if last {
            leg.referring = false;
        }
        self.reply(now, tx, &request, 200);
        self.emit(id, LegEvent::ReferProgress { code, last });
    }
}

/// The status code of a `message/sipfrag` body's status line (`SIP/2.0 180 Ringing`): a
/// peer's NOTIFY body, untrusted (fuzzed with the SIP messages).
pub fn sipfrag_status(body: &str) -> Option<u16> {
    let line = body.lines().next()?;
    let mut words = line.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    words
        .next()?
        .parse()
        .ok()
        .filter(|c| (100..700).contains(c))
}
