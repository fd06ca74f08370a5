//! Telnyx's error envelope: `{"errors":[{"code":"90018","title":…,"detail":…,"source":{…}}]}`
//! with the code as a string of digits. Business errors are 422, never 408/409/429/5xx: the
//! Stainless SDKs retry those by themselves.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// The JSON pointer of the parameter at fault (`/to`).
    pub pointer: Option<String>,
    /// For a 429: seconds until a retry may pass.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: String,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail,
            pointer: None,
            retry_after: None,
        }
    }

    /// A 422 about the parameter `field` (its JSON pointer is `/field`).
    pub fn param(code: &'static str, title: &'static str, field: &str, detail: String) -> Self {
        Self {
            pointer: Some(format!("/{field}")),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, detail)
        }
    }

    pub fn missing(field: &str) -> Self {
        Self::param(
            "10004",
            "Missing required parameter",
            field,
            format!("The '{field}' parameter is required."),
        )
    }

    pub fn invalid(field: &str, detail: String) -> Self {
        Self::param("10032", "Invalid enumerated value", field, detail)
    }

    pub fn out_of_range(field: &str, detail: String) -> Self {
        Self::param("10033", "Value outside of range", field, detail)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "10009",
            "Authentication failed",
            "The API key is missing or not valid.".into(),
        )
    }

    pub fn rate_limited(wait: Duration) -> Self {
        Self {
            retry_after: Some(wait.as_secs().max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "10011",
                "Too many requests",
                "You have exceeded the maximum number of allowed requests.".into(),
            )
        }
    }

    /// The account's call limits (see [`crate::call::account_limits`]): a 429, as for its request
    /// rate.
    pub fn account_limit(exceeded: crate::call::account_limits::Exceeded) -> Self {
        use crate::call::account_limits::Exceeded;
        match exceeded {
            Exceeded::Rate(wait) => Self::rate_limited(wait),
            Exceeded::Calls(_) => Self {
                detail: format!("{exceeded}: hang up a call before placing another."),
                ..Self::rate_limited(Duration::from_secs(1))
            },
        }
    }

    /// A `from` the account may not present: neither its number nor one the operator allows.
    pub fn caller_id_not_allowed(field: &str, from: &str) -> Self {
        Self::param(
            "10010",
            "Authorization failed",
            field,
            format!("You may not use {from} as the caller ID: use one of your numbers."),
        )
    }

    /// The node is draining before it stops: a 503, which the SDKs retry (elsewhere, behind
    /// a balancer), with Telnyx's general code for an error on its side.
    pub fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "10007",
            "Unexpected error",
            "This node is shutting down; retry the request.".into(),
        )
    }

    pub fn not_found(detail: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, "10005", "Resource not found", detail)
    }

    /// An id that is not a call control id of ours, or a call of another account.
    pub fn invalid_call() -> Self {
        Self::param(
            "90015",
            "Invalid Call Control ID",
            "call_control_id",
            "The call_control_id provided was not valid.".into(),
        )
    }

    pub fn call_ended() -> Self {
        Self::param(
            "90018",
            "Call has already ended",
            "call_control_id",
            "This call is no longer active and can't receive commands.".into(),
        )
    }

    pub fn not_answered() -> Self {
        Self::param(
            "90034",
            "Call not answered yet",
            "call_control_id",
            "This call has not been answered yet and can't receive this command.".into(),
        )
    }

    /// The conference is over (Telnyx's 90019).
    pub fn conference_ended() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "90019",
            "Conference has already ended",
            "The conference is over.".into(),
        )
    }

    /// A failure of ours (the store): 500.
    pub fn internal(detail: String) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "10007",
            "Unexpected error",
            detail,
        )
    }

    /// A command the call core refused for a reason Telnyx's catalogue has no code for (no
    /// free media port, a prompt that cannot be fetched): the code is Switchboard's own.
    pub fn unprocessable(detail: String) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "90000",
            "Command failed",
            detail,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "title": self.title, "detail": self.detail});
        if let Some(pointer) = &self.pointer {
            error["source"] = json!({ "pointer": pointer });
        }
        let mut response = (self.status, axum::Json(json!({ "errors": [error] }))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert("retry-after", v);
        }
        response
    }
}
