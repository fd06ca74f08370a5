//! Call queues, for every dialect (Twilio's `<Enqueue>`, `<Dial><Queue>` and Queues
//! resource; Telnyx's `enqueue`, `leave_queue` and `bridge` to a queue): per account, by name,
//! the calls waiting in order. A queue is created by the API or by the first call put in it
//! and is stored (it outlives a restart); its members are live calls, held in memory. A call
//! taken from the front is bridged through the call core, so a call enqueued by one dialect
//! can be answered by another's.

use crate::call::{CallCommand, CallControl};
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::{QueueRow, Store, StoreError};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Twilio's default and largest `MaxSize`.
pub const DEFAULT_MAX_SIZE: u32 = 1000;
pub const LARGEST_MAX_SIZE: u32 = 5000;
/// Queues one account may have (each is stored; a queue is made by naming it).
pub const MAX_PER_ACCOUNT: usize = 1000;

#[derive(Debug, Clone)]
pub struct Member {
    pub call: String,
    /// Unix milliseconds.
    pub enqueued_at: i64,
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

struct Queue {
    snapshot: QueueSnapshot,
    waited_ms: i64,
    left: i64,
    /// Wakes a `<Dial><Queue>` waiting for a caller.
    arrivals: Arc<Notify>,
}

pub struct Queues {
    store: Store,
    queues: Mutex<Vec<Queue>>,
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
    /// The stored queues, empty.
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        let queues = store
            .queues()
            .await?
            .into_iter()
            .map(|r| Queue {
                snapshot: QueueSnapshot {
                    sid: r.sid,
                    account: r.account_sid,
                    friendly_name: r.friendly_name,
                    max_size: r.max_size,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                    members: Vec::new(),
                    average_wait_time: 0,
                },
                waited_ms: 0,
                left: 0,
                arrivals: Arc::new(Notify::new()),
            })
            .collect();
        Ok(Self {
            store,
            queues: Mutex::new(queues),
        })
    }

