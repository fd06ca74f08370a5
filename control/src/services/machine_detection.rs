//! Answering-machine detection on a live call, the same for every dialect: the called party's
//! audio (a tap) goes through [`switchboard_media::amd::Detector`], and its verdicts come out
//! on a channel with the time each took. Twilio's `MachineDetection` and Telnyx's
//! `answering_machine_detection` translate the verdicts into their own words.

use crate::services::speech::{Audio, Gaps};
use std::time::Duration;
use switchboard_media::TapFrame;
use switchboard_media::amd::{AmdConfig, Detector, Verdict};
use tokio::sync::mpsc;
use tracing::info;

/// A verdict, and how much of the call's audio it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub verdict: Verdict,
    pub after: Duration,
}

impl Detected {
    /// Whether no other verdict follows this one (all but `Machine` when the end of the
    /// greeting is awaited).
    pub fn is_last(&self, config: &AmdConfig) -> bool {
        !(self.verdict == Verdict::Machine && config.detect_message_end)
    }
}

/// Analyses the frames of a tap of the called party until the detector is done (or the tap
/// ends); the verdicts arrive on the returned channel, which closes after the last.
pub fn detect(mut frames: mpsc::Receiver<TapFrame>, config: AmdConfig) -> mpsc::Receiver<Detected> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut detector = Detector::new(config);
        let mut gaps = Gaps::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !detector.done() {
            tokio::select! {
                frame = frames.recv() => {
                    let Some(frame) = frame else { return };
                    gaps.feed(&frame, &mut |a| hear(&mut detector, a));
                }
                _ = tick.tick() => {
                    if !gaps.on_tick(&mut frames, &mut |a| hear(&mut detector, a)) {
                        return;
                    }
                }
            }
            while let Some(verdict) = detector.poll() {
                let detected = Detected {
                    verdict,
                    after: detector.elapsed(),
                };
                // What it heard, so that a verdict can be understood afterwards (a greeting
                // taken for a person's hello because its audio stopped coming, say).
                info!(
                    verdict = verdict.answered_by(),
                    after_ms = detected.after.as_millis() as u64,
                    dropped = gaps.dropped,
                    late_ms = gaps.late_ms,
                    heard = %detector.timeline(),
                    "machine detection"
                );
                if tx.send(detected).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The detector hears the next 20 ms of the tap.
fn hear(detector: &mut Detector, audio: Audio<'_>) {
    match audio {
        Audio::Heard(frame) => detector.push(&frame.samples),
        Audio::Missing => detector.push_missing(),
    }
}
