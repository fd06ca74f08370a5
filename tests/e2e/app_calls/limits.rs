//! What stops by itself: a call at its time limit, a recording on silence or at its length.

use super::*;

/// The core hangs a call up at its time limit (Twilio's `<Dial timeLimit>`, Telnyx's
/// `time_limit_secs`): a later limit replaces an earlier one, the callee gets a BYE when it
/// passes, and the hangup says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_hung_up_at_its_time_limit() {
    let net = Net::new(140);
    let core = start_core(&net, 34900..=34919).await;
    let phone = rtp_socket(&net, 5);
    let port = phone.local_addr().unwrap().port().to_string();
    let uas = uas_media_at(&net, &net.ip(5), &port, &[]);
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    let (sid, mut events) = call_carrier_b(&core, None).await;
    until(&mut events, |e| matches!(e, EventKind::Answered { .. })).await;
    let limit = |d| {
        let (control, sid) = (core.control.clone(), sid.clone());
        async move { control.command(&sid, CallCommand::LimitDuration(d)).await }
    };
    // A first limit of 200 ms, replaced at once by one of 1.5 s.
    limit(Duration::from_millis(200)).await.unwrap();
    let set = std::time::Instant::now();
    limit(Duration::from_millis(1500)).await.unwrap();
    let seen = until(&mut events, |e| matches!(e, EventKind::Hangup { .. })).await;
    let lasted = set.elapsed();
    assert!(
        matches!(
            seen.last(),
            Some(EventKind::Hangup {
                status: CallStatus::Completed,
                sip_code: Some(200),
                by: HangupBy::System,
                cause: Some(cause),
                ..
            }) if cause == "time-limit"
        ),
        "{seen:?}"
    );
    assert!(
        (Duration::from_millis(1400)..Duration::from_secs(5)).contains(&lasted),
        "hung up {lasted:?} after the 1.5 s limit was set"
    );
    assert!(
        blocking(move || callee.finished_ok(Duration::from_secs(5)))
            .await
            .unwrap(),
        "the callee got its BYE"
    );
}

/// A recording stops by itself in the core: after a second of the party's silence (a phone
/// that sends nothing at all is silent too), and at its length while the party talks on;
/// each says why, then is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_stops_by_itself_on_silence_or_at_its_length() {
    use switchboard_media::record::StopWhen;
    let net = Net::new(141);
    let core = start_core(&net, 34900..=34919).await;
    let phone = rtp_socket(&net, 5);
    let (callee, media) = common::callee_telling_media(&net, &phone);
    let (sid, mut events) = call_carrier_b(&core, None).await;
    until(&mut events, |e| matches!(e, EventKind::Answered { .. })).await;
    let to = blocking(media).await.unwrap();
    let record = |stop: StopWhen| {
        let (control, sid) = (core.control.clone(), sid.clone());
        let options = RecordOptions {
            channels: Channels::Mono,
            format: RecordFormat::Pcm16,
            tracks: TapTracks::Inbound,
            trim_silence: false,
            sid: None,
            origin: RecordingOrigin::Api,
            stop,
        };
        async move {
            control
                .command(&sid, CallCommand::RecordStart(options))
                .await
        }
    };
    let stopped_and_saved = async |events: &mut mpsc::Receiver<_>| {
        let seen = until(events, |e| matches!(e, EventKind::RecordingSaved { .. })).await;
        let reason = seen.iter().find_map(|e| match e {
            EventKind::RecordingStopped { reason, .. } => Some(*reason),
            _ => None,
        });
        let Some(EventKind::RecordingSaved { duration_ms, .. }) = seen.last() else {
            unreachable!()
        };
        (reason, *duration_ms)
    };

    // The phone sends nothing: a second of silence ends it.
    let started = std::time::Instant::now();
    record(StopWhen {
        silence: Some(Duration::from_secs(1)),
        max_length: Some(Duration::from_secs(20)),
        silence_after_speech: false,
    })
    .await
    .unwrap();
    let (reason, _) = stopped_and_saved(&mut events).await;
    assert_eq!(reason, Some("silence"));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950), "stopped after {took:?}");

    // The phone talks for 3 s: a 1.5 s recording ends at its length, not on silence.
    record(StopWhen {
        silence: Some(Duration::from_secs(1)),
        max_length: Some(Duration::from_millis(1500)),
        silence_after_speech: false,
    })
    .await
    .unwrap();
    let talk = blocking(move || {
        let tone = switchboard_media::tone::sines(&[700.0], 8000.0, 3000);
        send_audio(&phone, to, &tone, 100);
    });
    let (reason, duration_ms) = stopped_and_saved(&mut events).await;
    assert_eq!(reason, Some("max-length"));
    assert!(
        (1300..=1700).contains(&duration_ms),
        "recorded {duration_ms} ms"
    );
    talk.await.unwrap();
    core.control
        .command(&sid, CallCommand::Hangup)
        .await
        .unwrap();
    assert!(
        blocking(move || callee.finished_ok(Duration::from_secs(5)))
            .await
            .unwrap()
    );
}
