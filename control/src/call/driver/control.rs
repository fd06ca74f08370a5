//! [`CallControl`], the applications' handle on the core's thread: it carries their requests
//! to the [`Driver`](super::Driver) with the channels they name and awaits the answers.

#[cfg(debug_assertions)]
use crate::call::Fault;
use crate::call::{Answer, CallCommand, CallError, CallEvent, Request, SubscriberId};
use crate::call::{CallView, ConferenceSnapshot, Dialed, MediaLink, Originate};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_media::MediaEngine;
use tokio::sync::{mpsc, oneshot};

/// What [`CallControl`] hands the driver: a request for the core, with who awaits its answer
/// and the channel of the subscriber it names; or what the driver keeps for itself.
#[expect(
    clippy::large_enum_variant,
    reason = "almost every message is a request, moved once through the channel; boxing it would cost an allocation each"
)]
pub(crate) enum ToDriver {
    Core {
        request: Request,
        reply: Option<ReplyTo>,
        subscriber: Option<NewSubscriber>,
    },
    /// Routed calls whose routes ask for services go here from now on.
    ServeRoutes(mpsc::Sender<crate::call::ServeRoute>),
}

/// Takes the core's answer to a request (with the engine, to make a [`MediaLink`] of a link's
/// endpoint) to whoever awaits it.
pub(crate) type ReplyTo = Box<dyn FnOnce(Answer, Option<&MediaEngine>) + Send>;

/// A channel a request names by id, and how the driver serves it.
pub(crate) struct NewSubscriber {
    pub(crate) id: SubscriberId,
    pub(crate) kind: SubscriberKind,
    pub(crate) events: mpsc::Sender<CallEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscriberKind {
    /// Takes the calls to numbers (or a user's): looked at every round, so that calls stop
    /// being offered to it as soon as it is gone.
    Controller,
    /// A call's application or observer: events wait for room, none lost.
    Call,
    /// An account's watcher: one that falls behind is let go rather than slowing the calls.
    Watcher,
}

/// The applications' handle on the call core; cheap to clone.
#[derive(Clone)]
pub struct CallControl {
    tx: mpsc::UnboundedSender<ToDriver>,
    subscribers: Arc<AtomicU64>,
}

impl CallControl {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<ToDriver>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let subscribers = Arc::new(AtomicU64::new(0));
        (Self { tx, subscribers }, rx)
    }

    fn subscriber(&self, kind: SubscriberKind, events: mpsc::Sender<CallEvent>) -> NewSubscriber {
        NewSubscriber {
            id: SubscriberId(self.subscribers.fetch_add(1, Ordering::Relaxed)),
            kind,
            events,
        }
    }

    /// Sends a request no one awaits the answer of.
    fn tell(&self, request: Request, subscriber: Option<NewSubscriber>) {
        let _ = self.tx.send(ToDriver::Core {
            request,
            reply: None,
            subscriber,
        });
    }

