//! What the load benches share: the release binary of this package started on a
//! configuration, ready when it says so, stopped when dropped.

#![allow(dead_code)] // each bench uses part of it

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct BenchServer {
    child: Child,
}

impl BenchServer {
    /// Writes `config` into `dir` and starts the server there; returns once it is ready.
    pub fn start(dir: &Path, config: &str) -> Self {
        let file = dir.join("switchboard.toml");
        std::fs::write(&file, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--config"])
            .arg(&file)
            .current_dir(dir)
            .env("SWITCHBOARD_DATA_DIR", dir)
            .env("RUST_LOG", "warn,switchboard::app=info")
            // Benches give the models they use; nothing is fetched while they measure.
            .env("SWITCHBOARD_SPEECH__FETCH", "false")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = said.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(" ready") {
                    let _ = ready_tx.send(());
                }
                let mut lines = lines.lock().unwrap();
                if lines.len() < 200 {
                    lines.push(line);
                }
            }
        });
        if ready.recv_timeout(Duration::from_secs(20)).is_err() {
            let said = said.lock().unwrap().join("\n");
            panic!("the server did not start:\n{said}");
        }
        Self { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
