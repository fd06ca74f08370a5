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
    rustls::pki_types::ServerName::try_from(host).ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dial_plan::{DialPlan, Trunk};
    use std::net::SocketAddr;
    use switchboard_media::SourcePolicy;

    /// A URI dialed over TLS by a host name has the transports check that name in the
    /// certificate there; one dialed by address, over another transport, or at a trunk's
    /// address (whose `tls_name` rules) tells them nothing.
    #[test]
    fn a_tls_uri_dialed_by_name_names_the_certificate_to_expect() {
        let carrier: SocketAddr = "10.0.0.3:5061".parse().unwrap();
        let routing = DialPlan {
            trunks: vec![Trunk {
                name: "carrier".into(),
                address: carrier,
                transport: Transport::Tls,
                inbound_sources: Vec::new(),
                credentials: None,
                rtp_source: SourcePolicy::Strict,
                srtp: Default::default(),
                trusted: true,
                tls: None,
                options_interval: None,
            }],
            ..DialPlan::default()
        };
        let hop: SocketAddr = "10.0.0.9:5061".parse().unwrap();
        let peer = |transport, remote| Peer {
            transport,
            remote,
            local: "10.0.0.1:5061".parse().unwrap(),
            conn: None,
        };
        let named = |uri: &str, hop: SocketAddr, peer: Peer| {
            let uri = Uri::try_from(uri).unwrap();
            tls_name(&routing, &uri, hop, &peer).map(|name| name.to_str().into_owned())
        };
        let tls = peer(Transport::Tls, hop);
        assert_eq!(
            named("sips:alice@pbx.example.com", hop, tls).as_deref(),
            Some("pbx.example.com")
        );
        assert_eq!(named("sips:alice@10.0.0.9:5061", hop, tls), None);
        let udp = peer(Transport::Udp, hop);
        assert_eq!(named("sip:alice@pbx.example.com", hop, udp), None);
        let at_trunk = peer(Transport::Tls, carrier);
        assert_eq!(
            named("sips:bob@carrier.example.com", carrier, at_trunk),
            None
        );
    }
}
