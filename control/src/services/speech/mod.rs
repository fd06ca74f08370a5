//! Listening to a call: the neutral service every dialect's speech input goes through
//! (Twilio's `<Gather input="speech">`, Telnyx's gather and transcription). A listener reads
//! a tap of the caller's audio, cuts it into utterances ([`Endpointer`]) and asks the
//! recognition pool for partial and final results, reporting what it [`Heard`] on a channel.
//! Recognition runs on the pool's threads; the listener never blocks the call, and a pool
//! that is busy costs a partial result (skipped) or a final one (reported as failed), never
//! a stalled call.

pub mod http;
pub mod local_whisper;
pub mod profanity;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_media::{FRAME, Frame, TapFrame};
use switchboard_speech::{
    Ask, Endpointer, EndpointerConfig, Grammar, Pool, Recognition, SpeechError, Utterance,
    grammar::apply_hints, moonshine::Model, primary_language,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

mod providers;
pub use providers::SpeechProviders;
pub use switchboard_speech::{EngineKind, ProviderEngines};

/// What a listener reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// The caller began to speak (barge-in: stop the prompt).
    Started,
    /// A result for the speech so far; `seq` counts them from 1.
    Partial { text: String, seq: u32 },
    /// The utterance's result. `text` is empty when the grammar found no answer in it.
    Final { text: String, confidence: f32 },
    /// Nobody spoke in time.
    NoSpeech,
    /// No result could be had (the pool was busy, or the engine failed).
    Failed(String),
}

/// How to listen.
#[derive(Debug, Clone, Default)]
pub struct ListenSpec {
    /// The caller's language (a BCP 47 tag); `None` is English. It chooses the engine.
    pub language: Option<String>,
    /// The engine the operator maps the application's named provider to, which then chooses
    /// it instead (see [`SpeechProviders`]).
    pub engine: Option<EngineKind>,
    pub endpointer: EndpointerConfig,
    pub grammar: Grammar,
    pub hints: Vec<String>,
    /// Go on after each final result (transcription) instead of ending with it (gather).
    pub continuous: bool,
    /// Turn-taking by sense as well as by silence (ConversationRelay's `speechTimeout="auto"`):
    /// a pause after which the speech so far reads as a whole sentence (the recogniser's
    /// text ends in `.`, `?` or `!`) ends the utterance as soon as that text is known, without
    /// waiting out the endpointer's end silence; any other pause waits it out.
    pub end_on_sentence: bool,
}

/// A tap's frames on the timeline of the audio: what arrived, and silence where nothing did,
/// so that a caller whose phone stops sending when quiet still ends an utterance (or a
/// greeting, for the machine detector). The timeline is the frames' own stamps (the sender's
/// timeline, as the media engine placed them), not when this task reads them: a task that
/// falls behind under load must not take its own lateness for silence and cut the words with
/// it.
pub(crate) struct Gaps {
    /// Tokio's clock (the process's, unless a test pauses it).
    started: tokio::time::Instant,
    /// Audio fed so far, in ms of the tap's time.
    fed_ms: u64,
    /// The most a frame was read after its stamp, by this task's clock: how far behind
    /// the reader fell (said in logs, to tell a reader's stall from audio that stopped).
    pub(crate) late_ms: u64,
    /// Frames the tap dropped so far because this reader fell behind (also for logs).
    pub(crate) dropped: u32,
    /// Whether the last frame heard was voice: the clock then waits longer before it calls
    /// the audio's absence silence (see [`STALLED_MS`]).
    voiced: bool,
}

/// The next 20 ms of a tap's timeline: a frame that came, or none.
pub(crate) enum Audio<'a> {
    Heard(&'a TapFrame),
    Missing,
}

impl Audio<'_> {
    /// What a listener hears: the frame, or silence.
    pub(crate) fn samples(&self) -> &Frame {
        match self {
            Audio::Heard(frame) => &frame.samples,
            Audio::Missing => &SILENT,
        }
    }
}

const SILENT: Frame = [0; FRAME];

/// A frame stamped this much past the audio fed so far follows a gap in the audio.
const GAP_MS: u64 = 200;
/// With no frame at all for this long (by the clock), the silence is fed without waiting for
/// the next frame's stamp (none may come: a phone quiet until it speaks again).
const QUIET_MS: u64 = 1000;
/// The same, when the last frame was voice. A phone stops sending only once it is quiet
/// (silence suppression and DTX follow a voice detector), so audio that stops in the middle
/// of speech has more likely stalled: a network or a starved sender held its packets, which
/// then come in one burst on their own timeline. Silence fed in the meantime could not be
/// taken back, and would cut a word in two (a browser stalled 1.1 s mid-word was heard as
/// "building. Partner" for "billing department"). Up to this long, the burst is heard whole;
/// the media engine keeps a burst on its sender's timeline for longer (2 s).
const STALLED_MS: u64 = 2000;

impl Gaps {
    pub(crate) fn new() -> Self {
        Self {
            started: tokio::time::Instant::now(),
            fed_ms: 0,
            late_ms: 0,
            dropped: 0,
            voiced: false,
        }
    }

    /// A frame stamped `at_ms` (the tap's time) arrived: the silent frames owed before it.
    pub(crate) fn frame(&mut self, at_ms: u32) -> usize {
        let at = u64::from(at_ms);
        let read = self.started.elapsed().as_millis() as u64;
        self.late_ms = self.late_ms.max(read.saturating_sub(at));
        let missing = if at > self.fed_ms + GAP_MS {
            ((at - self.fed_ms) / 20) as usize
        } else {
            0
        };
        self.fed_ms += (missing as u64 + 1) * 20;
        missing
    }

