//! An Opus leg transcoded to and from G.711.

use super::*;

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
