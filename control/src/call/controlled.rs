//! Calls driven by an application: one SIP leg each, with its own media endpoint where our
//! SDP terminates the peer's. The application answers, rejects, hangs up, bridges, plays,
//! gathers, records and taps through [`CallCommand`]s and hears back through [`CallEvent`]s,
//! which are also stored. Twilio's model: every leg is a call with its own SID, and a dialed
//! leg is a child bridged to its parent. Here: the call, its offer, its leg's and media's
//! events, its end; placing a call (`originate`), its commands, gathers, recordings and timers
//! have their own modules.

use super::api::{CallError, CallEvent, Dialed, EventKind};
use super::bridge::status_for_code;
use super::conference::Seat;
use super::gather::*;
use super::session::{ReceivedOffer, Side, our_answer, our_offer, parse_answer};
use super::status::{CallStatus, Direction, HangupBy};
use super::{CallCore, CallKey, outlet};
use crate::call::account_limits::Exceeded;
use crate::infra::store::{CallRecord, EventRow};
use std::time::Instant;
use switchboard_media::{EndpointId, EndpointStats, MediaEvent, MediaOp};
use switchboard_sip::transport::Peer;
use switchboard_sip::ua::{LegEvent, LegId};
use tokio::sync::mpsc;
use tracing::{Span, info, info_span, warn};

/// Sheddable events (digits, marks) numbered past this are delivered but not stored.
pub(super) const STORED_SHEDDABLE_UNTIL: u32 = 4096;

pub(super) struct Controlled {
    pub(super) record: CallRecord,
    pub(super) span: Span,
    pub(super) leg: Option<LegId>,
    pub(super) side: Side,
    /// An incoming call's offer, answered when the application answers; `None` for a
    /// delayed offer (we offer in the 200, the answer comes in the ACK).
    pub(super) offer: Option<ReceivedOffer>,
    pub(super) controller: Option<mpsc::Sender<CallEvent>>,
    pub(super) observers: Vec<mpsc::Sender<CallEvent>>,
    pub(super) seq: u32,
    pub(super) bridged: Option<CallKey>,
    pub(super) gather: Option<Gather>,
    /// When the call is hung up for its time limit, if it has one.
    pub(super) time_limit: Option<Instant>,
    /// When the unanswered call is rejected unless its application commands it first.
    pub(super) command_deadline: Option<Instant>,
    pub(super) next_playback: u64,
    /// The application's playback in progress.
    pub(super) playing: Option<u64>,
    /// Where the call is in its life.
    pub(super) phase: Phase,
    /// The hangup event of an ended call, sent once the media's final counters are back.
    pub(super) hangup: Option<EventKind>,
    /// What happened meanwhile (a recording saved, say), sent after the hangup: a call's
    /// hang-up comes before what follows it, as it always did.
    pub(super) after_hangup: Vec<EventKind>,
    pub(super) released: Option<EndpointStats>,
    /// Recordings not yet saved: the call is kept until their events are out.
    pub(super) recordings_open: usize,
    /// The recording of the call's own audio running now (started and not stopped: a
    /// stopped one may still be finishing its file). One at a time: a new one replaces it.
    pub(super) recording: Option<String>,
    pub(super) seat: Option<Seat>,
}

/// Where a call is in its life. It only moves forward ([`Controlled::enter`]), and the record
/// follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    /// Offered to its application, or being placed.
    Setup,
    Ringing,
    Answered,
    Ended,
}

impl Controlled {
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
}

/// Playback numbers with this bit are wait or hold music the core plays on its own; their
/// end is not the application's business.
pub(super) const MUSIC_PLAYBACK: u64 = 1 << 63;

