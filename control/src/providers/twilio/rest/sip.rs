//! Twilio's SIP API on the neutral SIP directory ([`SipDomains`]): CredentialLists and their
//! Credentials, IpAccessControlLists and their IpAddresses, Domains, and the mappings of lists
//! to domains (`CredentialListMappings`, `IpAccessControlListMappings`, and
//! `Auth/Calls/…` and `Auth/Registrations/CredentialListMappings`). A domain's phones register
//! and call with the credentials of the lists mapped to it ([`SipDomains::logins`]); callers
//! from the addresses of the IP access control lists mapped for calls are admitted without
//! credentials ([`SipDomains::sources`]).

use super::json::{Json, form, method, param, url};
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::infra::accounts::Account;
use crate::infra::store::sip_directory::SipObjectRow;
use crate::markup::rfc2822;
use crate::services::directory::sip_domains::{
    DirectoryError, DomainSettings, Kind, MAX_DOMAINS, MAX_ENTRIES, MAX_LISTS, MappedFor,
    SipDomains,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The longest `FriendlyName` Twilio takes.
const MAX_NAME: usize = 64;
/// The longest user name and password taken.
const MAX_USER: usize = 32;
const MAX_PASSWORD: usize = 128;
/// What a domain name must end with (Twilio's rule).
const DOMAIN_SUFFIX: &str = ".sip.twilio.com";

fn base(account: &Account) -> String {
    format!("/2010-04-01/Accounts/{}/SIP", account.api_sid())
}

fn sid_of(file: &str) -> &str {
    file.trim_end_matches(".json")
}

fn name_of(row: &SipObjectRow) -> Value {
    serde_json::from_str::<Value>(&row.body)
        .ok()
        .and_then(|b| b.get("friendly_name").cloned())
        .unwrap_or(Value::Null)
}

fn dates(row: &SipObjectRow) -> (String, String) {
    (rfc2822(row.created_at), rfc2822(row.updated_at))
}

pub(super) fn directory_error(e: DirectoryError, what: &str) -> ApiError {
    match e {
        DirectoryError::NotFound => ApiError::not_found(what),
        DirectoryError::Taken(name) => {
            ApiError::bad_request(21232, format!("{name} is already in use"))
        }
        DirectoryError::Full(max) => {
            ApiError::bad_request(21201, format!("At most {max} may be held here"))
        }
        DirectoryError::Store(e) => ApiError::internal(e),
    }
}

/// `FriendlyName` of a form, bounded.
fn friendly_name(p: &[(String, String)], required: bool) -> Result<Option<String>, ApiError> {
    match param(p, "FriendlyName") {
        Some(n) if n.chars().count() > MAX_NAME || (required && n.is_empty()) => Err(
            ApiError::bad_request(21201, format!("FriendlyName is 1 to {MAX_NAME} characters")),
        ),
        Some(n) => Ok(Some(n.to_owned())),
        None if required => Err(ApiError::bad_request(
            21201,
            "Required parameter FriendlyName missing",
        )),
        None => Ok(None),
    }
}

async fn delete_object(
    api: &TwilioApi,
    account: &Account,
    row: &SipObjectRow,
) -> Result<StatusCode, ApiError> {
    (api.sip_domains.delete(&account.sid, &row.sid).await)
        .map_err(|e| directory_error(e, &row.sid))?;
    in_force(api).await;
    Ok(StatusCode::NO_CONTENT)
}

fn list_of(
    list: &Listing,
    api: &TwilioApi,
    kind: Kind,
    parent: &str,
    (key, path): (&str, &str),
    render: impl Fn(&SipObjectRow) -> Value,
) -> Json {
    let rows = api.sip_domains.list(&list.account.sid, kind, parent);
    let rows = list.page_of(rows);
    list.respond(key, path, rows, |r| r.sid.clone(), render)
}

/// After a change: the logins it makes or ends, and the trunks' admissions, are in force in
/// the call core before the answer (a phone given a credential registers with it next).
async fn in_force(api: &TwilioApi) {
    let _ = api.sip_logins.publish().await;
    // A list a trunk was given admits its termination traffic.
    api.sip_trunks.publish().await;
}

macro_rules! authed {
    ($api:expr, $headers:expr, $account:expr) => {
        authenticate(&$api.directory, &$headers, &$account)?
    };
}

// ---- CredentialLists and IpAccessControlLists, and their entries ----

/// A kind of list: credential lists (of credentials) or IP access control lists (of
/// addresses). Each list and each entry is served by the same handlers.
#[derive(Clone, Copy)]
pub(super) struct Lists {
    kind: Kind,
    /// The list envelope's key, and the path segment.
    key: &'static str,
    segment: &'static str,
    /// Its entries' kind, key and segment.
    entry: Kind,
    entry_key: &'static str,
    entry_segment: &'static str,
}

pub(super) const CREDENTIAL_LISTS: Lists = Lists {
    kind: Kind::CredentialList,
    key: "credential_lists",
    segment: "CredentialLists",
    entry: Kind::Credential,
    entry_key: "credentials",
    entry_segment: "Credentials",
};

pub(super) const IP_ACLS: Lists = Lists {
    kind: Kind::IpAcl,
    key: "ip_access_control_lists",
    segment: "IpAccessControlLists",
    entry: Kind::IpAddress,
    entry_key: "ip_addresses",
    entry_segment: "IpAddresses",
};

impl Lists {
    fn resource(self, account: &Account, row: &SipObjectRow) -> Value {
        let (created, updated) = dates(row);
        let at = format!("{}/{}/{}", base(account), self.segment, row.sid);
        json!({
            "account_sid": account.api_sid(),
            "date_created": created,
            "date_updated": updated,
            "friendly_name": name_of(row),
            "sid": row.sid,
            "subresource_uris": {self.entry_key: format!("{at}/{}.json", self.entry_segment)},
            "uri": format!("{at}.json"),
        })
    }

    /// Its path segment (`CredentialLists`, `IpAccessControlLists`).
    pub(super) fn segment(self) -> &'static str {
        self.segment
    }

    /// The path segment of its entries (`Credentials`, `IpAddresses`).
    pub(super) fn entry_segment(self) -> &'static str {
        self.entry_segment
    }

    /// The account's list a `{sid}.json` names.
    fn find(
        self,
        api: &TwilioApi,
        account: &Account,
        file: &str,
    ) -> Result<SipObjectRow, ApiError> {
        let sid = sid_of(file);
        (api.sip_domains.get(&account.sid, self.kind, sid)).ok_or_else(|| {
            ApiError::not_found(&format!("{}/{}/{sid}.json", base(account), self.segment))
        })
    }

    fn entry_resource(self, account: &Account, row: &SipObjectRow) -> Value {
        let (created, updated) = dates(row);
        let uri = format!(
            "{}/{}/{}/{}/{}.json",
            base(account),
            self.segment,
            row.parent,
            self.entry_segment,
            row.sid
        );
        let mut v = json!({
            "account_sid": account.api_sid(),
            "date_created": created,
            "date_updated": updated,
            "sid": row.sid,
            "uri": uri,
        });
        if self.entry == Kind::Credential {
            v["credential_list_sid"] = json!(row.parent);
            v["username"] = json!(row.name);
        } else {
            let body: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
            v["ip_access_control_list_sid"] = json!(row.parent);
            for key in ["ip_address", "cidr_prefix_length", "friendly_name"] {
                v[key] = body[key].clone();
            }
        }
        v
    }

    /// A new entry's name and fields from a form: a credential's user name and password, an
    /// address's fields (named by its SID).
    fn new_entry(self, p: &[(String, String)]) -> Result<(String, String), ApiError> {
        if self.entry == Kind::IpAddress {
            return Ok((String::new(), ip_fields(p, None)?));
        }
        let user = param(p, "Username").unwrap_or_default();
        if user.is_empty()
            || user.len() > MAX_USER
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        {
            return Err(ApiError::bad_request(
                21201,
                format!("Username is 1 to {MAX_USER} letters, digits and . _ - +"),
            ));
        }
        Ok((
            user.to_owned(),
            json!({"password": password(p)?}).to_string(),
        ))
    }

    /// An entry's fields changed by a form (a credential's password; an address's fields).
    fn changed_entry(self, p: &[(String, String)], row: &SipObjectRow) -> Result<String, ApiError> {
        if self.entry == Kind::IpAddress {
            let earlier: Value = serde_json::from_str(&row.body).unwrap_or(Value::Null);
            return ip_fields(p, Some(&earlier));
        }
        Ok(json!({"password": password(p)?}).to_string())
    }

    /// The entry of `list` a `{sid}.json` names.
    fn find_entry(
        self,
        api: &TwilioApi,
        account: &Account,
        list: &SipObjectRow,
        file: &str,
    ) -> Result<SipObjectRow, ApiError> {
        let sid = sid_of(file);
        (api.sip_domains.get(&account.sid, self.entry, sid))
            .filter(|r| r.parent == list.sid)
            .ok_or_else(|| {
                ApiError::not_found(&format!(
                    "{}/{}/{}/{}/{sid}.json",
                    base(account),
                    self.segment,
                    list.sid,
                    self.entry_segment
                ))
            })
    }
}

