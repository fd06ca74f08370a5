//! A digit flood on one application call does not hurt another, and loses nothing that
//! matters: the flooded call's phone sends RFC 4733 end packets as fast as a socket sends them
//! (each a new digit) for three seconds while the other call plays a two-second tone. The
//! other call's tone arrives whole; the flooded call's controller, which reads nothing during
//! the flood, still gets every event that is not a digit — the hang-up last, in order — and
//! the digits kept for it and stored for the call stop at their bounds.

use crate::common;

use common::rig::*;
use common::*;
use std::time::{Duration, Instant};
use switchboard_control::call::{CallCommand, EventKind};
use switchboard_media::dtmf::rfc4733::EventPayload;
use switchboard_media::{Law, rtp, tone};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digit_flood_leaves_other_calls_whole_and_loses_no_hangup() {
    let net = Net::new(99);
    let core = start_core(&net, 34200..=34219).await;
    let mut flooded = call_phone(&net, &core, 4).await;
    let quiet = call_phone(&net, &core, 6).await;
    let play = |sid: &str, ms: u32, freq: f32| {
        let (control, sid) = (core.control.clone(), sid.to_owned());
        async move {
            control
                .command(
                    &sid,
                    CallCommand::Play {
                        clip: tone::sines(&[freq], 8000.0, ms).into(),
                        loops: 1,
                        barge_in: false,
                    },
                )
                .await
                .unwrap()
        }
    };
    // Where the flooded call's media is: the source of what it plays.
    play(&flooded.sid, 100, 700.0).await;
    let p = flooded.rtp.try_clone().unwrap();
    let (_, endpoint) = blocking(move || receive_audio(&p, 5, Law::Ulaw))
        .await
        .unwrap();

    let p = flooded.rtp.try_clone().unwrap();
    let flood = blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut sent = 0u32;
        let mut packet = [0u8; 16];
        while Instant::now() < deadline {
            rtp::write_header(&mut packet, 101, true, sent as u16, sent * 800, 0x5eed);
            EventPayload {
                event: (sent % 10) as u8,
                end: true,
                volume: 10,
                duration: 400,
            }
            .write((&mut packet[12..]).try_into().unwrap());
            if p.send_to(&packet, endpoint).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    // Meanwhile the other call plays two seconds of 1 kHz: all 100 packets, all tone; and the
    // flooded call plays too, so that events which are not digits arrive amid the flood.
    tokio::time::sleep(Duration::from_millis(300)).await;
    play(&quiet.sid, 2000, 1000.0).await;
    play(&flooded.sid, 300, 500.0).await;
    let q = quiet.rtp.try_clone().unwrap();
    let (heard, _) = blocking(move || receive_audio(&q, 100, Law::Ulaw))
        .await
        .unwrap();
    for (i, frame) in heard.chunks(160).enumerate() {
        assert!(
            tone::share_at(frame, 1000.0) > 0.9,
            "frame {i} of the other call is not the tone"
        );
    }
    let sent = flood.await.unwrap();
    assert!(sent > 20_000, "only {sent} digits sent");

    // The flooded call hangs up; its controller reads now.
    core.control
        .command(&flooded.sid, CallCommand::Hangup)
        .await
        .unwrap();
    let seen = until(&mut flooded.events, |e| {
        matches!(e, EventKind::Hangup { .. })
    })
    .await;
    let digits = seen
        .iter()
        .filter(|e| matches!(e, EventKind::Dtmf { .. }))
        .count();
    assert!(
        (100..=256 + 1024 + 64).contains(&digits),
        "{digits} digits delivered of {sent} sent"
    );
    let played: Vec<&EventKind> = seen
        .iter()
        .filter(|e| !matches!(e, EventKind::Dtmf { .. }))
        .collect();
    if played.len() != 5 {
        // Whether a missing event came after the hang-up (reordered) or never (lost).
        let mut after = Vec::new();
        while let Ok(Some(e)) =
            tokio::time::timeout(Duration::from_secs(1), flooded.events.recv()).await
        {
            after.push(e.kind);
        }
        panic!(
            "every event that is not a digit, in order: {played:?}; after the hang-up: {after:?}"
        );
    }
    assert!(
        matches!(played[2], EventKind::PlaybackStarted { playback: 2 }),
        "{played:?}"
    );
    assert!(
        matches!(played[3], EventKind::PlaybackEnded { playback: 2, .. }),
        "{played:?}"
    );
    assert!(matches!(played[4], EventKind::Hangup { .. }), "{played:?}");

    // What is stored for the call: its events up to the hang-up, digits only up to the bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let events = core.store.call_events(&flooded.sid).await.unwrap();
        if events.iter().any(|e| e.kind == "hangup") {
            break events;
        }
        assert!(Instant::now() < deadline, "the hang-up was not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stored_digits = stored.iter().filter(|e| e.kind == "dtmf").count();
    assert!(
        stored_digits > 1000 && stored_digits <= 4096,
        "{stored_digits} digits stored"
    );
    assert!(stored.iter().all(|e| e.kind != "dtmf" || e.seq < 4096));
    eprintln!(
        "digit flood: {sent} sent, {digits} delivered to the controller, {stored_digits} stored"
    );
}
