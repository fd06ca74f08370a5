//! The per-packet relay decision, free of sockets so it can be tested and benchmarked alone:
//! given a packet received from one endpoint's peer, rewrite it in place for the bridged
//! endpoint's peer, or say why it is dropped. No allocation, no copy of the payload.

use crate::g711::{ALAW_TO_ULAW, Law, ULAW_TO_ALAW, transcode_in_place};
use crate::rtp;

/// The payload types negotiated with one endpoint's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PayloadMap {
    /// The audio payload type and its law.
    pub audio: Option<(u8, Law)>,
    /// RFC 4733 telephone-event payload type.
    pub telephone_event: Option<u8>,
}

/// What a received payload type is, for a given peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Audio(Law),
    Event,
}

impl PayloadMap {
    /// Whether a packet of payload type `pt` is media this peer may send.
    pub fn knows(&self, pt: u8) -> bool {
        self.classify(pt).is_some()
    }

    fn classify(&self, pt: u8) -> Option<Kind> {
        match self.audio {
            Some((p, law)) if p == pt => return Some(Kind::Audio(law)),
            _ => {}
        }
        if self.telephone_event == Some(pt) {
            return Some(Kind::Event);
        }
        // Peers sometimes switch to the other offered static law without a new offer.
        match pt {
            0 => Some(Kind::Audio(Law::Ulaw)),
            8 => Some(Kind::Audio(Law::Alaw)),
            _ => None,
        }
    }
}

/// Why a packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    NotRtp,
    UnknownPayloadType,
    /// The far side negotiated no telephone-event.
    NoEventPayload,
    NoAudioPayload,
}

/// SSRC, sequence and timestamp continuity of the stream we send to one peer: when the source
/// behind it changes (another SSRC arrives, or we generate audio ourselves), the outgoing stream
/// keeps its SSRC and continues its numbering, and the marker bit flags the discontinuity
/// (RFC 3550 §5.1, RFC 7667 §3.2.1.3).
#[derive(Debug, Clone, Copy, Default)]
pub struct Outbound {
    started: bool,
    ssrc: u32,
    /// The relayed source the offsets belong to; `None` after a generated packet.
    in_ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    /// Samples per packet last seen, to place the first packet of a new source.
    last_step: u32,
}

