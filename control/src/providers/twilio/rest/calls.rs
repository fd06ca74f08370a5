//! The Calls resource: create (an outbound call driven by `Url` or `Twiml`), fetch, list with
//! filters and paging, update (hang up, redirect) and delete.

use super::json::{self, Json, form, method, param, params_all, url};
use super::{ApiError, TwilioApi, authenticate};
use crate::accounts::is_sid;
use crate::call::{CallCommand, CallError, Originate, Target};
use crate::providers::twilio::voice::{RecordingCallback, VoiceApp};
use crate::store::{CallFilter, CallRecord, CallStatus};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use switchboard_media::record::Channels;
use switchboard_sip::message::Uri;
use tokio::sync::mpsc;

/// Twilio caps `Twiml` at 4,000 characters.
const MAX_TWIML: usize = 4000;

/// Where `To` goes: `sip:` URIs to their host, `client:` names to registered users, anything
/// else through the routes.
async fn target(to: &str) -> Result<Target, ApiError> {
    let invalid = || ApiError::bad_request(21211, format!("Invalid 'To' Phone Number: {to}"));
    if to.starts_with("sip:") {
        let uri = Uri::try_from(to).map_err(|_| invalid())?;
        let host = uri.host_with_port.host.to_string();
        let port = uri.host_with_port.port.map(|p| *p.value()).unwrap_or(5060);
        let next_hop = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(invalid)?;
        return Ok(Target::Uri { uri, next_hop });
    }
    if let Some(user) = to.strip_prefix("client:") {
        return Ok(Target::User(user.to_owned()));
    }
    let digits = to.strip_prefix('+').unwrap_or(to);
    if digits.is_empty()
        || !digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    {
        return Err(invalid());
    }
    Ok(Target::Number(to.to_owned()))
}

pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?.clone();
    let p = form(&body);
    let to = param(&p, "To")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request(21201, "No 'To' number is specified"))?;
    let from = param(&p, "From")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad_request(21213, "No 'From' number is specified"))?;
    if param(&p, "ApplicationSid").is_some() {
        return Err(ApiError::bad_request(21218, "Invalid ApplicationSid"));
    }
    let voice_url = url(&p, "Url")?;
    let twiml = param(&p, "Twiml")
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if voice_url.is_none() && twiml.is_none() {
        return Err(ApiError::bad_request(21205, "Url parameter is required."));
    }
    if twiml
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_TWIML)
    {
        return Err(ApiError::bad_request(
            21205,
            format!("Twiml is longer than {MAX_TWIML} characters"),
        ));
    }
    let timeout = match param(&p, "Timeout") {
        None | Some("") => 60,
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| (1..=600).contains(t))
            .ok_or_else(|| ApiError::bad_request(21208, format!("Invalid Timeout: {t}")))?,
    };
    let send_digits = param(&p, "SendDigits").filter(|d| !d.is_empty());
    if let Some(d) = send_digits
        && (d.len() > 32 || !d.chars().all(|c| "0123456789ABCDabcd*#wW".contains(c)))
    {
        return Err(ApiError::bad_request(
            21206,
            format!("Invalid SendDigits: {d}"),
        ));
    }
    let record = matches!(param(&p, "Record"), Some("true" | "True"));
    let mut status_events = params_all(&p, "StatusCallbackEvent");
    if status_events.is_empty() {
        status_events.push("completed".into());
    }
    let app = VoiceApp {
        url: voice_url,
        method: method(&p, "Method")?,
        twiml,
        fallback_url: url(&p, "FallbackUrl")?,
        fallback_method: method(&p, "FallbackMethod")?,
        status_callback: url(&p, "StatusCallback")?,
        status_callback_method: method(&p, "StatusCallbackMethod")?,
        status_events,
        send_digits: send_digits.map(str::to_owned),
        record: record.then(|| match param(&p, "RecordingChannels") {
            Some("dual") => Channels::Dual,
            _ => Channels::Mono,
        }),
        machine_detection: match param(&p, "MachineDetection") {
            None | Some("") => false,
            Some("Enable" | "DetectMessageEnd") => true,
            Some(other) => {
                return Err(ApiError::bad_request(
                    20001,
                    format!("Invalid MachineDetection: {other} (Enable or DetectMessageEnd)"),
                ));
            }
        },
        recording_callback: match url(&p, "RecordingStatusCallback")? {
            Some(url) => Some(RecordingCallback {
                url,
                method: method(&p, "RecordingStatusCallbackMethod")?,
                source: "OutboundAPI",
                track: "both",
            }),
            None => None,
        },
    };
    let target = target(to).await?;
    let caller_id = from.strip_prefix("client:").unwrap_or(from).to_owned();
    let (events_tx, events) = mpsc::channel(256);
    let sid = api
        .control
        .originate(Originate {
            to: target,
            from: caller_id,
            ring_timeout: Duration::from_secs(timeout),
            parent: None,
            events: events_tx,
            account: Some(account.sid.clone()),
        })
        .await
        .map_err(|e| match e {
            CallError::NoRoute(code) => ApiError::bad_request(
                21214,
                format!("'To' phone number cannot be reached (SIP {code})"),
            ),
            CallError::NoMedia => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                20503,
                "No media ports free",
            ),
            other => ApiError::internal(other),
        })?;
    api.apps.outbound(
        account.clone(),
        app,
        sid.clone(),
        from.to_owned(),
        to.to_owned(),
        events,
    );
    // Twilio answers a create with the call as queued, whatever has happened since.
    let mut queued = stored_call(&api, &account.sid, &sid).await?;
    queued.status = CallStatus::Queued;
    (queued.answered_at, queued.ended_at, queued.duration_secs) = (None, None, 0);
    Ok((
        StatusCode::CREATED,
        Json(json::call(&queued, account.api_sid())),
    )
        .into_response())
}

