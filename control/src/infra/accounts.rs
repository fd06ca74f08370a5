//! Accounts and the phone numbers they own, as configured (`[[accounts]]`, `[[numbers]]`). A
//! number's voice URL says which application drives the calls that arrive on it.

/// An account: the credentials its API requests and webhook signatures use.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// `AC` and 32 hex digits.
    pub sid: String,
    pub auth_token: String,
    /// SignalWire's signing key (it signs webhooks in place of the auth token).
    pub signing_key: Option<String>,
    /// SignalWire's project id, which its clients use in place of the account SID.
    pub project_id: Option<String>,
    /// API keys: `SK…` SID and secret.
    pub api_keys: Vec<(String, String)>,
    /// The numbers the operator lets it claim through the API (besides the ranges set
    /// through the admin API).
    pub number_ranges: Vec<NumberRange>,
    /// Caller IDs the operator lets it present besides its own numbers (see
    /// [`crate::call::caller_id`]).
    pub caller_ids: Vec<NumberRange>,
    /// The non-public networks its URLs (markup, audio, webhooks, streams) may reach.
    pub reach: crate::infra::egress::Reach,
    /// Telnyx API keys (`KEY…`), sent as `Authorization: Bearer`.
    pub telnyx_api_keys: Vec<String>,
    /// The seed of the Ed25519 key that signs its Telnyx webhooks.
    pub telnyx_seed: [u8; 32],
    /// Its own map of speech providers' names to the server's engines, over the operator's
    /// (`speech.providers`).
    pub speech_providers: switchboard_speech::ProviderEngines,
}

/// Which E.164 numbers an account may claim: an operator's grant. Without one, an account could
/// claim any number the trunks deliver and take another tenant's inbound calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NumberRange {
    /// `+15551230000`: that number.
    Exact(String),
    /// `+1555123*`: every number starting with the digits before the star.
    Prefix(String),
    /// `+15551230000-+15551230099`: every number of the same length between the two.
    Span(String, String),
}

impl NumberRange {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let digits = |d: &str, min: usize| {
            d.strip_prefix('+').is_some_and(|d| {
                (min..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit())
            })
        };
        if let Some(prefix) = s.strip_suffix('*') {
            return (prefix == "+" || digits(prefix, 1)).then(|| Self::Prefix(prefix.to_owned()));
        }
        if let Some((low, high)) = s.split_once('-') {
            let (low, high) = (low.trim(), high.trim());
            return (digits(low, 2) && digits(high, 2) && low.len() == high.len() && low <= high)
                .then(|| Self::Span(low.to_owned(), high.to_owned()));
        }
        digits(s, 2).then(|| Self::Exact(s.to_owned()))
    }

    /// Whether `number` (E.164) falls in the range. Same-length digit strings compare as
    /// numbers do.
    pub fn contains(&self, number: &str) -> bool {
        match self {
            Self::Exact(n) => n == number,
            Self::Prefix(p) => number.starts_with(p.as_str()),
            Self::Span(low, high) => {
                number.len() == low.len() && low.as_str() <= number && number <= high.as_str()
            }
        }
    }
}

impl std::fmt::Display for NumberRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(n) => f.write_str(n),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Span(low, high) => write!(f, "{low}-{high}"),
        }
    }
}

/// Secrets are shown as `"***"`: a Debug print ends up in logs.
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = format_args!("{}", crate::infra::secret::REDACTED);
        let keys: Vec<(&str, std::fmt::Arguments<'_>)> = self
            .api_keys
            .iter()
            .map(|(k, _)| (k.as_str(), hidden))
            .collect();
        f.debug_struct("Account")
            .field("sid", &self.sid)
            .field("auth_token", &hidden)
            .field("signing_key", &self.signing_key.as_ref().map(|_| hidden))
            .field("project_id", &self.project_id)
            .field("api_keys", &keys)
            .field("number_ranges", &self.number_ranges)
            .field("caller_ids", &self.caller_ids)
            .field("reach", &self.reach)
            .field(
                "telnyx_api_keys",
                &self
                    .telnyx_api_keys
                    .iter()
                    .map(|_| hidden)
                    .collect::<Vec<_>>(),
            )
            .field("telnyx_public_key", &self.telnyx_public_key())
            .finish()
    }
}

