//! The media engine: worker threads that own RTP/RTCP sockets and relay between bridged
//! endpoints, and the handle the call core uses to allocate, configure, bridge and release them.
//!
//! Each worker has its own epoll, endpoint slab and pooled packet buffers; both endpoints of a
//! bridge, and all members of a conference, live on the same worker so audio goes from one
//! socket to another without leaving the thread. An endpoint that must join others elsewhere
//! is moved, sockets and state, to their worker. Browsers are the exception: each sends to the
//! browser socket of the worker its endpoint was first placed on, which stays there, so that
//! worker passes a moved leg's datagrams on to the leg's worker (a copy and a wake-up each:
//! the price of one port per worker for every browser, paid only by legs that moved).
//! Commands reach a worker through a channel and an eventfd; events (RTP timeout, final
//! counters) go back through an unbounded tokio channel.

mod binder;
mod ops;
mod slot;
mod worker;

use crate::conference::{Announcement, ConferenceId};
use crate::health::{Beat, supervise};
use crate::ports::PortPool;
use crate::record::{RecordSpec, Recorder};
use crate::sys::EventFd;
pub use binder::BIND_AHEAD;
pub use ops::*;
use slot::Slot;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;
use worker::Worker;

/// Engine-wide counters, summed over workers when read.
#[derive(Debug, Default)]
struct Counters {
    relayed: AtomicU64,
    /// Of `relayed`, those the kernel relayed ([`crate::kernel`]).
    relayed_in_kernel: AtomicU64,
    dropped: AtomicU64,
    /// SRTP and SRTCP packets that failed authentication or replay checks (the RTP ones are
    /// counted in `dropped` too).
    srtp_rejected: AtomicU64,
    /// Set by [`MediaEngine::inject_panic`] (debug builds only).
    #[cfg(debug_assertions)]
    panic_requested: std::sync::atomic::AtomicBool,
}

enum Command {
    Add {
        id: EndpointId,
        rtp: UdpSocket,
        rtcp: UdpSocket,
        port: u16,
    },
    Configure {
        id: EndpointId,
        config: EndpointConfig,
    },
    Bridge {
        a: EndpointId,
        b: EndpointId,
    },
    Unbridge {
        id: EndpointId,
    },
    Remove {
        id: EndpointId,
    },
    Media {
        id: EndpointId,
        op: MediaOp,
    },
    /// The endpoint is moving here: hold its commands until it arrives.
    Expect {
        id: EndpointId,
    },
    /// Hand the endpoint over to worker `to`.
    Evict {
        id: EndpointId,
        to: usize,
    },
    /// An endpoint handed over by another worker.
    Adopt(Box<Slot>),
    Join {
        conference: ConferenceId,
        id: EndpointId,
    },
    Leave {
        id: EndpointId,
    },
    /// `id` is heard by `coached` alone (`None`: by everyone).
    Coach {
        id: EndpointId,
        coached: Option<EndpointId>,
    },
    RecordConference {
        conference: ConferenceId,
        spec: Option<RecordSpec>,
    },
    Announce {
        conference: ConferenceId,
        announcement: Announcement,
    },
    StopAnnouncements {
        conference: ConferenceId,
        to: Option<EndpointId>,
    },
    PauseConferenceRecording {
        conference: ConferenceId,
        paused: Option<crate::record::PauseBehavior>,
    },
    /// A browser leg whose checks come to this worker's browser socket, or its new
    /// credentials.
    BrowserServe {
        id: EndpointId,
        config: crate::webrtc::WebRtcConfig,
    },
    /// A browser leg no longer served by this worker's browser socket.
    BrowserForget {
        id: EndpointId,
    },
    /// A datagram for a browser leg that came to another worker's browser socket: the leg
    /// moved here to be bridged or mixed, and its browser still sends where the SDP said.
    Datagram {
        id: EndpointId,
        from: SocketAddr,
        data: Box<[u8]>,
        /// It came from another worker (counted in [`Browsers::passed_on`]).
        passed_on: bool,
    },
    /// Answered once every command sent before it has been applied.
    Barrier(std_mpsc::SyncSender<()>),
    Shutdown,
}

