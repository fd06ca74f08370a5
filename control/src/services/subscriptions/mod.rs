//! Subscriptions: the stage between the call core's events and the webhook outbox, the same for
//! every dialect. An application's wish to hear of a call (Twilio's `StatusCallback`, a
//! `<Dial>` noun's `statusCallback`) is stored with the call as a subscription naming a
//! renderer (the dialect's) and what the renderer needs. Each call event it asks for becomes an
//! outbox row in the transaction that moves the subscription's cursor past the event, so an
//! event makes its webhook once, whoever makes it.
//!
//! Two paths make them. While the call runs, the session that follows it hands its events to a
//! [`LiveSubscription`] at once (no added latency, in order with the session's other webhooks). After a
//! crash or restart, [`Subscriptions::recover`] rebuilds what is missing from the stored call
//! events (`call_events`, written with the call's state) and the call's record: a call the
//! restart closed gets its final webhook from that record, so no `completed` is lost to a
//! `kill -9`. A node that stopped beating has its subscriptions finished by a live node the
//! same way.

use crate::call::CallEvent;
use crate::infra::accounts::HttpMethod;
use crate::infra::store::{
    Advance, CallStatus, OutboxRow, Store, StoreError, StoreReader, SubscriptionRow,
};
use crate::infra::webhook::outbox::Outbox;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tracing::{info, warn};

mod milestones;
pub use milestones::*;

/// What a new subscription asks for.
pub struct NewSubscription {
    pub call: String,
    pub account: String,
    /// The renderer's registered name.
    pub renderer: &'static str,
    pub url: String,
    pub method: HttpMethod,
    /// What the renderer needs, as JSON.
    pub context: String,
}

impl NewSubscription {
    /// A subscription of `call` (a call's id, or a conference's SID) for `account`, its
    /// webhooks going to `url` by `method` and rendered by `renderer` from `context`.
    pub fn new(
        call: &str,
        account: &str,
        renderer: &'static str,
        (url, method): (String, HttpMethod),
        context: &impl serde::Serialize,
    ) -> Option<Self> {
        Some(Self {
            call: call.to_owned(),
            account: account.to_owned(),
            renderer,
            url,
            method,
            context: serde_json::to_string(context).ok()?,
        })
    }
}

/// Webhooks of a live call kept for another try while the database is unreachable (a
/// subscription makes a handful: only milestones it asked for are kept).
const MAX_PENDING: usize = 16;
/// How long a webhook waits for the rows written before it to be committed.
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Subscriptions finished per recovery pass (the next pass takes the rest).
const RECOVERY_BATCH: i64 = 10_000;

pub struct Subscriptions {
    store: Store,
    /// Waits for the events queued to the store writer, before a catch-up reads them.
    events: StoreReader,
    outbox: Arc<Outbox>,
    renderers: RwLock<HashMap<&'static str, Arc<dyn Renderer>>>,
    /// Held while a subject's subscriptions are caught up: one catch-up at a time on this
    /// node, so that one which loses a race for an event to another (which then carries the
    /// subscription on) does not leave the events it alone had read unreported.
    catching_up: tokio::sync::Mutex<()>,
}

impl Subscriptions {
    pub fn new(store: Store, events: StoreReader, outbox: Arc<Outbox>) -> Arc<Self> {
        Arc::new(Self {
            store,
            events,
            outbox,
            renderers: RwLock::default(),
            catching_up: tokio::sync::Mutex::new(()),
        })
    }

    /// Where the webhooks go.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Makes `renderer` the one for subscriptions naming `name`.
    pub fn register(&self, name: &'static str, renderer: Arc<dyn Renderer>) {
        self.renderers
            .write()
            .expect("not poisoned")
            .insert(name, renderer);
    }

    fn renderer(&self, name: &str) -> Option<Arc<dyn Renderer>> {
        self.renderers
            .read()
            .expect("not poisoned")
            .get(name)
            .cloned()
    }

    /// What the first subscription of `call` rendered by `renderer` stored: a dialect's own
    /// view of the call (a Telnyx leg's connection and session), read back by its API.
    pub async fn context_of(
        &self,
        call: &str,
        renderer: &str,
    ) -> Result<Option<String>, StoreError> {
        self.store.subscription_context(call, renderer).await
    }

    /// Stores a subscription to a call this node carries; its live events go to the
    /// returned live subscription. If the database cannot take it now, the live subscription stores it with
    /// its first webhook.
    pub async fn subscribe(self: &Arc<Self>, asked: NewSubscription) -> LiveSubscription {
        self.subscribe_after(asked, -1).await
    }

