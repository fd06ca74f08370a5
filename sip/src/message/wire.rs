//! Wire framing of SIP messages, done before rsip sees them.
//!
//! rsip parses header lines that are already in canonical form. It does not unfold continuation
//! lines, expand compact header names, split comma-separated Via/Route/Contact values, honour
//! Content-Length or accept extension methods, and it rejects several valid RFC 4475 messages
//! because of that. This module does those steps on the raw bytes (RFC 3261 §7.3, §7.5, §18.3) so
//! that valid input reaches rsip in a shape it understands, and invalid input is reported together
//! with the header lines needed to answer it with a 4xx.

use bytes::Bytes;
use std::borrow::Cow;

/// Largest message accepted on any transport.
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// A message split into its start line, unfolded header lines and body.
#[derive(Debug, Clone)]
pub struct WireMessage {
    pub start_line: String,
    pub headers: Vec<RawHeader>,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// Full header name (compact forms expanded), as written otherwise: the common names
    /// point at one static copy (see [`header_name`]).
    pub name: Cow<'static, str>,
    pub value: String,
}

/// A header name as a list keeps it: borrowed when it is one of the names written on nearly
/// every message, spelled as RFC 3261 spells it, so that each parsed or built header costs one
/// allocation (its value) instead of two; any other spelling is kept as written.
pub fn header_name(name: &str) -> Cow<'static, str> {
    let known = match name {
        "Via" => "Via",
        "From" => "From",
        "To" => "To",
        "Call-ID" => "Call-ID",
        "CSeq" => "CSeq",
        "Contact" => "Contact",
        "Max-Forwards" => "Max-Forwards",
        "Content-Length" => "Content-Length",
        "Content-Type" => "Content-Type",
        "Record-Route" => "Record-Route",
        "Route" => "Route",
        "User-Agent" => "User-Agent",
        "Server" => "Server",
        "Allow" => "Allow",
        "Supported" => "Supported",
        "Require" => "Require",
        "Subject" => "Subject",
        "Expires" => "Expires",
        "Session-Expires" => "Session-Expires",
        "Min-SE" => "Min-SE",
        "Retry-After" => "Retry-After",
        "Reason" => "Reason",
        "RSeq" => "RSeq",
        "RAck" => "RAck",
        "Event" => "Event",
        "Allow-Events" => "Allow-Events",
        "Accept" => "Accept",
        "WWW-Authenticate" => "WWW-Authenticate",
        "Authorization" => "Authorization",
        "Proxy-Authenticate" => "Proxy-Authenticate",
        "Proxy-Authorization" => "Proxy-Authorization",
        "P-Asserted-Identity" => "P-Asserted-Identity",
        "Refer-To" => "Refer-To",
        "Referred-By" => "Referred-By",
        "Content-Encoding" => "Content-Encoding",
        "Content-Disposition" => "Content-Disposition",
        _ => return Cow::Owned(name.to_owned()),
    };
    Cow::Borrowed(known)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("message larger than {MAX_MESSAGE_LEN} bytes")]
    TooLarge,
    #[error("header section is not valid UTF-8 text")]
    NotText,
    #[error("malformed header line {0:?}")]
    BadHeaderLine(String),
    #[error("invalid Content-Length {0:?}")]
    BadContentLength(String),
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    #[error("body shorter than Content-Length ({declared} declared, {available} present)")]
    Truncated { declared: usize, available: usize },
    #[error("no Content-Length on a stream transport")]
    MissingContentLength,
}

impl WireMessage {
    pub fn is_request(&self) -> bool {
        !self.start_line.starts_with("SIP/")
    }