impl Command {
    /// The endpoints a command acts on, which must be present to apply it.
    fn endpoints(&self) -> [Option<EndpointId>; 2] {
        match self {
            Command::Configure { id, .. }
            | Command::Unbridge { id }
            | Command::Remove { id }
            | Command::Media { id, .. }
            | Command::Evict { id, .. }
            | Command::Join { id, .. }
            | Command::Leave { id }
            | Command::Datagram { id, .. } => [Some(*id), None],
            Command::Bridge { a, b } => [Some(*a), Some(*b)],
            Command::Coach { id, coached } => [Some(*id), *coached],
            Command::Add { .. }
            | Command::Expect { .. }
            | Command::Adopt(_)
            | Command::RecordConference { .. }
            | Command::Announce { .. }
            | Command::StopAnnouncements { .. }
            | Command::PauseConferenceRecording { .. }
            | Command::BrowserServe { .. }
            | Command::BrowserForget { .. }
            | Command::Barrier(_)
            | Command::Shutdown => [None, None],
        }
    }
}

/// How a worker reaches another: to hand over an endpoint.
#[derive(Clone)]
struct Mailbox {
    commands: std_mpsc::Sender<Command>,
    wake: Arc<EventFd>,
}

/// Where conferences are mixed, and who is in them.
#[derive(Default)]
struct ConferenceHomes {
    /// Each conference's worker and member count.
    hosts: HashMap<ConferenceId, (usize, usize)>,
    members: HashMap<EndpointId, ConferenceId>,
}

/// The sockets browsers send to, one per worker (advertised in every browser leg's SDP
/// instead of its own pair), and where each endpoint lives, for a worker to pass a datagram
/// to the worker of a leg that moved.
#[derive(Clone)]
struct Browsers {
    sockets: Arc<[Arc<UdpSocket>]>,
    homes: Arc<Mutex<HashMap<EndpointId, usize>>>,
    /// Datagrams passed on to each worker and not yet handled there: past
    /// [`Browsers::MAX_PASSED_ON`] more are dropped, so that a browser's flood cannot grow a
    /// worker's queue without bound.
    passed_on: Arc<[AtomicUsize]>,
}

