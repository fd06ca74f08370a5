//! Status callbacks (`initiated ringing answered completed`), for a call and for the legs its
//! `<Dial>` places alike: the Twilio renderer of the neutral subscriptions stage. A session
//! subscribes with the call's parameters as its requests carry them; each milestone asked for
//! becomes a callback in the durable outbox, numbered by `SequenceNumber` — live, or rebuilt
//! from the stored events after a crash.

use super::{Dialect, set};
use crate::infra::accounts::{Account, HttpMethod};
use crate::infra::store::CallStatus;
use crate::infra::webhook::request::WebhookRequest;
use crate::services::subscriptions::{
    History, Hook, Milestone, MilestoneEvent, NewSubscription, Renderer,
};
use serde::{Deserialize, Serialize};

/// The renderer's registered name, stored with each subscription.
pub(crate) const RENDERER: &str = "twilio-progress";

/// What a status callback subscription keeps.
#[derive(Debug, Serialize, Deserialize)]
struct Context {
    /// The call's request parameters (`CallStatus` is set per callback).
    params: Vec<(String, String)>,
    /// Of `initiated ringing answered completed`.
    events: Vec<String>,
    /// `AnsweredBy` once answered (`MachineDetection` was asked for).
    answered_by: bool,
    /// The detector's verdict and the time it took (ms), once given.
    #[serde(default)]
    verdict: Option<(String, u64)>,
    /// Whose callbacks (the parameters are kept presented already).
    #[serde(default)]
    dialect: Dialect,
}

/// The subscription a call's (or leg's) `StatusCallback` asks for; `None` without a URL.
#[allow(clippy::too_many_arguments)]
pub(super) fn subscription_request(
    account: &Account,
    call: &str,
    url: Option<String>,
    method: HttpMethod,
    events: Vec<String>,
    params: Vec<(String, String)>,
    answered_by: bool,
    dialect: &Dialect,
) -> Option<NewSubscription> {
    let context = Context {
        params: dialect.present(account, &params),
        events,
        answered_by,
        verdict: None,
        dialect: dialect.clone(),
    };
    NewSubscription::new(call, &account.sid, RENDERER, (url?, method), &context)
}

/// The context of a call's status callbacks with the detector's verdict in it.
pub(super) fn with_answered_by(context: &str, by: &str, ms: u64) -> Option<String> {
    let mut c: Context = serde_json::from_str(context).ok()?;
    c.verdict = Some((by.to_owned(), ms));
    serde_json::to_string(&c).ok()
}

pub(crate) struct TwilioProgress;

