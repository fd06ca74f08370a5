//! Calls a route connects ([`Controller::Route`]): the caller's leg and the callee's leg, each
//! with its media endpoint, and how the events of one leg become commands on the other
//! (provisional and final responses, early media, CANCEL, BYE, INFO, re-INVITE relayed with SDP
//! rewritten, failures mapped). The call is one [`super::model::Call`] like any other: it
//! emits the same events, takes the commands on its caller's media and ends down the same path.

use super::admission::trunk_destination;
use super::api::{EventKind, RecordOptions};
use super::dial_plan::DialPlan;
use super::model::{Call, Controller, Party, PendingReinvite, Phase};
use super::session::{ReceivedOffer, parse_answer};
use super::status::{CallStatus, HangupBy};
use super::timers::CallTimer;
use super::transfer::Referred;
use super::{CallCore, CallKey};
use std::time::Instant;
use switchboard_media::record::RecordFormat;
use switchboard_media::{MediaOp, TapTracks};
use switchboard_sip::message::Request;
use switchboard_sip::sdp::offer_answer::{relay_answer, relay_offer};
use switchboard_sip::ua::{
    ASSERTED_HEADERS, Body, InviteParams, LegEvent, LegId, MAX_ASSERTED_VALUES,
};
use tracing::{info, warn};

/// The identity and diversion headers of the caller's INVITE that go on to the callee: every
/// one (up to a bound each) between two trusted trunks — RFC 3325's trust domain, where an
/// asserted identity is believed and whether it may be shown is the next hop's to honour —
/// and none otherwise: a stranger's assertion is not ours to repeat, and ours is not told to
/// one.
/// What the caller's INVITE asserts, if it came from a trusted trunk (nothing otherwise).
pub(super) fn vouched_for(
    routing: &DialPlan,
    request: &Request,
    from: Option<&str>,
) -> Vec<(String, String)> {
    if !trusted(routing, from) {
        return Vec::new();
    }
    (ASSERTED_HEADERS.iter())
        .flat_map(|name| {
            (request.headers.all(name))
                .take(MAX_ASSERTED_VALUES)
                .map(|v| (name.to_string(), v.to_owned()))
        })
        .collect()
}

/// The assertions a trusted caller made, for the trunk `to` (nothing unless it is trusted).
pub(super) fn passed_on(
    routing: &DialPlan,
    vouched: Vec<(String, String)>,
    to: Option<&str>,
) -> Vec<(String, String)> {
    if trusted(routing, to) {
        vouched
    } else {
        Vec::new()
    }
}

fn trusted(routing: &DialPlan, trunk: Option<&str>) -> bool {
    trunk
        .and_then(|n| routing.trunk(n))
        .is_some_and(|t| t.trusted)
}

/// The call status a final failure code stands for (the names Twilio reports).
pub(crate) fn status_for_code(code: u16) -> CallStatus {
    match code {
        486 | 600 => CallStatus::Busy,
        408 | 480 => CallStatus::NoAnswer,
        487 => CallStatus::Canceled,
        _ => CallStatus::Failed,
    }
}

/// The code relayed to the caller for a callee failure. Challenges are ours to answer, never
/// the caller's, and a 503 from one trunk must not make upstream believe we are down.
fn code_for_caller(code: u16) -> u16 {
    match code {
        401 | 407 => 403,
        503 => 502,
        c => c,
    }
}

