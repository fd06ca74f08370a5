//! INVITE client transaction (RFC 3261 §17.1.1, with the Accepted state of RFC 6026 §7.2).

use super::{Backoff, Outcome, Step, Timers, earliest};
use crate::message::{Method, Request, Response};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Timer D for unreliable transports ("at least 32 seconds").
const TIMER_D: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Accepted,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct InviteClient {
    state: State,
    /// The INVITE, parsed and encoded, until a final response: a retransmission, a CANCEL and
    /// the ACK of an error response are made from it. Let go then, as nothing needs it after:
    /// an answered call's transaction lingers 64·T1 (Timer M), and at a few thousand calls a
    /// second those that held their INVITE (its SDP twice over) were most of the server's
    /// memory.
    invite: Option<(Request, Bytes)>,
    ack: Option<Bytes>,
    reliable: bool,
    timers: Timers,
    /// Timer A: retransmit the INVITE (unreliable transports only).
    retransmit: Option<Backoff>,
    /// Timer B: give up waiting for any response.
    give_up: Option<Instant>,
    /// Timer D (Completed) or M (Accepted): linger to absorb retransmissions.
    linger: Option<Instant>,
}

impl InviteClient {
    /// Starts the transaction; the returned bytes are the INVITE to send now.
    pub fn new(now: Instant, request: Request, reliable: bool, timers: Timers) -> (Self, Bytes) {
        let encoded = request.encode();
        let tx = Self {
            state: State::Calling,
            invite: Some((request, encoded.clone())),
            ack: None,
            reliable,
            timers,
            retransmit: (!reliable).then(|| Backoff::start(now, timers.t1, None)),
            give_up: Some(now + timers.timeout()),
            linger: None,
        };
        (tx, encoded)
    }

    /// The INVITE sent, until a final response arrives.
    pub fn request(&self) -> Option<&Request> {
        self.invite.as_ref().map(|(request, _)| request)
    }

    pub fn on_response(&mut self, now: Instant, response: Response) -> Step {
        match (self.state, response.code) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.retransmit = None;
                self.give_up = None;
                Step::event(Outcome::Response(response))
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.invite = None;
                self.retransmit = None;
                self.give_up = None;
                self.linger = Some(now + self.timers.timeout());
                Step::event(Outcome::Response(response))
            }
            (State::Calling | State::Proceeding, _) => {
                self.state = State::Completed;
                self.retransmit = None;
                self.give_up = None;
                self.linger = Some(
                    now + if self.reliable {
                        Duration::ZERO
                    } else {
                        TIMER_D
                    },
                );
                // Always there until now: the INVITE is let go at the first final response.
                let ack = (self.invite.take()).map(|(invite, _)| build_ack(&invite, &response));
                self.ack = ack.clone();
                Step {
                    transmit: ack,
                    event: Some(Outcome::Response(response)),
                }
            }
            // The TU answers every 2xx copy with its own ACK (RFC 6026 §8.4).
            (State::Accepted, 200..=299) => Step::event(Outcome::Response(response)),
            (State::Completed, 300..) => Step {
                transmit: self.ack.clone(),
                event: None,
            },
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
                match &self.invite {
                    Some((_, encoded)) => Step::send(encoded.clone()),
                    None => Step::default(),
                }
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

    /// True once a provisional response arrived, which is when a CANCEL may be sent (§9.1).
    pub fn is_proceeding(&self) -> bool {
        self.state == State::Proceeding
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.invite = None;
        self.retransmit = None;
        self.give_up = None;
        self.linger = None;
    }
}

