//! Taps, injected frames and their marks, noise suppression and mute.

use super::*;

#[test]
fn tap_sees_frames_and_injected_frames_reach_the_peer_before_their_mark() {
    let mut r = rig(32110..=32119, PCMU);
    let (tx, mut frames) = mpsc::channel(64);
    let tap = TapId::next();
    r.op(
        r.eb,
        MediaOp::TapStart {
            tap,
            tx: tx.into(),
            tracks: TapTracks::Both,
        },
    );
    send_audio(&r.b, r.b_rtp, &tone::sines(&[700.0], 5000.0, 100), 1, 0xb);
    let mut buf = [0u8; 2048];
    for _ in 0..5 {
        r.a.recv_from(&mut buf).unwrap();
    }
    let mut inbound = Vec::new();
    while let Ok(f) = frames.try_recv() {
        assert_eq!(f.track, Track::Inbound, "nothing was sent to B yet");
        inbound.extend_from_slice(&f.samples);
    }
    assert_eq!(inbound.len(), 5 * FRAME);
    assert!(tone::share_at(&inbound, 700.0) > 0.9);

    // Frames injected toward B, then a mark.
    let injected: Vec<[i16; FRAME]> = tone::sines(&[1500.0], 7000.0, 60)
        .chunks(FRAME)
        .map(|c| c.try_into().unwrap())
        .collect();
    r.op(
        r.eb,
        MediaOp::Inject {
            frames: injected,
            mark: Some("greeting".into()),
            limit: 100,
        },
    );
    let mut heard = Vec::new();
    for _ in 0..3 {
        let (n, _) = r.b.recv_from(&mut buf).unwrap();
        let mut frame = [0i16; FRAME];
        Law::Ulaw.decode(&buf[12..n], &mut frame);
        heard.extend_from_slice(&frame);
    }
    assert!(tone::share_at(&heard, 1500.0) > 0.9);
    assert_eq!(
        r.event(),
        MediaEvent::Mark {
            id: r.eb,
            name: "greeting".into(),
            cleared: false
        }
    );
    let outbound = std::iter::from_fn(|| frames.try_recv().ok())
        .filter(|f| f.track == Track::Outbound)
        .count();
    assert_eq!(
        outbound, 3,
        "the tap saw the injected frames on the outbound track"
    );
    r.op(r.eb, MediaOp::TapStop(tap));
    assert_eq!(
        r.event(),
        MediaEvent::TapStopped {
            id: r.eb,
            tap,
            dropped: 0
        }
    );
}

#[test]
fn suppression_cuts_the_noise_of_what_a_party_says_and_mute_silences_it() {
    let r = rig(32060..=32069, PCMU);
    r.op(
        r.ea,
        MediaOp::Suppress {
            inbound: true,
            outbound: false,
        },
    );
    // A says a voiced tone in white noise (about 6 dB SNR), then only the noise.
    let voiced: Vec<i16> = tone::voiced(4000);
    let mut rng = 0x9e37_79b9u32;
    let noise: Vec<i16> = (0..voiced.len() + 12_000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            (rng % 4001) as i16 - 2000
        })
        .collect();
    let clean: Vec<i16> = voiced
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, 12_000))
        .collect();
    let sent: Vec<i16> = clean.iter().zip(&noise).map(|(c, n)| c + n).collect();
    let b = r.b.try_clone().unwrap();
    let receiver = std::thread::spawn(move || collect(&b, Duration::from_millis(500)));
    send_audio(&r.a, r.a_rtp, &sent, 1, 0xa11ce);
    let heard = receiver.join().unwrap();
    assert_eq!(heard.len(), sent.len(), "every packet relayed, same size");

    // B hears the tone 30 ms late (the suppressor's latency): split what it heard into the
    // scaled tone and the rest, over the second half of the voiced part.
    let lag = 240;
    let range = 16_000..32_000 - lag;
    let sum = |f: &dyn Fn(usize) -> f64| range.clone().map(f).sum::<f64>();
    let tone_in = sum(&|i| (clean[i] as f64).powi(2));
    let noise_in = sum(&|i| (noise[i] as f64).powi(2));
    let gain = sum(&|i| heard[i + lag] as f64 * clean[i] as f64) / tone_in;
    let rest = sum(&|i| (heard[i + lag] as f64 - gain * clean[i] as f64).powi(2));
    let db = |x: f64| 10.0 * x.log10();
    let (tone_db, noise_db) = (db(gain * gain), db(rest / noise_in));
    println!("with the tone: tone {tone_db:.1} dB, noise {noise_db:.1} dB");
    assert!(tone_db > -3.0, "the tone survives: {tone_db:.1} dB");
    assert!(noise_db < -2.5, "the noise drops: {noise_db:.1} dB");
    // Noise alone (after the tone, once settled) loses more.
    let energy = |s: &[i16]| s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
    let alone = db(energy(&heard[36_000..44_000]) / energy(&noise[36_000 - lag..44_000 - lag]));
    println!("noise alone: {alone:.1} dB");
    assert!(alone < -4.0, "noise alone drops: {alone:.1} dB");

    // Muted, A's tone never reaches B: B gets silence in the same packets.
    r.op(
        r.ea,
        MediaOp::Suppress {
            inbound: false,
            outbound: false,
        },
    );
    r.op(r.ea, MediaOp::Mute(true));
    let b = r.b.try_clone().unwrap();
    let receiver = std::thread::spawn(move || collect(&b, Duration::from_millis(500)));
    send_audio(
        &r.a,
        r.a_rtp,
        &tone::sines(&[800.0], 8000.0, 200),
        500,
        0xa11ce,
    );
    let heard = receiver.join().unwrap();
    assert_eq!(heard.len(), 1600);
    assert!(heard.iter().all(|&s| s.abs() < 10), "silence while muted");
}
