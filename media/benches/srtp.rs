//! SRTP on the relay path. First what SRTP adds to the relay's per-packet work: the in-place
//! rewrite alone (plain to plain), then with the packet opened (SRTP leg to plain), then opened
//! and sealed again (SRTP leg to SRTP leg). Then ours against webrtc-rs's `rtc-srtp`, which
//! returns each packet in a new buffer: a packet sealed by its sender, opened and sealed again
//! by the relay. Allocations per packet are counted: ours must make none.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_media::relay::{Outbound, prepare};
use switchboard_media::srtp::{Context, MAX_OVERHEAD, MasterKey, Suite};
use switchboard_media::{Law, PayloadMap, rtp};

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// A 20 ms G.711 packet.
const PAYLOAD: usize = 160;

fn plain(seq: u16) -> [u8; 12 + PAYLOAD + MAX_OVERHEAD] {
    let mut p = [0x55u8; 12 + PAYLOAD + MAX_OVERHEAD];
    rtp::write_header(&mut p, 0, false, seq, u32::from(seq) * 160, 0x1234_5678);
    p
}

fn profile(suite: Suite) -> rtc_srtp::protection_profile::ProtectionProfile {
    use rtc_srtp::protection_profile::ProtectionProfile as P;
    match suite {
        Suite::AesCm128HmacSha1_80 => P::Aes128CmHmacSha1_80,
        Suite::AesCm128HmacSha1_32 => P::Aes128CmHmacSha1_32,
        Suite::AeadAes128Gcm => P::AeadAes128Gcm,
    }
}

fn theirs(key: &MasterKey) -> rtc_srtp::context::Context {
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    let (k, s) = key.material().split_at(16);
    rtc_srtp::context::Context::new(k, s, profile(key.suite()), None, None, provider.crypto())
        .unwrap()
}

/// One relayed packet, ours: protect (as the sending leg did), then unprotect and protect
/// again as the relay does, all in the one buffer.
fn ours_round(
    tx: &mut Context,
    rx: &mut Context,
    out: &mut Context,
    buf: &mut [u8],
    seq: u16,
) -> usize {
    rtp::set_sequence(buf, seq);
    let len = tx.protect_rtp(buf, 12 + PAYLOAD).unwrap();
    let len = rx.unprotect_rtp(&mut buf[..len]).unwrap();
    out.protect_rtp(buf, len).unwrap()
}

const PCMU: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: Some(101),
};

/// The relay's own step with and without SRTP around it, over a stream of sealed packets made
/// beforehand (the sender's work is not the relay's).
fn relay_step(c: &mut Criterion) {
    const N: usize = 4096;
    let mut out = Outbound::default();
    let mut i = 0usize;
    let mut plain_packets: Vec<_> = (0..N).map(|i| plain(i as u16)).collect();
    c.bench_function("relay step/plain to plain", |bench| {
        bench.iter(|| {
            i = (i + 1) % N;
            let p = &mut plain_packets[i][..12 + PAYLOAD];
            black_box(prepare(black_box(p), &PCMU, &PCMU, &mut out).is_ok())
        })
    });
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AeadAes128Gcm] {
        let (a, b) = (MasterKey::generate(suite), MasterKey::generate(suite));
        let mut sender = Context::new(&a);
        let sealed: Vec<([u8; 12 + PAYLOAD + MAX_OVERHEAD], usize)> = (0..N)
            .map(|i| {
                let mut p = plain(i as u16);
                let len = sender.protect_rtp(&mut p, 12 + PAYLOAD).unwrap();
                (p, len)
            })
            .collect();
        let name = suite.name();
        // Each pass over the stream needs fresh contexts: an index is accepted once.
        let mut one_way = |c: &mut Criterion, label: &str, seal: bool| {
            let (mut rx, mut tx) = (Context::new(&a), Context::new(&b));
            let mut i = 0usize;
            let mut buf = sealed[0].0;
            c.bench_function(&format!("relay step/{name}: {label}"), |bench| {
                bench.iter(|| {
                    if i == N {
                        (rx, tx, i) = (Context::new(&a), Context::new(&b), 0);
                    }
                    let (packet, len) = &sealed[i];
                    i += 1;
                    buf.copy_from_slice(packet);
                    let n = rx.unprotect_rtp(&mut buf[..*len]).unwrap();
                    prepare(&mut buf[..n], &PCMU, &PCMU, &mut out).unwrap();
                    black_box(if seal {
                        tx.protect_rtp(&mut buf, n).unwrap()
                    } else {
                        n
                    })
                })
            });
        };
        one_way(c, "SRTP to plain (open)", false);
        one_way(c, "SRTP to SRTP (open, seal)", true);
    }
}

fn srtp(c: &mut Criterion) {
    for suite in Suite::ALL {
        let (a, b) = (MasterKey::generate(suite), MasterKey::generate(suite));
        let (mut tx, mut rx, mut out) = (Context::new(&a), Context::new(&a), Context::new(&b));
        let mut buf = plain(0);
        let before = counting::allocations();
        for seq in 0..10_000u16 {
            ours_round(&mut tx, &mut rx, &mut out, &mut buf, seq);
        }
        let allocs = counting::allocations() - before;
        println!(
            "srtp/{}: ours made {allocs} allocations in 10000 packets",
            suite.name()
        );
        assert_eq!(allocs, 0, "SRTP on the relay path must not allocate");

        let mut seq = 10_000u16;
        c.bench_function(
            &format!("srtp/{}/ours: protect, unprotect, protect", suite.name()),
            |bench| {
                bench.iter(|| {
                    seq = seq.wrapping_add(1);
                    rtp::set_sequence(&mut buf, seq);
                    let len = tx.protect_rtp(&mut buf, 12 + PAYLOAD).unwrap();
                    let len = rx.unprotect_rtp(black_box(&mut buf[..len])).unwrap();
                    black_box(out.protect_rtp(&mut buf, len).unwrap())
                })
            },
        );

        let (mut ttx, mut trx, mut tout) = (theirs(&a), theirs(&a), theirs(&b));
        let packet = plain(0);
        let before = counting::allocations();
        for seq in 0..1_000u16 {
            let mut p = packet;
            rtp::set_sequence(&mut p, seq);
            let sealed = ttx.encrypt_rtp(&p[..12 + PAYLOAD]).unwrap();
            let opened = trx.decrypt_rtp(&sealed).unwrap();
            black_box(tout.encrypt_rtp(&opened).unwrap());
        }
        let allocs = counting::allocations() - before;
        println!(
            "srtp/{}: rtc-srtp made {allocs} allocations in 1000 packets",
            suite.name()
        );
        let mut seq = 1_000u16;
        let mut p = packet;
        c.bench_function(
            &format!(
                "srtp/{}/rtc-srtp: protect, unprotect, protect",
                suite.name()
            ),
            |bench| {
                bench.iter(|| {
                    seq = seq.wrapping_add(1);
                    rtp::set_sequence(&mut p, seq);
                    let sealed = ttx.encrypt_rtp(&p[..12 + PAYLOAD]).unwrap();
                    let opened = trx.decrypt_rtp(black_box(&sealed)).unwrap();
                    black_box(tout.encrypt_rtp(&opened).unwrap())
                })
            },
        );
    }
}

criterion_group!(benches, relay_step, srtp);
criterion_main!(benches);
