//! The SIP logins accounts make through the API: credential connections' user names and
//! passwords, and the telephony credentials minted for them (stored, held in memory). Each
//! is a SIP user of the call core: a phone registers and calls with it, and a browser logs in
//! with it — by password, or by a token ([`SipLogins::token`], a JWT signed with a key only
//! its account's secret makes) naming a telephony credential. The core is told the whole set
//! whenever it changes, and again every [`REFRESH`] so expired credentials drop out.

use crate::call::dial_plan::OutboundPolicy;
use crate::call::{AccountUser, CallControl};
use crate::infra::accounts::{Account, Connection, ConnectionKind, Directory};
use crate::infra::clock::now_ms;
use crate::infra::jwt::{self, Algorithm, JwtError};
use crate::infra::store::changes::Changed;
use crate::infra::store::{Store, StoreError, TelephonyCredentialRow};
use crate::services::directory::connections::Connections;
use crate::services::directory::sip_domains::SipDomains;
use crate::services::inbound::{CallerApp, Inbound};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most telephony credentials one account may hold (each is a SIP user of the core).
pub const MAX_PER_ACCOUNT: usize = 1000;
/// How long a token is good for (Telnyx's are 24 h).
pub const TOKEN_LIFETIME_SECS: i64 = 24 * 3600;
/// How often the core is told the logins again (credentials expire without an API call).
const REFRESH: Duration = Duration::from_secs(30);
/// The `iss` and `aud` of the tokens, as Telnyx writes them.
const ISSUER: &str = "telnyx_telephony";

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The SIP user name: what calls to it name, and what its calls come from.
    pub user: String,
    pub password: String,
    pub account: String,
    pub connection_id: String,
    /// The telephony credential, when it was one (not the connection's own login).
    pub credential_id: Option<String>,
}

pub struct SipLogins {
    store: Store,
    connections: Arc<Connections>,
    /// SIP domains' credentials are logins too (`user@domain`).
    domains: Arc<SipDomains>,
    directory: Arc<Directory>,
    control: CallControl,
    /// Told which logins' calls their connection's application answers.
    inbound: Arc<Inbound>,
    rows: Mutex<Vec<TelephonyCredentialRow>>,
    /// Browser clients signed in now (Twilio Voice SDK devices), by SIP user.
    devices: Mutex<HashMap<String, Device>>,
    /// Every login good now, user name → password, for signed-in sessions to notice theirs
    /// is gone (a credential deleted or expired, its connection deleted).
    good: tokio::sync::watch::Sender<Arc<HashMap<String, String>>>,
    /// The connections' policies for their calls out (their logins' calls by the routes
    /// are held to their connection's).
    policies: tokio::sync::watch::Receiver<Arc<HashMap<String, OutboundPolicy>>>,
}

/// A signed-in client identity: its password for this run, its account, the App its calls
/// run, and how many sessions have it.
struct Device {
    password: String,
    account: String,
    app: Option<String>,
    sessions: usize,
}

