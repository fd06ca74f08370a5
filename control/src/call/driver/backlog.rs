//! Delivery of call events to their subscribers (a call's controller and observers) without
//! losing one. The core cannot wait for a subscriber, and a subscriber's channel is bounded: an
//! event that does not fit waits in the call's backlog, in order, and goes out when the
//! subscriber has taken what was before it. A call's hang-up therefore always reaches the
//! session that reports it, even behind a burst of digits.
//!
//! Every event waits in the backlog until the driver flushes it, after it has handed the
//! engine the media commands of the same round: an application that hears of a bridge, a
//! playback or an answer may rely on the engine knowing of it (audio it then sends into a bridge
//! is relayed, not dropped by a worker that has not heard of the bridge yet).
//!
//! The backlog is bounded too. Past [`PER_CALL`] events a call's sheddable events (digits,
//! marks: what a caller or an application can send without limit) are dropped; the events of
//! its life (answer, hang-up, recordings, bridges: a handful per call) are kept up to
//! [`TOTAL`] over all calls, and only a core holding that many for subscribers that take nothing
//! drops them.

use crate::call::CallEvent;
use std::collections::{HashMap, VecDeque};
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{error, warn};

/// Events one call may have waiting before its sheddable ones are dropped.
pub(crate) const PER_CALL: usize = 1024;
/// Events all calls may have waiting.
pub(crate) const TOTAL: usize = 65_536;

type Key = u64;

#[derive(Default)]
pub(crate) struct EventBacklog {
    waiting: HashMap<Key, VecDeque<(mpsc::Sender<CallEvent>, CallEvent)>>,
    total: usize,
    /// Events lost so far; logged at 1, 2, 4 … so a flood cannot flood the log too.
    dropped: u64,
}

/// What became of an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Waiting in the call's backlog, for the next flush.
    Queued,
    /// The subscriber is gone.
    Closed,
    /// Shed or over the bound: lost, and counted.
    Dropped,
}

impl EventBacklog {
    /// Queues `event` of call `key` for `tx`, behind the call's waiting events.
    pub(crate) fn deliver(
        &mut self,
        key: Key,
        tx: &mpsc::Sender<CallEvent>,
        event: CallEvent,
    ) -> Delivery {
        if tx.is_closed() {
            return Delivery::Closed;
        }
        let waiting = self.waiting.get(&key).map_or(0, VecDeque::len);
        let sheddable = event.kind.sheddable();
        if (sheddable && waiting >= PER_CALL) || self.total >= TOTAL {
            metrics::counter!("switchboard_call_events_dropped_total").increment(1);
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                let (call, event, dropped) = (&event.call, event.kind.name(), self.dropped);
                if sheddable {
                    warn!(%call, event, dropped, "a call event subscriber is not keeping up; event dropped");
                } else {
                    error!(%call, event, dropped, "call event backlog full; event dropped");
                }
            }
            return Delivery::Dropped;
        }
        self.waiting
            .entry(key)
            .or_default()
            .push_back((tx.clone(), event));
        self.total += 1;
        Delivery::Queued
    }

    /// Sends what the subscribers now have room for, in order per call.
    pub(crate) fn flush(&mut self) {
        let total = &mut self.total;
        self.waiting.retain(|_, queue| {
            while let Some((tx, event)) = queue.pop_front() {
                match tx.try_send(event) {
                    Ok(()) | Err(TrySendError::Closed(_)) => *total -= 1,
                    Err(TrySendError::Full(event)) => {
                        queue.push_front((tx, event));
                        return true;
                    }
                }
            }
            false
        });
    }

    /// Whether events are waiting (the core then comes back soon to flush them).
    pub(crate) fn pending(&self) -> bool {
        self.total > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::EventKind;

    fn event(seq: u32, kind: EventKind) -> CallEvent {
        CallEvent {
            call: "CA1".into(),
            seq,
            at: 0,
            kind,
        }
    }

    fn digit(seq: u32) -> CallEvent {
        event(
            seq,
            EventKind::Dtmf {
                digit: '1',
                duration_ms: 100,
                method: switchboard_media::dtmf::DtmfMethod::Rfc4733,
            },
        )
    }

    /// A subscriber flooded with digits still gets the hang-up, after the digits it had room
    /// for and in order; the flood beyond the per-call bound is shed.
    #[test]
    fn a_flood_never_pushes_out_the_hang_up() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut backlog = EventBacklog::default();
        let mut seq = 0;
        for _ in 0..(4 + PER_CALL + 100) {
            backlog.deliver(1, &tx, digit(seq));
            seq += 1;
            if seq == 4 {
                // The subscriber's channel is full from here on.
                backlog.flush();
            }
        }
        let ended = event(
            seq,
            EventKind::Hangup {
                status: crate::call::CallStatus::Completed,
                sip_code: None,
                by: crate::call::HangupBy::Caller,
                cause: None,
                quality: None,
            },
        );
        assert_eq!(backlog.deliver(1, &tx, ended), Delivery::Queued);
        assert!(backlog.pending());

        let mut got = Vec::new();
        loop {
            while let Ok(e) = rx.try_recv() {
                got.push(e);
            }
            if !backlog.pending() {
                break;
            }
            backlog.flush();
        }
        assert_eq!(
            got.len(),
            4 + PER_CALL + 1,
            "the shed digits are gone, nothing else"
        );
        assert!(got.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
        assert_eq!(got.last().unwrap().kind.name(), "hangup");
    }

    /// Events go out at the flush, as far as each subscriber has room; a gone subscriber's
    /// waiting events are let go; another call's backlog holds nobody else back.
    #[test]
    fn backlogs_are_per_call_and_let_go_when_closed() {
        let (full_tx, full_rx) = mpsc::channel(1);
        let (free_tx, mut free_rx) = mpsc::channel(8);
        let mut backlog = EventBacklog::default();
        assert_eq!(backlog.deliver(1, &full_tx, digit(0)), Delivery::Queued);
        assert_eq!(backlog.deliver(1, &full_tx, digit(1)), Delivery::Queued);
        assert_eq!(backlog.deliver(2, &free_tx, digit(0)), Delivery::Queued);
        assert!(free_rx.try_recv().is_err(), "nothing before the flush");
        backlog.flush();
        assert_eq!(free_rx.try_recv().unwrap().seq, 0);
        assert!(backlog.pending(), "call 1's second digit waits for room");
        drop(full_rx);
        backlog.flush();
        assert!(!backlog.pending());
        assert_eq!(backlog.deliver(1, &full_tx, digit(2)), Delivery::Closed);
    }
}
