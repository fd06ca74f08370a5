//! The Twilio dialect (SignalWire's LaML API is the same language): TwiML, and later the REST
//! API and webhooks.

pub mod rest;
pub mod twiml;
pub mod voice;
