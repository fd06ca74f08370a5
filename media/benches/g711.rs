//! G.711 per 20 ms frame (160 samples): decode, encode, and law-to-law conversion by table.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_media::g711;

fn g711(c: &mut Criterion) {
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i as f32 * 0.3).sin() * 12_000.0) as i16)
        .collect();
    let alaw: Vec<u8> = pcm.iter().map(|&s| g711::linear_to_alaw(s)).collect();
    let mut g = c.benchmark_group("G.711 per 160-sample frame");
    g.bench_function("A-law decode", |b| {
        let mut out = [0i16; 160];
        b.iter(|| {
            for (o, &a) in out.iter_mut().zip(black_box(&alaw)) {
                *o = g711::alaw_to_linear(a);
            }
            black_box(&out);
        })
    });
    g.bench_function("μ-law encode", |b| {
        let mut out = [0u8; 160];
        b.iter(|| {
            for (o, &s) in out.iter_mut().zip(black_box(&pcm)) {
                *o = g711::linear_to_ulaw(s);
            }
            black_box(&out);
        })
    });
    g.bench_function("A-law to μ-law in place (table)", |b| {
        let mut frame = alaw.clone();
        b.iter(|| g711::transcode_in_place(black_box(&mut frame), &g711::ALAW_TO_ULAW))
    });
    g.finish();
}

criterion_group!(benches, g711);
criterion_main!(benches);
