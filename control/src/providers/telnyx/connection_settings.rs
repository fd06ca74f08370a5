//! The settings Telnyx's Call Control applications and SIP connections carry beside their
//! kind's own fields: the top-level switches and the `inbound` and `outbound` objects. Each is
//! either acted on, or takes only the one value that says what Switchboard does (shown as its
//! value); a body asking for anything else is refused 10032 naming the field, so that nothing a
//! tenant sets is kept and quietly not done.
//!
//! Acted on: `active`, the first-command timeout, `webhook_timeout_secs` (how long each of
//! its calls' webhooks is waited for), `tags` (kept for the tenant), and in
//! `outbound` the `channel_limit`, the `outbound_voice_profile_id` (see
//! `outbound_voice_profiles`) and, for a SIP connection, `ani_override` with
//! `ani_override_type` (the caller ID its calls out show); in `inbound`, `channel_limit` (the
//! calls its numbers take at once, over all of them); for an IP or FQDN connection,
//! `noise_suppression` (the local denoiser on its calls, in what its side says, hears, or
//! both) with `noise_suppression_details` of the `denoiser` engine.

use super::application_api::MAX_NAME;
use super::errors::ApiError;
use super::params::Params;
use crate::call::dial_plan::{CallerIdOverride, OverrideScope};
use crate::infra::accounts::{Connection, ConnectionKind};
use serde_json::{Map, Value, json};

/// `tags` at most, each at most [`MAX_NAME`] bytes.
const MAX_TAGS: usize = 50;
/// An `ani_override` is a number: `+` and digits, this many at most.
const MAX_ANI: usize = 20;

/// Whose settings they are: the keys and the values served differ by kind.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    /// A Call Control or TeXML application: its calls are reported and commanded.
    Application,
    /// A credential connection: phones or a PBX registering with a login.
    Credential,
    /// An IP or FQDN connection: a PBX's trunk, its calls out authenticated by address, or
    /// (an FQDN connection with a `user_name`) by digest.
    Trunk { by_digest: bool },
}

impl Holder {
    pub(super) fn of(c: &Connection) -> Self {
        match c.kind() {
            ConnectionKind::Credential => Self::Credential,
            ConnectionKind::Ip | ConnectionKind::Fqdn => Self::Trunk {
                by_digest: (c.ip_trunk.as_ref()).is_some_and(|t| t.login.is_some()),
            },
            _ => Self::Application,
        }
    }

    fn sip(self) -> bool {
        self != Self::Application
    }
}

