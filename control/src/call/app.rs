//! Calls an application controls (see [`super::model`]): an incoming call offered to the
//! application registered for its number, and how its leg's and media's events become the
//! application's [`CallEvent`](super::CallEvent)s. Our SDP terminates the peer's on the call's own endpoint. The
//! application answers, rejects, hangs up, bridges, plays, gathers, records and taps through
//! [`CallCommand`](super::CallCommand)s. Twilio's model: every leg is a call with its own SID,
//! and a dialed leg is a child bridged to its parent. Placing a call (`originate`), the
//! commands, gathers, recordings and timers have their own modules.

use super::api::{CallError, EventKind, JoinSpec};
use super::context::CallContext;
use super::gather::*;
use super::model::{Call, Controller, Leg, Phase};
use super::route::status_for_code;
use super::session::{ReceivedOffer, Side, our_answer, our_offer};
use super::status::{CallStatus, HangupBy};
use super::timers::CallTimer;
use super::{CallCore, CallKey, SubscriberId};
use crate::call::account_limits::Exceeded;
use crate::infra::store::CallRecord;
use std::time::Instant;
use switchboard_media::MediaOp;
use switchboard_sip::transport::Peer;
use switchboard_sip::ua::{LegEvent, LegId};
use tracing::{info, warn};

/// The names of the codecs an offer lists, upper case, in its order: the first
/// [`MAX_OFFERED_CODECS`] distinct ones that are plain tokens of at most 32 characters (an
/// offer is the caller's to write, and the list goes into the application's webhooks).
pub(super) fn offered_codecs(offer: Option<&ReceivedOffer>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for codec in offer.iter().flat_map(|o| &o.stream.codecs) {
        let name = codec.name.to_ascii_uppercase();
        let token = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
        if name.len() <= 32 && name.chars().all(token) && !names.contains(&name) {
            names.push(name);
        }
        if names.len() == MAX_OFFERED_CODECS {
            break;
        }
    }
    names
}

const MAX_OFFERED_CODECS: usize = 16;

/// A SIP URI as `user@host:port`, without its scheme, parameters and headers.
pub(super) fn sip_address(uri: &str) -> String {
    let bare = (uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("sip:"))
        .unwrap_or(uri);
    bare.split([';', '?']).next().unwrap_or_default().to_owned()
}

/// How long a party's REFER waits for its application's answer before it is refused.
const REFER_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(4);

