//! Static routing from configuration: which trunk an INVITE arrived on (by source address), and
//! where a dialed number goes (first matching pattern wins).

use ipnet::IpNet;
use regex::Regex;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use switchboard_media::record::Channels;
use switchboard_media::{SourcePolicy, TapTracks};
use switchboard_sip::transport::Transport;

#[derive(Clone)]
pub struct Trunk {
    pub name: String,
    /// Where outbound INVITEs for this trunk go.
    pub address: SocketAddr,
    pub transport: Transport,
    /// INVITEs from these networks arrive on this trunk.
    pub inbound_sources: Vec<IpNet>,
    /// Digest credentials: answered when the trunk challenges us, demanded from its INVITEs.
    pub credentials: Option<(String, String)>,
    /// Which RTP sources its media is accepted from besides its SDP address.
    pub rtp_source: SourcePolicy,
    /// Whether its media is SRTP.
    pub srtp: SrtpPolicy,
    /// In our trust domain (RFC 3325): its calls' asserted identities and diversions are
    /// believed, and passed on to the other trusted trunks (and to no one else).
    pub trusted: bool,
    /// For `transport = "tls"`: how its certificate is checked and which one we present.
    pub tls: Option<PeerTls>,
    /// Probed with OPTIONS this often: marked down when a probe goes unanswered (or is
    /// answered 503), up again at the next answer; routes pass over it while it is down.
    pub options_interval: Option<std::time::Duration>,
}

/// SRTP with keys in the SDP (SDES, RFC 4568) toward a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP: SRTP-only offers are refused (488), keys offered beside plain RTP ignored.
    #[default]
    Off,
    /// SRTP when the peer offers or accepts it, plain RTP otherwise: our offers carry keys on
    /// a plain `RTP/AVP` stream (what many PBXs call best effort).
    Optional,
    /// SRTP only: our offers are `RTP/SAVP`, a plain offer or answer is refused.
    Required,
}

impl SrtpPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "optional" => Some(Self::Optional),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

/// What a peer's media policy is: which sources may latch, whether it is SRTP, and whether it
/// may be a browser (a WebRTC leg: ICE-lite and DTLS-SRTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerMedia {
    pub source: SourcePolicy,
    pub srtp: SrtpPolicy,
    /// Registered users may be browsers (JsSIP, SIP.js over WebSocket); trunks are not.
    pub webrtc: bool,
}

/// How a TLS connection to a peer is opened: the name its certificate must carry, the roots
/// it is checked against and the client certificate we present if asked.
#[derive(Clone)]
pub struct PeerTls {
    pub name: rustls::pki_types::ServerName<'static>,
    pub config: std::sync::Arc<rustls::ClientConfig>,
}

/// SIP over TLS beyond the trunks.
#[derive(Clone, Default)]
pub struct SipTls {
    /// What TLS listeners present; `None` without one.
    pub server: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// How other peers (registered phones, dialed `sips:` URIs) are checked: the system's
    /// roots and the configured CA, their certificate naming their IP address.
    pub client: Option<std::sync::Arc<rustls::ClientConfig>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Trunks tried in order: the next is tried when one fails with 408 or 5xx (or is down).
    Trunks(Vec<String>),
    /// Trunks tried by priority (lowest first), those of one priority in an order drawn for
    /// each call by their weights, failing over as `Trunks` do: a tenant trunk's origination
    /// URLs (Twilio's `Priority` and `Weight`, DNS SRV's rule).
    Shares(Vec<Share>),
    User(String),
}

/// A trunk's part in a [`Target::Shares`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub trunk: String,
    pub priority: u16,
    /// At least 1: a trunk of weight 20 is tried first twice as often as one of weight 10.
    pub weight: u16,
}

