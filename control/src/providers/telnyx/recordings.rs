//! `/v2/recordings`: an account's saved call recordings as Telnyx shows them — listed (its
//! filters, numbered pages), read, deleted one by one or by a list of ids — and their media
//! (`download_urls`), served by the neutral recordings service. Telnyx lists `completed`
//! recordings only; one still running is not there yet.

use super::errors::ApiError;
use super::events::{LegContext, timestamp};
use super::page::Page;
use super::params::Params;
use super::recording::download_url;
use super::{Telnyx, authenticate};
use crate::call::RecordingOrigin;
use crate::call::ids::{CallId, sid_as_uuid, uuid_as_sid};
use crate::infra::store::{CallRecord, RecordingRow};
use crate::services::recordings::{MediaKind, RecordingError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Recordings a list looks through at most (the newest).
const MAX_LISTED: i64 = 10_000;
/// Ids one bulk delete takes at most.
const MAX_DELETED: usize = 250;

/// What a recording's resource shows of its call: the Telnyx leg's view of it, if a Telnyx
/// leg ran it (else the call's own numbers).
#[derive(Default, Clone)]
struct CallView {
    leg: Option<LegContext>,
    call: Option<CallRecord>,
}

impl CallView {
    async fn of(api: &Telnyx, call: &str) -> Result<Self, ApiError> {
        let leg = (api.parts.subscriptions)
            .context_of(call, super::events::RENDERER)
            .await
            .map_err(|e| ApiError::unprocessable(e.to_string()))?
            .and_then(|c| serde_json::from_str(&c).ok());
        let call = (api.parts.recordings.call(call).await)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        Ok(Self { leg, call })
    }

    fn from(&self) -> Option<&str> {
        (self.leg.as_ref().map(|l| l.from.as_str())).or(self.call.as_ref().map(|c| c.from.as_str()))
    }

    fn to(&self) -> Option<&str> {
        (self.leg.as_ref().map(|l| l.to.as_str())).or(self.call.as_ref().map(|c| c.to.as_str()))
    }

    fn session(&self, call: &str) -> Option<String> {
        let session = self.leg.as_ref().map_or(call, |l| l.session.as_str());
        CallId::from_sid(session).map(CallId::session_uuid)
    }
}

/// Telnyx's `initiated_by` for what started a recording.
fn initiated_by(origin: &str) -> &'static str {
    match RecordingOrigin::from_name(origin) {
        Some(RecordingOrigin::CallCreate) => "OutboundAPI",
        Some(RecordingOrigin::Dial) => "DialVerb",
        Some(RecordingOrigin::RecordVerb) => "RecordVerb",
        Some(RecordingOrigin::Conference) => "StartConferenceRecordingAPI",
        Some(RecordingOrigin::Route) => "Trunking",
        // Telnyx documents no name of its own for it: TeXML keeps Twilio's names.
        Some(RecordingOrigin::StartVerb) => "StartCallRecordingTwiML",
        Some(RecordingOrigin::Api) | None => "StartCallRecordingAPI",
    }
}

