//! A call's history for frontends (the console, an application's own pages): the latest
//! calls, a call's row and recordings, its stored events (the same ones the live socket sends
//! as they happen), and its SIP ladder — every message of its dialogs in and out — as JSON or
//! as a pcap for Wireshark. An account reads its own calls with its REST credentials (Basic,
//! as the provider APIs take them); the operator reads every call, routed calls between
//! trunks included, with the admin token (Bearer). Switchboard's own API, described in
//! `/openapi.json`.

use crate::infra::accounts::Directory;
use crate::infra::store::sip_trace::SipTrace;
use crate::operator::admin::error;
use crate::operator::frontend::{Viewer, shown, unauthorized};
use crate::services::call_records::CallRecords;
use crate::services::recordings::{MediaKind, RecordingError, Recordings};
use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

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

/// Each handler answers `Ok` or the error response it met first (the same `Response` type,
/// so that `?` carries a refusal out).
type Answer = Result<Response, Response>;

/// `GET /v1/calls?limit=N`: `{calls: [...]}`, the latest first.
async fn calls(State(api): State<CallHistory>, query: RawQuery, headers: HeaderMap) -> Answer {
    let viewer = viewer(&api, &headers).ok_or_else(unauthorized)?;
    let limit = (query.0.unwrap_or_default().split('&'))
        .find_map(|kv| kv.strip_prefix("limit="))
        .map(|n| n.parse().ok().filter(|n| (1..=LIST_MAX).contains(n)))
        .unwrap_or(Some(LIST_DEFAULT))
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "limit must be 1 to 200"))?;
    let calls = (api.calls.recent(viewer.scope(), limit).await).map_err(unreadable)?;
    Ok(Json(json!({"calls": calls})).into_response())
}

/// `GET /v1/calls/{CA…}`: `{call, recordings}`, the call's row (its legs with their media
/// figures) and its recordings.
async fn call(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let viewer = viewer(&api, &headers).ok_or_else(unauthorized)?;
    let found = (api.calls.seen(viewer.scope(), &call).await)
        .map_err(unreadable)?
        .ok_or_else(no_call)?;
    let recordings = (api.calls.recordings(&call).await).map_err(unreadable)?;
    Ok(Json(json!({"call": found, "recordings": recordings})).into_response())
}

/// `GET /v1/recordings/{RE…}.wav`: a recording of a call the viewer sees, as WAV.
async fn recording(
    State(api): State<CallHistory>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let viewer = viewer(&api, &headers).ok_or_else(unauthorized)?;
    let sid = file.strip_suffix(".wav").unwrap_or(&file);
    let not_found = || error(StatusCode::NOT_FOUND, "no such recording");
    let row = match api.recordings.any(sid).await {
        Err(RecordingError::NotFound) => return Err(not_found()),
        other => other.map_err(unreadable)?,
    };
    (api.calls.seen(viewer.scope(), &row.call_id).await)
        .map_err(unreadable)?
        .ok_or_else(not_found)?;
    match api.recordings.media(&row, MediaKind::Wav).await {
        Ok(body) => Ok((
            [(header::CONTENT_TYPE, MediaKind::Wav.content_type())],
            body,
        )
            .into_response()),
        Err(RecordingError::InProgress | RecordingError::NotFound) => Err(not_found()),
        Err(e) => Err(unreadable(e)),
    }
}

/// `GET /v1/calls/{CA…}/events`: `{call, events: [{event, seq, at, …}]}`.
async fn events(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let viewer = viewer(&api, &headers).ok_or_else(unauthorized)?;
    let rows = (api.calls.events(viewer.scope(), &call).await)
        .map_err(unreadable)?
        .ok_or_else(no_call)?;
    let events: Vec<Value> = (rows.into_iter())
        .map(|row| {
            let detail: Value = serde_json::from_str(&row.detail).unwrap_or_else(|_| json!({}));
            let mut event = shown(&detail);
            if let Value::Object(fields) = &mut event {
                fields.insert("event".into(), json!(row.kind));
                fields.insert("seq".into(), json!(row.seq));
                fields.insert("at".into(), json!(row.at));
            }
            event
        })
        .collect();
    Ok(Json(json!({"call": call, "events": events})).into_response())
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
    (api.calls.sip_messages(viewer.scope(), call).await)
        .map_err(unreadable)?
        .ok_or_else(no_call)
}

/// `GET /v1/calls/{CA…}/sip`: `{call, kept, messages: [{at, direction, transport, local,
/// remote, sip_call_id, message}]}`; `kept` is false when the server keeps no messages.
async fn ladder(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let rows = messages(&api, &headers, &call).await?;
    let messages: Vec<Value> = (rows.into_iter())
        .map(|r| {
            json!({"at": r.at, "direction": if r.outbound { "out" } else { "in" },
                   "transport": r.transport, "local": r.local, "remote": r.remote,
                   "sip_call_id": r.sip_call_id, "message": r.message})
        })
        .collect();
    Ok(
        Json(json!({"call": call, "kept": api.trace.is_some(), "messages": messages}))
            .into_response(),
    )
}

/// `GET /v1/calls/{CA…}/sip.pcap`: the same messages as a pcap file.
async fn pcap(
    State(api): State<CallHistory>,
    Path(call): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let rows = messages(&api, &headers, &call).await?;
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
    Ok(response)
}
