//! The transaction layer driven in virtual time: matching, retransmissions, timers, limits.

use super::*;
use crate::message::SipMessage;
use crate::transaction::tests::{bye, invite, response_to};
use crate::transport::Transport;
use std::time::Duration;

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        remote: "192.0.2.9:5062".parse().unwrap(),
        local: "192.0.2.1:5060".parse().unwrap(),
        conn: None,
    }
}

fn drain_transmits(layer: &mut TransactionLayer) -> Vec<String> {
    std::iter::from_fn(|| layer.poll_transmit())
        .map(|t| String::from_utf8(t.data.to_vec()).unwrap())
        .collect()
}

#[test]
fn invite_gets_100_and_retransmission_is_absorbed() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    layer.on_request(t0, invite(), peer());
    // The 100 waits for the transaction user's own answer, then goes.
    assert!(drain_transmits(&mut layer).is_empty());
    assert_eq!(layer.poll_timeout(), Some(t0 + TRYING_DELAY));
    layer.handle_timeout(t0 + TRYING_DELAY);
    let sent = drain_transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("SIP/2.0 100 Trying"));
    assert!(
        sent[0].contains("received=192.0.2.9;rport=5062"),
        "{}",
        sent[0]
    );
    assert!(matches!(
        layer.poll_event(),
        Some(TxEvent::Request { tx: Some(_), .. })
    ));
    // The retransmission re-sends the 100 and is not passed up.
    layer.on_request(t0, invite(), peer());
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    assert!(layer.poll_event().is_none());
}

/// A layer that received an INVITE (its 100 Trying drained): the transaction and request.
fn received_invite(t0: Instant) -> (TransactionLayer, TxId, Request) {
    received(t0, invite())
}

/// A layer that received `request` (anything it sent drained): the transaction and request.
fn received(t0: Instant, request: Request) -> (TransactionLayer, TxId, Request) {
    let mut layer = TransactionLayer::new(Timers::default());
    layer.on_request(t0, request, peer());
    drain_transmits(&mut layer);
    let Some(TxEvent::Request {
        tx: Some(tx),
        request,
        ..
    }) = layer.poll_event()
    else {
        panic!("the request was passed up")
    };
    (layer, tx, request)
}

/// Everything the layer sends in the 40 s after `t0`.
fn sent_later(layer: &mut TransactionLayer, t0: Instant) -> usize {
    for s in 1..40 {
        layer.handle_timeout(t0 + Duration::from_secs(s));
    }
    drain_transmits(layer).len()
}

/// A final response sent with `respond_once` goes out once, and alone: no 100 Trying
/// before it and no Timer G retransmissions after (an INVITE's 4xx is otherwise repeated
/// until ACKed), and nothing is left held.
#[test]
fn respond_once_never_retransmits() {
    let t0 = Instant::now();
    let (mut layer, tx, request) = received_invite(t0);
    layer.respond_once(t0, tx, &request.response(403, Some("t")));
    let sent = drain_transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("SIP/2.0 403 "), "{}", sent[0]);
    assert!(layer.is_empty());
    assert_eq!(sent_later(&mut layer, t0), 0);

    // The same with a kept transaction: the 403 is repeated (Timer G).
    let (mut layer, tx, request) = received_invite(t0);
    layer.respond(t0, tx, &request.response(403, Some("t")));
    assert!(sent_later(&mut layer, t0) > 3);
}

