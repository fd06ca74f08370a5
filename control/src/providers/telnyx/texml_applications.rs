//! `/v2/texml_applications`: an account's TeXML applications, listed, created, read, changed
//! (PATCH) and deleted. A TeXML application is a connection (numbers name it by
//! `connection_id`) whose calls run the TeXML its `voice_url` returns; Switchboard acts on the
//! voice URL and method, the fallback URL and the status callback, and treats the other
//! settings as for Call Control applications.

use super::application_api::Kind;
use super::connection_settings::{self, Holder};
use super::errors::ApiError;
use super::events::timestamp;
use super::params::Params;
use crate::infra::accounts::{Connection, ConnectionKind, HttpMethod, TexmlVoice};
use crate::infra::store::ConnectionRow;
use serde_json::{Value, json};

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
    json!({
        "record_type": "texml_application",
        "id": c.id,
        "friendly_name": c.name,
        "first_command_timeout": c.first_command_timeout,
        "first_command_timeout_secs": c.first_command_timeout_secs,
        "voice_url": voice.map(|v| v.voice_url.as_str()),
        "voice_method": voice.map(|v| method_name(v.voice_method)),
        "voice_fallback_url": voice.and_then(|v| v.voice_fallback_url.as_deref()),
        "status_callback": voice.and_then(|v| v.status_callback.as_deref()),
        "status_callback_method": voice.map(|v| method_name(v.status_callback_method)),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    })
}

/// Applies the body's fields besides the name to `c`; `creating` requires the voice URL.
fn apply(p: &Params, c: &mut Connection, creating: bool) -> Result<(), ApiError> {
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
    connection_settings::apply(p, c, Holder::Application)
}

pub(super) const TEXML: Kind = Kind {
    kind: ConnectionKind::Texml,
    what: "TeXML application",
    name_field: "friendly_name",
    name_sort: "friendly_name",
    name_filters: &["filter[friendly_name]", "filter[friendly_name][contains]"],
    newest_first: false,
    apply,
    resource,
};
