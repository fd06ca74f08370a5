//! The sip_objects table: Twilio's SIP directory (domains, credential lists, credentials, IP
//! access control lists, addresses, mappings), one row per object.

use super::{Store, StoreError};
use sqlx::Row;

/// Rows read at most (every account's objects; the service bounds each account's far lower).
const MAX_ROWS: i64 = 500_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipObjectRow {
    pub sid: String,
    pub account_sid: String,
    pub kind: String,
    /// What it belongs to (a list's SID, a domain's), or empty.
    pub parent: String,
    /// Unique within (kind, parent).
    pub name: String,
    /// Its fields, JSON.
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Whether an insert failed because (kind, parent, name) is taken.
pub fn is_taken(e: &StoreError) -> bool {
    matches!(e, StoreError::Sql(sqlx::Error::Database(d)) if d.is_unique_violation())
}

impl Store {
    pub async fn sip_objects(&self) -> Result<Vec<SipObjectRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT sid, account_sid, kind, parent, name, body, created_at, updated_at \
             FROM sip_objects ORDER BY created_at, sid LIMIT $1",
        )
        .bind(MAX_ROWS)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SipObjectRow {
                    sid: r.try_get("sid")?,
                    account_sid: r.try_get("account_sid")?,
                    kind: r.try_get("kind")?,
                    parent: r.try_get("parent")?,
                    name: r.try_get("name")?,
                    body: r.try_get("body")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn insert_sip_object(&self, row: &SipObjectRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sip_objects (sid, account_sid, kind, parent, name, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(row.sid.clone())
        .bind(row.account_sid.clone())
        .bind(row.kind.clone())
        .bind(row.parent.clone())
        .bind(row.name.clone())
        .bind(row.body.clone())
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces an account's object's name and fields; false when it has none of that SID.
    pub async fn update_sip_object(
        &self,
        account: &str,
        sid: &str,
        name: &str,
        body: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sip_objects SET name = $1, body = $2, updated_at = $3 \
             WHERE sid = $4 AND account_sid = $5",
        )
        .bind(name.to_owned())
        .bind(body.to_owned())
        .bind(at)
        .bind(sid.to_owned())
        .bind(account.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts an account's object under another parent; false when it has none of that SID.
    pub async fn move_sip_object(
        &self,
        account: &str,
        sid: &str,
        parent: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sip_objects SET parent = $1, updated_at = $2 WHERE sid = $3 AND account_sid = $4",
        )
        .bind(parent.to_owned())
        .bind(at)
        .bind(sid.to_owned())
        .bind(account.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes an account's object and what belongs to it (its parent is the object), and the
    /// mappings naming it; false when it has none of that SID.
    pub async fn delete_sip_object(&self, account: &str, sid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sip_objects WHERE sid = $1 AND account_sid = $2")
            .bind(sid.to_owned())
            .bind(account.to_owned())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM sip_objects WHERE account_sid = $1 AND (parent = $2 OR (kind = 'mapping' AND body = $2))")
            .bind(account.to_owned())
            .bind(sid.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(true)
    }
}
