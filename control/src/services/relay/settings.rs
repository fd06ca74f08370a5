//! A session's settings from `<ConversationRelay>`'s attributes (Twilio's names; Telnyx's TeXML
//! and `conversation_relay_start` map theirs onto them), each one either applied or refused
//! with Twilio's 64106 ("invalid argument") — never read and then ignored.

use crate::services::prompts::tts::MAX_TEXT_CHARS;
use std::time::Duration;

/// Who may cut the agent short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruptible {
    None,
    Dtmf,
    Speech,
    Any,
}

impl Interruptible {
    /// `none|dtmf|speech|any`, and the older boolean forms.
    fn parse(name: &str, value: &str) -> Result<Self, Refused> {
        Ok(match value.to_ascii_lowercase().as_str() {
            "none" | "false" => Self::None,
            "dtmf" => Self::Dtmf,
            "speech" => Self::Speech,
            "any" | "true" => Self::Any,
            _ => return Err(refused(name, value, "none, dtmf, speech or any")),
        })
    }

    pub fn by_speech(self) -> bool {
        matches!(self, Self::Speech | Self::Any)
    }

    pub fn by_dtmf(self) -> bool {
        matches!(self, Self::Dtmf | Self::Any)
    }

    /// A message's own `interruptible` flag over the session's setting.
    pub fn with_flag(self, flag: Option<bool>) -> Self {
        match flag {
            None => self,
            Some(false) => Self::None,
            Some(true) if self == Self::None => Self::Any,
            Some(true) => self,
        }
    }
}

/// How long the caller must speak over the agent before it stops (`interruptSensitivity`):
/// `high` stops it as soon as speech starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    High,
    Medium,
    Low,
}

impl Sensitivity {
    pub fn hold(self) -> Duration {
        match self {
            Self::High => Duration::ZERO,
            Self::Medium => Duration::from_millis(300),
            Self::Low => Duration::from_millis(600),
        }
    }
}

/// What `debug` asks the session to tell the application, as `info` messages (Twilio's
/// channels, as a captured session shows them: `debugging` gives `roundTripDelayMs`,
/// `speaker-events` gives `agentSpeaking` and `clientSpeaking` on/off, `tokens-played` gives
/// `tokensPlayed` with the text the caller heard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Debug {
    pub round_trip: bool,
    pub speaker_events: bool,
    pub tokens_played: bool,
}

impl Debug {
    /// A list of channels, separated by spaces or commas; an unknown one is refused.
    fn parse(name: &str, value: &str) -> Result<Self, Refused> {
        let mut d = Self::default();
        for channel in value.split([' ', ',']).filter(|c| !c.is_empty()) {
            match channel.to_ascii_lowercase().as_str() {
                "debugging" => d.round_trip = true,
                "speaker-events" => d.speaker_events = true,
                "tokens-played" => d.tokens_played = true,
                _ => {
                    return Err(refused(
                        name,
                        value,
                        "debugging, speaker-events and tokens-played",
                    ));
                }
            }
        }
        Ok(d)
    }
}

/// A `<Language>`: the voice and recognition a language switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    pub code: String,
    pub voice: Option<String>,
    /// `ttsProvider` and `transcriptionProvider` for this language (the session's otherwise).
    pub tts_provider: Option<String>,
    pub transcription_provider: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: String,
    pub welcome_greeting: Option<String>,
    pub welcome_interruptible: Interruptible,
    pub interruptible: Interruptible,
    pub sensitivity: Sensitivity,
    /// The agent's messages may be cut short by its next one.
    pub preemptible: bool,
    pub tts_language: String,
    pub transcription_language: String,
    pub voice: Option<String>,
    pub dtmf_detection: bool,
    pub partial_prompts: bool,
    pub hints: Vec<String>,
    /// The caller's input while the agent speaks and cannot be interrupted still reaches the
    /// application.
    pub report_input_during_agent_speech: Interruptible,
    /// Silence that ends the caller's turn.
    pub speech_timeout: Duration,
    /// `speechTimeout="auto"` (the default): a pause after a whole sentence ends the turn
    /// too, as soon as the sentence is recognised.
    pub auto_turn_end: bool,
    pub profanity_filter: bool,
    pub languages: Vec<Language>,
    /// `ttsProvider` and `transcriptionProvider`: the operator may map each to an engine of
    /// theirs (see [`crate::services::speech::SpeechProviders`]); unmapped, the local engines
    /// serve them.
    pub tts_provider: Option<String>,
    pub transcription_provider: Option<String>,
    pub debug: Debug,
}

