//! TeXML calls (reference §4): `POST /v2/texml/calls/{connection_id}` and
//! `POST /v2/texml/Accounts/{account}/Calls` (with `ApplicationSid`) place a call that runs
//! TeXML once answered — from `Url`, inline `Texml`, or the application's voice URL — through
//! the same markup interpreter as TwiML, in the TeXML dialect (Telnyx's ids, Ed25519-signed
//! form requests). `GET`/`POST /v2/texml/Accounts/{account}/Calls/{call_sid}` read a call and
//! change it (redirect to new TeXML, or end it). Bodies are JSON (as the SDKs send them) or
//! form-encoded, with Twilio's PascalCase names.

use super::calls::originate_error;
use super::errors::ApiError;
use super::texml_rest::{self, account_id, texml_account};
use super::{Telnyx, authenticate};
use crate::call::ids::CallId;
use crate::call::{CallCommand, Originate, RecordingOrigin, Target};
use crate::infra::accounts::{Account, Connection, HttpMethod, TexmlVoice, formatted_number};
use crate::infra::store::{CallRecord, CallStatus, Direction};
use crate::markup::rfc2822;
use crate::markup::voice;
use crate::markup::voice::{
    CallRecording, Dialect, RecordingCallback, VoiceApp, recording_track, recording_tracks,
};
use crate::providers::twilio::rest::calls::call_filter;
use crate::providers::twilio::rest::json as rest_json;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_media::record::Channels;
use tokio::sync::mpsc;

/// Inline `Texml` at most (a fetched document has the same bound).
const MAX_TEXML: usize = 64 * 1024;
/// Fields in a body at most, and the longest value taken.
const MAX_FIELDS: usize = 100;
const MAX_VALUE: usize = MAX_TEXML;

/// A request's fields by their PascalCase names.
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    /// A JSON object (strings, numbers and booleans as text; an array's strings each) or a
    /// form body. A JSON body's snake_case names are taken as their PascalCase ones: Telnyx's
    /// Python SDK sends some bodies (`texml.accounts.calls.calls(body=…)`, a union it does
    /// not rename) with the names its users typed, `from_` and `time_limit`.
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        let form = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut fields = Vec::new();
        if form {
            fields.extend(url::form_urlencoded::parse(body).into_owned());
        } else if !body.iter().all(u8::is_ascii_whitespace) {
            let object: serde_json::Map<String, Value> =
                serde_json::from_slice(body).map_err(|e| {
                    ApiError::invalid("body", format!("The body is not a JSON object: {e}"))
                })?;
            // A name given both ways is taken as given in PascalCase.
            let given: Vec<String> = object.keys().cloned().collect();
            for (k, v) in object {
                let k = match pascal_case(&k) {
                    Some(p) if given.contains(&p) => continue,
                    Some(p) => p,
                    None => k,
                };
                match v {
                    Value::String(s) => fields.push((k, s)),
                    Value::Bool(_) | Value::Number(_) => fields.push((k, v.to_string())),
                    Value::Array(items) => fields.extend(
                        (items.iter().filter_map(Value::as_str)).map(|s| (k.clone(), s.to_owned())),
                    ),
                    Value::Null | Value::Object(_) => {}
                }
            }
        }
        if fields.len() > MAX_FIELDS || fields.iter().any(|(_, v)| v.len() > MAX_VALUE) {
            return Err(ApiError::invalid(
                "body",
                format!("At most {MAX_FIELDS} fields of at most {MAX_VALUE} bytes each."),
            ));
        }
        Ok(Self(fields))
    }

    /// A field's value, when given and not empty.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        (self.0.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| ApiError::missing(key))
    }

    pub(super) fn url(&self, key: &str) -> Result<Option<String>, ApiError> {
        let Some(u) = self.get(key) else {
            return Ok(None);
        };
        match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => Ok(Some(u.to_owned())),
            _ => Err(ApiError::invalid(
                key,
                format!("'{u}' is not an http(s) URL."),
            )),
        }
    }

    pub(super) fn method(&self, key: &str) -> Result<Option<HttpMethod>, ApiError> {
        self.get(key)
            .map(|m| {
                HttpMethod::parse(m)
                    .ok_or_else(|| ApiError::invalid(key, format!("'{m}' is not GET or POST.")))
            })
            .transpose()
    }

    pub(super) fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("false" | "False") => Ok(false),
            Some("true" | "True") => Ok(true),
            Some(other) => Err(ApiError::invalid(
                key,
                format!("'{other}' is not true or false."),
            )),
        }
    }

    /// Refuses (10032) the first of `unserved` set to something that would change the call;
    /// values that ask for nothing (empty, `false`, `disabled`, `none`, or the `default` given
    /// beside a name) pass.
    pub(super) fn refuse_unserved(&self, unserved: &[(&str, &str)]) -> Result<(), ApiError> {
        let asks = |v: &str, default: &str| {
            !(v == default || matches!(v, "" | "false" | "False" | "disabled" | "none"))
        };
        let found = (unserved.iter())
            .find(|(k, default)| self.0.iter().any(|(n, v)| n == k && asks(v, default)));
        match found {
            Some((key, _)) => Err(ApiError::invalid(
                key,
                format!("'{key}' is not served by Switchboard."),
            )),
            None => Ok(()),
        }
    }

    /// `SipAuthUsername` and `SipAuthPassword`, when a user is given.
    pub(super) fn sip_auth(&self) -> Option<(String, String)> {
        crate::markup::voice::sip_credentials(|k| self.get(k))
    }

    /// Space-separated words (`StatusCallbackEvent`), or the field repeated.
    pub(super) fn words(&self, key: &str) -> Vec<String> {
        (self.0.iter())
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned))
            .collect()
    }
}

