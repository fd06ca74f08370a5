//! Harness for end-to-end tests: the real `switchboard` binary on its own loopback address,
//! SIPp processes as trunks and phones, and helpers to read CDRs and metrics back.
//!
//! Each test uses `127.0.N.x` with its own N, so tests run in parallel without port clashes:
//! .1 is Switchboard, .2 the calling trunk, .3 the called trunk, .4 a phone, .9 a stranger.

#![allow(dead_code)]

pub mod kamailio;
pub mod page;
pub mod rig;
pub mod sdk_app;
pub mod voice_app;
pub mod voices;
pub mod ws_app;

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

pub struct Server {
    child: Child,
    config: PathBuf,
    /// Environment overrides given to the server, used by `calls list` too.
    env: Vec<(String, String)>,
    /// Its data directory (`SWITCHBOARD_DATA_DIR`): recordings, caches.
    data_dir: PathBuf,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    log: Arc<Mutex<String>>,
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard")
}

impl Server {
    /// Starts Switchboard with `sections` (TOML) on 127.0.N.1 and waits until it is ready.
    /// `[sip]`, `[media]`, `[http]` and `[storage]` are preset unless `sections` overrides them
    /// through `overrides` (a TOML fragment merged into those sections' keys).
    pub fn start(net: &Net, sections: &str) -> Self {
        Self::start_with(net, sections, &[])
    }

