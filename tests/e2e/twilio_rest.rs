//! Twilio's REST API against the real binary, driven by Twilio's official Python SDK (in the
//! venv scripts/test.sh sets up): tests/compat/twilio_rest_calls.py creates, fetches, lists,
//! pages, redirects, hangs up and deletes calls that a SIPp callee answers, records them, and
//! checks errors and account isolation; tests/compat/twilio_rest_conferences.py lists a room
//! two calls joined, mutes, holds and kicks participants and ends the conference;
//! tests/compat/twilio_rest_numbers.py manages IncomingPhoneNumbers that SIPp calls.

use crate::common;

use common::sdk_app::{hears_speech, sdk_script_with};
use common::*;
use std::time::Duration;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER: &str = "ACfedcba9876543210fedcba9876543210";
const TOKEN: &str = "rest-auth-token";
const API_KEY: &str = "SK00112233445566778899aabbccddeeff";
const API_SECRET: &str = "rest-api-key-secret";
const ADMIN_TOKEN: &str = "operator-admin-token";

fn admin_request(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let headers = format!("Authorization: Bearer {token}\r\nContent-Type: application/json\r\n");
    let (status, body) = server.request(method, path, &headers, body.as_bytes());
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The operator grants the other account +16665550100-+16665550199 through the admin API,
/// after its refusals of bad credentials and bad ranges.
fn grant_other_a_range(server: &Server) {
    let path = format!("/admin/v1/accounts/{OTHER}/number_ranges");
    let range = r#"{"range": "+16665550100-+16665550199"}"#;
    let (status, _) = admin_request(server, "POST", &path, "wrong-token", range);
    assert_eq!(status, 401);
    let (status, body) = admin_request(server, "POST", &path, ADMIN_TOKEN, r#"{"range": "666*"}"#);
    assert_eq!(status, 400, "{body}");
    let missing = "/admin/v1/accounts/AC00000000000000000000000000000000/number_ranges";
    let (status, _) = admin_request(server, "POST", missing, ADMIN_TOKEN, range);
    assert_eq!(status, 404);
    let (status, body) = admin_request(server, "POST", &path, ADMIN_TOKEN, range);
    assert_eq!(status, 201, "{body}");
    let (status, _) = admin_request(server, "POST", &path, ADMIN_TOKEN, range);
    assert_eq!(status, 200, "granted once");
    let (_, body) = admin_request(server, "GET", &path, ADMIN_TOKEN, "");
    let listed = json(&body);
    assert_eq!(
        listed["granted"],
        serde_json::json!(["+16665550100-+16665550199"])
    );
    assert_eq!(listed["configured"], serde_json::json!([]));
    // A grant withdrawn and given again.
    let one = format!("{path}/%2B16665550100-%2B16665550199");
    assert_eq!(
        admin_request(server, "DELETE", &one, ADMIN_TOKEN, "").0,
        204
    );
    assert_eq!(
        admin_request(server, "DELETE", &one, ADMIN_TOKEN, "").0,
        404
    );
    assert_eq!(
        admin_request(server, "POST", &path, ADMIN_TOKEN, range).0,
        201
    );
    // Each grant and withdrawal is in the audit (a repeat that changed nothing is not).
    let (_, body) = admin_request(server, "GET", "/admin/v1/audit", ADMIN_TOKEN, "");
    let audit = json(&body);
    let said: Vec<(&str, &str)> = (audit["entries"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
            )
        })
        .collect();
    let subject = format!("number range +16665550100-+16665550199 of {OTHER}");
    assert_eq!(
        said,
        [
            ("grant", subject.as_str()),
            ("revoke", subject.as_str()),
            ("grant", subject.as_str())
        ],
        "{audit}"
    );
}

/// The SDK's venv, or `None` (the test is skipped) when the test command did not set it up.
fn python() -> Option<String> {
    compat_env("SWITCHBOARD_TWILIO_PYTHON")
}

/// Runs an SDK script (arguments: base URL, then `args`) to its `ok`. When the
/// script prints `CALL <number> <outcome>`, a SIPp caller on carrier-a dials the number and
/// the script is told `done` if the call was `answered` (and hung up by Switchboard) or
/// refused with the SIP code `outcome`.
fn sdk_script(python: &str, net: &Net, server: &Server, script: &str, args: &[&str]) {
    sdk_script_with(python, server, script, args, |line| {
        let (number, outcome) = line.strip_prefix("CALL ")?.split_once(' ')?;
        Some(place_call(net, server, number, outcome))
    });
}

/// A SIPp call from carrier-a to `number`: `done` when it went as `outcome` says, else what
/// happened.
fn place_call(net: &Net, server: &Server, number: &str, outcome: &str) -> String {
    let uac = match outcome {
        "answered" => scenario(net, "uac_wait_bye.xml", &[]),
        code => scenario(net, "uac_expect_failure.xml", &[("CODE", code)]),
    };
    let run = run_sipp(
        net,
        &uac,
        &net.ip(2),
        5060,
        server.sip,
        &["-s", number, "-m", "1"],
        Duration::from_secs(20),
    );
    if (run.successful, run.failed) == (1, 0) {
        "done".into()
    } else {
        format!("sipp: {run:?}").replace('\n', " ")
    }
}

fn two_accounts(net: &Net, extra: &str) -> String {
    net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         number_ranges = [\"+1666555*\"]\n\
         api_keys = [{{ sid = \"{API_KEY}\", secret = \"{API_SECRET}\" }}]\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"{TOKEN}-other\"\ncaller_ids = [\"+1555*\"]\n{extra}"
    ))
}

