//! The B2BUA end to end: the real binary between SIPp trunks and phones over loopback, checked
//! through what SIPp saw, the CDRs `calls list --json` prints, and /metrics.

use crate::common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// One call from the calling trunk (.2) to `number` through `server`, answered by the `callee`
/// scenario on the called trunk (.3); `args` go to both SIPps. Both scenarios must succeed;
/// returns the call's CDR.
fn one_call(
    net: &Net,
    server: &Server,
    callee: PathBuf,
    caller: PathBuf,
    number: &str,
    args: &[&str],
) -> Value {
    let callee = SippServer::start(
        net,
        &callee,
        &net.ip(3),
        5060,
        &[&["-m", "1"], args].concat(),
    );
    let run = run_sipp(
        net,
        &caller,
        &net.ip(2),
        5060,
        server.sip,
        &[&["-s", number, "-m", "1"], args].concat(),
        LONG,
    );
    assert!(run.status.success(), "caller: {run:?}\n{}", server.log());
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the callee's scenario did not complete\n{}",
        server.log()
    );
    server.ended_calls(1).remove(0)
}

/// Runs a caller scenario that is expected to end with the final status `code`.
fn refused(net: &Net, server: &Server, from_host: u8, number: &str, code: &str) {
    let uac = scenario(net, "uac_expect_failure.xml", &[("CODE", code)]);
    let run = run_sipp(
        net,
        &uac,
        &net.ip(from_host),
        5060,
        server.sip,
        &["-s", number, "-m", "1"],
        LONG,
    );
    assert!(
        run.status.success(),
        "expected {code}: {run:?}\n{}",
        server.log()
    );
}

/// (a) Calls from one trunk to the other with RTP played from a pcap and echoed back: every call
/// completes and every packet crosses the relay both ways (in userspace: the kernel relay off).
#[test]
fn media_calls_complete_with_rtp_both_ways() {
    let net = Net::new(11);
    let server = Server::start_with(
        &net,
        &net.two_trunks(""),
        &[("SWITCHBOARD_MEDIA__KERNEL_RELAY", "false")],
    );
    three_media_calls(&net, &server);
    assert_eq!(
        server.metric("switchboard_rtp_packets_relayed_kernel_total"),
        Some(0.0)
    );
}

/// The same calls with the kernel relay (on by default): the same packets cross both ways, most of them
/// rewritten and delivered by the BPF program instead of a media thread, and every one is in
/// the records.
#[test]
fn media_calls_relayed_in_the_kernel_lose_nothing() {
    let net = Net::new(185);
    let server = Server::start(&net, &net.two_trunks(""));
    three_media_calls(&net, &server);
    let relayed = server
        .metric("switchboard_rtp_packets_relayed_total")
        .unwrap();
    let in_kernel = server
        .metric("switchboard_rtp_packets_relayed_kernel_total")
        .unwrap();
    // Each direction of each call relays 25 packets in userspace before it is handed over,
    // and the pcap's events (another SSRC) bring it back for a while.
    assert!(
        in_kernel >= 0.5 * relayed,
        "the kernel relayed {in_kernel} of {relayed}\n{}",
        server.log()
    );
}

