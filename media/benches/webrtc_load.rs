//! Browser ↔ SIP calls in the media engine over loopback, printed as a table: N calls, each a
//! WebRTC leg (a browser played by webrtc-rs: a nominating STUN check, a DTLS client handshake,
//! SRTP from the exported keys) bridged with a plain PCMU leg, both parties talking every 20 ms.
//! Reported: setup time from the browser's first check to its keys (median and slowest, all
//! calls set up at once), the media threads' CPU per call and per relayed packet while they
//! talk, and RSS growth per call.
//!
//!   cargo bench -p switchboard-media --bench webrtc_load
//!   knobs: WEBRTC_CALLS="200", SECS=10, THREADS=1 (media worker threads), CODEC=pcmu|opus
//!   (the browser's codec; with opus each call is transcoded Opus↔PCMU both ways)

use bytes::BytesMut;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint as DtlsEndpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_media::srtp::{Context, MasterKey, Suite};
use switchboard_media::webrtc::ice::browser_check;
use switchboard_media::webrtc::{Credentials, Fingerprint, Identity, WebRtcConfig};
#[path = "load_common/mod.rs"]
mod load_common;
use load_common::{knob, media_cpu_secs, rss_kb};
use switchboard_media::{EndpointConfig, Law, MediaConfig, MediaEngine, PayloadMap, rtp};

const PCMU: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: None,
};
/// Opus as browsers offer it (payload type 111); inside the engine its audio is μ-law.
const OPUS: PayloadMap = PayloadMap {
    audio: Some((111, Law::Ulaw)),
    telephone_event: None,
};

/// One call: the browser's side of its WebRTC leg (a socket and a DTLS client of its own, as
/// a browser's peer connection has: every leg on a worker answers from the same socket), and
/// the plain leg's address.
struct Call {
    sock: UdpSocket,
    dtls: DtlsEndpoint,
    browser_at: SocketAddr,
    ice: Credentials,
    plain_at: SocketAddr,
    started: Instant,
    /// A check was answered and the handshake begun.
    connected: bool,
    keyed: Option<Duration>,
    /// What the browser seals with.
    seal: Option<Context>,
}

fn main() {
    let secs: u64 = knob("SECS", "10").parse().unwrap();
    let opus = knob("CODEC", "pcmu") == "opus";
    println!(
        "browser ↔ SIP calls (WebRTC leg: ICE-lite, DTLS-SRTP AES_CM_128_HMAC_SHA1_80, {}; SIP leg: plain PCMU)",
        if opus {
            "Opus 8 kHz, transcoded"
        } else {
            "PCMU"
        }
    );
    println!(
        "| calls | setup median | setup slowest | packets relayed/s | media threads' CPU (of a core) | per call | per relayed packet | RSS per call | received (browser / phone) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in knob("WEBRTC_CALLS", "200").split_whitespace() {
        run(n.parse().unwrap(), secs, opus);
    }
}

