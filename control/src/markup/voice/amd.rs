//! Twilio's answering-machine detection (`MachineDetection` on a REST-created call): the
//! neutral detector ([`crate::services::machine_detection`]) listens to the called party from the
//! answer. Synchronous, the call's TwiML is fetched once it has decided, with `AnsweredBy`;
//! with `AsyncAmd=true` the TwiML runs at once and the verdict goes to
//! `AsyncAmdStatusCallback` (through the durable outbox). Either way the later requests and
//! status callbacks carry `AnsweredBy`. With `DetectMessageEnd` a machine's verdict waits for
//! the end of its greeting (`machine_end_beep`, `_silence`, `_other`).

use super::{Flow, Session};
use crate::call::CallCommand;
use crate::infra::accounts::HttpMethod;
use crate::services::machine_detection::{Detected, detect};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_media::amd::AmdConfig;
use switchboard_media::{TapId, TapTracks};
use tokio::sync::mpsc;

/// What a call asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineDetection {
    pub config: AmdConfig,
    /// `AsyncAmd=true`: the TwiML does not wait.
    pub asynchronous: bool,
    /// `AsyncAmdStatusCallback` and its method.
    pub callback: Option<(String, HttpMethod)>,
}

/// The verdict once given: `AnsweredBy` and `MachineDetectionDuration` (ms).
pub(super) type Answered = Arc<Mutex<Option<(&'static str, u64)>>>;

/// A range-checked parameter in its unit, or its default.
fn bounded(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<u64, (&'static str, String)> {
    match get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err((
                name,
                format!(
                    "{name} must be a whole number from {} to {}, not {v:?}",
                    range.start(),
                    range.end()
                ),
            )),
        },
    }
}

