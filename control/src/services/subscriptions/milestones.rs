//! What subscriptions speak of: a call's milestones (from its live events or its stored
//! rows), the history a renderer is given, and the dialect's renderer that turns a milestone
//! into a webhook.

use crate::call::{AgreedCodec, CallEvent, EventKind, Participant, Quality};
use crate::infra::accounts::HttpMethod;
use crate::infra::store::{CallStatus, EventRow, HangupBy};
use crate::infra::webhook::request::WebhookRequest;

/// The events a subscription can hear: the call's progress, its recordings' and its media
/// streams'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Milestone {
    Initiated,
    Ringing,
    Answered {
        /// The codec agreed with the party (Telnyx's `codec` and `sampling_rate`).
        codec: Option<AgreedCodec>,
    },
    Ended {
        status: CallStatus,
        sip_code: Option<u16>,
        /// Who ended it (unknown for a call that ended with its node).
        by: Option<HangupBy>,
        /// The core's reason (`api`, `rejected`, `ring-timeout`, …), when it gave one.
        cause: Option<String>,
        /// The media's final counters, when known.
        quality: Option<Quality>,
    },
    RecordingStarted {
        recording: String,
    },
    RecordingSaved {
        recording: String,
        duration_ms: u64,
        channels: u8,
        error: Option<String>,
    },
    StreamStarted {
        stream: String,
    },
    StreamFailed {
        stream: String,
        /// A [`crate::services::stream::Failure`]'s name.
        failure: String,
        detail: String,
        /// It had connected: a `StreamStopped` follows.
        started: bool,
    },
    StreamStopped {
        stream: String,
    },
    /// The events of a conference, stored under its SID (the subscription's `call`).
    ParticipantJoined(Participant),
    ParticipantLeft(Participant),
    ConferenceStarted {
        /// The call whose arrival started it.
        by: String,
    },
    ConferenceEnded {
        /// Twilio's `reason_conference_ended` values.
        reason: String,
        ended_by: Option<String>,
    },
    /// Audio played into the room ended (`failed`: cut short, refused, or not to be had);
    /// `call` is the participant who alone heard it.
    Announcement {
        failed: bool,
        call: Option<String>,
    },
}

impl Milestone {
    /// The recording or stream it is about, if it is about one.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::RecordingStarted { recording } | Self::RecordingSaved { recording, .. } => {
                Some(recording)
            }
            Self::StreamStarted { stream }
            | Self::StreamFailed { stream, .. }
            | Self::StreamStopped { stream } => Some(stream),
            _ => None,
        }
    }
}

/// A milestone of a call: the event's position among the call's events, and its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilestoneEvent {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub milestone: Milestone,
}

impl MilestoneEvent {
    /// The milestone a live event is, if it is one.
    pub fn of_event(e: &CallEvent) -> Option<Self> {
        let milestone = match &e.kind {
            // An incoming call starts when it is offered.
            EventKind::Initiated | EventKind::Incoming { .. } => Milestone::Initiated,
            EventKind::Ringing => Milestone::Ringing,
            EventKind::Answered { codec } => Milestone::Answered {
                codec: codec.clone(),
            },
            EventKind::Hangup {
                status,
                sip_code,
                by,
                cause,
                quality,
            } => Milestone::Ended {
                status: *status,
                sip_code: *sip_code,
                by: Some(*by),
                cause: cause.clone(),
                quality: *quality,
            },
            EventKind::RecordingStarted { recording } => Milestone::RecordingStarted {
                recording: recording.clone(),
            },
            EventKind::RecordingSaved {
                recording,
                duration_ms,
                channels,
                error,
                ..
            } => Milestone::RecordingSaved {
                recording: recording.clone(),
                duration_ms: *duration_ms,
                channels: *channels,
                error: error.clone(),
            },
            EventKind::StreamStarted { stream } => Milestone::StreamStarted {
                stream: stream.clone(),
            },
            EventKind::StreamFailed {
                stream,
                failure,
                detail,
                started,
            } => Milestone::StreamFailed {
                stream: stream.clone(),
                failure: failure.clone(),
                detail: detail.clone(),
                started: *started,
            },
            EventKind::StreamStopped { stream } => Milestone::StreamStopped {
                stream: stream.clone(),
            },
            _ => return None,
        };
        Some(Self {
            seq: i64::from(e.seq),
            at: e.at,
            milestone,
        })
    }

