//! A media worker: one thread with its epoll, its endpoints' slots and conferences, relaying
//! packets between sockets and generating media on the 20 ms tick.

use super::slot::*;
use super::*;
use crate::conference::{Conference, ConferenceId, Member, Playing};
use crate::endpoint_media::{Frame, Notice};
use crate::health::Beat;
use crate::latch::SourcePolicy;
use crate::opus::OpusLeg;
use crate::ports::PortPool;
use crate::prompt::PlaybackEnd;
use crate::record::Recorder;
use crate::relay;
use crate::sys::{Epoll, PacketBuf, TimerFd};
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod generate;
mod offload;
mod packets;

pub(super) use offload::{Offloaded, SETTLE_PACKETS};

const WAKE_TOKEN: u64 = u64::MAX;
const TIMER_TOKEN: u64 = u64::MAX - 1;
/// This worker's socket for browsers ([`Browsers`]).
const BROWSER_TOKEN: u64 = u64::MAX - 2;
/// The media clock: one generated packet per endpoint per tick.
const PTIME: Duration = Duration::from_millis(20);

pub(super) struct Worker {
    epoll: Epoll,
    /// Every worker's mailbox, this one's at `me`.
    mailboxes: Arc<[Mailbox]>,
    me: usize,
    /// Every worker's browser socket, and where endpoints live.
    browsers: Browsers,
    /// Which leg a datagram on this worker's browser socket is for.
    routes: crate::webrtc::mux::Routes<EndpointId>,
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
    /// Plain relays go to the kernel when it is there.
    kernel: Option<Arc<crate::kernel::KernelRelay>>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        commands: std_mpsc::Receiver<Command>,
        mailboxes: Arc<[Mailbox]>,
        me: usize,
        browsers: Browsers,
        counters: Arc<Counters>,
        ports: Arc<Mutex<PortPool>>,
        events: mpsc::UnboundedSender<MediaEvent>,
        recorder: Arc<Recorder>,
        rtp_timeout: Duration,
        learn_window: Duration,
        kernel: Option<Arc<crate::kernel::KernelRelay>>,
    ) -> io::Result<Self> {
        let epoll = Epoll::new()?;
        epoll.add(mailboxes[me].wake.fd(), WAKE_TOKEN)?;
        let timer = TimerFd::new()?;
        epoll.add(timer.fd(), TIMER_TOKEN)?;
        epoll.add(browsers.sockets[me].as_raw_fd(), BROWSER_TOKEN)?;
        Ok(Self {
            epoll,
            mailboxes,
            me,
            browsers,
            routes: Default::default(),
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
            kernel,
        })
    }

    pub(super) fn run(mut self, beat: &Beat) {
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
                } else if token == BROWSER_TOKEN {
                    self.relay_browsers();
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
        // Whatever a command changes, the kernel relays none of it meanwhile.
        if self.kernel.is_some() {
            for id in cmd.endpoints().into_iter().flatten() {
                if let Some(&index) = self.index.get(&id) {
                    self.take_back_bridge(index);
                }
            }
        }
        match cmd {
            Command::Add {
                id,
                rtp,
                rtcp,
                port,
            } => self.add(Box::new(Slot::new(
                id,
                Pair { rtp, rtcp, port },
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
            Command::Coach { id, coached } => {
                let coached = coached.and_then(|c| self.index.get(&c).copied());
                if let Some(&index) = self.index.get(&id)
                    && let Some(conference) = self.slots[index].as_ref().and_then(|s| s.conference)
                    && let Some(c) = self.conferences.get_mut(&conference)
                {
                    c.coach(index, coached);
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
            Command::Announce {
                conference,
                announcement,
            } => {
                let id = announcement.id;
                // One member's must be in the conference; it is refused (reported as stopped)
                // when not, or when the conference is full of announcements.
                let to = announcement.to.map(|to| {
                    (self.index.get(&to).copied()).filter(|&i| {
                        self.slots[i].as_ref().and_then(|s| s.conference) == Some(conference)
                    })
                });
                let started = to != Some(None)
                    && (self.conferences.get_mut(&conference))
                        .is_some_and(|c| c.announce(Playing::new(announcement, to.flatten())));
                if !started && let Some(announcement) = id {
                    let _ = self.events.send(MediaEvent::AnnouncementEnded {
                        conference,
                        announcement,
                        stopped: true,
                    });
                }
            }
            Command::PauseConferenceRecording { conference, paused } => {
                let now = self.now;
                let c = self.conferences.get_mut(&conference);
                match (c.and_then(|c| c.recorder.as_mut()), paused) {
                    (Some(r), Some(how)) => r.pause(now, how),
                    (Some(r), None) => r.resume(now),
                    (None, _) => {}
                }
            }
            Command::StopAnnouncements { conference, to } => {
                let to = to.map(|to| self.index.get(&to).copied());
                if to != Some(None)
                    && let Some(c) = self.conferences.get_mut(&conference)
                {
                    let events = &self.events;
                    c.stop_announcements(to.flatten(), |announcement| {
                        let _ = events.send(MediaEvent::AnnouncementEnded {
                            conference,
                            announcement,
                            stopped: true,
                        });
                    });
                }
            }
            Command::BrowserServe { id, config } => self.routes.register(id, config),
            Command::BrowserForget { id } => self.routes.forget(id),
            Command::Datagram {
                id,
                from,
                data,
                passed_on,
            } => {
                if passed_on {
                    self.browsers.passed_on[self.me].fetch_sub(1, Ordering::Relaxed);
                }
                if let Some(&index) = self.index.get(&id)
                    && self.packet.generate(|buf| {
                        let n = data.len().min(buf.len());
                        buf[..n].copy_from_slice(&data[..n]);
                        Some(n)
                    })
                {
                    self.on_rtp(index, from);
                }
            }
            Command::Barrier(done) => {
                let _ = done.send(());
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
        let ice_restart = match (&config.webrtc, slot.webrtc.as_deref()) {
            (Some(new), Some(t)) => {
                let old = t.config();
                new.ice != old.ice
                    && std::sync::Arc::ptr_eq(&new.identity, &old.identity)
                    && new.remote_fingerprint == old.remote_fingerprint
            }
            _ => false,
        };
        // A browser sends to the socket of the worker its endpoint was allocated on (its
        // SDP names it), which routes the leg's datagrams to wherever the leg lives.
        let browser_home = id.first_worker();
        let mut tell = None;
        if ice_restart {
            // New ICE credentials, the same DTLS peer: checks use the new ones, media and
            // keys go on.
            if let (Some(t), Some(new)) = (slot.webrtc.as_deref_mut(), config.webrtc.clone()) {
                t.restart_ice(new.clone());
                tell = Some(Command::BrowserServe { id, config: new });
            }
        } else if config.webrtc != slot.config.webrtc {
            // A new leg, or a DTLS restart (another certificate): checks and the handshake
            // start over, and nothing is sent until the browser has nominated an address and
            // keyed SRTP.
            let socket = self.browsers.sockets[browser_home].clone();
            slot.webrtc = (config.webrtc.clone()).and_then(|c| {
                let local = socket.local_addr().ok()?;
                crate::webrtc::Transport::new(local, c)
                    .map_err(|e| tracing::warn!(error = %e, "cannot start a WebRTC leg"))
                    .ok()
                    .map(Box::new)
            });
            slot.browser = slot.webrtc.is_some().then_some(socket);
            tracing::debug!(
                endpoint = id.0,
                started = slot.webrtc.is_some(),
                "browser leg: checks and handshake (re)start"
            );
            tell = Some(match (&slot.webrtc, config.webrtc.clone()) {
                (Some(_), Some(config)) => Command::BrowserServe { id, config },
                _ => Command::BrowserForget { id },
            });
            slot.srtp = None;
            let none = (SourcePolicy::Strict, None);
            let socket = slot.pair.as_ref().map(|p| &p.rtp);
            slot.rtp_dest.configure(None, none, window, now, socket);
            slot.rtcp_dest.configure(None, none, window, now, None);
        }
        // A browser's address is the one it nominates, not one its SDP gives.
        if config.webrtc.is_none() {
            let source = (config.source, config.signal_ip);
            let socket = slot.pair.as_ref().map(|p| &p.rtp);
            slot.rtp_dest
                .configure(config.remote_rtp, source, window, now, socket);
            slot.rtcp_dest
                .configure(config.remote_rtcp, source, window, now, None);
        }
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
        if config.webrtc.is_none() && config.srtp != slot.config.srtp {
            slot.srtp = Srtp::rekey(slot.srtp.take(), config.srtp);
        }
        let telephone_event = config.payload.telephone_event.is_some();
        slot.config = config;
        if let Some(m) = &mut slot.media {
            m.on_payload_change(telephone_event);
        }
        let browser = slot.browser.is_some();
        if let Some(told) = tell {
            self.tell_browser_home(browser_home, told);
        }
        if browser && let Some(&index) = self.index.get(&id) {
            self.give_back_pair(index);
        }
    }

    /// A browser's leg needs no pair of its own: its sockets are closed and its port goes
    /// back to the pool.
    fn give_back_pair(&mut self, index: usize) {
        if let Some(pair) = self.slots[index].as_mut().and_then(|s| s.pair.take()) {
            self.close_pair(pair);
        }
    }

    fn unwatch(&self, pair: &Pair) {
        self.epoll.remove(pair.rtp.as_raw_fd());
        self.epoll.remove(pair.rtcp.as_raw_fd());
    }

    /// Closes a pair's sockets, then puts its port back in the pool (not before: the port
    /// could be bound again while still open).
    fn close_pair(&self, pair: Pair) {
        self.unwatch(&pair);
        let port = pair.port;
        drop(pair);
        self.ports.lock().expect("not poisoned").put(port);
    }

    /// Tells the worker whose browser socket serves a leg (this one or another) what became
    /// of the leg.
    fn tell_browser_home(&mut self, home: usize, command: Command) {
        if home == self.me {
            self.handle(command);
            return;
        }
        let mailbox = &self.mailboxes[home];
        if mailbox.commands.send(command).is_ok() {
            mailbox.wake.signal();
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
            .push(Member::new(index));
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
            let events = &self.events;
            let ended = |announcement| {
                let _ = events.send(MediaEvent::AnnouncementEnded {
                    conference,
                    announcement,
                    stopped: true,
                });
            };
            c.remove(index, ended);
            if c.members.is_empty() {
                if let Some(r) = c.recorder.take() {
                    r.stop(self.now);
                }
                c.stop_announcements(None, ended);
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
        if let Some(pair) = &slot.pair {
            self.unwatch(pair);
        }
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
        if let Some(pair) = &slot.pair {
            let ok = (self.epoll)
                .add(pair.rtp.as_raw_fd(), (index as u64) << 1)
                .is_ok()
                && (self.epoll)
                    .add(pair.rtcp.as_raw_fd(), ((index as u64) << 1) | 1)
                    .is_ok();
            if !ok {
                tracing::warn!(port = pair.port, "cannot watch media sockets");
            }
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
        if let Some(p) = slot.peer.and_then(|p| self.slots[p].as_mut()) {
            p.peer = None;
        }
        if let Some(mut m) = slot.media.take() {
            m.close(self.now);
            self.set_active(index, false);
        }
        if slot.browser.is_some() {
            self.tell_browser_home(id.first_worker(), Command::BrowserForget { id });
        }
        self.free.push(index);
        slot.stats.lost = slot.sequence.lost();
        slot.stats.out_of_order = slot.sequence.out_of_order();
        tracing::debug!(endpoint = id.0, stats = ?slot.stats, "endpoint released");
        if let Some(pair) = slot.pair.take() {
            self.close_pair(pair);
        }
        let _ = self.events.send(MediaEvent::Released {
            id: slot.id,
            stats: slot.stats,
        });
    }
}
