//! The fuzz targets' bodies: each takes arbitrary bytes the way the network hands them to
//! Switchboard and must neither panic nor hang. Shared by the coverage-guided targets
//! (`fuzz/fuzz_targets`, run with cargo-fuzz) and by `tests/e2e/fuzz_corpus.rs`, which replays
//! every stored corpus input as an ordinary test.

use std::time::{Duration, Instant};
use switchboard_control::markup::twiml;
use switchboard_control::providers::twilio::rest::check_form;
use switchboard_control::services::stream::wire::{Messages, Wire};
use switchboard_media::dtmf::rfc4733::{EventPayload, Rfc4733Receiver};
use switchboard_media::latch::{Latch, SourcePolicy};
use switchboard_media::rtp;
use switchboard_sip::message::SipMessage;
use switchboard_sip::message::wire::{StreamFrame, StreamFramer};
use switchboard_sip::sdp::Sdp;
use switchboard_sip::sdp::offer_answer::{relay_answer, relay_offer};

/// A SIP message as a UDP datagram, and the same bytes as a TCP stream cut at every
/// position the first byte chooses.
pub fn sip_message(data: &[u8]) {
    // A parsed message must encode and parse again: what the UA forwards is well-formed.
    match SipMessage::parse(data) {
        Ok(SipMessage::Request(r)) => {
            let again = SipMessage::parse(&r.encode());
            assert!(again.is_ok(), "{again:?}");
            let answer = SipMessage::parse(&r.response(486, Some("fuzz")).encode());
            assert!(answer.is_ok(), "{answer:?}");
        }
        Ok(SipMessage::Response(r)) => {
            let again = SipMessage::parse(&r.encode());
            assert!(again.is_ok(), "{again:?}");
        }
        Err(_) => {}
    }
    let cut = data.first().map_or(1, |&b| usize::from(b).max(1));
    let mut buf = Vec::new();
    let mut framer = StreamFramer::default();
    for piece in data.chunks(cut) {
        buf.extend_from_slice(piece);
        loop {
            match framer.next(&buf) {
                Ok(StreamFrame::Message(wire, used)) => {
                    let _ = SipMessage::from_wire(wire);
                    buf.drain(..used);
                }
                Ok(StreamFrame::KeepAlive { consumed, .. }) => {
                    buf.drain(..consumed);
                }
                Ok(StreamFrame::Incomplete) => break,
                Err(_) => return,
            }
        }
    }
}

/// An SDP offer, negotiated as the relay would, and answered by itself.
pub fn sdp(data: &[u8]) {
    let Ok(sdp) = Sdp::parse(data) else { return };
    let Ok(Some(stream)) = sdp.audio_stream() else {
        return;
    };
    if let Ok(offer) = relay_offer(&stream) {
        let _ = relay_answer(&offer, &stream);
    }
}

/// An RTP or RTCP packet through the header accessors, the RFC 4733 reader and the source
/// latch.
pub fn rtp_packet(data: &[u8]) {
    let mut packet = data.to_vec();
    let valid = rtp::is_rtp(&packet);
    let _ = rtp::is_rtcp(&packet);
    if let Some(range) = rtp::payload_range(&packet) {
        let (ts, pt) = (rtp::timestamp(&packet), rtp::payload_type(&packet));
        let _ = (
            rtp::sequence(&packet),
            rtp::ssrc(&packet),
            rtp::marker(&packet),
        );
        let payload = &packet[range.clone()];
        let _ = EventPayload::parse(payload);
        let mut receiver = Rfc4733Receiver::default();
        let _ = receiver.on_packet(ts, payload);
        let _ = receiver.on_packet(ts.wrapping_add(160), payload);
        let _ = receiver.flush();
        rtp::set_payload_type(&mut packet, pt ^ 1);
    }
    let now = Instant::now();
    let mut latch = Latch::new(SourcePolicy::LearnAny, Duration::from_secs(3));
    latch.set_expected(Some("127.0.0.2:4000".parse().expect("address")), now);
    let _ = latch.check("127.0.0.3:4002".parse().expect("address"), valid, now);
}

/// A TwiML (or LaML) document.
pub fn twiml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = twiml::parse(text);
    }
}

/// A Twilio REST form body through the shared parameter checks.
pub fn twilio_form(data: &[u8]) {
    let _ = check_form(&String::from_utf8_lossy(data));
}

/// An application's message on a media stream, in the Twilio and the Telnyx protocol (with
/// and without Telnyx's MP3 mode).
pub fn stream_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let twilio = Messages::new(
        Wire::Twilio {
            account_sid: "AC00000000000000000000000000000000".into(),
            call_sid: "CA00000000000000000000000000000000".into(),
            signalwire: false,
        },
        "MZ00000000000000000000000000000000".into(),
    );
    let _ = twilio.parse(text, false);
    let telnyx = Messages::new(
        Wire::Telnyx {
            call_control_id: "v3:fuzz".into(),
            call_session_id: "fuzz".into(),
            user_id: "fuzz".into(),
            from: "+15550001".into(),
            to: "+15550002".into(),
            client_state: None,
            auth_token: None,
        },
        "fuzz-stream".into(),
    );
    let _ = telnyx.parse(text, false);
    let _ = telnyx.parse(text, true);
}

/// A JSON body of the admin API (a number range grant).
pub fn admin_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Some(range) = value.get("range").and_then(|r| r.as_str()) {
        let _ = switchboard_control::infra::accounts::NumberRange::parse(range);
    }
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_message", sip_message),
    ("sdp", sdp),
    ("rtp_packet", rtp_packet),
    ("twiml", twiml),
    ("twilio_form", twilio_form),
    ("stream_message", stream_message),
    ("admin_json", admin_json),
];
