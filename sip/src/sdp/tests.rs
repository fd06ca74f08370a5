use super::*;

const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
    m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
    a=fmtp:101 0-15\r\na=ptime:20\r\nm=video 6002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

#[test]
fn reads_audio_stream() {
    let sdp = Sdp::parse(OFFER.as_bytes()).unwrap();
    let a = sdp.audio_stream().unwrap().unwrap();
    assert_eq!(a.addr, Some("10.0.0.2:6000".parse().unwrap()));
    assert_eq!(a.rtcp, Some("10.0.0.2:6001".parse().unwrap()));
    let names: Vec<_> = a.codecs.iter().map(|c| (c.pt, c.name.as_str())).collect();
    assert_eq!(names, [(8, "PCMA"), (0, "PCMU")]);
    assert_eq!(a.telephone_event, Some(101));
    assert_eq!(a.ptime, Some(20));
    assert_eq!(a.direction, Direction::SendRecv);
}

#[test]
fn hold_forms() {
    let sendonly = OFFER.replace("a=ptime:20\r\n", "a=ptime:20\r\na=sendonly\r\n");
    let a = Sdp::parse(sendonly.as_bytes())
        .unwrap()
        .audio_stream()
        .unwrap()
        .unwrap();
    assert_eq!(a.direction, Direction::SendOnly);
    let zero = OFFER.replace("c=IN IP4 10.0.0.2", "c=IN IP4 0.0.0.0");
    let a = Sdp::parse(zero.as_bytes())
        .unwrap()
        .audio_stream()
        .unwrap()
        .unwrap();
    assert_eq!(a.addr, None);
}

/// An SRTP stream keyed in the SDP (RTP/SAVP with a usable a=crypto) is taken, with its
/// key; one we cannot key (an MKI, DTLS-SRTP) is passed over like any other stream.
#[test]
fn srtp_streams_are_taken_only_when_keyed_in_a_way_we_speak() {
    let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    let savp = format!(
        "m=audio 7000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:32\r\n"
    );
    let dtls = "m=audio 7004 UDP/TLS/RTP/SAVPF 0\r\na=fingerprint:sha-256 AB\r\n";
    let alone = format!("v=0\r\nc=IN IP4 192.0.2.1\r\n{savp}{dtls}");
    let sdp = Sdp::parse(alone.as_bytes()).unwrap();
    assert_eq!(sdp.audio(), None, "MKI keys and DTLS-SRTP are not ours");
    assert_eq!(sdp.audio_stream(), Ok(None));
    let both = format!("{alone}m=audio 7002 RTP/AVP 0\r\n");
    let sdp = Sdp::parse(both.as_bytes()).unwrap();
    let (index, media) = sdp.audio().unwrap();
    assert_eq!((index, media.port), (2, 7002));

    let keyed = alone.replace("|2^20|1:32", "|2^31");
    let sdp = Sdp::parse(format!("{keyed}m=audio 7002 RTP/AVP 0\r\n").as_bytes()).unwrap();
    let stream = sdp.audio_stream().unwrap().unwrap();
    assert!(stream.savp);
    assert_eq!(stream.crypto.len(), 1);
    assert_eq!(stream.crypto[0].suite, "AES_CM_128_HMAC_SHA1_80");
    let (index, plain) = sdp.audio_where(|s| !s.savp).unwrap().unwrap();
    assert_eq!((index, plain.savp, plain.crypto.len()), (2, false, 0));

    let ours = SdpWriter {
        session_id: 1,
        version: 1,
        rtp: "192.0.2.9:4000".parse().unwrap(),
        stream: &stream,
    }
    .write(&[], 0);
    assert!(ours.contains("m=audio 4000 RTP/SAVP 0\r\n"), "{ours}");
    assert!(ours.contains(&format!(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
    )));
}

