//! A call's session: fetching its documents and running their verbs one by one through the
//! call core, until the call or the document ends.

use super::twiml::{self, DialNoun, Verb};
use super::*;
use crate::call::{CallCommand, CallEvent, EventKind, Rejection};
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::webhook::client::{WebhookError, idempotency_token};
use crate::services::subscriptions::LiveSubscription;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The call a session drives (or a `<Dial>` leg it placed).
pub(super) struct Call {
    pub(super) sid: String,
    pub(super) from: String,
    pub(super) to: String,
    /// `inbound`, `outbound-api` or `outbound-dial`.
    pub(super) direction: &'static str,
    /// Parameters every request about the call carries besides Twilio's standard ones: a
    /// browser client's call's `ApplicationSid` and the custom parameters of its
    /// `device.connect({params})`.
    pub(super) extra: Vec<(String, String)>,
}

/// The next document: fetched from `url`, or inline `twiml`.
pub(super) struct Fetch {
    pub(super) url: String,
    pub(super) method: HttpMethod,
    pub(super) twiml: Option<String>,
    /// Parameters added to the standard ones (`Digits`, …).
    pub(super) extra: Vec<(String, String)>,
    /// Where to go if this document fails (a REST redirect's `FallbackUrl`), in place of the
    /// fallback before it.
    pub(super) fallback: Option<(String, HttpMethod)>,
}

impl Fetch {
    pub(super) fn url(url: String, method: HttpMethod, extra: Vec<(String, String)>) -> Self {
        Self {
            url,
            method,
            twiml: None,
            extra,
            fallback: None,
        }
    }
}

/// A notification to record: Twilio's code, whether it is a warning, and the request it
/// concerns.
pub(super) struct Notice<'a> {
    pub(super) code: u32,
    pub(super) warning: bool,
    pub(super) message: &'a str,
    pub(super) url: &'a str,
    pub(super) method: HttpMethod,
}

/// What went wrong with an application, with Twilio's error code for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("error {code}: {message}")]
pub(super) struct AppError {
    /// 11100 (bad URL), 11200/11205/11750 (fetch), 12100/12200 (document).
    pub(super) code: u32,
    pub(super) message: String,
}

impl AppError {
    /// The document asks for what cannot be done (Twilio's schema error).
    pub(super) fn unsupported(message: impl Into<String>) -> Self {
        Self {
            code: 12200,
            message: message.into(),
        }
    }
}

impl From<twiml::TwimlError> for AppError {
    fn from(e: twiml::TwimlError) -> Self {
        Self {
            code: e.code,
            message: e.message,
        }
    }
}

impl From<WebhookError> for AppError {
    fn from(e: WebhookError) -> Self {
        Self {
            code: e.code,
            message: e.to_string(),
        }
    }
}

/// How a document's execution ended.
pub(super) enum Flow {
    /// Fetch another document (Redirect, a Gather's action, an API redirect).
    Next(Fetch),
    /// Hang up: `<Hangup>`.
    HangUp,
    /// The document ran out of verbs: a call hangs up, a whisper's callee is put through.
    Finished,
    /// The call is over already.
    Ended,
    /// The application failed: apologise and hang up.
    Failed(AppError),
    /// A `<Dial><Queue>` bridged this queued call: its wait is over.
    Dequeued,
}

/// What a session's wait for its call brought: an event (`None`: the call is gone), or a
/// redirect from the API.
pub(super) enum Received {
    Event(Option<CallEvent>),
    Redirect(Fetch),
}

