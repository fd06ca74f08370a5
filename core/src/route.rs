//! Calls a route connects ([`Controller::Route`]): the caller's leg and the callee's leg, each
//! with its media endpoint, and how the events of one leg become commands on the other
//! (provisional and final responses, early media, CANCEL, BYE, INFO, re-INVITE relayed with SDP
//! rewritten, failures mapped). The call is one [`super::model::Call`] like any other: it
//! emits the same events, takes the commands on its caller's media and ends down the same path.

use super::admission::{Destination, trunk_destination};
use super::api::{EventKind, RecordOptions};
use super::context::{CallContext, CoreAsk, accept_from_trunk};
use super::dial_plan::DialPlan;
use super::dial_plan::PeerMedia;
use super::engine_commands::Engine;
use super::model::{Call, Controller, Failover, Leg, Party, PendingReinvite, Phase, Route};
use super::session::{ReceivedOffer, Side, parse_answer};
use super::status::{CallStatus, HangupBy};
use super::timers::CallTimer;
use crate::rows::CallRecord;
use std::time::{Duration, Instant};
use switchboard_media::MediaError;
use switchboard_media::record::RecordFormat;
use switchboard_media::{MediaOp, TapTracks};
use switchboard_sip::message::Request;
use switchboard_sip::sdp::offer_answer::{relay_answer, relay_offer};
use switchboard_sip::transport::Peer;
use switchboard_sip::ua::{
    ASSERTED_HEADERS, Body, InviteParams, LegEvent, LegId, MAX_ASSERTED_VALUES, UserAgent,
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

/// The caller's side of a call being routed, as its INVITE brought it.
pub(super) struct Caller<'a> {
    pub(super) leg: LegId,
    pub(super) request: &'a Request,
    pub(super) peer: &'a Peer,
    pub(super) offer: Option<ReceivedOffer>,
    pub(super) media: PeerMedia,
    pub(super) from_header: &'a str,
}

/// What dialing a route's callee takes of the core.
pub(super) struct Dialer<'a> {
    pub(super) ua: &'a mut UserAgent,
    pub(super) media: &'a mut Engine,
    pub(super) routing: &'a DialPlan,
    /// How long the callee may ring.
    pub(super) ring_timeout: Duration,
}

/// A routed call as it begins: the caller's and the callee's legs, the route that controls
/// it, and the user's other devices to ring once the call is in.
pub(super) struct Routed {
    pub(super) legs: Vec<Leg>,
    pub(super) offer: Option<ReceivedOffer>,
    pub(super) controller: Controller,
    pub(super) devices: Vec<InviteParams>,
}

/// Dials the callee of a call `record` routes to `dest` (the caller's offer relayed, its
/// identity passed on as the trunks' trust allows, the route's fallback trunks kept for
/// fail-over) and bridges the two legs' endpoints; an error when no media ports are free.
pub(super) fn dial(
    d: Dialer,
    now: Instant,
    record: &CallRecord,
    caller: Caller,
    dest: Destination,
) -> Result<Routed, MediaError> {
    let Caller {
        leg,
        request,
        peer,
        offer,
        media: caller_media,
        from_header,
    } = caller;
    let (ea, eb) = d.media.allocate_pair()?;
    let mut caller = Side::new(ea, caller_media, peer);
    caller.remote = offer.as_ref().map(|o| o.stream.clone());
    let callee_media = (d.routing).peer_media(dest.trunk.as_deref(), dest.user.as_deref());
    let mut callee = Side::new(eb, callee_media, &dest.peer);
    let body = offer.as_ref().map(|o| {
        let relayed = relay_offer(&o.stream).expect("offer checked to hold a relayable codec");
        callee.offer(&relayed)
    });
    let display = from_header
        .split('<')
        .next()
        .map(str::trim)
        .filter(|d| !d.is_empty() && from_header.contains('<'));
    let display = display.map(|d| format!("{d} ")).unwrap_or_default();
    let from = format!("{display}<{}>", d.ua.local_uri(&record.from, &dest.peer));
    let vouched = vouched_for(d.routing, request, record.trunk_in.as_deref());
    let asserted = passed_on(d.routing, vouched.clone(), dest.trunk.as_deref());
    let invite = InviteParams {
        max_forwards: (request.headers.max_forwards())
            .unwrap_or(70)
            .saturating_sub(1),
        asserted,
        ..dest.invite(from, body, d.ring_timeout)
    };
    let failover = (!dest.fallback.is_empty()).then(|| Failover {
        body: invite.body.clone(),
        max_forwards: invite.max_forwards,
        number: record.to.clone(),
        display,
        vouched,
        trunks: dest.fallback.into(),
    });
    info!(trunk = ?dest.trunk, "trying");
    // A user is rung at each of its devices.
    let devices: Vec<InviteParams> = (dest.user.as_deref())
        .map(|user| super::fork::other_devices(d.ua, now, user))
        .unwrap_or_default()
        .into_iter()
        .map(|device| InviteParams {
            uri: device.uri,
            peer: device.peer,
            ..invite.clone()
        })
        .collect();
    let callee_leg = d.ua.invite(now, invite);
    accept_from_trunk(d.ua, d.routing, callee_leg, dest.trunk.as_deref());
    d.media.configure(ea.id, caller.endpoint_config(false));
    d.media.bridge(ea.id, eb.id);
    let mut caller = Leg::sip("caller", leg, caller);
    caller.name_dialog(d.ua, leg);
    let mut callee = Leg::sip("callee", callee_leg, callee);
    callee.name_dialog(d.ua, callee_leg);
    let route = Route {
        features: dest.features,
        failover,
        ..Default::default()
    };
    Ok(Routed {
        legs: vec![caller, callee],
        offer,
        controller: Controller::Route(Box::new(route)),
        devices,
    })
}

