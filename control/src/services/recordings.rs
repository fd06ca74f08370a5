//! The recordings service every dialect serves recordings from: an account's recordings
//! (only ever its own), their media as WAV or MP3 — converted from the stored form on first
//! request and kept beside it, so a second download costs a file read — and deletion (the
//! row, the file and its conversion). The dialects render the rows and map the errors.

use crate::infra::store::{CallRecord, RecordingRow, Store, StoreError, StoreReader};
use std::path::{Path, PathBuf};
use switchboard_media::record::{read_wav, wav_pcm16};

/// The two forms a recording is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Wav,
    Mp3,
}

impl MediaKind {
    /// The kind a file extension names (`wav`, `mp3`).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "wav" => Some(Self::Wav),
            "mp3" => Some(Self::Mp3),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Mp3 => "mp3",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/x-wav",
            Self::Mp3 => "audio/mpeg",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("no such recording")]
    NotFound,
    /// Still being written (in progress or paused).
    #[error("the recording is in progress")]
    InProgress,
    /// Saved, but its file is missing or cannot be converted.
    #[error("the recording's media cannot be served: {0}")]
    Media(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Recordings {
    store: Store,
    /// Rows are written behind the calls; a read waits for what was queued before it.
    writer: StoreReader,
}

impl Recordings {
    pub fn new(store: Store, writer: StoreReader) -> Self {
        Self { store, writer }
    }

    /// Recording `id` if it belongs to `account` (through its call); another account's is as
    /// unknown.
    pub async fn find(&self, account: &str, id: &str) -> Result<RecordingRow, RecordingError> {
        self.writer.sync().await;
        let row = (self.store.recording(id).await?).ok_or(RecordingError::NotFound)?;
        let owned = match self.store.get_call(&row.call_id).await? {
            Some(call) => call.account_sid.as_deref() == Some(account),
            // A conference's mix: the account's if the room is.
            None => (self.store)
                .conference(
                    &crate::services::account_conferences::room(account, ""),
                    &row.call_id,
                )
                .await?
                .is_some(),
        };
        if !owned {
            return Err(RecordingError::NotFound);
        }
        Ok(row)
    }

    /// Recording `id`, whoever's it is (its media URL is its capability).
    pub async fn any(&self, id: &str) -> Result<RecordingRow, RecordingError> {
        self.writer.sync().await;
        (self.store.recording(id).await?).ok_or(RecordingError::NotFound)
    }

    /// The call a recording was made of.
    pub async fn call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        self.store.get_call(id).await
    }

    /// The account's recordings, newest first (of one call when `call` is given).
    pub async fn list(
        &self,
        account: &str,
        call: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        self.writer.sync().await;
        self.store
            .account_recordings(account, call, offset, limit)
            .await
    }

    /// A saved recording's media in the form asked for.
    pub async fn media(
        &self,
        row: &RecordingRow,
        kind: MediaKind,
    ) -> Result<Vec<u8>, RecordingError> {
        match row.status.as_str() {
            "completed" => {}
            "in-progress" | "paused" => return Err(RecordingError::InProgress),
            _ => return Err(RecordingError::NotFound),
        }
        let stored = PathBuf::from(&row.path);
        let stored_kind = if row.format == "mp3" {
            MediaKind::Mp3
        } else {
            MediaKind::Wav
        };
        if stored_kind == kind {
            return tokio::fs::read(&stored)
                .await
                .map_err(|e| RecordingError::Media(e.to_string()));
        }
        let converted = stored.with_extension(kind.extension());
        if let Ok(bytes) = tokio::fs::read(&converted).await {
            return Ok(bytes);
        }
        tokio::task::spawn_blocking(move || convert(&stored, &converted, kind))
            .await
            .map_err(|e| RecordingError::Media(e.to_string()))?
            .map_err(RecordingError::Media)
    }

    /// Deletes a saved (or failed) recording: its row, its file and the file's conversion.
    pub async fn delete(&self, row: &RecordingRow) -> Result<(), RecordingError> {
        if row.status == "in-progress" || row.status == "paused" {
            return Err(RecordingError::InProgress);
        }
        let stored = PathBuf::from(&row.path);
        for kind in [MediaKind::Wav, MediaKind::Mp3] {
            let _ = tokio::fs::remove_file(stored.with_extension(kind.extension())).await;
        }
        self.store.delete_recording(&row.id).await?;
        Ok(())
    }
}

/// Converts the stored file to `kind` and keeps the result at `to` (written whole, then
/// renamed, so a concurrent reader never sees half of it).
fn convert(from: &Path, to: &Path, kind: MediaKind) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(from).map_err(|e| e.to_string())?;
    let out = match kind {
        MediaKind::Mp3 => {
            let (samples, channels) = read_wav(&bytes).ok_or("unreadable WAV")?;
            switchboard_media::mp3::encode(&samples, channels as u8).map_err(|e| e.to_string())?
        }
        MediaKind::Wav => {
            let samples = switchboard_media::decode::decode_to_8k(bytes, Some("mp3"))
                .map_err(|e| e.to_string())?;
            wav_pcm16(&samples, 1)
        }
    };
    let partial = to.with_extension(format!("{}.part", kind.extension()));
    let kept = std::fs::write(&partial, &out).and_then(|()| std::fs::rename(&partial, to));
    if let Err(e) = kept {
        // Served all the same; converted again next time.
        tracing::warn!(error = %e, path = %to.display(), "cannot keep a recording's conversion");
        let _ = std::fs::remove_file(&partial);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversion_is_kept_beside_the_recording() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("RE1.wav");
        let tone = switchboard_media::tone::sines(&[1000.0], 8000.0, 1000);
        std::fs::write(&wav, wav_pcm16(&tone, 1)).unwrap();
        let mp3 = convert(&wav, &wav.with_extension("mp3"), MediaKind::Mp3).unwrap();
        assert_eq!(std::fs::read(dir.path().join("RE1.mp3")).unwrap(), mp3);
        let back = switchboard_media::decode::decode_to_8k(mp3, Some("mp3")).unwrap();
        assert!(back.len() >= 7000, "{} samples", back.len());
        let share = switchboard_media::tone::share_at(&back[1600..4800], 1000.0);
        assert!(share > 0.9, "1 kHz share {share}");
        assert!(!dir.path().join("RE1.mp3.part").exists());
    }
}
