//! Infrastructure under the core, the services and the dialects: the store (SQLite or
//! PostgreSQL through one sqlx code path), the webhook outbox and its signers, egress (what
//! outbound HTTP may reach), the HTTP server, metrics, accounts and secrets, TLS settings,
//! rate limits, the wall clock, SID minting and the JWTs browsers log in with.

pub mod accounts;
pub mod clock;
pub mod egress;
pub mod http;
pub mod jwt;
pub mod metrics;
pub mod pcap;
pub use switchboard_core::rate;
pub mod secret;
pub use switchboard_core::sid;
pub mod store;
pub mod tls;
pub mod webhook;
