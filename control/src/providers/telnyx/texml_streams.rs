//! TeXML's REST streams (reference §4): `…/Calls/{call_sid}/Streams.json` starts a media
//! stream on a call running TeXML — Telnyx's protocol, as a TeXML `<Start><Stream>` speaks it
//! (`Url`, `Name`, `Track`, `BidirectionalMode`/`BidirectionalCodec`, `StatusCallback` and its
//! method, reported in the TeXML dialect) — and `…/Calls/{call_sid}/Streams/{sid}.json` with
//! `Status=stopped` stops one (by its id or name), whoever started it.

use super::Telnyx;
use super::errors::ApiError;
use super::texml_calls::{Fields, stored_call};
use super::texml_rest::{account_id, texml_account};
use crate::call::ids::CallId;
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::store::CallStatus;
use crate::markup::voice::Dialect;
use crate::markup::voice::streams::StreamRequest;
use crate::services::stream::iso8601;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::sync::Arc;
use switchboard_media::TapTracks;

fn resource(account: &Account, call: &str, sid: &str, name: Option<&str>, status: &str) -> Value {
    let account_id = account_id(account);
    let call_id = CallId::from_sid(call).map_or_else(|| call.to_owned(), CallId::control_id);
    json!({
        "account_sid": account_id,
        "call_sid": call_id,
        "date_updated": iso8601(crate::infra::clock::now_ms()),
        "name": name,
        "sid": sid,
        "status": status,
        "uri": format!("/v2/texml/Accounts/{account_id}/Calls/{call_id}/Streams/{sid}.json"),
    })
}

/// `POST …/Calls/{call_sid}/Streams.json`.
pub(super) async fn start(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let record = stored_call(&api, &account, &call).await?;
    let dialect = (api.parts.markup.dialect_of(&record.id))
        .filter(|f| matches!(f, Dialect::Texml { .. }) && record.status == CallStatus::InProgress)
        .ok_or_else(|| {
            ApiError::unprocessable("The call is not in progress with TeXML running.".into())
        })?;
    let f = Fields::parse(&headers, &body)?;
    let url = f.get("Url").ok_or_else(|| ApiError::missing("Url"))?;
    if !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "ws" | "wss")) {
        return Err(ApiError::invalid(
            "Url",
            format!("'{url}' is not a WebSocket URL."),
        ));
    }
    let track = match f.get("Track") {
        None | Some("inbound_track") => TapTracks::Inbound,
        Some("outbound_track") => TapTracks::Outbound,
        Some("both_tracks") => TapTracks::Both,
        Some(other) => {
            return Err(ApiError::invalid(
                "Track",
                format!("'{other}' is not inbound_track, outbound_track or both_tracks."),
            ));
        }
    };
    let mode = f.get("BidirectionalMode").map(str::to_owned);
    let req = StreamRequest {
        url: url.to_owned(),
        name: f.get("Name").filter(|n| !n.is_empty()).map(str::to_owned),
        track,
        bidirectional: mode.is_some(),
        parameters: Vec::new(),
        status_callback: f.url("StatusCallback")?,
        status_callback_method: f
            .method("StatusCallbackMethod")?
            .unwrap_or(HttpMethod::Post),
        codec: None,
        auth_bearer_token: None,
        bidirectional_mode: mode,
        bidirectional_codec: f.get("BidirectionalCodec").map(str::to_owned),
        bidirectional_sampling_rate: None,
        transcripts: false,
    };
    let name = req.name.clone();
    let parties = (record.id.as_str(), record.from.as_str(), record.to.as_str());
    let (sid, _ended) = (api.parts.markup)
        .start_texml_stream(&account, parties, req, &dialect)
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(Json(resource(
        &account,
        &record.id,
        &sid,
        name.as_deref(),
        "in-progress",
    )))
}

/// `POST …/Calls/{call_sid}/Streams/{sid or name}.json` with `Status=stopped`.
pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let record = stored_call(&api, &account, &call).await?;
    let f = Fields::parse(&headers, &body)?;
    if f.get("Status") != Some("stopped") {
        return Err(ApiError::invalid(
            "Status",
            "A stream can only be stopped.".into(),
        ));
    }
    let named = file.trim_end_matches(".json");
    let stopped = (api.parts.streams.stop(&record.id, named))
        .ok_or_else(|| ApiError::not_found(format!("No stream {named} on the call.")))?;
    Ok(Json(resource(
        &account,
        &record.id,
        &stopped.id,
        stopped.name.as_deref(),
        "stopped",
    )))
}
