//! A `<Dial>`'s child legs as their nouns ask: `<Number sendDigits>` sends DTMF once the leg
//! answers, and a noun's `statusCallback` hears the leg's `initiated`, `ringing`, `answered`
//! and `completed` (as picked by `statusCallbackEvent`) with the leg's own CallSid, its
//! ParentCallSid and Direction `outbound-dial`. One task per leg does this and passes every
//! event on to the dialing session.

use super::{Call, Session, http_method, progress_params, resolve, voice_params};
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
        let callback = wishes.callbacks.and_then(|cb| {
            let url = resolve(base, cb.status_callback.as_deref()?).ok()?;
            Some((
                url,
                http_method(cb.status_callback_method),
                cb.status_callback_event,
            ))
        });
        let (apps, account, parent) = (
            self.apps.clone(),
            self.account.clone(),
            self.call.sid.clone(),
        );
        tokio::spawn(async move {
            let mut sequence = 0;
            let mut answered_at = None;
            let mut report = async |event: &str, status: &str, extra: Vec<(String, String)>| {
                let Some((url, method, wanted)) = &callback else {
                    return;
                };
                if !wanted.iter().any(|e| e == event) {
                    return;
                }
                let mut params = voice_params(&account, &leg, status);
                params.push(("ParentCallSid".into(), parent.clone()));
                params.extend(progress_params(sequence));
                params.extend(extra);
                sequence += 1;
                apps.outbox
                    .send(&account.sid, &leg.sid, url, *method, params)
                    .await;
            };
            report("initiated", "initiated", Vec::new()).await;
            while let Some(event) = events.recv().await {
                match &event.kind {
                    EventKind::Ringing => report("ringing", "ringing", Vec::new()).await,
                    EventKind::Answered => {
                        answered_at = Some(Instant::now());
                        if let Some(digits) = &wishes.send_digits {
                            let send = CallCommand::SendDigits(digits.clone());
                            let _ = apps.control.command(&leg.sid, send).await;
                        }
                        report("answered", "in-progress", Vec::new()).await;
                    }
                    EventKind::Hangup {
                        status, sip_code, ..
                    } => {
                        let seconds = answered_at.map_or(0, |t: Instant| t.elapsed().as_secs());
                        let extra = vec![
                            ("CallDuration".into(), seconds.to_string()),
                            (
                                "SipResponseCode".into(),
                                sip_code.map(|c| c.to_string()).unwrap_or_default(),
                            ),
                        ];
                        report("completed", status.as_str(), extra).await;
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
