//! Transports: where a message came from or goes to, and the tokio shells that move bytes.

use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// Reliable transports need no retransmissions (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one TCP connection.
pub type ConnId = u64;

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

pub use net::{Inbound, ListenSpec, Sender, TransportLimits, TransportStats, TrustedSources, bind};