    /// A server with the local speech engine (scripts/install-speech.sh's models, one
    /// recognition worker), returned once the model has loaded (it loads after start-up).
    pub fn start_with_speech(net: &Net, sections: &str) -> Self {
        let dir = voices::speech_dir();
        let env = [
            ("SWITCHBOARD_SPEECH__DIR", dir.to_str().unwrap()),
            ("SWITCHBOARD_SPEECH__WORKERS", "1"),
        ];
        let server = Self::start_with(net, sections, &env);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.log().contains("speech engine ready") {
            assert!(Instant::now() < deadline, "{}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn start_with(net: &Net, sections: &str, env: &[(&str, &str)]) -> Self {
        Self::start_limited(net, sections, env, None)
    }

    /// [`Self::start_with`] under a descriptor limit (soft and hard), as a service manager
    /// would start it.
    pub fn start_limited(
        net: &Net,
        sections: &str,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Self {
        let ip = net.ip(1);
        let config = net.path("switchboard.toml");
        let text = format!(
            "[sip]\nlisten = [\"udp:{ip}:5060\", \"tcp:{ip}:5060\"]\n\
             [media]\nrtp_ports = \"20000-20999\"\nthreads = 1\n\
             [http]\nlisten = \"{ip}:8080\"\n\
             [storage]\ndatabase_url = \"sqlite://{db}\"\n\n{sections}",
            db = net.path("data/switchboard.db").display()
        );
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--config"])
            .arg(&config)
            .current_dir(net.dir.path())
            // Recordings, caches and the quarantine file under the test's own directory.
            .env("SWITCHBOARD_DATA_DIR", net.path("data"))
            .env("RUST_LOG", "info,switchboard_sip=debug,rtc_dtls=error")
            // Tests that stop a server with calls up expect them hung up at once; the drain
            // tests set their own.
            .env("SWITCHBOARD_SHUTDOWN__DRAIN_SECS", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads `limit`.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = owned(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start switchboard"),
        );
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // "ready", in text or in JSON lines.
                if line.contains(" ready") || line.contains("\"message\":\"ready\"") {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let server = Self {
            child,
            config,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            data_dir: net.path("data"),
            sip: format!("{ip}:5060").parse().unwrap(),
            http: format!("{ip}:8080").parse().unwrap(),
            log,
        };
        if ready_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            panic!("switchboard did not become ready:\n{}", server.log());
        }
        server
    }

    /// Waits up to 10 s for `what` to appear in the log.
    pub fn wait_for_log(&self, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.log().contains(what) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `switchboard calls list --json`.
    pub fn calls(&self) -> Vec<Value> {
        let out = Command::new(binary())
            .args(["calls", "list", "--json", "--limit", "1000", "--config"])
            .arg(&self.config)
            .env("SWITCHBOARD_DATA_DIR", &self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("calls list");
        assert!(
            out.status.success(),
            "calls list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("calls list prints JSON")
    }

    /// `switchboard calls show ID --json`: the call, its stored events and its recordings.
    pub fn show_call(&self, id: &str) -> Value {
        let out = Command::new(binary())
            .args(["calls", "show", id, "--json", "--config"])
            .arg(&self.config)
            .env("SWITCHBOARD_DATA_DIR", &self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("calls show");
        assert!(
            out.status.success(),
            "calls show failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("calls show prints JSON")
    }

    /// Waits until `n` calls have ended with their legs written, and returns them.
    pub fn ended_calls(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let calls = self.calls();
            let ended: Vec<Value> = calls
                .into_iter()
                .filter(|c| c["status"] != "in-progress")
                .collect();
            if ended.len() >= n {
                return ended;
            }
            if Instant::now() > deadline {
                panic!(
                    "only {} of {n} calls ended; log:\n{}",
                    ended.len(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        self.http("GET", path, None, "")
    }

    /// An HTTP/1.0 request with Basic credentials `user:password` when given, and a
    /// form-encoded body; the status and the body of the answer.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        basic: Option<(&str, &str)>,
        body: &str,
    ) -> (u16, String) {
        let (status, body) = self.http_bytes(method, path, basic, body);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// [`Server::http`], the answer's body as bytes.
    pub fn http_bytes(
        &self,
        method: &str,
        path: &str,
        basic: Option<(&str, &str)>,
        body: &str,
    ) -> (u16, Vec<u8>) {
        use base64::Engine;
        let auth = basic.map_or(String::new(), |(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Authorization: Basic {token}\r\n")
        });
        let headers = format!("{auth}Content-Type: application/x-www-form-urlencoded\r\n");
        self.request(method, path, &headers, body.as_bytes())
    }

    /// An HTTP/1.0 request with `headers` (each line ending in CRLF) and `body`.
    pub fn request(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let s = TcpStream::connect(self.http).expect("connect HTTP");
        exchange(s, method, path, headers, body)
    }

    /// [`Server::http`] from the address `from` (a client elsewhere).
    pub fn http_from(
        &self,
        from: std::net::IpAddr,
        method: &str,
        path: &str,
        basic: (&str, &str),
        body: &str,
    ) -> u16 {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", basic.0, basic.1));
        let headers = format!(
            "Authorization: Basic {token}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        );
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from, 0)).expect("bind");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let stream = rt
            .block_on(socket.connect(self.http))
            .expect("connect HTTP");
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        exchange(stream, method, path, &headers, body.as_bytes()).0
    }

    /// The value of one unlabelled (or exactly labelled) Prometheus sample.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics");
        body.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// A metric once it reads `value`, waiting up to 5 s for it (a counter the server bumps
    /// after the client has already seen the outcome); what it reads then otherwise.
    pub fn metric_settles(&self, name: &str, value: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.metric(name);
            if now == Some(value) || Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident memory now and at its peak, in MB (`/proc/PID/status`).
    pub fn memory_mb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (kb("VmRSS:") / 1024, kb("VmHWM:") / 1024)
    }

    /// The configuration file the server was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Sends a signal (`USR1`, `TERM`, …) to the server.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name}");
    }

    /// Waits for the server to exit by itself; `None` if it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL: the process ends at once, as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
        }
    }
}

/// A SIPp scenario from tests/sipp, with `{{KEY}}` placeholders filled in.
pub fn scenario(net: &Net, name: &str, vars: &[(&str, &str)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name);
    let mut text =
        std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!text.contains("{{"), "{name}: unfilled placeholder");
    let dst = net.path(name);
    std::fs::write(&dst, text).unwrap();
    dst
}

/// SIPp `<ereg>` checks that fail the call unless each `(where, regexp)` matches (POSIX ERE;
/// `where` is `msg` for the whole message, or a header name with its colon).
pub fn eregs(checks: &[(&str, &str)]) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    checks
        .iter()
        .map(|(place, regexp)| {
            let within = match *place {
                "msg" => r#"search_in="msg""#.to_owned(),
                header => format!(r#"search_in="hdr" header="{}""#, escape(header)),
            };
            format!(
                r#"<ereg regexp="{}" {within} check_it="true" assign_to="seen"/>"#,
                escape(regexp)
            )
        })
        .collect()
}

/// tests/sipp/uas_media_at.xml: a callee answering with `rtp_ip:rtp_port` as its media,
/// whose INVITE must match each `(where, regexp)` of `checks` (POSIX ERE; `where` is `msg` for
/// the whole message, or a header name with its colon), else SIPp fails the call and never
/// answers.
pub fn uas_media_at(net: &Net, rtp_ip: &str, rtp_port: &str, checks: &[(&str, &str)]) -> PathBuf {
    let checks = eregs(&[&[("msg", "INVITE")], checks].concat());
    scenario(
        net,
        "uas_media_at.xml",
        &[
            ("RTP_IP", rtp_ip),
            ("RTP_PORT", rtp_port),
            ("CHECKS", &checks),
        ],
    )
}

/// tests/sipp/uac_media_at.xml: a caller whose SDP points at `phone` (the test's own RTP
/// socket) offering `audio` (its m= payload types and rtpmap lines), hanging up after `talk_ms`.
pub fn uac_media_at(net: &Net, phone: &std::net::UdpSocket, talk_ms: u32, audio: &str) -> PathBuf {
    let media = phone.local_addr().unwrap();
    scenario(
        net,
        "uac_media_at.xml",
        &[
            ("RTP_IP", &media.ip().to_string()),
            ("RTP_PORT", &media.port().to_string()),
            ("TALK_MS", &talk_ms.to_string()),
            ("AUDIO", audio),
        ],
    )
}

fn sipp_command(net: &Net, scenario: &Path, ip: &str, port: u16, args: &[&str]) -> Command {
    assert!(
        Command::new("sipp")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
        "sipp not found: run scripts/test.sh, which installs the sip-tester package"
    );
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(scenario)
        .args([
            "-i",
            ip,
            "-p",
            &port.to_string(),
            "-mi",
            ip,
            "-nostdin",
            "-trace_err",
            "-trace_screen",
        ])
        .args(args)
        .current_dir(net.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SIPp reports scenario errors on stderr; keep them beside its logs.
    let stem = scenario.file_stem().unwrap().to_string_lossy().into_owned();
    let err = std::fs::File::create(net.path(&format!("{stem}-{ip}-{port}.stderr")))
        .expect("stderr file");
    cmd.stderr(err);
    cmd
}

/// A callee on carrier-b (SIPp at .3) whose media is `phone`; the returned function waits for the call
/// and gives Switchboard's media address for it (from the INVITE's SDP, which the callee logs).
pub fn callee_telling_media(
    net: &Net,
    phone: &std::net::UdpSocket,
) -> (SippServer, impl Fn() -> SocketAddr + use<>) {
    phone_telling_media(net, phone, (&net.ip(3), 5060))
}

/// As [`callee_telling_media`], for a phone whose SIP is at `sip` (its RTP is `phone`'s
/// address, whatever the IP).
pub fn phone_telling_media(
    net: &Net,
    phone: &std::net::UdpSocket,
    sip: (&str, u16),
) -> (SippServer, impl Fn() -> SocketAddr + use<>) {
    let media = phone.local_addr().unwrap();
    let log = r#"<ereg regexp="m=audio ([0-9]+)" search_in="body" check_it="true" assign_to="seen,port"/><log message="RTP-PORT [$port]"/>"#;
    let uas = scenario(
        net,
        "uas_media_at.xml",
        &[
            ("RTP_IP", &media.ip().to_string()),
            ("RTP_PORT", &media.port().to_string()),
            ("CHECKS", log),
        ],
    );
    let sipp = SippServer::start(net, &uas, sip.0, sip.1, &["-m", "1", "-trace_logs"]);
    let (dir, ip) = (net.dir.path().to_owned(), net.ip(1));
    let media = move || {
        let port = sipp_logged(&dir, "RTP-PORT ", "the callee was not called");
        let port: u16 = port.parse().expect("a port");
        format!("{ip}:{port}").parse().unwrap()
    };
    (sipp, media)
}

/// The first word after `marker` in a `<log>` line of a SIPp run with `-trace_logs` in `dir`,
/// waited for up to 15 s; panics with `missing` and the directory's files otherwise.
pub fn sipp_logged(dir: &Path, marker: &str, missing: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("_logs.log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if let Some(word) = text
                    .split(marker)
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                {
                    return word.to_owned();
                }
            }
        }
        if Instant::now() > deadline {
            let files: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    format!("{:?}: {}", e.file_name(), &text[..text.len().min(2000)])
                })
                .collect();
            panic!("{missing}: {files:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A SIPp server (callee trunk or phone) running until dropped.
pub struct SippServer {
    child: Child,
    /// Where its error log goes, printed when it fails.
    dir: PathBuf,
}

impl SippServer {
    pub fn start(net: &Net, scenario: &Path, ip: &str, port: u16, args: &[&str]) -> Self {
        let child = owned(
            sipp_command(net, scenario, ip, port, args)
                .spawn()
                .expect("start sipp"),
        );
        // SIPp binds its sockets at once; give it a moment before calls arrive.
        std::thread::sleep(Duration::from_millis(300));
        Self {
            child,
            dir: net.dir.path().to_owned(),
        }
    }
}

impl SippServer {
    /// Waits for a SIPp started with `-m N` to finish its calls; `true` when all succeeded.
    /// When not, what SIPp said about it is printed (the test's output shows it).
    pub fn finished_ok(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ok = false;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                ok = status.success();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ok {
            for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with("_errors.log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    eprintln!("--- {name} ---\n{text}");
                }
            }
        }
        ok
    }
}

impl Drop for SippServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct SippRun {
    pub status: ExitStatus,
    pub successful: u64,
    pub failed: u64,
    pub errors: String,
}

/// Runs a SIPp client to completion (or the timeout) and reads its statistics.
pub fn run_sipp(
    net: &Net,
    scenario: &Path,
    ip: &str,
    port: u16,
    target: SocketAddr,
    args: &[&str],
    timeout: Duration,
) -> SippRun {
    let mut cmd = sipp_command(net, scenario, ip, port, args);
    cmd.arg(target.to_string()).args([
        "-timeout",
        &format!("{}s", timeout.as_secs()),
        "-timeout_error",
    ]);
    let status = owned(cmd.spawn().expect("run sipp"))
        .wait()
        .expect("run sipp");
    let stem = scenario.file_stem().unwrap().to_string_lossy().into_owned();
    let newest = |suffix: &str| -> String {
        let mut found: Vec<PathBuf> = std::fs::read_dir(net.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(&format!("{stem}_")) && n.ends_with(suffix)
            })
            .collect();
        found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        found
            .last()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    };
    let screen = newest("_screen.log");
    let count = |label: &str| {
        screen
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    SippRun {
        status,
        successful: count("Successful call"),
        failed: count("Failed call"),
        errors: newest("_errors.log"),
    }
}

/// Sends one UDP datagram and returns the first reply, if any arrives in time.
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
    let reply = udp_exchange(&ip, server.sip, options.as_bytes(), Duration::from_secs(3))
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