pub(super) fn invalid_application(id: &str) -> ApiError {
    ApiError::param(
        "10015",
        "Invalid value for connection_id",
        "connection_id",
        format!("No TeXML application {id} on this account."),
    )
}

/// `POST /v2/texml/calls/{connection_id}`.
pub(super) async fn create_on_connection(
    State(api): State<Arc<Telnyx>>,
    Path(connection_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = authenticate(&api, &headers)?.clone();
    let fields = Fields::parse(&headers, &body)?;
    let application = (api.parts.connections.texml(&account.sid, &connection_id))
        .ok_or_else(|| invalid_application(&connection_id))?;
    let placed = place(&api, &account, &application.connection, &fields).await?;
    Ok(Json(placed))
}

/// `POST /v2/texml/Accounts/{account}/Calls`: the application is `ApplicationSid`.
pub(super) async fn create_on_account(
    State(api): State<Arc<Telnyx>>,
    Path(account_path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let fields = Fields::parse(&headers, &body)?;
    let id = fields.required("ApplicationSid")?;
    let application =
        (api.parts.connections.texml(&account.sid, id)).ok_or_else(|| invalid_application(id))?;
    let placed = place(&api, &account, &application.connection, &fields).await?;
    Ok(Json(placed))
}

/// `time_limit` as `TimeLimit`, `from_` as `From`: a snake_case name's PascalCase one; `None`
/// for a name that is not snake_case.
fn pascal_case(name: &str) -> Option<String> {
    let snake = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    snake.then(|| {
        (name.split('_'))
            .filter(|part| !part.is_empty())
            .map(|part| part[..1].to_ascii_uppercase() + &part[1..])
            .collect()
    })
}

/// The SDK's call-create parameters (`CallCallsParams`) not carried out here, each with the
/// value that asks for nothing beyond the empty and false ones.
const UNSERVED: &[(&str, &str)] = &[
    ("CancelPlaybackOnDetectMessageEnd", ""),
    ("CancelPlaybackOnMachineDetection", ""),
    ("CustomHeaders", ""),
    ("DeepfakeDetection", ""),
    ("DeepfakeDetectionCallbackUrl", ""),
    ("DetectionMode", "Regular"),
    ("MachineDetectionBeepMaxFrequency", ""),
    ("MachineDetectionBeepMinFrequency", ""),
    ("MachineDetectionBeepMinToneDuration", ""),
    ("MachineDetectionBeepProfile", ""),
    ("MachineDetectionBeepSpectralConfirmation", ""),
    ("MachineDetectionBeepSpectralMinPurity", ""),
    ("MachineDetectionBeepSpectralRejectFaxCng", ""),
    ("MachineDetectionBeepSpectralWindow", ""),
    ("MachineDetectionPromptEndTimeout", ""),
    ("MediaEncryption", ""),
    ("PreferredCodecs", ""),
    ("RecordingTimeout", "0"),
    ("SendRecordingUrl", "true"),
    ("SipRegion", ""),
    ("SuperviseCallSid", ""),
    ("SupervisingRole", ""),
];

/// Places a TeXML call of `application`; the response Telnyx gives (the call as queued).
async fn place(
    api: &Arc<Telnyx>,
    account: &Account,
    application: &Connection,
    f: &Fields,
) -> Result<Value, ApiError> {
    let voice = application
        .texml
        .as_ref()
        .ok_or_else(|| invalid_application(&application.id))?;
    f.refuse_unserved(UNSERVED)?;
    let (to, target) = destination(f).await?;
    let from = f.required("From")?.to_owned();
    let app = voice_app(application, voice, f)?;
    let ring_timeout = ring_timeout(f, "Timeout")?;
    // `CallerId`: the From display name, as Telnyx takes it (at most 128 letters, digits,
    // spaces and `-_~!.+`).
    let display_name = match f.get("CallerId").map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(name)
            if name.chars().count() <= 128
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || " -_~!.+".contains(c)) =>
        {
            Some(name.to_owned())
        }
        Some(name) => {
            return Err(ApiError::param(
                "10015",
                "Invalid value",
                "CallerId",
                format!(
                    "'{name}' is not at most 128 letters, numbers, spaces and -_~!.+ characters."
                ),
            ));
        }
    };
    let channels = super::outbound_voice_profiles::channels(api, account, application, &to).await?;
    let placing = Placing {
        to: (to.clone(), target),
        from: from.clone(),
        display_name,
        ring_timeout,
        channels,
        credentials: f.sip_auth(),
    };
    let call = originate(api, account, placing, app).await?;
    let call_sid = CallId::from_sid(&call).map(CallId::control_id);
    Ok(json!({
        "call_sid": call_sid,
        "from": from,
        "to": to,
        "status": "queued",
    }))
}

