//! Call queues, for every dialect (Twilio's `<Enqueue>`, `<Dial><Queue>` and Queues
//! resource; Telnyx's `enqueue`, `leave_queue` and `bridge` to a queue): per account, by name,
//! the calls waiting in order. A queue is created by the API or by the first call put in it
//! and is stored (it outlives a restart); its members are live calls, stored with the node
//! carrying each, so that several nodes hold a queue as one: positions and sizes count every
//! node's callers, and any node takes the front. A call taken from the front is bridged
//! through the call core — with a visit to its node when another node carries it
//! ([`crate::services::cluster::rooms`]) — so a call enqueued by one dialect can be answered by
//! another's, on any node.

use crate::call::{CallCommand, CallControl};
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::changes::Changed;
use crate::infra::store::{QueueRow, Store, StoreError, StoredQueue};
use crate::services::cluster::rooms::Rooms;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Twilio's default and largest `MaxSize`.
pub const DEFAULT_MAX_SIZE: u32 = 1000;
pub const LARGEST_MAX_SIZE: u32 = 5000;
/// Queues one account may have (each is stored; a queue is made by naming it).
pub const MAX_PER_ACCOUNT: usize = 1000;
/// Arrival signals kept for `<Dial><Queue>`s waiting on this node, at most.
const MAX_WATCHED: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Member {
    pub call: String,
    /// Unix milliseconds.
    pub enqueued_at: i64,
    /// The node carrying the call.
    pub node: String,
}

/// A queue as the API shows it.
#[derive(Debug, Clone)]
pub struct QueueSnapshot {
    pub sid: String,
    pub account: String,
    pub friendly_name: String,
    pub max_size: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub members: Vec<Member>,
    /// Seconds, over the calls that left it.
    pub average_wait_time: u64,
}

pub struct Queues {
    store: Store,
    /// Wakes the `<Dial><Queue>`s of this node waiting on a queue (by account and name) when
    /// a call joins it here; a call joining on another node is seen at their next look.
    arrivals: Mutex<HashMap<(String, String), Arc<Notify>>>,
    /// Bridges with a caller that another node carries (none: only this node's are).
    rooms: Option<Arc<Rooms>>,
}

