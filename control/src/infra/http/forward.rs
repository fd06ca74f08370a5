//! Several nodes on one database are one provider: an API request about a call another node
//! carries — Twilio's and SignalWire's `Calls/{CA…}` and everything under it, Telnyx's
//! `/v2/calls/{call_control_id}` and its actions — is forwarded to that node, whichever node the
//! load balancer chose, and answered with that node's answer. The client's own credentials
//! go with it and the owner checks them as it checks any request, so the hop adds no
//! authority; a forwarded request is marked and never forwarded again.
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
}

impl Forwarder {
    pub fn new(store: Store, control: CallControl) -> Result<Self, String> {
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
        })
    }

    /// `router` with its requests about other nodes' calls forwarded.
    pub fn around(&self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), layer))
    }

    /// Where the node carrying `sid` is reached, when it is another node, alive, and the call
    /// is not here.
    async fn owner(&self, sid: &str) -> Option<String> {
        if self.control.view(sid).await.is_ok() {
            return None;
        }
        let now = crate::infra::clock::now_ms();
        match self.store.owner_elsewhere(sid, now).await {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(error = %e, call = sid, "cannot find the call's node");
                None
            }
        }
    }
}

/// The call a provider API path is about, as its stored id (`CA…`).
pub fn call_of(path: &str) -> Option<String> {
    if let Some(rest) = path.split("/Calls/").nth(1) {
        let sid = rest.get(..34)?;
        return crate::infra::sid::is_sid(sid, "CA").then(|| sid.to_owned());
    }
    let id = path.strip_prefix("/v2/calls/")?.split('/').next()?;
    let id = percent_decode(id);
    crate::call::ids::CallId::from_control_id(&id).map(crate::call::ids::CallId::sid)
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
    let Some(sid) = call_of(req.uri().path()) else {
        return next.run(req).await;
    };
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
        forwarded = forwarded.header("x-forwarded-for", ip);
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
        || name.as_str() == FORWARDED
}

#[cfg(test)]
mod tests {
    use super::call_of;

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
        for other in [
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
