//! A fresh server, before any call: every documented metric family is already exported (at
//! zero, for each label value), and what optional runtime parts are missing is said at
//! start-up.

use crate::common;

use common::*;

/// The families README documents; each must be on a fresh server's `/metrics`.
const FAMILIES: [&str; 20] = [
    "switchboard_calls_active",
    "switchboard_calls_total",
    "switchboard_call_events_dropped_total",
    "switchboard_rtp_packets_relayed_total",
    "switchboard_rtp_packets_dropped_total",
    "switchboard_rtp_port_pairs_free",
    "switchboard_sip_messages_received_total",
    "switchboard_sip_messages_malformed_total",
    "switchboard_sip_messages_dropped_total",
    "switchboard_sip_challenges_total",
    "switchboard_sip_rejected_total",
    "switchboard_sip_tcp_refused_total",
    "switchboard_sip_tls_handshakes_failed_total",
    "switchboard_websockets_refused_total",
    "switchboard_cdr_backlog",
    "switchboard_streams_active",
    "switchboard_streams_total",
    "switchboard_stream_errors_total",
    "switchboard_stream_frames_sent_total",
    "switchboard_stream_frames_dropped_total",
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
    // The port pairs are counted from the first scrape, not after the first call.
    assert_eq!(
        server.metric("switchboard_rtp_port_pairs_free"),
        Some(500.0)
    );
    // README documents each family; a family added without its line there fails here.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for family in FAMILIES {
        assert!(readme.contains(family), "README does not document {family}");
    }
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
