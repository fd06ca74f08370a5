//! The durable webhook outbox: a webhook is written to the store before its first attempt, then
//! delivered in order per call (a call's next webhook waits for the one before it), signed at
//! send time with the account's current keys, and retried with exponential backoff until it is
//! delivered or given up. Every attempt carries the same idempotency token, so a receiver can
//! tell a retry from a new event.
//!
//! Rows are claimed for a lease before they are attempted, so nodes sharing a database never
//! send one webhook at once, and a node that dies mid-attempt leaves a claim that runs out.
//! Only due rows are read. Attempts run independently, at most [`PER_ENDPOINT`] at a time to
//! one endpoint: an endpoint that is down or slow holds only its own webhooks back, never other
//! calls' or other accounts'.

use super::client::{WebhookClient, idempotency_token};
use super::request::WebhookRequest;
use crate::infra::accounts::Directory;
use crate::infra::store::{Attempt, OutboxRow, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// A claim outlives the longest attempt (the client's timeout is 15 s).
const LEASE_MS: i64 = 60 * 1000;
/// Attempts in flight at once, over all endpoints.
const MAX_IN_FLIGHT: usize = 512;
/// Attempts in flight at once to one endpoint (scheme, host and port): an application 100 ms
/// away still takes about 300 webhooks a second, and one that hangs holds no more than this.
pub const PER_ENDPOINT: usize = 32;
/// A webhook whose endpoint has all its attempts in flight is tried again this much later.
const ENDPOINT_BUSY_MS: i64 = 1000;
/// With nothing due, the outbox still looks this often (rows another node wrote).
const IDLE_POLL: Duration = Duration::from_secs(10);
/// Webhooks held in memory while the store cannot take them (see [`Outbox::send`]).
const MAX_WAITING: usize = 65_536;

/// How long failed webhooks are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries wait 1 s, 2 s, 4 s … up to this.
    pub max_backoff: Duration,
    /// A webhook still failing this long after it was queued is given up.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_backoff: Duration::from_secs(5 * 60),
            give_up_after: Duration::from_secs(60 * 60),
        }
    }
}

pub struct Outbox {
    store: Store,
    client: WebhookClient,
    directory: Arc<Directory>,
    policy: RetryPolicy,
    seq: AtomicI64,
    wake: Notify,
    /// Set by [`Outbox::stop`]: the delivery loop ends after its current pass.
    stopping: std::sync::atomic::AtomicBool,
    flight: Mutex<Flight>,
    attempts: TaskTracker,
    /// Webhooks the store could not take yet, oldest first, and the lock held while they are
    /// written (one writer at a time keeps them in order).
    waiting: Mutex<std::collections::VecDeque<OutboxRow>>,
    writing: tokio::sync::Mutex<()>,
}

/// Attempts in flight, in all and per endpoint.
#[derive(Default)]
struct Flight {
    total: usize,
    per_endpoint: HashMap<String, usize>,
}

impl Flight {
    fn take(&mut self, endpoint: &str) -> bool {
        let n = self.per_endpoint.entry(endpoint.to_owned()).or_default();
        if *n >= PER_ENDPOINT {
            return false;
        }
        *n += 1;
        self.total += 1;
        true
    }

    fn release(&mut self, endpoint: &str) {
        self.total -= 1;
        if let Some(n) = self.per_endpoint.get_mut(endpoint) {
            *n -= 1;
            if *n == 0 {
                self.per_endpoint.remove(endpoint);
            }
        }
    }
}

/// Where a webhook goes, for the per-endpoint limit.
fn endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_owned(),
    }
}

impl Outbox {
    /// The outbox over `store`; call [`Outbox::spawn`] to start delivering.
    pub async fn open(
        store: Store,
        client: WebhookClient,
        directory: Arc<Directory>,
        policy: RetryPolicy,
    ) -> Result<Arc<Self>, crate::infra::store::StoreError> {
        let seq = store.outbox_max_seq().await?;
        Ok(Arc::new(Self {
            store,
            client,
            directory,
            policy,
            seq: AtomicI64::new(seq),
            wake: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            flight: Mutex::new(Flight::default()),
            attempts: TaskTracker::new(),
            waiting: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
        }))
    }

