//! Calls between the two agents: set-up, loss and retransmission, CANCEL, busy, ring timeout,
//! challenges, re-INVITEs with glare and without an offer, UPDATE.

use super::*;

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
    assert_eq!(leg_events(&mut net.b), [LegEvent::Bye { headers: vec![] }]);
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
fn a_bye_tells_the_peer_its_application_headers() {
    let mut net = Net::new();
    let a_leg = net.call(None);
    net.run();
    let (b_leg, _) = incoming(&mut net.b);
    net.b
        .respond(net.now, b_leg, 200, Some(Body::sdp("v=0\r\nanswer")));
    net.run();
    net.a.ack(a_leg, None);
    net.run();
    leg_events(&mut net.a);
    leg_events(&mut net.b);

    // An `X-` header passes; one the UA writes itself cannot be added, nor shown.
    let headers = [
        ("X-Switchboard-Visit-End".to_owned(), "moved".to_owned()),
        ("Contact".to_owned(), "<sip:evil@10.6.6.6>".to_owned()),
    ];
    net.a.hangup_with(net.now, a_leg, 487, &headers);
    net.run();
    assert_eq!(
        leg_events(&mut net.b),
        [LegEvent::Bye {
            headers: vec![("X-Switchboard-Visit-End".to_owned(), "moved".to_owned())]
        }]
    );
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
    net.b.challenge(net.now, b_leg, false);
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
    assert_eq!(leg_events(&mut net.a), [LegEvent::Bye { headers: vec![] }]);
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
    assert_eq!(leg_events(&mut net.b), [LegEvent::Bye { headers: vec![] }]);
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
