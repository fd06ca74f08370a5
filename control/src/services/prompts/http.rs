//! The operator's voice engine beside the local ones: each piece of a text is posted to a
//! speech service in the OpenAI audio API's shape (`POST …/audio/speech`, JSON `model`,
//! `input`, `voice`, `response_format: "wav"`, `speed`), which hosted engines and self-hosted
//! servers speak, and the WAV it answers is the piece's audio. [`ByLanguage`] puts it beside
//! the local engine for the languages the operator names (`speech.tts_http_languages`): a
//! `<Say language="es-MX">` is spoken by it, an English one stays with the local voice.
//! The URL is the operator's, not an account's, so the egress policy for applications' URLs
//! does not apply to it.

use super::PromptError;
use super::tts::{Gender, RATES, Tts, Voice};
use crate::services::speech::Languages;
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::decode::decode_to_8k;
use switchboard_speech::{EngineKind, primary_language};

/// Where the service is and what to ask it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTtsConfig {
    pub url: String,
    pub model: String,
    /// The service's voices for a woman's and a man's voice (Twilio's `woman`/`man`, Polly's
    /// by their gender).
    pub female: String,
    pub male: String,
    /// Sent as `Authorization: Bearer`, when given.
    pub token: Option<String>,
    pub timeout: Duration,
}

/// The paces asked of the service: SSML's (see [`RATES`]) within the OpenAI API's 0.25–4.
const SPEEDS: (f32, f32) = (0.25, *RATES.end());

/// Longest piece posted at once: the first is heard while the rest render.
const PIECE_CHARS: usize = 400;

pub struct HttpTts {
    config: HttpTtsConfig,
    id: String,
    client: reqwest::Client,
}

impl HttpTts {
    pub fn new(config: HttpTtsConfig) -> Result<Self, String> {
        let client = crate::infra::egress::Clients::operator_client(config.timeout)?;
        // In cache keys: another service or model speaks the same text differently.
        let id = format!("http {} {}", config.url, config.model);
        Ok(Self { config, id, client })
    }
}

impl Tts for HttpTts {
    fn id(&self) -> &str {
        &self.id
    }

    fn pick(&self, voice: &Voice) -> (String, Option<String>) {
        let name = match voice.gender {
            Gender::Female => &self.config.female,
            Gender::Male => &self.config.male,
        };
        (name.clone(), voice.fallback.clone())
    }

    fn check(&self) -> Result<String, String> {
        Ok(format!("{} ({})", self.config.url, self.config.model))
    }

    /// Sentences, gathered into pieces of at most [`PIECE_CHARS`] (a longer sentence is a
    /// piece of its own).
    fn pieces(&self, text: &str, _voice: &str) -> Result<Vec<String>, PromptError> {
        let mut pieces: Vec<String> = Vec::new();
        let mut current = String::new();
        for sentence in sentences(text) {
            if !current.is_empty() && current.len() + sentence.len() > PIECE_CHARS {
                pieces.push(std::mem::take(&mut current));
            }
            current.push_str(sentence);
        }
        if !current.trim().is_empty() {
            pieces.push(current);
        }
        Ok(pieces)
    }

    fn parallel(&self) -> usize {
        2
    }

    fn render(&self, piece: &str, voice: &str, rate: f32) -> Result<Vec<i16>, PromptError> {
        let failed = |e: String| PromptError::Tts(format!("{}: {e}", self.config.url));
        let body = serde_json::json!({
            "model": self.config.model,
            "input": piece.trim(),
            "voice": voice,
            "response_format": "wav",
            // SSML's pace, within what the OpenAI API takes (0.25 to 4).
            "speed": rate.clamp(SPEEDS.0, SPEEDS.1),
        });
        let mut request = (self.client.post(&self.config.url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        // The engine's calls block (they run off the async threads); each drives its request
        // on a runtime of its own.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let audio = rt.block_on(async {
            let response = request.send().await.map_err(|e| failed(e.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(failed(format!("HTTP {status}")));
            }
            super::fetch::read_capped(response, "POST", &self.config.url).await
        })?;
        decode_to_8k(audio, Some("wav")).map_err(|e| failed(e.to_string()))
    }
}

/// `text` cut after each `.`, `?` or `!` that a space follows, the pieces kept whole.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = (rest.char_indices())
            .find(|&(i, c)| {
                matches!(c, '.' | '?' | '!')
                    && rest[i + c.len_utf8()..].starts_with(char::is_whitespace)
            })
            .map_or(rest.len(), |(i, c)| i + c.len_utf8());
        let (sentence, tail) = rest.split_at(end);
        rest = tail;
        Some(sentence)
    })
}

/// The operator's engine for some languages, the local one for the rest (English with its
/// natural voice among them, unless named).
pub struct ByLanguage {
    local: Arc<dyn Tts>,
    http: Arc<dyn Tts>,
    languages: Languages,
    id: String,
}

