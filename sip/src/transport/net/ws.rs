//! SIP over WebSocket (RFC 7118) on accepted connections, plain or inside TLS: the client
//! must ask for the `sip` subprotocol; each WebSocket message then carries one SIP message
//! (text or binary), and each message we send goes as one text message. The connection is
//! the only way back to the client (a browser has no address to connect to), so it is kept
//! alive with pings every [`PING_INTERVAL`], and closed like a TCP one when the client has
//! said nothing, not even a pong, for the idle time.

use super::TcpConnections;
use crate::message::SipMessage;
use crate::transport::Peer;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The largest WebSocket message (and frame) taken: a SIP message is far smaller.
const MAX_MESSAGE: usize = 65_536;

/// How often a quiet client is pinged: its pongs keep the connection, and its registration,
/// alive between its own requests.
const PING_INTERVAL: Duration = Duration::from_secs(30);

/// Whether the client's handshake offers the `sip` subprotocol (RFC 7118 §4.1).
fn offers_sip(request: &Request) -> bool {
    (request.headers().get_all("Sec-WebSocket-Protocol").iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"))
}

impl TcpConnections {
    /// Completes the WebSocket handshake on an accepted connection (`peer.conn` registered),
    /// then carries SIP messages both ways until either side closes.
    pub(super) async fn serve_ws<S>(
        &self,
        peer: Peer,
        stream: S,
        mut outgoing: mpsc::Receiver<Bytes>,
        trusted: bool,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let Some(id) = peer.conn else { return };
        #[expect(
            clippy::result_large_err,
            reason = "tungstenite's handshake callback returns its ErrorResponse as it is"
        )]
        let choose = |request: &Request, mut response: Response| {
            if !offers_sip(request) {
                let mut refusal =
                    ErrorResponse::new(Some("the sip subprotocol is required".into()));
                *refusal.status_mut() = StatusCode::BAD_REQUEST;
                return Err(refusal);
            }
            (response.headers_mut())
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
            Ok(response)
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let handshake =
            tokio_tungstenite::accept_hdr_async_with_config(stream, choose, Some(config));
        let socket = match tokio::time::timeout(self.handshake_wait(trusted), handshake).await {
            Ok(Ok(socket)) => socket,
            _ => {
                tracing::debug!(remote = %peer.remote, "WebSocket handshake failed");
                return self.forget(id, peer);
            }
        };
        let (trusted, last_rx, close) = {
            let by_id = self.by_id.lock().expect("not poisoned");
            match by_id.get(&id) {
                Some(c) => (c.trusted.clone(), c.last_rx.clone(), c.close.clone()),
                None => return,
            }
        };
        let (mut sink, mut source) = socket.split();
        // Error replies to what could not be parsed, beside the core's messages.
        let (reply_tx, mut reply_rx) = mpsc::channel::<Bytes>(16);
        let write = async move {
            let mut ping = tokio::time::interval(PING_INTERVAL);
            ping.tick().await;
            loop {
                let message = tokio::select! {
                    Some(d) = outgoing.recv() => text(d),
                    Some(d) = reply_rx.recv() => text(d),
                    _ = ping.tick() => Message::Ping(Bytes::new()),
                    else => break,
                };
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        };
        let opened = tokio::time::Instant::now();
        let read = async {
            let mut messages = 0u64;
            loop {
                let mut deadline = tokio::time::Instant::now() + self.limits.tcp_idle;
                if messages == 0 && !trusted.load(Ordering::Relaxed) {
                    deadline = deadline.min(opened + self.limits.tcp_first_message);
                }
                let data = match tokio::time::timeout_at(deadline, source.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => Bytes::from(t),
                    Ok(Some(Ok(Message::Binary(b)))) => b,
                    Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {
                        last_rx.store(self.now_ms(), Ordering::Relaxed);
                        continue;
                    }
                    _ => return,
                };
                last_rx.store(self.now_ms(), Ordering::Relaxed);
                messages += 1;
                if !self
                    .deliver(SipMessage::parse(&data), peer, &reply_tx)
                    .await
                {
                    return;
                }
            }
        };
        tokio::select! {
            _ = read => {}
            _ = write => {}
            _ = close.notified() => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.forget(id, peer);
    }
}

/// A SIP message as a WebSocket message: text when it is UTF-8 (as SIP nearly always is, and
/// as browsers' SIP stacks expect), binary otherwise.
fn text(data: Bytes) -> Message {
    match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(data.clone()) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Binary(data),
    }
}
