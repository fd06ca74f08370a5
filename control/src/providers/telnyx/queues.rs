//! `/v2/queues` and their calls: the neutral queues (Twilio's `<Enqueue>`/Queues use the same
//! ones) as Telnyx shows them, by name. Create, list, retrieve, update (`max_size`), delete an
//! empty one; a queue's calls listed and read, and a call taken out (`remove`: the leg hears
//! `call.dequeued` as with `leave_queue`). `keep_after_hangup` is not served and says so.

use super::calls::leg_of;
use super::errors::ApiError;
use super::events::timestamp;
use super::leg::LegHandle;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::call::ids::{CallId, sid_as_uuid};
use crate::infra::accounts::Account;
use crate::services::queues::{Member, QueueError, QueueSnapshot};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The largest queue (Telnyx's bound on `max_size`).
const MAX_SIZE: i64 = 5000;
/// A queue name's length at most.
const MAX_NAME: usize = 255;

fn queue(q: &QueueSnapshot) -> Value {
    let now = crate::infra::clock::now_ms();
    // Telnyx's average is over the calls waiting now.
    let waits: Vec<i64> = q
        .members
        .iter()
        .map(|m| (now - m.enqueued_at).max(0) / 1000)
        .collect();
    let average = waits.iter().sum::<i64>() / (waits.len().max(1) as i64);
    json!({
        "record_type": "queue",
        "id": sid_as_uuid(&q.sid, "QU").unwrap_or_else(|| q.sid.clone()),
        "name": q.friendly_name,
        "current_size": q.members.len(),
        "max_size": q.max_size,
        "average_wait_time_secs": average,
        "created_at": timestamp(q.created_at),
        "updated_at": timestamp(q.updated_at),
    })
}

/// `legs` holds the members' legs that are known here.
fn queue_call(
    legs: &HashMap<String, Arc<LegHandle>>,
    q: &QueueSnapshot,
    position: usize,
    m: &Member,
) -> Value {
    let id = CallId::from_sid(&m.call);
    let leg = legs.get(&m.call);
    let context = leg.as_ref().map(|l| l.context());
    let now = crate::infra::clock::now_ms();
    json!({
        "record_type": "queue_call",
        "call_control_id": id.map(CallId::control_id),
        "call_leg_id": id.map(CallId::uuid),
        "call_session_id": context.as_ref().and_then(|c| CallId::from_sid(&c.session)).map(CallId::session_uuid),
        "connection_id": context.as_ref().map(|c| c.connection_id.clone()),
        "from": context.as_ref().map(|c| c.from.clone()),
        "to": context.as_ref().map(|c| c.to.clone()),
        "enqueued_at": timestamp(m.enqueued_at),
        "wait_time_secs": (now - m.enqueued_at).max(0) / 1000,
        "queue_position": position,
        "queue_id": sid_as_uuid(&q.sid, "QU").unwrap_or_else(|| q.sid.clone()),
        "is_alive": leg.is_some_and(|l| !l.ended()),
    })
}

async fn named(api: &Telnyx, account: &Account, name: &str) -> Result<QueueSnapshot, ApiError> {
    (api.parts.queues.named(&account.sid, name).await)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::not_found(format!("No queue named '{name}'.")))
}

fn max_size(p: &Params) -> Result<Option<u32>, ApiError> {
    Ok(p.int("max_size", 1..=MAX_SIZE)?.map(|n| n as u32))
}

fn failed(e: QueueError) -> ApiError {
    match e {
        QueueError::Store(e) => ApiError::internal(e.to_string()),
        other => ApiError::unprocessable(other.to_string()),
    }
}

/// `POST /v2/queues`.
pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let name = p.required("queue_name")?;
    if name.len() > MAX_NAME {
        return Err(ApiError::invalid(
            "queue_name",
            format!("A name is 1 to {MAX_NAME} bytes."),
        ));
    }
    let size = max_size(&p)?.unwrap_or(100);
    let q = (api.parts.queues.create(&account.sid, name, size).await).map_err(failed)?;
    Ok(Json(json!({"data": queue(&q)})))
}

