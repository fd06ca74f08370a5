//! Registrar (RFC 3261 §10.3): contact bindings per user with expiry. Sans-IO: the caller
//! authenticates, passes the REGISTER and `now`, and sends the response it gets back.

use crate::message::headers::uri_of_contact;
use crate::message::{Request, Response};
use crate::transport::Peer;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The login a SIP URI names among `users` (login → password): a SIP domain's user is known
/// as `user@host` (two tenants' domains may each have an `alice`), anyone else as the user
/// alone. The login's key, and the user name its digest credentials carry.
pub fn login_of<'a, V>(
    users: &'a HashMap<String, V>,
    uri: &rsip::Uri,
) -> Option<(&'a String, &'a V, String)> {
    let user = uri.user()?.to_owned();
    let host = uri.host_with_port.host.to_string().to_ascii_lowercase();
    let (key, value) = (users.get_key_value(format!("{user}@{host}").as_str()))
        .or_else(|| users.get_key_value(user.as_str()))?;
    Some((key, value, user))
}

#[derive(Debug, Clone)]
pub struct Binding {
    /// The Contact URI, used as the Request-URI of calls to this user.
    pub uri: rsip::Uri,
    /// Where the REGISTER came from.
    pub source: Peer,
    /// Where calls to this binding go (see `call_target`).
    pub target: Peer,
    pub expires_at: Instant,
    call_id: String,
    cseq: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Bindings one user may hold (Kamailio's `max_contacts`): a REGISTER that would add more
    /// is answered 503 "Too Many Registered Contacts" and changes nothing.
    pub max_contacts: usize,
    /// Bindings of all users together: past it, a REGISTER that would add one is answered 503
    /// (with Retry-After) and changes nothing.
    pub max_bindings: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
            max_bindings: 200_000,
        }
    }
}

