//! Worker threads that run a speech engine each, fed from one bounded queue. A request that
//! finds the queue full is refused at once ([`SpeechError::Busy`]): a call never waits behind
//! another call's recognition, and the process never holds an unbounded backlog of audio.
//! With `preload`, each worker opens its engine at once (a model takes seconds to load, and
//! the first caller should not wait for it); without, on its first request.

use super::{Ask, Engine, EngineFactory, Recognition, SpeechError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Job {
    audio: Arc<[f32]>,
    ask: Ask,
    queued: Instant,
    done: oneshot::Sender<Result<Recognition, SpeechError>>,
}

/// Counters for the benchmark and metrics.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Requests answered (recognised or failed).
    pub done: AtomicU64,
    pub refused: AtomicU64,
    /// Seconds of audio recognised, in microseconds.
    pub audio_us: AtomicU64,
    /// Time the workers spent recognising, in microseconds.
    pub busy_us: AtomicU64,
    /// Time requests waited in the queue, in microseconds.
    pub waited_us: AtomicU64,
    /// Workers whose engine is open.
    pub engines_open: AtomicU64,
    /// Requests queued that no worker has taken yet.
    pub waiting: AtomicU64,
    /// Requests a worker has taken and not yet answered.
    pub working: AtomicU64,
}

impl PoolStats {
    /// Recognition time over audio time: below 1 keeps up with speech.
    pub fn real_time_factor(&self) -> f64 {
        let audio = self.audio_us.load(Ordering::Relaxed);
        self.busy_us.load(Ordering::Relaxed) as f64 / audio.max(1) as f64
    }
}

/// A handle on the workers; cheap to clone. The workers stop when every handle is gone.
#[derive(Clone)]
pub struct Pool {
    tx: SyncSender<Job>,
    name: Arc<str>,
    stats: Arc<PoolStats>,
}

impl Pool {
    /// `workers` threads (at least one) and room for `queue` waiting requests.
    pub fn start(
        factory: Arc<dyn EngineFactory>,
        workers: usize,
        queue: usize,
        preload: bool,
    ) -> Self {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(PoolStats::default());
        for n in 0..workers.max(1) {
            let (rx, factory, stats) = (rx.clone(), factory.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("speech-{n}"))
                .spawn(move || work(&rx, &*factory, &stats, preload))
                .expect("a thread for a speech worker");
        }
        Self {
            tx,
            name: factory.name().into(),
            stats,
        }
    }

    pub fn engine(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Queues one utterance ([`super::RATE`] samples); the answer comes on the receiver.
    pub fn recognize(
        &self,
        audio: Arc<[f32]>,
    ) -> Result<oneshot::Receiver<Result<Recognition, SpeechError>>, SpeechError> {
        self.recognize_as(audio, Ask::default())
    }

    /// As [`Pool::recognize`], heard as `ask` says (its language, its hints).
    pub fn recognize_as(
        &self,
        audio: Arc<[f32]>,
        ask: Ask,
    ) -> Result<oneshot::Receiver<Result<Recognition, SpeechError>>, SpeechError> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            audio,
            ask,
            queued: Instant::now(),
            done,
        };
        // Counted before it is sent: a worker may take it (and count it off) at once.
        self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        let sent = self.tx.try_send(job);
        if sent.is_err() {
            self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(SpeechError::Busy)
            }
            Err(TrySendError::Disconnected(_)) => Err(SpeechError::Unavailable(
                "the speech workers stopped".into(),
            )),
        }
    }

    /// Whether requests wait for a worker: work that may be thrown away (a guess ahead of
    /// the final result) is not worth asking for then.
    pub fn backlogged(&self) -> bool {
        self.stats.waiting.load(Ordering::Relaxed) > 0
    }

    /// Whether no worker is at work and nothing waits: work that is only worth it when it
    /// delays nothing (an early guess) is asked for then. (Asked for whenever one worker of
    /// two was free, early guesses took the workers that other calls' later guesses needed.)
    pub fn idle(&self) -> bool {
        !self.backlogged() && self.stats.working.load(Ordering::Relaxed) == 0
    }
}

/// A worker's engine, counted and logged.
fn open(factory: &dyn EngineFactory, stats: &PoolStats) -> Result<Box<dyn Engine>, SpeechError> {
    let opened = factory.open();
    match &opened {
        Ok(_) => {
            tracing::info!(engine = factory.name(), "speech engine ready");
            stats.engines_open.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::error!(engine = factory.name(), error = %e, "cannot open the speech engine")
        }
    }
    opened
}

fn work(rx: &Mutex<Receiver<Job>>, factory: &dyn EngineFactory, stats: &PoolStats, preload: bool) {
    let mut engine = if preload {
        open(factory, stats).ok()
    } else {
        None
    };
    loop {
        // The lock is held only while waiting for a job, never while recognising.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // Counted at work before it is counted off the queue, so that a request is never
        // in neither count (the pool would look idle).
        stats.working.fetch_add(1, Ordering::Relaxed);
        let _ = (stats.waiting).fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            Some(w.saturating_sub(1))
        });
        let recognised = answer(job, &mut engine, factory, stats);
        stats.working.fetch_sub(1, Ordering::Relaxed);
        if !recognised {
            continue;
        }
        // A recognition's tensors are freed when it ends, but glibc keeps a worker's heap at
        // its high-water mark: with callers talking, two workers held 30–50 MB more than
        // loaded. Given back after each job, they stay within 15 MB of it, at the same
        // real-time factor (benches/load/RESULTS.md, "Speech memory").
        super::runtime::release_freed_memory();
    }
}