/// Runs an SDK script against a server whose carrier-b answers `calls` calls.
fn run_script(n: u8, script: &str, calls: &str, extra: &[&str]) {
    let Some(python) = python() else { return };
    let net = Net::new(n);
    let server = Server::start(&net, &two_accounts(&net, ""));
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", calls]);
    let args: Vec<&str> = [ACCOUNT, TOKEN].iter().chain(extra).copied().collect();
    sdk_script(&python, &net, &server, script, &args);
}

#[test]
fn the_official_sdk_manages_calls() {
    run_script(51, "twilio_rest_calls.py", "6", &[OTHER]);
}

/// tests/compat/twilio_subaccounts.py: a subaccount made, used (a number, a call through the
/// trunk), reached by its owner, suspended, reactivated and closed.
#[test]
fn the_official_sdk_makes_and_runs_subaccounts() {
    run_script(241, "twilio_subaccounts.py", "1", &[OTHER]);
}

#[test]
fn the_official_sdk_manages_conferences() {
    run_script(55, "twilio_rest_conferences.py", "5", &[]);
}

/// tests/compat/twilio_rest_numbers.py claims, points, filters, releases numbers while SIPp
/// calls them; after a restart what the API made of them is still there.
#[test]
fn the_official_sdk_manages_phone_numbers() {
    let Some(python) = python() else { return };
    let net = Net::new(57);
    let seeded = "+17775550100";
    let config = two_accounts(
        &net,
        &format!(
            "[[numbers]]\nphone_number = \"{seeded}\"\naccount_sid = \"{ACCOUNT}\"\n\
             voice_url = \"http://127.0.0.1:9/seeded\"\nvoice_method = \"GET\"\n"
        ),
    );
    let admin = [("SWITCHBOARD_HTTP__ADMIN_TOKEN", ADMIN_TOKEN)];
    let server = Server::start_with(&net, &config, &admin);
    // Numbers outside an account's granted ranges cannot be claimed: the other account has
    // none until the operator grants it some through the admin API.
    let claim = |server: &Server| {
        server.http(
            "POST",
            &format!("/2010-04-01/Accounts/{OTHER}/IncomingPhoneNumbers.json"),
            Some((OTHER, &format!("{TOKEN}-other"))),
            "PhoneNumber=%2B16665550199",
        )
    };
    let (status, body) = claim(&server);
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["code"], 21422, "{body}");
    grant_other_a_range(&server);
    // An API key reads the account but not its auth token; the auth token does.
    let account = |user: &str, secret: &str| {
        let path = format!("/2010-04-01/Accounts/{ACCOUNT}.json");
        let (status, body) = server.http("GET", &path, Some((user, secret)), "");
        assert_eq!(status, 200, "{body}");
        json(&body)
    };
    assert_eq!(
        account(API_KEY, API_SECRET)["auth_token"],
        serde_json::Value::Null
    );
    assert_eq!(account(API_KEY, API_SECRET)["sid"], ACCOUNT);
    assert_eq!(account(ACCOUNT, TOKEN)["auth_token"], TOKEN);

    let script = "twilio_rest_numbers.py";
    sdk_script(
        &python,
        &net,
        &server,
        script,
        &[ACCOUNT, TOKEN, OTHER, seeded],
    );
    drop(server);
    let server = Server::start_with(&net, &config, &admin);
    let path = format!("/admin/v1/accounts/{OTHER}/number_ranges");
    let (_, body) = admin_request(&server, "GET", &path, ADMIN_TOKEN, "");
    assert_eq!(
        json(&body)["granted"],
        serde_json::json!(["+16665550100-+16665550199"]),
        "the grant outlives a restart"
    );
    sdk_script(
        &python,
        &net,
        &server,
        script,
        &[ACCOUNT, TOKEN, OTHER, seeded, "--after-restart"],
    );
}

