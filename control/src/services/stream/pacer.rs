//! Keeps each track of a stream continuous, with no IO: one frame per track every 20 ms, as
//! the providers' streams are. The call's tap delivers a frame only when there is audio (a
//! packet from the caller, something played to it); where a track has none, the pacer puts
//! silence in its slot, so that an application counting chunks or timestamps sees the
//! stream's real time, and a transcriber sees the pauses.
//!
//! A slot is given up on (and filled with silence) `GRACE` after it was due, which leaves
//! room for network jitter; frames that come later still go out, in order. Due is measured on
//! the tap's own clock: frames are stamped from when the tap started, which is after the
//! stream did (the tap is asked for once the socket is up), so the pacer learns where the
//! tap's zero lies from the frames themselves (the earliest arrival less its stamp; lateness
//! only ever makes that later). One rule decides lateness whether a frame or the timer finds
//! it: a frame skips slots only when it is more than `GRACE` past them, so a sender whose
//! packets drift or jitter by less keeps its audio whole, without silence slipped in.

use std::time::{Duration, Instant};
use switchboard_media::record::Track;
use switchboard_media::{FRAME, Frame, TapFrame, TapTracks};

/// How long after its slot a frame may come before the slot is filled with silence.
const GRACE: Duration = Duration::from_millis(60);
const SLOT_MS: u64 = 20;
/// The grace in slots.
const GRACE_SLOTS: u64 = 3;

/// A frame to send: which track, its place in the track (frames of 20 ms before it, silence
/// included: the stream's clock, by which both providers' `timestamp`s count) and audio.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Slot {
    pub(super) track: Track,
    pub(super) position: u64,
    pub(super) samples: Frame,
}

