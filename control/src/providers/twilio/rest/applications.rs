//! Applications (TwiML Apps): a voice URL, its method, fallback and status callback under an
//! `AP…` SID, created, listed, fetched, changed and deleted. A browser's `device.connect()`
//! runs the App its access token names. The App is stored as a connection of the neutral
//! store (the one Telnyx's TeXML applications live in: the same voice settings), and its
//! messaging fields, which Switchboard does not act on, are kept and shown back (no message is
//! sent or received here); `VoiceCallerIdLookup=true` is refused. A number naming the App
//! (`VoiceApplicationSid`) runs it too.

use super::json::{Json, form, method, param, url};
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::infra::accounts::{Connection, ConnectionKind, HttpMethod, TexmlVoice};
use crate::infra::clock::now_ms;
use crate::infra::sid::{is_sid, new_sid};
use crate::infra::store::ConnectionRow;
use crate::markup::rfc2822;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The longest `FriendlyName` Twilio takes.
const MAX_NAME: usize = 64;

/// The fields kept and shown back; of them only `VoiceFallbackMethod` is acted on (how a
/// browser client's call fetches the App's fallback URL, see `SipLogins::publish`).
const KEPT: &[&str] = &[
    "VoiceFallbackMethod",
    "VoiceCallerIdLookup",
    "SmsUrl",
    "SmsMethod",
    "SmsFallbackUrl",
    "SmsFallbackMethod",
    "SmsStatusCallback",
    "MessageStatusCallback",
    "PublicApplicationConnectEnabled",
];

fn app_uri(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Applications/{sid}.json")
}

fn kept(c: &Connection, key: &str) -> Value {
    c.settings.get(key).cloned().unwrap_or(Value::Null)
}

fn resource(row: &ConnectionRow, account: &str) -> Value {
    let c = &row.connection;
    let voice = c.texml.as_ref();
    let flag = |key: &str| {
        kept(c, key)
            .as_str()
            .map(|v| v.eq_ignore_ascii_case("true"))
    };
    json!({
        "account_sid": account,
        "api_version": "2010-04-01",
        "date_created": rfc2822(row.created_at),
        "date_updated": rfc2822(row.updated_at),
        "friendly_name": c.name,
        "message_status_callback": kept(c, "MessageStatusCallback"),
        "public_application_connect_enabled": flag("PublicApplicationConnectEnabled").unwrap_or(true),
        "sid": c.id,
        "sms_fallback_method": kept(c, "SmsFallbackMethod").as_str().unwrap_or("POST"),
        "sms_fallback_url": kept(c, "SmsFallbackUrl"),
        "sms_method": kept(c, "SmsMethod").as_str().unwrap_or("POST"),
        "sms_status_callback": kept(c, "SmsStatusCallback"),
        "sms_url": kept(c, "SmsUrl"),
        "status_callback": voice.and_then(|v| v.status_callback.as_deref()),
        "status_callback_method": voice.map_or("POST", |v| v.status_callback_method.as_str()),
        "uri": app_uri(account, &c.id),
        "voice_caller_id_lookup": flag("VoiceCallerIdLookup").unwrap_or(false),
        "voice_fallback_method": kept(c, "VoiceFallbackMethod").as_str().unwrap_or("POST"),
        "voice_fallback_url": voice.and_then(|v| v.voice_fallback_url.as_deref()),
        "voice_method": voice.map_or("POST", |v| v.voice_method.as_str()),
        "voice_url": voice.map(|v| v.voice_url.as_str()).filter(|u| !u.is_empty()),
    })
}