/// A copy of a request answered once gets the same answer, once per copy, and is never
/// passed up as a new request; its ACK is absorbed, and ends the memory of it. Without an
/// ACK the request is remembered as long as its sender may retransmit it (64·T1).
#[test]
fn a_copy_of_a_request_answered_once_gets_the_same_answer() {
    let t0 = Instant::now();
    let (mut layer, tx, request) = received_invite(t0);
    let mut busy = request.response(503, Some("refused"));
    busy.headers.push("Retry-After", "1");
    layer.respond_once(t0, tx, &busy);
    let first = drain_transmits(&mut layer);
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with("SIP/2.0 503 "), "{}", first[0]);
    for i in 1..=3 {
        let at = t0 + Duration::from_millis(500 * i);
        layer.on_request(at, invite(), peer());
        assert_eq!(drain_transmits(&mut layer), first, "copy {i}");
        assert!(layer.poll_event().is_none(), "copy {i} passed up");
        assert!(layer.is_empty());
    }
    // The caller's ACK (same branch, RFC 3261 §17.1.1.3) is absorbed here.
    let mut ack = invite();
    ack.method = Method::Ack;
    ack.headers.set("CSeq", "1 ACK");
    layer.on_request(t0 + Duration::from_secs(2), ack.clone(), peer());
    assert!(drain_transmits(&mut layer).is_empty());
    assert!(layer.poll_event().is_none(), "the ACK passed up");
    assert_eq!(layer.answered.len(), 0);
    // Forgotten with its ACK: another copy is a request of its own again.
    layer.on_request(t0 + Duration::from_secs(3), invite(), peer());
    assert!(matches!(
        layer.poll_event(),
        Some(TxEvent::Request { tx: Some(_), .. })
    ));

    // Never ACKed: remembered until 64·T1, then a copy is new.
    let (mut layer, tx, request) = received_invite(t0);
    layer.respond_once(t0, tx, &request.response(404, Some("t")));
    drain_transmits(&mut layer);
    let timeout = Timers::default().timeout();
    layer.on_request(t0 + timeout - Duration::from_millis(1), invite(), peer());
    assert!(drain_transmits(&mut layer)[0].starts_with("SIP/2.0 404 "));
    assert!(layer.poll_event().is_none());
    layer.on_request(t0 + timeout, invite(), peer());
    assert!(layer.poll_event().is_some(), "remembered past 64·T1");
    assert_eq!(layer.answered.len(), 0);
}

/// At the cap, a new request gets one stateless 503 and holds nothing; requests of
/// transactions already held are still absorbed.
#[test]
fn transactions_are_capped() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default()).with_limit(2);
    let nth = |i: usize| {
        let mut r = invite();
        r.headers.set(
            "Via",
            format!("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKcap{i};rport"),
        );
        r
    };
    for i in 0..2 {
        layer.on_request(t0, nth(i), peer());
    }
    drain_transmits(&mut layer);
    while layer.poll_event().is_some() {}
    layer.on_request(t0, nth(2), peer());
    let sent = drain_transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("SIP/2.0 503 "), "{}", sent[0]);
    assert!(sent[0].contains("Retry-After: 5"));
    assert!(layer.poll_event().is_none());
    assert_eq!(layer.len(), 2);
    // A held INVITE's retransmission gets its 100 at once.
    layer.on_request(t0, nth(0), peer());
    assert!(drain_transmits(&mut layer)[0].starts_with("SIP/2.0 100"));
    // Requests inside dialogs (a BYE ending a call) are taken up to twice the cap.
    let bye = |i: usize| {
        let mut r = nth(10 + i);
        r.method = Method::Bye;
        r.headers.set("CSeq", "2 BYE");
        r.headers.set("To", "<sip:bob@192.0.2.1>;tag=callee");
        r
    };
    for i in 0..2 {
        layer.on_request(t0, bye(i), peer());
        assert!(
            matches!(
                layer.poll_event(),
                Some(TxEvent::Request { tx: Some(_), .. })
            ),
            "BYE {i} taken"
        );
    }
    assert_eq!(layer.len(), 4);
    layer.on_request(t0, bye(2), peer());
    assert!(drain_transmits(&mut layer)[0].starts_with("SIP/2.0 503 "));
    assert_eq!(layer.len(), 4);
    assert_eq!(layer.refused_at_cap(), 2);
}

#[test]
fn response_without_rport_goes_to_via_port() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let mut req = invite();
    req.headers
        .set("Via", "SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKnorport");
    layer.on_request(t0, req, peer());
    layer.handle_timeout(t0 + TRYING_DELAY);
    let t = layer.poll_transmit().unwrap();
    assert_eq!(t.peer.remote, "192.0.2.9:5070".parse().unwrap());
}

#[test]
fn cancel_finds_its_invite() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    layer.on_request(t0, invite(), peer());
    let Some(TxEvent::Request {
        tx: Some(invite_tx),
        ..
    }) = layer.poll_event()
    else {
        panic!()
    };
    let mut cancel = invite();
    cancel.method = Method::Cancel;
    cancel.headers.set("CSeq", "1 CANCEL");
    layer.on_request(t0, cancel.clone(), peer());
    let Some(TxEvent::Request {
        tx: Some(cancel_tx),
        request,
        ..
    }) = layer.poll_event()
    else {
        panic!()
    };
    assert_ne!(cancel_tx, invite_tx);
    assert_eq!(layer.cancelled_invite(&request), Some(invite_tx));
}

