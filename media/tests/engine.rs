//! The engine over real sockets on 127.0.0.1: relay both ways with law conversion, symmetric
//! RTP latching, RTCP forwarding, RTP timeout, port exhaustion and final counters.

use std::net::UdpSocket;
use std::time::Duration;
use switchboard_media::{
    Endpoint, EndpointConfig, Law, MediaCommand, MediaConfig, MediaEngine, MediaError, MediaEvent,
    PayloadMap, SourcePolicy, g711, rtp,
};
use tokio::sync::mpsc;

fn engine(
    ports: std::ops::RangeInclusive<u16>,
    timeout: Duration,
) -> (MediaEngine, mpsc::UnboundedReceiver<MediaEvent>) {
    engine_learning(ports, timeout, Duration::from_secs(3))
}

fn engine_learning(
    ports: std::ops::RangeInclusive<u16>,
    timeout: Duration,
    learn_window: Duration,
) -> (MediaEngine, mpsc::UnboundedReceiver<MediaEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cfg = MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        advertise_ip: "127.0.0.1".parse().unwrap(),
        ports,
        threads: 1,
        rtp_timeout: timeout,
        learn_window,
        kernel_relay: false,
        bind_ahead: switchboard_media::BIND_AHEAD,
    };
    (MediaEngine::start(cfg, tx).unwrap(), rx)
}

fn phone() -> UdpSocket {
    phone_at("127.0.0.1")
}

