//! The engine's vocabulary: its configuration, endpoints and their configuration, the
//! operations on an endpoint's media and the events the engine reports.

use crate::dtmf::{Digit, DtmfReport};
use crate::endpoint_media::{Frame, TapId, TapSink, TapTracks};
use crate::latch::SourcePolicy;
use crate::prompt::PlaybackEnd;
use crate::record::{RecordSpec, RecordingSaved};
use crate::relay::PayloadMap;
use crate::srtp::MasterKey;
use crate::stats::EndpointStats;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

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
    /// Hand plain relays to the kernel ([`crate::kernel`]) where it can take them.
    pub kernel_relay: bool,
    /// RTP/RTCP pairs a thread keeps bound ahead of need ([`super::BIND_AHEAD`] by default),
    /// so the caller of [`super::MediaEngine::reserve`] does not make the system calls; none
    /// when zero, each pair then bound when reserved.
    pub bind_ahead: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub(super) u64);

impl EndpointId {
    /// An id no engine gave out, for tests of code that only carries ids.
    #[doc(hidden)]
    pub const fn unallocated(n: u64) -> Self {
        Self(n)
    }

    /// The worker it was allocated on; [`Inner::homes`] knows where moved ones went.
    pub(super) fn first_worker(self) -> usize {
        (self.0 & 0xff) as usize
    }

    /// Whether the two were reserved on the same worker: activated beside each other, neither
    /// has to move (nor, for a browser's leg, to be reached through another worker).
    pub fn placed_with(self, other: EndpointId) -> bool {
        self.first_worker() == other.first_worker()
    }
}

/// An allocated RTP/RTCP port pair.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub id: EndpointId,
    /// The advertised RTP address (RTCP is the next port).
    pub rtp: SocketAddr,
    /// Where a browser reaches it instead: its worker's socket for every browser leg
    /// ([`crate::webrtc::mux`]).
    pub browser: SocketAddr,
}

/// What the peer of an endpoint negotiated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Where the peer wants RTP, from its SDP; media is accepted from it, or from the source
    /// `source` lets latch in its stead (symmetric RTP for peers behind NAT).
    pub remote_rtp: Option<SocketAddr>,
    pub remote_rtcp: Option<SocketAddr>,
    pub payload: PayloadMap,
    /// The peer is expected to send (answered, not on hold): silence ends the call.
    pub expect_rtp: bool,
    /// The peer holds the call: its description says it receives nothing (`sendonly`,
    /// `inactive`), so nothing is sent to it (RFC 3264 §5.1), relayed or generated.
    pub held: bool,
    /// The peer's audio is Opus, at the audio payload type of `payload` (whose law is then
    /// μ-law: the form its audio takes inside the engine).
    pub opus: bool,
    /// Which sources other than the SDP address may latch.
    pub source: SourcePolicy,
    /// The IP the peer's signalling comes from: media from it displaces a source learnt from
    /// elsewhere (see [`Latch`](crate::latch::Latch)).
    pub signal_ip: Option<IpAddr>,
    /// The peer speaks SRTP: what it sends is checked and decrypted on arrival, what goes to it
    /// is encrypted last, after every rewrite.
    pub srtp: Option<SrtpKeys>,
    /// The peer is a browser (a WebRTC leg): ICE-lite checks, DTLS-SRTP and RTCP on the RTP
    /// socket. Its SRTP keys come from the DTLS handshake, not from `srtp`; its address from
    /// the browser's nomination, not from `remote_rtp`.
    pub webrtc: Option<crate::webrtc::WebRtcConfig>,
}

/// The SDES keys of an SRTP peer (RFC 4568): the one in its description, which it encrypts
/// with, and the one in ours, which we encrypt with. A change of either (a re-INVITE that
/// rekeys) starts that direction afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpKeys {
    pub inbound: MasterKey,
    pub outbound: MasterKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// No RTP from an endpoint whose peer should be sending, for the configured timeout.
    Timeout { id: EndpointId },
    /// A WebRTC leg cannot carry media any more: its DTLS handshake failed or never ended
    /// (`dtls-failed`, `dtls-timeout`), or the browser stopped consenting (`consent-expired`).
    TransportLost {
        id: EndpointId,
        reason: &'static str,
    },
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
    /// A reported conference announcement played out, or was `stopped` (by a command, its
    /// listener's leaving, the conference's end) or refused (over the cap).
    AnnouncementEnded {
        conference: crate::conference::ConferenceId,
        announcement: u64,
        stopped: bool,
    },
}

impl MediaEvent {
    /// The endpoint the event is about; a recording names none (it may outlive its endpoint),
    /// nor does a conference's announcement.
    pub fn endpoint(&self) -> Option<EndpointId> {
        match self {
            Self::Timeout { id }
            | Self::TransportLost { id, .. }
            | Self::Released { id, .. }
            | Self::Dtmf { id, .. }
            | Self::PlaybackEnded { id, .. }
            | Self::Mark { id, .. }
            | Self::TapStopped { id, .. }
            | Self::InjectDiscarded { id, .. }
            | Self::RecordingStopped { id, .. } => Some(*id),
            Self::RecordingSaved(_) | Self::AnnouncementEnded { .. } => None,
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
    RecordPause(crate::record::PauseBehavior),
    RecordResume,
    RecordStop,
    /// Delivers decoded frames of the chosen tracks to a tap (an endpoint feeds several);
    /// frames the consumer does not take in time are dropped and reported.
    TapStart {
        tap: TapId,
        tx: TapSink,
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

/// What a controller asks of the engine, as a value: the call core queues these as outputs
/// and its driver hands them to [`super::MediaEngine::execute`] in order, so the core never
/// touches the engine itself.
#[derive(Debug)]
pub enum MediaCommand {
    /// A reserved pair goes to work, beside `near` when given.
    Activate {
        id: EndpointId,
        near: Option<EndpointId>,
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
    Media {
        id: EndpointId,
        op: MediaOp,
    },
    Join {
        conference: crate::conference::ConferenceId,
        id: EndpointId,
    },
    Leave {
        id: EndpointId,
    },
    /// A conference member `id` is heard by the member `coached` alone (Twilio's coaching),
    /// or by everyone again (`None`).
    Coach {
        id: EndpointId,
        coached: Option<EndpointId>,
    },
    RecordConference {
        conference: crate::conference::ConferenceId,
        spec: Option<RecordSpec>,
    },
    Announce {
        conference: crate::conference::ConferenceId,
        announcement: crate::conference::Announcement,
    },
    /// Pauses (or, with `None`, resumes) the recording of a conference's mix.
    PauseConferenceRecording {
        conference: crate::conference::ConferenceId,
        paused: Option<crate::record::PauseBehavior>,
    },
    /// Stops a conference's announcements: all, or those member `to` hears alone.
    StopAnnouncements {
        conference: crate::conference::ConferenceId,
        to: Option<EndpointId>,
    },
    Release {
        id: EndpointId,
    },
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
