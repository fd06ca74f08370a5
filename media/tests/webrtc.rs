//! A WebRTC leg in the engine over real sockets on 127.0.0.1, bridged with a plain leg. The
//! browser is played by webrtc-rs (STUN checks with `rtc-stun`, the DTLS client with
//! `rtc-dtls`, SRTP with `rtc-srtp`): nothing reaches it or leaves it before it has proved
//! itself and keyed SRTP; then what it sends arrives plain at the other peer and what that peer
//! sends arrives sealed with the handshake's keys, RTCP included on the one socket; a browser
//! that stops checking loses the leg.

use bytes::BytesMut;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_srtp::context::Context as Theirs;
use rtc_srtp::protection_profile::ProtectionProfile;
use rtc_stun::message::{BINDING_SUCCESS, Message};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_media::webrtc::ice::browser_check;
use switchboard_media::webrtc::{Credentials, Fingerprint, Identity, WebRtcConfig};
use switchboard_media::{
    EndpointConfig, Law, MediaConfig, MediaEngine, MediaEvent, PayloadMap, rtp,
};
use tokio::sync::mpsc;

/// An engine with `threads` workers on 127.0.0.1, its RTP ports in `ports`, and its events.
fn engine(
    ports: std::ops::RangeInclusive<u16>,
    threads: usize,
) -> (MediaEngine, mpsc::UnboundedReceiver<MediaEvent>) {
    let (tx, events) = mpsc::unbounded_channel();
    let config = MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        advertise_ip: "127.0.0.1".parse().unwrap(),
        ports,
        threads,
        rtp_timeout: Duration::from_secs(60),
        learn_window: Duration::from_secs(3),
        kernel_relay: false,
        // None bound ahead: a pair given back stays closed, so a test can bind its port to
        // see that the leg let go of it.
        bind_ahead: 0,
    };
    (MediaEngine::start(config, tx).unwrap(), events)
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

fn rtp_packet(seq: u16, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; 172];
    rtp::write_header(&mut p, 0, false, seq, u32::from(seq) * 160, 0xb0b);
    p
}

/// A minimal RTCP receiver report (RFC 3550 §6.4.2), no report blocks.
fn rtcp_packet() -> Vec<u8> {
    vec![0x80, 201, 0, 1, 0, 0, 0x0b, 0x0b]
}

fn fingerprint_of(certificate: &Certificate) -> Fingerprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, &certificate.certificate[0]);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    Fingerprint::parse(&format!("sha-256 {}", hex.join(":"))).unwrap()
}

const PCMU: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: None,
};

fn browser_certificate() -> Certificate {
    let crypto = rtc_dtls::crypto_provider::default_provider().unwrap();
    Certificate::generate_self_signed(vec!["browser".into()], crypto.crypto()).unwrap()
}

/// A browser's leg in PCMU, with our `identity`, its `ice` and the browser's certificate.
fn browser_leg(
    identity: std::sync::Arc<Identity>,
    ice: &Credentials,
    certificate: &Certificate,
) -> EndpointConfig {
    EndpointConfig {
        payload: PCMU,
        expect_rtp: true,
        webrtc: Some(WebRtcConfig {
            identity,
            ice: ice.clone(),
            remote_fingerprint: fingerprint_of(certificate),
        }),
        ..Default::default()
    }
}

/// A browser's leg and a phone's, bridged in PCMU (commands queued, not yet flushed).
struct Bridged {
    eb: switchboard_media::Endpoint,
    ep: switchboard_media::Endpoint,
    /// What the browser presents in its handshake (the leg's SDP fingerprinted it).
    certificate: Certificate,
    /// The leg's ICE credentials, which the browser's checks use.
    ice: Credentials,
}

fn bridge_browser_to_phone(
    engine: &MediaEngine,
    phone_rtp: SocketAddr,
    phone_rtcp: Option<SocketAddr>,
) -> Bridged {
    let (eb, ep) = (
        engine.allocate(None).unwrap(),
        engine.allocate(None).unwrap(),
    );
    let certificate = browser_certificate();
    let ice = Credentials::generate("brws");
    engine.configure(
        eb.id,
        browser_leg(Identity::generate().unwrap(), &ice, &certificate),
    );
    engine.configure(
        ep.id,
        EndpointConfig {
            remote_rtp: Some(phone_rtp),
            remote_rtcp: phone_rtcp,
            payload: PCMU,
            expect_rtp: true,
            ..Default::default()
        },
    );
    engine.bridge(eb.id, ep.id);
    Bridged {
        eb,
        ep,
        certificate,
        ice,
    }
}

