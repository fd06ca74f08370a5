//! A fresh server, before any call: every documented metric family is already exported (at
//! zero, for each label value), and what optional runtime parts are missing is said at
//! start-up.

use crate::common;

use common::*;

/// The families docs/features.md documents; each must be on a fresh server's `/metrics`, and it
/// exports no other.
const FAMILIES: [&str; 36] = [
    "switchboard_calls_active",
    "switchboard_calls_total",
    "switchboard_call_events_dropped_total",
    "switchboard_call_subscribers",
    "switchboard_rtp_packets_relayed_total",
    "switchboard_rtp_packets_relayed_kernel_total",
    "switchboard_rtp_packets_dropped_total",
    "switchboard_rtp_port_pairs_free",
    "switchboard_sip_messages_received_total",
    "switchboard_sip_messages_malformed_total",
    "switchboard_sip_messages_dropped_total",
    "switchboard_sip_challenges_total",
    "switchboard_sip_rejected_total",
    "switchboard_sip_queue_delay_seconds",
    "switchboard_sip_admission_rate",
    "switchboard_sip_tcp_refused_total",
    "switchboard_sip_tls_handshakes_failed_total",
    "switchboard_websockets_refused_total",
    "switchboard_calls_refused_total",
    "switchboard_api_requests_limited_total",
    "switchboard_http_auth_throttled_total",
    "switchboard_srtp_packets_rejected_total",
    "switchboard_webhook_attempts_total",
    "switchboard_webhooks_dropped_total",
    "switchboard_stream_frames_played_total",
    "switchboard_stream_frames_discarded_total",
    "switchboard_cdr_backlog",
    "switchboard_streams_active",
    "switchboard_streams_total",
    "switchboard_relay_sessions_total",
    "switchboard_relay_interruptions_total",
    "switchboard_stream_errors_total",
    "switchboard_stream_frames_sent_total",
    "switchboard_stream_frames_dropped_total",
    "switchboard_sip_trace_dropped_total",
    "switchboard_route_services_refused_total",
];

#[test]
fn a_fresh_server_exports_every_metric_family_at_zero() {
    let net = Net::new(30);
    let server = Server::start(&net, "");
    let (status, body) = server.http_get("/metrics");
    assert_eq!(status, 200);
    for family in FAMILIES {
        assert!(
            body.lines()
                .any(|l| l.starts_with(&format!("# TYPE {family} "))),
            "{family} is missing:\n{body}"
        );
    }
    for status in ["completed", "busy", "no-answer", "failed", "canceled"] {
        assert_eq!(
            server.metric(&format!("switchboard_calls_total{{status=\"{status}\"}}")),
            Some(0.0),
            "{body}"
        );
    }
    assert_eq!(server.metric("switchboard_calls_active"), Some(0.0));
    assert_eq!(
        server.metric("switchboard_sip_rejected_total{reason=\"unknown-source\"}"),
        Some(0.0)
    );
    // The port pairs are counted from the first scrape, not after the first call: the
    // range's 500, less the one its media thread's browser socket took.
    assert_eq!(
        server.metric("switchboard_rtp_port_pairs_free"),
        Some(499.0)
    );
    // The documentation (docs/features.md, Observability) names each family; a family added
    // without its line there fails here.
    let documented =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/features.md")).unwrap();
    for family in FAMILIES {
        assert!(
            documented.contains(family),
            "docs/features.md does not document {family}"
        );
    }
    // And every family the server exports is one of them.
    let exported: Vec<&str> = (body.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let unlisted: Vec<&&str> = exported.iter().filter(|f| !FAMILIES.contains(f)).collect();
    assert!(
        unlisted.is_empty(),
        "exported, not documented: {unlisted:?}"
    );
}

#[test]
fn start_up_says_that_espeak_ng_is_missing() {
    let net = Net::new(31);
    // No espeak-ng on this PATH (the server needs nothing else from it).
    let server = Server::start_with(&net, "", &[("PATH", "/nonexistent")]);
    let log = server.log();
    assert!(
        log.contains("text to speech unavailable") && log.contains("espeak-ng"),
        "{log}"
    );
    drop(server);

    // Without the speech models (they are not in this server's folder), espeak-ng speaks,
    // and the log says where recognition and the neural voice would come from.
    let net = Net::new(32);
    let server = Server::start(&net, "");
    let log = server.log();
    assert!(
        log.contains("text to speech") && log.contains("engine=\"espeak-ng\""),
        "{log}"
    );
    assert!(!log.contains("text to speech unavailable"), "{log}");
    assert!(
        log.contains("speech recognition unavailable") && log.contains("install-speech.sh"),
        "{log}"
    );
}

/// `/openapi.json` describes Switchboard's own routes, and the server answers as described:
/// every documented operation (with the admin token, an account of the configuration and a
/// valid body) gets one of the statuses the description lists for it, and a method the
/// description does not name for a path gets 405.
#[test]
fn the_own_api_answers_as_its_description_says() {
    use common::voice_app::{ACCOUNT, TOKEN};
    let net = Net::new(33);
    let account = format!("[[accounts]]\nsid = \"{ACCOUNT}\"\nauth_token = \"{TOKEN}\"\n");
    let server = Server::start_with(
        &net,
        &net.two_trunks(&account),
        &[("SWITCHBOARD_HTTP__ADMIN_TOKEN", "described-admin")],
    );
    let (status, body) = server.request("GET", "/openapi.json", "", b"");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let headers = "Authorization: Bearer described-admin\r\nContent-Type: application/json\r\n";
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{account}", ACCOUNT)
            .replace("{range}", "%2B1555123%2A")
            .replace("{call}", "CA00000000000000000000000000000000")
            .replace("{file}", "RE00000000000000000000000000000000.wav");
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let body: &[u8] = match (method.as_str(), path.as_str()) {
                ("post", p) if p.ends_with("/number_ranges") => br#"{"range": "+1555123*"}"#,
                ("put", p) if p.ends_with("/limits") => {
                    br#"{"max_calls": 5, "calls_per_second": 2}"#
                }
                ("put", "/admin/v1/log") => br#"{"level": "info"}"#,
                _ => b"",
            };
            let (status, answer) = server.request(&method.to_uppercase(), &concrete, headers, body);
            let listed = &operation["responses"][status.to_string()];
            assert!(
                !listed.is_null(),
                "{method} {path}: {status} is not among its documented responses: {}",
                String::from_utf8_lossy(&answer)
            );
            operations += 1;
        }
        let undescribed = ["get", "post", "put", "delete", "patch"]
            .into_iter()
            .find(|m| item.get(*m).is_none())
            .unwrap();
        let (status, _) = server.request(&undescribed.to_uppercase(), &concrete, headers, b"");
        assert_eq!(status, 405, "{undescribed} {path}");
    }
    assert_eq!(operations, 28);
}
