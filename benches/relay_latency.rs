//! ConversationRelay latency, printed as a table: N calls at once, each a phone (SIPp for the
//! signalling, this bench's own RTP socket for the audio) talking through Switchboard's
//! `<Connect><ConversationRelay>` to an application that is a loopback WebSocket server here,
//! which answers every prompt at once with streamed tokens. All on this machine, on loopback.
//!
//! Each call plays `ROUNDS` turns; in each the phone says a phrase (rendered by Piper, sent in
//! real time, then silence as a phone sends it) and the app answers. Measured on the wire, with
//! one clock (the phone and the app are this process):
//!
//! - **prompt**: from the phone's last voiced frame of the phrase to the app's `prompt`
//!   (Switchboard's end-of-turn wait, `speechTimeout`, is in it: its value is printed; with
//!   `auto`, the default, a pause after a whole sentence ends the turn once it is recognised);
//! - **first audio**: from the app's first `text` token to the first loud frame of its speech
//!   at the phone;
//! - **barge-in** (every other turn the answer is long and the phone talks over it after a
//!   second): from the phone's first voiced frame over the agent to the app's `interrupt`,
//!   which the server sends as it stops the agent's playback (a turn where agent audio still
//!   reaches the phone 200 ms after it counts as failed).
//!
//! ```text
//! cargo bench --bench relay_latency      knobs: SESSIONS=1,5,10,20 ROUNDS=4 WORKERS=2
//!                                        TIMEOUT_MS=auto (speechTimeout: auto or ms)
//! ```
//!
//! SIPp and the speech models (scripts/install-speech.sh, SWITCHBOARD_SPEECH_DIR or
//! target/speech) must be installed.

