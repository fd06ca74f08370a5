//! Twilio's Elastic SIP Trunking provisioned through the official SDK
//! (tests/compat/twilio_sip_trunking.py): a trunk acme.pstn.twilio.com with an IP access
//! control list holding the PBX's address, an origination URL at the PBX and the account's
//! number. The carrier's call to the number reaches the PBX (not the number's voice URL); the
//! PBX's call to the trunk's domain leaves through the operator's route as the account's call,
//! while the same INVITE from another address is refused; once the number is taken back, its
//! voice URL answers it again.

use crate::common;
use axum::extract::State;
use common::voice_app::{ACCOUNT, App, TOKEN};
use common::*;
use std::time::Duration;

const DOMAIN: &str = "acme.pstn.twilio.com";
const NUMBER: &str = "+14155550100";
const OTHER: &str = "AC00000000000000000000000000000002";
const OTHER_TOKEN: &str = "other-token";

/// The account's recording of `call`, once stored (waited for up to 15 s).
fn recording_of(server: &Server, call: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = server.http(
            "GET",
            &format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings.json"),
            Some((ACCOUNT, TOKEN)),
            "",
        );
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        let found = (list["recordings"].as_array().unwrap().iter())
            .find(|r| r["call_sid"] == call && r["status"] == "completed")
            .cloned();
        if let Some(recording) = found {
            return recording;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{list}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_elastic_sip_trunk_provisioned_through_the_sdk_carries_its_numbers_and_its_pbxs_calls() {
    let Some(python) = compat_env("SWITCHBOARD_TWILIO_PYTHON") else {
        return;
    };
    let net = Net::new(254);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::serve(
        &net.ip(8),
        axum::Router::new().route(
            "/voice",
            axum::routing::post(
                |State(app): State<App>,
                 uri: axum::http::Uri,
                 q: axum::extract::RawQuery,
                 h: axum::http::HeaderMap,
                 body: String| async move {
                    app.hit("POST", &uri, q.0, &h, &body);
                    common::voice_app::twiml(
                        "<Response><Say>hello</Say><Pause length=\"3\"/></Response>",
                    )
                },
            ),
        ),
    ));
    let pbx = net.ip(5);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"{OTHER_TOKEN}\"\n\
         [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{ACCOUNT}\"\nvoice_url = \"{}/voice\"\n",
        app.base
    ));
    // The PBX's address is one the operator lets calls be sent to.
    let allow = format!("[\"{pbx}/32\"]");
    let server = Server::start_with(&net, &config, &[("SWITCHBOARD_SIP__URI_ALLOWLIST", &allow)]);
    let carrier_calls = |number: &str| {
        run_sipp(
            &net,
            &scenario(&net, "uac_short.xml", &[]),
            &net.ip(2),
            5060,
            server.sip,
            &["-s", number, "-m", "1"],
            Duration::from_secs(15),
        )
    };
    let pbx_calls = |ip: &str| {
        run_sipp(
            &net,
            &scenario(
                &net,
                "domain_call_open.xml",
                &[("USER", "2000"), ("DOMAIN", DOMAIN)],
            ),
            ip,
            5065,
            server.sip,
            &["-s", "+15551234", "-m", "1"],
            Duration::from_secs(15),
        )
    };
    let mut phases = Vec::new();
    let args = [
        ACCOUNT,
        TOKEN,
        OTHER,
        OTHER_TOKEN,
        pbx.as_str(),
        "5080",
        NUMBER,
    ];
    common::sdk_app::sdk_script_with(&python, &server, "twilio_sip_trunking.py", &args, |line| {
        if let Some(trunk) = line.strip_prefix("TRUNK ") {
            phases.push("trunk");
            // Origination: the carrier's call to the number rings the PBX at its URL, the
            // Request-URI naming the number.
            let at_pbx = uas_media_at(
                &net,
                &pbx,
                "6000",
                &[("msg", &format!("^INVITE sip:\\{NUMBER}@{pbx}:5080"))],
            );
            let answering = SippServer::start(&net, &at_pbx, &pbx, 5080, &["-m", "1"]);
            let run = carrier_calls(NUMBER);
            assert!(run.status.success(), "{run:?}\n{}", server.log());
            assert!(
                answering.finished_ok(Duration::from_secs(15)),
                "the PBX was not called\n{}",
                server.log()
            );
            assert!(
                app.hits_to("/voice", 0, Duration::from_millis(500))
                    .is_empty(),
                "the number's voice URL was asked while the trunk has it"
            );
            let call = server.ended_calls(1).remove(0);
            assert_eq!(call["trunk_in"], "carrier-a", "{call}");
            // A call to the tenant's number is the tenant's.
            assert_eq!(call["account_sid"], ACCOUNT, "{call}");
            // The trunk records its calls from the answer, both parties apart: the account's
            // recording of this call, by Elastic SIP Trunking.
            let recording = recording_of(&server, call["id"].as_str().unwrap());
            assert_eq!(recording["source"], "Trunking", "{recording}");
            assert_eq!(recording["channels"], 2, "{recording}");
            assert!(
                (call["trunk_out"].as_str()).is_some_and(|t| t.starts_with(&format!("{trunk}/OU"))),
                "{call}"
            );

            // Termination: the PBX's call to the trunk's domain leaves by the operator's
            // route (carrier-b), as the account's call.
            let carrier = SippServer::start(
                &net,
                &scenario(&net, "uas_wait_bye.xml", &[]),
                &net.ip(3),
                5060,
                &["-m", "1"],
            );
            let run = pbx_calls(&pbx);
            assert!(run.status.success(), "{run:?}\n{}", server.log());
            assert!(
                carrier.finished_ok(Duration::from_secs(15)),
                "{}",
                server.log()
            );
            let calls = server.ended_calls(2);
            let out = (calls.iter())
                .find(|c| c["trunk_in"] == trunk)
                .unwrap_or_else(|| panic!("{calls:#?}"));
            assert_eq!(out["trunk_out"], "carrier-b", "{out}");
            assert_eq!(out["account_sid"], ACCOUNT, "{out}");
            // Its calls out are recorded too, whatever the operator's route says.
            let recording = recording_of(&server, out["id"].as_str().unwrap());
            assert_eq!(recording["channels"], 2, "{recording}");
            // From an address the trunk's lists do not hold: refused.
            assert!(
                !pbx_calls(&net.ip(6)).status.success(),
                "a stranger's call went out through the trunk"
            );
            // The server's log is read by a thread of the test's: it may lag the 403.
            server.wait_for_log("INVITE to a tenant's trunk from an address it does not take");
            return Some("go".into());
        }
        if line == "RELEASED" {
            phases.push("released");
            // The number is the voice URL's again.
            let run = carrier_calls(NUMBER);
            assert!(run.status.success(), "{run:?}\n{}", server.log());
            let hit = &app.hits_to("/voice", 1, Duration::from_secs(5))[0];
            assert_eq!(hit.param("To"), Some(NUMBER));
            return Some("go".into());
        }
        None
    });
    assert_eq!(phases, ["trunk", "released"]);
}

