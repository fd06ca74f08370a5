//! `<Conference statusCallback>`: the first participant to join with a `statusCallback` sets
//! where the conference reports (as on Twilio); its `statusCallbackEvent` list picks the
//! events — `start`, `end`, `join`, `leave`, `announcement`. The conference's own events (who joined and left,
//! its start and end) are stored by the call core under its SID; a subscription on the
//! conference renders them, numbered by `SequenceNumber`. Every participant's session that
//! sees one of them catches the subscription up from the store, so each is reported once, in
//! order, whoever sees it first; a call visiting the room from another node subscribes it
//! there the same way, and the room's node catches it up as its visiting leg sees events.
//! After a crash the restart reports what was left, and closes the conference with its
//! participants' leaves and its end.

use super::{Dialect, Session};
use crate::call::{EventKind, Participant};
use crate::infra::accounts::Account;
use crate::infra::webhook::request::WebhookRequest;
use crate::markup::twiml::ConferenceNoun;
use crate::services::subscriptions::{
    History, Hook, Milestone, MilestoneEvent, NewSubscription, Renderer, conference_closing,
    visit_after,
};
use serde::{Deserialize, Serialize};
use tracing::warn;

pub(crate) const RENDERER: &str = "twilio-conference";

/// This node's side of conferences' reports: the reports themselves are stored subscriptions
/// of the conferences, caught up by whoever sees an event on the node that holds the room.
#[derive(Default)]
pub(super) struct ConferenceHooks {
    /// Held while a participant's session subscribes its conference, so that two joining at
    /// once subscribe it once.
    registering: tokio::sync::Mutex<()>,
}

/// What a participant's session remembers of the `<Conference>` it joined.
#[derive(Debug, Clone)]
pub(super) struct Participation {
    pub noun: ConferenceNoun,
    /// The conference's SID, once joined.
    pub sid: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Context {
    /// The room's name as the application gave it (`FriendlyName`).
    name: String,
    account_sid: String,
    /// Of `start end join leave`.
    events: Vec<String>,
    dialect: Dialect,
}

/// The subscription of conference `sid` that `noun` (its first participant with a
/// `statusCallback`) asks for.
fn subscription_request(
    account: &Account,
    sid: &str,
    noun: &ConferenceNoun,
    dialect: &Dialect,
) -> Option<NewSubscription> {
    let context = Context {
        name: noun.name.clone(),
        account_sid: account.api_sid().to_owned(),
        events: noun.status_callback_event.clone(),
        dialect: dialect.clone(),
    };
    let method = super::http_method(noun.status_callback_method);
    let url = noun.status_callback.clone()?;
    NewSubscription::new(sid, &account.sid, RENDERER, (url, method), &context)
}

pub(crate) struct TwilioConference;

/// Twilio's `StatusCallbackEvent` for a conference event, and what it adds.
fn event(milestone: &Milestone) -> Option<(&'static str, Vec<(&'static str, String)>)> {
    let participant = |p: &Participant| {
        let mut params = vec![
            ("CallSid", p.call.clone()),
            ("Muted", p.muted.to_string()),
            ("Hold", p.held.to_string()),
            ("Coaching", p.coaching.is_some().to_string()),
            ("EndConferenceOnExit", p.end_on_exit.to_string()),
            ("StartConferenceOnEnter", p.start_on_enter.to_string()),
        ];
        if let Some(label) = &p.label {
            params.push(("ParticipantLabel", label.clone()));
        }
        if let Some(coached) = &p.coaching {
            params.push(("CallSidToCoach", coached.clone()));
        }
        params
    };
    let ended = |reason: &str, by: Option<&str>| {
        vec![
            ("ReasonConferenceEnded", reason.to_owned()),
            ("CallSidEndingConference", by.unwrap_or_default().to_owned()),
        ]
    };
    Some(match milestone {
        Milestone::ParticipantJoined(p) => ("participant-join", participant(p)),
        Milestone::ParticipantLeft(p) => ("participant-leave", participant(p)),
        Milestone::ConferenceStarted { .. } => ("conference-start", Vec::new()),
        Milestone::ConferenceEnded { reason, ended_by } => {
            ("conference-end", ended(reason, ended_by.as_deref()))
        }
        // The conference ended with its node: its participants' calls were cut.
        Milestone::Ended { .. } => ("conference-end", ended("last-participant-left", None)),
        Milestone::Announcement { failed, call } => (
            if *failed {
                "announcement-fail"
            } else {
                "announcement-end"
            },
            call.iter().map(|c| ("CallSid", c.clone())).collect(),
        ),
        _ => return None,
    })
}

