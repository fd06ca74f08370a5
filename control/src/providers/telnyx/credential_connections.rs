//! `/v2/credential_connections`: an account's credential connections, listed, created, read,
//! changed (PATCH) and deleted. A credential connection is a SIP login (`user_name`,
//! `password`) that phones register with and browsers (`@telnyx/webrtc`) log in with; its
//! telephony credentials are further logins minted for it. With a `webhook_event_url` its
//! logins' calls are Call Control calls. Switchboard acts on the login, the webhook URLs and
//! API version; the other settings are `connection_settings`'.

use super::application_api::Kind;
use super::connection_settings::{self, Holder};
use super::errors::ApiError;
use super::events::timestamp;
use super::params::Params;
use crate::infra::accounts::{Connection, ConnectionKind, SipLogin};
use crate::infra::store::ConnectionRow;
use serde_json::{Value, json};

/// What a SIP connection's resource shows that a credential connection and an IP connection
/// share (`record_type` and the kind's own fields are added to it).
pub(super) fn sip_connection_fields(row: &ConnectionRow) -> Value {
    let c = &row.connection;
    json!({
        "id": c.id,
        "connection_name": c.name,
        "webhook_api_version": c.webhook_api_version,
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    })
}

fn resource(row: &ConnectionRow) -> Value {
    let c = &row.connection;
    let login = c.credential.as_ref();
    let mut v = sip_connection_fields(row);
    v["record_type"] = json!("credential_connection");
    v["user_name"] = json!(login.map(|l| l.user_name.as_str()));
    v["password"] = json!(login.map(|l| l.password.as_str()));
    v["webhook_event_url"] = json!(c.webhook_event_url);
    v["webhook_event_failover_url"] = json!(c.webhook_event_failover_url.as_deref().unwrap_or(""));
    v
}

/// Telnyx's rule for a user name: 4–32 letters and digits, a letter among the first five.
fn user_name_ok(name: &str) -> bool {
    (4..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && name.bytes().take(5).any(|b| b.is_ascii_alphabetic())
}

/// Applies the body's fields besides the name to `c`; `creating` requires the login.
fn apply(p: &Params, c: &mut Connection, creating: bool) -> Result<(), ApiError> {
    let login = c.credential.get_or_insert_with(|| SipLogin {
        user_name: String::new(),
        password: String::new(),
    });
    match p.str("user_name")? {
        Some(name) if user_name_ok(name) => login.user_name = name.to_owned(),
        Some(_) => {
            return Err(ApiError::invalid(
                "user_name",
                "'user_name' must be 4 to 32 letters and digits, a letter among the first five."
                    .into(),
            ));
        }
        None if creating => return Err(ApiError::missing("user_name")),
        None => {}
    }
    match p.str("password")? {
        Some(pw) if (8..=128).contains(&pw.len()) => login.password = pw.to_owned(),
        Some(_) => {
            return Err(ApiError::out_of_range(
                "password",
                "'password' must be 8 to 128 characters long.".into(),
            ));
        }
        None if creating => return Err(ApiError::missing("password")),
        None => {}
    }
    // Given as null or "": the logins' calls are not reported (nor commanded) any more.
    if p.given("webhook_event_url") {
        c.webhook_event_url = p.url("webhook_event_url")?.unwrap_or_default();
    }
    if p.given("webhook_event_failover_url") {
        c.webhook_event_failover_url = p.url("webhook_event_failover_url")?;
    }
    if p.has("webhook_api_version") {
        c.webhook_api_version = p.choice("webhook_api_version", &["2"], "2")?.to_owned();
    }
    connection_settings::apply(p, c, Holder::Credential)
}

pub(super) const CREDENTIAL: Kind = Kind {
    kind: ConnectionKind::Credential,
    what: "credential connection",
    name_field: "connection_name",
    name_sort: "connection_name",
    name_filters: &["filter[connection_name][contains]"],
    newest_first: false,
    apply,
    resource,
};

#[cfg(test)]
mod tests {
    #[test]
    fn a_user_name_is_four_to_thirty_two_letters_and_digits_a_letter_early() {
        for ok in ["alice", "gencred1", "1234a", "a123"] {
            assert!(super::user_name_ok(ok), "{ok}");
        }
        for bad in ["abc", "12345b", "al ice", "al-ice", &"a".repeat(33)] {
            assert!(!super::user_name_ok(bad), "{bad}");
        }
    }
}
