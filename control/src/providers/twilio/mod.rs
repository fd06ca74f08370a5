//! The Twilio dialect (SignalWire's LaML API is the same language): the REST API and the
//! Voice SDK's signalling ([`signal`]). The
//! markup its applications answer with runs in [`crate::markup`], shared with TeXML.

pub mod access_token;
pub mod rest;
pub mod signal;
pub mod user_messages;

pub use crate::markup::rfc2822;
