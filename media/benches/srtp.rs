//! SRTP on the relay path: a packet from an SRTP leg decrypted and re-encrypted for another
//! (the work per relayed packet between two SRTP legs, or twice the work between an SRTP leg
//! and a plain one), ours in place against webrtc-rs's `rtc-srtp`, which returns each packet
//! in a new buffer. Allocations per packet are counted: ours must make none.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_media::rtp;
use switchboard_media::srtp::{Context, MAX_OVERHEAD, MasterKey, Suite};

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

criterion_group!(benches, srtp);
criterion_main!(benches);
