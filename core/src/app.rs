//! Calls an application controls (see [`super::model`]): how its leg's events become the
//! application's [`CallEvent`](super::CallEvent)s, and its answer. Our SDP terminates the
//! peer's on the call's own endpoint. The application answers, rejects, hangs up, bridges,
//! plays, gathers, records and taps through [`CallCommand`](super::CallCommand)s. Twilio's
//! model: every leg is a call with its own SID, and a dialed leg is a child bridged to its
//! parent. How such a call begins (offered to the application registered for its number, or
//! placed) is the core's (`lifecycle`, `requests`); the commands, gathers, recordings and
//! timers have their own modules.

use super::api::EventKind;
use super::context::CallContext;
use super::gather::*;
use super::model::{Call, Phase};
use super::route::status_for_code;
use super::session::{ReceivedOffer, our_answer, our_offer};
use super::status::{CallStatus, HangupBy};
use super::timers::CallTimer;
use super::visit;
use std::time::Instant;
use switchboard_media::MediaOp;
use switchboard_sip::ua::LegEvent;
use tracing::{info, warn};

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

/// How long a party's REFER waits for its application's answer before it is refused.
const REFER_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(4);

impl Call {
    /// Answers the call's own incoming leg (200 with our answer, or our offer when the
    /// caller made none), as its application commands.
    pub(super) fn answer(
        &mut self,
        cx: &mut CallContext,
        now: Instant,
        headers: &[(String, String)],
    ) {
        let Some(leg) = self.own().dialog else { return };
        let body = match &self.offer {
            Some(offer) => match self.legs[0].side.answer(offer, &our_answer(&offer.stream)) {
                Ok(body) => body,
                Err(p) => {
                    cx.ua.respond(now, leg, p.status(), None);
                    let status = CallStatus::Failed;
                    let cause = Some("caller-sdp");
                    let code = Some(p.status());
                    return cx.end_call(status, code, HangupBy::System, cause);
                }
            },
            // A delayed offer: we offer, the caller answers in its ACK.
            None => self.legs[0].side.offer(&our_offer()),
        };
        cx.ua.respond_with(now, leg, 200, Some(body), headers);
        self.own().configure(cx.media, true);
        self.on_app_answered(cx);
    }

    fn on_app_answered(&mut self, cx: &mut CallContext) {
        self.enter(Phase::Answered, cx.wall);
        let side = &self.own().side;
        cx.media.media(side.endpoint, MediaOp::DetectDtmf(true));
        info!(codec = ?side.codec_name(), "answered");
        let codec = side.agreed_codec();
        cx.records.save(self.record.clone());
        self.emit(cx, EventKind::Answered { codec });
    }

