//! The webhook outbox table.

use super::{Store, StoreError};
use crate::infra::accounts::HttpMethod;
use crate::infra::webhook::request::{Signer, WebhookRequest};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: String,
    pub call_id: String,
    /// Order among the call's webhooks.
    pub seq: i64,
    pub account_sid: String,
    /// The request as it will be sent, signed at send time.
    pub request: WebhookRequest,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i64,
}

const COLUMNS: &str = "id, call_id, seq, account_sid, url, method, params, content_type, body, \
    signer, created_at, next_attempt_at, attempts, failover_url, timeout_secs";

/// Adds a webhook, alone or inside a transaction.
pub(super) async fn insert_outbox<'e, E>(e: E, row: &OutboxRow) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let r = &row.request;
    sqlx::query(
        "INSERT INTO webhook_outbox (id, call_id, seq, account_sid, url, method, params, \
         content_type, body, signer, created_at, next_attempt_at, attempts, failover_url, \
         timeout_secs) VALUES ($1, $2, $3, $4, $5, $6, '[]', $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(row.id.clone())
    .bind(row.call_id.clone())
    .bind(row.seq)
    .bind(row.account_sid.clone())
    .bind(r.url.clone())
    .bind(r.method.as_str())
    .bind(r.content_type.clone())
    .bind(r.body.clone())
    .bind(r.signer.as_str())
    .bind(row.created_at)
    .bind(row.next_attempt_at)
    .bind(row.attempts)
    .bind(r.failover_url.clone())
    .bind(r.timeout_secs.map(i64::from))
    .execute(e)
    .await?;
    Ok(())
}

impl Store {
    pub async fn outbox_add(&self, row: &OutboxRow) -> Result<(), StoreError> {
        insert_outbox(&self.pool, row).await
    }

    /// Claims up to `limit` webhooks for this node until `now + lease_ms`: those due, not
    /// claimed by a live claim, and first among their call's undelivered ones (a call's
    /// webhooks go in order). Rows another node is claiming at the same moment are skipped
    /// (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer at a time).
    pub async fn outbox_claim(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let lock = if self.postgres {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE webhook_outbox SET claimed_by = $1, claimed_until = $2 WHERE id IN (\
               SELECT o.id FROM webhook_outbox o \
               WHERE o.delivered_at IS NULL AND o.expired_at IS NULL AND o.next_attempt_at <= $3 \
                 AND (o.claimed_until IS NULL OR o.claimed_until <= $3) \
                 AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.call_id = o.call_id \
                   AND p.seq < o.seq AND p.delivered_at IS NULL AND p.expired_at IS NULL) \
               ORDER BY o.next_attempt_at, o.seq LIMIT $4 {lock}) \
             RETURNING {COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.node.to_string())
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut rows: Vec<OutboxRow> = rows
            .iter()
            .map(outbox_row)
            .collect::<Result<_, sqlx::Error>>()?;
        // RETURNING gives no order.
        rows.sort_by_key(|r| (r.next_attempt_at, r.seq));
        Ok(rows)
    }

    /// When the next webhook falls due (or its claim runs out), counting only the first
    /// undelivered webhook of each call; `None` when nothing is pending.
    pub async fn outbox_next_due(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN o.claimed_until IS NULL OR o.claimed_until < o.next_attempt_at \
                THEN o.next_attempt_at ELSE o.claimed_until END) AS due \
             FROM webhook_outbox o WHERE o.delivered_at IS NULL AND o.expired_at IS NULL \
               AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.call_id = o.call_id \
                 AND p.seq < o.seq AND p.delivered_at IS NULL AND p.expired_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("due")?)
    }

    /// Gives a claimed webhook back unattempted, due again at `at`.
    pub async fn outbox_defer(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_outbox SET next_attempt_at = $1, claimed_by = NULL, claimed_until = NULL \
             WHERE id = $2",
        )
        .bind(at)
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
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
             next_attempt_at = $4, last_error = $5, claimed_by = NULL, claimed_until = NULL \
             WHERE id = $6",
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

    /// A call's webhooks in order, delivered or not.
    #[cfg(test)]
    pub(crate) async fn outbox_of_call(&self, call: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhook_outbox WHERE call_id = $1 ORDER BY seq"
        )))
        .bind(call.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(outbox_row).collect::<Result<_, _>>()?)
    }

    /// The highest `seq` in the outbox, to continue numbering after a restart.
    pub async fn outbox_max_seq(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) AS m FROM webhook_outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("m")?.unwrap_or(0))
    }
}

fn outbox_row(r: &sqlx::any::AnyRow) -> Result<OutboxRow, sqlx::Error> {
    let url: String = r.try_get("url")?;
    let method = HttpMethod::parse(&r.try_get::<String, _>("method")?).unwrap_or_default();
    let request = match r.try_get::<Option<String>, _>("body")? {
        Some(body) => WebhookRequest {
            method,
            url,
            content_type: r.try_get("content_type")?,
            body,
            signer: Signer::parse(&r.try_get::<String, _>("signer")?).unwrap_or(Signer::Twilio),
            failover_url: r.try_get("failover_url")?,
            timeout_secs: (r.try_get::<Option<i64>, _>("timeout_secs")?)
                .and_then(|s| u32::try_from(s).ok()),
        },
        // Queued before requests were stored as sent: a Twilio request of these parameters.
        None => {
            let params: String = r.try_get("params")?;
            let params: Vec<(String, String)> = serde_json::from_str(&params).unwrap_or_default();
            WebhookRequest::twilio(&url, method, &params)
        }
    };
    Ok(OutboxRow {
        id: r.try_get("id")?,
        call_id: r.try_get("call_id")?,
        seq: r.try_get("seq")?,
        account_sid: r.try_get("account_sid")?,
        request,
        created_at: r.try_get("created_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        attempts: r.try_get("attempts")?,
    })
}

/// How a delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Retry { at: i64, error: String },
    Expired { error: String },
}
