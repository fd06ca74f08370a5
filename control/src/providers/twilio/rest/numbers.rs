//! The IncomingPhoneNumbers resource: an account claims a number its trunks deliver (create),
//! points it at an application (update `VoiceUrl`, `VoiceMethod`, `VoiceFallbackUrl`,
//! `StatusCallback`, …), lists, fetches and releases it (delete). A change takes effect on the
//! next call to the number.

use super::available_numbers as available_numbers_rest;
use super::json::{Json, form, method, param, url};
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::infra::accounts::{HttpMethod, Number, formatted_number};
use crate::infra::clock::now_ms;
use crate::infra::sid::{is_sid, new_sid};
use crate::infra::store::PhoneNumberRow;
use crate::markup::rfc2822;
use crate::services::directory::available_numbers::{self, Kind};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn number_uri(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{sid}.json")
}

/// An IncomingPhoneNumber resource with every field the SDKs read. Numbers here carry voice
/// only: no messaging, fax, emergency or regulatory features.
/// `trunk_sid` is the Elastic SIP Trunk the number is given to (its calls go there).
pub(super) fn resource(api: &TwilioApi, row: &PhoneNumberRow, account: &str) -> Value {
    let n = &row.number;
    let trunk_sid = api.sip_trunks.trunk_of_number(&n.account_sid, &row.sid);
    let kind = available_numbers::kind_of(&n.phone_number);
    json!({
        "account_sid": account,
        "address_requirements": "none",
        "address_sid": null,
        "api_version": "2010-04-01",
        "beta": false,
        "bundle_sid": null,
        "capabilities": {"voice": true, "sms": false, "mms": false, "fax": false},
        "date_created": rfc2822(row.created_at),
        "date_updated": rfc2822(row.updated_at),
        "emergency_address_sid": null,
        "emergency_address_status": "unregistered",
        "emergency_status": "Inactive",
        "friendly_name": row.friendly_name,
        "identity_sid": null,
        "origin": "twilio",
        "phone_number": n.phone_number,
        "sid": row.sid,
        "sms_application_sid": null,
        "sms_fallback_method": "POST",
        "sms_fallback_url": null,
        "sms_method": "POST",
        "sms_url": null,
        "status": "in-use",
        "status_callback": n.status_callback,
        "status_callback_method": n.status_callback_method.as_str(),
        "subresource_uris": {
            "assigned_add_ons": format!(
                "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{}/AssignedAddOns.json",
                row.sid
            ),
        },
        "trunk_sid": trunk_sid,
        "type": match kind {
            Kind::Local => "local",
            Kind::TollFree => "toll-free",
            Kind::Mobile => "mobile",
        },
        "uri": number_uri(account, &row.sid),
        "voice_application_sid": n.connection_id.as_deref().filter(|c| c.starts_with("AP")),
        "voice_caller_id_lookup": false,
        "voice_fallback_method": n.voice_fallback_method.as_str(),
        "voice_fallback_url": n.voice_fallback_url,
        "voice_method": n.voice_method.as_str(),
        "voice_receive_mode": "voice",
        "voice_url": n.voice_url,
    })
}

/// IncomingPhoneNumbers' parameters not carried out here (regulatory records, emergency
/// calling, messaging applications, fax).
const UNSERVED: &[&str] = &[
    "AddressSid",
    "BundleSid",
    "EmergencyAddressSid",
    "EmergencyStatus",
    "IdentitySid",
    "SmsApplicationSid",
];

