//! What the core writes to the store — calls' rows, their events, recordings and conferences —
//! as outputs ([`super::Output::Store`]) for the driver, which owns the store's writer. They
//! leave ahead of the round's answers and events: an answer the core gives (a call created, a
//! command done) must find its rows queued before it, for a reader that syncs with the writer
//! to see them. Whether the writer is overloaded (new calls are refused while it is) is an
//! input.

use super::api::CallEvent;
use super::model::STORED_SHEDDABLE_UNTIL;
use crate::rows::{CallRecord, ConferenceRow, EventRow, RecordingRow};
use std::collections::VecDeque;

/// One write for the store.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreWrite {
    /// The current state of a call's row (and its legs).
    Call(CallRecord),
    Event(EventRow),
    /// The current state of a recording's row.
    Recording(RecordingRow),
    Conference(ConferenceRow),
}

/// The writes for the driver, and what it last said of the writer.
#[derive(Default)]
pub(super) struct Records {
    pub(super) writes: VecDeque<StoreWrite>,
    overloaded: bool,
}

impl Records {
    fn write(&mut self, write: StoreWrite) {
        self.writes.push_back(write);
    }

    pub(super) fn save(&mut self, record: CallRecord) {
        self.write(StoreWrite::Call(record));
    }

    pub(super) fn event(&mut self, event: EventRow) {
        self.write(StoreWrite::Event(event));
    }

    /// Stores a call's event if it is one kept in the call's history. A call's sheddable
    /// events are stored up to a bound, so a flood of digits or marks cannot grow the store's
    /// queue without limit while the database is slow.
    pub(super) fn call_event(&mut self, event: &CallEvent) {
        let kind = &event.kind;
        if kind.stored() && (!kind.sheddable() || event.seq < STORED_SHEDDABLE_UNTIL) {
            self.event(EventRow {
                call_id: event.call.clone(),
                seq: event.seq,
                at: event.at,
                kind: kind.name().to_owned(),
                detail: serde_json::to_string(kind).unwrap_or_default(),
            });
        }
    }

    pub(super) fn recording(&mut self, row: RecordingRow) {
        self.write(StoreWrite::Recording(row));
    }

    pub(super) fn conference(&mut self, row: ConferenceRow) {
        self.write(StoreWrite::Conference(row));
    }

    /// Whether the writer holds more rows than it may: new calls are refused meanwhile.
    pub(super) fn overloaded(&self) -> bool {
        self.overloaded
    }

    pub(super) fn set_overloaded(&mut self, overloaded: bool) {
        self.overloaded = overloaded;
    }
}