    /// Queues a webhook of `call` durably; it is delivered after the call's earlier ones. If the
    /// store cannot take it now (the database is away), it waits in memory, behind any others
    /// waiting, and is written as soon as the store answers (the delivery loop tries each
    /// pass); past `MAX_WAITING` held webhooks the oldest is dropped, counted.
    pub async fn send(&self, account: &str, call: &str, request: WebhookRequest) {
        let now = crate::infra::clock::now_ms();
        let row = OutboxRow {
            id: crate::infra::sid::new_sid("WH"),
            call_id: call.to_owned(),
            seq: self.next_seq(),
            account_sid: account.to_owned(),
            request,
            created_at: now,
            next_attempt_at: now,
            attempts: 0,
        };
        {
            let mut waiting = self.waiting.lock().expect("not poisoned");
            if waiting.len() >= MAX_WAITING {
                waiting.pop_front();
                metrics::counter!("switchboard_webhooks_dropped_total").increment(1);
                warn!("webhooks wait for the database past the bound; the oldest is dropped");
            }
            waiting.push_back(row);
        }
        self.write_waiting().await;
        self.wake.notify_one();
    }

    /// Writes the webhooks waiting for the store, in order, until it fails.
    async fn write_waiting(&self) {
        let _one_writer = self.writing.lock().await;
        loop {
            let Some(row) = self.waiting.lock().expect("not poisoned").front().cloned() else {
                return;
            };
            if let Err(e) = self.store.outbox_add(&row).await {
                let url = crate::infra::secret::redact_url(&row.request.url);
                warn!(error = %e, %url, "cannot queue a webhook yet; it waits in memory");
                return;
            }
            let mut waiting = self.waiting.lock().expect("not poisoned");
            if waiting.front().is_some_and(|w| w.id == row.id) {
                waiting.pop_front();
            }
        }
    }

