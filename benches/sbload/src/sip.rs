//! Just enough SIP for a load generator: the fields of a message it reads, found by scanning
//! the text (a full parser would cost the generator more CPU than the server under test).

use std::net::SocketAddrV4;

/// The status of a response, `None` for a request.
pub fn status(msg: &str) -> Option<u16> {
    let rest = msg.strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

/// The method of a request.
pub fn method(msg: &str) -> &str {
    msg.split(' ').next().unwrap_or("")
}

/// The value of the first header `name` (or its compact form `short`).
pub fn header<'a>(msg: &'a str, name: &str, short: &str) -> Option<&'a str> {
    let head = msg.split("\r\n\r\n").next()?;
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(short)).then(|| v.trim())
    })
}

/// Every header line `name` (or `short`), whole, in order (Via, Record-Route).
pub fn lines<'a>(msg: &'a str, name: &'a str, short: &'a str) -> impl Iterator<Item = &'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").skip(1).filter(move |line| {
        line.split_once(':').is_some_and(|(n, _)| {
            let n = n.trim();
            n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(short)
        })
    })
}

pub fn call_id(msg: &str) -> Option<&str> {
    header(msg, "Call-ID", "i")
}

/// The method of the CSeq.
pub fn cseq_method(msg: &str) -> &str {
    header(msg, "CSeq", "CSeq")
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or("")
}

/// The `tag` parameter of a From or To value.
pub fn tag(value: &str) -> Option<&str> {
    let at = value.find(";tag=")? + 5;
    let rest = &value[at..];
    Some(rest.split([';', '>', ' ']).next().unwrap_or(rest))
}

/// The URI of a Contact value (`<sip:…>` or bare).
pub fn contact_uri(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value),
    }
}

/// Where the SDP of `msg` asks for its audio: the connection address and the audio port.
pub fn sdp_audio(msg: &str) -> Option<SocketAddrV4> {
    let body = msg.split_once("\r\n\r\n")?.1;
    let mut ip = None;
    let mut port = None;
    for line in body.lines() {
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            ip = c.trim().parse().ok().or(ip);
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            port = m.split(' ').next()?.parse().ok();
        }
    }
    Some(SocketAddrV4::new(ip?, port?))
}

/// An audio offer or answer of PCMA at `media`.
pub fn sdp(media: SocketAddrV4, session: u64) -> String {
    let ip = media.ip();
    format!(
        "v=0\r\no=sbload {session} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\n",
        media.port()
    )
}

/// A response to `request` with `status`, echoing its Via, From, Call-ID and CSeq, its To with
/// `to_tag` added if it has none, and an optional SDP body.
pub fn response(request: &str, status: &str, to_tag: &str, contact: &str, body: &str) -> String {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for via in lines(request, "Via", "v") {
        r.push_str(via);
        r.push_str("\r\n");
    }
    for rr in lines(request, "Record-Route", "Record-Route") {
        r.push_str(rr);
        r.push_str("\r\n");
    }
    let to = header(request, "To", "t").unwrap_or("");
    let from = header(request, "From", "f").unwrap_or("");
    let call_id = call_id(request).unwrap_or("");
    let cseq = header(request, "CSeq", "CSeq").unwrap_or("");
    r.push_str(&format!("From: {from}\r\n"));
    if tag(to).is_some() {
        r.push_str(&format!("To: {to}\r\n"));
    } else {
        r.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    r.push_str(&format!(
        "Call-ID: {call_id}\r\nCSeq: {cseq}\r\nContact: <{contact}>\r\n"
    ));
    if body.is_empty() {
        r.push_str("Content-Length: 0\r\n\r\n");
    } else {
        r.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bK1\r\n\
        From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=abc;x=1\r\ni: 7.1.0-9@sbload\r\n\
        CSeq: 1 INVITE\r\nm: <sip:sb@127.0.0.1:5060;transport=udp>\r\n\
        Content-Length: 10\r\n\r\nv=0\r\nc=IN IP4 127.0.0.9\r\nm=audio 40002 RTP/AVP 8\r\n";

    #[test]
    fn reads_what_the_generator_needs() {
        assert_eq!(status(OK), Some(200));
        assert_eq!(call_id(OK), Some("7.1.0-9@sbload"));
        assert_eq!(cseq_method(OK), "INVITE");
        assert_eq!(tag(header(OK, "To", "t").unwrap()), Some("abc"));
        let contact = header(OK, "Contact", "m").unwrap();
        assert_eq!(contact_uri(contact), "sip:sb@127.0.0.1:5060;transport=udp");
        assert_eq!(sdp_audio(OK), Some("127.0.0.9:40002".parse().unwrap()));
        assert_eq!(status("INVITE sip:x SIP/2.0\r\n\r\n"), None);
    }
}
