//! The commands an application gives a call ([`CallCommand`]), each checked against the
//! call's state and carried out on its leg, its media or the core's timers.

use super::api::{CallCommand, CallError, EventKind, Rejection};
use super::context::{CallContext, CoreAsk};
use super::model::Call;
use super::status::{CallStatus, HangupBy};
use super::timers::*;
use std::time::Instant;
use switchboard_media::MediaOp;
use switchboard_media::dtmf::Digit;

/// Parses a DTMF string: digits, and `w` for a half-second pause.
pub(super) fn parse_digits(s: &str) -> Result<Vec<Option<Digit>>, CallError> {
    s.chars()
        .map(|c| match c {
            'w' | 'W' => Ok(None),
            c => Digit::new(c)
                .map(Some)
                .ok_or_else(|| CallError::BadArgument(format!("{c:?} is not a DTMF digit"))),
        })
        .collect()
}

/// The longest `Refer-To` URI an application may give.
const MAX_REFER_TARGET: usize = 1024;

/// Whether `target` may go in a `Refer-To` as it is: a `sip:`/`sips:` URI of printable
/// characters without the brackets and quotes that would end the header's name-addr.
fn refer_target(target: &str) -> bool {
    let lower = target.get(..5).map(str::to_ascii_lowercase);
    let scheme = lower
        .as_deref()
        .is_some_and(|s| s.starts_with("sip:") || s == "sips:");
    scheme
        && target.len() <= MAX_REFER_TARGET
        && target
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"'))
}

impl CallCommand {
    /// Whether a call a route connects may take it: what works on its caller's media and
    /// what ends it, not what would answer it, move it or take it from the route.
    fn fits_a_route(&self) -> bool {
        !matches!(
            self,
            CallCommand::Answer
                | CallCommand::AnswerWith(_)
                | CallCommand::Reject(_)
                | CallCommand::ExpectCommand(_)
                | CallCommand::Bridge(_)
                | CallCommand::Unbridge
                | CallCommand::Supervise { .. }
                | CallCommand::SupervisorRole(_)
                | CallCommand::Gather(_)
                | CallCommand::GatherStop
                | CallCommand::ConferenceJoin(_)
                | CallCommand::ConferenceLeave
                | CallCommand::Hold(_)
                | CallCommand::Unhold
                | CallCommand::ConferenceAnnounce(_)
                | CallCommand::ConferenceStopAnnouncements(_)
                | CallCommand::ConferenceAnnouncementFailed(_)
                | CallCommand::ConferenceRecord(_)
                | CallCommand::ConferenceRecording(_)
                | CallCommand::ConferenceCoach(_)
                | CallCommand::Refer(_)
                | CallCommand::AnswerRefer(_)
                | CallCommand::NotifyRefer(_)
                | CallCommand::SendInfo { .. }
        )
    }
}

impl CallCommand {
    /// Whether it acts on the call's seat in a conference (and so may name a visiting call).
    pub fn is_a_seats(&self) -> bool {
        matches!(
            self,
            CallCommand::ConferenceLeave
                | CallCommand::Hold(_)
                | CallCommand::Unhold
                | CallCommand::ConferenceAnnounce(_)
                | CallCommand::ConferenceStopAnnouncements(_)
                | CallCommand::ConferenceAnnouncementFailed(_)
                | CallCommand::ConferenceRecord(_)
                | CallCommand::ConferenceRecording(_)
                | CallCommand::ConferenceCoach(_)
                | CallCommand::Mute(_)
        )
    }
}