pub(super) struct Session {
    pub(super) apps: Arc<VoiceApps>,
    pub(super) account: Account,
    pub(super) app: VoiceApp,
    pub(super) call: Call,
    pub(super) events: mpsc::Receiver<CallEvent>,
    pub(super) redirects: mpsc::Receiver<Fetch>,
    /// When the call was answered, once it is.
    pub(super) answered_at: Option<std::time::Instant>,
    /// The call's end, once seen.
    pub(super) ended: Option<CallEvent>,
    /// Its status callbacks.
    pub(super) progress: Option<LiveSubscription>,
    /// Waiting in a queue: being bridged ends the wait.
    pub(super) queued: bool,
    /// The `<Enqueue action>` its end requests if it comes first (queue_result).
    pub(super) queue_result: Option<(LiveSubscription, queue_result::Context)>,
    /// The `<Conference>` this call joined last, for its status callbacks.
    pub(super) conference: Option<conference_events::Participation>,
    /// The answering-machine detector's verdict, once given.
    pub(super) answered_by: amd::Answered,
    /// Whether the status callbacks' context has the verdict yet.
    pub(super) answered_by_reported: bool,
    /// The id of the last alarm set on the call (`<Pause>`, a `<Dial><Queue>` wait): the
    /// core keeps one, and an alarm of an interrupted wait that rings later is told by its
    /// older id.
    pub(super) alarm: u64,
    /// Whether `<Start><Recording>` began a recording (`Some`), and its name if it has one.
    pub(super) background_recording: Option<Option<String>>,
    /// A `<Dial>` noun's whisper document running on the answered callee (no `<Dial>` then).
    pub(super) whispering: bool,
}

impl Session {
    pub(super) fn answered(&self) -> bool {
        self.answered_at.is_some()
    }

    pub(super) async fn run(mut self) {
        let asked = progress::subscription_request(
            &self.account,
            &self.call.sid,
            self.app.status_callback.clone(),
            self.app.status_callback_method,
            self.app.status_events.clone(),
            voice_params(&self.account, &self.call, ""),
            self.app.machine_detection.is_some(),
            &self.app.dialect,
        );
        if let Some(asked) = asked {
            self.progress = Some(self.apps.subscriptions.subscribe(asked).await);
        }
        if self.call.direction != "inbound" {
            if !self.ring().await {
                self.finish().await;
                return;
            }
            if let Err(Flow::Ended) = self.on_answer().await {
                self.finish().await;
                return;
            }
            if let Some(md) = self.app.machine_detection.clone()
                && let Err(Flow::Ended) = self.detect_machine(&md).await
            {
                self.finish().await;
                return;
            }
        }
        let first = Fetch {
            url: self.app.url.clone().unwrap_or_default(),
            method: self.app.method,
            twiml: if self.app.url.is_some() {
                None
            } else {
                self.app.twiml.clone()
            },
            extra: Vec::new(),
            fallback: None,
        };
        let fallback = self
            .app
            .fallback_url
            .clone()
            .map(|url| (url, self.app.fallback_method));
        match self.follow_documents(first, fallback).await {
            Flow::HangUp | Flow::Finished => self.hang_up().await,
            Flow::Failed(reason) => {
                warn!(%reason, "application error");
                self.say_and_hang_up(APPLICATION_ERROR).await;
            }
            Flow::Ended | Flow::Dequeued | Flow::Next(_) => {}
        }
        self.finish().await;
    }

    /// Runs documents from `first` (the `fallback` tried once if a fetch fails) until one ends
    /// the flow, and says how: never [`Flow::Next`]. An application error is recorded as the
    /// account's notification before it is returned.
    pub(super) async fn follow_documents(
        &mut self,
        first: Fetch,
        mut fallback: Option<(String, HttpMethod)>,
    ) -> Flow {
        let mut fetch = first;
        loop {
            if let Some(given) = fetch.fallback.take() {
                fallback = Some(given);
            }
            let current = Fetch::url(fetch.url.clone(), fetch.method, Vec::new());
            let flow = match self.document(&fetch).await {
                Ok(verbs) => self.execute(verbs, &fetch.url).await,
                Err(e) => match fallback.take() {
                    Some((url, method)) => {
                        warn!(error = %e, url = %crate::infra::secret::redact_url(&url), "TwiML fetch failed; trying the fallback URL");
                        self.notify(&e, &fetch).await;
                        let mut extra = fetch.extra.clone();
                        extra.push(("ErrorCode".into(), e.code.to_string()));
                        extra.push(("ErrorUrl".into(), fetch.url.clone()));
                        Flow::Next(Fetch::url(url, method, extra))
                    }
                    None => Flow::Failed(e),
                },
            };
            match flow {
                Flow::Next(next) => fetch = next,
                Flow::Failed(reason) => {
                    self.notify(&reason, &current).await;
                    return Flow::Failed(reason);
                }
                other => return other,
            }
        }
    }

