//! How the user agent reacts to what the transaction layer passes up.

use super::leg::{CancelState, Leg, LegState, Role, TxRole};
use super::{ALLOW, Body, LegEvent, LegId, UaEvent, UserAgent, random_token};
use crate::auth::{UNKNOWN_USER_PASSWORD, Verdict};
use crate::dialog::Dialog;
use crate::message::headers::uri_of_name_addr;
use crate::message::{Method, Request, Response};
use crate::transaction::{TxEvent, TxId};
use crate::transport::Peer;
use std::time::{Instant, SystemTime};

/// Option tags we implement; a Require naming anything else is refused with 420.
const SUPPORTED: &[&str] = &["timer", "100rel"];

impl UserAgent {
    /// Processes everything the transaction layer has queued.
    pub(super) fn pump(&mut self, now: Instant) {
        while let Some(event) = self.layer.poll_event() {
            match event {
                TxEvent::Request { tx, request, peer } => self.on_request(now, tx, request, peer),
                TxEvent::Response { tx, response, peer } => {
                    self.on_response(now, tx, response, peer)
                }
                TxEvent::Timeout { tx } => self.on_tx_timeout(now, tx),
            }
        }
    }

    /// Answers a request statelessly through its server transaction.
    pub(super) fn reply(&mut self, now: Instant, tx: TxId, request: &Request, code: u16) {
        let mut response = request.response(code, Some(&random_token()));
        if code == 405 || code == 200 {
            response.headers.push("Allow", ALLOW);
        }
        response
            .headers
            .push("Server", self.config.user_agent.as_str());
        self.layer.respond(now, tx, &response);
    }

    fn on_request(&mut self, now: Instant, tx: Option<TxId>, request: Request, peer: Peer) {
        let Some(tx) = tx else {
            return self.on_ack(now, request);
        };
        if request.method == Method::Cancel {
            return self.on_cancel(now, tx, request, peer);
        }
        if request.headers.to_tag().is_some() {
            return self.on_in_dialog(now, tx, request, peer);
        }
        if let Some(retry_after) = self.refusing
            && matches!(request.method, Method::Invite | Method::Options)
        {
            let mut r = request.response(503, Some(&random_token()));
            r.headers.push("Retry-After", retry_after.to_string());
            return self.layer.respond_once(now, tx, &r);
        }
        if request.method == Method::Invite
            && let Err(retry_after) = self.overload.admit(now, peer.remote.ip())
        {
            let mut r = request.response(503, Some(&random_token()));
            r.headers.push("Retry-After", retry_after.to_string());
            return self.layer.respond_once(now, tx, &r);
        }
        match request.method {
            Method::Invite => self.on_invite(now, tx, request, peer),
            Method::Options => {
                let mut r = request.response(200, Some(&random_token()));
                r.headers.push("Allow", ALLOW);
                r.headers.push("Accept", "application/sdp");
                r.headers.push("Server", self.config.user_agent.as_str());
                self.layer.respond(now, tx, &r);
            }
            Method::Register => self.on_register(now, tx, request, peer),
            Method::Bye => self.reply(now, tx, &request, 481),
            _ => self.reply(now, tx, &request, 405),
        }
    }

