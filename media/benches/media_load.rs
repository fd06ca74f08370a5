//! Load figures of the media engine over loopback sockets, printed as tables:
//!
//! - concurrent recordings: N endpoints each recording both tracks (dual WAV) while RTP arrives
//!   every 20 ms for `SECS`; frames dropped by the recorder, and the durations written;
//! - memory per call: RSS growth per bridged call (two endpoints relaying both ways), then with
//!   a tap on both tracks of both endpoints and a consumer draining it;
//! - many small conferences: N three-party conferences with every member talking; the mixed
//!   packets each member got, and the process's CPU per conference;
//! - concurrent SRTP calls: N bridged calls talking both ways, plain to plain, SRTP to plain
//!   and SRTP to SRTP (each leg its own keys); the media threads' CPU per relayed packet, and
//!   what arrived (SRTP packets opened with the leg's key).
//!
//!   cargo bench -p switchboard-media --bench media_load
//!   knobs: RECORDINGS="100 300 600", SECS=10, CALLS=500, CONFERENCES="50 150",
//!   SRTP_CALLS="1000", THREADS=2 (media worker threads)

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use switchboard_media::record::{Channels, RecordFormat, RecordSpec, StopWhen};
use switchboard_media::srtp::{Context, MasterKey, Suite};
use switchboard_media::{
    Endpoint, EndpointConfig, Law, MediaConfig, MediaEngine, MediaEvent, MediaOp, PayloadMap,
    SrtpKeys, TapTracks, rtp,
};
use tokio::sync::mpsc;

#[path = "load_common/mod.rs"]
mod load_common;
use load_common::{knob, media_cpu_secs, rss_kb};

const PCMU: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: Some(101),
};

fn engine() -> (MediaEngine, mpsc::UnboundedReceiver<MediaEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let engine = MediaEngine::start(
        MediaConfig {
            bind_ip: "127.0.0.1".parse().unwrap(),
            advertise_ip: "127.0.0.1".parse().unwrap(),
            ports: 40000..=59999,
            threads: knob("THREADS", "2").parse().unwrap(),
            rtp_timeout: Duration::from_secs(600),
            learn_window: Duration::from_secs(3),
            kernel_relay: false,
            bind_ahead: switchboard_media::BIND_AHEAD,
        },
        tx,
    )
    .unwrap();
    (engine, rx)
}

/// CPU time (user + system) of this process so far, in seconds.
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

