//! The node's index of Call Control legs: the handles of those running and of those ended
//! lately (their status is still asked for), and the `command_id`s that span legs (a dial's,
//! a conference command's). An index of handles only: what a leg is stays with its task.
//!
//! One task owns the index; the API's handlers and the legs' tasks ask it through its mailbox
//! (as a leg's own state is reached only through the leg's), so no lock is shared. What it
//! decides is [`Index::handle`], a plain function of the index, the ask and the time, tested
//! without a runtime.

use super::LegHandle;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
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
/// Asks waiting for the index: a burst of requests waits here rather than growing a queue.
const MAILBOX: usize = 1024;

/// What a dial made: its call, and the recording it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::providers::telnyx) struct Dialed {
    pub(in crate::providers::telnyx) call: String,
    pub(in crate::providers::telnyx) recording: Option<String>,
}

/// The index's handle: its mailbox, and the legs' tasks (a shutdown waits for them).
pub(in crate::providers::telnyx) struct Legs {
    asks: mpsc::Sender<Ask>,
    tasks: TaskTracker,
}

/// What the index is asked; the asks that read answer on their `oneshot`.
enum Ask {
    Get(String, oneshot::Sender<Option<Arc<LegHandle>>>),
    GetAll(
        Vec<String>,
        oneshot::Sender<HashMap<String, Arc<LegHandle>>>,
    ),
    OfConnection(String, oneshot::Sender<Vec<Arc<LegHandle>>>),
    Dialed(CommandKey, oneshot::Sender<Option<Dialed>>),
    RememberDial(CommandKey, Dialed),
    ConferenceRan(CommandKey, oneshot::Sender<bool>),
    ConferenceCommand(CommandKey),
    ConferenceEnded(String, oneshot::Sender<bool>),
    Add(Arc<LegHandle>),
    /// A leg ended at this time (Unix milliseconds).
    End(String, i64),
}

/// `(account, command_id)` of a dial; `(conference, command_id)` of a conference command.
type CommandKey = (String, String);

#[derive(Default)]
struct Index {
    live: HashMap<String, Arc<LegHandle>>,
    /// When each ended, oldest first.
    ended: VecDeque<(i64, Arc<LegHandle>)>,
    /// Dials, with the call each made (and the recording it asked for), oldest first.
    dials: VecDeque<(CommandKey, Dialed)>,
    /// The conference commands that ran, oldest first.
    conference_commands: VecDeque<CommandKey>,
    /// The conferences whose `conference.ended` went out lately (each participant's leg
    /// hears of the end; the webhook goes once).
    ended_conferences: VecDeque<String>,
}

/// Adds `item` at the back, the oldest going first once `bound` are held.
fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, bound: usize) {
    if queue.len() >= bound {
        queue.pop_front();
    }
    queue.push_back(item);
}

impl Index {
    /// Does what `ask` says at `now` (Unix milliseconds), answering it if it reads. An asker
    /// gone before its answer loses nothing: the answer is dropped.
    fn handle(&mut self, ask: Ask, now: i64) {
        match ask {
            Ask::Get(call, reply) => {
                let _ = reply.send(self.get(&call, now));
            }
            Ask::GetAll(calls, reply) => {
                let found = (calls.into_iter())
                    .filter_map(|call| Some((call.clone(), self.get(&call, now)?)))
                    .collect();
                let _ = reply.send(found);
            }
            Ask::OfConnection(connection, reply) => {
                let mut legs: Vec<_> = (self.live.values())
                    .filter(|l| l.view().context.connection_id == connection)
                    .cloned()
                    .collect();
                legs.sort_by_key(|l| l.view().context.start_time);
                let _ = reply.send(legs);
            }
            Ask::Dialed(key, reply) => {
                let dialed = (self.dials.iter()).find(|(k, _)| *k == key);
                let _ = reply.send(dialed.map(|(_, d)| d.clone()));
            }
            Ask::RememberDial(key, dialed) => {
                push_bounded(&mut self.dials, (key, dialed), DIAL_IDS)
            }
            Ask::ConferenceRan(key, reply) => {
                let _ = reply.send(self.conference_commands.contains(&key));
            }
            Ask::ConferenceCommand(key) => {
                push_bounded(&mut self.conference_commands, key, CONFERENCE_IDS);
            }
            Ask::ConferenceEnded(conference, reply) => {
                let news = !self.ended_conferences.contains(&conference);
                if news {
                    push_bounded(&mut self.ended_conferences, conference, CONFERENCE_ENDS);
                }
                let _ = reply.send(news);
            }
            Ask::Add(leg) => {
                self.live.insert(leg.call.clone(), leg);
            }
            Ask::End(call, at) => {
                if let Some(leg) = self.live.remove(&call) {
                    push_bounded(&mut self.ended, (at, leg), ENDED_KEPT);
                }
            }
        }
    }

