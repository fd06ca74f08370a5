//! The egress policy over real sockets: what an account's URLs may reach, checked on the
//! resolved address and again on every redirect, with Switchboard's own URL exempt.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use switchboard_control::infra::egress::{Clients, Reach};

/// A server on 127.0.0.1: /ok counts its requests, /metadata redirects to the cloud metadata
/// address, /hop redirects to /ok on "localhost".
async fn serve(hits: Arc<AtomicUsize>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route(
            "/ok",
            get(move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "fine"
            }),
        )
        .route(
            "/metadata",
            get(|| async {
                let to = "http://169.254.169.254/latest/meta-data/iam/security-credentials/";
                (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
            }),
        )
        .route(
            "/hop",
            get(move || async move {
                let to = format!("http://localhost:{port}/ok");
                (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

async fn get_text(clients: &Clients, url: &str, reach: Reach) -> Result<String, String> {
    let client = clients.for_url(url, reach)?;
    let response = client.get(url).send().await.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    })?;
    Ok(response.text().await.unwrap())
}

const NO_LOOPBACK: Reach = Reach {
    loopback: false,
    private: true,
};

#[tokio::test]
async fn metadata_addresses_are_refused_directly_and_after_a_redirect() {
    let hits = Arc::new(AtomicUsize::new(0));
    let port = serve(hits.clone()).await;
    let clients = Clients::default();
    let open = Reach::default();

    let direct = get_text(&clients, "http://169.254.169.254/latest/meta-data/", open).await;
    assert!(direct.unwrap_err().contains("link-local"));
    // Decimal and IPv4-mapped spellings of the same address are the same address.
    for spelled in ["http://2852039166/", "http://[::ffff:169.254.169.254]/"] {
        let e = get_text(&clients, spelled, open).await.unwrap_err();
        assert!(e.contains("link-local"), "{spelled}: {e}");
    }
    // Refused at once, not after a connect timeout to an address nobody answers.
    let started = Instant::now();
    let redirected = get_text(&clients, &format!("http://127.0.0.1:{port}/metadata"), open).await;
    assert!(redirected.unwrap_err().contains("link-local"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        get_text(&clients, &format!("http://127.0.0.1:{port}/ok"), open).await,
        Ok("fine".into())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_account_denied_loopback_reaches_it_neither_by_address_nor_by_name() {
    let hits = Arc::new(AtomicUsize::new(0));
    let port = serve(hits.clone()).await;
    let clients = Clients::default();
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://localhost:{port}/ok"),
        format!("http://[::1]:{port}/ok"),
    ] {
        let e = get_text(&clients, &url, NO_LOOPBACK).await.unwrap_err();
        assert!(e.contains("loopback"), "{url}: {e}");
    }
    // A name resolved after a redirect is checked as well: the open account follows /hop to
    // localhost, the closed one is refused before connecting.
    let hop = format!("http://127.0.0.1:{port}/hop");
    assert_eq!(
        get_text(&clients, &hop, Reach::default()).await,
        Ok("fine".into())
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "only the open account got through"
    );
    let schemes = get_text(&clients, "file:///etc/passwd", Reach::default()).await;
    assert!(schemes.unwrap_err().contains("file"));
}

/// Switchboard's own URL (its recordings, played back) stays reachable for every account.
#[tokio::test]
async fn the_servers_own_url_is_exempt() {
    let hits = Arc::new(AtomicUsize::new(0));
    let port = serve(hits.clone()).await;
    let own = format!("http://127.0.0.1:{port}");
    let clients = Clients::new(Some(&own));
    let closed = Reach {
        loopback: false,
        private: false,
    };
    assert_eq!(
        get_text(&clients, &format!("{own}/ok"), closed).await,
        Ok("fine".into())
    );
    // The exemption is the origin, not the host: another port of it is refused.
    let e = get_text(
        &clients,
        &format!("http://127.0.0.1:{}/ok", port ^ 1),
        closed,
    )
    .await;
    assert!(e.unwrap_err().contains("loopback"));
    // And it does not follow redirects elsewhere.
    assert!(
        get_text(&clients, &format!("{own}/metadata"), closed)
            .await
            .is_ok_and(|b| b.is_empty())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