/// tests/compat/signalwire_rest.py: SignalWire's own SDK (its venv pins twilio 6.54) with a
/// project id, API token and signing key, under both URL prefixes.
#[test]
fn the_official_signalwire_sdk_manages_calls() {
    let Some(python) = compat_env("SWITCHBOARD_SIGNALWIRE_PYTHON") else {
        return;
    };
    let net = Net::new(58);
    let (project, token, key) = (
        "1b8f6a2c-3d4e-4f50-8a61-72839405a6b7",
        "PTsignalwire-api-token",
        "PSK_switchboard_test_key",
    );
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{token}\"\ncaller_ids = [\"+1555*\"]\n\
         project_id = \"{project}\"\nsigning_key = \"{key}\"\nnumber_ranges = [\"+1666*\"]\n"
    ));
    let server = Server::start(&net, &config);
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "4"]);
    let args = [project, token, key];
    sdk_script(&python, &net, &server, "signalwire_rest.py", &args);
}

/// tests/compat/twilio_rest_queues.py: <Enqueue> with a wait document, members dequeued by
/// the API and by an agent's <Dial><Queue>, <Leave>, and the Queues resource.
#[test]
fn the_official_sdk_manages_queues() {
    run_script(59, "twilio_rest_queues.py", "7", &[]);
}

/// tests/compat/twilio_media_streams.py: `<Start><Stream>` from the SDK's VoiceResponse to a
/// `websockets` server that validates the upgrade's signature with the SDK's RequestValidator;
/// a second stream created, and both stopped, through the SDK's Streams resource; status
/// callbacks validated.
#[test]
fn the_official_sdk_streams_a_call_and_stops_its_streams() {
    run_script(63, "twilio_media_streams.py", "1", &[]);
}

