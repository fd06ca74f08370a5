//! Voice applications in the Twilio dialect: a call is driven by TwiML — fetched from a voice
//! URL (a configured number's, or the `Url` of a call created through the REST API) or given
//! inline (`Twiml`) — verb by verb, through the call core. Each call has its own session task;
//! fetches are signed with the account's auth token and carry Twilio's standard voice
//! parameters; status callbacks go out for the events the application asked for. A running
//! session can be redirected to another document (the REST API's call update).

pub mod amd;
mod conference_events;
mod dial;
mod dial_legs;
mod enqueue;
mod flavor;
mod gather;
mod prompt_budget;

use prompt_budget::PromptBudget;
pub mod live_transcription;
mod progress;
mod queue_result;
mod record;
mod recording_status;
mod stream_status;
pub mod streams;
mod transcribe;

use super::rfc2822;
use super::twiml::{self, DialNoun, Method, Verb};
use crate::call::{CallCommand, CallControl, CallEvent, EventKind, RecordingOrigin, Rejection};
use crate::infra::accounts::{Account, Directory, HttpMethod, Number};
use crate::infra::store::{NotificationRow, Store};
use crate::infra::webhook::client::{WebhookClient, WebhookError, idempotency_token};
use crate::services::inbound::{self, Inbound, Offered};
use crate::services::phone_numbers::PhoneNumbers;
use crate::services::prompts::Prompts;
use crate::services::queues::Queues;
use crate::services::speech::Speech;
use crate::services::stream::MediaStreams;
use crate::services::subject_followers::SubjectFollowers;
use crate::services::subscriptions::{Follower, Subscriptions};
pub use amd::MachineDetection;
pub use flavor::{Flavor, account_uuid};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_media::{Part, Prompt};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

/// The longest `<Gather>` prompt rendered ahead: ten minutes (9.6 MB of samples).
const MAX_PROMPT_MS: u32 = 600_000;
const MAX_PROMPT_SAMPLES: usize = MAX_PROMPT_MS as usize * 8;

/// What Twilio says when the application cannot be reached or its TwiML is broken.
const APPLICATION_ERROR: &str = "We are sorry, an application error has occurred. Goodbye.";

/// Where a call's TwiML comes from, and where its progress is reported.
#[derive(Debug, Clone, Default)]
pub struct VoiceApp {
    pub url: Option<String>,
    pub method: HttpMethod,
    /// Inline TwiML, used when there is no URL.
    pub twiml: Option<String>,
    pub fallback_url: Option<String>,
    pub fallback_method: HttpMethod,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    /// Of `initiated ringing answered completed`; Twilio's default is `completed` alone.
    pub status_events: Vec<String>,
    /// DTMF sent once answered, before the TwiML runs (`SendDigits`).
    pub send_digits: Option<String>,
    /// Record the call from its answer (`Record=true`, `RecordingChannels`).
    pub record: Option<switchboard_media::record::Channels>,
    /// That recording's `RecordingStatusCallback`.
    pub recording_callback: Option<RecordingCallback>,
    /// `MachineDetection` and its parameters (`AnsweredBy` on requests once answered).
    pub machine_detection: Option<MachineDetection>,
    /// Twilio's TwiML (or SignalWire's LaML), or Telnyx's TeXML.
    pub flavor: Flavor,
}

impl VoiceApp {
    fn of_number(n: &Number) -> Self {
        Self {
            url: n.voice_url.clone(),
            method: n.voice_method,
            twiml: None,
            fallback_url: n.voice_fallback_url.clone(),
            fallback_method: n.voice_fallback_method,
            status_callback: n.status_callback.clone(),
            status_callback_method: n.status_callback_method,
            status_events: vec!["completed".into()],
            send_digits: None,
            record: None,
            recording_callback: None,
            machine_detection: None,
            flavor: Flavor::Twilio,
        }
    }
}