    fn on_invite(&mut self, now: Instant, tx: TxId, request: Request, peer: Peer) {
        let unsupported: Vec<&str> = request
            .headers
            .tokens("Require")
            .filter(|t| !SUPPORTED.contains(t))
            .collect();
        if !unsupported.is_empty() {
            let mut r = request.response(420, Some(&random_token()));
            r.headers.push("Unsupported", unsupported.join(", "));
            return self.layer.respond(now, tx, &r);
        }
        if request.headers.max_forwards() == Some(0) {
            return self.reply(now, tx, &request, 483);
        }
        if self.too_brief(now, tx, &request) {
            return;
        }
        let Some(dialog) = Dialog::for_uas(&request, random_token()) else {
            return self.reply(now, tx, &request, 400);
        };
        // The same request again on another branch (RFC 3261 §8.2.2.2): a loop or a fork back
        // to us, not a second call.
        let merge_key = (
            dialog.call_id.clone(),
            dialog.remote_tag.clone().unwrap_or_default(),
            dialog.remote_cseq.unwrap_or(0),
        );
        if self.incoming.contains_key(&merge_key) {
            return self.reply(now, tx, &request, 482);
        }
        self.next_leg += 1;
        let id = self.next_leg;
        let mut leg = Leg::new(
            Role::Uas,
            dialog,
            self.layer.peer(tx).unwrap_or(peer),
            self.contact(&peer),
        );
        leg.invite_tx = Some(tx);
        leg.invite_cseq = request.headers.cseq().map_or(0, |c| c.seq);
        leg.peer_allows_update = super::leg::allows_update(&request.headers);
        leg.reliable = super::reliable::Reliable::for_uas(&request);
        self.incoming.insert(merge_key, id);
        leg.request = Some(request.clone());
        leg.txs.push(tx);
        self.dialogs.insert(
            (leg.dialog.call_id.clone(), leg.dialog.local_tag.clone()),
            id,
        );
        self.tx_legs.insert(tx, (id, TxRole::Invite));
        self.legs.insert(id, Box::new(leg));
        self.events.push_back(UaEvent::Incoming {
            leg: id,
            request: Box::new(request),
            peer,
        });
    }

    fn on_register(&mut self, now: Instant, tx: TxId, request: Request, peer: Peer) {
        let to = uri_of_name_addr(request.headers.get("To").unwrap_or_default());
        // The login's key (a SIP domain's user is `user@domain`) and the digest's user name.
        let found = (to.as_ref())
            .and_then(|to| crate::registrar::login_of(&self.config.users, to))
            .map(|(key, password, user)| (key.clone(), password.clone(), user));
        let user_name = (to.as_ref())
            .and_then(|u| u.user().map(str::to_owned))
            .unwrap_or_default();
        // An unknown name is challenged and refused exactly like a wrong password (and its
        // credentials are checked against a throwaway one, costing the same), so REGISTER does
        // not tell a scanner which names exist.
        let (user, password) = match found {
            Some((key, password, _)) => (key, Some(password)),
            None => (user_name.clone(), None),
        };
        let verdict = self.verify_header(
            &request,
            "Authorization",
            &user_name,
            password.as_deref().unwrap_or(UNKNOWN_USER_PASSWORD),
        );
        let response = match verdict {
            Verdict::Ok if password.is_some() => {
                let response =
                    (self.registrar()).register(now, &user, &request, peer, &random_token());
                if response.code == 200 && peer.conn.is_some() {
                    let user = user.clone();
                    self.events.push_back(UaEvent::Authenticated { peer, user });
                }
                response
            }
            Verdict::Ok | Verdict::Stale | Verdict::Invalid => {
                let stale = verdict == Verdict::Stale && password.is_some();
                let mut r = request.response(401, Some(&random_token()));
                for c in self.digest.challenge(SystemTime::now(), stale) {
                    r.headers.push("WWW-Authenticate", c);
                }
                r
            }
        };
        let mut response = response;
        response
            .headers
            .push("Server", self.config.user_agent.as_str());
        self.layer.respond(now, tx, &response);
    }

    fn leg_of_dialog(&self, request: &Request) -> Option<LegId> {
        let key = (
            request.headers.call_id()?.to_owned(),
            request.headers.to_tag()?,
        );
        let id = *self.dialogs.get(&key)?;
        let leg = self.legs.get(&id)?;
        let from_tag = request.headers.from_tag();
        (leg.dialog.remote_tag.is_none() || leg.dialog.remote_tag == from_tag).then_some(id)
    }

