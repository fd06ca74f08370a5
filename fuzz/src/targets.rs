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
    let parsed = SipMessage::parse(data);
    // Whatever a message says (its Call-ID, Replaces, Request-URI), the front hands it to
    // one of the node's call-core shards.
    if let Ok(message) = &parsed {
        for count in [1, 2, 7] {
            assert!(switchboard_sip::shard::shard_of(message, count) < count);
        }
    }
    // A parsed message must encode and parse again: what the UA forwards is well-formed.
    match parsed {
        Ok(SipMessage::Request(r)) => {
            // A NOTIFY's sipfrag body, as the referrer reads it.
            if let Ok(body) = std::str::from_utf8(&r.body) {
                let _ = switchboard_sip::ua::sipfrag_status(body);
            }
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

/// A TwiML (or LaML, or TeXML) document: its verbs and its attributes' warnings.
pub fn twiml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = twiml::parse_document(text, false);
        let _ = twiml::parse_document(text, true);
    }
}

/// A Twilio REST form body through the shared parameter checks.
pub fn twilio_form(data: &[u8]) {
    let _ = check_form(&String::from_utf8_lossy(data));
}

/// A Telnyx IP or FQDN connection's body, or its address's: an address read is `host:port`
/// with a port in range, an FQDN's name a host name's characters.
pub fn telnyx_body(data: &[u8]) {
    let (names, _) = switchboard_control::providers::telnyx::ip_connections::check_body(data);
    for name in names {
        let (host, port) = name.rsplit_once(':').expect("host:port");
        let port: u32 = port.parse().expect("a port");
        assert!((1..=65535).contains(&port), "{name}");
        assert!(!host.is_empty() && host.len() <= 253, "{name}");
    }
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

/// An SRTP and an SRTCP packet from a peer keyed by SDES, through the unprotect paths of
/// every suite; a packet that passes comes out no longer than it went in. Then the same bytes
/// as an RTP packet to protect, which must unprotect to themselves on the other side.
pub fn srtp(data: &[u8]) {
    use switchboard_media::srtp::{Context, MasterKey, Suite};
    for suite in [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AeadAes128Gcm,
    ] {
        let material = vec![7u8; suite.material_len()];
        let key = MasterKey::new(suite, &material).expect("the suite's length");
        let (mut rx, mut tx, mut peer) =
            (Context::new(&key), Context::new(&key), Context::new(&key));
        let mut buf = data.to_vec();
        if let Ok(len) = rx.unprotect_rtp(&mut buf) {
            assert!(len <= data.len());
        }
        let mut buf = data.to_vec();
        if let Ok(len) = rx.unprotect_rtcp(&mut buf) {
            assert!(len <= data.len());
        }
        let mut buf = data.to_vec();
        buf.resize(data.len() + suite.rtp_overhead(), 0);
        if let Ok(len) = tx.protect_rtp(&mut buf, data.len()) {
            let plain = peer
                .unprotect_rtp(&mut buf[..len])
                .expect("our own packet opens");
            assert_eq!(&buf[..plain], data);
            // The same packet again gets no second index.
            let mut again = data.to_vec();
            again.resize(len, 0);
            assert!(tx.protect_rtp(&mut again, data.len()).is_err());
        }
    }
}

/// The value of an SDP `a=crypto` attribute (RFC 4568): a line taken is written back as one
/// that reads the same.
pub fn sdp_crypto(data: &[u8]) {
    use switchboard_sip::sdp::Crypto;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(crypto) = Crypto::parse(text) {
        let line = crypto.line();
        let value = line
            .trim_end()
            .strip_prefix("a=crypto:")
            .expect("its own prefix");
        assert!(Crypto::parse(value) == Some(crypto));
    }
}

/// A datagram on a WebRTC leg's socket (STUN connectivity checks, DTLS records) from an
/// address that has not proved itself and from one that has, and through the socket's router.
pub fn stun(data: &[u8]) {
    use switchboard_media::webrtc::ice::{Credentials, browser_check};
    use switchboard_media::webrtc::mux::Routes;
    use switchboard_media::webrtc::{Fingerprint, Identity, Transport, WebRtcConfig};
    static CONFIG: std::sync::OnceLock<WebRtcConfig> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| WebRtcConfig {
        identity: Identity::shared().expect("an identity"),
        ice: Credentials {
            local_ufrag: "fuzzufrg".into(),
            local_pwd: "fuzzpasswordfuzzpassword".into(),
            remote_ufrag: "browser1".into(),
        },
        remote_fingerprint: Fingerprint::parse(
            "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
        )
        .expect("a fingerprint"),
    });
    let local = "127.0.0.1:40000".parse().expect("address");
    let (stranger, browser) = (
        "127.0.0.2:5000".parse().expect("address"),
        "127.0.0.3:5000".parse().expect("address"),
    );
    let Ok(mut leg) = Transport::new(local, config.clone()) else {
        return;
    };
    let now = Instant::now();
    let mut out = Vec::new();
    let _ = leg.handle(now, stranger, data, &mut out);
    let check = browser_check(&config.ice, true);
    let _ = leg.handle(now, browser, &check, &mut out);
    let _ = leg.handle(now, browser, data, &mut out);
    let _ = leg.handle_timeout(now + Duration::from_secs(1), &mut out);
    let mut routes = Routes::default();
    routes.register(1u8, config.clone());
    let _ = routes.route(stranger, data);
}

