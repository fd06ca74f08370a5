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
use crate::infra::store::{AuditRow, Named, Store, StoreError};
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
            trunks: parse(store.operator_named(Named::Trunks).await?),
            routes: parse(store.operator_routes().await?),
            accounts: parse(store.operator_named(Named::Accounts).await?),
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

/// What is added under a name of its own (a trunk's name, an account's SID): how the API
/// names it, and where it stands in the file, the store and the limits.
trait NamedExt {
    fn what(self) -> &'static str;
    fn key_field(self) -> &'static str;
    fn max(self) -> usize;
    fn of(self, stored: &mut Stored) -> &mut Vec<(String, Value)>;
    fn in_file(self, file: FileView) -> Vec<String>;
}

impl NamedExt for Named {
    fn what(self) -> &'static str {
        match self {
            Named::Trunks => "trunk",
            Named::Accounts => "account",
        }
    }
    fn key_field(self) -> &'static str {
        match self {
            Named::Trunks => "name",
            Named::Accounts => "sid",
        }
    }
    fn max(self) -> usize {
        match self {
            Named::Trunks => MAX_TRUNKS,
            Named::Accounts => MAX_ACCOUNTS,
        }
    }
    fn of(self, stored: &mut Stored) -> &mut Vec<(String, Value)> {
        match self {
            Named::Trunks => &mut stored.trunks,
            Named::Accounts => &mut stored.accounts,
        }
    }
    fn in_file(self, file: FileView) -> Vec<String> {
        match self {
            Named::Trunks => file.trunks,
            Named::Accounts => file.accounts,
        }
    }
}

/// A definition as the API shows it: an account's secrets hidden.
fn shown(named: Named, definition: &Value) -> Value {
    let mut shown = definition.clone();
    let Some(o) = shown.as_object_mut().filter(|_| named == Named::Accounts) else {
        return shown;
    };
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
    shown
}

/// `GET /admin/v1/trunks|accounts`: the file's names, and what the API added (shown).
async fn list_named(api: AdminApi, headers: HeaderMap, named: Named) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    match stored(&api).await {
        Ok(mut s) => {
            let added: Vec<Value> = named
                .of(&mut s)
                .iter()
                .map(|(_, d)| shown(named, d))
                .collect();
            Json(json!({"file": named.in_file(config.file()), "api": added})).into_response()
        }
        Err(e) => e,
    }
}

/// `PUT /admin/v1/trunks|accounts/{key}`: the definition (the file's table keys, JSON), added
/// or replaced.
async fn put_named(
    api: AdminApi,
    headers: HeaderMap,
    named: Named,
    key: String,
    body: &[u8],
) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let (what, field) = (named.what(), named.key_field());
    let mut definition = match object(body, what) {
        Ok(o) => o,
        Err(e) => return *e,
    };
    if definition.get(field).is_some_and(|n| n != key.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the body's {field} is not the path's"),
        );
    }
    definition.insert(field.into(), json!(key));
    let subaccount = named == Named::Accounts && api.directory.owner_of(&key).is_some();
    if subaccount || named.in_file(config.file()).contains(&key) {
        return error(
            StatusCode::CONFLICT,
            format!(
                "{what} {key} is declared in the configuration file (which wins: change it there) or is a subaccount"
            ),
        );
    }
    let mut s = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let definition = Value::Object(definition);
    let added = named.of(&mut s);
    let full = added.len() >= named.max();
    match added.iter_mut().find(|(k, _)| *k == key) {
        Some((_, d)) => *d = definition.clone(),
        None if full => {
            return error(
                StatusCode::CONFLICT,
                format!("at most {} {what}s are added here", named.max()),
            );
        }
        None => added.push((key.clone(), definition.clone())),
    }
    let body = definition.to_string();
    let keep = api.store.put_operator_named(named, &key, &body, now_ms());
    if let Err(e) = change(config, &s, StatusCode::BAD_REQUEST, keep).await {
        return e;
    }
    let shown = shown(named, &definition);
    record(&api, "put", format!("{what} {key}"), shown.to_string()).await;
    Json(shown).into_response()
}

/// `DELETE /admin/v1/trunks|accounts/{key}`: refused while what is left needs it (a route
/// naming the trunk).
async fn delete_named(api: AdminApi, headers: HeaderMap, named: Named, key: String) -> Response {
    if let Err(e) = operator(&api, &headers) {
        return *e;
    }
    let config = match config(&api) {
        Ok(c) => c,
        Err(e) => return *e,
    };
    let what = named.what();
    let mut s = match stored(&api).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let added = named.of(&mut s);
    if !added.iter().any(|(k, _)| *k == key) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no {what} {key} was added here"),
        );
    }
    added.retain(|(k, _)| *k != key);
    let keep = async {
        api.store
            .delete_operator_named(named, &key)
            .await
            .map(|_| ())
    };
    if let Err(e) = change(config, &s, StatusCode::CONFLICT, keep).await {
        return e;
    }
    record(&api, "delete", format!("{what} {key}"), String::new()).await;
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn list_trunks(State(api): State<AdminApi>, headers: HeaderMap) -> Response {
    list_named(api, headers, Named::Trunks).await
}

pub(super) async fn put_trunk(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    put_named(api, headers, Named::Trunks, name, &body).await
}

pub(super) async fn delete_trunk(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    delete_named(api, headers, Named::Trunks, name).await
}

pub(super) async fn list_accounts(State(api): State<AdminApi>, headers: HeaderMap) -> Response {
    list_named(api, headers, Named::Accounts).await
}

/// An account's credentials, grants and limits work at once.
pub(super) async fn put_account(
    State(api): State<AdminApi>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    put_named(api, headers, Named::Accounts, sid, &body).await
}

/// Its credentials fail from then on.
pub(super) async fn delete_account(
    State(api): State<AdminApi>,
    Path(sid): Path<String>,
    headers: HeaderMap,
) -> Response {
    delete_named(api, headers, Named::Accounts, sid).await
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
