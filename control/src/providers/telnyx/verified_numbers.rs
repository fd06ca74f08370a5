//! Verified numbers (`/v2/verified_numbers`): numbers an account proved it answers, which it
//! may then present as `from`. Requesting one places a call that speaks a six-digit code; the
//! account submits it (`actions/verify`). The verification is the neutral
//! [`crate::services::directory::verified_caller_ids`] service, shared with Twilio's OutgoingCallerIds; this module
//! translates. Only `verification_method: call` is served (there is no SMS here).

use super::errors::ApiError;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::infra::store::VerifiedCallerIdRow;
use crate::services::directory::verified_caller_ids::{
    ConfirmError, Proof, Verification, VerifyError,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The longest `extension` Telnyx takes.
const MAX_EXTENSION: usize = 50;

fn resource(row: &VerifiedCallerIdRow) -> Value {
    json!({
        "phone_number": row.phone_number,
        "record_type": "verified_number",
        "verified_at": super::events::timestamp(row.created_at),
    })
}

fn not_found(number: &str) -> ApiError {
    ApiError::not_found(format!(
        "{number} is not a verified number of this account."
    ))
}

/// Requests verification: the number is called and hears its code.
pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let phone_number = p.required("phone_number")?.trim().to_owned();
    match p.required("verification_method")? {
        "call" => {}
        "sms" => {
            return Err(ApiError::invalid(
                "verification_method",
                "SMS is not served here; use 'call'.".into(),
            ));
        }
        other => {
            return Err(ApiError::invalid(
                "verification_method",
                format!("'{other}' is not one of sms, call."),
            ));
        }
    }
    let extension = match p.str("extension")?.filter(|e| !e.is_empty()) {
        None => None,
        Some(e)
            if e.len() <= MAX_EXTENSION
                && e.chars().all(|c| "0123456789ABCDabcd*#wW".contains(c)) =>
        {
            Some(e.to_owned())
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "extension",
                format!("'extension' may hold at most {MAX_EXTENSION} of 0-9, A-D, *, #, w, W."),
            ));
        }
    };
    let verified = &api.parts.verified;
    if verified.by_number(&account.sid, &phone_number).is_some() {
        return Err(ApiError::param(
            "10015",
            "Invalid value for phone_number",
            "phone_number",
            format!("{phone_number} is already verified on this account."),
        ));
    }
    let verification = Verification {
        account: account.sid.clone(),
        phone_number: phone_number.clone(),
        friendly_name: None,
        call_delay: Duration::ZERO,
        extension,
        ring_timeout: Duration::from_secs(60),
        proof: Proof::Spoken,
    };
    verified
        .verify(&api.parts.control, &api.parts.prompts, verification, |_| {})
        .await
        .map_err(|e| match e {
            VerifyError::NotANumber(_) => ApiError::param(
                "10015",
                "Invalid value for phone_number",
                "phone_number",
                format!("'{phone_number}' is not a phone number in +E.164 form."),
            ),
            VerifyError::TooMany | VerifyError::TooManyPending | VerifyError::TooManyFailures => {
                ApiError::unprocessable(e.to_string())
            }
            VerifyError::Call(e) => {
                super::calls::originate_error(&phone_number, e, ("phone_number", "phone_number"))
            }
        })?;
    Ok(Json(
        json!({"phone_number": phone_number, "verification_method": "call"}),
    ))
}

/// Submits the code the call spoke.
pub(super) async fn verify(
    State(api): State<Arc<Telnyx>>,
    Path(number): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let code = p.required("verification_code")?;
    let row = (api.parts.verified)
        .confirm(&account.sid, &number, code)
        .await
        .map_err(|e| match e {
            ConfirmError::NotPending => not_found(&number),
            ConfirmError::WrongCode => ApiError::param(
                "10015",
                "Invalid value for verification_code",
                "verification_code",
                "The verification code is not correct.".into(),
            ),
            ConfirmError::Store => ApiError::unprocessable(e.to_string()),
        })?;
    Ok(Json(json!({ "data": resource(&row) })))
}

pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let rows = api.parts.verified.of_account(&account.sid);
    Ok(Json(page.of(&rows, resource)))
}

pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = (api.parts.verified)
        .by_number(&account.sid, &number)
        .ok_or_else(|| not_found(&number))?;
    Ok(Json(json!({ "data": resource(&row) })))
}

pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let verified = &api.parts.verified;
    let row = (verified.by_number(&account.sid, &number)).ok_or_else(|| not_found(&number))?;
    if !(verified.delete(&account.sid, &row.sid).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?
    {
        return Err(not_found(&number));
    }
    Ok(Json(json!({ "data": resource(&row) })))
}
