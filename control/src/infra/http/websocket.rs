//! Server WebSockets on the HTTP listeners (RFC 6455 §4.2): the browser SDKs' signalling
//! sockets (Telnyx's Verto on `/`, Twilio's on `/signal`). The handshake is checked and
//! answered here and the upgraded connection handed to tokio-tungstenite; axum's own
//! WebSocket support is not built because it would bring a second tungstenite version.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Sockets open at once on all listeners, and from one address (IPv6: one /64). An upgraded
/// connection leaves the HTTP server's connection caps (hyper hands it over), so sockets are
/// counted here: past either cap, 503.
pub const MAX_OPEN: usize = 4096;
pub const MAX_PER_ADDRESS: usize = 64;

static OPEN: std::sync::Mutex<Option<(usize, HashMap<IpAddr, usize>)>> =
    std::sync::Mutex::new(None);

/// One open socket, counted while it lives.
struct Slot(IpAddr);

impl Slot {
    fn take(ip: IpAddr) -> Option<Self> {
        let key = super::address_key(ip);
        let mut open = OPEN.lock().expect("not poisoned");
        let (total, by_address) = open.get_or_insert_with(Default::default);
        let mine = by_address.entry(key).or_insert(0);
        if *total >= MAX_OPEN || *mine >= MAX_PER_ADDRESS {
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot(key))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = OPEN.lock().expect("not poisoned");
        if let Some((total, by_address)) = open.as_mut() {
            *total -= 1;
            if let Some(n) = by_address.get_mut(&self.0) {
                *n -= 1;
                if *n == 0 {
                    by_address.remove(&self.0);
                }
            }
        }
    }
}

/// Whether a request asks to become a WebSocket (`Upgrade: websocket`, `Connection: upgrade`).
pub fn asks_upgrade(h: &axum::http::HeaderMap) -> bool {
    let has = |name: header::HeaderName, want: &str| {
        (h.get_all(name).iter())
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(want))
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

/// Answers a WebSocket handshake (426 for a request that is not one) and runs `serve` on the
/// socket once the connection is upgraded; messages are bounded by `max_message` bytes.
pub fn upgrade<F, Fut>(mut req: Request<Body>, max_message: usize, serve: F) -> Response
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = req.headers().get("Sec-WebSocket-Key").cloned();
    let (true, Some(key)) = (asks_upgrade(req.headers()), key) else {
        return (StatusCode::UPGRADE_REQUIRED, "a WebSocket is expected here").into_response();
    };
    let ip = (req.extensions().get::<ConnectInfo<SocketAddr>>())
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let Some(slot) = Slot::take(ip) else {
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
    use super::*;

    #[test]
    fn sockets_are_counted_while_they_live_per_address_and_in_all() {
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let one: Vec<_> = std::iter::from_fn(|| Slot::take(ip(1)))
            .take(MAX_PER_ADDRESS + 1)
            .collect();
        assert_eq!(one.len(), MAX_PER_ADDRESS, "one address's cap");
        let mut all = one;
        for i in 2.. {
            let more: Vec<_> = std::iter::from_fn(|| Slot::take(ip(i)))
                .take(MAX_PER_ADDRESS)
                .collect();
            let full = more.len() < MAX_PER_ADDRESS;
            all.extend(more);
            if full {
                break;
            }
        }
        assert_eq!(all.len(), MAX_OPEN, "the cap of all");
        drop(all);
        assert!(
            Slot::take(ip(1)).is_some(),
            "each closed socket gives its place back"
        );
    }
}
