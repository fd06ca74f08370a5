//! Noise suppression cost per direction: one 20 ms frame through 8→48 kHz, RNNoise and back.
//! A direction runs 50 frames a second, so one core carries 20 ms / (time per frame) of them.
//! Once running it must not allocate: the bench fails if it does.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_media::FRAME;
use switchboard_media::denoise::Denoiser;
use switchboard_media::tone;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

fn denoise(c: &mut Criterion) {
    let speechy = tone::voiced(2000);
    let mut d = Denoiser::default();
    // Warm up (buffers reach their size), then count over 10 s of audio.
    let mut frame = [0i16; FRAME];
    d.process(&mut frame);
    let before = counting::allocations();
    for f in speechy.chunks_exact(FRAME).cycle().take(500) {
        frame.copy_from_slice(f);
        d.process(black_box(&mut frame));
    }
    let allocs = counting::allocations() - before;
    println!("noise suppression: {allocs} allocations in 500 frames");
    assert_eq!(allocs, 0, "suppression must not allocate per frame");
    let mut g = c.benchmark_group("noise suppression per direction");
    g.bench_function("one 20 ms frame", |b| {
        let mut frames = speechy.chunks_exact(FRAME).cycle();
        let mut frame = [0i16; FRAME];
        b.iter(|| {
            frame.copy_from_slice(frames.next().expect("cycles"));
            d.process(black_box(&mut frame));
        })
    });
    g.finish();
}

criterion_group!(benches, denoise);
criterion_main!(benches);