/// Applies a form's fields to an App (those given; absent ones keep their value).
fn apply(p: &[(String, String)], c: &mut Connection) -> Result<(), ApiError> {
    if let Some(name) = param(p, "FriendlyName") {
        if name.chars().count() > MAX_NAME {
            return Err(ApiError::bad_request(
                21201,
                format!("FriendlyName is longer than {MAX_NAME} characters"),
            ));
        }
        c.name = name.to_owned();
    }
    let voice = c.texml.get_or_insert_with(|| TexmlVoice {
        voice_url: String::new(),
        voice_method: HttpMethod::Post,
        voice_fallback_url: None,
        status_callback: None,
        status_callback_method: HttpMethod::Post,
    });
    let given = |name: &str| param(p, name).is_some();
    if given("VoiceUrl") {
        voice.voice_url = url(p, "VoiceUrl")?.unwrap_or_default();
    }
    if given("VoiceMethod") {
        voice.voice_method = method(p, "VoiceMethod")?;
    }
    if given("VoiceFallbackUrl") {
        voice.voice_fallback_url = url(p, "VoiceFallbackUrl")?;
    }
    if given("StatusCallback") {
        voice.status_callback = url(p, "StatusCallback")?;
    }
    if given("StatusCallbackMethod") {
        voice.status_callback_method = method(p, "StatusCallbackMethod")?;
    }
    // No caller-name database is looked up here (Twilio's CNAM lookups).
    if param(p, "VoiceCallerIdLookup").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(ApiError::bad_request(
            21231,
            "VoiceCallerIdLookup=true is not served by Switchboard",
        ));
    }
    for key in KEPT {
        if let Some(v) = param(p, key) {
            if key.ends_with("Method") {
                method(p, key)?;
            }
            if key.ends_with("Url") || key.ends_with("Callback") {
                url(p, key)?;
            }
            if v.len() > 2048 {
                return Err(ApiError::bad_request(21201, format!("{key} is too long")));
            }
            c.settings.insert((*key).to_owned(), json!(v));
        }
    }
    Ok(())
}

/// The account's App a `{sid}.json` path names.
fn find(api: &TwilioApi, account: &str, file: &str) -> Result<ConnectionRow, ApiError> {
    let sid = file.trim_end_matches(".json");
    Some(sid)
        .filter(|s| is_sid(s, "AP"))
        .and_then(|sid| api.connections.get(account, sid))
        .filter(|r| r.connection.kind() == ConnectionKind::TwimlApp)
        .ok_or_else(|| ApiError::not_found(&app_uri(account, sid)))
}

pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let p = form(&body);
    let mut connection = Connection::new(new_sid("AP"), &account.sid);
    apply(&p, &mut connection)?;
    let now = now_ms();
    let row = ConnectionRow {
        connection,
        created_at: now,
        updated_at: now,
    };
    let added = (api.connections.add(row.clone()).await).map_err(ApiError::internal)?;
    if !added {
        return Err(ApiError::bad_request(
            21201,
            format!(
                "The account has {} applications, the most it may",
                crate::services::directory::connections::MAX_PER_ACCOUNT
            ),
        ));
    }
    let body = resource(&row, account.api_sid());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let row = find(&api, &account.sid, &file)?;
    Ok(Json(resource(&row, account.api_sid())))
}

pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let mut row = find(&api, &account.sid, &file)?;
    apply(&form(&body), &mut row.connection)?;
    row.updated_at = now_ms();
    (api.connections.update(row.clone()).await).map_err(ApiError::internal)?;
    Ok(Json(resource(&row, account.api_sid())))
}

pub(super) async fn delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let row = find(&api, &account.sid, &file)?;
    (api.connections.remove(&row.connection.id).await).map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the account's Apps, oldest first; `FriendlyName` matches exactly.
pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let account = &list.account;
    let name = list.param("FriendlyName").filter(|p| !p.is_empty());
    let rows = (api.connections.of_account(&account.sid).into_iter())
        .filter(|r| r.connection.kind() == ConnectionKind::TwimlApp)
        .filter(|r| name.is_none_or(|n| r.connection.name == n));
    let rows = list.page_of(rows);
    Ok(list.respond(
        "applications",
        "Applications.json",
        rows,
        |r| r.connection.id.clone(),
        |r| resource(r, account.api_sid()),
    ))
}
