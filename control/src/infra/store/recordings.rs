//! Recording rows: one per recording, written when it starts, pauses, resumes and is saved.

use super::FromRow;
use sqlx::Row;
use sqlx::any::AnyRow;
pub use switchboard_core::rows::{EventRow, RecordingRow};

pub(super) const COLUMNS: &str = "id, call_id, leg, path, format, channels, duration_ms, size_bytes, status, started_at, ended_at, error, origin";

impl FromRow for RecordingRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
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

impl FromRow for EventRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            call_id: row.try_get("call_id")?,
            seq: row.try_get::<i64, _>("seq")? as u32,
            at: row.try_get("at")?,
            kind: row.try_get("kind")?,
            detail: row.try_get("detail")?,
        })
    }
}
