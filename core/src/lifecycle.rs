//! How calls begin and end in the core. An incoming INVITE is refused for load (draining, the
//! store behind, the route's trunks busy), admitted as a trunk's, a user's or another node's
//! visit, then offered to the application its number belongs to or routed — a callee leg
//! dialed and bridged with the caller's on a pair of endpoints — or refused with the code that
//! says why. A call taken in is indexed; one that ends — whatever controls it — stops what it
//! was doing, releases its media, and is let go once its media's counters are back and its
//! recordings saved, its CDR written then. An attended transfer joins two calls and ends one.

use super::admission::{Admission, Destination, admit, resolve};
use super::api::{CallError, EventKind};
use super::app::{offered_codecs, sip_address};
use super::attended::Replaces;
use super::model::{Call, Controller, Leg, Party, Phase};
use super::route::status_for_code;
use super::session::{ReceivedOffer, Side};
use super::{CallCore, CallKey, CallStatus, Direction, HangupBy, Output, SubscriberId};
use super::{new_call_sid, route, visit};
use crate::account_limits::Exceeded;
use crate::rows::CallRecord;
use std::time::Instant;
use switchboard_media::EndpointStats;
use switchboard_sip::message::Request;
use switchboard_sip::transport::Peer;
use switchboard_sip::ua::{Body, LegId};
use tracing::{info, info_span, warn};

