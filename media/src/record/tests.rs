use super::*;
use std::sync::Mutex;

/// A feed started at `t0` that stops `when` (its frames go nowhere).
fn stopping_feed(t0: Instant, when: StopWhen) -> RecordFeed {
    let (tx, _) = mpsc::channel();
    RecordFeed {
        recording: 1,
        tracks: TapTracks::Inbound,
        tx,
        backlog: Arc::new(AtomicI64::new(0)),
        own_backlog: Arc::new(AtomicI64::new(0)),
        started: t0,
        paused_at: None,
        paused_total: Duration::ZERO,
        next: [0; 2],
        dropped: 0,
        max_length: when.max_length,
        silence: (when.silence)
            .map(|l| crate::silence::SilenceTimer::new(t0, l, when.silence_after_speech)),
    }
}

#[test]
fn a_recording_stops_by_itself_at_its_length_or_after_silence() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let loud = crate::tone::sines(&[1000.0], 8000.0, 20);
    let loud: Frame = loud[..FRAME].try_into().unwrap();

    // Its length, pauses left out.
    let second = StopWhen {
        max_length: Some(Duration::from_secs(1)),
        ..StopWhen::default()
    };
    let mut f = stopping_feed(t0, second);
    assert_eq!(f.due_stop(ms(999)), None);
    f.pause(ms(500), PauseBehavior::Skip);
    assert_eq!(f.due_stop(ms(5000)), None, "not while paused");
    f.resume(ms(1000));
    assert_eq!(f.due_stop(ms(1499)), None);
    assert_eq!(f.due_stop(ms(1500)), Some(StopReason::MaxLength));

    // A second of silence after the party spoke (frames stamped as they arrived).
    let quiet = StopWhen {
        silence: Some(Duration::from_secs(1)),
        ..StopWhen::default()
    };
    let mut f = stopping_feed(t0, quiet);
    for n in 0..20 {
        f.feed(Track::Inbound, &loud, ms(n * 20));
    }
    f.feed(Track::Inbound, &frame(3), ms(400));
    assert_eq!(f.due_stop(ms(1379)), None);
    assert_eq!(f.due_stop(ms(1380)), Some(StopReason::Silence));
    // What the party hears is not what it says.
    let mut f = stopping_feed(t0, quiet);
    f.feed(Track::Outbound, &loud, ms(900));
    assert_eq!(f.due_stop(ms(1000)), Some(StopReason::Silence));

    // Telnyx's rule: no silence counts before the party speaks.
    let after_speech = StopWhen {
        silence_after_speech: true,
        ..quiet
    };
    let f = stopping_feed(t0, after_speech);
    assert_eq!(f.due_stop(ms(60_000)), None);
}

