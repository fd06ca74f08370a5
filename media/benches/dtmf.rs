//! In-band DTMF detection per 20 ms frame (it runs on every frame of every call whose peer
//! has no telephone-event): a frame of speech-like audio, and a frame of a digit.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_media::dtmf::Digit;
use switchboard_media::dtmf::goertzel::GoertzelDetector;
use switchboard_media::tone;

fn dtmf(c: &mut Criterion) {
    let voiced = tone::voiced(20);
    let digit = tone::dtmf(Digit::new('5').unwrap(), 20);
    let mut g = c.benchmark_group("in-band DTMF per 160-sample frame");
    for (name, frame) in [("speech-like", &voiced), ("a digit", &digit)] {
        g.bench_function(name, |b| {
            let mut d = GoertzelDetector::default();
            b.iter(|| black_box(d.on_frame(black_box(frame))))
        });
    }
    g.finish();
}

criterion_group!(benches, dtmf);
criterion_main!(benches);
