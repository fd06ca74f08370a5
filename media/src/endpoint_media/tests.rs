use super::*;

const PCMU: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: Some(101),
};

#[test]
fn playback_loops_pads_and_ends() {
    let mut m = EndpointMedia::default();
    let clip: crate::Clip = (0..200).map(|i| i as i16 + 1).collect::<Vec<_>>().into();
    m.play(7, clip.into(), 2, false);
    let (mut out, mut buf, now) = (Outbound::default(), [0u8; 400], std::time::Instant::now());
    let mut frames = Vec::new();
    while let Some(n) = m.tick(&mut buf, &mut out, &PCMU, now) {
        frames.push((rtp::sequence(&buf), rtp::timestamp(&buf), n));
    }
    // 400 samples: two full frames and one padded.
    assert_eq!(frames.len(), 3);
    assert!(
        frames
            .windows(2)
            .all(|w| w[1].0 == w[0].0.wrapping_add(1) && w[1].1 == w[0].1.wrapping_add(160))
    );
    assert_eq!(
        m.take_notices().collect::<Vec<_>>(),
        [Notice::PlaybackEnded {
            playback: 7,
            reason: PlaybackEnd::Finished
        }]
    );
}

#[test]
fn digits_keep_one_timestamp_per_event_and_audio_resumes_after() {
    let mut m = EndpointMedia::default();
    m.send_digits(&[Digit::new('4')], 60, true);
    let (mut out, mut buf, now) = (Outbound::default(), [0u8; 400], std::time::Instant::now());
    let mut sent = Vec::new();
    for _ in 0..12 {
        if let Some(n) = m.tick(&mut buf, &mut out, &PCMU, now) {
            let e = EventPayload::parse(&buf[12..n]).unwrap();
            sent.push((
                rtp::timestamp(&buf),
                rtp::marker(&buf),
                e.event,
                e.end,
                e.duration,
            ));
        }
    }
    assert_eq!(sent.len(), 3 + 3);
    assert!(
        sent.iter().all(|s| s.0 == sent[0].0 && s.2 == 4),
        "one timestamp, event 4"
    );
    assert!(sent[0].1 && !sent[1].1, "marker on the first packet only");
    assert!(sent[3..].iter().all(|s| s.3 && s.4 == 480));
    assert!(!m.generating());
}

#[test]
fn digits_without_telephone_event_are_tones_the_detector_hears() {
    let mut m = EndpointMedia::default();
    m.send_digits(&[Digit::new('7'), Digit::new('#')], 100, false);
    let (mut out, mut buf, now) = (Outbound::default(), [0u8; 400], std::time::Instant::now());
    let mut detector = GoertzelDetector::default();
    let mut heard = String::new();
    for _ in 0..30 {
        let mut frame = [0i16; FRAME];
        if let Some(n) = m.tick(&mut buf, &mut out, &PCMU, now) {
            assert_eq!(n, 12 + FRAME);
            Law::Ulaw.decode(&buf[12..n], &mut frame);
        }
        if let Some(r) = detector.on_frame(&frame) {
            heard.push(r.digit.as_char());
        }
    }
    assert_eq!(heard, "7#");
}

#[test]
fn injected_frames_then_marks_and_clear() {
    let mut m = EndpointMedia::default();
    m.inject(vec![[5; FRAME], [6; FRAME]], Some("first".into()), 100);
    m.inject(vec![[7; FRAME]], Some("second".into()), 100);
    let (mut out, mut buf, now) = (Outbound::default(), [0u8; 400], std::time::Instant::now());
    m.tick(&mut buf, &mut out, &PCMU, now).unwrap();
    assert_eq!(m.take_notices().count(), 0);
    m.tick(&mut buf, &mut out, &PCMU, now).unwrap();
    assert_eq!(
        m.take_notices().collect::<Vec<_>>(),
        [Notice::Mark {
            name: "first".into(),
            cleared: false
        }]
    );
    m.clear_injected();
    assert_eq!(
        m.take_notices().collect::<Vec<_>>(),
        [Notice::Mark {
            name: "second".into(),
            cleared: true
        }]
    );
    assert!(m.tick(&mut buf, &mut out, &PCMU, now).is_none());
    // A mark with nothing before it is reached at once.
    m.inject(Vec::new(), Some("now".into()), 100);
    assert_eq!(
        m.take_notices().collect::<Vec<_>>(),
        [Notice::Mark {
            name: "now".into(),
            cleared: false
        }]
    );
}

