//! SIP domains and the lists that authenticate them (Twilio's SIP Domains, CredentialLists,
//! IpAccessControlLists and their mappings): stored (`sip_objects`), held in memory, and made
//! into SIP logins of the call core. A domain's user is known as `user@domain` (two tenants'
//! domains may each have an `alice`): a credential of a list mapped for registrations
//! registers when the domain allows registration; one mapped for calls places calls, which
//! the domain's voice URL answers ([`SipDomains::logins`]); a caller from an address of an IP
//! access control list mapped for calls is admitted without credentials, as the domain's
//! login `@domain` ([`SipDomains::sources`]); a call to `sip:user@domain` rings the user's
//! registrations. A domain's name is one domain across every account.

use crate::call::AccountUser;
use crate::call::dial_plan::DomainSource;
use crate::infra::accounts::{HttpMethod, TexmlVoice};
use crate::infra::clock::now_ms;
use crate::infra::sid::new_sid;
use crate::infra::store::changes::Changed;
use crate::infra::store::sip_directory::{SipObjectRow, is_taken};
use crate::infra::store::{Store, StoreError};
use crate::services::inbound::CallerApp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::RwLock;
use tokio::sync::watch;

/// What an account may hold: domains, lists of either kind, entries in one list.
pub const MAX_DOMAINS: usize = 100;
pub const MAX_LISTS: usize = 100;
pub const MAX_ENTRIES: usize = 1000;
/// Objects of every kind one account may hold.
pub const MAX_PER_ACCOUNT: usize = 10_000;

/// The kinds of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Domain,
    CredentialList,
    Credential,
    IpAcl,
    IpAddress,
    Mapping,
    /// A tenant's trunk (Elastic SIP Trunking) and its origination URLs.
    Trunk,
    OriginationUrl,
    /// An address of a Telnyx IP connection (`/v2/ips`; its parent the connection's id, or
    /// empty while it belongs to none).
    ConnectionIp,
    /// An FQDN of a Telnyx FQDN connection (`/v2/fqdns`).
    ConnectionFqdn,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::CredentialList => "credential_list",
            Kind::Credential => "credential",
            Kind::IpAcl => "ip_acl",
            Kind::IpAddress => "ip_address",
            Kind::Mapping => "mapping",
            Kind::Trunk => "trunk",
            Kind::OriginationUrl => "origination_url",
            Kind::ConnectionIp => "connection_ip",
            Kind::ConnectionFqdn => "connection_fqdn",
        }
    }

    /// The SID prefix of its objects.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Domain => "SD",
            Kind::CredentialList => "CL",
            Kind::Credential => "CR",
            Kind::IpAcl => "AL",
            Kind::IpAddress => "IP",
            Kind::Mapping => "MP",
            Kind::Trunk => "TK",
            Kind::OriginationUrl => "OU",
            // Telnyx's ids are UUIDs (see `add`).
            Kind::ConnectionIp | Kind::ConnectionFqdn => "",
        }
    }
}

/// What a domain's list authenticates: calls (`Auth/Calls`, and the older mappings without
/// `Auth`), or registrations (`Auth/Registrations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappedFor {
    Calls,
    /// The mappings Twilio had before `Auth`: they authenticate calls.
    Legacy,
    Registrations,
}

impl MappedFor {
    fn as_str(self) -> &'static str {
        match self {
            MappedFor::Calls => "calls",
            MappedFor::Legacy => "legacy",
            MappedFor::Registrations => "registrations",
        }
    }
}

