//! RTP forks: a live call's audio sent as plain RTP to UDP targets an application names —
//! what the party says to one, what it hears to the other (Telnyx's `fork_start` `rx`/`tx`),
//! or both to one target, each packet behind a header naming the leg and the direction
//! (Telnyx's `target`, its "Simple Telnyx RTP Encapsulation Protocol").
//! A fork is a tap on the call's endpoint; its frames are packetised as PCMU (one RTP
//! stream per direction, its own SSRC, sequence and 8 kHz timestamps), so a target gets the
//! same stream whatever codec the call negotiated. Targets are IP literals checked against
//! the account's reach, as every other address Switchboard sends to on an app's behalf.

use crate::call::{CallCommand, CallControl, CallError};
use crate::infra::egress::Reach;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use switchboard_media::record::Track;
use switchboard_media::{FRAME, Law, TapFrame, TapId, TapTracks, rtp};
use tokio::sync::mpsc;

/// Forks running at once, over all calls (each holds a socket and a task).
const MAX_FORKS: usize = 1000;
/// Tap frames waiting for the fork's task (a second of audio per direction).
const QUEUE: usize = 100;
/// RTP payload type of PCMU.
const PCMU: u8 = 0;

/// Where a fork sends each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkTargets {
    /// What the party says (the call's incoming audio).
    pub rx: Option<SocketAddr>,
    /// What the party hears (the call's outgoing audio).
    pub tx: Option<SocketAddr>,
    /// Each packet behind this header (`rx` and `tx` are then the same target).
    pub header: Option<Encapsulation>,
}

/// The 24-byte header Telnyx puts between the UDP header and each forked RTP packet when a
/// fork has one `target`, so that one port can take both directions of many calls:
/// `11`, the version (1) in four bits, the leg bit, the direction bit; the header's length
/// (24); six reserved bytes; the leg's id as 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encapsulation {
    /// The leg's 128-bit id (Telnyx's `call_leg_id`).
    pub leg: u128,
    /// Whether the leg is its call's B leg (one Switchboard placed), not the A leg (one it
    /// received).
    pub b_leg: bool,
}

/// The encapsulation header's length.
pub const HEADER: usize = 24;

impl Encapsulation {
    /// The header of a packet of `track` (inbound: received from the party; outbound: sent
    /// to it).
    pub fn header(self, track: Track) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        let direction = u8::from(track == Track::Outbound);
        h[0] = 0b11 << 6 | 0b0001 << 2 | u8::from(self.b_leg) << 1 | direction;
        h[1] = HEADER as u8;
        h[8..].copy_from_slice(&self.leg.to_be_bytes());
        h
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForkError {
    #[error("'{0}' is not udp:<ip>:<port>")]
    Target(String),
    #[error("{0} may not be sent to: {1}")]
    Denied(SocketAddr, String),
    #[error("the call is already forked")]
    Running,
    #[error("the call is not forked")]
    NotRunning,
    #[error("too many forks are running")]
    Full,
    #[error("{0}")]
    Call(String),
}

impl ForkTargets {
    /// `udp:<ip>:<port>` (an IPv6 address in brackets), as Telnyx writes a target.
    pub fn parse(target: &str) -> Result<SocketAddr, ForkError> {
        target
            .strip_prefix("udp:")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .filter(|a| a.port() != 0)
            .ok_or_else(|| ForkError::Target(target.to_owned()))
    }

    /// The tracks the tap needs.
    fn tracks(self) -> Option<TapTracks> {
        match (self.rx, self.tx) {
            (Some(_), Some(_)) => Some(TapTracks::Both),
            (Some(_), None) => Some(TapTracks::Inbound),
            (None, Some(_)) => Some(TapTracks::Outbound),
            (None, None) => None,
        }
    }
}

/// One direction's RTP stream: turns 20 ms frames into PCMU packets.
#[derive(Debug)]
pub struct Packetizer {
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    started: bool,
}

impl Packetizer {
    pub fn new(ssrc: u32) -> Self {
        Self {
            seq: rand::random(),
            timestamp: rand::random(),
            ssrc,
            started: false,
        }
    }

    /// The packet carrying `samples`, written into `buf`.
    pub fn packet<'a>(
        &mut self,
        samples: &[i16; FRAME],
        buf: &'a mut [u8; 12 + FRAME],
    ) -> &'a [u8] {
        rtp::write_header(
            buf,
            PCMU,
            !self.started,
            self.seq,
            self.timestamp,
            self.ssrc,
        );
        Law::Ulaw.encode(samples, &mut buf[12..]);
        self.started = true;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        buf
    }
}

/// The forks of this node's calls.
pub struct Forks {
    control: CallControl,
    /// By call: the tap each fork reads.
    running: Mutex<HashMap<String, TapId>>,
}

impl Forks {
    pub fn new(control: CallControl) -> Self {
        Self {
            control,
            running: Mutex::default(),
        }
    }

