//! What a playback plays: a prompt of parts in order, each a shared clip, silence (a length,
//! no samples) or a growing clip (speech still being rendered while it plays), and the
//! playback's place in it, read one 20 ms frame at a time.

use crate::endpoint_media::{FRAME, Frame};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Audio to play: 8 kHz mono linear PCM, shared between plays.
pub type Clip = Arc<[i16]>;

/// A prompt: parts in order. A document's pauses and repeated prompts cost nothing per
/// repetition: a gather of forty ten-minute pauses once took 741 MB as rendered samples.
#[derive(Debug, Clone)]
pub struct Prompt {
    parts: Arc<[Part]>,
    /// How long it plays once; `None` while a growing part's length is not known.
    samples: Option<u64>,
}

#[derive(Debug, Clone)]
pub enum Part {
    /// A clip played this many times over: one part however often it repeats, so a prompt's
    /// size follows its document's verbs, not their loop counts.
    Audio(Clip, u32),
    /// This many samples of silence.
    Silence(usize),
    /// Audio still arriving, played this many times over: it starts with its first piece,
    /// while the rest is made (speech rendered piece by piece), so a long text is heard
    /// after one piece's rendering rather than after all of them.
    Growing(Arc<GrowingClip>, u32),
}

impl Part {
    /// The same audio played `times` over (silence is a length, played once).
    pub fn played(self, times: u32) -> Self {
        match self {
            Part::Audio(clip, _) => Part::Audio(clip, times),
            Part::Growing(clip, _) => Part::Growing(clip, times),
            silence @ Part::Silence(_) => silence,
        }
    }

    /// Its length in samples, where known.
    fn len(&self) -> Option<usize> {
        match self {
            Part::Audio(c, times) => Some(c.len().saturating_mul(*times as usize)),
            Part::Silence(n) => Some(*n),
            Part::Growing(..) => None,
        }
    }
}

impl Prompt {
    pub fn new(parts: Vec<Part>) -> Self {
        let samples = parts
            .iter()
            .try_fold(0u64, |sum, p| Some(sum.saturating_add(p.len()? as u64)));
        Self {
            parts: parts.into(),
            samples,
        }
    }

    /// How long it plays once, in samples; `None` while a growing part is still unknown.
    pub fn samples(&self) -> Option<u64> {
        self.samples
    }

    /// Whether it certainly plays nothing.
    pub fn is_empty(&self) -> bool {
        self.samples == Some(0)
    }
}

impl From<Clip> for Prompt {
    fn from(clip: Clip) -> Self {
        Self::new(vec![Part::Audio(clip, 1)])
    }
}

impl From<Vec<i16>> for Prompt {
    fn from(samples: Vec<i16>) -> Self {
        Self::new(vec![Part::Audio(samples.into(), 1)])
    }
}

/// Audio made while it plays: pieces appended by its maker and read by any number of
/// playbacks, each at its own place. A playback that catches up with the maker plays silence
/// until the next piece (or the end) comes.
#[derive(Debug, Default)]
pub struct GrowingClip {
    state: Mutex<Pieces>,
    /// Samples its playbacks have played, together: what a listener has heard of it so far
    /// (a conversation's agent tells what was heard before the caller cut in).
    played: AtomicUsize,
}

#[derive(Debug, Default)]
struct Pieces {
    pieces: Vec<Clip>,
    samples: usize,
    finished: bool,
}

/// A piece of a growing clip, as a reader finds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Ready(Clip),
    /// Not made yet.
    Pending,
    /// The clip is finished and has no piece at this place.
    End,
}

impl GrowingClip {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Appends a piece (an empty one is nothing). Pieces after the end are not taken.
    pub fn push(&self, piece: Clip) {
        let mut s = self.state.lock().expect("growing clip");
        if piece.is_empty() || s.finished {
            return;
        }
        s.samples = s.samples.saturating_add(piece.len());
        s.pieces.push(piece);
    }

    /// No more pieces come: readers end after the last one.
    pub fn finish(&self) {
        self.state.lock().expect("growing clip").finished = true;
    }

    pub fn is_finished(&self) -> bool {
        self.state.lock().expect("growing clip").finished
    }

    /// Samples made so far.
    pub fn samples(&self) -> usize {
        self.state.lock().expect("growing clip").samples
    }

