//! The one model of a call. A call has a record, a life ([`Phase`], forward only), one or more
//! legs and a controller. Its own leg (`legs[0]`) is the caller's on an incoming call and the
//! callee's on a call we place; a route's call adds the leg it dialed. A leg is a SIP dialog
//! (a browser's too, through the browser gateway, with WebRTC media) and its kind is a field,
//! so other kinds of signalling would be legs of the same call. A call placed to a registered
//! user rings each of its devices until one answers ([`super::fork`]).
//! The controller says who decides what happens next: an application ([`Controller::App`],
//! through [`CallCommand`](super::CallCommand)s) or a route of the routing table
//! ([`Controller::Route`], which relays one leg's offers, answers and hang-ups to the other).
//! Whatever controls it, a call takes the same commands on its own leg's media (record, taps,
//! suppression, playback, digits), emits the same events and ends down one path, which writes
//! its CDR once every leg's media is back and its recordings are saved.

use super::api::{CallEvent, EventKind};
use super::conference::Seat;
use super::context::{CallContext, Sink};
use super::gather::Gather;
use super::session::{ReceivedOffer, Side};
use super::status::{CallStatus, Direction, HangupBy};
use super::timers::TimerTable;
use super::{CallKey, Output, SubscriberId};
use crate::rows::{CallRecord, LegRecord, SipTags};
use switchboard_media::{EndpointStats, MediaOp, Prompt};
use switchboard_sip::ua::{LegId, UserAgent};
use tracing::Span;

/// Sheddable events (digits, marks) numbered past this are delivered but not stored.
pub(super) const STORED_SHEDDABLE_UNTIL: u32 = 4096;

pub(super) struct Call {
    pub(super) record: CallRecord,
    pub(super) span: Span,
    /// `legs[0]` is the call's own leg; a route's call has the leg it dialed at `legs[1]`.
    pub(super) legs: Vec<Leg>,
    /// Where the call is in its life.
    pub(super) phase: Phase,
    pub(super) controller: Controller,
    /// An incoming call's offer, answered when the application answers or relayed by the
    /// route; `None` for a delayed offer (the offer comes from our side, the answer in the
    /// ACK).
    pub(super) offer: Option<ReceivedOffer>,
    pub(super) observers: Vec<SubscriberId>,
    pub(super) seq: u32,
    /// The call whose own leg this call's own leg is bridged with.
    pub(super) bridged: Option<CallKey>,
    pub(super) gather: Option<Gather>,
    /// Its deadlines: time limit, the wait for the application's first command, the gather's,
    /// the alarm, the answer to the party's REFER.
    pub(super) timers: TimerTable,
    /// The application's alarm's id, while it is set ([`super::timers::CallTimer::Alarm`]).
    pub(super) alarm: Option<u64>,
    pub(super) next_playback: u64,
    /// The application's playback in progress.
    pub(super) playing: Option<u64>,
    /// The hangup event of an ended call, sent once the media's final counters are back.
    pub(super) hangup: Option<EventKind>,
    /// What happened meanwhile (a recording saved, say), sent after the hangup: a call's
    /// hang-up comes before what follows it, as it always did.
    pub(super) after_hangup: Vec<EventKind>,
    /// Recordings not yet saved: the call is kept until their events are out.
    pub(super) recordings_open: usize,
    /// The recording of the call's own audio running now (started and not stopped: a
    /// stopped one may still be finishing its file). One at a time: a new one replaces it.
    pub(super) recording: Option<String>,
    pub(super) seat: Option<Seat>,
    /// The other devices of the user the call rings, while it rings them.
    pub(super) forking: Option<super::fork::Forking>,
    /// The channel groups the call takes a channel of while it lives (see
    /// [`crate::api::ChannelLimit`]).
    pub(super) channels: Vec<String>,
    /// What the call last added to the node's tally ([`crate::tally`]).
    pub(super) tallied: crate::tally::Share,
}

/// One leg of a call: a dialog with a peer and the media endpoint that anchors its audio.
pub(super) struct Leg {
    /// Its name in the call's record: `leg` for an application's call, `caller` and `callee`
    /// for a route's.
    pub(super) name: &'static str,
    #[expect(
        dead_code,
        reason = "one kind so far: a browser is a SIP user through the gateway"
    )]
    pub(super) kind: LegKind,
    /// The dialog, for as long as it lasts.
    pub(super) dialog: Option<LegId>,
    /// The dialog it ever had, to drop its index entry when the call is forgotten.
    pub(super) first_dialog: LegId,
    /// The dialog's Call-ID and tags.
    pub(super) sip_call_id: Option<String>,
    pub(super) sip_tags: SipTags,
    pub(super) side: Side,
    /// The media's final counters, once the engine gave the endpoint back.
    pub(super) released: Option<EndpointStats>,
}

/// What carries a leg's signalling. Only SIP so far: a browser reaches the core as a SIP
/// user through the browser gateway, and its WebRTC media is its side's ([`Side`]) concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegKind {
    Sip,
}

