//! The `<Enqueue action>` of a call that ends while it waits in a queue, or while it talks
//! with the call that dequeued it: the Twilio renderer of a subscription the session makes as
//! the call joins the queue. While the call lives the session requests the action itself (its
//! TwiML runs next) and closes the subscription; if the call ends first, its hang-up makes the
//! request — live, or after a crash from the stored events — with the `QueueResult` the
//! session last stored (`hangup` while queued, `bridged` once dequeued).

use super::{Dialect, set};
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::webhook::request::WebhookRequest;
use crate::services::subscriptions::{
    History, Hook, Milestone, MilestoneEvent, NewSubscription, Renderer,
};
use serde::{Deserialize, Serialize};

pub(crate) const RENDERER: &str = "twilio-queue-result";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Context {
    /// The call's parameters as the action carries them, presented in the dialect.
    params: Vec<(String, String)>,
    queue: String,
    /// `hangup` while the call waits, `bridged` once a `<Dial><Queue>` took it.
    result: String,
    /// When it joined the queue (Unix ms).
    joined_at: i64,
    /// Seconds it waited, once it stopped waiting; until then, the time to its end.
    waited_secs: Option<i64>,
    dialect: Dialect,
}

impl Context {
    /// The call was bridged after `waited_secs` in the queue.
    pub(super) fn bridged(mut self, waited_secs: i64) -> Self {
        self.result = "bridged".into();
        self.waited_secs = Some(waited_secs);
        self
    }

    pub(super) fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The subscription of a call that joined queue `queue` at `joined_at` with an `action`.
pub(super) fn subscription_request(
    account: &Account,
    call: &str,
    (url, method): (String, HttpMethod),
    params: &[(String, String)],
    queue: &str,
    joined_at: i64,
    dialect: &Dialect,
) -> Option<(NewSubscription, Context)> {
    let context = Context {
        params: dialect.present(account, params),
        queue: queue.to_owned(),
        result: "hangup".into(),
        joined_at,
        waited_secs: None,
        dialect: dialect.clone(),
    };
    let asked = NewSubscription::new(call, &account.sid, RENDERER, (url, method), &context)?;
    Some((asked, context))
}

pub(crate) struct TwilioQueueResult;

impl Renderer for TwilioQueueResult {
    fn render(
        &self,
        hook: &Hook<'_>,
        _history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest> {
        let Milestone::Ended { status, .. } = &milestone_event.milestone else {
            return None;
        };
        let Context {
            mut params,
            queue,
            result,
            joined_at,
            waited_secs,
            dialect,
        } = hook.context(RENDERER)?;
        let waited = waited_secs.unwrap_or((milestone_event.at - joined_at).max(0) / 1000);
        set(&mut params, "CallStatus", status.as_str());
        params.extend(
            [
                ("QueueResult", result),
                ("QueueSid", queue),
                ("QueueTime", waited.to_string()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        Some(dialect.signed(hook.url, hook.method, &params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::store::CallStatus;

    #[test]
    fn the_calls_end_requests_the_action_with_what_it_waited_for() {
        let account = Account::for_test("AC1");
        let params = [("CallSid", "CA1"), ("CallStatus", "in-progress")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let (w, context) = subscription_request(
            &account,
            "CA1",
            ("http://app/after".into(), HttpMethod::Post),
            &params,
            "QU1",
            1_000_000,
            &Dialect::Twilio,
        )
        .unwrap();
        let ended = MilestoneEvent {
            seq: 7,
            at: 1_042_500,
            milestone: Milestone::Ended {
                status: CallStatus::Completed,
                sip_code: Some(200),
                by: None,
                cause: None,
                quality: None,
            },
        };
        let render = |context: &str, m: &MilestoneEvent| {
            let hook = Hook {
                subject: "CA1",
                url: &w.url,
                method: w.method,
                context,
            };
            TwilioQueueResult.render(&hook, &History::default(), m)
        };
        // Hung up while queued: 42 s in the queue.
        let r = render(&w.context, &ended).unwrap();
        assert_eq!(r.form_param("QueueResult").as_deref(), Some("hangup"));
        assert_eq!(r.form_param("QueueSid").as_deref(), Some("QU1"));
        assert_eq!(r.form_param("QueueTime").as_deref(), Some("42"));
        assert_eq!(r.form_param("CallStatus").as_deref(), Some("completed"));
        assert_eq!(r.url, "http://app/after");
        // Dequeued after 5 s, then talked: the queue time is the wait's.
        let r = render(&context.bridged(5).json(), &ended).unwrap();
        assert_eq!(r.form_param("QueueResult").as_deref(), Some("bridged"));
        assert_eq!(r.form_param("QueueTime").as_deref(), Some("5"));
        // Nothing else of the call makes it.
        let answered = MilestoneEvent {
            milestone: Milestone::Answered { codec: None },
            ..ended
        };
        assert!(render(&w.context, &answered).is_none());
    }
}