/// Runs the voice applications: those of configured numbers, and those of REST-created calls.
pub struct VoiceApps {
    pub control: CallControl,
    pub prompts: Arc<Prompts>,
    pub webhooks: WebhookClient,
    pub directory: Arc<Directory>,
    /// The accounts' numbers; those with a voice URL are answered by it.
    pub numbers: Arc<PhoneNumbers>,
    /// Where numbers' incoming calls are dispatched (a number changed through the REST API
    /// is told to it).
    pub inbound: Arc<Inbound>,
    /// Where this server's API is reached from outside (`RecordingUrl`s point there).
    pub public_url: String,
    /// Callbacks (status, recording, stream, conference, queue results) are subscriptions:
    /// stored with what they follow, made from its stored events.
    pub subscriptions: Arc<Subscriptions>,
    /// Calls waiting in queues.
    pub queues: Arc<Queues>,
    /// Where application errors are recorded (Notifications).
    store: Store,
    /// Media streams to applications' WebSocket servers.
    pub streams: Arc<MediaStreams>,
    /// Speech recognition (Gather speech, transcriptions).
    pub speech: Arc<Speech>,
    /// Transcriptions of saved recordings (`<Record transcribe>`; Telnyx's too).
    pub transcriptions: Arc<crate::services::recording_transcriptions::RecordingTranscriptions>,
    /// Real-time transcriptions running, by call SID.
    live_transcriptions: Mutex<HashMap<String, Vec<live_transcription::Running>>>,
    /// Conferences that report their events.
    conference_hooks: conference_events::ConferenceHooks,
    /// Running sessions by call SID, for redirects.
    redirects: Mutex<HashMap<String, mpsc::Sender<Fetch>>>,
    /// Recordings' and streams' status callbacks (subscriptions), by their SID, until their
    /// last event.
    followed: SubjectFollowers,
    /// Call sessions, dial legs and stream followers: a shutdown waits for them to send their
    /// last webhooks into the outbox before the store closes.
    pub(crate) sessions: TaskTracker,
}

/// Where a recording's statuses go (Twilio's `RecordingStatusCallback`).
#[derive(Debug, Clone)]
pub struct RecordingCallback {
    pub url: String,
    pub method: HttpMethod,
    /// What started it (Twilio's `RecordingSource`).
    pub origin: RecordingOrigin,
    /// The statuses reported (`RecordingStatusCallbackEvent`): of `in-progress`,
    /// `completed`, `absent`; Twilio's default is `completed`.
    pub events: Vec<String>,
    /// `RecordingTrack`: `inbound`, `outbound` or `both`.
    pub track: &'static str,
}

/// A number's voice URL answers its calls: a TwiML session each.
impl inbound::Answer for VoiceApps {
    fn take(self: Arc<Self>, call: Offered) {
        let app = VoiceApp::of_number(&call.number);
        self.run_offered(app, call);
    }
}

impl VoiceApps {
    /// Runs a TeXML application's session for an incoming call to one of its numbers.
    pub fn take_texml(
        self: &Arc<Self>,
        connection_id: String,
        voice: crate::infra::accounts::TexmlVoice,
        call: Offered,
    ) {
        let app = VoiceApp {
            url: Some(voice.voice_url),
            method: voice.voice_method,
            twiml: None,
            fallback_url: voice.voice_fallback_url,
            fallback_method: voice.voice_method,
            status_callback: voice.status_callback,
            status_callback_method: voice.status_callback_method,
            status_events: vec!["completed".into()],
            send_digits: None,
            record: None,
            recording_callback: None,
            machine_detection: None,
            flavor: Flavor::Texml { connection_id },
        };
        self.run_offered(app, call);
    }

    fn run_offered(self: &Arc<Self>, app: VoiceApp, call: Offered) {
        let running = Call {
            sid: call.event.call,
            from: call.from,
            to: call.to,
            direction: "inbound",
        };
        self.spawn(call.account, app, running, call.events);
    }
}

/// What the accounts own: their credentials, numbers and queues, and the store their
/// applications' notifications go to.
pub struct AccountData {
    pub directory: Arc<Directory>,
    pub inbound: Arc<Inbound>,
    pub queues: Arc<Queues>,
    pub store: Store,
}