fn run(n: usize, secs: u64, opus: bool) {
    let (tx, _events) = tokio::sync::mpsc::unbounded_channel();
    let engine = MediaEngine::start(
        MediaConfig {
            bind_ip: "127.0.0.1".parse().unwrap(),
            advertise_ip: "127.0.0.1".parse().unwrap(),
            ports: 40000..=59999,
            threads: knob("THREADS", "1").parse().unwrap(),
            rtp_timeout: Duration::from_secs(600),
            learn_window: Duration::from_secs(3),
            kernel_relay: false,
            bind_ahead: switchboard_media::BIND_AHEAD,
        },
        tx,
    )
    .unwrap();
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    phone.set_nonblocking(true).unwrap();
    let crypto = rtc_dtls::crypto_provider::default_provider().unwrap();
    let certificate =
        Certificate::generate_self_signed(vec!["browser".into()], crypto.crypto()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &certificate.certificate[0]);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let fingerprint = Fingerprint::parse(&format!("sha-256 {}", hex.join(":"))).unwrap();
    let client_config = Arc::new(
        ConfigBuilder::default()
            .with_crypto_provider(crypto.clone())
            .with_certificates(vec![certificate])
            .with_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_insecure_skip_verify(true)
            .build(true, None)
            .unwrap(),
    );
    let identity = Identity::generate().unwrap();
    let rss_before = rss_kb();
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        // One leg per call speaks WebRTC, the other plain RTP; both on one worker (bridged).
        let w = engine.allocate(None).unwrap();
        let s = engine.allocate(Some(w.id)).unwrap();
        let ice = Credentials::generate("brws");
        engine.configure(
            w.id,
            EndpointConfig {
                payload: if opus { OPUS } else { PCMU },
                opus,
                expect_rtp: true,
                webrtc: Some(WebRtcConfig {
                    identity: identity.clone(),
                    ice: ice.clone(),
                    remote_fingerprint: fingerprint.clone(),
                }),
                ..Default::default()
            },
        );
        engine.configure(
            s.id,
            EndpointConfig {
                remote_rtp: Some(phone.local_addr().unwrap()),
                payload: PCMU,
                expect_rtp: true,
                ..Default::default()
            },
        );
        engine.bridge(w.id, s.id);
        engine.flush();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let local = sock.local_addr().unwrap();
        let dtls = DtlsEndpoint::new(local, rtc_shared::TransportProtocol::UDP, None);
        let started = Instant::now();
        sock.send_to(&browser_check(&ice, true), w.browser).unwrap();
        calls.push(Call {
            sock,
            dtls,
            browser_at: w.browser,
            ice,
            plain_at: s.rtp,
            started,
            connected: false,
            keyed: None,
            seal: None,
        });
    }
    // Every handshake at once, as a burst of browsers would.
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut keyed = 0;
    let mut last_checks = Instant::now();
    while keyed < n && Instant::now() < deadline {
        // A browser repeats its checks until it hears back (a datagram can be lost in a burst).
        let repeat = last_checks.elapsed() > Duration::from_millis(500);
        if repeat {
            last_checks = Instant::now();
        }
        let mut heard = false;
        for call in &mut calls {
            if repeat && !call.connected {
                let _ = (call.sock).send_to(&browser_check(&call.ice, true), call.browser_at);
            }
            while let Some(t) = call.dtls.poll_transmit() {
                let _ = call.sock.send_to(&t.message, t.transport.peer_addr);
            }
            let Ok((len, from)) = call.sock.recv_from(&mut buf) else {
                if call.connected && call.keyed.is_none() {
                    let _ = call.dtls.handle_timeout(call.browser_at, Instant::now());
                }
                continue;
            };
            heard = true;
            match buf[0] {
                20..=63 => {
                    let events = (call.dtls)
                        .read(Instant::now(), from, None, BytesMut::from(&buf[..len]))
                        .unwrap_or_default();
                    if events
                        .iter()
                        .any(|e| matches!(e, EndpointEvent::HandshakeComplete))
                    {
                        call.keyed = Some(call.started.elapsed());
                        let state = call.dtls.get_connection_state(from).unwrap();
                        let m = state
                            .export_keying_material("EXTRACTOR-dtls_srtp", &[], 60)
                            .unwrap();
                        let m = m.as_ref();
                        let key = [&m[..16], &m[32..46]].concat();
                        let key = MasterKey::new(Suite::AesCm128HmacSha1_80, &key).unwrap();
                        call.seal = Some(Context::new(&key));
                        keyed += 1;
                    }
                }
                // A check answered: the browser starts its handshake there, as a browser
                // does once a candidate pair works.
                0..=3 if !call.connected => {
                    call.connected = true;
                    (call.dtls)
                        .connect(Instant::now(), from, client_config.clone(), None)
                        .unwrap();
                }
                _ => {}
            }
        }
        if !heard {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    for call in &mut calls {
        while let Some(t) = call.dtls.poll_transmit() {
            let _ = call.sock.send_to(&t.message, t.transport.peer_addr);
        }
    }
    let mut setups: Vec<Duration> = calls.iter().filter_map(|c| c.keyed).collect();
    setups.sort();
    // What the browser says: 20 ms of a 600 Hz tone, as Opus or PCMU (the same packet each
    // time: a browser's cost is not what is measured).
    let spoken = {
        let tone: Vec<i16> = switchboard_media::tone::sines(&[600.0], 8000.0, 20);
        let mut out = vec![0u8; 400];
        if opus {
            let mut enc = switchboard_media::opus::Encoder::new(8000).unwrap();
            let len = enc.encode(&tone[..160], &mut out).unwrap();
            out.truncate(len);
        } else {
            out.truncate(160);
            out.fill(0x7f);
        }
        out
    };
    let pt = if opus { 111 } else { 0 };
    // Talking: each party every 20 ms.
    let (relayed, cpu) = (engine.relayed_total(), media_cpu_secs());
    let start = Instant::now();
    let (mut tick, mut got) = (0u32, [0u64; 2]);
    while start.elapsed() < Duration::from_secs(secs) {
        for call in &mut calls {
            let mut p = [0x7fu8; 512];
            let rate = if opus { 960 } else { 160 };
            rtp::write_header(&mut p, pt, false, tick as u16, tick * rate, 0xb0b);
            p[12..12 + spoken.len()].copy_from_slice(&spoken);
            if let Some(seal) = &mut call.seal {
                let len = seal.protect_rtp(&mut p, 12 + spoken.len()).unwrap();
                let _ = call.sock.send_to(&p[..len], call.browser_at);
            }
            let mut p = [0x7fu8; 172];
            rtp::write_header(&mut p, 0, false, tick as u16, tick * 160, 0xcafe);
            let _ = phone.send_to(&p, call.plain_at);
        }
        for call in &calls {
            while call.sock.recv_from(&mut buf).is_ok() {
                got[0] += 1;
            }
        }
        while phone.recv_from(&mut buf).is_ok() {
            got[1] += 1;
        }
        tick += 1;
        let next = start + Duration::from_millis(20 * tick as u64);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let (relayed, cpu) = (engine.relayed_total() - relayed, media_cpu_secs() - cpu);
    let pct =
        |d: Option<&Duration>| d.map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3));
    println!(
        "| {n} ({} keyed) | {} | {} | {:.0} | {:.1} % | {:.3} % | {:.2} µs | {:.0} KiB | {} / {} |",
        setups.len(),
        pct(setups.get(setups.len() / 2)),
        pct(setups.last()),
        relayed as f64 / secs as f64,
        cpu / secs as f64 * 100.0,
        cpu / secs as f64 * 100.0 / n as f64,
        cpu * 1e6 / relayed.max(1) as f64,
        rss_kb().saturating_sub(rss_before) as f64 / n as f64,
        got[0],
        got[1],
    );
    engine.shutdown();
}
