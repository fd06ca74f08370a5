//! The kernel relay: a plain relay's packets forwarded inside the kernel, as rtpengine's
//! kernel module forwards them, without a wake-up, a copy to userspace or a system call per
//! packet. A BPF classifier on the ingress of the interfaces the peers send on (TCX, Linux 6.6)
//! rewrites a stream's packets as [`crate::relay::prepare`] would and sends them on toward
//! the bridged peer; each flow's counters and last arrival stay in the flow map, where the
//! engine reads them for its statistics, timeouts and records.
//!
//! The userspace relay stays the whole truth: the engine hands a direction to the kernel only
//! while it is a plain relay that the program can do exactly (both sources latched and
//! settled, no tap, playback, recording, transcoding, SRTP, Opus or browser on either end, the
//! same audio law), and takes it back, with its counters and sequence state, before anything
//! about either end changes. Whatever the program does not claim (another source, another
//! SSRC, another payload type, RTCP) still reaches the endpoint's socket as before.
//!
//! A peer on this host (its own addresses, carried over loopback) has its packets passed up
//! the stack to its socket; a peer elsewhere has them sent out of the interface its route
//! leaves by ([`route`]), to the next hop the neighbour table resolves (`bpf_redirect_neigh`).

mod bpf;
mod program;
mod route;
#[cfg(test)]
mod tests;

use program::value as v;
use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd};

/// One direction of a relay, as the program applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flow {
    /// Where the peer's packets arrive: the endpoint's RTP socket.
    pub(crate) to: SocketAddrV4,
    /// The peer's latched source; no other is forwarded.
    pub(crate) from: SocketAddrV4,
    /// The bridged endpoint's RTP socket, which the packets now leave from.
    pub(crate) out_from: SocketAddrV4,
    /// The bridged endpoint's peer.
    pub(crate) out_to: SocketAddrV4,
    /// The audio payload type in, and out.
    pub(crate) audio: (u8, u8),
    /// The telephone-event payload type in, and out.
    pub(crate) event: Option<(u8, u8)>,
    pub(crate) ssrc_in: u32,
    pub(crate) ssrc_out: u32,
    pub(crate) seq_offset: u16,
    pub(crate) ts_offset: u32,
}

/// What the program has done for a flow since it was installed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowCounters {
    pub(crate) packets: u64,
    /// RTP bytes (the UDP payloads).
    pub(crate) bytes: u64,
    /// When the last one arrived, CLOCK_MONOTONIC.
    pub(crate) last_ns: u64,
    pub(crate) last_in_seq: u16,
    pub(crate) last_out_seq: u16,
    pub(crate) last_out_ts: u32,
}

/// No payload type is 0xff: an event mapping that never matches.
const NONE_PT: u8 = 0xff;
/// Flows at once: more than a port range can hold.
const MAX_FLOWS: u32 = 65_536;

/// The loaded program, its flow map and its attachments; dropping it detaches the program.
pub(crate) struct KernelRelay {
    map: OwnedFd,
    prog: OwnedFd,
    /// The interfaces the program is attached to, by index, and the links that hold it there.
    attached: Vec<(u32, String, OwnedFd)>,
}

impl std::fmt::Debug for KernelRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelRelay").finish_non_exhaustive()
    }
}

impl KernelRelay {
    /// Loads the program and attaches it to the ingress of every interface of this thread's
    /// network namespace (loopback included: peers on this host). Needs CAP_BPF and
    /// CAP_NET_ADMIN, and Linux 6.6 or later; interfaces that appear later are not served.
    pub(crate) fn start() -> io::Result<Self> {
        let mut relay = Self::load()?;
        for (index, name) in bpf::interfaces()? {
            match bpf::attach_ingress(&relay.prog, index) {
                Ok(link) => relay.attached.push((index, name, link)),
                Err(e) => {
                    tracing::warn!(interface = %name, error = %e, "the kernel relay cannot serve an interface")
                }
            }
        }
        if relay.attached.is_empty() {
            return Err(io::Error::other("attached to no interface"));
        }
        Ok(relay)
    }

    /// The program and its map, attached nowhere.
    fn load() -> io::Result<Self> {
        let map = bpf::hash_map(program::KEY_SIZE, v::SIZE, MAX_FLOWS, "sb_flows")?;
        let prog = bpf::load_classifier(&program::relay(map.as_raw_fd()), "sb_relay")?;
        Ok(Self {
            map,
            prog,
            attached: Vec::new(),
        })
    }

    /// The names of the interfaces served.
    pub(crate) fn interfaces(&self) -> Vec<&str> {
        self.attached.iter().map(|(_, n, _)| n.as_str()).collect()
    }

