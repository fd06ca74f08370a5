//! What applications play: audio files, http(s) URLs and speech, turned into the 8 kHz clips
//! the media engine plays (`CallCommand::Play`). Decoding and rendering run off the async
//! threads; results are kept in memory (bounded) and on disk.

pub mod disk;
pub mod fetch;
pub mod neural;
pub mod tts;

use crate::egress::{Clients, Reach};
use disk::DiskBudget;
use fetch::UrlCache;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use switchboard_media::Clip;
use switchboard_media::decode::{DecodeError, decode_to_8k};
use tracing::{info, warn};
use tts::{MAX_TEXT_CHARS, Tts, resolve_voice};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    #[error("{0}")]
    BadSource(String),
    #[error("{0}")]
    Fetch(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("text to speech failed: {0}")]
    Tts(String),
    #[error("{0}")]
    Io(String),
}

/// Speech and the voice it was spoken in.
#[derive(Debug, Clone)]
pub struct Spoken {
    pub clip: Clip,
    /// The engine voice used (`en-us+f3` for espeak-ng).
    pub voice: String,
    /// Set when the requested voice or language was not available and another was used.
    pub fallback: Option<String>,
}

pub struct Prompts {
    urls: UrlCache,
    tts: Arc<dyn Tts>,
    speech_dir: PathBuf,
    clips: Mutex<ClipCache>,
    disk: Arc<DiskBudget>,
}

impl Prompts {
    /// Fetched files are kept under `cache_dir/http`, rendered speech under
    /// `cache_dir/speech`, together at most [`disk::DEFAULT_MAX_BYTES`] (see
    /// [`Prompts::with_disk_limit`]).
    /// URLs are fetched through `clients`, as the requesting account's reach allows.
    pub fn new(cache_dir: &Path, tts: Arc<dyn Tts>, clients: Clients) -> Self {
        let (http_dir, speech_dir) = (cache_dir.join("http"), cache_dir.join("speech"));
        let disk = DiskBudget::new(
            vec![http_dir.clone(), speech_dir.clone()],
            disk::DEFAULT_MAX_BYTES,
        );
        Self {
            urls: UrlCache::new(http_dir, clients, disk.clone()),
            tts,
            speech_dir,
            clips: Mutex::new(ClipCache::new(CLIP_CACHE_SAMPLES)),
            disk,
        }
    }

    /// Bounds the caches on disk at `max_bytes` together, the least recently used entries
    /// removed first.
    pub fn with_disk_limit(self, max_bytes: u64) -> Self {
        self.disk.set_max(max_bytes);
        self
    }