/// The order in which a call tries `shares`: priority groups lowest first, each group in an
/// order drawn by weight (RFC 2782's selection: a draw in the running sum of the weights
/// left picks the next). `draw(n)` gives a number below `n`.
pub fn share_order(shares: &[Share], mut draw: impl FnMut(u32) -> u32) -> Vec<String> {
    let mut left: Vec<&Share> = shares.iter().collect();
    left.sort_by_key(|s| s.priority);
    let mut order = Vec::with_capacity(left.len());
    while let Some(first) = left.first() {
        let priority = first.priority;
        let group = left.iter().take_while(|s| s.priority == priority).count();
        let total: u32 = left[..group]
            .iter()
            .map(|s| u32::from(s.weight.max(1)))
            .sum();
        let mut at = draw(total);
        let mut pick = 0;
        for (i, s) in left[..group].iter().enumerate() {
            let w = u32::from(s.weight.max(1));
            if at < w {
                pick = i;
                break;
            }
            at -= w;
        }
        order.push(left.remove(pick).trunk.clone());
    }
    order
}

#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: Regex,
    pub target: Target,
    /// The accounts whose calls may take it (a trunk given to some tenants); empty: every
    /// call, an account's or none's (a call between trunks).
    pub accounts: Vec<String>,
    /// What the route does to the calls it connects, from their answer.
    pub features: RouteFeatures,
}

/// What a route does to its calls once answered: the same commands an application gives a
/// call, asked for in configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFeatures {
    /// Recorded from the answer (WAV, the caller left when dual).
    pub record: Option<Channels>,
    /// Silence at the recording's ends trimmed.
    pub record_trim: bool,
    /// Hung up this long after the answer (cause `time-limit`): an SBC's longest call.
    pub time_limit: Option<std::time::Duration>,
    /// Noise suppressed in what the caller says (`.0`) and in what the callee says (`.1`).
    pub suppress_noise: (bool, bool),
    /// What the services beside the core do for the call from its answer.
    pub services: RouteServices,
}

/// The parts of a route's features that services outside the core carry out (they hold
/// sockets and recognisers): the core asks for them at the answer
/// ([`crate::Output::Serve`]), and what they find comes back as the call's events.
/// Tracks are the caller's: `Inbound` is what the caller says, `Outbound` what the callee
/// says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteServices {
    /// The call's audio streamed to a WebSocket.
    pub stream: Option<RouteStream>,
    /// The parties' speech transcribed (`transcript` events).
    pub transcribe: Option<TapTracks>,
    /// Whether a person or a machine answered (a `machine-detection` event).
    pub detect_machine: bool,
}

impl RouteServices {
    pub fn any(&self) -> bool {
        self.stream.is_some() || self.transcribe.is_some() || self.detect_machine
    }
}

/// A one-way media stream a route asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStream {
    /// `ws://` or `wss://`.
    pub url: String,
    pub tracks: TapTracks,
    /// Whose message format the stream speaks.
    pub protocol: StreamProtocol,
}

/// The message formats of media streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamProtocol {
    /// Twilio's Media Streams (most voice bots speak it).
    Twilio,
    /// Telnyx's media streaming.
    Telnyx,
}

/// A SIP domain whose callers are admitted by their source address (its IP access control
/// lists mapped for calls): an INVITE to the domain (its To host) from one of `nets`, with
/// no credentials. Such a call is the login `@DOMAIN`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSource {
    /// The domain's name, lower case.
    pub domain: String,
    pub nets: Vec<IpNet>,
}

/// A trunk a tenant made through the API (Twilio's Elastic SIP Trunking, Telnyx's IP and
/// FQDN connections): its calls are its account's, and it claims no source address the way
/// the operator's trunks do — an INVITE is on it when it names the trunk's termination host
/// and passes the trunk's checks ([`DialPlan::tenant_trunk_for`]).
#[derive(Clone)]
pub struct TenantTrunk {
    pub trunk: Trunk,
    pub account: String,
    /// Which INVITEs arrive on it.
    pub admits: Admits,
    /// Its credentials (user, password): with any, its INVITEs must prove one by digest.
    /// Its `inbound_sources`, when any, must hold the INVITE's source; with neither, nothing
    /// is admitted on it.
    pub logins: Vec<(String, String)>,
    /// What its calls out through the routes are held to.
    pub outbound: OutboundPolicy,
    /// Its calls out recorded from the answer (their channels, and whether silence is
    /// trimmed), whatever the route they take says.
    pub record: Option<(Channels, bool)>,
    /// Noise suppressed, from the answer of each call it places, in what its side says (`.0`)
    /// and in what its side hears (`.1`), beside what the route they take asks. (Its calls in
    /// get theirs from its numbers' routes.)
    pub suppress_noise: (bool, bool),
}