/// A socket on another loopback address: a host other than the peer.
fn phone_at(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn rtp_packet(pt: u8, seq: u16, fill: u8) -> Vec<u8> {
    let mut p = vec![fill; 172];
    rtp::write_header(&mut p, pt, false, seq, seq as u32 * 160, 0x1234);
    p
}

fn recv_event(rx: &mut mpsc::UnboundedReceiver<MediaEvent>) -> MediaEvent {
    for _ in 0..200 {
        if let Ok(e) = rx.try_recv() {
            return e;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no media event");
}

/// Releases a bridge's two endpoints: their final counters, A's then B's.
fn release_both(
    engine: &MediaEngine,
    events: &mut mpsc::UnboundedReceiver<MediaEvent>,
    ea: &Endpoint,
    eb: &Endpoint,
) -> (
    switchboard_media::EndpointStats,
    switchboard_media::EndpointStats,
) {
    engine.release(ea.id);
    engine.release(eb.id);
    engine.flush();
    let mut finals = Vec::new();
    for _ in 0..2 {
        if let MediaEvent::Released { id, stats } = recv_event(events) {
            finals.push((id, stats));
        }
    }
    let of = |e: &Endpoint| {
        (finals.iter().find(|(id, _)| *id == e.id))
            .unwrap_or_else(|| panic!("no final counters: {finals:?}"))
            .1
    };
    (of(ea), of(eb))
}

#[test]
fn relays_both_ways_transcoding_and_counts() {
    let (engine, mut events) = engine(31000..=31019, Duration::from_secs(60));
    let (a, b) = (phone(), phone());
    let ea = engine.allocate(None).unwrap();
    let eb = engine.allocate(Some(ea.id)).unwrap();
    let pcma = PayloadMap {
        audio: Some((8, Law::Alaw)),
        telephone_event: Some(101),
    };
    let pcmu = PayloadMap {
        audio: Some((0, Law::Ulaw)),
        telephone_event: Some(96),
    };
    engine.configure(
        ea.id,
        EndpointConfig {
            remote_rtp: Some(a.local_addr().unwrap()),
            payload: pcma,
            expect_rtp: true,
            ..Default::default()
        },
    );
    engine.configure(
        eb.id,
        EndpointConfig {
            remote_rtp: Some(b.local_addr().unwrap()),
            payload: pcmu,
            expect_rtp: true,
            ..Default::default()
        },
    );
    engine.bridge(ea.id, eb.id);
    engine.flush();

    let mut buf = [0u8; 2048];
    for seq in 0..50u16 {
        a.send_to(&rtp_packet(8, seq, 0x2a), ea.rtp).unwrap();
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(from, eb.rtp, "sent from the bridged endpoint's own port");
        assert_eq!(n, 172);
        assert_eq!(rtp::payload_type(&buf), 0);
        assert_eq!(rtp::sequence(&buf), seq);
        assert!(
            buf[12..n].iter().all(|&x| x == g711::ALAW_TO_ULAW[0x2a]),
            "A-law converted to μ-law"
        );
    }
    // Telephone-event is remapped, and B's answers reach A as PCMA.
    a.send_to(&rtp_packet(101, 50, 0), ea.rtp).unwrap();
    let _ = b.recv_from(&mut buf).unwrap();
    assert_eq!(rtp::payload_type(&buf), 96);
    for seq in 0..10u16 {
        b.send_to(&rtp_packet(0, seq, 0xff), eb.rtp).unwrap();
        let (_, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!(from, ea.rtp);
        assert_eq!(rtp::payload_type(&buf), 8);
    }
    // A stranger cannot inject into the latched stream.
    let stranger = phone();
    stranger.send_to(&rtp_packet(8, 99, 0), ea.rtp).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        b.recv_from(&mut buf).is_err(),
        "packet from another source is dropped"
    );

    // RTCP goes to the peer's RTCP port (RTP port + 1 from its SDP).
    let (a_rtcp, b_rtcp) = (phone(), phone());
    engine.configure(
        ea.id,
        EndpointConfig {
            remote_rtp: Some(a.local_addr().unwrap()),
            remote_rtcp: Some(a_rtcp.local_addr().unwrap()),
            payload: pcma,
            expect_rtp: true,
            ..Default::default()
        },
    );
    engine.configure(
        eb.id,
        EndpointConfig {
            remote_rtp: Some(b.local_addr().unwrap()),
            remote_rtcp: Some(b_rtcp.local_addr().unwrap()),
            payload: pcmu,
            expect_rtp: true,
            ..Default::default()
        },
    );
    engine.flush();
    let rr = [
        0x81u8, 201, 0, 7, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0,
    ];
    a_rtcp
        .send_to(
            &rr,
            std::net::SocketAddr::new(ea.rtp.ip(), ea.rtp.port() + 1),
        )
        .unwrap();
    let (n, _) = b_rtcp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &rr);

    let (a_stats, b_stats) = release_both(&engine, &mut events, &ea, &eb);
    assert_eq!(a_stats.packets_in, 51);
    assert_eq!(b_stats.packets_out, 51);
    assert_eq!(b_stats.packets_in, 10);
    assert_eq!(a_stats.packets_out, 10);
    // The stranger's packet never reached us: the socket is connected to the latched source.
    assert_eq!(a_stats.dropped, 0);
    assert_eq!(a_stats.lost, 0);
    assert_eq!(engine.relayed_total(), 61);
    // Ten pairs in the range, one of them the worker's browser socket's for good.
    assert_eq!(engine.ports_available(), 9, "ports returned");
    engine.shutdown();
}

#[test]
fn silence_times_out_and_ports_run_out() {
    // Three pairs: one for the worker's browser socket, two for endpoints.
    let (engine, mut events) = engine(31100..=31105, Duration::from_millis(300));
    let e1 = engine.allocate(None).unwrap();
    let _e2 = engine.allocate(None).unwrap();
    assert!(matches!(
        engine.allocate(None),
        Err(MediaError::PortsExhausted)
    ));
    engine.configure(
        e1.id,
        EndpointConfig {
            expect_rtp: true,
            ..Default::default()
        },
    );
    assert_eq!(recv_event(&mut events), MediaEvent::Timeout { id: e1.id });
    engine.shutdown();
}

/// A new address from a re-INVITE replaces the latched one: the socket lets go of the old peer
/// (it was connected to it) and follows the new one.
#[test]
fn a_new_remote_address_replaces_the_latched_one() {
    let (engine, _events) = engine(31300..=31309, Duration::from_secs(60));
    let (a, a2, b) = (phone(), phone(), phone());
    let ea = engine.allocate(None).unwrap();
    let eb = engine.allocate(Some(ea.id)).unwrap();
    let pcmu = PayloadMap {
        audio: Some((0, Law::Ulaw)),
        telephone_event: None,
    };
    let config = |addr: std::net::SocketAddr| EndpointConfig {
        remote_rtp: Some(addr),
        payload: pcmu,
        ..Default::default()
    };
    engine.configure(ea.id, config(a.local_addr().unwrap()));
    engine.configure(eb.id, config(b.local_addr().unwrap()));
    engine.bridge(ea.id, eb.id);
    engine.flush();
    let mut buf = [0u8; 2048];
    a.send_to(&rtp_packet(0, 1, 0xff), ea.rtp).unwrap();
    b.recv_from(&mut buf).unwrap();

    engine.configure(ea.id, config(a2.local_addr().unwrap()));
    engine.flush();
    std::thread::sleep(Duration::from_millis(50));
    b.send_to(&rtp_packet(0, 2, 0xff), eb.rtp).unwrap();
    let (_, from) = a2.recv_from(&mut buf).expect("sent to the new address");
    assert_eq!((from, rtp::sequence(&buf)), (ea.rtp, 2));
    a2.send_to(&rtp_packet(0, 3, 0xff), ea.rtp).unwrap();
    b.recv_from(&mut buf)
        .expect("the new address is latched and relayed");
    assert_eq!(rtp::sequence(&buf), 3);
    a.send_to(&rtp_packet(0, 4, 0xff), ea.rtp).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(b.recv_from(&mut buf).is_err(), "the old address is refused");
    engine.shutdown();
}

const PCMU: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: None,
};

/// Two bridged endpoints: A's peer described `sdp_a` and has `policy`, B's peer is `b`.
fn bridged(
    engine: &MediaEngine,
    sdp_a: std::net::SocketAddr,
    policy: SourcePolicy,
    b: &UdpSocket,
) -> (Endpoint, Endpoint) {
    let ea = engine.allocate(None).unwrap();
    let eb = engine.allocate(Some(ea.id)).unwrap();
    let config = |addr, source| EndpointConfig {
        remote_rtp: Some(addr),
        payload: PCMU,
        expect_rtp: true,
        source,
        ..Default::default()
    };
    engine.configure(ea.id, config(sdp_a, policy));
    engine.configure(eb.id, config(b.local_addr().unwrap(), SourcePolicy::Strict));
    engine.bridge(ea.id, eb.id);
    engine.flush();
    (ea, eb)
}

/// Whatever reaches `sock` within a short wait, as (source, fill byte of the payload).
fn heard(sock: &UdpSocket) -> Option<(std::net::SocketAddr, u8)> {
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    sock.recv_from(&mut buf)
        .ok()
        .map(|(_, from)| (from, buf[12]))
}

/// The "RTP bleed" attack: a stranger sprays a packet at the port before the peer speaks. It
/// must neither reach the other side nor take the leg's audio.
#[test]
fn a_stranger_cannot_take_a_leg_before_its_peer_speaks() {
    for policy in [SourcePolicy::Strict, SourcePolicy::LearnIp] {
        let (engine, _events) = engine(31400..=31409, Duration::from_secs(60));
        let (a, b, stranger) = (phone(), phone(), phone_at("127.0.0.2"));
        let (ea, eb) = bridged(&engine, a.local_addr().unwrap(), policy, &b);
        stranger.send_to(&rtp_packet(0, 1, 0x11), ea.rtp).unwrap();
        assert_eq!(
            heard(&b),
            None,
            "{policy:?}: the stranger's audio is dropped"
        );

        a.send_to(&rtp_packet(0, 2, 0x22), ea.rtp).unwrap();
        assert_eq!(
            heard(&b),
            Some((eb.rtp, 0x22)),
            "the peer's audio is relayed"
        );
        b.send_to(&rtp_packet(0, 1, 0x33), eb.rtp).unwrap();
        assert_eq!(
            heard(&a),
            Some((ea.rtp, 0x33)),
            "the answer reaches the peer"
        );
        assert_eq!(heard(&stranger), None, "and not the stranger");
        engine.shutdown();
    }
}

/// A NAT that rewrites the port: learn-ip takes the same IP's other port, strict does not.
#[test]
fn learn_ip_follows_a_nat_port_and_strict_does_not() {
    for (policy, follows) in [(SourcePolicy::LearnIp, true), (SourcePolicy::Strict, false)] {
        let (engine, _events) = engine(31500..=31509, Duration::from_secs(60));
        let (described, nat, b) = (phone(), phone(), phone());
        let (ea, eb) = bridged(&engine, described.local_addr().unwrap(), policy, &b);
        nat.send_to(&rtp_packet(0, 1, 0x44), ea.rtp).unwrap();
        let relayed = heard(&b);
        b.send_to(&rtp_packet(0, 1, 0x55), eb.rtp).unwrap();
        if follows {
            assert_eq!(relayed, Some((eb.rtp, 0x44)));
            assert_eq!(
                heard(&nat),
                Some((ea.rtp, 0x55)),
                "answers follow the NAT port"
            );
        } else {
            assert_eq!(relayed, None);
            assert_eq!(
                heard(&described),
                Some((ea.rtp, 0x55)),
                "answers go where SDP said"
            );
        }
        engine.shutdown();
    }
}

/// learn-any takes another host, but only with valid RTP and only within the window.
#[test]
fn learn_any_latches_valid_rtp_within_the_window_only() {
    let window = Duration::from_millis(1000);
    let (engine, _events) = engine_learning(31600..=31609, Duration::from_secs(60), window);
    let (described, b) = (phone(), phone());
    let (public, junk) = (phone_at("127.0.0.3"), phone_at("127.0.0.4"));
    let (ea, eb) = bridged(
        &engine,
        described.local_addr().unwrap(),
        SourcePolicy::LearnAny,
        &b,
    );
    junk.send_to(b"not rtp at all, just bytes", ea.rtp).unwrap();
    junk.send_to(&rtp_packet(77, 1, 0x66), ea.rtp).unwrap();
    assert_eq!(
        heard(&b),
        None,
        "junk and unnegotiated payload types never latch"
    );
    public.send_to(&rtp_packet(0, 1, 0x77), ea.rtp).unwrap();
    assert_eq!(heard(&b), Some((eb.rtp, 0x77)));
    b.send_to(&rtp_packet(0, 1, 0x12), eb.rtp).unwrap();
    assert_eq!(heard(&public), Some((ea.rtp, 0x12)));

    // After the window, nothing new latches on a fresh endpoint.
    let (late_b, late_peer) = (phone(), phone_at("127.0.0.5"));
    let (late, _) = bridged(
        &engine,
        described.local_addr().unwrap(),
        SourcePolicy::LearnAny,
        &late_b,
    );
    std::thread::sleep(window + Duration::from_millis(100));
    late_peer
        .send_to(&rtp_packet(0, 1, 0x13), late.rtp)
        .unwrap();
    assert_eq!(heard(&late_b), None, "the window has closed");
    engine.shutdown();
}

/// A latched peer that sends only comfort noise (a payload type not negotiated) during
/// silence is still alive: its packets are not relayed, but they keep the RTP timeout away.
#[test]
fn comfort_noise_from_the_latched_peer_keeps_the_call_alive() {
    let (engine, mut events) = engine(31700..=31709, Duration::from_millis(400));
    let (a, b) = (phone(), phone());
    let (ea, _eb) = bridged(&engine, a.local_addr().unwrap(), SourcePolicy::Strict, &b);
    a.send_to(&rtp_packet(0, 1, 0x21), ea.rtp).unwrap();
    assert!(heard(&b).is_some());
    for seq in 2..14u16 {
        a.send_to(&rtp_packet(13, seq, 0), ea.rtp).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let timeouts = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| *e == MediaEvent::Timeout { id: ea.id })
        .count();
    assert_eq!(
        timeouts, 0,
        "1.2 s of comfort noise against a 400 ms timeout"
    );
    engine.shutdown();
}

/// Pairs bound ahead of need (the call core's way): reserved pairs count as free ports, are on
/// no worker until activated, and one activated beside another lands on its worker, so the two
/// relay to each other once bridged. A reserved pair given back unused frees its port at once,
/// with no event (it never had counters).
#[test]
fn reserved_pairs_go_to_work_beside_their_peer_and_come_back_unused() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let engine = MediaEngine::start(
        MediaConfig {
            bind_ip: "127.0.0.1".parse().unwrap(),
            advertise_ip: "127.0.0.1".parse().unwrap(),
            // Five pairs: one for each worker's browser socket, three for endpoints.
            ports: 31200..=31209,
            threads: 2,
            rtp_timeout: Duration::from_secs(60),
            learn_window: Duration::from_secs(3),
            kernel_relay: false,
            bind_ahead: switchboard_media::BIND_AHEAD,
        },
        tx,
    )
    .unwrap();
    let (ea, eb, spare) = (
        engine.reserve().unwrap(),
        engine.reserve().unwrap(),
        engine.reserve().unwrap(),
    );
    assert_eq!(
        engine.ports_available(),
        3,
        "reserved pairs are free for calls"
    );
    assert!(matches!(engine.reserve(), Err(MediaError::PortsExhausted)));
    // Reserved in turn, `a` and `b` were meant for different workers; `b` follows `a`.
    let (a, b) = (phone(), phone());
    let pcmu = PayloadMap {
        audio: Some((0, Law::Ulaw)),
        telephone_event: None,
    };
    let config = |peer: &UdpSocket| EndpointConfig {
        remote_rtp: Some(peer.local_addr().unwrap()),
        payload: pcmu,
        ..Default::default()
    };
    for command in [
        MediaCommand::Activate {
            id: ea.id,
            near: None,
        },
        MediaCommand::Activate {
            id: eb.id,
            near: Some(ea.id),
        },
        MediaCommand::Configure {
            id: ea.id,
            config: config(&a),
        },
        MediaCommand::Configure {
            id: eb.id,
            config: config(&b),
        },
        MediaCommand::Bridge { a: ea.id, b: eb.id },
    ] {
        engine.execute(command);
    }
    engine.flush();
    let mut buf = [0u8; 2048];
    for seq in 0..5u16 {
        a.send_to(&rtp_packet(0, seq, 0x11), ea.rtp).unwrap();
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (172, eb.rtp));
        b.send_to(&rtp_packet(0, seq, 0x22), eb.rtp).unwrap();
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (172, ea.rtp));
    }
    // Activating twice changes nothing.
    engine.activate(ea.id, None);
    engine.release(spare.id);
    assert_eq!(
        engine.ports_available(),
        1,
        "the unused pair's port is back"
    );
    let again = engine.reserve().unwrap();
    assert_eq!(again.rtp, spare.rtp, "the same pair, bound anew");
    for id in [ea.id, eb.id] {
        engine.execute(MediaCommand::Release { id });
    }
    engine.flush();
    let mut released = Vec::new();
    for _ in 0..2 {
        match recv_event(&mut events) {
            MediaEvent::Released { id, stats } => released.push((id, stats.packets_in)),
            other => panic!("{other:?}"),
        }
    }
    released.sort_by_key(|(id, _)| *id);
    assert_eq!(released, [(ea.id, 5), (eb.id, 5)]);
    assert!(events.try_recv().is_err(), "nothing for the unused pair");
    engine.shutdown();
}