    /// A frame from the tap: the silence owed before it, then the frame.
    pub(crate) fn feed(&mut self, frame: &TapFrame, to: &mut impl FnMut(Audio<'_>)) {
        self.dropped = frame.dropped;
        self.voiced = switchboard_speech::voiced(&frame.samples);
        for _ in 0..self.frame(frame.at_ms) {
            to(Audio::Missing);
        }
        to(Audio::Heard(frame));
    }

    /// The clock's turn: the frames already waiting are fed first (a task that fell behind
    /// must not take audio it has not read yet for silence), then silence for audio that has
    /// not come for a long while. False once the tap has ended and nothing waits.
    pub(crate) fn on_tick(
        &mut self,
        frames: &mut mpsc::Receiver<TapFrame>,
        to: &mut impl FnMut(Audio<'_>),
    ) -> bool {
        // Bounded by the tap's channel, which the media engine fills at one frame per 20 ms.
        loop {
            match frames.try_recv() {
                Ok(frame) => self.feed(&frame, to),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        for _ in 0..self.silent_frames() {
            to(Audio::Missing);
        }
        true
    }

    /// Silent frames owed for audio that has not come by the clock for a long while.
    fn silent_frames(&mut self) -> usize {
        self.silent_frames_at(self.started.elapsed().as_millis() as u64)
    }

    fn silent_frames_at(&mut self, now: u64) -> usize {
        let wait = if self.voiced { STALLED_MS } else { QUIET_MS };
        if now <= self.fed_ms + wait {
            return 0;
        }
        // Up to the recent past: a frame now on its way still fits after.
        let missing = ((now - GAP_MS - self.fed_ms) / 20) as usize;
        self.fed_ms += missing as u64 * 20;
        missing
    }
}

/// Hints one listener takes, and their length: each final result is compared with each, so
/// an application's list is bounded (Twilio documents 500 hints of 100 characters).
const MAX_HINTS: usize = 500;
const MAX_HINT_CHARS: usize = 100;
/// How long a recording's transcription waits for a free worker in all.
pub const TRANSCRIBE_PATIENCE: Duration = Duration::from_secs(300);
/// Reports waiting for the session; more means the session is not reading, and the listener
/// stops rather than buffer.
const REPORTS: usize = 64;

/// An engine (`speech.engine`, and an HTTP one beside the local).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineChoice {
    /// Moonshine under this folder (scripts/install-speech.sh): English.
    Local(PathBuf),
    /// A transcription service over HTTP (a Whisper server: many languages, told which).
    Http(http::HttpEngineConfig),
    /// The multilingual Whisper server installed under this speech folder, run by the server
    /// itself ([`local_whisper`]); asked as `Http` is (its URL is the running server's). Not
    /// installed, it serves nothing and is not among the engines.
    LocalMultilingual {
        dir: PathBuf,
        config: http::HttpEngineConfig,
    },
}

/// The languages an engine serves, by primary subtag (`es` serves `es-MX` and `es-ES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Languages {
    /// These, lower case.
    Only(Vec<String>),
    /// Every language no other engine names.
    Rest,
}

impl Languages {
    /// `speech.http_languages`: subtags, `*` for the rest; `None` for an empty list.
    pub fn parse(list: &[String]) -> Result<Option<Self>, String> {
        if list.iter().any(|l| l.trim() == "*") {
            return Ok(Some(Languages::Rest));
        }
        let mut codes = Vec::new();
        for l in list {
            match primary_language(l) {
                Some(code) if code.len() == l.trim().len() => codes.push(code),
                _ => {
                    return Err(format!(
                        "{l:?} is not a language (a subtag such as \"es\", or \"*\")"
                    ));
                }
            }
        }
        Ok((!codes.is_empty()).then_some(Languages::Only(codes)))
    }

    /// Whether these are named languages and `code` (a primary subtag) is one of them.
    pub fn names(&self, code: &str) -> bool {
        matches!(self, Languages::Only(codes) if codes.iter().any(|c| c == code))
    }
}

/// An engine and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSetting {
    pub choice: EngineChoice,
    pub languages: Languages,
}

/// The pools' settings: the engines, the first that names a language serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechSettings {
    pub engines: Vec<EngineSetting>,
    /// Worker threads of each engine; 0 is one per core.
    pub workers: usize,
    pub queue: usize,
    pub preload: bool,
}

/// The language a call is heard in when its application names none (Twilio's and Telnyx's
/// default, `en-US`).
const DEFAULT_LANGUAGE: &str = "en";

/// One engine on its pool, or the reason it has none (until a local engine's model, fetched
/// after the start, is loaded: [`Speech::load_local`]).
struct Recogniser {
    kind: EngineKind,
    languages: Languages,
    /// A local engine's model directory.
    dir: Option<std::path::PathBuf>,
    pool: std::sync::RwLock<Result<Pool, String>>,
}

/// The recognition service: an engine's pool for each language served.
pub struct Speech {
    recognisers: Vec<Recogniser>,
    /// Why there is no recogniser at all (a server configured without).
    none: Option<String>,
    /// The providers the operator and the accounts map to engines.
    providers: Option<Arc<SpeechProviders>>,
    /// Workers, queue and preloading of a pool started later.
    pools: (usize, usize, bool),
}

