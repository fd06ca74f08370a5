//! Placing a call: an application's (or a `<Dial>`'s) [`Originate`] resolved to a trunk, a
//! registered user or a SIP URI, checked against the account's limits and caller IDs, and sent
//! as an INVITE with our offer.

use super::api::{CallError, EventKind, Originate, Target};
use super::model::{Controller, Leg};
use super::session::{Side, our_offer};
use super::status::{CallStatus, Direction};
use super::{CallCore, SubscriberId, new_call_sid};
use crate::infra::store::CallRecord;
use std::time::Instant;
use switchboard_sip::message::Uri;
use switchboard_sip::transport::{Peer, Transport};
use switchboard_sip::ua::InviteParams;
use tracing::info;

impl CallCore {
    /// The SIP user `client:NAME` of `account` is: its browser client when one is signed in,
    /// else the phone of that name.
    pub(super) fn user_of_client(&self, account: &str, name: &str) -> String {
        let client = crate::call::dial_plan::client_user(account, name);
        if self.routing.users.contains_key(&client) {
            client
        } else {
            name.to_owned()
        }
    }

    pub(super) fn originate(
        &mut self,
        now: Instant,
        mut o: Originate,
        events: SubscriberId,
    ) -> Result<String, CallError> {
        if self.draining {
            return Err(CallError::Stopped);
        }
        if self.refusing {
            return Err(CallError::ShuttingDown);
        }
        if self.cdr.overloaded() {
            return Err(CallError::Overloaded);
        }
        // `client:NAME` from an account is its browser client NAME when one is signed in
        // (else a registered phone of that name).
        if let (Target::User(user), Some(account)) = (&mut o.to, &o.account) {
            *user = self.user_of_client(account, user);
        }
        // A registered phone is its own account's: no other tenant may ring it (nor learn
        // whether it is registered).
        if let Target::User(user) = &o.to
            && let Some(account) = &o.account
            && self.routing.user_accounts.get(user) != Some(account)
        {
            return Err(CallError::NotAllowed(format!("client:{user}")));
        }
        let dest = match &o.to {
            Target::Number(n) => self.resolve_number(now, n)?,
            Target::User(u) => self.resolve_user(now, u)?,
            Target::Uri { uri, next_hop } => {
                if !self.routing.may_dial(next_hop.ip()) {
                    return Err(CallError::NotAllowed(uri.to_string()));
                }
                let dest = uri_destination(&self.ua, uri, *next_hop)?;
                if let Some(name) = tls_name(&self.routing, uri, *next_hop, &dest.peer) {
                    (self.outputs).push_back(super::Output::TlsName {
                        addr: *next_hop,
                        name,
                    });
                }
                dest
            }
            Target::Node { uri, next_hop } => uri_destination(&self.ua, uri, *next_hop)?,
        };
        let parent = match &o.parent {
            Some(sid) => Some(self.calls.named(sid)?),
            None => None,
        };
        let parent_call = parent.and_then(|k| self.calls.get(&k));
        let account = o
            .account
            .clone()
            .or_else(|| parent_call.and_then(|c| c.record.account_sid.clone()));
        if let (Some(caller_ids), Some(account), false) =
            (&self.config.caller_ids, &account, o.system)
        {
            let forwarded: Vec<&str> = parent_call
                .map(|c| vec![c.record.from.as_str(), c.record.to.as_str()])
                .unwrap_or_default();
            if !caller_ids.allows(account, &o.from, &forwarded) {
                metrics::counter!("switchboard_calls_refused_total", "reason" => "caller-id")
                    .increment(1);
                return Err(CallError::CallerIdNotAllowed(o.from.clone()));
            }
        }
        if let (Some(limits), Some(account)) = (&self.config.account_limits, &account) {
            let live = self.calls.of_account(account);
            if let Err(e) = limits.admit(account, live, now) {
                metrics::counter!("switchboard_calls_refused_total", "reason" => "account-limit")
                    .increment(1);
                return Err(CallError::AccountLimit(e));
            }
        }
        let near = parent_call.map(|c| c.own().side.endpoint);
        let endpoint = self.media.allocate(near).map_err(|_| CallError::NoMedia)?;
        let media = (self.routing).peer_media(dest.trunk.as_deref(), dest.user.as_deref());
        let mut side = Side::new(endpoint, media, &dest.peer);
        let body = side.offer(&our_offer());
        let id = new_call_sid(self.wall);
        // A browser client's caller ID (`client:bob`) is not a SIP user: its SIP user is.
        let sip_from = match (o.from.strip_prefix("client:"), account.as_deref()) {
            (Some(identity), Some(account)) => {
                crate::call::dial_plan::client_user(account, identity)
            }
            _ => o.from.clone(),
        };
        let from_uri = self.ua.local_uri(&sip_from, &dest.peer);
        let from = match o.display_name.as_deref() {
            Some(name) => format!("{} <{from_uri}>", quoted(name)),
            None => format!("<{from_uri}>"),
        };
        let record = CallRecord {
            id: id.clone(),
            from: o.from.clone(),
            to: dest.number.clone(),
            from_uri,
            to_uri: dest.uri.to_string(),
            trunk_in: None,
            user_in: None,
            trunk_out: dest.trunk.clone(),
            user_out: dest.user.clone(),
            direction: if o.parent.is_some() {
                Direction::OutboundDial
            } else {
                Direction::OutboundApi
            },
            parent_id: o.parent.clone(),
            account_sid: o.account.clone().or_else(|| {
                parent
                    .and_then(|k| self.calls.get(&k))
                    .and_then(|c| c.record.account_sid.clone())
            }),
            status: CallStatus::Queued,
            sip_code: None,
            hangup_by: None,
            hangup_cause: None,
            sip_call_id: String::new(),
            sip_tags: Default::default(),
            started_at: self.wall,
            answered_at: None,
            ended_at: None,
            duration_secs: 0,
            legs: Vec::new(),
        };
        // A user rings at each of its devices (registrations), the first of them on the
        // call's own leg.
        let others: Vec<InviteParams> = match &o.to {
            Target::User(u) => (super::fork::other_devices(&self.ua, now, u).into_iter())
                .map(|d| InviteParams {
                    headers: o.headers.clone(),
                    ..d.invite(from.clone(), Some(body.clone()), o.ring_timeout)
                })
                .collect(),
            _ => Vec::new(),
        };
        let invite = InviteParams {
            headers: o.headers,
            ..dest.invite(from, Some(body), o.ring_timeout)
        };
        let leg = self.ua.invite(now, invite);
        self.accept_from_trunk(leg, dest.trunk.as_deref());
        let mut own = Leg::sip("leg", leg, side);
        own.name_dialog(&self.ua, leg);
        let (sip_call_id, sip_tags) = (own.sip_call_id.clone(), own.sip_tags.clone());
        let key = self.insert_call(record, vec![own], None, Controller::App(Some(events)));
        let call = self.calls.get_mut(&key).expect("just inserted");
        call.record.sip_call_id = sip_call_id.unwrap_or_default();
        call.record.sip_tags = sip_tags;
        call.record.status = CallStatus::Initiated;
        let _span = call.span.clone().entered();
        info!(to = %call.record.to, trunk = ?call.record.trunk_out, user = ?call.record.user_out, "originating");
        self.cdr.save(call.record.clone());
        drop(_span);
        if let Some((call, mut cx)) = self.call_mut(key) {
            call.ring_devices(&mut cx, now, 0, others);
        }
        self.emit(key, EventKind::Initiated);
        Ok(id)
    }