/// A packet of a 1 kHz tone, μ-law, from source `ssrc`.
fn tone_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0u8; 172];
    rtp::write_header(&mut p, 0, false, seq, seq as u32 * 160, ssrc);
    for (i, b) in p[12..].iter_mut().enumerate() {
        let t = (seq as usize * 160 + i) as f64 / 8000.0;
        *b =
            g711::linear_to_ulaw((8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16);
    }
    p
}

/// An engine on `ip` with the kernel relay on, its ports from `ports`.
fn kernel_engine(
    ip: &str,
    ports: std::ops::RangeInclusive<u16>,
) -> (MediaEngine, mpsc::UnboundedReceiver<MediaEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = MediaConfig {
        bind_ip: ip.parse().unwrap(),
        advertise_ip: ip.parse().unwrap(),
        ports,
        threads: 1,
        rtp_timeout: Duration::from_secs(60),
        learn_window: Duration::from_secs(3),
        kernel_relay: true,
        bind_ahead: switchboard_media::BIND_AHEAD,
    };
    (MediaEngine::start(config, tx).unwrap(), rx)
}

/// `sent` packets of a tone each way between `a` and `b` through the bridge `ea`–`eb`: each
/// arrives before the next is sent, A's unchanged at B; then every packet is counted and the
/// kernel relayed all but the first few of each direction.
fn tone_both_ways(
    engine: &MediaEngine,
    (a, ea): (&UdpSocket, &Endpoint),
    (b, eb): (&UdpSocket, &Endpoint),
    sent: u16,
) -> u64 {
    let mut buf = [0u8; 2048];
    for seq in 0..sent {
        let packet = tone_packet(seq, 0x1234);
        a.send_to(&packet, ea.rtp).unwrap();
        let (n, from) = b
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("packet {seq} to B: {e}"));
        assert_eq!(
            from, eb.rtp,
            "packet {seq} from the bridged endpoint's port"
        );
        assert_eq!(
            &buf[..n],
            &packet[..],
            "packet {seq}: the tone, unchanged, in sequence"
        );
        b.send_to(&tone_packet(seq, 0x5678), eb.rtp).unwrap();
        let (n, from) = a
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("packet {seq} to A: {e}"));
        assert_eq!((n, from), (172, ea.rtp));
        assert_eq!(rtp::sequence(&buf), seq);
    }
    // The workers look at the kernel's counters every half second.
    let total = 2 * sent as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while engine.relayed_total() < total && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(engine.relayed_total(), total, "every packet counted once");
    let in_kernel = engine.relayed_in_kernel_total();
    assert!(
        in_kernel >= 2 * (sent as u64 - 30),
        "the kernel relayed {in_kernel} of {total}"
    );
    in_kernel
}

