//! Webhooks to applications: how they are signed (and, later, the durable outbox that
//! delivers them).

pub mod client;
pub mod signature;
