//! `answering_machine_detection` and its `_config`, read from dial's parameters.

use super::Params;
use crate::providers::telnyx::errors::ApiError;
use std::time::Duration;
use switchboard_media::amd::AmdConfig;

#[derive(Debug, Clone, PartialEq)]
pub(in crate::providers::telnyx) struct AmdParams {
    pub(in crate::providers::telnyx) config: AmdConfig,
    pub(in crate::providers::telnyx) premium: bool,
}

const MODES: [&str; 7] = [
    "premium",
    "premium_ios_call_screening_detection",
    "detect",
    "detect_beep",
    "detect_words",
    "greeting_end",
    "disabled",
];

impl AmdParams {
    /// `answering_machine_detection` and its `_config` thresholds (`*_millis`); `None` when
    /// absent or `disabled`.
    pub(in crate::providers::telnyx) fn read(p: &Params) -> Result<Option<Self>, ApiError> {
        let mode = p.choice("answering_machine_detection", &MODES, "disabled")?;
        if mode == "disabled" {
            return Ok(None);
        }
        let mut config = AmdConfig {
            // The modes that report the end of a greeting wait for it.
            detect_message_end: matches!(mode, "detect_beep" | "greeting_end" | "premium"),
            ..AmdConfig::default()
        };
        if let Some(c) = p.object("answering_machine_detection_config")? {
            let ms = |key: &str, range, into: &mut Duration| -> Result<(), ApiError> {
                if let Some(v) = c.int(key, range)? {
                    *into = Duration::from_millis(v as u64);
                }
                Ok(())
            };
            ms(
                "total_analysis_time_millis",
                1000..=60_000,
                &mut config.timeout,
            )?;
            ms(
                "initial_silence_millis",
                500..=20_000,
                &mut config.silence_timeout,
            )?;
            ms(
                "greeting_duration_millis",
                500..=20_000,
                &mut config.speech_threshold,
            )?;
            ms(
                "after_greeting_silence_millis",
                200..=10_000,
                &mut config.speech_end,
            )?;
        }
        Ok(Some(Self {
            config,
            premium: mode.starts_with("premium"),
        }))
    }
}
