//! The Accounts resource: an account reads itself, and a main account makes subaccounts
//! (`POST /Accounts.json`), lists itself and them, and renames, suspends, reactivates or closes
//! them (`POST /Accounts/{sid}.json` `Status`). A subaccount's own credentials act for it
//! alone; its owner's reach every one of its resources, as Twilio's do. A subaccount works
//! within its owner's grants (numbers, caller IDs, reach).

use super::json::{Json, form, param};
use super::{ApiError, TwilioApi, authenticate_by};
use crate::infra::accounts::{Account, Credential};
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::SubaccountRow;
use crate::markup::rfc2822;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The longest `FriendlyName` Twilio takes.
const MAX_NAME: usize = 64;

fn unauthorized() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
}

/// An Account resource: `auth_token` shown only to a request made with an auth token.
fn resource(
    sid: &str,
    owner: &str,
    name: &str,
    status: &str,
    auth_token: Option<&str>,
    (created, updated): (i64, i64),
) -> Value {
    let base = format!("/2010-04-01/Accounts/{sid}");
    let sub = |name: &str| format!("{base}/{name}.json");
    json!({
        "auth_token": auth_token,
        "date_created": rfc2822(created),
        "date_updated": rfc2822(updated),
        "friendly_name": name,
        "owner_account_sid": owner,
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "calls": sub("Calls"),
            "conferences": sub("Conferences"),
            "incoming_phone_numbers": sub("IncomingPhoneNumbers"),
            "available_phone_numbers": sub("AvailablePhoneNumbers"),
            "applications": sub("Applications"),
            "keys": sub("Keys"),
            "queues": sub("Queues"),
            "recordings": sub("Recordings"),
        },
        "type": "Full",
        "uri": format!("{base}.json"),
    })
}

fn of_row(r: &SubaccountRow, token: bool) -> Value {
    let token = token.then_some(r.auth_token.as_str());
    let when = (r.created_at, r.updated_at);
    resource(
        &r.sid,
        &r.owner_sid,
        &r.friendly_name,
        &r.status,
        token,
        when,
    )
}

/// A configured (main) account, as it reads itself: its dates are this server's start.
fn of_main(api: &TwilioApi, a: &Account, token: bool) -> Value {
    let sid = a.api_sid();
    let token = token.then_some(a.auth_token.as_str());
    resource(
        sid,
        sid,
        sid,
        "active",
        token,
        (api.started_at, api.started_at),
    )
}

/// Who the Basic credentials are: the account and how it authenticated.
fn caller(api: &TwilioApi, headers: &HeaderMap) -> Result<(Account, Credential), ApiError> {
    crate::infra::http::basic_credentials(headers)
        .and_then(|(user, password)| api.directory.by_credentials(&user, &password))
        .ok_or_else(unauthorized)
}

/// `GET /Accounts/{sid}.json`: an account reads itself; an owner reads its subaccounts,
/// suspended and closed ones too.
pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    if let Some(row) = api.subaccounts.get(sid) {
        let (by, credential) = caller(&api, &headers)?;
        if by.sid != row.sid && by.sid != row.owner_sid {
            return Err(not_found(sid));
        }
        return Ok(Json(of_row(&row, credential == Credential::AuthToken)));
    }
    let (account, by) = authenticate_by(&api.directory, &headers, sid)?;
    // An API key may be revoked; the auth token it would reveal cannot (Twilio's standard keys
    // do not reach account credentials either).
    Ok(Json(of_main(&api, &account, by == Credential::AuthToken)))
}

fn not_found(sid: &str) -> ApiError {
    ApiError::not_found(&format!("/2010-04-01/Accounts/{sid}.json"))
}

