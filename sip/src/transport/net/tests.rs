//! The transports on loopback: UDP, TCP framing and caps, TLS names and roots.

use super::*;
use crate::message::SipMessage;

const OPTIONS: &str = "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKt\r\n\
    From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: t@1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

#[tokio::test]
async fn udp_and_tcp_receive_and_reply_to_garbage() {
    let specs = [
        ListenSpec {
            transport: Transport::Udp,
            addr: "127.0.0.1:0".parse().unwrap(),
        },
        ListenSpec {
            transport: Transport::Tcp,
            addr: "127.0.0.1:0".parse().unwrap(),
        },
    ];
    let limits = TransportLimits {
        queue: 16,
        ..TransportLimits::default()
    };
    let (bound, _sender, mut rx, stats) = bind(&specs, &limits).await.unwrap();

    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(OPTIONS.as_bytes(), bound[0].addr)
        .await
        .unwrap();
    let got = rx.recv().await.unwrap();
    assert_eq!(got.peer.remote, udp.local_addr().unwrap());

    // A request without Call-ID is answered 400 by the transport itself.
    let broken = OPTIONS.replace("Call-ID: t@1\r\n", "");
    udp.send_to(broken.as_bytes(), bound[0].addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), udp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("SIP/2.0 400 Bad Request\r\n"), "{reply}");
    assert!(reply.contains("Warning: 399 switchboard \"Missing or invalid Call-ID\""));

    // TCP: two messages in one write, split across framing, plus a keep-alive ping.
    let mut tcp = TcpStream::connect(bound[1].addr).await.unwrap();
    let two = format!("\r\n\r\n{OPTIONS}{OPTIONS}");
    tcp.write_all(two.as_bytes()).await.unwrap();
    for _ in 0..2 {
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(got.message, SipMessage::Request(_)));
        assert!(got.peer.conn.is_some());
    }
    let mut pong = [0u8; 2];
    tcp.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"\r\n");
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn each_shard_is_handed_its_own_messages_by_the_transport_that_read_them() {
    let specs = [
        ListenSpec {
            transport: Transport::Udp,
            addr: "127.0.0.1:0".parse().unwrap(),
        },
        ListenSpec {
            transport: Transport::Tcp,
            addr: "127.0.0.1:0".parse().unwrap(),
        },
    ];
    let (bound, _sender, mut queues, _) = bind_sharded(&specs, &TransportLimits::default(), 2)
        .await
        .unwrap();
    assert_eq!(queues.len(), 2);
    // A Call-ID each shard made: its messages come back to it, over UDP and over TCP.
    let of = |index: u16| {
        crate::shard::Shard::new(index, 2)
            .unwrap()
            .call_id("t", Some("1"))
    };
    let with_call_id = |id: &str| OPTIONS.replace("Call-ID: t@1", &format!("Call-ID: {id}"));
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut tcp = TcpStream::connect(bound[1].addr).await.unwrap();
    for index in [1, 0, 1] {
        let message = with_call_id(&of(index));
        udp.send_to(message.as_bytes(), bound[0].addr)
            .await
            .unwrap();
        tcp.write_all(message.as_bytes()).await.unwrap();
        for _ in 0..2 {
            let queue = &mut queues[usize::from(index)];
            let got = tokio::time::timeout(Duration::from_secs(2), queue.recv())
                .await
                .expect("in its shard's queue")
                .unwrap();
            assert_eq!(got.message.headers().call_id(), Some(of(index).as_str()));
        }
    }
    for queue in &mut queues {
        assert!(
            queue.try_recv().is_err(),
            "no message in another shard's queue"
        );
    }
}

