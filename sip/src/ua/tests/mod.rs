//! Two user agents talking through an in-memory network with a virtual clock: every message is
//! encoded, optionally dropped, and parsed again on the other side.

use super::*;

use crate::auth::Verdict;

use crate::message::{Method, Response, SipMessage};

use crate::transport::Transport;

use std::collections::HashMap;

mod calls;
mod registrations;
mod requests;
mod sessions;

const A: &str = "10.0.0.1:5060";

const B: &str = "10.0.0.2:5060";

fn ua(addr: &str) -> UserAgent {
    let local: SocketAddr = addr.parse().unwrap();
    UserAgent::new(UaConfig {
        listeners: vec![Listener {
            transport: Transport::Udp,
            local,
            advertised: addr.to_owned(),
        }],
        user_agent: "test".into(),
        timers: Timers::default(),
        realm: "test".into(),
        digest_algorithms: vec![crate::auth::Algorithm::Sha256, crate::auth::Algorithm::Md5],
        users: HashMap::from([("alice".to_owned(), "secret".to_owned())]),
        digest_secret: None,
        node_id: "test".into(),
        digest_uri: Default::default(),
        registrar: RegistrarConfig::default(),
        session_timers: Default::default(),
        shard: Default::default(),
    })
}

struct Net {
    a: UserAgent,
    b: UserAgent,
    now: Instant,
    /// Drop the next n messages sent by a.
    drop_from_a: usize,
    /// Record-Route values the proxies between a and b add to a's dialog-creating INVITE, top
    /// first (the proxy nearest b first).
    record_route: Vec<String>,
    /// Where each message was sent, with its first line.
    sent_to: Vec<(String, SocketAddr)>,
    wire_log: Vec<String>,
    /// Every message sent, whole.
    messages: Vec<String>,
}

