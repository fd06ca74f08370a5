//! A bridged call: the caller's leg and the callee's leg, each with its media endpoint, and how
//! the events of one leg become commands on the other (provisional and final responses, early
//! media, CANCEL, BYE, re-INVITE relayed with SDP rewritten, failures mapped).

use super::api::RecordOptions;
use super::recording::RecordingSource;
use super::session::{ReceivedOffer, Side, parse_answer};
use super::status::{CallStatus, HangupBy};
use super::{CallCore, CallKey};
use crate::infra::store::{CallRecord, LegRecord};
use std::time::Instant;
use switchboard_media::record::{Channels, RecordFormat};
use switchboard_media::{EndpointId, EndpointStats, TapTracks};
use switchboard_sip::sdp::offer_answer::{relay_answer, relay_offer};
use switchboard_sip::ua::{Body, LegId};
use tracing::{Span, info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Party {
    Caller,
    Callee,
}

impl Party {
    fn other(self) -> Self {
        match self {
            Party::Caller => Party::Callee,
            Party::Callee => Party::Caller,
        }
    }

    fn hangup_by(self) -> HangupBy {
        match self {
            Party::Caller => HangupBy::Caller,
            Party::Callee => HangupBy::Callee,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) status: CallStatus,
    pub(crate) sip_code: Option<u16>,
    pub(crate) hangup_by: HangupBy,
    pub(crate) cause: Option<&'static str>,
    pub(crate) ended_at: i64,
}

/// A re-INVITE from one party being relayed to the other.
#[derive(Debug)]
struct PendingReinvite {
    from: Party,
    offer: ReceivedOffer,
}

pub(crate) struct Call {
    pub(crate) record: CallRecord,
    pub(crate) span: Span,
    pub(crate) caller_leg: Option<LegId>,
    pub(crate) callee_leg: Option<LegId>,
    /// Every leg this call ever had, to drop their index entries at the end.
    pub(crate) leg_ids: Vec<LegId>,
    pub(crate) callee_call_id: Option<String>,
    pub(crate) caller: Side,
    pub(crate) callee: Side,
    /// The caller's offer; `None` for a delayed-offer INVITE (no SDP), where the callee's 200
    /// brings the offer instead.
    pub(crate) caller_offer: Option<ReceivedOffer>,
    /// Delayed offer: the callee's offer, relayed to the caller, awaiting the answer in its ACK.
    callee_offer: Option<ReceivedOffer>,
    pub(crate) ending: Option<Outcome>,
    released: Vec<(EndpointId, EndpointStats)>,
    reinvite: Option<PendingReinvite>,
    /// The route records the call from its answer, with these channels.
    pub(crate) recorded: Option<Channels>,
}

impl Call {
    pub(crate) fn new(
        record: CallRecord,
        span: Span,
        caller_leg: LegId,
        caller: Side,
        callee: Side,
        caller_offer: Option<ReceivedOffer>,
    ) -> Self {
        Self {
            record,
            span,
            caller_leg: Some(caller_leg),
            callee_leg: None,
            leg_ids: vec![caller_leg],
            callee_call_id: None,
            caller,
            callee,
            caller_offer,
            callee_offer: None,
            ending: None,
            released: Vec::new(),
            reinvite: None,
            recorded: None,
        }
    }

    /// Whether the callee answered (the record holds when).
    pub(crate) fn answered(&self) -> bool {
        self.record.answered_at.is_some()
    }

    fn leg(&self, party: Party) -> Option<LegId> {
        match party {
            Party::Caller => self.caller_leg,
            Party::Callee => self.callee_leg,
        }
    }

    fn side_mut(&mut self, party: Party) -> &mut Side {
        match party {
            Party::Caller => &mut self.caller,
            Party::Callee => &mut self.callee,
        }
    }
}

/// The call status a final failure code stands for (the names Twilio reports).
pub(crate) fn status_for_code(code: u16) -> CallStatus {
    match code {
        486 | 600 => CallStatus::Busy,
        408 | 480 => CallStatus::NoAnswer,
        487 => CallStatus::Canceled,
        _ => CallStatus::Failed,
    }
}

/// The code relayed to the caller for a callee failure. Challenges are ours to answer, never
/// the caller's, and a 503 from one trunk must not make upstream believe we are down.
fn code_for_caller(code: u16) -> u16 {
    match code {
        401 | 407 => 403,
        503 => 502,
        c => c,
    }
}

impl CallCore {
    pub(super) fn on_progress(
        &mut self,
        now: Instant,
        key: CallKey,
        code: u16,
        body: Option<Body>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let (Some(caller_leg), None) = (call.caller_leg, &call.ending) else {
            return;
        };
        // With a delayed offer, SDP in an unreliable provisional cannot be an offer we relay.
        let body = body.filter(|_| call.caller_offer.is_some());
        let answer = match &body {
            Some(b) => match negotiate(call, Some(b)) {
                Ok(answer) => Some(answer),
                Err(code) => {
                    warn!(
                        code,
                        "unusable early-media SDP from the callee; relaying the ringing without it"
                    );
                    None
                }
            },
            None => None,
        };
        if answer.is_some() {
            self.media
                .configure(call.caller.endpoint, call.caller.endpoint_config(false));
            self.media
                .configure(call.callee.endpoint, call.callee.endpoint_config(false));
        }
        self.ua.respond(now, caller_leg, code, answer);
    }

    pub(super) fn on_answered(&mut self, now: Instant, key: CallKey, body: Option<Body>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(callee_leg) = call.callee_leg else {
            return;
        };
        let Some(caller_leg) = call.caller_leg.filter(|_| call.ending.is_none()) else {
            self.ua.ack(callee_leg, None);
            self.ua.hangup(now, callee_leg, 487);
            return;
        };
        if call.caller_offer.is_none() {
            return self.relay_delayed_offer(now, key, caller_leg, callee_leg, body);
        }
        self.ua.ack(callee_leg, None);
        match negotiate(call, body.as_ref()) {
            Ok(answer) => {
                let at = self.wall;
                call.record.answered_at = Some(at);
                self.media
                    .configure(call.caller.endpoint, call.caller.endpoint_config(true));
                self.media
                    .configure(call.callee.endpoint, call.callee.endpoint_config(true));
                self.ua.respond(now, caller_leg, 200, Some(answer));
                self.cdr.save(call.record.clone());
                info!(codec = ?call.caller.codec_name(), callee_codec = ?call.callee.codec_name(), "answered");
                self.record_if_routed(key);
            }
            Err(code) => {
                warn!(code, "callee answered with unusable SDP");
                self.ua.hangup(now, callee_leg, 487);
                self.ua.respond(now, caller_leg, 488, None);
                self.end_call(
                    now,
                    key,
                    CallStatus::Failed,
                    Some(488),
                    HangupBy::System,
                    Some("callee-sdp"),
                );
            }
        }
    }

    /// Delayed offer: the callee's 200 holds the offer. It goes to the caller in our 200; the
    /// caller's answer arrives in its ACK (see [`CallCore::on_caller_acked`]).
    fn relay_delayed_offer(
        &mut self,
        now: Instant,
        key: CallKey,
        caller_leg: LegId,
        callee_leg: LegId,
        body: Option<Body>,
    ) {
        let call = self.calls.get_mut(&key).expect("checked by the caller");
        let offer = body.as_ref().map(ReceivedOffer::parse);
        let relayed = match &offer {
            Some(Ok(o)) => relay_offer(&o.stream).ok(),
            _ => None,
        };
        let (Some(Ok(offer)), Some(relayed)) = (offer, relayed) else {
            warn!("callee answered a delayed-offer INVITE without a usable offer");
            self.ua.ack(callee_leg, None);
            self.ua.hangup(now, callee_leg, 487);
            self.ua.respond(now, caller_leg, 488, None);
            return self.end_call(
                now,
                key,
                CallStatus::Failed,
                Some(488),
                HangupBy::System,
                Some("callee-sdp"),
            );
        };
        call.callee.remote = Some(offer.stream.clone());
        let sdp = call.caller.local.describe(&relayed, &[], 0);
        call.callee_offer = Some(offer);
        call.record.answered_at = Some(self.wall);
        self.ua.respond(now, caller_leg, 200, Some(sdp));
        self.cdr.save(call.record.clone());
        info!("answered (delayed offer)");
    }

    /// The caller's ACK: with a delayed offer it carries the answer that completes the callee's
    /// exchange, sent in the callee's ACK.
    pub(super) fn on_caller_acked(&mut self, now: Instant, key: CallKey, body: Option<Body>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(offer) = call.callee_offer.take() else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(callee_leg) = call.callee_leg else {
            return;
        };
        let answers = parse_answer(body.as_ref())
            .map_err(|p| p.status())
            .and_then(|caller_answer| {
                let ours = relay_answer(&offer.stream, &caller_answer).map_err(|_| 488u16)?;
                Ok((caller_answer, ours))
            });
        match answers {
            Ok((caller_answer, ours)) => {
                call.caller.remote = Some(caller_answer.clone());
                call.caller.agree(&caller_answer);
                call.callee.agree(&ours);
                let sdp = call
                    .callee
                    .local
                    .describe(&ours, &offer.declined, offer.audio_index);
                self.ua.ack(callee_leg, Some(sdp));
                self.media
                    .configure(call.caller.endpoint, call.caller.endpoint_config(true));
                self.media
                    .configure(call.callee.endpoint, call.callee.endpoint_config(true));
                self.record_if_routed(key);
            }
            Err(code) => {
                warn!(code, "caller's ACK holds no usable answer");
                self.ua.ack(callee_leg, None);
                for leg in [call.caller_leg, call.callee_leg].into_iter().flatten() {
                    self.ua.hangup(now, leg, 488);
                }
                self.end_call(
                    now,
                    key,
                    CallStatus::Failed,
                    Some(488),
                    HangupBy::System,
                    Some("caller-sdp"),
                );
            }
        }
    }

    /// INFO (SIP DTMF relay and the like) goes on to the other leg with its body as it came;
    /// it was answered 200 where it arrived.
    pub(super) fn on_info(&mut self, now: Instant, key: CallKey, party: Party, body: Body) {
        if let Some(other) = self.calls.get(&key).and_then(|c| c.leg(party.other())) {
            self.ua.info(now, other, body);
        }
    }

    /// A route with `record` set: the answered call is recorded on the caller's side (the
    /// caller left, the callee right when dual), until it ends.
    fn record_if_routed(&mut self, key: CallKey) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(channels) = call.recorded else {
            return;
        };
        let (owner, endpoint) = (call.record.id.clone(), call.caller.endpoint);
        let options = RecordOptions {
            channels,
            format: RecordFormat::Pcm16,
            tracks: TapTracks::Both,
            trim_silence: false,
            sid: None,
            origin: super::api::RecordingOrigin::Route,
            stop: Default::default(),
        };
        if let Some(sid) =
            self.start_recording(key, &owner, RecordingSource::Endpoint(endpoint), options)
        {
            info!(recording = %sid, "recording the call");
        }
    }

    pub(super) fn on_failed(&mut self, now: Instant, key: CallKey, code: u16) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        call.callee_leg = None;
        if call.ending.is_some() {
            return;
        }
        let to_caller = code_for_caller(code);
        if let Some(leg) = call.caller_leg {
            self.ua.respond(now, leg, to_caller, None);
        }
        info!(code, to_caller, "callee failed");
        let by = if code == 408 {
            HangupBy::System
        } else {
            HangupBy::Callee
        };
        self.end_call(now, key, status_for_code(code), Some(to_caller), by, None);
    }

    /// The caller cancelled before an answer.
    pub(super) fn on_cancelled(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        call.caller_leg = None;
        if let Some(leg) = call.callee_leg {
            self.ua.hangup(now, leg, 487);
        }
        info!("caller cancelled");
        self.end_call(
            now,
            key,
            CallStatus::Canceled,
            Some(487),
            HangupBy::Caller,
            None,
        );
    }

    pub(super) fn on_bye(&mut self, now: Instant, key: CallKey, party: Party) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        match party {
            Party::Caller => call.caller_leg = None,
            Party::Callee => call.callee_leg = None,
        }
        let answered = call.answered();
        if let Some(other) = call.leg(party.other()) {
            self.ua.hangup(now, other, 487);
        }
        info!(?party, "hangup");
        let (status, code) = if answered {
            (CallStatus::Completed, 200)
        } else {
            (CallStatus::Canceled, 487)
        };
        self.end_call(now, key, status, Some(code), party.hangup_by(), None);
    }

    /// A leg ended on our side; when the caller never ACKed our 200 the call ends too.
    pub(super) fn on_terminated(
        &mut self,
        now: Instant,
        key: CallKey,
        party: Party,
        ack_timeout: bool,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        match party {
            Party::Caller => call.caller_leg = None,
            Party::Callee => call.callee_leg = None,
        }
        if ack_timeout {
            let _span = call.span.clone().entered();
            warn!(?party, "no ACK for our 200");
            if let Some(other) = call.leg(party.other()) {
                self.ua.hangup(now, other, 487);
            }
            self.end_call(
                now,
                key,
                CallStatus::Completed,
                Some(200),
                HangupBy::System,
                Some("ack-timeout"),
            );
        }
    }

    /// No RTP from a peer that should be sending: hang up both legs.
    pub(super) fn on_rtp_timeout(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        warn!("RTP timeout");
        for leg in [call.caller_leg, call.callee_leg].into_iter().flatten() {
            self.ua.hangup(now, leg, 408);
        }
        let status = if call.answered() {
            CallStatus::Completed
        } else {
            CallStatus::Failed
        };
        self.end_call(
            now,
            key,
            status,
            Some(if call.answered() { 200 } else { 408 }),
            HangupBy::System,
            Some("rtp-timeout"),
        );
    }

    /// Ends every call (shutdown).
    pub(super) fn hang_up_all(&mut self, now: Instant) {
        let keys: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| c.ending.is_none())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let call = &self.calls[&key];
            for leg in [call.caller_leg, call.callee_leg].into_iter().flatten() {
                self.ua.hangup(now, leg, 503);
            }
            let (status, code) = if call.answered() {
                (CallStatus::Completed, 200)
            } else {
                (CallStatus::Failed, 503)
            };
            self.end_call(
                now,
                key,
                status,
                Some(code),
                HangupBy::System,
                Some("shutdown"),
            );
        }
    }

    pub(super) fn on_reinvite(
        &mut self,
        now: Instant,
        key: CallKey,
        from: Party,
        body: Option<Body>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(from_leg) = call.leg(from) else {
            return;
        };
        let other_leg = call.leg(from.other());
        if call.ending.is_some()
            || !call.answered()
            || call.reinvite.is_some()
            || other_leg.is_none()
        {
            self.ua.respond_reinvite(now, from_leg, 491, None);
            return;
        }
        let Some(body) = body else {
            // An offerless re-INVITE (session refresh): our current description is the offer.
            let ours = call.side_mut(from).local.last();
            self.ua.respond_reinvite(now, from_leg, 200, ours);
            return;
        };
        let offer = match ReceivedOffer::parse(&body) {
            Ok(o) => o,
            Err(p) => return self.ua.respond_reinvite(now, from_leg, p.status(), None),
        };
        let Ok(relayed) = relay_offer(&offer.stream) else {
            return self.ua.respond_reinvite(now, from_leg, 488, None);
        };
        let to_other = call.side_mut(from.other()).local.describe(&relayed, &[], 0);
        if self
            .ua
            .reinvite(now, other_leg.expect("checked above"), to_other)
        {
            info!(?from, direction = %offer.stream.direction, "relaying re-INVITE");
            call.reinvite = Some(PendingReinvite { from, offer });
        } else {
            self.ua.respond_reinvite(now, from_leg, 491, None);
        }
    }

    pub(super) fn on_reinvite_result(
        &mut self,
        now: Instant,
        key: CallKey,
        answered_by: Party,
        code: u16,
        body: Option<Body>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _span = call.span.clone().entered();
        let Some(pending) = call
            .reinvite
            .take()
            .filter(|p| p.from == answered_by.other())
        else {
            return;
        };
        let Some(from_leg) = call.leg(pending.from) else {
            return;
        };
        if !(200..300).contains(&code) {
            self.ua.respond_reinvite(now, from_leg, code, None);
            return;
        }
        let answer = parse_answer(body.as_ref())
            .map_err(|p| p.status())
            .and_then(|other_answer| {
                let ours =
                    relay_answer(&pending.offer.stream, &other_answer).map_err(|_| 488u16)?;
                Ok((other_answer, ours))
            });
        match answer {
            Ok((other_answer, ours)) => {
                let other = call.side_mut(answered_by);
                other.remote = Some(other_answer.clone());
                other.agree(&other_answer);
                let side = call.side_mut(pending.from);
                side.remote = Some(pending.offer.stream.clone());
                side.agree(&ours);
                let sdp =
                    side.local
                        .describe(&ours, &pending.offer.declined, pending.offer.audio_index);
                self.media
                    .configure(call.caller.endpoint, call.caller.endpoint_config(true));
                self.media
                    .configure(call.callee.endpoint, call.callee.endpoint_config(true));
                self.ua.respond_reinvite(now, from_leg, 200, Some(sdp));
            }
            Err(code) => self.ua.respond_reinvite(now, from_leg, code, None),
        }
    }

    /// Records the outcome and releases the media; the CDR is completed when the engine has
    /// returned both endpoints' counters.
    pub(super) fn end_call(
        &mut self,
        now: Instant,
        key: CallKey,
        status: CallStatus,
        sip_code: Option<u16>,
        by: HangupBy,
        cause: Option<&'static str>,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.ending.is_some() {
            return;
        }
        if let Some(leg) = call.reinvite.take().and_then(|p| call.leg(p.from)) {
            self.ua.respond_reinvite(now, leg, 487, None);
        }
        call.ending = Some(Outcome {
            status,
            sip_code,
            hangup_by: by,
            cause,
            ended_at: self.wall,
        });
        self.media.release(call.caller.endpoint);
        self.media.release(call.callee.endpoint);
        metrics::gauge!("switchboard_calls_active").decrement(1.0);
    }

    pub(super) fn on_released(&mut self, key: CallKey, id: EndpointId, stats: EndpointStats) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.released.push((id, stats));
        if call.released.len() < 2 {
            return;
        }
        let call = self.calls.remove(&key).expect("present");
        self.forget(&call);
        let outcome = call.ending.clone().expect("released only after ending");
        let stats_of = |id| {
            call.released
                .iter()
                .find(|(e, _)| *e == id)
                .map(|(_, s)| *s)
                .unwrap_or_default()
        };
        let legs = vec![
            leg_record(
                "caller",
                Some(call.record.sip_call_id.clone()),
                &call.caller,
                stats_of(call.caller.endpoint),
            ),
            leg_record(
                "callee",
                call.callee_call_id.clone(),
                &call.callee,
                stats_of(call.callee.endpoint),
            ),
        ];
        let _span = call.span.entered();
        info!(status = %outcome.status, by = outcome.hangup_by.as_str(), "call ended");
        metrics::counter!("switchboard_calls_total", "status" => outcome.status.as_str())
            .increment(1);
        let mut record = call.record;
        record.status = outcome.status;
        record.sip_code = outcome.sip_code;
        record.hangup_by = Some(outcome.hangup_by);
        record.hangup_cause = outcome.cause.map(str::to_owned);
        record.ended_at = Some(outcome.ended_at);
        record.legs = legs;
        self.cdr.save(record);
    }
}

