//! The channels behind the core's [`SubscriberId`]s: the driver holds them, delivers each
//! [`Output::Event`](crate::call::Output::Event) through the backlog (or at once to a watcher,
//! which is let go when it falls behind), and tells the core which are gone.

use super::backlog::{Delivery, EventBacklog};
use crate::call::driver::control::{NewSubscriber, SubscriberKind};
use crate::call::{CallEvent, SubscriberId};
use std::collections::HashMap;
use tokio::sync::mpsc;

#[derive(Default)]
pub(crate) struct Subscribers {
    senders: HashMap<SubscriberId, (SubscriberKind, mpsc::Sender<CallEvent>)>,
    /// The controllers among them, looked at every round (they are few).
    controllers: Vec<SubscriberId>,
    backlog: EventBacklog,
}

impl Subscribers {
    pub(crate) fn add(&mut self, new: NewSubscriber) {
        if new.kind == SubscriberKind::Controller {
            self.controllers.push(new.id);
        }
        self.senders.insert(new.id, (new.kind, new.events));
    }

    /// The core names `id` no more; its events already waiting still go out.
    pub(crate) fn remove(&mut self, id: SubscriberId) {
        if self
            .senders
            .remove(&id)
            .is_some_and(|(kind, _)| kind == SubscriberKind::Controller)
        {
            self.controllers.retain(|c| *c != id);
        }
    }

    /// Hands `event` of `call` to `to`; says so when `to` turns out gone, for the core.
    pub(crate) fn deliver(
        &mut self,
        to: SubscriberId,
        call: u64,
        event: CallEvent,
    ) -> Option<SubscriberId> {
        let (kind, tx) = self.senders.get(&to)?;
        let gone = match kind {
            SubscriberKind::Watcher => tx.try_send(event).is_err(),
            _ => self.backlog.deliver(call, tx, event) == Delivery::Closed,
        };
        gone.then(|| {
            self.remove(to);
            to
        })
    }

    /// Sends what the subscribers now have room for.
    pub(crate) fn flush(&mut self) {
        self.backlog.flush();
    }

    /// Whether events wait for a subscriber's room (offered again shortly).
    pub(crate) fn pending(&self) -> bool {
        self.backlog.pending()
    }

    /// The controllers whose receivers are gone, let go: calls are no longer offered to them.
    pub(crate) fn gone_controllers(&mut self) -> Vec<SubscriberId> {
        let senders = &self.senders;
        let gone: Vec<SubscriberId> = (self.controllers.iter())
            .filter(|id| senders.get(id).is_none_or(|(_, tx)| tx.is_closed()))
            .copied()
            .collect();
        for id in &gone {
            self.remove(*id);
        }
        gone
    }

    /// Every subscriber whose receiver is gone, let go (a sweep now and then, for those no
    /// event has reached since).
    pub(crate) fn sweep(&mut self) -> Vec<SubscriberId> {
        let gone: Vec<SubscriberId> = (self.senders.iter())
            .filter(|(_, (_, tx))| tx.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(*id);
        }
        gone
    }

    pub(crate) fn len(&self) -> usize {
        self.senders.len()
    }
}