/// `key` (ring seconds, 1 to 600; 30 when not given).
pub(super) fn ring_timeout(f: &Fields, key: &str) -> Result<u64, ApiError> {
    match f.get(key) {
        None => Ok(30),
        Some(t) => (t.parse::<u64>().ok())
            .filter(|t| (1..=600).contains(t))
            .ok_or_else(|| ApiError::out_of_range(key, format!("'{t}' is not 1 to 600 seconds."))),
    }
}

/// A TeXML call to place: where (as asked, and as parsed), from whom, how long it rings.
pub(super) struct Placing {
    pub(super) to: (String, Target),
    pub(super) from: String,
    pub(super) display_name: Option<String>,
    pub(super) ring_timeout: u64,
    /// The channel groups of the application's connection it takes a channel of.
    pub(super) channels: Vec<crate::call::ChannelLimit>,
    /// `SipAuthUsername` and `SipAuthPassword`: a SIP `To`'s challenge is answered with them.
    pub(super) credentials: Option<(String, String)>,
}

/// Places a call that runs `app` once answered; its stored SID.
pub(super) async fn originate(
    api: &Arc<Telnyx>,
    account: &Account,
    placing: Placing,
    app: VoiceApp,
) -> Result<String, ApiError> {
    let Placing {
        to: (to, target),
        from,
        display_name,
        ring_timeout,
        channels,
        credentials,
    } = placing;
    let (events_tx, events) = mpsc::channel(256);
    let call = (api.parts.control)
        .originate(
            Originate {
                to: target,
                from: from.clone(),
                display_name,
                headers: Vec::new(),
                ring_timeout: Duration::from_secs(ring_timeout),
                parent: None,
                account: Some(account.sid.clone()),
                system: false,
                channels,
                credentials,
            },
            events_tx,
        )
        .await
        .map_err(|e| originate_error(&to, e, ("To", "From")))?;
    (api.parts.markup).outbound(account.clone(), app, call.clone(), from, to, events);
    Ok(call)
}

/// `To` as a TeXML call takes it: a +E.164 number or a `sip:` URI that can be reached.
pub(super) async fn destination(f: &Fields) -> Result<(String, Target), ApiError> {
    let to = f.required("To")?.to_owned();
    let target = super::calls::reachable(&to, "To").await?;
    Ok((to, target))
}

/// What runs the call: the request's `Url` or `Texml`, else the application's voice URL;
/// its callbacks those of the request, else the application's.
fn voice_app(
    application: &Connection,
    voice: &TexmlVoice,
    f: &Fields,
) -> Result<VoiceApp, ApiError> {
    let texml = f.get("Texml").map(str::to_owned);
    let url = f.url("Url")?;
    let (url, method) = match (&url, &texml) {
        (Some(_), _) => (
            url,
            (f.method("Method")?.or(f.method("UrlMethod")?)).unwrap_or(HttpMethod::Post),
        ),
        (None, Some(_)) => (None, HttpMethod::Post),
        (None, None) => (Some(voice.voice_url.clone()), voice.voice_method),
    };
    let status_callback = f.url("StatusCallback")?;
    let status_callback_method = match &status_callback {
        Some(_) => f
            .method("StatusCallbackMethod")?
            .unwrap_or(HttpMethod::Post),
        None => voice.status_callback_method,
    };
    let mut status_events = f.words("StatusCallbackEvent");
    if status_events.is_empty() {
        status_events.push("completed".into());
    }
    Ok(VoiceApp {
        url,
        method,
        twiml: texml,
        fallback_url: f.url("FallbackUrl")?.or(voice.voice_fallback_url.clone()),
        fallback_method: f.method("FallbackMethod")?.unwrap_or(HttpMethod::Post),
        status_callback: status_callback.or(voice.status_callback.clone()),
        status_callback_method,
        status_events,
        dialect: Dialect::Texml {
            connection_id: application.id.clone(),
        },
        machine_detection: crate::markup::voice::amd::parse(|k| f.get(k).map(str::to_owned))
            .map_err(|(name, message)| ApiError::invalid(name, message))?,
        ..call_options(f)?
    })
}

