//! The rows the call core fills: a call's record and its legs', a recording's, an event's, a
//! conference's. The core writes them through its outputs ([`crate::StoreWrite`]); the store
//! (in `switchboard-control`) keeps them in SQLite or PostgreSQL and reads them back, and the
//! CLI prints them as JSON.

use crate::status::{CallStatus, Direction, HangupBy};
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    pub id: String,
    /// Caller number (user part of From).
    pub from: String,
    /// Dialed number (user part of the Request-URI).
    pub to: String,
    pub from_uri: String,
    pub to_uri: String,
    pub trunk_in: Option<String>,
    pub user_in: Option<String>,
    pub trunk_out: Option<String>,
    pub user_out: Option<String>,
    pub direction: Direction,
    /// The call this one was dialed from.
    pub parent_id: Option<String>,
    /// The provider account the call belongs to.
    pub account_sid: Option<String>,
    pub status: CallStatus,
    /// Final SIP status toward the caller (200 for answered calls).
    pub sip_code: Option<u16>,
    pub hangup_by: Option<HangupBy>,
    pub hangup_cause: Option<String>,
    pub sip_call_id: String,
    /// With `sip_call_id`, the dialog of the call's own leg.
    #[serde(skip)]
    pub sip_tags: SipTags,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: i64,
    #[serde(serialize_with = "rfc3339_opt")]
    pub answered_at: Option<i64>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub ended_at: Option<i64>,
    /// Seconds from answer to end; 0 for unanswered calls.
    pub duration_secs: u64,
    pub legs: Vec<LegRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegRecord {
    /// `caller` or `callee`.
    pub leg: String,
    pub sip_call_id: Option<String>,
    #[serde(skip)]
    pub sip_tags: SipTags,
    pub remote_rtp: Option<String>,
    pub codec: Option<String>,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub lost: u64,
    pub out_of_order: u64,
    pub dropped: u64,
}

/// Our tag and the peer's in a dialog: with its Call-ID they name it (RFC 3261 §12.1). A
/// Call-ID is chosen by whoever sends the first request, so another peer, another tenant's
/// among them, can reuse it; a call's SIP ladder takes only the messages that carry these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipTags {
    pub local: Option<String>,
    /// Unknown (`None`) until the peer answers, when we sent the dialog's first request.
    pub remote: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingRow {
    /// "RE" and 32 hex digits.
    pub id: String,
    pub call_id: String,
    /// The leg recorded; `None` for the whole call.
    pub leg: Option<String>,
    pub path: String,
    /// `wav-pcm16` or `wav-ulaw`.
    pub format: String,
    pub channels: u8,
    pub duration_ms: u64,
    pub size_bytes: u64,
    /// `in-progress`, `paused`, `completed` or `failed`.
    pub status: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub error: Option<String>,
    /// What started it: `api`, `record-verb`, `dial`, `call-create`, `conference`, `route`.
    pub origin: String,
}

/// One stored call event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub call_id: String,
    /// Position among the call's events, from 0.
    pub seq: u32,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: String,
    /// The event as JSON.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConferenceRow {
    /// `CF` and 32 hex digits.
    pub sid: String,
    /// The room's name as the application gave it.
    pub name: String,
    /// `init`, `in-progress` or `completed`.
    pub status: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// Why it ended (Twilio's `reason_conference_ended` values) and the call that ended it.
    pub reason_ended: Option<String>,
    pub ended_by: Option<String>,
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

fn rfc3339<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ms(*ms))
}

fn rfc3339_opt<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&format_ms(*ms)),
        None => s.serialize_none(),
    }
}
