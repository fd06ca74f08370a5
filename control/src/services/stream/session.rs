//! One media stream's task: the IO around [`wire`](super::wire), [`audio`](super::audio)
//! and [`pacer`](super::pacer). Once connected ([`connect`]) it moves bytes and time: the
//! call's frames from its tap to the socket, the application's audio into the call's
//! injection queue (a [`MediaLink`]), the call's digits and marks back to the application,
//! pings on a timer; and it ends the stream cleanly
//! (`stop`, a close, the tap and the injected audio released) whichever side ends it.

use super::audio::{Assembler, Encoder, Play};
use super::connect::{Socket, Target, connect};
use super::pacer::{Pacer, Slot};
use super::wire::{Incoming, Messages, Refusal, TelnyxError};
use super::{Failure, MediaStreams, Playback, PlaybackTo, StopCause, StreamEvent, StreamSpec};
use crate::call::{CallCommand, CallControl, CallEvent, EventKind, MediaLink};
use crate::infra::clock::now_ms;
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use switchboard_media::record::Track;
use switchboard_media::{Frame, TapFrame, TapId};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{Instrument, debug, info, info_span, warn};

/// Frames of the call's audio waiting for the socket, per stream: a second of both tracks.
/// Beyond it frames are dropped (and counted) rather than held.
const TAP_QUEUE: usize = 100;
/// Marks waiting for their audio to play, at most; more are refused.
const MAX_PENDING_MARKS: usize = 4096;
/// Telnyx's `mp3` mode takes one file a second.
const MP3_INTERVAL: Duration = Duration::from_secs(1);
/// How long the closing handshake may take once `stop` is sent.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

pub(super) async fn run(
    streams: &MediaStreams,
    spec: StreamSpec,
    stop: watch::Receiver<bool>,
    events: mpsc::Sender<StreamEvent>,
) {
    let span = info_span!("stream", call = %spec.call, stream = %spec.id);
    async {
        metrics::counter!("switchboard_streams_total").increment(1);
        let mut stop = stop;
        let target = Target {
            url: &spec.url,
            headers: &spec.headers,
            user_agent: spec.wire.user_agent(),
            reach: spec.reach,
        };
        let connected = tokio::select! {
            c = connect(streams, &target) => c,
            _ = stopped(&mut stop) => {
                info!("stopped while connecting");
                streams.forget(&spec.call, &spec.id);
                return;
            }
        };
        let socket = match connected {
            Ok(socket) => socket,
            Err((failure, detail)) => {
                warn!(?failure, %detail, url = %spec.url, "stream failed to connect");
                streams.forget(&spec.call, &spec.id);
                report(streams, &spec, failed(&spec, failure, &detail, false)).await;
                problem(&events, failure, detail).await;
                return;
            }
        };
        metrics::gauge!("switchboard_streams_active").increment(1.0);
        let session = Session::new(streams, spec, events);
        session.run(socket, stop).await;
        metrics::gauge!("switchboard_streams_active").decrement(1.0);
    }
    .instrument(span)
    .await
}

/// Resolves once the stream is asked to stop (its guard is not held across awaits).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Adds what happened to the stream to its call's events, where the dialects' status
/// callbacks are made from (durably: they are stored with the call).
async fn report(streams: &MediaStreams, spec: &StreamSpec, kind: EventKind) {
    if let Err(e) = streams
        .control
        .command(&spec.call, CallCommand::Report(kind))
        .await
    {
        // The call has ended: its end closes the stream's reports.
        debug!(error = %e, "stream event not added to its call");
    }
}

fn failed(spec: &StreamSpec, failure: Failure, detail: &str, started: bool) -> EventKind {
    EventKind::StreamFailed {
        stream: spec.id.clone(),
        failure: failure.name(),
        detail: detail.to_owned(),
        started,
    }
}

async fn problem(events: &mpsc::Sender<StreamEvent>, failure: Failure, detail: String) {
    metrics::counter!("switchboard_stream_errors_total", "reason" => failure.reason()).increment(1);
    let _ = events.send(StreamEvent::Problem { failure, detail }).await;
}

