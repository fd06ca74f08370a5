//! Two user agents talking through an in-memory network with a virtual clock: every message is
//! encoded, optionally dropped, and parsed again on the other side.

use super::*;
use crate::auth::Verdict;
use crate::message::{Method, Response, SipMessage};
use crate::transport::Transport;
use std::collections::HashMap;

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
                            headers.push(h.name.as_str(), h.value.as_str());
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

#[test]
fn basic_call_then_everything_is_cleaned_up() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, invite) = incoming(&mut net.b);
    assert_eq!(invite.uri.user(), Some("+15551234"));
    assert_eq!(&invite.body[..], b"v=0\r\n");

    net.b.respond(net.now, b_leg, 180, None);
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [LegEvent::Progress {
            code: 180,
            body: None
        }]
    );

    net.b
        .respond(net.now, b_leg, 200, Some(Body::sdp("v=0\r\nanswer")));
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [LegEvent::Answered {
            body: Some(Body::sdp("v=0\r\nanswer"))
        }]
    );
    net.a.ack(a_leg, None);
    net.run();
    assert_eq!(leg_events(&mut net.b), [LegEvent::Acked { body: None }]);

    net.a.hangup(net.now, a_leg, 487);
    net.run();
    assert_eq!(leg_events(&mut net.b), [LegEvent::Bye]);
    assert_eq!(
        leg_events(&mut net.a),
        [LegEvent::Terminated { ack_timeout: false }]
    );
    assert_eq!(
        net.wire_log,
        [
            // The 180 came at once, so no 100 Trying went before it.
            "INVITE sip:+15551234@10.0.0.2:5060 SIP/2.0",
            "SIP/2.0 180 Ringing",
            "SIP/2.0 200 OK",
            "ACK sip:switchboard@10.0.0.2:5060 SIP/2.0",
            "BYE sip:switchboard@10.0.0.2:5060 SIP/2.0",
            "SIP/2.0 200 OK",
        ]
    );
    net.advance(40.0);
    assert_eq!(net.a.counts(), (0, 0), "no transaction or leg left on a");
    assert_eq!(net.b.counts(), (0, 0), "no transaction or leg left on b");
}

#[test]
fn lost_invite_is_retransmitted_and_lost_ack_retransmits_200() {
    let mut net = Net::new();
    net.drop_from_a = 1;
    let a_leg = net.call(None);
    net.run();
    assert!(events(&mut net.b).is_empty());
    net.advance(0.6);
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 200, None);
    net.run();
    leg_events(&mut net.a);
    net.drop_from_a = 1; // the ACK
    net.a.ack(a_leg, None);
    net.run();
    assert!(leg_events(&mut net.b).is_empty());
    // b retransmits its 200 at T1; a re-sends the stored ACK.
    net.advance(0.6);
    assert_eq!(leg_events(&mut net.b), [LegEvent::Acked { body: None }]);
    assert!(
        leg_events(&mut net.a).is_empty(),
        "the 2xx retransmission is not reported twice"
    );
}

#[test]
fn caller_cancels_before_answer() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 180, None);
    net.run();
    leg_events(&mut net.a);
    net.a.hangup(net.now, a_leg, 487);
    net.run();
    assert_eq!(leg_events(&mut net.b), [LegEvent::Cancelled]);
    assert!(
        leg_events(&mut net.a).is_empty(),
        "a asked for it; no failure is reported"
    );
    assert!(net.wire_log.iter().any(|l| l.starts_with("CANCEL")));
    assert!(
        net.wire_log
            .iter()
            .any(|l| l == "SIP/2.0 487 Request Terminated")
    );
    assert!(
        net.wire_log.iter().any(|l| l.starts_with("ACK")),
        "487 is ACKed"
    );
    net.advance(40.0);
    assert_eq!(net.a.counts(), (0, 0));
    assert_eq!(net.b.counts(), (0, 0));
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let mut net = Net::new();
    net.drop_from_a = 1; // the INVITE is lost, so no 100 Trying comes back yet
    let a_leg = net.call(None);
    net.run();
    net.a.hangup(net.now, a_leg, 487);
    net.run();
    assert!(
        !net.wire_log.iter().any(|l| l.starts_with("CANCEL")),
        "no CANCEL before a provisional response"
    );
    net.advance(0.6); // INVITE retransmitted, 100 Trying arrives, CANCEL follows
    assert!(net.wire_log.iter().any(|l| l.starts_with("CANCEL")));
    let (_, _) = incoming(&mut net.b);
}

#[test]
fn busy_is_reported_and_acked() {
    let mut net = Net::new();
    net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 486, None);
    net.run();
    assert_eq!(leg_events(&mut net.a), [LegEvent::Failed { code: 486 }]);
    assert_eq!(
        net.wire_log.last().map(String::as_str),
        Some("ACK sip:+15551234@10.0.0.2:5060 SIP/2.0")
    );
}

#[test]
fn ring_timeout_cancels_and_reports_408() {
    let mut net = Net::new();
    net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 180, None);
    net.run();
    leg_events(&mut net.a);
    net.advance(31.0);
    assert_eq!(leg_events(&mut net.a), [LegEvent::Failed { code: 408 }]);
    assert_eq!(leg_events(&mut net.b), [LegEvent::Cancelled]);
}

#[test]
fn proxy_challenge_is_answered_with_credentials() {
    let mut net = Net::new();
    let a_leg = net.call(Some(("alice", "secret")));
    net.run();
    let (b_leg, first) = incoming(&mut net.b);
    assert_eq!(
        net.b.verify(&first, "alice", "secret"),
        Verdict::Invalid,
        "no credentials yet"
    );
    net.b.challenge(b_leg, false);
    net.run();
    let (b_leg2, second) = incoming(&mut net.b);
    assert_eq!(net.b.verify(&second, "alice", "secret"), Verdict::Ok);
    assert_eq!(net.b.verify(&second, "alice", "other"), Verdict::Invalid);
    assert_eq!(second.headers.cseq().unwrap().seq, 2);
    net.b.respond(net.now, b_leg2, 200, None);
    net.run();
    assert_eq!(leg_events(&mut net.a), [LegEvent::Answered { body: None }]);
    net.a.ack(a_leg, None);
    net.run();
    assert_eq!(leg_events(&mut net.b), [LegEvent::Acked { body: None }]);
}