    /// The milestone a stored event is, if it is one.
    pub fn of_row(r: &EventRow) -> Option<Self> {
        let milestone = match r.kind.as_str() {
            "initiated" | "incoming" => Milestone::Initiated,
            "ringing" => Milestone::Ringing,
            "answered" => {
                #[derive(serde::Deserialize)]
                struct Answered {
                    codec: Option<AgreedCodec>,
                }
                // Rows stored before the codec was kept have none.
                let a: Option<Answered> = serde_json::from_str(&r.detail).ok();
                Milestone::Answered {
                    codec: a.and_then(|a| a.codec),
                }
            }
            "hangup" => {
                #[derive(serde::Deserialize)]
                struct Hangup {
                    status: String,
                    sip_code: Option<u16>,
                    by: Option<String>,
                    cause: Option<String>,
                    quality: Option<Quality>,
                }
                let h: Hangup = serde_json::from_str(&r.detail).ok()?;
                Milestone::Ended {
                    status: h.status.parse().ok()?,
                    sip_code: h.sip_code,
                    by: h.by.and_then(|b| b.parse().ok()),
                    cause: h.cause,
                    quality: h.quality,
                }
            }
            "recording-started" => {
                #[derive(serde::Deserialize)]
                struct Started {
                    recording: String,
                }
                let r: Started = serde_json::from_str(&r.detail).ok()?;
                Milestone::RecordingStarted {
                    recording: r.recording,
                }
            }
            "recording-saved" => {
                #[derive(serde::Deserialize)]
                struct Saved {
                    recording: String,
                    duration_ms: u64,
                    channels: u8,
                    error: Option<String>,
                }
                let r: Saved = serde_json::from_str(&r.detail).ok()?;
                Milestone::RecordingSaved {
                    recording: r.recording,
                    duration_ms: r.duration_ms,
                    channels: r.channels,
                    error: r.error,
                }
            }
            "stream-started" | "stream-stopped" => {
                #[derive(serde::Deserialize)]
                struct Stream {
                    stream: String,
                }
                let Stream { stream } = serde_json::from_str(&r.detail).ok()?;
                if r.kind == "stream-started" {
                    Milestone::StreamStarted { stream }
                } else {
                    Milestone::StreamStopped { stream }
                }
            }
            "participant-join" | "participant-leave" => {
                let p: Participant = serde_json::from_str(&r.detail).ok()?;
                if r.kind == "participant-join" {
                    Milestone::ParticipantJoined(p)
                } else {
                    Milestone::ParticipantLeft(p)
                }
            }
            "announcement-end" | "announcement-fail" => {
                #[derive(serde::Deserialize)]
                struct Announced {
                    call: Option<String>,
                }
                let Announced { call } = serde_json::from_str(&r.detail).ok()?;
                Milestone::Announcement {
                    failed: r.kind == "announcement-fail",
                    call,
                }
            }
            "conference-start" => {
                #[derive(serde::Deserialize)]
                struct Started {
                    by: String,
                }
                let Started { by } = serde_json::from_str(&r.detail).ok()?;
                Milestone::ConferenceStarted { by }
            }
            "conference-end" => {
                #[derive(serde::Deserialize)]
                struct Ended {
                    reason: String,
                    ended_by: Option<String>,
                }
                let e: Ended = serde_json::from_str(&r.detail).ok()?;
                Milestone::ConferenceEnded {
                    reason: e.reason,
                    ended_by: e.ended_by,
                }
            }
            "stream-failed" => {
                #[derive(serde::Deserialize)]
                struct Failed {
                    stream: String,
                    failure: String,
                    detail: String,
                    started: bool,
                }
                let f: Failed = serde_json::from_str(&r.detail).ok()?;
                Milestone::StreamFailed {
                    stream: f.stream,
                    failure: f.failure,
                    detail: f.detail,
                    started: f.started,
                }
            }
            _ => return None,
        };
        Some(Self {
            seq: i64::from(r.seq),
            at: r.at,
            milestone,
        })
    }
}

