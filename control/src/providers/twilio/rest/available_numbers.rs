//! AvailablePhoneNumbers: the countries an account's grants hold numbers of, and a search of
//! each country's local, toll-free and mobile numbers it may still claim (the neutral
//! [`available_numbers`] search of the operator's number ranges), with the filters apps send —
//! `AreaCode`, `Contains` (digits, `*`, letters as the keypad's digits), the capability flags
//! (numbers here carry voice alone), `PageSize`. Geography (`InRegion`, `NearLatLong`, …) is not
//! known here: asked for, it is refused rather than ignored.

use super::json::{Json, form, param, refuse_unserved};
use super::{ApiError, TwilioApi, authenticate};
use crate::infra::accounts::formatted_number;
use crate::services::directory::available_numbers::{
    self as available, Kind, MAX_RESULTS, Pattern, Search, country_name,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

/// Filters Twilio documents that need geography Switchboard does not have.
const UNSERVED: &[&str] = &[
    "NearNumber",
    "NearLatLong",
    "Distance",
    "InPostalCode",
    "InRegion",
    "InRateCenter",
    "InLata",
    "InLocality",
];

/// Twilio's path names of the kinds.
fn kind_of_path(name: &str) -> Option<Kind> {
    match name.trim_end_matches(".json") {
        "Local" => Some(Kind::Local),
        "TollFree" => Some(Kind::TollFree),
        "Mobile" => Some(Kind::Mobile),
        _ => None,
    }
}

fn path_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Local => "Local",
        Kind::TollFree => "TollFree",
        Kind::Mobile => "Mobile",
    }
}

fn country_resource(account: &str, country: &str) -> Value {
    let base = format!("/2010-04-01/Accounts/{account}/AvailablePhoneNumbers/{country}");
    json!({
        "beta": false,
        "country": country_name(country),
        "country_code": country,
        "subresource_uris": {
            "local": format!("{base}/Local.json"),
            "toll_free": format!("{base}/TollFree.json"),
            "mobile": format!("{base}/Mobile.json"),
        },
        "uri": format!("{base}.json"),
    })
}

/// `GET …/AvailablePhoneNumbers.json`.
pub(super) async fn countries(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let countries = (api.apps.numbers.countries(&account).await).map_err(ApiError::internal)?;
    let sid = account.api_sid();
    Ok(Json(json!({
        "countries": countries.iter().map(|c| country_resource(sid, c)).collect::<Vec<_>>(),
        "uri": format!("/2010-04-01/Accounts/{sid}/AvailablePhoneNumbers.json"),
    })))
}

/// `GET …/AvailablePhoneNumbers/{CountryCode}.json`.
pub(super) async fn country(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let code = file.trim_end_matches(".json");
    let countries = (api.apps.numbers.countries(&account).await).map_err(ApiError::internal)?;
    let sid = account.api_sid();
    if !countries.contains(&code) {
        return Err(ApiError::not_found(&format!(
            "/2010-04-01/Accounts/{sid}/AvailablePhoneNumbers/{code}.json"
        )));
    }
    Ok(Json(country_resource(sid, code)))
}

