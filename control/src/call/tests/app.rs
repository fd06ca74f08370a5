//! Application calls and commands on any call: time limits, gathers, alarms, the core's view,
//! the first-command wait, a routed call's commands and route services, TLS names, watchers.

use super::*;

#[tokio::test]
async fn an_application_call_is_hung_up_at_its_time_limit_and_not_before() {
    let mut rig = Rig::new(41060..=41069).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    // A limit set, then replaced by a longer one: only the last counts.
    rig.command(&sid, CallCommand::LimitDuration(Duration::from_secs(5)))
        .unwrap();
    rig.command(&sid, CallCommand::LimitDuration(Duration::from_secs(60)))
        .unwrap();
    rig.advance(59);
    assert_eq!(rig.sent("core>caller BYE"), 0, "{:#?}", rig.wire);
    rig.advance(2);
    assert_eq!(rig.sent("core>caller BYE"), 1, "{:#?}", rig.wire);
    // The application hears of the hang-up with its cause once the media is back.
    let record = rig.record();
    assert_eq!(
        record.hangup_cause.as_deref(),
        Some("time-limit"),
        "{record:?}"
    );
    let heard = received(&mut app);
    assert!(
        heard.iter().any(|k| matches!(
            k,
            EventKind::Hangup { cause: Some(c), .. } if c == "time-limit"
        )),
        "{heard:?}"
    );
}

/// The wall clock read each second is a millisecond off now and then (it is read to the
/// millisecond): the core keeps its reckoning through such readings, so a call's times agree
/// with its timers, and takes a reading that drifted further.
#[tokio::test]
async fn the_wall_clock_is_re_anchored_only_when_it_drifts() {
    let mut rig = Rig::new(41840..=41849).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    // When the next alarm, a second away, rings: the wall time its event carries.
    let mut ring = |rig: &mut Rig| -> i64 {
        let after = Duration::from_secs(1);
        rig.command(&sid, CallCommand::SetAlarm { id: 1, after })
            .unwrap();
        rig.advance(1);
        let mut at = None;
        while let Ok(event) = app.try_recv() {
            if let EventKind::Alarm { .. } = event.kind {
                at = Some(event.at);
            }
        }
        at.expect("the alarm rang")
    };
    let first = ring(&mut rig);
    rig.core.anchor(rig.now, first + 1);
    let second = ring(&mut rig);
    assert_eq!(second, first + 1000, "a reading one off is not taken");
    rig.core.anchor(rig.now, second + 100);
    let third = ring(&mut rig);
    assert_eq!(third, second + 1100, "a drift of 100 ms is");
}

/// An observer whose receiver is gone is dropped from its call as soon as the driver finds it
/// gone: the call's later events are addressed to its application alone, not to the dead
/// subscriber until the call ends (a long call whose streams come and go would gather them).
#[tokio::test]
async fn an_observer_gone_is_dropped_from_its_call() {
    let mut rig = Rig::new(41860..=41869).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let (observer, rx) = rig.subscriber(SubscriberKind::Call, 8);
    let call = sid.clone();
    rig.request(Request::Subscribe {
        call,
        events: observer,
    });
    drop(rx);
    let play = || CallCommand::Play {
        clip: switchboard_media::tone::silence(100).into(),
        loops: 1,
        barge_in: false,
    };
    // This event finds the observer gone.
    rig.command(&sid, play()).unwrap();
    let call = sid.clone();
    let command = play();
    (rig.core).handle_request(rig.now, RequestId(77), Request::Command { call, command });
    let addressed: Vec<SubscriberId> = std::iter::from_fn(|| rig.core.poll_output())
        .filter_map(|o| match o {
            Output::Event { to, .. } => Some(to),
            _ => None,
        })
        .collect();
    assert!(
        !addressed.is_empty(),
        "the application hears of the playback"
    );
    assert!(!addressed.contains(&observer), "{addressed:?}");
}