/// What any call the TeXML API places takes besides what runs it (a call's create, a
/// participant's): its recording (`Record`, `RecordingChannels`, `RecordingTrack`, `Trim`,
/// `RecordingStatusCallback(Method/Event)`) and its `TimeLimit`.
pub(super) fn call_options(f: &Fields) -> Result<VoiceApp, ApiError> {
    let tracks = recording_tracks(f.get("RecordingTrack")).ok_or_else(|| {
        ApiError::invalid(
            "RecordingTrack",
            "'RecordingTrack' is inbound, outbound or both.".into(),
        )
    })?;
    let trim = match f.get("Trim") {
        None | Some("" | "do-not-trim") => false,
        Some("trim-silence") => true,
        Some(t) => {
            return Err(ApiError::invalid(
                "Trim",
                format!("'{t}' is not trim-silence or do-not-trim."),
            ));
        }
    };
    let time_limit = voice::time_limit(f.get("TimeLimit")).map_err(|t| {
        ApiError::out_of_range(
            "TimeLimit",
            format!("'{t}' is not 1 to {} seconds.", voice::MAX_TIME_LIMIT_SECS),
        )
    })?;
    let record = f.flag("Record")?.then(|| CallRecording {
        channels: match f.get("RecordingChannels") {
            Some("dual") => Channels::Dual,
            _ => Channels::Mono,
        },
        tracks,
        trim,
    });
    let recording_callback = match f.url("RecordingStatusCallback")? {
        Some(url) => Some(RecordingCallback {
            url,
            method: f
                .method("RecordingStatusCallbackMethod")?
                .unwrap_or(HttpMethod::Post),
            origin: RecordingOrigin::CallCreate,
            track: recording_track(tracks),
            events: match f.words("RecordingStatusCallbackEvent") {
                e if e.is_empty() => vec!["completed".into()],
                e => e,
            },
        }),
        None => None,
    };
    Ok(VoiceApp {
        record,
        recording_callback,
        time_limit,
        ..VoiceApp::default()
    })
}

/// The call a path names (its call control id, `.json` or not), if it is the account's.
pub(super) async fn stored_call(
    api: &Telnyx,
    account: &Account,
    named: &str,
) -> Result<CallRecord, ApiError> {
    let named = named.trim_end_matches(".json");
    let not_found = || ApiError::not_found(format!("No call {named}."));
    let id = CallId::from_control_id(named).ok_or_else(not_found)?;
    (api.parts.calls.find(&account.sid, &id.sid()).await)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?
        .ok_or_else(not_found)
}

/// A call as TeXML's REST API shows it (Twilio's shape, Telnyx's ids).
fn resource(account: &Account, c: &CallRecord) -> Value {
    let account_id = account_id(account);
    let sid = CallId::from_sid(&c.id).map_or_else(|| c.id.clone(), CallId::control_id);
    let status = match c.status {
        CallStatus::Queued | CallStatus::Initiated => "ringing",
        other => other.as_str(),
    };
    json!({
        "account_sid": account_id,
        "answered_by": null,
        "caller_name": c.from,
        "date_created": rfc2822(c.started_at),
        "date_updated": rfc2822(c.ended_at.or(c.answered_at).unwrap_or(c.started_at)),
        "direction": if c.direction == Direction::Inbound { "inbound" } else { "outbound" },
        "duration": c.duration_secs.to_string(),
        "end_time": c.ended_at.map(rfc2822),
        "from": c.from,
        "from_formatted": formatted_number(&c.from),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "start_time": rfc2822(c.answered_at.unwrap_or(c.started_at)),
        "status": status,
        "to": c.to,
        "to_formatted": formatted_number(&c.to),
        "uri": format!("/v2/texml/Accounts/{account_id}/Calls/{sid}.json"),
    })
}

