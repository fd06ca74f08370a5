//! An application's calls and their commands: originate, play, gather, record, tap, hang up;
//! incoming calls answered, rejected and bridged; an MP3 from a URL and speech.

use super::*;

/// The m= line's formats and rtpmaps of a caller offering PCMA, PCMU and telephone-event.
const G711_OFFER: &str = "8 0 101\n      a=rtpmap:8 PCMA/8000\n      a=rtpmap:0 PCMU/8000\n      \
    a=rtpmap:101 telephone-event/8000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originated_call_plays_gathers_records_taps_and_hangs_up() {
    let net = Net::new(41);
    let core = start_core(&net, 34000..=34019).await;
    let phone = rtp_socket(&net, 5);
    let port = phone.local_addr().unwrap().port().to_string();
    let uas = uas_media_at(&net, &net.ip(5), &port, &[]);
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);

    let (sid, mut events) = call_carrier_b(&core, None).await;
    assert!(sid.starts_with("CA") && sid.len() == 34);
    let seen = until(&mut events, |e| matches!(e, EventKind::Answered { .. })).await;
    // The answer names the codec the callee agreed to.
    let codec = Some(switchboard_control::call::AgreedCodec {
        name: "PCMU".into(),
        rate: 8000,
    });
    assert_eq!(
        seen,
        [
            EventKind::Initiated,
            EventKind::Ringing,
            EventKind::Answered { codec }
        ]
    );
    let cmd = |c: CallCommand| {
        let (control, sid) = (core.control.clone(), sid.clone());
        async move { control.command(&sid, c).await.unwrap() }
    };

    // Play: a 1 kHz clip reaches the phone, and its end is reported.
    cmd(CallCommand::Play {
        clip: tone::sines(&[1000.0], 8000.0, 400).into(),
        loops: 1,
        barge_in: false,
    })
    .await;
    let p = phone.try_clone().unwrap();
    let (heard, endpoint) = blocking(move || receive_audio(&p, 20, Law::Ulaw))
        .await
        .unwrap();
    assert!(
        tone::share_at(&heard, 1000.0) > 0.9,
        "the clip arrived: {}",
        tone::share_at(&heard, 1000.0)
    );
    let seen = until(&mut events, |e| {
        matches!(e, EventKind::PlaybackEnded { .. })
    })
    .await;
    assert_eq!(seen[0], EventKind::PlaybackStarted { playback: 1 });

    // Silence when idle: nothing else goes to the phone, yet its RTP flows, 20 ms apart.
    cmd(CallCommand::SilenceWhenIdle(true)).await;
    let p = phone.try_clone().unwrap();
    let (silence, started) = blocking(move || {
        let started = std::time::Instant::now();
        (receive_audio(&p, 25, Law::Ulaw).0, started.elapsed())
    })
    .await
    .unwrap();
    assert!(silence.iter().all(|&s| s.abs() < 50), "silence");
    assert!(
        (Duration::from_millis(400)..Duration::from_millis(800)).contains(&started),
        "25 packets in {started:?}"
    );
    cmd(CallCommand::SilenceWhenIdle(false)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drain(&phone);

    // Gather: RFC 4733 digits from the phone, ended by the finish key.
    cmd(CallCommand::Gather(GatherSpec {
        timeout: Duration::from_secs(3),
        first_timeout: None,
        total_timeout: None,
        finish_on_key: Some('#'),
        num_digits: None,
        after_playback: false,
    }))
    .await;
    let p = phone.try_clone().unwrap();
    blocking(move || {
        let mut seq = 100;
        for (i, d) in [4u8, 2, 11].into_iter().enumerate() {
            send_rfc4733(&p, endpoint, d, &mut seq, 50_000 + i as u32 * 4000);
        }
    })
    .await
    .unwrap();
    let seen = until(&mut events, |e| matches!(e, EventKind::GatherEnded { .. })).await;
    let digits: String = seen
        .iter()
        .filter_map(|e| match e {
            EventKind::Dtmf { digit, .. } => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, "42#");
    assert_eq!(
        seen.last().unwrap(),
        &EventKind::GatherEnded {
            digits: "42".into(),
            reason: "finish-key"
        }
    );
    // A gather with nothing pressed times out: after the wait between digits, or sooner
    // when the first digit's wait or the whole gather's time is shorter (a 60 s wait between
    // digits would outlast `next`'s patience).
    for (between, first, total) in [
        (300, None, None),
        (60_000, Some(300), None),
        (60_000, None, Some(300)),
    ] {
        cmd(CallCommand::Gather(GatherSpec {
            timeout: Duration::from_millis(between),
            first_timeout: first.map(Duration::from_millis),
            total_timeout: total.map(Duration::from_millis),
            finish_on_key: Some('#'),
            num_digits: Some(4),
            after_playback: false,
        }))
        .await;
        assert_eq!(
            next(&mut events).await.kind,
            EventKind::GatherEnded {
                digits: String::new(),
                reason: "timeout"
            }
        );
    }

    // Record both directions while the phone sends 440 Hz and we play 1200 Hz.
    cmd(CallCommand::RecordStart(RecordOptions {
        channels: Channels::Dual,
        format: RecordFormat::Pcm16,
        tracks: TapTracks::Both,
        trim_silence: false,
        sid: None,
        origin: RecordingOrigin::Api,
        stop: Default::default(),
    }))
    .await;
    cmd(CallCommand::Play {
        clip: tone::sines(&[1200.0], 8000.0, 1000).into(),
        loops: 1,
        barge_in: false,
    })
    .await;
    let p = phone.try_clone().unwrap();
    blocking(move || send_audio(&p, endpoint, &tone::sines(&[440.0], 6000.0, 1000), 200))
        .await
        .unwrap();
    cmd(CallCommand::RecordStop).await;
    let seen = until(&mut events, |e| {
        matches!(e, EventKind::RecordingSaved { .. })
    })
    .await;
    let EventKind::RecordingSaved {
        recording,
        path,
        duration_ms,
        channels,
        error,
        ..
    } = seen.last().unwrap().clone()
    else {
        unreachable!()
    };
    assert!(seen.iter().any(|e| *e
        == EventKind::RecordingStarted {
            recording: recording.clone()
        }));
    assert_eq!((channels, error), (2, None));
    assert!((900..=1200).contains(&duration_ms), "{duration_ms} ms");
    assert!(path.starts_with(core.recordings.to_str().unwrap()));
    let bytes = std::fs::read(&path).unwrap();
    let samples: Vec<i16> = bytes[44..]
        .chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(
        tone::share_at(&left, 440.0) > 0.7,
        "the phone on the left: {}",
        tone::share_at(&left, 440.0)
    );
    assert!(
        tone::share_at(&right, 1200.0) > 0.7,
        "our audio on the right: {}",
        tone::share_at(&right, 1200.0)
    );
    // Drain what was played during the recording.
    while phone
        .set_read_timeout(Some(Duration::from_millis(100)))
        .is_ok()
        && phone.recv_from(&mut [0u8; 2048]).is_ok()
    {}
    phone
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();

    // Tap the phone's audio; inject frames with a mark.
    let (tap_tx, mut tap) = mpsc::channel(64);
    let tap_id = TapId::next();
    cmd(CallCommand::TapStart {
        tap: tap_id,
        tracks: TapTracks::Inbound,
        tx: tap_tx.into(),
    })
    .await;
    // The 1200 Hz clip may end after the recording was saved.
    let seen = until(&mut events, |e| {
        *e == EventKind::TapStarted { tap: tap_id.0 }
    })
    .await;
    assert!(
        seen[..seen.len() - 1]
            .iter()
            .all(|e| matches!(e, EventKind::PlaybackEnded { playback: 2, .. }))
    );
    let p = phone.try_clone().unwrap();
    blocking(move || send_audio(&p, endpoint, &tone::sines(&[700.0], 6000.0, 100), 400))
        .await
        .unwrap();
    let mut tapped = Vec::new();
    while tapped.len() < 5 * FRAME {
        let f = tokio::time::timeout(Duration::from_secs(2), tap.recv())
            .await
            .unwrap()
            .unwrap();
        tapped.extend_from_slice(&f.samples);
    }
    assert!(tone::share_at(&tapped, 700.0) > 0.9);
    let frames = tone::sines(&[1500.0], 7000.0, 60)
        .chunks(FRAME)
        .map(|c| c.try_into().unwrap())
        .collect();
    cmd(CallCommand::Inject {
        frames,
        mark: Some("m1".into()),
        limit: 100,
    })
    .await;
    let p = phone.try_clone().unwrap();
    let (injected, _) = blocking(move || receive_audio(&p, 3, Law::Ulaw))
        .await
        .unwrap();
    assert!(tone::share_at(&injected, 1500.0) > 0.9);
    assert_eq!(
        next(&mut events).await.kind,
        EventKind::Mark {
            name: "m1".into(),
            cleared: false
        }
    );
    cmd(CallCommand::TapStop(tap_id)).await;
    assert_eq!(
        next(&mut events).await.kind,
        EventKind::TapStopped {
            tap: tap_id.0,
            dropped_frames: 0
        }
    );

    // Hang up: the callee gets a BYE and the call is stored with its events and recording.
    cmd(CallCommand::Hangup).await;
    let seen = until(&mut events, |e| matches!(e, EventKind::Hangup { .. })).await;
    let ended = seen.last().unwrap();
    assert!(
        matches!(
            ended,
            EventKind::Hangup {
                status: CallStatus::Completed,
                sip_code: Some(200),
                by: HangupBy::System,
                cause: Some(cause),
                quality: Some(q),
            } if cause == "api" && q.packets_in >= 5 && q.packets_out > 0
        ),
        "the hangup carries the media's counters: {ended:?}"
    );
    assert!(
        blocking(move || callee.finished_ok(Duration::from_secs(5)))
            .await
            .unwrap()
    );
    assert_eq!(
        core.control.command(&sid, CallCommand::Hangup).await,
        Err(switchboard_control::call::CallError::NotFound(sid.clone())),
        "a finished call takes no more commands"
    );
    let call = core.ended_call(&sid).await;
    assert_eq!(
        (call.status, call.direction, call.to.as_str()),
        (CallStatus::Completed, Direction::OutboundApi, "+15551234")
    );
    assert!(call.answered_at.is_some() && call.legs[0].packets_in >= 70);
    let kinds: Vec<String> = core
        .store
        .call_events(&sid)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("initiated"));
    assert_eq!(kinds.last().map(String::as_str), Some("hangup"));
    assert_eq!(kinds.iter().filter(|k| *k == "dtmf").count(), 3);
    let recs = core.store.recordings_of(&sid).await.unwrap();
    assert_eq!(
        (
            recs.len(),
            recs[0].id.as_str(),
            recs[0].status.as_str(),
            recs[0].channels
        ),
        (1, recording.as_str(), "completed", 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_calls_go_to_their_controller_which_answers_rejects_and_bridges() {
    let net = std::sync::Arc::new(Net::new(42));
    let core = start_core(&net, 34100..=34119).await;
    let (tx, mut offers) = mpsc::channel(64);
    core.control.control("+1666", tx);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Rejected as busy: the caller gets 486.
    let caller = scenario(&net, "uac_expect_failure.xml", &[("CODE", "486")]);
    let target: SocketAddr = format!("{}:5060", net.ip(1)).parse().unwrap();
    let ip2 = net.ip(2);
    let run = {
        let (net, ip2) = (net.clone(), ip2.clone());
        blocking(move || {
            run_sipp(
                &net,
                &caller,
                &ip2,
                5060,
                target,
                &["-m", "1", "-s", "+16660002"],
                Duration::from_secs(10),
            )
        })
    };
    let offer = next(&mut offers).await;
    let EventKind::Incoming {
        from, to, trunk, ..
    } = &offer.kind
    else {
        panic!("{offer:?}")
    };
    assert_eq!(
        (from.as_str(), to.as_str(), trunk.as_deref()),
        ("+15550001", "+16660002", Some("carrier-a"))
    );
    core.control
        .command(&offer.call, CallCommand::Reject(Rejection::Busy))
        .await
        .unwrap();
    let ended = next(&mut offers).await.kind;
    assert!(
        matches!(
            ended,
            EventKind::Hangup {
                status: CallStatus::Busy,
                sip_code: Some(486),
                ..
            }
        ),
        "{ended:?}"
    );
    assert_eq!(run.await.unwrap().successful, 1);

    // Answered, then bridged to a call dialed from it: audio flows phone to phone.
    let (phone_a, phone_b) = (rtp_socket(&net, 5), rtp_socket(&net, 6));
    let port_b = phone_b.local_addr().unwrap().port().to_string();
    let uas = uas_media_at(&net, &net.ip(6), &port_b, &[]);
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    let uac = uac_media_at(&net, &phone_a, 3000, G711_OFFER);
    let run = {
        let net = net.clone();
        blocking(move || {
            run_sipp(
                &net,
                &uac,
                &ip2,
                5060,
                target,
                &["-m", "1", "-s", "+16660003"],
                Duration::from_secs(15),
            )
        })
    };
    let offer = next(&mut offers).await;
    assert!(matches!(offer.kind, EventKind::Incoming { .. }));
    let parent = offer.call.clone();
    core.control
        .command(&parent, CallCommand::Answer)
        .await
        .unwrap();
    assert!(matches!(
        next(&mut offers).await.kind,
        EventKind::Answered { .. }
    ));
    // The caller offered PCMA first: our answer keeps it, and a clip arrives as A-law.
    core.control
        .command(
            &parent,
            CallCommand::Play {
                clip: tone::sines(&[800.0], 8000.0, 200).into(),
                loops: 1,
                barge_in: false,
            },
        )
        .await
        .unwrap();
    let p = phone_a.try_clone().unwrap();
    let (heard, endpoint_a) = blocking(move || receive_audio(&p, 10, Law::Alaw))
        .await
        .unwrap();
    assert!(tone::share_at(&heard, 800.0) > 0.9);

    let (child, mut child_events) = call_carrier_b(&core, Some(&parent)).await;
    until(&mut child_events, |e| {
        matches!(e, EventKind::Answered { .. })
    })
    .await;
    core.control
        .command(&parent, CallCommand::Bridge(child.clone()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut child_events).await.kind,
        EventKind::Bridged {
            with: parent.clone()
        }
    );
    let p = phone_a.try_clone().unwrap();
    blocking(move || send_audio(&p, endpoint_a, &tone::sines(&[600.0], 6000.0, 200), 1))
        .await
        .unwrap();
    let p = phone_b.try_clone().unwrap();
    let (relayed, _) = blocking(move || receive_audio(&p, 10, Law::Ulaw))
        .await
        .unwrap();
    assert!(
        tone::share_at(&relayed, 600.0) > 0.9,
        "A's audio reached B through the bridge"
    );

    // The caller hangs up; the application hangs up the child.
    let seen = until(&mut offers, |e| matches!(e, EventKind::Hangup { .. })).await;
    assert!(seen.contains(&EventKind::Bridged {
        with: child.clone()
    }));
    assert!(matches!(
        seen.last().unwrap(),
        EventKind::Hangup {
            status: CallStatus::Completed,
            by: HangupBy::Caller,
            ..
        }
    ));
    // The other call ended: the bridge ended with it.
    assert_eq!(
        next(&mut child_events).await.kind,
        EventKind::Unbridged { peer_ended: true }
    );
    core.control
        .command(&child, CallCommand::Hangup)
        .await
        .unwrap();
    assert_eq!(run.await.unwrap().successful, 1);
    assert!(
        blocking(move || callee.finished_ok(Duration::from_secs(5)))
            .await
            .unwrap()
    );
    let child_row = core.ended_call(&child).await;
    assert_eq!(
        (child_row.direction, child_row.parent_id.as_deref()),
        (Direction::OutboundDial, Some(parent.as_str()))
    );
    let parent_row = core.store.get_call(&parent).await.unwrap().unwrap();
    assert_eq!(
        (parent_row.direction, parent_row.trunk_in.as_deref()),
        (Direction::Inbound, Some("carrier-a"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mp3_from_a_url_and_speech_reach_the_phone() {
    let net = Net::new(43);
    let core = start_core(&net, 34200..=34219).await;
    // The prompt server: an MP3 (44.1 kHz stereo, 1 kHz) with an ETag.
    let mp3 = include_bytes!("../../../media/testdata/tone-1khz-44k-stereo.mp3");
    let app = axum::Router::new().route(
        "/tone.mp3",
        axum::routing::get(move || async move {
            (
                [("etag", "\"t1\""), ("content-type", "audio/mpeg")],
                &mp3[..],
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(format!("{}:0", net.ip(9)))
        .await
        .unwrap();
    let prompt_url = format!("http://{}/tone.mp3", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let prompts = Prompts::new(
        &net.path("cache"),
        Arc::new(EspeakNg::default()),
        switchboard_control::infra::egress::Clients::default(),
    );

    let phone = rtp_socket(&net, 5);
    let port = phone.local_addr().unwrap().port().to_string();
    let uas = uas_media_at(&net, &net.ip(5), &port, &[]);
    let callee = SippServer::start(&net, &uas, &net.ip(3), 5060, &["-m", "1"]);
    let (sid, mut events) = call_carrier_b(&core, None).await;
    until(&mut events, |e| matches!(e, EventKind::Answered { .. })).await;

    // The MP3, fetched from its URL, decoded and resampled: 1 kHz for about a second.
    let clip = prompts
        .url(
            &prompt_url,
            switchboard_control::infra::egress::Reach::default(),
        )
        .await
        .unwrap();
    let packets = clip.len().div_ceil(FRAME);
    core.control
        .command(
            &sid,
            CallCommand::Play {
                clip: clip.into(),
                loops: 1,
                barge_in: false,
            },
        )
        .await
        .unwrap();
    let p = phone.try_clone().unwrap();
    let (heard, _) = blocking(move || receive_audio(&p, packets, Law::Ulaw))
        .await
        .unwrap();
    let share = tone::share_at(&heard[1600..heard.len() - 1600], 1000.0);
    assert!(share > 0.9, "the MP3's tone arrived: {share}");
    until(&mut events, |e| {
        matches!(e, EventKind::PlaybackEnded { .. })
    })
    .await;

    // Say, as Twilio's <Say voice="Polly.Joanna">: speech of a plausible length arrives.
    let text = "Welcome to Switchboard. Please enter your account number, then press pound.";
    let spoken = (prompts.say(text, Some("Polly.Joanna"), None, "AC1").await)
        .unwrap()
        .whole()
        .await
        .unwrap();
    let seconds = spoken.len() as f32 / tone::RATE as f32;
    assert!((2.5..8.0).contains(&seconds), "{seconds} s for 12 words");
    let packets = spoken.len().div_ceil(FRAME);
    core.control
        .command(
            &sid,
            CallCommand::Play {
                clip: spoken.clone().into(),
                loops: 1,
                barge_in: false,
            },
        )
        .await
        .unwrap();
    let p = phone.try_clone().unwrap();
    let (heard, _) = blocking(move || receive_audio(&p, packets, Law::Ulaw))
        .await
        .unwrap();
    assert_speech_like(&heard);
    // What arrived is the rendered speech, through μ-law: the same envelope.
    let energy = |s: &[i16]| s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
    let ratio = energy(&heard) / energy(&spoken);
    assert!((0.8..1.25).contains(&ratio), "energy ratio {ratio}");
    until(&mut events, |e| {
        matches!(e, EventKind::PlaybackEnded { .. })
    })
    .await;

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
