//! Media processing over real sockets on 127.0.0.1: playback paced by the media clock, digits
//! sent and detected both ways, dual-channel recording, taps and injected frames with marks.

use std::net::UdpSocket;
use std::time::{Duration, Instant};
use switchboard_media::dtmf::rfc4733::EventPayload;
use switchboard_media::dtmf::{Digit, DtmfMethod};
use switchboard_media::record::{Channels, RecordFormat, RecordSpec, Track};
use switchboard_media::{
    EndpointConfig, EndpointId, FRAME, Law, MediaConfig, MediaEngine, MediaEvent, MediaOp,
    PayloadMap, PlaybackEnd, TapId, TapTracks, opus, rtp, tone,
};
use tokio::sync::mpsc;

const PCMU: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: Some(101),
};
const PCMU_ONLY: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: None,
};

struct Rig {
    engine: MediaEngine,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    a: UdpSocket,
    b: UdpSocket,
    ea: EndpointId,
    eb: EndpointId,
    a_rtp: std::net::SocketAddr,
    b_rtp: std::net::SocketAddr,
}

/// An engine on 127.0.0.1 with `threads` workers.
fn engine(
    ports: std::ops::RangeInclusive<u16>,
    threads: usize,
) -> (MediaEngine, mpsc::UnboundedReceiver<MediaEvent>) {
    let (tx, events) = mpsc::unbounded_channel();
    let engine = MediaEngine::start(
        MediaConfig {
            bind_ip: "127.0.0.1".parse().unwrap(),
            advertise_ip: "127.0.0.1".parse().unwrap(),
            ports,
            threads,
            rtp_timeout: Duration::from_secs(60),
            learn_window: Duration::from_secs(3),
        },
        tx,
    )
    .unwrap();
    (engine, events)
}

/// Two phones bridged through two endpoints; A's peer uses `a_payload`.
fn rig(ports: std::ops::RangeInclusive<u16>, a_payload: PayloadMap) -> Rig {
    let (engine, events) = engine(ports, 1);
    let phone = || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    };
    let (a, b) = (phone(), phone());
    let ea = engine.allocate(None).unwrap();
    let eb = engine.allocate(Some(ea.id)).unwrap();
    for (e, sock, payload) in [(ea.id, &a, a_payload), (eb.id, &b, PCMU)] {
        engine.configure(
            e,
            EndpointConfig {
                remote_rtp: Some(sock.local_addr().unwrap()),
                payload,
                expect_rtp: true,
                ..Default::default()
            },
        );
    }
    engine.bridge(ea.id, eb.id);
    engine.flush();
    Rig {
        engine,
        events,
        a,
        b,
        ea: ea.id,
        eb: eb.id,
        a_rtp: ea.rtp,
        b_rtp: eb.rtp,
    }
}

impl Rig {
    fn op(&self, id: EndpointId, op: MediaOp) {
        self.engine.media(id, op);
        self.engine.flush();
    }

