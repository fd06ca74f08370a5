//! What applications see of the call core: commands on calls, the events calls emit, and the
//! [`CallControl`] handle that carries them to and from the core's thread. The provider
//! dialects translate their REST, markup and webhooks onto exactly this.

use super::status::{CallStatus, HangupBy};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_media::dtmf::DtmfMethod;
use switchboard_media::record::{Channels, RecordFormat};
use switchboard_media::{
    Clip, EndpointId, Frame, MediaEngine, MediaOp, PlaybackEnd, TapFrame, TapId, TapTracks,
};
use switchboard_sip::message::Uri;
use tokio::sync::{mpsc, oneshot};

/// Where an originated call goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A number, routed by the `[[routes]]` to a trunk or a registered user.
    Number(String),
    /// A registered user, at its current registration.
    User(String),
    /// A SIP URI, sent to `next_hop` (resolved from its host).
    Uri { uri: Uri, next_hop: SocketAddr },
}

impl Target {
    /// Where a destination an application gave goes: `sip:` URIs to their host (resolved
    /// now), `client:` names to registered users, digits (with `+`, `*`, `#`) through the
    /// routes. `None` when it is none of these.
    pub async fn parse(to: &str) -> Option<Self> {
        if to.starts_with("sip:") {
            let uri = Uri::try_from(to).ok()?;
            let host = uri.host_with_port.host.to_string();
            let port = uri.host_with_port.port.map(|p| *p.value()).unwrap_or(5060);
            let next_hop = tokio::net::lookup_host((host.as_str(), port))
                .await
                .ok()
                .and_then(|mut a| a.next())?;
            return Some(Self::Uri { uri, next_hop });
        }
        if let Some(user) = to.strip_prefix("client:") {
            return Some(Self::User(user.to_owned()));
        }
        let digits = to.strip_prefix('+').unwrap_or(to);
        (!digits.is_empty()
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#'))
        .then(|| Self::Number(to.to_owned()))
    }
}

#[derive(Debug)]
pub struct Originate {
    pub to: Target,
    /// Caller ID: the user part of From.
    pub from: String,
    /// The display name of From (Telnyx's `from_display_name`, TeXML's `CallerId`).
    pub display_name: Option<String>,
    /// Headers added to the INVITE (Telnyx's `custom_headers`); the SIP UA's own are left out.
    pub headers: Vec<(String, String)>,
    /// Unanswered after this long: cancelled, status `no-answer`.
    pub ring_timeout: Duration,
    /// The call this one is dialed from (direction `outbound-dial`); its media endpoint is
    /// placed so the two can be bridged.
    pub parent: Option<String>,
    /// The controller: receives the call's events.
    pub events: mpsc::Sender<CallEvent>,
    /// The provider account the call belongs to; a dialed call inherits its parent's.
    pub account: Option<String>,
    /// Placed by Switchboard itself on the account's behalf (a caller-ID verification rings
    /// the number from itself): the account's call limits apply, its caller-ID rule does not.
    pub system: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 486 Busy Here; status `busy`.
    Busy,
    /// 603 Decline; status `no-answer` (declined before an answer).
    Rejected,
    /// 404 Not Found; status `failed`.
    NotFound,
    /// 480 Temporarily Unavailable; status `no-answer`.
    Unavailable,
}

/// Collect digits: ends on the finish key, after `num_digits`, or when `timeout` passes
/// without a digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherSpec {
    /// The wait for each digit after the first.
    pub timeout: Duration,
    /// The wait for the first digit, when it differs (Telnyx's `initial_timeout_millis`).
    pub first_timeout: Option<Duration>,
    /// The most the whole gather may take from its start (Telnyx's `timeout_millis`).
    pub total_timeout: Option<Duration>,
    pub finish_on_key: Option<char>,
    pub num_digits: Option<usize>,
    /// The wait for the first digit starts when the call's current playback ends (the
    /// prompts of Twilio's `<Gather>`); digits during it count.
    pub after_playback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOptions {
    pub channels: Channels,
    pub format: RecordFormat,
    /// Inbound: what the party says; outbound: what it hears; both.
    pub tracks: TapTracks,
    pub trim_silence: bool,
    /// The recording's SID, when the caller names it (a REST create answers with it).
    pub sid: Option<String>,
    pub origin: RecordingOrigin,
    /// When it stops by itself (silence, its length): the core reports `RecordingStopped`.
    pub stop: switchboard_media::record::StopWhen,
}

/// What started a recording; stored with it, for the dialects to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingOrigin {
    /// An API request on a live call.
    Api,
    /// A verb that records what the caller says (voicemail).
    RecordVerb,
    /// A dial that records the bridged call.
    Dial,
    /// The call was created asking to be recorded.
    CallCreate,
    /// A conference recording its mix.
    Conference,
    /// A static route that records its calls.
    Route,
}

