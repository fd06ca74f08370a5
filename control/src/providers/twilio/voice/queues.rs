//! Call queues (`<Enqueue>`, `<Dial><Queue>`, the Queues resource): per account, by name, the
//! calls waiting in order. A queue is created by the API or by the first `<Enqueue>` naming
//! it; its members are live calls, so the queues live in memory with them.

use crate::accounts::new_sid;
use crate::call::now_ms;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Twilio's default and largest `MaxSize`.
pub const DEFAULT_MAX_SIZE: u32 = 1000;
pub const LARGEST_MAX_SIZE: u32 = 5000;

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

#[derive(Default)]
pub struct Queues {
    queues: Mutex<Vec<Queue>>,
}

/// Why a queue could not be created or changed.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    NameTaken,
    NotEmpty,
}

impl Queues {
    fn with<T>(&self, f: impl FnOnce(&mut Vec<Queue>) -> T) -> T {
        f(&mut self.queues.lock().expect("not poisoned"))
    }

    /// A new, empty queue.
    pub fn create(
        &self,
        account: &str,
        name: &str,
        max_size: u32,
    ) -> Result<QueueSnapshot, QueueError> {
        self.with(|queues| {
            if queues
                .iter()
                .any(|q| q.snapshot.account == account && q.snapshot.friendly_name == name)
            {
                return Err(QueueError::NameTaken);
            }
            Ok(new_queue(queues, account, name, max_size).snapshot.clone())
        })
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
        self.list(account).into_iter().find(|q| q.sid == sid)
    }

    /// Renames or resizes a queue.
    pub fn update(
        &self,
        account: &str,
        sid: &str,
        name: Option<&str>,
        max_size: Option<u32>,
    ) -> Result<Option<QueueSnapshot>, QueueError> {
        self.with(|queues| {
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
        })
    }

    /// Deletes an empty queue; `Ok(false)` when there is none.
    pub fn delete(&self, account: &str, sid: &str) -> Result<bool, QueueError> {
        self.with(|queues| {
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
        })
    }

    /// Puts a call at the end of the named queue (created if need be); `None` when it is full.
    pub fn join(&self, account: &str, name: &str, call: &str) -> Option<QueueSnapshot> {
        self.with(|queues| {
            let i = match queues
                .iter()
                .position(|q| q.snapshot.account == account && q.snapshot.friendly_name == name)
            {
                Some(i) => i,
                None => {
                    new_queue(queues, account, name, DEFAULT_MAX_SIZE);
                    queues.len() - 1
                }
            };
            let q = &mut queues[i];
            if q.snapshot.members.len() >= q.snapshot.max_size as usize {
                return None;
            }
            q.snapshot.members.push(Member {
                call: call.to_owned(),
                enqueued_at: now_ms(),
            });
            q.arrivals.notify_one();
            Some(q.snapshot.clone())
        })
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

    #[test]
    fn calls_wait_in_order_up_to_the_size_and_leave_with_their_wait() {
        let queues = Queues::default();
        let q = queues.join("AC1", "support", "CA1").unwrap();
        assert_eq!(q.max_size, DEFAULT_MAX_SIZE);
        queues.update("AC1", &q.sid, None, Some(2)).unwrap();
        queues.join("AC1", "support", "CA2").unwrap();
        assert!(queues.join("AC1", "support", "CA3").is_none(), "full");
        // Another account's queue of the same name is another queue.
        assert!(queues.join("AC2", "support", "CA9").is_some());
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
        assert_eq!(queues.delete("AC1", &q.sid), Err(QueueError::NotEmpty));
        assert!(queues.remove("AC1", &q.sid, "CA2").is_some());
        assert_eq!(
            queues.create("AC1", "support", 10).unwrap_err(),
            QueueError::NameTaken
        );
        assert_eq!(queues.delete("AC1", &q.sid), Ok(true));
        assert!(queues.take_front("AC1", "support").is_none());
    }
}