    /// The piece at `index`.
    pub fn piece(&self, index: usize) -> Piece {
        let s = self.state.lock().expect("growing clip");
        match s.pieces.get(index) {
            Some(p) => Piece::Ready(p.clone()),
            None if s.finished => Piece::End,
            None => Piece::Pending,
        }
    }

    /// Samples played of it so far, by all its playbacks together.
    pub fn played(&self) -> usize {
        self.played.load(Ordering::Relaxed)
    }

    /// The whole audio in one clip, once finished.
    pub fn joined(&self) -> Option<Clip> {
        let s = self.state.lock().expect("growing clip");
        s.finished.then(|| s.pieces.concat().into())
    }
}

/// Why a playback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackEnd {
    Finished,
    Stopped,
    /// A digit arrived while a barge-in playback ran.
    BargeIn,
}

pub(crate) struct Playback {
    pub(crate) id: u64,
    prompt: Prompt,
    /// The part playing, and the place in it: for a growing part, the repetition, the piece
    /// and the place in the piece.
    part: usize,
    pos: usize,
    piece: usize,
    at: usize,
    /// Plays left after this one; `None` loops until stopped.
    loops_left: Option<u32>,
    pub(crate) barge_in: bool,
}

impl Playback {
    pub(crate) fn new(id: u64, prompt: Prompt, loops: u32, barge_in: bool) -> Self {
        Self {
            id,
            prompt,
            part: 0,
            pos: 0,
            piece: 0,
            at: 0,
            loops_left: loops.checked_sub(1),
            barge_in,
        }
    }

    fn next_part(&mut self) {
        self.part += 1;
        (self.pos, self.piece, self.at) = (0, 0, 0);
    }