impl Browsers {
    /// One socket per worker, each on a port taken from the pool for good.
    fn bind(config: &MediaConfig, ports: &Mutex<PortPool>, workers: usize) -> io::Result<Self> {
        let mut sockets = Vec::with_capacity(workers);
        while sockets.len() < workers {
            let port = (ports.lock().expect("not poisoned").take()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "the RTP port range leaves no port for the browsers' sockets (one per media thread)",
                )
            })?;
            // A port another program holds is passed over, as for RTP pairs.
            if let Ok(socket) = UdpSocket::bind((config.bind_ip, port)) {
                socket.set_nonblocking(true)?;
                sockets.push(Arc::new(socket));
            }
        }
        Ok(Self {
            sockets: sockets.into(),
            homes: Arc::default(),
            passed_on: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    /// A second of a hundred browsers' packets.
    const MAX_PASSED_ON: usize = 5000;

    /// The worker an endpoint lives on now.
    fn home(&self, id: EndpointId) -> usize {
        let homes = self.homes.lock().expect("not poisoned");
        homes.get(&id).copied().unwrap_or(id.first_worker())
    }
}

struct WorkerHandle {
    commands: std_mpsc::Sender<Command>,
    wake: Arc<EventFd>,
    /// Commands were queued since the last wake-up signal.
    pending: std::sync::atomic::AtomicBool,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Handle to the media engine; cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

struct Inner {
    config: MediaConfig,
    ports: Arc<Mutex<PortPool>>,
    /// Pairs bound ahead, off the caller's thread.
    binder: binder::Binder,
    workers: Vec<WorkerHandle>,
    next_id: AtomicU64,
    next_worker: AtomicUsize,
    /// Browsers' sockets, and the endpoints that were moved off the worker they were
    /// allocated on.
    browsers: Browsers,
    /// Each worker's browser socket, as advertised.
    browser_addresses: Vec<SocketAddr>,
    conferences: Mutex<ConferenceHomes>,
    /// Pairs bound ahead of need ([`MediaEngine::reserve`]), not yet on a worker.
    reserved: Mutex<HashMap<EndpointId, (u16, UdpSocket, UdpSocket)>>,
    /// Endpoints configured as browsers' legs.
    browser_legs: Mutex<std::collections::HashSet<EndpointId>>,
    /// Keeps the recorder thread alive while the engine lives; it ends once every worker's
    /// handle is gone too.
    _recorder: Arc<Recorder>,
    /// The workers' and the recorder's liveness.
    beats: Vec<Arc<Beat>>,
}

impl MediaEngine {
    pub fn start(
        config: MediaConfig,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> io::Result<Self> {
        let ports = Arc::new(Mutex::new(PortPool::new(config.ports.clone())));
        let saved = events.clone();
        let recorder_beat = Beat::new("recorder", None);
        let mut beats = vec![recorder_beat.clone()];
        let recorder = Arc::new(Recorder::spawn(recorder_beat, move |r| {
            let _ = saved.send(MediaEvent::RecordingSaved(r));
        })?);
        let threads = config.threads.clamp(1, 255);
        let kernel = match config.kernel_relay {
            true => match crate::kernel::KernelRelay::start() {
                Ok(k) => {
                    tracing::info!(interfaces = ?k.interfaces(), "the kernel relay is on");
                    Some(Arc::new(k))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the kernel relay is not available; every packet is relayed in userspace");
                    None
                }
            },
            false => None,
        };
        let mut receivers = Vec::new();
        let mut mailboxes = Vec::new();
        for _ in 0..threads {
            let (tx, rx) = std_mpsc::channel();
            receivers.push(rx);
            mailboxes.push(Mailbox {
                commands: tx,
                wake: Arc::new(EventFd::new()?),
            });
        }
        let mailboxes: Arc<[Mailbox]> = mailboxes.into();
        let browsers = Browsers::bind(&config, &ports, threads)?;
        let browser_addresses = (browsers.sockets.iter())
            .map(|s| {
                let port = s.local_addr()?.port();
                Ok(SocketAddr::new(config.advertise_ip, port))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let mut workers = Vec::new();
        for (index, rx) in receivers.into_iter().enumerate() {
            let counters = Arc::new(Counters::default());
            let worker = Worker::new(
                rx,
                mailboxes.clone(),
                index,
                browsers.clone(),
                counters.clone(),
                ports.clone(),
                events.clone(),
                recorder.clone(),
                config.rtp_timeout,
                config.learn_window,
                kernel.clone(),
            )?;
            let name = format!("media-{index}");
            // A worker waits at most 250 ms per round; five seconds without one is a stall.
            let beat = Beat::new(name.clone(), Some(Duration::from_secs(5)));
            beats.push(beat.clone());
            let thread = std::thread::Builder::new().name(name).spawn(move || {
                supervise(&beat, || worker.run(&beat));
            })?;
            workers.push(WorkerHandle {
                commands: mailboxes[index].commands.clone(),
                wake: mailboxes[index].wake.clone(),
                pending: std::sync::atomic::AtomicBool::new(false),
                counters,
                thread: Mutex::new(Some(thread)),
            });
        }
        let binder = binder::Binder::start(config.bind_ip, ports.clone(), config.bind_ahead)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                ports,
                binder,
                workers,
                next_id: AtomicU64::new(1),
                next_worker: AtomicUsize::new(0),
                browsers,
                browser_addresses,
                browser_legs: Mutex::default(),
                conferences: Mutex::new(ConferenceHomes::default()),
                reserved: Mutex::new(HashMap::new()),
                _recorder: recorder,
                beats,
            }),
        })
    }

    /// A fresh RTP/RTCP pair, on the same worker as `near` when given (so the two can be
    /// bridged), otherwise on the next worker in turn.
    pub fn allocate(&self, near: Option<EndpointId>) -> Result<Endpoint, MediaError> {
        let endpoint = self.reserve()?;
        self.activate(endpoint.id, near);
        Ok(endpoint)
    }

    /// Takes a bound RTP/RTCP pair (bound ahead by the engine's binder thread, or now if none
    /// is ready) and keeps it aside, on no worker yet, until [`MediaEngine::activate`]. This
    /// is how a caller that must not wait on a socket (the call core, which writes the port
    /// into an answer at once) holds a few pairs ready.
    pub fn reserve(&self) -> Result<Endpoint, MediaError> {
        let inner = &self.inner;
        let (port, rtp, rtcp) = inner.binder.take()?;
        let worker = inner.next_worker.fetch_add(1, Ordering::Relaxed) % inner.workers.len();
        let id = EndpointId((inner.next_id.fetch_add(1, Ordering::Relaxed) << 8) | worker as u64);
        let mut reserved = inner.reserved.lock().expect("not poisoned");
        reserved.insert(id, (port, rtp, rtcp));
        Ok(Endpoint {
            id,
            rtp: SocketAddr::new(inner.config.advertise_ip, port),
            browser: inner.browser_addresses[worker],
        })
    }

    /// Puts a reserved pair to work, on the same worker as `near` when given. An id that is
    /// not reserved (activated already) is ignored.
    pub fn activate(&self, id: EndpointId, near: Option<EndpointId>) {
        let taken = self
            .inner
            .reserved
            .lock()
            .expect("not poisoned")
            .remove(&id);
        let Some((port, rtp, rtcp)) = taken else {
            return;
        };
        if let Some(home) = near.map(|n| self.home(n))
            && home != id.first_worker()
        {
            (self.inner.browsers.homes.lock())
                .expect("not poisoned")
                .insert(id, home);
        }
        self.send(
            id,
            Command::Add {
                id,
                rtp,
                rtcp,
                port,
            },
        );
    }

    /// Carries out a [`MediaCommand`] (queued for its worker: see [`MediaEngine::flush`]).
    pub fn execute(&self, command: MediaCommand) {
        match command {
            MediaCommand::Activate { id, near } => self.activate(id, near),
            MediaCommand::Configure { id, config } => self.configure(id, config),
            MediaCommand::Bridge { a, b } => self.bridge(a, b),
            MediaCommand::Unbridge { id } => self.unbridge(id),
            MediaCommand::Media { id, op } => self.media(id, op),
            MediaCommand::Join { conference, id } => self.conference_join(conference, id),
            MediaCommand::Leave { id } => self.conference_leave(id),
            MediaCommand::Coach { id, coached } => self.send(id, Command::Coach { id, coached }),
            MediaCommand::RecordConference { conference, spec } => {
                self.conference_record(conference, spec);
            }
            MediaCommand::Announce {
                conference,
                announcement,
            } => {
                self.conference_announce(conference, announcement);
            }
            MediaCommand::StopAnnouncements { conference, to } => {
                let host = self.conference_host(conference);
                if let Some(worker) = host {
                    self.send_to(worker, Command::StopAnnouncements { conference, to });
                }
            }
            MediaCommand::PauseConferenceRecording { conference, paused } => {
                let host = self.conference_host(conference);
                if let Some(worker) = host {
                    let pause = Command::PauseConferenceRecording { conference, paused };
                    self.send_to(worker, pause);
                }
            }
            MediaCommand::Release { id } => self.release(id),
        }
    }

    pub fn configure(&self, id: EndpointId, config: EndpointConfig) {
        {
            let mut browsers = self.inner.browser_legs.lock().expect("not poisoned");
            match config.webrtc {
                Some(_) => browsers.insert(id),
                None => browsers.remove(&id),
            };
        }
        self.send(id, Command::Configure { id, config });
    }

    /// Whether an endpoint is a browser's leg living beside the socket its browser sends to:
    /// moving it would cost each of its datagrams a hand-over between workers.
    fn at_its_browser_socket(&self, id: EndpointId) -> bool {
        self.home(id) == id.first_worker()
            && (self.inner.browser_legs.lock())
                .expect("not poisoned")
                .contains(&id)
    }

    /// Relays between two endpoints, both ways; `b` moves to `a`'s worker if it lives
    /// elsewhere — or `a` to `b`'s, when `b` is a browser's leg beside its browser socket and
    /// `a` is not.
    pub fn bridge(&self, a: EndpointId, b: EndpointId) {
        let (home_a, home_b) = (self.home(a), self.home(b));
        if home_a != home_b {
            if self.at_its_browser_socket(b) && !self.at_its_browser_socket(a) {
                self.migrate(a, home_b);
            } else {
                self.migrate(b, home_a);
            }
        }
        self.send(a, Command::Bridge { a, b });
    }

    /// Puts an endpoint in a conference (created by its first member): its party's audio
    /// goes to the mix and it hears everyone else. It leaves any bridge it was in, and moves
    /// to the conference's worker if need be.
    pub fn conference_join(&self, conference: ConferenceId, id: EndpointId) {
        let own = self.home(id);
        let host = {
            let mut c = self.inner.conferences.lock().expect("not poisoned");
            if c.members.get(&id) == Some(&conference) {
                return;
            }
            if let Some(old) = c.members.insert(id, conference) {
                c.leave(old);
            }
            let host = c.hosts.entry(conference).or_insert((own, 0));
            host.1 += 1;
            host.0
        };
        if own != host {
            self.migrate(id, host);
        }
        self.send(id, Command::Join { conference, id });
    }

    /// Takes an endpoint out of its conference; the last one out ends the conference (and
    /// the recording of its mix).
    pub fn conference_leave(&self, id: EndpointId) {
        let mut c = self.inner.conferences.lock().expect("not poisoned");
        if let Some(conference) = c.members.remove(&id) {
            c.leave(conference);
            self.send(id, Command::Leave { id });
        }
    }

    /// Starts (or with `None` stops) recording a conference's mix, mono. False when the
    /// conference has no members.
    pub fn conference_record(&self, conference: ConferenceId, spec: Option<RecordSpec>) -> bool {
        let host = self.conference_host(conference);
        host.map(|worker| self.send_to(worker, Command::RecordConference { conference, spec }))
            .is_some()
    }

    /// Plays audio into a conference over the conversation: to everyone (and into the
    /// recording of its mix) or to one member. False when the conference has no members
    /// (nothing is reported then).
    pub fn conference_announce(
        &self,
        conference: ConferenceId,
        announcement: Announcement,
    ) -> bool {
        let host = self.conference_host(conference);
        host.map(|worker| {
            self.send_to(
                worker,
                Command::Announce {
                    conference,
                    announcement,
                },
            )
        })
        .is_some()
    }

    fn conference_host(&self, conference: ConferenceId) -> Option<usize> {
        let c = self.inner.conferences.lock().expect("not poisoned");
        c.hosts.get(&conference).map(|h| h.0)
    }

    /// The worker an endpoint lives on now.
    fn home(&self, id: EndpointId) -> usize {
        self.inner.browsers.home(id)
    }

    /// Moves an endpoint to worker `to`; its commands follow it there.
    fn migrate(&self, id: EndpointId, to: usize) {
        let from = {
            let mut homes = self.inner.browsers.homes.lock().expect("not poisoned");
            let from = homes.get(&id).copied().unwrap_or(id.first_worker());
            if to == id.first_worker() {
                homes.remove(&id);
            } else {
                homes.insert(id, to);
            }
            from
        };
        // The new worker learns first, so it holds whatever arrives before the endpoint does.
        self.send_to(to, Command::Expect { id });
        self.send_to(from, Command::Evict { id, to });
    }

    /// Starts or changes media processing on an endpoint.
    pub fn media(&self, id: EndpointId, op: MediaOp) {
        self.send(id, Command::Media { id, op });
    }

    /// Ends the bridge an endpoint is in, both ways.
    pub fn unbridge(&self, id: EndpointId) {
        self.send(id, Command::Unbridge { id });
    }

    /// Closes an endpoint (taking it out of its conference); a [`MediaEvent::Released`] with
    /// its counters follows.
    pub fn release(&self, id: EndpointId) {
        let reserved = self
            .inner
            .reserved
            .lock()
            .expect("not poisoned")
            .remove(&id);
        if let Some((port, rtp, rtcp)) = reserved {
            // Never on a worker: nothing to count, no event; the port is free again.
            drop((rtp, rtcp));
            self.inner.ports.lock().expect("not poisoned").put(port);
            return;
        }
        {
            let mut c = self.inner.conferences.lock().expect("not poisoned");
            if let Some(conference) = c.members.remove(&id) {
                c.leave(conference);
            }
        }
        self.inner
            .browser_legs
            .lock()
            .expect("not poisoned")
            .remove(&id);
        self.send(id, Command::Remove { id });
        (self.inner.browsers.homes.lock())
            .expect("not poisoned")
            .remove(&id);
    }

    /// Queues a command for the endpoint's worker; the worker sees it at its next wake-up,
    /// which [`MediaEngine::flush`] brings about.
    fn send(&self, id: EndpointId, command: Command) {
        self.send_to(self.home(id), command);
    }

    fn send_to(&self, worker: usize, command: Command) {
        if let Some(w) = self.inner.workers.get(worker)
            && w.commands.send(command).is_ok()
        {
            w.pending.store(true, Ordering::Release);
        }
    }

    /// Wakes the workers that have commands queued: one signal per worker for everything the
    /// caller queued since the last flush (the call core flushes after each batch of events).
    pub fn flush(&self) {
        for w in &self.inner.workers {
            if w.pending.swap(false, Ordering::AcqRel) {
                w.wake.signal();
            }
        }
    }

    /// Waits (up to five seconds) until every worker has applied the commands sent before:
    /// a configuration is then in force for the next packet, whichever path it takes.
    pub fn barrier(&self) {
        let (tx, rx) = std_mpsc::sync_channel(self.inner.workers.len());
        for worker in 0..self.inner.workers.len() {
            self.send_to(worker, Command::Barrier(tx.clone()));
        }
        self.flush();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for _ in &self.inner.workers {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if rx.recv_timeout(left).is_err() {
                return;
            }
        }
    }

    pub fn relayed_total(&self) -> u64 {
        self.inner
            .workers
            .iter()
            .map(|w| w.counters.relayed.load(Ordering::Relaxed))
            .sum()
    }

    /// Of [`Self::relayed_total`], the packets the kernel relayed, as of each worker's last
    /// look (every half second, and when a flow comes back).
    pub fn relayed_in_kernel_total(&self) -> u64 {
        self.inner
            .workers
            .iter()
            .map(|w| w.counters.relayed_in_kernel.load(Ordering::Relaxed))
            .sum()
    }

    pub fn dropped_total(&self) -> u64 {
        self.inner
            .workers
            .iter()
            .map(|w| w.counters.dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// SRTP/SRTCP packets refused: a bad tag, a replay, a key that is not the peer's.
    pub fn srtp_rejected_total(&self) -> u64 {
        self.inner
            .workers
            .iter()
            .map(|w| w.counters.srtp_rejected.load(Ordering::Relaxed))
            .sum()
    }

    /// Where browsers reach each worker, as advertised: one port per worker, taken from the
    /// RTP range at start (its first even ports, unless another program held them).
    pub fn browser_addresses(&self) -> &[SocketAddr] {
        &self.inner.browser_addresses
    }

    /// Port pairs a new endpoint may have: those in the pool, those bound ahead and those
    /// reserved.
    pub fn ports_available(&self) -> usize {
        let reserved = self.inner.reserved.lock().expect("not poisoned").len();
        self.inner.binder.available() + reserved
    }

    /// Stops the workers (their sockets close); used at shutdown.
    /// Makes the first worker panic (debug builds only: the liveness tests' lever).
    #[cfg(debug_assertions)]
    #[doc(hidden)]
    pub fn inject_panic(&self) {
        let w = &self.inner.workers[0];
        w.counters.panic_requested.store(true, Ordering::Relaxed);
        w.wake.signal();
    }

    /// The liveness of the engine's threads, for the server's health.
    pub fn beats(&self) -> &[Arc<Beat>] {
        &self.inner.beats
    }

    pub fn shutdown(&self) {
        self.inner.binder.stop();
        for w in &self.inner.workers {
            if w.commands.send(Command::Shutdown).is_ok() {
                w.wake.signal();
            }
            if let Some(t) = w.thread.lock().expect("not poisoned").take() {
                let _ = t.join();
            }
        }
    }
}

impl ConferenceHomes {
    /// One member fewer; the last one out frees the conference's place.
    fn leave(&mut self, conference: ConferenceId) {
        if let Some(host) = self.hosts.get_mut(&conference) {
            host.1 -= 1;
            if host.1 == 0 {
                self.hosts.remove(&conference);
            }
        }
    }
}
