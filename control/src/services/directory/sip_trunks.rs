//! Tenants' SIP trunks (Twilio's Elastic SIP Trunking): a trunk an account makes through the
//! API, kept with the SIP directory's other objects (`sip_objects`) and made into the call
//! core's [`TenantTrunks`]. Its termination — calls from the tenant's PBX out through the
//! operator's routes — takes INVITEs naming its domain, from the addresses of its IP access
//! control lists and with the credentials of its credential lists; the calls are its
//! account's, so they take the routes given to that account. Its origination — calls to the
//! numbers the account gave it — goes to its origination URLs, by priority and weight,
//! failing over as a route's trunks do; those numbers' voice URLs are passed over while they
//! are the trunk's (as Twilio's are).
//!
//! Telnyx's IP connections are trunks too: a connection (kept with the other connections)
//! admits the INVITEs from its addresses (`/v2/ips`, kept here), after the operator's
//! trunks, and the calls to the numbers whose `connection_id` names it go to those addresses
//! in the order they were added.

use crate::call::CallControl;
use crate::call::dial_plan::{
    Admits, OutboundPolicy, Route, Share, SrtpPolicy, TenantTrunk, TenantTrunks, Trunk,
};
use crate::infra::accounts::Connection;
use crate::infra::accounts::ConnectionKind;
use crate::infra::store::sip_directory::SipObjectRow;
use crate::services::directory::connections::Connections;
use crate::services::directory::sip_domains::{
    DirectoryError, Kind, SipDomains, address_net, credential_password,
};
use crate::services::inbound::Inbound;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_sip::transport::Transport;
use tracing::warn;

/// What an account may hold: trunks, and origination URLs and numbers on one trunk.
pub const MAX_TRUNKS: usize = 100;
pub const MAX_URLS: usize = 10;
pub const MAX_NUMBERS: usize = 1000;
/// The most addresses one IP connection (or none) of an account holds.
pub const MAX_ADDRESSES: usize = 100;

/// The rows under a parent (a trunk's, a connection's), for one pass over them.
type Under<'a> = dyn Fn(&str) -> Vec<&'a SipObjectRow> + 'a;

/// How often the trunks' host names (FQDNs, origination URLs' hosts) are looked up again.
const NAMES_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);
/// How long one pass waits for the names it has not looked up yet, all at once.
const LOOKUP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The mapping names of what a trunk is given: a list (`trunk:CL…`, `trunk:AL…`) or a number
/// (`number:PN…`).
const LIST: &str = "trunk:";
const NUMBER: &str = "number:";

/// A trunk's settings (its row's body; its row's name is its domain name, or its SID when it
/// has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkSettings {
    pub friendly_name: Option<String>,
    pub domain_name: Option<String>,
    /// SRTP on both its sides (and TLS where its origination URLs ask for it).
    pub secure: bool,
    /// `from-transferee` or `from-transferor` (what a transfer's caller ID is; transfers are
    /// disabled, as Twilio's default `TransferMode` has them).
    pub transfer_caller_id: Option<String>,
    /// Its `Recording` resource: `mode` (`do-not-record`, `record-from-answer`,
    /// `record-from-answer-dual`) and `trim` (`do-not-trim`, `trim-silence`).
    #[serde(default)]
    pub recording_mode: Option<String>,
    #[serde(default)]
    pub recording_trim: Option<String>,
}

impl TrunkSettings {
    /// How its calls are recorded: their channels, and whether silence is trimmed.
    pub fn record(&self) -> Option<(switchboard_media::record::Channels, bool)> {
        use switchboard_media::record::Channels;
        let channels = match self.recording_mode.as_deref() {
            Some("record-from-answer") => Channels::Mono,
            Some("record-from-answer-dual") => Channels::Dual,
            _ => return None,
        };
        Some((
            channels,
            self.recording_trim.as_deref() == Some("trim-silence"),
        ))
    }
}

/// An origination URL (its row's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginationUrl {
    pub friendly_name: String,
    pub sip_url: String,
    pub priority: u16,
    pub weight: u16,
    pub enabled: bool,
}

/// An FQDN connection's FQDN (its row's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fqdn {
    pub fqdn: String,
    pub port: u16,
}

