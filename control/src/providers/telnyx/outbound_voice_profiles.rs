//! `/v2/outbound_voice_profiles`: an account's outbound voice profiles — listed, created,
//! read, changed (PATCH) and deleted — and what they do to the calls placed through a
//! connection that names one (`outbound.outbound_voice_profile_id`): a disabled profile places
//! none, a destination outside its `whitelisted_destinations` (ISO alpha-2 countries, the
//! dialed number's country from libphonenumber's metadata) is refused, and its
//! `concurrent_call_limit` is a channel group of the call core, as the connection's own
//! `outbound.channel_limit` is. What has no meaning without a rate deck (`max_destination_rate`,
//! a daily spend limit enforced) or is not built (`call_recording` other than `none`, a
//! `calling_window`, a `service_plan` other than `global`) is refused with Telnyx's error
//! rather than kept and ignored.

use super::errors::ApiError;
use super::events::timestamp;
use super::page::Page;
use super::params::Params;
use super::{Telnyx, authenticate};
use crate::call::ChannelLimit;
use crate::call::dial_plan::{Destinations, OutboundPolicy};
use crate::infra::accounts::{Account, Connection};
use crate::infra::clock::now_ms;
use crate::infra::store::MAX_OUTBOUND_PROFILES;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The longest name, tag and tag count.
const MAX_NAME: usize = 255;
const MAX_TAGS: usize = 50;
/// Destinations a profile may list (there are some 250 countries).
const MAX_DESTINATIONS: usize = 300;
/// Telnyx's default destinations.
const DEFAULT_DESTINATIONS: [&str; 2] = ["US", "CA"];

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No outbound voice profile {id}."))
}

/// A new profile's resource with Telnyx's defaults.
fn fresh(id: &str, at: i64) -> Map<String, Value> {
    let Value::Object(o) = json!({
        "record_type": "outbound_voice_profile",
        "id": id,
        "name": "",
        "connections_count": 0,
        "traffic_type": "conversational",
        "service_plan": "global",
        "concurrent_call_limit": null,
        "enabled": true,
        "tags": [],
        "usage_payment_method": "rate-deck",
        "whitelisted_destinations": DEFAULT_DESTINATIONS,
        "max_destination_rate": null,
        "daily_spend_limit": null,
        "daily_spend_limit_enabled": false,
        "call_recording": {
            "call_recording_type": "none",
            "call_recording_caller_phone_numbers": [],
            "call_recording_channels": "single",
            "call_recording_format": "wav",
        },
        "billing_group_id": null,
        "calling_window": null,
        "created_at": timestamp(at),
        "updated_at": timestamp(at),
    }) else {
        unreachable!("an object")
    };
    o
}

/// Applies the body's fields to `profile`; `creating` requires the name.
fn apply(p: &Params, profile: &mut Map<String, Value>, creating: bool) -> Result<(), ApiError> {
    match p.short("name", MAX_NAME)? {
        Some(name) if !name.is_empty() => {
            profile.insert("name".into(), json!(name));
        }
        Some(_) => return Err(ApiError::invalid("name", "'name' may not be empty.".into())),
        None if creating => return Err(ApiError::missing("name")),
        None => {}
    }
    if p.has("traffic_type") {
        let traffic = p.choice("traffic_type", &["conversational"], "conversational")?;
        profile.insert("traffic_type".into(), json!(traffic));
    }
    if p.has("service_plan") {
        // "us" and "international" would narrow the destinations beside the whitelist, in
        // ways Telnyx does not spell out: refused rather than kept and ignored.
        let plan = p.choice("service_plan", &["global"], "global")?;
        profile.insert("service_plan".into(), json!(plan));
    }
    if p.has("usage_payment_method") {
        let method = p.choice(
            "usage_payment_method",
            &["rate-deck", "tariff"],
            "rate-deck",
        )?;
        profile.insert("usage_payment_method".into(), json!(method));
    }
    if p.given("concurrent_call_limit") {
        let limit = p.int("concurrent_call_limit", 0..=i64::from(u32::MAX))?;
        profile.insert("concurrent_call_limit".into(), json!(limit));
    }
    if let Some(on) = p.bool("enabled")? {
        profile.insert("enabled".into(), json!(on));
    }
    if p.given("tags") {
        let tags = p.strings("tags")?;
        if tags.len() > MAX_TAGS || tags.iter().any(|t| t.len() > MAX_NAME) {
            return Err(ApiError::out_of_range(
                "tags",
                format!("At most {MAX_TAGS} tags of at most {MAX_NAME} bytes."),
            ));
        }
        profile.insert("tags".into(), json!(tags));
    }
    if p.given("whitelisted_destinations") {
        let countries = p.strings("whitelisted_destinations")?;
        let bad = (countries.iter()).find(|c| {
            c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) || !known_country(c)
        });
        if let Some(bad) = bad {
            return Err(ApiError::invalid(
                "whitelisted_destinations",
                format!("'{bad}' is not an ISO 3166-1 alpha-2 country code."),
            ));
        }
        if countries.len() > MAX_DESTINATIONS {
            return Err(ApiError::out_of_range(
                "whitelisted_destinations",
                format!("At most {MAX_DESTINATIONS} destinations."),
            ));
        }
        profile.insert("whitelisted_destinations".into(), json!(countries));
    }
    if p.given("billing_group_id") {
        let group = p.short("billing_group_id", 64)?;
        profile.insert("billing_group_id".into(), json!(group));
    }
    refuse_unbuilt(p)
}

