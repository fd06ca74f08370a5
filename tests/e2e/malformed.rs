//! Bad input against the real binary: every RFC 4475 torture message, random garbage, missing
//! mandatory headers, absurd Content-Length values, broken SDP and framing errors on TCP. Each
//! gets its 4xx or is dropped; the server keeps running and a call right after still works.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

const INVITE: &str = "INVITE sip:+15551234@{SB} SIP/2.0\r\n\
    Via: SIP/2.0/UDP {ME};branch=z9hG4bK{BRANCH};rport\r\n\
    Max-Forwards: 70\r\n\
    From: <sip:+15550001@{ME}>;tag=m1\r\n\
    To: <sip:+15551234@{SB}>\r\n\
    Call-ID: {BRANCH}@malformed\r\n\
    CSeq: 1 INVITE\r\n\
    Contact: <sip:caller@{ME}>\r\n\
    Content-Type: {CTYPE}\r\n\
    Content-Length: {LEN}\r\n\r\n{BODY}";

fn invite(sb: SocketAddr, me: SocketAddr, branch: &str, ctype: &str, body: &str) -> String {
    INVITE
        .replace("{SB}", &sb.to_string())
        .replace("{ME}", &me.to_string())
        .replace("{BRANCH}", branch)
        .replace("{CTYPE}", ctype)
        .replace("{LEN}", &body.len().to_string())
        .replace("{BODY}", body)
}

fn call_id(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name == "i").then(|| value.trim().to_owned())
    })
}

/// Sends a datagram and returns the status codes of the responses to it that came back (the
/// 100 Trying of an INVITE included); responses to earlier requests (retransmitted final
/// responses waiting for an ACK) are told apart by Call-ID.
fn codes(sock: &UdpSocket, to: SocketAddr, data: &[u8]) -> Vec<u16> {
    collect(sock, to, data, None)
}

/// [`codes`] for a message that is to be answered: the first response is waited for up to
/// 5 s (a busy machine may take longer than the socket's short window, which is what tells
/// silence), then the rest as [`codes`] collects them.
fn answered(sock: &UdpSocket, to: SocketAddr, data: &[u8]) -> Vec<u16> {
    collect(sock, to, data, Some(Duration::from_secs(5)))
}

fn collect(sock: &UdpSocket, to: SocketAddr, data: &[u8], first: Option<Duration>) -> Vec<u16> {
    let window = sock.read_timeout().unwrap();
    sock.set_read_timeout(first.or(window)).unwrap();
    sock.send_to(data, to).unwrap();
    let sent_id = call_id(&String::from_utf8_lossy(data));
    let mut codes = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]);
        if sent_id.is_some() && call_id(&text) != sent_id {
            continue;
        }
        if let Some(code) = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
        {
            codes.push(code);
            sock.set_read_timeout(window).unwrap();
        }
    }
    sock.set_read_timeout(window).unwrap();
    codes
}

