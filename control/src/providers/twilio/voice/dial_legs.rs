//! A `<Dial>`'s child legs as their nouns ask: `<Number sendDigits>` sends DTMF once the leg
//! answers, and a noun's `statusCallback` hears the leg's `initiated`, `ringing`, `answered`
//! and `completed` (as picked by `statusCallbackEvent`) with the leg's own CallSid, its
//! ParentCallSid and Direction `outbound-dial`. One task per leg does this and passes every
//! event on to the dialing session.

use super::progress::{Progress, completion};
use super::{Call, Session, http_method, resolve, voice_params};
use crate::accounts::HttpMethod;
use crate::call::{CallCommand, CallEvent, EventKind};
use crate::providers::twilio::twiml::{DialNoun, LegCallbacks};
use std::time::Instant;
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
        let mut progress = match &wishes.callbacks {
            Some(cb) => Progress::new(
                cb.status_callback
                    .as_deref()
                    .and_then(|u| resolve(base, u).ok()),
                http_method(cb.status_callback_method),
                cb.status_callback_event.clone(),
            ),
            None => Progress::new(None, HttpMethod::Post, Vec::new()),
        };
        let (apps, account, parent) = (
            self.apps.clone(),
            self.account.clone(),
            self.call.sid.clone(),
        );
        self.apps.sessions.spawn(async move {
            // The leg's parameters as its callback carries them.
            let params = |status: &str, extra: Vec<(String, String)>| {
                let mut p = voice_params(&account, &leg, status);
                p.push(("ParentCallSid".into(), parent.clone()));
                p.extend(extra);
                p
            };
            let (outbox, sid) = (&apps.outbox, &leg.sid);
            progress
                .report(outbox, &account.sid, sid, "initiated", || {
                    params("initiated", Vec::new())
                })
                .await;
            let mut answered_at = None;
            while let Some(event) = events.recv().await {
                match &event.kind {
                    EventKind::Ringing => {
                        progress
                            .report(outbox, &account.sid, sid, "ringing", || {
                                params("ringing", Vec::new())
                            })
                            .await
                    }
                    EventKind::Answered => {
                        answered_at = Some(Instant::now());
                        if let Some(digits) = &wishes.send_digits {
                            let send = CallCommand::SendDigits(digits.clone());
                            let _ = apps.control.command(sid, send).await;
                        }
                        progress
                            .report(outbox, &account.sid, sid, "answered", || {
                                params("in-progress", Vec::new())
                            })
                            .await;
                    }
                    EventKind::Hangup {
                        status, sip_code, ..
                    } => {
                        let extra = completion(*status, *sip_code, answered_at);
                        progress
                            .report(outbox, &account.sid, sid, "completed", || {
                                params(status.as_str(), extra)
                            })
                            .await;
                    }
                    _ => {}
                }
                // The session may have stopped listening (it moved on); the leg is followed to
                // its end all the same.
                let _ = session.send(event).await;
            }
        });
    }
}
