//! Routed calls: ring timeouts, CANCEL races, answers, media, early media, re-INVITEs and
//! UPDATEs relayed, session timers, identities, the store's backpressure and shutdown.

use super::*;

#[tokio::test]
async fn an_unanswered_callee_is_cancelled_at_the_ring_timeout_and_the_caller_told() {
    let mut rig = Rig::new(41000..=41009).await;
    rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee.respond(rig.now, callee, 180, None);
    rig.run();
    assert!(
        matches!(
            leg_events(&mut rig.caller)[..],
            [LegEvent::Progress { code: 180, .. }]
        ),
        "{:#?}",
        rig.wire
    );
    // Just before the timeout nothing is cancelled; just after, the callee is.
    rig.advance(RING_TIMEOUT.as_secs() - 1);
    assert_eq!(rig.sent("core>callee CANCEL"), 0, "{:#?}", rig.wire);
    rig.advance(2);
    assert_eq!(rig.sent("core>callee CANCEL"), 1, "{:#?}", rig.wire);
    let caller_saw = leg_events(&mut rig.caller);
    assert!(
        caller_saw
            .iter()
            .any(|e| matches!(e, LegEvent::Failed { code: 408 | 480 })),
        "{caller_saw:?}\n{:#?}",
        rig.wire
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::NoAnswer, "{record:?}");
    assert_eq!(record.hangup_by, Some(HangupBy::System));
}

#[tokio::test]
async fn a_callee_answer_that_crosses_the_callers_cancel_is_acked_and_hung_up() {
    let mut rig = Rig::new(41010..=41019).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee.respond(rig.now, callee, 180, None);
    rig.run();
    // The caller gives up as the callee answers: the CANCEL reaches the core first.
    rig.caller.hangup(rig.now, caller, 487);
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    let wire = rig.wire.join("\n");
    assert!(
        wire.contains("caller>core CANCEL") && wire.contains("core>caller SIP/2.0 487"),
        "{wire}"
    );
    // The answer came too late: the callee is acknowledged and sent a BYE, once.
    assert_eq!(rig.sent("core>callee ACK"), 1, "{wire}");
    assert_eq!(rig.sent("core>callee BYE"), 1, "{wire}");
    assert!(
        leg_events(&mut rig.callee)
            .iter()
            .any(|e| matches!(e, LegEvent::Bye { .. })),
        "{wire}"
    );
    // Nothing more: no retransmission of the BYE once answered, no answer to the caller.
    rig.advance(40);
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(
        rig.sent("core>caller SIP/2.0 200"),
        1,
        "only the CANCEL's 200"
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Canceled, "{record:?}");
    assert_eq!(record.hangup_by, Some(HangupBy::Caller));
}

#[tokio::test]
async fn an_answered_call_relays_the_answer_and_the_callers_bye() {
    let mut rig = Rig::new(41020..=41029).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    // The caller gets the answer with the core's media address in it, and acknowledges it.
    let answered = leg_events(&mut rig.caller);
    let Some(LegEvent::Answered { body: Some(body) }) = answered.first() else {
        panic!("{answered:?}\n{:#?}", rig.wire);
    };
    let answer = String::from_utf8_lossy(&body.data).into_owned();
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    rig.caller.ack(caller, None);
    rig.run();
    assert_eq!(rig.sent("core>callee ACK"), 1, "{:#?}", rig.wire);
    // Still up a while later (no ACK timeout, no session ended by a timer).
    rig.advance(120);
    assert_eq!(rig.sent("core>callee BYE"), 0, "{:#?}", rig.wire);
    rig.caller.hangup(rig.now, caller, 0);
    rig.run();
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(
        rig.sent("callee>core SIP/2.0 200"),
        2,
        "the INVITE's and the BYE's"
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.hangup_by, Some(HangupBy::Caller));
    // Dated by the instants the core was given: two minutes of virtual time.
    assert_eq!(record.duration_secs, 120, "{record:?}");
    assert_eq!(
        record.ended_at.unwrap() - record.answered_at.unwrap(),
        120_000
    );
    assert_eq!(record.trunk_in.as_deref(), Some("carrier-a"));
    assert_eq!(record.trunk_out.as_deref(), Some("carrier-b"));
}

