//! The neutral services the call core's commands and every dialect use: speech and audio
//! ([`prompts`], [`speech`]), media streams ([`stream`]), recordings and their
//! transcriptions, real-time transcription, answering-machine detection, queues, media
//! forks, what routes ask of them for their calls, and the account's resources (numbers, connections, SIP logins, verified caller
//! IDs, call records, which application answers a number), and the subscriptions that turn a call's
//! events into webhooks durably. None of them speaks a provider's protocol; a
//! subscription names the dialect's renderer that does.

pub mod account_conferences;
pub mod browser_gateway;
pub mod call_records;
pub mod cluster;
pub mod dial_targets;
pub mod directory;
pub mod fork;
pub mod inbound;
pub mod machine_detection;
pub mod prompts;
pub mod queues;
pub mod recording_recovery;
pub mod recording_transcriptions;
pub mod recordings;
pub mod relay;
pub mod route_services;
pub mod speech;
pub mod stream;
pub mod subject_subscriptions;
pub mod subscriptions;
pub mod transcription;