impl RecordingOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::RecordVerb => "record-verb",
            Self::Dial => "dial",
            Self::CallCreate => "call-create",
            Self::Conference => "conference",
            Self::Route => "route",
        }
    }

    /// The origin a stored name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Api,
            Self::RecordVerb,
            Self::Dial,
            Self::CallCreate,
            Self::Conference,
            Self::Route,
        ]
        .into_iter()
        .find(|o| o.as_str() == name)
    }
}

/// When the conference beeps for a participant coming or going (Twilio's `beep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Beep {
    #[default]
    Both,
    OnEnter,
    OnExit,
    Off,
}

impl Beep {
    pub fn on_enter(self) -> bool {
        matches!(self, Beep::Both | Beep::OnEnter)
    }

    pub fn on_exit(self) -> bool {
        matches!(self, Beep::Both | Beep::OnExit)
    }
}

/// A call in a conference, as its conference's events store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Participant {
    pub call: String,
    pub muted: bool,
    pub held: bool,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    pub label: Option<String>,
}

/// How a call joins a conference (the attributes of Twilio's `<Conference>`).
#[derive(Debug, Clone)]
pub struct JoinSpec {
    /// The room: calls joining the same name meet.
    pub name: String,
    pub muted: bool,
    /// The conference starts once two are in and one of them has this.
    pub start_on_enter: bool,
    /// The conference ends when this participant leaves.
    pub end_on_exit: bool,
    /// Looped while the conference has not started; `None` is silence.
    pub wait_music: Option<Clip>,
    /// Records the conference's mix, mono, from its start.
    pub record: Option<RecordFormat>,
    /// Cuts leading and trailing silence from that recording.
    pub trim_silence: bool,
    pub beep: Beep,
    /// The application's name for the participant (Twilio's `participantLabel`).
    pub label: Option<String>,
}