/// The top-level settings that take one value only, and that value.
fn fixed_top() -> [(&'static str, Value); 4] {
    [
        // Media is anchored on the node the call reaches: there are no sites to choose.
        ("anchorsite_override", json!("Latency")),
        // No call is priced.
        ("call_cost_in_webhooks", json!(false)),
        // Digits go as RFC 4733 events (and are heard in-band by the detectors).
        ("dtmf_type", json!("RFC 2833")),
        // Digits are not in any log to redact; the console shows them.
        ("redact_dtmf_debug_logging", json!(false)),
    ]
}

/// The top-level settings of SIP connections that take one value only, and that value.
fn fixed_sip(holder: Holder) -> Vec<(&'static str, Value)> {
    let mut fixed = match holder {
        Holder::Application => return Vec::new(),
        // Its own `encrypted_media` is acted on (an IP or FQDN connection's SRTP).
        Holder::Trunk { .. } => Vec::new(),
        Holder::Credential => vec![
            // The phones' media is as they offer it.
            ("encrypted_media", Value::Null),
            // A login is reached by its numbers only, not by a SIP URI.
            ("sip_uri_calling_preference", json!("disabled")),
            // Its phones' noise is suppressed when a call's application asks
            // (`suppression_start`); an IP or FQDN connection's own setting is acted on.
            ("noise_suppression", json!("disabled")),
            ("noise_suppression_details", Value::Null),
        ],
    };
    fixed.extend([
        // No push notification reaches a mobile SDK from here.
        ("android_push_credential_id", Value::Null),
        ("ios_push_credential_id", Value::Null),
        // Comfort noise is relayed as it comes; no RTP is made up for it.
        ("bridge_generate_comfort_noise_on_cn", json!(false)),
        // Calls are not transcribed and stored for the connection.
        ("conversation_persistence", json!(false)),
        // Media is relayed as it arrives: no jitter buffer of the connection's.
        ("jitter_buffer", Value::Null),
        // A call on hold hears what the holding side sends, nothing added.
        ("default_on_hold_comfort_noise_enabled", json!(false)),
        ("encode_contact_header_enabled", json!(false)),
        // Only audio is relayed.
        ("onnet_t38_passthrough_enabled", json!(false)),
        (
            "rtcp_settings",
            json!({"port": "rtp+1", "capture_enabled": false, "report_frequency_secs": 5}),
        ),
    ]);
    fixed
}

/// `inbound`'s settings as Switchboard serves them, by kind (`channel_limit`, acted on, with
/// its default: none).
fn inbound_defaults(holder: Holder) -> Value {
    if !holder.sip() {
        return json!({
            "channel_limit": null, "shaken_stir_enabled": false,
            "sip_subdomain": null, "sip_subdomain_receive_settings": "from_anyone",
        });
    }
    let mut inbound = json!({
        // Numbers pass as they came: E.164 with its `+`.
        "ani_number_format": "+E.164", "dnis_number_format": "+e164",
        // The relay's codecs (the caller's order is kept).
        "codecs": ["G711U", "G711A", "OPUS"],
        "channel_limit": null,
        // The phone's own ringing is relayed; none is made up.
        "generate_ringback_tone": false,
        "isup_headers_enabled": false, "prack_enabled": false,
        "shaken_stir_enabled": false, "sip_compact_headers_enabled": false,
        "timeout_1xx_secs": null, "timeout_2xx_secs": null,
    });
    if let Holder::Trunk { .. } = holder {
        // A number's calls go to the addresses in the order they were added.
        inbound["default_routing_method"] = json!("sequential");
        inbound["sip_region"] = Value::Null;
        inbound["sip_subdomain"] = Value::Null;
        inbound["sip_subdomain_receive_settings"] = json!("only_my_connections");
    }
    inbound
}

/// `outbound`'s settings as Switchboard serves them, by kind (those acted on with their
/// defaults).
fn outbound_defaults(holder: Holder) -> Value {
    if !holder.sip() {
        return json!({"channel_limit": null, "outbound_voice_profile_id": null});
    }
    let mut outbound = json!({
        "ani_override": "", "ani_override_type": "always",
        "call_parking_enabled": false, "channel_limit": null,
        // The callee's ringing is relayed; none is made up.
        "generate_ringback_tone": false, "instant_ringback_enabled": false,
        // Numbers are dialed as given: no national dialing rules are applied.
        "localization": null,
        "outbound_voice_profile_id": null,
        // Only audio is relayed: a T.38 re-INVITE is answered 488.
        "t38_reinvite_source": "disabled",
    });
    if let Holder::Trunk { by_digest } = holder {
        outbound["tech_prefix"] = Value::Null;
        outbound["ip_authentication_method"] = json!(if by_digest {
            "credential-authentication"
        } else {
            "ip-authentication"
        });
        outbound["ip_authentication_token"] = Value::Null;
    }
    outbound
}

/// Keys of `outbound` acted on, by kind.
fn outbound_acted(holder: Holder) -> &'static [&'static str] {
    if holder.sip() {
        &[
            "channel_limit",
            "outbound_voice_profile_id",
            "ani_override",
            "ani_override_type",
        ]
    } else {
        &["channel_limit", "outbound_voice_profile_id"]
    }
}