/// An attribute refused: Twilio's 64106, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ConversationRelay: invalid argument: {0}")]
pub struct Refused(pub String);

fn refused(name: &str, value: &str, wanted: &str) -> Refused {
    Refused(format!("{name}={value:?}: {wanted}"))
}

/// The speech providers an application may name: each is served by the local engines. A
/// name neither provider has is refused as Twilio refuses it.
const TTS_PROVIDERS: [&str; 6] = ["google", "amazon", "elevenlabs", "telnyx", "aws", "azure"];
const TRANSCRIPTION_PROVIDERS: [&str; 4] = ["google", "deepgram", "telnyx", "azure"];
/// The end of the caller's turn when `speechTimeout` is not given (or `auto`) and what the
/// caller said before the pause is not a whole sentence.
const AUTO_TURN_END: Duration = Duration::from_millis(700);
/// Hints one session takes.
const MAX_HINTS: usize = 500;

fn boolean(name: &str, value: &str) -> Result<bool, Refused> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(refused(name, value, "true or false")),
    }
}

impl Settings {
    /// Reads the attributes and `<Language>` children of one `<ConversationRelay>`.
    /// A `transcriptionLanguage` no engine of `speech` serves is refused.
    pub fn read(
        attributes: &[(String, String)],
        languages: &[Vec<(String, String)>],
        speech: &crate::services::speech::Speech,
        account: &str,
    ) -> Result<Self, Refused> {
        let mut s = Settings {
            url: String::new(),
            welcome_greeting: None,
            welcome_interruptible: Interruptible::Any,
            interruptible: Interruptible::Any,
            sensitivity: Sensitivity::High,
            preemptible: false,
            tts_language: "en-US".into(),
            transcription_language: "en-US".into(),
            voice: None,
            dtmf_detection: false,
            partial_prompts: false,
            hints: Vec::new(),
            report_input_during_agent_speech: Interruptible::None,
            speech_timeout: AUTO_TURN_END,
            auto_turn_end: true,
            profanity_filter: true,
            languages: Vec::new(),
            tts_provider: None,
            transcription_provider: None,
            debug: Debug::default(),
        };
        let (mut language, mut tts, mut transcription) = (None, None, None);
        for (name, value) in attributes {
            let v = value.as_str();
            match name.as_str() {
                "url" => s.url = v.to_owned(),
                "welcomeGreeting" if v.chars().count() > MAX_TEXT_CHARS => {
                    return Err(Refused(format!(
                        "{name}: more than {MAX_TEXT_CHARS} characters"
                    )));
                }
                "welcomeGreeting" => {
                    s.welcome_greeting = Some(v.to_owned()).filter(|g| !g.is_empty())
                }
                "welcomeGreetingInterruptible" => {
                    s.welcome_interruptible = Interruptible::parse(name, v)?
                }
                "interruptible" => s.interruptible = Interruptible::parse(name, v)?,
                "interruptSensitivity" => {
                    s.sensitivity = match v.to_ascii_lowercase().as_str() {
                        "high" => Sensitivity::High,
                        "medium" => Sensitivity::Medium,
                        "low" => Sensitivity::Low,
                        _ => return Err(refused(name, v, "low, medium or high")),
                    }
                }
                "preemptible" => s.preemptible = boolean(name, v)?,
                "language" => language = Some(v.to_owned()),
                "ttsLanguage" => tts = Some(v.to_owned()),
                "transcriptionLanguage" => transcription = Some(v.to_owned()),
                "voice" => s.voice = Some(v.to_owned()).filter(|v| !v.is_empty()),
                "ttsProvider" => s.tts_provider = Some(provider(name, v, &TTS_PROVIDERS)?),
                "transcriptionProvider" => {
                    s.transcription_provider = Some(provider(name, v, &TRANSCRIPTION_PROVIDERS)?)
                }
                // A model of the named provider: the local recogniser serves each.
                "speechModel" => {}
                "dtmfDetection" => s.dtmf_detection = boolean(name, v)?,
                "partialPrompts" => s.partial_prompts = boolean(name, v)?,
                "hints" => {
                    s.hints = (v.split(','))
                        .map(|h| h.trim().to_owned())
                        .filter(|h| !h.is_empty())
                        .take(MAX_HINTS)
                        .collect()
                }
                "reportInputDuringAgentSpeech" => {
                    s.report_input_during_agent_speech = Interruptible::parse(name, v)?
                }
                "speechTimeout" | "speechtimeout" => {
                    s.auto_turn_end = v == "auto";
                    s.speech_timeout = match v {
                        "auto" => AUTO_TURN_END,
                        ms => ms
                            .parse::<u64>()
                            .ok()
                            .filter(|ms| (100..=60_000).contains(ms))
                            .map(Duration::from_millis)
                            .ok_or_else(|| refused(name, v, "auto, or 100 to 60000 ms"))?,
                    }
                }
                "profanityFilter" => s.profanity_filter = boolean(name, v)?,
                "debug" => s.debug = Debug::parse(name, v)?,
                other => {
                    return Err(Refused(format!(
                        "{other}={v:?} is not supported by this server's ConversationRelay"
                    )));
                }
            }
        }
        if s.url.is_empty() {
            return Err(Refused("url is required".into()));
        }
        let language = language.unwrap_or_else(|| "en-US".into());
        s.tts_language = tts.unwrap_or_else(|| language.clone());
        s.transcription_language = transcription.unwrap_or(language);
        // By the engine the operator maps its transcriptionProvider to, when they map it.
        let named = s.transcription_provider.as_deref();
        if !speech.recognises_for(&s.transcription_language, account, named) {
            return Err(refused(
                "transcriptionLanguage",
                &s.transcription_language,
                "a language a recogniser here serves",
            ));
        }
        for attrs in languages {
            let mut l = Language {
                code: String::new(),
                voice: None,
                tts_provider: None,
                transcription_provider: None,
            };
            for (name, v) in attrs {
                match name.as_str() {
                    "code" => l.code = v.clone(),
                    "voice" => l.voice = Some(v.clone()).filter(|v| !v.is_empty()),
                    "ttsProvider" => {
                        l.tts_provider = Some(provider("Language ttsProvider", v, &TTS_PROVIDERS)?)
                    }
                    "transcriptionProvider" => {
                        let named = provider(
                            "Language transcriptionProvider",
                            v,
                            &TRANSCRIPTION_PROVIDERS,
                        )?;
                        l.transcription_provider = Some(named);
                    }
                    "speechModel" => {}
                    other => {
                        return Err(Refused(format!(
                            "<Language {other}={v:?}> is not supported"
                        )));
                    }
                }
            }
            s.languages.push(l);
        }
        Ok(s)
    }

