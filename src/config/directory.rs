//! `[[accounts]]`, `[[numbers]]` and `[[connections]]`: who may use the provider APIs, which
//! application answers each number, and where Telnyx applications' webhooks go.

use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use switchboard_control::infra::accounts::{
    Account, Connection, HttpMethod, Listing, Number, NumberRange, TexmlVoice,
};
use switchboard_control::infra::egress::Reach;
use switchboard_control::infra::sid::is_sid;
use switchboard_control::services::speech::ProviderEngines;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSection {
    /// `AC` and 32 lower-case hex digits.
    pub sid: String,
    pub auth_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKeySection>,
    /// Numbers the account may claim through the API: `+1555123*`, `+15551230000-+15551230099`
    /// or one number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub number_ranges: Vec<String>,
    /// Caller IDs its calls may present besides its own numbers (same forms as
    /// `number_ranges`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caller_ids: Vec<String>,
    /// Its own map of speech providers' names to engines (`deepgram=http`), over
    /// `speech.providers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub speech_providers: Vec<String>,
    /// Calls it may have at once, and place a second (`[limits]` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_second: Option<f64>,
    /// Narrow what its URLs may reach below `[egress]` (never widen it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_loopback: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private: Option<bool>,
    /// Telnyx API keys (`KEY…`): `Authorization: Bearer KEY…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telnyx_api_keys: Vec<String>,
    /// Base64 of the 32-byte Ed25519 seed that signs its Telnyx webhooks; derived from the
    /// auth token when absent (`switchboard telnyx-public-key` prints the public half).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telnyx_private_key: Option<String>,
}

/// A Telnyx Call Control application.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSection {
    /// Digits (Telnyx's ids are numbers, sent as strings).
    pub id: String,
    pub account_sid: String,
    #[serde(default)]
    pub name: String,
    pub webhook_event_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_event_failover_url: Option<String>,
    #[serde(default = "api_version_2")]
    pub webhook_api_version: String,
    /// Hang up an incoming call the application has sent no command for within
    /// `first_command_timeout_secs` (Telnyx's default: off, 30 s).
    #[serde(default)]
    pub first_command_timeout: bool,
    #[serde(default = "thirty")]
    pub first_command_timeout_secs: u64,
}

/// A Telnyx TeXML application: a connection whose calls run the TeXML its voice URL returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TexmlApplicationSection {
    /// Digits, in the same id space as `[[connections]]`.
    pub id: String,
    pub account_sid: String,
    #[serde(default)]
    pub name: String,
    pub voice_url: String,
    #[serde(default = "post")]
    pub voice_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_fallback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<String>,
    #[serde(default = "post")]
    pub status_callback_method: String,
}

fn thirty() -> u64 {
    30
}