    /// [`Self::subscribe`] to what follows the subject's event `seq`: a subscription made
    /// in the middle of its subject's life (a conference's, by a later participant).
    pub async fn subscribe_after(
        self: &Arc<Self>,
        asked: NewSubscription,
        seq: i64,
    ) -> LiveSubscription {
        let row = SubscriptionRow {
            id: crate::infra::sid::new_sid("SB"),
            call_id: asked.call,
            account_sid: asked.account,
            node: self.store.node().to_owned(),
            renderer: asked.renderer.to_owned(),
            url: asked.url,
            method: asked.method.as_str().to_owned(),
            context: asked.context,
            last_seq: seq,
            sent: 0,
            created_at: crate::infra::clock::now_ms(),
            done_at: None,
        };
        let stored = match self.store.subscription_add(&row).await {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, call = %row.call_id, "cannot store a call's subscription yet");
                false
            }
        };
        LiveSubscription {
            stage: self.clone(),
            row,
            stored,
            answered_at: None,
            pending: Vec::new(),
        }
    }

    /// Whether `milestone_event` makes a webhook or ends the subscription.
    fn wants(
        &self,
        row: &SubscriptionRow,
        history: &History,
        milestone_event: &MilestoneEvent,
    ) -> bool {
        let Some(renderer) = self.renderer(&row.renderer) else {
            return false;
        };
        renderer.is_last(&row.context, milestone_event)
            || renderer
                .render(&hook(row), history, milestone_event)
                .is_some()
    }

    /// The step that moves `row` past `milestone_event` (its history folded up to it), if anything
    /// is to be written: a webhook, or the end.
    fn step(
        &self,
        row: &SubscriptionRow,
        history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<Advance> {
        let renderer = self.renderer(&row.renderer)?;
        let request = renderer.render(&hook(row), history, milestone_event);
        let ended = renderer.is_last(&row.context, milestone_event);
        if request.is_none() && !ended {
            return None;
        }
        let now = crate::infra::clock::now_ms();
        Some(Advance {
            from_seq: row.last_seq,
            to_seq: milestone_event.seq,
            webhook: request.map(|request| OutboxRow {
                id: crate::infra::sid::new_sid("WH"),
                call_id: row.call_id.clone(),
                seq: self.outbox.next_seq(),
                account_sid: row.account_sid.clone(),
                request,
                created_at: now,
                next_attempt_at: now,
                attempts: 0,
            }),
            done_at: ended.then_some(now),
        })
    }

    /// Writes `step`; true when it moved the cursor.
    async fn apply(&self, row: &mut SubscriptionRow, step: &Advance) -> Result<bool, StoreError> {
        let Some(placed) = self.store.subscription_advance(&row.id, step).await? else {
            return Ok(false);
        };
        row.last_seq = step.to_seq;
        row.sent += i64::from(step.webhook.is_some());
        row.done_at = step.done_at;
        if let Some(seq) = placed {
            // Placed after another node's webhooks: this node's next ones come after it.
            self.outbox.number_after(seq);
            self.outbox.wake();
        }
        Ok(true)
    }

    /// At start-up: finishes the subscriptions of calls this node's last run carried (made
    /// before `started_at`; the restart has closed those calls). Returns the webhooks made.
    pub async fn recover(&self, started_at: i64) -> Result<usize, StoreError> {
        let open = self
            .store
            .open_subscriptions(started_at, RECOVERY_BATCH)
            .await?;
        self.finish_all(open).await
    }

    /// Finishes the subscriptions of calls carried by nodes silent since `stale_before`
    /// (their calls closed by [`Store::close_calls_of_dead_nodes`]).
    pub async fn recover_dead_nodes(&self, stale_before: i64) -> Result<usize, StoreError> {
        let open = self
            .store
            .open_subscriptions_of_dead_nodes(stale_before, RECOVERY_BATCH)
            .await?;
        if open.is_empty() {
            return Ok(0);
        }
        // The dead node numbered its webhooks on from its own count: the ones made now for
        // its calls must come after those.
        self.outbox.number_after(self.store.outbox_max_seq().await?);
        self.finish_all(open).await
    }

    async fn finish_all(&self, open: Vec<SubscriptionRow>) -> Result<usize, StoreError> {
        let mut made = 0;
        for row in open {
            match self.finish(row).await {
                Ok(n) => made += n,
                Err(e) => warn!(error = %e, "cannot finish a call's subscription"),
            }
        }
        if made > 0 {
            info!(webhooks = made, "webhooks rebuilt from stored call events");
        }
        Ok(made)
    }

    /// Makes the webhooks of a call's stored events the subscription has not had, then its
    /// end: the stored hang-up, or (when the call ended with its node) the call record's
    /// final status. Returns the webhooks made.
    async fn finish(&self, row: SubscriptionRow) -> Result<usize, StoreError> {
        let events = self.store.call_events(&row.call_id).await?;
        let mut milestone_events: Vec<MilestoneEvent> =
            events.iter().filter_map(MilestoneEvent::of_row).collect();
        if !milestone_events
            .iter()
            .any(|m| matches!(m.milestone, Milestone::Ended { .. }))
        {
            let record = self.store.get_call(&row.call_id).await?;
            let (status, sip_code, at) = match &record {
                Some(r) if r.status.is_final() => (r.status, r.sip_code, r.ended_at),
                // Not closed (or never stored): it ended with its node.
                _ => (CallStatus::Failed, None, None),
            };
            let end = Milestone::Ended {
                status,
                sip_code,
                by: None,
                cause: None,
                quality: None,
            };
            let closing = match self.renderer(&row.renderer) {
                Some(r) => r.closing(&row.context, &milestone_events, end),
                None => vec![end],
            };
            let last = events.last().map_or(-1, |e| i64::from(e.seq));
            let at = at.unwrap_or_else(crate::infra::clock::now_ms);
            for (i, milestone) in (1..).zip(closing) {
                milestone_events.push(MilestoneEvent {
                    seq: last.max(row.last_seq) + i,
                    at,
                    milestone,
                });
            }
        }
        let (made, row) = self.advance(row, milestone_events).await?;
        let Some(mut row) = row.filter(|r| r.done_at.is_none()) else {
            return Ok(made);
        };
        // The call is over and what the subscription waited for never came (a recording
        // the restart could not save): nothing more will.
        let end = Advance {
            from_seq: row.last_seq,
            to_seq: row.last_seq,
            webhook: None,
            done_at: Some(crate::infra::clock::now_ms()),
        };
        self.apply(&mut row, &end).await?;
        Ok(made)
    }

    /// Makes the webhooks of the stored events subscription `id` has not had yet (its subject
    /// goes on): the live path of a subject whose events several parties see (a conference's,
    /// seen by each participant's session), made from the store — by whichever is first.
    /// Returns the webhooks made.
    pub async fn catch_up(&self, id: &str) -> Result<usize, StoreError> {
        self.events.sync().await;
        let Some(row) = self.store.subscription(id).await? else {
            return Ok(0);
        };
        if row.done_at.is_some() {
            return Ok(0);
        }
        let events = self.store.call_events(&row.call_id).await?;
        let milestone_events = events.iter().filter_map(MilestoneEvent::of_row).collect();
        Ok(self.advance(row, milestone_events).await?.0)
    }

    /// [`Self::catch_up`] for every unfinished subscription of `subject` (a conference's
    /// SID): called by whatever sees one of its events on the node that stores them — its
    /// participants' sessions, and the legs other nodes' calls visit it through. Returns the
    /// webhooks made.
    pub async fn catch_up_subject(&self, subject: &str) -> Result<usize, StoreError> {
        let _one_at_a_time = self.catching_up.lock().await;
        let mut made = 0;
        for id in self.store.open_subscriptions_of(subject).await? {
            made += self.catch_up(&id).await?;
        }
        Ok(made)
    }

    /// Whether `subject` has a subscription rendered by `renderer` (a conference reports to
    /// its first participant's callback alone).
    pub async fn has_subscription(
        &self,
        subject: &str,
        renderer: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .store
            .subscription_context(subject, renderer)
            .await?
            .is_some())
    }

    /// Moves `row` through `milestone_events` (all its subject's, in order), writing the webhooks of
    /// those after its cursor. Stops at its end, or where another writer moved it first (the
    /// row is then `None`: someone else carries it on).
    async fn advance(
        &self,
        mut row: SubscriptionRow,
        milestone_events: Vec<MilestoneEvent>,
    ) -> Result<(usize, Option<SubscriptionRow>), StoreError> {
        let mut history = History::default();
        let mut made = 0;
        for milestone_event in milestone_events {
            history.fold(&milestone_event);
            if milestone_event.seq <= row.last_seq {
                continue;
            }
            history.sent = row.sent;
            let Some(step) = self.step(&row, &history, &milestone_event) else {
                continue;
            };
            if !self.apply(&mut row, &step).await? {
                // Another node got there first.
                return Ok((made, None));
            }
            made += usize::from(step.webhook.is_some());
            if row.done_at.is_some() {
                break;
            }
        }
        Ok((made, Some(row)))
    }
}