/// Applies the voice settings a create or update names; those it leaves out stay.
fn apply(p: &[(String, String)], row: &mut PhoneNumberRow) -> Result<(), ApiError> {
    super::json::refuse_unserved(p, UNSERVED)?;
    if param(p, "VoiceReceiveMode").is_some_and(|m| !m.is_empty() && m != "voice") {
        return Err(ApiError::bad_request(
            20001,
            "VoiceReceiveMode fax is not supported by Switchboard",
        ));
    }
    let given = |name: &str| param(p, name).is_some();
    let n = &mut row.number;
    for (name, field) in [
        ("VoiceUrl", &mut n.voice_url),
        ("VoiceFallbackUrl", &mut n.voice_fallback_url),
        ("StatusCallback", &mut n.status_callback),
    ] {
        if given(name) {
            *field = url(p, name)?;
        }
    }
    for (name, field) in [
        ("VoiceMethod", &mut n.voice_method),
        ("VoiceFallbackMethod", &mut n.voice_fallback_method),
        ("StatusCallbackMethod", &mut n.status_callback_method),
    ] {
        if given(name) {
            *field = method(p, name)?;
        }
    }
    if let Some(name) = param(p, "FriendlyName") {
        if name.chars().count() > 64 {
            return Err(ApiError::bad_request(
                20001,
                "FriendlyName must be at most 64 characters",
            ));
        }
        row.friendly_name = name.to_owned();
    }
    // No caller-name database is looked up here (Twilio's CNAM lookups).
    if param(p, "VoiceCallerIdLookup").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(ApiError::bad_request(
            21231,
            "VoiceCallerIdLookup=true is not served by Switchboard",
        ));
    }
    Ok(())
}

/// `TrunkSid`: the number is given to that Elastic SIP Trunk of its account (its calls go
/// there, its voice settings aside), as the trunk's PhoneNumbers would; empty, taken back.
async fn give_to_trunk(
    api: &TwilioApi,
    p: &[(String, String)],
    row: &PhoneNumberRow,
) -> Result<(), ApiError> {
    let Some(trunk) = param(p, "TrunkSid") else {
        return Ok(());
    };
    let account = &row.number.account_sid;
    let held = api.sip_trunks.trunk_of_number(account, &row.sid);
    let changed = if trunk.is_empty() {
        match held {
            Some(t) => (api.sip_trunks.take_back(account, &t, &row.sid).await)
                .map_err(|e| ApiError::bad_request(20001, e.to_string()))
                .map(|()| true)?,
            None => false,
        }
    } else {
        let kind = crate::services::directory::sip_domains::Kind::Trunk;
        if api.sip_domains.get(account, kind, trunk).is_none() {
            return Err(ApiError::bad_request(
                20001,
                format!("Invalid TrunkSid: {trunk}"),
            ));
        }
        if held.as_deref() == Some(trunk) {
            false
        } else {
            (api.sip_trunks.give(account, trunk, &row.sid).await)
                .map_err(|e| ApiError::bad_request(20001, e.to_string()))?;
            true
        }
    };
    if changed {
        api.sip_trunks.publish().await;
    }
    Ok(())
}

/// `VoiceApplicationSid`: the number's calls run that App of its account (its voice settings
/// set the number's own aside); empty, they run the number's own again.
fn apply_application(
    api: &TwilioApi,
    p: &[(String, String)],
    row: &mut PhoneNumberRow,
) -> Result<(), ApiError> {
    let Some(sid) = param(p, "VoiceApplicationSid") else {
        return Ok(());
    };
    let n = &mut row.number;
    if sid.is_empty() {
        if n.connection_id
            .as_deref()
            .is_some_and(|c| c.starts_with("AP"))
        {
            n.connection_id = None;
        }
        return Ok(());
    }
    let app = (api.connections.get(&n.account_sid, sid))
        .filter(|r| r.connection.kind() == crate::infra::accounts::ConnectionKind::TwimlApp);
    if app.is_none() {
        return Err(ApiError::bad_request(21218, "Invalid VoiceApplicationSid"));
    }
    n.connection_id = Some(sid.to_owned());
    Ok(())
}

/// E.164: a `+` and 2 to 15 digits.
fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    create_of(&api, account, &body, None).await
}