pub(super) async fn lists(
    api: TwilioApi,
    account: String,
    headers: HeaderMap,
    query: Option<String>,
    d: Lists,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = list.account.clone();
    let path = format!("SIP/{}.json", d.segment);
    Ok(list_of(&list, &api, d.kind, "", (d.key, &path), |r| {
        d.resource(&account, r)
    }))
}

pub(super) async fn list_create(
    api: TwilioApi,
    account: String,
    headers: HeaderMap,
    body: String,
    d: Lists,
) -> Result<Response, ApiError> {
    let account = authed!(api, headers, account);
    let name = friendly_name(&form(&body), true)?.unwrap_or_default();
    let fields = json!({"friendly_name": name}).to_string();
    let row = (api
        .sip_domains
        .add(&account.sid, (d.kind, ""), "", fields, MAX_LISTS)
        .await)
        .map_err(|e| directory_error(e, d.segment))?;
    Ok((StatusCode::CREATED, Json(d.resource(&account, &row))).into_response())
}

pub(super) async fn list_fetch(
    api: TwilioApi,
    (account, file): (String, String),
    headers: HeaderMap,
    d: Lists,
) -> Result<Json, ApiError> {
    let account = authed!(api, headers, account);
    let row = d.find(&api, &account, &file)?;
    Ok(Json(d.resource(&account, &row)))
}

