//! A size bound on the prompt caches on disk (fetched audio, rendered speech): entries are
//! files whose modification time is their last use, and once the bytes written since the
//! last look pass a tenth of the bound, the directories are measured and the least recently
//! used entries removed until they hold 90 % of it. Without this, every distinct `<Say>` text
//! and `<Play>` URL an application ever used would stay on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;
use tracing::{info, warn};

/// The default bound: 1 GiB holds about 18 hours of 8 kHz speech.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

pub struct DiskBudget {
    dirs: Vec<PathBuf>,
    max_bytes: AtomicU64,
    since_sweep: AtomicU64,
    sweeping: AtomicBool,
}

impl DiskBudget {
    pub fn new(dirs: Vec<PathBuf>, max_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            dirs,
            max_bytes: AtomicU64::new(max_bytes),
            // The first write measures what an earlier run left.
            since_sweep: AtomicU64::new(u64::MAX / 2),
            sweeping: AtomicBool::new(false),
        })
    }

    /// Changes the bound; it applies from the next sweep.
    pub fn set_max(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// Marks `path` as just used, so that it is among the last to go.
    pub fn touch(path: &Path) {
        if let Ok(file) = std::fs::File::options().append(true).open(path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Counts `bytes` just written; sweeps off the async threads when due.
    pub fn wrote(self: &Arc<Self>, bytes: u64) {
        let total = self
            .since_sweep
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if total < self.max_bytes.load(Ordering::Relaxed) / 10
            || self.sweeping.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.since_sweep.store(0, Ordering::Relaxed);
        let budget = self.clone();
        tokio::task::spawn_blocking(move || {
            budget.sweep();
            budget.sweeping.store(false, Ordering::Release);
        });
    }

    /// Removes least recently used entries until the directories hold at most 90 % of the
    /// bound. An entry is every file sharing a stem (`KEY.body` and `KEY.json` go together).
    /// Returns the bytes held after.
    pub fn sweep(&self) -> u64 {
        let max_bytes = self.max_bytes.load(Ordering::Relaxed);
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for dir in &self.dirs {
            let Ok(listing) = std::fs::read_dir(dir) else {
                continue;
            };
            for item in listing.flatten() {
                let Ok(meta) = item.metadata() else { continue };
                if meta.is_file() {
                    let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    entries.push((used, meta.len(), item.path()));
                }
            }
        }
        let mut held: u64 = entries.iter().map(|e| e.1).sum();
        let target = max_bytes / 10 * 9;
        if held <= max_bytes {
            return held;
        }
        entries.sort();
        let mut removed = 0usize;
        for (_, len, path) in entries {
            if held <= target {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    held = held.saturating_sub(len);
                    removed += 1;
                    // The entry's other files (a body's metadata) go with it.
                    if let Some(stem) = path.file_stem() {
                        for other in ["json", "body"] {
                            let sibling = path.with_file_name(stem).with_extension(other);
                            if sibling != path
                                && let Ok(meta) = std::fs::metadata(&sibling)
                                && std::fs::remove_file(&sibling).is_ok()
                            {
                                held = held.saturating_sub(meta.len());
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot remove a cached prompt")
                }
            }
        }
        info!(
            removed,
            held_bytes = held,
            max_bytes,
            "prompt cache on disk trimmed"
        );
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_least_recently_used_entries_go_first_until_90_percent() {
        let dir = tempfile::tempdir().unwrap();
        let (http, speech) = (dir.path().join("http"), dir.path().join("speech"));
        std::fs::create_dir_all(&http).unwrap();
        std::fs::create_dir_all(&speech).unwrap();
        let base = SystemTime::now() - Duration::from_secs(3600);
        let put = |path: PathBuf, len: usize, age: u64| {
            std::fs::write(&path, vec![0u8; len]).unwrap();
            let f = std::fs::File::options().append(true).open(&path).unwrap();
            f.set_modified(base + Duration::from_secs(age)).unwrap();
        };
        // Oldest first: a.body (+ its a.json), s1, b.body (+ b.json), s2.
        put(http.join("a.body"), 300, 1);
        put(http.join("a.json"), 10, 50);
        put(speech.join("s1.s16"), 300, 2);
        put(http.join("b.body"), 300, 3);
        put(http.join("b.json"), 10, 3);
        put(speech.join("s2.s16"), 300, 4);
        let budget = DiskBudget::new(vec![http.clone(), speech.clone()], 1000);
        // s1 is played again: now the most recent.
        DiskBudget::touch(&speech.join("s1.s16"));
        let held = budget.sweep();
        assert!(held <= 900, "{held}");
        assert!(!http.join("a.body").exists() && !http.join("a.json").exists());
        assert!(!http.join("b.body").exists() && !http.join("b.json").exists());
        assert!(speech.join("s1.s16").exists() && speech.join("s2.s16").exists());
        assert_eq!(held, 600);
        // Under the bound, nothing goes.
        assert_eq!(budget.sweep(), 600);
        assert!(speech.join("s2.s16").exists());
    }
}