impl Speech {
    /// The configured engines on their pools. What is missing is logged once, here, and
    /// said again to each application that asks for speech.
    pub fn open(settings: &SpeechSettings) -> Self {
        let workers = match settings.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (queue, preload) = (settings.queue.max(1), settings.preload);
        let recognisers = (settings.engines.iter())
            .filter(|engine| match &engine.choice {
                EngineChoice::LocalMultilingual { dir, .. } => {
                    let installed = local_whisper::LocalWhisper::installed(dir);
                    if !installed {
                        info!(dir = %dir.join("whisper").display(), "no multilingual recogniser installed (scripts/install-speech.sh installs Whisper base there): only the languages other engines name are heard");
                    }
                    installed
                }
                _ => true,
            })
            .map(|engine| {
                let pool = match &engine.choice {
                    EngineChoice::Local(dir) => Model::find(dir).and_then(|model| {
                        let pool = Pool::start(model.factory()?, workers, queue, preload);
                        info!(engine = pool.engine(), workers, dir = %dir.display(), languages = ?engine.languages, "speech recognition: local");
                        Ok(pool)
                    }),
                    EngineChoice::Http(config) => {
                        let factory = std::sync::Arc::new(http::HttpFactory(config.clone()));
                        let pool = Pool::start(factory, workers, queue, preload);
                        info!(engine = "http", url = %config.url, model = %config.model, workers, languages = ?engine.languages, "speech recognition: network");
                        Ok(pool)
                    }
                    EngineChoice::LocalMultilingual { dir, config } => {
                        let factory = std::sync::Arc::new(local_whisper::LocalWhisperFactory {
                            whisper: local_whisper::LocalWhisper::new(dir),
                            config: config.clone(),
                        });
                        // Never preloaded: its server and model start with the first
                        // utterance in one of its languages.
                        let pool = Pool::start(factory, workers, queue, false);
                        info!(engine = "whisper", dir = %dir.join("whisper").display(), workers, languages = ?engine.languages, "speech recognition: local multilingual, started on first use");
                        Ok(pool)
                    }
                };
                let pool = pool.map_err(|e| {
                    warn!(error = %e, languages = ?engine.languages, "speech recognition unavailable: speech input in these languages will be treated as no input");
                    e.to_string()
                });
                let (kind, dir) = match &engine.choice {
                    EngineChoice::Local(dir) => (EngineKind::Local, Some(dir.clone())),
                    EngineChoice::Http(_) | EngineChoice::LocalMultilingual { .. } => {
                        (EngineKind::Http, None)
                    }
                };
                Recogniser {
                    kind,
                    languages: engine.languages.clone(),
                    dir,
                    pool: std::sync::RwLock::new(pool),
                }
            })
            .collect();
        Self {
            recognisers,
            none: None,
            providers: None,
            pools: (workers, queue, preload),
        }
    }

    /// Whether a local engine has no model (yet): what a first start fetches.
    pub fn missing_local(&self) -> bool {
        (self.recognisers.iter())
            .any(|r| r.kind == EngineKind::Local && r.pool.read().expect("not poisoned").is_err())
    }

    /// Loads the local engines' models that were missing (fetched since the start): their
    /// languages are heard from the next utterance on. How many were loaded.
    pub fn load_local(&self) -> usize {
        let (workers, queue, preload) = self.pools;
        let mut loaded = 0;
        for r in &self.recognisers {
            let Some(dir) = &r.dir else { continue };
            if r.pool.read().expect("not poisoned").is_ok() {
                continue;
            }
            match Model::find(dir)
                .and_then(|m| Ok(Pool::start(m.factory()?, workers, queue, preload)))
            {
                Ok(pool) => {
                    info!(engine = pool.engine(), workers, dir = %dir.display(), languages = ?r.languages, "speech recognition: local, loaded");
                    *r.pool.write().expect("not poisoned") = Ok(pool);
                    loaded += 1;
                }
                Err(e) => {
                    warn!(error = %e, dir = %dir.display(), "the fetched speech model does not load")
                }
            }
        }
        loaded
    }

    /// Serves the providers these maps name by their engines (see [`SpeechProviders`]).
    pub fn with_providers(mut self, providers: Arc<SpeechProviders>) -> Self {
        self.providers = Some(providers);
        self
    }

    /// The engine `account`'s request naming `provider` is served by, if a map names it.
    pub fn engine_for(&self, account: &str, provider: &str) -> Option<EngineKind> {
        self.providers.as_ref()?.engine(account, provider)
    }

    /// A server whose recogniser serves English, not loaded (tests of what is read before
    /// anything is heard).
    #[cfg(test)]
    pub fn english_unloaded() -> Self {
        Self::open(&SpeechSettings {
            engines: vec![EngineSetting {
                choice: EngineChoice::Local("/nonexistent".into()),
                languages: Languages::Only(vec!["en".into()]),
            }],
            workers: 1,
            queue: 1,
            preload: false,
        })
    }

    /// No recognition at all (tests of other parts, a server configured without).
    pub fn none(why: &str) -> Self {
        Self {
            recognisers: Vec::new(),
            none: Some(why.to_owned()),
            providers: None,
            pools: (1, 1, false),
        }
    }

    /// The recogniser of `language` (a BCP 47 tag; `None` is English): the engine that
    /// names its primary subtag, else the one that serves the rest.
    /// A tag that is not a language (its primary subtag not two or three letters) has none.
    /// With `engine` (a provider the operator maps), that kind of engine instead: the
    /// operator's HTTP engine hears any language; the local one only its own.
    fn recogniser(
        &self,
        language: Option<&str>,
        engine: Option<EngineKind>,
    ) -> Option<&Recogniser> {
        let code = match language {
            None => DEFAULT_LANGUAGE.to_owned(),
            Some(tag) => primary_language(tag)?,
        };
        if let Some(kind) = engine {
            return (self.recognisers.iter()).find(|r| {
                r.kind == kind && (kind == EngineKind::Http || r.languages.names(&code))
            });
        }
        (self.recognisers.iter().find(|r| r.languages.names(&code)))
            .or_else(|| (self.recognisers.iter()).find(|r| r.languages == Languages::Rest))
    }

    /// Whether an engine here serves `language` (a BCP 47 tag): every dialect asks this one
    /// question before it listens, and gives its provider's error when not.
    pub fn recognises(&self, language: &str) -> bool {
        self.recognises_by_engine(language, None)
    }

    /// [`Self::recognises`] for `account`'s request naming `provider`: by the engine a map
    /// sends that provider to, when one does.
    pub fn recognises_for(&self, language: &str, account: &str, provider: Option<&str>) -> bool {
        let engine = provider.and_then(|p| self.engine_for(account, p));
        self.recognises_by_engine(language, engine)
    }

