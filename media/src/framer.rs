//! Packets of any length (10, 20, 30, 60 ms …) to the 20 ms frames that recordings, taps,
//! conferences and in-band DTMF detection count in. A packet's remainder waits for the next
//! one, so 30 ms packets become three frames per 60 ms and no sample is dropped or padded.

use crate::denoise::MAX_PACKET;
use crate::endpoint_media::{FRAME, Frame};

/// The most frames one packet (at most [`MAX_PACKET`] samples) and a remainder can make.
pub(crate) const MAX_FRAMES: usize = MAX_PACKET / FRAME + 1;

#[derive(Default)]
pub(crate) struct Framer {
    carry: Option<(Frame, usize)>,
}

impl Framer {
    /// Completes frames from what was carried and `pcm` (at most [`MAX_PACKET`] samples; any
    /// more are ignored) into `out`; returns how many. Fixed-size, on the stack: the media
    /// path allocates nothing.
    pub(crate) fn split(&mut self, pcm: &[i16], out: &mut [Frame; MAX_FRAMES]) -> usize {
        let mut pcm = &pcm[..pcm.len().min(MAX_PACKET)];
        let mut made = 0;
        if let Some((mut frame, len)) = self.carry.take() {
            let n = (FRAME - len).min(pcm.len());
            frame[len..len + n].copy_from_slice(&pcm[..n]);
            pcm = &pcm[n..];
            if len + n < FRAME {
                self.carry = Some((frame, len + n));
                return 0;
            }
            out[0] = frame;
            made = 1;
        }
        let mut chunks = pcm.chunks_exact(FRAME);
        for chunk in &mut chunks {
            out[made].copy_from_slice(chunk);
            made += 1;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut frame = [0; FRAME];
            frame[..rest.len()].copy_from_slice(rest);
            self.carry = Some((frame, rest.len()));
        }
        made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples numbered from `start`.
    fn run(start: i16, n: usize) -> Vec<i16> {
        (0..n as i16).map(|i| start + i).collect()
    }

    #[test]
    fn packets_of_any_length_become_whole_frames_in_order() {
        for ms in [10usize, 20, 30, 40, 60] {
            let per_packet = ms * 8;
            let mut framer = Framer::default();
            let mut out = [[0; FRAME]; MAX_FRAMES];
            let mut frames: Vec<Frame> = Vec::new();
            let mut next = 0i16;
            for _ in 0..12 {
                let made = framer.split(&run(next, per_packet), &mut out);
                frames.extend_from_slice(&out[..made]);
                next += per_packet as i16;
            }
            assert_eq!(frames.len(), 12 * per_packet / FRAME, "{ms} ms");
            let flat: Vec<i16> = frames.concat();
            assert_eq!(
                flat,
                run(0, flat.len()),
                "{ms} ms: samples lost or reordered"
            );
        }
    }

    #[test]
    fn an_oversized_packet_is_cut_at_max_packet() {
        let mut framer = Framer::default();
        let mut out = [[0; FRAME]; MAX_FRAMES];
        assert_eq!(framer.split(&[1; 2000], &mut out), MAX_PACKET / FRAME);
    }
}
