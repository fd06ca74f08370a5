//! [`CallControl`], the applications' handle on the core's thread: it carries their requests
//! to the [`Driver`](super::Driver) with the channels they name and awaits the answers.

#[cfg(debug_assertions)]
use crate::call::Fault;
use crate::call::{Answer, CallCommand, CallError, CallEvent, Request, SubscriberId};
use crate::call::{CallView, ConferenceSnapshot, Dialed, MediaLink, Originate};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// What the shard that pings the trunks found (see [`crate::call::Output::TrunkHealth`]).
    TrunkHealth { trunk: String, up: bool },
}

/// Takes the core's answer to a request (with the engine, to make a [`MediaLink`] of a link's
/// endpoint) to whoever awaits it.
pub(crate) type ReplyTo = Box<dyn FnOnce(Answer, Option<&MediaEngine>) + Send>;

/// A channel a request names by id, and how the driver serves it.
#[derive(Clone)]
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

/// The applications' handle on the call core — on a node of several call-core shards, on
/// all of them: a request about a call goes to the shard its id names, a new call to the
/// next shard in turn (a dialed call to its parent's), and what every shard must know or
/// answer (logins, routes, controllers, watchers, conferences, a drain) to each. Cheap to
/// clone.
#[derive(Clone)]
pub struct CallControl {
    shards: Arc<[mpsc::UnboundedSender<ToDriver>]>,
    subscribers: Arc<AtomicU64>,
    /// Where the next call placed without a parent goes.
    next: Arc<AtomicUsize>,
    /// Held across a conference join's look at every shard's rooms and the join itself, so
    /// that two shards never open rooms of one name (see [`CallControl::join_room`]).
    joining: Arc<tokio::sync::Mutex<()>>,
    /// What bridges two calls held by different shards (a visit from one to the other,
    /// set by the services once they run).
    across: Arc<std::sync::OnceLock<Arc<dyn BridgeAcross>>>,
}

/// Bridges a call with one another shard of this node holds: the services' visit from the
/// call's shard to the other's ([`crate::services::cluster::rooms`]).
pub trait BridgeAcross: Send + Sync {
    fn bridge_across<'a>(
        &'a self,
        call: &'a str,
        other: &'a str,
        shard: u16,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CallError>> + Send + 'a>>;
}

/// Where a call is to sit in a room: seated already, or in the room another shard holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPlace {
    Joined,
    /// The room (its SID) is held by this shard of the node: the call visits it there.
    Shard {
        shard: u16,
        conference: String,
    },
}

/// Where a request goes.
enum Shards {
    One(usize),
    Every,
}

impl CallControl {
    /// The handle on `count` shards (at least one), and the queue of each.
    pub(crate) fn new(count: u16) -> (Self, Vec<mpsc::UnboundedReceiver<ToDriver>>) {
        let (txs, rxs): (Vec<_>, Vec<_>) =
            (0..count.max(1)).map(|_| mpsc::unbounded_channel()).unzip();
        let control = Self {
            shards: txs.into(),
            subscribers: Arc::new(AtomicU64::new(0)),
            next: Arc::new(AtomicUsize::new(0)),
            joining: Arc::new(tokio::sync::Mutex::new(())),
            across: Arc::default(),
        };
        (control, rxs)
    }

    /// Hands `trunk`'s health to every shard but `from` (the one that pings the trunks).
    pub(crate) fn tell_trunk_health(&self, from: usize, trunk: &str, up: bool) {
        for (shard, tx) in self.shards.iter().enumerate() {
            if shard != from {
                let trunk = trunk.to_owned();
                let _ = tx.send(ToDriver::TrunkHealth { trunk, up });
            }
        }
    }

    /// How many call-core shards the node runs.
    pub fn count(&self) -> u16 {
        self.shards.len() as u16
    }

    /// The shard holding `call` (its SID or call control id).
    pub fn shard_of(&self, call: &str) -> usize {
        usize::from(crate::call::shard_of_call(call, self.count()))
    }

    /// Bridges across shards with `across` from now on (the services, once they run).
    pub fn bridge_across_with(&self, across: Arc<dyn BridgeAcross>) {
        let _ = self.across.set(across);
    }

