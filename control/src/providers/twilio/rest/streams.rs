//! The Streams subresource of a call: `POST /Calls/{CA}/Streams.json` starts a one-way media
//! stream (`Url`, `Name`, `Track`, `StatusCallback(Method)`, `ParameterN.Name/Value`), and
//! `POST /Calls/{CA}/Streams/{MZ or name}.json` with `Status=stopped` stops one, whether the
//! API or TwiML started it.

use super::json::{self, Json, form, param};
use super::{ApiError, TwilioApi, authenticate, live_call};
use crate::markup::rfc2822;
use crate::markup::twiml::MAX_STREAM_PARAMETERS;
use crate::markup::voice::streams::{StreamRequest, start_error_code};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::json;

fn resource(account: &str, call: &str, sid: &str, name: Option<&str>, status: &str) -> Json {
    Json(json!({
        "sid": sid,
        "account_sid": account,
        "call_sid": call,
        "name": name,
        "status": status,
        "date_updated": rfc2822(crate::infra::clock::now_ms()),
        "uri": format!("/2010-04-01/Accounts/{account}/Calls/{call}/Streams/{sid}.json"),
    }))
}

/// `Parameter1.Name`/`Parameter1.Value` … `Parameter99.*`, in order.
fn parameters(p: &[(String, String)]) -> Vec<(String, String)> {
    (1..=MAX_STREAM_PARAMETERS)
        .filter_map(|i| {
            let name = param(p, &format!("Parameter{i}.Name"))?;
            let value = param(p, &format!("Parameter{i}.Value")).unwrap_or_default();
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// `POST /Calls/{CA}/Streams.json`.
pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    let url = match param(&p, "Url").filter(|u| !u.is_empty()) {
        None => return Err(ApiError::bad_request(21205, "Url parameter is required.")),
        Some(u) => match url::Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "wss" | "ws") => u.to_owned(),
            _ => {
                return Err(ApiError::bad_request(
                    21205,
                    format!("Url is not a valid WebSocket URL: {u}"),
                ));
            }
        },
    };
    let track = json::track(&p)?;
    let req = StreamRequest {
        url,
        name: param(&p, "Name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        track,
        bidirectional: false,
        parameters: parameters(&p),
        status_callback: json::url(&p, "StatusCallback")?,
        status_callback_method: json::method(&p, "StatusCallbackMethod")?,
        codec: None,
        auth_bearer_token: param(&p, "AuthorizationBearerToken").map(str::to_owned),
        bidirectional_mode: None,
        bidirectional_codec: None,
        bidirectional_sampling_rate: None,
        transcripts: param(&p, "Transcripts") == Some("true"),
    };
    live_call(&api, &account.sid, &call, "Cannot start a stream.").await?;
    let name = req.name.clone();
    let (sid, _ended) = api
        .apps
        .start_stream(&account, &call, req)
        .await
        .map_err(|e| ApiError::bad_request(start_error_code(&e), e.to_string()))?;
    Ok(resource(
        account.api_sid(),
        &call,
        &sid,
        name.as_deref(),
        "in-progress",
    ))
}

/// `POST /Calls/{CA}/Streams/{MZ or name}.json` with `Status=stopped`.
pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    if param(&p, "Status") != Some("stopped") {
        return Err(ApiError::bad_request(
            20001,
            format!(
                "Invalid Status: {}; a stream can only be stopped",
                param(&p, "Status").unwrap_or("")
            ),
        ));
    }
    let named = file.strip_suffix(".json").unwrap_or(&file);
    let missing = || {
        ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{}/Calls/{call}/Streams/{named}.json",
            account.api_sid()
        ))
    };
    api.writer.sync().await;
    let owned = api
        .store
        .get_call(&call)
        .await
        .map_err(ApiError::internal)?
        .is_some_and(|c| c.account_sid.as_deref() == Some(account.sid.as_str()));
    if !owned {
        return Err(missing());
    }
    let stopped = api.apps.streams.stop(&call, named).ok_or_else(missing)?;
    Ok(resource(
        account.api_sid(),
        &call,
        &stopped.id,
        stopped.name.as_deref(),
        "stopped",
    ))
}
