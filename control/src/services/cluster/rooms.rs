//! Rooms and calls that span nodes. On one node a room is the call core's conference of that
//! name; with several nodes on one database a room name is still one room: the node that opens
//! it is its home (a claim in the store), and a call arriving in the room on another node
//! visits the home over SIP — a leg from its node to the home, bridged with it, which the home
//! seats in the room as that call ([`crate::call::visit`]). Its participants hear each other
//! wherever their calls are; the home lists them by their own calls' SIDs and takes the
//! conference's commands for them (mute, hold, kick), and its end hangs the legs up, which
//! ends each visitor's stay as it ends a local participant's. A call on one node is bridged
//! with a call on another (a queue's caller taken from its front) the same way: a visit to
//! the other call's node, which bridges the leg with it. Each side tells the other over the
//! leg's dialog what its own call would hear in one core: the room's side what the room told
//! the seat alone (an INFO, [`SeatReport`]); either side that its call moved on rather than
//! ended (its BYE, [`visit::END_HEADER`]).

use crate::call::visit::{self, Destination, Seat, SeatReport, Visit};
use crate::call::{
    Beep, BridgeAcross, CallCommand, CallControl, CallError, CallEvent, EventKind, JoinSpec,
    Originate, Rejection, RoomPlace, Target,
};
use crate::infra::accounts::Directory;
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::Store;
use crate::services::prompts::Prompts;
use crate::services::subscriptions::{NewSubscription, Subscriptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::record::RecordFormat;
use switchboard_sip::shard::Shard;
use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

/// How long the other node has to answer a visit.
const VISIT_RING: Duration = Duration::from_secs(10);

pub struct Rooms {
    store: Store,
    control: CallControl,
    /// Seals and opens visits; `None` without a shared secret (a lone node of one shard).
    key: Option<[u8; 32]>,
    /// Where this node takes SIP: the visits between its shards go there.
    own_sip: Option<SocketAddr>,
    prompts: Arc<Prompts>,
    directory: Arc<Directory>,
    /// Conferences' reports, caught up here as visiting legs see their events.
    subscriptions: Arc<Subscriptions>,
}

/// Hangs up `leg`, a visit's leg whose bridge ended: when the call on this side moved on
/// rather than ended (`peer_ended` false: a queue's caller enqueued again), its BYE says so, so
/// that the call on the other side hears its peer unbridged, not ended, as one bridge in one
/// core tells it ([`visit::END_HEADER`]).
async fn let_go(control: &CallControl, leg: &str, peer_ended: bool) {
    let hangup = if peer_ended {
        CallCommand::Hangup
    } else {
        let moved = (visit::END_HEADER.to_owned(), visit::MOVED.to_owned());
        CallCommand::HangupWith(vec![moved])
    };
    let _ = control.command(leg, hangup).await;
}

/// Where a call joins a room.
pub enum Joined {
    /// In this node's conference.
    Here,
    /// Through `leg`, a call to the room's home bridged with the visiting call; it hangs up
    /// once the bridge ends, whichever side ends it. The room's conference is `conference`.
    There { leg: String, conference: String },
}

impl BridgeAcross for Rooms {
    fn bridge_across<'a>(
        &'a self,
        call: &'a str,
        other: &'a str,
        shard: u16,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CallError>> + Send + 'a>>
    {
        Box::pin(self.bridge_on_shard(call, other, shard))
    }
}

/// The subscription reporting a visitor's stay in a conference, given the conference's SID.
pub type VisitorReports = dyn Fn(&str) -> Option<NewSubscription> + Sync;

/// What a visitor asks of its seat, besides what [`JoinSpec`] holds.
pub struct Visiting<'a> {
    pub account: &'a str,
    /// The visiting call's caller ID (the leg's From).
    pub from: &'a str,
    /// The wait music's URL, absolute (the home fetches it).
    pub wait_url: Option<&'a str>,
    /// The subscription of the room's events that reports the visitor's stay, given the
    /// conference's SID: made before the visit is placed, so that the home, which stores the
    /// visitor's join and catches the room's subscriptions up as it does, finds it there.
    pub reports: Option<&'a VisitorReports>,
}

