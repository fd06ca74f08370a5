//! Dialog state (RFC 3261 §12): identifiers, sequence numbers, the remote target and route set,
//! and construction of requests inside the dialog.

use crate::message::headers::{tag_of, uri_of_contact, uri_of_name_addr};
use crate::message::{Headers, Method, Request, Response, Uri};
use crate::transport::Transport;
use std::net::SocketAddr;

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

    /// Takes the remote tag, target and route set from a response that creates the dialog (a
    /// provisional response with a tag, or the 2xx to the initial INVITE): the route set is the
    /// response's Record-Route in reverse order, and empty when it has none (§12.1.2).
    pub fn on_response(&mut self, response: &Response) {
        if let Some(tag) = response.headers.to_tag() {
            self.remote_tag = Some(tag);
        }
        if let Some(contact) = response.headers.contact_uri() {
            self.remote_target = contact;
        }
        self.route_set = response
            .headers
            .all("Record-Route")
            .rev()
            .map(str::to_owned)
            .collect();
    }

    /// The 2xx to our target refresh (re-INVITE) updates the remote target only: a route set
    /// is fixed once the dialog exists (§12.2.1.2).
    pub fn on_refresh_response(&mut self, response: &Response) {
        if let Some(contact) = response.headers.contact_uri() {
            self.remote_target = contact;
        }
    }

    /// Whether the route set's first hop is a strict router (its URI lacks `lr`, §12.2.1.1).
    fn strict_first_hop(&self) -> Option<Uri> {
        let first = route_uri(self.route_set.first()?)?;
        (!is_loose(&first)).then_some(first)
    }

    /// Where a request in this dialog goes first when it has a route set: the first route's
    /// address — a loose router's, or the strict router's that is then the Request-URI — with
    /// its `transport`, when the route names an IP address (this crate resolves no names).
    pub fn route_hop(&self) -> Option<(SocketAddr, Option<Transport>)> {
        let first = route_uri(self.route_set.first()?)?;
        let rsip::Host::IpAddr(ip) = first.host_with_port.host else {
            return None;
        };
        let secure = first.scheme == Some(rsip::Scheme::Sips);
        let port = first
            .host_with_port
            .port
            .map_or(if secure { 5061 } else { 5060 }, |p| *p.value());
        let transport = first
            .params
            .iter()
            .find_map(|p| match p {
                rsip::Param::Transport(rsip::Transport::Udp) => Some(Transport::Udp),
                rsip::Param::Transport(rsip::Transport::Tcp) => Some(Transport::Tcp),
                rsip::Param::Transport(rsip::Transport::Tls) => Some(Transport::Tls),
                rsip::Param::Transport(rsip::Transport::Ws) => Some(Transport::Ws),
                rsip::Param::Transport(rsip::Transport::Wss) => Some(Transport::Wss),
                _ => None,
            })
            .or(secure.then_some(Transport::Tls));
        Some((SocketAddr::new(ip, port), transport))
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

    /// A request in the dialog, routed through its route set (§12.2.1.1): with a loose first
    /// hop the Request-URI is the remote target and every route a Route header; with a strict
    /// one the Request-URI is that router's URI, and the rest of the route set then the remote
    /// target follow as Route headers.
    fn request_with_cseq(&self, method: Method, cseq: u32) -> Request {
        let mut h = Headers::new();
        let uri = match self.strict_first_hop() {
            Some(strict) => {
                for route in &self.route_set[1..] {
                    h.push("Route", route.as_str());
                }
                h.push("Route", format!("<{}>", self.remote_target));
                strict
            }
            None => {
                for route in &self.route_set {
                    h.push("Route", route.as_str());
                }
                self.remote_target.clone()
            }
        };
        let mut req = Request::new(method, uri);
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

/// The URI of a Route or Record-Route value (a name-addr, or a bare URI).
fn route_uri(route: &str) -> Option<Uri> {
    uri_of_contact(route).or_else(|| uri_of_name_addr(route))
}

/// Whether a route URI names a loose router (`;lr`, RFC 3261 §19.1.1; `lr=on` as some write it).
fn is_loose(uri: &Uri) -> bool {
    uri.params.iter().any(|p| match p {
        rsip::Param::Lr => true,
        rsip::Param::Other(name, _) => name.to_string().eq_ignore_ascii_case("lr"),
        _ => false,
    })
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
