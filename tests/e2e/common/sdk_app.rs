//! An SDK script as the app under test: the steps it prints, the JSON summary it prints last,
//! and what the test does as the phones at either end of its calls.

use super::{Net, Server, json, run_sipp, scenario};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_media::Law;

/// What an SDK script prints, line by line.
pub type Printed = std::io::Lines<std::io::BufReader<std::process::ChildStdout>>;

/// Waits for the script to print `step` (it got that far); fails with its errors otherwise.
pub fn expect_step(
    child: &mut std::process::Child,
    lines: &mut Printed,
    step: &str,
    server: &Server,
) {
    use std::io::Read;
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    if line != step {
        let mut errors = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut errors);
        }
        let _ = child.wait();
        panic!(
            "the app stopped before {step}: {line}\n{errors}\n{}",
            server.log()
        );
    }
}

/// The audio Switchboard sends `sock`: the first packet within `first`, then every one until
/// `quiet` passes without one; and where it came from.
pub fn hear(
    sock: &std::net::UdpSocket,
    first: Duration,
    quiet: Duration,
) -> (Vec<i16>, Option<std::net::SocketAddr>) {
    sock.set_read_timeout(Some(first)).unwrap();
    let mut buf = [0u8; 2048];
    let Ok((n, from)) = sock.recv_from(&mut buf) else {
        return (Vec::new(), None);
    };
    let mut audio = vec![0i16; n.saturating_sub(12)];
    Law::Ulaw.decode(&buf[12.min(n)..n], &mut audio);
    audio.extend(super::voice_app::listen(sock, quiet, Duration::from_secs(20)).0);
    (audio, Some(from))
}

/// How many 100 ms windows of `samples` are loud and mostly `freq`.
pub fn windows_of(samples: &[i16], freq: f32) -> usize {
    samples
        .chunks_exact(800)
        .filter(|w| {
            let loud = w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 800.0 > 1e5;
            loud && switchboard_media::tone::share_at(w, freq) > 0.8
        })
        .count()
}

/// Tells an SDK script to do something (a line on its stdin).
pub fn tell(app: &mut std::process::Child, line: &str) {
    use std::io::Write;
    writeln!(app.stdin.as_mut().unwrap(), "{line}").unwrap();
}

