//! The core's side of the media engine, sans-IO. The core never touches the engine: what it
//! asks of it (put a pair to work, configure, bridge, play, record, release…) is queued here
//! as [`MediaCommand`]s for the driver to carry out in order. Binding sockets is IO too, so the
//! driver binds a few RTP/RTCP pairs ahead of need and hands them in
//! ([`CallCore::handle_reserved`](super::CallCore::handle_reserved)): an INVITE's answer can name its port at once without the
//! core waiting on a socket. The little the core must know at once is kept here: which pairs
//! are ready, and who is in each conference the engine mixes (recording or announcing to an
//! empty one does nothing).

use std::collections::{HashMap, VecDeque};
use switchboard_media::conference::{Announcement, ConferenceId};
use switchboard_media::record::RecordSpec;
use switchboard_media::{Endpoint, EndpointConfig, EndpointId, MediaCommand, MediaError, MediaOp};

/// Pairs the driver keeps ready at most. One input takes at most two (a routed call's two
/// legs) and the driver tops the reserve up before every input, so this leaves a margin
/// without holding many ports idle.
pub const RESERVE: usize = 8;
/// Pairs kept ready at least: what one input may take.
pub(crate) const RESERVE_LEAST: usize = 2;

#[derive(Default)]
pub(super) struct Engine {
    /// Bound pairs on no worker yet, oldest first.
    reserve: VecDeque<Endpoint>,
    /// How many it keeps ready (see [`crate::CoreConfig::media_reserve`]).
    ready: usize,
    /// For the driver, in order.
    commands: VecDeque<MediaCommand>,
    /// The conference each endpoint is in, and each conference's member count, as the engine
    /// keeps them.
    members: HashMap<EndpointId, ConferenceId>,
    counts: HashMap<ConferenceId, usize>,
    /// Why the driver could not bind the last pair it tried, if it could not.
    shortage: Option<MediaError>,
}

impl Engine {
    /// A ready pair put to work, on the same worker as `near` when given (so the two can be
    /// bridged): one reserved there if there is one, so that nothing moves between workers
    /// (a browser's leg stays beside the socket its browser sends to). None ready means the
    /// driver could bind none: the range is used up (or the process is out of descriptors,
    /// which the driver logs).
    pub(super) fn allocate(&mut self, near: Option<EndpointId>) -> Result<Endpoint, MediaError> {
        let at =
            (near.and_then(|n| self.reserve.iter().position(|e| e.id.placed_with(n)))).unwrap_or(0);
        let Some(endpoint) = self.reserve.remove(at) else {
            return Err(self.shortage.take().unwrap_or(MediaError::PortsExhausted));
        };
        (self.commands).push_back(MediaCommand::Activate {
            id: endpoint.id,
            near,
        });
        Ok(endpoint)
    }

    /// Two pairs on one worker, or neither.
    pub(super) fn allocate_pair(&mut self) -> Result<(Endpoint, Endpoint), MediaError> {
        if self.reserve.len() < 2 {
            return Err(self.shortage.take().unwrap_or(MediaError::PortsExhausted));
        }
        let a = self.allocate(None)?;
        let b = self.allocate(Some(a.id))?;
        Ok((a, b))
    }

    pub(super) fn configure(&mut self, id: EndpointId, config: EndpointConfig) {
        self.commands
            .push_back(MediaCommand::Configure { id, config });
    }

    pub(super) fn bridge(&mut self, a: EndpointId, b: EndpointId) {
        self.commands.push_back(MediaCommand::Bridge { a, b });
    }

    pub(super) fn unbridge(&mut self, id: EndpointId) {
        self.commands.push_back(MediaCommand::Unbridge { id });
    }

    pub(super) fn media(&mut self, id: EndpointId, op: MediaOp) {
        self.commands.push_back(MediaCommand::Media { id, op });
    }

    pub(super) fn conference_join(&mut self, conference: ConferenceId, id: EndpointId) {
        if self.members.get(&id) == Some(&conference) {
            return;
        }
        if let Some(old) = self.members.insert(id, conference) {
            self.leave(old);
        }
        *self.counts.entry(conference).or_default() += 1;
        self.commands
            .push_back(MediaCommand::Join { conference, id });
    }

    pub(super) fn conference_leave(&mut self, id: EndpointId) {
        if let Some(conference) = self.members.remove(&id) {
            self.leave(conference);
            self.commands.push_back(MediaCommand::Leave { id });
        }
    }

    /// Starts (or with `None` stops) recording a conference's mix; false when no one is in
    /// it.
    pub(super) fn conference_record(
        &mut self,
        conference: ConferenceId,
        spec: Option<RecordSpec>,
    ) -> bool {
        let someone = self.counts.contains_key(&conference);
        if someone {
            self.commands
                .push_back(MediaCommand::RecordConference { conference, spec });
        }
        someone
    }

    /// Makes a conference member heard by the member `coached` alone (`None`: by everyone).
    pub(super) fn conference_coach(&mut self, id: EndpointId, coached: Option<EndpointId>) {
        self.commands.push_back(MediaCommand::Coach { id, coached });
    }

