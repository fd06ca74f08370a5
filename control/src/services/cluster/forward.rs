//! Several nodes on one database are one provider: an API request about a call another node
//! carries — Twilio's and SignalWire's `Calls/{CA…}` and everything under it, Telnyx's
//! `/v2/calls/{call_control_id}` and its actions — or about a conference whose room another
//! node holds (`Conferences/{CF…}`, its participants), or a queue's member another node
//! carries (`Queues/{QU…}/Members/{CA…}`, and `Members/Front` when the front is there) is
//! forwarded to that node, whichever node the
//! load balancer chose, and answered with that node's answer. The client's own credentials
//! go with it and the owner checks them as it checks any request, so the hop adds no
//! authority; a forwarded request is marked and never forwarded again. The forwarding node
//! signs who the client is (HMAC-SHA256 with a key derived from the nodes' shared
//! `sip.digest_secret`, over the node, the client's address, the method, the path and the
//! time): the owner takes a signed client's address for its own ([`trust`]), so that a
//! guesser's failures count against the guesser there, not against the node it went through.
//! An unsigned or wrongly signed mark is served as a direct request from the node's address.
//!
//! Chosen over PostgreSQL `LISTEN/NOTIFY`: a forwarded request is the owner's own code path
//! for every action of every dialect (no second, message-shaped API to keep in step with the
//! HTTP one), it carries the answer back synchronously, and it needs no database feature
//! SQLite lacks. A call whose owner is gone (its heartbeat stale) is answered here, where the
//! dialect finds it not in progress.

use crate::call::CallControl;
use crate::infra::store::Store;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// Marks a request one node forwarded to another, with the forwarding node's id.
pub const FORWARDED: &str = "x-switchboard-forwarded-by";
/// The address of the client a forwarded request came from, as the forwarding node saw it.
const CLIENT: &str = "x-switchboard-client";
/// When the forwarding node signed (Unix seconds), and its signature (hex).
const SIGNED_AT: &str = "x-switchboard-signed-at";
const SIGNATURE: &str = "x-switchboard-signature";
/// A signature older (or newer) than this is not taken.
const FRESH_SECS: i64 = 60;
/// A body larger than this is not forwarded (the API's own limit is lower).
const MAX_BODY: usize = 4 << 20;
/// How long the owner has to answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// What forwarding needs: where calls' owners are found, whether a call is here, and a client.
#[derive(Clone)]
pub struct Forwarder {
    store: Store,
    control: CallControl,
    client: reqwest::Client,
    node: Arc<str>,
    /// Signs and checks who a forwarded request's client is.
    key: Arc<[u8; 32]>,
}

impl Forwarder {
    /// Nodes sharing `secret` (their `sip.digest_secret`) trust each other's forwarded
    /// clients; an empty one is a random key, good for this process only.
    pub fn new(store: Store, control: CallControl, secret: &str) -> Result<Self, String> {
        let tls = crate::infra::tls::client_config(None, None)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let node = store.node().into();
        Ok(Self {
            store,
            control,
            client,
            node,
            key: Arc::new(forwarding_key(secret)),
        })
    }

    /// `router` taking the requests other nodes forwarded as from the clients they sign for
    /// ([`trust`]); around everything, so before the throttles.
    pub fn trusting(&self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), trust))
    }

    /// `router` with its requests about other nodes' calls forwarded.
    pub fn around(&self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), layer))
    }

    /// Where the node carrying `sid` (a call, or a conference's room) is reached, when it is
    /// another node, alive, and the call is not here.
    async fn owner(&self, sid: &str) -> Option<String> {
        let now = crate::infra::clock::now_ms();
        if sid.starts_with("CF") {
            return match self.store.room_elsewhere(sid, now).await {
                Ok(url) => url,
                Err(e) => {
                    tracing::warn!(error = %e, conference = sid, "cannot find the room's node");
                    None
                }
            };
        }
        if self.control.view(sid).await.is_ok() {
            return None;
        }
        match self.store.owner_elsewhere(sid, now).await {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(error = %e, call = sid, "cannot find the call's node");
                None
            }
        }
    }
}

