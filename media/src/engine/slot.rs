//! An endpoint as its worker holds it: sockets, where each peer's packets go, and its media
//! processing.

use super::*;
use crate::conference::ConferenceId;
use crate::endpoint_media::EndpointMedia;
use crate::latch::{Latch, SourcePolicy, Verdict};
use crate::opus::{OpusLeg, clock_out};
use crate::relay::Outbound;
use crate::srtp::Context;
use crate::stats::{EndpointStats, SequenceTracker};
use crate::sys::{PacketBuf, RawAddr};
use crate::webrtc::MediaSource;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Readies a packet in the engine's form for the peer of `slot`: Opus peers get their audio
/// encoded (unless it is `still_opus`, passed through) and their clock back at 48 kHz.
pub(super) fn to_peer_codec(packet: &mut PacketBuf, slot: &mut Slot, still_opus: bool) -> bool {
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

/// Where packets for a peer go, and which source is accepted from it ([`Latch`]).
#[derive(Clone, Copy)]
pub(super) struct Destination {
    pub(super) latch: Latch,
    pub(super) target: Option<Target>,
}

/// The address packets for a peer are sent to, in the socket layer's form.
#[derive(Clone, Copy)]
pub(super) struct Target {
    pub(super) raw: RawAddr,
    /// The socket is connected to it: sends need no address and use the cached route, and
    /// the kernel filters out every other source.
    pub(super) connected: bool,
}

impl Target {
    /// The address argument for sending to this target.
    pub(super) fn send_addr(&self) -> Option<&RawAddr> {
        (!self.connected).then_some(&self.raw)
    }
}

impl Destination {
    pub(super) fn new(window: Duration) -> Self {
        Self {
            latch: Latch::new(SourcePolicy::default(), window),
            target: None,
        }
    }

    /// The peer's SDP (re)described the address; `socket`, when given, is connected to the
    /// source once one latches.
    pub(super) fn configure(
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
    pub(super) fn accept(
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

    pub(super) fn retarget(&mut self, socket: Option<&UdpSocket>) {
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

pub(super) struct Slot {
    pub(super) id: EndpointId,
    /// Its own RTP/RTCP pair; a browser's leg gives it back once it is one (everything for it
    /// goes through its worker's browser socket), so it holds no port.
    pub(super) pair: Option<Pair>,
    pub(super) config: EndpointConfig,
    pub(super) rtp_dest: Destination,
    pub(super) rtcp_dest: Destination,
    pub(super) peer: Option<usize>,
    /// Continuity of the stream we send to this endpoint's peer.
    pub(super) outbound: Outbound,
    pub(super) sequence: SequenceTracker,
    pub(super) stats: EndpointStats,
    pub(super) last_rx: Instant,
    pub(super) timed_out: bool,
    /// Playback, DTMF, recording, taps; `None` for a plain relay.
    pub(super) media: Option<Box<EndpointMedia>>,
    pub(super) conference: Option<ConferenceId>,
    /// The peer speaks Opus: its codec state.
    pub(super) opus: Option<Box<OpusLeg>>,
    /// The peer speaks SRTP: a context per direction.
    pub(super) srtp: Option<Box<Srtp>>,
    /// The peer is a browser: its ICE-lite and DTLS state (its SRTP is `srtp`, once keyed).
    pub(super) webrtc: Option<Box<crate::webrtc::Transport>>,
    /// The peer is a browser: the browser socket it sends to, which everything for it is
    /// sent from (its own pair is given back: see `pair`).
    pub(super) browser: Option<Arc<UdpSocket>>,
    /// The packets arriving here are relayed by the kernel.
    pub(super) offload: Option<super::worker::Offloaded>,
    /// `stats.packets_in` from which the kernel may be offered this direction.
    pub(super) offload_after: u64,
    /// Times this direction was handed to the kernel.
    pub(super) handovers: u8,
}

/// An endpoint's own sockets: RTP on `port`, RTCP on the next.
pub(super) struct Pair {
    pub(super) rtp: UdpSocket,
    pub(super) rtcp: UdpSocket,
    pub(super) port: u16,
}

/// An SRTP peer's two directions: `rx` for what it sends, `tx` for what we send it.
pub(super) struct Srtp {
    keys: SrtpKeys,
    pub(super) rx: Context,
    pub(super) tx: Context,
}

impl Srtp {
    /// Contexts for `keys`, keeping the state of a direction whose key is unchanged (its
    /// rollover counter and replay window carry on).
    pub(super) fn rekey(current: Option<Box<Srtp>>, keys: Option<SrtpKeys>) -> Option<Box<Srtp>> {
        let keys = keys?;
        Some(match current {
            Some(mut s) => {
                if s.keys.inbound != keys.inbound {
                    s.rx = Context::new(&keys.inbound);
                }
                if s.keys.outbound != keys.outbound {
                    s.tx = Context::new(&keys.outbound);
                }
                s.keys = keys;
                s
            }
            None => Box::new(Srtp {
                keys,
                rx: Context::new(&keys.inbound),
                tx: Context::new(&keys.outbound),
            }),
        })
    }
}

/// Encrypts the packet in `packet` for a peer that speaks SRTP; false when it cannot be — and
/// for a browser whose DTLS has not keyed SRTP yet: nothing goes to it in the clear.
pub(super) fn protect(packet: &mut PacketBuf, slot: &mut Slot) -> bool {
    match slot.srtp.as_deref_mut() {
        Some(s) => packet.rewrite(|buf, len| s.tx.protect_rtp(buf, len).ok()),
        None => slot.webrtc.is_none(),
    }
}

impl Slot {
    pub(super) fn new(id: EndpointId, pair: Pair, now: Instant, learn_window: Duration) -> Self {
        Self {
            id,
            pair: Some(pair),
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
            srtp: None,
            webrtc: None,
            browser: None,
            offload: None,
            offload_after: super::worker::SETTLE_PACKETS,
            handovers: 0,
        }
    }

    /// The socket the peer's media comes to and goes from: the pair's RTP socket, or for a
    /// browser its worker's browser socket (`None` for a leg that stopped being a browser's,
    /// its pair given back: it carries nothing more).
    pub(super) fn media_socket(&self) -> Option<&UdpSocket> {
        (self.browser.as_deref()).or(self.pair.as_ref().map(|p| &p.rtp))
    }

    /// Judges the source of a packet from the peer (`valid`: well-formed media of this
    /// endpoint, and for a browser authentic): the latch decides for a phone; a browser's
    /// media may also come from another address its checks proved, which then becomes where
    /// media goes until it nominates one ([`crate::webrtc::Transport::media_from`]).
    pub(super) fn accept_media(
        &mut self,
        src: SocketAddr,
        valid: bool,
        now: Instant,
        window: Duration,
    ) -> bool {
        let Some(transport) = self.webrtc.as_deref_mut() else {
            let socket = self.pair.as_ref().map(|p| &p.rtp);
            return self.rtp_dest.accept(src, valid, now, socket);
        };
        // A browser's socket is never connected to its address: its checks may come from
        // wherever it moves to (an ICE restart, a new peer connection attached to the call),
        // and the kernel would drop them.
        if self.rtp_dest.accept(src, valid, now, None) {
            return true;
        }
        if !valid {
            return false;
        }
        match transport.media_from(src) {
            MediaSource::Unproved => false,
            MediaSource::Proved => true,
            MediaSource::Moved => {
                tracing::debug!(endpoint = self.id.0, %src, "browser leg: media moved before a nomination");
                let strict = (SourcePolicy::Strict, None);
                self.rtp_dest
                    .configure(Some(src), strict, window, now, None);
                true
            }
        }
    }

    /// Whether a packet of this endpoint's stream (received from or sent to its peer) is
    /// Opus audio.
    pub(super) fn is_opus_audio(&self, packet: &[u8]) -> bool {
        self.opus.is_some()
            && self.config.payload.audio.map(|(pt, _)| pt) == Some(crate::rtp::payload_type(packet))
    }
}