    fn on_ack(&mut self, now: Instant, request: Request) {
        let Some(id) = self.leg_of_dialog(&request) else {
            return;
        };
        let cseq = request.headers.cseq().map_or(0, |c| c.seq);
        let leg = self.legs.get_mut(&id).expect("found above");
        let Some((expected, tx)) = leg.awaiting_ack.filter(|(c, _)| *c == cseq) else {
            return;
        };
        leg.awaiting_ack = None;
        // The initial INVITE's own transaction: a CSeq alone does not tell, since a re-INVITE
        // from the side that did not send the INVITE counts its own CSeqs.
        let initial = expected == leg.invite_cseq && leg.invite_tx == Some(tx);
        let bye_now = leg.bye_after_ack;
        self.layer.ack_received(now, tx);
        let body = Body::of(&request.headers, &request.body);
        if initial {
            self.emit(id, LegEvent::Acked { body });
        } else if let Some(body) = body {
            // The answer to the offer our 2xx made to an offerless re-INVITE.
            self.emit(id, LegEvent::AckedAnswer { body });
        }
        if bye_now {
            self.send_bye(now, id);
        }
    }

    fn on_cancel(&mut self, now: Instant, tx: TxId, request: Request, peer: Peer) {
        let Some(invite_tx) = self.layer.cancelled_invite(&request) else {
            return self.reply(now, tx, &request, 481);
        };
        let leg_id = self.tx_legs.get(&invite_tx).map(|&(id, _)| id);
        // A CANCEL follows its INVITE hop by hop (RFC 3261 §9.1): one from elsewhere is
        // someone who learnt the call's identifiers, not the caller.
        if let Some(leg) = leg_id.and_then(|id| self.legs.get(&id))
            && leg.peer.remote.ip() != peer.remote.ip()
        {
            return self.reply(now, tx, &request, 481);
        }
        self.reply(now, tx, &request, 200);
        let Some(leg_id) = leg_id else {
            return;
        };
        if self.layer.invite_server_pending(invite_tx) {
            self.respond(now, leg_id, 487, None);
            self.emit(leg_id, LegEvent::Cancelled);
        }
    }

    fn on_in_dialog(&mut self, now: Instant, tx: TxId, request: Request, peer: Peer) {
        let Some(id) = self.leg_of_dialog(&request) else {
            return self.reply(now, tx, &request, 481);
        };
        if !self.legs[&id].may_send(peer.remote.ip()) {
            return self.reply(now, tx, &request, 481);
        }
        let leg = self.legs.get_mut(&id).expect("found above");
        if !leg.dialog.accept_remote_cseq(&request) {
            return self.reply(now, tx, &request, 500);
        }
        leg.txs.push(tx);
        match request.method {
            Method::Bye => {
                self.reply(now, tx, &request, 200);
                // An early dialog ended by BYE still owes its INVITE a final response.
                if self.legs[&id]
                    .invite_tx
                    .is_some_and(|t| self.layer.invite_server_pending(t))
                {
                    self.respond(now, id, 487, None);
                }
                let headers = super::shown_headers(&request);
                self.emit(id, LegEvent::Bye { headers });
                self.remove_leg(id);
            }
            Method::Invite => {
                if leg.reinvite.is_some() || leg.state != LegState::Confirmed {
                    // Glare or overlap with our own INVITE (RFC 3261 §14.2).
                    return self.reply(now, tx, &request, 491);
                }
                if leg.awaiting_ack.is_some() {
                    let mut r = request.response(500, Some(&leg.dialog.local_tag));
                    r.headers.push("Retry-After", "1");
                    return self.layer.respond(now, tx, &r);
                }
                if self.too_brief(now, tx, &request) {
                    return;
                }
                let leg = self.legs.get_mut(&id).expect("found above");
                leg.dialog.on_refresh(&request);
                let cseq = request.headers.cseq().map_or(0, |c| c.seq);
                leg.reinvite = Some(super::leg::ReInvite {
                    tx,
                    outgoing: false,
                    cseq,
                    update: false,
                    refresh: false,
                    offerless: false,
                });
                let body = Body::of(&request.headers, &request.body);
                leg.reinvite_request = Some(request);
                self.tx_legs.insert(tx, (id, TxRole::ReInvite));
                let update = false;
                self.emit(id, LegEvent::ReInvite { body, update });
            }
            Method::Update => self.on_update(now, id, tx, request),
            Method::PRack => self.on_prack(now, id, tx, request),
            Method::Refer => self.on_refer(now, id, tx, request),
            Method::Notify => self.on_notify(now, id, tx, request),
            Method::Info => {
                self.reply(now, tx, &request, 200);
                self.emit(
                    id,
                    LegEvent::Info {
                        body: Body::of(&request.headers, &request.body),
                    },
                );
            }
            Method::Options => self.reply(now, tx, &request, 200),
            _ => self.reply(now, tx, &request, 501),
        }
    }

