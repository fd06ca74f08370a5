//! The Calls resource: create (an outbound call driven by `Url` or `Twiml`), fetch, list with
//! filters and paging, update (hang up, redirect) and delete.

use super::json::{self, Json, form, method, param, params_all, url};
use super::{ApiError, Listing, TwilioApi, authenticate};
use crate::call::{CallCommand, CallError, Originate, RecordingOrigin, Target};
use crate::infra::accounts::{Account, ConnectionKind};
use crate::infra::sid::is_sid;
use crate::infra::store::{CallFilter, CallRecord, CallStatus};
use crate::markup::voice::{
    CallRecording, RecordingCallback, VoiceApp, amd, recording_track, recording_tracks,
    sip_credentials, time_limit,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use switchboard_media::record::Channels;
use tokio::sync::mpsc;

/// Twilio caps `Twiml` at 4,000 characters.
const MAX_TWIML: usize = 4000;

/// Where `To` goes: `sip:` URIs to their host, `client:` names to registered users, anything
/// else through the routes.
async fn target(to: &str) -> Result<Target, ApiError> {
    crate::services::dial_targets::resolve(to)
        .await
        .ok_or_else(|| ApiError::bad_request(21211, format!("Invalid 'To' Phone Number: {to}")))
}

/// Calls create's parameters (twilio-node's `CallListInstanceCreateOptions`) not carried out
/// here.
const UNSERVED: &[&str] = &[
    "RecordingConfigurationId",
    "Passports",
    "Byoc",
    "CallReason",
    "CallToken",
    "ClientNotificationUrl",
];

pub(super) async fn create(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let account = authenticate(&api.directory, &headers, &account)?.clone();
    let p = form(&body);
    super::json::refuse_unserved(&p, UNSERVED)?;
    let (to, from) = to_and_from(&p)?;
    // An App of the account runs the call: its voice settings, its callbacks (the request's
    // `Method`, `Fallback*` and `StatusCallback*` set aside, as Twilio does).
    let application = match param(&p, "ApplicationSid").filter(|s| !s.is_empty()) {
        Some(sid) => Some(
            (api.connections.get(&account.sid, sid))
                .filter(|r| r.connection.kind() == ConnectionKind::TwimlApp)
                .and_then(|r| r.connection.texml)
                .ok_or_else(|| ApiError::bad_request(21218, "Invalid ApplicationSid"))
                .map(|voice| (sid.to_owned(), voice))?,
        ),
        None => None,
    };
    let voice_url = url(&p, "Url")?;
    let twiml = param(&p, "Twiml")
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if voice_url.is_none() && twiml.is_none() && application.is_none() {
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
    let timeout = ring_timeout(&p)?;
    let send_digits = param(&p, "SendDigits").filter(|d| !d.is_empty());
    if let Some(d) = send_digits
        && (d.len() > 32 || !d.chars().all(|c| "0123456789ABCDabcd*#wW".contains(c)))
    {
        return Err(ApiError::bad_request(
            21206,
            format!("Invalid SendDigits: {d}"),
        ));
    }
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
        ..call_options(&p, send_digits)?
    };
    let app = match application {
        Some((sid, voice)) => VoiceApp {
            application_sid: Some(sid),
            ..VoiceApp::of_voice(voice, Default::default())
        }
        .with_call_options(app),
        None => app,
    };
    // `CallerId` is what the callee sees when it differs from `From` (a SIP or client call).
    let presented = param(&p, "CallerId")
        .filter(|c| !c.is_empty())
        .unwrap_or(from);
    let sid = place_call(
        &api,
        &account,
        (to, from, presented),
        timeout,
        app,
        sip_auth(&p),
    )
    .await?;
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

/// What a call's create asks besides its application (Calls and conference Participants
/// alike): `SendDigits` once answered, `Record` with `RecordingChannels`, `RecordingTrack`,
/// `Trim` and the recording's status callback, machine detection, `TimeLimit`.
pub(super) fn call_options(
    p: &[(String, String)],
    send_digits: Option<&str>,
) -> Result<VoiceApp, ApiError> {
    let record = matches!(param(p, "Record"), Some("true" | "True"));
    let tracks = recording_tracks(param(p, "RecordingTrack")).ok_or_else(|| {
        let name = param(p, "RecordingTrack").unwrap_or_default();
        ApiError::bad_request(20001, format!("Invalid RecordingTrack: {name}"))
    })?;
    // Twilio trims a call's recording unless asked not to.
    let trim = match param(p, "Trim") {
        None | Some("" | "trim-silence") => true,
        Some("do-not-trim") => false,
        Some(t) => return Err(ApiError::bad_request(20001, format!("Invalid Trim: {t}"))),
    };
    let time_limit = time_limit(param(p, "TimeLimit"))
        .map_err(|t| ApiError::bad_request(20001, format!("Invalid TimeLimit: {t}")))?;
    Ok(VoiceApp {
        send_digits: send_digits.map(str::to_owned),
        record: record.then(|| CallRecording {
            channels: match param(p, "RecordingChannels") {
                Some("dual") => Channels::Dual,
                _ => Channels::Mono,
            },
            tracks,
            trim,
        }),
        // SendDigits turns detection off (Twilio: the digits would be heard as the greeting).
        machine_detection: amd::parse(|k| param(p, k).map(str::to_owned))
            .map_err(|(_, message)| ApiError::bad_request(20001, message))?
            .filter(|_| send_digits.is_none()),
        recording_callback: match url(p, "RecordingStatusCallback")? {
            Some(url) => Some(RecordingCallback {
                url,
                method: method(p, "RecordingStatusCallbackMethod")?,
                origin: RecordingOrigin::CallCreate,
                track: recording_track(tracks),
                events: json::recording_events(p),
            }),
            None => None,
        },
        time_limit,
        ..VoiceApp::default()
    })
}

/// `SipAuthUsername` and `SipAuthPassword`: what a SIP `To`'s challenge is answered with.
pub(super) fn sip_auth(p: &[(String, String)]) -> Option<(String, String)> {
    sip_credentials(|k| param(p, k))
}

/// `Timeout`: how long the callee may ring, 1 to 600 s (60 by default).
pub(super) fn ring_timeout(p: &[(String, String)]) -> Result<u64, ApiError> {
    match param(p, "Timeout") {
        None | Some("") => Ok(60),
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| (1..=600).contains(t))
            .ok_or_else(|| ApiError::bad_request(21208, format!("Invalid Timeout: {t}"))),
    }
}

/// `To` and `From`, both required.
pub(super) fn to_and_from(p: &[(String, String)]) -> Result<(&str, &str), ApiError> {
    let to = param(p, "To")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request(21201, "No 'To' number is specified"))?;
    let from = param(p, "From")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad_request(21213, "No 'From' number is specified"))?;
    Ok((to, from))
}

