//! `/v2/call_control_applications`: an account's Call Control applications (connections),
//! listed, created, read, changed (PATCH) and deleted. Switchboard acts on the webhook URLs,
//! the API version and the first-command timeout; the other settings Telnyx has (`active`,
//! `anchorsite_override`, `dtmf_type`, `inbound`, `outbound`, `tags`, …) are checked, kept
//! and shown back, not acted on.

use super::errors::ApiError;
use super::events::timestamp;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::accounts::Connection;
use crate::store::ConnectionRow;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// `application_name` at most (Telnyx does not say; names are for people).
const MAX_NAME: usize = 255;
/// `tags` at most, each at most [`MAX_NAME`] bytes.
const MAX_TAGS: usize = 50;
/// The `inbound` / `outbound` objects are kept as given, up to this size in JSON.
const MAX_OBJECT: usize = 4096;
const ANCHORSITES: &[&str] = &[
    "Latency",
    "Chicago, IL",
    "Ashburn, VA",
    "San Jose, CA",
    "London, UK",
    "Chennai, IN",
    "Amsterdam, Netherlands",
    "Toronto, Canada",
    "Sydney, Australia",
];

/// The object as Telnyx shows it: the defaults of what was never set, then what was.
fn resource(row: &ConnectionRow) -> Value {
    let c = &row.connection;
    let mut o = json!({
        "record_type": "call_control_application",
        "id": c.id,
        "application_name": c.name,
        "active": true,
        "anchorsite_override": "Latency",
        "call_cost_in_webhooks": false,
        "dtmf_type": "RFC 2833",
        "first_command_timeout": c.first_command_timeout,
        "first_command_timeout_secs": c.first_command_timeout_secs,
        "inbound": {"channel_limit": null, "shaken_stir_enabled": false,
                    "sip_subdomain": null, "sip_subdomain_receive_settings": "from_anyone"},
        "outbound": {"channel_limit": null, "outbound_voice_profile_id": null},
        "redact_dtmf_debug_logging": false,
        "tags": [],
        "webhook_api_version": c.webhook_api_version,
        "webhook_event_url": c.webhook_event_url,
        "webhook_event_failover_url": c.webhook_event_failover_url.as_deref().unwrap_or(""),
        "webhook_timeout_secs": null,
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
    ApiError::not_found(format!("No Call Control application {id}."))
}

/// Applies the body's fields to `c`; `creating` requires the name and the event URL.
fn apply(p: &Params, c: &mut Connection, creating: bool) -> Result<(), ApiError> {
    let name = if creating {
        Some(p.required("application_name")?)
    } else {
        p.str("application_name")?
    };
    if let Some(name) = name {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(ApiError::out_of_range(
                "application_name",
                format!("'application_name' must be 1 to {MAX_NAME} characters."),
            ));
        }
        c.name = name.to_owned();
    }
    match p.url("webhook_event_url")? {
        Some(url) => c.webhook_event_url = url,
        None if creating => return Err(ApiError::missing("webhook_event_url")),
        None => {}
    }
    // Given as null or "": none any more.
    if p.given("webhook_event_failover_url") {
        c.webhook_event_failover_url = p.url("webhook_event_failover_url")?;
    }
    if p.has("webhook_api_version") {
        // Version 1's envelope is not served: its apps would get what they cannot read.
        c.webhook_api_version = p.choice("webhook_api_version", &["2"], "2")?.to_owned();
    }
    apply_settings(p, c)
}

/// The settings both kinds of application have: the first-command timeout, and those kept
/// and shown back.
pub(super) fn apply_settings(p: &Params, c: &mut Connection) -> Result<(), ApiError> {
    if let Some(on) = p.bool("first_command_timeout")? {
        c.first_command_timeout = on;
    }
    let max = Connection::MAX_FIRST_COMMAND_SECS as i64;
    if let Some(secs) = p.int("first_command_timeout_secs", 1..=max)? {
        c.first_command_timeout_secs = secs as u64;
    }
    // Kept and shown back.
    for key in [
        "active",
        "call_cost_in_webhooks",
        "redact_dtmf_debug_logging",
    ] {
        if let Some(b) = p.bool(key)? {
            c.settings.insert(key.into(), json!(b));
        }
    }
    if p.has("anchorsite_override") {
        let site = p.choice("anchorsite_override", ANCHORSITES, "Latency")?;
        c.settings.insert("anchorsite_override".into(), json!(site));
    }
    if p.has("dtmf_type") {
        let dtmf = p.choice("dtmf_type", &["RFC 2833", "Inband", "SIP INFO"], "RFC 2833")?;
        c.settings.insert("dtmf_type".into(), json!(dtmf));
    }
    if p.value("webhook_timeout_secs").is_some() {
        let secs = p.int("webhook_timeout_secs", 0..=30)?;
        c.settings
            .insert("webhook_timeout_secs".into(), json!(secs));
    }
    for key in ["inbound", "outbound"] {
        match p.value(key) {
            None => {}
            Some(Value::Object(o)) if Value::Object(o.clone()).to_string().len() <= MAX_OBJECT => {
                c.settings.insert(key.into(), Value::Object(o.clone()));
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    key,
                    format!("'{key}' must be an object of at most {MAX_OBJECT} bytes."),
                ));
            }
        }
    }
    if let Some(tags) = p.value("tags") {
        let ok = tags.as_array().filter(|t| {
            t.len() <= MAX_TAGS
                && t.iter()
                    .all(|t| t.as_str().is_some_and(|s| s.len() <= MAX_NAME))
        });
        let Some(tags) = ok else {
            return Err(ApiError::invalid(
                "tags",
                format!("'tags' must be at most {MAX_TAGS} strings."),
            ));
        };
        c.settings.insert("tags".into(), Value::Array(tags.clone()));
    }
    Ok(())
}

pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let contains = query
        .get("filter[application_name][contains]")
        .map(|s| s.to_lowercase());
    let mut rows: Vec<ConnectionRow> = api
        .parts
        .connections
        .of_account(&account.sid)
        .into_iter()
        .filter(|r| r.connection.texml.is_none())
        .filter(|r| {
            contains
                .as_deref()
                .is_none_or(|c| r.connection.name.to_lowercase().contains(c))
        })
        .collect();
    // Telnyx's default order: newest first; `sort` names another.
    match query.get("sort").map(String::as_str) {
        None | Some("-created_at") => rows.reverse(),
        Some("created_at") => {}
        Some("connection_name") => rows.sort_by(|a, b| a.connection.name.cmp(&b.connection.name)),
        Some("-connection_name") => rows.sort_by(|a, b| b.connection.name.cmp(&a.connection.name)),
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!("'{other}' is not one of created_at, connection_name (or - before it)."),
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
            "application_name",
            format!(
                "The account has {} Call Control applications, the most it may.",
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
    let row = api
        .parts
        .connections
        .call_control(&account.sid, &id)
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({ "data": resource(&row) })))
}

pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let mut row = api
        .parts
        .connections
        .call_control(&account.sid, &id)
        .ok_or_else(|| not_found(&id))?;
    let p = Params::parse(&body)?;
    apply(&p, &mut row.connection, false)?;
    row.updated_at = crate::call::now_ms();
    (api.parts.connections.update(row.clone()).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(Json(json!({ "data": resource(&row) })))
}

/// Deletes a connection. The numbers it answered are given back to their voice URL (or to the
/// routes, when they have none).
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    if api
        .parts
        .connections
        .call_control(&account.sid, &id)
        .is_none()
    {
        return Err(not_found(&id));
    }
    let row = (api.parts.connections.remove(&id).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?
        .ok_or_else(|| not_found(&id))?;
    release_numbers(&api, &account.sid, &id).await?;
    Ok(Json(json!({ "data": resource(&row) })))
}

/// Gives the numbers a deleted connection answered back to their voice URL (or to the
/// routes, when they have none).
pub(super) async fn release_numbers(api: &Telnyx, account: &str, id: &str) -> Result<(), ApiError> {
    let numbers = api.parts.inbound.numbers();
    for mut number in numbers.of_account(account) {
        if number.number.connection_id.as_deref() == Some(id) {
            number.number.connection_id = None;
            number.updated_at = crate::call::now_ms();
            (numbers.update(number.clone()).await)
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            api.parts.inbound.number_changed(&number.number);
        }
    }
    Ok(())
}
