//! What applications ask of the core, as the core takes it: plain data naming who hears back by
//! id. A request's answer leaves through the outputs as [`Output::Reply`] (to its
//! [`RequestId`]) and a call's events as [`Output::Event`] (to a [`SubscriberId`]); the
//! driver owns the channels behind both ids, so the core holds no channel of its own.

use super::api::{CallError, CallEvent, CallView, ConferenceSnapshot, Dialed, EventKind};
use super::api::{JoinSpec, Originate, RecordOptions, Target};
use super::model::{Call, Controller, Leg};
use super::originate::{quoted, tls_name, uri_destination};
use super::recording::RecordingSource;
use super::session::{Side, our_offer};
use super::status::{CallStatus, Direction};
use super::timers::CallTimer;
use super::{CallCommand, CallCore, CallKey, Output, new_call_sid};
use crate::rows::CallRecord;
use std::collections::HashMap;
use std::time::Instant;
use switchboard_media::{EndpointId, MediaOp};
use switchboard_sip::ua::InviteParams;
use tracing::{info, warn};

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
    Reconfigure(Box<crate::dial_plan::DialPlan>),
    /// The SIP logins accounts made through the API (credential connections, telephony
    /// credentials, SIP domains' credentials): login → its password, account and whether it
    /// may register. They register and call like the configuration's users, which win a name
    /// both have. Answered once they are in force.
    AccountUsers(HashMap<String, AccountUser>),
    /// The SIP domains that admit callers by source address, in place of those before.
    /// Answered once in force.
    DomainSources(Vec<crate::dial_plan::DomainSource>),
    /// The tenants' trunks and their numbers' routes, in place of those before (answered
    /// once in force).
    TenantTrunks(Box<crate::dial_plan::TenantTrunks>),
    #[cfg(debug_assertions)]
    Fault(super::api::Fault),
}

