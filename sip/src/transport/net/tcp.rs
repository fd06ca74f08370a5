//! TCP, TLS and WebSocket connections: the caps on them, opening them toward peers (the
//! listener's address, a deadline, the peer's certificate checked), and serving each one:
//! framing, parsing, aliasing (RFC 5923) and writing what the core sends.

use super::*;

/// One open TCP connection.
pub(super) struct Conn {
    pub(super) tx: mpsc::Sender<Bytes>,
    pub(super) remote: SocketAddr,
    /// From a trusted source (a trunk's), opened by us, or with a client certificate that
    /// passed: it may use the reserve and is never evicted.
    pub(super) trusted: Arc<std::sync::atomic::AtomicBool>,
    /// The login (and its account) whose authenticated REGISTER it carried: a tenant's, evicted
    /// after strangers' but like them, and never in the reserve.
    pub(super) tenant: Option<(Arc<str>, Option<Arc<str>>)>,
    /// When it last delivered something (ms since `TcpConnections::epoch`).
    pub(super) last_rx: Arc<AtomicU64>,
    /// Closes the connection (a trusted peer needed its place).
    pub(super) close: Arc<tokio::sync::Notify>,
}

pub(super) struct TcpConnections {
    pub(super) next_id: AtomicU64,
    pub(super) by_id: Mutex<HashMap<ConnId, Conn>>,
    pub(super) trusted_sources: std::sync::RwLock<TrustedSources>,
    pub(super) epoch: std::time::Instant,
    /// The connection to use for a transport and address: the last opened or accepted.
    pub(super) by_remote: Mutex<HashMap<(Transport, SocketAddr), ConnId>>,
    /// Connections that are also the way to another address of their peer's (RFC 5923):
    /// one each, the last a request asked for, so a peer varying its Via cannot grow the map.
    pub(super) aliased: Mutex<HashMap<ConnId, (Transport, SocketAddr)>>,
    /// The certificate TLS listeners present; none until the core sets one (handshakes fail).
    pub(super) tls_server: std::sync::RwLock<Option<Arc<rustls::ServerConfig>>>,
    pub(super) tls_peers: std::sync::RwLock<TlsPeers>,
    /// Names the core learnt for addresses it sends to over TLS (a `sips:` URI's host): they
    /// replace the address as the name a certificate must carry. At most [`MAX_TLS_NAMES`].
    pub(super) tls_names: Mutex<HashMap<SocketAddr, rustls::pki_types::ServerName<'static>>>,
    pub(super) inbound: Deliver,
    pub(super) stats: Arc<TransportStats>,
    pub(super) limits: TransportLimits,
}

/// How long opening a connection (and its TLS handshake) may take before its messages are
/// dropped (the transaction's timers then report the failure).
pub(super) const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Connects to `remote` from the listener's address (`local`, port left to the kernel): the
/// address our Via and Contact advertise, and the one a peer's access list names, where the
/// kernel would choose by route (127.0.0.1 for every loopback address).
pub(super) async fn connect_from(local: SocketAddr, remote: SocketAddr) -> io::Result<TcpStream> {
    let socket = match remote {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if !local.ip().is_unspecified() && local.is_ipv4() == remote.is_ipv4() {
        socket.bind(SocketAddr::new(local.ip(), 0))?;
    }
    socket.connect(remote).await
}

/// Names kept for addresses dialed by name over TLS.
pub(super) const MAX_TLS_NAMES: usize = 1024;

/// A connection we opened, before it is served.
pub(super) enum Opened {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

pub(super) async fn tcp_accept(
    listener: TcpListener,
    transport: Transport,
    local: SocketAddr,
    conns: Arc<TcpConnections>,
) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let trusted = (conns.trusted_sources.read().expect("not poisoned"))(remote.ip());
        if !conns.admits(remote, trusted) {
            conns.stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            transport,
            remote,
            local,
            conn: Some(conns.register(transport, remote)),
        };
        conns.clone().run(peer, stream, trusted);
    }
}

