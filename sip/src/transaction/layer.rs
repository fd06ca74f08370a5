//! The transaction layer: creates transactions, matches incoming messages to them, absorbs
//! retransmissions, runs every timer from one heap, and routes responses (RFC 3261 §18.2.2).

use super::answered::Answered;
use super::downstream::Downstream;
use super::{
    InviteClient, InviteServer, NonInviteClient, NonInviteServer, Outcome, Step, Timers, TxKey,
};
use crate::message::headers::stamp_via;
use crate::message::{Method, Request, Response};
use crate::transport::{Peer, Transmit};
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub type TxId = u64;

/// What the layer hands to the transaction user.
#[derive(Debug)]
pub enum TxEvent {
    /// A new request. `tx` is its server transaction; an ACK for a 2xx has none.
    Request {
        tx: Option<TxId>,
        request: Request,
        peer: Peer,
    },
    /// A response for one of our client transactions. `tx` is `None` for a 2xx to an INVITE
    /// whose transaction has ended (the dialog re-sends its ACK).
    Response {
        tx: Option<TxId>,
        response: Response,
        peer: Peer,
    },
    /// Timer B/F (client, no final response) or H/L (server, no ACK).
    Timeout { tx: TxId },
}

#[derive(Debug)]
enum Machine {
    // Boxed: it keeps the whole INVITE to build ACK and CANCEL from.
    InviteClient(Box<InviteClient>),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

impl Machine {
    fn on_timer(&mut self, now: Instant) -> Step {
        match self {
            Machine::InviteClient(m) => m.on_timer(now),
            Machine::NonInviteClient(m) => m.on_timer(now),
            Machine::InviteServer(m) => m.on_timer(now),
            Machine::NonInviteServer(m) => m.on_timer(now),
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        match self {
            Machine::InviteClient(m) => m.next_timer(),
            Machine::NonInviteClient(m) => m.next_timer(),
            Machine::InviteServer(m) => m.next_timer(),
            Machine::NonInviteServer(m) => m.next_timer(),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Machine::InviteClient(m) => m.is_terminated(),
            Machine::NonInviteClient(m) => m.is_terminated(),
            Machine::InviteServer(m) => m.is_terminated(),
            Machine::NonInviteServer(m) => m.is_terminated(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    key: TxKey,
    machine: Machine,
    /// Where this transaction's messages go.
    peer: Peer,
    /// The deadline this entry is queued under in the heap, if any.
    scheduled: Option<Instant>,
    /// When a client INVITE was sent, until its first response (see [`Downstream`]).
    awaiting: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct TransactionLayer {
    timers: Timers,
    next_id: TxId,
    entries: HashMap<TxId, Entry>,
    by_key: HashMap<TxKey, TxId>,
    heap: BinaryHeap<Reverse<(Instant, TxId)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    /// Most transactions held at once (0: no limit); past it a new request outside a dialog
    /// is answered 503 statelessly, once. Requests inside dialogs (a BYE, a re-INVITE) may
    /// take up to twice as many: refusing them would leave calls up that their parties ended
    /// (seen at twice the maximum call rate, when the BYEs' lingering transactions — Timer J,
    /// 32 s — filled the table), and what they can hold is bounded by the calls there are.
    max_transactions: usize,
    /// Requests answered 503 at the cap, since the start.
    refused_at_cap: u64,
    /// The INVITEs each peer has not answered yet, and the limit it is held to.
    downstream: Downstream,
    /// Requests answered once, without a transaction, and their answers.
    answered: Answered,
}

/// How long a new INVITE waits for the transaction user's first answer before the layer sends
/// 100 Trying: well under T1 (500 ms), so the caller does not retransmit.
pub(crate) const TRYING_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Transactions held at once by default. A call leaves two for 32 s (its INVITE's, absorbing
/// retransmitted INVITEs after the 2xx, RFC 6026; its BYE's, Timer J): at 1,500 calls a second
/// about 100,000, which is where the first cap refused new calls at the maximum rate.
const MAX_TRANSACTIONS: usize = 200_000;

impl TransactionLayer {
    pub fn new(timers: Timers) -> Self {
        Self {
            timers,
            max_transactions: MAX_TRANSACTIONS,
            ..Self::default()
        }
    }

    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// Holds the INVITEs each peer has not answered yet under a limit found from its answers'
    /// delay, `delay` past its base (zero: no limit); see [`Downstream`].
    pub fn set_downstream_delay(&mut self, delay: Duration) {
        self.downstream.set_delay(delay);
    }

    /// Whether a new INVITE may go to `peer` now, or the peer is answering late and has as
    /// many unanswered as it is allowed.
    pub fn downstream_admits(&self, peer: SocketAddr) -> bool {
        self.downstream.admits(peer)
    }

    /// The limit on unanswered INVITEs `peer` is held to, if any.
    pub fn downstream_limit(&self, peer: SocketAddr) -> Option<u32> {
        self.downstream.limit(peer)
    }

    pub fn with_limit(mut self, max_transactions: usize) -> Self {
        self.max_transactions = max_transactions;
        self
    }

    /// Requests answered 503 because the table was full, since the start.
    pub fn refused_at_cap(&self) -> u64 {
        self.refused_at_cap
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A request from the network. Via gets `received`/`rport` (RFC 3581); retransmissions are
    /// answered here and never reach the transaction user.
    pub fn on_request(&mut self, now: Instant, mut request: Request, peer: Peer) {
        if let Some(via) = request.headers.first_mut("Via") {
            *via = stamp_via(via, peer.remote);
        }
        let Some(key) = TxKey::server(request.method, &request.headers) else {
            return;
        };
        if let Some(&id) = self.by_key.get(&key) {
            let entry = self.entries.get_mut(&id).expect("indexed entry");
            let step = match (&mut entry.machine, request.method) {
                (Machine::InviteServer(m), Method::Ack) => {
                    m.on_ack(now);
                    Step::default()
                }
                (Machine::InviteServer(m), Method::Invite) => m.on_retransmission(),
                (Machine::NonInviteServer(m), _) => m.on_retransmission(),
                _ => Step::default(),
            };
            self.apply(now, id, step);
            return;
        }
        if request.method == Method::Ack {
            if self.answered.forget(now, &key) {
                return;
            }
            // An ACK for a 2xx has its own branch and belongs to the dialog.
            self.events.push_back(TxEvent::Request {
                tx: None,
                request,
                peer,
            });
            return;
        }
        if let Some((to, data)) = self.answered.get(now, &key) {
            self.transmits.push_back(Transmit { peer: to, data });
            return;
        }
        let reliable = peer.transport.is_reliable();
        let response_peer = response_peer(peer, &request);
        let cap = match request.headers.to_tag() {
            Some(_) => self.max_transactions.saturating_mul(2),
            None => self.max_transactions,
        };
        if cap != 0 && self.entries.len() >= cap {
            self.refused_at_cap += 1;
            let mut busy = request.response(503, None);
            busy.headers.push("Retry-After", "5");
            self.transmits.push_back(Transmit {
                peer: response_peer,
                data: busy.encode(),
            });
            return;
        }
        let id = self.insert(
            key,
            response_peer,
            match request.method {
                Method::Invite => Machine::InviteServer(InviteServer::new(reliable, self.timers)),
                _ => Machine::NonInviteServer(NonInviteServer::new(reliable, self.timers)),
            },
        );
        if request.method == Method::Invite
            && let Some(Entry {
                machine: Machine::InviteServer(m),
                ..
            }) = self.entries.get_mut(&id)
        {
            // The caller stops retransmitting once anything comes back (§17.2.1); a 100 is
            // sent only if the transaction user has not answered within TRYING_DELAY.
            m.schedule_trying(now + TRYING_DELAY, request.response(100, None).encode());
            self.reschedule(now, id);
        }
        self.events.push_back(TxEvent::Request {
            tx: Some(id),
            request,
            peer,
        });
    }

    /// A response from the network.
    /// A response from the network; `peer` is where it came from.
    pub fn on_response(&mut self, now: Instant, response: Response, peer: Peer) {
        let Some(key) = TxKey::client(&response.headers) else {
            return;
        };
        let Some(&id) = self.by_key.get(&key) else {
            let is_invite_2xx = response.is_success()
                && response
                    .headers
                    .cseq()
                    .is_some_and(|c| c.method == Method::Invite);
            if is_invite_2xx {
                self.events.push_back(TxEvent::Response {
                    tx: None,
                    response,
                    peer,
                });
            }
            return;
        };
        let entry = self.entries.get_mut(&id).expect("indexed entry");
        if let Some(sent) = entry.awaiting.take() {
            let after = now.saturating_duration_since(sent);
            self.downstream.answered(now, entry.peer.remote, after);
        }
        let step = match &mut entry.machine {
            Machine::InviteClient(m) => m.on_response(now, response),
            Machine::NonInviteClient(m) => m.on_response(now, response),
            _ => return,
        };
        self.apply(now, id, step);
    }

    /// Starts a client transaction for a request (not ACK) and sends it to `peer`.
    pub fn send_request(&mut self, now: Instant, request: Request, peer: Peer) -> Option<TxId> {
        let key = TxKey::client(&request.headers)?;
        let reliable = peer.transport.is_reliable();
        let (machine, data) = if request.method == Method::Invite {
            let (m, data) = InviteClient::new(now, request, reliable, self.timers);
            (Machine::InviteClient(Box::new(m)), data)
        } else {
            let (m, data) = NonInviteClient::new(now, &request, reliable, self.timers);
            (Machine::NonInviteClient(m), data)
        };
        let invite = matches!(machine, Machine::InviteClient(_));
        let id = self.insert(key, peer, machine);
        if invite {
            self.downstream.sent(now, peer.remote);
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.awaiting = Some(now);
            }
        }
        self.transmits.push_back(Transmit { peer, data });
        self.reschedule(now, id);
        Some(id)
    }

    /// Sends a response through its server transaction.
    pub fn respond(&mut self, now: Instant, tx: TxId, response: &Response) {
        let Some(entry) = self.entries.get_mut(&tx) else {
            return;
        };
        let data = match &mut entry.machine {
            Machine::InviteServer(m) => m.respond(now, response),
            Machine::NonInviteServer(m) => m.respond(now, response),
            _ => None,
        };
        if let Some(data) = data {
            self.transmits.push_back(Transmit {
                peer: entry.peer,
                data,
            });
        }
        self.reschedule(now, tx);
    }

    /// Sends a final response and forgets the server transaction: the response is never
    /// retransmitted, so a request with a forged source cannot make us send a peer more than it
    /// sent (an INVITE's non-2xx would otherwise repeat ten times), and a refusal costs no
    /// timers. The request is remembered for as long as its sender may retransmit it: a copy
    /// gets the same response again, once per copy, and its ACK is absorbed (see
    /// [`Answered`]).
    pub fn respond_once(&mut self, now: Instant, tx: TxId, response: &Response) {
        let Some(entry) = self.entries.remove(&tx) else {
            return;
        };
        if self.by_key.get(&entry.key) == Some(&tx) {
            self.by_key.remove(&entry.key);
        }
        let data = response.encode();
        let until = now + self.timers.timeout();
        (self.answered).remember(now, until, entry.key, entry.peer, data.clone());
        self.transmits.push_back(Transmit {
            peer: entry.peer,
            data,
        });
    }

    /// The dialog matched an ACK to the 2xx of this INVITE server transaction.
    pub fn ack_received(&mut self, now: Instant, tx: TxId) {
        if let Some(Entry {
            machine: Machine::InviteServer(m),
            ..
        }) = self.entries.get_mut(&tx)
        {
            m.on_ack(now);
        }
        self.reschedule(now, tx);
    }

    /// Sends bytes outside any transaction (ACK for 2xx, stateless responses).
    pub fn send_stateless(&mut self, data: Bytes, peer: Peer) {
        self.transmits.push_back(Transmit { peer, data });
    }

    /// The INVITE server transaction a received CANCEL refers to.
    pub fn cancelled_invite(&self, cancel: &Request) -> Option<TxId> {
        let key = TxKey::server(Method::Cancel, &cancel.headers)?.cancelled_invite();
        self.by_key.get(&key).copied()
    }

    /// The request an INVITE client transaction sent, and whether a provisional response has
    /// arrived (a CANCEL may only follow one, §9.1).
    pub fn invite_client(&self, tx: TxId) -> Option<(&Request, bool)> {
        match self.entries.get(&tx).map(|e| &e.machine) {
            Some(Machine::InviteClient(m)) => Some((m.request(), m.is_proceeding())),
            _ => None,
        }
    }

    /// Whether an INVITE server transaction still awaits its final response.
    pub fn invite_server_pending(&self, tx: TxId) -> bool {
        matches!(self.entries.get(&tx).map(|e| &e.machine), Some(Machine::InviteServer(m)) if m.is_proceeding())
    }

    /// The peer a transaction talks to.
    pub fn peer(&self, tx: TxId) -> Option<Peer> {
        self.entries.get(&tx).map(|e| e.peer)
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// The earliest timer of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.scheduled == Some(at) {
                entry.scheduled = None;
            }
            if entry.machine.next_timer().is_some_and(|t| t <= now) {
                let step = entry.machine.on_timer(now);
                self.apply(now, id, step);
            } else {
                self.reschedule(now, id);
            }
        }
    }

    fn insert(&mut self, key: TxKey, peer: Peer, machine: Machine) -> TxId {
        self.next_id += 1;
        let id = self.next_id;
        self.by_key.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                machine,
                peer,
                scheduled: None,
                awaiting: None,
            },
        );
        id
    }

    fn apply(&mut self, now: Instant, id: TxId, step: Step) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        if let Some(data) = step.transmit {
            self.transmits.push_back(Transmit {
                peer: entry.peer,
                data,
            });
        }
        match step.event {
            Some(Outcome::Timeout) => self.events.push_back(TxEvent::Timeout { tx: id }),
            Some(Outcome::Response(response)) => {
                let peer = entry.peer;
                self.events.push_back(TxEvent::Response {
                    tx: Some(id),
                    response,
                    peer,
                });
            }
            None => {}
        }
        self.reschedule(now, id);
    }

    /// Queues the entry's next deadline, or removes it once terminated.
    fn reschedule(&mut self, now: Instant, id: TxId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.machine.is_terminated() {
            let key = entry.key.clone();
            if entry.awaiting.is_some() {
                // Timer B, or the transport gave up: the peer never answered.
                self.downstream.unanswered(now, entry.peer.remote);
            }
            self.entries.remove(&id);
            if self.by_key.get(&key) == Some(&id) {
                self.by_key.remove(&key);
            }
            return;
        }
        if let Some(next) = entry.machine.next_timer()
            && entry.scheduled.is_none_or(|s| next < s)
        {
            entry.scheduled = Some(next);
            self.heap.push(Reverse((next, id)));
        }
    }
}

/// Where responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4): back over the same
/// connection on a stream; over UDP to the source when rport was asked for, else to the source
/// address and the port in Via.
fn response_peer(peer: Peer, request: &Request) -> Peer {
    if peer.transport.is_reliable() {
        return peer;
    }
    match request.headers.top_via() {
        Some(via) if via.rport.is_none() => {
            let mut p = peer;
            p.remote.set_port(via.port.unwrap_or(5060));
            p
        }
        _ => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SipMessage;
    use crate::transaction::tests::{bye, invite, response_to};
    use crate::transport::Transport;
    use std::time::Duration;

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            remote: "192.0.2.9:5062".parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
            conn: None,
        }
    }

