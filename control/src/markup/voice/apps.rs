//! The voice applications: which markup answers a number or a call placed through the REST
//! API, and the sessions they run (started, redirected, drained at shutdown).

use super::*;
use crate::call::{CallControl, CallEvent, RecordingOrigin};
use crate::infra::accounts::{Account, Directory, HttpMethod, Number};
use crate::infra::store::{NotificationRow, Store};
use crate::infra::webhook::client::WebhookClient;
use crate::services::cluster::rooms::Rooms;
use crate::services::directory::phone_numbers::PhoneNumbers;
use crate::services::inbound::{self, Inbound, Offered};
use crate::services::prompts::Prompts;
use crate::services::queues::Queues;
use crate::services::speech::Speech;
use crate::services::stream::MediaStreams;
use crate::services::subject_subscriptions::SubjectSubscriptions;
use crate::services::subscriptions::Subscriptions;
pub(super) use amd::MachineDetection;
pub(super) use dialect::Dialect;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

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
    /// Record the call from its answer (`Record=true` with its options).
    pub record: Option<CallRecording>,
    /// That recording's `RecordingStatusCallback`.
    pub recording_callback: Option<RecordingCallback>,
    /// `MachineDetection` and its parameters (`AnsweredBy` on requests once answered).
    pub machine_detection: Option<MachineDetection>,
    /// Twilio's TwiML (or SignalWire's LaML), or Telnyx's TeXML.
    pub dialect: Dialect,
    /// Hung up this long after its answer (`TimeLimit`).
    pub time_limit: Option<Duration>,
    /// The Twilio App these settings are (`ApplicationSid`, named in the requests).
    pub application_sid: Option<String>,
}

/// A call recorded from its answer: `RecordingChannels`, `RecordingTrack` and `Trim`.
#[derive(Debug, Clone, Copy)]
pub struct CallRecording {
    pub channels: switchboard_media::record::Channels,
    pub tracks: switchboard_media::TapTracks,
    /// Silence at its start and end is cut.
    pub trim: bool,
}

impl VoiceApp {
    /// An application's voice settings (a TwiML App's, a TeXML application's), in `dialect`.
    pub fn of_voice(voice: crate::infra::accounts::TexmlVoice, dialect: Dialect) -> Self {
        Self {
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
            dialect,
            time_limit: None,
            application_sid: None,
        }
    }

    /// An App's settings run with what a call's create asked besides its application: its
    /// digits, recording, machine detection and time limit.
    pub fn with_call_options(self, asked: VoiceApp) -> Self {
        Self {
            send_digits: asked.send_digits,
            record: asked.record,
            recording_callback: asked.recording_callback,
            machine_detection: asked.machine_detection,
            time_limit: asked.time_limit,
            ..self
        }
    }

    pub(super) fn of_number(n: &Number) -> Self {
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
            dialect: Dialect::Twilio,
            time_limit: None,
            application_sid: None,
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
    /// Rooms (conferences), held here or on another node.
    pub rooms: Arc<Rooms>,
    /// SIP domains, whose users `<Dial><Sip>` rings.
    pub sip_domains: Arc<crate::services::directory::sip_domains::SipDomains>,
    /// Where application errors are recorded (Notifications).
    pub(super) store: Store,
    /// Media streams to applications' WebSocket servers.
    pub streams: Arc<MediaStreams>,
    /// Speech recognition (Gather speech, transcriptions).
    pub speech: Arc<Speech>,
    /// Transcriptions of saved recordings (`<Record transcribe>`; Telnyx's too).
    pub transcriptions: Arc<crate::services::recording_transcriptions::RecordingTranscriptions>,
    /// ConversationRelay sessions (Telnyx's too).
    pub relays: Arc<crate::services::relay::ConversationRelays>,
    /// Real-time transcriptions running, by call SID (Telnyx's too).
    pub live_transcriptions: Arc<crate::services::transcription::LiveTranscriptions>,
    /// Conferences that report their events.
    pub(super) conference_hooks: conference_events::ConferenceHooks,
    /// Running sessions by call SID, for redirects, with the dialect they run in.
    pub(super) redirects: Mutex<HashMap<String, (mpsc::Sender<Fetch>, Dialect)>>,
    /// Recordings' and streams' status callbacks (subscriptions), by their SID, until their
    /// last event.
    pub(super) followed: SubjectSubscriptions,
    /// Call sessions, dial legs and stream notifiers: a shutdown waits for them to send their
    /// last webhooks into the outbox before the store closes.
    pub(crate) sessions: TaskTracker,
    /// `<Dial><Application>`: set once this node hands calls to Apps.
    pub(super) application_dials: std::sync::OnceLock<Arc<ApplicationDials>>,
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
        let app = VoiceApp::of_voice(voice, Dialect::Texml { connection_id });
        self.run_offered(app, call);
    }

