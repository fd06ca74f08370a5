//! The call core: the SIP user agent's state, the calls and their media endpoints, with no
//! socket, engine, store or clock of its own.
//! Every call is one [`model::Call`]: legs (a dialog and the media endpoint anchoring it) and a
//! controller. An admitted INVITE ([`incoming`]) to a number an application controls becomes
//! an application's call ([`app`]); any other is routed ([`route`]): a second leg dialed, the
//! two dialogs independent, media anchored on a pair of endpoints. The core reacts to leg and media
//! events, carries out commands on any call, and writes each call's CDR.
//!
//! Its protocol surface is sans-IO, in the style of quinn-proto: inputs go in through
//! `handle_*(now, …)`, what is to be done comes out of [`CallCore::poll_output`] (messages to
//! send, media commands, rows to store), and [`CallCore::poll_timeout`] says when to call
//! [`CallCore::handle_timeout`]. [`CallCore::run`] is the thin async driver that owns the
//! transports' sender, the media engine and the store's writer, and moves bytes and time; it
//! binds RTP port pairs ahead of need and hands them in ([`engine`]).

pub mod account_limits;
mod admission;
mod api;
mod app;
mod attended;
mod backlog;
pub mod caller_id;
mod command;
mod conference;
pub mod dial_plan;
mod driver;
mod engine_commands;
mod engine_events;
mod fork;
mod gather;
pub mod ids;
mod incoming;
mod model;
mod originate;
mod recently_ended;
mod recording;
mod route;
mod session;
pub mod status;
mod store_writes;
mod supervision;
#[cfg(test)]
mod tests;
mod timers;
mod transfer;
mod trunk_health;
pub mod visit;

#[cfg(debug_assertions)]
pub use api::Fault;
pub use api::{
    AgreedCodec, Beep, CallCommand, CallControl, CallError, CallEvent, CallView,
    ConferenceSnapshot, EventKind, GatherSpec, JoinSpec, MediaLink, Offered, Originate,
    Participant, ParticipantSnapshot, Quality, RecordChange, RecordOptions, RecordingOrigin,
    Rejection, RoomAnnouncement, Target,
};

use crate::call::dial_plan::DialPlan;
use crate::infra::clock::now_ms;
use crate::infra::store::StoreWriter;
use api::Request as AppRequest;
use model::{Call, Party};
use recording::OpenRecording;
pub use status::{CallStatus, Direction, HangupBy};
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use store_writes::StoreWrite;
pub use supervision::SupervisorRole;
use switchboard_media::health::Beat;
use switchboard_media::{EndpointId, MediaCommand, MediaEvent};
use switchboard_sip::message::{Method, SipMessage};
use switchboard_sip::transport::{ConnId, Inbound, Sender, TlsPeers, Transmit, TrustedSources};
use switchboard_sip::ua::{LegEvent, LegId, UaEvent, UserAgent};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

type CallKey = u64;

#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// An outgoing leg not answered in this time is cancelled (no-answer).
    pub ring_timeout: Duration,
    /// At shutdown, how long to wait for calls to end after hanging them up.
    pub shutdown_grace: Duration,
    /// Recordings are written under this directory, one subdirectory per call.
    pub recordings_dir: PathBuf,
    /// Beaten on every round of the core's loop (at least once a second), so a core stuck in
    /// one round shows as stalled.
    pub liveness: Option<Arc<Beat>>,
    /// New SIP requests (out of dialog) each source address may send, trunks' sources aside;
    /// `None`: unlimited.
    pub source_rate: Option<crate::infra::rate::Rate>,
    /// Which caller IDs an account's calls may present; `None` (embedding without accounts):
    /// any.
    pub caller_ids: Option<Arc<dyn crate::call::caller_id::CallerIdPolicy>>,
    /// How many calls each account may have and place a second; `None`: unlimited.
    pub account_limits: Option<Arc<crate::call::account_limits::AccountLimits>>,
    /// Where the driver copies the SIP messages of calls' dialogs (their ladders); `None`:
    /// they are not kept.
    pub sip_trace: Option<crate::infra::store::sip_trace::SipTrace>,
    /// The key other nodes seal their visits to this node's rooms with ([`visit::key`]);
    /// `None`: no visits are taken.
    pub visit_key: Option<[u8; 32]>,
}