/// What would need a rate deck or is not built: refused unless it asks for nothing.
fn refuse_unbuilt(p: &Params) -> Result<(), ApiError> {
    let unserved = |field: &str, why: &str| {
        Err(ApiError::param(
            "10015",
            "Bad Request",
            field,
            format!("'{field}' {why}"),
        ))
    };
    if p.value("max_destination_rate")
        .is_some_and(|v| !v.is_null())
    {
        return unserved(
            "max_destination_rate",
            "needs a rate deck, and Switchboard rates no destination.",
        );
    }
    if p.bool("daily_spend_limit_enabled")? == Some(true) {
        return unserved(
            "daily_spend_limit_enabled",
            "needs call charges, and Switchboard charges none.",
        );
    }
    if p.value("calling_window").is_some_and(|v| !v.is_null()) {
        return unserved("calling_window", "is not served by Switchboard.");
    }
    if let Some(recording) = p.object("call_recording")?
        && recording
            .str("call_recording_type")?
            .is_some_and(|t| t != "none")
    {
        return unserved(
            "call_recording",
            "other than 'none' is not served: record calls with record_start or the connection's settings.",
        );
    }
    if p.value("daily_spend_limit").is_some_and(|v| !v.is_null()) {
        return unserved(
            "daily_spend_limit",
            "needs call charges, and Switchboard charges none.",
        );
    }
    Ok(())
}

/// Whether libphonenumber knows `country` (an alpha-2 code) as a region.
fn known_country(country: &str) -> bool {
    phonenumber::metadata::DATABASE.by_id(country).is_some()
}

/// The country (ISO alpha-2) of an E.164 number: its region by libphonenumber's metadata, or
/// for a number it does not recognise, the main region of its country calling code (+1 is
/// the US, +44 Great Britain).
pub(super) fn country_of(number: &str) -> Option<String> {
    let parsed = phonenumber::parse(None, number).ok()?;
    if let Some(id) = parsed.country().id() {
        return Some(id.as_ref().to_owned());
    }
    let code = parsed.code().value();
    let regions = phonenumber::metadata::DATABASE.region(&code)?;
    regions.first().map(|r| (*r).to_owned())
}

/// The resource as shown, `connections_count` counted now.
fn shown(api: &Telnyx, account: &Account, body: &str) -> Result<Value, ApiError> {
    let mut profile: Value = serde_json::from_str(body).map_err(internal)?;
    let id = profile["id"].as_str().unwrap_or_default().to_owned();
    let count = (api.parts.connections.of_account(&account.sid).iter())
        .filter(|row| profile_of(&row.connection) == Some(id.as_str()))
        .count();
    profile["connections_count"] = json!(count);
    Ok(profile)
}

/// The profile a connection names in its `outbound` settings.
fn profile_of(c: &Connection) -> Option<&str> {
    c.settings
        .get("outbound")?
        .get("outbound_voice_profile_id")?
        .as_str()
}