use futures_util::{SinkExt, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::BenchServer;
use switchboard_media::Law;
use tokio_tungstenite::tungstenite::Message;

mod support;

const IP: &str = "127.0.81.1";
const APP_IP: &str = "127.0.81.9";
const CALLER_IP: &str = "127.0.81.2";
const PHONE_IP: &str = "127.0.81.5";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// Numbers +1777555{FIRST + i}, one per session.
const FIRST: usize = 8100;
const ASK: &str = "What time does the library open tomorrow morning?";
const CUT: &str = "Wait, stop please.";
const SHORT: [&str; 3] = [
    "The library opens",
    " at nine in the morning.",
    " Anything else?",
];
const LONG: &str = "Here are all of our opening hours for the week. On Monday we open at nine in \
                    the morning and close at eight in the evening. On Tuesday we open at ten and \
                    close at six. On Wednesday we open at nine and close at eight.";
/// The level of sessions running (its index), which the app's answers name: the server keeps
/// what it rendered for the whole bench.
static LEVEL: AtomicUsize = AtomicUsize::new(0);
const LEVEL_WORDS: [&str; 8] = [
    "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel",
];
/// A frame from Switchboard this loud (peak) is the agent's speech, quieter is silence.
const LOUD: i16 = 500;
/// A frame from Switchboard with a sample this loud still has the agent's voice in it (its
/// quietest syllables included); a stopped playback sends none.
const SOUND: i16 = 32;
/// A frame the phone sends this loud is the caller's voice (Piper's silence is near zero; its
/// first syllable's onset is quieter than `LOUD`, and the endpointer hears it).
const VOICED: i16 = 64;

fn knob(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn speech_dir() -> PathBuf {
    std::env::var_os("SWITCHBOARD_SPEECH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/speech"))
}

/// `text` spoken by Piper's joe voice as 8 kHz samples (what the tests' callers say).
fn piper(text: &str) -> Vec<i16> {
    use std::io::Write;
    let dir = speech_dir();
    let out = tempfile::NamedTempFile::with_suffix(".wav").unwrap();
    let mut child = Command::new(dir.join("venv/bin/piper"))
        .arg("-m")
        .arg(dir.join("piper/en_US-joe-medium.onnx"))
        .arg("-f")
        .arg(out.path())
        .args(["--noise-scale", "0", "--noise-w-scale", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("piper (scripts/install-speech.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    switchboard_media::decode::decode_to_8k(std::fs::read(out.path()).unwrap(), Some("wav"))
        .unwrap()
}

/// What one session's app and phone saw, on the one clock.
#[derive(Default)]
struct Log {
    /// The phone is about to say the phrase of this round, and wants it answered short or long.
    expect: Option<bool>,
    /// The phone is done: the next prompt ends the session (the document then hangs up).
    done: bool,
    /// Which session it is (its answers start with their own words, so that each is rendered
    /// afresh as an application's new text is, not found in the voices' cache).
    session: usize,
    prompts: Vec<Instant>,
    texts: Vec<Instant>,
    /// When each `interrupt` came.
    interrupts: Vec<Instant>,
}

type Logs = Arc<Mutex<HashMap<usize, Arc<Mutex<Log>>>>>;

/// One relay session as the app: answers the prompts the phone asked it to, at once.
async fn session(tcp: tokio::net::TcpStream, logs: Logs) {
    let _ = tcp.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let mut log: Option<Arc<Mutex<Log>>> = None;
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        match v["type"].as_str() {
            Some("setup") => {
                let i: usize = v["customParameters"]["session"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let l = Arc::new(Mutex::new(Log {
                    session: i,
                    ..Log::default()
                }));
                logs.lock().unwrap().insert(i, l.clone());
                log = Some(l);
            }
            Some("prompt") if v["last"] == true => {
                let Some(log) = &log else { continue };
                if log.lock().unwrap().done {
                    let end = serde_json::json!({"type": "end"});
                    let _ = sink.send(Message::text(end.to_string())).await;
                    continue;
                }
                let long = {
                    let mut l = log.lock().unwrap();
                    let Some(long) = l.expect.take() else {
                        continue;
                    };
                    l.prompts.push(Instant::now());
                    long
                };
                let (session, turn) = {
                    let l = log.lock().unwrap();
                    (l.session, l.prompts.len())
                };
                // A first clause no call has had before, at any level: its rendering is
                // measured, not a cached one (no comma in it, or the clause before the comma
                // would be cut and cached).
                let level = LEVEL_WORDS[LEVEL.load(Ordering::Relaxed) % LEVEL_WORDS.len()];
                let fresh = format!("{level} caller {session} answer {turn}. ");
                let mut tokens: Vec<String> = vec![fresh];
                if long {
                    tokens.extend(LONG.split_inclusive(' ').map(str::to_owned));
                } else {
                    tokens.extend(SHORT.iter().map(|t| (*t).to_owned()));
                }
                log.lock().unwrap().texts.push(Instant::now());
                for (n, token) in tokens.iter().enumerate() {
                    let last = n + 1 == tokens.len();
                    let m = serde_json::json!({"type": "text", "token": token, "last": last});
                    if sink.send(Message::text(m.to_string())).await.is_err() {
                        return;
                    }
                }
            }
            Some("interrupt") => {
                if let Some(log) = &log {
                    log.lock().unwrap().interrupts.push(Instant::now());
                }
            }
            _ => {}
        }
    }
}

/// A phone's audio side: sends a frame every 20 ms (the phrase queued, else silence, as a
/// phone does) and reads what Switchboard sends between frames.
struct Phone {
    sock: UdpSocket,
    to: Option<SocketAddr>,
    queued: VecDeque<i16>,
    seq: u16,
    ts: u32,
    next: Instant,
    /// When the last loud frame from Switchboard came, and the first since `mark`.
    last_loud: Option<Instant>,
    first_loud: Option<Instant>,
    /// When the last frame with any of the agent's voice came since `mark`.
    last_sound: Option<Instant>,
    /// When the last voiced frame of the queued phrase was sent, and the first.
    last_voiced_sent: Option<Instant>,
    first_voiced_sent: Option<Instant>,
}

impl Phone {
    fn new(port_hint: u16) -> Self {
        let sock = UdpSocket::bind((PHONE_IP, port_hint))
            .or_else(|_| UdpSocket::bind((PHONE_IP, 0)))
            .unwrap();
        sock.set_nonblocking(true).unwrap();
        Self {
            sock,
            to: None,
            queued: VecDeque::new(),
            seq: 1,
            ts: 0,
            next: Instant::now(),
            last_loud: None,
            first_loud: None,
            last_sound: None,
            last_voiced_sent: None,
            first_voiced_sent: None,
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    fn say(&mut self, samples: &[i16]) {
        self.queued.extend(samples);
        self.first_voiced_sent = None;
        self.last_voiced_sent = None;
    }

    /// Forgets the loud frames heard so far.
    fn mark(&mut self) {
        self.first_loud = None;
        self.last_loud = None;
        self.last_sound = None;
    }

    /// Runs the phone for `d`, or until `done` says so.
    fn run(&mut self, d: Duration, mut done: impl FnMut(&Phone) -> bool) {
        let until = Instant::now() + d;
        let mut buf = [0u8; 2048];
        while Instant::now() < until && !done(self) {
            while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                self.to.get_or_insert(from);
                if n <= 12 || buf[1] & 0x7f != 0 {
                    continue;
                }
                let mut pcm = [0i16; 160];
                let len = (n - 12).min(160);
                Law::Ulaw.decode(&buf[12..12 + len], &mut pcm[..len]);
                let now = Instant::now();
                if pcm.iter().any(|s| s.abs() > LOUD) {
                    self.first_loud.get_or_insert(now);
                    self.last_loud = Some(now);
                }
                if pcm.iter().any(|s| s.abs() > SOUND) {
                    self.last_sound = Some(now);
                }
            }
            let now = Instant::now();
            if now >= self.next {
                self.next += Duration::from_millis(20);
                if let Some(to) = self.to {
                    let mut frame = [0i16; 160];
                    let voiced = !self.queued.is_empty();
                    for s in &mut frame {
                        *s = self.queued.pop_front().unwrap_or(0);
                    }
                    if voiced && frame.iter().any(|s| s.abs() > VOICED) {
                        self.first_voiced_sent.get_or_insert(now);
                        self.last_voiced_sent = Some(now);
                    }
                    let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
                    packet[2..4].copy_from_slice(&self.seq.to_be_bytes());
                    packet[4..8].copy_from_slice(&self.ts.to_be_bytes());
                    let mut ulaw = [0u8; 160];
                    Law::Ulaw.encode(&frame, &mut ulaw);
                    packet.extend_from_slice(&ulaw);
                    let _ = self.sock.send_to(&packet, to);
                    (self.seq, self.ts) = (self.seq.wrapping_add(1), self.ts.wrapping_add(160));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// What one call measured, in ms.
#[derive(Default)]
struct Figures {
    prompt: Vec<f64>,
    first_audio: Vec<f64>,
    barge_in: Vec<f64>,
    failed: usize,
    /// Turns whose prompt came before the phrase ended (a pause in it was taken for the end
    /// of the turn): not latency figures, counted apart.
    split: usize,
}

fn ms(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64() * 1000.0
}

/// One call: the phone's side, round after round.
fn call(
    i: usize,
    rounds: usize,
    dir: PathBuf,
    logs: Logs,
    ask: Arc<Vec<i16>>,
    cut: Arc<Vec<i16>>,
) -> Figures {
    let mut figures = Figures::default();
    let mut phone = Phone::new(30000 + 2 * i as u16);
    let scenario = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uac_media_wait_bye.xml"),
    )
    .unwrap()
    .replace("{{RTP_IP}}", PHONE_IP)
    .replace("{{RTP_PORT}}", &phone.port().to_string())
    .replace("{{AUDIO}}", "0\n      a=rtpmap:0 PCMU/8000")
    .replace("{{HEADERS}}", "")
    .replace("{{ANSWER_CHECKS}}", "")
    .replace("{{BYE_CHECKS}}", "");
    let file = dir.join(format!("uac-{i}.xml"));
    std::fs::write(&file, scenario).unwrap();
    let mut sipp = Killed(
        Command::new("sipp")
            .arg("-sf")
            .arg(&file)
            .args(["-i", CALLER_IP, "-p", &(5100 + i).to_string()])
            .args([
                "-s",
                &format!("+1777555{}", FIRST + i),
                &format!("{IP}:5060"),
            ])
            .args(["-m", "1", "-nostdin", "-timeout", "600s"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp (apt-get install sip-tester)"),
    );
    // The greeting tells the phone where to send its audio.
    phone.run(Duration::from_secs(60), |p| {
        p.to.is_some()
            && p.last_loud
                .is_some_and(|t| t.elapsed() > Duration::from_millis(800))
    });
    let log = loop {
        if let Some(l) = logs.lock().unwrap().get(&i).cloned() {
            break l;
        }
        phone.run(Duration::from_millis(100), |_| false);
    };
    for round in 0..rounds {
        let long = round % 2 == 1;
        log.lock().unwrap().expect = Some(long);
        let prompts_before = log.lock().unwrap().prompts.len();
        phone.mark();
        phone.say(&ask);
        // The phrase, then until the app's prompt.
        phone.run(Duration::from_secs(30), |_| {
            log.lock().unwrap().prompts.len() > prompts_before
        });
        let (said_end, prompt, text) = {
            let l = log.lock().unwrap();
            (
                phone.last_voiced_sent,
                l.prompts.get(prompts_before).copied(),
                l.texts.get(prompts_before).copied(),
            )
        };
        let (Some(said_end), Some(prompt), Some(text)) = (said_end, prompt, text) else {
            eprintln!("call {i} turn {round}: no prompt for the phrase");
            figures.failed += 1;
            continue;
        };
        if prompt < said_end {
            eprintln!("call {i} turn {round}: the prompt came before the phrase ended");
            figures.split += 1;
        } else {
            figures.prompt.push(ms(said_end, prompt));
        }
        phone.mark();
        phone.run(Duration::from_secs(20), |p| p.first_loud.is_some());
        let Some(heard) = phone.first_loud else {
            eprintln!("call {i} turn {round}: the answer was not heard");
            figures.failed += 1;
            continue;
        };
        figures.first_audio.push(ms(text, heard));
        if long {
            // A second of the long answer, then the phone talks over it.
            phone.run(Duration::from_secs(1), |_| false);
            phone.mark();
            phone.say(&cut);
            phone.run(Duration::from_secs(10), |p| {
                p.first_voiced_sent
                    .is_some_and(|t| t.elapsed() > Duration::from_secs(3))
            });
            // The server sends `interrupt` as it stops the agent's playback: from the caller's
            // first voiced frame to that is the barge-in. The phone must hear no agent audio
            // that began after it.
            let cut = log.lock().unwrap().interrupts.last().copied();
            match (phone.first_voiced_sent, cut) {
                (Some(spoke), Some(cut)) if cut >= spoke => {
                    figures.barge_in.push(ms(spoke, cut));
                    if phone
                        .last_sound
                        .is_some_and(|s| s > cut + Duration::from_millis(200))
                    {
                        eprintln!("call {i} turn {round}: agent audio went on after the interrupt");
                        figures.failed += 1;
                    }
                }
                (spoke, cut) => {
                    eprintln!(
                        "call {i} turn {round}: barge-in not measured (spoke: {}, interrupt: {})",
                        spoke.is_some(),
                        cut.is_some()
                    );
                    figures.failed += 1;
                }
            }
        } else {
            // The short answer to its end.
            phone.run(Duration::from_secs(20), |p| {
                p.last_loud
                    .is_some_and(|t| t.elapsed() > Duration::from_millis(1000))
            });
        }
    }
    // The app ends the session at the next prompt; the document hangs up.
    log.lock().unwrap().done = true;
    phone.say(&cut);
    let ended = Instant::now() + Duration::from_secs(30);
    while Instant::now() < ended && matches!(sipp.0.try_wait(), Ok(None)) {
        phone.run(Duration::from_millis(200), |_| false);
    }
    figures
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let levels: Vec<usize> = knob("SESSIONS", "1,5,10,20")
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rounds: usize = knob("ROUNDS", "4").parse().unwrap();
    let workers = knob("WORKERS", "2");
    let timeout = knob("TIMEOUT_MS", "auto");
    let most = levels.iter().copied().max().unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let logs: Logs = Arc::default();
    let ws = rt
        .block_on(tokio::net::TcpListener::bind((APP_IP, 0)))
        .unwrap();
    let ws_port = ws.local_addr().unwrap().port();
    let l = logs.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = ws.accept().await {
            tokio::spawn(session(tcp, l.clone()));
        }
    });
    let http = rt
        .block_on(tokio::net::TcpListener::bind((APP_IP, 0)))
        .unwrap();
    let http_port = http.local_addr().unwrap().port();
    let wait = timeout.clone();
    let twiml = move |i: String| {
        let timeout = &wait;
        format!(
            r#"<Response><Connect><ConversationRelay url="ws://{APP_IP}:{ws_port}/relay" welcomeGreeting="Hello, how can I help?" speechTimeout="{timeout}"><Parameter name="session" value="{i}"/></ConversationRelay></Connect><Hangup/></Response>"#
        )
    };
    rt.spawn(async move {
        let router = axum::Router::new().route(
            "/voice/{i}",
            axum::routing::post(move |axum::extract::Path(i): axum::extract::Path<String>| {
                let doc = twiml(i);
                async move { ([("content-type", "text/xml")], doc) }
            }),
        );
        axum::serve(http, router).await.unwrap();
    });
    let mut config = format!(
        "[sip]\nlisten = [\"udp:{IP}:5060\"]\n[media]\nrtp_ports = \"20000-29999\"\n\
         [http]\nlisten = \"{IP}:8080\"\n[storage]\ndatabase_url = \"sqlite://{db}\"\n\
         [speech]\ndir = \"{speech}\"\nworkers = {workers}\n\
         [[trunks]]\nname = \"carrier\"\naddress = \"{CALLER_IP}:5060\"\ninbound_sources = [\"{CALLER_IP}/32\"]\n\
         [[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"t\"\n",
        db = dir.path().join("sb.db").display(),
        speech = speech_dir().display(),
    );
    for i in 0..most {
        config += &format!(
            "[[numbers]]\nphone_number = \"+1777555{}\"\naccount_sid = \"{ACCOUNT}\"\n\
             voice_url = \"http://{APP_IP}:{http_port}/voice/{i}\"\n",
            FIRST + i
        );
    }
    let _server = BenchServer::start(dir.path(), &config);
    // The recogniser loads after start-up; the first call must not wait for it.
    std::thread::sleep(Duration::from_secs(10));
    let (ask, cut) = (Arc::new(piper(ASK)), Arc::new(piper(CUT)));
    println!(
        "ConversationRelay on this machine: speechTimeout {timeout}, {workers} recognition workers, {rounds} turns per call"
    );
    println!(
        "{:>8} | {:>18} | {:>18} | {:>18} | {:>6} | {:>5}",
        "sessions", "prompt p50/p90", "first audio p50/90", "barge-in p50/p90", "failed", "split"
    );
    for (level, &n) in levels.iter().enumerate() {
        LEVEL.store(level, Ordering::Relaxed);
        logs.lock().unwrap().clear();
        let calls: Vec<_> = (0..n)
            .map(|i| {
                let (dir, logs, ask, cut) = (
                    dir.path().to_owned(),
                    logs.clone(),
                    ask.clone(),
                    cut.clone(),
                );
                std::thread::spawn(move || call(i, rounds, dir, logs, ask, cut))
            })
            .collect();
        let mut all = Figures::default();
        for c in calls {
            let f = c.join().unwrap();
            all.prompt.extend(f.prompt);
            all.first_audio.extend(f.first_audio);
            all.barge_in.extend(f.barge_in);
            all.failed += f.failed;
            all.split += f.split;
        }
        let pair =
            |v: &mut Vec<f64>| format!("{:.0} / {:.0}", percentile(v, 0.5), percentile(v, 0.9));
        println!(
            "{:>8} | {:>18} | {:>18} | {:>18} | {:>6} | {:>5}",
            n,
            pair(&mut all.prompt),
            pair(&mut all.first_audio),
            pair(&mut all.barge_in),
            all.failed,
            all.split
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}