impl CallCore {
    /// What a party of a route's call did, and what the other party is told of it.
    pub(super) fn on_route_leg_event(
        &mut self,
        now: Instant,
        key: CallKey,
        party: Party,
        event: LegEvent,
    ) {
        match (party, event) {
            (Party::Callee, LegEvent::Progress { code, body }) => {
                self.on_progress(now, key, code, body)
            }
            (Party::Callee, LegEvent::Answered { body }) => self.on_answered(now, key, body),
            (Party::Callee, LegEvent::Failed { code }) => self.on_failed(now, key, code),
            (Party::Caller, LegEvent::Acked { body }) => self.on_caller_acked(now, key, body),
            (Party::Caller, LegEvent::Cancelled) => self.on_cancelled(now, key),
            (_, LegEvent::Bye) => self.on_bye(now, key, party),
            (_, LegEvent::Terminated { ack_timeout }) => {
                self.on_terminated(now, key, party, ack_timeout)
            }
            (_, LegEvent::ReInvite { body, update }) => {
                self.on_reinvite(now, key, party, body, update)
            }
            (_, LegEvent::ReInviteResult { code, body }) => {
                self.on_reinvite_result(now, key, party, code, body)
            }
            (_, LegEvent::Info { body: Some(body) }) => self.on_info(now, key, party, body),
            (_, LegEvent::AckedAnswer { body }) => {
                if let Some(call) = self.calls.get_mut(&key)
                    && call.legs[party.index()].side.take_reoffer_answer(&body)
                {
                    let _span = call.span.clone().entered();
                    info!(
                        ?party,
                        "a browser's new peer connection takes the call's media"
                    );
                    call.legs[party.index()].configure(&mut self.media, true);
                }
            }
            (_, LegEvent::Refer { target }) => {
                let referred = (self.call_mut(key))
                    .map(|(call, mut cx)| call.on_refer(&mut cx, now, party, target));
                if let Some(Referred::Attended {
                    referrer_leg,
                    replaces,
                }) = referred
                {
                    self.on_attended_refer(now, key, party, referrer_leg, replaces);
                }
            }
            _ => {}
        }
    }

    fn on_progress(&mut self, now: Instant, key: CallKey, code: u16, body: Option<Body>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let (Some(caller_leg), false) = (call.legs[0].dialog, call.ended()) else {
            return;
        };
        // With a delayed offer, SDP in an unreliable provisional cannot be an offer we relay.
        let body = body.filter(|_| call.offer.is_some());
        let answer = match &body {
            Some(b) => match negotiate(call, Some(b)) {
                Ok(answer) => Some(answer),
                Err(code) => {
                    warn!(
                        code,
                        "unusable early-media SDP from the callee; relaying the ringing without it"
                    );
                    None
                }
            },
            None => None,
        };
        let early = answer.is_some();
        if early {
            for leg in &call.legs {
                leg.configure(&mut self.media, false);
            }
        }
        let ringing = call.enter(Phase::Ringing, self.wall);
        self.ua.respond(now, caller_leg, code, answer);
        if ringing {
            self.emit(key, EventKind::Ringing);
        }
        if early {
            self.emit(key, EventKind::EarlyMedia);
        }
    }

    fn on_answered(&mut self, now: Instant, key: CallKey, body: Option<Body>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(callee_leg) = call.legs[1].dialog else {
            return;
        };
        let Some(caller_leg) = call.legs[0].dialog.filter(|_| !call.ended()) else {
            self.ua.ack(callee_leg, None);
            self.ua.hangup(now, callee_leg, 487);
            return;
        };
        if call.offer.is_none() {
            return self.relay_delayed_offer(now, key, caller_leg, callee_leg, body);
        }
        self.ua.ack(callee_leg, None);
        match negotiate(call, body.as_ref()) {
            Ok(answer) => {
                for leg in &call.legs {
                    leg.configure(&mut self.media, true);
                }
                self.ua.respond(now, caller_leg, 200, Some(answer));
                self.on_route_answered(key);
                self.apply_route_features(now, key);
            }
            Err(code) => {
                warn!(code, "callee answered with unusable SDP");
                self.ua.hangup(now, callee_leg, 487);
                self.ua.respond(now, caller_leg, 488, None);
                let cause = Some("callee-sdp");
                self.end_call(
                    now,
                    key,
                    CallStatus::Failed,
                    Some(488),
                    HangupBy::System,
                    cause,
                );
            }
        }
    }

    /// The callee answered: the call is up, its record saved and the answer told.
    fn on_route_answered(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.enter(Phase::Answered, self.wall);
        self.cdr.save(call.record.clone());
        let (caller, callee) = (&call.legs[0].side, &call.legs[1].side);
        info!(codec = ?caller.codec_name(), callee_codec = ?callee.codec_name(), "answered");
        let codec = caller.agreed_codec();
        self.emit(key, EventKind::Answered { codec });
    }