/// A skipped pause leaves nothing of itself in the file: the next frame follows the last one
/// before it; a silent pause keeps its length (the next frame is placed at the clock, the
/// frames between are silence), and its stop counts it.
#[test]
fn a_pause_is_skipped_or_kept_as_silence() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    for (how, first_after, until) in [
        (PauseBehavior::Skip, 10, 11),
        (PauseBehavior::Silence, 60, 61),
    ] {
        let (tx, rx) = mpsc::channel();
        let mut f = RecordFeed {
            tx,
            ..stopping_feed(t0, StopWhen::default())
        };
        for n in 0..10 {
            f.feed(Track::Inbound, &frame(1), ms(n * 20));
        }
        f.pause(ms(200), how);
        f.feed(Track::Inbound, &frame(2), ms(600));
        f.resume(ms(1200));
        f.feed(Track::Inbound, &frame(3), ms(1200));
        f.stop(ms(1220));
        let messages: Vec<RecorderMsg> = rx.try_iter().collect();
        let indexes: Vec<u32> = (messages.iter())
            .filter_map(|m| match m {
                RecorderMsg::Frame { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(indexes.len(), 11, "{how:?}: nothing recorded while paused");
        assert_eq!(indexes[10], first_after, "{how:?}");
        assert!(
            matches!(messages.last(), Some(RecorderMsg::Stop { until: u, .. }) if *u == until),
            "{how:?}"
        );
    }
}

fn frame(v: i16) -> Frame {
    [v; FRAME]
}

fn record(
    channels: Channels,
    format: RecordFormat,
    frames: &[(Track, u32, i16)],
) -> (RecordingSaved, Vec<u8>) {
    let frames: Vec<_> = frames.iter().map(|&(t, i, v)| (t, i, frame(v))).collect();
    record_spec(channels, format, TapTracks::Both, false, &frames)
}

fn record_spec(
    channels: Channels,
    format: RecordFormat,
    tracks: TapTracks,
    trim_silence: bool,
    frames: &[(Track, u32, Frame)],
) -> (RecordingSaved, Vec<u8>) {
    let timed: Vec<_> = (frames.iter())
        .map(|(track, index, samples)| (*track, *index as u64 * 20 + 1, *samples))
        .collect();
    record_at(channels, format, tracks, trim_silence, &timed, 0)
}

/// A recording fed each frame at its time (ms after the start), stopped at `stop_ms`: what
/// was saved, and the file.
fn record_at(
    channels: Channels,
    format: RecordFormat,
    tracks: TapTracks,
    trim_silence: bool,
    frames: &[(Track, u64, Frame)],
    stop_ms: u64,
) -> (RecordingSaved, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.wav");
    let saved = Arc::new(Mutex::new(None));
    let s = saved.clone();
    let recorder = Recorder::spawn(Beat::new("recorder", None), move |r| {
        *s.lock().unwrap() = Some(r)
    })
    .unwrap();
    let start = Instant::now();
    let mut feed = recorder.start(
        RecordSpec {
            recording: 1,
            path,
            format,
            channels,
            tracks,
            trim_silence,
            stop: Default::default(),
        },
        start,
    );
    for (track, at_ms, samples) in frames {
        // In real time the recorder thread keeps up; fed at once, it is given the time.
        while feed.own_backlog.load(Ordering::Relaxed) >= MAX_BACKLOG_PER_RECORDING / 2 {
            std::thread::yield_now();
        }
        feed.feed(*track, samples, start + Duration::from_millis(*at_ms));
    }
    feed.stop(start + Duration::from_millis(stop_ms));
    drop(recorder);
    let saved = saved.lock().unwrap().take().unwrap();
    let bytes = std::fs::read(&saved.path).unwrap();
    (saved, bytes)
}

/// Both tracks of a dual recording fed at the times given (ms after the start), stopped at
/// `stop_ms`: the left and right channels, one sample a frame.
fn dual_at(frames: &[(Track, u64, i16)], stop_ms: u64) -> (Vec<i16>, Vec<i16>) {
    let frames: Vec<_> = frames.iter().map(|&(t, at, v)| (t, at, frame(v))).collect();
    let (format, both) = (RecordFormat::Pcm16, TapTracks::Both);
    let (_, bytes) = record_at(Channels::Dual, format, both, false, &frames, stop_ms);
    let samples = pcm16(&bytes);
    let channel = |c: usize| samples.iter().skip(c).step_by(2 * FRAME).copied().collect();
    (channel(0), channel(1))
}

/// The stalls of a loaded machine: a worker that stops for a while and then works off its
/// socket's backlog and its missed clock ticks at once, and a sender whose clock runs fast.
/// Neither may leave one track ahead of the clock for good: the other track's frames would
/// all come too late for their slots (a browser's voice lost from a dual recording after
/// its first seconds).
#[test]
fn a_burst_after_a_stall_leaves_both_tracks_in_the_recording() {
    use Track::{Inbound, Outbound};
    let mut frames = Vec::new();
    let both = |frames: &mut Vec<_>, n: u64, at: u64| {
        frames.push((Inbound, at, 100 + n as i16));
        frames.push((Outbound, at, -100 - n as i16));
    };
    // 1 s in time; a stall of 100 ms worked off at once; 1 s in time; a stall of 600 ms
    // worked off at once (the media clock's 30 missed ticks, the socket's 30 packets).
    for n in 0..50 {
        both(&mut frames, n, n * 20 + 1);
    }
    for n in 50..55 {
        both(&mut frames, n, 55 * 20 + 1);
    }
    for n in 55..100 {
        both(&mut frames, n, n * 20 + 1);
    }
    for n in 100..130 {
        both(&mut frames, n, 130 * 20 + 1);
    }
    // Then 2 s in which the inbound sender's clock runs 5 % fast.
    for n in 130..230 {
        frames.push((Outbound, n * 20 + 1, -100 - n as i16));
        frames.push((Inbound, n * 19 + 130 + 1, 100 + n as i16));
    }
    frames.sort_by_key(|&(_, at, _)| at);
    let (left, right) = dual_at(&frames, 230 * 20);
    assert_eq!(left.len(), 230);
    // The short stall: every frame in its place.
    assert!((0..100).all(|n| left[n] == 100 + n as i16), "{left:?}");
    assert!((0..100).all(|n| right[n] == -100 - n as i16), "{right:?}");
    // The long one: the stall itself is lost, but from shortly after it both tracks go on.
    let heard = |c: &[i16], from: usize| c[from..].iter().filter(|&&s| s != 0).count();
    assert!(heard(&left, 135) >= 90, "inbound after the stall: {left:?}");
    assert!(
        heard(&right, 135) >= 90,
        "outbound after the stall: {right:?}"
    );
}

fn pcm16(wav: &[u8]) -> Vec<i16> {
    wav[44..]
        .chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// A long MP3 is encoded after its stop while another recording's frames keep being
/// written: the second recording's frames are taken before the first is saved.
#[test]
fn finishing_a_long_mp3_does_not_hold_up_other_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    let recorder = Recorder::spawn(Beat::new("recorder", None), move |r| {
        assert_eq!(r.error, None);
        l.lock().unwrap().push(format!("saved {}", r.recording));
    })
    .unwrap();
    let spec = |recording, name: &str, format| RecordSpec {
        recording,
        path: dir.path().join(name),
        format,
        channels: Channels::Dual,
        tracks: TapTracks::Both,
        trim_silence: false,
        stop: Default::default(),
    };
    let drained = |feed: &RecordFeed| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while feed.own_backlog.load(Ordering::Relaxed) > 0 {
            assert!(
                Instant::now() < deadline,
                "the recorder stopped taking frames"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let start = Instant::now();
    let mut a = recorder.start(spec(1, "a.wav", RecordFormat::Mp3), start);
    // Ten minutes on both tracks, fed as fast as the recorder takes them.
    for i in 0..30_000u32 {
        if a.own_backlog.load(Ordering::Relaxed) >= MAX_BACKLOG_PER_RECORDING - 2 {
            drained(&a);
        }
        let at = start + Duration::from_millis(i as u64 * 20 + 1);
        a.feed(Track::Inbound, &frame(4000), at);
        a.feed(Track::Outbound, &frame(-4000), at);
    }
    drained(&a);
    assert_eq!(a.dropped, 0);
    a.stop(start + Duration::from_secs(600));
    let mut b = recorder.start(spec(2, "b.wav", RecordFormat::Pcm16), Instant::now());
    for _ in 0..50 {
        b.feed(Track::Inbound, &frame(7), Instant::now());
    }
    drained(&b);
    log.lock().unwrap().push("b's frames taken".into());
    b.stop(Instant::now());
    drop(recorder);
    assert_eq!(
        *log.lock().unwrap(),
        ["b's frames taken", "saved 1", "saved 2"]
    );
    assert!(dir.path().join("a.mp3").exists());
}

/// A recording whose frames are not taken fills its own share and then drops, leaving
/// the rest of the shared budget to other recordings.
#[test]
fn one_recording_cannot_take_the_whole_backlog() {
    let (tx, _rx) = mpsc::channel();
    let shared = Arc::new(AtomicI64::new(0));
    let feed = |recording| RecordFeed {
        recording,
        tracks: TapTracks::Both,
        tx: tx.clone(),
        backlog: shared.clone(),
        own_backlog: Arc::new(AtomicI64::new(0)),
        started: Instant::now(),
        paused_at: None,
        paused_total: Duration::ZERO,
        next: [0; 2],
        dropped: 0,
        max_length: None,
        silence: None,
    };
    let (mut stuck, mut other) = (feed(1), feed(2));
    let now = Instant::now();
    for _ in 0..300 {
        stuck.feed(Track::Inbound, &frame(1), now);
    }
    assert_eq!(stuck.dropped, 300 - MAX_BACKLOG_PER_RECORDING as u64);
    for _ in 0..10 {
        other.feed(Track::Inbound, &frame(1), now);
    }
    assert_eq!(other.dropped, 0);
    assert_eq!(
        shared.load(Ordering::Relaxed),
        MAX_BACKLOG_PER_RECORDING + 10
    );
}

#[test]
fn one_track_only_leaves_the_other_out() {
    let frames: Vec<_> = (0..20)
        .flat_map(|i| {
            [
                (Track::Inbound, i, frame(100)),
                (Track::Outbound, i, frame(2000)),
            ]
        })
        .collect();
    let (saved, bytes) = record_spec(
        Channels::Mono,
        RecordFormat::Pcm16,
        TapTracks::Inbound,
        false,
        &frames,
    );
    assert_eq!(saved.duration_ms, 400);
    assert!(pcm16(&bytes).iter().all(|&s| s == 100));
}

#[test]
fn silence_is_trimmed_at_both_ends() {
    let level = |i: u32| if (3..7).contains(&i) { 1000 } else { 3 };
    let frames: Vec<_> = (0..10)
        .map(|i| (Track::Inbound, i, frame(level(i))))
        .collect();
    for format in [RecordFormat::Pcm16, RecordFormat::Ulaw] {
        let (saved, bytes) = record_spec(Channels::Mono, format, TapTracks::Both, true, &frames);
        assert_eq!(saved.duration_ms, 80, "{format:?}");
        assert_eq!(saved.bytes, bytes.len() as u64);
        assert_eq!(
            u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize,
            bytes.len() - 44
        );
    }
    let (_, bytes) = record_spec(
        Channels::Mono,
        RecordFormat::Pcm16,
        TapTracks::Both,
        true,
        &frames,
    );
    assert!(pcm16(&bytes).iter().all(|&s| s == 1000));
}

#[test]
fn an_mp3_recording_replaces_its_wav_when_stopped() {
    let tone = crate::tone::sines(&[1000.0], 8000.0, 1000);
    let frames: Vec<_> = tone
        .chunks(FRAME)
        .enumerate()
        .map(|(i, c)| (Track::Inbound, i as u32, c.try_into().unwrap()))
        .collect();
    let (saved, bytes) = record_spec(
        Channels::Mono,
        RecordFormat::Mp3,
        TapTracks::Both,
        false,
        &frames,
    );
    assert_eq!(saved.path.extension().unwrap(), "mp3");
    assert!(!saved.path.with_extension("wav").exists());
    assert_eq!((saved.duration_ms, saved.bytes), (1000, bytes.len() as u64));
    let back = crate::decode::decode_to_8k(bytes, Some("mp3")).unwrap();
    assert!(crate::tone::share_at(&back[1000..7000], 1000.0) > 0.8);
}

#[test]
fn a_recording_lasts_its_time_even_when_nobody_sends() {
    let dir = tempfile::tempdir().unwrap();
    let saved = Arc::new(Mutex::new(None));
    let s = saved.clone();
    let recorder = Recorder::spawn(Beat::new("recorder", None), move |r| {
        *s.lock().unwrap() = Some(r)
    })
    .unwrap();
    let start = Instant::now();
    let spec = RecordSpec {
        recording: 1,
        path: dir.path().join("quiet.wav"),
        format: RecordFormat::Pcm16,
        channels: Channels::Dual,
        tracks: TapTracks::Both,
        trim_silence: false,
        stop: Default::default(),
    };
    let mut feed = recorder.start(spec, start);
    // One frame at 100 ms, then nothing; paused for half a second of the 1.5 s.
    feed.feed(
        Track::Inbound,
        &frame(500),
        start + Duration::from_millis(100),
    );
    feed.pause(start + Duration::from_millis(600), PauseBehavior::Skip);
    feed.resume(start + Duration::from_millis(1100));
    feed.stop(start + Duration::from_millis(1500));
    drop(recorder);
    let saved = saved.lock().unwrap().take().unwrap();
    assert_eq!(saved.duration_ms, 1000, "1.5 s less the pause");
    let (samples, channels) = read_wav(&std::fs::read(&saved.path).unwrap()).unwrap();
    assert_eq!((samples.len(), channels), (16_000, 2));
    assert_eq!(samples.iter().filter(|&&s| s != 0).count(), FRAME);
}

#[test]
fn dual_channel_puts_inbound_left_and_outbound_right() {
    let frames = [
        (Track::Inbound, 0, 100),
        (Track::Outbound, 0, -200),
        (Track::Inbound, 1, 300),
        (Track::Outbound, 20, 7),
    ];
    let (saved, bytes) = record(Channels::Dual, RecordFormat::Pcm16, &frames);
    assert_eq!(
        (saved.channels, saved.duration_ms, saved.dropped_frames),
        (2, 420, 0)
    );
    assert_eq!(bytes.len() as u64, saved.bytes);
    let sample = |frame: usize, ch: usize| {
        let o = 44 + (frame * FRAME * 2 + ch) * 2;
        i16::from_le_bytes([bytes[o], bytes[o + 1]])
    };
    assert_eq!((sample(0, 0), sample(0, 1)), (100, -200));
    assert_eq!(
        (sample(1, 0), sample(1, 1)),
        (300, 0),
        "outbound missing: silence"
    );
    assert_eq!((sample(2, 0), sample(2, 1)), (0, 0), "a gap on both tracks");
    assert_eq!(sample(20, 1), 7, "re-anchored to the clock after a gap");
    assert_eq!(
        u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize,
        bytes.len() - 44
    );
}

#[test]
fn mono_mixes_and_ulaw_is_one_byte_per_sample() {
    let (saved, bytes) = record(
        Channels::Mono,
        RecordFormat::Ulaw,
        &[(Track::Inbound, 0, 1000), (Track::Outbound, 0, 500)],
    );
    assert_eq!((saved.channels, saved.duration_ms), (1, 20));
    assert_eq!(
        u16::from_le_bytes([bytes[20], bytes[21]]),
        7,
        "format tag: mu-law"
    );
    assert_eq!(bytes[44], crate::g711::linear_to_ulaw(1500));
}

#[test]
fn a_file_cut_short_is_repaired() {
    let (_, bytes) = record(
        Channels::Dual,
        RecordFormat::Pcm16,
        &[(Track::Inbound, 0, 1), (Track::Inbound, 9, 1)],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crashed.wav");
    // As left by a crash: sizes from an earlier refresh, and half a sample block at the end.
    let mut cut = bytes[..bytes.len() - 1001].to_vec();
    cut[40..44].copy_from_slice(&640u32.to_le_bytes());
    std::fs::write(&path, &cut).unwrap();
    let Repaired {
        data_bytes: data,
        duration_ms,
    } = repair_wav(&path).unwrap();
    assert_eq!(data % 4, 0);
    assert_eq!(duration_ms, data / 32, "8000 dual 16-bit frames per second");
    let fixed = std::fs::read(&path).unwrap();
    assert_eq!(fixed.len() as u64, 44 + data);
    assert_eq!(
        u32::from_le_bytes(fixed[40..44].try_into().unwrap()) as u64,
        data
    );
    assert_eq!(
        u32::from_le_bytes(fixed[4..8].try_into().unwrap()) as u64,
        36 + data
    );
}