    /// An outbound call until it is answered; false when it ended unanswered.
    pub(super) async fn ring(&mut self) -> bool {
        loop {
            let Some(event) = self.events.recv().await else {
                return false;
            };
            self.observe(&event).await;
            match event.kind {
                EventKind::Answered { .. } => {
                    self.answered_at = Some(std::time::Instant::now());
                    return true;
                }
                EventKind::Hangup { .. } => {
                    self.ended = Some(event);
                    return false;
                }
                _ => {}
            }
        }
    }

    /// What a REST-created call asked for at its answer: a recording, digits to send.
    pub(super) async fn on_answer(&mut self) -> Result<(), Flow> {
        if let Some(limit) = self.app.time_limit {
            self.command(CallCommand::LimitDuration(limit)).await?;
        }
        if let Some(recording) = self.app.record {
            let sid = crate::infra::sid::new_sid("RE");
            if let Some(cb) = self.app.recording_callback.clone() {
                let (account, call) = (&self.account, &self.call.sid);
                let dialect = &self.app.dialect;
                self.apps
                    .on_recording(account, call, &sid, cb, dialect)
                    .await;
            }
            self.command(CallCommand::RecordStart(crate::call::RecordOptions {
                channels: recording.channels,
                format: switchboard_media::record::RecordFormat::Pcm16,
                tracks: recording.tracks,
                trim_silence: recording.trim,
                sid: Some(sid),
                origin: crate::call::RecordingOrigin::CallCreate,
                stop: Default::default(),
            }))
            .await?;
        }
        if let Some(digits) = self.app.send_digits.clone() {
            let play = twiml::Play {
                url: None,
                loops: 1,
                digits: Some(digits),
            };
            self.play(&play, "").await?;
        }
        Ok(())
    }

    /// Fetches (or takes inline) and parses a document; the error says why the application
    /// failed.
    pub(super) async fn document(&mut self, fetch: &Fetch) -> Result<Vec<Verb>, AppError> {
        let texml = matches!(self.app.dialect, super::dialect::Dialect::Texml { .. });
        if let Some(inline) = &fetch.twiml {
            let (verbs, warnings) = twiml::parse_document(inline, texml)?;
            self.warn(&warnings, fetch).await;
            return Ok(verbs);
        }
        let mut params = self.standard_params();
        params.extend(fetch.extra.iter().cloned());
        let request = (self.app.dialect).request(&self.account, &fetch.url, fetch.method, &params);
        let body = self
            .apps
            .webhooks
            // Each fetch is a new request (a retry would be the application's choice).
            .send(&self.account, &request, &idempotency_token(""), 1)
            .await?;
        let (verbs, warnings) = twiml::parse_document(&body, texml)?;
        self.warn(&warnings, fetch).await;
        Ok(verbs)
    }

    /// A document's warnings (an attribute that takes no effect here), each a Notification
    /// of the call at warning level, as Twilio logs them; the document runs.
    async fn warn(&self, warnings: &[twiml::Warning], fetch: &Fetch) {
        for w in warnings {
            let notice = Notice {
                code: w.code,
                warning: true,
                message: &w.message,
                url: &fetch.url,
                method: fetch.method,
            };
            self.apps
                .notify(&self.account, &self.call.sid, notice)
                .await;
        }
    }

