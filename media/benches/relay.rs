//! The relay hot path: time per packet of the in-place rewrite, and allocations per packet,
//! which must be zero. A counting global allocator checks the latter and the bench fails if any
//! allocation happens while packets are prepared.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_media::relay::{Outbound, prepare};
use switchboard_media::{Law, PayloadMap, rtp};

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const PCMA: PayloadMap = PayloadMap {
    audio: Some((8, Law::Alaw)),
    telephone_event: Some(101),
};
const PCMU: PayloadMap = PayloadMap {
    audio: Some((0, Law::Ulaw)),
    telephone_event: Some(101),
};

fn packet() -> [u8; 172] {
    let mut p = [0x55u8; 172];
    rtp::write_header(&mut p, 8, false, 1, 160, 0x1234_5678);
    p
}

/// Prepares `n` packets the way the worker does (sequence and timestamp advancing) and
/// returns how many allocations that took.
fn allocations_for(n: u32, to: &PayloadMap) -> u64 {
    let mut buf = packet();
    let mut out = Outbound::default();
    let before = counting::allocations();
    for i in 0..n {
        rtp::set_sequence(&mut buf, i as u16);
        rtp::set_timestamp(&mut buf, i * 160);
        prepare(black_box(&mut buf), &PCMA, to, &mut out).unwrap();
    }
    counting::allocations() - before
}

fn relay(c: &mut Criterion) {
    for (name, to) in [("same codec", PCMA), ("PCMA to PCMU", PCMU)] {
        let allocs = allocations_for(100_000, &to);
        println!("relay/{name}: {allocs} allocations in 100000 packets");
        assert_eq!(allocs, 0, "the relay hot path must not allocate");
    }
    let mut g = c.benchmark_group("relay per packet (172-byte G.711)");
    let mut buf = packet();
    let mut out = Outbound::default();
    let mut seq = 0u16;
    g.bench_function("same codec: header rewrite", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            rtp::set_sequence(&mut buf, seq);
            prepare(black_box(&mut buf), &PCMA, &PCMA, &mut out).unwrap();
        })
    });
    g.bench_function("PCMA to PCMU: rewrite and table transcode", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            rtp::set_sequence(&mut buf, seq);
            rtp::set_payload_type(&mut buf, 8);
            prepare(black_box(&mut buf), &PCMA, &PCMU, &mut out).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
