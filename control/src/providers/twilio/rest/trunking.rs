//! Twilio's Elastic SIP Trunking API (`trunking.twilio.com/v1`) on the neutral trunk service
//! ([`SipTrunks`]): Trunks, their OriginationUrls, the CredentialLists and
//! IpAccessControlLists that admit their termination traffic (the SIP API's lists, shared with
//! SIP domains), and the PhoneNumbers whose calls they take. Requests name no account: the
//! Basic credentials' account is the one acted for. Lists are v1 pages (`meta`).

use super::json::{Json, form, method, param};
use super::numbers;
use super::sip::flag;
use super::{ApiError, TwilioApi};
use crate::infra::accounts::Account;
use crate::infra::store::sip_directory::SipObjectRow;
use crate::services::directory::sip_domains::{DirectoryError, Kind};
use crate::services::directory::sip_trunks::{
    MAX_TRUNKS, MAX_URLS, OriginationUrl, SipTrunks, TrunkSettings, sip_url_target,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const MAX_NAME: usize = 64;

/// The account whose credentials the request carries.
fn account_of(api: &TwilioApi, headers: &HeaderMap) -> Result<Account, ApiError> {
    crate::infra::http::basic_credentials(headers)
        .and_then(|(user, password)| api.directory.by_credentials(&user, &password))
        .map(|(account, _)| account)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate"))
}

/// Where links point: the host the client reached, as the SDKs follow `next_page_url`.
fn origin(headers: &HeaderMap) -> String {
    let host = (headers.get("host").and_then(|h| h.to_str().ok()))
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("trunking.twilio.com");
    let https = (headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok()))
        == Some("https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// ISO 8601 to the second, as v1 resources date themselves.
fn date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The SIP API's errors, but for a taken domain: Twilio's trunks have their own code.
fn directory_error(e: DirectoryError, what: &str) -> ApiError {
    let mut error = super::sip::directory_error(e, what);
    if error.code == 21232 {
        error.code = 21248;
    }
    error
}

/// A v1 page of `rows` under `key`: `Page`/`PageSize` as the other lists take them.
fn page(
    headers: &HeaderMap,
    query: Option<String>,
    (key, path): (&str, &str),
    rows: Vec<SipObjectRow>,
    render: impl Fn(&SipObjectRow) -> Value,
) -> Result<Json, ApiError> {
    let q = form(query.as_deref().unwrap_or_default());
    let (page, size) = super::json::paging(&q).map_err(|e| ApiError::bad_request(20001, e))?;
    let start = (page * size) as usize;
    let more = rows.len() > start + size as usize;
    let items: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(size as usize)
        .map(render)
        .collect();
    let base = format!("{}/v1/{path}", origin(headers));
    let at = |n: i64| format!("{base}?PageSize={size}&Page={n}");
    let mut body = json!({
        "meta": {
            "first_page_url": at(0),
            "key": key,
            "next_page_url": more.then(|| at(page + 1)),
            "page": page,
            "page_size": size,
            "previous_page_url": (page > 0).then(|| at(page - 1)),
            "url": at(page),
        }
    });
    body[key] = Value::Array(items);
    Ok(Json(body))
}

/// After a change: the trunks (and the SIP logins, the lists being shared) in force.
async fn in_force(api: &TwilioApi) {
    api.sip_trunks.publish().await;
    let _ = api.sip_logins.publish().await;
}

/// A form through the trunk and origination URL checks (for the fuzz targets): how many
/// passed.
pub(super) fn check_form(p: &[(String, String)]) -> usize {
    let mut settings = TrunkSettings::default();
    usize::from(apply_trunk(p, &mut settings).is_ok())
        + usize::from(apply_recording(p, &mut settings).is_ok())
        + usize::from(apply_url(p, None).is_ok())
}

fn sid_of(file: &str) -> &str {
    file.trim_end_matches(".json")
}

// ---- Trunks ----

fn trunk_resource(api: &TwilioApi, headers: &HeaderMap, row: &SipObjectRow) -> Value {
    let s = SipTrunks::settings(row);
    let url = format!("{}/v1/Trunks/{}", origin(headers), row.sid);
    let given = api.sip_trunks.given(&row.account_sid, &row.sid, false);
    let mut auth = Vec::new();
    if given.iter().any(|m| m.body.starts_with("AL")) {
        auth.push("IP_ACL");
    }
    if given.iter().any(|m| m.body.starts_with("CL")) {
        auth.push("CREDENTIAL_LIST");
    }
    json!({
        "account_sid": row.account_sid,
        "auth_type": if auth.is_empty() { Value::Null } else { Value::from(auth.join(",")) },
        "auth_type_set": auth,
        "cnam_lookup_enabled": false,
        "date_created": date(row.created_at),
        "date_updated": date(row.updated_at),
        "disaster_recovery_method": null,
        "disaster_recovery_url": null,
        "domain_name": s.domain_name,
        "friendly_name": s.friendly_name,
        "links": {
            "credential_lists": format!("{url}/CredentialLists"),
            "ip_access_control_lists": format!("{url}/IpAccessControlLists"),
            "origination_urls": format!("{url}/OriginationUrls"),
            "phone_numbers": format!("{url}/PhoneNumbers"),
            "recordings": format!("{url}/Recording"),
        },
        "recording": recording_of(&s),
        "secure": s.secure,
        "sid": row.sid,
        "symmetric_rtp_enabled": false,
        "transfer_caller_id": s.transfer_caller_id.as_deref().unwrap_or("from-transferee"),
        "transfer_mode": "disable-all",
        "url": url,
    })
}

/// A termination domain: letters, digits and `-` in labels, ending in `pstn.twilio.com` (or a
/// regional `pstn.<region>.twilio.com`); empty clears it.
fn domain_name(raw: &str) -> Result<Option<String>, ApiError> {
    let name = raw.to_ascii_lowercase();
    if name.is_empty() {
        return Ok(None);
    }
    let labels: Vec<&str> = name.split('.').collect();
    let pstn = labels.iter().rposition(|l| *l == "pstn");
    let tail_good = match (pstn, labels.len()) {
        (Some(i), n) if i >= 1 && n >= i + 3 => labels[n - 2..] == ["twilio", "com"] && n - i <= 4,
        _ => false,
    };
    let good = tail_good
        && name.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !good {
        return Err(ApiError::bad_request(
            21245,
            format!(
                "The domain name '{name}' is invalid: letters, digits and '-', ending with pstn.twilio.com"
            ),
        ));
    }
    Ok(Some(name))
}

/// Applies a form's trunk fields (those given). What Switchboard does not do is refused, not
/// kept: a disaster recovery URL, CNAM lookups, transfers by REFER.
fn apply_trunk(p: &[(String, String)], s: &mut TrunkSettings) -> Result<(), ApiError> {
    if let Some(n) = param(p, "FriendlyName") {
        if n.chars().count() > MAX_NAME {
            return Err(ApiError::bad_request(
                21201,
                format!("FriendlyName is at most {MAX_NAME} characters"),
            ));
        }
        s.friendly_name = Some(n.to_owned());
    }
    if let Some(d) = param(p, "DomainName") {
        s.domain_name = domain_name(d)?;
    }
    if let Some(on) = flag(p, "Secure")? {
        s.secure = on;
    }
    if param(p, "DisasterRecoveryMethod").is_some() {
        method(p, "DisasterRecoveryMethod")?;
    }
    if param(p, "DisasterRecoveryUrl").is_some_and(|u| !u.is_empty()) {
        return Err(ApiError::bad_request(
            21231,
            "DisasterRecoveryUrl is not served by Switchboard",
        ));
    }
    if flag(p, "CnamLookupEnabled")? == Some(true) {
        return Err(ApiError::bad_request(
            21231,
            "CnamLookupEnabled=true is not served by Switchboard",
        ));
    }
    match param(p, "TransferMode") {
        None | Some("disable-all") => {}
        Some(m @ ("enable-all" | "sip-only")) => {
            return Err(ApiError::bad_request(
                21231,
                format!("TransferMode {m} is not served by Switchboard"),
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                21201,
                format!("TransferMode is disable-all, enable-all or sip-only, not {other}"),
            ));
        }
    }
    match param(p, "TransferCallerId") {
        None => {}
        Some(v @ ("from-transferee" | "from-transferor")) => {
            s.transfer_caller_id = Some(v.to_owned());
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                21201,
                format!("TransferCallerId is from-transferee or from-transferor, not {other}"),
            ));
        }
    }
    Ok(())
}

