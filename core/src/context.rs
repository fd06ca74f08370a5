//! What a call's own handlers may touch beside the call: as rustls hands a connection its
//! context, the core lends a [`Call`](super::model::Call) the parts of itself a call acts
//! through — where its events and rows go, its user agent and media commands, the heap that
//! wakes it — and keeps the rest (other calls, conferences, indexes) to itself.

use super::api::{EventKind, RecordOptions};
use super::attended::Replaces;
use super::dial_plan::DialPlan;
use super::engine_commands::Engine;
use super::model::Party;
use super::recording::{RecordingSource, Recordings};
use super::status::{CallStatus, HangupBy};
use super::store_writes::Records;
use super::trunk_health::TrunkHealth;
use super::{CallKey, Output, SubscriberId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::Path;
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
    /// What the call's handler asks of the core, carried out once it returns.
    pub(super) asks: &'a mut Vec<CoreAsk>,
}

/// What a call's handler asks of the core, which alone reaches beyond the call (its bridge,
/// room and recordings, the indexes, other calls): carried out as soon as the handler returns,
/// as quinn's connections hand their endpoint events up.
pub(super) enum CoreAsk {
    /// End the call; its dialogs were answered or hung up as the handler saw fit.
    End {
        status: CallStatus,
        code: Option<u16>,
        by: HangupBy,
        cause: Option<&'static str>,
    },
    /// Hang up every dialog of the call with `code` (and `headers`, an application's) and
    /// end it.
    HangUp {
        code: u16,
        cause: &'static str,
        headers: Vec<(String, String)>,
    },
    /// Record the call, as its route asks, from now until it ends.
    RouteRecording(RecordOptions),
    /// Join the call with the one whose dialog a REFER's `Replaces` names (an attended
    /// transfer by `party`'s phone on `referrer_leg`).
    JoinReplaced {
        party: Party,
        referrer_leg: LegId,
        replaces: Option<Replaces>,
    },
}

impl CallContext<'_> {
    /// Asks the core to end the call ([`CoreAsk::End`]).
    pub(super) fn end_call(
        &mut self,
        status: CallStatus,
        code: Option<u16>,
        by: HangupBy,
        cause: Option<&'static str>,
    ) {
        self.asks.push(CoreAsk::End {
            status,
            code,
            by,
            cause,
        });
    }

    /// Asks the core to hang the call up with `code` ([`CoreAsk::HangUp`]).
    pub(super) fn hang_up(&mut self, code: u16, cause: &'static str) {
        let headers = Vec::new();
        (self.asks).push(CoreAsk::HangUp {
            code,
            cause,
            headers,
        });
    }

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

/// Where a call's events go: its rows, its subscribers, its account's watchers — the part of
/// a context that [`Call::emit`](super::model::Call::emit) needs, which every context lends.
pub(super) struct Sink<'a> {
    pub(super) key: CallKey,
    pub(super) wall: i64,
    pub(super) records: &'a mut Records,
    pub(super) outputs: &'a mut VecDeque<Output>,
    pub(super) watchers: &'a HashMap<String, Vec<SubscriberId>>,
}

impl CallContext<'_> {
    pub(super) fn sink(&mut self) -> Sink<'_> {
        Sink {
            key: self.key,
            wall: self.wall,
            records: self.records,
            outputs: self.outputs,
            watchers: self.watchers,
        }
    }
}

/// What the conferences act through: the calls seated in them (the rooms change their seats
/// and read their endpoints), the media engine's mixers, the store, recordings, and where the
/// calls' events go.
pub(super) struct RoomContext<'a> {
    pub(super) calls: &'a mut super::calls::Calls,
    pub(super) wall: i64,
    pub(super) media: &'a mut Engine,
    pub(super) records: &'a mut Records,
    pub(super) recordings: &'a mut Recordings,
    pub(super) recordings_dir: &'a Path,
    pub(super) outputs: &'a mut VecDeque<Output>,
    pub(super) watchers: &'a HashMap<String, Vec<SubscriberId>>,
}

impl RoomContext<'_> {
    /// Sends an event of the call `key`'s, if it is still there.
    pub(super) fn emit(&mut self, key: CallKey, kind: EventKind) {
        if let Some(call) = self.calls.get_mut(&key) {
            let sink = Sink {
                key,
                wall: self.wall,
                records: self.records,
                outputs: self.outputs,
                watchers: self.watchers,
            };
            call.emit_into(sink, kind);
        }
    }

    /// Starts a recording reported to the call `key` (which keeps its end event until the
    /// file is saved); its file and row belong to `owner`, a call or conference SID.
    pub(super) fn start_recording(
        &mut self,
        key: CallKey,
        owner: &str,
        source: RecordingSource,
        options: RecordOptions,
    ) -> Option<String> {
        let at = (self.recordings_dir, self.wall);
        let engine = (&mut *self.media, &mut *self.records);
        let sid = (self.recordings).start(engine, at, key, owner, source, options)?;
        if let Some(call) = self.calls.get_mut(&key) {
            call.recordings_open += 1;
        }
        Some(sid)
    }
}
