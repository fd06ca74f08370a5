//! Liveness of the threads that carry calls (the SIP core, media workers, the recorder).
//!
//! Each supervised thread owns a [`Beat`]: it runs under [`supervise`], which catches a panic and
//! marks the beat failed, and, if it loops, calls [`Beat::beat`] on every round so that a thread
//! stuck in one round shows as stalled. [`Health`] gathers the beats: `/healthz` renders its
//! [`Health::report`], and the server shuts down and exits non-zero once [`Health::failure`]
//! resolves — a thread that died has taken its calls' state with it, and a restart (with the
//! recovery of what the last run left open) is the honest way back.
//!
//! Time is passed in (`now`), so the rules are tested without waiting.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One supervised thread.
#[derive(Debug)]
pub struct Beat {
    name: String,
    /// A thread that loops is stalled when it has not beaten for this long; `None` for one that
    /// waits on a queue and may rightly sleep for hours.
    stall_after: Option<Duration>,
    origin: Instant,
    /// Milliseconds from `origin` to the last beat.
    last: AtomicU64,
    failure: OnceLock<String>,
    failed: Arc<Notify>,
}

impl Beat {
    pub fn new(name: impl Into<String>, stall_after: Option<Duration>) -> Arc<Self> {
        Self::starting_at(name, stall_after, Instant::now())
    }

    fn starting_at(
        name: impl Into<String>,
        stall_after: Option<Duration>,
        now: Instant,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            stall_after,
            origin: now,
            last: AtomicU64::new(0),
            failure: OnceLock::new(),
            failed: Arc::new(Notify::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The thread made progress at `now`.
    pub fn beat_at(&self, now: Instant) {
        let ms = u64::try_from(now.saturating_duration_since(self.origin).as_millis())
            .unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// The thread is gone (the first reason is kept).
    pub fn fail(&self, why: impl Into<String>) {
        if self.failure.set(why.into()).is_ok() {
            self.failed.notify_one();
        }
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// How the thread is doing at `now`.
    pub fn state(&self, now: Instant) -> State {
        if let Some(why) = self.failure() {
            return State::Failed(why.to_owned());
        }
        let last = self.origin + Duration::from_millis(self.last.load(Ordering::Relaxed));
        let quiet = now.saturating_duration_since(last);
        match self.stall_after {
            Some(limit) if quiet > limit => State::Stalled(quiet),
            _ => State::Ok,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Ok,
    /// No beat for this long.
    Stalled(Duration),
    /// Panicked (with its message) or ended unexpectedly.
    Failed(String),
}

/// Runs `body` on behalf of `beat`'s thread: a panic marks the beat failed instead of passing
/// silently (the panic hook has printed it already).
pub fn supervise<T>(beat: &Beat, body: impl FnOnce() -> T) -> Option<T> {
    beat.beat();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => Some(value),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-text payload".into());
            beat.fail(format!("panicked: {message}"));
            None
        }
    }
}

/// The beats of one server.
#[derive(Debug, Default)]
pub struct Health {
    beats: Mutex<Vec<Arc<Beat>>>,
}

/// What `/healthz` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub healthy: bool,
    /// Every thread that is not fine, by name.
    pub problems: Vec<(String, State)>,
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn watch(&self, beat: Arc<Beat>) {
        self.beats.lock().expect("not poisoned").push(beat);
    }

    pub fn report(&self, now: Instant) -> Report {
        let beats = self.beats.lock().expect("not poisoned");
        let problems: Vec<_> = beats
            .iter()
            .map(|b| (b.name.clone(), b.state(now)))
            .filter(|(_, s)| *s != State::Ok)
            .collect();
        Report {
            healthy: problems.is_empty(),
            problems,
        }
    }

    /// Resolves with the name and reason of the first thread that fails.
    pub async fn failure(&self) -> (String, String) {
        loop {
            let waiters: Vec<_> = {
                let beats = self.beats.lock().expect("not poisoned");
                if let Some(b) = beats.iter().find(|b| b.failure().is_some()) {
                    return (b.name.clone(), b.failure().unwrap_or_default().to_owned());
                }
                beats.iter().map(|b| b.failed.clone()).collect()
            };
            // A failure between the check and here left a permit in its Notify, so this wakes.
            let notified = waiters.iter().map(|n| Box::pin(n.notified()));
            futures_select_all(notified.collect()).await;
        }
    }
}

/// Waits until any of the futures completes (a small `select_all`, to keep this crate free of
/// `futures`).
async fn futures_select_all(
    mut futures: Vec<std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>>>,
) {
    std::future::poll_fn(|cx| {
        for f in &mut futures {
            if f.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_looping_thread_stalls_when_it_stops_beating() {
        let t0 = Instant::now();
        let beat = Beat::starting_at("media-0", Some(Duration::from_secs(5)), t0);
        beat.beat_at(t0 + Duration::from_secs(1));
        assert_eq!(beat.state(t0 + Duration::from_secs(6)), State::Ok);
        assert_eq!(
            beat.state(t0 + Duration::from_secs(7)),
            State::Stalled(Duration::from_secs(6))
        );
        beat.beat_at(t0 + Duration::from_secs(7));
        assert_eq!(beat.state(t0 + Duration::from_secs(8)), State::Ok);

        let queue = Beat::starting_at("recorder", None, t0);
        assert_eq!(queue.state(t0 + Duration::from_secs(86_400)), State::Ok);
    }

    #[test]
    fn a_panic_is_caught_and_reported() {
        let health = Health::new();
        let sip = Beat::new("sip", Some(Duration::from_secs(5)));
        health.watch(sip.clone());
        health.watch(Beat::new("media-0", Some(Duration::from_secs(5))));
        assert!(health.report(Instant::now()).healthy);
        let beat = sip.clone();
        let out = std::thread::spawn(move || supervise(&beat, || panic!("index out of bounds")))
            .join()
            .expect("the panic was caught");
        assert_eq!(out, None::<()>);
        let report = health.report(Instant::now());
        assert!(!report.healthy);
        assert_eq!(
            report.problems,
            [(
                "sip".to_owned(),
                State::Failed("panicked: index out of bounds".into())
            )]
        );
        // A second failure does not replace the first reason.
        sip.fail("later");
        assert_eq!(sip.failure(), Some("panicked: index out of bounds"));
    }

    #[tokio::test]
    async fn failure_resolves_when_a_thread_dies() {
        let health = Health::new();
        let a = Beat::new("media-0", None);
        let b = Beat::new("media-1", None);
        health.watch(a);
        health.watch(b.clone());
        let waiter = {
            let health = health.clone();
            tokio::spawn(async move { health.failure().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        std::thread::spawn(move || supervise(&b, || panic!("boom")));
        let (name, why) = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by the failure")
            .unwrap();
        assert_eq!((name.as_str(), why.as_str()), ("media-1", "panicked: boom"));
    }
}
