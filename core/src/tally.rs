//! The calls up or ringing per account and per channel group over all of a node's call-core
//! shards: what an account's limits and a channel group's bound are held to when the node's
//! calls are spread over several cores. A lone core counts its own calls instead (it holds
//! them all). Each call's share is what it last added; a core recounts a call whenever its
//! account, its channel groups or its life change ([`Calls::recount`](super::calls::Calls::recount)), so the tally
//! follows the calls without a core ever reading another's.

use std::collections::HashMap;
use std::sync::Mutex;

/// The node's tally, shared by its shards' cores.
#[derive(Debug, Default)]
pub struct NodeTally(Mutex<Counts>);

#[derive(Debug, Default)]
struct Counts {
    accounts: HashMap<String, usize>,
    groups: HashMap<String, usize>,
}

/// What one call adds to the tally: its account and channel groups while it lives, nothing
/// once it ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Share {
    account: Option<String>,
    groups: Vec<String>,
}

impl Share {
    /// What `call` adds now (a visit's leg, nothing: the visiting call counts).
    pub(super) fn of(call: &super::model::Call) -> Self {
        match call.ended() || call.is_visit() {
            true => Share::default(),
            false => Share {
                account: call.record.account_sid.clone(),
                groups: call.channels.clone(),
            },
        }
    }
}

impl NodeTally {
    /// Calls of `account` up or ringing on the node.
    pub fn account(&self, account: &str) -> usize {
        self.counts().accounts.get(account).copied().unwrap_or(0)
    }

    /// Calls up or ringing on the node that hold a channel of `group`.
    pub fn group(&self, group: &str) -> usize {
        self.counts().groups.get(group).copied().unwrap_or(0)
    }

    /// A call's share goes from `old` to `new`.
    pub(super) fn replace(&self, old: &Share, new: &Share) {
        let mut counts = self.counts();
        let Counts { accounts, groups } = &mut *counts;
        for (share, added) in [(old, false), (new, true)] {
            if let Some(account) = &share.account {
                step(accounts, account, added);
            }
            for group in &share.groups {
                step(groups, group, added);
            }
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Each change is whole before the lock is let go: a poisoned lock holds sound counts.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One more or one fewer under `key`; a count that reaches none is dropped, so the maps hold
/// only the accounts and groups with calls.
fn step(map: &mut HashMap<String, usize>, key: &str, added: bool) {
    if added {
        *map.entry(key.to_owned()).or_default() += 1;
        return;
    }
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(account: Option<&str>, groups: &[&str]) -> Share {
        Share {
            account: account.map(str::to_owned),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn a_calls_changes_move_its_share_and_its_end_takes_it_out() {
        let tally = NodeTally::default();
        let none = Share::default();
        // Two shards' calls of one account.
        tally.replace(&none, &share(Some("AC1"), &["trunk-a"]));
        tally.replace(&none, &share(None, &[]));
        assert_eq!((tally.account("AC1"), tally.group("trunk-a")), (1, 1));
        // The second learns its account later (its number's owner), and takes a channel.
        tally.replace(
            &share(None, &[]),
            &share(Some("AC1"), &["trunk-a", "profile"]),
        );
        assert_eq!(
            (
                tally.account("AC1"),
                tally.group("trunk-a"),
                tally.group("profile")
            ),
            (2, 2, 1)
        );
        // Both end: nothing is left, and the maps hold nothing.
        tally.replace(&share(Some("AC1"), &["trunk-a"]), &none);
        tally.replace(&share(Some("AC1"), &["trunk-a", "profile"]), &none);
        assert_eq!((tally.account("AC1"), tally.group("trunk-a")), (0, 0));
        let counts = tally.counts();
        assert!(counts.accounts.is_empty() && counts.groups.is_empty());
    }
}