    /// Sends a request and awaits the answer `take` finds in the core's.
    async fn ask<T: Send + 'static>(
        &self,
        request: Request,
        subscriber: Option<NewSubscriber>,
        take: impl FnOnce(Answer, Option<&MediaEngine>) -> Option<T> + Send + 'static,
    ) -> Result<T, CallError> {
        let (reply, rx) = oneshot::channel();
        let reply: ReplyTo = Box::new(move |answer, engine| {
            // An answer of another kind than asked is a defect; the asker sees the core
            // stopped rather than a wrong answer.
            if let Some(value) = take(answer, engine) {
                let _ = reply.send(value);
            }
        });
        (self.tx)
            .send(ToDriver::Core {
                request,
                reply: Some(reply),
                subscriber,
            })
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)
    }

    /// Makes the core panic or stall (debug builds only: the liveness tests' lever).
    #[cfg(debug_assertions)]
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Fault) {
        self.tell(Request::Fault(fault), None);
    }

    /// Refuses new calls from now on and resolves once every call has ended (calls up are
    /// left alone: the caller decides how long to wait before stopping the core).
    pub async fn drain(&self, retry_after: u32) {
        let _ = (self.ask(Request::Drain { retry_after }, None, |_, _| Some(()))).await;
    }

    /// Replaces the trunks, routes and registered users (a configuration reload).
    pub fn reconfigure(&self, routing: crate::call::dial_plan::DialPlan) {
        self.tell(Request::Reconfigure(Box::new(routing)), None);
    }

    /// The call (its SID) one of whose legs is the SIP dialog with this Call-ID: how a
    /// component that placed or took the dialog (the browser gateway) names the call to the
    /// API.
    pub async fn call_of_sip_call_id(&self, sip_call_id: &str) -> Option<String> {
        let request = Request::BySipCallId(sip_call_id.to_owned());
        let found = self.ask(request, None, |answer, _| match answer {
            Answer::Found(found) => Some(found),
            _ => None,
        });
        found.await.ok().flatten()
    }

    /// Replaces the SIP logins accounts made (user → password, account). The answer comes
    /// once the core takes them: a client given a new login registers with it after that
    /// (the core's requests and the SIP it receives are two queues, and a REGISTER may
    /// otherwise be checked before its login is known).
    /// The SIP domains that admit callers by source address; the receiver fires once the core
    /// has them.
    pub fn set_domain_sources(
        &self,
        sources: Vec<crate::call::dial_plan::DomainSource>,
    ) -> oneshot::Receiver<()> {
        self.in_force(Request::DomainSources(sources))
    }

    /// The tenants' trunks and their numbers' routes; the receiver fires once the core has
    /// them.
    pub fn set_tenant_trunks(
        &self,
        trunks: crate::call::dial_plan::TenantTrunks,
    ) -> oneshot::Receiver<()> {
        self.in_force(Request::TenantTrunks(Box::new(trunks)))
    }

    /// Asks the core for `request`; the receiver fires once it is in force.
    fn in_force(&self, request: Request) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        let reply: ReplyTo = Box::new(move |_, _| {
            let _ = done.send(());
        });
        let _ = self.tx.send(ToDriver::Core {
            request,
            reply: Some(reply),
            subscriber: None,
        });
        rx
    }

    pub fn set_account_users(
        &self,
        users: HashMap<String, crate::call::AccountUser>,
    ) -> oneshot::Receiver<()> {
        self.in_force(Request::AccountUsers(users))
    }

    /// Places a call; it is `queued` when this returns its SID, and its events follow to
    /// `events` (its controller).
    pub async fn originate(
        &self,
        o: Originate,
        events: mpsc::Sender<CallEvent>,
    ) -> Result<String, CallError> {
        let subscriber = self.subscriber(SubscriberKind::Call, events);
        let request = Request::Originate(Box::new(o), subscriber.id);
        let placed = self.ask(request, Some(subscriber), |answer, _| match answer {
            Answer::Placed(placed) => Some(placed),
            _ => None,
        });
        placed.await?
    }

    pub async fn command(&self, call: &str, command: CallCommand) -> Result<(), CallError> {
        let call = call.to_owned();
        let done = self.ask(Request::Command { call, command }, None, done);
        done.await?
    }

    /// Hands the call to another controller: its events go to `events` from now on.
    pub async fn redirect(
        &self,
        call: &str,
        events: mpsc::Sender<CallEvent>,
    ) -> Result<(), CallError> {
        let subscriber = self.subscriber(SubscriberKind::Call, events);
        let call = call.to_owned();
        let request = Request::Redirect {
            call,
            events: subscriber.id,
        };
        (self.ask(request, Some(subscriber), done)).await?
    }

    /// Adds an observer of a call's events (besides its controller).
    pub fn subscribe(&self, call: &str, events: mpsc::Sender<CallEvent>) {
        let subscriber = self.subscriber(SubscriberKind::Call, events);
        let call = call.to_owned();
        let request = Request::Subscribe {
            call,
            events: subscriber.id,
        };
        self.tell(request, Some(subscriber));
    }

    /// Sends every event of `account`'s calls from now on to `events` (calls that begin later
    /// too), until it is closed; a watcher that falls behind (its channel full) is dropped,
    /// which its receiver sees as the channel closing, rather than slowing the calls.
    pub fn watch_account(&self, account: &str, events: mpsc::Sender<CallEvent>) {
        let subscriber = self.subscriber(SubscriberKind::Watcher, events);
        let account = account.to_owned();
        let request = Request::WatchAccount {
            account,
            events: subscriber.id,
        };
        self.tell(request, Some(subscriber));
    }

    /// Sends every event of every call from now on to `events` (the operator's view), as
    /// [`CallControl::watch_account`] does for one account's.
    pub fn watch_all(&self, events: mpsc::Sender<CallEvent>) {
        self.watch_account(crate::call::ALL_CALLS, events);
    }

    /// The conferences in progress.
    pub async fn conferences(&self) -> Result<Vec<ConferenceSnapshot>, CallError> {
        (self.ask(Request::Conferences, None, |answer, _| match answer {
            Answer::Conferences(all) => Some(all),
            _ => None,
        }))
        .await
    }

    /// Ends a conference: every participant leaves it (their calls go on). False when there
    /// is no such conference.
    pub async fn end_conference(&self, sid: &str) -> Result<bool, CallError> {
        let request = Request::EndConference(sid.to_owned());
        (self.ask(request, None, |answer, _| match answer {
            Answer::Ended(ended) => Some(ended),
            _ => None,
        }))
        .await
    }

    /// The call as the core knows it now, ahead of any event about it a subscriber has yet
    /// to read: a dialect asks rather than keeping a copy. [`CallError::NotFound`] once an
    /// ended call is let go.
    pub async fn view(&self, call: &str) -> Result<CallView, CallError> {
        let request = Request::View(call.to_owned());
        let view = self.ask(request, None, |answer, _| match answer {
            Answer::View(view) => Some(view),
            _ => None,
        });
        view.await?
    }

    /// A direct line into the call's injection queue (see [`MediaLink`]).
    pub async fn media_link(&self, call: &str) -> Result<MediaLink, CallError> {
        let request = Request::MediaLink(call.to_owned());
        let link = self.ask(request, None, |answer, engine| match answer {
            Answer::Link(Ok(Some((None, endpoint)))) => {
                Some(Ok(MediaLink::new(engine?.clone(), endpoint)))
            }
            Answer::Link(Err(e)) => Some(Err(e)),
            _ => None,
        });
        link.await?
    }

    /// The call bridged with `call` now, if any, with a line into its injection queue (audio
    /// for the other side of a bridge, as Telnyx's `stream_bidirectional_target_legs`).
    pub async fn peer_link(&self, call: &str) -> Result<Option<(String, MediaLink)>, CallError> {
        let request = Request::PeerLink(call.to_owned());
        let link = self.ask(request, None, |answer, engine| match answer {
            Answer::Link(Ok(Some((Some(peer), endpoint)))) => {
                Some(Ok(Some((peer, MediaLink::new(engine?.clone(), endpoint)))))
            }
            Answer::Link(Ok(_)) => Some(Ok(None)),
            Answer::Link(Err(e)) => Some(Err(e)),
            _ => None,
        });
        link.await?
    }

    fn take_calls(&self, dialed: Dialed, events: mpsc::Sender<CallEvent>) {
        let subscriber = self.subscriber(SubscriberKind::Controller, events);
        let request = Request::Control {
            dialed,
            events: subscriber.id,
        };
        self.tell(request, Some(subscriber));
    }

    /// Takes the incoming calls to numbers starting with `prefix` ("" for every number).
    pub fn control(&self, prefix: &str, events: mpsc::Sender<CallEvent>) {
        self.take_calls(Dialed::Prefix(prefix.to_owned()), events);
    }

    /// Takes the incoming calls to exactly this number (a provider's phone number).
    pub fn control_number(&self, number: &str, events: mpsc::Sender<CallEvent>) {
        self.take_calls(Dialed::Number(number.to_owned()), events);
    }

    /// Takes every call this registered user places (a login whose connection is a Call
    /// Control application), whatever it dials.
    pub fn control_caller(&self, user: &str, events: mpsc::Sender<CallEvent>) {
        self.take_calls(Dialed::Caller(user.to_owned()), events);
    }

    /// Gives the calls this user places back to the routes.
    pub fn release_caller(&self, user: &str) {
        self.tell(Request::Release(Dialed::Caller(user.to_owned())), None);
    }

    /// Gives the incoming calls to this number back to the static routes.
    pub fn release_number(&self, number: &str) {
        self.tell(Request::Release(Dialed::Number(number.to_owned())), None);
    }

    /// Sends the routed calls whose routes ask for a stream, transcripts or machine
    /// detection to `calls`, at their answer (the route services).
    pub fn serve_routes(&self, calls: mpsc::Sender<crate::call::ServeRoute>) {
        let _ = self.tx.send(ToDriver::ServeRoutes(calls));
    }
}

/// The answer to a command.
fn done(answer: Answer, _: Option<&MediaEngine>) -> Option<Result<(), CallError>> {
    match answer {
        Answer::Done(done) => Some(done),
        _ => None,
    }
}