/// The kernel relay (needs CAP_BPF and CAP_NET_ADMIN: README's test command runs as root)
/// takes a plain bridge once both peers have latched; the audio arrives unchanged and in
/// sequence, a stranger's packets still do not, a new stream brings the direction back to
/// userspace with its numbering continued, and the final counters hold every packet.
#[test]
fn the_kernel_relays_a_plain_bridge_and_gives_it_back() {
    let (engine, mut events) = kernel_engine("127.0.0.1", 31220..=31239);
    let (a, b) = (phone(), phone());
    let (ea, eb) = bridged(&engine, a.local_addr().unwrap(), SourcePolicy::Strict, &b);
    const SENT: u16 = 300;
    let in_kernel = tone_both_ways(&engine, (&a, &ea), (&b, &eb), SENT);
    let mut buf = [0u8; 2048];

    // A stranger, even one that copies the stream's SSRC, is not forwarded.
    let stranger = phone();
    stranger
        .send_to(&tone_packet(SENT, 0x1234), ea.rtp)
        .unwrap();
    assert_eq!(heard(&b), None, "the stranger's packet reached the peer");

    // Another stream from A: the direction comes back to userspace, which continues the
    // numbering B was sent, and goes to the kernel again once the new stream has settled.
    const OTHER: u16 = 40;
    for i in 0..OTHER {
        let mut other = tone_packet(9000 + i, 0x9999);
        other[12] = 0x55;
        a.send_to(&other, ea.rtp).unwrap();
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(n, 172);
        assert_eq!(rtp::ssrc(&buf), 0x1234, "B's stream keeps its SSRC");
        assert_eq!(rtp::sequence(&buf), SENT + i, "and its numbering");
        assert_eq!(
            rtp::marker(&buf),
            i == 0,
            "the marker flags the change of source"
        );
        assert_eq!(buf[12], 0x55);
    }
    let total = 2 * SENT as u64 + OTHER as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while engine.relayed_total() < total && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(engine.relayed_total(), total);
    assert!(
        engine.relayed_in_kernel_total() > in_kernel,
        "the kernel took the new stream"
    );

    // A command about either end takes the direction back first: held, B is sent nothing.
    engine.configure(
        eb.id,
        EndpointConfig {
            remote_rtp: Some(b.local_addr().unwrap()),
            payload: PCMU,
            expect_rtp: true,
            source: SourcePolicy::Strict,
            held: true,
            ..Default::default()
        },
    );
    engine.barrier();
    a.send_to(&tone_packet(9000 + OTHER, 0x9999), ea.rtp)
        .unwrap();
    assert_eq!(heard(&b), None, "a held peer was sent audio");

    let (a_stats, b_stats) = release_both(&engine, &mut events, &ea, &eb);
    let from_a = SENT as u64 + OTHER as u64;
    assert_eq!(a_stats.packets_in, from_a + 1, "{a_stats:?}");
    assert_eq!(a_stats.packets_out, SENT as u64, "{a_stats:?}");
    assert_eq!(a_stats.lost, 0, "{a_stats:?}");
    assert_eq!(b_stats.packets_in, SENT as u64, "{b_stats:?}");
    assert_eq!(b_stats.packets_out, from_a, "{b_stats:?}");
    assert_eq!(b_stats.bytes_out, from_a * 172, "{b_stats:?}");
}

