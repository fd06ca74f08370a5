//! Every metric family Switchboard exports, described and set to zero when the recorder is
//! installed. A family that only appeared after its first event would be missing from a fresh
//! server's `/metrics`, and dashboards and alerts (`rate(switchboard_calls_total{status="failed"}[5m])`)
//! would see "no data" instead of 0; so each labelled counter is created here for every label
//! value it can take.

use crate::infra::store::CallStatus;

/// Why an INVITE or REGISTER is refused before a call exists (`switchboard_sip_rejected_total`).
pub const SIP_REJECT_REASONS: [&str; 4] = ["unknown-source", "rate", "overload", "transactions"];

/// Why a call was refused by a limit (`switchboard_calls_refused_total`).
pub const CALL_REFUSED_REASONS: [&str; 4] =
    ["account-limit", "caller-id", "store-backlog", "trunk-busy"];

/// Outcomes of a webhook attempt (`switchboard_webhook_attempts_total`).
pub const WEBHOOK_OUTCOMES: [&str; 3] = ["delivered", "failed", "expired"];

/// The families, with their help text. `/metrics` carries each of them from the start.
pub fn register() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "switchboard_calls_active",
        "Calls in progress (bridged or controlled)"
    );
    describe_counter!(
        "switchboard_calls_total",
        "Calls ended, by final status (completed, busy, no-answer, failed, canceled)"
    );
    describe_counter!(
        "switchboard_call_events_dropped_total",
        "Call events not delivered to a subscriber that did not keep up"
    );
    describe_counter!(
        "switchboard_rtp_packets_relayed_total",
        "RTP packets relayed between call legs"
    );
    describe_counter!(
        "switchboard_rtp_packets_relayed_kernel_total",
        "Of the RTP packets relayed, those the kernel relayed (media.kernel_relay)"
    );
    describe_counter!(
        "switchboard_rtp_packets_dropped_total",
        "RTP packets dropped by the media engine (unknown source, malformed, no peer)"
    );
    describe_counter!(
        "switchboard_srtp_packets_rejected_total",
        "SRTP and SRTCP packets refused by the media engine (bad tag, replay, wrong key); also counted as dropped"
    );
    describe_gauge!(
        "switchboard_rtp_port_pairs_free",
        "RTP/RTCP port pairs free"
    );
    describe_gauge!(
        "switchboard_sip_queue_delay_seconds",
        "The standing queue in front of the call core: the least time a SIP message waited in the last tenth of a second"
    );
    describe_gauge!(
        "switchboard_sip_admission_rate",
        "New calls a second overload control admits (0: it is not limiting)"
    );
    describe_counter!(
        "switchboard_sip_messages_received_total",
        "SIP messages received"
    );
    describe_counter!(
        "switchboard_sip_messages_malformed_total",
        "SIP messages that did not parse"
    );
    describe_counter!(
        "switchboard_sip_messages_dropped_total",
        "SIP messages dropped (queues full, unusable)"
    );
    describe_counter!(
        "switchboard_sip_challenges_total",
        "Digest challenges sent to peers"
    );
    describe_counter!(
        "switchboard_sip_rejected_total",
        "Requests refused before a call exists, by reason (unknown-source: 403; rate: a source over its rate of new requests, dropped; overload: 503 past what the core carries; transactions: 503 with the transaction table full)"
    );
    describe_counter!(
        "switchboard_sip_tcp_refused_total",
        "TCP connections closed at accept: over the total or per-address cap"
    );
    describe_counter!(
        "switchboard_sip_tls_handshakes_failed_total",
        "SIP TLS handshakes that failed or timed out, accepted or opened (a certificate not trusted or not naming the peer, a peer speaking no TLS)"
    );
    describe_counter!(
        "switchboard_api_requests_limited_total",
        "REST requests refused with 429 (20429): over their account's rate"
    );
    describe_counter!(
        "switchboard_calls_refused_total",
        "Calls refused by a limit, by reason (account-limit, caller-id, store-backlog)"
    );
    describe_counter!(
        "switchboard_http_auth_throttled_total",
        "API requests answered 429 because their address failed authentication too often"
    );
    describe_counter!(
        "switchboard_websockets_refused_total",
        "Browser and live sockets refused, by reason: places (503: over the total or per-address cap), account (signed-in sockets over the account's cap)"
    );
    describe_counter!(
        "switchboard_sip_trace_dropped_total",
        "SIP messages of calls' ladders not kept: their queue was full or the database failed"
    );
    describe_counter!(
        "switchboard_route_services_refused_total",
        "Routed calls whose route asked for a stream, transcripts or machine detection, handed to route services that were not taking calls"
    );
    describe_gauge!("switchboard_cdr_backlog", "CDR rows waiting to be written");
    describe_gauge!(
        "switchboard_trunk_up",
        "1 while a trunk probed with OPTIONS (options_interval_secs) answers, 0 while it is down"
    );
    describe_counter!(
        "switchboard_webhook_attempts_total",
        "Webhook attempts from the outbox, by outcome (delivered; failed, to be retried; expired, given up)"
    );
    describe_counter!(
        "switchboard_webhooks_dropped_total",
        "Webhooks dropped while the database was away: past the 65,536 held in memory for it"
    );
    describe_gauge!(
        "switchboard_streams_active",
        "Media streams connected to applications"
    );
    describe_counter!(
        "switchboard_streams_total",
        "Media streams started (connected or not)"
    );
    describe_counter!(
        "switchboard_relay_sessions_total",
        "ConversationRelay sessions whose application's socket opened"
    );
    describe_counter!(
        "switchboard_relay_interruptions_total",
        "Times a caller cut a ConversationRelay agent short"
    );
    describe_counter!(
        "switchboard_stream_errors_total",
        "Media stream failures and warnings, by reason"
    );
    describe_counter!(
        "switchboard_stream_frames_sent_total",
        "20 ms audio frames sent to applications over media streams"
    );
    describe_counter!(
        "switchboard_stream_frames_dropped_total",
        "20 ms frames for a media stream dropped because its socket did not keep up"
    );
    describe_counter!(
        "switchboard_stream_frames_played_total",
        "20 ms frames of application audio queued for playing into calls"
    );
    describe_counter!(
        "switchboard_stream_frames_discarded_total",
        "20 ms frames of application audio discarded beyond a stream's buffer limit"
    );

    for g in [
        "switchboard_calls_active",
        "switchboard_rtp_port_pairs_free",
        "switchboard_cdr_backlog",
        "switchboard_streams_active",
        "switchboard_sip_queue_delay_seconds",
        "switchboard_sip_admission_rate",
    ] {
        metrics::gauge!(g).set(0.0);
    }
    for c in [
        "switchboard_call_events_dropped_total",
        "switchboard_rtp_packets_relayed_total",
        "switchboard_rtp_packets_relayed_kernel_total",
        "switchboard_rtp_packets_dropped_total",
        "switchboard_srtp_packets_rejected_total",
        "switchboard_sip_messages_received_total",
        "switchboard_sip_messages_malformed_total",
        "switchboard_sip_messages_dropped_total",
        "switchboard_sip_challenges_total",
        "switchboard_sip_tcp_refused_total",
        "switchboard_sip_tls_handshakes_failed_total",
        "switchboard_api_requests_limited_total",
        "switchboard_http_auth_throttled_total",
        "switchboard_websockets_refused_total",
        "switchboard_webhooks_dropped_total",
        "switchboard_streams_total",
        "switchboard_relay_sessions_total",
        "switchboard_relay_interruptions_total",
        "switchboard_stream_frames_sent_total",
        "switchboard_stream_frames_dropped_total",
        "switchboard_stream_frames_played_total",
        "switchboard_stream_frames_discarded_total",
        "switchboard_sip_trace_dropped_total",
        "switchboard_route_services_refused_total",
    ] {
        metrics::counter!(c).absolute(0);
    }
    for status in CallStatus::ALL.into_iter().filter(|s| s.is_final()) {
        metrics::counter!("switchboard_calls_total", "status" => status.as_str()).absolute(0);
    }
    for outcome in WEBHOOK_OUTCOMES {
        metrics::counter!("switchboard_webhook_attempts_total", "outcome" => outcome).absolute(0);
    }
    for reason in CALL_REFUSED_REASONS {
        metrics::counter!("switchboard_calls_refused_total", "reason" => reason).absolute(0);
    }
    for reason in SIP_REJECT_REASONS {
        metrics::counter!("switchboard_sip_rejected_total", "reason" => reason).absolute(0);
    }
    // Several failures share a reason: setting one to zero twice is harmless.
    for reason in
        crate::services::stream::Failure::ALL.map(crate::services::stream::Failure::reason)
    {
        metrics::counter!("switchboard_stream_errors_total", "reason" => reason).absolute(0);
    }
}