    /// Seats `call` in the room `spec` names when this shard holds it or no shard does (the
    /// room opens here); otherwise says which shard holds it, for the call to visit. The
    /// look and the join are one step for every joiner of the node, so that two shards
    /// never open rooms of one name.
    pub async fn join_room(
        &self,
        call: &str,
        spec: crate::call::JoinSpec,
    ) -> Result<RoomPlace, CallError> {
        let _joining = match self.shards.len() {
            1 => None,
            _ => {
                let held = self.joining.lock().await;
                let here = self.shard_of(call);
                let rooms = self.ask_every(Request::Conferences, |answer| match answer {
                    Answer::Conferences(all) => Some(all),
                    _ => None,
                });
                let elsewhere = (rooms.await?.into_iter().enumerate())
                    .filter(|(shard, _)| *shard != here)
                    .find_map(|(shard, rooms)| {
                        let room = rooms.into_iter().find(|r| r.name == spec.name)?;
                        Some((shard, room.sid))
                    });
                if let Some((shard, conference)) = elsewhere {
                    let shard = shard as u16;
                    return Ok(RoomPlace::Shard { shard, conference });
                }
                Some(held)
            }
        };
        let call = call.to_owned();
        let command = CallCommand::ConferenceJoin(spec);
        let done = self.ask(Request::Command { call, command }, None, done);
        done.await?.map(|()| RoomPlace::Joined)
    }

    fn route(&self, request: &Request) -> Shards {
        let count = self.count();
        if count == 1 {
            return Shards::One(0);
        }
        match request {
            Request::Originate(o, _) => match &o.parent {
                Some(parent) => Shards::One(self.shard_of(parent)),
                None => Shards::One(self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len()),
            },
            Request::Command { call, .. }
            | Request::Redirect { call, .. }
            | Request::Subscribe { call, .. }
            | Request::View(call)
            | Request::MediaLink(call)
            | Request::PeerLink(call) => Shards::One(self.shard_of(call)),
            Request::BySipCallId(id) => Shards::One(usize::from(
                switchboard_sip::shard::shard_of_call_id(id, count),
            )),
            // The liveness tests' lever strikes the first shard (the thread named `sip`).
            #[cfg(debug_assertions)]
            Request::Fault(_) => Shards::One(0),
            _ => Shards::Every,
        }
    }

    /// Sends `request` where it goes; one that every shard takes goes to each, with its
    /// subscriber's channel. `reply` takes the first shard's answer (whoever needs all of
    /// them asks each shard, see [`CallControl::ask_every`]).
    fn send(
        &self,
        request: Request,
        reply: Option<ReplyTo>,
        subscriber: Option<NewSubscriber>,
    ) -> Result<(), CallError> {
        let index = match self.route(&request) {
            Shards::One(index) => index,
            Shards::Every => {
                for tx in &self.shards[1..] {
                    let copy = every_shards_copy(&request).ok_or(CallError::Stopped)?;
                    let _ = tx.send(ToDriver::Core {
                        request: copy,
                        reply: None,
                        subscriber: subscriber.clone(),
                    });
                }
                0
            }
        };
        self.send_to(index, request, reply, subscriber)
    }

    /// Sends `request` to shard `index`.
    fn send_to(
        &self,
        index: usize,
        request: Request,
        reply: Option<ReplyTo>,
        subscriber: Option<NewSubscriber>,
    ) -> Result<(), CallError> {
        (self.shards[index])
            .send(ToDriver::Core {
                request,
                reply,
                subscriber,
            })
            .map_err(|_| CallError::Stopped)
    }