    async fn save(&self, q: &QueueSnapshot) -> Result<(), StoreError> {
        self.store
            .save_queue(&QueueRow {
                sid: q.sid.clone(),
                account_sid: q.account.clone(),
                friendly_name: q.friendly_name.clone(),
                max_size: q.max_size,
                created_at: q.created_at,
                updated_at: q.updated_at,
            })
            .await
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Queue>) -> T) -> T {
        f(&mut self.queues.lock().expect("not poisoned"))
    }

    /// A new, empty queue.
    pub async fn create(
        &self,
        account: &str,
        name: &str,
        max_size: u32,
    ) -> Result<QueueSnapshot, QueueError> {
        let q = self.with(|queues| {
            if queues
                .iter()
                .any(|q| q.snapshot.account == account && q.snapshot.friendly_name == name)
            {
                return Err(QueueError::NameTaken);
            }
            if full(queues, account) {
                return Err(QueueError::TooMany);
            }
            Ok(new_queue(queues, account, name, max_size).snapshot.clone())
        })?;
        self.save(&q).await?;
        Ok(q)
    }

    pub fn list(&self, account: &str) -> Vec<QueueSnapshot> {
        self.with(|queues| {
            queues
                .iter()
                .filter(|q| q.snapshot.account == account)
                .map(|q| q.snapshot.clone())
                .collect()
        })
    }

    pub fn get(&self, account: &str, sid: &str) -> Option<QueueSnapshot> {
        self.with(|queues| find(queues, account, sid).map(|q| q.snapshot.clone()))
    }

    /// Renames or resizes a queue.
    pub async fn update(
        &self,
        account: &str,
        sid: &str,
        name: Option<&str>,
        max_size: Option<u32>,
    ) -> Result<Option<QueueSnapshot>, QueueError> {
        let updated = self.with(|queues| {
            if let Some(name) = name
                && queues.iter().any(|q| {
                    q.snapshot.account == account
                        && q.snapshot.friendly_name == name
                        && q.snapshot.sid != sid
                })
            {
                return Err(QueueError::NameTaken);
            }
            let Some(q) = find(queues, account, sid) else {
                return Ok(None);
            };
            if let Some(name) = name {
                q.snapshot.friendly_name = name.to_owned();
            }
            if let Some(size) = max_size {
                q.snapshot.max_size = size;
            }
            q.snapshot.updated_at = now_ms();
            Ok(Some(q.snapshot.clone()))
        })?;
        if let Some(q) = &updated {
            self.save(q).await?;
        }
        Ok(updated)
    }

    /// Deletes an empty queue; `Ok(false)` when there is none.
    pub async fn delete(&self, account: &str, sid: &str) -> Result<bool, QueueError> {
        let deleted = self.with(|queues| {
            let Some(i) = queues
                .iter()
                .position(|q| q.snapshot.account == account && q.snapshot.sid == sid)
            else {
                return Ok(false);
            };
            if !queues[i].snapshot.members.is_empty() {
                return Err(QueueError::NotEmpty);
            }
            queues.remove(i);
            Ok(true)
        })?;
        if deleted {
            self.store.delete_queue(sid).await?;
        }
        Ok(deleted)
    }

    /// Puts a call at the end of the named queue (created, holding at most `max_size`, and
    /// stored, if need be); `None` when it is full.
    pub async fn join(
        &self,
        account: &str,
        name: &str,
        call: &str,
        max_size: u32,
    ) -> Result<Option<QueueSnapshot>, QueueError> {
        let (joined, created) = self.with(|queues| {
            let (i, created) = match queues
                .iter()
                .position(|q| q.snapshot.account == account && q.snapshot.friendly_name == name)
            {
                Some(i) => (i, false),
                None if full(queues, account) => return Err(QueueError::TooMany),
                None => {
                    new_queue(queues, account, name, max_size.clamp(1, LARGEST_MAX_SIZE));
                    (queues.len() - 1, true)
                }
            };
            let q = &mut queues[i];
            if q.snapshot.members.len() >= q.snapshot.max_size as usize {
                return Ok((None, created));
            }
            q.snapshot.members.push(Member {
                call: call.to_owned(),
                enqueued_at: now_ms(),
            });
            q.arrivals.notify_one();
            Ok((Some(q.snapshot.clone()), created))
        })?;
        if created && let Some(q) = &joined {
            self.save(q).await?;
        }
        Ok(joined)
    }

    /// Takes a call out of its queue (it left, was dequeued or hung up); how long it waited,
    /// in milliseconds, if it was there.
    pub fn remove(&self, account: &str, queue_sid: &str, call: &str) -> Option<i64> {
        self.with(|queues| {
            let q = find(queues, account, queue_sid)?;
            let i = q.snapshot.members.iter().position(|m| m.call == call)?;
            let member = q.snapshot.members.remove(i);
            Some(left(q, &member))
        })
    }

    /// Takes the call at the head of the named queue, with how long it waited.
    pub fn take_front(&self, account: &str, name: &str) -> Option<(Member, i64)> {
        self.with(|queues| {
            let q = queues
                .iter_mut()
                .find(|q| q.snapshot.account == account && q.snapshot.friendly_name == name)?;
            if q.snapshot.members.is_empty() {
                return None;
            }
            let member = q.snapshot.members.remove(0);
            let waited = left(q, &member);
            Some((member, waited))
        })
    }

    /// Takes calls off the head of the named queue until one can be bridged with `call` (a
    /// caller may hang up as it is taken); the one bridged. The bridged call hears of it
    /// through its own `Bridged` event, whichever dialect runs it.
    pub async fn bridge_front(
        &self,
        control: &CallControl,
        account: &str,
        name: &str,
        call: &str,
    ) -> Option<String> {
        while let Some((member, _)) = self.take_front(account, name) {
            let bridge = CallCommand::Bridge(member.call.clone());
            if control.command(call, bridge).await.is_ok() {
                return Some(member.call);
            }
        }
        None
    }

    /// The account's queue named `name`, if it exists.
    pub fn named(&self, account: &str, name: &str) -> Option<QueueSnapshot> {
        self.with(|queues| {
            queues
                .iter()
                .find(|q| q.snapshot.account == account && q.snapshot.friendly_name == name)
                .map(|q| q.snapshot.clone())
        })
    }

    /// The named queue's arrival signal, if the queue exists.
    pub fn watch(&self, account: &str, name: &str) -> Option<Arc<Notify>> {
        self.with(|queues| {
            queues
                .iter()
                .find(|q| q.snapshot.account == account && q.snapshot.friendly_name == name)
                .map(|q| q.arrivals.clone())
        })
    }
}

