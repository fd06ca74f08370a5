//! The table of calls: every call the core holds, by its key, and the indexes that find one
//! from what an input names — a dialog (with the leg's place in the call), a media endpoint,
//! a call SID. The table keeps the indexes true as calls come and go and as legs move between
//! calls (an attended transfer); what to do with a call is the core's and the call's.

use super::CallKey;
use super::api::CallError;
use super::attended::Replaces;
use super::model::Call;
use std::collections::HashMap;
use switchboard_media::EndpointId;
use switchboard_sip::ua::{LegId, UserAgent};

/// Dialogs to the call and the leg they belong to. A call's handlers add and drop the
/// dialogs it makes and ends on its own (the devices it rings, a transfer's target), so the
/// table lends this index with the call (see [`Calls::lend`]).
pub(super) type Dialogs = HashMap<LegId, (CallKey, usize)>;

#[derive(Default)]
pub(super) struct Calls {
    /// A call is boxed (about 1.4 kB): when the table grows it moves pointers, not every
    /// call, on the SIP thread.
    by_key: HashMap<CallKey, Box<Call>>,
    dialogs: Dialogs,
    endpoints: HashMap<EndpointId, CallKey>,
    sids: HashMap<String, CallKey>,
    next_key: CallKey,
    /// The node's calls per account and channel group when its shards keep one tally
    /// (see [`super::tally`]); `None`: these calls are all the node's, counted here.
    tally: Option<std::sync::Arc<super::tally::NodeTally>>,
}

impl Calls {
    /// Takes a call in under a new key, indexed by its SID, its legs' first dialogs and
    /// their endpoints.
    pub(super) fn insert(&mut self, call: Call) -> CallKey {
        self.next_key += 1;
        let key = self.next_key;
        self.sids.insert(call.record.id.clone(), key);
        for (index, leg) in call.legs.iter().enumerate() {
            self.dialogs.insert(leg.first_dialog, (key, index));
            self.endpoints.insert(leg.side.endpoint, key);
        }
        self.by_key.insert(key, Box::new(call));
        key
    }

    /// Lets a call go, and every index entry of its.
    pub(super) fn remove(&mut self, key: CallKey) -> Option<Box<Call>> {
        let call = self.by_key.remove(&key)?;
        self.sids.remove(&call.record.id);
        for leg in &call.legs {
            self.endpoints.remove(&leg.side.endpoint);
            self.dialogs.remove(&leg.first_dialog);
        }
        Some(call)
    }

    pub(super) fn get(&self, key: &CallKey) -> Option<&Call> {
        self.by_key.get(key).map(|c| &**c)
    }

    pub(super) fn get_mut(&mut self, key: &CallKey) -> Option<&mut Call> {
        self.by_key.get_mut(key).map(|c| &mut **c)
    }

