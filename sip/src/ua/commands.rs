//! The commands the core gives a leg: answers, challenges and refusals of an incoming INVITE,
//! new INVITEs, ACK, BYE, CANCEL, re-INVITE and INFO, and what follows from their timers.

use super::headers::*;
use super::*;
use crate::auth::{DigestParams, Verdict, answer_challenge};
use crate::dialog::Dialog;
use crate::message::{Headers, Method, Request, Response};
use crate::transaction::TxId;
use crate::transport::Peer;
use leg::{CancelState, Leg, LegState, Role, TxRole};
use std::cmp::Reverse;
use std::time::{Instant, SystemTime};

impl UserAgent {
    /// Lets `leg`'s in-dialog requests (BYE, re-INVITE, INFO…) come from any source `from`
    /// accepts besides the dialog's own peer, route and Contact: a carrier whose SBCs share its
    /// calls may end a call from another of its addresses than the one that set it up.
    pub fn accept_in_dialog_from(&mut self, leg: LegId, from: SourceCheck) {
        if let Some(leg) = self.legs.get_mut(&leg) {
            leg.also_from = Some(from);
        }
    }

    /// Answers the dialog-creating INVITE of an incoming leg (provisional or final).
    pub fn respond(&mut self, now: Instant, leg_id: LegId, code: u16, body: Option<Body>) {
        self.respond_with(now, leg_id, code, body, &[]);
    }

