//! What the browser-driving scripts (tests/compat/*_browser.js) print: one JSON object a line,
//! each with an `event`.

use super::{Net, Server, owned, owned_gently};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `tests/compat/{script}` (a browser-driving Node script) with `args`, its modules
/// found on `node_path`; its stdout is piped for [`events`], and a failing test stops it
/// gently (so puppeteer closes the browser it started). The browser is Chromium.
pub fn script(script: &str, args: &[&str], node_path: &str) -> Page {
    let disk = device_disk();
    Page {
        script: start(script, args, node_path, &disk, &[]),
        sound: None,
        _disk: disk,
    }
}

/// Where a device's files go (the browser's profile, its sound server's runtime files): RAM
/// (`/dev/shm`) where the machine has it, else the usual temporary directory.
///
/// A browser stands for a user's device, which has a disk of its own. Here its profile shared
/// the machine's disk with the servers under test and whatever else runs. Beside a neighbour
/// that writes gigabytes (a build), the browser's threads were seen blocked on the disk
/// (its main thread, its cookie and storage threads), and in the suite Firefox's page stopped
/// for up to 2 s at a time (its timers, its microphone and its playout), which the far end
/// rightly heard as a gap. With its files in RAM, three runs of the suite beside such a build
/// showed no such stall. (Debian mounts /tmp in RAM by default; a machine may not.)
fn device_disk() -> tempfile::TempDir {
    (tempfile::Builder::new().prefix("switchboard-device-"))
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("a temporary directory for the browser")
}

fn start(
    script: &str,
    args: &[&str],
    node_path: &str,
    disk: &tempfile::TempDir,
    env: &[(&str, &str)],
) -> Child {
    let path = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = owned_gently(
        as_a_users_device(&mut Command::new("node"))
            .arg(path)
            .args(args)
            .env("NODE_PATH", node_path)
            // The browser's profile (puppeteer makes it in the OS's temporary directory).
            .env("TMPDIR", disk.path())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node"),
    );
    forward_stderr(&mut child);
    child
}

/// How far a browser (and its sound server) is ahead of the rest of the machine for the CPU.
const DEVICE_NICE: libc::c_int = -10;

/// Runs `command` (and all it starts: the browser) ahead of the machine's other work for the
/// CPU. A browser stands for a user's device, which has cores of its own and, on a desktop,
/// real-time audio threads (rtkit); here it shares two cores with the server under test, the
/// rest of the suite and whatever else runs, at the same priority. On a loaded machine that
/// starved it: its timers, its microphone and its RTP stopped for 0.5 to 1.3 s at a time (its
/// own log: 2 packets sent in 566 ms, then 43 in 323 ms), and the far end rightly heard the
/// gap. The server keeps the priority it is given: what it does under load is under test.
/// Without the privilege to raise a priority (CAP_SYS_NICE), the command runs as it is.
fn as_a_users_device(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setpriority is async-signal-safe, touches only the child's own priority, and
    // its failure is ignored.
    unsafe {
        command.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, DEVICE_NICE);
            Ok(())
        })
    }
}

/// The browsers the tests drive: Debian's `chromium` and `firefox-esr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Browser {
    Chromium,
    Firefox,
}

impl Browser {
    /// The network a test in this browser runs on: Firefox neither gathers a loopback ICE
    /// candidate nor pairs with a loopback address, so its tests run on a network of their own
    /// with an interface that is not loopback ([`Net::isolated`]).
    pub fn net(self, n: u8) -> Net {
        match self {
            Browser::Chromium => Net::new(n),
            Browser::Firefox => Net::isolated(n),
        }
    }

    /// Where the script serves its page: a loopback address, a secure context as WebRTC needs
    /// (on an isolated network 127.0.0.1 is the test's own).
    pub fn page_host(self, net: &Net) -> String {
        match self {
            Browser::Chromium => net.ip(9),
            Browser::Firefox => "127.0.0.1".to_owned(),
        }
    }
}

/// A browser-driving script and what its browser needs beside it (Firefox: a sound server; a
/// directory for its files, removed when the page is dropped).
pub struct Page {
    script: Child,
    sound: Option<Child>,
    _disk: tempfile::TempDir,
}

impl std::ops::Deref for Page {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.script
    }
}

impl std::ops::DerefMut for Page {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.script
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(sound) = &mut self.sound {
            let _ = sound.kill();
            let _ = sound.wait();
        }
    }
}