/// A SIP login an account made (see [`Request::AccountUsers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUser {
    pub password: String,
    pub account: String,
    /// Whether it may register (a SIP domain registers only the credentials mapped for
    /// registrations, and none when its registration is off).
    pub registers: bool,
    /// Whether it may place calls (a SIP domain's credentials mapped for calls).
    pub calls: bool,
    /// What its calls out through the routes are held to.
    pub outbound: crate::dial_plan::OutboundPolicy,
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
                // The tenants' trunks are the API's, not the file's: kept.
                let tenant = std::mem::take(&mut self.routing.tenant);
                self.routing = *routing;
                self.routing.tenant = tenant;
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
            Request::DomainSources(sources) => {
                self.domain_sources = sources;
                self.reply(id, Answer::Done(Ok(())));
            }
            Request::TenantTrunks(mut tenant) => {
                // A tenant's trunk is sent calls only where applications may send them: an
                // address the operator allowed (`sip_uri_allow`), so that no tenant points
                // Switchboard's INVITEs into the operator's own network. (A trunk that only
                // takes calls has no address: it is never dialed.)
                let allow = &self.routing.sip_uri_allow;
                tenant.trunks.retain(|t| {
                    let ip = t.trunk.address.ip();
                    let good = ip.is_unspecified() || allow.iter().any(|n| n.contains(&ip));
                    if !good {
                        warn!(trunk = %t.trunk.name, address = %t.trunk.address, "a tenant's origination address outside sip_uri_allow: not used");
                    }
                    good
                });
                self.routing.tenant = *tenant;
                self.announce_routing();
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

impl CallCore {
    pub(super) fn command(
        &mut self,
        now: Instant,
        sid: &str,
        command: CallCommand,
    ) -> Result<(), CallError> {
        if let CallCommand::Report(kind) = &command
            && !kind.reportable()
        {
            return Err(CallError::BadArgument(format!(
                "{} is the core's own event",
                kind.name()
            )));
        }
        let key = match self.calls.key_of(sid) {
            Some(key) => key,
            // A participant another node's call is, through its leg here: the conference's
            // commands reach that leg (the REST API names participants by their calls).
            None if command.is_a_seats() => {
                let (rooms, cx) = self.rooms_mut();
                (rooms.visiting_seat(&cx, sid))
                    .ok_or_else(|| CallError::NotFound(sid.to_owned()))?
            }
            // What a service made of the call's last moments (the transcript of its last
            // words, recognised after the hang-up) joins its history.
            None => match command {
                CallCommand::Report(kind) => return self.report_late(sid, kind),
                _ => return Err(CallError::NotFound(sid.to_owned())),
            },
        };
        let (call, mut cx) = self.call_mut(key).expect("indexed");
        let _span = call.span.clone().entered();
        let handled = call.handle_command(&mut cx, now, command);
        self.carry_out_asks(now, key);
        let Some(command) = handled? else {
            return Ok(());
        };
        let call = self.calls.get_mut(&key).expect("indexed");
        match command {
            CallCommand::Bridge(other) => return self.bridge(key, &other),
            CallCommand::Unbridge => self.unbridge(key),
            CallCommand::Supervise { call, role } => return self.supervise(key, &call, role),
            CallCommand::SupervisorRole(role) => {
                return (self.supervisions).switch_role(&self.calls, &mut self.media, key, role);
            }
            CallCommand::RecordStart(options) => self.record_start(key, options),
            CallCommand::RecordPause(how) => {
                self.media
                    .media(call.own().side.endpoint, MediaOp::RecordPause(how));
                self.recordings.set_status(&mut self.cdr, key, "paused");
            }
            CallCommand::RecordResume => {
                self.media
                    .media(call.own().side.endpoint, MediaOp::RecordResume);
                self.recordings
                    .set_status(&mut self.cdr, key, "in-progress");
            }
            CallCommand::ConferenceJoin(spec) => return self.join_room(key, spec),
            seat if seat.is_a_seats() => {
                let (rooms, mut cx) = self.rooms_mut();
                return rooms.handle_command(&mut cx, key, seat);
            }
            CallCommand::SetAccount(account) => {
                let incoming = call.is_inbound() && !call.answered();
                if incoming && call.record.account_sid.is_none() {
                    self.admit_incoming(now, key, &account)?;
                }
                let call = self.calls.get_mut(&key).expect("indexed");
                call.span.record("account", account.as_str());
                call.record.account_sid = Some(account);
                self.cdr.save(call.record.clone());
                self.calls.recount(key);
            }

            _ => unreachable!("the call carries out its own commands"),
        }
        Ok(())
    }

    /// Records the call's own audio (both its tracks); its `RecordingStarted` names the
    /// recording.
    pub(super) fn record_start(&mut self, key: CallKey, options: RecordOptions) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (owner, endpoint) = (call.record.id.clone(), call.own().side.endpoint);
        let source = RecordingSource::Endpoint(endpoint);
        let (_, mut cx) = self.rooms_mut();
        if let Some(sid) = cx.start_recording(key, &owner, source, options) {
            if let Some(call) = self.calls.get_mut(&key) {
                call.recording = Some(sid.clone());
            }
            self.emit(key, EventKind::RecordingStarted { recording: sid });
        }
    }

    /// A report on a call that ended a moment ago and is gone from the core: stored in its
    /// history after its last event (nobody is left to send it to).
    fn report_late(&mut self, sid: &str, kind: EventKind) -> Result<(), CallError> {
        let seq = self
            .recently_ended
            .next_seq(sid)
            .ok_or_else(|| CallError::NotFound(sid.to_owned()))?;
        self.cdr.call_event(&CallEvent {
            call: sid.to_owned(),
            seq,
            at: self.wall,
            kind,
        });
        Ok(())
    }
}

impl CallCore {
    pub(super) fn subscribe(&mut self, sid: &str, to: SubscriberId) {
        let key = self.calls.key_of(sid);
        match key.and_then(|k| self.calls.get_mut(&k).map(|call| (k, call))) {
            Some((key, call)) => {
                call.observers.push(to);
                self.subscribed.insert(to, key);
            }
            None => self.unsubscribe(to),
        }
    }

