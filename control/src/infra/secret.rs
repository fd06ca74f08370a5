//! Secrets: compared in constant time and kept out of logs.

use std::borrow::Cow;
use subtle::ConstantTimeEq;

/// Whether `given` is the secret `expected`, in time independent of where they differ (a
/// plain `==` stops at the first differing byte, which lets a network attacker find a token
/// a byte at a time). Only the length may show.
pub fn matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// `len` random letters and digits (from the OS-seeded thread generator): generated
/// passwords, user names and API key secrets.
pub fn random_alphanumeric(len: usize) -> String {
    rand::distr::SampleString::sample_string(&rand::distr::Alphanumeric, &mut rand::rng(), len)
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

/// `text` with the credentials of every URL in it (`scheme://user:password@host…`) replaced
/// by `***`: for whole log lines and error messages, whatever code wrote them, so a URL that
/// reaches a log or a stored message by a path nobody thought of still shows no password.
pub fn redact_urls_in(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first of these; userinfo is what precedes its last '@'.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(userinfo) => {
                out.push_str("***");
                rest = &tail[userinfo..];
                changed = true;
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// The Debug form of a secret (the call core's, whose routing prints trunks' passwords so).
pub use switchboard_core::REDACTED;

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

    #[test]
    fn credentials_anywhere_in_a_text_are_redacted() {
        assert_eq!(
            redact_urls_in(
                "stream failed url=wss://app:pw@x.example/s?t=1 then GET https://u:p@y.example/a and http://z.example/@me"
            ),
            "stream failed url=wss://***@x.example/s?t=1 then GET https://***@y.example/a and http://z.example/@me"
        );
        assert_eq!(
            redact_urls_in(r#"bad URL "https://a:b@c:d@h/x": error"#),
            r#"bad URL "https://***@h/x": error"#
        );
        assert!(matches!(
            redact_urls_in("no credentials in https://h.example/x"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            redact_urls_in("ends with http://u:p@"),
            "ends with http://***@"
        );
    }
}
