//! The Twilio dialect (SignalWire's LaML API is the same language): the REST API. The
//! markup its applications answer with runs in [`crate::markup`], shared with TeXML.

pub mod rest;

pub use crate::markup::rfc2822;