    /// The call's events go to `to` from now on: its application changes (a dialect's
    /// session takes over from the controller that was offered it).
    pub(super) fn redirect(&mut self, sid: &str, to: SubscriberId) -> Result<(), CallError> {
        let key = self.calls.key_of(sid);
        let call = key.and_then(|k| self.calls.get_mut(&k));
        let Some(call) = call.filter(|c| !c.ended() && !c.routed()) else {
            self.unsubscribe(to);
            let status = self.calls.by_sid(sid);
            return Err(match status {
                Some(c) if c.ended() => CallError::InvalidState {
                    status: c.record.status,
                },
                Some(_) => CallError::Routed,
                None => CallError::NotFound(sid.to_owned()),
            });
        };
        // A new application is the command an `ExpectCommand` waits for.
        call.timers.stop(CallTimer::Command);
        let before = std::mem::replace(&mut call.controller, Controller::App(Some(to)));
        if let Some(key) = key {
            self.subscribed.insert(to, key);
        }
        if let Controller::App(Some(before)) = before {
            self.unsubscribe(before);
        }
        Ok(())
    }

    pub(super) fn bridge(&mut self, key: CallKey, other: &str) -> Result<(), CallError> {
        let other_key = self.calls.named(other)?;
        let (a, b) = match (self.calls.get(&key), self.calls.get(&other_key)) {
            (Some(a), Some(b)) if key != other_key && !b.ended() && !b.routed() => {
                (a.own().side.endpoint, b.own().side.endpoint)
            }
            _ => {
                return Err(CallError::BadArgument(format!(
                    "cannot bridge with {other}"
                )));
            }
        };
        for k in [key, other_key] {
            self.unbridge(k);
            let (rooms, mut cx) = self.rooms_mut();
            rooms.leave(&mut cx, k, "moved");
        }
        self.media.bridge(a, b);
        for (x, y) in [(key, other_key), (other_key, key)] {
            let with = self.calls[&y].record.id.clone();
            self.calls.get_mut(&x).expect("checked").bridged = Some(y);
            self.emit(x, EventKind::Bridged { with });
        }
        Ok(())
    }

    /// `key` takes a seat in the room `spec` names, leaving the room or bridge it was in.
    pub(super) fn join_room(&mut self, key: CallKey, spec: JoinSpec) -> Result<(), CallError> {
        let (rooms, mut cx) = self.rooms_mut();
        rooms.check_join(&cx, key, &spec)?;
        rooms.leave(&mut cx, key, "moved");
        self.unbridge(key);
        let (rooms, mut cx) = self.rooms_mut();
        rooms.join(&mut cx, key, spec)
    }

    /// `key` (answered) supervises the call `sid` (the supervisions say which may): it
    /// leaves whatever it was in — another supervision among them — for a mix with the two.
    pub(super) fn supervise(
        &mut self,
        key: CallKey,
        sid: &str,
        role: super::supervision::SupervisorRole,
    ) -> Result<(), CallError> {
        let target = self.calls.named(sid)?;
        let bridge = self.supervisions.check(&self.calls, key, target, sid)?;
        self.unbridge(key);
        let (rooms, mut cx) = self.rooms_mut();
        rooms.leave(&mut cx, key, "moved");
        let media = rooms.new_mixer();
        (self.supervisions).start(&self.calls, &mut self.media, key, bridge, (role, media));
        Ok(())
    }

    pub(super) fn unbridge(&mut self, key: CallKey) {
        // A supervisor leaving, or a supervised bridge ending, ends the supervision.
        self.supervisions.end(&self.calls, &mut self.media, key);
        let Some(other) = self.calls.get_mut(&key).and_then(|c| c.bridged.take()) else {
            return;
        };
        self.media.unbridge(self.calls[&key].own().side.endpoint);
        // One of the two is ending when this runs from its hang-up.
        let ended = |c: &Call| c.ended_for_peer();
        let other_ended = self.calls.get(&other).is_some_and(ended);
        let this_ended = ended(&self.calls[&key]);
        self.emit(
            key,
            EventKind::Unbridged {
                peer_ended: other_ended,
            },
        );
        if let Some(o) = self.calls.get_mut(&other) {
            o.bridged = None;
            self.emit(
                other,
                EventKind::Unbridged {
                    peer_ended: this_ended,
                },
            );
        }
    }
}

impl CallCore {
    /// The SIP user `client:NAME` of `account` is: its browser client when one is signed in,
    /// else the phone of that name.
    pub(super) fn user_of_client(&self, account: &str, name: &str) -> String {
        let client = crate::dial_plan::client_user(account, name);
        if self.routing.users.contains_key(&client) {
            client
        } else {
            name.to_owned()
        }
    }

