//! Session timers, reliable provisionals (100rel, PRACK) and REFER.

use super::*;

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

/// Our REFER (RFC 3515 as the referrer): the peer's 202 goes up, then each NOTIFY's sipfrag
/// status until the final one ends the subscription; a NOTIFY after that, or of another
/// event, gets 481; a second REFER waits for the first to be over.
#[test]
fn our_refer_reports_its_answer_and_the_notified_progress() {
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
    assert!(
        net.a
            .refer(net.now, a_leg, "sip:agent@10.0.0.9?X-Queue=sales")
    );
    assert!(
        !net.a.refer(net.now, a_leg, "sip:other@10.0.0.9"),
        "one at a time"
    );
    net.run();
    let refer = net
        .messages
        .iter()
        .find(|m| m.starts_with("REFER "))
        .unwrap();
    assert!(
        refer.contains("Refer-To: <sip:agent@10.0.0.9?X-Queue=sales>\r\n"),
        "{refer}"
    );
    assert_eq!(
        leg_events(&mut net.b),
        [LegEvent::Refer {
            target: "<sip:agent@10.0.0.9?X-Queue=sales>".into()
        }]
    );
    net.b.answer_refer(net.now, b_leg, 202);
    net.run();
    assert!(net.b.notify_refer(net.now, b_leg, 180));
    net.run();
    assert!(net.b.notify_refer(net.now, b_leg, 200));
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [
            LegEvent::ReferAnswered { code: 202 },
            LegEvent::ReferProgress {
                code: Some(180),
                last: false
            },
            LegEvent::ReferProgress {
                code: Some(200),
                last: true
            },
        ]
    );
    // The subscription is over: another NOTIFY is for nothing.
    assert!(net.b.notify_refer(net.now, b_leg, 200));
    net.run();
    assert!(
        net.wire_log
            .iter()
            .any(|l| l == "SIP/2.0 481 Call/Transaction Does Not Exist"),
        "{:?}",
        net.wire_log
    );
    assert!(leg_events(&mut net.a).is_empty());
    // A new REFER may go; refused, it ends there.
    assert!(net.a.refer(net.now, a_leg, "sip:other@10.0.0.9"));
    net.run();
    let _ = leg_events(&mut net.b);
    net.b.answer_refer(net.now, b_leg, 603);
    net.run();
    assert_eq!(
        leg_events(&mut net.a),
        [LegEvent::ReferAnswered { code: 603 }]
    );
    assert!(net.a.refer(net.now, a_leg, "sip:third@10.0.0.9"));
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
