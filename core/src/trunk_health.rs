//! Trunks' health from OPTIONS keep-alives: each trunk with an `options_interval` is pinged
//! that often, one ping in flight at a time; an unanswered ping (the transaction's 408 at
//! 64·T1) or a 503 marks it down, any other answer up. Routes pass over a trunk while it is
//! down. Trunks that are not probed are always up. Sans-IO: the core sends the pings this
//! asks for and feeds back the answers, with the time.

use super::dial_plan::DialPlan;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use switchboard_sip::ua::PingId;

struct Probe {
    interval: Duration,
    /// When it is pinged next; `None`: at the first chance (a trunk just configured).
    next: Option<Instant>,
    pending: Option<PingId>,
    up: bool,
}

/// What an answer changed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Change {
    pub(super) trunk: String,
    pub(super) up: bool,
    pub(super) code: u16,
}

#[derive(Default)]
pub(super) struct TrunkHealth {
    probes: HashMap<String, Probe>,
}

impl TrunkHealth {
    /// Probes the trunks `routing` asks to: a trunk probed before keeps its state; new ones
    /// start up and are pinged at once.
    pub(super) fn reconfigure(&mut self, routing: &DialPlan) {
        let mut probes = HashMap::new();
        for trunk in &routing.trunks {
            let Some(interval) = trunk.options_interval else {
                continue;
            };
            let probe = match self.probes.remove(&trunk.name) {
                Some(p) => Probe { interval, ..p },
                None => Probe {
                    interval,
                    next: None,
                    pending: None,
                    up: true,
                },
            };
            probes.insert(trunk.name.clone(), probe);
        }
        self.probes = probes;
    }

    pub(super) fn is_up(&self, trunk: &str) -> bool {
        self.probes.get(trunk).is_none_or(|p| p.up)
    }

    /// When the next ping is due.
    pub(super) fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        (self.probes.values())
            .filter(|p| p.pending.is_none())
            .map(|p| p.next.unwrap_or(now))
            .min()
    }

    /// The trunks to ping now (none with a ping in flight).
    pub(super) fn due(&self, now: Instant) -> Vec<String> {
        (self.probes.iter())
            .filter(|(_, p)| p.pending.is_none() && p.next.is_none_or(|at| at <= now))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A ping went to `trunk` (or, `None`, could not be sent: tried again next interval).
    pub(super) fn sent(&mut self, trunk: &str, ping: Option<PingId>, now: Instant) {
        if let Some(p) = self.probes.get_mut(trunk) {
            p.pending = ping;
            p.next = Some(now + p.interval);
        }
    }

    /// The answer to a ping; what it changed, if anything.
    pub(super) fn on_pong(&mut self, ping: PingId, code: u16, now: Instant) -> Option<Change> {
        let (name, probe) = self
            .probes
            .iter_mut()
            .find(|(_, p)| p.pending == Some(ping))?;
        probe.pending = None;
        // A ping answered late (at 64·T1) is followed by the next at once if its time passed.
        probe.next = probe.next.map(|at| at.max(now));
        let up = !matches!(code, 408 | 503);
        if probe.up == up {
            return None;
        }
        probe.up = up;
        Some(Change {
            trunk: name.clone(),
            up,
            code,
        })
    }

    /// Another shard's keep-alives found `trunk` up or down; whether that changed its state.
    pub(super) fn set(&mut self, trunk: &str, up: bool) -> bool {
        match self.probes.get_mut(trunk) {
            Some(probe) if probe.up != up => {
                probe.up = up;
                true
            }
            _ => false,
        }
    }

    /// Every probed trunk and whether it is up.
    pub(super) fn states(&self) -> impl Iterator<Item = (&str, bool)> {
        self.probes.iter().map(|(n, p)| (n.as_str(), p.up))
    }
}

impl super::CallCore {
    /// Whether this core pings the trunks: the first shard does, for the node, and tells the
    /// others what it finds ([`Output::TrunkHealth`](super::Output::TrunkHealth)); one
    /// trunk gets one keep-alive an interval however many shards the node runs.
    pub(super) fn pings_trunks(&self) -> bool {
        self.config.shard.index == 0
    }

    /// Pings the trunks whose keep-alive is due.
    pub(super) fn probe_trunks(&mut self, now: Instant) {
        if !self.pings_trunks() {
            return;
        }
        for name in self.trunk_health.due(now) {
            let ping = self.routing.trunk(&name).and_then(|t| {
                let peer = self.ua.peer_for(t.transport, t.address)?;
                let uri = format!("sip:{}{}", t.address, t.transport.uri_param());
                let uri = switchboard_sip::message::Uri::try_from(uri.as_str()).ok()?;
                self.ua.ping(now, peer, &uri)
            });
            self.trunk_health.sent(&name, ping, now);
        }
    }

    /// A keep-alive's answer: a trunk that went down or came back is logged and shown in
    /// `switchboard_trunk_up`.
    pub(super) fn on_pong(&mut self, now: Instant, ping: PingId, code: u16) {
        let Some(change) = self.trunk_health.on_pong(ping, code, now) else {
            return;
        };
        if change.up {
            tracing::info!(trunk = %change.trunk, code, "trunk up: it answers its keep-alive");
        } else {
            tracing::warn!(trunk = %change.trunk, code, "trunk down: routes pass over it until it answers");
        }
        self.show_trunk_health();
        if self.config.shard.count > 1 {
            let (trunk, up) = (change.trunk, change.up);
            self.outputs
                .push_back(super::Output::TrunkHealth { trunk, up });
        }
    }

