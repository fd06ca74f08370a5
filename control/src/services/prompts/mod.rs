//! What applications play: audio files, http(s) URLs and speech, turned into the 8 kHz clips
//! the media engine plays (`CallCommand::Play`). Decoding and rendering run off the async
//! threads; results are kept in memory (bounded) and on disk.

pub mod disk;
pub mod fetch;
pub mod http;
pub mod neural;
mod speaker;
pub mod tts;
pub mod turns;

use crate::infra::egress::{Clients, Reach};
use disk::DiskBudget;
use fetch::UrlCache;
use sha2::{Digest, Sha256};
use speaker::Speaker;
pub use speaker::{Progress, Rendering};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use switchboard_media::decode::{DecodeError, decode_to_8k};
use switchboard_media::{Clip, Part};
use tracing::info;
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

/// A piece of what is to be said (SSML rendered down to what the local voices can do):
/// words at a pace, or a pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SayPart {
    /// Words at `percent` of the voice's pace (100: its own), `gain_db` louder (0: as the
    /// voice speaks), in `language` (SSML's `<lang>`; `None`: the voice's).
    Words {
        text: String,
        percent: u16,
        gain_db: i8,
        language: Option<String>,
    },
    Pause {
        ms: u32,
    },
}

impl SayPart {
    /// Plain text: one part at the voice's pace.
    pub fn words(text: impl Into<String>) -> Vec<SayPart> {
        vec![SayPart::Words {
            text: text.into(),
            percent: 100,
            gain_db: 0,
            language: None,
        }]
    }
}

/// Speech and the voice it was spoken in.
#[derive(Debug, Clone)]
pub struct Spoken {
    pub speech: Speech,
    /// The engine voice used (`en-us+f3` for espeak-ng).
    pub voice: String,
    /// Set when the requested voice or language was not available and another was used.
    pub fallback: Option<String>,
    /// The most samples it may come to (a rendering's is judged from its text).
    pub most_samples: usize,
}

/// Speech whole (from a cache), or still rendering.
#[derive(Debug, Clone)]
pub enum Speech {
    Rendered(Clip),
    Rendering(Rendering),
}

/// The longest a character of text is spoken for, in samples (150 ms; speech runs at about
/// 70 ms a character): the bound a rendering's audio is judged by before it is whole.
const MOST_SAMPLES_PER_CHAR: usize = 1200;

impl Spoken {
    /// As a prompt part, played `times` over: a rendering plays from its first piece.
    pub fn part(&self, times: u32) -> Part {
        match &self.speech {
            Speech::Rendered(clip) => Part::Audio(clip.clone(), times),
            Speech::Rendering(r) => Part::Growing(r.clip.clone(), times),
        }
    }

    /// The whole speech, once rendered.
    pub async fn whole(&self) -> Result<Clip, PromptError> {
        let r = match &self.speech {
            Speech::Rendered(clip) => return Ok(clip.clone()),
            Speech::Rendering(r) => r,
        };
        let mut progress = r.progress.clone();
        let end = progress
            .wait_for(|p| p.end.is_some())
            .await
            .map_err(|_| PromptError::Tts("the rendering stopped".into()))?
            .end
            .clone();
        end.expect("waited for")?;
        r.clip
            .joined()
            .ok_or_else(|| PromptError::Tts("the rendering stopped".into()))
    }
}