impl Call {
    /// A command on the call: what concerns the call alone is carried out here; a command
    /// that reaches other calls, conferences or the account (answer, bridge, conference,
    /// recording) is handed back for the core.
    pub(super) fn handle_command(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        command: CallCommand,
    ) -> Result<Option<CallCommand>, CallError> {
        let status = self.record.status;
        let invalid = || Err(CallError::InvalidState { status });
        if let CallCommand::Report(kind) = command {
            // Ended or not: an ended call's report follows its hangup.
            self.emit(cx, kind);
            return Ok(None);
        }
        if self.ended() {
            return invalid();
        }
        if self.routed() && !command.fits_a_route() {
            return Err(CallError::Routed);
        }
        // Any command is the one an `ExpectCommand` waits for.
        if !matches!(command, CallCommand::ExpectCommand(_)) {
            self.timers.stop(CallTimer::Command);
        }
        let endpoint = self.own().side.endpoint;
        match command {
            CallCommand::LimitDuration(limit) => {
                // A limit past what the clock can hold is no limit.
                match now.checked_add(limit) {
                    Some(at) => self.set_timer(cx, CallTimer::TimeLimit, at),
                    None => _ = self.timers.stop(CallTimer::TimeLimit),
                }
            }
            CallCommand::SetAlarm { id, after } => {
                // An alarm past what the clock can hold never rings.
                self.timers.stop(CallTimer::Alarm);
                self.alarm = None;
                if let Some(at) = now.checked_add(after) {
                    self.alarm = Some(id);
                    self.set_timer(cx, CallTimer::Alarm, at);
                }
            }
            CallCommand::ClearAlarm => {
                self.alarm = None;
                self.timers.stop(CallTimer::Alarm);
            }
            CallCommand::ExpectCommand(wait) => {
                if !self.is_inbound() || self.answered() {
                    return invalid();
                }
                match wait.and_then(|w| now.checked_add(w)) {
                    Some(at) => self.set_timer(cx, CallTimer::Command, at),
                    None => _ = self.timers.stop(CallTimer::Command),
                }
            }
            CallCommand::Play {
                clip,
                loops,
                barge_in,
            } => {
                self.play(cx, clip, loops, barge_in);
            }
            CallCommand::StopPlayback => cx.media.media(endpoint, MediaOp::StopPlayback),
            CallCommand::SendDigits(digits) => {
                let digits = parse_digits(&digits)?;
                cx.media.media(
                    endpoint,
                    MediaOp::SendDigits {
                        digits,
                        duration_ms: 100,
                    },
                );
            }
            CallCommand::GatherStop => {
                self.end_gather(cx, "cancelled");
            }
            CallCommand::Gather(spec) => {
                if spec.num_digits == Some(0) {
                    return Err(CallError::BadArgument(
                        "num_digits must be at least 1".into(),
                    ));
                }
                self.start_gather(cx, now, spec);
            }
            CallCommand::RecordStop => {
                self.recording = None;
                cx.media.media(endpoint, MediaOp::RecordStop)
            }
            CallCommand::TapStart { tap, tracks, tx } => {
                cx.media
                    .media(endpoint, MediaOp::TapStart { tap, tx, tracks });
                self.emit(cx, EventKind::TapStarted { tap: tap.0 });
            }
            CallCommand::TapStop(tap) => cx.media.media(endpoint, MediaOp::TapStop(tap)),
            CallCommand::Inject {
                frames,
                mark,
                limit,
            } => cx.media.media(
                endpoint,
                MediaOp::Inject {
                    frames,
                    mark,
                    limit,
                },
            ),
            CallCommand::ClearInjected => cx.media.media(endpoint, MediaOp::ClearInjected),
            CallCommand::Suppress { inbound, outbound } => cx
                .media
                .media(endpoint, MediaOp::Suppress { inbound, outbound }),
            CallCommand::SilenceWhenIdle(on) => {
                cx.media.media(endpoint, MediaOp::SilenceWhenIdle(on));
            }
            CallCommand::SendInfo { content_type, body } => {
                let body = switchboard_sip::ua::Body {
                    content_type,
                    data: body,
                };
                let sent = (self.own().dialog).is_some_and(|leg| cx.ua.info(now, leg, body));
                if !sent {
                    return invalid();
                }
            }
            CallCommand::AnswerRefer(code) => {
                let leg = self.own().dialog;
                if !(200..700).contains(&code) {
                    return Err(CallError::BadArgument(format!(
                        "{code} cannot answer a REFER"
                    )));
                }
                if !self.timers.stop(CallTimer::Refer) {
                    return Err(CallError::BadArgument(
                        "no REFER waits for an answer".into(),
                    ));
                }
                if let Some(leg) = leg {
                    cx.ua.answer_refer(now, leg, code);
                }
            }
            CallCommand::NotifyRefer(code) => {
                let sent = (self.own().dialog).is_some_and(|leg| {
                    (100..700).contains(&code) && cx.ua.notify_refer(now, leg, code)
                });
                if !sent {
                    return invalid();
                }
            }
            CallCommand::Refer(target) => {
                let Some(leg) = self.own().dialog.filter(|_| self.answered()) else {
                    return invalid();
                };
                if !refer_target(&target) {
                    return Err(CallError::BadArgument(format!(
                        "{target:?} is not a SIP URI to refer to"
                    )));
                }
                if !cx.ua.refer(now, leg, &target) {
                    return Err(CallError::BadArgument(
                        "a REFER of the call is still in progress".into(),
                    ));
                }
            }
            CallCommand::Answer | CallCommand::AnswerWith(_) => {
                if !self.is_inbound() || self.answered() {
                    return invalid();
                }
                let headers = match command {
                    CallCommand::AnswerWith(headers) => headers,
                    _ => Vec::new(),
                };
                self.answer(cx, now, &headers);
            }
            CallCommand::Reject(why) => {
                if !self.is_inbound() || self.answered() {
                    return invalid();
                }
                let (code, status) = match why {
                    Rejection::Busy => (486, CallStatus::Busy),
                    Rejection::Rejected => (603, CallStatus::NoAnswer),
                    Rejection::NotFound => (404, CallStatus::Failed),
                    Rejection::Unavailable => (480, CallStatus::NoAnswer),
                };
                if let Some(leg) = self.own().dialog {
                    cx.ua.respond(now, leg, code, None);
                }
                cx.end_call(status, Some(code), HangupBy::System, Some("rejected"));
            }
            CallCommand::Hangup | CallCommand::HangupWith(_) => {
                let headers = match command {
                    CallCommand::HangupWith(headers) => headers,
                    _ => Vec::new(),
                };
                cx.asks.push(CoreAsk::HangUp {
                    code: 487,
                    cause: "api",
                    headers,
                });
            }
            command => return Ok(Some(command)),
        }
        Ok(None)
    }
}
