//! The tokio side of the transports: UDP sockets and TCP and TLS connections that frame and
//! parse messages and hand them to the core, and a sender the core uses without awaiting.
//!
//! TLS is TCP with a rustls session in between: the same caps, idle rules and framing; the
//! server's certificate may be replaced while running (new handshakes take the new one), and
//! each peer we connect to is checked against the name and roots the core gives for it.
//!
//! Requests that cannot be parsed but carry a Via are answered here, statelessly, with the
//! status the parser chose (400, 416, 501, 505) and a Warning naming the problem.

use super::{ConnId, Peer, Transmit, Transport};
use crate::message::wire::{StreamFrame, StreamFramer};
use crate::message::{ParseError, Response, SipMessage, reason_phrase};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

mod ws;

/// A parsed message and where it came from.
#[derive(Debug)]
pub struct Inbound {
    pub message: SipMessage,
    pub peer: Peer,
}

/// Counters kept by the transports (read by /metrics).
#[derive(Debug, Default)]
pub struct TransportStats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    /// Dropped because the core's queue was full or a socket refused the send.
    pub dropped: AtomicU64,
    /// TCP connections closed at accept: over the total or per-address cap.
    pub refused: AtomicU64,
    /// TLS handshakes that failed or timed out, either way (a bad certificate, a wrong name,
    /// a peer that speaks no TLS).
    pub tls_failed: AtomicU64,
}

/// Where the transports listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Sends messages for the core: synchronous and non-blocking, so the core never awaits a socket.
#[derive(Clone)]
pub struct Sender {
    udp: Arc<Vec<Arc<UdpSocket>>>,
    tcp: Arc<TcpConnections>,
    stats: Arc<TransportStats>,
}

/// A connection inside this process (see [`Sender::open_local`]).
pub struct LocalLink {
    /// The link as the core sees it: where its messages come from and go to.
    pub peer: Peer,
    /// What the core sends on the link, one message each.
    pub from_core: mpsc::Receiver<Bytes>,
    conns: Arc<TcpConnections>,
    /// Unused: a message handed over whole needs no error reply.
    replies: mpsc::Sender<Bytes>,
}

impl LocalLink {
    /// Hands the core a message from the link (waiting for room in its queue); `false` once
    /// the core is gone.
    pub async fn send(&self, message: SipMessage) -> bool {
        self.conns
            .deliver(Ok(message), self.peer, &self.replies)
            .await
    }
}

impl Drop for LocalLink {
    fn drop(&mut self) {
        if let Some(id) = self.peer.conn {
            self.conns.forget(id, self.peer);
        }
    }
}

/// Bounds on what peers can make the transports hold.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    /// Parsed messages waiting for the core; beyond it datagrams are dropped and TCP reads wait.
    pub queue: usize,
    /// TCP connections open at once, accepted and opened together; more are closed at accept.
    pub tcp_max_connections: usize,
    /// TCP connections accepted from one IP address.
    pub tcp_max_per_ip: usize,
    /// A TCP connection that sends nothing for this long is closed.
    pub tcp_idle: Duration,
    /// A connection from a stranger (neither a trusted source nor authenticated) that has not
    /// sent a whole SIP message this long after connecting is closed.
    pub tcp_first_message: Duration,
    /// Connections only trusted peers may use: strangers are refused once
    /// `tcp_max_connections - tcp_reserved` are open, and a trusted peer arriving at the cap
    /// closes the stranger's connection idle longest.
    pub tcp_reserved: usize,
    /// Messages waiting to be written to one TCP connection; a peer that does not read loses
    /// what does not fit (counted as dropped) rather than growing the queue.
    pub tcp_send_queue: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            queue: 8192,
            tcp_max_connections: 4096,
            tcp_max_per_ip: 64,
            // Phones behind NAT send keep-alives every 30–120 s (RFC 5626 §4.4.1).
            tcp_idle: Duration::from_secs(300),
            tcp_first_message: Duration::from_secs(10),
            tcp_reserved: 512,
            tcp_send_queue: 256,
        }
    }
}

/// Whether a source address is trusted (a trunk's): set by the core from its routing.
pub type TrustedSources = Box<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>;

/// How to open a TLS connection to an address: the name its certificate must carry and the
/// client configuration (roots, and our certificate where the peer wants one); `None` for an
/// address the core does not know how to reach securely, whose messages are dropped.
pub type TlsPeers = Box<
    dyn Fn(
            SocketAddr,
        ) -> Option<(
            rustls::pki_types::ServerName<'static>,
            Arc<rustls::ClientConfig>,
        )> + Send
        + Sync,