#[derive(Debug)]
pub enum CallCommand {
    /// Answers an incoming call (our SDP answers its offer).
    Answer,
    /// [`CallCommand::Answer`] with an application's headers on the 200 (those the SIP UA lets
    /// an application add).
    AnswerWith(Vec<(String, String)>),
    Reject(Rejection),
    Hangup,
    /// [`CallCommand::Hangup`] with an application's headers on the BYE (or final response).
    HangupWith(Vec<(String, String)>),
    /// Hands the call to another controller: its events go there from now on.
    Redirect(mpsc::Sender<CallEvent>),
    /// Connects the call's audio with another call's, both ways.
    Bridge(String),
    Unbridge,
    /// Plays a clip `loops` times (0 = until stopped); a digit stops it when `barge_in`.
    Play {
        /// What is played: a clip, or a prompt of clips and silences.
        clip: switchboard_media::Prompt,
        loops: u32,
        barge_in: bool,
    },
    StopPlayback,
    /// Sends DTMF: RFC 4733 when the peer negotiated telephone-event, tones otherwise. `w`
    /// waits half a second.
    SendDigits(String),
    /// Hangs the call up this long from now (status `completed`, cause `time-limit`): Twilio's
    /// `<Dial timeLimit>`, Telnyx's `time_limit_secs`. A later limit replaces an earlier one.
    LimitDuration(Duration),
    /// Rejects the unanswered incoming call (480, cause `no-command`) unless the application
    /// sends another command within this long; `None` stands the wait down. Telnyx's
    /// `first_command_timeout`.
    ExpectCommand(Option<Duration>),
    Gather(GatherSpec),
    /// Ends the gather under way (its `GatherEnded` says `cancelled`); nothing if none is.
    GatherStop,
    RecordStart(RecordOptions),
    RecordPause,
    RecordResume,
    RecordStop,
    /// Delivers the call's decoded audio to `tx` (a call feeds several taps, each named by
    /// its caller-chosen id); frames the consumer does not take in time are dropped.
    TapStart {
        tap: TapId,
        tracks: TapTracks,
        tx: mpsc::Sender<TapFrame>,
    },
    TapStop(TapId),
    /// Frames to play to the call, then a mark reported once they have been played. At most
    /// `limit` frames wait to be played; the rest are discarded (`InjectDiscarded`).
    Inject {
        frames: Vec<Frame>,
        mark: Option<String>,
        limit: usize,
    },
    ClearInjected,
    /// Noise suppression (RNNoise) of what the party says (`inbound`) and of the audio it
    /// hears from the call it is bridged to (`outbound`), each on or off.
    Suppress {
        inbound: bool,
        outbound: bool,
    },
    /// Nobody hears the party while muted; its digits are still detected.
    Mute(bool),
    /// Silence is sent to the party whenever nothing else is (Telnyx's
    /// `send_silence_when_idle`), so its RTP never stops.
    SilenceWhenIdle(bool),
    /// Takes the call out of any bridge or other conference and into this one.
    ConferenceJoin(JoinSpec),
    ConferenceLeave,
    /// On hold in its conference: neither hears nor is heard; hears `music` (looped), or
    /// silence.
    Hold(Option<Clip>),
    Unhold,
    /// Plays a clip to everyone in the call's conference, over the conversation.
    ConferenceAnnounce(Clip),
    /// Files the call under a provider account (an inbound call, once its number is known).
    SetAccount(String),
    /// Adds an event another part of the switch saw to the call's events (stored, delivered
    /// and numbered with the core's own); only [`EventKind::reportable`] ones.
    Report(EventKind),
}

/// An event of one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallEvent {
    pub call: String,
    /// Position among the call's events, from 0.
    pub seq: u32,
    /// Unix milliseconds.
    pub at: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The SIP facts of an offered call: its From and To URIs (`user@host:port`, without the
/// scheme) and the audio codecs its offer named, in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Offered {
    pub from_uri: String,
    pub to_uri: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<String>,
}

