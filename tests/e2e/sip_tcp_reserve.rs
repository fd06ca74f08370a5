//! SIP over TCP against strangers who hold connections open: from seven addresses they take
//! every connection the per-address cap lets them, more than the whole cap; the carrier's own
//! TCP connection still gets in (the reserve) and its call completes while they hold on, and
//! the strangers' silent connections are closed after the first-message time.

use crate::common;

use common::*;
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn a_trunks_tcp_connection_gets_in_while_strangers_hold_every_other() {
    let net = Net::new(135);
    let config = net.two_trunks("");
    let server = Server::start_with(
        &net,
        &config,
        &[
            ("SWITCHBOARD_SIP__TCP_MAX_CONNECTIONS", "40"),
            ("SWITCHBOARD_SIP__TCP_MAX_PER_IP", "8"),
            ("SWITCHBOARD_SIP__TCP_RESERVED", "4"),
            ("SWITCHBOARD_SIP__TCP_FIRST_MESSAGE_SECS", "8"),
        ],
    );
    // Seven strangers, eight silent connections each: the server keeps 36 of the 56.
    let mut held = Vec::new();
    for host in 20..27u8 {
        for _ in 0..8 {
            held.push(connect_from(&net.ip(host), server.sip));
        }
    }
    let started = Instant::now();
    // Those over the cap were closed at accept; let their closing arrive.
    std::thread::sleep(Duration::from_millis(300));
    let open_before = held.iter_mut().map(open).filter(|&o| o).count();
    assert_eq!(open_before, 36, "strangers get all but the reserve");

    // carrier-a calls in over TCP from its own address: its connection takes the reserve.
    let call = {
        let callee = SippServer::start(
            &net,
            &scenario(&net, "uas_wait_bye.xml", &[]),
            &net.ip(3),
            5060,
            &["-m", "1"],
        );
        let run = run_sipp(
            &net,
            &scenario(&net, "uac_short.xml", &[]),
            &net.ip(2),
            5060,
            server.sip,
            &["-s", "+15551234", "-m", "1", "-t", "t1"],
            Duration::from_secs(30),
        );
        if !run.status.success() {
            for e in std::fs::read_dir(net.dir.path()).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") || name.ends_with(".stderr") {
                    eprintln!(
                        "== {name}\n{}",
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    );
                }
            }
        }
        assert!(run.status.success(), "{run:?}\n{}", server.log());
        assert!(
            callee.finished_ok(Duration::from_secs(10)),
            "{}",
            server.log()
        );
        server.ended_calls(1).remove(0)
    };
    assert_eq!(call["status"], "completed", "{call}");
    let during = held.iter_mut().map(open).filter(|&o| o).count();
    assert_eq!(during, 36, "the strangers held on all through the call");

    // The strangers sent nothing: closed 8 s after they connected.
    std::thread::sleep(
        Duration::from_secs(8).saturating_sub(started.elapsed()) + Duration::from_secs(1),
    );
    let still = held.iter_mut().map(open).filter(|&o| o).count();
    assert_eq!(
        still, 0,
        "silent strangers are closed after the first-message time"
    );
}

/// A TCP connection to `to` from `from`.
fn connect_from(from: &str, to: std::net::SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap().into_std().unwrap()
    })
}

/// Whether the server still holds `s` open: no end of stream or reset waiting on it.
fn open(s: &mut TcpStream) -> bool {
    use std::io::Read;
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}
