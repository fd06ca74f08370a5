//! `/v2/texml_applications`: an account's TeXML applications, listed, created, read, changed
//! (PATCH) and deleted. A TeXML application is a connection (numbers name it by
//! `connection_id`) whose calls run the TeXML its `voice_url` returns; Switchboard acts on the
//! voice URL and method, the fallback URL and the status callback, and keeps and shows back
//! the other settings, as for Call Control applications.

use super::applications::{apply_settings, release_numbers};
use super::errors::ApiError;
use super::events::timestamp;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::accounts::{Connection, HttpMethod, TexmlVoice};
use crate::store::ConnectionRow;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// `friendly_name` at most.
const MAX_NAME: usize = 255;

/// Telnyx writes the methods of TeXML applications in lower case.
fn method_name(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
    }
}

fn resource(row: &ConnectionRow) -> Value {
    let c = &row.connection;
    let voice = c.texml.as_ref();
    let mut o = json!({
        "record_type": "texml_application",
        "id": c.id,
        "friendly_name": c.name,
        "active": true,
        "anchorsite_override": "Latency",
        "call_cost_in_webhooks": false,
        "dtmf_type": "RFC 2833",
        "first_command_timeout": c.first_command_timeout,
        "first_command_timeout_secs": c.first_command_timeout_secs,
        "inbound": {"channel_limit": null, "shaken_stir_enabled": false,
                    "sip_subdomain": null, "sip_subdomain_receive_settings": "from_anyone"},
        "outbound": {"channel_limit": null, "outbound_voice_profile_id": null},
        "tags": [],
        "voice_url": voice.map(|v| v.voice_url.as_str()),
        "voice_method": voice.map(|v| method_name(v.voice_method)),
        "voice_fallback_url": voice.and_then(|v| v.voice_fallback_url.as_deref()),
        "status_callback": voice.and_then(|v| v.status_callback.as_deref()),
        "status_callback_method": voice.map(|v| method_name(v.status_callback_method)),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    });
    if let Some(o) = o.as_object_mut() {
        for (k, v) in &c.settings {
            o.insert(k.clone(), v.clone());
        }
    }
    o
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No TeXML application {id}."))
}

/// Applies the body's fields to `c`; `creating` requires the name and the voice URL.
fn apply(p: &Params, c: &mut Connection, creating: bool) -> Result<(), ApiError> {
    let name = if creating {
        Some(p.required("friendly_name")?)
    } else {
        p.str("friendly_name")?
    };
    if let Some(name) = name {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(ApiError::out_of_range(
                "friendly_name",
                format!("'friendly_name' must be 1 to {MAX_NAME} characters."),
            ));
        }
        c.name = name.to_owned();
    }
    let voice = c.texml.get_or_insert_with(|| TexmlVoice {
        voice_url: String::new(),
        voice_method: HttpMethod::Post,
        voice_fallback_url: None,
        status_callback: None,
        status_callback_method: HttpMethod::Post,
    });
    match p.url("voice_url")? {
        Some(url) => voice.voice_url = url,
        None if creating => return Err(ApiError::missing("voice_url")),
        None => {}
    }
    let method = |key: &str| -> Result<Option<HttpMethod>, ApiError> {
        if !p.has(key) {
            return Ok(None);
        }
        let m = p.choice(key, &["get", "post", "GET", "POST"], "post")?;
        Ok(HttpMethod::parse(m))
    };
    if let Some(m) = method("voice_method")? {
        voice.voice_method = m;
    }
    if let Some(m) = method("status_callback_method")? {
        voice.status_callback_method = m;
    }
    // Given as null or "": none any more.
    if p.given("voice_fallback_url") {
        voice.voice_fallback_url = p.url("voice_fallback_url")?;
    }
    if p.given("status_callback") {
        voice.status_callback = p.url("status_callback")?;
    }
    apply_settings(p, c)
}

pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let contains = query
        .get("filter[friendly_name]")
        .or_else(|| query.get("filter[friendly_name][contains]"))
        .map(|s| s.to_lowercase());
    let mut rows: Vec<ConnectionRow> = (api.parts.connections.of_account(&account.sid))
        .into_iter()
        .filter(|r| r.connection.texml.is_some())
        .filter(|r| {
            contains
                .as_deref()
                .is_none_or(|c| r.connection.name.to_lowercase().contains(c))
        })
        .collect();
    match query.get("sort").map(String::as_str) {
        None | Some("created_at") => {}
        Some("-created_at") => rows.reverse(),
        Some("friendly_name") => rows.sort_by(|a, b| a.connection.name.cmp(&b.connection.name)),
        Some("-friendly_name") => rows.sort_by(|a, b| b.connection.name.cmp(&a.connection.name)),
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!("'{other}' is not one of created_at, friendly_name (or - before it)."),
            ));
        }
    }
    Ok(Json(page.of(&rows, resource)))
}

pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
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
    apply(&p, &mut connection, true)?;
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
            "friendly_name",
            format!(
                "The account has {} applications, the most it may.",
                crate::connections::MAX_PER_ACCOUNT
            ),
        ));
    }
    Ok((StatusCode::CREATED, Json(json!({ "data": resource(&row) }))))
}

pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = (api.parts.connections.texml(&account.sid, &id)).ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({ "data": resource(&row) })))
}

pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let mut row = (api.parts.connections.texml(&account.sid, &id)).ok_or_else(|| not_found(&id))?;
    let p = Params::parse(&body)?;
    apply(&p, &mut row.connection, false)?;
    row.updated_at = crate::call::now_ms();
    (api.parts.connections.update(row.clone()).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(Json(json!({ "data": resource(&row) })))
}

/// Deletes an application; the numbers it answered go back to their voice URL (or to the
/// routes).
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    if api.parts.connections.texml(&account.sid, &id).is_none() {
        return Err(not_found(&id));
    }
    let row = (api.parts.connections.remove(&id).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?
        .ok_or_else(|| not_found(&id))?;
    release_numbers(&api, &account.sid, &id).await?;
    Ok(Json(json!({ "data": resource(&row) })))
}