/// Recognises one request with the worker's engine (opened now if it is not yet); whether it
/// did.
fn answer(
    job: Job,
    engine: &mut Option<Box<dyn Engine>>,
    factory: &dyn EngineFactory,
    stats: &PoolStats,
) -> bool {
    // An answer nobody waits for any more (the call ended, a newer partial was asked for) is
    // not worth the work.
    if job.done.is_closed() {
        return false;
    }
    let started = Instant::now();
    if engine.is_none() {
        match open(factory, stats) {
            Ok(e) => *engine = Some(e),
            Err(e) => {
                let _ = job.done.send(Err(e));
                return false;
            }
        }
    }
    let result = engine
        .as_mut()
        .map(|e| e.recognize(&job.audio, &job.ask))
        .unwrap_or_else(|| Err(SpeechError::Unavailable("no engine".into())));
    let micros = |d: Duration| d.as_micros().min(u64::MAX as u128) as u64;
    stats
        .waited_us
        .fetch_add(micros(started - job.queued), Ordering::Relaxed);
    stats
        .busy_us
        .fetch_add(micros(started.elapsed()), Ordering::Relaxed);
    stats.audio_us.fetch_add(
        job.audio.len() as u64 * 1_000_000 / super::RATE as u64,
        Ordering::Relaxed,
    );
    stats.done.fetch_add(1, Ordering::Relaxed);
    let _ = job.done.send(result);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An engine that says how many samples it got, after the test lets it go.
    struct Gate(Arc<Mutex<mpsc::Receiver<()>>>);
    impl Engine for Gate {
        fn recognize(&mut self, audio: &[f32], _: &Ask) -> Result<Recognition, SpeechError> {
            let _ = self.0.lock().unwrap().recv();
            Ok(Recognition {
                text: audio.len().to_string(),
                confidence: 1.0,
            })
        }
    }
    struct GateFactory(Arc<Mutex<mpsc::Receiver<()>>>);
    impl EngineFactory for GateFactory {
        fn name(&self) -> &str {
            "gate"
        }
        fn open(&self) -> Result<Box<dyn Engine>, SpeechError> {
            Ok(Box::new(Gate(self.0.clone())))
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_the_queued_work_is_answered() {
        let (go, gate) = mpsc::channel();
        let pool = Pool::start(
            Arc::new(GateFactory(Arc::new(Mutex::new(gate)))),
            1,
            1,
            false,
        );
        let first = pool.recognize(vec![0.0; 10].into()).unwrap();
        // The worker takes the first; wait until it has, so the queue's one place is free.
        while pool
            .tx
            .try_send(Job {
                audio: vec![].into(),
                ask: Ask::default(),
                queued: Instant::now(),
                done: oneshot::channel().0,
            })
            .is_err()
        {
            tokio::task::yield_now().await;
        }
        // The queue now holds that probe (whose answer nobody awaits): a third is refused.
        assert_eq!(
            pool.recognize(vec![0.0; 30].into()).unwrap_err(),
            SpeechError::Busy
        );
        assert_eq!(pool.stats().refused.load(Ordering::Relaxed), 1);
        go.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().text, "10");
        // The abandoned probe is skipped, not recognised (it would take the next `go`): the
        // worker is free for the next request once it has taken the probe off the queue.
        let next = loop {
            match pool.recognize(vec![0.0; 20].into()) {
                Ok(next) => break next,
                Err(SpeechError::Busy) => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        };
        go.send(()).unwrap();
        assert_eq!(next.await.unwrap().unwrap().text, "20");
    }

    #[tokio::test]
    async fn requests_waiting_for_a_busy_worker_are_a_backlog() {
        let (go, gate) = mpsc::channel();
        let pool = Pool::start(
            Arc::new(GateFactory(Arc::new(Mutex::new(gate)))),
            1,
            4,
            false,
        );
        assert!(!pool.backlogged());
        assert!(pool.idle());
        let first = pool.recognize(vec![0.0; 10].into()).unwrap();
        // Taken by the worker (which waits at the gate): nothing is left waiting, but the
        // one worker is busy.
        while pool.backlogged() {
            tokio::task::yield_now().await;
        }
        assert!(!pool.idle(), "the worker is at work");
        let second = pool.recognize(vec![0.0; 20].into()).unwrap();
        assert!(pool.backlogged(), "the second waits for the busy worker");
        go.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().text, "10");
        go.send(()).unwrap();
        assert_eq!(second.await.unwrap().unwrap().text, "20");
        assert!(!pool.backlogged());
        while !pool.idle() {
            tokio::task::yield_now().await;
        }
    }

    struct Broken;
    impl EngineFactory for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn open(&self) -> Result<Box<dyn Engine>, SpeechError> {
            Err(SpeechError::Unavailable("no model".into()))
        }
    }

    #[tokio::test]
    async fn an_engine_that_cannot_open_answers_with_its_error() {
        let pool = Pool::start(Arc::new(Broken), 1, 4, false);
        let answer = pool.recognize(vec![0.0; 10].into()).unwrap().await.unwrap();
        assert_eq!(answer, Err(SpeechError::Unavailable("no model".into())));
    }
}