pub(super) async fn list_update(
    api: TwilioApi,
    (account, file): (String, String),
    headers: HeaderMap,
    body: String,
    d: Lists,
) -> Result<Json, ApiError> {
    let account = authed!(api, headers, account);
    let row = d.find(&api, &account, &file)?;
    let name = friendly_name(&form(&body), true)?.unwrap_or_default();
    let fields = json!({"friendly_name": name}).to_string();
    let row = (api.sip_domains.update(&row, &row.name, fields).await)
        .map_err(|e| directory_error(e, d.segment))?;
    Ok(Json(d.resource(&account, &row)))
}

pub(super) async fn list_delete(
    api: TwilioApi,
    (account, file): (String, String),
    headers: HeaderMap,
    d: Lists,
) -> Result<StatusCode, ApiError> {
    let account = authed!(api, headers, account);
    let row = d.find(&api, &account, &file)?;
    delete_object(&api, &account, &row).await
}

pub(super) async fn entries(
    api: TwilioApi,
    (account, list_file): (String, String),
    headers: HeaderMap,
    query: Option<String>,
    d: Lists,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = list.account.clone();
    let parent = d.find(&api, &account, &list_file)?;
    let path = format!("SIP/{}/{}/{}.json", d.segment, parent.sid, d.entry_segment);
    Ok(list_of(
        &list,
        &api,
        d.entry,
        &parent.sid,
        (d.entry_key, &path),
        |r| d.entry_resource(&account, r),
    ))
}

pub(super) async fn entry_create(
    api: TwilioApi,
    (account, list_file): (String, String),
    headers: HeaderMap,
    body: String,
    d: Lists,
) -> Result<Response, ApiError> {
    let account = authed!(api, headers, account);
    let parent = d.find(&api, &account, &list_file)?;
    let (name, fields) = d.new_entry(&form(&body))?;
    let at = (d.entry, parent.sid.as_str());
    let row = (api
        .sip_domains
        .add(&account.sid, at, &name, fields, MAX_ENTRIES)
        .await)
        .map_err(|e| directory_error(e, d.entry_segment))?;
    in_force(&api).await;
    Ok((StatusCode::CREATED, Json(d.entry_resource(&account, &row))).into_response())
}

