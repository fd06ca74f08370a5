//! SIP over TLS with a real peer: Switchboard behind a carrier's proxy (Debian's Kamailio with
//! its TLS module, tests/kamailio/tls_proxy.cfg) that speaks TLS to Switchboard both ways. The
//! caller's INVITE reaches Switchboard over a TLS connection Kamailio opens, checking
//! Switchboard's certificate against the test's CA; Switchboard's INVITE to the callee goes to
//! the trunk over a TLS connection it opens, checking that Kamailio's certificate names the
//! trunk's `tls_name`. Everything inside both dialogs follows the double Record-Route the
//! proxy adds (`sip:…;transport=tls` on Switchboard's side). A renewed certificate is taken on
//! SIGHUP by new connections without a restart.

use crate::common;
use crate::route_sets::{WAIT_BYE, hangs_up};

use common::kamailio::Kamailio;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use std::sync::Arc;
use std::time::Duration;

/// A certificate for `names` signed by `ca`, written as `{file}.pem` and `{file}.key`; its DER.
pub(crate) fn issue(
    net: &Net,
    ca: &CertifiedIssuer<'_, KeyPair>,
    names: &[&str],
    file: &str,
) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(owned).unwrap();
    // Its own subject: one the same as the CA's would read as self-signed to OpenSSL.
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let cert = params.signed_by(&key, ca).unwrap();
    std::fs::write(net.path(&format!("{file}.pem")), cert.pem()).unwrap();
    std::fs::write(net.path(&format!("{file}.key")), key.serialize_pem()).unwrap();
    cert.der().to_vec()
}

/// The certificate a TLS server at `addr` presents to a client that trusts `ca` and expects
/// `name`.
fn presented(addr: std::net::SocketAddr, ca: &str, name: &str) -> Vec<u8> {
    connect_as(addr, ca, name, None).expect("the handshake succeeds")
}

/// Connects to the TLS server at `addr` (trusting `ca`, expecting `name`), presenting the
/// client certificate `client` (PEM chain and key files) if given: the server's certificate,
/// or why the connection was refused. Under TLS 1.3 a server refuses a client's certificate
/// after the client's side of the handshake is done, so a connection the server keeps open,
/// silent, for half a second counts as taken.
fn connect_as(
    addr: std::net::SocketAddr,
    ca: &str,
    name: &str,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(500), tls.read(&mut byte)).await;
        match read {
            Err(_) => {}
            Ok(Ok(n)) => return Err(format!("closed ({n} bytes)")),
            Ok(Err(e)) => return Err(e.to_string()),
        }
        let (_, session) = tls.get_ref();
        Ok(session.peer_certificates().unwrap()[0].to_vec())
    })
}

use rustls::pki_types::pem::PemObject;

/// A CA of the test's own, written as `ca.pem`.
pub(crate) fn test_ca(net: &Net) -> CertifiedIssuer<'static, KeyPair> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "Switchboard test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(net.path("ca.pem"), ca.pem()).unwrap();
    ca
}