>;

/// One open TCP connection.
struct Conn {
    tx: mpsc::Sender<Bytes>,
    remote: SocketAddr,
    /// From a trusted source, opened by us, or authenticated (a REGISTER that passed): it
    /// may use the reserve and is never evicted.
    trusted: Arc<std::sync::atomic::AtomicBool>,
    /// When it last delivered something (ms since `TcpConnections::epoch`).
    last_rx: Arc<AtomicU64>,
    /// Closes the connection (a trusted peer needed its place).
    close: Arc<tokio::sync::Notify>,
}

struct TcpConnections {
    next_id: AtomicU64,
    by_id: Mutex<HashMap<ConnId, Conn>>,
    trusted_sources: std::sync::RwLock<TrustedSources>,
    epoch: std::time::Instant,
    /// The connection to use for a transport and address: the last opened or accepted.
    by_remote: Mutex<HashMap<(Transport, SocketAddr), ConnId>>,
    /// Connections that are also the way to another address of their peer's (RFC 5923):
    /// one each, the last a request asked for, so a peer varying its Via cannot grow the map.
    aliased: Mutex<HashMap<ConnId, (Transport, SocketAddr)>>,
    /// The certificate TLS listeners present; none until the core sets one (handshakes fail).
    tls_server: std::sync::RwLock<Option<Arc<rustls::ServerConfig>>>,
    tls_peers: std::sync::RwLock<TlsPeers>,
    /// Names the core learnt for addresses it sends to over TLS (a `sips:` URI's host): they
    /// replace the address as the name a certificate must carry. At most [`MAX_TLS_NAMES`].
    tls_names: Mutex<HashMap<SocketAddr, rustls::pki_types::ServerName<'static>>>,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
    limits: TransportLimits,
}

/// Binds every listener, starts their receive tasks, and returns the bound addresses (port 0
/// resolved), the sender, and the queue of parsed messages.
pub async fn bind(
    specs: &[ListenSpec],
    limits: &TransportLimits,
) -> io::Result<(
    Vec<ListenSpec>,
    Sender,
    mpsc::Receiver<Inbound>,
    Arc<TransportStats>,
)> {
    let (tx, rx) = mpsc::channel(limits.queue.max(1));
    let stats = Arc::new(TransportStats::default());
    let tcp = Arc::new(TcpConnections {
        next_id: AtomicU64::new(1),
        by_id: Mutex::new(HashMap::new()),
        trusted_sources: std::sync::RwLock::new(Box::new(|_| false)),
        epoch: std::time::Instant::now(),
        by_remote: Mutex::new(HashMap::new()),
        aliased: Mutex::default(),
        tls_server: std::sync::RwLock::new(None),
        tls_peers: std::sync::RwLock::new(Box::new(|_| None)),
        tls_names: Mutex::default(),
        inbound: tx.clone(),
        stats: stats.clone(),
        limits: *limits,
    });
    let mut bound = Vec::new();
    let mut udp = Vec::new();
    for spec in specs {
        match spec.transport {
            Transport::Udp => {
                let socket = Arc::new(bind_udp(spec.addr)?);
                let local = socket.local_addr()?;
                bound.push(ListenSpec {
                    transport: Transport::Udp,
                    addr: local,
                });
                udp.push(socket.clone());
                tokio::spawn(udp_receive(socket, local, tx.clone(), stats.clone()));
            }
            Transport::Tcp | Transport::Tls | Transport::Ws | Transport::Wss => {
                let listener = TcpListener::bind(spec.addr).await?;
                let local = listener.local_addr()?;
                bound.push(ListenSpec {
                    transport: spec.transport,
                    addr: local,
                });
                tokio::spawn(tcp_accept(listener, spec.transport, local, tcp.clone()));
            }
        }
    }
    Ok((
        bound,
        Sender {
            udp: Arc::new(udp),
            tcp,
            stats: stats.clone(),
        },
        rx,
        stats,
    ))
}

