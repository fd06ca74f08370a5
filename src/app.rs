//! Wiring of `switchboard serve`: store, media engine, SIP transports, call core and HTTP, and a
//! graceful shutdown on SIGINT/SIGTERM (calls are hung up, CDRs flushed).

use crate::config::Settings;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;
use switchboard_control::call::{CallCore, CoreConfig};
use switchboard_control::http::{self, HttpState};
use switchboard_control::store::{CdrWriter, Store, StoreError};
use switchboard_media::{MediaConfig, MediaEngine};
use switchboard_sip::registrar::RegistrarConfig;
use switchboard_sip::transaction::Timers;
use switchboard_sip::transport;
use switchboard_sip::ua::{Listener, UaConfig, UserAgent};
use tokio::sync::{mpsc, watch};
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen for SIP: {0}")]
    Sip(std::io::Error),
    #[error("cannot start the media engine: {0}")]
    Media(std::io::Error),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(String),
}

/// The address peers should use to reach a socket bound to `bound`.
fn advertised_ip(public: Option<IpAddr>, bound: IpAddr) -> IpAddr {
    public.unwrap_or_else(|| {
        if bound.is_unspecified() {
            primary_ip().unwrap_or(Ipv4Addr::LOCALHOST.into())
        } else {
            bound
        }
    })
}

/// The local address of the default route. Connecting a UDP socket sends nothing.
fn primary_ip() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip())
}

fn host_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

pub async fn serve(settings: Settings) -> Result<(), AppError> {
    let prometheus = http::install_metrics().map_err(AppError::Metrics)?;
    let store = Store::open(&settings.database_url).await?;
    let abandoned = store
        .close_abandoned_calls(switchboard_control::call::now_ms())
        .await?;
    if abandoned > 0 {
        info!(
            abandoned,
            "calls left in progress by the last run were closed as failed"
        );
    }
    let (cdr, cdr_task) = CdrWriter::spawn(store.clone());

    let (bound, sender, inbound, sip_stats) = transport::bind(&settings.listen, 8192)
        .await
        .map_err(AppError::Sip)?;
    let listeners: Vec<Listener> = bound
        .iter()
        .map(|l| Listener {
            transport: l.transport,
            local: l.addr,
            advertised: host_port(
                advertised_ip(settings.public_ip, l.addr.ip()),
                l.addr.port(),
            ),
        })
        .collect();
    for l in &listeners {
        info!(transport = %l.transport, local = %l.local, advertised = %l.advertised, "SIP listening");
    }

    let media_bind = settings.media_bind.unwrap_or(bound[0].addr.ip());
    let threads = match settings.media_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let media = MediaEngine::start(
        MediaConfig {
            bind_ip: media_bind,
            advertise_ip: advertised_ip(settings.public_ip, media_bind),
            ports: settings.rtp_ports.clone(),
            threads,
            rtp_timeout: settings.rtp_timeout,
        },
        media_tx,
    )
    .map_err(AppError::Media)?;
    info!(bind = %media_bind, ports = ?settings.rtp_ports, threads, "media engine started");

    let ua = UserAgent::new(UaConfig {
        listeners,
        user_agent: settings.user_agent.clone(),
        timers: Timers::default(),
        realm: settings.realm.clone(),
        digest_algorithms: settings.digest_algorithms.clone(),
        users: settings.routing.users.clone(),
        registrar: RegistrarConfig::default(),
    });
    let core = CallCore::new(
        ua,
        media.clone(),
        settings.routing.clone(),
        cdr.clone(),
        CoreConfig {
            ring_timeout: settings.ring_timeout,
            shutdown_grace: Duration::from_secs(5),
        },
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let core_task = tokio::spawn(core.run(inbound, sender, media_rx, shutdown_rx.clone()));

    let http_listener = tokio::net::TcpListener::bind(settings.http_listen)
        .await
        .map_err(|source| AppError::Http {
            addr: settings.http_listen,
            source,
        })?;
    info!(addr = %http_listener.local_addr().map_err(|source| AppError::Http { addr: settings.http_listen, source })?, "HTTP listening");
    let router = http::router(HttpState {
        prometheus,
        media: media.clone(),
        sip: sip_stats,
        cdr: cdr.clone(),
    });
    let http_task = tokio::spawn(http::serve(http_listener, router, shutdown_rx));
    drop(cdr);
    info!("ready");

    wait_for_signal().await;
    info!("signal received");
    let _ = shutdown_tx.send(true);
    let _ = core_task.await;
    let _ = http_task.await;
    // The CDR writer ends once every sender is gone and its queue is written.
    let _ = cdr_task.await;
    media.shutdown();
    store.close().await;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
