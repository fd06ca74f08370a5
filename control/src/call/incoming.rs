//! An incoming INVITE: refused for load (draining, the store behind, the route's trunks
//! busy), admitted as a trunk's, a user's or another node's visit, then offered to the
//! application its number belongs to or routed — a callee leg dialed and bridged with the
//! caller's on a pair of endpoints — or refused with the code that says why.

use super::admission::{Admission, Destination, admit, resolve};
use super::model::{self, Controller, Leg, Party};
use super::route::status_for_code;
use super::session::{ReceivedOffer, Side};
use super::{CallCore, CallStatus, Direction, HangupBy, new_call_sid, route, visit};
use crate::infra::store::CallRecord;
use std::time::Instant;
use switchboard_sip::message::Request;
use switchboard_sip::sdp::offer_answer::relay_offer;
use switchboard_sip::transport::Peer;
use switchboard_sip::ua::{Body, InviteParams, LegId};
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
        // Another node's call visiting a room or a call here comes in on its seal, not as a
        // trunk's or a user's (see `visit`), and only to the visits' user.
        let visit = (self.config.visit_key.as_ref())
            .filter(|_| request.uri.user() == Some(visit::USER))
            .and_then(|key| {
                let sealed = request.headers.get(visit::HEADER)?;
                visit::Visit::unseal(key, sealed).filter(|v| v.fresh(self.wall))
            });
        let admission = match &visit {
            Some(_) => Admission::Visit,
            None => admit(&self.routing, &mut self.ua, &request, peer.remote.ip()),
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
        let id = new_call_sid(self.wall);
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
        let taker = controller.ok_or_else(|| {
            let up = |trunk: &str| self.trunk_takes_calls(trunk);
            resolve(&self.routing, &self.ua, now, &number, up)
        });
        if matches!(taker, Err(Err(503))) && self.route_busy(&number) {
            metrics::counter!("switchboard_calls_refused_total", "reason" => "trunk-busy")
                .increment(1);
            info!(to = %number, "refused: the route's trunks are busy");
            return self.ua.refuse(now, leg, 503, &try_again_shortly());
        }
        // A phone's or browser's call is its account's.
        let account_sid = (user_in.as_ref())
            .and_then(|u| self.routing.user_accounts.get(u).cloned())
            .or_else(|| visit.map(|v| v.account));
        let record = CallRecord {
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
        let dest = match taker {
            Ok(controller) => {
                let shown = switchboard_sip::ua::shown_headers(&request);
                let offer = (offer, shown, &peer);
                return self.offer_to_controller(now, leg, record, offer, controller);
            }
            Err(Ok(d)) => d,
            Err(Err(code)) => return self.refuse(now, leg, record, code, Some("no-route")),
        };
        let caller = Caller {
            leg,
            request: &request,
            peer: &peer,
            offer,
            media: caller_media,
            from_header: &from_header,
        };
        self.start_route(now, record, caller, dest);
    }

    /// A routed call: the callee's leg dialed (each of a user's devices rung), the two legs'
    /// endpoints bridged, the call kept under its route's controller.
    fn start_route(
        &mut self,
        now: Instant,
        mut record: CallRecord,
        caller: Caller,
        dest: Destination,
    ) {
        let Caller {
            leg,
            request,
            peer,
            offer,
            media: caller_media,
            from_header,
        } = caller;
        let number = record.to.clone();
        record.trunk_out = dest.trunk.clone();
        record.user_out = dest.user.clone();

        let (ea, eb) = match self.media.allocate_pair() {
            Ok(pair) => pair,
            Err(e) => {
                warn!(error = %e, "no media ports");
                return self.refuse(now, leg, record, 503, Some("no-media-ports"));
            }
        };
        let routing = &self.routing;
        let mut caller = Side::new(ea, caller_media, peer);
        caller.remote = offer.as_ref().map(|o| o.stream.clone());
        let mut callee = Side::new(
            eb,
            routing.peer_media(dest.trunk.as_deref(), dest.user.as_deref()),
            &dest.peer,
        );
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
        let from = format!("{display}<{}>", self.ua.local_uri(&record.from, &dest.peer));
        let vouched = route::vouched_for(&self.routing, request, record.trunk_in.as_deref());
        let asserted = route::passed_on(&self.routing, vouched.clone(), dest.trunk.as_deref());
        let invite = InviteParams {
            max_forwards: (request.headers.max_forwards())
                .unwrap_or(70)
                .saturating_sub(1),
            asserted,
            ..dest.invite(from, body, self.config.ring_timeout)
        };
        let failover = (!dest.fallback.is_empty()).then(|| model::Failover {
            body: invite.body.clone(),
            max_forwards: invite.max_forwards,
            number: number.clone(),
            display,
            vouched,
            trunks: dest.fallback.into(),
        });
        info!(trunk = ?dest.trunk, "trying");
        // A user is rung at each of its devices.
        let devices: Vec<InviteParams> = (dest.user.as_deref())
            .map(|user| super::fork::other_devices(&self.ua, now, user))
            .unwrap_or_default()
            .into_iter()
            .map(|d| InviteParams {
                uri: d.uri,
                peer: d.peer,
                ..invite.clone()
            })
            .collect();
        let callee_leg = self.ua.invite(now, invite);
        self.accept_from_trunk(callee_leg, dest.trunk.as_deref());
        self.media.configure(ea.id, caller.endpoint_config(false));
        self.media.bridge(ea.id, eb.id);
        let mut caller = Leg::sip("caller", leg, caller);
        caller.name_dialog(&self.ua, leg);
        let mut callee = Leg::sip("callee", callee_leg, callee);
        callee.name_dialog(&self.ua, callee_leg);
        let route = model::Route {
            features: dest.features,
            failover,
            ..Default::default()
        };
        let route = Controller::Route(Box::new(route));
        let key = self.insert_call(record, vec![caller, callee], offer, route);
        if let Some((call, mut cx)) = self.call_mut(key) {
            call.ring_devices(&mut cx, now, Party::Callee.index(), devices);
        }
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
        mut record: CallRecord,
        code: u16,
        cause: Option<&str>,
    ) {
        // A 503 is for now (no trunk up, no RTP port free).
        let retry = try_again_shortly();
        let headers: &[(String, String)] = if code == 503 { &retry } else { &[] };
        self.ua.refuse(now, leg, code, headers);
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

/// The `Retry-After` of a 503 that refuses a call for now (the node draining, its store
/// behind, no trunk up, no RTP port free): a peer with another place to send the call (a
/// dispatcher, a carrier's next route) does so, and comes back after a second.
fn try_again_shortly() -> [(String, String); 1] {
    [("Retry-After".to_owned(), "1".to_owned())]
}

/// The caller's side of a call being routed, as its INVITE brought it.
struct Caller<'a> {
    leg: LegId,
    request: &'a Request,
    peer: &'a Peer,
    offer: Option<ReceivedOffer>,
    media: super::dial_plan::PeerMedia,
    from_header: &'a str,
}