    /// First value of a header, by full name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The message in the canonical form rsip parses: one header value per line, CRLF endings.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.start_line.len() + 64 * self.headers.len() + self.body.len());
        out.extend_from_slice(self.start_line.as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// A framing failure; `head` holds the header section when it could be read, so a request can
/// still be answered with a 400.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}")]
pub struct FrameError {
    pub kind: WireError,
    pub head: Option<Box<WireMessage>>,
}

impl From<WireError> for FrameError {
    fn from(kind: WireError) -> Self {
        Self { kind, head: None }
    }
}

/// Frames one message from a datagram (UDP). Bytes beyond Content-Length are discarded; a missing
/// Content-Length means the body runs to the end of the datagram (RFC 3261 §18.3).
pub fn frame_datagram(data: &[u8]) -> Result<WireMessage, FrameError> {
    if data.len() > MAX_MESSAGE_LEN {
        return Err(WireError::TooLarge.into());
    }
    let data = skip_leading_crlf(data);
    if data.is_empty() {
        return Err(WireError::Empty.into());
    }
    let (head, rest) = match find_head_end(data) {
        Some((head_len, body_start)) => (&data[..head_len], &data[body_start..]),
        // A datagram without the blank line still carries a header section.
        None => (data, &data[data.len()..]),
    };
    let (start_line, headers, content_length) = parse_head(head)?;
    let mut msg = WireMessage {
        start_line,
        headers,
        body: Bytes::new(),
    };
    let body = match content_length {
        Ok(Some(len)) if len > rest.len() => Err(WireError::Truncated {
            declared: len,
            available: rest.len(),
        }),
        Ok(Some(len)) => Ok(&rest[..len]),
        Ok(None) => Ok(rest),
        Err(e) => Err(e),
    };
    match body {
        Ok(body) => {
            msg.body = Bytes::copy_from_slice(body);
            Ok(msg)
        }
        Err(kind) => Err(FrameError {
            kind,
            head: Some(Box::new(msg)),
        }),
    }
}

/// Outcome of looking for one message at the front of a stream buffer (TCP).
#[derive(Debug)]
pub enum StreamFrame {
    /// A whole message, and how many bytes of the buffer it used.
    Message(WireMessage, usize),
    /// Only CRLF keep-alives were at the front: this many bytes can be dropped. A double CRLF
    /// ping gets a single CRLF pong (RFC 5626 §3.5.1).
    KeepAlive { consumed: usize, pong: bool },
    /// More bytes are needed.
    Incomplete,
}

/// Frames the first message of a stream buffer using Content-Length (mandatory on streams).
pub fn frame_stream(buf: &[u8]) -> Result<StreamFrame, WireError> {
    StreamFramer::default().next(buf)
}

/// Frames the messages of one stream connection as bytes arrive. The search for the end of a
/// header section resumes where the last read left it, and a header section waiting for its
/// body is parsed once, so a message trickling in a byte at a time costs linear time rather
/// than a rescan of the buffer per read. The caller drops the consumed bytes from the front of
/// its buffer after each `Message` and `KeepAlive`, and keeps the rest for the next call.
#[derive(Debug, Default)]
pub struct StreamFramer {
    /// Bytes at the front of the buffer already searched for the end of the header section.
    scanned: usize,
    /// A header section read, waiting for its body.
    pending: Option<PendingHead>,
}

#[derive(Debug)]
struct PendingHead {
    start_line: String,
    headers: Vec<RawHeader>,
    body_start: usize,
    total: usize,
}

impl StreamFramer {
    pub fn next(&mut self, buf: &[u8]) -> Result<StreamFrame, WireError> {
        if let Some(p) = &self.pending {
            if buf.len() < p.total {
                return Ok(StreamFrame::Incomplete);
            }
            let p = self.pending.take().expect("checked");
            self.scanned = 0;
            let body = Bytes::copy_from_slice(&buf[p.body_start..p.total]);
            return Ok(StreamFrame::Message(
                WireMessage {
                    start_line: p.start_line,
                    headers: p.headers,
                    body,
                },
                p.total,
            ));
        }
        let crlf = buf.len() - skip_leading_crlf(buf).len();
        // A ping split across reads ("\r\n" now, "\r\n" next) must still get its pong.
        if crlf == buf.len() && crlf < 4 && b"\r\n\r\n".starts_with(buf) {
            return Ok(StreamFrame::Incomplete);
        }
        if crlf > 0 {
            self.scanned = 0;
            return Ok(StreamFrame::KeepAlive {
                consumed: crlf,
                pong: buf[..crlf].windows(4).any(|w| w == b"\r\n\r\n"),
            });
        }
        // The blank line ends at most two bytes past a '\n' already seen.
        let from = self.scanned.saturating_sub(2).min(buf.len());
        let Some((head_len, body_start)) =
            find_head_end(&buf[from..]).map(|(h, b)| (from + h, from + b))
        else {
            if buf.len() > MAX_MESSAGE_LEN {
                return Err(WireError::TooLarge);
            }
            self.scanned = buf.len();
            return Ok(StreamFrame::Incomplete);
        };
        let (start_line, headers, content_length) = parse_head(&buf[..head_len])?;
        let len = content_length?.ok_or(WireError::MissingContentLength)?;
        let total = body_start
            .checked_add(len)
            .filter(|t| *t <= MAX_MESSAGE_LEN)
            .ok_or(WireError::TooLarge)?;
        self.pending = Some(PendingHead {
            start_line,
            headers,
            body_start,
            total,
        });
        self.next(buf)
    }
}

fn skip_leading_crlf(mut data: &[u8]) -> &[u8] {
    while let [b'\r' | b'\n', rest @ ..] = data {
        data = rest;
    }
    data
}

/// Returns (length of the header section, offset of the body), accepting CRLF or bare LF endings.
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            let next = &data[i + 1..];
            if next.starts_with(b"\r\n") {
                return Some((i + 1, i + 3));
            }
            if next.starts_with(b"\n") {
                return Some((i + 1, i + 2));
            }
        }
        i += 1;
    }
    None
}

