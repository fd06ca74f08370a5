//! Transports: where a message came from or goes to, and the tokio shells that move bytes.

use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS over TCP (RFC 3261 §26.2): a stream transport like TCP, encrypted, the
    /// peer's certificate checked against its name.
    Tls,
    /// SIP over WebSocket (RFC 7118): one message per WebSocket message, on connections
    /// browsers and softphones open to us (we never open one).
    Ws,
    /// The same over TLS.
    Wss,
}

impl Transport {
    /// Reliable transports need no retransmissions (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The URI parameter that names it (`;transport=tcp`), empty for UDP (the default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
            Transport::Ws => ";transport=ws",
            Transport::Wss => ";transport=wss",
        }
    }

    /// The transport a URI asks for: its `transport` parameter, else TLS for `sips:`, else
    /// UDP (RFC 3263 §4.1 without the DNS steps); `None` for one not served (SCTP, WS…).
    pub fn of_uri(uri: &str) -> Option<Transport> {
        let lower = uri.to_ascii_lowercase();
        let param = lower
            .split(';')
            .skip(1)
            .find_map(|p| p.trim().strip_prefix("transport="))
            .map(|t| t.trim_end_matches('>'));
        match param {
            Some("udp") => Some(Transport::Udp),
            Some("tcp") => Some(Transport::Tcp),
            Some("tls") => Some(Transport::Tls),
            Some("ws") => Some(Transport::Ws),
            Some("wss") => Some(Transport::Wss),
            Some(_) => None,
            None if lower.trim_start_matches('<').starts_with("sips:") => Some(Transport::Tls),
            None => Some(Transport::Udp),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one TCP or TLS connection.
pub type ConnId = u64;

/// Where this host reaches a socket bound at `local`: loopback when it is bound to every
/// address (the node's legs to its own SIP go there).
pub fn reachable_locally(local: SocketAddr) -> SocketAddr {
    let mut at = local;
    if at.ip().is_unspecified() {
        at.set_ip(match at {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    at
}

/// The key a source address is counted under by per-address caps: an IPv6 address by its
/// /64 (one host, or one customer's network, holds a whole /64), an IPv4-mapped one as IPv4.
pub fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::IpAddr;
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// The far end of a message: the transport, the remote address, the local address it arrived
/// on or leaves from, and for stream transports the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub conn: Option<ConnId>,
}

/// Bytes to send to a peer.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub peer: Peer,
    pub data: Bytes,
}

mod net;

pub use net::{
    Inbound, ListenSpec, LocalLink, Sender, TlsPeers, TransportLimits, TransportStats,
    TrustedSources, bind, bind_sharded, read_sip_frames,
};

#[cfg(test)]
mod tests {
    use super::Transport;

    #[test]
    fn a_socket_on_every_address_is_reached_on_loopback() {
        let at = |s: &str| super::reachable_locally(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:5060"), "127.0.0.1:5060");
        assert_eq!(at("[::]:5061"), "[::1]:5061");
        assert_eq!(at("192.0.2.7:5060"), "192.0.2.7:5060");
    }

    #[test]
    fn a_uri_names_its_transport() {
        for (uri, t) in [
            ("sip:a@192.0.2.1", Some(Transport::Udp)),
            ("<sip:a@192.0.2.1:5080;transport=TCP>", Some(Transport::Tcp)),
            ("sip:a@192.0.2.1;lr;transport=tls", Some(Transport::Tls)),
            ("sips:a@example.com", Some(Transport::Tls)),
            ("<sips:a@example.com;transport=tcp>", Some(Transport::Tcp)),
            ("sip:a@192.0.2.1;transport=sctp", None),
        ] {
            assert_eq!(Transport::of_uri(uri), t, "{uri}");
        }
    }
}