/// The DTLS client's handshake with `server` over `sock`: SRTP contexts with the client's
/// keys (what the browser seals with) and the server's (what it opens with); `None` when the
/// handshake fails or does not complete within 5 s.
fn handshake(
    sock: &UdpSocket,
    server: SocketAddr,
    certificate: &Certificate,
) -> Option<[Theirs; 2]> {
    let crypto = rtc_dtls::crypto_provider::default_provider().unwrap();
    let config = ConfigBuilder::default()
        .with_crypto_provider(crypto.clone())
        .with_certificates(vec![certificate.clone()])
        .with_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80])
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .with_insecure_skip_verify(true)
        .build(true, None)
        .unwrap();
    let local = sock.local_addr().unwrap();
    let mut dtls = Endpoint::new(local, rtc_shared::TransportProtocol::UDP, None);
    dtls.connect(Instant::now(), server, Arc::new(config), None)
        .unwrap();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut done = false;
    while !done {
        if Instant::now() > deadline {
            return None;
        }
        while let Some(t) = dtls.poll_transmit() {
            sock.send_to(&t.message, server).unwrap();
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, server);
                let events = dtls
                    .read(Instant::now(), from, None, BytesMut::from(&buf[..n]))
                    .ok()?;
                done = events
                    .iter()
                    .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
            }
            Err(_) => dtls.handle_timeout(server, Instant::now()).ok()?,
        }
    }
    while let Some(t) = dtls.poll_transmit() {
        sock.send_to(&t.message, server).unwrap();
    }
    let state = dtls.get_connection_state(server).unwrap();
    let m = state
        .export_keying_material("EXTRACTOR-dtls_srtp", &[], 60)
        .unwrap();
    let m = m.as_ref();
    let context = |key: &[u8], salt: &[u8]| {
        let provider = rtc_srtp::crypto::default_provider().unwrap();
        let profile = ProtectionProfile::Aes128CmHmacSha1_80;
        Theirs::new(key, salt, profile, None, None, provider.crypto()).unwrap()
    };
    Some([
        context(&m[..16], &m[32..46]),
        context(&m[16..32], &m[46..60]),
    ])
}

