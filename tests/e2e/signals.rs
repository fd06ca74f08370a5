//! Signals against the real binary with a call up: SIGHUP reloads the configuration (a new
//! route, a new account and its number work at once; a broken file is refused and the old
//! configuration kept) and never drops the call; SIGTERM drains — new calls, OPTIONS probes and REST originations get 503
//! while the call up goes on to its natural end — and the server then stops by itself.

use crate::common;

use common::voice_app::{ACCOUNT, TOKEN};
use common::*;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// An account the reloaded file adds.
const NEW: &str = "AC44444444444444444444444444444444";

const LONG: Duration = Duration::from_secs(60);

/// A voice application on `ip` answering every request with `document`; counts requests.
fn markup_app(ip: &str, document: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            // One request a connection: read its head and body, answer, close.
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length = (text.lines())
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= head_end + 4 + length {
                        break;
                    }
                }
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{document}",
                document.len()
            );
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    (base, hits)
}

#[test]
fn sighup_reloads_without_dropping_a_call_and_sigterm_drains() {
    let net = Net::new(131);
    let account = format!(
        "[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\ncaller_ids = [\"+1555*\"]\n"
    );
    let mut server = Server::start_with(
        &net,
        &net.two_trunks(&account),
        &[("SWITCHBOARD_SHUTDOWN__DRAIN_SECS", "60")],
    );

    // A call that lasts 25 s, hung up by its caller: still up at the SIGTERM below however
    // slowly the steps before it run (on a loaded machine they took over 8 s, the call's
    // length before: the server then had no call to drain and stopped at once).
    let callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "2"],
    );
    let phone = rig::rtp_socket(&net, 5);
    let uac = uac_media_at(&net, &phone, 25_000, "0\n      a=rtpmap:0 PCMU/8000");
    let sip = server.sip;
    std::thread::scope(|scope| {
        let call = scope.spawn(|| {
            run_sipp(
                &net,
                &uac,
                &net.ip(2),
                5060,
                sip,
                &["-s", "+15551234", "-m", "1"],
                LONG,
            )
        });
        server.wait_for_log("answered");

        // Not routed yet: +1777… has no route.
        let refused = scenario(&net, "uac_expect_failure.xml", &[("CODE", "404")]);
        let run = run_sipp(
            &net,
            &refused,
            &net.ip(2),
            5061,
            server.sip,
            &["-s", "+17770001", "-m", "1"],
            LONG,
        );
        assert!(run.status.success(), "+1777 has no route yet: {run:?}");

        // A broken file is refused; the server and the call go on.
        let path = server.config_path().to_owned();
        let good = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            format!("{good}\n[[routes]]\npattern = \"(\"\ntrunk = \"carrier-b\"\n"),
        )
        .unwrap();
        server.signal("HUP");
        server.wait_for_log("configuration reload refused");
        assert!(server.is_running(), "SIGHUP must not stop the server");

        // Nor is +1888…, nor does the new account exist.
        let refused = scenario(&net, "uac_expect_failure.xml", &[("CODE", "404")]);
        let args = ["-s", "+18880001", "-m", "1"];
        let run = run_sipp(&net, &refused, &net.ip(2), 5061, server.sip, &args, LONG);
        assert!(run.status.success(), "+1888 is nobody's yet: {run:?}");
        let new_calls = format!("/2010-04-01/Accounts/{NEW}/Calls.json");
        let (code, _) = server.http("GET", &new_calls, Some((NEW, "new-token")), "");
        assert_eq!(code, 401);

        // A good one with a new route, a new account and its number applies at once.
        let (app, hits) = markup_app(&net.ip(9), "<Response><Reject reason=\"busy\"/></Response>");
        std::fs::write(
            &path,
            format!(
                "{good}\n[[routes]]\npattern = \"^\\\\+?1777\"\ntrunk = \"carrier-b\"\n\
                 [[accounts]]\nsid = \"{NEW}\"\nauth_token = \"new-token\"\n\
                 [[numbers]]\nphone_number = \"+18880001\"\naccount_sid = \"{NEW}\"\n\
                 voice_url = \"{app}/voice\"\n"
            ),
        )
        .unwrap();
        server.signal("HUP");
        server.wait_for_log("configuration reloaded");
        let (code, body) = server.http("GET", &new_calls, Some((NEW, "new-token")), "");
        assert_eq!(code, 200, "the new account authenticates: {body}");
        // The number's call reaches its application, which turns it away busy.
        let busy = scenario(&net, "uac_expect_failure.xml", &[("CODE", "486")]);
        let run = run_sipp(&net, &busy, &net.ip(2), 5061, server.sip, &args, LONG);
        assert!(
            run.status.success(),
            "the new number's app answers: {run:?}\n{}",
            server.log()
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let short = scenario(&net, "uac_short.xml", &[]);
        let run = run_sipp(
            &net,
            &short,
            &net.ip(2),
            5062,
            server.sip,
            &["-s", "+17770001", "-m", "1"],
            LONG,
        );
        assert!(
            run.status.success(),
            "the reloaded route carries a call: {run:?}\n{}",
            server.log()
        );
        assert_eq!(options_probe(&net, &server).0, "SIP/2.0 200 OK");

        // SIGTERM with the first call still up: the node drains.
        server.signal("TERM");
        server.wait_for_log("new calls are refused");
        let (status, retry) = options_probe(&net, &server);
        assert_eq!(status, "SIP/2.0 503 Service Unavailable");
        assert_eq!(retry.as_deref(), Some("60"));
        let busy = scenario(&net, "uac_expect_failure.xml", &[("CODE", "503")]);
        let run = run_sipp(
            &net,
            &busy,
            &net.ip(2),
            5063,
            server.sip,
            &["-s", "+15551234", "-m", "1"],
            LONG,
        );
        assert!(
            run.status.success(),
            "a new call is refused with 503: {run:?}"
        );
        let (code, body) = server.http(
            "POST",
            &format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"),
            Some((ACCOUNT, TOKEN)),
            "To=%2B15551234&From=%2B15550001&Url=http%3A%2F%2F127.0.0.1%3A9%2Fv",
        );
        assert_eq!(code, 503, "{body}");
        assert_eq!(json(&body)["code"], 20503, "{body}");
        assert!(server.is_running(), "the call up keeps the server running");

        // The call ends when its caller hangs up, and the server stops by itself.
        let run = call.join().unwrap();
        assert!(
            run.status.success(),
            "the call up finished normally: {run:?}\n{}",
            server.log()
        );
    });
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the drained server stops");
    assert!(status.success(), "{status:?}\n{}", server.log());
    drop(callee);
    let call = server
        .ended_calls(3)
        .into_iter()
        .find(|c| c["to"] == "+15551234" && c["status"] == "completed")
        .expect("the first call completed");
    assert!(call["duration_secs"].as_i64().unwrap() >= 24, "{call}");
}
