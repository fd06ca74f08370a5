//! Stream status callbacks (`<Stream statusCallback>`, the Streams resource's
//! `StatusCallback`: `stream-started`, `stream-error`, `stream-stopped`): the Twilio renderer
//! of a stream's subscription. The stream subscribes its call's events with its SID before it
//! connects; the streams report what happens to it into the call's stored events, and those
//! make the callbacks — live, or after a crash rebuilt from the stored events, where the
//! call's end stands for the `stream-stopped` the stream could not report.

use super::Dialect;
use super::streams::twilio_code;
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::webhook::request::WebhookRequest;
use crate::services::stream::Failure;
use crate::services::subscriptions::{
    History, Hook, Milestone, MilestoneEvent, NewSubscription, Renderer,
};
use serde::{Deserialize, Serialize};

pub(crate) const RENDERER: &str = "twilio-stream";

#[derive(Debug, Serialize, Deserialize)]
struct Context {
    stream: String,
    /// `AccountSid`, `CallSid`, `StreamSid`, `StreamName`, presented in the dialect.
    params: Vec<(String, String)>,
    dialect: Dialect,
}

/// The subscription of stream `sid` (named `name`) of `call` whose callbacks go to `url`.
pub(super) fn subscription_request(
    account: &Account,
    call: &str,
    sid: &str,
    name: Option<&str>,
    (url, method): (String, HttpMethod),
    dialect: &Dialect,
) -> Option<NewSubscription> {
    let params = [
        ("AccountSid", account.api_sid()),
        ("CallSid", call),
        ("StreamSid", sid),
        ("StreamName", name.unwrap_or(sid)),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let context = Context {
        stream: sid.to_owned(),
        params: dialect.present(account, &params),
        dialect: dialect.clone(),
    };
    NewSubscription::new(call, &account.sid, RENDERER, (url, method), &context)
}

pub(crate) struct TwilioStreamStatus;

impl Renderer for TwilioStreamStatus {
    fn render(
        &self,
        hook: &Hook<'_>,
        history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest> {
        let Context {
            stream,
            mut params,
            dialect,
        } = hook.context(RENDERER)?;
        let mine = milestone_event.milestone.subject() == Some(stream.as_str());
        let (event, error) = match &milestone_event.milestone {
            Milestone::StreamStarted { .. } if mine => ("stream-started", None),
            Milestone::StreamFailed {
                failure, detail, ..
            } if mine => {
                let code = Failure::from_name(failure).map_or(31900, twilio_code);
                ("stream-error", Some(format!("{code}: {detail}")))
            }
            Milestone::StreamStopped { .. } if mine => ("stream-stopped", None),
            // The call ended before its stream could say it stopped (a crash, or the stream
            // was still closing): a stream that had reported anything stops with it.
            Milestone::Ended { .. } if history.sent > 0 => ("stream-stopped", None),
            _ => return None,
        };
        params.push(("StreamEvent".into(), event.into()));
        if let Some(error) = error {
            params.push(("StreamError".into(), error));
        }
        params.push((
            "Timestamp".into(),
            crate::services::stream::iso8601(milestone_event.at),
        ));
        Some(dialect.signed(hook.url, hook.method, &params))
    }

    /// Stopped, failed before it connected, or its call ended.
    fn is_last(&self, context: &str, milestone_event: &MilestoneEvent) -> bool {
        let Ok(Context { stream, .. }) = serde_json::from_str(context) else {
            return true;
        };
        match &milestone_event.milestone {
            Milestone::StreamStopped { stream: s } => *s == stream,
            Milestone::StreamFailed {
                stream: s, started, ..
            } => *s == stream && !started,
            Milestone::Ended { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::store::CallStatus;

    fn milestone_event(seq: i64, milestone: Milestone) -> MilestoneEvent {
        MilestoneEvent {
            seq,
            at: 1_700_000_000_000 + seq,
            milestone,
        }
    }

    #[test]
    fn a_streams_events_and_its_calls_end_make_its_callbacks() {
        let account = Account::for_test("AC1");
        let asked = subscription_request(
            &account,
            "CA1",
            "MZ1",
            Some("bot"),
            ("http://app/streams".into(), HttpMethod::Post),
            &Dialect::Twilio,
        )
        .unwrap();
        let hook = Hook {
            subject: "CA1",
            url: &asked.url,
            method: asked.method,
            context: &asked.context,
        };
        let r = TwilioStreamStatus;
        let history = |sent| History {
            answered_at: None,
            sent,
        };
        let stream = |s: &str| s.to_owned();

        let started = milestone_event(
            3,
            Milestone::StreamStarted {
                stream: stream("MZ1"),
            },
        );
        let req = r.render(&hook, &history(0), &started).unwrap();
        assert_eq!(
            req.form_param("StreamEvent").as_deref(),
            Some("stream-started")
        );
        assert_eq!(req.form_param("StreamSid").as_deref(), Some("MZ1"));
        assert_eq!(req.form_param("StreamName").as_deref(), Some("bot"));
        assert_eq!(req.form_param("CallSid").as_deref(), Some("CA1"));
        assert!(!r.is_last(&asked.context, &started));

        // Another stream of the call is not this one's.
        let other = milestone_event(
            4,
            Milestone::StreamStopped {
                stream: stream("MZ2"),
            },
        );
        assert!(r.render(&hook, &history(1), &other).is_none());
        assert!(!r.is_last(&asked.context, &other));

        let failed = milestone_event(
            5,
            Milestone::StreamFailed {
                stream: stream("MZ1"),
                failure: Failure::BrokenPipe.name(),
                detail: "reset".into(),
                started: true,
            },
        );
        let req = r.render(&hook, &history(1), &failed).unwrap();
        assert_eq!(
            req.form_param("StreamEvent").as_deref(),
            Some("stream-error")
        );
        assert_eq!(
            req.form_param("StreamError").as_deref(),
            Some("31903: reset")
        );
        assert!(!r.is_last(&asked.context, &failed), "its stop follows");

        let stopped = milestone_event(
            6,
            Milestone::StreamStopped {
                stream: stream("MZ1"),
            },
        );
        let req = r.render(&hook, &history(2), &stopped).unwrap();
        assert_eq!(
            req.form_param("StreamEvent").as_deref(),
            Some("stream-stopped")
        );
        assert!(r.is_last(&asked.context, &stopped));

        // A stream that never connected fails once and is done.
        let refused = Milestone::StreamFailed {
            stream: stream("MZ1"),
            failure: Failure::Refused.name(),
            detail: "refused".into(),
            started: false,
        };
        assert!(r.is_last(&asked.context, &milestone_event(3, refused)));

        // The call's end stops a stream that reported, and ends one that never did quietly.
        let ended = milestone_event(
            9,
            Milestone::Ended {
                status: CallStatus::Failed,
                sip_code: None,
                by: None,
                cause: None,
                quality: None,
            },
        );
        let req = r.render(&hook, &history(1), &ended).unwrap();
        assert_eq!(
            req.form_param("StreamEvent").as_deref(),
            Some("stream-stopped")
        );
        assert!(r.render(&hook, &history(0), &ended).is_none());
        assert!(r.is_last(&asked.context, &ended));
    }
}
