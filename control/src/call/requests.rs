//! What applications ask of the core, as the core takes it: plain data naming who hears back by
//! id. A request's answer leaves through the outputs as [`Output::Reply`] (to its
//! [`RequestId`]) and a call's events as [`Output::Event`] (to a [`SubscriberId`]); the
//! driver owns the channels behind both ids, so the core holds no channel of its own.

use super::api::{CallError, CallView, ConferenceSnapshot, Dialed, Originate};
use super::model::Controller;
use super::{CallCommand, CallCore, Output};
use std::collections::HashMap;
use std::time::Instant;
use switchboard_media::EndpointId;
use tracing::info;

/// Names a request whose answer someone awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// Names whoever hears a call's events (an application's controller, an observer, an
/// account's watcher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriberId(pub u64);

/// Watchers of one account's calls at once.
const MAX_WATCHERS: usize = 64;

pub enum Request {
    /// Places a call whose events go to `events`.
    Originate(Box<Originate>, SubscriberId),
    Command {
        call: String,
        command: CallCommand,
    },
    /// The call's events go to `events` from now on (its application changes).
    Redirect {
        call: String,
        events: SubscriberId,
    },
    /// An observer of a call's events, besides its controller.
    Subscribe {
        call: String,
        events: SubscriberId,
    },
    /// Every event of the account's calls from now on, to `events` while it keeps up.
    WatchAccount {
        account: String,
        events: SubscriberId,
    },
    Conferences,
    /// Ends a conference (by SID): everyone in it leaves.
    EndConference(String),
    /// A call as the core knows it now.
    View(String),
    /// The call one of whose legs is the SIP dialog with this Call-ID (a gateway's leg).
    BySipCallId(String),
    /// A direct line into a call's injection queue.
    MediaLink(String),
    /// The call bridged with a call, and a line into its injection queue.
    PeerLink(String),
    /// Incoming calls to the numbers `dialed` matches go to this controller instead of the
    /// static routes.
    Control {
        dialed: Dialed,
        events: SubscriberId,
    },
    /// Incoming calls to what `dialed` matches go back to the routes.
    Release(Dialed),
    /// New calls are refused from now on (SIP 503 with `retry_after`, originations
    /// [`CallError::ShuttingDown`]); answered once no call is left.
    Drain {
        retry_after: u32,
    },
    /// The trunks, routes and users of a reloaded configuration; calls up keep what they have.
    Reconfigure(Box<crate::call::dial_plan::DialPlan>),
    /// The SIP logins accounts made through the API (credential connections, telephony
    /// credentials): user name → (password, account). They register and call like the
    /// configuration's users, which win a name both have. Answered once they are in force.
    AccountUsers(HashMap<String, (String, String)>),
    #[cfg(debug_assertions)]
    Fault(super::api::Fault),
}

/// The core's answer to a request.
#[derive(Debug)]
pub enum Answer {
    /// A call placed: its SID.
    Placed(Result<String, CallError>),
    /// A command carried out, logins in force, a drain over.
    Done(Result<(), CallError>),
    Conferences(Vec<ConferenceSnapshot>),
    /// Whether there was such a conference to end.
    Ended(bool),
    View(Result<CallView, CallError>),
    /// The call a SIP dialog belongs to.
    Found(Option<String>),
    /// The endpoint of a call's injection queue, for the driver (which holds the engine) to
    /// make a line into: the call's own, or (with its SID) the one bridged with it.
    Link(Result<Option<(Option<String>, EndpointId)>, CallError>),
}

impl CallCore {
    /// An application's request, and what it leads to; its answer leaves as
    /// [`Output::Reply`] to `id`.
    pub fn handle_request(&mut self, now: Instant, id: RequestId, request: Request) {
        self.on_request(now, id, request);
        self.process(now);
    }

    /// Answers a request in turn with the outputs: after the media commands it gave rise to,
    /// so an application that hears back may rely on the engine knowing of them (audio it
    /// sends into a bridge it asked for is relayed).
    fn reply(&mut self, to: RequestId, answer: Answer) {
        self.outputs.push_back(Output::Reply { to, answer });
    }

