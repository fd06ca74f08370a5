//! What real providers send, captured on live calls and published with the apps that logged
//! them (tests/fixtures/real, each file's source in its README), held against what Switchboard
//! sends on a call of the same kind: every field a real payload carries is in ours, under the
//! same name, with the same JSON type and the same format (ids, timestamps, numbers, codec
//! lists, nulls). Twilio: the voice request's form and headers, a Gather's digits, the
//! completed status callback, the media stream's handshake and `start` message. Telnyx:
//! `call.initiated`, `call.answered`, `call.speak.started`, `call.speak.ended` and
//! `call.hangup`, and their headers.

use crate::common;

use axum::Router;
use axum::http::HeaderMap;
use common::sdk_app::telnyx;
use common::voice_app::{App, answers, call_with_phone, listen, numbers_config, records};
use common::ws_app::WsServer;
use common::*;
use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

fn fixture(path: &str) -> String {
    let file = format!("{}/tests/fixtures/real/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The format a real value has, by what it looks like.
fn format_of(field: &str, value: &str) -> &'static str {
    const FORMATS: &[(&str, &str)] = &[
        (
            "uuid",
            r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        ),
        ("call control id", r"^v3:[A-Za-z0-9_-]{20,}$"),
        ("account sid", r"^AC([0-9a-f]{32}|\*{32})$"),
        ("call sid", r"^CA[0-9a-f]{32}$"),
        ("stream sid", r"^MZ[0-9a-f]{32}$"),
        (
            "RFC 3339 time in microseconds",
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$",
        ),
        (
            "RFC 2822 time",
            r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000$",
        ),
        ("E.164 number", r"^\+[1-9]\d{5,14}$"),
        ("decimal", r"^\d+\.\d+$"),
        ("digits", r"^\d+$"),
        ("SIP address", r"^[^@\s:]+@[0-9A-Za-z.-]+(:\d+)?$"),
        ("codec list", r"^[A-Z][A-Z0-9.-]*(,[A-Z][A-Z0-9.-]*)*$"),
    ];
    // Where a provider looked the number up (Switchboard knows no geography, and sends
    // these empty, as Twilio does when its lookup finds nothing): any text.
    let geographic = ["City", "State", "Zip", "Country"]
        .iter()
        .any(|g| field.ends_with(g) && field.len() > g.len());
    if geographic || value.is_empty() {
        return "text";
    }
    FORMATS
        .iter()
        .find(|(_, re)| Regex::new(re).unwrap().is_match(value))
        .map_or("text", |(name, _)| name)
}

/// Every way `ours` differs from `real` in a field `real` has: missing, another type, another
/// format. `path` names where in the payload.
fn differences(path: &str, real: &Value, ours: Option<&Value>, out: &mut Vec<String>) {
    let Some(ours) = ours else {
        out.push(format!("{path}: missing (real: {real})"));
        return;
    };
    match (real, ours) {
        (Value::Object(r), Value::Object(o)) => {
            for (k, v) in r {
                differences(&format!("{path}.{k}"), v, o.get(k), out);
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            if let (Some(r), Some(o)) = (r.first(), o.first()) {
                differences(&format!("{path}[0]"), r, Some(o), out);
            }
        }
        (Value::String(r), Value::String(o)) => {
            let field = path.rsplit(['.', '[']).next().unwrap_or(path);
            let (want, got) = (format_of(field, r), format_of(field, o));
            if want != "text" && want != got {
                out.push(format!("{path}: {o:?} is not a {want} as {r:?} is"));
            }
        }
        (Value::Number(r), Value::Number(o)) => {
            if r.is_f64() != o.is_f64() {
                out.push(format!("{path}: {o} is not a number of the kind {r} is"));
            }
        }
        (Value::Null, Value::Null) | (Value::Bool(_), Value::Bool(_)) => {}
        (r, o) => out.push(format!("{path}: {o} where a real payload has {r}")),
    }
}

/// What real payloads carry that ours do not yet, and why: the relay does not measure jitter
/// (Telnyx's jitter figures of `call_quality_stats`). Each must still be missing — once it is
/// carried, it leaves this list.
const NOT_CARRIED: &[&str] = &[
    "call.hangup.data.payload.call_quality_stats.inbound.jitter_max_variance",
    "call.hangup.data.payload.call_quality_stats.inbound.jitter_packet_count",
];

#[track_caller]
fn assert_carries(what: &str, real: &Value, ours: &Value) {
    let mut out = Vec::new();
    differences(what, real, Some(ours), &mut out);
    for gap in NOT_CARRIED
        .iter()
        .filter(|g| g.starts_with(&format!("{what}.")))
    {
        let at = out
            .iter()
            .position(|d| d.starts_with(&format!("{gap}: missing")));
        let at = at.unwrap_or_else(|| panic!("{gap} is carried now: take it off NOT_CARRIED"));
        out.remove(at);
    }
    assert!(
        out.is_empty(),
        "{what} differs from the real one:\n  {}\nours: {ours:#}",
        out.join("\n  ")
    );
}

/// A form body as a JSON object of strings.
fn form_object(body: &str) -> Value {
    let map: Map<String, Value> = url::form_urlencoded::parse(body.trim().as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(map)
}

/// The parameters of a request the application got, as a JSON object of strings.
fn params_object(hit: &common::voice_app::Hit) -> Value {
    let map: Map<String, Value> = (hit.params.iter())
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map)
}

/// An HTTP request as captured: its headers (names in lower case) and body.
fn http_capture(text: &str) -> (BTreeMap<String, String>, String) {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let headers = (head.lines().skip(1))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (headers, body.to_owned())
}

/// A Twilio call: the application's voice request and Gather action, the completed status
/// callback, and its media stream's handshake and `start`.
#[test]
fn twilio_requests_and_stream_messages_carry_what_real_ones_carry() {
    const NUMBER: &str = "+15557770501";
    let net = Arc::new(Net::new(125));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(WsServer::start(&net.ip(9)));
    let stream = format!(
        r#"<Response><Connect><Stream url="{}"/></Connect></Response>"#,
        ws.url("/media")
    );
    let routes = Router::new()
        .route(
            "/voice",
            answers(
                r#"<Response><Gather numDigits="1" action="/gathered"><Say>Press a key.</Say></Gather></Response>"#,
            ),
        )
        .route("/gathered", answers(stream))
        .route("/status", records());
    let app = rt.block_on(App::serve(&net.ip(9), routes));
    let config = net.two_trunks(&numbers_config(
        &app.base,
        &[(
            NUMBER,
            "voice_url = \"{base}/voice\"\nstatus_callback = \"{base}/status\"",
        )],
    ));
    let server = Server::start(&net, &config);
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    let (_, endpoint) = listen(&phone, Duration::from_millis(500), WAIT);
    let endpoint = endpoint.expect("the Gather's prompt");
    let mut seq = 1;
    send_rfc4733(&phone, endpoint, 7, &mut seq, 8000);

    let mut conn = rt.block_on(ws.accept(WAIT));
    let (_, _connected) = rt.block_on(conn.json(WAIT)).unwrap();
    let (_, start) = rt.block_on(conn.json(WAIT)).unwrap();
    conn.close();
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());

    // The voice request: its parameters and headers.
    let (real_headers, real_body) = http_capture(&fixture("twilio/voice-request.http"));
    let voice = &app.hits_to("/voice", 1, WAIT)[0];
    assert_carries(
        "voice request",
        &form_object(&real_body),
        &params_object(voice),
    );
    let headers = &voice.headers;
    for name in [
        "content-type",
        "x-twilio-signature",
        "i-twilio-idempotency-token",
        "user-agent",
    ] {
        assert!(headers.contains_key(name), "{name} missing: {headers:?}");
    }
    for name in ["content-type", "user-agent"] {
        assert_eq!(headers[name], real_headers[name], "{name}");
    }
    assert_eq!(
        format_of("", &headers["i-twilio-idempotency-token"]),
        "uuid",
        "{headers:?}"
    );

    // The Gather's action: the digit, and `msg`.
    let gathered = &app.hits_to("/gathered", 1, WAIT)[0];
    assert_carries(
        "gather action",
        &form_object(&fixture("twilio/gather-action.form")),
        &params_object(gathered),
    );
    assert_eq!(gathered.param("Digits"), Some("7"));
    assert_eq!(gathered.param("msg"), Some("Gather End"));

    // The completed status callback.
    let status = app.hits_to("/status", 1, WAIT);
    let completed = status
        .iter()
        .find(|h| h.param("CallStatus") == Some("completed"))
        .expect("the completed callback");
    assert_carries(
        "status callback",
        &form_object(&fixture("twilio/status-completed.form")),
        &params_object(completed),
    );

    // The stream: its handshake's headers and its `start`.
    let (real_handshake, _) = http_capture(&fixture("twilio/stream-handshake.http"));
    for name in [
        "user-agent",
        "connection",
        "upgrade",
        "sec-websocket-version",
        "sec-websocket-key",
        "x-twilio-signature",
    ] {
        assert!(
            conn.headers.contains_key(name),
            "{name}: {:?}",
            conn.headers
        );
    }
    for name in ["user-agent", "sec-websocket-version", "upgrade"] {
        assert_eq!(conn.headers[name], real_handshake[name], "{name}");
    }
    let real_start: Value = serde_json::from_str(&fixture("twilio/stream-start.json")).unwrap();
    assert_carries("stream start", &real_start, &start);
}

/// What a Telnyx webhook receiver got: each body with its headers (names in lower case).
type Hooks = Arc<Mutex<Vec<(Value, BTreeMap<String, String>)>>>;

fn telnyx_receiver(rt: &tokio::runtime::Runtime, addr: &str) -> Hooks {
    let hooks: Hooks = Arc::default();
    let sink = hooks.clone();
    let router = Router::new().route(
        "/telnyx",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let headers = (headers.iter())
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            sink.lock().unwrap().push((json(&body), headers));
            async { "" }
        }),
    );
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    hooks
}

