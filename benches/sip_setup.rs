//! SIP call setups per second over UDP and over TLS, printed as a table. The release binary
//! routes each call from a caller this bench plays to a callee trunk it plays on UDP, which
//! answers at once; the caller ACKs and hangs up (INVITE, 200, ACK, BYE, 200 on each leg, an
//! RTP port pair taken and given back, a record stored). The caller's leg is UDP, or TLS on one
//! connection per caller kept for all its calls, or TLS on a fresh connection (TCP and TLS
//! handshakes) per call. `CALLERS` callers in parallel for `SECS` each; the server's CPU per call
//! from /proc.
//!
//!   cargo bench --bench sip_setup          knobs: SECS=5, CALLERS=8

mod support;

use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::BenchServer;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A port free for UDP and TCP on `ip` with the next two, below the kernel's ephemeral range: the callers of a
/// run before this one leave thousands of ephemeral ports in TIME_WAIT, where a listener
/// cannot bind.
fn free_port(ip: &str) -> u16 {
    let start = 20_000 + (std::process::id() % 5_000) as u16;
    (start..29_997)
        .chain(20_000..start)
        .find(|&port| {
            // This one and the next two: SIP over UDP, SIP over TLS, HTTP.
            let socks: Vec<_> = (port..port + 3)
                .map(|p| {
                    (
                        UdpSocket::bind((ip, p)),
                        std::net::TcpListener::bind((ip, p)),
                    )
                })
                .collect();
            socks.iter().all(|(u, t)| u.is_ok() && t.is_ok())
        })
        .expect("a free port")
}

/// CPU seconds (user + system) the process `pid` has used.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// The value of header `name` in `msg` (full names: Switchboard writes them so).
fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or("")
}

fn status(msg: &str) -> u16 {
    msg.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The callee trunk: answers every INVITE 200 with SDP, and every BYE 200.
fn callee(sock: UdpSocket, stop: Arc<AtomicBool>) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (status, body) = if msg.starts_with("INVITE ") {
            let sdp = format!(
                "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
                 m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                ip = me.ip()
            );
            ("200 OK", sdp)
        } else if msg.starts_with("BYE ") {
            ("200 OK", String::new())
        } else {
            continue;
        };
        let mut r = format!("SIP/2.0 {status}\r\n");
        for l in msg.split("\r\n").filter(|l| l.starts_with("Via:")) {
            r += l;
            r += "\r\n";
        }
        let to = header(&msg, "To");
        let to = if to.contains("tag=") {
            to.to_owned()
        } else {
            format!("{to};tag=callee")
        };
        r += &format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:callee@{me}>\r\n",
            header(&msg, "From"),
            header(&msg, "Call-ID"),
            header(&msg, "CSeq"),
        );
        if body.is_empty() {
            r += "Content-Length: 0\r\n\r\n";
        } else {
            r += &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        let _ = sock.send_to(r.as_bytes(), from);
    }
}

/// How a caller's messages travel.
enum Link {
    Udp(UdpSocket, SocketAddr),
    Tls(
        Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
        Vec<u8>,
    ),
}

impl Link {
    fn tls(server: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Self {
        let tcp = TcpStream::connect(server).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::IpAddress(server.ip().into());
        let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        Link::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)), Vec::new())
    }

    fn transport(&self) -> &'static str {
        match self {
            Link::Udp(..) => "UDP",
            Link::Tls(..) => "TLS",
        }
    }

    fn local(&self) -> SocketAddr {
        match self {
            Link::Udp(s, _) => s.local_addr().unwrap(),
            Link::Tls(s, _) => s.sock.local_addr().unwrap(),
        }
    }

    fn send(&mut self, msg: &str) -> bool {
        match self {
            Link::Udp(s, to) => s.send_to(msg.as_bytes(), *to).is_ok(),
            Link::Tls(s, _) => s.write_all(msg.as_bytes()).and_then(|_| s.flush()).is_ok(),
        }
    }

    /// The next message, or `None` on a timeout or a closed connection.
    fn recv(&mut self) -> Option<String> {
        match self {
            Link::Udp(s, _) => {
                let mut buf = vec![0u8; 65536];
                let n = s.recv(&mut buf).ok()?;
                Some(String::from_utf8_lossy(&buf[..n]).into_owned())
            }
            Link::Tls(s, pending) => loop {
                // One message: the head, then Content-Length bytes of body.
                if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    let len: usize = header(&head, "Content-Length").parse().unwrap_or(0);
                    if pending.len() >= end + 4 + len {
                        let msg: Vec<u8> = pending.drain(..end + 4 + len).collect();
                        return Some(String::from_utf8_lossy(&msg).into_owned());
                    }
                }
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
                pending.extend_from_slice(&chunk[..n]);
            },
        }
    }
}