impl Net {
    fn new() -> Self {
        Self {
            a: ua(A),
            b: ua(B),
            now: Instant::now(),
            drop_from_a: 0,
            record_route: Vec::new(),
            sent_to: Vec::new(),
            wire_log: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// Moves messages until both sides are quiet.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                self.wire_log.push(first_line(&t.data));
                self.sent_to.push((first_line(&t.data), t.peer.remote));
                self.messages
                    .push(String::from_utf8_lossy(&t.data).into_owned());
                if self.drop_from_a > 0 {
                    self.drop_from_a -= 1;
                    continue;
                }
                let mut msg = SipMessage::parse(&t.data).expect("a sent a parseable message");
                if let SipMessage::Request(r) = &mut msg
                    && r.method == Method::Invite
                    && r.headers.to_tag().is_none()
                {
                    // The proxies record-route: each puts its value on top.
                    for rr in self.record_route.iter().rev() {
                        let mut headers = crate::message::Headers::new();
                        headers.push("Record-Route", rr.as_str());
                        for h in r.headers.iter() {
                            headers.push(&h.name, h.value.as_str());
                        }
                        r.headers = headers;
                    }
                }
                let peer = Peer {
                    transport: Transport::Udp,
                    remote: A.parse().unwrap(),
                    local: t.peer.remote,
                    conn: None,
                };
                self.b.on_message(self.now, msg, peer);
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                self.wire_log.push(first_line(&t.data));
                self.sent_to.push((first_line(&t.data), t.peer.remote));
                self.messages
                    .push(String::from_utf8_lossy(&t.data).into_owned());
                let msg = SipMessage::parse(&t.data).expect("b sent a parseable message");
                let peer = Peer {
                    transport: Transport::Udp,
                    remote: B.parse().unwrap(),
                    local: t.peer.remote,
                    conn: None,
                };
                self.a.on_message(self.now, msg, peer);
            }
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, secs: f64) {
        let end = self.now + Duration::from_secs_f64(secs);
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.run();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn call(&mut self, credentials: Option<(&str, &str)>) -> LegId {
        let peer = self.a.peer_for(Transport::Udp, B.parse().unwrap()).unwrap();
        self.a.invite(
            self.now,
            InviteParams {
                uri: Uri::try_from("sip:+15551234@10.0.0.2:5060").unwrap(),
                from: "<sip:+15550000@10.0.0.1>".into(),
                to: "<sip:+15551234@10.0.0.2>".into(),
                peer,
                body: Some(Body::sdp("v=0\r\n")),
                credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
                max_forwards: 70,
                ring_timeout: Some(Duration::from_secs(30)),
                headers: Vec::new(),
                asserted: Vec::new(),
            },
        )
    }
}

fn first_line(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn events(ua: &mut UserAgent) -> Vec<UaEvent> {
    std::iter::from_fn(|| ua.poll_event()).collect()
}

fn incoming(ua: &mut UserAgent) -> (LegId, Request) {
    match events(ua).into_iter().next() {
        Some(UaEvent::Incoming { leg, request, .. }) => (leg, *request),
        other => panic!("expected an incoming call, got {other:?}"),
    }
}

fn leg_events(ua: &mut UserAgent) -> Vec<LegEvent> {
    events(ua)
        .into_iter()
        .map(|e| match e {
            UaEvent::Leg { event, .. } => event,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// A REGISTER for `user` (CSeq `cseq`) with an optional Authorization, fed to `net.b`; the
/// response's status line and headers.
fn register(net: &mut Net, user: &str, cseq: u32, auth: Option<&str>) -> Response {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let text = format!(
        "REGISTER sip:10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKreg{user}{cseq};rport\r\n\
         From: <sip:{user}@10.0.0.2>;tag=r\r\nTo: <sip:{user}@10.0.0.2>\r\nCall-ID: reg{user}@x\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@10.0.0.1:5060>\r\nExpires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
    );
    let peer = Peer {
        transport: Transport::Udp,
        remote: A.parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    net.b
        .on_message(net.now, SipMessage::parse(text.as_bytes()).unwrap(), peer);
    let out = net.b.poll_transmit().unwrap();
    let SipMessage::Response(r) = SipMessage::parse(&out.data).unwrap() else {
        panic!()
    };
    r
}

fn md5_challenge(r: &Response) -> String {
    r.headers
        .all("WWW-Authenticate")
        .find(|c| c.contains("MD5"))
        .unwrap()
        .to_owned()
}

/// The messages whose first line starts with `start`, whole.
fn sent(net: &Net, start: &str) -> Vec<String> {
    (net.messages.iter())
        .filter(|m| m.starts_with(start))
        .cloned()
        .collect()
}

/// Where the messages whose first line starts with `start` were sent.
fn destinations(net: &Net, start: &str) -> Vec<SocketAddr> {
    (net.sent_to.iter())
        .filter(|(line, _)| line.starts_with(start))
        .map(|(_, to)| *to)
        .collect()
}

/// The value lines of `name` in a message, in order.
fn header_lines(message: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}: ");
    (message.lines())
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect()
}

/// `message` (a request a sent) turned into `method` with CSeq `seq`, without a body, on a new
/// branch: what someone who saw the call's identifiers could forge.
fn forged(message: &str, method: &str, seq: u32) -> SipMessage {
    let head = message.split("\r\n\r\n").next().unwrap();
    let mut lines: Vec<String> = Vec::new();
    for (i, line) in head.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        if i == 0 {
            let (_, rest) = line.split_once(' ').unwrap();
            lines.push(format!("{method} {rest}"));
        } else if lower.starts_with("cseq:") {
            lines.push(format!("CSeq: {seq} {method}"));
        } else if lower.starts_with("via:") && method != "CANCEL" {
            lines.push(format!(
                "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKforged{seq}"
            ));
        } else if lower.starts_with("content-") {
            continue;
        } else {
            lines.push(line.to_owned());
        }
    }
    let text = format!("{}\r\nContent-Length: 0\r\n\r\n", lines.join("\r\n"));
    SipMessage::parse(text.as_bytes()).unwrap()
}

/// An answered call between a and b (a called), both events drained.
fn session(net: &mut Net) -> (LegId, LegId) {
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b
        .respond(net.now, b_leg, 200, Some(Body::sdp("v=0\r\nb")));
    net.run();
    leg_events(&mut net.a);
    net.a.ack(a_leg, None);
    net.run();
    leg_events(&mut net.b);
    (a_leg, b_leg)
}
