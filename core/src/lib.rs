//! The call core: the SIP user agent's state, the calls and their media endpoints, with no
//! socket, engine, store, clock or async runtime of its own (this crate does not depend on
//! tokio, sqlx, axum or reqwest).
//! Every call is one [`model::Call`]: legs (a dialog and the media endpoint anchoring it) and a
//! controller. An admitted INVITE ([`lifecycle`]) to a number an application controls becomes
//! an application's call ([`app`]); any other is routed ([`route`]): a second leg dialed, the
//! two dialogs independent, media anchored on a pair of endpoints. The core is a dispatcher in
//! the manner of quinn's endpoint: it finds the call an input is for in its table
//! ([`calls`]) and lends it a context; the call's handlers decide, and ask the core for what
//! reaches beyond the call. The core's own part is in three places: this module (its face and
//! the routing of SIP, media and timer inputs), [`lifecycle`] (calls begin and end) and
//! [`requests`] (what applications ask, their commands that reach more than one call).
//!
//! Its protocol surface is sans-IO, in the style of quinn-proto: inputs go in through
//! `handle_*(now, …)` (SIP messages, media events, applications' requests, the time), what is
//! to be done comes out of [`CallCore::poll_output`] (messages to send, media commands, rows
//! to store, answers to requests and events for subscribers, both named by id), and
//! [`CallCore::poll_timeout`] says when to call [`CallCore::handle_timeout`]. The core holds
//! no channel, socket or clock: the driver (`switchboard_control::call::Driver`) is the thin
//! async shell that owns the transports' sender, the media engine, the store's writer and the
//! applications' channels behind the ids, and moves bytes and time; it binds RTP port pairs
//! ahead of need and hands them in. The rows the core fills ([`rows`]) are stored by the
//! control plane's store.

pub mod account_limits;
mod admission;
mod api;
mod app;
mod attended;
pub mod caller_id;
mod calls;
mod command;
mod conference;
mod context;
mod controllers;
pub mod dial_plan;
mod engine_commands;
mod engine_events;
mod fork;
mod gather;
pub mod ids;
mod lifecycle;
mod model;
mod originate;
pub mod rate;
mod recently_ended;
mod recording;
mod requests;
mod route;
pub mod rows;
mod session;
pub mod sid;
pub mod status;
mod store_writes;
mod supervision;
mod tally;
mod timers;
mod transfer;
pub use tally::NodeTally;
mod trunk_health;
pub mod visit;

#[cfg(debug_assertions)]
pub use api::Fault;
pub use api::{
    AgreedCodec, Beep, CallCommand, CallError, CallEvent, CallView, ChannelLimit,
    ConferenceSnapshot, Dialed, EventKind, GatherSpec, JoinSpec, MediaLink, Offered, Originate,
    Participant, ParticipantSnapshot, Quality, RecordChange, RecordOptions, RecordingOrigin,
    Rejection, RoomAnnouncement, Target,
};

use crate::dial_plan::DialPlan;
use model::{Call, Party};
pub use requests::{AccountUser, Answer, Request, RequestId, SubscriberId};
pub use status::{CallStatus, Direction, HangupBy};
use std::cmp::Reverse;
use std::collections::VecDeque;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use store_writes::StoreWrite;
pub use supervision::SupervisorRole;
use switchboard_media::{EndpointId, MediaCommand, MediaEvent};
use switchboard_sip::message::{Method, SipMessage};
use switchboard_sip::transport::{ConnId, Inbound, TlsPeers, Transmit, TrustedSources};
use switchboard_sip::ua::{LegEvent, LegId, UaEvent, UserAgent};
use tracing::{info, warn};

type CallKey = u64;

