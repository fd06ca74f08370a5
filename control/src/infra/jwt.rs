//! JSON Web Tokens signed with HMAC (RFC 7519, JWS compact form RFC 7515): the tokens
//! browsers log in with — Telnyx's telephony-credential tokens (HS512) and, next, Twilio's
//! access tokens (HS256). Written here rather than taken from `jsonwebtoken` because only
//! the two HMAC algorithms are needed, `hmac` and `sha2` are already built, and the crate's
//! crypto back-end (ring or aws-lc-rs) would be a third TLS-grade crypto stack in the build.
//! Verification is strict: the header must name the expected algorithm (no `none`, no
//! switching), the signature is checked in constant time, `exp` is required and `nbf`
//! honoured.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// The longest token taken (a browser's token is well under 2 KB).
pub const MAX_TOKEN: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Hs256,
    Hs512,
}

impl Algorithm {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs512 => "HS512",
        }
    }

    pub(crate) fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Hs256 => {
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Self::Hs512 => {
                let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).expect("any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with another algorithm")]
    Algorithm,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYet,
}

/// A signed token: `header` (besides `alg`) and `claims` as given.
pub fn sign(alg: Algorithm, key: &[u8], header: Map<String, Value>, claims: &Value) -> String {
    let mut header = header;
    header.insert("alg".into(), Value::from(alg.name()));
    let head = URL_SAFE_NO_PAD.encode(Value::Object(header).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{head}.{body}");
    let sig = URL_SAFE_NO_PAD.encode(alg.mac(key, input.as_bytes()));
    format!("{input}.{sig}")
}

/// A JSON object: a token's header or its claims.
pub type Object = Map<String, Value>;

/// A token's claims, read without verifying it: to find which key verifies it (its issuer or
/// subject names the key). Never trust what this returns before [`verify`].
pub fn peek(token: &str) -> Result<(Object, Object), JwtError> {
    if token.len() > MAX_TOKEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let object = |part: &str| -> Result<Map<String, Value>, JwtError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Err(JwtError::Malformed),
        }
    };
    Ok((object(head)?, object(body)?))
}

/// The token's claims if `key` signed it with `alg` and it is valid at `now_secs` (Unix).
pub fn verify(
    token: &str,
    alg: Algorithm,
    key: &[u8],
    now_secs: i64,
) -> Result<Map<String, Value>, JwtError> {
    let (header, claims) = peek(token)?;
    if header.get("alg").and_then(Value::as_str) != Some(alg.name()) {
        return Err(JwtError::Algorithm);
    }
    let (input, sig) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| JwtError::Malformed)?;
    // Constant time, so the comparison tells nothing about how much of a forgery was right.
    let expected = alg.mac(key, input.as_bytes());
    if !bool::from(expected.ct_eq(&sig)) {
        return Err(JwtError::Signature);
    }
    let time = |k: &str| claims.get(k).and_then(Value::as_i64);
    match time("exp") {
        Some(exp) if exp > now_secs => {}
        _ => return Err(JwtError::Expired),
    }
    if time("nbf").is_some_and(|nbf| nbf > now_secs) {
        return Err(JwtError::NotYet);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_token_verifies_with_its_key_and_algorithm_until_it_expires() {
        let claims = json!({"sub": "cred", "exp": 2_000, "iat": 1_000});
        let t = sign(Algorithm::Hs512, b"key", Map::new(), &claims);
        let got = verify(&t, Algorithm::Hs512, b"key", 1_500).unwrap();
        assert_eq!(got["sub"], "cred");
        assert_eq!(
            verify(&t, Algorithm::Hs512, b"other", 1_500),
            Err(JwtError::Signature)
        );
        assert_eq!(
            verify(&t, Algorithm::Hs256, b"key", 1_500),
            Err(JwtError::Algorithm)
        );
        assert_eq!(
            verify(&t, Algorithm::Hs512, b"key", 2_000),
            Err(JwtError::Expired)
        );
        // A claim changed after signing.
        let (head, rest) = t.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(json!({"sub": "other", "exp": 2_000}).to_string());
        let forged = format!("{head}.{forged}.{sig}");
        assert_eq!(
            verify(&forged, Algorithm::Hs512, b"key", 1_500),
            Err(JwtError::Signature)
        );
        // alg "none" with no signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_eq!(
            verify(&none, Algorithm::Hs512, b"key", 1_500),
            Err(JwtError::Algorithm)
        );
    }

    #[test]
    fn what_is_not_a_token_is_malformed_and_a_token_needs_exp_and_honours_nbf() {
        for bad in ["", "a.b", "a.b.c.d", "!!.??.xx", &"a".repeat(MAX_TOKEN + 1)] {
            assert_eq!(peek(bad).err(), Some(JwtError::Malformed), "{bad:.20}");
        }
        let no_exp = sign(Algorithm::Hs256, b"k", Map::new(), &json!({"sub": "x"}));
        assert_eq!(
            verify(&no_exp, Algorithm::Hs256, b"k", 0),
            Err(JwtError::Expired)
        );
        let later = sign(
            Algorithm::Hs256,
            b"k",
            Map::new(),
            &json!({"exp": 100, "nbf": 50}),
        );
        assert_eq!(
            verify(&later, Algorithm::Hs256, b"k", 10),
            Err(JwtError::NotYet)
        );
        assert!(verify(&later, Algorithm::Hs256, b"k", 60).is_ok());
    }
}
