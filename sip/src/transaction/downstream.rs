//! Admission by the next hop's own responsiveness: the INVITEs sent to a peer and not yet
//! answered at all (not even a 100 Trying) are held under a limit found from how quickly the
//! peer answers, so that a carrier, a proxy or a load generator that falls behind is sent the
//! calls it can take instead of a queue it cannot clear — which it would answer too late,
//! after our retransmissions (Timer A) had doubled its load, and the calls would fail anyway.
//!
//! The first response to an INVITE is hop by hop and comes at once from a peer that keeps up,
//! however long the far end rings, so its delay measures the peer's queue, not the call. As in
//! CoDel, the *least* delay of a window is the signal (a burst makes some answers late; only a
//! peer that cannot keep up makes every answer late), compared with the peer's own base delay
//! (the least seen over the last ten to twenty seconds, so a distant carrier is not mistaken
//! for an overloaded one). While the peer is late, the limit on INVITEs awaiting an answer is
//! cut by a tenth each window; while it keeps up and the limit is what holds calls back, it
//! grows by a twentieth; after two seconds with the peer far under it, it goes. An INVITE that
//! never got an answer (Timer B) counts as late.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a peer's limit is adjusted.
const WINDOW: Duration = Duration::from_millis(100);
/// How long a base delay is remembered: the least of this epoch and the last.
const BASE_EPOCH: Duration = Duration::from_secs(10);
/// The smallest limit: a peer is never shut out, it gets a trickle to show it recovered.
const MIN_LIMIT: u32 = 4;
/// Calm windows (a tenth of a second each) after which the limit goes.
const CALM_TO_LIFT: u32 = 20;
/// Peers followed at once; past it a new peer is not limited (calls to it still go out).
const MAX_PEERS: usize = 4096;

#[derive(Debug)]
struct PeerLoad {
    /// INVITEs sent and not yet answered, and the most of them at once in this window.
    pending: u32,
    peak: u32,
    limit: Option<u32>,
    window_start: Instant,
    /// The least first-response delay of this window, and INVITEs that timed out in it.
    least: Option<Duration>,
    timeouts: u32,
    /// Whether the limit turned an INVITE away in this window (a `Cell`: asking is not
    /// changing the limit, and routing asks through a shared reference).
    limited: Cell<bool>,
    base: Option<Duration>,
    last_base: Option<Duration>,
    epoch_start: Instant,
    calm: u32,
}

impl PeerLoad {
    fn new(now: Instant) -> Self {
        Self {
            pending: 0,
            peak: 0,
            limit: None,
            window_start: now,
            least: None,
            timeouts: 0,
            limited: Cell::new(false),
            base: None,
            last_base: None,
            epoch_start: now,
            calm: 0,
        }
    }

    fn roll(&mut self, now: Instant, delay: Duration) {
        if now.saturating_duration_since(self.epoch_start) >= BASE_EPOCH {
            self.last_base = self.base.take();
            self.epoch_start = now;
        }
        if now.saturating_duration_since(self.window_start) < WINDOW {
            return;
        }
        let base = match (self.base, self.last_base) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or_default(),
        };
        let late = self.timeouts > 0 || self.least.is_some_and(|l| l > base + delay);
        if late {
            // Fewer than were waiting: what the peer had in hand was already too much.
            let from = self.limit.unwrap_or(self.peak.max(MIN_LIMIT));
            self.limit = Some(((f64::from(from) * 0.9) as u32).max(MIN_LIMIT));
            self.calm = 0;
        } else if let Some(limit) = self.limit {
            if self.limited.get() || self.peak >= limit {
                self.limit = Some(limit.saturating_add((limit / 20).max(1)));
            }
            self.calm = if self.peak < limit / 2 {
                self.calm + 1
            } else {
                0
            };
            if self.calm >= CALM_TO_LIFT {
                self.limit = None;
            }
        }
        self.window_start = now;
        self.least = None;
        self.timeouts = 0;
        self.limited.set(false);
        self.peak = self.pending;
    }

    fn idle(&self) -> bool {
        self.pending == 0 && self.limit.is_none()
    }
}