/// Source addresses whose request rate is tracked at once (past it, new sources wait).
const RATE_SOURCES: usize = 65_536;
/// Watchers of one account's calls at once.
const MAX_WATCHERS: usize = 64;
/// The watchers' key of the operator's, who watch every call (an account's or none's, as a
/// routed call between trunks); never an account's SID.
pub const ALL_CALLS: &str = "*";

pub struct CallCore {
    ua: UserAgent,
    /// What the core asks of the media engine, for the driver; the pairs it has ready.
    media: engine_commands::Engine,
    routing: DialPlan,
    /// Writes for the store, handed to the driver as outputs.
    cdr: store_writes::Records,
    config: CoreConfig,
    /// Every call, whatever controls it, and its indexes: by its legs' dialogs (with the
    /// leg's place in the call), its legs' media endpoints and its SID. A call is boxed (about
    /// 1.4 kB): when the table grows it moves pointers, not every call, on the SIP thread.
    calls: HashMap<CallKey, Box<Call>>,
    legs: HashMap<LegId, (CallKey, usize)>,
    endpoints: HashMap<EndpointId, CallKey>,
    sids: HashMap<String, CallKey>,
    /// Calls let go a moment ago, for results about their last moments.
    recently_ended: recently_ended::RecentlyEnded,
    /// Their events on the way to controllers and observers, none lost to a full channel.
    backlog: backlog::EventBacklog,
    /// Watchers of every call of an account (the live socket), at most [`MAX_WATCHERS`] each.
    watchers: HashMap<String, Vec<mpsc::Sender<CallEvent>>>,
    /// Out-of-dialog requests per source address (trunks aside).
    source_rates: crate::infra::rate::Buckets<std::net::IpAddr>,
    /// Incoming calls to the numbers these match go to their controllers.
    controllers: Vec<(api::Dialed, mpsc::Sender<CallEvent>)>,
    /// When each call with a timer is next due (its [`timers::TimerTable`] holds which
    /// timers); stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, CallKey)>>,
    /// Recordings in progress, by the media engine's recording number.
    recordings: HashMap<u64, OpenRecording>,
    next_recording: u64,
    /// Conferences by name.
    conferences: HashMap<String, conference::Conference>,
    next_conference: u64,
    /// Supervised bridges, by their supervisor's call.
    supervisions: HashMap<CallKey, supervision::Supervision>,
    requests: Option<mpsc::UnboundedReceiver<AppRequest>>,
    next_key: CallKey,
    draining: bool,
    /// Which trunks answer their OPTIONS keep-alives.
    trunk_health: trunk_health::TrunkHealth,
    /// Refusing new calls before a stop; told once none is left.
    refusing: Option<oneshot::Sender<()>>,
    /// What the driver is to carry out, in order.
    outputs: VecDeque<Output>,
    /// The configuration's users and their accounts, as the routing last brought them.
    config_users: (HashMap<String, String>, HashMap<String, String>),
    /// The SIP logins accounts made (user → password, account), merged into the routing's.
    account_users: HashMap<String, (String, String)>,
    /// The wall clock at an instant (Unix milliseconds), to date records and events by the
    /// instants the core is given rather than by reading the clock: the driver re-anchors it
    /// every second, tests keep it and get wall times in virtual time.
    epoch: (Instant, i64),
    /// The wall time of the input being handled.
    wall: i64,
    /// Where routed calls go whose routes ask for services ([`Output::Serve`]).
    route_services: Option<mpsc::Sender<ServeRoute>>,
}