#[test]
fn reinvite_both_ways_and_glare() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 200, None);
    net.run();
    leg_events(&mut net.a);
    net.a.ack(a_leg, None);
    net.run();
    leg_events(&mut net.b);

    assert!(net.b.reinvite(net.now, b_leg, Body::sdp("v=0\r\nhold")));
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [LegEvent::ReInvite {
            body: Some(Body::sdp("v=0\r\nhold")),
            update: false,
        }]
    );
    // While a has not answered, its own re-INVITE is refused locally.
    assert!(!net.b.reinvite(net.now, b_leg, Body::sdp("v=0\r\nagain")));
    net.a
        .respond_reinvite(net.now, a_leg, 200, Some(Body::sdp("v=0\r\nheld")));
    net.run();
    assert_eq!(
        leg_events(&mut net.b),
        [LegEvent::ReInviteResult {
            code: 200,
            body: Some(Body::sdp("v=0\r\nheld"))
        }]
    );
    assert!(
        net.wire_log.iter().filter(|l| l.starts_with("ACK")).count() == 2,
        "re-INVITE 2xx ACKed"
    );

    // The caller can hang up through a BYE whose CSeq follows the re-INVITE's.
    net.b.hangup(net.now, b_leg, 487);
    net.run();
    assert_eq!(leg_events(&mut net.a), [LegEvent::Bye]);
}

/// An offerless re-INVITE (RFC 3261 §14.1): the peer's offer comes in its 2xx, and the ACK —
/// held until the answer is given — carries the answer, which reaches the peer as
/// `AckedAnswer`; a BYE while an ACK is held sends the ACK first.
#[test]
fn an_offerless_reinvite_takes_the_offer_from_the_2xx_and_answers_in_the_ack() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 200, None);
    net.run();
    leg_events(&mut net.a);
    net.a.ack(a_leg, None);
    net.run();
    leg_events(&mut net.b);
    let acks = |net: &Net| net.wire_log.iter().filter(|l| l.starts_with("ACK")).count();

    assert!(net.a.reinvite_offerless(net.now, a_leg));
    net.run();
    assert_eq!(
        leg_events(&mut net.b),
        [LegEvent::ReInvite {
            body: None,
            update: false
        }]
    );
    net.b
        .respond_reinvite(net.now, b_leg, 200, Some(Body::sdp("v=0\r\noffer")));
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [LegEvent::ReInviteResult {
            code: 200,
            body: Some(Body::sdp("v=0\r\noffer"))
        }]
    );
    assert_eq!(acks(&net), 1, "the 2xx's ACK waits for the answer");
    // No other offer while one waits for its answer.
    assert!(!net.a.reinvite(net.now, a_leg, Body::sdp("v=0\r\nother")));
    net.a.ack_reinvite(a_leg, Some(Body::sdp("v=0\r\nanswer")));
    net.run();
    assert_eq!(acks(&net), 2);
    assert_eq!(
        leg_events(&mut net.b),
        [LegEvent::AckedAnswer {
            body: Body::sdp("v=0\r\nanswer")
        }]
    );

    // The other way: the side that answered the call asks, and its CSeq may equal the
    // INVITE's (each side counts its own): its ACK's answer is still a re-INVITE's.
    assert!(net.b.reinvite_offerless(net.now, b_leg));
    net.run();
    leg_events(&mut net.a);
    net.a
        .respond_reinvite(net.now, a_leg, 200, Some(Body::sdp("v=0\r\noffer")));
    net.run();
    leg_events(&mut net.b);
    net.b.ack_reinvite(b_leg, Some(Body::sdp("v=0\r\nanswer")));
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [LegEvent::AckedAnswer {
            body: Body::sdp("v=0\r\nanswer")
        }]
    );

    // Again, and a hang-up before the answer: the ACK goes first, without one, then the BYE.
    assert!(net.a.reinvite_offerless(net.now, a_leg));
    net.run();
    leg_events(&mut net.b);
    net.b
        .respond_reinvite(net.now, b_leg, 200, Some(Body::sdp("v=0\r\noffer")));
    net.run();
    leg_events(&mut net.a);
    net.a.hangup(net.now, a_leg, 200);
    net.run();
    assert_eq!(acks(&net), 4);
    assert_eq!(leg_events(&mut net.b), [LegEvent::Bye]);
}

/// An UPDATE (RFC 3311) with an offer reaches the application like a re-INVITE's and its
/// answer goes back with no ACK either way (nor a BYE for the want of one), each side offering
/// in an UPDATE because the other listed it in its Allow; a bare UPDATE (a session refresh) is
/// answered 200 by the user agent itself, without an answer in it.
#[test]
fn an_update_is_answered_without_an_ack_and_a_bare_one_refreshes_the_session() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 200, None);
    net.run();
    leg_events(&mut net.a);
    net.a.ack(a_leg, None);
    net.run();
    leg_events(&mut net.b);

    // b's 200 listed UPDATE: a's new offer goes in one.
    assert!(net.a.offer(net.now, a_leg, Body::sdp("v=0\r\nhold"), true));
    net.run();
    assert_eq!(
        leg_events(&mut net.b),
        [LegEvent::ReInvite {
            body: Some(Body::sdp("v=0\r\nhold")),
            update: true,
        }]
    );
    net.b
        .respond_reinvite(net.now, b_leg, 200, Some(Body::sdp("v=0\r\nheld")));
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [LegEvent::ReInviteResult {
            code: 200,
            body: Some(Body::sdp("v=0\r\nheld"))
        }]
    );
    let count =
        |net: &Net, start: &str| net.wire_log.iter().filter(|l| l.starts_with(start)).count();
    assert_eq!(count(&net, "UPDATE"), 1, "{:#?}", net.wire_log);
    net.advance(40.0);
    assert_eq!(
        count(&net, "ACK"),
        1,
        "only the INVITE's 2xx: {:#?}",
        net.wire_log
    );
    assert_eq!(count(&net, "BYE"), 0, "{:#?}", net.wire_log);
    assert!(leg_events(&mut net.a).is_empty() && leg_events(&mut net.b).is_empty());

    // a's INVITE listed UPDATE too (the user agent's Allow): b's offer goes in one as well.
    assert!(net.b.offer(net.now, b_leg, Body::sdp("v=0\r\nagain"), true));
    net.run();
    assert_eq!(count(&net, "UPDATE"), 2, "{:#?}", net.wire_log);
    net.a
        .respond_reinvite(net.now, a_leg, 200, Some(Body::sdp("v=0\r\nok")));
    net.run();
    leg_events(&mut net.b);

    // A session refresh: an UPDATE without a body, answered at once and not passed on.
    let ack = (net.messages.iter())
        .find(|m| m.starts_with("ACK"))
        .unwrap()
        .clone();
    let from_a = Peer {
        transport: Transport::Udp,
        remote: A.parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    net.b
        .on_message(net.now, forged(&ack, "UPDATE", 20), from_a);
    let reply = String::from_utf8_lossy(&net.b.poll_transmit().unwrap().data).into_owned();
    assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains("Content-Length: 0"),
        "no answer without an offer: {reply}"
    );
    assert!(
        reply.contains("\r\nContact: "),
        "a target refresh's 2xx has a Contact: {reply}"
    );
    assert!(leg_events(&mut net.b).is_empty());
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

