//! Digest authentication for SIP (RFC 3261 §22, RFC 7616 algorithms, RFC 8760 SHA-256).
//!
//! Written here rather than with rsip's `DigestGenerator`, which hashes rsip's re-serialised
//! request URI instead of the `uri` parameter the client actually signed, formats `nc` in decimal
//! and treats the `-sess` algorithms like the plain ones, so it rejects valid answers.
//!
//! Nonces carry their issue time, the node that issued them and a keyed MAC, so issuing them
//! keeps no state (a flood of challenges costs no memory) and every node configured with the same
//! secret can tell its siblings' nonces from forgeries. Each nonce and `nc` is accepted once, by
//! the node that issued it, which remembers the uses in a bounded store: a nonce used at another
//! node (a replay there, or a dispatcher that moved the client) is answered `stale` (RFC 7616
//! §3.3), as an expired or reused one is, so the client retries with a fresh nonce of that node.

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Self::Md5),
            "MD5-SESS" => Some(Self::Md5Sess),
            "SHA-256" => Some(Self::Sha256),
            "SHA-256-SESS" => Some(Self::Sha256Sess),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Self::Sha256 | Self::Sha256Sess => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }
}

/// The parameters of a `Digest` challenge or credentials header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestParams(Vec<(String, String)>);

impl DigestParams {
    /// Parses `Digest a="b", c=d, …`; `None` for another scheme or broken syntax.
    pub fn parse(value: &str) -> Option<Self> {
        let (scheme, rest) = value.trim().split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut params = Vec::new();
        let mut rest = rest.trim_start();
        while !rest.is_empty() {
            let (name, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let mut end = None;
                let mut escaped = false;
                for (i, c) in quoted.char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end?;
                (
                    quoted[..end].replace("\\\"", "\"").replace("\\\\", "\\"),
                    &quoted[end + 1..],
                )
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            };
            params.push((name.trim().to_ascii_lowercase(), value));
            rest = tail.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Inputs of a digest computation (RFC 7616 §3.4.1–3.4.3, qop `auth` or none).
struct Computation<'a> {
    algorithm: Algorithm,
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nonce: &'a str,
    /// (nc, cnonce) when qop=auth.
    qop: Option<(&'a str, &'a str)>,
    cnonce: Option<&'a str>,
}

impl Computation<'_> {
    fn response(&self) -> String {
        let h = |s: &str| self.algorithm.hash(s);
        let mut ha1 = h(&format!(
            "{}:{}:{}",
            self.username, self.realm, self.password
        ));
        if self.algorithm.is_sess() {
            ha1 = h(&format!(
                "{ha1}:{}:{}",
                self.nonce,
                self.cnonce.unwrap_or_default()
            ));
        }
        let ha2 = h(&format!("{}:{}", self.method, self.uri));
        match self.qop {
            Some((nc, cnonce)) => h(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce)),
            None => h(&format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }
}

/// Issues challenges and checks credentials for one realm.
///
/// A nonce is `{issued ms}{node}{salt}{mac}` in hex: the MAC (HMAC-SHA256 over the time, node,
/// salt and realm with the key) lets any node holding the same key verify a nonce without shared
/// state, and the salt keeps two clients challenged in the same millisecond from sharing a nonce
/// (and its `nc`). Replay is stopped by `Used`, which remembers the highest `nc` accepted per
/// nonce; since that store is the issuing node's own, only the issuing node accepts a nonce's
/// uses (another node's store has not seen them).
#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    /// Offered in this order, one challenge header each (RFC 8760 §2.4: preferred first).
    algorithms: Vec<Algorithm>,
    key: [u8; 32],
    /// This node's tag in the nonces it issues.
    node: [u8; NODE_HEX / 2],
    nonce_ttl: Duration,
    used: Used,
    uri_match: UriMatch,
}

/// How the credentials' `uri` must name the Request-URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UriMatch {
    /// The same URI (RFC 3261 §22.4).
    #[default]
    RequestUri,
    /// The same URI, or a URI of the Request-URI's host and port alone: SIPp's
    /// `[authentication]` signs `sip:{remote_ip}:{remote_port}` whatever the request line says.
    /// Weaker: such credentials do not bind the dialed user.
    HostPort,
}

