//! The call subscriptions table: what an application asked to hear of a call, and how far its
//! webhooks have been made (see `webhook::subscriptions`).

use super::outbox::insert_outbox;
use super::{OutboxRow, Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub id: String,
    pub call_id: String,
    pub account_sid: String,
    pub node: String,
    /// Which renderer makes its webhooks.
    pub renderer: String,
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// What the renderer needs, as JSON.
    pub context: String,
    /// The call event whose webhook was queued last; -1 before the first.
    pub last_seq: i64,
    /// Webhooks queued so far.
    pub sent: i64,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

/// How a subscription moves past one event.
#[derive(Debug, Clone)]
pub struct Advance {
    /// The cursor it was read at: the move happens only if nobody moved it since.
    pub from_seq: i64,
    /// The event it moves to.
    pub to_seq: i64,
    /// The webhook the event makes, if any.
    pub webhook: Option<OutboxRow>,
    /// The call's end: nothing more comes.
    pub done_at: Option<i64>,
}

const COLUMNS: &str = "id, call_id, account_sid, node, renderer, url, method, context, \
    last_seq, sent, created_at, done_at";

impl Store {
    pub async fn subscription_add(&self, row: &SubscriptionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO call_subscriptions (id, call_id, account_sid, node, renderer, url, \
             method, context, last_seq, sent, created_at, done_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(row.id.clone())
        .bind(row.call_id.clone())
        .bind(row.account_sid.clone())
        .bind(row.node.clone())
        .bind(row.renderer.clone())
        .bind(row.url.clone())
        .bind(row.method.clone())
        .bind(row.context.clone())
        .bind(row.last_seq)
        .bind(row.sent)
        .bind(row.created_at)
        .bind(row.done_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves a subscription past an event and queues the event's webhook, in one
    /// transaction. `None` (and nothing written) when the cursor is no longer at `from_seq` —
    /// another pass made that webhook already; else the position the webhook took among all
    /// webhooks, if it made one.
    pub async fn subscription_advance(
        &self,
        id: &str,
        step: &Advance,
    ) -> Result<Option<Option<i64>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE call_subscriptions SET last_seq = $1, sent = sent + $2, done_at = $3 \
             WHERE id = $4 AND last_seq = $5 AND done_at IS NULL",
        )
        .bind(step.to_seq)
        .bind(i64::from(step.webhook.is_some()))
        .bind(step.done_at)
        .bind(id.to_owned())
        .bind(step.from_seq)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut placed = None;
        if let Some(webhook) = &step.webhook {
            // Whichever node moves the cursor makes the webhook, numbered from its own count:
            // it must still go after the subject's earlier webhooks another node queued (a
            // conference's, whose participants' nodes take turns), so it is placed after them.
            // The cursor's row is held by the update above, so the step before is committed.
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(seq) FROM webhook_outbox \
                 WHERE delivered_at IS NULL AND expired_at IS NULL AND call_id = $1",
            )
            .bind(webhook.call_id.clone())
            .fetch_one(&mut *tx)
            .await?;
            let seq = last.map_or(webhook.seq, |last| webhook.seq.max(last.saturating_add(1)));
            let webhook = OutboxRow {
                seq,
                ..webhook.clone()
            };
            insert_outbox(&mut *tx, &webhook).await?;
            placed = Some(seq);
        }
        tx.commit().await?;
        Ok(Some(placed))
    }

    /// Replaces what the renderer stored with a subscription (a Telnyx leg's new
    /// `client_state`), for the webhooks made after.
    pub async fn subscription_set_context(
        &self,
        id: &str,
        context: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE call_subscriptions SET context = $1 WHERE id = $2")
            .bind(context.to_owned())
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM call_subscriptions WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// The unfinished subscriptions of `call_id` (a call's id, or a conference's SID).
    pub async fn open_subscriptions_of(&self, call_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM call_subscriptions WHERE call_id = $1 AND done_at IS NULL \
             ORDER BY created_at, id",
        )
        .bind(call_id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?)
    }

    /// What the first subscription of `call_id` made by `renderer` stored with it: a
    /// dialect's own view of a call (a Telnyx leg's connection and session).
    pub async fn subscription_context(
        &self,
        call_id: &str,
        renderer: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT context FROM call_subscriptions WHERE call_id = $1 AND renderer = $2 \
             ORDER BY created_at, id LIMIT 1",
        )
        .bind(call_id.to_owned())
        .bind(renderer.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("context")).transpose()?)
    }

    /// Up to `limit` unfinished subscriptions made by this node before `before` (its last
    /// run's), oldest first.
    pub async fn open_subscriptions(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        self.open_subscriptions_where("node = $1 AND created_at < $2", before, limit)
            .await
    }

    /// Up to `limit` unfinished subscriptions of calls carried by nodes not seen since
    /// `stale_before`, oldest first.
    pub async fn open_subscriptions_of_dead_nodes(
        &self,
        stale_before: i64,
        limit: i64,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        self.open_subscriptions_where(
            "node IN (SELECT id FROM nodes WHERE seen_at < $2 AND id <> $1)",
            stale_before,
            limit,
        )
        .await
    }

    async fn open_subscriptions_where(
        &self,
        which: &str,
        time: i64,
        limit: i64,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM call_subscriptions WHERE done_at IS NULL AND {which} \
             ORDER BY created_at LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.node.to_string())
            .bind(time)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<SubscriptionRow, sqlx::Error> {
    Ok(SubscriptionRow {
        id: r.try_get("id")?,
        call_id: r.try_get("call_id")?,
        account_sid: r.try_get("account_sid")?,
        node: r.try_get("node")?,
        renderer: r.try_get("renderer")?,
        url: r.try_get("url")?,
        method: r.try_get("method")?,
        context: r.try_get("context")?,
        last_seq: r.try_get("last_seq")?,
        sent: r.try_get("sent")?,
        created_at: r.try_get("created_at")?,
        done_at: r.try_get("done_at")?,
    })
}