/// Where `row`'s webhooks go, as its renderer is shown them.
fn hook(row: &SubscriptionRow) -> Hook<'_> {
    Hook {
        subject: &row.call_id,
        url: &row.url,
        method: HttpMethod::parse(&row.method).unwrap_or_default(),
        context: &row.context,
    }
}

/// A live call's subscription: its events, in order, become webhooks at once.
pub struct LiveSubscription {
    stage: Arc<Subscriptions>,
    row: SubscriptionRow,
    /// Whether the subscription is in the database.
    stored: bool,
    /// When the call was answered, once it was.
    answered_at: Option<i64>,
    /// Milestones it asked for whose webhooks are not written yet (the database was away),
    /// each with when the call was answered as of that milestone.
    pending: Vec<(MilestoneEvent, Option<i64>)>,
}

impl LiveSubscription {
    /// Hands on one of the call's events; those the subscription asked for are queued.
    pub async fn on_event(&mut self, event: &CallEvent) {
        if let Some(milestone_event) = MilestoneEvent::of_event(event) {
            self.on_moment(milestone_event).await;
        }
    }

    /// What the renderer stored with the subscription.
    pub fn context(&self) -> &str {
        &self.row.context
    }

    /// Replaces it, for the webhooks made from now on (and those a recovery makes).
    pub async fn set_context(&mut self, context: String) {
        self.row.context = context;
        if self.stored
            && let Err(e) = (self.stage.store)
                .subscription_set_context(&self.row.id, &self.row.context)
                .await
        {
            warn!(error = %e, call = %self.row.call_id, "cannot store a subscription's new context; a recovery would use the old one");
        }
    }