#[test]
fn a_call_crosses_a_tls_proxy_both_ways_and_a_renewed_certificate_is_taken_on_sighup() {
    let net = Net::new(148);
    let (sb, proxy) = (net.ip(1), net.ip(5));
    let ca = test_ca(&net);
    issue(&net, &ca, &[&sb], "switchboard");
    issue(&net, &ca, &["kamailio.test"], "kamailio");
    let path = |f: &str| net.path(f).display().to_string();

    let config = format!(
        "[[trunks]]\nname = \"carrier\"\naddress = \"{proxy}:5061\"\ntransport = \"tls\"\n\
         tls_name = \"kamailio.test\"\ninbound_sources = [\"{proxy}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\ntrunk = \"carrier\"\n"
    );
    let listen = format!("[\"udp:{sb}:5060\", \"tls:{sb}:5061\"]");
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_SIP__T1_MS", "100"),
            ("SWITCHBOARD_SIP__LISTEN", &listen),
            ("SWITCHBOARD_SIP__TLS_CERTIFICATE", &path("switchboard.pem")),
            ("SWITCHBOARD_SIP__TLS_KEY", &path("switchboard.key")),
            ("SWITCHBOARD_SIP__TLS_CA_FILE", &path("ca.pem")),
            ("SWITCHBOARD_SIP__TLS_CLIENT_CA", &path("ca.pem")),
        ],
    );
    let quoted = |s: String| format!("\"{s}\"");
    let kamailio = Kamailio::start(
        &net,
        "tls_proxy.cfg",
        5,
        &[
            ("LISTEN_TLS", &format!("tls:{proxy}:5061")),
            ("PROXY_IP", &proxy),
            ("SB_IP", &quoted(sb.clone())),
            ("SB", &quoted(format!("sip:{sb}:5061;transport=tls"))),
            ("CALLEE", &quoted(format!("sip:{}:5060", net.ip(3)))),
            ("CERT", &quoted(path("kamailio.pem"))),
            ("KEY", &quoted(path("kamailio.key"))),
            ("CA", &quoted(path("ca.pem"))),
        ],
    );
    // The callee hangs up: its BYE reaches Switchboard over TLS along the route set, and
    // Switchboard's BYE to the caller leaves over TLS along the caller's.
    let callee_end = hangs_up("[$local];tag=[pid]SIPpTag01[call_number]", "[$remote]", 1);
    let uas = scenario(&net, "uas_record_route.xml", &[("AFTER_ACK", &callee_end)]);
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    let uac = scenario(&net, "uac_record_route.xml", &[("AFTER_ACK", WAIT_BYE)]);
    let run = run_sipp(
        &net,
        &uac,
        &net.ip(2),
        5060,
        format!("{proxy}:5060").parse().unwrap(),
        &["-s", "+15551234", "-m", "1"],
        Duration::from_secs(60),
    );
    let logs = || format!("{}\n--- kamailio ---\n{}", server.log(), kamailio.log());
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "the caller: {}\n{}",
        run.errors,
        logs()
    );
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the callee's call failed\n{}",
        logs()
    );
    let calls = server.ended_calls(1);
    assert_eq!(calls[0]["status"], "completed", "{}\n{}", calls[0], logs());
    assert_eq!(calls[0]["hangup_by"], "callee", "{}", calls[0]);
    let k = kamailio.log();
    // Switchboard's INVITE and its answers to the caller's came over TLS…
    assert!(
        k.contains("from switchboard: INVITE over tls"),
        "{}",
        logs()
    );
    assert!(k.contains("reply 200 INVITE over tls"), "{}", logs());
    // …and so did its ACK and BYE inside the dialogs, each along the route set.
    let over_tls = |method: &str| {
        k.lines().any(|l| {
            l.contains(&format!("routed {method} ")) && l.contains(&format!("from tls:{sb}"))
        })
    };
    assert!(over_tls("ACK") && over_tls("BYE"), "{}", logs());
    assert!(!k.contains("no route:"), "{}", logs());
    assert!(!server.log().contains("ack-timeout"), "{}", logs());
    assert!(!server.log().contains("TLS handshake failed"), "{}", logs());
    assert_eq!(
        server.metric("switchboard_sip_tls_handshakes_failed_total"),
        Some(0.0)
    );

    // A renewed certificate (a new key, the same name) is presented once the file is read
    // again; no restart.
    // Mutual TLS: a client certificate from the configured client CA is taken, one from
    // another CA refused (and counted); none at all is taken too (the other connections).
    let tls_addr = format!("{sb}:5061").parse().unwrap();
    let own = (net.path("kamailio.pem"), net.path("kamailio.key"));
    assert!(connect_as(tls_addr, &ca.pem(), &sb, Some((&own.0, &own.1))).is_ok());
    let stranger_ca = CertifiedIssuer::self_signed(
        {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p
        },
        KeyPair::generate().unwrap(),
    )
    .unwrap();
    issue(&net, &stranger_ca, &["impostor.test"], "impostor");
    let impostor = (net.path("impostor.pem"), net.path("impostor.key"));
    let refused = connect_as(tls_addr, &ca.pem(), &sb, Some((&impostor.0, &impostor.1)));
    assert!(
        refused.is_err(),
        "a client certificate from another CA: {refused:?}"
    );
    // The client sees the refusal before the server's task has counted it.
    assert_eq!(
        server.metric_settles("switchboard_sip_tls_handshakes_failed_total", 1.0),
        Some(1.0)
    );
    let before = presented(tls_addr, &ca.pem(), &sb);
    let renewed = issue(&net, &ca, &[&sb], "switchboard");
    assert_ne!(before, renewed);
    server.signal("HUP");
    server.wait_for_log("configuration reloaded");
    assert_eq!(presented(tls_addr, &ca.pem(), &sb), renewed, "{}", logs());
}
