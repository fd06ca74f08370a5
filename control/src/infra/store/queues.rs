//! The queues table (the call queues accounts made) and the calls waiting in them, stored so
//! that several nodes hold a queue as one.

use super::{Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

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

/// A queue as stored, with what its departed calls waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredQueue {
    pub row: QueueRow,
    /// Milliseconds waited by the calls that left it, in all.
    pub waited_ms: i64,
    pub departed: i64,
}

/// A call waiting in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMemberRow {
    pub call: String,
    /// The node carrying it.
    pub node: String,
    /// Unix milliseconds.
    pub enqueued_at: i64,
}

const COLUMNS: &str =
    "sid, account_sid, friendly_name, max_size, created_at, updated_at, waited_ms, departed";

fn queue(r: &AnyRow) -> Result<StoredQueue, sqlx::Error> {
    Ok(StoredQueue {
        row: QueueRow {
            sid: r.try_get("sid")?,
            account_sid: r.try_get("account_sid")?,
            friendly_name: r.try_get("friendly_name")?,
            max_size: r.try_get::<i64, _>("max_size")?.clamp(0, u32::MAX.into()) as u32,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        },
        waited_ms: r.try_get("waited_ms")?,
        departed: r.try_get("departed")?,
    })
}

impl Store {
    /// The account's queues, oldest first.
    pub async fn queues_of(&self, account: &str) -> Result<Vec<StoredQueue>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM queues WHERE account_sid = $1 ORDER BY created_at, sid"
        )))
        .bind(account.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(queue).collect::<Result<_, _>>()?)
    }

    /// The account's queue `sid`, or named `name`.
    pub async fn queue_of(
        &self,
        account: &str,
        sid: Option<&str>,
        name: Option<&str>,
    ) -> Result<Option<StoredQueue>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM queues WHERE account_sid = $1 AND (sid = $2 OR friendly_name = $3)"
        )))
        .bind(account.to_owned())
        .bind(sid.unwrap_or_default().to_owned())
        .bind(name.map(str::to_owned))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(queue).transpose()?)
    }

    /// How many queues the account has.
    pub async fn queue_count(&self, account: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM queues WHERE account_sid = $1")
            .bind(account.to_owned())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Stores a new queue; `Ok(false)` when the account has one of that name already.
    pub async fn add_queue(&self, q: &QueueRow) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO queues (sid, account_sid, friendly_name, max_size, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_sid, friendly_name) DO NOTHING",
        )
        .bind(q.sid.clone())
        .bind(q.account_sid.clone())
        .bind(q.friendly_name.clone())
        .bind(i64::from(q.max_size))
        .bind(q.created_at)
        .bind(q.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(added.rows_affected() == 1)
    }

    /// Stores a queue's new name and size.
    pub async fn save_queue(&self, q: &QueueRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE queues SET friendly_name = $1, max_size = $2, updated_at = $3 WHERE sid = $4",
        )
        .bind(q.friendly_name.clone())
        .bind(i64::from(q.max_size))
        .bind(q.updated_at)
        .bind(q.sid.clone())
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

    /// The calls waiting in queue `sid`, the front first.
    pub async fn queue_members(&self, sid: &str) -> Result<Vec<QueueMemberRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT call_sid, node, enqueued_at FROM queue_members WHERE queue_sid = $1 \
             ORDER BY enqueued_at, call_sid",
        )
        .bind(sid.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueMemberRow {
                    call: r.try_get("call_sid")?,
                    node: r.try_get("node")?,
                    enqueued_at: r.try_get("enqueued_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Puts call `call` (carried by this node) at the end of queue `sid` if it holds fewer
    /// than `max` calls; whether it did.
    pub async fn add_queue_member(
        &self,
        sid: &str,
        call: &str,
        max: u32,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO queue_members (call_sid, queue_sid, node, enqueued_at) \
             SELECT $1, $2, $3, $4 WHERE (SELECT COUNT(*) FROM queue_members WHERE queue_sid = $2) < $5 \
             ON CONFLICT (call_sid) DO NOTHING",
        )
        .bind(call.to_owned())
        .bind(sid.to_owned())
        .bind(self.node.to_string())
        .bind(now_ms)
        .bind(i64::from(max))
        .execute(&self.pool)
        .await?;
        Ok(added.rows_affected() == 1)
    }

    /// Takes call `call` out of queue `sid`, counting its wait (to `now_ms`) in the queue's
    /// average; the member it was, if it was there (and nobody took it first).
    pub async fn remove_queue_member(
        &self,
        sid: &str,
        call: &str,
        now_ms: i64,
    ) -> Result<Option<QueueMemberRow>, StoreError> {
        let row = sqlx::query(
            "SELECT node, enqueued_at FROM queue_members WHERE call_sid = $1 AND queue_sid = $2",
        )
        .bind(call.to_owned())
        .bind(sid.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let member = QueueMemberRow {
            call: call.to_owned(),
            node: row.try_get("node")?,
            enqueued_at: row.try_get("enqueued_at")?,
        };
        let taken = sqlx::query("DELETE FROM queue_members WHERE call_sid = $1 AND queue_sid = $2")
            .bind(call.to_owned())
            .bind(sid.to_owned())
            .execute(&self.pool)
            .await?;
        if taken.rows_affected() != 1 {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE queues SET waited_ms = waited_ms + $1, departed = departed + 1 WHERE sid = $2",
        )
        .bind(now_ms.saturating_sub(member.enqueued_at).max(0))
        .bind(sid.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(Some(member))
    }

    /// At start-up: the calls this node's last run had waiting are gone with it.
    pub(super) async fn drop_own_queue_members(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM queue_members WHERE node = $1")
            .bind(self.node.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