/// A domain's settings (its row's body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSettings {
    pub friendly_name: Option<String>,
    pub voice_url: Option<String>,
    pub voice_method: HttpMethod,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: HttpMethod,
    pub voice_status_callback_url: Option<String>,
    pub voice_status_callback_method: HttpMethod,
    pub sip_registration: bool,
    pub emergency_calling_enabled: bool,
    pub secure: bool,
    pub byoc_trunk_sid: Option<String>,
    pub emergency_caller_sid: Option<String>,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("not found")]
    NotFound,
    /// The name is taken (a domain's by any account, a user name in its list).
    #[error("{0} is taken")]
    Taken(String),
    /// The account holds as many as it may.
    #[error("at most {0}")]
    Full(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct SipDomains {
    store: Store,
    rows: RwLock<Vec<SipObjectRow>>,
    /// Bumped whenever the objects change (here, or read again after another node's change).
    changed: watch::Sender<u64>,
}

impl SipDomains {
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        let rows = store.sip_objects().await?;
        Ok(Self {
            store,
            rows: RwLock::new(rows),
            changed: watch::Sender::new(0),
        })
    }

    /// Told whenever the objects change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Reads every object again (another node changed some).
    pub async fn reload(&self) -> Result<(), StoreError> {
        let rows = self.store.sip_objects().await?;
        *self.rows.write().expect("not poisoned") = rows;
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// After a change here: read again, and the other nodes told.
    async fn changed_here(&self) -> Result<(), StoreError> {
        self.reload().await?;
        self.store.announce(Changed::SipDomains).await;
        Ok(())
    }

    fn rows(&self) -> std::sync::RwLockReadGuard<'_, Vec<SipObjectRow>> {
        self.rows.read().expect("not poisoned")
    }

    /// The first object `f` takes.
    pub fn find(&self, f: impl Fn(&SipObjectRow) -> bool) -> Option<SipObjectRow> {
        self.rows().iter().find(|r| f(r)).cloned()
    }

    /// Every object, as held now.
    pub fn snapshot(&self) -> Vec<SipObjectRow> {
        self.rows().clone()
    }

    /// An account's objects of `kind` under `parent` (empty: top-level), oldest first.
    pub fn list(&self, account: &str, kind: Kind, parent: &str) -> Vec<SipObjectRow> {
        (self.rows().iter())
            .filter(|r| r.account_sid == account && r.kind == kind.as_str() && r.parent == parent)
            .cloned()
            .collect()
    }

    /// An account's object.
    pub fn get(&self, account: &str, kind: Kind, sid: &str) -> Option<SipObjectRow> {
        (self.rows().iter())
            .find(|r| r.sid == sid && r.account_sid == account && r.kind == kind.as_str())
            .cloned()
    }

    /// Adds an object of `kind` under `parent` named `name`: refused when the account holds
    /// `max` of them there already, or the name is taken.
    pub async fn add(
        &self,
        account: &str,
        (kind, parent): (Kind, &str),
        name: &str,
        body: String,
        max: usize,
    ) -> Result<SipObjectRow, DirectoryError> {
        if self.list(account, kind, parent).len() >= max {
            return Err(DirectoryError::Full(max));
        }
        let held = (self.rows().iter())
            .filter(|r| r.account_sid == account)
            .count();
        if held >= MAX_PER_ACCOUNT {
            return Err(DirectoryError::Full(MAX_PER_ACCOUNT));
        }
        let at = now_ms();
        let sid = match kind.prefix() {
            "" => crate::services::directory::sip_logins::uuid_v4(),
            prefix => new_sid(prefix),
        };
        let row = SipObjectRow {
            sid: sid.clone(),
            account_sid: account.to_owned(),
            kind: kind.as_str().to_owned(),
            parent: parent.to_owned(),
            // A credential or address without a name of its own is named by its SID.
            name: if name.is_empty() {
                sid
            } else {
                name.to_owned()
            },
            body,
            created_at: at,
            updated_at: at,
        };
        match self.store.insert_sip_object(&row).await {
            Ok(()) => {}
            Err(e) if is_taken(&e) => return Err(DirectoryError::Taken(name.to_owned())),
            Err(e) => return Err(e.into()),
        }
        self.changed_here().await?;
        Ok(row)
    }

    /// Replaces an object's name and fields.
    pub async fn update(
        &self,
        row: &SipObjectRow,
        name: &str,
        body: String,
    ) -> Result<SipObjectRow, DirectoryError> {
        let updated = (self.store)
            .update_sip_object(&row.account_sid, &row.sid, name, &body, now_ms())
            .await;
        match updated {
            Ok(true) => {}
            Ok(false) => return Err(DirectoryError::NotFound),
            Err(e) if is_taken(&e) => return Err(DirectoryError::Taken(name.to_owned())),
            Err(e) => return Err(e.into()),
        }
        self.changed_here().await?;
        let kind = [
            Kind::Domain,
            Kind::CredentialList,
            Kind::Credential,
            Kind::IpAcl,
            Kind::IpAddress,
            Kind::Trunk,
            Kind::OriginationUrl,
            Kind::ConnectionIp,
            Kind::ConnectionFqdn,
        ]
        .into_iter()
        .find(|k| k.as_str() == row.kind)
        .ok_or(DirectoryError::NotFound)?;
        self.get(&row.account_sid, kind, &row.sid)
            .ok_or(DirectoryError::NotFound)
    }

    /// Puts an object under another parent.
    pub async fn reparent(&self, row: &SipObjectRow, parent: &str) -> Result<(), DirectoryError> {
        let moved = (self.store)
            .move_sip_object(&row.account_sid, &row.sid, parent, now_ms())
            .await?;
        if !moved {
            return Err(DirectoryError::NotFound);
        }
        self.changed_here().await?;
        Ok(())
    }

    /// Deletes an object with what belongs to it and the mappings naming it.
    pub async fn delete(&self, account: &str, sid: &str) -> Result<(), DirectoryError> {
        if !self.store.delete_sip_object(account, sid).await? {
            return Err(DirectoryError::NotFound);
        }
        self.changed_here().await?;
        Ok(())
    }

    /// The lists (their SIDs) mapped to `domain` for `what`.
    pub fn mapped(&self, domain: &str, what: MappedFor) -> Vec<String> {
        let prefix = format!("{}:", what.as_str());
        (self.rows().iter())
            .filter(|r| r.kind == Kind::Mapping.as_str() && r.parent == domain)
            .filter(|r| r.name.starts_with(&prefix))
            .map(|r| r.body.clone())
            .collect()
    }

    /// Maps list `list` to `domain` for `what`; `Taken` when it is mapped so already.
    pub async fn map(
        &self,
        account: &str,
        domain: &str,
        what: MappedFor,
        list: &str,
    ) -> Result<(), DirectoryError> {
        let name = format!("{}:{list}", what.as_str());
        (self.add(
            account,
            (Kind::Mapping, domain),
            &name,
            list.to_owned(),
            MAX_LISTS,
        ))
        .await
        .map(|_| ())
    }

    /// Removes the mapping of `list` to `domain` for `what`.
    pub async fn unmap(
        &self,
        account: &str,
        domain: &str,
        what: MappedFor,
        list: &str,
    ) -> Result<(), DirectoryError> {
        let name = format!("{}:{list}", what.as_str());
        let sid = (self.rows().iter())
            .find(|r| {
                r.account_sid == account
                    && r.kind == Kind::Mapping.as_str()
                    && r.parent == domain
                    && r.name == name
            })
            .map(|r| r.sid.clone())
            .ok_or(DirectoryError::NotFound)?;
        self.delete(account, &sid).await
    }

    /// A domain's settings.
    pub fn settings(row: &SipObjectRow) -> DomainSettings {
        serde_json::from_str(&row.body).unwrap_or_default()
    }

    /// The SIP logins the domains make, each with the application its calls run: a credential
    /// of a list mapped for calls calls (its domain's voice URL answers), one mapped for
    /// registrations registers while its domain allows registration.
    pub fn logins(&self) -> Vec<(String, AccountUser, CallerApp)> {
        let rows = self.rows();
        let index = Index::of(&rows);
        let mut logins: HashMap<String, (AccountUser, CallerApp)> = HashMap::new();
        for domain in &index.domains {
            let app = Self::caller_app(domain);
            let registering = Self::settings(domain).sip_registration;
            for (what, list) in index.mappings_of(&domain.sid) {
                let registers = match what {
                    MappedFor::Registrations if registering => true,
                    MappedFor::Registrations => continue,
                    MappedFor::Calls | MappedFor::Legacy => false,
                };
                for credential in index.entries_of(list) {
                    let key = format!("{}@{}", credential.name, domain.name);
                    let entry = logins.entry(key).or_insert_with(|| {
                        let login = AccountUser {
                            password: credential_password(credential),
                            account: domain.account_sid.clone(),
                            registers: false,
                            calls: false,
                            outbound: Default::default(),
                        };
                        (login, app.clone())
                    });
                    if registers {
                        entry.0.registers = true;
                    } else {
                        entry.0.calls = true;
                    }
                }
            }
        }
        logins
            .into_iter()
            .map(|(key, (login, app))| (key, login, app))
            .collect()
    }

    /// The domains that admit callers by source address — the addresses of the IP access
    /// control lists mapped to each for calls — with the application their calls run (the
    /// login `@DOMAIN`'s).
    pub fn sources(&self) -> Vec<(DomainSource, CallerApp)> {
        let rows = self.rows();
        let index = Index::of(&rows);
        let mut sources = Vec::new();
        for domain in &index.domains {
            let nets: Vec<ipnet::IpNet> = (index.mappings_of(&domain.sid))
                .filter(|(what, list)| {
                    *what != MappedFor::Registrations && list.starts_with(Kind::IpAcl.prefix())
                })
                .flat_map(|(_, list)| index.entries_of(list))
                .filter_map(|address| address_net(&address.body))
                .collect();
            if nets.is_empty() {
                continue;
            }
            let source = DomainSource {
                domain: domain.name.clone(),
                nets,
            };
            sources.push((source, Self::caller_app(domain)));
        }
        sources
    }

    /// The application a domain's calls run: its voice URL.
    fn caller_app(domain: &SipObjectRow) -> CallerApp {
        let settings = Self::settings(domain);
        CallerApp {
            account: domain.account_sid.clone(),
            connection_id: domain.sid.clone(),
            twiml: Some(TexmlVoice {
                voice_url: settings.voice_url.clone().unwrap_or_default(),
                voice_method: settings.voice_method,
                voice_fallback_url: settings.voice_fallback_url.clone(),
                status_callback: settings.voice_status_callback_url.clone(),
                status_callback_method: settings.voice_status_callback_method,
            }),
            fallback_method: settings.voice_fallback_method,
        }
    }

    /// The account's domain named `name` (a host, any case).
    pub fn domain_named(&self, account: &str, name: &str) -> Option<SipObjectRow> {
        let name = name.to_ascii_lowercase();
        (self.rows().iter())
            .find(|r| r.kind == Kind::Domain.as_str() && r.name == name && r.account_sid == account)
            .cloned()
    }

    /// The domain named `name`, whoever's.
    pub fn any_domain_named(&self, name: &str) -> Option<SipObjectRow> {
        let name = name.to_ascii_lowercase();
        (self.rows().iter())
            .find(|r| r.kind == Kind::Domain.as_str() && r.name == name)
            .cloned()
    }
}