    pub(super) fn contains_key(&self, key: &CallKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// A call and the dialog index, lent together to the call's handlers.
    pub(super) fn lend(&mut self, key: CallKey) -> Option<(&mut Call, &mut Dialogs)> {
        let call = self.by_key.get_mut(&key)?;
        Some((&mut **call, &mut self.dialogs))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (CallKey, &Call)> {
        self.by_key.iter().map(|(k, c)| (*k, &**c))
    }

    /// The keys of the calls not yet ended.
    pub(super) fn live(&self) -> Vec<CallKey> {
        (self.iter().filter(|(_, c)| !c.ended()))
            .map(|(k, _)| k)
            .collect()
    }

    /// The call with SID `sid`.
    pub(super) fn key_of(&self, sid: &str) -> Option<CallKey> {
        self.sids.get(sid).copied()
    }

    /// The call with SID `sid`, or the error that names it as not found.
    pub(super) fn named(&self, sid: &str) -> Result<CallKey, CallError> {
        self.key_of(sid)
            .ok_or_else(|| CallError::NotFound(sid.to_owned()))
    }

    pub(super) fn by_sid(&self, sid: &str) -> Option<&Call> {
        self.key_of(sid).and_then(|k| self.get(&k))
    }

    /// The call a dialog belongs to, and the leg's place in it.
    pub(super) fn of_dialog(&self, leg: LegId) -> Option<(CallKey, usize)> {
        self.dialogs.get(&leg).copied()
    }

    /// Drops a dialog the core itself ended (a transfer's target on the call's end).
    pub(super) fn forget_dialog(&mut self, leg: LegId) {
        self.dialogs.remove(&leg);
    }

    /// The call a media endpoint belongs to.
    pub(super) fn of_endpoint(&self, endpoint: EndpointId) -> Option<CallKey> {
        self.endpoints.get(&endpoint).copied()
    }

    /// A table whose calls are counted for limits in `tally`, the node's, when its shards
    /// keep one.
    pub(super) fn counted_in(tally: Option<std::sync::Arc<super::tally::NodeTally>>) -> Self {
        Self {
            tally,
            ..Self::default()
        }
    }

    /// Brings call `key`'s share of the node's tally up to date (nothing without a tally).
    pub(super) fn recount(&mut self, key: CallKey) {
        let (Some(tally), Some(call)) = (&self.tally, self.by_key.get_mut(&key)) else {
            return;
        };
        let now = super::tally::Share::of(call);
        if now != call.tallied {
            tally.replace(&call.tallied, &now);
            call.tallied = now;
        }
    }

    /// Calls of `account` up or ringing (visits' legs aside, see [`Call::is_visit`]): on the
    /// node when its shards keep a tally, otherwise this table's (all the node's).
    pub(super) fn live_of_account(&self, account: &str) -> usize {
        match &self.tally {
            Some(tally) => tally.account(account),
            None => (self.by_key.values())
                .filter(|c| {
                    !c.ended() && !c.is_visit() && c.record.account_sid.as_deref() == Some(account)
                })
                .count(),
        }
    }

    /// Calls up or ringing that hold a channel of `group`, counted as
    /// [`Calls::live_of_account`] counts.
    pub(super) fn live_of_group(&self, group: &str) -> usize {
        match &self.tally {
            Some(tally) => tally.group(group),
            None => (self.by_key.values())
                .filter(|c| !c.ended() && c.channels.iter().any(|g| g == group))
                .count(),
        }
    }

    /// The endpoint of a live call's injection queue, for a direct line into it.
    pub(super) fn media_link(&self, sid: &str) -> Result<EndpointId, CallError> {
        let call = self.by_sid(sid);
        let call = call.ok_or_else(|| CallError::NotFound(sid.to_owned()))?;
        if call.ended() {
            return Err(CallError::InvalidState {
                status: call.record.status,
            });
        }
        Ok(call.own().side.endpoint)
    }

    /// The call bridged with `sid`, and the endpoint of its injection queue.
    pub(super) fn peer_link(&self, sid: &str) -> Result<Option<(String, EndpointId)>, CallError> {
        let call = self.by_sid(sid);
        let call = call.ok_or_else(|| CallError::NotFound(sid.to_owned()))?;
        let peer = call.bridged.and_then(|k| self.get(&k));
        Ok((peer.filter(|p| !p.ended())).map(|p| (p.record.id.clone(), p.own().side.endpoint)))
    }

    /// The call and leg index of the dialog `replaces` names. Its tags are matched in either
    /// order: a phone may give them from its own point of view or the dialog's.
    pub(super) fn dialog_named(
        &self,
        ua: &UserAgent,
        replaces: &Replaces,
    ) -> Option<(CallKey, usize)> {
        self.iter().find_map(|(key, call)| {
            call.legs.iter().enumerate().find_map(|(index, leg)| {
                let dialog = ua.dialog(leg.dialog?)?;
                let remote = dialog.remote_tag.as_deref()?;
                let tags = [dialog.local_tag.as_str(), remote];
                let named = [replaces.to_tag.as_str(), replaces.from_tag.as_str()];
                let same = tags == named || tags == [named[1], named[0]];
                (dialog.call_id == replaces.call_id && same).then_some((key, index))
            })
        })
    }

    /// Both calls, to change together (two distinct keys, both present).
    pub(super) fn pair_mut(&mut self, a: CallKey, b: CallKey) -> Option<(&mut Call, &mut Call)> {
        if a == b {
            return None;
        }
        let [x, y] = self.by_key.get_disjoint_mut([&a, &b]);
        Some((&mut **x?, &mut **y?))
    }

    /// The leg at `theirs` of call `b` and the one at `mine` of call `a` change places; the
    /// indexes follow each to its new call.
    pub(super) fn swap_legs(&mut self, (a, mine): (CallKey, usize), (b, theirs): (CallKey, usize)) {
        if a == b {
            return;
        }
        let [Some(x), Some(y)] = self.by_key.get_disjoint_mut([&a, &b]) else {
            return;
        };
        std::mem::swap(&mut x.legs[mine], &mut y.legs[theirs]);
        for (k, i, leg) in [(a, mine, &x.legs[mine]), (b, theirs, &y.legs[theirs])] {
            self.dialogs.insert(leg.first_dialog, (k, i));
            self.endpoints.insert(leg.side.endpoint, k);
        }
    }
}

impl std::ops::Index<&CallKey> for Calls {
    type Output = Call;

    fn index(&self, key: &CallKey) -> &Call {
        &self.by_key[key]
    }
}