    /// What the shard that pings the trunks found: `trunk` is up or down from now on.
    pub fn handle_trunk_health(&mut self, trunk: &str, up: bool) {
        if self.trunk_health.set(trunk, up) {
            tracing::debug!(trunk, up, "a trunk's health, from the shard that pings it");
        }
    }

    /// Whether a route may send a new call to `trunk` now: it is up (its keep-alives are
    /// answered) and not busy — answering INVITEs late, with as many unanswered as the user
    /// agent allows it (its downstream limit). A route passes over a trunk that may not take
    /// the call to the next one.
    pub(super) fn trunk_takes_calls(&self, trunk: &str) -> bool {
        takes_calls(&self.trunk_health, &self.routing, &self.ua, trunk)
    }

    /// Whether some trunk of the route `number` takes was passed over for being busy (and
    /// not only down): the call is refused for the trunks' load, not for want of a route.
    pub(super) fn route_busy(&self, number: &str, account: Option<&str>) -> bool {
        match self.routing.route(number, account).map(|r| &r.target) {
            Some(super::dial_plan::Target::Trunks(names)) => {
                names.iter().any(|n| busy(&self.routing, &self.ua, n))
            }
            Some(super::dial_plan::Target::Shares(shares)) => {
                (shares.iter()).any(|s| busy(&self.routing, &self.ua, &s.trunk))
            }
            _ => false,
        }
    }

    /// `switchboard_trunk_up{trunk}`: 1 or 0 for each probed trunk.
    pub(super) fn show_trunk_health(&self) {
        for (trunk, up) in self.trunk_health.states() {
            metrics::gauge!("switchboard_trunk_up", "trunk" => trunk.to_owned()).set(if up {
                1.0
            } else {
                0.0
            });
        }
    }
}

/// [`CallCore::trunk_takes_calls`](super::CallCore::trunk_takes_calls), for callers holding a
/// call mutably.
pub(super) fn takes_calls(
    health: &TrunkHealth,
    routing: &DialPlan,
    ua: &switchboard_sip::ua::UserAgent,
    trunk: &str,
) -> bool {
    health.is_up(trunk) && !busy(routing, ua, trunk)
}

fn busy(routing: &DialPlan, ua: &switchboard_sip::ua::UserAgent, trunk: &str) -> bool {
    (routing.trunk(trunk)).is_some_and(|t| !ua.downstream_admits(t.address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dial_plan::Trunk;

    fn routing(probed: &[(&str, u64)]) -> DialPlan {
        let trunk = |name: &str, secs: u64| Trunk {
            name: name.into(),
            address: "192.0.2.1:5060".parse().unwrap(),
            transport: switchboard_sip::transport::Transport::Udp,
            inbound_sources: Vec::new(),
            credentials: None,
            rtp_source: Default::default(),
            srtp: Default::default(),
            trusted: false,
            tls: None,
            options_interval: (secs > 0).then(|| Duration::from_secs(secs)),
        };
        DialPlan {
            trunks: probed.iter().map(|(n, s)| trunk(n, *s)).collect(),
            ..DialPlan::default()
        }
    }

    /// A probed trunk is pinged at once, then every interval with one ping in flight; no
    /// answer (408) or 503 takes it down, any other answer brings it back; a trunk not probed
    /// is always up; a reload keeps what was learnt.
    #[test]
    fn keep_alives_take_a_trunk_down_and_bring_it_back() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut health = TrunkHealth::default();
        health.reconfigure(&routing(&[("a", 10), ("b", 0)]));
        assert_eq!(health.poll_timeout(t0), Some(t0));
        assert_eq!(health.due(t0), vec!["a".to_string()]);
        let ping = |n: u64| -> PingId { n };
        health.sent("a", Some(ping(1)), t0);
        assert_eq!(health.poll_timeout(t0), None, "one ping in flight");
        assert!(health.due(t0 + s(60)).is_empty());

        // Unanswered: reported at 64·T1 (32 s), past the interval: the next goes at once.
        let change = health.on_pong(ping(1), 408, t0 + s(32));
        assert_eq!(
            change,
            Some(Change {
                trunk: "a".into(),
                up: false,
                code: 408
            })
        );
        assert!(!health.is_up("a") && health.is_up("b") && health.is_up("unknown"));
        assert_eq!(health.poll_timeout(t0 + s(32)), Some(t0 + s(32)));
        health.sent("a", Some(ping(2)), t0 + s(32));
        assert_eq!(health.on_pong(ping(2), 503, t0 + s(33)), None, "still down");
        assert_eq!(health.poll_timeout(t0 + s(33)), Some(t0 + s(42)));
        assert_eq!(health.on_pong(ping(99), 200, t0 + s(33)), None, "not ours");

        health.reconfigure(&routing(&[("a", 5)]));
        assert!(!health.is_up("a"), "a reload keeps what was learnt");
        health.sent("a", Some(ping(3)), t0 + s(42));
        // Any answer, even one refusing OPTIONS, is a trunk that is there.
        let back = health.on_pong(ping(3), 405, t0 + s(42));
        assert_eq!(back.map(|c| c.up), Some(true));
        assert!(health.is_up("a"));
        assert_eq!(health.poll_timeout(t0 + s(42)), Some(t0 + s(47)));
    }
}
