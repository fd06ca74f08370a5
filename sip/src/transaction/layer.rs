//! The transaction layer: creates transactions, matches incoming messages to them, absorbs
//! retransmissions, runs every timer from one heap, and routes responses (RFC 3261 §18.2.2).

use super::answered::Answered;
use super::downstream::Downstream;
use super::{
    InviteClient, InviteServer, NonInviteClient, NonInviteServer, Outcome, Step, Timers, TxKey,
};
use crate::FastMap;
use crate::message::headers::stamp_via;
use crate::message::{Method, Request, Response};
use crate::transport::{Peer, Transmit};
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
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
    /// Boxed: a finished transaction lingers for 64×T1 to absorb retransmissions, so at a
    /// few thousand calls a second this table holds hundreds of thousands of entries, and
    /// each time it grows it moves all of them at once. Inline (~400 bytes each) that move
    /// was a 100 MB copy into fresh pages, stalling the SIP thread for a tenth of a second
    /// (long enough for overload control to see a standing queue); boxed it moves pointers.
    entries: FastMap<TxId, Box<Entry>>,
    by_key: FastMap<TxKey, TxId>,
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

/// Transactions held at once by default. A call leaves one for 32 s (its INVITE's, absorbing
/// retransmitted INVITEs after the 2xx, RFC 6026; its BYE's answer is remembered apart, see
/// [`Answered`]): at 3,000 calls a second about 100,000, with those of the calls being set up
/// and the INVITEs sent to callees (Timer M).
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
            }) = self.entries.get_mut(&id).map(|e| &mut **e)
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
    ///
    /// Over UDP a non-INVITE's final response ends its transaction here: all that a
    /// completed one does for its 64·T1 (Timer J) is answer each copy of the request with the
    /// same response, which is what [`Answered`] does for a tenth of the memory. Each call
    /// leaves its BYE's, and at 3,000 calls a second those were 100,000 whole transactions
    /// (about 0.9 kB each), half of the table's cap. (On a reliable transport Timer J is
    /// zero: the transaction ends at once, and nothing is remembered.)
    pub fn respond(&mut self, now: Instant, tx: TxId, response: &Response) {
        let Some(entry) = self.entries.get_mut(&tx) else {
            return;
        };
        if response.code >= 200
            && !entry.peer.transport.is_reliable()
            && let Machine::NonInviteServer(m) = &entry.machine
            && m.is_answerable()
        {
            return self.respond_once(now, tx, response);
        }
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
        }) = self.entries.get_mut(&tx).map(|e| &mut **e)
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

    /// The request an INVITE client transaction sent, until a final response, and whether a
    /// provisional response has arrived (a CANCEL may only follow one, §9.1).
    pub fn invite_client(&self, tx: TxId) -> Option<(&Request, bool)> {
        match self.entries.get(&tx).map(|e| &e.machine) {
            Some(Machine::InviteClient(m)) => m.request().map(|r| (r, m.is_proceeding())),
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
            Box::new(Entry {
                key,
                machine,
                peer,
                scheduled: None,
                awaiting: None,
            }),
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
#[path = "layer_tests.rs"]
mod tests;