impl Outbound {
    fn rewrite(&mut self, buf: &mut [u8]) {
        let (ssrc, seq, ts) = (rtp::ssrc(buf), rtp::sequence(buf), rtp::timestamp(buf));
        match self.in_ssrc {
            Some(current) if current == ssrc => {}
            _ if !self.started => {
                self.started = true;
                self.ssrc = ssrc;
                self.in_ssrc = Some(ssrc);
            }
            _ => {
                self.in_ssrc = Some(ssrc);
                self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_offset = self.last_ts.wrapping_add(self.step()).wrapping_sub(ts);
                rtp::set_marker(buf);
            }
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        if out_seq == self.last_seq.wrapping_add(1) && out_ts > self.last_ts {
            self.last_step = out_ts - self.last_ts;
        }
        if out_seq.wrapping_sub(self.last_seq) < 0x8000 {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
        }
        rtp::set_ssrc(buf, self.ssrc);
        rtp::set_sequence(buf, out_seq);
        rtp::set_timestamp(buf, out_ts);
    }

    /// The rewrite of a steady stream from source `in_ssrc`: the SSRC it is given and the
    /// offsets added to its sequence numbers and timestamps (the kernel relay applies them).
    pub fn steady(&self, in_ssrc: u32) -> Option<(u32, u16, u32)> {
        (self.started && self.in_ssrc == Some(in_ssrc)).then_some((
            self.ssrc,
            self.seq_offset,
            self.ts_offset,
        ))
    }

    /// The last sequence number and timestamp sent while the stream was relayed elsewhere.
    pub fn resume(&mut self, last_seq: u16, last_ts: u32) {
        if last_seq.wrapping_sub(self.last_seq) < 0x8000 {
            self.last_seq = last_seq;
            self.last_ts = last_ts;
        }
    }

    fn step(&self) -> u32 {
        if self.last_step == 0 {
            160
        } else {
            self.last_step
        }
    }

    fn start_if_new(&mut self) {
        if !self.started {
            self.started = true;
            (self.ssrc, self.last_seq, self.last_ts) =
                (rand::random(), rand::random(), rand::random());
        }
    }

    /// The timestamp that continues what was sent (a random one for a new stream): where
    /// generated audio starts.
    pub fn continuation_ts(&mut self) -> u32 {
        self.start_if_new();
        self.last_ts.wrapping_add(self.step())
    }

    /// SSRC and sequence number for a packet we generate with timestamp `ts`. Relayed packets
    /// that follow are renumbered to continue after it.
    pub fn generated(&mut self, ts: u32) -> (u32, u16) {
        self.start_if_new();
        let step = ts.wrapping_sub(self.last_ts);
        if step != 0 && step < 0x8000 {
            self.last_step = step;
        }
        self.last_seq = self.last_seq.wrapping_add(1);
        self.last_ts = ts;
        self.in_ssrc = None;
        (self.ssrc, self.last_seq)
    }
}

/// Rewrites a packet from the peer described by `from` for the peer described by `to`:
/// payload type mapping, G.711 law conversion by table when the laws differ, telephone-event
/// remapping, and SSRC/sequence/timestamp continuity. The buffer is changed in place.
pub fn prepare(
    buf: &mut [u8],
    from: &PayloadMap,
    to: &PayloadMap,
    out: &mut Outbound,
) -> Result<(), DropReason> {
    if !rtp::is_rtp(buf) {
        return Err(DropReason::NotRtp);
    }
    match from
        .classify(rtp::payload_type(buf))
        .ok_or(DropReason::UnknownPayloadType)?
    {
        Kind::Event => {
            let pt = to.telephone_event.ok_or(DropReason::NoEventPayload)?;
            rtp::set_payload_type(buf, pt);
        }
        Kind::Audio(law) => {
            let (pt, out_law) = to.audio.ok_or(DropReason::NoAudioPayload)?;
            if law != out_law {
                let range = rtp::payload_range(buf).ok_or(DropReason::NotRtp)?;
                let table = if law == Law::Ulaw {
                    &ULAW_TO_ALAW
                } else {
                    &ALAW_TO_ULAW
                };
                transcode_in_place(&mut buf[range], table);
            }
            rtp::set_payload_type(buf, pt);
        }
    }
    out.rewrite(buf);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::{alaw_to_linear, linear_to_ulaw};

    fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; 172];
        rtp::write_header(&mut p, pt, false, seq, ts, ssrc);
        p
    }

    const PCMA: PayloadMap = PayloadMap {
        audio: Some((8, Law::Alaw)),
        telephone_event: Some(101),
    };
    const PCMU: PayloadMap = PayloadMap {
        audio: Some((0, Law::Ulaw)),
        telephone_event: Some(96),
    };

    #[test]
    fn same_codec_passes_through_unchanged() {
        let mut out = Outbound::default();
        let mut p = packet(8, 100, 1000, 0xabc, 0x55);
        let orig = p.clone();
        prepare(&mut p, &PCMA, &PCMA, &mut out).unwrap();
        assert_eq!(p, orig);
    }

    #[test]
    fn transcodes_alaw_to_ulaw_and_remaps_events() {
        let mut out = Outbound::default();
        let mut p = packet(8, 1, 0, 1, 0xd5); // A-law silence
        prepare(&mut p, &PCMA, &PCMU, &mut out).unwrap();
        assert_eq!(rtp::payload_type(&p), 0);
        assert!(
            p[12..]
                .iter()
                .all(|&b| b == linear_to_ulaw(alaw_to_linear(0xd5)))
        );
        let mut ev = packet(101, 2, 0, 1, 0);
        prepare(&mut ev, &PCMA, &PCMU, &mut out).unwrap();
        assert_eq!(rtp::payload_type(&ev), 96);
        let no_te = PayloadMap {
            telephone_event: None,
            ..PCMU
        };
        assert_eq!(
            prepare(&mut packet(101, 3, 0, 1, 0), &PCMA, &no_te, &mut out),
            Err(DropReason::NoEventPayload)
        );
        assert_eq!(
            prepare(&mut packet(13, 3, 0, 1, 0), &PCMA, &PCMU, &mut out),
            Err(DropReason::UnknownPayloadType)
        );
        assert_eq!(
            prepare(&mut [1, 2, 3], &PCMA, &PCMU, &mut out),
            Err(DropReason::NotRtp)
        );
    }

    #[test]
    fn generated_packets_continue_the_stream_and_relay_resumes_after_them() {
        let mut out = Outbound::default();
        for i in 0..2u16 {
            let mut p = packet(8, 100 + i, 1000 + 160 * i as u32, 7, 0);
            prepare(&mut p, &PCMA, &PCMA, &mut out).unwrap();
        }
        let ts = out.continuation_ts();
        assert_eq!(ts, 1000 + 320);
        assert_eq!(out.generated(ts), (7, 102));
        assert_eq!(out.generated(ts + 160), (7, 103));
        // The relayed source comes back: renumbered after the generated packets, marked.
        let mut p = packet(8, 102, 1320, 7, 0);
        prepare(&mut p, &PCMA, &PCMA, &mut out).unwrap();
        assert_eq!(
            (
                rtp::ssrc(&p),
                rtp::sequence(&p),
                rtp::timestamp(&p),
                rtp::marker(&p)
            ),
            (7, 104, 1640, true)
        );
    }

    #[test]
    fn new_source_continues_the_outgoing_stream() {
        let mut out = Outbound::default();
        for i in 0..3u16 {
            let mut p = packet(8, 500 + i, 8000 + 160 * i as u32, 111, 0);
            prepare(&mut p, &PCMA, &PCMA, &mut out).unwrap();
        }
        let mut p = packet(8, 9, 77_000, 222, 0);
        prepare(&mut p, &PCMA, &PCMA, &mut out).unwrap();
        assert_eq!(rtp::ssrc(&p), 111, "the outgoing SSRC stays");
        assert_eq!(rtp::sequence(&p), 503);
        assert_eq!(rtp::timestamp(&p), 8000 + 160 * 3);
        assert!(rtp::marker(&p));
        let mut q = packet(8, 10, 77_160, 222, 0);
        prepare(&mut q, &PCMA, &PCMA, &mut out).unwrap();
        assert_eq!(
            (rtp::sequence(&q), rtp::timestamp(&q)),
            (504, 8000 + 160 * 4)
        );
    }
}
