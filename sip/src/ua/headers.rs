//! An application's headers on our requests and responses: which it may add, and which of a
//! caller's it is shown.

use crate::message::Request;

/// Headers the UA writes itself or that steer routing, authentication or the body: an
/// application may not add them to a request.
pub(super) const OWN_HEADERS: &[&str] = &[
    "via",
    "v",
    "from",
    "f",
    "to",
    "t",
    "call-id",
    "i",
    "cseq",
    "contact",
    "m",
    "max-forwards",
    "content-type",
    "c",
    "content-length",
    "l",
    "content-encoding",
    "e",
    "route",
    "record-route",
    "allow",
    "user-agent",
    "authorization",
    "proxy-authorization",
    "proxy-require",
    "require",
    "supported",
    "k",
    "expires",
    "event",
    "o",
    "refer-to",
    "r",
    "session-expires",
    "x",
    "min-se",
    "www-authenticate",
    "proxy-authenticate",
    // Who the caller is, which a carrier trusts from its peer: the operator's to assert.
    "p-asserted-identity",
    "p-preferred-identity",
    "remote-party-id",
    "identity",
    "y",
    "privacy",
];

/// Whether an application may add `name: value` to a request: a header name (an RFC 3261
/// token) that is not one of the UA's own, and a value of at most 1024 visible characters
/// (no CR or LF, which would start a header of the sender's choosing).
pub fn is_custom_header(name: &str, value: &str) -> bool {
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(token)
        && !OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str())
        && passable_value(value)
}

/// Identity and diversion headers a B2BUA passes within a trust domain (RFC 3325): who the
/// call is from, whether that may be shown, and where it was diverted from.
pub const ASSERTED_HEADERS: &[&str] = &[
    "P-Asserted-Identity",
    "Privacy",
    "Diversion",
    "History-Info",
];

/// At most this many values of each asserted header are passed on.
pub const MAX_ASSERTED_VALUES: usize = 8;

/// A header value that may be passed from one leg to another: bounded in length, and with no
/// control character that could end it and start a header of its own.
pub(super) fn passable_value(value: &str) -> bool {
    value.len() <= 1024
        && value
            .chars()
            .all(|c| c == ' ' || c == '\t' || !c.is_control())
}

/// Headers of a received INVITE besides the SIP ones that an application may be shown
/// (Telnyx's `custom_headers` and `sip_headers`).
pub(super) const SHOWN_HEADERS: &[&str] = &["user-to-user", "diversion"];

/// At most this many of a request's headers are shown to an application.
pub(super) const MAX_SHOWN_HEADERS: usize = 20;

/// The headers of a received INVITE an application is shown: its `X-` headers, `User-to-User`
/// and `Diversion` — at most `MAX_SHOWN_HEADERS`, each as bounded as a header an application
/// may add, the rest left out.
pub fn shown_headers(request: &Request) -> Vec<(String, String)> {
    request
        .headers
        .iter()
        .filter(|h| {
            let name = h.name.to_ascii_lowercase();
            name.starts_with("x-") || SHOWN_HEADERS.contains(&name.as_str())
        })
        .filter(|h| is_custom_header(&h.name, &h.value))
        .take(MAX_SHOWN_HEADERS)
        .map(|h| (h.name.to_string(), h.value.clone()))
        .collect()
}

/// Adds an application's headers (those [`is_custom_header`] lets through).
pub(super) fn add_custom(headers: &mut crate::message::Headers, custom: &[(String, String)]) {
    for (name, value) in custom.iter().filter(|(n, v)| is_custom_header(n, v)) {
        headers.push(name.as_str(), value.trim());
    }
}