    pub(super) fn originate(
        &mut self,
        now: Instant,
        mut o: Originate,
        events: SubscriberId,
    ) -> Result<String, CallError> {
        if self.draining {
            return Err(CallError::Stopped);
        }
        if self.refusing {
            return Err(CallError::ShuttingDown);
        }
        if self.cdr.overloaded() {
            return Err(CallError::Overloaded);
        }
        // `client:NAME` from an account is its browser client NAME when one is signed in
        // (else a registered phone of that name).
        if let (Target::User(user), Some(account)) = (&mut o.to, &o.account) {
            *user = self.user_of_client(account, user);
        }
        // A registered phone is its own account's: no other tenant may ring it (nor learn
        // whether it is registered).
        if let Target::User(user) = &o.to
            && let Some(account) = &o.account
            && self.routing.user_accounts.get(user) != Some(account)
        {
            return Err(CallError::NotAllowed(format!("client:{user}")));
        }
        let dest = match &o.to {
            Target::Number(n) => {
                let account = o.account.as_deref().or_else(|| {
                    let parent = o.parent.as_deref().and_then(|p| self.calls.named(p).ok());
                    parent
                        .and_then(|k| self.calls.get(&k))
                        .and_then(|c| c.record.account_sid.as_deref())
                });
                self.resolve_number(now, n, account)?
            }
            Target::User(u) => self.resolve_user(now, u)?,
            Target::Uri { uri, next_hop } => {
                if !self.routing.may_dial(next_hop.ip()) {
                    return Err(CallError::NotAllowed(uri.to_string()));
                }
                let mut dest = uri_destination(&self.ua, uri, *next_hop)?;
                dest.credentials = o.credentials.clone();
                if let Some(name) = tls_name(&self.routing, uri, *next_hop, &dest.peer) {
                    (self.outputs).push_back(super::Output::TlsName {
                        addr: *next_hop,
                        name,
                    });
                }
                dest
            }
            Target::Node { uri, next_hop } => uri_destination(&self.ua, uri, *next_hop)?,
        };
        let parent = match &o.parent {
            Some(sid) => Some(self.calls.named(sid)?),
            None => None,
        };
        let parent_call = parent.and_then(|k| self.calls.get(&k));
        let account = o
            .account
            .clone()
            .or_else(|| parent_call.and_then(|c| c.record.account_sid.clone()));
        if let (Some(caller_ids), Some(account), false) =
            (&self.config.caller_ids, &account, o.system)
        {
            let forwarded: Vec<&str> = parent_call
                .map(|c| vec![c.record.from.as_str(), c.record.to.as_str()])
                .unwrap_or_default();
            if !caller_ids.allows(account, &o.from, &forwarded) {
                metrics::counter!("switchboard_calls_refused_total", "reason" => "caller-id")
                    .increment(1);
                return Err(CallError::CallerIdNotAllowed(o.from.clone()));
            }
        }
        // A visit's leg carries a call of the account counted already.
        let visit =
            matches!(&o.to, Target::Node { uri, .. } if uri.user() == Some(crate::visit::USER));
        if let (Some(limits), Some(account), false) = (&self.config.account_limits, &account, visit)
        {
            let live = self.calls.live_of_account(account);
            if let Err(e) = limits.admit(account, live, now) {
                metrics::counter!("switchboard_calls_refused_total", "reason" => "account-limit")
                    .increment(1);
                return Err(CallError::AccountLimit(e));
            }
        }
        if let Some(full) =
            (o.channels.iter()).find(|l| self.calls.live_of_group(&l.group) >= l.max as usize)
        {
            metrics::counter!("switchboard_calls_refused_total", "reason" => "channel-limit")
                .increment(1);
            return Err(CallError::ChannelLimit {
                group: full.group.clone(),
                max: full.max,
            });
        }
        let near = parent_call.map(|c| c.own().side.endpoint);
        let endpoint = self.media.allocate(near).map_err(|_| CallError::NoMedia)?;
        let media = (self.routing).peer_media(dest.trunk.as_deref(), dest.user.as_deref());
        let mut side = Side::new(endpoint, media, &dest.peer);
        let body = side.offer(&our_offer());
        let id = new_call_sid(self.wall, self.config.shard);
        // A browser client's caller ID (`client:bob`) is not a SIP user: its SIP user is.
        let sip_from = match (o.from.strip_prefix("client:"), account.as_deref()) {
            (Some(identity), Some(account)) => crate::dial_plan::client_user(account, identity),
            _ => o.from.clone(),
        };
        let from_uri = self.ua.local_uri(&sip_from, &dest.peer);
        let from = match o.display_name.as_deref() {
            Some(name) => format!("{} <{from_uri}>", quoted(name)),
            None => format!("<{from_uri}>"),
        };
        let record = CallRecord {
            id: id.clone(),
            from: o.from.clone(),
            // A SIP URI dialed is the call's `To` as the providers show it, not its user part.
            to: match &o.to {
                Target::Uri { uri, .. } => uri.to_string(),
                _ => dest.number.clone(),
            },
            from_uri,
            to_uri: dest.uri.to_string(),
            trunk_in: None,
            user_in: None,
            trunk_out: dest.trunk.clone(),
            user_out: dest.user.clone(),
            direction: if o.parent.is_some() {
                Direction::OutboundDial
            } else {
                Direction::OutboundApi
            },
            parent_id: o.parent.clone(),
            account_sid: o.account.clone().or_else(|| {
                parent
                    .and_then(|k| self.calls.get(&k))
                    .and_then(|c| c.record.account_sid.clone())
            }),
            status: CallStatus::Queued,
            sip_code: None,
            hangup_by: None,
            hangup_cause: None,
            sip_call_id: String::new(),
            sip_tags: Default::default(),
            started_at: self.wall,
            answered_at: None,
            ended_at: None,
            duration_secs: 0,
            legs: Vec::new(),
        };
        // A user rings at each of its devices (registrations), the first of them on the
        // call's own leg.
        let others: Vec<InviteParams> = match &o.to {
            Target::User(u) => (super::fork::other_devices(&self.ua, now, u).into_iter())
                .map(|d| InviteParams {
                    headers: o.headers.clone(),
                    ..d.invite(from.clone(), Some(body.clone()), o.ring_timeout)
                })
                .collect(),
            _ => Vec::new(),
        };
        let channels: Vec<String> = o.channels.into_iter().map(|l| l.group).collect();
        let invite = InviteParams {
            headers: o.headers,
            ..dest.invite(from, Some(body), o.ring_timeout)
        };
        let leg = self.ua.invite(now, invite);
        self.accept_from_trunk(leg, dest.trunk.as_deref());
        let mut own = Leg::sip("leg", leg, side);
        own.name_dialog(&self.ua, leg);
        let (sip_call_id, sip_tags) = (own.sip_call_id.clone(), own.sip_tags.clone());
        let key = self.insert_call(record, vec![own], None, Controller::App(Some(events)));
        let call = self.calls.get_mut(&key).expect("just inserted");
        call.channels = channels;
        call.record.sip_call_id = sip_call_id.unwrap_or_default();
        call.record.sip_tags = sip_tags;
        call.record.status = CallStatus::Initiated;
        let _span = call.span.clone().entered();
        info!(to = %call.record.to, trunk = ?call.record.trunk_out, user = ?call.record.user_out, "originating");
        self.cdr.save(call.record.clone());
        drop(_span);
        self.calls.recount(key);
        if let Some((call, mut cx)) = self.call_mut(key) {
            call.ring_devices(&mut cx, now, 0, others);
        }
        self.emit(key, EventKind::Initiated);
        Ok(id)
    }

    pub(super) fn resolve_number(
        &self,
        now: Instant,
        number: &str,
        account: Option<&str>,
    ) -> Result<super::admission::Destination, CallError> {
        let up = |trunk: &str| self.trunk_takes_calls(trunk);
        super::admission::resolve(&self.routing, &self.ua, now, (number, account), up)
            .map_err(CallError::NoRoute)
    }

    pub(super) fn resolve_user(
        &self,
        now: Instant,
        user: &str,
    ) -> Result<super::admission::Destination, CallError> {
        super::admission::resolve_user(&self.ua, now, user).map_err(CallError::NoRoute)
    }
}
