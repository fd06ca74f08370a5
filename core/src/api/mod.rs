//! What applications see of the call core: commands on calls, the events calls emit, and the
//! `CallControl` handle (the driver's, in `switchboard-control`) that carries them to and from the core's thread. The provider
//! dialects translate their REST, markup and webhooks onto exactly this.
//! Here: the commands; [`CallEvent`]s and the handle have modules of their own.

mod events;
mod handle;

pub use events::*;
pub use handle::*;

use crate::status::CallStatus;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_media::record::{Channels, RecordFormat};
use switchboard_media::{Clip, Frame, TapId, TapSink, TapTracks};
use switchboard_sip::message::Uri;

/// Where an originated call goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A number, routed by the `[[routes]]` to a trunk or a registered user.
    Number(String),
    /// A registered user, at every device it registered (the first to answer takes the
    /// call).
    User(String),
    /// A SIP URI, sent to `next_hop` (resolved from its host).
    Uri { uri: Uri, next_hop: SocketAddr },
    /// Another node of this provider (a visit to a room it holds): a SIP URI that needs no
    /// place on the operator's allowlist.
    Node { uri: Uri, next_hop: SocketAddr },
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
    /// The provider account the call belongs to; a dialed call inherits its parent's.
    pub account: Option<String>,
    /// Placed by Switchboard itself on the account's behalf (a caller-ID verification rings
    /// the number from itself): the account's call limits apply, its caller-ID rule does not.
    pub system: bool,
    /// The channel groups the call takes a channel of, each with its most calls at once (a
    /// connection's outbound channel limit, a profile's concurrent calls): refused when one
    /// is full.
    pub channels: Vec<ChannelLimit>,
    /// Digest credentials answered when a SIP URI's far end challenges the INVITE (TwiML's
    /// `<Sip username password>`, Twilio's `SipAuthUsername`/`SipAuthPassword`, Telnyx's
    /// `sip_auth_username`/`sip_auth_password`); a number's trunk has its own.
    pub credentials: Option<(String, String)>,
}

/// A group of calls that may hold at most `max` channels at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelLimit {
    /// Named by whoever sets it (`connection:{id}`, `outbound-profile:{id}`).
    pub group: String,
    pub max: u32,
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
    /// The markup's `<Start><Recording>`.
    StartVerb,
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
            Self::StartVerb => "start-verb",
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
            Self::StartVerb,
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
    /// Twilio's `beep` attribute: `true` (and anything unknown), `false`, `onEnter`, `onExit`.
    pub fn of_twiml(value: &str) -> Self {
        match value {
            "false" => Beep::Off,
            "onEnter" => Beep::OnEnter,
            "onExit" => Beep::OnExit,
            _ => Beep::Both,
        }
    }

    /// The `beep` attribute that [`Beep::of_twiml`] reads back as this.
    pub fn as_twiml(self) -> &'static str {
        match self {
            Beep::Both => "true",
            Beep::OnEnter => "onEnter",
            Beep::OnExit => "onExit",
            Beep::Off => "false",
        }
    }

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
    /// The participant it coaches (heard by that one alone), if it is a coach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coaching: Option<String>,
}

/// What to do with a running recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordChange {
    /// Paused: the pause skipped in the file, or kept as silence.
    Pause(switchboard_media::record::PauseBehavior),
    Resume,
    Stop,
}

/// Audio played into a conference over the conversation (Telnyx's conference `play` and
/// `speak`, Twilio's `AnnounceUrl`).
#[derive(Debug, Clone)]
pub struct RoomAnnouncement {
    pub clip: Clip,
    /// Times to play it; 0 until it is stopped.
    pub loops: u32,
    /// Heard by the call that asked alone, not by the room (nor in its recording).
    pub alone: bool,
    /// The dialect's name for it, given back in its events.
    pub tag: String,
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
    /// The conference's SID should the join open it: the one the room's home claim gave it,
    /// so that every node names it alike (`None`: a new one).
    pub sid: Option<String>,
    /// The call the participant is, when not this one: a leg from another node carries that
    /// node's call into the room ([`crate::visit`]), and is shown as it.
    pub shown_as: Option<String>,
    /// A coach of the participant with this call SID, already in the room: heard by that
    /// participant alone (Twilio's `coach`).
    pub coach: Option<String>,
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
    /// Connects the call's audio with another call's, both ways.
    Bridge(String),
    Unbridge,
    /// The call (answered) joins the bridge of the call with this SID as its supervisor
    /// (see [`crate::SupervisorRole`]).
    Supervise {
        call: String,
        role: crate::SupervisorRole,
    },
    /// The supervisor takes another role on the bridge it supervises.
    SupervisorRole(crate::SupervisorRole),
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
    /// Wakes the application this long from now with [`EventKind::Alarm`] carrying `id`,
    /// timed by the core's clock like every other timer of the call (a markup `<Pause>`, a
    /// queue's longest wait). A call has one alarm: a new one replaces the one pending, so
    /// an application tells a stale alarm by its id. An ended call's alarm does not ring.
    SetAlarm {
        id: u64,
        after: Duration,
    },
    /// Stands the pending alarm down, if there is one.
    ClearAlarm,
    Gather(GatherSpec),
    /// Ends the gather under way (its `GatherEnded` says `cancelled`); nothing if none is.
    GatherStop,
    RecordStart(RecordOptions),
    RecordPause(switchboard_media::record::PauseBehavior),
    RecordResume,
    RecordStop,
    /// Delivers the call's decoded audio to `tx` (a call feeds several taps, each named by
    /// its caller-chosen id); frames the consumer does not take in time are dropped.
    TapStart {
        tap: TapId,
        tracks: TapTracks,
        tx: TapSink,
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
    /// Plays audio into the call's conference over the conversation: to the room or to the
    /// call alone. [`EventKind::AnnouncementStarted`] and [`EventKind::AnnouncementEnded`]
    /// follow, on this call.
    ConferenceAnnounce(RoomAnnouncement),
    /// Stops what the call hears alone in its conference (`true`), or every announcement of
    /// the room (`false`).
    ConferenceStopAnnouncements(bool),
    /// An announcement for the room (`false`) or the call alone (`true`) could not be made:
    /// its audio could not be had. The room records it.
    ConferenceAnnouncementFailed(bool),
    /// Records the mix of the call's conference from now (it must not be recorded already);
    /// the recording's events come to this call.
    ConferenceRecord(RecordOptions),
    /// Pauses, resumes or stops the recording of the call's conference, whoever started it.
    ConferenceRecording(RecordChange),
    /// Sends the party a SIP INFO with this body (Telnyx's `send_sip_info`).
    SendInfo {
        content_type: String,
        body: bytes::Bytes,
    },
    /// Answers the party's REFER ([`EventKind::ReferRequested`]): 202 to take it, or a
    /// refusal.
    AnswerRefer(u16),
    /// Tells the party how the REFER it made goes (a NOTIFY with this status line; a final
    /// one ends its subscription).
    NotifyRefer(u16),
    /// Asks the party to call `target` (a SIP URI) in the call's place: a REFER (RFC 3515)
    /// on its leg; [`EventKind::ReferAnswered`] and [`EventKind::ReferProgress`] follow.
    Refer(String),
    /// The party is heard by the participant with this call SID alone, who must be in the
    /// same conference (Twilio's coaching); `None`: by everyone again.
    ConferenceCoach(Option<String>),
    /// Files the call under a provider account (an inbound call, once its number is known).
    SetAccount(String),
    /// Adds an event another part of the switch saw to the call's events (stored, delivered
    /// and numbered with the core's own); only [`EventKind::reportable`] ones.
    Report(EventKind),
}