/// Telnyx's IP connections through the official SDK (tests/compat/telnyx_ip_connections.py):
/// a connection with the PBX's address and the account's number. The carrier's call to the
/// number reaches the PBX at its address and port; the PBX's call from its address leaves by
/// the operator's route as the account's; inactive, the connection takes neither (503, 403);
/// without its address, the PBX is a stranger (403) and the number's calls fail (503). Then an
/// FQDN connection whose FQDN is localhost does the same from and to 127.0.0.1.
#[test]
fn a_telnyx_ip_connection_provisioned_through_the_sdk_carries_its_numbers_and_its_pbxs_calls() {
    use common::sdk_app::telnyx::{ACCOUNT, KEY, SEED, TOKEN};
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    const OTHER: &str = "AC11111111111111111111111111111111";
    const OTHER_KEY: &str = "KEY1111111111111111_other";
    const NUMBER: &str = "+14155550111";
    let net = Net::new(65);
    let pbx = net.ip(5);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         telnyx_api_keys = [\"{KEY}\"]\ntelnyx_private_key = \"{SEED}\"\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"other-token\"\n\
         telnyx_api_keys = [\"{OTHER_KEY}\"]\n\
         [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{ACCOUNT}\"\n"
    ));
    // The FQDN connection's PBX is at localhost (its A record), on free ports.
    let free = || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let (fqdn_port, fqdn_out) = (free(), free());
    let allow = format!("[\"{pbx}/32\", \"127.0.0.1/32\"]");
    let server = Server::start_with(&net, &config, &[("SWITCHBOARD_SIP__URI_ALLOWLIST", &allow)]);
    // The PBX's call out to `number`, from its address: answered by carrier-b (which checks
    // the INVITE it gets with `checks`), or refused with `code`.
    let pbx_dials =
        |(ip, port): (&str, u16), number: &str, outcome: Result<&[(&str, &str)], &str>| {
            let uac = match outcome {
                Err(code) => scenario(&net, "uac_expect_failure.xml", &[("CODE", code)]),
                Ok(_) => scenario(&net, "uac_short.xml", &[]),
            };
            let carrier = outcome.ok().map(|checks| {
                let uas = if checks.is_empty() {
                    scenario(&net, "uas_wait_bye.xml", &[])
                } else {
                    uas_media_at(&net, &net.ip(3), "6002", checks)
                };
                SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"])
            });
            let args = ["-s", number, "-m", "1"];
            let run = run_sipp(
                &net,
                &uac,
                ip,
                port,
                server.sip,
                &args,
                Duration::from_secs(15),
            );
            assert_eq!(
                (run.successful, run.failed),
                (1, 0),
                "{run:?}\n{}",
                server.log()
            );
            if let Some(carrier) = carrier {
                assert!(
                    carrier.finished_ok(Duration::from_secs(15)),
                    "{}",
                    server.log()
                );
            }
        };
    let pbx_calls_from = |at: (&str, u16), refused: Option<&str>| {
        pbx_dials(at, "+15551234", refused.map_or(Ok(&[][..]), Err));
    };
    let pbx_calls = |refused: Option<&str>| pbx_calls_from((&pbx, 5065), refused);
    // A carrier's call to the number, answered by the PBX listening at `(ip, port)` (the
    // INVITE's Request-URI names that address).
    let number_reaches_pbx = |(ip, port): (&str, u16)| {
        let at_pbx = uas_media_at(
            &net,
            ip,
            "6000",
            &[("msg", &format!("^INVITE sip:\\{NUMBER}@{ip}:{port}"))],
        );
        let answering = SippServer::start(&net, &at_pbx, ip, port, &["-m", "1"]);
        let run = run_sipp(
            &net,
            &scenario(&net, "uac_short.xml", &[]),
            &net.ip(2),
            5060,
            server.sip,
            &["-s", NUMBER, "-m", "1"],
            Duration::from_secs(15),
        );
        assert!(run.status.success(), "{run:?}\n{}", server.log());
        assert!(
            answering.finished_ok(Duration::from_secs(15)),
            "{}",
            server.log()
        );
    };
    let mut phases = Vec::new();
    let fqdn_port_text = fqdn_port.to_string();
    // The IP connection's id, from its first phase on.
    let mut ip_connection = String::new();
    let args = [
        KEY,
        OTHER_KEY,
        pbx.as_str(),
        "5080",
        NUMBER,
        &fqdn_port_text,
    ];
    common::sdk_app::sdk_script_with(
        &python,
        &server,
        "telnyx_ip_connections.py",
        &args,
        |line| {
            if let Some(connection) = line.strip_prefix("CONNECTED ") {
                phases.push("connected");
                ip_connection = connection.to_owned();
                number_reaches_pbx((&pbx, 5080));
                let call = server.ended_calls(1).remove(0);
                assert!(
                    (call["trunk_out"].as_str())
                        .is_some_and(|t| t.starts_with(&format!("{connection}/"))),
                    "{call}"
                );
                pbx_calls(None);
                let calls = server.ended_calls(2);
                let out = (calls.iter())
                    .find(|c| c["trunk_in"] == connection)
                    .unwrap_or_else(|| panic!("{calls:#?}"));
                assert_eq!(out["trunk_out"], "carrier-b", "{out}");
                assert_eq!(out["account_sid"], ACCOUNT, "{out}");
                return Some("go".into());
            }
            if let Some(connection) = line.strip_prefix("FQDN ") {
                phases.push("fqdn");
                // The number's calls go to localhost's address at the FQDN's port; the PBX's
                // calls from there are the FQDN connection's.
                number_reaches_pbx(("127.0.0.1", fqdn_port));
                pbx_calls_from(("127.0.0.1", fqdn_out), None);
                let deadline = std::time::Instant::now() + Duration::from_secs(15);
                let out = loop {
                    let ended = (server.calls().into_iter())
                        .find(|c| c["trunk_in"] == connection && !c["ended_at"].is_null());
                    if let Some(call) = ended {
                        break call;
                    }
                    assert!(std::time::Instant::now() < deadline, "{}", server.log());
                    std::thread::sleep(Duration::from_millis(200));
                };
                assert_eq!(out["trunk_out"], "carrier-b", "{out}");
                assert_eq!(out["account_sid"], ACCOUNT, "{out}");
                return Some("go".into());
            }
            if line == "LIMITED" {
                phases.push("limited");
                // One call up holds the connection's one channel: the next is refused (D3).
                let carrier = SippServer::start(
                    &net,
                    &scenario(&net, "uas_wait_bye.xml", &[]),
                    &net.ip(3),
                    5060,
                    &["-m", "1"],
                );
                let talk = scenario(&net, "uac_talk.xml", &[("TALK_MS", "4000")]);
                let remote = server.sip.to_string();
                let first = SippServer::start(
                    &net,
                    &talk,
                    &pbx,
                    5066,
                    &[remote.as_str(), "-s", "+15551234", "-m", "1"],
                );
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while !(server.calls().iter()).any(|c| {
                    c["trunk_in"].as_str() == Some(ip_connection.as_str())
                        && !c["answered_at"].is_null()
                        && c["ended_at"].is_null()
                }) {
                    assert!(std::time::Instant::now() < deadline, "{}", server.log());
                    std::thread::sleep(Duration::from_millis(100));
                }
                pbx_calls(Some("403"));
                assert!(
                    server
                        .log()
                        .contains("Connection concurrent call limit exceeded D3"),
                    "{}",
                    server.log()
                );
                assert!(
                    first.finished_ok(Duration::from_secs(15)),
                    "{}",
                    server.log()
                );
                assert!(
                    carrier.finished_ok(Duration::from_secs(15)),
                    "{}",
                    server.log()
                );
                // A destination outside the profile's whitelist (GB): refused (D12).
                pbx_dials((&pbx, 5065), "+442071234567", Err("403"));
                assert!(
                    server
                        .log()
                        .contains("is not allowed for service plan global D12")
                );
                // The channel is free again: a US call goes out, showing the connection's
                // caller ID (`ani_override`) in place of the PBX's, and so recorded.
                let shown = [("From:", r"<sip:\+15550009999@")];
                pbx_dials((&pbx, 5065), "+15551234", Ok(&shown[..]));
                let calls = server.calls();
                let last = (calls.iter())
                    .filter(|c| c["trunk_in"].as_str() == Some(ip_connection.as_str()))
                    .max_by_key(|c| c["started_at"].as_str().map(str::to_owned))
                    .unwrap();
                assert_eq!(last["from"], "+15550009999", "{last}");
                // Its numbers take one call at a time (`inbound.channel_limit`): with one up at
                // the PBX, the next is refused with Telnyx's D22.
                let at_pbx = SippServer::start(
                    &net,
                    &uas_media_at(&net, &pbx, "6000", &[]),
                    &pbx,
                    5080,
                    &["-m", "1"],
                );
                let remote = server.sip.to_string();
                let held = SippServer::start(
                    &net,
                    &talk,
                    &net.ip(2),
                    5062,
                    &[remote.as_str(), "-s", NUMBER, "-m", "1"],
                );
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while !(server.calls().iter()).any(|c| {
                    c["to"] == NUMBER && !c["answered_at"].is_null() && c["ended_at"].is_null()
                }) {
                    assert!(std::time::Instant::now() < deadline, "{}", server.log());
                    std::thread::sleep(Duration::from_millis(100));
                }
                common::sdk_app::call_refused(&net, &server, NUMBER, "403");
                assert!(
                    server.log().contains("Channel limit exceeded D22"),
                    "{}",
                    server.log()
                );
                assert!(
                    held.finished_ok(Duration::from_secs(15)),
                    "{}",
                    server.log()
                );
                assert!(
                    at_pbx.finished_ok(Duration::from_secs(15)),
                    "{}",
                    server.log()
                );
                return Some("go".into());
            }
            if line == "INACTIVE" || line == "NO_ADDRESS" {
                // Inactive, the connection's calls out get Telnyx's 404 (D18); with no address, the PBX
                // is no one's (403). Either way the number's calls fail.
                let (phase, code) = if line == "INACTIVE" {
                    ("inactive", "404")
                } else {
                    ("no address", "403")
                };
                phases.push(phase);
                common::sdk_app::call_refused(&net, &server, NUMBER, "503");
                pbx_calls(Some(code));
                return Some("go".into());
            }
            None
        },
    );
    assert_eq!(
        phases,
        ["connected", "limited", "inactive", "no address", "fqdn"]
    );
}

