use super::*;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
    m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\nm=video 6002 RTP/AVP 96\r\n";

#[test]
fn offer_problems_map_to_sip_codes() {
    assert_eq!(
        ReceivedOffer::parse(
            &Body {
                content_type: "text/plain".into(),
                data: "x".into()
            },
            policy(SrtpPolicy::Off)
        )
        .unwrap_err()
        .status(),
        415
    );
    assert_eq!(
        ReceivedOffer::parse(&Body::sdp("garbage"), policy(SrtpPolicy::Off))
            .unwrap_err()
            .status(),
        400
    );
    let g729 = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 18");
    assert_eq!(
        ReceivedOffer::parse(&Body::sdp(g729), policy(SrtpPolicy::Off))
            .unwrap_err()
            .status(),
        488
    );
    let ok = ReceivedOffer::parse(&Body::sdp(OFFER), policy(SrtpPolicy::Off)).unwrap();
    assert_eq!((ok.declined.len(), ok.audio_index), (1, 0));
}

#[test]
fn version_moves_only_on_change() {
    let mut local = LocalDescription::new(
        "192.0.2.1:20000".parse().unwrap(),
        "192.0.2.1:30000".parse().unwrap(),
    );
    let offer = ReceivedOffer::parse(&Body::sdp(OFFER), policy(SrtpPolicy::Off)).unwrap();
    let a = local.describe(&offer.stream, &offer.declined, offer.audio_index);
    let b = local.describe(&offer.stream, &offer.declined, offer.audio_index);
    assert_eq!(a, b);
    let mut held = offer.stream.clone();
    held.direction = switchboard_sip::sdp::Direction::SendOnly;
    let c = local.describe(&held, &offer.declined, offer.audio_index);
    let text = String::from_utf8(c.data.to_vec()).unwrap();
    assert!(text.contains(&format!(
        "o=switchboard {} 2 IN IP4 192.0.2.1",
        local.session_id
    )));
    assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101") && text.contains("a=sendonly"));
    assert!(text.contains("m=video 0 RTP/AVP 96"));
}

fn side(srtp: SrtpPolicy) -> Side {
    let endpoint = Endpoint {
        id: EndpointId::unallocated(1),
        rtp: "192.0.2.1:20000".parse().unwrap(),
        browser: "192.0.2.1:30000".parse().unwrap(),
    };
    let peer = Peer {
        transport: switchboard_sip::transport::Transport::Udp,
        remote: "192.0.2.7:5060".parse().unwrap(),
        local: "192.0.2.1:5060".parse().unwrap(),
        conn: None,
    };
    let media = PeerMedia {
        source: SourcePolicy::Strict,
        srtp,
        webrtc: false,
    };
    Side::new(endpoint, media, &peer)
}

/// A peer's media policy with this SRTP policy (no browser).
fn policy(srtp: SrtpPolicy) -> PeerMedia {
    PeerMedia {
        srtp,
        ..Default::default()
    }
}

fn text(body: &Body) -> String {
    String::from_utf8(body.data.to_vec()).unwrap()
}

/// The inline key of the line with `tag` in `sdp`.
fn key_of(sdp: &str, tag: u32) -> Vec<u8> {
    let sdp = Sdp::parse(sdp.as_bytes()).unwrap();
    let stream = sdp.audio_stream().unwrap().unwrap();
    stream
        .crypto
        .into_iter()
        .find(|c| c.tag == tag)
        .unwrap()
        .key
}

const SAVP: &str = "v=0\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/SAVP 0\r\n";

