//! pcap files of SIP messages (a call's ladder, for Wireshark and sngrep): the classic libpcap
//! format with LINKTYPE_RAW, each message one UDP datagram in an IPv4 or IPv6 packet between
//! the addresses it went between, whatever transport carried it (a TCP or TLS stream has no
//! packets of its own to show once decrypted and framed). Written by hand: a fixed file header
//! and, per message, a record header, an IP header and a UDP header; the pcap crates bring a
//! reader and parsers this has no use for.

use std::net::{IpAddr, SocketAddr};

/// LINKTYPE_RAW: packets begin with their IP header.
const LINKTYPE_RAW: u32 = 101;
/// The largest UDP payload an IPv4 packet holds.
const MAX_PAYLOAD: usize = 65_507;

/// One message: when (Unix milliseconds), from, to, its bytes.
pub struct Packet<'a> {
    pub at_ms: i64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: &'a [u8],
}

/// A pcap file of `packets`, in their order.
pub fn file(packets: &[Packet<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + packets.iter().map(|p| p.data.len() + 64).sum::<usize>());
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    for p in packets {
        let data = &p.data[..p.data.len().min(MAX_PAYLOAD)];
        let packet = match (unmapped(p.from.ip()), unmapped(p.to.ip())) {
            (IpAddr::V4(s), IpAddr::V4(d)) => ipv4(s.octets(), d.octets(), udp(p, data, None)),
            (s, d) => {
                let (s, d) = (v6(s), v6(d));
                ipv6(s, d, udp(p, data, Some((s, d))))
            }
        };
        let secs = p.at_ms.div_euclid(1000);
        let micros = p.at_ms.rem_euclid(1000) * 1000;
        out.extend_from_slice(&(secs as u32).to_le_bytes());
        out.extend_from_slice(&(micros as u32).to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        out.extend_from_slice(&packet);
    }
    out
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A UDP header and payload; over IPv6 with its checksum (mandatory there), over IPv4 none.
fn udp(p: &Packet<'_>, data: &[u8], v6: Option<([u8; 16], [u8; 16])>) -> Vec<u8> {
    let len = (8 + data.len()) as u16;
    let mut out = Vec::with_capacity(len as usize);
    out.extend_from_slice(&p.from.port().to_be_bytes());
    out.extend_from_slice(&p.to.port().to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(data);
    if let Some((s, d)) = v6 {
        let mut pseudo = Vec::with_capacity(40 + out.len());
        pseudo.extend_from_slice(&s);
        pseudo.extend_from_slice(&d);
        pseudo.extend_from_slice(&u32::from(len).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        pseudo.extend_from_slice(&out);
        let sum = match checksum(&pseudo) {
            0 => 0xffff,
            s => s,
        };
        out[6..8].copy_from_slice(&sum.to_be_bytes());
    }
    out
}

fn ipv4(src: [u8; 4], dst: [u8; 4], udp: Vec<u8>) -> Vec<u8> {
    let total = (20 + udp.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(&udp);
    h
}

fn ipv6(src: [u8; 16], dst: [u8; 16], udp: Vec<u8>) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    h.extend_from_slice(&[17, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&udp);
    h
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_one_udp_datagram_in_an_ip_packet_with_valid_checksums() {
        let data = b"INVITE sip:a@b SIP/2.0\r\n\r\n";
        let p = Packet {
            at_ms: 1_700_000_000_123,
            from: "10.0.0.1:5060".parse().unwrap(),
            to: "10.0.0.2:5070".parse().unwrap(),
            data,
        };
        let file = file(&[p]);
        assert_eq!(&file[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(file[20..24].try_into().unwrap()), 101);
        let record = &file[24..];
        assert_eq!(
            u32::from_le_bytes(record[0..4].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(
            u32::from_le_bytes(record[4..8].try_into().unwrap()),
            123_000
        );
        let len = u32::from_le_bytes(record[8..12].try_into().unwrap()) as usize;
        let ip = &record[16..];
        assert_eq!(len, ip.len());
        assert_eq!(len, 20 + 8 + data.len());
        assert_eq!(checksum(&ip[..20]), 0, "the IPv4 header sums to zero");
        assert_eq!(&ip[12..16], &[10, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), 5070);
        assert_eq!(&ip[28..], data);
        // Over IPv6 the UDP checksum covers the pseudo-header: the sum with it is zero.
        let p = Packet {
            at_ms: 0,
            from: "[2001:db8::1]:5060".parse().unwrap(),
            to: "[2001:db8::2]:5060".parse().unwrap(),
            data,
        };
        let file = super::file(&[p]);
        let ip = &file[24 + 16..];
        assert_eq!(ip[0] >> 4, 6);
        let udp = &ip[40..];
        let mut pseudo = ip[8..40].to_vec();
        pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        pseudo.extend_from_slice(udp);
        assert_eq!(checksum(&pseudo), 0);
    }
}