/// A codec two parties agreed on: its name as SDP writes it (upper case) and clock rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AgreedCodec {
    pub name: String,
    pub rate: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// A call arrived for this controller; answer or reject it.
    Incoming {
        from: String,
        to: String,
        trunk: Option<String>,
        user: Option<String>,
        /// The INVITE's headers an application is shown (its `X-` headers, `User-to-User`,
        /// `Diversion`; bounded).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        headers: Vec<(String, String)>,
        /// What the INVITE said of the parties and the media, as SIP wrote it.
        #[serde(default)]
        offered: Offered,
    },
    Initiated,
    Ringing,
    EarlyMedia,
    Answered {
        /// The codec agreed with the party, when the answer agreed one (a delayed offer is
        /// agreed later, in the ACK).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codec: Option<AgreedCodec>,
    },
    Dtmf {
        digit: char,
        duration_ms: u32,
        #[serde(serialize_with = "method_name")]
        method: DtmfMethod,
    },
    PlaybackStarted {
        playback: u64,
    },
    PlaybackEnded {
        playback: u64,
        #[serde(serialize_with = "end_name")]
        reason: PlaybackEnd,
    },
    GatherEnded {
        digits: String,
        /// `finish-key`, `num-digits`, `timeout` or `hangup`.
        reason: &'static str,
    },
    RecordingStarted {
        recording: String,
    },
    /// The recording stopped by itself: `silence` or `max-length` (its `RecordingSaved`
    /// follows).
    RecordingStopped {
        recording: String,
        reason: &'static str,
    },
    RecordingSaved {
        recording: String,
        path: String,
        duration_ms: u64,
        channels: u8,
        size_bytes: u64,
        error: Option<String>,
    },
    TapStarted {
        tap: u64,
    },
    TapStopped {
        tap: u64,
        dropped_frames: u64,
    },
    /// Every frame injected before the mark has been played (or was cleared).
    Mark {
        name: String,
        cleared: bool,
    },
    /// Injected audio beyond the limit was discarded.
    InjectDiscarded {
        frames: u64,
    },
    Bridged {
        with: String,
    },
    Unbridged {
        /// The other call ended (rather than one of the two being moved or unbridged).
        #[serde(default)]
        peer_ended: bool,
    },
    ConferenceJoined {
        conference: String,
        name: String,
        /// The join's place among the conference's own events (stored under its SID).
        number: u32,
    },
    /// `left` (asked to), `hangup`, `ended` (the conference ended), `moved` (bridged or
    /// joined elsewhere).
    ConferenceLeft {
        conference: String,
        reason: &'static str,
    },
    ConferenceStarted {
        conference: String,
        /// The call whose arrival started it.
        by: String,
    },
    /// Reasons as Twilio's `reason_conference_ended`.
    ConferenceEnded {
        conference: String,
        reason: &'static str,
        ended_by: Option<String>,
    },
    /// A media stream of the call connected to its application (reported by the streams).
    StreamStarted {
        stream: String,
    },
    /// A media stream failed: `failure` names a [`crate::services::stream::Failure`]; `started` says
    /// whether it had connected (its `StreamStopped` then follows).
    StreamFailed {
        stream: String,
        failure: String,
        detail: String,
        started: bool,
    },
    StreamStopped {
        stream: String,
    },
    Hangup {
        status: CallStatus,
        sip_code: Option<u16>,
        by: HangupBy,
        cause: Option<String>,
        /// The media's final counters, once the engine gave them back (a call that ended with
        /// its node, or whose media never reported, has none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quality: Option<Quality>,
    },
}

/// How a call's media went: what arrived from the party and what went to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Quality {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets the party sent that never arrived (from RTP sequence numbers).
    pub lost_in: u64,
}

impl Quality {
    pub fn of(stats: &switchboard_media::EndpointStats) -> Self {
        Self {
            packets_in: stats.packets_in,
            packets_out: stats.packets_out,
            lost_in: stats.lost,
        }
    }

    /// The estimated mean opinion score of what arrived (from loss alone; see
    /// `EndpointStats::estimated_mos`).
    pub fn mos(&self) -> f64 {
        switchboard_media::EndpointStats {
            packets_in: self.packets_in,
            lost: self.lost_in,
            ..Default::default()
        }
        .estimated_mos()
    }
}

impl EventKind {
    /// Whether another part of the switch may report it on a call ([`CallCommand::Report`]):
    /// what happened to the call outside the core, kept in its history with the rest.
    pub fn reportable(&self) -> bool {
        matches!(
            self,
            Self::StreamStarted { .. } | Self::StreamFailed { .. } | Self::StreamStopped { .. }
        )
    }

    /// Whether the event is kept in the call's stored history. Marks are playback feedback
    /// for whoever injects audio (a voice bot marks every chunk, many a second): they are
    /// delivered, not stored.
    pub fn stored(&self) -> bool {
        !matches!(self, Self::Mark { .. })
    }

