//! The packet index of SRTP (RFC 3711 §3.3.1): a 32-bit rollover counter above the 16-bit
//! sequence number, estimated on receipt (Appendix A), and the replay list (§3.3.2) as a
//! 64-packet sliding window.

/// How far behind the highest index a packet may arrive and still be accepted.
const WINDOW: u64 = 64;
/// The largest index SRTP allows under one key: 2^48 packets (§9.2).
const INDEX_LIMIT: u64 = 1 << 48;

/// What a receiver knows of one source's indices.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReceiveWindow {
    /// The highest index accepted, once one was.
    highest: Option<u64>,
    /// Bit `n` set: index `highest - n` was accepted.
    seen: u64,
}

impl ReceiveWindow {
    /// The index a packet with sequence number `seq` most likely has: the one nearest the
    /// highest seen (§3.3.1). `None` for a packet from before the counter began.
    pub(super) fn estimate(&self, seq: u16) -> Option<u64> {
        let Some(highest) = self.highest else {
            return Some(u64::from(seq));
        };
        let roc = highest >> 16;
        let last = (highest & 0xffff) as u16;
        let seq_i = i32::from(seq);
        let last_i = i32::from(last);
        let roc = if last < 0x8000 {
            if seq_i - last_i > 0x8000 {
                roc.checked_sub(1)?
            } else {
                roc
            }
        } else if last_i - 0x8000 > seq_i {
            roc + 1
        } else {
            roc
        };
        Some((roc << 16) | u64::from(seq))
    }

    /// Whether `index` has not been accepted and is not too old to tell.
    pub(super) fn fresh(&self, index: u64) -> bool {
        if index >= INDEX_LIMIT {
            return false;
        }
        match self.highest {
            None => true,
            Some(h) if index > h => true,
            Some(h) => {
                let behind = h - index;
                behind < WINDOW && self.seen & (1 << behind) == 0
            }
        }
    }

    /// Records `index` as accepted (it authenticated).
    pub(super) fn accept(&mut self, index: u64) {
        match self.highest {
            Some(h) if index <= h => self.seen |= 1 << (h - index).min(WINDOW - 1),
            Some(h) => {
                let ahead = index - h;
                self.seen = if ahead >= WINDOW {
                    0
                } else {
                    self.seen << ahead
                } | 1;
                self.highest = Some(index);
            }
            None => {
                self.highest = Some(index);
                self.seen = 1;
            }
        }
    }
}

/// A sender's index for one source: the rollover counter moves on when the sequence number
/// wraps, and no index is ever used twice.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SendCounter {
    window: ReceiveWindow,
}

/// Why a packet cannot be protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoIndex {
    /// Its index was used already, or is too old to tell: the peer whose packets we relay
    /// sent its sequence number again. Protecting it would reuse a keystream (AES-CM) or a
    /// nonce (AES-GCM, which gives away the authentication key): it is dropped instead.
    Used,
    /// The key has protected 2^48 packets.
    Exhausted,
}

impl SendCounter {
    /// The index of the packet with `seq`, once: a packet reordered within the window keeps
    /// its own index, a repeated one gets none.
    pub(super) fn next(&mut self, seq: u16) -> Result<u64, NoIndex> {
        let index = self.window.estimate(seq).unwrap_or(u64::from(seq));
        if index >= INDEX_LIMIT {
            return Err(NoIndex::Exhausted);
        }
        if !self.window.fresh(index) {
            return Err(NoIndex::Used);
        }
        self.window.accept(index);
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rollover_counter_follows_a_wrapping_sequence() {
        let mut rx = ReceiveWindow::default();
        let mut tx = SendCounter::default();
        let mut seq = 65_530u16;
        for n in 0..20u64 {
            let sent = tx.next(seq).unwrap();
            assert_eq!(sent, 65_530 + n);
            let index = rx.estimate(seq).unwrap();
            assert_eq!(index, sent);
            assert!(rx.fresh(index));
            rx.accept(index);
            seq = seq.wrapping_add(1);
        }
        // A late packet from before the wrap keeps its old counter.
        assert_eq!(rx.estimate(65_535), Some(65_535));
        assert!(!rx.fresh(65_535), "already accepted");
    }

    #[test]
    fn replays_and_packets_older_than_the_window_are_refused() {
        let mut rx = ReceiveWindow::default();
        for i in [100u64, 102, 101, 200] {
            assert!(rx.fresh(i));
            rx.accept(i);
        }
        assert!(
            !rx.fresh(200) && !rx.fresh(136),
            "200 seen; 136 is 64 behind"
        );
        assert!(rx.fresh(137) && rx.fresh(199));
        rx.accept(199);
        assert!(!rx.fresh(199));
        assert!(!rx.fresh(INDEX_LIMIT));
    }

    /// The sender never protects two packets under one index, whatever sequence numbers the
    /// peer it relays sends: a repeat, or one too old to tell, is refused; a packet reordered
    /// within the window has its own index.
    #[test]
    fn a_sender_never_uses_an_index_twice() {
        let mut tx = SendCounter::default();
        assert_eq!(tx.next(100), Ok(100));
        assert_eq!(tx.next(102), Ok(102));
        assert_eq!(tx.next(101), Ok(101), "reordered: its own index");
        for seq in [100, 101, 102] {
            assert_eq!(tx.next(seq), Err(NoIndex::Used), "seq {seq} again");
        }
        assert_eq!(tx.next(300), Ok(300));
        assert_eq!(tx.next(200), Err(NoIndex::Used), "too old to tell");
        let mut seen = std::collections::HashSet::new();
        for seq in (0..2000u32).map(|n| (n * 7 % 500) as u16) {
            if let Ok(index) = tx.next(seq) {
                assert!(seen.insert(index), "index {index} used twice");
            }
        }
    }

    #[test]
    fn a_packet_from_before_the_first_counter_is_not_given_a_negative_one() {
        let mut rx = ReceiveWindow::default();
        rx.accept(10);
        assert_eq!(rx.estimate(65_000), None);
    }
}
