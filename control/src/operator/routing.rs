//! The operator's trunks and routes through the admin API, beside the file's: each given as
//! the file's `[[trunks]]` / `[[routes]]` table would declare it (JSON with the same keys),
//! checked on top of the file's by the same validation, in force at once on this node and, by
//! a change notice, on every other, and stored. The file stays the bootstrap: what it declares
//! exists and wins (a name the file has is refused here); the API's routes follow the file's
//! in the order they were added. Every change is recorded (`/admin/v1/audit`: who, when,
//! what).

use super::admin::{AdminApi, error, operator};
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::AuditRow;
use crate::infra::store::changes::Changed;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The most trunks and routes the API adds.
const MAX_TRUNKS: usize = 500;
const MAX_ROUTES: usize = 2000;
/// The longest definition taken.
const MAX_BODY: usize = 16 * 1024;

/// What puts a routing in force: the server's configuration, which knows the file's trunks
/// and routes and how the file's tables are checked.
pub trait RoutingAdmin: Send + Sync {
    /// The file's trunks' names and its routes (as JSON), to show beside the API's.
    fn file(&self) -> (Vec<String>, Vec<Value>);
    /// Checks `trunks` and `routes` (the API's, in the file's shape) on top of the file's and
    /// puts the whole in force; `Err` says why not (naming the key), and nothing changes.
    fn apply(&self, trunks: &[Value], routes: &[Value]) -> Result<(), String>;
}

/// What the API has added, from the store.
async fn stored(api: &AdminApi) -> Result<(Vec<(String, Value)>, Vec<(String, Value)>), Response> {
    let internal = |e: crate::infra::store::StoreError| {
        error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    let parse =
        |(k, body): (String, String)| (k, serde_json::from_str(&body).unwrap_or(Value::Null));
    let trunks = api.store.operator_trunks().await.map_err(internal)?;
    let routes = api.store.operator_routes().await.map_err(internal)?;
    Ok((
        trunks.into_iter().map(parse).collect(),
        routes.into_iter().map(parse).collect(),
    ))
}

/// Puts the stored trunks and routes in force (at start, and when another node changed them).
pub async fn apply_stored(
    store: &crate::infra::store::Store,
    routing: &dyn RoutingAdmin,
) -> Result<(), String> {
    let parse = |body: String| serde_json::from_str(&body).unwrap_or(Value::Null);
    let trunks: Vec<Value> = (store.operator_trunks().await.map_err(|e| e.to_string())?)
        .into_iter()
        .map(|(_, b)| parse(b))
        .collect();
    let routes: Vec<Value> = (store.operator_routes().await.map_err(|e| e.to_string())?)
        .into_iter()
        .map(|(_, b)| parse(b))
        .collect();
    routing.apply(&trunks, &routes)
}

fn routing(api: &AdminApi) -> Result<&dyn RoutingAdmin, Box<Response>> {
    (api.routing.as_deref())
        .ok_or_else(|| Box::new(error(StatusCode::NOT_FOUND, "routing is not managed here")))
}

async fn record(api: &AdminApi, action: &str, subject: String, detail: String) {
    note(api, action, subject, detail).await;
    api.store.announce(Changed::Routing).await;
}

/// Records a change the admin API made (who: the admin token's holder).
pub(super) async fn note(api: &AdminApi, action: &str, subject: String, detail: String) {
    // Ids that sort as the changes were made, within a millisecond too (the audit reads
    // newest first by time, then id).
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let at = now_ms();
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let row = AuditRow {
        id: format!("AU{at:013}{n:016x}{:08x}", rand::random::<u32>()),
        at,
        who: "admin token".into(),
        action: action.into(),
        subject,
        detail,
    };
    if let Err(e) = api.store.audit(&row).await {
        tracing::warn!(error = %e, "an admin change is not recorded in the audit");
    }
}

/// `GET /admin/v1/trunks`: the file's trunks' names, and the API's definitions.
pub(super) async fn list_trunks(State(api): State<AdminApi>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let routing = match routing(&api) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let (file, _) = routing.file();
    let (trunks, _) = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let api_trunks: Vec<Value> = trunks.into_iter().map(|(_, t)| t).collect();
    Json(json!({"file": file, "api": api_trunks})).into_response()
}

/// `PUT /admin/v1/trunks/{name}`: the trunk (the file's `[[trunks]]` keys, JSON), added or
/// replaced.
pub(super) async fn put_trunk(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let routing = match routing(&api) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if body.len() > MAX_BODY {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "a trunk is at most 16 KiB");
    }
    let Ok(Value::Object(mut trunk)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "a trunk is a JSON object of the file's [[trunks]] keys",
        );
    };
    if trunk.get("name").is_some_and(|n| n != name.as_str()) {
        return error(StatusCode::BAD_REQUEST, "the body's name is not the path's");
    }
    trunk.insert("name".into(), json!(name));
    if routing.file().0.contains(&name) {
        return error(
            StatusCode::CONFLICT,
            format!(
                "trunk {name} is declared in the configuration file, which wins: change it there"
            ),
        );
    }
    let (mut trunks, routes) = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let trunk = Value::Object(trunk);
    let full = trunks.len() >= MAX_TRUNKS;
    match trunks.iter_mut().find(|(n, _)| *n == name) {
        Some((_, t)) => *t = trunk.clone(),
        None if full => {
            return error(
                StatusCode::CONFLICT,
                format!("at most {MAX_TRUNKS} trunks are added here"),
            );
        }
        None => trunks.push((name.clone(), trunk.clone())),
    }
    let all_trunks: Vec<Value> = trunks.iter().map(|(_, t)| t.clone()).collect();
    let all_routes: Vec<Value> = routes.iter().map(|(_, r)| r.clone()).collect();
    if let Err(why) = routing.apply(&all_trunks, &all_routes) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    if let Err(e) = api
        .store
        .put_operator_trunk(&name, &trunk.to_string(), now_ms())
        .await
    {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    record(&api, "put", format!("trunk {name}"), trunk.to_string()).await;
    Json(trunk).into_response()
}