/// Bindings per user, bounded per user and in all, so that a REGISTER's work (and its 200 OK)
/// is bounded by [`RegistrarConfig::max_contacts`] whatever other users hold.
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    bindings: HashMap<String, Vec<Binding>>,
    /// Bindings held by all users (expired ones included until swept).
    total: usize,
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Self {
        Self {
            config,
            bindings: HashMap::new(),
            total: 0,
        }
    }

    /// Bindings held by all users.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Applies an authenticated REGISTER for `user` and returns the response to send.
    pub fn register(
        &mut self,
        now: Instant,
        user: &str,
        request: &Request,
        source: Peer,
        to_tag: &str,
    ) -> Response {
        let call_id = request.headers.call_id().unwrap_or_default().to_owned();
        let cseq = request.headers.cseq().map_or(0, |c| c.seq);
        let header_expires: Option<u32> = request
            .headers
            .get("Expires")
            .and_then(|e| e.trim().parse().ok());
        // The wire layer already split comma-separated Contact values into one header each.
        let contacts: Vec<&str> = request.headers.all("Contact").collect();

        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return request.response(400, Some(to_tag));
            }
            if let Some(list) = self.bindings.remove(user) {
                self.total -= list.len();
            }
            return request.response(200, Some(to_tag));
        }

        let mut updates = Vec::new();
        for contact in &contacts {
            let Some(uri) = uri_of_contact(contact) else {
                return request.response(400, Some(to_tag));
            };
            let expires = contact_expires(contact)
                .or(header_expires)
                .unwrap_or(self.config.default_expires);
            if expires != 0 && expires < self.config.min_expires {
                let mut r = request.response(423, Some(to_tag));
                r.headers
                    .push("Min-Expires", self.config.min_expires.to_string());
                return r;
            }
            updates.push((uri, expires.min(self.config.max_expires)));
        }

        let held = self.bindings.get(user).map_or(&[][..], Vec::as_slice);
        let live = held.iter().filter(|b| b.expires_at > now).count();
        let added = (updates.iter())
            .filter(|(uri, expires)| *expires > 0 && !held.iter().any(|b| b.uri == *uri))
            .count();
        let removed = (updates.iter())
            .filter(|(uri, expires)| {
                *expires == 0 && held.iter().any(|b| b.uri == *uri && b.expires_at > now)
            })
            .count();
        if added > 0 && live - removed + added > self.config.max_contacts {
            let mut r = request.response(503, Some(to_tag));
            r.reason = "Too Many Registered Contacts".to_owned();
            return r;
        }
        if added > 0 && self.total + added > self.config.max_bindings {
            let mut r = request.response(503, Some(to_tag));
            r.headers.push("Retry-After", "60".to_owned());
            return r;
        }

        let list = self.bindings.entry(user.to_owned()).or_default();
        let before = list.len();
        for (uri, expires) in updates {
            let existing = list.iter().position(|b| b.uri == uri);
            if let Some(i) = existing {
                // RFC 3261 §10.3 step 7: an older CSeq on the same Call-ID changes nothing.
                if list[i].call_id == call_id && list[i].cseq > cseq {
                    continue;
                }
                list.remove(i);
            }
            if expires > 0 {
                let expires_at = now + Duration::from_secs(expires.into());
                let target = call_target(&uri, source);
                list.push(Binding {
                    uri,
                    source,
                    target,
                    expires_at,
                    call_id: call_id.clone(),
                    cseq,
                });
            }
        }
        list.retain(|b| b.expires_at > now);
        self.total = self.total + list.len() - before;
        let mut response = request.response(200, Some(to_tag));
        for b in list.iter() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            response
                .headers
                .push("Contact", format!("<{}>;expires={left}", b.uri));
        }
        if list.is_empty() {
            self.bindings.remove(user);
        }
        response
    }

    /// Live bindings of a user, most recent first.
    pub fn lookup(&self, now: Instant, user: &str) -> Vec<&Binding> {
        let mut found: Vec<&Binding> = self
            .bindings
            .get(user)
            .into_iter()
            .flatten()
            .filter(|b| b.expires_at > now)
            .collect();
        found.sort_by_key(|b| std::cmp::Reverse(b.expires_at));
        found
    }

    /// Drops expired bindings.
    pub fn expire(&mut self, now: Instant) {
        let mut total = 0;
        self.bindings.retain(|_, list| {
            list.retain(|b| b.expires_at > now);
            total += list.len();
            !list.is_empty()
        });
        self.total = total;
    }
}

/// Calls go to the Contact's address when it names the host the REGISTER came from (a phone
/// that registers from one port and listens on another); otherwise to the REGISTER's source,
/// which is what reaches a phone behind NAT whose Contact holds a private address.
fn call_target(uri: &rsip::Uri, source: Peer) -> Peer {
    match uri.host() {
        rsip::Host::IpAddr(ip) if *ip == source.remote.ip() => {
            let port = uri.port().map_or(5060, |p| *p.value());
            Peer {
                remote: std::net::SocketAddr::new(*ip, port),
                conn: None,
                ..source
            }
        }
        _ => source,
    }
}

