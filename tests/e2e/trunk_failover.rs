//! A route over several trunks, tried in order: a trunk that never answers (408 at 64·T1) or
//! cannot take the call (503) passes it to the next, and a trunk whose OPTIONS keep-alives go
//! unanswered is marked down and passed over by the next call. SIPp plays the trunks that
//! answer; nothing listens at the dead one. T1 is 100 ms, so 64·T1 is 6.4 s.

use crate::common;

use common::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// The log lines of call `sid`.
fn lines_of(server: &Server, sid: &str) -> Vec<String> {
    let span = format!("call{{id={sid}}}");
    (server.log().lines())
        .filter(|l| l.contains(&span))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_route_passes_over_a_trunk_marked_down_and_fails_over_past_a_silent_and_a_full_one() {
    let net = Net::new(149);
    let ip = |h: u8| net.ip(h);
    // Nothing listens at .6 (probed with OPTIONS every second) nor at .7 (not probed).
    let config = format!(
        "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\n\
         [[trunks]]\nname = \"probed\"\naddress = \"{probed}:5060\"\noptions_interval_secs = 1\n\
         [[trunks]]\nname = \"silent\"\naddress = \"{silent}:5060\"\n\
         [[trunks]]\nname = \"full\"\naddress = \"{full}:5060\"\n\
         [[trunks]]\nname = \"good\"\naddress = \"{good}:5060\"\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\ntrunks = [\"probed\", \"silent\", \"full\", \"good\"]\n",
        a = ip(2),
        probed = ip(6),
        silent = ip(7),
        full = ip(4),
        good = ip(3),
    );
    let server = Server::start_with(&net, &config, &[("SWITCHBOARD_SIP__T1_MS", "100")]);
    assert_eq!(
        server.metric(r#"switchboard_trunk_up{trunk="probed"}"#),
        Some(1.0)
    );

    // Its first keep-alive unanswered for 6.4 s, the probed trunk is down and shown so.
    server.wait_for_log("trunk down: routes pass over it until it answers trunk=probed code=408");
    assert_eq!(
        server.metric(r#"switchboard_trunk_up{trunk="probed"}"#),
        Some(0.0)
    );

    // The call passes over it; the silent trunk's INVITE goes unanswered for 6.4 s, the full
    // one refuses, the good one takes the call.
    let full = SippServer::start(
        &net,
        &scenario(&net, "uas_unavailable.xml", &[]),
        &ip(4),
        5060,
        &["-m", "1"],
    );
    let good = SippServer::start(
        &net,
        &scenario(&net, "uas_wait_bye.xml", &[]),
        &ip(3),
        5060,
        &["-m", "1"],
    );
    let caller = scenario(&net, "uac_short.xml", &[]);
    let args = ["-s", "+15551234", "-m", "1"];
    let run = run_sipp(&net, &caller, &ip(2), 5060, server.sip, &args, LONG);
    assert!(
        run.status.success(),
        "the caller: {run:?}\n{}",
        server.log()
    );
    let wait = Duration::from_secs(10);
    assert!(full.finished_ok(wait), "the full trunk: {}", server.log());
    assert!(good.finished_ok(wait), "the good trunk: {}", server.log());
    let call = server.ended_calls(1).remove(0);
    assert_eq!(call["status"], "completed", "{call}");
    assert_eq!(call["trunk_out"], "good", "{call}");
    let log = lines_of(&server, call["id"].as_str().unwrap()).join("\n");
    let order = [
        r#"trying trunk=Some("silent")"#,
        r#"failing over to the route's next trunk code=408 from=Some("silent") to=Some("full")"#,
        r#"failing over to the route's next trunk code=503 from=Some("full") to=Some("good")"#,
    ];
    let mut at = 0;
    for step in order {
        let found = log[at..].find(step);
        assert!(found.is_some(), "{step:?} in order in:\n{log}");
        at += found.unwrap();
    }
    assert!(!log.contains("probed"), "{log}");
}
