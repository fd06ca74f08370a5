//! The operator's additions to the configuration file through the admin API: trunks, routes
//! and accounts, each given as the file's `[[trunks]]` / `[[routes]]` / `[[accounts]]` table
//! would declare it (JSON with the same keys), checked on top of the file's by the same
//! validation, in force at once on this node and, by a change notice, on every other, and
//! stored. The file stays the bootstrap: what it declares exists and wins (a name or SID the
//! file has is refused here); the API's routes follow the file's in the order they were added.
//! Every change is recorded (`/admin/v1/audit`: who, when, what).

use super::admin::{AdminApi, error, operator};
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::changes::Changed;
use crate::infra::store::{AuditRow, Store, StoreError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The most trunks, routes and accounts the API adds.
const MAX_TRUNKS: usize = 500;
const MAX_ROUTES: usize = 2000;
const MAX_ACCOUNTS: usize = 10_000;
/// The longest definition taken.
const MAX_BODY: usize = 16 * 1024;

/// What the file declares, as the API shows it beside its own.
pub struct FileView {
    pub trunks: Vec<String>,
    pub routes: Vec<Value>,
    pub accounts: Vec<String>,
}

/// What the API adds to the file (definitions in the file's shape).
#[derive(Default)]
pub struct Added {
    pub trunks: Vec<Value>,
    pub routes: Vec<Value>,
    pub accounts: Vec<Value>,
}

/// What puts the configuration in force: the server's, which knows the file and how the
/// file's tables are checked.
pub trait ConfigAdmin: Send + Sync {
    fn file(&self) -> FileView;
    /// Checks `added` on top of the file and puts the whole in force (routing for new calls,
    /// accounts and their limits at once); `Err` says why not (naming the key), and nothing
    /// changes.
    fn apply(&self, added: &Added) -> Result<(), String>;
}

/// What the API has added, as stored: (key, definition) each.
#[derive(Default)]
struct Stored {
    trunks: Vec<(String, Value)>,
    routes: Vec<(String, Value)>,
    accounts: Vec<(String, Value)>,
}

impl Stored {
    async fn read(store: &Store) -> Result<Self, StoreError> {
        let parse = |rows: Vec<(String, String)>| -> Vec<(String, Value)> {
            (rows.into_iter())
                .map(|(k, body)| (k, serde_json::from_str(&body).unwrap_or(Value::Null)))
                .collect()
        };
        Ok(Self {
            trunks: parse(store.operator_trunks().await?),
            routes: parse(store.operator_routes().await?),
            accounts: parse(store.operator_accounts().await?),
        })
    }

    fn added(&self) -> Added {
        let values = |v: &[(String, Value)]| v.iter().map(|(_, d)| d.clone()).collect();
        Added {
            trunks: values(&self.trunks),
            routes: values(&self.routes),
            accounts: values(&self.accounts),
        }
    }
}

async fn stored(api: &AdminApi) -> Result<Stored, Response> {
    (Stored::read(&api.store).await)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Puts the stored additions in force (at start, on SIGHUP, and when another node changed
/// them).
pub async fn apply_stored(store: &Store, config: &dyn ConfigAdmin) -> Result<(), String> {
    let stored = Stored::read(store).await.map_err(|e| e.to_string())?;
    config.apply(&stored.added())
}

fn config(api: &AdminApi) -> Result<&dyn ConfigAdmin, Box<Response>> {
    (api.routing.as_deref()).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            "the configuration is not managed here",
        ))
    })
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

/// A JSON object body of at most [`MAX_BODY`], or the error to answer.
fn object(body: &[u8], what: &str) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    if body.len() > MAX_BODY {
        return Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} is at most 16 KiB"),
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("{what} is a JSON object of the file's table keys"),
        ))),
    }
}

/// Puts `stored` (changed) in force, then keeps it: the answer to a change, or its error.
async fn change(
    config: &dyn ConfigAdmin,
    stored: &Stored,
    refused: StatusCode,
    keep: impl std::future::Future<Output = Result<(), StoreError>>,
) -> Result<(), Response> {
    config
        .apply(&stored.added())
        .map_err(|why| error(refused, why))?;
    keep.await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(())
}