impl CallCore {
    /// An incoming call offered to an application controller.
    pub(super) fn offer_to_controller(
        &mut self,
        now: Instant,
        leg: LegId,
        mut record: CallRecord,
        (offer, headers, peer): (Option<ReceivedOffer>, Vec<(String, String)>, &Peer),
        controller: SubscriberId,
    ) {
        let endpoint = match self.media.allocate(None) {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "no media ports");
                return self.refuse(now, leg, record, 503, Some("no-media-ports"));
            }
        };
        record.status = CallStatus::Ringing;
        let media =
            (self.routing).peer_media(record.trunk_in.as_deref(), record.user_in.as_deref());
        let mut side = Side::new(endpoint, media, peer);
        side.remote = offer.as_ref().map(|o| o.stream.clone());
        let (trunk, user) = (record.trunk_in.clone(), record.user_in.clone());
        let offered = super::api::Offered {
            from_uri: sip_address(&record.from_uri),
            to_uri: sip_address(&record.to_uri),
            codecs: offered_codecs(offer.as_ref()),
        };
        let incoming = EventKind::Incoming {
            from: record.from.clone(),
            to: record.to.clone(),
            trunk,
            user,
            headers,
            offered,
        };
        let mut own = Leg::sip("leg", leg, side);
        own.name_dialog(&self.ua, leg);
        let app = Controller::App(Some(controller));
        let key = self.insert_call(record, vec![own], offer, app);
        self.emit(key, incoming);
    }

    /// An incoming call found its account (the number's owner): refused, 486 Busy Here as a
    /// line that is busy, when the account has as many calls as it may — an account's incoming
    /// calls take media ports from the same shared pool as its outgoing ones. Only the
    /// concurrent calls count: how fast calls arrive is the carrier's to police, and a burst of
    /// callers is not the account's doing.
    pub(super) fn admit_incoming(
        &mut self,
        now: Instant,
        key: CallKey,
        account: &str,
    ) -> Result<(), CallError> {
        let Some(limits) = &self.config.account_limits else {
            return Ok(());
        };
        let max = limits.of(account).max_calls;
        if self.calls.of_account(account) < max as usize {
            return Ok(());
        }
        metrics::counter!("switchboard_calls_refused_total", "reason" => "account-limit")
            .increment(1);
        info!(account, max, "incoming call over the account's limit");
        if let Some(leg) = self.calls.get(&key).and_then(|c| c.own().dialog) {
            self.ua.respond(now, leg, 486, None);
        }
        let cause = Some("account-limit");
        self.end_call(
            now,
            key,
            CallStatus::Busy,
            Some(486),
            HangupBy::System,
            cause,
        );
        Err(CallError::AccountLimit(Exceeded::Calls(max)))
    }

    pub(super) fn subscribe(&mut self, sid: &str, to: SubscriberId) {
        let key = self.calls.key_of(sid);
        match key.and_then(|k| self.calls.get_mut(&k).map(|call| (k, call))) {
            Some((key, call)) => {
                call.observers.push(to);
                self.subscribed.insert(to, key);
            }
            None => self.unsubscribe(to),
        }
    }

    /// The call's events go to `to` from now on: its application changes (a dialect's
    /// session takes over from the controller that was offered it).
    pub(super) fn redirect(&mut self, sid: &str, to: SubscriberId) -> Result<(), CallError> {
        let key = self.calls.key_of(sid);
        let call = key.and_then(|k| self.calls.get_mut(&k));
        let Some(call) = call.filter(|c| !c.ended() && !c.routed()) else {
            self.unsubscribe(to);
            let status = self.calls.by_sid(sid);
            return Err(match status {
                Some(c) if c.ended() => CallError::InvalidState {
                    status: c.record.status,
                },
                Some(_) => CallError::Routed,
                None => CallError::NotFound(sid.to_owned()),
            });
        };
        // A new application is the command an `ExpectCommand` waits for.
        call.timers.stop(CallTimer::Command);
        let before = std::mem::replace(&mut call.controller, Controller::App(Some(to)));
        if let Some(key) = key {
            self.subscribed.insert(to, key);
        }
        if let Controller::App(Some(before)) = before {
            self.unsubscribe(before);
        }
        Ok(())
    }

    pub(super) fn bridge(&mut self, key: CallKey, other: &str) -> Result<(), CallError> {
        let other_key = self.calls.named(other)?;
        let (a, b) = match (self.calls.get(&key), self.calls.get(&other_key)) {
            (Some(a), Some(b)) if key != other_key && !b.ended() && !b.routed() => {
                (a.own().side.endpoint, b.own().side.endpoint)
            }
            _ => {
                return Err(CallError::BadArgument(format!(
                    "cannot bridge with {other}"
                )));
            }
        };
        for k in [key, other_key] {
            self.unbridge(k);
            let (rooms, mut cx) = self.rooms_mut();
            rooms.leave(&mut cx, k, "moved");
        }
        self.media.bridge(a, b);
        for (x, y) in [(key, other_key), (other_key, key)] {
            let with = self.calls[&y].record.id.clone();
            self.calls.get_mut(&x).expect("checked").bridged = Some(y);
            self.emit(x, EventKind::Bridged { with });
        }
        Ok(())
    }

    /// `key` takes a seat in the room `spec` names, leaving the room or bridge it was in.
    pub(super) fn join_room(&mut self, key: CallKey, spec: JoinSpec) -> Result<(), CallError> {
        let (rooms, mut cx) = self.rooms_mut();
        rooms.check_join(&cx, key, &spec)?;
        rooms.leave(&mut cx, key, "moved");
        self.unbridge(key);
        let (rooms, mut cx) = self.rooms_mut();
        rooms.join(&mut cx, key, spec)
    }

    /// `key` (answered) supervises the call `sid` (the supervisions say which may): it
    /// leaves whatever it was in — another supervision among them — for a mix with the two.
    pub(super) fn supervise(
        &mut self,
        key: CallKey,
        sid: &str,
        role: super::supervision::SupervisorRole,
    ) -> Result<(), CallError> {
        let target = self.calls.named(sid)?;
        let bridge = self.supervisions.check(&self.calls, key, target, sid)?;
        self.unbridge(key);
        let (rooms, mut cx) = self.rooms_mut();
        rooms.leave(&mut cx, key, "moved");
        let media = rooms.new_mixer();
        (self.supervisions).start(&self.calls, &mut self.media, key, bridge, (role, media));
        Ok(())
    }

    pub(super) fn unbridge(&mut self, key: CallKey) {
        // A supervisor leaving, or a supervised bridge ending, ends the supervision.
        self.supervisions.end(&self.calls, &mut self.media, key);
        let Some(other) = self.calls.get_mut(&key).and_then(|c| c.bridged.take()) else {
            return;
        };
        self.media.unbridge(self.calls[&key].own().side.endpoint);
        // One of the two is ending when this runs from its hang-up.
        let ended = |c: &Call| c.ended();
        let other_ended = self.calls.get(&other).is_some_and(ended);
        let this_ended = ended(&self.calls[&key]);
        self.emit(
            key,
            EventKind::Unbridged {
                peer_ended: other_ended,
            },
        );
        if let Some(o) = self.calls.get_mut(&other) {
            o.bridged = None;
            self.emit(
                other,
                EventKind::Unbridged {
                    peer_ended: this_ended,
                },
            );
        }
    }
}

