//! The Queues resource and its Members: create, list, fetch, update (`FriendlyName`,
//! `MaxSize`) and delete queues; list and fetch the calls waiting (by SID or `Front`), and
//! dequeue one to other TwiML (`Url`, `Method`).

use super::json::{Json, form, method, param, url};
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::infra::clock::now_ms;
use crate::infra::sid::is_sid;
use crate::markup::rfc2822;
use crate::services::queues::{LARGEST_MAX_SIZE, Member, QueueError, QueueSnapshot, position};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn queue_uri(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Queues/{sid}.json")
}

fn resource(q: &QueueSnapshot, account: &str) -> Value {
    json!({
        "account_sid": account,
        "average_wait_time": q.average_wait_time,
        "current_size": q.members.len(),
        "date_created": rfc2822(q.created_at),
        "date_updated": rfc2822(q.updated_at),
        "friendly_name": q.friendly_name,
        "max_size": q.max_size,
        "sid": q.sid,
        "uri": queue_uri(account, &q.sid),
    })
}

fn member(q: &QueueSnapshot, m: &Member, account: &str) -> Value {
    json!({
        "call_sid": m.call,
        "date_enqueued": rfc2822(m.enqueued_at),
        "position": position(q, &m.call).unwrap_or(0),
        "queue_sid": q.sid,
        "uri": format!("/2010-04-01/Accounts/{account}/Queues/{}/Members/{}.json", q.sid, m.call),
        "wait_time": ((now_ms() - m.enqueued_at).max(0) / 1000),
    })
}

/// A refused queue change in Twilio's words.
fn refused(e: QueueError, name: &str) -> ApiError {
    match e {
        QueueError::NameTaken => ApiError::bad_request(
            22003,
            format!("A queue with the friendly name {name} already exists"),
        ),
        QueueError::TooMany => ApiError::bad_request(
            20001,
            format!(
                "The account has {} queues, as many as it may",
                crate::services::queues::MAX_PER_ACCOUNT
            ),
        ),
        QueueError::NotEmpty => {
            ApiError::bad_request(20001, "The queue has calls waiting; it cannot be deleted")
        }
        QueueError::Store(e) => ApiError::internal(e),
    }
}

fn max_size(p: &[(String, String)]) -> Result<Option<u32>, ApiError> {
    match param(p, "MaxSize") {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=LARGEST_MAX_SIZE).contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(
                    20001,
                    format!("MaxSize must be 1 to {LARGEST_MAX_SIZE}: {v}"),
                )
            }),
    }
}

fn friendly_name(p: &[(String, String)]) -> Result<Option<&str>, ApiError> {
    match param(p, "FriendlyName") {
        Some(n) if n.chars().count() > 64 => Err(ApiError::bad_request(
            20001,
            "FriendlyName must be at most 64 characters",
        )),
        Some("") | None => Ok(None),
        Some(n) => Ok(Some(n)),
    }
}

pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    let name = friendly_name(&p)?.ok_or_else(|| {
        ApiError::bad_request(
            20001,
            "Missing required parameter FriendlyName in the post body",
        )
    })?;
    let size = max_size(&p)?.unwrap_or(crate::services::queues::DEFAULT_MAX_SIZE);
    let q = api
        .apps
        .queues
        .create(&account.sid, name, size)
        .await
        .map_err(|e| refused(e, name))?;
    Ok((StatusCode::CREATED, Json(resource(&q, account.api_sid()))).into_response())
}

pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = &list.account;
    let queues = (api.apps.queues.list(&account.sid).await).map_err(ApiError::internal)?;
    let queues = list.page_of(queues);
    Ok(list.respond(
        "queues",
        "Queues.json",
        queues,
        |q| q.sid.clone(),
        |q| resource(q, account.api_sid()),
    ))
}

/// The account's queue a `{QU}` or `{QU}.json` path segment names.
async fn find(
    api: &TwilioApi,
    account: &str,
    api_sid: &str,
    file: &str,
) -> Result<QueueSnapshot, ApiError> {
    let sid = file.strip_suffix(".json").unwrap_or(file);
    if !is_sid(sid, "QU") {
        return Err(ApiError::not_found(&queue_uri(api_sid, sid)));
    }
    (api.apps.queues.get(account, sid).await)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(&queue_uri(api_sid, sid)))
}

pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let q = find(&api, &account.sid, account.api_sid(), &file).await?;
    Ok(Json(resource(&q, account.api_sid())))
}

pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let q = find(&api, &account.sid, account.api_sid(), &file).await?;
    let p = form(&body);
    let name = friendly_name(&p)?;
    let updated = api
        .apps
        .queues
        .update(&account.sid, &q.sid, name, max_size(&p)?)
        .await
        .map_err(|e| refused(e, name.unwrap_or_default()))?
        .ok_or_else(|| ApiError::not_found(&queue_uri(account.api_sid(), &q.sid)))?;
    Ok(Json(resource(&updated, account.api_sid())))
}

pub(super) async fn delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let q = find(&api, &account.sid, account.api_sid(), &file).await?;
    match api.apps.queues.delete(&account.sid, &q.sid).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found(&queue_uri(account.api_sid(), &q.sid))),
        Err(e) => Err(refused(e, &q.friendly_name)),
    }
}

pub(super) async fn members(
    State(api): State<TwilioApi>,
    Path((account, queue)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = &list.account;
    let q = find(&api, &account.sid, account.api_sid(), &queue).await?;
    let members = list.page_of(q.members.iter().cloned());
    let path = format!("Queues/{}/Members.json", q.sid);
    Ok(list.respond(
        "queue_members",
        &path,
        members,
        |m| m.call.clone(),
        |m| member(&q, m, account.api_sid()),
    ))
}

/// The member a `{CA}.json` or `Front.json` path segment names.
fn find_member(q: &QueueSnapshot, file: &str, account: &str) -> Result<Member, ApiError> {
    let name = file.strip_suffix(".json").unwrap_or(file);
    let found = match name {
        "Front" => q.members.first(),
        sid => q.members.iter().find(|m| m.call == sid),
    };
    found.cloned().ok_or_else(|| {
        ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{account}/Queues/{}/Members/{name}.json",
            q.sid
        ))
    })
}

pub(super) async fn member_fetch(
    State(api): State<TwilioApi>,
    Path((account, queue, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let q = find(&api, &account.sid, account.api_sid(), &queue).await?;
    let m = find_member(&q, &file, account.api_sid())?;
    Ok(Json(member(&q, &m, account.api_sid())))
}

/// Dequeues a member to the TwiML at `Url`: it leaves the queue and runs that document.
pub(super) async fn member_update(
    State(api): State<TwilioApi>,
    Path((account, queue, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let q = find(&api, &account.sid, account.api_sid(), &queue).await?;
    let m = find_member(&q, &file, account.api_sid())?;
    let p = form(&body);
    let to = url(&p, "Url")?.ok_or_else(|| {
        ApiError::bad_request(20001, "Missing required parameter Url in the post body")
    })?;
    let shown = member(&q, &m, account.api_sid());
    (api.apps.queues.remove(&q.sid, &m.call).await).map_err(ApiError::internal)?;
    if !api
        .apps
        .redirect(&m.call, (Some(to), method(&p, "Method")?), None, None)
    {
        return Err(ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{}/Queues/{}/Members/{}.json",
            account.api_sid(),
            q.sid,
            m.call
        )));
    }
    Ok(Json(shown))
}
