//! sbload: a SIP + RTP load generator for the benchmarks of `benches/load` — a caller that
//! places calls at a rate through the server under test to a callee trunk it also plays,
//! which answers them and echoes their media back.
//!
//! SIPp, the reference tool (and kept in `benches/load/sipp.sh` for comparability with the
//! anchor), handles each call's RTP with its own socket and a datagram per system call, and
//! took as much CPU as the server it measured: at a thousand calls with media the limit found
//! was SIPp's echo socket. Here each worker thread carries many calls on one SIP and one RTP
//! socket, sends a 20 ms tick's packets in `sendmmsg` batches and reads with `recvmmsg`, and
//! reports its own CPU per call beside the server's, so a run shows when the generator, not
//! the server, was the limit.
//!
//! Pass criteria are SIPp's and the anchor harness's: every call ended well (0 failed),
//! retransmissions at most 1 % of the calls, RTP loss (sent and not echoed back) at most 0.1 %.
//!
//!   cargo run --release -p sbload -- --target 127.0.0.1:5060 --uas 127.0.0.1:5070 \
//!       --rate 600 --calls 12000 [--hold-ms 0] [--media] [--limit 5000] [--threads 2] \
//!       [--service 1000] [--refusal-ok] [--server-pid PID] [--server-threads media-]

mod mmsg;
mod sip;
mod stats;
mod uac;
mod uas;

use stats::{Stats, UasStats};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

struct Args {
    uac: uac::Config,
    uas: SocketAddrV4,
    threads: u32,
    server_pid: Option<u32>,
    server_threads: Option<String>,
}

fn usage(problem: &str) -> ! {
    eprintln!("sbload: {problem}\nsee the top of benches/sbload/src/main.rs for the options");
    std::process::exit(2)
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1);
    let mut target = None;
    let mut uas = None;
    let (mut rate, mut calls, mut hold_ms, mut limit, mut threads) = (100.0, 1000, 0, 0, 1);
    let (mut media, mut refusal_ok) = (false, false);
    let mut service = "1000".to_owned();
    let (mut server_pid, mut server_threads) = (None, None);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        let number = |v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{arg}: not a number: {v}")))
        };
        match arg.as_str() {
            "--target" => target = value().parse().ok(),
            "--uas" => uas = value().parse().ok(),
            "--rate" => rate = number(value()),
            "--calls" => calls = number(value()) as u64,
            "--hold-ms" => hold_ms = number(value()) as u64,
            "--limit" => limit = number(value()) as usize,
            "--threads" => threads = number(value()).max(1.0) as u32,
            "--service" => service = value(),
            "--media" => media = true,
            "--refusal-ok" => refusal_ok = true,
            "--server-pid" => server_pid = Some(number(value()) as u32),
            "--server-threads" => server_threads = Some(value()),
            // What `cargo bench` adds.
            "--bench" => {}
            other => usage(&format!("unknown option {other}")),
        }
    }
    let target: SocketAddrV4 = target.unwrap_or_else(|| usage("--target IPv4:port is needed"));
    Args {
        uac: uac::Config {
            target,
            local: *target.ip(),
            service,
            rate,
            calls,
            limit: if limit == 0 { usize::MAX } else { limit },
            hold: Duration::from_millis(hold_ms),
            media,
            refusal_ok,
            worker: 0,
        },
        uas: uas.unwrap_or_else(|| usage("--uas IPv4:port (the callee trunk) is needed")),
        threads,
        server_pid,
        server_threads,
    }
}

/// CPU seconds of process `pid`, or of its threads whose names start with `prefix`.
fn cpu_of(pid: u32, prefix: Option<&str>) -> f64 {
    let ticks = |stat: &str| -> Option<(String, f64)> {
        let (head, rest) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1.to_owned();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some((name, t / 100.0))
    };
    match prefix {
        None => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| ticks(&s))
            .map_or(0.0, |(_, t)| t),
        Some(prefix) => std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter_map(|s| ticks(&s))
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, t)| t)
            .sum(),
    }
}

fn main() {
    let args = parse();
    let stop = Arc::new(AtomicBool::new(false));
    let uas = uas::Uas::bind(args.uas);
    let uas = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("sbload-uas".into())
            .spawn(move || uas.run(stop))
            .unwrap()
    };
    let server = |prefix: Option<&str>| args.server_pid.map(|p| cpu_of(p, prefix));
    let server0 = (server(None), server(args.server_threads.as_deref()));
    let n = args.threads;
    let workers: Vec<_> = (0..n)
        .map(|w| {
            let mut cfg = args.uac.clone();
            cfg.worker = w;
            cfg.rate /= n as f64;
            cfg.calls =
                args.uac.calls / n as u64 + u64::from((w as u64) < args.uac.calls % n as u64);
            cfg.limit = (args.uac.limit / n as usize).max(1);
            let uac = uac::Uac::new(cfg);
            std::thread::Builder::new()
                .name(format!("sbload-uac-{w}"))
                .spawn(move || uac.run())
                .unwrap()
        })
        .collect();
    let mut total = Stats::default();
    for w in workers {
        total.add(&w.join().expect("a caller worker panicked"));
    }
    let server1 = (server(None), server(args.server_threads.as_deref()));
    // The last echoes and BYEs settle.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let uas_stats = uas.join().expect("the callee worker panicked");
    let pass = report(&args, &total, &uas_stats, server0, server1);
    std::process::exit(if pass { 0 } else { 1 });
}

