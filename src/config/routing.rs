//! The routing part of a [`Config`]: SIP users, trunks and routes, each value checked with an
//! error naming the key at fault.

use super::settings::optional_file;
use super::*;
use ipnet::IpNet;
use regex::Regex;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;
use switchboard_control::call::dial_plan::{
    PeerTls, Route, RouteFeatures, RouteServices, RouteStream, SrtpPolicy, StreamProtocol, Target,
    Trunk,
};
use switchboard_control::infra::tls;
use switchboard_media::record::Channels;
use switchboard_media::{SourcePolicy, TapTracks};
use switchboard_sip::transport::{ListenSpec, Transport};

/// SIP users (name → password), and the account of those that have one.
pub(super) type Users = (HashMap<String, String>, HashMap<String, String>);

impl Config {
    /// The configuration's SIP users (name → password) and the accounts some belong to.
    pub(super) fn users(&self) -> Result<Users, ConfigError> {
        let mut users = HashMap::new();
        let mut user_accounts = HashMap::new();
        for (i, u) in self.users.iter().enumerate() {
            if let Some(account) = &u.account_sid {
                if !self.accounts.iter().any(|a| a.sid == *account) {
                    return Err(invalid(
                        format!("users[{i}].account_sid"),
                        format!("{account:?} is not an account of [[accounts]]"),
                    ));
                }
                user_accounts.insert(u.username.clone(), account.clone());
            }
            if u.username.is_empty() || u.password.is_empty() {
                return Err(invalid(
                    format!("users[{i}]"),
                    "username and password are both required",
                ));
            }
            if users
                .insert(u.username.clone(), u.password.clone())
                .is_some()
            {
                return Err(invalid(
                    format!("users[{i}].username"),
                    format!("{:?} is defined twice", u.username),
                ));
            }
        }

        Ok((users, user_accounts))
    }

    /// The trunks, and their names.
    pub(super) fn trunks(
        &self,
        listen: &[ListenSpec],
        tls_ca: Option<&Path>,
    ) -> Result<(Vec<Trunk>, HashSet<String>), ConfigError> {
        let mut trunks = Vec::new();
        let mut names = HashSet::new();
        for (i, t) in self.trunks.iter().enumerate() {
            let key = |k: &str| format!("trunks[{i}].{k}");
            if t.name.is_empty() || !names.insert(t.name.clone()) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} is empty or not unique", t.name),
                ));
            }
            let transport = match t.transport.to_ascii_lowercase().as_str() {
                "udp" => Transport::Udp,
                "tcp" => Transport::Tcp,
                "tls" => Transport::Tls,
                other => {
                    return Err(invalid(
                        key("transport"),
                        format!("expected udp, tcp or tls, got {other:?}"),
                    ));
                }
            };
            if !listen.iter().any(|l| l.transport == transport) {
                return Err(invalid(
                    key("transport"),
                    format!("no sip.listen entry for {}", t.transport),
                ));
            }
            let address = resolve(&t.address).ok_or_else(|| {
                invalid(
                    key("address"),
                    format!("expected HOST:PORT, got {:?}", t.address),
                )
            })?;
            let mut inbound_sources = Vec::new();
            for (j, s) in t.inbound_sources.iter().enumerate() {
                inbound_sources.push(network(&format!("trunks[{i}].inbound_sources[{j}]"), s)?);
            }
            let credentials = match (t.username.is_empty(), t.password.is_empty()) {
                (true, true) => None,
                (false, false) => Some((t.username.clone(), t.password.clone())),
                _ => {
                    return Err(invalid(
                        key("password"),
                        "username and password go together",
                    ));
                }
            };
            let tls = match transport {
                Transport::Tls => Some(trunk_tls(t, &key, tls_ca)?),
                _ => None,
            };
            trunks.push(Trunk {
                name: t.name.clone(),
                address,
                transport,
                inbound_sources,
                credentials,
                rtp_source: source_policy(&key("rtp_source"), &t.rtp_source)?,
                srtp: srtp_policy(&key("srtp"), &t.srtp)?,
                trusted: t.trusted,
                tls,
                options_interval: (t.options_interval_secs > 0)
                    .then(|| Duration::from_secs(t.options_interval_secs)),
            });
        }

        Ok((trunks, names))
    }

    /// The routes, each naming configured trunks or a configured user.
    pub(super) fn routes(
        &self,
        users: &HashMap<String, String>,
        names: &HashSet<String>,
    ) -> Result<Vec<Route>, ConfigError> {
        let mut routes = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            let pattern =
                Regex::new(&r.pattern).map_err(|e| invalid(key("pattern"), e.to_string()))?;
            let trunk_list: Vec<String> = r.trunk.iter().chain(&r.trunks).cloned().collect();
            let target = match (trunk_list.as_slice(), &r.user) {
                ([], Some(u)) if users.contains_key(u) => Target::User(u.clone()),
                ([], Some(u)) => {
                    return Err(invalid(key("user"), format!("no user named {u:?}")));
                }
                ([_, ..], None) => {
                    let field = if r.trunk.is_some() { "trunk" } else { "trunks" };
                    if let Some(t) = trunk_list.iter().find(|t| !names.contains(*t)) {
                        return Err(invalid(key(field), format!("no trunk named {t:?}")));
                    }
                    if r.trunk.is_some() && !r.trunks.is_empty() {
                        return Err(invalid(key("trunks"), "give trunk or trunks, not both"));
                    }
                    Target::Trunks(trunk_list)
                }
                _ => {
                    return Err(invalid(
                        format!("routes[{i}]"),
                        "exactly one of trunk, trunks or user is needed",
                    ));
                }
            };
            let record = match r.record.as_deref() {
                None => None,
                Some("dual") => Some(Channels::Dual),
                Some("mono") => Some(Channels::Mono),
                Some(other) => {
                    return Err(invalid(
                        key("record"),
                        format!("{other:?} is not \"dual\" or \"mono\""),
                    ));
                }
            };
            let time_limit = match r.time_limit_secs {
                None => None,
                Some(secs @ 1..=86_400) => Some(Duration::from_secs(secs)),
                Some(secs) => {
                    return Err(invalid(
                        key("time_limit_secs"),
                        format!("{secs} is not between 1 and 86400"),
                    ));
                }
            };
            let suppress_noise = match r.suppress_noise.as_deref() {
                None => (false, false),
                Some(p) => match parties(&key("suppress_noise"), p)? {
                    TapTracks::Inbound => (true, false),
                    TapTracks::Outbound => (false, true),
                    TapTracks::Both => (true, true),
                },
            };
            let stream = match &r.stream {
                None => None,
                Some(s) => Some(route_stream(&key("stream"), s)?),
            };
            let transcribe = match r.transcribe.as_deref() {
                None => None,
                Some(p) => Some(parties(&key("transcribe"), p)?),
            };
            // A route given to some accounts names them by SID.
            let bad_account = (r.accounts.iter()).find(|a| {
                a.len() != 34
                    || !a.starts_with("AC")
                    || !a[2..].bytes().all(|b| b.is_ascii_hexdigit())
            });
            if let Some(a) = bad_account {
                return Err(invalid(
                    key("accounts"),
                    format!("{a:?} is not an account SID"),
                ));
            }
            routes.push(Route {
                pattern,
                target,
                accounts: r.accounts.clone(),
                features: RouteFeatures {
                    record,
                    record_trim: false,
                    time_limit,
                    suppress_noise,
                    services: RouteServices {
                        stream,
                        transcribe,
                        detect_machine: r.detect_machine,
                    },
                },
            });
        }
        Ok(routes)
    }
}

