//! A supervisor on a bridged call (Telnyx's `supervise_call_control_id` and
//! `switch_supervisor_role`): the supervisor's call joins the bridge of the call it
//! supervises. The two bridged calls stay bridged to each other as their applications see
//! them — their bridge ends, and is reported, as before — but the media engine mixes the
//! three instead of relaying the two: the supervisor hears both and is heard by both
//! (`barge`), by the supervised call alone (`whisper`), or by neither (`monitor`). It ends
//! when the supervisor's call leaves (hangs up, is bridged elsewhere, joins a conference) —
//! the two are relayed again — or when the bridge ends; the supervisor's call then stays up,
//! out of the mix, for its application to decide.

use super::CallKey;
use super::api::CallError;
use super::engine_commands::Engine;
use std::collections::HashMap;
use switchboard_media::MediaOp;
use switchboard_media::conference::ConferenceId;

/// What the supervisor may do on the call it supervises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorRole {
    /// Hears both and is heard by both.
    Barge,
    /// Hears both and is heard by the supervised call alone.
    Whisper,
    /// Hears both and is heard by neither.
    Monitor,
}

/// One supervised bridge, kept under its supervisor's call.
struct Supervision {
    supervised: CallKey,
    peer: CallKey,
    role: SupervisorRole,
}

/// The supervised bridges, by their supervisor's call: which calls each mixes, in which
/// role, and the media commands that start, change and end it. The calls themselves stay the
/// core's; a supervision only reads their endpoints and bridges.
#[derive(Default)]
pub(super) struct Supervisions {
    by_supervisor: HashMap<CallKey, Supervision>,
}

use super::calls::Calls;

/// A bridge a supervisor may join: the call it asked for and the one bridged with it.
pub(super) struct Supervisable {
    supervised: CallKey,
    peer: CallKey,
}

impl Supervisions {
    /// Whether `key` (answered) may supervise the call `target`, which must be answered and
    /// bridged to a third call, with no supervisor yet: the bridge to mix, or why not.
    pub(super) fn check(
        &self,
        calls: &Calls,
        key: CallKey,
        target: CallKey,
        sid: &str,
    ) -> Result<Supervisable, CallError> {
        if !calls.get(&key).is_some_and(|c| c.answered()) {
            return Err(CallError::NotAnswered);
        }
        let supervised = &calls[&target];
        if target == key || supervised.ended() || !supervised.answered() {
            return Err(CallError::BadArgument(format!(
                "{sid} cannot be supervised"
            )));
        }
        let peer = supervised
            .bridged
            .filter(|p| *p != key)
            .ok_or_else(|| CallError::BadArgument(format!("{sid} is not bridged")))?;
        if self.of(target).is_some() {
            return Err(CallError::BadArgument(format!(
                "{sid} has a supervisor already"
            )));
        }
        Ok(Supervisable {
            supervised: target,
            peer,
        })
    }

    /// `key` supervises the bridge [`Self::check`] found (the supervisor out of any bridge or
    /// room by now): the two leave their relay for the mix `media` with it.
    pub(super) fn start(
        &mut self,
        calls: &Calls,
        engine: &mut Engine,
        key: CallKey,
        Supervisable { supervised, peer }: Supervisable,
        (role, media): (SupervisorRole, ConferenceId),
    ) {
        let endpoint = |k: CallKey| calls[&k].own().side.endpoint;
        let (s, a, b) = (endpoint(key), endpoint(supervised), endpoint(peer));
        engine.unbridge(a);
        for e in [a, b, s] {
            engine.conference_join(media, e);
        }
        let supervision = Supervision {
            supervised,
            peer,
            role,
        };
        self.by_supervisor.insert(key, supervision);
        self.apply_role(calls, engine, key);
    }

    /// The supervisor `key` takes another role.
    pub(super) fn switch_role(
        &mut self,
        calls: &Calls,
        engine: &mut Engine,
        key: CallKey,
        role: SupervisorRole,
    ) -> Result<(), CallError> {
        let supervision = (self.by_supervisor.get_mut(&key))
            .ok_or_else(|| CallError::BadArgument("the call supervises no call".into()))?;
        supervision.role = role;
        self.apply_role(calls, engine, key);
        Ok(())
    }

    fn apply_role(&self, calls: &Calls, engine: &mut Engine, key: CallKey) {
        let s = &self.by_supervisor[&key];
        let endpoint = |k: CallKey| calls[&k].own().side.endpoint;
        let (supervisor, supervised) = (endpoint(key), endpoint(s.supervised));
        let role = s.role;
        engine.media(supervisor, MediaOp::Mute(role == SupervisorRole::Monitor));
        let coached = (role == SupervisorRole::Whisper).then_some(supervised);
        engine.conference_coach(supervisor, coached);
    }

    /// The supervisor of the supervision `key` takes part in (as supervisor, supervised or
    /// peer).
    fn of(&self, key: CallKey) -> Option<CallKey> {
        (self.by_supervisor.iter())
            .find(|(s, v)| **s == key || v.supervised == key || v.peer == key)
            .map(|(s, _)| *s)
    }

    /// Ends the supervision `key` takes part in, if any: everyone leaves the mix, the two
    /// still bridged with each other are relayed again, and a monitor is heard again.
    pub(super) fn end(&mut self, calls: &Calls, engine: &mut Engine, key: CallKey) {
        let Some(supervisor) = self.of(key) else {
            return;
        };
        let s = self.by_supervisor.remove(&supervisor).expect("found above");
        for k in [supervisor, s.supervised, s.peer] {
            if let Some(call) = calls.get(&k) {
                engine.conference_leave(call.own().side.endpoint);
            }
        }
        if let Some(call) = calls.get(&supervisor)
            && s.role == SupervisorRole::Monitor
        {
            engine.media(call.own().side.endpoint, MediaOp::Mute(false));
        }
        let live = |k: CallKey| calls.get(&k).filter(|c| !c.ended());
        if let (Some(a), Some(b)) = (live(s.supervised), live(s.peer))
            && a.bridged == Some(s.peer)
        {
            let (a, b) = (a.own().side.endpoint, b.own().side.endpoint);
            engine.bridge(a, b);
        }
    }
}