/// One call from `link` to `number`: INVITE, its 200, ACK, BYE, its 200. `true` if it all
/// went through.
fn call(link: &mut Link, server: SocketAddr, number: &str, n: u64) -> bool {
    let (transport, me) = (link.transport(), link.local());
    let call_id = format!("{n}-{}@bench", me.port());
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ip = me.ip()
    );
    let request = |method: &str, uri: &str, cseq: u32, to: &str, body: &str| {
        let mut r = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{transport} {me};branch=z9hG4bK{method}{n}x{}\r\n\
             From: <sip:bench@{me}>;tag=c{n}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:bench@{me}>\r\nMax-Forwards: 70\r\n",
            me.port()
        );
        if body.is_empty() {
            r += "Content-Length: 0\r\n\r\n";
        } else {
            r += &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        r
    };
    let uri = format!("sip:{number}@{server}");
    if !link.send(&request("INVITE", &uri, 1, &format!("<{uri}>"), &sdp)) {
        return false;
    }
    let answer = loop {
        let Some(msg) = link.recv() else { return false };
        match status(&msg) {
            200 => break msg,
            100..=199 => continue,
            _ => return false,
        }
    };
    let to = header(&answer, "To").to_owned();
    let target = header(&answer, "Contact");
    let target = target
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or(&uri);
    link.send(&request("ACK", target, 1, &to, ""));
    if !link.send(&request("BYE", target, 2, &to, "")) {
        return false;
    }
    loop {
        let Some(msg) = link.recv() else { return false };
        if header(&msg, "CSeq").ends_with("BYE") {
            return status(&msg) == 200;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Udp,
    TlsReused,
    TlsFresh,
}

fn run(
    mode: Mode,
    server: SocketAddr,
    tls: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> (u64, u64) {
    let (callers, secs) = (knob("CALLERS", 8), knob("SECS", 5));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..callers)
        .map(|c| {
            let (done, failed, config) = (done.clone(), failed.clone(), config.clone());
            std::thread::spawn(move || {
                let udp = || {
                    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    Link::Udp(s, server)
                };
                let mut link = match mode {
                    Mode::Udp => udp(),
                    Mode::TlsReused => Link::tls(tls, &config),
                    // Made anew for each call, below.
                    Mode::TlsFresh => udp(),
                };
                let mut n = c * 1_000_000;
                while Instant::now() < until {
                    if mode == Mode::TlsFresh {
                        link = Link::tls(tls, &config);
                    }
                    n += 1;
                    let ok = call(
                        &mut link,
                        if mode == Mode::Udp { server } else { tls },
                        "15551234",
                        n,
                    );
                    let counter = if ok { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    // A kept connection is opened again after a failure (a fresh one is, anyway).
                    if !ok && mode == Mode::TlsReused {
                        link = Link::tls(tls, &config);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

fn metrics(http: SocketAddr) -> String {
    let mut conn = TcpStream::connect(http).unwrap();
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = conn.read_to_string(&mut text);
    text
}

/// Waits until the server has written every call record of the run before (its CDR backlog
/// is empty), so that each run starts from the same place.
fn settle(http: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if metrics(http)
            .lines()
            .any(|l| l == "switchboard_cdr_backlog 0")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The server's refusal and drop counters that are not zero (`/metrics`), to say why calls
/// failed.
fn refusals(http: SocketAddr) -> String {
    let text = metrics(http);
    let counters: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            ["refused", "rejected", "failed", "dropped"]
                .iter()
                .any(|w| l.contains(w))
        })
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    counters.join(", ")
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.cert.der().to_vec()))
        .unwrap();
    let config = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let udp_port = free_port("127.0.0.1");
    let (tls_port, http_port) = (udp_port + 1, udp_port + 2);
    let callee_sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    let callee_addr = callee_sock.local_addr().unwrap();
    let db = dir.path().join("bench.db");
    let server = BenchServer::start(
        dir.path(),
        &format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:{udp_port}\", \"tls:127.0.0.1:{tls_port}\"]\n\
             tls_certificate = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\n\
             [media]\nrtp_ports = \"42000-43999\"\nthreads = 1\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [storage]\ndatabase_url = \"sqlite://{db}\"\n\
             [[trunks]]\nname = \"callers\"\naddress = \"127.0.0.1:9\"\ninbound_sources = [\"127.0.0.1/32\"]\n\
             [[trunks]]\nname = \"callee\"\naddress = \"{callee_addr}\"\ninbound_sources = [\"127.0.0.2/32\"]\n\
             [[routes]]\npattern = \"^1\"\ntrunk = \"callee\"\n",
            d = dir.path().display(),
            db = db.display(),
        ),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let answering = {
        let stop = stop.clone();
        std::thread::spawn(move || callee(callee_sock, stop))
    };
    let udp: SocketAddr = format!("127.0.0.1:{udp_port}").parse().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let tls: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let secs = knob("SECS", 5) as f64;
    println!(
        "call setups (INVITE/200/ACK/BYE/200, routed to a UDP trunk), {} callers for {secs} s each",
        knob("CALLERS", 8)
    );
    println!(
        "| caller's transport | calls/s | failed | server CPU per call | server's refusals so far |"
    );
    println!("|---|---|---|---|---|");
    for (mode, name) in [
        (Mode::Udp, "UDP"),
        (Mode::TlsReused, "TLS, one connection per caller"),
        (Mode::TlsFresh, "TLS, a new connection per call"),
    ] {
        settle(http);
        let cpu = cpu_of(server.pid());
        let (done, failed) = run(mode, udp, tls, &config);
        let used = cpu_of(server.pid()) - cpu;
        println!(
            "| {name} | {:.0} | {failed} | {:.2} ms | {} |",
            done as f64 / secs,
            used * 1000.0 / done.max(1) as f64,
            refusals(http)
        );
    }
    stop.store(true, Ordering::Relaxed);
    answering.join().unwrap();
}