    fn drain_transmits(layer: &mut TransactionLayer) -> Vec<String> {
        std::iter::from_fn(|| layer.poll_transmit())
            .map(|t| String::from_utf8(t.data.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn invite_gets_100_and_retransmission_is_absorbed() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(Timers::default());
        layer.on_request(t0, invite(), peer());
        // The 100 waits for the transaction user's own answer, then goes.
        assert!(drain_transmits(&mut layer).is_empty());
        assert_eq!(layer.poll_timeout(), Some(t0 + TRYING_DELAY));
        layer.handle_timeout(t0 + TRYING_DELAY);
        let sent = drain_transmits(&mut layer);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].starts_with("SIP/2.0 100 Trying"));
        assert!(
            sent[0].contains("received=192.0.2.9;rport=5062"),
            "{}",
            sent[0]
        );
        assert!(matches!(
            layer.poll_event(),
            Some(TxEvent::Request { tx: Some(_), .. })
        ));
        // The retransmission re-sends the 100 and is not passed up.
        layer.on_request(t0, invite(), peer());
        assert_eq!(drain_transmits(&mut layer).len(), 1);
        assert!(layer.poll_event().is_none());
    }

    /// A layer that received an INVITE (its 100 Trying drained): the transaction and request.
    fn received_invite(t0: Instant) -> (TransactionLayer, TxId, Request) {
        let mut layer = TransactionLayer::new(Timers::default());
        layer.on_request(t0, invite(), peer());
        drain_transmits(&mut layer);
        let Some(TxEvent::Request {
            tx: Some(tx),
            request,
            ..
        }) = layer.poll_event()
        else {
            panic!("the INVITE was passed up")
        };
        (layer, tx, request)
    }

