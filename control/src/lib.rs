//! Switchboard's control plane, by layer:
//!
//! - the call core — [`call`] (calls, their legs, commands and events, time limits), with
//!   [`routing`], [`inbound`] (which application answers a number) and the account rules it
//!   applies ([`account_limits`], [`caller_id`]);
//! - neutral services every dialect uses — [`prompts`] (speech and audio), [`speech`],
//!   [`stream`] (media streams), [`recordings`], [`recording_transcriptions`],
//!   [`transcription`] (real time), [`machine_detection`], [`queues`], [`fork`], [`verified_caller_ids`], [`phone_numbers`], [`connections`],
//!   [`call_records`];
//! - the dialects — [`providers`]: Twilio (with SignalWire's LaML and the markup interpreter
//!   TeXML shares) and Telnyx, which translate and decide nothing;
//! - infrastructure — [`store`], [`webhook`], [`egress`], [`http`], [`metrics`], [`admin`],
//!   [`accounts`], [`secret`], [`rate`], [`clock`], [`sid`].

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
pub mod recording_transcriptions;
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
