//! SIP for Switchboard. Protocol logic here is sans-IO: state machines are fed messages and a
//! clock and return what to send; the tokio transports in [`transport`] only move bytes.

pub mod auth;
pub mod dialog;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod transport;
pub mod ua;
