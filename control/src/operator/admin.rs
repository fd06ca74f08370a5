//! The operator's API, under `/admin/v1`: what tenants may not decide for themselves — the
//! number ranges each account may claim, and its call limits — and the log's level.
//! Authenticated by `Authorization: Bearer` with the configured admin token; without one
//! configured the API does not exist (404).

use crate::call::account_limits::{AccountLimits, Limits};
use crate::infra::accounts::{Directory, NumberRange};
use crate::infra::store::Store;
use crate::services::directory::phone_numbers::PhoneNumbers;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
pub struct AdminApi {
    pub token: Option<String>,
    pub directory: Arc<Directory>,
    pub numbers: Arc<PhoneNumbers>,
    pub limits: Arc<AccountLimits>,
    pub store: Store,
    /// Trunks, routes and accounts through the API (`None`: not managed here, 404).
    pub routing: Option<Arc<dyn super::additions::ConfigAdmin>>,
    /// The log's level, read (`None`) or changed; `None` where the process has no log to
    /// change (tests that build the API alone).
    pub log_level: Option<LogLevel>,
}

/// Reads (given `None`) or changes the log's level (its filter directives); gives the level
/// in force, or why the new one is refused.
pub type LogLevel = Arc<dyn Fn(Option<&str>) -> Result<String, String> + Send + Sync>;

pub fn router(api: AdminApi) -> Router {
    Router::new()
        .route(
            "/admin/v1/accounts/{account}/number_ranges",
            get(list_ranges).post(grant_range),
        )
        .route(
            "/admin/v1/accounts/{account}/number_ranges/{range}",
            delete(revoke_range),
        )
        .route(
            "/admin/v1/accounts/{account}/limits",
            get(get_limits).put(set_limits),
        )
        .route("/admin/v1/log", get(get_log).put(set_log))
        .route("/admin/v1/trunks", get(super::additions::list_trunks))
        .route(
            "/admin/v1/trunks/{name}",
            put(super::additions::put_trunk).delete(super::additions::delete_trunk),
        )
        .route(
            "/admin/v1/routes",
            get(super::additions::list_routes).post(super::additions::add_route),
        )
        .route(
            "/admin/v1/routes/{id}",
            delete(super::additions::delete_route),
        )
        .route("/admin/v1/accounts", get(super::additions::list_accounts))
        .route(
            "/admin/v1/accounts/{account}",
            put(super::additions::put_account).delete(super::additions::delete_account),
        )
        .route("/admin/v1/audit", get(super::additions::audit))
        .with_state(api)
}

/// The admin API's 429 for a client that must wait `wait`.
pub fn too_many(wait: std::time::Duration) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed authentications from this address",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
    response
}

/// Switchboard's own APIs' error: `{status, message}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"status": status.as_u16(), "message": message.into()})),
    )
        .into_response()
}

/// The operator's credentials, then the account the path names.
fn authorize<'a>(
    api: &AdminApi,
    headers: &HeaderMap,
    account: &'a str,
) -> Result<&'a str, Box<Response>> {
    operator(api, headers)?;
    api.directory
        .account(account)
        .map(|_| account)
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::NOT_FOUND,
                format!("no account {account}"),
            ))
        })
}

/// The operator's credentials.
pub(super) fn operator(api: &AdminApi, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let refuse = |status, message: String| Box::new(error(status, message));
    let Some(token) = api.token.as_deref() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "the admin API is not enabled".into(),
        ));
    };
    let given = crate::infra::http::bearer_token(headers).unwrap_or_default();
    if !crate::infra::secret::matches(token, given) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "a valid admin token is required".into(),
        ));
    }
    Ok(())
}

