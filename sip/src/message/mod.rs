//! SIP messages: parsing (wire framing, then rsip for the request line and typed headers),
//! validation of the mandatory headers, building responses and encoding to bytes.

pub mod headers;
pub mod wire;

pub use headers::{CSeq, Headers, Via};
pub use rsip::{Method, Uri};
pub use wire::{RawHeader, WireError, WireMessage};

use bytes::Bytes;
use std::fmt::Write;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

/// Why a message was refused, and what to answer when it was a request whose Via we could read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    pub reason: String,
    /// Status code and the headers a stateless response needs (RFC 3261 §8.2.6.2).
    pub reply: Option<(u16, Headers)>,
}

impl ParseError {
    fn drop(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            reply: None,
        }
    }

    fn reject(code: u16, reason: impl Into<String>, wire: &WireMessage) -> Self {
        let reply = wire.is_request().then(|| {
            let mut h = Headers::new();
            for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                for raw in wire
                    .headers
                    .iter()
                    .filter(|r| r.name.eq_ignore_ascii_case(name))
                {
                    h.push(name, raw.value.clone());
                }
            }
            (code, h)
        });
        // Without a Via there is nowhere to send an answer.
        let reply = reply.filter(|(_, h)| h.get("Via").is_some());
        Self {
            reason: reason.into(),
            reply,
        }
    }
}

impl SipMessage {
    /// Parses one datagram.
    pub fn parse(data: &[u8]) -> Result<Self, ParseError> {
        let wire = wire::frame_datagram(data).map_err(|e| match &e.head {
            Some(head) => ParseError::reject(400, e.kind.to_string(), head),
            None => ParseError::drop(e.kind.to_string()),
        })?;
        Self::from_wire(wire)
    }

    /// Parses a framed message and checks what every transaction relies on. The header list
    /// moves into the message; it goes back to `wire` only to answer a request rejected here.
    pub fn from_wire(mut wire: WireMessage) -> Result<Self, ParseError> {
        let start = if wire.is_request() {
            Start::Request(parse_request_line(&wire)?)
        } else {
            Start::Response(parse_status_line(&wire)?)
        };
        let headers = Headers::from(std::mem::take(&mut wire.headers));
        let method = match &start {
            Start::Request((method, _)) => Some(method),
            Start::Response(_) => None,
        };
        if let Err((code, reason)) = check_headers(&headers, method) {
            wire.headers = headers.into();
            return Err(ParseError::reject(code, reason, &wire));
        }
        let body = wire.body;
        Ok(match start {
            Start::Request((method, uri)) => SipMessage::Request(Request {
                method,
                uri,
                headers,
                body,
            }),
            Start::Response((code, reason)) => SipMessage::Response(Response {
                code,
                reason,
                headers,
                body,
            }),
        })
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Self::Request(r) => &r.headers,
            Self::Response(r) => &r.headers,
        }
    }

    pub fn encode(&self) -> Bytes {
        match self {
            Self::Request(r) => r.encode(),
            Self::Response(r) => r.encode(),
        }
    }
}

/// A message's start line, parsed.
enum Start {
    Request((Method, Uri)),
    Response((u16, String)),
}

/// The headers every transaction relies on, present and well formed; for a request, the
/// CSeq's method is the request's. The error is the status and reason to answer with.
fn check_headers(headers: &Headers, method: Option<&Method>) -> Result<(), (u16, String)> {
    let bad = |what: &str| (400, format!("Missing or invalid {what}"));
    headers.top_via().ok_or_else(|| bad("Via"))?;
    let cseq = headers.cseq().ok_or_else(|| bad("CSeq"))?;
    headers.call_id().ok_or_else(|| bad("Call-ID"))?;
    for name in ["From", "To"] {
        headers::uri_of_name_addr(headers.get(name).unwrap_or_default())
            .ok_or_else(|| bad(name))?;
    }
    if let Some(mf) = headers.get("Max-Forwards") {
        mf.parse::<u32>().map_err(|_| bad("Max-Forwards"))?;
    }
    if method.is_some_and(|m| *m != cseq.method) {
        return Err((400, "CSeq method does not match the request".into()));
    }
    Ok(())
}