/// What a call's audio goes through besides the relay: prompts played to it, media streams
/// to applications, speech recognition of what the caller says.
pub struct CallAudio {
    pub prompts: Arc<Prompts>,
    pub streams: Arc<MediaStreams>,
    pub speech: Arc<Speech>,
}

impl VoiceApps {
    pub fn new(
        control: CallControl,
        audio: CallAudio,
        webhooks: WebhookClient,
        accounts: AccountData,
        public_url: String,
        subscriptions: Arc<Subscriptions>,
    ) -> Arc<Self> {
        let CallAudio {
            prompts,
            streams,
            speech,
        } = audio;
        let AccountData {
            directory,
            inbound,
            queues,
            store,
        } = accounts;
        subscriptions.register(progress::RENDERER, Arc::new(progress::TwilioProgress));
        subscriptions.register(
            conference_events::RENDERER,
            Arc::new(conference_events::TwilioConference),
        );
        subscriptions.register(
            queue_result::RENDERER,
            Arc::new(queue_result::TwilioQueueResult),
        );
        subscriptions.register(
            stream_status::RENDERER,
            Arc::new(stream_status::TwilioStreamStatus),
        );
        subscriptions.register(
            recording_status::RENDERER,
            Arc::new(recording_status::TwilioRecordingStatus),
        );
        Arc::new(Self {
            control,
            prompts,
            webhooks,
            directory,
            numbers: inbound.numbers().clone(),
            inbound,
            public_url: public_url.trim_end_matches('/').to_owned(),
            subscriptions,
            redirects: Mutex::default(),
            followed: SubjectFollowers::default(),
            sessions: TaskTracker::new(),
            queues,
            transcriptions: Arc::new(
                crate::services::recording_transcriptions::RecordingTranscriptions::new(
                    store.clone(),
                    speech.clone(),
                ),
            ),
            store,
            streams,
            speech,
            live_transcriptions: Mutex::default(),
            conference_hooks: Default::default(),
        })
    }

    /// Records an application's error or warning as the account's notification (Twilio's
    /// Notifications), with the request it concerns.
    async fn notify(&self, account: &Account, call: &str, n: Notice<'_>) {
        // Redacted before encoding: percent-encoded, a password no longer looks like a URL's.
        let url = crate::infra::secret::redact_url(n.url);
        let text = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Msg", &crate::infra::secret::redact_urls_in(n.message))
            .append_pair("ErrorCode", &n.code.to_string())
            .append_pair("url", &url)
            .finish();
        let row = NotificationRow {
            sid: crate::infra::sid::new_sid("NO"),
            account_sid: account.sid.clone(),
            call_sid: Some(call.to_owned()),
            error_code: n.code,
            log: u8::from(n.warning),
            message_text: text,
            request_url: (!url.is_empty()).then(|| url.into_owned()),
            request_method: Some(n.method.as_str().to_owned()),
            created_at: crate::infra::clock::now_ms(),
        };
        if let Err(e) = self.store.add_notification(&row).await {
            warn!(error = %e, "cannot store the notification");
        }
    }

    /// Reports the statuses of recording `sid` of `call` to `callback`: a subscription,
    /// stored before the recording starts.
    pub async fn on_recording(
        &self,
        account: &Account,
        call: &str,
        sid: &str,
        callback: RecordingCallback,
        flavor: &Flavor,
    ) {
        let url = flavor.recording_url(&self.public_url, account, sid);
        let wish = recording_status::wish(account, call, sid, url, callback, flavor);
        if let Some(wish) = wish {
            let follower = self.subscriptions.subscribe(wish).await;
            self.followed.add(sid, follower);
        }
    }

    /// Hands a call's events to the subscriptions of its recordings and streams.
    async fn subject_event(&self, event: &CallEvent) {
        self.followed.on_event(event).await;
    }

    /// Lets go of the recording and stream subscriptions of a call no longer followed.
    fn release_subjects(&self, call: &str) {
        self.followed.release(call);
    }

    /// Tells the dispatcher a number's application changed.
    pub fn number_changed(&self, number: &Number) {
        self.inbound.number_changed(number);
    }

