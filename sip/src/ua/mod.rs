//! The user agent core: a sans-IO SIP endpoint that owns the transaction layer, the legs (one
//! dialog each, as UAS or UAC), the registrar and the digest server. A B2BUA drives two legs per
//! call through the commands here and reacts to [`UaEvent`]s; this module knows nothing of how
//! legs are paired.
//!
//! Run loop: feed [`UserAgent::on_message`] and [`UserAgent::handle_timeout`], then drain
//! [`UserAgent::poll_transmit`] and [`UserAgent::poll_event`]; sleep until
//! [`UserAgent::poll_timeout`].

mod commands;
mod dispatch;
mod headers;
mod leg;
mod overload;
mod ping;
mod refer;
pub use refer::sipfrag_status;
mod register;
mod reliable;
mod session_timer;

pub use headers::{ASSERTED_HEADERS, MAX_ASSERTED_VALUES, is_custom_header, shown_headers};
pub use leg::{LegId, SourceCheck};
pub use overload::{OverloadConfig, OverloadState};
pub use ping::PingId;
pub use register::{RegisterParams, RegistrationId};
pub use session_timer::SessionTimers;

use crate::FastMap;
use crate::auth::DigestServer;
use crate::message::{Request, SipMessage, Uri};
use crate::registrar::{Binding, Registrar, RegistrarConfig};
use crate::transaction::{Timers, TransactionLayer, TxId};
use crate::transport::{Peer, Transmit, Transport};
use bytes::Bytes;
use leg::{Leg, TxRole};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Methods we answer, advertised in Allow.
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, REGISTER";

/// A local socket and how it is advertised in Via and Contact.
#[derive(Debug, Clone)]
pub struct Listener {
    pub transport: Transport,
    pub local: SocketAddr,
    /// `host:port` written into Via and Contact.
    pub advertised: String,
}

#[derive(Debug, Clone)]
pub struct UaConfig {
    pub listeners: Vec<Listener>,
    pub user_agent: String,
    pub timers: Timers,
    /// Digest realm for REGISTER and INVITE challenges.
    pub realm: String,
    /// Digest algorithms offered in challenges, preferred first.
    pub digest_algorithms: Vec<crate::auth::Algorithm>,
    /// Users allowed to REGISTER: name → password.
    pub users: HashMap<String, String>,
    /// Keys digest nonces; nodes given the same secret verify each other's nonces. `None`: a
    /// random key, good for this process only.
    pub digest_secret: Option<String>,
    /// This node's id among the nodes sharing `digest_secret`: only the node that issued a
    /// nonce accepts its uses.
    pub node_id: String,
    /// How strictly a digest `uri` must name the Request-URI.
    pub digest_uri: crate::auth::UriMatch,
    pub registrar: RegistrarConfig,
    /// Session timers (RFC 4028) asked for and accepted.
    pub session_timers: SessionTimers,
    /// Which of the node's call-core shards this user agent serves: the Call-IDs it makes
    /// name it, so that the messages of its dialogs are handed back to it.
    pub shard: crate::shard::Shard,
}

/// A registrar the user agents of one node's shards share: a phone registered through one
/// shard is called from any (every lookup and REGISTER takes the lock for one user's work,
/// bounded by `max_contacts`).
pub type SharedRegistrar = std::sync::Arc<std::sync::Mutex<Registrar>>;

/// A message body with its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: String,
    pub data: Bytes,
}

impl Body {
    pub fn sdp(data: impl Into<Bytes>) -> Self {
        Self {
            content_type: "application/sdp".into(),
            data: data.into(),
        }
    }

    /// The body of a request, if it has one.
    pub fn of_request(request: &Request) -> Option<Self> {
        Self::of(&request.headers, &request.body)
    }

    fn of(headers: &crate::message::Headers, data: &Bytes) -> Option<Self> {
        (!data.is_empty()).then(|| Body {
            content_type: headers
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_owned(),
            data: data.clone(),
        })
    }
}

/// An outgoing call leg.
#[derive(Debug, Clone)]
pub struct InviteParams {
    pub uri: Uri,
    /// Name-addr for From, without tag.
    pub from: String,
    /// Name-addr for To.
    pub to: String,
    /// The next hop.
    pub peer: Peer,
    pub body: Option<Body>,
    /// Digest credentials to answer a 401/407 with.
    pub credentials: Option<(String, String)>,
    pub max_forwards: u32,
    /// Give up (CANCEL, report 408) when not answered in time.
    pub ring_timeout: Option<Duration>,
    /// Headers an application adds (Telnyx's `custom_headers`). The UA's own headers and any
    /// not well formed are left out (see [`is_custom_header`]).
    pub headers: Vec<(String, String)>,
    /// Identity and diversion headers the operator vouches for (a trusted trunk's
    /// P-Asserted-Identity, Privacy, Diversion, History-Info, relayed to another trusted
    /// trunk): added as they came, each value bounded like an application's.
    pub asserted: Vec<(String, String)>,
}

