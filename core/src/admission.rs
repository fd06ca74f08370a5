//! Who is calling and where the call goes: the trunk an INVITE arrived on (by source address,
//! with digest when the trunk has credentials) or a registered user (digest), then the route of
//! the dialed number to a trunk or to a user's current registration.

use crate::dial_plan::{DialPlan, RouteFeatures, Target};
use std::net::IpAddr;
use std::time::Instant;
use switchboard_sip::auth::{UNKNOWN_USER_PASSWORD, Verdict};
use switchboard_sip::message::Request;
use switchboard_sip::message::Uri;
use switchboard_sip::message::headers::uri_of_name_addr;
use switchboard_sip::transport::Peer;
use switchboard_sip::ua::{Body, InviteParams, UserAgent};
use tracing::info;

/// The decision on an incoming INVITE before routing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Another node's call, visiting a room held here ([`super::visit`]).
    Visit,
    Trunk(String),
    User(String),
    /// Digest credentials are needed (again, when `stale`).
    Challenge {
        stale: bool,
    },
    Forbidden,
}

pub(crate) fn admit(
    routing: &DialPlan,
    domains: &[crate::dial_plan::DomainSource],
    ua: &mut UserAgent,
    request: &Request,
    source: IpAddr,
) -> Admission {
    let mut check =
        |user: &str, password: &str, on_ok: Admission| match ua.verify(request, user, password) {
            Verdict::Ok => on_ok,
            Verdict::Stale => Admission::Challenge { stale: true },
            Verdict::Invalid => Admission::Challenge { stale: false },
        };
    // A tenant's trunk, named by the host of its termination URI: its checks or nothing (a
    // name another tenant's INVITE borrows gets no further than its owner's would).
    let named = [
        request.uri.host_with_port.host.to_string(),
        (request.headers.get("To").and_then(uri_of_name_addr))
            .map(|to| to.host_with_port.host.to_string())
            .unwrap_or_default(),
    ];
    if let Some(t) = named.iter().find_map(|host| routing.tenant_trunk_for(host)) {
        return admit_tenant(t, ua, request, source);
    }
    if let Some(trunk) = routing.trunk_for_source(source) {
        return match &trunk.credentials {
            Some((user, password)) => check(user, password, Admission::Trunk(trunk.name.clone())),
            None => Admission::Trunk(trunk.name.clone()),
        };
    }
    // A SIP domain's caller from an address its access control lists take: the domain's.
    let to_host = (request.headers.get("To").and_then(uri_of_name_addr))
        .map(|to| to.host_with_port.host.to_string().to_ascii_lowercase());
    if let Some(host) = to_host
        && let Some(d) = (domains.iter())
            .find(|d| d.domain == host && d.nets.iter().any(|n| n.contains(&source)))
    {
        return Admission::User(format!("@{}", d.domain));
    }
    // Not a trunk: a registered user placing a call, identified by From and proven by digest.
    let from = request.headers.get("From").and_then(uri_of_name_addr);
    let from_user = (from.as_ref()).and_then(|u| u.user().map(str::to_owned));
    // A SIP domain's user is known by user and host (`alice@acme.sip.example.com`).
    let login =
        (from.as_ref()).and_then(|from| switchboard_sip::registrar::login_of(&routing.users, from));
    // A tenant's trunk that admits by address (a Telnyx IP connection): after the carriers,
    // the SIP domains and the logins — a phone behind an address a tenant claims (a shared
    // NAT) still calls as itself, and no tenant's claim takes another's phones' calls.
    if login.is_none()
        && let Some(t) = routing.tenant_trunk_for_source(source)
    {
        return admit_tenant(t, ua, request, source);
    }
    match login {
        Some((key, password, user)) => check(&user, password, Admission::User(key.clone())),
        // With no users configured there is nothing to guess: a stranger is refused. With users,
        // an unknown name is challenged like a known one with the wrong password, so INVITEs do
        // not tell a scanner which names exist.
        None if routing.users.is_empty() => Admission::Forbidden,
        None => {
            // Checked only so the answer costs what a known name's does.
            let user = from_user.unwrap_or_default();
            check(&user, UNKNOWN_USER_PASSWORD, Admission::Forbidden);
            Admission::Challenge { stale: false }
        }
    }
}

/// An INVITE naming a tenant's trunk: from one of its addresses when it has any, proving one
/// of its credentials when it has any; a trunk with neither admits nothing (Twilio's
/// termination needs an IP access control list or a credential list).
fn admit_tenant(
    t: &crate::dial_plan::TenantTrunk,
    ua: &mut UserAgent,
    request: &Request,
    source: IpAddr,
) -> Admission {
    let sources = &t.trunk.inbound_sources;
    if (sources.is_empty() && t.logins.is_empty())
        || (!sources.is_empty() && !sources.iter().any(|n| n.contains(&source)))
    {
        info!(trunk = %t.trunk.name, %source, "INVITE to a tenant's trunk from an address it does not take");
        return Admission::Forbidden;
    }
    if t.logins.is_empty() {
        return Admission::Trunk(t.trunk.name.clone());
    }
    // The user the INVITE's credentials name, when it is one of the trunk's.
    let named = (request.headers.all("Proxy-Authorization"))
        .filter_map(switchboard_sip::auth::DigestParams::parse)
        .find_map(|p| {
            let user = p.get("username")?;
            t.logins.iter().find(|(u, _)| u == user).cloned()
        });
    let (user, password) = named.unwrap_or_else(|| (String::new(), UNKNOWN_USER_PASSWORD.into()));
    match ua.verify(request, &user, &password) {
        Verdict::Ok if !user.is_empty() => Admission::Trunk(t.trunk.name.clone()),
        Verdict::Stale => Admission::Challenge { stale: true },
        _ => Admission::Challenge { stale: false },
    }
}