    /// Runs the application of a call placed through the REST API: status callbacks while it
    /// rings, its TwiML once answered.
    pub fn outbound(
        self: &Arc<Self>,
        account: Account,
        app: VoiceApp,
        sid: String,
        from: String,
        to: String,
        events: mpsc::Receiver<CallEvent>,
    ) {
        let call = Call {
            sid,
            from,
            to,
            direction: "outbound-api",
        };
        self.spawn(account, app, call, events);
    }

    /// Points a running session at another document (`Url`, or inline `Twiml`); false when
    /// the call has no session running any more.
    pub fn redirect(
        &self,
        call: &str,
        url: Option<String>,
        method: HttpMethod,
        twiml: Option<String>,
    ) -> bool {
        let sender = self
            .redirects
            .lock()
            .expect("not poisoned")
            .get(call)
            .cloned();
        sender.is_some_and(|tx| {
            tx.try_send(Fetch {
                url: url.unwrap_or_default(),
                method,
                twiml,
                extra: Vec::new(),
            })
            .is_ok()
        })
    }

    /// At shutdown, once the call core has ended every call: waits up to `grace` for the
    /// sessions to finish (their last status callbacks are then in the outbox).
    pub async fn drain(&self, grace: Duration) -> bool {
        self.sessions.close();
        tokio::time::timeout(grace, self.sessions.wait())
            .await
            .is_ok()
    }

    fn spawn(
        self: &Arc<Self>,
        account: Account,
        app: VoiceApp,
        call: Call,
        events: mpsc::Receiver<CallEvent>,
    ) {
        let (redirect_tx, redirects) = mpsc::channel(4);
        self.redirects
            .lock()
            .expect("not poisoned")
            .insert(call.sid.clone(), redirect_tx);
        let span = info_span!("twiml", call = %call.sid);
        let session = Session {
            apps: self.clone(),
            account,
            app,
            answered_at: None,
            ended: None,
            progress: None,
            queue_result: None,
            queued: false,
            conference: None,
            answered_by: Default::default(),
            answered_by_reported: false,
            call,
            events,
            redirects,
        };
        self.sessions.spawn(session.run().instrument(span));
    }
}

/// The call a session drives (or a `<Dial>` leg it placed).
struct Call {
    sid: String,
    from: String,
    to: String,
    /// `inbound`, `outbound-api` or `outbound-dial`.
    direction: &'static str,
}

/// The next document: fetched from `url`, or inline `twiml`.
struct Fetch {
    url: String,
    method: HttpMethod,
    twiml: Option<String>,
    /// Parameters added to the standard ones (`Digits`, …).
    extra: Vec<(String, String)>,
}

impl Fetch {
    fn url(url: String, method: HttpMethod, extra: Vec<(String, String)>) -> Self {
        Self {
            url,
            method,
            twiml: None,
            extra,
        }
    }
}

/// A notification to record: Twilio's code, whether it is a warning, and the request it
/// concerns.
struct Notice<'a> {
    code: u32,
    warning: bool,
    message: &'a str,
    url: &'a str,
    method: HttpMethod,
}

/// What went wrong with an application, with Twilio's error code for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("error {code}: {message}")]
struct AppError {
    /// 11100 (bad URL), 11200/11205/11750 (fetch), 12100/12200 (document).
    code: u32,
    message: String,
}

