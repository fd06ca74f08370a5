//! Durable state behind one interface: sqlx `Any` over SQLite (the embedded default, a file
//! under the data directory) or PostgreSQL (several nodes sharing state). The migrations in
//! `control/migrations` are portable SQL and run on either.

mod account_limits;
mod api_keys;
mod cdr;
pub mod changes;
mod conferences;
mod connections;
mod nodes;
mod notifications;
mod number_orders;
mod outbound_voice_profiles;
pub mod sip_directory;
pub use outbound_voice_profiles::MAX_PROFILES as MAX_OUTBOUND_PROFILES;
mod numbers;
mod operator_additions;
mod outbox;
mod queues;
mod recordings;
mod rooms;
pub mod sip_trace;
mod subaccounts;
mod subscriptions;
mod telephony_credentials;
mod transcriptions;
mod upsert;
mod verified_caller_ids;
pub mod writer;

pub use api_keys::ApiKeyRow;
pub use cdr::{CallRecord, CallStatus, Direction, HangupBy, LegRecord, SipTags, format_ms};
pub use conferences::ConferenceRow;
pub use connections::ConnectionRow;
pub use nodes::DEFAULT_DEAD_AFTER_MS;
pub use notifications::NotificationRow;
pub use numbers::PhoneNumberRow;
pub use operator_additions::{AuditRow, Named};
pub use outbox::{Attempt, OutboxRow};
pub use queues::{QueueMemberRow, QueueRow, StoredQueue};
pub use recordings::{EventRow, RecordingRow};
pub use rooms::RoomHome;
pub use subaccounts::SubaccountRow;
pub use subscriptions::{Advance, SubscriptionRow};
pub use telephony_credentials::TelephonyCredentialRow;
pub use transcriptions::TranscriptionRow;
pub use verified_caller_ids::VerifiedCallerIdRow;
pub use writer::{StoreReader, StoreWriter};

use sqlx::any::{AnyPoolOptions, AnyRow};

/// Reading one of the rows the call core fills from the database: the row types are the
/// core's (`switchboard_core::rows`), their decoding is the store's.
trait FromRow: Sized {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error>;
}
use sqlx::{AnyPool, Executor, Row};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// This node's id: stamped on its calls and recordings, and on its claims of webhooks.
    node: std::sync::Arc<str>,
    /// Where the other nodes reach this node's API (beaten with its heartbeat).
    node_url: std::sync::Arc<str>,
    /// A node not seen for this long (ms) is taken for dead.
    dead_after_ms: i64,
    /// What it was opened with (PostgreSQL: the change listener connects with it). Holds the
    /// password: never shown.
    url: std::sync::Arc<str>,
    /// PostgreSQL (several nodes may share it) rather than SQLite.
    postgres: bool,
}

/// Filters of an account's call list (Twilio's `To`, `From`, `Status`, `ParentCallSid`,
/// `StartTime…`, `EndTime…`).
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub to: Option<String>,
    pub from: Option<String>,
    pub status: Option<String>,
    pub parent: Option<String>,
    /// Started at or after / before these Unix milliseconds.
    pub started_from: Option<i64>,
    pub started_before: Option<i64>,
    /// Ended at or after / before these Unix milliseconds.
    pub ended_from: Option<i64>,
    pub ended_before: Option<i64>,
}

impl Store {
    /// Whether the database answers at all (to tell an outage from a refused row).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// True when `e` is the database refusing the data itself (a constraint, a value out of
    /// range, a string PostgreSQL cannot hold), which retrying cannot cure; false for an
    /// outage, a timeout, a lock or a serialization conflict.
    pub fn refuses_rows(&self, e: &StoreError) -> bool {
        let StoreError::Sql(sqlx::Error::Database(db)) = e else {
            return false;
        };
        let Some(code) = db.code() else {
            return false;
        };
        if self.postgres {
            // SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation).
            code.starts_with("22") || code.starts_with("23")
        } else {
            // SQLite's primary result code under the extended one: TOOBIG, CONSTRAINT,
            // MISMATCH, RANGE.
            code.parse::<i32>()
                .is_ok_and(|c| matches!(c & 0xff, 18 | 19 | 20 | 25))
        }
    }

