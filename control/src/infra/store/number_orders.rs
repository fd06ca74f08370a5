//! The number_orders table: Telnyx's number orders, each kept as it was answered.

use super::{Store, StoreError};
use sqlx::Row;

/// The most orders one listing reads.
const MAX_LISTED: i64 = 10_000;

impl Store {
    pub async fn insert_number_order(
        &self,
        id: &str,
        account: &str,
        body: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO number_orders (id, account_sid, body, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(account)
        .bind(body)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An account's order, as it was answered.
    pub async fn number_order(
        &self,
        account: &str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT body FROM number_orders WHERE id = $1 AND account_sid = $2")
            .bind(id)
            .bind(account)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("body")).transpose()?)
    }

    /// An account's orders, newest first.
    pub async fn number_orders(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM number_orders WHERE account_sid = $1 \
             ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(account)
        .bind(MAX_LISTED)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("body")?)).collect()
    }
}
