//! Switchboard's control plane, by layer, each a module:
//!
//! - [`call`] — the call core: calls, their legs, commands and events, timers, routing and
//!   the account rules it applies (limits, caller IDs); sans-IO, driven by [`call::CallCore::run`];
//! - [`services`] — neutral services every dialect uses: speech and audio, media streams,
//!   recordings, transcription, machine detection, queues, forks, the account's resources;
//! - [`markup`] — the TwiML / LaML / TeXML interpreter the markup dialects share;
//! - [`providers`] — the dialects, Twilio (with SignalWire) and Telnyx, which translate
//!   between a provider's public protocol and the core and decide nothing;
//! - [`infra`] — the store, webhooks, egress, HTTP, metrics, accounts, secrets, clock.
//!
//! Lower layers do not name higher ones: the core names services and infrastructure, never
//! a dialect; the markup interpreter names no dialect but its flavours.

pub mod call;
pub mod infra;
pub mod markup;
pub mod providers;
pub mod services;