/// An IP connection's address (its row's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAddress {
    pub ip_address: std::net::IpAddr,
    pub port: u16,
}

/// Where a `sip:` URL sends: host, port and transport (`sips:` is TLS).
pub fn sip_url_target(url: &str) -> Option<(String, u16, Transport)> {
    let transport = Transport::of_uri(url)?;
    let lower = url.to_ascii_lowercase();
    let rest = (lower.strip_prefix("sips:")).or_else(|| lower.strip_prefix("sip:"))?;
    let rest = rest.split(';').next()?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let default_port = if transport == Transport::Tls {
        5061
    } else {
        5060
    };
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (host, tail) = v6.split_once(']')?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if tail.is_empty() => default_port,
                None => return None,
            };
            (host.to_owned(), port)
        }
        None => match hostport.split_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (hostport.to_owned(), default_port),
        },
    };
    let good = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    (good && port != 0).then_some((host, port, transport))
}

pub struct SipTrunks {
    domains: Arc<SipDomains>,
    /// Telnyx's IP connections are among them.
    connections: Arc<Connections>,
    inbound: Arc<Inbound>,
    control: CallControl,
    /// Publications one at a time, so that an older plan never lands after a newer one.
    publishing: tokio::sync::Mutex<()>,
    /// How the dialect that owns the connections holds their calls out.
    policies: std::sync::RwLock<Option<Arc<dyn ConnectionPolicies>>>,
    /// The connections' policies as last worked out, by connection id: the SIP logins of
    /// credential connections follow them.
    outbound: tokio::sync::watch::Sender<Arc<HashMap<String, OutboundPolicy>>>,
    /// Host names' addresses as last looked up (none: not found), kept until the next
    /// refresh: a change looks up only the names it brings, so that no tenant's slow or dead
    /// names hold up the others' changes for more than one short wait.
    names: std::sync::Mutex<HashMap<(String, u16), Vec<SocketAddr>>>,
}

/// A connection's policy for its calls out, as a dialect works it out (it may read its store).
pub type PolicyFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = OutboundPolicy> + Send + 'a>>;

/// How a dialect holds its connections' calls out through the routes (Telnyx: a connection's
/// `active` and `outbound` settings and its outbound voice profile), and the calls to their
/// numbers.
pub trait ConnectionPolicies: Send + Sync {
    fn outbound<'a>(&'a self, connection: &'a Connection) -> PolicyFuture<'a>;
    /// The channel group the calls to the connection's numbers hold, and the reason phrase
    /// of the 403 that refuses one when it is full (any kind of connection: an
    /// application's numbers too).
    fn inbound(&self, connection: &Connection) -> Option<(crate::call::ChannelLimit, String)>;
    /// Where an IP or FQDN connection's calls have noise suppressed: in what its side says
    /// (`.0`), in what its side hears (`.1`).
    fn suppress_noise(&self, _connection: &Connection) -> (bool, bool) {
        (false, false)
    }
}