/// `GET /admin/v1/trunks`: the file's trunks' names, and the trunks added through the API.
pub(super) async fn list_trunks(State(api): State<AdminApi>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    match stored(&api).await {
        Ok(s) => {
            let api_trunks: Vec<Value> = s.trunks.into_iter().map(|(_, t)| t).collect();
            Json(json!({"file": config.file().trunks, "api": api_trunks})).into_response()
        }
        Err(e) => e,
    }
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
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let mut trunk = match object(&body, "a trunk") {
        Ok(o) => o,
        Err(e) => return *e,
    };
    if trunk.get("name").is_some_and(|n| n != name.as_str()) {
        return error(StatusCode::BAD_REQUEST, "the body's name is not the path's");
    }
    trunk.insert("name".into(), json!(name));
    if config.file().trunks.contains(&name) {
        return error(
            StatusCode::CONFLICT,
            format!(
                "trunk {name} is declared in the configuration file, which wins: change it there"
            ),
        );
    }
    let mut s = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let trunk = Value::Object(trunk);
    let full = s.trunks.len() >= MAX_TRUNKS;
    match s.trunks.iter_mut().find(|(n, _)| *n == name) {
        Some((_, t)) => *t = trunk.clone(),
        None if full => {
            return error(
                StatusCode::CONFLICT,
                format!("at most {MAX_TRUNKS} trunks are added here"),
            );
        }
        None => s.trunks.push((name.clone(), trunk.clone())),
    }
    let body = trunk.to_string();
    let keep = api.store.put_operator_trunk(&name, &body, now_ms());
    if let Err(e) = change(config, &s, StatusCode::BAD_REQUEST, keep).await {
        return e;
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
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let mut s = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    if !s.trunks.iter().any(|(n, _)| *n == name) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no trunk {name} was added here"),
        );
    }
    s.trunks.retain(|(n, _)| *n != name);
    let keep = async { api.store.delete_operator_trunk(&name).await.map(|_| ()) };
    if let Err(e) = change(config, &s, StatusCode::CONFLICT, keep).await {
        return e;
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
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    match stored(&api).await {
        Ok(s) => {
            let api_routes: Vec<Value> = (s.routes.into_iter())
                .map(|(id, r)| json!({"id": id, "route": r}))
                .collect();
            Json(json!({"file": config.file().routes, "api": api_routes})).into_response()
        }
        Err(e) => e,
    }
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
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let route = match object(&body, "a route") {
        Ok(o) => Value::Object(o),
        Err(e) => return *e,
    };
    let mut s = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    if s.routes.len() >= MAX_ROUTES {
        return error(
            StatusCode::CONFLICT,
            format!("at most {MAX_ROUTES} routes are added here"),
        );
    }
    let id = new_sid("RT");
    s.routes.push((id.clone(), route.clone()));
    let body = route.to_string();
    let keep = api.store.insert_operator_route(&id, &body, now_ms());
    if let Err(e) = change(config, &s, StatusCode::BAD_REQUEST, keep).await {
        return e;
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
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let mut s = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    if !s.routes.iter().any(|(r, _)| *r == id) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no route {id} was added here"),
        );
    }
    s.routes.retain(|(r, _)| *r != id);
    let keep = async { api.store.delete_operator_route(&id).await.map(|_| ()) };
    if let Err(e) = change(config, &s, StatusCode::CONFLICT, keep).await {
        return e;
    }
    record(&api, "delete", format!("route {id}"), String::new()).await;
    StatusCode::NO_CONTENT.into_response()
}

/// An account as the API shows it: its secrets hidden.
fn shown(account: &Value) -> Value {
    let mut shown = account.clone();
    if let Some(o) = shown.as_object_mut() {
        for secret in ["auth_token", "signing_key", "telnyx_private_key"] {
            if o.contains_key(secret) {
                o.insert(secret.into(), json!("***"));
            }
        }
        if let Some(Value::Array(keys)) = o.get_mut("api_keys") {
            for key in keys {
                if let Some(k) = key.as_object_mut() {
                    k.insert("secret".into(), json!("***"));
                }
            }
        }
        o.remove("telnyx_api_keys");
    }
    shown
}

/// `GET /admin/v1/accounts`: the file's accounts' SIDs, and the accounts added through the
/// API (secrets hidden).
pub(super) async fn list_accounts(State(api): State<AdminApi>, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    match stored(&api).await {
        Ok(s) => {
            let added: Vec<Value> = s.accounts.iter().map(|(_, a)| shown(a)).collect();
            Json(json!({"file": config.file().accounts, "api": added})).into_response()
        }
        Err(e) => e,
    }
}

/// `PUT /admin/v1/accounts/{sid}`: the account (the file's `[[accounts]]` keys, JSON), added
/// or replaced; its credentials work at once.
pub(super) async fn put_account(
    State(api): State<AdminApi>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let mut account = match object(&body, "an account") {
        Ok(o) => o,
        Err(e) => return *e,
    };
    if account.get("sid").is_some_and(|n| n != sid.as_str()) {
        return error(StatusCode::BAD_REQUEST, "the body's sid is not the path's");
    }
    account.insert("sid".into(), json!(sid));
    if config.file().accounts.contains(&sid) || api.directory.owner_of(&sid).is_some() {
        return error(
            StatusCode::CONFLICT,
            format!(
                "account {sid} is declared in the configuration file (which wins) or is a subaccount"
            ),
        );
    }
    let mut s = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let account = Value::Object(account);
    let full = s.accounts.len() >= MAX_ACCOUNTS;
    match s.accounts.iter_mut().find(|(n, _)| *n == sid) {
        Some((_, a)) => *a = account.clone(),
        None if full => {
            return error(
                StatusCode::CONFLICT,
                format!("at most {MAX_ACCOUNTS} accounts are added here"),
            );
        }
        None => s.accounts.push((sid.clone(), account.clone())),
    }
    let body = account.to_string();
    let keep = api.store.put_operator_account(&sid, &body, now_ms());
    if let Err(e) = change(config, &s, StatusCode::BAD_REQUEST, keep).await {
        return e;
    }
    let shown = shown(&account);
    record(&api, "put", format!("account {sid}"), shown.to_string()).await;
    Json(shown).into_response()
}

/// `DELETE /admin/v1/accounts/{sid}`: its credentials fail from now on.
pub(super) async fn delete_account(
    State(api): State<AdminApi>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let mut s = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    if !s.accounts.iter().any(|(n, _)| *n == sid) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no account {sid} was added here"),
        );
    }
    s.accounts.retain(|(n, _)| *n != sid);
    let keep = async { api.store.delete_operator_account(&sid).await.map(|_| ()) };
    if let Err(e) = change(config, &s, StatusCode::CONFLICT, keep).await {
        return e;
    }
    record(&api, "delete", format!("account {sid}"), String::new()).await;
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