/// Claims a number (`PhoneNumber`, or the first the operator's grants leave in `AreaCode`);
/// under `…/Local.json` or `…/TollFree.json`, one of that `kind`.
async fn create_of(
    api: &TwilioApi,
    account: crate::infra::accounts::Account,
    body: &str,
    kind: Option<Kind>,
) -> Result<Response, ApiError> {
    let p = form(body);
    let picked;
    let phone_number = match (param(&p, "PhoneNumber"), param(&p, "AreaCode")) {
        (Some(n), _) if !n.is_empty() => n,
        (_, Some(code)) if !code.is_empty() => {
            let found = match code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
                true => available_numbers_rest::by_area_code(api, &account, code, kind).await?,
                false => None,
            };
            picked = found.ok_or_else(|| {
                ApiError::bad_request(21452, format!("No phone numbers found in area code {code}"))
            })?;
            picked.as_str()
        }
        _ => {
            return Err(ApiError::bad_request(
                21201,
                "Required parameter PhoneNumber or AreaCode missing",
            ));
        }
    };
    if !is_e164(phone_number) {
        return Err(ApiError::bad_request(
            21421,
            format!("PhoneNumber is invalid: {phone_number}"),
        ));
    }
    if kind.is_some_and(|k| available_numbers::kind_of(phone_number) != k) {
        return Err(ApiError::bad_request(
            21421,
            format!("PhoneNumber {phone_number} is not of this resource's type"),
        ));
    }
    // A number outside the operator's grant is answered as a taken one is: the account learns
    // nothing of who else may hold it.
    let allowed =
        (api.apps.numbers.may_claim(&account, phone_number).await).map_err(ApiError::internal)?;
    if !allowed {
        return Err(ApiError::bad_request(
            21422,
            format!("PhoneNumber {phone_number} is not available"),
        ));
    }
    let now = now_ms();
    let mut row = PhoneNumberRow {
        sid: new_sid("PN"),
        friendly_name: formatted_number(phone_number),
        number: Number {
            phone_number: phone_number.to_owned(),
            account_sid: account.sid.clone(),
            voice_url: None,
            voice_method: HttpMethod::Post,
            voice_fallback_url: None,
            voice_fallback_method: HttpMethod::Post,
            status_callback: None,
            status_callback_method: HttpMethod::Post,
            connection_id: None,
        },
        created_at: now,
        updated_at: now,
    };
    apply(&p, &mut row)?;
    apply_application(api, &p, &mut row)?;
    let numbers = &api.apps.numbers;
    if !numbers.add(row.clone()).await.map_err(ApiError::internal)? {
        return Err(ApiError::bad_request(
            21422,
            format!("PhoneNumber {phone_number} is not available"),
        ));
    }
    api.apps.number_changed(&row.number);
    Ok((
        StatusCode::CREATED,
        Json(resource(api, &row, account.api_sid())),
    )
        .into_response())
}

/// The account's number a `{sid}.json` path names.
fn find(api: &TwilioApi, account: &str, file: &str) -> Result<PhoneNumberRow, ApiError> {
    file.strip_suffix(".json")
        .filter(|s| is_sid(s, "PN"))
        .and_then(|sid| api.apps.numbers.by_sid(account, sid))
        .ok_or_else(|| ApiError::not_found(&number_uri(account, file.trim_end_matches(".json"))))
}

/// `GET …/IncomingPhoneNumbers/{sid}.json`, or the list of a kind (`…/Local.json`).
pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    if let Some(kind) = available_numbers_rest::kind_path(&file) {
        return list_of(&api, &account, &headers, query, Some(kind));
    }
    let account = authenticate(&api.directory, &headers, &account)?;
    Ok(Json(resource(
        &api,
        &find(&api, &account.sid, &file)?,
        account.api_sid(),
    )))
}