/// Whether `account` has as many queues as it may.
fn full(queues: &[Queue], account: &str) -> bool {
    queues
        .iter()
        .filter(|q| q.snapshot.account == account)
        .count()
        >= MAX_PER_ACCOUNT
}

fn find<'a>(queues: &'a mut [Queue], account: &str, sid: &str) -> Option<&'a mut Queue> {
    queues
        .iter_mut()
        .find(|q| q.snapshot.account == account && q.snapshot.sid == sid)
}

fn new_queue<'a>(queues: &'a mut Vec<Queue>, account: &str, name: &str, max: u32) -> &'a Queue {
    let now = now_ms();
    queues.push(Queue {
        snapshot: QueueSnapshot {
            sid: new_sid("QU"),
            account: account.to_owned(),
            friendly_name: name.to_owned(),
            max_size: max,
            created_at: now,
            updated_at: now,
            members: Vec::new(),
            average_wait_time: 0,
        },
        waited_ms: 0,
        left: 0,
        arrivals: Arc::new(Notify::new()),
    });
    queues.last().expect("just pushed")
}

/// Accounts a member's departure in the queue's average wait.
fn left(q: &mut Queue, member: &Member) -> i64 {
    let waited = (now_ms() - member.enqueued_at).max(0);
    q.waited_ms += waited;
    q.left += 1;
    q.snapshot.average_wait_time = (q.waited_ms / q.left / 1000) as u64;
    waited
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
        let queues = Queues::open(Store::open(&url).await.unwrap())
            .await
            .unwrap();
        let join = |call: &'static str| queues.join("AC1", "support", call, DEFAULT_MAX_SIZE);
        let q = join("CA1").await.unwrap().unwrap();
        assert_eq!(q.max_size, DEFAULT_MAX_SIZE);
        queues.update("AC1", &q.sid, None, Some(2)).await.unwrap();
        join("CA2").await.unwrap().unwrap();
        assert!(join("CA3").await.unwrap().is_none(), "full");
        // Another account's queue of the same name is another queue (made with the size asked).
        let other = queues.join("AC2", "support", "CA9", 7).await.unwrap();
        assert_eq!(other.map(|q| q.max_size), Some(7));
        // Stored: a restart finds both queues (empty), the size kept.
        let again = Queues::open(Store::open(&url).await.unwrap())
            .await
            .unwrap();
        let stored = again.get("AC1", &q.sid).unwrap();
        assert_eq!((stored.max_size, stored.members.len()), (2, 0));
        assert_eq!(again.list("AC2").len(), 1);
        let q = queues.get("AC1", &q.sid).unwrap();
        assert_eq!(
            (position(&q, "CA1"), position(&q, "CA2")),
            (Some(1), Some(2))
        );
        let (front, _) = queues.take_front("AC1", "support").unwrap();
        assert_eq!(front.call, "CA1");
        assert!(
            queues.remove("AC1", &q.sid, "CA1").is_none(),
            "already gone"
        );
        assert!(matches!(
            queues.delete("AC1", &q.sid).await,
            Err(QueueError::NotEmpty)
        ));
        assert!(queues.remove("AC1", &q.sid, "CA2").is_some());
        assert!(matches!(
            queues.create("AC1", "support", 10).await,
            Err(QueueError::NameTaken)
        ));
        assert!(queues.delete("AC1", &q.sid).await.unwrap());
        assert!(queues.take_front("AC1", "support").is_none());
        let again = Queues::open(Store::open(&url).await.unwrap())
            .await
            .unwrap();
        assert!(again.list("AC1").is_empty(), "deleted for good");
    }

    #[tokio::test]
    async fn an_account_makes_at_most_its_share_of_queues() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/q.db", dir.path().display());
        let queues = Queues::open(Store::open(&url).await.unwrap())
            .await
            .unwrap();
        // Made in memory (storing a thousand rows is not what is tested).
        queues.with(|all| {
            for i in 0..MAX_PER_ACCOUNT {
                new_queue(all, "AC1", &format!("q{i}"), 10);
            }
        });
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