/// `GET /v2/outbound_voice_profiles` (`filter[name][contains]`), oldest first.
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let page = Page::read(&query)?;
    let contains = query
        .get("filter[name][contains]")
        .map(|s| s.to_lowercase());
    let mut rows = Vec::new();
    for body in api
        .parts
        .store
        .outbound_profiles(&account.sid)
        .await
        .map_err(internal)?
    {
        let profile = shown(&api, &account, &body)?;
        let name = profile["name"].as_str().unwrap_or_default().to_lowercase();
        if contains.as_ref().is_none_or(|c| name.contains(c.as_str())) {
            rows.push(profile);
        }
    }
    Ok(Json(page.of(&rows, Value::clone)))
}

/// `POST /v2/outbound_voice_profiles`.
pub(super) async fn create(
    State(api): State<Arc<Telnyx>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let store = &api.parts.store;
    let held = store
        .outbound_profiles(&account.sid)
        .await
        .map_err(internal)?;
    if held.len() as i64 >= MAX_OUTBOUND_PROFILES {
        return Err(ApiError::out_of_range(
            "name",
            format!("An account holds at most {MAX_OUTBOUND_PROFILES} outbound voice profiles."),
        ));
    }
    let at = now_ms();
    let id = rand::random_range(10u64.pow(18)..u64::MAX).to_string();
    let mut profile = fresh(&id, at);
    apply(&p, &mut profile, true)?;
    let body = Value::Object(profile).to_string();
    (store
        .insert_outbound_profile(&id, &account.sid, &body, at)
        .await)
        .map_err(internal)?;
    profiles_changed(&api).await;
    Ok(Json(json!({"data": shown(&api, &account, &body)?})))
}

/// `GET /v2/outbound_voice_profiles/{id}`.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let body = (api.parts.store.outbound_profile(&account.sid, &id).await)
        .map_err(internal)?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({"data": shown(&api, &account, &body)?})))
}

/// `PATCH /v2/outbound_voice_profiles/{id}`.
pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let p = Params::parse(&body)?;
    let store = &api.parts.store;
    let stored = (store.outbound_profile(&account.sid, &id).await)
        .map_err(internal)?
        .ok_or_else(|| not_found(&id))?;
    let Ok(Value::Object(mut profile)) = serde_json::from_str::<Value>(&stored) else {
        return Err(internal("a stored profile is no JSON object"));
    };
    apply(&p, &mut profile, false)?;
    let at = now_ms();
    profile.insert("updated_at".into(), json!(timestamp(at)));
    let body = Value::Object(profile).to_string();
    if !(store
        .update_outbound_profile(&account.sid, &id, &body, at)
        .await)
        .map_err(internal)?
    {
        return Err(not_found(&id));
    }
    profiles_changed(&api).await;
    Ok(Json(json!({"data": shown(&api, &account, &body)?})))
}

/// `DELETE /v2/outbound_voice_profiles/{id}`: refused while a connection uses it.
pub(super) async fn delete(
    State(api): State<Arc<Telnyx>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?;
    let store = &api.parts.store;
    let body = (store.outbound_profile(&account.sid, &id).await)
        .map_err(internal)?
        .ok_or_else(|| not_found(&id))?;
    let shown = shown(&api, &account, &body)?;
    if shown["connections_count"].as_u64().unwrap_or(0) > 0 {
        return Err(ApiError::unprocessable(format!(
            "The outbound voice profile {id} is used by {} connection(s): assign them another first.",
            shown["connections_count"]
        )));
    }
    if !(store.delete_outbound_profile(&account.sid, &id).await).map_err(internal)? {
        return Err(not_found(&id));
    }
    profiles_changed(&api).await;
    Ok(Json(json!({"data": shown})))
}

/// A profile changed: the SIP connections' calls out follow it here, and on the other nodes
/// (told as a change of the connections, whose policies it is part of).
async fn profiles_changed(api: &Telnyx) {
    api.parts.sip_trunks.publish().await;
    (api.parts.store)
        .announce(crate::infra::store::changes::Changed::Connections)
        .await;
}

