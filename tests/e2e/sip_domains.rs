//! Twilio SIP domains provisioned through the official SDK (tests/compat/twilio_sip_domains.py),
//! with phones: alice (of a list mapped to acme.sip.twilio.com for registrations and calls)
//! registers as alice@acme.sip.twilio.com and a wrong password does not; carol (of a list
//! mapped for calls only) does not register; alice's call to +15557770001 at the domain is
//! answered by the domain's fallback URL (its voice URL fails; fetched by its
//! `VoiceFallbackMethod`, GET), told `From` sip:alice@acme.sip.twilio.com, `To`
//! sip:+15557770001@acme.sip.twilio.com, `SipDomain` and `SipDomainSid`; the office PBX, whose
//! address an IP access control list mapped for calls holds, calls without credentials and
//! is answered the same way, while another address is challenged; a REST call's
//! `<Dial><Sip>sip:alice@acme.sip.twilio.com</Sip>` rings alice's phone where it registered;
//! another account's same `<Dial>` does not (its notifications get Twilio's warning 32214);
//! with registration turned off, alice no longer registers.

use crate::common;
use axum::extract::State;
use common::voice_app::{ACCOUNT, App, TOKEN};
use common::*;
use std::time::Duration;

const DOMAIN: &str = "acme.sip.twilio.com";
const OTHER: &str = "AC00000000000000000000000000000002";
const OTHER_TOKEN: &str = "other-token";

