//! Server WebSockets on the HTTP listeners (RFC 6455 §4.2): the browser SDKs' signalling
//! sockets (Telnyx's Verto on `/`, Twilio's on `/signal`). The handshake is checked and
//! answered here and the upgraded connection handed to tokio-tungstenite; axum's own
//! WebSocket support is not built because it would bring a second tungstenite version.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Sockets open at once on all listeners. An upgraded connection leaves the HTTP server's
/// connection caps (hyper hands it over), so it is counted here: past this, 503.
pub const MAX_OPEN: usize = 4096;

static OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One open socket, counted while it lives.
struct Slot;

impl Slot {
    fn take() -> Option<Self> {
        use std::sync::atomic::Ordering;
        let taken = OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_OPEN).then_some(n + 1)
        });
        taken.ok().map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Answers a WebSocket handshake (426 for a request that is not one) and runs `serve` on the
/// socket once the connection is upgraded; messages are bounded by `max_message` bytes.
pub fn upgrade<F, Fut>(mut req: Request<Body>, max_message: usize, serve: F) -> Response
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let h = req.headers();
    let has = |name: header::HeaderName, want: &str| {
        (h.get_all(name).iter())
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(want))
    };
    let key = h.get("Sec-WebSocket-Key").cloned();
    let (true, true, Some(key)) = (
        has(header::UPGRADE, "websocket"),
        has(header::CONNECTION, "upgrade"),
        key,
    ) else {
        return (StatusCode::UPGRADE_REQUIRED, "a WebSocket is expected here").into_response();
    };
    let Some(slot) = Slot::take() else {
        metrics::counter!("switchboard_websockets_refused_total").increment(1);
        return (StatusCode::SERVICE_UNAVAILABLE, "too many sockets open").into_response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrading = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let _slot = slot;
        let Ok(upgraded) = upgrading.await else {
            return;
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        serve(socket).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header("Sec-WebSocket-Accept", accept)
        .body(Body::empty())
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sockets_are_counted_while_they_live_and_refused_past_the_cap() {
        let held: Vec<_> = std::iter::from_fn(super::Slot::take)
            .take(super::MAX_OPEN + 1)
            .collect();
        assert_eq!(held.len(), super::MAX_OPEN, "the cap");
        assert!(super::Slot::take().is_none());
        drop(held);
        assert!(
            super::Slot::take().is_some(),
            "each closed socket gives its place back"
        );
    }
}