/// The channel groups a call placed through `connection` to `to` (E.164, or a SIP URI) takes
/// a channel of, or why it may not be placed: the connection inactive, its profile disabled,
/// missing or not whitelisting the destination's country.
pub(super) async fn channels(
    api: &Telnyx,
    account: &Account,
    connection: &Connection,
    to: &str,
) -> Result<Vec<ChannelLimit>, ApiError> {
    let forbidden =
        |detail: String| ApiError::param("10010", "Authorization failed", "connection_id", detail);
    if connection.settings.get("active") == Some(&json!(false)) {
        return Err(forbidden(format!(
            "The connection {} is not active.",
            connection.id
        )));
    }
    let mut limits = Vec::new();
    let outbound = connection.settings.get("outbound");
    if let Some(max) = outbound
        .and_then(|o| o.get("channel_limit"))
        .and_then(Value::as_u64)
    {
        limits.push(ChannelLimit {
            group: format!("connection:{}", connection.id),
            max: u32::try_from(max).unwrap_or(u32::MAX),
        });
    }
    let Some(id) = profile_of(connection) else {
        return Ok(limits);
    };
    let body = (api.parts.store.outbound_profile(&account.sid, id).await)
        .map_err(internal)?
        .ok_or_else(|| {
            forbidden(format!(
                "The connection's outbound voice profile {id} does not exist."
            ))
        })?;
    let profile: Value = serde_json::from_str(&body).map_err(internal)?;
    if profile["enabled"] == json!(false) {
        return Err(forbidden(format!(
            "The connection's outbound voice profile {id} is disabled."
        )));
    }
    // A SIP URI is no country's: the whitelist is of the numbering plan's destinations.
    if !to.starts_with("sip:") {
        let allowed: Vec<&str> = (profile["whitelisted_destinations"].as_array())
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let country = country_of(to);
        if !country.as_deref().is_some_and(|c| allowed.contains(&c)) {
            return Err(ApiError::param(
                "10016",
                "Invalid destination",
                "to",
                format!(
                    "{to} ({}) is not among the whitelisted destinations of the outbound voice profile {id}.",
                    country.as_deref().unwrap_or("no known country")
                ),
            ));
        }
    }
    if let Some(max) = profile["concurrent_call_limit"].as_u64() {
        limits.push(ChannelLimit {
            group: format!("outbound-profile:{id}"),
            max: u32::try_from(max).unwrap_or(u32::MAX),
        });
    }
    Ok(limits)
}

/// How a SIP connection's calls out by the routes are held (an IP, FQDN or credential
/// connection's PBX or phones): Telnyx's SIP refusals — `404 SIP connection inactive D18`,
/// a disabled or missing profile `403 … D17`/`D38`, a destination outside the profile's
/// whitelist `403 … D12`, the connection's `channel_limit` `403 … D3`, the profile's
/// `concurrent_call_limit` `403 … D2`.
pub(super) struct SipPolicies {
    pub(super) store: crate::infra::store::Store,
}

impl crate::services::directory::sip_trunks::ConnectionPolicies for SipPolicies {
    fn inbound(&self, c: &Connection) -> Option<(ChannelLimit, String)> {
        let max = super::connection_settings::inbound_channel_limit(c)?;
        let limit = ChannelLimit {
            group: format!("connection-in:{}", c.id),
            max,
        };
        // Telnyx's D22: a channel limit of a number or a connection.
        Some((limit, "Channel limit exceeded D22".into()))
    }

    fn suppress_noise(&self, c: &Connection) -> (bool, bool) {
        super::connection_settings::suppress_noise(c)
    }

