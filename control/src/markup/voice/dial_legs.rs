//! A `<Dial>`'s child legs as their nouns ask: `<Number sendDigits>` sends DTMF once the leg
//! answers, and a noun's `statusCallback` hears the leg's `initiated`, `ringing`, `answered`
//! and `completed` (as picked by `statusCallbackEvent`) with the leg's own CallSid, its
//! ParentCallSid and Direction `outbound-dial`. One task per leg does this and passes every
//! event on to the dialing session.

use super::progress;
use super::whisper::Whisper;
use super::{Call, Session, http_method, resolve, voice_params};
use crate::call::{CallCommand, CallEvent, EventKind};
use crate::markup::twiml::{DialNoun, LegCallbacks};
use tokio::sync::mpsc;

/// What a leg's noun asked for it: its status callbacks and the digits to send once it answers.
pub(super) struct LegOptions {
    callbacks: Option<LegCallbacks>,
    send_digits: Option<String>,
}

impl LegOptions {
    pub(super) fn of(noun: &DialNoun) -> Self {
        match noun {
            DialNoun::Number {
                send_digits,
                callbacks,
                ..
            } => Self {
                callbacks: Some(callbacks.clone()),
                send_digits: send_digits.clone(),
            },
            DialNoun::Sip { callbacks, .. }
            | DialNoun::Client { callbacks, .. }
            | DialNoun::Application { callbacks, .. } => Self {
                callbacks: Some(callbacks.clone()),
                send_digits: None,
            },
            DialNoun::Conference(_) | DialNoun::Queue { .. } => Self {
                callbacks: None,
                send_digits: None,
            },
        }
    }
}

impl Session {
    /// Follows `leg`, which this call placed (its events arriving on `events`), as its noun
    /// asked (`options`, URLs relative to `base`), and passes its events on to `session`.
    pub(super) fn follow_leg(
        &self,
        leg: Call,
        options: LegOptions,
        base: &str,
        mut events: mpsc::Receiver<CallEvent>,
        session: mpsc::Sender<CallEvent>,
    ) {
        // The leg's parameters as its callbacks carry them.
        let asked = options.callbacks.as_ref().and_then(|cb| {
            let mut params = voice_params(&self.account, &leg, "");
            params.push(("ParentCallSid".into(), self.call.sid.clone()));
            progress::subscription_request(
                &self.account,
                &leg.sid,
                cb.status_callback
                    .as_deref()
                    .and_then(|u| resolve(base, u).ok()),
                http_method(cb.status_callback_method),
                cb.status_callback_event.clone(),
                params,
                false,
                &self.app.dialect,
            )
        });
        // The whisper runs on the leg as the dialling call's application, resolved as its
        // other URLs are (an unresolvable one is the whisper's application error).
        let mut whisper = options.callbacks.as_ref().and_then(|cb| {
            let url = cb.url.as_deref()?;
            Some(Whisper {
                url: resolve(base, url).unwrap_or_else(|_| url.to_owned()),
                method: http_method(cb.method),
            })
        });
        let (account, app, parent) = (
            self.account.clone(),
            self.app.clone(),
            self.call.sid.clone(),
        );
        let apps = self.apps.clone();
        self.apps.sessions.spawn(async move {
            let mut progress = match asked {
                Some(asked) => Some(apps.subscriptions.subscribe(asked).await),
                None => None,
            };
            while let Some(event) = events.recv().await {
                if let (EventKind::Answered { .. }, Some(digits)) =
                    (&event.kind, &options.send_digits)
                {
                    let send = CallCommand::SendDigits(digits.clone());
                    let _ = apps.control.command(&leg.sid, send).await;
                }
                if let Some(progress) = &mut progress {
                    progress.on_event(&event).await;
                }
                apps.subject_event(&event).await;
                // Answered with a whisper: the dial hears of the answer only if the whisper
                // puts the callee through, and of the leg's end whenever it comes.
                if matches!(event.kind, EventKind::Answered { .. })
                    && let Some(w) = whisper.take()
                {
                    let call = Call {
                        sid: leg.sid.clone(),
                        from: leg.from.clone(),
                        to: leg.to.clone(),
                        direction: leg.direction,
                        extra: vec![("ParentCallSid".into(), parent.clone())],
                    };
                    let account = account.clone();
                    let screened = apps.whisper(account, &app, call, w, events, progress).await;
                    (events, progress) = (screened.events, screened.progress);
                    if screened.accepted {
                        let _ = session.send(event).await;
                    }
                    if let Some(end) = screened.ended {
                        let _ = session.send(end).await;
                    }
                    continue;
                }
                // The session may have stopped listening (it moved on); the leg is followed to
                // its end all the same.
                let _ = session.send(event).await;
            }
            apps.release_subjects(&leg.sid);
        });
    }
}