/// The first webhook of `event_type`, waited for.
fn hook(hooks: &Hooks, event_type: &str) -> (Value, BTreeMap<String, String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = (hooks.lock().unwrap().iter())
            .find(|(b, _)| b["data"]["event_type"] == event_type)
            .cloned();
        if let Some(found) = found {
            return found;
        }
        assert!(Instant::now() < deadline, "no {event_type}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Telnyx call: an incoming call the app answers, speaks to and hangs up; each of its
/// webhooks against the real one of the same type.
#[test]
fn telnyx_webhooks_carry_what_real_ones_carry() {
    const NUMBER: &str = "+15557770502";
    let net = Arc::new(Net::new(126));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hooks_at = format!("{}:18080", net.ip(6));
    let hooks = telnyx_receiver(&rt, &hooks_at);
    let server = Server::start(
        &net,
        &net.two_trunks(&telnyx::config(&hooks_at, "", &[NUMBER])),
    );
    let (phone, caller) = call_with_phone(&net, &server, NUMBER);
    let auth = format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        telnyx::KEY
    );
    let action = |ccid: &str, name: &str, body: Value| {
        let path = format!("/v2/calls/{ccid}/actions/{name}");
        let (status, reply) = server.request("POST", &path, &auth, body.to_string().as_bytes());
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&reply));
    };
    let (initiated, headers) = hook(&hooks, "call.initiated");
    let ccid = initiated["data"]["payload"]["call_control_id"]
        .as_str()
        .unwrap()
        .to_owned();
    action(&ccid, "answer", json!({}));
    hook(&hooks, "call.answered");
    action(
        &ccid,
        "speak",
        json!({"payload": "Hello there.", "voice": "female", "language": "en-US"}),
    );
    // The caller hears the speech and talks back for a second.
    let (heard, endpoint) = listen(&phone, Duration::from_millis(500), WAIT);
    assert!(heard.len() > 4000, "the speech: {} samples", heard.len());
    send_audio(
        &phone,
        endpoint.unwrap(),
        &switchboard_media::tone::sines(&[700.0], 6000.0, 1000),
        1,
    );
    hook(&hooks, "call.speak.ended");
    action(&ccid, "hangup", json!({}));
    let (hangup, _) = hook(&hooks, "call.hangup");
    let run = caller.join().unwrap();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", server.log());

    for event in [
        "call.initiated",
        "call.answered",
        "call.speak.started",
        "call.speak.ended",
        "call.hangup",
    ] {
        let real: Value = serde_json::from_str(&fixture(&format!("telnyx/{event}.json"))).unwrap();
        let (ours, _) = hook(&hooks, event);
        assert_carries(event, &real, &ours);
    }
    // Details the shapes alone do not show.
    let p = &initiated["data"]["payload"];
    assert_ne!(p["call_session_id"], p["call_leg_id"], "distinct ids: {p}");
    assert_eq!(p["calling_party_type"], "pstn");
    assert_eq!(p["offered_codecs"], "PCMU", "{p}");
    assert_eq!(
        p["from_sip_uri"],
        format!("+15550001@{}:5060", net.ip(2)),
        "{p}"
    );
    let q = &hangup["data"]["payload"]["call_quality_stats"];
    let count = |v: &Value| v.as_str().unwrap().parse::<u64>().unwrap();
    assert!(count(&q["inbound"]["packet_count"]) >= 40, "{q}");
    assert!(count(&q["outbound"]["packet_count"]) >= 40, "{q}");
    assert_eq!(headers["user-agent"], "telnyx-webhooks");
    assert_eq!(headers["content-type"], "application/json");
    for name in ["telnyx-signature-ed25519", "telnyx-timestamp"] {
        assert!(headers.contains_key(name), "{name}: {headers:?}");
    }
}
