//! Recordings: each side on its own channel, long packets written whole.

use super::*;

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