fn api_version_2() -> String {
    "2".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// `SK` and 32 lower-case hex digits.
    pub sid: String,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberSection {
    pub phone_number: String,
    pub account_sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_url: Option<String>,
    #[serde(default = "post")]
    pub voice_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_fallback_url: Option<String>,
    #[serde(default = "post")]
    pub voice_fallback_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<String>,
    #[serde(default = "post")]
    pub status_callback_method: String,
    /// A Telnyx Call Control application (`[[connections]]` id) of the same account that
    /// answers the number instead of its voice URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
}

fn post() -> String {
    "POST".into()
}

pub(super) fn validate(
    accounts: &[AccountSection],
    numbers: &[NumberSection],
    (connections, texml_applications): (&[ConnectionSection], &[TexmlApplicationSection]),
    reach: Reach,
) -> Result<Listing, ConfigError> {
    let mut directory = Listing::default();
    for (i, a) in accounts.iter().enumerate() {
        let key = |k: &str| format!("accounts[{i}].{k}");
        if !is_sid(&a.sid, "AC") {
            return Err(invalid(
                key("sid"),
                "must be AC and 32 lower-case hex digits",
            ));
        }
        if directory.account(&a.sid).is_some() {
            return Err(invalid(key("sid"), "is given twice"));
        }
        if a.auth_token.is_empty() {
            return Err(invalid(key("auth_token"), "must not be empty"));
        }
        let mut api_keys = Vec::new();
        for (j, k) in a.api_keys.iter().enumerate() {
            if !is_sid(&k.sid, "SK") || k.secret.is_empty() {
                return Err(invalid(
                    key(&format!("api_keys[{j}]")),
                    "needs an SK sid (32 lower-case hex digits) and a secret",
                ));
            }
            api_keys.push((k.sid.clone(), k.secret.clone()));
        }
        let mut number_ranges = Vec::new();
        for (j, r) in a.number_ranges.iter().enumerate() {
            number_ranges.push(NumberRange::parse(r).ok_or_else(|| {
                invalid(
                    key(&format!("number_ranges[{j}]")),
                    format!("{r:?} is not +DIGITS, +DIGITS* or +DIGITS-+DIGITS"),
                )
            })?);
        }
        let mut caller_ids = Vec::new();
        for (j, r) in a.caller_ids.iter().enumerate() {
            caller_ids.push(NumberRange::parse(r).ok_or_else(|| {
                invalid(
                    key(&format!("caller_ids[{j}]")),
                    format!("{r:?} is not +DIGITS, +DIGITS* or +DIGITS-+DIGITS"),
                )
            })?);
        }
        let mut telnyx_api_keys = Vec::new();
        for (j, k) in a.telnyx_api_keys.iter().enumerate() {
            if k.len() < 16 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    key(&format!("telnyx_api_keys[{j}]")),
                    "must be at least 16 printable characters",
                ));
            }
            if directory.by_telnyx_key(k).is_some() || telnyx_api_keys.contains(k) {
                return Err(invalid(
                    key(&format!("telnyx_api_keys[{j}]")),
                    "is given twice",
                ));
            }
            telnyx_api_keys.push(k.clone());
        }
        let telnyx_seed = match a.telnyx_private_key.as_deref().filter(|k| !k.is_empty()) {
            None => Account::derived_telnyx_seed(&a.auth_token),
            Some(k) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(k)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        invalid(
                            key("telnyx_private_key"),
                            "must be the base64 of a 32-byte Ed25519 seed",
                        )
                    })?
            }
        };
        directory.accounts.push(Account {
            sid: a.sid.clone(),
            auth_token: a.auth_token.clone(),
            signing_key: a.signing_key.clone().filter(|s| !s.is_empty()),
            project_id: a.project_id.clone().filter(|s| !s.is_empty()),
            api_keys,
            number_ranges,
            caller_ids,
            reach: reach.and(Reach {
                loopback: a.allow_loopback.unwrap_or(true),
                private: a.allow_private.unwrap_or(true),
            }),
            telnyx_api_keys,
            telnyx_seed,
            speech_providers: ProviderEngines::parse(&a.speech_providers)
                .map_err(|e| invalid(key("speech_providers"), &e))?,
        });
    }
    for (i, n) in numbers.iter().enumerate() {
        let key = |k: &str| format!("numbers[{i}].{k}");
        if directory.account(&n.account_sid).is_none() {
            return Err(invalid(
                key("account_sid"),
                format!("no account {:?}", n.account_sid),
            ));
        }
        if n.phone_number.is_empty() || directory.number(&n.phone_number).is_some() {
            return Err(invalid(key("phone_number"), "must be given, once"));
        }
        let url = |k: &str, v: &Option<String>| -> Result<Option<String>, ConfigError> {
            match v.as_deref().filter(|u| !u.is_empty()) {
                None => Ok(None),
                Some(u) => match url::Url::parse(u) {
                    Ok(p) if matches!(p.scheme(), "http" | "https") => Ok(Some(u.to_owned())),
                    _ => Err(invalid(key(k), format!("{u:?} is not an http(s) URL"))),
                },
            }
        };
        let method = |k: &str, v: &str| {
            HttpMethod::parse(v).ok_or_else(|| invalid(key(k), format!("{v:?} is not GET or POST")))
        };
        directory.numbers.push(Number {
            phone_number: n.phone_number.clone(),
            account_sid: n.account_sid.clone(),
            voice_url: url("voice_url", &n.voice_url)?,
            voice_method: method("voice_method", &n.voice_method)?,
            voice_fallback_url: url("voice_fallback_url", &n.voice_fallback_url)?,
            voice_fallback_method: method("voice_fallback_method", &n.voice_fallback_method)?,
            status_callback: url("status_callback", &n.status_callback)?,
            status_callback_method: method("status_callback_method", &n.status_callback_method)?,
            connection_id: n.connection_id.clone().filter(|c| !c.is_empty()),
        });
    }
    for (i, c) in connections.iter().enumerate() {
        let key = |k: &str| format!("connections[{i}].{k}");
        new_connection(&directory, &key, &c.id, &c.account_sid)?;
        if c.webhook_api_version != "2" {
            return Err(invalid(
                key("webhook_api_version"),
                "only \"2\" (the JSON envelope) is served",
            ));
        }
        let url = |k: &str, u: &str| match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => Ok(u.to_owned()),
            _ => Err(invalid(key(k), format!("{u:?} is not an http(s) URL"))),
        };
        directory.connections.push(Connection {
            id: c.id.clone(),
            account_sid: c.account_sid.clone(),
            name: c.name.clone(),
            webhook_event_url: url("webhook_event_url", &c.webhook_event_url)?,
            webhook_event_failover_url: match c.webhook_event_failover_url.as_deref() {
                None | Some("") => None,
                Some(u) => Some(url("webhook_event_failover_url", u)?),
            },
            webhook_api_version: c.webhook_api_version.clone(),
            first_command_timeout: c.first_command_timeout,
            first_command_timeout_secs: match c.first_command_timeout_secs {
                secs @ 1..=Connection::MAX_FIRST_COMMAND_SECS => secs,
                _ => {
                    return Err(invalid(
                        key("first_command_timeout_secs"),
                        format!("must be 1 to {}", Connection::MAX_FIRST_COMMAND_SECS),
                    ));
                }
            },
            texml: None,
            credential: None,
            ip_trunk: None,
            settings: Default::default(),
        });
    }
    for (i, t) in texml_applications.iter().enumerate() {
        let key = |k: &str| format!("texml_applications[{i}].{k}");
        new_connection(&directory, &key, &t.id, &t.account_sid)?;
        let url = |k: &str, u: &str| match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => Ok(u.to_owned()),
            _ => Err(invalid(key(k), format!("{u:?} is not an http(s) URL"))),
        };
        let optional = |k: &str, u: &Option<String>| match u.as_deref() {
            None | Some("") => Ok(None),
            Some(u) => url(k, u).map(Some),
        };
        let method = |k: &str, v: &str| {
            HttpMethod::parse(v).ok_or_else(|| invalid(key(k), format!("{v:?} is not GET or POST")))
        };
        directory.connections.push(Connection {
            id: t.id.clone(),
            account_sid: t.account_sid.clone(),
            name: t.name.clone(),
            webhook_event_url: String::new(),
            webhook_event_failover_url: None,
            webhook_api_version: "2".into(),
            first_command_timeout: false,
            first_command_timeout_secs: 30,
            texml: Some(TexmlVoice {
                voice_url: url("voice_url", &t.voice_url)?,
                voice_method: method("voice_method", &t.voice_method)?,
                voice_fallback_url: optional("voice_fallback_url", &t.voice_fallback_url)?,
                status_callback: optional("status_callback", &t.status_callback)?,
                status_callback_method: method(
                    "status_callback_method",
                    &t.status_callback_method,
                )?,
            }),
            credential: None,
            ip_trunk: None,
            settings: Default::default(),
        });
    }
    for (i, n) in directory.numbers.iter().enumerate() {
        if let Some(id) = &n.connection_id
            && directory
                .connection(id)
                .is_none_or(|c| c.account_sid != n.account_sid)
        {
            return Err(invalid(
                format!("numbers[{i}].connection_id"),
                format!("no connection {id:?} of account {:?}", n.account_sid),
            ));
        }
    }
    Ok(directory)
}

/// Checks a new connection's id (digits, not taken by another connection of either kind)
/// and account.
fn new_connection(
    directory: &Listing,
    key: &dyn Fn(&str) -> String,
    id: &str,
    account_sid: &str,
) -> Result<(), ConfigError> {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(key("id"), "must be 1 to 32 digits"));
    }
    if directory.connection(id).is_some() {
        return Err(invalid(key("id"), "is given twice"));
    }
    if directory.account(account_sid).is_none() {
        return Err(invalid(
            key("account_sid"),
            format!("no account {account_sid:?}"),
        ));
    }
    Ok(())
}