/// An address or a CIDR network.
pub(super) fn network(key: &str, s: &str) -> Result<IpNet, ConfigError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| invalid(key, format!("expected an address or CIDR, got {s:?}")))
}

pub(super) fn srtp_policy(key: &str, value: &str) -> Result<SrtpPolicy, ConfigError> {
    SrtpPolicy::parse(value).ok_or_else(|| {
        invalid(
            key,
            format!("{value:?} is not \"off\", \"optional\" or \"required\""),
        )
    })
}

pub(super) fn source_policy(key: &str, value: &str) -> Result<SourcePolicy, ConfigError> {
    SourcePolicy::parse(value).ok_or_else(|| {
        invalid(
            key,
            format!("{value:?} is not \"strict\", \"learn-ip\" or \"learn-any\""),
        )
    })
}

pub(super) fn resolve(address: &str) -> Option<SocketAddr> {
    address
        .parse()
        .ok()
        .or_else(|| address.to_socket_addrs().ok()?.next())
}

/// How a TLS trunk is checked (its `tls_name`, else the host of its address) and the client
/// certificate presented to it.
pub(super) fn trunk_tls(
    t: &TrunkSection,
    key: &dyn Fn(&str) -> String,
    ca: Option<&Path>,
) -> Result<PeerTls, ConfigError> {
    let host = match t.tls_name.as_str() {
        "" => t
            .address
            .rsplit_once(':')
            .map_or(t.address.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']'),
        name => name,
    };
    let name = tls::server_name(host).ok_or_else(|| {
        invalid(
            key("tls_name"),
            format!("{host:?} is not a DNS name or IP address"),
        )
    })?;
    let certificate = optional_file(&key("tls_certificate"), &t.tls_certificate)?;
    let private_key = optional_file(&key("tls_key"), &t.tls_key)?;
    let identity = match (&certificate, &private_key) {
        (Some(certificate), Some(key)) => Some(tls::Identity { certificate, key }),
        (None, None) => None,
        _ => {
            return Err(invalid(
                key("tls_key"),
                "tls_certificate and tls_key go together",
            ));
        }
    };
    let config =
        tls::client_config(ca, identity).map_err(|e| invalid(key("tls_certificate"), e))?;
    Ok(PeerTls { name, config })
}

/// Whose audio a route's feature is about: "caller" (the caller's inbound track), "callee" or
/// "both".
pub(super) fn parties(key: &str, value: &str) -> Result<TapTracks, ConfigError> {
    match value {
        "caller" => Ok(TapTracks::Inbound),
        "callee" => Ok(TapTracks::Outbound),
        "both" => Ok(TapTracks::Both),
        other => Err(invalid(
            key.to_owned(),
            format!("{other:?} is not \"caller\", \"callee\" or \"both\""),
        )),
    }
}

/// A route's `stream`: a WebSocket URL with a host, the tracks and the protocol.
pub(super) fn route_stream(key: &str, s: &RouteStreamSection) -> Result<RouteStream, ConfigError> {
    let url = url::Url::parse(&s.url).map_err(|e| invalid(format!("{key}.url"), e.to_string()))?;
    if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            format!("{key}.url"),
            format!("{:?} is not a ws:// or wss:// URL with a host", s.url),
        ));
    }
    let tracks = parties(
        &format!("{key}.track"),
        s.track.as_deref().unwrap_or("caller"),
    )?;
    let protocol = match s.protocol.as_deref() {
        None | Some("twilio") => StreamProtocol::Twilio,
        Some("telnyx") => StreamProtocol::Telnyx,
        Some(other) => {
            return Err(invalid(
                format!("{key}.protocol"),
                format!("{other:?} is not \"twilio\" or \"telnyx\""),
            ));
        }
    };
    Ok(RouteStream {
        url: s.url.clone(),
        tracks,
        protocol,
    })
}
