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

/// Sequence-number tracking for one SSRC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceTracker {
    started: bool,
    ssrc: u32,
    base: u32,
    max: u16,
    cycles: u32,
    received: u64,
    /// Loss of earlier SSRCs, kept when the source changes.
    lost_before: u64,
    pub out_of_order: u64,
}

impl SequenceTracker {
    pub fn update(&mut self, ssrc: u32, seq: u16) {
        if !self.started || ssrc != self.ssrc {
            *self = Self {
                started: true,
                ssrc,
                base: seq as u32,
                max: seq,
                cycles: 0,
                received: 1,
                lost_before: self.lost(),
                out_of_order: self.out_of_order,
            };
            return;
        }
        self.received += 1;
        let delta = seq.wrapping_sub(self.max);
        if delta == 0 {
            // A duplicate counts as received twice; keep it out of the loss figure.
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

    pub fn lost(&self) -> u64 {
        if !self.started {
            return self.lost_before;
        }
        let extended_max = ((self.cycles as u64) << 16) | self.max as u64;
        let expected = extended_max + 1 - self.base as u64;
        self.lost_before + expected.saturating_sub(self.received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_reorder_and_wrap() {
        let mut t = SequenceTracker::default();
        for seq in [65533u16, 65534, 65535, 0, 2, 1, 3] {
            t.update(7, seq);
        }
        assert_eq!(t.lost(), 0, "1 arrived late, nothing lost");
        assert_eq!(t.out_of_order, 1);
        t.update(7, 10);
        assert_eq!(t.lost(), 6, "4..=9 missing");
        t.update(9, 500);
        t.update(9, 502);
        assert_eq!(t.lost(), 7, "loss carries over a source change");
    }
}
