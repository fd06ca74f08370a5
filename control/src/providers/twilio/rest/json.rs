//! Wire formats of the REST API: form bodies with repeated keys, JSON responses with Twilio's
//! content type, and the Call resource as the SDKs read it.

use super::ApiError;
use crate::infra::accounts::{HttpMethod, formatted_number};
use crate::infra::store::{CallRecord, CallStatus};
use crate::markup::rfc2822;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Form parameters in order, repeated keys kept.
pub(crate) fn form(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of a parameter.
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// All values of a repeatable parameter, space-separated lists split.
/// `Track`: `inbound_track` (the default), `outbound_track` or `both_tracks` (Streams and
/// real-time Transcriptions alike).
pub(super) fn track(
    params: &[(String, String)],
) -> Result<switchboard_media::TapTracks, super::ApiError> {
    use switchboard_media::TapTracks;
    match param(params, "Track") {
        None | Some("" | "inbound_track") => Ok(TapTracks::Inbound),
        Some("outbound_track") => Ok(TapTracks::Outbound),
        Some("both_tracks") => Ok(TapTracks::Both),
        Some(other) => Err(super::ApiError::bad_request(
            20001,
            format!("Invalid Track: {other}"),
        )),
    }
}

/// Refuses the first of `unserved` — parameters Twilio documents for this request that
/// Switchboard does not carry out — that the request holds: 400 (20001) naming it, rather
/// than a call or participant that silently lacks it. Parameters Twilio does not know are
/// ignored, as Twilio ignores them.
pub(super) fn refuse_unserved(
    params: &[(String, String)],
    unserved: &[&str],
) -> Result<(), ApiError> {
    match params
        .iter()
        .find(|(k, v)| !v.is_empty() && unserved.contains(&k.as_str()))
    {
        Some((k, _)) => Err(ApiError::bad_request(
            20001,
            format!("{k} is not supported by Switchboard"),
        )),
        None => Ok(()),
    }
}

pub(super) fn params_all(params: &[(String, String)], name: &str) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned))
        .collect()
}

/// An HTTP method parameter (`POST` when absent).
pub(super) fn method(
    params: &[(String, String)],
    name: &str,
) -> Result<HttpMethod, super::ApiError> {
    match param(params, name) {
        None | Some("") => Ok(HttpMethod::Post),
        Some(m) => HttpMethod::parse(m)
            .ok_or_else(|| super::ApiError::bad_request(21209, format!("Invalid {name}: {m}"))),
    }
}

/// An http(s) URL parameter (`None` when absent or empty).
pub(super) fn url(
    params: &[(String, String)],
    name: &str,
) -> Result<Option<String>, super::ApiError> {
    match param(params, name).filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(u) => match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => Ok(Some(u.to_owned())),
            _ => Err(super::ApiError::bad_request(
                21205,
                format!("{name} is not a valid URL: {u}"),
            )),
        },
    }
}

/// `RecordingStatusCallbackEvent`: the recording statuses to report (`completed` by default).
pub(super) fn recording_events(params: &[(String, String)]) -> Vec<String> {
    let events = params_all(params, "RecordingStatusCallbackEvent");
    if events.is_empty() {
        vec!["completed".into()]
    } else {
        events
    }
}

/// `Page` and `PageSize` of a list request (Twilio: 50 by default, at most 1000). A page so
/// far that its offset (or the next page's) would not fit a number is refused: the offset
/// and the page URIs are computed from it.
pub(crate) fn paging(q: &[(String, String)]) -> Result<(i64, i64), String> {
    let number = |name: &str, default: i64| match param(q, name) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("Invalid {name}: {v}")),
    };
    let (page, size) = (number("Page", 0)?, number("PageSize", 50)?.clamp(1, 1000));
    match page
        .checked_add(1)
        .and_then(|next| next.checked_mul(size + 1))
    {
        Some(_) => Ok((page, size)),
        None => Err(format!("Invalid Page: {page}")),
    }
}