/// `GET …/AvailablePhoneNumbers/{CountryCode}/{Local|TollFree|Mobile}.json`.
pub(super) async fn search(
    State(api): State<TwilioApi>,
    Path((account, country, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let sid = account.api_sid();
    let uri = format!("/2010-04-01/Accounts/{sid}/AvailablePhoneNumbers/{country}/{file}");
    let kind = kind_of_path(&file).ok_or_else(|| ApiError::not_found(&uri))?;
    let q = form(query.as_deref().unwrap_or_default());
    refuse_unserved(&q, UNSERVED)?;
    let search = read_search(&q, &country, kind)?;
    // Numbers here take voice, nothing else: a search for another capability finds none.
    let flag = |name: &str| param(&q, name).map(|v| v.eq_ignore_ascii_case("true"));
    let capable = flag("VoiceEnabled") != Some(false)
        && ["SmsEnabled", "MmsEnabled", "FaxEnabled"]
            .iter()
            .all(|f| flag(f) != Some(true));
    let found = match capable {
        true => {
            (api.apps.numbers.available(&account, &search).await).map_err(ApiError::internal)?
        }
        false => Vec::new(),
    };
    let numbers: Vec<Value> = (found.iter()).map(|n| resource(n, &country)).collect();
    Ok(Json(json!({
        "available_phone_numbers": numbers,
        "end": numbers.len().saturating_sub(1),
        "first_page_uri": uri,
        "next_page_uri": null,
        "page": 0,
        "page_size": numbers.len(),
        "previous_page_uri": null,
        "start": 0,
        "uri": uri,
    })))
}

/// What the query asks for.
pub(super) fn read_search(
    q: &[(String, String)],
    country: &str,
    kind: Kind,
) -> Result<Search, ApiError> {
    let bad = |m: String| ApiError::bad_request(20001, m);
    let area_code = match param(q, "AreaCode").filter(|a| !a.is_empty()) {
        Some(a) if a.len() == 3 && a.bytes().all(|b| b.is_ascii_digit()) => {
            if !matches!(country, "US" | "CA") {
                return Err(bad("AreaCode applies to the US and Canada only".into()));
            }
            Some(a.to_owned())
        }
        Some(a) => return Err(bad(format!("Invalid AreaCode: {a}"))),
        None => None,
    };
    let contains = match param(q, "Contains").filter(|c| !c.is_empty()) {
        Some(c) => Some(Pattern::parse(c).ok_or_else(|| {
            bad(format!(
                "Invalid Contains: {c} (two or more of 0-9, a-z, A-Z and *)"
            ))
        })?),
        None => None,
    };
    let limit = match param(q, "PageSize") {
        Some(s) => (s.parse::<usize>().ok())
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| bad(format!("Invalid PageSize: {s}")))?,
        None => 50,
    };
    Ok(Search {
        country: country.to_ascii_uppercase(),
        kind: Some(kind),
        area_code,
        contains,
        starts_with: None,
        ends_with: None,
        limit,
    })
}

/// An available number as Twilio shows it: no geography known, voice alone, nothing required.
fn resource(number: &str, country: &str) -> Value {
    json!({
        "address_requirements": "none",
        "beta": false,
        "capabilities": {"voice": true, "SMS": false, "MMS": false, "fax": false},
        "friendly_name": formatted_number(number),
        "iso_country": available::country_of(number).unwrap_or(country),
        "lata": null,
        "latitude": null,
        "locality": null,
        "longitude": null,
        "phone_number": number,
        "postal_code": null,
        "rate_center": null,
        "region": null,
    })
}

/// The first number `account` may claim that an IncomingPhoneNumbers create asks for by
/// `AreaCode` (and, under `…/Local` or `…/TollFree`, by kind).
pub(super) async fn by_area_code(
    api: &TwilioApi,
    account: &crate::infra::accounts::Account,
    area_code: &str,
    kind: Option<Kind>,
) -> Result<Option<String>, ApiError> {
    let search = Search {
        country: "US".into(),
        kind,
        area_code: Some(area_code.to_owned()),
        limit: 1,
        ..Search::default()
    };
    let mut found =
        (api.apps.numbers.available(account, &search).await).map_err(ApiError::internal)?;
    if found.is_empty() {
        let canada = Search {
            country: "CA".into(),
            ..search
        };
        found = (api.apps.numbers.available(account, &canada).await).map_err(ApiError::internal)?;
    }
    Ok(found.into_iter().next())
}

/// `…/IncomingPhoneNumbers/Local.json` and its kin: the kind a path names, if it names one.
pub(super) fn kind_path(file: &str) -> Option<Kind> {
    kind_of_path(file)
}

/// The path name of a kind, for URIs.
pub(super) fn kind_name(kind: Kind) -> &'static str {
    path_of(kind)
}
