//! Non-INVITE server transaction (RFC 3261 §17.2.2).

use super::{Step, Timers};
use crate::message::Response;
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct NonInviteServer {
    state: State,
    last_response: Option<Bytes>,
    reliable: bool,
    timers: Timers,
    /// Timer J.
    linger: Option<Instant>,
}

impl NonInviteServer {
    pub fn new(reliable: bool, timers: Timers) -> Self {
        Self {
            state: State::Trying,
            last_response: None,
            reliable,
            timers,
            linger: None,
        }
    }

    /// The transaction user's response; returns the bytes to send.
    pub fn respond(&mut self, now: Instant, response: &Response) -> Option<Bytes> {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return None;
        }
        let encoded = response.encode();
        self.last_response = Some(encoded.clone());
        if response.code < 200 {
            self.state = State::Proceeding;
        } else {
            self.state = State::Completed;
            let j = if self.reliable {
                Duration::ZERO
            } else {
                self.timers.timeout()
            };
            self.linger = Some(now + j);
        }
        Some(encoded)
    }

    /// Whether the transaction user may still answer (no final response yet).
    pub fn is_answerable(&self) -> bool {
        matches!(self.state, State::Trying | State::Proceeding)
    }

    /// A retransmitted request: absorbed in Trying, answered with the last response after.
    pub fn on_retransmission(&self) -> Step {
        match self.state {
            State::Proceeding | State::Completed => Step {
                transmit: self.last_response.clone(),
                event: None,
            },
            _ => Step::default(),
        }
    }

    pub fn on_timer(&mut self, now: Instant) -> Step {
        if self.linger.is_some_and(|t| t <= now) {
            self.state = State::Terminated;
            self.linger = None;
        }
        Step::default()
    }

    pub fn next_timer(&self) -> Option<Instant> {
        self.linger
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::tests::{bye, response_to};

    #[test]
    fn absorbs_then_replays_then_timer_j() {
        let t0 = Instant::now();
        let mut tx = NonInviteServer::new(false, Timers::default());
        assert!(
            tx.on_retransmission().transmit.is_none(),
            "Trying absorbs retransmissions"
        );
        tx.respond(t0, &response_to(&bye(), 200));
        assert!(
            tx.on_retransmission().transmit.is_some(),
            "Completed replays the final response"
        );
        assert_eq!(tx.next_timer(), Some(t0 + Duration::from_secs(32)));
        tx.on_timer(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_terminates_at_once() {
        let t0 = Instant::now();
        let mut tx = NonInviteServer::new(true, Timers::default());
        tx.respond(t0, &response_to(&bye(), 200));
        assert_eq!(tx.next_timer(), Some(t0));
    }
}
