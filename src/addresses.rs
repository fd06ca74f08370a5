//! The addresses peers are told to reach this node at: the configured public address, the
//! bound one, or the default route's when bound to every interface.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

/// The address peers should use to reach a socket bound to `bound`.
pub(crate) fn advertised_ip(public: Option<IpAddr>, bound: IpAddr) -> IpAddr {
    public.unwrap_or_else(|| {
        if bound.is_unspecified() {
            primary_ip().unwrap_or(Ipv4Addr::LOCALHOST.into())
        } else {
            bound
        }
    })
}

/// The local address of the default route. Connecting a UDP socket sends nothing.
fn primary_ip() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// `ip:port`, bracketed for IPv6, as SIP headers and SDP are given it.
pub(crate) fn host_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}