/// A SIP WebSocket client's bytes after the handshake, framed and parsed as the listener does.
pub fn sip_websocket(data: &[u8]) {
    switchboard_sip::transport::read_sip_frames(data, |parsed| {
        if let Ok(SipMessage::Request(r)) = parsed {
            assert!(SipMessage::parse(&r.encode()).is_ok());
        }
    });
}

/// A Verto (Telnyx WebRTC SDK) message as the session reads it: the JSON-RPC envelope, the
/// call it names, the hang-up cause it gives.
pub fn verto_json(data: &[u8]) {
    use switchboard_control::providers::telnyx::verto::{RpcMessage, call_id_of, hangup_code};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(m) = RpcMessage::read(text) {
        assert!(call_id_of(&m.params).chars().count() <= 64);
        let code = hangup_code(&m.params);
        assert!(code == 486 || code == 603);
    }
}

/// A ConversationRelay application's frame as the session reads it, and its text as tokens cut
/// into clauses (whatever the cuts, every word comes out once, in order, in a non-empty clause)
/// and mapped back from the samples played.
pub fn relay_message(data: &[u8]) {
    use switchboard_control::services::relay::utterance::{Clauses, Rendered};
    use switchboard_control::services::relay::wire::{AppMessage, read};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match read(text) {
        Ok(AppMessage::Text { token, .. }) => assert!(token.chars().count() <= 4096),
        Ok(AppMessage::SendDigits { digits }) => {
            assert!(digits.len() <= 64 && digits.chars().all(|c| "0123456789*#wW".contains(c)))
        }
        Ok(AppMessage::End { handoff }) => {
            assert!(handoff.is_none_or(|h| h.chars().count() <= 16 * 1024))
        }
        _ => {}
    }
    let mut clauses = Clauses::default();
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = (1..=rest.len().min(7))
            .rev()
            .find(|&i| rest.is_char_boundary(i))
            .unwrap_or(rest.len());
        out.extend(clauses.push(&rest[..cut]));
        rest = &rest[cut..];
    }
    out.extend(clauses.finish());
    assert!(out.iter().all(|c| !c.trim().is_empty()));
    let said: Vec<&str> = text.split_whitespace().collect();
    let spoken: Vec<&str> = out.iter().flat_map(|c| c.split_whitespace()).collect();
    assert_eq!(said.concat(), spoken.concat());
    let mut rendered = Rendered::default();
    for (i, c) in out.iter().enumerate() {
        rendered.push(c.clone(), 100 * (i + 1));
    }
    let heard = rendered.heard(data.len() * 13);
    assert!(heard.len() <= text.len() + out.len());
}

/// A Twilio Voice SDK signalling frame as the session reads it: the envelope, the access token
/// a `listen` carries (verified against an account with one API key), and what an `invite`'s
/// parameters dial.
pub fn twilio_signal(data: &[u8]) {
    use switchboard_control::infra::accounts::Account;
    use switchboard_control::providers::twilio::access_token::verify_token;
    use switchboard_control::providers::twilio::signal::{Frame, dialled};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(frame) = Frame::read(text) else {
        return;
    };
    assert!(frame.callsid.chars().count() <= 64);
    let account = |sid: &str| {
        let a = Account {
            sid: "AC00000000000000000000000000000000".into(),
            auth_token: "token".into(),
            signing_key: None,
            project_id: None,
            api_keys: vec![("SK00000000000000000000000000000000".into(), "secret".into())],
            number_ranges: Vec::new(),
            caller_ids: Vec::new(),
            reach: Default::default(),
            telnyx_api_keys: Vec::new(),
            telnyx_seed: [7; 32],
            speech_providers: Default::default(),
        };
        (sid == a.sid).then_some(a)
    };
    if let Some(token) = frame.payload["token"].as_str()
        && let Ok(grant) = verify_token(account, token, 1_800_000_000)
    {
        assert!(grant.ttl <= 24 * 3600);
    }
    if let Some(params) = frame.payload["twilio"]["params"].as_str() {
        let (to, _) = dialled(&[], params, "AP00000000000000000000000000000000");
        assert!(!to.is_empty() && to.len() <= 64);
    }
}

/// What a visit's leg brings from another node: the sealed header of its INVITE (its seal
/// checked, then opened) and the body of an INFO on its dialog (a seat report).
pub fn visit(data: &[u8]) {
    use switchboard_control::call::visit::{SeatReport, Visit, key};
    if let Some(report) = SeatReport::from_body(data) {
        let again = SeatReport::from_body(&report.to_body());
        assert_eq!(again.as_ref(), Some(&report));
        let _ = report.event();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = key("fuzz").expect("a secret");
    if let Some(visit) = Visit::unseal(&key, text) {
        let _ = visit.fresh(0);
        let _ = visit.to.user();
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
    ("srtp", srtp),
    ("sdp_crypto", sdp_crypto),
    ("stun", stun),
    ("sip_websocket", sip_websocket),
    ("verto_json", verto_json),
    ("twilio_signal", twilio_signal),
    ("relay_message", relay_message),
    ("telnyx_body", telnyx_body),
    ("visit", visit),
];
