//! The telephony_credentials table: SIP logins minted for credential connections.

use super::{Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelephonyCredentialRow {
    /// A UUID, as Telnyx's are.
    pub id: String,
    pub account_sid: String,
    /// The credential connection it logs in to.
    pub connection_id: String,
    pub name: String,
    pub tag: Option<String>,
    pub sip_username: String,
    pub sip_password: String,
    /// Unix milliseconds; `None`: it never expires.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TelephonyCredentialRow {
    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now_ms)
    }
}

macro_rules! columns {
    () => {
        "id, account_sid, connection_id, name, tag, sip_username, sip_password, expires_at, \
         created_at, updated_at"
    };
}

fn row_of(r: &sqlx::any::AnyRow) -> Result<TelephonyCredentialRow, StoreError> {
    Ok(TelephonyCredentialRow {
        id: r.try_get("id")?,
        account_sid: r.try_get("account_sid")?,
        connection_id: r.try_get("connection_id")?,
        name: r.try_get("name")?,
        tag: r.try_get("tag")?,
        sip_username: r.try_get("sip_username")?,
        sip_password: r.try_get("sip_password")?,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Every telephony credential, oldest first.
    pub async fn telephony_credentials(&self) -> Result<Vec<TelephonyCredentialRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM telephony_credentials ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(row_of).collect()
    }

    /// Stores a new credential; `Ok(false)` when its id or SIP user name is taken.
    pub async fn insert_telephony_credential(
        &self,
        row: &TelephonyCredentialRow,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(concat!(
            "INSERT INTO telephony_credentials (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
        ))
        .bind(&row.id)
        .bind(&row.account_sid)
        .bind(&row.connection_id)
        .bind(&row.name)
        .bind(&row.tag)
        .bind(&row.sip_username)
        .bind(&row.sip_password)
        .bind(row.expires_at)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a credential's changeable fields (name, tag, expiry).
    pub async fn update_telephony_credential(
        &self,
        row: &TelephonyCredentialRow,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE telephony_credentials SET name = $2, tag = $3, expires_at = $4, \
             updated_at = $5 WHERE id = $1",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.tag)
        .bind(row.expires_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_telephony_credential(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM telephony_credentials WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