    /// Ends the subscription with nothing more to report (what it was to follow did not
    /// start, or its dialect reported the rest itself).
    pub async fn close(mut self) {
        if self.row.done_at.is_some() {
            return;
        }
        let end = Advance {
            from_seq: self.row.last_seq,
            to_seq: self.row.last_seq,
            webhook: None,
            done_at: Some(crate::infra::clock::now_ms()),
        };
        let closed = async {
            if !self.stored {
                self.stage.store.subscription_add(&self.row).await?;
            }
            self.stage.apply(&mut self.row, &end).await
        };
        if let Err(e) = closed.await {
            warn!(error = %e, call = %self.row.call_id, "cannot close a subscription; the next start-up will");
        }
    }

    /// The subscription's id.
    pub fn id(&self) -> &str {
        &self.row.id
    }

    /// The call it follows.
    pub fn call(&self) -> &str {
        &self.row.call_id
    }

    /// Whether the subscription has heard its last event.
    pub fn done(&self) -> bool {
        self.row.done_at.is_some()
    }

    async fn on_moment(&mut self, milestone_event: MilestoneEvent) {
        if self.row.done_at.is_some() || milestone_event.seq <= self.row.last_seq {
            return;
        }
        let mut history = History {
            answered_at: self.answered_at,
            sent: self.row.sent,
        };
        history.fold(&milestone_event);
        self.answered_at = history.answered_at;
        if !self.stage.wants(&self.row, &history, &milestone_event) {
            return;
        }
        if self.pending.len() < MAX_PENDING {
            self.pending.push((milestone_event, history.answered_at));
        } else {
            warn!(call = %self.row.call_id, "a call's webhooks wait for the database; one is dropped");
        }
        if let Err(e) = self.flush().await {
            warn!(error = %e, call = %self.row.call_id, "cannot queue a call's webhook yet; will retry with its next event");
        }
    }

    /// Writes the waiting milestones' webhooks, in order, once the rows written before them
    /// are committed: a webhook does not tell of what a reader — this node's or another's
    /// sharing the database — cannot see yet (a `recording-saved` before the recording's row
    /// says completed, which another node would answer 404 for). The wait is bounded: with the
    /// database away the writes below fail anyway and are tried again with the next event,
    /// and the call's session must not stall meanwhile.
    async fn flush(&mut self) -> Result<(), StoreError> {
        if !self.pending.is_empty() {
            let committed = self.stage.events.sync();
            let _ = tokio::time::timeout(COMMIT_WAIT, committed).await;
        }
        if !self.stored {
            self.stage.store.subscription_add(&self.row).await?;
            self.stored = true;
        }
        while let Some((milestone_event, answered_at)) = self.pending.first().cloned() {
            let history = History {
                answered_at,
                sent: self.row.sent,
            };
            if let Some(step) = self.stage.step(&self.row, &history, &milestone_event)
                && !self.stage.apply(&mut self.row, &step).await?
            {
                // Someone else moved it (a recovery that took this call for dead).
                match self.stage.store.subscription(&self.row.id).await? {
                    Some(row) => self.row = row,
                    None => self.row.done_at = Some(0),
                }
                self.pending.clear();
                return Ok(());
            }
            self.pending.remove(0);
        }
        Ok(())
    }
}
