//! Ordered header list with case-insensitive lookup and typed accessors for the headers the
//! transaction and dialog layers key on. Typed parsing is delegated to rsip.

use super::wire::{RawHeader, header_name};
use rsip::Method;
use rsip::headers::UntypedHeader;
use rsip::headers::untyped::ToTypedHeader;
use std::fmt::Write;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<RawHeader>);

impl Headers {
    pub fn new() -> Self {
        Self(Vec::with_capacity(12))
    }

    pub fn push(&mut self, name: impl AsRef<str>, value: impl Into<String>) {
        self.0.push(RawHeader {
            name: header_name(name.as_ref()),
            value: value.into(),
        });
    }

    /// Replaces every header of that name with one value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name, value);
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl DoubleEndedIterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &RawHeader> {
        self.0.iter()
    }

    /// Copies every header of that name, in order, from another list.
    pub fn copy_from(&mut self, other: &Headers, name: &str) {
        for v in other.all(name) {
            self.push(name, v);
        }
    }

    /// Mutable access to the first header of that name.
    pub fn first_mut(&mut self, name: &str) -> Option<&mut String> {
        self.0
            .iter_mut()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| &mut h.value)
    }

    pub fn call_id(&self) -> Option<&str> {
        self.get("Call-ID").filter(|v| !v.is_empty())
    }

    pub fn cseq(&self) -> Option<CSeq> {
        let typed = rsip::headers::CSeq::new(self.get("CSeq")?).typed().ok()?;
        Some(CSeq {
            seq: typed.seq,
            method: typed.method,
        })
    }

    pub fn from_tag(&self) -> Option<String> {
        tag_of(self.get("From")?)
    }

    pub fn to_tag(&self) -> Option<String> {
        tag_of(self.get("To")?)
    }

    pub fn top_via(&self) -> Option<Via> {
        Via::parse(self.get("Via")?)
    }

    pub fn max_forwards(&self) -> Option<u32> {
        self.get("Max-Forwards")?.parse().ok()
    }

    pub fn content_type(&self) -> Option<&str> {
        self.get("Content-Type")
    }

    /// The URI inside the first Contact header.
    pub fn contact_uri(&self) -> Option<rsip::Uri> {
        uri_of_contact(self.get("Contact")?)
    }

    /// Option tags of Require / Supported style headers.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.all(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

impl From<Vec<RawHeader>> for Headers {
    fn from(v: Vec<RawHeader>) -> Self {
        Self(v)
    }
}

impl From<Headers> for Vec<RawHeader> {
    fn from(h: Headers) -> Self {
        h.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// The parts of a Via header the transaction layer and response routing use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub received: Option<String>,
    /// `None`: no rport; `Some(None)`: rport requested; `Some(Some(p))`: filled in.
    pub rport: Option<Option<u16>>,
    /// The sender asks for its connection to be reused toward its sent-by (RFC 5923).
    pub alias: bool,
}

impl Via {
    /// The first via-parm of a Via value (RFC 3261 §20.42, §25.1): sent-protocol, sent-by,
    /// parameters. Written by hand: rsip's typed parser, run several times for each message
    /// (transaction key, response routing, stamping), took a tenth of the SIP thread at 600
    /// calls a second, building an error value with allocations for each alternative it tried.
    /// A test checks it against rsip's on the RFC 4475 and fuzz corpora.
    pub fn parse(value: &str) -> Option<Self> {
        let mut s = Scan(value);
        let name = s.token()?;
        s.slash()?;
        let version = s.token()?;
        s.slash()?;
        let transport = s.token()?;
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return None;
        }
        if !s.lws() {
            return None;
        }
        let host = s.host()?;
        s.lws();
        let port = match s.eat(':') {
            true => {
                s.lws();
                Some(s.digits()?.parse().ok()?)
            }
            false => None,
        };
        let mut via = Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_owned(),
            port,
            branch: None,
            received: None,
            rport: None,
            alias: false,
        };
        loop {
            s.lws();
            if s.eat(',') || s.0.is_empty() {
                break;
            }
            if !s.eat(';') {
                return None;
            }
            s.lws();
            let name = s.token()?;
            s.lws();
            let value = match s.eat('=') {
                true => {
                    s.lws();
                    Some(s.value()?)
                }
                false => None,
            };
            match (name.to_ascii_lowercase().as_str(), value) {
                ("branch", Some(v)) => via.branch = Some(v.to_owned()),
                ("received", Some(v)) => via.received = Some(v.to_owned()),
                ("rport", v) => via.rport = Some(v.and_then(|v| v.parse().ok())),
                ("alias", None) => via.alias = true,
                ("branch" | "received", None) => return None,
                _ => {}
            }
        }
        Some(via)
    }

    /// RFC 3261 magic-cookie branch, usable as a transaction key on its own.
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch
            .as_deref()
            .filter(|b| b.starts_with("z9hG4bK") && b.len() > 7)
    }

    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Sets `received` and `rport` on a Via value for a request that arrived from `source`