pub(super) async fn entry_fetch(
    api: TwilioApi,
    (account, list_file, file): (String, String, String),
    headers: HeaderMap,
    d: Lists,
) -> Result<Json, ApiError> {
    let account = authed!(api, headers, account);
    let parent = d.find(&api, &account, &list_file)?;
    let row = d.find_entry(&api, &account, &parent, &file)?;
    Ok(Json(d.entry_resource(&account, &row)))
}

/// A credential's password changes (its user name does not); an address's fields.
pub(super) async fn entry_update(
    api: TwilioApi,
    (account, list_file, file): (String, String, String),
    headers: HeaderMap,
    body: String,
    d: Lists,
) -> Result<Json, ApiError> {
    let account = authed!(api, headers, account);
    let parent = d.find(&api, &account, &list_file)?;
    let row = d.find_entry(&api, &account, &parent, &file)?;
    let fields = d.changed_entry(&form(&body), &row)?;
    let row = (api.sip_domains.update(&row, &row.name, fields).await)
        .map_err(|e| directory_error(e, d.entry_segment))?;
    in_force(&api).await;
    Ok(Json(d.entry_resource(&account, &row)))
}

pub(super) async fn entry_delete(
    api: TwilioApi,
    (account, list_file, file): (String, String, String),
    headers: HeaderMap,
    d: Lists,
) -> Result<StatusCode, ApiError> {
    let account = authed!(api, headers, account);
    let parent = d.find(&api, &account, &list_file)?;
    let row = d.find_entry(&api, &account, &parent, &file)?;
    delete_object(&api, &account, &row).await
}

/// `Password`: required, bounded.
fn password(p: &[(String, String)]) -> Result<String, ApiError> {
    match param(p, "Password") {
        Some(pw) if !pw.is_empty() && pw.len() <= MAX_PASSWORD => Ok(pw.to_owned()),
        Some(_) => Err(ApiError::bad_request(
            21201,
            format!("Password is 1 to {MAX_PASSWORD} characters"),
        )),
        None => Err(ApiError::bad_request(
            21201,
            "Required parameter Password missing",
        )),
    }
}

/// An address's fields: `IpAddress` (an IPv4 or IPv6 literal), `CidrPrefixLength` (32 or 128
/// by default), `FriendlyName`; `earlier` keeps what is not given.
fn ip_fields(p: &[(String, String)], earlier: Option<&Value>) -> Result<String, ApiError> {
    let was = |k: &str| earlier.map(|e| e[k].clone()).unwrap_or(Value::Null);
    let address = match param(p, "IpAddress") {
        Some(a) => Some(a.parse::<std::net::IpAddr>().map_err(|_| {
            ApiError::bad_request(21201, format!("IpAddress {a} is no IPv4 or IPv6 address"))
        })?),
        None => was("ip_address").as_str().and_then(|a| a.parse().ok()),
    };
    let Some(address) = address else {
        return Err(ApiError::bad_request(
            21201,
            "Required parameter IpAddress missing",
        ));
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match param(p, "CidrPrefixLength") {
        Some(n) => n
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(21201, format!("CidrPrefixLength is 1 to {max}"))
            })?,
        None => was("cidr_prefix_length")
            .as_u64()
            .map_or(max, |n| n as u8)
            .min(max),
    };
    let name = match friendly_name(p, false)? {
        Some(n) => Value::from(n),
        None => earlier.map_or_else(
            || Value::from(address.to_string()),
            |e| e["friendly_name"].clone(),
        ),
    };
    Ok(json!({"ip_address": address.to_string(), "cidr_prefix_length": prefix, "friendly_name": name}).to_string())
}

// ---- Domains ----