/// The `MachineDetection*` and `AsyncAmd*` parameters of a call create (Twilio's ranges and
/// defaults); `None` without `MachineDetection`. An error names the parameter at fault.
pub fn parse(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<MachineDetection>, (&'static str, String)> {
    let detect_message_end = match get("MachineDetection").as_deref() {
        None | Some("") | Some("Disable") => return Ok(None),
        Some("Enable") => false,
        Some("DetectMessageEnd") => true,
        Some(other) => {
            return Err((
                "MachineDetection",
                format!("Invalid MachineDetection: {other} (Enable or DetectMessageEnd)"),
            ));
        }
    };
    let config = AmdConfig {
        timeout: Duration::from_secs(bounded(&get, "MachineDetectionTimeout", 3..=59, 30)?),
        speech_threshold: Duration::from_millis(bounded(
            &get,
            "MachineDetectionSpeechThreshold",
            1000..=6000,
            2400,
        )?),
        speech_end: Duration::from_millis(bounded(
            &get,
            "MachineDetectionSpeechEndThreshold",
            500..=5000,
            1200,
        )?),
        silence_timeout: Duration::from_millis(bounded(
            &get,
            "MachineDetectionSilenceTimeout",
            2000..=10000,
            5000,
        )?),
        detect_message_end,
    };
    let asynchronous = matches!(get("AsyncAmd").as_deref(), Some("true" | "True"));
    let method = match get("AsyncAmdStatusCallbackMethod").as_deref() {
        None | Some("") | Some("POST" | "post") => HttpMethod::Post,
        Some("GET" | "get") => HttpMethod::Get,
        Some(other) => {
            return Err((
                "AsyncAmdStatusCallbackMethod",
                format!("Invalid AsyncAmdStatusCallbackMethod: {other}"),
            ));
        }
    };
    Ok(Some(MachineDetection {
        config,
        asynchronous,
        callback: get("AsyncAmdStatusCallback")
            .filter(|u| !u.is_empty())
            .map(|u| (u, method)),
    }))
}

/// A conference participant's detection (Twilio's Participants API, TeXML's): the same
/// `MachineDetection*` as a call's, always asynchronous — the participant joins at once and
/// the verdict goes to `AmdStatusCallback` (`AmdStatusCallbackMethod`); these APIs take no
/// `AsyncAmd*` (Twilio warns 21263 of them).
pub fn parse_participant(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<MachineDetection>, (&'static str, String)> {
    parse(|k| match k {
        "AsyncAmd" => Some("true".into()),
        "AsyncAmdStatusCallback" => get("AmdStatusCallback"),
        "AsyncAmdStatusCallbackMethod" => get("AmdStatusCallbackMethod"),
        other => get(other),
    })
    .map_err(|(name, message)| match name {
        "AsyncAmdStatusCallbackMethod" => (
            "AmdStatusCallbackMethod",
            message.replace("AsyncAmd", "Amd"),
        ),
        other => (other, message),
    })
}

impl Session {
    /// From the answer of a call that asked for detection: waits for the verdict, or (async)
    /// leaves a task to report it.
    pub(super) async fn detect_machine(&mut self, md: &MachineDetection) -> Result<(), Flow> {
        let (tap_tx, frames) = mpsc::channel(64);
        let tap = TapId::next();
        self.command(CallCommand::TapStart {
            tap,
            tracks: TapTracks::Inbound,
            tx: tap_tx.into(),
        })
        .await?;
        // The detector's clock starts with its tap, a moment after the answer (this session
        // had to hear of it and ask); the duration reported counts from the answer, as
        // Twilio's does.
        let since_answer = self.answered_at.map_or(Duration::ZERO, |at| at.elapsed());
        let mut verdicts = detect(frames, md.config);
        if md.asynchronous {
            let (apps, account, dialect) = (
                self.apps.clone(),
                self.account.clone(),
                self.app.dialect.clone(),
            );
            let (call, answered) = (self.call.sid.clone(), self.answered_by.clone());
            let mut params = super::voice_params(&self.account, &self.call, "in-progress");
            let (md, url) = (md.clone(), md.callback.clone());
            self.apps.sessions.spawn(async move {
                let last = last_verdict(&mut verdicts, &md.config).await;
                let _ = apps.control.command(&call, CallCommand::TapStop(tap)).await;
                let (by, ms) = settle(&answered, last, since_answer);
                if let Some((url, method)) = url {
                    params.retain(|(k, _)| k == "AccountSid" || k == "CallSid");
                    params.push(("AnsweredBy".into(), by.into()));
                    params.push(("MachineDetectionDuration".into(), ms.to_string()));
                    let request = dialect.request(&account, &url, method, &params);
                    apps.subscriptions
                        .outbox()
                        .send(&account.sid, &call, request)
                        .await;
                }
            });
            return Ok(());
        }
        let last = loop {
            tokio::select! {
                detected = verdicts.recv() => match detected {
                    Some(d) if d.is_last(&md.config) => break Some(d),
                    Some(_) => {}
                    None => break None,
                },
                received = self.receive() => { self.take(received).await?; }
            }
        };
        self.command(CallCommand::TapStop(tap)).await?;
        settle(&self.answered_by, last, since_answer);
        Ok(())
    }
}

async fn last_verdict(
    verdicts: &mut mpsc::Receiver<Detected>,
    config: &AmdConfig,
) -> Option<Detected> {
    while let Some(d) = verdicts.recv().await {
        if d.is_last(config) {
            return Some(d);
        }
    }
    None
}

/// Keeps the verdict for the requests and callbacks that follow (`unknown` when the
/// detector could not finish: the call's audio ended first), with how long after the answer
/// it came (the detector's time plus `since_answer`, when its tap started).
fn settle(
    answered: &Answered,
    last: Option<Detected>,
    since_answer: Duration,
) -> (&'static str, u64) {
    let found = match last {
        Some(d) => (
            d.verdict.answered_by(),
            (since_answer + d.after).as_millis() as u64,
        ),
        None => ("unknown", 0),
    };
    *answered.lock().expect("not poisoned") = Some(found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn twilios_parameters_with_their_defaults_and_ranges() {
        assert_eq!(parse(params(&[])).unwrap(), None);
        let md = parse(params(&[("MachineDetection", "Enable")]))
            .unwrap()
            .unwrap();
        assert_eq!(md.config, AmdConfig::default());
        assert!(!md.asynchronous && md.callback.is_none());
        let md = parse(params(&[
            ("MachineDetection", "DetectMessageEnd"),
            ("MachineDetectionTimeout", "10"),
            ("MachineDetectionSpeechThreshold", "1500"),
            ("MachineDetectionSpeechEndThreshold", "800"),
            ("MachineDetectionSilenceTimeout", "3000"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", "https://app.example/amd"),
        ]))
        .unwrap()
        .unwrap();
        assert!(md.config.detect_message_end && md.asynchronous);
        assert_eq!(md.config.timeout, Duration::from_secs(10));
        assert_eq!(md.config.speech_threshold, Duration::from_millis(1500));
        assert_eq!(md.config.speech_end, Duration::from_millis(800));
        assert_eq!(md.config.silence_timeout, Duration::from_millis(3000));
        assert_eq!(
            md.callback,
            Some(("https://app.example/amd".into(), HttpMethod::Post))
        );
        for (name, value) in [
            ("MachineDetection", "Sometimes"),
            ("MachineDetectionTimeout", "60"),
            ("MachineDetectionSpeechThreshold", "999"),
            ("MachineDetectionSilenceTimeout", "ten"),
            ("AsyncAmdStatusCallbackMethod", "PUT"),
        ] {
            let p = match name {
                "MachineDetection" => vec![(name, value)],
                _ => vec![("MachineDetection", "Enable"), (name, value)],
            };
            let (at, _) = parse(params(&p)).unwrap_err();
            assert_eq!(at, name);
        }
    }
}