#[test]
fn injected_audio_beyond_the_limit_is_discarded_and_reported_marks_kept() {
    let mut m = EndpointMedia::default();
    let frames = |n: usize| (0..n).map(|i| [i as i16 * 1000; FRAME]).collect::<Vec<_>>();
    m.inject(frames(5), Some("late".into()), 3);
    assert_eq!(
        m.take_notices().collect::<Vec<_>>(),
        [Notice::InjectDiscarded { frames: 2 }]
    );
    let (mut out, mut buf, now) = (Outbound::default(), [0u8; 400], std::time::Instant::now());
    // The first three frames play, then the mark is reached.
    let mut played = Vec::new();
    while m.tick(&mut buf, &mut out, &PCMU, now).is_some() {
        let mut pcm = [0i16; FRAME];
        Law::Ulaw.decode(&buf[12..12 + FRAME], &mut pcm);
        played.push(pcm[0]);
    }
    assert_eq!(played.len(), 3);
    assert!(played[0] < played[1] && played[1] < played[2], "{played:?}");
    assert_eq!(
        m.take_notices().collect::<Vec<_>>(),
        [Notice::Mark {
            name: "late".into(),
            cleared: false
        }]
    );
    // Played frames make room again.
    m.inject(frames(3), None, 3);
    assert_eq!(m.take_notices().count(), 0);
}

#[test]
fn several_taps_each_get_their_tracks_and_a_ninth_is_refused() {
    let mut m = EndpointMedia::default();
    let now = std::time::Instant::now();
    let (in_tx, mut inbound) = mpsc::channel(4);
    let (both_tx, mut both) = mpsc::channel(4);
    let (a, b) = (TapId::next(), TapId::next());
    m.start_tap(a, in_tx.into(), TapTracks::Inbound, now);
    m.start_tap(b, both_tx.into(), TapTracks::Both, now);
    m.consume(Track::Inbound, &[1; FRAME], now, now);
    m.consume(Track::Outbound, &[2; FRAME], now, now);
    assert_eq!(inbound.try_recv().unwrap().samples[0], 1);
    assert!(inbound.try_recv().is_err(), "no outbound on an inbound tap");
    assert_eq!(both.try_recv().unwrap().track, Track::Inbound);
    assert_eq!(both.try_recv().unwrap().track, Track::Outbound);
    // A consumer that does not read loses frames, and is told how many.
    for _ in 0..6 {
        m.consume(Track::Inbound, &[3; FRAME], now, now);
    }
    let got: Vec<u32> = std::iter::from_fn(|| inbound.try_recv().ok())
        .map(|f| f.dropped)
        .collect();
    assert_eq!(got, [0, 0, 0, 0]);
    m.consume(Track::Inbound, &[3; FRAME], now, now);
    assert_eq!(inbound.try_recv().unwrap().dropped, 2);
    let mut rest = Vec::new();
    for _ in 2..MAX_TAPS {
        let (tx, rx) = mpsc::channel(1);
        m.start_tap(TapId::next(), tx.into(), TapTracks::Both, now);
        rest.push(rx);
    }
    let (tx, mut refused) = mpsc::channel::<TapFrame>(1);
    let ninth = TapId::next();
    m.start_tap(ninth, tx.into(), TapTracks::Both, now);
    assert!(matches!(
        refused.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    ));
    m.stop_tap(a);
    assert_eq!(
        m.take_notices().collect::<Vec<_>>(),
        [
            Notice::TapStopped {
                tap: ninth,
                dropped: 0
            },
            Notice::TapStopped { tap: a, dropped: 2 }
        ]
    );
}

#[test]
fn barge_in_stops_playback_on_a_digit() {
    let mut m = EndpointMedia::default();
    m.set_detect(true, false);
    m.play(1, vec![0i16; 8000].into(), 1, true);
    let mut p = [0u8; 16];
    rtp::write_header(&mut p, 101, true, 1, 500, 9);
    EventPayload {
        event: 3,
        end: true,
        volume: 10,
        duration: 800,
    }
    .write((&mut p[12..16]).try_into().unwrap());
    m.on_inbound(&mut p, &PCMU, std::time::Instant::now());
    let notices: Vec<_> = m.take_notices().collect();
    assert_eq!(
        notices[0],
        Notice::PlaybackEnded {
            playback: 1,
            reason: PlaybackEnd::BargeIn
        }
    );
    assert!(
        matches!(notices[1], Notice::Dtmf(r) if r.digit.as_char() == '3' && r.duration_ms == 100)
    );
}

