//! Moonshine base-en (Useful Sensors, MIT) through ONNX Runtime: an encoder run once per
//! utterance, then the merged decoder step by step (greedy), keeping the self-attention cache
//! of each step and the cross-attention cache of the first.
//!
//! The model comes from the PyPI wheel `moonshine-cpp`, rebuilt once from `.ort` into plain
//! ONNX by scripts/install-speech.sh (speech.md says why: ~20 ms per token instead of ~250),
//! with its int8 weights folded to fp32 at install time into `.weights` files that ONNX Runtime
//! maps: every worker computes from the one copy in the page cache (scripts/fold-weights.py);
//! ONNX Runtime is the shared library of the `onnxruntime` wheel, loaded at run time, so the
//! binary builds and starts without it and says what is missing.

use super::runtime::Memory;
use super::{Engine, EngineFactory, Recognition, SpeechError};
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ENCODER: &str = "moonshine-base-en/encoder_model.onnx";
const DECODER: &str = "moonshine-base-en/decoder_model_merged.onnx";
/// The models' folded weights, which their `.onnx` files name as external data.
const WEIGHTS: [&str; 2] = [
    "moonshine-base-en/encoder_model.weights",
    "moonshine-base-en/decoder_model_merged.weights",
];
const TOKENIZER: &str = "moonshine-base-en/tokenizer.bin";
const START: i64 = 1;
const END: i64 = 2;
/// Moonshine says at most ~6.5 tokens per second of audio; more is a decoder stuck in a loop.
const TOKENS_PER_SECOND: f32 = 6.5;
/// The encoder needs some audio; shorter utterances are padded with silence to this.
const MIN_SAMPLES: usize = 8000;
/// Longer audio is cut (the model was trained on utterances of up to ~30 s).
const MAX_SAMPLES: usize = 30 * 16000;

/// Where the model and ONNX Runtime are (`speech.dir`), checked before any worker starts.
#[derive(Debug, Clone)]
pub struct Model {
    dir: PathBuf,
}