fn parse_request_line(wire: &WireMessage) -> Result<(Method, Uri), ParseError> {
    let reject = |code, reason: &str| ParseError::reject(code, reason, wire);
    let mut parts = wire.start_line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(400, "Malformed request line"));
    };
    if !method.bytes().all(wire::is_token_char) || method.is_empty() {
        return Err(reject(400, "Malformed method"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(reject(505, "Version Not Supported"));
    }
    let method: Method = method.parse().map_err(|_| reject(501, "Not Implemented"))?;
    let scheme = uri.split(':').next().unwrap_or_default();
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok || !uri.contains(':') {
        return Err(reject(400, "Malformed Request-URI"));
    }
    if !["sip", "sips", "tel"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
    {
        return Err(reject(416, "Unsupported URI Scheme"));
    }
    let uri = Uri::try_from(uri).map_err(|_| reject(400, "Malformed Request-URI"))?;
    Ok((method, uri))
}

fn parse_status_line(wire: &WireMessage) -> Result<(u16, String), ParseError> {
    let mut parts = wire.start_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ParseError::drop("malformed status line"));
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::drop("unsupported SIP version in response"));
    }
    let code: u16 = code
        .parse()
        .ok()
        .filter(|c| (100..700).contains(c) && code.len() == 3)
        .ok_or_else(|| ParseError::drop("invalid status code"))?;
    Ok((code, parts.next().unwrap_or_default().to_owned()))
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Self {
        Self {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// A response carrying the headers RFC 3261 §8.2.6.2 copies from the request; `to_tag` is
    /// added to To when it has none.
    pub fn response(&self, code: u16, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::new();
        headers.copy_from(&self.headers, "Via");
        if let Some(from) = self.headers.get("From") {
            headers.push("From", from);
        }
        if let Some(to) = self.headers.get("To") {
            let to = match to_tag {
                Some(tag) if code != 100 => headers::with_tag(to, tag),
                _ => to.to_owned(),
            };
            headers.push("To", to);
        }
        headers.copy_from(&self.headers, "Call-ID");
        headers.copy_from(&self.headers, "CSeq");
        Response {
            code,
            reason: reason_phrase(code).to_owned(),
            headers,
            body: Bytes::new(),
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.body.len());
        let _ = write!(out, "{} {} SIP/2.0\r\n", self.method, self.uri);
        encode_tail(out, &self.headers, &self.body)
    }
}

impl Response {
    pub fn encode(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.body.len());
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.code, self.reason);
        encode_tail(out, &self.headers, &self.body)
    }

    pub fn is_provisional(&self) -> bool {
        self.code < 200
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// Headers (Content-Length always recomputed) and the body, which is written as raw bytes.
fn encode_tail(mut out: String, headers: &Headers, body: &[u8]) -> Bytes {
    for h in headers
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case("Content-Length"))
    {
        for part in [&*h.name, ": ", &h.value, "\r\n"] {
            out.push_str(part);
        }
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

/// Default reason phrases (RFC 3261 §21 and extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15551234@10.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:+15551234@10.0.0.1>\r\n\
        From: \"Alice\" <sip:alice@10.0.0.2>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@10.0.0.2>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn parses_and_answers_invite() {
        let SipMessage::Request(req) = SipMessage::parse(INVITE.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(req.method, Method::Invite);
        assert_eq!(req.uri.user(), Some("+15551234"));
        assert_eq!(req.headers.cseq().unwrap().seq, 314159);
        assert_eq!(&req.body[..], b"v=0\n");
        let resp = req.response(180, Some("abc"));
        let text = String::from_utf8(resp.encode().to_vec()).unwrap();
        assert!(text.starts_with(
            "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK776asdhds\r\n"
        ));
        assert!(text.contains("To: <sip:+15551234@10.0.0.1>;tag=abc\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        // The encoded response parses back.
        let SipMessage::Response(r) = SipMessage::parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.headers.to_tag().as_deref(), Some("abc"));
    }

    #[test]
    fn missing_call_id_is_400_with_reply() {
        let bad = INVITE.replace("Call-ID: a84b4c76e66710\r\n", "");
        let err = SipMessage::parse(bad.as_bytes()).unwrap_err();
        let (code, headers) = err.reply.unwrap();
        assert_eq!(code, 400);
        assert!(headers.get("Via").is_some());
    }

    #[test]
    fn unknown_method_is_501_and_bad_version_505() {
        let m = INVITE
            .replace("INVITE sip", "FOO sip")
            .replace("314159 INVITE", "314159 FOO");
        assert_eq!(
            SipMessage::parse(m.as_bytes())
                .unwrap_err()
                .reply
                .unwrap()
                .0,
            501
        );
        let v = INVITE.replace("10.0.0.1 SIP/2.0", "10.0.0.1 SIP/7.0");
        assert_eq!(
            SipMessage::parse(v.as_bytes())
                .unwrap_err()
                .reply
                .unwrap()
                .0,
            505
        );
    }

    #[test]
    fn cseq_method_mismatch_is_400() {
        let m = INVITE.replace("314159 INVITE", "314159 BYE");
        assert_eq!(
            SipMessage::parse(m.as_bytes())
                .unwrap_err()
                .reply
                .unwrap()
                .0,
            400
        );
    }
}
