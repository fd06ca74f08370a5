//! A node of two call-core shards (`sip.call_shards = 2`), end to end: the SIP front hands
//! each call's messages to one shard, the shards share the registrar and the media engine,
//! and each media event reaches the shard whose call it is about — checked through what
//! SIPp saw, the CDRs' per-leg packet counts (which the endpoints' final events carry) and
//! how the calls were shared.

use crate::common;

use common::*;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);
/// Calls of each kind: with Call-IDs spread by a hash, all of them on one of two shards has
/// a chance of 2^-11.
const CALLS: usize = 12;

#[test]
fn two_shards_share_the_calls_the_registrar_and_the_media_engine() {
    let net = Net::new(60);
    let extra = "[[users]]\nusername = \"alice\"\npassword = \"s3cret\"\n[[routes]]\npattern = \"^alice$\"\nuser = \"alice\"\n";
    let server = Server::start_with(
        &net,
        &net.two_trunks(extra),
        &[("SWITCHBOARD_SIP__CALL_SHARDS", "2")],
    );
    let calls = CALLS.to_string();

    // A phone registers once, through whichever shard its REGISTER's Call-ID names; calls
    // to it arrive on both shards, and each finds its binding.
    let phone = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(4),
        5062,
        &["-m", &calls],
    );
    let register = scenario(
        &net,
        "phone_register.xml",
        &[
            ("USER", "alice"),
            ("PASSWORD", "s3cret"),
            ("CONTACT_PORT", "5062"),
        ],
    );
    let reg = run_sipp(
        &net,
        &register,
        &net.ip(4),
        5061,
        server.sip,
        &["-m", "1"],
        LONG,
    );
    assert!(
        reg.status.success(),
        "registration: {reg:?}\n{}",
        server.log()
    );
    let run = run_sipp(
        &net,
        &scenario(&net, "uac_short.xml", &[]),
        &net.ip(2),
        5060,
        server.sip,
        &["-s", "alice", "-m", &calls, "-r", "4", "-l", "4"],
        LONG,
    );
    assert!(
        run.status.success() && run.successful == CALLS as u64,
        "{run:?}\n{}",
        server.log()
    );
    assert!(
        phone.finished_ok(Duration::from_secs(10)),
        "the phone answered every call\n{}",
        server.log()
    );

    // Calls with RTP both ways between the trunks: every packet of every call is in its
    // CDR, counted by the endpoints' final events, which each shard got for its own calls.
    let _callee = SippServer::start(
        &net,
        &scenario(&net, "uas_answer.xml", &[]),
        &net.ip(3),
        5060,
        &["-mp", "6000", "-rtp_echo"],
    );
    let run = run_sipp(
        &net,
        &scenario(&net, "uac_pcap.xml", &[]),
        &net.ip(2),
        5060,
        server.sip,
        &[
            "-s",
            "+15551234",
            "-mp",
            "7000",
            "-m",
            &calls,
            "-r",
            "4",
            "-l",
            &calls,
        ],
        LONG,
    );
    assert!(
        run.status.success() && run.successful == CALLS as u64,
        "{run:?}\n{}",
        server.log()
    );
    let records = server.ended_calls(2 * CALLS);
    let media: Vec<_> = (records.iter())
        .filter(|c| c["to"] == "+15551234")
        .collect();
    assert_eq!(media.len(), CALLS);
    for call in media {
        assert_eq!(call["status"], "completed", "{call}");
        let (caller, callee) = (leg(call, "caller"), leg(call, "callee"));
        // 236 A-law packets from g711a.pcap plus 10 RFC 2833 event packets, echoed back.
        assert_eq!(caller["packets_in"], 246, "{call}");
        assert_eq!(callee["packets_out"], 246, "{call}");
        assert_eq!(callee["packets_in"], 246, "{call}");
        assert_eq!(caller["packets_out"], 246, "{call}");
    }
    let to_alice = (records.iter())
        .filter(|c| c["user_out"] == "alice")
        .count();
    assert_eq!(to_alice, CALLS);

    // Both shards carried calls, and every call was one shard's.
    let shard = |n: u8| {
        (server.metric(&format!("switchboard_shard_calls_total{{shard=\"{n}\"}}"))).unwrap_or(0.0)
    };
    let (first, second) = (shard(0), shard(1));
    assert!(
        first >= 1.0 && second >= 1.0 && first + second == (2 * CALLS) as f64,
        "calls per shard: {first} and {second}"
    );
    assert_eq!(server.metric("switchboard_calls_active"), Some(0.0));
}
