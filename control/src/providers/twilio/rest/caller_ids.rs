//! OutgoingCallerIds: an account verifies a number it answers (create: a validation request —
//! the number is called and asked for the code returned), then lists, fetches, renames and
//! deletes its caller IDs. The verification itself is the neutral
//! [`crate::services::directory::verified_caller_ids`] service; this module translates it, and its outcome into the
//! request's `StatusCallback` (`VerificationStatus`, `OutgoingCallerIdSid`).

use super::json::{Json, form, method, param, url};
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::infra::sid::is_sid;
use crate::infra::store::VerifiedCallerIdRow;
use crate::infra::webhook::request::WebhookRequest;
use crate::markup::rfc2822;
use crate::services::directory::verified_caller_ids::{Finished, Proof, Verification, VerifyError};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;

/// The longest `FriendlyName` Twilio takes.
const MAX_NAME: usize = 64;

fn caller_id_uri(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/OutgoingCallerIds/{sid}.json")
}

fn resource(row: &VerifiedCallerIdRow, account: &str) -> Value {
    json!({
        "account_sid": account,
        "date_created": rfc2822(row.created_at),
        "date_updated": rfc2822(row.updated_at),
        "friendly_name": row.friendly_name,
        "phone_number": row.phone_number,
        "sid": row.sid,
        "uri": caller_id_uri(account, &row.sid),
    })
}

fn friendly_name(p: &[(String, String)]) -> Result<Option<String>, ApiError> {
    match param(p, "FriendlyName") {
        Some(n) if n.chars().count() > MAX_NAME => Err(ApiError::bad_request(
            21201,
            format!("FriendlyName is longer than {MAX_NAME} characters"),
        )),
        Some(n) if !n.is_empty() => Ok(Some(n.to_owned())),
        _ => Ok(None),
    }
}

/// A validation request: the number is called after `CallDelay` seconds and asked for the
/// `validation_code` answered here.
pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    let Some(phone_number) = param(&p, "PhoneNumber").filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(
            21201,
            "Required parameter PhoneNumber missing",
        ));
    };
    let phone_number = phone_number.trim().to_owned();
    if api.verified.is_verified(&account.sid, &phone_number) {
        return Err(ApiError::bad_request(
            21450,
            "Phone number already validated on your account",
        ));
    }
    let call_delay = match param(&p, "CallDelay").filter(|d| !d.is_empty()) {
        None => 0,
        Some(d) => d.parse::<u64>().ok().filter(|d| *d <= 60).ok_or_else(|| {
            ApiError::bad_request(21201, format!("CallDelay must be 0 to 60: {d}"))
        })?,
    };
    let extension = match param(&p, "Extension").filter(|e| !e.is_empty()) {
        None => None,
        Some(e) if e.len() <= 32 && e.chars().all(|c| "0123456789*#wW".contains(c)) => {
            Some(e.to_owned())
        }
        Some(e) => {
            return Err(ApiError::bad_request(
                21201,
                format!("Extension may hold only 0-9, *, # and w: {e}"),
            ));
        }
    };
    let callback = url(&p, "StatusCallback")?;
    let callback_method = method(&p, "StatusCallbackMethod")?;
    let name = friendly_name(&p)?;
    let verification = Verification {
        account: account.sid.clone(),
        phone_number: phone_number.clone(),
        friendly_name: name.clone(),
        call_delay: Duration::from_secs(call_delay),
        extension,
        ring_timeout: Duration::from_secs(60),
        proof: Proof::Keyed,
    };
    let outbox = api.apps.subscriptions.outbox().clone();
    let api_sid = account.api_sid().to_owned();
    let done = move |f: Finished| {
        let Some(callback) = callback else {
            return;
        };
        tokio::spawn(async move {
            let mut params = vec![
                ("AccountSid".to_owned(), api_sid),
                ("CallSid".to_owned(), f.call.clone().unwrap_or_default()),
                ("To".to_owned(), f.phone_number.clone()),
                ("CallStatus".to_owned(), f.call_status.as_str().to_owned()),
                (
                    "VerificationStatus".to_owned(),
                    if f.verified.is_some() {
                        "success"
                    } else {
                        "failed"
                    }
                    .to_owned(),
                ),
            ];
            if let Some(row) = &f.verified {
                params.push(("OutgoingCallerIdSid".to_owned(), row.sid.clone()));
            }
            let request = WebhookRequest::twilio(&callback, callback_method, &params);
            let call = f.call.unwrap_or_default();
            outbox.send(&f.account, &call, request).await;
        });
    };
    let started = (api.verified)
        .verify(&api.control, &api.apps.prompts, verification, done)
        .await
        .map_err(|e| match e {
            VerifyError::NotANumber(n) => {
                ApiError::bad_request(21421, format!("PhoneNumber is invalid: {n}"))
            }
            VerifyError::TooMany | VerifyError::TooManyPending | VerifyError::TooManyFailures => {
                ApiError::bad_request(21201, e.to_string())
            }
            VerifyError::Call(e) => super::calls::originate_error(e),
        })?;
    let body = json!({
        "account_sid": account.api_sid(),
        "call_sid": started.call,
        "friendly_name": name.unwrap_or_else(|| crate::infra::accounts::formatted_number(&phone_number)),
        "phone_number": phone_number,
        "validation_code": started.code,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The account's caller ID a `{sid}.json` path names.
fn find(api: &TwilioApi, account: &str, file: &str) -> Result<VerifiedCallerIdRow, ApiError> {
    let sid = file.trim_end_matches(".json");
    Some(sid)
        .filter(|s| is_sid(s, "PN"))
        .and_then(|sid| api.verified.get(account, sid))
        .ok_or_else(|| ApiError::not_found(&caller_id_uri(account, sid)))
}

pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let row = find(&api, &account.sid, &file)?;
    Ok(Json(resource(&row, account.api_sid())))
}

/// Renames a caller ID (`FriendlyName` is all that changes).
pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let row = find(&api, &account.sid, &file)?;
    let Some(name) = friendly_name(&form(&body))? else {
        return Ok(Json(resource(&row, account.api_sid())));
    };
    let renamed = (api.verified.rename(&account.sid, &row.sid, &name).await)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(&caller_id_uri(&account.sid, &row.sid)))?;
    Ok(Json(resource(&renamed, account.api_sid())))
}

pub(super) async fn delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let row = find(&api, &account.sid, &file)?;
    (api.verified.delete(&account.sid, &row.sid).await).map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the account's caller IDs; `PhoneNumber` and `FriendlyName` match exactly.
pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = &list.account;
    let phone = list.param("PhoneNumber").filter(|p| !p.is_empty());
    let name = list.param("FriendlyName").filter(|p| !p.is_empty());
    let rows = (api.verified.of_account(&account.sid).into_iter())
        .filter(|r| phone.is_none_or(|p| r.phone_number == p))
        .filter(|r| name.is_none_or(|n| r.friendly_name == n));
    let rows = list.page_of(rows);
    Ok(list.respond(
        "outgoing_caller_ids",
        "OutgoingCallerIds.json",
        rows,
        |r| r.sid.clone(),
        |r| resource(r, account.api_sid()),
    ))
}