/// Where the outgoing leg goes.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    /// The dialed number (or user).
    pub(crate) number: String,
    pub(crate) uri: Uri,
    /// Name-addr for the To header.
    pub(crate) to: String,
    pub(crate) peer: Peer,
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) trunk: Option<String>,
    pub(crate) user: Option<String>,
    /// What the route does to the call once answered.
    pub(crate) features: RouteFeatures,
    /// The route's trunks still to try, in order, should this one fail with 408 or 5xx.
    pub(crate) fallback: Vec<String>,
}

impl Destination {
    /// An INVITE from `from` to this destination offering `body`, given up when unanswered
    /// after `ring_timeout`: what every outgoing leg starts from.
    pub(crate) fn invite(
        &self,
        from: String,
        body: Option<Body>,
        ring_timeout: std::time::Duration,
    ) -> InviteParams {
        InviteParams {
            uri: self.uri.clone(),
            from,
            to: self.to.clone(),
            peer: self.peer,
            body,
            credentials: self.credentials.clone(),
            max_forwards: 70,
            ring_timeout: Some(ring_timeout),
            headers: Vec::new(),
            asserted: Vec::new(),
        }
    }
}

/// Routes a dialed number to the first of its route's trunks that `up` says is up (503 when
/// none is), the others kept to fail over to; the error is the SIP status for the caller.
pub(crate) fn resolve(
    routing: &DialPlan,
    ua: &UserAgent,
    now: Instant,
    (number, account): (&str, Option<&str>),
    up: impl Fn(&str) -> bool,
) -> Result<Destination, u16> {
    let route = routing.route(number, account).ok_or(404u16)?;
    let mut dest = match &route.target {
        Target::Trunks(names) => {
            let mut candidates = names.iter().filter(|n| up(n));
            let first = candidates.next().ok_or(503u16)?;
            let mut dest = trunk_destination(routing, ua, number, first)?;
            dest.fallback = candidates.cloned().collect();
            dest
        }
        Target::Shares(shares) => {
            let order = crate::dial_plan::share_order(shares, |n| rand::random_range(0..n.max(1)));
            let mut candidates =
                (order.into_iter()).filter(|n| routing.trunk(n).is_some() && up(n));
            let first = candidates.next().ok_or(503u16)?;
            let mut dest = trunk_destination(routing, ua, number, &first)?;
            dest.fallback = candidates.collect();
            dest
        }
        Target::User(user) => resolve_user(ua, now, user)?,
    };
    dest.features = route.features.clone();
    Ok(dest)
}

/// `number` at trunk `name`.
pub(crate) fn trunk_destination(
    routing: &DialPlan,
    ua: &UserAgent,
    number: &str,
    name: &str,
) -> Result<Destination, u16> {
    let trunk = routing.trunk(name).ok_or(500u16)?;
    let peer = ua.peer_for(trunk.transport, trunk.address).ok_or(500u16)?;
    let transport = trunk.transport.uri_param();
    let uri = Uri::try_from(format!("sip:{number}@{}{transport}", trunk.address).as_str())
        .map_err(|_| 484u16)?;
    Ok(Destination {
        number: number.to_owned(),
        to: format!("<sip:{number}@{}>", trunk.address),
        uri,
        peer,
        credentials: trunk.credentials.clone(),
        trunk: Some(trunk.name.clone()),
        user: None,
        features: RouteFeatures::default(),
        fallback: Vec::new(),
    })
}

/// A registered user's current registration; registered but offline users are temporarily
/// unavailable (480).
pub(crate) fn resolve_user(ua: &UserAgent, now: Instant, user: &str) -> Result<Destination, u16> {
    resolve_user_at(ua, now, user, 0)
}

/// A registered user's registration number `index` (its devices in the registrar's order).
pub(crate) fn resolve_user_at(
    ua: &UserAgent,
    now: Instant,
    user: &str,
    index: usize,
) -> Result<Destination, u16> {
    let binding = ua.lookup(now, user).into_iter().nth(index).ok_or(480u16)?;
    Ok(Destination {
        number: user.to_owned(),
        // A SIP domain's user is its own address.
        to: if user.contains('@') {
            format!("<sip:{user}>")
        } else {
            format!("<sip:{user}@{}>", ua.config().realm)
        },
        uri: binding.uri.clone(),
        peer: binding.target,
        credentials: None,
        trunk: None,
        user: Some(user.to_owned()),
        features: RouteFeatures::default(),
        fallback: Vec::new(),
    })
}
