//! Static routing from configuration: which trunk an INVITE arrived on (by source address), and
//! where a dialed number goes (first matching pattern wins).

use ipnet::IpNet;
use regex::Regex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use switchboard_media::record::Channels;
use switchboard_sip::transport::Transport;

#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    /// Where outbound INVITEs for this trunk go.
    pub address: SocketAddr,
    pub transport: Transport,
    /// INVITEs from these networks arrive on this trunk.
    pub inbound_sources: Vec<IpNet>,
    /// Digest credentials: answered when the trunk challenges us, demanded from its INVITEs.
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Trunk(String),
    User(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: Regex,
    pub target: Target,
    /// Calls on this route are recorded from their answer (WAV, the caller left when dual).
    pub record: Option<Channels>,
}

#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub trunks: Vec<Trunk>,
    pub routes: Vec<Route>,
    /// Registered phones: name → password.
    pub users: HashMap<String, String>,
}

impl Routing {
    /// The trunk whose inbound sources contain `ip` (most specific network wins).
    pub fn trunk_for_source(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks
            .iter()
            .filter_map(|t| {
                t.inbound_sources
                    .iter()
                    .filter(|n| n.contains(&ip))
                    .map(|n| n.prefix_len())
                    .max()
                    .map(|p| (p, t))
            })
            .max_by_key(|(p, _)| *p)
            .map(|(_, t)| t)
    }

    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// Where a dialed number goes.
    /// The first route whose pattern matches the dialed number.
    pub fn route(&self, number: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.pattern.is_match(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(name: &str, sources: &[&str]) -> Trunk {
        Trunk {
            name: name.into(),
            address: "127.0.0.1:5070".parse().unwrap(),
            transport: Transport::Udp,
            inbound_sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
            credentials: None,
        }
    }

    #[test]
    fn source_and_number_routing() {
        let r = Routing {
            trunks: vec![
                trunk("wide", &["10.0.0.0/8"]),
                trunk("narrow", &["10.1.2.0/24"]),
            ],
            routes: vec![
                Route {
                    pattern: Regex::new(r"^\+?1555").unwrap(),
                    target: Target::Trunk("narrow".into()),
                    record: None,
                },
                Route {
                    pattern: Regex::new(r"^alice$").unwrap(),
                    target: Target::User("alice".into()),
                    record: None,
                },
            ],
            users: HashMap::new(),
        };
        assert_eq!(
            r.trunk_for_source("10.1.2.3".parse().unwrap())
                .unwrap()
                .name,
            "narrow"
        );
        assert_eq!(
            r.trunk_for_source("10.9.9.9".parse().unwrap())
                .unwrap()
                .name,
            "wide"
        );
        assert!(r.trunk_for_source("192.0.2.1".parse().unwrap()).is_none());
        let target = |n: &str| r.route(n).map(|route| route.target.clone());
        assert_eq!(target("+15551234"), Some(Target::Trunk("narrow".into())));
        assert_eq!(target("alice"), Some(Target::User("alice".into())));
        assert_eq!(target("+44"), None);
    }
}
