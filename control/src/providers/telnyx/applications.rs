//! `/v2/call_control_applications`: an account's Call Control applications (connections),
//! listed, created, read, changed (PATCH) and deleted. Switchboard acts on the webhook URLs,
//! the API version, the first-command timeout, `active` (an inactive connection places no
//! call) and `outbound` (its `channel_limit` and its outbound voice profile, see
//! `outbound_voice_profiles`, on the calls placed through it); each other setting Telnyx has
//! takes only the value that says what Switchboard does (`connection_settings`).

use super::application_api::Kind;
use super::connection_settings::{self, Holder};
use super::errors::ApiError;
use super::events::timestamp;
use super::params::Params;
use crate::infra::accounts::{Connection, ConnectionKind};
use crate::infra::store::ConnectionRow;
use serde_json::{Value, json};

/// The object as Telnyx shows it (its settings are added by `application_api`).
fn resource(row: &ConnectionRow) -> Value {
    let c = &row.connection;
    json!({
        "record_type": "call_control_application",
        "id": c.id,
        "application_name": c.name,
        "first_command_timeout": c.first_command_timeout,
        "first_command_timeout_secs": c.first_command_timeout_secs,
        "webhook_api_version": c.webhook_api_version,
        "webhook_event_url": c.webhook_event_url,
        "webhook_event_failover_url": c.webhook_event_failover_url.as_deref().unwrap_or(""),
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
    connection_settings::apply(p, c, Holder::Application)
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