#[tokio::test]
async fn while_the_store_is_overloaded_new_calls_get_503_and_nothing_is_written() {
    let mut rig = Rig::new(41260..=41269).await;
    rig.core.set_store_overloaded(true);
    rig.call();
    rig.run();
    assert!(
        matches!(
            leg_events(&mut rig.caller)[..],
            [LegEvent::Failed { code: 503 }]
        ),
        "{:#?}",
        rig.wire
    );
    assert_eq!(rig.sent("core>callee"), 0, "{:#?}", rig.wire);
    let refusal = (rig.sent_by_core.iter()).find(|m| m.starts_with("SIP/2.0 503"));
    assert!(
        refusal.is_some_and(|m| m.contains("\r\nRetry-After: 1\r\n")),
        "{refusal:?}"
    );
    assert!(rig.writes.is_empty(), "{:?}", rig.writes);
    // Once the writer catches up, calls are taken and their rows written again.
    rig.core.set_store_overloaded(false);
    rig.call();
    rig.run();
    assert_eq!(rig.sent("core>callee INVITE"), 1, "{:#?}", rig.wire);
    assert!(
        (rig.writes.iter()).any(|w| matches!(w, StoreWrite::Call(c) if c.to == "+15551234")),
        "{:?}",
        rig.writes
    );
}

/// Past what the core can carry — every message of a busy window waited 300 ms for it — new
/// calls beyond the rate it then admits are refused at once with 503 and Retry-After, and
/// the calls it took go on to be answered; once messages stop waiting, calls are taken again.
#[tokio::test]
async fn past_what_it_carries_the_core_refuses_new_calls_with_503_and_the_calls_taken_go_on() {
    let mut rig = Rig::new(41600..=41799).await;
    rig.sojourn = Duration::from_millis(300);
    // The window that finds the queue has admitted what came in it.
    let taken: Vec<LegId> = (0..40).map(|_| rig.call()).collect();
    rig.run();
    assert_eq!(rig.sent("core>callee INVITE"), 40);
    let callees: Vec<LegId> = (events(&mut rig.callee).into_iter())
        .filter_map(|e| match e {
            UaEvent::Incoming { leg, .. } => Some(leg),
            _ => None,
        })
        .collect();
    assert_eq!(callees.len(), 40);
    // The next takes about nine tenths of that rate (240 calls/s, a tenth of a second's
    // worth at once): 24 of 60 offered together, and refuses the rest.
    rig.now += Duration::from_millis(150);
    for _ in 0..60 {
        rig.call();
    }
    rig.run();
    let refusals: Vec<&String> = (rig.sent_by_core.iter())
        .filter(|m| m.starts_with("SIP/2.0 503"))
        .collect();
    assert_eq!(rig.sent("core>callee INVITE"), 64, "{:#?}", rig.wire);
    assert_eq!(refusals.len(), 36, "{:#?}", rig.wire);
    assert!(
        refusals
            .iter()
            .all(|m| m.contains("\r\nRetry-After: 1\r\n")),
        "{}",
        refusals[0]
    );
    let failed = (leg_events(&mut rig.caller).into_iter())
        .filter(|e| matches!(e, LegEvent::Failed { code: 503 }))
        .count();
    assert_eq!(failed, 36);
    // The calls taken are answered through the core, still overloaded.
    for callee in callees {
        rig.callee
            .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    }
    rig.run();
    let answered = (leg_events(&mut rig.caller).into_iter())
        .filter(|e| matches!(e, LegEvent::Answered { .. }))
        .count();
    assert_eq!(answered, 40, "{:#?}", rig.wire);
    for leg in &taken {
        rig.caller.ack(*leg, None);
    }
    rig.run();
    // The queue gone and nothing offered for a while, the limit is lifted.
    rig.sojourn = Duration::ZERO;
    rig.now += Duration::from_secs(3);
    for _ in 0..30 {
        rig.call();
    }
    rig.run();
    // Every one of them reached the callee: nothing limits the admission any more.
    assert_eq!(rig.sent("core>callee INVITE"), 94, "{:#?}", rig.wire);
}

