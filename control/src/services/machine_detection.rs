//! Answering-machine detection on a live call, the same for every dialect: the called party's
//! audio (a tap) goes through [`switchboard_media::amd::Detector`], and its verdicts come out
//! on a channel with the time each took. Twilio's `MachineDetection` and Telnyx's
//! `answering_machine_detection` translate the verdicts into their own words.

use crate::services::speech::Gaps;
use std::time::Duration;
use switchboard_media::amd::{AmdConfig, Detector, Verdict};
use switchboard_media::{FRAME, TapFrame};
use tokio::sync::mpsc;

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
                    for _ in 0..gaps.frame(frame.at_ms) {
                        detector.push(&[0i16; FRAME]);
                    }
                    detector.push(&frame.samples);
                }
                _ = tick.tick() => {
                    for _ in 0..gaps.silent_frames() {
                        detector.push(&[0i16; FRAME]);
                    }
                }
            }
            while let Some(verdict) = detector.poll() {
                let detected = Detected {
                    verdict,
                    after: detector.elapsed(),
                };
                if tx.send(detected).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}