/// What a provider API path is about when it concerns something one node holds: a call, as
/// its stored id (`CA…`), or a conference (`CF…`, held by its room's home).
pub fn call_of(path: &str) -> Option<String> {
    // A queue's member is its call (`Queues/{QU}/Members/{CA}`): dequeued where it is.
    if let Some(rest) = path.split("/Members/").nth(1)
        && let Some(sid) = rest.get(..34)
        && crate::infra::sid::is_sid(sid, "CA")
    {
        return Some(sid.to_owned());
    }
    if let Some(rest) = path.split("/Conferences/").nth(1) {
        let sid = rest.get(..34)?;
        return crate::infra::sid::is_sid(sid, "CF").then(|| sid.to_owned());
    }
    if let Some(rest) = path.split("/Calls/").nth(1) {
        let sid = rest.get(..34)?;
        return crate::infra::sid::is_sid(sid, "CA").then(|| sid.to_owned());
    }
    // A Telnyx conference (its id is the SID's UUID), but for a join, served where the
    // joining call is ([`body_call`]).
    if let Some(rest) = path.strip_prefix("/v2/conferences/") {
        if path.ends_with("/actions/join") {
            return None;
        }
        let id = rest.split('/').next()?;
        return crate::call::ids::uuid_as_sid(id, "CF");
    }
    let id = path.strip_prefix("/v2/calls/")?.split('/').next()?;
    let id = percent_decode(id);
    crate::call::ids::CallId::from_control_id(&id).map(crate::call::ids::CallId::sid)
}

/// The field of a request's JSON body naming the call it is about, rather than what its path
/// names: a Telnyx conference made from a call and a call's join of one (`call_control_id`),
/// and a dial that supervises a call (`supervise_call_control_id`: the supervisor's leg is
/// placed where the supervised bridge is, as between shards).
fn about_body_call(method: &axum::http::Method, path: &str) -> Option<&'static str> {
    if method != axum::http::Method::POST {
        return None;
    }
    if path == "/v2/conferences"
        || (path.starts_with("/v2/conferences/") && path.ends_with("/actions/join"))
    {
        return Some("call_control_id");
    }
    (path == "/v2/calls").then_some("supervise_call_control_id")
}

/// The call (`CA…`) a JSON body's `field` names.
fn body_call(body: &[u8], field: &str) -> Option<String> {
    let named: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    let id = named.get(field)?.as_str()?;
    crate::call::ids::CallId::from_control_id(id).map(crate::call::ids::CallId::sid)
}

/// The queue (`QU…`) whose front a path names (`Queues/{QU}/Members/Front`).
pub fn queue_front_of(path: &str) -> Option<String> {
    let rest = path.split("/Queues/").nth(1)?;
    let sid = rest.get(..34)?;
    let front = rest[34..].strip_prefix("/Members/Front")?;
    (crate::infra::sid::is_sid(sid, "QU") && matches!(front, "" | ".json")).then(|| sid.to_owned())
}

/// A path segment with `%XX` escapes decoded (Telnyx's ids carry a `:`).
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The middleware: a request about another node's call goes there; anything else, or a call
/// whose node cannot be reached, is served here.
pub async fn layer(State(f): State<Forwarder>, req: Request, next: Next) -> Response {
    if req.headers().contains_key(FORWARDED) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if let Some(field) = about_body_call(req.method(), path) {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let sid = body_call(&bytes, field);
        let req = Request::from_parts(parts, Body::from(bytes));
        return match sid {
            Some(sid) => forward(&f, sid, req, next).await,
            None => next.run(req).await,
        };
    }
    let sid = match (call_of(path), queue_front_of(path)) {
        (Some(sid), _) => sid,
        // A queue's front is whichever call waits first, on whichever node.
        (None, Some(queue)) => match f.store.queue_members(&queue).await {
            Ok(members) if !members.is_empty() => members[0].call.clone(),
            _ => return next.run(req).await,
        },
        (None, None) => return next.run(req).await,
    };
    forward(&f, sid, req, next).await
}