/// The settings as a resource shows them: each fixed one's value, then what was set.
pub(super) fn shown(holder: Holder, c: &Connection) -> Map<String, Value> {
    let mut shown: Map<String, Value> = (fixed_top().into_iter().chain(fixed_sip(holder)))
        .map(|(k, v)| (k.into(), v))
        .collect();
    shown.insert("active".into(), json!(true));
    shown.insert("tags".into(), json!([]));
    shown.insert("webhook_timeout_secs".into(), Value::Null);
    if matches!(holder, Holder::Trunk { .. }) {
        shown.insert("noise_suppression".into(), json!("disabled"));
        shown.insert("noise_suppression_details".into(), Value::Null);
    }
    shown.insert("inbound".into(), inbound_defaults(holder));
    shown.insert("outbound".into(), outbound_defaults(holder));
    for (k, v) in &c.settings {
        match (shown.get_mut(k), v) {
            (Some(Value::Object(into)), Value::Object(set)) => {
                into.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            _ => {
                shown.insert(k.clone(), v.clone());
            }
        }
    }
    shown
}

/// Refuses `value` for `field` unless it is null or `fixed`.
fn only(field: &str, value: &Value, fixed: &Value) -> Result<(), ApiError> {
    if value.is_null() || value == fixed {
        return Ok(());
    }
    // Its pointer is the JSON pointer of the field inside its object (`/inbound/codecs`).
    Err(ApiError::invalid(
        &field.replace('.', "/"),
        format!("'{field}' is {fixed} on Switchboard: {value} is not served."),
    ))
}

/// Applies the body's settings to `c`: the first-command timeout, `active`, `tags`, the fixed
/// ones checked, and `inbound` and `outbound` key by key.
pub(super) fn apply(p: &Params, c: &mut Connection, holder: Holder) -> Result<(), ApiError> {
    if let Some(on) = p.bool("first_command_timeout")? {
        c.first_command_timeout = on;
    }
    let max = Connection::MAX_FIRST_COMMAND_SECS as i64;
    if let Some(secs) = p.int("first_command_timeout_secs", 1..=max)? {
        c.first_command_timeout_secs = secs as u64;
    }
    if let Some(active) = p.bool("active")? {
        c.settings.insert("active".into(), json!(active));
    }
    for (key, fixed) in fixed_top().into_iter().chain(fixed_sip(holder)) {
        if let Some(v) = p.value(key) {
            only(key, v, &fixed)?;
        }
    }
    if matches!(holder, Holder::Trunk { .. }) {
        apply_noise_suppression(p, c)?;
    }
    if p.given("webhook_timeout_secs") {
        let secs = p.int("webhook_timeout_secs", 0..=30)?;
        (c.settings).insert("webhook_timeout_secs".into(), json!(secs));
    }
    if let Some(tags) = p.value("tags") {
        let ok = tags.as_array().filter(|t| {
            t.len() <= MAX_TAGS
                && t.iter()
                    .all(|t| t.as_str().is_some_and(|s| s.len() <= MAX_NAME))
        });
        let Some(tags) = ok else {
            return Err(ApiError::invalid(
                "tags",
                format!("'tags' must be at most {MAX_TAGS} strings."),
            ));
        };
        c.settings.insert("tags".into(), Value::Array(tags.clone()));
    }
    if let Some(inbound) = p.object("inbound")? {
        inbound.int("channel_limit", 0..=i64::from(u32::MAX))?;
        keep(
            "inbound",
            &inbound,
            c,
            (&["channel_limit"], &inbound_defaults(holder)),
        )?;
    }
    if let Some(outbound) = p.object("outbound")? {
        apply_outbound(&outbound, c, holder)?;
    }
    Ok(())
}

/// The keys of object `name` acted on (checked before) kept, merged over what was set; the
/// others only at their fixed value.
fn keep(
    name: &str,
    given: &Params,
    c: &mut Connection,
    (acted, defaults): (&[&str], &Value),
) -> Result<(), ApiError> {
    let mut kept = match c.settings.get(name) {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    for (key, value) in given.entries() {
        if acted.contains(&key.as_str()) {
            kept.insert(key.clone(), value.clone());
        } else if let Some(fixed) = defaults.get(key) {
            only(&format!("{name}.{key}"), value, fixed)?;
        }
    }
    c.settings.insert(name.into(), Value::Object(kept));
    Ok(())
}

/// `outbound`: the keys acted on checked and kept, the rest fixed.
fn apply_outbound(o: &Params, c: &mut Connection, holder: Holder) -> Result<(), ApiError> {
    o.int("channel_limit", 0..=i64::from(u32::MAX))?;
    o.short("outbound_voice_profile_id", 64)?;
    if holder.sip() {
        if let Some(ani) = o.str("ani_override")? {
            let number = ani.strip_prefix('+').unwrap_or(ani);
            let ok = ani.is_empty()
                || (ani.len() <= MAX_ANI
                    && !number.is_empty()
                    && number.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return Err(ApiError::invalid(
                    "outbound/ani_override",
                    "'outbound.ani_override' must be a phone number.".into(),
                ));
            }
        }
        o.choice(
            "ani_override_type",
            &["always", "normal", "emergency"],
            "always",
        )?;
    }
    keep(
        "outbound",
        o,
        c,
        (outbound_acted(holder), &outbound_defaults(holder)),
    )
}

/// An IP or FQDN connection's `noise_suppression` (where: `inbound` is what its side says,
/// `outbound` what its side hears) and `noise_suppression_details`: the local suppressor is
/// RNNoise, Telnyx's `denoiser` engine, which takes no attenuation limit but its default (0);
/// the other engines and limits are refused.
fn apply_noise_suppression(p: &Params, c: &mut Connection) -> Result<(), ApiError> {
    if p.value("noise_suppression").is_some() {
        let choices = ["inbound", "outbound", "both", "disabled"];
        let r#where = p.choice("noise_suppression", &choices, "disabled")?;
        c.settings
            .insert("noise_suppression".into(), json!(r#where));
    }
    if let Some(details) = p.object("noise_suppression_details")? {
        let pointer = |key: &str| format!("noise_suppression_details/{key}");
        let refused = |key: &str, served: &str| {
            ApiError::invalid(
                &pointer(key),
                format!("'noise_suppression_details.{key}' is {served} on Switchboard."),
            )
        };
        if details.choice("engine", &["denoiser"], "denoiser").is_err() {
            return Err(refused("engine", "\"denoiser\""));
        }
        if details.int("attenuation_limit", 0..=0).is_err() {
            return Err(refused("attenuation_limit", "0 (the denoiser's)"));
        }
        if let Some((key, _)) =
            (details.entries()).find(|(k, _)| *k != "engine" && *k != "attenuation_limit")
        {
            return Err(refused(key, "not a setting"));
        }
        let kept = json!({"engine": "denoiser", "attenuation_limit": 0});
        c.settings.insert("noise_suppression_details".into(), kept);
    }
    Ok(())
}

/// Where an IP or FQDN connection's calls have noise suppressed: in what its side says, in
/// what it hears.
pub(super) fn suppress_noise(c: &Connection) -> (bool, bool) {
    match c.settings.get("noise_suppression").and_then(Value::as_str) {
        Some("inbound") => (true, false),
        Some("outbound") => (false, true),
        Some("both") => (true, true),
        _ => (false, false),
    }
}

/// How long each webhook of the connection's calls is waited for, when it says (null or 0:
/// the node's own wait, 15 s).
pub(super) fn webhook_timeout(c: &Connection) -> Option<u32> {
    let secs = c.settings.get("webhook_timeout_secs")?.as_u64()?;
    u32::try_from(secs).ok().filter(|s| *s > 0)
}

/// How many calls the connection's numbers take at once, if it bounds them.
pub(super) fn inbound_channel_limit(c: &Connection) -> Option<u32> {
    let max = c.settings.get("inbound")?.get("channel_limit")?.as_u64()?;
    Some(u32::try_from(max).unwrap_or(u32::MAX))
}

/// The caller ID a SIP connection's calls out show instead of its phones', if it set one.
pub(super) fn caller_id(c: &Connection) -> Option<CallerIdOverride> {
    let outbound = c.settings.get("outbound")?;
    let number = outbound.get("ani_override")?.as_str()?;
    if number.is_empty() {
        return None;
    }
    let applies_to = match outbound.get("ani_override_type").and_then(Value::as_str) {
        Some("normal") => OverrideScope::NonEmergency,
        Some("emergency") => OverrideScope::Emergency,
        _ => OverrideScope::Always,
    };
    Some(CallerIdOverride {
        number: number.to_owned(),
        applies_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        Connection::new("1".into(), "AC1")
    }

    fn applied(holder: Holder, body: Value) -> Result<Connection, String> {
        let p = Params::parse(body.to_string().as_bytes()).unwrap();
        let mut c = connection();
        apply(&p, &mut c, holder).map(|()| c).map_err(|e| e.detail)
    }

    /// A setting that is not served passes only at the value that says what Switchboard
    /// does; any other is refused, naming it.
    #[test]
    fn a_setting_not_served_is_refused_unless_it_asks_for_what_is_done() {
        for (holder, body) in [
            (
                Holder::Application,
                json!({"dtmf_type": "RFC 2833", "anchorsite_override": "Latency"}),
            ),
            (
                Holder::Application,
                json!({"inbound": {"channel_limit": null, "shaken_stir_enabled": false}}),
            ),
            (
                Holder::Credential,
                json!({"inbound": {"codecs": ["G711U", "G711A", "OPUS"], "unknown": 1}}),
            ),
            (
                Holder::Credential,
                json!({"outbound": {"localization": null, "t38_reinvite_source": "disabled"}}),
            ),
        ] {
            applied(holder, body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
        }
        for (holder, body, field) in [
            (
                Holder::Application,
                json!({"dtmf_type": "SIP INFO"}),
                "dtmf_type",
            ),
            (
                Holder::Application,
                json!({"anchorsite_override": "Amsterdam, Netherlands"}),
                "anchorsite_override",
            ),
            (
                Holder::Application,
                json!({"call_cost_in_webhooks": true}),
                "call_cost_in_webhooks",
            ),
            (
                Holder::Application,
                json!({"webhook_timeout_secs": 31}),
                "webhook_timeout_secs",
            ),
            (
                Holder::Application,
                json!({"inbound": {"sip_subdomain": "acme"}}),
                "inbound.sip_subdomain",
            ),
            (
                Holder::Credential,
                json!({"inbound": {"codecs": ["G729"]}}),
                "inbound.codecs",
            ),
            (
                Holder::Credential,
                json!({"inbound": {"channel_limit": 4, "generate_ringback_tone": true}}),
                "inbound.generate_ringback_tone",
            ),
            (
                Holder::Credential,
                json!({"outbound": {"localization": "US"}}),
                "outbound.localization",
            ),
            (
                Holder::Credential,
                json!({"outbound": {"call_parking_enabled": true}}),
                "outbound.call_parking_enabled",
            ),
            (
                Holder::Credential,
                json!({"outbound": {"ani_override": "12ab"}}),
                "outbound.ani_override",
            ),
            (
                Holder::Credential,
                json!({"noise_suppression": "both"}),
                "noise_suppression",
            ),
            (
                Holder::Trunk { by_digest: false },
                json!({"jitter_buffer": {"enable_jitter_buffer": true}}),
                "jitter_buffer",
            ),
        ] {
            let e = applied(holder, body.clone())
                .err()
                .unwrap_or_else(|| panic!("{body} passed"));
            assert!(e.contains(&format!("'{field}'")), "{body}: {e}");
        }
    }

    /// An IP or FQDN connection's noise suppression is kept and read as where it applies;
    /// the denoiser is the only engine, with its own attenuation limit.
    #[test]
    fn a_trunks_noise_suppression_is_kept_and_other_engines_refused() {
        let trunk = Holder::Trunk { by_digest: false };
        let c = applied(trunk, json!({"noise_suppression": "inbound"})).unwrap();
        assert_eq!(suppress_noise(&c), (true, false));
        assert_eq!(shown(trunk, &c)["noise_suppression"], "inbound");
        let c = applied(
            trunk,
            json!({"noise_suppression": "both",
            "noise_suppression_details": {"engine": "denoiser", "attenuation_limit": 0}}),
        )
        .unwrap();
        assert_eq!(suppress_noise(&c), (true, true));
        let c = applied(trunk, json!({"noise_suppression": "outbound"})).unwrap();
        assert_eq!(suppress_noise(&c), (false, true));
        let fresh = connection();
        assert_eq!(suppress_noise(&fresh), (false, false));
        assert_eq!(shown(trunk, &fresh)["noise_suppression"], "disabled");
        for (body, pointer) in [
            (
                json!({"noise_suppression": "sometimes"}),
                "noise_suppression",
            ),
            (
                json!({"noise_suppression_details": {"engine": "krisp_viva_tel"}}),
                "noise_suppression_details/engine",
            ),
            (
                json!({"noise_suppression_details": {"attenuation_limit": 80}}),
                "noise_suppression_details/attenuation_limit",
            ),
            (
                json!({"noise_suppression_details": {"engine": "denoiser", "level": 3}}),
                "noise_suppression_details/level",
            ),
        ] {
            let p = Params::parse(body.to_string().as_bytes()).unwrap();
            let e = apply(&p, &mut connection(), trunk)
                .err()
                .unwrap_or_else(|| panic!("{body} passed"));
            assert_eq!(e.code, "10032", "{body}: {}", e.detail);
            assert_eq!(
                e.pointer.as_deref(),
                Some(&*format!("/{pointer}")),
                "{body}"
            );
        }
    }

    /// The acted-on keys of `outbound` are merged over what was set, and shown over the
    /// defaults; the caller ID override is read back from them.
    #[test]
    fn the_outbound_keys_acted_on_are_kept_and_the_override_read_back() {
        let mut c = connection();
        let set = |c: &mut Connection, body: Value| {
            let p = Params::parse(body.to_string().as_bytes()).unwrap();
            apply(&p, c, Holder::Credential).unwrap();
        };
        set(
            &mut c,
            json!({"outbound": {"channel_limit": 3, "ani_override": "+15550009999"}}),
        );
        set(&mut c, json!({"outbound": {"ani_override_type": "normal"}}));
        let outbound = &shown(Holder::Credential, &c)["outbound"];
        assert_eq!(outbound["channel_limit"], json!(3));
        assert_eq!(outbound["ani_override"], json!("+15550009999"));
        assert_eq!(outbound["ani_override_type"], json!("normal"));
        assert_eq!(outbound["generate_ringback_tone"], json!(false));
        assert_eq!(
            caller_id(&c),
            Some(CallerIdOverride {
                number: "+15550009999".into(),
                applies_to: OverrideScope::NonEmergency
            })
        );
        set(&mut c, json!({"outbound": {"ani_override": ""}}));
        assert_eq!(caller_id(&c), None);
    }
}
