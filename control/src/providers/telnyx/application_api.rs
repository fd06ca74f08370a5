//! What the two application resources share — `/v2/call_control_applications` and
//! `/v2/texml_applications` list, create, read, change and delete connections of one kind
//! the same way; each kind brings its fields (`apply`), its rendering (`resource`) and its
//! names.

use super::Telnyx;
use super::errors::ApiError;
use super::page::Page;
use super::params::Params;
use crate::accounts::{Account, Connection};
use crate::store::ConnectionRow;
use axum::Json;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// One kind of application, as its resource shows it.
pub(super) struct Kind {
    /// TeXML applications; else Call Control applications.
    pub(super) texml: bool,
    /// How errors name it ("Call Control application").
    pub(super) what: &'static str,
    /// The name field (`application_name`, `friendly_name`).
    pub(super) name_field: &'static str,
    /// The list's `sort` key for the name (`connection_name`, `friendly_name`).
    pub(super) name_sort: &'static str,
    /// The list's `filter[…]` keys matching part of the name.
    pub(super) name_filters: &'static [&'static str],
    /// The list's default order is newest first; else oldest first.
    pub(super) newest_first: bool,
    /// Applies a body's fields; `creating` requires what a new one must have.
    pub(super) apply: fn(&Params, &mut Connection, bool) -> Result<(), ApiError>,
    pub(super) resource: fn(&ConnectionRow) -> Value,
}

impl Kind {
    fn not_found(&self, id: &str) -> ApiError {
        ApiError::not_found(format!("No {} {id}.", self.what))
    }

    /// The account's application `id` of this kind.
    fn find(&self, api: &Telnyx, account: &Account, id: &str) -> Result<ConnectionRow, ApiError> {
        let connections = &api.parts.connections;
        let row = if self.texml {
            connections.texml(&account.sid, id)
        } else {
            connections.call_control(&account.sid, id)
        };
        row.ok_or_else(|| self.not_found(id))
    }

    pub(super) async fn list(
        &self,
        api: &Telnyx,
        account: &Account,
        query: &HashMap<String, String>,
    ) -> Result<Json<Value>, ApiError> {
        let page = Page::read(query)?;
        let contains = (self.name_filters.iter())
            .find_map(|k| query.get(*k))
            .map(|s| s.to_lowercase());
        let mut rows: Vec<ConnectionRow> = (api.parts.connections.of_account(&account.sid))
            .into_iter()
            .filter(|r| r.connection.texml.is_some() == self.texml)
            .filter(|r| {
                contains
                    .as_deref()
                    .is_none_or(|c| r.connection.name.to_lowercase().contains(c))
            })
            .collect();
        let name = self.name_sort;
        match query.get("sort").map(String::as_str) {
            None if self.newest_first => rows.reverse(),
            None | Some("created_at") => {}
            Some("-created_at") => rows.reverse(),
            Some(s) if s == name => rows.sort_by(|a, b| a.connection.name.cmp(&b.connection.name)),
            Some(s) if s.strip_prefix('-') == Some(name) => {
                rows.sort_by(|a, b| b.connection.name.cmp(&a.connection.name))
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    "sort",
                    format!("'{other}' is not one of created_at, {name} (or - before it)."),
                ));
            }
        }
        Ok(Json(page.of(&rows, self.resource)))
    }

    pub(super) async fn create(
        &self,
        api: &Telnyx,
        account: &Account,
        body: &[u8],
    ) -> Result<(StatusCode, Json<Value>), ApiError> {
        let p = Params::parse(body)?;
        let mut connection = Connection {
            id: rand::random_range(10u64.pow(18)..u64::MAX).to_string(),
            account_sid: account.sid.clone(),
            name: String::new(),
            webhook_event_url: String::new(),
            webhook_event_failover_url: None,
            webhook_api_version: "2".into(),
            first_command_timeout: false,
            first_command_timeout_secs: 30,
            texml: None,
            settings: Map::new(),
        };
        (self.apply)(&p, &mut connection, true)?;
        let now = crate::call::now_ms();
        let row = ConnectionRow {
            connection,
            created_at: now,
            updated_at: now,
        };
        let added = (api.parts.connections.add(row.clone()).await)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        if !added {
            return Err(ApiError::out_of_range(
                self.name_field,
                format!(
                    "The account has {} applications, the most it may.",
                    crate::connections::MAX_PER_ACCOUNT
                ),
            ));
        }
        Ok((
            StatusCode::CREATED,
            Json(json!({ "data": (self.resource)(&row) })),
        ))
    }

    pub(super) async fn retrieve(
        &self,
        api: &Telnyx,
        account: &Account,
        id: &str,
    ) -> Result<Json<Value>, ApiError> {
        let row = self.find(api, account, id)?;
        Ok(Json(json!({ "data": (self.resource)(&row) })))
    }

    pub(super) async fn update(
        &self,
        api: &Telnyx,
        account: &Account,
        id: &str,
        body: &[u8],
    ) -> Result<Json<Value>, ApiError> {
        let mut row = self.find(api, account, id)?;
        let p = Params::parse(body)?;
        (self.apply)(&p, &mut row.connection, false)?;
        row.updated_at = crate::call::now_ms();
        (api.parts.connections.update(row.clone()).await)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        Ok(Json(json!({ "data": (self.resource)(&row) })))
    }

    /// Deletes an application. The numbers it answered are given back to their voice URL
    /// (or to the routes, when they have none).
    pub(super) async fn delete(
        &self,
        api: &Telnyx,
        account: &Account,
        id: &str,
    ) -> Result<Json<Value>, ApiError> {
        self.find(api, account, id)?;
        let row = (api.parts.connections.remove(id).await)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?
            .ok_or_else(|| self.not_found(id))?;
        let numbers = api.parts.inbound.numbers();
        for mut number in numbers.of_account(&account.sid) {
            if number.number.connection_id.as_deref() == Some(id) {
                number.number.connection_id = None;
                number.updated_at = crate::call::now_ms();
                (numbers.update(number.clone()).await)
                    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
                api.parts.inbound.number_changed(&number.number);
            }
        }
        Ok(Json(json!({ "data": (self.resource)(&row) })))
    }
}