/// What the core asks of its transports.
pub enum Output {
    /// A SIP message to send.
    Transmit(Transmit),
    /// A TCP connection carried a REGISTER that authenticated as `login` (of `account`): a
    /// tenant's connection (see [`switchboard_sip::transport::Sender::tenant`]).
    Tenant {
        conn: ConnId,
        login: String,
        account: Option<String>,
    },
    /// The addresses of the trunks (at start and after a reload).
    TrustedSources(TrustedSources),
    /// What TLS listeners present and how TLS peers are checked (at start and after a
    /// reload: a renewed certificate is taken without a restart).
    Tls {
        server: Option<Arc<rustls::ServerConfig>>,
        peers: TlsPeers,
    },
    /// The certificate at `addr` must name `name` (a `sips:` URI dialed by its host name).
    TlsName {
        addr: std::net::SocketAddr,
        name: rustls::pki_types::ServerName<'static>,
    },
    /// A routed call was answered and its route asks the services beside the core for
    /// something (a stream, transcripts, machine detection).
    Serve(ServeRoute),
    /// A row for the store (boxed: a call's row is large beside the other outputs).
    Store(Box<StoreWrite>),
    /// Something for the media engine.
    Media(MediaCommand),
    /// An application asked for a direct line into an endpoint's injection queue: the driver,
    /// which holds the engine, makes it.
    Link(api::LinkReply),
    /// The answer to an application's request, sent after the media commands it gave rise to
    /// (see [`Reply`]).
    Reply(Reply),
}

/// An answer to an application's request, to be sent once the engine has been handed what
/// the request asked of it: an application that hears back may rely on it (audio it sends into
/// a bridge it asked for is relayed).
pub struct Reply(Box<dyn FnOnce() + Send>);

impl Reply {
    pub fn send(self) {
        (self.0)()
    }
}

/// A routed call for the route services, and what its route asks of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeRoute {
    pub call: String,
    pub account: Option<String>,
    pub from: String,
    pub to: String,
    pub services: dial_plan::RouteServices,
}

impl CallCore {
    /// The routing's users from now on: the configuration's, then the accounts' logins whose
    /// names the configuration does not use; the user agent's registrar takes the same.
    fn merge_account_users(&mut self) {
        let (mut users, mut accounts) = self.config_users.clone();
        for (name, (password, account)) in &self.account_users {
            if !users.contains_key(name) {
                users.insert(name.clone(), password.clone());
                accounts.insert(name.clone(), account.clone());
            }
        }
        self.ua.set_users(users.clone());
        self.routing.users = users;
        self.routing.user_accounts = accounts;
    }
}

/// The id of a call begun at `wall_ms`, in its stored form ("CA" and 32 hex digits).
pub fn new_call_sid(wall_ms: i64) -> String {
    ids::CallId::starting_at(wall_ms).sid()
}

impl CallCore {
    /// A core whose clock starts at `(now, wall_ms)`: the instant the driver reads and the
    /// wall time then (Unix milliseconds); the core reads no clock of its own.
    pub fn new(
        ua: UserAgent,
        routing: DialPlan,
        config: CoreConfig,
        (now, wall_ms): (Instant, i64),
    ) -> (Self, CallControl) {
        metrics::gauge!("switchboard_calls_active").set(0.0);
        let (control, requests) = CallControl::new();
        let source_rate = config.source_rate;
        let mut trunk_health = trunk_health::TrunkHealth::default();
        trunk_health.reconfigure(&routing);
        let config_users = (routing.users.clone(), routing.user_accounts.clone());
        let core = Self {
            ua,
            media: engine_commands::Engine::default(),
            routing,
            cdr: store_writes::Records::default(),
            config,
            calls: HashMap::new(),
            legs: HashMap::new(),
            endpoints: HashMap::new(),
            backlog: backlog::EventBacklog::default(),
            watchers: HashMap::new(),
            source_rates: crate::infra::rate::Buckets::new(source_rate, RATE_SOURCES),
            sids: HashMap::new(),
            recently_ended: Default::default(),
            controllers: Vec::new(),
            timers: BinaryHeap::new(),
            recordings: HashMap::new(),
            next_recording: 0,
            conferences: HashMap::new(),
            supervisions: HashMap::new(),
            next_conference: 0,
            requests: Some(requests),
            next_key: 0,
            draining: false,
            refusing: None,
            trunk_health,
            outputs: VecDeque::new(),
            config_users,
            account_users: HashMap::new(),
            route_services: None,
            epoch: (now, wall_ms),
            wall: wall_ms,
        };
        (core, control)
    }

