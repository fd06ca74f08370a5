//! [`CallControl`], the handle that carries commands to the core's thread and answers back,
//! and the errors a command meets.

use super::*;
use std::collections::HashMap;
use switchboard_media::{EndpointId, Frame, MediaEngine, MediaOp};
use tokio::sync::{mpsc, oneshot};

/// What the core knows of a call now (see [`CallControl::view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    pub status: CallStatus,
    /// The recording of the call's own audio running now (its SID), if any.
    pub recording: Option<String>,
    /// The account the call belongs to (none for a call routed between trunks).
    pub account: Option<String>,
}

impl CallView {
    /// Answered and not ended.
    pub fn is_up(&self) -> bool {
        self.status == CallStatus::InProgress
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no call {0}")]
    NotFound(String),
    /// Not possible in the call's status (`completed`, `ringing`, …).
    #[error("not possible while the call is {status}")]
    InvalidState { status: super::CallStatus },
    /// Only an answered call may do it (join a conference).
    #[error("not possible before the call is answered")]
    NotAnswered,
    /// Only a call in a conference may do it (hold, announce).
    #[error("the call is not in a conference")]
    NotInConference,
    #[error("{0}")]
    BadArgument(String),
    #[error("no route to the destination (SIP {0})")]
    NoRoute(u16),
    #[error("no free media ports")]
    NoMedia,
    /// Call records wait in memory for the database past [`crate::infra::store::writer::HIGH_WATER`].
    #[error("call records cannot be stored fast enough; new calls are refused for now")]
    Overloaded,
    /// A `sip:` URI whose host is neither a trunk's nor on the operator's allowlist.
    #[error("{0} may not be dialed directly")]
    NotAllowed(String),
    #[error("the call core has stopped")]
    Stopped,
    /// The account has as many calls as it may, or places them faster than it may.
    #[error("{0}")]
    AccountLimit(crate::call::account_limits::Exceeded),
    /// A caller ID the account may not present (see [`crate::call::caller_id`]).
    #[error("the account may not present {0} as its caller ID")]
    CallerIdNotAllowed(String),
    /// The node is draining before it stops: calls up go on, new ones go to another node.
    #[error("this node is shutting down; new calls are refused")]
    ShuttingDown,
    /// The call is connected by a route: it takes commands on its media and a hang-up, not
    /// ones that would answer it, move it or hand it to an application.
    #[error("the call is connected by a route and cannot take that command")]
    Routed,
}

/// A conference as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceSnapshot {
    /// `CF` and 32 hex digits.
    pub sid: String,
    /// The room name it was joined by.
    pub name: String,
    pub started: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The SID of its recording running now, if any (paused or not).
    pub recording: Option<String>,
    pub participants: Vec<ParticipantSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSnapshot {
    pub call: String,
    pub muted: bool,
    pub held: bool,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    pub joined_at: i64,
    /// The participant it coaches, if it is a coach.
    pub coaching: Option<String>,
}

/// A request to the core's thread.
pub(crate) enum Request {
    Originate(Box<Originate>, oneshot::Sender<Result<String, CallError>>),
    Command {
        call: String,
        command: CallCommand,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Subscribe {
        call: String,
        events: mpsc::Sender<CallEvent>,
    },
    /// Every event of the account's calls from now on, to `events` while it keeps up.
    WatchAccount {
        account: String,
        events: mpsc::Sender<CallEvent>,
    },
    Conferences(oneshot::Sender<Vec<ConferenceSnapshot>>),
    /// Ends a conference (by SID): everyone in it leaves.
    EndConference(String, oneshot::Sender<bool>),
    /// A call as the core knows it now.
    View(String, oneshot::Sender<Result<CallView, CallError>>),
    /// The call one of whose legs is the SIP dialog with this Call-ID (a gateway's leg).
    BySipCallId(String, oneshot::Sender<Option<String>>),
    /// A direct line into a call's injection queue.
    MediaLink(String, oneshot::Sender<Result<MediaLink, CallError>>),
    /// The call bridged with a call, and a line into its injection queue.
    PeerLink(
        String,
        oneshot::Sender<Result<Option<(String, MediaLink)>, CallError>>,
    ),
    /// Incoming calls to the numbers `dialed` matches go to this controller instead of the
    /// static routes.
    Control {
        dialed: Dialed,
        events: mpsc::Sender<CallEvent>,
    },
    /// Incoming calls to what `dialed` matches go back to the routes.
    Release(Dialed),
    /// Routed calls whose routes ask for services go here from now on.
    ServeRoutes(mpsc::Sender<crate::call::ServeRoute>),
    /// New calls are refused from now on (SIP 503 with `retry_after`, originations
    /// [`CallError::ShuttingDown`]); `done` is told once no call is left.
    Drain {
        retry_after: u32,
        done: oneshot::Sender<()>,
    },
    /// The trunks, routes and users of a reloaded configuration; calls up keep what they have.
    Reconfigure(Box<crate::call::dial_plan::DialPlan>),
    /// The SIP logins accounts made through the API (credential connections, telephony
    /// credentials): user name → (password, account). They register and call like the
    /// configuration's users, which win a name both have. Answered once they are in force.
    AccountUsers(
        HashMap<String, (String, String)>,
        Option<oneshot::Sender<()>>,
    ),
    #[cfg(debug_assertions)]
    Fault(Fault),
}

/// A failure the liveness tests make the core suffer (debug builds only).
#[cfg(debug_assertions)]
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Panic,
    Stall(std::time::Duration),
}

#[cfg(debug_assertions)]
impl Fault {
    pub(crate) fn strike(self) {
        match self {
            Self::Panic => panic!("fault injected into the call core"),
            // Blocking the core's thread is the point: it stands for a round that never ends.
            Self::Stall(d) => std::thread::sleep(d),
        }
    }
}

/// Which dialed numbers a controller takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dialed {
    /// This number exactly; it wins over every prefix.
    Number(String),
    /// Numbers starting with this ("" for all); the longest prefix wins.
    Prefix(String),
    /// Whatever this registered user (a phone, a browser) calls: it wins over numbers.
    Caller(String),
}

