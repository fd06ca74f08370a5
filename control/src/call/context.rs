//! What a call's own handlers may touch beside the call: as rustls hands a connection its
//! context, the core lends a [`Call`](super::model::Call) the parts of itself a call acts
//! through — where its events and rows go, its user agent and media commands, the heap that
//! wakes it — and keeps the rest (other calls, conferences, indexes) to itself.

use super::dial_plan::DialPlan;
use super::engine_commands::Engine;
use super::store_writes::Records;
use super::trunk_health::TrunkHealth;
use super::{CallKey, Output, SubscriberId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};
use switchboard_sip::ua::{LegId, UserAgent};

pub(super) struct CallContext<'a> {
    /// The call's key in the core.
    pub(super) key: CallKey,
    /// The wall time of the input being handled (Unix milliseconds).
    pub(super) wall: i64,
    pub(super) ua: &'a mut UserAgent,
    pub(super) media: &'a mut Engine,
    pub(super) records: &'a mut Records,
    pub(super) outputs: &'a mut VecDeque<Output>,
    /// The accounts' watchers, who hear every call of theirs.
    pub(super) watchers: &'a HashMap<String, Vec<SubscriberId>>,
    /// When each call is next due.
    pub(super) wakes: &'a mut BinaryHeap<Reverse<(Instant, CallKey)>>,
    /// The core's index of dialogs (to the call and the leg they belong to): a call adds and
    /// drops the dialogs it makes and ends on its own (the devices it rings).
    pub(super) dialogs: &'a mut HashMap<LegId, (CallKey, usize)>,
    /// Where numbers go, and which trunks take calls now: for the legs a call places itself
    /// (a transfer's target).
    pub(super) routing: &'a DialPlan,
    pub(super) trunk_health: &'a TrunkHealth,
    /// How long a leg the call places may ring.
    pub(super) ring_timeout: Duration,
}

impl CallContext<'_> {
    /// A leg on a trunk takes its in-dialog requests from any of the trunk's addresses.
    pub(super) fn accept_from_trunk(&mut self, leg: LegId, trunk: Option<&str>) {
        accept_from_trunk(self.ua, self.routing, leg, trunk);
    }
}

/// A leg on a trunk takes its in-dialog requests from any of the trunk's addresses.
pub(super) fn accept_from_trunk(
    ua: &mut UserAgent,
    routing: &DialPlan,
    leg: LegId,
    trunk: Option<&str>,
) {
    if let Some(sources) = trunk.and_then(|t| routing.trunk_sources(t)) {
        ua.accept_in_dialog_from(leg, sources);
    }
}
