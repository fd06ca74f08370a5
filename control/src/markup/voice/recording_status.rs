//! Recording status callbacks (`RecordingStatusCallback`: `in-progress`, `completed`,
//! `absent`): the Twilio renderer of a recording's subscription. A recording started by
//! `<Record>`, `<Dial record>`, `Record=true` or the Recordings API subscribes its call's
//! events with the recording's SID; its `recording-started` and `recording-saved` events make
//! the callbacks, live or — for a recording the restart repaired and saved — rebuilt from the
//! stored events.

use super::{Dialect, RecordingCallback, recording_source};
use crate::infra::accounts::Account;
use crate::infra::webhook::request::WebhookRequest;
use crate::services::subscriptions::{
    History, Hook, Milestone, MilestoneEvent, NewSubscription, Renderer,
};
use serde::{Deserialize, Serialize};

pub(crate) const RENDERER: &str = "twilio-recording";

#[derive(Debug, Serialize, Deserialize)]
struct Context {
    recording: String,
    /// `AccountSid`, `CallSid`, `RecordingSid`, `RecordingUrl`.
    params: Vec<(String, String)>,
    /// Of `in-progress completed absent`.
    events: Vec<String>,
    source: String,
    track: String,
    /// Whose callbacks (the parameters are kept presented already).
    #[serde(default)]
    dialect: Dialect,
}

/// The subscription of recording `sid` of `call` that `callback` asks for.
pub(super) fn subscription_request(
    account: &Account,
    call: &str,
    sid: &str,
    url: String,
    callback: RecordingCallback,
    dialect: &Dialect,
    conference: Option<&str>,
) -> Option<NewSubscription> {
    // A conference's recording is the conference's (its events come through the call of the
    // participant that started it, which the subscription follows).
    let (key, owner) = match conference {
        Some(c) => ("ConferenceSid", c),
        None => ("CallSid", call),
    };
    let params = [
        ("AccountSid", account.api_sid()),
        (key, owner),
        ("RecordingSid", sid),
        ("RecordingUrl", &url),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let context = Context {
        recording: sid.to_owned(),
        params: dialect.present(account, &params),
        events: callback.events,
        source: recording_source(callback.origin).to_owned(),
        track: callback.track.to_owned(),
        dialect: dialect.clone(),
    };
    let hook = (callback.url, callback.method);
    NewSubscription::new(call, &account.sid, RENDERER, hook, &context)
}

pub(crate) struct TwilioRecordingStatus;

impl Renderer for TwilioRecordingStatus {
    fn render(
        &self,
        hook: &Hook<'_>,
        _history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest> {
        let Context {
            recording,
            mut params,
            events,
            source,
            track,
            dialect,
        } = hook.context(RENDERER)?;
        let (status, extra) = match &milestone_event.milestone {
            Milestone::RecordingStarted { recording: r } if *r == recording => {
                ("in-progress", Vec::new())
            }
            Milestone::RecordingSaved {
                recording: r,
                duration_ms,
                channels,
                error,
            } if *r == recording => {
                let started = milestone_event.at.saturating_sub(*duration_ms as i64);
                let saved = vec![
                    ("RecordingDuration", (duration_ms / 1000).to_string()),
                    ("RecordingChannels", channels.to_string()),
                    ("RecordingStartTime", dialect.timestamp(started)),
                    (
                        "ErrorCode",
                        if error.is_some() { "16101" } else { "" }.to_owned(),
                    ),
                ];
                let status = if error.is_some() {
                    "absent"
                } else {
                    "completed"
                };
                (status, saved)
            }
            _ => return None,
        };
        if !events.iter().any(|e| e == status) {
            return None;
        }
        params.extend(
            [
                ("RecordingStatus", status.to_owned()),
                ("RecordingSource", source),
                ("RecordingTrack", track),
            ]
            .into_iter()
            .chain(extra)
            .map(|(k, v)| (k.to_owned(), v)),
        );
        Some(dialect.signed(hook.url, hook.method, &params))
    }

    /// Its recording saved (or given up): nothing more to report.
    fn is_last(&self, context: &str, milestone_event: &MilestoneEvent) -> bool {
        let Ok(Context { recording, .. }) = serde_json::from_str(context) else {
            return true;
        };
        matches!(&milestone_event.milestone, Milestone::RecordingSaved { recording: r, .. } if *r == recording)
    }
}