    pub(super) fn standard_params(&self) -> Vec<(String, String)> {
        let status = if self.ended.is_some() {
            "completed"
        } else if self.answered() {
            "in-progress"
        } else {
            "ringing"
        };
        let mut p = voice_params(&self.account, &self.call, status);
        if self.app.machine_detection.is_some() && self.answered() {
            let answered = *self.answered_by.lock().expect("not poisoned");
            let (by, ms) = answered.unwrap_or(("unknown", 0));
            p.push(("AnsweredBy".into(), by.into()));
            if answered.is_some() {
                p.push(("MachineDetectionDuration".into(), ms.to_string()));
            }
        }
        p
    }

    pub(super) async fn execute(&mut self, verbs: Vec<Verb>, base: &str) -> Flow {
        for verb in verbs {
            let step = match verb {
                Verb::Say(say) => self.say_verb(&say).await,
                Verb::Play(play) => self.play(&play, base).await,
                Verb::Pause { length_secs } => self.pause(length_secs).await,
                Verb::Gather(gather) => match self.gather(&gather, base).await {
                    Ok(Some(next)) => return Flow::Next(next),
                    Ok(None) => Ok(()),
                    Err(flow) => return flow,
                },
                // Twilio's 13201: a whisper cannot dial out (a loop of calls).
                Verb::Dial(_) if self.whispering => {
                    return Flow::Failed(AppError {
                        code: 13201,
                        message: "Dial: Cannot Dial out from a Dial Call Segment".into(),
                    });
                }
                Verb::Dial(dial) => {
                    let dialed = match dial.nouns.first() {
                        Some(DialNoun::Queue { name, .. }) => {
                            self.dial_queue(&dial, name, base).await
                        }
                        _ => self.dial(&dial, base).await,
                    };
                    match dialed {
                        Ok(Some(next)) => return Flow::Next(next),
                        Ok(None) => Ok(()),
                        Err(flow) => return flow,
                    }
                }
                Verb::Record(record) => match self.record(&record, base).await {
                    Ok(Some(next)) => return Flow::Next(next),
                    Ok(None) => Ok(()),
                    Err(flow) => return flow,
                },
                Verb::Enqueue {
                    queue,
                    action,
                    method,
                    wait_url,
                    wait_url_method,
                } => {
                    let enqueued = self
                        .enqueue(
                            &queue,
                            action.as_deref(),
                            method,
                            wait_url.as_deref(),
                            wait_url_method,
                            base,
                        )
                        .await;
                    match enqueued {
                        Ok(Some(next)) => return Flow::Next(next),
                        Ok(None) => Ok(()),
                        Err(flow) => return flow,
                    }
                }
                // Outside a queue's wait document there is nothing to leave.
                Verb::Leave => Ok(()),
                Verb::Echo { timeout_secs } => self.echo(timeout_secs).await,
                Verb::Refer { to, action, method } => {
                    match self.refer(&to, action.as_deref(), method, base).await {
                        Ok(Some(next)) => return Flow::Next(next),
                        Ok(None) => Ok(()),
                        Err(flow) => return flow,
                    }
                }
                Verb::Denoise { on } => {
                    let suppress = CallCommand::Suppress {
                        inbound: on,
                        outbound: false,
                    };
                    self.command(suppress).await
                }
                Verb::Start {
                    streams,
                    transcriptions,
                    recordings,
                    ..
                } => {
                    async {
                        self.start_streams(&streams, base).await?;
                        self.start_transcriptions(&transcriptions, base).await?;
                        self.start_recordings(&recordings, base).await
                    }
                    .await
                }
                Verb::Stop {
                    streams,
                    transcriptions,
                    recordings,
                } => {
                    self.stop_streams(&streams);
                    self.stop_transcriptions(&transcriptions).await;
                    self.stop_recordings(&recordings).await
                }
                Verb::Connect { action, method, to } => match match to {
                    twiml::ConnectTo::Stream(stream) => {
                        self.connect_stream(&stream, action.as_deref(), method, base)
                            .await
                    }
                    twiml::ConnectTo::ConversationRelay(relay) => {
                        self.connect_relay(&relay, action.as_deref(), method, base)
                            .await
                    }
                } {
                    Ok(Some(next)) => return Flow::Next(next),
                    Ok(None) => Ok(()),
                    Err(flow) => return flow,
                },
                Verb::Hangup { parameters } => {
                    self.apps.give_back(&self.call.sid, &parameters);
                    return Flow::HangUp;
                }
                Verb::Redirect { url, method } => {
                    return match resolve(base, &url) {
                        Ok(url) => Flow::Next(Fetch::url(url, http_method(method), Vec::new())),
                        Err(e) => Flow::Failed(e),
                    };
                }
                Verb::Reject { busy, parameters } => {
                    self.apps.give_back(&self.call.sid, &parameters);
                    if self.answered() {
                        return Flow::HangUp;
                    }
                    let why = if busy {
                        Rejection::Busy
                    } else {
                        Rejection::Rejected
                    };
                    let _ = self.command(CallCommand::Reject(why)).await;
                    return Flow::Ended;
                }
            };
            if let Err(flow) = step {
                return flow;
            }
        }
        // The document ran out: Twilio hangs up (a whisper's running out accepts the call).
        Flow::Finished
    }