impl Rooms {
    /// The rooms of the node whose SIP is at `own_sip`; with several call-core shards it
    /// bridges the calls of two of them for `control` ([`CallControl::bridge_across_with`]).
    pub fn new(
        store: Store,
        control: CallControl,
        (secret, own_sip): (&str, Option<SocketAddr>),
        prompts: Arc<Prompts>,
        directory: Arc<Directory>,
        subscriptions: Arc<Subscriptions>,
    ) -> Arc<Self> {
        // The shards of one process visit each other with its own key when no secret is
        // shared with other nodes.
        let shards = control.count() > 1;
        let key = visit::key(secret).or_else(|| shards.then(|| visit::node_key(secret)));
        let rooms = Arc::new(Self {
            own_sip,
            key,
            prompts,
            directory,
            store,
            control,
            subscriptions,
        });
        if shards {
            rooms.control.bridge_across_with(rooms.clone());
        }
        rooms
    }

    /// The node this one is.
    pub fn node(&self) -> &str {
        self.store.node()
    }

    /// Joins `call` to the room `spec` names, wherever the room is held. A room whose home
    /// cannot be learnt (the database unreachable) is held here: a second room of the name
    /// is better than no room.
    pub async fn join(
        &self,
        call: &str,
        mut spec: JoinSpec,
        visiting: Visiting<'_>,
    ) -> Result<Joined, CallError> {
        let fresh = new_sid("CF");
        let home = match self.store.claim_room(&spec.name, &fresh, now_ms()).await {
            Ok(home) => Some(home),
            Err(e) => {
                warn!(error = %e, room = spec.name, "cannot learn the room's home: held here");
                None
            }
        };
        let home = match home {
            Some(home) if home.node != self.store.node() => home,
            here => {
                spec.sid = here.map(|h| h.sid);
                // Held here: by this call's shard (or none yet), or another shard's.
                return match self.control.join_room(call, spec.clone()).await? {
                    RoomPlace::Joined => Ok(Joined::Here),
                    RoomPlace::Shard { shard, conference } => {
                        let Some(own) = self.own_sip else {
                            return Err(CallError::NoRoute(503));
                        };
                        let home = (own.to_string(), conference, Some(shard));
                        self.visit_room(call, spec, visiting, home).await
                    }
                };
            }
        };
        info!(
            room = spec.name,
            home = home.node,
            "visiting the room's home"
        );
        self.visit_room(call, spec, visiting, (home.sip, home.sid, None))
            .await
    }

    /// Seats `call` in the room `spec` names that another node, or another shard of this one
    /// (`sip`, the room's SID, the shard), holds: through a visit.
    async fn visit_room(
        &self,
        call: &str,
        spec: JoinSpec,
        visiting: Visiting<'_>,
        (sip, conference, shard): (String, String, Option<u16>),
    ) -> Result<Joined, CallError> {
        let seat = Seat {
            room: spec.name.clone(),
            conference: conference.clone(),
            caller: call.to_owned(),
            muted: spec.muted,
            start_on_enter: spec.start_on_enter,
            end_on_exit: spec.end_on_exit,
            beep: spec.beep.as_twiml().to_owned(),
            label: spec.label.clone(),
            wait_url: visiting.wait_url.map(str::to_owned),
            record: spec.record.is_some(),
            trim_silence: spec.trim_silence,
            coach: spec.coach.clone(),
        };
        if let Some(asked) = visiting.reports.and_then(|reports| reports(&conference)) {
            self.subscribe_visitor(asked, &conference).await;
        }
        let visit = Visit {
            account: visiting.account.to_owned(),
            at: now_ms(),
            to: Destination::Room(seat),
        };
        let leg = self.visit(call, visiting.from, &sip, shard, visit).await?;
        Ok(Joined::There { leg, conference })
    }