    /// Asks every shard `request` (one every shard takes) and gathers their answers.
    async fn ask_every<T: Send + 'static>(
        &self,
        request: Request,
        take: impl Fn(Answer) -> Option<T> + Clone + Send + 'static,
    ) -> Result<Vec<T>, CallError> {
        let mut waiting = Vec::with_capacity(self.shards.len());
        for tx in self.shards.iter() {
            let copy = every_shards_copy(&request).ok_or(CallError::Stopped)?;
            let take = take.clone();
            let (reply, rx) = reply_with(move |answer, _| take(answer));
            (tx.send(ToDriver::Core {
                request: copy,
                reply: Some(reply),
                subscriber: None,
            }))
            .map_err(|_| CallError::Stopped)?;
            waiting.push(rx);
        }
        let mut answers = Vec::with_capacity(waiting.len());
        for rx in waiting {
            answers.push(rx.await.map_err(|_| CallError::Stopped)?);
        }
        Ok(answers)
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
        let _ = self.send(request, None, subscriber);
    }

    /// Sends a request and awaits the answer `take` finds in the core's.
    async fn ask<T: Send + 'static>(
        &self,
        request: Request,
        subscriber: Option<NewSubscriber>,
        take: impl FnOnce(Answer, Option<&MediaEngine>) -> Option<T> + Send + 'static,
    ) -> Result<T, CallError> {
        let (reply, rx) = reply_with(take);
        self.send(request, Some(reply), subscriber)?;
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
        let _ = (self.ask_every(Request::Drain { retry_after }, |_| Some(()))).await;
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

    /// Asks every shard for `request`; the receiver fires once it is in force in all.
    fn in_force(&self, request: Request) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        let mut waiting = Vec::with_capacity(self.shards.len());
        for tx in self.shards.iter() {
            let Some(copy) = every_shards_copy(&request) else {
                continue;
            };
            let (reply, shard_rx) = reply_with(|_, _| Some(()));
            let _ = tx.send(ToDriver::Core {
                request: copy,
                reply: Some(reply),
                subscriber: None,
            });
            waiting.push(shard_rx);
        }
        match <[_; 1]>::try_from(waiting) {
            // One shard: its answer is the answer, with no task between.
            Ok([one]) => return one,
            Err(waiting) => {
                tokio::spawn(async move {
                    for rx in waiting {
                        if rx.await.is_err() {
                            return;
                        }
                    }
                    let _ = done.send(());
                });
            }
        }
        rx
    }

    /// Replaces the SIP logins accounts made (user → password, account). The answer comes
    /// once every shard takes them: a client given a new login registers with it after that
    /// (the core's requests and the SIP it receives are two queues, and a REGISTER may
    /// otherwise be checked before its login is known).
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
        self.place(o, events, None).await
    }

    /// [`CallControl::originate`] on the shard that holds `beside`, a call the new one is to
    /// join once answered without being dialed from it (a supervisor's, the call it
    /// supervises): a supervisor mixes with the bridge it joins, which one shard's media
    /// commands make.
    pub async fn originate_beside(
        &self,
        o: Originate,
        events: mpsc::Sender<CallEvent>,
        beside: &str,
    ) -> Result<String, CallError> {
        self.place(o, events, Some(self.shard_of(beside))).await
    }

    async fn place(
        &self,
        o: Originate,
        events: mpsc::Sender<CallEvent>,
        shard: Option<usize>,
    ) -> Result<String, CallError> {
        let subscriber = self.subscriber(SubscriberKind::Call, events);
        let request = Request::Originate(Box::new(o), subscriber.id);
        let subscriber = Some(subscriber);
        let (reply, placed) = reply_with(|answer, _| match answer {
            Answer::Placed(placed) => Some(placed),
            _ => None,
        });
        match shard {
            Some(shard) => self.send_to(shard, request, Some(reply), subscriber)?,
            None => self.send(request, Some(reply), subscriber)?,
        }
        placed.await.map_err(|_| CallError::Stopped)?
    }

    pub async fn command(&self, call: &str, command: CallCommand) -> Result<(), CallError> {
        // What joins two calls needs both on one shard: a room is joined where it is held
        // (a visit to another shard's is the services' part), and a bridge with a call of
        // another shard is a visit to it.
        match &command {
            CallCommand::ConferenceJoin(spec) if self.shards.len() > 1 => {
                return match self.join_room(call, spec.clone()).await? {
                    RoomPlace::Joined => Ok(()),
                    RoomPlace::Shard { .. } => Err(other_shard(call, "the conference's room")),
                };
            }
            CallCommand::Bridge(other) if self.shard_of(other) != self.shard_of(call) => {
                let shard = self.shard_of(other) as u16;
                return match self.across.get() {
                    Some(across) => across.bridge_across(call, other, shard).await,
                    None => Err(other_shard(call, other)),
                };
            }
            // A supervisor is placed on its supervised call's shard
            // ([`CallControl::originate_beside`]); a coach and the one it coaches are seated
            // in one room, whose shard takes the seat's command (below).
            CallCommand::Supervise { call: other, .. }
                if self.shard_of(other) != self.shard_of(call) =>
            {
                return Err(other_shard(call, other));
            }
            _ => {}
        }
        // A command on a seat goes to the shard whose room seats the call: its own, or the
        // one it visits, whose leg there takes the room's commands in its name.
        let shard = match command.is_a_seats() && self.shards.len() > 1 {
            true => self.seated_on(call).await?,
            false => self.shard_of(call),
        };
        let request = Request::Command {
            call: call.to_owned(),
            command,
        };
        let (reply, rx) = reply_with(done);
        self.send_to(shard, request, Some(reply), None)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// The shard whose room seats `call` (by its own SID, a visitor's too); its own when
    /// none does.
    async fn seated_on(&self, call: &str) -> Result<usize, CallError> {
        let rooms = self.ask_every(Request::Conferences, |answer| match answer {
            Answer::Conferences(all) => Some(all),
            _ => None,
        });
        let seated = (rooms.await?.iter().enumerate()).find_map(|(shard, rooms)| {
            (rooms.iter())
                .any(|room| room.participants.iter().any(|p| p.call == call))
                .then_some(shard)
        });
        Ok(seated.unwrap_or_else(|| self.shard_of(call)))
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

    /// The conferences in progress (every shard's).
    pub async fn conferences(&self) -> Result<Vec<ConferenceSnapshot>, CallError> {
        let all = self.ask_every(Request::Conferences, |answer| match answer {
            Answer::Conferences(all) => Some(all),
            _ => None,
        });
        Ok(all.await?.into_iter().flatten().collect())
    }

    /// Ends a conference: every participant leaves it (their calls go on). False when there
    /// is no such conference.
    pub async fn end_conference(&self, sid: &str) -> Result<bool, CallError> {
        let request = Request::EndConference(sid.to_owned());
        let ended = self.ask_every(request, |answer| match answer {
            Answer::Ended(ended) => Some(ended),
            _ => None,
        });
        Ok(ended.await?.into_iter().any(|ended| ended))
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
        for tx in self.shards.iter() {
            let _ = tx.send(ToDriver::ServeRoutes(calls.clone()));
        }
    }
}

/// A reply that hands the receiver what `take` finds in the core's answer. An answer of
/// another kind than asked is a defect; the asker sees the core stopped rather than a wrong
/// answer.
fn reply_with<T: Send + 'static>(
    take: impl FnOnce(Answer, Option<&MediaEngine>) -> Option<T> + Send + 'static,
) -> (ReplyTo, oneshot::Receiver<T>) {
    let (tx, rx) = oneshot::channel();
    let reply: ReplyTo = Box::new(move |answer, engine| {
        if let Some(value) = take(answer, engine) {
            let _ = tx.send(value);
        }
    });
    (reply, rx)
}