/// What the call's earlier milestones tell a renderer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// When the call was answered, if it was by this moment.
    pub answered_at: Option<i64>,
    /// Webhooks this subscription has made before this one.
    pub sent: i64,
}

impl History {
    /// Takes in `milestone_event`, which comes after those already taken in.
    pub(super) fn fold(&mut self, milestone_event: &MilestoneEvent) {
        if let Milestone::Answered { .. } = milestone_event.milestone {
            self.answered_at.get_or_insert(milestone_event.at);
        }
    }
}

/// Where a subscription's webhooks go, and what its dialect stored with it.
pub struct Hook<'a> {
    /// What it follows: a call's id, or a conference's SID.
    pub subject: &'a str,
    pub url: &'a str,
    pub method: HttpMethod,
    /// The renderer's JSON.
    pub context: &'a str,
}

impl Hook<'_> {
    /// The context `renderer` stored with the subscription, decoded. One that no longer
    /// decodes (a context written by another version, a row damaged) cannot make its
    /// webhook: the loss is logged and counted (`switchboard_webhooks_dropped_total` with
    /// `reason="context"`), never silent.
    pub fn context<T: serde::de::DeserializeOwned>(&self, renderer: &'static str) -> Option<T> {
        match serde_json::from_str(self.context) {
            Ok(context) => Some(context),
            Err(e) => {
                tracing::warn!(subject = self.subject, renderer, error = %e,
                    "a subscription's context does not decode: its webhook is dropped");
                metrics::counter!("switchboard_webhooks_dropped_total",
                    "reason" => "context", "renderer" => renderer)
                .increment(1);
                None
            }
        }
    }
}

/// A dialect's webhook for a milestone.
pub trait Renderer: Send + Sync {
    /// The request `milestone_event` makes for a subscription, or `None` when it did not ask for
    /// this one.
    fn render(
        &self,
        hook: &Hook<'_>,
        history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest>;

    /// Whether nothing the subscription asks for can follow `milestone_event`: by default, the call's
    /// end. (A call whose node died ends its subscriptions whatever they wait for.)
    fn is_last(&self, _context: &str, milestone_event: &MilestoneEvent) -> bool {
        matches!(milestone_event.milestone, Milestone::Ended { .. })
    }

    /// What ends a subject whose node died before its stored events did (`stored`), given
    /// the end the stage made of its record: by default that end alone. A renderer whose
    /// subject holds parts that end with it (a conference's participants) adds their ends
    /// first.
    fn closing(
        &self,
        _context: &str,
        _stored: &[MilestoneEvent],
        end: Milestone,
    ) -> Vec<Milestone> {
        vec![end]
    }
}

/// Where a visiting call's subscription of a conference starts: before the call's (latest)
/// join among the conference's stored `events`, or after them all when its join is not stored
/// yet.
pub fn visit_after(events: &[EventRow], call: &str) -> i64 {
    let joined = events
        .iter()
        .rev()
        .find_map(|e| match MilestoneEvent::of_row(e)? {
            MilestoneEvent {
                seq,
                milestone: Milestone::ParticipantJoined(p),
                ..
            } if p.call == call => Some(seq - 1),
            _ => None,
        });
    joined.unwrap_or_else(|| events.last().map_or(-1, |e| i64::from(e.seq)))
}

/// What ends a conference whose node died before its `stored` events did: those still in
/// leave, then it ends (`end`).
pub fn conference_closing(stored: &[MilestoneEvent], end: Milestone) -> Vec<Milestone> {
    let mut inside: Vec<&Participant> = Vec::new();
    for m in stored {
        match &m.milestone {
            Milestone::ParticipantJoined(p) => inside.push(p),
            Milestone::ParticipantLeft(p) => inside.retain(|q| q.call != p.call),
            _ => {}
        }
    }
    let leaves = inside.into_iter().cloned().map(Milestone::ParticipantLeft);
    leaves.chain([end]).collect()
}