/// [`script`] in `browser`. Firefox (headless) starts no Web Audio without an audio device:
/// it gets a PulseAudio server of the test's own with a null sink.
pub fn script_in(browser: Browser, script: &str, args: &[&str], node_path: &str) -> Page {
    if browser == Browser::Chromium {
        return self::script(script, args, node_path);
    }
    let disk = device_disk();
    let home = disk.path().join("pulse");
    std::fs::create_dir_all(home.join("run")).unwrap();
    let socket = home.join("native");
    let sound = owned(
        as_a_users_device(&mut Command::new("pulseaudio"))
            .args([
                "--daemonize=no",
                "-n",
                "--exit-idle-time=-1",
                "--disable-shm=true",
            ])
            .arg("--load=module-null-sink")
            .arg(format!(
                "--load=module-native-protocol-unix socket={} auth-anonymous=1",
                socket.display()
            ))
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "pulseaudio did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = format!("unix:{}", socket.display());
    Page {
        script: start(
            script,
            args,
            node_path,
            &disk,
            &[("BROWSER", "firefox"), ("PULSE_SERVER", &server)],
        ),
        sound: Some(sound),
        _disk: disk,
    }
}

/// Copies a child's piped stderr to the test's, line by line. Node makes the stderr it is
/// given non-blocking: shared with the test, the test's own writes there would fail when the
/// pipe is full.
pub fn forward_stderr(child: &mut std::process::Child) {
    let stderr = child.stderr.take().expect("stderr, piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
}

/// Waits for the script's next line with `event`, up to `wait` in all. Lines with other
/// events are kept for later waits when `keep` (a page and its script that print
/// concurrently), else passed over (a flow whose events repeat: each wait takes the next one).
/// A `failed` or `timeout` line fails the test with the server's log.
pub fn events<'a>(
    script: &mut std::process::Child,
    server: &'a Server,
    wait: Duration,
    keep: bool,
) -> impl FnMut(&str) -> Value + 'a {
    let (lines_tx, lines) = std::sync::mpsc::channel::<Value>();
    let stdout = script.stdout.take().expect("the script's stdout, piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // A line may carry a recording's samples: its start is enough for the log.
            let shown: String = line.chars().take(2000).collect();
            eprintln!("browser: {shown}");
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = lines_tx.send(v);
            }
        }
    });
    let deadline = Instant::now() + wait;
    let mut passed: Vec<Value> = Vec::new();
    move |what: &str| {
        if let Some(i) = passed.iter().position(|v| v["event"] == what) {
            return passed.remove(i);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the page said nothing of {what}\n{}", server.log()));
            assert!(
                !matches!(v["event"].as_str(), Some("failed" | "timeout")),
                "waiting for {what}: {v}\n{}",
                server.log()
            );
            if v["event"] == what {
                return v;
            }
            if keep {
                passed.push(v);
            }
        }
    }
}

/// From which of a page's looks on (each 150 ms apart) no audio packet arrived any more:
/// `Some(i)` when the count of packets received stayed the same from look `i` to the last;
/// `None` when packets still arrived at the end, or the page could not count them.
pub fn silent_from(heard: &Value) -> Option<usize> {
    // A page that could not count (no peer connection's figures) proves nothing.
    let packets: Vec<u64> = (heard["packets"].as_array().expect("packets").iter())
        .map(|p| p.as_u64())
        .collect::<Option<_>>()?;
    let last = *packets.last()?;
    let first_still = packets.iter().position(|&p| p == last)?;
    (first_still + 1 < packets.len()).then_some(first_still)
}

/// Whether, from look `from` on, the page heard nothing new: each look's loudest sound is
/// below -60 dB or quieter than the look before (what an analyser's smoothing leaves of audio
/// that stopped: it decays by its smoothing constant at each look).
pub fn fading_from(heard: &Value, from: usize) -> bool {
    let db: Vec<f64> = (heard["peaks"].as_array().expect("peaks").iter())
        .map(|p| p["db"].as_f64().unwrap_or(-200.0))
        .collect();
    (db.windows(2).enumerate())
        .skip(from)
        .all(|(_, w)| w[1] < -60.0 || w[1] < w[0])
}

/// Whether the page heard `hz` steadily once it began: at least 5 looks (750 ms) found it,
/// and from the first that did, at least four in five. A call's first second is the browser's
/// to spend starting its audio graph (Firefox on a loaded machine took 2 s of packets before
/// its analyser heard anything), so where the tone begins is not judged, only that it arrived
/// and stayed.
pub fn hears_steadily(heard: &Value, hz: f64) -> bool {
    let tone: Vec<bool> = (heard["peaks"].as_array().expect("peaks").iter())
        .map(|p| loud_at(p, hz))
        .collect();
    let Some(first) = tone.iter().position(|&t| t) else {
        return false;
    };
    let n = tone.iter().filter(|&&t| t).count();
    n >= 5 && n * 5 >= (tone.len() - first) * 4
}

fn loud_at(peak: &Value, hz: f64) -> bool {
    let (at, db) = (
        peak["hz"].as_f64().unwrap_or(0.0),
        peak["db"].as_f64().unwrap_or(-200.0),
    );
    (at - hz).abs() < 30.0 && db > -60.0
}

/// How many of a page's looks (`peaks`: the loudest frequency every 150 ms) found `hz`
/// loud (above -60 dB).
pub fn looks_at(heard: &Value, hz: f64) -> usize {
    (heard["peaks"].as_array().expect("peaks").iter())
        .filter(|p| loud_at(p, hz))
        .count()
}
