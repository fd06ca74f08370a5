//! Connecting a stream: TCP, TLS for `wss://` (the configured roots), and the WebSocket
//! upgrade with the dialect's headers, each stage on its own so that a failure is reported
//! as what it is, all within the configured time.

use super::{Failure, MediaStreams};
use crate::infra::egress::Reach;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where to connect and what to put on the handshake.
pub(crate) struct Target<'a> {
    pub(crate) url: &'a str,
    /// The dialect's signature, a bearer token.
    pub(crate) headers: &'a [(String, String)],
    pub(crate) user_agent: Option<&'static str>,
    /// The networks the account's URL may reach.
    pub(crate) reach: Reach,
}

/// The socket's read buffer, and how much written data may wait before it goes out (every
/// batch of frames is flushed anyway).
const READ_BUFFER: usize = 4096;
const WRITE_BUFFER: usize = 32 * 1024;
/// Connects, secures (wss) and upgrades, within the configured time. Each stage is done on
/// its own so that a failure is reported as what it is: no answer, refused or unreachable
/// (TCP), TLS, or the WebSocket handshake.
pub(crate) async fn connect(
    streams: &MediaStreams,
    spec: &Target<'_>,
) -> Result<Socket, (Failure, String)> {
    let url = url::Url::parse(spec.url)
        .map_err(|e| (Failure::MalformedUrl, format!("{:?}: {e}", spec.url)))?;
    let secure = match url.scheme() {
        "wss" => true,
        "ws" => false,
        _ => {
            return Err((
                Failure::UrlScheme,
                format!("{:?}: a stream URL is ws:// or wss://", spec.url),
            ));
        }
    };
    let (Some(host), Some(port)) = (
        url.host_str().filter(|h| !h.is_empty()),
        url.port_or_known_default(),
    ) else {
        return Err((Failure::MalformedUrl, format!("{:?} has no host", spec.url)));
    };
    let mut request = spec
        .url
        .into_client_request()
        .map_err(|e| (Failure::MalformedUrl, e.to_string()))?;
    for (name, value) in spec.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err((
                Failure::Handshake,
                format!("the handshake header {name:?} cannot be sent"),
            ));
        };
        request.headers_mut().append(name, value);
    }
    if let Some(agent) = spec.user_agent {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::header::USER_AGENT,
            HeaderValue::from_static(agent),
        );
    }
    // tungstenite zero-fills `read_buffer_size` bytes on every read attempt, and a stream's
    // task attempts one each time it wakes (50 to 100 times a second): the 128 KiB default
    // made that memset a third of the server's CPU under load. Most of what an application
    // sends is small; a large message grows the buffer as it comes.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(streams.config.max_message_bytes))
        .max_frame_size(Some(streams.config.max_message_bytes));
    let stages = async {
        let connect = async {
            let addrs = crate::infra::egress::resolve(host, port, spec.reach).await?;
            TcpStream::connect(&addrs[..]).await
        };
        let tcp = connect.await.map_err(|e| {
            use std::io::ErrorKind;
            let failure = match e.kind() {
                ErrorKind::ConnectionRefused => Failure::Refused,
                ErrorKind::TimedOut => Failure::ConnectTimeout,
                // No route, no such host (a name that does not resolve), or an address
                // the account may not reach.
                _ => Failure::Unreachable,
            };
            (failure, format!("{host}:{port}: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        let stream = if secure {
            let name =
                rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| (Failure::MalformedUrl, format!("{host}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(streams.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| (Failure::Tls, format!("{host}:{port}: {e}")))?;
            MaybeTlsStream::Rustls(tls)
        } else {
            MaybeTlsStream::Plain(tcp)
        };
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map_err(|e| {
                    let detail = match &e {
                        tungstenite::Error::Http(response) => {
                            format!("the server answered the upgrade with {}", response.status())
                        }
                        other => other.to_string(),
                    };
                    (Failure::Handshake, detail)
                })?;
        Ok(socket)
    };
    tokio::time::timeout(streams.config.connect_timeout, stages)
        .await
        .unwrap_or_else(|_| {
            Err((
                Failure::ConnectTimeout,
                format!(
                    "no answer from {} in {:?}",
                    spec.url, streams.config.connect_timeout
                ),
            ))
        })
}