/// Runs `ip` (iproute2) with `args`, which must succeed.
fn ip(args: &str) {
    let status = std::process::Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .expect("ip (iproute2)");
    assert!(status.success(), "ip {args}");
}

/// A named network namespace, deleted when dropped.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// The kernel relay between two peers on another host: each stream arrives on an Ethernet
/// interface and leaves by it again toward the other peer, its next hop's link address from
/// the neighbour table. This thread (and so the engine's threads, started from it) enters a
/// network namespace of its own (CAP_SYS_ADMIN: README's test command runs as root); the
/// peers live in a second one, at the other end of a veth pair. Nothing leaves the two.
#[test]
fn the_kernel_relays_between_peers_on_another_host() {
    // SAFETY: unshare only changes this thread's namespaces; no memory is involved.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        panic!(
            "a network namespace of the test's own needs CAP_SYS_ADMIN (run as root): {}",
            std::io::Error::last_os_error()
        );
    }
    let name = format!("sbkernel{}", std::process::id());
    ip("link set lo up");
    ip(&format!("netns add {name}"));
    let _peers_host = Namespace(name.clone());
    ip(&format!(
        "link add sbk0 type veth peer name sbk1 netns {name}"
    ));
    ip("addr add 10.77.0.1/24 dev sbk0");
    ip("link set sbk0 up");
    for args in [
        "addr add 10.77.0.2/24 dev sbk1",
        "addr add 10.77.0.3/24 dev sbk1",
        "link set sbk1 up",
        "link set lo up",
    ] {
        ip(&format!("-n {name} {args}"));
    }
    // The peers' sockets, made in their namespace (a socket stays in the one it was made in).
    let (a, b) = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(format!("/var/run/netns/{name}")).unwrap();
        // SAFETY: setns only changes this thread's namespace, to one the descriptor names.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        (phone_at("10.77.0.2"), phone_at("10.77.0.3"))
    })
    .join()
    .unwrap();

    let (engine, mut events) = kernel_engine("10.77.0.1", 31240..=31259);
    let (ea, eb) = bridged(&engine, a.local_addr().unwrap(), SourcePolicy::Strict, &b);
    const SENT: u16 = 200;
    tone_both_ways(&engine, (&a, &ea), (&b, &eb), SENT);
    for stats in <[_; 2]>::from(release_both(&engine, &mut events, &ea, &eb)) {
        assert_eq!((stats.packets_in, stats.packets_out), (200, 200));
        assert_eq!(stats.lost, 0);
    }
}
