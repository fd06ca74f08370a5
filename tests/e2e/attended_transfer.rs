//! Attended transfer (REFER with Replaces, RFC 3891) by a phone with two calls through
//! Switchboard. Phone B (written here over a UDP socket, so that it can put its second call's
//! dialog into its REFER) answers a call from A, puts A on hold, answers a call from C, then
//! refers A to C naming its dialog with C. Switchboard joins A and C itself: B's REFER gets
//! 202 and a NOTIFY of 200, B's two dialogs are hung up, A is re-INVITEd off hold, and A and C
//! (SIPp callers whose media are the test's sockets) hear each other's tones; no one is rung.
//! Before that, B names C's own dialog with Switchboard (read from C's SIPp log), which is not
//! B's to give away: 403, and nothing changes. The same again with two call-core shards, A's
//! and C's calls on different ones (their Call-IDs chosen so): the shard that takes the REFER
//! joins A to C through a leg to the other shard, which takes B's place in C's call.

use crate::common;

use common::sdk_app::{hear, windows_of};
use common::*;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use switchboard_media::tone;

/// A SIP message as the phone reads it: first line, headers (names lower-cased, in order) and
/// body.
struct Message {
    first: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Message {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Self {
            first,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> &str {
        (self.headers.iter())
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        (self.headers.iter())
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A response to this request, with `extra` header lines and `body` (SDP) if any.
    fn response(&self, status: &str, to_tag: Option<&str>, extra: &str, body: &str) -> String {
        let mut r = format!("SIP/2.0 {status}\r\n");
        for via in self.all("via") {
            r += &format!("Via: {via}\r\n");
        }
        let to = match to_tag {
            Some(tag) if !self.header("to").contains("tag=") => {
                format!("{};tag={tag}", self.header("to"))
            }
            _ => self.header("to").to_owned(),
        };
        r += &format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}",
            self.header("from"),
            self.header("call-id"),
            self.header("cseq")
        );
        if body.is_empty() {
            r += "Content-Length: 0\r\n\r\n";
        } else {
            r += &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        r
    }
}

/// One of B's dialogs: the INVITE that made it, and B's tag in it.
struct Dialog {
    invite: Message,
    tag: String,
    cseq: u32,
}

impl Dialog {
    /// A request of B's in the dialog (To is the peer's From, with its tag).
    fn request(&mut self, method: &str, me: SocketAddr, extra: &str, body: &str) -> String {
        self.cseq += 1;
        let target = self.invite.header("contact");
        let target = target.trim_start_matches('<').split('>').next().unwrap();
        let mut r = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{method}-{}-{}\r\n\
             From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n\
             Contact: <sip:b@{me}>\r\nMax-Forwards: 70\r\n{extra}",
            self.tag,
            self.cseq,
            self.invite.header("to"),
            self.tag,
            self.invite.header("from"),
            self.invite.header("call-id"),
            self.cseq,
        );
        if body.is_empty() {
            r += "Content-Length: 0\r\n\r\n";
        } else {
            r += &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        r
    }

    fn peer_tag(&self) -> &str {
        self.invite
            .header("from")
            .split("tag=")
            .nth(1)
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
    }
}

/// What phone B saw of the transfer.
#[derive(Debug, Default)]
struct Seen {
    /// The answers to B's REFERs, in order.
    refer_statuses: Vec<u16>,
    notified: Vec<String>,
    byes: Vec<String>,
    reinvite_answered: bool,
    /// The first line and CSeq of every message B got, for a failure's report.
    got: Vec<String>,
}

impl Seen {
    /// Whether the first REFER's outcome is known: refused outright, or accepted and its
    /// NOTIFY told how it ended.
    fn first_refer_settled(&self) -> bool {
        match self.refer_statuses.first() {
            Some(202) => (self.notified.iter()).any(|n| !n.starts_with("SIP/2.0 100")),
            Some(_) => true,
            None => false,
        }
    }
}

fn sdp(ip: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=b 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

/// Phone B: answers two calls, holds the first, then refers it to the second with Replaces;
/// answers what follows until both its dialogs are hung up.
fn transferor(
    sock: &UdpSocket,
    target_number: &str,
    foreign: impl Fn() -> (String, String, String),
) -> Seen {
    let me = sock.local_addr().unwrap();
    let ip = me.ip().to_string();
    let media = UdpSocket::bind(format!("{ip}:0")).unwrap();
    let media_port = media.local_addr().unwrap().port();
    let mut buf = vec![0u8; 65536];
    let mut dialogs: Vec<Dialog> = Vec::new();
    let mut switchboard;
    let mut seen = Seen::default();
    let mut answered: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut state = 0;
    while Instant::now() < deadline && seen.byes.len() < 2 {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let method_of = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .split(' ')
                .next()
                .unwrap_or("")
                .to_owned()
        };
        let method = method_of(&buf[..n]);
        switchboard = Some(from);
        let msg = Message::parse(&buf[..n]);
        seen.got
            .push(format!("{} ({})", msg.first, msg.header("cseq")));
        let call_id = msg.header("call-id").to_owned();
        match method.as_str() {
            "INVITE"
                if !dialogs
                    .iter()
                    .any(|d| d.invite.header("call-id") == call_id) =>
            {
                let tag = format!("b{}", dialogs.len() + 1);
                let ok = msg.response(
                    "200 OK",
                    Some(&tag),
                    &format!("Contact: <sip:b@{me}>\r\n"),
                    &sdp(&ip, media_port, "sendrecv"),
                );
                sock.send_to(ok.as_bytes(), from).unwrap();
                answered.insert(call_id.clone(), ok);
                dialogs.push(Dialog {
                    invite: msg,
                    tag,
                    cseq: 0,
                });
            }
            // A retransmission of an INVITE already answered.
            "INVITE" if answered.contains_key(&call_id) && state < 1 => {
                sock.send_to(answered[&call_id].as_bytes(), from).unwrap();
            }
            "ACK" => {}
            "NOTIFY" => {
                seen.notified.push(msg.body.clone());
                let ok = msg.response("200 OK", None, "", "");
                sock.send_to(ok.as_bytes(), from).unwrap();
            }
            "BYE" => {
                seen.byes.push(call_id);
                let ok = msg.response("200 OK", None, "", "");
                sock.send_to(ok.as_bytes(), from).unwrap();
            }
            "SIP/2.0" => {
                let code: u16 = msg.first.split(' ').nth(1).unwrap().parse().unwrap();
                let cseq = msg.header("cseq").to_owned();
                if cseq.ends_with("INVITE") && (200..300).contains(&code) {
                    // Our hold re-INVITE answered: ACK it, with its CSeq number.
                    let d = &mut dialogs[0];
                    d.cseq -= 1;
                    let ack = d.request("ACK", me, "", "");
                    sock.send_to(ack.as_bytes(), from).unwrap();
                    seen.reinvite_answered = code == 200;
                } else if cseq.ends_with("REFER") {
                    seen.refer_statuses.push(code);
                }
            }
            _ => {}
        }
        // Hold A once its call is up (B's answer ACKed, and A's a moment later: a re-INVITE
        // crossing A's ACK gets 491); refer once C's call is up too.
        if state == 0 && dialogs.len() == 1 && method == "ACK" {
            std::thread::sleep(Duration::from_millis(500));
            let hold = dialogs[0].request("INVITE", me, "", &sdp(&ip, media_port, "sendonly"));
            sock.send_to(hold.as_bytes(), switchboard.unwrap()).unwrap();
            state = 1;
        } else if state == 1 && dialogs.len() == 2 && seen.reinvite_answered {
            std::thread::sleep(Duration::from_millis(300));
            let sb = switchboard.unwrap();
            let refer =
                |dialog: &mut Dialog, (call_id, to_tag, from_tag): (String, String, String)| {
                    let replaces = format!(
                        "{}%3Bto-tag%3D{to_tag}%3Bfrom-tag%3D{from_tag}",
                        call_id.replace('@', "%40"),
                    );
                    let refer_to = format!(
                        "Refer-To: <sip:{target_number}@{sb}?Replaces={replaces}>\r\nReferred-By: <sip:b@{me}>\r\n"
                    );
                    dialog.request("REFER", me, &refer_to, "")
                };
            // First a REFER naming C's own dialog with Switchboard, which is not B's to give
            // away: refused.
            let wrong = refer(&mut dialogs[0], foreign());
            sock.send_to(wrong.as_bytes(), sb).unwrap();
            state = 2;
        } else if state == 2 && seen.first_refer_settled() {
            // Then B's own dialog with C.
            let sb = switchboard.unwrap();
            let consult = &dialogs[1];
            let ids = (
                consult.invite.header("call-id").to_owned(),
                consult.tag.clone(),
                consult.peer_tag().to_owned(),
            );
            let replaces = format!(
                "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
                ids.0.replace('@', "%40"),
                ids.1,
                ids.2
            );
            let refer_to = format!(
                "Refer-To: <sip:{target_number}@{sb}?Replaces={replaces}>\r\nReferred-By: <sip:b@{me}>\r\n"
            );
            let refer = dialogs[0].request("REFER", me, &refer_to, "");
            sock.send_to(refer.as_bytes(), sb).unwrap();
            state = 3;
        }
    }
    drop(media);
    seen
}

#[test]
fn a_phone_joins_its_two_calls_by_refer_with_replaces_and_they_hear_each_other() {
    joins_two_calls(160, 1);
}

#[test]
fn a_phone_joins_its_two_calls_held_by_two_call_core_shards() {
    joins_two_calls(88, 2);
}

fn joins_two_calls(net_number: u8, shards: u16) {
    let net = Net::new(net_number);
    let extra = format!(
        "[[trunks]]\nname = \"carrier-c\"\naddress = \"{c}:5060\"\ninbound_sources = [\"{c}/32\"]\n",
        c = net.ip(4)
    );
    let count = shards.to_string();
    let env = [("SWITCHBOARD_SIP__CALL_SHARDS", count.as_str())];
    let server = Server::start_with(&net, &net.two_trunks(&extra), &env);
    // A's call on the first shard, C's on the last.
    let (a_id, c_id) = (
        call_id_on_shard(&net.ip(2), shards, 0),
        call_id_on_shard(&net.ip(4), shards, shards - 1),
    );
    let b = UdpSocket::bind(format!("{}:5060", net.ip(3))).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (a_rtp, c_rtp) = (rig::rtp_socket(&net, 2), rig::rtp_socket(&net, 4));
    let phone = |name: &str, sock: &UdpSocket| {
        let media = sock.local_addr().unwrap();
        let log = format!(
            r#"<action><ereg regexp="m=audio [0-9]+" search_in="body" check_it="true" assign_to="m"/><log message="MEDIA-{name} [$m]"/><ereg regexp="tag=[^;>]+" search_in="hdr" header="To:" check_it="true" assign_to="t"/><log message="DIALOG-{name} [call_id] [$t] [pid]SIPpTag09[call_number]"/></action>"#
        );
        scenario(
            &net,
            "uac_media_wait_bye.xml",
            &[
                ("RTP_IP", &media.ip().to_string()),
                ("RTP_PORT", &media.port().to_string()),
                (
                    "AUDIO",
                    "0 101\n      a=rtpmap:0 PCMU/8000\n      a=rtpmap:101 telephone-event/8000",
                ),
                ("HEADERS", ""),
                ("ANSWER_CHECKS", &log),
                ("BYE_CHECKS", ""),
            ],
        )
    };
    let c_uac = phone("C", &c_rtp);
    let media = a_rtp.local_addr().unwrap();
    let a_uac = scenario(
        &net,
        "uac_held.xml",
        &[
            ("RTP_IP", &media.ip().to_string()),
            ("RTP_PORT", &media.port().to_string()),
            ("TALK_MS", "6000"),
        ],
    );
    std::thread::scope(|scope| {
        // C's dialog with Switchboard, as C's SIPp logged it: its Call-ID and both tags.
        let c_dialog = || {
            let dir = net.dir.path();
            let call_id = sipp_logged(dir, "DIALOG-C ", "C's call was not answered");
            let to = sipp_logged(dir, &format!("DIALOG-C {call_id} "), "no To tag");
            let from = sipp_logged(dir, &format!("DIALOG-C {call_id} {to} "), "no From tag");
            (call_id, to.trim_start_matches("tag=").to_owned(), from)
        };
        let b_phone = scope.spawn(move || transferor(&b, "+15551235", c_dialog));
        let a_call = scope.spawn(|| {
            let args = [
                "-m",
                "1",
                "-s",
                "+15551234",
                "-trace_logs",
                "-cid_str",
                &a_id,
            ];
            run_sipp(
                &net,
                &a_uac,
                &net.ip(2),
                5060,
                server.sip,
                &args,
                Duration::from_secs(40),
            )
        });
        let dir = net.dir.path();
        let a_port = sipp_logged(dir, "MEDIA-A m=audio ", "A's call was not answered");
        // A's hold is relayed to A; then C calls B.
        std::thread::sleep(Duration::from_millis(500));
        let c_call = scope.spawn(|| {
            let args = [
                "-m",
                "1",
                "-s",
                "+15551234",
                "-trace_logs",
                "-cid_str",
                &c_id,
            ];
            run_sipp(
                &net,
                &c_uac,
                &net.ip(4),
                5060,
                server.sip,
                &args,
                Duration::from_secs(40),
            )
        });
        let c_port = sipp_logged(dir, "MEDIA-C m=audio ", "C's call was not answered");
        let seen = b_phone.join().unwrap();
        // Another peer's dialog refused, B's own taken: at once on one shard; across shards
        // the REFER is taken and the other shard's refusal told in its NOTIFY.
        let (statuses, outcomes): (&[u16], &[&str]) = match shards {
            1 => (&[403, 202], &["SIP/2.0 200"]),
            _ => (&[202, 202], &["SIP/2.0 403", "SIP/2.0 200"]),
        };
        let finals: Vec<&str> = (seen.notified.iter())
            .filter(|n| !n.starts_with("SIP/2.0 100"))
            .map(|n| n.get(..11).unwrap_or(n))
            .collect();
        assert_eq!(
            (&seen.refer_statuses[..], &finals[..]),
            (statuses, outcomes),
            "{seen:?}\n{}",
            server.log()
        );
        assert_eq!(seen.byes.len(), 2, "both of B's dialogs hung up: {seen:?}");

        // A and C now talk through Switchboard, each to the port its answer named.
        let sb = |port: &str| SocketAddr::new(net.ip(1).parse().unwrap(), port.parse().unwrap());
        let (to_a_side, to_c_side) = (sb(&a_port), sb(&c_port));
        let talker = c_rtp.try_clone().unwrap();
        let c_talks = std::thread::spawn(move || {
            send_audio(&talker, to_c_side, &tone::sines(&[1000.0], 8000.0, 2000), 1);
        });
        let (a_heard, _) = hear(&a_rtp, Duration::from_secs(5), Duration::from_millis(500));
        c_talks.join().unwrap();
        let listener = c_rtp.try_clone().unwrap();
        let c_hears = std::thread::spawn(move || {
            hear(
                &listener,
                Duration::from_secs(5),
                Duration::from_millis(500),
            )
            .0
        });
        send_audio(&a_rtp, to_a_side, &tone::sines(&[600.0], 8000.0, 2000), 1);
        let c_heard = c_hears.join().unwrap();
        assert!(
            windows_of(&a_heard, 1000.0) >= 15,
            "A hears C's 1 kHz ({} of {} windows)\n{}",
            windows_of(&a_heard, 1000.0),
            a_heard.len() / 800,
            server.log()
        );
        assert!(
            windows_of(&c_heard, 600.0) >= 15,
            "C hears A's 600 Hz ({} of {} windows)\n{}",
            windows_of(&c_heard, 600.0),
            c_heard.len() / 800,
            server.log()
        );
        // A hangs up the joined call; C gets the BYE.
        let (a, c) = (a_call.join().unwrap(), c_call.join().unwrap());
        assert!(
            a.status.success() && c.status.success(),
            "{a:?} {c:?}\n{}",
            server.log()
        );
    });
    let calls = server.ended_calls(2);
    let first = calls
        .iter()
        .find(|c| c["trunk_in"] == "carrier-a")
        .expect("A's call");
    assert_eq!(first["status"], "completed", "{first}");
    let second = calls
        .iter()
        .find(|c| c["trunk_in"] == "carrier-c")
        .expect("C's call");
    if shards == 1 {
        assert_eq!(first["trunk_out"], "carrier-c", "C took B's place: {first}");
        assert_eq!(second["hangup_cause"], "transferred", "{second}");
        return;
    }
    // Each call kept by its shard, B's place in each taken by the leg between them; A's
    // hang-up ended both.
    for call in [first, second] {
        assert_eq!(call["trunk_out"], serde_json::Value::Null, "{call}");
        assert_eq!(call["status"], "completed", "{call}");
    }
    let carried = |n: u16| {
        let metric = format!("switchboard_shard_calls_total{{shard=\"{n}\"}}");
        server.metric(&metric).unwrap_or(0.0)
    };
    assert_eq!((carried(0), carried(1)), (1.0, 1.0), "a call on each shard");
}