/// The caller's answer from the callee's answer to our relayed offer; records the agreed
/// codecs. The error is the SIP status for the failure.
fn negotiate(call: &mut Call, callee_body: Option<&Body>) -> Result<Body, u16> {
    let offer = call.caller_offer.as_ref().ok_or(488u16)?;
    let callee_answer = parse_answer(callee_body).map_err(|p| p.status())?;
    let caller_answer = relay_answer(&offer.stream, &callee_answer).map_err(|_| 488u16)?;
    call.callee.remote = Some(callee_answer.clone());
    call.callee.agree(&callee_answer);
    call.caller.agree(&caller_answer);
    Ok(call
        .caller
        .local
        .describe(&caller_answer, &offer.declined, offer.audio_index))
}

pub(super) fn leg_record(
    name: &str,
    sip_call_id: Option<String>,
    side: &Side,
    s: EndpointStats,
) -> LegRecord {
    LegRecord {
        leg: name.into(),
        sip_call_id,
        remote_rtp: side
            .remote
            .as_ref()
            .and_then(|r| r.addr)
            .map(|a| a.to_string()),
        codec: side.codec_name(),
        packets_in: s.packets_in,
        packets_out: s.packets_out,
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        lost: s.lost,
        out_of_order: s.out_of_order,
        dropped: s.dropped,
    }
}
