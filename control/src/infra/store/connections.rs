//! The call_control_applications table: Telnyx connections, Call Control applications and
//! (with `texml` set) TeXML applications.

use super::{Store, StoreError};
use crate::infra::accounts::Connection;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A stored connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRow {
    pub connection: Connection,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, account_sid, application_name, webhook_event_url, \
    webhook_event_failover_url, webhook_api_version, first_command_timeout, \
    first_command_timeout_secs, settings, texml, credential, ip_trunk, created_at, updated_at";

impl ConnectionRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        let settings: String = row.try_get("settings")?;
        let texml: Option<String> = row.try_get("texml")?;
        let credential: Option<String> = row.try_get("credential")?;
        let ip_trunk: Option<String> = row.try_get("ip_trunk")?;
        Ok(Self {
            connection: Connection {
                id: row.try_get("id")?,
                account_sid: row.try_get("account_sid")?,
                name: row.try_get("application_name")?,
                webhook_event_url: row.try_get("webhook_event_url")?,
                webhook_event_failover_url: row.try_get("webhook_event_failover_url")?,
                webhook_api_version: row.try_get("webhook_api_version")?,
                first_command_timeout: row.try_get::<i32, _>("first_command_timeout")? != 0,
                first_command_timeout_secs: row
                    .try_get::<i64, _>("first_command_timeout_secs")?
                    .try_into()
                    .unwrap_or(30),
                settings: serde_json::from_str(&settings).unwrap_or_default(),
                texml: texml.and_then(|t| serde_json::from_str(&t).ok()),
                credential: credential.and_then(|c| serde_json::from_str(&c).ok()),
                ip_trunk: ip_trunk.and_then(|t| serde_json::from_str(&t).ok()),
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl Store {
    /// Every stored connection, oldest first.
    pub async fn connections(&self) -> Result<Vec<ConnectionRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM call_control_applications ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(ConnectionRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Stores a new connection; `Ok(false)` when its id is taken.
    pub async fn insert_connection(&self, row: &ConnectionRow) -> Result<bool, StoreError> {
        let c = &row.connection;
        let done = sqlx::query(
            "INSERT INTO call_control_applications (id, account_sid, application_name, \
             webhook_event_url, webhook_event_failover_url, webhook_api_version, \
             first_command_timeout, first_command_timeout_secs, settings, texml, credential, \
             ip_trunk, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(c.id.clone())
        .bind(c.account_sid.clone())
        .bind(c.name.clone())
        .bind(c.webhook_event_url.clone())
        .bind(c.webhook_event_failover_url.clone())
        .bind(c.webhook_api_version.clone())
        .bind(i32::from(c.first_command_timeout))
        .bind(i64::try_from(c.first_command_timeout_secs).unwrap_or(i64::MAX))
        .bind(serde_json::Value::Object(c.settings.clone()).to_string())
        .bind(texml_json(c))
        .bind(credential_json(c))
        .bind(ip_trunk_json(c))
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a connection's changeable fields.
    pub async fn update_connection(&self, row: &ConnectionRow) -> Result<(), StoreError> {
        let c = &row.connection;
        sqlx::query(
            "UPDATE call_control_applications SET application_name = $2, \
             webhook_event_url = $3, webhook_event_failover_url = $4, webhook_api_version = $5, \
             first_command_timeout = $6, first_command_timeout_secs = $7, settings = $8, \
             texml = $9, credential = $10, ip_trunk = $11, updated_at = $12 WHERE id = $1",
        )
        .bind(c.id.clone())
        .bind(c.name.clone())
        .bind(c.webhook_event_url.clone())
        .bind(c.webhook_event_failover_url.clone())
        .bind(c.webhook_api_version.clone())
        .bind(i32::from(c.first_command_timeout))
        .bind(i64::try_from(c.first_command_timeout_secs).unwrap_or(i64::MAX))
        .bind(serde_json::Value::Object(c.settings.clone()).to_string())
        .bind(texml_json(c))
        .bind(credential_json(c))
        .bind(ip_trunk_json(c))
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_connection(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM call_control_applications WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// A TeXML application's voice settings as stored (JSON), `None` for Call Control.
fn texml_json(c: &Connection) -> Option<String> {
    c.texml.as_ref().and_then(|t| serde_json::to_string(t).ok())
}

fn ip_trunk_json(c: &Connection) -> Option<String> {
    (c.ip_trunk.as_ref()).and_then(|t| serde_json::to_string(t).ok())
}

fn credential_json(c: &Connection) -> Option<String> {
    c.credential
        .as_ref()
        .and_then(|t| serde_json::to_string(t).ok())
}