    /// Events that arrive at the remote party's pace (digits) or the application's (marks,
    /// discarded injections) and may be shed, counted, when a call floods them.
    pub fn sheddable(&self) -> bool {
        matches!(
            self,
            Self::Dtmf { .. } | Self::Mark { .. } | Self::InjectDiscarded { .. }
        )
    }

    /// The event's name as stored.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Incoming { .. } => "incoming",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::EarlyMedia => "early-media",
            Self::Answered { .. } => "answered",
            Self::Dtmf { .. } => "dtmf",
            Self::PlaybackStarted { .. } => "playback-started",
            Self::PlaybackEnded { .. } => "playback-ended",
            Self::GatherEnded { .. } => "gather-ended",
            Self::RecordingStarted { .. } => "recording-started",
            Self::RecordingStopped { .. } => "recording-stopped",
            Self::RecordingSaved { .. } => "recording-saved",
            Self::TapStarted { .. } => "tap-started",
            Self::TapStopped { .. } => "tap-stopped",
            Self::Mark { .. } => "mark",
            Self::InjectDiscarded { .. } => "inject-discarded",
            Self::Bridged { .. } => "bridged",
            Self::Unbridged { .. } => "unbridged",
            Self::ConferenceJoined { .. } => "conference-joined",
            Self::ConferenceLeft { .. } => "conference-left",
            Self::ConferenceStarted { .. } => "conference-started",
            Self::ConferenceEnded { .. } => "conference-ended",
            Self::StreamStarted { .. } => "stream-started",
            Self::StreamFailed { .. } => "stream-failed",
            Self::StreamStopped { .. } => "stream-stopped",
            Self::Hangup { .. } => "hangup",
        }
    }
}

fn method_name<S: serde::Serializer>(m: &DtmfMethod, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match m {
        DtmfMethod::Rfc4733 => "rfc4733",
        DtmfMethod::InBand => "inband",
        DtmfMethod::SipInfo => "sip-info",
    })
}

