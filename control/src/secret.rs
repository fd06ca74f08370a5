//! Secrets: compared in constant time and kept out of logs.

use std::borrow::Cow;
use subtle::ConstantTimeEq;

/// Whether `given` is the secret `expected`, in time independent of where they differ (a
/// plain `==` stops at the first differing byte, which lets a network attacker find a token
/// a byte at a time). Only the length may show.
pub fn matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// `url` with any credentials in it replaced by `***`: for logs and Notifications, which
/// outlive the request and are read by people who must not learn an application's password.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            Cow::Owned(u.to_string())
        }
        Ok(_) => Cow::Borrowed(url),
        // Not a URL we can take apart: keep only what cannot hold a password.
        Err(_) => match url.split_once('@') {
            Some((_, rest)) => Cow::Owned(format!("***@{rest}")),
            None => Cow::Borrowed(url),
        },
    }
}

/// The Debug form of a secret.
pub const REDACTED: &str = "\"***\"";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_themselves() {
        assert!(matches("s3cret", "s3cret"));
        assert!(!matches("s3cret", "s3creT"));
        assert!(!matches("s3cret", "s3cre"));
        assert!(!matches("s3cret", ""));
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:pass@app.example.com/voice?x=1"),
            "https://***@app.example.com/voice?x=1"
        );
        assert_eq!(
            redact_url("wss://token@app.example.com/s"),
            "wss://***@app.example.com/s"
        );
        assert_eq!(
            redact_url("https://app.example.com/v"),
            "https://app.example.com/v"
        );
        assert_eq!(redact_url("not a url:pw@host"), "***@host");
    }
}
