//! Keys: API keys (`SK…` and a secret) an account makes to authenticate REST requests and to
//! sign Voice SDK access tokens; created (the secret shown this once), listed, fetched,
//! renamed and deleted. Only the account's own credentials manage keys, as on Twilio.

use super::json::{Json, form, param};
use super::{ApiError, Credential, Listing, TwilioApi, authenticate_by};
use crate::infra::clock::now_ms;
use crate::infra::sid::{is_sid, new_sid};
use crate::infra::store::ApiKeyRow;
use crate::markup::rfc2822;
use crate::services::directory::api_keys::MAX_PER_ACCOUNT;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The longest `FriendlyName` Twilio takes.
const MAX_NAME: usize = 64;

fn resource(r: &ApiKeyRow) -> Value {
    json!({
        "sid": r.sid,
        "friendly_name": r.friendly_name,
        "date_created": rfc2822(r.created_at),
        "date_updated": rfc2822(r.updated_at),
    })
}

fn key_uri(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Keys/{sid}.json")
}

/// The account, authenticated with its own credentials: an API key does not manage keys.
fn owner(
    api: &TwilioApi,
    headers: &HeaderMap,
    account: &str,
) -> Result<crate::infra::accounts::Account, ApiError> {
    match authenticate_by(&api.directory, headers, account)? {
        (a, Credential::AuthToken) => Ok(a),
        (_, Credential::ApiKey) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            20003,
            "API keys cannot manage API keys",
        )),
    }
}

fn friendly_name(p: &[(String, String)]) -> Result<Option<String>, ApiError> {
    match param(p, "FriendlyName") {
        Some(n) if n.chars().count() > MAX_NAME => Err(ApiError::bad_request(
            21201,
            format!("FriendlyName is longer than {MAX_NAME} characters"),
        )),
        n => Ok(n.map(str::to_owned)),
    }
}

fn find(api: &TwilioApi, account: &str, file: &str) -> Result<ApiKeyRow, ApiError> {
    let sid = file.trim_end_matches(".json");
    Some(sid)
        .filter(|s| is_sid(s, "SK"))
        .and_then(|sid| api.api_keys.get(account, sid))
        .ok_or_else(|| ApiError::not_found(&key_uri(account, sid)))
}

pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = owner(&api, &headers, &account)?;
    let name = friendly_name(&form(&body))?.unwrap_or_default();
    let now = now_ms();
    let secret = crate::infra::secret::random_alphanumeric(32);
    let row = ApiKeyRow {
        sid: new_sid("SK"),
        account_sid: account.sid.clone(),
        friendly_name: name,
        secret,
        created_at: now,
        updated_at: now,
    };
    if !api
        .api_keys
        .add(row.clone())
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::bad_request(
            21201,
            format!("The account has {MAX_PER_ACCOUNT} API keys, the most it may"),
        ));
    }
    let mut body = resource(&row);
    body["secret"] = json!(row.secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = owner(&api, &headers, &account)?;
    Ok(Json(resource(&find(&api, &account.sid, &file)?)))
}

pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = owner(&api, &headers, &account)?;
    let mut row = find(&api, &account.sid, &file)?;
    if let Some(name) = friendly_name(&form(&body))? {
        row.friendly_name = name;
        row.updated_at = now_ms();
        api.api_keys
            .rename(row.clone())
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(Json(resource(&row)))
}

pub(super) async fn delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = owner(&api, &headers, &account)?;
    let row = find(&api, &account.sid, &file)?;
    api.api_keys
        .remove(&row.sid)
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account's keys made through the API, oldest first.
pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    owner(&api, &headers, &account)?;
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let rows = list.page_of(api.api_keys.of_account(&list.account.sid));
    Ok(list.respond("keys", "Keys.json", rows, |r| r.sid.clone(), resource))
}
