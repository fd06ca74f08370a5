//! Requests in and out of dialogs: strays, merged requests, OPTIONS, pings, the headers an
//! application may set, route sets, and requests from addresses that are not the dialog's peer.

use super::*;

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
    assert!(
        leg_events(&mut net.a)
            .iter()
            .any(|e| matches!(e, LegEvent::Bye { .. }))
    );
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
    assert_eq!(leg_events(&mut net.b), [LegEvent::Bye { headers: vec![] }]);
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
    assert_eq!(leg_events(&mut net.b), [LegEvent::Bye { headers: vec![] }]);
}