/// Who decides what a call does next.
pub(super) enum Controller {
    /// An application, through commands; its events go to this subscriber.
    App(Option<SubscriberId>),
    /// A route of the routing table, relaying between the call's two legs.
    Route(Box<Route>),
}

/// A route's state in a call it connects.
#[derive(Default)]
pub(super) struct Route {
    /// Delayed offer: the callee's offer, relayed to the caller, awaiting the answer in its
    /// ACK.
    pub(super) callee_offer: Option<ReceivedOffer>,
    /// A re-INVITE from one party being relayed to the other.
    pub(super) reinvite: Option<PendingReinvite>,
    /// What the route does to the call from its answer (record, time limit, noise).
    pub(super) features: super::dial_plan::RouteFeatures,
    /// The route's other trunks, should the callee's fail before answering.
    pub(super) failover: Option<Failover>,
    /// A party's transfer (REFER) being placed.
    pub(super) transfer: Option<super::transfer::Transfer>,
    /// Our re-INVITE taking this party off hold after an attended transfer, unanswered yet.
    pub(super) resuming: Option<Party>,
}

/// What it takes to send a routed call's INVITE to the route's next trunk.
pub(super) struct Failover {
    /// The offer sent to the first trunk (the callee side's, whichever trunk it faces), and
    /// the Max-Forwards the caller's INVITE left.
    pub(super) body: Option<switchboard_sip::ua::Body>,
    pub(super) max_forwards: u32,
    /// The dialed number, and the caller's display name (with its space) for From.
    pub(super) number: String,
    pub(super) display: String,
    /// What the caller's trunk asserted, passed on to a trusted next trunk.
    pub(super) vouched: Vec<(String, String)>,
    /// The trunks still to try, in order.
    pub(super) trunks: std::collections::VecDeque<String>,
}

/// A re-INVITE from one party being relayed to the other.
#[derive(Debug)]
pub(super) struct PendingReinvite {
    pub(super) from: Party,
    pub(super) offer: ReceivedOffer,
}

/// The two legs of a route's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Party {
    Caller,
    Callee,
}

impl Party {
    pub(super) fn of(index: usize) -> Self {
        if index == 0 {
            Party::Caller
        } else {
            Party::Callee
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            Party::Caller => 0,
            Party::Callee => 1,
        }
    }

    pub(super) fn other(self) -> Self {
        match self {
            Party::Caller => Party::Callee,
            Party::Callee => Party::Caller,
        }
    }

    pub(super) fn hangup_by(self) -> HangupBy {
        match self {
            Party::Caller => HangupBy::Caller,
            Party::Callee => HangupBy::Callee,
        }
    }
}

/// Where a call is in its life. It only moves forward ([`Call::enter`]), and the record
/// follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    /// Offered to its application or route, or being placed.
    Setup,
    Ringing,
    Answered,
    Ended,
}

impl Call {
    /// Plays a clip (or prompt) to the call's own leg, replacing what plays; its
    /// `PlaybackStarted` names it.
    pub(super) fn play(&mut self, cx: &mut CallContext, clip: Prompt, loops: u32, barge_in: bool) {
        self.next_playback += 1;
        let playback = self.next_playback;
        self.playing = Some(playback);
        let play = MediaOp::Play {
            playback,
            clip,
            loops,
            barge_in,
        };
        cx.media.media(self.own().side.endpoint, play);
        self.emit(cx, EventKind::PlaybackStarted { playback });
    }

    /// Sends an event to the call's controller, observers and its account's watchers, and
    /// stores it (see [`STORED_SHEDDABLE_UNTIL`]).
    pub(super) fn emit(&mut self, cx: &mut CallContext, kind: EventKind) {
        self.emit_into(cx.sink(), kind);
    }

    /// [`Call::emit`] through the part of a context it needs.
    pub(super) fn emit_into(&mut self, cx: Sink, kind: EventKind) {
        if self.hangup.is_some() {
            // Ended, its hangup waiting for the media's counters: a digit or a mark from the
            // media's last moments means nothing now; anything else follows the hangup.
            if !kind.sheddable() {
                self.after_hangup.push(kind);
            }
            return;
        }
        let event = CallEvent {
            call: self.record.id.clone(),
            seq: self.seq,
            at: cx.wall,
            kind,
        };
        self.seq += 1;
        cx.records.call_event(&event);
        // A visit's leg is how the node carries a call of the account, no call of its own (as
        // its calls' list says): the account's watchers follow the call; the operator's, all.
        let account = (self.record.account_sid.as_deref()).filter(|_| !self.is_visit());
        let whose = [account, Some(super::ALL_CALLS)];
        let watchers = (whose.into_iter().flatten())
            .filter_map(|w| cx.watchers.get(w))
            .flatten();
        let controller = match self.controller {
            Controller::App(app) => app,
            Controller::Route(_) => None,
        };
        for to in (controller.iter()).chain(&self.observers).chain(watchers) {
            cx.outputs.push_back(Output::Event {
                to: *to,
                call: cx.key,
                event: event.clone(),
            });
        }
    }
}

