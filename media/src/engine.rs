//! The media engine: worker threads that own RTP/RTCP sockets and relay between bridged
//! endpoints, and the handle the call core uses to allocate, configure, bridge and release them.
//!
//! Each worker has its own epoll, endpoint slab and pooled packet buffers; both endpoints of a
//! bridge, and all members of a conference, live on the same worker so audio goes from one
//! socket to another without leaving the thread. An endpoint that must join others elsewhere
//! is moved, sockets and state, to their worker. Commands reach a worker through a channel and
//! an eventfd; events (RTP timeout, final counters) go back through an unbounded tokio channel.

use crate::conference::{Conference, ConferenceId};
use crate::dtmf::{Digit, DtmfReport};
use crate::endpoint_media::{EndpointMedia, Frame, Notice, TapFrame, TapId, TapTracks};
use crate::health::{Beat, supervise};
use crate::latch::{Latch, SourcePolicy, Verdict};
use crate::opus::{OpusLeg, clock_out};
use crate::ports::PortPool;
use crate::prompt::{Clip, PlaybackEnd};
use crate::record::{RecordSpec, Recorder, RecordingSaved};
use crate::relay::{self, Outbound, PayloadMap};
use crate::stats::{EndpointStats, SequenceTracker};
use crate::sys::{Epoll, EventFd, PacketBuf, RawAddr, TimerFd};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// Address written into SDP.
    pub advertise_ip: IpAddr,
    pub ports: RangeInclusive<u16>,
    pub threads: usize,
    /// Silence from a peer that should be sending ends the call after this long.
    pub rtp_timeout: Duration,
    /// How long after a peer's SDP address is learnt (or the call is answered) a source other
    /// than that address may latch, as the endpoint's [`SourcePolicy`] allows.
    pub learn_window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(u64);

impl EndpointId {
    /// The worker it was allocated on; [`Inner::homes`] knows where moved ones went.
    fn first_worker(self) -> usize {
        (self.0 & 0xff) as usize
    }
}

/// An allocated RTP/RTCP port pair.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub id: EndpointId,
    /// The advertised RTP address (RTCP is the next port).
    pub rtp: SocketAddr,
}

/// What the peer of an endpoint negotiated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Where the peer wants RTP, from its SDP; media is accepted from it, or from the source
    /// `source` lets latch in its stead (symmetric RTP for peers behind NAT).
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    pub payload: PayloadMap,
    /// The peer is expected to send (answered, not on hold): silence ends the call.
    pub expect_rtp: bool,
    /// The peer's audio is Opus, at the audio payload type of `payload` (whose law is then
    /// μ-law: the form its audio takes inside the engine).
    pub opus: bool,
    /// Which sources other than the SDP address may latch.
    pub source: SourcePolicy,
    /// The IP the peer's signalling comes from: media from it displaces a source learnt from
    /// elsewhere (see [`Latch`]).
    pub signal_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// No RTP from an endpoint whose peer should be sending, for the configured timeout.
    Timeout { id: EndpointId },
    /// An endpoint was released; its final counters.
    Released {
        id: EndpointId,
        stats: EndpointStats,
    },
    /// A digit from the endpoint's peer (RFC 4733 or in-band), once it ended.
    Dtmf { id: EndpointId, report: DtmfReport },
    PlaybackEnded {
        id: EndpointId,
        playback: u64,
        reason: PlaybackEnd,
    },
    /// Every frame injected before the mark has been sent, or was cleared.
    Mark {
        id: EndpointId,
        name: String,
        cleared: bool,
    },
    /// A tap ended; `dropped` frames were lost because its consumer did not keep up (they
    /// are dropped rather than stall the media path).
    TapStopped {
        id: EndpointId,
        tap: TapId,
        dropped: u64,
    },
    /// Injected frames beyond the queue's limit were discarded.
    InjectDiscarded { id: EndpointId, frames: u64 },
    /// A recording stopped by itself (silence, or its length); its `RecordingSaved` follows.
    RecordingStopped {
        id: EndpointId,
        recording: u64,
        reason: crate::record::StopReason,
    },
    /// A recording was finished and its file closed.
    RecordingSaved(RecordingSaved),
}

impl MediaEvent {
    /// The endpoint the event is about; a recording names none (it may outlive its endpoint).
    pub fn endpoint(&self) -> Option<EndpointId> {
        match self {
            Self::Timeout { id }
            | Self::Released { id, .. }
            | Self::Dtmf { id, .. }
            | Self::PlaybackEnded { id, .. }
            | Self::Mark { id, .. }
            | Self::TapStopped { id, .. }
            | Self::InjectDiscarded { id, .. }
            | Self::RecordingStopped { id, .. } => Some(*id),
            Self::RecordingSaved(_) => None,
        }
    }
}

