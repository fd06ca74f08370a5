//! What outlives a browser's Verto socket: the sessions whose socket dropped with calls up,
//! waiting (by `sessid`) for their page to log in again, and the `call_report_id`s given to
//! signed-in sessions (the SDK posts a call's report with it, at the call's end, possibly
//! after its socket closed). One task owns both; the sessions and the report handler ask it
//! through its mailbox, so no lock is shared. What it decides is [`Book::handle`], a plain
//! function of the book, the ask and the time, tested without a runtime.

use crate::services::directory::sip_logins::uuid_v4;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Sessions waiting at once.
const MAX_DETACHED: usize = 10_000;
/// How long after its session ended a report is taken.
const REPORT_WAIT: Duration = Duration::from_secs(600);
/// Ids held at once (sessions open, and ended within [`REPORT_WAIT`]).
const MAX_CALL_REPORT_IDS: usize = 20_000;
/// Asks waiting for the book.
const MAILBOX: usize = 1024;

/// A session whose socket dropped: its login, and each call up with the token that takes it
/// back, until it is given up.
pub(super) struct Waiting {
    pub(super) user: String,
    pub(super) calls: Vec<(String, String)>,
    pub(super) until: Instant,
}

/// The book's handle.
pub(super) struct VertoSessions {
    asks: mpsc::Sender<Ask>,
}

enum Ask {
    Park(String, Waiting),
    /// `(sessid, user)`: the calls of that session of that login, if it waits.
    Take(
        String,
        String,
        oneshot::Sender<Option<Vec<(String, String)>>>,
    ),
    /// A new report id for a session of the user, if not too many are held.
    Issue(String, oneshot::Sender<Option<String>>),
    /// The session with this report id closed.
    Closed(String),
    UserOf(String, oneshot::Sender<Option<String>>),
}

#[derive(Default)]
struct Book {
    detached: HashMap<String, Waiting>,
    /// By id: the login, and until when a report may come with it (none while its session is
    /// open).
    reports: HashMap<String, (String, Option<Instant>)>,
}

impl Book {
    /// Does what `ask` says at `now`, answering it if it reads (an asker gone first loses
    /// nothing).
    fn handle(&mut self, ask: Ask, now: Instant) {
        match ask {
            Ask::Park(sessid, waiting) => {
                self.detached.retain(|_, w| w.until > now);
                if self.detached.len() < MAX_DETACHED {
                    self.detached.insert(sessid, waiting);
                }
            }
            Ask::Take(sessid, user, reply) => {
                // Another login's claim leaves the session waiting.
                let mine = (self.detached.get(&sessid)).is_some_and(|w| w.user == user);
                let taken = mine.then(|| self.detached.remove(&sessid)).flatten();
                let _ = reply.send(taken.filter(|w| w.until > now).map(|w| w.calls));
            }
            Ask::Issue(user, reply) => {
                if self.reports.len() >= MAX_CALL_REPORT_IDS {
                    (self.reports).retain(|_, (_, until)| until.is_none_or(|u| u > now));
                }
                let id = (self.reports.len() < MAX_CALL_REPORT_IDS).then(uuid_v4);
                if let Some(id) = &id {
                    self.reports.insert(id.clone(), (user, None));
                }
                let _ = reply.send(id);
            }
            Ask::Closed(id) => {
                if let Some(entry) = self.reports.get_mut(&id) {
                    entry.1 = Some(now + REPORT_WAIT);
                }
            }
            Ask::UserOf(id, reply) => {
                let user = (self.reports.get(&id))
                    .filter(|(_, until)| until.is_none_or(|u| u > now))
                    .map(|(user, _)| user.clone());
                let _ = reply.send(user);
            }
        }
    }
}

impl VertoSessions {
    /// The book, its task started on the current runtime (it ends when the handle is
    /// dropped).
    pub(super) fn start() -> Self {
        let (asks, mut mailbox) = mpsc::channel(MAILBOX);
        tokio::spawn(async move {
            let mut book = Book::default();
            while let Some(ask) = mailbox.recv().await {
                book.handle(ask, Instant::now());
            }
        });
        Self { asks }
    }