/// The names of the codecs an offer lists, upper case, in its order: the first
/// [`MAX_OFFERED_CODECS`] distinct ones that are plain tokens of at most 32 characters (an
/// offer is the caller's to write, and the list goes into the application's webhooks).
pub(super) fn offered_codecs(offer: Option<&ReceivedOffer>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for codec in offer.iter().flat_map(|o| &o.stream.codecs) {
        let name = codec.name.to_ascii_uppercase();
        let token = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
        if name.len() <= 32 && name.chars().all(token) && !names.contains(&name) {
            names.push(name);
        }
        if names.len() == MAX_OFFERED_CODECS {
            break;
        }
    }
    names
}

const MAX_OFFERED_CODECS: usize = 16;

/// A SIP URI as `user@host:port`, without its scheme, parameters and headers.
pub(super) fn sip_address(uri: &str) -> String {
    let bare = (uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("sip:"))
        .unwrap_or(uri);
    bare.split([';', '?']).next().unwrap_or_default().to_owned()
}

impl CallCore {
    /// The controller registered for a dialed number, if any (its exact number, else the
    /// longest prefix).
    pub(super) fn controller_for(&self, number: &str) -> Option<mpsc::Sender<CallEvent>> {
        self.controllers
            .iter()
            .filter(|(_, tx)| !tx.is_closed())
            .filter_map(|(dialed, tx)| Some((dialed.rank(number)?, tx)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, tx)| tx.clone())
    }

    pub(super) fn register_controller(&mut self, dialed: Dialed, tx: mpsc::Sender<CallEvent>) {
        self.controllers
            .retain(|(d, t)| *d != dialed && !t.is_closed());
        self.controllers.push((dialed, tx));
    }