/// An IP connection made through Telnyx's Python SDK with `noise_suppression: "inbound"` (what
/// its side says): on the PBX's call out and on a call to its number, the noise the PBX sends
/// reaches the carrier much quieter, and the carrier's noise reaches the PBX as it was sent
/// (`outbound` is not asked).
#[test]
fn a_telnyx_ip_connections_noise_suppression_quiets_what_its_pbx_sends() {
    use common::sdk_app::telnyx::{ACCOUNT, KEY, SEED, TOKEN};
    let Some(python) = compat_env("SWITCHBOARD_TELNYX_PYTHON") else {
        return;
    };
    let net = Net::new(83);
    let pbx = net.ip(5);
    const NUMBER: &str = "+14155550111";
    let account = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         telnyx_api_keys = [\"{KEY}\"]\ntelnyx_private_key = \"{SEED}\"\n\
         [[numbers]]\nphone_number = \"{NUMBER}\"\naccount_sid = \"{ACCOUNT}\"\n"
    );
    // The operator's route to the carrier ends each call 4 s after its answer.
    let config = net.two_trunks(&account) + "time_limit_secs = 4\n";
    // The PBX's address is one calls may be sent to (loopback is not, by default).
    let allow = format!("[\"{pbx}/32\"]");
    let server = Server::start_with(&net, &config, &[("SWITCHBOARD_SIP__URI_ALLOWLIST", &allow)]);
    let code = format!(
        "import telnyx\n\
         client = telnyx.Telnyx(api_key={KEY:?}, base_url=\"http://{http}/v2\", max_retries=0)\n\
         conn = client.ip_connections.create(connection_name=\"office\", noise_suppression=\"inbound\").data\n\
         assert conn.noise_suppression == \"inbound\", conn\n\
         client.ips.create(connection_id=conn.id, ip_address={pbx:?}, port=5060)\n\
         number = [n for n in client.phone_numbers.list() if n.phone_number == {NUMBER:?}][0]\n\
         client.phone_numbers.update(number.id, connection_id=conn.id)\n\
         print(conn.id, client.ip_connections.retrieve(conn.id).data.noise_suppression)\n",
        http = server.http
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &code])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    let (connection, read_back) = printed.trim().split_once(' ').unwrap_or_default();
    assert!(
        out.status.success() && read_back == "inbound",
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (pbx_rtp, carrier_rtp) = (rig::rtp_socket(&net, 5), rig::rtp_socket(&net, 6));
    let (carrier, carrier_side) = callee_telling_media(&net, &carrier_rtp);
    let uac = caller_telling_media(&net, &pbx_rtp);
    std::thread::scope(|scope| {
        let caller = scope.spawn(|| {
            let args = ["-m", "1", "-s", "+15551234", "-trace_logs"];
            let wait = Duration::from_secs(30);
            run_sipp(&net, &uac, &pbx, 5060, server.sip, &args, wait)
        });
        let to_carrier_side = carrier_side();
        let to_pbx_side = caller_side(&net);
        let (sent, to_pbx, to_carrier) =
            exchange_noise((&pbx_rtp, to_pbx_side), (&carrier_rtp, to_carrier_side));
        assert!(
            to_carrier < 0.25 * sent,
            "the PBX's noise reached the carrier at RMS {to_carrier:.0} of {sent:.0}\n{}",
            server.log()
        );
        assert!(
            to_pbx > 0.8 * sent,
            "the carrier's noise reached the PBX at RMS {to_pbx:.0} of {sent:.0}"
        );
        let run = caller.join().unwrap();
        assert!(run.status.success(), "PBX: {run:?}\n{}", server.log());
    });
    assert!(
        carrier.finished_ok(Duration::from_secs(10)),
        "{}",
        server.log()
    );
    // The PBX's call was the connection's.
    let call = server.ended_calls(1).remove(0);
    assert_eq!(call["trunk_in"], connection, "{call}");

    // The carrier calls the connection's number; the PBX answers; both talk at once, and the
    // call is hung up through the API (a call to a tenant's number is the tenant's).
    // The first call's SIPp logs go: their media ports are not this call's.
    for entry in std::fs::read_dir(net.dir.path()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().ends_with("_logs.log") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let (pbx, pbx_side) = phone_telling_media(&net, &pbx_rtp, (&net.ip(5), 5060));
    let uac = caller_telling_media(&net, &carrier_rtp);
    std::thread::scope(|scope| {
        let caller = scope.spawn(|| {
            let args = ["-m", "1", "-s", NUMBER, "-trace_logs"];
            let wait = Duration::from_secs(30);
            run_sipp(&net, &uac, &net.ip(2), 5060, server.sip, &args, wait)
        });
        let to_pbx_side = pbx_side();
        let to_carrier_side = caller_side(&net);
        let (sent, to_pbx, to_carrier) =
            exchange_noise((&pbx_rtp, to_pbx_side), (&carrier_rtp, to_carrier_side));
        assert!(
            to_carrier < 0.25 * sent,
            "on the call in, the PBX's noise reached the carrier at RMS {to_carrier:.0} of {sent:.0}"
        );
        assert!(
            to_pbx > 0.8 * sent,
            "on the call in, the carrier's noise reached the PBX at RMS {to_pbx:.0} of {sent:.0}"
        );
        let calls = format!("/2010-04-01/Accounts/{ACCOUNT}/Calls");
        let (code, body) = server.http(
            "GET",
            &format!("{calls}.json?Status=in-progress"),
            Some((ACCOUNT, TOKEN)),
            "",
        );
        assert_eq!(code, 200, "{body}");
        let up = json(&body)["calls"][0]["sid"].as_str().unwrap().to_owned();
        let (code, body) = server.http(
            "POST",
            &format!("{calls}/{up}.json"),
            Some((ACCOUNT, TOKEN)),
            "Status=completed",
        );
        assert_eq!(code, 200, "{body}");
        let run = caller.join().unwrap();
        assert!(run.status.success(), "carrier: {run:?}\n{}", server.log());
    });
    assert!(pbx.finished_ok(Duration::from_secs(10)), "{}", server.log());
}
