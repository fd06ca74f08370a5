//! TeXML's REST queues (reference §4): `…/Queues` creates one (`FriendlyName`, `MaxSize`) or
//! lists the account's (paged); `…/Queues/{sid}` reads, changes (`MaxSize`) or deletes one.
//! The queues `<Enqueue>` and Call Control's `enqueue` use ([`crate::services::queues`]);
//! Twilio's shape with the account's UUID.

use super::Telnyx;
use super::errors::ApiError;
use super::texml_calls::Fields;
use super::texml_rest::{self, account_id, texml_account};
use crate::infra::accounts::Account;
use crate::markup::rfc2822;
use crate::providers::twilio::rest::json as rest_json;
use crate::services::queues::{
    DEFAULT_MAX_SIZE, LARGEST_MAX_SIZE, MAX_PER_ACCOUNT, QueueError, QueueSnapshot,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// The longest `FriendlyName` (Twilio's 64).
const MAX_NAME: usize = 64;

fn uri(account: &Account, sid: &str) -> String {
    let account = account_id(account);
    format!("/v2/texml/Accounts/{account}/Queues/{sid}")
}

fn resource(account: &Account, q: &QueueSnapshot) -> Value {
    let base = uri(account, &q.sid);
    json!({
        "account_sid": account_id(account),
        "average_wait_time": q.average_wait_time,
        "current_size": q.members.len(),
        "date_created": rfc2822(q.created_at),
        "date_updated": rfc2822(q.updated_at),
        "friendly_name": q.friendly_name,
        "max_size": q.max_size,
        "sid": q.sid,
        "subresource_uris": { "members": format!("{base}/Members.json") },
        "uri": format!("{base}.json"),
    })
}

fn refused(e: QueueError, name: &str) -> ApiError {
    match e {
        QueueError::NameTaken => ApiError::invalid(
            "FriendlyName",
            format!("A queue named {name} exists already."),
        ),
        QueueError::TooMany => ApiError::unprocessable(format!(
            "The account has {MAX_PER_ACCOUNT} queues, as many as it may."
        )),
        QueueError::NotEmpty => {
            ApiError::unprocessable("The queue has calls waiting; it cannot be deleted.".into())
        }
        QueueError::Store(e) => ApiError::unprocessable(e.to_string()),
    }
}

fn max_size(f: &Fields) -> Result<Option<u32>, ApiError> {
    match f.get("MaxSize") {
        None | Some("") => Ok(None),
        Some(v) => (v.parse::<u32>().ok())
            .filter(|n| (1..=LARGEST_MAX_SIZE).contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::out_of_range(
                    "MaxSize",
                    format!("MaxSize must be 1 to {LARGEST_MAX_SIZE}: {v}."),
                )
            }),
    }
}

async fn find(api: &Telnyx, account: &Account, file: &str) -> Result<QueueSnapshot, ApiError> {
    let sid = file.trim_end_matches(".json");
    (api.parts.queues.get(&account.sid, sid).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?
        .ok_or_else(|| ApiError::not_found(format!("No queue {sid}.")))
}

/// `POST …/Queues`.
pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    Path(account_path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let f = Fields::parse(&headers, &body)?;
    let name = f.get("FriendlyName").filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| ApiError::missing("FriendlyName"))?;
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::out_of_range(
            "FriendlyName",
            format!("FriendlyName is longer than {MAX_NAME} characters."),
        ));
    }
    let size = max_size(&f)?.unwrap_or(DEFAULT_MAX_SIZE);
    let q = (api.parts.queues.create(&account.sid, name, size))
        .await
        .map_err(|e| refused(e, name))?;
    Ok((StatusCode::CREATED, Json(resource(&account, &q))))
}

/// `GET …/Queues` (paged).
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Path(account_path): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let q = texml_rest::query(query.as_deref());
    for filter in ["DateCreated", "DateUpdated"] {
        if rest_json::param(&q, filter).is_some() {
            return Err(ApiError::invalid(
                filter,
                format!("Filtering queues by {filter} is not served here."),
            ));
        }
    }
    let queues = (api.parts.queues.list(&account.sid))
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let path = format!("/v2/texml/Accounts/{}/Queues.json", account_id(&account));
    let page = texml_rest::page_of(
        &q,
        "queues",
        &path,
        queues,
        |q| q.sid.clone(),
        |q| resource(&account, q),
    )?;
    Ok(Json(page))
}

/// `GET …/Queues/{sid}`.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let q = find(&api, &account, &file).await?;
    Ok(Json(resource(&account, &q)))
}

/// `POST …/Queues/{sid}`: `MaxSize`.
pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let q = find(&api, &account, &file).await?;
    let f = Fields::parse(&headers, &body)?;
    let updated = (api
        .parts
        .queues
        .update(&account.sid, &q.sid, None, max_size(&f)?))
    .await
    .map_err(|e| refused(e, &q.friendly_name))?
    .ok_or_else(|| ApiError::not_found(format!("No queue {}.", q.sid)))?;
    Ok(Json(resource(&account, &updated)))
}

/// `DELETE …/Queues/{sid}`: an empty queue.
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let q = find(&api, &account, &file).await?;
    match api.parts.queues.delete(&account.sid, &q.sid).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found(format!("No queue {}.", q.sid))),
        Err(e) => Err(refused(e, &q.friendly_name)),
    }
}