    /// Where the program sends a flow's packets: 0 for a peer on this host, whose packets
    /// must then come over loopback too (one from outside, given our own address as its
    /// source, would be refused as a martian); otherwise the served interface the route to
    /// the peer leaves by.
    fn egress(&self, flow: &Flow) -> Option<u32> {
        let local = |a: &SocketAddrV4| {
            a.ip().is_loopback() || std::net::UdpSocket::bind((*a.ip(), 0)).is_ok()
        };
        if local(&flow.out_to) {
            return local(&flow.from).then_some(0);
        }
        let name = route::egress(*flow.out_to.ip())?;
        self.attached
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|&(index, ..)| index)
    }

    /// Hands a direction to the kernel (or replaces its rules, counters starting over);
    /// `Unsupported` when the program cannot reach its peer.
    pub(crate) fn install(&self, flow: &Flow) -> io::Result<()> {
        let egress = self.egress(flow).ok_or(io::ErrorKind::Unsupported)?;
        self.install_to(flow, egress)
    }

    fn install_to(&self, flow: &Flow, egress: u32) -> io::Result<()> {
        bpf::update(&self.map, &key(flow.to), &encode(flow, egress))
    }

    /// The counters of the flow arriving at `to`, if it is the kernel's.
    pub(crate) fn counters(&self, to: SocketAddrV4) -> io::Result<Option<FlowCounters>> {
        let mut value = [0u8; v::SIZE];
        Ok(bpf::lookup(&self.map, &key(to), &mut value)?.then(|| decode(&value)))
    }

    /// Takes the flow arriving at `to` back, with its final counters.
    pub(crate) fn remove(&self, to: SocketAddrV4) -> io::Result<Option<FlowCounters>> {
        let mut value = [0u8; v::SIZE];
        Ok(bpf::take(&self.map, &key(to), &mut value)?.then(|| decode(&value)))
    }
}

fn encode(f: &Flow, egress: u32) -> [u8; v::SIZE] {
    let mut b = [0u8; v::SIZE];
    let mut put = |at: i16, bytes: &[u8]| {
        let at = at as usize;
        b[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(v::SRC_ADDR, &f.from.ip().octets());
    put(v::SRC_PORT, &f.from.port().to_be_bytes());
    put(v::AUDIO_IN, &[f.audio.0]);
    put(v::AUDIO_OUT, &[f.audio.1]);
    let (ev_in, ev_out) = f.event.unwrap_or((NONE_PT, NONE_PT));
    put(v::EVENT_IN, &[ev_in]);
    put(v::EVENT_OUT, &[ev_out]);
    put(v::SEQ_OFFSET, &f.seq_offset.to_ne_bytes());
    put(v::SSRC_IN, &f.ssrc_in.to_be_bytes());
    put(v::SSRC_OUT, &f.ssrc_out.to_be_bytes());
    put(v::TS_OFFSET, &f.ts_offset.to_ne_bytes());
    put(v::NEW_SADDR, &f.out_from.ip().octets());
    put(v::NEW_DADDR, &f.out_to.ip().octets());
    put(v::NEW_SPORT, &f.out_from.port().to_be_bytes());
    put(v::NEW_DPORT, &f.out_to.port().to_be_bytes());
    put(v::EGRESS, &egress.to_ne_bytes());
    b
}

fn key(to: SocketAddrV4) -> [u8; program::KEY_SIZE] {
    let mut k = [0u8; program::KEY_SIZE];
    k[..4].copy_from_slice(&to.ip().octets());
    k[4..6].copy_from_slice(&to.port().to_be_bytes());
    k
}

fn decode(b: &[u8; v::SIZE]) -> FlowCounters {
    let u64_at = |at: i16| u64::from_ne_bytes(b[at as usize..at as usize + 8].try_into().unwrap());
    let u16_at = |at: i16| u16::from_ne_bytes([b[at as usize], b[at as usize + 1]]);
    FlowCounters {
        packets: u64_at(v::PACKETS),
        bytes: u64_at(v::BYTES),
        last_ns: u64_at(v::LAST_NS),
        last_in_seq: u16_at(v::LAST_IN_SEQ),
        last_out_seq: u16_at(v::LAST_OUT_SEQ),
        last_out_ts: u32::from_ne_bytes(
            b[v::LAST_OUT_TS as usize..v::LAST_OUT_TS as usize + 4]
                .try_into()
                .unwrap(),
        ),
    }
}

/// CLOCK_MONOTONIC now, to place a flow's `last_ns` against `Instant::now()`.
pub(crate) fn monotonic_ns() -> u64 {
    bpf::monotonic_ns()
}
