//! The HTTP server's accept loop, with the limits a server facing the internet needs: axum's own
//! `serve` has no header-read or idle timeout and no connection cap, so a few hundred silent
//! connections held every descriptor and silenced `/healthz`.
//!
//! Each connection must send a request's whole header within `header_timeout` of connecting or
//! of its previous response (hyper's header-read timer, which also runs while a keep-alive
//! connection waits): silent, trickling and idle connections all close then. A request's
//! handling (reading its body included) has `request_timeout`. Connections are capped per
//! source address (one over it is closed at once, before it costs a task) and in total, where
//! the connection idle the longest makes room for a new one.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tower_service::Service;
use tracing::{debug, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// To send a request's header: after connecting, and between requests.
    pub header_timeout: Duration,
    /// To handle a request, its body included.
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_per_address: usize,
    /// WebSockets open at once (they leave the connection caps once upgraded), and from one
    /// address: see [`super::websocket::Places`].
    pub websockets: usize,
    pub websockets_per_address: usize,
    /// Signed in for one account.
    pub websockets_per_account: usize,
    /// From a WebSocket's upgrade to its signing in.
    pub websockets_sign_in: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_per_address: 64,
            websockets: super::websocket::MAX_OPEN,
            websockets_per_address: super::websocket::MAX_PER_ADDRESS,
            websockets_per_account: super::websocket::MAX_PER_ACCOUNT,
            websockets_sign_in: super::websocket::SIGN_IN_WITHIN,
        }
    }
}

/// Open connections, in total and per address (IPv6 by /64: one host has them all), and when
/// each last did something.
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    slots: HashMap<u64, Slot>,
    next_id: u64,
}

struct Slot {
    key: IpAddr,
    /// Since when it has had no request in hand (`None` while one is handled or its response
    /// sent).
    idle_since: Option<Instant>,
    /// Closes the connection when it is evicted.
    evict: Option<oneshot::Sender<()>>,
}

impl Open {
    fn release(&mut self, id: u64) -> Option<Slot> {
        let slot = self.slots.remove(&id)?;
        self.total -= 1;
        if let Some(n) = self.by_address.get_mut(&slot.key) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&slot.key);
            }
        }
        Some(slot)
    }

    fn set_idle(&mut self, id: u64, idle_since: Option<Instant>) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.idle_since = idle_since;
        }
    }
}

/// A connection's place in [`Open`], given back when the connection ends (unless it was
/// evicted, which gave it back already).
struct Admitted {
    open: Arc<Mutex<Open>>,
    id: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.lock().expect("not poisoned").release(self.id);
    }
}

/// The key a source address is counted under (IPv6 by /64), as SIP's caps count it.
pub use switchboard_sip::transport::address_key;

/// A place for a connection from `ip`, or none when its address has all it may have. When
/// every place is taken, the connection idle the longest (silent since it connected, or
/// between requests) is closed for the new one: connections held open by a crowd of addresses
/// would otherwise lock out `/healthz` and the API until their header timeout, and a crowd can
/// keep reconnecting. A request in hand is never cut.
fn admit(
    open: &Arc<Mutex<Open>>,
    limits: &HttpLimits,
    ip: IpAddr,
    now: Instant,
) -> Option<(Admitted, oneshot::Receiver<()>)> {
    let key = address_key(ip);
    let mut o = open.lock().expect("not poisoned");
    let mine = o.by_address.get(&key).copied().unwrap_or(0);
    if mine >= limits.max_per_address {
        return None;
    }
    if o.total >= limits.max_connections {
        let idlest = (o.slots.iter())
            .filter_map(|(id, slot)| Some((slot.idle_since?, *id)))
            .min()?
            .1;
        let evicted = o.release(idlest).expect("found above");
        metrics::counter!("switchboard_http_connections_evicted_total").increment(1);
        if let Some(evict) = evicted.evict {
            let _ = evict.send(());
        }
    }
    let id = o.next_id;
    o.next_id += 1;
    o.total += 1;
    *o.by_address.entry(key).or_insert(0) += 1;
    let (evict, evicted) = oneshot::channel();
    let slot = Slot {
        key,
        idle_since: Some(now),
        evict: Some(evict),
    };
    o.slots.insert(id, slot);
    let admitted = Admitted {
        open: open.clone(),
        id,
    };
    Some((admitted, evicted))
}

/// One connection, plain or inside TLS, served until it ends, is evicted, or `shutdown`
/// flips (then its request in flight finishes).
async fn connection<S>(
    stream: S,
    service: ConnectionService,
    header_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    evicted: oneshot::Receiver<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let peer = service.peer;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder
        .serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        )
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                debug!(error = %e, %peer, "HTTP connection ended");
            }
        }
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(header_timeout, conn).await;
        }
        // Idle, and its place given to a new connection: closed.
        Ok(()) = evicted => debug!(%peer, "HTTP connection evicted"),
    }
}