#[tokio::test]
async fn a_gather_ends_at_its_timeout() {
    let mut rig = Rig::new(41070..=41079).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let spec = GatherSpec {
        timeout: Duration::from_secs(5),
        first_timeout: None,
        total_timeout: None,
        finish_on_key: Some('#'),
        num_digits: None,
        after_playback: false,
    };
    rig.command(&sid, CallCommand::Gather(spec)).unwrap();
    rig.advance(4);
    assert_eq!(gather_ends(&mut app), []);
    rig.advance(2);
    assert_eq!(gather_ends(&mut app), [(String::new(), "timeout")]);
}

#[tokio::test]
async fn an_alarm_rings_once_when_due_a_new_one_replaces_it_and_a_cleared_one_is_silent() {
    let mut rig = Rig::new(41180..=41189).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let alarms = |app: &mut mpsc::Receiver<CallEvent>| -> Vec<u64> {
        (received(app).into_iter())
            .filter_map(|k| match k {
                EventKind::Alarm { id } => Some(id),
                _ => None,
            })
            .collect()
    };
    let set = |id, secs| CallCommand::SetAlarm {
        id,
        after: Duration::from_secs(secs),
    };
    rig.command(&sid, set(1, 10)).unwrap();
    rig.advance(9);
    assert_eq!(alarms(&mut app), Vec::<u64>::new());
    rig.advance(2);
    assert_eq!(alarms(&mut app), [1]);
    rig.advance(30);
    assert_eq!(alarms(&mut app), Vec::<u64>::new(), "an alarm rings once");
    // A second alarm replaces the first: only the second rings, at its own time.
    rig.command(&sid, set(2, 5)).unwrap();
    rig.command(&sid, set(3, 20)).unwrap();
    rig.advance(6);
    assert_eq!(alarms(&mut app), Vec::<u64>::new());
    rig.advance(15);
    assert_eq!(alarms(&mut app), [3]);
    // Cleared: silent.
    rig.command(&sid, set(4, 5)).unwrap();
    rig.command(&sid, CallCommand::ClearAlarm).unwrap();
    rig.advance(10);
    assert_eq!(alarms(&mut app), Vec::<u64>::new());
    // An ended call's alarm does not ring, and the alarm is not part of its history.
    rig.command(&sid, set(5, 5)).unwrap();
    rig.command(&sid, CallCommand::Hangup).unwrap();
    rig.advance(10);
    assert_eq!(alarms(&mut app), Vec::<u64>::new());
    let record = rig.record();
    let stored = rig.stored_events(&record.id);
    let kinds: Vec<&str> = stored.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"hangup") && !kinds.contains(&"alarm"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_digit_restarts_the_gathers_wait_from_when_it_arrived() {
    let mut rig = Rig::new(41100..=41109).await;
    let (caller, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let spec = GatherSpec {
        timeout: Duration::from_secs(5),
        first_timeout: None,
        total_timeout: Some(Duration::from_secs(20)),
        finish_on_key: Some('#'),
        num_digits: None,
        after_playback: false,
    };
    rig.command(&sid, CallCommand::Gather(spec)).unwrap();
    rig.advance(3);
    let relay = Body {
        content_type: "application/dtmf-relay".into(),
        data: "Signal=7\r\nDuration=160\r\n".into(),
    };
    assert!(rig.caller.info(rig.now, caller, relay));
    rig.run();
    // Five seconds from the digit (t = 3 s), not from the gather (t = 0).
    rig.advance(4);
    assert_eq!(gather_ends(&mut app), []);
    rig.advance(2);
    assert_eq!(gather_ends(&mut app), [("7".to_owned(), "timeout")]);
}

/// A gather asked to wait for its prompt starts its timeout when the prompt ends (not while
/// it plays), its total time ends it even while a prompt plays, and a gather that replaces
/// another takes none of the old one's deadlines.
#[tokio::test]
async fn a_gather_after_its_prompt_times_out_from_the_prompts_end_within_its_total_time() {
    let mut rig = Rig::new(41820..=41829).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let prompt = |rig: &mut Rig| {
        let play = CallCommand::Play {
            clip: switchboard_media::tone::silence(60_000).into(),
            loops: 1,
            barge_in: false,
        };
        rig.command(&sid, play).unwrap();
        let played = rig.media.iter().rev().find_map(|c| match c {
            MediaCommand::Media {
                id,
                op: MediaOp::Play { playback, .. },
            } => Some((*id, *playback)),
            _ => None,
        });
        played.expect("the prompt is played")
    };
    let spec = |total: Option<u64>| GatherSpec {
        timeout: Duration::from_secs(5),
        first_timeout: None,
        total_timeout: total.map(Duration::from_secs),
        finish_on_key: Some('#'),
        num_digits: None,
        after_playback: true,
    };
    // A first gather with a short wait, replaced while its prompt plays by one without a
    // total time: the first one's deadlines do not end the second.
    rig.command(&sid, CallCommand::Gather(spec(Some(3))))
        .unwrap();
    let (id, playback) = prompt(&mut rig);
    rig.command(&sid, CallCommand::Gather(spec(None))).unwrap();
    rig.advance(30);
    assert_eq!(gather_ends(&mut app), [], "the prompt is still playing");
    let reason = switchboard_media::PlaybackEnd::Finished;
    let ended = MediaEvent::PlaybackEnded {
        id,
        playback,
        reason,
    };
    rig.core.handle_media_event(rig.now, ended);
    rig.run();
    rig.advance(4);
    assert_eq!(gather_ends(&mut app), []);
    rig.advance(2);
    assert_eq!(gather_ends(&mut app), [(String::new(), "timeout")]);
    // Its total time is up while a prompt still plays: it ends.
    prompt(&mut rig);
    rig.command(&sid, CallCommand::Gather(spec(Some(10))))
        .unwrap();
    rig.advance(9);
    assert_eq!(gather_ends(&mut app), []);
    rig.advance(2);
    assert_eq!(gather_ends(&mut app), [(String::new(), "timeout")]);
}

#[tokio::test]
async fn the_cores_view_of_a_call_names_its_status_and_the_recording_running() {
    let mut rig = Rig::new(41110..=41119).await;
    let (_, sid, mut app) = offered_to_app(&mut rig);
    let ringing = view(&mut rig, &sid).unwrap();
    assert_eq!(
        (ringing.status, ringing.is_up()),
        (CallStatus::Ringing, false)
    );
    rig.command(&sid, CallCommand::Answer).unwrap();
    assert!(view(&mut rig, &sid).unwrap().is_up());
    received(&mut app);
    rig.command(&sid, recording("RE1")).unwrap();
    assert_eq!(
        view(&mut rig, &sid).unwrap().recording.as_deref(),
        Some("RE1")
    );
    // A new recording replaces the one running.
    rig.command(&sid, recording("RE2")).unwrap();
    assert_eq!(
        view(&mut rig, &sid).unwrap().recording.as_deref(),
        Some("RE2")
    );
    rig.command(&sid, CallCommand::RecordStop).unwrap();
    assert_eq!(view(&mut rig, &sid).unwrap().recording, None);
    let started: Vec<_> = received(&mut app)
        .into_iter()
        .filter_map(|k| match k {
            EventKind::RecordingStarted { recording } => Some(recording),
            _ => None,
        })
        .collect();
    assert_eq!(started, ["RE1", "RE2"]);
    assert_eq!(
        view(&mut rig, "CA00000000000000000000000000000000"),
        Err(CallError::NotFound(
            "CA00000000000000000000000000000000".into()
        ))
    );
}

#[tokio::test]
async fn an_incoming_call_left_without_a_command_is_rejected_and_a_command_stands_the_wait_down() {
    let mut rig = Rig::new(41080..=41089).await;
    let (_, sid, _app) = offered_to_app(&mut rig);
    rig.command(
        &sid,
        CallCommand::ExpectCommand(Some(Duration::from_secs(2))),
    )
    .unwrap();
    rig.advance(1);
    assert_eq!(rig.sent("core>caller SIP/2.0 480"), 0, "{:#?}", rig.wire);
    rig.advance(2);
    assert_eq!(rig.sent("core>caller SIP/2.0 480"), 1, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(
        (record.status, record.hangup_cause.as_deref()),
        (CallStatus::NoAnswer, Some("no-command"))
    );

    // Another call: a command within the wait (any: here a time limit) stands it down.
    let mut rig = Rig::new(41090..=41099).await;
    let (_, sid, _app) = offered_to_app(&mut rig);
    rig.command(
        &sid,
        CallCommand::ExpectCommand(Some(Duration::from_secs(2))),
    )
    .unwrap();
    rig.command(&sid, CallCommand::LimitDuration(Duration::from_secs(3600)))
        .unwrap();
    rig.advance(10);
    assert_eq!(rig.sent("core>caller SIP/2.0 480"), 0, "{:#?}", rig.wire);
    // It is for unanswered incoming calls only.
    rig.command(&sid, CallCommand::Answer).unwrap();
    assert!(matches!(
        rig.command(
            &sid,
            CallCommand::ExpectCommand(Some(Duration::from_secs(1)))
        ),
        Err(CallError::InvalidState { .. })
    ));
}

/// A call a route connects is a call like any other: the core's view finds it, an observer
/// hears its events, it takes the commands on its caller's media and a time limit (both
/// parties hung up at it), and refuses the ones that would answer it or move it.
#[tokio::test]
async fn a_routed_call_takes_commands_and_is_hung_up_on_both_legs_at_its_time_limit() {
    let mut rig = Rig::new(41120..=41129).await;
    answered(&mut rig).await;
    let sid = (rig.writes.iter())
        .find_map(|w| match w {
            StoreWrite::Call(c) => Some(c.id.clone()),
            _ => None,
        })
        .expect("a routed call has a SID");
    assert_eq!(view(&mut rig, &sid).unwrap().status, CallStatus::InProgress);
    let (events, mut observer) = rig.subscriber(SubscriberKind::Call, 64);
    let call = sid.clone();
    rig.request(Request::Subscribe { call, events });
    assert_eq!(
        rig.command(&sid, CallCommand::Answer),
        Err(CallError::Routed)
    );
    let elsewhere = CallCommand::Bridge("CA00000000000000000000000000000000".into());
    assert_eq!(rig.command(&sid, elsewhere), Err(CallError::Routed));
    rig.command(&sid, recording("RE1")).unwrap();
    assert_eq!(
        view(&mut rig, &sid).unwrap().recording.as_deref(),
        Some("RE1")
    );
    rig.command(&sid, CallCommand::LimitDuration(Duration::from_secs(60)))
        .unwrap();
    rig.advance(59);
    assert_eq!(rig.sent("core>caller BYE"), 0, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee BYE"), 0, "{:#?}", rig.wire);
    rig.advance(2);
    assert_eq!(rig.sent("core>caller BYE"), 1, "{:#?}", rig.wire);
    assert_eq!(rig.sent("core>callee BYE"), 1, "{:#?}", rig.wire);
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed, "{record:?}");
    assert_eq!(record.hangup_cause.as_deref(), Some("time-limit"));
    let legs: Vec<&str> = record.legs.iter().map(|l| l.leg.as_str()).collect();
    assert_eq!(legs, ["caller", "callee"], "both legs, in the call's order");
    // The hang-up, then the recording it stopped, saved.
    let heard = received(&mut observer);
    assert!(
        matches!(
            &heard[..],
            [
                EventKind::RecordingStarted { .. },
                EventKind::Hangup { cause: Some(c), .. },
                EventKind::RecordingSaved { error: None, .. },
            ] if c == "time-limit"
        ),
        "{heard:?}"
    );
}

#[tokio::test]
async fn a_route_that_asks_for_services_hands_its_call_to_them_at_the_answer_and_hears_back() {
    use crate::call::dial_plan::{RouteFeatures, RouteServices, RouteStream, StreamProtocol};
    use switchboard_media::TapTracks;
    let services = RouteServices {
        stream: Some(RouteStream {
            url: "wss://bot.example/media".into(),
            tracks: TapTracks::Inbound,
            protocol: StreamProtocol::Twilio,
        }),
        transcribe: Some(TapTracks::Both),
        detect_machine: true,
    };
    let features = RouteFeatures {
        services: services.clone(),
        ..Default::default()
    };
    let mut rig = Rig::routed(41240..=41249, features).await;
    let caller = rig.call();
    rig.run();
    let callee = rig.incoming();
    rig.callee.respond(rig.now, callee, 180, None);
    rig.run();
    assert!(rig.served.is_empty(), "served before the answer");
    rig.callee
        .respond(rig.now, callee, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    rig.caller.ack(caller, None);
    rig.run();
    let sid = (rig.writes.iter())
        .find_map(|w| match w {
            StoreWrite::Call(c) => Some(c.id.clone()),
            _ => None,
        })
        .expect("a SID");
    let [served] = &rig.served[..] else {
        panic!("served {:?}", rig.served);
    };
    assert_eq!(served.call, sid);
    assert_eq!(
        (served.from.as_str(), served.to.as_str()),
        ("+15550000", "+15551234")
    );
    assert_eq!(served.services, services);
    // What the services find comes back as the call's events: a final transcript is kept in
    // its history, an interim one only shown to its observers.
    let (events, mut observer) = rig.subscriber(SubscriberKind::Call, 64);
    let call = sid.clone();
    rig.request(Request::Subscribe { call, events });
    let transcript = |text: &str, is_final| {
        CallCommand::Report(EventKind::Transcript {
            track: "outbound",
            text: text.into(),
            confidence: 0.9,
            is_final,
        })
    };
    rig.command(&sid, transcript("hello", false)).unwrap();
    rig.command(&sid, transcript("hello there", true)).unwrap();
    let detected = EventKind::MachineDetection {
        result: "human",
        after_ms: 1200,
    };
    rig.command(&sid, CallCommand::Report(detected.clone()))
        .unwrap();
    let heard = received(&mut observer);
    assert_eq!(heard.len(), 3, "{heard:?}");
    assert_eq!(heard[2], detected);
    let stored: Vec<bool> = heard.iter().map(EventKind::stored).collect();
    assert_eq!(stored, [false, true, true]);
    // The core's own events are not another part's to report.
    let forged = CallCommand::Report(EventKind::Answered { codec: None });
    assert!(matches!(
        rig.command(&sid, forged),
        Err(CallError::BadArgument(_))
    ));
    // Hung up and let go, the call still takes the transcript of its last words, recognised
    // after the hang-up: stored after its last event.
    rig.caller.hangup(rig.now, caller, 200);
    rig.run();
    let record = rig.record();
    assert!(record.ended_at.is_some());
    assert!(
        matches!(view(&mut rig, &sid), Err(CallError::NotFound(_))),
        "the core let the call go"
    );
    let last = rig.stored_events(&sid).last().map(|e| e.seq).unwrap();
    rig.command(&sid, transcript("goodbye then", true)).unwrap();
    rig.run();
    let late = *rig.stored_events(&sid).last().unwrap();
    assert_eq!((late.seq, late.kind.as_str()), (last + 1, "transcript"));
    assert!(late.detail.contains("goodbye then"), "{}", late.detail);
    // A call never known, or long gone, takes nothing.
    assert!(matches!(
        rig.command("CA0000", transcript("who?", true)),
        Err(CallError::NotFound(_))
    ));
    // A route without services serves none.
    let mut plain = Rig::new(41250..=41259).await;
    answered(&mut plain).await;
    assert!(plain.served.is_empty(), "{:?}", plain.served);
}

/// An account's watchers (the live socket's) get each event of its calls as it happens; one
/// that falls behind (its queue full) is let go — its receiver sees the end after what it
/// had, so its socket closes with the reason — and the others go on; another account's
/// watcher hears nothing.
#[tokio::test]
async fn a_watcher_that_falls_behind_is_let_go_and_the_others_go_on() {
    let mut rig = Rig::new(41270..=41279).await;
    two_devices(&mut rig);
    let watch = |rig: &mut Rig, account: &str, room: usize| {
        let (events, rx) = rig.subscriber(SubscriberKind::Watcher, room);
        let account = account.to_owned();
        rig.request(Request::WatchAccount { account, events });
        rx
    };
    let mut keeping = watch(&mut rig, "AC1", 64);
    let mut slow = watch(&mut rig, "AC1", 1);
    let mut stranger = watch(&mut rig, "AC2", 64);
    let (sid, _app, rung) = call_alice(&mut rig);
    rig.callee.respond(rig.now, rung[0].0, 180, None);
    rig.run();
    let kept: Vec<CallEvent> = std::iter::from_fn(|| keeping.try_recv().ok()).collect();
    assert!(kept.len() >= 2, "{kept:?}");
    assert!(kept.iter().all(|e| e.call == sid), "{kept:?}");
    let seqs: Vec<u32> = kept.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..kept.len() as u32).collect::<Vec<_>>(), "in order");
    // The slow one had room for one: it gets that one, then the end.
    assert_eq!(slow.try_recv().map(|e| e.seq), Ok(0));
    assert_eq!(
        slow.try_recv().unwrap_err(),
        mpsc::error::TryRecvError::Disconnected
    );
    assert_eq!(
        stranger.try_recv().unwrap_err(),
        mpsc::error::TryRecvError::Empty
    );
    // The call goes on for the one that keeps up.
    rig.callee
        .respond(rig.now, rung[0].0, 200, Some(sdp("10.0.0.3", 5000)));
    rig.run();
    assert!(
        std::iter::from_fn(|| keeping.try_recv().ok()).any(|e| e.seq as usize >= kept.len()),
        "later events still reach the watcher that keeps up"
    );
}

/// What an application hears back comes after what its request asked of the engine: the
/// reply to a command and the events it causes wait until the media commands are out, so an
/// application that hears of an answer, a playback or a bridge may rely on the engine knowing
/// of it (the driver hands the engine everything before it sends replies and flushes events).
#[tokio::test]
async fn an_application_hears_back_only_after_the_engine_is_told() {
    let mut rig = Rig::new(41330..=41339).await;
    let (_, sid, mut app) = answered_by_app(&mut rig);
    received(&mut app);
    let endpoint = rig.endpoint_of(&sid);
    let clip = switchboard_media::tone::sines(&[800.0], 8000.0, 100).into();
    let command = CallCommand::Play {
        clip,
        loops: 1,
        barge_in: false,
    };
    let call = sid.clone();
    (rig.core).handle_request(rig.now, RequestId(99), Request::Command { call, command });
    let (mut order, mut playback) = (Vec::new(), 0);
    while let Some(output) = rig.core.poll_output() {
        match output {
            Output::Media(MediaCommand::Media {
                op: MediaOp::Play { playback: p, .. },
                ..
            }) => {
                playback = p;
                order.push("play");
            }
            Output::Reply { to, answer } => {
                assert_eq!(to, RequestId(99));
                assert!(matches!(answer, Answer::Done(Ok(()))), "{answer:?}");
                order.push("reply");
            }
            Output::Event { to, call, event } => {
                assert_eq!(event.kind.name(), "playback-started");
                rig.subscribers.deliver(to, call, event);
                order.push("event");
            }
            _ => {}
        }
    }
    assert_eq!(order[0], "play", "the engine is told first: {order:?}");
    assert!(order.contains(&"reply"), "{order:?}");
    // The playback's events, the one the command made and the engine's, wait for the flush.
    let reason = switchboard_media::PlaybackEnd::Finished;
    (rig.core).handle_media_event(
        rig.now,
        MediaEvent::PlaybackEnded {
            id: endpoint,
            playback,
            reason,
        },
    );
    while let Some(output) = rig.core.poll_output() {
        if let Output::Event { to, call, event } = output {
            rig.subscribers.deliver(to, call, event);
        }
    }
    assert!(received(&mut app).is_empty(), "nothing before the flush");
    rig.subscribers.flush();
    let heard = received(&mut app);
    assert!(
        matches!(
            &heard[..],
            [
                EventKind::PlaybackStarted { .. },
                EventKind::PlaybackEnded { .. }
            ]
        ),
        "{heard:#?}"
    );
}

/// A recorder still finishing its file holds the call's last write back; the call's row says
/// how it ended before the hangup event is written, so that a reader who follows the event to
/// the call finds it completed, not still in progress.
#[tokio::test]
async fn an_ended_calls_row_is_written_before_its_hangup_while_its_recording_is_saved() {
    let mut rig = Rig::new(41400..=41409).await;
    rig.slow_recorder = true;
    let (_, sid, _app) = answered_by_app(&mut rig);
    rig.command(&sid, recording("RE1")).unwrap();
    rig.command(&sid, CallCommand::Hangup).unwrap();
    rig.run();
    let position = |rig: &Rig, is: &dyn Fn(&StoreWrite) -> bool| rig.writes.iter().position(is);
    let completed =
        |w: &StoreWrite| matches!(w, StoreWrite::Call(c) if c.status == CallStatus::Completed);
    let hangup = |w: &StoreWrite| matches!(w, StoreWrite::Event(e) if e.kind == "hangup");
    let (row, event) = (position(&rig, &completed), position(&rig, &hangup));
    assert!(
        matches!((row, event), (Some(r), Some(e)) if r < e),
        "{:#?}",
        rig.writes
    );
    // Once saved, the call is closed with the same ending.
    rig.save_recordings();
    let record = rig.record();
    assert_eq!(record.status, CallStatus::Completed);
    assert!(
        rig.writes
            .iter()
            .any(|w| matches!(w, StoreWrite::Recording(r) if r.status == "completed"))
    );
}

/// A supervisor on a bridged call: the two leave their relay for a mix with the supervisor,
/// whose role decides who hears it (muted to monitor, heard by the supervised call alone to
/// whisper); the supervisor's hang-up relays the two again, a hang-up of the supervised call
/// ends the mix with no relay; a call not bridged, or supervised already, is refused.
#[tokio::test]
async fn a_supervisor_joins_a_bridge_in_its_role_and_leaves_it_relayed() {
    let mut rig = Rig::new(41420..=41439).await;
    let (events, mut app) = rig.subscriber(SubscriberKind::Controller, 64);
    rig.request(Request::Control {
        dialed: Dialed::Prefix(String::new()),
        events,
    });
    let mut calls = Vec::new();
    for _ in 0..4 {
        let leg = rig.call();
        rig.run();
        let sid = loop {
            match app.try_recv() {
                Ok(CallEvent {
                    call,
                    kind: EventKind::Incoming { .. },
                    ..
                }) => break call,
                Ok(_) => {}
                Err(e) => panic!("no call offered: {e:?}"),
            }
        };
        rig.command(&sid, CallCommand::Answer).unwrap();
        leg_events(&mut rig.caller);
        rig.caller.ack(leg, None);
        rig.run();
        let endpoint = rig.endpoint_of(&sid);
        calls.push((sid, endpoint));
    }
    let [(a, ea), (b, eb), (s, es), (other, _)] = &calls[..] else {
        unreachable!()
    };
    let supervise = |call: &str, role| CallCommand::Supervise {
        call: call.to_owned(),
        role,
    };
    assert!(
        matches!(
            rig.command(s, supervise(a, SupervisorRole::Barge)),
            Err(CallError::BadArgument(_))
        ),
        "not bridged"
    );
    rig.command(a, CallCommand::Bridge(b.clone())).unwrap();
    rig.run();
    rig.media.clear();
    rig.command(s, supervise(a, SupervisorRole::Monitor))
        .unwrap();
    rig.run();
    let media: Vec<_> = rig.media.drain(..).collect();
    let joined: Vec<_> = (media.iter())
        .filter_map(|c| match c {
            MediaCommand::Join { id, conference } => Some((*id, *conference)),
            _ => None,
        })
        .collect();
    assert_eq!(
        joined.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [*ea, *eb, *es],
        "{media:#?}"
    );
    assert!(joined.iter().all(|(_, c)| *c == joined[0].1), "one mix");
    assert!(
        matches!(media[0], MediaCommand::Unbridge { id } if id == *ea),
        "{media:#?}"
    );
    assert!(media.iter().any(|c| matches!(c,
        MediaCommand::Media { id, op: MediaOp::Mute(true) } if id == es)));
    assert!(media.iter().any(|c| matches!(c,
        MediaCommand::Coach { id, coached: None } if id == es)));
    assert!(
        matches!(
            rig.command(other, supervise(b, SupervisorRole::Barge)),
            Err(CallError::BadArgument(_))
        ),
        "one supervisor a bridge"
    );
    rig.command(s, CallCommand::SupervisorRole(SupervisorRole::Whisper))
        .unwrap();
    rig.run();
    let media: Vec<_> = rig.media.drain(..).collect();
    assert!(media.iter().any(|c| matches!(c,
        MediaCommand::Media { id, op: MediaOp::Mute(false) } if id == es)));
    assert!(media.iter().any(|c| matches!(c,
        MediaCommand::Coach { id, coached: Some(to) } if id == es && to == ea)));
    // The supervisor hangs up: the two are relayed again, still bridged.
    rig.command(s, CallCommand::Hangup).unwrap();
    rig.run();
    let media: Vec<_> = rig.media.drain(..).collect();
    for e in [es, ea, eb] {
        assert!(
            media
                .iter()
                .any(|c| matches!(c, MediaCommand::Leave { id } if id == e)),
            "{media:#?}"
        );
    }
    assert!(
        media.iter().any(|c| matches!(c,
            MediaCommand::Bridge { a: x, b: y } if (x, y) == (ea, eb))),
        "{media:#?}"
    );
    assert_eq!(rig.peer_of(a).as_ref(), Some(b), "still bridged");
    // Supervised again; the supervised call hangs up: the mix ends, nothing is relayed.
    rig.command(other, supervise(b, SupervisorRole::Barge))
        .unwrap();
    rig.run();
    rig.media.clear();
    rig.command(a, CallCommand::Hangup).unwrap();
    rig.run();
    let media: Vec<_> = rig.media.drain(..).collect();
    assert!(
        !media
            .iter()
            .any(|c| matches!(c, MediaCommand::Bridge { .. })),
        "{media:#?}"
    );
    // The supervision is over: the supervisor has no role left to switch.
    assert!(matches!(
        rig.command(other, CallCommand::SupervisorRole(SupervisorRole::Whisper)),
        Err(CallError::BadArgument(_))
    ));
}

/// A number whose connection bounds its calls in takes that many at once, whoever takes them
/// (here an application): the next is refused 403 in the dialect's words, and the first one
/// ending frees its channel.
#[tokio::test]
async fn calls_to_a_number_over_its_connections_inbound_limit_are_refused_in_the_dialects_words() {
    use crate::call::dial_plan::TenantTrunks;
    use crate::call::{ChannelLimit, Rejection};
    let mut rig = Rig::new(42020..=42029).await;
    let limit = ChannelLimit {
        group: "connection-in:1".into(),
        max: 1,
    };
    let phrase = "Channel limit exceeded D22".to_owned();
    let tenant = TenantTrunks {
        inbound_limits: HashMap::from([("+15551234".to_owned(), (limit, phrase))]),
        ..Default::default()
    };
    rig.request(Request::TenantTrunks(Box::new(tenant)));
    let (_, first, mut app) = offered_to_app(&mut rig);
    rig.call();
    rig.run();
    assert_eq!(
        rig.sent("core>caller SIP/2.0 403 Channel limit exceeded D22"),
        1,
        "{:#?}",
        rig.wire
    );
    assert!(app.try_recv().is_err(), "the application heard of it");
    // The application turns the first away: its channel is free, and the next call is
    // offered.
    rig.command(&first, CallCommand::Reject(Rejection::Busy))
        .unwrap();
    rig.run();
    while app.try_recv().is_ok() {}
    rig.call();
    rig.run();
    assert!(
        std::iter::from_fn(|| app.try_recv().ok())
            .any(|e| matches!(e.kind, EventKind::Incoming { .. })),
        "{:#?}",
        rig.wire
    );
    assert_eq!(rig.sent("core>caller SIP/2.0 403"), 1, "{:#?}", rig.wire);
}
