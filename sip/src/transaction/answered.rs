//! Requests answered once, without a transaction (see [`TransactionLayer::respond_once`]),
//! remembered by their transaction key so that a copy of the request gets the same answer
//! again instead of being taken for a new one. A non-INVITE's final response (a BYE's 200)
//! ends its transaction the same way.
//!
//! A refusal (an overloaded node's 503, a 403 for an unknown source, a route's 404) is the
//! cheapest thing a server sends, and must stay cheap when it is most of the traffic: a kept
//! INVITE transaction repeats its final response until ACKed (Timer G) and lingers 5 s
//! after (Timer I), which at twice a node's capacity cost more than the calls it carried.
//! Sending the response once is what a stateless server does (RFC 3261 §16.11): the
//! caller's own retransmissions, until its Timer B (64·T1), make up for a lost response, and
//! each copy is answered here with the same bytes — once per copy, so a forged source never
//! gets more than was sent in its name. An ACK for the response ends the need to remember.
//!
//! [`TransactionLayer::respond_once`]: super::TransactionLayer::respond_once

use super::TxKey;
use crate::FastMap;
use crate::transport::Peer;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

/// Answers remembered at once, at most; past it the oldest is forgotten early (a copy of its
/// request is then taken as new, as it would be without this memory: a BYE's gets 481 from
/// the dialog layer). Refusals are forgotten when ACKed, so under overload they are a few
/// hundred; BYEs' final responses are kept their 64·T1 (32 s), so this holds those of 4,000
/// calls a second (about 0.5 kB each, most of it the response's bytes).
const MAX_ANSWERED: usize = 131_072;

#[derive(Debug, Default)]
pub(super) struct Answered {
    by_key: FastMap<TxKey, (Instant, Peer, Bytes)>,
    /// Keys in the order remembered (constant lifetime: the front expires first). A key
    /// forgotten early stays here until its time, and counts against the cap.
    order: VecDeque<(Instant, TxKey)>,
}

impl Answered {
    /// Remembers the answer `data` sent to `peer` for the request of `key` until `until`.
    pub(super) fn remember(
        &mut self,
        now: Instant,
        until: Instant,
        key: TxKey,
        peer: Peer,
        data: Bytes,
    ) {
        self.expire(now);
        if self.order.len() >= MAX_ANSWERED {
            self.pop_oldest();
        }
        self.order.push_back((until, key.clone()));
        self.by_key.insert(key, (until, peer, data));
    }

    /// The answer to send again for a copy of a remembered request, and where.
    pub(super) fn get(&mut self, now: Instant, key: &TxKey) -> Option<(Peer, Bytes)> {
        self.expire(now);
        self.by_key.get(key).map(|(_, p, d)| (*p, d.clone()))
    }

    /// Forgets a request whose answer was acknowledged; whether it was remembered.
    pub(super) fn forget(&mut self, now: Instant, key: &TxKey) -> bool {
        self.expire(now);
        self.by_key.remove(key).is_some()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(until, _)| *until <= now) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((until, key)) = self.order.pop_front() else {
            return;
        };
        // Only the entry this position was made for: the same key remembered again later
        // has its own, later, position.
        if self.by_key.get(&key).is_some_and(|(u, _, _)| *u == until) {
            self.by_key.remove(&key);
        }
    }
}