    /// Delayed offer: the callee's 200 holds the offer. It goes to the caller in our 200; the
    /// caller's answer arrives in its ACK (see [`CallCore::on_caller_acked`]).
    fn relay_delayed_offer(
        &mut self,
        now: Instant,
        key: CallKey,
        caller_leg: LegId,
        callee_leg: LegId,
        body: Option<Body>,
    ) {
        let call = self.calls.get_mut(&key).expect("checked by the caller");
        let media = call.legs[1].side.peer_media();
        let offer = body.as_ref().map(|b| ReceivedOffer::parse(b, media));
        let relayed = match &offer {
            Some(Ok(o)) => relay_offer(&o.stream).ok(),
            _ => None,
        };
        let (Some(Ok(offer)), Some(relayed), Controller::Route(route)) =
            (offer, relayed, &mut call.controller)
        else {
            warn!("callee answered a delayed-offer INVITE without a usable offer");
            self.ua.ack(callee_leg, None);
            self.ua.hangup(now, callee_leg, 487);
            self.ua.respond(now, caller_leg, 488, None);
            let cause = Some("callee-sdp");
            return self.end_call(
                now,
                key,
                CallStatus::Failed,
                Some(488),
                HangupBy::System,
                cause,
            );
        };
        call.legs[1].side.remote = Some(offer.stream.clone());
        let sdp = call.legs[0].side.offer(&relayed);
        route.callee_offer = Some(offer);
        self.ua.respond(now, caller_leg, 200, Some(sdp));
        info!("answered (delayed offer)");
        self.on_route_answered(key);
    }

    /// The caller's ACK: with a delayed offer it carries the answer that completes the callee's
    /// exchange, sent in the callee's ACK.
    fn on_caller_acked(&mut self, now: Instant, key: CallKey, body: Option<Body>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(offer) = call.route().and_then(|r| r.callee_offer.take()) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(callee_leg) = call.legs[1].dialog else {
            return;
        };
        let answers = parse_answer(body.as_ref())
            .map_err(|p| p.status())
            .and_then(|caller_answer| {
                let ours = relay_answer(&offer.stream, &caller_answer).map_err(|_| 488u16)?;
                (call.legs[0].side.take_answer(caller_answer)).map_err(|p| p.status())?;
                (call.legs[1].side.answer(&offer, &ours)).map_err(|p| p.status())
            });
        match answers {
            Ok(sdp) => {
                self.ua.ack(callee_leg, Some(sdp));
                for leg in &call.legs {
                    leg.configure(&mut self.media, true);
                }
                self.apply_route_features(now, key);
            }
            Err(code) => {
                warn!(code, "caller's ACK holds no usable answer");
                self.ua.ack(callee_leg, None);
                for leg in call.dialogs().collect::<Vec<_>>() {
                    self.ua.hangup(now, leg, 488);
                }
                let cause = Some("caller-sdp");
                self.end_call(
                    now,
                    key,
                    CallStatus::Failed,
                    Some(488),
                    HangupBy::System,
                    cause,
                );
            }
        }
    }

    /// INFO (SIP DTMF relay and the like) goes on to the other leg with its body as it came;
    /// it was answered 200 where it arrived.
    fn on_info(&mut self, now: Instant, key: CallKey, party: Party, body: Body) {
        let other = party.other().index();
        if let Some(other) = self.calls.get(&key).and_then(|c| c.legs[other].dialog) {
            self.ua.info(now, other, body);
        }
    }

    /// What the route asks of its answered calls, as an application's commands would: a
    /// recording on the caller's side (the caller left, the callee right when dual) until the
    /// call ends, as the call's recording; a time limit from the answer; noise suppressed in
    /// what either party says (on the caller's endpoint: what comes in from the caller, and
    /// what goes out to it from the callee).
    fn apply_route_features(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Controller::Route(route) = &call.controller else {
            return;
        };
        let features = route.features.clone();
        let endpoint = call.own().side.endpoint;
        if features.services.any() {
            let serve = super::ServeRoute {
                call: call.record.id.clone(),
                account: call.record.account_sid.clone(),
                from: call.record.from.clone(),
                to: call.record.to.clone(),
                services: features.services.clone(),
            };
            self.outputs.push_back(super::Output::Serve(serve));
        }
        if let Some(limit) = features.time_limit
            && let Some(at) = now.checked_add(limit)
        {
            info!(secs = limit.as_secs(), "the route limits the call's length");
            self.set_timer(key, CallTimer::TimeLimit, at);
        }
        let (inbound, outbound) = features.suppress_noise;
        if inbound || outbound {
            info!(inbound, outbound, "the route suppresses noise");
            (self.media).media(endpoint, MediaOp::Suppress { inbound, outbound });
        }
        let Some(channels) = features.record else {
            return;
        };
        let options = RecordOptions {
            channels,
            format: RecordFormat::Pcm16,
            tracks: TapTracks::Both,
            trim_silence: false,
            sid: None,
            origin: super::api::RecordingOrigin::Route,
            stop: Default::default(),
        };
        self.record_start(key, options);
        if let Some(sid) = self.calls.get(&key).and_then(|c| c.recording.as_ref()) {
            info!(recording = %sid, "recording the call");
        }
    }