impl CallCore {
    pub(super) fn on_incoming(&mut self, now: Instant, leg: LegId, request: Request, peer: Peer) {
        if self.draining || self.refusing {
            return self.ua.refuse(now, leg, 503, &try_again_shortly());
        }
        if self.cdr.overloaded() {
            // Calls whose records could not be kept are not taken (see StoreWriter).
            metrics::counter!("switchboard_calls_refused_total", "reason" => "store-backlog")
                .increment(1);
            return self.ua.refuse(now, leg, 503, &try_again_shortly());
        }
        // Another node's call visiting a room or a call here, or this node's own call handed
        // to a TwiML App, comes in on its seal, not as a trunk's or a user's (see `visit`),
        // and only to the user of its kind of visit.
        let visit = (self.config.visit_key.as_ref()).and_then(|key| {
            let sealed = request.headers.get(visit::HEADER)?;
            visit::Visit::unseal(key, sealed)
                .filter(|v| v.fresh(self.wall) && request.uri.user() == Some(v.to.user()))
        });
        if let Some(visit::Visit {
            to: visit::Destination::Replace(replacing),
            ..
        }) = visit
        {
            return self.on_replacing(now, (leg, &request, &peer), replacing);
        }
        let visiting = visit.is_some();
        let admission = match &visit {
            Some(_) => Admission::Visit,
            None => admit(
                &self.routing,
                &self.domain_sources,
                &mut self.ua,
                &request,
                peer.remote.ip(),
            ),
        };
        let (trunk_in, user_in) = match admission {
            Admission::Visit => (None, None),
            Admission::Trunk(t) => (Some(t), None),
            Admission::User(u) => (None, Some(u)),
            Admission::Challenge { stale } => {
                metrics::counter!("switchboard_sip_challenges_total").increment(1);
                return self.ua.challenge(now, leg, stale);
            }
            Admission::Forbidden => {
                metrics::counter!("switchboard_sip_rejected_total", "reason" => "unknown-source")
                    .increment(1);
                info!(source = %peer.remote, "INVITE from a source of no trunk");
                return self.ua.refuse(now, leg, 403, &[]);
            }
        };
        self.accept_from_trunk(leg, trunk_in.as_deref());
        let id = new_call_sid(self.wall, self.config.shard);
        let span = info_span!("call", id = %id);
        let _entered = span.clone().entered();
        let from_header = request.headers.get("From").unwrap_or_default().to_owned();
        let from_uri = switchboard_sip::message::headers::uri_of_name_addr(&from_header);
        let number = request.uri.user().unwrap_or_default().to_owned();
        let controller = (user_in.as_deref())
            .and_then(|u| self.controllers.for_caller(u))
            .or_else(|| self.controllers.for_number(&number));
        // A call no application takes goes where its number routes. A route whose trunks are
        // too busy to take it (see `trunk_takes_calls`) refuses it for load, like overload
        // control: before it has a record, so that shedding stays cheap when it is most of
        // the traffic (counted in `switchboard_calls_refused_total`).
        // (`Ok`: the application's controller; `Err`: the route's destination or refusal.)
        // A phone's or browser's call is its account's.
        let account_sid = (user_in.as_ref())
            .and_then(|u| self.routing.user_accounts.get(u).cloned())
            .or_else(|| visit.map(|v| v.account))
            // A tenant's trunk's call is its account's (the operator's trunks' are no one's).
            .or_else(|| {
                (trunk_in.as_deref())
                    .and_then(|t| self.routing.trunk_account(t))
                    .map(str::to_owned)
            });
        let taker = controller.ok_or_else(|| {
            let up = |trunk: &str| self.trunk_takes_calls(trunk);
            let to = (number.as_str(), account_sid.as_deref());
            resolve(&self.routing, &self.ua, now, to, up)
        });
        if matches!(taker, Err(Err(503))) && self.route_busy(&number, account_sid.as_deref()) {
            metrics::counter!("switchboard_calls_refused_total", "reason" => "trunk-busy")
                .increment(1);
            info!(to = %number, "refused: the route's trunks are busy");
            return self.ua.refuse(now, leg, 503, &try_again_shortly());
        }
        let mut record = CallRecord {
            id,
            from: from_uri
                .as_ref()
                .and_then(|u| u.user().map(str::to_owned))
                .unwrap_or_default(),
            to: number.clone(),
            from_uri: from_uri.map(|u| u.to_string()).unwrap_or_default(),
            to_uri: request.uri.to_string(),
            trunk_in,
            user_in,
            trunk_out: None,
            user_out: None,
            direction: Direction::Inbound,
            parent_id: None,
            account_sid,
            status: CallStatus::Ringing,
            sip_code: None,
            hangup_by: None,
            hangup_cause: None,
            sip_call_id: request.headers.call_id().unwrap_or_default().to_owned(),
            sip_tags: super::model::dialog_name(&self.ua, leg).1,
            started_at: self.wall,
            answered_at: None,
            ended_at: None,
            duration_secs: 0,
            legs: Vec::new(),
        };
        info!(from = %record.from, to = %record.to, trunk = ?record.trunk_in, user = ?record.user_in, "incoming call");

        // No body: a delayed offer, which the callee's 200 will make.
        let caller_media =
            (self.routing).peer_media(record.trunk_in.as_deref(), record.user_in.as_deref());
        let offer = match Body::of_request(&request).map(|b| ReceivedOffer::parse(&b, caller_media))
        {
            None => None,
            Some(Ok(o)) => Some(o),
            Some(Err(p)) => return self.refuse(now, leg, record, p.status(), Some("caller-sdp")),
        };
        // A tenant's call out by the routes (no application takes it): its connection's and
        // profile's limits, before its route is dialed.
        let policy = (record.trunk_in.as_deref())
            .and_then(|t| {
                self.routing
                    .tenant
                    .trunks
                    .iter()
                    .find(|x| x.trunk.name == t)
            })
            .map(|t| &t.outbound)
            .or_else(|| {
                (record.user_in.as_deref())
                    .and_then(|u| self.account_users.get(u))
                    .map(|u| &u.outbound)
            })
            .filter(|_| taker.is_err());
        let mut channels = policy.map(|p| p.groups()).unwrap_or_default();
        let refusal = policy.and_then(|p| p.refusal(&number, |g| self.calls.live_of_group(g)));
        if let Some((code, phrase)) = refusal {
            metrics::counter!("switchboard_calls_refused_total", "reason" => "outbound-policy")
                .increment(1);
            return self.refuse_because(now, leg, record, code, &phrase);
        }
        // A call to a number whose connection bounds its calls in (not another node's call
        // visiting here: that one was counted where it arrived).
        let inbound = (self.routing.tenant.inbound_limits.get(&number)).filter(|_| !visiting);
        if let Some((limit, phrase)) = inbound {
            if self.calls.live_of_group(&limit.group) >= limit.max as usize {
                metrics::counter!("switchboard_calls_refused_total", "reason" => "inbound-limit")
                    .increment(1);
                let phrase = phrase.clone();
                return self.refuse_because(now, leg, record, 403, &phrase);
            }
            channels.push(limit.group.clone());
        }
        // The caller ID its connection puts on its calls out, in place of its phone's: what
        // the callee is shown and what the call's record says.
        let shown = (policy.and_then(|p| p.caller_id.as_ref())).and_then(|c| c.for_call(&number));
        if let Some(shown) = shown {
            record.from = shown.to_owned();
        }
        let mut dest = match taker {
            Ok(controller) => {
                let shown = switchboard_sip::ua::shown_headers(&request);
                let offer = (offer, shown, &peer);
                return self.offer_to_controller(now, leg, record, offer, (controller, channels));
            }
            Err(Ok(d)) => d,
            Err(Err(code)) => return self.refuse(now, leg, record, code, Some("no-route")),
        };
        // A call to a number a tenant gave its trunk is that tenant's (its records, its
        // recordings), as a call to its application's number would be.
        if record.account_sid.is_none() {
            record.account_sid = (dest.trunk.as_deref())
                .and_then(|t| self.routing.trunk_account(t))
                .map(str::to_owned);
        }
        // A tenant's trunk that records its calls records them, whatever its route says; one
        // that suppresses noise suppresses it beside what its route asks (its side is the
        // caller's).
        let tenant_trunk = (record.trunk_in.as_deref())
            .and_then(|t| (self.routing.tenant.trunks.iter()).find(|x| x.trunk.name == t));
        if let Some(t) = tenant_trunk {
            if let Some((channels, trim)) = t.record.filter(|_| dest.features.record.is_none()) {
                dest.features.record = Some(channels);
                dest.features.record_trim = trim;
            }
            let (says, hears) = t.suppress_noise;
            let suppress = &mut dest.features.suppress_noise;
            *suppress = (suppress.0 || says, suppress.1 || hears);
        }
        let caller = route::Caller {
            leg,
            request: &request,
            peer: &peer,
            offer,
            media: caller_media,
            from_header: &from_header,
        };
        self.start_route(now, record, caller, dest, channels);
    }