async fn tcp_listener(limits: TransportLimits) -> (SocketAddr, Arc<TransportStats>) {
    let specs = [ListenSpec {
        transport: Transport::Tcp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (bound, _sender, rx, stats) = bind(&specs, &limits).await.unwrap();
    // Keep the queue open for the listener's lifetime.
    std::mem::forget(rx);
    (bound[0].addr, stats)
}

/// Whether the server closed the connection within `wait`.
async fn closed(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 16];
    matches!(
        tokio::time::timeout(wait, tcp.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Connections past the per-address cap are closed at accept (and counted); those within
/// it stay open and work.
#[tokio::test]
async fn tcp_connections_are_capped_per_address_and_in_total() {
    let (addr, stats) = tcp_listener(TransportLimits {
        tcp_max_per_ip: 2,
        ..TransportLimits::default()
    })
    .await;
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(TcpStream::connect(addr).await.unwrap());
    }
    // One acceptor takes connections in order, so both are registered before the third.
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(closed(&mut third, Duration::from_secs(2)).await);
    assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
    kept[0].write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    kept[0].read_exact(&mut pong).await.unwrap();

    let (addr, stats) = tcp_listener(TransportLimits {
        tcp_max_connections: 1,
        tcp_reserved: 0,
        ..TransportLimits::default()
    })
    .await;
    let _first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(closed(&mut second, Duration::from_secs(2)).await);
    assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
}

/// A connection that sends nothing is closed after the idle time; one that keeps sending
/// keep-alives is not.
#[tokio::test]
async fn idle_tcp_connections_are_closed() {
    let (addr, _) = tcp_listener(TransportLimits {
        tcp_idle: Duration::from_millis(300),
        ..TransportLimits::default()
    })
    .await;
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    let mut chatty = TcpStream::connect(addr).await.unwrap();
    for _ in 0..6 {
        chatty.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        chatty.read_exact(&mut pong).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed(&mut quiet, Duration::from_secs(2)).await);
    chatty.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    chatty.read_exact(&mut pong).await.unwrap();
}

/// Connects to `to` from `from` (a loopback address).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Strangers fill all but the reserve; a trunk's connections use the reserve, and at the cap
/// close the stranger's connection idle longest. A stranger that sends no message is closed
/// after the first-message time; a trunk's silent connection is not.
#[tokio::test]
async fn strangers_leave_the_reserve_to_trunks_and_make_way_for_them() {
    let limits = TransportLimits {
        tcp_max_connections: 4,
        tcp_reserved: 1,
        tcp_max_per_ip: 10,
        tcp_first_message: Duration::from_millis(1500),
        ..TransportLimits::default()
    };
    let specs = [ListenSpec {
        transport: Transport::Tcp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (bound, sender, rx, stats) = bind(&specs, &limits).await.unwrap();
    std::mem::forget(rx);
    let trunk: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    sender.set_trusted_sources(Box::new(move |ip| ip == trunk));
    let to = bound[0].addr;

    let mut strangers = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.3", to).await;
        // Each says something, so the last is the least idle.
        s.write_all(b"\r\n").await.unwrap();
        strangers.push(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut fourth = connect_from("127.0.0.3", to).await;
    assert!(
        closed(&mut fourth, Duration::from_millis(500)).await,
        "the reserve is the trunk's"
    );
    let mut trunk_a = connect_from("127.0.0.2", to).await;
    let mut trunk_b = connect_from("127.0.0.2", to).await;
    // At the cap, the stranger idle longest made way for the second.
    assert!(closed(&mut strangers[0], Duration::from_millis(500)).await);
    assert!(!closed(&mut strangers[2], Duration::from_millis(200)).await);
    assert!(!closed(&mut trunk_a, Duration::from_millis(100)).await);
    assert_eq!(stats.refused.load(Ordering::Relaxed), 2);
    // Strangers that sent no message are closed after 1.5 s; the trunk's stay.
    assert!(closed(&mut strangers[2], Duration::from_millis(2000)).await);
    assert!(!closed(&mut trunk_b, Duration::from_millis(500)).await);
}

/// A CA and a server identity it signed for `names`: (the CA's certificate, what the
/// server presents).
fn issued(
    names: &[&str],
) -> (
    rustls::pki_types::CertificateDer<'static>,
    Arc<rustls::ServerConfig>,
) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.der().clone(), Arc::new(config))
}

/// A transport listening on TLS that trusts `ca` and expects its peers' certificates to
/// name `name`.
async fn tls_transport(
    ca: &rustls::pki_types::CertificateDer<'static>,
    name: &'static str,
) -> (
    SocketAddr,
    Sender,
    mpsc::Receiver<Inbound>,
    Arc<TransportStats>,
) {
    let specs = [ListenSpec {
        transport: Transport::Tls,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (bound, sender, rx, stats) = bind(&specs, &TransportLimits::default()).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    sender.set_tls_peers(Box::new(move |_| {
        let name = rustls::pki_types::ServerName::try_from(name).unwrap();
        Some((name, client.clone()))
    }));
    (bound[0].addr, sender, rx, stats)
}

/// SIP over TLS: a message goes out on a connection the sender opens, checked against the
/// name it is given; the answer comes back on that connection. A certificate naming
/// another host, a peer speaking plain SIP to the TLS port, and (after the listener's
/// certificate is replaced by one of another CA) a new connection are refused, each
/// counted, and nothing of theirs reaches the core.
#[tokio::test]
async fn tls_connections_carry_messages_and_check_names_and_roots() {
    let (ca, server) = issued(&["127.0.0.1", "sip.test"]);
    let (b, b_sender, mut b_rx, b_stats) = tls_transport(&ca, "127.0.0.1").await;
    b_sender.set_tls_server(server);
    let (a, a_sender, mut a_rx, _) = tls_transport(&ca, "sip.test").await;
    let to_b = Peer {
        transport: Transport::Tls,
        remote: b,
        local: a,
        conn: None,
    };
    let wait = Duration::from_secs(5);
    a_sender.send(Transmit {
        peer: to_b,
        data: Bytes::from_static(OPTIONS.as_bytes()),
    });
    let got = tokio::time::timeout(wait, b_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.peer.transport, Transport::Tls);
    assert!(got.peer.conn.is_some());
    let SipMessage::Request(options) = got.message else {
        panic!("a request")
    };
    assert_eq!(options.headers.call_id(), Some("t@1"));
    let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1:1;branch=z9hG4bKt\r\n\
        From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>;tag=2\r\nCall-ID: t@1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    b_sender.send(Transmit {
        peer: got.peer,
        data: Bytes::from_static(ok.as_bytes()),
    });
    let answer = tokio::time::timeout(wait, a_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(answer.message, SipMessage::Response(ref r) if r.code == 200));
    assert_eq!(answer.peer.transport, Transport::Tls);

    // Another host's name: the handshake fails on the sender's side, nothing arrives.
    let (_, c_sender, _c_rx, c_stats) = tls_transport(&ca, "elsewhere.test").await;
    c_sender.send(Transmit {
        peer: to_b,
        data: Bytes::from_static(OPTIONS.as_bytes()),
    });
    // Plain SIP to the TLS port is no handshake.
    let mut plain = TcpStream::connect(b).await.unwrap();
    plain.write_all(OPTIONS.as_bytes()).await.unwrap();
    // It may hear an alert before the close.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(wait, plain.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(_) | Err(_))),
        "the plain connection was closed"
    );
    assert!(!String::from_utf8_lossy(&rest).contains("SIP/2.0"));
    let deadline = tokio::time::Instant::now() + wait;
    while c_stats.tls_failed.load(Ordering::Relaxed) < 1
        || b_stats.tls_failed.load(Ordering::Relaxed) < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handshakes not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A certificate from another CA from now on: new connections are not trusted.
    let (_, other) = issued(&["127.0.0.1"]);
    b_sender.set_tls_server(other);
    let (_, d_sender, _d_rx, d_stats) = tls_transport(&ca, "127.0.0.1").await;
    d_sender.send(Transmit {
        peer: to_b,
        data: Bytes::from_static(OPTIONS.as_bytes()),
    });
    let deadline = tokio::time::Instant::now() + wait;
    while d_stats.tls_failed.load(Ordering::Relaxed) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "old CA still trusted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        b_rx.try_recv().is_err(),
        "nothing of theirs reached the core"
    );
}

/// RFC 5923: a request whose Via carries `alias` makes its connection the way to its sent-by
/// too, so a message for that address goes on it (nothing listens there); an alias naming
/// another address than the connection's own is not taken.
#[tokio::test]
async fn an_aliased_connection_carries_requests_to_the_peers_listening_address() {
    let specs = [ListenSpec {
        transport: Transport::Tcp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (bound, sender, mut rx, _) = bind(&specs, &TransportLimits::default()).await.unwrap();
    let mut peer = TcpStream::connect(bound[0].addr).await.unwrap();
    let aliased = OPTIONS.replace(
        "Via: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKt",
        "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKt;alias",
    );
    let elsewhere = OPTIONS.replace(
        "Via: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKt",
        "Via: SIP/2.0/TCP 127.0.0.9:5998;branch=z9hG4bKu;alias",
    );
    peer.write_all(format!("{aliased}{elsewhere}").as_bytes())
        .await
        .unwrap();
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
    }
    let to = |remote: &str| Peer {
        transport: Transport::Tcp,
        remote: remote.parse().unwrap(),
        local: bound[0].addr,
        conn: None,
    };
    sender.send(Transmit {
        peer: to("127.0.0.1:5999"),
        data: Bytes::from_static(b"OPTIONS sip:back SIP/2.0\r\n\r\n"),
    });
    let mut got = [0u8; 28];
    tokio::time::timeout(Duration::from_secs(2), peer.read_exact(&mut got))
        .await
        .expect("it came on the aliased connection")
        .unwrap();
    assert_eq!(&got, b"OPTIONS sip:back SIP/2.0\r\n\r\n");
    // 127.0.0.9 was not this peer's to alias: a connection would be opened (and fail), not
    // this one used.
    sender.send(Transmit {
        peer: to("127.0.0.9:5998"),
        data: Bytes::from_static(b"OPTIONS sip:elsewhere SIP/2.0\r\n\r\n"),
    });
    let mut more = [0u8; 64];
    let nothing = tokio::time::timeout(Duration::from_millis(300), peer.read(&mut more)).await;
    assert!(
        nothing.is_err(),
        "nothing else on this connection: {nothing:?} {:?}",
        String::from_utf8_lossy(&more)
    );

    // A connection has one alias, the last asked for: one naming port 5997 replaces 5999,
    // which is then reached by a connection of its own (refused: nothing listens there).
    let moved = aliased.replace(
        "127.0.0.1:5999;branch=z9hG4bKt",
        "127.0.0.1:5997;branch=z9hG4bKv",
    );
    peer.write_all(moved.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    sender.send(Transmit {
        peer: to("127.0.0.1:5999"),
        data: Bytes::from_static(b"OPTIONS sip:old SIP/2.0\r\n\r\n"),
    });
    let nothing = tokio::time::timeout(Duration::from_millis(300), peer.read(&mut more)).await;
    assert!(nothing.is_err(), "the old alias is gone: {nothing:?}");
    sender.send(Transmit {
        peer: to("127.0.0.1:5997"),
        data: Bytes::from_static(b"OPTIONS sip:new SIP/2.0\r\n\r\n"),
    });
    let mut got = [0u8; 27];
    tokio::time::timeout(Duration::from_secs(2), peer.read_exact(&mut got))
        .await
        .expect("the new alias is this connection")
        .unwrap();
    assert_eq!(&got, b"OPTIONS sip:new SIP/2.0\r\n\r\n");
}

/// A name given for an address (a `sips:` URI dialed by host name) is what the certificate
/// there must carry, instead of the address: a server whose certificate names only
/// `pbx.test` is refused by address and reached by that name.
#[tokio::test]
async fn a_tls_peer_dialed_by_name_is_checked_by_that_name() {
    let (ca, server) = issued(&["pbx.test"]);
    let (b, b_sender, mut b_rx, _) = tls_transport(&ca, "127.0.0.1").await;
    b_sender.set_tls_server(server);
    // a checks every TLS peer by its IP address unless told a name.
    let specs = [ListenSpec {
        transport: Transport::Tls,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (a_bound, a_sender, _a_rx, a_stats) =
        bind(&specs, &TransportLimits::default()).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    a_sender.set_tls_peers(Box::new(move |addr| {
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        Some((name, client.clone()))
    }));
    let to_b = Peer {
        transport: Transport::Tls,
        remote: b,
        local: a_bound[0].addr,
        conn: None,
    };
    let wait = Duration::from_secs(5);
    a_sender.send(Transmit {
        peer: to_b,
        data: Bytes::from_static(OPTIONS.as_bytes()),
    });
    let deadline = tokio::time::Instant::now() + wait;
    while a_stats.tls_failed.load(Ordering::Relaxed) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "checked by address");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_sender.name_tls_peer(
        b,
        rustls::pki_types::ServerName::try_from("pbx.test").unwrap(),
    );
    a_sender.send(Transmit {
        peer: to_b,
        data: Bytes::from_static(OPTIONS.as_bytes()),
    });
    let got = tokio::time::timeout(wait, b_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.peer.transport, Transport::Tls);
}

/// A phone's connection that authenticated is a tenant's, not a trunk's: a login makes at
/// most `tcp_max_per_login` of its connections tenants' (the rest stay strangers'), tenants
/// never use the reserve, and a trunk at the cap evicts every stranger (idlest first) before
/// it evicts a tenant.
#[tokio::test]
async fn registered_phones_are_tenants_bounded_per_login_and_evicted_after_strangers() {
    let limits = TransportLimits {
        tcp_max_connections: 6,
        tcp_reserved: 2,
        tcp_max_per_ip: 10,
        tcp_max_per_login: 2,
        tcp_max_per_account: 10,
        ..TransportLimits::default()
    };
    let specs = [ListenSpec {
        transport: Transport::Tcp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (bound, sender, mut rx, stats) = bind(&specs, &limits).await.unwrap();
    let trunk: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    sender.set_trusted_sources(Box::new(move |ip| ip == trunk));
    let to = bound[0].addr;

    // One login registers on four connections, one after the other (the last is the least
    // idle); the REGISTER of each authenticated.
    let mut phones = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.3", to).await;
        s.write_all(OPTIONS.as_bytes()).await.unwrap();
        let inbound = rx.recv().await.unwrap();
        sender.tenant(inbound.peer.conn.unwrap(), "alice", Some("AC1"));
        phones.push(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stats.tenants_refused.load(Ordering::Relaxed),
        2,
        "two of the login's four connections stay strangers'"
    );
    let mut fifth = connect_from("127.0.0.4", to).await;
    assert!(
        closed(&mut fifth, Duration::from_millis(500)).await,
        "the reserve is the trunks', not the tenants'"
    );
    // The trunk takes the reserve, then evicts the two strangers (the login's third and
    // fourth connections), and only then the idlest tenant (its first).
    let mut trunks = Vec::new();
    for _ in 0..4 {
        trunks.push(connect_from("127.0.0.2", to).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed(&mut phones[2], Duration::from_millis(500)).await);
    assert!(closed(&mut phones[3], Duration::from_millis(500)).await);
    assert!(!closed(&mut phones[0], Duration::from_millis(200)).await);
    assert!(!closed(&mut phones[1], Duration::from_millis(100)).await);
    trunks.push(connect_from("127.0.0.2", to).await);
    assert!(
        closed(&mut phones[0], Duration::from_millis(500)).await,
        "with no stranger left, the idlest tenant makes way"
    );
    assert!(!closed(&mut phones[1], Duration::from_millis(200)).await);
    for t in &mut trunks {
        assert!(!closed(t, Duration::from_millis(50)).await);
    }
}

/// The per-address cap counts an IPv6 /64 as one address.
#[tokio::test]
async fn the_per_address_cap_counts_an_ipv6_slash_64_as_one_address() {
    let limits = TransportLimits {
        tcp_max_per_ip: 8,
        ..TransportLimits::default()
    };
    let specs = [ListenSpec {
        transport: Transport::Tcp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (_bound, sender, _rx, _stats) = bind(&specs, &limits).await.unwrap();
    let tcp = &sender.tcp;
    let from = |i: u16| SocketAddr::new(format!("2001:db8:7:7::{i:x}").parse().unwrap(), 40000 + i);
    for i in 1..=40u16 {
        if !tcp.admits(from(i), false) {
            assert_eq!(i, 9, "refused only past the cap of the /64");
            break;
        }
        let (tx, _) = mpsc::channel(1);
        let id = tcp.register(Transport::Tcp, from(i));
        let conn = tcp.conn(tx, from(i), false);
        tcp.by_id.lock().unwrap().insert(id, conn);
        assert!(i <= 8, "connection {i} of one /64 admitted");
    }
    let other = SocketAddr::new("2001:db8:7:8::1".parse().unwrap(), 5060);
    assert!(tcp.admits(other, false), "the next /64 is another address");
}

/// A peer that sends (keeping its connection from idling out) but never reads what it is sent
/// loses its connection once a write has waited `tcp_send_timeout`: its writer does not wait
/// for ever, and the messages for it do not pile up.
#[tokio::test]
async fn a_tcp_peer_that_never_reads_is_closed_after_the_send_timeout() {
    let limits = TransportLimits {
        tcp_send_timeout: Duration::from_millis(500),
        ..TransportLimits::default()
    };
    let specs = [ListenSpec {
        transport: Transport::Tcp,
        addr: "127.0.0.1:0".parse().unwrap(),
    }];
    let (bound, sender, mut rx, _stats) = bind(&specs, &limits).await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut peer = socket.connect(bound[0].addr).await.unwrap();
    peer.write_all(OPTIONS.as_bytes()).await.unwrap();
    let from = rx.recv().await.unwrap().peer;
    // Far more than the socket buffers hold, in messages of 60 KB.
    let big = Bytes::from(vec![b'x'; 60_000]);
    let started = std::time::Instant::now();
    let closed = loop {
        for _ in 0..64 {
            sender.send(Transmit {
                peer: from,
                data: big.clone(),
            });
        }
        // Keep-alives: the peer is not idle, only deaf.
        if peer.write_all(b"\r\n\r\n").await.is_err() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(5) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(closed, "the deaf peer's connection is still open");
    assert!(started.elapsed() >= Duration::from_millis(500));
}