/// (RFC 3261 §18.2.1, RFC 3581 §4): both are always filled so responses follow NAT bindings.
pub fn stamp_via(value: &str, source: std::net::SocketAddr) -> String {
    let mut out = String::with_capacity(value.len() + 40);
    let mut parts = value.split(';');
    out.push_str(parts.next().unwrap_or_default().trim_end());
    let mut had_rport = false;
    for p in parts {
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            had_rport = true;
            continue;
        }
        out.push(';');
        out.push_str(p.trim());
    }
    let _ = write!(out, ";received={}", source.ip());
    if had_rport {
        let _ = write!(out, ";rport={}", source.port());
    }
    out
}

/// The `tag` parameter of a From/To value.
pub fn tag_of(value: &str) -> Option<String> {
    header_params(value)?
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("tag"))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.bytes().all(is_token_byte))
}

/// The header parameters of a From, To or Contact value: what follows the `>` of a name-addr
/// (a display name may be quoted and hold anything), or the first `;` of an addr-spec, whose
/// parameters are the header's (RFC 3261 §20.10). `None` for a value that is not one.
fn header_params(value: &str) -> Option<&str> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                let close = value[i..].find('>')? + i;
                return Some(&value[close + 1..]);
            }
            ';' if !quoted => return Some(&value[i..]),
            _ => {}
        }
    }
    (!quoted).then_some("")
}

/// RFC 3261 token characters (§25.1).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// A cursor over a header value for the hand-written parsers here.
struct Scan<'a>(&'a str);

impl<'a> Scan<'a> {
    /// Skips linear white space; whether there was any.
    fn lws(&mut self) -> bool {
        let rest = self.0.trim_start_matches([' ', '\t', '\r', '\n']);
        let skipped = rest.len() != self.0.len();
        self.0 = rest;
        skipped
    }

    fn eat(&mut self, c: char) -> bool {
        match self.0.strip_prefix(c) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    /// A `/` with optional white space around it.
    fn slash(&mut self) -> Option<()> {
        self.lws();
        self.eat('/').then_some(())?;
        self.lws();
        Some(())
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> Option<&'a str> {
        let n = self.0.bytes().take_while(|&b| f(b)).count();
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        (n > 0).then_some(taken)
    }

    fn token(&mut self) -> Option<&'a str> {
        self.take_while(is_token_byte)
    }

    fn digits(&mut self) -> Option<&'a str> {
        self.take_while(|b| b.is_ascii_digit())
    }

    /// A host name, an IPv4 address or a bracketed IPv6 reference.
    fn host(&mut self) -> Option<&'a str> {
        if self.0.starts_with('[') {
            let end = self.0.find(']')? + 1;
            let (host, rest) = self.0.split_at(end);
            self.0 = rest;
            return Some(host);
        }
        self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    }

    /// A parameter value: a token, a host (an IPv6 address in `received`), or a quoted string
    /// (kept with its quotes).
    fn value(&mut self) -> Option<&'a str> {
        if self.0.starts_with('"') {
            let mut escaped = false;
            for (i, c) in self.0.char_indices().skip(1) {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        let (v, rest) = self.0.split_at(i + 1);
                        self.0 = rest;
                        return Some(v);
                    }
                    _ => {}
                }
            }
            return None;
        }
        if self.0.starts_with('[') {
            return self.host();
        }
        self.take_while(|b| is_token_byte(b) || b == b':')
    }
}

/// Appends `;tag=…` to a To/From value that has none.
pub fn with_tag(value: &str, tag: &str) -> String {
    if tag_of(value).is_some() {
        value.to_owned()
    } else {
        format!("{value};tag={tag}")
    }
}

pub fn uri_of_contact(value: &str) -> Option<rsip::Uri> {
    // The URI alone, parsed by rsip: its Contact parser fails on header parameters that
    // softphones send, such as JsSIP's `+sip.instance="<urn:uuid:…>"` (RFC 5626), whose
    // quoted angle brackets it takes for the address's.
    rsip::Uri::try_from(addr_of(value)?).ok()
}