/// `GET /v2/queues`.
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let all = (api.parts.queues.list(&account.sid).await)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(page.of(&all, queue)))
}

/// `GET /v2/queues/{name}`.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    Ok(Json(
        json!({"data": queue(&named(&api, &account, &name).await?)}),
    ))
}

/// `POST /v2/queues/{name}`: a new `max_size`.
pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let q = named(&api, &account, &name).await?;
    let size = max_size(&p)?.ok_or_else(|| ApiError::missing("max_size"))?;
    let q = (api
        .parts
        .queues
        .update(&account.sid, &q.sid, None, Some(size))
        .await)
        .map_err(failed)?
        .ok_or_else(|| ApiError::not_found(format!("No queue named '{name}'.")))?;
    Ok(Json(json!({"data": queue(&q)})))
}

/// `DELETE /v2/queues/{name}`: an empty queue.
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api, &headers)?;
    let q = named(&api, &account, &name).await?;
    (api.parts.queues.delete(&account.sid, &q.sid).await).map_err(failed)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v2/queues/{name}/calls`, front first.
pub(super) async fn calls(
    State(api): State<Arc<Telnyx>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let q = named(&api, &account, &name).await?;
    let members: Vec<(usize, &Member)> = q
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| (i + 1, m))
        .collect();
    let legs = (api.legs)
        .get_all(q.members.iter().map(|m| m.call.clone()).collect())
        .await;
    Ok(Json(
        page.of(&members, |(at, m)| queue_call(&legs, &q, *at, m)),
    ))
}

/// The queue's call `control_id`, and its place.
async fn member<'a>(
    api: &Telnyx,
    account: &Account,
    q: &'a QueueSnapshot,
    control_id: &str,
) -> Result<(usize, &'a Member), ApiError> {
    let call = leg_of(api, account, control_id)
        .await
        .map(|l| l.call.clone())
        .or_else(|_| {
            CallId::from_control_id(control_id)
                .map(|i| i.sid())
                .ok_or_else(ApiError::invalid_call)
        })?;
    (q.members.iter().enumerate())
        .find(|(_, m)| m.call == call)
        .map(|(i, m)| (i + 1, m))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "The call is not in the queue '{}'.",
                q.friendly_name
            ))
        })
}

/// `GET /v2/queues/{name}/calls/{call_control_id}`.
pub(super) async fn call(
    State(api): State<Arc<Telnyx>>,
    Path((name, control_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let q = named(&api, &account, &name).await?;
    let (at, m) = member(&api, &account, &q, &control_id).await?;
    let legs = api.legs.get_all(vec![m.call.clone()]).await;
    Ok(Json(json!({"data": queue_call(&legs, &q, at, m)})))
}

/// `PATCH /v2/queues/{name}/calls/{call_control_id}`: `keep_after_hangup` is not served.
pub(super) async fn update_call(
    State(api): State<Arc<Telnyx>>,
    Path((name, control_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let q = named(&api, &account, &name).await?;
    member(&api, &account, &q, &control_id).await?;
    if p.has("keep_after_hangup") {
        return Err(ApiError::invalid(
            "keep_after_hangup",
            "'keep_after_hangup' is not served here: a call leaves its queue when it hangs up."
                .into(),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/queues/{name}/calls/{call_control_id}`: the call leaves the queue (a leg of
/// this API hears `call.dequeued` as with `leave_queue`).
pub(super) async fn remove(
    State(api): State<Arc<Telnyx>>,
    Path((name, control_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api, &headers)?;
    let q = named(&api, &account, &name).await?;
    let (_, m) = member(&api, &account, &q, &control_id).await?;
    // Its leg's task takes it out (the leg knows its wait), if it is this node's and up.
    let left = match api.legs.get(&m.call).await {
        Some(leg) => {
            let task_api = api.clone();
            let dequeued = leg.run(move |leg| {
                Box::pin(async move { super::queueing::dequeue(&task_api, leg, "leave").await })
            });
            dequeued.await.unwrap_or(false)
        }
        None => false,
    };
    if !left {
        (api.parts.queues.remove(&q.sid, &m.call).await)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(StatusCode::NO_CONTENT)
}
