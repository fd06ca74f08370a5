//! Speech recognition under load, printed as a table: S simulated callers talk at once in real
//! time (Piper-spoken phone phrases over μ-law, a pause after each), each cut into utterances
//! by the endpointer and recognised by a pool of workers (one per core by default), with a
//! partial result asked for every second of speech as live transcription does. For each S:
//! final results, their latency after the end of the utterance (median, 95th percentile),
//! late ones (over `LATE_MS`), refused ones (pool full), partials skipped, the real-time
//! factor per worker, the process's CPU and memory: resident (RSS) and proportional (PSS).
//! The workers map the model's weights from one file each, so RSS counts those pages once per
//! worker that touched them; PSS counts each page once, which is what the process costs.
//!
//!   scripts/install-speech.sh && cargo bench -p switchboard-speech --bench speech_load
//!   knobs: STREAMS="1 2 4 6 8", SECS=20, WORKERS=(cores), LATE_MS=1000

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use switchboard_media::{FRAME, Law, tone};
use switchboard_speech::{Endpointer, EndpointerConfig, Pool, Utterance, moonshine::Model};

#[allow(unreachable_pub, dead_code)]
#[path = "../../tests/e2e/common/voices.rs"]
mod voices;

const PHRASES: [&str; 5] = [
    "please transfer me to the billing department",
    "i would like to check my account balance",
    "my internet has been down since yesterday",
    "could you call me back this afternoon",
    "how much does the premium plan cost",
];