/// Start line, header lines, and the Content-Length (absent, or invalid with the reason).
type Head = (String, Vec<RawHeader>, Result<Option<usize>, WireError>);

fn parse_head(head: &[u8]) -> Result<Head, WireError> {
    let text = std::str::from_utf8(head).map_err(|_| WireError::NotText)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or_default().to_owned();
    if start_line.is_empty() {
        return Err(WireError::Empty);
    }

    // Unfold: a line starting with whitespace continues the previous header (RFC 3261 §7.3.1).
    // A line is copied only when something is folded into it.
    let mut folded: Vec<Cow<'_, str>> = Vec::with_capacity(16);
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match folded.last_mut() {
                Some(prev) => {
                    let prev = prev.to_mut();
                    prev.push(' ');
                    prev.push_str(line.trim_start());
                }
                None => return Err(WireError::BadHeaderLine(line.to_owned())),
            }
        } else {
            folded.push(Cow::Borrowed(line));
        }
    }

    let mut headers = Vec::with_capacity(folded.len() + 2);
    let mut content_length: Result<Option<usize>, WireError> = Ok(None);
    for line in folded {
        let Some((name, value)) = line.split_once(':') else {
            return Err(WireError::BadHeaderLine(line.to_string()));
        };
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(WireError::BadHeaderLine(line.to_string()));
        }
        let name = expand_compact(name);
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("Content-Length") {
            content_length = match (content_length, parse_content_length(value)) {
                (Err(e), _) | (_, Err(e)) => Err(e),
                (Ok(Some(prev)), Ok(len)) if prev != len => {
                    Err(WireError::ConflictingContentLength)
                }
                (_, Ok(len)) => Ok(Some(len)),
            };
        }
        if is_list_header(name) {
            for part in split_list(value) {
                headers.push(RawHeader {
                    name: header_name(name),
                    value: tidy(name, part),
                });
            }
        } else {
            headers.push(RawHeader {
                name: header_name(name),
                value: tidy(name, value),
            });
        }
    }
    Ok((start_line, headers, content_length))
}

fn parse_content_length(value: &str) -> Result<usize, WireError> {
    let bad = || WireError::BadContentLength(value.to_owned());
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let len: usize = value.parse().map_err(|_| bad())?;
    if len > MAX_MESSAGE_LEN {
        return Err(bad());
    }
    Ok(len)
}

/// Removes the linear whitespace RFC 3261 allows around `/`, `;`, `=` (and collapses runs of it)
/// in the structured headers, outside quoted strings, because rsip's typed parsers reject it.
fn tidy(name: &str, value: &str) -> String {
    const STRUCTURED: [&str; 7] = [
        "Via",
        "From",
        "To",
        "Contact",
        "Route",
        "Record-Route",
        "CSeq",
    ];
    if !STRUCTURED.iter().any(|n| n.eq_ignore_ascii_case(name)) || is_tidy(value) {
        return value.to_owned();
    }
    collapse(value)
}