    /// [`Self::recognises`] by the engine `engine` names, when it names one.
    pub fn recognises_by_engine(&self, language: &str, engine: Option<EngineKind>) -> bool {
        let served =
            !language.trim().is_empty() && self.recogniser(Some(language), engine).is_some();
        if !served {
            // Which model is missing, for the operator (the application gets its provider's
            // error or warning).
            warn!(
                language,
                "no speech recogniser serves this language: speech.http_url and \
                 speech.http_languages add one (scripts/install-speech.sh installs a Whisper \
                 server that hears Spanish, French, German, Portuguese, Italian and more)"
            );
        }
        served
    }

    /// The pool that hears `language`, and how to ask it.
    fn pool_for(
        &self,
        language: Option<&str>,
        engine: Option<EngineKind>,
        hints: &[String],
    ) -> Result<(Pool, Ask), SpeechError> {
        if let Some(why) = &self.none {
            return Err(SpeechError::Unavailable(why.clone()));
        }
        let Some(recogniser) = self.recogniser(language, engine) else {
            let language = language.unwrap_or(DEFAULT_LANGUAGE);
            let engine = engine.map_or(String::new(), |e| format!(" by the {e:?} engine"));
            return Err(SpeechError::Unavailable(format!(
                "no recogniser for {language:?}{engine} on this server"
            )));
        };
        let pool = (recogniser.pool.read().expect("not poisoned").as_ref())
            .map_err(|e| SpeechError::Unavailable(e.clone()))?
            .clone();
        let prompt = (!hints.is_empty()).then(|| hints_prompt(hints).into());
        let ask = Ask {
            language: language.map(Into::into),
            prompt,
        };
        Ok((pool, ask))
    }

    /// The words of a whole recording (8 kHz samples): cut into utterances as a call's audio
    /// is, each recognised in turn, the texts joined. Not on a call's path, so a busy pool is
    /// waited for (within [`TRANSCRIBE_PATIENCE`]) rather than refused.
    pub async fn transcribe(
        &self,
        samples: &[i16],
        language: Option<&str>,
        engine: Option<EngineKind>,
    ) -> Result<Recognition, SpeechError> {
        let (pool, ask) = self.pool_for(language, engine, &[])?;
        let mut endpointer = Endpointer::new(EndpointerConfig {
            start_timeout: None,
            end_silence: Duration::from_millis(700),
            max_speech: Duration::from_secs(25),
            partial_every: None,
        });
        let mut utterances = Vec::new();
        let tail = [0i16; FRAME * 50];
        for chunk in samples.chunks(FRAME).chain(tail.chunks(FRAME)) {
            let mut frame = [0i16; FRAME];
            frame[..chunk.len()].copy_from_slice(chunk);
            if let Some(Utterance::Final(audio)) = endpointer.push(&frame) {
                utterances.push(audio);
                endpointer.restart();
            }
        }
        let (mut texts, mut confidence) = (Vec::new(), 0.0f32);
        let deadline = Instant::now() + TRANSCRIBE_PATIENCE;
        for audio in &utterances {
            let answer = loop {
                match pool.recognize_as(audio.clone(), ask.clone()) {
                    Err(SpeechError::Busy) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    other => break other?,
                }
            };
            let r = answer
                .await
                .map_err(|_| SpeechError::Failed("the speech worker stopped".into()))??;
            if !r.text.is_empty() {
                confidence += r.confidence;
                texts.push(r.text);
            }
        }
        Ok(Recognition {
            confidence: confidence / texts.len().max(1) as f32,
            text: texts.join(" "),
        })
    }

    /// Starts listening to the frames of a tap; stops when the receiver of reports is
    /// dropped, the tap ends, or (not `continuous`) after the final result.
    pub fn listen(
        &self,
        frames: mpsc::Receiver<TapFrame>,
        spec: ListenSpec,
    ) -> Result<mpsc::Receiver<Heard>, SpeechError> {
        let mut spec = spec;
        spec.hints.retain(|h| h.chars().count() <= MAX_HINT_CHARS);
        spec.hints.truncate(MAX_HINTS);
        let (pool, ask) = self.pool_for(spec.language.as_deref(), spec.engine, &spec.hints)?;
        let heard = Hearing { pool, ask };
        let (tx, rx) = mpsc::channel(REPORTS);
        tokio::spawn(listen(heard, frames, spec, tx));
        Ok(rx)
    }
}

/// The longest prompt made of hints: Whisper reads the last 224 tokens of its prompt, and a
/// service's form field should stay small.
const MAX_PROMPT_CHARS: usize = 800;

/// Hints as a prompt for an engine that takes one: the expected phrases, comma-separated.
fn hints_prompt(hints: &[String]) -> String {
    let mut prompt = String::new();
    for hint in hints {
        if prompt.len() + hint.len() + 2 > MAX_PROMPT_CHARS {
            break;
        }
        if !prompt.is_empty() {
            prompt.push_str(", ");
        }
        prompt.push_str(hint);
    }
    prompt
}

/// A listener's pool, and what it asks of it for each utterance.
struct Hearing {
    pool: Pool,
    ask: Ask,
}

impl Hearing {
    fn recognize(&self, audio: std::sync::Arc<[f32]>) -> Result<Answer, SpeechError> {
        self.pool.recognize_as(audio, self.ask.clone())
    }
}

type Answer = oneshot::Receiver<Result<Recognition, SpeechError>>;

/// A recognition whose result the listener still owes its session.
enum Owed {
    Partial(Answer),
    Final(Answer),
}

impl Owed {
    fn answer(&mut self) -> &mut Answer {
        match self {
            Owed::Partial(a) | Owed::Final(a) => a,
        }
    }
}

/// An answer already had, queued as the ones still coming are.
fn ready(result: Result<Recognition, SpeechError>) -> Answer {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(result);
    rx
}

/// Whether a recogniser's text ends a sentence.
fn sentence_ends(text: &str) -> bool {
    text.trim_end().ends_with(['.', '?', '!'])
}

/// An utterance's result as the listener reports it: the hints applied, then the grammar
/// (whose "no answer" is an empty text).
fn final_of(r: &Recognition, spec: &ListenSpec) -> Heard {
    match spec.grammar.apply(&apply_hints(&r.text, &spec.hints)) {
        Some(text) => Heard::Final {
            text,
            confidence: r.confidence,
        },
        None => Heard::Final {
            text: String::new(),
            confidence: 0.0,
        },
    }
}