#[test]
fn bad_input_gets_4xx_or_is_dropped_and_service_continues() {
    let net = Net::new(40);
    let mut server = Server::start(&net, &net.two_trunks(""));
    let stranger = UdpSocket::bind(format!("{}:5060", net.ip(9))).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();

    // RFC 4475: invalid requests get the status the RFC calls for; valid ones get a response.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
    let table = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rfc4475-outcomes.txt"
    ))
    .unwrap();
    let expect_error: Vec<(&str, u16)> = table
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .filter_map(|(name, outcome)| Some((name, outcome.trim().parse().ok()?)))
        .collect();
    assert!(expect_error.len() >= 15, "the outcome table was read");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    names.sort();
    for path in &names {
        let name = path.file_stem().unwrap().to_string_lossy();
        let expected = expect_error.iter().find(|(n, _)| *n == name);
        let message = std::fs::read(path).unwrap();
        let got = match expected {
            Some(_) => answered(&stranger, server.sip, &message),
            None => codes(&stranger, server.sip, &message),
        };
        if let Some((_, code)) = expected {
            assert!(got.contains(code), "{name}: expected {code}, got {got:?}");
        }
    }
    assert!(server.is_running(), "survived the torture messages");

    // Garbage of every shape, including an empty datagram and a maximum-size one.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut junk = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    let garbage = UdpSocket::bind(format!("{}:0", net.ip(9))).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for len in [0usize, 1, 11, 200, 1500, 65_000] {
        assert!(
            codes(&garbage, server.sip, &junk(len)).is_empty(),
            "garbage gets no answer"
        );
    }
    let mut sip_prefixed = b"SIP/2.0 200 OK\r\n".to_vec();
    sip_prefixed.extend(junk(300));
    assert!(codes(&garbage, server.sip, &sip_prefixed).is_empty());

    // Missing mandatory headers: 400, or silence when there is no Via to answer to. Each goes
    // from a fresh port, since a message without Call-ID cannot be told apart otherwise.
    let fresh = || {
        let s = UdpSocket::bind(format!("{}:0", net.ip(9))).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    };
    for header in ["Call-ID", "From", "To", "CSeq"] {
        let sock = fresh();
        let base = invite(
            server.sip,
            sock.local_addr().unwrap(),
            "missing",
            "application/sdp",
            "",
        );
        let line = base
            .lines()
            .find(|l| l.starts_with(&format!("{header}:")))
            .unwrap();
        let without = base.replace(&format!("{line}\r\n"), "");
        assert_eq!(
            answered(&sock, server.sip, without.as_bytes()),
            [400],
            "without {header}"
        );
    }
    let sock = fresh();
    let base = invite(
        server.sip,
        sock.local_addr().unwrap(),
        "missing",
        "application/sdp",
        "",
    );
    let no_via = base
        .lines()
        .filter(|l| !l.starts_with("Via:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    assert!(codes(&sock, server.sip, no_via.as_bytes()).is_empty());

    // Content-Length: negative, absurd, larger than the datagram.
    for cl in ["-1", "99999999999999999999", "5000"] {
        let sock = fresh();
        let base = invite(
            server.sip,
            sock.local_addr().unwrap(),
            &format!("cl{}", cl.len()),
            "application/sdp",
            "",
        );
        let bad = base.replace("Content-Length: 0", &format!("Content-Length: {cl}"));
        assert_eq!(
            answered(&sock, server.sip, bad.as_bytes()),
            [400],
            "Content-Length {cl}"
        );
    }

    // Broken SDP from a trunk: 400; no usable codec: 488; not SDP: 415. Each is a recorded call.
    let trunk = UdpSocket::bind(format!("{}:5060", net.ip(2))).unwrap();
    trunk
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let me = trunk.local_addr().unwrap();
    let g729 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n";
    for (branch, ctype, body, code) in [
        ("sdp1", "application/sdp", "this is not sdp", 400),
        (
            "sdp2",
            "application/sdp",
            "v=0\r\nm=audio seven RTP/AVP 0\r\n",
            400,
        ),
        ("sdp3", "application/sdp", g729, 488),
        ("sdp4", "text/plain", "hello", 415),
    ] {
        let got = codes(
            &trunk,
            server.sip,
            invite(server.sip, me, branch, ctype, body).as_bytes(),
        );
        assert!(
            got.contains(&code),
            "{body:?}: expected {code}, got {got:?}"
        );
    }
    let calls = server.ended_calls(4);
    assert!(
        calls
            .iter()
            .all(|c| c["status"] == "failed" && c["hangup_cause"] == "caller-sdp"),
        "{calls:?}"
    );

    // TCP: a message without Content-Length cannot be framed; the connection is closed.
    let mut tcp = TcpStream::connect(server.sip).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    tcp.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4;branch=z9hG4bKt\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        tcp.read(&mut buf).unwrap_or(0),
        0,
        "the server closed the connection"
    );
    // …and an oversized header section is refused too.
    let mut big = TcpStream::connect(server.sip).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = big.write_all(&vec![b'a'; 70_000]);
    assert_eq!(big.read(&mut buf).unwrap_or(0), 0);

    assert!(server.is_running(), "still up after all of it");
    assert!(
        server
            .metric("switchboard_sip_messages_malformed_total")
            .unwrap()
            >= 20.0
    );

    // A normal call right after.
    let _callee = SippServer::start(
        &net,
        &scenario(&net, "uas_wait_bye.xml", &[]),
        &net.ip(3),
        5060,
        &["-m", "1"],
    );
    drop(trunk);
    let run = run_sipp(
        &net,
        &scenario(&net, "uac_short.xml", &[]),
        &net.ip(2),
        5060,
        server.sip,
        &["-s", "+15551234", "-m", "1"],
        Duration::from_secs(30),
    );
    assert!(run.status.success(), "{run:?}\n{}", server.log());
    assert_eq!(server.stop().code(), Some(0), "clean shutdown");
}