impl Call {
    /// What a party of a route's call did, and what the other party is told of it.
    pub(super) fn on_route_leg_event(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        party: Party,
        event: LegEvent,
    ) {
        match (party, event) {
            (Party::Callee, LegEvent::Progress { code, body }) => {
                self.on_progress(cx, now, code, body)
            }
            (Party::Callee, LegEvent::Answered { body }) => self.on_answered(cx, now, body),
            (Party::Callee, LegEvent::Failed { code }) => self.on_failed(cx, now, code),
            (Party::Caller, LegEvent::Acked { body }) => self.on_caller_acked(cx, now, body),
            (Party::Caller, LegEvent::Cancelled) => self.on_cancelled(cx, now),
            (_, LegEvent::Bye { .. }) => self.on_bye(cx, now, party),
            (_, LegEvent::Terminated { ack_timeout }) => {
                self.on_terminated(cx, now, party, ack_timeout)
            }
            (_, LegEvent::ReInvite { body, update }) => {
                self.on_reinvite(cx, now, party, body, update)
            }
            (_, LegEvent::ReInviteResult { code, body }) => {
                self.on_reinvite_result(cx, now, party, code, body)
            }
            (_, LegEvent::Info { body: Some(body) }) => self.on_info(cx, now, party, body),
            (_, LegEvent::AckedAnswer { body })
                if self.legs[party.index()].side.take_reoffer_answer(&body) =>
            {
                let _span = self.span.clone().entered();
                info!(
                    ?party,
                    "a browser's new peer connection takes the call's media"
                );
                self.legs[party.index()].configure(cx.media, true);
            }
            (_, LegEvent::Refer { target }) => self.on_refer(cx, now, party, target),
            _ => {}
        }
    }