impl Renderer for TwilioConference {
    fn render(
        &self,
        hook: &Hook<'_>,
        history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest> {
        let Context {
            name,
            account_sid,
            events,
            dialect,
        } = hook.context(RENDERER)?;
        let (event, extra) = event(&milestone_event.milestone)?;
        // `conference-start` is asked for as `start`, `participant-join` as `join`,
        // `announcement-end` as `announcement`.
        let asked = match event.split_once('-') {
            Some(("announcement", _)) => "announcement",
            _ => event.rsplit('-').next().unwrap_or(event),
        };
        if !events.iter().any(|e| e == asked) {
            return None;
        }
        let mut params: Vec<(String, String)> = [
            ("ConferenceSid", hook.subject.to_owned()),
            ("FriendlyName", name),
            ("AccountSid", account_sid),
            ("Timestamp", dialect.timestamp(milestone_event.at)),
            ("SequenceNumber", (history.sent + 1).to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        params.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        params.push(("StatusCallbackEvent".into(), event.into()));
        Some(dialect.signed(hook.url, hook.method, &params))
    }

    fn is_last(&self, _context: &str, milestone_event: &MilestoneEvent) -> bool {
        matches!(
            milestone_event.milestone,
            Milestone::ConferenceEnded { .. } | Milestone::Ended { .. }
        )
    }

    /// Its node died with it: those still in leave, then it ends.
    fn closing(&self, _context: &str, stored: &[MilestoneEvent], end: Milestone) -> Vec<Milestone> {
        conference_closing(stored, end)
    }
}

impl ConferenceHooks {
    /// The first participant with a `statusCallback`, wherever its call is, subscribes the
    /// conference to what follows its event `after` (the one before its join).
    async fn register(&self, session: &Session, sid: &str, noun: &ConferenceNoun, after: i64) {
        let _one_at_a_time = self.registering.lock().await;
        let subscriptions = &session.apps.subscriptions;
        match subscriptions.has_subscription(sid, RENDERER).await {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => {
                warn!(error = %e, conference = sid, "cannot learn whether the conference reports: it does not, to this participant");
                return;
            }
        }
        if let Some(asked) = subscription_request(&session.account, sid, noun, &session.app.dialect)
        {
            subscriptions.subscribe_after(asked, after).await;
        }
    }

    /// Reports conference `sid`'s stored events not reported yet, if it reports.
    async fn catch_up(&self, session: &Session, sid: &str) {
        if let Err(e) = session.apps.subscriptions.catch_up_subject(sid).await {
            warn!(error = %e, conference = sid, "cannot report a conference's events yet; the next of its events (or a restart) will");
        }
    }

    /// A call visiting conference `sid` on another node (see [`crate::services::cluster::rooms`]):
    /// its `statusCallback` subscribes the conference, if nobody did, from its join on. The
    /// room's node stores that join (and the start it may cause) on its own time: stored
    /// already, they are reported now; not yet, the room's node reports them as they come.
    pub(super) async fn register_visit(&self, session: &Session, sid: &str, noun: &ConferenceNoun) {
        let stored = session.apps.store.call_events(sid).await;
        let after = match stored {
            Ok(events) => visit_after(&events, &session.call.sid),
            Err(e) => {
                warn!(error = %e, conference = sid, "cannot read the conference's events: it does not report to this participant");
                return;
            }
        };
        self.register(session, sid, noun, after).await;
        self.catch_up(session, sid).await;
    }
}

impl Session {
    /// Reports the conference events this call sees, if its conference asked for them.
    pub(super) async fn conference_event(&mut self, kind: &EventKind) {
        let hooks = &self.apps.conference_hooks;
        let sid = match kind {
            EventKind::ConferenceJoined {
                conference, number, ..
            } => {
                if let Some(part) = &mut self.conference {
                    part.sid = Some(conference.clone());
                }
                if let Some(part) = &self.conference {
                    let after = i64::from(*number) - 1;
                    hooks.register(self, conference, &part.noun, after).await;
                }
                conference
            }
            EventKind::ConferenceLeft { conference, .. }
            | EventKind::ConferenceStarted { conference, .. }
            | EventKind::ConferenceEnded { conference, .. }
            | EventKind::AnnouncementEnded { conference, .. } => conference,
            _ => return,
        };
        hooks.catch_up(self, sid).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::accounts::HttpMethod;
    use crate::infra::store::CallStatus;
    use crate::infra::store::EventRow;

    fn participant(call: &str) -> Participant {
        Participant {
            call: call.into(),
            muted: call == "CA2",
            held: false,
            start_on_enter: true,
            end_on_exit: false,
            label: (call == "CA1").then(|| "agent".into()),
            coaching: None,
        }
    }

    /// A visiting call's subscription takes its own join and what followed, even when the
    /// room's node stored them before the visit read the room's events.
    #[test]
    fn a_visit_reports_from_its_own_join_though_it_was_stored_first() {
        let row = |seq: u32, kind: &str, detail: serde_json::Value| EventRow {
            call_id: "CF1".into(),
            seq,
            at: 1_700_000_000_000,
            kind: kind.into(),
            detail: detail.to_string(),
        };
        let joined = |seq, call: &str| {
            row(
                seq,
                "participant-join",
                serde_json::to_value(participant(call)).unwrap(),
            )
        };
        let started = row(2, "conference-start", serde_json::json!({"by": "CA2"}));
        // The visiting call CA2's join and the start it caused are stored already.
        let events = [joined(0, "CA1"), joined(1, "CA2"), started];
        assert_eq!(visit_after(&events, "CA2"), 0);
        // Not yet: from what follows all that is stored.
        assert_eq!(visit_after(&events[..1], "CA2"), 0);
        assert_eq!(visit_after(&events[..1], "CA3"), 0);
        assert_eq!(visit_after(&[], "CA2"), -1);
        // A call that joined twice reports from its latest join.
        let again = [joined(0, "CA2"), joined(1, "CA1"), joined(2, "CA2")];
        assert_eq!(visit_after(&again, "CA2"), 1);
    }

    #[test]
    fn a_conferences_events_are_reported_as_asked_and_closed_after_a_crash() {
        let context = serde_json::to_string(&Context {
            name: "room".into(),
            account_sid: "AC1".into(),
            events: ["join", "leave", "end"].map(String::from).to_vec(),
            dialect: Dialect::Twilio,
        })
        .unwrap();
        let hook = Hook {
            url: "http://app/conf",
            method: HttpMethod::Post,
            context: &context,
            subject: "CF1",
        };
        let milestone_event = |seq, milestone| MilestoneEvent {
            seq,
            at: 1_700_000_000_000,
            milestone,
        };
        let r = TwilioConference;
        let history = |sent| History {
            answered_at: None,
            sent,
        };
        let join = milestone_event(0, Milestone::ParticipantJoined(participant("CA1")));
        let req = r.render(&hook, &history(0), &join).unwrap();
        assert_eq!(
            req.form_param("StatusCallbackEvent").unwrap(),
            "participant-join"
        );
        assert_eq!(req.form_param("SequenceNumber").unwrap(), "1");
        assert_eq!(req.form_param("ConferenceSid").unwrap(), "CF1");
        assert_eq!(req.form_param("FriendlyName").unwrap(), "room");
        assert_eq!(req.form_param("CallSid").unwrap(), "CA1");
        assert_eq!(req.form_param("ParticipantLabel").unwrap(), "agent");
        assert_eq!(req.form_param("StartConferenceOnEnter").unwrap(), "true");
        // `start` was not asked for.
        let start = milestone_event(1, Milestone::ConferenceStarted { by: "CA2".into() });
        assert!(r.render(&hook, &history(1), &start).is_none());
        let leave = milestone_event(2, Milestone::ParticipantLeft(participant("CA2")));
        let req = r.render(&hook, &history(1), &leave).unwrap();
        assert_eq!(
            req.form_param("StatusCallbackEvent").unwrap(),
            "participant-leave"
        );
        assert_eq!(req.form_param("Muted").unwrap(), "true");
        assert_eq!(req.form_param("SequenceNumber").unwrap(), "2");
        assert!(!r.is_last(&context, &leave));
        let end = Milestone::ConferenceEnded {
            reason: "participant-with-end-conference-on-exit-left".into(),
            ended_by: Some("CA1".into()),
        };
        let req = r
            .render(&hook, &history(2), &milestone_event(3, end.clone()))
            .unwrap();
        assert_eq!(
            req.form_param("StatusCallbackEvent").unwrap(),
            "conference-end"
        );
        assert_eq!(req.form_param("CallSidEndingConference").unwrap(), "CA1");
        assert!(r.is_last(&context, &milestone_event(3, end)));

        // Its node died with CA1 and CA3 in it (CA2 had left): both leave, then it ends.
        let stored = [
            join,
            milestone_event(1, Milestone::ParticipantJoined(participant("CA2"))),
            milestone_event(2, Milestone::ParticipantJoined(participant("CA3"))),
            leave,
        ];
        let crashed = Milestone::Ended {
            status: CallStatus::Failed,
            sip_code: None,
            by: None,
            cause: None,
            quality: None,
        };
        let closing = r.closing(&context, &stored, crashed.clone());
        assert_eq!(
            closing,
            [
                Milestone::ParticipantLeft(participant("CA1")),
                Milestone::ParticipantLeft(participant("CA3")),
                crashed.clone(),
            ]
        );
        let req = r
            .render(&hook, &history(4), &milestone_event(9, crashed))
            .unwrap();
        assert_eq!(
            req.form_param("ReasonConferenceEnded").unwrap(),
            "last-participant-left"
        );
    }
}