struct Session<'a> {
    streams: &'a MediaStreams,
    spec: StreamSpec,
    events: mpsc::Sender<StreamEvent>,
    messages: Messages,
    /// One per track (inbound, outbound): a wide-rate encoder's resampler carries state.
    encoders: [Encoder; 2],
    /// The application's raw audio on its way to the call (bidirectional streams).
    assembler: Option<Assembler>,
    /// Where that audio goes: injection queues, directly.
    targets: Targets,
    tap: TapId,
    /// Marks handed to the call's injection queue, by the number their internal name
    /// carries, in order.
    marks: VecDeque<(u64, String)>,
    next_mark: u64,
    /// Warnings already given (each is given once per stream).
    warned: Vec<Failure>,
    /// Tap frames dropped so far (as the latest frame counts them).
    dropped: u32,
    /// Each track's frames every 20 ms, silence where the tap had none.
    pacer: Pacer,
    slots: Vec<Slot>,
    last_mp3: Option<Instant>,
    sent: metrics::Counter,
    dropped_total: metrics::Counter,
    played: metrics::Counter,
}

/// Calls whose events a stream observes besides its own (those it played to), at most.
const MAX_OBSERVED: usize = 16;

/// Where the application's audio goes (see [`PlaybackTo`]): the call's own injection queue,
/// and that of the call bridged with it, followed as bridges are made and broken.
struct Targets {
    to: PlaybackTo,
    own: Option<MediaLink>,
    peer: Option<(String, MediaLink)>,
    /// Other calls whose events the stream observes (for the marks of its audio there).
    observed: Vec<String>,
}

impl Targets {
    /// Looks up the call bridged with `call` now, if the audio goes there.
    async fn follow_peer(
        &mut self,
        control: &CallControl,
        call: &str,
        events: &mpsc::Sender<CallEvent>,
    ) {
        if self.to == PlaybackTo::Own {
            return;
        }
        self.peer = control.peer_link(call).await.ok().flatten();
        if let Some((peer, _)) = &self.peer
            && !self.observed.contains(peer)
            && self.observed.len() < MAX_OBSERVED
        {
            control.subscribe(peer, events.clone());
            self.observed.push(peer.clone());
        }
    }

    /// Plays `frames` (then `mark`) to whoever hears the application; the mark goes with the
    /// first of them only, so it is reported once.
    fn inject(&self, frames: Vec<Frame>, mark: Option<String>, limit: usize) {
        let peer = self.peer.as_ref().map(|(_, link)| link);
        let (first, second) = match self.to {
            PlaybackTo::Own => (self.own.as_ref(), None),
            PlaybackTo::Peer => (peer, None),
            PlaybackTo::Both => (self.own.as_ref(), peer),
        };
        if let Some(link) = second {
            link.inject(frames.clone(), None, limit);
        }
        if let Some(link) = first {
            link.inject(frames, mark, limit);
        }
    }

    fn clear(&self) {
        for link in self.own.iter().chain(self.peer.iter().map(|(_, l)| l)) {
            link.clear();
        }
    }
}

/// How the loop ended.
enum End {
    Stopped(StopCause),
    /// A fatal failure; the socket may still take a `stop`.
    Failed(Failure, String),
}

impl<'a> Session<'a> {
    fn new(streams: &'a MediaStreams, spec: StreamSpec, events: mpsc::Sender<StreamEvent>) -> Self {
        let now = Instant::now();
        let assembler = match spec.playback {
            Playback::Audio(encoding) => Some(Assembler::new(encoding, now)),
            // A decoded MP3 arrives as 8 kHz samples.
            Playback::Mp3 => Some(Assembler::new(super::audio::Encoding::Pcmu, now)),
            Playback::None => None,
        };
        Self {
            streams,
            pacer: Pacer::new(spec.tracks, now),
            messages: Messages::new(spec.wire.clone(), spec.id.clone()),
            encoders: [Encoder::new(spec.encoding), Encoder::new(spec.encoding)],
            assembler,
            targets: Targets {
                to: spec.playback_to,
                own: None,
                peer: None,
                observed: Vec::new(),
            },
            spec,
            events,
            tap: TapId::next(),
            marks: VecDeque::new(),
            next_mark: 0,
            warned: Vec::new(),
            dropped: 0,
            slots: Vec::with_capacity(TAP_QUEUE),
            last_mp3: None,
            sent: metrics::counter!("switchboard_stream_frames_sent_total"),
            dropped_total: metrics::counter!("switchboard_stream_frames_dropped_total"),
            played: metrics::counter!("switchboard_stream_frames_played_total"),
        }
    }

