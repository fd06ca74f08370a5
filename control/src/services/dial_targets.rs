//! Where a destination an application gave goes, as the core's [`Target`]: the name lookup a
//! `sip:` URI needs happens here, beside the core, which resolves no name of its own.

use crate::call::Target;
use crate::services::directory::sip_domains::SipDomains;
use switchboard_sip::message::Uri;
use switchboard_sip::transport::Transport;

/// `sip:` and `sips:` URIs to their host (resolved now; port 5061 for TLS unless given),
/// `client:` names to registered users, digits (with `+`, `*`, `#`) through the routes. `None`
/// when it is none of these, or its host does not resolve.
pub async fn resolve(to: &str) -> Option<Target> {
    let lower = to.get(..5).unwrap_or_default().to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let uri = Uri::try_from(to).ok()?;
        let host = uri.host_with_port.host.to_string();
        let tls = Transport::of_uri(to) == Some(Transport::Tls);
        let default_port = if tls { 5061 } else { 5060 };
        let port = (uri.host_with_port.port)
            .map(|p| *p.value())
            .unwrap_or(default_port);
        let next_hop = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next())?;
        return Some(Target::Uri { uri, next_hop });
    }
    if let Some(user) = to.strip_prefix("client:") {
        return Some(Target::User(user.to_owned()));
    }
    let digits = to.strip_prefix('+').unwrap_or(to);
    (!digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#'))
    .then(|| Target::Number(to.to_owned()))
}

/// [`resolve`] for `account`: a `sip:` URI at a SIP domain is the domain's user
/// (`user@domain`), whose registrations ring — when the domain is the account's; another
/// account's domain is not dialed (`None`), and no domain name is ever looked up in the DNS
/// (a `*.sip.twilio.com` name would reach Twilio).
pub async fn resolve_for(account: &str, domains: &SipDomains, to: &str) -> Option<Target> {
    let lower = to.get(..5).unwrap_or_default().to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let uri = Uri::try_from(to).ok()?;
        let host = uri.host_with_port.host.to_string();
        if let Some(domain) = domains.any_domain_named(&host) {
            let user = uri.user().filter(|_| domain.account_sid == account)?;
            return Some(Target::User(format!("{user}@{}", domain.name)));
        }
    }
    resolve(to).await
}