/// [`tidy`]'s rewrite of a structured value.
fn collapse(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut quoted, mut escaped, mut pending_space) = (false, false, false);
    for c in value.chars() {
        if quoted {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            ' ' | '\t' => pending_space = true,
            // Whitespace before a separator is dropped here, and after it by `after_sep` below.
            '/' | ';' | '=' => {
                pending_space = false;
                out.push(c);
            }
            _ => {
                let after_sep = out.ends_with(['/', ';', '=']);
                if pending_space && !after_sep && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                if c == '"' {
                    quoted = true;
                }
                out.push(c);
            }
        }
    }
    out
}

/// Whether [`tidy`] would give the value back unchanged: no tab, no run of spaces, and no space
/// beside a `/`, `;` or `=` (inside a quoted string too, which only sends such a value the slow
/// way). Nearly every value a peer sends is like this ("SIP/2.0/UDP host;branch=…",
/// "name <uri>;tag=…").
fn is_tidy(value: &str) -> bool {
    let b = value.as_bytes();
    !b.contains(&b'\t')
        && !b.windows(2).any(|w| {
            w[0] == b' ' && matches!(w[1], b' ' | b'/' | b';' | b'=')
                || w[1] == b' ' && matches!(w[0], b'/' | b';' | b'=')
        })
}

/// RFC 3261 §7.3.3 compact forms, plus the ones registered since (RFC 3265, 3515, 3892, 4028).
fn expand_compact(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        _ => name,
    }
}

/// Headers whose comma-separated values rsip expects one per line.
fn is_list_header(name: &str) -> bool {
    ["Via", "Route", "Record-Route", "Contact"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// Splits a header value on commas that are outside quotes and angle brackets; empty parts
/// are skipped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    SplitList { rest: Some(value) }.filter(|p| !p.is_empty())
}

/// The parts of a list header value, in order, without collecting them.
struct SplitList<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for SplitList<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let value = self.rest?;
        let (mut quoted, mut angle, mut escaped) = (false, false, false);
        for (i, c) in value.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '<' if !quoted => angle = true,
                '>' if !quoted => angle = false,
                ',' if !quoted && !angle => {
                    self.rest = Some(&value[i + 1..]);
                    return Some(value[..i].trim());
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(value.trim())
    }
}