#[derive(Debug)]
pub enum UaEvent {
    /// A dialog-creating INVITE. Answer it with [`UserAgent::respond`].
    Incoming {
        leg: LegId,
        request: Box<Request>,
        peer: Peer,
    },
    Leg {
        leg: LegId,
        event: LegEvent,
    },
    /// A registered user authenticated over this peer's connection (a REGISTER passed): the
    /// connection is that login's (a tenant's, not a trunk's).
    Authenticated {
        peer: Peer,
        user: String,
    },
    /// The final answer to a [`UserAgent::ping`]: its status, 408 when none came in time.
    Pong {
        ping: PingId,
        code: u16,
    },
    /// The final answer to a [`UserAgent::register`]: its status (after answering one
    /// challenge), 408 when none came in time.
    Registered {
        registration: RegistrationId,
        code: u16,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum LegEvent {
    /// UAC: a provisional response other than 100.
    Progress { code: u16, body: Option<Body> },
    /// UAC: a 2xx. Send the ACK with [`UserAgent::ack`].
    Answered { body: Option<Body> },
    /// UAC: the call failed with this final code (408 for a timeout or an unanswered ring).
    Failed { code: u16 },
    /// UAS: the ACK for our 2xx arrived.
    Acked { body: Option<Body> },
    /// UAS: the ACK for our 2xx to an offerless re-INVITE (whose 2xx carried our offer)
    /// arrived with the peer's answer.
    AckedAnswer { body: Body },
    /// UAS: the caller cancelled; 487 was sent.
    Cancelled,
    /// The peer hung up; 200 was sent. `headers`: the BYE's headers an application may be
    /// shown ([`shown_headers`]): its `X-` headers, bounded.
    Bye { headers: Vec<(String, String)> },
    /// The peer sent a re-INVITE, or an UPDATE with an offer (`update`); answer either with
    /// [`UserAgent::respond_reinvite`].
    ReInvite { body: Option<Body>, update: bool },
    /// No refresh of a session whose peer was to refresh it came in time (RFC 4028 §10), or
    /// our refresh failed: a BYE was sent.
    SessionExpired,
    /// UAS: a reliable provisional response went unacknowledged for 64·T1 (RFC 3262 §3): the
    /// INVITE was refused with 504.
    PrackTimeout,
    /// The peer asks for the other party to be transferred to `target` (its `Refer-To`, RFC
    /// 3515). Answer with [`UserAgent::answer_refer`], report with
    /// [`UserAgent::notify_refer`].
    Refer { target: String },
    /// The final answer to our REFER ([`UserAgent::refer`]): 2xx when the peer takes it (its
    /// NOTIFYs follow), or why not (408 when it never answered).
    ReferAnswered { code: u16 },
    /// A NOTIFY of our REFER's progress: the status of the peer's call to the target, from
    /// its `message/sipfrag` body (`None` when it has no status line); `last` when the
    /// subscription ended with it (a final status, or `Subscription-State: terminated`).
    ReferProgress { code: Option<u16>, last: bool },
    /// Final answer to our re-INVITE (a 2xx was ACKed, unless the re-INVITE had no offer:
    /// see [`UserAgent::ack_reinvite`]) or UPDATE.
    ReInviteResult { code: u16, body: Option<Body> },
    /// An INFO request (DTMF relay and the like); 200 was sent.
    Info { body: Option<Body> },
    /// The leg ended after our BYE, or because the peer never ACKed our 2xx (we sent BYE).
    Terminated { ack_timeout: bool },
}

pub struct UserAgent {
    config: UaConfig,
    layer: TransactionLayer,
    /// Boxed (a leg is about 1.6 kB): growing the table moves pointers, not every leg.
    legs: FastMap<LegId, Box<Leg>>,
    /// (Call-ID, local tag) → leg, for requests inside a dialog.
    dialogs: FastMap<(String, String), LegId>,
    tx_legs: FastMap<TxId, (LegId, TxRole)>,
    /// (Call-ID, From tag, CSeq) of incoming INVITEs, to spot merged requests.
    incoming: FastMap<(String, String, u32), LegId>,
    ring_timers: BinaryHeap<Reverse<(Instant, LegId)>>,
    /// Legs' session timers: a refresh due, or a session ending; stale entries (the leg's
    /// timer moved since) are passed over.
    session_timers: BinaryHeap<Reverse<(Instant, LegId)>>,
    /// Reliable provisionals' retransmissions and PRACK deadlines; stale entries are passed
    /// over.
    prack_timers: BinaryHeap<Reverse<(Instant, LegId)>>,
    events: VecDeque<UaEvent>,
    /// OPTIONS pings waiting for their answer (as many as the caller keeps peers to probe).
    pings: HashSet<TxId>,
    /// REGISTERs we sent, waiting for their answer.
    registering: HashMap<TxId, register::Registering>,
    next_registration: register::RegistrationId,
    registrar: SharedRegistrar,
    digest: DigestServer,
    next_leg: LegId,
    last_registrar_sweep: Option<Instant>,
    /// The node is draining: new calls and OPTIONS probes get 503 with this Retry-After (s),
    /// so carriers and dispatchers send their traffic elsewhere.
    refusing: Option<u32>,
    /// New calls admitted by measured load (see [`overload`]).
    overload: overload::Overload,
}

/// The peer `remote` is reached as over `transport`, from the first listener of that transport
/// and address family.
fn peer_via(listeners: &[Listener], transport: Transport, remote: SocketAddr) -> Option<Peer> {
    let l = listeners
        .iter()
        .find(|l| l.transport == transport && l.local.is_ipv4() == remote.is_ipv4())?;
    Some(Peer {
        transport,
        remote,
        local: l.local,
        conn: None,
    })
}

/// A new Call-ID, naming this user agent's shard (see [`crate::shard`]).
fn new_call_id(shard: crate::shard::Shard, host: Option<&str>) -> String {
    shard.call_id(&random_token(), host)
}

fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl UserAgent {
    pub fn new(config: UaConfig) -> Self {
        Self {
            layer: {
                let mut layer = TransactionLayer::new(config.timers);
                layer.set_downstream_delay(OverloadConfig::default().delay);
                layer
            },
            registrar: SharedRegistrar::new(std::sync::Mutex::new(Registrar::new(
                config.registrar,
            ))),
            digest: {
                let digest = DigestServer::new(config.realm.clone(), &config.digest_algorithms)
                    .with_uri_match(config.digest_uri);
                match &config.digest_secret {
                    Some(secret) => digest.with_secret(secret.as_bytes(), &config.node_id),
                    None => digest,
                }
            },
            config,
            legs: FastMap::default(),
            dialogs: FastMap::default(),
            tx_legs: FastMap::default(),
            incoming: FastMap::default(),
            ring_timers: BinaryHeap::new(),
            session_timers: BinaryHeap::new(),
            prack_timers: BinaryHeap::new(),
            events: VecDeque::new(),
            pings: HashSet::new(),
            registering: HashMap::new(),
            next_registration: 0,
            next_leg: 0,
            last_registrar_sweep: None,
            refusing: None,
            overload: overload::Overload::new(OverloadConfig::default()),
        }
    }

    /// While draining (`Some(retry_after_secs)`), new INVITEs and OPTIONS are answered 503 with
    /// Retry-After; calls up and registrations go on.
    pub fn set_refusing(&mut self, retry_after: Option<u32>) {
        self.refusing = retry_after;
    }

    /// How new calls are admitted under load.
    pub fn set_overload(&mut self, config: OverloadConfig) {
        self.overload = overload::Overload::new(config);
        self.layer.set_downstream_delay(config.delay);
    }

    /// Whether a new call may be sent to `peer` now: not while it answers INVITEs late and
    /// has as many unanswered as it is allowed (see the transaction layer's `Downstream`;
    /// the same delay as overload control's, past the peer's own base delay).
    pub fn downstream_admits(&self, peer: std::net::SocketAddr) -> bool {
        self.layer.downstream_admits(peer)
    }

    /// The limit on unanswered INVITEs `peer` is held to, if any.
    pub fn downstream_limit(&self, peer: std::net::SocketAddr) -> Option<u32> {
        self.layer.downstream_limit(peer)
    }

    /// A message the transports took off their socket at `received` is about to be handed
    /// in at `now`: how long it waited is the measure of the core's load.
    pub fn observe_sojourn(&mut self, now: Instant, received: Instant) {
        self.overload.observe(now, received);
    }

    /// What overload control has refused, and the admission rate in force.
    pub fn overload(&self) -> OverloadState {
        self.overload.state()
    }

    /// Requests answered 503 because the transaction table was full, since the start.
    pub fn refused_at_cap(&self) -> u64 {
        self.layer.refused_at_cap()
    }

    /// The registered users' passwords, replaced (a configuration reload); bindings stay.
    pub fn set_users(&mut self, users: HashMap<String, String>) {
        self.config.users = users;
    }

    pub fn config(&self) -> &UaConfig {
        &self.config
    }

    /// A message from a transport.
    pub fn on_message(&mut self, now: Instant, message: SipMessage, peer: Peer) {
        match message {
            SipMessage::Request(r) => self.layer.on_request(now, r, peer),
            SipMessage::Response(r) => self.layer.on_response(now, r, peer),
        }
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        while let Some(&Reverse((at, leg))) = self.ring_timers.peek() {
            if at > now {
                break;
            }
            self.ring_timers.pop();
            self.on_ring_timeout(now, leg);
        }
        while let Some(&Reverse((at, leg))) = self.session_timers.peek() {
            if at > now {
                break;
            }
            self.session_timers.pop();
            self.on_session_timer(now, leg, at);
        }
        while let Some(&Reverse((at, leg))) = self.prack_timers.peek() {
            if at > now {
                break;
            }
            self.prack_timers.pop();
            self.on_prack_timer(now, leg, at);
        }
        if self
            .last_registrar_sweep
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            self.registrar().expire(now);
            self.last_registrar_sweep = Some(now);
        }
        self.pump(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ring = self.ring_timers.peek().map(|Reverse((at, _))| *at);
        let session = self.session_timers.peek().map(|Reverse((at, _))| *at);
        let prack = self.prack_timers.peek().map(|Reverse((at, _))| *at);
        [self.layer.poll_timeout(), ring, session, prack]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    /// Live transactions and legs, for metrics and leak checks.
    pub fn counts(&self) -> (usize, usize) {
        (self.layer.len(), self.legs.len())
    }

    /// Current bindings of a registered user.
    pub fn lookup(&self, now: Instant, user: &str) -> Vec<Binding> {
        (self.registrar().lookup(now, user).into_iter())
            .cloned()
            .collect()
    }

    /// The registrar, for the user agents of the node's other shards to share
    /// ([`UserAgent::share_registrar`]).
    pub fn shared_registrar(&self) -> SharedRegistrar {
        self.registrar.clone()
    }

    /// Holds its bindings in `registrar` (another shard's) from now on, in place of its own.
    pub fn share_registrar(&mut self, registrar: SharedRegistrar) {
        self.registrar = registrar;
    }

    fn registrar(&self) -> std::sync::MutexGuard<'_, Registrar> {
        // A panic while holding it leaves bindings that are whole (each change is applied
        // after its checks): the poison is taken off rather than stopping every shard.
        self.registrar.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listener used to reach `remote` over `transport`.
    pub fn peer_for(&self, transport: Transport, remote: SocketAddr) -> Option<Peer> {
        peer_via(&self.config.listeners, transport, remote)
    }

    /// `sip:user@host:port` of ours as seen through the listener used for `peer`.
    pub fn local_uri(&self, user: &str, peer: &Peer) -> String {
        let user = if user.is_empty() { "switchboard" } else { user };
        format!("sip:{user}@{}", self.listener(peer).advertised)
    }

    /// The Call-ID of a leg's dialog.
    /// Where a leg's requests go.
    pub fn peer_of(&self, leg: LegId) -> Option<Peer> {
        self.legs.get(&leg).map(|l| l.peer)
    }

    /// The leg's dialog: its identity (Call-ID, tags), parties and route set.
    pub fn dialog(&self, leg: LegId) -> Option<&crate::dialog::Dialog> {
        self.legs.get(&leg).map(|l| &l.dialog)
    }

    pub fn call_id(&self, leg: LegId) -> Option<&str> {
        self.legs.get(&leg).map(|l| l.dialog.call_id.as_str())
    }

    fn listener(&self, peer: &Peer) -> &Listener {
        let same_transport = || {
            self.config
                .listeners
                .iter()
                .filter(|l| l.transport == peer.transport)
        };
        same_transport()
            .find(|l| l.local == peer.local)
            .or_else(|| same_transport().next())
            .or_else(|| self.config.listeners.first())
            .expect("at least one listener")
    }

    fn via(&self, peer: &Peer) -> String {
        let l = self.listener(peer);
        format!(
            "SIP/2.0/{} {};branch={};rport",
            peer.transport,
            l.advertised,
            // The branch names this shard: the responses come back to it (see `shard`).
            self.config
                .shard
                .tagged(&format!("z9hG4bK{}", random_token()))
        )
    }

    fn contact(&self, peer: &Peer) -> String {
        let l = self.listener(peer);
        // A shard's Contact names it: a peer's requests inside the dialog come back to it.
        format!(
            "<sip:switchboard@{}{}{}>",
            l.advertised,
            peer.transport.uri_param(),
            self.config.shard.contact_param()
        )
    }
}

#[cfg(test)]
mod tests;
