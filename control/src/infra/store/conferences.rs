//! The conferences table: one row per conference, from its opening to its end.

use super::{Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

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

pub(super) const COLUMNS: &str =
    "sid, name, status, created_at, updated_at, reason_ended, ended_by";

impl ConferenceRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            sid: row.try_get("sid")?,
            name: row.try_get("name")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            reason_ended: row.try_get("reason_ended")?,
            ended_by: row.try_get("ended_by")?,
        })
    }
}

impl Store {
    /// Conferences whose room name starts with `prefix`, newest first.
    pub async fn conferences(&self, prefix: &str) -> Result<Vec<ConferenceRow>, StoreError> {
        // `prefix` is matched with substr, not LIKE: no wildcard in it can widen the match.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM conferences WHERE substr(name, 1, CAST($1 AS INTEGER)) = $2 \
             ORDER BY created_at DESC, sid DESC"
        )))
        .bind(prefix.chars().count() as i64)
        .bind(prefix.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(ConferenceRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// The conference `sid` if its room name starts with `prefix` (an account's: another's is
    /// as unknown).
    pub async fn conference(
        &self,
        prefix: &str,
        sid: &str,
    ) -> Result<Option<ConferenceRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM conferences WHERE sid = $1 \
             AND substr(name, 1, CAST($2 AS INTEGER)) = $3"
        )))
        .bind(sid.to_owned())
        .bind(prefix.chars().count() as i64)
        .bind(prefix.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(ConferenceRow::from_row).transpose()?)
    }
}