/// A page of a list in Twilio's envelope: the resources under `key`, and the page URIs that
/// keep the request's filters. `items` holds one more than a page when there is a next one;
/// `sid` names an item for the opaque page tokens.
pub(crate) fn envelope<T>(
    key: &str,
    path: &str,
    q: &[(String, String)],
    (page, page_size): (i64, i64),
    mut items: Vec<T>,
    sid: impl Fn(&T) -> String,
    render: impl Fn(&T) -> Value,
) -> Value {
    let more = items.len() as i64 > page_size;
    items.truncate(page_size as usize);
    let filters: Vec<(&str, &str)> = q
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "PageSize" | "Page" | "PageToken"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page_uri = |n: i64, token: Option<String>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.extend_pairs(&filters);
        s.append_pair("PageSize", &page_size.to_string());
        s.append_pair("Page", &n.to_string());
        if let Some(t) = token {
            s.append_pair("PageToken", &t);
        }
        format!("{path}?{}", s.finish())
    };
    let start = page * page_size;
    let end = start + (items.len() as i64 - 1).max(0);
    let next = more.then(|| page_uri(page + 1, items.last().map(|i| format!("PA{}", sid(i)))));
    let previous =
        (page > 0).then(|| page_uri(page - 1, items.first().map(|i| format!("PB{}", sid(i)))));
    let resources: Vec<Value> = items.iter().map(render).collect();
    let mut envelope = json!({
        "end": end,
        "first_page_uri": page_uri(0, None),
        "next_page_uri": next,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": previous,
        "start": start,
        "uri": page_uri(page, param(q, "PageToken").map(str::to_owned)),
    });
    envelope[key] = Value::Array(resources);
    envelope
}

/// JSON with Twilio's `Content-Type`.
pub(super) struct Json(pub Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// The status a Call resource shows (`initiated` appears only in callbacks).
fn resource_status(s: CallStatus) -> &'static str {
    match s {
        CallStatus::Queued | CallStatus::Initiated => "queued",
        other => other.as_str(),
    }
}

pub(super) fn call_uri(account: &str, sid: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Calls/{sid}.json")
}

/// A party of a call as Twilio names it: `client:IDENTITY` for a registered user (a browser
/// client or a phone dialed as a client), else its number.
fn party(user: Option<&str>, number: &str) -> String {
    match user {
        Some(u) => match crate::call::dial_plan::client_of(u) {
            Some((identity, _)) => format!("client:{identity}"),
            None => format!("client:{u}"),
        },
        None => number.to_owned(),
    }
}

/// A Call resource, every field present (absent values are null).
pub(super) fn call(c: &CallRecord, account: &str) -> Value {
    let to = party(c.user_out.as_deref(), &c.to);
    let from = party(c.user_in.as_deref(), &c.from);
    let date = |t: Option<i64>| t.map(rfc2822);
    let updated = c.ended_at.or(c.answered_at).unwrap_or(c.started_at);
    let duration = (c.status == CallStatus::Completed).then(|| c.duration_secs.to_string());
    let base = format!("/2010-04-01/Accounts/{account}/Calls/{}", c.id);
    let sub = |name: &str| format!("{base}/{name}.json");
    json!({
        "sid": c.id,
        "date_created": rfc2822(c.started_at),
        "date_updated": rfc2822(updated),
        "parent_call_sid": c.parent_id,
        "account_sid": account,
        "to_formatted": formatted_number(&to),
        "to": to,
        "from_formatted": formatted_number(&from),
        "from": from,
        "phone_number_sid": null,
        "status": resource_status(c.status),
        "start_time": date(Some(c.started_at)),
        "end_time": date(c.ended_at),
        "duration": duration,
        "price": null,
        "price_unit": "USD",
        "direction": c.direction.as_str(),
        "answered_by": null,
        "api_version": "2010-04-01",
        "forwarded_from": null,
        "group_sid": null,
        "caller_name": null,
        "queue_time": "0",
        "trunk_sid": null,
        "uri": call_uri(account, &c.id),
        "subresource_uris": {
            "notifications": sub("Notifications"),
            "recordings": sub("Recordings"),
            "payments": sub("Payments"),
            "events": sub("Events"),
            "siprec": sub("Siprec"),
            "streams": sub("Streams"),
            "transcriptions": sub("Transcriptions"),
            "user_defined_message_subscriptions": sub("UserDefinedMessageSubscriptions"),
            "user_defined_messages": sub("UserDefinedMessages"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_whose_offset_overflows_are_refused() {
        let q = |page: &str| form(&format!("Page={page}&PageSize=1000"));
        assert_eq!(paging(&q("3")), Ok((3, 1000)));
        assert!(paging(&q(&i64::MAX.to_string())).is_err());
        assert!(paging(&q(&(i64::MAX / 1000).to_string())).is_err());
        assert!(paging(&q("-1")).is_err());
    }

    #[test]
    fn forms_keep_repeated_keys() {
        let p =
            form("StatusCallbackEvent=initiated&StatusCallbackEvent=ringing+answered&To=%2B1555");
        assert_eq!(param(&p, "To"), Some("+1555"));
        assert_eq!(
            params_all(&p, "StatusCallbackEvent"),
            ["initiated", "ringing", "answered"]
        );
    }
}