/// The result of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid for this user.
    Ok,
    /// Right password but an expired or already used nonce (or `nc`): challenge again with
    /// `stale=true`, so the client retries with a fresh nonce without asking its user.
    Stale,
    /// Missing, malformed, for another realm or Request-URI, or wrong.
    Invalid,
}

/// Nonces accepted so far with the highest `nc` seen, oldest first. Bounded: when full, the oldest
/// entries go and `floor` rises past them, so a nonce issued at or before `floor` that is not
/// here can no longer be told apart from a used one and is answered `Stale` (never accepted
/// twice). Entries older than the nonce lifetime are pruned without raising the floor: their
/// nonces are stale anyway.
#[derive(Debug, Clone, Default)]
struct Used {
    seen: std::collections::BTreeMap<(u64, String), u32>,
    floor: u64,
    capacity: usize,
}

/// Checked against for a name that is no one's, so refusing it costs and looks the same as a
/// wrong password. A match never admits anyone: callers act on `Ok` only for a real user.
pub const UNKNOWN_USER_PASSWORD: &str = "\u{0}unknown";

/// Accepted nonces remembered per server (about 100 bytes each).
const USED_CAPACITY: usize = 65_536;
const NODE_HEX: usize = 8;
const SALT_HEX: usize = 16;
const MAC_HEX: usize = 32;
const TIME_HEX: usize = 12;

impl Used {
    /// Records use `nc` (0 without qop) of the nonce issued at `issued`; false for a replay.
    fn accept(&mut self, issued: u64, nonce: &str, nc: u32, oldest_live: u64) -> bool {
        if issued <= self.floor {
            return false;
        }
        let key = (issued, nonce.to_owned());
        match self.seen.get_mut(&key) {
            // Without qop a nonce is good once; with it, each request counts up (RFC 7616 §3.3).
            Some(last) if nc <= *last => return false,
            Some(last) => *last = nc,
            None => {
                self.seen.insert(key, nc);
            }
        }
        while let Some(&(oldest, _)) = self.seen.keys().next() {
            let full = self.seen.len() > self.capacity;
            if oldest >= oldest_live && !full {
                break;
            }
            if oldest >= oldest_live {
                self.floor = self.floor.max(oldest);
            }
            self.seen.pop_first();
        }
        true
    }
}

fn millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

impl DigestServer {
    /// A server for `realm` challenging with `algorithms` (MD5 when empty), its nonces keyed with
    /// a random key: only this process accepts them.
    pub fn new(realm: impl Into<String>, algorithms: &[Algorithm]) -> Self {
        let algorithms = if algorithms.is_empty() {
            vec![Algorithm::Md5]
        } else {
            algorithms.to_vec()
        };
        Self {
            realm: realm.into(),
            algorithms,
            key: rand::random(),
            node: rand::random(),
            nonce_ttl: Duration::from_secs(300),
            used: Used {
                capacity: USED_CAPACITY,
                ..Used::default()
            },
            uri_match: UriMatch::RequestUri,
        }
    }

    pub fn with_uri_match(mut self, uri_match: UriMatch) -> Self {
        self.uri_match = uri_match;
        self
    }

    /// Keys nonces with a secret shared by every node, so that each node verifies its
    /// siblings' nonces; `node` (this node's id, unique among them) goes in the nonces it
    /// issues, so that their uses are accepted here only, where they are tracked.
    pub fn with_secret(mut self, secret: &[u8], node: &str) -> Self {
        self.key = Sha256::digest(secret).into();
        let id = Sha256::digest(node.as_bytes());
        self.node.copy_from_slice(&id[..NODE_HEX / 2]);
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, issued: u64, node: &str, salt: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(&issued.to_be_bytes());
        mac.update(node.as_bytes());
        mac.update(salt.as_bytes());
        mac.update(self.realm.as_bytes());
        mac
    }

    fn nonce(&self, issued: u64, salt: &str) -> String {
        let node = hex::encode(self.node);
        let tag = self.mac(issued, &node, salt).finalize().into_bytes();
        format!(
            "{issued:0TIME_HEX$x}{node}{salt}{}",
            hex::encode(&tag[..MAC_HEX / 2])
        )
    }

