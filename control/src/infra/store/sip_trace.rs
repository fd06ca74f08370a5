//! The SIP ladder of calls: every message of calls' dialogs, in and out, kept for a while
//! (`sip.trace_retention_secs`) to show as a ladder and export as a pcap. A call's ladder is
//! the messages of its legs' dialogs, each found by its Call-ID and tags ([`Dialog`]): a
//! Call-ID alone is the caller's choice. Out-of-dialog chatter (OPTIONS keep-alives,
//! REGISTER, SUBSCRIBE, PUBLISH, MESSAGE) is not kept.
//!
//! Diagnostics, not records: they go through a bounded queue of their own, and are dropped
//! (and counted) when it is full or the database fails, so that they never hold back a CDR, a
//! webhook or a call.

use super::{SipTags, Store, StoreError};
use serde::Serialize;
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard_sip::message::headers::tag_of;
use switchboard_sip::transport::{Inbound, Transmit};
use tokio::sync::{mpsc, oneshot};

/// Messages waiting to be written, at most; more are dropped.
const QUEUE: usize = 16_384;
/// How long messages gather before they are written.
const GATHER: Duration = Duration::from_millis(250);
/// A message is kept up to this long (a larger one is cut: a ladder needs its start).
const MAX_MESSAGE: usize = 16 * 1024;
/// Messages of one call a ladder shows, at most.
pub const MAX_LADDER: i64 = 2000;

/// One message, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SipRow {
    pub sip_call_id: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The node's order of messages.
    pub seq: i64,
    /// Sent by Switchboard (else received).
    pub outbound: bool,
    pub transport: String,
    pub local: String,
    pub remote: String,
    pub message: String,
    /// The tags of its From and To, to tell its dialog from another of the same Call-ID.
    #[serde(skip)]
    pub from_tag: Option<String>,
    #[serde(skip)]
    pub to_tag: Option<String>,
}

/// A dialog whose messages a ladder shows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dialog {
    pub call_id: String,
    /// `None` takes every message of the Call-ID: calls recorded before tags were kept,
    /// shown to the operator only.
    pub tags: Option<(Option<String>, Option<String>)>,
}

impl Dialog {
    pub fn new(call_id: String, tags: &SipTags) -> Self {
        Self {
            call_id,
            tags: Some((tags.local.clone(), tags.remote.clone())),
        }
    }
}

/// What the capture sends its writer.
enum Item {
    Row(SipRow),
    /// Answered once everything queued before it is written.
    Sync(oneshot::Sender<()>),
}

/// The capture's end: cheap to clone, never blocks.
#[derive(Clone)]
pub struct SipTrace {
    tx: mpsc::Sender<Item>,
    seq: Arc<AtomicU64>,
}

impl std::fmt::Debug for SipTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SipTrace")
    }
}

impl SipTrace {
    /// Starts the writer; messages older than `retention` are deleted every minute.
    pub fn spawn(store: Store, retention: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, rx, retention));
        Self {
            tx,
            seq: Arc::default(),
        }
    }

    /// Returns once the messages captured before the call are written (or after a second
    /// and a half, when the writer is behind): a ladder read after it has them.
    pub async fn sync(&self) {
        let (done, wait) = oneshot::channel();
        let wrote = async {
            if self.tx.send(Item::Sync(done)).await.is_ok() {
                let _ = wait.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(1500), wrote).await;
    }

    /// A message received, if it is of a dialog.
    pub fn inbound(&self, msg: &Inbound, at: i64) {
        let headers = match &msg.message {
            switchboard_sip::message::SipMessage::Request(r) => &r.headers,
            switchboard_sip::message::SipMessage::Response(r) => &r.headers,
        };
        let (Some(call_id), Some(cseq)) = (headers.call_id(), headers.get("CSeq")) else {
            return;
        };
        if !of_dialog(cseq) {
            return;
        }
        let bytes = msg.message.encode();
        let tags = (headers.from_tag(), headers.to_tag());
        self.keep(call_id, tags, at, false, &msg.peer, &bytes);
    }

    /// A message sent, if it is of a dialog.
    pub fn outbound(&self, t: &Transmit, at: i64) {
        let (Some(call_id), Some(cseq)) =
            (header(&t.data, "call-id", "i"), header(&t.data, "cseq", ""))
        else {
            return;
        };
        if of_dialog(cseq) {
            let tag = |name, compact| header(&t.data, name, compact).and_then(tag_of);
            let tags = (tag("from", "f"), tag("to", "t"));
            self.keep(call_id, tags, at, true, &t.peer, &t.data);
        }
    }

    fn keep(
        &self,
        call_id: &str,
        (from_tag, to_tag): (Option<String>, Option<String>),
        at: i64,
        outbound: bool,
        peer: &switchboard_sip::transport::Peer,
        bytes: &[u8],
    ) {
        let message = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_MESSAGE)]).into_owned();
        let row = SipRow {
            sip_call_id: call_id.chars().take(256).collect(),
            at,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) as i64,
            outbound,
            transport: peer.transport.as_str().to_owned(),
            local: peer.local.to_string(),
            remote: peer.remote.to_string(),
            message,
            from_tag: from_tag.map(|t| t.chars().take(256).collect()),
            to_tag: to_tag.map(|t| t.chars().take(256).collect()),
        };
        if self.tx.try_send(Item::Row(row)).is_err() {
            metrics::counter!("switchboard_sip_trace_dropped_total").increment(1);
        }
    }
}

