//! RTP fixed header (RFC 3550 §5.1), read and rewritten in place in the receive buffer.
//!
//! Hand-written instead of using the `rtp` crate: its `Packet` unmarshals into owned header and
//! payload structures, an allocation and copy per packet, while the relay only needs to read a
//! few fields and overwrite PT, sequence number, timestamp and SSRC where the packet lies.

/// Smallest valid RTP packet: the 12-byte fixed header.
pub const HEADER_LEN: usize = 12;

/// Whether `buf` holds something that looks like RTP version 2 with a complete header.
pub fn is_rtp(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN && buf[0] >> 6 == 2 && header_len(buf).is_some_and(|h| h <= buf.len())
}

/// RTCP packet types 200–204 share the second byte range that RTP marker+PT would use
/// (RFC 5761 §4); used to reject RTCP arriving on an RTP port.
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (200..=204).contains(&buf[1])
}

/// Length of the header including CSRCs and the extension, if the buffer holds it all.
pub fn header_len(buf: &[u8]) -> Option<usize> {
    let cc = (buf.first()? & 0x0f) as usize;
    let mut len = HEADER_LEN + 4 * cc;
    if buf[0] & 0x10 != 0 {
        let ext = buf.get(len + 2..len + 4)?;
        len += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    Some(len)
}

/// Payload bounds, excluding padding (RFC 3550 §5.1 P bit).
pub fn payload_range(buf: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = header_len(buf)?;
    let mut end = buf.len();
    if buf[0] & 0x20 != 0 {
        let pad = *buf.last()? as usize;
        end = end.checked_sub(pad)?;
    }
    (start <= end).then_some(start..end)
}

pub fn payload_type(buf: &[u8]) -> u8 {
    buf[1] & 0x7f
}

pub fn marker(buf: &[u8]) -> bool {
    buf[1] & 0x80 != 0
}

pub fn sequence(buf: &[u8]) -> u16 {
    u16::from_be_bytes([buf[2], buf[3]])
}

pub fn timestamp(buf: &[u8]) -> u32 {
    u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]])
}

pub fn ssrc(buf: &[u8]) -> u32 {
    u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]])
}

pub fn set_payload_type(buf: &mut [u8], pt: u8) {
    buf[1] = (buf[1] & 0x80) | (pt & 0x7f);
}

pub fn set_marker(buf: &mut [u8]) {
    buf[1] |= 0x80;
}

pub fn set_sequence(buf: &mut [u8], seq: u16) {
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
}

pub fn set_timestamp(buf: &mut [u8], ts: u32) {
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
}

pub fn set_ssrc(buf: &mut [u8], ssrc: u32) {
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Writes a fixed header (no CSRC, no extension) at the start of `buf`.
pub fn write_header(buf: &mut [u8], pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (pt & 0x7f) | if marker { 0x80 } else { 0 };
    set_sequence(buf, seq);
    set_timestamp(buf, ts);
    set_ssrc(buf, ssrc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rewrites_in_place() {
        let mut p = [0u8; 172];
        write_header(&mut p, 8, true, 65535, 0xdead_beef, 42);
        assert!(is_rtp(&p) && !is_rtcp(&p));
        assert_eq!(
            (
                payload_type(&p),
                marker(&p),
                sequence(&p),
                timestamp(&p),
                ssrc(&p)
            ),
            (8, true, 65535, 0xdead_beef, 42)
        );
        set_payload_type(&mut p, 0);
        assert!(marker(&p), "marker survives a PT change");
        assert_eq!(payload_range(&p), Some(12..172));
    }

    #[test]
    fn csrc_extension_and_padding() {
        let mut p = vec![0u8; 12 + 4 + 4 + 4 + 10];
        p[0] = 0x80 | 0x20 | 0x10 | 1; // padding, extension, one CSRC
        p[16 + 2..16 + 4].copy_from_slice(&1u16.to_be_bytes()); // one extension word
        *p.last_mut().unwrap() = 3;
        assert_eq!(header_len(&p), Some(24));
        assert_eq!(payload_range(&p), Some(24..p.len() - 3));
        assert!(!is_rtp(&p[..20]), "truncated extension");
    }
}
