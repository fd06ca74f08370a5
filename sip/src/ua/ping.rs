//! OPTIONS pings outside any dialog (RFC 3261 §11): how a trunk's health is probed. The caller
//! keeps at most one ping per peer in flight; the answer, or the transaction's timeout (as
//! 408), comes back as [`UaEvent::Pong`].

use super::{UaEvent, UserAgent, new_call_id, random_token};
use crate::message::{Method, Request, Uri};
use crate::transaction::TxId;
use crate::transport::Peer;
use std::time::Instant;

/// Identifies one ping, to match its [`UaEvent::Pong`].
pub type PingId = TxId;

impl UserAgent {
    /// Sends `OPTIONS uri` to `peer`; `None` when the request cannot be built or sent.
    pub fn ping(&mut self, now: Instant, peer: Peer, uri: &Uri) -> Option<PingId> {
        let mut req = Request::new(Method::Options, uri.clone());
        let h = &mut req.headers;
        h.push("Via", self.via(&peer));
        h.push("Max-Forwards", "70");
        h.push(
            "From",
            format!(
                "<{}>;tag={}",
                self.local_uri("switchboard", &peer),
                random_token()
            ),
        );
        h.push("To", format!("<{uri}>"));
        h.push("Call-ID", new_call_id(self.config.shard, None));
        h.push("CSeq", "1 OPTIONS");
        h.push("Accept", "application/sdp");
        h.push("User-Agent", self.config.user_agent.as_str());
        let tx = self.layer.send_request(now, req, peer)?;
        self.pings.insert(tx);
        Some(tx)
    }

    /// A final response to a ping (provisional ones are passed over); `false` when `tx` is not
    /// one.
    pub(super) fn on_pong(&mut self, tx: TxId, code: u16) -> bool {
        if !self.pings.contains(&tx) {
            return false;
        }
        if code >= 200 {
            self.pings.remove(&tx);
            self.events.push_back(UaEvent::Pong { ping: tx, code });
        }
        true
    }
}
