//! The Notifications resource: the account's application errors (a TwiML document that could
//! not be fetched, or that broke the schema), listed for the account or for one call.

use super::json::Json;
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::infra::accounts::Account;
use crate::infra::store::NotificationRow;
use crate::markup::rfc2822;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

fn uri(account: &str, n: &NotificationRow) -> String {
    match &n.call_sid {
        Some(call) => format!(
            "/2010-04-01/Accounts/{account}/Calls/{call}/Notifications/{}.json",
            n.sid
        ),
        None => format!(
            "/2010-04-01/Accounts/{account}/Notifications/{}.json",
            n.sid
        ),
    }
}

fn resource(n: &NotificationRow, account: &str) -> Value {
    let date = rfc2822(n.created_at);
    json!({
        "account_sid": account,
        "api_version": "2010-04-01",
        "call_sid": n.call_sid,
        "date_created": date,
        "date_updated": date,
        "error_code": n.error_code.to_string(),
        "log": n.log.to_string(),
        "message_date": date,
        "message_text": n.message_text,
        "more_info": format!("https://www.twilio.com/docs/errors/{}", n.error_code),
        "request_method": n.request_method,
        "request_url": n.request_url,
        "request_variables": null,
        "response_body": null,
        "response_headers": null,
        "sid": n.sid,
        "uri": uri(account, n),
    })
}

/// The notifications of the account, or of one call.
async fn list_of(
    api: &TwilioApi,
    list: Listing,
    call: Option<&str>,
    path: &str,
) -> Result<Json, ApiError> {
    let log = list.param("Log").filter(|l| !l.is_empty());
    let rows = api
        .store
        .notifications(&list.account.sid, call)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|n| log.is_none_or(|l| n.log.to_string() == l));
    let rows = list.page_of(rows);
    let api_sid = list.account.api_sid();
    Ok(list.respond(
        "notifications",
        path,
        rows,
        |n| n.sid.clone(),
        |n| resource(n, api_sid),
    ))
}

pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    list_of(&api, list, None, "Notifications.json").await
}

pub(super) async fn list_of_call(
    State(api): State<TwilioApi>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let path = format!("Calls/{call}/Notifications.json");
    list_of(&api, list, Some(&call), &path).await
}

/// One notification, of the account (or of the call the path names).
async fn find(
    api: &TwilioApi,
    account: &Account,
    call: Option<&str>,
    file: &str,
) -> Result<Json, ApiError> {
    let sid = file.strip_suffix(".json").unwrap_or(file);
    let found = api
        .store
        .notifications(&account.sid, call)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|n| n.sid == sid);
    match found {
        Some(n) => Ok(Json(resource(&n, account.api_sid()))),
        None => Err(ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{}/Notifications/{sid}.json",
            account.api_sid()
        ))),
    }
}

pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    find(&api, &account, None, &file).await
}

pub(super) async fn fetch_of_call(
    State(api): State<TwilioApi>,
    Path((account, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    find(&api, &account, Some(&call), &file).await
}
