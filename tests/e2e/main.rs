//! The end-to-end tests, one module per suite, in one test binary: each used to be a binary
//! of its own, linking the whole server and compiling the common helpers again, 23 times over.
//! cargo-nextest still runs every test in its own process.

mod common;

mod app_calls;
mod attended_transfer;
mod b2bua;
mod browser_signalling;
mod cli;
mod cluster;
mod cluster_media;
mod cluster_rooms;
mod coaching;
mod console;
mod conversation_relay;
mod digit_flood;
mod flood;
mod fuzz_corpus;
mod hardening;
mod hostile_clients;
mod http_limits;
mod live;
mod liveness;
mod logs;
mod machine_detection;
mod malformed;
mod media_streams;
mod prompt_memory;
mod real_payloads;
mod recording;
mod refer;
mod relay_apps;
mod route_services;
mod route_sets;
mod rtp_latching;
mod signals;
mod sip_tcp_reserve;
mod sip_tls;
mod sip_websocket;
mod speech;
mod srtp;
mod startup;
mod store_outage;
mod telnyx_browser;
mod telnyx_calls;
mod telnyx_media;
mod telnyx_speech;
mod telnyx_streams;
mod telnyx_texml;
mod transfer;
mod trunk_failover;
mod twilio_browser;
mod twilio_rest;
mod twilio_voice;
mod webhook_faults;
mod whisper;
