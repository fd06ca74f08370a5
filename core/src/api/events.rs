//! The events a call emits to its application and observers.

use crate::status::{CallStatus, HangupBy};
use serde::Serialize;
use switchboard_media::PlaybackEnd;
use switchboard_media::dtmf::DtmfMethod;

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
    /// An announcement it asked for ([`super::CallCommand::ConferenceAnnounce`]) began.
    AnnouncementStarted {
        conference: String,
        tag: String,
        alone: bool,
    },
    /// It played out, or was `stopped` (or refused, or its listener left).
    AnnouncementEnded {
        conference: String,
        tag: String,
        alone: bool,
        stopped: bool,
    },
    /// A media stream of the call connected to its application (reported by the streams).
    StreamStarted {
        stream: String,
    },
    /// A media stream failed: `failure` names a `switchboard_control::services::stream::Failure`; `started` says
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
    /// What a party said, as the recogniser heard it (reported by a transcription). A final
    /// result ends an utterance; an interim one, which a later result replaces, is delivered
    /// to observers (the live socket) but not stored.
    Transcript {
        /// `inbound` (what the call's party says) or `outbound` (what it hears).
        track: &'static str,
        text: String,
        confidence: f32,
        is_final: bool,
    },
    /// Who answered, a person or a machine (reported by machine detection): `human`,
    /// `machine`, `fax` or `unknown`, and how much of the call's audio it took.
    MachineDetection {
        result: &'static str,
        after_ms: u64,
    },
    /// The alarm the application set ([`CallCommand::SetAlarm`](crate::CallCommand::SetAlarm))
    /// is due.
    Alarm {
        id: u64,
    },
    /// The party asks (SIP REFER) to be replaced by `target` (its `Refer-To`): the
    /// application answers with [`CallCommand::AnswerRefer`](crate::CallCommand::AnswerRefer)
    /// soon, or the core refuses it.
    ReferRequested {
        target: String,
    },
    /// The party's answer to the REFER the application sent ([`CallCommand::Refer`](crate::CallCommand::Refer)):
    /// 202 when it took it (its progress follows), or why not (408: no answer).
    ReferAnswered {
        sip_code: u16,
    },
    /// How the party's call to the REFER's target goes, as its NOTIFYs say: the call's
    /// status (`None`: a NOTIFY without one), `last` when no more will come.
    ReferProgress {
        sip_code: Option<u16>,
        last: bool,
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
    /// Whether another part of the switch may report it on a call ([`CallCommand::Report`](crate::CallCommand::Report)):
    /// what happened to the call outside the core, kept in its history with the rest — an
    /// announcement to a call seated in a room another shard holds is that shard's event.
    pub fn reportable(&self) -> bool {
        matches!(
            self,
            Self::AnnouncementStarted { .. }
                | Self::AnnouncementEnded { .. }
                | Self::StreamStarted { .. }
                | Self::StreamFailed { .. }
                | Self::StreamStopped { .. }
                | Self::Transcript { .. }
                | Self::MachineDetection { .. }
        )
    }

    /// Whether the event is kept in the call's stored history. Marks are playback feedback
    /// for whoever injects audio (a voice bot marks every chunk, many a second), and alarms
    /// are the application's own wake-ups, interim transcripts are replaced by the final one:
    /// they are delivered, not stored.
    pub fn stored(&self) -> bool {
        !matches!(
            self,
            Self::Mark { .. }
                | Self::Alarm { .. }
                | Self::Transcript {
                    is_final: false,
                    ..
                }
        )
    }

    /// Events that arrive at the remote party's pace (digits) or the application's (marks,
    /// discarded injections) and may be shed, counted, when a call floods them.
    pub fn sheddable(&self) -> bool {
        matches!(
            self,
            Self::Dtmf { .. }
                | Self::Mark { .. }
                | Self::InjectDiscarded { .. }
                | Self::Transcript {
                    is_final: false,
                    ..
                }
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
            Self::AnnouncementStarted { .. } => "announcement-started",
            Self::AnnouncementEnded { .. } => "announcement-ended",
            Self::StreamStarted { .. } => "stream-started",
            Self::StreamFailed { .. } => "stream-failed",
            Self::StreamStopped { .. } => "stream-stopped",
            Self::Transcript { .. } => "transcript",
            Self::MachineDetection { .. } => "machine-detection",
            Self::Alarm { .. } => "alarm",
            Self::ReferAnswered { .. } => "refer-answered",
            Self::ReferRequested { .. } => "refer-requested",
            Self::ReferProgress { .. } => "refer-progress",
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