fn report(
    args: &Args,
    s: &Stats,
    u: &UasStats,
    server0: (Option<f64>, Option<f64>),
    server1: (Option<f64>, Option<f64>),
) -> bool {
    let calls = s.started.max(1) as f64;
    let loss_pct = if s.rtp_sent == 0 {
        0.0
    } else {
        100.0 * s.rtp_sent.saturating_sub(s.rtp_received) as f64 / s.rtp_sent as f64
    };
    let retrans_pct = 100.0 * s.retrans as f64 / calls;
    let setup = s.setup_ms / s.answered.max(1) as f64;
    let gen_cpu = s.cpu + u.cpu;
    let server_cpu = server0.0.zip(server1.0).map(|(a, b)| b - a);
    let threads_cpu = server0.1.zip(server1.1).map(|(a, b)| b - a);
    let pass = s.failed == 0
        && s.ok + s.refused == args.uac.calls
        && retrans_pct <= 1.0
        && (!args.uac.media || loss_pct <= 0.1);
    println!(
        "sbload: {} calls at {} calls/s (hold {} ms, media {}) to {} in {:.1} s",
        args.uac.calls,
        args.uac.rate,
        args.uac.hold.as_millis(),
        if args.uac.media { "PCMA 50 pps" } else { "off" },
        args.uac.target,
        s.elapsed
    );
    println!(
        "{:>8} {:>8} {:>7} {:>8} {:>8} {:>9} | {:>10} {:>10} {:>10} {:>7} | {:>11} {:>14} | result",
        "calls",
        "ok",
        "failed",
        "refused",
        "retrans",
        "setup_ms",
        "rtp_sent",
        "echoed",
        "back",
        "loss%",
        "gen_ms/call",
        "server_ms/call",
    );
    println!(
        "{:>8} {:>8} {:>7} {:>8} {:>8} {:>9.2} | {:>10} {:>10} {:>10} {:>7.3} | {:>11.3} {:>14} | {}",
        s.started,
        s.ok,
        s.failed,
        s.refused,
        s.retrans,
        setup,
        s.rtp_sent,
        u.rtp_echoed,
        s.rtp_received,
        loss_pct,
        gen_cpu * 1e3 / calls,
        server_cpu.map_or("-".to_owned(), |c| format!("{:.3}", c * 1e3 / calls)),
        if pass { "PASS" } else { "FAIL" }
    );
    if !s.failures.is_empty() {
        println!(
            "failures by status (0: hung up by the server, 408: no answer): {:?}",
            s.failures
        );
    }
    if let (Some(t), Some(prefix)) = (threads_cpu, &args.server_threads) {
        let relayed = u.rtp_echoed + s.rtp_received;
        println!(
            "server threads {prefix}*: {t:.2} s CPU, {:.2} µs per relayed packet ({relayed} packets)",
            t * 1e6 / relayed.max(1) as f64
        );
    }
    println!(
        "RESULT {{\"calls\":{},\"ok\":{},\"failed\":{},\"refused\":{},\"retrans\":{},\"setup_ms\":{:.3},\
         \"rtp_sent\":{},\"rtp_echoed\":{},\"rtp_back\":{},\"rtp_stray\":{},\"loss_pct\":{:.4},\
         \"late_ticks\":{},\"send_errors\":{},\"uas_retrans\":{},\"uas_unacked\":{},\
         \"gen_cpu_s\":{:.3},\"uac_cpu_s\":{:.3},\"uas_cpu_s\":{:.3},\"server_cpu_s\":{},\"server_threads_cpu_s\":{},\
         \"elapsed_s\":{:.3},\"pass\":{}}}",
        s.started,
        s.ok,
        s.failed,
        s.refused,
        s.retrans,
        setup,
        s.rtp_sent,
        u.rtp_echoed,
        s.rtp_received,
        s.rtp_stray,
        loss_pct,
        s.late_ticks,
        s.send_errors + u.send_errors,
        u.retrans,
        u.unacked,
        gen_cpu,
        s.cpu,
        u.cpu,
        server_cpu.map_or("null".to_owned(), |c| format!("{c:.3}")),
        threads_cpu.map_or("null".to_owned(), |c| format!("{c:.3}")),
        s.elapsed,
        pass
    );
    pass
}
