//! Nodes sharing one database. Each node has an id (`node_id` in the config, the host name by
//! default) stamped on the calls and recordings it carries, and a heartbeat row. A restarted
//! node closes the calls its last run left open, and only those: on a shared PostgreSQL the
//! other nodes' calls are alive. A node whose heartbeat stopped (it crashed and did not come
//! back) has its calls closed, and its open recordings completed, by any node still alive,
//! each once: the live nodes claim them row by row.

use super::{Store, StoreError};
use sqlx::Row;

/// A node not seen for this long is taken for dead unless configured otherwise
/// (`cluster.dead_after_secs`). Nodes beat a third of it apart, so only a node that is down (or
/// cut off from the database) stays silent this long.
pub const DEFAULT_DEAD_AFTER_MS: i64 = 15_000;

impl Store {
    /// The store as node `id` uses it.
    pub fn on_node(mut self, id: &str) -> Self {
        self.node = id.into();
        self
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The store as a node that takes another for dead after `ms` of silence.
    pub fn dead_after(mut self, ms: i64) -> Self {
        self.dead_after_ms = ms.max(1);
        self
    }

    /// How long a node may be silent before the others take it for dead.
    pub fn dead_after_ms(&self) -> i64 {
        self.dead_after_ms
    }

    /// Where the other nodes reach this node's API.
    pub fn reached_at(mut self, url: &str) -> Self {
        self.node_url = url.into();
        self
    }

    /// Records that this node is alive at `now_ms` (and where it is reached).
    pub async fn node_seen(&self, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, started_at, seen_at, url) VALUES ($1, $2, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, url = excluded.url",
        )
        .bind(self.node.to_string())
        .bind(now_ms)
        .bind(self.node_url.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The node carrying call `sid` when it is another node, alive (seen within
    /// [`Store::dead_after_ms`] of `now_ms`) and the call not over: where that node is reached.
    pub async fn owner_elsewhere(
        &self,
        sid: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT n.url FROM calls c JOIN nodes n ON n.id = c.node \
             WHERE c.id = $1 AND c.node <> $2 AND c.ended_at IS NULL AND n.seen_at >= $3 AND n.url <> ''",
        )
        .bind(sid)
        .bind(self.node.to_string())
        .bind(now_ms.saturating_sub(self.dead_after_ms))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("url")).transpose()?)
    }

    /// The node (its id) carrying call `sid` of `account` when it is another node, alive
    /// (seen within [`Store::dead_after_ms`] of `now_ms`), and the call not over.
    pub async fn call_node_elsewhere(
        &self,
        sid: &str,
        account: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT c.node FROM calls c JOIN nodes n ON n.id = c.node \
             WHERE c.id = $1 AND c.account_sid = $2 AND c.node <> $3 AND c.ended_at IS NULL \
             AND n.seen_at >= $4",
        )
        .bind(sid)
        .bind(account)
        .bind(self.node.to_string())
        .bind(now_ms.saturating_sub(self.dead_after_ms))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("node")).transpose()?)
    }

    /// At start-up: marks the calls this node's last run left unfinished as failed, ended now,
    /// completes the conferences it left open and gives up their rooms and queue places, and
    /// drops the claims it held on webhooks (they are attempted again at once).
    pub async fn close_abandoned_calls(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.drop_own_rooms().await?;
        self.drop_own_queue_members().await?;
        let node = self.node.to_string();
        sqlx::query(
            "UPDATE webhook_outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1",
        )
        .bind(node.clone())
        .execute(&self.pool)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CLOSE_CONFERENCES} AND node IN ($2, '')"
        )))
        .bind(now_ms)
        .bind(node.clone())
        .execute(&self.pool)
        .await?;
        let closed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CLOSE_CALLS} AND node IN ($2, '')"
        )))
        .bind(now_ms)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(closed.rows_affected())
    }

    /// Marks the unfinished calls of nodes not seen for `dead_after_ms` as failed,
    /// completes their conferences and takes their callers out of queues.
    pub async fn close_calls_of_dead_nodes(&self, now_ms: i64) -> Result<u64, StoreError> {
        // Their callers waiting in queues are gone with them.
        sqlx::query(
            "DELETE FROM queue_members WHERE node IN (SELECT id FROM nodes WHERE seen_at < $1 AND id <> $2)",
        )
        .bind(now_ms.saturating_sub(self.dead_after_ms))
        .bind(self.node.to_string())
        .execute(&self.pool)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CLOSE_CONFERENCES} AND node IN (SELECT id FROM nodes WHERE seen_at < $2 AND id <> $3)"
        )))
        .bind(now_ms)
        .bind(now_ms.saturating_sub(self.dead_after_ms))
        .bind(self.node.to_string())
        .execute(&self.pool)
        .await?;
        let closed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CLOSE_CALLS} AND node IN (SELECT id FROM nodes WHERE seen_at < $2 AND id <> $3)"
        )))
        .bind(now_ms)
        .bind(now_ms.saturating_sub(self.dead_after_ms))
        .bind(self.node.to_string())
        .execute(&self.pool)
        .await?;
        Ok(closed.rows_affected())
    }
}

impl Store {
    /// Takes over the open recordings of nodes taken for dead at `now_ms`: each is claimed
    /// for this node row by row (a live node that claimed it first keeps it), so each is
    /// completed by one node. Returns the claimed rows, to be repaired and completed.
    pub async fn claim_recordings_of_dead_nodes(
        &self,
        now_ms: i64,
    ) -> Result<Vec<super::RecordingRow>, StoreError> {
        let stale = now_ms.saturating_sub(self.dead_after_ms);
        let candidates = sqlx::query(
            "SELECT id, node FROM recordings WHERE status IN ('in-progress', 'paused') \
             AND node IN (SELECT id FROM nodes WHERE seen_at < $1 AND id <> $2)",
        )
        .bind(stale)
        .bind(self.node.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for row in candidates {
            let (id, dead): (String, String) = (row.try_get("id")?, row.try_get("node")?);
            let taken = sqlx::query(
                "UPDATE recordings SET node = $1 WHERE id = $2 AND node = $3 \
                 AND status IN ('in-progress', 'paused')",
            )
            .bind(self.node.to_string())
            .bind(id.clone())
            .bind(dead)
            .execute(&self.pool)
            .await?;
            if taken.rows_affected() == 1 {
                claimed.push(id);
            }
        }
        let mut rows = Vec::new();
        for id in claimed {
            rows.extend(self.recording(&id).await?);
        }
        Ok(rows)
    }
}

/// Conferences still open end at `$1`, their participants' calls cut (Twilio's closest reason);
/// the caller adds which.
const CLOSE_CONFERENCES: &str = "UPDATE conferences SET status = 'completed', updated_at = $1, \
    reason_ended = 'last-participant-left' WHERE status <> 'completed'";

/// Unfinished calls become failed, ended at `$1`; the caller adds which.
const CLOSE_CALLS: &str = "UPDATE calls SET status = 'failed', hangup_by = 'system', \
    hangup_cause = 'restart', ended_at = $1 \
    WHERE status IN ('queued', 'initiated', 'ringing', 'in-progress')";