impl Dialed {
    /// How well `number` matches: `None` not at all; higher is more specific.
    pub(crate) fn rank(&self, number: &str) -> Option<usize> {
        match self {
            Dialed::Number(n) => (n == number).then_some(usize::MAX),
            Dialed::Prefix(p) => number.starts_with(p.as_str()).then_some(p.len()),
            Dialed::Caller(_) => None,
        }
    }
}

/// A direct line into a call's injection queue: `Inject` and `ClearInjected` reach the media
/// engine's worker without passing through the core's thread. For feeds too frequent for
/// that thread, which also runs SIP: a bidirectional media stream sends 50 messages a second
/// per call. What they report (marks, discarded audio) still comes as the call's events.
/// Once the call's media is released, what is sent is dropped (endpoint ids are never
/// reused).
#[derive(Clone)]
pub struct MediaLink {
    pub(crate) engine: MediaEngine,
    pub(crate) endpoint: EndpointId,
}

impl MediaLink {
    /// As [`CallCommand::Inject`].
    pub fn inject(&self, frames: Vec<Frame>, mark: Option<String>, limit: usize) {
        self.engine.media(
            self.endpoint,
            MediaOp::Inject {
                frames,
                mark,
                limit,
            },
        );
        self.engine.flush();
    }

    /// As [`CallCommand::ClearInjected`].
    pub fn clear(&self) {
        self.engine.media(self.endpoint, MediaOp::ClearInjected);
        self.engine.flush();
    }
}

/// A request for a [`MediaLink`] whose endpoint the core found: the driver, which holds the
/// engine, answers it.
pub enum LinkReply {
    Own {
        endpoint: EndpointId,
        reply: oneshot::Sender<Result<MediaLink, CallError>>,
    },
    Peer {
        call: String,
        endpoint: EndpointId,
        reply: oneshot::Sender<Result<Option<(String, MediaLink)>, CallError>>,
    },
}

impl LinkReply {
    pub(crate) fn answer(self, engine: &MediaEngine) {
        let link = |endpoint| MediaLink {
            engine: engine.clone(),
            endpoint,
        };
        match self {
            LinkReply::Own { endpoint, reply } => {
                let _ = reply.send(Ok(link(endpoint)));
            }
            LinkReply::Peer {
                call,
                endpoint,
                reply,
            } => {
                let _ = reply.send(Ok(Some((call, link(endpoint)))));
            }
        }
    }
}

/// The applications' handle on the call core; cheap to clone.
#[derive(Clone)]
pub struct CallControl {
    tx: mpsc::UnboundedSender<Request>,
}

impl CallControl {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Request>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Makes the core panic or stall (debug builds only: the liveness tests' lever).
    #[cfg(debug_assertions)]
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Fault) {
        let _ = self.tx.send(Request::Fault(fault));
    }

