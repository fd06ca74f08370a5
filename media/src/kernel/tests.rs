//! The program run by the kernel over packets (`BPF_PROG_TEST_RUN`): what it claims, how it
//! rewrites, what it leaves alone. Needs CAP_BPF, as README's test command has (root).

use super::program::{TC_ACT_REDIRECT, TCX_NEXT, TCX_PASS};
use super::*;
use std::net::Ipv4Addr;

const PEER_A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 40_000);
const OURS_A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 20_000);
const OURS_B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 20_002);
const PEER_B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 41_000);

fn relay() -> KernelRelay {
    KernelRelay::load().unwrap_or_else(|e| {
        panic!("the kernel relay needs CAP_BPF (run as root, as README's test command does): {e}")
    })
}

fn flow() -> Flow {
    Flow {
        to: OURS_A,
        from: PEER_A,
        out_from: OURS_B,
        out_to: PEER_B,
        audio: (0, 0),
        event: Some((101, 96)),
        ssrc_in: 0x1122_3344,
        ssrc_out: 0xa0b0_c0d0,
        seq_offset: 1000,
        ts_offset: 0xffff_ff00,
    }
}

fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet frame with IPv4, UDP (checksummed) and RTP.
fn frame(from: SocketAddrV4, to: SocketAddrV4, pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let payload: Vec<u8> = (0..160).map(|i| (i * 7) as u8).collect();
    let mut rtp = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rtp[2..4].copy_from_slice(&seq.to_be_bytes());
    rtp[4..8].copy_from_slice(&ts.to_be_bytes());
    rtp[8..12].copy_from_slice(&ssrc.to_be_bytes());
    rtp.extend_from_slice(&payload);
    let udp_len = 8 + rtp.len();
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    // A TTL of 50: hops away, as a peer's packets arrive.
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 50, 17, 0, 0];
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&from.ip().octets());
    ip.extend_from_slice(&to.ip().octets());
    let c = fold(sum16(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = Vec::new();
    udp.extend_from_slice(&from.port().to_be_bytes());
    udp.extend_from_slice(&to.port().to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&rtp);
    let c = udp_checksum(&f[26..34], &udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

fn udp_checksum(addresses: &[u8], udp: &[u8]) -> u16 {
    let pseudo = sum16(addresses) + 17 + udp.len() as u32;
    fold(pseudo + sum16(udp))
}

/// Runs the program over `packet`: its verdict, and the frame as it left.
fn run(relay: &KernelRelay, packet: &[u8]) -> (i32, Vec<u8>) {
    let mut out = vec![0u8; packet.len() + 64];
    let (code, len) = bpf::test_run(&relay.prog, packet, &mut out).expect("test run");
    out.truncate(len);
    (code, out)
}

fn addr(b: &[u8]) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(b[0], b[1], b[2], b[3]),
        u16::from_be_bytes([b[4], b[5]]),
    )
}

#[test]
fn a_flow_packet_is_rewritten_for_the_bridged_peer_with_valid_checksums() {
    let relay = relay();
    relay.install(&flow()).unwrap();
    let packet = frame(PEER_A, OURS_A, 0, 65_000, 0x100, 0x1122_3344);
    let (code, out) = run(&relay, &packet);
    assert_eq!(code, TCX_PASS);
    assert_eq!(out.len(), packet.len());
    // Addresses and ports.
    assert_eq!(
        addr(&[&out[26..30], &out[34..36]].concat()),
        OURS_B,
        "source"
    );
    assert_eq!(
        addr(&[&out[30..34], &out[36..38]].concat()),
        PEER_B,
        "destination"
    );
    // Sequence moved by 1000 (wrapping), timestamp by -256 (wrapping), SSRC replaced.
    assert_eq!(out[43], 0);
    assert_eq!(
        u16::from_be_bytes([out[44], out[45]]),
        65_000u16.wrapping_add(1000)
    );
    assert_eq!(u32::from_be_bytes(out[46..50].try_into().unwrap()), 0);
    assert_eq!(
        u32::from_be_bytes(out[50..54].try_into().unwrap()),
        0xa0b0_c0d0
    );
    assert_eq!(&out[54..], &packet[54..], "the payload is untouched");
    assert_eq!(
        (out[22], out[23]),
        (64, 17),
        "the default TTL, as from our socket"
    );
    // Checksums hold over the new headers.
    assert_eq!(fold(sum16(&out[14..34])), 0, "IP header checksum");
    assert_eq!(
        udp_checksum(&out[26..34], &out[34..]),
        0,
        "UDP checksum (a valid one sums to zero)"
    );
    let c = relay.counters(OURS_A).unwrap().expect("flow");
    assert_eq!((c.packets, c.bytes), (1, 172));
    assert_eq!(
        (c.last_in_seq, c.last_out_seq),
        (65_000, 65_000u16.wrapping_add(1000))
    );
    assert_eq!(c.last_out_ts, 0);
    assert!(c.last_ns > 0 && c.last_ns <= monotonic_ns());
}

#[test]
fn events_are_remapped_and_the_marker_kept() {
    let relay = relay();
    relay.install(&flow()).unwrap();
    let (code, out) = run(
        &relay,
        &frame(PEER_A, OURS_A, 0x80 | 101, 7, 8, 0x1122_3344),
    );
    assert_eq!(code, TCX_PASS);
    assert_eq!(out[43], 0x80 | 96);
}

#[test]
fn what_the_flow_does_not_describe_is_left_to_the_socket_untouched() {
    let relay = relay();
    relay.install(&flow()).unwrap();
    let stranger = SocketAddrV4::new(*PEER_A.ip(), 40_002);
    let other_ip = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 9), PEER_A.port());
    let cases = [
        (
            "another source port",
            frame(stranger, OURS_A, 0, 1, 1, 0x1122_3344),
        ),
        (
            "another source address",
            frame(other_ip, OURS_A, 0, 1, 1, 0x1122_3344),
        ),
        ("another SSRC", frame(PEER_A, OURS_A, 0, 1, 1, 0x5555_5555)),
        (
            "a payload type the flow does not map",
            frame(PEER_A, OURS_A, 13, 1, 1, 0x1122_3344),
        ),
        (
            "another port of ours",
            frame(PEER_A, OURS_B, 0, 1, 1, 0x1122_3344),
        ),
        ("RTCP", {
            let mut f = frame(PEER_A, OURS_A, 0, 1, 1, 0x1122_3344);
            f[43] = 200;
            f
        }),
        ("a fragment", {
            let mut f = frame(PEER_A, OURS_A, 0, 1, 1, 0x1122_3344);
            f[20] = 0x20;
            f
        }),
        ("lengths that disagree with the frame", {
            let mut f = frame(PEER_A, OURS_A, 0, 1, 1, 0x1122_3344);
            f.truncate(f.len() - 10);
            f
        }),
        ("not RTP version 2", {
            let mut f = frame(PEER_A, OURS_A, 0, 1, 1, 0x1122_3344);
            f[42] = 0x40;
            f
        }),
        ("too short to be RTP", {
            let f = frame(PEER_A, OURS_A, 0, 1, 1, 0x1122_3344);
            f[..50].to_vec()
        }),
    ];
    for (what, packet) in cases {
        let (code, out) = run(&relay, &packet);
        assert_eq!(code, TCX_NEXT, "{what}");
        assert_eq!(out, packet, "{what}: unchanged");
    }
    let c = relay.counters(OURS_A).unwrap().expect("flow");
    assert_eq!(c.packets, 0, "nothing claimed");
}

