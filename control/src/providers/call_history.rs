//! A call's history for frontends (the console, an application's own pages): its stored
//! events, the same ones the live socket sends as they happen, and its SIP ladder — every
//! message of its dialogs in and out — as JSON or as a pcap for Wireshark. An account reads
//! its own calls only, with its REST credentials (Basic, as the provider APIs take them).
//! Switchboard's own API, described in `/openapi.json`.

use crate::infra::accounts::{Account, Directory};
use crate::infra::store::sip_trace::SipTrace;
use crate::providers::admin::error;
use crate::services::call_records::CallRecords;
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone)]
pub struct CallHistory {
    pub directory: Arc<Directory>,
    pub calls: Arc<CallRecords>,
    /// The SIP capture, when messages are kept (`sip.trace_retention_secs`).
    pub trace: Option<SipTrace>,
}

pub fn router(api: CallHistory) -> Router {
    Router::new()
        .route("/v1/calls/{call}/events", get(events))
        .route("/v1/calls/{call}/sip", get(ladder))
        .route("/v1/calls/{call}/sip.pcap", get(pcap))
        .with_state(api)
}

/// The account whose Basic credentials the request carries.
fn account(api: &CallHistory, headers: &HeaderMap) -> Option<Account> {
    crate::infra::http::basic_credentials(headers)
        .and_then(|(user, password)| api.directory.by_credentials(&user, &password))
        .map(|(account, _)| account)
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "Basic credentials of an account are required",
    )
}

fn unreadable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "a call's history is unreadable");
    error(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
}

fn no_call() -> Response {
    error(StatusCode::NOT_FOUND, "no such call")
}

/// `GET /v1/calls/{CA…}/events`: `{call, events: [{event, seq, at, …}]}`.
async fn events(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(account) = account(&api, &headers) else {
        return unauthorized();
    };
    let rows = match api.calls.events(&account.sid, &call).await {
        Ok(Some(rows)) => rows,
        Ok(None) => return no_call(),
        Err(e) => return unreadable(e),
    };
    let events: Vec<Value> = (rows.into_iter())
        .map(|row| {
            let mut event = serde_json::from_str(&row.detail).unwrap_or_else(|_| json!({}));
            if let Value::Object(fields) = &mut event {
                fields.insert("event".into(), json!(row.kind));
                fields.insert("seq".into(), json!(row.seq));
                fields.insert("at".into(), json!(row.at));
            }
            event
        })
        .collect();
    Json(json!({"call": call, "events": events})).into_response()
}

/// The call's SIP messages, after what was captured before the request is written.
async fn messages(
    api: &CallHistory,
    headers: &HeaderMap,
    call: &str,
) -> Result<Vec<crate::infra::store::sip_trace::SipRow>, Response> {
    let account = account(api, headers).ok_or_else(unauthorized)?;
    if let Some(trace) = &api.trace {
        trace.sync().await;
    }
    match api.calls.sip_messages(&account.sid, call).await {
        Ok(Some(rows)) => Ok(rows),
        Ok(None) => Err(no_call()),
        Err(e) => Err(unreadable(e)),
    }
}

/// `GET /v1/calls/{CA…}/sip`: `{call, kept, messages: [{at, direction, transport, local,
/// remote, sip_call_id, message}]}`; `kept` is false when the server keeps no messages.
async fn ladder(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rows = match messages(&api, &headers, &call).await {
        Ok(rows) => rows,
        Err(refused) => return refused,
    };
    let messages: Vec<Value> = (rows.into_iter())
        .map(|r| {
            json!({"at": r.at, "direction": if r.outbound { "out" } else { "in" },
                   "transport": r.transport, "local": r.local, "remote": r.remote,
                   "sip_call_id": r.sip_call_id, "message": r.message})
        })
        .collect();
    Json(json!({"call": call, "kept": api.trace.is_some(), "messages": messages})).into_response()
}

/// `GET /v1/calls/{CA…}/sip.pcap`: the same messages as a pcap file.
async fn pcap(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Response {
    let rows = match messages(&api, &headers, &call).await {
        Ok(rows) => rows,
        Err(refused) => return refused,
    };
    let packets: Vec<crate::infra::pcap::Packet<'_>> = (rows.iter())
        .filter_map(|r| {
            let (local, remote) = (r.local.parse().ok()?, r.remote.parse().ok()?);
            let (from, to) = if r.outbound {
                (local, remote)
            } else {
                (remote, local)
            };
            Some(crate::infra::pcap::Packet {
                at_ms: r.at,
                from,
                to,
                data: r.message.as_bytes(),
            })
        })
        .collect();
    let mut response = crate::infra::pcap::file(&packets).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.tcpdump.pcap"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{call}.pcap\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