fn three_media_calls(net: &Net, server: &Server) {
    let uas = scenario(net, "uas_answer.xml", &[]);
    let _callee = SippServer::start(net, &uas, &net.ip(3), 5060, &["-mp", "6000", "-rtp_echo"]);
    let uac = scenario(net, "uac_pcap.xml", &[]);
    let args = [
        "-s",
        "+15551234",
        "-mp",
        "7000",
        "-m",
        "3",
        "-r",
        "2",
        "-l",
        "3",
    ];
    let run = run_sipp(net, &uac, &net.ip(2), 5060, server.sip, &args, LONG);
    assert!(
        run.status.success() && run.successful == 3,
        "{run:?}\n{}",
        server.log()
    );

    let calls = server.ended_calls(3);
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_eq!(call["status"], "completed", "{call}");
        assert_eq!(call["sip_code"], 200);
        assert_eq!(call["hangup_by"], "caller");
        assert_eq!(
            (call["trunk_in"].as_str(), call["trunk_out"].as_str()),
            (Some("carrier-a"), Some("carrier-b"))
        );
        assert_eq!(call["to"], "+15551234");
        assert!(call["duration_secs"].as_u64().unwrap() >= 8);
        let (caller, callee) = (leg(call, "caller"), leg(call, "callee"));
        // 236 A-law packets from g711a.pcap plus 10 RFC 2833 event packets.
        assert_eq!(caller["packets_in"], 246, "{call}");
        assert_eq!(
            callee["packets_out"], caller["packets_in"],
            "everything from the caller reached the callee"
        );
        assert_eq!(
            callee["packets_in"], callee["packets_out"],
            "the callee echoed everything back"
        );
        assert_eq!(
            caller["packets_out"], callee["packets_in"],
            "the echo reached the caller"
        );
        assert_eq!(
            (caller["lost"].as_u64(), caller["dropped"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(
            (caller["codec"].as_str(), callee["codec"].as_str()),
            (Some("PCMA"), Some("PCMA"))
        );
    }
    assert_eq!(server.metric("switchboard_calls_active"), Some(0.0));
    assert_eq!(
        server.metric("switchboard_calls_total{status=\"completed\"}"),
        Some(3.0)
    );
    assert!(
        server
            .metric("switchboard_rtp_packets_relayed_total")
            .unwrap()
            >= 3.0 * 492.0
    );
    assert_eq!(server.http_get("/healthz"), (200, "ok\n".to_owned()));
}

/// (b) The caller cancels while the callee rings: 200/487 to the caller, CANCEL to the callee
/// (whose scenario completes only once it got the CANCEL and the ACK for its 487).
#[test]
fn caller_cancels_before_answer() {
    let net = Net::new(12);
    let server = Server::start(&net, &net.two_trunks(""));
    let callee = scenario(&net, "uas_ring_until_cancel.xml", &[]);
    let call = one_call(
        &net,
        &server,
        callee,
        scenario(&net, "uac_cancel.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "canceled", "{call}");
    assert_eq!(call["hangup_by"], "caller");
    assert_eq!(call["sip_code"], 487);
    assert_eq!(call["answered_at"], Value::Null);
}

/// (c) The callee is busy: 486 relayed to the caller (and the callee's 486 ACKed).
#[test]
fn callee_busy_is_relayed() {
    let net = Net::new(13);
    let server = Server::start(&net, &net.two_trunks(""));
    let caller = scenario(&net, "uac_expect_failure.xml", &[("CODE", "486")]);
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_busy.xml", &[]),
        caller,
        "+15551234",
        &[],
    );
    assert_eq!(
        (
            call["status"].as_str(),
            call["sip_code"].as_u64(),
            call["hangup_by"].as_str()
        ),
        (Some("busy"), Some(486), Some("callee"))
    );
}

/// (d) Hold and unhold by re-INVITE, relayed to the other leg with the SDP rewritten: the
/// callee checks it sees sendonly then sendrecv, the caller that it gets recvonly then sendrecv.
#[test]
fn hold_and_unhold_reinvites_are_relayed() {
    let net = Net::new(14);
    let server = Server::start(&net, &net.two_trunks(""));
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_hold.xml", &[]),
        scenario(&net, "uac_hold.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
}

/// An UPDATE (RFC 3311) from the caller with a new offer goes on as an UPDATE to a callee that
/// allows one, and its answer comes back rewritten, neither ACKed (SIPp fails on an unexpected
/// ACK); a bare UPDATE (a session refresh) is answered by Switchboard without going further.
#[test]
fn updates_are_relayed_as_updates_and_a_refresh_is_answered() {
    let net = Net::new(143);
    let server = Server::start(&net, &net.two_trunks(""));
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_update.xml", &[]),
        scenario(&net, "uac_update.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
}

/// Reliable provisional responses (RFC 3262) on both legs, each on its own: a caller that
/// requires 100rel (refused with 420 before) gets the callee's early media in a reliable 183
/// and PRACKs it before the 200 comes; the callee's reliable 183 is PRACKed by Switchboard
/// (RAck: its RSeq and the INVITE's CSeq). Each SIPp side checks the headers it depends on.
#[test]
fn reliable_provisionals_are_pracked_on_each_leg() {
    let net = Net::new(150);
    let server = Server::start(&net, &net.two_trunks(""));
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_100rel.xml", &[]),
        scenario(&net, "uac_100rel.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed", "{call}");
    assert_eq!(call["hangup_by"], "caller", "{call}");
}

/// To a callee whose Allow does not list UPDATE, the caller's UPDATE goes on as a re-INVITE
/// (each dialog's offers are its own), and the answer comes back in the UPDATE's 200.
#[test]
fn an_update_reaches_a_callee_without_update_as_a_re_invite() {
    let net = Net::new(144);
    let server = Server::start(&net, &net.two_trunks(""));
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_update_as_reinvite.xml", &[]),
        scenario(&net, "uac_update.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
}

/// Session timers (RFC 4028) on the wire, each leg its own: a caller asking for too brief a
/// session gets 422 with Min-SE: 90 and no call is placed; one asking for 90 s that refreshes
/// itself gets them agreed (`refresher=uac`, `Require: timer`) and its bare UPDATE answered
/// with the terms, not relayed; the callee is asked for Switchboard's own 1800 s.
#[test]
fn session_timers_are_agreed_per_leg_and_too_brief_a_session_is_refused() {
    let net = Net::new(145);
    // The interval our INVITEs ask for is the configured one.
    let env = [("SWITCHBOARD_SIP__SESSION_EXPIRES_SECS", "600")];
    let server = Server::start_with(&net, &net.two_trunks(""), &env);
    refused_with(&net, &server, scenario(&net, "uac_too_brief.xml", &[]));
    assert!(server.calls().is_empty(), "no call for a refused INVITE");
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_session_timer.xml", &[("ASKED", "600")]),
        scenario(&net, "uac_session_timer.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
}

/// Between two trunks marked `trusted` (RFC 3325's trust domain) the caller's
/// P-Asserted-Identity, Privacy, Diversion and History-Info reach the callee as they came;
/// toward a trunk that is not trusted none of them does.
#[test]
fn identity_headers_pass_between_trusted_trunks_only() {
    let present = [
        (
            "P-Asserted-Identity:",
            "^ *<sip:\\+15550001@carrier-a.example>",
        ),
        ("Privacy:", "^ *id"),
        ("Diversion:", "reason=no-answer;counter=1"),
        ("History-Info:", "index=1"),
    ];
    let inverse = |name: &str| {
        format!(
            r#"<ereg regexp="{name}" search_in="msg" check_it_inverse="true" assign_to="leaked"/>"#
        )
    };
    let absent: String = [
        "P-Asserted-Identity",
        "Privacy",
        "Diversion",
        "History-Info",
    ]
    .map(inverse)
    .concat();
    for (n, callee_trusted, checks) in [(146, true, eregs(&present)), (147, false, absent)] {
        let net = Net::new(n);
        let trunks = format!(
            "[[trunks]]\nname = \"carrier-a\"\naddress = \"{a}:5060\"\ninbound_sources = [\"{a}/32\"]\ntrusted = true\n\
             [[trunks]]\nname = \"carrier-b\"\naddress = \"{b}:5060\"\ninbound_sources = [\"{b}/32\"]\ntrusted = {callee_trusted}\n\
             [[routes]]\npattern = \"^\\\\+?1555\"\ntrunk = \"carrier-b\"\n",
            a = net.ip(2),
            b = net.ip(3),
        );
        let server = Server::start(&net, &trunks);
        let call = one_call(
            &net,
            &server,
            scenario(&net, "uas_checked.xml", &[("INVITE_CHECKS", &checks)]),
            scenario(&net, "uac_identity.xml", &[]),
            "+15551234",
            &[],
        );
        assert_eq!(
            call["status"], "completed",
            "callee trusted: {callee_trusted}"
        );
    }
}

/// Runs a caller scenario from the first trunk that expects its own refusal.
fn refused_with(net: &Net, server: &Server, uac: PathBuf) {
    let run = run_sipp(
        net,
        &uac,
        &net.ip(2),
        5060,
        server.sip,
        &["-s", "+15551234", "-m", "1"],
        LONG,
    );
    assert!(run.status.success(), "{run:?}\n{}", server.log());
}

/// SIP INFO (DTMF relay) from the caller reaches the callee with its body.
#[test]
fn info_is_relayed_to_the_other_leg() {
    let net = Net::new(47);
    let server = Server::start(&net, &net.two_trunks(""));
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_info.xml", &[]),
        scenario(&net, "uac_info.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
}

/// (e) The callee hangs up first: its BYE ends the caller's leg with a BYE.
#[test]
fn callee_hangs_up_first() {
    let net = Net::new(15);
    let server = Server::start(&net, &net.two_trunks(""));
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_hangup.xml", &[]),
        scenario(&net, "uac_wait_bye.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(
        (call["status"].as_str(), call["hangup_by"].as_str()),
        (Some("completed"), Some("callee"))
    );
}

/// (f) A source that belongs to no trunk (and is no user) is refused with 403, and no call is
/// recorded for it.
#[test]
fn unknown_source_gets_403() {
    let net = Net::new(16);
    let server = Server::start(&net, &net.two_trunks(""));
    refused(&net, &server, 9, "+15551234", "403");
    assert!(server.calls().is_empty());
    assert_eq!(
        server.metric("switchboard_sip_rejected_total{reason=\"unknown-source\"}"),
        Some(1.0)
    );
}

/// (g) A phone registers with digest and receives a call routed to its user.
#[test]
fn registered_user_receives_a_routed_call() {
    let net = Net::new(17);
    let extra = "[[users]]\nusername = \"alice\"\npassword = \"s3cret\"\n[[routes]]\npattern = \"^alice$\"\nuser = \"alice\"\n";
    let server = Server::start(&net, &net.two_trunks(extra));
    let phone = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(4),
        5062,
        &["-m", "1"],
    );
    let register = |password: &str| {
        scenario(
            &net,
            "phone_register.xml",
            &[
                ("USER", "alice"),
                ("PASSWORD", password),
                ("CONTACT_PORT", "5062"),
            ],
        )
    };
    let reg = run_sipp(
        &net,
        &register("s3cret"),
        &net.ip(4),
        5061,
        server.sip,
        &["-m", "1"],
        LONG,
    );
    assert!(
        reg.status.success(),
        "registration failed: {reg:?}\n{}",
        server.log()
    );
    let run = run_sipp(
        &net,
        &scenario(&net, "uac_short.xml", &[]),
        &net.ip(2),
        5060,
        server.sip,
        &["-s", "alice", "-m", "1"],
        LONG,
    );
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    assert!(
        phone.finished_ok(Duration::from_secs(10)),
        "the phone answered on its Contact port"
    );
    let call = &server.ended_calls(1)[0];
    assert_eq!(
        (call["status"].as_str(), call["user_out"].as_str()),
        (Some("completed"), Some("alice"))
    );

    // A wrong password is challenged again, never accepted.
    let run = run_sipp(
        &net,
        &register("wrong"),
        &net.ip(4),
        5063,
        server.sip,
        &["-m", "1"],
        Duration::from_secs(10),
    );
    assert!(!run.status.success(), "a wrong password must not register");

    // With users configured, an INVITE from a stranger naming no user is challenged like one
    // naming a real user (407, not 403): the answer does not tell which names exist.
    refused(&net, &server, 9, "+15551234", "407");
}

/// A trunk configuration where carrier-b (the called trunk) has credentials.
fn challenged_trunk_config(net: &Net, password: &str) -> String {
    net.two_trunks("").replacen(
        &format!("inbound_sources = [\"{}/32\"]", net.ip(3)),
        &format!(
            "inbound_sources = [\"{}/32\"]\nusername = \"sbuser\"\npassword = \"{password}\"",
            net.ip(3)
        ),
        1,
    )
}

/// (h) The outbound trunk challenges with 407: Switchboard answers with the trunk's credentials.
#[test]
fn outbound_trunk_challenge_is_answered() {
    let net = Net::new(18);
    let server = Server::start(&net, &challenged_trunk_config(&net, "sbpass"));
    let call = one_call(
        &net,
        &server,
        challenging_uas(&net),
        scenario(&net, "uac_short.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
}

/// With wrong credentials the trunk refuses with 403, and the caller gets it.
#[test]
fn outbound_trunk_refusing_our_credentials_fails_the_call() {
    let net = Net::new(19);
    let server = Server::start(&net, &challenged_trunk_config(&net, "not-the-password"));
    let caller = scenario(&net, "uac_expect_failure.xml", &[("CODE", "403")]);
    let call = one_call(
        &net,
        &server,
        challenging_uas(&net),
        caller,
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "failed");
}

/// SIPp's `[authentication]` signs `sip:HOST:PORT` whatever the Request-URI.
const HOST_PORT_URI: &[(&str, &str)] = &[("SWITCHBOARD_SIP__DIGEST_URI", "host-port")];

/// A trunk with credentials must authenticate its INVITEs; SIPp answers our 407.
#[test]
fn inbound_trunk_with_credentials_is_challenged() {
    let net = Net::new(20);
    let config = net.two_trunks("").replacen(
        "inbound_sources = [\"127.0.20.2/32\"]",
        "inbound_sources = [\"127.0.20.2/32\"]\nusername = \"carrier\"\npassword = \"pa55\"",
        1,
    );
    let caller = scenario(
        &net,
        "uac_auth.xml",
        &[
            ("USER", "carrier"),
            ("PASSWORD", "pa55"),
            ("FROM", "+15550001"),
        ],
    );
    // SIPp signs `sip:HOST:PORT`, not the Request-URI: by default that is refused (challenged
    // again), so credentials always name the dialed target.
    let server = Server::start(&net, &config);
    let run = run_sipp(
        &net,
        &caller,
        &net.ip(2),
        5060,
        server.sip,
        &["-s", "+15551234", "-m", "1"],
        Duration::from_secs(10),
    );
    // Both INVITEs were challenged: the second one's credentials were refused (SIPp, which
    // expects no second 407, retransmits that INVITE, and each copy is challenged again).
    let challenges = server.metric("switchboard_sip_challenges_total");
    assert!(
        !run.status.success() && challenges >= Some(2.0) && server.calls().is_empty(),
        "a digest uri other than the Request-URI was accepted: {run:?} {challenges:?}\n{}",
        server.log()
    );
    assert!(server.calls().is_empty());
    drop(server);

    let server = Server::start_with(&net, &config, HOST_PORT_URI);
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_answer.xml", &[]),
        caller,
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
    assert_eq!(
        server.calls().len(),
        1,
        "the challenged first INVITE is not a call"
    );
}

/// A registered user places a call from an address that is no trunk: challenged with 407,
/// admitted with its digest credentials, routed to a trunk.
#[test]
fn registered_user_places_a_call() {
    let net = Net::new(26);
    // SIPp signs `sip:HOST:PORT` rather than the Request-URI.
    let server = Server::start_with(
        &net,
        &net.two_trunks("[[users]]\nusername = \"alice\"\npassword = \"s3cret\"\n"),
        HOST_PORT_URI,
    );
    let _callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    let uac = scenario(
        &net,
        "uac_auth.xml",
        &[("USER", "alice"), ("PASSWORD", "s3cret"), ("FROM", "alice")],
    );
    let run = run_sipp(
        &net,
        &uac,
        &net.ip(4),
        5060,
        server.sip,
        &["-s", "+15551234", "-m", "1"],
        LONG,
    );
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    let call = &server.ended_calls(1)[0];
    assert_eq!(
        (
            call["user_in"].as_str(),
            call["trunk_out"].as_str(),
            call["status"].as_str()
        ),
        (Some("alice"), Some("carrier-b"), Some("completed"))
    );
}

/// No route, an unanswered callee (ring timeout), and RTP silence after the answer.
#[test]
fn no_route_ring_timeout_and_rtp_timeout() {
    let net = Net::new(21);
    let env = [
        ("SWITCHBOARD_SIP__RING_TIMEOUT_SECS", "2"),
        ("SWITCHBOARD_MEDIA__RTP_TIMEOUT_SECS", "2"),
    ];
    let server = Server::start_with(&net, &net.two_trunks(""), &env);
    refused(&net, &server, 2, "999", "404");
    let no_answer = scenario(&net, "uac_expect_failure.xml", &[("CODE", "408")]);
    // The callee scenario completes only if the unanswered call was cancelled.
    one_call(
        &net,
        &server,
        scenario(&net, "uas_ring_until_cancel.xml", &[]),
        no_answer,
        "+15551234",
        &[],
    );
    // Both legs get a BYE after two seconds of silence.
    one_call(
        &net,
        &server,
        scenario(&net, "uas_wait_bye.xml", &[]),
        scenario(&net, "uac_wait_bye.xml", &[]),
        "+15551234",
        &[],
    );

    let calls = server.ended_calls(3);
    let by_code = |c: u64| {
        calls
            .iter()
            .find(|x| x["sip_code"] == c)
            .unwrap_or_else(|| panic!("no call with {c}: {calls:?}"))
    };
    let no_route = by_code(404);
    assert_eq!(
        (
            no_route["status"].as_str(),
            no_route["hangup_cause"].as_str()
        ),
        (Some("failed"), Some("no-route"))
    );
    assert_eq!(by_code(408)["status"], "no-answer");
    let silent = by_code(200);
    assert_eq!(
        (silent["status"].as_str(), silent["hangup_by"].as_str()),
        (Some("completed"), Some("system"))
    );
    assert_eq!(silent["hangup_cause"], "rtp-timeout");
}

/// With no RTP port pair left, a call is refused with 503.
#[test]
fn exhausted_rtp_ports_give_503() {
    let net = Net::new(22);
    let server = Server::start_with(
        &net,
        &net.two_trunks(""),
        &[("SWITCHBOARD_MEDIA__RTP_PORTS", "20000-20001")],
    );
    refused(&net, &server, 2, "+15551234", "503");
    assert_eq!(server.ended_calls(1)[0]["hangup_cause"], "no-media-ports");
}

/// Both trunks over TCP.
#[test]
fn calls_over_tcp() {
    let net = Net::new(23);
    let config = net.two_trunks("").replace(
        "inbound_sources = [\"127.0.23.3/32\"]",
        "inbound_sources = [\"127.0.23.3/32\"]\ntransport = \"tcp\"",
    );
    let server = Server::start(&net, &config);
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_wait_bye.xml", &[]),
        scenario(&net, "uac_short.xml", &[]),
        "+15551234",
        &["-t", "t1"],
    );
    assert_eq!(call["status"], "completed");
}

/// Delayed offer: the caller's INVITE has no SDP, the callee's 200 makes the offer (relayed to
/// the caller in our 200) and the caller's ACK answers (relayed in our ACK to the callee).
#[test]
fn delayed_offer_is_relayed() {
    let net = Net::new(24);
    let server = Server::start(&net, &net.two_trunks(""));
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_delayed_offer.xml", &[]),
        scenario(&net, "uac_delayed_offer.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
    // The caller answered PCMU to an offer the callee made in PCMA: the relay converts.
    assert_eq!(
        (
            leg(&call, "caller")["codec"].as_str(),
            leg(&call, "callee")["codec"].as_str()
        ),
        (Some("PCMU"), Some("PCMA"))
    );
}

/// Early media: the callee's 183 with SDP reaches the caller with Switchboard's address in it.
#[test]
fn early_media_sdp_is_anchored_and_relayed() {
    let net = Net::new(25);
    let server = Server::start(&net, &net.two_trunks(""));
    let caller = scenario(&net, "uac_early_media.xml", &[("ANCHOR", &net.ip(1))]);
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_early_media.xml", &[]),
        caller,
        "+15551234",
        &[],
    );
    assert_eq!(call["status"], "completed");
}

/// The same server with its CDRs in PostgreSQL (the database scripts/test.sh starts).
#[test]
fn cdrs_are_stored_in_postgresql() {
    let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("SWITCHBOARD_REQUIRE_POSTGRES").is_err(),
            "PostgreSQL required but not configured"
        );
        eprintln!("SWITCHBOARD_TEST_POSTGRES_URL not set; PostgreSQL not exercised");
        return;
    };
    let e2e = format!(
        "{}/switchboard_e2e",
        url.rsplit_once('/').expect("URL with a database").0
    );
    let net = Net::new(27);
    let server = Server::start_with(
        &net,
        &net.two_trunks(""),
        &[("SWITCHBOARD_STORAGE__DATABASE_URL", &e2e)],
    );
    let call = one_call(
        &net,
        &server,
        scenario(&net, "uas_wait_bye.xml", &[]),
        scenario(&net, "uac_short.xml", &[]),
        "+15551234",
        &[],
    );
    assert_eq!(
        (call["status"].as_str(), call["trunk_in"].as_str()),
        (Some("completed"), Some("carrier-a"))
    );
    assert_eq!(call["legs"].as_array().unwrap().len(), 2);
    assert!(
        !net.path("data/switchboard.db").exists(),
        "nothing went to SQLite"
    );
}

/// A route asks in its configuration for what an application would command on a call: here
/// noise suppressed in what the callee says (and not in what the caller says), and the call
/// hung up at a time limit from its answer, on both legs.
#[test]
fn a_route_suppresses_the_callees_noise_and_ends_its_calls_at_the_time_limit() {
    let net = Net::new(162);
    let config = net.two_trunks("") + "time_limit_secs = 5\nsuppress_noise = \"callee\"\n";
    let server = Server::start(&net, &config);
    let (caller_rtp, callee_rtp) = (rig::rtp_socket(&net, 2), rig::rtp_socket(&net, 6));
    let (callee, callee_side) = callee_telling_media(&net, &callee_rtp);
    let uac = caller_telling_media(&net, &caller_rtp);
    std::thread::scope(|scope| {
        let caller = scope.spawn(|| {
            let args = ["-m", "1", "-s", "+15551234", "-trace_logs"];
            run_sipp(&net, &uac, &net.ip(2), 5060, server.sip, &args, LONG)
        });
        let to_callee_side = callee_side();
        let to_caller_side = caller_side(&net);
        // The callee hears the caller's noise as it was said, the caller hears the callee's
        // much quieter.
        let (sent, to_caller, to_callee) =
            exchange_noise((&caller_rtp, to_caller_side), (&callee_rtp, to_callee_side));
        assert!(
            to_callee > 0.8 * sent,
            "the caller's noise reached the callee at RMS {to_callee:.0} of {sent:.0}"
        );
        assert!(
            to_caller < 0.25 * sent,
            "the callee's noise reached the caller at RMS {to_caller:.0} of {sent:.0}\n{}",
            server.log()
        );
        // Both legs get the BYE at the limit; the record says why.
        let run = caller.join().unwrap();
        assert!(run.status.success(), "caller: {run:?}\n{}", server.log());
    });
    assert!(
        callee.finished_ok(Duration::from_secs(10)),
        "the callee was not hung up\n{}",
        server.log()
    );
    let call = server.ended_calls(1).remove(0);
    assert_eq!(call["hangup_cause"], "time-limit", "{call}");
    let at = |key: &str| {
        let text = call[key].as_str().expect("a time");
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let length = at("ended_at") - at("answered_at");
    assert!(
        (5_000..5_200).contains(&length.whole_milliseconds()),
        "hung up {length} after the answer: {call}"
    );
}