/// Places a call `to` (from `from`, showing `caller_id`) run by `app` once answered; its SID.
pub(super) async fn place_call(
    api: &TwilioApi,
    account: &Account,
    (to, from, caller_id): (&str, &str, &str),
    ring_timeout_secs: u64,
    app: VoiceApp,
    credentials: Option<(String, String)>,
) -> Result<String, ApiError> {
    let target = target(to).await?;
    let caller_id = caller_id
        .strip_prefix("client:")
        .unwrap_or(caller_id)
        .to_owned();
    let (events_tx, events) = mpsc::channel(256);
    let sid = api
        .control
        .originate(
            Originate {
                to: target,
                from: caller_id,
                display_name: None,
                headers: Vec::new(),
                ring_timeout: Duration::from_secs(ring_timeout_secs),
                parent: None,
                account: Some(account.sid.clone()),
                system: false,
                channels: Vec::new(),
                credentials,
            },
            events_tx,
        )
        .await
        .map_err(originate_error)?;
    api.apps.outbound(
        account.clone(),
        app,
        sid.clone(),
        from.to_owned(),
        to.to_owned(),
        events,
    );
    Ok(sid)
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
    // Where a running call's progress is reported is set when it starts: moving it is not
    // served.
    super::json::refuse_unserved(&p, &["StatusCallback", "StatusCallbackMethod"])?;
    let fallback = match url(&p, "FallbackUrl")? {
        Some(u) => Some((u, method(&p, "FallbackMethod")?)),
        None => None,
    };
    let time_limit = call_options(&p, None)?.time_limit;
    match param(&p, "Status") {
        None | Some("") => {}
        // Hangs up whatever the state; canceled only what has not been answered. A call the
        // store says is up but no node carries (its node died) is not in progress: saying so
        // beats a 200 that hangs up nothing.
        Some("completed") => {
            let hung_up = api.control.command(&sid, CallCommand::Hangup).await;
            if let Err(CallError::NotFound(_)) = hung_up
                && !call.status.is_final()
            {
                return Err(ApiError::bad_request(
                    21220,
                    "Call is not in-progress. Cannot update it: the node carrying it is gone.",
                ));
            }
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
    if new_url.is_none() && new_twiml.is_none() && fallback.is_some() {
        return Err(ApiError::bad_request(
            21205,
            "FallbackUrl goes with a new Url or Twiml.",
        ));
    }
    if new_url.is_some() || new_twiml.is_some() {
        let to = (new_url.clone(), method(&p, "Method")?);
        let redirected = call.status.as_str() == "in-progress"
            && api.apps.redirect(&sid, to, new_twiml, fallback);
        if !redirected {
            return Err(ApiError::bad_request(
                21220,
                "Call is not in-progress. Cannot redirect.",
            ));
        }
    }
    let hanging_up = param(&p, "Status").is_some_and(|s| !s.is_empty());
    if let Some(limit) = time_limit.filter(|_| !hanging_up) {
        // The call lasts at most that long from its answer: what is left of it from now.
        let elapsed = (call.answered_at)
            .map(|at| (crate::infra::clock::now_ms() - at).max(0) as u64)
            .unwrap_or(0);
        let left = limit.saturating_sub(Duration::from_millis(elapsed));
        if call.status.is_final()
            || api
                .control
                .command(&sid, CallCommand::LimitDuration(left))
                .await
                .is_err()
        {
            return Err(ApiError::bad_request(
                21220,
                "Call is not in-progress. Cannot update its TimeLimit.",
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

/// A date (`YYYY-MM-DD`, the whole UTC day) or an RFC 3339 time, as Unix milliseconds: where
/// it starts and where it ends (a time is an instant: both are the same). Midnight UTC is a
/// day: the SDKs send a date as `YYYY-MM-DDT00:00:00Z`.
fn parse_time(name: &str, v: &str) -> Result<(i64, i64), String> {
    const DAY_MS: i64 = 86_400_000;
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let ms = match time::Date::parse(v, &day) {
        Ok(date) => date.midnight().assume_utc().unix_timestamp() * 1000,
        Err(_) => time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .map_err(|_| format!("Invalid {name}: {v}"))?,
    };
    Ok(if ms % DAY_MS == 0 {
        (ms, ms + DAY_MS)
    } else {
        (ms, ms)
    })
}

/// Twilio's `X`, `X<` (on or before) and `X>` (on or after) filters as `[from, before)`.
pub(super) fn time_range(
    q: &[(String, String)],
    name: &str,
) -> Result<(Option<i64>, Option<i64>), String> {
    let get = |suffix: &str| {
        let key = format!("{name}{suffix}");
        match param(q, &key).filter(|v| !v.is_empty()) {
            Some(v) => parse_time(&key, v).map(Some),
            None => Ok(None),
        }
    };
    let (on, before, after) = (get("")?, get("<")?, get(">")?);
    // An instant `<` includes itself: the bound is the next millisecond.
    let until = |(start, end): (i64, i64)| if start == end { end + 1 } else { end };
    let from = on.map(|(s, _)| s).max(after.map(|(s, _)| s));
    let before = match (on.map(until), before.map(until)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok((from, before))
}

/// The filters of a Calls list (Twilio's, and TeXML's which copies it): `To`, `From`,
/// `Status`, `ParentCallSid`, and `StartTime`/`EndTime` with their `<` and `>` forms.
pub(crate) fn call_filter(q: &[(String, String)]) -> Result<CallFilter, String> {
    let (started_from, started_before) = time_range(q, "StartTime")?;
    let (ended_from, ended_before) = time_range(q, "EndTime")?;
    let given = |name: &str| param(q, name).map(str::to_owned);
    Ok(CallFilter {
        to: given("To"),
        from: given("From"),
        status: given("Status"),
        parent: given("ParentCallSid"),
        started_from,
        started_before,
        ended_from,
        ended_before,
    })
}

pub(super) async fn list(
    State(api): State<TwilioApi>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json, ApiError> {
    let list = Listing::new(&api.directory, &headers, &account, query)?;
    let filter = call_filter(&list.q).map_err(|e| ApiError::bad_request(20001, e))?;
    api.writer.sync().await;
    let (offset, limit) = list.offset_limit();
    let calls = api
        .store
        .account_calls(&list.account.sid, &filter, offset, limit)
        .await
        .map_err(ApiError::internal)?;
    let api_sid = list.account.api_sid();
    Ok(list.respond(
        "calls",
        "Calls.json",
        calls,
        |c| c.id.clone(),
        |c| json::call(c, api_sid),
    ))
}

/// A call the core would not place, in Twilio's words.
pub(super) fn originate_error(e: CallError) -> ApiError {
    match e {
        CallError::NoRoute(code) => ApiError::bad_request(
            21214,
            format!("'To' phone number cannot be reached (SIP {code})"),
        ),
        CallError::NotAllowed(uri) => {
            ApiError::bad_request(21215, format!("Account not authorized to call {uri}"))
        }
        CallError::NoMedia => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "No media ports free",
        ),
        CallError::Overloaded => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Service is overloaded: call records are not being stored; retry later",
        ),
        CallError::AccountLimit(exceeded) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            20429,
            format!("Too Many Requests: {exceeded}"),
        ),
        CallError::CallerIdNotAllowed(from) => ApiError::bad_request(
            21210,
            format!(
                "The source phone number provided, {from}, is not yet verified for your \
                 account. You may only make calls from phone numbers that you've verified \
                 or purchased from Twilio."
            ),
        ),
        CallError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Service unavailable: this node is shutting down; retry",
        ),
        other => ApiError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn time_filters_are_days_or_instants() {
        const DAY: i64 = 86_400_000;
        // 2024-01-02 00:00:00 UTC
        let jan2 = 1_704_153_600_000;
        assert_eq!(
            time_range(&q(&[("StartTime", "2024-01-02")]), "StartTime").unwrap(),
            (Some(jan2), Some(jan2 + DAY))
        );
        // On or after / on or before, whole days.
        assert_eq!(
            time_range(
                &q(&[("StartTime>", "2024-01-02"), ("StartTime<", "2024-01-03")]),
                "StartTime"
            )
            .unwrap(),
            (Some(jan2), Some(jan2 + 2 * DAY))
        );
        assert_eq!(
            time_range(&q(&[("EndTime<", "2024-01-02T00:00:10Z")]), "EndTime").unwrap(),
            (None, Some(jan2 + 10_001))
        );
        assert_eq!(
            time_range(&q(&[("StartTime", "2024-01-02T00:00:00Z")]), "StartTime").unwrap(),
            (Some(jan2), Some(jan2 + DAY))
        );
        assert_eq!(time_range(&q(&[]), "StartTime").unwrap(), (None, None));
        let bad = time_range(&q(&[("StartTime>", "yesterday")]), "StartTime").unwrap_err();
        assert_eq!(bad, "Invalid StartTime>: yesterday");
    }
}
