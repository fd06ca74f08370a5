//! TeXML, driven by Telnyx's official Python SDK (tests/compat/telnyx_texml.py): a TeXML
//! application made and given a number through the SDK; a call to it runs the application's
//! TeXML (a WAV the caller hears, a `<Gather>` of the digit it presses); a call placed with
//! `texml.calls.create` runs inline TeXML (the callee hears it), is read back, and is
//! redirected by `texml.accounts.calls.update` to a document that hangs up. Every request the
//! app gets is checked as the SDK checks a webhook (Ed25519 with the account's public key),
//! and shows the call Telnyx's way.

mod common;

use common::sdk_app::telnyx::{self, KEY, PUBLIC_KEY};
use common::sdk_app::{
    callee_phone, expect_step, hear, spawn_script, summary_of, tell, windows_of,
};
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The test account as Telnyx shows it (its SID's hex digits as a UUID).
const ACCOUNT_ID: &str = "01234567-89ab-cdef-0123-456789abcdef";

/// The requests the app got at `path`.
fn at<'a>(s: &'a Value, path: &str) -> Vec<&'a Value> {
    (s["requests"].as_array().unwrap().iter())
        .filter(|r| r["path"] == path)
        .map(|r| &r["params"])
        .collect()
}

#[test]
fn the_official_telnyx_sdk_runs_texml_applications() {
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const NUMBER: &str = "+15557770401";
    const CALLEE: &str = "+15551234";
    let net = Arc::new(Net::new(107));
    let hooks = format!("{}:18080", net.ip(6));
    let server = Server::start(
        &net,
        &net.two_trunks(&telnyx::config(&hooks, "", &[NUMBER])),
    );
    let (mut app, mut lines) = spawn_script(
        &python,
        "telnyx_texml.py",
        &server,
        &[KEY, PUBLIC_KEY, ACCOUNT_ID, &hooks, NUMBER, CALLEE],
    );
    expect_step(&mut app, &mut lines, "READY", &server);

    // The incoming call: the application's WAV (600 Hz), then its <Gather> takes a 7.
    let (phone, caller) = common::voice_app::call_with_phone(&net, &server, NUMBER);
    let (heard, endpoint) = hear(&phone, Duration::from_secs(10), Duration::from_millis(700));
    let endpoint = endpoint.expect("the application's WAV");
    assert!(windows_of(&heard, 600.0) >= 15, "{} samples", heard.len());
    let mut seq = 1;
    send_rfc4733(&phone, endpoint, 7, &mut seq, 8000);
    expect_step(&mut app, &mut lines, "GATHERED 7", &server);
    expect_step(&mut app, &mut lines, "COMPLETED", &server);
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        server.log()
    );

    // The call placed with inline TeXML: the callee hears the WAV, then the redirect's
    // document hangs up.
    let (callee_phone, callee) = callee_phone(&net, 7);
    tell(&mut app, "DIAL");
    let (heard, _) = hear(
        &callee_phone,
        Duration::from_secs(15),
        Duration::from_millis(700),
    );
    assert!(windows_of(&heard, 600.0) >= 15, "{} samples", heard.len());
    expect_step(&mut app, &mut lines, "CALLED", &server);
    tell(&mut app, "REDIRECT");
    assert!(callee.finished_ok(Duration::from_secs(15)), "the callee");

    let s = summary_of(app, lines, &server);
    let requests = s["requests"].as_array().unwrap();
    assert!(
        requests.iter().all(|r| r["verified"] == true),
        "every request signed with the account's key: {s}"
    );
    assert_eq!(s["state"]["tampered"], true, "{s}");
    assert!(
        requests
            .iter()
            .all(|r| { r["content_type"] == "application/x-www-form-urlencoded" })
    );
    assert_eq!(s["errors"]["unknown_application"], "10015", "{s}");
    let application = &s["state"]["application"];
    let app_id = application["id"].as_str().unwrap();
    assert_eq!(application["record_type"], "texml_application");
    assert_eq!(application["voice_method"], "post");
    assert_eq!(s["state"]["listed"], serde_json::json!([app_id]), "{s}");

    // The incoming call's requests: Telnyx's ids, the application, the digit.
    let fetched = at(&s, "/texml/inbound");
    assert_eq!(fetched.len(), 1, "{s}");
    let first = fetched[0];
    let call_sid = first["CallSid"].as_str().unwrap();
    assert!(call_sid.starts_with("v3:"), "{first}");
    assert_eq!(first["CallSidLegacy"], call_sid);
    assert_eq!(first["AccountSid"], ACCOUNT_ID);
    assert_eq!(first["ConnectionId"], app_id);
    assert_eq!(first["From"], "+15550001", "{first}");
    assert_eq!(first["To"], NUMBER);
    assert_eq!(first["Direction"], "inbound");
    assert_eq!(first["CallStatus"], "ringing");
    let gathered = at(&s, "/texml/gathered");
    assert_eq!(gathered.len(), 1, "{s}");
    assert_eq!(gathered[0]["Digits"], "7");
    assert_eq!(gathered[0]["CallSid"], call_sid);
    assert_eq!(gathered[0]["CallStatus"], "in-progress");
    let statuses = at(&s, "/status");
    let completed = statuses
        .iter()
        .find(|p| p["To"] == NUMBER)
        .expect("the incoming call's status callback");
    assert_eq!(completed["CallSid"], call_sid);
    assert_eq!(completed["CallStatus"], "completed");
    assert_eq!(completed["CallbackSource"], "call-progress-events");
    assert_eq!(completed["ConnectionId"], app_id);
    assert_eq!(completed["SequenceNumber"], "0");
    let stamp = completed["Timestamp"].as_str().unwrap();
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "RFC 3339: {stamp}"
    );
    let talked: u64 = completed["CallDuration"].as_str().unwrap().parse().unwrap();
    assert!((2..=30).contains(&talked), "{completed}");

    // The placed call: created queued, read back in progress, redirected.
    let created = &s["state"]["created"];
    assert_eq!(created["status"], "queued", "{s}");
    assert_eq!(
        (&created["from"], &created["to"]),
        (&Value::from(NUMBER), &Value::from(CALLEE))
    );
    let placed = created["call_sid"].as_str().unwrap();
    assert!(placed.starts_with("v3:"));
    let retrieved = &s["state"]["retrieved"];
    assert_eq!(retrieved["sid"], placed, "{s}");
    assert_eq!(retrieved["status"], "in-progress");
    assert_eq!(retrieved["account_sid"], ACCOUNT_ID);
    assert_eq!(retrieved["direction"], "outbound");
    assert_eq!(
        retrieved["uri"],
        format!("/v2/texml/Accounts/{ACCOUNT_ID}/Calls/{placed}.json")
    );
    assert_eq!(s["state"]["updated"]["sid"], placed);
    let redirected = at(&s, "/texml/redirected");
    assert_eq!(redirected.len(), 1, "{s}");
    assert_eq!(redirected[0]["CallSid"], placed);
    assert_eq!(redirected[0]["ConnectionId"], app_id);
    let done = statuses
        .iter()
        .find(|p| p["To"] == CALLEE)
        .expect("the placed call's status callback (the application's)");
    assert_eq!(done["CallSid"], placed);
    assert_eq!(done["CallStatus"], "completed");
}
