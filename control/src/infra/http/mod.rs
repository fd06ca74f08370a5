//! The HTTP side: `/healthz` for liveness (of the threads that carry calls) and `/metrics` in
//! Prometheus text. The binary merges the provider APIs' routers into this one and serves it
//! with [`serve`]'s limits; [`throttle`] slows down whoever guesses credentials.

pub mod openapi;
mod serve;
pub mod throttle;
pub mod websocket;

pub use serve::{HttpLimits, address_key, serve};

use crate::infra::store::StoreWriter;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use switchboard_media::MediaEngine;
use switchboard_media::health::{self, Health};
use switchboard_sip::transport::TransportStats;

#[derive(Clone)]
pub struct HttpState {
    pub health: Arc<Health>,
    pub prometheus: PrometheusHandle,
    pub media: MediaEngine,
    pub sip: Arc<TransportStats>,
    pub cdr: StoreWriter,
}

/// Installs the process-wide metrics recorder, with every family at zero; call once at
/// start-up.
pub fn install_metrics() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| e.to_string())?;
    crate::infra::metrics::register();
    Ok(handle)
}

/// A request's `Authorization: Bearer` token.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    (headers.get(axum::http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// A request's `Authorization: Basic` user and password.
pub fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = (headers.get(axum::http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))?;
    let decoded = (base64::engine::general_purpose::STANDARD)
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .route("/openapi.json", get(openapi::serve))
        .with_state(state)
}

/// 200 `ok` while every thread that carries calls is alive and making progress; 503 with one line
/// per thread that is not (stalled for how long, or failed and why) otherwise.
async fn healthz(State(s): State<HttpState>) -> impl IntoResponse {
    let report = s.health.report(Instant::now());
    if report.healthy {
        return (StatusCode::OK, "ok\n".to_owned());
    }
    let mut body = String::from("unhealthy\n");
    for (name, state) in &report.problems {
        let line = match state {
            health::State::Ok => continue,
            health::State::Stalled(quiet) => {
                format!("{name}: stalled for {:.1} s", quiet.as_secs_f64())
            }
            health::State::Failed(why) => format!("{name}: failed: {why}"),
        };
        body.push_str(&line);
        body.push('\n');
    }
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

async fn render_metrics(State(s): State<HttpState>) -> impl IntoResponse {
    // Counters owned by the media workers and transports are copied in at scrape time so the
    // packet path never touches the metrics registry.
    metrics::counter!("switchboard_rtp_packets_relayed_total").absolute(s.media.relayed_total());
    metrics::counter!("switchboard_rtp_packets_relayed_kernel_total")
        .absolute(s.media.relayed_in_kernel_total());
    metrics::counter!("switchboard_rtp_packets_dropped_total").absolute(s.media.dropped_total());
    metrics::counter!("switchboard_srtp_packets_rejected_total")
        .absolute(s.media.srtp_rejected_total());
    metrics::gauge!("switchboard_rtp_port_pairs_free").set(s.media.ports_available() as f64);
    metrics::counter!("switchboard_sip_messages_received_total")
        .absolute(s.sip.received.load(Ordering::Relaxed));
    metrics::counter!("switchboard_sip_messages_malformed_total")
        .absolute(s.sip.malformed.load(Ordering::Relaxed));
    metrics::counter!("switchboard_sip_messages_dropped_total")
        .absolute(s.sip.dropped.load(Ordering::Relaxed));
    metrics::counter!("switchboard_sip_tcp_refused_total")
        .absolute(s.sip.refused.load(Ordering::Relaxed));
    metrics::counter!("switchboard_sip_tls_handshakes_failed_total")
        .absolute(s.sip.tls_failed.load(Ordering::Relaxed));
    metrics::gauge!("switchboard_cdr_backlog").set(s.cdr.backlog() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
}
