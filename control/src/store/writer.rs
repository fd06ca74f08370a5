//! CDR writes leave the call core through a queue as snapshots of the call's row (at start,
//! answer and end). One task applies them in batches: snapshots of the same call coalesce to the
//! latest, and a batch becomes one multi-row upsert into `calls` and one into `call_legs`, so a
//! burst of calls costs a handful of statements and one commit. A batch is written at most
//! [`GATHER`] after its first snapshot arrives. Signalling never waits on the
//! database; a failed batch is retried until it lands.

use super::upsert::Upsert;
use super::{CallRecord, HangupBy, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Rows per statement: 17 binds each stays far below SQLite's 32766-parameter limit.
const ROWS_PER_STATEMENT: usize = 400;

/// How long snapshots gather before a batch is written: CDRs land this late at most, and
/// under load a batch holds hundreds of calls (short calls' snapshots coalesce into one row).
const GATHER: Duration = Duration::from_millis(100);

impl Store {
    /// Inserts or updates calls (and the legs of those that have them) in one transaction.
    pub async fn save(&self, calls: &[CallRecord]) -> Result<(), super::StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in calls.chunks(ROWS_PER_STATEMENT) {
            let mut q = Upsert::new(
                "INSERT INTO calls (id, from_number, to_number, from_uri, to_uri, trunk_in, user_in, trunk_out, user_out, \
                 status, sip_code, hangup_by, hangup_cause, sip_call_id, started_at, answered_at, ended_at)",
                17,
                chunk.len(),
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, sip_code = excluded.sip_code, \
                 hangup_by = excluded.hangup_by, hangup_cause = excluded.hangup_cause, trunk_out = excluded.trunk_out, \
                 user_out = excluded.user_out, answered_at = excluded.answered_at, ended_at = excluded.ended_at",
            );
            for c in chunk {
                q.bind(c.id.clone())
                    .bind(c.from.clone())
                    .bind(c.to.clone())
                    .bind(c.from_uri.clone())
                    .bind(c.to_uri.clone())
                    .bind(c.trunk_in.clone())
                    .bind(c.user_in.clone())
                    .bind(c.trunk_out.clone())
                    .bind(c.user_out.clone())
                    .bind(c.status.as_str())
                    .bind(c.sip_code.map(i64::from))
                    .bind(c.hangup_by.map(HangupBy::as_str))
                    .bind(c.hangup_cause.clone())
                    .bind(c.sip_call_id.clone())
                    .bind(c.started_at)
                    .bind(c.answered_at)
                    .bind(c.ended_at);
            }
            q.execute(&mut tx).await?;
        }
        let legs: Vec<_> = calls
            .iter()
            .flat_map(|c| c.legs.iter().map(move |l| (c.id.as_str(), l)))
            .collect();
        for chunk in legs.chunks(ROWS_PER_STATEMENT) {
            let mut q = Upsert::new(
                "INSERT INTO call_legs (call_id, leg, sip_call_id, remote_rtp, codec, packets_in, packets_out, \
                 bytes_in, bytes_out, lost, out_of_order, dropped)",
                12,
                chunk.len(),
                "ON CONFLICT (call_id, leg) DO UPDATE SET packets_in = excluded.packets_in, packets_out = excluded.packets_out, \
                 bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, lost = excluded.lost, \
                 out_of_order = excluded.out_of_order, dropped = excluded.dropped, codec = excluded.codec, \
                 remote_rtp = excluded.remote_rtp",
            );
            for (id, l) in chunk {
                q.bind(id.to_string())
                    .bind(l.leg.clone())
                    .bind(l.sip_call_id.clone())
                    .bind(l.remote_rtp.clone())
                    .bind(l.codec.clone())
                    .bind(l.packets_in as i64)
                    .bind(l.packets_out as i64)
                    .bind(l.bytes_in as i64)
                    .bind(l.bytes_out as i64)
                    .bind(l.lost as i64)
                    .bind(l.out_of_order as i64)
                    .bind(l.dropped as i64);
            }
            q.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The call core's end of the CDR queue.
#[derive(Clone)]
pub struct CdrWriter {
    tx: mpsc::UnboundedSender<CallRecord>,
    backlog: Arc<AtomicU64>,
}

impl CdrWriter {
    /// Starts the writer task; it ends after the last sender is dropped and the queue is written.
    pub fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(write_loop(store, rx, backlog.clone()));
        (Self { tx, backlog }, task)
    }

    /// Queues the current state of a call's record.
    pub fn save(&self, record: CallRecord) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(record).is_err() {
            tracing::error!("CDR writer stopped; a record was not queued");
        }
    }

    /// Snapshots queued but not yet committed.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }
}

async fn write_loop(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<CallRecord>,
    backlog: Arc<AtomicU64>,
) {
    let mut queued = 0u64;
    let mut latest: Vec<CallRecord> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(GATHER).await;
        let mut next = Some(first);
        while let Some(record) = next.take().or_else(|| rx.try_recv().ok()) {
            queued += 1;
            // The latest snapshot of a call wins; it keeps the place of the first.
            match position.get(&record.id) {
                Some(&i) => latest[i] = record,
                None => {
                    position.insert(record.id.clone(), latest.len());
                    latest.push(record);
                }
            }
            if queued >= 2048 {
                break;
            }
        }
        let mut delay = Duration::from_millis(100);
        while let Err(e) = store.save(&latest).await {
            tracing::error!(error = %e, calls = latest.len(), "CDR write failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        backlog.fetch_sub(queued, Ordering::Relaxed);
        queued = 0;
        latest.clear();
        position.clear();
    }
}