    /// The position of a new webhook among all webhooks (a call's go in this order).
    pub fn next_seq(&self) -> i64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Numbers new webhooks after `seq` (one another node queued).
    pub fn number_after(&self, seq: i64) {
        self.seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Looks for due webhooks now (one was added behind [`Outbox::send`]'s back).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers until [`Outbox::stop`].
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let outbox = self.clone();
        tokio::spawn(async move {
            while !outbox.stopping.load(Ordering::Acquire) {
                let wait = outbox.round().await;
                if outbox.stopping.load(Ordering::Acquire) {
                    break;
                }
                tokio::select! {
                    _ = outbox.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    /// Ends the delivery loop after its current pass; await its task before [`Outbox::finish`].
    /// (Aborting the task instead raced: a pass running on another worker could start an
    /// attempt after `finish` had seen no attempt in flight, and the store then closed under
    /// it — the webhook was delivered but not recorded, and sent again after the restart.)
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits up to `grace` for the attempts in flight (the loop has ended), so that their
    /// outcomes are recorded before the store closes.
    pub async fn finish(&self, grace: Duration) {
        self.attempts.close();
        let _ = tokio::time::timeout(grace, self.attempts.wait()).await;
    }

    /// One pass: claims the due webhooks there is room for and starts their attempts. Returns
    /// how long to sleep (a finished attempt or a new webhook wakes the loop sooner).
    async fn round(self: &Arc<Self>) -> Duration {
        self.write_waiting().await;
        let free = MAX_IN_FLIGHT - self.flight.lock().expect("not poisoned").total;
        if free == 0 {
            return IDLE_POLL;
        }
        let now = crate::infra::clock::now_ms();
        let claimed = match self.store.outbox_claim(now, LEASE_MS, free as i64).await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot read the webhook outbox");
                return Duration::from_secs(1);
            }
        };
        let full = claimed.len() == free;
        for row in claimed {
            let endpoint = endpoint(&row.request.url);
            if !self.flight.lock().expect("not poisoned").take(&endpoint) {
                if let Err(e) = self
                    .store
                    .outbox_defer(&row.id, now + ENDPOINT_BUSY_MS)
                    .await
                {
                    warn!(error = %e, "cannot defer a webhook");
                }
                continue;
            }
            let outbox = self.clone();
            self.attempts.spawn(async move {
                outbox.attempt(row).await;
                outbox
                    .flight
                    .lock()
                    .expect("not poisoned")
                    .release(&endpoint);
                outbox.wake.notify_one();
            });
        }
        if full {
            return Duration::ZERO;
        }
        match self.store.outbox_next_due().await {
            Ok(Some(due)) => Duration::from_millis(
                (due - crate::infra::clock::now_ms()).clamp(0, IDLE_POLL.as_millis() as i64) as u64,
            ),
            Ok(None) => IDLE_POLL,
            Err(e) => {
                warn!(error = %e, "cannot read the webhook outbox");
                Duration::from_secs(1)
            }
        }
    }

    async fn attempt(&self, row: OutboxRow) {
        let attempts = row.attempts + 1;
        let now = crate::infra::clock::now_ms();
        let outcome = match self.directory.account(&row.account_sid) {
            None => Attempt::Expired {
                error: format!("no account {}", row.account_sid),
            },
            Some(account) => {
                let token = idempotency_token(&row.id);
                let attempt = u32::try_from(attempts).unwrap_or(u32::MAX);
                let mut sent = self
                    .client
                    .send(&account, &row.request, &token, attempt)
                    .await;
                if let (Err(e), Some(failover)) = (&sent, &row.request.failover_url) {
                    // Telnyx's failover: the same attempt goes to the failover URL at once.
                    let url = crate::infra::secret::redact_url(&row.request.url);
                    debug!(%url, error = %e, "webhook failed; trying its failover URL");
                    let request = WebhookRequest {
                        url: failover.clone(),
                        ..row.request.clone()
                    };
                    sent = self.client.send(&account, &request, &token, attempt).await;
                }
                match sent {
                    Ok(_) => Attempt::Delivered,
                    Err(e)
                        if now - row.created_at >= self.policy.give_up_after.as_millis() as i64 =>
                    {
                        Attempt::Expired {
                            error: e.to_string(),
                        }
                    }
                    Err(e) => {
                        let backoff = (1000i64 << (attempts - 1).clamp(0, 20))
                            .min(self.policy.max_backoff.as_millis() as i64);
                        Attempt::Retry {
                            at: now + backoff,
                            error: e.to_string(),
                        }
                    }
                }
            }
        };
        let label = match &outcome {
            Attempt::Delivered => "delivered",
            Attempt::Retry { .. } => "failed",
            Attempt::Expired { .. } => "expired",
        };
        // A GET's query holds the parameters (and the URL may hold credentials).
        let url = crate::infra::secret::redact_url(&row.request.url);
        match &outcome {
            Attempt::Delivered => debug!(%url, attempts, "webhook delivered"),
            Attempt::Retry { error, .. } => {
                warn!(%url, attempts, %error, "webhook failed; will retry")
            }
            Attempt::Expired { error } => {
                warn!(%url, attempts, %error, "webhook given up")
            }
        }
        if let Err(e) = self
            .store
            .outbox_attempted(&row.id, attempts, outcome, now)
            .await
        {
            warn!(error = %e, "cannot record a webhook attempt");
        }
        // Counted once its outcome is stored: a delivery counted is not made again after a
        // crash.
        metrics::counter!("switchboard_webhook_attempts_total", "outcome" => label).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::accounts::{Account, HttpMethod, Listing};
    use crate::infra::egress::{Clients, Reach};
    use axum::http::HeaderMap;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    /// A running outbox over a SQLite file in `dir`, for account AC1.
    async fn outbox_on(dir: &tempfile::TempDir) -> (Store, Arc<Outbox>) {
        let store = Store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
            .await
            .unwrap()
            .on_node("n1");
        let directory = Arc::new(Directory::new(Listing {
            accounts: vec![Account {
                sid: "AC1".into(),
                auth_token: "secret".into(),
                signing_key: None,
                project_id: None,
                api_keys: Vec::new(),
                number_ranges: Vec::new(),
                caller_ids: Vec::new(),
                reach: Reach::default(),
                telnyx_api_keys: Vec::new(),
                telnyx_seed: [7; 32],
                speech_providers: Default::default(),
            }],
            ..Default::default()
        }));
        let outbox = Outbox::open(
            store.clone(),
            WebhookClient::new(Clients::new(None)),
            directory,
            RetryPolicy {
                max_backoff: Duration::from_secs(1),
                give_up_after: Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
        outbox.spawn();
        (store, outbox)
    }

    /// Webhooks queued while the store cannot take them wait in memory and are written, and
    /// delivered in order, once it can. (They were dropped with a warning.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhooks_wait_for_the_store_in_order() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = seen.clone();
        let app = serve(axum::Router::new().route(
            "/status",
            axum::routing::post(move |body: String| {
                sink.lock().unwrap().push(body);
                async { "" }
            }),
        ))
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = outbox_on(&dir).await;
        // The store refuses every write to the outbox: its table is gone.
        let rename = |from: &str, to: &str| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {from} RENAME TO {to}"
            )))
        };
        rename("webhook_outbox", "away")
            .execute(store.pool())
            .await
            .unwrap();
        let url = format!("{app}/status");
        for n in ["first", "second", "third"] {
            let params = [("N".to_owned(), n.to_owned())];
            let request = WebhookRequest::twilio(&url, HttpMethod::Post, &params);
            outbox.send("AC1", "CA1", request).await;
        }
        assert_eq!(outbox.waiting.lock().unwrap().len(), 3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(seen.lock().unwrap().is_empty());
        rename("away", "webhook_outbox")
            .execute(store.pool())
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().len() < 3 {
            assert!(Instant::now() < deadline, "{:?}", seen.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(*seen.lock().unwrap(), ["N=first", "N=second", "N=third"]);
        assert!(outbox.waiting.lock().unwrap().is_empty());
    }

    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        base
    }

    /// An endpoint that takes requests and never answers holds at most PER_ENDPOINT attempts
    /// and does not hold back another endpoint's webhook, whose retries carry one idempotency
    /// token. (Before claims, one pass waited for every attempt: 15 s behind the dead one.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hanging_endpoint_holds_back_only_its_own_webhooks() {
        let hanging = Arc::new(AtomicUsize::new(0));
        let h = hanging.clone();
        let dead = serve(axum::Router::new().route(
            "/status",
            axum::routing::post(move || {
                h.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<&'static str>()
            }),
        ))
        .await;
        let tokens = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
        let t = tokens.clone();
        let live = serve(axum::Router::new().route(
            "/status",
            axum::routing::post(move |headers: HeaderMap| {
                let mut seen = t.lock().unwrap();
                let token = headers["i-twilio-idempotency-token"].to_str().unwrap();
                seen.push((Instant::now(), token.to_owned()));
                // Fails twice, then takes it.
                let code = if seen.len() < 3 { 503 } else { 200 };
                async move { axum::http::StatusCode::from_u16(code).unwrap() }
            }),
        ))
        .await;

        let dir = tempfile::tempdir().unwrap();
        let (_store, outbox) = outbox_on(&dir).await;
        let params = || vec![("CallStatus".to_owned(), "completed".to_owned())];
        for i in 0..PER_ENDPOINT + 10 {
            let call = format!("CA{i}");
            let url = format!("{dead}/status");
            let request = WebhookRequest::twilio(&url, HttpMethod::Post, &params());
            outbox.send("AC1", &call, request).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while hanging.load(Ordering::SeqCst) < PER_ENDPOINT {
            assert!(
                Instant::now() < deadline,
                "the dead endpoint was never tried"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stuck_since = Instant::now();

        let url = format!("{live}/status");
        let request = WebhookRequest::twilio(&url, HttpMethod::Post, &params());
        outbox.send("AC1", "CAlive", request).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokens.lock().unwrap().len() < 3 {
            assert!(Instant::now() < deadline, "the live endpoint was held back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = tokens.lock().unwrap().clone();
        assert!(
            seen[2].0.duration_since(stuck_since) < Duration::from_secs(14),
            "delivered while the dead endpoint's attempts were still hanging"
        );
        assert_eq!(
            hanging.load(Ordering::SeqCst),
            PER_ENDPOINT,
            "no more than {PER_ENDPOINT} attempts at once to one endpoint"
        );
        assert!(seen.iter().all(|(_, t)| *t == seen[0].1), "{seen:?}");
        assert_eq!((seen[0].1.len(), seen[0].1.matches('-').count()), (36, 4));
        // Delivered once: no attempt after the 200.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(tokens.lock().unwrap().len(), 3);
    }
}