#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// An outgoing leg not answered in this time is cancelled (no-answer).
    pub ring_timeout: Duration,
    /// Recordings are written under this directory, one subdirectory per call.
    pub recordings_dir: PathBuf,
    /// New SIP requests (out of dialog) each source address may send, trunks' sources aside;
    /// `None`: unlimited.
    pub source_rate: Option<crate::rate::Rate>,
    /// Which caller IDs an account's calls may present; `None` (embedding without accounts):
    /// any.
    pub caller_ids: Option<Arc<dyn crate::caller_id::CallerIdPolicy>>,
    /// How many calls each account may have and place a second; `None`: unlimited.
    pub account_limits: Option<Arc<crate::account_limits::AccountLimits>>,
    /// The key other nodes seal their visits to this node's rooms with ([`visit::key`]);
    /// `None`: no visits are taken.
    pub visit_key: Option<[u8; 32]>,
    /// Which of the node's call-core shards this core is: its calls' ids name it, and the
    /// numbers it gives the shared media engine's mixers and recordings are its own.
    pub shard: switchboard_sip::shard::Shard,
    /// The node's calls per account and channel group, kept by all of its shards (their
    /// limits hold node-wide); `None`: this core holds all the node's calls and counts them.
    pub tally: Option<Arc<tally::NodeTally>>,
    /// Bound RTP port pairs this core keeps ready for calls to come ([`media_reserve`] for a
    /// range shared by several cores).
    pub media_reserve: usize,
}

pub use engine_commands::RESERVE as MEDIA_RESERVE;

/// The pairs each of `cores` cores keeps ready out of a range of `ports` RTP ports: up to a
/// quarter of the range shared among them, between what one input takes and
/// [`engine_commands::RESERVE`]. Each core's ready pairs are idle ports the others cannot
/// have, so a small range shared by many cores keeps fewer each.
pub fn media_reserve(ports: usize, cores: usize) -> usize {
    (ports / 2 / 4 / cores.max(1)).clamp(engine_commands::RESERVE_LEAST, engine_commands::RESERVE)
}

/// How far the wall clock may drift from the core's reckoning before it is re-anchored.
const WALL_DRIFT_MS: u64 = 20;

/// How a secret prints in logs and `Debug` output (a trunk's password in the routing, an API
/// key in the control plane).
pub const REDACTED: &str = "\"***\"";

/// Source addresses whose request rate is tracked at once (past it, new sources wait).
const RATE_SOURCES: usize = 65_536;
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
    /// Every call, whatever controls it, and its indexes.
    calls: calls::Calls,
    /// Calls let go a moment ago, for results about their last moments.
    recently_ended: recently_ended::RecentlyEnded,
    /// Watchers of every call of an account (the live socket), a bounded number each.
    watchers: HashMap<String, Vec<SubscriberId>>,
    /// Out-of-dialog requests per source address (trunks aside).
    source_rates: crate::rate::Buckets<std::net::IpAddr>,
    /// The applications registered to control calls.
    controllers: controllers::Controllers,
    /// The call each of the other subscribers hears (its application or an observer), so
    /// that one gone is dropped from its call at once rather than sent to until the call ends.
    subscribed: HashMap<SubscriberId, CallKey>,
    /// When each call with a timer is next due (its [`timers::TimerTable`] holds which
    /// timers); stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, CallKey)>>,
    /// Recordings in progress.
    recordings: recording::Recordings,
    /// Conferences by name.
    rooms: conference::Rooms,
    /// What the call whose handler just ran asks of the core (see [`context::CoreAsk`]).
    asks: Vec<context::CoreAsk>,
    /// Supervised bridges, by their supervisor's call.
    supervisions: supervision::Supervisions,
    draining: bool,
    /// Which trunks answer their OPTIONS keep-alives.
    trunk_health: trunk_health::TrunkHealth,
    /// Refusing new calls before a stop.
    refusing: bool,
    /// The drain request, answered once no call is left.
    drained: Option<RequestId>,
    /// What the driver is to carry out, in order.
    outputs: VecDeque<Output>,
    /// The configuration's users and their accounts, as the routing last brought them.
    config_users: (HashMap<String, String>, HashMap<String, String>),
    /// The SIP logins accounts made (user → password, account), merged into the routing's.
    account_users: HashMap<String, requests::AccountUser>,
    /// SIP domains admitting callers by their source address (see [`dial_plan::DomainSource`]).
    domain_sources: Vec<dial_plan::DomainSource>,
    /// The wall clock at an instant (Unix milliseconds), to date records and events by the
    /// instants the core is given rather than by reading the clock: the driver re-anchors it
    /// every second, tests keep it and get wall times in virtual time.
    epoch: (Instant, i64),
    /// The wall time of the input being handled.
    wall: i64,
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
    /// The answer to an application's request, after the media commands it gave rise to:
    /// an application that hears back may rely on the engine knowing of them.
    Reply { to: RequestId, answer: Answer },
    /// A call's event for a subscriber, after the media commands of the same round. Events
    /// of one `call` keep their order whatever waits.
    Event {
        to: SubscriberId,
        call: u64,
        event: CallEvent,
    },
    /// The core names this subscriber no more (its call is over, or it was refused).
    Unsubscribe(SubscriberId),
    /// A trunk's keep-alives found it up or down: for the node's other shards, which do not
    /// ping the trunks themselves ([`CallCore::handle_trunk_health`]).
    TrunkHealth { trunk: String, up: bool },
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
    /// names the configuration does not use; the user agent's registrar takes those that may
    /// register.
    fn merge_account_users(&mut self) {
        let (mut users, mut accounts) = self.config_users.clone();
        let mut registering = users.clone();
        for (name, user) in &self.account_users {
            if users.contains_key(name) {
                continue;
            }
            if user.registers {
                registering.insert(name.clone(), user.password.clone());
            }
            // A login that may only register is still its account's (calls to it are), but
            // its INVITEs are not admitted.
            accounts.insert(name.clone(), user.account.clone());
            if user.calls {
                users.insert(name.clone(), user.password.clone());
            }
        }
        self.ua.set_users(registering);
        self.routing.users = users;
        self.routing.user_accounts = accounts;
    }
}

