//! A `<Dial>`'s child legs as their nouns ask: `<Number sendDigits>` sends DTMF once the leg
//! answers, and a noun's `statusCallback` hears the leg's `initiated`, `ringing`, `answered`
//! and `completed` (as picked by `statusCallbackEvent`) with the leg's own CallSid, its
//! ParentCallSid and Direction `outbound-dial`. One task per leg does this and passes every
//! event on to the dialing session.

use super::progress;
use super::{Call, Session, http_method, resolve, voice_params};
use crate::call::{CallCommand, CallEvent, EventKind};
use crate::markup::twiml::{DialNoun, LegCallbacks};
use tokio::sync::mpsc;

/// What a leg's noun asked for.
pub(super) struct LegWishes {
    callbacks: Option<LegCallbacks>,
    send_digits: Option<String>,
}

impl LegWishes {
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
            DialNoun::Sip { callbacks, .. } | DialNoun::Client { callbacks, .. } => Self {
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
    /// asked (`wishes`, URLs relative to `base`), and passes its events on to `session`.
    pub(super) fn follow_leg(
        &self,
        leg: Call,
        wishes: LegWishes,
        base: &str,
        mut events: mpsc::Receiver<CallEvent>,
        session: mpsc::Sender<CallEvent>,
    ) {
        // The leg's parameters as its callbacks carry them.
        let wish = wishes.callbacks.as_ref().and_then(|cb| {
            let mut params = voice_params(&self.account, &leg, "");
            params.push(("ParentCallSid".into(), self.call.sid.clone()));
            progress::wish(
                &self.account,
                &leg.sid,
                cb.status_callback
                    .as_deref()
                    .and_then(|u| resolve(base, u).ok()),
                http_method(cb.status_callback_method),
                cb.status_callback_event.clone(),
                params,
                false,
                &self.app.flavor,
            )
        });
        let apps = self.apps.clone();
        self.apps.sessions.spawn(async move {
            let mut progress = match wish {
                Some(wish) => Some(apps.subscriptions.subscribe(wish).await),
                None => None,
            };
            while let Some(event) = events.recv().await {
                if let (EventKind::Answered { .. }, Some(digits)) =
                    (&event.kind, &wishes.send_digits)
                {
                    let send = CallCommand::SendDigits(digits.clone());
                    let _ = apps.control.command(&leg.sid, send).await;
                }
                if let Some(progress) = &mut progress {
                    progress.on_event(&event).await;
                }
                apps.subject_event(&event).await;
                // The session may have stopped listening (it moved on); the leg is followed to
                // its end all the same.
                let _ = session.send(event).await;
            }
            apps.release_subjects(&leg.sid);
        });
    }
}
