//! The durable webhook outbox: a webhook is written to the store before its first attempt, then
//! delivered by one task in order per call (a call's next webhook waits for the one before it),
//! signed at send time with the account's current keys, and retried with exponential backoff
//! until it is delivered or an hour has passed. Pending webhooks are picked up again after a
//! restart.

use super::client::WebhookClient;
use crate::accounts::{Directory, HttpMethod};
use crate::store::{Attempt, OutboxRow, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Undelivered webhooks older than this are given up.
const EXPIRY_MS: i64 = 60 * 60 * 1000;
/// Retries wait 1 s, 2 s, 4 s … up to this.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// Pending webhooks read per round.
const BATCH: i64 = 500;

pub struct Outbox {
    store: Store,
    client: WebhookClient,
    directory: Arc<Directory>,
    seq: AtomicI64,
    wake: Notify,
}

impl Outbox {
    /// The outbox over `store`; call [`Outbox::spawn`] to start delivering.
    pub async fn open(
        store: Store,
        client: WebhookClient,
        directory: Arc<Directory>,
    ) -> Result<Arc<Self>, crate::store::StoreError> {
        let seq = store.outbox_max_seq().await?;
        Ok(Arc::new(Self {
            store,
            client,
            directory,
            seq: AtomicI64::new(seq),
            wake: Notify::new(),
        }))
    }

    /// Queues a webhook of `call` durably; it is delivered after the call's earlier ones.
    pub async fn send(
        &self,
        account: &str,
        call: &str,
        url: &str,
        method: HttpMethod,
        params: Vec<(String, String)>,
    ) {
        let now = crate::call::now_ms();
        let row = OutboxRow {
            id: crate::accounts::new_sid("WH"),
            call_id: call.to_owned(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            account_sid: account.to_owned(),
            url: url.to_owned(),
            method: match method {
                HttpMethod::Get => "GET",
                HttpMethod::Post => "POST",
            }
            .to_owned(),
            params,
            created_at: now,
            next_attempt_at: now,
            attempts: 0,
        };
        if let Err(e) = self.store.outbox_add(&row).await {
            warn!(error = %e, url = %crate::secret::redact_url(url), "cannot queue a webhook");
            return;
        }
        self.wake.notify_one();
    }

    /// Delivers until the process ends.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let outbox = self.clone();
        tokio::spawn(async move {
            loop {
                let wait = outbox.round().await;
                tokio::select! {
                    _ = outbox.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    /// One pass: each call's first pending webhook that is due is attempted (calls in
    /// parallel). Returns how long to sleep before the next pass.
    async fn round(self: &Arc<Self>) -> Duration {
        let pending = match self.store.outbox_pending(BATCH).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "cannot read the webhook outbox");
                return Duration::from_secs(1);
            }
        };
        let now = crate::call::now_ms();
        let mut heads = HashSet::new();
        let mut attempts = tokio::task::JoinSet::new();
        let mut next_due: Option<i64> = None;
        for row in pending {
            // Only the first pending webhook of a call may go; the rest wait their turn.
            if !heads.insert(row.call_id.clone()) {
                continue;
            }
            if row.next_attempt_at > now {
                next_due =
                    Some(next_due.map_or(row.next_attempt_at, |d| d.min(row.next_attempt_at)));
                continue;
            }
            let outbox = self.clone();
            attempts.spawn(async move { outbox.attempt(row).await });
        }
        let attempted = !attempts.is_empty();
        while attempts.join_next().await.is_some() {}
        if attempted {
            // Delivered heads may have successors waiting.
            return Duration::ZERO;
        }
        let wait = next_due.map_or(60_000, |d| (d - crate::call::now_ms()).max(0));
        Duration::from_millis(wait as u64)
    }

    async fn attempt(&self, row: OutboxRow) {
        let attempts = row.attempts + 1;
        let now = crate::call::now_ms();
        let outcome = match self.directory.account(&row.account_sid) {
            None => Attempt::Expired {
                error: format!("no account {}", row.account_sid),
            },
            Some(account) => {
                let method = HttpMethod::parse(&row.method).unwrap_or_default();
                match self
                    .client
                    .request(account, &row.url, method, &row.params)
                    .await
                {
                    Ok(_) => Attempt::Delivered,
                    Err(e) if now - row.created_at >= EXPIRY_MS => Attempt::Expired {
                        error: e.to_string(),
                    },
                    Err(e) => {
                        let backoff = (1000i64 << (attempts - 1).min(20)).min(MAX_BACKOFF_MS);
                        Attempt::Retry {
                            at: now + backoff,
                            error: e.to_string(),
                        }
                    }
                }
            }
        };
        match &outcome {
            Attempt::Delivered => debug!(url = %row.url, attempts, "webhook delivered"),
            Attempt::Retry { error, .. } => {
                warn!(url = %row.url, attempts, %error, "webhook failed; will retry")
            }
            Attempt::Expired { error } => {
                warn!(url = %row.url, attempts, %error, "webhook given up")
            }
        }
        if let Err(e) = self
            .store
            .outbox_attempted(&row.id, attempts, outcome, now)
            .await
        {
            warn!(error = %e, "cannot record a webhook attempt");
        }
    }
}
