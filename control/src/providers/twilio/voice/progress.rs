//! Status callbacks (`initiated ringing answered completed`), for a call and for the legs its
//! `<Dial>` places alike: the events asked for go to the callback URL through the durable
//! outbox (written first, delivered in order, retried), numbered by `SequenceNumber`.

use super::rfc2822;
use crate::accounts::HttpMethod;
use crate::store::CallStatus;
use crate::webhook::outbox::Outbox;
use std::time::Instant;

pub(super) struct Progress {
    url: Option<String>,
    method: HttpMethod,
    /// Of `initiated ringing answered completed`.
    events: Vec<String>,
    /// Reports sent so far.
    sequence: u32,
}

impl Progress {
    pub(super) fn new(url: Option<String>, method: HttpMethod, events: Vec<String>) -> Self {
        Self {
            url,
            method,
            events,
            sequence: 0,
        }
    }

    /// Reports `event` of `call` if it was asked for; `params` gives the call's parameters
    /// (its `CallStatus` and what the event adds), made only when they are sent.
    pub(super) async fn report(
        &mut self,
        outbox: &Outbox,
        account: &str,
        call: &str,
        event: &str,
        params: impl FnOnce() -> Vec<(String, String)>,
    ) {
        let Some(url) = &self.url else {
            return;
        };
        if !self.events.iter().any(|e| e == event) {
            return;
        }
        let mut params = params();
        params.extend(
            [
                ("CallbackSource", "call-progress-events".to_owned()),
                ("SequenceNumber", self.sequence.to_string()),
                ("Timestamp", rfc2822(crate::call::now_ms())),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        self.sequence += 1;
        outbox.send(account, call, url, self.method, params).await;
    }
}

/// What the `completed` report adds: `SipResponseCode`, `CallDuration` (seconds since the
/// answer) and, for a completed call, `Duration` (billed minutes, rounded up).
pub(super) fn completion(
    status: CallStatus,
    sip_code: Option<u16>,
    answered_at: Option<Instant>,
) -> Vec<(String, String)> {
    let seconds = answered_at.map_or(0, |t| t.elapsed().as_secs());
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
            seconds.div_ceil(60).max(1).to_string(),
        ));
    }
    extra
}
