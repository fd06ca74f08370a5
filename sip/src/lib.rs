//! SIP for Switchboard. Protocol logic here is sans-IO: state machines are fed messages and a
//! clock and return what to send; the tokio transports in [`transport`] only move bytes.

pub mod auth;
pub mod dialog;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod shard;
pub mod transaction;
pub mod transport;
pub mod ua;

/// The hash tables looked up for every message (transactions, dialogs, legs). Their keys come
/// from the network (branches, Call-IDs, tags), so the hasher is seeded per process, as std's
/// is; foldhash's keyed hash of a short string is several times cheaper than std's SipHash,
/// and at a few thousand calls a second these tables hold hundreds of thousands of entries,
/// all rehashed at once each time one grows.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