    /// When a nonce of ours was issued, and whether by this node; `None` for one neither we
    /// nor a node sharing our key made. The MAC is compared in constant time.
    fn issued(&self, nonce: &str) -> Option<(u64, bool)> {
        if nonce.len() != TIME_HEX + NODE_HEX + SALT_HEX + MAC_HEX || !nonce.is_ascii() {
            return None;
        }
        let (time, rest) = nonce.split_at(TIME_HEX);
        let (node, rest) = rest.split_at(NODE_HEX);
        let (salt, tag) = rest.split_at(SALT_HEX);
        let issued = u64::from_str_radix(time, 16).ok()?;
        let tag = hex::decode(tag).ok()?;
        self.mac(issued, node, salt)
            .verify_truncated_left(&tag)
            .ok()?;
        Some((issued, hex::decode(node).ok()? == self.node))
    }

    /// `WWW-Authenticate` / `Proxy-Authenticate` values, one per configured algorithm.
    pub fn challenge(&self, now: SystemTime, stale: bool) -> Vec<String> {
        let salt = hex::encode(rand::random::<[u8; SALT_HEX / 2]>());
        let nonce = self.nonce(millis(now), &salt);
        let stale = if stale { ", stale=true" } else { "" };
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    self.realm,
                    a.as_str()
                )
            })
            .collect()
    }

    /// Checks an `Authorization` / `Proxy-Authorization` value for `username`, sent with a
    /// request of `method` to `request_uri`. An accepted nonce and `nc` are used up.
    pub fn verify(
        &mut self,
        credentials: &DigestParams,
        method: &str,
        request_uri: &str,
        username: &str,
        password: &str,
        now: SystemTime,
    ) -> Verdict {
        let Some(c) = self.computation(credentials, method, username, password) else {
            return Verdict::Invalid;
        };
        // The digest covers the `uri` parameter, not the Request-URI; unless they are the same
        // URI, credentials captured for one request could be replayed to another target
        // (RFC 3261 §22.4).
        if !same_uri(c.uri, request_uri, self.uri_match) {
            return Verdict::Invalid;
        }
        let Some(response) = credentials.get("response") else {
            return Verdict::Invalid;
        };
        if !response.eq_ignore_ascii_case(&c.response()) {
            return Verdict::Invalid;
        }
        let Some((issued, here)) = self.issued(c.nonce) else {
            return Verdict::Invalid;
        };
        let nc = match c.qop {
            Some((nc, _)) => match u32::from_str_radix(nc, 16) {
                Ok(nc) if nc > 0 => nc,
                _ => return Verdict::Invalid,
            },
            None => 0,
        };
        let now = millis(now);
        let ttl = u64::try_from(self.nonce_ttl.as_millis()).unwrap_or(u64::MAX);
        let oldest_live = now.saturating_sub(ttl);
        // A nonce from the future (clock skew between nodes beyond the lifetime) is not trusted.
        if issued < oldest_live || issued > now.saturating_add(ttl) {
            return Verdict::Stale;
        }
        // A sibling's nonce: its uses are tracked there, not here, so accepting it could
        // accept a replay of credentials that node has already taken.
        if !here {
            return Verdict::Stale;
        }
        let nonce = c.nonce.to_owned();
        if self.used.accept(issued, &nonce, nc, oldest_live) {
            Verdict::Ok
        } else {
            Verdict::Stale
        }
    }

    fn computation<'a>(
        &'a self,
        p: &'a DigestParams,
        method: &'a str,
        username: &'a str,
        password: &'a str,
    ) -> Option<Computation<'a>> {
        if p.get("username")? != username || p.get("realm")? != self.realm {
            return None;
        }
        let algorithm = p
            .get("algorithm")
            .map_or(Some(Algorithm::Md5), Algorithm::parse)?;
        let qop = match p.get("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => Some((p.get("nc")?, p.get("cnonce")?)),
            Some(_) => return None,
            None => None,
        };
        Some(Computation {
            algorithm,
            username,
            realm: &self.realm,
            password,
            method,
            uri: p.get("uri")?,
            nonce: p.get("nonce")?,
            qop,
            cnonce: p.get("cnonce"),
        })
    }
}