fn domain_resource(api: &TwilioApi, account: &Account, row: &SipObjectRow) -> Value {
    let s = SipDomains::settings(row);
    let (created, updated) = dates(row);
    let d = &api.sip_domains;
    let mapped: Vec<String> = [
        MappedFor::Calls,
        MappedFor::Legacy,
        MappedFor::Registrations,
    ]
    .into_iter()
    .flat_map(|what| d.mapped(&row.sid, what))
    .collect();
    let mut auth = Vec::new();
    if mapped.iter().any(|l| l.starts_with("AL")) {
        auth.push("IP_ACL");
    }
    if mapped.iter().any(|l| l.starts_with("CL")) {
        auth.push("CREDENTIAL_LIST");
    }
    let uri = format!("{}/Domains/{}", base(account), row.sid);
    json!({
        "account_sid": account.api_sid(),
        "api_version": "2010-04-01",
        "auth_type": if auth.is_empty() { Value::Null } else { Value::from(auth.join(",")) },
        "byoc_trunk_sid": s.byoc_trunk_sid,
        "date_created": created,
        "date_updated": updated,
        "domain_name": row.name,
        "emergency_caller_sid": s.emergency_caller_sid,
        "emergency_calling_enabled": s.emergency_calling_enabled,
        "friendly_name": s.friendly_name,
        "secure": s.secure,
        "sid": row.sid,
        "sip_registration": s.sip_registration,
        "subresource_uris": {
            "credential_list_mappings": format!("{uri}/CredentialListMappings.json"),
            "ip_access_control_list_mappings": format!("{uri}/IpAccessControlListMappings.json"),
        },
        "uri": format!("{uri}.json"),
        "voice_fallback_method": s.voice_fallback_method.as_str(),
        "voice_fallback_url": s.voice_fallback_url,
        "voice_method": s.voice_method.as_str(),
        "voice_status_callback_method": s.voice_status_callback_method.as_str(),
        "voice_status_callback_url": s.voice_status_callback_url,
        "voice_url": s.voice_url,
    })
}

/// A form's `true`/`false`.
pub(super) fn flag(p: &[(String, String)], key: &str) -> Result<Option<bool>, ApiError> {
    match param(p, key).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(
            21201,
            format!("{key} is true or false, not {other}"),
        )),
    }
}

/// Applies a form's fields to a domain's settings (those given).
fn apply_domain(p: &[(String, String)], s: &mut DomainSettings) -> Result<(), ApiError> {
    if let Some(name) = friendly_name(p, false)? {
        s.friendly_name = Some(name);
    }
    let given = |k: &str| param(p, k).is_some();
    if given("VoiceUrl") {
        s.voice_url = url(p, "VoiceUrl")?;
    }
    if given("VoiceMethod") {
        s.voice_method = method(p, "VoiceMethod")?;
    }
    if given("VoiceFallbackUrl") {
        s.voice_fallback_url = url(p, "VoiceFallbackUrl")?;
    }
    if given("VoiceFallbackMethod") {
        s.voice_fallback_method = method(p, "VoiceFallbackMethod")?;
    }
    if given("VoiceStatusCallbackUrl") {
        s.voice_status_callback_url = url(p, "VoiceStatusCallbackUrl")?;
    }
    if given("VoiceStatusCallbackMethod") {
        s.voice_status_callback_method = method(p, "VoiceStatusCallbackMethod")?;
    }
    if let Some(on) = flag(p, "SipRegistration")? {
        s.sip_registration = on;
    }
    // TLS and SRTP for every call of the domain, emergency calling with validated
    // addresses, and a BYOC trunk are not built for domains: refused when asked for.
    for key in ["Secure", "EmergencyCallingEnabled"] {
        if flag(p, key)? == Some(true) {
            return Err(ApiError::bad_request(
                21231,
                format!("{key}=true is not served by Switchboard"),
            ));
        }
    }
    for key in ["ByocTrunkSid", "EmergencyCallerSid"] {
        if param(p, key).is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::bad_request(
                21231,
                format!("{key} is not served by Switchboard"),
            ));
        }
    }
    Ok(())
}

/// `DomainName`: letters, digits and `-` in labels, ending in `.sip.twilio.com`.
fn domain_name(p: &[(String, String)]) -> Result<String, ApiError> {
    let name = param(p, "DomainName")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let head = name.strip_suffix(DOMAIN_SUFFIX).unwrap_or_default();
    let good = !head.is_empty()
        && name.len() <= 253
        && head.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !good {
        return Err(ApiError::bad_request(
            21232,
            format!(
                "The domain name '{name}' is invalid: letters, digits and '-', ending with sip.twilio.com"
            ),
        ));
    }
    Ok(name)
}

fn find_domain(api: &TwilioApi, account: &Account, file: &str) -> Result<SipObjectRow, ApiError> {
    let sid = sid_of(file);
    (api.sip_domains.get(&account.sid, Kind::Domain, sid))
        .ok_or_else(|| ApiError::not_found(&format!("{}/Domains/{sid}.json", base(account))))
}