/// The ACK for a non-2xx final response to `req` (§17.1.1.3): same branch, To from the
/// response.
fn build_ack(req: &Request, response: &Response) -> Bytes {
    let mut ack = Request::new(Method::Ack, req.uri.clone());
    if let Some(via) = req.headers.get("Via") {
        ack.headers.push("Via", via);
    }
    ack.headers.copy_from(&req.headers, "Route");
    ack.headers.copy_from(&req.headers, "From");
    ack.headers.copy_from(&response.headers, "To");
    ack.headers.copy_from(&req.headers, "Call-ID");
    let seq = req.headers.cseq().map_or(1, |c| c.seq);
    ack.headers.push("CSeq", format!("{seq} ACK"));
    ack.headers.push("Max-Forwards", "70");
    ack.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::tests::{invite, response_to};

    #[test]
    fn timer_a_doubles_until_timer_b() {
        let t0 = Instant::now();
        let timers = Timers::default();
        let (mut tx, _) = InviteClient::new(t0, invite(), false, timers);
        let mut sent_at = Vec::new();
        let mut timed_out = None;
        while let Some(at) = tx.next_timer() {
            let step = tx.on_timer(at);
            if step.transmit.is_some() {
                sent_at.push((at - t0).as_millis());
            }
            if matches!(step.event, Some(Outcome::Timeout)) {
                timed_out = Some((at - t0).as_millis());
            }
        }
        // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s; timer B at 32 s.
        assert_eq!(sent_at, [500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(timed_out, Some(32_000));
        assert!(tx.is_terminated());
    }

    #[test]
    fn the_invite_is_let_go_at_the_final_response() {
        let t0 = Instant::now();
        let (mut tx, _) = InviteClient::new(t0, invite(), false, Timers::default());
        tx.on_response(t0, response_to(&invite(), 180));
        assert!(tx.request().is_some(), "kept for a CANCEL while proceeding");
        tx.on_response(t0, response_to(&invite(), 200));
        assert!(tx.request().is_none() && tx.invite.is_none());
        // Lingering in Accepted, 2xx copies still reach the TU, and nothing is re-sent.
        let copy = tx.on_response(t0, response_to(&invite(), 200));
        assert!(matches!(copy.event, Some(Outcome::Response(r)) if r.code == 200));
        assert_eq!(tx.next_timer(), Some(t0 + Timers::default().timeout()));
        // An error response: its ACK is made from the INVITE before it is let go.
        let (mut tx, _) = InviteClient::new(t0, invite(), false, Timers::default());
        let ack = tx.on_response(t0, response_to(&invite(), 503)).transmit;
        assert!(ack.is_some_and(|a| a.starts_with(b"ACK ")));
        assert!(tx.request().is_none());
    }

    #[test]
    fn provisional_stops_retransmission() {
        let t0 = Instant::now();
        let (mut tx, _) = InviteClient::new(t0, invite(), false, Timers::default());
        let step = tx.on_response(t0, response_to(&invite(), 180));
        assert!(matches!(step.event, Some(Outcome::Response(r)) if r.code == 180));
        assert_eq!(tx.next_timer(), None, "Proceeding waits for the TU");
    }

    #[test]
    fn error_response_is_acked_and_retransmissions_reacked() {
        let t0 = Instant::now();
        let (mut tx, _) = InviteClient::new(t0, invite(), false, Timers::default());
        let busy = response_to(&invite(), 486);
        let step = tx.on_response(t0, busy.clone());
        let ack = String::from_utf8(step.transmit.unwrap().to_vec()).unwrap();
        assert!(ack.starts_with("ACK sip:bob@192.0.2.4 SIP/2.0\r\n"));
        assert!(ack.contains("CSeq: 1 ACK\r\n"));
        assert!(
            ack.contains("branch=z9hG4bKclient1"),
            "same branch as the INVITE"
        );
        assert!(ack.contains("tag=callee"), "To tag from the response");
        // A retransmitted 486 is re-ACKed and not passed up again.
        let again = tx.on_response(t0 + Duration::from_secs(1), busy);
        assert!(again.transmit.is_some() && again.event.is_none());
        // Timer D: 32 s.
        assert_eq!(tx.next_timer(), Some(t0 + Duration::from_secs(32)));
        tx.on_timer(t0 + Duration::from_secs(32));
        assert!(tx.is_terminated());
    }

    #[test]
    fn accepted_passes_2xx_retransmissions_up() {
        let t0 = Instant::now();
        let (mut tx, _) = InviteClient::new(t0, invite(), true, Timers::default());
        assert!(
            tx.on_response(t0, response_to(&invite(), 200))
                .event
                .is_some()
        );
        assert!(
            tx.on_response(t0, response_to(&invite(), 200))
                .event
                .is_some()
        );
        assert_eq!(
            tx.next_timer(),
            Some(t0 + Duration::from_secs(32)),
            "timer M = 64*T1"
        );
    }
}
