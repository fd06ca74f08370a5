//! Writes leave the call core through a queue: snapshots of a call's row (at start, ringing,
//! answer and end), its events, and recording rows. One task applies them in batches: snapshots
//! of the same call (or recording) coalesce to the latest, and a batch becomes multi-row
//! upserts of a few rows each (prepared once: see `upsert`), so a burst of calls costs one
//! commit. A batch
//! is written at most `GATHER` after its first item arrives. Signalling never waits on the
//! database; a failed batch is retried until it lands, gathering later writes meanwhile, and
//! past [`HIGH_WATER`] rows held the call core refuses new calls. A row the database refuses
//! while it is up goes to a quarantine file rather than stopping every write after it.

use super::upsert::{ROWS_PER_STATEMENT, Upsert};
use super::{CallRecord, ConferenceRow, EventRow, HangupBy, RecordingRow, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long snapshots gather before a batch is written: CDRs land this late at most, and
/// under load a batch holds hundreds of calls (short calls' snapshots coalesce into one row).
/// A `sync` cuts the gathering short.
const GATHER: Duration = Duration::from_millis(100);
/// Writes one transaction takes at most.
const MAX_BATCH: u64 = 2048;

/// One write for the store.
#[derive(Debug)]
enum Item {
    Call(CallRecord),
    Event(EventRow),
    Recording(RecordingRow),
    Conference(ConferenceRow),
    /// Answered once everything queued before it is committed.
    Sync(oneshot::Sender<()>),
}

/// What one batch writes.
#[derive(Default)]
pub(super) struct Batch {
    calls: Vec<CallRecord>,
    events: Vec<EventRow>,
    recordings: Vec<RecordingRow>,
    conferences: Vec<ConferenceRow>,
    /// Where each call's, recording's and conference's latest snapshot is, by id.
    call_at: HashMap<String, usize>,
    recording_at: HashMap<String, usize>,
    conference_at: HashMap<String, usize>,
    items: u64,
    syncs: Vec<oneshot::Sender<()>>,
}

impl Batch {
    pub(super) fn of(recordings: Vec<RecordingRow>, events: Vec<EventRow>) -> Self {
        Self {
            recordings,
            events,
            ..Default::default()
        }
    }

    /// Rows held, after coalescing.
    fn rows(&self) -> u64 {
        (self.calls.len() + self.events.len() + self.recordings.len() + self.conferences.len())
            as u64
    }

    fn push(&mut self, item: Item) {
        self.items += 1;
        // The latest snapshot of a row wins; it keeps the place of the first.
        fn coalesce<T>(
            rows: &mut Vec<T>,
            position: &mut HashMap<String, usize>,
            key: String,
            row: T,
        ) {
            match position.get(&key) {
                Some(&i) => rows[i] = row,
                None => {
                    position.insert(key, rows.len());
                    rows.push(row);
                }
            }
        }
        match item {
            Item::Call(c) => coalesce(&mut self.calls, &mut self.call_at, c.id.clone(), c),
            Item::Recording(r) => coalesce(
                &mut self.recordings,
                &mut self.recording_at,
                r.id.clone(),
                r,
            ),
            Item::Conference(c) => coalesce(
                &mut self.conferences,
                &mut self.conference_at,
                c.sid.clone(),
                c,
            ),
            Item::Event(e) => self.events.push(e),
            Item::Sync(done) => {
                self.items -= 1;
                self.syncs.push(done);
            }
        }
    }
}

impl Store {
    /// Inserts or updates calls (and the legs of those that have them) in one transaction.
    pub async fn save(&self, calls: &[CallRecord]) -> Result<(), super::StoreError> {
        self.write(&Batch {
            calls: calls.to_vec(),
            ..Default::default()
        })
        .await
    }

    pub(super) async fn write(&self, batch: &Batch) -> Result<(), super::StoreError> {
        let calls = &batch.calls;
        let mut tx = self.pool.begin().await?;
        for chunk in calls.chunks(ROWS_PER_STATEMENT) {
            let mut q = Upsert::new(
                self.postgres,
                "INSERT INTO calls (id, from_number, to_number, from_uri, to_uri, trunk_in, user_in, trunk_out, user_out, \
                 direction, parent_id, status, sip_code, hangup_by, hangup_cause, sip_call_id, started_at, answered_at, ended_at, \
                 account_sid, node, sip_local_tag, sip_remote_tag)",
                23,
                chunk.len(),
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, sip_code = excluded.sip_code, \
                 hangup_by = excluded.hangup_by, hangup_cause = excluded.hangup_cause, trunk_out = excluded.trunk_out, \
                 user_out = excluded.user_out, answered_at = excluded.answered_at, ended_at = excluded.ended_at, \
                 account_sid = excluded.account_sid, sip_call_id = excluded.sip_call_id, \
                 sip_local_tag = excluded.sip_local_tag, sip_remote_tag = excluded.sip_remote_tag",
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
                    .bind(c.direction.as_str())
                    .bind(c.parent_id.clone())
                    .bind(c.status.as_str())
                    .bind(c.sip_code.map(i64::from))
                    .bind(c.hangup_by.map(HangupBy::as_str))
                    .bind(c.hangup_cause.clone())
                    .bind(c.sip_call_id.clone())
                    .bind(c.started_at)
                    .bind(c.answered_at)
                    .bind(c.ended_at)
                    .bind(c.account_sid.clone())
                    .bind(self.node.to_string())
                    .bind(c.sip_tags.local.clone())
                    .bind(c.sip_tags.remote.clone());
            }
            q.execute(&mut tx).await?;
        }
        let legs: Vec<_> = calls
            .iter()
            .flat_map(|c| c.legs.iter().map(move |l| (c.id.as_str(), l)))
            .collect();
        for chunk in legs.chunks(ROWS_PER_STATEMENT) {
            let mut q = Upsert::new(
                self.postgres,
                "INSERT INTO call_legs (call_id, leg, sip_call_id, remote_rtp, codec, packets_in, packets_out, \
                 bytes_in, bytes_out, lost, out_of_order, dropped, sip_local_tag, sip_remote_tag)",
                14,
                chunk.len(),
                "ON CONFLICT (call_id, leg) DO UPDATE SET packets_in = excluded.packets_in, packets_out = excluded.packets_out, \
                 bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, lost = excluded.lost, \
                 out_of_order = excluded.out_of_order, dropped = excluded.dropped, codec = excluded.codec, \
                 remote_rtp = excluded.remote_rtp, sip_call_id = excluded.sip_call_id, \
                 sip_local_tag = excluded.sip_local_tag, sip_remote_tag = excluded.sip_remote_tag",
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
                    .bind(l.dropped as i64)
                    .bind(l.sip_tags.local.clone())
                    .bind(l.sip_tags.remote.clone());
            }
            q.execute(&mut tx).await?;
        }
        for chunk in batch.events.chunks(ROWS_PER_STATEMENT) {
            let mut q = Upsert::new(
                self.postgres,
                "INSERT INTO call_events (call_id, seq, at, kind, detail)",
                5,
                chunk.len(),
                "ON CONFLICT (call_id, seq) DO NOTHING",
            );
            for e in chunk {
                q.bind(e.call_id.clone())
                    .bind(e.seq as i64)
                    .bind(e.at)
                    .bind(e.kind.clone())
                    .bind(e.detail.clone());
            }
            q.execute(&mut tx).await?;
        }
        for chunk in batch.recordings.chunks(ROWS_PER_STATEMENT) {
            let mut q = Upsert::new(
                self.postgres,
                "INSERT INTO recordings (id, call_id, leg, path, format, channels, duration_ms, size_bytes, status, started_at, ended_at, error, origin, node)",
                14,
                chunk.len(),
                "ON CONFLICT (id) DO UPDATE SET duration_ms = excluded.duration_ms, size_bytes = excluded.size_bytes, \
                 status = excluded.status, ended_at = excluded.ended_at, error = excluded.error",
            );
            for r in chunk {
                q.bind(r.id.clone())
                    .bind(r.call_id.clone())
                    .bind(r.leg.clone())
                    .bind(r.path.clone())
                    .bind(r.format.clone())
                    .bind(r.channels as i64)
                    .bind(r.duration_ms as i64)
                    .bind(r.size_bytes as i64)
                    .bind(r.status.clone())
                    .bind(r.started_at)
                    .bind(r.ended_at)
                    .bind(r.error.clone())
                    .bind(r.origin.clone())
                    .bind(self.node.to_string());
            }
            q.execute(&mut tx).await?;
        }
        for chunk in batch.conferences.chunks(ROWS_PER_STATEMENT) {
            let mut q = Upsert::new(
                self.postgres,
                "INSERT INTO conferences (sid, name, status, created_at, updated_at, reason_ended, ended_by, node)",
                8,
                chunk.len(),
                "ON CONFLICT (sid) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, \
                 reason_ended = excluded.reason_ended, ended_by = excluded.ended_by",
            );
            for c in chunk {
                q.bind(c.sid.clone())
                    .bind(c.name.clone())
                    .bind(c.status.clone())
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .bind(c.reason_ended.clone())
                    .bind(c.ended_by.clone())
                    .bind(self.node.to_string());
            }
            q.execute(&mut tx).await?;
            // An ended room has no home any more: its next caller, on any node, opens it anew.
            for c in chunk.iter().filter(|c| c.status == "completed") {
                sqlx::query("DELETE FROM room_homes WHERE sid = $1 AND node = $2")
                    .bind(c.sid.clone())
                    .bind(self.node.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A reader's handle on the writer queue: see [`StoreWriter::reader`].
#[derive(Clone)]
pub struct StoreReader {
    tx: mpsc::WeakUnboundedSender<Item>,
    backlog: Arc<AtomicU64>,
    held: Arc<Held>,
}

impl StoreReader {
    /// Returns once every write queued before the call is committed (at once when the writer
    /// has ended: nothing is left to wait for).
    pub async fn sync(&self) {
        if let Some(tx) = self.tx.upgrade() {
            sync(&tx, &self.backlog, &self.held).await;
        }
    }
}

async fn sync(tx: &mpsc::UnboundedSender<Item>, backlog: &AtomicU64, held: &Held) {
    if backlog.load(Ordering::Relaxed) == 0 {
        return;
    }
    let (done, wait) = oneshot::channel();
    held.queued.fetch_add(1, Ordering::Relaxed);
    if tx.send(Item::Sync(done)).is_ok() {
        held.sync_asked.notify_one();
        let _ = wait.await;
    }
}

/// Rows held (queued or gathered, not yet committed) past which the store is overloaded and
/// new calls are refused, so that a database outage costs calls, not memory or CDRs (the
/// default of `storage.max_rows_waiting`).
pub const HIGH_WATER: u64 = 65_536;

/// The call core's end of the store queue.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::UnboundedSender<Item>,
    backlog: Arc<AtomicU64>,
    held: Arc<Held>,
    high_water: u64,
}

/// What the writer holds in memory: items in the channel, rows in the batch it is writing.
#[derive(Default)]
struct Held {
    queued: AtomicU64,
    rows: AtomicU64,
    /// A reader waits in `sync`: the gathering ends at once.
    sync_asked: tokio::sync::Notify,
}

impl Held {
    fn get(&self) -> u64 {
        self.queued.load(Ordering::Relaxed) + self.rows.load(Ordering::Relaxed)
    }
}

impl StoreWriter {
    /// Starts the writer task; it ends after the last sender is dropped and the queue is written.
    /// A row the database keeps refusing while it answers other statements is appended to
    /// `quarantine` (JSON lines) instead of blocking every later write.
    pub fn spawn(store: Store, quarantine: Option<PathBuf>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicU64::new(0));
        let held = Arc::new(Held::default());
        let writer = Writer {
            store,
            rx,
            backlog: backlog.clone(),
            held: held.clone(),
            quarantine,
        };
        let task = tokio::spawn(writer.run());
        (
            Self {
                tx,
                backlog,
                held,
                high_water: HIGH_WATER,
            },
            task,
        )
    }

    /// Sets the rows held past which new calls are refused ([`HIGH_WATER`] by default).
    pub fn with_high_water(mut self, rows: u64) -> Self {
        self.high_water = rows;
        self
    }

    /// Queues the current state of a call's record.
    pub fn save(&self, record: CallRecord) {
        self.queue(Item::Call(record));
    }

    pub fn event(&self, event: EventRow) {
        self.queue(Item::Event(event));
    }

    /// Queues the current state of a recording's row.
    pub fn recording(&self, row: RecordingRow) {
        self.queue(Item::Recording(row));
    }

    pub fn conference(&self, row: ConferenceRow) {
        self.queue(Item::Conference(row));
    }

    fn queue(&self, item: Item) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        self.held.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(item).is_err() {
            tracing::error!("store writer stopped; a write was not queued");
        }
    }

    /// Returns once every write queued before the call is committed: reads after it see them.
    pub async fn sync(&self) {
        sync(&self.tx, &self.backlog, &self.held).await;
    }

    /// A handle that waits for queued writes as [`sync`](Self::sync) does without keeping
    /// the writer alive (the writer ends when its last `StoreWriter` is dropped; a reader
    /// that lives as long as the server must not hold one).
    pub fn reader(&self) -> StoreReader {
        StoreReader {
            tx: self.tx.downgrade(),
            backlog: self.backlog.clone(),
            held: self.held.clone(),
        }
    }

    /// Writes queued but not yet committed.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Rows waiting in memory (snapshots of one call coalesce while the database is away).
    pub fn held(&self) -> u64 {
        self.held.get()
    }

    /// True while more rows wait than the high-water mark: new calls are refused until it
    /// clears.
    pub fn overloaded(&self) -> bool {
        self.held() > self.high_water
    }
}

struct Writer {
    store: Store,
    rx: mpsc::UnboundedReceiver<Item>,
    backlog: Arc<AtomicU64>,
    held: Arc<Held>,
    quarantine: Option<PathBuf>,
}

impl Writer {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            self.held.queued.fetch_sub(1, Ordering::Relaxed);
            // Rows arriving within GATHER share one transaction; a reader waiting in `sync` (an
            // API answer that must see the call it created) ends the gathering at once.
            let mut batch = Batch::default();
            let awaited = matches!(first, Item::Sync(_));
            batch.push(first);
            // The rows gather in the channel, not taken one by one: a task that awaits each
            // row is woken for each (a thread wake-up per call snapshot, measured as the
            // store's largest cost at a few hundred calls a second). A full batch waiting
            // is taken at once.
            if !awaited && self.held.queued.load(Ordering::Relaxed) < MAX_BATCH {
                tokio::select! {
                    _ = self.held.sync_asked.notified() => {}
                    _ = tokio::time::sleep(GATHER) => {}
                }
            }
            self.take_waiting(&mut batch, MAX_BATCH);
            self.commit(&mut batch).await;
            self.backlog.fetch_sub(batch.items, Ordering::Relaxed);
            self.held.rows.store(0, Ordering::Relaxed);
            for done in batch.syncs.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Moves what is waiting in the channel into `batch`, up to `limit` items in all.
    fn take_waiting(&mut self, batch: &mut Batch, limit: u64) {
        while batch.items < limit {
            match self.rx.try_recv() {
                Ok(item) => {
                    self.held.queued.fetch_sub(1, Ordering::Relaxed);
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        self.held.rows.store(batch.rows(), Ordering::Relaxed);
    }

    /// Writes `batch`, however long the database is away. While it is, later writes join the
    /// batch (a call's snapshots coalesce, so memory follows calls, not snapshots). When the
    /// database answers but refuses the batch, the rows are written one by one and those it
    /// still refuses are quarantined.
    async fn commit(&mut self, batch: &mut Batch) {
        let mut delay = Duration::from_millis(100);
        loop {
            let Err(e) = self.store.write(batch).await else {
                return;
            };
            if self.refused(&e).await {
                tracing::error!(error = %e, "the database refuses a batch; writing its rows one by one");
                let taken = std::mem::take(batch);
                batch.items = taken.items;
                batch.syncs = self.write_each(taken).await;
                return;
            }
            tracing::error!(error = %e, calls = batch.calls.len(), "store write failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            self.take_waiting(batch, u64::MAX);
        }
    }

    /// Whether `e` is the database refusing the rows while it is up, as opposed to an outage
    /// that waiting cures.
    async fn refused(&self, e: &super::StoreError) -> bool {
        self.store.refuses_rows(e) && self.store.ping().await.is_ok()
    }

    /// Writes every row of `batch` in a transaction of its own; quarantines those refused.
    /// Returns the batch's syncs.
    async fn write_each(&mut self, batch: Batch) -> Vec<oneshot::Sender<()>> {
        let Batch {
            calls,
            events,
            recordings,
            conferences,
            syncs,
            ..
        } = batch;
        let singles = calls
            .into_iter()
            .map(|c| Batch {
                calls: vec![c],
                ..Default::default()
            })
            .chain(events.into_iter().map(|e| Batch {
                events: vec![e],
                ..Default::default()
            }))
            .chain(recordings.into_iter().map(|r| Batch {
                recordings: vec![r],
                ..Default::default()
            }))
            .chain(conferences.into_iter().map(|c| Batch {
                conferences: vec![c],
                ..Default::default()
            }));
        for single in singles {
            let mut delay = Duration::from_millis(100);
            loop {
                let Err(e) = self.store.write(&single).await else {
                    break;
                };
                if self.refused(&e).await {
                    self.quarantine(&single, &e.to_string()).await;
                    break;
                }
                // The database went away meanwhile: this row waits for it like any other.
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        syncs
    }

    async fn quarantine(&self, single: &Batch, error: &str) {
        metrics::counter!("switchboard_store_quarantined_total").increment(1);
        let line = serde_json::json!({
            "at": crate::infra::clock::now_ms(),
            "error": error,
            "calls": single.calls,
            "events": single.events,
            "recordings": single.recordings,
            "conferences": single.conferences,
        });
        let Some(path) = &self.quarantine else {
            tracing::error!(%error, row = %line, "the database refuses a row; it is not stored");
            return;
        };
        let written = async {
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            let mut bytes = line.to_string().into_bytes();
            bytes.push(b'\n');
            file.write_all(&bytes).await?;
            file.sync_data().await
        }
        .await;
        match written {
            Ok(()) => {
                tracing::error!(%error, path = %path.display(), "the database refuses a row; it is kept in the quarantine file")
            }
            Err(io) => {
                tracing::error!(%error, %io, row = %line, "the database refuses a row and the quarantine file cannot be written")
            }
        }
    }
}