    /// An UPDATE (RFC 3311) in a confirmed dialog: with an offer it is answered like a
    /// re-INVITE's (by [`UserAgent::respond_reinvite`], and not ACKed); without one it only
    /// refreshes the session (RFC 4028) and is answered here. An early dialog's UPDATE (which
    /// needs reliable provisional responses to mean anything) is refused for now, as is one
    /// crossing an offer of ours or the peer's (491, §5.2).
    fn on_update(&mut self, now: Instant, id: LegId, tx: TxId, request: Request) {
        let leg = self.legs.get_mut(&id).expect("checked by the caller");
        if leg.state != LegState::Confirmed {
            let mut r = request.response(500, Some(&leg.dialog.local_tag));
            r.headers.push("Retry-After", "1");
            return self.layer.respond(now, tx, &r);
        }
        if leg.reinvite.is_some() || leg.awaiting_ack.is_some() {
            return self.reply(now, tx, &request, 491);
        }
        if self.too_brief(now, tx, &request) {
            return;
        }
        let leg = self.legs.get_mut(&id).expect("checked by the caller");
        leg.dialog.on_refresh(&request);
        let body = Body::of(&request.headers, &request.body);
        if body.is_none() {
            let mut response = request.response(200, Some(&leg.dialog.local_tag));
            let peer = leg.peer;
            self.decorate_response(&mut response, &peer, None);
            self.session_as_server(now, id, &request.headers, &mut response);
            return self.layer.respond(now, tx, &response);
        }
        let cseq = request.headers.cseq().map_or(0, |c| c.seq);
        leg.reinvite = Some(super::leg::ReInvite {
            tx,
            outgoing: false,
            cseq,
            update: true,
            refresh: false,
            offerless: false,
        });
        leg.reinvite_request = Some(request);
        self.tx_legs.insert(tx, (id, TxRole::ReInvite));
        let update = true;
        self.emit(id, LegEvent::ReInvite { body, update });
    }

    fn on_response(&mut self, now: Instant, tx: Option<TxId>, response: Response, peer: Peer) {
        let Some(tx) = tx else {
            return self.ack_stray_2xx(response, peer);
        };
        if self.on_pong(tx, response.code) {
            return;
        }
        let challenges = || (response.headers.all("WWW-Authenticate").map(str::to_owned)).collect();
        if self.registering.contains_key(&tx)
            && self.on_register_response(now, tx, response.code, challenges())
        {
            return;
        }
        let Some(&(leg_id, role)) = self.tx_legs.get(&tx) else {
            return;
        };
        match role {
            TxRole::Invite => self.on_invite_response(now, leg_id, tx, response),
            TxRole::ReInvite => self.on_reinvite_response(now, leg_id, response),
            TxRole::Bye if response.code >= 200 => {
                self.emit(leg_id, LegEvent::Terminated { ack_timeout: false });
                self.remove_leg(leg_id);
            }
            TxRole::Refer if response.code >= 200 => {
                self.forget_tx(leg_id, tx);
                self.on_refer_answered(leg_id, response.code);
            }
            TxRole::Other if response.code >= 200 => self.forget_tx(leg_id, tx),
            _ => {}
        }
    }

