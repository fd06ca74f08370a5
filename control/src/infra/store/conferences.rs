//! The conferences table: one row per conference, from its opening to its end.

use super::{FromRow, Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;
pub use switchboard_core::rows::ConferenceRow;

pub(super) const COLUMNS: &str =
    "sid, name, status, created_at, updated_at, reason_ended, ended_by";

impl FromRow for ConferenceRow {
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
