//! Harness for end-to-end tests: the real `switchboard` binary on its own loopback address,
//! SIPp processes as trunks and phones, and helpers to read CDRs and metrics back.
//!
//! Each test uses `127.0.N.x` with its own N, so tests run in parallel without port clashes:
//! .1 is Switchboard, .2 the calling trunk, .3 the called trunk, .4 a phone, .9 a stranger.

#![allow(dead_code)]

pub mod hearing;
pub mod kamailio;
pub mod llm;
pub mod page;
pub mod rig;
pub mod sdk_app;
pub mod voice_app;
pub mod voices;
pub mod whisper;
pub mod ws_app;
pub mod ws_client;

mod server;
mod sipp;
pub use server::*;
pub use sipp::*;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The processes this test started (servers, SIPp, SDK apps, proxies), by pid.
/// Processes the test started, and whether each is asked to stop first (SIGTERM) before it is
/// killed.
static STARTED: Mutex<Vec<(u32, bool)>> = Mutex::new(Vec::new());

/// Registers a process this test started: if the test fails (a panic in any of its threads),
/// the process is killed at once rather than left running after it — holding the test's
/// addresses for the next run, or calling on. Each test runs in its own process (nextest), so
/// every child of this process is the failing test's. Guards' `Drop`s still end them on the
/// normal path.
pub fn owned(child: Child) -> Child {
    register(child, false)
}

/// [`owned`] for a process that must clean up after itself when the test fails: a Node script
/// driving a browser (puppeteer closes the browser, which it started in a process group of its
/// own, on SIGTERM; a SIGKILL would leave the browser running). It gets SIGTERM and half a
/// second before the SIGKILL.
pub fn owned_gently(child: Child) -> Child {
    register(child, true)
}

fn register(child: Child, gently: bool) -> Child {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            kill_started();
            previous(info);
        }));
    });
    STARTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((child.id(), gently));
    child
}

/// SIGKILL to each registered process that is still a child of this one (a pid the system
/// gave to someone else since is left alone).
fn kill_started() {
    let me = std::process::id().to_string();
    let pids = STARTED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let ours = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let child = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .is_some_and(|p| p.trim() == me);
        // A zombie has exited already: nothing to stop.
        child && !status.contains("State:\tZ")
    };
    let signal = |name: &str, pid: u32| {
        let _ = Command::new("kill")
            .args(["-s", name, "--", &pid.to_string()])
            .status();
    };
    let gentle: Vec<u32> = (pids.iter())
        .filter(|(pid, gently)| *gently && ours(*pid))
        .map(|(pid, _)| *pid)
        .collect();
    for &pid in &gentle {
        signal("TERM", pid);
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    while gentle.iter().any(|&pid| ours(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for (pid, _) in pids {
        if ours(pid) {
            signal("KILL", pid);
        }
    }
}

pub struct Net {
    pub n: u8,
    /// The first three octets of its addresses: `127.0.N`, or `10.0.N` for an isolated one.
    prefix: String,
    pub dir: tempfile::TempDir,
    /// Held while the test runs: two tests given the same `n` would share addresses.
    _claim: std::fs::File,
}

impl Net {
    pub fn new(n: u8) -> Self {
        let path = std::env::temp_dir().join(format!("switchboard-test-net-{n}.lock"));
        let claim = std::fs::File::create(&path).expect("the network's lock file");
        if claim.try_lock().is_err() {
            panic!("127.0.{n}.x is in use by another test running now: give each test its own");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        // SIPp's pcap scenarios refer to pcap/… relative to where they run.
        let _ = std::os::unix::fs::symlink("/usr/share/sip-tester", dir.path().join("pcap"));
        Self {
            n,
            prefix: format!("127.0.{n}"),
            dir,
            _claim: claim,
        }
    }

    /// A network of the test's own, for a browser that gathers no ICE candidate on a loopback
    /// interface and pairs with no loopback address (Firefox): this thread, and so every
    /// thread and process the test starts from it, enters a new Linux network namespace
    /// (CAP_SYS_ADMIN: README's test command runs as root) where `10.0.N.x` are this host's
    /// addresses — local through `lo`, like 127/8, and `.9` on an Ethernet-like interface (a
    /// veth pair, both ends here) where the browser finds a host candidate. Nothing in it
    /// reaches outside.
    pub fn isolated(n: u8) -> Self {
        // SAFETY: unshare only changes this thread's namespaces; no memory is involved.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!(
                "a network namespace of the test's own needs CAP_SYS_ADMIN (run as root): {}",
                std::io::Error::last_os_error()
            );
        }
        let prefix = format!("10.0.{n}");
        for args in [
            "link set lo up".to_owned(),
            format!("route add local {prefix}.0/24 dev lo table local"),
            "link add sb0 type veth peer name sb1".to_owned(),
            format!("addr add {prefix}.9/24 dev sb0"),
            "link set sb0 up".to_owned(),
            "link set sb1 up".to_owned(),
            // Firefox gathers on the default route's interface only (until a page is granted
            // a real microphone): the default leads into the veth pair, which ends here.
            "route add default dev sb0".to_owned(),
        ] {
            let status = Command::new("ip")
                .args(args.split(' '))
                .status()
                .expect("ip (iproute2)");
            assert!(status.success(), "ip {args}: {status}");
        }
        Self {
            prefix,
            ..Self::new(n)
        }
    }

    pub fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.prefix)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The usual two-trunk configuration: calls from .2 (carrier-a) to +1555… go to .3:5060
    /// (carrier-b); `extra` is appended (more trunks, users, routes, or sections).
    pub fn two_trunks(&self, extra: &str) -> String {
        self.two_trunks_keyed("", extra)
    }

    /// [`Net::two_trunks`] with more keys (TOML lines) for carrier-a; `b_keys` follows
    /// carrier-b's own keys as `extra` does (more keys for it, or sections of their own).
    pub fn two_trunks_keyed(&self, a_keys: &str, b_keys: &str) -> String {
        format!(
            "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n{a_keys}\n\
             [[trunks]]\nname = \"carrier-b\"\naddress = \"{b_ip}:5060\"\ninbound_sources = [\"{b_ip}/32\"]\n{b_keys}\n\
             [[routes]]\npattern = \"^\\\\+?1555\"\ntrunk = \"carrier-b\"\n",
            a = self.ip(2),
            b_ip = self.ip(3),
        )
    }
}