    fn on_invite_response(&mut self, now: Instant, leg_id: LegId, tx: TxId, response: Response) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        if leg.invite_tx != Some(tx) {
            // A late response to an INVITE we re-sent with credentials.
            return;
        }
        match response.code {
            100 => {
                if leg.cancel == CancelState::Pending {
                    self.send_pending_cancel(now, leg_id);
                }
            }
            101..=199 => {
                if leg.state != LegState::Early {
                    return;
                }
                if response.headers.to_tag().is_some() {
                    leg.dialog.on_response(&response);
                }
                if !self.acknowledge_provisional(now, leg_id, &response) {
                    return;
                }
                let Some(leg) = self.legs.get_mut(&leg_id) else {
                    return;
                };
                let body = Body::of(&response.headers, &response.body);
                let cancel = leg.cancel == CancelState::Pending;
                let failed = leg.failed;
                if cancel {
                    self.send_pending_cancel(now, leg_id);
                }
                if !failed {
                    self.emit(
                        leg_id,
                        LegEvent::Progress {
                            code: response.code,
                            body,
                        },
                    );
                }
            }
            200..=299 => {
                let tag = response.headers.to_tag();
                if leg.state != LegState::Early {
                    // A retransmission (re-ACK it) or a second fork (ACK and BYE it).
                    if tag == leg.dialog.remote_tag {
                        if let Some((_, ack)) = leg.ack_sent.clone() {
                            let peer = Self::dialog_peer(&self.config, leg);
                            self.layer.send_stateless(ack, peer);
                        }
                    } else {
                        let peer = leg.peer;
                        self.ack_and_bye_stray(now, response, peer);
                    }
                    return;
                }
                leg.dialog.on_response(&response);
                leg.state = LegState::Confirmed;
                leg.peer_allows_update = super::leg::allows_update(&response.headers);
                if leg.failed || leg.cancel != CancelState::None {
                    // Answered after we gave up: complete and end this dialog.
                    self.ack(leg_id, None);
                    self.send_bye(now, leg_id);
                    return;
                }
                self.session_as_client(now, leg_id, &response.headers);
                self.emit(
                    leg_id,
                    LegEvent::Answered {
                        body: Body::of(&response.headers, &response.body),
                    },
                );
            }
            code => {
                let failed = leg.failed;
                if matches!(code, 401 | 407) && self.retry_with_credentials(now, leg_id, &response)
                {
                    return;
                }
                if code == 422 && self.retry_with_min_se(now, leg_id, &response) {
                    return;
                }
                if !failed {
                    self.emit(leg_id, LegEvent::Failed { code });
                }
                self.remove_leg(leg_id);
            }
        }
    }

    fn on_reinvite_response(&mut self, now: Instant, leg_id: LegId, response: Response) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(re) = leg.reinvite.filter(|r| r.outgoing) else {
            return;
        };
        if response.code < 200 {
            return;
        }
        leg.reinvite = None;
        if response.is_success() {
            leg.dialog.on_refresh_response(&response);
            if re.offerless {
                // The 2xx is an offer: the ACK carries our answer, when we have it.
                leg.held_ack = Some(re.cseq);
            } else if !re.update {
                let mut ack = leg.dialog.ack(re.cseq);
                let peer = Self::dialog_peer(&self.config, leg);
                ack.headers.push("Via", self.via(&peer));
                self.layer.send_stateless(ack.encode(), peer);
            }
            self.session_as_client(now, leg_id, &response.headers);
        }
        if re.refresh {
            return self.on_refresh_result(now, leg_id, response.code);
        }
        self.emit(
            leg_id,
            LegEvent::ReInviteResult {
                code: response.code,
                body: Body::of(&response.headers, &response.body),
            },
        );
    }

    fn on_tx_timeout(&mut self, now: Instant, tx: TxId) {
        if self.on_pong(tx, 408) || self.on_register_response(now, tx, 408, Vec::new()) {
            return;
        }
        let Some(&(leg_id, role)) = self.tx_legs.get(&tx) else {
            return;
        };
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        match (leg.role, role) {
            (Role::Uac, TxRole::Invite) => {
                if !leg.failed {
                    self.emit(leg_id, LegEvent::Failed { code: 408 });
                }
                self.remove_leg(leg_id);
            }
            // No ACK for our 2xx (timer L): end the dialog (RFC 3261 §13.3.1.4).
            (Role::Uas, TxRole::Invite | TxRole::ReInvite)
                if leg.awaiting_ack.is_some_and(|(_, t)| t == tx) =>
            {
                if let Some(leg) = self.legs.get_mut(&leg_id) {
                    leg.awaiting_ack = None;
                }
                self.send_bye(now, leg_id);
                self.emit(leg_id, LegEvent::Terminated { ack_timeout: true });
            }
            // Our re-INVITE or UPDATE went unanswered: the next offer may go, and the one who
            // made this one hears of it (a refresh of ours ends the session, RFC 4028 §10).
            (_, TxRole::ReInvite) => {
                let ours = leg.reinvite.filter(|r| r.outgoing && r.tx == tx);
                if let (Some(_), Some(leg)) = (ours, self.legs.get_mut(&leg_id)) {
                    leg.reinvite = None;
                }
                match ours {
                    Some(r) if r.refresh => self.on_refresh_result(now, leg_id, 408),
                    _ => self.emit(
                        leg_id,
                        LegEvent::ReInviteResult {
                            code: 408,
                            body: None,
                        },
                    ),
                }
            }
            (_, TxRole::Bye) => {
                self.emit(leg_id, LegEvent::Terminated { ack_timeout: false });
                self.remove_leg(leg_id);
            }
            (_, TxRole::Refer) => {
                self.forget_tx(leg_id, tx);
                self.on_refer_answered(leg_id, 408);
            }
            (_, TxRole::Other) => self.forget_tx(leg_id, tx),
            _ => {}
        }
    }

    /// A 2xx whose transaction is gone: ACK it from its own headers (RFC 6026 §8.4 asks the
    /// core to ACK every 2xx) without creating a dialog.
    fn ack_stray_2xx(&mut self, response: Response, peer: Peer) {
        if let Some(ack) = self.stray_ack(&response, &peer) {
            self.layer.send_stateless(ack.encode(), peer);
        }
    }

    /// A 2xx from a second fork: ACK it and hang it up at once.
    fn ack_and_bye_stray(&mut self, now: Instant, response: Response, peer: Peer) {
        let Some(ack) = self.stray_ack(&response, &peer) else {
            return;
        };
        self.layer.send_stateless(ack.encode(), peer);
        let Some(mut dialog) = Dialog::for_uac(&ack) else {
            return;
        };
        dialog.on_response(&response);
        let mut bye = dialog.request(Method::Bye);
        bye.headers.push("Via", self.via(&peer));
        self.layer.send_request(now, bye, peer);
    }

    fn stray_ack(&self, response: &Response, peer: &Peer) -> Option<Request> {
        let cseq = response.headers.cseq()?.seq;
        let target = response.headers.contact_uri()?;
        let mut ack = Request::new(Method::Ack, target);
        let h = &mut ack.headers;
        h.push("Via", self.via(peer));
        for rr in response.headers.all("Record-Route").rev() {
            h.push("Route", rr);
        }
        h.push("Max-Forwards", "70");
        h.copy_from(&response.headers, "From");
        h.copy_from(&response.headers, "To");
        h.copy_from(&response.headers, "Call-ID");
        h.push("CSeq", format!("{cseq} ACK"));
        Some(ack)
    }
}
