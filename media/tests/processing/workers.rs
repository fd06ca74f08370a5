//! Endpoints on several workers: a conference mixed across them, bridges moved together.

use super::*;

#[test]
fn a_conference_on_two_workers_mixes_everyone_but_oneself_and_records_the_mix() {
    use switchboard_media::conference::ConferenceId;
    let (engine, mut events) = engine(32070..=32079, 2);
    // Three phones whose endpoints are spread over both workers; joining moves them together.
    let phones: Vec<(UdpSocket, switchboard_media::Endpoint)> = (0..3)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let e = engine.allocate(None).unwrap();
            engine.configure(
                e.id,
                EndpointConfig {
                    remote_rtp: Some(s.local_addr().unwrap()),
                    payload: PCMU,
                    expect_rtp: true,
                    ..Default::default()
                },
            );
            (s, e)
        })
        .collect();
    let conf = ConferenceId(7);
    let dir = tempfile::tempdir().unwrap();
    for (_, e) in &phones {
        engine.conference_join(conf, e.id);
    }
    assert!(engine.conference_record(
        conf,
        Some(RecordSpec {
            recording: 1,
            path: dir.path().join("mix.wav"),
            format: RecordFormat::Pcm16,
            channels: Channels::Mono,
            tracks: TapTracks::Inbound,
            trim_silence: false,
            stop: Default::default(),
        })
    ));
    engine.flush();

    let freqs = [500.0, 900.0, 1300.0];
    let heard: Vec<Vec<i16>> = std::thread::scope(|s| {
        let talks: Vec<_> = phones
            .iter()
            .zip(freqs)
            .map(|((sock, e), f)| s.spawn(move || talk_and_listen(sock, e.rtp, f, 1000)))
            .collect();
        talks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (i, h) in heard.iter().enumerate() {
        assert!(h.len() >= 30 * FRAME, "phone {i} heard {} samples", h.len());
        let settled = &h[10 * FRAME..h.len() - 10 * FRAME];
        let shares: Vec<f32> = freqs.iter().map(|&f| tone::share_at(settled, f)).collect();
        for (j, share) in shares.iter().enumerate() {
            if i == j {
                assert!(*share < 0.02, "phone {i} hears itself: {shares:?}");
            } else {
                assert!(*share > 0.3, "phone {i} misses phone {j}: {shares:?}");
            }
        }
    }

    // Muted, the second phone is not heard; the others still are.
    engine.media(phones[1].1.id, MediaOp::Mute(true));
    engine.flush();
    let heard: Vec<Vec<i16>> = std::thread::scope(|s| {
        let talks: Vec<_> = phones
            .iter()
            .zip(freqs)
            .map(|((sock, e), f)| s.spawn(move || talk_and_listen(sock, e.rtp, f, 600)))
            .collect();
        talks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let first = &heard[0][5 * FRAME..heard[0].len() - 5 * FRAME];
    assert!(
        tone::share_at(first, 900.0) < 0.02,
        "the muted phone is heard"
    );
    assert!(tone::share_at(first, 1300.0) > 0.8);

    // An announcement reaches everyone.
    engine.media(phones[1].1.id, MediaOp::Mute(false));
    let announcement = Announcement {
        id: None,
        clip: tone::sines(&[1700.0], 8000.0, 400).into(),
        loops: 1,
        to: None,
    };
    assert!(engine.conference_announce(conf, announcement));
    engine.flush();
    let heard: Vec<Vec<i16>> = std::thread::scope(|s| {
        let listens: Vec<_> = phones
            .iter()
            .map(|(sock, e)| s.spawn(move || talk_and_listen(sock, e.rtp, 300.0, 300)))
            .collect();
        listens.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for h in &heard {
        let share = tone::share_at(h, 1700.0);
        assert!(share > 0.3, "the announcement: {share}");
    }

    // Everyone leaves: the conference ends and its mix recording is saved.
    for (_, e) in &phones {
        engine.conference_leave(e.id);
    }
    engine.flush();
    let deadline = Instant::now() + Duration::from_secs(5);
    let saved = loop {
        assert!(Instant::now() < deadline, "no recording saved");
        match events.try_recv() {
            Ok(MediaEvent::RecordingSaved(r)) => break r,
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    assert_eq!((saved.channels, saved.error), (1, None));
    assert!(
        (1400..2200).contains(&saved.duration_ms),
        "{} ms",
        saved.duration_ms
    );
    let bytes = std::fs::read(&saved.path).unwrap();
    let mix: Vec<i16> = bytes[44..]
        .chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let shares: Vec<f32> = freqs
        .iter()
        .map(|&f| tone::share_at(&mix[..8000], f))
        .collect();
    assert!(
        shares.iter().all(|&s| s > 0.2),
        "all three in the mix: {shares:?}"
    );
}

#[test]
fn endpoints_on_different_workers_are_moved_together_to_be_bridged() {
    let (engine, _events) = engine(32080..=32089, 2);
    let phone = || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    };
    let (a, b) = (phone(), phone());
    // Allocated in turn: one on each worker.
    let (ea, eb) = (
        engine.allocate(None).unwrap(),
        engine.allocate(None).unwrap(),
    );
    for (e, sock) in [(ea.id, &a), (eb.id, &b)] {
        engine.configure(
            e,
            EndpointConfig {
                remote_rtp: Some(sock.local_addr().unwrap()),
                payload: PCMU,
                expect_rtp: true,
                ..Default::default()
            },
        );
    }
    // Commands sent while B is on its way to A's worker wait for it there.
    engine.bridge(ea.id, eb.id);
    engine.media(eb.id, MediaOp::DetectDtmf(true));
    engine.flush();
    // The move is a hand-over between two threads: give it a moment before talking.
    std::thread::sleep(Duration::from_millis(50));
    send_audio(&a, ea.rtp, &tone::sines(&[750.0], 6000.0, 200), 1, 0xa);
    let heard = collect(&b, Duration::from_millis(300));
    assert_eq!(heard.len(), 1600);
    assert!(tone::share_at(&heard, 750.0) > 0.9);
    send_audio(&b, eb.rtp, &tone::sines(&[650.0], 6000.0, 200), 1, 0xb);
    let heard = collect(&a, Duration::from_millis(300));
    assert!(tone::share_at(&heard, 650.0) > 0.9);
}
