//! The verified_caller_ids table: numbers an account proved it answers.

use super::{Store, StoreError};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCallerIdRow {
    pub sid: String,
    pub account_sid: String,
    pub phone_number: String,
    pub friendly_name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The table's columns, in the order rows are read and written.
macro_rules! columns {
    () => {
        "sid, account_sid, phone_number, friendly_name, created_at, updated_at"
    };
}

fn row_of(r: &sqlx::any::AnyRow) -> Result<VerifiedCallerIdRow, StoreError> {
    Ok(VerifiedCallerIdRow {
        sid: r.try_get("sid")?,
        account_sid: r.try_get("account_sid")?,
        phone_number: r.try_get("phone_number")?,
        friendly_name: r.try_get("friendly_name")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// Every verified caller ID, oldest first.
    pub async fn verified_caller_ids(&self) -> Result<Vec<VerifiedCallerIdRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM verified_caller_ids ORDER BY created_at, sid"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(row_of).collect()
    }

    /// Stores `row`, or — when the account has verified the number before — gives that row
    /// back unchanged.
    pub async fn insert_verified_caller_id(
        &self,
        row: &VerifiedCallerIdRow,
    ) -> Result<VerifiedCallerIdRow, StoreError> {
        sqlx::query(concat!(
            "INSERT INTO verified_caller_ids (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_sid, phone_number) DO NOTHING"
        ))
        .bind(&row.sid)
        .bind(&row.account_sid)
        .bind(&row.phone_number)
        .bind(&row.friendly_name)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        let stored = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM verified_caller_ids WHERE account_sid = $1 AND phone_number = $2"
        ))
        .bind(&row.account_sid)
        .bind(&row.phone_number)
        .fetch_one(&self.pool)
        .await?;
        row_of(&stored)
    }

    /// Renames `sid` of `account`; false if it has no such caller ID.
    pub async fn rename_verified_caller_id(
        &self,
        account: &str,
        sid: &str,
        friendly_name: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE verified_caller_ids SET friendly_name = $1, updated_at = $2 \
             WHERE account_sid = $3 AND sid = $4",
        )
        .bind(friendly_name)
        .bind(at)
        .bind(account)
        .bind(sid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes `sid` of `account`; false if it has no such caller ID.
    pub async fn delete_verified_caller_id(
        &self,
        account: &str,
        sid: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM verified_caller_ids WHERE account_sid = $1 AND sid = $2")
                .bind(account)
                .bind(sid)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }
}
