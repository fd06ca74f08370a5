//! `/v2/ip_connections` and `/v2/ips`: an account's IP connections — trunks its PBXs reach
//! Switchboard through, authenticated by address — and their addresses. On the neutral trunk
//! service ([`crate::services::directory::sip_trunks`]): an INVITE from one of a connection's
//! addresses is the connection's call (its account's, out by the routes that account may
//! take); a call to a number whose `connection_id` names the connection goes to its addresses
//! in the order they were added, failing over on 408/5xx. `active: false` puts the trunk out
//! of force (its numbers' calls fail 503). An address is one connection's across every
//! account. The connection's other settings are checked, kept and shown back, as a credential
//! connection's are.

use super::application_api::Kind;
use super::applications::apply_settings;
use super::credential_connections::sip_connection_fields;
use super::errors::ApiError;
use super::events::timestamp;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::infra::accounts::{Account, Connection, ConnectionKind, IpTrunk};
use crate::infra::store::ConnectionRow;
use crate::infra::store::sip_directory::SipObjectRow;
use crate::services::directory::sip_domains::DirectoryError;
use crate::services::directory::sip_trunks::{IpAddress, MAX_ADDRESSES};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn resource(row: &ConnectionRow) -> Value {
    let trunk = row.connection.ip_trunk.as_ref();
    let mut v = sip_connection_fields(row);
    v["record_type"] = json!("ip_connection");
    v["encrypted_media"] = json!(trunk.is_some_and(|t| t.srtp).then_some("SRTP"));
    v["transport_protocol"] = json!(trunk.map_or("UDP", |t| t.transport_protocol.as_str()));
    // How it is reached and authenticated: by address, its numbers' calls in order.
    for (key, value) in [
        ("default_routing_method", json!("sequential")),
        ("sip_region", json!("US")),
        ("sip_subdomain", Value::Null),
        (
            "sip_subdomain_receive_settings",
            json!("only_my_connections"),
        ),
    ] {
        v["inbound"][key] = value;
    }
    for (key, value) in [
        ("tech_prefix", Value::Null),
        ("ip_authentication_method", json!("ip-address")),
        ("ip_authentication_token", Value::Null),
    ] {
        v["outbound"][key] = value;
    }
    v["webhook_event_url"] = Value::Null;
    v["webhook_event_failover_url"] = json!("");
    v
}

/// Applies the body's fields besides the name. Its calls are a trunk's, reported to no
/// application: a webhook URL is refused rather than kept unused.
fn apply(p: &Params, c: &mut Connection, _creating: bool) -> Result<(), ApiError> {
    let trunk = c.ip_trunk.get_or_insert_with(|| IpTrunk {
        transport_protocol: "UDP".into(),
        srtp: false,
    });
    if p.has("transport_protocol") {
        trunk.transport_protocol =
            (p.choice("transport_protocol", &["UDP", "TCP", "TLS"], "UDP")?).to_owned();
    }
    if p.given("encrypted_media") {
        trunk.srtp = match p.str("encrypted_media")? {
            None | Some("") => false,
            Some("SRTP") => true,
            Some(_) => {
                return Err(ApiError::invalid(
                    "encrypted_media",
                    "'encrypted_media' is SRTP or null.".into(),
                ));
            }
        };
    }
    for key in ["webhook_event_url", "webhook_event_failover_url"] {
        if p.str(key)?.is_some_and(|u| !u.is_empty()) {
            return Err(ApiError::invalid(
                key,
                format!(
                    "'{key}' is not served for IP connections by Switchboard: their calls are a trunk's."
                ),
            ));
        }
    }
    apply_settings(p, c)
}

pub(super) const IP: Kind = Kind {
    kind: ConnectionKind::Ip,
    what: "IP connection",
    name_field: "connection_name",
    name_sort: "connection_name",
    name_filters: &["filter[connection_name][contains]"],
    newest_first: false,
    apply,
    resource,
};

// ---- /v2/ips ----

fn ip_resource(row: &SipObjectRow) -> Value {
    let a: Option<IpAddress> = serde_json::from_str(&row.body).ok();
    json!({
        "record_type": "ip",
        "id": row.sid,
        "connection_id": if row.parent.is_empty() { Value::Null } else { Value::from(row.parent.clone()) },
        "ip_address": a.as_ref().map(|a| a.ip_address.to_string()),
        "port": a.as_ref().map(|a| a.port),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    })
}

/// Telnyx's 10015 for a value it cannot take.
fn bad_value(field: &str, detail: &str) -> ApiError {
    ApiError::param("10015", "Invalid value", field, detail.to_owned())
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No IP {id}."))
}

