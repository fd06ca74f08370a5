//! The provider dialects: translators between each provider's public protocol and the call
//! core.

pub mod telnyx;
pub mod twilio;
