//! TLS configurations from PEM files: the client side of `wss://` streams and of SIP over TLS
//! toward trunks and phones (the system's trust roots plus an optional CA file: an
//! application or carrier behind a private CA, or a test's own CA; a certificate of ours
//! where a trunk asks for one), and the server side of SIP TLS listeners.

use rustls::RootCertStore;
/// A TLS listener's settings, for those that build one from [`server_config`].
pub use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

fn provider() {
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificates of a PEM file, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A certificate chain and its key, as a pair of PEM files.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub certificate: &'a Path,
    pub key: &'a Path,
}

/// The system's roots and those of `extra_ca`. Unreadable system certificates are skipped: a
/// host without any still reaches peers trusted through the extra file.
fn roots(extra_ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        for cert in certificates(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    tracing::debug!(system_roots = added, "TLS roots loaded");
    Ok(roots)
}

/// A client configuration that trusts the system's roots and `extra_ca`, and presents
/// `identity` to servers that ask for a client certificate (mutual TLS).
pub fn client_config(
    extra_ca: Option<&Path>,
    identity: Option<Identity<'_>>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    provider();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots(extra_ca)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(certificates(id.certificate)?, private_key(id.key)?)
            .map_err(|e| format!("{}: {e}", id.key.display()))?,
    };
    Ok(Arc::new(config))
}

/// What a TLS listener presents: `identity`'s chain, proven with its key. With `client_ca`,
/// a client may present a certificate of its own (mutual TLS, as carriers' SBCs do): it must
/// then be one that CA issued, or the handshake fails; a client presenting none (a browser,
/// a phone) is let in as before.
pub fn server_config(
    identity: Identity<'_>,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    provider();
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(
            certificates(identity.certificate)?,
            private_key(identity.key)?,
        )
        .map_err(|e| format!("{}: {e}", identity.key.display()))?;
    Ok(Arc::new(config))
}

/// The name a peer's certificate must carry, from a DNS name or an IP address.
pub fn server_name(host: &str) -> Option<rustls::pki_types::ServerName<'static>> {
    rustls::pki_types::ServerName::try_from(host.to_owned()).ok()
}
