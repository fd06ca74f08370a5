//! CDR writes leave the call core through a queue and are applied by one task in batched
//! transactions, so signalling never waits on the database and a burst of call ends costs one
//! commit. A failed batch is retried until it lands; nothing is dropped.

use super::{CallRecord, CallStatus, HangupBy, LegRecord, Store};
use sqlx::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One change to the CDR tables.
#[derive(Debug, Clone)]
pub enum CdrOp {
    /// A new call (its legs are written when it ends).
    Start(Box<CallRecord>),
    Answered {
        id: String,
        at: i64,
    },
    Ended {
        id: String,
        status: CallStatus,
        sip_code: Option<u16>,
        hangup_by: HangupBy,
        hangup_cause: Option<String>,
        ended_at: i64,
        legs: Vec<LegRecord>,
    },
}

impl CdrOp {
    pub(super) async fn execute(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
    ) -> Result<(), sqlx::Error> {
        match self {
            CdrOp::Start(c) => {
                sqlx::query(
                    "INSERT INTO calls (id, from_number, to_number, from_uri, to_uri, trunk_in, user_in, trunk_out, user_out, \
                     status, sip_code, hangup_by, hangup_cause, sip_call_id, started_at, answered_at, ended_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                )
                .bind(&c.id)
                .bind(&c.from)
                .bind(&c.to)
                .bind(&c.from_uri)
                .bind(&c.to_uri)
                .bind(&c.trunk_in)
                .bind(&c.user_in)
                .bind(&c.trunk_out)
                .bind(&c.user_out)
                .bind(c.status.as_str())
                .bind(c.sip_code.map(i64::from))
                .bind(c.hangup_by.map(HangupBy::as_str))
                .bind(&c.hangup_cause)
                .bind(&c.sip_call_id)
                .bind(c.started_at)
                .bind(c.answered_at)
                .bind(c.ended_at)
                .execute(&mut **tx)
                .await?;
            }
            CdrOp::Answered { id, at } => {
                sqlx::query("UPDATE calls SET answered_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
            CdrOp::Ended {
                id,
                status,
                sip_code,
                hangup_by,
                hangup_cause,
                ended_at,
                legs,
            } => {
                sqlx::query(
                    "UPDATE calls SET status = $1, sip_code = $2, hangup_by = $3, hangup_cause = $4, ended_at = $5 WHERE id = $6",
                )
                .bind(status.as_str())
                .bind(sip_code.map(i64::from))
                .bind(hangup_by.as_str())
                .bind(hangup_cause)
                .bind(ended_at)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                for leg in legs {
                    sqlx::query(
                        "INSERT INTO call_legs (call_id, leg, sip_call_id, remote_rtp, codec, packets_in, packets_out, \
                         bytes_in, bytes_out, lost, out_of_order, dropped) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(id)
                    .bind(&leg.leg)
                    .bind(&leg.sip_call_id)
                    .bind(&leg.remote_rtp)
                    .bind(&leg.codec)
                    .bind(leg.packets_in as i64)
                    .bind(leg.packets_out as i64)
                    .bind(leg.bytes_in as i64)
                    .bind(leg.bytes_out as i64)
                    .bind(leg.lost as i64)
                    .bind(leg.out_of_order as i64)
                    .bind(leg.dropped as i64)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// The call core's end of the CDR queue.
#[derive(Clone)]
pub struct CdrWriter {
    tx: mpsc::UnboundedSender<CdrOp>,
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

    pub fn send(&self, op: CdrOp) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(op).is_err() {
            tracing::error!("CDR writer stopped; a record was not queued");
        }
    }

    /// Operations queued but not yet committed.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }
}

async fn write_loop(store: Store, mut rx: mpsc::UnboundedReceiver<CdrOp>, backlog: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(256);
    while let Some(op) = rx.recv().await {
        batch.push(op);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match store.apply(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, ops = batch.len(), "CDR write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        backlog.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }
}
