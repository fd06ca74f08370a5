//! Media streams under load, printed as a table: N calls from SIPp (the anchor harness's
//! `uac_media.xml`, PCMA `rtp_stream` at 50 packets a second) to a number whose TwiML streams
//! the call to a WebSocket server this bench runs, all on loopback on this machine:
//!
//! - `uni`: `<Start><Stream track="both_tracks">` then a long `<Pause>`: both tracks of every
//!   call to the application, 100 messages a second per stream;
//! - `bi`: `<Connect><Stream>`: the application sends every frame it hears back as a media
//!   message (a bot speaking in real time), which is played to the caller.
//!
//! Once every stream is up it measures, over `HOLD` seconds: frames per track received
//! against the 50 a second expected, gaps in each track's `chunk` sequence, how late each
//! frame came (its arrival against its `timestamp`, relative to the earliest frame of its
//! track: the delay Switchboard and the socket added beyond the best case), frames Switchboard
//! dropped because a socket did not keep up, Switchboard's CPU per stream and its memory per
//! stream (RSS growth over the idle server, divided by the streams).
//!
//!   cargo bench --bench stream_load          knobs: STREAMS=1000 HOLD=60 RATE=50 MODE=uni|bi|all
//!                                            ANCHOR=../shared/bench/anchor
//! SIPp (sip-tester) must be installed; the anchor harness's scenarios must be at ANCHOR.

use futures_util::{SinkExt, StreamExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::BenchServer;
use switchboard_media::{Law, tone};
use tokio_tungstenite::tungstenite::Message;

mod support;

const IP: &str = "127.0.80.1";
const APP_IP: &str = "127.0.80.9";
const CALLER_IP: &str = "127.0.80.2";
const NUMBER: &str = "+17775550800";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the application measured over the window.
#[derive(Default)]
struct Track {
    received: u64,
    gaps: u64,
    /// Arrival minus (stream start + timestamp), in µs, for each frame in the window.
    offsets: Vec<i64>,
}

#[derive(Default)]
struct Measured {
    tracks: Vec<[Track; 2]>,
}

struct Window {
    open: AtomicBool,
    closed: AtomicBool,
}

/// Pulls the value of `key` (`"name":"`, quotes and colon included) out of a media message
/// without a JSON parser or an allocation (the bench shares the two cores with what it
/// measures).
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let end = start + text[start..].find('"')?;
    Some(&text[start..end])
}