pub(super) struct Pacer {
    /// When the tap's stamps are zero, as far as the frames show (the stream's start until
    /// the first frame).
    epoch: Instant,
    /// Whether a frame has placed `epoch` yet.
    anchored: bool,
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
            epoch: start,
            anchored: false,
            next: TRACKS.map(|t| on(t).then_some(0)),
        }
    }

    /// A frame from the tap, arrived `now`: the silence of the slots it skipped by more than
    /// the grace, then itself.
    pub(super) fn frame(&mut self, f: &TapFrame, now: Instant, out: &mut Vec<Slot>) {
        let Some(next) = self.next[index(f.track)].as_mut() else {
            return;
        };
        let zero = now
            .checked_sub(Duration::from_millis(u64::from(f.at_ms)))
            .unwrap_or(now);
        if !self.anchored || zero < self.epoch {
            self.epoch = zero;
            self.anchored = true;
        }
        let slot = u64::from(f.at_ms) / SLOT_MS;
        while *next + GRACE_SLOTS < slot {
            out.push(Slot {
                track: f.track,
                position: *next,
                samples: [0; FRAME],
            });
            *next += 1;
        }
        out.push(Slot {
            track: f.track,
            position: *next,
            samples: f.samples,
        });
        *next += 1;
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
                    position: n,
                    samples: [0; FRAME],
                });
                self.next[index(track)] = Some(n + 1);
            }
        }
    }

    fn due(&self, slot: u64) -> Instant {
        self.epoch + Duration::from_millis(slot * SLOT_MS) + GRACE
    }
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

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn silent_slots_are_filled_and_real_frames_keep_their_place() {
        let t0 = Instant::now();
        let mut p = Pacer::new(TapTracks::Inbound, t0);
        let mut out = Vec::new();
        // Nothing for the first 100 ms: the slots due by then are filled.
        p.handle_timeout(ms(t0, 100), &mut out);
        assert_eq!(
            out.iter().map(|s| s.position).collect::<Vec<_>>(),
            [0, 1, 2],
            "slots 0 to 2 are 60 ms late or more at 100 ms"
        );
        assert!(out.iter().all(|s| s.samples == [0; FRAME]));
        out.clear();
        // A frame stamped for slot 5 is within the grace of slot 3: it takes that place.
        p.frame(&tap(Track::Inbound, 101, 7), ms(t0, 101), &mut out);
        let places = |out: &[Slot]| {
            out.iter()
                .map(|s| (s.position, s.samples[0]))
                .collect::<Vec<_>>()
        };
        assert_eq!(places(&out), [(3, 7)]);
        out.clear();
        // One stamped 300 ms skipped slots 4 to 14: those more than the grace behind it
        // (4 to 11) go out as silence first.
        p.frame(&tap(Track::Inbound, 300, 8), ms(t0, 300), &mut out);
        let placed = places(&out);
        assert_eq!(placed.len(), 9, "{placed:?}");
        assert!(placed[..8].iter().all(|&(_, v)| v == 0));
        assert_eq!(placed[8], (12, 8));
        // Outbound is not asked for: its frames are ignored, and it has no slots.
        out.clear();
        p.frame(&tap(Track::Outbound, 320, 9), ms(t0, 320), &mut out);
        assert!(out.is_empty());
        assert_eq!(p.poll_timeout(), Some(ms(t0, 13 * 20 + 60)));
    }

    #[test]
    fn both_tracks_run_their_own_slots() {
        let t0 = Instant::now();
        let mut p = Pacer::new(TapTracks::Both, t0);
        let mut out = Vec::new();
        for i in 0..5u32 {
            let at = u64::from(i) * 20;
            p.frame(&tap(Track::Inbound, i * 20, 1), ms(t0, at), &mut out);
        }
        p.handle_timeout(ms(t0, 150), &mut out);
        let outbound: Vec<u64> = out
            .iter()
            .filter(|s| s.track == Track::Outbound)
            .map(|s| s.position)
            .collect();
        assert_eq!(outbound, [0, 1, 2, 3, 4]);
        let inbound = out.iter().filter(|s| s.track == Track::Inbound).count();
        assert_eq!(inbound, 5, "inbound's own frames, nothing added yet");
    }

    /// A sender whose packets come 21 ms apart (a slow clock, a loaded machine) drifts 40 ms
    /// over 40 frames: within the grace, so its audio goes out whole, with no silence slipped
    /// between its frames.
    #[test]
    fn drift_within_the_grace_keeps_the_audio_whole() {
        let t0 = Instant::now();
        let mut p = Pacer::new(TapTracks::Inbound, t0);
        let mut out = Vec::new();
        for i in 0..40u32 {
            let at = u64::from(i) * 21;
            p.frame(&tap(Track::Inbound, i * 21, 5), ms(t0, at), &mut out);
            p.handle_timeout(ms(t0, at), &mut out);
        }
        assert_eq!(out.len(), 40);
        assert!(
            out.iter().all(|s| s.samples[0] == 5),
            "no silence slipped in"
        );
        assert_eq!(
            out.iter().map(|s| s.position).collect::<Vec<_>>(),
            (0..40).collect::<Vec<_>>()
        );
    }

    /// The tap starts 100 ms after the stream, and its stamps count from then. The silence
    /// due before its first frame goes out; from then on its frames, on time by the tap's
    /// clock, are never taken for late although the stream's task wakes late each time.
    #[test]
    fn the_taps_clock_is_learnt_from_its_frames() {
        let t0 = Instant::now();
        let mut p = Pacer::new(TapTracks::Inbound, t0);
        let mut out = Vec::new();
        p.handle_timeout(ms(t0, 90), &mut out);
        assert_eq!(out.len(), 2, "slots 0 and 1 were due before any frame");
        for i in 0..50u32 {
            let at = 100 + u64::from(i) * 20;
            p.frame(&tap(Track::Inbound, i * 20, 3), ms(t0, at), &mut out);
            p.handle_timeout(ms(t0, at + 15), &mut out);
        }
        let silent = out.iter().filter(|s| s.samples[0] == 0).count();
        assert_eq!(silent, 2);
        assert_eq!(out.len(), 52);
    }
}
