//! `/v2/call_control_applications`: an account's Call Control applications (connections),
//! listed, created, read, changed (PATCH) and deleted. Switchboard acts on the webhook URLs,
//! the API version, the first-command timeout, `active` (an inactive connection places no
//! call) and `outbound` (its `channel_limit` and its outbound voice profile, see
//! `outbound_voice_profiles`, on the calls placed through it); the other settings Telnyx has
//! (`anchorsite_override`, `dtmf_type`, `inbound`, `tags`, …) are checked, kept and shown
//! back, not acted on.

use super::application_api::{Kind, MAX_NAME};
use super::errors::ApiError;
use super::events::timestamp;
use super::params::Params;
use crate::infra::accounts::{Connection, ConnectionKind};
use crate::infra::store::ConnectionRow;
use serde_json::{Value, json};

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
    json!({
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
    })
}

/// Applies the body's fields besides the name to `c`; `creating` requires the event URL.
fn apply(p: &Params, c: &mut Connection, creating: bool) -> Result<(), ApiError> {
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
    if let Some(outbound) = p.object("outbound")? {
        // Acted on when a call is placed through the connection (see
        // `outbound_voice_profiles::channels`): checked here.
        outbound.int("channel_limit", 0..=i64::from(u32::MAX))?;
        outbound.short("outbound_voice_profile_id", 64)?;
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

pub(super) const CALL_CONTROL: Kind = Kind {
    kind: ConnectionKind::CallControl,
    what: "Call Control application",
    name_field: "application_name",
    name_sort: "connection_name",
    name_filters: &["filter[application_name][contains]"],
    newest_first: true,
    apply,
    resource,
};