    pub(super) fn resolve_number(
        &self,
        now: Instant,
        number: &str,
    ) -> Result<super::admission::Destination, CallError> {
        let up = |trunk: &str| self.trunk_takes_calls(trunk);
        super::admission::resolve(&self.routing, &self.ua, now, number, up)
            .map_err(CallError::NoRoute)
    }

    pub(super) fn resolve_user(
        &self,
        now: Instant,
        user: &str,
    ) -> Result<super::admission::Destination, CallError> {
        super::admission::resolve_user(&self.ua, now, user).map_err(CallError::NoRoute)
    }
}

/// The name the certificate at `next_hop` must carry when `uri` is dialed over TLS by a host
/// name (not a trunk's address, whose `tls_name` rules): that name, not the address it
/// resolved to.
pub(super) fn tls_name(
    routing: &super::dial_plan::DialPlan,
    uri: &Uri,
    next_hop: std::net::SocketAddr,
    peer: &Peer,
) -> Option<rustls::pki_types::ServerName<'static>> {
    let host = uri.host_with_port.host.to_string();
    let literal = (host.trim_start_matches('[').trim_end_matches(']'))
        .parse::<std::net::IpAddr>()
        .is_ok();
    let trunk = routing.trunks.iter().any(|t| t.address == next_hop);
    if peer.transport != Transport::Tls || trunk || literal {
        return None;
    }
    crate::infra::tls::server_name(&host)
}

/// A destination given as a SIP URI, sent to the address its host resolved to.
pub(super) fn uri_destination(
    ua: &switchboard_sip::ua::UserAgent,
    uri: &Uri,
    next_hop: std::net::SocketAddr,
) -> Result<super::admission::Destination, CallError> {
    let text = uri.to_string();
    let transport = Transport::of_uri(&text)
        .ok_or_else(|| CallError::BadArgument(format!("no transport served for {text}")))?;
    let peer: Peer = ua
        .peer_for(transport, next_hop)
        .ok_or_else(|| CallError::BadArgument(format!("no {transport:?} listener for {text}")))?;
    Ok(super::admission::Destination {
        number: uri.user().unwrap_or_default().to_owned(),
        to: format!("<{text}>"),
        uri: uri.clone(),
        peer,
        credentials: None,
        trunk: None,
        user: None,
        features: Default::default(),
        fallback: Vec::new(),
    })
}

/// A display name as an RFC 3261 quoted-string: `"` and `\` escaped, control characters
/// (which no header may carry) dropped.
pub(super) fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