    pub(super) async fn command(&self, command: CallCommand) -> Result<(), Flow> {
        self.apps
            .control
            .command(&self.call.sid, command)
            .await
            .map_err(|e| {
                // The call is gone, or the core refused: the document cannot go on.
                tracing::info!(error = %e, "a command for the call was refused; its document ends");
                Flow::Ended
            })
    }

    /// Sets the call's alarm `after` from now (in the core's timer heap, replacing any
    /// earlier one); the id its [`EventKind::Alarm`] will carry.
    pub(super) async fn set_alarm(&mut self, after: std::time::Duration) -> Result<u64, Flow> {
        self.alarm += 1;
        let id = self.alarm;
        self.command(CallCommand::SetAlarm { id, after }).await?;
        Ok(id)
    }

    /// Answers an inbound call before its first media verb, as Twilio does.
    pub(super) async fn answer(&mut self) -> Result<(), Flow> {
        if self.answered() {
            return Ok(());
        }
        self.command(CallCommand::Answer).await?;
        self.until(|e| matches!(e, EventKind::Answered { .. }))
            .await?;
        self.answered_at = Some(std::time::Instant::now());
        Ok(())
    }

    /// Events until `done` matches one; the call's end, or a redirect, stops the wait.
    pub(super) async fn until(
        &mut self,
        done: impl Fn(&EventKind) -> bool,
    ) -> Result<EventKind, Flow> {
        loop {
            let event = self.next_event().await?;
            if done(&event.kind) {
                return Ok(event.kind);
            }
        }
    }

    /// The call's next event. Its end is kept for the status callback; a redirect from the
    /// API stops what plays and switches documents.
    pub(super) async fn next_event(&mut self) -> Result<CallEvent, Flow> {
        let received = self.receive().await;
        self.take(received).await
    }

    /// Waits for the call's next event or a redirect. Cancel-safe, unlike [`Self::next_event`]
    /// (which observes the event: webhooks half-made if dropped), so a `select!` waits on this
    /// and hands what came to [`Self::take`] in its branch.
    pub(super) async fn receive(&mut self) -> Received {
        tokio::select! {
            event = self.events.recv() => Received::Event(event),
            Some(fetch) = self.redirects.recv() => Received::Redirect(fetch),
        }
    }