fn contact_expires(contact: &str) -> Option<u32> {
    // Parameters after the closing '>' belong to the header, not the URI.
    let params = contact.rsplit_once('>').map_or(contact, |(_, p)| p);
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("expires")
            .then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_domains_user_is_known_by_user_and_host() {
        let users: HashMap<String, &str> = [
            ("alice@acme.sip.example.com".to_owned(), "a1"),
            ("alice".to_owned(), "flat"),
            ("bob".to_owned(), "b"),
        ]
        .into_iter()
        .collect();
        let uri = |s: &str| rsip::Uri::try_from(s).unwrap();
        let found = |s: &str| login_of(&users, &uri(s)).map(|(k, v, u)| (k.clone(), *v, u));
        assert_eq!(
            found("sip:alice@ACME.sip.example.com"),
            Some(("alice@acme.sip.example.com".into(), "a1", "alice".into()))
        );
        assert_eq!(
            found("sip:alice@other.sip.example.com"),
            Some(("alice".into(), "flat", "alice".into()))
        );
        assert_eq!(found("sip:bob@127.0.0.1:5060").map(|f| f.1), Some("b"));
        assert_eq!(found("sip:carol@acme.sip.example.com"), None);
        assert_eq!(found("sip:acme.sip.example.com"), None);
    }

    use super::*;
    use crate::message::SipMessage;
    use crate::transport::Transport;

    fn register(contact: &str, expires: Option<u32>, cseq: u32) -> Request {
        let expires = expires
            .map(|e| format!("Expires: {e}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "REGISTER sip:switchboard SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKr{cseq}\r\n\
             From: <sip:alice@switchboard>;tag=a\r\nTo: <sip:alice@switchboard>\r\nCall-ID: reg1\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{expires}Content-Length: 0\r\n\r\n"
        );
        match SipMessage::parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            remote: "192.0.2.5:5060".parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
            conn: None,
        }
    }

    #[test]
    fn binds_expires_and_unbinds() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(RegistrarConfig::default());
        let r = reg.register(
            t0,
            "alice",
            &register("<sip:alice@192.0.2.5:5062>", Some(120), 1),
            peer(),
            "t",
        );
        assert_eq!(r.code, 200);
        assert_eq!(
            r.headers.get("Contact"),
            Some("<sip:alice@192.0.2.5:5062>;expires=120")
        );
        assert_eq!(reg.lookup(t0, "alice").len(), 1);
        assert_eq!(
            reg.lookup(t0 + Duration::from_secs(121), "alice").len(),
            0,
            "expired"
        );
        reg.register(
            t0,
            "alice",
            &register("<sip:alice@192.0.2.5:5062>;expires=0", None, 2),
            peer(),
            "t",
        );
        assert!(reg.lookup(t0, "alice").is_empty());
    }

    #[test]
    fn calls_follow_the_contact_on_the_same_host_and_the_source_behind_nat() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(RegistrarConfig::default());
        reg.register(
            t0,
            "alice",
            &register("<sip:alice@192.0.2.5:5072>", Some(120), 1),
            peer(),
            "t",
        );
        assert_eq!(
            reg.lookup(t0, "alice")[0].target.remote,
            "192.0.2.5:5072".parse().unwrap()
        );
        reg.register(
            t0,
            "bob",
            &register("<sip:bob@10.1.1.1:5060>", Some(120), 1),
            peer(),
            "t",
        );
        assert_eq!(
            reg.lookup(t0, "bob")[0].target.remote,
            "192.0.2.5:5060".parse().unwrap(),
            "NAT: the source"
        );
    }

    #[test]
    fn too_brief_and_wildcard() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(RegistrarConfig::default());
        let r = reg.register(
            t0,
            "alice",
            &register("<sip:alice@h>", Some(10), 1),
            peer(),
            "t",
        );
        assert_eq!(r.code, 423);
        assert_eq!(r.headers.get("Min-Expires"), Some("60"));
        reg.register(
            t0,
            "alice",
            &register("<sip:alice@h>", Some(600), 2),
            peer(),
            "t",
        );
        assert_eq!(
            reg.register(t0, "alice", &register("*", None, 3), peer(), "t")
                .code,
            400,
            "* needs Expires: 0"
        );
        assert_eq!(
            reg.register(t0, "alice", &register("*", Some(0), 4), peer(), "t")
                .code,
            200
        );
        assert!(reg.lookup(t0, "alice").is_empty());
    }

    #[test]
    fn stale_cseq_is_ignored_and_expires_capped() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(RegistrarConfig::default());
        reg.register(
            t0,
            "alice",
            &register("<sip:alice@h>", Some(99999), 5),
            peer(),
            "t",
        );
        let b = reg.lookup(t0, "alice")[0].expires_at;
        assert_eq!(b - t0, Duration::from_secs(3600));
        reg.register(
            t0,
            "alice",
            &register("<sip:alice@h>", Some(0), 4),
            peer(),
            "t",
        );
        assert_eq!(
            reg.lookup(t0, "alice").len(),
            1,
            "older CSeq does not remove"
        );
    }
}