#[test]
fn register_with_digest_then_lookup() {
    let mut net = Net::new();
    let r = register(&mut net, "alice", 1, None);
    assert_eq!(r.code, 401);
    let creds = crate::auth::answer_challenge(
        &md5_challenge(&r),
        "REGISTER",
        "sip:10.0.0.2",
        "alice",
        "secret",
        1,
    )
    .unwrap();
    assert_eq!(register(&mut net, "alice", 2, Some(&creds)).code, 200);
    let bindings = net.b.lookup(net.now, "alice");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].target.remote, A.parse().unwrap());
    assert!(
        net.b
            .lookup(net.now + Duration::from_secs(601), "alice")
            .is_empty()
    );
    // The same credentials again (a captured REGISTER replayed) are refused with a stale
    // challenge; signed for another Request-URI, they are refused outright.
    let replay = register(&mut net, "alice", 3, Some(&creds));
    assert_eq!(replay.code, 401);
    assert!(md5_challenge(&replay).contains("stale=true"));
    let other_uri = crate::auth::answer_challenge(
        &md5_challenge(&replay),
        "REGISTER",
        "sip:elsewhere.example",
        "alice",
        "secret",
        1,
    )
    .unwrap();
    let refused = register(&mut net, "alice", 4, Some(&other_uri));
    assert_eq!(refused.code, 401);
    assert!(!md5_challenge(&refused).contains("stale"));
}