    /// Opens (creating a SQLite file and its directory if needed) and migrates the database.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, sqlite) = normalize_url(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets `calls list` read while the server writes; NORMAL is durable
                        // across process crashes, which is what a CDR needs.
                        conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            node: "".into(),
            node_url: "".into(),
            dead_after_ms: DEFAULT_DEAD_AFTER_MS,
            url: url.into(),
            postgres: !sqlite,
        })
    }

    /// Calls, newest first.
    pub async fn list_calls(&self, limit: i64) -> Result<Vec<CallRecord>, StoreError> {
        let rows = sqlx::query(cdr::SELECT_CALLS)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut calls: Vec<CallRecord> = rows
            .iter()
            .map(CallRecord::from_row)
            .collect::<Result<_, _>>()?;
        for call in &mut calls {
            call.legs = self.legs(&call.id).await?;
        }
        Ok(calls)
    }

    /// An account's calls, newest first, filtered; `offset` and `limit` page through them.
    pub async fn account_calls(
        &self,
        account: &str,
        filter: &CallFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        // The legs of visits between nodes or call-core shards are how the node carries a
        // call of the account (listed itself), not calls of its own.
        let mut sql = format!(
            "SELECT {} FROM calls WHERE account_sid = $1 AND to_number <> $2",
            cdr::CALL_COLUMNS
        );
        let mut binds: Vec<String> = vec![account.to_owned(), crate::call::visit::USER.to_owned()];
        for (column, value) in [
            ("to_number", &filter.to),
            ("from_number", &filter.from),
            ("status", &filter.status),
            ("parent_id", &filter.parent),
        ] {
            if let Some(v) = value {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        let mut times: Vec<i64> = Vec::new();
        for (condition, value) in [
            ("started_at >=", filter.started_from),
            ("started_at <", filter.started_before),
            ("ended_at >=", filter.ended_from),
            ("ended_at <", filter.ended_before),
        ] {
            if let Some(v) = value {
                times.push(v);
                sql.push_str(&format!(" AND {condition} ${}", binds.len() + times.len()));
            }
        }
        let n = binds.len() + times.len();
        sql.push_str(&format!(
            " ORDER BY started_at DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        ));
        // Only fixed column names and placeholders are spliced in; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        for t in times {
            q = q.bind(t);
        }
        let rows = q.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(CallRecord::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Removes a call's record (its legs and events go with it).
    pub async fn delete_call(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["call_legs", "call_events", "call_subscriptions"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE call_id = $1"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM calls WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let row = sqlx::query(cdr::SELECT_CALL)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut call = CallRecord::from_row(&row)?;
        call.legs = self.legs(id).await?;
        Ok(Some(call))
    }

    async fn legs(&self, call_id: &str) -> Result<Vec<LegRecord>, StoreError> {
        let rows: Vec<AnyRow> = sqlx::query(cdr::SELECT_LEGS)
            .bind(call_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(LegRecord::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// A call's events in order.
    pub async fn call_events(&self, call_id: &str) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query("SELECT call_id, seq, at, kind, detail FROM call_events WHERE call_id = $1 ORDER BY seq")
            .bind(call_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(EventRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// A call's recordings, oldest first.
    pub async fn recordings_of(&self, call_id: &str) -> Result<Vec<RecordingRow>, StoreError> {
        self.recordings_where("call_id = $1", Some(call_id)).await
    }

    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRow>, StoreError> {
        Ok(self.recordings_where("id = $1", Some(id)).await?.pop())
    }

    /// An account's call recordings, newest first (of one call when `call` is given).
    pub async fn account_recordings(
        &self,
        account: &str,
        call: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        // The account's calls', and its conferences' (a room is named `{account}:{room}`;
        // matched with substr, not LIKE, so that no wildcard in it widens the match).
        let mut sql = format!(
            "SELECT {} FROM recordings WHERE (call_id IN (SELECT id FROM calls WHERE account_sid = $1) \
             OR call_id IN (SELECT sid FROM conferences WHERE substr(name, 1, CAST($2 AS INTEGER)) = $3))",
            recordings::COLUMNS
        );
        if call.is_some() {
            sql.push_str(" AND call_id = $4");
        }
        let n = if call.is_some() { 5 } else { 4 };
        sql.push_str(&format!(
            " ORDER BY started_at DESC, id DESC LIMIT ${n} OFFSET ${}",
            n + 1
        ));
        // Fixed SQL around bound values.
        let prefix = format!("{account}:");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account.to_owned())
            .bind(prefix.chars().count() as i64)
            .bind(prefix);
        if let Some(c) = call {
            q = q.bind(c.to_owned());
        }
        let rows = q.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(RecordingRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn delete_recording(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM recordings WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Recordings a crash left unfinished (in progress or paused).
    /// Only this node's: the files are on its disk.
    pub async fn unfinished_recordings(&self) -> Result<Vec<RecordingRow>, StoreError> {
        self.recordings_where(
            "status IN ('in-progress', 'paused') AND node IN ($1, '')",
            Some(&self.node.clone()),
        )
        .await
    }

    /// Recordings matching `condition` (constant SQL, with `$1` bound to `bind` if given).
    async fn recordings_where(
        &self,
        condition: &'static str,
        bind: Option<&str>,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM recordings WHERE {condition} ORDER BY started_at, id",
            recordings::COLUMNS
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(value) = bind {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(RecordingRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// The sequence number a new event of `call_id` takes.
    pub async fn next_event_seq(&self, call_id: &str) -> Result<u32, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM call_events WHERE call_id = $1",
        )
        .bind(call_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("next")? as u32)
    }

    /// Stores a recording completed after a restart, with its event, in one transaction.
    pub async fn save_recovered(
        &self,
        row: &RecordingRow,
        event: &EventRow,
    ) -> Result<(), StoreError> {
        let batch = writer::Batch::of(vec![row.clone()], vec![event.clone()]);
        self.write(&batch).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Adds `mode=rwc` to SQLite URLs and creates the file's directory; checks the scheme.
fn normalize_url(url: &str) -> Result<(String, bool), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_owned(), false));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(StoreError::BadUrl(url.to_owned()));
    };
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(StoreError::BadUrl(url.to_owned()));
    }
    if path != ":memory:"
        && let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let url = if rest.contains("mode=") {
        url.to_owned()
    } else if rest.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    Ok((url, true))
}

fn opt_u16(row: &AnyRow, col: &str) -> Result<Option<u16>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(|v| v as u16))
}

#[cfg(test)]
mod tests;
