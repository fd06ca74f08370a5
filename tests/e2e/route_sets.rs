//! Switchboard behind a carrier's record-routing proxy: a real Kamailio (tests/kamailio/
//! record_route.cfg) carries both of a call's legs — the caller's INVITE to Switchboard and
//! Switchboard's INVITE to the callee — and record-routes them. Every request inside a dialog
//! must follow the route set or the proxy drops it, so a call whose ACK went astray would end
//! at 64·T1 (Timer H) with an ack-timeout. Switchboard runs with T1 = 100 ms (`sip.t1_ms`), so
//! that is 6.4 s: these calls last 8 s, and either side hangs up.

use crate::common;

use common::kamailio::Kamailio;
use common::*;
use std::time::Duration;

/// How long each call talks: past the 6.4 s a lost ACK is waited for at T1 = 100 ms.
pub(crate) const TALK_MS: &str = "8000";

/// The caller's or callee's last steps: wait for the BYE and answer it.
pub(crate) const WAIT_BYE: &str = r#"<recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>"#;

/// A party talks, then hangs up along the route set: its BYE's From, To and CSeq.
pub(crate) fn hangs_up(from: &str, to: &str, cseq: u32) -> String {
    format!(
        r#"<pause milliseconds="{TALK_MS}"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: {from}
      To: {to}
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>"#
    )
}

/// One call from the caller at .2 through Kamailio at .5 to Switchboard, and on through
/// Kamailio to the callee at .3; `caller_ends` says who hangs up.
fn call_through_a_record_routing_proxy(n: u8, caller_ends: bool) {
    let net = Net::new(n);
    let proxy = net.ip(5);
    // One trunk, the carrier's proxy: calls come from it and go back through it.
    let config = format!(
        "[[trunks]]\nname = \"carrier\"\naddress = \"{proxy}:5060\"\ninbound_sources = [\"{proxy}/32\"]\n\
         [[routes]]\npattern = \"^\\\\+?1555\"\ntrunk = \"carrier\"\n"
    );
    let server = Server::start_with(&net, &config, &[("SWITCHBOARD_SIP__T1_MS", "100")]);
    let kamailio = Kamailio::start(
        &net,
        "record_route.cfg",
        5,
        &[
            ("SB_IP", &format!("\"{}\"", net.ip(1))),
            ("SB", &format!("\"sip:{}:5060\"", net.ip(1))),
            ("CALLEE", &format!("\"sip:{}:5060\"", net.ip(3))),
        ],
    );
    let (caller_end, callee_end) = if caller_ends {
        let caller = hangs_up(
            "sipp <sip:+15550001@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]",
            "<sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]",
            2,
        );
        (caller, WAIT_BYE.to_owned())
    } else {
        let callee = hangs_up("[$local];tag=[pid]SIPpTag01[call_number]", "[$remote]", 1);
        (WAIT_BYE.to_owned(), callee)
    };
    let uas = scenario(&net, "uas_record_route.xml", &[("AFTER_ACK", &callee_end)]);
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    let uac = scenario(&net, "uac_record_route.xml", &[("AFTER_ACK", &caller_end)]);
    let run = run_sipp(
        &net,
        &uac,
        &net.ip(2),
        5060,
        format!("{proxy}:5060").parse().unwrap(),
        &["-s", "+15551234", "-m", "1"],
        Duration::from_secs(60),
    );
    let logs = || format!("{}\n--- kamailio ---\n{}", server.log(), kamailio.log());
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "the caller: {}\n{}",
        run.errors,
        logs()
    );
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the callee's call failed\n{}",
        logs()
    );
    let calls = server.ended_calls(1);
    let call = &calls[0];
    assert_eq!(call["status"], "completed", "{call}\n{}", logs());
    assert_eq!(
        call["hangup_by"],
        if caller_ends { "caller" } else { "callee" },
        "{call}"
    );
    assert!(
        call["duration_secs"].as_u64().unwrap() >= 7,
        "the call lasted past Timer H: {call}"
    );
    assert!(server.log().contains("SIP timers t1_ms=100"), "{}", logs());
    assert!(!server.log().contains("ack-timeout"), "{}", logs());
    // Everything inside the dialogs named the proxy: nothing was dropped for want of a route.
    assert!(!kamailio.log().contains("no route:"), "{}", logs());
    // Both legs' ACKs and the BYEs went along the route set.
    let routed = kamailio.log().matches("routed ACK").count();
    assert_eq!(routed, 2, "{}", logs());
    assert_eq!(
        kamailio.log().matches("routed BYE").count(),
        2,
        "{}",
        logs()
    );
}

#[test]
fn a_call_through_a_record_routing_proxy_outlasts_timer_h_and_the_caller_hangs_up() {
    call_through_a_record_routing_proxy(122, true);
}

#[test]
fn a_call_through_a_record_routing_proxy_outlasts_timer_h_and_the_callee_hangs_up() {
    call_through_a_record_routing_proxy(123, false);
}
