//! The subaccounts table: accounts made through the API under another.

use super::{Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubaccountRow {
    /// `AC` and 32 hex digits.
    pub sid: String,
    /// The account that made it (and whose credentials reach it).
    pub owner_sid: String,
    pub friendly_name: String,
    pub auth_token: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

fn row_of(r: &sqlx::any::AnyRow) -> Result<SubaccountRow, StoreError> {
    Ok(SubaccountRow {
        sid: r.try_get("sid")?,
        owner_sid: r.try_get("owner_sid")?,
        friendly_name: r.try_get("friendly_name")?,
        auth_token: r.try_get("auth_token")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Every subaccount, oldest first.
    pub async fn subaccounts(&self) -> Result<Vec<SubaccountRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT sid, owner_sid, friendly_name, auth_token, status, created_at, updated_at \
             FROM subaccounts ORDER BY created_at, sid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }

    pub async fn insert_subaccount(&self, row: &SubaccountRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO subaccounts (sid, owner_sid, friendly_name, auth_token, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.sid)
        .bind(&row.owner_sid)
        .bind(&row.friendly_name)
        .bind(&row.auth_token)
        .bind(&row.status)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Its name and status, as `row` has them now.
    pub async fn update_subaccount(&self, row: &SubaccountRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE subaccounts SET friendly_name = $2, status = $3, updated_at = $4 \
             WHERE sid = $1",
        )
        .bind(&row.sid)
        .bind(&row.friendly_name)
        .bind(&row.status)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
