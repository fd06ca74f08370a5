//! What the connection resources share — `/v2/call_control_applications`,
//! `/v2/texml_applications` and `/v2/credential_connections` list, create, read, change and
//! delete connections of one kind the same way; each kind brings its fields (`apply`), its rendering (`resource`) and its
//! names.

use super::connection_settings;
use super::errors::ApiError;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::infra::accounts::{Account, Connection, ConnectionKind};
use crate::infra::store::ConnectionRow;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The longest name (and tag) an application may have (Telnyx does not say; names are for
/// people).
pub(super) const MAX_NAME: usize = 255;

/// One kind of application, as its resource shows it.
pub(super) struct Kind {
    /// The kind of connection the resource lists.
    pub(super) kind: ConnectionKind,
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
    /// Applies a body's fields besides the name; `creating` requires what a new one must
    /// have.
    pub(super) apply: fn(&Params, &mut Connection, bool) -> Result<(), ApiError>,
    /// The kind's fields of the resource (its settings, `connection_settings`, are added to
    /// them).
    pub(super) resource: fn(&ConnectionRow) -> Value,
}

impl Kind {
    /// The resource's routes: `{collection}` (list, create) and `{collection}/{id}` (read,
    /// PATCH, delete), each authenticated with the account's API key.
    pub(super) fn routes(&'static self, collection: &str) -> Router<Arc<Telnyx>> {
        type Api = State<Arc<Telnyx>>;
        Router::new()
            .route(
                collection,
                get(
                    move |State(api): Api, Query(q): Query<HashMap<String, String>>, h: HeaderMap| async move {
                        self.list(&api, &authenticate(&api, &h)?, &q).await
                    },
                )
                .post(move |State(api): Api, h: HeaderMap, body: Bytes| async move {
                    self.create(&api, &authenticate(&api, &h)?, &body).await
                }),
            )
            .route(
                &format!("{collection}/{{id}}"),
                get(move |State(api): Api, Path(id): Path<String>, h: HeaderMap| async move {
                    self.retrieve(&api, &authenticate(&api, &h)?, &id).await
                })
                .patch(
                    move |State(api): Api, Path(id): Path<String>, h: HeaderMap, body: Bytes| async move {
                        self.update(&api, &authenticate(&api, &h)?, &id, &body).await
                    },
                )
                .delete(move |State(api): Api, Path(id): Path<String>, h: HeaderMap| async move {
                    self.delete(&api, &authenticate(&api, &h)?, &id).await
                }),
            )
    }

    /// Applies a body: the name (required to create one), then the kind's own fields.
    fn apply_body(&self, p: &Params, c: &mut Connection, creating: bool) -> Result<(), ApiError> {
        let key = self.name_field;
        let name = if creating {
            Some(p.required(key)?)
        } else {
            p.str(key)?
        };
        if let Some(name) = name {
            if name.is_empty() || name.len() > MAX_NAME {
                return Err(ApiError::out_of_range(
                    key,
                    format!("'{key}' must be 1 to {MAX_NAME} characters."),
                ));
            }
            c.name = name.to_owned();
        }
        (self.apply)(p, c, creating)
    }

    /// A credential connection's user name must be no other login's (SIP user names are one
    /// name space across accounts).
    fn check_login(&self, api: &Telnyx, c: &Connection) -> Result<(), ApiError> {
        let Some(login) = c.credential.as_ref() else {
            return Ok(());
        };
        match api.parts.sip_logins.by_user(&login.user_name) {
            Some(other) if other.connection_id != c.id || other.credential_id.is_some() => Err(
                ApiError::invalid("user_name", "That 'user_name' is already taken.".into()),
            ),
            _ => Ok(()),
        }
    }

    /// An IP or FQDN connection is a trunk, a SIP connection's settings hold its calls out,
    /// and any connection's `inbound` bounds the calls to its numbers: in force (or out of it)
    /// before the answer.
    async fn trunks_changed(&self, api: &Telnyx) {
        api.parts.sip_trunks.publish().await;
    }

    /// An application as its resource shows it, with the settings kept from the bodies.
    fn render(&self, row: &ConnectionRow) -> Value {
        let mut o = (self.resource)(row);
        if let Some(o) = o.as_object_mut() {
            let holder = connection_settings::Holder::of(&row.connection);
            o.extend(connection_settings::shown(holder, &row.connection));
        }
        json!({ "data": o })
    }

    fn not_found(&self, id: &str) -> ApiError {
        ApiError::not_found(format!("No {} {id}.", self.what))
    }

    /// The account's application `id` of this kind.
    fn find(&self, api: &Telnyx, account: &Account, id: &str) -> Result<ConnectionRow, ApiError> {
        (api.parts.connections.get(&account.sid, id))
            .filter(|r| r.connection.kind() == self.kind)
            .ok_or_else(|| self.not_found(id))
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
            .filter(|r| r.connection.kind() == self.kind)
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
        let mut connection = Connection::new(
            rand::random_range(10u64.pow(18)..u64::MAX).to_string(),
            &account.sid,
        );
        self.apply_body(&p, &mut connection, true)?;
        self.check_login(api, &connection)?;
        let now = crate::infra::clock::now_ms();
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
                    crate::services::directory::connections::MAX_PER_ACCOUNT
                ),
            ));
        }
        api.parts.sip_logins.publish();
        self.trunks_changed(api).await;
        Ok((StatusCode::CREATED, Json(self.render(&row))))
    }

    pub(super) async fn retrieve(
        &self,
        api: &Telnyx,
        account: &Account,
        id: &str,
    ) -> Result<Json<Value>, ApiError> {
        let row = self.find(api, account, id)?;
        Ok(Json(self.render(&row)))
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
        self.apply_body(&p, &mut row.connection, false)?;
        self.check_login(api, &row.connection)?;
        row.updated_at = crate::infra::clock::now_ms();
        (api.parts.connections.update(row.clone()).await)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        api.parts.sip_logins.publish();
        self.trunks_changed(api).await;
        Ok(Json(self.render(&row)))
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
        // Its logins (its own and its telephony credentials') stop working now.
        api.parts.sip_logins.publish();
        let numbers = api.parts.inbound.numbers();
        for mut number in numbers.of_account(&account.sid) {
            if number.number.connection_id.as_deref() == Some(id) {
                number.number.connection_id = None;
                number.updated_at = crate::infra::clock::now_ms();
                (numbers.update(number.clone()).await)
                    .map_err(|e| ApiError::unprocessable(e.to_string()))?;
                api.parts.inbound.number_changed(&number.number);
            }
        }
        if matches!(self.kind, ConnectionKind::Ip | ConnectionKind::Fqdn) {
            // Its addresses go with it.
            (api.parts.sip_trunks)
                .remove_addresses_of(&account.sid, id)
                .await;
        }
        Ok(Json(self.render(&row)))
    }
}
