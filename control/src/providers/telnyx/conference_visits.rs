//! A Call Control leg in a conference whose room another node holds: it sits there through a
//! leg to the room's home bridged with it (see [`crate::services::cluster::rooms`]), so its
//! node hears none of the room's events. The room's home stores them under the conference's
//! SID, as every room's; the leg subscribes the conference with its own webhook fields, and
//! whichever node sees an event catches the subscription up from the store: the leg gets its
//! `conference.participant.joined` and `conference.participant.left` as a leg seated on its
//! own node does, once each. The subscription is made before the visit is placed, so the
//! home finds it when it stores the join.

use super::Telnyx;
use super::events::{LegContext, data};
use super::leg::Leg;
use crate::infra::accounts::HttpMethod;
use crate::infra::webhook::request::WebhookRequest;
use crate::services::subscriptions::{
    History, Hook, Milestone, MilestoneEvent, NewSubscription, Renderer, conference_closing,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::warn;

/// The renderer's registered name.
pub(super) const RENDERER: &str = "telnyx-conference-visit";

/// What the subscription renders with: the leg's webhook fields when it joined.
#[derive(Debug, Serialize, Deserialize)]
struct Context {
    leg: LegContext,
}

/// The subscription of a conference (by its SID) that reports `leg`'s stay in it: made by
/// the rooms before the visit is placed (see [`Visiting::reports`]).
///
/// [`Visiting::reports`]: crate::services::cluster::rooms::Visiting
pub(super) fn reports(leg: &Leg) -> impl Fn(&str) -> Option<NewSubscription> + Sync + use<> {
    let context = Context {
        leg: leg.state.context.clone(),
    };
    let (account, url) = (leg.account.clone(), leg.state.webhook_url.clone());
    move |sid| {
        let url = (url.clone(), HttpMethod::Post);
        NewSubscription::new(sid, &account, RENDERER, url, &context)
    }
}

/// Reports what the room's home stored of the visit before the subscription was read there.
pub(super) async fn catch_up(api: &Telnyx, sid: &str) {
    if let Err(e) = api.parts.subscriptions.catch_up_subject(sid).await {
        warn!(error = %e, conference = sid, "cannot report the conference's events yet; the room's home will");
    }
}

pub(super) struct TelnyxConferenceVisit;

impl Renderer for TelnyxConferenceVisit {
    fn render(
        &self,
        hook: &Hook<'_>,
        _history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest> {
        let Context { leg } = hook.context(RENDERER)?;
        let event_type = match &milestone_event.milestone {
            Milestone::ParticipantJoined(p) if p.call == leg.call => {
                "conference.participant.joined"
            }
            Milestone::ParticipantLeft(p) if p.call == leg.call => "conference.participant.left",
            _ => return None,
        };
        let mut payload = leg.payload();
        let conference = crate::call::ids::sid_as_uuid(hook.subject, "CF");
        payload.insert("conference_id".into(), json!(conference));
        Some(leg.webhook(hook.url, &data(event_type, milestone_event.at, payload)))
    }

    /// Its leave, or the conference's end (which takes everyone out).
    fn is_last(&self, context: &str, milestone_event: &MilestoneEvent) -> bool {
        let call = serde_json::from_str::<Context>(context).map(|c| c.leg.call);
        match &milestone_event.milestone {
            Milestone::ParticipantLeft(p) => call.is_ok_and(|c| c == p.call),
            Milestone::ConferenceEnded { .. } | Milestone::Ended { .. } => true,
            _ => false,
        }
    }

    /// The room's node died: whoever was in leaves.
    fn closing(&self, _context: &str, stored: &[MilestoneEvent], end: Milestone) -> Vec<Milestone> {
        conference_closing(stored, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Participant;

    fn participant(call: &str) -> Participant {
        Participant {
            call: call.into(),
            muted: false,
            held: false,
            start_on_enter: true,
            end_on_exit: false,
            label: None,
            coaching: None,
        }
    }

    /// The visitor's own join and leave, in the leg's shape with the conference's id; other
    /// participants' and the conference's start are not its events.
    #[test]
    fn the_visitors_join_and_leave_in_its_legs_shape() {
        let leg = LegContext {
            call: "CA0123456789abcdef0123456789abcdef".into(),
            session: "CA0123456789abcdef0123456789abcdef".into(),
            connection_id: "1494404757140276705".into(),
            from: "+15550002222".into(),
            to: "+15550001111".into(),
            direction: "outgoing".into(),
            client_state: Some("aGk=".into()),
            start_time: 1_893_456_000_000,
            hangup_cause: None,
            failover_url: None,
            webhook_timeout_secs: None,
            invite_headers: Vec::new(),
            calling_party_type: "pstn".into(),
            offered: None,
        };
        let call = leg.call.clone();
        let context = serde_json::to_string(&Context { leg }).unwrap();
        let hook = Hook {
            subject: "CFfedcba9876543210fedcba9876543210",
            url: "http://app/hooks",
            method: HttpMethod::Post,
            context: &context,
        };
        let render = |milestone: Milestone| {
            let event = MilestoneEvent {
                seq: 1,
                at: 1_893_456_000_250,
                milestone,
            };
            let last = TelnyxConferenceVisit.is_last(&context, &event);
            let request = TelnyxConferenceVisit.render(&hook, &History::default(), &event);
            let body = request.map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap());
            (body, last)
        };
        let (joined, last) = render(Milestone::ParticipantJoined(participant(&call)));
        let joined = joined.unwrap();
        assert!(!last);
        assert_eq!(joined["event_type"], "conference.participant.joined");
        let p = &joined["payload"];
        assert_eq!(p["conference_id"], "fedcba98-7654-3210-fedc-ba9876543210");
        assert_eq!(p["call_control_id"], "v3:ASNFZ4mrze8BI0VniavN7w");
        assert_eq!(p["client_state"], "aGk=");
        assert_eq!(p["connection_id"], "1494404757140276705");
        let (other, last) = render(Milestone::ParticipantJoined(participant("CA2")));
        assert!(other.is_none() && !last);
        let (other, last) = render(Milestone::ParticipantLeft(participant("CA2")));
        assert!(other.is_none() && !last);
        let started = Milestone::ConferenceStarted { by: call.clone() };
        assert_eq!(render(started), (None, false));
        let (left, last) = render(Milestone::ParticipantLeft(participant(&call)));
        assert_eq!(left.unwrap()["event_type"], "conference.participant.left");
        assert!(last);
    }
}