async fn application(
    listener: tokio::net::TcpListener,
    echo: bool,
    connected: Arc<AtomicUsize>,
    window: Arc<Window>,
    measured: Arc<Mutex<Measured>>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        let (connected, window, measured) = (connected.clone(), window.clone(), measured.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            // tungstenite zero-fills its whole read buffer on every read: keep it small.
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(4096);
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
            else {
                return;
            };
            let started = Instant::now();
            connected.fetch_add(1, Ordering::Relaxed);
            let (mut sink, mut source) = ws.split();
            let mut tracks: [Track; 2] = Default::default();
            let mut last_chunk = [0u64; 2];
            while let Some(Ok(message)) = source.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let now = Instant::now();
                if field(&text, r#""event":""#) != Some("media") {
                    continue;
                }
                let track = usize::from(field(&text, r#""track":""#) != Some("inbound"));
                let chunk: u64 = field(&text, r#""chunk":""#)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let at_ms: u64 = field(&text, r#""timestamp":""#)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let inside =
                    window.open.load(Ordering::Relaxed) && !window.closed.load(Ordering::Relaxed);
                if inside {
                    let t = &mut tracks[track];
                    t.received += 1;
                    if last_chunk[track] != 0 && chunk != last_chunk[track] + 1 {
                        t.gaps += 1;
                    }
                    let due = started + Duration::from_millis(at_ms);
                    let offset = if now >= due {
                        (now - due).as_micros() as i64
                    } else {
                        -((due - now).as_micros() as i64)
                    };
                    t.offsets.push(offset);
                }
                last_chunk[track] = chunk;
                if echo && track == 0 {
                    // The frame's own payload, back as the bot's speech.
                    if let Some(payload) = field(&text, r#""payload":""#) {
                        let reply =
                            format!(r#"{{"event":"media","media":{{"payload":"{payload}"}}}}"#);
                        if sink.send(Message::text(reply)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            if tracks.iter().any(|t| t.received > 0) {
                measured.lock().unwrap().tracks.push(tracks);
            }
        });
    }
}

/// The application's HTTP side: the number's TwiML.
async fn webhook(listener: tokio::net::TcpListener, twiml: String) {
    let router = axum::Router::new().route(
        "/voice",
        axum::routing::post(move || {
            let twiml = twiml.clone();
            async move { ([("content-type", "text/xml")], twiml) }
        }),
    );
    axum::serve(listener, router).await.unwrap();
}

/// The machine's busy and total CPU time so far (jiffies, all cores).
fn machine() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().sum();
    (total - idle, total)
}

/// CPU seconds (user + system) and RSS in KiB of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

fn metric(name: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-s", &format!("http://{IP}:8080/metrics")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(mode: &str, streams: usize, hold: usize, rate: usize, anchor: &str) -> String {
    let echo = mode == "bi";
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ws_listener, http_listener) = rt.block_on(async {
        (
            tokio::net::TcpListener::bind(format!("{APP_IP}:0"))
                .await
                .unwrap(),
            tokio::net::TcpListener::bind(format!("{APP_IP}:0"))
                .await
                .unwrap(),
        )
    });
    let ws_url = format!("ws://{}/media", ws_listener.local_addr().unwrap());
    let twiml = if echo {
        format!(r#"<Response><Connect><Stream url="{ws_url}"/></Connect></Response>"#)
    } else {
        format!(
            r#"<Response><Start><Stream url="{ws_url}" track="both_tracks"/></Start><Pause length="3600"/></Response>"#
        )
    };
    let base = format!("http://{}", http_listener.local_addr().unwrap());
    let connected = Arc::new(AtomicUsize::new(0));
    let window = Arc::new(Window {
        open: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    let measured = Arc::new(Mutex::new(Measured::default()));
    rt.spawn(application(
        ws_listener,
        echo,
        connected.clone(),
        window.clone(),
        measured.clone(),
    ));
    rt.spawn(webhook(http_listener, twiml));

    let server = BenchServer::start(
        dir.path(),
        &format!(
            "[sip]\nlisten = [\"udp:{IP}:5060\"]\n[media]\nrtp_ports = \"40000-49999\"\n\
             [http]\nlisten = \"{IP}:8080\"\n[storage]\ndatabase_url = \"sqlite://{db}\"\n\
             [[trunks]]\nname = \"callers\"\naddress = \"{CALLER_IP}:5060\"\ninbound_sources = [\"{CALLER_IP}/32\"]\n\
             [[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"bench\"\ncaller_ids = [\"+1555*\"]\n\
             [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{ACCOUNT}\"\nvoice_url = \"{base}/voice\"\n",
            db = dir.path().join("db.sqlite").display()
        ),
    );
    let pid = server.pid();
    std::thread::sleep(Duration::from_secs(1));
    let (_, idle_rss) = usage(pid);

    // The callers' audio: a tone as A-law, longer than any call.
    let ramp = streams.div_ceil(rate);
    let call_secs = ramp + 5 + hold + 5;
    let media: Vec<u8> = {
        let pcm = tone::sines(&[700.0], 6000.0, (call_secs as u32 + 5) * 1000);
        let mut out = vec![0u8; pcm.len()];
        Law::Alaw.encode(&pcm, &mut out);
        out
    };
    std::fs::write(dir.path().join("media.alaw"), media).unwrap();
    let scenario = format!("{anchor}/scenarios/uac_media.xml");
    let sipp = Killed(
        Command::new("sipp")
            .args([
                "-sf", &scenario, "-i", CALLER_IP, "-p", "5060", "-mi", CALLER_IP,
            ])
            .args(["-mp", "16000", "-s", NUMBER, &format!("{IP}:5060")])
            .args(["-r", &rate.to_string(), "-m", &streams.to_string()])
            .args([
                "-l",
                &streams.to_string(),
                "-d",
                &(call_secs * 1000).to_string(),
            ])
            .args([
                "-rtp_echo",
                "-rtp_threadtasks",
                "20",
                "-nostdin",
                "-timeout",
            ])
            .arg(format!("{}s", call_secs + 60))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp (apt-get install sip-tester)"),
    );

    // Every stream up, then a settle, then the measured window.
    let deadline = Instant::now() + Duration::from_secs(ramp as u64 + 30);
    while connected.load(Ordering::Relaxed) < streams && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let up = connected.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(5));
    let dropped0 = metric("switchboard_stream_frames_dropped_total");
    let played0 = metric("switchboard_stream_frames_played_total");
    let (cpu0, _) = usage(pid);
    let (busy0, total0) = machine();
    window.open.store(true, Ordering::Relaxed);
    let opened = Instant::now();
    std::thread::sleep(Duration::from_secs(hold as u64));
    window.closed.store(true, Ordering::Relaxed);
    let held = opened.elapsed().as_secs_f64();
    let (cpu1, rss) = usage(pid);
    let (busy1, total1) = machine();
    let machine_busy = (busy1 - busy0) as f64 * 100.0 / (total1 - total0).max(1) as f64;
    let dropped = metric("switchboard_stream_frames_dropped_total") - dropped0;
    let played = metric("switchboard_stream_frames_played_total") - played0;
    drop(sipp);
    drop(server);
    // The application's tasks hand in their counts as the sockets close.
    std::thread::sleep(Duration::from_secs(2));
    let measured = std::mem::take(&mut *measured.lock().unwrap());
    rt.shutdown_timeout(Duration::from_secs(1));

    let expected = (held * 50.0) as u64;
    let tracks: Vec<&Track> = measured
        .tracks
        .iter()
        .flat_map(|t| t.iter())
        .filter(|t| t.received > 0)
        .collect();
    let received: u64 = tracks.iter().map(|t| t.received).sum();
    let gaps: u64 = tracks.iter().map(|t| t.gaps).sum();
    let mut lateness: Vec<i64> = tracks
        .iter()
        .flat_map(|t| {
            let best = t.offsets.iter().copied().min().unwrap_or(0);
            t.offsets.iter().map(move |o| o - best)
        })
        .collect();
    lateness.sort_unstable();
    let pct = |p: f64| {
        lateness
            .get(((lateness.len() as f64 - 1.0) * p) as usize)
            .map_or(f64::NAN, |&us| us as f64 / 1000.0)
    };
    let late = lateness.iter().filter(|&&us| us > 100_000).count();
    let cpu_pct = (cpu1 - cpu0) / held * 100.0 / up.max(1) as f64;
    let kb = (rss.saturating_sub(idle_rss)) as f64 / up.max(1) as f64;
    format!(
        "| {mode} | {streams} | {up} | {} | {received} / {} | {gaps} | {dropped} | {late} | {:.1} | {:.1} | {:.1} | {:.3} | {kb:.0} | {} | {machine_busy:.0} % |",
        tracks.len(),
        expected * tracks.len() as u64,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        cpu_pct,
        if echo {
            format!("{played}")
        } else {
            "-".into()
        },
    )
}

fn main() {
    let streams = knob("STREAMS", 1000);
    let hold = knob("HOLD", 60);
    let rate = knob("RATE", 50);
    let anchor = std::env::var("ANCHOR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/bench/anchor").to_owned()
    });
    let mode = std::env::var("MODE").unwrap_or_else(|_| "all".into());
    let modes: Vec<&str> = match mode.as_str() {
        "all" => vec!["uni", "bi"],
        m => vec![m],
    };
    println!(
        "| mode | streams asked | up | tracks | frames received / expected | chunk gaps | dropped by Switchboard | later than 100 ms | lateness p50 ms | p99 ms | max ms | CPU % of a core per stream | KB per stream | app frames played | machine busy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in modes {
        println!("{}", run(m, streams, hold, rate, &anchor));
        // Let the kernel release the sockets and ports.
        std::thread::sleep(Duration::from_secs(3));
    }
}
