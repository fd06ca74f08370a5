//! The applications registered to control calls: which one is offered an incoming call to a
//! number (its exact number, else the longest prefix) or a call a SIP user places, and which
//! subscribers are controllers — a controller is shared by its calls, so one call's end does
//! not let it go; it goes when the driver finds it gone.

use super::SubscriberId;
use super::api::Dialed;
use std::collections::HashSet;

#[derive(Default)]
pub(super) struct Controllers {
    /// Incoming calls to the numbers these match go to their controllers.
    by_dialed: Vec<(Dialed, SubscriberId)>,
    /// Every controller ever registered and not gone.
    ids: HashSet<SubscriberId>,
}

impl Controllers {
    /// The controller registered for a dialed number, if any (its exact number, else the
    /// longest prefix).
    pub(super) fn for_number(&self, number: &str) -> Option<SubscriberId> {
        (self.by_dialed.iter())
            .filter_map(|(dialed, to)| Some((dialed.rank(number)?, *to)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, to)| to)
    }

    /// The controller registered for the calls `user` places, if any.
    pub(super) fn for_caller(&self, user: &str) -> Option<SubscriberId> {
        (self.by_dialed.iter())
            .find(|(dialed, _)| matches!(dialed, Dialed::Caller(u) if u == user))
            .map(|(_, to)| *to)
    }

    /// `to` controls the calls `dialed` matches, in place of any before it.
    pub(super) fn register(&mut self, dialed: Dialed, to: SubscriberId) {
        self.release(&dialed);
        self.by_dialed.push((dialed, to));
        self.ids.insert(to);
    }

    /// No one controls the calls `dialed` matches any more; the calls it has keep it.
    pub(super) fn release(&mut self, dialed: &Dialed) {
        self.by_dialed.retain(|(d, _)| d != dialed);
    }

    pub(super) fn is_controller(&self, id: SubscriberId) -> bool {
        self.ids.contains(&id)
    }

    /// The subscriber `gone` is gone: it controls nothing.
    pub(super) fn forget(&mut self, gone: SubscriberId) {
        self.by_dialed.retain(|(_, s)| *s != gone);
        self.ids.remove(&gone);
    }
}
