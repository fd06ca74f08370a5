//! ConversationRelay's messages, as Twilio defines them and Telnyx serves them unchanged: one
//! JSON text frame each. What the provider sends the application is built here; what the
//! application sends is read here, checked, and refused with the description the provider
//! gives (`error` back to the application). Plain values, no socket: tested and fuzzed alone.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A frame larger than this from an application is refused (a `text` token is a few
/// characters; `end`'s handoff data a small JSON document).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Characters of one `text` token, at most (a whole `<Say>` is 4,096).
const MAX_TOKEN_CHARS: usize = 4096;
/// Digits of one `sendDigits`, at most.
const MAX_DIGITS: usize = 64;
/// The longest handoff data kept for the `action` request.
const MAX_HANDOFF_CHARS: usize = 16 * 1024;

/// What the application asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum AppMessage {
    /// Speak `token` (part of an utterance; `last` ends it).
    Text {
        token: String,
        last: bool,
        lang: Option<String>,
        interruptible: Option<bool>,
        preemptible: Option<bool>,
    },
    /// Play an audio file; `loops` 0 plays until interrupted.
    Play {
        source: String,
        loops: u32,
        interruptible: Option<bool>,
        preemptible: Option<bool>,
    },
    SendDigits {
        digits: String,
    },
    /// Switch the languages spoken and listened to.
    Language {
        tts: Option<String>,
        transcription: Option<String>,
    },
    /// End the session; the `action` gets `handoff` as `HandoffData`.
    End {
        handoff: Option<String>,
    },
}

/// Why an application's message was refused: the `description` of the `error` sent back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid message: {0}")]
pub struct Invalid(pub String);

/// The frames as applications write them; unknown fields are passed over as the providers
/// pass them over.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum Frame {
    #[serde(rename = "text")]
    Text {
        token: Option<Value>,
        last: Option<Value>,
        lang: Option<String>,
        interruptible: Option<Value>,
        preemptible: Option<Value>,
    },
    #[serde(rename = "play")]
    Play {
        source: Option<String>,
        #[serde(rename = "loop")]
        loops: Option<Value>,
        interruptible: Option<Value>,
        preemptible: Option<Value>,
    },
    #[serde(rename = "sendDigits")]
    SendDigits { digits: Option<String> },
    #[serde(rename = "language")]
    Language {
        #[serde(rename = "ttsLanguage")]
        tts: Option<String>,
        #[serde(rename = "transcriptionLanguage")]
        transcription: Option<String>,
    },
    #[serde(rename = "end")]
    End {
        #[serde(rename = "handoffData")]
        handoff: Option<Value>,
    },
}

/// Reads one text frame from the application.
pub fn read(text: &str) -> Result<AppMessage, Invalid> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(Invalid(format!(
            "a message of {} bytes, more than {MAX_MESSAGE_BYTES}",
            text.len()
        )));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| Invalid(format!("not JSON: {e}")))?;
    let kind = match value.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(Invalid("type is not a string".into())),
        None => return Err(Invalid("no type".into())),
    };
    let frame: Frame = serde_json::from_value(value).map_err(|e| {
        let e = e.to_string();
        if e.starts_with("unknown variant") {
            Invalid(format!("unknown type: {kind}"))
        } else {
            Invalid(format!("{kind}: {e}"))
        }
    })?;
    Ok(match frame {
        Frame::Text {
            token,
            last,
            lang,
            interruptible,
            preemptible,
        } => {
            let token = match token {
                Some(Value::String(t)) => t,
                Some(_) => return Err(Invalid("text: token is not a string".into())),
                None => return Err(Invalid("text: no token".into())),
            };
            if token.chars().count() > MAX_TOKEN_CHARS {
                return Err(Invalid(format!(
                    "text: a token of more than {MAX_TOKEN_CHARS} characters"
                )));
            }
            AppMessage::Text {
                token,
                last: flag(last, "text", "last")?.unwrap_or(false),
                lang,
                interruptible: flag(interruptible, "text", "interruptible")?,
                preemptible: flag(preemptible, "text", "preemptible")?,
            }
        }
        Frame::Play {
            source,
            loops,
            interruptible,
            preemptible,
        } => {
            let source = source
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| Invalid("play: no source".into()))?;
            let loops = match loops {
                None => 1,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .filter(|n| *n <= 1000)
                    .ok_or_else(|| Invalid("play: loop is not 0 to 1000".into()))?
                    as u32,
                Some(_) => return Err(Invalid("play: loop is not a number".into())),
            };
            AppMessage::Play {
                source,
                loops,
                interruptible: flag(interruptible, "play", "interruptible")?,
                preemptible: flag(preemptible, "play", "preemptible")?,
            }
        }
        Frame::SendDigits { digits } => {
            let digits = digits
                .filter(|d| !d.is_empty())
                .ok_or_else(|| Invalid("sendDigits: no digits".into()))?;
            if digits.len() > MAX_DIGITS
                || !digits
                    .chars()
                    .all(|c| c.is_ascii_digit() || "*#wW".contains(c))
            {
                return Err(Invalid(format!(
                    "sendDigits: {digits:?} is not up to {MAX_DIGITS} of 0-9, *, # and w"
                )));
            }
            AppMessage::SendDigits { digits }
        }
        Frame::Language { tts, transcription } => {
            if tts.is_none() && transcription.is_none() {
                return Err(Invalid(
                    "language: neither ttsLanguage nor transcriptionLanguage".into(),
                ));
            }
            AppMessage::Language { tts, transcription }
        }
        Frame::End { handoff } => {
            // Apps send a string (usually JSON); an object is taken as its JSON text.
            let handoff = match handoff {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(other) => Some(other.to_string()),
            };
            if handoff
                .as_ref()
                .is_some_and(|h| h.chars().count() > MAX_HANDOFF_CHARS)
            {
                return Err(Invalid(format!(
                    "end: handoffData of more than {MAX_HANDOFF_CHARS} characters"
                )));
            }
            AppMessage::End { handoff }
        }
    })
}