/// A recording that stops by itself is reported before its file is finished: the engine sends
/// the notice on, then tells the recorder, whose `RecordingSaved` comes from another thread
/// and would otherwise race the notice to the core.
#[test]
fn a_recording_that_stops_by_itself_finishes_only_once_its_notice_is_out() {
    use crate::record::{Channels, RecordFormat, RecordSpec, Recorder, StopReason, StopWhen};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (saved_tx, saved) = std::sync::mpsc::channel();
    let saved_tx = std::sync::Mutex::new(saved_tx);
    let recorder = Recorder::spawn(crate::health::Beat::new("recorder", None), move |r| {
        let _ = saved_tx.lock().unwrap().send(r);
    })
    .unwrap();
    let t0 = std::time::Instant::now();
    let mut m = EndpointMedia::default();
    m.set_recorder(Some(recorder.start(
        RecordSpec {
            recording: 9,
            path: dir.path().join("r.wav"),
            format: RecordFormat::Pcm16,
            channels: Channels::Mono,
            tracks: TapTracks::Inbound,
            trim_silence: false,
            stop: StopWhen {
                max_length: Some(Duration::from_millis(100)),
                ..StopWhen::default()
            },
        },
        t0,
    )));
    let (mut out, mut buf) = (Outbound::default(), [0u8; 400]);
    m.tick(&mut buf, &mut out, &PCMU, t0 + Duration::from_millis(120));
    assert_eq!(
        m.take_notices().collect::<Vec<_>>(),
        [Notice::RecordingStopped {
            recording: 9,
            reason: StopReason::MaxLength
        }]
    );
    assert!(!m.idle(), "the stopped recording is still to be finished");
    // Told nothing yet, the recorder has nothing to save (it saves within milliseconds once
    // told, as below).
    assert!(saved.recv_timeout(Duration::from_millis(300)).is_err());
    m.finish_stopped();
    let r = saved.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(r.recording, 9);
    assert!(m.idle());
}

/// A tap's stamps follow the sender's timeline: packets that arrive in a burst after a
/// hold-up are stamped 20 ms apart, as they were spoken (stamped by arrival, the listener
/// that fills gaps with silence put the hold-up into the middle of the words); a gap in the
/// RTP timestamps (a phone quiet for a second) stays a gap; a new source starts on the clock.
#[test]
fn a_taps_stamps_follow_the_senders_timeline_not_the_arrival_of_a_burst() {
    let mut m = EndpointMedia::default();
    let t0 = std::time::Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    let (tx, mut tap) = mpsc::channel(64);
    m.start_tap(TapId::next(), tx.into(), TapTracks::Inbound, t0);
    let mut send = |seq: u16, ts: u32, ssrc: u32, arrived: u64| {
        let mut p = [0u8; 12 + FRAME];
        rtp::write_header(&mut p, 0, false, seq, ts, ssrc);
        m.on_inbound(&mut p, &PCMU, at(arrived));
    };
    // Five on time, then fifteen held up for 300 ms and read at once.
    for i in 0..5u16 {
        send(i, 1000 + u32::from(i) * 160, 7, u64::from(i) * 20);
    }
    for i in 5..20u16 {
        send(i, 1000 + u32::from(i) * 160, 7, 400);
    }
    // A second of nothing sent (the timestamps say so), then the next on time.
    send(20, 1000 + 20 * 160 + 8000, 7, 1400);
    // Another source: the clock again.
    send(0, 99, 8, 1500);
    let stamps: Vec<u32> = std::iter::from_fn(|| tap.try_recv().ok())
        .map(|f| f.at_ms)
        .collect();
    let spoken: Vec<u32> = (0..20).map(|i| i * 20).chain([1400, 1500]).collect();
    assert_eq!(stamps, spoken);
    // Held up for longer than a stretch of speech is kept together: the clock again.
    send(1, 99 + 160, 8, 1520);
    send(2, 99 + 320, 8, 4000);
    assert_eq!(tap.try_recv().unwrap().at_ms, 1520);
    assert_eq!(tap.try_recv().unwrap().at_ms, 4000);
}