    fn event(&mut self) -> MediaEvent {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(e) = self.events.try_recv() {
                return e;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no media event");
    }
}

/// Sends `samples` as PCMU packets, one every 20 ms.
fn send_audio(sock: &UdpSocket, to: std::net::SocketAddr, samples: &[i16], seq0: u16, ssrc: u32) {
    send_packets(sock, to, samples, seq0, ssrc, 20);
}

/// Sends `samples` as PCMU packets of `ms` each, paced.
fn send_packets(
    sock: &UdpSocket,
    to: std::net::SocketAddr,
    samples: &[i16],
    seq0: u16,
    ssrc: u32,
    ms: usize,
) {
    let len = ms * 8;
    let start = Instant::now();
    for (i, chunk) in samples.chunks(len).enumerate() {
        let mut p = vec![0u8; 12 + chunk.len()];
        let seq = seq0.wrapping_add(i as u16);
        rtp::write_header(&mut p, 0, i == 0, seq, (i * len) as u32, ssrc);
        Law::Ulaw.encode(chunk, &mut p[12..]);
        sock.send_to(&p, to).unwrap();
        // Paced against the start, not packet to packet, so sleep overshoot does not add up.
        let due = start + Duration::from_millis(((i + 1) * ms) as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

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

#[test]
fn digits_are_sent_and_detected_both_ways() {
    let mut r = rig(32010..=32019, PCMU);
    r.op(r.ea, MediaOp::DetectDtmf(true));
    // A sends '5' as RFC 4733: start, updates, three end packets.
    for (i, (end, duration)) in [
        (false, 160),
        (false, 320),
        (true, 480),
        (true, 480),
        (true, 480),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = [0u8; 16];
        rtp::write_header(&mut p, 101, i == 0, 10 + i as u16, 8000, 0xa);
        EventPayload {
            event: 5,
            end,
            volume: 10,
            duration,
        }
        .write((&mut p[12..]).try_into().unwrap());
        r.a.send_to(&p, r.a_rtp).unwrap();
    }
    match r.event() {
        MediaEvent::Dtmf { id, report } => {
            assert_eq!(id, r.ea);
            assert_eq!(
                (report.digit.as_char(), report.duration_ms, report.method),
                ('5', 60, DtmfMethod::Rfc4733)
            );
        }
        e => panic!("{e:?}"),
    }
    // We send '9' to A as RFC 4733 with end-packet redundancy.
    r.op(
        r.ea,
        MediaOp::SendDigits {
            digits: vec![Digit::new('9')],
            duration_ms: 100,
        },
    );
    let mut buf = [0u8; 2048];
    let mut packets = Vec::new();
    while packets
        .iter()
        .filter(|(_, e): &&(u32, EventPayload)| e.end)
        .count()
        < 3
    {
        let (n, _) = r.a.recv_from(&mut buf).unwrap();
        assert_eq!(rtp::payload_type(&buf), 101);
        packets.push((
            rtp::timestamp(&buf),
            EventPayload::parse(&buf[12..n]).unwrap(),
        ));
    }
    assert!(
        packets
            .iter()
            .all(|(ts, e)| *ts == packets[0].0 && e.event == 9)
    );
    assert_eq!(packets.last().unwrap().1.duration, 800);
}

#[test]
fn inband_digits_for_a_peer_without_telephone_event() {
    let mut r = rig(32020..=32029, PCMU_ONLY);
    r.op(r.ea, MediaOp::DetectDtmf(true));
    let mut audio = tone::dtmf(Digit::new('#').unwrap(), 100);
    audio.extend(tone::silence(100));
    audio.extend(tone::dtmf(Digit::new('1').unwrap(), 80));
    audio.extend(tone::silence(60));
    send_audio(&r.a, r.a_rtp, &audio, 1, 0xa);
    let mut got = Vec::new();
    for _ in 0..2 {
        match r.event() {
            MediaEvent::Dtmf { report, .. } => got.push((report.digit.as_char(), report.method)),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(got, [('#', DtmfMethod::InBand), ('1', DtmfMethod::InBand)]);
    // And digits we send to A are tones, since it has no telephone-event.
    r.op(
        r.ea,
        MediaOp::SendDigits {
            digits: vec![Digit::new('3')],
            duration_ms: 100,
        },
    );
    let mut buf = [0u8; 2048];
    let mut heard = Vec::new();
    for _ in 0..5 {
        let (n, _) = r.a.recv_from(&mut buf).unwrap();
        assert_eq!(rtp::payload_type(&buf), 0);
        let mut frame = [0i16; FRAME];
        Law::Ulaw.decode(&buf[12..n], &mut frame);
        heard.extend_from_slice(&frame);
    }
    let (row, col) = Digit::new('3').unwrap().frequencies();
    assert!(tone::share_at(&heard, row) + tone::share_at(&heard, col) > 0.9);
}

#[test]
fn dual_channel_recording_puts_each_side_on_its_own_channel() {
    let mut r = rig(32030..=32039, PCMU);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    r.op(
        r.ea,
        MediaOp::RecordStart(RecordSpec {
            recording: 77,
            path: path.clone(),
            format: RecordFormat::Pcm16,
            channels: Channels::Dual,
            tracks: TapTracks::Both,
            trim_silence: false,
            stop: Default::default(),
        }),
    );
    let b = r.b.try_clone().unwrap();
    let b_rtp = r.b_rtp;
    let callee = std::thread::spawn(move || {
        send_audio(&b, b_rtp, &tone::sines(&[1200.0], 6000.0, 1000), 1, 0xb)
    });
    send_audio(&r.a, r.a_rtp, &tone::sines(&[440.0], 6000.0, 1000), 1, 0xa);
    callee.join().unwrap();
    r.op(r.ea, MediaOp::RecordStop);
    let saved = match r.event() {
        MediaEvent::RecordingSaved(s) => s,
        e => panic!("{e:?}"),
    };
    assert_eq!(
        (
            saved.recording,
            saved.channels,
            saved.dropped_frames,
            saved.error
        ),
        (77, 2, 0, None)
    );
    assert!(
        (900..=1100).contains(&saved.duration_ms),
        "{} ms",
        saved.duration_ms
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, saved.bytes);
    let samples: Vec<i16> = bytes[44..]
        .chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(
        tone::share_at(&left, 440.0) > 0.8 && tone::share_at(&left, 1200.0) < 0.01,
        "caller on the left"
    );
    assert!(
        tone::share_at(&right, 1200.0) > 0.8 && tone::share_at(&right, 440.0) < 0.01,
        "callee on the right"
    );
}

/// A party sending 30 ms packets is recorded whole: every 30 ms becomes one and a half 20 ms
/// frames, with no sample dropped and no gap of silence.
#[test]
fn packets_longer_than_20_ms_are_recorded_whole() {
    let mut r = rig(32040..=32049, PCMU);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ptime30.wav");
    r.op(
        r.ea,
        MediaOp::RecordStart(RecordSpec {
            recording: 78,
            path: path.clone(),
            format: RecordFormat::Pcm16,
            channels: Channels::Mono,
            tracks: TapTracks::Inbound,
            trim_silence: false,
            stop: Default::default(),
        }),
    );
    let sent = tone::sines(&[700.0], 6000.0, 1200);
    send_packets(&r.a, r.a_rtp, &sent, 1, 0xa, 30);
    r.op(r.ea, MediaOp::RecordStop);
    let saved = match r.event() {
        MediaEvent::RecordingSaved(s) => s,
        e => panic!("{e:?}"),
    };
    assert_eq!((saved.dropped_frames, saved.error), (0, None));
    assert!(
        (1150..=1300).contains(&saved.duration_ms),
        "{} ms",
        saved.duration_ms
    );
    let bytes = std::fs::read(&path).unwrap();
    let samples: Vec<i16> = bytes[44..]
        .chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    // The tone fills the file from its first to its last loud 10 ms: no block inside is quiet.
    let loud: Vec<bool> = samples
        .chunks(80)
        .map(|b| b.iter().map(|&s| s.unsigned_abs()).max().unwrap_or(0) > 3000)
        .collect();
    let first = loud.iter().position(|&l| l).unwrap();
    let last = loud.iter().rposition(|&l| l).unwrap();
    let quiet = loud[first..=last].iter().filter(|&&l| !l).count();
    assert_eq!(quiet, 0, "{quiet} silent 10 ms blocks inside the tone");
    assert!(
        (last - first + 1) * 10 >= 1150,
        "{} ms of tone",
        (last - first + 1) * 10
    );
    assert!(tone::share_at(&samples[(first * 80)..(last * 80)], 700.0) > 0.9);
}

#[test]
fn tap_sees_frames_and_injected_frames_reach_the_peer_before_their_mark() {
    let mut r = rig(32040..=32049, PCMU);
    let (tx, mut frames) = mpsc::channel(64);
    let tap = TapId::next();
    r.op(
        r.eb,
        MediaOp::TapStart {
            tap,
            tx,
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

/// Receives A-to-B audio on B until `quiet` passes without a packet.
fn collect(sock: &UdpSocket, quiet: Duration) -> Vec<i16> {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = sock.recv(&mut buf) {
        let mut pcm = vec![0i16; n - 12];
        Law::Ulaw.decode(&buf[12..n], &mut pcm);
        out.extend_from_slice(&pcm);
    }
    out
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

/// Sends `freq` from `sock` to `to` for `ms` while receiving (a conference sends all along);
/// returns what arrived meanwhile.
fn talk_and_listen(sock: &UdpSocket, to: std::net::SocketAddr, freq: f32, ms: u32) -> Vec<i16> {
    let sender = sock.try_clone().unwrap();
    let tone = tone::sines(&[freq], 4000.0, ms);
    let talking = std::thread::spawn(move || send_audio(&sender, to, &tone, 1, freq as u32));
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(ms as u64);
    let mut heard = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let mut pcm = vec![0i16; n - 12];
            Law::Ulaw.decode(&buf[12..n], &mut pcm);
            heard.extend_from_slice(&pcm);
        }
    }
    talking.join().unwrap();
    heard
}

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
    assert!(engine.conference_announce(conf, tone::sines(&[1700.0], 8000.0, 400).into()));
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

/// A phone that speaks Opus (payload type 111, 48 kHz RTP clock).
struct OpusPhone {
    encoder: opus::Encoder,
    decoder: opus::Decoder,
}

impl OpusPhone {
    fn new() -> Self {
        Self {
            encoder: opus::Encoder::new(48000).unwrap(),
            decoder: opus::Decoder::new(48000).unwrap(),
        }
    }

    /// Sends `ms` of `freq` as 20 ms Opus packets.
    fn send(&mut self, sock: &UdpSocket, to: std::net::SocketAddr, freq: f32, ms: u32) {
        let rate = 48000.0;
        for i in 0..(ms / 20) as usize {
            let pcm: Vec<i16> = (0..960)
                .map(|j| {
                    let t = (i * 960 + j) as f32 / rate;
                    ((std::f32::consts::TAU * freq * t).sin() * 8000.0) as i16
                })
                .collect();
            let mut p = vec![0u8; 1500];
            rtp::write_header(
                &mut p,
                111,
                i == 0,
                i as u16,
                48_000 + i as u32 * 960,
                0x0b05,
            );
            let n = self.encoder.encode(&pcm, &mut p[12..]).unwrap();
            sock.send_to(&p[..12 + n], to).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Receives `n` Opus packets: the audio (downsampled to 8 kHz by taking every sixth
    /// sample, enough to judge a tone) and the timestamp steps seen.
    fn receive(&mut self, sock: &UdpSocket, n: usize) -> (Vec<i16>, Vec<u32>) {
        let (mut audio, mut steps, mut last) = (Vec::new(), Vec::new(), None);
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let len = sock.recv(&mut buf).expect("Opus from Switchboard");
            assert_eq!(rtp::payload_type(&buf[..len]), 111);
            let ts = rtp::timestamp(&buf[..len]);
            if let Some(l) = last {
                steps.push(u32::wrapping_sub(ts, l));
            }
            last = Some(ts);
            let mut pcm = [0i16; 5760];
            let got = self
                .decoder
                .decode(Some(&buf[12..len]), &mut pcm[..])
                .unwrap();
            audio.extend(pcm[..got].iter().step_by(6));
        }
        (audio, steps)
    }
}

#[test]
fn an_opus_leg_is_transcoded_to_and_from_g711_and_hears_playback() {
    const OPUS: PayloadMap = PayloadMap {
        audio: Some((111, Law::Ulaw)),
        telephone_event: Some(101),
    };
    let mut r = rig(32090..=32099, PCMU);
    // A speaks Opus.
    r.engine.configure(
        r.ea,
        EndpointConfig {
            remote_rtp: Some(r.a.local_addr().unwrap()),
            payload: OPUS,
            expect_rtp: true,
            opus: true,
            ..Default::default()
        },
    );
    r.engine.flush();
    let mut phone = OpusPhone::new();

    // A's Opus 440 Hz reaches B as PCMU on the 8 kHz clock.
    let a = r.a.try_clone().unwrap();
    let a_rtp = r.a_rtp;
    let talk = std::thread::spawn(move || OpusPhone::new().send(&a, a_rtp, 440.0, 400));
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let mut ts = Vec::new();
    for _ in 0..18 {
        let n = r.b.recv(&mut buf).expect("PCMU at B");
        assert_eq!((rtp::payload_type(&buf), n), (0, 172));
        ts.push(rtp::timestamp(&buf));
        let mut pcm = [0i16; FRAME];
        Law::Ulaw.decode(&buf[12..n], &mut pcm);
        got.extend_from_slice(&pcm);
    }
    talk.join().unwrap();
    assert!(
        ts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 160),
        "{ts:?}"
    );
    let share = tone::share_at(&got[800..], 440.0);
    assert!(share > 0.8, "440 Hz at B: {share}");

    // B's PCMU 880 Hz reaches A as Opus on the 48 kHz clock.
    let b = r.b.try_clone().unwrap();
    let b_rtp = r.b_rtp;
    let talk = std::thread::spawn(move || {
        send_audio(&b, b_rtp, &tone::sines(&[880.0], 8000.0, 400), 1, 0xb0b)
    });
    let (heard, steps) = phone.receive(&r.a, 18);
    talk.join().unwrap();
    assert!(steps.iter().all(|&s| s == 960), "{steps:?}");
    let share = tone::share_at(&heard[800..], 880.0);
    assert!(share > 0.8, "880 Hz at A: {share}");

    // A clip played to A arrives as Opus too.
    r.op(
        r.ea,
        MediaOp::Play {
            playback: 1,
            clip: tone::sines(&[1100.0], 8000.0, 400).into(),
            loops: 1,
            barge_in: false,
        },
    );
    let (heard, steps) = phone.receive(&r.a, 18);
    assert!(steps.iter().all(|&s| s == 960), "{steps:?}");
    let share = tone::share_at(&heard[800..], 1100.0);
    assert!(share > 0.8, "1100 Hz clip at A: {share}");
    assert!(matches!(r.event(), MediaEvent::PlaybackEnded { .. }));
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