/// A trunk that answers INVITEs late is sent no more calls than it was answering: once every
/// answer of a window came 300 ms after its INVITE (its base is 0), the INVITEs it may hold
/// unanswered are fewer than it held, the calls beyond them are refused at once with 503 and
/// Retry-After, sent once and recorded nowhere but in a counter (shed for load, like overload
/// control's refusals); the calls sent go on, and once the trunk answers at once again it is
/// sent everything.
#[tokio::test]
async fn a_trunk_answering_late_is_sent_what_it_answers_and_the_rest_refused_at_once() {
    let mut rig = Rig::new(41800..=41999).await;
    let incoming = |rig: &mut Rig| -> Vec<LegId> {
        (events(&mut rig.callee).into_iter())
            .filter_map(|e| match e {
                UaEvent::Incoming { leg, .. } => Some(leg),
                _ => None,
            })
            .collect()
    };
    // At once: its base.
    rig.call();
    rig.run();
    for leg in incoming(&mut rig) {
        rig.callee.respond(rig.now, leg, 180, None);
    }
    rig.run();
    // Then forty, each answered 300 ms late.
    for _ in 0..40 {
        rig.call();
    }
    rig.run();
    let late = incoming(&mut rig);
    assert_eq!(late.len(), 40);
    rig.now += Duration::from_millis(300);
    for leg in &late {
        rig.callee.respond(rig.now, *leg, 180, None);
    }
    rig.run();
    // A window on, sixty calls: the trunk may hold nine tenths of the forty unanswered.
    rig.now += Duration::from_millis(150);
    for _ in 0..60 {
        rig.call();
    }
    rig.run();
    assert_eq!(
        rig.sent("core>callee INVITE"),
        1 + 40 + 36,
        "{:#?}",
        rig.wire
    );
    let refusals: Vec<&String> = (rig.sent_by_core.iter())
        .filter(|m| m.starts_with("SIP/2.0 503"))
        .collect();
    assert_eq!(refusals.len(), 24, "{:#?}", rig.wire);
    assert!(
        (refusals.iter()).all(|m| m.contains("\r\nRetry-After: 1\r\n")),
        "{}",
        refusals[0]
    );
    let failed = (rig.writes.iter())
        .filter(|w| matches!(w, StoreWrite::Call(c) if c.status == CallStatus::Failed))
        .count();
    assert_eq!(failed, 0, "{:#?}", rig.writes);
    // The calls sent are answered at once: the trunk keeps up, and takes what it is offered.
    let sent = incoming(&mut rig);
    assert_eq!(sent.len(), 36);
    for leg in &sent {
        rig.callee.respond(rig.now, *leg, 180, None);
    }
    rig.run();
    for _ in 0..30 {
        rig.now += Duration::from_millis(150);
        rig.call();
        rig.run();
        for leg in incoming(&mut rig) {
            rig.callee.respond(rig.now, leg, 180, None);
        }
        rig.run();
    }
    assert_eq!(
        rig.sent("core>callee INVITE"),
        1 + 40 + 36 + 30,
        "{:#?}",
        rig.wire
    );
}