impl Account {
    /// An account with only its SID and a token, for unit tests.
    #[cfg(test)]
    pub fn for_test(sid: &str) -> Self {
        Self {
            sid: sid.to_owned(),
            auth_token: "t".into(),
            signing_key: None,
            project_id: None,
            api_keys: Vec::new(),
            number_ranges: Vec::new(),
            caller_ids: Vec::new(),
            reach: Default::default(),
            telnyx_api_keys: Vec::new(),
            telnyx_seed: [7; 32],
            speech_providers: Default::default(),
        }
    }

    /// The id its clients know it by: SignalWire's project id, else the account SID. Resources'
    /// `account_sid` and webhooks' `AccountSid` carry it.
    pub fn api_sid(&self) -> &str {
        self.project_id.as_deref().unwrap_or(&self.sid)
    }

    /// The key its Telnyx webhooks are signed with.
    pub fn telnyx_signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.telnyx_seed)
    }

    /// The public key its applications verify Telnyx webhooks with, as Telnyx's portal shows
    /// it: standard base64 of the 32 raw bytes.
    pub fn telnyx_public_key(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(self.telnyx_signing_key().verifying_key().as_bytes())
    }

    /// The seed an account's Telnyx key is made from when none is configured: derived from
    /// its auth token (so it is stable across restarts and nodes, and as secret as the token).
    pub fn derived_telnyx_seed(auth_token: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"switchboard telnyx ed25519 seed\0");
        h.update(auth_token.as_bytes());
        h.finalize().into()
    }
}

/// A Telnyx connection: a Call Control application (its calls' events go to its webhook
/// URL and it commands them), with `texml` a TeXML application (its calls run the TeXML
/// its voice URL returns), or with `credential` a credential connection (SIP phones and
/// browsers log in with its user name and password or its telephony credentials; with a
/// webhook URL their calls are Call Control calls). All share one id space, and a number
/// names any by its `connection_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Digits, as Telnyx's ids are.
    pub id: String,
    pub account_sid: String,
    pub name: String,
    /// A Call Control application's; empty for a TeXML application.
    pub webhook_event_url: String,
    /// Tried when the event URL fails.
    pub webhook_event_failover_url: Option<String>,
    /// `1` or `2`; only `2` (the JSON envelope) is served.
    pub webhook_api_version: String,
    /// Whether an incoming call the application has sent no command for within
    /// `first_command_timeout_secs` is hung up; if not, it waits as long as the caller does.
    pub first_command_timeout: bool,
    pub first_command_timeout_secs: u64,
    /// A TeXML application's voice settings (`None`: a Call Control application).
    pub texml: Option<TexmlVoice>,
    /// A credential connection's own SIP login.
    pub credential: Option<SipLogin>,
    /// An IP connection's trunk: its addresses (`/v2/ips`, in the SIP directory) admit its
    /// calls out and take its numbers' calls.
    pub ip_trunk: Option<IpTrunk>,
    /// The other settings the API accepted, as a JSON object: `active` and `outbound` are acted
    /// on when calls are placed through the connection (see Telnyx's
    /// `outbound_voice_profiles`); the rest (`anchorsite_override`, `dtmf_type`, `inbound`,
    /// `tags`, …) is shown back.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// What an IP or FQDN connection's trunk is: how its addresses are reached, and whether its