/// The objects sorted once for a pass over every domain: domains, mappings by domain,
/// credentials and addresses by their list.
struct Index<'a> {
    domains: Vec<&'a SipObjectRow>,
    mappings: HashMap<&'a str, Vec<&'a SipObjectRow>>,
    entries: HashMap<&'a str, Vec<&'a SipObjectRow>>,
}

impl<'a> Index<'a> {
    fn of(rows: &'a [SipObjectRow]) -> Self {
        let mut index = Index {
            domains: Vec::new(),
            mappings: HashMap::new(),
            entries: HashMap::new(),
        };
        for row in rows {
            match row.kind.as_str() {
                "domain" => index.domains.push(row),
                "mapping" => index.mappings.entry(&row.parent).or_default().push(row),
                "credential" | "ip_address" => {
                    index.entries.entry(&row.parent).or_default().push(row);
                }
                _ => {}
            }
        }
        index
    }

    /// A domain's mappings: what each list is mapped for, and the list's SID.
    fn mappings_of(&self, domain: &str) -> impl Iterator<Item = (MappedFor, &'a str)> + '_ {
        (self.mappings.get(domain).into_iter().flatten()).filter_map(|m| {
            let (what, _) = m.name.split_once(':')?;
            let what = [
                MappedFor::Calls,
                MappedFor::Legacy,
                MappedFor::Registrations,
            ]
            .into_iter()
            .find(|w| w.as_str() == what)?;
            Some((what, m.body.as_str()))
        })
    }

    /// A list's credentials or addresses.
    fn entries_of(&self, list: &str) -> impl Iterator<Item = &'a SipObjectRow> + '_ {
        self.entries.get(list).into_iter().flatten().copied()
    }
}

/// An address's network (its row's body: `ip_address`, `cidr_prefix_length`).
pub fn address_net(body: &str) -> Option<ipnet::IpNet> {
    #[derive(Deserialize)]
    struct Address {
        ip_address: std::net::IpAddr,
        cidr_prefix_length: u8,
    }
    let a: Address = serde_json::from_str(body).ok()?;
    ipnet::IpNet::new(a.ip_address, a.cidr_prefix_length)
        .ok()
        .map(|n| n.trunc())
}

/// A credential's password (its row's body).
pub fn credential_password(row: &SipObjectRow) -> String {
    #[derive(Deserialize)]
    struct Credential {
        password: String,
    }
    serde_json::from_str::<Credential>(&row.body)
        .map(|c| c.password)
        .unwrap_or_default()
}