pub(super) async fn domains(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = list.account.clone();
    Ok(list_of(
        &list,
        &api,
        Kind::Domain,
        "",
        ("domains", "SIP/Domains.json"),
        |r| domain_resource(&api, &account, r),
    ))
}

pub(super) async fn domain_create(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authed!(api, headers, account);
    let p = form(&body);
    let name = domain_name(&p)?;
    let mut settings = DomainSettings::default();
    apply_domain(&p, &mut settings)?;
    let fields = serde_json::to_string(&settings).map_err(ApiError::internal)?;
    let row = (api
        .sip_domains
        .add(&account.sid, (Kind::Domain, ""), &name, fields, MAX_DOMAINS)
        .await)
        .map_err(|e| directory_error(e, "Domains"))?;
    in_force(&api).await;
    Ok((
        StatusCode::CREATED,
        Json(domain_resource(&api, &account, &row)),
    )
        .into_response())
}

pub(super) async fn domain_fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authed!(api, headers, account);
    let row = find_domain(&api, &account, &file)?;
    Ok(Json(domain_resource(&api, &account, &row)))
}

pub(super) async fn domain_update(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authed!(api, headers, account);
    let row = find_domain(&api, &account, &file)?;
    let p = form(&body);
    let name = match param(&p, "DomainName") {
        Some(_) => domain_name(&p)?,
        None => row.name.clone(),
    };
    let mut settings = SipDomains::settings(&row);
    apply_domain(&p, &mut settings)?;
    let fields = serde_json::to_string(&settings).map_err(ApiError::internal)?;
    let row = (api.sip_domains.update(&row, &name, fields).await)
        .map_err(|e| directory_error(e, "Domains"))?;
    in_force(&api).await;
    Ok(Json(domain_resource(&api, &account, &row)))
}

pub(super) async fn domain_delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authed!(api, headers, account);
    let row = find_domain(&api, &account, &file)?;
    delete_object(&api, &account, &row).await
}

// ---- Mappings ----

/// Which mappings a path names: what the lists authenticate, and which kind of list.
#[derive(Clone, Copy)]
pub(super) struct Mappings {
    what: MappedFor,
    ip: bool,
}

pub(super) const LEGACY_CREDENTIALS: Mappings = Mappings {
    what: MappedFor::Legacy,
    ip: false,
};
pub(super) const LEGACY_IPS: Mappings = Mappings {
    what: MappedFor::Legacy,
    ip: true,
};
pub(super) const CALLS_CREDENTIALS: Mappings = Mappings {
    what: MappedFor::Calls,
    ip: false,
};
pub(super) const CALLS_IPS: Mappings = Mappings {
    what: MappedFor::Calls,
    ip: true,
};
pub(super) const REGISTRATIONS: Mappings = Mappings {
    what: MappedFor::Registrations,
    ip: false,
};

impl Mappings {
    fn kind(self) -> Kind {
        if self.ip {
            Kind::IpAcl
        } else {
            Kind::CredentialList
        }
    }

    fn key(self) -> &'static str {
        match (self.what, self.ip) {
            (MappedFor::Legacy, false) => "credential_list_mappings",
            (MappedFor::Legacy, true) => "ip_access_control_list_mappings",
            _ => "contents",
        }
    }

    fn path(self, domain: &str) -> String {
        let tail = if self.ip {
            "IpAccessControlListMappings"
        } else {
            "CredentialListMappings"
        };
        match self.what {
            MappedFor::Legacy => format!("SIP/Domains/{domain}/{tail}"),
            MappedFor::Calls => format!("SIP/Domains/{domain}/Auth/Calls/{tail}"),
            MappedFor::Registrations => format!("SIP/Domains/{domain}/Auth/Registrations/{tail}"),
        }
    }

    fn param(self) -> &'static str {
        if self.ip {
            "IpAccessControlListSid"
        } else {
            "CredentialListSid"
        }
    }

    /// The mapped lists of `domain` (those of this kind).
    fn lists(self, api: &TwilioApi, account: &Account, domain: &str) -> Vec<SipObjectRow> {
        (api.sip_domains.mapped(domain, self.what).into_iter())
            .filter_map(|sid| api.sip_domains.get(&account.sid, self.kind(), &sid))
            .collect()
    }

    fn resource(self, account: &Account, domain: &str, list: &SipObjectRow) -> Value {
        let (created, updated) = dates(list);
        let mut v = json!({
            "account_sid": account.api_sid(),
            "date_created": created,
            "date_updated": updated,
            "friendly_name": name_of(list),
            "sid": list.sid,
        });
        if self.what == MappedFor::Legacy {
            v["domain_sid"] = json!(domain);
            v["uri"] = json!(format!(
                "/2010-04-01/Accounts/{}/{}/{}.json",
                account.api_sid(),
                self.path(domain),
                list.sid
            ));
        }
        v
    }
}