/// Serves `router` until `shutdown` flips; connections then finish their request in flight.
/// With `tls`, each connection is a TLS one (HTTPS, and WSS for upgraded ones).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    router: Router,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(Open::default()));
    // Every listener counts into the process's one set of WebSocket places.
    super::websocket::places().set_limits(
        limits.websockets,
        limits.websockets_per_address,
        limits.websockets_per_account,
        limits.websockets_sign_in,
    );
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or a connection reset before accept:
                    // nothing to do but wait a moment, as the condition may pass.
                    // EMFILE (24) and ENFILE (23) on Linux.
                    if matches!(e.raw_os_error(), Some(24 | 23)) {
                        warn!(error = %e, "HTTP: out of descriptors; cannot accept");
                    } else {
                        debug!(error = %e, "HTTP accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        };
        let Some((admitted, evicted)) = admit(&open, &limits, peer.ip(), Instant::now()) else {
            metrics::counter!("switchboard_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = ConnectionService {
            router: router.clone(),
            peer,
            timeout: limits.request_timeout,
            open: open.clone(),
            id: admitted.id,
        };
        let shutdown = shutdown.clone();
        let header_timeout = limits.header_timeout;
        let tls = tls.clone();
        tasks.spawn(async move {
            let _admitted = admitted;
            let Some(tls) = tls else {
                return connection(stream, service, header_timeout, shutdown, evicted).await;
            };
            // The handshake has the time a request's header has.
            let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
            match tokio::time::timeout(header_timeout, accept).await {
                Ok(Ok(stream)) => {
                    connection(stream, service, header_timeout, shutdown, evicted).await
                }
                _ => debug!(%peer, "HTTPS handshake failed"),
            }
        });
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// The router for one connection: it knows the peer (`ConnectInfo`), bounds each request, and
/// marks the connection busy from a request's arrival until its response has been sent.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    timeout: Duration,
    open: Arc<Mutex<Open>>,
    id: u64,
}

/// Marks its connection idle again when dropped: with the response's body, once sent.
struct Busy {
    open: Arc<Mutex<Open>>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("not poisoned");
        open.set_idle(self.id, Some(Instant::now()));
    }
}

impl Service<Request<hyper::body::Incoming>> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<hyper::body::Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        let timeout = self.timeout;
        (self.open.lock().expect("not poisoned")).set_idle(self.id, None);
        let busy = Busy {
            open: self.open.clone(),
            id: self.id,
        };
        Box::pin(async move {
            let request = request.map(axum::body::Body::new);
            let response = match tokio::time::timeout(timeout, router.call(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response(),
            };
            // The body carries the mark: the connection is busy until it has been sent.
            Ok(response.map(|body| {
                use http_body_util::BodyExt;
                axum::body::Body::new(body.map_frame(move |frame| {
                    let _ = &busy;
                    frame
                }))
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_the_idlest_makes_room() {
        let open = Arc::new(Mutex::new(Open::default()));
        let limits = HttpLimits {
            max_connections: 3,
            max_per_address: 2,
            ..Default::default()
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let (first, mut first_evicted) = admit(&open, &limits, a, at(0)).unwrap();
        let (second, mut second_evicted) = admit(&open, &limits, a, at(1)).unwrap();
        assert!(admit(&open, &limits, a, at(2)).is_none(), "per address");
        // The first has a request in hand: not evicted though the oldest.
        open.lock().unwrap().set_idle(first.id, None);
        let (_third, _) = admit(&open, &limits, b, at(3)).unwrap();
        let (_fourth, _) = admit(&open, &limits, c, at(4)).unwrap();
        assert_eq!(second_evicted.try_recv(), Ok(()), "the idlest made room");
        assert!(first_evicted.try_recv().is_err());
        drop(second);
        let o = open.lock().unwrap();
        assert_eq!((o.total, o.slots.len()), (3, 3), "counted once");
        assert_eq!(o.by_address.get(&a), Some(&1));
        drop(o);
        // All busy: no room.
        for slot in open.lock().unwrap().slots.values_mut() {
            slot.idle_since = None;
        }
        assert!(admit(&open, &limits, c, at(5)).is_none(), "in total");
        drop(first);
        assert!(
            admit(&open, &limits, a, at(6)).is_some(),
            "a closed one is given back"
        );
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64_and_mapped_ipv4_as_ipv4() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(address_key(one), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
