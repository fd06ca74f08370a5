//! The database goes away under live calls, against the real binary: CDR writes wait in
//! memory, and once more rows wait than `storage.max_rows_waiting`, a new INVITE is refused
//! with 503 instead of growing the backlog. When the database is back, every call's record
//! lands, closed, and calls are taken again. (SQLite is "away" while another process holds
//! its write lock: the server's writes time out with SQLITE_BUSY, as an outage.)

use crate::common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Callers in the burst.
const HELD: usize = 10;

#[test]
fn an_outage_refuses_new_calls_past_the_bound_and_loses_no_record() {
    let net = Net::new(98);
    let server = Server::start_with(
        &net,
        &net.two_trunks(""),
        &[("SWITCHBOARD_STORAGE__MAX_ROWS_WAITING", "6")],
    );
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-mp", "6000", "-rtp_echo"]);

    // Another process takes the database's write lock and holds it until told to let go.
    let mut locker = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n\
             c.execute('COMMIT')\n",
        )
        .arg(net.path("data/switchboard.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map(owned)
        .unwrap();
    let mut line = String::new();
    BufReader::new(locker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    // Callers keep coming (ten calls of 8.5 s, 20 a second) while the records cannot be
    // written; once more than six rows wait, the rest are turned away.
    let uac = scenario(&net, "uac_pcap.xml", &[]);
    let refused = scenario(&net, "uac_expect_failure.xml", &[("CODE", "503")]);
    let (burst, probe) = std::thread::scope(|scope| {
        let burst = scope.spawn(|| {
            let n = HELD.to_string();
            run_sipp(
                &net,
                &uac,
                &net.ip(2),
                5060,
                server.sip,
                &[
                    "-mp",
                    "7000",
                    "-s",
                    "+15551234",
                    "-m",
                    &n,
                    "-l",
                    &n,
                    "-r",
                    "20",
                ],
                Duration::from_secs(60),
            )
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while server
            .metric("switchboard_calls_refused_total{reason=\"store-backlog\"}")
            .unwrap_or(0.0)
            < 1.0
        {
            assert!(
                Instant::now() < deadline,
                "no call was refused\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // One more caller sees the 503 on the wire while the records still wait.
        let probe = run_sipp(
            &net,
            &refused,
            &net.ip(2),
            5062,
            server.sip,
            &["-s", "+15551234", "-m", "1"],
            Duration::from_secs(20),
        );
        // The database comes back.
        let mut stdin = locker.stdin.take().unwrap();
        stdin.flush().unwrap();
        drop(stdin);
        assert!(locker.wait().unwrap().success());
        (burst.join().unwrap(), probe)
    });
    assert!(
        probe.status.success(),
        "expected 503: {probe:?}\n{}",
        server.log()
    );
    let answered = burst.successful as usize;
    assert!(
        answered >= 1 && burst.failed >= 1 && answered + burst.failed as usize == HELD,
        "{burst:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("switchboard_cdr_backlog").unwrap_or(1.0) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the backlog did not drain\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Calls are taken again, and every answered call's record is there, closed.
    let again = scenario(&net, "uac_short.xml", &[]);
    let run = run_sipp(
        &net,
        &again,
        &net.ip(2),
        5064,
        server.sip,
        &["-s", "+15551234", "-m", "1"],
        Duration::from_secs(20),
    );
    assert!(
        run.status.success(),
        "after the outage: {run:?}\n{}",
        server.log()
    );
    // Refused calls left no record; every answered one (and the one after) is there, closed.
    let calls = server.ended_calls(answered + 1);
    assert_eq!(calls.len(), answered + 1);
    for call in &calls {
        assert_eq!(call["status"], "completed", "{call}");
        assert!(call["ended_at"].is_string(), "{call}");
    }
}