/// media is SRTP (`encrypted_media: "SRTP"`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IpTrunk {
    /// `UDP`, `TCP` or `TLS`.
    pub transport_protocol: String,
    pub srtp: bool,
    /// An FQDN connection: its addresses are its FQDNs' (`/v2/fqdns`) A records.
    #[serde(default)]
    pub by_name: bool,
    /// An FQDN connection's credentials, demanded by digest from its calls beside its
    /// addresses.
    #[serde(default)]
    pub login: Option<SipLogin>,
}

/// A SIP user name and password: a credential connection's, or a telephony credential's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SipLogin {
    pub user_name: String,
    pub password: String,
}

/// The kinds of Telnyx connection, one id space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    CallControl,
    Texml,
    Credential,
    /// A Telnyx IP connection: a tenant's trunk its addresses authenticate.
    Ip,
    /// A Telnyx FQDN connection: the same, its addresses its FQDNs'.
    Fqdn,
    /// A Twilio Application (TwiML App, `AP…`): the voice settings a TeXML application has,
    /// made through Twilio's API.
    TwimlApp,
}

/// What a TeXML application's calls fetch, and where their progress is reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TexmlVoice {
    pub voice_url: String,
    pub voice_method: HttpMethod,
    pub voice_fallback_url: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
}

impl Connection {
    /// The longest first-command timeout (an hour: a parked call holds a media port).
    pub const MAX_FIRST_COMMAND_SECS: u64 = 3600;

    /// A new connection of `account`, its settings the defaults (a Call Control application
    /// until its kind's fields are set).
    pub fn new(id: String, account: &str) -> Self {
        Self {
            id,
            account_sid: account.to_owned(),
            name: String::new(),
            webhook_event_url: String::new(),
            webhook_event_failover_url: None,
            webhook_api_version: "2".into(),
            first_command_timeout: false,
            first_command_timeout_secs: 30,
            texml: None,
            credential: None,
            ip_trunk: None,
            settings: serde_json::Map::new(),
        }
    }

    pub fn kind(&self) -> ConnectionKind {
        match (&self.texml, &self.credential) {
            (Some(_), _) if self.id.starts_with("AP") => ConnectionKind::TwimlApp,
            (Some(_), _) => ConnectionKind::Texml,
            (None, Some(_)) => ConnectionKind::Credential,
            (None, None) => match &self.ip_trunk {
                Some(t) if t.by_name => ConnectionKind::Fqdn,
                Some(_) => ConnectionKind::Ip,
                None => ConnectionKind::CallControl,
            },
        }
    }

    /// How long an incoming call waits for its first command, if it is bounded.
    pub fn first_command_timeout(&self) -> Option<std::time::Duration> {
        (self.first_command_timeout)
            .then(|| std::time::Duration::from_secs(self.first_command_timeout_secs))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    #[default]
    Post,
}

impl HttpMethod {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Some(Self::Get),
            "POST" => Some(Self::Post),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// A phone number of an account (Twilio's IncomingPhoneNumber).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    /// E.164, as dialed by the trunks' INVITEs.
    pub phone_number: String,
    pub account_sid: String,
    pub voice_url: Option<String>,
    pub voice_method: HttpMethod,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: HttpMethod,
    pub status_callback: Option<String>,
    pub status_callback_method: HttpMethod,
    /// The Telnyx Call Control application that answers it; it takes the number's calls
    /// before a voice URL does.
    pub connection_id: Option<String>,
}

/// `(415) 867-5309` for North American numbers, the number itself otherwise (Twilio's
/// `*_formatted` fields and a number's default friendly name).
pub fn formatted_number(number: &str) -> String {
    match number.strip_prefix("+1") {
        Some(n) if n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("({}) {}-{}", &n[0..3], &n[3..6], &n[6..])
        }
        _ => number.to_owned(),
    }
}

/// The accounts, numbers and connections as configured: what a configuration file (or a
/// test) lists, checked; [`Directory`] holds the one in force.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub accounts: Vec<Account>,
    pub numbers: Vec<Number>,
    pub connections: Vec<Connection>,
}