impl TcpConnections {
    /// Whether a connection from `remote` fits under the caps. A trusted peer is not capped
    /// per address and may use the reserve; at the cap it closes the stranger's connection
    /// that has been idle longest, or the tenant's when no stranger has one. Others (strangers
    /// and tenants alike) share what the reserve leaves, at most `tcp_max_per_ip` from one
    /// address (IPv6: one /64).
    pub(super) fn admits(&self, remote: SocketAddr, trusted: bool) -> bool {
        let by_id = self.by_id.lock().expect("not poisoned");
        let max = self.limits.tcp_max_connections;
        if trusted {
            if by_id.len() < max {
                return true;
            }
            let idlest = (by_id.values())
                .filter(|c| !c.trusted.load(Ordering::Relaxed))
                .min_by_key(|c| (c.tenant.is_some(), c.last_rx.load(Ordering::Relaxed)));
            return match idlest {
                Some(c) => {
                    // Its task forgets it when it closes; until then the cap is passed by one.
                    c.close.notify_one();
                    true
                }
                None => false,
            };
        }
        let strangers = (by_id.values())
            .filter(|c| !c.trusted.load(Ordering::Relaxed))
            .count();
        if strangers >= max.saturating_sub(self.limits.tcp_reserved) || by_id.len() >= max {
            return false;
        }
        let key = crate::transport::address_key(remote.ip());
        let from_ip = (by_id.values())
            .filter(|c| crate::transport::address_key(c.remote.ip()) == key)
            .count();
        from_ip < self.limits.tcp_max_per_ip
    }