/// Why a queue could not be created, joined or changed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("a queue of that name exists")]
    NameTaken,
    /// The account has [`MAX_PER_ACCOUNT`] queues already.
    #[error("the account has {MAX_PER_ACCOUNT} queues, as many as it may")]
    TooMany,
    #[error("the queue has calls waiting")]
    NotEmpty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Queues {
    /// The stored queues, and the calls waiting in them on every node.
    pub fn open(store: Store) -> Self {
        Self {
            store,
            arrivals: Mutex::default(),
            rooms: None,
        }
    }

    /// Callers other nodes carry are bridged through `rooms`' visits.
    pub fn bridging_through(mut self, rooms: Arc<Rooms>) -> Self {
        self.rooms = Some(rooms);
        self
    }

    /// A stored queue with its members.
    async fn snapshot(&self, q: StoredQueue) -> Result<QueueSnapshot, StoreError> {
        let members = (self.store.queue_members(&q.row.sid).await?)
            .into_iter()
            .map(|m| Member {
                call: m.call,
                enqueued_at: m.enqueued_at,
                node: m.node,
            })
            .collect();
        let average = match q.departed {
            0 => 0,
            n => (q.waited_ms / n / 1000).max(0) as u64,
        };
        Ok(QueueSnapshot {
            sid: q.row.sid,
            account: q.row.account_sid,
            friendly_name: q.row.friendly_name,
            max_size: q.row.max_size,
            created_at: q.row.created_at,
            updated_at: q.row.updated_at,
            members,
            average_wait_time: average,
        })
    }

    /// A new, empty queue.
    pub async fn create(
        &self,
        account: &str,
        name: &str,
        max_size: u32,
    ) -> Result<QueueSnapshot, QueueError> {
        if self.store.queue_count(account).await? >= MAX_PER_ACCOUNT as i64 {
            return Err(QueueError::TooMany);
        }
        let row = new_row(account, name, max_size);
        if !self.store.add_queue(&row).await? {
            return Err(QueueError::NameTaken);
        }
        Ok(self.snapshot(stored(row)).await?)
    }

    pub async fn list(&self, account: &str) -> Result<Vec<QueueSnapshot>, StoreError> {
        let mut out = Vec::new();
        for q in self.store.queues_of(account).await? {
            out.push(self.snapshot(q).await?);
        }
        Ok(out)
    }

    pub async fn get(&self, account: &str, sid: &str) -> Result<Option<QueueSnapshot>, StoreError> {
        match self.store.queue_of(account, Some(sid), None).await? {
            Some(q) => Ok(Some(self.snapshot(q).await?)),
            None => Ok(None),
        }
    }

    /// The account's queue named `name`, if it exists.
    pub async fn named(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<QueueSnapshot>, StoreError> {
        match self.store.queue_of(account, None, Some(name)).await? {
            Some(q) => Ok(Some(self.snapshot(q).await?)),
            None => Ok(None),
        }
    }

    /// Renames or resizes a queue.
    pub async fn update(
        &self,
        account: &str,
        sid: &str,
        name: Option<&str>,
        max_size: Option<u32>,
    ) -> Result<Option<QueueSnapshot>, QueueError> {
        let Some(mut q) = self.store.queue_of(account, Some(sid), None).await? else {
            return Ok(None);
        };
        if let Some(name) = name
            && let Some(other) = self.store.queue_of(account, None, Some(name)).await?
            && other.row.sid != sid
        {
            return Err(QueueError::NameTaken);
        }
        if let Some(name) = name {
            q.row.friendly_name = name.to_owned();
        }
        if let Some(size) = max_size {
            q.row.max_size = size;
        }
        q.row.updated_at = now_ms();
        self.store.save_queue(&q.row).await?;
        Ok(Some(self.snapshot(q).await?))
    }

    /// Deletes an empty queue; `Ok(false)` when there is none.
    pub async fn delete(&self, account: &str, sid: &str) -> Result<bool, QueueError> {
        let Some(q) = self.store.queue_of(account, Some(sid), None).await? else {
            return Ok(false);
        };
        if !self.store.queue_members(&q.row.sid).await?.is_empty() {
            return Err(QueueError::NotEmpty);
        }
        self.store.delete_queue(sid).await?;
        Ok(true)
    }

    /// Puts a call this node carries at the end of the named queue (created, holding at most
    /// `max_size`, and stored, if need be); `None` when it is full.
    pub async fn join(
        &self,
        account: &str,
        name: &str,
        call: &str,
        max_size: u32,
    ) -> Result<Option<QueueSnapshot>, QueueError> {
        let q = match self.store.queue_of(account, None, Some(name)).await? {
            Some(q) => q,
            None => {
                if self.store.queue_count(account).await? >= MAX_PER_ACCOUNT as i64 {
                    return Err(QueueError::TooMany);
                }
                let row = new_row(account, name, max_size.clamp(1, LARGEST_MAX_SIZE));
                self.store.add_queue(&row).await?;
                // Made here, or by another node at the same moment: the one stored.
                (self.store.queue_of(account, None, Some(name)).await?)
                    .unwrap_or_else(|| stored(row))
            }
        };
        let joined = (self.store)
            .add_queue_member(&q.row.sid, call, q.row.max_size, now_ms())
            .await?;
        if !joined {
            return Ok(None);
        }
        if let Some(arrivals) = self.arrivals(account, name, false) {
            arrivals.notify_one();
        }
        // An agent waiting on another node hears of it there.
        self.store.announce(Changed::QueueMembers).await;
        Ok(Some(self.snapshot(q).await?))
    }

    /// Takes a call out of its queue (it left, was dequeued or hung up); how long it waited,
    /// in milliseconds, if it was there.
    pub async fn remove(&self, queue_sid: &str, call: &str) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let removed = self.store.remove_queue_member(queue_sid, call, now).await?;
        Ok(removed.map(|m| now.saturating_sub(m.enqueued_at).max(0)))
    }

    /// Takes the call at the head of the named queue, with how long it waited.
    pub async fn take_front(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<(Member, i64)>, StoreError> {
        let Some(q) = self.store.queue_of(account, None, Some(name)).await? else {
            return Ok(None);
        };
        // Another node may take the same front first: the next one is tried.
        for m in self.store.queue_members(&q.row.sid).await? {
            let now = now_ms();
            if let Some(taken) = (self.store)
                .remove_queue_member(&q.row.sid, &m.call, now)
                .await?
            {
                let waited = now.saturating_sub(taken.enqueued_at).max(0);
                let member = Member {
                    call: taken.call,
                    enqueued_at: taken.enqueued_at,
                    node: taken.node,
                };
                return Ok(Some((member, waited)));
            }
        }
        Ok(None)
    }

    /// Takes calls off the head of the named queue until one can be bridged with `call` (a
    /// caller may hang up as it is taken), here or through a visit to the node carrying it;
    /// the one bridged. The bridged call hears of it through its own `Bridged` event,
    /// whichever dialect runs it.
    pub async fn bridge_front(
        &self,
        control: &CallControl,
        account: &str,
        name: &str,
        call: &str,
        from: &str,
    ) -> Option<String> {
        loop {
            let (member, _) = match self.take_front(account, name).await {
                Ok(Some(front)) => front,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, queue = name, "cannot take a queue's front");
                    return None;
                }
            };
            let bridged = match &self.rooms {
                Some(rooms) if member.node != self.store.node() => rooms
                    .bridge_elsewhere(call, from, account, &member.call, &member.node)
                    .await
                    .is_ok(),
                _ => {
                    let bridge = CallCommand::Bridge(member.call.clone());
                    control.command(call, bridge).await.is_ok()
                }
            };
            if bridged {
                return Some(member.call);
            }
        }
    }

    /// The named queue's arrival signal on this node, if the queue exists.
    pub async fn watch(&self, account: &str, name: &str) -> Option<Arc<Notify>> {
        match self.store.queue_of(account, None, Some(name)).await {
            Ok(Some(_)) => self.arrivals(account, name, true),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, queue = name, "cannot read the queue");
                None
            }
        }
    }

    /// A caller joined a queue on another node (which says only that one did): every agent
    /// waiting here on a queue looks at it again — one per queue, as a caller joining here
    /// wakes one.
    pub fn look_again(&self) {
        for arrivals in self.arrivals.lock().expect("not poisoned").values() {
            arrivals.notify_one();
        }
    }

    /// The arrival signal of the account's queue `name`, made if `make`.
    fn arrivals(&self, account: &str, name: &str, make: bool) -> Option<Arc<Notify>> {
        let mut arrivals = self.arrivals.lock().expect("not poisoned");
        let key = (account.to_owned(), name.to_owned());
        if let Some(n) = arrivals.get(&key) {
            return Some(n.clone());
        }
        if !make {
            return None;
        }
        if arrivals.len() >= MAX_WATCHED {
            // Signals nobody waits on any more go first.
            arrivals.retain(|_, n| Arc::strong_count(n) > 1);
        }
        let n = Arc::new(Notify::new());
        arrivals.insert(key, n.clone());
        Some(n)
    }
}

