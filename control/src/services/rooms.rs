//! Rooms that span nodes. On one node a room is the call core's conference of that name; with
//! several nodes on one database a room name is still one room: the node that opens it is its
//! home (a claim in the store), and a call arriving in the room on another node visits the
//! home over SIP — a leg from its node to the home, bridged with it, which the home seats in
//! the room as that call ([`crate::call::visit`]). Its participants hear each other wherever
//! their calls are; the home lists them by their own calls' SIDs and takes the conference's
//! commands for them (mute, hold, kick), and its end hangs the legs up, which ends each
//! visitor's stay as it ends a local participant's.

use crate::call::visit::{self, Visit};
use crate::call::{
    Beep, CallCommand, CallControl, CallError, CallEvent, EventKind, JoinSpec, Originate, Target,
};
use crate::infra::accounts::Directory;
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::Store;
use crate::services::prompts::Prompts;
use crate::services::subscriptions::Subscriptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::record::RecordFormat;
use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

/// How long the home has to answer a visit.
const VISIT_RING: Duration = Duration::from_secs(10);

pub struct Rooms {
    store: Store,
    control: CallControl,
    /// Seals and opens visits; `None` without a shared secret (a lone node).
    key: Option<[u8; 32]>,
    prompts: Arc<Prompts>,
    directory: Arc<Directory>,
    /// Conferences' reports, caught up here as visiting legs see their events.
    subscriptions: Arc<Subscriptions>,
}

/// Where a call joins a room.
pub enum Joined {
    /// In this node's conference.
    Here,
    /// Through `leg`, a call to the room's home bridged with the visiting call; it hangs up
    /// once the bridge ends, whichever side ends it. The room's conference is `conference`.
    There { leg: String, conference: String },
}

/// What a visitor asks of its seat, besides what [`JoinSpec`] holds.
pub struct Visiting<'a> {
    pub account: &'a str,
    /// The visiting call's caller ID (the leg's From).
    pub from: &'a str,
    /// The wait music's URL, absolute (the home fetches it).
    pub wait_url: Option<&'a str>,
}

