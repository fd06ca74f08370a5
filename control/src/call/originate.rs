//! What placing a call to a SIP URI needs beside the core's request handler
//! (`CallCore::originate`, which resolves an application's or a `<Dial>`'s
//! [`Originate`](super::api::Originate) to a trunk, a registered user or a URI, checks the
//! account's limits and caller IDs, and sends the INVITE): the URI's destination, the name its
//! certificate must carry, a display name quoted for the From header.

use super::api::CallError;
use switchboard_sip::message::Uri;
use switchboard_sip::transport::{Peer, Transport};

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
