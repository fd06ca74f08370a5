//! The api_keys table: API keys accounts made through the API.

use super::{Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// `SK` and 32 hex digits.
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

fn row_of(r: &sqlx::any::AnyRow) -> Result<ApiKeyRow, StoreError> {
    Ok(ApiKeyRow {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        friendly_name: r.try_get("friendly_name")?,
        secret: r.try_get("secret")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Every API key made through the API, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT sid, account_sid, friendly_name, secret, created_at, updated_at \
             FROM api_keys ORDER BY created_at, sid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }

    pub async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (sid, account_sid, friendly_name, secret, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.sid)
        .bind(&row.account_sid)
        .bind(&row.friendly_name)
        .bind(&row.secret)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn rename_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET friendly_name = $2, updated_at = $3 WHERE sid = $1")
            .bind(&row.sid)
            .bind(&row.friendly_name)
            .bind(row.updated_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_api_key(&self, sid: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM api_keys WHERE sid = $1")
            .bind(sid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
