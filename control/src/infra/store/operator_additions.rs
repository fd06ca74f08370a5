//! The operator_trunks, operator_routes, operator_accounts and admin_audit tables: what the
//! admin API added to the file's configuration, and the record of what it changed.

use super::{Store, StoreError};
use sqlx::Row;

/// The most audit entries one read gives.
const MAX_AUDIT: i64 = 1000;

/// An entry of the admin API's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: String,
    /// Unix milliseconds.
    pub at: i64,
    /// Who asked (the admin token's holder, from an address).
    pub who: String,
    /// `put`, `delete`, `add`.
    pub action: String,
    /// What it changed (`trunk carrier-c`, `route RT…`).
    pub subject: String,
    /// The change itself (the new definition, as JSON), or empty.
    pub detail: String,
}

impl Store {
    /// The trunks the admin API added (name, JSON), by name.
    pub async fn operator_trunks(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, body FROM operator_trunks ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("body")?)))
            .collect()
    }

    pub async fn put_operator_trunk(
        &self,
        name: &str,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let updated =
            sqlx::query("UPDATE operator_trunks SET body = $2, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(body)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO operator_trunks (name, body, created_at, updated_at) VALUES ($1, $2, $3, $3)",
            )
            .bind(name)
            .bind(body)
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn delete_operator_trunk(&self, name: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM operator_trunks WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(gone > 0)
    }

    /// The accounts the admin API added (SID, JSON), by SID.
    pub async fn operator_accounts(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT sid, body FROM operator_accounts ORDER BY sid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("sid")?, r.try_get("body")?)))
            .collect()
    }

    pub async fn put_operator_account(
        &self,
        sid: &str,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let updated =
            sqlx::query("UPDATE operator_accounts SET body = $2, updated_at = $3 WHERE sid = $1")
                .bind(sid)
                .bind(body)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO operator_accounts (sid, body, created_at, updated_at)                  VALUES ($1, $2, $3, $3)",
            )
            .bind(sid)
            .bind(body)
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn delete_operator_account(&self, sid: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM operator_accounts WHERE sid = $1")
            .bind(sid)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(gone > 0)
    }

    /// The routes the admin API added (id, JSON), in the order they were added.
    pub async fn operator_routes(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, body FROM operator_routes ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("body")?)))
            .collect()
    }

    pub async fn insert_operator_route(
        &self,
        id: &str,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO operator_routes (id, body, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(body)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_operator_route(&self, id: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM operator_routes WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(gone > 0)
    }

    pub async fn audit(&self, row: &AuditRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_audit (id, at, who, action, subject, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(row.at)
        .bind(&row.who)
        .bind(&row.action)
        .bind(&row.subject)
        .bind(&row.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The admin API's record, newest first.
    pub async fn audit_entries(&self) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, who, action, subject, detail FROM admin_audit \
             ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(MAX_AUDIT)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    who: r.try_get("who")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
