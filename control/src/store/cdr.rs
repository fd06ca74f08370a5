//! Call detail records as stored and as `switchboard calls list --json` prints them.

use super::opt_u16;
use serde::{Serialize, Serializer};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::fmt;
use std::str::FromStr;

/// Final (or current) status of a call, with the names Twilio uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub const ALL: [CallStatus; 9] = [
        Self::Queued,
        Self::Initiated,
        Self::Ringing,
        Self::InProgress,
        Self::Completed,
        Self::Busy,
        Self::NoAnswer,
        Self::Failed,
        Self::Canceled,
    ];
}

impl CallStatus {
    /// A final status: the call is over.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Self::Queued | Self::Initiated | Self::Ringing | Self::InProgress
        )
    }
}

/// Which way a call goes, with Twilio's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Arrived from a trunk or phone.
    Inbound,
    /// Placed by an application through the API.
    OutboundApi,
    /// Dialed from another call (it has a parent).
    OutboundDial,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::OutboundApi => "outbound-api",
            Self::OutboundDial => "outbound-dial",
        }
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Inbound, Self::OutboundApi, Self::OutboundDial]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown call direction {s:?}"))
    }
}

impl FromStr for CallStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown call status {s:?}"))
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupBy {
    Caller,
    Callee,
    System,
}

impl HangupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Callee => "callee",
            Self::System => "system",
        }
    }
}

impl FromStr for HangupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "caller" => Ok(Self::Caller),
            "callee" => Ok(Self::Callee),
            "system" => Ok(Self::System),
            _ => Err(format!("unknown hangup side {s:?}")),
        }
    }
}

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

/// Column lists of the two tables, in the order `from_row` reads them.
macro_rules! call_columns {
    () => {
        "id, from_number, to_number, from_uri, to_uri, trunk_in, user_in, trunk_out, user_out, \
         direction, parent_id, status, sip_code, hangup_by, hangup_cause, sip_call_id, started_at, \
         answered_at, ended_at, account_sid"
    };
}
macro_rules! leg_columns {
    () => {
        "leg, sip_call_id, remote_rtp, codec, packets_in, packets_out, bytes_in, bytes_out, lost, out_of_order, dropped"
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
