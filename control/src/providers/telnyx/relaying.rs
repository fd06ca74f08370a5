//! `conversation_relay_start` / `conversation_relay_stop`: ConversationRelay on a Call Control
//! leg — the same neutral session ([`crate::services::relay`]) and wire protocol as TeXML's
//! `<ConversationRelay>`, its settings from Telnyx's parameters (top-level values over
//! `conversation_relay_settings`, as Telnyx documents), and its end as `call.conversation.ended`
//! (`reason` `customer_disconnect` when the application's socket dropped). One session per
//! call at a time.

use super::Telnyx;
use super::errors::ApiError;
use super::leg::Leg;
use super::params::Params;
use crate::call::ids::CallId;
use crate::services::relay::{Outcome, RelaySpec, Settings};
use crate::services::stream::telnyx::RelayCall;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Custom parameters one session takes, at most (as a stream's), and languages (as TwiML's
/// `<Language>`s).
const MAX_PARAMETERS: usize = 99;
const MAX_LANGUAGES: usize = 32;

/// A running session on a leg: how to stop it and where the leg's events go.
pub(super) struct Relaying {
    pub(super) running: crate::services::relay::Running,
}

/// The session's settings, as `<ConversationRelay>` attributes the neutral service reads.
fn settings(p: &Params) -> Result<(Settings, Vec<(String, String)>), ApiError> {
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
    set("interruptible", text(&["interruptible"], "interruptible")?);
    set(
        "welcomeGreetingInterruptible",
        text(&["interruptible_greeting"], "interruptible_greeting")?,
    );
    set("welcomeGreeting", text(&["greeting"], "greeting")?);
    set("language", text(&["language"], "language")?);
    set("voice", text(&["voice"], "voice")?);
    // Every engine Telnyx names is the local recogniser here (as for transcription_start).
    p.str("transcription_engine")?;
    if let Some(config) = p.object("transcription_engine_config")? {
        if let Some(language) = config.str("language")? {
            set("transcriptionLanguage", Some(language.to_owned()));
        }
        let hints: Vec<&str> = (config.array("hints").into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        if !hints.is_empty() {
            set("hints", Some(hints.join(",")));
        }
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
    let settings = Settings::read(&attributes, &languages)
        .map_err(|e| ApiError::invalid("conversation_relay_settings", e.to_string()))?;
    let parameters: Vec<(String, String)> = match p.object("custom_parameters")? {
        Some(c) => (c.entries())
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k.clone(), v)
            })
            .collect(),
        None => Vec::new(),
    };
    if parameters.len() > MAX_PARAMETERS {
        return Err(ApiError::invalid(
            "custom_parameters",
            format!("At most {MAX_PARAMETERS} custom parameters."),
        ));
    }
    Ok((settings, parameters))
}

/// Starts a session on the leg; its id (`conversation_relay_id`).
pub(super) async fn start(
    api: &Arc<Telnyx>,
    leg: &Arc<Leg>,
    p: &Params,
) -> Result<String, ApiError> {
    let (settings, parameters) = settings(p)?;
    if !leg.answered(api).await {
        return Err(ApiError::not_answered());
    }
    if leg.lock().relaying.is_some() {
        return Err(ApiError::unprocessable(
            "Only one AI Assistant or Conversation Relay session can be active on a call at a time."
                .into(),
        ));
    }
    let id = CallId::random().uuid();
    let context = leg.context();
    let setup = RelayCall {
        call: &leg.call,
        session: &context.session,
        account: &leg.account,
        from: &context.from,
        to: &context.to,
        direction: if context.direction == "incoming" {
            "inbound"
        } else {
            "outbound"
        },
    }
    .setup(&id);
    let reach = api
        .parts
        .directory
        .account(&leg.account)
        .map(|a| a.reach)
        .unwrap_or_default();
    let spec = RelaySpec {
        id: id.clone(),
        call: leg.call.clone(),
        account: leg.account.clone(),
        settings,
        setup,
        parameters,
        headers: Vec::new(),
        reach,
    };
    let (running, finished) = api.parts.markup.relays.start(spec);
    leg.lock().relaying = Some(Relaying { running });
    let (task_api, leg, relay) = (api.clone(), leg.clone(), id.clone());
    api.legs.spawn(async move {
        let api = task_api;
        let finished = finished.await;
        leg.lock().relaying = None;
        let reason = match finished.as_ref().map(|f| &f.outcome) {
            Ok(Outcome::Ended { .. }) => "end",
            Ok(Outcome::CallEnded) => "hangup",
            Ok(Outcome::Stopped) => "stopped",
            Ok(Outcome::Failed { code, .. })
                if *code == crate::services::relay::codes::SOCKET_ENDED =>
            {
                "customer_disconnect"
            }
            Ok(Outcome::Failed { .. }) | Err(_) => "error",
        };
        let mut extra = Map::new();
        extra.insert("conversation_relay_id".into(), json!(relay));
        extra.insert("reason".into(), json!(reason));
        if let Ok(Outcome::Ended { handoff: Some(h) }) = finished.as_ref().map(|f| &f.outcome) {
            extra.insert("handoff_data".into(), json!(h));
        }
        if let Ok(Outcome::Failed { message, .. }) = finished.as_ref().map(|f| &f.outcome) {
            extra.insert("error".into(), json!(message));
        }
        let at = crate::infra::clock::now_ms();
        leg.send(&api, "call.conversation.ended", at, extra).await;
    });
    Ok(id)
}

/// Stops the leg's session (`call.conversation.ended` follows with `reason: stopped`).
pub(super) fn stop(leg: &Arc<Leg>) -> Result<(), ApiError> {
    let s = leg.lock();
    let relaying = (s.relaying.as_ref()).ok_or_else(|| {
        ApiError::unprocessable("No Conversation Relay session is running on this call.".into())
    })?;
    relaying.running.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: Value) -> Params {
        Params::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn telnyx_parameters_become_the_sessions_settings_top_level_first() {
        let (s, custom) = settings(&params(json!({
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
        let (s, _) = settings(&params(
            json!({"conversation_relay_settings": {"url": "ws://n/r"}}),
        ))
        .unwrap();
        assert_eq!(s.url, "ws://n/r");
        for bad in [
            json!({}),
            json!({"url": "https://not-a-socket"}),
            json!({"url": "wss://x", "interruptible": "sometimes"}),
            json!({"url": "wss://x", "transcription_engine_config": {"language": "de"}}),
            json!({"url": "wss://x", "languages": vec![json!({"language": "en"}); 33]}),
        ] {
            assert!(settings(&params(bad.clone())).is_err(), "{bad}");
        }
    }
}
