//! The provider dialects: translators between each provider's public protocol and the call
//! core — Twilio's (with SignalWire's) and Telnyx's.

pub mod telnyx;
pub mod twilio;