/// The URI inside a name-addr (`"Name" <sip:…>;params`) or addr-spec, as rsip parses it. Only
/// the URI goes to rsip: its From parser, which also took the display name and parameters,
/// cost the SIP thread 4 % at 600 calls a second.
pub fn uri_of_name_addr(value: &str) -> Option<rsip::Uri> {
    rsip::Uri::try_from(addr_of(value)?).ok()
}

/// The address of a name-addr (inside its angle brackets, a quoted display name skipped) or
/// of an addr-spec (up to its first `;`: the parameters after it are the header's, RFC 3261
/// §20.10).
fn addr_of(value: &str) -> Option<&str> {
    let value = value.trim();
    let params = header_params(value)?;
    let head = &value[..value.len() - params.len()];
    match head.rfind('>') {
        Some(end) if head.ends_with('>') => {
            let start = head[..end].rfind('<')?;
            Some(head[start + 1..end].trim())
        }
        _ => Some(head.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parsers these replaced, rsip's, as the reference.
    fn via_by_rsip(value: &str) -> Option<Via> {
        let typed = rsip::headers::Via::new(value).typed().ok()?;
        let mut via = Via {
            transport: typed.transport.to_string().to_ascii_uppercase(),
            host: typed.uri.host_with_port.host.to_string(),
            port: typed.uri.host_with_port.port.map(|p| *p.value()),
            branch: typed.branch().map(|b| b.to_string()),
            received: None,
            rport: None,
            alias: false,
        };
        for param in &typed.params {
            match param {
                rsip::Param::Received(r) => via.received = Some(r.value().to_owned()),
                rsip::Param::Other(name, value) if name.value().eq_ignore_ascii_case("rport") => {
                    via.rport = Some(value.as_ref().and_then(|v| v.value().parse().ok()));
                }
                rsip::Param::Other(name, None) if name.value().eq_ignore_ascii_case("alias") => {
                    via.alias = true;
                }
                _ => {}
            }
        }
        Some(via)
    }

    fn tag_by_rsip(value: &str) -> Option<String> {
        let typed = rsip::headers::From::new(value).typed().ok()?;
        typed.tag().map(|t| t.value().to_owned())
    }

    /// Header values of `names` in the RFC 4475 messages and the SIP fuzz corpus.
    fn corpus_values(names: &[&str]) -> Vec<String> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut values = Vec::new();
        for dir in ["tests/data/rfc4475", "fuzz/corpus/sip_message"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let data = std::fs::read(entry.unwrap().path()).unwrap();
                let text = String::from_utf8_lossy(&data);
                for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
                    if let Some((name, value)) = line.split_once(':')
                        && names.iter().any(|n| n.eq_ignore_ascii_case(name.trim()))
                    {
                        values.push(value.trim().to_owned());
                    }
                }
            }
        }
        values
    }

    /// Checks a hand-written reader against rsip's on the corpora's values of `names`: the
    /// same wherever rsip read a value, except for those `forbidden` picks out (the grammar
    /// forbids them, rsip let them through), which ours must refuse.
    fn agrees_with_rsip<T: PartialEq + std::fmt::Debug>(
        names: &[&str],
        ours: impl Fn(&str) -> Option<T>,
        theirs: impl Fn(&str) -> Option<T>,
        forbidden: impl Fn(&str) -> bool,
    ) {
        let values = corpus_values(names);
        assert!(values.len() > 150, "{}", values.len());
        let mut differ = Vec::new();
        for v in &values {
            let (ours, theirs) = (ours(v), theirs(v));
            if forbidden(v) {
                assert_eq!(ours, None, "{v}");
            } else if theirs.is_some() && ours != theirs {
                differ.push(format!("{v:?}\n  ours {ours:?}\n  rsip {theirs:?}"));
            }
        }
        assert!(
            differ.is_empty(),
            "{} of {}:\n{}",
            differ.len(),
            values.len(),
            differ.join("\n")
        );
    }

    /// On every Via of both corpora that rsip read, the hand-written parser reads the same,
    /// but for the one the grammar forbids (RFC 4475 `badinv01`: empty Via parameters).
    #[test]
    fn via_parser_agrees_with_rsip_on_the_corpora() {
        let forbidden = |v: &str| v == "SIP/2.0/UDP 192.0.2.15;;,;,,";
        agrees_with_rsip(&["Via", "v"], Via::parse, via_by_rsip, forbidden);
    }

    /// The same for the URI of a From or To; a value whose quote is never closed (RFC 4475
    /// `quotbal`, to be refused) is no URI, where rsip read one out of its broken parts.
    #[test]
    fn uri_reader_agrees_with_rsip_on_the_corpora() {
        let ours = |v: &str| uri_of_name_addr(v).map(|u| u.to_string());
        let theirs =
            |v: &str| (rsip::headers::From::new(v).typed().ok()).map(|f| f.uri.to_string());
        let forbidden = |v: &str| header_params(v).is_none();
        agrees_with_rsip(&["From", "f", "To", "t"], ours, theirs, forbidden);
    }

    /// What the grammar allows besides the everyday form: white space around the slashes and
    /// the parameters, IPv6 references, quoted and valueless parameters, a second via-parm.
    #[test]
    fn via_forms() {
        let v = Via::parse(
            "SIP / 2.0 / tcp [2001:db8::1]:5061 ; Branch = z9hG4bKx ; received=[2001:db8::2] ; \
             rport=5062 ; x=\"a;b\" ; alias, SIP/2.0/UDP other",
        )
        .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, "[2001:db8::1]");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rfc3261_branch(), Some("z9hG4bKx"));
        assert_eq!(v.received.as_deref(), Some("[2001:db8::2]"));
        assert_eq!(v.rport, Some(Some(5062)));
        assert!(v.alias);
        for bad in [
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host:port",
            "SIP/2.0/UDP host:99999",
            "SIP/3.0/UDP host",
            "SIP/2.0/UDP host;branch",
            "SIP/2.0/UDP host;x=\"open",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP host junk",
        ] {
            assert_eq!(Via::parse(bad), None, "{bad}");
        }
        assert_eq!(
            tag_of("\"x;tag=no\" <sip:a@b;tag=no>;tag=yes").as_deref(),
            Some("yes")
        );
        assert_eq!(tag_of("<sip:a@b;tag=no>"), None);
        assert_eq!(tag_of("sip:a@b;TAG=t1 ;x=y").as_deref(), Some("t1"));
        assert_eq!(tag_of("\"open <sip:a@b>;tag=1"), None);
    }

    #[test]
    fn tag_reader_agrees_with_rsip_on_the_corpora() {
        agrees_with_rsip(&["From", "f", "To", "t"], tag_of, tag_by_rsip, |_| false);
    }

    /// Contacts as softphones write them, outbound (RFC 5626) parameters and all.
    #[test]
    fn contact_uris() {
        let jssip = "<sip:k8s5p0jm@9l2i3ofhl3oo.invalid;transport=ws>;+sip.ice;reg-id=1;\
            +sip.instance=\"<urn:uuid:8f6b2c1e-1d6a-4f2b-9c1e-2b7f7c1d9a10>\";expires=300";
        let uri = uri_of_contact(jssip).unwrap();
        assert!(
            uri.to_string()
                .eq_ignore_ascii_case("sip:k8s5p0jm@9l2i3ofhl3oo.invalid;transport=ws")
        );
        let plain = uri_of_contact("sip:alice@192.0.2.1:5062;expires=60").unwrap();
        assert_eq!(plain.to_string(), "sip:alice@192.0.2.1:5062");
        let named = uri_of_contact("\"Alice\" <sip:alice@192.0.2.1>;q=0.5").unwrap();
        assert_eq!(named.to_string(), "sip:alice@192.0.2.1");
        assert!(uri_of_contact("<sip:alice@192.0.2.1").is_none());
    }

    #[test]
    fn via_fields() {
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKabc;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.sent_by(), "10.0.0.1:5070");
        assert_eq!(v.rfc3261_branch(), Some("z9hG4bKabc"));
        assert_eq!(v.rport, Some(None));
    }

    #[test]
    fn stamps_received_and_rport() {
        let src = "192.0.2.7:40000".parse().unwrap();
        let v = stamp_via("SIP/2.0/UDP 10.0.0.1:5070;rport;branch=z9hG4bKabc", src);
        assert_eq!(
            v,
            "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKabc;received=192.0.2.7;rport=40000"
        );
        let v = stamp_via("SIP/2.0/UDP h;branch=z9hG4bKx;received=1.1.1.1", src);
        assert_eq!(v, "SIP/2.0/UDP h;branch=z9hG4bKx;received=192.0.2.7");
        let parsed = Via::parse(&v).unwrap();
        assert_eq!(parsed.received.as_deref(), Some("192.0.2.7"));
    }

    #[test]
    fn tags() {
        assert_eq!(tag_of("\"A\" <sip:a@b>;tag=123").as_deref(), Some("123"));
        assert_eq!(tag_of("sip:a@b;tag=9").as_deref(), Some("9"));
        assert_eq!(tag_of("<sip:a@b>"), None);
        assert_eq!(with_tag("<sip:a@b>", "x"), "<sip:a@b>;tag=x");
    }
}
