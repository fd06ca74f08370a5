//! The notifications table: an account's application errors and warnings.

use super::{Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    /// `NO` and 32 hex digits.
    pub sid: String,
    pub account_sid: String,
    pub call_sid: Option<String>,
    pub error_code: u32,
    /// 0 error, 1 warning.
    pub log: u8,
    pub message_text: String,
    pub request_url: Option<String>,
    pub request_method: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

const COLUMNS: &str = "sid, account_sid, call_sid, error_code, log, message_text, request_url, \
    request_method, created_at";

impl NotificationRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            sid: r.try_get("sid")?,
            account_sid: r.try_get("account_sid")?,
            call_sid: r.try_get("call_sid")?,
            error_code: r.try_get::<i64, _>("error_code")? as u32,
            log: r.try_get::<i64, _>("log")? as u8,
            message_text: r.try_get("message_text")?,
            request_url: r.try_get("request_url")?,
            request_method: r.try_get("request_method")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

impl Store {
    pub async fn add_notification(&self, n: &NotificationRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO notifications ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(n.sid.clone())
        .bind(n.account_sid.clone())
        .bind(n.call_sid.clone())
        .bind(n.error_code as i64)
        .bind(n.log as i64)
        // Whatever wrote them, credentials in URLs are never stored (people read these).
        .bind(crate::infra::secret::redact_urls_in(&n.message_text).into_owned())
        .bind(
            n.request_url
                .as_deref()
                .map(|u| crate::infra::secret::redact_url(u).into_owned()),
        )
        .bind(n.request_method.clone())
        .bind(n.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An account's notifications (of one call when `call` is given), newest first.
    pub async fn notifications(
        &self,
        account: &str,
        call: Option<&str>,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let condition = if call.is_some() {
            "account_sid = $1 AND call_sid = $2"
        } else {
            "account_sid = $1"
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM notifications WHERE {condition} ORDER BY created_at DESC, sid DESC"
        )))
        .bind(account.to_owned());
        if let Some(c) = call {
            q = q.bind(c.to_owned());
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(NotificationRow::from_row)
            .collect::<Result<_, _>>()?)
    }
}