    /// The connection carried an authenticated REGISTER of `login` (see [`Sender::tenant`]).
    pub(super) fn tenant(&self, conn: ConnId, login: &str, account: Option<&str>) {
        let mut by_id = self.by_id.lock().expect("not poisoned");
        let (mut of_login, mut of_account) = (0, 0);
        for (l, a) in by_id.values().filter_map(|c| c.tenant.as_ref()) {
            of_login += usize::from(&**l == login);
            of_account += usize::from(a.is_some() && a.as_deref() == account);
        }
        let Some(c) = by_id.get_mut(&conn) else {
            return;
        };
        if c.tenant.is_some() || c.trusted.load(Ordering::Relaxed) {
            return;
        }
        if of_login >= self.limits.tcp_max_per_login
            || (account.is_some() && of_account >= self.limits.tcp_max_per_account)
        {
            self.stats.tenants_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%login, remote = %c.remote, "a login's connections past its bound stay strangers'");
            return;
        }
        c.tenant = Some((login.into(), account.map(Into::into)));
    }

    pub(super) fn register(&self, transport: Transport, remote: SocketAddr) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.by_remote
            .lock()
            .expect("not poisoned")
            .insert((transport, remote), id);
        id
    }

    pub(super) fn send(self: &Arc<Self>, t: Transmit) {
        let existing = t.peer.conn.or_else(|| {
            self.by_remote
                .lock()
                .expect("not poisoned")
                .get(&(t.peer.transport, t.peer.remote))
                .copied()
        });
        if let Some(id) = existing
            && let Some(sender) = self
                .by_id
                .lock()
                .expect("not poisoned")
                .get(&id)
                .map(|c| c.tx.clone())
        {
            match sender.try_send(t.data.clone()) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        if self.by_id.lock().expect("not poisoned").len() >= self.limits.tcp_max_connections {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if matches!(t.peer.transport, Transport::Ws | Transport::Wss) {
            // A WebSocket peer (a browser, a softphone) is reached only on the connection it
            // opened: it has no listening address to connect to.
            tracing::debug!(remote = %t.peer.remote, "no WebSocket connection open: dropped");
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let tls = if t.peer.transport == Transport::Tls {
            let Some((name, config)) =
                (self.tls_peers.read().expect("not poisoned"))(t.peer.remote)
            else {
                tracing::warn!(remote = %t.peer.remote, "no TLS settings for this address: dropped");
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let named = self
                .tls_names
                .lock()
                .expect("not poisoned")
                .get(&t.peer.remote)
                .cloned();
            Some((named.unwrap_or(name), config))
        } else {
            None
        };
        // No usable connection: open one (ours, so trusted) and queue the message for it.
        let id = self.register(t.peer.transport, t.peer.remote);
        let (tx, rx) = mpsc::channel(self.limits.tcp_send_queue.max(1));
        let _ = tx.try_send(t.data);
        let conn = self.conn(tx, t.peer.remote, true);
        self.by_id.lock().expect("not poisoned").insert(id, conn);
        let conns = self.clone();
        let peer = Peer {
            conn: Some(id),
            ..t.peer
        };
        tokio::spawn(async move {
            let connect = async {
                let stream = connect_from(peer.local, peer.remote).await?;
                let _ = stream.set_nodelay(true);
                Ok::<_, io::Error>(stream)
            };
            // Connecting and the handshake together get as long as a connect alone did.
            let opened = tokio::time::timeout(CONNECT_WAIT, async {
                let stream = connect.await?;
                Ok::<_, io::Error>(match tls {
                    None => Opened::Tcp(stream),
                    Some((name, config)) => {
                        let tls = tokio_rustls::TlsConnector::from(config)
                            .connect(name, stream)
                            .await
                            .inspect_err(|e| {
                                conns.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(remote = %peer.remote, error = %e, "TLS handshake failed");
                            })?;
                        Opened::Tls(Box::new(tls.into()))
                    }
                })
            })
            .await;
            match opened {
                Ok(Ok(Opened::Tcp(stream))) => conns.serve(peer, stream, rx).await,
                Ok(Ok(Opened::Tls(stream))) => conns.serve(peer, *stream, rx).await,
                _ => {
                    conns.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    conns.forget(id, peer);
                }
            }
        });
    }

    pub(super) fn conn(&self, tx: mpsc::Sender<Bytes>, remote: SocketAddr, trusted: bool) -> Conn {
        Conn {
            tx,
            remote,
            trusted: Arc::new(std::sync::atomic::AtomicBool::new(trusted)),
            tenant: None,
            last_rx: Arc::new(AtomicU64::new(self.now_ms())),
            close: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Serves an accepted connection (`peer.conn` registered), after its TLS handshake for a
    /// TLS listener: bounded by the first-message time for a stranger, the idle time for a
    /// trusted peer.
    pub(super) fn run(self: Arc<Self>, peer: Peer, stream: TcpStream, trusted: bool) {
        let Some(id) = peer.conn else { return };
        let (tx, rx) = mpsc::channel(self.limits.tcp_send_queue.max(1));
        let conn = self.conn(tx, peer.remote, trusted);
        self.by_id.lock().expect("not poisoned").insert(id, conn);
        tokio::spawn(async move {
            if matches!(peer.transport, Transport::Tcp | Transport::Ws) {
                return match peer.transport {
                    Transport::Ws => self.serve_ws(peer, stream, rx, trusted).await,
                    _ => self.serve(peer, stream, rx).await,
                };
            }
            let config = self.tls_server.read().expect("not poisoned").clone();
            let handshake = async {
                let config = config.ok_or_else(|| io::Error::other("no certificate configured"))?;
                tokio_rustls::TlsAcceptor::from(config).accept(stream).await
            };
            let accepted = tokio::time::timeout(self.handshake_wait(trusted), handshake).await;
            if let Ok(Ok(tls)) = &accepted
                && tls.get_ref().1.peer_certificates().is_some()
            {
                // A client certificate passed the listener's verifier (mutual TLS): a
                // carrier's, as good as a trusted source.
                self.trust(id);
            }
            match accepted {
                Ok(Ok(tls)) if peer.transport == Transport::Wss => {
                    self.serve_ws(peer, tls, rx, trusted).await
                }
                Ok(Ok(tls)) => self.serve(peer, tls, rx).await,
                failed => {
                    self.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::debug!(remote = %peer.remote, %error, "TLS handshake failed");
                    self.forget(id, peer);
                }
            }
        });
    }

    /// The connection is a trusted peer's from now on: it may use the reserve and is never
    /// evicted.
    pub(super) fn trust(&self, conn: ConnId) {
        if let Some(c) = self.by_id.lock().expect("not poisoned").get(&conn) {
            c.trusted.store(true, Ordering::Relaxed);
        }
    }

    /// What a connection's reader shares with the rest: whether it is trusted, when it last
    /// delivered something, and how it is told to close; `None` once it is gone.
    pub(super) fn handles(
        &self,
        id: ConnId,
    ) -> Option<(
        Arc<std::sync::atomic::AtomicBool>,
        Arc<AtomicU64>,
        Arc<tokio::sync::Notify>,
    )> {
        let by_id = self.by_id.lock().expect("not poisoned");
        let c = by_id.get(&id)?;
        Some((c.trusted.clone(), c.last_rx.clone(), c.close.clone()))
    }

    /// How long an accepted connection's handshakes may take: a stranger's, its first-message
    /// time; a trusted peer's, the idle time.
    pub(super) fn handshake_wait(&self, trusted: bool) -> Duration {
        if trusted {
            self.limits.tcp_idle
        } else {
            self.limits.tcp_first_message
        }
    }

    /// Reads and frames messages until the peer closes or sends garbage; writes what is queued.
    pub(super) async fn serve<S>(&self, peer: Peer, stream: S, mut outgoing: mpsc::Receiver<Bytes>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let Some(id) = peer.conn else { return };
        let (mut reader, mut writer) = tokio::io::split(stream);
        // Pongs and error replies for a peer that pings without reading are dropped when full.
        let (pong_tx, mut pong_rx) = mpsc::channel::<Bytes>(16);
        let send_timeout = self.limits.tcp_send_timeout;
        let write = async move {
            loop {
                let data = tokio::select! {
                    Some(d) = outgoing.recv() => d,
                    Some(d) = pong_rx.recv() => d,
                    else => break,
                };
                // A TLS writer holds what it encrypted until flushed. A peer that does not read
                // loses its connection once a write has waited `tcp_send_timeout`.
                let written = tokio::time::timeout(send_timeout, async {
                    writer.write_all(&data).await?;
                    writer.flush().await
                });
                if !matches!(written.await, Ok(Ok(()))) {
                    break;
                }
            }
        };
        let Some((trusted, last_rx, close)) = self.handles(id) else {
            return;
        };
        let opened = tokio::time::Instant::now();
        let read = async {
            let mut buf = BytesMut::with_capacity(8192);
            let mut framer = StreamFramer::default();
            let mut messages = 0u64;
            loop {
                // A connection that sends nothing (not even a keep-alive) for this long is
                // closed, so idle or abandoned connections do not pile up; a stranger's that
                // has sent no whole message is closed sooner.
                let mut deadline = tokio::time::Instant::now() + self.limits.tcp_idle;
                if messages == 0 && !trusted.load(Ordering::Relaxed) {
                    deadline = deadline.min(opened + self.limits.tcp_first_message);
                }
                match tokio::time::timeout_at(deadline, reader.read_buf(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) | Err(_) => return,
                    Ok(Ok(_)) => last_rx.store(self.now_ms(), Ordering::Relaxed),
                }
                loop {
                    match framer.next(&buf) {
                        Ok(StreamFrame::Incomplete) => break,
                        Ok(StreamFrame::KeepAlive { consumed, pong }) => {
                            buf.advance(consumed);
                            if pong {
                                let _ = pong_tx.try_send(Bytes::from_static(b"\r\n"));
                            }
                        }
                        Ok(StreamFrame::Message(wire, used)) => {
                            buf.advance(used);
                            messages += 1;
                            let parsed = SipMessage::from_wire(wire);
                            if !self.deliver(parsed, peer, &pong_tx).await {
                                return;
                            }
                        }
                        // The stream cannot be re-synchronised after a framing error.
                        Err(_) => {
                            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = read => {}
            _ = write => {}
            _ = close.notified() => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.forget(id, peer);
    }

    /// Hands a message read from a connection to the core (waiting for room: a stream is
    /// read no faster than the core takes it), or answers what could not be parsed on the
    /// connection's `replies`; `false` once the core is gone.
    pub(super) async fn deliver(
        &self,
        parsed: Result<SipMessage, ParseError>,
        peer: Peer,
        replies: &mpsc::Sender<Bytes>,
    ) -> bool {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        // Stamped before waiting for room: that wait is the core's load too.
        let received = std::time::Instant::now();
        match parsed {
            Ok(message) => {
                self.alias(&message, peer);
                let inbound = Inbound {
                    message,
                    peer,
                    received,
                };
                let queue = self.inbound.queue(&inbound.message);
                queue.send(inbound).await.is_ok()
            }
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = error_reply(&e) {
                    let _ = replies.try_send(reply);
                }
                true
            }
        }
    }

    /// Connection reuse (RFC 5923): a request whose top Via carries `alias` makes this
    /// connection the way to its sent-by address too, so that requests to the peer's
    /// listening address (a trunk's) go on it rather than on a new connection. Only for a
    /// sent-by at the connection's own IP address: no one reroutes traffic meant for another
    /// host.
    pub(super) fn alias(&self, message: &SipMessage, peer: Peer) {
        let (SipMessage::Request(request), Some(id)) = (message, peer.conn) else {
            return;
        };
        let Some(via) = request.headers.top_via().filter(|v| v.alias) else {
            return;
        };
        let Ok(ip) = via.host.parse::<std::net::IpAddr>() else {
            return;
        };
        if ip != peer.remote.ip() {
            return;
        }
        let default = if peer.transport == Transport::Tls {
            5061
        } else {
            5060
        };
        let sent_by = SocketAddr::new(ip, via.port.unwrap_or(default));
        let key = (peer.transport, sent_by);
        let mut by_remote = self.by_remote.lock().expect("not poisoned");
        let previous = self.aliased.lock().expect("not poisoned").insert(id, key);
        if let Some(old) = previous.filter(|old| *old != key)
            && by_remote.get(&old) == Some(&id)
        {
            by_remote.remove(&old);
        }
        by_remote.insert(key, id);
    }

    pub(super) fn forget(&self, id: ConnId, peer: Peer) {
        self.by_id.lock().expect("not poisoned").remove(&id);
        let mut by_remote = self.by_remote.lock().expect("not poisoned");
        let key = (peer.transport, peer.remote);
        if by_remote.get(&key) == Some(&id) {
            by_remote.remove(&key);
        }
        if let Some(alias) = self.aliased.lock().expect("not poisoned").remove(&id)
            && by_remote.get(&alias) == Some(&id)
        {
            by_remote.remove(&alias);
        }
    }
}