/// An INVITE from a source that is no trunk is refused with one 403 and nothing more — no
/// 100 Trying before it, and no retransmission after: the refusal keeps no transaction, so a
/// forged source address cannot make the server send a victim more than it was sent. A
/// retransmitted INVITE gets one 403 again. With users configured the same holds for the 407
/// challenge.
#[test]
fn refusals_are_sent_once_without_a_transaction() {
    let net = Net::new(94);
    for extra in [
        "",
        "[[users]]\nusername = \"alice\"\npassword = \"s3cret\"\n",
    ] {
        let server = Server::start(&net, &net.two_trunks(extra));
        let want = if extra.is_empty() { 403 } else { 407 };
        let stranger = UdpSocket::bind(format!("{}:5060", net.ip(9))).unwrap();
        // Long enough for Timer G's first three retransmissions (0.5, 1.5 and 3.5 s).
        stranger
            .set_read_timeout(Some(Duration::from_millis(4000)))
            .unwrap();
        let me = stranger.local_addr().unwrap();
        let request = invite(
            server.sip,
            me,
            &format!("once{want}"),
            "application/sdp",
            "",
        );
        let got = codes(&stranger, server.sip, request.as_bytes());
        assert_eq!(got, [want], "{}", server.log());
        // The caller retransmits (it never saw an answer): one answer again.
        let got = codes(&stranger, server.sip, request.as_bytes());
        assert_eq!(got, [want], "{}", server.log());
        drop(server);
    }
}

/// A visit from another node (`X-Switchboard-Visit`) comes in on its seal alone: a stranger's
/// INVITE with a seal made with another key, or with the nodes' key but stale (a captured one
/// replayed), or a good one on an INVITE to anything but the visits' user, gets the 403 any
/// stranger gets. A good seal is let in — and its destination is
/// still checked: a call that is not here is refused, not bridged.
#[test]
fn a_visit_comes_in_on_a_good_fresh_seal_alone() {
    use switchboard_control::call::visit::{self, Destination, Visit};
    let net = Net::new(184);
    let server = Server::start_with(
        &net,
        &net.two_trunks(""),
        &[("SWITCHBOARD_SIP__DIGEST_SECRET", "cluster-secret-7")],
    );
    let stranger = UdpSocket::bind(format!("{}:5060", net.ip(9))).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let me = stranger.local_addr().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let visit = |at: i64| Visit {
        account: "AC0123456789abcdef0123456789abcdef".into(),
        at,
        to: Destination::Call {
            call: "CA0123456789abcdef0123456789abcdef".into(),
        },
    };
    let nodes = visit::key("cluster-secret-7").unwrap();
    let other = visit::key("another secret").unwrap();
    let to_visits = |branch: &str, sealed: &str| {
        invite(server.sip, me, branch, "application/sdp", "")
            .replace(
                "INVITE sip:+15551234@",
                &format!("INVITE sip:{}@", visit::USER),
            )
            .replace(
                "Content-Type:",
                &format!("{}: {sealed}\r\nContent-Type:", visit::HEADER),
            )
    };
    // A good seal sent to anything but the visits' user is a stranger's call.
    let to_a_number = |branch: &str, sealed: &str| {
        invite(server.sip, me, branch, "application/sdp", "").replace(
            "Content-Type:",
            &format!("{}: {sealed}\r\nContent-Type:", visit::HEADER),
        )
    };
    for (branch, sealed) in [
        ("forged", visit(now).seal(&other).unwrap()),
        (
            "stale",
            visit(now - 2 * visit::FRESH_MS).seal(&nodes).unwrap(),
        ),
    ] {
        let got = codes(&stranger, server.sip, to_visits(branch, &sealed).as_bytes());
        assert_eq!(got, [403], "{branch}\n{}", server.log());
    }
    let sealed = visit(now).seal(&nodes).unwrap();
    let got = codes(
        &stranger,
        server.sip,
        to_a_number("number", &sealed).as_bytes(),
    );
    assert_eq!(got, [403], "{}", server.log());
    let sealed = visit(now).seal(&nodes).unwrap();
    let got = answered(&stranger, server.sip, to_visits("good", &sealed).as_bytes());
    // Refused as a call the visit cannot reach (repeated until acknowledged), not as a
    // stranger, and never answered.
    let finals: Vec<u16> = got.iter().copied().filter(|c| *c >= 200).collect();
    assert!(
        !finals.is_empty() && finals.iter().all(|c| *c >= 400 && *c != 403),
        "let in, then refused: {got:?}\n{}",
        server.log()
    );
    assert!(
        server.log().contains("cannot take the visit"),
        "{}",
        server.log()
    );
}