/// `GET /v2/texml/Accounts/{account}/Calls`: the account's calls in Twilio's list envelope
/// (`calls`, `page`, `page_size`, `next_page_uri`, …) with Twilio's filters (`To`, `From`,
/// `Status`, `StartTime`/`EndTime` and their `<`/`>` forms) and paging (`Page`, `PageSize`).
pub(super) async fn list(
    State(api): State<Arc<Telnyx>>,
    Path(account_path): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let q = texml_rest::query(query.as_deref());
    let (page, size) = texml_rest::paging(&q)?;
    let filter =
        call_filter(&q).map_err(|e| ApiError::param("10015", "Invalid value", "query", e))?;
    let calls = (api.parts.calls)
        .list(&account.sid, &filter, page * size, size + 1)
        .await
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let account_id = account_id(&account);
    Ok(Json(rest_json::envelope(
        "calls",
        &format!("/v2/texml/Accounts/{account_id}/Calls.json"),
        &q,
        (page, size),
        calls,
        |c| c.id.clone(),
        |c| resource(&account, c),
    )))
}

/// `GET /v2/texml/Accounts/{account}/Calls/{call_sid}`.
pub(super) async fn retrieve(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let record = stored_call(&api, &account, &call).await?;
    Ok(Json(resource(&account, &record)))
}

/// `POST /v2/texml/Accounts/{account}/Calls/{call_sid}`: `Status=completed` (or `canceled`,
/// before the answer) ends the call; `Url` or `Texml` replaces the TeXML it runs.
pub(super) async fn update(
    State(api): State<Arc<Telnyx>>,
    Path((account_path, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let account = texml_account(&api, &headers, &account_path)?;
    let record = stored_call(&api, &account, &call).await?;
    let f = Fields::parse(&headers, &body)?;
    let control = &api.parts.control;
    match f.get("Status") {
        None => {}
        Some("completed") => {
            let _ = control.command(&record.id, CallCommand::Hangup).await;
        }
        // Canceled ends only a call not answered yet.
        Some("canceled") if record.answered_at.is_none() => {
            let _ = control.command(&record.id, CallCommand::Hangup).await;
        }
        Some("canceled") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "Status",
                format!("'{other}' is not completed or canceled."),
            ));
        }
    }
    let url = f.url("Url")?;
    let texml = f.get("Texml").map(str::to_owned);
    // Where a running call's progress is reported is set when it starts: moving it is not
    // served.
    f.refuse_unserved(&[("StatusCallback", ""), ("StatusCallbackMethod", "")])?;
    let fallback = match f.url("FallbackUrl")? {
        Some(u) => Some((u, f.method("FallbackMethod")?.unwrap_or(HttpMethod::Post))),
        None => None,
    };
    if url.is_none() && texml.is_none() && fallback.is_some() {
        return Err(ApiError::invalid(
            "FallbackUrl",
            "'FallbackUrl' goes with a new Url or Texml.".into(),
        ));
    }
    if url.is_some() || texml.is_some() {
        let method = f.method("Method")?.unwrap_or(HttpMethod::Post);
        let redirected = record.status == CallStatus::InProgress
            && (api.parts.markup).redirect(&record.id, (url, method), texml, fallback);
        if !redirected {
            return Err(ApiError::unprocessable(
                "The call is not in progress with TeXML running: it cannot be redirected.".into(),
            ));
        }
    }
    let record = stored_call(&api, &account, &call).await?;
    Ok(Json(resource(&account, &record)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_names_are_taken_as_pascal_case_ones() {
        assert_eq!(pascal_case("time_limit").as_deref(), Some("TimeLimit"));
        assert_eq!(pascal_case("from_").as_deref(), Some("From"));
        assert_eq!(pascal_case("texml").as_deref(), Some("Texml"));
        assert_eq!(pascal_case("TimeLimit"), None);
        assert_eq!(pascal_case(""), None);
        let json = |body: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", "application/json".parse().unwrap());
            Fields::parse(&headers, body.as_bytes()).unwrap()
        };
        let f = json(r#"{"to": "+1555", "from_": "+1666", "time_limit": 30}"#);
        assert_eq!(
            (f.get("To"), f.get("From"), f.get("TimeLimit")),
            (Some("+1555"), Some("+1666"), Some("30"))
        );
        let both = json(r#"{"to": "+1", "To": "+2"}"#);
        assert_eq!(
            both.0,
            vec![("To".to_owned(), "+2".to_owned())],
            "PascalCase wins"
        );
    }
}
