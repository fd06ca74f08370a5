//! Where Switchboard may connect on an application's behalf: one policy for every outbound
//! fetch (markup, audio, webhooks) and connection (media streams), checked on the address a
//! name resolves to — at connection time, so a redirect or a DNS answer that changes between
//! check and use cannot slip past it (server-side request forgery).
//!
//! Link-local addresses, which hold cloud metadata services with their credentials, are never
//! reachable. Loopback and private networks are reachable by default (a developer's
//! application runs there) and can be denied globally and per account.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Which non-public networks an account's URLs may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    pub loopback: bool,
    pub private: bool,
}

impl Default for Reach {
    fn default() -> Self {
        Self {
            loopback: true,
            private: true,
        }
    }
}

/// Why an address may not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0} is link-local (cloud metadata); never reachable")]
    LinkLocal(IpAddr),
    #[error("{0} is a loopback address, not reachable for this account")]
    Loopback(IpAddr),
    #[error("{0} is on a private network, not reachable for this account")]
    Private(IpAddr),
    #[error("{0} is not a unicast address")]
    NotUnicast(IpAddr),
}

impl Reach {
    /// The stricter of two.
    pub fn and(self, other: Reach) -> Reach {
        Reach {
            loopback: self.loopback && other.loopback,
            private: self.private && other.private,
        }
    }

    /// Whether `ip` may be connected to.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        let ip = embedded_v4(ip).map_or(ip, IpAddr::V4);
        match classify(ip) {
            Class::LinkLocal => Err(Denied::LinkLocal(ip)),
            Class::NotUnicast => Err(Denied::NotUnicast(ip)),
            Class::Loopback if !self.loopback => Err(Denied::Loopback(ip)),
            Class::Private if !self.private => Err(Denied::Private(ip)),
            _ => Ok(()),
        }
    }
}

/// The IPv4 address an IPv6 address stands for, where it reaches that IPv4 host: mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated but still routed by some
/// stacks) and NAT64 (`64:ff9b::/96`, RFC 6052, and the local-use `64:ff9b:1::/48`, RFC 8215,
/// whose gateways translate to the embedded address). Classified by the IPv4 address, these
/// cannot smuggle a loopback, private or metadata address past the policy.
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let s = v6.segments();
    let [.., a, b, c, d] = v6.octets();
    let last = Ipv4Addr::new(a, b, c, d);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let compatible = s[..6] == [0; 6] && !(v6.is_unspecified() || v6.is_loopback());
    let nat64 =
        s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1);
    (compatible || nat64).then_some(last)
}

enum Class {
    Public,
    Loopback,
    Private,
    LinkLocal,
    NotUnicast,
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, ..] = ip.octets();
    if ip.is_link_local() {
        Class::LinkLocal
    } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Class::NotUnicast
    } else if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_private()
        // Shared address space (RFC 6598), "this network" (0/8) and benchmarking (RFC 2544).
        || (a == 100 && (64..128).contains(&b))
        || a == 0
        || (a == 198 && (b == 18 || b == 19))
    {
        Class::Private
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    // AWS's IPv6 metadata endpoint sits in unique-local space; it is denied with link-local.
    let metadata = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    if (s[0] & 0xffc0) == 0xfe80 || ip == metadata {
        Class::LinkLocal
    } else if ip.is_unspecified() || ip.is_multicast() {
        Class::NotUnicast
    } else if ip.is_loopback() {
        Class::Loopback
    } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        // Unique-local (RFC 4193) and the deprecated site-local.
        Class::Private
    } else {
        Class::Public
    }
}

/// Resolves `host:port` and keeps the addresses `reach` allows; an error names the first
/// address refused when none is left.
pub async fn resolve(host: &str, port: u16, reach: Reach) -> std::io::Result<Vec<SocketAddr>> {
    let host = host.trim_matches(['[', ']']);
    let found: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port)).await?.collect(),
    };
    let mut refused = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match reach.check(a.ip()) {
            Ok(()) => true,
            Err(e) => {
                refused.get_or_insert(e);
                false
            }
        })
        .collect();
    match (allowed.is_empty(), refused) {
        (false, _) => Ok(allowed),
        (true, Some(denied)) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            denied,
        )),
        (true, None) => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        )),
    }
}

/// The resolver of [`Clients`]: the system's, filtered by a [`Reach`].
struct Filtered(Reach);

impl reqwest::dns::Resolve for Filtered {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (host, reach) = (name.as_str().to_owned(), self.0);
        let fut: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            let addrs = resolve(&host, 0, reach).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        });
        fut
    }
}

/// Redirects are followed (up to 10) only to http(s) URLs whose literal address, if any, the
/// reach allows; names are checked by the resolver when the redirect is connected.
fn redirects(reach: Reach) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("too many redirects");
        }
        match check_literal(attempt.url(), reach) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