fn end_name<S: serde::Serializer>(e: &PlaybackEnd, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match e {
        PlaybackEnd::Finished => "finished",
        PlaybackEnd::Stopped => "stopped",
        PlaybackEnd::BargeIn => "barge-in",
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no call {0}")]
    NotFound(String),
    /// Not possible in the call's status (`completed`, `ringing`, …).
    #[error("not possible while the call is {status}")]
    InvalidState { status: super::CallStatus },
    /// Only an answered call may do it (join a conference).
    #[error("not possible before the call is answered")]
    NotAnswered,
    /// Only a call in a conference may do it (hold, announce).
    #[error("the call is not in a conference")]
    NotInConference,
    #[error("{0}")]
    BadArgument(String),
    #[error("no route to the destination (SIP {0})")]
    NoRoute(u16),
    #[error("no free media ports")]
    NoMedia,
    /// Call records wait in memory for the database past [`crate::infra::store::writer::HIGH_WATER`].
    #[error("call records cannot be stored fast enough; new calls are refused for now")]
    Overloaded,
    /// A `sip:` URI whose host is neither a trunk's nor on the operator's allowlist.
    #[error("{0} may not be dialed directly")]
    NotAllowed(String),
    #[error("the call core has stopped")]
    Stopped,
    /// The account has as many calls as it may, or places them faster than it may.
    #[error("{0}")]
    AccountLimit(crate::call::account_limits::Exceeded),
    /// A caller ID the account may not present (see [`crate::call::caller_id`]).
    #[error("the account may not present {0} as its caller ID")]
    CallerIdNotAllowed(String),
    /// The node is draining before it stops: calls up go on, new ones go to another node.
    #[error("this node is shutting down; new calls are refused")]
    ShuttingDown,
}

/// A conference as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceSnapshot {
    /// `CF` and 32 hex digits.
    pub sid: String,
    /// The room name it was joined by.
    pub name: String,
    pub started: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    pub participants: Vec<ParticipantSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSnapshot {
    pub call: String,
    pub muted: bool,
    pub held: bool,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    pub joined_at: i64,
}

/// A request to the core's thread.
pub(crate) enum Request {
    Originate(Box<Originate>, oneshot::Sender<Result<String, CallError>>),
    Command {
        call: String,
        command: CallCommand,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Subscribe {
        call: String,
        events: mpsc::Sender<CallEvent>,
    },
    Conferences(oneshot::Sender<Vec<ConferenceSnapshot>>),
    /// Ends a conference (by SID): everyone in it leaves.
    EndConference(String, oneshot::Sender<bool>),
    /// A direct line into a call's injection queue.
    MediaLink(String, oneshot::Sender<Result<MediaLink, CallError>>),
    /// The call bridged with a call, and a line into its injection queue.
    PeerLink(
        String,
        oneshot::Sender<Result<Option<(String, MediaLink)>, CallError>>,
    ),
    /// Incoming calls to the numbers `dialed` matches go to this controller instead of the
    /// static routes.
    Control {
        dialed: Dialed,
        events: mpsc::Sender<CallEvent>,
    },
    /// Incoming calls to what `dialed` matches go back to the routes.
    Release(Dialed),
    /// New calls are refused from now on (SIP 503 with `retry_after`, originations
    /// [`CallError::ShuttingDown`]); `done` is told once no call is left.
    Drain {
        retry_after: u32,
        done: oneshot::Sender<()>,
    },
    /// The trunks, routes and users of a reloaded configuration; calls up keep what they have.
    Reconfigure(Box<crate::call::routing::Routing>),
    #[cfg(debug_assertions)]
    Fault(Fault),
}

/// A failure the liveness tests make the core suffer (debug builds only).
#[cfg(debug_assertions)]
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Panic,
    Stall(std::time::Duration),
}

#[cfg(debug_assertions)]
impl Fault {
    pub(crate) fn strike(self) {
        match self {
            Self::Panic => panic!("fault injected into the call core"),
            // Blocking the core's thread is the point: it stands for a round that never ends.
            Self::Stall(d) => std::thread::sleep(d),
        }
    }
}

/// Which dialed numbers a controller takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dialed {
    /// This number exactly; it wins over every prefix.
    Number(String),
    /// Numbers starting with this ("" for all); the longest prefix wins.
    Prefix(String),
}

impl Dialed {
    /// How well `number` matches: `None` not at all; higher is more specific.
    pub(crate) fn rank(&self, number: &str) -> Option<usize> {
        match self {
            Dialed::Number(n) => (n == number).then_some(usize::MAX),
            Dialed::Prefix(p) => number.starts_with(p.as_str()).then_some(p.len()),
        }
    }
}

/// A direct line into a call's injection queue: `Inject` and `ClearInjected` reach the media
/// engine's worker without passing through the core's thread. For feeds too frequent for
/// that thread, which also runs SIP: a bidirectional media stream sends 50 messages a second
/// per call. What they report (marks, discarded audio) still comes as the call's events.
/// Once the call's media is released, what is sent is dropped (endpoint ids are never
/// reused).
#[derive(Clone)]
pub struct MediaLink {
    pub(crate) engine: MediaEngine,
    pub(crate) endpoint: EndpointId,
}

impl MediaLink {
    /// As [`CallCommand::Inject`].
    pub fn inject(&self, frames: Vec<Frame>, mark: Option<String>, limit: usize) {
        self.engine.media(
            self.endpoint,
            MediaOp::Inject {
                frames,
                mark,
                limit,
            },
        );
        self.engine.flush();
    }

    /// As [`CallCommand::ClearInjected`].
    pub fn clear(&self) {
        self.engine.media(self.endpoint, MediaOp::ClearInjected);
        self.engine.flush();
    }
}

/// The applications' handle on the call core; cheap to clone.
#[derive(Clone)]
pub struct CallControl {
    tx: mpsc::UnboundedSender<Request>,
}