fn store_error(e: DirectoryError) -> ApiError {
    match e {
        DirectoryError::NotFound => ApiError::not_found("No such IP.".into()),
        DirectoryError::Taken(_) => bad_value("ip_address", "That 'ip_address' is already in use."),
        DirectoryError::Full(max) => {
            ApiError::out_of_range("ip_address", format!("An account holds at most {max} IPs."))
        }
        DirectoryError::Store(e) => ApiError::unprocessable(e.to_string()),
    }
}

/// The fields of a body over `earlier`: an address (IPv4 or IPv6), a port (5060 unless
/// given), and the account's IP connection it belongs to.
fn read_ip(
    api: &Telnyx,
    account: &Account,
    p: &Params,
    earlier: Option<(IpAddress, String)>,
) -> Result<(IpAddress, String), ApiError> {
    let (mut a, mut connection) = match earlier {
        Some(e) => e,
        None => {
            let ip = p.required("ip_address")?;
            let ip_address = ip.parse().map_err(|_| {
                bad_value("ip_address", &format!("'{ip}' is no IPv4 or IPv6 address."))
            })?;
            (
                IpAddress {
                    ip_address,
                    port: 5060,
                },
                String::new(),
            )
        }
    };
    if let Some(ip) = p.str("ip_address")? {
        a.ip_address = ip
            .parse()
            .map_err(|_| bad_value("ip_address", &format!("'{ip}' is no IPv4 or IPv6 address.")))?;
    }
    if a.ip_address.is_unspecified() || a.ip_address.is_multicast() {
        return Err(bad_value(
            "ip_address",
            "'ip_address' must be a host's address.",
        ));
    }
    if let Some(port) = p.int("port", 1..=65535)? {
        a.port = port as u16;
    }
    if p.given("connection_id") {
        connection = match p.str("connection_id")?.filter(|c| !c.is_empty()) {
            None => String::new(),
            Some(id) => (api.parts.connections.get(&account.sid, id))
                .filter(|r| r.connection.kind() == ConnectionKind::Ip)
                .map(|r| r.connection.id)
                .ok_or_else(|| bad_value("connection_id", &format!("No IP connection {id}.")))?,
        };
    }
    Ok((a, connection))
}

/// `GET /v2/ips` (`filter[connection_id]`, `filter[ip_address]`, `filter[port]`), oldest
/// first.
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let rows: Vec<SipObjectRow> = (api.parts.sip_trunks.addresses(&account.sid).into_iter())
        .filter(|r| {
            query
                .get("filter[connection_id]")
                .is_none_or(|c| &r.parent == c)
        })
        .filter(|r| {
            let shown = ip_resource(r);
            query
                .get("filter[ip_address]")
                .is_none_or(|ip| shown["ip_address"].as_str() == Some(ip))
                && query
                    .get("filter[port]")
                    .is_none_or(|port| port.parse::<u64>().ok() == shown["port"].as_u64())
        })
        .collect();
    Ok(Json(page.of(&rows, ip_resource)))
}

/// `POST /v2/ips`.
pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let (address, connection) = read_ip(&api, &account, &p, None)?;
    // One address is one connection's, whoever's: otherwise a call from it would be two
    // tenants' at once.
    if api
        .parts
        .sip_trunks
        .address_holder(address.ip_address)
        .is_some()
    {
        return Err(store_error(DirectoryError::Taken(String::new())));
    }
    let row = (api.parts.sip_trunks)
        .add_address(&account.sid, &connection, &address, MAX_ADDRESSES)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({"data": ip_resource(&row)})))
}

fn find(api: &Telnyx, account: &Account, id: &str) -> Result<SipObjectRow, ApiError> {
    (api.parts.sip_trunks.addresses(&account.sid).into_iter())
        .find(|r| r.sid == id)
        .ok_or_else(|| not_found(id))
}

/// `GET /v2/ips/{id}`.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    Ok(Json(
        json!({"data": ip_resource(&find(&api, &account, &id)?)}),
    ))
}

/// `PATCH /v2/ips/{id}`.
pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = find(&api, &account, &id)?;
    let p = Params::parse(&body)?;
    let earlier: IpAddress =
        serde_json::from_str(&row.body).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let (address, connection) = read_ip(&api, &account, &p, Some((earlier, row.parent.clone())))?;
    if (api.parts.sip_trunks.address_holder(address.ip_address)).is_some_and(|sid| sid != row.sid) {
        return Err(store_error(DirectoryError::Taken(String::new())));
    }
    let row = (api.parts.sip_trunks)
        .change_address(&row, &connection, &address)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({"data": ip_resource(&row)})))
}

/// `DELETE /v2/ips/{id}`.
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = find(&api, &account, &id)?;
    (api.parts
        .sip_trunks
        .remove_address(&account.sid, &row.sid)
        .await)
        .map_err(store_error)?;
    Ok(Json(json!({"data": ip_resource(&row)})))
}