    /// Bridges `call` with `other`, which `shard` of this node holds: through a visit to it.
    async fn bridge_on_shard(&self, call: &str, other: &str, shard: u16) -> Result<(), CallError> {
        let Some(own) = self.own_sip else {
            return Err(CallError::NoRoute(503));
        };
        let view = self.control.view(call).await?;
        let account = view.account.clone().unwrap_or_default();
        let visit = Visit {
            account,
            at: now_ms(),
            to: Destination::Call {
                call: other.to_owned(),
            },
        };
        let sip = own.to_string();
        // The leg never leaves the node: its caller ID names what it is.
        (self
            .visit(call, visit::USER, &sip, Some(shard), visit)
            .await)
            .map(|_| ())
    }

    /// Subscribes `asked` to conference `sid`'s events from those not stored yet on (the
    /// visitor's join is among them).
    async fn subscribe_visitor(&self, asked: NewSubscription, sid: &str) {
        match self.store.call_events(sid).await {
            Ok(events) => {
                let after = events.last().map_or(-1, |e| i64::from(e.seq));
                self.subscriptions.subscribe_after(asked, after).await;
            }
            Err(e) => {
                warn!(error = %e, conference = sid, "cannot read the conference's events: it does not report to the visitor");
            }
        }
    }

    /// Bridges `call` with `other`, a call of `account` that node `node` carries: through a
    /// visit to that node. The leg's SID.
    pub async fn bridge_elsewhere(
        &self,
        call: &str,
        from: &str,
        account: &str,
        other: &str,
        node: &str,
    ) -> Result<String, CallError> {
        let sip = match self.store.live_node_sip(node, now_ms()).await {
            Ok(Some(sip)) => sip,
            Ok(None) => return Err(CallError::NotFound(other.to_owned())),
            Err(e) => {
                warn!(error = %e, node, "cannot find where the node is reached");
                return Err(CallError::NotFound(other.to_owned()));
            }
        };
        let visit = Visit {
            account: account.to_owned(),
            at: now_ms(),
            to: Destination::Call {
                call: other.to_owned(),
            },
        };
        self.visit(call, from, &sip, None, visit).await
    }

    /// Places the visit's leg to the node at `sip` (`host:port`), to `shard` of it when given
    /// (this node's), waits for it to be taken and bridges `call` with it; the leg lasts as
    /// long as the bridge.
    async fn visit(
        &self,
        call: &str,
        from: &str,
        sip: &str,
        shard: Option<u16>,
        visit: Visit,
    ) -> Result<String, CallError> {
        let (Some(key), Ok(next_hop)) = (&self.key, sip.parse::<SocketAddr>()) else {
            warn!(
                sip,
                "another node cannot be visited (no shared secret, or no SIP address)"
            );
            return Err(CallError::NoRoute(503));
        };
        let sealed = (visit.seal(key))
            .or_else(|| {
                // Too long for a header with its wait music's URL: silence instead.
                let mut without = visit.clone();
                if let Destination::Room(seat) = &mut without.to {
                    seat.wait_url = None;
                }
                without.seal(key)
            })
            .ok_or_else(|| CallError::BadArgument("the room's name is too long".into()))?;
        let to_shard = shard.map(Shard::target).unwrap_or_default();
        let uri = format!("sip:{}@{next_hop}{to_shard}", visit::USER);
        let uri = (uri.as_str())
            .try_into()
            .map_err(|_| CallError::BadArgument(format!("{uri} is no SIP URI")))?;
        let visited = match &visit.to {
            Destination::Call { call } => Some(call.clone()),
            _ => None,
        };
        let (events, mut leg_events) = mpsc::channel::<CallEvent>(64);
        let leg = (self.control)
            .originate(
                Originate {
                    to: Target::Node { uri, next_hop },
                    from: from.to_owned(),
                    display_name: None,
                    headers: vec![(visit::HEADER.to_owned(), sealed.clone())],
                    ring_timeout: VISIT_RING,
                    parent: Some(call.to_owned()),
                    account: Some(visit.account.clone()),
                    system: true,
                    channels: Vec::new(),
                    credentials: None,
                },
                events,
            )
            .await?;
        loop {
            match leg_events.recv().await.map(|e| e.kind) {
                Some(EventKind::Answered { .. }) => break,
                // The other side's refusal of a visit to a call says why ([`Rooms::take`]).
                Some(EventKind::Hangup {
                    sip_code: Some(404),
                    ..
                }) if let Some(visited) = &visited => {
                    return Err(CallError::NotFound(visited.clone()));
                }
                Some(EventKind::Hangup {
                    sip_code: Some(480),
                    ..
                }) if visited.is_some() => return Err(CallError::NotAnswered),
                Some(EventKind::Hangup { .. }) | None => {
                    warn!(%next_hop, "the other node did not take the visit");
                    return Err(CallError::NoRoute(503));
                }
                Some(_) => {}
            }
        }
        if let Err(e) = (self.control)
            .command(call, CallCommand::Bridge(leg.clone()))
            .await
        {
            let _ = self.control.command(&leg, CallCommand::Hangup).await;
            return Err(e);
        }
        // The leg lasts as long as the bridge: the visitor hung up or moved on, or the other
        // node let the leg go (the room ended, the participant was removed, the call ended).
        // What the room tells the seat alone comes on the leg ([`SeatReport`]): the visitor's.
        let control = self.control.clone();
        let (subscription, visitor) = (leg.clone(), call.to_owned());
        tokio::spawn(async move {
            while let Some(event) = leg_events.recv().await {
                match event.kind {
                    EventKind::Unbridged { peer_ended } => {
                        let_go(&control, &subscription, peer_ended).await;
                    }
                    EventKind::Hangup { .. } => break,
                    told @ (EventKind::AnnouncementStarted { .. }
                    | EventKind::AnnouncementEnded { .. }) => {
                        let _ = control.command(&visitor, CallCommand::Report(told)).await;
                    }
                    _ => {}
                }
            }
        });
        Ok(leg)
    }

