//! The subscriptions that report one recording each (Twilio's `RecordingStatusCallback`,
//! Telnyx's `call.recording.saved`): made before the recording starts, fed the call's
//! recording events until the recording is saved. A recording outlives the call's own
//! subscription (a call's recording is saved after its hang-up), so it has its own.

use super::subscriptions::Follower;
use crate::call::{CallEvent, EventKind};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct RecordingFollowers {
    /// By recording id, until the recording is saved or its call is let go.
    followers: Mutex<HashMap<String, Follower>>,
}

impl RecordingFollowers {
    /// Follows recording `recording` (of the follower's call).
    pub fn add(&self, recording: &str, follower: Follower) {
        self.followers
            .lock()
            .expect("not poisoned")
            .insert(recording.to_owned(), follower);
    }

    /// Stops following a recording that did not start.
    pub fn forget(&self, recording: &str) {
        self.followers
            .lock()
            .expect("not poisoned")
            .remove(recording);
    }

    /// Hands one of a call's events to the subscription of the recording it is about.
    pub async fn on_event(&self, event: &CallEvent) {
        let (EventKind::RecordingStarted { recording }
        | EventKind::RecordingSaved { recording, .. }) = &event.kind
        else {
            return;
        };
        let follower = (self.followers.lock().expect("not poisoned")).remove(recording);
        if let Some(mut follower) = follower {
            follower.on_event(event).await;
            if !follower.done() {
                self.add(recording, follower);
            }
        }
    }

    /// Lets go of the subscriptions of a call no longer followed (a recording never saved,
    /// or whose start failed): the map holds live calls' only. What they still owe is made
    /// from the stored events at the next start.
    pub fn release(&self, call: &str) {
        self.followers
            .lock()
            .expect("not poisoned")
            .retain(|_, f| f.call() != call);
    }
}
