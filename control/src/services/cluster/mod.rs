//! Several nodes on one database acting as one provider: a room or a call on another node
//! reached by a visit over SIP (`rooms`), what other nodes changed applied here (`changes`),
//! and an API request about a call, room or queue member another node holds forwarded to it
//! (`forward`).

pub mod changes;
pub mod forward;
pub mod rooms;