/// How long opening a connection (and its TLS handshake) may take before its messages are
/// dropped (the transaction's timers then report the failure).
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Connects to `remote` from the listener's address (`local`, port left to the kernel): the
/// address our Via and Contact advertise, and the one a peer's access list names, where the
/// kernel would choose by route (127.0.0.1 for every loopback address).
async fn connect_from(local: SocketAddr, remote: SocketAddr) -> io::Result<TcpStream> {
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
const MAX_TLS_NAMES: usize = 1024;

/// A connection we opened, before it is served.
enum Opened {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

/// Socket buffer asked for on SIP UDP sockets. The default (about 200 KB, 100–150 loopback
/// datagrams) lasts only tens of milliseconds at a thousand calls per second, and one thread
/// reads the socket; a datagram dropped there becomes a retransmission storm.
const UDP_BUFFER_BYTES: libc::c_int = 8 << 20;

/// A UDP socket with large buffers: SIP bursts at high call rates overflow the default.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let std_sock = std::net::UdpSocket::bind(addr)?;
    std_sock.set_nonblocking(true)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&std_sock);
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // The FORCE variants pass net.core.[rw]mem_max when privileged; otherwise the plain
        // option gets as much as the limit allows.
        if set_int_option(fd, force, UDP_BUFFER_BYTES).is_err() {
            let _ = set_int_option(fd, plain, UDP_BUFFER_BYTES);
        }
    }
    tracing::debug!(%addr, rcvbuf = get_int_option(fd, libc::SO_RCVBUF).unwrap_or(0), "SIP UDP socket buffers");
    UdpSocket::from_std(std_sock)
}