    /// Posts `ask`; a send fails only when the node is going down.
    async fn post(&self, ask: Ask) {
        let _ = self.asks.send(ask).await;
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<Option<T>>) -> Ask) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.post(make(reply)).await;
        answer.await.ok().flatten()
    }

    /// Keeps the session `sessid`'s calls for its page until `waiting.until`.
    pub(super) async fn park(&self, sessid: &str, waiting: Waiting) {
        self.post(Ask::Park(sessid.to_owned(), waiting)).await;
    }

    /// The calls of the session `sessid` of `user`, if it waits (once).
    pub(super) async fn take(&self, sessid: &str, user: &str) -> Option<Vec<(String, String)>> {
        (self.ask(|r| Ask::Take(sessid.to_owned(), user.to_owned(), r))).await
    }

    /// A new report id for a session of `user`, or none when too many are held.
    pub(super) async fn issue(&self, user: &str) -> Option<String> {
        self.ask(|r| Ask::Issue(user.to_owned(), r)).await
    }

    /// The session closed: its id is good for [`REPORT_WAIT`] more.
    pub(super) async fn closed(&self, id: &str) {
        self.post(Ask::Closed(id.to_owned())).await;
    }

    /// Whose report id this is, while it is good.
    pub(super) async fn user_of(&self, id: &str) -> Option<String> {
        self.ask(|r| Ask::UserOf(id.to_owned(), r)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked<T>(book: &mut Book, now: Instant, make: impl FnOnce(oneshot::Sender<T>) -> Ask) -> T {
        let (reply, mut answer) = oneshot::channel();
        book.handle(make(reply), now);
        answer.try_recv().expect("answered at once")
    }

    fn take(
        book: &mut Book,
        now: Instant,
        sessid: &str,
        user: &str,
    ) -> Option<Vec<(String, String)>> {
        asked(book, now, |r| Ask::Take(sessid.into(), user.into(), r))
    }

    /// A waiting session is given back once, to its own login (another's claim does not
    /// evict it), before its wait is over.
    #[test]
    fn a_detached_session_goes_back_to_its_login_once_and_in_time() {
        let mut book = Book::default();
        let now = Instant::now();
        let calls = vec![("call-1".to_owned(), "token-1".to_owned())];
        let waiting = |until| Waiting {
            user: "alice".into(),
            calls: calls.clone(),
            until,
        };
        book.handle(
            Ask::Park("s1".into(), waiting(now + Duration::from_secs(60))),
            now,
        );
        assert_eq!(take(&mut book, now, "s1", "mallory"), None, "another login");
        assert_eq!(take(&mut book, now, "s2", "alice"), None, "another session");
        assert_eq!(take(&mut book, now, "s1", "alice"), Some(calls.clone()));
        assert_eq!(take(&mut book, now, "s1", "alice"), None, "once");
        book.handle(
            Ask::Park("s1".into(), waiting(now + Duration::from_secs(1))),
            now,
        );
        let later = now + Duration::from_secs(2);
        assert_eq!(take(&mut book, later, "s1", "alice"), None, "too late");
    }

    /// A report id names its login while its session is open and for ten minutes after, and
    /// no more are given than the bound (the lapsed ones make room).
    #[test]
    fn a_report_id_is_good_until_ten_minutes_after_its_session() {
        let mut book = Book::default();
        let now = Instant::now();
        let id = asked(&mut book, now, |r| Ask::Issue("alice".into(), r)).unwrap();
        let user_of =
            |book: &mut Book, at, id: &str| asked(book, at, |r| Ask::UserOf(id.into(), r));
        let much_later = now + Duration::from_secs(3600);
        assert_eq!(
            user_of(&mut book, much_later, &id).as_deref(),
            Some("alice"),
            "open"
        );
        assert_eq!(user_of(&mut book, now, "no-such-id"), None);
        book.handle(Ask::Closed(id.clone()), now);
        assert_eq!(
            user_of(&mut book, now + REPORT_WAIT - Duration::from_secs(1), &id).as_deref(),
            Some("alice")
        );
        assert_eq!(user_of(&mut book, now + REPORT_WAIT, &id), None, "lapsed");

        for _ in 1..MAX_CALL_REPORT_IDS {
            assert!(asked(&mut book, now, |r| Ask::Issue("bob".into(), r)).is_some());
        }
        assert_eq!(
            asked(&mut book, now, |r| Ask::Issue("bob".into(), r)),
            None,
            "full"
        );
        // Alice's, closed, lapses and makes room.
        assert!(asked(&mut book, much_later, |r| Ask::Issue("bob".into(), r)).is_some());
    }
}
