//! Prompts from files, http URLs (a real HTTP server on loopback, with ETags) and espeak-ng.

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use switchboard_control::infra::egress::{Clients, Reach};
use switchboard_control::services::prompts::tts::EspeakNg;
use switchboard_control::services::prompts::{PromptError, Prompts, Speech};
use switchboard_media::tone::{RATE, share_at};

/// A 16 kHz PCM16 WAV of `freq` Hz for `seconds`.
fn wav_16k(freq: f32, seconds: f32) -> Vec<u8> {
    let rate = 16000u32;
    let data: Vec<u8> = (0..(rate as f32 * seconds) as usize)
        .flat_map(|i| {
            let v = (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin() * 10000.0;
            (v as i16).to_le_bytes()
        })
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 1 | (1 << 16), rate, rate * 2, 2 | (16 << 16)] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

#[derive(Default)]
struct Counts {
    full: AtomicUsize,
    not_modified: AtomicUsize,
}

/// Serves /tone.wav with an ETag (answering If-None-Match with 304), /plain.wav without
/// validators, /missing.wav as 404 and /page.html as HTML.
async fn serve(counts: Arc<Counts>) -> String {
    let body = Arc::new(wav_16k(700.0, 1.0));
    let tagged = {
        let (counts, body) = (counts.clone(), body.clone());
        move |headers: HeaderMap| async move {
            if headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v == "\"v1\"")
            {
                counts.not_modified.fetch_add(1, Ordering::SeqCst);
                return StatusCode::NOT_MODIFIED.into_response();
            }
            counts.full.fetch_add(1, Ordering::SeqCst);
            (
                [
                    (header::ETAG, "\"v1\""),
                    (header::CONTENT_TYPE, "audio/x-wav"),
                ],
                body.to_vec(),
            )
                .into_response()
        }
    };
    let plain = {
        let (counts, body) = (counts.clone(), body.clone());
        move || async move {
            counts.full.fetch_add(1, Ordering::SeqCst);
            body.to_vec()
        }
    };
    let app = Router::new()
        .route("/tone.wav", get(tagged))
        .route("/plain.wav", get(plain))
        .route("/missing.wav", get(|| async { StatusCode::NOT_FOUND }))
        .route("/page.html", get(|| async { "<html>hello</html>" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_url_is_fetched_once_then_revalidated_by_etag() {
    let counts = Arc::new(Counts::default());
    let base = serve(counts.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let prompts = Prompts::new(
        dir.path(),
        Arc::new(EspeakNg::default()),
        Clients::default(),
    );

    let clip = prompts
        .url(&format!("{base}/tone.wav"), Reach::default())
        .await
        .unwrap();
    assert!(
        (7900..=8100).contains(&clip.len()),
        "{} samples",
        clip.len()
    );
    assert!(share_at(&clip[400..7600], 700.0) > 0.95);
    let again = prompts
        .url(&format!("{base}/tone.wav"), Reach::default())
        .await
        .unwrap();
    assert_eq!(again, clip);
    assert_eq!(counts.full.load(Ordering::SeqCst), 1);
    assert_eq!(counts.not_modified.load(Ordering::SeqCst), 1);

    // A new process (empty memory) finds the body on disk and still only revalidates.
    let restarted = Prompts::new(
        dir.path(),
        Arc::new(EspeakNg::default()),
        Clients::default(),
    );
    let third = restarted
        .url(&format!("{base}/tone.wav"), Reach::default())
        .await
        .unwrap();
    assert_eq!(third, clip);
    assert_eq!(counts.full.load(Ordering::SeqCst), 1);
    assert_eq!(counts.not_modified.load(Ordering::SeqCst), 2);

    // Without an ETag or Last-Modified nothing may be cached: fetched every time.
    prompts
        .url(&format!("{base}/plain.wav"), Reach::default())
        .await
        .unwrap();
    prompts
        .url(&format!("{base}/plain.wav"), Reach::default())
        .await
        .unwrap();
    assert_eq!(counts.full.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn bad_sources_fail_with_a_reason() {
    let base = serve(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let prompts = Prompts::new(
        dir.path(),
        Arc::new(EspeakNg::default()),
        Clients::default(),
    );

    let missing = prompts
        .url(&format!("{base}/missing.wav"), Reach::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, PromptError::Fetch(m) if m.contains("404")),
        "{missing}"
    );
    let html = prompts
        .url(&format!("{base}/page.html"), Reach::default())
        .await
        .unwrap_err();
    assert!(matches!(html, PromptError::Decode(_)), "{html}");
    let scheme = prompts
        .url("ftp://127.0.0.1/x.wav", Reach::default())
        .await
        .unwrap_err();
    assert!(matches!(scheme, PromptError::BadSource(_)), "{scheme}");
    let refused = prompts
        .url("http://127.0.0.1:1/x.wav", Reach::default())
        .await
        .unwrap_err();
    assert!(matches!(refused, PromptError::Fetch(_)), "{refused}");
    let file = prompts
        .file(&dir.path().join("nope.wav"))
        .await
        .unwrap_err();
    assert!(matches!(file, PromptError::Io(_)), "{file}");
    let empty = prompts.say("   ", None, None, "AC1").await.unwrap_err();
    assert!(matches!(empty, PromptError::BadSource(_)));
    let long = prompts
        .say(&"a".repeat(5000), None, None, "AC1")
        .await
        .unwrap_err();
    assert!(matches!(long, PromptError::BadSource(_)));
}

#[tokio::test]
async fn a_file_plays_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prompt.wav");
    std::fs::write(&path, wav_16k(1200.0, 0.5)).unwrap();
    let prompts = Prompts::new(
        dir.path(),
        Arc::new(EspeakNg::default()),
        Clients::default(),
    );
    let clip = prompts.file(&path).await.unwrap();
    assert_eq!(clip.len(), 4000);
    assert!(share_at(&clip[400..3600], 1200.0) > 0.95);
}

/// Speech-like: a plausible length for the words, mostly voiced 20 ms frames with pauses
/// between them, energy varying frame to frame, and no single tone.
fn assert_speech_like(samples: &[i16], words: usize) {
    let seconds = samples.len() as f32 / RATE as f32;
    assert!(
        seconds > words as f32 * 0.2 && seconds < words as f32 * 0.8 + 1.0,
        "{seconds} s for {words} words"
    );
    let rms: Vec<f32> = samples
        .chunks(160)
        .map(|f| (f.iter().map(|&s| (s as f32).powi(2)).sum::<f32>() / f.len() as f32).sqrt())
        .collect();
    let voiced = rms.iter().filter(|&&r| r > 300.0).count() as f32 / rms.len() as f32;
    let quiet = rms.iter().filter(|&&r| r < 100.0).count();
    assert!(voiced > 0.4, "voiced share {voiced}");
    assert!(quiet > 0, "no pause anywhere");
    for f in [200.0, 440.0, 1000.0] {
        assert!(share_at(samples, f) < 0.3, "a tone at {f} Hz");
    }
}

#[tokio::test]
async fn say_renders_speech_with_mapped_voices_and_caches_it() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = Prompts::new(
        dir.path(),
        Arc::new(EspeakNg::default()),
        Clients::default(),
    );
    let text = "Thank you for calling. Please press one for sales, or two for support.";
    let spoken = prompts
        .say(text, Some("Polly.Joanna"), None, "AC1")
        .await
        .unwrap();
    assert_eq!(spoken.voice, "en-us+f3");
    assert!(spoken.fallback.is_none());
    let heard = spoken.whole().await.unwrap();
    assert_speech_like(&heard, 13);

    let man = prompts
        .say(text, Some("man"), Some("en-GB"), "AC1")
        .await
        .unwrap();
    assert_eq!(man.voice, "en-gb");
    assert_ne!(man.whole().await.unwrap(), heard);
    let german = prompts
        .say("Guten Tag", Some("Polly.Hans"), None, "AC1")
        .await
        .unwrap();
    assert_eq!(german.voice, "de");

    let unknown = prompts
        .say("hello there", Some("Polly.Nobody"), Some("xx-YY"), "AC1")
        .await
        .unwrap();
    assert_eq!(unknown.voice, "en-us+f3");
    assert!(unknown.fallback.is_some());

    // Cached on disk (once whole): another instance reads it back without rendering.
    german.whole().await.unwrap();
    unknown.whole().await.unwrap();
    let speech_files = std::fs::read_dir(dir.path().join("speech"))
        .unwrap()
        .count();
    assert_eq!(speech_files, 4);
    let restarted = Prompts::new(
        dir.path(),
        Arc::new(EspeakNg::default()),
        Clients::default(),
    );
    let again = restarted
        .say(text, Some("Polly.Joanna"), None, "AC1")
        .await
        .unwrap();
    assert!(
        matches!(again.speech, Speech::Rendered(_)),
        "read back whole"
    );
    assert_eq!(again.whole().await.unwrap(), heard);
}

/// Bytes in the files under `dir`, one level down.
fn bytes_under(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flatten()
        .flatten()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn the_disk_cache_stays_under_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    // About 20 KB per rendered phrase; 60 KB holds three of them.
    let prompts = Prompts::new(
        dir.path(),
        Arc::new(EspeakNg::default()),
        Clients::default(),
    )
    .with_disk_limit(60_000);
    let mut written = 0u64;
    for n in 0..12 {
        let spoken = prompts
            .say(&format!("Your number is {n}."), None, None, "AC1")
            .await
            .unwrap();
        written += spoken.whole().await.unwrap().len() as u64 * 2;
    }
    assert!(written > 150_000, "{written} bytes rendered");
    // The trim runs off the async threads; it has finished once the cache is under the bound.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while bytes_under(dir.path()) > 60_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} bytes held",
            bytes_under(dir.path())
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Some entries are kept, and a fresh process over the trimmed cache still speaks.
    let restarted = Prompts::new(
        dir.path(),
        Arc::new(EspeakNg::default()),
        Clients::default(),
    );
    let files = std::fs::read_dir(dir.path().join("speech"))
        .unwrap()
        .count();
    assert!((1..=3).contains(&files), "{files} files kept");
    let again = restarted
        .say("Your number is 11.", None, None, "AC1")
        .await
        .unwrap();
    assert!(!again.whole().await.unwrap().is_empty());
}

/// An engine whose pieces are the text's `|`-separated parts, each rendered (as 1,000 samples
/// of its length in characters) only when the test lets one more piece through; it notes the
/// order pieces were rendered in.
#[derive(Default)]
struct GatedTts {
    let_through: std::sync::Mutex<usize>,
    moved: std::sync::Condvar,
    rendered: std::sync::Mutex<Vec<String>>,
}

impl GatedTts {
    fn let_one_through(&self) {
        *self.let_through.lock().unwrap() += 1;
        self.moved.notify_all();
    }

    fn rendered(&self) -> Vec<String> {
        self.rendered.lock().unwrap().clone()
    }

    /// Waits until `n` pieces have been rendered.
    async fn until_rendered(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.rendered.lock().unwrap().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                self.rendered()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

impl switchboard_control::services::prompts::tts::Tts for GatedTts {
    fn id(&self) -> &str {
        "gated"
    }
    fn pick(
        &self,
        _: &switchboard_control::services::prompts::tts::Voice,
    ) -> (String, Option<String>) {
        ("gated".into(), None)
    }
    fn pieces(&self, text: &str, _: &str) -> Result<Vec<String>, PromptError> {
        Ok(text.split('|').map(str::to_owned).collect())
    }
    fn render(&self, piece: &str, _: &str, _: f32) -> Result<Vec<i16>, PromptError> {
        let mut open = self.let_through.lock().unwrap();
        while *open == 0 {
            open = self.moved.wait(open).unwrap();
        }
        *open -= 1;
        self.rendered.lock().unwrap().push(piece.to_owned());
        Ok(vec![1000; piece.len()])
    }
    fn check(&self) -> Result<String, String> {
        Ok("gated".into())
    }
}

/// A long text is playable after its first piece, while the rest renders; a text asked for
/// again while rendering is rendered once; another account's short text waits one piece, not
/// behind the long ones; whole texts are cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_plays_from_its_first_piece_and_accounts_take_turns_at_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let tts = Arc::new(GatedTts::default());
    let prompts = Arc::new(Prompts::new(dir.path(), tts.clone(), Clients::default()));
    let long = |n: usize| {
        (0..6)
            .map(|i| format!("long{n}-{i}"))
            .collect::<Vec<_>>()
            .join("|")
    };

    tts.let_one_through();
    let first = prompts.say(&long(1), None, None, "AC-busy").await.unwrap();
    let Speech::Rendering(r) = &first.speech else {
        panic!("a new text renders")
    };
    assert_eq!(r.clip.samples(), 7, "one piece rendered");
    assert!(!r.clip.is_finished());
    assert_eq!(first.most_samples, long(1).chars().count() * 1200);

    // The same text again shares the rendering; two more long texts of the same account.
    let again = prompts.say(&long(1), None, None, "AC-busy").await;
    let mut busy = Vec::new();
    for n in [2, 3] {
        let p = prompts.clone();
        busy.push(tokio::spawn(async move {
            p.say(&long(n), None, None, "AC-busy").await.unwrap()
        }));
    }
    // The busy account's three renderings hold the engine and queue two pieces; then a quiet
    // account asks for a short text.
    let queued = |n: usize| {
        let prompts = prompts.clone();
        async move {
            while prompts.speech_waiting() < n {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), queued(2))
        .await
        .unwrap();
    let quiet = {
        let p = prompts.clone();
        tokio::spawn(async move { p.say("short", None, None, "AC-quiet").await.unwrap() })
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), queued(3))
        .await
        .unwrap();
    for _ in 0..3 {
        tts.let_one_through();
    }
    tts.until_rendered(4).await;
    let order = tts.rendered();
    assert!(
        order[3] == "short",
        "the quiet account waited one piece per busy account at most: {order:?}"
    );
    // Everything renders in the end; each text once.
    for _ in 0..20 {
        tts.let_one_through();
    }
    let quiet = quiet.await.unwrap();
    assert_eq!(quiet.whole().await.unwrap().len(), 5);
    for b in busy {
        b.await.unwrap().whole().await.unwrap();
    }
    let whole = first.whole().await.unwrap();
    assert_eq!(whole.len(), 6 * 7);
    assert_eq!(again.unwrap().whole().await.unwrap(), whole);
    let order = tts.rendered();
    assert_eq!(order.len(), 3 * 6 + 1, "{order:?}");
    assert_eq!(order.iter().filter(|p| *p == "long1-3").count(), 1);
    // Whole, it is cached: asked again, nothing renders.
    let cached = prompts.say(&long(1), None, None, "AC-busy").await.unwrap();
    assert!(matches!(cached.speech, Speech::Rendered(_)));
    assert_eq!(tts.rendered().len(), 3 * 6 + 1);
}