/// A boolean field; apps written against loosely typed servers send "true" too.
fn flag(value: Option<Value>, kind: &str, name: &str) -> Result<Option<bool>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(Invalid(format!("{kind}: {name} is not a boolean"))),
    }
}

/// The `setup` frame: the session's and the call's identity, in the fields the dialect
/// gives (Twilio's, and Telnyx's additions), and the custom parameters.
pub fn setup(fields: &[(&str, Value)], custom: &[(String, String)]) -> String {
    let mut m = Map::new();
    m.insert("type".into(), "setup".into());
    for (k, v) in fields {
        m.insert((*k).to_owned(), v.clone());
    }
    let custom: Map<String, Value> = (custom.iter())
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    m.insert("customParameters".into(), Value::Object(custom));
    Value::Object(m).to_string()
}

/// What the caller said: the whole utterance (`last`), or a partial one.
pub fn prompt(text: &str, lang: &str, last: bool) -> String {
    json!({"type": "prompt", "voicePrompt": text, "lang": lang, "last": last}).to_string()
}

pub fn dtmf(digit: char) -> String {
    json!({"type": "dtmf", "digit": digit.to_string()}).to_string()
}

/// The caller spoke (or pressed a key) over the agent: what they heard of its utterance, and
/// for how long.
pub fn interrupt(heard: &str, duration_ms: u64) -> String {
    json!({"type": "interrupt", "utteranceUntilInterrupt": heard,
           "durationUntilInterruptMs": duration_ms})
    .to_string()
}

/// A `debug` channel's report: `name` and its `value`, always a string (as the provider sends
/// them: `"148"`, `"on"`).
pub fn info(name: &str, value: &str) -> String {
    json!({"type": "info", "name": name, "value": value}).to_string()
}

pub fn error(description: &str) -> String {
    json!({"type": "error", "description": description}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applications_messages_are_read_as_the_providers_define_them() {
        assert_eq!(
            read(r#"{"type":"text","token":"Hello","last":false,"interruptible":true}"#),
            Ok(AppMessage::Text {
                token: "Hello".into(),
                last: false,
                lang: None,
                interruptible: Some(true),
                preemptible: None,
            })
        );
        assert_eq!(
            read(r#"{"type":"play","source":"https://x/a.mp3","loop":2}"#),
            Ok(AppMessage::Play {
                source: "https://x/a.mp3".into(),
                loops: 2,
                interruptible: None,
                preemptible: None,
            })
        );
        assert_eq!(
            read(r#"{"type":"sendDigits","digits":"12w#"}"#),
            Ok(AppMessage::SendDigits {
                digits: "12w#".into()
            })
        );
        assert_eq!(
            read(r#"{"type":"end","handoffData":"{\"reason\":\"agent\"}"}"#),
            Ok(AppMessage::End {
                handoff: Some(r#"{"reason":"agent"}"#.into())
            })
        );
        assert_eq!(
            read(r#"{"type":"end"}"#),
            Ok(AppMessage::End { handoff: None })
        );
        // An object as handoff data is kept as its JSON.
        assert_eq!(
            read(r#"{"type":"end","handoffData":{"a":1}}"#),
            Ok(AppMessage::End {
                handoff: Some(r#"{"a":1}"#.into())
            })
        );
    }

    #[test]
    fn bad_messages_are_refused_with_the_providers_description() {
        assert_eq!(
            read(r#"{"type":"foo"}"#).unwrap_err().to_string(),
            "Invalid message: unknown type: foo"
        );
        for bad in [
            "",
            "[]",
            r#"{"token":"x"}"#,
            r#"{"type":1}"#,
            r#"{"type":"text"}"#,
            r#"{"type":"text","token":5}"#,
            r#"{"type":"text","token":"a","last":"maybe"}"#,
            r#"{"type":"play"}"#,
            r#"{"type":"play","source":"x","loop":-1}"#,
            r#"{"type":"sendDigits","digits":"12a"}"#,
            r#"{"type":"language"}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let huge = format!(r#"{{"type":"text","token":"{}"}}"#, "a".repeat(70_000));
        assert!(read(&huge).is_err());
    }

    #[test]
    fn the_providers_frames_carry_their_fields() {
        let setup: Value = serde_json::from_str(&setup(
            &[("sessionId", "VX1".into()), ("callSid", "CA1".into())],
            &[("customer".into(), "42".into())],
        ))
        .unwrap();
        assert_eq!(setup["type"], "setup");
        assert_eq!(setup["sessionId"], "VX1");
        assert_eq!(setup["customParameters"]["customer"], "42");
        let p: Value = serde_json::from_str(&prompt("hi there", "en-US", true)).unwrap();
        assert_eq!(
            p,
            json!({"type":"prompt","voicePrompt":"hi there","lang":"en-US","last":true})
        );
        let i: Value = serde_json::from_str(&interrupt("Welcome to", 820)).unwrap();
        assert_eq!(i["utteranceUntilInterrupt"], "Welcome to");
        assert_eq!(i["durationUntilInterruptMs"], 820);
        let i: Value = serde_json::from_str(&info("agentSpeaking", "on")).unwrap();
        assert_eq!(
            i,
            json!({"type":"info","name":"agentSpeaking","value":"on"})
        );
        let d: Value = serde_json::from_str(&dtmf('5')).unwrap();
        assert_eq!(d, json!({"type":"dtmf","digit":"5"}));
    }
}
