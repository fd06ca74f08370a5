//! A recording the app asks for (`record_start`, dial's and answer's `record`, a
//! conference's `record_start`), read from its parameters.

use super::Params;
use crate::call::{RecordOptions, RecordingOrigin};
use crate::providers::telnyx::errors::ApiError;
use crate::services::speech::{EngineKind, Speech};
use std::time::Duration;
use switchboard_media::TapTracks;
use switchboard_media::record::StopWhen;
use switchboard_media::record::{Channels, RecordFormat};

/// `max_length` at most (Telnyx's bound for `record_start`), in seconds.
const MAX_LENGTH_SECS: i64 = 14_400;

/// A recording the app asked for, read from its parameters.
#[derive(Debug, Clone)]
pub(in crate::providers::telnyx) struct RecordParams {
    /// The recording's stored id, chosen when asked for (a dial answers with it).
    pub(in crate::providers::telnyx) sid: String,
    pub(in crate::providers::telnyx) channels: Channels,
    pub(in crate::providers::telnyx) format: RecordFormat,
    pub(in crate::providers::telnyx) tracks: TapTracks,
    pub(in crate::providers::telnyx) trim_silence: bool,
    pub(in crate::providers::telnyx) play_beep: bool,
    /// Stopped after this long (`max_length`; 0 or absent: until stopped).
    pub(in crate::providers::telnyx) max_length: Option<Duration>,
    /// Stopped after this long a silence once the party has spoken (`timeout_secs`; 0 or
    /// absent: never).
    pub(in crate::providers::telnyx) silence: Option<Duration>,
    /// Transcribed once saved (`transcription`), reported as
    /// `call.recording.transcription.saved`.
    pub(in crate::providers::telnyx) transcription: bool,
    /// The engine its `transcription_engine` is mapped to, if it is.
    pub(in crate::providers::telnyx) transcription_engine: Option<EngineKind>,
    /// `transcription_language`: what the recording is heard as.
    pub(in crate::providers::telnyx) transcription_language: Option<String>,
}

impl RecordParams {
    /// `record_start`'s parameters (`format` and `channels` are required).
    /// `account`'s: its `transcription_engine` is served by the engine the operator (or the
    /// account) maps it to, when one does.
    pub(in crate::providers::telnyx) fn of_action(
        p: &Params,
        speech: &Speech,
        account: &str,
    ) -> Result<Self, ApiError> {
        p.required("format")?;
        p.required("channels")?;
        let transcription = p.bool("transcription")?.unwrap_or(false);
        let named = p.choice("transcription_engine", &["A", "B", "deepgram/nova-3"], "A")?;
        let engine = (p.has("transcription_engine"))
            .then(|| speech.engine_for(account, super::transcription_provider(named)))
            .flatten();
        // Heard by the engine that serves the language, or refused as Telnyx refuses a
        // language it does not transcribe.
        let language = p.str("transcription_language")?;
        if let Some(language) = language
            && !speech.recognises_by_engine(language, engine)
        {
            return Err(ApiError::invalid(
                "transcription_language",
                format!("'{language}' is not transcribed here: no recogniser serves it."),
            ));
        }
        Ok(Self {
            transcription,
            transcription_language: language.map(str::to_owned),
            transcription_engine: engine,
            ..Self::read(p, "", "recording_track", MAX_LENGTH_SECS)?
        })
    }

    /// A dial's, answer's or transfer's `record_*` parameters, if it asks to record
    /// (`record: record-from-answer`).
    pub(in crate::providers::telnyx) fn of_call(p: &Params) -> Result<Option<Self>, ApiError> {
        if !p.has("record") {
            return Ok(None);
        }
        p.choice("record", &["record-from-answer"], "record-from-answer")?;
        Self::read(p, "record_", "record_track", 43_200).map(Some)
    }

    /// A conference's `record_start`: `format` is required; a conference's mix is one track.
    pub(in crate::providers::telnyx) fn of_conference(p: &Params) -> Result<Self, ApiError> {
        p.required("format")?;
        if p.choice("channels", &["single", "dual"], "single")? == "dual" {
            return Err(ApiError::invalid(
                "channels",
                "A conference is recorded as its mix, in one channel: 'dual' is not served here."
                    .into(),
            ));
        }
        Ok(Self {
            // The mixer feeds the mix as one track.
            tracks: TapTracks::Inbound,
            ..Self::read(p, "", "recording_track", MAX_LENGTH_SECS)?
        })
    }

    /// Whether it asks for a beep first.
    pub(in crate::providers::telnyx) fn beeps(&self) -> bool {
        self.play_beep
    }

    /// The core's options for this recording.
    pub(in crate::providers::telnyx) fn options(&self, origin: RecordingOrigin) -> RecordOptions {
        RecordOptions {
            channels: self.channels,
            format: self.format,
            tracks: self.tracks,
            trim_silence: self.trim_silence,
            sid: Some(self.sid.clone()),
            origin,
            // Telnyx counts silence only once the party has spoken.
            stop: StopWhen {
                max_length: self.max_length,
                silence: self.silence,
                silence_after_speech: true,
            },
        }
    }

    /// The parameters named `{prefix}channels` and so on (the track is named apart: dial's
    /// `record_track`, record_start's `recording_track`).
    fn read(p: &Params, prefix: &str, track: &str, max_length: i64) -> Result<Self, ApiError> {
        let key = |name: &str| format!("{prefix}{name}");
        let channels = match p.choice(&key("channels"), &["single", "dual"], "single")? {
            "dual" => Channels::Dual,
            _ => Channels::Mono,
        };
        let format = match p.choice(&key("format"), &["wav", "mp3"], "mp3")? {
            "wav" => RecordFormat::Pcm16,
            _ => RecordFormat::Mp3,
        };
        let tracks = match p.choice(track, &["both", "inbound", "outbound"], "both")? {
            "inbound" => TapTracks::Inbound,
            "outbound" => TapTracks::Outbound,
            _ => TapTracks::Both,
        };
        let trim_silence = p.has(&key("trim"))
            && p.choice(&key("trim"), &["trim-silence"], "trim-silence")? == "trim-silence";
        // Kept by Telnyx for their files' names; checked, not acted on.
        p.short(&key("custom_file_name"), 40)?;
        let silence = (p.int(&key("timeout_secs"), 0..=14_400)?)
            .filter(|&s| s > 0)
            .map(|s| Duration::from_secs(s as u64));
        let max_length = (p.int(&key("max_length"), 0..=max_length)?)
            .filter(|&s| s > 0)
            .map(|s| Duration::from_secs(s as u64));
        Ok(Self {
            sid: crate::infra::sid::new_sid("RE"),
            channels,
            format,
            tracks,
            trim_silence,
            play_beep: p.bool("play_beep")?.unwrap_or(false),
            max_length,
            silence,
            transcription: false,
            transcription_language: None,
            transcription_engine: None,
        })
    }
}
