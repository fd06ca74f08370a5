//! A `<Dial>` noun's `url` (Twilio's whisper, or call screening): once the callee answers, a
//! document runs on the callee's leg before the bridge while the caller keeps ringing. The
//! document running out of verbs puts the callee through; `<Hangup>` (or `<Reject>`, or an
//! application error, or the callee hanging up) refuses the call, and the `<Dial>` waits on
//! for its other nouns. A `<Dial>` in it is Twilio's 13201.

use super::{APPLICATION_ERROR, Call, Fetch, Flow, Session, VoiceApp, VoiceApps};
use crate::call::CallEvent;
use crate::infra::accounts::{Account, HttpMethod};
use crate::services::subscriptions::LiveSubscription;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The whisper document a noun asked for: its URL (resolved) and method.
pub(super) struct Whisper {
    pub(super) url: String,
    pub(super) method: HttpMethod,
}

/// How a whisper ended.
pub(super) struct Screened {
    /// The callee is to be put through.
    pub(super) accepted: bool,
    /// The leg's events, handed back to its follower.
    pub(super) events: mpsc::Receiver<CallEvent>,
    /// The leg's status callbacks, which the whisper's session kept while it ran.
    pub(super) progress: Option<LiveSubscription>,
    /// The leg's end, if the whisper saw it.
    pub(super) ended: Option<CallEvent>,
}

impl VoiceApps {
    /// Runs `whisper` on `leg`, answered, as the dialling call's application (`app`) would
    /// run a document: signed the same way, with the leg's parameters (`Direction`
    /// `outbound-dial`, its `ParentCallSid`).
    pub(super) async fn whisper(
        self: &Arc<Self>,
        account: Account,
        app: &VoiceApp,
        leg: Call,
        whisper: Whisper,
        events: mpsc::Receiver<CallEvent>,
        progress: Option<LiveSubscription>,
    ) -> Screened {
        let app = VoiceApp {
            url: Some(whisper.url.clone()),
            method: whisper.method,
            twiml: None,
            fallback_url: None,
            fallback_method: whisper.method,
            status_callback: None,
            status_callback_method: whisper.method,
            status_events: Vec::new(),
            send_digits: None,
            record: None,
            recording_callback: None,
            machine_detection: None,
            dialect: app.dialect.clone(),
            ..VoiceApp::default()
        };
        // The leg may be redirected through the REST API while its whisper runs.
        let (redirect_tx, redirects) = mpsc::channel(4);
        let sid = leg.sid.clone();
        let running = (redirect_tx, app.dialect.clone());
        (self.redirects.lock().expect("not poisoned")).insert(sid.clone(), running);
        let mut session = Session {
            apps: self.clone(),
            account,
            app,
            answered_at: Some(std::time::Instant::now()),
            ended: None,
            progress,
            queue_result: None,
            queued: false,
            conference: None,
            background_recording: None,
            whispering: true,
            answered_by: Default::default(),
            answered_by_reported: false,
            alarm: 0,
            call: leg,
            events,
            redirects,
        };
        tracing::info!(url = %crate::infra::secret::redact_url(&whisper.url), "the whisper runs on the answered callee");
        let first = Fetch::url(whisper.url, whisper.method, Vec::new());
        let accepted = match session.follow_documents(first, None).await {
            Flow::Finished => true,
            Flow::HangUp => {
                session.hang_up().await;
                false
            }
            Flow::Failed(reason) => {
                tracing::warn!(%reason, "the whisper failed; the callee is not put through");
                session.say_and_hang_up(APPLICATION_ERROR).await;
                false
            }
            Flow::Ended | Flow::Dequeued | Flow::Next(_) => false,
        };
        self.redirects.lock().expect("not poisoned").remove(&sid);
        Screened {
            accepted: accepted && session.ended.is_none(),
            ended: session.ended.take(),
            events: session.events,
            progress: session.progress,
        }
    }
}