    /// [`Self::respond`] with an application's headers (Telnyx's `custom_headers` on
    /// `answer`); the UA's own and identity headers are left out.
    pub fn respond_with(
        &mut self,
        now: Instant,
        leg_id: LegId,
        code: u16,
        body: Option<Body>,
        headers: &[(String, String)],
    ) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let (Some(tx), true) = (leg.invite_tx, leg.request.is_some()) else {
            return;
        };
        if leg.role != Role::Uas || !self.layer.invite_server_pending(tx) {
            return;
        }
        let reliably = match self.reliability(leg_id, code, &body, headers) {
            super::reliable::Sending::Held | super::reliable::Sending::Dropped => return,
            super::reliable::Sending::Reliable => true,
            super::reliable::Sending::Plain => false,
        };
        let leg = &self.legs[&leg_id];
        let request = leg.request.as_ref().expect("checked above");
        let mut response = request.response(code, Some(&leg.dialog.local_tag));
        // A response that makes the dialog carries the request's Record-Route set, in order,
        // so that the caller's ACK and later requests follow the proxies (§12.1.1).
        if (101..300).contains(&code) {
            response.headers.copy_from(&request.headers, "Record-Route");
        }
        let request_headers = request.headers.clone();
        let peer = leg.peer;
        if let Some(body) = &body {
            self.legs.get_mut(&leg_id).expect("checked above").last_body = Some(body.clone());
        }
        self.decorate_response(&mut response, &peer, body);
        add_custom(&mut response.headers, headers);
        if (200..300).contains(&code) {
            self.session_as_server(now, leg_id, &request_headers, &mut response);
        }
        if reliably {
            self.send_reliably(now, leg_id, tx, response);
        } else {
            self.layer.respond(now, tx, &response);
        }
        let leg = self.legs.get_mut(&leg_id).expect("checked above");
        match code {
            100..=199 => {}
            200..=299 => {
                leg.state = LegState::Confirmed;
                leg.awaiting_ack = Some((leg.invite_cseq, tx));
            }
            _ => self.remove_leg(leg_id),
        }
    }

    /// Rejects an incoming INVITE with a digest challenge (407, Proxy-Authenticate).
    pub fn challenge(&mut self, now: Instant, leg_id: LegId, stale: bool) {
        let challenges: Vec<(String, String)> = (self.digest)
            .challenge(SystemTime::now(), stale)
            .into_iter()
            .map(|c| ("Proxy-Authenticate".to_owned(), c))
            .collect();
        self.refuse(now, leg_id, 407, &challenges);
    }

    /// A final refusal of an incoming INVITE (a 403 for an unknown source, a 503 with
    /// Retry-After when busy, a 404 for no route) with `headers`, sent once without a
    /// transaction: whoever sent the INVITE, perhaps from a forged address, gets one answer
    /// per request, never Timer G's ten, and a refusal holds no timers (see
    /// `TransactionLayer::respond_once`).
    pub fn refuse(&mut self, now: Instant, leg_id: LegId, code: u16, headers: &[(String, String)]) {
        self.refuse_as(now, leg_id, (code, None), headers);
    }

    /// [`Self::refuse`] with a reason phrase of the caller's (a provider's coded refusals);
    /// a phrase that is no valid one (control characters, too long) gives the standard one.
    pub fn refuse_with_reason(
        &mut self,
        now: Instant,
        leg_id: LegId,
        code: u16,
        reason: &str,
        headers: &[(String, String)],
    ) {
        self.refuse_as(now, leg_id, (code, Some(reason)), headers);
    }

    fn refuse_as(
        &mut self,
        now: Instant,
        leg_id: LegId,
        (code, reason): (u16, Option<&str>),
        headers: &[(String, String)],
    ) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let (Some(tx), Some(request)) = (leg.invite_tx, leg.request.as_ref()) else {
            return;
        };
        if leg.role != Role::Uas || !self.layer.invite_server_pending(tx) {
            return;
        }
        let mut response = request.response(code, Some(&leg.dialog.local_tag));
        if let Some(reason) = reason.filter(|r| r.len() <= 200 && !r.chars().any(char::is_control))
        {
            response.reason = reason.to_owned();
        }
        for (name, value) in headers {
            response.headers.push(name.as_str(), value.as_str());
        }
        self.decorate_response(&mut response, &leg.peer, None);
        self.layer.respond_once(now, tx, &response);
        self.remove_leg(leg_id);
    }

    /// Checks the Proxy-Authorization of an incoming INVITE against a password; accepted
    /// credentials use up their nonce count.
    pub fn verify(&mut self, request: &Request, username: &str, password: &str) -> Verdict {
        self.verify_header(request, "Proxy-Authorization", username, password)
    }

    pub(super) fn verify_header(
        &mut self,
        request: &Request,
        header: &str,
        username: &str,
        password: &str,
    ) -> Verdict {
        let found = request
            .headers
            .all(header)
            .filter_map(DigestParams::parse)
            .find(|p| p.get("username") == Some(username));
        match found {
            Some(p) => self.digest.verify(
                &p,
                request.method.to_string().as_str(),
                &request.uri.to_string(),
                username,
                password,
                SystemTime::now(),
            ),
            None => Verdict::Invalid,
        }
    }

    /// Places an outgoing call.
    pub fn invite(&mut self, now: Instant, params: InviteParams) -> LegId {
        let local_tag = random_token();
        let listener_host = self.listener(&params.peer).advertised.clone();
        let mut req = Request::new(Method::Invite, params.uri.clone());
        let h = &mut req.headers;
        h.push("Via", self.via(&params.peer));
        h.push("Max-Forwards", params.max_forwards.to_string());
        h.push("From", format!("{};tag={local_tag}", params.from));
        h.push("To", params.to.as_str());
        h.push(
            "Call-ID",
            new_call_id(self.config.shard, Some(&listener_host)),
        );
        h.push("CSeq", "1 INVITE");
        h.push("Contact", self.contact(&params.peer));
        h.push("Allow", ALLOW);
        h.push("User-Agent", self.config.user_agent.as_str());
        // The extensions we take part in (RFC 3262, RFC 4028), in one header as most peers
        // read only the first.
        h.push("Supported", "100rel, timer");
        self.ask_for_session(&mut req.headers);
        let h = &mut req.headers;
        add_custom(h, &params.headers);
        for (name, value) in (params.asserted.iter()).filter(|(_, v)| passable_value(v)) {
            h.push(name.as_str(), value.as_str());
        }
        if let Some(body) = &params.body {
            h.push("Content-Type", body.content_type.as_str());
            req.body = body.data.clone();
        }
        let dialog = Dialog::for_uac(&req).expect("request built with all dialog headers");
        self.next_leg += 1;
        let id = self.next_leg;
        let mut leg = Leg::new(Role::Uac, dialog, params.peer, self.contact(&params.peer));
        leg.invite_cseq = 1;
        leg.credentials = params.credentials;
        leg.last_body = params.body;
        if let Some(t) = params.ring_timeout {
            self.ring_timers.push(Reverse((now + t, id)));
        }
        self.dialogs.insert(
            (leg.dialog.call_id.clone(), leg.dialog.local_tag.clone()),
            id,
        );
        leg.request = Some(req.clone());
        let peer = leg.peer;
        self.legs.insert(id, Box::new(leg));
        self.send_leg_request(now, id, req, peer, TxRole::Invite);
        id
    }

    /// Sends the ACK for the 2xx of an outgoing leg, with the answer when the INVITE had no offer.
    pub fn ack(&mut self, leg_id: LegId, body: Option<Body>) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let mut ack = leg.dialog.ack(leg.invite_cseq);
        let peer = Self::dialog_peer(&self.config, leg);
        ack.headers.push("Via", self.via(&peer));
        let sent = body.clone();
        if let Some(body) = body {
            ack.headers.push("Content-Type", body.content_type);
            ack.body = body.data;
        }
        let data = ack.encode();
        let cseq = leg.invite_cseq;
        self.layer.send_stateless(data.clone(), peer);
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.ack_sent = Some((cseq, data));
            if sent.is_some() {
                leg.last_body = sent;
            }
        }
    }

    /// Ends a leg in whatever way its state allows: a final response to an unanswered incoming
    /// INVITE (`code`), CANCEL for an unanswered outgoing one, BYE for an established dialog.
    pub fn hangup(&mut self, now: Instant, leg_id: LegId, code: u16) {
        self.hangup_with(now, leg_id, code, &[]);
    }

    /// [`Self::hangup`] with an application's headers on the BYE or the final response
    /// (Telnyx's `custom_headers` on `hangup`; a CANCEL carries none).
    pub fn hangup_with(
        &mut self,
        now: Instant,
        leg_id: LegId,
        code: u16,
        headers: &[(String, String)],
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.bye_headers = headers.to_vec();
        match (leg.role, leg.state) {
            (_, LegState::Terminating) => {}
            (Role::Uas, LegState::Early) => self.respond_with(now, leg_id, code, None, headers),
            (Role::Uac, LegState::Early) => {
                if leg.cancel == CancelState::None {
                    leg.cancel = CancelState::Pending;
                    leg.failed = true;
                    self.send_pending_cancel(now, leg_id);
                }
            }
            (_, LegState::Confirmed) if leg.awaiting_ack.is_some() => leg.bye_after_ack = true,
            (_, LegState::Confirmed) => {
                // A 2xx waiting for our answer is ACKed first (RFC 3261 §14.1: then BYE).
                self.ack_reinvite(leg_id, None);
                self.send_bye(now, leg_id)
            }
        }
    }

    /// Sends a re-INVITE (new offer) on an established leg. Returns `false` if another INVITE
    /// transaction is in progress on it.
    pub fn reinvite(&mut self, now: Instant, leg_id: LegId, body: Body) -> bool {
        self.offer(now, leg_id, body, false)
    }

    /// Sends a new offer on an established leg in an UPDATE (RFC 3311) when `update` and the
    /// peer allows it, else in a re-INVITE; its answer comes as
    /// [`LegEvent::ReInviteResult`]. Returns `false` when an offer is already outstanding.
    pub fn offer(&mut self, now: Instant, leg_id: LegId, body: Body, update: bool) -> bool {
        self.send_offer(now, leg_id, Some(body), update, false)
    }

    /// A re-INVITE or UPDATE on an established leg: a new offer, or (`refresh`) a session
    /// refresh whose answer is ours alone (RFC 4028: an UPDATE without a body, else a
    /// re-INVITE with the description we last sent, unchanged).
    pub(super) fn send_offer(
        &mut self,
        now: Instant,
        leg_id: LegId,
        body: Option<Body>,
        update: bool,
        refresh: bool,
    ) -> bool {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        if leg.state != LegState::Confirmed
            || leg.reinvite.is_some()
            || leg.awaiting_ack.is_some()
            || leg.held_ack.is_some()
        {
            return false;
        }
        let update = update && leg.peer_allows_update;
        let method = if update {
            Method::Update
        } else {
            Method::Invite
        };
        let mut req = leg.dialog.request(method);
        let cseq = leg.dialog.local_cseq;
        let contact = leg.local_contact.clone();
        if let Some(t) = leg.timer {
            // A refresh asks to go on as agreed, refreshed by whoever refreshes now.
            let refresher = if t.ours { "uac" } else { "uas" };
            req.headers.push("Supported", "timer");
            let interval = t.interval.as_secs();
            req.headers.push(
                "Session-Expires",
                format!("{interval};refresher={refresher}"),
            );
        }
        if let Some(body) = &body {
            leg.last_body = Some(body.clone());
        }
        let peer = Self::dialog_peer(&self.config, &self.legs[&leg_id]);
        req.headers.push("Via", self.via(&peer));
        req.headers.push("Contact", contact);
        req.headers.push("Allow", ALLOW);
        if let Some(body) = body {
            req.headers.push("Content-Type", body.content_type);
            req.body = body.data;
        }
        let id = self.send_leg_request(now, leg_id, req, peer, TxRole::ReInvite);
        if let (Some(tx), Some(leg)) = (id, self.legs.get_mut(&leg_id)) {
            leg.reinvite = Some(leg::ReInvite {
                tx,
                outgoing: true,
                cseq,
                update,
                refresh,
                offerless: false,
            });
        }
        true
    }

    /// Sends a re-INVITE without an offer on an established leg (RFC 3261 §14.1): the peer's
    /// offer comes in its 2xx as [`LegEvent::ReInviteResult`], and the ACK waits for our
    /// answer, given with [`Self::ack_reinvite`]. Returns `false` when an offer is already
    /// outstanding.
    pub fn reinvite_offerless(&mut self, now: Instant, leg_id: LegId) -> bool {
        if !self.send_offer(now, leg_id, None, false, false) {
            return false;
        }
        if let Some(re) = self.legs.get_mut(&leg_id).and_then(|l| l.reinvite.as_mut()) {
            re.offerless = true;
        }
        true
    }

    /// ACKs the 2xx to our offerless re-INVITE with our `answer` (none: the offer could not
    /// be answered, and the caller ends the session). Nothing when no such 2xx waits.
    pub fn ack_reinvite(&mut self, leg_id: LegId, answer: Option<Body>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(cseq) = leg.held_ack.take() else {
            return;
        };
        let mut ack = leg.dialog.ack(cseq);
        let peer = Self::dialog_peer(&self.config, leg);
        ack.headers.push("Via", self.via(&peer));
        if let Some(body) = answer {
            ack.headers.push("Content-Type", body.content_type.clone());
            ack.body = body.data.clone();
            if let Some(leg) = self.legs.get_mut(&leg_id) {
                leg.last_body = Some(body);
            }
        }
        self.layer.send_stateless(ack.encode(), peer);
    }

    /// Sends an INFO (DTMF relay and the like) on an established leg; its response only ends
    /// the transaction. Returns `false` when the leg is not established.
    pub fn info(&mut self, now: Instant, leg_id: LegId, body: Body) -> bool {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        if leg.state != LegState::Confirmed {
            return false;
        }
        let mut req = leg.dialog.request(Method::Info);
        let peer = Self::dialog_peer(&self.config, &self.legs[&leg_id]);
        req.headers.push("Via", self.via(&peer));
        req.headers.push("Content-Type", body.content_type);
        req.body = body.data;
        self.send_leg_request(now, leg_id, req, peer, TxRole::Other)
            .is_some()
    }

    /// Forgets a finished transaction of a leg that does not end with it.
    pub(super) fn forget_tx(&mut self, leg_id: LegId, tx: TxId) {
        self.tx_legs.remove(&tx);
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.txs.retain(|t| *t != tx);
        }
    }

    /// Answers a re-INVITE received on a leg.
    pub fn respond_reinvite(&mut self, now: Instant, leg_id: LegId, code: u16, body: Option<Body>) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(re) = leg.reinvite.filter(|r| !r.outgoing) else {
            return;
        };
        let Some(request) = leg.reinvite_request.take() else {
            return;
        };
        let mut response = request.response(code, Some(&leg.dialog.local_tag));
        if (101..300).contains(&code) {
            response.headers.copy_from(&request.headers, "Record-Route");
        }
        let peer = leg.peer;
        if (200..300).contains(&code) && !re.update {
            leg.awaiting_ack = Some((re.cseq, re.tx));
        }
        leg.reinvite = None;
        if let Some(body) = &body {
            leg.last_body = Some(body.clone());
        }
        self.decorate_response(&mut response, &peer, body);
        if (200..300).contains(&code) {
            // The peer's re-INVITE or UPDATE refreshed the session.
            self.session_as_server(now, leg_id, &request.headers, &mut response);
        }
        self.layer.respond(now, re.tx, &response);
    }

    pub(super) fn decorate_response(
        &self,
        response: &mut Response,
        peer: &Peer,
        body: Option<Body>,
    ) {
        if response.code > 100 && response.code < 300 {
            response.headers.push("Contact", self.contact(peer));
        }
        if matches!(response.code, 200..=299 | 405) {
            response.headers.push("Allow", ALLOW);
        }
        response
            .headers
            .push("Server", self.config.user_agent.as_str());
        if let Some(body) = body {
            response.headers.push("Content-Type", body.content_type);
            response.body = body.data;
        }
    }

    // ---- internals shared with dispatch ---------------------------------------------------

    /// Where a leg's requests inside its dialog go (ACK for a 2xx, BYE, re-INVITE, INFO): the
    /// first hop of its route set when that names an IP address (§12.2.1.1), else the leg's
    /// own peer — the source of the INVITE we answered, or where we sent ours. Without a route
    /// set that peer, not the remote target, is used on purpose: a phone's Contact is often a
    /// private address behind NAT or a TCP port nobody listens on, while its source address
    /// (and connection) reach it; a trunk's address is its proxy.
    pub(super) fn dialog_peer(config: &UaConfig, leg: &Leg) -> Peer {
        let Some((remote, transport)) = leg.dialog.route_hop() else {
            return leg.peer;
        };
        let transport = transport.unwrap_or(leg.peer.transport);
        if remote == leg.peer.remote && transport == leg.peer.transport {
            return leg.peer;
        }
        peer_via(&config.listeners, transport, remote).unwrap_or(leg.peer)
    }

    pub(super) fn send_leg_request(
        &mut self,
        now: Instant,
        leg_id: LegId,
        req: Request,
        peer: Peer,
        role: TxRole,
    ) -> Option<TxId> {
        let tx = self.layer.send_request(now, req, peer)?;
        self.tx_legs.insert(tx, (leg_id, role));
        let leg = self.legs.get_mut(&leg_id)?;
        leg.txs.push(tx);
        if role == TxRole::Invite {
            leg.invite_tx = Some(tx);
        }
        Some(tx)
    }

    pub(super) fn send_bye(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.state = LegState::Terminating;
        let mut bye = leg.dialog.request(Method::Bye);
        let custom = std::mem::take(&mut leg.bye_headers);
        let peer = Self::dialog_peer(&self.config, &self.legs[&leg_id]);
        bye.headers.push("Via", self.via(&peer));
        bye.headers
            .push("User-Agent", self.config.user_agent.as_str());
        add_custom(&mut bye.headers, &custom);
        self.send_leg_request(now, leg_id, bye, peer, TxRole::Bye);
    }

    /// Sends the CANCEL once a provisional response has arrived (RFC 3261 §9.1).
    pub(super) fn send_pending_cancel(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        let Some(tx) = leg.invite_tx else { return };
        let Some((invite, proceeding)) = self.layer.invite_client(tx) else {
            return;
        };
        if leg.cancel != CancelState::Pending || !proceeding {
            return;
        }
        let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
        let h = &mut cancel.headers;
        if let Some(via) = invite.headers.get("Via") {
            h.push("Via", via);
        }
        h.copy_from(&invite.headers, "Route");
        h.push("Max-Forwards", "70");
        h.copy_from(&invite.headers, "From");
        h.copy_from(&invite.headers, "To");
        h.copy_from(&invite.headers, "Call-ID");
        h.push(
            "CSeq",
            format!("{} CANCEL", invite.headers.cseq().map_or(1, |c| c.seq)),
        );
        // Why it is cancelled (RFC 3326), when the caller said: a forked call's other
        // branches are told it was answered elsewhere.
        for (name, value) in &leg.bye_headers {
            if name.eq_ignore_ascii_case("Reason") {
                h.push("Reason", value.as_str());
            }
        }
        let peer = leg.peer;
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.cancel = CancelState::Sent;
        }
        // A CANCEL goes where its INVITE went (§9.1).
        self.send_leg_request(now, leg_id, cancel, peer, TxRole::Other);
    }

    pub(super) fn on_ring_timeout(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.role == Role::Uac && leg.state == LegState::Early && !leg.failed {
            self.emit(leg_id, LegEvent::Failed { code: 408 });
            self.hangup(now, leg_id, 487);
        }
    }

    /// Retries an INVITE with credentials after a 401/407, once per challenge.
    pub(super) fn retry_with_credentials(
        &mut self,
        now: Instant,
        leg_id: LegId,
        challenge: &Response,
    ) -> bool {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        let (Some((user, pass)), Some(req)) = (leg.credentials.clone(), leg.request.clone()) else {
            return false;
        };
        if leg.auth_attempts >= 2 || leg.failed {
            return false;
        }
        let (challenge_header, answer_header) = if challenge.code == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let uri = req.uri.to_string();
        let Some(creds) = challenge
            .headers
            .all(challenge_header)
            .find_map(|c| answer_challenge(c, "INVITE", &uri, &user, &pass, 1))
        else {
            return false;
        };
        leg.auth_attempts += 1;
        self.resend_invite(now, leg_id, req, |headers| {
            headers.remove(answer_header);
            headers.push(answer_header, creds);
        });
        true
    }

    /// Sends a leg's INVITE again as a new transaction (after a challenge or a 422): the next
    /// CSeq, a new branch, and what `amend` changes; it becomes the leg's INVITE.
    pub(super) fn resend_invite(
        &mut self,
        now: Instant,
        leg_id: LegId,
        mut req: Request,
        amend: impl FnOnce(&mut Headers),
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.dialog.local_cseq += 1;
        leg.invite_cseq = leg.dialog.local_cseq;
        req.headers
            .set("CSeq", format!("{} INVITE", leg.invite_cseq));
        amend(&mut req.headers);
        let peer = leg.peer;
        let via = self.via(&peer);
        if let Some(v) = req.headers.first_mut("Via") {
            *v = via;
        }
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.request = Some(req.clone());
        }
        self.send_leg_request(now, leg_id, req, peer, TxRole::Invite);
    }

    pub(super) fn emit(&mut self, leg: LegId, event: LegEvent) {
        self.events.push_back(UaEvent::Leg { leg, event });
    }

    pub(super) fn remove_leg(&mut self, leg_id: LegId) {
        if let Some(leg) = self.legs.remove(&leg_id) {
            if leg.role == Role::Uas {
                let d = &leg.dialog;
                self.incoming.remove(&(
                    d.call_id.clone(),
                    d.remote_tag.clone().unwrap_or_default(),
                    leg.invite_cseq,
                ));
            }
            self.dialogs
                .remove(&(leg.dialog.call_id, leg.dialog.local_tag));
            for tx in leg.txs {
                self.tx_legs.remove(&tx);
            }
        }
    }
}