/// What a tenant's calls out through the operator's routes are held to — a Telnyx
/// connection's `outbound` settings and its outbound voice profile: checked when such a call
/// is admitted and its route found, before it is dialed. The dialect words the refusals
/// (their status and reason phrase); the core decides.
#[derive(Clone, Default)]
pub struct OutboundPolicy {
    /// Every call refused, with this status and reason phrase (an inactive connection, a
    /// disabled profile).
    pub refused: Option<(u16, String)>,
    /// Which dialed numbers may be called, and the reason phrase of a 403 for the others.
    pub destinations: Option<Destinations>,
    /// Channel groups each call takes a channel of; a call finding one full is refused 403
    /// with its reason phrase.
    pub channels: Vec<(crate::api::ChannelLimit, String)>,
    /// The number its calls out show instead of the caller's (a connection's
    /// `ani_override`), and which calls it is shown on.
    pub caller_id: Option<CallerIdOverride>,
}

/// A caller ID put on a tenant's calls out in place of the one its phone or PBX sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdOverride {
    pub number: String,
    pub applies_to: OverrideScope,
}

/// Which calls a [`CallerIdOverride`] is put on (Telnyx's `ani_override_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideScope {
    Always,
    /// All but calls to the emergency services.
    NonEmergency,
    /// Only calls to the emergency services (a PBX's callback number for them).
    Emergency,
}

/// The emergency services' short numbers (North America's, the GSM and European 112, the
/// UK's, Australia's, Japan's and China's, and the US test number): dialed as such, or with a
/// `+` before them.
const EMERGENCY_NUMBERS: [&str; 7] = ["911", "933", "112", "999", "000", "110", "119"];

/// Whether `dialed` calls the emergency services.
pub fn is_emergency(dialed: &str) -> bool {
    EMERGENCY_NUMBERS.contains(&dialed.strip_prefix('+').unwrap_or(dialed))
}

impl CallerIdOverride {
    /// The caller ID a call to `dialed` shows, if this override applies to it.
    pub fn for_call(&self, dialed: &str) -> Option<&str> {
        let applies = match self.applies_to {
            OverrideScope::Always => true,
            OverrideScope::NonEmergency => !is_emergency(dialed),
            OverrideScope::Emergency => is_emergency(dialed),
        };
        applies.then_some(self.number.as_str())
    }
}

/// A dialect's rule of which numbers a policy lets its calls reach (a profile's whitelisted
/// countries: the country of a number is the services' to know, not the core's).
#[derive(Clone)]
pub struct Destinations {
    pub allows: std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>,
    pub refusal: String,
}

impl OutboundPolicy {
    /// Why a call to `number` may not be placed now, `channels_held` telling how many calls
    /// hold a channel of a group: the status and reason phrase.
    pub fn refusal(
        &self,
        number: &str,
        channels_held: impl Fn(&str) -> usize,
    ) -> Option<(u16, String)> {
        if let Some(refused) = &self.refused {
            return Some(refused.clone());
        }
        if let Some(d) = self.destinations.as_ref().filter(|d| !(d.allows)(number)) {
            return Some((403, d.refusal.clone()));
        }
        (self.channels.iter())
            .find(|(limit, _)| channels_held(&limit.group) >= limit.max as usize)
            .map(|(_, phrase)| (403, phrase.clone()))
    }

    /// The channel groups an admitted call holds.
    pub fn groups(&self) -> Vec<String> {
        self.channels.iter().map(|(l, _)| l.group.clone()).collect()
    }
}

impl std::fmt::Debug for OutboundPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundPolicy")
            .field("refused", &self.refused)
            .field(
                "destinations",
                &self.destinations.as_ref().map(|d| &d.refusal),
            )
            .field("channels", &self.channels)
            .field("caller_id", &self.caller_id)
            .finish()
    }
}

