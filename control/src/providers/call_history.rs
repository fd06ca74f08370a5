//! A call's history for frontends (the console, an application's own pages): the latest
//! calls, a call's row and recordings, its stored events (the same ones the live socket sends
//! as they happen), and its SIP ladder — every message of its dialogs in and out — as JSON or
//! as a pcap for Wireshark. An account reads its own calls with its REST credentials (Basic,
//! as the provider APIs take them); the operator reads every call, routed calls between
//! trunks included, with the admin token (Bearer). Switchboard's own API, described in
//! `/openapi.json`.

use crate::infra::accounts::{Account, Directory};
use crate::infra::store::sip_trace::SipTrace;
use crate::providers::admin::error;
use crate::services::call_records::CallRecords;
use crate::services::recordings::{MediaKind, RecordingError, Recordings};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

/// Who reads: an account (its own calls) or the operator (every call).
pub enum Viewer {
    Account(Box<Account>),
    Operator,
}

impl Viewer {
    /// The account whose calls it sees; `None`: every call.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Self::Account(a) => Some(&a.sid),
            Self::Operator => None,
        }
    }

    /// From the request's credentials: the admin token as a Bearer (when one is configured),
    /// or an account's Basic credentials.
    pub fn of(
        directory: &Directory,
        admin_token: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Self> {
        let bearer = (headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let (Some(token), Some(given)) = (admin_token, bearer) {
            return crate::infra::secret::matches(token, given.trim()).then_some(Self::Operator);
        }
        crate::infra::http::basic_credentials(headers)
            .and_then(|(user, password)| directory.by_credentials(&user, &password))
            .map(|(account, _)| Self::Account(Box::new(account)))
    }
}

#[derive(Clone)]
pub struct CallHistory {
    pub directory: Arc<Directory>,
    /// The operator's token (`http.admin_token`); `None`: only accounts read.
    pub admin_token: Option<String>,
    pub calls: Arc<CallRecords>,
    pub recordings: Arc<Recordings>,
    /// The SIP capture, when messages are kept (`sip.trace_retention_secs`).
    pub trace: Option<SipTrace>,
}

pub fn router(api: CallHistory) -> Router {
    Router::new()
        .route("/v1/calls", get(calls))
        .route("/v1/calls/{call}", get(call))
        .route("/v1/recordings/{file}", get(recording))
        .route("/v1/calls/{call}/events", get(events))
        .route("/v1/calls/{call}/sip", get(ladder))
        .route("/v1/calls/{call}/sip.pcap", get(pcap))
        .with_state(api)
}

fn viewer(api: &CallHistory, headers: &HeaderMap) -> Option<Viewer> {
    Viewer::of(&api.directory, api.admin_token.as_deref(), headers)
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "an account's Basic credentials or the admin token are required",
    )
}

fn unreadable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "a call's history is unreadable");
    error(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
}

fn no_call() -> Response {
    error(StatusCode::NOT_FOUND, "no such call")
}

/// How many calls a list holds, by default and at most.
const LIST_DEFAULT: i64 = 50;
const LIST_MAX: i64 = 200;

#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

/// `GET /v1/calls?limit=N`: `{calls: [...]}`, the latest first.
async fn calls(
    State(api): State<CallHistory>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(viewer) = viewer(&api, &headers) else {
        return unauthorized();
    };
    let limit = match q.limit {
        None => LIST_DEFAULT,
        Some(n @ 1..=LIST_MAX) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "limit must be 1 to 200"),
    };
    match api.calls.recent(viewer.scope(), limit).await {
        Ok(calls) => Json(json!({"calls": calls})).into_response(),
        Err(e) => unreadable(e),
    }
}

/// `GET /v1/calls/{CA…}`: `{call, recordings}`, the call's row (its legs with their media
/// figures) and its recordings.
async fn call(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(viewer) = viewer(&api, &headers) else {
        return unauthorized();
    };
    let found = match api.calls.seen(viewer.scope(), &call).await {
        Ok(Some(found)) => found,
        Ok(None) => return no_call(),
        Err(e) => return unreadable(e),
    };
    match api.calls.recordings(&call).await {
        Ok(recordings) => Json(json!({"call": found, "recordings": recordings})).into_response(),
        Err(e) => unreadable(e),
    }
}

/// `GET /v1/recordings/{RE…}.wav`: a recording of a call the viewer sees, as WAV.
async fn recording(
    State(api): State<CallHistory>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(viewer) = viewer(&api, &headers) else {
        return unauthorized();
    };
    let sid = file.strip_suffix(".wav").unwrap_or(&file);
    let not_found = || error(StatusCode::NOT_FOUND, "no such recording");
    let row = match api.recordings.any(sid).await {
        Ok(row) => row,
        Err(RecordingError::NotFound) => return not_found(),
        Err(e) => return unreadable(e),
    };
    match api.calls.seen(viewer.scope(), &row.call_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(),
        Err(e) => return unreadable(e),
    }
    match api.recordings.media(&row, MediaKind::Wav).await {
        Ok(body) => (
            [(header::CONTENT_TYPE, MediaKind::Wav.content_type())],
            body,
        )
            .into_response(),
        Err(RecordingError::InProgress | RecordingError::NotFound) => not_found(),
        Err(e) => unreadable(e),
    }
}

/// `GET /v1/calls/{CA…}/events`: `{call, events: [{event, seq, at, …}]}`.
async fn events(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(viewer) = viewer(&api, &headers) else {
        return unauthorized();
    };
    let rows = match api.calls.events(viewer.scope(), &call).await {
        Ok(Some(rows)) => rows,
        Ok(None) => return no_call(),
        Err(e) => return unreadable(e),
    };
    let events: Vec<Value> = (rows.into_iter())
        .map(|row| {
            let detail: Value = serde_json::from_str(&row.detail).unwrap_or_else(|_| json!({}));
            let mut event = crate::providers::live::shown(&detail);
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
    let viewer = viewer(api, headers).ok_or_else(unauthorized)?;
    if let Some(trace) = &api.trace {
        trace.sync().await;
    }
    match api.calls.sip_messages(viewer.scope(), call).await {
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