async fn listen(
    pool: Hearing,
    mut frames: mpsc::Receiver<TapFrame>,
    spec: ListenSpec,
    tx: mpsc::Sender<Heard>,
) {
    let mut endpointer = Endpointer::new(spec.endpointer);
    let mut gaps = Gaps::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut partial: Option<Answer> = None;
    // The recognition of the speech before the current pause: the final result if the pause
    // ends the utterance (so recognition runs while the pause is waited out, not after it).
    let mut paused: Option<Answer> = None;
    // That recognition once done, if it did not end the turn, and whether its text is a whole
    // sentence that ends the turn once the pause is long enough.
    let mut paused_done: Option<(Answer, bool)> = None;
    // Whether the current pause has lasted the endpointer's `LONG_PAUSE` (a whole sentence
    // heard ends the turn only then: a gap between words is often as long as its `PAUSE`).
    let mut long_pause = false;
    // Results owed, reported in this order: finals, and a partial still being recognised when
    // its utterance ended (it is the caller's words all the same, and comes before the final;
    // dropping it left a slow engine — a model still loading — with no partial at all).
    let mut finals: std::collections::VecDeque<Owed> = Default::default();
    let mut seq = 0u32;
    let mut was_speaking = false;
    let report = |heard: Heard| tx.try_send(heard).is_ok();
    loop {
        let mut cut = Vec::new();
        tokio::select! {
            frame = frames.recv() => {
                let Some(frame) = frame else { break };
                gaps.feed(&frame, &mut |a| cut.extend(endpointer.push(a.samples())));
            }
            _ = tick.tick() => {
                if !gaps.on_tick(&mut frames, &mut |a| cut.extend(endpointer.push(a.samples()))) {
                    break;
                }
            }
            answer = async { partial.as_mut().expect("guarded").await }, if partial.is_some() => {
                partial = None;
                // A partial that arrives after its utterance ended is stale.
                if endpointer.speaking() && let Ok(Ok(r)) = answer {
                    let text = apply_hints(&r.text, &spec.hints);
                    if !text.is_empty() {
                        seq += 1;
                        if !report(Heard::Partial { text, seq }) { return; }
                    }
                }
            }
            answer = async { paused.as_mut().expect("guarded").await }, if paused.is_some() => {
                let answer = answer.unwrap_or_else(|_| Err(SpeechError::Failed("the speech worker stopped".into())));
                let whole = answer.as_ref().is_ok_and(|r| sentence_ends(&r.text));
                paused = None;
                let ends = spec.end_on_sentence && whole && endpointer.speaking();
                if ends && long_pause {
                    // The turn ends here: its result is this one, in its place behind the
                    // results still owed.
                    finals.extend(partial.take().map(Owed::Partial));
                    finals.push_back(Owed::Final(ready(answer)));
                    endpointer.restart();
                    was_speaking = false;
                    long_pause = false;
                } else {
                    paused_done = Some((ready(answer), ends));
                }
            }
            answer = async { finals.front_mut().expect("guarded").answer().await }, if !finals.is_empty() => {
                if let Some(Owed::Partial(_)) = finals.pop_front() {
                    if let Ok(Ok(r)) = answer {
                        let text = apply_hints(&r.text, &spec.hints);
                        if !text.is_empty() {
                            seq += 1;
                            if !report(Heard::Partial { text, seq }) { return; }
                        }
                    }
                    continue;
                }
                let heard = match answer {
                    Ok(Ok(r)) => final_of(&r, &spec),
                    Ok(Err(e)) => Heard::Failed(e.to_string()),
                    Err(_) => Heard::Failed("the speech worker stopped".into()),
                };
                if !report(heard) || !spec.continuous { return; }
            }
        }
        if endpointer.speaking() && !was_speaking && !report(Heard::Started) {
            return;
        }
        was_speaking = endpointer.speaking();
        for utterance in cut {
            match utterance {
                Utterance::Partial(audio) => {
                    // One partial at a time: a busy engine skips some rather than fall behind.
                    if partial.is_none() {
                        partial = pool.recognize(audio).ok();
                    }
                }
                // A guess at the final result, dropped if the caller goes on: at the early
                // pause only if a worker is free (it delays nothing then), at the pause if
                // none was made and nobody waits for the pool (under load it would delay
                // them).
                Utterance::EarlyPause(audio) if pool.pool.idle() => {
                    paused = pool.recognize(audio).ok();
                }
                Utterance::Pause(audio) => {
                    if paused.is_none() && paused_done.is_none() && !pool.pool.backlogged() {
                        paused = pool.recognize(audio).ok();
                    }
                }
                Utterance::LongPause => {
                    long_pause = true;
                    if endpointer.speaking()
                        && let Some((done, _)) = paused_done.take_if(|(_, whole)| *whole)
                    {
                        // The guess was a whole sentence and the pause has lasted: the turn
                        // ends here, as above.
                        finals.extend(partial.take().map(Owed::Partial));
                        finals.push_back(Owed::Final(done));
                        endpointer.restart();
                        was_speaking = false;
                        long_pause = false;
                    }
                }
                Utterance::EarlyPause(_) => {}
                Utterance::Resumed => {
                    (paused, paused_done, long_pause) = (None, None, false);
                }
                Utterance::Final(audio) if paused.is_some() || paused_done.is_some() => {
                    // The pause's speech is this utterance's: its recognition is the final one.
                    long_pause = false;
                    finals.extend(partial.take().map(Owed::Partial));
                    let done = paused_done.take().map(|(answer, _)| answer);
                    finals.extend(paused.take().or(done).map(Owed::Final));
                    if spec.continuous {
                        endpointer.restart();
                        was_speaking = false;
                    }
                    tracing::debug!(ms = audio.len() / 16, "utterance, recognised in its pause");
                }
                Utterance::Final(audio) => {
                    long_pause = false;
                    finals.extend(partial.take().map(Owed::Partial));
                    // How the audio was cut, and how late its reader ran: a word split in two
                    // shows here as two short utterances.
                    tracing::debug!(
                        ms = audio.len() / 16,
                        late_ms = gaps.late_ms,
                        dropped = gaps.dropped,
                        "utterance"
                    );
                    match pool.recognize(audio) {
                        Ok(answer) => finals.push_back(Owed::Final(answer)),
                        Err(e) => {
                            if !report(Heard::Failed(e.to_string())) || !spec.continuous {
                                return;
                            }
                        }
                    }
                    if spec.continuous {
                        endpointer.restart();
                        was_speaking = false;
                    }
                }
                Utterance::NoSpeech => {
                    report(Heard::NoSpeech);
                    return;
                }
            }
        }
    }
    // The tap ended (the call did, or the session stopped it): results still owed are given.
    while let Some(owed) = finals.pop_front() {
        let Owed::Final(answer) = owed else { continue };
        if let Ok(Ok(r)) = answer.await
            && let heard @ Heard::Final { .. } = final_of(&r, &spec)
            && !matches!(&heard, Heard::Final { text, .. } if text.is_empty())
            && !report(heard)
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_sentence_ends_at_its_full_stop_question_or_exclamation_mark() {
        for whole in ["What time is it?", "Yes.", "Stop! ", "I need help."] {
            assert!(sentence_ends(whole), "{whole}");
        }
        for open in ["I want to", "Well,", "", "the number is 5"] {
            assert!(!sentence_ends(open), "{open}");
        }
    }

    /// English is the local engine's; a language an HTTP engine names is its; the rest go
    /// to the engine that serves the rest, or to none.
    #[test]
    fn a_language_is_heard_by_the_engine_that_serves_it() {
        let engines = |http: Option<Languages>| Speech {
            recognisers: std::iter::once(Recogniser {
                kind: EngineKind::Local,
                languages: Languages::Only(vec!["en".into()]),
                dir: None,
                pool: std::sync::RwLock::new(Err("local".into())),
            })
            .chain(http.map(|languages| Recogniser {
                kind: EngineKind::Http,
                languages,
                dir: None,
                pool: std::sync::RwLock::new(Err("http".into())),
            }))
            .collect(),
            none: None,
            providers: None,
            pools: (1, 1, false),
        };
        let which = |s: &Speech, l: Option<&str>| match s.pool_for(l, None, &[]) {
            Err(SpeechError::Unavailable(why)) => why,
            other => panic!("{:?}", other.map(|(_, ask)| ask)),
        };
        let local = engines(None);
        for yes in ["en", "en-US", "EN-gb", "en_AU"] {
            assert!(local.recognises(yes), "{yes}");
        }
        for no in ["es-MX", "fr", "eng", "english", "", "e1-US", "x-klingon"] {
            assert!(!local.recognises(no), "{no}");
        }
        assert_eq!(which(&local, None), "local");
        assert!(which(&local, Some("es-MX")).contains("no recogniser for \"es-MX\""));
        let spanish = engines(Some(Languages::Only(vec!["es".into(), "fr".into()])));
        assert!(spanish.recognises("es-MX") && spanish.recognises("fr-CA"));
        assert!(!spanish.recognises("de-DE"));
        assert_eq!(which(&spanish, Some("es-ES")), "http");
        assert_eq!(which(&spanish, Some("en-GB")), "local");
        let rest = engines(Some(Languages::Rest));
        assert!(rest.recognises("de-DE") && rest.recognises("pt-BR"));
        // What is not a language tag is no engine's, not the rest's.
        assert!(!rest.recognises("english-please") && !rest.recognises("12-34"));
        assert_eq!(
            which(&rest, Some("en-US")),
            "local",
            "English stays on its model"
        );
        assert_eq!(which(&rest, Some("it-IT")), "http");
        // A provider the operator maps to an engine is that engine's: the HTTP one hears any
        // language, even one it was given none of; the local one only its own.
        let mapped = engines(Some(Languages::Only(Vec::new())));
        let by = |l: &str, engine| match mapped.pool_for(Some(l), Some(engine), &[]) {
            Err(SpeechError::Unavailable(why)) => why,
            other => panic!("{:?}", other.map(|(_, ask)| ask)),
        };
        assert_eq!(by("en-US", EngineKind::Http), "http");
        assert_eq!(by("de-DE", EngineKind::Http), "http");
        assert_eq!(by("en-US", EngineKind::Local), "local");
        assert!(by("de-DE", EngineKind::Local).contains("by the Local engine"));
        assert_eq!(
            which(&mapped, Some("en-US")),
            "local",
            "unmapped: by language"
        );
        // What a dialect asks before it listens: a language the mapped engine hears is
        // served for that provider alone.
        assert!(!mapped.recognises("es-MX"));
        assert!(mapped.recognises_by_engine("es-MX", Some(EngineKind::Http)));
        assert!(!mapped.recognises_by_engine("es-MX", Some(EngineKind::Local)));
    }

    #[test]
    fn http_languages_are_subtags_or_the_rest() {
        let list =
            |l: &[&str]| Languages::parse(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(list(&[]), Ok(None));
        assert_eq!(
            list(&["es", "FR"]),
            Ok(Some(Languages::Only(vec!["es".into(), "fr".into()])))
        );
        assert_eq!(list(&["es", "*"]), Ok(Some(Languages::Rest)));
        assert!(list(&["es-MX"]).is_err() && list(&["spanish"]).is_err());
    }

    #[test]
    fn hints_make_a_bounded_prompt() {
        assert_eq!(
            hints_prompt(&["ventas".into(), "soporte".into()]),
            "ventas, soporte"
        );
        let many: Vec<String> = (0..500).map(|i| format!("phrase number {i}")).collect();
        assert!(hints_prompt(&many).len() <= MAX_PROMPT_CHARS);
    }

    fn tap_frame(at_ms: u32) -> TapFrame {
        TapFrame {
            track: switchboard_media::record::Track::Inbound,
            at_ms,
            dropped: 0,
            samples: [1000; FRAME],
        }
    }

    fn quiet_frame(at_ms: u32) -> TapFrame {
        TapFrame {
            samples: [10; FRAME],
            ..tap_frame(at_ms)
        }
    }

    /// Each 20 ms of the timeline fed to a listener, as 'h' (heard) or '.' (missing).
    fn timeline(fed: &mut String) -> impl FnMut(Audio<'_>) + '_ {
        |a| {
            fed.push(match a {
                Audio::Heard(_) => 'h',
                Audio::Missing => '.',
            })
        }
    }

    /// 200 ms of voice, each frame read as it came: a listener's timeline and what it heard.
    async fn voice_on_time() -> (Gaps, String) {
        let mut gaps = Gaps::new();
        let mut fed = String::new();
        for at in (0..200).step_by(20) {
            gaps.feed(&tap_frame(at), &mut timeline(&mut fed));
            tokio::time::advance(Duration::from_millis(20)).await;
        }
        (gaps, fed)
    }

    /// The next 1.5 s of voice after [`voice_on_time`], all waiting for the reader at once.
    fn held_until_now(tx: &mpsc::Sender<TapFrame>) {
        for at in (200..1700).step_by(20) {
            tx.try_send(tap_frame(at)).unwrap();
        }
    }

    /// A reader that fell behind (its task not run for 1.5 s while the tap's frames waited)
    /// hears the waiting frames when the clock's turn comes, not silence for their time; a
    /// tap that really went quiet is silence by the clock.
    #[tokio::test(start_paused = true)]
    async fn frames_that_waited_for_a_late_reader_are_heard_not_taken_for_silence() {
        let (tx, mut rx) = mpsc::channel(256);
        let (mut gaps, mut fed) = voice_on_time().await;
        held_until_now(&tx);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(gaps.on_tick(&mut rx, &mut timeline(&mut fed)));
        assert_eq!(fed, "h".repeat(85), "every frame heard, none missing");
        assert!(gaps.late_ms >= 1500, "the reader knows it was late");
        // Nothing comes for 1.5 s after a quiet frame: silence up to the recent past.
        tx.try_send(quiet_frame(1700)).unwrap();
        tokio::time::advance(Duration::from_millis(1500)).await;
        fed.clear();
        assert!(gaps.on_tick(&mut rx, &mut timeline(&mut fed)));
        assert_eq!(fed, "h".to_owned() + &".".repeat(64));
        // The tap ended.
        drop(tx);
        assert!(!gaps.on_tick(&mut rx, &mut timeline(&mut fed)));
    }

    /// Audio that stops in the middle of speech is waited for longer than audio that stops
    /// when quiet: a stalled sender's burst, on its own timeline, is heard whole, where
    /// silence fed meanwhile would have cut its word in two.
    #[tokio::test(start_paused = true)]
    async fn audio_that_stops_mid_word_is_waited_for_before_it_is_called_silence() {
        let (tx, mut rx) = mpsc::channel(256);
        let (mut gaps, mut fed) = voice_on_time().await;
        // The sender stalls for 1.5 s mid-word: the clock feeds no silence meanwhile.
        for _ in 0..15 {
            tokio::time::advance(Duration::from_millis(100)).await;
            assert!(gaps.on_tick(&mut rx, &mut timeline(&mut fed)));
        }
        // Then its held packets come in one burst, stamped on its timeline: one stretch.
        held_until_now(&tx);
        assert!(gaps.on_tick(&mut rx, &mut timeline(&mut fed)));
        assert_eq!(fed, "h".repeat(85), "the word is whole");
        // A sender that stopped mid-word for good is silence after 2 s.
        fed.clear();
        tokio::time::advance(Duration::from_millis(2100)).await;
        assert!(gaps.on_tick(&mut rx, &mut timeline(&mut fed)));
        assert_eq!(fed.len(), ((3800 - GAP_MS - 1700) / 20) as usize);
        assert!(fed.chars().all(|c| c == '.'));
    }

    /// An engine that answers with the length of what it heard once the test lets it go.
    struct Gate(Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>);
    impl switchboard_speech::Engine for Gate {
        fn recognize(&mut self, audio: &[f32], _: &Ask) -> Result<Recognition, SpeechError> {
            let _ = self.0.lock().unwrap().recv();
            Ok(Recognition {
                text: format!("{} samples", audio.len()),
                confidence: 1.0,
            })
        }
    }
    impl switchboard_speech::EngineFactory for Gate {
        fn name(&self) -> &str {
            "gate"
        }
        fn open(&self) -> Result<Box<dyn switchboard_speech::Engine>, SpeechError> {
            Ok(Box::new(Gate(self.0.clone())))
        }
    }

    /// An engine slower than the caller (a model still loading, a busy machine) still gives
    /// the partial result asked for while the caller spoke: it is reported, before the final
    /// one, when it comes after the utterance ended — not dropped, which left a three-second
    /// phrase with no partial at all.
    #[tokio::test]
    async fn a_partial_still_recognising_when_the_utterance_ends_comes_before_the_final() {
        let (go, gate) = std::sync::mpsc::channel();
        let pool = Pool::start(
            Arc::new(Gate(Arc::new(std::sync::Mutex::new(gate)))),
            1,
            4,
            false,
        );
        let (frames, rx) = mpsc::channel(256);
        let (tx, mut heard) = mpsc::channel(REPORTS);
        let spec = ListenSpec {
            endpointer: EndpointerConfig {
                start_timeout: None,
                end_silence: Duration::from_millis(300),
                max_speech: Duration::from_secs(10),
                partial_every: Some(Duration::from_millis(800)),
            },
            ..Default::default()
        };
        let hearing = Hearing {
            pool,
            ask: Ask::default(),
        };
        let listener = tokio::spawn(listen(hearing, rx, spec, tx));
        // 1.2 s of voice (a partial is asked for at 0.8 s and held by the gate), then 1 s of
        // quiet: the utterance ends while that partial is still being recognised.
        for at in (0..1200).step_by(20) {
            frames.try_send(tap_frame(at)).unwrap();
        }
        for at in (1200..2200).step_by(20) {
            frames.try_send(quiet_frame(at)).unwrap();
        }
        // On this one-thread runtime the listener yields only between frames: once every
        // frame is taken from the channel, it has cut the utterance.
        while frames.capacity() < frames.max_capacity() {
            tokio::task::yield_now().await;
        }
        assert_eq!(heard.try_recv().ok(), Some(Heard::Started));
        assert!(heard.try_recv().is_err(), "nothing recognised yet");
        go.send(()).unwrap();
        go.send(()).unwrap();
        let wait = Duration::from_secs(10);
        let partial = tokio::time::timeout(wait, heard.recv())
            .await
            .expect("a report");
        assert!(
            matches!(&partial, Some(Heard::Partial { seq: 1, text }) if text.ends_with("samples")),
            "{partial:?}"
        );
        let last = tokio::time::timeout(wait, heard.recv())
            .await
            .expect("a report");
        assert!(matches!(last, Some(Heard::Final { .. })), "{last:?}");
        drop(frames);
        listener.await.unwrap();
    }

    /// An engine that hears a whole sentence in anything, at once.
    struct Sentence;
    impl switchboard_speech::Engine for Sentence {
        fn recognize(&mut self, _: &[f32], _: &Ask) -> Result<Recognition, SpeechError> {
            Ok(Recognition {
                text: "Hello there.".into(),
                confidence: 1.0,
            })
        }
    }
    impl switchboard_speech::EngineFactory for Sentence {
        fn name(&self) -> &str {
            "sentence"
        }
        fn open(&self) -> Result<Box<dyn switchboard_speech::Engine>, SpeechError> {
            Ok(Box::new(Sentence))
        }
    }

    /// With turn-taking by sense, an idle pool guesses at a 60 ms gap already, but a whole
    /// sentence heard there ends the turn only once the pause has lasted the endpointer's
    /// `LONG_PAUSE` (200 ms): a gap between two words is often longer than 100 ms, and the
    /// caller goes on.
    #[tokio::test]
    async fn an_early_guess_ends_the_turn_only_when_the_pause_lasts() {
        let pool = Pool::start(Arc::new(Sentence), 1, 4, false);
        let (frames, rx) = mpsc::channel(256);
        let (tx, mut heard) = mpsc::channel(REPORTS);
        let spec = ListenSpec {
            endpointer: EndpointerConfig {
                start_timeout: None,
                // Not reached while the test runs: a final result is the sentence's.
                end_silence: Duration::from_secs(30),
                max_speech: Duration::from_secs(60),
                partial_every: None,
            },
            end_on_sentence: true,
            ..Default::default()
        };
        let hearing = Hearing {
            pool: pool.clone(),
            ask: Ask::default(),
        };
        let listener = tokio::spawn(listen(hearing, rx, spec, tx));
        let settled = async |frames: &mpsc::Sender<TapFrame>, guesses: u64| {
            while frames.capacity() < frames.max_capacity()
                || pool.stats().done.load(std::sync::atomic::Ordering::Relaxed) < guesses
                || !pool.idle()
            {
                tokio::task::yield_now().await;
            }
            // The guess's answer, sent, is the listener's to take on its next turn.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        };
        // A second of voice, then a gap of 140 ms between two words (Piper's voice leaves
        // 130 ms inside a phrase): past the pause, short of the long pause.
        for at in (0..1000).step_by(20) {
            frames.try_send(tap_frame(at)).unwrap();
        }
        for at in (1000..1140).step_by(20) {
            frames.try_send(quiet_frame(at)).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), settled(&frames, 1))
            .await
            .expect("a guess at the early pause of the 140 ms gap, the pool being idle");
        assert_eq!(heard.try_recv().ok(), Some(Heard::Started));
        assert!(
            heard.try_recv().is_err(),
            "the guess (a whole sentence) ended the turn at a 140 ms gap"
        );
        // The caller goes on, then pauses for 220 ms: the turn ends on the sentence.
        for at in (1140..1300).step_by(20) {
            frames.try_send(tap_frame(at)).unwrap();
        }
        for at in (1300..1520).step_by(20) {
            frames.try_send(quiet_frame(at)).unwrap();
        }
        let last = tokio::time::timeout(Duration::from_secs(10), heard.recv())
            .await
            .expect("the turn ended on the sentence");
        assert!(
            matches!(&last, Some(Heard::Final { text, .. }) if text == "Hello there."),
            "{last:?}"
        );
        assert_eq!(
            pool.stats().done.load(std::sync::atomic::Ordering::Relaxed),
            2,
            "a guess at each early pause"
        );
        drop(frames);
        listener.await.unwrap();
    }

    #[test]
    fn the_frames_stamps_place_them_and_only_a_real_gap_is_silence() {
        let mut g = Gaps::new();
        // Frames every 20 ms, some in a burst (stamped together): no silence.
        for at in [0, 20, 40, 100, 100, 100, 120] {
            assert_eq!(g.frame(at), 0);
        }
        // A task that reads late is not a gap: the clock says little while frames flow.
        assert_eq!(g.silent_frames_at(900), 0);
        // The phone stopped sending for a second: the next frame comes after its silence.
        assert_eq!(g.frame(1140), (1140 - 140) / 20);
        assert_eq!(g.fed_ms, 1160);
        // Nothing at all for over a second by the clock: silence up to the recent past.
        assert_eq!(g.silent_frames_at(2000), 0);
        let owed = g.silent_frames_at(2400);
        assert_eq!(owed, ((2400 - GAP_MS - 1160) / 20) as usize);
        // A frame then stamped within the filled stretch adds no more silence.
        assert_eq!(g.frame(2300), 0);
    }
}
