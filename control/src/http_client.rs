//! The HTTP client for what Switchboard fetches (audio, and later markup and webhooks).

use std::time::Duration;

/// A client over rustls with the `ring` provider (no C toolchain beyond cc needed) and the
/// platform's trust roots; connect and whole-request timeouts keep a dead server from holding
/// a call.
pub fn client() -> reqwest::Client {
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS provider is installed")
}