impl Call {
    /// Answers the call's own incoming leg (200 with our answer, or our offer when the
    /// caller made none), as its application commands.
    pub(super) fn answer(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        headers: &[(String, String)],
    ) {
        let Some(leg) = self.own().dialog else { return };
        let body = match &self.offer {
            Some(offer) => match self.legs[0].side.answer(offer, &our_answer(&offer.stream)) {
                Ok(body) => body,
                Err(p) => {
                    cx.ua.respond(now, leg, p.status(), None);
                    let status = CallStatus::Failed;
                    let cause = Some("caller-sdp");
                    let code = Some(p.status());
                    return cx.end_call(status, code, HangupBy::System, cause);
                }
            },
            // A delayed offer: we offer, the caller answers in its ACK.
            None => self.legs[0].side.offer(&our_offer()),
        };
        cx.ua.respond_with(now, leg, 200, Some(body), headers);
        self.own().configure(cx.media, true);
        self.on_app_answered(cx);
    }

    fn on_app_answered(&mut self, cx: &mut CallContext) {
        self.enter(Phase::Answered, cx.wall);
        let side = &self.own().side;
        cx.media.media(side.endpoint, MediaOp::DetectDtmf(true));
        info!(codec = ?side.codec_name(), "answered");
        let codec = side.agreed_codec();
        cx.records.save(self.record.clone());
        self.emit(cx, EventKind::Answered { codec });
    }