/// The id of a call begun at `wall_ms`, in its stored form ("CA" and 32 hex digits).
pub fn new_call_sid(wall_ms: i64, shard: switchboard_sip::shard::Shard) -> String {
    ids::CallId::starting_at(wall_ms, shard).sid()
}

/// Which of `count` shards holds the call a request names (its SID or Telnyx's call control
/// id); a name that is no call's goes to the first, which answers that it knows no such call.
pub fn shard_of_call(call: &str, count: u16) -> u16 {
    ids::CallId::parse(call).map_or(0, |id| id.shard(count))
}

/// The shard of `count` whose mixer or recording a media engine's number is (see
/// [`CoreConfig::shard`]): each shard numbers from its index times 2^48.
pub fn shard_of_media_number(number: u64, count: u16) -> u16 {
    u16::try_from(number >> MEDIA_NUMBER_BITS)
        .ok()
        .filter(|shard| *shard < count)
        .unwrap_or(0)
}

/// The bits of a mixer's or recording's number below its shard's index.
const MEDIA_NUMBER_BITS: u32 = 48;

impl CallCore {
    /// A core whose clock starts at `(now, wall_ms)`: the instant the driver reads and the
    /// wall time then (Unix milliseconds); the core reads no clock of its own.
    pub fn new(
        ua: UserAgent,
        routing: DialPlan,
        config: CoreConfig,
        (now, wall_ms): (Instant, i64),
    ) -> Self {
        metrics::gauge!("switchboard_calls_active").set(0.0);
        let source_rate = config.source_rate;
        let mut trunk_health = trunk_health::TrunkHealth::default();
        trunk_health.reconfigure(&routing);
        let config_users = (routing.users.clone(), routing.user_accounts.clone());
        let media_numbers = u64::from(config.shard.index) << MEDIA_NUMBER_BITS;
        let mut core = Self {
            ua,
            media: engine_commands::Engine::keeping(config.media_reserve),
            routing,
            cdr: store_writes::Records::default(),
            calls: calls::Calls::counted_in(config.tally.clone()),
            config,
            watchers: HashMap::new(),
            source_rates: crate::rate::Buckets::new(source_rate, RATE_SOURCES),
            recently_ended: Default::default(),
            controllers: Default::default(),
            subscribed: HashMap::new(),
            timers: BinaryHeap::new(),
            recordings: recording::Recordings::numbered_from(media_numbers),
            rooms: conference::Rooms::numbered_from(media_numbers),
            asks: Vec::new(),
            supervisions: Default::default(),
            draining: false,
            refusing: false,
            drained: None,
            trunk_health,
            outputs: VecDeque::new(),
            config_users,
            account_users: HashMap::new(),
            domain_sources: Vec::new(),
            epoch: (now, wall_ms),
            wall: wall_ms,
        };
        // What the transports are to know of the routing from the start.
        core.announce_routing();
        core
    }