    /// Fills a frame; `false` once the prompt (with its loops) is over. A growing part not
    /// made that far yet gives silence and keeps the playback going.
    pub(crate) fn next_frame(&mut self, out: &mut Frame) -> bool {
        if self.prompt.is_empty() {
            out.fill(0);
            return false;
        }
        let mut filled = 0;
        // Samples filled when the last pass over the prompt began: a whole pass that adds
        // nothing (growing parts that ended empty) ends the playback rather than spinning.
        let mut pass_start = None;
        while filled < FRAME {
            if self.part >= self.prompt.parts.len() {
                if pass_start == Some(filled) {
                    break;
                }
                pass_start = Some(filled);
                match self.loops_left {
                    Some(0) => break,
                    Some(n) => self.loops_left = Some(n - 1),
                    None => {}
                }
                self.part = 0;
                (self.pos, self.piece, self.at) = (0, 0, 0);
            }
            let part = &self.prompt.parts[self.part];
            if let Part::Growing(clip, times) = part {
                if self.pos >= *times as usize {
                    self.next_part();
                    continue;
                }
                match clip.piece(self.piece) {
                    Piece::Ready(p) => {
                        let n = (FRAME - filled).min(p.len() - self.at);
                        out[filled..filled + n].copy_from_slice(&p[self.at..self.at + n]);
                        clip.played.fetch_add(n, Ordering::Relaxed);
                        (filled, self.at) = (filled + n, self.at + n);
                        if self.at == p.len() {
                            (self.piece, self.at) = (self.piece + 1, 0);
                        }
                    }
                    Piece::End => (self.pos, self.piece, self.at) = (self.pos + 1, 0, 0),
                    Piece::Pending => {
                        out[filled..].fill(0);
                        return true;
                    }
                }
                continue;
            }
            let len = part.len().unwrap_or_default();
            if len == 0 {
                self.next_part();
                continue;
            }
            let mut n = (FRAME - filled).min(len - self.pos);
            match part {
                Part::Audio(clip, _) => {
                    // Within one repetition of the clip.
                    let at = self.pos % clip.len();
                    n = n.min(clip.len() - at);
                    out[filled..filled + n].copy_from_slice(&clip[at..at + n])
                }
                Part::Silence(_) => out[filled..filled + n].fill(0),
                Part::Growing(..) => unreachable!("handled above"),
            }
            self.pos += n;
            filled += n;
            if self.pos >= len {
                self.next_part();
            }
        }
        out[filled..].fill(0);
        filled > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(p: &mut Playback, frames: usize) -> (Vec<i16>, bool) {
        let mut out = Vec::new();
        let mut going = true;
        for _ in 0..frames {
            let mut f = [0i16; FRAME];
            going = p.next_frame(&mut f);
            out.extend_from_slice(&f);
            if !going {
                break;
            }
        }
        (out, going)
    }

    #[test]
    fn a_prompt_plays_its_parts_in_order_with_silence_that_holds_no_samples() {
        let tone: Clip = vec![1000i16; 100].into();
        // A pause of three hours is a length, not a buffer.
        let hours = 3 * 3600 * 8000;
        let prompt = Prompt::new(vec![
            Part::Audio(tone.clone(), 1),
            Part::Silence(260),
            Part::Audio(tone.clone(), 2),
            Part::Silence(hours),
        ]);
        assert_eq!(prompt.samples(), Some(560 + hours as u64));
        let mut p = Playback::new(1, prompt, 1, false);
        let (frames, going) = play(&mut p, 4);
        assert!(going);
        assert_eq!(&frames[..100], &[1000; 100][..]);
        assert_eq!(&frames[100..360], &[0; 260][..]);
        assert_eq!(&frames[360..560], &[1000; 200][..], "repeated twice");
        assert!(frames[560..].iter().all(|&s| s == 0));
        // Empty parts are passed over; an empty prompt ends at once.
        let gaps = Prompt::new(vec![
            Part::Audio(Clip::from(Vec::new()), 3),
            Part::Silence(0),
            Part::Audio(tone.clone(), 0),
            Part::Audio(tone.clone(), 1),
        ]);
        let mut gaps = Playback::new(2, gaps, 1, false);
        let mut f = [0i16; FRAME];
        assert!(gaps.next_frame(&mut f));
        assert_eq!(&f[..100], &[1000; 100][..]);
        let mut empty = Playback::new(3, Prompt::new(vec![Part::Silence(0)]), 1, false);
        assert!(!empty.next_frame(&mut [0i16; FRAME]));
    }

    #[test]
    fn a_growing_clip_plays_as_its_pieces_come_and_ends_after_the_last() {
        let clip = GrowingClip::new();
        let prompt = Prompt::new(vec![
            Part::Growing(clip.clone(), 2),
            Part::Audio(vec![7i16; 10].into(), 1),
        ]);
        assert_eq!(prompt.samples(), None);
        assert!(!prompt.is_empty());
        let mut p = Playback::new(1, prompt, 1, false);
        // Nothing made yet: silence, and the playback waits.
        let (f, going) = play(&mut p, 2);
        assert!(going && f.iter().all(|&s| s == 0));
        clip.push(vec![1i16; 200].into());
        let (f, going) = play(&mut p, 1);
        assert!(going && f == [1i16; FRAME]);
        assert_eq!(
            clip.played(),
            FRAME,
            "silence waiting for a piece is not its audio"
        );
        // The rest of the first piece, then silence while the second is rendered.
        let (f, going) = play(&mut p, 1);
        assert!(going);
        assert_eq!(&f[..40], &[1; 40][..]);
        assert!(f[40..].iter().all(|&s| s == 0));
        clip.push(vec![2i16; 100].into());
        clip.finish();
        assert_eq!(clip.samples(), 300);
        assert_eq!(clip.joined().unwrap().len(), 300);
        // Second piece; the clip again (twice over); then the clip after it; then the end.
        let (f, going) = play(&mut p, 10);
        assert!(!going);
        let heard: Vec<i16> = f.into_iter().filter(|&s| s != 0).collect();
        let mut want = vec![2i16; 100];
        want.extend([1i16; 200]);
        want.extend([2i16; 100]);
        want.extend([7i16; 10]);
        assert_eq!(heard, want);
        assert_eq!(clip.played(), 600, "both times over");
    }

    #[test]
    fn growing_clips_that_end_empty_end_a_looping_playback() {
        let clip = GrowingClip::new();
        clip.finish();
        assert_eq!(clip.piece(0), Piece::End);
        // Looping for ever over nothing ends rather than spinning.
        let mut p = Playback::new(1, Prompt::new(vec![Part::Growing(clip, 3)]), 0, false);
        assert!(!p.next_frame(&mut [0i16; FRAME]));
        // Pieces after the end are not taken.
        let done = GrowingClip::new();
        done.finish();
        done.push(vec![1i16; 5].into());
        assert_eq!(done.samples(), 0);
    }
}