/// `DELETE /admin/v1/trunks/{name}`: refused while an added route names it.
pub(super) async fn delete_trunk(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let routing = match routing(&api) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let (trunks, routes) = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    if !trunks.iter().any(|(n, _)| *n == name) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no trunk {name} was added here"),
        );
    }
    let left: Vec<Value> = (trunks.iter())
        .filter(|(n, _)| *n != name)
        .map(|(_, t)| t.clone())
        .collect();
    let all_routes: Vec<Value> = routes.iter().map(|(_, r)| r.clone()).collect();
    if let Err(why) = routing.apply(&left, &all_routes) {
        return error(
            StatusCode::CONFLICT,
            format!("trunk {name} is still in use: {why}"),
        );
    }
    if let Err(e) = api.store.delete_operator_trunk(&name).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    record(&api, "delete", format!("trunk {name}"), String::new()).await;
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /admin/v1/routes`: the file's routes, then the API's (with their ids), in the order
/// they are tried.
pub(super) async fn list_routes(State(api): State<AdminApi>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let routing = match routing(&api) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let (_, file) = routing.file();
    let (_, routes) = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let api_routes: Vec<Value> = (routes.into_iter())
        .map(|(id, r)| json!({"id": id, "route": r}))
        .collect();
    Json(json!({"file": file, "api": api_routes})).into_response()
}

/// `POST /admin/v1/routes`: a route (the file's `[[routes]]` keys, JSON), tried after those
/// before it.
pub(super) async fn add_route(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let routing = match routing(&api) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if body.len() > MAX_BODY {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "a route is at most 16 KiB");
    }
    let Ok(route @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "a route is a JSON object of the file's [[routes]] keys",
        );
    };
    let (trunks, mut routes) = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    if routes.len() >= MAX_ROUTES {
        return error(
            StatusCode::CONFLICT,
            format!("at most {MAX_ROUTES} routes are added here"),
        );
    }
    let id = new_sid("RT");
    routes.push((id.clone(), route.clone()));
    let all_trunks: Vec<Value> = trunks.iter().map(|(_, t)| t.clone()).collect();
    let all_routes: Vec<Value> = routes.iter().map(|(_, r)| r.clone()).collect();
    if let Err(why) = routing.apply(&all_trunks, &all_routes) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    if let Err(e) = api
        .store
        .insert_operator_route(&id, &route.to_string(), now_ms())
        .await
    {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    record(&api, "add", format!("route {id}"), route.to_string()).await;
    (StatusCode::CREATED, Json(json!({"id": id, "route": route}))).into_response()
}

/// `DELETE /admin/v1/routes/{id}`.
pub(super) async fn delete_route(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let routing = match routing(&api) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let (trunks, routes) = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    if !routes.iter().any(|(r, _)| *r == id) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no route {id} was added here"),
        );
    }
    let all_trunks: Vec<Value> = trunks.iter().map(|(_, t)| t.clone()).collect();
    let left: Vec<Value> = (routes.iter())
        .filter(|(r, _)| *r != id)
        .map(|(_, r)| r.clone())
        .collect();
    if let Err(why) = routing.apply(&all_trunks, &left) {
        return error(StatusCode::CONFLICT, why);
    }
    if let Err(e) = api.store.delete_operator_route(&id).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    record(&api, "delete", format!("route {id}"), String::new()).await;
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /admin/v1/audit`: what the admin API changed, newest first.
pub(super) async fn audit(State(api): State<AdminApi>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    match api.store.audit_entries().await {
        Ok(rows) => Json(json!({"entries": rows.iter().map(|r| json!({
            "at": crate::services::stream::iso8601(r.at),
            "who": r.who,
            "action": r.action,
            "subject": r.subject,
            "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null),
        })).collect::<Vec<_>>()}))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