#[test]
fn client_retransmits_and_times_out_via_layer_clock() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let tx = layer.send_request(t0, bye(), peer()).unwrap();
    let mut sends = drain_transmits(&mut layer).len();
    let mut now = t0;
    while let Some(at) = layer.poll_timeout() {
        now = at;
        layer.handle_timeout(now);
        sends += drain_transmits(&mut layer).len();
    }
    assert_eq!(sends, 11, "initial send plus ten retransmissions");
    assert!(matches!(layer.poll_event(), Some(TxEvent::Timeout { tx: t }) if t == tx));
    assert_eq!(now - t0, Duration::from_secs(32));
    assert!(layer.is_empty());
}

#[test]
fn response_matches_client_and_duplicate_is_absorbed() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Timers::default());
    let tx = layer.send_request(t0, bye(), peer()).unwrap();
    drain_transmits(&mut layer);
    let ok = response_to(&bye(), 200);
    let wire = ok.encode();
    let SipMessage::Response(parsed) = SipMessage::parse(&wire).unwrap() else {
        panic!()
    };
    layer.on_response(t0, parsed.clone(), peer());
    assert!(matches!(layer.poll_event(), Some(TxEvent::Response { tx: Some(t), .. }) if t == tx));
    layer.on_response(t0, parsed, peer());
    assert!(layer.poll_event().is_none());
}

#[test]
fn non_2xx_ack_is_absorbed_by_the_transaction() {
    let t0 = Instant::now();
    let (mut layer, tx, request) = received_invite(t0);
    layer.respond(t0, tx, &request.response(486, Some("x")));
    let mut ack = invite();
    ack.method = Method::Ack;
    ack.headers.set("CSeq", "1 ACK");
    layer.on_request(t0, ack, peer());
    assert!(
        layer.poll_event().is_none(),
        "ACK for an error response stays in the transaction"
    );
    // Confirmed: timer I (T4) then gone, no timeout reported.
    layer.handle_timeout(t0 + Duration::from_secs(6));
    assert!(layer.poll_event().is_none());
    assert!(layer.is_empty());
}

/// A BYE's final response ends its transaction at once: copies of the BYE get the same 200
/// until 64·T1, as from a completed transaction (Timer J), while the table holds nothing.
#[test]
fn a_non_invites_final_response_is_remembered_not_held() {
    let t0 = Instant::now();
    let (mut layer, tx, request) = received(t0, bye());
    layer.respond(t0, tx, &request.response(200, Some("b")));
    let first = drain_transmits(&mut layer);
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with("SIP/2.0 200 "), "{}", first[0]);
    assert!(layer.is_empty(), "a finished BYE holds no transaction");
    let timeout = Timers::default().timeout();
    for at in [
        Duration::from_millis(500),
        timeout - Duration::from_millis(1),
    ] {
        layer.on_request(t0 + at, bye(), peer());
        assert_eq!(drain_transmits(&mut layer), first, "a copy at {at:?}");
        assert!(layer.poll_event().is_none(), "a copy at {at:?} passed up");
    }
    // After 64·T1 a copy is a request of its own (the dialog layer answers 481).
    layer.on_request(t0 + timeout, bye(), peer());
    assert!(matches!(
        layer.poll_event(),
        Some(TxEvent::Request { tx: Some(_), .. })
    ));
    // A provisional leaves the transaction open.
    let (mut layer, tx, request) = received(t0, bye());
    layer.respond(t0, tx, &request.response(100, None));
    assert!(!layer.is_empty());
    // Over TCP nothing is retransmitted: Timer J (zero) ends it, and nothing is remembered.
    let mut layer = TransactionLayer::new(Timers::default());
    let tcp = Peer {
        transport: Transport::Tcp,
        ..peer()
    };
    layer.on_request(t0, bye(), tcp);
    let Some(TxEvent::Request { tx: Some(tx), .. }) = layer.poll_event() else {
        panic!("the BYE was passed up")
    };
    layer.respond(t0, tx, &request.response(200, Some("b")));
    assert_eq!(drain_transmits(&mut layer).len(), 1);
    layer.handle_timeout(t0); // Timer J, zero on a reliable transport
    assert!(layer.is_empty());
    assert_eq!(layer.answered.len(), 0);
}