impl SipTrunks {
    /// Puts the stored trunks in force, and again whenever the SIP directory changes (here
    /// or on another node).
    pub async fn start(
        domains: Arc<SipDomains>,
        connections: Arc<Connections>,
        inbound: Arc<Inbound>,
        control: CallControl,
    ) -> Arc<Self> {
        let trunks = Arc::new(Self {
            domains,
            connections,
            inbound,
            control,
            publishing: tokio::sync::Mutex::new(()),
            policies: Default::default(),
            outbound: tokio::sync::watch::Sender::new(Arc::default()),
            names: Default::default(),
        });
        trunks.publish().await;
        let mut changes = trunks.domains.subscribe();
        let weak = Arc::downgrade(&trunks);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                match weak.upgrade() {
                    Some(t) => t.publish().await,
                    None => break,
                }
            }
        });
        // A name's addresses change without an API call: looked up again every NAMES_REFRESH
        // while any is held.
        let weak = Arc::downgrade(&trunks);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(NAMES_REFRESH);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(t) => {
                        let held = std::mem::take(&mut *t.names.lock().expect("not poisoned"));
                        if !held.is_empty() {
                            t.publish().await;
                        }
                    }
                    None => break,
                }
            }
        });
        trunks
    }

    /// The dialect's policies for its connections' calls out; in force at once.
    pub async fn set_policies(&self, policies: Arc<dyn ConnectionPolicies>) {
        *self.policies.write().expect("not poisoned") = Some(policies);
        self.publish().await;
    }

    /// The connections' policies, told again whenever they are worked out.
    pub fn policies(&self) -> tokio::sync::watch::Receiver<Arc<HashMap<String, OutboundPolicy>>> {
        self.outbound.subscribe()
    }

    /// Tells the core every trunk as stored now, and the numbers' dispatcher which numbers
    /// are trunks'; returns once the core has them.
    pub async fn publish(&self) {
        let _one = self.publishing.lock().await;
        let (plan, numbers) = self.plan().await;
        // Released to the routes before the routes exist: a call in between finds the
        // operator's routes, as it would have a moment before the number was given.
        self.inbound.set_trunked(numbers);
        let _ = self.control.set_tenant_trunks(plan).await;
    }

    /// The trunk a number (`PN…`) is given to, if any.
    pub fn trunk_of_number(&self, account: &str, number_sid: &str) -> Option<String> {
        let name = format!("{NUMBER}{number_sid}");
        (self.domains)
            .find(|r| {
                r.account_sid == account && r.kind == Kind::Mapping.as_str() && r.name == name
            })
            .map(|r| r.parent)
    }

    /// What a trunk is given: its lists (`CL…`, `AL…`) or its numbers (`PN…`), oldest first.
    pub fn given(&self, account: &str, trunk: &str, numbers: bool) -> Vec<SipObjectRow> {
        let prefix = if numbers { NUMBER } else { LIST };
        (self.domains.list(account, Kind::Mapping, trunk).into_iter())
            .filter(|r| r.name.starts_with(prefix))
            .collect()
    }

    /// Gives a trunk a list or a number (`sid`): `Taken` when it has it; a number another
    /// trunk has moves to this one.
    pub async fn give(&self, account: &str, trunk: &str, sid: &str) -> Result<(), DirectoryError> {
        let number = sid.starts_with("PN");
        let name = format!("{}{sid}", if number { NUMBER } else { LIST });
        if number && let Some(other) = self.trunk_of_number(account, sid) {
            if other == trunk {
                return Err(DirectoryError::Taken(sid.to_owned()));
            }
            self.take_back(account, &other, sid).await?;
        }
        // Lists of either kind, as a domain may be given.
        let max = if number {
            MAX_NUMBERS
        } else {
            2 * crate::services::directory::sip_domains::MAX_LISTS
        };
        (self.domains)
            .add(account, (Kind::Mapping, trunk), &name, sid.to_owned(), max)
            .await
            .map(|_| ())
    }

    /// Takes a list or a number back from a trunk.
    pub async fn take_back(
        &self,
        account: &str,
        trunk: &str,
        sid: &str,
    ) -> Result<(), DirectoryError> {
        let row = (self.domains.list(account, Kind::Mapping, trunk).into_iter())
            .find(|r| r.body == sid && (r.name.starts_with(LIST) || r.name.starts_with(NUMBER)))
            .ok_or(DirectoryError::NotFound)?;
        self.domains.delete(account, &row.sid).await
    }

    /// An account's connection addresses of `kind` (IPs, FQDNs), oldest first.
    pub fn addresses(&self, account: &str, kind: Kind) -> Vec<SipObjectRow> {
        (self.domains.snapshot().into_iter())
            .filter(|r| r.account_sid == account && r.kind == kind.as_str())
            .collect()
    }

    /// The address row (its id) holding `ip`, whoever's.
    pub fn address_holder(&self, ip: std::net::IpAddr) -> Option<String> {
        (self.domains)
            .find(|r| {
                r.kind == Kind::ConnectionIp.as_str()
                    && serde_json::from_str::<IpAddress>(&r.body).is_ok_and(|a| a.ip_address == ip)
            })
            .map(|r| r.sid)
    }

    /// Adds an address of `kind` to `connection` (empty: to none yet), named `name` (unique
    /// within the connection), in force once answered.
    pub async fn add_address(
        &self,
        account: &str,
        (kind, connection): (Kind, &str),
        name: &str,
        body: String,
        max: usize,
    ) -> Result<SipObjectRow, DirectoryError> {
        let row = (self.domains)
            .add(account, (kind, connection), name, body, max)
            .await?;
        self.publish().await;
        Ok(row)
    }

    /// Changes an address (and the connection it belongs to).
    pub async fn change_address(
        &self,
        row: &SipObjectRow,
        connection: &str,
        name: &str,
        body: String,
    ) -> Result<SipObjectRow, DirectoryError> {
        if row.parent != connection {
            self.domains.reparent(row, connection).await?;
        }
        let row = self.domains.update(row, name, body).await?;
        self.publish().await;
        Ok(row)
    }

    /// Removes an address.
    pub async fn remove_address(&self, account: &str, sid: &str) -> Result<(), DirectoryError> {
        self.domains.delete(account, sid).await?;
        self.publish().await;
        Ok(())
    }

    /// Removes a connection's addresses (it is being deleted).
    pub async fn remove_addresses_of(&self, account: &str, connection: &str) {
        for kind in [Kind::ConnectionIp, Kind::ConnectionFqdn] {
            for row in self.domains.list(account, kind, connection) {
                let _ = self.domains.delete(account, &row.sid).await;
            }
        }
        self.publish().await;
    }

    /// A trunk's settings.
    pub fn settings(row: &SipObjectRow) -> TrunkSettings {
        serde_json::from_str(&row.body).unwrap_or_default()
    }

    /// An origination URL's fields.
    pub fn origination_url(row: &SipObjectRow) -> Option<OriginationUrl> {
        serde_json::from_str(&row.body).ok()
    }

    /// The core's view of every trunk, and the numbers given to them.
    async fn plan(&self) -> (TenantTrunks, HashSet<String>) {
        let rows = self.domains.snapshot();
        let mut children: HashMap<&str, Vec<&SipObjectRow>> = HashMap::new();
        for r in &rows {
            children.entry(r.parent.as_str()).or_default().push(r);
        }
        let under = |parent: &str| children.get(parent).cloned().unwrap_or_default();
        let numbers = self.inbound.numbers();
        let names = self.look_up(&rows).await;
        let mut plan = TenantTrunks::default();
        let mut trunked = HashSet::new();
        for trunk in rows.iter().filter(|r| r.kind == Kind::Trunk.as_str()) {
            let settings = Self::settings(trunk);
            let srtp = if settings.secure {
                SrtpPolicy::Required
            } else {
                SrtpPolicy::Off
            };
            let mut nets = Vec::new();
            let mut logins = Vec::new();
            let mut given = Vec::new();
            for m in under(&trunk.sid)
                .into_iter()
                .filter(|r| r.kind == Kind::Mapping.as_str())
            {
                if m.name.starts_with(NUMBER) {
                    let number = numbers.by_sid(&trunk.account_sid, &m.body);
                    given.extend(number.map(|n| n.number.phone_number));
                    continue;
                }
                for entry in under(&m.body) {
                    if entry.kind == Kind::IpAddress.as_str() {
                        nets.extend(address_net(&entry.body));
                    } else if entry.kind == Kind::Credential.as_str() {
                        logins.push((entry.name.clone(), credential_password(entry)));
                    }
                }
            }
            let part = Part {
                account: &trunk.account_sid,
                srtp,
            };
            plan.trunks.push(TenantTrunk {
                admits: (settings.domain_name.clone()).map_or(Admits::Nothing, Admits::Domain),
                logins,
                record: settings.record(),
                ..part.entry(trunk.sid.clone(), nets)
            });
            let mut shares = Vec::new();
            for row in under(&trunk.sid)
                .into_iter()
                .filter(|r| r.kind == Kind::OriginationUrl.as_str())
            {
                let Some(url) = Self::origination_url(row).filter(|u| u.enabled) else {
                    continue;
                };
                let Some(address) = address_of(&url.sip_url, &names) else {
                    warn!(trunk = %trunk.sid, url = %url.sip_url, "an origination URL whose host does not resolve: passed over");
                    continue;
                };
                let name = format!("{}/{}", trunk.sid, row.sid);
                let transport = sip_url_target(&url.sip_url).map_or(Transport::Udp, |(_, _, t)| t);
                plan.trunks
                    .push(part.destination(name.clone(), (address, transport)));
                shares.push(Share {
                    trunk: name,
                    priority: url.priority,
                    weight: url.weight.max(1),
                });
            }
            // Its calls in are recorded as its `Recording` says too.
            let (record, record_trim) = settings.record().unzip();
            let features = crate::call::dial_plan::RouteFeatures {
                record,
                record_trim: record_trim.unwrap_or(false),
                ..Default::default()
            };
            for number in given {
                plan.routes
                    .extend(number_route(&number, &shares, features.clone()));
                trunked.insert(number);
            }
        }
        // FQDNs stand for their A records.
        let mut resolved = HashMap::new();
        for row in rows
            .iter()
            .filter(|r| r.kind == Kind::ConnectionFqdn.as_str())
        {
            let Ok(f) = serde_json::from_str::<Fqdn>(&row.body) else {
                continue;
            };
            let addresses: Vec<SocketAddr> = (names.get(&(f.fqdn.clone(), f.port)).into_iter())
                .flatten()
                .copied()
                .filter(SocketAddr::is_ipv4)
                .collect();
            if addresses.is_empty() {
                warn!(fqdn = %f.fqdn, "an FQDN with no A record: its connection neither takes nor sends calls by it");
            }
            resolved.insert(row.sid.clone(), addresses);
        }
        // The policies of the connections that place calls out by the routes, and the bounds
        // of every connection's calls in.
        let source = self.policies.read().expect("not poisoned").clone();
        let mut policies = HashMap::new();
        let mut noise = HashMap::new();
        if let Some(source) = source {
            let all_numbers = numbers.all();
            for row in self.connections.all() {
                let c = &row.connection;
                if let Some(limit) = source.inbound(c) {
                    for n in all_numbers.iter().filter(|n| {
                        n.number.account_sid == c.account_sid
                            && n.number.connection_id.as_deref() == Some(c.id.as_str())
                    }) {
                        (plan.inbound_limits).insert(n.number.phone_number.clone(), limit.clone());
                    }
                }
                if matches!(
                    c.kind(),
                    ConnectionKind::Ip | ConnectionKind::Fqdn | ConnectionKind::Credential
                ) {
                    policies.insert(c.id.clone(), source.outbound(c).await);
                    noise.insert(c.id.clone(), source.suppress_noise(c));
                }
            }
        }
        let set = Settings {
            policies: &policies,
            noise: &noise,
        };
        self.plan_ip_connections(&mut plan, &mut trunked, (&under, &resolved), set);
        self.outbound.send_replace(Arc::new(policies));
        (plan, trunked)
    }

    /// Telnyx's IP connections into `plan`: each admits by its addresses, and its numbers'
    /// calls go to them in the order they were added; an inactive one admits nothing and its
    /// numbers' calls fail.
    fn plan_ip_connections<'a>(
        &self,
        plan: &mut TenantTrunks,
        trunked: &mut HashSet<String>,
        (under, resolved): (&Under<'a>, &HashMap<String, Vec<SocketAddr>>),
        set: Settings<'_>,
    ) {
        let numbers = self.inbound.numbers().all();
        for row in self.connections.all() {
            let c = &row.connection;
            let kind = c.kind();
            let Some(ip) = (c.ip_trunk.as_ref())
                .filter(|_| matches!(kind, ConnectionKind::Ip | ConnectionKind::Fqdn))
            else {
                continue;
            };
            let active = (c.settings.get("active").and_then(|a| a.as_bool())).unwrap_or(true);
            let srtp = if ip.srtp {
                SrtpPolicy::Required
            } else {
                SrtpPolicy::Off
            };
            let transport = match ip.transport_protocol.as_str() {
                "TCP" => Transport::Tcp,
                "TLS" => Transport::Tls,
                _ => Transport::Udp,
            };
            // Its addresses in the order they were added, each named for the calls to it.
            let mut addresses: Vec<(String, SocketAddr)> = Vec::new();
            for r in under(&c.id)
                .into_iter()
                .filter(|r| r.account_sid == c.account_sid)
            {
                if r.kind == Kind::ConnectionIp.as_str() && kind == ConnectionKind::Ip {
                    if let Ok(a) = serde_json::from_str::<IpAddress>(&r.body) {
                        let at = SocketAddr::new(a.ip_address, a.port);
                        addresses.push((r.sid.clone(), at));
                    }
                } else if r.kind == Kind::ConnectionFqdn.as_str() && kind == ConnectionKind::Fqdn {
                    for (i, at) in resolved.get(&r.sid).into_iter().flatten().enumerate() {
                        addresses.push((format!("{}.{i}", r.sid), *at));
                    }
                }
            }
            let logins: Vec<(String, String)> = (ip.login.iter())
                .map(|l| (l.user_name.clone(), l.password.clone()))
                .collect();
            let part = Part {
                account: &c.account_sid,
                srtp,
            };
            // Admitted whatever its state: its policy refuses what it may not place (an
            // inactive connection's calls, as the dialect words it).
            let sources = (addresses.iter())
                .map(|(_, a)| ipnet::IpNet::from(a.ip()))
                .collect();
            let mut entry = part.entry(c.id.clone(), sources);
            entry.trunk.transport = transport;
            // Noise suppressed on its calls out as it says; on its calls in (its side the
            // callee's) by its numbers' routes.
            let (says, hears) = set.noise.get(&c.id).copied().unwrap_or_default();
            plan.trunks.push(TenantTrunk {
                admits: Admits::Sources,
                logins,
                outbound: set.policies.get(&c.id).cloned().unwrap_or_default(),
                suppress_noise: (says, hears),
                ..entry
            });
            let mut shares = Vec::new();
            if active {
                for (i, (sid, address)) in addresses.iter().enumerate() {
                    let name = format!("{}/{sid}", c.id);
                    plan.trunks
                        .push(part.destination(name.clone(), (*address, transport)));
                    shares.push(Share {
                        trunk: name,
                        priority: u16::try_from(i).unwrap_or(u16::MAX),
                        weight: 1,
                    });
                }
            }
            for n in numbers.iter().filter(|n| {
                n.number.account_sid == c.account_sid
                    && n.number.connection_id.as_deref() == Some(c.id.as_str())
            }) {
                let number = &n.number.phone_number;
                let features = crate::call::dial_plan::RouteFeatures {
                    suppress_noise: (hears, says),
                    ..Default::default()
                };
                plan.routes.extend(number_route(number, &shares, features));
                trunked.insert(number.clone());
            }
        }
    }
}

