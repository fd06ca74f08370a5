//! A media worker: one thread with its epoll, its endpoints' slots and conferences, relaying
//! packets between sockets and generating media on the 20 ms tick.

use super::slot::*;
use super::*;
use crate::conference::{Conference, ConferenceId};
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

const WAKE_TOKEN: u64 = u64::MAX;
const TIMER_TOKEN: u64 = u64::MAX - 1;
/// The media clock: one generated packet per endpoint per tick.
const PTIME: Duration = Duration::from_millis(20);

pub(super) struct Worker {
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
    pub(super) fn new(
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
        let ice_restart = match (&config.webrtc, slot.webrtc.as_deref()) {
            (Some(new), Some(t)) => {
                let old = t.config();
                new.ice != old.ice
                    && std::sync::Arc::ptr_eq(&new.identity, &old.identity)
                    && new.remote_fingerprint == old.remote_fingerprint
            }
            _ => false,
        };
        if ice_restart {
            // New ICE credentials, the same DTLS peer: checks use the new ones, media and
            // keys go on.
            if let (Some(t), Some(new)) = (slot.webrtc.as_deref_mut(), config.webrtc.clone()) {
                t.restart_ice(new);
            }
        } else if config.webrtc != slot.config.webrtc {
            // A new leg, or a DTLS restart (another certificate): checks and the handshake
            // start over, and nothing is sent until the browser has nominated an address and
            // keyed SRTP.
            slot.webrtc = (config.webrtc.clone()).and_then(|c| {
                let local = slot.rtp.local_addr().ok()?;
                crate::webrtc::Transport::new(local, c)
                    .map_err(|e| tracing::warn!(error = %e, "cannot start a WebRTC leg"))
                    .ok()
                    .map(Box::new)
            });
            slot.srtp = None;
            let none = (SourcePolicy::Strict, None);
            slot.rtp_dest
                .configure(None, none, window, now, Some(&slot.rtp));
            slot.rtcp_dest.configure(None, none, window, now, None);
        }
        // A browser's address is the one it nominates, not one its SDP gives.
        if config.webrtc.is_none() {
            let source = (config.source, config.signal_ip);
            slot.rtp_dest
                .configure(config.remote_rtp, source, window, now, Some(&slot.rtp));
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
        if slot.webrtc.is_some() {
            // A browser sends everything to this one socket (RFC 7983, RFC 5761).
            match crate::webrtc::Demux::of(packet) {
                crate::webrtc::Demux::Media if crate::rtp::is_rtcp(packet) => {
                    return self.forward_rtcp(index, src);
                }
                crate::webrtc::Demux::Media if slot.srtp.is_some() => {}
                crate::webrtc::Demux::Stun | crate::webrtc::Demux::Dtls => {
                    return self.on_webrtc(index, src);
                }
                _ => return self.drop_packet(index),
            }
        }
        if !crate::rtp::is_rtp(packet) || crate::rtp::is_rtcp(packet) {
            return self.drop_packet(index);
        }
        // An SRTP peer's packet is authenticated before anything trusts it, its source
        // included: a forged packet cannot latch or keep the call alive.
        if let Some(srtp) = &mut slot.srtp
            && !self
                .packet
                .rewrite(|buf, len| srtp.rx.unprotect_rtp(&mut buf[..len]).ok())
        {
            self.counters.srtp_rejected.fetch_add(1, Ordering::Relaxed);
            return self.drop_packet(index);
        }
        let packet = self.packet.packet_mut();
        // Only a negotiated payload type may latch a source; once latched, the peer's other
        // RTP (comfort noise, say) still counts as alive, and the relay decides what to forward.
        let negotiated = slot.config.payload.knows(crate::rtp::payload_type(packet));
        // A browser's socket is never connected to its address: its checks may come from
        // wherever it moves to (an ICE restart, a new peer connection attached to the call),
        // and the kernel would drop them.
        let connect = slot.webrtc.is_none().then_some(&slot.rtp);
        if !slot.rtp_dest.accept(src, negotiated, self.now, connect) {
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
        // Audio we generate toward that peer takes the place of relayed audio; a peer that
        // holds the call takes none.
        if out.config.held || out.media.as_ref().is_some_and(|m| m.generating()) {
            return;
        }
        if relay::prepare(packet, &from, &out.config.payload, &mut out.outbound).is_err() {
            return self.drop_packet(index);
        }
        if let Some(m) = &mut out.media {
            m.on_relayed_outbound(packet, &out.config.payload, self.now);
        }
        if !to_peer_codec(&mut self.packet, out, still_opus) || !protect(&mut self.packet, out) {
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
        if let Some(src) = self.packet.recv(slot.rtcp.as_raw_fd()) {
            self.forward_rtcp(index, src);
        }
    }

    /// The RTCP packet in the buffer, from `src`, goes to the other endpoint's peer: its
    /// RTCP socket, or for a browser (`rtcp-mux`) its RTP socket.
    fn forward_rtcp(&mut self, index: usize, src: SocketAddr) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let valid = crate::rtp::is_rtcp(self.packet.packet_mut())
            && match &mut slot.srtp {
                Some(s) => {
                    let opened = self
                        .packet
                        .rewrite(|buf, len| s.rx.unprotect_rtcp(&mut buf[..len]).ok());
                    if !opened {
                        self.counters.srtp_rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    opened
                }
                None => true,
            };
        let from = match slot.webrtc {
            Some(_) => &mut slot.rtp_dest,
            None => &mut slot.rtcp_dest,
        };
        if !from.accept(src, valid, self.now, None) || !valid {
            return;
        }
        let out = slot
            .peer
            .and_then(|p| self.slots.get_mut(p))
            .and_then(Option::as_mut);
        let Some(out) = out else {
            return;
        };
        let (socket, target) = match out.webrtc {
            Some(_) => (&out.rtp, out.rtp_dest.target),
            None => (&out.rtcp, out.rtcp_dest.target),
        };
        let Some(dest) = target else {
            return;
        };
        let sealed = match &mut out.srtp {
            Some(s) => self
                .packet
                .rewrite(|buf, len| s.tx.protect_rtcp(buf, len).ok()),
            None => out.webrtc.is_none(),
        };
        if sealed {
            self.packet.send(socket.as_raw_fd(), Some(&dest.raw));
        }
    }

    /// A browser's STUN or DTLS datagram, in the buffer, from `src`.
    fn on_webrtc(&mut self, index: usize, src: SocketAddr) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let Some(transport) = slot.webrtc.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        let event = transport.handle(self.now, src, self.packet.packet_mut(), &mut out);
        for (to, datagram) in out {
            let _ = slot.rtp.send_to(&datagram, to);
        }
        if let Some(event) = event {
            self.on_transport_event(index, event);
        }
    }

    fn on_transport_event(&mut self, index: usize, event: crate::webrtc::Event) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        match event {
            crate::webrtc::Event::Selected(addr) => {
                // Media comes from the nominated address only, and goes there.
                let strict = (SourcePolicy::Strict, None);
                let (window, now) = (self.learn_window, self.now);
                slot.rtp_dest
                    .configure(Some(addr), strict, window, now, None);
            }
            crate::webrtc::Event::Secured(keys) => slot.srtp = Srtp::rekey(None, Some(keys)),
            crate::webrtc::Event::Lost(reason) => {
                let id = slot.id;
                let _ = self.events.send(MediaEvent::TransportLost { id, reason });
            }
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
                    && to_peer_codec(&mut self.packet, slot, false)
                    && protect(&mut self.packet, slot);
                if built
                    && !slot.config.held
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
        // Browsers' handshake retransmissions and consent, at this sweep's pace.
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            let Some(transport) = slot.webrtc.as_mut() else {
                continue;
            };
            if transport.poll_timeout().is_none_or(|t| t > self.now) {
                continue;
            }
            let mut out = Vec::new();
            let event = transport.handle_timeout(self.now, &mut out);
            for (to, datagram) in out {
                let _ = slot.rtp.send_to(&datagram, to);
            }
            if let Some(event) = event {
                self.on_transport_event(index, event);
            }
        }
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