/// The refusal of a command that would join a call with one another shard holds.
fn other_shard(call: &str, other: &str) -> CallError {
    CallError::BadArgument(format!(
        "{call} and {other} are held by different call-core shards of this node, and this is \
         not done across shards (run with sip.call_shards = 1)"
    ))
}

/// A copy of a request that every shard takes; `None` for one that goes to one shard.
fn every_shards_copy(request: &Request) -> Option<Request> {
    Some(match request {
        Request::WatchAccount { account, events } => Request::WatchAccount {
            account: account.clone(),
            events: *events,
        },
        Request::Conferences => Request::Conferences,
        Request::EndConference(sid) => Request::EndConference(sid.clone()),
        Request::Control { dialed, events } => Request::Control {
            dialed: dialed.clone(),
            events: *events,
        },
        Request::Release(dialed) => Request::Release(dialed.clone()),
        Request::Drain { retry_after } => Request::Drain {
            retry_after: *retry_after,
        },
        Request::Reconfigure(plan) => Request::Reconfigure(plan.clone()),
        Request::AccountUsers(users) => Request::AccountUsers(users.clone()),
        Request::DomainSources(sources) => Request::DomainSources(sources.clone()),
        Request::TenantTrunks(trunks) => Request::TenantTrunks(trunks.clone()),
        Request::Originate(..)
        | Request::Command { .. }
        | Request::Redirect { .. }
        | Request::Subscribe { .. }
        | Request::View(_)
        | Request::BySipCallId(_)
        | Request::MediaLink(_)
        | Request::PeerLink(_) => return None,
        #[cfg(debug_assertions)]
        Request::Fault(_) => return None,
    })
}

/// The answer to a command.
fn done(answer: Answer, _: Option<&MediaEngine>) -> Option<Result<(), CallError>> {
    match answer {
        Answer::Done(done) => Some(done),
        _ => None,
    }
}