    /// Starts forking `call`'s audio to `targets` (at least one).
    pub async fn start(
        &self,
        call: &str,
        targets: ForkTargets,
        reach: Reach,
    ) -> Result<(), ForkError> {
        let tracks = (targets.tracks()).ok_or_else(|| ForkError::Target(String::new()))?;
        for addr in [targets.rx, targets.tx].into_iter().flatten() {
            reach
                .check(addr.ip())
                .map_err(|e| ForkError::Denied(addr, e.to_string()))?;
        }
        let tap = TapId::next();
        {
            let mut running = self.running.lock().expect("not poisoned");
            if running.contains_key(call) {
                return Err(ForkError::Running);
            }
            if running.len() >= MAX_FORKS {
                return Err(ForkError::Full);
            }
            running.insert(call.to_owned(), tap);
        }
        let bind = match targets.rx.or(targets.tx) {
            Some(SocketAddr::V6(_)) => "[::]:0",
            _ => "0.0.0.0:0",
        };
        let socket = match tokio::net::UdpSocket::bind(bind).await {
            Ok(s) => s,
            Err(e) => {
                self.forget(call, tap);
                return Err(ForkError::Call(e.to_string()));
            }
        };
        let (tx, frames) = mpsc::channel(QUEUE);
        let started = (self.control)
            .command(
                call,
                CallCommand::TapStart {
                    tap,
                    tracks,
                    tx: tx.into(),
                },
            )
            .await;
        if let Err(e) = started {
            self.forget(call, tap);
            return Err(call_error(e));
        }
        tokio::spawn(send(socket, frames, targets));
        Ok(())
    }

    /// Stops `call`'s fork.
    pub async fn stop(&self, call: &str) -> Result<(), ForkError> {
        let tap = (self.running.lock().expect("not poisoned"))
            .remove(call)
            .ok_or(ForkError::NotRunning)?;
        // A call that has ended has dropped its taps already.
        match self.control.command(call, CallCommand::TapStop(tap)).await {
            Ok(()) | Err(CallError::NotFound(_)) => Ok(()),
            Err(e) => Err(call_error(e)),
        }
    }

    /// Whether `call` is forked.
    pub fn is_running(&self, call: &str) -> bool {
        self.running
            .lock()
            .expect("not poisoned")
            .contains_key(call)
    }

    /// Forgets the fork of a call that has ended (its tap went with it).
    pub fn ended(&self, call: &str) {
        self.running.lock().expect("not poisoned").remove(call);
    }

    fn forget(&self, call: &str, tap: TapId) {
        let mut running = self.running.lock().expect("not poisoned");
        if running.get(call) == Some(&tap) {
            running.remove(call);
        }
    }
}

fn call_error(e: CallError) -> ForkError {
    ForkError::Call(e.to_string())
}

/// The fork's task: until the tap closes, each frame goes to its direction's target.
async fn send(
    socket: tokio::net::UdpSocket,
    mut frames: mpsc::Receiver<TapFrame>,
    targets: ForkTargets,
) {
    let ssrc: u32 = rand::random();
    let mut rx = Packetizer::new(ssrc);
    let mut tx = Packetizer::new(ssrc.wrapping_add(1));
    // The packet is written after room for the header, which is filled in when there is one.
    let mut buf = [0u8; HEADER + 12 + FRAME];
    while let Some(frame) = frames.recv().await {
        let (to, stream) = match frame.track {
            Track::Inbound => (targets.rx, &mut rx),
            Track::Outbound => (targets.tx, &mut tx),
        };
        let Some(to) = to else { continue };
        let (head, body) = buf.split_at_mut(HEADER);
        let body: &mut [u8; 12 + FRAME] = body.try_into().expect("the packet's length");
        stream.packet(&frame.samples, body);
        let datagram = match targets.header {
            None => &buf[HEADER..],
            Some(header) => {
                head.copy_from_slice(&header.header(frame.track));
                &buf[..]
            }
        };
        // A lost datagram is lost, as on the wire; the fork goes on.
        let _ = socket.send_to(datagram, to).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_udp_ip_literals() {
        assert_eq!(
            ForkTargets::parse("udp:127.0.0.1:9000"),
            Ok("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            ForkTargets::parse("udp:[::1]:9000"),
            Ok("[::1]:9000".parse().unwrap())
        );
        for bad in [
            "127.0.0.1:9000",
            "udp:example.com:9000",
            "udp:127.0.0.1:0",
            "tcp:1.2.3.4:5",
        ] {
            assert!(ForkTargets::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_encapsulation_header_names_leg_and_direction() {
        let leg = 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef;
        let a = Encapsulation { leg, b_leg: false };
        let inbound = a.header(Track::Inbound);
        assert_eq!(inbound[0], 0b1100_0100, "11, version 1, A leg, received");
        assert_eq!(inbound[1], 24);
        assert_eq!(&inbound[2..8], &[0; 6]);
        assert_eq!(u128::from_be_bytes(inbound[8..].try_into().unwrap()), leg);
        assert_eq!(a.header(Track::Outbound)[0], 0b1100_0101, "sent");
        let b = Encapsulation { leg, b_leg: true };
        assert_eq!(b.header(Track::Outbound)[0], 0b1100_0111, "B leg, sent");
    }

    #[test]
    fn frames_become_one_rtp_stream() {
        let mut p = Packetizer::new(7);
        let mut buf = [0u8; 12 + FRAME];
        let frame = [1000i16; FRAME];
        let first = p.packet(&frame, &mut buf).to_vec();
        let second = p.packet(&frame, &mut buf).to_vec();
        assert_eq!(first.len(), 172);
        assert_eq!(first[1], 0x80, "the first has the marker, PCMU");
        assert_eq!(second[1], 0x00);
        let seq = |b: &[u8]| u16::from_be_bytes([b[2], b[3]]);
        let ts = |b: &[u8]| u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        assert_eq!(seq(&second), seq(&first).wrapping_add(1));
        assert_eq!(ts(&second), ts(&first).wrapping_add(160));
        assert_eq!(&second[8..12], &7u32.to_be_bytes());
        let mut back = [0i16; FRAME];
        Law::Ulaw.decode(&second[12..], &mut back);
        assert!((back[0] - 1000).abs() < 40);
    }
}