    fn outbound<'a>(
        &'a self,
        c: &'a Connection,
    ) -> crate::services::directory::sip_trunks::PolicyFuture<'a> {
        Box::pin(async move {
            let mut policy = OutboundPolicy::default();
            if c.settings.get("active") == Some(&json!(false)) {
                policy.refused = Some((404, "SIP connection inactive D18".into()));
                return policy;
            }
            policy.caller_id = super::connection_settings::caller_id(c);
            let outbound = c.settings.get("outbound");
            if let Some(max) = outbound
                .and_then(|o| o.get("channel_limit"))
                .and_then(Value::as_u64)
            {
                let limit = ChannelLimit {
                    group: format!("connection:{}", c.id),
                    max: u32::try_from(max).unwrap_or(u32::MAX),
                };
                policy
                    .channels
                    .push((limit, "Connection concurrent call limit exceeded D3".into()));
            }
            let Some(id) = profile_of(c) else {
                return policy;
            };
            let body = match self.store.outbound_profile(&c.account_sid, id).await {
                Ok(Some(body)) => body,
                Ok(None) => {
                    policy.refused = Some((
                        403,
                        "No outbound voice profile assigned to connection D38".into(),
                    ));
                    return policy;
                }
                Err(e) => {
                    // Not known now: refused rather than let through unchecked (for now: the
                    // next change or reload works it out again).
                    tracing::warn!(error = %e, connection = %c.id, "an outbound voice profile could not be read");
                    policy.refused = Some((503, "Service Unavailable".into()));
                    return policy;
                }
            };
            let profile: Value = serde_json::from_str(&body).unwrap_or_default();
            if profile["enabled"] == json!(false) {
                policy.refused = Some((403, "Outbound voice profile disabled D17".into()));
                return policy;
            }
            let allowed: Vec<String> = (profile["whitelisted_destinations"].as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            policy.destinations = Some(Destinations {
                // A SIP URI or a name is no country's: the whitelist is of numbers.
                allows: Arc::new(move |to: &str| {
                    country_of(to).is_some_and(|country| allowed.contains(&country))
                }),
                refusal: "Destination Number is not allowed for service plan global D12".into(),
            });
            if let Some(max) = profile["concurrent_call_limit"].as_u64() {
                let limit = ChannelLimit {
                    group: format!("outbound-profile:{id}"),
                    max: u32::try_from(max).unwrap_or(u32::MAX),
                };
                policy.channels.push((
                    limit,
                    "Outbound profile concurrent call limit exceeded D2".into(),
                ));
            }
            policy
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbers_country_by_its_region_or_its_calling_code() {
        assert_eq!(country_of("+14165551234").as_deref(), Some("CA"));
        assert_eq!(country_of("+12125551234").as_deref(), Some("US"));
        assert_eq!(country_of("+18765551234").as_deref(), Some("JM"));
        assert_eq!(country_of("+442071234567").as_deref(), Some("GB"));
        assert_eq!(country_of("+525512345678").as_deref(), Some("MX"));
        // Not a valid number of a region: its calling code's main region.
        assert_eq!(country_of("+15551234").as_deref(), Some("US"));
        assert_eq!(country_of("not a number"), None);
        assert!(known_country("BR") && !known_country("XX"));
    }

    /// What needs a rate deck or is not built is refused, not kept.
    #[test]
    fn unbuilt_settings_are_refused() {
        let refused = |body: &str| {
            let p = Params::parse(body.as_bytes()).unwrap();
            let mut profile = fresh("1", 0);
            apply(&p, &mut profile, true).unwrap_err().code
        };
        assert_eq!(
            refused(r#"{"name":"a","max_destination_rate":0.1}"#),
            "10015"
        );
        assert_eq!(
            refused(r#"{"name":"a","daily_spend_limit_enabled":true}"#),
            "10015"
        );
        assert_eq!(
            refused(r#"{"name":"a","call_recording":{"call_recording_type":"all"}}"#),
            "10015"
        );
        assert_eq!(
            refused(r#"{"name":"a","whitelisted_destinations":["XX"]}"#),
            "10032"
        );
        assert_eq!(
            refused(r#"{"name":"a","traffic_type":"short_duration"}"#),
            "10032"
        );
        assert_eq!(refused(r#"{"name":"a","service_plan":"us"}"#), "10032");
        assert_eq!(refused(r#"{}"#), "10004");
        let p = Params::parse(
            br#"{"name":"office","concurrent_call_limit":2,"whitelisted_destinations":["US","BR"],
                "call_recording":{"call_recording_type":"none"},"tags":["x"]}"#,
        )
        .unwrap();
        let mut profile = fresh("1", 0);
        apply(&p, &mut profile, true).unwrap();
        assert_eq!(profile["concurrent_call_limit"], 2);
        assert_eq!(profile["whitelisted_destinations"], json!(["US", "BR"]));
        assert_eq!(profile["name"], "office");
    }
}
