//! Playback paced by the media clock, and silence for an idle party.

use super::*;

#[test]
fn playback_replaces_relayed_audio_paced_and_continuous() {
    let mut r = rig(32000..=32009, PCMU);
    // B talks first, so the stream to A is established by relayed packets.
    let b_tone = tone::sines(&[600.0], 5000.0, 100);
    send_audio(&r.b, r.b_rtp, &b_tone, 1000, 0xb0b);
    let mut buf = [0u8; 2048];
    let mut last_seq = 0;
    for _ in 0..5 {
        r.a.recv_from(&mut buf).unwrap();
        last_seq = rtp::sequence(&buf);
    }
    let clip: Vec<i16> = tone::sines(&[1000.0], 8000.0, 400);
    r.op(
        r.ea,
        MediaOp::Play {
            playback: 9,
            clip: clip.into(),
            loops: 2,
            barge_in: false,
        },
    );
    // While it plays, B keeps talking; A must hear only the clip.
    let b = r.b.try_clone().unwrap();
    let b_rtp = r.b_rtp;
    let talker = std::thread::spawn(move || {
        send_audio(&b, b_rtp, &tone::sines(&[600.0], 5000.0, 600), 2000, 0xb0b)
    });
    let (mut heard, mut arrivals, mut headers) = (Vec::new(), Vec::new(), Vec::new());
    while heard.len() < 800 * 8 {
        let (n, _) = r.a.recv_from(&mut buf).unwrap();
        let mut frame = [0i16; FRAME];
        Law::Ulaw.decode(&buf[12..n], &mut frame);
        heard.extend_from_slice(&frame[..n - 12]);
        arrivals.push(Instant::now());
        headers.push((
            rtp::sequence(&buf),
            rtp::timestamp(&buf),
            rtp::marker(&buf),
            rtp::ssrc(&buf),
        ));
    }
    talker.join().unwrap();
    assert_eq!(
        r.event(),
        MediaEvent::PlaybackEnded {
            id: r.ea,
            playback: 9,
            reason: PlaybackEnd::Finished
        }
    );
    assert_eq!(
        headers[0].0,
        last_seq.wrapping_add(1),
        "sequence continues the relayed stream"
    );
    assert!(headers[0].2, "marker on the first generated packet");
    assert!(headers.iter().all(|h| h.3 == headers[0].3), "one SSRC");
    assert!(
        headers
            .windows(2)
            .all(|w| w[1].0 == w[0].0.wrapping_add(1) && w[1].1 == w[0].1.wrapping_add(160)),
        "consecutive sequence numbers, 160 samples apart"
    );
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    assert!(
        (Duration::from_millis(700)..Duration::from_millis(900)).contains(&span),
        "40 packets paced at 20 ms took {span:?}"
    );
    assert!(
        tone::share_at(&heard, 1000.0) > 0.9,
        "the clip, not B: {}",
        tone::share_at(&heard, 1000.0)
    );
    assert!(tone::share_at(&heard, 600.0) < 0.01);
    // After the clip, B's audio flows again, continuing the numbering with a marker.
    send_audio(&r.b, r.b_rtp, &b_tone[..160], 3000, 0xb0b);
    r.a.recv_from(&mut buf).unwrap();
    let last = headers[headers.len() - 1];
    assert_eq!(rtp::sequence(&buf), last.0.wrapping_add(1));
    assert!(rtp::marker(&buf) && rtp::ssrc(&buf) == last.3);
}

/// Silence when idle (Telnyx's `send_silence_when_idle`): a party that nothing is sent to gets
/// silence every 20 ms, one continuous stream; relayed audio replaces it while it flows, and
/// the silence resumes when it stops.
#[test]
fn an_idle_party_gets_silence_and_relayed_audio_replaces_it() {
    let r = rig(32100..=32109, PCMU);
    let mut buf = [0u8; 2048];
    // Nothing is sent to A: no packet.
    r.a.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(r.a.recv_from(&mut buf).is_err(), "no idle RTP unless asked");
    r.op(r.ea, MediaOp::SilenceWhenIdle(true));
    r.a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let collect = |n: usize, buf: &mut [u8; 2048]| {
        let start = Instant::now();
        let mut packets = Vec::new();
        while packets.len() < n {
            let (len, _) = r.a.recv_from(buf).unwrap();
            let mut pcm = vec![0i16; len - 12];
            Law::Ulaw.decode(&buf[12..len], &mut pcm);
            packets.push((rtp::sequence(buf), pcm));
        }
        (start.elapsed(), packets)
    };
    let (took, idle) = collect(25, &mut buf);
    assert!(
        (Duration::from_millis(400)..Duration::from_millis(700)).contains(&took),
        "25 packets of silence took {took:?}"
    );
    assert!(
        idle.iter()
            .all(|(_, pcm)| pcm.len() == FRAME && pcm.iter().all(|&s| s.abs() < 50)),
        "silence"
    );
    assert!(
        idle.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1)),
        "continuous"
    );
    // B talks: A hears B, not silence interleaved with it.
    let b = r.b.try_clone().unwrap();
    let b_rtp = r.b_rtp;
    let talker = std::thread::spawn(move || {
        send_audio(&b, b_rtp, &tone::sines(&[600.0], 5000.0, 1000), 500, 0xb0b)
    });
    // Skip the packets of the switch-over.
    collect(5, &mut buf);
    let (_, talking) = collect(30, &mut buf);
    talker.join().unwrap();
    let quiet = talking
        .iter()
        .filter(|(_, pcm)| pcm.iter().all(|&s| s.abs() < 50))
        .count();
    assert_eq!(quiet, 0, "silence sent while B's audio was relayed");
    assert!(
        talking
            .iter()
            .all(|(_, pcm)| tone::share_at(pcm, 600.0) > 0.8)
    );
    // B stops: the silence comes back.
    let (_, after) = collect(50, &mut buf);
    assert!(
        after[after.len() - 10..]
            .iter()
            .all(|(_, pcm)| pcm.iter().all(|&s| s.abs() < 50))
    );
    r.op(r.ea, MediaOp::SilenceWhenIdle(false));
    std::thread::sleep(Duration::from_millis(100));
    r.a.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while r.a.recv_from(&mut buf).is_ok() {}
    assert!(r.a.recv_from(&mut buf).is_err(), "off again");
}