#[test]
fn a_browser_leg_is_heard_only_once_it_proved_itself_and_keyed_srtp() {
    let (engine, mut events) = engine(32300..=32309, 1);
    let (browser, phone, phone_rtcp) = (socket(), socket(), socket());
    let Bridged {
        eb,
        ep,
        certificate,
        ice,
    } = bridge_browser_to_phone(
        &engine,
        phone.local_addr().unwrap(),
        Some(phone_rtcp.local_addr().unwrap()),
    );
    engine.flush();
    let mut buf = [0u8; 2048];

    // Before anything: the phone's audio goes nowhere (no address, no keys), and plain RTP
    // from the browser's socket is not relayed.
    phone.send_to(&rtp_packet(1, 0x55), ep.rtp).unwrap();
    browser.send_to(&rtp_packet(1, 0x2a), eb.browser).unwrap();
    assert!(
        browser.recv_from(&mut buf).is_err(),
        "nothing to an unproved browser"
    );
    assert!(phone.recv_from(&mut buf).is_err(), "nothing from it either");

    // A connectivity check is answered; then the handshake.
    browser
        .send_to(&browser_check(&ice, true), eb.browser)
        .unwrap();
    let (n, from) = browser.recv_from(&mut buf).unwrap();
    let mut response = Message::new();
    response.unmarshal_binary(&buf[..n]).unwrap();
    assert_eq!((from, response.typ), (eb.browser, BINDING_SUCCESS));
    // Still before the keys: the phone's audio does not go out in the clear.
    phone.send_to(&rtp_packet(2, 0x55), ep.rtp).unwrap();
    assert!(
        browser.recv_from(&mut buf).is_err(),
        "no plain RTP to a browser"
    );
    let [mut seal, mut open] = handshake(&browser, eb.browser, &certificate).expect("keyed");

    for seq in 10..30u16 {
        let sealed = seal.encrypt_rtp(&rtp_packet(seq, 0x2a)).unwrap();
        browser.send_to(&sealed, eb.browser).unwrap();
        let (n, from) = phone.recv_from(&mut buf).unwrap();
        assert_eq!((from, n), (ep.rtp, 172), "plain at the phone");
        assert!(buf[12..n].iter().all(|&x| x == 0x2a));

        phone.send_to(&rtp_packet(seq, 0x55), ep.rtp).unwrap();
        let (n, from) = browser.recv_from(&mut buf).unwrap();
        assert_eq!((from, n), (eb.browser, 182), "sealed, with its 10-byte tag");
        let opened = open.decrypt_rtp(&buf[..n]).unwrap();
        assert!(opened[12..].iter().all(|&x| x == 0x55));
    }
    // RTCP rides the RTP socket both ways (rtcp-mux), sealed toward the browser.
    let sealed = seal.encrypt_rtcp(&rtcp_packet()).unwrap();
    browser.send_to(&sealed, eb.browser).unwrap();
    let (n, _) = phone_rtcp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &rtcp_packet()[..]);
    phone_rtcp
        .send_to(
            &rtcp_packet(),
            SocketAddr::new(ep.rtp.ip(), ep.rtp.port() + 1),
        )
        .unwrap();
    let (n, from) = browser.recv_from(&mut buf).unwrap();
    assert_eq!(from, eb.browser);
    assert_eq!(
        &open.decrypt_rtcp(&buf[..n]).unwrap()[..],
        &rtcp_packet()[..]
    );

    // Media from anywhere but the nominated address is dropped, sealed or not.
    let elsewhere = socket();
    let sealed = seal.encrypt_rtp(&rtp_packet(40, 0x2a)).unwrap();
    elsewhere.send_to(&sealed, eb.browser).unwrap();
    assert!(phone.recv_from(&mut buf).is_err());
    assert!(
        events.try_recv().is_err(),
        "no event while the browser keeps consenting"
    );

    // The browser comes back with a new peer connection (a page reloaded, Telnyx's attach):
    // new ICE credentials and a new certificate, from another address. Its checks reach the
    // leg (the socket was never tied to the old address) and it keys SRTP anew.
    let reborn = socket();
    let certificate = browser_certificate();
    let ice = Credentials {
        remote_ufrag: "nw1x".into(),
        ..ice
    };
    engine.configure(
        eb.id,
        browser_leg(Identity::generate().unwrap(), &ice, &certificate),
    );
    engine.flush();
    reborn
        .send_to(&browser_check(&ice, true), eb.browser)
        .unwrap();
    let (n, from) = reborn
        .recv_from(&mut buf)
        .expect("the new address is answered");
    let mut response = Message::new();
    response.unmarshal_binary(&buf[..n]).unwrap();
    assert_eq!((from, response.typ), (eb.browser, BINDING_SUCCESS));
    let [mut seal, mut open] = handshake(&reborn, eb.browser, &certificate).expect("keyed anew");
    for seq in 50..60u16 {
        let sealed = seal.encrypt_rtp(&rtp_packet(seq, 0x2b)).unwrap();
        reborn.send_to(&sealed, eb.browser).unwrap();
        let (n, _) = phone.recv_from(&mut buf).unwrap();
        assert!(
            buf[12..n].iter().all(|&x| x == 0x2b),
            "the new browser heard"
        );
        phone.send_to(&rtp_packet(seq, 0x56), ep.rtp).unwrap();
        let (n, _) = reborn.recv_from(&mut buf).unwrap();
        let opened = open.decrypt_rtp(&buf[..n]).unwrap();
        assert!(
            opened[12..].iter().all(|&x| x == 0x56),
            "the new browser hears"
        );
    }
    drop(engine);
}

#[test]
fn a_browser_that_fails_the_handshake_loses_the_leg() {
    let (engine, mut events) = engine(32310..=32319, 1);
    let browser = socket();
    let eb = engine.allocate(None).unwrap();
    let crypto = rtc_dtls::crypto_provider::default_provider().unwrap();
    let certificate =
        Certificate::generate_self_signed(vec!["browser".into()], crypto.crypto()).unwrap();
    let other = Certificate::generate_self_signed(vec!["other".into()], crypto.crypto()).unwrap();
    let ice = Credentials::generate("brws");
    engine.configure(
        eb.id,
        EndpointConfig {
            webrtc: Some(WebRtcConfig {
                identity: Identity::generate().unwrap(),
                ice: ice.clone(),
                remote_fingerprint: fingerprint_of(&other),
            }),
            ..Default::default()
        },
    );
    engine.flush();
    browser
        .send_to(&browser_check(&ice, true), eb.browser)
        .unwrap();
    let mut buf = [0u8; 2048];
    browser.recv_from(&mut buf).unwrap();
    // The certificate is not the fingerprinted one: the handshake cannot complete.
    assert!(handshake(&browser, eb.browser, &certificate).is_none());
    let deadline = Instant::now() + Duration::from_secs(5);
    let lost = loop {
        match events.try_recv() {
            Ok(event) => break event,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => panic!("no event"),
        }
    };
    assert_eq!(
        lost,
        MediaEvent::TransportLost {
            id: eb.id,
            reason: "dtls-failed"
        }
    );
}

