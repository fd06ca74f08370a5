//! The queues table: the call queues accounts made (their waiting calls are live, not stored).

use super::{Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    /// `QU` and 32 hex digits.
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub max_size: u32,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    pub async fn queues(&self) -> Result<Vec<QueueRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT sid, account_sid, friendly_name, max_size, created_at, updated_at \
             FROM queues ORDER BY created_at, sid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueRow {
                    sid: r.try_get("sid")?,
                    account_sid: r.try_get("account_sid")?,
                    friendly_name: r.try_get("friendly_name")?,
                    max_size: r.try_get::<i64, _>("max_size")? as u32,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Stores a queue, new or changed.
    pub async fn save_queue(&self, q: &QueueRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO queues (sid, account_sid, friendly_name, max_size, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sid) DO UPDATE SET \
             friendly_name = excluded.friendly_name, max_size = excluded.max_size, \
             updated_at = excluded.updated_at",
        )
        .bind(q.sid.clone())
        .bind(q.account_sid.clone())
        .bind(q.friendly_name.clone())
        .bind(q.max_size as i64)
        .bind(q.created_at)
        .bind(q.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_queue(&self, sid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM queues WHERE sid = $1")
            .bind(sid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
