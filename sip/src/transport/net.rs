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

mod tcp;
mod udp;
mod ws;

use tcp::{MAX_TLS_NAMES, TcpConnections, tcp_accept};
use udp::{bind_udp, udp_receive};
pub use ws::read_sip_frames;

/// A parsed message and where it came from.
#[derive(Debug)]
pub struct Inbound {
    pub message: SipMessage,
    pub peer: Peer,
    /// When the transport took it off its socket: how long it then waits for the core is
    /// the core's load (overload control).
    pub received: std::time::Instant,
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
    /// Authenticated REGISTERs on a connection past its login's (or account's) bound of
    /// tenants' connections: the connection stayed a stranger's.
    pub tenants_refused: AtomicU64,
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
    /// Connections only trusted peers (trunks) may use: strangers and tenants are refused once
    /// `tcp_max_connections - tcp_reserved` of theirs are open, and a trusted peer arriving at
    /// the cap closes the stranger's connection idle longest (a tenant's when no stranger has
    /// one).
    pub tcp_reserved: usize,
    /// Connections one SIP login's authenticated REGISTERs make tenants' ([`Sender::tenant`]):
    /// past this its further connections stay strangers'.
    pub tcp_max_per_login: usize,
    /// Likewise for all the logins of one account.
    pub tcp_max_per_account: usize,
    /// Messages waiting to be written to one TCP connection; a peer that does not read loses
    /// what does not fit (counted as dropped) rather than growing the queue.
    pub tcp_send_queue: usize,
    /// How long one write to a stream connection may wait for the peer to read: then the
    /// connection is closed.
    pub tcp_send_timeout: Duration,
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
            tcp_max_per_login: 8,
            tcp_max_per_account: 512,
            tcp_send_queue: 256,
            tcp_send_timeout: Duration::from_secs(10),
        }
    }
}

/// The queues of a node's call-core shards, as the receive tasks fill them: a message goes to
/// its shard's ([`crate::shard::shard_of`]; a lone shard's is the only one).
#[derive(Clone)]
pub(super) struct Deliver(Arc<[mpsc::Sender<Inbound>]>);

impl Deliver {
    /// The queue `message` goes to (a lone shard's without reading the message: `shard_of`
    /// answers 0 at once). There is at least one: [`bind_sharded`] makes them.
    pub(super) fn queue(&self, message: &SipMessage) -> &mpsc::Sender<Inbound> {
        let count = u16::try_from(self.0.len()).unwrap_or(u16::MAX);
        &self.0[usize::from(crate::shard::shard_of(message, count))]
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
    let (bound, sender, mut queues, stats) = bind_sharded(specs, limits, 1).await?;
    let queue = queues.pop().expect("one shard, one queue");
    Ok((bound, sender, queue, stats))
}

/// [`bind`] for a node of `shards` call-core shards: one queue of parsed messages per shard,
/// each message put by the receive task that parsed it straight into the queue of the shard
/// it belongs to ([`crate::shard::shard_of`]) — no task between the transports and the cores.
pub async fn bind_sharded(
    specs: &[ListenSpec],
    limits: &TransportLimits,
    shards: u16,
) -> io::Result<(
    Vec<ListenSpec>,
    Sender,
    Vec<mpsc::Receiver<Inbound>>,
    Arc<TransportStats>,
)> {
    let (queues, receivers): (Vec<_>, Vec<_>) = (0..shards.max(1))
        .map(|_| mpsc::channel(limits.queue.max(1)))
        .unzip();
    let tx = Deliver(queues.into());
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
        receivers,
        stats,
    ))
}

impl Sender {
    /// Which source addresses are trusted (trunks'): their TCP connections may use the
    /// reserve, are not capped per address, and displace strangers and tenants at the cap.
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

    /// The connection carried a REGISTER that authenticated as `login` (of `account`): a
    /// registered phone's, a tenant's. It is no longer closed as a silent stranger's and is
    /// evicted only after strangers', but it never uses the trunks' reserve; a login (and an
    /// account) has at most [`TransportLimits::tcp_max_per_login`]
    /// ([`TransportLimits::tcp_max_per_account`]) such connections, and the rest stay
    /// strangers'. A trusted connection stays trusted.
    pub fn tenant(&self, conn: ConnId, login: &str, account: Option<&str>) {
        self.tcp.tenant(conn, login, account);
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

#[cfg(test)]
mod tests;
