//! A real Kamailio (Debian's package) as a carrier's SIP proxy in front of Switchboard, run
//! with a configuration kept in tests/kamailio/, in its own process group so that every child
//! it forks ends with it.

use super::Net;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Kamailio {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Kamailio {
    /// Starts `tests/kamailio/{config}` listening on UDP `host:5060` of `net`, with `defines`
    /// (`-A NAME=VALUE`), and waits until its socket is bound.
    pub fn start(net: &Net, config: &str, host: u8, defines: &[(&str, &str)]) -> Self {
        use std::os::unix::process::CommandExt;
        let path = format!("{}/tests/kamailio/{config}", env!("CARGO_MANIFEST_DIR"));
        let run = net.path("kamailio");
        std::fs::create_dir_all(&run).unwrap();
        let mut cmd = Command::new("kamailio");
        cmd.args(["-f", &path, "-DD", "-E", "-n", "1"])
            .arg("-Y")
            .arg(&run)
            .arg("-w")
            .arg(&run)
            .args(["-A", &format!("LISTEN=udp:{}:5060", net.ip(host))]);
        for (name, value) in defines {
            cmd.args(["-A", &format!("{name}={value}")]);
        }
        let mut child = super::owned(
            cmd.process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect(
                    "kamailio not found: run scripts/test.sh, which installs the kamailio package",
                ),
        );
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Printed once the listening socket exists; what arrives from then on waits
                // in its buffer until a worker reads it.
                if line.contains("SO_RCVBUF is finally") {
                    let _ = ready_tx.send(());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let kamailio = Self { child, log };
        if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            panic!("kamailio did not start:\n{}", kamailio.log());
        }
        kamailio
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // The whole group: the main process and the workers it forked.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}
