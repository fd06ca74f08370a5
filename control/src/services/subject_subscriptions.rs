//! The subscriptions that report one thing of a call each — a recording (Twilio's
//! `RecordingStatusCallback`, Telnyx's `call.recording.saved`), a media stream (Twilio's
//! stream status callbacks): made before the thing starts, fed the call's events about it
//! (and the call's end) until their last. Such a thing can outlive the call's own
//! subscription (a call's recording is saved after its hang-up), so it has its own.

use super::subscriptions::{LiveSubscription, Milestone, MilestoneEvent};
use crate::call::CallEvent;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct SubjectSubscriptions {
    /// By the id of what they report, until their last event or until their call is let go.
    subscriptions: Mutex<HashMap<String, LiveSubscription>>,
}

impl SubjectSubscriptions {
    /// Follows `subject` (a recording's or stream's id, of the subscription's call).
    pub fn add(&self, subject: &str, subscription: LiveSubscription) {
        self.map().insert(subject.to_owned(), subscription);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveSubscription>> {
        self.subscriptions.lock().expect("not poisoned")
    }

    /// Stops following something that did not start.
    pub fn forget(&self, subject: &str) {
        self.map().remove(subject);
    }

    /// Hands one of a call's events to the subscription of what it is about; the call's end
    /// to each of the call's.
    pub async fn on_event(&self, event: &CallEvent) {
        let Some(milestone_event) = MilestoneEvent::of_event(event) else {
            return;
        };
        let subjects: Vec<String> = match (
            &milestone_event.milestone,
            milestone_event.milestone.subject(),
        ) {
            (_, Some(subject)) => vec![subject.to_owned()],
            (Milestone::Ended { .. }, None) => (self.map().iter())
                .filter(|(_, f)| f.call() == event.call)
                .map(|(s, _)| s.clone())
                .collect(),
            _ => return,
        };
        for subject in subjects {
            let subscription = self.map().remove(&subject);
            if let Some(mut subscription) = subscription {
                subscription.on_event(event).await;
                if !subscription.done() {
                    self.add(&subject, subscription);
                }
            }
        }
    }

    /// Lets go of the subscriptions of a call no longer followed (a recording never saved,
    /// or whose start failed): the map holds live calls' only. What they still owe is made
    /// from the stored events at the next start.
    pub fn release(&self, call: &str) {
        self.map().retain(|_, f| f.call() != call);
    }
}