/// `GET /Accounts.json`: the account and, for a main account, its subaccounts (`FriendlyName`
/// and `Status` filter them).
pub(super) async fn list(
    State(api): State<TwilioApi>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let (by, credential) = caller(&api, &headers)?;
    let q = form(query.as_deref().unwrap_or_default());
    let token = credential == Credential::AuthToken;
    let mut all: Vec<Value> = Vec::new();
    match api.subaccounts.get(&by.sid) {
        Some(own) => all.push(of_row(&own, token)),
        None => all.push(of_main(&api, &by, token)),
    }
    all.extend((api.subaccounts.of_owner(&by.sid).iter()).map(|r| of_row(r, token)));
    let wanted = |key: &str, field: &str, v: &Value| {
        param(&q, key)
            .filter(|w| !w.is_empty())
            .is_none_or(|w| v[field] == w)
    };
    let accounts: Vec<Value> = (all.into_iter())
        .filter(|v| wanted("FriendlyName", "friendly_name", v) && wanted("Status", "status", v))
        .collect();
    let uri = "/2010-04-01/Accounts.json";
    Ok(Json(json!({
        "accounts": accounts,
        "end": accounts.len().saturating_sub(1),
        "first_page_uri": uri,
        "next_page_uri": null,
        "page": 0,
        "page_size": accounts.len(),
        "previous_page_uri": null,
        "start": 0,
        "uri": uri,
    })))
}

/// `POST /Accounts.json`: a main account, with its auth token, makes a subaccount.
pub(super) async fn create(
    State(api): State<TwilioApi>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let (by, credential) = caller(&api, &headers)?;
    if credential != Credential::AuthToken {
        return Err(unauthorized());
    }
    if api.directory.owner_of(&by.sid).is_some() {
        return Err(ApiError::bad_request(
            20001,
            "A subaccount cannot make subaccounts",
        ));
    }
    let p = form(&body);
    let now = now_ms();
    let name = match param(&p, "FriendlyName").filter(|n| !n.is_empty()) {
        Some(n) if n.chars().count() > MAX_NAME => {
            return Err(ApiError::bad_request(
                20001,
                format!("FriendlyName must be at most {MAX_NAME} characters"),
            ));
        }
        Some(n) => n.to_owned(),
        None => format!("SubAccount Created at {}", rfc2822(now)),
    };
    let row = SubaccountRow {
        sid: new_sid("AC"),
        owner_sid: by.sid.clone(),
        friendly_name: name,
        auth_token: hex::encode(rand::random::<[u8; 16]>()),
        status: "active".into(),
        created_at: now,
        updated_at: now,
    };
    if !api
        .subaccounts
        .add(row.clone())
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::bad_request(
            20001,
            "This account has as many subaccounts as it may have",
        ));
    }
    Ok((StatusCode::CREATED, Json(of_row(&row, true))).into_response())
}

/// `POST /Accounts/{sid}.json`: `FriendlyName` (the account itself or its owner), `Status`
/// (`active`, `suspended`, `closed`: its owner alone; closed is for good).
pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    let (by, credential) = caller(&api, &headers)?;
    let p = form(&body);
    let Some(mut row) = api.subaccounts.get(sid) else {
        // A main account is the operator's: it is changed in the configuration.
        authenticate_by(&api.directory, &headers, sid)?;
        return Err(ApiError::bad_request(
            20001,
            "A main account is changed in the server's configuration",
        ));
    };
    let owner = by.sid == row.owner_sid;
    if !owner && by.sid != row.sid || credential != Credential::AuthToken {
        return Err(not_found(sid));
    }
    if let Some(name) = param(&p, "FriendlyName").filter(|n| !n.is_empty()) {
        if name.chars().count() > MAX_NAME {
            return Err(ApiError::bad_request(
                20001,
                format!("FriendlyName must be at most {MAX_NAME} characters"),
            ));
        }
        row.friendly_name = name.to_owned();
    }
    if let Some(status) = param(&p, "Status").filter(|s| !s.is_empty()) {
        if !matches!(status, "active" | "suspended" | "closed") {
            return Err(ApiError::bad_request(
                20001,
                format!("Invalid Status: {status}"),
            ));
        }
        if !owner {
            return Err(ApiError::bad_request(
                20001,
                "Only the owner account changes a subaccount's Status",
            ));
        }
        if row.status == "closed" && status != "closed" {
            return Err(ApiError::bad_request(
                20001,
                "A closed account cannot be reopened",
            ));
        }
        row.status = status.to_owned();
    }
    row.updated_at = now_ms();
    (api.subaccounts.update(row.clone()).await).map_err(ApiError::internal)?;
    Ok(Json(of_row(&row, true)))
}
