//! Recording rows: one per recording, written when it starts, pauses, resumes and is saved.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingRow {
    /// "RE" and 32 hex digits.
    pub id: String,
    pub call_id: String,
    /// The leg recorded; `None` for the whole call.
    pub leg: Option<String>,
    pub path: String,
    /// `wav-pcm16` or `wav-ulaw`.
    pub format: String,
    pub channels: u8,
    pub duration_ms: u64,
    pub size_bytes: u64,
    /// `in-progress`, `paused`, `completed` or `failed`.
    pub status: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub error: Option<String>,
    /// What started it: `api`, `record-verb`, `dial`, `call-create`, `conference`, `route`.
    pub origin: String,
}

pub(super) const COLUMNS: &str = "id, call_id, leg, path, format, channels, duration_ms, size_bytes, status, started_at, ended_at, error, origin";

impl RecordingRow {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let n = |c: &str| row.try_get::<i64, _>(c).map(|v| v as u64);
        Ok(Self {
            id: row.try_get("id")?,
            call_id: row.try_get("call_id")?,
            leg: row.try_get("leg")?,
            path: row.try_get("path")?,
            format: row.try_get("format")?,
            channels: n("channels")? as u8,
            duration_ms: n("duration_ms")?,
            size_bytes: n("size_bytes")?,
            status: row.try_get("status")?,
            started_at: row.try_get("started_at")?,
            ended_at: row.try_get("ended_at")?,
            error: row.try_get("error")?,
            origin: row.try_get("origin")?,
        })
    }
}

/// One stored call event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub call_id: String,
    /// Position among the call's events, from 0.
    pub seq: u32,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: String,
    /// The event as JSON.
    pub detail: String,
}

impl EventRow {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            call_id: row.try_get("call_id")?,
            seq: row.try_get::<i64, _>("seq")? as u32,
            at: row.try_get("at")?,
            kind: row.try_get("kind")?,
            detail: row.try_get("detail")?,
        })
    }
}
