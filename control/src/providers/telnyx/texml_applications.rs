//! `/v2/texml_applications`: an account's TeXML applications, listed, created, read, changed
//! (PATCH) and deleted. A TeXML application is a connection (numbers name it by
//! `connection_id`) whose calls run the TeXML its `voice_url` returns; Switchboard acts on the
//! voice URL and method, the fallback URL and the status callback, and keeps and shows back
//! the other settings, as for Call Control applications.

use super::application_api::Kind;
use super::applications::apply_settings;
use super::errors::ApiError;
use super::events::timestamp;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::accounts::{Connection, HttpMethod, TexmlVoice};
use crate::store::ConnectionRow;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
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

const TEXML: Kind = Kind {
    texml: true,
    what: "TeXML application",
    name_field: "friendly_name",
    name_sort: "friendly_name",
    name_filters: &["filter[friendly_name]", "filter[friendly_name][contains]"],
    newest_first: false,
    apply,
    resource,
};

pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    TEXML.list(&api, account, &query).await
}

pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = authenticate(&api, &headers)?;
    TEXML.create(&api, account, &body).await
}

pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    TEXML.retrieve(&api, account, &id).await
}

pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    TEXML.update(&api, account, &id, &body).await
}

/// Deletes an application; the numbers it answered go back to their voice URL (or to the
/// routes).
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    TEXML.delete(&api, account, &id).await
}