/// Checks a URL's scheme and, when its host is an IP address (which no resolver sees), that
/// address.
pub fn check_literal(url: &url::Url, reach: Reach) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
        return Err(format!("{} URLs are not fetched", url.scheme()));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err("the URL has no host".into()),
    };
    reach.check(ip).map_err(|e| e.to_string())
}

/// One HTTP client per [`Reach`], each resolving through the policy; every fetch on an
/// account's behalf goes through [`Clients::for_url`].
#[derive(Clone)]
pub struct Clients {
    clients: Arc<[reqwest::Client; 4]>,
    /// Switchboard's own API (`http.public_url`): its recordings may be played back even when
    /// the account may not reach the network it is on.
    own: Option<(url::Url, reqwest::Client)>,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Clients {
    /// `own_url` is `http.public_url`.
    pub fn new(own_url: Option<&str>) -> Self {
        let build = |i: usize| {
            let reach = Reach {
                loopback: i & 1 != 0,
                private: i & 2 != 0,
            };
            builder()
                .dns_resolver(Arc::new(Filtered(reach)))
                .redirect(redirects(reach))
                .build()
                .expect("the TLS provider is installed")
        };
        let own = own_url.and_then(|u| url::Url::parse(u).ok()).map(|u| {
            let client = (builder()
                .redirect(reqwest::redirect::Policy::none())
                .build())
            .expect("the TLS provider is installed");
            (u, client)
        });
        Self {
            clients: Arc::new([build(0), build(1), build(2), build(3)]),
            own,
        }
    }

    /// A client for the operator's own services (a network speech engine): configured, not
    /// an account's, so no egress filter; `timeout` for each whole request.
    pub fn operator_client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
        builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())
    }

    /// The client to fetch `url` with for an account of `reach`, or why it may not be.
    pub fn for_url(&self, url: &str, reach: Reach) -> Result<&reqwest::Client, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        if let Some((own, client)) = &self.own
            && parsed.origin() == own.origin()
        {
            return Ok(client);
        }
        check_literal(&parsed, reach)?;
        Ok(&self.clients[usize::from(reach.loopback) | usize::from(reach.private) << 1])
    }
}

/// Timeouts, user agent, TLS and no proxy from the environment (a proxy would connect for us,
/// past the policy).
fn builder() -> reqwest::ClientBuilder {
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_and_link_local_are_never_reachable() {
        let open = Reach::default();
        for a in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(
                matches!(open.check(ip(a)), Err(Denied::LinkLocal(_))),
                "{a}"
            );
        }
        for a in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1"] {
            assert!(open.check(ip(a)).is_err(), "{a}");
        }
    }

    #[test]
    fn loopback_and_private_follow_the_reach() {
        let closed = Reach {
            loopback: false,
            private: false,
        };
        for a in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(Reach::default().check(ip(a)).is_ok(), "{a}");
            assert!(
                matches!(closed.check(ip(a)), Err(Denied::Loopback(_))),
                "{a}"
            );
        }
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
        ] {
            assert!(Reach::default().check(ip(a)).is_ok(), "{a}");
            assert!(
                matches!(closed.check(ip(a)), Err(Denied::Private(_))),
                "{a}"
            );
        }
        for a in ["8.8.8.8", "203.0.113.9", "2001:db8::1"] {
            assert!(closed.check(ip(a)).is_ok(), "{a}");
        }
    }

    #[test]
    fn ipv4_compatible_and_nat64_addresses_are_classified_by_their_ipv4() {
        let closed = Reach {
            loopback: false,
            private: false,
        };
        for (a, denied) in [
            ("::127.0.0.1", "loopback"),
            ("::169.254.169.254", "link-local"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b::192.168.0.1", "private"),
            ("64:ff9b:1::10.1.2.3", "private"),
        ] {
            let verdict = closed.check(ip(a));
            let kind = match verdict {
                Err(Denied::Loopback(_)) => "loopback",
                Err(Denied::LinkLocal(_)) => "link-local",
                Err(Denied::Private(_)) => "private",
                other => panic!("{a}: {other:?}"),
            };
            assert_eq!(kind, denied, "{a}");
        }
        // The metadata address is refused even to an account that may reach anything.
        assert!(
            Reach::default()
                .check(ip("64:ff9b::169.254.169.254"))
                .is_err()
        );
        for a in ["64:ff9b::8.8.8.8", "::8.8.8.8"] {
            assert!(closed.check(ip(a)).is_ok(), "{a}");
        }
    }

    #[test]
    fn literal_addresses_and_schemes_are_checked_in_urls() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let open = Reach::default();
        assert!(check_literal(&u("http://169.254.169.254/latest/meta-data/"), open).is_err());
        assert!(check_literal(&u("http://[fe80::1]:8080/"), open).is_err());
        assert!(check_literal(&u("file:///etc/passwd"), open).is_err());
        assert!(check_literal(&u("https://app.example.com/voice"), open).is_ok());
        assert!(check_literal(&u("http://127.0.0.1:9/x"), open).is_ok());
    }
}