    /// What [`Self::receive`] got, observed: the event, or how the document's flow changes.
    pub(super) async fn take(&mut self, received: Received) -> Result<CallEvent, Flow> {
        match received {
            Received::Event(event) => {
                let event = event.ok_or(Flow::Ended)?;
                self.observe(&event).await;
                if matches!(event.kind, EventKind::Hangup { .. }) {
                    self.ended = Some(event);
                    return Err(Flow::Ended);
                }
                if self.queued && matches!(event.kind, EventKind::Bridged { .. }) {
                    return Err(Flow::Dequeued);
                }
                Ok(event)
            }
            Received::Redirect(fetch) => {
                let _ = self.command(CallCommand::StopPlayback).await;
                Err(Flow::Next(fetch))
            }
        }
    }

    /// Records an application error as the account's notification (Twilio's Notifications),
    /// with the request whose document failed.
    pub(super) async fn notify(&self, e: &AppError, fetch: &Fetch) {
        let notice = Notice {
            code: e.code,
            warning: false,
            message: &e.message,
            url: &fetch.url,
            method: fetch.method,
        };
        self.apps
            .notify(&self.account, &self.call.sid, notice)
            .await;
    }

    /// Where the API serves a recording (`RecordingUrl`).
    pub(super) fn recording_url(&self, sid: &str) -> String {
        (self.app.dialect).recording_url(&self.apps.public_url, &self.account, sid)
    }

    /// Ends the call. Twilio answers a ringing call before hanging it up (only `<Reject>`
    /// leaves it unanswered), so the caller sees a 200 and a BYE rather than an error.
    pub(super) async fn hang_up(&mut self) {
        if self.answer().await.is_ok() {
            let _ = self.command(CallCommand::Hangup).await;
        }
    }

    pub(super) async fn say_and_hang_up(&mut self, text: &str) {
        if self
            .say(text, Some("woman"), Some("en-US"), 1)
            .await
            .is_ok()
        {
            self.hang_up().await;
        }
    }

    /// Reports what an application asked to hear of: the call's progress, conference events,
    /// recording statuses. Every event the session takes goes through here.
    pub(super) async fn observe(&mut self, event: &CallEvent) {
        // The call's own party REFERs: only a dialed party's REFER has a `referUrl` to ask.
        if matches!(event.kind, EventKind::ReferRequested { .. }) && event.call == self.call.sid {
            let refuse = CallCommand::AnswerRefer(603);
            let _ = self.apps.control.command(&self.call.sid, refuse).await;
        }
        if let Some(progress) = &mut self.progress {
            let verdict = *self.answered_by.lock().expect("not poisoned");
            if !self.answered_by_reported
                && let Some((by, ms)) = verdict
            {
                self.answered_by_reported = true;
                if let Some(context) = progress::with_answered_by(progress.context(), by, ms) {
                    progress.set_context(context).await;
                }
            }
            progress.on_event(event).await;
        }
        if let Some((subscription, _)) = &mut self.queue_result {
            subscription.on_event(event).await;
        }
        self.conference_event(&event.kind).await;
        self.apps.subject_event(event).await;
    }

    /// After the last document: the call's end, then the `completed` status callback.
    pub(super) async fn finish(&mut self) {
        self.apps
            .redirects
            .lock()
            .expect("not poisoned")
            .remove(&self.call.sid);
        // Recordings still being saved report after the hang-up.
        while self.ended.is_none() {
            match self.events.recv().await {
                None => return,
                Some(e) => {
                    self.observe(&e).await;
                    if matches!(e.kind, EventKind::Hangup { .. }) {
                        self.ended = Some(e);
                    }
                }
            }
        }
        if let Some(CallEvent {
            kind: EventKind::Hangup { status, .. },
            ..
        }) = self.ended.take()
        {
            // Its `completed` callback went out as the hang-up was observed.
            info!(%status, "call ended");
        }
        // Recordings are saved after the hang-up; the core lets go of the call once they are.
        let drain = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(e) = self.events.recv().await {
                self.observe(&e).await;
            }
        });
        let _ = drain.await;
        self.apps.release_subjects(&self.call.sid);
    }
}
