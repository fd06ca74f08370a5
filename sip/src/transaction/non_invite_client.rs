//! Non-INVITE client transaction (RFC 3261 §17.1.2).

use super::{Backoff, Outcome, Step, Timers, earliest};
use crate::message::{Request, Response};
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
pub struct NonInviteClient {
    state: State,
    encoded: Bytes,
    timers: Timers,
    reliable: bool,
    /// Timer E (unreliable transports only).
    retransmit: Option<Backoff>,
    /// Timer F.
    give_up: Option<Instant>,
    /// Timer K.
    linger: Option<Instant>,
}

impl NonInviteClient {
    /// Starts the transaction; the returned bytes are the request to send now.
    pub fn new(now: Instant, request: &Request, reliable: bool, timers: Timers) -> (Self, Bytes) {
        let encoded = request.encode();
        let tx = Self {
            state: State::Trying,
            encoded: encoded.clone(),
            timers,
            reliable,
            retransmit: (!reliable).then(|| Backoff::start(now, timers.t1, Some(timers.t2))),
            give_up: Some(now + timers.timeout()),
            linger: None,
        };
        (tx, encoded)
    }

    pub fn on_response(&mut self, now: Instant, response: Response) -> Step {
        match (self.state, response.code) {
            (State::Trying | State::Proceeding, 100..=199) => {
                if self.state == State::Trying {
                    self.state = State::Proceeding;
                    // In Proceeding, timer E fires every T2.
                    if let Some(t) = &mut self.retransmit {
                        t.interval = self.timers.t2;
                        t.at = now + self.timers.t2;
                    }
                }
                Step::event(Outcome::Response(response))
            }
            (State::Trying | State::Proceeding, _) => {
                self.state = State::Completed;
                self.retransmit = None;
                self.give_up = None;
                self.linger = Some(
                    now + if self.reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    },
                );
                Step::event(Outcome::Response(response))
            }
            _ => Step::default(),
        }
    }

    pub fn on_timer(&mut self, now: Instant) -> Step {
        if self.give_up.is_some_and(|t| t <= now) {
            self.terminate();
            return Step::event(Outcome::Timeout);
        }
        if self.linger.is_some_and(|t| t <= now) {
            self.terminate();
            return Step::default();
        }
        match &mut self.retransmit {
            Some(timer) if timer.at <= now => {
                timer.fire(now);
                Step::send(self.encoded.clone())
            }
            _ => Step::default(),
        }
    }

    pub fn next_timer(&self) -> Option<Instant> {
        earliest([self.retransmit.map(|t| t.at), self.give_up, self.linger])
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.retransmit = None;
        self.give_up = None;
        self.linger = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::tests::{bye, response_to};

    fn retransmissions(tx: &mut NonInviteClient, t0: Instant) -> (Vec<u128>, Option<u128>) {
        let (mut sent, mut timeout) = (Vec::new(), None);
        while let Some(at) = tx.next_timer() {
            let step = tx.on_timer(at);
            if step.transmit.is_some() {
                sent.push((at - t0).as_millis());
            }
            if matches!(step.event, Some(Outcome::Timeout)) {
                timeout = Some((at - t0).as_millis());
            }
        }
        (sent, timeout)
    }

    #[test]
    fn timer_e_caps_at_t2_and_f_gives_up() {
        let t0 = Instant::now();
        let (mut tx, _) = NonInviteClient::new(t0, &bye(), false, Timers::default());
        let (sent, timeout) = retransmissions(&mut tx, t0);
        // 0.5, 1.5, 3.5, then every 4 s (T2) until timer F at 32 s.
        assert_eq!(
            sent,
            [
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(timeout, Some(32_000));
    }

    #[test]
    fn reliable_transport_never_retransmits() {
        let t0 = Instant::now();
        let (mut tx, _) = NonInviteClient::new(t0, &bye(), true, Timers::default());
        let (sent, timeout) = retransmissions(&mut tx, t0);
        assert!(sent.is_empty());
        assert_eq!(timeout, Some(32_000));
    }

    #[test]
    fn final_response_then_timer_k() {
        let t0 = Instant::now();
        let (mut tx, _) = NonInviteClient::new(t0, &bye(), false, Timers::default());
        let step = tx.on_response(t0 + Duration::from_millis(10), response_to(&bye(), 200));
        assert!(matches!(step.event, Some(Outcome::Response(r)) if r.code == 200));
        assert!(
            tx.on_response(t0, response_to(&bye(), 200)).event.is_none(),
            "retransmission absorbed"
        );
        assert_eq!(
            tx.next_timer(),
            Some(t0 + Duration::from_millis(10) + Duration::from_secs(5))
        );
    }

    #[test]
    fn provisional_moves_retransmission_to_t2() {
        let t0 = Instant::now();
        let (mut tx, _) = NonInviteClient::new(t0, &bye(), false, Timers::default());
        tx.on_response(t0 + Duration::from_millis(100), response_to(&bye(), 100));
        assert_eq!(tx.next_timer(), Some(t0 + Duration::from_millis(4100)));
    }
}