pub(super) async fn mappings(
    api: TwilioApi,
    (account, domain_file): (String, String),
    headers: HeaderMap,
    query: Option<String>,
    m: Mappings,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = list.account.clone();
    let domain = find_domain(&api, &account, &domain_file)?;
    let rows = list.page_of(m.lists(&api, &account, &domain.sid));
    let path = format!("{}.json", m.path(&domain.sid));
    Ok(list.respond(
        m.key(),
        &path,
        rows,
        |r| r.sid.clone(),
        |r| m.resource(&account, &domain.sid, r),
    ))
}

pub(super) async fn mapping_create(
    api: TwilioApi,
    (account, domain_file): (String, String),
    headers: HeaderMap,
    body: String,
    m: Mappings,
) -> Result<Response, ApiError> {
    let account = authed!(api, headers, account);
    let domain = find_domain(&api, &account, &domain_file)?;
    let p = form(&body);
    let sid = param(&p, m.param()).unwrap_or_default();
    let list = (api.sip_domains.get(&account.sid, m.kind(), sid)).ok_or_else(|| {
        ApiError::bad_request(
            21231,
            format!("{} {sid} is not one of the account's lists", m.param()),
        )
    })?;
    // Registrations are authenticated by credentials alone.
    if m.ip && m.what == MappedFor::Registrations {
        return Err(ApiError::bad_request(
            21231,
            "Registrations are authenticated by credential lists",
        ));
    }
    match api
        .sip_domains
        .map(&account.sid, &domain.sid, m.what, &list.sid)
        .await
    {
        Ok(()) => {}
        Err(DirectoryError::Taken(_)) => {
            return Err(ApiError::bad_request(
                21231,
                format!("{} is already mapped to the domain", list.sid),
            ));
        }
        Err(e) => return Err(directory_error(e, "Mappings")),
    }
    in_force(&api).await;
    Ok((
        StatusCode::CREATED,
        Json(m.resource(&account, &domain.sid, &list)),
    )
        .into_response())
}

pub(super) async fn mapping_fetch(
    api: TwilioApi,
    (account, domain_file, file): (String, String, String),
    headers: HeaderMap,
    m: Mappings,
) -> Result<Json, ApiError> {
    let account = authed!(api, headers, account);
    let domain = find_domain(&api, &account, &domain_file)?;
    let sid = sid_of(&file);
    let list = (m.lists(&api, &account, &domain.sid).into_iter())
        .find(|l| l.sid == sid)
        .ok_or_else(|| ApiError::not_found(&format!("{}/{sid}.json", m.path(&domain.sid))))?;
    Ok(Json(m.resource(&account, &domain.sid, &list)))
}

pub(super) async fn mapping_delete(
    api: TwilioApi,
    (account, domain_file, file): (String, String, String),
    headers: HeaderMap,
    m: Mappings,
) -> Result<StatusCode, ApiError> {
    let account = authed!(api, headers, account);
    let domain = find_domain(&api, &account, &domain_file)?;
    let sid = sid_of(&file);
    (api.sip_domains
        .unmap(&account.sid, &domain.sid, m.what, sid)
        .await)
        .map_err(|e| directory_error(e, &format!("{}/{sid}.json", m.path(&domain.sid))))?;
    in_force(&api).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The form checks of the SIP API's own fields (`DomainName`, `IpAddress`,
/// `CidrPrefixLength`, a domain's settings), for the fuzz targets: how many passed.
pub(super) fn check_form(p: &[(String, String)]) -> u8 {
    let mut settings = DomainSettings::default();
    u8::from(domain_name(p).is_ok())
        + u8::from(ip_fields(p, None).is_ok())
        + u8::from(apply_domain(p, &mut settings).is_ok())
}