/// tests/compat/twilio_node_sdk.js: Twilio's Node SDK, its `baseUrl` the only change.
#[test]
fn the_official_node_sdk_manages_calls() {
    let Some(modules) = compat_env("SWITCHBOARD_TWILIO_NODE_PATH") else {
        return;
    };
    let net = Net::new(61);
    let server = Server::start(&net, &two_accounts(&net, ""));
    let uas = scenario(&net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    run_node(&modules, "twilio_node_sdk.js", &server);
}

/// Runs a Node script of tests/compat (arguments: base URL, account, token) to its `ok`.
fn run_node(modules: &str, script: &str, server: &Server) {
    let script = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("node")
        .args([&script, &format!("http://{}", server.http), ACCOUNT, TOKEN])
        .env("NODE_PATH", modules)
        .output()
        .unwrap();
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

/// tests/compat/twilio_node_provisioning.js: Twilio's Node SDK makes a subaccount, which
/// searches and buys a number within its owner's grants, makes a SIP domain with a credential
/// list and an Elastic SIP Trunk (IP access control list, origination URL) given the number,
/// and suspends it.
#[test]
fn the_official_node_sdk_makes_a_subaccount_that_buys_a_number() {
    let Some(modules) = compat_env("SWITCHBOARD_TWILIO_NODE_PATH") else {
        return;
    };
    let net = Net::new(245);
    let server = Server::start(&net, &two_accounts(&net, ""));
    run_node(&modules, "twilio_node_provisioning.js", &server);
}

/// Each account has its own request budget: past it, Twilio's 429 with code 20429, while the
/// other account is served. Requests that fail authentication do not spend an account's budget.
#[test]
fn requests_over_an_accounts_rate_get_429_20429() {
    let net = Net::new(95);
    let server = Server::start_with(
        &net,
        &two_accounts(&net, ""),
        &[
            ("SWITCHBOARD_HTTP__RATE_LIMIT_PER_SEC", "0.05"),
            ("SWITCHBOARD_HTTP__RATE_LIMIT_BURST", "3"),
        ],
    );
    let account = |sid: &str| format!("/2010-04-01/Accounts/{sid}.json");
    for _ in 0..10 {
        let (status, _) = server.http("GET", &account(ACCOUNT), Some((ACCOUNT, "wrong")), "");
        assert_eq!(status, 401);
    }
    for _ in 0..3 {
        let (status, body) = server.http("GET", &account(ACCOUNT), Some((ACCOUNT, TOKEN)), "");
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = server.http("GET", &account(ACCOUNT), Some((ACCOUNT, TOKEN)), "");
    assert_eq!(status, 429, "{body}");
    let error = json(&body);
    assert_eq!(error["code"], 20429);
    assert_eq!(error["status"], 429);
    assert_eq!(error["message"], "Too Many Requests");
    assert_eq!(
        error["more_info"],
        "https://www.twilio.com/docs/errors/20429"
    );
    // Another call path of the same account is limited too; the other account is not.
    let calls = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json");
    assert_eq!(
        server.http("GET", &calls, Some((ACCOUNT, TOKEN)), "").0,
        429
    );
    let other = (OTHER, format!("{TOKEN}-other"));
    let (status, body) = server.http("GET", &account(OTHER), Some((other.0, &other.1)), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server.metric("switchboard_api_requests_limited_total"),
        Some(2.0)
    );
}

/// tests/compat/twilio_rest_caller_ids.py verifies a caller ID: the test is the phone called,
/// which hears the spoken prompt and keys the code (or a wrong one) in RFC 4733; the verified
/// number may then be presented, and no longer once deleted.
#[test]
fn the_official_sdk_verifies_an_outgoing_caller_id() {
    use common::rig::rtp_socket;
    let Some(python) = python() else { return };
    let net = Net::new(139);
    let route = "[[routes]]\npattern = \"^\\\\+?1999\"\ntrunk = \"carrier-b\"\n";
    let server = Server::start(&net, &two_accounts(&net, route));
    let mut phone = None;
    let mut answerer = None;
    sdk_script_with(
        &python,
        &server,
        "twilio_rest_caller_ids.py",
        &[ACCOUNT, TOKEN],
        |line| {
            if line == "PHONE" {
                // The callee of the last call leaves the carrier's address first.
                if let Some(callee) = answerer.take() {
                    let ended = SippServer::finished_ok(callee, Duration::from_secs(15));
                    assert!(ended, "the answered call ended");
                }
                // The last call's SIPp log would tell its media port: a new phone starts clean.
                for entry in std::fs::read_dir(net.dir.path()).unwrap().flatten() {
                    if entry.file_name().to_string_lossy().ends_with("_logs.log") {
                        std::fs::remove_file(entry.path()).unwrap();
                    }
                }
                let socket = rtp_socket(&net, 6);
                let (callee, media) = callee_telling_media(&net, &socket);
                phone = Some((socket, callee, media));
                return Some("done".into());
            }
            if line == "ANSWER" {
                let uas = scenario(&net, "uas_answer.xml", &[]);
                answerer = Some(SippServer::start(
                    &net,
                    &uas,
                    &net.ip(3),
                    5060,
                    &["-m", "1"],
                ));
                return Some("done".into());
            }
            let (digits, rounds) = line.strip_prefix("KEY ")?.split_once(' ')?;
            let (socket, callee, media) = phone.take().expect("PHONE before KEY");
            let to = media();
            let (mut seq, mut ts) = (1u16, 0u32);
            for round in 0..rounds.parse::<usize>().unwrap() {
                if !hears_speech(&socket) {
                    return Some(format!("no spoken prompt before round {round}"));
                }
                for d in digits.bytes() {
                    ts += 1600;
                    send_rfc4733(&socket, to, d - b'0', &mut seq, ts);
                    std::thread::sleep(Duration::from_millis(60));
                }
            }
            Some(if callee.finished_ok(Duration::from_secs(30)) {
                "done".into()
            } else {
                "Switchboard did not hang up".into()
            })
        },
    );
    drop(answerer);
}

/// The operator's trunks and routes through the admin API, on top of the file's: a call to a
/// number no route takes is refused; a trunk and a route added (each checked as the file's
/// tables are: a file trunk's name, an address that does not resolve and a route to an unknown
/// trunk are refused) carry it to the new trunk's callee; a trunk in use cannot go; the audit
/// says what changed; a restart keeps them; removed, the number is refused again.
#[test]
fn trunks_and_routes_added_through_the_admin_api_carry_calls_and_outlive_a_restart() {
    const NUMBER: &str = "+19995550100";
    let net = Net::new(243);
    let config = net.two_trunks("");
    let admin = [("SWITCHBOARD_HTTP__ADMIN_TOKEN", ADMIN_TOKEN)];
    let server = Server::start_with(&net, &config, &admin);
    // The new trunk's callee answers and hangs up.
    let uas = scenario(&net, "uas_hangup.xml", &[]);
    let _callee = SippServer::start(&net, &uas, &net.ip(7), 5060, &["-m", "2"]);
    let request = |server: &Server, method: &str, path: &str, body: &str| {
        admin_request(server, method, path, ADMIN_TOKEN, body)
    };
    assert_eq!(place_call(&net, &server, NUMBER, "404"), "done");

    let (status, body) = request(
        &server,
        "PUT",
        "/admin/v1/trunks/carrier-b",
        r#"{"address": "127.0.0.1:5060"}"#,
    );
    assert_eq!(status, 409, "the file's trunk: {body}");
    let (status, body) = request(
        &server,
        "PUT",
        "/admin/v1/trunks/carrier-c",
        r#"{"address": "no-such-host.invalid:5060"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("address"), "the error names the key: {body}");
    let trunk = format!(
        r#"{{"address": "{0}:5060", "inbound_sources": ["{0}/32"]}}"#,
        net.ip(7)
    );
    let (status, body) = request(&server, "PUT", "/admin/v1/trunks/carrier-c", &trunk);
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(
        &server,
        "POST",
        "/admin/v1/routes",
        r#"{"pattern": "^\\+?1999", "trunk": "carrier-x"}"#,
    );
    assert_eq!(status, 400, "a route to no trunk: {body}");
    let (status, body) = request(
        &server,
        "POST",
        "/admin/v1/routes",
        r#"{"pattern": "^\\+?1999", "trunk": "carrier-c"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let route = json(&body)["id"].as_str().unwrap().to_owned();
    assert_eq!(place_call(&net, &server, NUMBER, "answered"), "done");
    let (status, body) = request(&server, "DELETE", "/admin/v1/trunks/carrier-c", "");
    assert_eq!(status, 409, "a trunk a route names: {body}");
    let (_, body) = request(&server, "GET", "/admin/v1/audit", "");
    let audit = json(&body);
    let said: Vec<(&str, String)> = (audit["entries"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        said,
        [
            ("add", format!("route {route}")),
            ("put", "trunk carrier-c".into())
        ],
        "{audit}"
    );
    assert_eq!(
        audit["entries"][1]["detail"]["address"],
        format!("{}:5060", net.ip(7))
    );

    drop(server);
    let server = Server::start_with(&net, &config, &admin);
    assert_eq!(place_call(&net, &server, NUMBER, "answered"), "done");
    let (_, body) = request(&server, "GET", "/admin/v1/trunks", "");
    let trunks = json(&body);
    assert_eq!(
        trunks["file"],
        serde_json::json!(["carrier-a", "carrier-b"]),
        "{trunks}"
    );
    assert_eq!(trunks["api"][0]["name"], "carrier-c", "{trunks}");
    let (status, _) = request(&server, "DELETE", &format!("/admin/v1/routes/{route}"), "");
    assert_eq!(status, 204);
    assert_eq!(place_call(&net, &server, NUMBER, "404"), "done");
    let (status, _) = request(&server, "DELETE", "/admin/v1/trunks/carrier-c", "");
    assert_eq!(status, 204);
    let (status, _) = admin_request(&server, "GET", "/admin/v1/trunks", "wrong-token", "");
    assert_eq!(status, 401);
}

/// Accounts through the admin API, beside the file's: one added (in the file's `[[accounts]]`
/// keys) authenticates the REST API at once and claims within its grants; a file account's
/// SID and an account that does not validate are refused; the listing hides its secrets; it
/// outlives a restart; removed, its credentials fail.
#[test]
fn accounts_added_through_the_admin_api_authenticate_at_once_and_outlive_a_restart() {
    const ADDED: &str = "AC0000000000000000000000000000a0a0";
    let net = Net::new(244);
    let config = two_accounts(&net, "");
    let admin = [("SWITCHBOARD_HTTP__ADMIN_TOKEN", ADMIN_TOKEN)];
    let server = Server::start_with(&net, &config, &admin);
    let calls = |server: &Server| {
        let path = format!("/2010-04-01/Accounts/{ADDED}/Calls.json");
        server
            .http("GET", &path, Some((ADDED, "added-secret")), "")
            .0
    };
    let request = |server: &Server, method: &str, path: &str, body: &str| {
        admin_request(server, method, path, ADMIN_TOKEN, body)
    };
    assert_eq!(calls(&server), 401);
    let path = format!("/admin/v1/accounts/{ADDED}");
    let (status, body) = request(
        &server,
        "PUT",
        &format!("/admin/v1/accounts/{ACCOUNT}"),
        r#"{"auth_token": "x"}"#,
    );
    assert_eq!(status, 409, "the file's account: {body}");
    let (status, body) = request(
        &server,
        "PUT",
        &path,
        r#"{"auth_token": "added-secret", "number_ranges": ["555"]}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("number_ranges"),
        "the error names the key: {body}"
    );
    let (status, body) = request(
        &server,
        "PUT",
        &path,
        r#"{"auth_token": "added-secret", "number_ranges": ["+1777555*"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["auth_token"], "***", "{body}");
    assert_eq!(calls(&server), 200);
    let (status, body) = server.http(
        "POST",
        &format!("/2010-04-01/Accounts/{ADDED}/IncomingPhoneNumbers.json"),
        Some((ADDED, "added-secret")),
        "PhoneNumber=%2B17775550100",
    );
    assert_eq!(status, 201, "within its grants: {body}");
    let (_, body) = request(&server, "GET", "/admin/v1/accounts", "");
    let listed = json(&body);
    assert_eq!(listed["api"][0]["sid"], ADDED, "{listed}");
    assert_eq!(listed["api"][0]["auth_token"], "***", "{listed}");
    assert!(
        listed["file"].as_array().unwrap().contains(&ACCOUNT.into()),
        "{listed}"
    );

    drop(server);
    let server = Server::start_with(&net, &config, &admin);
    assert_eq!(calls(&server), 200, "after a restart");
    let (status, _) = request(&server, "DELETE", &path, "");
    assert_eq!(status, 204);
    assert_eq!(calls(&server), 401);
    let (_, body) = request(&server, "GET", "/admin/v1/audit", "");
    let subjects: Vec<String> = (json(&body)["entries"].as_array().unwrap().iter())
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        subjects,
        [
            format!("delete account {ADDED}"),
            format!("put account {ADDED}")
        ]
    );
}

/// A trunk given to one account through the admin API (a route with `accounts`): that
/// account's calls take it; another account's and a carrier's (no account's) do not — they
/// take the next matching route, and here there is none.
#[test]
fn a_trunk_given_to_an_account_carries_its_calls_and_no_one_elses() {
    const NUMBER: &str = "+19995550100";
    let net = Net::new(253);
    let admin = [("SWITCHBOARD_HTTP__ADMIN_TOKEN", ADMIN_TOKEN)];
    let server = Server::start_with(&net, &two_accounts(&net, ""), &admin);
    let request = |method: &str, path: &str, body: &str| {
        admin_request(&server, method, path, ADMIN_TOKEN, body)
    };
    let trunk = format!(
        r#"{{"address": "{0}:5060", "inbound_sources": ["{0}/32"]}}"#,
        net.ip(7)
    );
    let (status, body) = request("PUT", "/admin/v1/trunks/carrier-c", &trunk);
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(
        "POST",
        "/admin/v1/routes",
        r#"{"pattern": "^\\+?1999", "trunk": "carrier-c", "accounts": ["AC0"]}"#,
    );
    assert_eq!(status, 400, "not an account SID: {body}");
    assert!(body.contains("accounts"), "the error names the key: {body}");
    let route =
        format!(r#"{{"pattern": "^\\+?1999", "trunk": "carrier-c", "accounts": ["{ACCOUNT}"]}}"#);
    let (status, body) = request("POST", "/admin/v1/routes", &route);
    assert_eq!(status, 201, "{body}");

    let call = |account: &str, token: &str| -> (u16, serde_json::Value) {
        let twiml = "%3CResponse%3E%3CPause%20length%3D%221%22%2F%3E%3C%2FResponse%3E";
        let (status, body) = server.http(
            "POST",
            &format!("/2010-04-01/Accounts/{account}/Calls.json"),
            Some((account, token)),
            &format!("To=%2B19995550100&From=%2B15550001&Twiml={twiml}"),
        );
        (status, json(&body))
    };
    let status_of = |account: &str, token: &str, sid: &str| -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let path = format!("/2010-04-01/Accounts/{account}/Calls/{sid}.json");
            let (_, body) = server.http("GET", &path, Some((account, token)), "");
            let status = json(&body)["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if ["completed", "failed", "busy", "no-answer", "canceled"].contains(&status.as_str())
                || std::time::Instant::now() > deadline
            {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The account it was given to: carrier-c's callee answers (the document hangs up).
    let uas = scenario(&net, "uas_wait_bye.xml", &[]);
    let callee = SippServer::start(&net, &uas, &net.ip(7), 5060, &["-m", "1"]);
    let (status, mine) = call(ACCOUNT, TOKEN);
    assert_eq!(status, 201, "{mine}");
    let mine = mine["sid"].as_str().unwrap().to_owned();
    assert!(
        callee.finished_ok(Duration::from_secs(15)),
        "{}",
        server.log()
    );
    assert_eq!(status_of(ACCOUNT, TOKEN, &mine), "completed");
    // Another account's call to the same number finds no route it may take: Twilio's 21214.
    let other_token = format!("{TOKEN}-other");
    let (status, theirs) = call(OTHER, &other_token);
    assert_eq!(
        (status, theirs["code"].as_u64()),
        (400, Some(21214)),
        "{theirs}"
    );
    // Nor does a carrier's (a call of no account).
    assert_eq!(place_call(&net, &server, NUMBER, "404"), "done");
    let trunk_c = server
        .calls()
        .iter()
        .filter(|c| c["trunk_out"] == "carrier-c")
        .count();
    assert_eq!(trunk_c, 1, "only the account's call went to carrier-c");
}