fn new_row(account: &str, name: &str, max: u32) -> QueueRow {
    let now = now_ms();
    QueueRow {
        sid: new_sid("QU"),
        account_sid: account.to_owned(),
        friendly_name: name.to_owned(),
        max_size: max,
        created_at: now,
        updated_at: now,
    }
}

fn stored(row: QueueRow) -> StoredQueue {
    StoredQueue {
        row,
        waited_ms: 0,
        departed: 0,
    }
}

/// A member's place: 1 for the head of the queue.
pub fn position(q: &QueueSnapshot, call: &str) -> Option<usize> {
    q.members.iter().position(|m| m.call == call).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_wait_in_order_up_to_the_size_and_leave_with_their_wait() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/q.db", dir.path().display());
        let queues = Queues::open(Store::open(&url).await.unwrap());
        let join = |call: &'static str| queues.join("AC1", "support", call, DEFAULT_MAX_SIZE);
        let q = join("CA1").await.unwrap().unwrap();
        assert_eq!(q.max_size, DEFAULT_MAX_SIZE);
        queues.update("AC1", &q.sid, None, Some(2)).await.unwrap();
        join("CA2").await.unwrap().unwrap();
        assert!(join("CA3").await.unwrap().is_none(), "full");
        // Another account's queue of the same name is another queue (made with the size asked).
        let other = queues.join("AC2", "support", "CA9", 7).await.unwrap();
        assert_eq!(other.map(|q| q.max_size), Some(7));
        // Stored, with its callers: another node (or a restart) finds both queues as they are.
        let again = Queues::open(Store::open(&url).await.unwrap().on_node("other"));
        let stored = again.get("AC1", &q.sid).await.unwrap().unwrap();
        assert_eq!((stored.max_size, stored.members.len()), (2, 2));
        assert_eq!(stored.members[0].node, queues.store.node());
        assert_eq!(again.list("AC2").await.unwrap().len(), 1);
        let q = queues.get("AC1", &q.sid).await.unwrap().unwrap();
        assert_eq!(
            (position(&q, "CA1"), position(&q, "CA2")),
            (Some(1), Some(2))
        );
        // The other node takes the front; it is gone for everyone.
        let (front, _) = again.take_front("AC1", "support").await.unwrap().unwrap();
        assert_eq!(front.call, "CA1");
        assert!(
            queues.remove(&q.sid, "CA1").await.unwrap().is_none(),
            "already gone"
        );
        assert!(matches!(
            queues.delete("AC1", &q.sid).await,
            Err(QueueError::NotEmpty)
        ));
        assert!(queues.remove(&q.sid, "CA2").await.unwrap().is_some());
        assert!(matches!(
            queues.create("AC1", "support", 10).await,
            Err(QueueError::NameTaken)
        ));
        assert!(queues.delete("AC1", &q.sid).await.unwrap());
        assert!(queues.take_front("AC1", "support").await.unwrap().is_none());
        assert!(
            again.list("AC1").await.unwrap().is_empty(),
            "deleted for good"
        );
    }

    #[tokio::test]
    async fn an_account_makes_at_most_its_share_of_queues() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/q.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let queues = Queues::open(store.clone());
        // Stored in one statement (storing a thousand rows one by one is not what is tested).
        let values: Vec<String> = (0..MAX_PER_ACCOUNT)
            .map(|i| format!("('QU{i}', 'AC1', 'q{i}', 10, 0, 0)"))
            .collect();
        let insert = format!(
            "INSERT INTO queues (sid, account_sid, friendly_name, max_size, created_at, updated_at) VALUES {}",
            values.join(", ")
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(insert))
            .execute(store.pool())
            .await
            .unwrap();
        let refused = queues.join("AC1", "one more", "CA1", 10).await;
        assert!(matches!(refused, Err(QueueError::TooMany)), "{refused:?}");
        assert!(matches!(
            queues.create("AC1", "one more", 10).await,
            Err(QueueError::TooMany)
        ));
        // Its existing queues take calls; another account makes its own.
        assert!(queues.join("AC1", "q7", "CA1", 10).await.unwrap().is_some());
        assert!(
            queues
                .join("AC2", "one more", "CA2", 10)
                .await
                .unwrap()
                .is_some()
        );
    }
}