impl Model {
    /// The install under `dir`, or what is missing from it.
    pub fn find(dir: &Path) -> Result<Self, SpeechError> {
        let files = [ENCODER, DECODER, TOKENIZER, super::runtime::LIBRARY];
        for file in files.into_iter().chain(WEIGHTS) {
            if !dir.join(file).is_file() {
                return Err(SpeechError::Unavailable(format!(
                    "{} is missing (scripts/install-speech.sh installs the Moonshine model and ONNX Runtime)",
                    dir.join(file).display()
                )));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The factory a [`super::Pool`] opens one engine per worker with; the vocabulary is read once.
    pub fn factory(&self) -> Result<Arc<dyn EngineFactory>, SpeechError> {
        let vocab = Vocab::read(&self.dir.join(TOKENIZER))?;
        Ok(Arc::new(Factory {
            model: self.clone(),
            vocab: Arc::new(vocab),
        }))
    }
}

struct Factory {
    model: Model,
    vocab: Arc<Vocab>,
}

impl EngineFactory for Factory {
    fn name(&self) -> &str {
        "moonshine-base-en"
    }

    fn open(&self) -> Result<Box<dyn Engine>, SpeechError> {
        let engine = Moonshine::open(&self.model, self.vocab.clone())?;
        super::runtime::release_freed_memory();
        Ok(Box::new(engine))
    }
}

/// One worker's encoder and decoder.
pub struct Moonshine {
    encoder: Session,
    decoder: Session,
    vocab: Arc<Vocab>,
    /// The decoder's cache inputs (`past_key_values.N.{decoder,encoder}.{key,value}`) and the
    /// shape of an empty one (batch 1, sequence 0).
    past: Vec<(String, Vec<i64>)>,
}

fn failed(e: impl std::fmt::Display) -> SpeechError {
    SpeechError::Failed(e.to_string())
}

impl Moonshine {
    pub fn open(model: &Model, vocab: Arc<Vocab>) -> Result<Self, SpeechError> {
        let session =
            |file: &str| super::runtime::session(&model.dir, &model.dir.join(file), Memory::Lean);
        let encoder = session(ENCODER)?;
        let decoder = session(DECODER)?;
        let past = decoder
            .inputs()
            .iter()
            .filter(|i| i.name().starts_with("past_key_values."))
            .map(|i| {
                let shape = i
                    .dtype()
                    .tensor_shape()
                    .map(|s| s.iter().copied().collect::<Vec<i64>>())
                    .unwrap_or_default();
                // [batch, heads, sequence, head size]: batch 1, nothing cached yet.
                let shape = shape
                    .iter()
                    .enumerate()
                    .map(|(n, &d)| match n {
                        0 => 1,
                        2 => 0,
                        _ => d.max(1),
                    })
                    .collect();
                (i.name().to_owned(), shape)
            })
            .collect::<Vec<_>>();
        if past.is_empty() || past.len() % 4 != 0 {
            return Err(failed("the decoder has no key/value cache inputs"));
        }
        Ok(Self {
            encoder,
            decoder,
            vocab,
            past,
        })
    }

    fn transcribe(&mut self, audio: &[f32]) -> Result<Recognition, SpeechError> {
        let mut samples = audio[..audio.len().min(MAX_SAMPLES)].to_vec();
        let seconds = samples.len() as f32 / super::RATE as f32;
        if samples.len() < MIN_SAMPLES {
            samples.resize(MIN_SAMPLES, 0.0);
        }
        let n = samples.len() as i64;
        let input = Tensor::from_array(([1i64, n], samples)).map_err(failed)?;
        let mut out = self
            .encoder
            .run(ort::inputs!["input_values" => input])
            .map_err(failed)?;
        let hidden: DynValue = out
            .remove("last_hidden_state")
            .ok_or_else(|| failed("no encoder output"))?;
        drop(out);

        let max_tokens = (seconds * TOKENS_PER_SECOND).ceil() as usize + 2;
        let mut cache: Vec<DynValue> = Vec::with_capacity(self.past.len());
        for (_, shape) in &self.past {
            let empty =
                Tensor::<f32>::from_array((shape.clone(), Vec::<f32>::new())).map_err(failed)?;
            cache.push(empty.into_dyn());
        }
        let mut tokens: Vec<i64> = Vec::new();
        let mut log_prob = 0.0f64;
        let mut last = START;
        for step in 0..max_tokens {
            let ids = Tensor::from_array(([1i64, 1], vec![last])).map_err(failed)?;
            let branch = Tensor::from_array(([1i64], vec![step > 0])).map_err(failed)?;
            let mut inputs: Vec<(Cow<'_, str>, ort::session::SessionInputValue<'_>)> = vec![
                ("input_ids".into(), ids.into()),
                ("encoder_hidden_states".into(), (&hidden).into()),
                ("use_cache_branch".into(), branch.into()),
            ];
            for ((name, _), value) in self.past.iter().zip(&cache) {
                inputs.push((name.as_str().into(), value.into()));
            }
            let mut out = self.decoder.run(inputs).map_err(failed)?;
            let (token, p) = {
                let (_, logits) = out["logits"].try_extract_tensor::<f32>().map_err(failed)?;
                best(logits)
            };
            // The self-attention cache grows each step; the cross-attention cache is the
            // encoder's and stays as the first step made it.
            let mut next = Vec::with_capacity(cache.len());
            for ((name, _), old) in self.past.iter().zip(cache.drain(..)) {
                let present = name.replacen("past_key_values", "present", 1);
                if step > 0 && name.contains(".encoder.") {
                    next.push(old);
                } else {
                    next.push(out.remove(&present).ok_or_else(|| failed(&present))?);
                }
            }
            cache = next;
            if token == END {
                break;
            }
            log_prob += (p.max(1e-9) as f64).ln();
            tokens.push(token);
            last = token;
        }
        let confidence = if tokens.is_empty() {
            0.0
        } else {
            (log_prob / tokens.len() as f64).exp() as f32
        };
        Ok(Recognition {
            text: super::spelling::modern(&self.vocab.decode(&tokens)),
            confidence,
        })
    }
}

impl Engine for Moonshine {
    /// English only: the service gives it no other language.
    fn recognize(&mut self, audio: &[f32], _ask: &super::Ask) -> Result<Recognition, SpeechError> {
        self.transcribe(audio)
    }
}

/// The most likely token of the last position and its probability (softmax of the logits).
fn best(logits: &[f32]) -> (i64, f32) {
    let (mut arg, mut max) = (0usize, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if l > max {
            (arg, max) = (i, l);
        }
    }
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    (arg as i64, 1.0 / sum.max(1.0))
}

/// Moonshine's tokenizer: `tokenizer.bin` lists each token's bytes, length first (one byte,
/// or two when the first has its high bit set: the low seven bits, then the next byte × 128);
/// `▁` stands for a space. Read by hand: it is this model's own format, not a tokenizer file
/// any crate reads.
pub struct Vocab {
    tokens: Vec<Vec<u8>>,
}

impl Vocab {
    pub fn read(path: &Path) -> Result<Self, SpeechError> {
        let bytes = std::fs::read(path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        Self::parse(&bytes).ok_or_else(|| failed(format!("{}: not a tokenizer", path.display())))
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let mut len = bytes[i] as usize;
            i += 1;
            if len >= 128 {
                len = (len & 127) | ((*bytes.get(i)? as usize) << 7);
                i += 1;
            }
            tokens.push(bytes.get(i..i.checked_add(len)?)?.to_vec());
            i += len;
        }
        (tokens.len() > END as usize).then_some(Self { tokens })
    }

    pub fn decode(&self, ids: &[i64]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            // Control tokens (<unk>, <s>, </s>) are not text.
            if id > END
                && let Some(t) = usize::try_from(id).ok().and_then(|i| self.tokens.get(i))
            {
                bytes.extend_from_slice(t);
            }
        }
        String::from_utf8_lossy(&bytes)
            .replace('\u{2581}', " ")
            .trim()
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_reads_short_and_long_lengths_and_refuses_a_truncated_file() {
        let mut file = Vec::new();
        for t in ["<unk>", "<s>", "</s>", "\u{2581}hello", "."] {
            file.push(t.len() as u8);
            file.extend_from_slice(t.as_bytes());
        }
        let long = "x".repeat(200);
        file.extend_from_slice(&[(200 & 127) as u8 | 128, (200 >> 7) as u8]);
        file.extend_from_slice(long.as_bytes());
        let v = Vocab::parse(&file).unwrap();
        assert_eq!(v.decode(&[1, 3, 4, 2]), "hello.");
        assert_eq!(v.decode(&[5]), long);
        // Out of range and negative ids are skipped, not a panic.
        assert_eq!(v.decode(&[3, 99, -1]), "hello");
        assert!(Vocab::parse(&file[..file.len() - 1]).is_none());
    }

    #[test]
    fn the_best_token_has_its_softmax_probability() {
        let (t, p) = best(&[0.0, 5.0, 0.0]);
        assert_eq!(t, 1);
        assert!((p - 0.9867).abs() < 1e-3, "{p}");
    }

    #[test]
    fn a_missing_install_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let Err(SpeechError::Unavailable(why)) = Model::find(dir.path()) else {
            panic!("an empty folder is not a model");
        };
        assert!(why.contains("encoder_model.onnx") && why.contains("install-speech.sh"));
    }
}