/// Every peer's INVITEs awaiting an answer, and the limit each is held to.
#[derive(Debug, Default)]
pub(crate) struct Downstream {
    /// How much later than its base a peer's answers may come before it is overloaded; zero
    /// turns the limits off.
    delay: Duration,
    peers: HashMap<SocketAddr, PeerLoad>,
}

impl Downstream {
    pub(crate) fn set_delay(&mut self, delay: Duration) {
        self.delay = delay;
        if delay.is_zero() {
            self.peers.clear();
        }
    }

    /// Whether a new INVITE may go to `peer` now. The limit moves only with what the peer
    /// does (INVITEs sent, answers, timeouts), so asking needs no time.
    pub(crate) fn admits(&self, peer: SocketAddr) -> bool {
        let Some(p) = self.peers.get(&peer) else {
            return true;
        };
        match p.limit {
            Some(limit) if p.pending >= limit => {
                p.limited.set(true);
                false
            }
            _ => true,
        }
    }

    /// The limit in force for `peer`, if any.
    pub(crate) fn limit(&self, peer: SocketAddr) -> Option<u32> {
        self.peers.get(&peer).and_then(|p| p.limit)
    }

    /// An INVITE went to `peer`.
    pub(crate) fn sent(&mut self, now: Instant, peer: SocketAddr) {
        if self.delay.is_zero() {
            return;
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            self.peers.retain(|_, p| !p.idle());
            if self.peers.len() >= MAX_PEERS {
                return;
            }
        }
        let delay = self.delay;
        let p = self.peers.entry(peer).or_insert_with(|| PeerLoad::new(now));
        p.roll(now, delay);
        p.pending = p.pending.saturating_add(1);
        p.peak = p.peak.max(p.pending);
    }

    /// The first response to an INVITE sent to `peer` came, `after` it was sent.
    pub(crate) fn answered(&mut self, now: Instant, peer: SocketAddr, after: Duration) {
        let delay = self.delay;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.roll(now, delay);
        p.pending = p.pending.saturating_sub(1);
        p.least = Some(p.least.map_or(after, |l| l.min(after)));
        p.base = Some(p.base.map_or(after, |b| b.min(after)));
    }

