//! The node's index of Call Control legs: the handles of those running and of those ended
//! lately (their status is still asked for), and the `command_id`s that span legs (a dial's,
//! a conference command's). An index of handles only: what a leg is stays with its task.

use super::LegHandle;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// Dial `command_id`s remembered across the node.
const DIAL_IDS: usize = 10_000;
/// Conference `command_id`s remembered across the node.
const CONFERENCE_IDS: usize = 10_000;
/// An ended leg can be read for this long (Telnyx keeps a call's status ~10 minutes).
const ENDED_KEPT_MS: i64 = 10 * 60 * 1000;
/// Ended legs kept at most (the oldest go first).
const ENDED_KEPT: usize = 10_000;
/// Conference ends remembered: more than conferences can end at once.
const CONFERENCE_ENDS: usize = 1024;

/// What a dial made: its call, and the recording it asked for.
#[derive(Debug, Clone)]
pub(in crate::providers::telnyx) struct Dialed {
    pub(in crate::providers::telnyx) call: String,
    pub(in crate::providers::telnyx) recording: Option<String>,
}

#[derive(Default)]
pub(in crate::providers::telnyx) struct Legs {
    index: Mutex<Index>,
    tasks: TaskTracker,
}

#[derive(Default)]
struct Index {
    live: HashMap<String, Arc<LegHandle>>,
    /// When each ended, oldest first.
    ended: VecDeque<(i64, Arc<LegHandle>)>,
    /// `(account, command_id)` of dials, with the call each made (and the recording it
    /// asked for), oldest first.
    dials: VecDeque<((String, String), Dialed)>,
    /// `(conference, command_id)` of the conference commands that ran, oldest first.
    conference_commands: VecDeque<(String, String)>,
    /// The conferences whose `conference.ended` went out lately (each participant's leg
    /// hears of the end; the webhook goes once).
    ended_conferences: VecDeque<String>,
}

impl Legs {
    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().expect("not poisoned")
    }

    pub(in crate::providers::telnyx) fn get(&self, call: &str) -> Option<Arc<LegHandle>> {
        let mut index = self.index();
        if let Some(leg) = index.live.get(call) {
            return Some(leg.clone());
        }
        let now = crate::infra::clock::now_ms();
        while (index.ended.front()).is_some_and(|(at, _)| now - at > ENDED_KEPT_MS) {
            index.ended.pop_front();
        }
        (index.ended.iter())
            .find(|(_, l)| l.call == call)
            .map(|(_, l)| l.clone())
    }

    /// The live legs of a connection, oldest first.
    pub(in crate::providers::telnyx) fn of_connection(
        &self,
        connection: &str,
    ) -> Vec<Arc<LegHandle>> {
        let mut legs: Vec<_> = (self.index().live.values())
            .filter(|l| l.view().context.connection_id == connection)
            .cloned()
            .collect();
        legs.sort_by_key(|l| l.view().context.start_time);
        legs
    }

    /// What an earlier dial with this `command_id` made.
    pub(in crate::providers::telnyx) fn dialed(
        &self,
        account: &str,
        command_id: &str,
    ) -> Option<Dialed> {
        (self.index().dials.iter())
            .find(|((a, c), _)| a == account && c == command_id)
            .map(|(_, dialed)| dialed.clone())
    }

    pub(in crate::providers::telnyx) fn remember_dial(
        &self,
        account: &str,
        command_id: &str,
        dialed: Dialed,
    ) {
        let dials = &mut self.index().dials;
        if dials.len() == DIAL_IDS {
            dials.pop_front();
        }
        dials.push_back(((account.to_owned(), command_id.to_owned()), dialed));
    }

    /// Whether a command with this `command_id` already ran on the conference.
    pub(in crate::providers::telnyx) fn conference_ran(&self, conference: &str, id: &str) -> bool {
        (self.index().conference_commands.iter()).any(|(c, i)| c == conference && i == id)
    }

    /// Records that a conference command with this `command_id` ran.
    pub(in crate::providers::telnyx) fn conference_command(&self, conference: &str, id: &str) {
        let ran = &mut self.index().conference_commands;
        if ran.len() == CONFERENCE_IDS {
            ran.pop_front();
        }
        ran.push_back((conference.to_owned(), id.to_owned()));
    }

    /// Whether `conference`'s end is news (its `conference.ended` is to go out now).
    pub(in crate::providers::telnyx) fn conference_ended(&self, conference: &str) -> bool {
        let ended = &mut self.index().ended_conferences;
        if ended.iter().any(|c| c == conference) {
            return false;
        }
        if ended.len() == CONFERENCE_ENDS {
            ended.pop_front();
        }
        ended.push_back(conference.to_owned());
        true
    }

    pub(super) fn add(&self, leg: Arc<LegHandle>) {
        self.index().live.insert(leg.call.clone(), leg);
    }

    /// Moves a live leg to the ended ones (once).
    pub(in crate::providers::telnyx) fn end(&self, call: &str, at: i64) {
        let mut index = self.index();
        let Some(leg) = index.live.remove(call) else {
            return;
        };
        if index.ended.len() == ENDED_KEPT {
            index.ended.pop_front();
        }
        index.ended.push_back((at, leg));
    }

    /// Runs a task of the legs' (a shutdown waits for it).
    pub(in crate::providers::telnyx) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Waits for the legs' tasks (their calls have ended) to queue their last webhooks.
    pub(in crate::providers::telnyx) async fn drain(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}