#[cfg(test)]
mod bounds {
    use super::tests_support::*;
    use super::*;

    /// A login flooding REGISTERs with new contacts holds at most `max_contacts`: the one
    /// past it gets 503 "Too Many Registered Contacts" and changes nothing, so every 200 OK
    /// lists at most that many. A refresh of a binding held, or a swap (one removed, one
    /// added), still passes; other logins are not held back, except by the bound of all.
    #[test]
    fn a_login_holds_at_most_max_contacts_and_all_logins_at_most_max_bindings() {
        let t0 = Instant::now();
        let config = RegistrarConfig {
            max_contacts: 3,
            max_bindings: 5,
            ..RegistrarConfig::default()
        };
        let mut reg = Registrar::new(config);
        let contact = |i: u32| format!("<sip:flood@192.0.2.5:{}>", 6000 + i);
        for i in 0..3 {
            let r = reg.register(
                t0,
                "flood",
                &request("flood", &contact(i), i + 1),
                peer(),
                "t",
            );
            assert_eq!(r.code, 200);
            assert_eq!(r.headers.all("Contact").count(), i as usize + 1);
        }
        for i in 3..50 {
            let r = reg.register(
                t0,
                "flood",
                &request("flood", &contact(i), i + 1),
                peer(),
                "t",
            );
            assert_eq!(
                (r.code, r.reason.as_str()),
                (503, "Too Many Registered Contacts")
            );
        }
        assert_eq!(reg.lookup(t0, "flood").len(), 3);
        assert_eq!(reg.len(), 3);
        // A refresh of a binding it holds passes; so does a swap.
        let r = reg.register(t0, "flood", &request("flood", &contact(0), 60), peer(), "t");
        assert_eq!(r.code, 200);
        let swap = request_many(
            "flood",
            &[&format!("{};expires=0", contact(1)), &contact(9)],
            61,
        );
        assert_eq!(reg.register(t0, "flood", &swap, peer(), "t").code, 200);
        assert_eq!(reg.lookup(t0, "flood").len(), 3);
        // Another login has its own three, up to the bound of all (five).
        for (i, code) in [(0, 200), (1, 200), (2, 503)] {
            let r = reg.register(
                t0,
                "bob",
                &request("bob", &format!("<sip:bob@192.0.2.6:{}>", 5060 + i), 1 + i),
                peer(),
                "t",
            );
            assert_eq!(r.code, code, "bob's {i}");
        }
        assert_eq!(reg.len(), 5);
        // Unregistering and expiry give bindings back to the count.
        let all = request_expiring("flood", &["*"], 70, 0);
        assert_eq!(reg.register(t0, "flood", &all, peer(), "t").code, 200);
        assert_eq!(reg.len(), 2);
        reg.expire(t0 + Duration::from_secs(4000));
        assert!(reg.is_empty());
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::message::SipMessage;
    use crate::transport::Transport;

    pub(super) fn request_many(user: &str, contacts: &[&str], cseq: u32) -> Request {
        request_expiring(user, contacts, cseq, 600)
    }

    pub(super) fn request_expiring(
        user: &str,
        contacts: &[&str],
        cseq: u32,
        expires: u32,
    ) -> Request {
        let contacts: String = contacts
            .iter()
            .map(|c| format!("Contact: {c}\r\n"))
            .collect();
        let text = format!(
            "REGISTER sip:switchboard SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bKb{cseq}\r\n\
             From: <sip:{user}@switchboard>;tag=a\r\nTo: <sip:{user}@switchboard>\r\nCall-ID: {user}-reg\r\n\
             CSeq: {cseq} REGISTER\r\n{contacts}Expires: {expires}\r\nContent-Length: 0\r\n\r\n"
        );
        match SipMessage::parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    pub(super) fn request(user: &str, contact: &str, cseq: u32) -> Request {
        request_many(user, &[contact], cseq)
    }

    pub(super) fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            remote: "192.0.2.5:5060".parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
            conn: None,
        }
    }
}