/// Two policies are the same when they refuse the same way and share one rule of
/// destinations (the very same closure).
impl PartialEq for OutboundPolicy {
    fn eq(&self, other: &Self) -> bool {
        let same_rule = match (&self.destinations, &other.destinations) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                std::sync::Arc::ptr_eq(&a.allows, &b.allows) && a.refusal == b.refusal
            }
            _ => false,
        };
        self.refused == other.refused
            && self.channels == other.channels
            && self.caller_id == other.caller_id
            && same_rule
    }
}

impl Eq for OutboundPolicy {}

/// Which INVITEs a tenant's trunk takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admits {
    /// None: a trunk that only takes calls (an origination URL, a connection's address).
    Nothing,
    /// Those naming this host, its termination URI's (Twilio's trunks), in the Request-URI
    /// or To.
    Domain(String),
    /// Those from its `inbound_sources` (Telnyx's IP connections authenticate by address),
    /// after the operator's trunks: no tenant's address outranks a carrier's.
    Sources,
}

/// The tenants' trunks, and the routes of the numbers they gave them (tried before the
/// operator's routes).
#[derive(Clone, Default)]
pub struct TenantTrunks {
    pub trunks: Vec<TenantTrunk>,
    pub routes: Vec<Route>,
    /// Numbers whose calls in hold a channel of a group (a Telnyx connection's
    /// `inbound.channel_limit`, over every number it has): a call to one finding the group
    /// full is refused 403 with the reason phrase, whoever would have taken it.
    pub inbound_limits: HashMap<String, (crate::api::ChannelLimit, String)>,
}

impl std::fmt::Debug for TenantTrunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&String> = self.logins.iter().map(|(u, _)| u).collect();
        f.debug_struct("TenantTrunk")
            .field("trunk", &self.trunk)
            .field("account", &self.account)
            .field("admits", &self.admits)
            .field("users (passwords hidden)", &users)
            .finish()
    }
}

impl std::fmt::Debug for TenantTrunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTrunks")
            .field("trunks", &self.trunks)
            .field("routes", &self.routes)
            .field("inbound_limits", &self.inbound_limits)
            .finish()
    }
}

#[derive(Clone, Default)]
pub struct DialPlan {
    pub trunks: Vec<Trunk>,
    pub routes: Vec<Route>,
    /// Registered phones: name → password.
    pub users: HashMap<String, String>,
    /// The account each registered phone belongs to: only that account's calls may ring it.
    pub user_accounts: HashMap<String, String>,
    /// Registered phones' media sources (often behind NAT, with private SDP addresses).
    pub user_rtp_source: SourcePolicy,
    /// Media sources of peers neither a trunk nor a user (`sip:` URIs dialed directly).
    pub default_rtp_source: SourcePolicy,
    /// Whether registered phones' media is SRTP. Other peers that are not trunks get plain RTP.
    pub user_srtp: SrtpPolicy,
    /// Where `sip:` URIs from applications may be sent besides the trunks' addresses.
    pub sip_uri_allow: Vec<IpNet>,
    pub tls: SipTls,
    /// The tenants' trunks, kept by the core across reloads of the rest.
    pub tenant: TenantTrunks,
}

/// Passwords are shown as `"***"`: a Debug print ends up in logs.
impl std::fmt::Debug for Trunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = format_args!("{}", crate::REDACTED);
        f.debug_struct("Trunk")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("transport", &self.transport)
            .field("inbound_sources", &self.inbound_sources)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(user, _)| (user, hidden)),
            )
            .field("rtp_source", &self.rtp_source)
            .field("srtp", &self.srtp)
            .field("trusted", &self.trusted)
            .field("tls_name", &self.tls.as_ref().map(|t| t.name.to_str()))
            .field("options_interval", &self.options_interval)
            .finish()
    }
}