/// What the dialect says of each SIP connection, by id: what its calls out are held to, and
/// where its calls have noise suppressed.
#[derive(Clone, Copy)]
struct Settings<'a> {
    policies: &'a HashMap<String, OutboundPolicy>,
    noise: &'a HashMap<String, (bool, bool)>,
}

/// What a tenant's trunk and its destinations share: whose they are, and whether their media
/// is SRTP.
struct Part<'a> {
    account: &'a str,
    srtp: SrtpPolicy,
}

impl Part<'_> {
    /// A trunk taking calls from `sources` (it admits nothing until told how): never dialed,
    /// its numbers' routes name its destinations.
    fn entry(&self, name: String, sources: Vec<ipnet::IpNet>) -> TenantTrunk {
        TenantTrunk {
            trunk: self.trunk(
                name,
                (SocketAddr::from(([0, 0, 0, 0], 0)), Transport::Udp),
                sources,
            ),
            account: self.account.to_owned(),
            admits: Admits::Nothing,
            logins: Vec::new(),
            outbound: Default::default(),
            record: None,
            suppress_noise: (false, false),
        }
    }

    /// One of its destinations: an origination URL, a connection's address.
    fn destination(&self, name: String, at: (SocketAddr, Transport)) -> TenantTrunk {
        TenantTrunk {
            trunk: self.trunk(name, at, Vec::new()),
            ..self.entry(String::new(), Vec::new())
        }
    }

    fn trunk(
        &self,
        name: String,
        (address, transport): (SocketAddr, Transport),
        sources: Vec<ipnet::IpNet>,
    ) -> Trunk {
        Trunk {
            name,
            address,
            transport,
            inbound_sources: sources,
            credentials: None,
            rtp_source: Default::default(),
            srtp: self.srtp,
            trusted: false,
            tls: None,
            options_interval: None,
        }
    }
}

