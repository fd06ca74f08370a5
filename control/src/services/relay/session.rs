//! One ConversationRelay session: the application's socket, a listener on the caller's audio,
//! and the agent's turns played into the call. Everything the session does goes through the
//! call core's commands (play, stop, digits, taps); the call's events come from its dialect.

use super::settings::Interruptible;
use super::utterance::{Clauses, Rendered};
use super::wire::{self, AppMessage};
use super::{ConversationRelays, Finished, Outcome, RelaySpec, codes};
use crate::call::{CallCommand, CallEvent, EventKind};
use crate::services::speech::{Heard, ListenSpec};
use crate::services::stream::connect::{Socket, Target};
use crate::services::transcription::Side;
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_media::{Clip, GrowingClip, Part, Prompt, TapId, TapTracks};
use switchboard_speech::{EndpointerConfig, Grammar};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::{Instrument, debug, info, info_span, warn};

/// A frame to the application that is not taken in this time ends the session: the
/// application stopped reading.
const SEND_DEADLINE: Duration = Duration::from_secs(10);
/// How long the closing handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Warnings kept for the dialect (more are counted in the log only).
const MAX_WARNINGS: usize = 10;
/// Turns waiting behind the one playing, at most; the application is told when it sends more.
const MAX_QUEUED_TURNS: usize = 8;
/// Characters of one turn, at most (a `<Say>`'s limit): its audio is kept while it plays, so
/// an application streaming text without end must not grow it without bound.
const MAX_TURN_CHARS: usize = 4096;
/// Clauses of one turn waiting for their voice, at most.
const MAX_PENDING_CLAUSES: usize = 256;
/// Partial prompts while the caller speaks, about this often (`partialPrompts`).
const PARTIAL_EVERY: Duration = Duration::from_millis(600);
/// The longest the caller may speak in one turn.
const MAX_CALLER_TURN: Duration = Duration::from_secs(60);
/// Tokens that end no clause are spoken once the application has sent nothing more for this
/// long (an application that streams its text and never says `last` is still heard).
const TOKEN_PAUSE: Duration = Duration::from_millis(800);

/// What a turn's renderer hands back.
enum Render {
    /// A clause begins (its audio follows).
    Clause {
        turn: u64,
        text: String,
    },
    /// A piece of the clause's audio (or a file's).
    Piece {
        turn: u64,
        clip: Clip,
    },
    /// Every clause of the turn was rendered.
    Done {
        turn: u64,
    },
    Failed {
        turn: u64,
        error: String,
    },
}

/// Something the agent says (an utterance of the application's tokens) or plays (a file).
struct Turn {
    id: u64,
    clip: Arc<GrowingClip>,
    rendered: Rendered,
    clauses: Clauses,
    /// The clauses go to the renderer here; dropped once the turn is complete.
    renderer: Option<mpsc::Sender<String>>,
    interruptible: Interruptible,
    preemptible: bool,
    /// Plays of it (0: until interrupted).
    loops: u32,
    /// Characters the application sent for it.
    chars: usize,
    /// Play was asked of the core.
    playing: bool,
    /// The core's playback, once started.
    playback: Option<u64>,
}

impl Turn {
    fn new(
        id: u64,
        interruptible: Interruptible,
        preemptible: bool,
        loops: u32,
        renderer: Option<mpsc::Sender<String>>,
    ) -> Self {
        Self {
            id,
            clip: GrowingClip::new(),
            rendered: Rendered::default(),
            clauses: Clauses::default(),
            renderer,
            interruptible,
            preemptible,
            loops,
            chars: 0,
            playing: false,
            playback: None,
        }
    }

    /// Whether no more of it comes from the application.
    fn complete(&self) -> bool {
        self.renderer.is_none()
    }
}

