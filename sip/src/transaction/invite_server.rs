//! INVITE server transaction (RFC 3261 §17.2.1, with the Accepted state of RFC 6026 §7.1).
//!
//! Unlike the letter of RFC 3261, this machine also retransmits its 2xx (T1 doubling up to T2,
//! §13.3.1.4) until the transaction user reports the ACK, so dialogs need no timers of their own.

use super::{Backoff, Outcome, Step, Timers, earliest};
use crate::message::Response;
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Proceeding,
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

#[derive(Debug)]
pub struct InviteServer {
    state: State,
    last_response: Option<Bytes>,
    reliable: bool,
    timers: Timers,
    acked: bool,
    /// Timer G (Completed) or the 2xx retransmission (Accepted); unreliable transports only.
    retransmit: Option<Backoff>,
    /// Timer H (Completed) or L (Accepted).
    give_up: Option<Instant>,
    /// Timer I (Confirmed).
    linger: Option<Instant>,
    /// The 100 Trying, held until its time in case the transaction user answers first.
    trying: Option<(Instant, Bytes)>,
}

impl InviteServer {
    pub fn new(reliable: bool, timers: Timers) -> Self {
        Self {
            state: State::Proceeding,
            last_response: None,
            reliable,
            timers,
            acked: false,
            retransmit: None,
            give_up: None,
            linger: None,
            trying: None,
        }
    }

    /// Sends `trying` (the 100) at `at` unless the transaction user has answered by then
    /// (RFC 3261 §17.2.1 asks for it only when the TU will not answer within 200 ms). A
    /// request refused at once — a 403 to a stranger, a 407 challenge — then costs one
    /// response, not two, whatever source address it claimed.
    pub fn schedule_trying(&mut self, at: Instant, trying: Bytes) {
        if self.state == State::Proceeding && self.last_response.is_none() {
            self.trying = Some((at, trying));
        }
    }

    /// The transaction user's response; returns the bytes to send (nothing once a final
    /// response was sent).
    pub fn respond(&mut self, now: Instant, response: &Response) -> Option<Bytes> {
        if self.state != State::Proceeding {
            return None;
        }
        let encoded = response.encode();
        self.trying = None;
        self.last_response = Some(encoded.clone());
        match response.code {
            100..=199 => {}
            200..=299 => {
                self.state = State::Accepted;
                self.start_response_retransmission(now);
            }
            _ => {
                self.state = State::Completed;
                self.start_response_retransmission(now);
            }
        }
        Some(encoded)
    }

    fn start_response_retransmission(&mut self, now: Instant) {
        self.retransmit =
            (!self.reliable).then(|| Backoff::start(now, self.timers.t1, Some(self.timers.t2)));
        self.give_up = Some(now + self.timers.timeout());
    }

    /// A retransmitted INVITE: answered with the last response sent, if any (the 100 at once
    /// if it was being held).
    pub fn on_retransmission(&mut self) -> Step {
        if let Some((_, trying)) = self.trying.take() {
            self.last_response = Some(trying);
        }
        match self.state {
            State::Proceeding | State::Accepted | State::Completed => Step {
                transmit: self.last_response.clone(),
                event: None,
            },
            _ => Step::default(),
        }
    }

