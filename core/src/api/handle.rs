//! What applications get back from the core: its view of a call and of conferences, the
//! errors a command meets, and a direct line into a call's media. `CallControl`, the
//! handle that carries their requests, is the driver's (`switchboard_control::call::driver`).

use super::*;
use switchboard_media::{EndpointId, Frame, MediaEngine, MediaOp};

/// What the core knows of a call now (see `CallControl::view`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    pub status: CallStatus,
    /// The recording of the call's own audio running now (its SID), if any.
    pub recording: Option<String>,
    /// The account the call belongs to (none for a call routed between trunks).
    pub account: Option<String>,
}

impl CallView {
    /// Answered and not ended.
    pub fn is_up(&self) -> bool {
        self.status == CallStatus::InProgress
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no call {0}")]
    NotFound(String),
    /// Not possible in the call's status (`completed`, `ringing`, …).
    #[error("not possible while the call is {status}")]
    InvalidState { status: super::CallStatus },
    /// Only an answered call may do it (join a conference).
    #[error("not possible before the call is answered")]
    NotAnswered,
    /// Only a call in a conference may do it (hold, announce).
    #[error("the call is not in a conference")]
    NotInConference,
    #[error("{0}")]
    BadArgument(String),
    #[error("no route to the destination (SIP {0})")]
    NoRoute(u16),
    #[error("no free media ports")]
    NoMedia,
    /// Call records wait in memory for the database past the store writer's high-water mark.
    #[error("call records cannot be stored fast enough; new calls are refused for now")]
    Overloaded,
    /// A `sip:` URI whose host is neither a trunk's nor on the operator's allowlist.
    #[error("{0} may not be dialed directly")]
    NotAllowed(String),
    #[error("the call core has stopped")]
    Stopped,
    /// The account has as many calls as it may, or places them faster than it may.
    #[error("{0}")]
    AccountLimit(crate::account_limits::Exceeded),
    /// A channel group of the call (see [`super::ChannelLimit`]) has as many calls as it may.
    #[error("the channel group {group} has {max} calls, its limit")]
    ChannelLimit { group: String, max: u32 },
    /// A caller ID the account may not present (see [`crate::caller_id`]).
    #[error("the account may not present {0} as its caller ID")]
    CallerIdNotAllowed(String),
    /// The node is draining before it stops: calls up go on, new ones go to another node.
    #[error("this node is shutting down; new calls are refused")]
    ShuttingDown,
    /// The call is connected by a route: it takes commands on its media and a hang-up, not
    /// ones that would answer it, move it or hand it to an application.
    #[error("the call is connected by a route and cannot take that command")]
    Routed,
}

/// A conference as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceSnapshot {
    /// `CF` and 32 hex digits.
    pub sid: String,
    /// The room name it was joined by.
    pub name: String,
    pub started: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The SID of its recording running now, if any (paused or not).
    pub recording: Option<String>,
    pub participants: Vec<ParticipantSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSnapshot {
    pub call: String,
    pub muted: bool,
    pub held: bool,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    pub joined_at: i64,
    /// The participant it coaches, if it is a coach.
    pub coaching: Option<String>,
}

/// A failure the liveness tests make the core suffer (debug builds only).
#[cfg(debug_assertions)]
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Panic,
    Stall(std::time::Duration),
}

#[cfg(debug_assertions)]
impl Fault {
    pub fn strike(self) {
        match self {
            Self::Panic => panic!("fault injected into the call core"),
            // Blocking the core's thread is the point: it stands for a round that never ends.
            Self::Stall(d) => std::thread::sleep(d),
        }
    }
}

/// Which dialed numbers a controller takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialed {
    /// This number exactly; it wins over every prefix.
    Number(String),
    /// Numbers starting with this ("" for all); the longest prefix wins.
    Prefix(String),
    /// Whatever this registered user (a phone, a browser) calls: it wins over numbers.
    Caller(String),
}

impl Dialed {
    /// How well `number` matches: `None` not at all; higher is more specific.
    pub fn rank(&self, number: &str) -> Option<usize> {
        match self {
            Dialed::Number(n) => (n == number).then_some(usize::MAX),
            Dialed::Prefix(p) => number.starts_with(p.as_str()).then_some(p.len()),
            Dialed::Caller(_) => None,
        }
    }
}

/// A direct line into a call's injection queue: `Inject` and `ClearInjected` reach the media
/// engine's worker without passing through the core's thread. For feeds too frequent for
/// that thread, which also runs SIP: a bidirectional media stream sends 50 messages a second
/// per call. What they report (marks, discarded audio) still comes as the call's events.
/// Once the call's media is released, what is sent is dropped (endpoint ids are never
/// reused).
#[derive(Clone)]
pub struct MediaLink {
    engine: MediaEngine,
    endpoint: EndpointId,
}

impl MediaLink {
    /// A line into `endpoint`'s injection queue on `engine` (the driver's, which holds the
    /// engine the core names endpoints of).
    pub fn new(engine: MediaEngine, endpoint: EndpointId) -> Self {
        Self { engine, endpoint }
    }

    /// As [`CallCommand::Inject`].
    pub fn inject(&self, frames: Vec<Frame>, mark: Option<String>, limit: usize) {
        self.engine.media(
            self.endpoint,
            MediaOp::Inject {
                frames,
                mark,
                limit,
            },
        );
        self.engine.flush();
    }

    /// As [`CallCommand::ClearInjected`].
    pub fn clear(&self) {
        self.engine.media(self.endpoint, MediaOp::ClearInjected);
        self.engine.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::Dialed;

    #[test]
    fn an_exact_number_beats_every_prefix_and_longer_prefixes_beat_shorter() {
        let number = Dialed::Number("+17775550100".into());
        let short = Dialed::Prefix("+1".into());
        let long = Dialed::Prefix("+1777".into());
        let all = Dialed::Prefix(String::new());
        let best = |n: &str| {
            [&number, &short, &long, &all]
                .into_iter()
                .filter_map(|d| Some((d.rank(n)?, d)))
                .max_by_key(|(rank, _)| *rank)
                .map(|(_, d)| d.clone())
        };
        assert_eq!(best("+17775550100"), Some(number.clone()));
        // A longer number is not the configured one: the prefixes decide.
        assert_eq!(best("+177755501001"), Some(long.clone()));
        assert_eq!(best("+15551234"), Some(short.clone()));
        assert_eq!(best("44"), Some(all.clone()));
    }
}