#[test]
fn a_removed_flow_gives_its_counters_back_and_claims_nothing_more() {
    let relay = relay();
    relay.install(&flow()).unwrap();
    let packet = frame(PEER_A, OURS_A, 0, 1, 1, 0x1122_3344);
    for _ in 0..3 {
        assert_eq!(run(&relay, &packet).0, TCX_PASS);
    }
    let c = relay.remove(OURS_A).unwrap().expect("flow");
    assert_eq!(c.packets, 3);
    assert_eq!(relay.remove(OURS_A).unwrap(), None);
    assert_eq!(run(&relay, &packet), (TCX_NEXT, packet.clone()));
}

#[test]
fn a_packet_for_a_peer_elsewhere_leaves_by_its_interface() {
    let relay = relay();
    let far = Flow {
        out_to: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 4000),
        ..flow()
    };
    relay.install_to(&far, 1).unwrap();
    let (code, out) = run(&relay, &frame(PEER_A, OURS_A, 0, 5, 5, 0x1122_3344));
    assert_eq!(code, TC_ACT_REDIRECT);
    assert_eq!(addr(&[&out[30..34], &out[36..38]].concat()), far.out_to);
    assert_eq!(out[22], 64, "TTL");
    assert_eq!(fold(sum16(&out[14..34])), 0, "IP header checksum");
    assert_eq!(udp_checksum(&out[26..34], &out[34..]), 0, "UDP checksum");
}

#[test]
fn only_peers_the_program_can_reach_are_taken() {
    // Loaded, attached nowhere: no interface to send a peer elsewhere's packets out of.
    let relay = relay();
    let far = Flow {
        out_to: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 4000),
        ..flow()
    };
    assert_eq!(
        relay.install(&far).unwrap_err().kind(),
        io::ErrorKind::Unsupported
    );
    // A peer here, fed from elsewhere: its packets would arrive with our own address as
    // their source from outside, which the stack refuses.
    let fed_from_outside = Flow {
        from: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 7), 4000),
        ..flow()
    };
    assert_eq!(
        relay.install(&fed_from_outside).unwrap_err().kind(),
        io::ErrorKind::Unsupported
    );
    relay.install(&flow()).expect("both peers on this host");
}
