//! The call core (crate `switchboard-core`, re-exported here whole) and its driver: the async
//! shell that owns the channels, the media engine and the store's writer, feeds the sans-IO
//! core and carries out what it asks (see [`driver`]).

pub use switchboard_core::*;

pub mod driver;
pub use driver::control::{BridgeAcross, CallControl, RoomPlace};
pub use driver::{Driver, DriverConfig, shards};

#[cfg(test)]
mod tests;