    async fn run(mut self, socket: Socket, mut stop: watch::Receiver<bool>) {
        let (mut sink, mut source) = socket.split();
        let control = &self.streams.control;
        let call = self.spec.call.clone();
        let (events_tx, mut call_events) = mpsc::channel::<CallEvent>(64);
        control.subscribe(&call, events_tx.clone());
        let (tap_tx, mut frames) = mpsc::channel::<TapFrame>(TAP_QUEUE);
        let tapped = control
            .command(
                &call,
                CallCommand::TapStart {
                    tap: self.tap,
                    tracks: self.spec.tracks,
                    tx: tap_tx.into(),
                },
            )
            .await;
        // Transcripts beside the audio, when asked for and the server can recognise speech.
        let mut transcription = match (self.spec.transcripts, self.streams.speech.get()) {
            (true, Some(speech)) => {
                let spec = crate::services::transcription::TranscriptionSpec {
                    engine: None,
                    language: None,
                    tracks: self.spec.tracks,
                    interim: true,
                    hints: Vec::new(),
                };
                match crate::services::transcription::Transcription::start(
                    control, speech, &call, spec,
                )
                .await
                {
                    Ok(t) => Some(t.into_parts()),
                    Err(e) => {
                        warn!(error = %e, "stream transcripts unavailable");
                        None
                    }
                }
            }
            _ => None,
        };
        if self.assembler.is_some() {
            if self.targets.to != PlaybackTo::Peer {
                self.targets.own = control.media_link(&call).await.ok();
            }
            self.targets.follow_peer(control, &call, &events_tx).await;
        }
        let first = [
            self.messages.connected(),
            self.messages
                .start(self.spec.tracks, &self.spec.parameters, self.spec.encoding),
        ];
        let greeted = async {
            for m in first {
                sink.feed(Message::text(m)).await?;
            }
            sink.flush().await
        }
        .await;
        info!(url = %self.spec.url, tracks = ?self.spec.tracks, bidirectional = self.assembler.is_some(), "stream started");
        let started = EventKind::StreamStarted {
            stream: self.spec.id.clone(),
        };
        report(self.streams, &self.spec, started).await;
        let _ = self
            .events
            .send(StreamEvent::Started { at: now_ms() })
            .await;

        let end = if tapped.is_err() {
            End::Stopped(StopCause::CallEnded)
        } else if let Err(e) = greeted {
            End::Failed(Failure::BrokenPipe, e.to_string())
        } else {
            let mut ping = tokio::time::interval_at(
                tokio::time::Instant::now() + self.streams.config.ping_interval,
                self.streams.config.ping_interval,
            );
            // One timer, moved when the next due time changes (not a new one per wake-up).
            let timer = tokio::time::sleep_until(tokio::time::Instant::now());
            tokio::pin!(timer);
            let mut armed = None;
            loop {
                // The next time something is due: a silent slot, a partial frame's flush.
                let due = [
                    self.pacer.poll_timeout(),
                    self.assembler.as_ref().and_then(Assembler::poll_timeout),
                ]
                .into_iter()
                .flatten()
                .min()
                .map(tokio::time::Instant::from_std);
                if due != armed {
                    if let Some(at) = due {
                        timer.as_mut().reset(at);
                    }
                    armed = due;
                }
                // The call's frames first: they are what comes 50 to 100 times a second, and
                // the tap is drained each time, so the other branches still get their turn.
                let step = tokio::select! {
                    biased;
                    frame = frames.recv() => match frame {
                        Some(f) => self.send_frames(&mut sink, f, &mut frames).await,
                        // The call's media endpoint is gone, or the tap was refused.
                        None => Err(End::Stopped(StopCause::CallEnded)),
                    },
                    message = source.next() => self.on_message(&mut sink, message).await,
                    event = call_events.recv() => match event {
                        Some(e) => self.on_call_event(&mut sink, e, &events_tx).await,
                        None => Err(End::Stopped(StopCause::CallEnded)),
                    },
                    t = async { transcription.as_mut().expect("guarded").1.recv().await }, if transcription.is_some() => match t {
                        Some(t) => {
                            let m = self.messages.transcription(t.side.as_str(), &t.text, t.confidence, t.is_final);
                            sink.send(Message::text(m))
                                .await
                                .map_err(|e| End::Failed(Failure::BrokenPipe, e.to_string()))
                        }
                        None => {
                            transcription = None;
                            Ok(())
                        }
                    },
                    _ = stop.changed() => Err(End::Stopped(StopCause::Requested)),
                    _ = ping.tick() => sink
                        .send(Message::Ping(Vec::new().into()))
                        .await
                        .map_err(|e| End::Failed(Failure::BrokenPipe, e.to_string())),
                    _ = &mut timer, if armed.is_some() => {
                        armed = None;
                        let now = Instant::now();
                        let plays = self
                            .assembler
                            .as_mut()
                            .map(|a| a.handle_timeout(now))
                            .unwrap_or_default();
                        self.play(plays);
                        self.pacer.handle_timeout(now, &mut self.slots);
                        self.send_slots(&mut sink).await
                    }
                };
                if let Err(end) = step {
                    break end;
                }
            }
        };

        // Release the call's side first: its taps, and the application's audio still queued.
        let _ = control.command(&call, CallCommand::TapStop(self.tap)).await;
        if let Some((taps, _)) = &transcription {
            crate::services::transcription::stop_taps(control, &call, taps).await;
        }
        self.targets.clear();
        let cause = match end {
            End::Stopped(cause) => cause,
            End::Failed(failure, detail) => {
                warn!(?failure, %detail, "stream failed");
                report(
                    self.streams,
                    &self.spec,
                    failed(&self.spec, failure, &detail, true),
                )
                .await;
                problem(&self.events, failure, detail).await;
                StopCause::Failed
            }
        };
        // The application hears `stop` and a close unless it closed the socket itself (or it
        // is broken).
        if matches!(
            cause,
            StopCause::Requested | StopCause::CallEnded | StopCause::Failed
        ) {
            let bye = async {
                sink.send(Message::text(self.messages.stop())).await?;
                sink.send(Message::Close(Some(tungstenite::protocol::CloseFrame {
                    code: CloseCode::Normal,
                    reason: "stream stopped".into(),
                })))
                .await?;
                // Its close answers ours.
                while let Some(Ok(m)) = source.next().await {
                    if m.is_close() {
                        break;
                    }
                }
                Ok::<_, tungstenite::Error>(())
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, bye).await;
        }
        info!(?cause, dropped = self.dropped, "stream stopped");
        self.streams.forget(&self.spec.call, &self.spec.id);
        let stopped = EventKind::StreamStopped {
            stream: self.spec.id.clone(),
        };
        report(self.streams, &self.spec, stopped).await;
        let _ = self
            .events
            .send(StreamEvent::Stopped {
                at: now_ms(),
                cause,
            })
            .await;
    }