/// The `{sid}.json` of a path, when it names a call SID.
fn call_sid(file: &str) -> Option<&str> {
    file.strip_suffix(".json").filter(|s| is_sid(s, "CA"))
}

/// A call of the account, as stored (after everything queued so far is written).
async fn stored_call(api: &TwilioApi, account: &str, sid: &str) -> Result<CallRecord, ApiError> {
    api.writer.sync().await;
    api.store
        .get_call(sid)
        .await
        .map_err(ApiError::internal)?
        .filter(|c| c.account_sid.as_deref() == Some(account))
        .ok_or_else(|| ApiError::not_found(&json::call_uri(account, sid)))
}

pub(super) async fn fetch(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let sid =
        call_sid(&file).ok_or_else(|| ApiError::not_found(&json::call_uri(&account.sid, &file)))?;
    let call = stored_call(&api, &account.sid, sid).await?;
    Ok(Json(json::call(&call, account.api_sid())))
}

pub(super) async fn update(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?.clone();
    let sid = call_sid(&file)
        .ok_or_else(|| ApiError::not_found(&json::call_uri(&account.sid, &file)))?
        .to_owned();
    let call = stored_call(&api, &account.sid, &sid).await?;
    let p = form(&body);
    match param(&p, "Status") {
        None | Some("") => {}
        // Hangs up whatever the state; canceled only what has not been answered.
        Some("completed") => {
            let _ = api.control.command(&sid, CallCommand::Hangup).await;
        }
        Some("canceled") => {
            if call.answered_at.is_none() {
                let _ = api.control.command(&sid, CallCommand::Hangup).await;
            }
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                21218,
                format!("Invalid Status: {other} (completed or canceled)"),
            ));
        }
    }
    let new_url = url(&p, "Url")?;
    let new_twiml = param(&p, "Twiml")
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if new_url.is_some() || new_twiml.is_some() {
        let redirected = call.status.as_str() == "in-progress"
            && api
                .apps
                .redirect(&sid, new_url.clone(), method(&p, "Method")?, new_twiml);
        if !redirected {
            return Err(ApiError::bad_request(
                21220,
                "Call is not in-progress. Cannot redirect.",
            ));
        }
    }
    let call = stored_call(&api, &account.sid, &sid).await?;
    Ok(Json(json::call(&call, account.api_sid())))
}

pub(super) async fn delete(
    State(api): State<TwilioApi>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let sid =
        call_sid(&file).ok_or_else(|| ApiError::not_found(&json::call_uri(&account.sid, &file)))?;
    let call = stored_call(&api, &account.sid, sid).await?;
    if !call.status.is_final() {
        return Err(ApiError::bad_request(
            21220,
            "Call is in progress: hang it up before deleting it.",
        ));
    }
    api.store
        .delete_call(sid)
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?;
    let q = form(query.as_deref().unwrap_or_default());
    let (page, page_size) = json::paging(&q)?;
    let filter = CallFilter {
        to: param(&q, "To").map(str::to_owned),
        from: param(&q, "From").map(str::to_owned),
        status: param(&q, "Status").map(str::to_owned),
        parent: param(&q, "ParentCallSid").map(str::to_owned),
    };
    api.writer.sync().await;
    let calls = api
        .store
        .account_calls(&account.sid, &filter, page * page_size, page_size + 1)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json::envelope(
        "calls",
        &format!("/2010-04-01/Accounts/{}/Calls.json", account.api_sid()),
        &q,
        (page, page_size),
        calls,
        |c| c.id.clone(),
        |c| json::call(c, account.api_sid()),
    )))
}