/// A SIPp caller on carrier-a dials `number` and gets the final response `code`.
pub fn call_refused(net: &Net, server: &Server, number: &str, code: &str) {
    let uac = scenario(net, "uac_expect_failure.xml", &[("CODE", code)]);
    let run = run_sipp(
        net,
        &uac,
        &net.ip(2),
        5060,
        server.sip,
        &["-s", number, "-m", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{number}: {}\n{}",
        run.errors,
        server.log()
    );
}

/// The JSON summary an SDK script prints last, once it has exited successfully.
pub fn summary_of(child: std::process::Child, lines: Printed, server: &Server) -> Value {
    let rest: String = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the app failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    json(&rest)
}

/// Whether the SDK verified every webhook the script received.
pub fn all_verified(summary: &Value) -> bool {
    summary["verified"]
        .as_array()
        .is_some_and(|v| !v.is_empty() && v.iter().all(|v| v == &Value::Bool(true)))
}

/// Starts the SDK script `tests/compat/{script}` with `python`: the server's base URL, then
/// `args`; its stdin, stdout and stderr piped, its stdout read line by line.
pub fn spawn_script(
    python: &str,
    script: &str,
    server: &Server,
    args: &[&str],
) -> (std::process::Child, Printed) {
    spawn(std::process::Command::new(python), script, server, args)
}

/// Starts the Node SDK script `tests/compat/{script}` with the packages in `modules` (a
/// node_modules folder): as [`spawn_script`] does a Python one.
pub fn spawn_node_script(
    modules: &str,
    script: &str,
    server: &Server,
    args: &[&str],
) -> (std::process::Child, Printed) {
    let mut node = std::process::Command::new("node");
    node.env("NODE_PATH", modules);
    spawn(node, script, server, args)
}

/// A voice-AI app script on Node: as [`spawn_node_script`], with `env` besides (where its
/// LLM vendor's SDK finds the stand-in).
pub fn spawn_node_app(
    modules: &str,
    script: &str,
    server: &Server,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, Printed) {
    let mut node = std::process::Command::new("node");
    node.env("NODE_PATH", modules).envs(env.iter().copied());
    spawn(node, script, server, args)
}

/// A voice-AI app script on Python: as [`spawn_script`], with `env` besides.
pub fn spawn_python_app(
    python: &str,
    script: &str,
    server: &Server,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, Printed) {
    let mut runner = std::process::Command::new(python);
    runner.envs(env.iter().copied());
    spawn(runner, script, server, args)
}

/// A running app, killed when this is dropped (the test is over, whichever way), and what it
/// prints after its first line, one JSON value a line, collected by a thread of its own as it
/// comes (the test meanwhile plays the phone), and its stderr (read too, so that a chatty app
/// never blocks on a full pipe).
pub struct Printout {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<Value>>>,
    errors: Arc<Mutex<String>>,
}

impl Drop for Printout {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Printout {
    pub fn follow(mut child: std::process::Child, lines: Printed) -> Self {
        use std::io::BufRead;
        let stderr = child.stderr.take();
        let printout = Self {
            child,
            lines: Arc::default(),
            errors: Arc::default(),
        };
        let kept = printout.lines.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                kept.lock().unwrap().push(value);
            }
        });
        if let Some(stderr) = stderr {
            let kept = printout.errors.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    let mut errors = kept.lock().unwrap();
                    errors.push_str(&line);
                    errors.push('\n');
                }
            });
        }
        printout
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines so far that are objects with `key`.
    pub fn with(&self, key: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|v| v.get(key).is_some())
            .collect()
    }

    /// The lines `is` picks, once there are `n` of them (panics after `wait`, with everything
    /// the app printed).
    pub fn matching(
        &self,
        n: usize,
        wait: Duration,
        what: &str,
        is: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let found: Vec<Value> = self.all().into_iter().filter(|v| is(v)).collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} {what} from the app: {:#?}\n{}",
                found.len(),
                self.all(),
                self.errors.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn(
    mut runner: std::process::Command,
    script: &str,
    server: &Server,
    args: &[&str],
) -> (std::process::Child, Printed) {
    use std::io::BufRead;
    use std::process::Stdio;
    let path = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = super::owned(
        runner
            .arg(path)
            .arg(format!("http://{}", server.http))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// A callee on carrier-b (a SIPp UAS at .3 answering one call) whose media is the returned
/// socket's, at `host`.
pub fn callee_phone(net: &Net, host: u8) -> (std::net::UdpSocket, super::SippServer) {
    callee_checking(net, host, &[])
}

/// A callee as [`callee_phone`] whose INVITE must pass `checks` (see
/// [`super::uas_media_at`]): otherwise SIPp fails the call, and never answers.
pub fn callee_checking(
    net: &Net,
    host: u8,
    checks: &[(&str, &str)],
) -> (std::net::UdpSocket, super::SippServer) {
    let phone = super::rig::rtp_socket(net, host);
    let port = phone.local_addr().unwrap().port().to_string();
    let uas = super::uas_media_at(net, &net.ip(host), &port, checks);
    let sipp = super::SippServer::start(net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    (phone, sipp)
}

/// The Telnyx account the tests' SDK scripts use.
pub mod telnyx {
    pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    pub const TOKEN: &str = "telnyx-auth-token";
    pub const KEY: &str = "KEY0123456789ABCDEF_switchboard";
    pub const CONNECTION: &str = "1494404757140276705";
    /// The base64 seed of the account's Ed25519 key (bytes 0..32, the reference's test vector).
    pub const SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    pub const PUBLIC_KEY: &str = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";

    /// Whether `signature` (the `telnyx-signature-ed25519` header) is the account's Ed25519
    /// signature of `"{timestamp}|{body}"`, as the SDKs' `webhooks.unwrap` checks it.
    pub fn signed(timestamp: &str, signature: &str, body: &str) -> bool {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let key: [u8; 32] = b64.decode(PUBLIC_KEY).unwrap().try_into().unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
        let signature = b64
            .decode(signature)
            .ok()
            .and_then(|s| ed25519_dalek::Signature::from_slice(&s).ok());
        let message = format!("{timestamp}|{body}");
        signature.is_some_and(|s| key.verify_strict(message.as_bytes(), &s).is_ok())
    }

    /// The account, its Call Control application (webhooks to `http://{hooks}/telnyx`, and
    /// `settings`, TOML lines of the connection) and `numbers` on that application.
    pub fn config(hooks: &str, settings: &str, numbers: &[&str]) -> String {
        let mut config = format!(
            "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
             telnyx_api_keys = [\"{KEY}\"]\ntelnyx_private_key = \"{SEED}\"\n\
             [[connections]]\nid = \"{CONNECTION}\"\naccount_sid = \"{ACCOUNT}\"\n\
             webhook_event_url = \"http://{hooks}/telnyx\"\n{settings}"
        );
        for number in numbers {
            config += &format!(
                "[[numbers]]\nphone_number = \"{number}\"\naccount_sid = \"{ACCOUNT}\"\n\
                 connection_id = \"{CONNECTION}\"\n"
            );
        }
        config
    }
}

/// Runs an SDK script to its `ok`; each line it prints that `handle` answers is written back
/// to its stdin.
pub fn sdk_script_with(
    python: &str,
    server: &Server,
    script: &str,
    args: &[&str],
    mut handle: impl FnMut(&str) -> Option<String>,
) {
    use std::io::{BufRead, Write};
    let script = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let base = format!("http://{}", server.http);
    let mut child = std::process::Command::new(python)
        .args([script.as_str(), &base])
        .args(args)
        .env_remove("TWILIO_REGION")
        .env_remove("TWILIO_EDGE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(super::owned)
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut printed = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some(reply) = handle(&line) {
                    writeln!(stdin, "{reply}").unwrap();
                }
                printed.push_str(&line);
                printed.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the SDK script hangs:\n{printed}"
        );
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && printed.trim_end().ends_with("ok"),
        "stdout:\n{printed}\nstderr:\n{stderr}\nserver:\n{}",
        server.log()
    );
}

/// Whether speech arrives at `phone` within 20 s: three 100 ms windows, one after another, as
/// loud as a voice.
pub fn hears_speech(phone: &std::net::UdpSocket) -> bool {
    use switchboard_media::Law;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut window, mut loud_in_a_row) = (Vec::new(), 0);
    let mut buf = [0u8; 2048];
    while std::time::Instant::now() < deadline {
        let Ok((n, _)) = phone.recv_from(&mut buf) else {
            continue;
        };
        if n <= 12 || buf[1] & 0x7f != 0 {
            continue;
        }
        let mut frame = vec![0i16; n - 12];
        Law::Ulaw.decode(&buf[12..n], &mut frame);
        window.extend(frame);
        if window.len() >= 800 {
            let power = window.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 800.0;
            loud_in_a_row = if power.sqrt() > 500.0 {
                loud_in_a_row + 1
            } else {
                0
            };
            window.clear();
            if loud_in_a_row >= 3 {
                return true;
            }
        }
    }
    false
}