/// RFC 3261 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_expands_and_splits() {
        let raw = b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h1;branch=z9hG4bK1,\r\n  SIP/2.0/UDP h2;branch=z9hG4bK2\r\nSubject : hi\r\n\tthere\r\nl: 4\r\n\r\nbodyEXTRA";
        let m = frame_datagram(raw).unwrap();
        let vias: Vec<_> = m
            .headers
            .iter()
            .filter(|h| h.name == "Via")
            .map(|h| h.value.as_str())
            .collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP h1;branch=z9hG4bK1",
                "SIP/2.0/UDP h2;branch=z9hG4bK2"
            ]
        );
        assert_eq!(m.header("subject"), Some("hi there"));
        assert_eq!(&m.body[..], b"body");
    }

    #[test]
    fn content_length_errors() {
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n";
        assert!(matches!(
            frame_datagram(neg).unwrap_err().kind,
            WireError::BadContentLength(_)
        ));
        let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n";
        assert!(matches!(
            frame_datagram(huge).unwrap_err().kind,
            WireError::BadContentLength(_)
        ));
        let short = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc";
        let err = frame_datagram(short).unwrap_err();
        assert_eq!(
            err.kind,
            WireError::Truncated {
                declared: 10,
                available: 3
            }
        );
        assert!(
            err.head.is_some(),
            "the header section is kept so the request can be answered"
        );
        let two = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert_eq!(
            frame_datagram(two).unwrap_err().kind,
            WireError::ConflictingContentLength
        );
    }

    #[test]
    fn tidies_whitespace_in_structured_headers() {
        assert_eq!(
            tidy("Via", "SIP  /   2.0 /UDP 192.0.2.2 ; branch = z9"),
            "SIP/2.0/UDP 192.0.2.2;branch=z9"
        );
        assert_eq!(tidy("To", "sip:v@x ;   tag    = 19n"), "sip:v@x;tag=19n");
        assert_eq!(
            tidy("From", "\"J R \\\"\"  <sip:j@x> ; tag = 9"),
            "\"J R \\\"\" <sip:j@x>;tag=9"
        );
        assert_eq!(tidy("CSeq", "0009   INVITE"), "0009 INVITE");
        assert_eq!(tidy("Subject", "a ;  b"), "a ;  b");
    }

    #[test]
    fn a_value_taken_as_tidy_is_one_the_rewrite_leaves_alone() {
        // Every trimmed value of up to six characters over the characters the rewrite looks at.
        const CHARS: [char; 7] = ['a', ' ', '/', ';', '=', '"', '\t'];
        let mut tidy_ones = 0;
        for len in 1..=6u32 {
            for n in 0..CHARS.len().pow(len) {
                let value: String = (0..len)
                    .map(|i| CHARS[n / CHARS.len().pow(i) % CHARS.len()])
                    .collect();
                if value.trim_matches([' ', '\t']) != value {
                    continue;
                }
                if is_tidy(&value) {
                    tidy_ones += 1;
                    assert_eq!(collapse(&value), value, "{value:?}");
                }
            }
        }
        assert!(tidy_ones > 10_000, "{tidy_ones}");
    }

    #[test]
    fn common_header_names_are_shared_and_others_kept_as_written() {
        let raw = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\ncall-id: x\r\nf: <sip:a@b>;tag=1\r\nX-Trace: 7\r\n\r\n";
        let m = frame_datagram(raw).unwrap();
        let names: Vec<_> = m
            .headers
            .iter()
            .map(|h| (&*h.name, matches!(h.name, Cow::Borrowed(_))))
            .collect();
        assert_eq!(
            names,
            [
                ("Via", true),
                ("call-id", false),
                ("From", true),
                ("X-Trace", false)
            ]
        );
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let parts: Vec<_> = split_list(r#""Doe, John" <sip:j@x>;q=1, <sip:k@y,z>"#).collect();
        assert_eq!(parts, [r#""Doe, John" <sip:j@x>;q=1"#, "<sip:k@y,z>"]);
    }

    #[test]
    fn stream_framing() {
        let msg = b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabcSIP/2.0";
        match frame_stream(msg).unwrap() {
            StreamFrame::Message(m, used) => {
                assert_eq!(&m.body[..], b"abc");
                assert_eq!(used, msg.len() - "SIP/2.0".len());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            frame_stream(b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\na").unwrap(),
            StreamFrame::Incomplete
        ));
        assert!(matches!(
            frame_stream(b"\r\n\r\n").unwrap(),
            StreamFrame::KeepAlive {
                consumed: 4,
                pong: true
            }
        ));
        assert_eq!(
            frame_stream(b"SIP/2.0 200 OK\r\n\r\n").unwrap_err(),
            WireError::MissingContentLength
        );
    }

    /// Pipelined messages and keep-alives fed one byte per read come out exactly as when the
    /// whole buffer is framed at once, whichever line endings they use.
    #[test]
    fn stream_framing_a_byte_at_a_time() {
        let stream: &[u8] =
            b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 2\r\n\r\nhi\
            SIP/2.0 200 OK\nl: 0\n\nSIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n";
        let frame_all = |feed: &mut dyn FnMut(&mut Vec<u8>) -> bool| {
            let mut framer = StreamFramer::default();
            let mut buf = Vec::new();
            let mut out = Vec::new();
            loop {
                match framer.next(&buf).unwrap() {
                    StreamFrame::Incomplete => {
                        if !feed(&mut buf) {
                            return out;
                        }
                    }
                    StreamFrame::KeepAlive { consumed, pong } => {
                        out.push(format!("keepalive {consumed} {pong}"));
                        buf.drain(..consumed);
                    }
                    StreamFrame::Message(m, used) => {
                        out.push(format!("{} {:?}", m.start_line, m.body));
                        buf.drain(..used);
                    }
                }
            }
        };
        let mut whole = Some(stream);
        let at_once = frame_all(&mut |buf| {
            whole.take().is_some_and(|s| {
                buf.extend_from_slice(s);
                true
            })
        });
        let mut bytes = stream.iter();
        let trickled = frame_all(&mut |buf| {
            bytes.next().is_some_and(|b| {
                buf.push(*b);
                true
            })
        });
        assert_eq!(at_once.len(), 4, "{at_once:?}");
        assert_eq!(at_once, trickled);
    }
}