fn knob(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Resident, proportional and peak resident memory, MB.
fn memory_mb() -> (f64, f64, f64) {
    let field = |file: &str, name: &str| {
        (std::fs::read_to_string(file).unwrap().lines())
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    let status = "/proc/self/status";
    (
        field(status, "VmRSS:"),
        field("/proc/self/smaps_rollup", "Pss:"),
        field(status, "VmHWM:"),
    )
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    refused: u32,
    partials_skipped: u32,
}

/// One caller for `secs`: its phrases with a pause after each, 20 ms at a time in real time.
async fn caller(pool: Pool, audio: Arc<Vec<i16>>, offset: usize, secs: u64) -> Tally {
    let mut e = Endpointer::new(EndpointerConfig {
        start_timeout: None,
        end_silence: Duration::from_millis(700),
        max_speech: Duration::from_secs(20),
        partial_every: Some(Duration::from_secs(1)),
    });
    let mut tally = Tally::default();
    let mut pending = Vec::new();
    let mut partial: Option<tokio::sync::oneshot::Receiver<_>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let frames = audio.len() / FRAME;
    for n in 0..(secs * 50) as usize {
        tick.tick().await;
        let i = (n + offset) % frames;
        let frame: &[i16; FRAME] = audio[i * FRAME..(i + 1) * FRAME].try_into().unwrap();
        match e.push(frame) {
            Some(Utterance::Final(a)) => {
                e.restart();
                match pool.recognize(a) {
                    Ok(rx) => {
                        let at = Instant::now();
                        pending.push(tokio::spawn(async move { (rx.await, at.elapsed()) }));
                    }
                    Err(_) => tally.refused += 1,
                }
            }
            Some(Utterance::Partial(a)) => {
                if partial.as_mut().is_some_and(|p| p.try_recv().is_err()) {
                    tally.partials_skipped += 1;
                } else {
                    partial = pool.recognize(a).ok();
                }
            }
            _ => {}
        }
    }
    for task in pending {
        if let Ok((Ok(Ok(_)), took)) = task.await {
            tally.latencies_ms.push(took.as_secs_f64() * 1000.0);
        }
    }
    tally
}

fn main() {
    let dir = voices::speech_dir();
    let model = Model::find(&dir).unwrap_or_else(|e| panic!("{e}"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: usize = knob("WORKERS", &cores.to_string()).parse().unwrap();
    let secs: u64 = knob("SECS", "20").parse().unwrap();
    let late_ms: f64 = knob("LATE_MS", "1000").parse().unwrap();
    // The callers' speech, as the line carries it.
    let mut audio = Vec::new();
    for p in PHRASES {
        audio.extend(voices::piper(p));
        audio.extend(tone::silence(1200));
    }
    let mut law = vec![0u8; audio.len()];
    Law::Ulaw.encode(&audio, &mut law);
    Law::Ulaw.decode(&law, &mut audio);
    let audio = Arc::new(audio);
    let speech_share = PHRASES.len() as f64 * 2.6 / (audio.len() as f64 / 8000.0);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rss0, pss0, _) = memory_mb();
    let pool = Pool::start(model.factory().unwrap(), workers, 4 * workers, true);
    // Warm up: every worker loads its model and recognises once.
    rt.block_on(async {
        let warm: Vec<_> = (0..workers)
            .map(|_| pool.recognize(vec![0.0; 16000].into()).unwrap())
            .collect();
        for w in warm {
            let _ = w.await;
        }
    });
    // One worker may have answered both warm-up requests before the other has loaded.
    let loading = Instant::now();
    while pool.stats().engines_open.load(Ordering::Relaxed) < workers as u64 {
        assert!(
            loading.elapsed() < Duration::from_secs(300),
            "the workers did not load"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (rss1, pss1, _) = memory_mb();
    println!(
        "speech recognition load: {workers} worker(s) on {cores} core(s), {secs} s per row, \
         speech ~{:.0} % of each caller's time, partials every 1 s of speech",
        speech_share * 100.0
    );
    println!(
        "memory (RSS / PSS): {rss0:.0} / {pss0:.0} MB before the pool, {rss1:.0} / {pss1:.0} MB \
         with {workers} loaded worker(s)"
    );
    println!(
        "{:>7} {:>7} {:>8} {:>8} {:>5} {:>7} {:>9} {:>9} {:>8} {:>9} {:>9}",
        "callers",
        "finals",
        "p50 ms",
        "p95 ms",
        "late",
        "refused",
        "partials-",
        "RTF/wkr",
        "CPU %",
        "RSS MB",
        "PSS MB"
    );
    for s in knob("STREAMS", "1 2 4 6 8").split_whitespace() {
        let s: usize = s.parse().unwrap();
        let stats = pool.stats();
        let (busy0, audio0) = (
            stats.busy_us.load(Ordering::Relaxed),
            stats.audio_us.load(Ordering::Relaxed),
        );
        let (cpu0, t0) = (cpu_secs(), Instant::now());
        let tallies = rt.block_on(async {
            let frames = audio.len() / FRAME;
            let tasks: Vec<_> = (0..s)
                .map(|i| {
                    tokio::spawn(caller(
                        pool.clone(),
                        audio.clone(),
                        i * frames / s.max(1),
                        secs,
                    ))
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (cpu_secs() - cpu0) / wall * 100.0;
        let mut lat: Vec<f64> = tallies
            .iter()
            .flat_map(|t| t.latencies_ms.clone())
            .collect();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        let late = lat.iter().filter(|&&l| l > late_ms).count();
        let refused: u32 = tallies.iter().map(|t| t.refused).sum();
        let skipped: u32 = tallies.iter().map(|t| t.partials_skipped).sum();
        let busy = stats.busy_us.load(Ordering::Relaxed) - busy0;
        let heard = stats.audio_us.load(Ordering::Relaxed) - audio0;
        let (rss, pss, _) = memory_mb();
        println!(
            "{:>7} {:>7} {:>8.0} {:>8.0} {:>5} {:>7} {:>9} {:>9.3} {:>8.0} {:>9.0} {:>9.0}",
            s,
            lat.len(),
            pct(0.5),
            pct(0.95),
            late,
            refused,
            skipped,
            busy as f64 / heard.max(1) as f64,
            cpu,
            rss,
            pss
        );
    }
    let (_, _, peak) = memory_mb();
    println!("peak RSS {peak:.0} MB");
}