#[test]
fn a_required_side_offers_savp_and_takes_only_an_answer_keyed_to_its_offer() {
    let mut s = side(SrtpPolicy::Required);
    let offer = text(&s.offer(&our_offer()));
    assert!(
        offer.contains("m=audio 20000 RTP/SAVP 0 8 101\r\n"),
        "{offer}"
    );
    assert!(offer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
    assert!(offer.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"));
    // A re-offer keeps our keys.
    assert_eq!(text(&s.offer(&our_offer())), offer);

    let plain = Body::sdp(SAVP.replace("RTP/SAVP", "RTP/AVP"));
    assert_eq!(
        s.take_answer_body(Some(&plain)),
        Err(SdpProblem::NotAcceptable)
    );
    let theirs = MasterKey::generate(Suite::AesCm128HmacSha1_32);
    let line = Crypto {
        tag: 2,
        suite: "AES_CM_128_HMAC_SHA1_32",
        key: theirs.material().to_vec(),
    };
    let wrong_tag = Crypto {
        tag: 1,
        ..line.clone()
    };
    let answer = |c: &Crypto| Body::sdp(format!("{SAVP}{}", c.line()));
    assert_eq!(
        s.take_answer_body(Some(&answer(&wrong_tag))),
        Err(SdpProblem::NotAcceptable)
    );
    s.take_answer_body(Some(&answer(&line))).unwrap();
    let keys = s.endpoint_config(true).srtp.unwrap();
    assert_eq!(keys.inbound, theirs);
    assert_eq!(keys.outbound.material(), &key_of(&offer, 2)[..]);
}

#[test]
fn an_optional_side_answers_the_first_suite_offered_and_follows_a_rekey() {
    let mut s = side(SrtpPolicy::Optional);
    let gcm = MasterKey::generate(Suite::AeadAes128Gcm);
    let cm = MasterKey::generate(Suite::AesCm128HmacSha1_80);
    let lines = |gcm: &MasterKey| {
        format!(
            "{SAVP}a=crypto:5 AEAD_AES_128_GCM inline:{}\r\n\
             a=crypto:6 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
            base64_of(gcm.material()),
            base64_of(cm.material())
        )
    };
    let offer =
        ReceivedOffer::parse(&Body::sdp(lines(&gcm)), policy(SrtpPolicy::Optional)).unwrap();
    let answer = text(&s.answer(&offer, &our_answer(&offer.stream)).unwrap());
    assert!(answer.contains("m=audio 20000 RTP/SAVP 0"), "{answer}");
    assert!(answer.contains("a=crypto:5 AEAD_AES_128_GCM inline:"));
    assert!(!answer.contains("a=crypto:6"));
    let keys = s.endpoint_config(true).srtp.unwrap();
    assert_eq!(keys.inbound, gcm);
    assert_eq!(keys.outbound.material(), &key_of(&answer, 5)[..]);

    let rekeyed = MasterKey::generate(Suite::AeadAes128Gcm);
    let offer =
        ReceivedOffer::parse(&Body::sdp(lines(&rekeyed)), policy(SrtpPolicy::Optional)).unwrap();
    s.answer(&offer, &our_answer(&offer.stream)).unwrap();
    let after = s.endpoint_config(true).srtp.unwrap();
    assert_eq!((after.inbound, after.outbound), (rekeyed, keys.outbound));

    // A plain offer is answered plainly.
    let plain = ReceivedOffer::parse(&Body::sdp(OFFER), policy(SrtpPolicy::Optional)).unwrap();
    let answer = text(&s.answer(&plain, &our_answer(&plain.stream)).unwrap());
    assert!(answer.contains("RTP/AVP") && !answer.contains("crypto"));
    assert_eq!(s.endpoint_config(true).srtp, None);
}

#[test]
fn an_srtp_only_offer_to_a_plain_side_is_refused_and_keys_beside_plain_rtp_ignored() {
    let key = base64_of(MasterKey::generate(Suite::AesCm128HmacSha1_80).material());
    let savp = format!("{SAVP}a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n");
    let refused = ReceivedOffer::parse(&Body::sdp(savp.clone()), policy(SrtpPolicy::Off));
    assert_eq!(refused.unwrap_err().status(), 488);
    let best_effort = savp.replace("RTP/SAVP", "RTP/AVP");
    assert_eq!(
        ReceivedOffer::parse(&Body::sdp(OFFER), policy(SrtpPolicy::Required))
            .unwrap_err()
            .status(),
        488,
        "a plain offer to a side that requires SRTP"
    );
    let mut s = side(SrtpPolicy::Off);
    let offer =
        ReceivedOffer::parse(&Body::sdp(best_effort.clone()), policy(SrtpPolicy::Off)).unwrap();
    let answer = text(&s.answer(&offer, &our_answer(&offer.stream)).unwrap());
    assert!(
        answer.contains("RTP/AVP 0") && !answer.contains("crypto"),
        "{answer}"
    );
    assert_eq!(s.endpoint_config(true).srtp, None);
    // Required takes keys beside plain RTP (best effort) and answers with keys.
    let mut s = side(SrtpPolicy::Required);
    let offer =
        ReceivedOffer::parse(&Body::sdp(best_effort), policy(SrtpPolicy::Required)).unwrap();
    let answer = text(&s.answer(&offer, &our_answer(&offer.stream)).unwrap());
    assert!(
        answer.contains("RTP/AVP 0") && answer.contains("a=crypto:1"),
        "{answer}"
    );
    assert!(s.endpoint_config(true).srtp.is_some());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A browser's offer (Chromium's shape, trimmed): opus first, PCMU and PCMA after.
const BROWSER: &str = "v=0\r\no=- 46 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126\r\nc=IN IP4 0.0.0.0\r\n\
    a=ice-ufrag:Oyef\r\na=ice-pwd:0Cug/3FZZ2ANs0D7VgkhIsDS\r\n\
    a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r\n\
    a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
    a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:126 telephone-event/8000\r\n";

fn browser_side() -> Side {
    let mut s = side(SrtpPolicy::Off);
    s.webrtc_allowed = true;
    s
}

fn pcmu(offer: &ReceivedOffer) -> AudioStream {
    let mut ours = our_answer(&offer.stream);
    ours.codecs = vec![Codec::new(0, "PCMU", 8000)];
    ours
}

#[test]
fn a_browser_is_answered_ice_lite_as_the_dtls_server_with_the_codec_chosen() {
    let media = PeerMedia {
        webrtc: true,
        ..Default::default()
    };
    let offer = ReceivedOffer::parse(&Body::sdp(BROWSER), media).unwrap();
    let mut s = browser_side();
    let answer = text(&s.answer(&offer, &pcmu(&offer)).unwrap());
    for line in [
        "a=ice-lite\r\n",
        "m=audio 30000 UDP/TLS/RTP/SAVPF 0 126\r\n",
        "a=setup:passive\r\n",
        "a=mid:0\r\n",
        "a=rtcp-mux\r\n",
        "a=candidate:1 1 udp 2130706431 192.0.2.1 30000 typ host\r\n",
    ] {
        assert!(answer.contains(line), "{line:?} in\n{answer}");
    }
    let identity = Identity::shared().unwrap();
    assert!(answer.contains(&format!("a=fingerprint:{}\r\n", identity.fingerprint())));
    // The media engine gets the leg as a browser's: no SDP address, no SDES keys.
    let config = s.endpoint_config(true);
    let webrtc = config.webrtc.clone().unwrap();
    assert_eq!(webrtc.ice.remote_ufrag, "Oyef");
    assert!(answer.contains(&format!("a=ice-ufrag:{}\r\n", webrtc.ice.local_ufrag)));
    assert!(answer.contains(&format!("a=ice-pwd:{}\r\n", webrtc.ice.local_pwd)));
    assert_eq!((config.remote_rtp, config.srtp), (None, None));
    assert!(config.expect_rtp);
    assert_eq!(config.payload.audio.map(|(pt, _)| pt), Some(0));
    // A re-offer keeps our credentials; an ICE restart (a new ufrag) gets new ones.
    s.answer(&offer, &pcmu(&offer)).unwrap();
    assert_eq!(s.endpoint_config(true).webrtc.unwrap().ice, webrtc.ice);
    let restarted = BROWSER.replace("ice-ufrag:Oyef", "ice-ufrag:Zq9x");
    let offer = ReceivedOffer::parse(&Body::sdp(restarted), media).unwrap();
    s.answer(&offer, &pcmu(&offer)).unwrap();
    let ice = s.endpoint_config(true).webrtc.unwrap().ice;
    assert_eq!(ice.remote_ufrag, "Zq9x");
    assert_ne!(ice.local_pwd, webrtc.ice.local_pwd);
}

#[test]
fn a_browser_offer_from_a_trunk_or_wanting_to_be_the_dtls_server_is_refused() {
    // A trunk may not be a browser: the offer has no stream it may take.
    let trunk = policy(SrtpPolicy::Optional);
    assert_eq!(
        ReceivedOffer::parse(&Body::sdp(BROWSER), trunk).unwrap_err(),
        SdpProblem::NotAcceptable
    );
    let media = PeerMedia {
        webrtc: true,
        ..Default::default()
    };
    let passive = BROWSER.replace("setup:actpass", "setup:passive");
    let offer = ReceivedOffer::parse(&Body::sdp(passive), media).unwrap();
    let mut s = browser_side();
    assert_eq!(
        s.answer(&offer, &pcmu(&offer)).unwrap_err(),
        SdpProblem::NotAcceptable
    );
    let forged = BROWSER.replace("sha-256 49:66", "sha-256 49");
    let offer = ReceivedOffer::parse(&Body::sdp(forged), media).unwrap();
    assert_eq!(
        s.answer(&offer, &pcmu(&offer)).unwrap_err(),
        SdpProblem::NotAcceptable
    );
    // A user's plain offer is still answered plain.
    let offer = ReceivedOffer::parse(&Body::sdp(OFFER), media).unwrap();
    let plain = text(&s.answer(&offer, &our_answer(&offer.stream)).unwrap());
    assert!(
        plain.contains("RTP/AVP") && !plain.contains("ice-"),
        "{plain}"
    );
    assert_eq!(s.endpoint_config(true).webrtc, None);
}

fn user_side(transport: switchboard_sip::transport::Transport) -> Side {
    let endpoint = Endpoint {
        id: EndpointId::unallocated(1),
        rtp: "192.0.2.1:20000".parse().unwrap(),
        browser: "192.0.2.1:30000".parse().unwrap(),
    };
    let peer = Peer {
        transport,
        remote: "192.0.2.7:5060".parse().unwrap(),
        local: "192.0.2.1:5081".parse().unwrap(),
        conn: None,
    };
    let media = PeerMedia {
        webrtc: true,
        ..Default::default()
    };
    Side::new(endpoint, media, &peer)
}

#[test]
fn a_user_on_a_websocket_is_offered_webrtc_and_its_answer_keys_the_leg() {
    use switchboard_sip::transport::Transport;
    let mut s = user_side(Transport::Wss);
    let offer = text(&s.offer(&our_offer()));
    for line in [
        "a=ice-lite\r\n",
        "m=audio 30000 UDP/TLS/RTP/SAVPF 0 8 101\r\n",
        "a=setup:actpass\r\n",
        "a=rtcp-mux\r\n",
        "a=mid:0\r\n",
    ] {
        assert!(offer.contains(line), "{line:?} in\n{offer}");
    }
    // A re-offer keeps the credentials: no ICE restart.
    assert_eq!(text(&s.offer(&our_offer())), offer);
    // The browser answers as the DTLS client with its fingerprint.
    let answer = BROWSER
        .replace("setup:actpass", "setup:active")
        .replace("111 0 8 126", "0");
    let mut copy = user_side(Transport::Wss);
    copy.offer(&our_offer());
    let passive = BROWSER.replace("setup:actpass", "setup:passive");
    assert_eq!(
        copy.take_answer_body(Some(&Body::sdp(passive))),
        Err(SdpProblem::NotAcceptable)
    );
    assert_eq!(
        copy.take_answer_body(Some(&Body::sdp(OFFER))),
        Err(SdpProblem::NotAcceptable),
        "a plain answer to a WebRTC offer"
    );
    s.take_answer_body(Some(&Body::sdp(answer))).unwrap();
    let config = s.endpoint_config(true);
    let webrtc = config.webrtc.unwrap();
    assert_eq!(webrtc.ice.remote_ufrag, "Oyef");
    assert!(offer.contains(&format!("a=ice-ufrag:{}\r\n", webrtc.ice.local_ufrag)));
    assert_eq!(config.payload.audio.map(|(pt, _)| pt), Some(0));
    // A user on UDP is a phone: offered plain RTP.
    let mut phone = user_side(Transport::Udp);
    let plain = text(&phone.offer(&our_offer()));
    assert!(
        plain.contains("m=audio 20000 RTP/AVP") && !plain.contains("ice"),
        "{plain}"
    );
}

/// A browser back with a new peer connection (Telnyx's `attach`) sends an offerless
/// re-INVITE: it is offered the stream in force as the DTLS server's choice to make
/// (`actpass`) with our credentials and certificate kept, and its answer — new ICE
/// credentials, a new certificate — is the leg's from then on (a new DTLS association). A
/// phone's offerless re-INVITE (a session refresh) gets the last description unchanged.
#[test]
fn a_browser_back_with_a_new_peer_connection_is_offered_the_stream_anew() {
    use switchboard_sip::transport::Transport;
    let media = PeerMedia {
        webrtc: true,
        ..Default::default()
    };
    let mut s = user_side(Transport::Wss);
    let offer = ReceivedOffer::parse(&Body::sdp(BROWSER), media).unwrap();
    s.answer(&offer, &pcmu(&offer)).unwrap();
    let before = s.endpoint_config(true).webrtc.unwrap();
    let again = text(&s.reoffer().unwrap());
    for line in [
        "m=audio 30000 UDP/TLS/RTP/SAVPF 0 126\r\n",
        "a=setup:actpass\r\n",
        "a=ice-lite\r\n",
        "a=rtcp-mux\r\n",
    ] {
        assert!(again.contains(line), "{line:?} in\n{again}");
    }
    assert!(again.contains(&format!("a=ice-ufrag:{}\r\n", before.ice.local_ufrag)));
    assert!(again.contains(&format!("a=ice-pwd:{}\r\n", before.ice.local_pwd)));
    let answer = BROWSER
        .replace("setup:actpass", "setup:active")
        .replace("ice-ufrag:Oyef", "ice-ufrag:Nw1x")
        .replace("sha-256 49:66", "sha-256 4A:66");
    assert!(s.take_reoffer_answer(&Body::sdp(answer.clone())));
    let after = s.endpoint_config(true).webrtc.unwrap();
    assert_eq!(after.ice.remote_ufrag, "Nw1x");
    assert_eq!(after.ice.local_pwd, before.ice.local_pwd);
    assert_ne!(after.remote_fingerprint, before.remote_fingerprint);
    assert_ne!(after, before, "a new DTLS association for the engine");
    // An answer nobody asked for is not taken.
    assert!(!s.take_reoffer_answer(&Body::sdp(answer)));

    let mut phone = user_side(Transport::Udp);
    let offer = ReceivedOffer::parse(&Body::sdp(OFFER), media).unwrap();
    let last = phone.answer(&offer, &our_answer(&offer.stream)).unwrap();
    assert_eq!(phone.reoffer(), Some(last));
}
