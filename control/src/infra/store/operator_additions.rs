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

/// The tables of what the admin API added under a name of its own (a trunk's name, an
/// account's SID): their statements are these literals, never built from input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Trunks,
    Accounts,
}

impl Named {
    fn key(self) -> &'static str {
        match self {
            Named::Trunks => "name",
            Named::Accounts => "sid",
        }
    }

    fn select(self) -> &'static str {
        match self {
            Named::Trunks => "SELECT name, body FROM operator_trunks ORDER BY name",
            Named::Accounts => "SELECT sid, body FROM operator_accounts ORDER BY sid",
        }
    }

    fn update(self) -> &'static str {
        match self {
            Named::Trunks => {
                "UPDATE operator_trunks SET body = $2, updated_at = $3 WHERE name = $1"
            }
            Named::Accounts => {
                "UPDATE operator_accounts SET body = $2, updated_at = $3 WHERE sid = $1"
            }
        }
    }

    fn insert(self) -> &'static str {
        match self {
            Named::Trunks => {
                "INSERT INTO operator_trunks (name, body, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3)"
            }
            Named::Accounts => {
                "INSERT INTO operator_accounts (sid, body, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3)"
            }
        }
    }

    fn delete(self) -> &'static str {
        match self {
            Named::Trunks => "DELETE FROM operator_trunks WHERE name = $1",
            Named::Accounts => "DELETE FROM operator_accounts WHERE sid = $1",
        }
    }
}

impl Store {
    /// What the admin API added to `named` (key, JSON), by key.
    pub async fn operator_named(&self, named: Named) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(named.select()).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(named.key())?, r.try_get("body")?)))
            .collect()
    }

    /// Adds `key`'s definition to `named`, or replaces it.
    pub async fn put_operator_named(
        &self,
        named: Named,
        key: &str,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(named.update())
            .bind(key)
            .bind(body)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if updated == 0 {
            sqlx::query(named.insert())
                .bind(key)
                .bind(body)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn delete_operator_named(&self, named: Named, key: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query(named.delete())
            .bind(key)
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
