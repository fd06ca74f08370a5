//! `[[accounts]]` and `[[numbers]]`: who may use the provider APIs, and which application
//! answers each number.

use super::{ConfigError, invalid};
use serde::{Deserialize, Serialize};
use switchboard_control::accounts::{Account, Directory, HttpMethod, Number, NumberRange, is_sid};
use switchboard_control::egress::Reach;

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
    /// Narrow what its URLs may reach below `[egress]` (never widen it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_loopback: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private: Option<bool>,
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
}

fn post() -> String {
    "POST".into()
}

pub(super) fn validate(
    accounts: &[AccountSection],
    numbers: &[NumberSection],
    reach: Reach,
) -> Result<Directory, ConfigError> {
    let mut directory = Directory::default();
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
        directory.accounts.push(Account {
            sid: a.sid.clone(),
            auth_token: a.auth_token.clone(),
            signing_key: a.signing_key.clone().filter(|s| !s.is_empty()),
            project_id: a.project_id.clone().filter(|s| !s.is_empty()),
            api_keys,
            number_ranges,
            reach: reach.and(Reach {
                loopback: a.allow_loopback.unwrap_or(true),
                private: a.allow_private.unwrap_or(true),
            }),
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
        });
    }
    Ok(directory)
}