    /// Takes the legs other nodes send to visit this node's rooms and calls.
    pub fn host(self: &Arc<Self>) {
        let (tx, mut offers) = mpsc::channel::<CallEvent>(256);
        self.control.control_number(visit::USER, tx);
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(event) = offers.recv().await {
                if !matches!(event.kind, EventKind::Incoming { .. }) {
                    continue;
                }
                let span = info_span!("visit", call = %event.call);
                tokio::spawn(this.clone().take(event).instrument(span));
            }
        });
    }

    /// Takes one visiting leg where its seal says, and lets it go once it is done there.
    async fn take(self: Arc<Self>, offered: CallEvent) {
        let call = offered.call.clone();
        let EventKind::Incoming { headers, .. } = offered.kind else {
            return;
        };
        let sealed = (headers.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(visit::HEADER))
            .map(|(_, sealed)| sealed.trim().to_owned());
        let visit = (self.key.as_ref())
            .zip(sealed.as_deref())
            .and_then(|(key, sealed)| Visit::unseal(key, sealed))
            .filter(|v| v.fresh(now_ms()));
        let control = &self.control;
        let Some(visit) = visit else {
            warn!("a call to the visits' user without a good seal: refused");
            let refused = CallCommand::Reject(Rejection::Rejected);
            let _ = control.command(&call, refused).await;
            return;
        };
        let (tx, events) = mpsc::channel::<CallEvent>(64);
        if control.redirect(&call, tx).await.is_err() {
            return;
        }
        let taken = match &visit.to {
            Destination::Room(seat) => self.seat(&call, &visit.account, seat).await,
            Destination::Call { call: other } => {
                self.bridge_visit(&call, &visit.account, other).await
            }
            // Sent to their own users, never to this one (the core admits them nowhere else).
            Destination::Application { .. } | Destination::Replace(_) => Err(
                CallError::BadArgument("a visit of another kind at the rooms' user".into()),
            ),
        };
        if let Err(e) = taken {
            warn!(error = %e, "cannot take the visit");
            // A visit to a call says why it is refused: no such call of the account (404), or
            // not answered yet (480); the visiting side tells its application.
            let refusal = match e {
                CallError::NotFound(_) => CallCommand::Reject(Rejection::NotFound),
                CallError::NotAnswered => CallCommand::Reject(Rejection::Unavailable),
                _ => CallCommand::Hangup,
            };
            let _ = control.command(&call, refusal).await;
            return;
        }
        self.follow(&call, events).await;
    }

    /// Seats a visiting leg in the room.
    async fn seat(&self, call: &str, account: &str, seat: &Seat) -> Result<(), CallError> {
        let owner = self.directory.account(account);
        let wait_music = match (&seat.wait_url, &owner) {
            (Some(url), Some(owner)) => self.prompts.url(url, owner.reach).await.ok(),
            _ => None,
        };
        let spec = JoinSpec {
            name: seat.room.clone(),
            muted: seat.muted,
            start_on_enter: seat.start_on_enter,
            end_on_exit: seat.end_on_exit,
            wait_music,
            record: seat.record.then_some(RecordFormat::Pcm16),
            trim_silence: seat.trim_silence,
            beep: Beep::of_twiml(&seat.beep),
            label: seat.label.clone(),
            sid: Some(seat.conference.clone()),
            shown_as: Some(seat.caller.clone()),
            coach: seat.coach.clone(),
        };
        let control = &self.control;
        control
            .command(call, CallCommand::SetAccount(account.to_owned()))
            .await?;
        control.command(call, CallCommand::Answer).await?;
        control
            .command(call, CallCommand::ConferenceJoin(spec))
            .await?;
        info!(room = seat.room, caller = seat.caller, "a visit seated");
        Ok(())
    }

    /// Bridges a visiting leg with `other`, a call here of the same account.
    async fn bridge_visit(&self, call: &str, account: &str, other: &str) -> Result<(), CallError> {
        let control = &self.control;
        let view =
            (control.view(other).await).map_err(|_| CallError::NotFound(other.to_owned()))?;
        if view.account.as_deref() != Some(account) {
            return Err(CallError::NotFound(other.to_owned()));
        }
        if !view.is_up() {
            return Err(CallError::NotAnswered);
        }
        control
            .command(call, CallCommand::SetAccount(account.to_owned()))
            .await?;
        control.command(call, CallCommand::Answer).await?;
        control
            .command(call, CallCommand::Bridge(other.to_owned()))
            .await?;
        info!(with = other, "a visit bridged");
        Ok(())
    }

    /// Follows a taken visit's leg: it hangs up when its seat or its bridge is gone; the
    /// room's events it sees are reported (the visitor's node has no session here to). What
    /// the room tells the seat alone (an announcement to it begun or ended) is the visitor's
    /// to hear: told over the visit's dialog ([`SeatReport`]), wherever the visitor is.
    async fn follow(&self, call: &str, mut events: mpsc::Receiver<CallEvent>) {
        let control = &self.control;
        while let Some(event) = events.recv().await {
            if let Some(report) = SeatReport::of(&event.kind) {
                let info = CallCommand::SendInfo {
                    content_type: visit::REPORT_TYPE.to_owned(),
                    body: report.to_body(),
                };
                if let Err(e) = control.command(call, info).await {
                    warn!(error = %e, "cannot tell the visitor what the room told its seat");
                }
                continue;
            }
            let conference = match &event.kind {
                EventKind::ConferenceJoined { conference, .. }
                | EventKind::ConferenceStarted { conference, .. }
                | EventKind::ConferenceEnded { conference, .. } => Some(conference),
                EventKind::ConferenceLeft { conference, .. } => {
                    let _ = control.command(call, CallCommand::Hangup).await;
                    Some(conference)
                }
                EventKind::Unbridged { peer_ended } => {
                    let_go(control, call, *peer_ended).await;
                    None
                }
                EventKind::Hangup { .. } => break,
                _ => None,
            };
            if let Some(conference) = conference
                && let Err(e) = self.subscriptions.catch_up_subject(conference).await
            {
                warn!(error = %e, conference, "cannot report the conference's events yet");
            }
        }
    }
}