/// How a voice of the operator's engine is told from a local one in the engine voice
/// [`Tts::pick`] gives.
const HTTP_VOICE: &str = "http:";

impl ByLanguage {
    pub fn new(local: Arc<dyn Tts>, http: Arc<dyn Tts>, languages: Languages) -> Self {
        let id = format!("{} + {} for {languages:?}", local.id(), http.id());
        Self {
            local,
            http,
            languages,
            id,
        }
    }

    /// Whether the operator's engine speaks `language` (a BCP 47 tag).
    fn speaks(&self, language: &str) -> bool {
        primary_language(language).is_some_and(|code| match &self.languages {
            Languages::Rest => code != "en",
            named => named.names(&code),
        })
    }

    /// The engine an engine voice is of, and the voice as that engine names it.
    fn engine<'a>(&self, voice: &'a str) -> (&dyn Tts, &'a str) {
        match voice.strip_prefix(HTTP_VOICE) {
            Some(voice) => (&*self.http, voice),
            None => (&*self.local, voice),
        }
    }
}

impl Tts for ByLanguage {
    fn id(&self) -> &str {
        &self.id
    }

    fn pick(&self, voice: &Voice) -> (String, Option<String>) {
        // The operator's map of the voice's provider wins over the languages they gave it.
        let http = match voice.engine {
            Some(EngineKind::Http) => true,
            Some(EngineKind::Local) => false,
            None => self.speaks(&voice.language),
        };
        if http {
            let (name, fallback) = self.http.pick(voice);
            (format!("{HTTP_VOICE}{name}"), fallback)
        } else {
            self.local.pick(voice)
        }
    }

    fn check(&self) -> Result<String, String> {
        let local = self.local.check()?;
        let http = self.http.check()?;
        Ok(format!("{local}; {http} for {:?}", self.languages))
    }

    fn pieces(&self, text: &str, voice: &str) -> Result<Vec<String>, PromptError> {
        let (engine, voice) = self.engine(voice);
        engine.pieces(text, voice)
    }

    fn parallel(&self) -> usize {
        self.local.parallel().max(self.http.parallel())
    }

    fn render(&self, piece: &str, voice: &str, rate: f32) -> Result<Vec<i16>, PromptError> {
        let (engine, voice) = self.engine(voice);
        engine.render(piece, voice, rate)
    }

    fn render_streamed(
        &self,
        piece: &str,
        voice: &str,
        rate: f32,
        out: &mut dyn FnMut(Vec<i16>),
    ) -> Result<(), PromptError> {
        let (engine, voice) = self.engine(voice);
        engine.render_streamed(piece, voice, rate, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::prompts::tts::{EspeakNg, resolve_voice};

    /// The operator's engine at an address nothing answers (these tests send nothing).
    fn engine() -> HttpTts {
        HttpTts::new(HttpTtsConfig {
            url: "http://tts.invalid/v1/audio/speech".into(),
            model: "tts-1".into(),
            female: "nova".into(),
            male: "onyx".into(),
            token: None,
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    #[test]
    fn a_text_is_cut_after_its_sentences_into_bounded_pieces() {
        let got: Vec<&str> = sentences("Hola. ¿Qué tal? Bien, 3.5 euros!").collect();
        assert_eq!(got, ["Hola.", " ¿Qué tal?", " Bien, 3.5 euros!"]);
        let engine = engine();
        let long = "Una frase corta. ".repeat(60);
        let pieces = engine.pieces(&long, "nova").unwrap();
        assert!(pieces.len() > 1 && pieces.iter().all(|p| p.len() <= PIECE_CHARS));
        assert_eq!(pieces.concat(), long.trim_end().to_owned() + " ");
    }

    /// The languages named go to the operator's engine, by gender; the rest stay local.
    #[test]
    fn the_operators_engine_speaks_the_languages_it_is_given() {
        let http = engine();
        let local: Arc<dyn Tts> = Arc::new(EspeakNg::default());
        let spanish = ByLanguage::new(
            local.clone(),
            Arc::new(http),
            Languages::Only(vec!["es".into()]),
        );
        let pick = |voice: &str, language: &str| {
            spanish.pick(&resolve_voice(Some(voice), Some(language))).0
        };
        assert_eq!(pick("woman", "es-MX"), "http:nova");
        assert_eq!(pick("man", "es-ES"), "http:onyx");
        assert_eq!(pick("Polly.Lupe", "es-US"), "http:nova");
        assert_eq!(
            pick("woman", "en-US"),
            local.pick(&resolve_voice(Some("woman"), Some("en-US"))).0
        );
        assert_eq!(pick("man", "fr-FR"), "fr-fr");
    }
}
