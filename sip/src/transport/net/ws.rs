//! SIP over WebSocket (RFC 7118) on accepted connections, plain or inside TLS: the client
//! must ask for the `sip` subprotocol; each WebSocket message then carries one SIP message
//! (text or binary), and each message we send goes as one text message. The connection is
//! the only way back to the client (a browser has no address to connect to), so it is kept
//! alive with pings every [`PING_INTERVAL`], and closed like a TCP one when the client has
//! said nothing, not even a pong, for the idle time.

use super::TcpConnections;
use crate::message::{ParseError, SipMessage};
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
        let config = config();
        let handshake =
            tokio_tungstenite::accept_hdr_async_with_config(stream, choose, Some(config));
        let socket = match tokio::time::timeout(self.handshake_wait(trusted), handshake).await {
            Ok(Ok(socket)) => socket,
            _ => {
                tracing::debug!(remote = %peer.remote, "WebSocket handshake failed");
                return self.forget(id, peer);
            }
        };
        let Some((trusted, last_rx, close)) = self.handles(id) else {
            return;
        };
        let (mut sink, mut source) = socket.split();
        // Error replies to what could not be parsed, beside the core's messages.
        let (reply_tx, mut reply_rx) = mpsc::channel::<Bytes>(16);
        let send_timeout = self.limits.tcp_send_timeout;
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
                // A client that does not read loses its connection, not a task.
                let sent = tokio::time::timeout(send_timeout, sink.send(message)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
            let _ = tokio::time::timeout(send_timeout, sink.close()).await;
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

/// The WebSocket limits of a SIP connection: a SIP message is one WebSocket message (RFC 7118
/// §5), of at most [`MAX_MESSAGE`] bytes.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// What a client's bytes on a SIP WebSocket become, framed and parsed as the listener does
/// once the handshake is done (for fuzzing: the same frame reader, limits and parser).
pub fn read_sip_frames(raw: &[u8], mut each: impl FnMut(Result<SipMessage, ParseError>)) {
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
    /// Reads `raw`; what the server would write goes nowhere.
    struct Wire<'a>(std::io::Cursor<&'a [u8]>);
    impl std::io::Read for Wire<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl std::io::Write for Wire<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut ws = WebSocket::from_raw_socket(
        Wire(std::io::Cursor::new(raw)),
        Role::Server,
        Some(config()),
    );
    while let Ok(message) = ws.read() {
        match message {
            Message::Text(t) => each(SipMessage::parse(t.as_bytes())),
            Message::Binary(b) => each(SipMessage::parse(&b)),
            _ => {}
        }
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

#[cfg(test)]
mod tests {
    use super::super::{ListenSpec, TransportLimits, bind};
    use crate::message::SipMessage;
    use crate::transport::{Transmit, Transport};
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    const OPTIONS: &str = "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKw\r\n\
        From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: w@1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    /// A SIP message in a WebSocket message reaches the core with its connection, and the
    /// answer goes back on it as text; a message that cannot be parsed is answered 400 on the
    /// socket; one past the size bound closes the connection.
    #[tokio::test]
    async fn messages_go_both_ways_bad_ones_are_answered_and_oversized_ones_close() {
        let specs = [ListenSpec {
            transport: Transport::Ws,
            addr: "127.0.0.1:0".parse().unwrap(),
        }];
        let (bound, sender, mut rx, stats) =
            bind(&specs, &TransportLimits::default()).await.unwrap();
        let url = format!("ws://{}/", bound[0].addr);
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(bound[0].addr).await.unwrap();
        let (mut ws, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
        assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "sip");
        let wait = Duration::from_secs(5);

        ws.send(Message::text(OPTIONS)).await.unwrap();
        let got = tokio::time::timeout(wait, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.peer.transport, Transport::Ws);
        assert!(got.peer.conn.is_some());
        let SipMessage::Request(options) = got.message else {
            panic!("a request")
        };
        let ok = options.response(200, Some("t"));
        sender.send(Transmit {
            peer: got.peer,
            data: ok.encode(),
        });
        let Some(Ok(Message::Text(answer))) = tokio::time::timeout(wait, ws.next()).await.unwrap()
        else {
            panic!("a text message")
        };
        assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");

        let broken = OPTIONS.replace("Call-ID: w@1\r\n", "");
        ws.send(Message::text(broken)).await.unwrap();
        let Some(Ok(Message::Text(refusal))) = tokio::time::timeout(wait, ws.next()).await.unwrap()
        else {
            panic!("a text message")
        };
        assert!(
            refusal.starts_with("SIP/2.0 400 Bad Request\r\n"),
            "{refusal}"
        );
        assert_eq!(
            stats.malformed.load(std::sync::atomic::Ordering::Relaxed),
            1
        );

        let huge = format!("{OPTIONS}{}", "x".repeat(super::MAX_MESSAGE));
        let _ = ws.send(Message::text(huge)).await;
        let closed = tokio::time::timeout(wait, async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "an oversized message closes the connection");
        assert!(rx.try_recv().is_err(), "nothing of it reached the core");
    }
}