impl SipLogins {
    /// Loads the stored credentials, tells the core every login, and keeps telling it.
    pub async fn open(
        store: Store,
        connections: Arc<Connections>,
        domains: Arc<SipDomains>,
        directory: Arc<Directory>,
        control: CallControl,
        inbound: Arc<Inbound>,
        policies: tokio::sync::watch::Receiver<Arc<HashMap<String, OutboundPolicy>>>,
    ) -> Result<Arc<Self>, StoreError> {
        let rows = store.telephony_credentials().await?;
        let logins = Arc::new(Self {
            store,
            connections,
            domains,
            directory,
            control,
            inbound,
            rows: Mutex::new(rows),
            devices: Mutex::default(),
            good: tokio::sync::watch::Sender::new(Arc::default()),
            policies,
        });
        logins.publish();
        // A connection's policy changed (its settings, its profile): its logins with it.
        let mut changes = logins.policies.clone();
        let weak = Arc::downgrade(&logins);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                match weak.upgrade() {
                    Some(l) => {
                        l.publish();
                    }
                    None => break,
                }
            }
        });
        // A domain's lists changed (here, or on another node): its logins with them.
        let mut domains = logins.domains.subscribe();
        let weak = Arc::downgrade(&logins);
        tokio::spawn(async move {
            while domains.changed().await.is_ok() {
                match weak.upgrade() {
                    Some(l) => {
                        l.publish();
                    }
                    None => break,
                }
            }
        });
        let weak = Arc::downgrade(&logins);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(l) => {
                        l.publish();
                    }
                    None => break,
                }
            }
        });
        Ok(logins)
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Vec<TelephonyCredentialRow>> {
        self.rows.lock().expect("not poisoned")
    }

    /// Tells the core every login good now — the credential connections' own and the
    /// unexpired telephony credentials of existing connections — and the numbers' dispatcher
    /// which of them belong to a connection with a webhook URL (their calls are its
    /// application's).
    pub fn publish(&self) -> tokio::sync::oneshot::Receiver<()> {
        let now = now_ms();
        let mut users = HashMap::new();
        let mut callers = HashMap::new();
        let policies = self.policies.borrow().clone();
        let mut add = |user: &str, password: &str, c: &Connection| {
            let login = AccountUser {
                password: password.to_owned(),
                account: c.account_sid.clone(),
                registers: true,
                calls: true,
                outbound: policies.get(&c.id).cloned().unwrap_or_default(),
            };
            users.insert(user.to_owned(), login);
            if !c.webhook_event_url.is_empty() {
                let app = CallerApp {
                    account: c.account_sid.clone(),
                    connection_id: c.id.clone(),
                    twiml: None,
                    fallback_method: Default::default(),
                };
                callers.insert(user.to_owned(), app);
            }
        };
        for row in self.connections.all() {
            if let Some(login) = &row.connection.credential {
                add(&login.user_name, &login.password, &row.connection);
            }
        }
        for r in self.rows().iter().filter(|r| !r.expired(now)) {
            if let Some(c) = self.connection_of(r) {
                add(&r.sip_username, &r.sip_password, &c);
            }
        }
        for (user, d) in self.devices.lock().expect("not poisoned").iter() {
            let login = AccountUser {
                password: d.password.clone(),
                account: d.account.clone(),
                registers: true,
                calls: true,
                outbound: Default::default(),
            };
            users.insert(user.clone(), login);
            let app = (d.app.as_deref()).and_then(|id| self.connections.get(&d.account, id));
            if let Some(app) = app.as_ref().and_then(CallerApp::of_twiml_app) {
                callers.insert(user.clone(), app);
            }
        }
        for (key, login, app) in self.domains.logins() {
            callers.insert(key.clone(), app);
            users.entry(key).or_insert(login);
        }
        // Callers admitted by source address: no login of the core's (no password), the
        // domain's application all the same.
        let mut sources = Vec::new();
        for (source, app) in self.domains.sources() {
            callers.insert(format!("@{}", source.domain), app);
            sources.push(source);
        }
        // In force before the logins' answer (the core takes its requests in order), which
        // is what callers of `publish` wait for.
        drop(self.control.set_domain_sources(sources));
        let good: HashMap<String, String> = (users.iter())
            .map(|(user, login)| (user.clone(), login.password.clone()))
            .collect();
        self.good.send_if_modified(|now| {
            let changed = **now != good;
            if changed {
                *now = Arc::new(good);
            }
            changed
        });
        self.inbound.set_callers(callers);
        self.control.set_account_users(users)
    }

    /// The logins good now, told again whenever they change.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Arc<HashMap<String, String>>> {
        self.good.subscribe()
    }

    /// A browser client of `account` signs in as `identity` (a Twilio access token's), its
    /// calls running the App `app`: a SIP login for the gateway, good while any session
    /// holds it ([`SipLogins::close_device`]), and the answer that says the core has it.
    pub fn open_device(
        &self,
        account: &str,
        identity: &str,
        app: Option<&str>,
    ) -> (Login, tokio::sync::oneshot::Receiver<()>) {
        let user = crate::call::dial_plan::client_user(account, identity);
        let password = {
            let mut devices = self.devices.lock().expect("not poisoned");
            let d = devices.entry(user.clone()).or_insert_with(|| Device {
                password: uuid_v4(),
                account: account.to_owned(),
                app: None,
                sessions: 0,
            });
            d.sessions += 1;
            // The latest token's App is the one its calls run.
            d.app = app.map(str::to_owned);
            d.password.clone()
        };
        let in_force = self.publish();
        let login = Login {
            user,
            password,
            account: account.to_owned(),
            connection_id: app.unwrap_or_default().to_owned(),
            credential_id: None,
        };
        (login, in_force)
    }

    /// A session of a browser client ended; its login goes with its last session.
    pub fn close_device(&self, user: &str) {
        {
            let mut devices = self.devices.lock().expect("not poisoned");
            let Some(d) = devices.get_mut(user) else {
                return;
            };
            d.sessions = d.sessions.saturating_sub(1);
            if d.sessions == 0 {
                devices.remove(user);
            }
        }
        self.publish();
    }

    fn connection_of(&self, r: &TelephonyCredentialRow) -> Option<Connection> {
        let row = self.connections.get(&r.account_sid, &r.connection_id)?;
        (row.connection.kind() == ConnectionKind::Credential).then_some(row.connection)
    }

    /// The login with this user name, if any (an expired credential's is none).
    pub fn by_user(&self, user: &str) -> Option<Login> {
        let now = now_ms();
        if let Some(r) = (self.rows().iter()).find(|r| r.sip_username == user && !r.expired(now)) {
            self.connection_of(r)?;
            return Some(Login {
                user: r.sip_username.clone(),
                password: r.sip_password.clone(),
                account: r.account_sid.clone(),
                connection_id: r.connection_id.clone(),
                credential_id: Some(r.id.clone()),
            });
        }
        self.connections.all().into_iter().find_map(|row| {
            let c = row.connection;
            let login = c.credential.filter(|l| l.user_name == user)?;
            Some(Login {
                user: login.user_name,
                password: login.password,
                account: c.account_sid,
                connection_id: c.id,
                credential_id: None,
            })
        })
    }

    /// A login by user name and password.
    pub fn check_password(&self, user: &str, password: &str) -> Option<Login> {
        let login = self.by_user(user)?;
        crate::infra::secret::matches(&login.password, password).then_some(login)
    }

    /// The key an account's tokens are signed with: derived from its secret (its Telnyx key's
    /// seed), so every node sharing the configuration verifies every node's tokens.
    fn key(account: &Account) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha512::new();
        h.update(b"switchboard telephony credential token\0");
        h.update(account.telnyx_seed);
        h.finalize().to_vec()
    }

    /// A token for a telephony credential, good for [`TOKEN_LIFETIME_SECS`] (less if the
    /// credential expires sooner).
    pub fn token(&self, account: &Account, credential: &TelephonyCredentialRow) -> String {
        let now = now_ms() / 1000;
        let mut exp = now + TOKEN_LIFETIME_SECS;
        if let Some(e) = credential.expires_at {
            exp = exp.min(e / 1000);
        }
        let claims = json!({
            "aud": ISSUER,
            "iss": ISSUER,
            "iat": now,
            "exp": exp,
            "jti": uuid_v4(),
            "sub": credential.id,
            "typ": "access",
        });
        let mut header = Map::new();
        header.insert("typ".into(), json!("JWT"));
        jwt::sign(Algorithm::Hs512, &Self::key(account), header, &claims)
    }

    /// The login a token stands for: its credential's, if the token verifies with the
    /// credential's account's key and neither has expired.
    pub fn check_token(&self, token: &str) -> Result<Login, JwtError> {
        let (_, claims) = jwt::peek(token)?;
        let id = claims.get("sub").and_then(Value::as_str);
        let row = id.and_then(|id| self.rows().iter().find(|r| r.id == id).cloned());
        // An unknown subject fails like a bad signature: a token tells nothing it did not sign.
        let row = row.ok_or(JwtError::Signature)?;
        let account = self.directory.account(&row.account_sid);
        let account = account.ok_or(JwtError::Signature)?;
        jwt::verify(
            token,
            Algorithm::Hs512,
            &Self::key(&account),
            now_ms() / 1000,
        )?;
        if claims.get("aud").and_then(Value::as_str) != Some(ISSUER) {
            return Err(JwtError::Signature);
        }
        self.by_user(&row.sip_username).ok_or(JwtError::Expired)
    }

    /// An account's credentials, oldest first.
    pub fn of_account(&self, account: &str) -> Vec<TelephonyCredentialRow> {
        (self.rows().iter())
            .filter(|r| r.account_sid == account)
            .cloned()
            .collect()
    }

    /// The credential `id` if it is `account`'s.
    pub fn get(&self, account: &str, id: &str) -> Option<TelephonyCredentialRow> {
        (self.rows().iter())
            .find(|r| r.id == id && r.account_sid == account)
            .cloned()
    }

    /// Stores a new credential; `Ok(false)` when the account has [`MAX_PER_ACCOUNT`].
    pub async fn add(&self, row: TelephonyCredentialRow) -> Result<bool, StoreError> {
        if self.of_account(&row.account_sid).len() >= MAX_PER_ACCOUNT
            || !self.store.insert_telephony_credential(&row).await?
        {
            return Ok(false);
        }
        self.rows().push(row);
        self.publish();
        self.store.announce(Changed::Credentials).await;
        Ok(true)
    }

    /// Reads every credential again (another node changed one, or a connection changed) and
    /// tells the core the logins good now.
    pub async fn reload(&self) -> Result<(), StoreError> {
        *self.rows() = self.store.telephony_credentials().await?;
        self.publish();
        Ok(())
    }

    pub async fn update(&self, row: TelephonyCredentialRow) -> Result<(), StoreError> {
        self.store.update_telephony_credential(&row).await?;
        if let Some(r) = self.rows().iter_mut().find(|r| r.id == row.id) {
            *r = row;
        }
        self.publish();
        self.store.announce(Changed::Credentials).await;
        Ok(())
    }

    /// Deletes a credential; `Ok(None)` when it was not there.
    pub async fn remove(&self, id: &str) -> Result<Option<TelephonyCredentialRow>, StoreError> {
        self.store.delete_telephony_credential(id).await?;
        let removed = {
            let mut rows = self.rows();
            let i = rows.iter().position(|r| r.id == id);
            i.map(|i| rows.remove(i))
        };
        self.publish();
        self.store.announce(Changed::Credentials).await;
        Ok(removed)
    }
}

/// A random (version 4) UUID in its text form.
pub fn uuid_v4() -> String {
    crate::call::ids::CallId::random().uuid()
}