/// A name that is no one's is answered exactly like a known name with a wrong password: a
/// challenge, then the same 401 — never a 404 that would tell a scanner which names exist.
#[test]
fn register_does_not_reveal_which_users_exist() {
    let mut net = Net::new();
    let shape = |r: &Response| {
        let challenges: Vec<_> = r.headers.all("WWW-Authenticate").collect();
        (
            r.code,
            r.reason.clone(),
            challenges.len(),
            challenges.iter().any(|c| c.contains("stale")),
        )
    };
    let mut answers = Vec::new();
    for (user, cseq) in [("alice", 1), ("mallory", 1)] {
        let first = register(&mut net, user, cseq, None);
        let creds = crate::auth::answer_challenge(
            &md5_challenge(&first),
            "REGISTER",
            "sip:10.0.0.2",
            user,
            "guess",
            1,
        )
        .unwrap();
        let second = register(&mut net, user, cseq + 1, Some(&creds));
        answers.push((shape(&first), shape(&second)));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!((answers[0].0).0, 401);
    assert_eq!((answers[0].1).0, 401);
}

#[test]
fn stray_in_dialog_requests_get_481() {
    let mut net = Net::new();
    let text = "BYE sip:x@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKbye\r\nFrom: <sip:a@x>;tag=1\r\n\
        To: <sip:b@y>;tag=2\r\nCall-ID: nope\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    let peer = Peer {
        transport: Transport::Udp,
        remote: A.parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    net.b
        .on_message(net.now, SipMessage::parse(text.as_bytes()).unwrap(), peer);
    assert_eq!(
        first_line(&net.b.poll_transmit().unwrap().data),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
}

#[test]
fn merged_request_on_another_branch_gets_482() {
    let mut net = Net::new();
    net.call(None);
    net.run();
    let (_, invite) = incoming(&mut net.b);
    // The same INVITE through another path: same Call-ID, From tag and CSeq, new branch.
    let mut again = invite.clone();
    again.headers.set(
        "Via",
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKotherpath;rport",
    );
    let peer = Peer {
        transport: Transport::Udp,
        remote: A.parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    net.b.on_message(net.now, SipMessage::Request(again), peer);
    assert!(events(&mut net.b).is_empty(), "not a second call");
    let replies: Vec<String> = std::iter::from_fn(|| net.b.poll_transmit())
        .map(|t| first_line(&t.data))
        .collect();
    assert_eq!(replies, ["SIP/2.0 482 Loop Detected"]);
    assert_eq!(net.b.counts().1, 1, "one leg");
}

#[test]
fn options_is_answered_200_with_allow() {
    let mut net = Net::new();
    let text = "OPTIONS sip:10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKopt;rport\r\nFrom: <sip:a@x>;tag=1\r\n\
        To: <sip:10.0.0.2>\r\nCall-ID: opt@x\r\nCSeq: 7 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let peer = Peer {
        transport: Transport::Udp,
        remote: A.parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    net.b
        .on_message(net.now, SipMessage::parse(text.as_bytes()).unwrap(), peer);
    let reply = net.b.poll_transmit().unwrap();
    let SipMessage::Response(r) = SipMessage::parse(&reply.data).unwrap() else {
        panic!()
    };
    assert_eq!(r.code, 200);
    assert_eq!(r.headers.get("Allow"), Some(ALLOW));
    assert_eq!(r.headers.cseq().unwrap().seq, 7);
    assert!(
        events(&mut net.b).is_empty(),
        "answered by the user agent itself"
    );
}

/// A ping is an OPTIONS outside any dialog that b answers itself; its 200 comes back as a
/// Pong. A ping nobody answers is retransmitted and reported as 408 at 64·T1, once.
#[test]
fn pings_report_the_answer_or_a_timeout() {
    let mut net = Net::new();
    let peer = net.a.peer_for(Transport::Udp, B.parse().unwrap()).unwrap();
    let uri = Uri::try_from("sip:10.0.0.2:5060").unwrap();
    let ping = net.a.ping(net.now, peer, &uri).unwrap();
    net.run();
    assert!(net.wire_log[0].starts_with("OPTIONS sip:10.0.0.2:5060 SIP/2.0"));
    assert!(events(&mut net.b).is_empty());
    match events(&mut net.a).as_slice() {
        [UaEvent::Pong { ping: p, code: 200 }] => assert_eq!(*p, ping),
        other => panic!("{other:?}"),
    }

    net.drop_from_a = usize::MAX;
    let silent = net.a.ping(net.now, peer, &uri).unwrap();
    net.advance(31.0);
    assert!(events(&mut net.a).is_empty(), "not before 64·T1");
    net.advance(2.0);
    match events(&mut net.a).as_slice() {
        [UaEvent::Pong { ping: p, code: 408 }] => assert_eq!(*p, silent),
        other => panic!("{other:?}"),
    }
    let sent = net
        .wire_log
        .iter()
        .filter(|l| l.starts_with("OPTIONS"))
        .count();
    assert!(sent > 5, "retransmitted: {:?}", net.wire_log);
    net.advance(60.0);
    assert!(events(&mut net.a).is_empty());
    assert_eq!(net.a.counts(), (0, 0), "nothing left behind");
}

#[test]
fn an_invite_carries_the_applications_headers_but_none_that_would_forge_the_call() {
    let mut net = Net::new();
    let peer = net.a.peer_for(Transport::Udp, B.parse().unwrap()).unwrap();
    let header = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    net.a.invite(
        net.now,
        InviteParams {
            uri: Uri::try_from("sip:+15551234@10.0.0.2:5060").unwrap(),
            from: "\"Seed \\\"Bot\\\"\" <sip:+15550000@10.0.0.1>".into(),
            to: "<sip:+15551234@10.0.0.2>".into(),
            peer,
            body: Some(Body::sdp("v=0\r\n")),
            credentials: None,
            max_forwards: 70,
            ring_timeout: None,
            headers: vec![
                header("X-Seed-Id", "42"),
                header("head_1", "val_1"),
                header("Via", "SIP/2.0/UDP 6.6.6.6"),
                header("p-asserted-identity", "<sip:+15559999@evil>"),
                header("X-Smuggle", "a\r\nBYE: x"),
                header("X Bad", "v"),
            ],
            asserted: Vec::new(),
        },
    );
    net.run();
    let (_, invite) = incoming(&mut net.b);
    let h = &invite.headers;
    assert_eq!(h.get("X-Seed-Id"), Some("42"));
    assert_eq!(h.get("head_1"), Some("val_1"));
    assert_eq!(
        h.get("From")
            .map(|f| f.starts_with("\"Seed \\\"Bot\\\"\" <sip:")),
        Some(true)
    );
    assert!(!h.get("Via").unwrap().contains("6.6.6.6"));
    for absent in ["P-Asserted-Identity", "X-Smuggle", "BYE", "X Bad"] {
        assert_eq!(h.get(absent), None, "{absent}");
    }
    assert!(is_custom_header(
        "User-to-User",
        "56a390f3d2b7310023a2;encoding=hex"
    ));
    assert!(!is_custom_header("Content-Length", "0"));
    assert!(!is_custom_header("X-Long", &"v".repeat(1025)));
}

/// An application's headers go on the answer and on the BYE (never the UA's own); a received
/// INVITE shows an application its X-, User-to-User and Diversion headers, at most 20, and
/// nothing else of the SIP.
#[test]
fn answers_and_byes_carry_the_applications_headers_and_invites_show_theirs() {
    let mut net = Net::new();
    let header = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond_with(
        net.now,
        b_leg,
        200,
        Some(Body::sdp("v=0\r\nanswer")),
        &[
            header("X-Answered-By", "bot 7"),
            header("Contact", "<sip:evil>"),
        ],
    );
    net.run();
    let ok = net
        .messages
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200"))
        .unwrap();
    assert!(ok.contains("X-Answered-By: bot 7\r\n"), "{ok}");
    assert!(!ok.contains("evil"), "{ok}");
    events(&mut net.a);
    net.a.ack(a_leg, None);
    net.run();
    events(&mut net.b);
    net.b.hangup_with(
        net.now,
        b_leg,
        200,
        &[header("X-Reason", "done"), header("CSeq", "1 BYE")],
    );
    net.run();
    let bye = net.messages.iter().find(|m| m.starts_with("BYE ")).unwrap();
    assert!(bye.contains("X-Reason: done\r\n"), "{bye}");
    assert_eq!(bye.matches("CSeq:").count(), 1, "{bye}");

    let mut raw = String::from(
        "INVITE sip:+15551234@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
         From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
         Max-Forwards: 70\r\nContact: <sip:a@10.0.0.1>\r\nUser-to-User: 56a390f3;encoding=hex\r\n\
         Diversion: <sip:+15550100@x>;reason=unconditional\r\nP-Asserted-Identity: <sip:1@x>\r\n\
         X-Trace: abc\r\nX-Control: a\u{7}b\r\n",
    );
    for i in 0..30 {
        raw.push_str(&format!("X-Many-{i}: {i}\r\n"));
    }
    raw.push_str("Content-Length: 0\r\n\r\n");
    let SipMessage::Request(request) = SipMessage::parse(raw.as_bytes()).unwrap() else {
        panic!("a request")
    };
    let shown = shown_headers(&request);
    assert_eq!(shown.len(), 20);
    assert_eq!(
        shown[..3],
        [
            header("User-to-User", "56a390f3;encoding=hex"),
            header("Diversion", "<sip:+15550100@x>;reason=unconditional"),
            header("X-Trace", "abc"),
        ]
    );
    assert!(
        shown
            .iter()
            .all(|(n, _)| n != "P-Asserted-Identity" && n != "X-Control")
    );
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

/// A call through two record-routing proxies, a ─ P1 (10.0.0.8:5070) ─ P2 (10.0.0.9) ─ b:
/// b's 180 and 200 carry the Record-Route set in order; a's ACK, re-INVITE and BYE go to P1
/// with the routes reversed; b's BYE goes to P2 with them in order; a re-INVITE's answer does
/// not change the route set (RFC 3261 §12.1, §12.2).
#[test]
fn in_dialog_requests_follow_the_record_route_set_both_ways() {
    let p1: SocketAddr = "10.0.0.8:5070".parse().unwrap();
    let p2: SocketAddr = "10.0.0.9:5060".parse().unwrap();
    let mut net = Net::new();
    net.record_route = vec![
        "<sip:10.0.0.9;lr;ftag=x>".into(),
        "<sip:10.0.0.8:5070;lr>".into(),
    ];
    let a_leg = net.call(None);
    net.run();
    let (b_leg, invite) = incoming(&mut net.b);
    assert_eq!(invite.headers.all("Record-Route").count(), 2);
    net.b.respond(net.now, b_leg, 180, None);
    net.b
        .respond(net.now, b_leg, 200, Some(Body::sdp("v=0\r\n")));
    net.run();
    for response in [sent(&net, "SIP/2.0 180"), sent(&net, "SIP/2.0 200")] {
        assert_eq!(
            header_lines(&response[0], "Record-Route"),
            ["<sip:10.0.0.9;lr;ftag=x>", "<sip:10.0.0.8:5070;lr>"],
            "{}",
            response[0]
        );
    }
    net.a.ack(a_leg, None);
    net.run();
    assert_eq!(
        leg_events(&mut net.b).last(),
        Some(&LegEvent::Acked { body: None })
    );
    let ack = &sent(&net, "ACK")[0];
    assert!(ack.starts_with("ACK sip:switchboard@10.0.0.2:5060 SIP/2.0\r\n"));
    let reversed = ["<sip:10.0.0.8:5070;lr>", "<sip:10.0.0.9;lr;ftag=x>"];
    assert_eq!(header_lines(ack, "Route"), reversed, "{ack}");
    assert_eq!(destinations(&net, "ACK"), [p1]);

    // A re-INVITE whose answer carries another Record-Route leaves the route set alone.
    assert!(net.a.reinvite(net.now, a_leg, Body::sdp("v=0\r\nhold")));
    net.run();
    assert_eq!(header_lines(&sent(&net, "INVITE")[1], "Route"), reversed);
    assert_eq!(destinations(&net, "INVITE")[1], p1);
    net.b
        .respond_reinvite(net.now, b_leg, 200, Some(Body::sdp("v=0\r\n")));
    net.run();
    let reinvite_ok = sent(&net, "SIP/2.0 200").pop().unwrap();
    assert!(reinvite_ok.contains("CSeq: 2 INVITE"), "{reinvite_ok}");
    assert_eq!(destinations(&net, "ACK"), [p1, p1]);

    net.b.hangup(net.now, b_leg, 487);
    net.run();
    let bye = &sent(&net, "BYE")[0];
    assert!(
        bye.starts_with("BYE sip:switchboard@10.0.0.1:5060 SIP/2.0\r\n"),
        "{bye}"
    );
    assert_eq!(
        header_lines(bye, "Route"),
        ["<sip:10.0.0.9;lr;ftag=x>", "<sip:10.0.0.8:5070;lr>"]
    );
    assert_eq!(destinations(&net, "BYE"), [p2]);
    assert!(leg_events(&mut net.a).contains(&LegEvent::Bye));
}

/// A strict router (no `lr`) as the first hop: its URI becomes the Request-URI and the
/// remote target goes last among the Route headers (§12.2.1.1); the request goes to it.
#[test]
fn a_strict_router_first_gets_the_request_uri() {
    let mut net = Net::new();
    net.record_route = vec!["<sip:10.0.0.9:5080>".into()];
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 200, None);
    net.run();
    net.a.ack(a_leg, None);
    net.run();
    let ack = &sent(&net, "ACK")[0];
    assert!(
        ack.starts_with("ACK sip:10.0.0.9:5080 SIP/2.0\r\n"),
        "{ack}"
    );
    assert_eq!(
        header_lines(ack, "Route"),
        ["<sip:switchboard@10.0.0.2:5060>"]
    );
    net.a.hangup(net.now, a_leg, 487);
    net.run();
    assert_eq!(
        destinations(&net, "BYE"),
        ["10.0.0.9:5080".parse::<SocketAddr>().unwrap()]
    );
}

/// Without a route set, in-dialog requests go where the INVITE came from or went (the
/// caller's source address, the trunk), and responses carry no Record-Route of ours.
#[test]
fn without_a_route_set_requests_go_to_the_peer_and_nothing_is_record_routed() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 200, None);
    net.run();
    net.a.ack(a_leg, None);
    net.b.hangup(net.now, b_leg, 487);
    net.run();
    assert!(net.messages.iter().all(|m| !m.contains("Route:")));
    let a: SocketAddr = A.parse().unwrap();
    let b: SocketAddr = B.parse().unwrap();
    assert_eq!(destinations(&net, "ACK"), [b]);
    assert_eq!(destinations(&net, "BYE"), [a]);
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

#[test]
fn cancel_and_bye_from_elsewhere_than_the_dialogs_peer_get_481() {
    let stranger = Peer {
        transport: Transport::Udp,
        remote: "10.0.0.9:5060".parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b.respond(net.now, b_leg, 180, None);
    net.run();
    leg_events(&mut net.a);

    // A CANCEL matching the INVITE, but not from where the INVITE came.
    let invite = net.messages[0].clone();
    net.b
        .on_message(net.now, forged(&invite, "CANCEL", 1), stranger);
    let reply = net.b.poll_transmit().unwrap();
    assert_eq!(
        first_line(&reply.data),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert_eq!(reply.peer.remote, stranger.remote);
    assert!(leg_events(&mut net.b).is_empty(), "the call rings on");

    net.b.respond(net.now, b_leg, 200, None);
    net.run();
    leg_events(&mut net.a);
    net.a.ack(a_leg, None);
    net.run();
    assert_eq!(leg_events(&mut net.b), [LegEvent::Acked { body: None }]);

    // A BYE with the dialog's identifiers, from a stranger: refused, the call stays up.
    let ack = net
        .messages
        .iter()
        .find(|m| m.starts_with("ACK"))
        .unwrap()
        .clone();
    net.b.on_message(net.now, forged(&ack, "BYE", 5), stranger);
    assert_eq!(
        first_line(&net.b.poll_transmit().unwrap().data),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert!(leg_events(&mut net.b).is_empty());
    // The caller's own BYE ends it.
    net.a.hangup(net.now, a_leg, 487);
    net.run();
    assert_eq!(leg_events(&mut net.b), [LegEvent::Bye]);
}

#[test]
fn a_bye_from_another_address_of_the_legs_trunk_ends_the_call() {
    let sibling = Peer {
        transport: Transport::Udp,
        remote: "10.0.0.7:5060".parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    let stranger = Peer {
        remote: "10.0.1.9:5060".parse().unwrap(),
        ..sibling
    };
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    // The carrier's SBCs are 10.0.0.0/24.
    let trunk = SourceCheck(std::sync::Arc::new(
        |ip: std::net::IpAddr| matches!(ip, std::net::IpAddr::V4(v4) if v4.octets()[..3] == [10, 0, 0]),
    ));
    net.b.accept_in_dialog_from(b_leg, trunk);
    net.b.respond(net.now, b_leg, 200, None);
    net.run();
    leg_events(&mut net.a);
    net.a.ack(a_leg, None);
    net.run();
    assert_eq!(leg_events(&mut net.b), [LegEvent::Acked { body: None }]);
    let ack = net
        .messages
        .iter()
        .find(|m| m.starts_with("ACK"))
        .unwrap()
        .clone();
    // Outside the trunk's addresses: refused.
    net.b.on_message(net.now, forged(&ack, "BYE", 5), stranger);
    assert_eq!(
        first_line(&net.b.poll_transmit().unwrap().data),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert!(leg_events(&mut net.b).is_empty());
    // Another of the trunk's addresses: the call ends.
    net.b.on_message(net.now, forged(&ack, "BYE", 6), sibling);
    let reply = net.b.poll_transmit().unwrap();
    assert_eq!(first_line(&reply.data), "SIP/2.0 200 OK");
    assert_eq!(reply.peer.remote, sibling.remote);
    assert_eq!(leg_events(&mut net.b), [LegEvent::Bye]);
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

/// Session timers (RFC 4028): a's INVITE asks for 1800 s; b agrees, a (the caller, which
/// supports timers) to refresh. a refreshes at half the interval with a bare UPDATE that b
/// answers itself, so the call lasts; once a's refreshes stop reaching b, b ends the session
/// 32 s before the interval runs out, with a BYE and an event.
#[test]
fn a_refreshed_session_lasts_and_an_unrefreshed_one_is_ended() {
    let mut net = Net::new();
    let (_, _) = session(&mut net);
    let invite = net.messages[0].clone();
    assert!(invite.contains("\r\nSession-Expires: 1800\r\n"), "{invite}");
    assert!(
        invite.contains("\r\nSupported: 100rel, timer\r\n"),
        "{invite}"
    );
    assert!(invite.contains("\r\nMin-SE: 90\r\n"), "{invite}");
    let ok = sent(&net, "SIP/2.0 200").remove(0);
    assert!(
        ok.contains("\r\nSession-Expires: 1800;refresher=uac\r\n"),
        "{ok}"
    );
    assert!(ok.contains("\r\nRequire: timer\r\n"), "{ok}");

    net.advance(899.0);
    assert!(sent(&net, "UPDATE").is_empty());
    net.advance(2.0);
    let refresh = sent(&net, "UPDATE");
    assert_eq!(refresh.len(), 1, "{:#?}", net.wire_log);
    assert!(
        refresh[0].contains("Content-Length: 0") && refresh[0].contains("refresher=uac"),
        "{}",
        refresh[0]
    );
    // Three intervals on, refreshed every half: still up, and neither side heard a thing.
    net.advance(3.0 * 1800.0);
    assert_eq!(sent(&net, "UPDATE").len(), 7, "{:#?}", net.wire_log);
    assert!(sent(&net, "BYE").is_empty());
    assert!(leg_events(&mut net.a).is_empty() && leg_events(&mut net.b).is_empty());

    // a's refreshes (and everything else of a's) are lost from here.
    net.drop_from_a = usize::MAX;
    net.advance(1800.0);
    let ended = leg_events(&mut net.b);
    assert_eq!(ended.first(), Some(&LegEvent::SessionExpired), "{ended:?}");
    assert!(
        net.wire_log.iter().any(|l| l.starts_with("BYE")),
        "b hangs up: {:#?}",
        net.wire_log
    );
}

/// A session shorter than b accepts gets 422 with b's Min-SE, and a asks again for that long
/// (RFC 4028 §7.4, §8.1); the call goes on with it.
#[test]
fn a_session_too_brief_is_refused_with_422_and_asked_again_longer() {
    let mut net = Net::new();
    net.b.config.session_timers.min_se = Duration::from_secs(3600);
    let (_, _) = session(&mut net);
    let refused = sent(&net, "SIP/2.0 422");
    assert_eq!(refused.len(), 1, "{:#?}", net.wire_log);
    assert!(
        refused[0].contains("\r\nMin-SE: 3600\r\n"),
        "{}",
        refused[0]
    );
    let invites = sent(&net, "INVITE");
    assert_eq!(invites.len(), 2, "{:#?}", net.wire_log);
    assert!(
        invites[1].contains("\r\nSession-Expires: 3600\r\n"),
        "{}",
        invites[1]
    );
    assert!(
        invites[1].contains("\r\nCSeq: 2 INVITE\r\n"),
        "{}",
        invites[1]
    );
    let ok = sent(&net, "SIP/2.0 200").remove(0);
    assert!(
        ok.contains("\r\nSession-Expires: 3600;refresher=uac\r\n"),
        "{ok}"
    );
}

/// To a peer whose Allow lacks UPDATE the refresh is a re-INVITE repeating the description
/// last sent, ACKed, and not reported to the application.
#[test]
fn a_refresh_to_a_peer_without_update_is_a_re_invite_of_the_same_description() {
    let mut net = Net::new();
    let (a_leg, b_leg) = session(&mut net);
    net.a.legs.get_mut(&a_leg).unwrap().peer_allows_update = false;
    net.advance(901.0);
    let refresh: Vec<String> = (net.messages.iter())
        .filter(|m| m.starts_with("INVITE") && m.contains("CSeq: 2 INVITE"))
        .cloned()
        .collect();
    assert_eq!(refresh.len(), 1, "{:#?}", net.wire_log);
    assert!(
        refresh[0].ends_with("\r\n\r\nv=0\r\n"),
        "a's offer again: {}",
        refresh[0]
    );
    // b's application answers the re-INVITE like any; a ACKs, and its own hears nothing.
    let offered = leg_events(&mut net.b);
    assert!(
        matches!(offered[..], [LegEvent::ReInvite { update: false, .. }]),
        "{offered:?}"
    );
    net.b
        .respond_reinvite(net.now, b_leg, 200, Some(Body::sdp("v=0\r\nb")));
    net.run();
    assert_eq!(
        net.wire_log.iter().filter(|l| l.starts_with("ACK")).count(),
        2,
        "{:#?}",
        net.wire_log
    );
    assert!(leg_events(&mut net.a).is_empty());
}

/// RFC 3262: a's INVITE supports 100rel, so b's 183 with a description goes reliably
/// (Require: 100rel, an RSeq) and b's 200 waits for its PRACK; a PRACKs it once (RAck: the
/// RSeq and the INVITE's CSeq), b answers the PRACK and lets the 200 go. A 180 without a
/// description goes as before.
#[test]
fn a_provisional_with_a_description_is_sent_reliably_and_the_answer_waits_for_its_prack() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, invite) = incoming(&mut net.b);
    assert!(invite.headers.tokens("Supported").any(|t| t == "100rel"));
    net.b.respond(net.now, b_leg, 180, None);
    net.b
        .respond(net.now, b_leg, 183, Some(Body::sdp("v=0\r\nearly")));
    net.b
        .respond(net.now, b_leg, 200, Some(Body::sdp("v=0\r\nearly")));
    // Nothing moved yet: the 200 is held until the 183's PRACK.
    let held: Vec<String> = std::iter::from_fn(|| net.b.poll_transmit())
        .map(|t| String::from_utf8_lossy(&t.data).into_owned())
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held[0].starts_with("SIP/2.0 180") && !held[0].contains("RSeq"));
    assert!(held[1].starts_with("SIP/2.0 183"));
    assert!(held[1].contains("Require: 100rel\r\n"), "{}", held[1]);
    let rseq: u32 = held[1]
        .lines()
        .find_map(|l| l.strip_prefix("RSeq: "))
        .unwrap()
        .parse()
        .unwrap();
    // Deliver them (the rig re-reads what b queued).
    for text in &held {
        let peer = Peer {
            transport: Transport::Udp,
            remote: B.parse().unwrap(),
            local: A.parse().unwrap(),
            conn: None,
        };
        net.a
            .on_message(net.now, SipMessage::parse(text.as_bytes()).unwrap(), peer);
    }
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [
            LegEvent::Progress {
                code: 180,
                body: None
            },
            LegEvent::Progress {
                code: 183,
                body: Some(Body::sdp("v=0\r\nearly"))
            },
            LegEvent::Answered {
                body: Some(Body::sdp("v=0\r\nearly"))
            }
        ]
    );
    let prack = net
        .messages
        .iter()
        .find(|m| m.starts_with("PRACK "))
        .expect("a PRACK");
    assert!(
        prack.contains(&format!("RAck: {rseq} 1 INVITE\r\n")),
        "{prack}"
    );
    assert!(prack.contains("CSeq: 2 PRACK\r\n"), "{prack}");
    let after_prack: Vec<&String> = net
        .wire_log
        .iter()
        .skip_while(|l| !l.starts_with("PRACK"))
        .collect();
    assert_eq!(
        after_prack[1], "SIP/2.0 200 OK",
        "the PRACK's 200: {after_prack:?}"
    );
    assert_eq!(
        after_prack[2], "SIP/2.0 200 OK",
        "then the INVITE's: {after_prack:?}"
    );
    net.a.ack(a_leg, None);
    net.run();
    assert_eq!(leg_events(&mut net.b), [LegEvent::Acked { body: None }]);
}

/// A reliable 183 whose PRACKs are all lost is retransmitted from T1, doubling, and at 64·T1
/// the INVITE is refused with 504 (RFC 3262 §3) and the leg reports it; the caller's side
/// reports the 183 once however often it came.
#[test]
fn an_unacknowledged_reliable_provisional_is_retransmitted_then_the_invite_refused() {
    let mut net = Net::new();
    net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.drop_from_a = usize::MAX;
    net.b
        .respond(net.now, b_leg, 183, Some(Body::sdp("v=0\r\nearly")));
    net.run();
    net.advance(31.0);
    assert!(events(&mut net.b).is_empty(), "not before 64·T1");
    let sent = net
        .wire_log
        .iter()
        .filter(|l| l.starts_with("SIP/2.0 183"))
        .count();
    assert!(
        (5..=7).contains(&sent),
        "from T1, doubling: {sent} in {:?}",
        net.wire_log
    );
    net.advance(2.0);
    assert_eq!(leg_events(&mut net.b), [LegEvent::PrackTimeout]);
    assert!(
        net.wire_log
            .iter()
            .any(|l| l == "SIP/2.0 504 Server Time-out"),
        "{:?}",
        net.wire_log
    );
    let progress = leg_events(&mut net.a)
        .into_iter()
        .filter(|e| matches!(e, LegEvent::Progress { .. }))
        .count();
    assert_eq!(progress, 1);
}

/// REFER (RFC 3515) in a confirmed dialog: without a Refer-To it is refused with 400; with
/// one the target goes up as an event and the transaction waits for the answer, a second
/// REFER crossing it getting 491; after 202 the NOTIFYs carry the new call's status line as
/// `message/sipfrag`, the last one ending the subscription.
#[test]
fn a_refer_is_handed_up_answered_and_followed_by_notifies() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b
        .respond(net.now, b_leg, 200, Some(Body::sdp("v=0\r\n")));
    net.run();
    net.a.ack(a_leg, None);
    net.run();
    let _ = events(&mut net.a);
    let _ = events(&mut net.b);
    let header = |m: &str, name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let (invite, ok) = (net.messages[0].clone(), sent(&net, "SIP/2.0 200").remove(0));
    let refer = |cseq: u32, refer_to: Option<&str>| {
        let target = refer_to.map_or(String::new(), |t| format!("Refer-To: {t}\r\n"));
        format!(
            "REFER sip:switchboard@10.0.0.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKr{cseq}\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} REFER\r\nMax-Forwards: 70\r\n{target}Content-Length: 0\r\n\r\n",
            header(&invite, "From"),
            header(&ok, "To"),
            header(&invite, "Call-ID"),
        )
    };
    let peer = Peer {
        transport: Transport::Udp,
        remote: A.parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    let deliver = |net: &mut Net, text: String| {
        net.b
            .on_message(net.now, SipMessage::parse(text.as_bytes()).unwrap(), peer);
        std::iter::from_fn(|| net.b.poll_transmit())
            .map(|t| first_line(&t.data))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        deliver(&mut net, refer(5, None)),
        ["SIP/2.0 400 Bad Request"]
    );
    let target = "<sip:+15556666@10.0.0.2>";
    assert!(deliver(&mut net, refer(6, Some(target))).is_empty());
    assert_eq!(
        leg_events(&mut net.b),
        [LegEvent::Refer {
            target: target.into()
        }]
    );
    assert_eq!(
        deliver(&mut net, refer(7, Some(target))),
        ["SIP/2.0 491 Request Pending"]
    );
    net.b.answer_refer(net.now, b_leg, 202);
    assert!(net.b.notify_refer(net.now, b_leg, 100));
    assert!(net.b.notify_refer(net.now, b_leg, 200));
    net.run();
    let notifies: Vec<&String> = net
        .messages
        .iter()
        .filter(|m| m.starts_with("NOTIFY "))
        .collect();
    assert_eq!(notifies.len(), 2, "{:?}", net.wire_log);
    assert!(notifies[0].contains("Event: refer\r\n"));
    assert!(notifies[0].contains("Subscription-State: active;expires=60\r\n"));
    assert!(notifies[0].contains("Content-Type: message/sipfrag;version=2.0\r\n"));
    assert!(
        notifies[0].ends_with("\r\n\r\nSIP/2.0 100 Trying\r\n"),
        "{}",
        notifies[0]
    );
    assert!(notifies[1].contains("Subscription-State: terminated;reason=noresource\r\n"));
    assert!(
        notifies[1].ends_with("SIP/2.0 200 OK\r\n"),
        "{}",
        notifies[1]
    );
    assert!(
        net.wire_log.iter().any(|l| l == "SIP/2.0 202 Accepted"),
        "{:?}",
        net.wire_log
    );
}

/// A PRACK that names no outstanding reliable provisional (another RSeq, another CSeq, or
/// none) gets 481 (RFC 3262 §3) and leaves the provisional outstanding; the right one, 200.
#[test]
fn a_prack_for_nothing_outstanding_gets_481() {
    let mut net = Net::new();
    net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.drop_from_a = usize::MAX;
    net.b
        .respond(net.now, b_leg, 183, Some(Body::sdp("v=0\r\nearly")));
    net.run();
    let header = |m: &str, name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let (invite, early) = (net.messages[0].clone(), sent(&net, "SIP/2.0 183").remove(0));
    let rseq = header(&early, "RSeq");
    let prack = |cseq: u32, rack: &str| {
        format!(
            "PRACK sip:switchboard@10.0.0.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp{cseq}\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} PRACK\r\nMax-Forwards: 70\r\n{rack}Content-Length: 0\r\n\r\n",
            header(&invite, "From"),
            header(&early, "To"),
            header(&invite, "Call-ID"),
        )
    };
    let peer = Peer {
        transport: Transport::Udp,
        remote: A.parse().unwrap(),
        local: B.parse().unwrap(),
        conn: None,
    };
    let deliver = |net: &mut Net, text: String| {
        net.b
            .on_message(net.now, SipMessage::parse(text.as_bytes()).unwrap(), peer);
        std::iter::from_fn(|| net.b.poll_transmit())
            .map(|t| first_line(&t.data))
            .collect::<Vec<_>>()
    };
    let gone = ["SIP/2.0 481 Call/Transaction Does Not Exist"];
    let wrong_rseq = format!("RAck: {} 1 INVITE\r\n", rseq.parse::<u32>().unwrap() + 1);
    assert_eq!(deliver(&mut net, prack(10, &wrong_rseq)), gone);
    assert_eq!(
        deliver(&mut net, prack(11, &format!("RAck: {rseq} 2 INVITE\r\n"))),
        gone
    );
    assert_eq!(deliver(&mut net, prack(12, "")), gone);
    let right = format!("RAck: {rseq} 1 INVITE\r\n");
    assert_eq!(deliver(&mut net, prack(13, &right)), ["SIP/2.0 200 OK"]);
    // Acknowledged: no more retransmissions of the 183.
    let before = net.wire_log.len();
    net.advance(10.0);
    assert!(
        !net.wire_log[before..]
            .iter()
            .any(|l| l.starts_with("SIP/2.0 183")),
        "{:?}",
        &net.wire_log[before..]
    );
}

/// A client registration: challenged once, answered with the credentials, bound at the
/// registrar; a wrong password ends in the 401 after one answered challenge (no loop); expires
/// 0 removes the binding.
#[test]
fn a_registration_answers_one_challenge_and_reports_the_final_answer() {
    use super::RegisterParams;
    let mut net = Net::new();
    let peer = net.a.peer_for(Transport::Udp, B.parse().unwrap()).unwrap();
    let params = |password: &str, expires: u32| RegisterParams {
        aor: Uri::try_from("sip:alice@10.0.0.2").unwrap(),
        contact: "sip:s1@gateway.invalid;transport=ws".into(),
        expires,
        peer,
        credentials: Some(("alice".into(), password.into())),
    };
    let id = net.a.register(net.now, params("secret", 600)).unwrap();
    net.run();
    match events(&mut net.a).as_slice() {
        [
            UaEvent::Registered {
                registration,
                code: 200,
            },
        ] => assert_eq!(*registration, id),
        other => panic!("{other:?}"),
    }
    let registers = |net: &Net| {
        net.wire_log
            .iter()
            .filter(|l| l.starts_with("REGISTER"))
            .count()
    };
    assert_eq!(
        registers(&net),
        2,
        "one challenge, one answer: {:?}",
        net.wire_log
    );
    let bound = net.b.lookup(net.now, "alice");
    assert_eq!(bound.len(), 1);
    assert!(
        bound[0]
            .uri
            .to_string()
            .starts_with("sip:s1@gateway.invalid;transport=")
    );

    net.wire_log.clear();
    let wrong = net.a.register(net.now, params("wrong", 600)).unwrap();
    net.run();
    match events(&mut net.a).as_slice() {
        [
            UaEvent::Registered {
                registration,
                code: 401,
            },
        ] => assert_eq!(*registration, wrong),
        other => panic!("{other:?}"),
    }
    assert_eq!(registers(&net), 2, "{:?}", net.wire_log);

    net.a.register(net.now, params("secret", 0)).unwrap();
    net.run();
    assert!(matches!(
        events(&mut net.a).as_slice(),
        [UaEvent::Registered { code: 200, .. }]
    ));
    assert!(net.b.lookup(net.now, "alice").is_empty(), "unregistered");
}