/// A trunk's row name: its domain, or its SID's place-holder until it has one (names are
/// unique among trunks, so two trunks without a domain each need their own).
fn row_name(s: &TrunkSettings) -> String {
    s.domain_name.clone().unwrap_or_default()
}

fn find_trunk(api: &TwilioApi, account: &Account, file: &str) -> Result<SipObjectRow, ApiError> {
    let sid = sid_of(file);
    (api.sip_domains.get(&account.sid, Kind::Trunk, sid))
        .ok_or_else(|| ApiError::not_found(&format!("/v1/Trunks/{sid}")))
}

pub(super) async fn trunks(
    State(api): State<TwilioApi>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let rows = api.sip_domains.list(&account.sid, Kind::Trunk, "");
    page(&headers, query, ("trunks", "Trunks"), rows, |r| {
        trunk_resource(&api, &headers, r)
    })
}

pub(super) async fn trunk_create(
    State(api): State<TwilioApi>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = account_of(&api, &headers)?;
    let p = form(&body);
    let mut settings = TrunkSettings::default();
    apply_trunk(&p, &mut settings)?;
    let fields = serde_json::to_string(&settings).map_err(ApiError::internal)?;
    let row = (api.sip_domains)
        .add(
            &account.sid,
            (Kind::Trunk, ""),
            &row_name(&settings),
            fields,
            MAX_TRUNKS,
        )
        .await
        .map_err(|e| directory_error(e, "/v1/Trunks"))?;
    in_force(&api).await;
    let body = trunk_resource(&api, &headers, &row);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn trunk_fetch(
    State(api): State<TwilioApi>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let row = find_trunk(&api, &account, &file)?;
    Ok(Json(trunk_resource(&api, &headers, &row)))
}

pub(super) async fn trunk_update(
    State(api): State<TwilioApi>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let row = find_trunk(&api, &account, &file)?;
    let p = form(&body);
    let mut settings = SipTrunks::settings(&row);
    apply_trunk(&p, &mut settings)?;
    let fields = serde_json::to_string(&settings).map_err(ApiError::internal)?;
    let name = match row_name(&settings) {
        n if n.is_empty() => row.sid.clone(),
        n => n,
    };
    let row = (api.sip_domains.update(&row, &name, fields).await)
        .map_err(|e| directory_error(e, "/v1/Trunks"))?;
    in_force(&api).await;
    Ok(Json(trunk_resource(&api, &headers, &row)))
}

pub(super) async fn trunk_delete(
    State(api): State<TwilioApi>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = account_of(&api, &headers)?;
    let row = find_trunk(&api, &account, &file)?;
    (api.sip_domains.delete(&account.sid, &row.sid).await)
        .map_err(|e| directory_error(e, &row.sid))?;
    in_force(&api).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- Recording ----

/// A trunk's `Recording`: `mode` and `trim`.
fn recording_of(s: &TrunkSettings) -> Value {
    json!({
        "mode": s.recording_mode.as_deref().unwrap_or("do-not-record"),
        "trim": s.recording_trim.as_deref().unwrap_or("do-not-trim"),
    })
}

/// Applies `Mode` and `Trim`: recording from the answer, mono or dual, trimmed or not.
/// Recording from the ringing is refused: Switchboard records a call from its answer.
fn apply_recording(p: &[(String, String)], s: &mut TrunkSettings) -> Result<(), ApiError> {
    match param(p, "Mode") {
        None => {}
        Some(m @ ("do-not-record" | "record-from-answer" | "record-from-answer-dual")) => {
            s.recording_mode = Some(m.to_owned());
        }
        Some(m @ ("record-from-ringing" | "record-from-ringing-dual")) => {
            return Err(ApiError::bad_request(
                21231,
                format!("Mode {m} is not served by Switchboard: it records from the answer"),
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                21201,
                format!("Mode {other} is not a recording mode"),
            ));
        }
    }
    match param(p, "Trim") {
        None => {}
        Some(t @ ("do-not-trim" | "trim-silence")) => s.recording_trim = Some(t.to_owned()),
        Some(other) => {
            return Err(ApiError::bad_request(
                21201,
                format!("Trim is do-not-trim or trim-silence, not {other}"),
            ));
        }
    }
    Ok(())
}

pub(super) async fn recording_fetch(
    State(api): State<TwilioApi>,
    Path(trunk): Path<String>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let row = find_trunk(&api, &account, &trunk)?;
    Ok(Json(recording_of(&SipTrunks::settings(&row))))
}

pub(super) async fn recording_update(
    State(api): State<TwilioApi>,
    Path(trunk): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let row = find_trunk(&api, &account, &trunk)?;
    let mut settings = SipTrunks::settings(&row);
    apply_recording(&form(&body), &mut settings)?;
    let fields = serde_json::to_string(&settings).map_err(ApiError::internal)?;
    let row = (api.sip_domains.update(&row, &row.name, fields).await)
        .map_err(|e| directory_error(e, "/v1/Trunks"))?;
    in_force(&api).await;
    Ok(Json(recording_of(&SipTrunks::settings(&row))))
}

// ---- OriginationUrls ----

fn url_resource(headers: &HeaderMap, row: &SipObjectRow) -> Value {
    let u = SipTrunks::origination_url(row);
    json!({
        "account_sid": row.account_sid,
        "date_created": date(row.created_at),
        "date_updated": date(row.updated_at),
        "enabled": u.as_ref().map(|u| u.enabled),
        "friendly_name": u.as_ref().map(|u| u.friendly_name.clone()),
        "priority": u.as_ref().map(|u| u.priority),
        "sid": row.sid,
        "sip_url": u.as_ref().map(|u| u.sip_url.clone()),
        "trunk_sid": row.parent,
        "url": format!("{}/v1/Trunks/{}/OriginationUrls/{}", origin(headers), row.parent, row.sid),
        "weight": u.as_ref().map(|u| u.weight),
    })
}

/// An origination URL's fields from a form over `earlier` (every field is required at
/// creation, as Twilio's are).
fn apply_url(
    p: &[(String, String)],
    earlier: Option<OriginationUrl>,
) -> Result<OriginationUrl, ApiError> {
    let need = |key: &str| {
        param(p, key).map(str::to_owned).ok_or_else(|| {
            ApiError::bad_request(21201, format!("Required parameter {key} missing"))
        })
    };
    let number = |key: &str, min: u16| -> Result<Option<u16>, ApiError> {
        param(p, key)
            .map(|v| {
                v.parse::<u16>().ok().filter(|n| *n >= min).ok_or_else(|| {
                    ApiError::bad_request(21201, format!("{key} is {min} to 65535, not {v}"))
                })
            })
            .transpose()
    };
    let mut u = match earlier {
        Some(u) => u,
        None => OriginationUrl {
            friendly_name: need("FriendlyName")?,
            sip_url: need("SipUrl")?,
            priority: number("Priority", 0)?.ok_or_else(|| {
                ApiError::bad_request(21201, "Required parameter Priority missing")
            })?,
            weight: number("Weight", 1)?
                .ok_or_else(|| ApiError::bad_request(21201, "Required parameter Weight missing"))?,
            enabled: flag(p, "Enabled")?.ok_or_else(|| {
                ApiError::bad_request(21201, "Required parameter Enabled missing")
            })?,
        },
    };
    if let Some(n) = param(p, "FriendlyName") {
        u.friendly_name = n.to_owned();
    }
    if u.friendly_name.chars().count() > MAX_NAME {
        return Err(ApiError::bad_request(
            21201,
            format!("FriendlyName is at most {MAX_NAME} characters"),
        ));
    }
    if let Some(s) = param(p, "SipUrl") {
        u.sip_url = s.to_owned();
    }
    if u.sip_url.len() > 255 || sip_url_target(&u.sip_url).is_none() {
        return Err(ApiError::bad_request(
            21201,
            format!("SipUrl {} is no sip: or sips: URL", u.sip_url),
        ));
    }
    if let Some(n) = number("Priority", 0)? {
        u.priority = n;
    }
    if let Some(n) = number("Weight", 1)? {
        u.weight = n;
    }
    if let Some(on) = flag(p, "Enabled")? {
        u.enabled = on;
    }
    Ok(u)
}

fn find_url(
    api: &TwilioApi,
    account: &Account,
    (trunk, file): (&str, &str),
) -> Result<SipObjectRow, ApiError> {
    let sid = sid_of(file);
    (api.sip_domains.get(&account.sid, Kind::OriginationUrl, sid))
        .filter(|r| r.parent == trunk)
        .ok_or_else(|| ApiError::not_found(&format!("/v1/Trunks/{trunk}/OriginationUrls/{sid}")))
}

pub(super) async fn urls(
    State(api): State<TwilioApi>,
    Path(trunk): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let trunk = find_trunk(&api, &account, &trunk)?;
    let rows = (api.sip_domains).list(&account.sid, Kind::OriginationUrl, &trunk.sid);
    let path = format!("Trunks/{}/OriginationUrls", trunk.sid);
    page(&headers, query, ("origination_urls", &path), rows, |r| {
        url_resource(&headers, r)
    })
}

pub(super) async fn url_create(
    State(api): State<TwilioApi>,
    Path(trunk): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = account_of(&api, &headers)?;
    let trunk = find_trunk(&api, &account, &trunk)?;
    let u = apply_url(&form(&body), None)?;
    let fields = serde_json::to_string(&u).map_err(ApiError::internal)?;
    let row = (api.sip_domains)
        .add(
            &account.sid,
            (Kind::OriginationUrl, &trunk.sid),
            "",
            fields,
            MAX_URLS,
        )
        .await
        .map_err(|e| directory_error(e, "OriginationUrls"))?;
    in_force(&api).await;
    Ok((StatusCode::CREATED, Json(url_resource(&headers, &row))).into_response())
}

pub(super) async fn url_fetch(
    State(api): State<TwilioApi>,
    Path((trunk, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let row = find_url(&api, &account, (&trunk, &file))?;
    Ok(Json(url_resource(&headers, &row)))
}

pub(super) async fn url_update(
    State(api): State<TwilioApi>,
    Path((trunk, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let row = find_url(&api, &account, (&trunk, &file))?;
    let u = apply_url(&form(&body), SipTrunks::origination_url(&row))?;
    let fields = serde_json::to_string(&u).map_err(ApiError::internal)?;
    let row = (api.sip_domains.update(&row, &row.name, fields).await)
        .map_err(|e| directory_error(e, "OriginationUrls"))?;
    in_force(&api).await;
    Ok(Json(url_resource(&headers, &row)))
}

pub(super) async fn url_delete(
    State(api): State<TwilioApi>,
    Path((trunk, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = account_of(&api, &headers)?;
    let row = find_url(&api, &account, (&trunk, &file))?;
    (api.sip_domains.delete(&account.sid, &row.sid).await)
        .map_err(|e| directory_error(e, &row.sid))?;
    in_force(&api).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- What a trunk is given: CredentialLists, IpAccessControlLists, PhoneNumbers ----

/// One kind of thing a trunk is given, served by the same handlers.
#[derive(Clone, Copy)]
pub(super) struct Given {
    /// The path segment, and the list's key.
    pub(super) segment: &'static str,
    key: &'static str,
    /// The form field naming what is given, and its SID prefix.
    field: &'static str,
    prefix: &'static str,
}

pub(super) const CREDENTIAL_LISTS: Given = Given {
    segment: "CredentialLists",
    key: "credential_lists",
    field: "CredentialListSid",
    prefix: "CL",
};

pub(super) const IP_ACLS: Given = Given {
    segment: "IpAccessControlLists",
    key: "ip_access_control_lists",
    field: "IpAccessControlListSid",
    prefix: "AL",
};

pub(super) const PHONE_NUMBERS: Given = Given {
    segment: "PhoneNumbers",
    key: "phone_numbers",
    field: "PhoneNumberSid",
    prefix: "PN",
};

impl Given {
    fn numbers(self) -> bool {
        self.prefix == "PN"
    }

    /// What the trunk was given of this kind, as mappings.
    fn mappings(self, api: &TwilioApi, account: &Account, trunk: &str) -> Vec<SipObjectRow> {
        (api.sip_trunks
            .given(&account.sid, trunk, self.numbers())
            .into_iter())
        .filter(|m| m.body.starts_with(self.prefix))
        .collect()
    }

    /// The resource of what mapping `m` gives (`None`: it no longer exists).
    fn resource(
        self,
        api: &TwilioApi,
        headers: &HeaderMap,
        account: &Account,
        m: &SipObjectRow,
    ) -> Option<Value> {
        let url = format!(
            "{}/v1/Trunks/{}/{}/{}",
            origin(headers),
            m.parent,
            self.segment,
            m.body
        );
        if self.numbers() {
            let row = api.apps.numbers.by_sid(&account.sid, &m.body)?;
            let mut v = numbers::resource(api, &row, account.api_sid());
            v["trunk_sid"] = Value::from(m.parent.clone());
            v["url"] = Value::from(url.clone());
            v["links"] = json!({"phone_number": url});
            v["date_created"] = Value::from(date(row.created_at));
            v["date_updated"] = Value::from(date(row.updated_at));
            return Some(v);
        }
        let kind = if self.prefix == "CL" {
            Kind::CredentialList
        } else {
            Kind::IpAcl
        };
        let list = api.sip_domains.get(&account.sid, kind, &m.body)?;
        let name = serde_json::from_str::<Value>(&list.body)
            .ok()
            .and_then(|b| b.get("friendly_name").cloned())
            .unwrap_or(Value::Null);
        Some(json!({
            "account_sid": account.sid,
            "date_created": date(m.created_at),
            "date_updated": date(m.updated_at),
            "friendly_name": name,
            "sid": list.sid,
            "trunk_sid": m.parent,
            "url": url,
        }))
    }

    fn not_found(self, trunk: &str, sid: &str) -> ApiError {
        ApiError::not_found(&format!("/v1/Trunks/{trunk}/{}/{sid}", self.segment))
    }
}

pub(super) async fn given(
    api: TwilioApi,
    trunk: String,
    headers: HeaderMap,
    query: Option<String>,
    g: Given,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let trunk = find_trunk(&api, &account, &trunk)?;
    let rows: Vec<SipObjectRow> = (g.mappings(&api, &account, &trunk.sid).into_iter())
        .filter(|m| g.resource(&api, &headers, &account, m).is_some())
        .collect();
    let path = format!("Trunks/{}/{}", trunk.sid, g.segment);
    page(&headers, query, (g.key, &path), rows, |m| {
        (g.resource(&api, &headers, &account, m)).unwrap_or(Value::Null)
    })
}

pub(super) async fn give(
    api: TwilioApi,
    trunk: String,
    headers: HeaderMap,
    body: String,
    g: Given,
) -> Result<Response, ApiError> {
    let account = account_of(&api, &headers)?;
    let trunk = find_trunk(&api, &account, &trunk)?;
    let p = form(&body);
    let sid = param(&p, g.field)
        .ok_or_else(|| {
            ApiError::bad_request(21201, format!("Required parameter {} missing", g.field))
        })?
        .to_owned();
    // Only the account's own list or number: another's is as unknown as one that never was.
    let exists = if g.numbers() {
        api.apps.numbers.by_sid(&account.sid, &sid).is_some()
    } else {
        let kind = if g.prefix == "CL" {
            Kind::CredentialList
        } else {
            Kind::IpAcl
        };
        sid.starts_with(g.prefix) && api.sip_domains.get(&account.sid, kind, &sid).is_some()
    };
    if !exists {
        return Err(ApiError::bad_request(
            21201,
            format!("{} {sid} is not one of this account's", g.field),
        ));
    }
    (api.sip_trunks.give(&account.sid, &trunk.sid, &sid).await)
        .map_err(|e| directory_error(e, g.segment))?;
    in_force(&api).await;
    let m = (g.mappings(&api, &account, &trunk.sid).into_iter())
        .find(|m| m.body == sid)
        .ok_or_else(|| g.not_found(&trunk.sid, &sid))?;
    let body =
        (g.resource(&api, &headers, &account, &m)).ok_or_else(|| g.not_found(&trunk.sid, &sid))?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn given_one(
    api: TwilioApi,
    (trunk, file): (String, String),
    headers: HeaderMap,
    g: Given,
) -> Result<Json, ApiError> {
    let account = account_of(&api, &headers)?;
    let trunk = find_trunk(&api, &account, &trunk)?;
    let sid = sid_of(&file);
    (g.mappings(&api, &account, &trunk.sid).into_iter())
        .find(|m| m.body == sid)
        .and_then(|m| g.resource(&api, &headers, &account, &m))
        .map(Json)
        .ok_or_else(|| g.not_found(&trunk.sid, sid))
}

pub(super) async fn take_back(
    api: TwilioApi,
    (trunk, file): (String, String),
    headers: HeaderMap,
    g: Given,
) -> Result<StatusCode, ApiError> {
    let account = account_of(&api, &headers)?;
    let trunk = find_trunk(&api, &account, &trunk)?;
    let sid = sid_of(&file);
    if !(g.mappings(&api, &account, &trunk.sid).iter()).any(|m| m.body == sid) {
        return Err(g.not_found(&trunk.sid, sid));
    }
    (api.sip_trunks
        .take_back(&account.sid, &trunk.sid, sid)
        .await)
        .map_err(|e| directory_error(e, g.segment))?;
    in_force(&api).await;
    Ok(StatusCode::NO_CONTENT)
}
