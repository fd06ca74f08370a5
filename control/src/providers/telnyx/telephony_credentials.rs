//! `/v2/telephony_credentials`: SIP logins minted for a credential connection (a random
//! `gencred…` user name and password each), listed, created, read, changed, deleted, and
//! `POST /v2/telephony_credentials/{id}/token`: a JWT (text/plain) a browser logs in with
//! (`new TelnyxRTC({login_token})`), good for 24 hours or until the credential expires.

use super::errors::ApiError;
use super::events::timestamp;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::infra::clock::now_ms;
use crate::infra::secret::random_alphanumeric;
use crate::infra::store::TelephonyCredentialRow;
use crate::services::directory::sip_logins::{MAX_PER_ACCOUNT, uuid_v4};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The longest name and tag.
const MAX_NAME: usize = 255;

fn resource(r: &TelephonyCredentialRow) -> Value {
    json!({
        "record_type": "credential",
        "id": r.id,
        "name": r.name,
        "resource_id": format!("connection:{}", r.connection_id),
        "user_id": r.account_sid,
        "sip_username": r.sip_username,
        "sip_password": r.sip_password,
        "expired": r.expired(now_ms()),
        "expires_at": r.expires_at.map(timestamp),
        "tag": r.tag,
        "created_at": timestamp(r.created_at),
        "updated_at": timestamp(r.updated_at),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No telephony credential {id}."))
}

/// Applies `name`, `tag` and `expires_at` from a body.
fn apply(p: &Params, r: &mut TelephonyCredentialRow) -> Result<(), ApiError> {
    if let Some(name) = p.short("name", MAX_NAME)? {
        r.name = name.to_owned();
    }
    if p.given("tag") {
        r.tag = p.short("tag", MAX_NAME)?.map(str::to_owned);
    }
    if p.given("expires_at") {
        r.expires_at = match p.str("expires_at")? {
            None | Some("") => None,
            Some(v) => {
                let at =
                    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| {
                            ApiError::invalid(
                                "expires_at",
                                "'expires_at' must be an ISO-8601 date and time.".into(),
                            )
                        })?;
                Some((at.unix_timestamp_nanos() / 1_000_000) as i64)
            }
        };
    }
    Ok(())
}

pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let connection_id = p.required("connection_id")?;
    if (api.parts.connections)
        .credential(&account.sid, connection_id)
        .is_none()
    {
        return Err(ApiError::invalid(
            "connection_id",
            format!("{connection_id} is not a credential connection of this account."),
        ));
    }
    let now = now_ms();
    let mut row = TelephonyCredentialRow {
        id: uuid_v4(),
        account_sid: account.sid.clone(),
        connection_id: connection_id.to_owned(),
        name: String::new(),
        tag: None,
        // Telnyx's generated names look the same: a prefix and random characters.
        sip_username: format!("gencred{}", random_alphanumeric(24)),
        sip_password: random_alphanumeric(32),
        expires_at: None,
        created_at: now,
        updated_at: now,
    };
    apply(&p, &mut row)?;
    let added = (api.parts.sip_logins.add(row.clone()).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if !added {
        return Err(ApiError::out_of_range(
            "connection_id",
            format!("The account has {MAX_PER_ACCOUNT} telephony credentials, the most it may."),
        ));
    }
    Ok((StatusCode::CREATED, Json(json!({ "data": resource(&row) }))))
}

pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&q)?;
    let now = now_ms();
    let rows: Vec<TelephonyCredentialRow> = (api.parts.sip_logins.of_account(&account.sid))
        .into_iter()
        .filter(|r| {
            q.get("filter[tag]")
                .is_none_or(|t| r.tag.as_ref() == Some(t))
        })
        .filter(|r| q.get("filter[name]").is_none_or(|n| r.name == *n))
        .filter(|r| (q.get("filter[sip_username]")).is_none_or(|u| r.sip_username == *u))
        .filter(|r| {
            q.get("filter[resource_id]")
                .is_none_or(|id| format!("connection:{}", r.connection_id) == *id)
        })
        .filter(|r| match q.get("filter[status]").map(String::as_str) {
            Some("expired") => r.expired(now),
            Some("active") => !r.expired(now),
            _ => true,
        })
        .collect();
    Ok(Json(page.of(&rows, resource)))
}

pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = (api.parts.sip_logins.get(&account.sid, &id)).ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({ "data": resource(&row) })))
}

pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let mut row = (api.parts.sip_logins.get(&account.sid, &id)).ok_or_else(|| not_found(&id))?;
    apply(&Params::parse(&body)?, &mut row)?;
    row.updated_at = now_ms();
    (api.parts.sip_logins.update(row.clone()).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(Json(json!({ "data": resource(&row) })))
}

pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    (api.parts.sip_logins.get(&account.sid, &id)).ok_or_else(|| not_found(&id))?;
    let row = (api.parts.sip_logins.remove(&id).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({ "data": resource(&row) })))
}

/// The credential's token, as text: what `@telnyx/webrtc` takes as `login_token`.
pub(super) async fn token(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = (api.parts.sip_logins.get(&account.sid, &id)).ok_or_else(|| not_found(&id))?;
    if row.expired(now_ms()) {
        return Err(ApiError::unprocessable(format!(
            "Telephony credential {id} has expired."
        )));
    }
    let token = api.parts.sip_logins.token(&account, &row);
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        token,
    )
        .into_response())
}