    /// The wall time of `now`, from the epoch.
    fn clock_to(&mut self, now: Instant) {
        let (at, wall) = self.epoch;
        let since = |a: Instant, b: Instant| i64::try_from(a.duration_since(b).as_millis());
        self.wall = match now.checked_duration_since(at) {
            Some(_) => wall.saturating_add(since(now, at).unwrap_or(i64::MAX)),
            None => wall.saturating_sub(since(at, now).unwrap_or(i64::MAX)),
        };
    }

    /// Ties the core's instants to the wall clock anew (it drifts from the monotonic clock).
    pub fn anchor(&mut self, now: Instant, wall_ms: i64) {
        self.epoch = (now, wall_ms);
        self.clock_to(now);
    }

    /// Tells the transports what the routing says about peers: which sources are trunks,
    /// and how TLS is presented and checked.
    fn announce_routing(&mut self) {
        self.trunk_health.reconfigure(&self.routing);
        self.show_trunk_health();
        (self.outputs).push_back(Output::TrustedSources(self.routing.trusted_sources()));
        self.outputs.push_back(Output::Tls {
            server: self.routing.tls.server.clone(),
            peers: self.routing.tls_peers(),
        });
    }

    /// A SIP message from the transports, and what it leads to.
    pub fn handle_inbound(&mut self, now: Instant, msg: Inbound) {
        self.on_inbound(now, msg);
        self.process(now);
    }

    /// An event of the media engine, and what it leads to.
    pub fn handle_media_event(&mut self, now: Instant, event: MediaEvent) {
        self.on_media_event(now, event);
        self.process(now);
    }

