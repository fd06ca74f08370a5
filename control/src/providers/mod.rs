//! The provider dialects: translators between each provider's public protocol and the call
//! core.

pub mod twilio;
