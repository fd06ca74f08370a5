//! Webhooks to applications: how they are signed, the client that sends them, and the durable
//! outbox that delivers the fire-and-forget ones.

pub mod client;
pub mod outbox;
pub mod request;
pub mod signature;
