//! Twilio access tokens for the Voice SDK: HS256 JWTs (header `cty: twilio-fpa;v=1`) an
//! application mints with one of its account's API key secrets (`iss` the key's SID, `sub`
//! the account), carrying a voice grant (`identity`, `incoming.allow`,
//! `outgoing.application_sid` and `params`).

use crate::infra::accounts::Account;
use crate::infra::jwt::{self, Algorithm, JwtError};
use serde_json::Value;

/// The longest identity taken.
const MAX_IDENTITY: usize = 121;

/// What an access token grants.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub account: String,
    pub identity: String,
    pub incoming: bool,
    /// `voice.outgoing.application_sid`.
    pub application_sid: Option<String>,
    /// `voice.outgoing.params`: merged into every `device.connect()`'s.
    pub params: Vec<(String, String)>,
    /// Seconds it is good for from now.
    pub ttl: i64,
}

/// Twilio's signalling errors for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// 31204: not a token, or not one of the account's keys signed.
    Invalid,
    /// 31205 (the SDK's AccessTokenExpired, 20104).
    Expired,
    /// 20157: it is good for longer than Twilio allows ([`MAX_TTL_SECS`]).
    TooLong,
}

/// The longest an access token may be good for: Twilio's 24 hours.
pub const MAX_TTL_SECS: i64 = 24 * 3600;

impl TokenError {
    /// The signalling error code the SDK maps to its own error.
    pub fn code(self) -> u32 {
        match self {
            Self::Invalid => 31204,
            Self::Expired => 31205,
            Self::TooLong => 20157,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Invalid => "JWT token is invalid",
            Self::Expired => "JWT token has expired",
            Self::TooLong => "Expiration Time Exceeds Maximum Time Allowed",
        }
    }
}

/// An access token's grant: signed (HS256) by the secret of the API key its `iss` names, of
/// the account its `sub` names, not expired, with a voice grant and an identity.
pub fn verify_token(
    account_of: impl Fn(&str) -> Option<Account>,
    token: &str,
    now_secs: i64,
) -> Result<Grant, TokenError> {
    let (_, claims) = jwt::peek(token).map_err(|_| TokenError::Invalid)?;
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    let account = text("sub").and_then(&account_of);
    let key = text("iss").and_then(|iss| {
        let account = account.as_ref()?;
        (account.api_keys.iter())
            .find(|(sid, _)| sid == iss)
            .map(|(_, secret)| secret.clone())
    });
    let (Some(account), Some(key)) = (account, key) else {
        return Err(TokenError::Invalid);
    };
    let claims = match jwt::verify(token, Algorithm::Hs256, key.as_bytes(), now_secs) {
        Ok(c) => c,
        Err(JwtError::Expired) => return Err(TokenError::Expired),
        Err(_) => return Err(TokenError::Invalid),
    };
    let grants = &claims.get("grants").cloned().unwrap_or(Value::Null);
    let identity = grants["identity"].as_str().unwrap_or_default();
    if identity.is_empty() || identity.len() > MAX_IDENTITY || grants["voice"].is_null() {
        return Err(TokenError::Invalid);
    }
    let voice = &grants["voice"];
    let outgoing = &voice["outgoing"];
    let params = (outgoing["params"].as_object())
        .map(|o| {
            o.iter()
                .take(32)
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or(now_secs);
    if exp.saturating_sub(now_secs) > MAX_TTL_SECS {
        return Err(TokenError::TooLong);
    }
    Ok(Grant {
        account: account.sid.clone(),
        identity: identity.to_owned(),
        incoming: voice["incoming"]["allow"].as_bool().unwrap_or(false),
        application_sid: outgoing["application_sid"].as_str().map(str::to_owned),
        params,
        ttl: exp - now_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn account() -> Account {
        let mut a = Account::for_test("AC0123456789abcdef0123456789abcdef");
        a.api_keys = vec![("SK1".into(), "secret".into())];
        a
    }

    fn token(iss: &str, secret: &str, exp: i64, grants: Value) -> String {
        let claims = json!({"jti": "SK1-1", "iss": iss, "sub": "AC0123456789abcdef0123456789abcdef",
                            "exp": exp, "grants": grants});
        let mut header = Map::new();
        header.insert("cty".into(), json!("twilio-fpa;v=1"));
        header.insert("typ".into(), json!("JWT"));
        jwt::sign(Algorithm::Hs256, secret.as_bytes(), header, &claims)
    }

    #[test]
    fn an_access_token_grants_its_identity_app_and_params_to_its_accounts_key_only() {
        let of = |sid: &str| (sid == "AC0123456789abcdef0123456789abcdef").then(account);
        let grants = json!({"identity": "alice", "voice": {"incoming": {"allow": true},
            "outgoing": {"application_sid": "AP1", "params": {"foo": "bar"}}}});
        let g = verify_token(of, &token("SK1", "secret", 2000, grants.clone()), 1000).unwrap();
        assert_eq!(
            (g.identity.as_str(), g.incoming, g.ttl),
            ("alice", true, 1000)
        );
        assert_eq!(g.application_sid.as_deref(), Some("AP1"));
        assert_eq!(g.params, vec![("foo".to_owned(), "bar".to_owned())]);
        let bad = |t: &str| verify_token(of, t, 1000).err();
        assert_eq!(
            bad(&token("SK1", "wrong", 2000, grants.clone())),
            Some(TokenError::Invalid)
        );
        assert_eq!(
            bad(&token("SK2", "secret", 2000, grants.clone())),
            Some(TokenError::Invalid)
        );
        assert_eq!(
            bad(&token("SK1", "secret", 999, grants.clone())),
            Some(TokenError::Expired)
        );
        assert_eq!(bad("not a token"), Some(TokenError::Invalid));
        // Twilio's ceiling: 24 hours from now at the most.
        let day = 1000 + MAX_TTL_SECS;
        assert!(verify_token(of, &token("SK1", "secret", day, grants.clone()), 1000).is_ok());
        assert_eq!(
            bad(&token("SK1", "secret", day + 1, grants.clone())),
            Some(TokenError::TooLong)
        );
        assert_eq!(TokenError::TooLong.code(), 20157);
        let no_voice = json!({"identity": "alice"});
        assert_eq!(
            bad(&token("SK1", "secret", 2000, no_voice)),
            Some(TokenError::Invalid)
        );
    }
}