/// Sends one 20 ms μ-law packet from `sock` to each target every 20 ms for `secs` (one
/// socket throughout: endpoints latch onto the first source they hear).
fn talk(sock: &UdpSocket, targets: &[SocketAddr], secs: u64) {
    let mut p = [0x7fu8; 172];
    let start = Instant::now();
    let mut tick = 0u32;
    while start.elapsed() < Duration::from_secs(secs) {
        rtp::write_header(&mut p, 0, false, tick as u16, tick * 160, 0x5eed);
        for t in targets {
            let _ = sock.send_to(&p, t);
        }
        tick += 1;
        let next = start + Duration::from_millis(20 * tick as u64);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn configure(engine: &MediaEngine, e: &Endpoint, remote: SocketAddr) {
    engine.configure(
        e.id,
        EndpointConfig {
            remote_rtp: Some(remote),
            payload: PCMU,
            expect_rtp: true,
            ..Default::default()
        },
    );
}

fn recordings(n: usize, secs: u64) {
    let (engine, mut events) = engine();
    let dir = tempfile::tempdir().unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let endpoints: Vec<Endpoint> = (0..n).map(|_| engine.allocate(None).unwrap()).collect();
    for (i, e) in endpoints.iter().enumerate() {
        configure(&engine, e, sink.local_addr().unwrap());
        engine.media(
            e.id,
            MediaOp::RecordStart(RecordSpec {
                recording: i as u64,
                path: dir.path().join(format!("{i}.wav")),
                format: RecordFormat::Pcm16,
                channels: Channels::Dual,
                tracks: TapTracks::Both,
                trim_silence: false,
                stop: StopWhen::default(),
            }),
        );
    }
    engine.flush();
    let targets: Vec<SocketAddr> = endpoints.iter().map(|e| e.rtp).collect();
    talk(&UdpSocket::bind("127.0.0.1:0").unwrap(), &targets, secs);
    for e in &endpoints {
        engine.media(e.id, MediaOp::RecordStop);
    }
    engine.flush();
    let (mut saved, mut dropped, mut shortest, mut longest) = (0, 0, u64::MAX, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while saved < n && Instant::now() < deadline {
        match events.try_recv() {
            Ok(MediaEvent::RecordingSaved(r)) => {
                saved += 1;
                dropped += r.dropped_frames;
                shortest = shortest.min(r.duration_ms);
                longest = longest.max(r.duration_ms);
            }
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let frames = n as u64 * secs * 50 * 2;
    println!(
        "| {n} | {secs} s | {frames} | {dropped} | {saved}/{n} | {:.2}–{:.2} s |",
        shortest as f64 / 1000.0,
        longest as f64 / 1000.0
    );
    engine.shutdown();
}

fn conferences(n: usize, secs: u64) {
    use switchboard_media::conference::ConferenceId;
    let (engine, _events) = engine();
    // One socket per member, so that each latches and receives its own mix.
    let members: Vec<(UdpSocket, Endpoint)> = (0..n * 3)
        .map(|i| {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_nonblocking(true).unwrap();
            let e = engine.allocate(None).unwrap();
            configure(&engine, &e, sock.local_addr().unwrap());
            engine.conference_join(ConferenceId(i as u64 / 3), e.id);
            (sock, e)
        })
        .collect();
    engine.flush();
    let cpu = cpu_secs();
    let start = Instant::now();
    let mut p = [0x7fu8; 172];
    let mut received = vec![0u64; members.len()];
    let mut buf = [0u8; 2048];
    let mut tick = 0u32;
    while start.elapsed() < Duration::from_secs(secs) {
        rtp::write_header(&mut p, 0, false, tick as u16, tick * 160, 0x5eed);
        for (i, (sock, e)) in members.iter().enumerate() {
            let _ = sock.send_to(&p, e.rtp);
            while sock.recv(&mut buf).is_ok() {
                received[i] += 1;
            }
        }
        tick += 1;
        let next = start + Duration::from_millis(20 * tick as u64);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let total_cpu = cpu_secs() - cpu;
    println!(
        "| {n} x 3 | {secs} s | {}-{} of {} | {:.3} % |",
        received.iter().min().copied().unwrap_or(0),
        received.iter().max().copied().unwrap_or(0),
        secs * 50,
        total_cpu / secs as f64 * 100.0 / n as f64,
    );
    engine.shutdown();
}

fn memory(calls: usize) {
    let (engine, _events) = engine();
    let before = rss_kb();
    let phones: Vec<UdpSocket> = (0..2)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut pairs = Vec::new();
    for _ in 0..calls {
        let a = engine.allocate(None).unwrap();
        let b = engine.allocate(Some(a.id)).unwrap();
        configure(&engine, &a, phones[0].local_addr().unwrap());
        configure(&engine, &b, phones[1].local_addr().unwrap());
        engine.bridge(a.id, b.id);
        pairs.push((a, b));
    }
    engine.flush();
    // The phones' sockets are never read: what the relay sends them is dropped by the kernel.
    let targets: Vec<SocketAddr> = pairs.iter().flat_map(|(a, b)| [a.rtp, b.rtp]).collect();
    let talker = UdpSocket::bind("127.0.0.1:0").unwrap();
    talk(&talker, &targets, 2);
    let relaying = rss_kb();
    let mut consumers = Vec::new();
    for (a, b) in &pairs {
        for e in [a, b] {
            let (tx, rx) = mpsc::channel(64);
            engine.media(
                e.id,
                MediaOp::TapStart {
                    tap: switchboard_media::TapId::next(),
                    tx: tx.into(),
                    tracks: TapTracks::Both,
                },
            );
            consumers.push(rx);
        }
    }
    engine.flush();
    let draining = std::thread::spawn(move || {
        let start = Instant::now();
        let mut frames = 0u64;
        while start.elapsed() < Duration::from_secs(3) {
            for rx in &mut consumers {
                while rx.try_recv().is_ok() {
                    frames += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (frames, consumers)
    });
    talk(&talker, &targets, 2);
    let tapped = rss_kb();
    let (frames, _consumers) = draining.join().unwrap();
    println!(
        "| {calls} | {:.1} KB | {:.1} KB | {frames} |",
        (relaying - before) as f64 / calls as f64,
        (tapped - before) as f64 / calls as f64,
    );
}

/// One leg of an SRTP load call: its endpoint, and for an SRTP leg the phone's two contexts
/// (what it sends, sealed with its key; what it gets, opened with ours).
struct LoadLeg {
    endpoint: Endpoint,
    srtp: Option<(Context, Context)>,
}

fn load_leg(
    engine: &MediaEngine,
    near: Option<&Endpoint>,
    phone: SocketAddr,
    srtp: bool,
) -> LoadLeg {
    let endpoint = engine.allocate(near.map(|e| e.id)).unwrap();
    let keys = srtp.then(|| SrtpKeys {
        inbound: MasterKey::generate(Suite::AesCm128HmacSha1_80),
        outbound: MasterKey::generate(Suite::AesCm128HmacSha1_80),
    });
    engine.configure(
        endpoint.id,
        EndpointConfig {
            remote_rtp: Some(phone),
            payload: PCMU,
            expect_rtp: true,
            srtp: keys,
            ..Default::default()
        },
    );
    LoadLeg {
        endpoint,
        srtp: keys.map(|k| (Context::new(&k.inbound), Context::new(&k.outbound))),
    }
}

/// `n` bridged calls for `secs`, both parties talking every 20 ms; `srtp` says which legs are
/// SRTP. Prints the media threads' CPU per relayed packet.
fn srtp_calls(n: usize, secs: u64, srtp: (bool, bool)) {
    let (engine, _events) = engine();
    let phones = [
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    ];
    for p in &phones {
        p.set_nonblocking(true).unwrap();
    }
    let mut calls: Vec<[LoadLeg; 2]> = (0..n)
        .map(|_| {
            let a = load_leg(&engine, None, phones[0].local_addr().unwrap(), srtp.0);
            let b = load_leg(
                &engine,
                Some(&a.endpoint),
                phones[1].local_addr().unwrap(),
                srtp.1,
            );
            engine.bridge(a.endpoint.id, b.endpoint.id);
            [a, b]
        })
        .collect();
    engine.flush();
    let (relayed, cpu) = (engine.relayed_total(), media_cpu_secs());
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let (mut received, mut opened, mut tick) = ([0u64; 2], 0u64, 0u32);
    // Which call an SRTP packet a phone gets belongs to is not known from the packet (the
    // relay keeps each stream's own SSRC): each phone checks its first SRTP leg's stream.
    while start.elapsed() < Duration::from_secs(secs) {
        for call in &mut calls {
            for (side, leg) in call.iter_mut().enumerate() {
                let mut p = [0x7fu8; 172 + 10];
                rtp::write_header(
                    &mut p,
                    0,
                    false,
                    tick as u16,
                    tick * 160,
                    0x5eed + side as u32,
                );
                let len = match &mut leg.srtp {
                    Some((tx, _)) => tx.protect_rtp(&mut p, 172).unwrap(),
                    None => 172,
                };
                let _ = phones[side].send_to(&p[..len], leg.endpoint.rtp);
            }
        }
        for (side, phone) in phones.iter().enumerate() {
            while let Ok((len, from)) = phone.recv_from(&mut buf) {
                received[side] += 1;
                let first = &mut calls[0][side];
                if from == first.endpoint.rtp
                    && let Some((_, rx)) = first.srtp.as_mut()
                    && rx.unprotect_rtp(&mut buf[..len]).is_ok()
                {
                    opened += 1;
                }
            }
        }
        tick += 1;
        let next = start + Duration::from_millis(20 * tick as u64);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let (relayed, cpu) = (engine.relayed_total() - relayed, media_cpu_secs() - cpu);
    let mode = match srtp {
        (false, false) => "plain ↔ plain",
        (true, false) => "SRTP ↔ plain",
        _ => "SRTP ↔ SRTP",
    };
    println!(
        "| {n} | {mode} | {:.0} | {:.1} % | {:.2} µs | {} / {} | {} | {} |",
        relayed as f64 / secs as f64,
        cpu / secs as f64 * 100.0,
        cpu * 1e6 / relayed.max(1) as f64,
        received[0],
        received[1],
        if srtp.0 || srtp.1 {
            opened.to_string()
        } else {
            "-".into()
        },
        engine.srtp_rejected_total(),
    );
    engine.shutdown();
}

/// Each recording holds two sockets and a file: lift the soft descriptor limit to the hard one.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() {
    raise_fd_limit();
    let secs: u64 = knob("SECS", "10").parse().unwrap();
    println!("concurrent recordings (dual WAV, RTP every 20 ms to each endpoint)");
    println!("| recordings | for | frames offered | frames dropped | saved | durations |");
    println!("|---|---|---|---|---|---|");
    for n in knob("RECORDINGS", "100 300 600").split_whitespace() {
        recordings(n.parse().unwrap(), secs);
    }
    println!();
    println!("many small conferences (every member talking, mix-minus to each)");
    println!(
        "| conferences | for | mixed packets per member | CPU of a core per conference (whole process, test sockets included) |"
    );
    println!("|---|---|---|---|");
    for n in knob("CONFERENCES", "50 300").split_whitespace() {
        conferences(n.parse().unwrap(), secs.min(5));
    }
    let calls: usize = knob("CALLS", "500").parse().unwrap();
    println!();
    println!("memory per bridged call (RSS growth / calls)");
    println!("| calls | relaying | + taps on both tracks of both legs | tap frames consumed |");
    println!("|---|---|---|---|");
    memory(calls);
    println!();
    println!("concurrent calls relaying both ways, plain and SRTP (AES_CM_128_HMAC_SHA1_80)");
    println!(
        "| calls | legs | packets relayed/s | media threads' CPU (of a core) | CPU per relayed packet | received by each side | SRTP packets the first call's phones opened | SRTP rejected |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in knob("SRTP_CALLS", "1000").split_whitespace() {
        for srtp in [(false, false), (true, false), (true, true)] {
            srtp_calls(n.parse().unwrap(), secs.min(5), srtp);
        }
    }
}