#[test]
fn broken_sdp_is_an_error() {
    assert_eq!(Sdp::parse(b"hello"), Err(SdpError::NoVersion));
    assert!(Sdp::parse(b"v=0\r\nm=audio xx RTP/AVP 0\r\n").is_err());
    assert!(Sdp::parse(b"v=0\r\nm=audio 5000 RTP/AVP\r\n").is_err());
    assert!(Sdp::parse(b"v=0\r\ngarbage\r\n").is_err());
    let no_c = Sdp::parse(b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n").unwrap();
    assert_eq!(no_c.audio_stream(), Err(SdpError::NoConnection));
    let bad_pt = Sdp::parse(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP x\r\n").unwrap();
    assert!(bad_pt.audio_stream().is_err());
}

#[test]
fn writes_a_parseable_answer_keeping_m_line_order() {
    let offer = Sdp::parse(OFFER.as_bytes()).unwrap();
    let mut stream = offer.audio_stream().unwrap().unwrap();
    stream.codecs.truncate(1);
    let (idx, _) = offer.audio().unwrap();
    let declined: Vec<&Media> = offer
        .media
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != idx)
        .map(|(_, m)| m)
        .collect();
    let text = SdpWriter {
        session_id: 7,
        version: 1,
        rtp: "192.0.2.1:20000".parse().unwrap(),
        stream: &stream,
    }
    .write(&declined, idx);
    assert!(text.contains("m=audio 20000 RTP/AVP 8 101\r\n"));
    assert!(text.ends_with("m=video 0 RTP/AVP 96\r\n"));
    let back = Sdp::parse(text.as_bytes())
        .unwrap()
        .audio_stream()
        .unwrap()
        .unwrap();
    assert_eq!(back.addr, Some("192.0.2.1:20000".parse().unwrap()));
    assert_eq!(back.rtcp, Some("192.0.2.1:20001".parse().unwrap()));
    assert_eq!(back.telephone_event, Some(101));
    assert_eq!(back.codecs[0].name, "PCMA");
}

/// Chromium's offer for one audio track, as its RTCPeerConnection writes it.
const BROWSER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS 3bd4a6e5\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n\
    a=rtcp:9 IN IP4 0.0.0.0\r\n\
    a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0\r\n\
    a=ice-ufrag:Oyef\r\na=ice-pwd:0Cug/3FZZ2ANs0D7VgkhIsDS\r\na=ice-options:trickle\r\n\
    a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r\n\
    a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
    a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
    a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
    a=rtpmap:126 telephone-event/8000\r\na=ssrc:1001 cname:x\r\n";

#[test]
fn a_browsers_offer_gives_its_ice_and_dtls_parameters() {
    let sdp = Sdp::parse(BROWSER.as_bytes()).unwrap();
    let a = sdp.audio_stream().unwrap().unwrap();
    let w = a.webrtc.clone().unwrap();
    assert_eq!(
        (w.ufrag.as_str(), w.pwd.as_str()),
        ("Oyef", "0Cug/3FZZ2ANs0D7VgkhIsDS")
    );
    assert!(w.fingerprint.starts_with("sha-256 49:66:12"));
    assert_eq!(
        (w.setup, w.mid.as_deref(), w.lite),
        (Setup::ActPass, Some("0"), false)
    );
    assert_eq!(a.addr, None, "0.0.0.0: the checks tell where it is");
    assert!(!a.savp && a.crypto.is_empty());
    let names: Vec<_> = a.codecs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names[..], ["opus", "red", "G722", "PCMU", "PCMA", "CN"]);
    assert_eq!(a.telephone_event, Some(126), "the 8 kHz one");
    // Without rtcp-mux, or without a fingerprint, it is no stream we can take.
    for missing in ["a=rtcp-mux\r\n", "a=fingerprint:"] {
        let broken = BROWSER.replace(missing, "a=x-removed:");
        let sdp = Sdp::parse(broken.as_bytes()).unwrap();
        assert_eq!(sdp.audio_stream().unwrap(), None, "{missing}");
    }
    // Credentials at the session level count too.
    let session = BROWSER
        .replace("a=ice-ufrag:Oyef\r\n", "")
        .replace("t=0 0\r\n", "t=0 0\r\na=ice-ufrag:Oyef\r\n");
    let sdp = Sdp::parse(session.as_bytes()).unwrap();
    assert_eq!(
        sdp.audio_stream().unwrap().unwrap().webrtc.unwrap().ufrag,
        "Oyef"
    );
}

#[test]
fn our_answer_to_a_browser_is_ice_lite_with_one_host_candidate_and_rtcp_mux() {
    let sdp = Sdp::parse(BROWSER.as_bytes()).unwrap();
    let offer = sdp.audio_stream().unwrap().unwrap();
    let mut ours = offer.clone();
    ours.codecs.retain(|c| c.is("PCMU"));
    ours.webrtc = Some(IceDtls {
        ufrag: "sbuf".into(),
        pwd: "0123456789abcdef01234567".into(),
        fingerprint: "sha-256 AA:BB".into(),
        setup: Setup::Passive,
        mid: Some("0".into()),
        lite: true,
    });
    let text = SdpWriter {
        session_id: 1,
        version: 1,
        rtp: "127.0.0.1:20000".parse().unwrap(),
        stream: &ours,
    }
    .write(&[], 0);
    for line in [
        "a=ice-lite\r\n",
        "a=group:BUNDLE 0\r\n",
        "m=audio 20000 UDP/TLS/RTP/SAVPF 0 126\r\n",
        "a=mid:0\r\n",
        "a=ice-ufrag:sbuf\r\n",
        "a=ice-pwd:0123456789abcdef01234567\r\n",
        "a=fingerprint:sha-256 AA:BB\r\n",
        "a=setup:passive\r\n",
        "a=rtcp-mux\r\n",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 20000 typ host\r\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert!(!text.contains("a=rtcp:"), "{text}");
    // ice-lite and BUNDLE are session attributes: before the m-line.
    assert!(text.find("a=ice-lite").unwrap() < text.find("m=audio").unwrap());
    let back = Sdp::parse(text.as_bytes())
        .unwrap()
        .audio_stream()
        .unwrap()
        .unwrap();
    assert_eq!(back.webrtc, ours.webrtc);
}
