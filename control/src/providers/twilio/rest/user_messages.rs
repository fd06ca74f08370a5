//! `Calls/{CA}/UserDefinedMessages` and `Calls/{CA}/UserDefinedMessageSubscriptions`: the
//! application's side of a Voice SDK call's user-defined messages (see
//! [`crate::providers::twilio::user_messages`]).

use super::json::{Json, form, method, param, url};
use super::{ApiError, TwilioApi, authenticate};
use crate::infra::clock::now_ms;
use crate::infra::sid::is_sid;
use crate::markup::rfc2822;
use crate::providers::twilio::user_messages::{MAX_CONTENT, MAX_KEY, Refusal};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::NoDevice => ApiError::bad_request(
            21220,
            "The call is not in progress with a Voice SDK device on this server.",
        ),
        Refusal::TooMany => ApiError::bad_request(
            20001,
            "The call has as many UserDefinedMessageSubscriptions as it may.",
        ),
        Refusal::Busy => ApiError::bad_request(
            21220,
            "The call's Voice SDK device does not take messages now (reconnecting, or behind).",
        ),
    }
}

fn idempotency_key(p: &[(String, String)]) -> Result<Option<String>, ApiError> {
    match param(p, "IdempotencyKey").filter(|k| !k.is_empty()) {
        Some(k) if k.len() > MAX_KEY => Err(ApiError::bad_request(
            20001,
            format!("IdempotencyKey is longer than {MAX_KEY} characters"),
        )),
        k => Ok(k.map(str::to_owned)),
    }
}

fn call_of(call: &str) -> Result<&str, ApiError> {
    Some(call)
        .filter(|c| is_sid(c, "CA"))
        .ok_or_else(|| ApiError::bad_request(20001, format!("Invalid CallSid: {call}")))
}

/// `POST …/UserDefinedMessages.json`: `Content` (a JSON string) to the call's device.
pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let call = call_of(&call)?;
    let p = form(&body);
    let content = param(&p, "Content").unwrap_or_default();
    if content.is_empty() {
        return Err(ApiError::bad_request(
            20001,
            "Missing required parameter Content",
        ));
    }
    if content.len() > MAX_CONTENT {
        return Err(ApiError::bad_request(
            20001,
            format!("Content is longer than {MAX_CONTENT} bytes"),
        ));
    }
    let content: Value = serde_json::from_str(content)
        .map_err(|e| ApiError::bad_request(20001, format!("Content is not JSON: {e}")))?;
    let key = idempotency_key(&p)?;
    let sid = (api.user_messages)
        .to_device(&account.sid, call, content, key)
        .map_err(refused)?;
    let body = json!({
        "account_sid": account.api_sid(),
        "call_sid": call,
        "sid": sid,
        "date_created": rfc2822(now_ms()),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST …/UserDefinedMessageSubscriptions.json`: `Callback` (and `Method`) gets what the
/// call's device sends.
pub(super) async fn subscribe(
    State(api): State<TwilioApi>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let call = call_of(&call)?;
    let p = form(&body);
    let callback = url(&p, "Callback")?
        .ok_or_else(|| ApiError::bad_request(20001, "Missing required parameter Callback"))?;
    let method = method(&p, "Method")?;
    let key = idempotency_key(&p)?;
    let made = (api.user_messages)
        .subscribe(&account.sid, call, callback, method, key, now_ms())
        .map_err(refused)?;
    let body = json!({
        "account_sid": account.api_sid(),
        "call_sid": call,
        "sid": made.sid,
        "date_created": rfc2822(made.created_at),
        "uri": format!(
            "/2010-04-01/Accounts/{}/Calls/{call}/UserDefinedMessageSubscriptions/{}.json",
            account.api_sid(),
            made.sid
        ),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE …/UserDefinedMessageSubscriptions/{ZY}.json`.
pub(super) async fn unsubscribe(
    State(api): State<TwilioApi>,
    Path((account, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    if api.user_messages.unsubscribe(&account.sid, &call, sid) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{}/Calls/{call}/UserDefinedMessageSubscriptions/{sid}.json",
            account.api_sid()
        )))
    }
}
