//! Media processing over real sockets on 127.0.0.1: playback paced by the media clock, digits
//! sent and detected both ways, dual-channel recording, taps and injected frames with marks.

use std::net::UdpSocket;

use std::time::{Duration, Instant};

use switchboard_media::dtmf::rfc4733::EventPayload;

use switchboard_media::dtmf::{Digit, DtmfMethod};

use switchboard_media::conference::Announcement;
use switchboard_media::record::{Channels, RecordFormat, RecordSpec, Track};

use switchboard_media::{
    EndpointConfig, EndpointId, FRAME, Law, MediaConfig, MediaEngine, MediaEvent, MediaOp,
    PayloadMap, PlaybackEnd, TapId, TapTracks, opus, rtp, tone,
};

use tokio::sync::mpsc;

mod digits;
mod playback;
mod recording;
mod taps;
mod transcoding;
mod workers;

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
            kernel_relay: false,
            bind_ahead: switchboard_media::BIND_AHEAD,
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