fn resource(api: &Telnyx, r: &RecordingRow, view: &CallView) -> Value {
    let id = CallId::from_sid(&r.call_id);
    let ended = r.ended_at.unwrap_or(r.started_at);
    json!({
        "record_type": "recording",
        "id": sid_as_uuid(&r.id, "RE"),
        "call_control_id": id.map(CallId::control_id),
        "call_leg_id": id.map(CallId::uuid),
        "call_session_id": view.session(&r.call_id),
        "conference_id": null,
        "connection_id": view.leg.as_ref().map(|l| l.connection_id.clone()),
        "channels": if r.channels == 2 { "dual" } else { "single" },
        "created_at": timestamp(r.started_at),
        "updated_at": timestamp(ended),
        "recording_started_at": timestamp(r.started_at),
        "recording_ended_at": timestamp(ended),
        "duration_millis": r.duration_ms,
        "download_urls": {
            "mp3": download_url(api, &r.id, "mp3"),
            "wav": download_url(api, &r.id, "wav"),
        },
        "from": view.from(),
        "to": view.to(),
        "initiated_by": initiated_by(&r.origin),
        "source": "call",
        "status": "completed",
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No recording {id}."))
}

fn recording_error(e: RecordingError, id: &str) -> ApiError {
    match e {
        RecordingError::NotFound => not_found(id),
        RecordingError::InProgress => {
            ApiError::unprocessable("The recording is still running.".into())
        }
        e => ApiError::unprocessable(e.to_string()),
    }
}

/// The account's saved recording a path names (by its UUID).
async fn saved(api: &Telnyx, account: &str, id: &str) -> Result<RecordingRow, ApiError> {
    let sid = uuid_as_sid(id, "RE").ok_or_else(|| not_found(id))?;
    let row =
        (api.parts.recordings.find(account, &sid).await).map_err(|e| recording_error(e, id))?;
    if row.status != "completed" {
        return Err(not_found(id));
    }
    Ok(row)
}

/// A time filter bound (`filter[created_at][gte]`): ISO 8601, as Unix milliseconds.
fn time_bound(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = query.get(key) else {
        return Ok(None);
    };
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::invalid(key, format!("'{v}' is not an ISO 8601 date and time.")))?;
    Ok(Some((at.unix_timestamp_nanos() / 1_000_000) as i64))
}

pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let filter = |name: &str| query.get(&format!("filter[{name}]")).map(String::as_str);
    // One call's recordings, when the filter names a leg.
    let leg = match (filter("call_control_id"), filter("call_leg_id")) {
        (Some(id), _) => Some(CallId::from_control_id(id)),
        (None, Some(id)) => Some(uuid_as_sid(id, "CA").as_deref().and_then(CallId::from_sid)),
        (None, None) => None,
    };
    let call = match leg {
        // A leg that cannot be: nothing matches.
        Some(None) => return Ok(Json(page.of(&[] as &[Value], Clone::clone))),
        Some(Some(id)) => Some(id.sid()),
        None => None,
    };
    // Conference recordings are not listed here.
    if filter("conference_id").is_some() || filter("conference_region").is_some() {
        return Ok(Json(page.of(&[] as &[Value], Clone::clone)));
    }
    let mut bounds = Vec::new();
    for (field, of) in [("created_at", 0), ("start_time", 0), ("end_time", 1)] {
        for (op, low) in [("gte", true), ("lte", false)] {
            let key = format!("filter[{field}][{op}]");
            if let Some(at) = time_bound(&query, &key)? {
                bounds.push((of, low, at));
            }
        }
    }
    let rows = (api.parts.recordings)
        .list(&account.sid, call.as_deref(), 0, MAX_LISTED)
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let rows: Vec<RecordingRow> = rows
        .into_iter()
        .filter(|r| {
            let ended = r.ended_at.unwrap_or(r.started_at);
            r.status == "completed"
                && bounds.iter().all(|&(of, low, at)| {
                    let t = if of == 0 { r.started_at } else { ended };
                    if low { t >= at } else { t <= at }
                })
        })
        .collect();
    // What a recording's call was is looked up (two reads per call) for every row only when
    // a filter asks about it; otherwise only for the rows on the page.
    let mut views: HashMap<String, CallView> = HashMap::new();
    let by_call = [
        "connection_id",
        "call_session_id",
        "to",
        "from",
        "sip_call_id",
    ];
    let rows = if by_call.iter().any(|f| filter(f).is_some()) {
        let mut kept = Vec::new();
        for r in rows {
            let view = view_of(&api, &mut views, &r.call_id).await?;
            let session = view.session(&r.call_id);
            let matches = filter("connection_id")
                .is_none_or(|c| view.leg.as_ref().is_some_and(|l| l.connection_id == c))
                && filter("call_session_id").is_none_or(|s| session.as_deref() == Some(s))
                && filter("to").is_none_or(|t| view.to() == Some(t))
                && filter("from").is_none_or(|f| view.from() == Some(f))
                && filter("sip_call_id")
                    .is_none_or(|s| view.call.as_ref().is_some_and(|c| c.sip_call_id == s));
            if matches {
                kept.push(r);
            }
        }
        kept
    } else {
        for r in &rows[page.window(rows.len())] {
            view_of(&api, &mut views, &r.call_id).await?;
        }
        rows
    };
    Ok(Json(page.of(&rows, |r| {
        resource(
            &api,
            r,
            views.get(&r.call_id).unwrap_or(&CallView::default()),
        )
    })))
}

/// The view of `call`, read once per list.
async fn view_of<'a>(
    api: &Telnyx,
    views: &'a mut HashMap<String, CallView>,
    call: &str,
) -> Result<&'a CallView, ApiError> {
    if !views.contains_key(call) {
        let view = CallView::of(api, call).await?;
        views.insert(call.to_owned(), view);
    }
    Ok(&views[call])
}

pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = saved(&api, &account.sid, &id).await?;
    let view = CallView::of(&api, &row.call_id).await?;
    Ok(Json(json!({ "data": resource(&api, &row, &view) })))
}

/// Deletes the recording and answers with what it was.
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let row = saved(&api, &account.sid, &id).await?;
    let view = CallView::of(&api, &row.call_id).await?;
    let shown = resource(&api, &row, &view);
    (api.parts.recordings.delete(&row).await).map_err(|e| recording_error(e, &id))?;
    Ok(Json(json!({ "data": shown })))
}

/// `POST /v2/recordings/actions/delete {ids: […]}`: deletes those of the account's saved
/// recordings the list names (others' and unknown ids are passed over, as gone already).
pub(super) async fn delete_many(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let ids = p.array("ids").ok_or_else(|| ApiError::missing("ids"))?;
    if ids.is_empty() || ids.len() > MAX_DELETED {
        return Err(ApiError::out_of_range(
            "ids",
            format!("'ids' must list 1 to {MAX_DELETED} recordings."),
        ));
    }
    let ids: Vec<&str> = ids
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| ApiError::invalid("ids", "every id must be a string.".into()))
        })
        .collect::<Result<_, _>>()?;
    for id in ids {
        match saved(&api, &account.sid, id).await {
            Ok(row) => {
                (api.parts.recordings.delete(&row).await).map_err(|e| recording_error(e, id))?
            }
            Err(e) if e.status == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Json(json!({ "status": "ok" })))
}

/// `GET /v2/recording_files/{uuid}.{mp3|wav}`: a saved recording's media, to whoever has its
/// URL (the id is the capability, as a Telnyx recording's presigned URL is).
pub(super) async fn download(
    State(api): State<Arc<Telnyx>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let (id, ext) = file.rsplit_once('.').ok_or_else(|| not_found(&file))?;
    let kind = MediaKind::from_extension(ext).ok_or_else(|| not_found(&file))?;
    let sid = uuid_as_sid(id, "RE").ok_or_else(|| not_found(id))?;
    let row = (api.parts.recordings.any(&sid).await).map_err(|e| recording_error(e, id))?;
    let body = (api.parts.recordings.media(&row, kind).await).map_err(|e| match e {
        RecordingError::InProgress => not_found(id),
        e => recording_error(e, id),
    })?;
    Ok(([(header::CONTENT_TYPE, kind.content_type())], body).into_response())
}
