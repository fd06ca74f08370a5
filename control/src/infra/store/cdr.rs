//! Call detail records as stored and as `switchboard calls list --json` prints them.

use super::{FromRow, opt_u16};
use sqlx::Row;
use sqlx::any::AnyRow;

pub use switchboard_core::rows::{CallRecord, LegRecord, SipTags, format_ms};
pub use switchboard_core::status::{CallStatus, Direction, HangupBy};

impl FromRow for SipTags {
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

impl FromRow for CallRecord {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
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

impl FromRow for LegRecord {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
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
