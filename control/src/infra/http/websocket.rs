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
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrading = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
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