    /// A live leg, or one ended within [`ENDED_KEPT_MS`] of `now`.
    fn get(&mut self, call: &str, now: i64) -> Option<Arc<LegHandle>> {
        if let Some(leg) = self.live.get(call) {
            return Some(leg.clone());
        }
        while (self.ended.front()).is_some_and(|(at, _)| now - at > ENDED_KEPT_MS) {
            self.ended.pop_front();
        }
        (self.ended.iter())
            .find(|(_, l)| l.call == call)
            .map(|(_, l)| l.clone())
    }
}

impl Legs {
    /// The index, its task started on the current runtime (it ends when the handle is
    /// dropped).
    pub(in crate::providers::telnyx) fn start() -> Self {
        let (asks, mut mailbox) = mpsc::channel(MAILBOX);
        tokio::spawn(async move {
            let mut index = Index::default();
            while let Some(ask) = mailbox.recv().await {
                index.handle(ask, crate::infra::clock::now_ms());
            }
        });
        Self {
            asks,
            tasks: TaskTracker::new(),
        }
    }

    /// Posts `ask`. The index's task outlives every handle, so a send fails only when the
    /// node is going down, where nothing is left to do.
    async fn post(&self, ask: Ask) {
        let _ = self.asks.send(ask).await;
    }

    /// Posts the ask `make` builds around a reply and waits for the answer (`missing` if the
    /// index has gone: the node is going down).
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Ask, missing: T) -> T {
        let (reply, answer) = oneshot::channel();
        self.post(make(reply)).await;
        answer.await.unwrap_or(missing)
    }

    /// A live leg, or one that ended lately.
    pub(in crate::providers::telnyx) async fn get(&self, call: &str) -> Option<Arc<LegHandle>> {
        self.ask(|r| Ask::Get(call.to_owned(), r), None).await
    }

    /// Those of `calls` whose legs [`Self::get`] would find, by call, in one ask.
    pub(in crate::providers::telnyx) async fn get_all(
        &self,
        calls: Vec<String>,
    ) -> HashMap<String, Arc<LegHandle>> {
        (self.ask(|r| Ask::GetAll(calls, r), HashMap::new())).await
    }

    /// The live legs of a connection, oldest first.
    pub(in crate::providers::telnyx) async fn of_connection(
        &self,
        connection: &str,
    ) -> Vec<Arc<LegHandle>> {
        (self.ask(|r| Ask::OfConnection(connection.to_owned(), r), Vec::new())).await
    }

    /// What an earlier dial with this `command_id` made.
    pub(in crate::providers::telnyx) async fn dialed(
        &self,
        account: &str,
        command_id: &str,
    ) -> Option<Dialed> {
        let key = (account.to_owned(), command_id.to_owned());
        self.ask(|r| Ask::Dialed(key, r), None).await
    }

    pub(in crate::providers::telnyx) async fn remember_dial(
        &self,
        account: &str,
        command_id: &str,
        dialed: Dialed,
    ) {
        let key = (account.to_owned(), command_id.to_owned());
        self.post(Ask::RememberDial(key, dialed)).await;
    }

    /// Whether a command with this `command_id` already ran on the conference.
    pub(in crate::providers::telnyx) async fn conference_ran(
        &self,
        conference: &str,
        id: &str,
    ) -> bool {
        let key = (conference.to_owned(), id.to_owned());
        self.ask(|r| Ask::ConferenceRan(key, r), false).await
    }

    /// Records that a conference command with this `command_id` ran.
    pub(in crate::providers::telnyx) async fn conference_command(
        &self,
        conference: &str,
        id: &str,
    ) {
        let key = (conference.to_owned(), id.to_owned());
        self.post(Ask::ConferenceCommand(key)).await;
    }

    /// Whether `conference`'s end is news (its `conference.ended` is to go out now).
    pub(in crate::providers::telnyx) async fn conference_ended(&self, conference: &str) -> bool {
        (self.ask(|r| Ask::ConferenceEnded(conference.to_owned(), r), false)).await
    }

    pub(super) async fn add(&self, leg: Arc<LegHandle>) {
        self.post(Ask::Add(leg)).await;
    }

    /// Moves a live leg to the ended ones (once).
    pub(in crate::providers::telnyx) async fn end(&self, call: &str, at: i64) {
        self.post(Ask::End(call.to_owned(), at)).await;
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

#[cfg(test)]
mod tests {
    use super::super::{Leg, OnAnswer};
    use super::*;
    use crate::providers::telnyx::events::LegContext;

    fn leg(call: &str, connection: &str, start_time: i64) -> Arc<LegHandle> {
        let context: LegContext = serde_json::from_value(serde_json::json!({
            "call": call, "session": call, "connection_id": connection, "from": "+1555",
            "to": "+1666", "direction": "outgoing", "client_state": null,
            "start_time": start_time,
        }))
        .unwrap();
        let (leg, _jobs) = Leg::new("AC1", context, String::new(), OnAnswer::default());
        leg.handle.clone()
    }

    /// Runs `ask` (built around a reply) on `index` at `now`; its answer.
    fn asked<T>(index: &mut Index, now: i64, make: impl FnOnce(oneshot::Sender<T>) -> Ask) -> T {
        let (reply, mut answer) = oneshot::channel();
        index.handle(make(reply), now);
        answer.try_recv().expect("answered at once")
    }

    fn get(index: &mut Index, now: i64, call: &str) -> Option<String> {
        asked(index, now, |r| Ask::Get(call.into(), r)).map(|l| l.call.clone())
    }

    #[test]
    fn an_ended_leg_is_read_for_ten_minutes_then_forgotten() {
        let mut index = Index::default();
        index.handle(Ask::Add(leg("CA1", "app", 1)), 0);
        assert_eq!(get(&mut index, 0, "CA1").as_deref(), Some("CA1"));
        index.handle(Ask::End("CA1".into(), 1_000), 1_000);
        index.handle(Ask::End("CA1".into(), 2_000), 2_000);
        assert_eq!(index.ended.len(), 1, "ended once");
        assert!(index.live.is_empty());
        let kept = 1_000 + ENDED_KEPT_MS;
        assert_eq!(get(&mut index, kept, "CA1").as_deref(), Some("CA1"));
        assert_eq!(get(&mut index, kept + 1, "CA1"), None);
        assert_eq!(get(&mut index, kept + 1, "CA2"), None);
    }

    #[test]
    fn a_batch_finds_the_live_and_the_lately_ended() {
        let mut index = Index::default();
        index.handle(Ask::Add(leg("CA1", "app", 1)), 0);
        index.handle(Ask::Add(leg("CA2", "app", 2)), 0);
        index.handle(Ask::End("CA2".into(), 10), 10);
        let calls = vec!["CA1".into(), "CA2".into(), "CA3".into()];
        let found = asked(&mut index, 20, |r| Ask::GetAll(calls, r));
        let mut keys: Vec<&str> = found.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["CA1", "CA2"]);
    }

    #[test]
    fn a_connections_live_legs_come_oldest_first() {
        let mut index = Index::default();
        for (call, connection, start) in [("CA2", "a", 20), ("CA1", "a", 10), ("CA3", "b", 5)] {
            index.handle(Ask::Add(leg(call, connection, start)), 0);
        }
        index.handle(Ask::Add(leg("CA4", "a", 1)), 0);
        index.handle(Ask::End("CA4".into(), 0), 0);
        let of_a = asked(&mut index, 0, |r| Ask::OfConnection("a".into(), r));
        let calls: Vec<&str> = of_a.iter().map(|l| l.call.as_str()).collect();
        assert_eq!(calls, ["CA1", "CA2"]);
    }

    #[test]
    fn command_ids_are_kept_per_account_and_conference_and_bounded() {
        let mut index = Index::default();
        let key = |a: &str, c: &str| (a.to_owned(), c.to_owned());
        let made = Dialed {
            call: "CA1".into(),
            recording: None,
        };
        index.handle(Ask::RememberDial(key("AC1", "x"), made.clone()), 0);
        assert_eq!(
            asked(&mut index, 0, |r| Ask::Dialed(key("AC1", "x"), r)),
            Some(made)
        );
        assert_eq!(
            asked(&mut index, 0, |r| Ask::Dialed(key("AC2", "x"), r)),
            None,
            "another account's id"
        );
        for i in 0..DIAL_IDS {
            let dialed = Dialed {
                call: format!("CA{i}"),
                recording: None,
            };
            index.handle(Ask::RememberDial(key("AC1", &i.to_string()), dialed), 0);
        }
        assert_eq!(index.dials.len(), DIAL_IDS);
        assert_eq!(
            asked(&mut index, 0, |r| Ask::Dialed(key("AC1", "x"), r)),
            None,
            "the oldest went first"
        );

        index.handle(Ask::ConferenceCommand(key("CF1", "y")), 0);
        assert!(asked(&mut index, 0, |r| Ask::ConferenceRan(
            key("CF1", "y"),
            r
        )));
        assert!(!asked(&mut index, 0, |r| Ask::ConferenceRan(
            key("CF2", "y"),
            r
        )));
    }

    #[test]
    fn a_conferences_end_is_news_once() {
        let mut index = Index::default();
        let ended =
            |index: &mut Index, c: &str| asked(index, 0, |r| Ask::ConferenceEnded(c.into(), r));
        assert!(ended(&mut index, "CF1"));
        assert!(!ended(&mut index, "CF1"));
        for i in 0..CONFERENCE_ENDS {
            assert!(ended(&mut index, &format!("CF-{i}")));
        }
        assert!(
            ended(&mut index, "CF1"),
            "forgotten once the bound is passed"
        );
    }
}