    /// An INVITE sent to `peer` ended without any response (Timer B, or the transport failed).
    pub(crate) fn unanswered(&mut self, now: Instant, peer: SocketAddr) {
        let delay = self.delay;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.roll(now, delay);
        p.pending = p.pending.saturating_sub(1);
        p.timeouts = p.timeouts.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9)),
        5060,
    );

    /// A peer that answers `capacity` INVITEs a second in arrival order after `base` (its
    /// distance), offered `offered` a second for `secs`, in virtual time with a 1 ms tick, and
    /// then left to answer what it holds. Returns the INVITEs sent a second of the offered
    /// time and the longest any waited for its first answer.
    fn run(
        d: &mut Downstream,
        t0: Instant,
        capacity: f64,
        base: Duration,
        offered: f64,
        secs: f64,
    ) -> (f64, Duration) {
        use std::collections::VecDeque;
        let tick = Duration::from_millis(1);
        // INVITEs on their way to the peer (arrival, sent), waiting at it (sent), and answers
        // on their way back (arrival, delay).
        let mut in_flight: VecDeque<(Instant, Instant)> = VecDeque::new();
        let mut queue: VecDeque<Instant> = VecDeque::new();
        let mut answers: VecDeque<(Instant, Duration)> = VecDeque::new();
        let (mut credit, mut work, mut sent, mut worst) = (0.0, 0.0, 0u32, Duration::ZERO);
        let ticks = (secs * 1000.0) as u64;
        // Past the offered time, ticks go on without new INVITEs until every one is answered.
        for n in 0.. {
            if n >= ticks && in_flight.is_empty() && queue.is_empty() && answers.is_empty() {
                break;
            }
            let offered = if n < ticks { offered } else { 0.0 };
            let now = t0 + tick * n as u32;
            while answers.front().is_some_and(|(at, _)| *at <= now) {
                let (_, after) = answers.pop_front().unwrap();
                d.answered(now, PEER, after);
            }
            credit += offered / 1000.0;
            while credit >= 1.0 {
                credit -= 1.0;
                if d.admits(PEER) {
                    d.sent(now, PEER);
                    // It reaches the peer after half the distance.
                    in_flight.push_back((now + base / 2, now));
                    sent += 1;
                }
            }
            while in_flight.front().is_some_and(|(at, _)| *at <= now) {
                queue.push_back(in_flight.pop_front().unwrap().1);
            }
            work += capacity / 1000.0;
            while work >= 1.0 {
                let Some(at) = queue.pop_front() else {
                    work = work.min(1.0);
                    break;
                };
                work -= 1.0;
                // The answer comes back after the other half.
                let after = now + base / 2 - at;
                worst = worst.max(after);
                answers.push_back((now + base / 2, after));
            }
        }
        (f64::from(sent) / secs, worst)
    }

    fn downstream() -> Downstream {
        let mut d = Downstream::default();
        d.set_delay(Duration::from_millis(100));
        d
    }

    #[test]
    fn a_peer_offered_twice_what_it_takes_is_sent_about_what_it_takes_and_answers_in_time() {
        let t0 = Instant::now();
        let mut d = downstream();
        let (rate, worst) = run(&mut d, t0, 1000.0, Duration::from_millis(2), 2000.0, 20.0);
        assert!(
            (900.0..=1100.0).contains(&rate),
            "sent {rate}/s to a peer taking 1000/s"
        );
        // Without the limit the queue would grow by 1,000 a second: 10 s by the end. With it,
        // answers stay well inside T1, so nothing is retransmitted.
        assert!(worst < Duration::from_millis(500), "{worst:?}");
        assert!(d.limit(PEER).is_some());
    }

    #[test]
    fn a_distant_peer_that_keeps_up_is_never_limited() {
        // 150 ms away, taking all of 300 calls a second: its answers are late only by its
        // distance, which is its base.
        let t0 = Instant::now();
        let mut d = downstream();
        let (rate, _) = run(&mut d, t0, 1000.0, Duration::from_millis(150), 300.0, 30.0);
        assert!(rate >= 299.0, "{rate}");
        assert_eq!(d.limit(PEER), None);
    }

    #[test]
    fn the_limit_goes_once_the_peer_keeps_up_again() {
        let t0 = Instant::now();
        let mut d = downstream();
        run(&mut d, t0, 500.0, Duration::from_millis(2), 1500.0, 5.0);
        assert!(d.limit(PEER).is_some());
        let later = t0 + Duration::from_secs(6);
        let (rate, _) = run(&mut d, later, 500.0, Duration::from_millis(2), 100.0, 5.0);
        assert!(rate >= 99.0, "{rate}");
        assert_eq!(d.limit(PEER), None);
    }

    #[test]
    fn invites_never_answered_shut_a_peer_down_to_a_trickle() {
        let t0 = Instant::now();
        let mut d = downstream();
        let mut sent = 0;
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            if d.admits(PEER) {
                d.sent(now, PEER);
                sent += 1;
            }
            // Timer B: each INVITE is given up on 32 s after it was sent; here the first
            // ones 1 s in, as if the peer had gone away then.
            if ms >= 1000 && ms % 10 == 0 {
                d.unanswered(now, PEER);
            }
        }
        assert_eq!(d.limit(PEER), Some(MIN_LIMIT));
        assert!(sent < 1200, "{sent}");
    }

    #[test]
    fn off_follows_nothing() {
        let t0 = Instant::now();
        let mut d = Downstream::default();
        for ms in 0..1000u64 {
            let now = t0 + Duration::from_millis(ms);
            assert!(d.admits(PEER));
            d.sent(now, PEER);
        }
        assert!(d.peers.is_empty());
    }
}