    pub(super) fn run_offered(self: &Arc<Self>, app: VoiceApp, call: Offered) {
        let mut running = Call {
            sid: call.event.call.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            direction: "inbound",
            extra: Vec::new(),
        };
        match &call.application_sid {
            Some(sid) if sid.starts_with("SD") => sip_domain_call(&mut running, sid, &call),
            Some(sid) => client_call(&mut running, sid, &call),
            None => {}
        }
        // A number that names an App: its SID is among the requests' parameters.
        if let Some(sid) = &call.number_app {
            running.extra.push(("ApplicationSid".into(), sid.clone()));
        }
        self.spawn(call.account, app, running, call.events);
    }
}

/// The header a browser gateway puts a client's `device.connect({params})` in (a form
/// encoding): they reach the App's requests as parameters, `To` among them.
pub const CLIENT_PARAMS_HEADER: &str = "X-Switchboard-Params";

/// A browser client's call to its App, as Twilio presents it: `From` and `Caller`
/// `client:IDENTITY`, `To` and `Called` the `To` its page gave (else empty), `ApplicationSid`
/// and the page's other parameters besides.
fn client_call(running: &mut Call, application_sid: &str, call: &Offered) {
    if let Some((identity, _)) = crate::call::dial_plan::client_of(&call.from) {
        running.from = format!("client:{identity}");
    }
    let headers = match &call.event.kind {
        crate::call::EventKind::Incoming { headers, .. } => headers.as_slice(),
        _ => &[],
    };
    let params: Vec<(String, String)> = (headers.iter())
        .find(|(name, _)| name.eq_ignore_ascii_case(CLIENT_PARAMS_HEADER))
        .map(|(_, v)| {
            url::form_urlencoded::parse(v.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    running.to = (params.iter())
        .find(|(k, _)| k == "To")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    running
        .extra
        .push(("ApplicationSid".into(), application_sid.to_owned()));
    let custom = params.into_iter().filter(|(k, _)| k != "To");
    // Bounded like the header that carried them: a page cannot grow the requests past it.
    running.extra.extend(custom.take(64));
}

/// A call from a SIP domain's user (`user@domain`, or a caller its address admitted:
/// `@domain`), as Twilio presents it: `From` its SIP address, `To` what it dialed at the
/// domain, `SipDomain` and `SipDomainSid`.
fn sip_domain_call(running: &mut Call, domain_sid: &str, call: &Offered) {
    let user = match &call.event.kind {
        crate::call::EventKind::Incoming { user, .. } => user.as_deref(),
        _ => None,
    };
    let Some((login, domain)) = user.and_then(|u| u.split_once('@')) else {
        return;
    };
    // A caller admitted by its address (the login `@domain`) is its From's user.
    let from = if login.is_empty() {
        call.from.as_str()
    } else {
        login
    };
    running.from = format!("sip:{from}@{domain}");
    running.to = format!("sip:{}@{domain}", call.to);
    running.extra.extend([
        ("SipDomain".into(), domain.to_owned()),
        ("SipDomainSid".into(), domain_sid.to_owned()),
    ]);
}

/// What the accounts own: their credentials, numbers and queues, and the store their
/// applications' notifications go to.
pub struct AccountData {
    pub directory: Arc<Directory>,
    pub inbound: Arc<Inbound>,
    pub queues: Arc<Queues>,
    /// Rooms, wherever their home node is.
    pub rooms: Arc<Rooms>,
    /// SIP domains: `<Dial><Sip>` to a domain's user rings its registrations.
    pub sip_domains: Arc<crate::services::directory::sip_domains::SipDomains>,
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
            rooms,
            sip_domains,
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
        let live_transcriptions = crate::services::transcription::LiveTranscriptions::new(
            control.clone(),
            speech.clone(),
        );
        let relays = crate::services::relay::ConversationRelays::new(
            control.clone(),
            prompts.clone(),
            streams.clone(),
            speech.clone(),
        );
        Arc::new(Self {
            relays,
            control,
            prompts,
            webhooks,
            directory,
            numbers: inbound.numbers().clone(),
            inbound,
            public_url: public_url.trim_end_matches('/').to_owned(),
            subscriptions,
            redirects: Mutex::default(),
            followed: SubjectSubscriptions::default(),
            sessions: TaskTracker::new(),
            queues,
            rooms,
            sip_domains,
            transcriptions: Arc::new(
                crate::services::recording_transcriptions::RecordingTranscriptions::new(
                    store.clone(),
                    speech.clone(),
                ),
            ),
            store,
            streams,
            speech,
            live_transcriptions,
            conference_hooks: Default::default(),
            application_dials: Default::default(),
        })
    }

    /// Records an application's error or warning as the account's notification (Twilio's
    /// Notifications), with the request it concerns.
    pub(super) async fn notify(&self, account: &Account, call: &str, n: Notice<'_>) {
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

    /// A warning about `call` among the account's notifications (Twilio's debugger): what a
    /// REST request asked that the API takes no notice of, as Twilio warns of it.
    pub async fn warn(&self, account: &Account, call: &str, code: u32, message: &str) {
        let notice = Notice {
            code,
            warning: true,
            message,
            url: "",
            method: HttpMethod::Post,
        };
        self.notify(account, call, notice).await;
    }

    /// Reports the statuses of recording `sid` of `call` to `callback`: a subscription,
    /// stored before the recording starts.
    pub async fn on_recording(
        &self,
        account: &Account,
        call: &str,
        sid: &str,
        callback: RecordingCallback,
        dialect: &Dialect,
    ) {
        self.follow_recording(account, call, sid, callback, dialect, None)
            .await;
    }

    /// [`Self::on_recording`] of a recording that is `conference`'s, or `call`'s own.
    pub(super) async fn follow_recording(
        &self,
        account: &Account,
        call: &str,
        sid: &str,
        callback: RecordingCallback,
        dialect: &Dialect,
        conference: Option<&str>,
    ) {
        let url = dialect.recording_url(&self.public_url, account, sid);
        let asked = recording_status::subscription_request(
            account, call, sid, url, callback, dialect, conference,
        );
        if let Some(asked) = asked {
            let subscription = self.subscriptions.subscribe(asked).await;
            self.followed.add(sid, subscription);
        }
    }

    /// Hands a call's events to the subscriptions of its recordings and streams.
    pub(super) async fn subject_event(&self, event: &CallEvent) {
        self.followed.on_event(event).await;
    }

    /// Lets go of the recording and stream subscriptions of a call no longer followed.
    pub(super) fn release_subjects(&self, call: &str) {
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
        let extra = (app.application_sid.iter())
            .map(|sid| ("ApplicationSid".to_owned(), sid.clone()))
            .collect();
        let call = Call {
            sid,
            from,
            to,
            direction: "outbound-api",
            extra,
        };
        self.spawn(account, app, call, events);
    }

    /// Points a running session at another document (`Url`, or inline `Twiml`), with the
    /// URL to fetch if that one fails (`FallbackUrl`); false when the call has no session
    /// running any more.
    pub fn redirect(
        &self,
        call: &str,
        (url, method): (Option<String>, HttpMethod),
        twiml: Option<String>,
        fallback: Option<(String, HttpMethod)>,
    ) -> bool {
        let sender = self
            .redirects
            .lock()
            .expect("not poisoned")
            .get(call)
            .map(|(tx, _)| tx.clone());
        sender.is_some_and(|tx| {
            tx.try_send(Fetch {
                url: url.unwrap_or_default(),
                method,
                twiml,
                extra: Vec::new(),
                fallback,
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

    /// The dialect of the markup running call `call`, while a session runs it.
    pub fn dialect_of(&self, call: &str) -> Option<Dialect> {
        let sessions = self.redirects.lock().expect("not poisoned");
        sessions.get(call).map(|(_, dialect)| dialect.clone())
    }

    pub(super) fn spawn(
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
            .insert(call.sid.clone(), (redirect_tx, app.dialect.clone()));
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
            background_recording: None,
            whispering: false,
            answered_by: Default::default(),
            answered_by_reported: false,
            alarm: 0,
            call,
            events,
            redirects,
        };
        self.sessions.spawn(session.run().instrument(span));
    }
}
