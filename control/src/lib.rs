//! Switchboard's control plane: the call core that bridges legs, routing, the CDR store, and
//! the HTTP endpoints.

pub mod account_limits;
pub mod accounts;
pub mod admin;
pub mod call;
pub mod call_records;
pub mod caller_id;
pub mod clock;
pub mod connections;
pub mod egress;
pub mod fork;
pub mod http;
pub mod inbound;
pub mod machine_detection;
pub mod metrics;
pub mod phone_numbers;
pub mod prompts;
pub mod providers;
pub mod queues;
pub mod rate;
pub mod recordings;
pub mod routing;
pub mod secret;
pub mod sid;
pub mod speech;
pub mod store;
pub mod stream;
pub mod transcription;
pub mod verified_caller_ids;
pub mod webhook;