struct Session<'a> {
    relays: &'a ConversationRelays,
    spec: RelaySpec,
    socket: Socket,
    renders: mpsc::Sender<Render>,
    current: Option<Turn>,
    queued: VecDeque<Turn>,
    next_turn: u64,
    tts_language: String,
    transcription_language: String,
    /// The app switched the transcription language: the caller is heard again, by the
    /// engine of the new language, from the next turn of the loop.
    relisten: bool,
    /// The caller is speaking, and whether over an agent it did not cut.
    caller_speaking: bool,
    over_agent: bool,
    /// A barge-in waits for the caller to keep speaking this long (`interruptSensitivity`).
    barge_at: Option<tokio::time::Instant>,
    /// When the open turn's unfinished clause is spoken if no token comes before.
    flush_at: Option<tokio::time::Instant>,
    /// When the caller's last prompt went out, until the application's first token after it
    /// (`debug="debugging"`: `roundTripDelayMs`).
    prompted_at: Option<Instant>,
    /// What `debug="speaker-events"` last told of the agent and of the caller.
    agent_on: bool,
    client_on: bool,
    warnings: Vec<(u32, String)>,
}

/// Why the loop stopped.
type Exit = Outcome;

pub(super) async fn run(
    relays: &ConversationRelays,
    spec: RelaySpec,
    mut events: mpsc::Receiver<CallEvent>,
    mut stop: watch::Receiver<bool>,
) -> Finished {
    let span = info_span!("relay", call = %spec.call, session = %spec.id);
    async move {
        let target = Target {
            url: &spec.settings.url,
            headers: &spec.headers,
            user_agent: None,
            reach: spec.reach,
        };
        let connected = tokio::select! {
            c = relays.streams.dial(&target) => c,
            _ = stopped(&mut stop) => return finished(Outcome::Stopped, None, Vec::new()),
        };
        let socket = match connected {
            Ok(socket) => socket,
            Err((failure, detail)) => {
                warn!(?failure, %detail, "ConversationRelay: the application's socket cannot be reached");
                let message = format!("cannot connect to {}: {detail}", crate::infra::secret::redact_url(&spec.settings.url));
                return finished(Outcome::Failed { code: codes::CONNECT, message }, None, Vec::new());
            }
        };
        metrics::counter!("switchboard_relay_sessions_total").increment(1);
        let opened = Instant::now();
        let (renders, mut rendered) = mpsc::channel(64);
        let mut session = Session {
            relays,
            tts_language: spec.settings.tts_language.clone(),
            transcription_language: spec.settings.transcription_language.clone(),
            relisten: false,
            spec,
            socket,
            renders,
            current: None,
            queued: VecDeque::new(),
            next_turn: 0,
            caller_speaking: false,
            over_agent: false,
            barge_at: None,
            flush_at: None,
            prompted_at: None,
            agent_on: false,
            client_on: false,
            warnings: Vec::new(),
        };
        let outcome = session
            .converse(&mut events, &mut stop, &mut rendered)
            .await;
        info!(?outcome, secs = opened.elapsed().as_secs(), "ConversationRelay session ended");
        let warnings = std::mem::take(&mut session.warnings);
        session.close(&outcome).await;
        finished(outcome, Some(opened), warnings)
    }
    .instrument(span)
    .await
}

fn finished(outcome: Outcome, opened: Option<Instant>, warnings: Vec<(u32, String)>) -> Finished {
    Finished {
        outcome,
        duration: opened.map(|o| o.elapsed()).unwrap_or_default(),
        warnings,
    }
}

