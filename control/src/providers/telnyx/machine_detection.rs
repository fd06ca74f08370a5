//! Telnyx's `answering_machine_detection` on dial (and transfer): the neutral detector
//! ([`crate::services::machine_detection`]) listens from the answer, and its verdicts become
//! `call.machine.detection.ended` (`human`, `machine`, `not_sure`) and, for the modes that
//! wait for the end of a greeting, `call.machine.greeting.ended` (`beep_detected`, `ended`,
//! `not_sure`); `premium` has its own event names and words.

use super::Telnyx;
use super::leg::LegHandle;
pub(super) use super::params::amd::AmdParams;
use crate::call::CallCommand;
use crate::services::machine_detection::detect;
use serde_json::{Map, json};
use std::sync::Arc;
use switchboard_media::amd::{GreetingEnd, Verdict};
use switchboard_media::{TapId, TapTracks};
use tokio::sync::mpsc;

/// The detection's words for a verdict: its event and result.
fn event(verdict: Verdict, premium: bool) -> (&'static str, &'static str) {
    let detection = if premium {
        "call.machine.premium.detection.ended"
    } else {
        "call.machine.detection.ended"
    };
    let greeting = if premium {
        "call.machine.premium.greeting.ended"
    } else {
        "call.machine.greeting.ended"
    };
    match (verdict, premium) {
        (Verdict::Human, false) => (detection, "human"),
        (Verdict::Human, true) => (detection, "human_residence"),
        (Verdict::Machine, _) => (detection, "machine"),
        (Verdict::Fax, false) => (detection, "machine"),
        (Verdict::Fax, true) => (detection, "fax_detected"),
        (Verdict::Unknown, false) => (detection, "not_sure"),
        (Verdict::Unknown, true) => (detection, "silence"),
        (Verdict::MachineEnd(GreetingEnd::Beep { .. }), _) => (greeting, "beep_detected"),
        (Verdict::MachineEnd(GreetingEnd::Silence), false) => (greeting, "ended"),
        (Verdict::MachineEnd(GreetingEnd::Silence), true) => (greeting, "no_beep_detected"),
        (Verdict::MachineEnd(GreetingEnd::Other), false) => (greeting, "not_sure"),
        (Verdict::MachineEnd(GreetingEnd::Other), true) => (greeting, "no_beep_detected"),
    }
}

/// Listens from the answer and reports each verdict as the leg's webhook.
pub(super) async fn start(api: &Arc<Telnyx>, leg: &Arc<LegHandle>, amd: AmdParams) {
    let (tx, frames) = mpsc::channel(64);
    let tap = TapId::next();
    let tracks = TapTracks::Inbound;
    let control = &api.parts.control;
    if control
        .command(
            &leg.call,
            CallCommand::TapStart {
                tap,
                tracks,
                tx: tx.into(),
            },
        )
        .await
        .is_err()
    {
        return;
    }
    let mut verdicts = detect(frames, amd.config);
    let (api, leg) = (api.clone(), leg.clone());
    tokio::spawn(async move {
        while let Some(d) = verdicts.recv().await {
            let (event_type, result) = event(d.verdict, amd.premium);
            let mut extra = Map::new();
            extra.insert("result".into(), json!(result));
            leg.send(&api, event_type, crate::infra::clock::now_ms(), extra)
                .await;
        }
        let _ = api
            .parts
            .control
            .command(&leg.call, CallCommand::TapStop(tap))
            .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::telnyx::params::Params;
    use std::time::Duration;

    #[test]
    fn modes_and_thresholds() {
        let p = |body: &str| Params::parse(body.as_bytes()).unwrap();
        assert_eq!(AmdParams::read(&p("{}")).unwrap(), None);
        let amd = AmdParams::read(&p(r#"{"answering_machine_detection":"detect_beep",
            "answering_machine_detection_config":{"total_analysis_time_millis":5000,
            "greeting_duration_millis":1500,"after_greeting_silence_millis":"800",
            "initial_silence_millis":3000}}"#))
        .unwrap()
        .unwrap();
        assert!(amd.config.detect_message_end && !amd.premium);
        assert_eq!(amd.config.timeout, Duration::from_secs(5));
        assert_eq!(amd.config.speech_threshold, Duration::from_millis(1500));
        assert_eq!(amd.config.speech_end, Duration::from_millis(800));
        assert_eq!(amd.config.silence_timeout, Duration::from_millis(3000));
        let detect = AmdParams::read(&p(r#"{"answering_machine_detection":"detect"}"#))
            .unwrap()
            .unwrap();
        assert!(!detect.config.detect_message_end);
        assert!(AmdParams::read(&p(r#"{"answering_machine_detection":"guess"}"#)).is_err());
        assert!(
            AmdParams::read(&p(
                r#"{"answering_machine_detection":"detect","answering_machine_detection_config":{"greeting_duration_millis":1}}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn verdicts_in_telnyx_words() {
        let beep = Verdict::MachineEnd(GreetingEnd::Beep {
            at: Duration::from_secs(3),
        });
        assert_eq!(
            event(Verdict::Human, false),
            ("call.machine.detection.ended", "human")
        );
        assert_eq!(
            event(Verdict::Unknown, false),
            ("call.machine.detection.ended", "not_sure")
        );
        assert_eq!(
            event(beep, false),
            ("call.machine.greeting.ended", "beep_detected")
        );
        assert_eq!(
            event(beep, true),
            ("call.machine.premium.greeting.ended", "beep_detected")
        );
        assert_eq!(
            event(Verdict::Fax, true),
            ("call.machine.premium.detection.ended", "fax_detected")
        );
    }
}
