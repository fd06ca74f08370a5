//! A conference of three calls: wait music, hold, recording, end on exit.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_calls_meet_in_a_conference_with_wait_music_hold_recording_and_end_on_exit() {
    let net = Net::new(44);
    let core = start_core(&net, 34300..=34329).await;
    let mut a = call_phone(&net, &core, 3).await;
    let mut b = call_phone(&net, &core, 6).await;
    let mut c = call_phone(&net, &core, 7).await;
    let cmd = |sid: &str, c: CallCommand| {
        let (control, sid) = (core.control.clone(), sid.to_owned());
        async move { control.command(&sid, c).await.unwrap() }
    };
    let join = |start_on_enter, end_on_exit, record| {
        CallCommand::ConferenceJoin(JoinSpec {
            name: "room".into(),
            muted: false,
            start_on_enter,
            end_on_exit,
            wait_music: Some(tone::sines(&[400.0], 6000.0, 1000).into()),
            record,
            trim_silence: true,
            beep: Beep::Both,
            label: None,
            sid: None,
            shown_as: None,
            coach: None,
        })
    };

    // Alone, A waits with music; it has not started.
    cmd(&a.sid, join(true, true, Some(RecordFormat::Mp3))).await;
    let EventKind::ConferenceJoined { conference, .. } = next(&mut a.events).await.kind else {
        panic!("not joined")
    };
    assert!(conference.starts_with("CF") && conference.len() == 34);
    let rx = a.rtp.try_clone().unwrap();
    let (music, a_endpoint) = blocking(move || receive_audio(&rx, 10, Law::Ulaw))
        .await
        .unwrap();
    assert!(tone::share_at(&music, 400.0) > 0.9, "wait music");

    // B makes two, and A may start it: both hear it start, A's recording of the mix begins.
    cmd(&b.sid, join(false, false, None)).await;
    let started = EventKind::ConferenceStarted {
        conference: conference.clone(),
        by: b.sid.clone(),
    };
    let seen = until(&mut a.events, |e| {
        matches!(e, EventKind::RecordingStarted { .. })
    })
    .await;
    assert!(seen.contains(&started), "{seen:?}");
    until(&mut b.events, |e| *e == started).await;
    cmd(&c.sid, join(true, false, None)).await;
    until(&mut c.events, |e| {
        matches!(e, EventKind::ConferenceJoined { .. })
    })
    .await;
    // C's coming is announced with a beep that everyone hears.
    drain(&a.rtp);
    let rx = a.rtp.try_clone().unwrap();
    let (beep, _) = blocking(move || receive_audio(&rx, 10, Law::Ulaw))
        .await
        .unwrap();
    assert!(tone::share_at(&beep, 1000.0) > 0.8, "the beep");
    until_hearing(&a, 1000.0, false).await;

    // Each hears the other two and not itself.
    let learn = |p: &Phone| {
        let rx = p.rtp.try_clone().unwrap();
        blocking(move || receive_audio(&rx, 1, Law::Ulaw).1)
    };
    let (b_endpoint, c_endpoint) = (learn(&b).await.unwrap(), learn(&c).await.unwrap());
    let endpoints = [a_endpoint, b_endpoint, c_endpoint];
    let freqs = [500.0, 900.0, 1300.0];
    let heard = all_talk(&[&a, &b, &c], &freqs, &endpoints).await;
    for (i, h) in heard.iter().enumerate() {
        let settled = &h[10 * FRAME..];
        let shares: Vec<f32> = freqs.iter().map(|&f| tone::share_at(settled, f)).collect();
        for (j, share) in shares.iter().enumerate() {
            if i == j {
                assert!(*share < 0.05, "phone {i} hears itself: {shares:?}");
            } else {
                assert!(*share > 0.25, "phone {i} misses phone {j}: {shares:?}");
            }
        }
    }

    // C on hold hears its hold music, and A no longer hears C.
    cmd(
        &c.sid,
        CallCommand::Hold(Some(tone::sines(&[700.0], 6000.0, 1000).into())),
    )
    .await;
    until_hearing(&c, 700.0, true).await;
    let heard = all_talk(&[&a, &b, &c], &freqs, &endpoints).await;
    let tail = |h: &Vec<i16>| h[10 * FRAME..].to_vec();
    assert!(tone::share_at(&tail(&heard[2]), 700.0) > 0.9, "hold music");
    assert!(
        tone::share_at(&tail(&heard[0]), 1300.0) < 0.05,
        "the held call is heard"
    );
    assert!(tone::share_at(&tail(&heard[0]), 900.0) > 0.8);

    // A leaves with end-on-exit: the conference ends for B and C, whose calls go on.
    cmd(&a.sid, CallCommand::ConferenceLeave).await;
    let seen = until(&mut a.events, |e| {
        matches!(e, EventKind::RecordingSaved { .. })
    })
    .await;
    assert!(seen.contains(&EventKind::ConferenceLeft {
        conference: conference.clone(),
        reason: "left"
    }));
    let Some(EventKind::RecordingSaved {
        path,
        channels,
        duration_ms,
        error,
        ..
    }) = seen.last().cloned()
    else {
        unreachable!()
    };
    assert_eq!((channels, error), (1, None));
    assert!(duration_ms > 1500, "{duration_ms} ms of mix");
    assert!(
        path.contains(&conference) && path.ends_with(".mp3"),
        "{path}"
    );
    let mix = switchboard_media::decode::decode_to_8k(std::fs::read(&path).unwrap(), None).unwrap();
    // Two beeps, everyone for a second, then A and B for another. Each is looked for in 100 ms
    // windows, not as a share of the whole file: on a loaded machine the three phones' seconds
    // overlap less, and C's second is then a small share of a file that is mostly A and B.
    for f in [500.0, 900.0, 1300.0, 1000.0] {
        let windows = mix
            .chunks_exact(800)
            .filter(|w| tone::share_at(w, f) > 0.2)
            .count();
        assert!(
            windows >= 3,
            "{f} Hz in {windows} windows of the recorded mix"
        );
    }
    for p in [&mut b, &mut c] {
        // Each leaves (reason `ended`), then learns why it ended.
        let seen = until(&mut p.events, |e| {
            matches!(e, EventKind::ConferenceEnded { .. })
        })
        .await;
        assert_eq!(
            seen.last().unwrap(),
            &EventKind::ConferenceEnded {
                conference: conference.clone(),
                reason: "participant-with-end-conference-on-exit-left",
                ended_by: Some(a.sid.clone()),
            }
        );
        assert!(seen.contains(&EventKind::ConferenceLeft {
            conference: conference.clone(),
            reason: "ended"
        }));
    }
    // The store writes in batches: the row completes shortly after the event.
    let mut status = String::new();
    for _ in 0..50 {
        let recs = core.store.recordings_of(&conference).await.unwrap();
        assert_eq!(recs.len(), 1);
        status = recs[0].status.clone();
        if status == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "completed");

    for p in [a, b, c] {
        core.control
            .command(&p.sid, CallCommand::Hangup)
            .await
            .unwrap();
        let sipp = p.sipp;
        assert!(
            blocking(move || sipp.finished_ok(Duration::from_secs(5)))
                .await
                .unwrap()
        );
    }
}