impl Rooms {
    pub fn new(
        store: Store,
        control: CallControl,
        secret: &str,
        prompts: Arc<Prompts>,
        directory: Arc<Directory>,
        subscriptions: Arc<Subscriptions>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            control,
            key: visit::key(secret),
            prompts,
            directory,
            subscriptions,
        })
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
            Ok(home) => home,
            Err(e) => {
                warn!(error = %e, room = spec.name, "cannot learn the room's home: held here");
                return self
                    .control
                    .command(call, CallCommand::ConferenceJoin(spec))
                    .await
                    .map(|()| Joined::Here);
            }
        };
        spec.sid = Some(home.sid.clone());
        let there = home.sip.parse::<SocketAddr>().ok();
        let (Some(key), Some(next_hop), false) = (&self.key, there, home.node == self.store.node())
        else {
            if home.node != self.store.node() {
                warn!(
                    room = spec.name,
                    home = home.node,
                    "the room's home cannot be visited (no shared secret, or no SIP address): held here"
                );
            }
            return (self.control)
                .command(call, CallCommand::ConferenceJoin(spec))
                .await
                .map(|()| Joined::Here);
        };
        let visit = Visit {
            account: visiting.account.to_owned(),
            room: spec.name.clone(),
            conference: home.sid.clone(),
            caller: call.to_owned(),
            muted: spec.muted,
            start_on_enter: spec.start_on_enter,
            end_on_exit: spec.end_on_exit,
            beep: match spec.beep {
                Beep::Both => "true",
                Beep::OnEnter => "onEnter",
                Beep::OnExit => "onExit",
                Beep::Off => "false",
            }
            .to_owned(),
            label: spec.label.clone(),
            wait_url: visiting.wait_url.map(str::to_owned),
            record: spec.record.is_some(),
            trim_silence: spec.trim_silence,
            at: now_ms(),
        };
        let sealed = (visit.seal(key))
            .or_else(|| {
                // Too long for a header with its wait music's URL: silence instead.
                let without = Visit {
                    wait_url: None,
                    ..visit.clone()
                };
                without.seal(key)
            })
            .ok_or_else(|| CallError::BadArgument("the room's name is too long".into()))?;
        let uri = format!("sip:{}@{next_hop}", visit::USER);
        let uri = uri
            .as_str()
            .try_into()
            .map_err(|_| CallError::BadArgument(format!("{uri} is no SIP URI")))?;
        let (events, mut leg_events) = mpsc::channel::<CallEvent>(64);
        let leg = (self.control)
            .originate(Originate {
                to: Target::Node { uri, next_hop },
                from: visiting.from.to_owned(),
                display_name: None,
                headers: vec![(visit::HEADER.to_owned(), sealed)],
                ring_timeout: VISIT_RING,
                parent: Some(call.to_owned()),
                events,
                account: Some(visiting.account.to_owned()),
                system: true,
            })
            .await?;
        info!(
            room = spec.name,
            home = home.node,
            leg,
            "visiting the room's home"
        );
        loop {
            match leg_events.recv().await.map(|e| e.kind) {
                Some(EventKind::Answered { .. }) => break,
                Some(EventKind::Hangup { .. }) | None => {
                    warn!(
                        room = spec.name,
                        home = home.node,
                        "the room's home did not take the visit"
                    );
                    return Err(CallError::NoRoute(503));
                }
                Some(_) => {}
            }
        }
        if let Err(e) = self
            .control
            .command(call, CallCommand::Bridge(leg.clone()))
            .await
        {
            let _ = self.control.command(&leg, CallCommand::Hangup).await;
            return Err(e);
        }
        // The leg lasts as long as the bridge: the visitor hung up or moved on, or the home
        // let the leg go (the room ended, the participant was removed).
        let control = self.control.clone();
        let follower = leg.clone();
        tokio::spawn(async move {
            while let Some(event) = leg_events.recv().await {
                match event.kind {
                    EventKind::Unbridged { .. } => {
                        let _ = control.command(&follower, CallCommand::Hangup).await;
                    }
                    EventKind::Hangup { .. } => break,
                    _ => {}
                }
            }
        });
        Ok(Joined::There {
            leg,
            conference: home.sid,
        })
    }

    /// Seats the legs other nodes send to visit this node's rooms.
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
                tokio::spawn(this.clone().seat(event).instrument(span));
            }
        });
    }

    /// Seats one visiting leg, and lets it go once its seat is gone.
    async fn seat(self: Arc<Self>, offered: CallEvent) {
        let call = offered.call.clone();
        let EventKind::Incoming { headers, .. } = offered.kind else {
            return;
        };
        let visit = (self.key.as_ref())
            .and_then(|key| {
                let (_, sealed) =
                    (headers.iter()).find(|(n, _)| n.eq_ignore_ascii_case(visit::HEADER))?;
                Visit::unseal(key, sealed)
            })
            .filter(|v| v.fresh(now_ms()));
        let control = &self.control;
        let Some(visit) = visit else {
            warn!("a call to the room host without a good seal: refused");
            let _ = control
                .command(&call, CallCommand::Reject(crate::call::Rejection::Rejected))
                .await;
            return;
        };
        let (tx, mut events) = mpsc::channel::<CallEvent>(64);
        if control
            .command(&call, CallCommand::Redirect(tx))
            .await
            .is_err()
        {
            return;
        }
        let account = self.directory.account(&visit.account);
        let wait_music = match (&visit.wait_url, &account) {
            (Some(url), Some(account)) => self.prompts.url(url, account.reach).await.ok(),
            _ => None,
        };
        let spec = JoinSpec {
            name: visit.room.clone(),
            muted: visit.muted,
            start_on_enter: visit.start_on_enter,
            end_on_exit: visit.end_on_exit,
            wait_music,
            record: visit.record.then_some(RecordFormat::Pcm16),
            trim_silence: visit.trim_silence,
            beep: Beep::of_twiml(&visit.beep),
            label: visit.label.clone(),
            sid: Some(visit.conference.clone()),
            shown_as: Some(visit.caller.clone()),
        };
        let seated = async {
            control
                .command(&call, CallCommand::SetAccount(visit.account.clone()))
                .await?;
            control.command(&call, CallCommand::Answer).await?;
            control
                .command(&call, CallCommand::ConferenceJoin(spec))
                .await
        };
        if let Err(e) = seated.await {
            warn!(error = %e, room = visit.room, "cannot seat the visit");
            let _ = control.command(&call, CallCommand::Hangup).await;
            return;
        }
        info!(room = visit.room, caller = visit.caller, "a visit seated");
        while let Some(event) = events.recv().await {
            let conference = match &event.kind {
                EventKind::ConferenceJoined { conference, .. }
                | EventKind::ConferenceStarted { conference, .. }
                | EventKind::ConferenceEnded { conference, .. } => Some(conference),
                EventKind::ConferenceLeft { conference, .. } => {
                    let _ = control.command(&call, CallCommand::Hangup).await;
                    Some(conference)
                }
                EventKind::Hangup { .. } => break,
                _ => None,
            };
            // The visitor's node has no session here to report the room's events.
            if let Some(conference) = conference
                && let Err(e) = self.subscriptions.catch_up_subject(conference).await
            {
                warn!(error = %e, conference, "cannot report the conference's events yet");
            }
        }
    }
}
