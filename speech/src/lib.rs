//! Speech recognition on the box: an [`Engine`] turns an utterance (16 kHz mono samples) into
//! text with a confidence; a [`Pool`] runs engines on worker threads off the media path, with a
//! bounded queue, so a call never waits for one; an [`Endpointer`] cuts a call's 8 kHz frames
//! into utterances (sans-IO) and says when to ask for partial and final results;
//! [`Grammar`] and hints shape the text for digits, yes/no and expected phrases.
//!
//! The local engine is Moonshine base-en through ONNX Runtime ([`moonshine`]), the best of
//! what a package registry carries here (../shared/reference/speech.md: exact on 20 of 20
//! phone phrases at a real-time factor of ~0.1 per core; Whisper tiny.en was worse and slower,
//! pocketsphinx poor free-form).

pub mod endpoint;
pub mod grammar;
pub mod moonshine;
pub mod piper;
pub mod pool;
pub mod runtime;
pub mod spelling;

pub use endpoint::{Endpointer, EndpointerConfig, Utterance, voiced};
pub use grammar::Grammar;
pub use pool::{Pool, PoolStats};
use std::sync::Arc;

/// The sample rate engines take.
pub const RATE: u32 = 16000;

/// What an engine heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    pub text: String,
    /// 0.0–1.0.
    pub confidence: f32,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SpeechError {
    /// Every worker is busy and the queue is full: the request is refused now, not delayed.
    #[error("speech recognition is busy")]
    Busy,
    #[error("not available: {0}")]
    Unavailable(String),
    #[error("speech recognition failed: {0}")]
    Failed(String),
}

/// What an utterance is to be heard as, besides its audio: the caller's language and the
/// words the application expects. An engine that has one language (Moonshine base-en) is
/// only given utterances of it (the service chooses the engine by language); one that has
/// many (a Whisper server) is told which.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    /// A BCP 47 tag (`es-MX`), as the application gave it; `None`: the engine's own.
    pub language: Option<Arc<str>>,
    /// The application's hints, as a prompt that biases the engine's words.
    pub prompt: Option<Arc<str>>,
}

impl Ask {
    /// The language's primary subtag, lower case (`es` for `es-MX`): what ISO 639-1 APIs
    /// such as OpenAI's take.
    pub fn language_code(&self) -> Option<String> {
        primary_language(self.language.as_deref()?)
    }
}

/// The primary language subtag of a BCP 47 tag (`es` of `es-MX`, `es_MX` or `ES`), lower
/// case; `None` when it is not two or three letters (RFC 5646's shortest ISO 639 codes): the
/// one test of a language every engine and voice is chosen by.
pub fn primary_language(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next()?;
    ((2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| primary.to_ascii_lowercase())
}

/// Which of the server's engines serves a provider's name (`transcriptionProvider="Deepgram"`,
/// `ttsProvider="ElevenLabs"`, a `Polly.` voice, Telnyx's `transcription_engine`), as the
/// operator maps it: the local one, or the operator's HTTP one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    Local,
    Http,
}

/// The operator's map of provider names (lower case) to engines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderEngines(Vec<(String, EngineKind)>);

impl ProviderEngines {
    /// At most this many names (a provider list is short; the bound keeps a file's mistake
    /// from becoming a large table scanned per utterance).
    pub const MAX: usize = 64;

    /// `name=local` or `name=http` entries; the error says which entry is wrong.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        if entries.len() > Self::MAX {
            return Err(format!("at most {} providers", Self::MAX));
        }
        let mut map = Vec::with_capacity(entries.len());
        for entry in entries {
            let (name, kind) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not provider=engine"))?;
            let name = name.trim().to_ascii_lowercase();
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_name {
                return Err(format!(
                    "{entry:?}: a provider's name is letters and digits"
                ));
            }
            let kind = match kind.trim().to_ascii_lowercase().as_str() {
                "local" => EngineKind::Local,
                "http" => EngineKind::Http,
                other => return Err(format!("{entry:?}: {other:?} is not local or http")),
            };
            map.retain(|(n, _): &(String, EngineKind)| *n != name);
            map.push((name, kind));
        }
        Ok(Self(map))
    }

    /// The engine `provider` (any case) is mapped to, if it is.
    pub fn engine(&self, provider: &str) -> Option<EngineKind> {
        let provider = provider.trim();
        (self.0.iter())
            .find(|(name, _)| name.eq_ignore_ascii_case(provider))
            .map(|(_, kind)| *kind)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A speech-to-text engine. `recognize` blocks (it runs on a [`Pool`] worker); one instance
/// serves one worker, so it may keep mutable state.
pub trait Engine: Send {
    /// `audio` is one utterance at [`RATE`], samples in -1.0..1.0.
    fn recognize(&mut self, audio: &[f32], ask: &Ask) -> Result<Recognition, SpeechError>;
}

/// Makes the engine of each worker; a second engine (a network one, say) plugs in here.
pub trait EngineFactory: Send + Sync {
    /// For logs and errors.
    fn name(&self) -> &str;
    fn open(&self) -> Result<Box<dyn Engine>, SpeechError>;
}

#[cfg(test)]
mod provider_tests {
    use super::*;

    #[test]
    fn provider_names_map_to_engines() {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let map = ProviderEngines::parse(&list(&["Deepgram=http", "google = local"])).unwrap();
        assert_eq!(map.engine("deepgram"), Some(EngineKind::Http));
        assert_eq!(map.engine("GOOGLE"), Some(EngineKind::Local));
        assert_eq!(map.engine("azure"), None);
        for bad in ["deepgram", "deepgram=cloud", "=http", "dee pgram=http"] {
            assert!(ProviderEngines::parse(&list(&[bad])).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=ProviderEngines::MAX)
            .map(|i| format!("p{i}=http"))
            .collect();
        assert!(ProviderEngines::parse(&many).is_err());
    }
}
