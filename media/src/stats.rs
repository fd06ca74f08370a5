//! Per-stream receive statistics: packets, bytes, loss and reordering from RTP sequence numbers
//! (RFC 3550 Appendix A.1 and A.3, without the probation step).

/// Counters of one endpoint, in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Expected minus received, from sequence numbers (never negative).
    pub lost: u64,
    /// Packets that arrived with a sequence number older than one already seen.
    pub out_of_order: u64,
    /// Packets dropped by the relay (no peer, unknown payload type, wrong source).
    pub dropped: u64,
}

impl EndpointStats {
    /// A mean opinion score estimated from the loss of what arrived (ITU-T G.107's E-model
    /// with only packet loss impairing a G.711 call with loss concealment, G.113 Appendix I:
    /// Ie = 0, Bpl = 25.1; no delay or jitter term, which the relay does not measure). 4.41
    /// with no loss, about 3.9 at 5 %.
    pub fn estimated_mos(&self) -> f64 {
        let expected = self.packets_in + self.lost;
        let loss_percent = if expected == 0 {
            0.0
        } else {
            100.0 * self.lost as f64 / expected as f64
        };
        let impairment = 95.0 * loss_percent / (loss_percent + 25.1);
        let r = 93.2 - impairment;
        if r <= 0.0 {
            1.0
        } else {
            (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
        }
    }
}

/// Sequence tracking of one SSRC.
#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    ssrc: u32,
    base: u32,
    max: u16,
    cycles: u32,
    received: u64,
    out_of_order: u64,
    last_used: u64,
}

impl Stream {
    fn start(ssrc: u32, seq: u16, now: u64) -> Self {
        Self {
            ssrc,
            base: seq as u32,
            max: seq,
            cycles: 0,
            received: 1,
            out_of_order: 0,
            last_used: now,
        }
    }

    fn update(&mut self, seq: u16) {
        self.received += 1;
        let delta = seq.wrapping_sub(self.max);
        if delta == 0 {
            // A duplicate: not received twice as far as loss goes.
            self.received -= 1;
            self.out_of_order += 1;
        } else if delta < 0x8000 {
            if seq < self.max {
                self.cycles += 1;
            }
            self.max = seq;
        } else {
            self.out_of_order += 1;
        }
    }

    fn lost(&self) -> u64 {
        let extended_max = ((self.cycles as u64) << 16) | self.max as u64;
        (extended_max + 1 - self.base as u64).saturating_sub(self.received)
    }
}

/// Sequence tracking of the streams arriving on one endpoint. A peer commonly interleaves two
/// SSRCs (audio, and RFC 4733 events from another source), so the two most recent are tracked
/// side by side; an SSRC that displaces one leaves its figures in the totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceTracker {
    streams: [Option<Stream>; 2],
    packets: u64,
    retired_lost: u64,
    retired_out_of_order: u64,
}

impl SequenceTracker {
    pub fn update(&mut self, ssrc: u32, seq: u16) {
        self.packets += 1;
        let now = self.packets;
        if let Some(s) = self.streams.iter_mut().flatten().find(|s| s.ssrc == ssrc) {
            s.update(seq);
            s.last_used = now;
            return;
        }
        let slot = match self.streams.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                let oldest = if self.streams[0].map(|s| s.last_used)
                    < self.streams[1].map(|s| s.last_used)
                {
                    0
                } else {
                    1
                };
                let gone = self.streams[oldest].expect("both slots used");
                self.retired_lost += gone.lost();
                self.retired_out_of_order += gone.out_of_order;
                oldest
            }
        };
        self.streams[slot] = Some(Stream::start(ssrc, seq, now));
    }

    /// `count` packets of `ssrc` that arrived elsewhere (forwarded in the kernel), the last of
    /// them numbered `last_seq`: counted as received in order.
    pub fn update_many(&mut self, ssrc: u32, last_seq: u16, count: u64) {
        if count == 0 {
            return;
        }
        self.update(ssrc, last_seq);
        let more = count - 1;
        self.packets += more;
        if let Some(s) = self.streams.iter_mut().flatten().find(|s| s.ssrc == ssrc) {
            s.received += more;
        }
    }

    pub fn lost(&self) -> u64 {
        self.retired_lost + self.streams.iter().flatten().map(Stream::lost).sum::<u64>()
    }

    pub fn out_of_order(&self) -> u64 {
        self.retired_out_of_order
            + self
                .streams
                .iter()
                .flatten()
                .map(|s| s.out_of_order)
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mos_estimate_falls_with_loss() {
        let stats = |packets_in, lost| EndpointStats {
            packets_in,
            lost,
            ..Default::default()
        };
        let clean = stats(1000, 0).estimated_mos();
        assert!((clean - 4.41).abs() < 0.01, "{clean}");
        let five = stats(950, 50).estimated_mos();
        assert!((3.85..4.0).contains(&five), "{five}");
        assert!(stats(500, 500).estimated_mos() < 2.0);
        assert_eq!(
            stats(0, 0).estimated_mos(),
            clean,
            "nothing heard, nothing lost"
        );
    }

    #[test]
    fn loss_reorder_and_wrap() {
        let mut t = SequenceTracker::default();
        for seq in [65533u16, 65534, 65535, 0, 2, 1, 3] {
            t.update(7, seq);
        }
        assert_eq!(t.lost(), 0, "1 arrived late, nothing lost");
        assert_eq!(t.out_of_order(), 1);
        t.update(7, 10);
        assert_eq!(t.lost(), 6, "4..=9 missing");
    }

    #[test]
    fn packets_counted_elsewhere_are_not_lost() {
        let mut t = SequenceTracker::default();
        for seq in 65_530u16..65_535 {
            t.update(7, seq);
        }
        // 65535, 0..=19 forwarded in the kernel: 21 packets, the last 19.
        t.update_many(7, 19, 21);
        t.update(7, 20);
        assert_eq!((t.lost(), t.out_of_order()), (0, 0));
        t.update_many(7, 40, 10);
        assert_eq!(t.lost(), 10, "21..=40 is 20 numbers, 10 arrived");
    }

    #[test]
    fn interleaved_audio_and_events_do_not_disturb_each_other() {
        let mut t = SequenceTracker::default();
        for i in 0..100u16 {
            t.update(1, 1000 + i);
            if i % 10 == 0 {
                t.update(2, 50 + i / 10);
            }
        }
        assert_eq!((t.lost(), t.out_of_order()), (0, 0));
        // A third source displaces the least recent one; its loss is kept.
        t.update(2, 70); // 10 events missing on SSRC 2
        t.update(3, 5);
        t.update(3, 6);
        t.update(1, 1100);
        assert_eq!(t.lost(), 10);
    }
}
