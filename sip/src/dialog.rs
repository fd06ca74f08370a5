//! Dialog state (RFC 3261 §12): identifiers, sequence numbers, the remote target and route set,
//! and construction of requests inside the dialog.

use crate::message::headers::{tag_of, uri_of_contact, uri_of_name_addr};
use crate::message::{Headers, Method, Request, Response, Uri};

#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// Our From (as UAC) / To (as UAS) value, without the tag.
    pub local_party: String,
    /// The peer's name-addr, without the tag.
    pub remote_party: String,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    /// Request-URI of requests we send in the dialog (the peer's Contact).
    pub remote_target: Uri,
    /// Route header values for our requests, in order.
    pub route_set: Vec<String>,
}

impl Dialog {
    /// The dialog a UAS creates from a dialog-creating request (§12.1.1).
    pub fn for_uas(request: &Request, local_tag: String) -> Option<Self> {
        let remote_target = request
            .headers
            .contact_uri()
            .unwrap_or_else(|| request.uri.clone());
        Some(Self {
            call_id: request.headers.call_id()?.to_owned(),
            local_tag,
            remote_tag: request.headers.from_tag(),
            local_party: strip_tag(request.headers.get("To")?),
            remote_party: strip_tag(request.headers.get("From")?),
            local_cseq: rand::random::<u16>() as u32 + 1,
            remote_cseq: request.headers.cseq().map(|c| c.seq),
            remote_target,
            route_set: request
                .headers
                .all("Record-Route")
                .map(str::to_owned)
                .collect(),
        })
    }

    /// The dialog of a request we are about to send (UAC); completed by [`Dialog::on_response`].
    pub fn for_uac(request: &Request) -> Option<Self> {
        let from = request.headers.get("From")?;
        Some(Self {
            call_id: request.headers.call_id()?.to_owned(),
            local_tag: tag_of(from)?,
            remote_tag: None,
            local_party: strip_tag(from),
            remote_party: strip_tag(request.headers.get("To")?),
            local_cseq: request.headers.cseq()?.seq,
            remote_cseq: None,
            remote_target: request.uri.clone(),
            route_set: request.headers.all("Route").map(str::to_owned).collect(),
        })
    }

    /// Takes the remote tag, target and (reversed) route set from a response that creates or
    /// refreshes the dialog (§12.1.2).
    pub fn on_response(&mut self, response: &Response) {
        if let Some(tag) = response.headers.to_tag() {
            self.remote_tag = Some(tag);
        }
        if let Some(contact) = response.headers.contact_uri() {
            self.remote_target = contact;
        }
        if response.headers.get("Record-Route").is_some() {
            self.route_set = response
                .headers
                .all("Record-Route")
                .rev()
                .map(str::to_owned)
                .collect();
        }
    }

    /// A target refresh (re-INVITE) from the peer updates its Contact (§12.2.2).
    pub fn on_refresh(&mut self, request: &Request) {
        if let Some(contact) = request.headers.contact_uri() {
            self.remote_target = contact;
        }
    }

    /// A new request in this dialog with the next CSeq; the caller adds Via and Contact.
    pub fn request(&mut self, method: Method) -> Request {
        self.local_cseq += 1;
        self.request_with_cseq(method, self.local_cseq)
    }

    /// The ACK for a 2xx to the INVITE with `cseq` (§13.2.2.4): a request of its own.
    pub fn ack(&self, cseq: u32) -> Request {
        self.request_with_cseq(Method::Ack, cseq)
    }

    fn request_with_cseq(&self, method: Method, cseq: u32) -> Request {
        let mut req = Request::new(method, self.remote_target.clone());
        let mut h = Headers::new();
        for route in &self.route_set {
            h.push("Route", route.as_str());
        }
        h.push("Max-Forwards", "70");
        h.push(
            "From",
            format!("{};tag={}", self.local_party, self.local_tag),
        );
        h.push(
            "To",
            match &self.remote_tag {
                Some(tag) => format!("{};tag={tag}", self.remote_party),
                None => self.remote_party.clone(),
            },
        );
        h.push("Call-ID", self.call_id.as_str());
        h.push("CSeq", format!("{cseq} {method}"));
        req.headers = h;
        req
    }

    /// Checks and records the CSeq of a request from the peer (§12.2.2); `false` when it is
    /// lower than one already seen, which is answered 500.
    pub fn accept_remote_cseq(&mut self, request: &Request) -> bool {
        let Some(seq) = request.headers.cseq().map(|c| c.seq) else {
            return false;
        };
        if request.method == Method::Ack || request.method == Method::Cancel {
            return true;
        }
        if self.remote_cseq.is_some_and(|last| seq < last) {
            return false;
        }
        self.remote_cseq = Some(seq);
        true
    }
}

/// The first route hop of a route set, when it names an IP address: where in-dialog requests go.
pub fn first_hop(route_set: &[String]) -> Option<Uri> {
    route_set
        .first()
        .and_then(|r| uri_of_contact(r).or_else(|| uri_of_name_addr(r)))
}

/// A From/To value without its `tag` parameter.
pub fn strip_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (head, params) = match value.rfind('>') {
        Some(i) => value.split_at(i + 1),
        None => match value.find(';') {
            Some(i) => value.split_at(i),
            None => (value, ""),
        },
    };
    out.push_str(head);
    for p in params.split(';').filter(|p| !p.is_empty()) {
        if !p.trim().to_ascii_lowercase().starts_with("tag=") {
            out.push(';');
            out.push_str(p.trim());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::SipMessage;

    fn parse_req(text: &str) -> Request {
        match SipMessage::parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn strips_tags() {
        assert_eq!(
            strip_tag("\"A\" <sip:a@b>;tag=1;x=y"),
            "\"A\" <sip:a@b>;x=y"
        );
        assert_eq!(strip_tag("sip:a@b;tag=1"), "sip:a@b");
        assert_eq!(strip_tag("<sip:a@b;lr>"), "<sip:a@b;lr>");
    }

    #[test]
    fn uas_dialog_builds_bye_with_routes_and_tags() {
        let invite = parse_req(
            "INVITE sip:bob@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
             Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\nFrom: <sip:alice@x>;tag=ft\r\n\
             To: <sip:bob@y>\r\nCall-ID: c1\r\nCSeq: 5 INVITE\r\nContact: <sip:alice@192.0.2.9:5070>\r\n\r\n",
        );
        let mut d = Dialog::for_uas(&invite, "lt".into()).unwrap();
        let bye = d.request(Method::Bye);
        let text = String::from_utf8(bye.encode().to_vec()).unwrap();
        assert!(
            text.starts_with("BYE sip:alice@192.0.2.9:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Route: <sip:p1.example;lr>\r\nRoute: <sip:p2.example;lr>\r\n"));
        assert!(text.contains("From: <sip:bob@y>;tag=lt\r\n"));
        assert!(text.contains("To: <sip:alice@x>;tag=ft\r\n"));
        assert!(d.accept_remote_cseq(&invite));
        let mut old = invite.clone();
        old.method = Method::Bye;
        old.headers.set("CSeq", "4 BYE");
        assert!(!d.accept_remote_cseq(&old), "lower CSeq is refused");
    }
}
