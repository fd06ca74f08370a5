//! Liveness: a thread that carries calls and dies or stalls is noticed. A stalled call core
//! turns /healthz to 503 and back; a panic in the call core or a media worker stops the
//! server with a non-zero exit (after hanging up the calls it still can), instead of leaving a
//! process that answers "ok" and carries no calls. The faults are injected through a debug-only
//! lever (`SWITCHBOARD_TEST_FAULT`, struck by SIGUSR1).

use crate::common;

use common::*;
use std::time::{Duration, Instant};

/// Polls /healthz until `want` (status) is seen; the body then.
fn healthz_becomes(server: &Server, want: u16, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let (status, body) = server.http_get("/healthz");
        if status == want {
            return Some(body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn a_stalled_call_core_turns_healthz_unhealthy_until_it_recovers() {
    let net = Net::new(91);
    let server = Server::start_with(
        &net,
        &net.two_trunks(""),
        &[("SWITCHBOARD_TEST_FAULT", "sip-stall")],
    );
    assert_eq!(server.http_get("/healthz"), (200, "ok\n".to_owned()));
    server.signal("USR1");
    let body = healthz_becomes(&server, 503, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("never unhealthy:\n{}", server.log()));
    assert!(body.starts_with("unhealthy\n"), "{body}");
    assert!(body.contains("sip: stalled for "), "{body}");
    assert!(
        !body.contains("media-0"),
        "only the stalled thread is named: {body}"
    );
    // The stall lasts 8 s; then the core beats again.
    assert_eq!(
        healthz_becomes(&server, 200, Duration::from_secs(15)).as_deref(),
        Some("ok\n")
    );
}

#[test]
fn a_panic_in_the_call_core_stops_the_server_with_an_error() {
    let net = Net::new(92);
    let mut server = Server::start_with(
        &net,
        &net.two_trunks(""),
        &[("SWITCHBOARD_TEST_FAULT", "sip-panic")],
    );
    server.signal("USR1");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running after the panic:\n{}", server.log()));
    assert!(!status.success(), "exit status {status}");
    let log = server.log();
    assert!(
        log.contains("the sip thread failed (panicked: fault injected into the call core)"),
        "{log}"
    );
}

/// A media worker dies with a call up: the call is hung up on both sides (the SIP core still
/// works), its CDR is closed, and the process exits non-zero.
#[test]
fn a_panic_in_a_media_worker_hangs_up_and_stops_the_server() {
    let net = Net::new(93);
    let mut server = Server::start_with(
        &net,
        &net.two_trunks(""),
        &[("SWITCHBOARD_TEST_FAULT", "media-panic")],
    );
    let callee = SippServer::start(
        &net,
        &scenario(&net, "uas_wait_bye.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let caller = SippServer::start(
        &net,
        &scenario(&net, "uac_wait_bye.xml", &[]),
        &net.ip(2),
        5060,
        &["-s", "+15551234", "-m", "1", &server.sip.to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .calls()
        .iter()
        .any(|c| c["status"] == "in-progress" && !c["answered_at"].is_null())
    {
        assert!(Instant::now() < deadline, "no call up:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    server.signal("USR1");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running after the panic:\n{}", server.log()));
    assert!(!status.success(), "exit status {status}");
    assert!(
        server
            .log()
            .contains("the media-0 thread failed (panicked: fault injected into media worker 0)"),
        "{}",
        server.log()
    );
    assert!(
        caller.finished_ok(Duration::from_secs(5)),
        "the caller got a BYE"
    );
    assert!(
        callee.finished_ok(Duration::from_secs(5)),
        "the callee got a BYE"
    );
    let calls = server.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0]["status"].as_str(), calls[0]["hangup_by"].as_str()),
        (Some("completed"), Some("system"))
    );
}
