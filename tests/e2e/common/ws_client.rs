//! A WebSocket client as a browser's page or an attacker opens one to the server's HTTP
//! listener, and the live socket's tokens.

use super::Server;
use serde_json::Value;
use std::net::SocketAddr;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket to `server` at `path`, from `from` (an address of the test's network); the
/// handshake's status when it is refused. With `small_buffers`, the client's socket reads and
/// writes through 4 KB buffers (so that a client that does not read stops the server's sends
/// soon).
pub async fn connect(
    server: SocketAddr,
    path: &str,
    from: &str,
    small_buffers: bool,
) -> Result<Socket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if small_buffers {
        socket.set_recv_buffer_size(4096).unwrap();
        socket.set_send_buffer_size(4096).unwrap();
    }
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    let request = format!("ws://{server}{path}")
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// `POST /v1/live/tokens` as `account` with `body`: the status and the answer.
pub fn mint_live(server: &Server, (account, token): (&str, &str), body: Value) -> (u16, Value) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{account}:{token}"));
    let headers = format!("Authorization: Basic {basic}\r\nContent-Type: application/json\r\n");
    let (status, answer) = server.request(
        "POST",
        "/v1/live/tokens",
        &headers,
        body.to_string().as_bytes(),
    );
    (
        status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

/// The next JSON message (heartbeats and pings passed over) within `wait`; `None` once the
/// socket is closed.
pub async fn next_json(ws: &mut Socket, wait: std::time::Duration) -> Option<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let m = tokio::time::timeout(wait, ws.next())
            .await
            .expect("an answer in time");
        match m {
            Some(Ok(Message::Text(t))) if t.trim().is_empty() => continue,
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return None,
        }
    }
}
