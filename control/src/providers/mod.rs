//! The interfaces: the provider dialects, translators between each provider's public protocol
//! and the call core, and the operator's own admin API.

pub mod admin;
pub mod call_history;
pub mod console;
pub mod frontend;
pub mod live;

pub mod telnyx;
pub mod twilio;