impl Listing {
    pub fn account(&self, sid: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.sid == sid)
    }

    /// The account a Telnyx API key belongs to (compared in constant time).
    pub fn by_telnyx_key(&self, key: &str) -> Option<&Account> {
        use subtle::ConstantTimeEq;
        self.accounts.iter().find(|a| {
            a.telnyx_api_keys
                .iter()
                .any(|k| bool::from(k.as_bytes().ct_eq(key.as_bytes())))
        })
    }

    pub fn connection(&self, id: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.id == id)
    }

    pub fn number(&self, phone_number: &str) -> Option<&Number> {
        self.numbers.iter().find(|n| n.phone_number == phone_number)
    }
}

/// The accounts in force. A reload of the configuration (SIGHUP) replaces them while calls
/// and requests go on: a lookup answers from the listing current when it is made, and a
/// request holds the account it authenticated as (a copy) until it is answered.
#[derive(Debug, Default)]
pub struct Directory {
    current: std::sync::RwLock<std::sync::Arc<Listing>>,
    /// The configured listing, the API keys and the subaccounts made through the API: the
    /// listing in force is the configured one with the keys and the active subaccounts added.
    configured: std::sync::RwLock<(Listing, Vec<MadeKey>, Vec<MadeAccount>)>,
    /// Counts each change of the listing in force: what holds a credential past its check
    /// (a signed-in device, a live socket) watches it and checks again.
    changes: tokio::sync::watch::Sender<u64>,
}

/// An API key made through the API: its account, SID and secret.
pub type MadeKey = (String, String, String);

/// An account made through the API under another (a subaccount): its SID, its owner's, its
/// auth token, and whether it is active (a suspended or closed one is not in force).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeAccount {
    pub sid: String,
    pub owner: String,
    pub auth_token: String,
    pub active: bool,
}

/// What a request authenticated with: its account's auth token, or one of its API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    AuthToken,
    ApiKey,
}