    /// What the call's own leg did, as its application hears of it.
    pub(super) fn on_app_leg_event(&mut self, cx: &mut CallContext, now: Instant, event: LegEvent) {
        let _span = self.span.clone().entered();
        let by_peer = if self.is_inbound() {
            HangupBy::Caller
        } else {
            HangupBy::Callee
        };
        match event {
            LegEvent::Progress { code, body } => {
                if self.ended() {
                    return;
                }
                if self.enter(Phase::Ringing, cx.wall) {
                    cx.records.save(self.record.clone());
                    self.emit(cx, EventKind::Ringing);
                }
                if code == 183 && self.own_mut().side.take_answer_body(body.as_ref()).is_ok() {
                    self.own().configure(cx.media, false);
                    self.emit(cx, EventKind::EarlyMedia);
                }
            }
            LegEvent::Answered { body } => {
                let Some(leg) = self.own().dialog else { return };
                cx.ua.ack(leg, None);
                if self.ended() {
                    return cx.ua.hangup(now, leg, 487);
                }
                match self.own_mut().side.take_answer_body(body.as_ref()) {
                    Ok(()) => {
                        self.own().configure(cx.media, true);
                        self.on_app_answered(cx);
                    }
                    Err(p) => {
                        warn!(code = p.status(), "answered with unusable SDP");
                        cx.ua.hangup(now, leg, 488);
                        cx.end_call(
                            CallStatus::Failed,
                            Some(488),
                            HangupBy::System,
                            Some("callee-sdp"),
                        );
                    }
                }
            }
            LegEvent::Failed { code } => {
                self.own_mut().dialog = None;
                let by = if code == 408 {
                    HangupBy::System
                } else {
                    HangupBy::Callee
                };
                info!(code, "call failed");
                cx.end_call(status_for_code(code), Some(code), by, None);
            }
            LegEvent::Acked { body } => {
                // The answer to the offer we made in our 200 (delayed offer).
                if self.offer.is_none()
                    && self.is_inbound()
                    && self.own_mut().side.take_answer_body(body.as_ref()).is_ok()
                {
                    self.own().configure(cx.media, true);
                }
            }
            LegEvent::Cancelled => {
                self.own_mut().dialog = None;
                cx.end_call(CallStatus::Canceled, Some(487), by_peer, None);
            }
            LegEvent::Bye => {
                self.own_mut().dialog = None;
                info!("hangup by the peer");
                cx.end_call(CallStatus::Completed, Some(200), by_peer, None);
            }
            LegEvent::Terminated { ack_timeout } => {
                self.own_mut().dialog = None;
                if ack_timeout {
                    cx.end_call(
                        CallStatus::Completed,
                        Some(200),
                        HangupBy::System,
                        Some("ack-timeout"),
                    );
                }
            }
            LegEvent::ReInvite { body, .. } => {
                let Some(leg) = self.own().dialog else { return };
                let Some(body) = body else {
                    // A session refresh, or a browser back with a new peer connection.
                    let ours = self.own_mut().side.reoffer();
                    return cx.ua.respond_reinvite(now, leg, 200, ours);
                };
                let side = &mut self.own_mut().side;
                let answer = ReceivedOffer::parse(&body, side.peer_media())
                    .and_then(|offer| side.answer(&offer, &our_answer(&offer.stream)));
                match answer {
                    Ok(sdp) => {
                        self.own().configure(cx.media, true);
                        cx.ua.respond_reinvite(now, leg, 200, Some(sdp));
                    }
                    Err(p) => cx.ua.respond_reinvite(now, leg, p.status(), None),
                }
            }
            LegEvent::Info { body } => {
                if let Some(report) = body.as_ref().and_then(info_digit) {
                    self.on_digit(cx, now, report);
                }
            }
            LegEvent::AckedAnswer { body } => {
                if self.own_mut().side.take_reoffer_answer(&body) {
                    info!("a browser's new peer connection takes the call's media");
                    self.own().configure(cx.media, true);
                }
            }
            LegEvent::ReInviteResult { .. } => {}
            LegEvent::ReferAnswered { code } => {
                self.emit(cx, EventKind::ReferAnswered { sip_code: code });
            }
            LegEvent::ReferProgress { code, last } => {
                let progress = EventKind::ReferProgress {
                    sip_code: code,
                    last,
                };
                self.emit(cx, progress);
            }
            // Handled for every call before it comes here.
            LegEvent::SessionExpired | LegEvent::PrackTimeout => {}
            // An application's call moves where its application says (`<Dial referUrl>`): it
            // hears of the REFER and answers it, or the core refuses it (603) after a while.
            LegEvent::Refer { target } => {
                self.set_timer(cx, CallTimer::Refer, now + REFER_ANSWER_WAIT);
                self.emit(cx, EventKind::ReferRequested { target });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sip::ua::Body;

    /// What a caller's offer may put in an application's webhook is bounded: distinct plain
    /// names of at most 32 characters, at most 16 of them, in the offer's order.
    #[test]
    fn offered_codecs_are_bounded_and_plain() {
        let mut sdp = String::from(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP",
        );
        let pts: Vec<u8> = (96..=127).collect();
        for pt in [0, 8].iter().chain(&pts) {
            sdp += &format!(" {pt}");
        }
        sdp += "\r\na=rtpmap:96 pcmu/8000\r\na=rtpmap:97 x<script>/8000\r\n";
        sdp += &format!("a=rtpmap:98 {}/8000\r\n", "L".repeat(40));
        for pt in 99..=127 {
            sdp += &format!("a=rtpmap:{pt} C{pt}/8000\r\n");
        }
        let offer = ReceivedOffer::parse(&Body::sdp(sdp), Default::default()).unwrap();
        let names = offered_codecs(Some(&offer));
        assert_eq!(names.len(), MAX_OFFERED_CODECS);
        assert_eq!(names[..3], ["PCMU", "PCMA", "C99"]);
        assert!(names.iter().all(|n| n.len() <= 32 && !n.contains('<')));
        assert_eq!(offered_codecs(None), Vec::<String>::new());
    }
}
