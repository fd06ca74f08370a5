//! The application side of media streams: a WebSocket server on loopback. Each connection
//! Switchboard makes is handed to the test with its handshake (path, headers), the messages
//! Switchboard sends (with when they arrived), and a way to send the application's messages.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

pub struct WsServer {
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<WsConn>,
}

/// What a connection saw of Switchboard: a message and when it came.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub message: Message,
}

pub struct WsConn {
    /// The upgrade request's path and query.
    pub path: String,
    /// Its headers, names in lower case.
    pub headers: HashMap<String, String>,
    rx: mpsc::UnboundedReceiver<Received>,
    tx: mpsc::UnboundedSender<Message>,
}

impl WsServer {
    pub async fn start(ip: &str) -> Self {
        Self::serve(ip, None).await
    }

    /// A `wss://` server with this TLS configuration.
    pub async fn start_tls(ip: &str, tls: std::sync::Arc<rustls::ServerConfig>) -> Self {
        Self::serve(ip, Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn serve(ip: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns_tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (conns_tx, tls) = (conns_tx.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                connection(stream, conns_tx).await;
                            }
                        }
                        None => connection(tcp, conns_tx).await,
                    }
                });
            }
        });
        Self { addr, conns }
    }

    /// `ws://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The next connection Switchboard makes.
    pub async fn accept(&mut self, wait: Duration) -> WsConn {
        tokio::time::timeout(wait, self.conns.recv())
            .await
            .expect("Switchboard connects to the stream URL")
            .unwrap()
    }

    /// Whether a connection arrives within `wait`.
    pub async fn try_accept(&mut self, wait: Duration) -> Option<WsConn> {
        tokio::time::timeout(wait, self.conns.recv())
            .await
            .ok()
            .flatten()
    }
}

/// One connection: the upgrade (its request kept), then messages both ways until either
/// side closes.
async fn connection<S>(stream: S, conns_tx: mpsc::UnboundedSender<WsConn>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut seen = None;
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let capture = |req: &Request, resp: Response| {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        seen = Some((path, headers));
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, capture).await else {
        return;
    };
    let (path, headers) = seen.expect("the handshake was seen");
    let (mut sink, mut source) = ws.split();
    let (in_tx, rx) = mpsc::unbounded_channel();
    let (tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let _ = conns_tx.send(WsConn {
        path,
        headers,
        rx,
        tx,
    });
    loop {
        tokio::select! {
            m = source.next() => match m {
                Some(Ok(message)) => {
                    let _ = in_tx.send(Received { at: Instant::now(), message });
                }
                _ => break,
            },
            out = out_rx.recv() => match out {
                Some(m) => {
                    let close = m.is_close();
                    if sink.send(m).await.is_err() || close {
                        // Read what is left (Switchboard's close) then stop.
                        while let Some(Ok(message)) = source.next().await {
                            let _ = in_tx.send(Received { at: Instant::now(), message });
                        }
                        break;
                    }
                }
                None => break,
            },
        }
    }
}

impl WsConn {
    /// The next message from Switchboard (any kind), or `None` once the connection is over.
    pub async fn recv(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .expect("a message from Switchboard in time")
    }

    /// The next text message, as JSON (pings and pongs are skipped); `None` at the end.
    pub async fn json(&mut self, wait: Duration) -> Option<(Instant, Value)> {
        loop {
            let r = self.recv(wait).await?;
            match r.message {
                Message::Text(t) => {
                    let v = serde_json::from_str(&t).expect("Switchboard sends JSON");
                    return Some((r.at, v));
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Messages until one whose `event` is `event`: the ones before it, and it.
    pub async fn until(&mut self, event: &str, wait: Duration) -> (Vec<Value>, (Instant, Value)) {
        let deadline = Instant::now() + wait;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, v) = self
                .json(left)
                .await
                .unwrap_or_else(|| panic!("the stream ended before {event:?}: {before:?}"));
            if v["event"] == event {
                return (before, (at, v));
            }
            before.push(v);
        }
    }

    pub fn send_json(&self, v: Value) {
        let _ = self.tx.send(Message::text(v.to_string()));
    }

    pub fn send(&self, m: Message) {
        let _ = self.tx.send(m);
    }

    /// Closes the socket (a normal close).
    pub fn close(&self) {
        let _ = self.tx.send(Message::Close(None));
    }
}
