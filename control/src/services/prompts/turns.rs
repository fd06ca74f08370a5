//! Turns at the speech engine, handed out fairly between accounts. A text renders one piece
//! per turn; when the engine is busy, waiting pieces queue per account and the accounts are
//! served round-robin, so an account rendering many long texts gets the same share as one
//! rendering a short one, and a short text waits at most a piece per busy account.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Pieces one account may have waiting at once; past it, new speech is refused.
pub const MAX_WAITING_PER_ACCOUNT: usize = 64;

pub struct Turns {
    state: Mutex<State>,
}

struct State {
    /// Turns nobody holds.
    free: usize,
    /// Accounts with pieces waiting, the next to be served first.
    order: VecDeque<String>,
    waiting: HashMap<String, VecDeque<oneshot::Sender<Turn>>>,
}

/// A turn at the engine, passed on to the next waiter when dropped.
pub struct Turn {
    turns: Option<Arc<Turns>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TooManyWaiting;

impl Turns {
    /// `slots` pieces may render at once.
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: slots.max(1),
                order: VecDeque::new(),
                waiting: HashMap::new(),
            }),
        })
    }

    /// Waits for a turn for `account`'s next piece.
    pub async fn take(self: &Arc<Self>, account: &str) -> Result<Turn, TooManyWaiting> {
        let waiting = {
            let mut s = self.state.lock().expect("turns");
            if s.free > 0 {
                s.free -= 1;
                return Ok(Turn {
                    turns: Some(self.clone()),
                });
            }
            let queue = s.waiting.entry(account.to_owned()).or_default();
            if queue.len() >= MAX_WAITING_PER_ACCOUNT {
                return Err(TooManyWaiting);
            }
            let (tx, rx) = oneshot::channel();
            queue.push_back(tx);
            if queue.len() == 1 {
                s.order.push_back(account.to_owned());
            }
            rx
        };
        // The sender is dropped only once handed a turn (or with `Turns`, which we hold).
        Ok(waiting.await.expect("turns outlive their waiters"))
    }

    /// Pieces waiting for a turn.
    pub fn waiting(&self) -> usize {
        let s = self.state.lock().expect("turns");
        s.waiting.values().map(VecDeque::len).sum()
    }

    /// Gives a returned turn to the first account in line (it goes to the back of the line
    /// if it has more waiting), or keeps it free.
    fn hand_over(self: &Arc<Self>) {
        let mut s = self.state.lock().expect("turns");
        while let Some(account) = s.order.pop_front() {
            let Some(queue) = s.waiting.get_mut(&account) else {
                continue;
            };
            let next = queue.pop_front();
            if queue.is_empty() {
                s.waiting.remove(&account);
            } else {
                s.order.push_back(account);
            }
            let Some(next) = next else { continue };
            let turn = Turn {
                turns: Some(self.clone()),
            };
            match next.send(turn) {
                Ok(()) => return,
                // The waiter went away: its turn is not passed on from here (we hold the
                // lock); the loop finds the next.
                Err(mut unwanted) => unwanted.turns = None,
            }
        }
        s.free += 1;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(turns) = self.turns.take() {
            turns.hand_over();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_go_round_the_accounts_in_line() {
        let turns = Turns::new(1);
        let first = turns.take("busy").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        // "busy" queues four pieces, then "quiet" one: "quiet" is served second, not fifth.
        for (n, account) in ["busy", "busy", "busy", "busy", "quiet"].iter().enumerate() {
            let (line, order) = (turns.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let turn = line.take(account).await.unwrap();
                order.lock().unwrap().push(format!("{account}{n}"));
                drop(turn);
            }));
            // Each waiter is in line before the next comes.
            while turns
                .state
                .lock()
                .unwrap()
                .waiting
                .values()
                .map(VecDeque::len)
                .sum::<usize>()
                < n + 1
            {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["busy0", "quiet4", "busy1", "busy2", "busy3"]
        );
        assert_eq!(turns.state.lock().unwrap().free, 1);
    }

    #[tokio::test]
    async fn a_waiter_that_leaves_gives_up_its_place_and_an_account_queues_a_bounded_number() {
        let turns = Turns::new(1);
        let held = turns.take("a").await.unwrap();
        let line = turns.clone();
        let gone = tokio::spawn(async move { line.take("b").await.map(|_| ()) });
        while turns.state.lock().unwrap().waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        let mut queued = Vec::new();
        for _ in 0..MAX_WAITING_PER_ACCOUNT {
            let turns = turns.clone();
            queued.push(tokio::spawn(
                async move { turns.take("c").await.map(|_| ()) },
            ));
        }
        while turns
            .state
            .lock()
            .unwrap()
            .waiting
            .get("c")
            .map_or(0, VecDeque::len)
            < MAX_WAITING_PER_ACCOUNT
        {
            tokio::task::yield_now().await;
        }
        assert!(matches!(turns.take("c").await, Err(TooManyWaiting)));
        // The departed waiter is passed over; every queued piece gets its turn in the end.
        drop(held);
        for q in queued {
            q.await.unwrap().unwrap();
        }
        assert_eq!(turns.state.lock().unwrap().free, 1);
    }
}