/// Media processing on an endpoint beyond relaying; audio it generates goes to the endpoint's
/// peer in place of relayed audio.
#[derive(Debug)]
pub enum MediaOp {
    /// Plays a prompt `loops` times (0 = until stopped); a digit stops it when `barge_in`.
    Play {
        playback: u64,
        clip: crate::prompt::Prompt,
        loops: u32,
        barge_in: bool,
    },
    StopPlayback,
    /// Sends digits as RFC 4733 events, or as tones if the peer has no telephone-event;
    /// `None` is a half-second pause.
    SendDigits {
        digits: Vec<Option<Digit>>,
        duration_ms: u32,
    },
    /// Reports the peer's digits: RFC 4733, or in-band if it negotiated no telephone-event.
    DetectDtmf(bool),
    RecordStart(RecordSpec),
    RecordPause,
    RecordResume,
    RecordStop,
    /// Delivers decoded frames of the chosen tracks to a tap (an endpoint feeds several);
    /// frames the consumer does not take in time are dropped and reported.
    TapStart {
        tap: TapId,
        tx: mpsc::Sender<TapFrame>,
        tracks: TapTracks,
    },
    TapStop(TapId),
    /// Frames to play to the peer after those already injected; the mark is reported once
    /// they have been sent. At most `limit` frames wait; the rest are discarded (reported).
    Inject {
        frames: Vec<Frame>,
        mark: Option<String>,
        limit: usize,
    },
    ClearInjected,
    /// Noise suppression of the audio from this endpoint's party (`inbound`) and of the
    /// audio relayed to it (`outbound`).
    Suppress {
        inbound: bool,
        outbound: bool,
    },
    /// Replaces the party's audio with silence toward everyone else (recordings included).
    Mute(bool),
    /// Sends silence to the party whenever nothing else goes to it (no relayed audio lately,
    /// nothing of ours), so its RTP never stops.
    SilenceWhenIdle(bool),
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port pair in the configured range")]
    PortsExhausted,
    /// The process (or the system) has no file descriptor left for the pair's sockets.
    #[error("out of file descriptors for RTP sockets: {0}")]
    OutOfDescriptors(io::Error),
    #[error("media socket error: {0}")]
    Io(#[from] io::Error),
}

/// Engine-wide counters, summed over workers when read.
#[derive(Debug, Default)]
struct Counters {
    relayed: AtomicU64,
    dropped: AtomicU64,
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
    RecordConference {
        conference: ConferenceId,
        spec: Option<RecordSpec>,
    },
    Announce {
        conference: ConferenceId,
        clip: Clip,
    },
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
            | Command::Leave { id } => [Some(*id), None],
            Command::Bridge { a, b } => [Some(*a), Some(*b)],
            Command::Add { .. }
            | Command::Expect { .. }
            | Command::Adopt(_)
            | Command::RecordConference { .. }
            | Command::Announce { .. }
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
    workers: Vec<WorkerHandle>,
    next_id: AtomicU64,
    next_worker: AtomicUsize,
    /// Endpoints that were moved off the worker they were allocated on.
    homes: Mutex<HashMap<EndpointId, usize>>,
    conferences: Mutex<ConferenceHomes>,
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
        let mut workers = Vec::new();
        for (index, rx) in receivers.into_iter().enumerate() {
            let counters = Arc::new(Counters::default());
            let worker = Worker::new(
                rx,
                mailboxes.clone(),
                index,
                counters.clone(),
                ports.clone(),
                events.clone(),
                recorder.clone(),
                config.rtp_timeout,
                config.learn_window,
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
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                ports,
                workers,
                next_id: AtomicU64::new(1),
                next_worker: AtomicUsize::new(0),
                homes: Mutex::new(HashMap::new()),
                conferences: Mutex::new(ConferenceHomes::default()),
                _recorder: recorder,
                beats,
            }),
        })
    }

    /// Binds a fresh RTP/RTCP pair, on the same worker as `near` when given (so the two can be
    /// bridged), otherwise on the next worker in turn.
    pub fn allocate(&self, near: Option<EndpointId>) -> Result<Endpoint, MediaError> {
        let inner = &self.inner;
        let worker = match near {
            Some(id) => self.home(id),
            None => inner.next_worker.fetch_add(1, Ordering::Relaxed) % inner.workers.len(),
        };
        let (port, rtp, rtcp) = self.bind_pair()?;
        let id = EndpointId((inner.next_id.fetch_add(1, Ordering::Relaxed) << 8) | worker as u64);
        self.send(
            id,
            Command::Add {
                id,
                rtp,
                rtcp,
                port,
            },
        );
        Ok(Endpoint {
            id,
            rtp: SocketAddr::new(inner.config.advertise_ip, port),
        })
    }

    fn bind_pair(&self) -> Result<(u16, UdpSocket, UdpSocket), MediaError> {
        let ip = self.inner.config.bind_ip;
        // Ports held by other programs are skipped and put back at the end of the queue.
        for _ in 0..64 {
            let port = self
                .inner
                .ports
                .lock()
                .expect("not poisoned")
                .take()
                .ok_or(MediaError::PortsExhausted)?;
            match (UdpSocket::bind((ip, port)), UdpSocket::bind((ip, port + 1))) {
                (Ok(rtp), Ok(rtcp)) => {
                    rtp.set_nonblocking(true)?;
                    rtcp.set_nonblocking(true)?;
                    return Ok((port, rtp, rtcp));
                }
                (Err(e), _) | (_, Err(e)) => {
                    self.inner.ports.lock().expect("not poisoned").put(port);
                    // Not the port's fault: another port would fail the same way.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        return Err(MediaError::OutOfDescriptors(e));
                    }
                }
            }
        }
        Err(MediaError::PortsExhausted)
    }

    pub fn configure(&self, id: EndpointId, config: EndpointConfig) {
        self.send(id, Command::Configure { id, config });
    }

    /// Relays between two endpoints, both ways; `b` moves to `a`'s worker if it lives
    /// elsewhere.
    pub fn bridge(&self, a: EndpointId, b: EndpointId) {
        let home = self.home(a);
        if self.home(b) != home {
            self.migrate(b, home);
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

    /// Plays a clip to everyone in a conference over the conversation (and into the
    /// recording of its mix). False when the conference has no members.
    pub fn conference_announce(&self, conference: ConferenceId, clip: Clip) -> bool {
        let host = self.conference_host(conference);
        host.map(|worker| self.send_to(worker, Command::Announce { conference, clip }))
            .is_some()
    }

    fn conference_host(&self, conference: ConferenceId) -> Option<usize> {
        let c = self.inner.conferences.lock().expect("not poisoned");
        c.hosts.get(&conference).map(|h| h.0)
    }

    /// The worker an endpoint lives on now.
    fn home(&self, id: EndpointId) -> usize {
        let homes = self.inner.homes.lock().expect("not poisoned");
        homes.get(&id).copied().unwrap_or(id.first_worker())
    }

    /// Moves an endpoint to worker `to`; its commands follow it there.
    fn migrate(&self, id: EndpointId, to: usize) {
        let from = {
            let mut homes = self.inner.homes.lock().expect("not poisoned");
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
        {
            let mut c = self.inner.conferences.lock().expect("not poisoned");
            if let Some(conference) = c.members.remove(&id) {
                c.leave(conference);
            }
        }
        self.send(id, Command::Remove { id });
        self.inner.homes.lock().expect("not poisoned").remove(&id);
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

    pub fn relayed_total(&self) -> u64 {
        self.inner
            .workers
            .iter()
            .map(|w| w.counters.relayed.load(Ordering::Relaxed))
            .sum()
    }

    pub fn dropped_total(&self) -> u64 {
        self.inner
            .workers
            .iter()
            .map(|w| w.counters.dropped.load(Ordering::Relaxed))
            .sum()
    }

    pub fn ports_available(&self) -> usize {
        self.inner.ports.lock().expect("not poisoned").available()
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

const WAKE_TOKEN: u64 = u64::MAX;
const TIMER_TOKEN: u64 = u64::MAX - 1;
/// Readies a packet in the engine's form for the peer of `slot`: Opus peers get their audio
/// encoded (unless it is `still_opus`, passed through) and their clock back at 48 kHz.
fn to_peer_codec(packet: &mut PacketBuf, slot: &mut Slot, still_opus: bool) -> bool {
    let opus_audio = slot.is_opus_audio(packet.packet_mut());
    let law = slot.config.payload.audio.map(|(_, law)| law);
    let Some(opus) = &mut slot.opus else {
        return true;
    };
    if let (true, false, Some(law)) = (opus_audio, still_opus, law) {
        packet.rewrite(|buf, len| opus.egress(buf, len, law))
    } else {
        clock_out(packet.packet_mut());
        true
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

/// The media clock: one generated packet per endpoint per tick.
const PTIME: Duration = Duration::from_millis(20);

/// Where packets for a peer go, and which source is accepted from it ([`Latch`]).
#[derive(Clone, Copy)]
struct Destination {
    latch: Latch,
    target: Option<Target>,
}

/// The address packets for a peer are sent to, in the socket layer's form.
#[derive(Clone, Copy)]
struct Target {
    raw: RawAddr,
    /// The socket is connected to it: sends need no address and use the cached route, and
    /// the kernel filters out every other source.
    connected: bool,
}

impl Target {
    /// The address argument for sending to this target.
    fn send_addr(&self) -> Option<&RawAddr> {
        (!self.connected).then_some(&self.raw)
    }
}

impl Destination {
    fn new(window: Duration) -> Self {
        Self {
            latch: Latch::new(SourcePolicy::default(), window),
            target: None,
        }
    }

    /// The peer's SDP (re)described the address; `socket`, when given, is connected to the
    /// source once one latches.
    fn configure(
        &mut self,
        addr: Option<SocketAddr>,
        (policy, signal): (SourcePolicy, Option<IpAddr>),
        window: Duration,
        now: Instant,
        socket: Option<&UdpSocket>,
    ) {
        self.latch.set_policy(policy, window, signal);
        let before = self.latch.destination();
        self.latch.set_expected(addr, now);
        if self.latch.destination() != before {
            self.retarget(socket);
        }
    }

    /// Judges a packet's source; `valid` says it is well-formed media of this endpoint.
    fn accept(
        &mut self,
        src: SocketAddr,
        valid: bool,
        now: Instant,
        socket: Option<&UdpSocket>,
    ) -> bool {
        match self.latch.check(src, valid, now) {
            Verdict::Accept => true,
            Verdict::Reject => false,
            Verdict::Latched(_) => {
                self.retarget(socket);
                true
            }
        }
    }

    fn retarget(&mut self, socket: Option<&UdpSocket>) {
        if let (Some(s), Some(t)) = (socket, self.target)
            && t.connected
        {
            let _ = crate::sys::connect(s.as_raw_fd(), None);
        }
        self.target = self.latch.destination().map(|addr| {
            let raw = RawAddr::new(addr);
            let connected = self.latch.is_settled()
                && socket.is_some_and(|s| crate::sys::connect(s.as_raw_fd(), Some(&raw)).is_ok());
            Target { raw, connected }
        });
    }
}

struct Slot {
    id: EndpointId,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    port: u16,
    config: EndpointConfig,
    rtp_dest: Destination,
    rtcp_dest: Destination,
    peer: Option<usize>,
    /// Continuity of the stream we send to this endpoint's peer.
    outbound: Outbound,
    sequence: SequenceTracker,
    stats: EndpointStats,
    last_rx: Instant,
    timed_out: bool,
    /// Playback, DTMF, recording, taps; `None` for a plain relay.
    media: Option<Box<EndpointMedia>>,
    conference: Option<ConferenceId>,
    /// The peer speaks Opus: its codec state.
    opus: Option<Box<OpusLeg>>,
}

impl Slot {
    fn new(
        id: EndpointId,
        rtp: UdpSocket,
        rtcp: UdpSocket,
        port: u16,
        now: Instant,
        learn_window: Duration,
    ) -> Self {
        Self {
            id,
            rtp,
            rtcp,
            port,
            config: EndpointConfig::default(),
            rtp_dest: Destination::new(learn_window),
            rtcp_dest: Destination::new(learn_window),
            peer: None,
            outbound: Outbound::default(),
            sequence: SequenceTracker::default(),
            stats: EndpointStats::default(),
            last_rx: now,
            timed_out: false,
            media: None,
            conference: None,
            opus: None,
        }
    }

    /// Whether a packet of this endpoint's stream (received from or sent to its peer) is
    /// Opus audio.
    fn is_opus_audio(&self, packet: &[u8]) -> bool {
        self.opus.is_some()
            && self.config.payload.audio.map(|(pt, _)| pt) == Some(crate::rtp::payload_type(packet))
    }
}

struct Worker {
    epoll: Epoll,
    /// Every worker's mailbox, this one's at `me`.
    mailboxes: Arc<[Mailbox]>,
    me: usize,
    commands: std_mpsc::Receiver<Command>,
    /// Commands for endpoints on their way here, applied once they arrive.
    awaiting: HashMap<EndpointId, Vec<Command>>,
    conferences: HashMap<ConferenceId, Conference>,
    /// Each member's frame for the conference being mixed; reused every tick.
    said: Vec<Option<Frame>>,
    counters: Arc<Counters>,
    ports: Arc<Mutex<PortPool>>,
    events: mpsc::UnboundedSender<MediaEvent>,
    recorder: Arc<Recorder>,
    rtp_timeout: Duration,
    learn_window: Duration,
    timer: TimerFd,
    /// Slots with media processing, visited on every tick.
    active: Vec<usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    index: HashMap<EndpointId, usize>,
    packet: PacketBuf,
    /// Read once per wake-up; precise enough for timeouts.
    now: Instant,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    fn new(
        commands: std_mpsc::Receiver<Command>,
        mailboxes: Arc<[Mailbox]>,
        me: usize,
        counters: Arc<Counters>,
        ports: Arc<Mutex<PortPool>>,
        events: mpsc::UnboundedSender<MediaEvent>,
        recorder: Arc<Recorder>,
        rtp_timeout: Duration,
        learn_window: Duration,
    ) -> io::Result<Self> {
        let epoll = Epoll::new()?;
        epoll.add(mailboxes[me].wake.fd(), WAKE_TOKEN)?;
        let timer = TimerFd::new()?;
        epoll.add(timer.fd(), TIMER_TOKEN)?;
        Ok(Self {
            epoll,
            mailboxes,
            me,
            commands,
            awaiting: HashMap::new(),
            conferences: HashMap::new(),
            said: Vec::new(),
            counters,
            ports,
            events,
            recorder,
            rtp_timeout,
            learn_window,
            timer,
            active: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            packet: PacketBuf::new(),
            now: Instant::now(),
        })
    }

    fn run(mut self, beat: &Beat) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut last_sweep = Instant::now();
        loop {
            let n = self.epoll.wait(&mut events, 250);
            self.now = Instant::now();
            beat.beat_at(self.now);
            #[cfg(debug_assertions)]
            if self.counters.panic_requested.load(Ordering::Relaxed) {
                panic!("fault injected into media worker {}", self.me);
            }
            // Commands first, so a configuration change applies to the packets of this round.
            if !self.apply_commands() {
                return;
            }
            for ev in &events[..n] {
                let token = ev.u64;
                if token == WAKE_TOKEN {
                    self.mailboxes[self.me].wake.drain();
                } else if token == TIMER_TOKEN {
                    // After a stall, catch up a little rather than burst a backlog.
                    for _ in 0..self.timer.expirations().min(3) {
                        self.tick();
                    }
                } else if token & 1 == 0 {
                    self.relay_rtp((token >> 1) as usize);
                } else {
                    self.relay_rtcp((token >> 1) as usize);
                }
            }
            if self.now.duration_since(last_sweep) >= Duration::from_millis(500) {
                last_sweep = self.now;
                self.sweep_timeouts();
            }
        }
    }

    /// Returns false on shutdown.
    fn apply_commands(&mut self) -> bool {
        while let Ok(cmd) = self.commands.try_recv() {
            if !self.handle(cmd) {
                return false;
            }
        }
        true
    }

    /// Applies one command, or holds it while an endpoint it names is on its way here.
    fn handle(&mut self, cmd: Command) -> bool {
        if let Some(id) = cmd
            .endpoints()
            .into_iter()
            .flatten()
            .find(|id| self.awaiting.contains_key(id))
        {
            self.awaiting.get_mut(&id).expect("checked").push(cmd);
            return true;
        }
        match cmd {
            Command::Add {
                id,
                rtp,
                rtcp,
                port,
            } => self.add(Box::new(Slot::new(
                id,
                rtp,
                rtcp,
                port,
                self.now,
                self.learn_window,
            ))),
            Command::Configure { id, config } => self.configure(id, config),
            Command::Bridge { a, b } => {
                if let (Some(&ia), Some(&ib)) = (self.index.get(&a), self.index.get(&b)) {
                    // Each leaves the bridge or conference it was in.
                    for i in [ia, ib] {
                        self.unbridge(i);
                        self.leave_conference(i);
                    }
                    for (x, y) in [(ia, ib), (ib, ia)] {
                        if let Some(s) = self.slots[x].as_mut() {
                            s.peer = Some(y);
                        }
                    }
                }
            }
            Command::Unbridge { id } => {
                if let Some(&i) = self.index.get(&id) {
                    self.unbridge(i);
                }
            }
            Command::Remove { id } => self.remove(id),
            Command::Media { id, op } => {
                if let Some(&index) = self.index.get(&id) {
                    self.apply_media(index, op);
                }
            }
            Command::Expect { id } => {
                self.awaiting.insert(id, Vec::new());
            }
            Command::Evict { id, to } => self.evict(id, to),
            Command::Adopt(slot) => {
                let id = slot.id;
                self.add(slot);
                for cmd in self.awaiting.remove(&id).unwrap_or_default() {
                    self.handle(cmd);
                }
            }
            Command::Join { conference, id } => {
                if let Some(&index) = self.index.get(&id) {
                    self.join_conference(conference, index);
                }
            }
            Command::Leave { id } => {
                if let Some(&index) = self.index.get(&id) {
                    self.leave_conference(index);
                }
            }
            Command::RecordConference { conference, spec } => {
                let c = self.conferences.entry(conference).or_default();
                if let Some(old) = c.recorder.take() {
                    old.stop(self.now);
                }
                c.recorder = spec.map(|spec| self.recorder.start(spec, self.now));
                if c.members.is_empty() && c.recorder.is_none() {
                    self.conferences.remove(&conference);
                }
            }
            Command::Announce { conference, clip } => {
                if let Some(c) = self.conferences.get_mut(&conference)
                    && !clip.is_empty()
                {
                    c.announcement = Some((clip, 0));
                }
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn configure(&mut self, id: EndpointId, config: EndpointConfig) {
        let Some(slot) = self.index.get(&id).and_then(|&i| self.slots[i].as_mut()) else {
            return;
        };
        let (now, window) = (self.now, self.learn_window);
        let source = (config.source, config.signal_ip);
        slot.rtp_dest
            .configure(config.remote_rtp, source, window, now, Some(&slot.rtp));
        slot.rtcp_dest
            .configure(config.remote_rtcp, source, window, now, None);
        if config.expect_rtp && !slot.config.expect_rtp {
            slot.last_rx = now;
            slot.timed_out = false;
            slot.rtp_dest.latch.reopen(now);
            slot.rtcp_dest.latch.reopen(now);
        }
        match (config.opus, slot.opus.is_some()) {
            (true, false) => match OpusLeg::new() {
                Ok(leg) => slot.opus = Some(Box::new(leg)),
                Err(e) => tracing::warn!(error = %e, "cannot start an Opus codec"),
            },
            (false, true) => slot.opus = None,
            _ => {}
        }
        slot.config = config;
        if let Some(m) = &mut slot.media {
            m.on_payload_change(config.payload.telephone_event.is_some());
        }
    }

    fn join_conference(&mut self, conference: ConferenceId, index: usize) {
        self.unbridge(index);
        self.leave_conference(index);
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        slot.media.get_or_insert_with(Default::default).sit();
        slot.conference = Some(conference);
        self.conferences
            .entry(conference)
            .or_default()
            .members
            .push(index);
        self.set_active(index, true);
    }

    /// The last member out ends the conference, and the recording of its mix.
    fn leave_conference(&mut self, index: usize) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        let Some(conference) = slot.conference.take() else {
            return;
        };
        if let Some(m) = &mut slot.media {
            m.stand();
        }
        if let Some(c) = self.conferences.get_mut(&conference) {
            c.members.retain(|&m| m != index);
            if c.members.is_empty() {
                if let Some(r) = c.recorder.take() {
                    r.stop(self.now);
                }
                self.conferences.remove(&conference);
            }
        }
        self.after_media(index);
    }

    /// Hands an endpoint, sockets and state, to another worker.
    fn evict(&mut self, id: EndpointId, to: usize) {
        let Some(&index) = self.index.get(&id) else {
            return;
        };
        self.unbridge(index);
        self.leave_conference(index);
        self.index.remove(&id);
        let Some(slot) = self.slots[index].take() else {
            return;
        };
        self.epoll.remove(slot.rtp.as_raw_fd());
        self.epoll.remove(slot.rtcp.as_raw_fd());
        self.set_active(index, false);
        self.free.push(index);
        let mailbox = &self.mailboxes[to];
        if mailbox
            .commands
            .send(Command::Adopt(Box::new(slot)))
            .is_ok()
        {
            mailbox.wake.signal();
        }
    }

    fn unbridge(&mut self, index: usize) {
        if let Some(peer) = self.slots[index].as_mut().and_then(|s| s.peer.take())
            && let Some(p) = self.slots[peer].as_mut()
        {
            p.peer = None;
        }
    }

    /// Takes a new endpoint, or one handed over by another worker, into the slab.
    fn add(&mut self, slot: Box<Slot>) {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let ok = self
            .epoll
            .add(slot.rtp.as_raw_fd(), (index as u64) << 1)
            .is_ok()
            && self
                .epoll
                .add(slot.rtcp.as_raw_fd(), ((index as u64) << 1) | 1)
                .is_ok();
        if !ok {
            tracing::warn!(port = slot.port, "cannot watch media sockets");
        }
        self.index.insert(slot.id, index);
        let processing = slot.media.is_some();
        self.slots[index] = Some(*slot);
        if processing {
            self.set_active(index, true);
        }
    }

    fn remove(&mut self, id: EndpointId) {
        let Some(&index) = self.index.get(&id) else {
            return;
        };
        self.leave_conference(index);
        self.index.remove(&id);
        let Some(mut slot) = self.slots[index].take() else {
            return;
        };
        self.epoll.remove(slot.rtp.as_raw_fd());
        self.epoll.remove(slot.rtcp.as_raw_fd());
        if let Some(p) = slot.peer.and_then(|p| self.slots[p].as_mut()) {
            p.peer = None;
        }
        if let Some(mut m) = slot.media.take() {
            m.close(self.now);
            self.set_active(index, false);
        }
        self.free.push(index);
        slot.stats.lost = slot.sequence.lost();
        slot.stats.out_of_order = slot.sequence.out_of_order();
        let port = slot.port;
        // Close the sockets before the port can be handed out again.
        drop((slot.rtp, slot.rtcp));
        self.ports.lock().expect("not poisoned").put(port);
        let _ = self.events.send(MediaEvent::Released {
            id: slot.id,
            stats: slot.stats,
        });
    }

    /// The hot path: take one packet from an RTP socket, rewrite it in the buffer it arrived
    /// in, and send it from the bridged endpoint's socket.
    fn relay_rtp(&mut self, index: usize) {
        let Some(slot) = self.slots.get(index).and_then(Option::as_ref) else {
            return;
        };
        // Opus between two Opus peers passes untouched when nothing listens in.
        let opus_to_opus = slot.opus.is_some()
            && slot.media.is_none()
            && slot
                .peer
                .and_then(|p| self.slots.get(p))
                .and_then(Option::as_ref)
                .is_some_and(|o| o.opus.is_some() && o.media.is_none());
        let slot = self.slots[index].as_mut().expect("checked");
        let Some(src) = self.packet.recv(slot.rtp.as_raw_fd()) else {
            return;
        };
        let packet = self.packet.packet_mut();
        if !crate::rtp::is_rtp(packet) || crate::rtp::is_rtcp(packet) {
            return self.drop_packet(index);
        }
        // Only a negotiated payload type may latch a source; once latched, the peer's other
        // RTP (comfort noise, say) still counts as alive, and the relay decides what to forward.
        let negotiated = slot.config.payload.knows(crate::rtp::payload_type(packet));
        if !slot
            .rtp_dest
            .accept(src, negotiated, self.now, Some(&slot.rtp))
        {
            return self.drop_packet(index);
        }
        slot.stats.packets_in += 1;
        slot.stats.bytes_in += packet.len() as u64;
        slot.sequence
            .update(crate::rtp::ssrc(packet), crate::rtp::sequence(packet));
        slot.last_rx = self.now;
        // An Opus peer's audio takes the engine's 8 kHz μ-law form on arrival.
        let opus_audio = slot.is_opus_audio(packet);
        let mut still_opus = false;
        if let Some(opus) = &mut slot.opus {
            if opus_audio && !opus_to_opus {
                if !self.packet.rewrite(|buf, len| opus.ingress(buf, len)) {
                    return self.drop_packet(index);
                }
            } else {
                opus.clock_in(packet);
                still_opus = opus_audio;
            }
        }
        let packet = self.packet.packet_mut();
        let from = slot.config.payload;
        let consumed = match &mut slot.media {
            Some(m) => {
                m.on_inbound(packet, &from, self.now);
                true
            }
            None => false,
        };
        let out = slot
            .peer
            .and_then(|p| self.slots.get_mut(p))
            .and_then(Option::as_mut);
        let Some((out, dest)) = out.and_then(|o| o.rtp_dest.target.map(|d| (o, d))) else {
            if !consumed {
                self.drop_packet(index);
            }
            return;
        };
        // Audio we generate toward that peer takes the place of relayed audio.
        if out.media.as_ref().is_some_and(|m| m.generating()) {
            return;
        }
        if relay::prepare(packet, &from, &out.config.payload, &mut out.outbound).is_err() {
            return self.drop_packet(index);
        }
        if let Some(m) = &mut out.media {
            m.on_relayed_outbound(packet, &out.config.payload, self.now);
        }
        if !to_peer_codec(&mut self.packet, out, still_opus) {
            return self.drop_packet(index);
        }
        if !self.packet.send(out.rtp.as_raw_fd(), dest.send_addr()) {
            return self.drop_packet(index);
        }
        out.stats.packets_out += 1;
        out.stats.bytes_out += self.packet.len() as u64;
        self.counters.relayed.fetch_add(1, Ordering::Relaxed);
    }

    fn drop_packet(&mut self, index: usize) {
        if let Some(slot) = self.slots[index].as_mut() {
            slot.stats.dropped += 1;
        }
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// RTCP is forwarded unchanged from one endpoint's RTCP socket to the other's peer.
    fn relay_rtcp(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let Some(src) = self.packet.recv(slot.rtcp.as_raw_fd()) else {
            return;
        };
        let valid = crate::rtp::is_rtcp(self.packet.packet_mut());
        if !slot.rtcp_dest.accept(src, valid, self.now, None) {
            return;
        }
        let out = slot
            .peer
            .and_then(|p| self.slots.get(p))
            .and_then(Option::as_ref);
        if let Some(dest) = out.and_then(|o| o.rtcp_dest.target.map(|t| (o, t))) {
            let (out, dest) = dest;
            self.packet.send(out.rtcp.as_raw_fd(), Some(&dest.raw));
        }
    }

    fn apply_media(&mut self, index: usize, op: MediaOp) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        let rfc4733 = slot.config.payload.telephone_event.is_some();
        let m = slot.media.get_or_insert_with(Default::default);
        match op {
            MediaOp::Play {
                playback,
                clip,
                loops,
                barge_in,
            } => m.play(playback, clip, loops, barge_in),
            MediaOp::StopPlayback => m.stop_playback(PlaybackEnd::Stopped),
            MediaOp::SendDigits {
                digits,
                duration_ms,
            } => m.send_digits(&digits, duration_ms, rfc4733),
            MediaOp::DetectDtmf(on) => m.set_detect(on, !rfc4733),
            MediaOp::RecordStart(spec) => {
                if let Some(old) = m.take_recorder() {
                    old.stop(self.now);
                }
                m.set_recorder(Some(self.recorder.start(spec, self.now)));
            }
            MediaOp::RecordPause => m.recorder_mut().map_or((), |r| r.pause(self.now)),
            MediaOp::RecordResume => m.recorder_mut().map_or((), |r| r.resume(self.now)),
            MediaOp::RecordStop => {
                if let Some(r) = m.take_recorder() {
                    r.stop(self.now);
                }
            }
            MediaOp::TapStart { tap, tx, tracks } => m.start_tap(tap, tx, tracks, self.now),
            MediaOp::TapStop(tap) => m.stop_tap(tap),
            MediaOp::Inject {
                frames,
                mark,
                limit,
            } => m.inject(frames, mark, limit),
            MediaOp::ClearInjected => m.clear_injected(),
            MediaOp::Suppress { inbound, outbound } => m.set_suppression(inbound, outbound),
            MediaOp::Mute(muted) => m.set_muted(muted),
            MediaOp::SilenceWhenIdle(on) => m.set_silence_when_idle(on),
        }
        self.after_media(index);
    }

    /// Reports what an endpoint's media processing noticed, and drops the processing once it
    /// has nothing left to do.
    fn after_media(&mut self, index: usize) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        let Some(m) = slot.media.as_mut() else {
            return;
        };
        let id = slot.id;
        for notice in m.take_notices() {
            let _ = self.events.send(match notice {
                Notice::PlaybackEnded { playback, reason } => MediaEvent::PlaybackEnded {
                    id,
                    playback,
                    reason,
                },
                Notice::Dtmf(report) => MediaEvent::Dtmf { id, report },
                Notice::Mark { name, cleared } => MediaEvent::Mark { id, name, cleared },
                Notice::TapStopped { tap, dropped } => MediaEvent::TapStopped { id, tap, dropped },
                Notice::InjectDiscarded { frames } => MediaEvent::InjectDiscarded { id, frames },
                Notice::RecordingStopped { recording, reason } => MediaEvent::RecordingStopped {
                    id,
                    recording,
                    reason,
                },
            });
        }
        let idle = m.idle();
        if idle {
            slot.media = None;
        }
        self.set_active(index, !idle);
    }

    fn set_active(&mut self, index: usize, active: bool) {
        let was_empty = self.active.is_empty();
        match (self.active.iter().position(|&i| i == index), active) {
            (None, true) => self.active.push(index),
            (Some(at), false) => {
                self.active.swap_remove(at);
            }
            _ => return,
        }
        if was_empty != self.active.is_empty() {
            self.timer
                .set_period(if was_empty { PTIME } else { Duration::ZERO });
        }
    }

    /// The 20 ms media clock: conferences mix, then each endpoint with media processing sends
    /// what it generates.
    fn tick(&mut self) {
        let now = self.now;
        for conference in self.conferences.values_mut() {
            self.said.clear();
            for &m in &conference.members {
                let media = self.slots[m].as_mut().and_then(|s| s.media.as_mut());
                self.said.push(media.and_then(|m| m.take_said()));
            }
            let slots = &mut self.slots;
            conference.mix(
                &self.said,
                |m, frame| {
                    if let Some(media) = slots[m].as_mut().and_then(|s| s.media.as_mut()) {
                        media.give_mix(frame);
                    }
                },
                now,
            );
        }
        for at in (0..self.active.len()).rev() {
            let index = self.active[at];
            if let Some(slot) = self.slots[index].as_mut()
                && let Some(m) = slot.media.as_mut()
            {
                let payload = slot.config.payload;
                let now = self.now;
                let built = self
                    .packet
                    .generate(|buf| m.tick(buf, &mut slot.outbound, &payload, now))
                    && to_peer_codec(&mut self.packet, slot, false);
                if built
                    && let Some(dest) = slot.rtp_dest.target
                    && self.packet.send(slot.rtp.as_raw_fd(), dest.send_addr())
                {
                    slot.stats.packets_out += 1;
                    slot.stats.bytes_out += self.packet.len() as u64;
                }
            }
            self.after_media(index);
        }
    }

    fn sweep_timeouts(&mut self) {
        for slot in self.slots.iter_mut().flatten() {
            if slot.config.expect_rtp
                && !slot.timed_out
                && self.now.duration_since(slot.last_rx) > self.rtp_timeout
            {
                slot.timed_out = true;
                let _ = self.events.send(MediaEvent::Timeout { id: slot.id });
            }
        }
    }
}