/// Sends one UDP datagram and returns the first reply, if any arrives in time.
/// A Call-ID from `host` (for SIPp's `-cid_str`) that a node of `shards` call-core shards
/// takes on shard `index`.
pub fn call_id_on_shard(host: &str, shards: u16, index: u16) -> String {
    (0..)
        .map(|n| format!("sharded-{n}@{host}"))
        .find(|id| switchboard_sip::shard::shard_of_call_id(id, shards) == index % shards)
        .expect("every shard is some Call-ID's")
}

pub fn udp_exchange(from: &str, to: SocketAddr, data: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let s = std::net::UdpSocket::bind(format!("{from}:0")).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(data, to).unwrap();
    let mut buf = vec![0u8; 65536];
    s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
}

pub fn leg<'a>(call: &'a Value, name: &str) -> &'a Value {
    call["legs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["leg"] == name)
        .unwrap_or_else(|| panic!("no {name} leg in {call}"))
}

/// Sends a DTMF event as RFC 4733 (payload type 101, SSRC 0x5eed): two updates and three end
/// packets 20 ms apart, all with timestamp `ts`.
pub fn send_rfc4733(sock: &std::net::UdpSocket, to: SocketAddr, digit: u8, seq: &mut u16, ts: u32) {
    use switchboard_media::dtmf::rfc4733::EventPayload;
    for (i, (end, duration)) in [
        (false, 160),
        (false, 320),
        (true, 640),
        (true, 640),
        (true, 640),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = [0u8; 16];
        switchboard_media::rtp::write_header(&mut p, 101, i == 0, *seq, ts, 0x5eed);
        *seq = seq.wrapping_add(1);
        EventPayload {
            event: digit,
            end,
            volume: 10,
            duration,
        }
        .write((&mut p[12..]).try_into().unwrap());
        sock.send_to(&p, to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends audio as PCMU from `sock`, one packet every 20 ms, sequence numbers from `seq0`.
/// Paced by a clock, as a phone sends: packet `i` goes at `i` × 20 ms from the first, so a
/// sleep that oversleeps on a busy machine does not make the rest late too.
pub fn send_audio(sock: &std::net::UdpSocket, to: SocketAddr, samples: &[i16], seq0: u16) {
    use switchboard_media::{FRAME, Law, rtp};
    let start = Instant::now();
    for (i, chunk) in samples.chunks(FRAME).enumerate() {
        let due = start + Duration::from_millis(20 * i as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut p = vec![0u8; 12 + chunk.len()];
        let seq = seq0.wrapping_add(i as u16);
        rtp::write_header(&mut p, 0, i == 0, seq, seq as u32 * 160, 0x5eed);
        Law::Ulaw.encode(chunk, &mut p[12..]);
        sock.send_to(&p, to).unwrap();
    }
    // The last packet's 20 ms, as before: callers count on the audio having been heard.
    std::thread::sleep(Duration::from_millis(20));
}

/// Writes `samples` as a 16-bit mono 8 kHz WAV file.
pub fn write_wav(path: &std::path::Path, samples: &[i16]) {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = b"RIFF".to_vec();
    out.extend((36 + data.len() as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    for v in [16u32, 1 | (1 << 16), 8000, 16000, 2 | (16 << 16)] {
        out.extend(v.to_le_bytes());
    }
    out.extend(b"data");
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// The root mean square of `samples`.
pub fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// Windows of 100 ms (at 8 kHz) loud enough to be speech (RMS over 316), whatever their
/// pitch.
pub fn loud_windows(heard: &[i16]) -> usize {
    (heard.chunks_exact(800))
        .filter(|w| w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 800.0 > 1e5)
        .count()
}

/// Two phones send the same 2 s of loud white noise at once, each to Switchboard's media for
/// it, while both listen: the RMS sent, and that of the last second each heard (`a`, `b`).
pub fn exchange_noise(
    a: (&std::net::UdpSocket, SocketAddr),
    b: (&std::net::UdpSocket, SocketAddr),
) -> (f64, f64, f64) {
    let said = noise(16_000, 8000.0);
    let heard =
        |sock: &std::net::UdpSocket| rig::receive_audio(sock, 90, switchboard_media::Law::Ulaw).0;
    let (by_a, by_b) = std::thread::scope(|talk| {
        talk.spawn(|| send_audio(a.0, a.1, &said, 1));
        talk.spawn(|| send_audio(b.0, b.1, &said, 1));
        let by_a = talk.spawn(|| heard(a.0));
        (by_a.join().unwrap(), heard(b.0))
    });
    let last = |s: &[i16]| rms(&s[s.len() - 8000..]);
    (rms(&said), last(&by_a), last(&by_b))
}

/// White noise, repeatable.
pub fn noise(n: usize, amplitude: f64) -> Vec<i16> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (((x >> 16) as f64 / 32768.0 - 1.0) * amplitude) as i16
        })
        .collect()
}

/// The environment of a provider's SDK that scripts/test.sh set up in `var` (a venv's Python,
/// Node modules), or `None` when it is not set: the test is then skipped, unless the test
/// command required it (SWITCHBOARD_REQUIRE_COMPAT), where its absence fails the test.
pub fn compat_env(var: &str) -> Option<String> {
    let value = std::env::var(var).ok();
    if value.is_none() {
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_COMPAT").is_err(),
            "{var} is not set"
        );
        eprintln!("skipped: {var} is not set (scripts/test.sh sets up the SDKs)");
    }
    value
}

/// A JSON body, or a panic showing it.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// An OPTIONS probe from `.9`, as a dispatcher sends it; the response's first line and
/// Retry-After.
pub fn options_probe(net: &Net, server: &Server) -> (String, Option<String>) {
    let ip = net.ip(9);
    let options = format!(
        "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5099;rport;branch=z9hG4bKprobe{n}\r\n\
         From: <sip:probe@{ip}>;tag=p\r\nTo: <sip:{sip}>\r\nCall-ID: probe{n}@{ip}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        sip = server.sip,
        n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    // Retransmitted as a SIP client does over UDP (RFC 3261 Timer E, every 500 ms here), for
    // up to 8 s: a loaded machine may leave a datagram waiting, as a network may lose one.
    let socket = std::net::UdpSocket::bind(format!("{ip}:0")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let reply = (0..16)
        .find_map(|_| {
            socket.send_to(options.as_bytes(), server.sip).unwrap();
            let (n, _) = socket.recv_from(&mut buf).ok()?;
            Some(buf[..n].to_vec())
        })
        .expect("an answer to OPTIONS");
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let retry = text
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After:").map(|v| v.trim().to_owned()));
    (status, retry)
}

/// Sends an HTTP/1.0 request on `s` and reads the whole answer: its status and body.
fn exchange(
    mut s: TcpStream,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: test\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, raw[split..].to_vec())
}

/// A database of its own for a several-nodes test, `switchboard_{name}`, made afresh on
/// scripts/test.sh's PostgreSQL (the nodes of one test share it; tests running at once must
/// not see each other's calls); `None` without PostgreSQL, unless it is required (CI), when
/// its absence fails the test.
pub fn cluster_database(name: &str) -> Option<String> {
    use sqlx::Connection;
    let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_POSTGRES").is_err(),
            "PostgreSQL required but not configured"
        );
        eprintln!("SWITCHBOARD_TEST_POSTGRES_URL not set; several nodes not exercised");
        return None;
    };
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let database = format!("switchboard_{name}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&url).await.expect("PostgreSQL");
        for statement in [
            format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
            format!("CREATE DATABASE {database}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut admin)
                .await
                .expect("a database of the test's own");
        }
    });
    let base = url.rsplit_once('/').expect("URL with a database").0;
    Some(format!("{base}/{database}"))
}