    /// Sends a frame and whatever else the tap holds (with the silence of the slots they
    /// skipped), then flushes once.
    async fn send_frames<S>(
        &mut self,
        sink: &mut S,
        first: TapFrame,
        frames: &mut mpsc::Receiver<TapFrame>,
    ) -> Result<(), End>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(frame) = next {
            if frame.dropped > self.dropped {
                self.dropped_total
                    .increment(u64::from(frame.dropped - self.dropped));
                self.dropped = frame.dropped;
                self.warn(
                    sink,
                    Failure::Congestion,
                    format!(
                        "the application did not read in time: {} frames dropped so far",
                        self.dropped
                    ),
                    None,
                )
                .await;
            }
            self.pacer.frame(&frame, Instant::now(), &mut self.slots);
            n += 1;
            next = if n < TAP_QUEUE {
                frames.try_recv().ok()
            } else {
                None
            };
        }
        // Silence due on a track the tap had nothing for goes out in the same wake-up (a
        // caller talking, nothing played to it: the outbound track rides on the inbound's
        // frames instead of a timer of its own).
        self.pacer.handle_timeout(Instant::now(), &mut self.slots);
        self.send_slots(sink).await
    }

    /// Sends the frames the pacer gave, and flushes.
    async fn send_slots<S>(&mut self, sink: &mut S) -> Result<(), End>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        if self.slots.is_empty() {
            return Ok(());
        }
        let n = self.slots.len();
        for slot in self.slots.drain(..) {
            let encoder = match slot.track {
                Track::Inbound => &mut self.encoders[0],
                Track::Outbound => &mut self.encoders[1],
            };
            let payload = encoder.encode(&slot.samples);
            let text = (self.messages).media(slot.track, slot.position, payload);
            sink.feed(Message::text(text))
                .await
                .map_err(|e| End::Failed(Failure::BrokenPipe, e.to_string()))?;
        }
        self.sent.increment(n as u64);
        sink.flush()
            .await
            .map_err(|e| End::Failed(Failure::BrokenPipe, e.to_string()))
    }

    async fn on_message<S>(
        &mut self,
        sink: &mut S,
        message: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<(), End>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        use tungstenite::Error as E;
        let message = match message {
            None | Some(Ok(Message::Close(_))) => {
                return Err(End::Stopped(StopCause::ApplicationClosed));
            }
            Some(Err(E::ConnectionClosed | E::AlreadyClosed)) => {
                return Err(End::Stopped(StopCause::ApplicationClosed));
            }
            Some(Err(E::Capacity(e))) => {
                return Err(End::Failed(
                    Failure::Protocol,
                    format!("the application sent a message over the limit: {e}"),
                ));
            }
            Some(Err(E::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )))
            | Some(Err(E::Io(_))) => {
                return Err(End::Failed(
                    Failure::BrokenPipe,
                    "the connection broke without a WebSocket close".into(),
                ));
            }
            Some(Err(e)) => return Err(End::Failed(Failure::Protocol, e.to_string())),
            Some(Ok(m)) => m,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let why = "a binary message: the protocol is JSON text".to_owned();
                self.warn(
                    sink,
                    Failure::MalformedMessage,
                    why,
                    Some(TelnyxError::MalformedFrame),
                )
                .await;
                return Ok(());
            }
            // Pings are answered by the WebSocket layer; pongs and raw frames mean nothing here.
            _ => return Ok(()),
        };
        let parsed = self
            .messages
            .parse(&text, self.spec.playback == Playback::Mp3);
        let incoming = match parsed {
            Ok(i) if self.assembler.is_none() && i != Incoming::Greeting => {
                let why = format!("{i:?} on a one-way stream")
                    .chars()
                    .take(80)
                    .collect();
                self.warn(sink, Failure::InvalidMessage, why, None).await;
                return Ok(());
            }
            Ok(i) => i,
            Err(Refusal::Malformed(why) | Refusal::Invalid(why)) => {
                let telnyx = if why.contains("payload") {
                    TelnyxError::InvalidMedia
                } else {
                    TelnyxError::MalformedFrame
                };
                self.warn(sink, Failure::InvalidMessage, why, Some(telnyx))
                    .await;
                return Ok(());
            }
        };
        let now = Instant::now();
        let plays = match incoming {
            Incoming::Greeting => return Ok(()),
            Incoming::Audio(bytes) => self.assembler_mut().audio(&bytes, now),
            Incoming::Mp3(bytes) => {
                if self.last_mp3.is_some_and(|t| now < t + MP3_INTERVAL) {
                    let why = "more than one MP3 file a second".to_owned();
                    self.warn(
                        sink,
                        Failure::InvalidMessage,
                        why,
                        Some(TelnyxError::RateLimit),
                    )
                    .await;
                    return Ok(());
                }
                self.last_mp3 = Some(now);
                let decoded = tokio::task::spawn_blocking(move || {
                    switchboard_media::decode::decode_to_8k(bytes, Some("mp3"))
                })
                .await;
                match decoded {
                    Ok(Ok(samples)) => {
                        let a = self.assembler_mut();
                        let mut plays = a.samples(samples, now);
                        // A file ends where it ends: its last partial frame goes now.
                        plays.extend(a.flush(now));
                        plays
                    }
                    _ => {
                        let why = "the payload is not an MP3 file".to_owned();
                        self.warn(
                            sink,
                            Failure::InvalidMessage,
                            why,
                            Some(TelnyxError::InvalidMedia),
                        )
                        .await;
                        return Ok(());
                    }
                }
            }
            Incoming::Mark(name) => {
                let waiting = self.marks.len() + self.assembler_mut().waiting_marks();
                if waiting >= MAX_PENDING_MARKS {
                    let why = format!("more than {MAX_PENDING_MARKS} marks waiting");
                    self.warn(sink, Failure::InvalidMessage, why, None).await;
                    return Ok(());
                }
                self.assembler_mut().mark(name, now)
            }
            Incoming::Clear => {
                let waiting = self.assembler_mut().clear(now);
                self.targets.clear();
                // Marks that had not reached the call yet follow those it held (which it
                // reports as cleared), so their echoes keep the application's order.
                waiting
                    .into_iter()
                    .map(|m| Play {
                        frames: Vec::new(),
                        mark: Some(m),
                    })
                    .collect()
            }
        };
        self.play(plays);
        Ok(())
    }

    fn assembler_mut(&mut self) -> &mut Assembler {
        self.assembler
            .as_mut()
            .expect("checked: a bidirectional stream")
    }

    /// Hands the application's audio to the call core; marks get internal names so that
    /// their reports are known for this stream's.
    fn play(&mut self, plays: Vec<Play>) {
        let limit = (self.streams.config.max_buffer.as_millis() / 20) as usize;
        for play in plays {
            self.played.increment(play.frames.len() as u64);
            let mark = play.mark.map(|name| {
                self.next_mark += 1;
                self.marks.push_back((self.next_mark, name));
                format!("{}#{}", self.spec.id, self.next_mark)
            });
            self.targets.inject(play.frames, mark, limit);
        }
    }

    async fn on_call_event<S>(
        &mut self,
        sink: &mut S,
        event: CallEvent,
        events: &mpsc::Sender<CallEvent>,
    ) -> Result<(), End>
    where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        let send_err = |e: tungstenite::Error| End::Failed(Failure::BrokenPipe, e.to_string());
        // Of a call it plays to besides its own, only the marks of its audio concern it.
        if event.call != self.spec.call && !matches!(event.kind, EventKind::Mark { .. }) {
            return Ok(());
        }
        match event.kind {
            EventKind::Hangup { .. } => return Err(End::Stopped(StopCause::CallEnded)),
            EventKind::Bridged { .. } | EventKind::Unbridged { .. } if self.assembler.is_some() => {
                let control = &self.streams.control;
                (self.targets)
                    .follow_peer(control, &self.spec.call, events)
                    .await;
            }
            EventKind::Dtmf {
                digit, duration_ms, ..
            } if self.spec.dtmf => {
                let m = self
                    .messages
                    .dtmf(digit, duration_ms, &super::iso8601(event.at));
                sink.send(Message::text(m)).await.map_err(send_err)?;
            }
            EventKind::Mark { name, .. } => {
                let ours = name
                    .strip_prefix(self.spec.id.as_str())
                    .and_then(|rest| rest.strip_prefix('#'))
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(n) = ours {
                    // Reports come in the order the marks were queued.
                    while let Some((m, app_name)) = self.marks.pop_front() {
                        if m == n {
                            let text = self.messages.mark(&app_name);
                            sink.send(Message::text(text)).await.map_err(send_err)?;
                            break;
                        }
                    }
                }
            }
            EventKind::InjectDiscarded { frames } => {
                metrics::counter!("switchboard_stream_frames_discarded_total").increment(frames);
                let why = format!(
                    "{frames} frames of the application's audio beyond the buffer of {:?} were discarded",
                    self.streams.config.max_buffer
                );
                self.warn(sink, Failure::BufferOverflow, why, None).await;
            }
            _ => {}
        }
        Ok(())
    }

    /// A warning, once per stream and kind (and Telnyx's `error` frame, when it has one).
    async fn warn<S>(
        &mut self,
        sink: &mut S,
        failure: Failure,
        detail: String,
        telnyx: Option<TelnyxError>,
    ) where
        S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        if let Some(e) = telnyx
            && let Some(frame) = self.messages.error(e, &detail)
        {
            let _ = sink.send(Message::text(frame)).await;
        }
        if self.warned.contains(&failure) {
            return;
        }
        self.warned.push(failure);
        debug!(?failure, %detail, "stream warning");
        problem(&self.events, failure, detail).await;
    }
}
