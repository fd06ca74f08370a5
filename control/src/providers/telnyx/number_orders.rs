//! `/v2/available_phone_numbers` and `/v2/number_orders`: the numbers an account may still
//! claim (the neutral [`available_numbers`] search of the operator's grants, Telnyx's filters
//! on it), and an order that claims them — each number checked first, all of them claimed or
//! none, on the `connection_id` given. Geography (`locality`, `administrative_area`,
//! `rate_center`) is not known here: asked for, it is refused rather than ignored. Orders are
//! answered at once (`success`), as nothing waits on a carrier, and kept as answered for
//! retrieve and list; the numbers they claimed are `/v2/phone_numbers`.

use super::errors::ApiError;
use super::events::timestamp;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::infra::accounts::{HttpMethod, Number, formatted_number};
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::PhoneNumberRow;
use crate::services::directory::available_numbers::{
    self as available, Kind, MAX_RESULTS, Pattern, Search,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Filters that need geography Switchboard does not have.
const GEOGRAPHY: [&str; 3] = [
    "filter[locality]",
    "filter[administrative_area]",
    "filter[rate_center]",
];
/// The most numbers one order claims.
const MAX_ORDER: usize = 100;

/// `GET /v2/available_phone_numbers`.
pub(super) async fn available(
    State(api): State<Arc<Telnyx>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    if let Some(key) = GEOGRAPHY.iter().find(|k| query.contains_key(**k)) {
        let field = &key["filter[".len()..key.len() - 1];
        return Err(ApiError::invalid(
            field,
            format!("'{field}' is not served here: numbers carry no geography."),
        ));
    }
    let get = |k: &str| query.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let country = get("filter[country_code]")
        .unwrap_or("US")
        .to_ascii_uppercase();
    let Some(code) = available::calling_code(&country) else {
        return Ok(Json(
            json!({"data": [], "meta": {"total_results": 0, "best_effort_results": 0}}),
        ));
    };
    let kind = match get("filter[phone_number_type]") {
        None => None,
        Some("local") => Some(Kind::Local),
        Some("toll_free") => Some(Kind::TollFree),
        Some("mobile") => Some(Kind::Mobile),
        // No grant holds national or shared-cost numbers as such.
        Some("national" | "shared_cost") => {
            return Ok(Json(
                json!({"data": [], "meta": {"total_results": 0, "best_effort_results": 0}}),
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "phone_number_type",
                format!("'{other}' is not one of local, toll_free, mobile, national, shared_cost."),
            ));
        }
    };
    let digits = |key: &str, v: &str| -> Result<String, ApiError> {
        let d: String = v.chars().filter(|c| *c != '+').collect();
        match !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit()) {
            true => Ok(d),
            false => Err(ApiError::invalid(key, format!("'{v}' is not digits."))),
        }
    };
    let ndc = get("filter[national_destination_code]")
        .map(|v| digits("national_destination_code", v))
        .transpose()?;
    // Patterns are of the national number, after the destination code when one is given.
    let national = format!("+{code}{}", ndc.as_deref().unwrap_or(""));
    let starts_with = get("filter[phone_number][starts_with]")
        .map(|v| digits("phone_number", v).map(|d| format!("{national}{d}")))
        .transpose()?
        .or_else(|| ndc.as_ref().map(|_| national.clone()));
    let ends_with = get("filter[phone_number][ends_with]")
        .map(|v| digits("phone_number", v))
        .transpose()?;
    let contains = get("filter[phone_number][contains]")
        .map(|v| {
            Pattern::parse(v)
                .ok_or_else(|| ApiError::invalid("phone_number", format!("'{v}' is no pattern.")))
        })
        .transpose()?;
    let limit = match get("filter[limit]") {
        Some(l) => (l.parse::<usize>().ok())
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| {
                ApiError::out_of_range("limit", format!("'{l}' is not 1 to {MAX_RESULTS}."))
            })?,
        None => 50,
    };
    // Numbers here take voice (and calls) alone: asking for anything else finds none.
    let features: Vec<&str> = (query.iter())
        .filter(|(k, _)| k.starts_with("filter[features]"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    let served = features
        .iter()
        .all(|f| matches!(*f, "" | "voice" | "local_calling"));
    let search = Search {
        country,
        kind,
        area_code: None,
        contains,
        starts_with,
        ends_with,
        limit,
    };
    let found = match served {
        true => (api
            .parts
            .inbound
            .numbers()
            .available(&account, &search)
            .await)
            .map_err(|e| ApiError::internal(e.to_string()))?,
        false => Vec::new(),
    };
    let data: Vec<Value> = found.iter().map(|n| available_number(n)).collect();
    Ok(Json(json!({
        "data": data,
        "meta": {"total_results": data.len(), "best_effort_results": 0},
    })))
}

fn available_number(number: &str) -> Value {
    json!({
        "record_type": "available_phone_number",
        "phone_number": number,
        "vanity_format": null,
        "best_effort": false,
        "quickship": true,
        "reservable": false,
        "region_information": [{
            "region_type": "country_code",
            "region_name": available::country_of(number).unwrap_or_default(),
        }],
        "cost_information": {"upfront_cost": "0.00", "monthly_cost": "0.00", "currency": "USD"},
        "features": [{"name": "voice"}],
    })
}

/// `POST /v2/number_orders`: `phone_numbers` (`[{"phone_number": "+1…"}]`) claimed, on
/// `connection_id` when given.
pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    p.refuse_unserved(&["messaging_profile_id", "billing_group_id"])?;
    let asked = p
        .array("phone_numbers")
        .ok_or_else(|| ApiError::missing("phone_numbers"))?;
    if asked.is_empty() || asked.len() > MAX_ORDER {
        return Err(ApiError::out_of_range(
            "phone_numbers",
            format!("An order holds 1 to {MAX_ORDER} numbers."),
        ));
    }
    let connection = match p.str("connection_id")?.filter(|c| !c.is_empty()) {
        Some(c) if api.parts.connections.get(&account.sid, c).is_some() => Some(c.to_owned()),
        Some(c) => {
            return Err(ApiError::param(
                "10015",
                "Invalid value for connection_id",
                "connection_id",
                format!("No connection {c} on this account."),
            ));
        }
        None => None,
    };
    let reference = p.short("customer_reference", 256)?.map(str::to_owned);
    let numbers = api.parts.inbound.numbers();
    // Every number checked before any is claimed.
    let mut wanted = Vec::new();
    for entry in asked {
        let number = (entry.get("phone_number").and_then(Value::as_str))
            .filter(|n| {
                n.strip_prefix('+').is_some_and(|d| {
                    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
                })
            })
            .ok_or_else(|| {
                ApiError::invalid("phone_numbers", format!("{entry} names no E.164 number."))
            })?;
        let free = numbers.by_number(number).is_none()
            && (numbers.may_claim(&account, number).await)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        if !free || wanted.contains(&number) {
            return Err(ApiError::param(
                "10015",
                "Phone number not available",
                "phone_numbers",
                format!("{number} is not available to order."),
            ));
        }
        wanted.push(number);
    }
    let now = now_ms();
    let mut claimed: Vec<String> = Vec::new();
    for number in &wanted {
        let row = PhoneNumberRow {
            sid: new_sid("PN"),
            friendly_name: formatted_number(number),
            number: Number {
                phone_number: (*number).to_owned(),
                account_sid: account.sid.clone(),
                voice_url: None,
                voice_method: HttpMethod::Post,
                voice_fallback_url: None,
                voice_fallback_method: HttpMethod::Post,
                status_callback: None,
                status_callback_method: HttpMethod::Post,
                connection_id: connection.clone(),
            },
            created_at: now,
            updated_at: now,
        };
        let added =
            (numbers.add(row.clone()).await).map_err(|e| ApiError::internal(e.to_string()))?;
        if !added {
            // Taken between the check and the claim (another request, another node): what this
            // order claimed goes back.
            for (number, sid) in wanted.iter().zip(&claimed) {
                let _ = numbers.remove(sid).await;
                api.parts.control.release_number(number);
            }
            return Err(ApiError::param(
                "10015",
                "Phone number not available",
                "phone_numbers",
                format!("{number} was taken while the order was placed."),
            ));
        }
        api.parts.inbound.number_changed(&row.number);
        claimed.push(row.sid);
    }
    // Numbers ordered onto an IP connection are its trunk's at once.
    api.parts.sip_trunks.publish().await;
    let order = crate::services::directory::sip_logins::uuid_v4();
    let phone_numbers: Vec<Value> = (wanted.iter().zip(&claimed))
        .map(|(number, sid)| {
            json!({
                "id": sid,
                "record_type": "number_order_phone_number",
                "phone_number": number,
                "regulatory_requirements": [],
                "requirements_met": true,
                "status": "success",
            })
        })
        .collect();
    let resource = json!({
        "id": order,
        "record_type": "number_order",
        "phone_numbers_count": phone_numbers.len(),
        "phone_numbers": phone_numbers,
        "connection_id": connection,
        "messaging_profile_id": null,
        "billing_group_id": null,
        "customer_reference": reference,
        "sub_number_orders_ids": [],
        "status": "success",
        "requirements_met": true,
        "created_at": timestamp(now),
        "updated_at": timestamp(now),
    });
    // The numbers are claimed: an order that cannot be kept is logged, not failed.
    let kept = (api.parts.store)
        .insert_number_order(&order, &account.sid, &resource.to_string(), now)
        .await;
    if let Err(e) = kept {
        tracing::warn!(error = %e, order, "a number order is not kept: it cannot be read back");
    }
    Ok(Json(json!({ "data": resource })))
}

/// `GET /v2/number_orders/{id}`: the account's order, as it was answered.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let body = (api.parts.store.number_order(&account.sid, &id).await)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::not_found(format!("No number order {id}.")))?;
    let order: Value =
        serde_json::from_str(&body).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({ "data": order })))
}

/// `GET /v2/number_orders`: the account's orders, newest first (`filter[status]`,
/// `filter[customer_reference]`; pages).
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    for unserved in [
        "filter[created_at]",
        "filter[phone_numbers_count]",
        "filter[requirements_met]",
    ] {
        if query.keys().any(|k| k.starts_with(unserved)) {
            let field = &unserved["filter[".len()..unserved.len() - 1];
            return Err(ApiError::invalid(
                field,
                format!("'{field}' is not served here."),
            ));
        }
    }
    let bodies = (api.parts.store.number_orders(&account.sid).await)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let wanted = |key: &str, o: &Value| {
        query
            .get(&format!("filter[{key}]"))
            .is_none_or(|w| o[key] == w.as_str())
    };
    let orders: Vec<Value> = (bodies.iter())
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(|o| wanted("status", o) && wanted("customer_reference", o))
        .collect();
    Ok(Json(page.of(&orders, Clone::clone)))
}