impl Directory {
    pub fn new(listing: Listing) -> Self {
        Self {
            current: std::sync::RwLock::new(std::sync::Arc::new(listing.clone())),
            configured: std::sync::RwLock::new((listing, Vec::new(), Vec::new())),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Told of every change of the accounts in force (a reload, an API key made or deleted,
    /// here or on another node): whoever holds a credential checked earlier checks it again.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The listing in force now.
    pub fn listing(&self) -> std::sync::Arc<Listing> {
        self.current.read().expect("not poisoned").clone()
    }

    /// Puts `listing` in force (a configuration reload); the API's keys stay.
    pub fn replace(&self, listing: Listing) {
        let mut configured = self.configured.write().expect("not poisoned");
        configured.0 = listing;
        self.merge(&configured);
    }

    /// The API keys accounts made through the API (account, SID, secret), from now on.
    pub fn set_made_keys(&self, keys: Vec<MadeKey>) {
        let mut configured = self.configured.write().expect("not poisoned");
        configured.1 = keys;
        self.merge(&configured);
    }

    /// The subaccounts made through the API, from now on.
    pub fn set_made_accounts(&self, accounts: Vec<MadeAccount>) {
        let mut configured = self.configured.write().expect("not poisoned");
        configured.2 = accounts;
        self.merge(&configured);
    }

    /// The account that owns `sid` (a subaccount's), if one does.
    pub fn owner_of(&self, sid: &str) -> Option<String> {
        let configured = self.configured.read().expect("not poisoned");
        (configured.2.iter())
            .find(|a| a.sid == sid)
            .map(|a| a.owner.clone())
    }

    fn merge(&self, (listing, keys, made): &(Listing, Vec<MadeKey>, Vec<MadeAccount>)) {
        let mut merged = listing.clone();
        // An active subaccount: its own credentials, within its owner's grants (the operator
        // granted numbers, caller IDs and reach to the owner's whole tree).
        for sub in made.iter().filter(|a| a.active) {
            let Some(owner) = merged.accounts.iter().find(|a| a.sid == sub.owner) else {
                continue;
            };
            if merged.accounts.iter().any(|a| a.sid == sub.sid) {
                continue;
            }
            let account = Account {
                sid: sub.sid.clone(),
                auth_token: sub.auth_token.clone(),
                signing_key: None,
                project_id: None,
                api_keys: Vec::new(),
                telnyx_api_keys: Vec::new(),
                telnyx_seed: Account::derived_telnyx_seed(&sub.auth_token),
                ..owner.clone()
            };
            merged.accounts.push(account);
        }
        for (account, sid, secret) in keys {
            if let Some(a) = merged.accounts.iter_mut().find(|a| a.sid == *account) {
                a.api_keys.push((sid.clone(), secret.clone()));
            }
        }
        *self.current.write().expect("not poisoned") = std::sync::Arc::new(merged);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn account(&self, sid: &str) -> Option<Account> {
        self.listing().account(sid).cloned()
    }

    /// The account whose SID (or SignalWire project id) and auth token, or one of whose API
    /// keys and secret, `user` and `password` are. Secrets compare in constant time.
    pub fn by_credentials(&self, user: &str, password: &str) -> Option<(Account, Credential)> {
        let secret = |s: &str| crate::infra::secret::matches(s, password);
        (self.listing().accounts.iter()).find_map(|a| {
            if (a.sid == user || a.project_id.as_deref() == Some(user)) && secret(&a.auth_token) {
                Some((a.clone(), Credential::AuthToken))
            } else if a.api_keys.iter().any(|(k, s)| k == user && secret(s)) {
                Some((a.clone(), Credential::ApiKey))
            } else {
                None
            }
        })
    }

    /// The account a URL path names: by its SID or its SignalWire project id.
    pub fn named(&self, id: &str) -> Option<Account> {
        let listing = self.listing();
        (listing.accounts.iter())
            .find(|a| a.sid == id || a.project_id.as_deref() == Some(id))
            .cloned()
    }

    /// The account a Telnyx API key belongs to (compared in constant time).
    pub fn by_telnyx_key(&self, key: &str) -> Option<Account> {
        self.listing().by_telnyx_key(key).cloned()
    }

    pub fn connection(&self, id: &str) -> Option<Connection> {
        self.listing().connection(id).cloned()
    }

    pub fn number(&self, phone_number: &str) -> Option<Number> {
        self.listing().number(phone_number).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_in_any_case() {
        assert_eq!(HttpMethod::parse("get"), Some(HttpMethod::Get));
        assert_eq!(HttpMethod::parse("PUT"), None);
    }

    #[test]
    fn number_ranges_parse_and_contain() {
        let r = |s| NumberRange::parse(s).unwrap();
        assert!(r("+1555123*").contains("+15551230000"));
        assert!(!r("+1555123*").contains("+15551240000"));
        assert!(r("+*").contains("+442071838750"));
        let span = r("+15551230000-+15551230099");
        assert_eq!(span.to_string(), "+15551230000-+15551230099");
        assert!(span.contains("+15551230000") && span.contains("+15551230099"));
        assert!(!span.contains("+15551230100") && !span.contains("+1555123005"));
        assert!(r("+15551230000").contains("+15551230000"));
        assert!(!r("+15551230000").contains("+155512300001"));
        for bad in [
            "",
            "*",
            "1555*",
            "+15a*",
            "+199-+10",
            "+1-+100",
            "+1234567890123456",
        ] {
            assert_eq!(NumberRange::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn north_american_numbers_are_formatted() {
        assert_eq!(formatted_number("+14158675309"), "(415) 867-5309");
        assert_eq!(formatted_number("+442071838750"), "+442071838750");
        assert_eq!(formatted_number("alice"), "alice");
    }
}
