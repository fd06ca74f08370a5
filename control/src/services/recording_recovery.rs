//! Recordings a crash left open — this node's last run's, at start-up, or a dead node's, taken
//! over by a live one — get a valid WAV header again (the recorder refreshes it every second,
//! so at most the last second is lost), their rows are completed, and each gets the
//! `recording-saved` event it never had (its callbacks follow from it). No recording is lost.

use crate::call::EventKind;
use crate::infra::clock::now_ms;
use crate::infra::store::{EventRow, RecordingRow, Store, StoreError};
use std::path::Path;
use switchboard_media::record::repair_wav;
use tracing::{info, warn};

/// Repairs and completes every unfinished recording; returns how many were recovered.
pub async fn recover_recordings(store: &Store) -> Result<usize, StoreError> {
    let open = store.unfinished_recordings().await?;
    recover(store, open).await
}

/// Takes over the open recordings of nodes taken for dead at `now_ms` and completes them as
/// [`recover_recordings`] does; another live node doing the same at once takes none of the
/// same. Returns how many this node completed.
pub async fn recover_dead_nodes_recordings(
    store: &Store,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let claimed = store.claim_recordings_of_dead_nodes(now_ms).await?;
    recover(store, claimed).await
}

async fn recover(store: &Store, open: Vec<RecordingRow>) -> Result<usize, StoreError> {
    for mut row in open.iter().cloned() {
        let path = row.path.clone();
        let repaired = tokio::task::spawn_blocking(move || repair_wav(Path::new(&path)))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()));
        match repaired.and_then(|r| r) {
            Ok(repaired) => {
                row.duration_ms = repaired.duration_ms;
                row.size_bytes = repaired.data_bytes + 44;
                row.status = "completed".into();
                info!(recording = %row.id, call = %row.call_id, duration_ms = row.duration_ms, "recording recovered after its node stopped");
            }
            Err(e) => {
                row.status = "failed".into();
                row.error = Some(format!("not recoverable after its node stopped: {e}"));
                warn!(recording = %row.id, error = %e, "recording could not be recovered");
            }
        }
        row.ended_at = Some(now_ms());
        let kind = EventKind::RecordingSaved {
            recording: row.id.clone(),
            path: row.path.clone(),
            duration_ms: row.duration_ms,
            channels: row.channels,
            size_bytes: row.size_bytes,
            error: row.error.clone(),
        };
        let event = EventRow {
            call_id: row.call_id.clone(),
            seq: store.next_event_seq(&row.call_id).await?,
            at: now_ms(),
            kind: kind.name().into(),
            detail: serde_json::to_string(&kind).unwrap_or_default(),
        };
        store.save_recovered(&row, &event).await?;
    }
    Ok(open.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::store::{RecordingRow, StoreWriter};

    /// A WAV as a crash leaves it: header sizes still zero, samples after it.
    fn crashed_wav(path: &Path, data: &[u8]) {
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0");
        h.extend_from_slice(&8000u32.to_le_bytes());
        h.extend_from_slice(&16000u32.to_le_bytes());
        h.extend_from_slice(b"\x02\0\x10\0data\0\0\0\0");
        h.extend_from_slice(data);
        std::fs::write(path, h).unwrap();
    }

    #[tokio::test]
    async fn an_open_recording_is_repaired_completed_and_announced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
            .await
            .unwrap();
        let wav = dir.path().join("RE1.wav");
        crashed_wav(&wav, &vec![1u8; 16_001]);
        let row = RecordingRow {
            id: "RE1".into(),
            call_id: "CA1".into(),
            leg: None,
            path: wav.display().to_string(),
            format: "wav-pcm16".into(),
            channels: 1,
            duration_ms: 0,
            size_bytes: 0,
            status: "in-progress".into(),
            started_at: 1,
            ended_at: None,
            error: None,
            origin: "api".into(),
        };
        let lost = RecordingRow {
            id: "RE2".into(),
            path: dir.path().join("gone.wav").display().to_string(),
            ..row.clone()
        };
        let (writer, task) = StoreWriter::spawn(store.clone(), None);
        writer.recording(row);
        writer.recording(lost);
        drop(writer);
        task.await.unwrap();

        assert_eq!(recover_recordings(&store).await.unwrap(), 2);
        let rows = store.recordings_of("CA1").await.unwrap();
        assert_eq!(
            (
                rows[0].status.as_str(),
                rows[0].duration_ms,
                rows[0].size_bytes
            ),
            ("completed", 1000, 16_044)
        );
        assert_eq!(rows[1].status, "failed");
        let bytes = std::fs::read(&wav).unwrap();
        assert_eq!(bytes.len(), 16_044, "the odd byte of a half sample is cut");
        assert_eq!(
            u32::from_le_bytes(bytes[40..44].try_into().unwrap()),
            16_000
        );
        let events = store.call_events("CA1").await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].seq, events[0].kind.as_str()),
            (0, "recording-saved")
        );
        assert!(events[0].detail.contains("\"duration_ms\":1000"));
        assert_eq!(events[1].seq, 1);
        assert_eq!(
            recover_recordings(&store).await.unwrap(),
            0,
            "nothing left open"
        );
    }
}