    /// Plays audio into a conference; false when no one is in it.
    pub(super) fn conference_announce(
        &mut self,
        conference: ConferenceId,
        announcement: Announcement,
    ) -> bool {
        let someone = self.counts.contains_key(&conference);
        if someone {
            self.commands.push_back(MediaCommand::Announce {
                conference,
                announcement,
            });
        }
        someone
    }

    /// Pauses (or resumes) the recording of a conference's mix.
    pub(super) fn conference_record_pause(
        &mut self,
        conference: ConferenceId,
        paused: Option<switchboard_media::record::PauseBehavior>,
    ) {
        (self.commands).push_back(MediaCommand::PauseConferenceRecording { conference, paused });
    }

    /// Stops a conference's announcements: all, or those `to` hears alone.
    pub(super) fn conference_stop_announcements(
        &mut self,
        conference: ConferenceId,
        to: Option<EndpointId>,
    ) {
        (self.commands).push_back(MediaCommand::StopAnnouncements { conference, to });
    }

    /// Closes an endpoint (out of its conference too); the engine's `Released` follows.
    pub(super) fn release(&mut self, id: EndpointId) {
        if let Some(conference) = self.members.remove(&id) {
            self.leave(conference);
        }
        self.commands.push_back(MediaCommand::Release { id });
    }

    fn leave(&mut self, conference: ConferenceId) {
        if let Some(n) = self.counts.get_mut(&conference) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&conference);
            }
        }
    }

    pub(super) fn poll_command(&mut self) -> Option<MediaCommand> {
        self.commands.pop_front()
    }

    /// How many more bound pairs it would like ready.
    pub(super) fn wanted(&self) -> usize {
        self.ready.saturating_sub(self.reserve.len())
    }

    /// An engine that keeps `ready` pairs ready ([`RESERVE_LEAST`] to [`RESERVE`]).
    pub(super) fn keeping(ready: usize) -> Self {
        Self {
            ready: ready.clamp(RESERVE_LEAST, RESERVE),
            ..Self::default()
        }
    }

    /// A pair bound, ready for a call.
    pub(super) fn reserved(&mut self, endpoint: Endpoint) {
        self.shortage = None;
        self.reserve.push_back(endpoint);
    }

    /// No pair could be bound: calls that need one are refused, for this reason.
    pub(super) fn reserve_failed(&mut self, error: MediaError) {
        self.shortage = Some(error);
    }

    /// The pairs still ready, given back.
    pub(super) fn take_reserved(&mut self) -> Vec<EndpointId> {
        self.reserve.drain(..).map(|e| e.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_range_shared_by_several_cores_keeps_fewer_pairs_ready_each() {
        // A quarter of the range's pairs, shared, between 2 and 8 each.
        assert_eq!(crate::media_reserve(10_000, 1), RESERVE);
        assert_eq!(crate::media_reserve(10_000, 64), RESERVE);
        assert_eq!(crate::media_reserve(10_000, 256), 4);
        assert_eq!(crate::media_reserve(32, 1), 4);
        assert_eq!(crate::media_reserve(20, 2), RESERVE_LEAST);
        assert_eq!(crate::media_reserve(0, 0), RESERVE_LEAST);
        assert_eq!(Engine::keeping(3).wanted(), 3);
        assert_eq!(Engine::keeping(100).wanted(), RESERVE);
    }

    /// Endpoint `n` as the engine reserves it on `worker` (its id names the worker).
    fn reserved(n: u64, worker: u64) -> Endpoint {
        let rtp = std::net::SocketAddr::from(([127, 0, 0, 1], 20_000 + 2 * n as u16));
        Endpoint {
            id: EndpointId::unallocated((n << 8) | worker),
            rtp,
            browser: std::net::SocketAddr::from(([127, 0, 0, 1], 19_998)),
        }
    }

    #[test]
    fn a_pair_and_a_peer_are_taken_from_one_worker_when_one_has_them() {
        let mut engine = Engine::default();
        for (n, worker) in [(1, 0), (2, 1), (3, 0), (4, 1), (5, 1)] {
            engine.reserve.push_back(reserved(n, worker));
        }
        let (a, b) = engine.allocate_pair().unwrap();
        assert_eq!((a.id, b.id), (reserved(1, 0).id, reserved(3, 0).id));
        // Beside `b`, on worker 0: none is left there, so the oldest.
        assert_eq!(engine.allocate(Some(b.id)).unwrap().id, reserved(2, 1).id);
        assert_eq!(engine.allocate(None).unwrap().id, reserved(4, 1).id);
        assert_eq!(
            engine.allocate(Some(reserved(9, 1).id)).unwrap().id,
            reserved(5, 1).id
        );
        assert!(matches!(
            engine.allocate(None),
            Err(MediaError::PortsExhausted)
        ));
        // Each was put to work beside the one it was asked to be near.
        let activated: Vec<_> = std::iter::from_fn(|| engine.poll_command())
            .filter_map(|c| match c {
                MediaCommand::Activate { id, near } => Some((id, near)),
                _ => None,
            })
            .collect();
        assert_eq!(activated[1], (b.id, Some(a.id)));
    }
}