/// Whether the credentials' `uri` names the Request-URI: equal as text, or equal once both are
/// parsed and written out again (so `sip:a@b` and `sip:a@b;transport=udp` differ, but the case
/// of the scheme does not); with [`UriMatch::HostPort`] also a user-less URI of the same host
/// and port.
fn same_uri(signed: &str, request_uri: &str, mode: UriMatch) -> bool {
    if signed == request_uri {
        return true;
    }
    let Ok(signed) = rsip::Uri::try_from(signed) else {
        return false;
    };
    if signed.to_string() == request_uri {
        return true;
    }
    mode == UriMatch::HostPort
        && signed.auth.is_none()
        && rsip::Uri::try_from(request_uri)
            .is_ok_and(|r| r.scheme == signed.scheme && r.host_with_port == signed.host_with_port)
}

/// Answers a `WWW-Authenticate` / `Proxy-Authenticate` challenge from a peer; returns the
/// credentials header value. `nc` counts the requests made with this nonce.
pub fn answer_challenge(
    challenge: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    nc: u32,
) -> Option<String> {
    let p = DigestParams::parse(challenge)?;
    let algorithm = p
        .get("algorithm")
        .map_or(Some(Algorithm::Md5), Algorithm::parse)?;
    let realm = p.get("realm")?;
    let nonce = p.get("nonce")?;
    let offers_auth = p
        .get("qop")
        .is_some_and(|q| q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")));
    let cnonce = hex::encode(rand::random::<[u8; 8]>());
    let nc = format!("{nc:08x}");
    let c = Computation {
        algorithm,
        username,
        realm,
        password,
        method,
        uri,
        nonce,
        qop: offers_auth.then_some((nc.as_str(), cnonce.as_str())),
        cnonce: Some(&cnonce),
    };
    let mut out = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm={}",
        c.response(),
        algorithm.as_str()
    );
    if offers_auth || algorithm.is_sess() {
        out.push_str(&format!(", cnonce=\"{cnonce}\""));
    }
    if offers_auth {
        out.push_str(&format!(", qop=auth, nc={nc}"));
    }
    if let Some(opaque) = p.get("opaque") {
        out.push_str(&format!(", opaque=\"{opaque}\""));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5 worked example (HTTP, MD5, qop=auth).
    #[test]
    fn rfc2617_vector() {
        let c = Computation {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some(("00000001", "0a4f113b")),
            cnonce: Some("0a4f113b"),
        };
        assert_eq!(c.response(), "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 §3.9.1 example with SHA-256.
    #[test]
    fn rfc7616_sha256_vector() {
        let c = Computation {
            algorithm: Algorithm::Sha256,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop: Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
        };
        assert_eq!(
            c.response(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn parses_quoted_params() {
        let p = DigestParams::parse(r#"Digest username="a\"b", realm="r", nc=0000000a, qop=auth"#)
            .unwrap();
        assert_eq!(p.get("username"), Some("a\"b"));
        assert_eq!(p.get("nc"), Some("0000000a"));
        assert!(DigestParams::parse("Basic abc").is_none());
    }

    fn creds(challenge: &str, method: &str, uri: &str, password: &str, nc: u32) -> DigestParams {
        DigestParams::parse(
            &answer_challenge(challenge, method, uri, "alice", password, nc).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn challenge_answer_roundtrip_both_algorithms() {
        let mut server = DigestServer::new("switchboard", &[Algorithm::Sha256, Algorithm::Md5]);
        let now = SystemTime::now();
        let challenges = server.challenge(now, false);
        assert!(
            challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5")
        );
        let uri = "sip:switchboard";
        // Both headers carry one nonce, so its counts go on rising across them.
        for (challenge, counts) in challenges.iter().zip([[1, 10, 255], [256, 300, 4096]]) {
            for nc in counts {
                let p = creds(challenge, "REGISTER", uri, "secret", nc);
                let mut verify = |method, uri, password, at| {
                    server.verify(&p, method, uri, "alice", password, at)
                };
                assert_eq!(verify("REGISTER", uri, "wrong", now), Verdict::Invalid);
                assert_eq!(verify("INVITE", uri, "secret", now), Verdict::Invalid);
                let later = now + Duration::from_secs(3600);
                assert_eq!(verify("REGISTER", uri, "secret", later), Verdict::Stale);
                assert_eq!(verify("REGISTER", uri, "secret", now), Verdict::Ok);
            }
        }
    }

    /// Credentials signed for one Request-URI are refused on another (RFC 3261 §22.4), and
    /// the same URI written differently by the client is still accepted.
    #[test]
    fn uri_must_be_the_request_uri() {
        let mut server = DigestServer::new("switchboard", &[]);
        let now = SystemTime::now();
        let challenge = &server.challenge(now, false)[0];
        let p = creds(challenge, "INVITE", "sip:+15551234@10.0.0.1", "secret", 1);
        let verdict = server.verify(
            &p,
            "INVITE",
            "sip:+19005550000@10.0.0.1",
            "alice",
            "secret",
            now,
        );
        assert_eq!(verdict, Verdict::Invalid);
        let p = creds(challenge, "INVITE", "SIP:+15551234@10.0.0.1", "secret", 2);
        let verdict = server.verify(
            &p,
            "INVITE",
            "sip:+15551234@10.0.0.1",
            "alice",
            "secret",
            now,
        );
        assert_eq!(verdict, Verdict::Ok);
    }

    /// SIPp signs `sip:host:port` for every request; that passes only where configured, and
    /// never for another host or with another user.
    #[test]
    fn host_port_uri_only_when_allowed() {
        let request = "sip:+15551234@10.0.0.1:5060";
        assert!(!same_uri(
            "sip:10.0.0.1:5060",
            request,
            UriMatch::RequestUri
        ));
        assert!(same_uri("sip:10.0.0.1:5060", request, UriMatch::HostPort));
        assert!(!same_uri("sip:10.0.0.2:5060", request, UriMatch::HostPort));
        assert!(!same_uri("sip:10.0.0.1", request, UriMatch::HostPort));
        assert!(!same_uri(
            "sip:+19005550000@10.0.0.1:5060",
            request,
            UriMatch::HostPort
        ));
        assert!(!same_uri("not a uri", request, UriMatch::HostPort));
        assert!(same_uri(request, request, UriMatch::RequestUri));
    }

    /// A captured request cannot be replayed: each nonce count is accepted once and must rise;
    /// without qop the nonce itself is single-use. A replay is `Stale`, never `Ok`.
    #[test]
    fn nonce_counts_are_single_use() {
        let mut server = DigestServer::new("switchboard", &[]);
        let now = SystemTime::now();
        let challenge = server.challenge(now, false).remove(0);
        let mut verify =
            |p: &DigestParams| server.verify(p, "REGISTER", "sip:s", "alice", "secret", now);
        let first = creds(&challenge, "REGISTER", "sip:s", "secret", 1);
        assert_eq!(verify(&first), Verdict::Ok);
        assert_eq!(verify(&first), Verdict::Stale);
        assert_eq!(
            verify(&creds(&challenge, "REGISTER", "sip:s", "secret", 3)),
            Verdict::Ok
        );
        assert_eq!(
            verify(&creds(&challenge, "REGISTER", "sip:s", "secret", 2)),
            Verdict::Stale
        );
        assert_eq!(
            verify(&creds(&challenge, "REGISTER", "sip:s", "secret", 0)),
            Verdict::Invalid
        );

        let without_qop = challenge.replace(", qop=\"auth\"", "");
        let p = creds(&without_qop, "REGISTER", "sip:s", "secret", 1);
        assert!(p.get("qop").is_none());
        // The nonce was used with qop above; a fresh one is good exactly once without it.
        let verify = |server: &mut DigestServer, p: &DigestParams| {
            server.verify(p, "REGISTER", "sip:s", "alice", "secret", now)
        };
        assert_eq!(verify(&mut server, &p), Verdict::Stale);
        let fresh = server
            .challenge(now, false)
            .remove(0)
            .replace(", qop=\"auth\"", "");
        let p = creds(&fresh, "REGISTER", "sip:s", "secret", 1);
        assert_eq!(verify(&mut server, &p), Verdict::Ok);
        assert_eq!(verify(&mut server, &p), Verdict::Stale);
    }

    /// The store of used nonces stays within its capacity under a stream of fresh nonces, and a
    /// nonce pushed out of it is not accepted again (it is older than the floor).
    #[test]
    fn used_nonce_store_is_bounded_and_fails_closed() {
        let mut server = DigestServer::new("switchboard", &[]);
        server.used.capacity = 8;
        let start = SystemTime::now();
        let mut first = None;
        for i in 0..100u64 {
            let now = start + Duration::from_millis(i);
            let p = creds(
                &server.challenge(now, false)[0],
                "REGISTER",
                "sip:s",
                "secret",
                1,
            );
            assert_eq!(
                server.verify(&p, "REGISTER", "sip:s", "alice", "secret", now),
                Verdict::Ok
            );
            first.get_or_insert(p);
            assert!(server.used.seen.len() <= 8);
        }
        let first = first.unwrap();
        let later = start + Duration::from_millis(200);
        let again = DigestParams::parse(
            &answer_challenge(
                &format!(
                    "Digest realm=\"switchboard\", nonce=\"{}\", qop=\"auth\"",
                    first.get("nonce").unwrap()
                ),
                "REGISTER",
                "sip:s",
                "alice",
                "secret",
                2,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            server.verify(&again, "REGISTER", "sip:s", "alice", "secret", later),
            Verdict::Stale
        );
    }

    /// Another process's nonce is refused unless both share the configured secret; then each
    /// node tells its sibling's nonce from a forgery, but only the issuing node accepts its
    /// uses: credentials it took cannot be replayed at another node.
    #[test]
    fn nonces_verify_across_nodes_with_a_shared_secret() {
        let a = DigestServer::new("switchboard", &[]);
        let mut b = DigestServer::new("switchboard", &[]);
        let now = SystemTime::now();
        let p = creds(&a.challenge(now, false)[0], "INVITE", "sip:x", "p", 1);
        assert_eq!(
            b.verify(&p, "INVITE", "sip:x", "alice", "p", now),
            Verdict::Invalid
        );

        let mut a = DigestServer::new("switchboard", &[]).with_secret(b"cluster secret", "node-a");
        let mut b = DigestServer::new("switchboard", &[]).with_secret(b"cluster secret", "node-b");
        let p = creds(&a.challenge(now, false)[0], "INVITE", "sip:x", "p", 1);
        assert_eq!(
            a.verify(&p, "INVITE", "sip:x", "alice", "p", now),
            Verdict::Ok
        );
        // The same credentials replayed at the other node: a valid nonce of the cluster, so a
        // fresh challenge (stale), never a second acceptance.
        assert_eq!(
            b.verify(&p, "INVITE", "sip:x", "alice", "p", now),
            Verdict::Stale
        );
        // A wrong password at the other node is still wrong.
        assert_eq!(
            b.verify(&p, "INVITE", "sip:x", "alice", "q", now),
            Verdict::Invalid
        );
        // The other node's own nonce is good there, once per nc.
        let q = creds(&b.challenge(now, false)[0], "INVITE", "sip:x", "p", 1);
        assert_eq!(
            b.verify(&q, "INVITE", "sip:x", "alice", "p", now),
            Verdict::Ok
        );
        assert_eq!(
            b.verify(&q, "INVITE", "sip:x", "alice", "p", now),
            Verdict::Stale
        );
        // Two processes of one node (a restart) accept each other's nonces.
        let mut a2 = DigestServer::new("switchboard", &[]).with_secret(b"cluster secret", "node-a");
        let r = creds(&a.challenge(now, false)[0], "INVITE", "sip:x", "p", 1);
        assert_eq!(
            a2.verify(&r, "INVITE", "sip:x", "alice", "p", now),
            Verdict::Ok
        );
        // A forged nonce (same time and salt, another MAC) is not ours.
        let mut forged = p.get("nonce").unwrap().to_owned();
        let flipped = if forged.ends_with("0000") {
            "1111"
        } else {
            "0000"
        };
        forged.replace_range(forged.len() - 4.., flipped);
        let challenge = format!("Digest realm=\"switchboard\", nonce=\"{forged}\", qop=\"auth\"");
        let p = creds(&challenge, "INVITE", "sip:x", "p", 1);
        assert_eq!(
            b.verify(&p, "INVITE", "sip:x", "alice", "p", now),
            Verdict::Invalid
        );
        // Nor is node a's nonce relabelled as node b's: the node is under the MAC.
        let b_nonce = q.get("nonce").unwrap();
        let mut relabelled = a.challenge(now, false)[0].clone();
        let start = relabelled.find("nonce=\"").unwrap() + "nonce=\"".len() + TIME_HEX;
        relabelled.replace_range(
            start..start + NODE_HEX,
            &b_nonce[TIME_HEX..TIME_HEX + NODE_HEX],
        );
        let p = creds(&relabelled, "INVITE", "sip:x", "p", 1);
        assert_eq!(
            b.verify(&p, "INVITE", "sip:x", "alice", "p", now),
            Verdict::Invalid
        );
    }
}