    /// A WAV or MP3 file on this machine.
    pub async fn file(&self, path: &Path) -> Result<Clip, PromptError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| PromptError::Io(format!("{}: {e}", path.display())))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        decode(bytes, ext).await
    }

    /// A WAV or MP3 file at an http(s) URL: fetched once, then revalidated by its ETag or
    /// Last-Modified; decoded once per version.
    pub async fn url(&self, url: &str, reach: Reach) -> Result<Clip, PromptError> {
        let fetched = self.urls.get(url, reach).await?;
        let key = format!("url\n{url}\n{}", fetched.version);
        if !fetched.version.is_empty()
            && let Some(clip) = self.cached(&key)
        {
            return Ok(clip);
        }
        let clip = decode(fetched.body, fetched.extension.map(str::to_owned)).await?;
        if !fetched.version.is_empty() {
            self.keep(key, clip.clone());
        }
        Ok(clip)
    }

    /// `text` spoken in the provider voice `voice` (Twilio, Telnyx or SignalWire names) and
    /// `language`; rendered once per text and voice.
    pub async fn say(
        &self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
    ) -> Result<Spoken, PromptError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PromptError::BadSource("there is no text to say".into()));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(PromptError::BadSource(format!(
                "the text is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let wanted = resolve_voice(voice, language);
        let (engine_voice, engine_fallback) = self.tts.pick(&wanted);
        let fallback = wanted.fallback.or(engine_fallback);
        if let Some(why) = &fallback {
            info!(%why, voice = %engine_voice, "speech voice fallback");
        }
        let key = format!("say\n{}\n{engine_voice}\n{text}", self.tts.id());
        let spoken = |clip| Spoken {
            clip,
            voice: engine_voice.clone(),
            fallback: fallback.clone(),
        };
        if let Some(clip) = self.cached(&key) {
            return Ok(spoken(clip));
        }
        let file = self.speech_dir.join(format!(
            "{}.s16",
            hex::encode(Sha256::digest(key.as_bytes()))
        ));
        if let Ok(bytes) = tokio::fs::read(&file).await {
            DiskBudget::touch(&file);
            let clip: Clip = bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            self.keep(key, clip.clone());
            return Ok(spoken(clip));
        }
        let tts = self.tts.clone();
        let (text_owned, voice_owned) = (text.to_owned(), engine_voice.clone());
        let samples = tokio::task::spawn_blocking(move || tts.render(&text_owned, &voice_owned))
            .await
            .map_err(|e| PromptError::Tts(e.to_string()))??;
        if samples.is_empty() {
            return Err(PromptError::Tts("the engine produced no audio".into()));
        }
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        match write_atomically(&self.speech_dir, &file, &bytes).await {
            Ok(()) => self.disk.wrote(bytes.len() as u64),
            Err(e) => warn!(error = %e, "cannot cache rendered speech"),
        }
        let clip: Clip = samples.into();
        self.keep(key, clip.clone());
        Ok(spoken(clip))
    }

    fn cached(&self, key: &str) -> Option<Clip> {
        self.clips.lock().expect("clip cache").get(key)
    }

    fn keep(&self, key: String, clip: Clip) {
        self.clips.lock().expect("clip cache").insert(key, clip);
    }
}

async fn decode(bytes: Vec<u8>, ext: Option<String>) -> Result<Clip, PromptError> {
    let samples = tokio::task::spawn_blocking(move || decode_to_8k(bytes, ext.as_deref()))
        .await
        .map_err(|e| PromptError::Io(e.to_string()))??;
    Ok(samples.into())
}

async fn write_atomically(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = file.with_extension("tmp");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, file).await
}

/// Decoded clips held in memory: 16 M samples is 32 MB, about 35 minutes of prompts.
const CLIP_CACHE_SAMPLES: usize = 16 << 20;

/// Clips by key, the least recently used dropped first once the samples held pass a bound.
/// (A use stamp per entry and an ordered index of stamps; no crate needed for this much.)
struct ClipCache {
    clips: HashMap<String, (Clip, u64)>,
    by_use: BTreeMap<u64, String>,
    tick: u64,
    samples: usize,
    max_samples: usize,
}

impl ClipCache {
    fn new(max_samples: usize) -> Self {
        Self {
            clips: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            samples: 0,
            max_samples,
        }
    }

    fn get(&mut self, key: &str) -> Option<Clip> {
        let (clip, used) = self.clips.get_mut(key)?;
        self.tick += 1;
        let owner = self.by_use.remove(used).expect("indexed");
        *used = self.tick;
        self.by_use.insert(self.tick, owner);
        Some(clip.clone())
    }

    fn insert(&mut self, key: String, clip: Clip) {
        if clip.len() > self.max_samples || self.clips.contains_key(&key) {
            return;
        }
        self.tick += 1;
        self.samples += clip.len();
        self.by_use.insert(self.tick, key.clone());
        self.clips.insert(key, (clip, self.tick));
        while self.samples > self.max_samples {
            let Some((_, old)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((c, _)) = self.clips.remove(&old) {
                self.samples -= c.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cache_drops_the_least_recently_used_past_its_bound() {
        let mut cache = ClipCache::new(10);
        let clip = |n: usize| -> Clip { vec![0i16; n].into() };
        cache.insert("a".into(), clip(4));
        cache.insert("b".into(), clip(4));
        // "a" is played again, so "b" is the one to go.
        assert!(cache.get("a").is_some());
        cache.insert("c".into(), clip(4));
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        assert_eq!(cache.samples, 8);
        assert_eq!(cache.by_use.len(), 2);
        cache.insert("huge".into(), clip(11));
        assert!(cache.get("huge").is_none());
    }
}
