//! The webhook outbox table.

use super::{Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: String,
    pub call_id: String,
    /// Order among the call's webhooks.
    pub seq: i64,
    pub account_sid: String,
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    pub params: Vec<(String, String)>,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i64,
}

const COLUMNS: &str =
    "id, call_id, seq, account_sid, url, method, params, created_at, next_attempt_at, attempts";

impl Store {
    pub async fn outbox_add(&self, row: &OutboxRow) -> Result<(), StoreError> {
        let params = serde_json::to_string(&row.params).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO webhook_outbox (id, call_id, seq, account_sid, url, method, params, \
             created_at, next_attempt_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(row.id.clone())
        .bind(row.call_id.clone())
        .bind(row.seq)
        .bind(row.account_sid.clone())
        .bind(row.url.clone())
        .bind(row.method.clone())
        .bind(params)
        .bind(row.created_at)
        .bind(row.next_attempt_at)
        .bind(row.attempts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Undelivered, unexpired webhooks in delivery order (per call, by `seq`).
    pub async fn outbox_pending(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhook_outbox WHERE delivered_at IS NULL AND expired_at IS NULL \
             ORDER BY call_id, seq LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let params: String = r.try_get("params")?;
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    call_id: r.try_get("call_id")?,
                    seq: r.try_get("seq")?,
                    account_sid: r.try_get("account_sid")?,
                    url: r.try_get("url")?,
                    method: r.try_get("method")?,
                    params: serde_json::from_str(&params).unwrap_or_default(),
                    created_at: r.try_get("created_at")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Records an attempt: delivered, or failed with the next attempt's time (or expired).
    pub async fn outbox_attempted(
        &self,
        id: &str,
        attempts: i64,
        outcome: Attempt,
        now: i64,
    ) -> Result<(), StoreError> {
        let (delivered, expired, next, error) = match outcome {
            Attempt::Delivered => (Some(now), None, now, None),
            Attempt::Retry { at, error } => (None, None, at, Some(error)),
            Attempt::Expired { error } => (None, Some(now), now, Some(error)),
        };
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = $1, delivered_at = $2, expired_at = $3, \
             next_attempt_at = $4, last_error = $5 WHERE id = $6",
        )
        .bind(attempts)
        .bind(delivered)
        .bind(expired)
        .bind(next)
        .bind(error)
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The highest `seq` in the outbox, to continue numbering after a restart.
    pub async fn outbox_max_seq(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) AS m FROM webhook_outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("m")?.unwrap_or(0))
    }
}

/// How a delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Retry { at: i64, error: String },
    Expired { error: String },
}
