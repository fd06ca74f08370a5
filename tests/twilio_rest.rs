//! Twilio's REST API against the real binary, driven by Twilio's official Python SDK (in the
//! venv scripts/test.sh sets up): tests/compat/twilio_rest_calls.py creates, fetches, lists,
//! pages, redirects, hangs up and deletes calls that a SIPp callee answers, records them, and
//! checks errors and account isolation; tests/compat/twilio_rest_conferences.py lists a room
//! two calls joined, mutes, holds and kicks participants and ends the conference.

mod common;

use common::*;
use std::time::Duration;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER: &str = "ACfedcba9876543210fedcba9876543210";
const TOKEN: &str = "rest-auth-token";

/// Runs an SDK script (arguments: base URL, account, token, `extra`) against a server whose
/// carrier-b answers `calls` calls. Skipped without the SDK's venv, which scripts/test.sh
/// sets up and requires.
fn run_script(n: u8, script: &str, calls: &str, extra: &[&str]) {
    let Ok(python) = std::env::var("SWITCHBOARD_TWILIO_PYTHON") else {
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_COMPAT").is_err(),
            "SWITCHBOARD_TWILIO_PYTHON is not set"
        );
        eprintln!("skipped: run scripts/test.sh for the Twilio SDK's virtual environment");
        return;
    };
    let net = Net::new(n);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"{TOKEN}-other\"\n"
    ));
    let server = Server::start(&net, &config);
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", calls]);

    let script = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let base = format!("http://{}", server.http);
    let mut child = std::process::Command::new(python)
        .args([script.as_str(), &base, ACCOUNT, TOKEN])
        .args(extra)
        .env_remove("TWILIO_REGION")
        .env_remove("TWILIO_EDGE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the SDK script hangs");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        server.log()
    );
}

#[test]
fn the_official_sdk_manages_calls() {
    run_script(51, "twilio_rest_calls.py", "2", &[OTHER]);
}

#[test]
fn the_official_sdk_manages_conferences() {
    run_script(55, "twilio_rest_conferences.py", "2", &[]);
}