    fn on_request(&mut self, now: Instant, id: RequestId, request: Request) {
        self.clock_to(now);
        match request {
            Request::Originate(o, events) => {
                let answer = self.originate(now, *o, events);
                match answer.as_ref().ok().and_then(|sid| self.calls.key_of(sid)) {
                    Some(key) => _ = self.subscribed.insert(events, key),
                    None => self.unsubscribe(events),
                }
                self.reply(id, Answer::Placed(answer));
            }
            Request::Command { call, command } => {
                let answer = self.command(now, &call, command);
                self.reply(id, Answer::Done(answer));
            }
            Request::Redirect { call, events } => {
                let answer = self.redirect(&call, events);
                self.reply(id, Answer::Done(answer));
            }
            Request::Subscribe { call, events } => self.subscribe(&call, events),
            Request::WatchAccount { account, events } => {
                let watching = self.watchers.entry(account).or_default();
                // Past the bound the new watcher is let go: its receiver sees the end.
                if watching.len() < MAX_WATCHERS {
                    watching.push(events);
                } else {
                    self.outputs.push_back(Output::Unsubscribe(events));
                }
            }
            Request::Control { dialed, events } => self.controllers.register(dialed, events),
            Request::Release(dialed) => self.controllers.release(&dialed),
            Request::Drain { retry_after } => {
                info!(
                    calls = self.calls.len(),
                    "draining: new calls are refused, calls up go on"
                );
                self.ua.set_refusing(Some(retry_after));
                self.refusing = true;
                self.drained = Some(id);
            }
            Request::Reconfigure(routing) => {
                self.routing = *routing;
                self.config_users = (
                    self.routing.users.clone(),
                    self.routing.user_accounts.clone(),
                );
                self.merge_account_users();
                self.announce_routing();
                info!(
                    trunks = self.routing.trunks.len(),
                    routes = self.routing.routes.len(),
                    users = self.routing.users.len(),
                    "routing reloaded"
                );
            }
            Request::AccountUsers(users) => {
                self.account_users = users;
                self.merge_account_users();
                self.reply(id, Answer::Done(Ok(())));
            }
            Request::Conferences => {
                let (rooms, cx) = self.rooms_mut();
                let answer = rooms.snapshots(&cx);
                self.reply(id, Answer::Conferences(answer));
            }
            Request::EndConference(sid) => {
                let (rooms, mut cx) = self.rooms_mut();
                let answer = rooms.end_by_sid(&mut cx, &sid);
                self.reply(id, Answer::Ended(answer));
            }
            Request::View(call) => {
                let view = (self.calls.by_sid(&call))
                    .map(|c| CallView {
                        status: c.record.status,
                        recording: c.recording.clone(),
                        account: c.record.account_sid.clone(),
                    })
                    .ok_or(CallError::NotFound(call));
                self.reply(id, Answer::View(view));
            }
            Request::BySipCallId(sip) => {
                let found = (self.calls.iter().map(|(_, c)| c))
                    .filter(|c| !c.ended())
                    .find(|c| c.has_sip_call_id(&sip))
                    .map(|c| c.record.id.clone());
                self.reply(id, Answer::Found(found));
            }
            Request::MediaLink(call) => {
                let link = self.calls.media_link(&call).map(|e| Some((None, e)));
                self.reply(id, Answer::Link(link));
            }
            Request::PeerLink(call) => {
                let link = self
                    .calls
                    .peer_link(&call)
                    .map(|p| p.map(|(c, e)| (Some(c), e)));
                self.reply(id, Answer::Link(link));
            }
            #[cfg(debug_assertions)]
            Request::Fault(fault) => fault.strike(),
        }
    }

    /// A subscriber is gone (its receiver dropped, or a watcher that fell behind): it is no
    /// longer offered calls or sent an account's events.
    pub fn handle_unsubscribed(&mut self, gone: SubscriberId) {
        self.controllers.forget(gone);
        if let Some(call) = (self.subscribed.remove(&gone)).and_then(|k| self.calls.get_mut(&k)) {
            call.observers.retain(|s| *s != gone);
            if let Controller::App(app) = &mut call.controller {
                app.take_if(|s| *s == gone);
            }
        }
        self.watchers.retain(|_, watching| {
            watching.retain(|s| *s != gone);
            !watching.is_empty()
        });
    }
}