impl Leg {
    pub(super) fn sip(name: &'static str, dialog: LegId, side: Side) -> Self {
        Self {
            name,
            kind: LegKind::Sip,
            dialog: Some(dialog),
            first_dialog: dialog,
            sip_call_id: None,
            sip_tags: SipTags::default(),
            side,
            released: None,
        }
    }

    /// Names the leg's dialog in its record: `dialog`'s Call-ID and tags as they are now.
    pub(super) fn name_dialog(&mut self, ua: &UserAgent, dialog: LegId) {
        (self.sip_call_id, self.sip_tags) = dialog_name(ua, dialog);
    }

    /// Tells the engine how the leg's endpoint is to treat its peer's media now.
    pub(super) fn configure(&self, media: &mut super::engine_commands::Engine, answered: bool) {
        media.configure(self.side.endpoint, self.side.endpoint_config(answered));
    }

    /// The leg as the call's record keeps it.
    pub(super) fn record(&self) -> LegRecord {
        let s = self.released.unwrap_or_default();
        LegRecord {
            leg: self.name.into(),
            sip_call_id: self.sip_call_id.clone(),
            sip_tags: self.sip_tags.clone(),
            remote_rtp: (self.side.remote.as_ref())
                .and_then(|r| r.addr)
                .map(|a| a.to_string()),
            codec: self.side.codec_name(),
            packets_in: s.packets_in,
            packets_out: s.packets_out,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            lost: s.lost,
            out_of_order: s.out_of_order,
            dropped: s.dropped,
        }
    }
}

impl Call {
    /// Moves the call on to `phase` at `at` (Unix milliseconds), its record with it; false
    /// when it is there or past it already.
    pub(super) fn enter(&mut self, phase: Phase, at: i64) -> bool {
        if phase <= self.phase {
            return false;
        }
        self.phase = phase;
        match phase {
            Phase::Setup => {}
            Phase::Ringing => self.record.status = CallStatus::Ringing,
            Phase::Answered => {
                self.record.status = CallStatus::InProgress;
                self.record.answered_at = Some(at);
            }
            Phase::Ended => self.record.ended_at = Some(at),
        }
        true
    }

    pub(super) fn answered(&self) -> bool {
        self.record.answered_at.is_some()
    }

    pub(super) fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    pub(super) fn is_inbound(&self) -> bool {
        self.record.direction == Direction::Inbound
    }

    /// A leg of a visit between nodes or call-core shards (either end): the visiting call is
    /// the account's call, counted already; this is how the node's topology carries it.
    pub(super) fn is_visit(&self) -> bool {
        self.record.to == super::visit::USER
    }

    /// Over as its bridged peer sees it: ended, unless it is a visit leg whose far side said
    /// the call it stood for moved on ([`super::visit::MOVED`]).
    pub(super) fn ended_for_peer(&self) -> bool {
        self.ended()
            && !(self.is_visit()
                && self.record.hangup_cause.as_deref() == Some(super::visit::MOVED))
    }

    /// The call's own leg.
    pub(super) fn own(&self) -> &Leg {
        &self.legs[0]
    }

    pub(super) fn own_mut(&mut self) -> &mut Leg {
        &mut self.legs[0]
    }

    /// A call as it begins, in its setup phase.
    pub(super) fn new(
        record: CallRecord,
        span: Span,
        legs: Vec<Leg>,
        offer: Option<ReceivedOffer>,
        controller: Controller,
    ) -> Self {
        Call {
            record,
            span,
            legs,
            phase: Phase::Setup,
            controller,
            offer,
            observers: Vec::new(),
            seq: 0,
            bridged: None,
            gather: None,
            timers: TimerTable::default(),
            alarm: None,
            next_playback: 0,
            playing: None,
            hangup: None,
            after_hangup: Vec::new(),
            recordings_open: 0,
            recording: None,
            seat: None,
            forking: None,
            channels: Vec::new(),
            tallied: Default::default(),
        }
    }

    /// A route's state; `None` for an application's call.
    pub(super) fn route(&mut self) -> Option<&mut Route> {
        match &mut self.controller {
            Controller::Route(r) => Some(r),
            Controller::App(_) => None,
        }
    }

    pub(super) fn routed(&self) -> bool {
        matches!(self.controller, Controller::Route(_))
    }

    /// The dialogs still up.
    pub(super) fn dialogs(&self) -> impl Iterator<Item = LegId> + '_ {
        self.legs.iter().filter_map(|l| l.dialog)
    }
}

/// A dialog's Call-ID and tags as the UA holds them now (the peer's tag is unknown until it
/// answers a dialog we began).
pub(super) fn dialog_name(ua: &UserAgent, dialog: LegId) -> (Option<String>, SipTags) {
    match ua.dialog(dialog) {
        Some(d) => (
            Some(d.call_id.clone()),
            SipTags {
                local: Some(d.local_tag.clone()),
                remote: d.remote_tag.clone(),
            },
        ),
        None => (None, SipTags::default()),
    }
}