    /// A call and its context, lent together.
    fn call_mut(&mut self, key: CallKey) -> Option<(&mut Call, context::CallContext<'_>)> {
        debug_assert!(self.asks.is_empty(), "a call's asks were left undone");
        let (call, dialogs) = self.calls.lend(key)?;
        let cx = context::CallContext {
            key,
            wall: self.wall,
            ua: &mut self.ua,
            media: &mut self.media,
            records: &mut self.cdr,
            outputs: &mut self.outputs,
            watchers: &self.watchers,
            wakes: &mut self.timers,
            dialogs,
            routing: &self.routing,
            trunk_health: &self.trunk_health,
            ring_timeout: self.config.ring_timeout,
            asks: &mut self.asks,
        };
        Some((call, cx))
    }

    /// The conferences and what they act through, lent together (what they act through is
    /// also what starting any recording takes).
    fn rooms_mut(&mut self) -> (&mut conference::Rooms, context::RoomContext<'_>) {
        let cx = context::RoomContext {
            calls: &mut self.calls,
            wall: self.wall,
            media: &mut self.media,
            records: &mut self.cdr,
            recordings: &mut self.recordings,
            recordings_dir: &self.config.recordings_dir,
            outputs: &mut self.outputs,
            watchers: &self.watchers,
        };
        (&mut self.rooms, cx)
    }

    /// What the call `key`'s handler asked of the core, in order, in the call's span.
    fn carry_out_asks(&mut self, now: Instant, key: CallKey) {
        let _span = self.calls.get(&key).map(|c| c.span.clone().entered());
        for ask in std::mem::take(&mut self.asks) {
            match ask {
                context::CoreAsk::End {
                    status,
                    code,
                    by,
                    cause,
                } => self.end_call(now, key, status, code, by, cause),
                context::CoreAsk::HangUp {
                    code,
                    cause,
                    headers,
                } => self.hang_up(now, key, code, cause, &headers),
                context::CoreAsk::RouteRecording(options) => {
                    self.record_start(key, options);
                    if let Some(sid) = self.calls.get(&key).and_then(|c| c.recording.as_ref()) {
                        info!(recording = %sid, "recording the call");
                    }
                }
                context::CoreAsk::JoinReplaced {
                    party,
                    referrer_leg,
                    replaces,
                } => self.on_attended_refer(now, key, party, referrer_leg, replaces),
            }
        }
    }

