//! The outbound_voice_profiles table: Telnyx's outbound voice profiles, each kept as the
//! resource the API shows.

use super::{Store, StoreError};
use sqlx::Row;

/// The most profiles one listing reads (an account holds at most this many).
pub const MAX_PROFILES: i64 = 1_000;

impl Store {
    pub async fn insert_outbound_profile(
        &self,
        id: &str,
        account: &str,
        body: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbound_voice_profiles (id, account_sid, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(id)
        .bind(account)
        .bind(body)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces an account's profile; false when it has none of that id.
    pub async fn update_outbound_profile(
        &self,
        account: &str,
        id: &str,
        body: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE outbound_voice_profiles SET body = $1, updated_at = $2 \
             WHERE id = $3 AND account_sid = $4",
        )
        .bind(body)
        .bind(at)
        .bind(id)
        .bind(account)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// An account's profile.
    pub async fn outbound_profile(
        &self,
        account: &str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT body FROM outbound_voice_profiles WHERE id = $1 AND account_sid = $2",
        )
        .bind(id)
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("body")).transpose()?)
    }

    /// An account's profiles, oldest first.
    pub async fn outbound_profiles(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM outbound_voice_profiles WHERE account_sid = $1 \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(account)
        .bind(MAX_PROFILES)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("body")?)).collect()
    }

    /// Deletes an account's profile; false when it has none of that id.
    pub async fn delete_outbound_profile(
        &self,
        account: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM outbound_voice_profiles WHERE id = $1 AND account_sid = $2")
                .bind(id)
                .bind(account)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }
}
