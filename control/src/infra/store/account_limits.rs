//! The account_limits table: call limits the operator set through the admin API.

use super::{Store, StoreError};
use crate::call::account_limits::Limits;
use sqlx::Row;

impl Store {
    /// Every account's stored limits.
    pub async fn account_limits(&self) -> Result<Vec<(String, Limits)>, StoreError> {
        let rows =
            sqlx::query("SELECT account_sid, max_calls, calls_per_second FROM account_limits")
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let max_calls: i64 = r.try_get("max_calls")?;
            out.push((
                r.try_get("account_sid")?,
                Limits {
                    max_calls: u32::try_from(max_calls).unwrap_or(u32::MAX),
                    calls_per_second: r.try_get("calls_per_second")?,
                },
            ));
        }
        Ok(out)
    }

    /// Stores `account`'s limits, replacing any it had.
    pub async fn set_account_limits(
        &self,
        account: &str,
        limits: Limits,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO account_limits (account_sid, max_calls, calls_per_second, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (account_sid) DO UPDATE SET \
             max_calls = excluded.max_calls, calls_per_second = excluded.calls_per_second, \
             updated_at = excluded.updated_at",
        )
        .bind(account)
        .bind(i64::from(limits.max_calls))
        .bind(limits.calls_per_second)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