    /// Every call whose heap entry is due: its due timers go off, earliest first, and the
    /// heap learns when it is next due.
    fn expire_call_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !(self.calls.get_mut(&key)).is_some_and(|c| c.timers.woken(at)) {
                continue;
            }
            while let Some(timer) = (self.calls.get_mut(&key)).and_then(|c| c.timers.take_due(now))
            {
                self.on_call_timer(now, key, timer);
            }
            let next = (self.calls.get_mut(&key)).and_then(|c| c.timers.reschedule());
            if let Some(next) = next {
                self.timers.push(Reverse((next, key)));
            }
        }
    }

    /// One of a call's timers went off: the call handles what is its own, the core ends it
    /// when it asks.
    fn on_call_timer(&mut self, now: Instant, key: CallKey, timer: timers::CallTimer) {
        let Some((call, mut cx)) = self.call_mut(key) else {
            return;
        };
        let _span = call.span.clone().entered();
        match call.handle_timeout(&mut cx, now, timer) {
            None => {}
            Some(timers::Expiry::TimeLimit) => {
                info!("time limit reached: hanging up");
                self.hang_up(now, key, 487, "time-limit", &[]);
            }
            Some(timers::Expiry::NoCommand) => {
                info!("no command from the application: rejecting");
                let (status, cause) = (CallStatus::NoAnswer, Some("no-command"));
                self.end_call(now, key, status, Some(480), HangupBy::System, cause);
            }
        }
    }

    fn next_call_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
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

    /// Ties the core's instants to the wall clock anew when it has drifted from the monotonic
    /// clock by more than `WALL_DRIFT_MS`. Only then: a wall time read to the millisecond is up
    /// to one off the instant it is read at, and re-anchoring on every reading would make a
    /// call's times (answered, ended) disagree with its timers by that much.
    pub fn anchor(&mut self, now: Instant, wall_ms: i64) {
        self.clock_to(now);
        if self.wall.abs_diff(wall_ms) > WALL_DRIFT_MS {
            self.epoch = (now, wall_ms);
            self.clock_to(now);
        }
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

    /// A media event goes to the call whose endpoint it names, but for what is more than the
    /// call's: a released endpoint (the call's end), recordings (a saved one names no
    /// endpoint), a conference's announcement (found through the conference).
    fn on_media_event(&mut self, now: Instant, event: MediaEvent) {
        self.clock_to(now);
        let key = event.endpoint().and_then(|id| self.calls.of_endpoint(id));
        match (event, key) {
            (MediaEvent::RecordingSaved(saved), _) => self.on_recording_saved(saved),
            (
                MediaEvent::AnnouncementEnded {
                    conference,
                    announcement,
                    stopped,
                },
                _,
            ) => {
                let (rooms, mut cx) = self.rooms_mut();
                rooms.on_announcement_ended(&mut cx, conference, announcement, stopped);
            }
            (_, None) => {}
            (MediaEvent::Released { id, stats }, Some(key)) => self.on_released(key, id, stats),
            (
                MediaEvent::RecordingStopped {
                    recording, reason, ..
                },
                Some(key),
            ) => {
                let Some(recording) = self.recordings.sid(recording).map(str::to_owned) else {
                    return;
                };
                if let Some(call) = self.calls.get_mut(&key) {
                    call.recording.take_if(|r| *r == recording);
                }
                let reason = reason.as_str();
                self.emit(key, EventKind::RecordingStopped { recording, reason });
            }
            (event, Some(key)) => {
                if let Some((call, mut cx)) = self.call_mut(key) {
                    let _span = call.span.clone().entered();
                    call.handle_media(&mut cx, now, event);
                }
                self.carry_out_asks(now, key);
            }
        }
    }

    /// A recording's file is complete: its row is stored, and the call that asked hears of it
    /// (and may now be let go).
    fn on_recording_saved(&mut self, saved: switchboard_media::record::RecordingSaved) {
        let Some((key, row)) = self.recordings.saved(&mut self.cdr, self.wall, &saved) else {
            return;
        };
        // Ended with its call, or by a media failure: no longer running either.
        if let Some(call) = self.calls.get_mut(&key) {
            call.recording.take_if(|r| *r == row.id);
        }
        self.emit(
            key,
            EventKind::RecordingSaved {
                recording: row.id,
                path: row.path,
                duration_ms: saved.duration_ms,
                channels: saved.channels,
                size_bytes: saved.bytes,
                error: saved.error,
            },
        );
        if let Some(call) = self.calls.get_mut(&key) {
            call.recordings_open -= 1;
        }
        self.forget_if_done(key);
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
        let probe = (self.pings_trunks())
            .then(|| self.trunk_health.poll_timeout(now))
            .flatten();
        [self.ua.poll_timeout(), self.next_call_timer(), probe]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next thing for the transports to do.
    /// The media commands come first, then the rows to store (a reader that hears an answer
    /// or an event and syncs with the store's writer finds its rows queued before it), then
    /// the rest in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        (self.poll_media())
            .or_else(|| (self.cdr.writes.pop_front()).map(|w| Output::Store(Box::new(w))))
            .or_else(|| self.outputs.pop_front())
    }

    /// How many more bound pairs the core would like ready ([`CallCore::handle_reserved`]).
    pub fn endpoints_wanted(&self) -> usize {
        self.media.wanted()
    }

    /// A pair the driver bound (with the engine's `reserve`), ready for a call.
    pub fn handle_reserved(&mut self, endpoint: switchboard_media::Endpoint) {
        self.media.reserved(endpoint);
    }

    /// The driver could bind no pair: calls that need one are refused, for this reason.
    pub fn handle_reserve_failed(&mut self, error: switchboard_media::MediaError) {
        self.media.reserve_failed(error);
    }

    /// The pairs still ready, to be given back at the end (the engine's `release`).
    pub fn take_reserved(&mut self) -> Vec<EndpointId> {
        self.media.take_reserved()
    }

    /// The next media command, before any other output: the engine hears of an endpoint's
    /// configuration before its peer hears of the answer that configured it.
    fn poll_media(&mut self) -> Option<Output> {
        self.media.poll_command().map(Output::Media)
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

    /// Whether a shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.draining
    }

    /// Whether a shutdown has finished: no call left.
    pub fn is_done(&self) -> bool {
        self.draining && self.calls.is_empty()
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

    /// The driver's second: the wall clock read now ([`CallCore::anchor`]), and the load shown
    /// (the standing queue in front of the core and the admission rate overload control holds
    /// new calls to, 0: none).
    pub fn handle_tick(&mut self, now: Instant, wall_ms: i64) {
        self.anchor(now, wall_ms);
        self.report_load();
    }

    fn report_load(&self) {
        let load = self.ua.overload();
        let (delay, rate) = (load.queue.as_secs_f64(), load.rate.unwrap_or(0.0));
        // Each shard measures its own queue: with several, each has its own series.
        if self.config.shard.count > 1 {
            let shard = self.config.shard.index.to_string();
            metrics::gauge!("switchboard_sip_queue_delay_seconds", "shard" => shard.clone())
                .set(delay);
            metrics::gauge!("switchboard_sip_admission_rate", "shard" => shard).set(rate);
        } else {
            metrics::gauge!("switchboard_sip_queue_delay_seconds").set(delay);
            metrics::gauge!("switchboard_sip_admission_rate").set(rate);
        }
    }

    /// The shutdown's grace is over: calls that were hung up but whose media never came back
    /// (a media worker that died holds it) get their CDRs written with the counters known, rather
    /// than left `in-progress`.
    pub fn handle_grace_over(&mut self, now: Instant, wall_ms: i64) {
        warn!(calls = self.calls.len(), "shutdown grace period over");
        self.anchor(now, wall_ms);
        let keys: Vec<CallKey> = self.calls.iter().map(|(k, _)| k).collect();
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
        if self.calls.is_empty()
            && let Some(to) = self.drained.take()
        {
            info!("drained: no call is left");
            self.outputs.push_back(Output::Reply {
                to,
                answer: Answer::Done(Ok(())),
            });
        }
    }

    fn on_leg_event(&mut self, now: Instant, leg: LegId, event: LegEvent) {
        let Some((key, index)) = self.calls.of_dialog(leg) else {
            // A re-INVITE on a leg no call owns any more.
            if matches!(event, LegEvent::ReInvite { .. }) {
                self.ua.respond_reinvite(now, leg, 481, None);
            }
            return;
        };
        if index == transfer::TRANSFER_LEG {
            if let Some((call, mut cx)) = self.call_mut(key) {
                call.on_transfer_leg_event(&mut cx, now, event);
            }
            return self.carry_out_asks(now, key);
        }
        let forking = |c: &Call| c.forking.as_ref().is_some_and(|f| f.leg == index);
        let event = match self.calls.get(&key).is_some_and(forking) {
            true => match (self.call_mut(key))
                .and_then(|(c, mut cx)| c.on_fork_event(&mut cx, now, leg, event))
            {
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
            Some(true) => {
                if let Some((call, mut cx)) = self.call_mut(key) {
                    call.on_route_leg_event(&mut cx, now, Party::of(index), event);
                }
                self.carry_out_asks(now, key);
            }
            Some(false) => {
                if let Some((call, mut cx)) = self.call_mut(key) {
                    call.on_app_leg_event(&mut cx, now, event);
                }
                self.carry_out_asks(now, key);
            }
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