    /// The providers named for a language: its `<Language>`'s, else the session's (text to
    /// speech, then recognition).
    pub fn providers_for(&self, language: &str) -> (Option<&str>, Option<&str>) {
        let own = (self.languages.iter()).find(|l| l.code.eq_ignore_ascii_case(language));
        let tts = (own.and_then(|l| l.tts_provider.as_deref())).or(self.tts_provider.as_deref());
        let transcription = (own.and_then(|l| l.transcription_provider.as_deref()))
            .or(self.transcription_provider.as_deref());
        (tts, transcription)
    }

    /// The voice for a language: its `<Language voice>`, else the session's own when the
    /// language is the session's.
    pub fn voice_for(&self, language: &str) -> Option<&str> {
        (self.languages.iter())
            .find(|l| l.code.eq_ignore_ascii_case(language))
            .and_then(|l| l.voice.as_deref())
            .or_else(|| {
                self.tts_language
                    .eq_ignore_ascii_case(language)
                    .then_some(self.voice.as_deref())
                    .flatten()
            })
    }
}

/// A provider's name among `known` (as the application wrote it).
fn provider(name: &str, value: &str, known: &[&str]) -> Result<String, Refused> {
    if known.iter().any(|k| k.eq_ignore_ascii_case(value)) {
        Ok(value.to_owned())
    } else {
        Err(refused(name, value, &known.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::speech::Speech;

    /// Settings read on a server whose recogniser serves English (not loaded: these tests
    /// hear nothing).
    fn read(
        attributes: &[(String, String)],
        languages: &[Vec<(String, String)>],
    ) -> Result<Settings, Refused> {
        Settings::read(attributes, languages, &Speech::english_unloaded(), "AC0")
    }

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn attributes_take_effect_with_twilios_defaults() {
        let s = read(&attrs(&[("url", "wss://bot/relay")]), &[]).unwrap();
        assert_eq!(s.interruptible, Interruptible::Any);
        assert_eq!(s.report_input_during_agent_speech, Interruptible::None);
        assert!(s.auto_turn_end);
        assert_eq!(
            (s.tts_language.as_str(), s.profanity_filter),
            ("en-US", true)
        );
        let s = read(
            &attrs(&[
                ("url", "wss://bot/relay"),
                ("welcomeGreeting", "Hi! How can I help?"),
                ("welcomeGreetingInterruptible", "false"),
                ("interruptible", "dtmf"),
                ("interruptSensitivity", "low"),
                ("dtmfDetection", "true"),
                ("partialPrompts", "true"),
                ("language", "en-GB"),
                ("voice", "en-GB-Journey-D"),
                ("ttsProvider", "ElevenLabs"),
                ("transcriptionProvider", "Deepgram"),
                ("speechModel", "nova-3-general"),
                ("hints", "Switchboard, SIP trunk"),
                ("speechTimeout", "1200"),
                ("debug", "debugging speaker-events tokens-played"),
            ]),
            &[attrs(&[("code", "es-ES"), ("voice", "es-ES-Neural2-B")])],
        )
        .unwrap();
        assert_eq!(s.welcome_interruptible, Interruptible::None);
        assert_eq!(s.interruptible, Interruptible::Dtmf);
        assert_eq!(s.sensitivity, Sensitivity::Low);
        assert!(s.dtmf_detection && s.partial_prompts);
        assert_eq!(s.transcription_language, "en-GB");
        assert_eq!(s.hints, ["Switchboard", "SIP trunk"]);
        assert_eq!(s.speech_timeout, Duration::from_millis(1200));
        assert!(!s.auto_turn_end, "a timeout given is waited out");
        assert_eq!(s.voice_for("es-es"), Some("es-ES-Neural2-B"));
        assert_eq!(s.voice_for("en-GB"), Some("en-GB-Journey-D"));
        assert_eq!(
            s.debug,
            Debug {
                round_trip: true,
                speaker_events: true,
                tokens_played: true
            }
        );
    }

    #[test]
    fn what_cannot_take_effect_is_refused_not_ignored() {
        for bad in [
            vec![("url", "wss://x"), ("interruptible", "sometimes")],
            vec![("url", "wss://x"), ("ttsProvider", "Acme")],
            vec![("url", "wss://x"), ("transcriptionLanguage", "es-ES")],
            vec![("url", "wss://x"), ("intelligenceService", "GA00")],
            vec![("url", "wss://x"), ("speechTimeout", "5")],
            vec![("url", "wss://x"), ("debug", "speaker-events everything")],
            vec![("welcomeGreeting", "no url")],
        ] {
            assert!(read(&attrs(&bad), &[]).is_err(), "{bad:?}");
        }
        let long = "a ".repeat(2100);
        let greeting = attrs(&[("url", "wss://x"), ("welcomeGreeting", &long)]);
        assert!(
            read(&greeting, &[]).is_err(),
            "a greeting over 4096 characters"
        );
    }
}