/// The route of a number a tenant gave its trunk: anyone's call to it (a carrier's, another
/// tenant's) goes to the trunk's destinations — with none it fails (503) rather than leave by
/// the operator's routes.
fn number_route(
    number: &str,
    shares: &[Share],
    features: crate::call::dial_plan::RouteFeatures,
) -> Option<Route> {
    Some(Route {
        pattern: regex::Regex::new(&format!("^{}$", regex::escape(number))).ok()?,
        target: crate::call::dial_plan::Target::Shares(shares.to_vec()),
        accounts: Vec::new(),
        features,
    })
}

/// Where an origination URL sends: its host's first address (an IP literal as it is).
fn address_of(url: &str, names: &HashMap<(String, u16), Vec<SocketAddr>>) -> Option<SocketAddr> {
    let (host, port, _) = sip_url_target(url)?;
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    names.get(&(host, port))?.first().copied()
}

impl SipTrunks {
    /// The addresses of every host name the trunks name (origination URLs' hosts, FQDNs):
    /// those known from an earlier pass as they were, the others looked up all at once and
    /// waited for no longer than LOOKUP_WAIT (one not found by then has none until the next
    /// refresh).
    async fn look_up(&self, rows: &[SipObjectRow]) -> HashMap<(String, u16), Vec<SocketAddr>> {
        let mut wanted = HashSet::new();
        for r in rows {
            if r.kind == Kind::OriginationUrl.as_str() {
                let target = Self::origination_url(r).and_then(|u| sip_url_target(&u.sip_url));
                if let Some((host, port, _)) = target
                    && host.parse::<std::net::IpAddr>().is_err()
                {
                    wanted.insert((host, port));
                }
            } else if r.kind == Kind::ConnectionFqdn.as_str()
                && let Ok(f) = serde_json::from_str::<Fqdn>(&r.body)
            {
                wanted.insert((f.fqdn, f.port));
            }
        }
        let mut known = self.names.lock().expect("not poisoned").clone();
        known.retain(|name, _| wanted.contains(name));
        let mut lookups = tokio::task::JoinSet::new();
        for (host, port) in wanted.into_iter().filter(|n| !known.contains_key(n)) {
            lookups.spawn(async move {
                let found: Vec<SocketAddr> =
                    match tokio::net::lookup_host((host.as_str(), port)).await {
                        Ok(found) => found.collect(),
                        Err(_) => Vec::new(),
                    };
                ((host, port), found)
            });
        }
        let deadline = tokio::time::Instant::now() + LOOKUP_WAIT;
        while let Ok(Some(Ok((name, addresses)))) =
            tokio::time::timeout_at(deadline, lookups.join_next()).await
        {
            known.insert(name, addresses);
        }
        lookups.abort_all();
        *self.names.lock().expect("not poisoned") = known.clone();
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sip_url_names_host_port_and_transport() {
        assert_eq!(
            sip_url_target("sip:127.0.0.1:5071"),
            Some(("127.0.0.1".into(), 5071, Transport::Udp))
        );
        assert_eq!(
            sip_url_target("sip:pbx.example.com;transport=tcp"),
            Some(("pbx.example.com".into(), 5060, Transport::Tcp))
        );
        assert_eq!(
            sip_url_target("sips:[2001:db8::1]"),
            Some(("2001:db8::1".into(), 5061, Transport::Tls))
        );
        assert_eq!(
            sip_url_target("sip:user@10.0.0.1:5080"),
            Some(("10.0.0.1".into(), 5080, Transport::Udp))
        );
        for bad in [
            "http://x",
            "sip:",
            "sip:a b",
            "sip:host:0",
            "sip:host:99999",
            "sip:h;transport=carrier-pigeon",
        ] {
            assert_eq!(sip_url_target(bad), None, "{bad}");
        }
    }
}