/// Whether a message with this CSeq value belongs to a call's dialogs (not a keep-alive, a
/// registration or a subscription of its own).
fn of_dialog(cseq: &str) -> bool {
    let method = cseq.split_whitespace().nth(1).unwrap_or_default();
    !["OPTIONS", "REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// The value of a header in a message's bytes, by its name or compact form, without parsing
/// the message (the capture sees every message sent).
fn header<'a>(data: &'a [u8], name: &str, compact: &str) -> Option<&'a str> {
    let head = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(data, |end| &data[..end]);
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || (!compact.is_empty() && n.eq_ignore_ascii_case(compact)))
            .then(|| v.trim())
    })
}

async fn write(store: Store, mut rx: mpsc::Receiver<Item>, retention: Duration) {
    let mut purge = tokio::time::interval(Duration::from_secs(60));
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => item,
                None => return,
            },
            _ = purge.tick() => {
                let keep = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                let before = crate::infra::clock::now_ms().saturating_sub(keep);
                if let Err(e) = store.purge_sip(before).await {
                    tracing::warn!(error = %e, "old SIP messages not deleted");
                }
                continue;
            }
        };
        let (mut rows, mut syncs) = (Vec::new(), Vec::new());
        let take = |item, rows: &mut Vec<SipRow>, syncs: &mut Vec<_>| match item {
            Item::Row(row) => rows.push(row),
            Item::Sync(done) => syncs.push(done),
        };
        take(first, &mut rows, &mut syncs);
        let deadline = tokio::time::Instant::now() + GATHER;
        // A reader waiting cuts the gathering short; one transaction takes 2,000 messages.
        while syncs.is_empty() && rows.len() < 2000 {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => take(item, &mut rows, &mut syncs),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if !rows.is_empty()
            && let Err(e) = store.write_sip(&rows).await
        {
            metrics::counter!("switchboard_sip_trace_dropped_total").increment(rows.len() as u64);
            tracing::warn!(error = %e, messages = rows.len(), "SIP messages not kept");
        }
        for done in syncs {
            let _ = done.send(());
        }
    }
}

macro_rules! sip_columns {
    () => {
        "sip_call_id, at, seq, outbound, transport, local_addr, remote_addr, message, from_tag, to_tag"
    };
}

impl Store {
    async fn write_sip(&self, rows: &[SipRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(super::upsert::ROWS_PER_STATEMENT) {
            let mut q = super::upsert::Upsert::new(
                self.postgres,
                "INSERT INTO sip_messages (sip_call_id, at, seq, outbound, transport, local_addr, remote_addr, message, node, from_tag, to_tag)",
                11,
                chunk.len(),
                "",
            );
            for r in chunk {
                q.bind(r.sip_call_id.clone())
                    .bind(r.at)
                    .bind(r.seq)
                    .bind(i64::from(r.outbound))
                    .bind(r.transport.clone())
                    .bind(r.local.clone())
                    .bind(r.remote.clone())
                    .bind(r.message.clone())
                    .bind(self.node.to_string())
                    .bind(r.from_tag.clone())
                    .bind(r.to_tag.clone());
            }
            q.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge_sip(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sip_messages WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The messages of these dialogs in the order they went, up to [`MAX_LADDER`]. A message
    /// is a dialog's when it carries our tag (in its From when we asked, in its To when the
    /// peer did), or, before we gave a tag, the peer's in its From with none in its To (the
    /// peer's INVITE, its CANCEL, our 100 Trying).
    pub async fn sip_messages(&self, dialogs: &[Dialog]) -> Result<Vec<SipRow>, StoreError> {
        let mut out = Vec::new();
        for dialog in dialogs {
            let rows = match &dialog.tags {
                None => {
                    sqlx::query(concat!(
                        "SELECT ",
                        sip_columns!(),
                        " FROM sip_messages WHERE sip_call_id = $1 ORDER BY at, seq LIMIT $2"
                    ))
                    .bind(&dialog.call_id)
                    .bind(MAX_LADDER)
                    .fetch_all(&self.pool)
                    .await?
                }
                Some((local, remote)) => {
                    sqlx::query(concat!(
                        "SELECT ",
                        sip_columns!(),
                        " FROM sip_messages WHERE sip_call_id = $1 \
                          AND (from_tag = $2 OR to_tag = $2 OR (to_tag IS NULL AND from_tag = $3)) \
                          ORDER BY at, seq LIMIT $4"
                    ))
                    .bind(&dialog.call_id)
                    .bind(local)
                    .bind(remote)
                    .bind(MAX_LADDER)
                    .fetch_all(&self.pool)
                    .await?
                }
            };
            for row in rows {
                out.push(SipRow {
                    sip_call_id: row.try_get("sip_call_id")?,
                    at: row.try_get("at")?,
                    seq: row.try_get("seq")?,
                    outbound: row.try_get::<i64, _>("outbound")? != 0,
                    transport: row.try_get("transport")?,
                    local: row.try_get("local_addr")?,
                    remote: row.try_get("remote_addr")?,
                    message: row.try_get("message")?,
                    from_tag: row.try_get("from_tag")?,
                    to_tag: row.try_get("to_tag")?,
                });
            }
        }
        // A message between two of our own dialogs (a call to ourselves) can be both's.
        out.sort_by_key(|r| (r.at, r.seq));
        out.dedup();
        out.truncate(MAX_LADDER as usize);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn headers_are_read_from_the_bytes_by_name_or_compact_form() {
        let msg = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x\r\ni: abc@h\r\nCSeq: 2 BYE\r\n\r\nCall-ID: body";
        assert_eq!(super::header(msg, "call-id", "i"), Some("abc@h"));
        assert_eq!(super::header(msg, "cseq", ""), Some("2 BYE"));
        assert_eq!(super::header(msg, "to", "t"), None);
        assert!(super::of_dialog("2 BYE"));
        assert!(super::of_dialog("1 INVITE"));
        assert!(!super::of_dialog("7 OPTIONS"));
        assert!(!super::of_dialog("1 register"));
    }
}
