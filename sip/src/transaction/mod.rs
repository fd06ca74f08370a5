//! RFC 3261 §17 transactions as sans-IO state machines, plus the layer that matches messages to
//! them and runs their timers. Nothing here touches a socket or a clock: callers pass `now` in and
//! drain what to send.
//!
//! The INVITE machines include the "Accepted" state of RFC 6026: a client absorbs 2xx
//! retransmissions for 64·T1, and a server retransmits its 2xx until the TU reports the ACK.

mod answered;
mod downstream;
mod invite_client;
mod invite_server;
mod key;
mod layer;
mod non_invite_client;
mod non_invite_server;

pub use invite_client::InviteClient;
pub use invite_server::InviteServer;
pub use key::TxKey;
pub use layer::{TransactionLayer, TxEvent, TxId};
pub use non_invite_client::NonInviteClient;
pub use non_invite_server::NonInviteServer;

use crate::message::Response;
use bytes::Bytes;
use std::time::Duration;

/// RFC 3261 timer base values (§17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip estimate; retransmission intervals start here.
    pub t1: Duration,
    /// Cap on non-INVITE and response retransmission intervals.
    pub t2: Duration,
    /// Longest time a message stays in the network.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// Timers B, F, H, J, L and M: 64·T1.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// What one input to a transaction produced: at most one message to send and one thing to tell
/// the transaction user.
#[derive(Debug, Default)]
pub struct Step {
    pub transmit: Option<Bytes>,
    pub event: Option<Outcome>,
}

/// What a transaction reports to its user.
#[derive(Debug)]
pub enum Outcome {
    /// A response for the client transaction's user (first of its kind, or a 2xx retransmission).
    Response(Response),
    /// Timer B/F: no final response; timer H: no ACK for a final error response; timer L
    /// (our Accepted-state variant): no ACK for a 2xx.
    Timeout,
}

impl Step {
    fn send(data: Bytes) -> Self {
        Self {
            transmit: Some(data),
            event: None,
        }
    }

    fn event(event: Outcome) -> Self {
        Self {
            transmit: None,
            event: Some(event),
        }
    }
}

/// A retransmission timer that doubles up to an optional cap.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    at: std::time::Instant,
    interval: Duration,
    cap: Option<Duration>,
}

impl Backoff {
    fn start(now: std::time::Instant, first: Duration, cap: Option<Duration>) -> Self {
        Self {
            at: now + first,
            interval: first,
            cap,
        }
    }

    fn fire(&mut self, now: std::time::Instant) {
        let next = self.interval * 2;
        self.interval = self.cap.map_or(next, |cap| next.min(cap));
        self.at = now + self.interval;
    }
}

fn earliest(
    times: impl IntoIterator<Item = Option<std::time::Instant>>,
) -> Option<std::time::Instant> {
    times.into_iter().flatten().min()
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::message::{Method, Request, Response, SipMessage};

    fn request(method: Method, branch: &str) -> Request {
        let text = format!(
            "{method} sip:bob@192.0.2.4 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.9:5062;branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@192.0.2.9>;tag=caller\r\n\
             To: <sip:bob@192.0.2.4>\r\n\
             Call-ID: tx-test@192.0.2.9\r\n\
             CSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        match SipMessage::parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    pub(crate) fn invite() -> Request {
        request(Method::Invite, "z9hG4bKclient1")
    }

    pub(crate) fn bye() -> Request {
        request(Method::Bye, "z9hG4bKclient2")
    }

    pub(crate) fn response_to(request: &Request, code: u16) -> Response {
        request.response(code, Some("callee"))
    }
}