/// The log's level now, or 404 where it cannot be changed.
fn log_level(api: &AdminApi, new: Option<&str>) -> Response {
    let Some(level) = &api.log_level else {
        return error(
            StatusCode::NOT_FOUND,
            "the log level is not adjustable here",
        );
    };
    match level(new) {
        Ok(level) => Json(json!({"level": level})).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn get_log(State(api): State<AdminApi>, headers: HeaderMap) -> Response {
    match operator(&api, &headers) {
        Ok(()) => log_level(&api, None),
        Err(e) => *e,
    }
}

/// `PUT {"level": "debug,switchboard_sip=trace"}`: the new filter, in force at once.
async fn set_log(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let given = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("level")?.as_str().map(str::to_owned))
        .filter(|l| !l.is_empty() && l.len() <= 1024);
    match given {
        Some(level) => log_level(&api, Some(&level)),
        None => error(
            StatusCode::BAD_REQUEST,
            "expected {\"level\": \"FILTER\"} (e.g. \"debug\" or \"info,switchboard_sip=trace\")",
        ),
    }
}

async fn ranges_body(api: &AdminApi, account: &str, status: StatusCode) -> Response {
    let configured: Vec<String> = (api.directory.account(account))
        .map(|a| a.number_ranges.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default();
    match api.numbers.ranges(account).await {
        Ok(granted) => {
            let granted: Vec<String> = granted.iter().map(|r| r.to_string()).collect();
            let body =
                json!({"account_sid": account, "configured": configured, "granted": granted});
            (status, Json(body)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read number ranges");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the store failed")
        }
    }
}

async fn list_ranges(
    State(api): State<AdminApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    match authorize(&api, &headers, &account) {
        Ok(account) => ranges_body(&api, account, StatusCode::OK).await,
        Err(e) => *e,
    }
}

/// `POST {"range": "+1555123*"}`: 201 when granted, 200 when it was already.
async fn grant_range(
    State(api): State<AdminApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let account = match authorize(&api, &headers, &account) {
        Ok(a) => a,
        Err(e) => return *e,
    };
    let given = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("range")?.as_str().map(str::to_owned));
    let Some(range) = given.as_deref().and_then(NumberRange::parse) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"range\": \"+DIGITS\" | \"+DIGITS*\" | \"+DIGITS-+DIGITS\"}",
        );
    };
    let shown = range.to_string();
    match api.numbers.grant(account, range).await {
        Ok(added) => {
            if added {
                let subject = format!("number range {shown} of {account}");
                super::additions::note(&api, "grant", subject, String::new()).await;
            }
            let status = if added {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            ranges_body(&api, account, status).await
        }
        Err(None) => error(
            StatusCode::BAD_REQUEST,
            format!(
                "an account holds at most {} ranges",
                crate::services::directory::phone_numbers::MAX_RANGES
            ),
        ),
        Err(Some(e)) => {
            tracing::error!(error = %e, "cannot store a number range");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the store failed")
        }
    }
}

async fn revoke_range(
    State(api): State<AdminApi>,
    Path((account, range)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let account = match authorize(&api, &headers, &account) {
        Ok(a) => a,
        Err(e) => return *e,
    };
    let Some(range) = NumberRange::parse(&range) else {
        return error(StatusCode::BAD_REQUEST, format!("{range:?} is not a range"));
    };
    match api.numbers.revoke(account, &range).await {
        Ok(true) => {
            let subject = format!("number range {range} of {account}");
            super::additions::note(&api, "revoke", subject, String::new()).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, format!("{range} is not granted")),
        Err(e) => {
            tracing::error!(error = %e, "cannot delete a number range");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the store failed")
        }
    }
}

fn limits_body(account: &str, limits: Limits) -> Response {
    let body = json!({
        "account_sid": account,
        "max_calls": limits.max_calls,
        "calls_per_second": limits.calls_per_second,
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// `GET`: the call limits in force for the account.
async fn get_limits(
    State(api): State<AdminApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    match authorize(&api, &headers, &account) {
        Ok(account) => limits_body(account, api.limits.of(account)),
        Err(e) => *e,
    }
}

/// `PUT {"max_calls": 10, "calls_per_second": 2}`: stored, then in force at once.
async fn set_limits(
    State(api): State<AdminApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let account = match authorize(&api, &headers, &account) {
        Ok(a) => a,
        Err(e) => return *e,
    };
    let limits = serde_json::from_slice::<Limits>(&body)
        .ok()
        .filter(|l| l.calls_per_second.is_finite() && l.calls_per_second > 0.0);
    let Some(limits) = limits else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"max_calls\": N, \"calls_per_second\": X} with X > 0",
        );
    };
    match api
        .store
        .set_account_limits(account, limits, crate::infra::clock::now_ms())
        .await
    {
        Ok(()) => {
            api.limits.set(account, limits);
            let detail =
                json!({"max_calls": limits.max_calls, "calls_per_second": limits.calls_per_second});
            super::additions::note(
                &api,
                "put",
                format!("limits of {account}"),
                detail.to_string(),
            )
            .await;
            (api.store)
                .announce(crate::infra::store::changes::Changed::AccountLimits)
                .await;
            limits_body(account, limits)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store an account's limits");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the store failed")
        }
    }
}