    /// Places a call; it is `queued` when this returns its SID, and its events follow.
    /// Refuses new calls from now on and resolves once every call has ended (calls up are
    /// left alone: the caller decides how long to wait before stopping the core).
    pub async fn drain(&self, retry_after: u32) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Request::Drain { retry_after, done }).is_ok() {
            let _ = rx.await;
        }
    }

    /// Replaces the trunks, routes and registered users (a configuration reload).
    pub fn reconfigure(&self, routing: crate::call::dial_plan::DialPlan) {
        let _ = self.tx.send(Request::Reconfigure(Box::new(routing)));
    }

    /// The call (its SID) one of whose legs is the SIP dialog with this Call-ID: how a
    /// component that placed or took the dialog (the browser gateway) names the call to the
    /// API.
    pub async fn call_of_sip_call_id(&self, sip_call_id: &str) -> Option<String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::BySipCallId(sip_call_id.to_owned(), reply))
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Replaces the SIP logins accounts made (user → password, account). The answer comes
    /// once the core takes them: a client given a new login registers with it after that
    /// (the core's requests and the SIP it receives are two queues, and a REGISTER may
    /// otherwise be checked before its login is known).
    pub fn set_account_users(
        &self,
        users: HashMap<String, (String, String)>,
    ) -> oneshot::Receiver<()> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Request::AccountUsers(users, Some(reply)));
        rx
    }

    pub async fn originate(&self, o: Originate) -> Result<String, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Originate(Box::new(o), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    pub async fn command(&self, call: &str, command: CallCommand) -> Result<(), CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Command {
                call: call.to_owned(),
                command,
                reply,
            })
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// Adds an observer of a call's events (besides its controller).
    pub fn subscribe(&self, call: &str, events: mpsc::Sender<CallEvent>) {
        let _ = self.tx.send(Request::Subscribe {
            call: call.to_owned(),
            events,
        });
    }

    /// Sends every event of `account`'s calls from now on to `events` (calls that begin later
    /// too), until it is closed; a watcher that falls behind (its channel full) is dropped,
    /// which its receiver sees as the channel closing, rather than slowing the calls.
    pub fn watch_account(&self, account: &str, events: mpsc::Sender<CallEvent>) {
        let _ = self.tx.send(Request::WatchAccount {
            account: account.to_owned(),
            events,
        });
    }

    /// Sends every event of every call from now on to `events` (the operator's view), as
    /// [`CallControl::watch_account`] does for one account's.
    pub fn watch_all(&self, events: mpsc::Sender<CallEvent>) {
        self.watch_account(crate::call::ALL_CALLS, events);
    }

    /// The conferences in progress.
    pub async fn conferences(&self) -> Result<Vec<ConferenceSnapshot>, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Conferences(reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)
    }

    /// Ends a conference: every participant leaves it (their calls go on). False when there
    /// is no such conference.
    pub async fn end_conference(&self, sid: &str) -> Result<bool, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::EndConference(sid.to_owned(), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)
    }

    /// The call as the core knows it now, ahead of any event about it a subscriber has yet
    /// to read: a dialect asks rather than keeping a copy. [`CallError::NotFound`] once an
    /// ended call is let go.
    pub async fn view(&self, call: &str) -> Result<CallView, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::View(call.to_owned(), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// A direct line into the call's injection queue (see [`MediaLink`]).
    pub async fn media_link(&self, call: &str) -> Result<MediaLink, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::MediaLink(call.to_owned(), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// The call bridged with `call` now, if any, with a line into its injection queue (audio
    /// for the other side of a bridge, as Telnyx's `stream_bidirectional_target_legs`).
    pub async fn peer_link(&self, call: &str) -> Result<Option<(String, MediaLink)>, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::PeerLink(call.to_owned(), reply))
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// Takes the incoming calls to numbers starting with `prefix` ("" for every number).
    pub fn control(&self, prefix: &str, events: mpsc::Sender<CallEvent>) {
        let _ = self.tx.send(Request::Control {
            dialed: Dialed::Prefix(prefix.to_owned()),
            events,
        });
    }

    /// Takes the incoming calls to exactly this number (a provider's phone number).
    pub fn control_number(&self, number: &str, events: mpsc::Sender<CallEvent>) {
        let _ = self.tx.send(Request::Control {
            dialed: Dialed::Number(number.to_owned()),
            events,
        });
    }

    /// Takes every call this registered user places (a login whose connection is a Call
    /// Control application), whatever it dials.
    pub fn control_caller(&self, user: &str, events: mpsc::Sender<CallEvent>) {
        let _ = self.tx.send(Request::Control {
            dialed: Dialed::Caller(user.to_owned()),
            events,
        });
    }

    /// Gives the calls this user places back to the routes.
    pub fn release_caller(&self, user: &str) {
        let _ = self
            .tx
            .send(Request::Release(Dialed::Caller(user.to_owned())));
    }

    /// Gives the incoming calls to this number back to the static routes.
    pub fn release_number(&self, number: &str) {
        let _ = self
            .tx
            .send(Request::Release(Dialed::Number(number.to_owned())));
    }

    /// Sends the routed calls whose routes ask for a stream, transcripts or machine
    /// detection to `calls`, at their answer (the route services).
    pub fn serve_routes(&self, calls: mpsc::Sender<crate::call::ServeRoute>) {
        let _ = self.tx.send(Request::ServeRoutes(calls));
    }
}

#[cfg(test)]
mod tests {
    use super::Dialed;

    #[test]
    fn an_exact_number_beats_every_prefix_and_longer_prefixes_beat_shorter() {
        let number = Dialed::Number("+17775550100".into());
        let short = Dialed::Prefix("+1".into());
        let long = Dialed::Prefix("+1777".into());
        let all = Dialed::Prefix(String::new());
        let best = |n: &str| {
            [&number, &short, &long, &all]
                .into_iter()
                .filter_map(|d| Some((d.rank(n)?, d)))
                .max_by_key(|(rank, _)| *rank)
                .map(|(_, d)| d.clone())
        };
        assert_eq!(best("+17775550100"), Some(number.clone()));
        // A longer number is not the configured one: the prefixes decide.
        assert_eq!(best("+177755501001"), Some(long.clone()));
        assert_eq!(best("+15551234"), Some(short.clone()));
        assert_eq!(best("44"), Some(all.clone()));
    }
}