    /// An ACK: for an error response it matched this transaction's branch; for a 2xx the
    /// transaction user matched it to the dialog.
    pub fn on_ack(&mut self, now: Instant) {
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                self.retransmit = None;
                self.give_up = None;
                self.linger = Some(
                    now + if self.reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    },
                );
            }
            State::Accepted => {
                // Keep absorbing INVITE retransmissions until timer L, but stop sending the 2xx,
                // and let it go: a copy of the INVITE after the ACK is absorbed unanswered
                // (RFC 6026 §7.1), and the 2xx (its SDP) held 64·T1 for every answered call
                // is memory for nothing.
                self.acked = true;
                self.retransmit = None;
                self.last_response = None;
            }
            _ => {}
        }
    }

    pub fn on_timer(&mut self, now: Instant) -> Step {
        if self.give_up.is_some_and(|t| t <= now) {
            let unacked = !self.acked;
            self.terminate();
            return if unacked {
                Step::event(Outcome::Timeout)
            } else {
                Step::default()
            };
        }
        if self.linger.is_some_and(|t| t <= now) {
            self.terminate();
            return Step::default();
        }
        if let Some((at, _)) = &self.trying
            && *at <= now
        {
            let (_, trying) = self.trying.take().expect("checked");
            self.last_response = Some(trying.clone());
            return Step {
                transmit: Some(trying),
                event: None,
            };
        }
        match &mut self.retransmit {
            Some(timer) if timer.at <= now => {
                timer.fire(now);
                Step {
                    transmit: self.last_response.clone(),
                    event: None,
                }
            }
            _ => Step::default(),
        }
    }

    pub fn next_timer(&self) -> Option<Instant> {
        earliest([
            self.trying.as_ref().map(|(at, _)| *at),
            self.retransmit.map(|t| t.at),
            self.give_up,
            self.linger,
        ])
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// True until a final response has been sent.
    pub fn is_proceeding(&self) -> bool {
        self.state == State::Proceeding
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.trying = None;
        self.retransmit = None;
        self.give_up = None;
        self.linger = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::tests::{invite, response_to};

    fn drain(tx: &mut InviteServer, t0: Instant) -> (Vec<u128>, Option<u128>) {
        let (mut sent, mut timeout) = (Vec::new(), None);
        while let Some(at) = tx.next_timer() {
            let step = tx.on_timer(at);
            if step.transmit.is_some() {
                sent.push((at - t0).as_millis());
            }
            if step.event.is_some() {
                timeout = Some((at - t0).as_millis());
            }
        }
        (sent, timeout)
    }

    #[test]
    fn error_response_retransmitted_by_timer_g_until_h() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(false, Timers::default());
        assert!(tx.respond(t0, &response_to(&invite(), 486)).is_some());
        let (sent, timeout) = drain(&mut tx, t0);
        assert_eq!(
            sent,
            [
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(timeout, Some(32_000), "timer H reports the missing ACK");
    }

    #[test]
    fn ack_confirms_then_timer_i() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(false, Timers::default());
        tx.respond(t0, &response_to(&invite(), 486));
        tx.on_ack(t0 + Duration::from_millis(20));
        assert_eq!(tx.next_timer(), Some(t0 + Duration::from_millis(5020)));
        let (sent, timeout) = drain(&mut tx, t0);
        assert!(sent.is_empty() && timeout.is_none());
        assert!(tx.is_terminated());
    }

    #[test]
    fn two_hundred_retransmitted_until_acked() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(false, Timers::default());
        tx.respond(t0, &response_to(&invite(), 180));
        assert!(
            tx.on_retransmission().transmit.is_some(),
            "provisional re-sent on INVITE retransmission"
        );
        tx.respond(t0, &response_to(&invite(), 200));
        assert!(
            tx.respond(t0, &response_to(&invite(), 200)).is_none(),
            "only one final response"
        );
        let s1 = tx.on_timer(t0 + Duration::from_millis(500));
        assert!(s1.transmit.is_some());
        let again = tx
            .on_retransmission()
            .transmit
            .expect("the 2xx, before the ACK");
        assert!(again.starts_with(b"SIP/2.0 200 "));
        tx.on_ack(t0 + Duration::from_millis(600));
        // After the ACK a copy of the INVITE is absorbed, and the 2xx is no longer held.
        let absorbed = tx.on_retransmission();
        assert!(absorbed.transmit.is_none() && absorbed.event.is_none());
        assert!(tx.last_response.is_none());
        assert!(!tx.is_terminated(), "it lingers until timer L");
        let (sent, timeout) = drain(&mut tx, t0);
        assert!(sent.is_empty(), "no 2xx after the ACK");
        assert!(timeout.is_none());
        assert!(tx.is_terminated());
    }

    #[test]
    fn unacked_200_times_out() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(true, Timers::default());
        tx.respond(t0, &response_to(&invite(), 200));
        let (sent, timeout) = drain(&mut tx, t0);
        assert!(sent.is_empty(), "reliable transport: no retransmission");
        assert_eq!(timeout, Some(32_000));
    }
}
