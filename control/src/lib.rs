//! Switchboard's control plane, by layer, each a module:
//!
//! - [`call`] — the call core (its own crate, `switchboard-core`, re-exported): calls, their
//!   legs, commands and events, timers, routing and the account rules it applies (limits,
//!   caller IDs); sans-IO, driven by [`call::Driver`], which is this crate's;
//! - [`services`] — neutral services every dialect uses: speech and audio, media streams,
//!   recordings, transcription, machine detection, queues, forks, the account's resources;
//! - [`markup`] — the TwiML / LaML / TeXML interpreter the markup dialects share;
//! - [`providers`] — the dialects, Twilio (with SignalWire) and Telnyx, which translate
//!   between a provider's public protocol and the core and decide nothing;
//! - [`operator`] — the operator's and frontends' own interfaces: the admin API, the live
//!   socket, calls' histories, the console;
//! - [`infra`] — the store, webhooks, egress, HTTP, metrics, accounts, secrets, clock.
//!
//! Nothing outside [`providers`] names a dialect, and nothing but the dialects names the
//! markup interpreter: the core, the services and the infrastructure are the same for every
//! provider. The store keeps the rows the core fills and its vocabulary (a call's status, who
//! hung up), so it names those types of [`call`]; the services name the core, and the core
//! names nothing of this crate — Cargo holds that edge: `switchboard-core` does not depend on
//! it (what the core needs of a service, such as the caller IDs an account may present, is a
//! trait of its own).

pub mod call;
pub mod infra;
pub mod markup;
pub mod operator;
pub mod providers;
pub mod services;