pub struct Prompts {
    urls: UrlCache,
    speaker: Arc<Speaker>,
    clips: Arc<Mutex<ClipCache>>,
    disk: Arc<DiskBudget>,
    /// The providers the operator and the accounts map to engines (a `Polly.` voice, a
    /// ConversationRelay's `ttsProvider`).
    providers: Option<Arc<crate::services::speech::SpeechProviders>>,
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
        let clips = Arc::new(Mutex::new(ClipCache::new(CLIP_CACHE_SAMPLES)));
        Self {
            urls: UrlCache::new(http_dir, clients, disk.clone()),
            speaker: Speaker::new(tts, speech_dir, disk.clone(), clips.clone()),
            clips,
            disk,
            providers: None,
        }
    }

    /// Speaks the voices of the providers these maps name by their engines.
    pub fn with_providers(
        mut self,
        providers: Arc<crate::services::speech::SpeechProviders>,
    ) -> Self {
        self.providers = Some(providers);
        self
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

    /// A WAV or MP3 file given inline (Telnyx's base64 `playback_content`): decoded as a
    /// fetched one is (the content decides which), and not kept.
    pub async fn content(&self, bytes: Vec<u8>) -> Result<Clip, PromptError> {
        decode(bytes, None).await
    }

    /// `text` spoken in the provider voice `voice` (Twilio, Telnyx or SignalWire names) and
    /// `language` for `account`; rendered once per text and voice, and returned as soon as its
    /// first piece is (the rest renders while the call plays it).
    pub async fn say(
        &self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
        account: &str,
    ) -> Result<Spoken, PromptError> {
        self.say_at(text, voice, language, (1.0, 0), account).await
    }

    /// [`Self::say`] at `rate` times the voice's pace (SSML's `<prosody rate>`) and `gain_db`
    /// louder (`<prosody volume>`, `<emphasis>`).
    pub async fn say_at(
        &self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
        (rate, gain_db): (f32, i8),
        account: &str,
    ) -> Result<Spoken, PromptError> {
        self.say_as(
            text,
            voice,
            resolve_voice(voice, language),
            (rate, gain_db),
            account,
        )
        .await
    }

    /// [`Self::say_at`] in the voice `wanted`, resolved already from the provider's `voice`.
    async fn say_as(
        &self,
        text: &str,
        voice: Option<&str>,
        mut wanted: tts::Voice,
        (rate, gain_db): (f32, i8),
        account: &str,
    ) -> Result<Spoken, PromptError> {
        let rate = rate.clamp(*tts::RATES.start(), *tts::RATES.end());
        let text = text.trim();
        if text.is_empty() {
            return Err(PromptError::BadSource("there is no text to say".into()));
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(PromptError::BadSource(format!(
                "the text is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let tts = &self.speaker.tts;
        // A voice of a provider the operator (or the account) maps to an engine is that
        // engine's.
        if let (Some(providers), Some(provider)) =
            (&self.providers, voice.and_then(tts::provider_of_voice))
        {
            wanted.engine = providers.engine(account, provider);
        }
        let (engine_voice, engine_fallback) = tts.pick(&wanted);
        let fallback = wanted.fallback.or(engine_fallback);
        if let Some(why) = &fallback {
            info!(%why, voice = %engine_voice, "speech voice fallback");
        }
        // The pace and the gain are in the key only when asked: clips rendered before them
        // keep theirs.
        let mut pace = if rate == 1.0 {
            String::new()
        } else {
            format!("@{rate:.2}")
        };
        if gain_db != 0 {
            pace += &format!("~{gain_db}dB");
        }
        let key = format!("say\n{}\n{engine_voice}{pace}\n{text}", tts.id());
        let spoken = |speech: Speech| Spoken {
            most_samples: match &speech {
                Speech::Rendered(clip) => clip.len(),
                Speech::Rendering(_) => chars.saturating_mul(MOST_SAMPLES_PER_CHAR),
            },
            speech,
            voice: engine_voice.clone(),
            fallback: fallback.clone(),
        };
        if let Some(clip) = self.cached(&key) {
            return Ok(spoken(Speech::Rendered(clip)));
        }
        let file = self.speaker.speech_dir().join(format!(
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
            return Ok(spoken(Speech::Rendered(clip)));
        }
        let job = speaker::Job {
            key,
            text: text.to_owned(),
            voice: engine_voice.clone(),
            rate,
            gain_db,
            account: account.to_owned(),
            file,
        };
        let rendering = self.speaker.render(job).await?;
        Ok(spoken(Speech::Rendering(rendering)))
    }

    /// What `parts` say, as one prompt: each part's words spoken at its pace (rendered as
    /// they play), its pauses silence.
    pub async fn say_parts(
        &self,
        parts: &[SayPart],
        voice: Option<&str>,
        language: Option<&str>,
        account: &str,
    ) -> Result<(Vec<Part>, Vec<Spoken>), PromptError> {
        let mut out = Vec::with_capacity(parts.len());
        let mut spoken = Vec::new();
        for part in parts {
            match part {
                SayPart::Words {
                    text,
                    percent,
                    gain_db,
                    language: span,
                } => {
                    let style = (f32::from(*percent) / 100.0, *gain_db);
                    let s = match span {
                        // The voice asked for, in the span's language (that language's voice
                        // of its gender).
                        Some(span) => {
                            let mut wanted = resolve_voice(voice, language);
                            wanted.language = span.to_ascii_lowercase();
                            self.say_as(text, voice, wanted, style, account).await?
                        }
                        None => self.say_at(text, voice, language, style, account).await?,
                    };
                    out.push(s.part(1));
                    spoken.push(s);
                }
                SayPart::Pause { ms } => out.push(Part::Silence(*ms as usize * 8)),
            }
        }
        if spoken.is_empty() {
            return Err(PromptError::BadSource("there is no text to say".into()));
        }
        Ok((out, spoken))
    }

    /// [`Prompts::say_parts`] rendered whole into one clip, pauses as silence: for what
    /// plays from one clip (a conference's announcements), not from a growing prompt.
    pub async fn say_whole(
        &self,
        parts: &[SayPart],
        voice: Option<&str>,
        language: Option<&str>,
        account: &str,
    ) -> Result<Clip, PromptError> {
        let (prompt, spoken) = self.say_parts(parts, voice, language, account).await?;
        let mut words = spoken.into_iter();
        let mut samples = Vec::new();
        // `say_parts` gives one part per words spoken, in order, and silence for the pauses.
        for part in prompt {
            if let Part::Silence(n) = part {
                samples.resize(samples.len() + n, 0);
                continue;
            }
            let said = (words.next())
                .ok_or_else(|| PromptError::BadSource("the speech of a part is missing".into()))?;
            samples.extend_from_slice(&said.whole().await?);
        }
        Ok(samples.into())
    }

    /// Pieces of speech waiting for their turn at the engine.
    pub fn speech_waiting(&self) -> usize {
        self.speaker.waiting()
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