fn set_int_option(fd: std::os::fd::RawFd, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int_option(fd: std::os::fd::RawFd, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `value`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Sender {
    /// Which source addresses are trusted (trunks'): their TCP connections may use the
    /// reserve, are not capped per address, and displace strangers at the cap.
    pub fn set_trusted_sources(&self, trusted: TrustedSources) {
        *self.tcp.trusted_sources.write().expect("not poisoned") = trusted;
    }

    /// The certificate and key TLS listeners present from now on (at start, and on reload:
    /// connections already open keep theirs).
    pub fn set_tls_server(&self, config: Arc<rustls::ServerConfig>) {
        *self.tcp.tls_server.write().expect("not poisoned") = Some(config);
    }

    /// The name the certificate at `addr` must carry from now on (the host of a `sips:` or
    /// `transport=tls` URI dialed by name), instead of what [`TlsPeers`] says.
    pub fn name_tls_peer(&self, addr: SocketAddr, name: rustls::pki_types::ServerName<'static>) {
        let mut names = self.tcp.tls_names.lock().expect("not poisoned");
        if names.len() >= MAX_TLS_NAMES && !names.contains_key(&addr) {
            // A bound, not a cache policy: names are set just before each use.
            names.clear();
        }
        names.insert(addr, name);
    }

    /// How TLS connections we open are checked (see [`TlsPeers`]).
    pub fn set_tls_peers(&self, peers: TlsPeers) {
        *self.tcp.tls_peers.write().expect("not poisoned") = peers;
    }

    /// The connection carried an authenticated request (a registered phone's): it is trusted
    /// from now on.
    pub fn trust(&self, conn: ConnId) {
        self.tcp.trust(conn);
    }

    /// A connection inside this process, for a component that speaks SIP to the core as a
    /// peer would (a browser gateway): what the core sends to `link.peer` arrives on
    /// `link.from_core`, and [`LocalLink::send`] hands the core a message from it. Trusted
    /// like a connection we opened; closed when the link is dropped.
    pub fn open_local(
        &self,
        transport: Transport,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> LocalLink {
        let id = self.tcp.register(transport, remote);
        let (tx, rx) = mpsc::channel(self.tcp.limits.tcp_send_queue.max(1));
        let conn = self.tcp.conn(tx, remote, true);
        self.tcp
            .by_id
            .lock()
            .expect("not poisoned")
            .insert(id, conn);
        let (replies, _) = mpsc::channel(1);
        LocalLink {
            peer: Peer {
                transport,
                remote,
                local,
                conn: Some(id),
            },
            from_core: rx,
            conns: self.tcp.clone(),
            replies,
        }
    }

    pub fn send(&self, t: Transmit) {
        match t.peer.transport {
            Transport::Udp => {
                let socket = self
                    .udp
                    .iter()
                    .find(|s| s.local_addr().ok() == Some(t.peer.local))
                    .or_else(|| self.udp.first());
                let sent = socket.map(|s| s.try_send_to(&t.data, t.peer.remote));
                if !matches!(sent, Some(Ok(_))) {
                    // Retransmission timers recover a dropped request or response.
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => self.tcp.send(t),
        }
    }
}

async fn udp_receive(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, remote) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP port unreachable and the like surface here on Linux; keep serving.
            Err(_) => continue,
        };
        stats.received.fetch_add(1, Ordering::Relaxed);
        let peer = Peer {
            transport: Transport::Udp,
            remote,
            local,
            conn: None,
        };
        match SipMessage::parse(&buf[..n]) {
            Ok(message) => {
                if inbound.try_send(Inbound { message, peer }).is_err() {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = error_reply(&e) {
                    let _ = socket.try_send_to(&reply, remote);
                }
                tracing::debug!(%remote, error = %e.reason, "unparseable SIP datagram");
            }
        }
    }
}

/// The stateless answer to a request we could not parse.
fn error_reply(e: &ParseError) -> Option<Bytes> {
    let (code, headers) = e.reply.as_ref()?;
    let mut headers = headers.clone();
    if let Some(to) = headers.first_mut("To")
        && crate::message::headers::tag_of(to).is_none()
    {
        *to = format!("{to};tag={:08x}", rand::random::<u32>());
    }
    headers.push(
        "Warning",
        format!("399 switchboard \"{}\"", e.reason.replace('"', "'")),
    );
    Some(
        Response {
            code: *code,
            reason: reason_phrase(*code).to_owned(),
            headers,
            body: Bytes::new(),
        }
        .encode(),
    )
}

async fn tcp_accept(
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
    /// that has been idle longest.
    fn admits(&self, remote: SocketAddr, trusted: bool) -> bool {
        let by_id = self.by_id.lock().expect("not poisoned");
        let max = self.limits.tcp_max_connections;
        if trusted {
            if by_id.len() < max {
                return true;
            }
            let idlest = (by_id.values())
                .filter(|c| !c.trusted.load(Ordering::Relaxed))
                .min_by_key(|c| c.last_rx.load(Ordering::Relaxed));
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
        let from_ip = (by_id.values())
            .filter(|c| c.remote.ip() == remote.ip())
            .count();
        from_ip < self.limits.tcp_max_per_ip
    }

    fn register(&self, transport: Transport, remote: SocketAddr) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.by_remote
            .lock()
            .expect("not poisoned")
            .insert((transport, remote), id);
        id
    }

    fn send(self: &Arc<Self>, t: Transmit) {
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

    fn conn(&self, tx: mpsc::Sender<Bytes>, remote: SocketAddr, trusted: bool) -> Conn {
        Conn {
            tx,
            remote,
            trusted: Arc::new(std::sync::atomic::AtomicBool::new(trusted)),
            last_rx: Arc::new(AtomicU64::new(self.now_ms())),
            close: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Serves an accepted connection (`peer.conn` registered), after its TLS handshake for a
    /// TLS listener: bounded by the first-message time for a stranger, the idle time for a
    /// trusted peer.
    fn run(self: Arc<Self>, peer: Peer, stream: TcpStream, trusted: bool) {
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
    fn trust(&self, conn: ConnId) {
        if let Some(c) = self.by_id.lock().expect("not poisoned").get(&conn) {
            c.trusted.store(true, Ordering::Relaxed);
        }
    }

    /// What a connection's reader shares with the rest: whether it is trusted, when it last
    /// delivered something, and how it is told to close; `None` once it is gone.
    fn handles(
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
    async fn serve<S>(&self, peer: Peer, stream: S, mut outgoing: mpsc::Receiver<Bytes>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let Some(id) = peer.conn else { return };
        let (mut reader, mut writer) = tokio::io::split(stream);
        // Pongs and error replies for a peer that pings without reading are dropped when full.
        let (pong_tx, mut pong_rx) = mpsc::channel::<Bytes>(16);
        let write = async move {
            loop {
                let data = tokio::select! {
                    Some(d) = outgoing.recv() => d,
                    Some(d) = pong_rx.recv() => d,
                    else => break,
                };
                // A TLS writer holds what it encrypted until flushed.
                if writer.write_all(&data).await.is_err() || writer.flush().await.is_err() {
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
        match parsed {
            Ok(message) => {
                self.alias(&message, peer);
                self.inbound.send(Inbound { message, peer }).await.is_ok()
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
    fn alias(&self, message: &SipMessage, peer: Peer) {
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

#[cfg(test)]
mod tests;