impl std::fmt::Debug for DialPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("DialPlan")
            .field("trunks", &self.trunks)
            .field("routes", &self.routes)
            .field("users (passwords hidden)", &users)
            .field("user_rtp_source", &self.user_rtp_source)
            .field("default_rtp_source", &self.default_rtp_source)
            .field("user_srtp", &self.user_srtp)
            .field("sip_uri_allow", &self.sip_uri_allow)
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl DialPlan {
    /// The trunk whose inbound sources contain `ip` (most specific network wins).
    /// Whether `ip` is in a trunk's `inbound_sources`, as a closure the transports keep.
    pub fn trusted_sources(&self) -> switchboard_sip::transport::TrustedSources {
        let nets: Vec<ipnet::IpNet> = (self.trunks.iter())
            .flat_map(|t| t.inbound_sources.iter().copied())
            .collect();
        Box::new(move |ip| nets.iter().any(|n| n.contains(&ip)))
    }

    /// How the transports open TLS connections: to a trunk's address as the trunk says, to
    /// any other with the default client configuration and the address as the name.
    pub fn tls_peers(&self) -> switchboard_sip::transport::TlsPeers {
        let tenants = self.tenant.trunks.iter().map(|t| &t.trunk);
        let trunks: Vec<(SocketAddr, PeerTls)> = (self.trunks.iter().chain(tenants))
            .filter_map(|t| Some((t.address, t.tls.clone()?)))
            .collect();
        let default = self.tls.client.clone();
        Box::new(move |addr| {
            if let Some((_, tls)) = trunks.iter().find(|(a, _)| *a == addr) {
                return Some((tls.name.clone(), tls.config.clone()));
            }
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            Some((name, default.clone()?))
        })
    }

    /// Whether `ip` is one of trunk `name`'s `inbound_sources`: where its carrier may send a
    /// call's in-dialog requests from, whichever of its addresses set the call up.
    pub fn trunk_sources(&self, name: &str) -> Option<switchboard_sip::ua::SourceCheck> {
        // A tenant's trunk with no addresses (credentials alone) takes them from where the
        // dialog's peer is, as any peer's.
        let nets = Some(self.trunk(name)?.inbound_sources.clone()).filter(|n| !n.is_empty())?;
        let check = move |ip: IpAddr| nets.iter().any(|n| n.contains(&ip));
        Some(switchboard_sip::ua::SourceCheck(std::sync::Arc::new(check)))
    }

    pub fn trunk_for_source(&self, ip: IpAddr) -> Option<&Trunk> {
        most_specific(self.trunks.iter(), ip, |t| &t.inbound_sources)
    }

    /// How media is taken from and sent to a peer reached through `trunk` or being `user`.
    pub fn peer_media(&self, trunk: Option<&str>, user: Option<&str>) -> PeerMedia {
        match (trunk.and_then(|t| self.trunk(t)), user) {
            (Some(t), _) => PeerMedia {
                source: t.rtp_source,
                srtp: t.srtp,
                webrtc: false,
            },
            (None, Some(_)) => PeerMedia {
                source: self.user_rtp_source,
                srtp: self.user_srtp,
                webrtc: true,
            },
            (None, None) => PeerMedia {
                source: self.default_rtp_source,
                srtp: SrtpPolicy::Off,
                webrtc: false,
            },
        }
    }

    /// Whether an application may send a call to a `sip:` URI at `ip`: a trunk's address, or
    /// a network the operator allowed. Otherwise any tenant could make Switchboard send SIP
    /// (and media) to any host, inside the operator's network included.
    pub fn may_dial(&self, ip: IpAddr) -> bool {
        self.trunks.iter().any(|t| t.address.ip() == ip)
            || self.sip_uri_allow.iter().any(|n| n.contains(&ip))
    }

    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        (self.trunks.iter())
            .chain(self.tenant.trunks.iter().map(|t| &t.trunk))
            .find(|t| t.name == name)
    }

    /// The account whose trunk `name` is, when a tenant's.
    pub fn trunk_account(&self, name: &str) -> Option<&str> {
        (self.tenant.trunks.iter())
            .find(|t| t.trunk.name == name)
            .map(|t| t.account.as_str())
    }

    /// The tenant's trunk whose termination host `host` is (any case).
    pub fn tenant_trunk_for(&self, host: &str) -> Option<&TenantTrunk> {
        (self.tenant.trunks.iter())
            .find(|t| matches!(&t.admits, Admits::Domain(d) if d.eq_ignore_ascii_case(host)))
    }

    /// The tenant's trunk admitting by address whose addresses hold `ip` (the most specific
    /// network wins).
    pub fn tenant_trunk_for_source(&self, ip: IpAddr) -> Option<&TenantTrunk> {
        let by_address = (self.tenant.trunks.iter()).filter(|t| t.admits == Admits::Sources);
        most_specific(by_address, ip, |t| &t.trunk.inbound_sources)
    }

    /// Where a dialed number goes: the first route that matches `number` and that a call of
    /// `account` may take (one given to other accounts is passed over); the routes of the
    /// numbers tenants gave their trunks first.
    pub fn route(&self, number: &str, account: Option<&str>) -> Option<&Route> {
        (self.tenant.routes.iter().chain(self.routes.iter())).find(|r| {
            r.pattern.is_match(number)
                && (r.accounts.is_empty()
                    || account.is_some_and(|a| r.accounts.iter().any(|x| x == a)))
        })
    }
}

