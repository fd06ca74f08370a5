//! `<Refer>`: the caller's leg is asked (SIP REFER, RFC 3515) to call the `<Sip>` URI in
//! Switchboard's place — a cold transfer to the caller's own SIP infrastructure. The verb
//! waits for the REFER's answer and the caller's NOTIFYs of its new call, up to their last
//! (or [`WAIT`]), and the `action` hears how it went: `ReferSipResponseCode`, and when a
//! NOTIFY came, `NotifySipResponseCode` and `ReferCallStatus`. A caller that took the
//! transfer and hung up still has its `action` requested (its document is not run: the call
//! is over); without an `action` the document goes on.

use super::{Fetch, Flow, Session, http_method, resolve};
use crate::call::{CallCommand, EventKind};
use crate::markup::twiml::Method;
use std::time::Duration;

/// How long the caller's NOTIFYs are waited for: the subscription a REFER makes lasts about
/// a minute (RFC 3515 §2.4.4), time for the target to ring and answer.
const WAIT: Duration = Duration::from_secs(60);

/// What came of a REFER.
#[derive(Default)]
struct Outcome {
    /// The REFER's final answer (408 when none came).
    answered: Option<u16>,
    /// The last status the caller's NOTIFYs gave of its call to the target.
    notified: Option<u16>,
}

impl Outcome {
    /// `ReferCallStatus`, from the last NOTIFY's status as a call's status reads.
    fn call_status(&self) -> Option<&'static str> {
        Some(match self.notified? {
            200..=299 => "in-progress",
            486 | 600 => "busy",
            // Still ringing when the subscription ended or the wait ran out.
            100..=199 | 408 | 480 | 487 => "no-answer",
            _ => "failed",
        })
    }

    fn params(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Some(code) = self.answered {
            p.push(("ReferSipResponseCode".into(), code.to_string()));
        }
        if let (Some(code), Some(status)) = (self.notified, self.call_status()) {
            p.push(("NotifySipResponseCode".into(), code.to_string()));
            p.push(("ReferCallStatus".into(), status.to_owned()));
        }
        p
    }
}

impl Session {
    pub(super) async fn refer(
        &mut self,
        to: &str,
        action: Option<&str>,
        method: Method,
        base: &str,
    ) -> Result<Option<Fetch>, Flow> {
        self.answer().await?;
        // A URI the core will not put in a Refer-To, or a REFER still in progress: the
        // application's error.
        if let Err(e) = (self.apps.control)
            .command(&self.call.sid, CallCommand::Refer(to.to_owned()))
            .await
        {
            return Err(Flow::Failed(super::AppError::unsupported(format!(
                "<Refer>: {e}"
            ))));
        }
        let alarm = self.set_alarm(WAIT).await?;
        let mut outcome = Outcome::default();
        let waited = loop {
            let event = match self.next_event().await {
                Ok(event) => event,
                Err(flow) => break Err(flow),
            };
            match event.kind {
                EventKind::ReferAnswered { sip_code } => {
                    outcome.answered = Some(sip_code);
                    if sip_code >= 300 {
                        break Ok(());
                    }
                }
                EventKind::ReferProgress { sip_code, last } => {
                    outcome.notified = sip_code.or(outcome.notified);
                    if last {
                        break Ok(());
                    }
                }
                EventKind::Alarm { id } if id == alarm => break Ok(()),
                _ => {}
            }
        };
        let _ = self.command(CallCommand::ClearAlarm).await;
        let fetch = match action {
            Some(url) => Some(Fetch::url(
                resolve(base, url).map_err(Flow::Failed)?,
                http_method(method),
                outcome.params(),
            )),
            None => None,
        };
        match waited {
            Ok(()) => Ok(fetch),
            // The caller took the transfer and left: the action hears of it all the same.
            Err(Flow::Ended) => {
                if let Some(fetch) = fetch
                    && let Err(e) = self.document(&fetch).await
                {
                    tracing::info!(error = %e, "the <Refer> action of an ended call failed");
                }
                Err(Flow::Ended)
            }
            Err(flow) => Err(flow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn the_action_hears_the_answer_and_what_the_notifies_said() {
        let of = |answered, notified| Outcome { answered, notified }.params();
        let pairs = |p: Vec<(String, String)>| -> Vec<String> {
            p.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        assert_eq!(
            pairs(of(Some(202), Some(200))),
            [
                "ReferSipResponseCode=202",
                "NotifySipResponseCode=200",
                "ReferCallStatus=in-progress"
            ]
        );
        assert_eq!(pairs(of(Some(202), Some(486)))[2], "ReferCallStatus=busy");
        assert_eq!(
            pairs(of(Some(202), Some(180)))[2],
            "ReferCallStatus=no-answer"
        );
        assert_eq!(pairs(of(Some(202), Some(503)))[2], "ReferCallStatus=failed");
        // Refused, or never answered: no NOTIFY, no call status.
        assert_eq!(pairs(of(Some(603), None)), ["ReferSipResponseCode=603"]);
        assert!(pairs(of(None, None)).is_empty());
    }
}