/// Browser legs on one worker's browser socket: each browser's checks, handshake and media
/// reach its own leg and nobody else's, and a leg that lives on another worker than the
/// socket its browser was told of (activated beside its peer there) is reached through it.
#[test]
fn browsers_share_their_workers_socket_and_a_leg_that_moved_is_still_reached() {
    let (engine, _events) = engine(32320..=32339, 2);
    let identity = Identity::generate().unwrap();
    struct Call {
        browser: UdpSocket,
        phone: UdpSocket,
        eb: switchboard_media::Endpoint,
        ep: switchboard_media::Endpoint,
        ice: Credentials,
        certificate: Certificate,
    }
    // Endpoints are reserved on the workers in turn. The first two calls' browser legs come
    // first in theirs (worker 0); the third call's phone leg comes first and its browser leg,
    // reserved on worker 1, is activated beside it on worker 0.
    let mut calls = Vec::new();
    for browser_first in [true, true, false] {
        let (eb, ep) = if browser_first {
            let eb = engine.allocate(None).unwrap();
            (eb, engine.allocate(Some(eb.id)).unwrap())
        } else {
            let ep = engine.allocate(None).unwrap();
            (engine.allocate(Some(ep.id)).unwrap(), ep)
        };
        let certificate = browser_certificate();
        let ice = Credentials::generate("brws");
        let phone = socket();
        engine.configure(eb.id, browser_leg(identity.clone(), &ice, &certificate));
        engine.configure(
            ep.id,
            EndpointConfig {
                remote_rtp: Some(phone.local_addr().unwrap()),
                payload: PCMU,
                expect_rtp: true,
                ..Default::default()
            },
        );
        engine.bridge(eb.id, ep.id);
        let browser = socket();
        calls.push(Call {
            browser,
            phone,
            eb,
            ep,
            ice,
            certificate,
        });
    }
    engine.flush();
    assert_eq!(
        calls[0].eb.browser, calls[1].eb.browser,
        "one socket, two legs"
    );
    assert_ne!(
        calls[2].eb.browser, calls[0].eb.browser,
        "the other worker's"
    );
    assert!(calls.iter().all(|c| c.eb.browser != c.eb.rtp));

    let mut buf = [0u8; 2048];
    let mut keys = Vec::new();
    for call in &calls {
        (call.browser)
            .send_to(&browser_check(&call.ice, true), call.eb.browser)
            .unwrap();
        let (n, from) = call.browser.recv_from(&mut buf).unwrap();
        let mut response = Message::new();
        response.unmarshal_binary(&buf[..n]).unwrap();
        assert_eq!((from, response.typ), (call.eb.browser, BINDING_SUCCESS));
        keys.push(handshake(&call.browser, call.eb.browser, &call.certificate).expect("keyed"));
    }
    // Each browser and its phone talk, every one with its own fill byte, at once.
    for seq in 10..30u16 {
        for (i, (call, [seal, _])) in calls.iter().zip(keys.iter_mut()).enumerate() {
            let fill = 0x20 + i as u8;
            let sealed = seal.encrypt_rtp(&rtp_packet(seq, fill)).unwrap();
            call.browser.send_to(&sealed, call.eb.browser).unwrap();
            call.phone
                .send_to(&rtp_packet(seq, fill + 0x40), call.ep.rtp)
                .unwrap();
        }
        for (i, (call, [_, open])) in calls.iter().zip(keys.iter_mut()).enumerate() {
            let fill = 0x20 + i as u8;
            let (n, from) = call.phone.recv_from(&mut buf).unwrap();
            assert_eq!(
                (from, n),
                (call.ep.rtp, 172),
                "call {i}: plain at its phone"
            );
            assert!(
                buf[12..n].iter().all(|&x| x == fill),
                "call {i}: its browser's"
            );
            let (n, from) = call.browser.recv_from(&mut buf).unwrap();
            assert_eq!(
                from, call.eb.browser,
                "call {i}: from the socket it sent to"
            );
            let opened = open.decrypt_rtp(&buf[..n]).unwrap();
            assert!(
                opened[12..].iter().all(|&x| x == fill + 0x40),
                "call {i}: its phone's"
            );
        }
    }
    // A stranger's datagrams on the shared socket reach nobody.
    let stranger = socket();
    let [seal, _] = &mut keys[0];
    let sealed = seal.encrypt_rtp(&rtp_packet(50, 0x20)).unwrap();
    stranger.send_to(&sealed, calls[0].eb.browser).unwrap();
    assert!(calls[0].phone.recv_from(&mut buf).is_err());
    engine.shutdown();
}

