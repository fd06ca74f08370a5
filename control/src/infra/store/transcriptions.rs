//! The transcriptions table: the text of recordings, one row per transcription.

use super::{Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptionRow {
    /// `TR` and 32 hex digits.
    pub sid: String,
    pub account_sid: String,
    pub recording_sid: String,
    pub call_sid: Option<String>,
    /// `in-progress`, `completed` or `failed`.
    pub status: String,
    pub text: Option<String>,
    /// The recording's length.
    pub duration_ms: u64,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "sid, account_sid, recording_sid, call_sid, status, transcription_text, \
    duration_ms, created_at, updated_at";

impl TranscriptionRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            sid: r.try_get("sid")?,
            account_sid: r.try_get("account_sid")?,
            recording_sid: r.try_get("recording_sid")?,
            call_sid: r.try_get("call_sid")?,
            status: r.try_get("status")?,
            text: r.try_get("transcription_text")?,
            duration_ms: r.try_get::<i64, _>("duration_ms")? as u64,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

impl Store {
    pub async fn add_transcription(&self, t: &TranscriptionRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO transcriptions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(t.sid.clone())
        .bind(t.account_sid.clone())
        .bind(t.recording_sid.clone())
        .bind(t.call_sid.clone())
        .bind(t.status.clone())
        .bind(t.text.clone())
        .bind(t.duration_ms as i64)
        .bind(t.created_at)
        .bind(t.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets a transcription's outcome.
    pub async fn finish_transcription(
        &self,
        sid: &str,
        status: &str,
        text: Option<&str>,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE transcriptions SET status = $1, transcription_text = $2, updated_at = $3 \
             WHERE sid = $4",
        )
        .bind(status.to_owned())
        .bind(text.map(str::to_owned))
        .bind(at)
        .bind(sid.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An account's transcriptions (of one recording when `recording` is given), newest first.
    pub async fn transcriptions(
        &self,
        account: &str,
        recording: Option<&str>,
    ) -> Result<Vec<TranscriptionRow>, StoreError> {
        let condition = if recording.is_some() {
            "account_sid = $1 AND recording_sid = $2"
        } else {
            "account_sid = $1"
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM transcriptions WHERE {condition} \
             ORDER BY created_at DESC, sid DESC"
        )))
        .bind(account.to_owned());
        if let Some(r) = recording {
            q = q.bind(r.to_owned());
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(TranscriptionRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// One of an account's transcriptions.
    pub async fn transcription(
        &self,
        account: &str,
        sid: &str,
    ) -> Result<Option<TranscriptionRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM transcriptions WHERE account_sid = $1 AND sid = $2"
        )))
        .bind(account.to_owned())
        .bind(sid.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(TranscriptionRow::from_row).transpose()?)
    }

    /// Deletes one of an account's transcriptions; false when it has none of that sid.
    pub async fn delete_transcription(&self, account: &str, sid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM transcriptions WHERE account_sid = $1 AND sid = $2")
            .bind(account.to_owned())
            .bind(sid.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
