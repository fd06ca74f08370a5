//! The operator's and the frontends' own interfaces, beside the providers' dialects: the
//! admin API, the live socket, calls' histories and the console that serves them.

pub mod additions;
pub mod admin;
pub mod call_history;
pub mod console;
pub mod frontend;
pub mod live;