/// `req`, about `sid`: to its owner when another node has it, else served here.
async fn forward(f: &Forwarder, sid: String, req: Request, next: Next) -> Response {
    let Some(owner) = f.owner(&sid).await else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", owner.trim_end_matches('/'));
    let mut forwarded = f.client.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            forwarded = forwarded.header(name, value);
        }
    }
    let client_ip = (parts.extensions)
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    if let Some(ip) = client_ip {
        let at = crate::infra::clock::now_ms() / 1000;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let signature = sign(&f.key, &f.node, &ip, parts.method.as_str(), path, at);
        forwarded = forwarded
            .header(CLIENT, ip)
            .header(SIGNED_AT, at.to_string())
            .header(SIGNATURE, signature);
    }
    forwarded = forwarded.header(FORWARDED, f.node.as_ref());
    match forwarded.body(bytes.clone()).send().await {
        Ok(answer) => {
            tracing::debug!(call = %sid, %owner, status = %answer.status(), "forwarded to the call's node");
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !hop_by_hop(name) {
                    response = response.header(name, value);
                }
            }
            let body = answer.bytes().await.unwrap_or_default();
            response
                .header(
                    FORWARDED,
                    HeaderValue::from_str(&f.node).unwrap_or(HeaderValue::from_static("")),
                )
                .body(Body::from(body))
                .unwrap_or_else(|_| axum::http::StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => {
            // Gone between its last heartbeat and now: the call is served here, where it is
            // found not in progress.
            tracing::warn!(error = %e, call = %sid, %owner, "the call's node did not answer");
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// Headers of one connection, not of the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    name == header::HOST
        || name == header::CONNECTION
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || [FORWARDED, CLIENT, SIGNED_AT, SIGNATURE].contains(&name.as_str())
}

/// The key forwarded requests are signed with, from the nodes' shared secret.
fn forwarding_key(secret: &str) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    if secret.is_empty() {
        return rand::random();
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(b"switchboard: forwarded requests");
    mac.finalize().into_bytes().into()
}

fn mac(
    key: &[u8; 32],
    node: &str,
    client: &str,
    method: &str,
    path: &str,
    at: i64,
) -> hmac::Hmac<sha2::Sha256> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key size");
    mac.update(format!("{node}\n{client}\n{method}\n{path}\n{at}").as_bytes());
    mac
}

/// The signature of a request `node` forwards for `client`.
fn sign(key: &[u8; 32], node: &str, client: &str, method: &str, path: &str, at: i64) -> String {
    use hmac::Mac;
    hex::encode(
        mac(key, node, client, method, path, at)
            .finalize()
            .into_bytes(),
    )
}

/// The client a forwarded request is signed for, when the signature is good and fresh.
fn signed_client(key: &[u8; 32], req: &Request, now: i64) -> Option<std::net::IpAddr> {
    use hmac::Mac;
    let header = |name: &str| req.headers().get(name)?.to_str().ok();
    let (node, client) = (header(FORWARDED)?, header(CLIENT)?);
    let at: i64 = header(SIGNED_AT)?.parse().ok()?;
    let signature = hex::decode(header(SIGNATURE)?).ok()?;
    if (now - at).abs() > FRESH_SECS {
        return None;
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    mac(key, node, client, req.method().as_str(), path, at)
        .verify_slice(&signature)
        .ok()?;
    client.parse().ok()
}

/// Middleware on everything the HTTP listener serves, before the throttles: a request another
/// node forwarded with a good signature is taken as from the client it names.
pub async fn trust(State(f): State<Forwarder>, mut req: Request, next: Next) -> Response {
    if req.headers().contains_key(FORWARDED) {
        let now = crate::infra::clock::now_ms() / 1000;
        match signed_client(&f.key, &req, now) {
            Some(ip) => {
                let client = std::net::SocketAddr::new(ip, 0);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(client));
            }
            None => tracing::debug!("a forwarded request without a good signature"),
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed client is taken only with the signature of the same key over the same
    /// request, and only while fresh.
    #[test]
    fn a_forwarded_client_is_believed_only_when_signed_with_the_shared_key() {
        let key = forwarding_key("cluster-secret");
        assert_eq!(
            key,
            forwarding_key("cluster-secret"),
            "derived, the same on every node"
        );
        assert_ne!(
            forwarding_key(""),
            forwarding_key(""),
            "no secret: a key of its own"
        );
        let path = "/2010-04-01/Accounts/AC1/Calls/CA1.json";
        let request = |key: &[u8; 32], client: &str, method: &str, at: i64| {
            let signature = sign(key, "node-b", client, method, path, at);
            Request::builder()
                .method(method)
                .uri(path)
                .header(FORWARDED, "node-b")
                .header(CLIENT, client)
                .header(SIGNED_AT, at.to_string())
                .header(SIGNATURE, signature)
                .body(Body::empty())
                .unwrap()
        };
        let now = 1_800_000_000;
        let good = request(&key, "192.0.2.7", "POST", now);
        assert_eq!(
            signed_client(&key, &good, now + 5),
            "192.0.2.7".parse().ok()
        );
        assert_eq!(signed_client(&key, &good, now + 61), None, "stale");
        let other = forwarding_key("another-secret");
        assert_eq!(
            signed_client(&other, &good, now),
            None,
            "another cluster's key"
        );
        let mut forged = request(&key, "192.0.2.7", "POST", now);
        forged
            .headers_mut()
            .insert(CLIENT, HeaderValue::from_static("198.51.100.1"));
        assert_eq!(signed_client(&key, &forged, now), None, "another client");
        let mut moved = request(&key, "192.0.2.7", "POST", now);
        *moved.method_mut() = axum::http::Method::DELETE;
        assert_eq!(signed_client(&key, &moved, now), None, "another method");
        let mut unsigned = request(&key, "192.0.2.7", "POST", now);
        unsigned.headers_mut().remove(SIGNATURE);
        assert_eq!(signed_client(&key, &unsigned, now), None);
    }

    #[test]
    fn the_call_a_path_is_about() {
        let sid = "CA0123456789abcdef0123456789abcdef";
        let id = crate::call::ids::CallId::from_sid(sid).unwrap();
        let twilio =
            format!("/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls/{sid}.json");
        assert_eq!(call_of(&twilio).as_deref(), Some(sid));
        let laml = format!("/api/laml/2010-04-01/Accounts/p/Calls/{sid}/Recordings.json");
        assert_eq!(call_of(&laml).as_deref(), Some(sid));
        let telnyx = format!("/v2/calls/{}/actions/hangup", id.control_id());
        assert_eq!(call_of(&telnyx).as_deref(), Some(sid));
        let escaped = format!("/v2/calls/{}", id.control_id().replace(':', "%3A"));
        assert_eq!(call_of(&escaped).as_deref(), Some(sid));
        let room = "CFfedcba9876543210fedcba9876543210";
        let participant = format!(
            "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Conferences/{room}/Participants/{sid}.json"
        );
        assert_eq!(call_of(&participant).as_deref(), Some(room));
        // Telnyx's conferences by their ids, a join by the call its body names.
        let room_id = crate::call::ids::sid_as_uuid(room, "CF").unwrap();
        for path in ["", "/participants", "/actions/mute", "/actions/leave"] {
            let telnyx = format!("/v2/conferences/{room_id}{path}");
            assert_eq!(call_of(&telnyx).as_deref(), Some(room), "{telnyx}");
        }
        let joining = format!("/v2/conferences/{room_id}/actions/join");
        assert_eq!(call_of(&joining), None);
        let post = axum::http::Method::POST;
        let named = Some("call_control_id");
        assert_eq!(about_body_call(&post, &joining), named);
        assert_eq!(about_body_call(&post, "/v2/conferences"), named);
        let get = axum::http::Method::GET;
        assert_eq!(about_body_call(&get, "/v2/conferences"), None);
        let muting = format!("/v2/conferences/{room_id}/actions/mute");
        assert_eq!(about_body_call(&post, &muting), None);
        // A dial that supervises a call goes where that call is; any other dial is served here.
        let supervising = Some("supervise_call_control_id");
        assert_eq!(about_body_call(&post, "/v2/calls"), supervising);
        assert_eq!(about_body_call(&get, "/v2/calls"), None);
        let body = format!(r#"{{"call_control_id":"{}","mute":true}}"#, id.control_id());
        assert_eq!(
            body_call(body.as_bytes(), "call_control_id").as_deref(),
            Some(sid)
        );
        let dial = format!(
            r#"{{"to":"+15551234","supervise_call_control_id":"{}"}}"#,
            id.control_id()
        );
        let supervised = body_call(dial.as_bytes(), "supervise_call_control_id");
        assert_eq!(supervised.as_deref(), Some(sid));
        assert_eq!(
            body_call(br#"{"to":"+15551234"}"#, "supervise_call_control_id"),
            None
        );
        let nonsense = br#"{"call_control_id":"v3:nonsense"}"#;
        assert_eq!(body_call(nonsense, "call_control_id"), None);
        assert_eq!(
            body_call(br#"{"call_control_id":7}"#, "call_control_id"),
            None
        );
        assert_eq!(body_call(b"not json", "call_control_id"), None);
        let member = format!(
            "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Queues/QU0123456789abcdef0123456789abcdef/Members/{sid}.json"
        );
        assert_eq!(call_of(&member).as_deref(), Some(sid));
        let front =
            "/2010-04-01/Accounts/AC0/Queues/QU0123456789abcdef0123456789abcdef/Members/Front.json";
        assert_eq!(call_of(front), None);
        assert_eq!(
            queue_front_of(front).as_deref(),
            Some("QU0123456789abcdef0123456789abcdef")
        );
        assert_eq!(queue_front_of(&member), None);
        assert_eq!(
            queue_front_of("/2010-04-01/Accounts/AC0/Queues/QUshort/Members/Front.json"),
            None
        );
        for other in [
            "/2010-04-01/Accounts/AC0/Conferences.json",
            "/2010-04-01/Accounts/AC0/Queues/QU0/Members/Front.json",
            "/2010-04-01/Accounts/AC0/Conferences/CFshort.json",
            "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls.json",
            "/2010-04-01/Accounts/AC0/Calls/CAnothex.json",
            "/v2/calls",
            "/v2/calls/not-an-id/actions/hangup",
            "/healthz",
        ] {
            assert_eq!(call_of(other), None, "{other}");
        }
    }
}
