//! Calls to a registered user: every device rung, the first to answer takes the call.

use super::*;

/// A call to a user rings every device it registered; the one that answers is the call's
/// leg, the other is cancelled with RFC 3326's reason, and the record names the device that
/// answered.
#[tokio::test]
async fn a_call_to_a_user_rings_each_device_and_the_first_to_answer_takes_it() {
    let mut rig = Rig::new(41200..=41209).await;
    two_devices(&mut rig);
    let (sid, mut app, rung) = call_alice(&mut rig);
    let uris: Vec<&str> = rung.iter().map(|(_, uri)| uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:alice-desk@10.0.0.3:5060",
            "sip:alice-laptop@10.0.0.3:5060"
        ]
    );
    let (desk, laptop) = (rung[0].0, rung[1].0);
    // The laptop rings, the desk phone too; the laptop answers.
    rig.callee.respond(rig.now, laptop, 180, None);
    rig.run();
    rig.callee.respond(rig.now, desk, 180, None);
    rig.callee
        .respond(rig.now, laptop, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    let cancels: Vec<&String> = (rig.sent_by_core.iter())
        .filter(|m| m.starts_with("CANCEL "))
        .collect();
    assert_eq!(cancels.len(), 1, "{:#?}", rig.wire);
    assert!(
        cancels[0].starts_with("CANCEL sip:alice-desk@"),
        "{}",
        cancels[0]
    );
    assert!(
        cancels[0].contains("Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n"),
        "{}",
        cancels[0]
    );
    assert!(
        leg_events(&mut rig.callee).contains(&LegEvent::Cancelled),
        "the desk phone stops ringing"
    );
    let heard = received(&mut app);
    assert_eq!(
        heard
            .iter()
            .filter(|k| matches!(k, EventKind::Ringing))
            .count(),
        1,
        "{heard:?}"
    );
    assert!(
        heard
            .iter()
            .any(|k| matches!(k, EventKind::Answered { .. })),
        "{heard:?}"
    );
    // The call is the laptop's: the application's hang-up is a BYE to it.
    let laptop_call_id = rig.callee.call_id(laptop).unwrap().to_owned();
    rig.command(&sid, CallCommand::Hangup).unwrap();
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    assert!(
        leg_events(&mut rig.callee)
            .iter()
            .any(|e| matches!(e, LegEvent::Bye { .. })),
        "{:#?}",
        rig.wire
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.to_uri, "sip:alice-laptop@10.0.0.3:5060");
    assert_eq!(record.sip_call_id, laptop_call_id);
}

/// A device that fails drops out while another rings; the call fails only with the last,
/// and with the best of their answers: busy, not unavailable.
#[tokio::test]
async fn a_call_to_a_user_fails_only_when_every_device_has_with_the_best_answer() {
    let mut rig = Rig::new(41210..=41219).await;
    two_devices(&mut rig);
    let (_sid, mut app, rung) = call_alice(&mut rig);
    let (desk, laptop) = (rung[0].0, rung[1].0);
    rig.callee.respond(rig.now, desk, 486, None);
    rig.run();
    assert!(
        !received(&mut app)
            .iter()
            .any(|k| matches!(k, EventKind::Hangup { .. })),
        "the laptop still rings"
    );
    rig.callee.respond(rig.now, laptop, 480, None);
    rig.run();
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Busy, "{record:?}");
    assert_eq!(record.sip_code, Some(486), "{record:?}");
    assert_eq!(rig.sent("core>callee CANCEL"), 0, "{:#?}", rig.wire);
}

/// The application gives up while the devices ring: each is cancelled, the call canceled.
#[tokio::test]
async fn a_call_to_a_user_hung_up_while_ringing_cancels_every_device() {
    let mut rig = Rig::new(41220..=41229).await;
    two_devices(&mut rig);
    let (sid, _app, rung) = call_alice(&mut rig);
    for (leg, _) in &rung {
        rig.callee.respond(rig.now, *leg, 180, None);
    }
    rig.run();
    rig.command(&sid, CallCommand::Hangup).unwrap();
    assert_eq!(rig.sent("core>callee CANCEL"), 2, "{:#?}", rig.wire);
    let cancelled = leg_events(&mut rig.callee)
        .into_iter()
        .filter(|e| *e == LegEvent::Cancelled)
        .count();
    assert_eq!(cancelled, 2, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Canceled, "{record:?}");
}

/// A number routed to a user rings each of its devices: the caller hears the ringing, the
/// device that answers is the callee (the other cancelled), and the caller's hang-up reaches
/// the device that answered.
#[tokio::test]
async fn a_route_to_a_user_rings_each_device_and_connects_the_one_that_answers() {
    let mut rig = Rig::new(41230..=41239).await;
    two_devices(&mut rig);
    rig.reroute(|routing| {
        routing.routes = vec![Route {
            pattern: regex::Regex::new(".*").unwrap(),
            accounts: Vec::new(),
            target: crate::call::dial_plan::Target::User("alice".into()),
            features: Default::default(),
        }]
    });
    let caller = rig.call();
    rig.run();
    let rung: Vec<(LegId, String)> = events(&mut rig.callee)
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Incoming { leg, request, .. } => Some((leg, request.uri.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(rung.len(), 2, "{:#?}", rig.wire);
    let (desk, laptop) = (rung[0].0, rung[1].0);
    assert!(rung[1].1.starts_with("sip:alice-laptop@"), "{rung:?}");
    rig.callee.respond(rig.now, desk, 180, None);
    rig.run();
    assert!(
        matches!(
            leg_events(&mut rig.caller)[..],
            [LegEvent::Progress { code: 180, .. }]
        ),
        "{:#?}",
        rig.wire
    );
    rig.callee
        .respond(rig.now, laptop, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    assert!(
        matches!(leg_events(&mut rig.caller)[..], [LegEvent::Answered { .. }]),
        "{:#?}",
        rig.wire
    );
    rig.caller.ack(caller, None);
    rig.run();
    let cancel = (rig.sent_by_core.iter())
        .find(|m| m.starts_with("CANCEL "))
        .expect("the desk phone is cancelled");
    assert!(cancel.starts_with("CANCEL sip:alice-desk@"), "{cancel}");
    assert!(cancel.contains("Reason: SIP;cause=200"), "{cancel}");
    rig.caller.hangup(rig.now, caller, 200);
    rig.run();
    let laptop_events: Vec<LegEvent> = events(&mut rig.callee)
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Leg { leg, event } if leg == laptop => Some(event),
            _ => None,
        })
        .collect();
    assert!(
        laptop_events
            .iter()
            .any(|e| matches!(e, LegEvent::Bye { .. })),
        "{laptop_events:?}"
    );
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.user_out.as_deref(), Some("alice"), "{record:?}");
}