/// The media engine is the driver's: the core takes two of the pairs it was handed, asks
/// for them on one worker, bridges them before the callee is reached, tells each what its
/// peer's description said as the descriptions arrive, and gives both back at the hang-up.
#[tokio::test]
async fn a_routed_calls_media_is_two_ready_pairs_bridged_configured_and_given_back() {
    let mut rig = Rig::new(41300..=41319).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    let (a, b) = match &rig.media[..] {
        [
            MediaCommand::Activate { id: a, near: None },
            MediaCommand::Activate {
                id: b,
                near: Some(near),
            },
            MediaCommand::Configure { id: ca, config },
            MediaCommand::Bridge { a: ba, b: bb },
        ] if near == a && ca == a && (ba, bb) == (a, b) => {
            let caller_rtp = Some(addr("10.0.0.2:4000"));
            assert_eq!(config.remote_rtp, caller_rtp, "the caller's offer");
            assert!(!config.expect_rtp, "not answered yet");
            (*a, *b)
        }
        other => panic!("{other:#?}"),
    };
    // The callee is offered the second pair's port, the caller answered with the first's.
    let offer = (rig.sent_by_core.iter())
        .find(|m| m.starts_with("INVITE"))
        .expect("an INVITE to the callee");
    let b_port = rig.port_of[&b];
    assert!(offer.contains(&format!("m=audio {b_port} ")), "{offer}");
    rig.media.clear();
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    let answered: Vec<_> = (rig.media.iter())
        .filter_map(|c| match c {
            MediaCommand::Configure { id, config } => Some((*id, config.remote_rtp)),
            _ => None,
        })
        .collect();
    assert!(
        answered.contains(&(b, Some(addr("10.0.0.3:5000")))),
        "the callee's answer configures its pair: {answered:?}"
    );
    let answer = (rig.sent_by_core.iter())
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("m=audio"))
        .expect("the caller's 200");
    let a_port = rig.port_of[&a];
    assert!(answer.contains(&format!("m=audio {a_port} ")), "{answer}");
    rig.caller.ack(caller, None);
    rig.run();
    rig.media.clear();
    rig.caller.hangup(rig.now, caller, 200);
    rig.run();
    let released: Vec<_> = (rig.media.iter())
        .filter_map(|c| match c {
            MediaCommand::Release { id } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(released, [a, b], "{:#?}", rig.media);
    assert_eq!(rig.record().status, CallStatus::Completed);
}

/// With no pair ready (the driver could bind none: the range is used up), a call is refused
/// with 503 and nothing is asked of the engine.
#[tokio::test]
async fn with_no_pair_ready_a_call_is_refused_503_and_the_engine_asked_nothing() {
    let mut rig = Rig::new(41320..=41329).await;
    rig.unbound = true;
    rig.call();
    rig.run();
    assert_eq!(rig.sent("core>caller SIP/2.0 503"), 1, "{:#?}", rig.wire);
    let refusal = (rig.sent_by_core.iter()).find(|m| m.starts_with("SIP/2.0 503"));
    assert!(
        refusal.is_some_and(|m| m.contains("\r\nRetry-After: 1\r\n")),
        "try again shortly: {refusal:?}"
    );
    assert_eq!(rig.sent("core>callee"), 0, "{:#?}", rig.wire);
    assert!(rig.media.is_empty(), "{:#?}", rig.media);
    let refused = (rig.writes.iter().rev())
        .find_map(|w| match w {
            StoreWrite::Call(c) if c.ended_at.is_some() => Some(c.clone()),
            _ => None,
        })
        .expect("the refused call's record");
    assert_eq!(refused.status, CallStatus::Failed);
    assert_eq!(refused.hangup_cause.as_deref(), Some("no-media-ports"));
    // Pairs again: calls are taken again.
    rig.unbound = false;
    rig.call();
    rig.run();
    rig.incoming();
}

#[tokio::test]
async fn early_media_reaches_the_caller_with_the_cores_address_before_the_answer() {
    let mut rig = Rig::new(41030..=41039).await;
    rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee
        .respond(rig.now, callee, 183, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    let progress = leg_events(&mut rig.caller);
    let [LegEvent::Progress { code: 183, body }] = &progress[..] else {
        panic!("{progress:?}\n{:#?}", rig.wire);
    };
    let early = text(body);
    assert!(
        early.contains("c=IN IP4 127.0.0.1") && !early.contains("10.0.0.3"),
        "the core anchors early media: {early}"
    );
    assert!(early.contains("RTP/AVP 0"), "{early}");
}

#[tokio::test]
async fn a_hold_re_invite_is_relayed_to_the_other_party_and_its_answer_back() {
    let mut rig = Rig::new(41040..=41049).await;
    let (caller, callee) = answered(&mut rig).await;
    assert!(
        rig.caller
            .reinvite(rig.now, caller, sdp_with("10.0.0.2", 4000, 2, "sendonly"))
    );
    rig.run();
    let relayed = leg_events(&mut rig.callee);
    let Some(LegEvent::ReInvite { body, .. }) = relayed
        .iter()
        .find(|e| matches!(e, LegEvent::ReInvite { .. }))
    else {
        panic!("{relayed:?}\n{:#?}", rig.wire);
    };
    let offer = text(body);
    assert!(
        offer.contains("a=sendonly") && offer.contains("c=IN IP4 127.0.0.1"),
        "{offer}"
    );
    // The caller waits for the callee's answer; it comes back rewritten.
    assert_eq!(
        rig.sent("core>caller SIP/2.0 200"),
        1,
        "only the INVITE's so far"
    );
    let held = sdp_with("10.0.0.3", 5000, 2, "recvonly");
    rig.callee
        .respond_reinvite(rig.now, callee, 200, Some(held));
    rig.run();
    let result = leg_events(&mut rig.caller);
    let Some(LegEvent::ReInviteResult { code: 200, body }) = result.first() else {
        panic!("{result:?}\n{:#?}", rig.wire);
    };
    let answer = text(body);
    assert!(
        answer.contains("a=recvonly") && answer.contains("c=IN IP4 127.0.0.1"),
        "{answer}"
    );
}

/// A new offer in an UPDATE (RFC 3311) goes on as an UPDATE to a party that allows one (its
/// Allow in its 200), its answer comes back rewritten, and no ACK follows on either leg, nor a
/// hang-up for the want of one.
#[tokio::test]
async fn an_update_is_relayed_as_an_update_and_answered_without_an_ack() {
    let mut rig = Rig::new(41130..=41139).await;
    let (caller, callee) = answered(&mut rig).await;
    let hold = sdp_with("10.0.0.2", 4000, 2, "sendonly");
    assert!(rig.caller.offer(rig.now, caller, hold, true));
    rig.run();
    assert_eq!(rig.sent("core>callee UPDATE"), 1, "{:#?}", rig.wire);
    let relayed = leg_events(&mut rig.callee);
    let Some(LegEvent::ReInvite { body, update: true }) = relayed
        .iter()
        .find(|e| matches!(e, LegEvent::ReInvite { .. }))
    else {
        panic!("{relayed:?}\n{:#?}", rig.wire);
    };
    let offer = text(body);
    assert!(
        offer.contains("a=sendonly") && offer.contains("c=IN IP4 127.0.0.1"),
        "{offer}"
    );
    let held = sdp_with("10.0.0.3", 5000, 2, "recvonly");
    rig.callee
        .respond_reinvite(rig.now, callee, 200, Some(held));
    rig.run();
    let result = leg_events(&mut rig.caller);
    let Some(LegEvent::ReInviteResult { code: 200, body }) = result.first() else {
        panic!("{result:?}\n{:#?}", rig.wire);
    };
    let answer = text(body);
    assert!(
        answer.contains("a=recvonly") && answer.contains("c=IN IP4 127.0.0.1"),
        "{answer}"
    );
    rig.advance(40);
    assert_eq!(
        rig.sent("core>callee ACK"),
        1,
        "the INVITE's only: {:#?}",
        rig.wire
    );
    assert_eq!(
        rig.sent("caller>core ACK"),
        1,
        "the INVITE's only: {:#?}",
        rig.wire
    );
    assert_eq!(rig.sent("core>caller BYE") + rig.sent("core>callee BYE"), 0);
}

/// Session timers (RFC 4028) on each leg of a routed call: the caller asked for 1800 s and
/// refreshes; the core refreshes toward the callee (which asked it to) with an UPDATE at half
/// the interval. When the caller's refreshes stop arriving, the core ends the call 32 s before
/// the interval runs out: a BYE to each party, `session-expired` in the record.
#[tokio::test]
async fn a_routed_call_whose_caller_stops_refreshing_ends_at_the_session_expiry() {
    let mut rig = Rig::new(41140..=41149).await;
    answered(&mut rig).await;
    rig.advance(1000);
    assert_eq!(rig.sent("caller>core UPDATE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee UPDATE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>caller BYE") + rig.sent("core>callee BYE"), 0);
    // The caller's UPDATE at 900 s was its last to arrive: the session ends at 900 + 1768 s.
    rig.caller_lost = true;
    rig.advance(1667);
    assert_eq!(rig.sent("core>caller BYE") + rig.sent("core>callee BYE"), 0);
    rig.advance(2);
    // (The caller's BYE is sent again, unanswered: the caller is gone.)
    assert!(rig.sent("core>caller BYE") >= 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee UPDATE"), 2, "at 900 s and 1800 s");
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.hangup_cause.as_deref(), Some("session-expired"));
    assert_eq!(record.hangup_by, Some(HangupBy::System));
}

/// Between two trusted trunks (RFC 3325's trust domain) the caller's P-Asserted-Identity,
/// Privacy, Diversion and History-Info reach the callee as they came; toward a trunk outside
/// it none does.
#[tokio::test]
async fn identities_pass_between_trusted_trunks_and_no_further() {
    let header = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    let asserted = vec![
        header("P-Asserted-Identity", "<sip:+15550000@carrier-a.example>"),
        header("P-Asserted-Identity", "<tel:+15550000>"),
        header("Privacy", "id"),
        header(
            "Diversion",
            "<sip:+15557777@carrier-a.example>;reason=no-answer",
        ),
        header("History-Info", "<sip:+15557777@carrier-a.example>;index=1"),
    ];
    let mut rig = Rig::new(41150..=41159).await;
    rig.call_asserting(asserted.clone());
    rig.run();
    let invite = match events(&mut rig.callee).into_iter().next() {
        Some(UaEvent::Incoming { request, .. }) => request,
        other => panic!("{other:?}"),
    };
    for name in [
        "P-Asserted-Identity",
        "Privacy",
        "Diversion",
        "History-Info",
    ] {
        let sent: Vec<&str> = (asserted.iter())
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        let got: Vec<&str> = invite.headers.all(name).collect();
        assert_eq!(got, sent, "{name}");
    }

    let mut rig = Rig::new(41160..=41169).await;
    rig.reroute(|routing| routing.trunks[1].trusted = false);
    rig.call_asserting(asserted);
    rig.run();
    let invite = match events(&mut rig.callee).into_iter().next() {
        Some(UaEvent::Incoming { request, .. }) => request,
        other => panic!("{other:?}"),
    };
    for name in [
        "P-Asserted-Identity",
        "Privacy",
        "Diversion",
        "History-Info",
    ] {
        assert_eq!(invite.headers.get(name), None, "{name}");
    }
}

#[tokio::test]
async fn shutdown_hangs_up_both_parties_and_closes_the_record() {
    let mut rig = Rig::new(41050..=41059).await;
    answered(&mut rig).await;
    assert!(!rig.core.is_done());
    rig.core.begin_shutdown(rig.now);
    rig.run();
    assert_eq!(rig.sent("core>caller BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.hangup_by, Some(HangupBy::System));
    assert!(rig.core.is_done(), "no call left once the media is back");
}

/// A phone's blind transfer whose target fails after the phone (the referrer) hung up: no one
/// is left for the transferred party, so the core hangs it up, the call's record saying why.
#[tokio::test]
async fn a_transfer_failing_after_its_referrer_left_hangs_up_the_transferred_party() {
    let mut rig = Rig::new(41900..=41909).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    rig.caller.ack(caller, None);
    rig.run();
    // The callee refers the caller to the number again (routed back to the callee's trunk).
    assert!(
        rig.callee
            .refer(rig.now, callee, "<sip:+15551234@10.0.0.1>")
    );
    rig.run();
    assert_eq!(rig.sent("core>callee SIP/2.0 202"), 1, "{:#?}", rig.wire);
    let target = (events(&mut rig.callee).into_iter())
        .find_map(|e| match e {
            UaEvent::Incoming { leg, .. } => Some(leg),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no INVITE to the target\n{:#?}", rig.wire));
    // The referrer leaves while the target rings; the caller stays up, waiting for it.
    rig.callee.hangup(rig.now, callee, 0);
    rig.run();
    assert_eq!(rig.sent("core>caller BYE"), 0, "{:#?}", rig.wire);
    // The target refuses: the caller is hung up, as the transfer's failure.
    rig.callee.respond(rig.now, target, 486, None);
    rig.run();
    assert_eq!(rig.sent("core>caller BYE"), 1, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(
        record.hangup_cause.as_deref(),
        Some("transfer-failed"),
        "{record:?}"
    );
}

/// A tenant's trunk named by its termination domain, with a credential and no address: an
/// INVITE to the domain from anywhere is challenged, a wrong password is challenged again and
/// never routed, the right one is admitted as the trunk's — its account's call, on the
/// operator's route.
#[tokio::test]
async fn a_tenant_trunk_takes_a_call_naming_its_domain_only_with_one_of_its_credentials() {
    use crate::call::dial_plan::{Admits, TenantTrunk, TenantTrunks};
    let mut rig = Rig::new(42000..=42009).await;
    let trunk = Trunk {
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        inbound_sources: Vec::new(),
        ..trunk("TK1", CALLER)
    };
    let tenant = TenantTrunks {
        trunks: vec![TenantTrunk {
            trunk,
            account: "AC1".into(),
            admits: Admits::Domain("acme.pstn.twilio.com".into()),
            logins: vec![("pbx".into(), "s3cret".into())],
            outbound: Default::default(),
            record: None,
            suppress_noise: (false, false),
        }],
        ..Default::default()
    };
    let tenant_again = tenant.clone();
    let answer = rig.request(Request::TenantTrunks(Box::new(tenant)));
    assert!(matches!(answer, Some(Answer::Done(Ok(())))), "{answer:?}");
    let invite = |rig: &mut Rig, password: &str| {
        let peer = rig.caller.peer_for(Transport::Udp, addr(CORE)).unwrap();
        let leg = rig.caller.invite(
            rig.now,
            InviteParams {
                uri: Uri::try_from("sip:+15551234@acme.pstn.twilio.com").unwrap(),
                from: "<sip:pbx@acme.pstn.twilio.com>".into(),
                to: "<sip:+15551234@acme.pstn.twilio.com>".into(),
                peer,
                body: Some(sdp("10.0.0.2", 4000)),
                credentials: Some(("pbx".into(), password.into())),
                max_forwards: 70,
                ring_timeout: None,
                headers: Vec::new(),
                asserted: Vec::new(),
            },
        );
        rig.run();
        leg
    };
    invite(&mut rig, "wrong");
    // Every try is challenged (the caller's agent tries its answer more than once).
    let tries = rig.sent("caller>core INVITE");
    assert!(tries >= 2, "{:#?}", rig.wire);
    assert_eq!(
        rig.sent("core>caller SIP/2.0 407"),
        tries,
        "{:#?}",
        rig.wire
    );
    assert_eq!(rig.sent("core>callee INVITE"), 0, "{:#?}", rig.wire);
    let caller = invite(&mut rig, "s3cret");
    assert_eq!(rig.sent("core>callee INVITE"), 1, "{:#?}", rig.wire);
    let callee = rig.incoming();
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    rig.caller.hangup(rig.now, caller, 0);
    let record = rig.record();
    assert_eq!(record.trunk_in.as_deref(), Some("TK1"), "{record:?}");
    assert_eq!(record.account_sid.as_deref(), Some("AC1"), "{record:?}");
    assert_eq!(record.trunk_out.as_deref(), Some("carrier-b"), "{record:?}");

    // Its policy, worded by its dialect: a destination outside its rule is refused with the
    // dialect's reason phrase, on the wire, and never routed.
    let mut tenant = tenant_again;
    tenant.trunks[0].outbound.destinations = Some(crate::call::dial_plan::Destinations {
        allows: std::sync::Arc::new(|n: &str| n.starts_with("+44")),
        refusal: "Destination Number is not allowed for service plan global D12".into(),
    });
    rig.request(Request::TenantTrunks(Box::new(tenant)));
    invite(&mut rig, "s3cret");
    assert_eq!(
        rig.sent(
            "core>caller SIP/2.0 403 Destination Number is not allowed for service plan global D12"
        ),
        1,
        "{:#?}",
        rig.wire
    );
    assert_eq!(rig.sent("core>callee INVITE"), 1, "{:#?}", rig.wire);
}

/// An address a tenant's IP connection claims is no capture of the phones behind it (a shared
/// NAT): an INVITE from it naming a login calls as that login (its account's), one naming no
/// login is the connection's.
#[tokio::test]
async fn a_tenants_address_takes_the_calls_of_no_login_behind_it() {
    use crate::call::dial_plan::{Admits, TenantTrunk, TenantTrunks};
    let mut rig = Rig::new(42010..=42019).await;
    // The caller's address is no carrier's now: a PBX's, and a phone's behind the same NAT.
    rig.reroute(|plan| plan.trunks[0].inbound_sources.clear());
    let trunk = Trunk {
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        ..trunk("1234", CALLER)
    };
    let tenant = TenantTrunks {
        trunks: vec![TenantTrunk {
            trunk,
            account: "AC2".into(),
            admits: Admits::Sources,
            logins: Vec::new(),
            outbound: Default::default(),
            record: None,
            suppress_noise: (false, false),
        }],
        ..Default::default()
    };
    rig.request(Request::TenantTrunks(Box::new(tenant)));
    let alice = crate::call::AccountUser {
        password: "secret".to_owned(),
        account: "AC1".to_owned(),
        registers: true,
        calls: true,
        outbound: Default::default(),
    };
    rig.request(Request::AccountUsers(HashMap::from([(
        "alice".to_owned(),
        alice,
    )])));
    let call_as = |rig: &mut Rig, from: &str, credentials: Option<(String, String)>| {
        // What the callee heard of the call before.
        events(&mut rig.callee);
        let peer = rig.caller.peer_for(Transport::Udp, addr(CORE)).unwrap();
        let leg = rig.caller.invite(
            rig.now,
            InviteParams {
                uri: Uri::try_from("sip:+15551234@10.0.0.1:5060").unwrap(),
                from: format!("<sip:{from}@10.0.0.1>"),
                to: "<sip:+15551234@10.0.0.1>".into(),
                peer,
                body: Some(sdp("10.0.0.2", 4000)),
                credentials,
                max_forwards: 70,
                ring_timeout: None,
                headers: Vec::new(),
                asserted: Vec::new(),
            },
        );
        rig.run();
        let callee = rig.incoming();
        rig.callee
            .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
        rig.run();
        rig.caller.hangup(rig.now, leg, 0);
        rig.record()
    };
    let phone = call_as(&mut rig, "alice", Some(("alice".into(), "secret".into())));
    assert_eq!(phone.user_in.as_deref(), Some("alice"), "{phone:?}");
    assert_eq!(phone.trunk_in, None, "{phone:?}");
    assert_eq!(phone.account_sid.as_deref(), Some("AC1"), "{phone:?}");
    let pbx = call_as(&mut rig, "+15550000", None);
    assert_eq!(pbx.trunk_in.as_deref(), Some("1234"), "{pbx:?}");
    assert_eq!(pbx.account_sid.as_deref(), Some("AC2"), "{pbx:?}");
}
