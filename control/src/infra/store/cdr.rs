//! Call detail records as stored and as `switchboard calls list --json` prints them.

use super::opt_u16;
use serde::{Serialize, Serializer};
use sqlx::Row;
use sqlx::any::AnyRow;

pub use crate::call::status::{CallStatus, Direction, HangupBy};

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

impl SipTags {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            local: row.try_get("sip_local_tag")?,
            remote: row.try_get("sip_remote_tag")?,
        })
    }
}

/// Column lists of the two tables, in the order `from_row` reads them.
macro_rules! call_columns {
    () => {
        "id, from_number, to_number, from_uri, to_uri, trunk_in, user_in, trunk_out, user_out, \
         direction, parent_id, status, sip_code, hangup_by, hangup_cause, sip_call_id, started_at, \
         answered_at, ended_at, account_sid, sip_local_tag, sip_remote_tag"
    };
}
macro_rules! leg_columns {
    () => {
        "leg, sip_call_id, remote_rtp, codec, packets_in, packets_out, bytes_in, bytes_out, lost, out_of_order, dropped, \
         sip_local_tag, sip_remote_tag"
    };
}

pub(super) const CALL_COLUMNS: &str = call_columns!();
pub(super) const SELECT_CALLS: &str = concat!(
    "SELECT ",
    call_columns!(),
    " FROM calls ORDER BY started_at DESC, id DESC LIMIT $1"
);
pub(super) const SELECT_CALL: &str =
    concat!("SELECT ", call_columns!(), " FROM calls WHERE id = $1");
pub(super) const SELECT_LEGS: &str = concat!(
    "SELECT ",
    leg_columns!(),
    " FROM call_legs WHERE call_id = $1 ORDER BY leg"
);

impl CallRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let decode = |e: String| sqlx::Error::Decode(e.into());
        let answered_at: Option<i64> = row.try_get("answered_at")?;
        let ended_at: Option<i64> = row.try_get("ended_at")?;
        let duration_secs = match (answered_at, ended_at) {
            (Some(a), Some(e)) if e > a => ((e - a) as u64).div_ceil(1000),
            _ => 0,
        };
        Ok(Self {
            id: row.try_get("id")?,
            from: row.try_get("from_number")?,
            to: row.try_get("to_number")?,
            from_uri: row.try_get("from_uri")?,
            to_uri: row.try_get("to_uri")?,
            trunk_in: row.try_get("trunk_in")?,
            user_in: row.try_get("user_in")?,
            trunk_out: row.try_get("trunk_out")?,
            user_out: row.try_get("user_out")?,
            direction: row
                .try_get::<String, _>("direction")?
                .parse()
                .map_err(decode)?,
            parent_id: row.try_get("parent_id")?,
            account_sid: row.try_get("account_sid")?,
            status: row
                .try_get::<String, _>("status")?
                .parse()
                .map_err(decode)?,
            sip_code: opt_u16(row, "sip_code")?,
            hangup_by: row
                .try_get::<Option<String>, _>("hangup_by")?
                .map(|h| h.parse())
                .transpose()
                .map_err(decode)?,
            hangup_cause: row.try_get("hangup_cause")?,
            sip_call_id: row.try_get("sip_call_id")?,
            sip_tags: SipTags::from_row(row)?,
            started_at: row.try_get("started_at")?,
            answered_at,
            ended_at,
            duration_secs,
            legs: Vec::new(),
        })
    }
}

impl LegRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let n = |c: &str| row.try_get::<i64, _>(c).map(|v| v as u64);
        Ok(Self {
            leg: row.try_get("leg")?,
            sip_call_id: row.try_get("sip_call_id")?,
            sip_tags: SipTags::from_row(row)?,
            remote_rtp: row.try_get("remote_rtp")?,
            codec: row.try_get("codec")?,
            packets_in: n("packets_in")?,
            packets_out: n("packets_out")?,
            bytes_in: n("bytes_in")?,
            bytes_out: n("bytes_out")?,
            lost: n("lost")?,
            out_of_order: n("out_of_order")?,
            dropped: n("dropped")?,
        })
    }
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
