//! A network speech engine: each utterance is posted as a WAV file to an HTTP transcription
//! service in the OpenAI audio API's shape (`POST …/audio/transcriptions`, multipart `file`
//! and `model`, with the caller's `language` as ISO 639-1 and the application's hints as a
//! `prompt`; answer `{"text": …}`), which self-hosted servers speak (faster-whisper and
//! whisper.cpp front ends, LocalAI, vLLM) as well as hosted ones. Chosen by configuration
//! (`speech.engine = "http"`, or beside the local engine for `speech.http_languages`); the
//! pool, endpointer, grammars and every dialect stay the same.
//! The URL is the operator's, not an account's, so the egress policy for applications' URLs
//! does not apply to it.

use std::time::Duration;
use switchboard_speech::{Ask, Engine, EngineFactory, RATE, Recognition, SpeechError};

/// Where the service is and what to ask it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEngineConfig {
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer`, when given.
    pub token: Option<String>,
    pub timeout: Duration,
}

pub struct HttpFactory(pub HttpEngineConfig);

impl EngineFactory for HttpFactory {
    fn name(&self) -> &str {
        "http"
    }

    fn open(&self) -> Result<Box<dyn Engine>, SpeechError> {
        Ok(Box::new(HttpEngine::open(self.0.clone())?))
    }
}

/// One worker's engine: its client, and the runtime it drives it on.
pub(super) struct HttpEngine {
    pub(super) config: HttpEngineConfig,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl HttpEngine {
    pub(super) fn open(config: HttpEngineConfig) -> Result<Self, SpeechError> {
        // Each worker thread drives its requests on a runtime of its own: the pool's threads
        // are not the server's async threads, and the engine's call blocks by design.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SpeechError::Unavailable(e.to_string()))?;
        let client = crate::infra::egress::Clients::operator_client(config.timeout)
            .map_err(SpeechError::Unavailable)?;
        Ok(Self { config, rt, client })
    }
}

impl Engine for HttpEngine {
    fn recognize(&mut self, audio: &[f32], ask: &Ask) -> Result<Recognition, SpeechError> {
        let failed = |e: String| SpeechError::Failed(format!("{}: {e}", self.config.url));
        let samples: Vec<i16> = audio
            .iter()
            .map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .collect();
        let file =
            reqwest::multipart::Part::bytes(switchboard_media::record::wav_mono_at(&samples, RATE))
                .file_name("utterance.wav")
                .mime_str("audio/wav")
                .map_err(|e| failed(e.to_string()))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.config.model.clone())
            .text("response_format", "json");
        // Told, a multilingual model hears that language rather than guessing it from a few
        // seconds of telephone audio (and guessing wrong turns a Spanish caller's words into
        // an English translation).
        if let Some(language) = ask.language_code() {
            form = form.text("language", language);
        }
        if let Some(prompt) = &ask.prompt {
            form = form.text("prompt", prompt.to_string());
        }
        let mut request = self.client.post(&self.config.url).multipart(form);
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        let body: serde_json::Value = self.rt.block_on(async {
            let response = request.send().await.map_err(|e| failed(e.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(failed(format!("HTTP {status}")));
            }
            let text = response.text().await.map_err(|e| failed(e.to_string()))?;
            serde_json::from_str(&text).map_err(|e| failed(e.to_string()))
        })?;
        let text = body["text"]
            .as_str()
            .ok_or_else(|| failed("the answer has no \"text\"".into()))?;
        Ok(Recognition {
            text: text.trim().to_owned(),
            // The API gives no confidence; a service that does says so in `confidence`.
            confidence: body["confidence"].as_f64().unwrap_or(1.0) as f32,
        })
    }
}