#[test]
fn a_sip_domain_provisioned_through_the_sdk_registers_its_phones_and_answers_their_calls() {
    let Some(python) = compat_env("SWITCHBOARD_TWILIO_PYTHON") else {
        return;
    };
    let net = Net::new(250);
    let config = net.two_trunks(&format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n\
         [[accounts]]\nsid = \"{OTHER}\"\nauth_token = \"{OTHER_TOKEN}\"\ncaller_ids = [\"+1555*\"]\n"
    ));
    // SIPp signs its digest for `sip:HOST:PORT` of the server, not the Request-URI.
    let server = Server::start_with(
        &net,
        &config,
        &[("SWITCHBOARD_SIP__DIGEST_URI", "host-port")],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(App::serve(
        &net.ip(8),
        axum::Router::new()
            // The domain's voice URL fails; its fallback, fetched by GET, answers.
            .route(
                "/broken",
                axum::routing::post(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route(
                "/domain",
                axum::routing::get(
                    |State(app): State<App>,
                     uri: axum::http::Uri,
                     q: axum::extract::RawQuery,
                     h: axum::http::HeaderMap| async move {
                        app.hit("GET", &uri, q.0, &h, "");
                        common::voice_app::twiml(
                            "<Response><Say>hello</Say><Pause length=\"5\"/><Hangup/></Response>",
                        )
                    },
                ),
            ),
    ));
    let voice_url = format!("{}/domain", app.base);
    let register = |user: &str, password: &str, port: &str| {
        let scenario = scenario(
            &net,
            "domain_register.xml",
            &[
                ("USER", user),
                ("DOMAIN", DOMAIN),
                ("PASSWORD", password),
                ("CONTACT_PORT", "5062"),
            ],
        );
        let run = run_sipp(
            &net,
            &scenario,
            &net.ip(4),
            port.parse().unwrap(),
            server.sip,
            &["-m", "1"],
            Duration::from_secs(10),
        );
        run.status.success()
    };
    let dial_alice = |account: &str, token: &str| -> String {
        let twiml = format!("<Response><Dial><Sip>sip:alice@{DOMAIN}</Sip></Dial></Response>");
        let twiml: String = url::form_urlencoded::byte_serialize(twiml.as_bytes()).collect();
        let (status, body) = server.http(
            "POST",
            &format!("/2010-04-01/Accounts/{account}/Calls.json"),
            Some((account, token)),
            &format!("To=%2B15551234&From=%2B15550001&Twiml={twiml}"),
        );
        assert_eq!(status, 201, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["sid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut phases = Vec::new();
    let pbx = net.ip(5);
    let args = [
        ACCOUNT,
        TOKEN,
        OTHER,
        OTHER_TOKEN,
        voice_url.as_str(),
        pbx.as_str(),
    ];
    common::sdk_app::sdk_script_with(&python, &server, "twilio_sip_domains.py", &args, |line| {
        if let Some(domain_sid) = line.strip_prefix("DOMAIN ") {
            phases.push("domain");
            assert!(
                !register("alice", "wrong-password", "5061"),
                "a wrong password registers"
            );
            assert!(
                !register("carol", "Carol-Secret-3", "5061"),
                "carol's list is for calls only"
            );
            assert!(
                register("alice", "Alice-Secret-1", "5061"),
                "{}",
                server.log()
            );

            // Alice calls a number at the domain: the domain's voice URL answers.
            let call = scenario(
                &net,
                "domain_call.xml",
                &[
                    ("USER", "alice"),
                    ("DOMAIN", DOMAIN),
                    ("PASSWORD", "Alice-Secret-1"),
                ],
            );
            let run = run_sipp(
                &net,
                &call,
                &net.ip(4),
                5063,
                server.sip,
                &["-s", "+15557770001", "-m", "1"],
                Duration::from_secs(15),
            );
            assert!(run.status.success(), "{run:?}\n{}", server.log());
            let hit = &app.hits_to("/domain", 1, Duration::from_secs(5))[0];
            assert_eq!(
                hit.method, "GET",
                "the fallback, by its VoiceFallbackMethod"
            );
            assert_eq!(
                hit.param("From"),
                Some(format!("sip:alice@{DOMAIN}").as_str())
            );
            assert_eq!(
                hit.param("To"),
                Some(format!("sip:+15557770001@{DOMAIN}").as_str())
            );
            assert_eq!(hit.param("SipDomain"), Some(DOMAIN));
            assert_eq!(hit.param("SipDomainSid"), Some(domain_sid));
            assert_eq!(hit.param("AccountSid"), Some(ACCOUNT));
            assert!(hit.signed_with(TOKEN), "signed with the account's token");

            // The office PBX calls from its address, with no credentials: admitted as the
            // domain's; from another address it is challenged.
            let open = |user: &str| {
                scenario(
                    &net,
                    "domain_call_open.xml",
                    &[("USER", user), ("DOMAIN", DOMAIN)],
                )
            };
            let call = |ip: &str, user: &str| {
                run_sipp(
                    &net,
                    &open(user),
                    ip,
                    5065,
                    server.sip,
                    &["-s", "+15557770002", "-m", "1"],
                    Duration::from_secs(10),
                )
            };
            let run = call(&pbx, "1000");
            assert!(run.status.success(), "{run:?}\n{}", server.log());
            let hit = &app.hits_to("/domain", 2, Duration::from_secs(5))[1];
            assert_eq!(
                hit.param("From"),
                Some(format!("sip:1000@{DOMAIN}").as_str())
            );
            assert_eq!(
                hit.param("To"),
                Some(format!("sip:+15557770002@{DOMAIN}").as_str())
            );
            assert_eq!(hit.param("SipDomainSid"), Some(domain_sid));
            assert!(
                !call(&net.ip(6), "1001").status.success(),
                "a stranger is challenged"
            );
            assert_eq!(app.hits_to("/domain", 0, Duration::ZERO).len(), 2);

            // Another account's <Dial><Sip> to alice does not ring her phone: its dial fails
            // and its call ends.
            let trunk = SippServer::start(
                &net,
                &scenario(&net, "uas_wait_bye.xml", &[]),
                &net.ip(3),
                5060,
                &["-m", "1"],
            );
            dial_alice(OTHER, OTHER_TOKEN);
            assert!(
                trunk.finished_ok(Duration::from_secs(15)),
                "{}",
                server.log()
            );
            // Told as Twilio tells it: warning 32214 among its notifications.
            let (status, body) = server.http(
                "GET",
                &format!("/2010-04-01/Accounts/{OTHER}/Notifications.json"),
                Some((OTHER, OTHER_TOKEN)),
                "",
            );
            assert_eq!(status, 200, "{body}");
            let notices: serde_json::Value = serde_json::from_str(&body).unwrap();
            let codes: Vec<&str> = (notices["notifications"].as_array().unwrap().iter())
                .filter_map(|n| n["error_code"].as_str())
                .collect();
            assert_eq!(codes, ["32214"], "{notices}");

            // The account's own <Dial><Sip> rings alice where she registered.
            let phone = SippServer::start(
                &net,
                &scenario(&net, "uas_hangup.xml", &[]),
                &net.ip(4),
                5062,
                &["-m", "1"],
            );
            let trunk = SippServer::start(
                &net,
                &scenario(&net, "uas_wait_bye.xml", &[]),
                &net.ip(3),
                5060,
                &["-m", "1"],
            );
            let parent = dial_alice(ACCOUNT, TOKEN);
            assert!(
                phone.finished_ok(Duration::from_secs(15)),
                "alice's phone rang\n{}",
                server.log()
            );
            assert!(
                trunk.finished_ok(Duration::from_secs(15)),
                "{}",
                server.log()
            );
            let calls = server.ended_calls(5);
            let child = calls
                .iter()
                .find(|c| c["parent_id"].as_str() == Some(parent.as_str()))
                .unwrap_or_else(|| panic!("{calls:#?}"));
            assert_eq!(
                child["user_out"],
                format!("alice@{DOMAIN}").as_str(),
                "{child}"
            );
            assert_eq!(child["status"], "completed", "{child}");
            return Some("go".into());
        }
        if line == "UNREGISTERED" {
            phases.push("unregistered");
            assert!(
                !register("alice", "Alice-Secret-1", "5064"),
                "registration is off"
            );
            return Some("go".into());
        }
        None
    });
    assert_eq!(phases, ["domain", "unregistered"]);
}