    /// What the call's own leg did, as its application hears of it.
    pub(super) fn on_app_leg_event(&mut self, cx: &mut CallContext, now: Instant, event: LegEvent) {
        let _span = self.span.clone().entered();
        let by_peer = if self.is_inbound() {
            HangupBy::Caller
        } else {
            HangupBy::Callee
        };
        match event {
            LegEvent::Progress { code, body } => {
                if self.ended() {
                    return;
                }
                if self.enter(Phase::Ringing, cx.wall) {
                    cx.records.save(self.record.clone());
                    self.emit(cx, EventKind::Ringing);
                }
                if code == 183 && self.own_mut().side.take_answer_body(body.as_ref()).is_ok() {
                    self.own().configure(cx.media, false);
                    self.emit(cx, EventKind::EarlyMedia);
                }
            }
            LegEvent::Answered { body } => {
                let Some(leg) = self.own().dialog else { return };
                cx.ua.ack(leg, None);
                if self.ended() {
                    return cx.ua.hangup(now, leg, 487);
                }
                match self.own_mut().side.take_answer_body(body.as_ref()) {
                    Ok(()) => {
                        self.own().configure(cx.media, true);
                        self.on_app_answered(cx);
                    }
                    Err(p) => {
                        warn!(code = p.status(), "answered with unusable SDP");
                        cx.ua.hangup(now, leg, 488);
                        cx.end_call(
                            CallStatus::Failed,
                            Some(488),
                            HangupBy::System,
                            Some("callee-sdp"),
                        );
                    }
                }
            }
            LegEvent::Failed { code } => {
                self.own_mut().dialog = None;
                let by = if code == 408 {
                    HangupBy::System
                } else {
                    HangupBy::Callee
                };
                info!(code, "call failed");
                cx.end_call(status_for_code(code), Some(code), by, None);
            }
            LegEvent::Acked { body } => {
                // The answer to the offer we made in our 200 (delayed offer).
                if self.offer.is_none()
                    && self.is_inbound()
                    && self.own_mut().side.take_answer_body(body.as_ref()).is_ok()
                {
                    self.own().configure(cx.media, true);
                }
            }
            LegEvent::Cancelled => {
                self.own_mut().dialog = None;
                cx.end_call(CallStatus::Canceled, Some(487), by_peer, None);
            }
            LegEvent::Bye { headers } => {
                self.own_mut().dialog = None;
                info!("hangup by the peer");
                let moved = self.is_visit()
                    && (headers.iter()).any(|(name, value)| {
                        name.eq_ignore_ascii_case(visit::END_HEADER) && value == visit::MOVED
                    });
                let cause = moved.then_some(visit::MOVED);
                cx.end_call(CallStatus::Completed, Some(200), by_peer, cause);
            }
            LegEvent::Terminated { ack_timeout } => {
                self.own_mut().dialog = None;
                if ack_timeout {
                    cx.end_call(
                        CallStatus::Completed,
                        Some(200),
                        HangupBy::System,
                        Some("ack-timeout"),
                    );
                }
            }
            LegEvent::ReInvite { body, .. } => {
                let Some(leg) = self.own().dialog else { return };
                let Some(body) = body else {
                    // A session refresh, or a browser back with a new peer connection.
                    let ours = self.own_mut().side.reoffer();
                    return cx.ua.respond_reinvite(now, leg, 200, ours);
                };
                let side = &mut self.own_mut().side;
                let answer = ReceivedOffer::parse(&body, side.peer_media())
                    .and_then(|offer| side.answer(&offer, &our_answer(&offer.stream)));
                match answer {
                    Ok(sdp) => {
                        self.own().configure(cx.media, true);
                        cx.ua.respond_reinvite(now, leg, 200, Some(sdp));
                    }
                    Err(p) => cx.ua.respond_reinvite(now, leg, p.status(), None),
                }
            }
            LegEvent::Info { body } => {
                if let Some(report) = body.as_ref().and_then(info_digit) {
                    self.on_digit(cx, now, report);
                } else if let Some(body) = body.filter(|_| self.is_visit())
                    && body.content_type.eq_ignore_ascii_case(visit::REPORT_TYPE)
                    && let Some(report) = visit::SeatReport::from_body(&body.data)
                {
                    // The room tells the visitor's seat alone: the visiting side hears it on
                    // its leg, and reports it to the visiting call.
                    self.emit(cx, report.event());
                }
            }
            LegEvent::AckedAnswer { body } => {
                if self.own_mut().side.take_reoffer_answer(&body) {
                    info!("a browser's new peer connection takes the call's media");
                    self.own().configure(cx.media, true);
                }
            }
            LegEvent::ReInviteResult { .. } => {}
            LegEvent::ReferAnswered { code } => {
                self.emit(cx, EventKind::ReferAnswered { sip_code: code });
            }
            LegEvent::ReferProgress { code, last } => {
                let progress = EventKind::ReferProgress {
                    sip_code: code,
                    last,
                };
                self.emit(cx, progress);
            }
            // Handled for every call before it comes here.
            LegEvent::SessionExpired | LegEvent::PrackTimeout => {}
            // An application's call moves where its application says (`<Dial referUrl>`): it
            // hears of the REFER and answers it, or the core refuses it (603) after a while.
            LegEvent::Refer { target } => {
                self.set_timer(cx, CallTimer::Refer, now + REFER_ANSWER_WAIT);
                self.emit(cx, EventKind::ReferRequested { target });
            }
        }
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
        let offer = ReceivedOffer::parse(&Body::sdp(sdp), Default::default()).unwrap();
        let names = offered_codecs(Some(&offer));
        assert_eq!(names.len(), MAX_OFFERED_CODECS);
        assert_eq!(names[..3], ["PCMU", "PCMA", "C99"]);
        assert!(names.iter().all(|n| n.len() <= 32 && !n.contains('<')));
        assert_eq!(offered_codecs(None), Vec::<String>::new());
    }
}