    /// A routed call: the callee's leg dialed (each of a user's devices rung), the two legs'
    /// endpoints bridged, the call kept under its route's controller.
    fn start_route(
        &mut self,
        now: Instant,
        mut record: CallRecord,
        caller: route::Caller,
        dest: Destination,
        channels: Vec<String>,
    ) {
        let leg = caller.leg;
        record.trunk_out = dest.trunk.clone();
        record.user_out = dest.user.clone();
        let dialer = route::Dialer {
            ua: &mut self.ua,
            media: &mut self.media,
            routing: &self.routing,
            ring_timeout: self.config.ring_timeout,
        };
        let routed = match route::dial(dialer, now, &record, caller, dest) {
            Ok(routed) => routed,
            Err(e) => {
                warn!(error = %e, "no media ports");
                return self.refuse(now, leg, record, 503, Some("no-media-ports"));
            }
        };
        let key = self.insert_call(record, routed.legs, routed.offer, routed.controller);
        if let Some(call) = self.calls.get_mut(&key) {
            call.channels = channels;
        }
        self.calls.recount(key);
        if let Some((call, mut cx)) = self.call_mut(key) {
            call.ring_devices(&mut cx, now, Party::Callee.index(), routed.devices);
        }
    }

    /// An incoming call offered to an application controller.
    pub(super) fn offer_to_controller(
        &mut self,
        now: Instant,
        leg: LegId,
        mut record: CallRecord,
        (offer, headers, peer): (Option<ReceivedOffer>, Vec<(String, String)>, &Peer),
        (controller, channels): (SubscriberId, Vec<String>),
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
        if let Some(call) = self.calls.get_mut(&key) {
            call.channels = channels;
        }
        self.calls.recount(key);
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
        if self.calls.live_of_account(account) < max as usize {
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

    /// A leg on a trunk takes its in-dialog requests from any of the trunk's addresses.
    pub(super) fn accept_from_trunk(&mut self, leg: LegId, trunk: Option<&str>) {
        super::context::accept_from_trunk(&mut self.ua, &self.routing, leg, trunk);
    }

    /// Answers an incoming call that never reached a callee, and records it.
    pub(super) fn refuse(
        &mut self,
        now: Instant,
        leg: LegId,
        record: CallRecord,
        code: u16,
        cause: Option<&str>,
    ) {
        // A 503 is for now (no trunk up, no RTP port free).
        let retry = try_again_shortly();
        let headers: &[(String, String)] = if code == 503 { &retry } else { &[] };
        self.ua.refuse(now, leg, code, headers);
        self.refused(record, code, cause);
    }

    /// A call refused with a reason phrase of its own (a tenant's policy, worded by its
    /// dialect: Telnyx's `403 … D2`).
    fn refuse_because(
        &mut self,
        now: Instant,
        leg: LegId,
        record: CallRecord,
        code: u16,
        phrase: &str,
    ) {
        self.ua.refuse_with_reason(now, leg, code, phrase, &[]);
        self.refused(record, code, Some(phrase));
    }

    /// The record of a refused call.
    fn refused(&mut self, mut record: CallRecord, code: u16, cause: Option<&str>) {
        info!(code, cause, "call refused");
        record.status = status_for_code(code);
        record.sip_code = Some(code);
        record.hangup_by = Some(HangupBy::System);
        record.hangup_cause = cause.map(str::to_owned);
        record.ended_at = Some(self.wall);
        metrics::counter!("switchboard_calls_total", "status" => record.status.as_str())
            .increment(1);
        self.cdr.save(record);
    }
}

impl CallCore {
    /// Takes a new call in: stored, indexed by its SID, its legs and their endpoints.
    pub(super) fn insert_call(
        &mut self,
        record: CallRecord,
        legs: Vec<Leg>,
        offer: Option<ReceivedOffer>,
        controller: Controller,
    ) -> CallKey {
        // A root span: a call is not part of whatever was handling the message that made it.
        // Every line about the call carries its id and account (known later for a call to a
        // number, recorded then).
        let span =
            info_span!(parent: None, "call", id = %record.id, account = tracing::field::Empty);
        if let Some(account) = &record.account_sid {
            span.record("account", account.as_str());
        }
        self.cdr.save(record.clone());
        metrics::gauge!("switchboard_calls_active").increment(1.0);
        // How the node's shards share the calls.
        metrics::counter!("switchboard_shard_calls_total", "shard" => self.config.shard.index.to_string())
            .increment(1);
        let call = Call::new(record, span, legs, offer, controller);
        let key = self.calls.insert(call);
        self.calls.recount(key);
        key
    }

    /// Sends an event to the call's controller and observers, and stores it (see
    /// [`STORED_SHEDDABLE_UNTIL`](super::model::STORED_SHEDDABLE_UNTIL)).
    pub(super) fn emit(&mut self, key: CallKey, kind: EventKind) {
        if let Some((call, mut cx)) = self.call_mut(key) {
            call.emit(&mut cx, kind);
        }
    }

    /// Lets go of a subscriber the core will name no more, unless it is a controller's,
    /// which its calls share.
    pub(super) fn unsubscribe(&mut self, gone: SubscriberId) {
        self.subscribed.remove(&gone);
        if !self.controllers.is_controller(gone) {
            self.outputs.push_back(Output::Unsubscribe(gone));
        }
    }

    /// Ends a call, whatever controls it: its record says how, what it was doing stops (a
    /// gather, a bridge, a conference seat, a re-INVITE being relayed), every leg's media is
    /// released, and its hangup event waits for the media's final counters
    /// ([`CallCore::on_released`]). The dialogs are the caller's to end first.
    pub(super) fn end_call(
        &mut self,
        now: Instant,
        key: CallKey,
        status: CallStatus,
        sip_code: Option<u16>,
        by: HangupBy,
        cause: Option<&str>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        if !call.enter(Phase::Ended, self.wall) {
            return;
        }
        self.calls.recount(key);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.timers.stop_all();
        call.record.status = status;
        call.record.sip_code = sip_code;
        call.record.hangup_by = Some(by);
        call.record.hangup_cause = cause.map(str::to_owned);
        let pending = call.route().and_then(|r| r.reinvite.take());
        if let Some(leg) = pending.and_then(|p| call.legs[p.from.index()].dialog) {
            self.ua.respond_reinvite(now, leg, 487, None);
        }
        // A transfer being placed has no one left to connect.
        if let Some(t) = call.route().and_then(|r| r.transfer.take()) {
            self.ua.hangup(now, t.leg, 487);
            self.calls.forget_dialog(t.leg);
        }
        info!(%status, by = by.as_str(), "call ended");
        metrics::counter!("switchboard_calls_total", "status" => status.as_str()).increment(1);
        metrics::gauge!("switchboard_calls_active").decrement(1.0);
        if let Some((call, mut cx)) = self.call_mut(key) {
            call.stop_ringing(&mut cx, now);
        }
        if let Some((call, mut cx)) = self.call_mut(key) {
            call.end_gather(&mut cx, "hangup");
        }
        self.unbridge(key);
        let (rooms, mut cx) = self.rooms_mut();
        rooms.leave(&mut cx, key, "hangup");
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.hangup = Some(EventKind::Hangup {
            status,
            sip_code,
            by,
            cause: cause.map(str::to_owned),
            quality: None,
        });
        for leg in &call.legs {
            self.media.release(leg.side.endpoint);
        }
    }

    /// Ends a call by hanging up every dialog still up with `code` (a BYE once answered, a
    /// CANCEL or a final response before) and `headers`: answered, it completed; before, it
    /// was cancelled (487) or failed with `code`.
    pub(super) fn hang_up(
        &mut self,
        now: Instant,
        key: CallKey,
        code: u16,
        cause: &str,
        headers: &[(String, String)],
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let dialogs: Vec<LegId> = call.dialogs().collect();
        for leg in dialogs {
            self.ua.hangup_with(now, leg, code, headers);
        }
        let (status, code) = match (call.answered(), code) {
            (true, _) => (CallStatus::Completed, 200),
            (false, 487) => (CallStatus::Canceled, 487),
            (false, code) => (CallStatus::Failed, code),
        };
        self.end_call(now, key, status, Some(code), HangupBy::System, Some(cause));
    }

    /// An endpoint of a call came back from the engine with its final counters: once every
    /// leg's has, the hangup event goes out with the call's own leg's quality.
    pub(super) fn on_released(
        &mut self,
        key: CallKey,
        endpoint: switchboard_media::EndpointId,
        stats: EndpointStats,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(leg) = call.legs.iter_mut().find(|l| l.side.endpoint == endpoint) {
            leg.released = Some(stats);
        }
        if call.legs.iter().all(|l| l.released.is_some()) {
            let own = call.own().released;
            self.emit_hangup(key, own.as_ref());
            self.forget_if_done(key);
        }
    }

    /// Sends an ended call's hangup event, with `stats` when the media gave them back.
    pub(super) fn emit_hangup(&mut self, key: CallKey, stats: Option<&EndpointStats>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(mut hangup) = call.hangup.take() {
            if let (EventKind::Hangup { quality, .. }, Some(stats)) = (&mut hangup, stats) {
                *quality = Some(super::api::Quality::of(stats));
            }
            // A recording still being saved holds the call's last write back; its row says
            // how the call ended before anyone is told it did (a reader who follows the
            // hangup event to the call must not find it still in progress).
            let closing =
                (call.recordings_open > 0).then(|| closing_record(call.record.clone(), &call.legs));
            let after = std::mem::take(&mut call.after_hangup);
            if let Some(record) = closing {
                self.cdr.save(record);
            }
            self.emit(key, hangup);
            for kind in after {
                self.emit(key, kind);
            }
        }
    }

    /// Shutdown is over: a call that ended is written out even though its media or recordings
    /// never reported back (a media worker that died holds them; they are repaired at the next
    /// start).
    pub(super) fn settle(&mut self, key: CallKey) {
        self.emit_hangup(key, None);
        if let Some(call) = self.calls.get_mut(&key).filter(|c| c.ended()) {
            for leg in &mut call.legs {
                leg.released.get_or_insert_with(EndpointStats::default);
            }
            call.recordings_open = 0;
        }
        self.forget_if_done(key);
    }

    /// Drops a finished call once its media is released and its recordings are saved, and
    /// writes its record with each leg's counters.
    pub(super) fn forget_if_done(&mut self, key: CallKey) {
        let done = self.calls.get(&key).is_some_and(|c| {
            c.ended() && c.legs.iter().all(|l| l.released.is_some()) && c.recordings_open == 0
        });
        if !done {
            return;
        }
        let call = self.calls.remove(key).expect("checked");
        let controller = match call.controller {
            Controller::App(app) => app,
            Controller::Route(_) => None,
        };
        for gone in controller.into_iter().chain(call.observers.iter().copied()) {
            self.unsubscribe(gone);
        }
        (self.recently_ended).note(call.record.id.clone(), call.seq);
        self.cdr.save(closing_record(call.record, &call.legs));
    }

    /// Ends every call (shutdown).
    pub(super) fn hang_up_all(&mut self, now: Instant) {
        for key in self.calls.live() {
            self.hang_up(now, key, 503, "shutdown", &[]);
        }
    }
}

impl CallCore {
    /// A REFER from `party` of `key` (on `referrer_leg`) whose Refer-To carries `replaces`.
    pub(super) fn on_attended_refer(
        &mut self,
        now: Instant,
        key: CallKey,
        party: Party,
        referrer_leg: LegId,
        replaces: Option<Replaces>,
    ) {
        let Some(replaces) = replaces else {
            return self.ua.answer_refer(now, referrer_leg, 400);
        };
        let Some((other_key, index)) = self.calls.dialog_named(&self.ua, &replaces) else {
            // The phone's other call may be on another of the node's shards (its Call-ID
            // chose it): joined through a leg to that shard (see `attended`).
            let shard = self.config.shard;
            let held = switchboard_sip::shard::shard_of_call_id(&replaces.call_id, shard.count);
            if held != shard.index
                && let Some(visit_key) = self.config.visit_key
            {
                if !self.joinable(key) {
                    return self.ua.answer_refer(now, referrer_leg, 491);
                }
                if let Some((call, mut cx)) = self.call_mut(key) {
                    let asked = (party, referrer_leg);
                    call.transfer_to_shard(&mut cx, now, asked, replaces, (held, &visit_key));
                }
                return;
            }
            info!("attended transfer refused: the dialog to replace is not Switchboard's");
            return self.ua.answer_refer(now, referrer_leg, 501);
        };
        if other_key == key || !self.joinable(key) || !self.joinable(other_key) {
            return self.ua.answer_refer(now, referrer_leg, 491);
        }
        // Only the phone that holds both dialogs may join them: the replaced dialog's peer
        // is the referrer's. Anyone else naming it (a guessed Call-ID and tags) is refused.
        let replaced = self.calls[&other_key].legs[index].dialog;
        let ip = |leg: Option<LegId>| leg.and_then(|l| self.ua.peer_of(l)).map(|p| p.remote.ip());
        if ip(replaced).is_none() || ip(replaced) != ip(Some(referrer_leg)) {
            warn!("attended transfer refused: the dialog to replace is another peer's");
            return self.ua.answer_refer(now, referrer_leg, 403);
        }
        self.ua.answer_refer(now, referrer_leg, 202);
        self.ua.notify_refer(now, referrer_leg, 200);
        self.join(key, party, other_key, index);
        info!(other = %self.calls[&other_key].record.id, "attended transfer: calls joined");
        if let Some((call, mut cx)) = self.call_mut(key) {
            call.resume_held(&mut cx, now, 0);
        }
        let _span = self.calls[&other_key].span.clone().entered();
        self.hang_up(now, other_key, 200, "transferred", &[]);
    }

    /// Whether `key` is a routed call up with nothing pending that a phone's attended
    /// transfer may join with another.
    fn joinable(&self, key: CallKey) -> bool {
        self.calls.get(&key).is_some_and(|c| {
            c.phase == Phase::Answered
                && matches!(&c.controller, Controller::Route(r)
                    if r.transfer.is_none() && r.reinvite.is_none() && r.resuming.is_none())
        })
    }

    /// `leg`, another shard's INVITE that replaces the phone's dialog `replacing` names (the
    /// phone's attended transfer, whose REFER that shard took): it takes the phone's place
    /// in the dialog's call. Only the phone that sent the REFER may have its dialog replaced.
    fn on_replacing(
        &mut self,
        now: Instant,
        (leg, request, peer): (LegId, &Request, &Peer),
        replacing: visit::Replacing,
    ) {
        let replaces = Replaces {
            call_id: replacing.call_id,
            to_tag: replacing.to_tag,
            from_tag: replacing.from_tag,
        };
        let Some((key, index)) = self.calls.dialog_named(&self.ua, &replaces) else {
            info!("attended transfer across shards: the dialog to replace is gone");
            return self.ua.refuse(now, leg, 481, &[]);
        };
        if !self.joinable(key) {
            return self.ua.refuse(now, leg, 491, &[]);
        }
        let replaced = self.calls[&key].legs[index].dialog;
        let phone = replaced
            .and_then(|l| self.ua.peer_of(l))
            .map(|p| p.remote.ip());
        if phone != Some(replacing.referrer) {
            warn!("attended transfer refused: the dialog to replace is another peer's");
            return self.ua.refuse(now, leg, 403, &[]);
        }
        let body = Body::of_request(request);
        let Some((call, mut cx)) = self.call_mut(key) else {
            return;
        };
        if let Err(code) = call.take_replacing(&mut cx, now, (index, leg), body.as_ref(), peer) {
            warn!(
                code,
                "attended transfer across shards: the leg's offer cannot be answered"
            );
            self.ua.refuse(now, leg, code, &[]);
        }
    }

    /// The other call's leg that is not `index` takes `party`'s place in `key`; the phone's
    /// leg goes to the other call (which is then hung up). Both calls' indexes follow.
    fn join(&mut self, key: CallKey, party: Party, other_key: CallKey, index: usize) {
        let (mine, theirs) = (party.index(), 1 - index);
        self.calls.swap_legs((key, mine), (other_key, theirs));
        let Some((call, other)) = self.calls.pair_mut(key, other_key) else {
            return;
        };
        // Names belong to the place in the call (caller, callee), not to the leg.
        std::mem::swap(&mut call.legs[mine].name, &mut other.legs[theirs].name);
        let r = &other.record;
        let (trunk, user) = match Party::of(theirs) {
            Party::Caller => (r.trunk_in.clone(), r.user_in.clone()),
            Party::Callee => (r.trunk_out.clone(), r.user_out.clone()),
        };
        match party {
            Party::Caller => (call.record.trunk_in, call.record.user_in) = (trunk, user),
            Party::Callee => (call.record.trunk_out, call.record.user_out) = (trunk, user),
        }
        self.media
            .bridge(call.legs[0].side.endpoint, call.legs[1].side.endpoint);
    }
}

/// An ended call's row: its record with each leg's counters and its length.
fn closing_record(mut record: CallRecord, legs: &[Leg]) -> CallRecord {
    record.legs = legs.iter().map(Leg::record).collect();
    if let (Some(a), Some(e)) = (record.answered_at, record.ended_at) {
        record.duration_secs = ((e - a).max(0) as u64).div_ceil(1000);
    }
    record
}

/// The `Retry-After` of a 503 that refuses a call for now (the node draining, its store
/// behind, no trunk up, no RTP port free): a peer with another place to send the call (a
/// dispatcher, a carrier's next route) does so, and comes back after a second.
fn try_again_shortly() -> [(String, String); 1] {
    [("Retry-After".to_owned(), "1".to_owned())]
}