impl Renderer for TwilioProgress {
    fn render(
        &self,
        hook: &Hook<'_>,
        history: &History,
        milestone_event: &MilestoneEvent,
    ) -> Option<WebhookRequest> {
        let Context {
            mut params,
            events,
            answered_by,
            verdict,
            dialect,
        } = hook.context(RENDERER)?;
        let (event, status, extra) = match &milestone_event.milestone {
            Milestone::Initiated => ("initiated", CallStatus::Initiated, Vec::new()),
            Milestone::Ringing => ("ringing", CallStatus::Ringing, Vec::new()),
            Milestone::Answered { .. } => ("answered", CallStatus::InProgress, Vec::new()),
            Milestone::Ended {
                status, sip_code, ..
            } => {
                let talked = history
                    .answered_at
                    .map(|a| milestone_event.at.saturating_sub(a));
                ("completed", *status, completion(*status, *sip_code, talked))
            }
            _ => return None,
        };
        if !events.iter().any(|e| e == event) {
            return None;
        }
        set(&mut params, "CallStatus", status.as_str());
        if answered_by && history.answered_at.is_some() {
            match verdict {
                Some((by, ms)) => params.extend([
                    ("AnsweredBy".into(), by),
                    ("MachineDetectionDuration".into(), ms.to_string()),
                ]),
                None => params.push(("AnsweredBy".into(), "unknown".into())),
            }
        }
        params.extend(extra);
        params.extend(
            [
                ("CallbackSource", "call-progress-events".to_owned()),
                ("SequenceNumber", history.sent.to_string()),
                ("Timestamp", dialect.timestamp(milestone_event.at)),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        Some(dialect.signed(hook.url, hook.method, &params))
    }
}

/// What the `completed` report adds: `SipResponseCode`, `CallDuration` (seconds since the
/// answer; `talked_ms` is that time) and, for a completed call, `Duration` (billed minutes,
/// rounded up).
fn completion(
    status: CallStatus,
    sip_code: Option<u16>,
    talked_ms: Option<i64>,
) -> Vec<(String, String)> {
    let seconds = talked_ms.map_or(0, |ms| ms.max(0) / 1000);
    let mut extra = vec![
        (
            "SipResponseCode".to_owned(),
            sip_code.map(|c| c.to_string()).unwrap_or_default(),
        ),
        ("CallDuration".to_owned(), seconds.to_string()),
    ];
    if status == CallStatus::Completed {
        extra.push((
            "Duration".to_owned(),
            (seconds as u64).div_ceil(60).max(1).to_string(),
        ));
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milestone_event(seq: i64, at: i64, milestone: Milestone) -> MilestoneEvent {
        MilestoneEvent { seq, at, milestone }
    }

    fn get<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
        p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The parameters of the request the subscription `w` makes of `m`, wherever they are.
    fn render(
        w: &NewSubscription,
        h: &History,
        m: &MilestoneEvent,
    ) -> Option<Vec<(String, String)>> {
        let hook = Hook {
            subject: "CA1",
            url: &w.url,
            method: w.method,
            context: &w.context,
        };
        let request = TwilioProgress.render(&hook, h, m)?;
        Some(match request.method {
            HttpMethod::Post => request.form_params(),
            HttpMethod::Get => {
                let url = url::Url::parse(&request.url).unwrap();
                url.query_pairs().into_owned().collect()
            }
        })
    }

    /// The callbacks a stored subscription renders are those the session sent before the
    /// stage existed: the asked-for events only, CallStatus set, the completion's durations
    /// from the events' own times, AnsweredBy once answered when detection was asked for.
    #[test]
    fn renders_the_asked_for_milestones_from_the_events_alone() {
        let params = vec![
            ("CallSid".to_owned(), "CA1".to_owned()),
            ("CallStatus".to_owned(), String::new()),
        ];
        let all = ["initiated", "ringing", "answered", "completed"].map(String::from);
        let acc = Account::for_test("AC1");
        let w = subscription_request(
            &acc,
            "CA1",
            Some("http://app/status".into()),
            HttpMethod::Post,
            vec!["answered".into(), "completed".into()],
            params.clone(),
            true,
            &Dialect::Twilio,
        )
        .unwrap();
        let none = History::default();
        assert_eq!(
            render(&w, &none, &milestone_event(0, 1_000, Milestone::Ringing)),
            None
        );
        let answered = History {
            answered_at: Some(2_000),
            sent: 0,
        };
        let p = render(
            &w,
            &answered,
            &milestone_event(2, 2_000, Milestone::Answered { codec: None }),
        )
        .unwrap();
        assert_eq!(get(&p, "CallStatus"), Some("in-progress"));
        assert_eq!(get(&p, "AnsweredBy"), Some("unknown"));
        assert_eq!(get(&p, "SequenceNumber"), Some("0"));
        let done = History {
            answered_at: Some(2_000),
            sent: 1,
        };
        let ended = Milestone::Ended {
            status: CallStatus::Completed,
            sip_code: Some(200),
            by: None,
            cause: None,
            quality: None,
        };
        let p = render(&w, &done, &milestone_event(5, 63_999, ended)).unwrap();
        assert_eq!(get(&p, "CallStatus"), Some("completed"));
        assert_eq!(get(&p, "CallDuration"), Some("61"));
        assert_eq!(get(&p, "Duration"), Some("2"));
        assert_eq!(get(&p, "SipResponseCode"), Some("200"));
        assert_eq!(get(&p, "SequenceNumber"), Some("1"));
        assert_eq!(
            get(&p, "Timestamp"),
            Some(crate::markup::rfc2822(63_999).as_str())
        );

        // Unanswered and failed: no Duration, no AnsweredBy.
        let w = subscription_request(
            &acc,
            "CA1",
            Some("http://app/status".into()),
            HttpMethod::Get,
            all.to_vec(),
            params,
            false,
            &Dialect::Twilio,
        )
        .unwrap();
        assert_eq!(w.method, HttpMethod::Get);
        let failed = Milestone::Ended {
            status: CallStatus::Busy,
            sip_code: Some(486),
            by: None,
            cause: None,
            quality: None,
        };
        let p = render(&w, &none, &milestone_event(3, 5_000, failed)).unwrap();
        assert_eq!(get(&p, "CallStatus"), Some("busy"));
        assert_eq!(get(&p, "CallDuration"), Some("0"));
        assert_eq!(get(&p, "Duration"), None);
        assert_eq!(get(&p, "AnsweredBy"), None);
        assert!(
            subscription_request(
                &acc,
                "CA1",
                None,
                HttpMethod::Post,
                all.to_vec(),
                vec![],
                false,
                &Dialect::Twilio,
            )
            .is_none()
        );
    }
}