    /// An incoming call offered to an application controller.
    pub(super) fn offer_to_controller(
        &mut self,
        now: Instant,
        leg: LegId,
        mut record: CallRecord,
        (offer, headers, peer): (Option<ReceivedOffer>, Vec<(String, String)>, &Peer),
        controller: mpsc::Sender<CallEvent>,
    ) {
        let endpoint = match self.media.allocate(None) {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "no media ports");
                return self.refuse(now, leg, record, 503, Some("no-media-ports"));
            }
        };
        record.status = CallStatus::Ringing;
        let source =
            (self.routing).rtp_source(record.trunk_in.as_deref(), record.user_in.as_deref());
        let mut side = Side::new(endpoint, source, peer);
        side.remote = offer.as_ref().map(|o| o.stream.clone());
        let (trunk, user) = (record.trunk_in.clone(), record.user_in.clone());
        let offered = super::api::Offered {
            from_uri: sip_address(&record.from_uri),
            to_uri: sip_address(&record.to_uri),
            codecs: offered_codecs(offer.as_ref()),
        };
        let incoming = EventKind::Incoming {
            from: record.from.clone(),
            to: record.to.clone(),
            trunk,
            user,
            headers,
            offered,
        };
        let key = self.insert_controlled(record, Some(leg), side, offer, Some(controller));
        self.ctl_legs.insert(leg, key);
        self.emit(key, incoming);
    }

    /// The calls `account` has up or ringing.
    pub(super) fn account_calls(&self, account: &str) -> usize {
        (self.controlled.values())
            .filter(|c| !c.ended() && c.record.account_sid.as_deref() == Some(account))
            .count()
    }

    /// An incoming call found its account (the number's owner): refused, 486 Busy Here as a
    /// line that is busy, when the account has as many calls as it may — an account's incoming
    /// calls take media ports from the same shared pool as its outgoing ones. Only the
    /// concurrent calls count: how fast calls arrive is the carrier's to police, and a burst of
    /// callers is not the account's doing.
    pub(super) fn admit_incoming(
        &mut self,
        now: Instant,
        key: CallKey,
        account: &str,
    ) -> Result<(), CallError> {
        let Some(limits) = &self.config.account_limits else {
            return Ok(());
        };
        let max = limits.of(account).max_calls;
        if self.account_calls(account) < max as usize {
            return Ok(());
        }
        metrics::counter!("switchboard_calls_refused_total", "reason" => "account-limit")
            .increment(1);
        info!(account, max, "incoming call over the account's limit");
        if let Some(leg) = self.controlled.get(&key).and_then(|c| c.leg) {
            self.ua.respond(now, leg, 486, None);
        }
        let cause = Some("account-limit");
        self.end_controlled(key, CallStatus::Busy, Some(486), HangupBy::System, cause);
        Err(CallError::AccountLimit(Exceeded::Calls(max)))
    }

    pub(super) fn insert_controlled(
        &mut self,
        record: CallRecord,
        leg: Option<LegId>,
        side: Side,
        offer: Option<ReceivedOffer>,
        controller: Option<mpsc::Sender<CallEvent>>,
    ) -> CallKey {
        self.next_key += 1;
        let key = self.next_key;
        let span = info_span!("call", id = %record.id);
        self.cdr.save(record.clone());
        metrics::gauge!("switchboard_calls_active").increment(1.0);
        self.sids.insert(record.id.clone(), key);
        self.ctl_endpoints.insert(side.endpoint, key);
        self.controlled.insert(
            key,
            Controlled {
                record,
                span,
                leg,
                side,
                offer,
                controller,
                observers: Vec::new(),
                seq: 0,
                bridged: None,
                gather: None,
                time_limit: None,
                command_deadline: None,
                next_playback: 0,
                phase: Phase::Setup,
                hangup: None,
                after_hangup: Vec::new(),
                released: None,
                recordings_open: 0,
                recording: None,
                seat: None,
                playing: None,
            },
        );
        key
    }

    /// Sends an event to the call's controller and observers, and stores it (see
    /// [`STORED_SHEDDABLE_UNTIL`]).
    pub(super) fn emit(&mut self, key: CallKey, kind: EventKind) {
        let Some(call) = self.controlled.get_mut(&key) else {
            return;
        };
        if call.hangup.is_some() {
            // Ended, its hangup waiting for the media's counters: a digit or a mark from the
            // media's last moments means nothing now; anything else follows the hangup.
            if !kind.sheddable() {
                call.after_hangup.push(kind);
            }
            return;
        }
        let event = CallEvent {
            call: call.record.id.clone(),
            seq: call.seq,
            at: self.wall,
            kind,
        };
        call.seq += 1;
        // A call's sheddable events are stored up to a bound, so a digit flood cannot grow
        // the store's queue without limit while the database is slow.
        if event.kind.stored() && (!event.kind.sheddable() || event.seq < STORED_SHEDDABLE_UNTIL) {
            self.cdr.event(EventRow {
                call_id: event.call.clone(),
                seq: event.seq,
                at: event.at,
                kind: event.kind.name().to_owned(),
                detail: serde_json::to_string(&event.kind).unwrap_or_default(),
            });
        }
        let outlets = &mut self.outlets;
        let mut deliver = |tx: &mpsc::Sender<CallEvent>| {
            outlets.deliver(key, tx, event.clone()) != outlet::Delivery::Closed
        };
        if let Some(c) = &call.controller
            && !deliver(c)
        {
            call.controller = None;
        }
        call.observers.retain(deliver);
    }

    /// A direct line into a live call's injection queue.
    pub(super) fn media_link(&self, sid: &str) -> Result<super::MediaLink, CallError> {
        let call = self
            .sids
            .get(sid)
            .and_then(|k| self.controlled.get(k))
            .ok_or_else(|| CallError::NotFound(sid.to_owned()))?;
        if call.ended() {
            return Err(CallError::InvalidState {
                status: call.record.status,
            });
        }
        Ok(super::MediaLink {
            engine: self.media.clone(),
            endpoint: call.side.endpoint,
        })
    }

    /// The call bridged with `sid`, and a direct line into its injection queue.
    pub(super) fn peer_link(
        &self,
        sid: &str,
    ) -> Result<Option<(String, super::MediaLink)>, CallError> {
        let call = self
            .sids
            .get(sid)
            .and_then(|k| self.controlled.get(k))
            .ok_or_else(|| CallError::NotFound(sid.to_owned()))?;
        let peer = call.bridged.and_then(|k| self.controlled.get(&k));
        Ok(peer.filter(|p| !p.ended()).map(|p| {
            let link = super::MediaLink {
                engine: self.media.clone(),
                endpoint: p.side.endpoint,
            };
            (p.record.id.clone(), link)
        }))
    }

    pub(super) fn subscribe(&mut self, sid: &str, tx: mpsc::Sender<CallEvent>) {
        if let Some(call) = self.sids.get(sid).and_then(|k| self.controlled.get_mut(k)) {
            call.observers.push(tx);
        }
    }

    pub(super) fn answer(&mut self, now: Instant, key: CallKey, headers: &[(String, String)]) {
        let call = self.controlled.get_mut(&key).expect("checked");
        let Some(leg) = call.leg else { return };
        let body = match &call.offer {
            Some(offer) => {
                let answer = our_answer(&offer.stream);
                call.side.agree(&answer);
                call.side
                    .local
                    .describe(&answer, &offer.declined, offer.audio_index)
            }
            // A delayed offer: we offer, the caller answers in its ACK.
            None => call.side.local.describe(&our_offer(), &[], 0),
        };
        self.ua.respond_with(now, leg, 200, Some(body), headers);
        self.media
            .configure(call.side.endpoint, call.side.endpoint_config(true));
        self.on_controlled_answered(key);
    }

    pub(super) fn on_controlled_answered(&mut self, key: CallKey) {
        let call = self.controlled.get_mut(&key).expect("checked");
        call.enter(Phase::Answered, self.wall);
        self.media
            .media(call.side.endpoint, MediaOp::DetectDtmf(true));
        info!(codec = ?call.side.codec_name(), "answered");
        self.cdr.save(call.record.clone());
        let codec = call.side.agreed_codec();
        self.emit(key, EventKind::Answered { codec });
    }

    pub(super) fn bridge(&mut self, key: CallKey, other: &str) -> Result<(), CallError> {
        let other_key = *self
            .sids
            .get(other)
            .ok_or_else(|| CallError::NotFound(other.to_owned()))?;
        let (a, b) = match (self.controlled.get(&key), self.controlled.get(&other_key)) {
            (Some(a), Some(b)) if key != other_key && !b.ended() => {
                (a.side.endpoint, b.side.endpoint)
            }
            _ => {
                return Err(CallError::BadArgument(format!(
                    "cannot bridge with {other}"
                )));
            }
        };
        for k in [key, other_key] {
            self.unbridge(k);
            self.conference_leave(k, "moved");
        }
        self.media.bridge(a, b);
        for (x, y) in [(key, other_key), (other_key, key)] {
            let with = self.controlled[&y].record.id.clone();
            self.controlled.get_mut(&x).expect("checked").bridged = Some(y);
            self.emit(x, EventKind::Bridged { with });
        }
        Ok(())
    }

    pub(super) fn unbridge(&mut self, key: CallKey) {
        let Some(other) = self.controlled.get_mut(&key).and_then(|c| c.bridged.take()) else {
            return;
        };
        self.media.unbridge(self.controlled[&key].side.endpoint);
        // One of the two is ending when this runs from its hang-up.
        let ended = |c: &Controlled| c.ended();
        let other_ended = self.controlled.get(&other).is_some_and(ended);
        let this_ended = ended(&self.controlled[&key]);
        self.emit(
            key,
            EventKind::Unbridged {
                peer_ended: other_ended,
            },
        );
        if let Some(o) = self.controlled.get_mut(&other) {
            o.bridged = None;
            self.emit(
                other,
                EventKind::Unbridged {
                    peer_ended: this_ended,
                },
            );
        }
    }

    pub(super) fn on_controlled_leg_event(&mut self, now: Instant, key: CallKey, event: LegEvent) {
        let Some(call) = self.controlled.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let by_peer = if call.is_inbound() {
            HangupBy::Caller
        } else {
            HangupBy::Callee
        };
        match event {
            LegEvent::Progress { code, body } => {
                if call.ended() {
                    return;
                }
                if call.enter(Phase::Ringing, self.wall) {
                    self.cdr.save(call.record.clone());
                    self.emit(key, EventKind::Ringing);
                }
                let call = self.controlled.get_mut(&key).expect("present");
                if code == 183
                    && let Ok(answer) = parse_answer(body.as_ref())
                {
                    call.side.remote = Some(answer.clone());
                    call.side.agree(&answer);
                    self.media
                        .configure(call.side.endpoint, call.side.endpoint_config(false));
                    self.emit(key, EventKind::EarlyMedia);
                }
            }
            LegEvent::Answered { body } => {
                let Some(leg) = call.leg else { return };
                self.ua.ack(leg, None);
                if call.ended() {
                    return self.ua.hangup(now, leg, 487);
                }
                match parse_answer(body.as_ref()) {
                    Ok(answer) => {
                        call.side.remote = Some(answer.clone());
                        call.side.agree(&answer);
                        self.media
                            .configure(call.side.endpoint, call.side.endpoint_config(true));
                        self.on_controlled_answered(key);
                    }
                    Err(p) => {
                        warn!(code = p.status(), "answered with unusable SDP");
                        self.ua.hangup(now, leg, 488);
                        self.end_controlled(
                            key,
                            CallStatus::Failed,
                            Some(488),
                            HangupBy::System,
                            Some("callee-sdp"),
                        );
                    }
                }
            }
            LegEvent::Failed { code } => {
                call.leg = None;
                let by = if code == 408 {
                    HangupBy::System
                } else {
                    HangupBy::Callee
                };
                info!(code, "call failed");
                self.end_controlled(key, status_for_code(code), Some(code), by, None);
            }
            LegEvent::Acked { body } => {
                // The answer to the offer we made in our 200 (delayed offer).
                if call.offer.is_none()
                    && call.is_inbound()
                    && let Ok(answer) = parse_answer(body.as_ref())
                {
                    call.side.remote = Some(answer.clone());
                    call.side.agree(&answer);
                    self.media
                        .configure(call.side.endpoint, call.side.endpoint_config(true));
                }
            }
            LegEvent::Cancelled => {
                call.leg = None;
                self.end_controlled(key, CallStatus::Canceled, Some(487), by_peer, None);
            }
            LegEvent::Bye => {
                call.leg = None;
                info!("hangup by the peer");
                self.end_controlled(key, CallStatus::Completed, Some(200), by_peer, None);
            }
            LegEvent::Terminated { ack_timeout } => {
                call.leg = None;
                if ack_timeout {
                    self.end_controlled(
                        key,
                        CallStatus::Completed,
                        Some(200),
                        HangupBy::System,
                        Some("ack-timeout"),
                    );
                }
            }
            LegEvent::ReInvite { body } => {
                let Some(leg) = call.leg else { return };
                let Some(body) = body else {
                    let ours = call.side.local.last();
                    return self.ua.respond_reinvite(now, leg, 200, ours);
                };
                match ReceivedOffer::parse(&body) {
                    Ok(offer) => {
                        let answer = our_answer(&offer.stream);
                        call.side.remote = Some(offer.stream.clone());
                        call.side.agree(&answer);
                        let sdp =
                            call.side
                                .local
                                .describe(&answer, &offer.declined, offer.audio_index);
                        self.media
                            .configure(call.side.endpoint, call.side.endpoint_config(true));
                        self.ua.respond_reinvite(now, leg, 200, Some(sdp));
                    }
                    Err(p) => self.ua.respond_reinvite(now, leg, p.status(), None),
                }
            }
            LegEvent::Info { body } => {
                if let Some(report) = body.as_ref().and_then(info_digit) {
                    self.on_digit(now, key, report);
                }
            }
            LegEvent::ReInviteResult { .. } => {}
        }
    }

    pub(super) fn on_controlled_media(&mut self, now: Instant, key: CallKey, event: MediaEvent) {
        match event {
            MediaEvent::Timeout { .. } => {
                if let Some(leg) = self.controlled.get(&key).and_then(|c| c.leg) {
                    self.ua.hangup(now, leg, 408);
                }
                self.end_controlled(
                    key,
                    CallStatus::Completed,
                    Some(200),
                    HangupBy::System,
                    Some("rtp-timeout"),
                );
            }
            MediaEvent::Released { stats, .. } => {
                if let Some(call) = self.controlled.get_mut(&key) {
                    call.released = Some(stats);
                }
                self.emit_hangup(key, Some(&stats));
                self.forget_if_done(key);
            }
            MediaEvent::Dtmf { report, .. } => self.on_digit(now, key, report),
            MediaEvent::PlaybackEnded {
                playback, reason, ..
            } => {
                if playback & MUSIC_PLAYBACK == 0 {
                    self.on_playback_ended(now, key, playback);
                    self.emit(key, EventKind::PlaybackEnded { playback, reason });
                }
            }
            MediaEvent::Mark { name, cleared, .. } => {
                self.emit(key, EventKind::Mark { name, cleared })
            }
            MediaEvent::TapStopped { tap, dropped, .. } => self.emit(
                key,
                EventKind::TapStopped {
                    tap: tap.0,
                    dropped_frames: dropped,
                },
            ),
            MediaEvent::InjectDiscarded { frames, .. } => {
                self.emit(key, EventKind::InjectDiscarded { frames })
            }
            MediaEvent::RecordingStopped {
                recording, reason, ..
            } => {
                if let Some(open) = self.recordings.get(&recording) {
                    let recording = open.row.id.clone();
                    let reason = reason.as_str();
                    if let Some(call) = self.controlled.get_mut(&key) {
                        call.recording.take_if(|r| *r == recording);
                    }
                    self.emit(key, EventKind::RecordingStopped { recording, reason });
                }
            }
            // Routed to `on_recording_saved` before an endpoint is looked up.
            MediaEvent::RecordingSaved(_) => {}
        }
    }

    /// The call is over: the media released, then the hangup event with the media's final
    /// counters (and the CDR completed with them).
    pub(super) fn end_controlled(
        &mut self,
        key: CallKey,
        status: CallStatus,
        sip_code: Option<u16>,
        by: HangupBy,
        cause: Option<&str>,
    ) {
        let Some(call) = self.controlled.get_mut(&key) else {
            return;
        };
        if !call.enter(Phase::Ended, self.wall) {
            return;
        }
        call.record.status = status;
        call.record.sip_code = sip_code;
        call.record.hangup_by = Some(by);
        call.record.hangup_cause = cause.map(str::to_owned);
        let endpoint = call.side.endpoint;
        info!(%status, by = by.as_str(), "call ended");
        metrics::counter!("switchboard_calls_total", "status" => status.as_str()).increment(1);
        metrics::gauge!("switchboard_calls_active").decrement(1.0);
        self.end_gather(key, "hangup");
        self.unbridge(key);
        self.conference_leave(key, "hangup");
        if let Some(call) = self.controlled.get_mut(&key) {
            call.hangup = Some(EventKind::Hangup {
                status,
                sip_code,
                by,
                cause: cause.map(str::to_owned),
                quality: None,
            });
        }
        self.media.release(endpoint);
    }

    /// Sends an ended call's hangup event, with `stats` when the media gave them back.
    pub(super) fn emit_hangup(&mut self, key: CallKey, stats: Option<&EndpointStats>) {
        let Some(call) = self.controlled.get_mut(&key) else {
            return;
        };
        if let Some(mut hangup) = call.hangup.take() {
            if let (EventKind::Hangup { quality, .. }, Some(stats)) = (&mut hangup, stats) {
                *quality = Some(super::api::Quality::of(stats));
            }
            let after = std::mem::take(&mut call.after_hangup);
            self.emit(key, hangup);
            for kind in after {
                self.emit(key, kind);
            }
        }
    }

    /// Shutdown is over: a call that ended is written out even though its media or recordings
    /// never reported back (they are repaired at the next start).
    pub(super) fn settle_controlled(&mut self, key: CallKey) {
        self.emit_hangup(key, None);
        if let Some(call) = self.controlled.get_mut(&key).filter(|c| c.ended()) {
            call.released.get_or_insert_with(EndpointStats::default);
            call.recordings_open = 0;
        }
        self.forget_if_done(key);
    }

    /// Drops a finished call once its media is released and its recordings are saved.
    pub(super) fn forget_if_done(&mut self, key: CallKey) {
        let done = self
            .controlled
            .get(&key)
            .is_some_and(|c| c.ended() && c.released.is_some() && c.recordings_open == 0);
        if !done {
            return;
        }
        let call = self.controlled.remove(&key).expect("checked");
        self.sids.remove(&call.record.id);
        self.ctl_endpoints.remove(&call.side.endpoint);
        self.ctl_legs.retain(|_, k| *k != key);
        let stats = call.released.unwrap_or_default();
        let mut record = call.record;
        record.legs = vec![super::bridge::leg_record(
            "leg",
            Some(record.sip_call_id.clone()),
            &call.side,
            stats,
        )];
        if let (Some(a), Some(e)) = (record.answered_at, record.ended_at) {
            record.duration_secs = ((e - a).max(0) as u64).div_ceil(1000);
        }
        self.cdr.save(record);
    }

    /// Ends every application call (shutdown).
    pub(super) fn hang_up_controlled(&mut self, now: Instant) {
        let live: Vec<CallKey> = self
            .controlled
            .iter()
            .filter(|(_, c)| !c.ended())
            .map(|(k, _)| *k)
            .collect();
        for key in live {
            let call = &self.controlled[&key];
            if let Some(leg) = call.leg {
                self.ua.hangup(now, leg, 503);
            }
            let (status, code) = if call.answered() {
                (CallStatus::Completed, 200)
            } else {
                (CallStatus::Failed, 503)
            };
            self.end_controlled(key, status, Some(code), HangupBy::System, Some("shutdown"));
        }
    }

    /// The endpoint's owner, for media events.
    pub(super) fn controlled_by_endpoint(&self, id: EndpointId) -> Option<CallKey> {
        self.ctl_endpoints.get(&id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sip::ua::Body;

    /// What a caller's offer may put in an application's webhook is bounded: distinct plain
    /// names of at most 32 characters, at most 16 of them, in the offer's order.
    #[test]
    fn offered_codecs_are_bounded_and_plain() {
        let mut sdp = String::from(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP",
        );
        let pts: Vec<u8> = (96..=127).collect();
        for pt in [0, 8].iter().chain(&pts) {
            sdp += &format!(" {pt}");
        }
        sdp += "\r\na=rtpmap:96 pcmu/8000\r\na=rtpmap:97 x<script>/8000\r\n";
        sdp += &format!("a=rtpmap:98 {}/8000\r\n", "L".repeat(40));
        for pt in 99..=127 {
            sdp += &format!("a=rtpmap:{pt} C{pt}/8000\r\n");
        }
        let offer = ReceivedOffer::parse(&Body::sdp(sdp)).unwrap();
        let names = offered_codecs(Some(&offer));
        assert_eq!(names.len(), MAX_OFFERED_CODECS);
        assert_eq!(names[..3], ["PCMU", "PCMA", "C99"]);
        assert!(names.iter().all(|n| n.len() <= 32 && !n.contains('<')));
        assert_eq!(offered_codecs(None), Vec::<String>::new());
    }
}
