//! The HTTP server's accept loop, with the limits a server facing the internet needs: axum's own
//! `serve` has no header-read or idle timeout and no connection cap, so a few hundred silent
//! connections held every descriptor and silenced `/healthz`.
//!
//! Each connection must send a request's whole header within `header_timeout` of connecting or
//! of its previous response (hyper's header-read timer, which also runs while a keep-alive
//! connection waits): silent, trickling and idle connections all close then. A request's
//! handling (reading its body included) has `request_timeout`. Connections are capped in total
//! and per source address; one over either cap is closed at once, before it costs a task.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
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
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_per_address: 64,
        }
    }
}

/// Open connections, in total and per address (IPv6 by /64: one host has them all).
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Open`], given back when the connection ends.
struct Admitted {
    open: Arc<Mutex<Open>>,
    key: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("not poisoned");
        open.total -= 1;
        if let Some(n) = open.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.key);
            }
        }
    }
}

/// The key a source address is counted under.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

fn admit(open: &Arc<Mutex<Open>>, limits: &HttpLimits, ip: IpAddr) -> Option<Admitted> {
    let key = address_key(ip);
    let mut o = open.lock().expect("not poisoned");
    let mine = o.by_address.get(&key).copied().unwrap_or(0);
    if o.total >= limits.max_connections || mine >= limits.max_per_address {
        return None;
    }
    o.total += 1;
    *o.by_address.entry(key).or_insert(0) += 1;
    Some(Admitted {
        open: open.clone(),
        key,
    })
}

/// Serves `router` until `shutdown` flips; connections then finish their request in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(Open::default()));
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
        let Some(admitted) = admit(&open, &limits, peer.ip()) else {
            metrics::counter!("switchboard_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = ConnectionService {
            router: router.clone(),
            peer,
            timeout: limits.request_timeout,
        };
        let mut shutdown = shutdown.clone();
        let header_timeout = limits.header_timeout;
        tasks.spawn(async move {
            let _admitted = admitted;
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
            }
        });
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// The router for one connection: it knows the peer (`ConnectInfo`) and bounds each request.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    timeout: Duration,
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
        Box::pin(async move {
            let request = request.map(axum::body::Body::new);
            match tokio::time::timeout(timeout, router.call(request)).await {
                Ok(response) => response,
                Err(_) => Ok((StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_in_total_and_per_address() {
        let open = Arc::new(Mutex::new(Open::default()));
        let limits = HttpLimits {
            max_connections: 3,
            max_per_address: 2,
            ..Default::default()
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = admit(&open, &limits, a).unwrap();
        let _second = admit(&open, &limits, a).unwrap();
        assert!(admit(&open, &limits, a).is_none(), "per address");
        let _third = admit(&open, &limits, b).unwrap();
        assert!(admit(&open, &limits, b).is_none(), "in total");
        drop(first);
        assert!(
            admit(&open, &limits, a).is_some(),
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