    fn on_progress(&mut self, cx: &mut CallContext, now: Instant, code: u16, body: Option<Body>) {
        let _span = self.span.clone().entered();
        let (Some(caller_leg), false) = (self.legs[0].dialog, self.ended()) else {
            return;
        };
        // With a delayed offer, SDP in an unreliable provisional cannot be an offer we relay.
        let body = body.filter(|_| self.offer.is_some());
        let answer = match &body {
            Some(b) => match negotiate(self, Some(b)) {
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
            for leg in &self.legs {
                leg.configure(cx.media, false);
            }
        }
        let ringing = self.enter(Phase::Ringing, cx.wall);
        cx.ua.respond(now, caller_leg, code, answer);
        if ringing {
            self.emit(cx, EventKind::Ringing);
        }
        if early {
            self.emit(cx, EventKind::EarlyMedia);
        }
    }

    fn on_answered(&mut self, cx: &mut CallContext, now: Instant, body: Option<Body>) {
        let _span = self.span.clone().entered();
        let Some(callee_leg) = self.legs[1].dialog else {
            return;
        };
        let Some(caller_leg) = self.legs[0].dialog.filter(|_| !self.ended()) else {
            cx.ua.ack(callee_leg, None);
            cx.ua.hangup(now, callee_leg, 487);
            return;
        };
        if self.offer.is_none() {
            return self.relay_delayed_offer(cx, now, caller_leg, callee_leg, body);
        }
        cx.ua.ack(callee_leg, None);
        match negotiate(self, body.as_ref()) {
            Ok(answer) => {
                for leg in &self.legs {
                    leg.configure(cx.media, true);
                }
                cx.ua.respond(now, caller_leg, 200, Some(answer));
                self.on_route_answered(cx);
                self.apply_route_features(cx, now);
            }
            Err(code) => {
                warn!(code, "callee answered with unusable SDP");
                cx.ua.hangup(now, callee_leg, 487);
                cx.ua.respond(now, caller_leg, 488, None);
                let cause = Some("callee-sdp");
                cx.end_call(CallStatus::Failed, Some(488), HangupBy::System, cause);
            }
        }
    }

    /// The callee answered: the call is up, its record saved and the answer told.
    fn on_route_answered(&mut self, cx: &mut CallContext) {
        self.enter(Phase::Answered, cx.wall);
        cx.records.save(self.record.clone());
        let (caller, callee) = (&self.legs[0].side, &self.legs[1].side);
        info!(codec = ?caller.codec_name(), callee_codec = ?callee.codec_name(), "answered");
        let codec = caller.agreed_codec();
        self.emit(cx, EventKind::Answered { codec });
    }

    /// Delayed offer: the callee's 200 holds the offer. It goes to the caller in our 200; the
    /// caller's answer arrives in its ACK (see [`Call::on_caller_acked`]).
    fn relay_delayed_offer(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        caller_leg: LegId,
        callee_leg: LegId,
        body: Option<Body>,
    ) {
        let media = self.legs[1].side.peer_media();
        let offer = body.as_ref().map(|b| ReceivedOffer::parse(b, media));
        let relayed = match &offer {
            Some(Ok(o)) => relay_offer(&o.stream).ok(),
            _ => None,
        };
        let (Some(Ok(offer)), Some(relayed), Controller::Route(route)) =
            (offer, relayed, &mut self.controller)
        else {
            warn!("callee answered a delayed-offer INVITE without a usable offer");
            cx.ua.ack(callee_leg, None);
            cx.ua.hangup(now, callee_leg, 487);
            cx.ua.respond(now, caller_leg, 488, None);
            let cause = Some("callee-sdp");
            return cx.end_call(CallStatus::Failed, Some(488), HangupBy::System, cause);
        };
        self.legs[1].side.remote = Some(offer.stream.clone());
        let sdp = self.legs[0].side.offer(&relayed);
        route.callee_offer = Some(offer);
        cx.ua.respond(now, caller_leg, 200, Some(sdp));
        info!("answered (delayed offer)");
        self.on_route_answered(cx);
    }

    /// The caller's ACK: with a delayed offer it carries the answer that completes the callee's
    /// exchange, sent in the callee's ACK.
    fn on_caller_acked(&mut self, cx: &mut CallContext, now: Instant, body: Option<Body>) {
        let Some(offer) = self.route().and_then(|r| r.callee_offer.take()) else {
            return;
        };
        let _span = self.span.clone().entered();
        let Some(callee_leg) = self.legs[1].dialog else {
            return;
        };
        let answers = parse_answer(body.as_ref())
            .map_err(|p| p.status())
            .and_then(|caller_answer| {
                let ours = relay_answer(&offer.stream, &caller_answer).map_err(|_| 488u16)?;
                (self.legs[0].side.take_answer(caller_answer)).map_err(|p| p.status())?;
                (self.legs[1].side.answer(&offer, &ours)).map_err(|p| p.status())
            });
        match answers {
            Ok(sdp) => {
                cx.ua.ack(callee_leg, Some(sdp));
                for leg in &self.legs {
                    leg.configure(cx.media, true);
                }
                self.apply_route_features(cx, now);
            }
            Err(code) => {
                warn!(code, "caller's ACK holds no usable answer");
                cx.ua.ack(callee_leg, None);
                for leg in self.dialogs().collect::<Vec<_>>() {
                    cx.ua.hangup(now, leg, 488);
                }
                let cause = Some("caller-sdp");
                cx.end_call(CallStatus::Failed, Some(488), HangupBy::System, cause);
            }
        }
    }

    /// INFO (SIP DTMF relay and the like) goes on to the other leg with its body as it came;
    /// it was answered 200 where it arrived.
    fn on_info(&mut self, cx: &mut CallContext, now: Instant, party: Party, body: Body) {
        let other = party.other().index();
        if let Some(other) = self.legs[other].dialog {
            cx.ua.info(now, other, body);
        }
    }

    /// What the route asks of its answered calls, as an application's commands would: a
    /// recording on the caller's side (the caller left, the callee right when dual) until the
    /// call ends, as the call's recording; a time limit from the answer; noise suppressed in
    /// what either party says (on the caller's endpoint: what comes in from the caller, and
    /// what goes out to it from the callee).
    fn apply_route_features(&mut self, cx: &mut CallContext, now: Instant) {
        let Controller::Route(route) = &self.controller else {
            return;
        };
        let features = route.features.clone();
        let endpoint = self.own().side.endpoint;
        if features.services.any() {
            let serve = super::ServeRoute {
                call: self.record.id.clone(),
                account: self.record.account_sid.clone(),
                from: self.record.from.clone(),
                to: self.record.to.clone(),
                services: features.services.clone(),
            };
            cx.outputs.push_back(super::Output::Serve(serve));
        }
        if let Some(limit) = features.time_limit
            && let Some(at) = now.checked_add(limit)
        {
            info!(secs = limit.as_secs(), "the route limits the call's length");
            self.set_timer(cx, CallTimer::TimeLimit, at);
        }
        let (inbound, outbound) = features.suppress_noise;
        if inbound || outbound {
            info!(inbound, outbound, "the route suppresses noise");
            cx.media
                .media(endpoint, MediaOp::Suppress { inbound, outbound });
        }
        let Some(channels) = features.record else {
            return;
        };
        let options = RecordOptions {
            channels,
            format: RecordFormat::Pcm16,
            tracks: TapTracks::Both,
            trim_silence: features.record_trim,
            sid: None,
            origin: super::api::RecordingOrigin::Route,
            stop: Default::default(),
        };
        cx.asks.push(CoreAsk::RouteRecording(options));
    }

    fn on_failed(&mut self, cx: &mut CallContext, now: Instant, code: u16) {
        let _span = self.span.clone().entered();
        self.legs[1].dialog = None;
        if self.ended() {
            return;
        }
        // A trunk that cannot take the call (5xx), or never answered at all (408 before any
        // ringing: unreachable, not a callee who let it ring), passes it to the route's next.
        let unreachable = code == 408 && self.phase == Phase::Setup;
        if ((500..600).contains(&code) || unreachable) && self.fail_over(cx, now, code) {
            return;
        }
        let to_caller = code_for_caller(code);
        if let Some(leg) = self.legs[0].dialog {
            cx.ua.respond(now, leg, to_caller, None);
        }
        info!(code, to_caller, "callee failed");
        let by = if code == 408 {
            HangupBy::System
        } else {
            HangupBy::Callee
        };
        cx.end_call(status_for_code(code), Some(to_caller), by, None);
    }

    /// Sends the call's INVITE to the next of its route's trunks that is up; `false` when
    /// none is left.
    fn fail_over(&mut self, cx: &mut CallContext, now: Instant, code: u16) -> bool {
        let Some(mut failover) = self.route().and_then(|r| r.failover.take()) else {
            return false;
        };
        let next = loop {
            let Some(name) = failover.trunks.pop_front() else {
                return false;
            };
            if !super::trunk_health::takes_calls(cx.trunk_health, cx.routing, cx.ua, &name) {
                continue;
            }
            if let Ok(dest) = trunk_destination(cx.routing, cx.ua, &failover.number, &name) {
                break dest;
            }
        };
        let from = format!(
            "{}<{}>",
            failover.display,
            cx.ua.local_uri(&self.record.from, &next.peer)
        );
        let invite = InviteParams {
            max_forwards: failover.max_forwards,
            asserted: passed_on(cx.routing, failover.vouched.clone(), next.trunk.as_deref()),
            ..next.invite(from, failover.body.clone(), cx.ring_timeout)
        };
        let from = std::mem::replace(&mut self.record.trunk_out, next.trunk.clone());
        info!(code, from = ?from, to = ?next.trunk, "failing over to the route's next trunk");
        if let Some(route) = self.route() {
            route.failover = Some(failover);
        }
        let leg = cx.ua.invite(now, invite);
        let media = cx.routing.peer_media(next.trunk.as_deref(), None);
        let callee = &mut self.legs[1];
        cx.dialogs.remove(&callee.first_dialog);
        callee.first_dialog = leg;
        callee.dialog = Some(leg);
        callee.name_dialog(cx.ua, leg);
        callee.side.retarget(media, &next.peer);
        cx.dialogs.insert(leg, (cx.key, 1));
        cx.accept_from_trunk(leg, next.trunk.as_deref());
        true
    }

    /// The caller cancelled before an answer.
    fn on_cancelled(&mut self, cx: &mut CallContext, now: Instant) {
        let _span = self.span.clone().entered();
        self.legs[0].dialog = None;
        if let Some(leg) = self.legs[1].dialog {
            cx.ua.hangup(now, leg, 487);
        }
        info!("caller cancelled");
        let status = CallStatus::Canceled;
        cx.end_call(status, Some(487), HangupBy::Caller, None);
    }

    fn on_bye(&mut self, cx: &mut CallContext, now: Instant, party: Party) {
        if self.referrer_left(party) {
            return;
        }
        let _span = self.span.clone().entered();
        self.legs[party.index()].dialog = None;
        if let Some(other) = self.legs[party.other().index()].dialog {
            cx.ua.hangup(now, other, 487);
        }
        info!(?party, "hangup");
        let (status, code) = if self.answered() {
            (CallStatus::Completed, 200)
        } else {
            (CallStatus::Canceled, 487)
        };
        cx.end_call(status, Some(code), party.hangup_by(), None);
    }

    /// A leg ended on our side; when the caller never ACKed our 200 the call ends too.
    fn on_terminated(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        party: Party,
        ack_timeout: bool,
    ) {
        self.legs[party.index()].dialog = None;
        if ack_timeout {
            let _span = self.span.clone().entered();
            warn!(?party, "no ACK for our 200");
            if let Some(other) = self.legs[party.other().index()].dialog {
                cx.ua.hangup(now, other, 487);
            }
            let (status, cause) = (CallStatus::Completed, Some("ack-timeout"));
            cx.end_call(status, Some(200), HangupBy::System, cause);
        }
    }

    /// A new offer from one party (a re-INVITE, or an UPDATE: relayed as an UPDATE where the
    /// other party allows one, else as a re-INVITE), relayed with the SDP rewritten.
    fn on_reinvite(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        from: Party,
        body: Option<Body>,
        update: bool,
    ) {
        let _span = self.span.clone().entered();
        let Some(from_leg) = self.legs[from.index()].dialog else {
            return;
        };
        let other_leg = self.legs[from.other().index()].dialog;
        let busy = self
            .route()
            .is_none_or(|r| r.reinvite.is_some() || r.resuming.is_some());
        if self.ended() || !self.answered() || busy || other_leg.is_none() {
            cx.ua.respond_reinvite(now, from_leg, 491, None);
            return;
        }
        let Some(body) = body else {
            // An offerless re-INVITE: a session refresh, or a browser back with a new peer
            // connection (see `Side::reoffer`).
            let ours = self.legs[from.index()].side.reoffer();
            cx.ua.respond_reinvite(now, from_leg, 200, ours);
            return;
        };
        let offer = match ReceivedOffer::parse(&body, self.legs[from.index()].side.peer_media()) {
            Ok(o) => o,
            Err(p) => return cx.ua.respond_reinvite(now, from_leg, p.status(), None),
        };
        let Ok(relayed) = relay_offer(&offer.stream) else {
            return cx.ua.respond_reinvite(now, from_leg, 488, None);
        };
        let to_other = self.legs[from.other().index()].side.offer(&relayed);
        let other_leg = other_leg.expect("checked above");
        if cx.ua.offer(now, other_leg, to_other, update) {
            info!(?from, update, direction = %offer.stream.direction, "relaying a new offer");
            if let Some(route) = self.route() {
                route.reinvite = Some(PendingReinvite { from, offer });
            }
        } else {
            cx.ua.respond_reinvite(now, from_leg, 491, None);
        }
    }

    fn on_reinvite_result(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        answered_by: Party,
        code: u16,
        body: Option<Body>,
    ) {
        if self.on_resumed(cx, now, answered_by, code, body.clone()) {
            return;
        }
        let _span = self.span.clone().entered();
        let Some(pending) = self
            .route()
            .and_then(|r| r.reinvite.take_if(|p| p.from == answered_by.other()))
        else {
            return;
        };
        let Some(from_leg) = self.legs[pending.from.index()].dialog else {
            return;
        };
        if !(200..300).contains(&code) {
            cx.ua.respond_reinvite(now, from_leg, code, None);
            return;
        }
        let answer = parse_answer(body.as_ref())
            .map_err(|p| p.status())
            .and_then(|other_answer| {
                let ours =
                    relay_answer(&pending.offer.stream, &other_answer).map_err(|_| 488u16)?;
                (self.legs[answered_by.index()].side)
                    .take_answer(other_answer)
                    .map_err(|p| p.status())?;
                (self.legs[pending.from.index()].side)
                    .answer(&pending.offer, &ours)
                    .map_err(|p| p.status())
            });
        match answer {
            Ok(sdp) => {
                for leg in &self.legs {
                    leg.configure(cx.media, true);
                }
                cx.ua.respond_reinvite(now, from_leg, 200, Some(sdp));
            }
            Err(code) => cx.ua.respond_reinvite(now, from_leg, code, None),
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