    fn on_failed(&mut self, now: Instant, key: CallKey, code: u16) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        call.legs[1].dialog = None;
        if call.ended() {
            return;
        }
        // A trunk that cannot take the call (5xx), or never answered at all (408 before any
        // ringing: unreachable, not a callee who let it ring), passes it to the route's next.
        let unreachable = code == 408 && call.phase == Phase::Setup;
        if ((500..600).contains(&code) || unreachable) && self.fail_over(now, key, code) {
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let to_caller = code_for_caller(code);
        if let Some(leg) = call.legs[0].dialog {
            self.ua.respond(now, leg, to_caller, None);
        }
        info!(code, to_caller, "callee failed");
        let by = if code == 408 {
            HangupBy::System
        } else {
            HangupBy::Callee
        };
        self.end_call(now, key, status_for_code(code), Some(to_caller), by, None);
    }

    /// Sends the call's INVITE to the next of its route's trunks that is up; `false` when
    /// none is left.
    fn fail_over(&mut self, now: Instant, key: CallKey, code: u16) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some(mut failover) = call.route().and_then(|r| r.failover.take()) else {
            return false;
        };
        let next = loop {
            let Some(name) = failover.trunks.pop_front() else {
                return false;
            };
            if !super::trunk_health::takes_calls(&self.trunk_health, &self.routing, &self.ua, &name)
            {
                continue;
            }
            if let Ok(dest) = trunk_destination(&self.routing, &self.ua, &failover.number, &name) {
                break dest;
            }
        };
        let from = format!(
            "{}<{}>",
            failover.display,
            self.ua.local_uri(&call.record.from, &next.peer)
        );
        let invite = InviteParams {
            max_forwards: failover.max_forwards,
            asserted: passed_on(
                &self.routing,
                failover.vouched.clone(),
                next.trunk.as_deref(),
            ),
            ..next.invite(from, failover.body.clone(), self.config.ring_timeout)
        };
        let from = std::mem::replace(&mut call.record.trunk_out, next.trunk.clone());
        info!(code, from = ?from, to = ?next.trunk, "failing over to the route's next trunk");
        if let Some(route) = call.route() {
            route.failover = Some(failover);
        }
        let leg = self.ua.invite(now, invite);
        let media = self.routing.peer_media(next.trunk.as_deref(), None);
        let callee = &mut call.legs[1];
        self.legs.remove(&callee.first_dialog);
        callee.first_dialog = leg;
        callee.dialog = Some(leg);
        callee.name_dialog(&self.ua, leg);
        callee.side.retarget(media, &next.peer);
        self.legs.insert(leg, (key, 1));
        self.accept_from_trunk(leg, next.trunk.as_deref());
        true
    }

    /// The caller cancelled before an answer.
    fn on_cancelled(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        call.legs[0].dialog = None;
        if let Some(leg) = call.legs[1].dialog {
            self.ua.hangup(now, leg, 487);
        }
        info!("caller cancelled");
        let status = CallStatus::Canceled;
        self.end_call(now, key, status, Some(487), HangupBy::Caller, None);
    }

    fn on_bye(&mut self, now: Instant, key: CallKey, party: Party) {
        if (self.calls.get_mut(&key)).is_some_and(|call| call.referrer_left(party)) {
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        call.legs[party.index()].dialog = None;
        if let Some(other) = call.legs[party.other().index()].dialog {
            self.ua.hangup(now, other, 487);
        }
        info!(?party, "hangup");
        let (status, code) = if call.answered() {
            (CallStatus::Completed, 200)
        } else {
            (CallStatus::Canceled, 487)
        };
        self.end_call(now, key, status, Some(code), party.hangup_by(), None);
    }

    /// A leg ended on our side; when the caller never ACKed our 200 the call ends too.
    fn on_terminated(&mut self, now: Instant, key: CallKey, party: Party, ack_timeout: bool) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.legs[party.index()].dialog = None;
        if ack_timeout {
            let _span = call.span.clone().entered();
            warn!(?party, "no ACK for our 200");
            if let Some(other) = call.legs[party.other().index()].dialog {
                self.ua.hangup(now, other, 487);
            }
            let (status, cause) = (CallStatus::Completed, Some("ack-timeout"));
            self.end_call(now, key, status, Some(200), HangupBy::System, cause);
        }
    }

    /// A new offer from one party (a re-INVITE, or an UPDATE: relayed as an UPDATE where the
    /// other party allows one, else as a re-INVITE), relayed with the SDP rewritten.
    fn on_reinvite(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Party,
        body: Option<Body>,
        update: bool,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(from_leg) = call.legs[from.index()].dialog else {
            return;
        };
        let other_leg = call.legs[from.other().index()].dialog;
        let busy = call
            .route()
            .is_none_or(|r| r.reinvite.is_some() || r.resuming.is_some());
        if call.ended() || !call.answered() || busy || other_leg.is_none() {
            self.ua.respond_reinvite(now, from_leg, 491, None);
            return;
        }
        let Some(body) = body else {
            // An offerless re-INVITE: a session refresh, or a browser back with a new peer
            // connection (see `Side::reoffer`).
            let ours = call.legs[from.index()].side.reoffer();
            self.ua.respond_reinvite(now, from_leg, 200, ours);
            return;
        };
        let offer = match ReceivedOffer::parse(&body, call.legs[from.index()].side.peer_media()) {
            Ok(o) => o,
            Err(p) => return self.ua.respond_reinvite(now, from_leg, p.status(), None),
        };
        let Ok(relayed) = relay_offer(&offer.stream) else {
            return self.ua.respond_reinvite(now, from_leg, 488, None);
        };
        let to_other = call.legs[from.other().index()].side.offer(&relayed);
        let other_leg = other_leg.expect("checked above");
        if self.ua.offer(now, other_leg, to_other, update) {
            info!(?from, update, direction = %offer.stream.direction, "relaying a new offer");
            if let Some(route) = call.route() {
                route.reinvite = Some(PendingReinvite { from, offer });
            }
        } else {
            self.ua.respond_reinvite(now, from_leg, 491, None);
        }
    }

    fn on_reinvite_result(
        &mut self,
        now: Instant,
        key: CallKey,
        answered_by: Party,
        code: u16,
        body: Option<Body>,
    ) {
        let resumed = (self.call_mut(key)).is_some_and(|(call, mut cx)| {
            call.on_resumed(&mut cx, now, answered_by, code, body.clone())
        });
        if resumed {
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(pending) = call
            .route()
            .and_then(|r| r.reinvite.take_if(|p| p.from == answered_by.other()))
        else {
            return;
        };
        let Some(from_leg) = call.legs[pending.from.index()].dialog else {
            return;
        };
        if !(200..300).contains(&code) {
            self.ua.respond_reinvite(now, from_leg, code, None);
            return;
        }
        let answer = parse_answer(body.as_ref())
            .map_err(|p| p.status())
            .and_then(|other_answer| {
                let ours =
                    relay_answer(&pending.offer.stream, &other_answer).map_err(|_| 488u16)?;
                (call.legs[answered_by.index()].side)
                    .take_answer(other_answer)
                    .map_err(|p| p.status())?;
                (call.legs[pending.from.index()].side)
                    .answer(&pending.offer, &ours)
                    .map_err(|p| p.status())
            });
        match answer {
            Ok(sdp) => {
                for leg in &call.legs {
                    leg.configure(&mut self.media, true);
                }
                self.ua.respond_reinvite(now, from_leg, 200, Some(sdp));
            }
            Err(code) => self.ua.respond_reinvite(now, from_leg, code, None),
        }
    }
}

/// The caller's answer from the callee's answer to our relayed offer; records the agreed
/// codecs. The error is the SIP status for the failure.
fn negotiate(call: &mut Call, callee_body: Option<&Body>) -> Result<Body, u16> {
    let offer = call.offer.as_ref().ok_or(488u16)?;
    let callee_answer = parse_answer(callee_body).map_err(|p| p.status())?;
    let caller_answer = relay_answer(&offer.stream, &callee_answer).map_err(|_| 488u16)?;
    (call.legs[1].side.take_answer(callee_answer)).map_err(|p| p.status())?;
    (call.legs[0].side.answer(offer, &caller_answer)).map_err(|p| p.status())
}