impl AppError {
    /// The document asks for what cannot be done (Twilio's schema error).
    fn unsupported(message: impl Into<String>) -> Self {
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
enum Flow {
    /// Fetch another document (Redirect, a Gather's action, an API redirect).
    Next(Fetch),
    /// Hang up: `<Hangup>`, or the document ran out of verbs.
    HangUp,
    /// The call is over already.
    Ended,
    /// The application failed: apologise and hang up.
    Failed(AppError),
    /// A `<Dial><Queue>` bridged this queued call: its wait is over.
    Dequeued,
}

/// What a session's wait for its call brought: an event (`None`: the call is gone), or a
/// redirect from the API.
enum Received {
    Event(Option<CallEvent>),
    Redirect(Fetch),
}

struct Session {
    apps: Arc<VoiceApps>,
    account: Account,
    app: VoiceApp,
    call: Call,
    events: mpsc::Receiver<CallEvent>,
    redirects: mpsc::Receiver<Fetch>,
    /// When the call was answered, once it is.
    answered_at: Option<std::time::Instant>,
    /// The call's end, once seen.
    ended: Option<CallEvent>,
    /// Its status callbacks.
    progress: Option<Follower>,
    /// Waiting in a queue: being bridged ends the wait.
    queued: bool,
    /// The `<Enqueue action>` its end requests if it comes first (queue_result).
    queue_result: Option<(Follower, queue_result::Context)>,
    /// The `<Conference>` this call joined last, for its status callbacks.
    conference: Option<conference_events::Participation>,
    /// The answering-machine detector's verdict, once given.
    answered_by: amd::Answered,
    /// Whether the status callbacks' context has the verdict yet.
    answered_by_reported: bool,
}

impl Session {
    fn answered(&self) -> bool {
        self.answered_at.is_some()
    }

    async fn run(mut self) {
        let wish = progress::wish(
            &self.account,
            &self.call.sid,
            self.app.status_callback.clone(),
            self.app.status_callback_method,
            self.app.status_events.clone(),
            voice_params(&self.account, &self.call, ""),
            self.app.machine_detection.is_some(),
            &self.app.flavor,
        );
        if let Some(wish) = wish {
            self.progress = Some(self.apps.subscriptions.subscribe(wish).await);
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
        let mut next = Some(Fetch {
            url: self.app.url.clone().unwrap_or_default(),
            method: self.app.method,
            twiml: if self.app.url.is_some() {
                None
            } else {
                self.app.twiml.clone()
            },
            extra: Vec::new(),
        });
        let mut fallback = self
            .app
            .fallback_url
            .clone()
            .map(|url| (url, self.app.fallback_method));
        while let Some(fetch) = next.take() {
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
                Flow::Next(f) => next = Some(f),
                Flow::HangUp => self.hang_up().await,
                Flow::Failed(reason) => {
                    warn!(%reason, "application error");
                    self.notify(&reason, &current).await;
                    self.say_and_hang_up(APPLICATION_ERROR).await;
                }
                Flow::Ended | Flow::Dequeued => {}
            }
        }
        self.finish().await;
    }

    /// An outbound call until it is answered; false when it ended unanswered.
    async fn ring(&mut self) -> bool {
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
    async fn on_answer(&mut self) -> Result<(), Flow> {
        if let Some(channels) = self.app.record {
            let sid = crate::infra::sid::new_sid("RE");
            if let Some(cb) = self.app.recording_callback.clone() {
                let (account, call) = (&self.account, &self.call.sid);
                let flavor = &self.app.flavor;
                self.apps
                    .on_recording(account, call, &sid, cb, flavor)
                    .await;
            }
            self.command(CallCommand::RecordStart(crate::call::RecordOptions {
                channels,
                format: switchboard_media::record::RecordFormat::Pcm16,
                tracks: switchboard_media::TapTracks::Both,
                trim_silence: false,
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
    async fn document(&mut self, fetch: &Fetch) -> Result<Vec<Verb>, AppError> {
        if let Some(inline) = &fetch.twiml {
            return Ok(twiml::parse(inline)?);
        }
        let mut params = self.standard_params();
        params.extend(fetch.extra.iter().cloned());
        let request = (self.app.flavor).request(&self.account, &fetch.url, fetch.method, &params);
        let body = self
            .apps
            .webhooks
            // Each fetch is a new request (a retry would be the application's choice).
            .send(&self.account, &request, &idempotency_token(""), 1)
            .await?;
        Ok(twiml::parse(&body)?)
    }

    fn standard_params(&self) -> Vec<(String, String)> {
        let status = if self.answered() {
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

    async fn execute(&mut self, verbs: Vec<Verb>, base: &str) -> Flow {
        for verb in verbs {
            let step = match verb {
                Verb::Say(say) => {
                    self.say(
                        &say.text,
                        say.voice.as_deref(),
                        say.language.as_deref(),
                        say.loops,
                    )
                    .await
                }
                Verb::Play(play) => self.play(&play, base).await,
                Verb::Pause { length_secs } => self.pause(length_secs).await,
                Verb::Gather(gather) => match self.gather(&gather, base).await {
                    Ok(Some(next)) => return Flow::Next(next),
                    Ok(None) => Ok(()),
                    Err(flow) => return flow,
                },
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
                Verb::Start {
                    streams,
                    transcriptions,
                    ..
                } => match self.start_streams(&streams, base).await {
                    Ok(()) => self.start_transcriptions(&transcriptions, base).await,
                    Err(flow) => Err(flow),
                },
                Verb::Stop {
                    streams,
                    transcriptions,
                } => {
                    self.stop_streams(&streams);
                    self.stop_transcriptions(&transcriptions).await;
                    Ok(())
                }
                Verb::Connect {
                    action,
                    method,
                    stream,
                } => match self
                    .connect_stream(&stream, action.as_deref(), method, base)
                    .await
                {
                    Ok(Some(next)) => return Flow::Next(next),
                    Ok(None) => Ok(()),
                    Err(flow) => return flow,
                },
                Verb::Hangup => return Flow::HangUp,
                Verb::Redirect { url, method } => {
                    return match resolve(base, &url) {
                        Ok(url) => Flow::Next(Fetch::url(url, http_method(method), Vec::new())),
                        Err(e) => Flow::Failed(e),
                    };
                }
                Verb::Reject { busy } => {
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
        // The document ran out: Twilio hangs up.
        Flow::HangUp
    }

    async fn command(&self, command: CallCommand) -> Result<(), Flow> {
        self.apps
            .control
            .command(&self.call.sid, command)
            .await
            .map_err(|_| Flow::Ended)
    }

    /// Answers an inbound call before its first media verb, as Twilio does.
    async fn answer(&mut self) -> Result<(), Flow> {
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
    async fn until(&mut self, done: impl Fn(&EventKind) -> bool) -> Result<EventKind, Flow> {
        loop {
            let event = self.next_event().await?;
            if done(&event.kind) {
                return Ok(event.kind);
            }
        }
    }

    /// The call's next event. Its end is kept for the status callback; a redirect from the
    /// API stops what plays and switches documents.
    async fn next_event(&mut self) -> Result<CallEvent, Flow> {
        let received = self.receive().await;
        self.take(received).await
    }

    /// Waits for the call's next event or a redirect. Cancel-safe, unlike [`Self::next_event`]
    /// (which observes the event: webhooks half-made if dropped), so a `select!` waits on this
    /// and hands what came to [`Self::take`] in its branch.
    async fn receive(&mut self) -> Received {
        tokio::select! {
            event = self.events.recv() => Received::Event(event),
            Some(fetch) = self.redirects.recv() => Received::Redirect(fetch),
        }
    }

    /// What [`Self::receive`] got, observed: the event, or how the document's flow changes.
    async fn take(&mut self, received: Received) -> Result<CallEvent, Flow> {
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

    /// Plays a prompt and waits for its end.
    async fn play_prompt(
        &mut self,
        clip: switchboard_media::Prompt,
        loops: u32,
    ) -> Result<(), Flow> {
        self.answer().await?;
        self.command(CallCommand::Play {
            clip,
            loops,
            barge_in: false,
        })
        .await?;
        let EventKind::PlaybackStarted { playback } = self
            .until(|e| matches!(e, EventKind::PlaybackStarted { .. }))
            .await?
        else {
            unreachable!()
        };
        self.until(|e| matches!(e, EventKind::PlaybackEnded { playback: p, .. } if *p == playback))
            .await?;
        Ok(())
    }

    async fn say(
        &mut self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
        loops: u32,
    ) -> Result<(), Flow> {
        if text.is_empty() {
            return Ok(());
        }
        let spoken = self
            .apps
            .prompts
            .say(text, voice, language, &self.account.sid)
            .await
            .map_err(|e| Flow::Failed(AppError::unsupported(e.to_string())))?;
        self.play_prompt(Prompt::new(vec![spoken.part(1)]), loops)
            .await
    }

    async fn play(&mut self, play: &twiml::Play, base: &str) -> Result<(), Flow> {
        if let Some(digits) = &play.digits {
            self.answer().await?;
            self.command(CallCommand::SendDigits(digits.clone()))
                .await?;
            // Each digit takes 160 ms on the wire, each `w` half a second.
            let ms: u64 = digits
                .chars()
                .map(|c| if c == 'w' || c == 'W' { 500 } else { 160 })
                .sum();
            return self.pause_ms(ms).await;
        }
        let url = resolve(base, play.url.as_deref().unwrap_or_default()).map_err(Flow::Failed)?;
        match self.apps.prompts.url(&url, self.account.reach).await {
            Ok(clip) => self.play_prompt(clip.into(), play.loops).await,
            // Twilio logs a warning and goes on with the next verb.
            Err(e) => {
                warn!(url = %crate::infra::secret::redact_url(&url), error = %e, "cannot play");
                Ok(())
            }
        }
    }

    async fn pause(&mut self, secs: u32) -> Result<(), Flow> {
        self.pause_ms(secs as u64 * 1000).await
    }

    /// Waits, ending early if the call ends or is redirected.
    async fn pause_ms(&mut self, ms: u64) -> Result<(), Flow> {
        let sleep = tokio::time::sleep(Duration::from_millis(ms));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Ok(()),
                received = self.receive() => { self.take(received).await?; }
            }
        }
    }

    /// A `<Gather>` prompt as the parts of one playback: speech or a fetched file (one shared
    /// clip however often it repeats), or silence (a length, no samples). `budget` is the audio
    /// the gather may still hold; a prompt past it is left out.
    async fn render(
        &mut self,
        prompt: &Verb,
        base: &str,
        budget: &mut PromptBudget,
    ) -> Result<Vec<Part>, Flow> {
        // What it is, the most samples it holds, and how often it plays.
        let (sound, most, loops) = match prompt {
            Verb::Say(s) => {
                let spoken = self
                    .apps
                    .prompts
                    .say(
                        &s.text,
                        s.voice.as_deref(),
                        s.language.as_deref(),
                        &self.account.sid,
                    )
                    .await
                    .map_err(|e| Flow::Failed(AppError::unsupported(e.to_string())))?;
                let most = spoken.most_samples;
                (spoken.part(1), most, s.loops)
            }
            Verb::Play(p) if p.url.is_some() => {
                let url =
                    resolve(base, p.url.as_deref().unwrap_or_default()).map_err(Flow::Failed)?;
                match self.apps.prompts.url(&url, self.account.reach).await {
                    Ok(clip) => (Part::Audio(clip.clone(), 1), clip.len(), p.loops),
                    Err(e) => {
                        warn!(url = %crate::infra::secret::redact_url(&url), error = %e, "cannot play");
                        return Ok(Vec::new());
                    }
                }
            }
            Verb::Pause { length_secs } => {
                let samples = length_secs.saturating_mul(1000).min(MAX_PROMPT_MS) as usize * 8;
                let times = budget.play(samples as u64, 1);
                return Ok(std::iter::repeat_n(Part::Silence(samples), times as usize).collect());
            }
            _ => return Ok(Vec::new()),
        };
        if !budget.hold(most) {
            warn!(
                "<Gather>: its prompts hold more audio than one gather may; the rest is left out"
            );
            return Ok(Vec::new());
        }
        let times = budget.play(most as u64, loops.max(1) as u64);
        Ok(match times {
            0 => Vec::new(),
            n => vec![sound.played(n as u32)],
        })
    }

    /// Records an application error as the account's notification (Twilio's Notifications),
    /// with the request whose document failed.
    async fn notify(&self, e: &AppError, fetch: &Fetch) {
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
    fn recording_url(&self, sid: &str) -> String {
        (self.app.flavor).recording_url(&self.apps.public_url, &self.account, sid)
    }

    /// Ends the call. Twilio answers a ringing call before hanging it up (only `<Reject>`
    /// leaves it unanswered), so the caller sees a 200 and a BYE rather than an error.
    async fn hang_up(&mut self) {
        if self.answer().await.is_ok() {
            let _ = self.command(CallCommand::Hangup).await;
        }
    }

    async fn say_and_hang_up(&mut self, text: &str) {
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
    async fn observe(&mut self, event: &CallEvent) {
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
        if let Some((follower, _)) = &mut self.queue_result {
            follower.on_event(event).await;
        }
        self.conference_event(&event.kind).await;
        self.apps.subject_event(event).await;
    }

    /// After the last document: the call's end, then the `completed` status callback.
    async fn finish(&mut self) {
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

/// Twilio's standard request parameters for a call, geographic fields included (empty: Twilio
/// sends them even when its lookup found nothing).
fn voice_params(account: &Account, c: &Call, status: &str) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("CallSid", c.sid.as_str()),
        ("AccountSid", account.api_sid()),
        ("From", c.from.as_str()),
        ("To", c.to.as_str()),
        ("Caller", c.from.as_str()),
        ("Called", c.to.as_str()),
        ("CallStatus", status),
        ("ApiVersion", "2010-04-01"),
        ("Direction", c.direction),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for who in ["From", "To", "Caller", "Called"] {
        for what in ["City", "State", "Zip", "Country"] {
            p.push((format!("{who}{what}"), String::new()));
        }
    }
    p
}

fn set(params: &mut [(String, String)], name: &str, value: &str) {
    if let Some(p) = params.iter_mut().find(|(k, _)| k == name) {
        p.1 = value.to_owned();
    }
}

fn http_method(m: Method) -> HttpMethod {
    match m {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
    }
}

/// A URL in TwiML, resolved against the document it came in.
/// Twilio's name for what started a recording (`source`, `RecordingSource`).
pub fn recording_source(origin: RecordingOrigin) -> &'static str {
    match origin {
        RecordingOrigin::Api => "StartCallRecordingAPI",
        RecordingOrigin::RecordVerb => "RecordVerb",
        RecordingOrigin::Dial => "DialVerb",
        RecordingOrigin::CallCreate => "OutboundAPI",
        RecordingOrigin::Conference => "Conference",
        RecordingOrigin::Route => "Trunking",
    }
}

/// A URL of a document, relative to the document's own (inline TwiML has none: its URLs
/// must be absolute).
fn resolve(base: &str, url: &str) -> Result<String, AppError> {
    url::Url::parse(url)
        .or_else(|_| url::Url::parse(base).and_then(|b| b.join(url)))
        .map(String::from)
        .map_err(|e| AppError {
            code: 11100,
            message: format!("bad URL {url:?}: {e}"),
        })
}

fn verb_name(v: &Verb) -> &'static str {
    match v {
        Verb::Say(_) => "<Say>",
        Verb::Play(_) => "<Play>",
        Verb::Pause { .. } => "<Pause>",
        Verb::Gather(_) => "<Gather>",
        Verb::Record(_) => "<Record>",
        Verb::Dial(_) => "<Dial>",
        Verb::Hangup => "<Hangup>",
        Verb::Redirect { .. } => "<Redirect>",
        Verb::Reject { .. } => "<Reject>",
        Verb::Enqueue { .. } => "<Enqueue>",
        Verb::Leave => "<Leave>",
        Verb::Connect { .. } => "<Connect>",
        Verb::Start { .. } => "<Start>",
        Verb::Stop { .. } => "<Stop>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_against_their_document() {
        assert_eq!(
            resolve("http://127.0.0.1:9000/voice/menu?x=1", "/gathered").unwrap(),
            "http://127.0.0.1:9000/gathered"
        );
        assert_eq!(
            resolve("http://127.0.0.1:9000/voice/menu", "tone.wav").unwrap(),
            "http://127.0.0.1:9000/voice/tone.wav"
        );
        assert_eq!(resolve("http://a/x", "https://b/y").unwrap(), "https://b/y");
    }
}