impl CallControl {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Request>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Makes the core panic or stall (debug builds only: the liveness tests' lever).
    #[cfg(debug_assertions)]
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Fault) {
        let _ = self.tx.send(Request::Fault(fault));
    }

    /// Places a call; it is `queued` when this returns its SID, and its events follow.
    /// Refuses new calls from now on and resolves once every call has ended (calls up are
    /// left alone: the caller decides how long to wait before stopping the core).
    pub async fn drain(&self, retry_after: u32) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Request::Drain { retry_after, done }).is_ok() {
            let _ = rx.await;
        }
    }

    /// Replaces the trunks, routes and registered users (a configuration reload).
    pub fn reconfigure(&self, routing: crate::call::routing::Routing) {
        let _ = self.tx.send(Request::Reconfigure(Box::new(routing)));
    }

    pub async fn originate(&self, o: Originate) -> Result<String, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Originate(Box::new(o), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    pub async fn command(&self, call: &str, command: CallCommand) -> Result<(), CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Command {
                call: call.to_owned(),
                command,
                reply,
            })
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// Adds an observer of a call's events (besides its controller).
    pub fn subscribe(&self, call: &str, events: mpsc::Sender<CallEvent>) {
        let _ = self.tx.send(Request::Subscribe {
            call: call.to_owned(),
            events,
        });
    }

    /// The conferences in progress.
    pub async fn conferences(&self) -> Result<Vec<ConferenceSnapshot>, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Conferences(reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)
    }

    /// Ends a conference: every participant leaves it (their calls go on). False when there
    /// is no such conference.
    pub async fn end_conference(&self, sid: &str) -> Result<bool, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::EndConference(sid.to_owned(), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)
    }

    /// A direct line into the call's injection queue (see [`MediaLink`]).
    pub async fn media_link(&self, call: &str) -> Result<MediaLink, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::MediaLink(call.to_owned(), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// The call bridged with `call` now, if any, with a line into its injection queue (audio
    /// for the other side of a bridge, as Telnyx's `stream_bidirectional_target_legs`).
    pub async fn peer_link(&self, call: &str) -> Result<Option<(String, MediaLink)>, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::PeerLink(call.to_owned(), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// Takes the incoming calls to numbers starting with `prefix` ("" for every number).
    pub fn control(&self, prefix: &str, events: mpsc::Sender<CallEvent>) {
        let _ = self.tx.send(Request::Control {
            dialed: Dialed::Prefix(prefix.to_owned()),
            events,
        });
    }

    /// Takes the incoming calls to exactly this number (a provider's phone number).
    pub fn control_number(&self, number: &str, events: mpsc::Sender<CallEvent>) {
        let _ = self.tx.send(Request::Control {
            dialed: Dialed::Number(number.to_owned()),
            events,
        });
    }

    /// Gives the incoming calls to this number back to the static routes.
    pub fn release_number(&self, number: &str) {
        let _ = self
            .tx
            .send(Request::Release(Dialed::Number(number.to_owned())));
    }
}

#[cfg(test)]
mod tests {
    use super::Dialed;

    #[test]
    fn an_exact_number_beats_every_prefix_and_longer_prefixes_beat_shorter() {
        let number = Dialed::Number("+17775550100".into());
        let short = Dialed::Prefix("+1".into());
        let long = Dialed::Prefix("+1777".into());
        let all = Dialed::Prefix(String::new());
        let best = |n: &str| {
            [&number, &short, &long, &all]
                .into_iter()
                .filter_map(|d| Some((d.rank(n)?, d)))
                .max_by_key(|(rank, _)| *rank)
                .map(|(_, d)| d.clone())
        };
        assert_eq!(best("+17775550100"), Some(number.clone()));
        // A longer number is not the configured one: the prefixes decide.
        assert_eq!(best("+177755501001"), Some(long.clone()));
        assert_eq!(best("+15551234"), Some(short.clone()));
        assert_eq!(best("44"), Some(all.clone()));
    }
}
