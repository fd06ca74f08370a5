//! Telnyx's ConversationRelay parameters (`conversation_relay_start`, and answer's and
//! dial's `conversation_relay_config`): read into the neutral service's settings.

use super::Params;
use crate::providers::telnyx::errors::ApiError;
use crate::services::relay::Settings;
use crate::services::speech::Speech;
use serde_json::Value;

/// Custom parameters one session takes, at most (as a stream's), and languages (as TwiML's
/// `<Language>`s).
const MAX_PARAMETERS: usize = 99;
const MAX_LANGUAGES: usize = 32;

/// The session's settings, as `<ConversationRelay>` attributes the neutral service reads.
pub(in crate::providers::telnyx) fn settings(
    p: &Params,
    speech: &Speech,
    account: &str,
) -> Result<(Settings, Vec<(String, String)>), ApiError> {
    let nested = p.object("conversation_relay_settings")?;
    // A top-level value wins over the nested settings' (Telnyx's precedence).
    let text = |keys: &[&str], nested_key: &str| -> Result<Option<String>, ApiError> {
        for k in keys {
            if let Some(v) = p.str(k)? {
                return Ok(Some(v.to_owned()));
            }
        }
        match &nested {
            Some(n) => Ok(n.str(nested_key)?.map(str::to_owned)),
            None => Ok(None),
        }
    };
    let flag = |keys: &[&str], nested_key: &str| -> Result<Option<bool>, ApiError> {
        for k in keys {
            if let Some(v) = p.bool(k)? {
                return Ok(Some(v));
            }
        }
        match &nested {
            Some(n) => n.bool(nested_key),
            None => Ok(None),
        }
    };
    let url =
        text(&["url", "conversation_relay_url"], "url")?.ok_or_else(|| ApiError::missing("url"))?;
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(ApiError::invalid(
            "url",
            "'url' must start with ws:// or wss://.".into(),
        ));
    }
    let mut attributes = vec![("url".to_owned(), url)];
    let mut set = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            attributes.push((name.to_owned(), v));
        }
    };
    let dtmf = flag(
        &["dtmf_detection", "conversation_relay_dtmf_detection"],
        "dtmf_detection",
    )?;
    set("dtmfDetection", dtmf.map(|d| d.to_string()));
    // `interruption_settings` is the older form of the same choices: the top-level ones win.
    let (older, older_greeting) = match p.object("interruption_settings")? {
        Some(s) => {
            let enable = (s.bool("enable")?).map(|on| if on { "any" } else { "none" });
            let greeting =
                (s.str("interruptible_greeting")?).or(s.str("welcome_greeting_interruptible")?);
            (
                s.str("interruptible")?.or(enable).map(str::to_owned),
                greeting.map(str::to_owned),
            )
        }
        None => (None, None),
    };
    set(
        "interruptible",
        text(&["interruptible"], "interruptible")?.or(older),
    );
    set(
        "welcomeGreetingInterruptible",
        text(&["interruptible_greeting"], "interruptible_greeting")?.or(older_greeting),
    );
    set("welcomeGreeting", text(&["greeting"], "greeting")?);
    set("language", text(&["language"], "language")?);
    set("voice", text(&["voice"], "voice")?);
    // Every provider and engine Telnyx names is a local voice or the local recogniser here
    // (as for speak and transcription_start); settings only a vendor's engine has cannot take
    // effect, and are refused rather than dropped.
    p.str("tts_provider")?;
    p.str("provider")?;
    p.str("transcription_engine")?;
    for vendor_only in ["voice_settings", "structured_provider"] {
        if p.given(vendor_only) {
            return Err(ApiError::invalid(
                vendor_only,
                format!(
                    "'{vendor_only}' is not supported: the session speaks with Switchboard's local voices."
                ),
            ));
        }
    }
    if p.given("transcription") {
        return Err(ApiError::invalid(
            "transcription",
            "'transcription' is not supported for Conversation Relay start requests. Use 'transcription_engine' and 'transcription_engine_config' instead.".into(),
        ));
    }
    if let Some(config) = p.object("transcription_engine_config")? {
        for (key, _) in config.entries() {
            if ![
                "language",
                "hints",
                "transcription_model",
                "interim_results",
            ]
            .contains(&key.as_str())
            {
                return Err(ApiError::invalid(
                    "transcription_engine_config",
                    format!(
                        "'{key}' is not supported: the session listens with Switchboard's local recogniser."
                    ),
                ));
            }
        }
        config.str("transcription_model")?;
        if let Some(language) = config.str("language")? {
            set("transcriptionLanguage", Some(language.to_owned()));
        }
        let hints: Vec<&str> = (config.array("hints").into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        if !hints.is_empty() {
            set("hints", Some(hints.join(",")));
        }
        // Interim transcripts are the protocol's partial prompts (`last: false`).
        set(
            "partialPrompts",
            config.bool("interim_results")?.map(|b| b.to_string()),
        );
    }
    let languages =
        (p.array("languages")).or_else(|| nested.as_ref().and_then(|n| n.array("languages")));
    if languages.is_some_and(|ls| ls.len() > MAX_LANGUAGES) {
        return Err(ApiError::invalid(
            "languages",
            format!("At most {MAX_LANGUAGES} languages."),
        ));
    }
    let languages = languages
        .map(|ls| {
            ls.iter()
                .filter_map(Value::as_object)
                .map(|l| {
                    let code = (l.get("language").or_else(|| l.get("code")))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let mut attrs = vec![("code".to_owned(), code.to_owned())];
                    if let Some(v) = l.get("voice").and_then(Value::as_str) {
                        attrs.push(("voice".to_owned(), v.to_owned()));
                    }
                    attrs
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let settings = Settings::read(&attributes, &languages, speech, account)
        .map_err(|e| ApiError::invalid("conversation_relay_settings", e.to_string()))?;
    // `custom_parameters` are merged into `assistant.dynamic_variables`, as Telnyx documents:
    // both reach the session as its custom parameters, `custom_parameters` over a variable of
    // the same name.
    let mut parameters: Vec<(String, String)> = Vec::new();
    let mut add = |c: &Params, field: &str| -> Result<(), ApiError> {
        // Bounded before the merge (which looks each name up among those before it).
        if c.entries().count() > MAX_PARAMETERS {
            return Err(ApiError::invalid(
                field,
                format!("At most {MAX_PARAMETERS} custom parameters."),
            ));
        }
        for (k, v) in c.entries() {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            parameters.retain(|(name, _)| name != k);
            parameters.push((k.clone(), v));
        }
        Ok(())
    };
    if let Some(assistant) = p.object("assistant")? {
        if let Some((key, _)) = assistant.entries().find(|(k, _)| *k != "dynamic_variables") {
            return Err(ApiError::invalid(
                "assistant",
                format!(
                    "'assistant.{key}' is not supported for Conversation Relay: only 'dynamic_variables'."
                ),
            ));
        }
        if let Some(variables) = assistant.object("dynamic_variables")? {
            add(&variables, "assistant")?;
        }
    }
    if let Some(c) = p.object("custom_parameters")? {
        add(&c, "custom_parameters")?;
    }
    if parameters.len() > MAX_PARAMETERS {
        return Err(ApiError::invalid(
            "custom_parameters",
            format!("At most {MAX_PARAMETERS} custom parameters."),
        ));
    }
    Ok((settings, parameters))
}

/// A session asked for before the leg is answered: answer's and dial's
/// `conversation_relay_config`, started once the call is answered.
#[derive(Debug, Clone)]
pub(in crate::providers::telnyx) struct OnAnswer {
    pub(in crate::providers::telnyx) settings: Settings,
    pub(in crate::providers::telnyx) parameters: Vec<(String, String)>,
}

/// Answer's and dial's `conversation_relay_config` (the same public names as
/// `conversation_relay_start`), checked now so that a bad one fails the command.
pub(in crate::providers::telnyx) fn on_answer(
    p: &Params,
    speech: &Speech,
    account: &str,
) -> Result<Option<OnAnswer>, ApiError> {
    let Some(config) = p.object("conversation_relay_config")? else {
        return Ok(None);
    };
    let (settings, parameters) = settings(&config, speech, account)?;
    Ok(Some(OnAnswer {
        settings,
        parameters,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The settings read on a server whose recogniser serves English (not loaded).
    fn settings_here(p: &Params) -> Result<(Settings, Vec<(String, String)>), ApiError> {
        settings(p, &Speech::english_unloaded(), "AC0")
    }

    fn params(body: Value) -> Params {
        Params::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn telnyx_parameters_become_the_sessions_settings_top_level_first() {
        let (s, custom) = settings_here(&params(json!({
            "url": "wss://bot/top",
            "conversation_relay_settings": {
                "url": "wss://bot/nested",
                "interruptible": "dtmf",
                "dtmf_detection": true,
                "languages": [{"language": "es", "voice": "Telnyx.Natural.abbie"}]
            },
            "greeting": "Hello",
            "transcription_engine": "Deepgram",
            "transcription_engine_config": {"hints": ["library", "renew"]},
            "custom_parameters": {"customer_id": "c1", "tier": 2}
        })))
        .unwrap();
        assert_eq!(s.url, "wss://bot/top");
        assert_eq!(s.welcome_greeting.as_deref(), Some("Hello"));
        assert!(s.dtmf_detection);
        assert_eq!(
            s.interruptible,
            crate::services::relay::settings::Interruptible::Dtmf
        );
        assert_eq!(s.hints, ["library", "renew"]);
        assert_eq!(s.voice_for("es"), Some("Telnyx.Natural.abbie"));
        assert!(custom.contains(&("customer_id".to_owned(), "c1".to_owned())));
        assert!(custom.contains(&("tier".to_owned(), "2".to_owned())));
        // The nested URL serves when there is no top-level one.
        let (s, _) = settings_here(&params(
            json!({"conversation_relay_settings": {"url": "ws://n/r"}}),
        ))
        .unwrap();
        assert_eq!(s.url, "ws://n/r");
        // The older `interruption_settings`, the provider and model names (local engines),
        // interim results as partial prompts, and the assistant's dynamic variables merged
        // with `custom_parameters` (which win).
        let (s, custom) = settings_here(&params(json!({
            "url": "wss://bot",
            "interruption_settings": {"enable": false, "welcome_greeting_interruptible": "dtmf"},
            "tts_provider": "ElevenLabs",
            "transcription_engine": "Deepgram",
            "transcription_engine_config": {"transcription_model": "deepgram/flux", "interim_results": true},
            "assistant": {"dynamic_variables": {"member": "m1", "tier": "gold"}},
            "custom_parameters": {"tier": "platinum"}
        })))
        .unwrap();
        use crate::services::relay::settings::Interruptible;
        assert_eq!(s.interruptible, Interruptible::None);
        assert_eq!(s.welcome_interruptible, Interruptible::Dtmf);
        assert!(s.partial_prompts);
        assert_eq!(
            custom,
            [
                ("member".to_owned(), "m1".to_owned()),
                ("tier".to_owned(), "platinum".to_owned())
            ]
        );
        let (s, _) = settings_here(&params(json!({
            "url": "wss://bot",
            "interruptible": "speech",
            "interruption_settings": {"enable": false}
        })))
        .unwrap();
        assert_eq!(s.interruptible, Interruptible::Speech);
        // What only a vendor's engine could do is refused, each naming its parameter.
        for (bad, pointer) in [
            (
                json!({"voice_settings": {"api_key_ref": "k"}}),
                "voice_settings",
            ),
            (
                json!({"provider": "x", "structured_provider": {}}),
                "structured_provider",
            ),
            (json!({"transcription": {"engine": "A"}}), "transcription"),
            (
                json!({"transcription_engine_config": {"eot_threshold": 0.7}}),
                "transcription_engine_config",
            ),
            (
                json!({"assistant": {"instructions": "be nice"}}),
                "assistant",
            ),
            // More variables than a session takes, refused before they are merged.
            (
                json!({"assistant": {"dynamic_variables": (0..100)
                    .map(|i| (format!("v{i}"), json!("x")))
                    .collect::<serde_json::Map<_, _>>()}}),
                "assistant",
            ),
        ] {
            let mut body = bad.clone();
            body["url"] = json!("wss://bot");
            let e = settings_here(&params(body))
                .err()
                .unwrap_or_else(|| panic!("{bad}"));
            assert!(format!("{e:?}").contains(pointer), "{bad}: {e:?}");
        }
        for bad in [
            json!({}),
            json!({"url": "https://not-a-socket"}),
            json!({"url": "wss://x", "interruptible": "sometimes"}),
            json!({"url": "wss://x", "transcription_engine_config": {"language": "de"}}),
            json!({"url": "wss://x", "languages": vec![json!({"language": "en"}); 33]}),
        ] {
            assert!(settings_here(&params(bad.clone())).is_err(), "{bad}");
        }
    }
}