/// Of `items`, the one whose `sources` hold `ip` in the narrowest network (the most specific
/// claim wins).
fn most_specific<'a, T>(
    items: impl Iterator<Item = &'a T>,
    ip: IpAddr,
    sources: impl Fn(&T) -> &[IpNet],
) -> Option<&'a T> {
    items
        .filter_map(|t| {
            (sources(t).iter())
                .filter(|n| n.contains(&ip))
                .map(|n| n.prefix_len())
                .max()
                .map(|p| (p, t))
        })
        .max_by_key(|(p, _)| *p)
        .map(|(_, t)| t)
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
            rtp_source: SourcePolicy::default(),
            srtp: SrtpPolicy::Off,
            trusted: false,
            tls: None,
            options_interval: None,
        }
    }

    #[test]
    fn source_and_number_routing() {
        let r = DialPlan {
            trunks: vec![
                trunk("wide", &["10.0.0.0/8"]),
                trunk("narrow", &["10.1.2.0/24"]),
            ],
            routes: vec![
                Route {
                    pattern: Regex::new(r"^\+?1555").unwrap(),
                    accounts: Vec::new(),
                    target: Target::Trunks(vec!["narrow".into()]),
                    features: Default::default(),
                },
                Route {
                    pattern: Regex::new(r"^alice$").unwrap(),
                    accounts: Vec::new(),
                    target: Target::User("alice".into()),
                    features: Default::default(),
                },
            ],
            users: HashMap::new(),
            ..Default::default()
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
        let target = |n: &str| r.route(n, None).map(|route| route.target.clone());
        assert_eq!(
            target("+15551234"),
            Some(Target::Trunks(vec!["narrow".into()]))
        );
        assert_eq!(target("alice"), Some(Target::User("alice".into())));
        assert_eq!(target("+44"), None);
    }

    /// Origination URLs by priority, lowest first, those of one priority drawn by weight:
    /// over many draws a weight-3 URL leads three times as often as a weight-1 one, and a
    /// lower priority always comes after.
    #[test]
    fn shares_are_tried_by_priority_then_drawn_by_weight() {
        let share = |trunk: &str, priority, weight| Share {
            trunk: trunk.into(),
            priority,
            weight,
        };
        let shares = [share("backup", 20, 1), share("a", 10, 3), share("b", 10, 1)];
        // A draw at the start of the running sum picks the first; at its end, the last.
        assert_eq!(share_order(&shares, |_| 0), ["a", "b", "backup"]);
        assert_eq!(share_order(&shares, |n| n - 1), ["b", "a", "backup"]);
        let mut seed = 7u32;
        let mut first_a = 0;
        for _ in 0..4000 {
            let order = share_order(&shares, |n| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 8) % n
            });
            assert_eq!(order[2], "backup");
            first_a += usize::from(order[0] == "a");
        }
        assert!((2800..3200).contains(&first_a), "a led {first_a} of 4000");
        assert!(share_order(&[], |_| 0).is_empty());
    }

    /// A tenant's trunk is found by its termination host (any case), its account named; the
    /// routes of its numbers come before the operator's.
    #[test]
    fn a_tenant_trunk_is_named_by_its_host_and_its_numbers_route_first() {
        let tenant = TenantTrunk {
            trunk: trunk("TK1", &["192.0.2.10/32"]),
            account: "AC1".into(),
            admits: Admits::Domain("acme.pstn.twilio.com".into()),
            logins: Vec::new(),
            outbound: Default::default(),
            record: None,
            suppress_noise: (false, false),
        };
        let by_address = TenantTrunk {
            trunk: trunk("1234", &["198.51.100.0/24", "198.51.100.7/32"]),
            account: "AC2".into(),
            admits: Admits::Sources,
            logins: Vec::new(),
            outbound: Default::default(),
            record: None,
            suppress_noise: (false, false),
        };
        let plan = DialPlan {
            trunks: vec![trunk("carrier", &["10.0.0.0/8"])],
            routes: vec![Route {
                pattern: Regex::new(r"^\+1").unwrap(),
                accounts: Vec::new(),
                target: Target::Trunks(vec!["carrier".into()]),
                features: Default::default(),
            }],
            tenant: TenantTrunks {
                trunks: vec![tenant, by_address],
                routes: vec![Route {
                    pattern: Regex::new(r"^\+14155550100$").unwrap(),
                    accounts: Vec::new(),
                    target: Target::Shares(Vec::new()),
                    features: Default::default(),
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let found = plan.tenant_trunk_for("ACME.pstn.twilio.com").unwrap();
        assert_eq!(found.trunk.name, "TK1");
        assert!(plan.tenant_trunk_for("other.pstn.twilio.com").is_none());
        assert_eq!(plan.trunk_account("TK1"), Some("AC1"));
        assert_eq!(plan.trunk_account("carrier"), None);
        assert_eq!(plan.trunk("TK1").unwrap().name, "TK1");
        // Its addresses claim nothing: a call from them is no carrier's by source.
        assert!(
            plan.trunk_for_source("192.0.2.10".parse().unwrap())
                .is_none()
        );
        assert!(
            plan.tenant_trunk_for_source("192.0.2.10".parse().unwrap())
                .is_none()
        );
        // One that admits by address does, as a tenant's (and no carrier's).
        let found = |ip: &str| {
            plan.tenant_trunk_for_source(ip.parse().unwrap())
                .map(|t| t.account.as_str())
        };
        assert_eq!(found("198.51.100.7"), Some("AC2"));
        assert_eq!(found("198.51.100.8"), Some("AC2"));
        assert!(
            plan.trunk_for_source("198.51.100.7".parse().unwrap())
                .is_none()
        );
        assert_eq!(
            plan.route("+14155550100", None).unwrap().target,
            Target::Shares(Vec::new())
        );
        assert_eq!(
            plan.route("+14155550101", None).unwrap().target,
            Target::Trunks(vec!["carrier".into()])
        );
    }

    /// A tenant's policy refuses outright first, then a destination outside its rule, then a
    /// full channel group, each in the dialect's words; what it lets through holds its groups.
    #[test]
    fn an_outbound_policy_refuses_in_order_and_counts_its_groups() {
        use crate::api::ChannelLimit;
        let limit = |group: &str, max| ChannelLimit {
            group: group.into(),
            max,
        };
        let mut policy = OutboundPolicy {
            refused: None,
            destinations: Some(Destinations {
                allows: std::sync::Arc::new(|n: &str| n.starts_with("+1")),
                refusal: "not allowed D12".into(),
            }),
            channels: vec![
                (limit("connection:1", 1), "connection full D3".into()),
                (limit("outbound-profile:9", 5), "profile full D2".into()),
            ],
            caller_id: None,
        };
        let idle = |_: &str| 0;
        assert_eq!(policy.refusal("+15551234", idle), None);
        assert_eq!(
            policy.refusal("+442071234567", idle),
            Some((403, "not allowed D12".into()))
        );
        let one_up = |g: &str| usize::from(g == "connection:1");
        assert_eq!(
            policy.refusal("+15551234", one_up),
            Some((403, "connection full D3".into()))
        );
        let profile_full = |g: &str| if g == "outbound-profile:9" { 5 } else { 0 };
        assert_eq!(
            policy.refusal("+15551234", profile_full),
            Some((403, "profile full D2".into()))
        );
        assert_eq!(policy.groups(), ["connection:1", "outbound-profile:9"]);
        policy.refused = Some((404, "inactive D18".into()));
        assert_eq!(
            policy.refusal("+15551234", idle),
            Some((404, "inactive D18".into()))
        );
        assert_eq!(OutboundPolicy::default().refusal("anything", idle), None);
    }

    /// An override of the caller ID is put on every call, on all but emergency calls, or on
    /// emergency calls only, as its scope says.
    #[test]
    fn a_caller_id_override_applies_to_the_calls_its_scope_names() {
        let shown = |applies_to, dialed: &str| {
            let o = CallerIdOverride {
                number: "+15550009999".into(),
                applies_to,
            };
            o.for_call(dialed).map(str::to_owned)
        };
        let ours = Some("+15550009999".to_owned());
        assert_eq!(shown(OverrideScope::Always, "+15551234"), ours);
        assert_eq!(shown(OverrideScope::Always, "911"), ours);
        assert_eq!(shown(OverrideScope::NonEmergency, "+15551234"), ours);
        assert_eq!(shown(OverrideScope::NonEmergency, "911"), None);
        assert_eq!(shown(OverrideScope::NonEmergency, "+112"), None);
        assert_eq!(shown(OverrideScope::Emergency, "+15551234"), None);
        assert_eq!(shown(OverrideScope::Emergency, "112"), ours);
        assert!(!is_emergency("9110"));
    }

    /// A route given to some accounts is theirs alone: another account's call, or one of no
    /// account's, takes the next route that matches.
    #[test]
    fn a_route_given_to_an_account_is_passed_over_by_the_others() {
        let route = |pattern: &str, trunk: &str, accounts: &[&str]| Route {
            pattern: Regex::new(pattern).unwrap(),
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            target: Target::Trunks(vec![trunk.into()]),
            features: Default::default(),
        };
        let plan = DialPlan {
            routes: vec![
                route(r"^\+1777", "given", &["AC1", "AC2"]),
                route(r"^\+1", "shared", &[]),
            ],
            ..Default::default()
        };
        let trunk =
            |account: Option<&str>| match &plan.route("+17775550000", account).unwrap().target {
                Target::Trunks(t) => t[0].clone(),
                _ => unreachable!(),
            };
        assert_eq!(trunk(Some("AC2")), "given");
        assert_eq!(trunk(Some("AC3")), "shared");
        assert_eq!(trunk(None), "shared");
        let only = DialPlan {
            routes: vec![route(r"^\+1777", "given", &["AC1"])],
            ..Default::default()
        };
        assert!(only.route("+17775550000", Some("AC3")).is_none());
    }
}

/// The SIP user name a browser client (a Twilio Voice SDK device) of `account` registers as:
/// its identity, escaped to what a SIP user part holds (RFC 3261 §25.1: letters, digits and
/// `-_.!*'()` as they are, every other byte `%HH`), then `~` and the account. Scoped by the
/// account, two tenants' "alice" are two users; `client:alice` dialed by an account reaches
/// its own.
pub fn client_user(account: &str, identity: &str) -> String {
    let mut user = String::with_capacity(identity.len() + account.len() + 1);
    for b in identity.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!*'()".contains(&b) {
            user.push(b as char);
        } else {
            user.push_str(&format!("%{b:02X}"));
        }
    }
    user.push('~');
    user.push_str(account);
    user
}

/// A client's identity and account, from the user name [`client_user`] made.
pub fn client_of(user: &str) -> Option<(String, &str)> {
    let (escaped, account) = user.rsplit_once('~')?;
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    Some((String::from_utf8(bytes).ok()?, account))
}

#[cfg(test)]
mod client_tests {
    #[test]
    fn a_client_user_names_its_identity_and_account_and_reads_back() {
        let user = super::client_user("AC1", "alice@example.com 1");
        assert_eq!(user, "alice%40example.com%201~AC1");
        assert_eq!(
            super::client_of(&user),
            Some(("alice@example.com 1".into(), "AC1"))
        );
        assert_eq!(super::client_of("alice"), None);
        assert_eq!(super::client_of("al%4~AC1"), None);
    }
}