/// Chrome, answering a call, sends its media on the first candidate pair that works, moves it
/// to a better pair as soon as that one answers, and nominates the better pair only about a
/// second later. Media from the second pair is heard at once, and the phone's goes there;
/// a nomination then decides where media goes, and an address no check proved is never heard.
/// The leg holds no RTP pair of its own meanwhile.
#[test]
fn a_browser_that_moves_its_media_to_another_proved_pair_before_nominating_is_heard_there() {
    let (engine, _events) = engine(32340..=32349, 1);
    let (first, better, phone) = (socket(), socket(), socket());
    let free = engine.ports_available();
    let Bridged {
        eb,
        ep,
        certificate,
        ice,
    } = bridge_browser_to_phone(&engine, phone.local_addr().unwrap(), None);
    engine.barrier();
    // Two pairs taken, and the browser's leg gives its own back: closed, and in the pool
    // again.
    assert_eq!(engine.ports_available(), free - 2 + 1);
    UdpSocket::bind(eb.rtp).expect("the browser leg's RTP port is closed");
    let mut buf = [0u8; 2048];
    // Both pairs are checked, neither nominated; the handshake runs on the first.
    for s in [&first, &better] {
        s.send_to(&browser_check(&ice, false), eb.browser).unwrap();
        let (_, from) = s.recv_from(&mut buf).expect("checked");
        assert_eq!(from, eb.browser);
    }
    let mut keys = handshake(&first, eb.browser, &certificate).expect("keyed");
    // Each way between the browser's `from` and the phone: what one sends the other hears.
    let talk = |keys: &mut [Theirs; 2], seq: u16, from: &UdpSocket, fill: u8| {
        let mut buf = [0u8; 2048];
        let sealed = keys[0].encrypt_rtp(&rtp_packet(seq, fill)).unwrap();
        from.send_to(&sealed, eb.browser).unwrap();
        let (n, _) = phone
            .recv_from(&mut buf)
            .expect("the phone hears the browser");
        assert!(buf[12..n].iter().all(|&x| x == fill));
        phone.send_to(&rtp_packet(seq, 0x55), ep.rtp).unwrap();
        let (n, _) = from
            .recv_from(&mut buf)
            .expect("the browser hears the phone where it sends from");
        let opened = keys[1].decrypt_rtp(&buf[..n]).unwrap();
        assert!(opened[12..].iter().all(|&x| x == 0x55));
    };
    for seq in 10..15 {
        talk(&mut keys, seq, &first, 0x2a);
    }
    // The browser moves to the better pair before nominating anything.
    for seq in 15..20 {
        talk(&mut keys, seq, &better, 0x2b);
    }
    // It nominates the first pair after all: media goes there, and is still taken from the
    // other proved one.
    first
        .send_to(&browser_check(&ice, true), eb.browser)
        .unwrap();
    first.recv_from(&mut buf).expect("nomination answered");
    for seq in 20..23 {
        talk(&mut keys, seq, &first, 0x2c);
    }
    let sealed = keys[0].encrypt_rtp(&rtp_packet(23, 0x2d)).unwrap();
    better.send_to(&sealed, eb.browser).unwrap();
    let (n, _) = phone.recv_from(&mut buf).expect("taken from a proved pair");
    assert!(buf[12..n].iter().all(|&x| x == 0x2d));
    phone.send_to(&rtp_packet(23, 0x55), ep.rtp).unwrap();
    assert!(
        first.recv_from(&mut buf).is_ok(),
        "sent to the nominated pair"
    );
    assert!(better.recv_from(&mut buf).is_err(), "and only there");
    // Sealed media from an address no check proved is nobody's.
    let stranger = socket();
    let sealed = keys[0].encrypt_rtp(&rtp_packet(24, 0x2e)).unwrap();
    stranger.send_to(&sealed, eb.browser).unwrap();
    assert!(
        phone.recv_from(&mut buf).is_err(),
        "a stranger is not heard"
    );
    drop(engine);
}