/// `POST …/IncomingPhoneNumbers/{sid}.json`, or a claim of a kind (`…/Local.json`).
pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    if let Some(kind) = available_numbers_rest::kind_path(&file) {
        return create_of(&api, account, &body, Some(kind)).await;
    }
    let mut row = find(&api, &account.sid, &file)?;
    let p = form(&body);
    // A number moves between a main account and its subaccounts, asked with the main
    // account's credentials, as Twilio's do.
    if let Some(to) = param(&p, "AccountSid").filter(|a| *a != account.sid) {
        let caller = crate::infra::http::basic_credentials(&headers)
            .and_then(|(user, password)| api.directory.by_credentials(&user, &password))
            .map(|(a, _)| a.sid);
        let family = |sid: &str| {
            caller
                .as_deref()
                .is_some_and(|c| sid == c || api.directory.owner_of(sid).as_deref() == Some(c))
        };
        if !(family(&account.sid) && family(to) && api.directory.account(to).is_some()) {
            return Err(ApiError::bad_request(
                20001,
                "A number moves only between an account and its subaccounts, asked by the account",
            ));
        }
        row.number.account_sid = to.to_owned();
    }
    apply(&p, &mut row)?;
    apply_application(&api, &p, &mut row)?;
    give_to_trunk(&api, &p, &row).await?;
    row.updated_at = now_ms();
    api.apps
        .numbers
        .update(row.clone())
        .await
        .map_err(ApiError::internal)?;
    api.apps.number_changed(&row.number);
    let holder = (api.directory.account(&row.number.account_sid))
        .map_or(row.number.account_sid.clone(), |a| a.api_sid().to_owned());
    Ok(Json(resource(&api, &row, &holder)).into_response())
}

pub(super) async fn delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let row = find(&api, &account.sid, &file)?;
    api.apps
        .numbers
        .remove(&row.sid)
        .await
        .map_err(ApiError::internal)?;
    api.control.release_number(&row.number.phone_number);
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a stored number matches a `PhoneNumber` filter: a part of the number, where `*`
/// stands for any digit.
fn matches_pattern(number: &str, pattern: &str) -> bool {
    let pattern = pattern.as_bytes();
    number.as_bytes().windows(pattern.len()).any(|w| {
        w.iter()
            .zip(pattern)
            .all(|(c, p)| (*p == b'*' && c.is_ascii_digit()) || c == p)
    })
}

pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    list_of(&api, &account, &headers, query, None)
}

/// The account's numbers (of `kind`, under `…/Local.json` and its kin).
fn list_of(
    api: &TwilioApi,
    account: &str,
    headers: &HeaderMap,
    query: Option<String>,
    kind: Option<Kind>,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, headers, account, query)?;
    let account = &list.account;
    let phone = list.param("PhoneNumber").filter(|p| !p.is_empty());
    let name = list.param("FriendlyName").filter(|p| !p.is_empty());
    let rows = api
        .apps
        .numbers
        .of_account(&account.sid)
        .into_iter()
        .filter(|r| kind.is_none_or(|k| available_numbers::kind_of(&r.number.phone_number) == k))
        .filter(|r| phone.is_none_or(|p| matches_pattern(&r.number.phone_number, p)))
        .filter(|r| name.is_none_or(|n| r.friendly_name == n));
    let rows = list.page_of(rows);
    let path = match kind {
        Some(k) => format!(
            "IncomingPhoneNumbers/{}.json",
            available_numbers_rest::kind_name(k)
        ),
        None => "IncomingPhoneNumbers.json".to_owned(),
    };
    Ok(list.respond(
        "incoming_phone_numbers",
        &path,
        rows,
        |r| r.sid.clone(),
        |r| resource(api, r, account.api_sid()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_number_filters_match_parts_with_wildcard_digits() {
        assert!(matches_pattern("+14155550100", "555"));
        assert!(matches_pattern("+14155550100", "+1415*****00"));
        assert!(matches_pattern("+14155550100", "+14155550100"));
        assert!(!matches_pattern("+14155550100", "556"));
        assert!(!matches_pattern("+1415", "+14155"));
    }

    #[test]
    fn only_e164_numbers_can_be_claimed() {
        assert!(is_e164("+14155550100"));
        assert!(!is_e164("14155550100"));
        assert!(!is_e164("+1415555010a"));
        assert!(!is_e164("+1234567890123456"));
    }
}