impl Session<'_> {
    async fn converse(
        &mut self,
        events: &mut mpsc::Receiver<CallEvent>,
        stop: &mut watch::Receiver<bool>,
        rendered: &mut mpsc::Receiver<Render>,
    ) -> Exit {
        let setup = wire::setup(&self.spec.setup, &self.spec.parameters);
        if let Err(exit) = self.send(setup).await {
            return exit;
        }
        let (mut tap, mut heard) = match self.listen().await {
            Ok(listening) => listening,
            Err(exit) => return exit,
        };
        if let Some(greeting) = self.spec.settings.welcome_greeting.clone() {
            let interruptible = self.spec.settings.welcome_interruptible;
            // Bounded as a turn is (longer greetings are refused with the settings).
            let _ = (self.text(&greeting, true, None, Some(interruptible), None)).await;
        }
        let exit = loop {
            let (barge_at, flush_at) = (self.barge_at, self.flush_at);
            let step = tokio::select! {
                frame = self.socket.next() => self.on_frame(frame).await,
                h = heard.recv() => match h {
                    Some(h) => self.on_heard(h).await,
                    // The tap ended: the call did, and its hang-up follows.
                    None => Ok(()),
                },
                event = events.recv() => match event {
                    Some(CallEvent { kind: EventKind::Hangup { .. }, .. }) | None => Err(Outcome::CallEnded),
                    Some(event) => self.on_event(event.kind).await,
                },
                r = rendered.recv() => match r {
                    Some(r) => { self.on_render(r).await; Ok(()) }
                    None => Ok(()),
                },
                _ = sleep_until(barge_at) => {
                    self.barge_at = None;
                    if self.caller_speaking {
                        self.interrupt().await
                    } else {
                        Ok(())
                    }
                }
                _ = sleep_until(flush_at) => {
                    self.flush_at = None;
                    self.flush();
                    Ok(())
                }
                _ = stopped(stop) => Err(Outcome::Stopped),
            };
            if let Err(exit) = step {
                break exit;
            }
            if std::mem::take(&mut self.relisten) {
                let _ = self.command(CallCommand::TapStop(tap)).await;
                match self.listen().await {
                    Ok(listening) => (tap, heard) = listening,
                    Err(exit) => break exit,
                }
            }
        };
        if exit != Outcome::CallEnded {
            let _ = self.command(CallCommand::TapStop(tap)).await;
            if self.current.as_ref().is_some_and(|t| t.playing) {
                let _ = self.command(CallCommand::StopPlayback).await;
            }
        }
        exit
    }

    /// A listener on the caller's audio: continuous, each turn of the caller's ended by
    /// the session's `speechTimeout` (with `auto`, also by a pause after a whole sentence).
    async fn listen(&mut self) -> Result<(TapId, mpsc::Receiver<Heard>), Exit> {
        let s = &self.spec.settings;
        // A provider the application names is served by the engine the operator maps it to.
        let (_, provider) = s.providers_for(&self.transcription_language);
        let engine = provider.and_then(|p| self.relays.speech.engine_for(&self.spec.account, p));
        let spec = ListenSpec {
            language: Some(self.transcription_language.clone()),
            engine,
            endpointer: EndpointerConfig {
                start_timeout: None,
                end_silence: s.speech_timeout,
                max_speech: MAX_CALLER_TURN,
                partial_every: s.partial_prompts.then_some(PARTIAL_EVERY),
            },
            grammar: Grammar::Free,
            hints: s.hints.clone(),
            continuous: true,
            end_on_sentence: s.auto_turn_end,
        };
        let (tap_tx, frames) = mpsc::channel(64);
        let heard = self.relays.speech.listen(frames, spec).map_err(|e| {
            warn!(error = %e, "ConversationRelay: no speech recognition");
            Outcome::Failed {
                code: codes::RECOGNITION,
                message: format!("no speech recognition on this server: {e}"),
            }
        })?;
        let tap = TapId::next();
        self.command(CallCommand::TapStart {
            tap,
            tracks: TapTracks::Inbound,
            tx: tap_tx.into(),
        })
        .await?;
        Ok((tap, heard))
    }

    async fn command(&self, command: CallCommand) -> Result<(), Exit> {
        (self.relays.control)
            .command(&self.spec.call, command)
            .await
            .map_err(|e| {
                debug!(error = %e, "a command of the session was refused: the call is gone");
                Outcome::CallEnded
            })
    }

    /// Sends a frame within the deadline.
    async fn send(&mut self, text: String) -> Result<(), Exit> {
        let sent = tokio::time::timeout(SEND_DEADLINE, self.socket.send(Message::text(text))).await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Outcome::Failed {
                code: codes::SOCKET_ENDED,
                message: format!("the application's socket broke: {e}"),
            }),
            Err(_) => Err(Outcome::Failed {
                code: codes::SOCKET_ENDED,
                message: format!("the application took no message in {SEND_DEADLINE:?}"),
            }),
        }
    }

    fn warn(&mut self, code: u32, message: String) {
        warn!(code, %message, "ConversationRelay");
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push((code, message));
        }
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), Exit> {
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                let why = wire::Invalid("binary frames are not part of the protocol".into());
                return self.refuse(why).await;
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(Outcome::Failed {
                    code: codes::SOCKET_ENDED,
                    message: "the application closed the WebSocket".into(),
                });
            }
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) => {
                return Err(Outcome::Failed {
                    code: codes::SOCKET_ENDED,
                    message: format!("the application's socket broke: {e}"),
                });
            }
        };
        match wire::read(text.as_str()) {
            Ok(message) => self.on_message(message).await,
            Err(why) => self.refuse(why).await,
        }
    }

    /// A message the protocol does not have: the application is told, as the providers tell
    /// it, and the session goes on.
    async fn refuse(&mut self, why: wire::Invalid) -> Result<(), Exit> {
        let description = why.to_string();
        self.warn(codes::INVALID_MESSAGE, description.clone());
        self.send(wire::error(&description)).await
    }

    async fn on_message(&mut self, message: AppMessage) -> Result<(), Exit> {
        match message {
            AppMessage::Text {
                token,
                last,
                lang,
                interruptible,
                preemptible,
            } => {
                if let Some(at) = self.prompted_at.take()
                    && self.spec.settings.debug.round_trip
                {
                    let ms = at.elapsed().as_millis().to_string();
                    self.send(wire::info("roundTripDelayMs", &ms)).await?;
                }
                let interruptible =
                    interruptible.map(|f| self.spec.settings.interruptible.with_flag(Some(f)));
                let said = self.text(&token, last, lang, interruptible, preemptible);
                if let Err(why) = said.await {
                    return self.refuse(why).await;
                }
            }
            AppMessage::Play {
                source,
                loops,
                interruptible,
                preemptible,
            } => {
                if !self.play(source, loops, interruptible, preemptible).await {
                    let why =
                        wire::Invalid("play: too many utterances waiting to be played".into());
                    return self.refuse(why).await;
                }
            }
            AppMessage::SendDigits { digits } => {
                self.command(CallCommand::SendDigits(digits)).await?;
            }
            AppMessage::Language { tts, transcription } => {
                if let Some(t) = transcription {
                    let (_, provider) = self.spec.settings.providers_for(&t);
                    let speech = &self.relays.speech;
                    if speech.recognises_for(&t, &self.spec.account, provider) {
                        self.relisten |= t != self.transcription_language;
                        self.transcription_language = t;
                    } else {
                        let message = format!(
                            "language: transcriptionLanguage {t:?} has no recogniser on this server"
                        );
                        self.warn(codes::INVALID_ARGUMENT, message.clone());
                        self.send(wire::error(&message)).await?;
                    }
                }
                if let Some(t) = tts {
                    self.tts_language = t;
                }
            }
            AppMessage::End { handoff } => return Err(Outcome::Ended { handoff }),
        }
        Ok(())
    }

    /// The turn new tokens join: the last one still open, or a new one (which cuts the one
    /// playing short when that one may be preempted). `None` when too many wait.
    async fn open_turn(
        &mut self,
        interruptible: Option<Interruptible>,
        preemptible: Option<bool>,
        lang: Option<String>,
    ) -> Option<&mut Turn> {
        let open = match self.queued.back() {
            Some(t) => !t.complete(),
            None => self.current.as_ref().is_some_and(|t| !t.complete()),
        };
        if !open {
            if self.queued.len() >= MAX_QUEUED_TURNS {
                return None;
            }
            let turn = self.new_turn(interruptible, preemptible, lang);
            self.enqueue(turn).await;
        }
        self.queued.back_mut().or(self.current.as_mut())
    }

    /// A turn of the application's text, with its renderer.
    fn new_turn(
        &mut self,
        interruptible: Option<Interruptible>,
        preemptible: Option<bool>,
        lang: Option<String>,
    ) -> Turn {
        self.next_turn += 1;
        let id = self.next_turn;
        let (tx, rx) = mpsc::channel(MAX_PENDING_CLAUSES);
        let lang = lang.unwrap_or_else(|| self.tts_language.clone());
        let settings = &self.spec.settings;
        let voice = settings.voice_for(&lang);
        // The voice as its provider names it (`ElevenLabs.…`), for the operator's map.
        let voice = match settings.providers_for(&lang).0 {
            Some(provider) => Some(crate::services::prompts::tts::named_by(provider, voice)),
            None => voice.map(str::to_owned),
        };
        tokio::spawn(render(
            self.relays.prompts.clone(),
            self.spec.account.clone(),
            (voice, lang),
            id,
            rx,
            self.renders.clone(),
        ));
        let s = &self.spec.settings;
        let interruptible = interruptible.unwrap_or(s.interruptible);
        Turn::new(
            id,
            interruptible,
            preemptible.unwrap_or(s.preemptible),
            1,
            Some(tx),
        )
    }

    /// A new turn takes its place behind the others, or at once when none plays or the one
    /// playing may be cut short.
    async fn enqueue(&mut self, turn: Turn) {
        let preempted = self.queued.is_empty()
            && self
                .current
                .as_ref()
                .is_some_and(|t| t.complete() && t.preemptible);
        if preempted
            && let Some(old) = self.current.take()
            && old.playing
        {
            let _ = self.command(CallCommand::StopPlayback).await;
            let heard = old.rendered.heard(old.clip.played());
            // A socket that broke here is seen at its next read.
            let _ = self.agent_done(heard).await;
        }
        if self.current.is_none() {
            self.current = Some(turn);
        } else {
            self.queued.push_back(turn);
        }
    }

    /// Tokens of the agent's utterance: each clause goes to its voice as soon as it is whole.
    /// Refused when too many turns wait, or the turn would grow past its bound.
    async fn text(
        &mut self,
        token: &str,
        last: bool,
        lang: Option<String>,
        interruptible: Option<Interruptible>,
        preemptible: Option<bool>,
    ) -> Result<(), wire::Invalid> {
        let Some(turn) = self.open_turn(interruptible, preemptible, lang).await else {
            return Err(wire::Invalid(
                "text: too many utterances waiting to be spoken".into(),
            ));
        };
        turn.chars = turn.chars.saturating_add(token.chars().count());
        if turn.chars > MAX_TURN_CHARS {
            return Err(wire::Invalid(format!(
                "text: an utterance of more than {MAX_TURN_CHARS} characters"
            )));
        }
        let mut clauses = turn.clauses.push(token);
        if last {
            clauses.extend(turn.clauses.finish());
        }
        send_clauses(turn, clauses);
        if last {
            turn.renderer = None;
        }
        let waiting = !last && turn.clauses.pending();
        self.flush_at = waiting.then(|| tokio::time::Instant::now() + TOKEN_PAUSE);
        Ok(())
    }

    /// The open turn's unfinished clause goes to its voice (no token came for a while).
    fn flush(&mut self) {
        let Some(turn) = self.queued.back_mut().or(self.current.as_mut()) else {
            return;
        };
        if turn.complete() {
            return;
        }
        let rest = turn.clauses.finish();
        send_clauses(turn, rest);
    }

    /// An audio file as a turn of its own.
    async fn play(
        &mut self,
        source: String,
        loops: u32,
        interruptible: Option<bool>,
        preemptible: Option<bool>,
    ) -> bool {
        // A turn still taking tokens ends here (what it holds is spoken): what follows is
        // another turn.
        if let Some(t) = self.queued.back_mut().or(self.current.as_mut()) {
            let rest = t.clauses.finish();
            send_clauses(t, rest);
            t.renderer = None;
        }
        self.flush_at = None;
        if self.queued.len() >= MAX_QUEUED_TURNS {
            return false;
        }
        let s = &self.spec.settings;
        let (interruptible, preemptible) = (
            s.interruptible.with_flag(interruptible),
            preemptible.unwrap_or(s.preemptible),
        );
        self.next_turn += 1;
        let id = self.next_turn;
        let turn = Turn::new(id, interruptible, preemptible, loops, None);
        let (prompts, reach, renders) = (
            self.relays.prompts.clone(),
            self.spec.reach,
            self.renders.clone(),
        );
        tokio::spawn(async move {
            let done = match prompts.url(&source, reach).await {
                Ok(clip) => {
                    let clause = Render::Clause {
                        turn: id,
                        text: String::new(),
                    };
                    let _ = renders.send(clause).await;
                    let _ = renders.send(Render::Piece { turn: id, clip }).await;
                    Render::Done { turn: id }
                }
                Err(e) => Render::Failed {
                    turn: id,
                    error: format!("play: {}: {e}", crate::infra::secret::redact_url(&source)),
                },
            };
            let _ = renders.send(done).await;
        });
        self.enqueue(turn).await;
        true
    }

    fn turn_mut(&mut self, id: u64) -> Option<&mut Turn> {
        (self.current.iter_mut().chain(self.queued.iter_mut())).find(|t| t.id == id)
    }

    async fn on_render(&mut self, r: Render) {
        match r {
            Render::Clause { turn, text } => {
                if let Some(t) = self.turn_mut(turn) {
                    t.rendered.push(text, 0);
                }
            }
            Render::Piece { turn, clip } => {
                if let Some(t) = self.turn_mut(turn) {
                    t.rendered.grow(clip.len());
                    t.clip.push(clip);
                }
            }
            Render::Done { turn } => {
                if let Some(t) = self.turn_mut(turn) {
                    t.clip.finish();
                }
            }
            Render::Failed { turn, error } => {
                self.warn(codes::INVALID_ARGUMENT, error.clone());
                let _ = self.send(wire::error(&error)).await;
                if let Some(t) = self.turn_mut(turn) {
                    t.clip.finish();
                }
            }
        }
        self.start_current().await;
    }

    /// Plays the current turn once it has audio.
    async fn start_current(&mut self) {
        let Some(t) = &mut self.current else { return };
        if t.playing {
            // A turn that ended with nothing to play is over.
            return;
        }
        if t.rendered.is_empty() {
            if t.clip.is_finished() {
                self.current = None;
                self.next();
                Box::pin(self.start_current()).await;
            }
            return;
        }
        t.playing = true;
        let play = CallCommand::Play {
            clip: Prompt::new(vec![Part::Growing(t.clip.clone(), 1)]),
            loops: t.loops,
            barge_in: false,
        };
        let _ = self.command(play).await;
    }

    fn next(&mut self) {
        self.current = self.queued.pop_front();
    }

    async fn on_event(&mut self, kind: EventKind) -> Result<(), Exit> {
        match kind {
            EventKind::PlaybackStarted { playback } => {
                if let Some(t) = &mut self.current
                    && t.playing
                    && t.playback.is_none()
                {
                    t.playback = Some(playback);
                    self.speaker("agentSpeaking", true).await?;
                }
            }
            EventKind::PlaybackEnded { playback, .. }
                if (self.current.as_ref()).is_some_and(|t| t.playback == Some(playback)) =>
            {
                if let Some(t) = &self.current {
                    let heard = t.rendered.heard(usize::MAX);
                    self.agent_done(heard).await?;
                }
                self.next();
                self.start_current().await;
            }
            EventKind::Dtmf { digit, .. } => {
                let speaking = self.agent_speaking();
                let cut = speaking.is_some_and(|i| i.by_dtmf());
                if cut {
                    self.interrupt().await?;
                }
                let reported = speaking.is_none()
                    || cut
                    || self
                        .spec
                        .settings
                        .report_input_during_agent_speech
                        .by_dtmf();
                if self.spec.settings.dtmf_detection && reported {
                    self.send(wire::dtmf(digit)).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// How the turn the caller hears now may be cut, when one plays.
    fn agent_speaking(&self) -> Option<Interruptible> {
        (self.current.as_ref())
            .filter(|t| t.playing)
            .map(|t| t.interruptible)
    }

    async fn on_heard(&mut self, heard: Heard) -> Result<(), Exit> {
        match heard {
            Heard::Started => {
                debug!(agent = ?self.agent_speaking(), "ConversationRelay: the caller speaks");
                self.speaker("clientSpeaking", true).await?;
                self.caller_speaking = true;
                self.over_agent = false;
                if let Some(i) = self.agent_speaking() {
                    if i.by_speech() {
                        let hold = self.spec.settings.sensitivity.hold();
                        if hold.is_zero() {
                            self.interrupt().await?;
                        } else {
                            self.barge_at = Some(tokio::time::Instant::now() + hold);
                        }
                    } else {
                        self.over_agent = true;
                    }
                }
            }
            Heard::Partial { text, .. } => {
                if self.spec.settings.partial_prompts && self.reported() {
                    let text = self.filtered(&text);
                    let lang = self.transcription_language.clone();
                    self.send(wire::prompt(&text, &lang, false)).await?;
                }
            }
            Heard::Final { text, confidence } => {
                self.caller_speaking = false;
                self.barge_at = None;
                self.speaker("clientSpeaking", false).await?;
                if !text.is_empty() && self.reported() {
                    let text = self.filtered(&text);
                    let lang = self.transcription_language.clone();
                    self.send(wire::prompt(&text, &lang, true)).await?;
                    self.prompted_at = Some(Instant::now());
                    self.report(Side::Inbound, text, confidence).await;
                }
            }
            Heard::NoSpeech => self.speaker("clientSpeaking", false).await?,
            Heard::Failed(why) => {
                self.speaker("clientSpeaking", false).await?;
                self.caller_speaking = false;
                warn!(%why, "ConversationRelay: an utterance of the caller was not recognised");
            }
        }
        Ok(())
    }

    /// Whether what the caller says now reaches the application: always, unless they spoke
    /// over an agent that could not be cut, and `reportInputDuringAgentSpeech` does not ask.
    fn reported(&self) -> bool {
        !self.over_agent
            || self
                .spec
                .settings
                .report_input_during_agent_speech
                .by_speech()
    }

    fn filtered(&self, text: &str) -> String {
        if self.spec.settings.profanity_filter {
            crate::services::speech::profanity::mask(text)
        } else {
            text.to_owned()
        }
    }

    /// The caller cut the agent short: its audio stops, the turns waiting are dropped, and
    /// the application hears what the caller heard of the turn.
    async fn interrupt(&mut self) -> Result<(), Exit> {
        self.barge_at = None;
        let Some(turn) = self.current.take().filter(|t| t.playing) else {
            return Ok(());
        };
        self.queued.clear();
        self.command(CallCommand::StopPlayback).await?;
        let played = turn.clip.played();
        let heard = turn.rendered.heard(played);
        info!(
            played_ms = played / 8,
            "ConversationRelay: the caller cut the agent short"
        );
        metrics::counter!("switchboard_relay_interruptions_total").increment(1);
        self.send(wire::interrupt(&heard, (played / 8) as u64))
            .await?;
        self.agent_done(heard).await
    }

    /// A turn of the agent is over, played whole or cut short: `heard` is what the caller
    /// heard of it. With `debug`, the application is told (`tokensPlayed` after the
    /// `interrupt` it matches, then `agentSpeaking` off); the transcript keeps it.
    async fn agent_done(&mut self, heard: String) -> Result<(), Exit> {
        if self.spec.settings.debug.tokens_played && !heard.is_empty() {
            self.send(wire::info("tokensPlayed", &heard)).await?;
        }
        self.speaker("agentSpeaking", false).await?;
        self.report(Side::Outbound, heard, 1.0).await;
        Ok(())
    }

    /// `debug="speaker-events"`: who starts or stops speaking, each change told once.
    async fn speaker(&mut self, who: &str, on: bool) -> Result<(), Exit> {
        let state = match who {
            "agentSpeaking" => &mut self.agent_on,
            _ => &mut self.client_on,
        };
        if *state == on {
            return Ok(());
        }
        *state = on;
        if !self.spec.settings.debug.speaker_events {
            return Ok(());
        }
        self.send(wire::info(who, if on { "on" } else { "off" }))
            .await
    }

    /// A turn of the session as the call's transcript: the caller's words as the app got
    /// them (`inbound`), the agent's as the caller heard them (`outbound`: a turn played
    /// whole, or up to where the caller cut it). The call's history keeps them and its
    /// observers (the live socket, the console) see the conversation as it goes.
    async fn report(&self, side: Side, text: String, confidence: f32) {
        if text.is_empty() {
            return;
        }
        let report = EventKind::Transcript {
            track: side.as_str(),
            text,
            confidence,
            is_final: true,
        };
        // A call that is gone ends the session by its own event; nothing to add here.
        let _ = self.command(CallCommand::Report(report)).await;
    }

    /// Closes the application's socket, as the end requires (a close frame, briefly
    /// waited for).
    async fn close(&mut self, outcome: &Outcome) {
        if matches!(
            outcome,
            Outcome::Failed {
                code: codes::SOCKET_ENDED,
                ..
            }
        ) {
            return;
        }
        let close = async {
            let _ = self.socket.close(None).await;
            while let Some(Ok(_)) = self.socket.next().await {}
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, close).await;
    }
}

/// Hands clauses to the turn's renderer (while it takes them).
fn send_clauses(turn: &Turn, clauses: impl IntoIterator<Item = String>) {
    if let Some(renderer) = &turn.renderer {
        for clause in clauses {
            if renderer.try_send(clause).is_err() {
                warn!("ConversationRelay: a turn's clauses overflowed; the rest is not spoken");
                break;
            }
        }
    }
}

/// Renders one turn's clauses: each starts rendering as soon as it comes (several at once, as
/// the engine allows), and their audio goes back to the session in order, piece by piece as it
/// is made, so that a clause plays from its first piece and the next is ready behind it.
async fn render(
    prompts: Arc<crate::services::prompts::Prompts>,
    account: String,
    (voice, language): (Option<String>, String),
    turn: u64,
    mut clauses: mpsc::Receiver<String>,
    out: mpsc::Sender<Render>,
) {
    use crate::services::prompts::{PromptError, Speech, Spoken};
    use switchboard_media::prompt::Piece;
    let mut waiting: VecDeque<(String, Result<Spoken, PromptError>)> = VecDeque::new();
    let mut open = true;
    // The clause being sent: pieces sent of it, and its rendering's progress.
    let mut front: Option<(
        usize,
        Option<watch::Receiver<crate::services::prompts::Progress>>,
    )> = None;
    loop {
        // Everything ready of the clauses in front goes out.
        while let Some((text, spoken)) = waiting.front() {
            let spoken = match spoken {
                Ok(spoken) => spoken,
                Err(e) => {
                    let error = format!("text: cannot be spoken: {e}");
                    waiting.pop_front();
                    if out.send(Render::Failed { turn, error }).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let (sent, progress) = front.get_or_insert_with(|| {
                let progress = match &spoken.speech {
                    Speech::Rendering(r) => Some(r.progress.clone()),
                    Speech::Rendered(_) => None,
                };
                (0, progress)
            });
            if *sent == 0
                && out
                    .send(Render::Clause {
                        turn,
                        text: text.clone(),
                    })
                    .await
                    .is_err()
            {
                return;
            }
            let clip = match &spoken.speech {
                Speech::Rendered(clip) => Some(clip.clone()),
                Speech::Rendering(r) => {
                    if let Some(p) = progress {
                        p.borrow_and_update();
                    }
                    match r.clip.piece(*sent) {
                        Piece::Ready(clip) => Some(clip),
                        Piece::Pending => break,
                        Piece::End => None,
                    }
                }
            };
            match clip {
                Some(clip) => {
                    *sent += 1;
                    if out.send(Render::Piece { turn, clip }).await.is_err() {
                        return;
                    }
                    if matches!(spoken.speech, Speech::Rendered(_)) {
                        waiting.pop_front();
                        front = None;
                    }
                }
                None => {
                    waiting.pop_front();
                    front = None;
                }
            }
        }
        if !open && waiting.is_empty() {
            break;
        }
        let progress = front.as_mut().and_then(|(_, p)| p.as_mut());
        tokio::select! {
            clause = clauses.recv(), if open => match clause {
                Some(text) => {
                    let spoken = prompts.say(&text, voice.as_deref(), Some(&language), &account).await;
                    waiting.push_back((text, spoken));
                }
                None => open = false,
            },
            changed = async { progress.expect("guarded").changed().await }, if progress.is_some() => {
                // A rendering that stopped ends with what it made.
                if changed.is_err() && let Some((_, p)) = &mut front {
                    *p = None;
                }
            }
            // Nothing more comes for the clause in front (its rendering is gone): the next.
            else => {
                waiting.pop_front();
                front = None;
            }
        }
    }
    let _ = out.send(Render::Done { turn }).await;
}

/// Until the session is asked to stop (or whoever could ask is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
