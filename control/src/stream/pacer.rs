//! Keeps each track of a stream continuous, with no IO: one frame per track every 20 ms, as
//! the providers' streams are. The call's tap delivers a frame only when there is audio (a
//! packet from the caller, something played to it); where a track has none, the pacer puts
//! silence in its slot, so that an application counting chunks or timestamps sees the
//! stream's real time, and a transcriber sees the pauses.
//!
//! A slot is given up on (and filled with silence) `GRACE` after it was due, which leaves
//! room for network jitter; frames that come later still go out, in order.

use std::time::{Duration, Instant};
use switchboard_media::record::Track;
use switchboard_media::{FRAME, Frame, TapFrame, TapTracks};

/// How long after its slot a frame may come before the slot is filled with silence.
const GRACE: Duration = Duration::from_millis(60);
const SLOT_MS: u64 = 20;

/// A frame to send: which track, its timestamp (ms since the stream started) and audio.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Slot {
    pub(super) track: Track,
    pub(super) at_ms: u32,
    pub(super) samples: Frame,
}

pub(super) struct Pacer {
    start: Instant,
    /// Per track (inbound, outbound): the next slot to fill, or `None` when not sent.
    next: [Option<u64>; 2],
}

fn index(track: Track) -> usize {
    match track {
        Track::Inbound => 0,
        Track::Outbound => 1,
    }
}

const TRACKS: [Track; 2] = [Track::Inbound, Track::Outbound];

impl Pacer {
    pub(super) fn new(tracks: TapTracks, start: Instant) -> Self {
        let on = |t| {
            matches!(
                (tracks, t),
                (TapTracks::Both, _)
                    | (TapTracks::Inbound, Track::Inbound)
                    | (TapTracks::Outbound, Track::Outbound)
            )
        };
        Self {
            start,
            next: TRACKS.map(|t| on(t).then_some(0)),
        }
    }

    /// A frame from the tap: the silence of the slots it skipped, then itself.
    pub(super) fn frame(&mut self, f: &TapFrame, out: &mut Vec<Slot>) {
        let Some(next) = self.next[index(f.track)].as_mut() else {
            return;
        };
        let slot = u64::from(f.at_ms) / SLOT_MS;
        while *next < slot {
            out.push(Slot {
                track: f.track,
                at_ms: slot_ms(*next),
                samples: [0; FRAME],
            });
            *next += 1;
        }
        *next += 1;
        out.push(Slot {
            track: f.track,
            at_ms: f.at_ms,
            samples: f.samples,
        });
    }

    /// When the next slot of some track is given up on.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.next.iter().flatten().map(|&n| self.due(n)).min()
    }

    /// Fills the slots given up on with silence.
    pub(super) fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Slot>) {
        for track in TRACKS {
            while let Some(n) = self.next[index(track)]
                && self.due(n) <= now
            {
                out.push(Slot {
                    track,
                    at_ms: slot_ms(n),
                    samples: [0; FRAME],
                });
                self.next[index(track)] = Some(n + 1);
            }
        }
    }

    fn due(&self, slot: u64) -> Instant {
        self.start + Duration::from_millis(slot * SLOT_MS) + GRACE
    }
}

fn slot_ms(slot: u64) -> u32 {
    u32::try_from(slot * SLOT_MS).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(track: Track, at_ms: u32, v: i16) -> TapFrame {
        TapFrame {
            track,
            at_ms,
            dropped: 0,
            samples: [v; FRAME],
        }
    }

    #[test]
    fn silent_slots_are_filled_and_real_frames_keep_their_place() {
        let t0 = Instant::now();
        let mut p = Pacer::new(TapTracks::Inbound, t0);
        let mut out = Vec::new();
        // Nothing for the first 100 ms: the slots due by then are filled.
        p.handle_timeout(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(
            out.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
            [0, 20, 40],
            "slots 0 to 2 are 60 ms late or more at 100 ms"
        );
        assert!(out.iter().all(|s| s.samples == [0; FRAME]));
        out.clear();
        // A frame for slot 5 fills 2..4 first.
        p.frame(&tap(Track::Inbound, 101, 7), &mut out);
        assert_eq!(
            out.iter()
                .map(|s| (s.at_ms, s.samples[0]))
                .collect::<Vec<_>>(),
            [(60, 0), (80, 0), (101, 7)]
        );
        // Outbound is not asked for: its frames are ignored, and it has no slots.
        out.clear();
        p.frame(&tap(Track::Outbound, 120, 9), &mut out);
        assert!(out.is_empty());
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(120 + 60)));
    }

    #[test]
    fn both_tracks_run_their_own_slots() {
        let t0 = Instant::now();
        let mut p = Pacer::new(TapTracks::Both, t0);
        let mut out = Vec::new();
        for i in 0..5u32 {
            p.frame(&tap(Track::Inbound, i * 20, 1), &mut out);
        }
        p.handle_timeout(t0 + Duration::from_millis(150), &mut out);
        let outbound: Vec<u32> = out
            .iter()
            .filter(|s| s.track == Track::Outbound)
            .map(|s| s.at_ms)
            .collect();
        assert_eq!(outbound, [0, 20, 40, 60, 80]);
        let inbound = out.iter().filter(|s| s.track == Track::Inbound).count();
        assert_eq!(inbound, 5, "inbound's own frames, nothing added yet");
    }
}
