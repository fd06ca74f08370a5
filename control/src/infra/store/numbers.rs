//! The phone_numbers table: an account's numbers and the applications that answer them.

use super::{Store, StoreError};
use crate::infra::accounts::{HttpMethod, Number};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored phone number (Twilio's IncomingPhoneNumber).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumberRow {
    /// `PN` and 32 hex digits.
    pub sid: String,
    pub friendly_name: String,
    pub number: Number,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "sid, account_sid, phone_number, friendly_name, voice_url, voice_method, \
    voice_fallback_url, voice_fallback_method, status_callback, status_callback_method, \
    created_at, updated_at, connection_id";

impl PhoneNumberRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let method = |c: &str| -> Result<HttpMethod, sqlx::Error> {
            Ok(HttpMethod::parse(&row.try_get::<String, _>(c)?).unwrap_or_default())
        };
        Ok(Self {
            sid: row.try_get("sid")?,
            friendly_name: row.try_get("friendly_name")?,
            number: Number {
                phone_number: row.try_get("phone_number")?,
                account_sid: row.try_get("account_sid")?,
                voice_url: row.try_get("voice_url")?,
                voice_method: method("voice_method")?,
                voice_fallback_url: row.try_get("voice_fallback_url")?,
                voice_fallback_method: method("voice_fallback_method")?,
                status_callback: row.try_get("status_callback")?,
                status_callback_method: method("status_callback_method")?,
                connection_id: row.try_get("connection_id")?,
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl Store {
    /// Every stored number, oldest first.
    pub async fn phone_numbers(&self) -> Result<Vec<PhoneNumberRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM phone_numbers ORDER BY created_at, sid"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(PhoneNumberRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Stores a new number; `Ok(false)` when the number is already someone's.
    pub async fn insert_phone_number(&self, row: &PhoneNumberRow) -> Result<bool, StoreError> {
        let n = &row.number;
        let done = sqlx::query(
            "INSERT INTO phone_numbers (sid, account_sid, phone_number, friendly_name, voice_url, \
             voice_method, voice_fallback_url, voice_fallback_method, status_callback, \
             status_callback_method, created_at, updated_at, connection_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (phone_number) DO NOTHING",
        )
        .bind(row.sid.clone())
        .bind(n.account_sid.clone())
        .bind(n.phone_number.clone())
        .bind(row.friendly_name.clone())
        .bind(n.voice_url.clone())
        .bind(n.voice_method.as_str())
        .bind(n.voice_fallback_url.clone())
        .bind(n.voice_fallback_method.as_str())
        .bind(n.status_callback.clone())
        .bind(n.status_callback_method.as_str())
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(n.connection_id.clone())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a number's changeable fields (its application, name, and the account that holds
    /// it: a number moves between an account and its subaccounts).
    pub async fn update_phone_number(&self, row: &PhoneNumberRow) -> Result<(), StoreError> {
        let n = &row.number;
        sqlx::query(
            "UPDATE phone_numbers SET friendly_name = $2, voice_url = $3, voice_method = $4, \
             voice_fallback_url = $5, voice_fallback_method = $6, status_callback = $7, \
             status_callback_method = $8, updated_at = $9, connection_id = $10, \
             account_sid = $11 WHERE sid = $1",
        )
        .bind(row.sid.clone())
        .bind(row.friendly_name.clone())
        .bind(n.voice_url.clone())
        .bind(n.voice_method.as_str())
        .bind(n.voice_fallback_url.clone())
        .bind(n.voice_fallback_method.as_str())
        .bind(n.status_callback.clone())
        .bind(n.status_callback_method.as_str())
        .bind(row.updated_at)
        .bind(n.connection_id.clone())
        .bind(n.account_sid.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What the configuration said of each configured number when it was last applied, by
    /// SID (see [`crate::services::directory::phone_numbers`]).
    pub async fn configured_numbers(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows =
            sqlx::query("SELECT sid, configured FROM phone_numbers WHERE configured IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        let mut out = std::collections::HashMap::new();
        for row in &rows {
            out.insert(row.try_get("sid")?, row.try_get("configured")?);
        }
        Ok(out)
    }

    /// A configured number's fields as `row` has them now (the account included), and what
    /// the configuration said of it (`configured`).
    pub async fn apply_configured_number(
        &self,
        row: &PhoneNumberRow,
        configured: &str,
    ) -> Result<(), StoreError> {
        let n = &row.number;
        sqlx::query(
            "UPDATE phone_numbers SET account_sid = $2, voice_url = $3, voice_method = $4, \
             voice_fallback_url = $5, voice_fallback_method = $6, status_callback = $7, \
             status_callback_method = $8, updated_at = $9, connection_id = $10, configured = $11 \
             WHERE sid = $1",
        )
        .bind(row.sid.clone())
        .bind(n.account_sid.clone())
        .bind(n.voice_url.clone())
        .bind(n.voice_method.as_str())
        .bind(n.voice_fallback_url.clone())
        .bind(n.voice_fallback_method.as_str())
        .bind(n.status_callback.clone())
        .bind(n.status_callback_method.as_str())
        .bind(row.updated_at)
        .bind(n.connection_id.clone())
        .bind(configured.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_phone_number(&self, sid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM phone_numbers WHERE sid = $1")
            .bind(sid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The number ranges granted to `account` through the admin API, in the order given.
    pub async fn number_ranges(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT number_range FROM number_ranges WHERE account_sid = $1 \
             ORDER BY created_at, number_range",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("number_range"))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Grants a range; `Ok(false)` when the account had it already.
    pub async fn insert_number_range(
        &self,
        account: &str,
        range: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO number_ranges (account_sid, number_range, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_sid, number_range) DO NOTHING",
        )
        .bind(account)
        .bind(range)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_number_range(
        &self,
        account: &str,
        range: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM number_ranges WHERE account_sid = $1 AND number_range = $2")
                .bind(account)
                .bind(range)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }
}
