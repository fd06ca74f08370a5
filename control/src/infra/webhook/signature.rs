//! Request signatures of the Twilio dialect (`X-Twilio-Signature`; SignalWire signs the same
//! string with its signing key as `X-SignalWire-Signature`): base64 of an HMAC over the full
//! URL as the application configured it, followed by each POST parameter's name and value in
//! name order (values of a repeated name in their own order). GET requests sign the URL alone.
//! JSON bodies are covered by a `bodySHA256` query parameter and sign the URL alone.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// The default: keyed by the account's auth token (or SignalWire signing key).
    HmacSha1,
    /// Twilio's shared-key variant, announced by `X-Twilio-Webhooks-Signature-Settings`.
    HmacSha256,
}

/// The string that is signed: the URL, then the sorted parameters, each `name` + `value`.
pub fn string_to_sign(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then by value for a repeated name, as the official validators sort; identical
    // pairs are signed once.
    sorted.sort();
    sorted.dedup();
    let mut s = String::from(url);
    for (name, value) in sorted {
        s.push_str(name);
        s.push_str(value);
    }
    s
}

/// The signature of a form-encoded request (POST parameters in `params`; none for GET).
pub fn sign(key: &str, url: &str, params: &[(String, String)], algorithm: Algorithm) -> String {
    let message = string_to_sign(url, params);
    let tag = match algorithm {
        Algorithm::HmacSha1 => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("any key size");
            mac.update(message.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::HmacSha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key size");
            mac.update(message.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    STANDARD.encode(tag)
}

/// A JSON request's URL with the `bodySHA256` parameter that binds the body to the signature
/// (which is then computed over this URL with no parameters).
pub fn url_with_body_hash(url: &str, body: &[u8]) -> String {
    let hash = hex::encode(Sha256::digest(body));
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}bodySHA256={hash}")
}

#[cfg(test)]
mod tests {
    //! The test vectors of ../shared/reference/twilio.md §3, computed with Twilio's own
    //! Python validator (Node's agrees).
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const V2_TOKEN: &str = "abcdef0123456789abcdef0123456789";

    fn v2_params() -> Vec<(String, String)> {
        let account = format!("AC{}", "0".repeat(32));
        let call = format!("CA{}", "1".repeat(32));
        params(&[
            ("AccountSid", &account),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", &call),
            ("CallStatus", "ringing"),
            ("Called", "+15005550006"),
            ("Caller", "+14155551234"),
            ("Direction", "inbound"),
            ("From", "+14155551234"),
            ("To", "+15005550006"),
        ])
    }

    #[test]
    fn v1_post_with_a_query_string_in_both_algorithms() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            string_to_sign(url, &p),
            "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212"
        );
        assert_eq!(
            sign("12345", url, &p, Algorithm::HmacSha1),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert_eq!(
            sign("12345", url, &p, Algorithm::HmacSha256),
            "Rmm4Vzj+Ky7JGoWXMCsZDZuHDszLr9xvdbvitrDr4/M="
        );
    }

    #[test]
    fn v2_voice_webhook_and_v3_its_get_form() {
        let url = "https://example.com/voice";
        assert_eq!(
            sign(V2_TOKEN, url, &v2_params(), Algorithm::HmacSha1),
            "05B++CpOQit7IUrGx11hvLpT4nE="
        );
        let query: Vec<String> = v2_params()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
            .collect();
        let get_url = format!("{url}?{}", query.join("&"));
        assert_eq!(
            sign(V2_TOKEN, &get_url, &[], Algorithm::HmacSha1),
            "F1K1Q0QsKRcwxr4dxGXlcNfQ3jI="
        );
    }

    /// SignalWire signs form posts the same way with its signing key (the reference's vector,
    /// validated by the `signalwire` 2.1.1 and `twilio` 6.54 validators).
    #[test]
    fn signalwire_signing_key_vector() {
        let p = params(&[
            ("AccountSid", "11111111-2222-3333-4444-555555555555"),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("From", "+15550002222"),
            ("To", "+15550001111"),
        ]);
        assert_eq!(
            sign(
                "PSK_emulator_test_key",
                "http://127.0.0.1:3000/voice?foo=1",
                &p,
                Algorithm::HmacSha1
            ),
            "LXRzF2j3V70p7U03LAdNitq1k+8="
        );
    }

    #[test]
    fn v4_websocket_handshake() {
        assert_eq!(
            sign(
                V2_TOKEN,
                "wss://example.com/media",
                &[],
                Algorithm::HmacSha1
            ),
            "Qty0llzgNdCFyHzFZLQ9HQs3NP4="
        );
    }

    #[test]
    fn v5_status_callback() {
        let account = format!("AC{}", "0".repeat(32));
        let call = format!("CA{}", "1".repeat(32));
        let p = params(&[
            ("AccountSid", &account),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", &call),
            ("CallStatus", "completed"),
            ("CallDuration", "42"),
            ("Duration", "1"),
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", "3"),
            ("Timestamp", "Tue, 04 Aug 2015 16:25:16 +0000"),
            ("Direction", "outbound-api"),
            ("From", "+15005550006"),
            ("To", "+14155551234"),
            ("SipResponseCode", "200"),
        ]);
        assert_eq!(
            sign(
                V2_TOKEN,
                "https://example.com/status?callId=42",
                &p,
                Algorithm::HmacSha1
            ),
            "vv2bul377VzAmL6dnjWzt094FAc="
        );
    }

    #[test]
    fn v6_json_body_is_bound_by_its_hash() {
        let url = url_with_body_hash(
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            br#"{"property": "value", "boolean": true}"#,
        );
        assert_eq!(
            url,
            "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        assert_eq!(
            sign("12345", &url, &[], Algorithm::HmacSha1),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
    }

    #[test]
    fn v7_repeated_names_sort_their_values_and_v8_keeps_the_port() {
        let p = params(&[
            ("StatusCallbackEvent", "ringing"),
            ("CallSid", "CA1"),
            ("StatusCallbackEvent", "answered"),
        ]);
        assert_eq!(
            string_to_sign("https://x.com/s", &p),
            "https://x.com/sCallSidCA1StatusCallbackEventansweredStatusCallbackEventringing"
        );
        assert_eq!(
            sign("12345", "https://x.com/s", &p, Algorithm::HmacSha1),
            "R0Yvv7p4voeWq55H7xWdmdnNflw="
        );
        let p = params(&[("CallSid", "CA1")]);
        assert_eq!(
            sign(
                "12345",
                "http://127.0.0.1:8080/voice",
                &p,
                Algorithm::HmacSha1
            ),
            "Rq/7hfp28PJhu7tpq4Ysopg2Kkw="
        );
    }
}
