//! Digest authentication for SIP (RFC 3261 §22, RFC 7616 algorithms, RFC 8760 SHA-256).
//!
//! Written here rather than with rsip's `DigestGenerator`, which hashes rsip's re-serialised
//! request URI instead of the `uri` parameter the client actually signed, formats `nc` in decimal
//! and treats the `-sess` algorithms like the plain ones, so it rejects valid answers.
//!
//! Nonces are stateless: a timestamp and a keyed hash of it, so a restart or several nodes do
//! not need shared nonce state; an expired nonce is reported as `stale` (RFC 7616 §3.3).

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
#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    /// Offered in this order, one challenge header each (RFC 8760 §2.4: preferred first).
    algorithms: Vec<Algorithm>,
    key: [u8; 32],
    nonce_ttl: Duration,
}

/// The result of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid for this user.
    Ok,
    /// Right password, expired nonce: challenge again with `stale=true`.
    Stale,
    /// Missing, malformed, for another realm, or wrong.
    Invalid,
}

impl DigestServer {
    /// A server for `realm` challenging with `algorithms` (MD5 when empty).
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
            nonce_ttl: Duration::from_secs(300),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn nonce_at(&self, secs: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(secs.to_be_bytes());
        h.update(self.realm.as_bytes());
        format!("{secs:x}{}", hex::encode(&h.finalize()[..12]))
    }

    /// `WWW-Authenticate` / `Proxy-Authenticate` values, one per configured algorithm.
    pub fn challenge(&self, now: SystemTime, stale: bool) -> Vec<String> {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let nonce = self.nonce_at(secs);
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

    /// Checks an `Authorization` / `Proxy-Authorization` value for `username`.
    pub fn verify(
        &self,
        credentials: &DigestParams,
        method: &str,
        username: &str,
        password: &str,
        now: SystemTime,
    ) -> Verdict {
        let Some(c) = self.computation(credentials, method, username, password) else {
            return Verdict::Invalid;
        };
        let Some(response) = credentials.get("response") else {
            return Verdict::Invalid;
        };
        if !response.eq_ignore_ascii_case(&c.response()) {
            return Verdict::Invalid;
        }
        // The nonce is ours if its hash matches its timestamp.
        let nonce = c.nonce;
        let Some(secs) = nonce
            .get(..nonce.len().saturating_sub(24))
            .and_then(|t| u64::from_str_radix(t, 16).ok())
        else {
            return Verdict::Invalid;
        };
        if self.nonce_at(secs) != nonce {
            return Verdict::Invalid;
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now.saturating_sub(secs) > self.nonce_ttl.as_secs() {
            Verdict::Stale
        } else {
            Verdict::Ok
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

    #[test]
    fn challenge_answer_roundtrip_both_algorithms() {
        let server = DigestServer::new("switchboard", &[Algorithm::Sha256, Algorithm::Md5]);
        let now = SystemTime::now();
        let challenges = server.challenge(now, false);
        assert!(
            challenges[0].contains("algorithm=SHA-256") && challenges[1].contains("algorithm=MD5")
        );
        for challenge in challenges {
            for nc in [1, 10, 255] {
                let creds = answer_challenge(
                    &challenge,
                    "REGISTER",
                    "sip:switchboard",
                    "alice",
                    "secret",
                    nc,
                )
                .unwrap();
                let p = DigestParams::parse(&creds).unwrap();
                assert_eq!(
                    server.verify(&p, "REGISTER", "alice", "secret", now),
                    Verdict::Ok,
                    "{creds}"
                );
                assert_eq!(
                    server.verify(&p, "REGISTER", "alice", "wrong", now),
                    Verdict::Invalid
                );
                assert_eq!(
                    server.verify(&p, "INVITE", "alice", "secret", now),
                    Verdict::Invalid
                );
                assert_eq!(
                    server.verify(
                        &p,
                        "REGISTER",
                        "alice",
                        "secret",
                        now + Duration::from_secs(3600)
                    ),
                    Verdict::Stale
                );
            }
        }
    }

    #[test]
    fn foreign_nonce_is_rejected() {
        let a = DigestServer::new("switchboard", &[]);
        let b = DigestServer::new("switchboard", &[]);
        let now = SystemTime::now();
        let creds =
            answer_challenge(&a.challenge(now, false)[0], "INVITE", "sip:x", "u", "p", 1).unwrap();
        assert_eq!(
            b.verify(
                &DigestParams::parse(&creds).unwrap(),
                "INVITE",
                "u",
                "p",
                now
            ),
            Verdict::Invalid
        );
    }
}
