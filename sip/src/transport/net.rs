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
    /// The certificate TLS listeners present; none until the core sets one (handshakes fail).
    tls_server: std::sync::RwLock<Option<Arc<rustls::ServerConfig>>>,
    tls_peers: std::sync::RwLock<TlsPeers>,
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
        tls_server: std::sync::RwLock::new(None),
        tls_peers: std::sync::RwLock::new(Box::new(|_| None)),
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

    /// How TLS connections we open are checked (see [`TlsPeers`]).
    pub fn set_tls_peers(&self, peers: TlsPeers) {
        *self.tcp.tls_peers.write().expect("not poisoned") = peers;
    }

    /// The connection carried an authenticated request (a registered phone's): it is trusted
    /// from now on.
    pub fn trust(&self, conn: ConnId) {
        if let Some(c) = self.tcp.by_id.lock().expect("not poisoned").get(&conn) {
            c.trusted.store(true, Ordering::Relaxed);
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
            let Some(client) = (self.tls_peers.read().expect("not poisoned"))(t.peer.remote) else {
                tracing::warn!(remote = %t.peer.remote, "no TLS settings for this address: dropped");
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            };
            Some(client)
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
            match tokio::time::timeout(self.handshake_wait(trusted), handshake).await {
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
        let (trusted, last_rx, close) = {
            let by_id = self.by_id.lock().expect("not poisoned");
            match by_id.get(&id) {
                Some(c) => (c.trusted.clone(), c.last_rx.clone(), c.close.clone()),
                None => return,
            }
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
            Ok(message) => self.inbound.send(Inbound { message, peer }).await.is_ok(),
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = error_reply(&e) {
                    let _ = replies.try_send(reply);
                }
                true
            }
        }
    }

    pub(super) fn forget(&self, id: ConnId, peer: Peer) {
        self.by_id.lock().expect("not poisoned").remove(&id);
        let mut by_remote = self.by_remote.lock().expect("not poisoned");
        let key = (peer.transport, peer.remote);
        if by_remote.get(&key) == Some(&id) {
            by_remote.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
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
}