    /// Everything the layer sends in the 40 s after `t0`.
    fn sent_later(layer: &mut TransactionLayer, t0: Instant) -> usize {
        for s in 1..40 {
            layer.handle_timeout(t0 + Duration::from_secs(s));
        }
        drain_transmits(layer).len()
    }

    /// A final response sent with `respond_once` goes out once, and alone: no 100 Trying
    /// before it and no Timer G retransmissions after (an INVITE's 4xx is otherwise repeated
    /// until ACKed), and nothing is left held.
    #[test]
    fn respond_once_never_retransmits() {
        let t0 = Instant::now();
        let (mut layer, tx, request) = received_invite(t0);
        layer.respond_once(t0, tx, &request.response(403, Some("t")));
        let sent = drain_transmits(&mut layer);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].starts_with("SIP/2.0 403 "), "{}", sent[0]);
        assert!(layer.is_empty());
        assert_eq!(sent_later(&mut layer, t0), 0);

        // The same with a kept transaction: the 403 is repeated (Timer G).
        let (mut layer, tx, request) = received_invite(t0);
        layer.respond(t0, tx, &request.response(403, Some("t")));
        assert!(sent_later(&mut layer, t0) > 3);
    }

    /// A copy of a request answered once gets the same answer, once per copy, and is never
    /// passed up as a new request; its ACK is absorbed, and ends the memory of it. Without an
    /// ACK the request is remembered as long as its sender may retransmit it (64·T1).
    #[test]
    fn a_copy_of_a_request_answered_once_gets_the_same_answer() {
        let t0 = Instant::now();
        let (mut layer, tx, request) = received_invite(t0);
        let mut busy = request.response(503, Some("refused"));
        busy.headers.push("Retry-After", "1");
        layer.respond_once(t0, tx, &busy);
        let first = drain_transmits(&mut layer);
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with("SIP/2.0 503 "), "{}", first[0]);
        for i in 1..=3 {
            let at = t0 + Duration::from_millis(500 * i);
            layer.on_request(at, invite(), peer());
            assert_eq!(drain_transmits(&mut layer), first, "copy {i}");
            assert!(layer.poll_event().is_none(), "copy {i} passed up");
            assert!(layer.is_empty());
        }
        // The caller's ACK (same branch, RFC 3261 §17.1.1.3) is absorbed here.
        let mut ack = invite();
        ack.method = Method::Ack;
        ack.headers.set("CSeq", "1 ACK");
        layer.on_request(t0 + Duration::from_secs(2), ack.clone(), peer());
        assert!(drain_transmits(&mut layer).is_empty());
        assert!(layer.poll_event().is_none(), "the ACK passed up");
        assert_eq!(layer.answered.len(), 0);
        // Forgotten with its ACK: another copy is a request of its own again.
        layer.on_request(t0 + Duration::from_secs(3), invite(), peer());
        assert!(matches!(
            layer.poll_event(),
            Some(TxEvent::Request { tx: Some(_), .. })
        ));

        // Never ACKed: remembered until 64·T1, then a copy is new.
        let (mut layer, tx, request) = received_invite(t0);
        layer.respond_once(t0, tx, &request.response(404, Some("t")));
        drain_transmits(&mut layer);
        let timeout = Timers::default().timeout();
        layer.on_request(t0 + timeout - Duration::from_millis(1), invite(), peer());
        assert!(drain_transmits(&mut layer)[0].starts_with("SIP/2.0 404 "));
        assert!(layer.poll_event().is_none());
        layer.on_request(t0 + timeout, invite(), peer());
        assert!(layer.poll_event().is_some(), "remembered past 64·T1");
        assert_eq!(layer.answered.len(), 0);
    }

    /// At the cap, a new request gets one stateless 503 and holds nothing; requests of
    /// transactions already held are still absorbed.
    #[test]
    fn transactions_are_capped() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(Timers::default()).with_limit(2);
        let nth = |i: usize| {
            let mut r = invite();
            r.headers.set(
                "Via",
                format!("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKcap{i};rport"),
            );
            r
        };
        for i in 0..2 {
            layer.on_request(t0, nth(i), peer());
        }
        drain_transmits(&mut layer);
        while layer.poll_event().is_some() {}
        layer.on_request(t0, nth(2), peer());
        let sent = drain_transmits(&mut layer);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].starts_with("SIP/2.0 503 "), "{}", sent[0]);
        assert!(sent[0].contains("Retry-After: 5"));
        assert!(layer.poll_event().is_none());
        assert_eq!(layer.len(), 2);
        // A held INVITE's retransmission gets its 100 at once.
        layer.on_request(t0, nth(0), peer());
        assert!(drain_transmits(&mut layer)[0].starts_with("SIP/2.0 100"));
        // Requests inside dialogs (a BYE ending a call) are taken up to twice the cap.
        let bye = |i: usize| {
            let mut r = nth(10 + i);
            r.method = Method::Bye;
            r.headers.set("CSeq", "2 BYE");
            r.headers.set("To", "<sip:bob@192.0.2.1>;tag=callee");
            r
        };
        for i in 0..2 {
            layer.on_request(t0, bye(i), peer());
            assert!(
                matches!(
                    layer.poll_event(),
                    Some(TxEvent::Request { tx: Some(_), .. })
                ),
                "BYE {i} taken"
            );
        }
        assert_eq!(layer.len(), 4);
        layer.on_request(t0, bye(2), peer());
        assert!(drain_transmits(&mut layer)[0].starts_with("SIP/2.0 503 "));
        assert_eq!(layer.len(), 4);
        assert_eq!(layer.refused_at_cap(), 2);
    }

    #[test]
    fn response_without_rport_goes_to_via_port() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(Timers::default());
        let mut req = invite();
        req.headers
            .set("Via", "SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKnorport");
        layer.on_request(t0, req, peer());
        layer.handle_timeout(t0 + TRYING_DELAY);
        let t = layer.poll_transmit().unwrap();
        assert_eq!(t.peer.remote, "192.0.2.9:5070".parse().unwrap());
    }

    #[test]
    fn cancel_finds_its_invite() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(Timers::default());
        layer.on_request(t0, invite(), peer());
        let Some(TxEvent::Request {
            tx: Some(invite_tx),
            ..
        }) = layer.poll_event()
        else {
            panic!()
        };
        let mut cancel = invite();
        cancel.method = Method::Cancel;
        cancel.headers.set("CSeq", "1 CANCEL");
        layer.on_request(t0, cancel.clone(), peer());
        let Some(TxEvent::Request {
            tx: Some(cancel_tx),
            request,
            ..
        }) = layer.poll_event()
        else {
            panic!()
        };
        assert_ne!(cancel_tx, invite_tx);
        assert_eq!(layer.cancelled_invite(&request), Some(invite_tx));
    }

    #[test]
    fn client_retransmits_and_times_out_via_layer_clock() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(Timers::default());
        let tx = layer.send_request(t0, bye(), peer()).unwrap();
        let mut sends = drain_transmits(&mut layer).len();
        let mut now = t0;
        while let Some(at) = layer.poll_timeout() {
            now = at;
            layer.handle_timeout(now);
            sends += drain_transmits(&mut layer).len();
        }
        assert_eq!(sends, 11, "initial send plus ten retransmissions");
        assert!(matches!(layer.poll_event(), Some(TxEvent::Timeout { tx: t }) if t == tx));
        assert_eq!(now - t0, Duration::from_secs(32));
        assert!(layer.is_empty());
    }

    #[test]
    fn response_matches_client_and_duplicate_is_absorbed() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(Timers::default());
        let tx = layer.send_request(t0, bye(), peer()).unwrap();
        drain_transmits(&mut layer);
        let ok = response_to(&bye(), 200);
        let wire = ok.encode();
        let SipMessage::Response(parsed) = SipMessage::parse(&wire).unwrap() else {
            panic!()
        };
        layer.on_response(t0, parsed.clone(), peer());
        assert!(
            matches!(layer.poll_event(), Some(TxEvent::Response { tx: Some(t), .. }) if t == tx)
        );
        layer.on_response(t0, parsed, peer());
        assert!(layer.poll_event().is_none());
    }

    #[test]
    fn non_2xx_ack_is_absorbed_by_the_transaction() {
        let t0 = Instant::now();
        let mut layer = TransactionLayer::new(Timers::default());
        layer.on_request(t0, invite(), peer());
        let Some(TxEvent::Request {
            tx: Some(tx),
            request,
            ..
        }) = layer.poll_event()
        else {
            panic!()
        };
        layer.respond(t0, tx, &request.response(486, Some("x")));
        let mut ack = invite();
        ack.method = Method::Ack;
        ack.headers.set("CSeq", "1 ACK");
        layer.on_request(t0, ack, peer());
        assert!(
            layer.poll_event().is_none(),
            "ACK for an error response stays in the transaction"
        );
        // Confirmed: timer I (T4) then gone, no timeout reported.
        layer.handle_timeout(t0 + Duration::from_secs(6));
        assert!(layer.poll_event().is_none());
        assert!(layer.is_empty());
    }
}
