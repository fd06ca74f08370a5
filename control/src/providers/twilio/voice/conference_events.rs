//! `<Conference statusCallback>`: the first participant to join with a `statusCallback` sets
//! where the conference reports (as on Twilio); its `statusCallbackEvent` list picks the
//! events — `start`, `end`, `join`, `leave`. Every participant's session reports what it sees
//! of its own participation; the conference-wide events go out once. The requests go through
//! the durable outbox, in order per conference.

use super::Session;
use crate::accounts::HttpMethod;
use crate::call::{EventKind, now_ms};
use crate::providers::twilio::twiml::ConferenceNoun;
use std::collections::HashMap;
use std::sync::Mutex;

/// Where a conference reports, and what it has reported.
struct Hook {
    url: String,
    method: HttpMethod,
    events: Vec<String>,
    sequence: u32,
    started: bool,
}

/// The conferences that report, by SID.
#[derive(Default)]
pub(super) struct ConferenceHooks {
    hooks: Mutex<HashMap<String, Hook>>,
}

/// What a participant's session remembers of the `<Conference>` it joined.
#[derive(Debug, Clone)]
pub(super) struct Participation {
    pub noun: ConferenceNoun,
}

impl ConferenceHooks {
    /// The next request's `SequenceNumber` for `event` of `conference`, if it reports it.
    /// `start` is reported once; `end` once, and the conference is forgotten.
    fn next(&self, conference: &str, event: &str) -> Option<(String, HttpMethod, u32)> {
        let mut hooks = self.hooks.lock().expect("not poisoned");
        let hook = hooks.get_mut(conference)?;
        let repeated = match event {
            "start" => std::mem::replace(&mut hook.started, true),
            _ => false,
        };
        let wanted = !repeated && hook.events.iter().any(|e| e == event);
        let out = wanted.then(|| {
            hook.sequence += 1;
            (hook.url.clone(), hook.method, hook.sequence)
        });
        if event == "end" {
            hooks.remove(conference);
        }
        out
    }

    /// The first participant with a `statusCallback` sets the conference's.
    fn register(&self, conference: &str, noun: &ConferenceNoun) {
        let Some(url) = &noun.status_callback else {
            return;
        };
        self.hooks
            .lock()
            .expect("not poisoned")
            .entry(conference.to_owned())
            .or_insert_with(|| Hook {
                url: url.clone(),
                method: super::http_method(noun.status_callback_method),
                events: noun.status_callback_event.clone(),
                sequence: 0,
                started: false,
            });
    }
}

impl Session {
    /// Reports a conference event of this call, if its conference asked for it.
    pub(super) async fn conference_event(&mut self, kind: &EventKind) {
        let Some(part) = self.conference.as_ref() else {
            return;
        };
        let hooks = &self.apps.conference_hooks;
        let (sid, event, extra): (String, &str, Vec<(&str, String)>) = match kind {
            EventKind::ConferenceJoined { conference, .. } => {
                hooks.register(conference, &part.noun);
                (conference.clone(), "join", Vec::new())
            }
            EventKind::ConferenceLeft { conference, .. } => {
                (conference.clone(), "leave", Vec::new())
            }
            // The call whose arrival started it reports it, after its join, as Twilio
            // orders them.
            EventKind::ConferenceStarted { conference, by } if *by == self.call.sid => {
                (conference.clone(), "start", Vec::new())
            }
            EventKind::ConferenceEnded {
                conference,
                reason,
                ended_by,
            } => (
                conference.clone(),
                "end",
                vec![
                    ("ReasonConferenceEnded", reason.to_string()),
                    (
                        "CallSidEndingConference",
                        ended_by.clone().unwrap_or_default(),
                    ),
                ],
            ),
            _ => return,
        };
        let Some((url, method, sequence)) = hooks.next(&sid, event) else {
            return;
        };
        let noun = &part.noun;
        let mut params: Vec<(String, String)> = vec![
            ("ConferenceSid".into(), sid.clone()),
            ("FriendlyName".into(), noun.name.clone()),
            ("AccountSid".into(), self.account.api_sid().to_owned()),
            ("Timestamp".into(), self.app.flavor.timestamp(now_ms())),
            ("SequenceNumber".into(), sequence.to_string()),
        ];
        let name = match event {
            "start" | "end" => format!("conference-{event}"),
            _ => {
                let participant = [
                    ("CallSid", self.call.sid.clone()),
                    ("Muted", noun.muted.to_string()),
                    ("Hold", "false".to_owned()),
                    ("Coaching", "false".to_owned()),
                    (
                        "EndConferenceOnExit",
                        noun.end_conference_on_exit.to_string(),
                    ),
                    (
                        "StartConferenceOnEnter",
                        noun.start_conference_on_enter.to_string(),
                    ),
                ];
                params.extend(participant.map(|(k, v)| (k.to_owned(), v)));
                if let Some(label) = &noun.participant_label {
                    params.push(("ParticipantLabel".into(), label.clone()));
                }
                format!("participant-{event}")
            }
        };
        params.push(("StatusCallbackEvent".into(), name));
        params.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        // Keyed by the conference: its reports arrive in order, whichever call sends them.
        self.apps
            .outbox
            .send(
                &self.account.sid,
                &sid,
                (self.app.flavor).request(&self.account, &url, method, &params),
            )
            .await;
    }
}
