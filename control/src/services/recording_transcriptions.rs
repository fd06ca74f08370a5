//! Transcriptions of saved recordings, the same for every dialect (Twilio's `<Record
//! transcribe>` and its Transcriptions resource, Telnyx's `record_start` with
//! `transcription`): a row stored `in-progress` when asked for, the recording decoded and
//! recognised off the async threads, the row finished `completed` with its text or `failed`.
//! A dialect reports the finished row in its own shape.

use crate::infra::store::{Store, TranscriptionRow};
use crate::services::speech::Speech;
use std::sync::Arc;
use tracing::warn;

pub struct RecordingTranscriptions {
    store: Store,
    speech: Arc<Speech>,
}

/// A recording to transcribe.
#[derive(Debug, Clone)]
pub struct Transcribe {
    pub account: String,
    pub recording: String,
    pub call: Option<String>,
    /// The saved file (WAV or MP3, by its extension).
    pub path: String,
    pub duration_ms: u64,
    /// The language spoken (a BCP 47 tag); `None` is English.
    pub language: Option<String>,
    /// The engine the operator maps the application's named provider to, if it named one
    /// they map.
    pub engine: Option<crate::services::speech::EngineKind>,
}

impl RecordingTranscriptions {
    pub fn new(store: Store, speech: Arc<Speech>) -> Self {
        Self { store, speech }
    }

    /// Stores the transcription `in-progress` and returns its row (its sid names it at once).
    pub async fn begin(&self, t: &Transcribe) -> TranscriptionRow {
        let now = crate::infra::clock::now_ms();
        let row = TranscriptionRow {
            sid: crate::infra::sid::new_sid("TR"),
            account_sid: t.account.clone(),
            recording_sid: t.recording.clone(),
            call_sid: t.call.clone(),
            status: "in-progress".into(),
            text: None,
            duration_ms: t.duration_ms,
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = self.store.add_transcription(&row).await {
            warn!(error = %e, recording = %t.recording, "cannot store the transcription");
        }
        row
    }

    /// Recognises the recording and stores the outcome: the row finished.
    pub async fn finish(&self, mut row: TranscriptionRow, job: &Transcribe) -> TranscriptionRow {
        let path = job.path.as_str();
        let text = self
            .recognise(path, job.language.as_deref(), job.engine)
            .await;
        row.status = match &text {
            Ok(_) => "completed",
            Err(e) => {
                warn!(error = %e, %path, "cannot transcribe the recording");
                "failed"
            }
        }
        .into();
        row.text = text.ok();
        row.updated_at = crate::infra::clock::now_ms();
        if let Err(e) = (self.store)
            .finish_transcription(&row.sid, &row.status, row.text.as_deref(), row.updated_at)
            .await
        {
            warn!(error = %e, "cannot store the transcription's text");
        }
        row
    }

    async fn recognise(
        &self,
        path: &str,
        language: Option<&str>,
        engine: Option<crate::services::speech::EngineKind>,
    ) -> Result<String, String> {
        let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
        let ext = std::path::Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let samples = tokio::task::spawn_blocking(move || {
            switchboard_media::decode::decode_to_8k(bytes, ext.as_deref())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        (self.speech.transcribe(&samples, language, engine).await)
            .map(|r| r.text)
            .map_err(|e| e.to_string())
    }
}