    /// The clock reached [`CallCore::poll_timeout`]: retransmissions, ring timeouts, gathers'
    /// and calls' time limits.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock_to(now);
        self.ua.handle_timeout(now);
        self.expire_call_timers(now);
        self.probe_trunks(now);
        self.process(now);
    }

    /// When [`CallCore::handle_timeout`] is next due.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        // Events waiting for a subscriber's room are offered again shortly.
        let backlog = self
            .backlog
            .pending()
            .then(|| now + Duration::from_millis(10));
        let probe = self.trunk_health.poll_timeout(now);
        [
            self.ua.poll_timeout(),
            self.next_call_timer(),
            backlog,
            probe,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing for the transports to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        (self.poll_media())
            .or_else(|| self.outputs.pop_front())
            .or_else(|| (self.cdr.writes.pop_front()).map(|w| Output::Store(Box::new(w))))
    }

    /// Whether the store's writer holds more rows than it may (the driver says so before
    /// each input): new calls are refused while it does.
    pub fn set_store_overloaded(&mut self, overloaded: bool) {
        self.cdr.set_overloaded(overloaded);
    }

    /// Shutting down: every call is hung up; the core is done once they have ended.
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.clock_to(now);
        info!(calls = self.calls.len(), "shutting down: hanging up calls");
        self.draining = true;
        self.hang_up_all(now);
        self.process(now);
    }

    /// Whether a shutdown has finished: no call left, no event undelivered.
    pub fn is_done(&self) -> bool {
        self.draining && self.calls.is_empty() && !self.backlog.pending()
    }

    /// A message from the transports. A source over its rate of new requests (a flood) is
    /// dropped here, before a transaction or an answer costs anything: answering would send
    /// traffic to an address that may be forged.
    fn on_inbound(&mut self, now: Instant, msg: Inbound) {
        self.clock_to(now);
        self.ua.observe_sojourn(now, msg.received);
        if let SipMessage::Request(r) = &msg.message
            && !matches!(r.method, Method::Ack | Method::Cancel)
            && r.headers.to_tag().is_none()
        {
            let ip = msg.peer.remote.ip();
            if self.routing.trunk_for_source(ip).is_none()
                && self.source_rates.check(&ip, now).is_err()
            {
                metrics::counter!("switchboard_sip_rejected_total", "reason" => "rate")
                    .increment(1);
                return;
            }
        }
        let (refused, at_cap) = (self.ua.overload().refused, self.ua.refused_at_cap());
        self.ua.on_message(now, msg.message, msg.peer);
        if self.ua.overload().refused > refused {
            metrics::counter!("switchboard_sip_rejected_total", "reason" => "overload")
                .increment(1);
        }
        if self.ua.refused_at_cap() > at_cap {
            metrics::counter!("switchboard_sip_rejected_total", "reason" => "transactions")
                .increment(1);
        }
    }

    /// Shows the standing queue in front of the core and the admission rate overload control
    /// holds new calls to (0: none).
    pub(super) fn report_load(&self) {
        let load = self.ua.overload();
        metrics::gauge!("switchboard_sip_queue_delay_seconds").set(load.queue.as_secs_f64());
        metrics::gauge!("switchboard_sip_admission_rate").set(load.rate.unwrap_or(0.0));
    }

    /// At the end of the shutdown grace: calls that were hung up but whose media never came back
    /// (a media worker that died holds it) get their CDRs written with the counters known, rather
    /// than left `in-progress`.
    fn settle_unreleased(&mut self) {
        let keys: Vec<CallKey> = self.calls.keys().copied().collect();
        for key in keys {
            self.settle(key);
        }
    }

    /// Reacts to user agent events until none are left, queueing what they produce.
    fn process(&mut self, now: Instant) {
        loop {
            while let Some(t) = self.ua.poll_transmit() {
                self.outputs.push_back(Output::Transmit(t));
            }
            let Some(event) = self.ua.poll_event() else {
                break;
            };
            match event {
                UaEvent::Incoming { leg, request, peer } => {
                    self.on_incoming(now, leg, *request, peer)
                }
                UaEvent::Leg { leg, event } => self.on_leg_event(now, leg, event),
                UaEvent::Authenticated { peer, user } => {
                    if let Some(conn) = peer.conn {
                        let account = self.routing.user_accounts.get(&user).cloned();
                        let login = user;
                        (self.outputs).push_back(Output::Tenant {
                            conn,
                            login,
                            account,
                        });
                    }
                }
                UaEvent::Pong { ping, code } => self.on_pong(now, ping, code),
                // The core registers with no one.
                UaEvent::Registered { .. } => {}
            }
        }
    }

    /// Answers an application's request in turn with the outputs (see [`Reply`]).
    fn reply<T: Send + 'static>(&mut self, to: oneshot::Sender<T>, value: T) {
        let send = move || {
            let _ = to.send(value);
        };
        self.outputs.push_back(Output::Reply(Reply(Box::new(send))));
    }

    fn on_request(&mut self, now: Instant, request: AppRequest) {
        self.clock_to(now);
        match request {
            AppRequest::Originate(o, reply) => {
                let answer = self.originate(now, *o);
                self.reply(reply, answer);
            }
            AppRequest::Command {
                call,
                command,
                reply,
            } => {
                let answer = self.command(now, &call, command);
                self.reply(reply, answer);
            }
            AppRequest::Subscribe { call, events } => self.subscribe(&call, events),
            AppRequest::WatchAccount { account, events } => {
                let watching = self.watchers.entry(account).or_default();
                watching.retain(|w| !w.is_closed());
                // Past the bound the new watcher is dropped: its receiver sees the end.
                if watching.len() < MAX_WATCHERS {
                    watching.push(events);
                }
            }
            AppRequest::Control { dialed, events } => self.register_controller(dialed, events),
            AppRequest::Release(dialed) => self.controllers.retain(|(d, _)| *d != dialed),
            AppRequest::ServeRoutes(tx) => self.route_services = Some(tx),
            AppRequest::Drain { retry_after, done } => {
                info!(
                    calls = self.calls.len(),
                    "draining: new calls are refused, calls up go on"
                );
                self.ua.set_refusing(Some(retry_after));
                self.refusing = Some(done);
            }
            AppRequest::Reconfigure(routing) => {
                self.routing = *routing;
                self.config_users = (
                    self.routing.users.clone(),
                    self.routing.user_accounts.clone(),
                );
                self.merge_account_users();
                self.announce_routing();
                info!(
                    trunks = self.routing.trunks.len(),
                    routes = self.routing.routes.len(),
                    users = self.routing.users.len(),
                    "routing reloaded"
                );
            }
            AppRequest::AccountUsers(users, reply) => {
                self.account_users = users;
                self.merge_account_users();
                if let Some(reply) = reply {
                    self.reply(reply, ());
                }
            }
            AppRequest::Conferences(reply) => {
                let answer = self.conference_snapshots();
                self.reply(reply, answer);
            }
            AppRequest::EndConference(sid, reply) => {
                let answer = self.end_conference_by_sid(&sid);
                self.reply(reply, answer);
            }
            AppRequest::View(call, reply) => {
                let view = (self.sids.get(&call))
                    .and_then(|key| self.calls.get(key))
                    .map(|c| CallView {
                        status: c.record.status,
                        recording: c.recording.clone(),
                        account: c.record.account_sid.clone(),
                    })
                    .ok_or(CallError::NotFound(call));
                self.reply(reply, view);
            }
            AppRequest::BySipCallId(sip, reply) => {
                let found = (self.calls.values())
                    .filter(|c| !c.ended())
                    .find(|c| c.has_sip_call_id(&sip))
                    .map(|c| c.record.id.clone());
                self.reply(reply, found);
            }
            AppRequest::MediaLink(call, reply) => match self.media_link(&call) {
                Ok(endpoint) => {
                    (self.outputs).push_back(Output::Link(api::LinkReply::Own { endpoint, reply }))
                }
                Err(e) => {
                    self.reply(reply, Err(e));
                }
            },
            AppRequest::PeerLink(call, reply) => match self.peer_link(&call) {
                Ok(Some((call, endpoint))) => {
                    (self.outputs).push_back(Output::Link(api::LinkReply::Peer {
                        call,
                        endpoint,
                        reply,
                    }))
                }
                other => {
                    self.reply(reply, other.map(|_| None));
                }
            },
            #[cfg(debug_assertions)]
            AppRequest::Fault(fault) => fault.strike(),
        }
    }

    fn on_leg_event(&mut self, now: Instant, leg: LegId, event: LegEvent) {
        let Some(&(key, index)) = self.legs.get(&leg) else {
            // A re-INVITE on a leg no call owns any more.
            if matches!(event, LegEvent::ReInvite { .. }) {
                self.ua.respond_reinvite(now, leg, 481, None);
            }
            return;
        };
        if index == transfer::TRANSFER_LEG {
            return self.on_transfer_leg_event(now, key, event);
        }
        let forking = |c: &Call| c.forking.as_ref().is_some_and(|f| f.leg == index);
        let event = match self.calls.get(&key).map(|c| &**c).is_some_and(forking) {
            true => match self.on_fork_event(now, key, leg, event) {
                Some(event) => event,
                None => return,
            },
            false => event,
        };
        match event {
            LegEvent::SessionExpired => {
                return self.on_leg_lost(now, key, index, "session-expired");
            }
            LegEvent::PrackTimeout => return self.on_leg_lost(now, key, index, "prack-timeout"),
            _ => {}
        }
        match self.calls.get(&key).map(|c| c.routed()) {
            Some(true) => self.on_route_leg_event(now, key, Party::of(index), event),
            Some(false) => self.on_app_leg_event(now, key, event),
            None => {}
        }
    }

    /// A leg's dialog is gone for want of its peer (`cause`): a session it stopped refreshing
    /// (RFC 4028: the UA sent its BYE), or a reliable provisional it never acknowledged (RFC
    /// 3262: the UA refused its INVITE). The call ends with it, whoever controls it.
    fn on_leg_lost(&mut self, now: Instant, key: CallKey, index: usize, cause: &'static str) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        warn!(leg = %call.legs[index].name, cause, "the peer went silent");
        call.legs[index].dialog = None;
        self.hang_up(now, key, 487, cause, &[]);
    }
}
