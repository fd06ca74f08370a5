//! A supervisor on a bridged call (Telnyx's `supervise_call_control_id` and
//! `switch_supervisor_role`): the supervisor's call joins the bridge of the call it
//! supervises. The two bridged calls stay bridged to each other as their applications see
//! them — their bridge ends, and is reported, as before — but the media engine mixes the
//! three instead of relaying the two: the supervisor hears both and is heard by both
//! (`barge`), by the supervised call alone (`whisper`), or by neither (`monitor`). It ends
//! when the supervisor's call leaves (hangs up, is bridged elsewhere, joins a conference) —
//! the two are relayed again — or when the bridge ends; the supervisor's call then stays up,
//! out of the mix, for its application to decide.

use super::api::CallError;
use super::{CallCore, CallKey};
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
pub(super) struct Supervision {
    supervised: CallKey,
    peer: CallKey,
    role: SupervisorRole,
}

impl CallCore {
    /// `key` (answered) supervises the call `sid`, which must be answered and bridged.
    pub(super) fn supervise(
        &mut self,
        key: CallKey,
        sid: &str,
        role: SupervisorRole,
    ) -> Result<(), CallError> {
        let target = *self
            .sids
            .get(sid)
            .ok_or_else(|| CallError::NotFound(sid.to_owned()))?;
        if !self.calls.get(&key).is_some_and(|c| c.answered()) {
            return Err(CallError::NotAnswered);
        }
        let supervised = &self.calls[&target];
        if target == key || supervised.ended() || !supervised.answered() {
            return Err(CallError::BadArgument(format!(
                "{sid} cannot be supervised"
            )));
        }
        let peer = supervised
            .bridged
            .filter(|p| *p != key)
            .ok_or_else(|| CallError::BadArgument(format!("{sid} is not bridged")))?;
        if self.supervision_of(target).is_some() {
            return Err(CallError::BadArgument(format!(
                "{sid} has a supervisor already"
            )));
        }
        // The supervisor leaves whatever it was in (another supervision among them).
        self.unbridge(key);
        self.conference_leave(key, "moved");
        self.next_conference += 1;
        let media = ConferenceId(self.next_conference);
        let endpoint = |k: CallKey| self.calls[&k].own().side.endpoint;
        let (s, a, b) = (endpoint(key), endpoint(target), endpoint(peer));
        self.media.unbridge(a);
        for e in [a, b, s] {
            self.media.conference_join(media, e);
        }
        let supervision = Supervision {
            supervised: target,
            peer,
            role,
        };
        self.supervisions.insert(key, supervision);
        self.apply_role(key);
        Ok(())
    }

    /// The supervisor `key` takes another role.
    pub(super) fn switch_supervisor_role(
        &mut self,
        key: CallKey,
        role: SupervisorRole,
    ) -> Result<(), CallError> {
        let supervision = (self.supervisions.get_mut(&key))
            .ok_or_else(|| CallError::BadArgument("the call supervises no call".into()))?;
        supervision.role = role;
        self.apply_role(key);
        Ok(())
    }

    fn apply_role(&mut self, key: CallKey) {
        let s = &self.supervisions[&key];
        let endpoint = |k: CallKey| self.calls[&k].own().side.endpoint;
        let (supervisor, supervised) = (endpoint(key), endpoint(s.supervised));
        let role = s.role;
        self.media
            .media(supervisor, MediaOp::Mute(role == SupervisorRole::Monitor));
        let coached = (role == SupervisorRole::Whisper).then_some(supervised);
        self.media.conference_coach(supervisor, coached);
    }

    /// The supervisor of the supervision `key` takes part in (as supervisor, supervised or
    /// peer).
    fn supervision_of(&self, key: CallKey) -> Option<CallKey> {
        (self.supervisions.iter())
            .find(|(s, v)| **s == key || v.supervised == key || v.peer == key)
            .map(|(s, _)| *s)
    }

    /// Ends the supervision `key` takes part in, if any: everyone leaves the mix, the two
    /// still bridged with each other are relayed again, and a monitor is heard again.
    pub(super) fn end_supervision(&mut self, key: CallKey) {
        let Some(supervisor) = self.supervision_of(key) else {
            return;
        };
        let s = self.supervisions.remove(&supervisor).expect("found above");
        for k in [supervisor, s.supervised, s.peer] {
            if let Some(call) = self.calls.get(&k) {
                self.media.conference_leave(call.own().side.endpoint);
            }
        }
        if let Some(call) = self.calls.get(&supervisor)
            && s.role == SupervisorRole::Monitor
        {
            self.media
                .media(call.own().side.endpoint, MediaOp::Mute(false));
        }
        let live = |k: CallKey| self.calls.get(&k).filter(|c| !c.ended());
        if let (Some(a), Some(b)) = (live(s.supervised), live(s.peer))
            && a.bridged == Some(s.peer)
        {
            let (a, b) = (a.own().side.endpoint, b.own().side.endpoint);
            self.media.bridge(a, b);
        }
    }
}
