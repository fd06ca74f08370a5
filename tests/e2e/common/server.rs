//! The real `switchboard` binary as a test's server: started on its net's address with a
//! configuration, waited for, asked for its CDRs, metrics and logs, and stopped.

use super::*;

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

/// The level test servers log at (`RUST_LOG`): the SIP messages, the media engine's browser
/// legs and endpoint counters, and how speech was cut, so that a failure's log tells what
/// happened.
pub const LOG_LEVEL: &str = "info,switchboard_sip=debug,switchboard_media=debug,\
     switchboard_control::services::speech=debug,switchboard_control::services::relay=debug,\
     rtc_dtls=error";

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
            .env("RUST_LOG", LOG_LEVEL)
            // Tests that stop a server with calls up expect them hung up at once; the drain
            // tests set their own.
            .env("SWITCHBOARD_SHUTDOWN__DRAIN_SECS", "0")
            // The models are the test's to give (start_with_speech), never fetched from PyPI.
            .env("SWITCHBOARD_SPEECH__FETCH", "false");
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

    /// `calls show` of `id` once `done` says so of it, or the last one seen after `within`
    /// (for what comes after a call ended: the transcript of its last words, recognised once
    /// the caller hung up).
    pub fn show_call_when(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let shown = self.show_call(id);
            if done(&shown) || Instant::now() > deadline {
                return shown;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `n` calls have ended with their legs written, and returns them.
    pub fn ended_calls(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let calls = self.calls();
            // Ended: its end stored (a call still ringing is not).
            let ended: Vec<Value> = calls
                .into_iter()
                .filter(|c| !c["ended_at"].is_null())
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
        // A server that does not stop on SIGTERM is a defect (malformed.rs checks a clean
        // exit); say so here, where every test's server stops.
        eprintln!("the server did not stop within 15 s of SIGTERM: killed");
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
