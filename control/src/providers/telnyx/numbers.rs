//! `/v2/phone_numbers`: an account's numbers as Telnyx shows them, and the one change
//! Switchboard makes through it — which Call Control application (`connection_id`) answers a
//! number. Numbers are the accounts' own ones (the same the Twilio dialect lists as
//! IncomingPhoneNumbers), claimed within the operator's ranges by a number order
//! (`number_orders`).

use super::errors::ApiError;
use super::events::timestamp;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::infra::store::PhoneNumberRow;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// What PATCH takes besides `connection_id`: Telnyx has them, Switchboard keeps none of them,
/// so a request setting one is refused rather than answered as if it were kept.
const NOT_KEPT: &[&str] = &[
    "address_id",
    "billing_group_id",
    "customer_reference",
    "external_pin",
    "hd_voice_enabled",
    "tags",
];

fn resource(api: &Telnyx, row: &PhoneNumberRow) -> Value {
    let n = &row.number;
    let connection = (n.connection_id.as_deref())
        .and_then(|id| api.parts.connections.get(&n.account_sid, id))
        .map(|c| c.connection);
    json!({
        "record_type": "phone_number",
        "id": row.sid,
        "phone_number": n.phone_number,
        "status": "active",
        "phone_number_type": match crate::services::directory::available_numbers::kind_of(&n.phone_number) {
            crate::services::directory::available_numbers::Kind::Local => "local",
            crate::services::directory::available_numbers::Kind::TollFree => "toll_free",
            crate::services::directory::available_numbers::Kind::Mobile => "mobile",
        },
        "connection_id": n.connection_id,
        "connection_name": connection.map(|c| c.name),
        "tags": [],
        "external_pin": null,
        "customer_reference": null,
        "billing_group_id": null,
        "messaging_profile_id": null,
        "emergency_enabled": false,
        "call_forwarding_enabled": false,
        "call_recording_enabled": false,
        "cnam_listing_enabled": false,
        "caller_id_name_enabled": false,
        "deletion_lock_enabled": false,
        "source_type": "number_order",
        "purchased_at": timestamp(row.created_at),
        "created_at": timestamp(row.created_at),
        "updated_at": timestamp(row.updated_at),
    })
}

fn find(api: &Telnyx, account: &str, id: &str) -> Result<PhoneNumberRow, ApiError> {
    (api.parts.inbound.numbers().by_sid(account, id))
        .ok_or_else(|| ApiError::not_found(format!("No phone number {id}.")))
}

pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let wanted = query.get("filter[phone_number]").map(|n| digits(n));
    let connection = query.get("filter[connection_id]");
    let mut rows: Vec<PhoneNumberRow> = (api.parts.inbound.numbers().of_account(&account.sid))
        .into_iter()
        .filter(|r| {
            wanted
                .as_deref()
                .is_none_or(|w| digits(&r.number.phone_number).contains(w))
                && connection.is_none_or(|c| r.number.connection_id.as_ref() == Some(c))
        })
        .collect();
    match query.get("sort").map(String::as_str) {
        None | Some("purchased_at") => {}
        Some("phone_number") => {
            rows.sort_by(|a, b| a.number.phone_number.cmp(&b.number.phone_number))
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!("'{other}' is not one of purchased_at, phone_number."),
            ));
        }
    }
    Ok(Json(page.of(&rows, |r| resource(&api, r))))
}

pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = find(&api, &account.sid, &id)?;
    Ok(Json(json!({ "data": resource(&api, &row) })))
}

/// Gives a number to a Call Control application of the account (`connection_id`; null or ""
/// takes it away, and a voice URL it has answers again). Its next call goes there.
/// `DELETE /v2/phone_numbers/{id}`: the number released (its calls meet the routes again);
/// the resource as it was.
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = find(&api, &account.sid, &id)?;
    (api.parts.inbound.numbers().remove(&row.sid).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    api.parts.control.release_number(&row.number.phone_number);
    let mut gone = resource(&api, &row);
    gone["status"] = json!("deleted");
    Ok(Json(json!({ "data": gone })))
}

pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let mut row = find(&api, &account.sid, &id)?;
    let p = Params::parse(&body)?;
    if let Some(key) = NOT_KEPT.iter().find(|k| p.has(k)) {
        return Err(ApiError::invalid(
            key,
            format!("'{key}' is not kept by Switchboard; only connection_id is changed here."),
        ));
    }
    if p.given("connection_id") {
        row.number.connection_id = match p.str("connection_id")?.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) if api.parts.connections.get(&account.sid, c).is_some() => Some(c.to_owned()),
            Some(c) => {
                return Err(ApiError::param(
                    "10015",
                    "Invalid value for connection_id",
                    "connection_id",
                    format!("No Call Control application {c} on this account."),
                ));
            }
        };
        row.updated_at = crate::infra::clock::now_ms();
        (api.parts.inbound.numbers().update(row.clone()).await)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        api.parts.inbound.number_changed(&row.number);
        // A number given to an IP connection (or taken from one) is its trunk's from now.
        api.parts.sip_trunks.publish().await;
    }
    Ok(Json(json!({ "data": resource(&api, &row) })))
}
