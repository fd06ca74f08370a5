//! Overload control: past what the server can carry, new calls are refused at once with 503
//! and Retry-After instead of being queued until they fail.
//!
//! The load is measured, not configured: each message is stamped when it arrived (a UDP datagram
//! when the kernel took it in, so the time it waited in the socket's buffer counts; a TCP message
//! when it was read), and the time it waited for the core (its sojourn) says whether the core keeps
//! up. As in CoDel, the *least* sojourn over a window is the signal: a burst makes some messages
//! wait, but only a core that cannot keep up leaves every message of a window waiting. While it
//! does, new INVITEs are admitted at a rate found by additive increase and multiplicative decrease
//! (RFC 7415's rate-based control, the rate set by the core's own delay rather than by a
//! downstream's feedback), shared fairly among the addresses that send them, so one flooding trunk
//! cannot take the capacity of the others. Everything else — requests inside dialogs, responses,
//! retransmissions (a copy of a refused INVITE gets the same 503 from the transaction layer's
//! memory of it) — goes on: the calls admitted complete.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How overload control behaves; [`OverloadConfig::off`] disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadConfig {
    /// The standing sojourn above which the core is overloaded (zero: never).
    pub delay: Duration,
    /// Seconds a refused caller is asked to wait (the 503's Retry-After).
    pub retry_after: u32,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        // A message that waits longer than this on every look is a queue that grows; it is
        // well inside T1 (500 ms), so admitted calls see no retransmission.
        Self {
            delay: Duration::from_millis(100),
            retry_after: 1,
        }
    }
}

impl OverloadConfig {
    pub fn off() -> Self {
        Self {
            delay: Duration::ZERO,
            retry_after: 1,
        }
    }
}

/// How often the admission rate is adjusted.
const WINDOW: Duration = Duration::from_millis(100);
/// The share of the rate measured in the window that found the core overloaded that is
/// admitted from then on.
const FIRST_CUT: f64 = 0.9;
/// How much a window moves the rate toward keeping the standing sojourn at half the
/// overload delay: by this share of the rate when there is no queue at all, and by minus it
/// when the queue is twice the target or more. Keeping a small queue rather than none keeps
/// the core busy: the calls admitted are as many as it can carry.
const GAIN: f64 = 0.1;
const TREND_GAIN: f64 = 1.0;
const MAX_STEP: f64 = 0.2;
/// Calm windows in a row, with less offered than admitted, after which the limit goes.
const CALM_TO_LIFT: u32 = 20;
/// Addresses counted for fairness in a window; beyond it the others share one count.
const MAX_SOURCES: usize = 4096;
/// Messages a window must have seen for its verdict to be overload: a standing queue is many
/// messages deep, while a handful that waited is a stall of the machine (a core descheduled
/// for a moment), after which the core is idle again — no reason to refuse anyone.
const MIN_SAMPLES: u32 = 32;

/// What overload control has done, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OverloadState {
    /// New INVITEs refused since the start.
    pub refused: u64,
    /// The admission rate in force (calls/s), when limiting.
    pub rate: Option<f64>,
    /// The least sojourn of the last window: the standing queue in front of the core.
    pub queue: Duration,
}

#[derive(Debug)]
pub(crate) struct Overload {
    config: OverloadConfig,
    window_start: Option<Instant>,
    /// The least and the most sojourn seen in this window.
    least: Option<Duration>,
    most: Duration,
    samples: u32,
    /// The least sojourn of the window before.
    last_least: Duration,
    /// INVITEs offered and admitted in this window.
    offered: u32,
    admitted: u32,
    /// Admitted per address in this window, and how many addresses sent in the last one.
    sources: HashMap<IpAddr, u32>,
    others: u32,
    senders: usize,
    rate: Option<f64>,
    tokens: f64,
    refilled: Option<Instant>,
    calm: u32,
    refused: u64,
}

impl Overload {
    pub(crate) fn new(config: OverloadConfig) -> Self {
        Self {
            config,
            window_start: None,
            least: None,
            most: Duration::ZERO,
            samples: 0,
            last_least: Duration::ZERO,
            offered: 0,
            admitted: 0,
            sources: HashMap::new(),
            others: 0,
            senders: 0,
            rate: None,
            tokens: 0.0,
            refilled: None,
            calm: 0,
            refused: 0,
        }
    }

    pub(crate) fn state(&self) -> OverloadState {
        OverloadState {
            refused: self.refused,
            rate: self.rate,
            queue: self.last_least,
        }
    }

    /// A message taken off its socket at `received` reaches the core at `now`.
    pub(crate) fn observe(&mut self, now: Instant, received: Instant) {
        if self.config.delay.is_zero() {
            return;
        }
        self.roll(now);
        let sojourn = now.saturating_duration_since(received);
        self.least = Some(self.least.map_or(sojourn, |l| l.min(sojourn)));
        self.most = self.most.max(sojourn);
        self.samples = self.samples.saturating_add(1);
    }

    /// Whether a new INVITE from `source` is taken; `Err(retry_after)` when refused.
    pub(crate) fn admit(&mut self, now: Instant, source: IpAddr) -> Result<(), u32> {
        if self.config.delay.is_zero() {
            return Ok(());
        }
        self.roll(now);
        self.offered = self.offered.saturating_add(1);
        if let Some(rate) = self.rate {
            let elapsed = self
                .refilled
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            // A tenth of a second's worth may come at once, and at least one call.
            let burst = (rate * WINDOW.as_secs_f64()).max(1.0);
            self.tokens = (self.tokens + rate * elapsed.as_secs_f64()).min(burst);
            self.refilled = Some(now);
            // Each address that sent in the last window gets an equal share of this one's.
            let share = (rate * WINDOW.as_secs_f64() / self.senders.max(1) as f64)
                .ceil()
                .max(1.0);
            let taken = self.sources.get(&source).copied().unwrap_or(0);
            if self.tokens < 1.0 || (self.senders > 1 && f64::from(taken) >= share) {
                self.refused += 1;
                return Err(self.config.retry_after);
            }
            self.tokens -= 1.0;
        }
        self.admitted = self.admitted.saturating_add(1);
        if self.sources.len() < MAX_SOURCES || self.sources.contains_key(&source) {
            *self.sources.entry(source).or_default() += 1;
        } else {
            self.others = self.others.saturating_add(1);
        }
        Ok(())
    }

    /// Closes the window when it is over, and sets the next one's rate from it.
    fn roll(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < WINDOW {
            return;
        }
        let high = self.config.delay;
        let measured = f64::from(self.admitted) / elapsed.as_secs_f64();
        let offered = f64::from(self.offered) / elapsed.as_secs_f64();
        match self.rate {
            None if self.samples >= MIN_SAMPLES && self.least.is_some_and(|l| l > high) => {
                // Every message of a busy window waited: a standing queue. From now on,
                // admit less than went in; the first window limited may take its burst.
                let rate = (measured * FIRST_CUT).max(1.0);
                self.tokens = (rate * WINDOW.as_secs_f64()).max(1.0);
                self.refilled = Some(now);
                self.rate = Some(rate);
                self.calm = 0;
            }
            None => {}
            Some(_) if elapsed >= WINDOW * CALM_TO_LIFT => {
                // Nothing came for as long as it takes to lift the limit: no queue is left.
                self.rate = None;
            }
            Some(rate) => {
                let target = (high / 2).as_secs_f64();
                let least = self.least.unwrap_or_default().as_secs_f64();
                let error = ((target - least) / target).clamp(-1.0, 1.0);
                let trend = (least - self.last_least.as_secs_f64()) / target;
                let step = (GAIN * error - TREND_GAIN * trend).clamp(-MAX_STEP, MAX_STEP);
                self.calm = if self.most < high / 4 {
                    self.calm + 1
                } else {
                    0
                };
                self.rate = if self.calm >= CALM_TO_LIFT && offered < rate {
                    None
                } else {
                    Some((rate * (1.0 + step)).max(1.0))
                };
            }
        }
        self.last_least = self.least.unwrap_or_default();
        self.senders = self.sources.len() + usize::from(self.others > 0);
        self.sources.clear();
        self.others = 0;
        self.window_start = Some(now);
        self.least = None;
        self.most = Duration::ZERO;
        self.samples = 0;
        self.offered = 0;
        self.admitted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    /// A core that carries `capacity` calls a second (a refused INVITE costs it a twentieth
    /// of an admitted call), offered `offered` a second from the given sources in turn for
    /// `secs`, simulated in virtual time: INVITEs wait in a queue in arrival order, the core
    /// takes each when it has finished the one before, and the sojourn it sees is the wait.
    /// Returns the calls admitted per source and the longest wait after the first second.
    fn run(
        ol: &mut Overload,
        t0: Instant,
        capacity: f64,
        offered: f64,
        secs: f64,
        from: &[IpAddr],
    ) -> (Vec<u32>, Duration) {
        let mut admitted = vec![0; from.len()];
        let mut worst = Duration::ZERO;
        let arrival = |n: usize| n as f64 / offered;
        let (mut core, mut next) = (0.0f64, 0usize);
        while arrival(next) < secs {
            core = core.max(arrival(next));
            let (now, received) = (
                t0 + Duration::from_secs_f64(core),
                t0 + Duration::from_secs_f64(arrival(next)),
            );
            ol.observe(now, received);
            if arrival(next) > 1.0 {
                worst = worst.max(now - received);
            }
            let source = next % from.len();
            if ol.admit(now, from[source]).is_ok() {
                admitted[source] += 1;
                core += 1.0 / capacity;
            } else {
                core += 0.05 / capacity;
            }
            next += 1;
        }
        (admitted, worst)
    }

    /// As [`run`], but a call's work comes as its messages do: a fifth at its INVITE, the rest
    /// with the messages that follow it (the callee's answer a few ms on, the ACK, the BYE a
    /// second on and its answer), each waiting in the one queue in arrival order — the load an
    /// admission decides arrives later than the decision. A refused INVITE costs `refusal` of
    /// a call. Returns the calls admitted a second and the longest wait after two seconds.
    fn run_calls(
        ol: &mut Overload,
        t0: Instant,
        capacity: f64,
        offered: f64,
        secs: f64,
        refusal: f64,
    ) -> (f64, Duration) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        // After the INVITE: (µs later, share of the call's work).
        let later = [
            (5_000u64, 0.3),
            (10_000, 0.1),
            (1_010_000, 0.25),
            (1_015_000, 0.15),
        ];
        // (arrival in µs, order, kind: 0 an INVITE, k the k-th message after one).
        let mut queue: BinaryHeap<Reverse<(u64, u64, usize)>> = BinaryHeap::new();
        let n = (offered * secs) as u64;
        for i in 0..n {
            queue.push(Reverse(((i as f64 * 1e6 / offered) as u64, i, 0)));
        }
        let (mut core, mut admitted, mut worst, mut order) = (0.0f64, 0u32, Duration::ZERO, n);
        while let Some(Reverse((at, _, kind))) = queue.pop() {
            let arrived = at as f64 / 1e6;
            core = core.max(arrived);
            let now = t0 + Duration::from_secs_f64(core);
            let received = t0 + Duration::from_secs_f64(arrived);
            ol.observe(now, received);
            if arrived > 2.0 {
                worst = worst.max(now - received);
            }
            if kind != 0 {
                core += later[kind - 1].1 / capacity;
                continue;
            }
            if ol.admit(now, A).is_ok() {
                admitted += 1;
                core += 0.2 / capacity;
                for (k, (delay, _)) in later.iter().enumerate() {
                    order += 1;
                    queue.push(Reverse(((core * 1e6) as u64 + delay, order, k + 1)));
                }
            } else {
                core += refusal / capacity;
            }
        }
        (f64::from(admitted) / secs, worst)
    }

    /// Calls whose messages follow their INVITE, offered at twice the capacity for 20 s: nine
    /// tenths of the capacity or more is carried, and no message waits as long as T1 (an
    /// admitted call is not retransmitted).
    #[test]
    fn calls_whose_work_comes_later_are_admitted_to_about_the_capacity() {
        let t0 = Instant::now();
        for capacity in [500.0, 1500.0] {
            let mut ol = Overload::new(OverloadConfig::default());
            let (goodput, worst) = run_calls(&mut ol, t0, capacity, 2.0 * capacity, 20.0, 0.05);
            assert!(goodput >= 0.9 * capacity, "{goodput} calls/s of {capacity}");
            assert!(worst < Duration::from_millis(450), "{worst:?}");
        }
    }

    /// Offered just past the capacity, where a moment's queue trips the limit: the rate found
    /// carries about the capacity, not a fraction of it, even when a refusal costs a fifth of
    /// a call (two messages parsed and one sent, against a call's fourteen). Past 1.5× the
    /// capacity a refusal that costly is what limits: see `benches/load/RESULTS.md`.
    #[test]
    fn offered_just_past_the_capacity_about_the_capacity_is_carried() {
        let t0 = Instant::now();
        let capacity = 3000.0;
        for over in [1.05, 1.1, 1.2] {
            for refusal in [0.05, 0.2] {
                let mut ol = Overload::new(OverloadConfig::default());
                let offered = over * capacity;
                let (goodput, worst) = run_calls(&mut ol, t0, capacity, offered, 20.0, refusal);
                assert!(ol.state().refused > 0, "{over}× is overload");
                assert!(
                    goodput >= 0.94 * capacity,
                    "{goodput} calls/s of {capacity} at {over}×, a refusal {refusal} of a call"
                );
                assert!(worst < Duration::from_millis(250), "{worst:?}");
            }
        }
    }

    #[test]
    fn below_capacity_everything_is_admitted() {
        let t0 = Instant::now();
        let mut ol = Overload::new(OverloadConfig::default());
        let (admitted, _) = run(&mut ol, t0, 1000.0, 800.0, 10.0, &[A]);
        assert_eq!(admitted, vec![8000]);
        assert_eq!(ol.state(), OverloadState::default());
    }

    #[test]
    fn offered_twice_the_capacity_about_the_capacity_is_admitted_and_the_rest_refused() {
        let t0 = Instant::now();
        let mut ol = Overload::new(OverloadConfig::default());
        let (admitted, worst) = run(&mut ol, t0, 1000.0, 2000.0, 20.0, &[A]);
        let goodput = f64::from(admitted[0]) / 20.0;
        // At most 950 can be carried: the refusals take the rest.
        assert!(
            (900.0..=950.0).contains(&goodput),
            "admitted {goodput} calls/s of a capacity of 1000"
        );
        // The queue stays well short of T1 (500 ms): admitted calls are not retransmitted.
        assert!(worst < Duration::from_millis(250), "{worst:?}");
        let state = ol.state();
        assert!(state.refused > 15_000, "{state:?}");
        assert!(state.rate.is_some());
        assert!(state.queue < Duration::from_millis(250), "{state:?}");
        // The load gone, the limit is lifted within a few seconds of calm.
        let later = t0 + Duration::from_secs(21);
        let (admitted, _) = run(&mut ol, later, 1000.0, 200.0, 5.0, &[A]);
        assert!(
            admitted[0] >= 999,
            "all of a light load taken again: {admitted:?}"
        );
        assert_eq!(ol.state().rate, None);
    }

    #[test]
    fn the_queue_shown_is_the_least_wait_of_the_last_window() {
        let t0 = Instant::now();
        let mut ol = Overload::new(OverloadConfig::default());
        for ms in 0..100u64 {
            let now = t0 + Duration::from_millis(ms);
            ol.observe(now, now - Duration::from_millis(300 + ms % 50));
        }
        let next = t0 + Duration::from_millis(100);
        ol.observe(next, next);
        assert_eq!(ol.state().queue, Duration::from_millis(300));
        assert!(
            ol.state().rate.is_some(),
            "a standing queue of 300 ms is overload"
        );
    }

    #[test]
    fn a_flooding_source_gets_its_share_not_the_others() {
        // A sends nine calls for each of B's: B's tenth of the offer is under its half of the
        // capacity, so B loses (almost) nothing.
        let t0 = Instant::now();
        let mut ol = Overload::new(OverloadConfig::default());
        let from = [A, A, A, A, A, A, A, A, A, B];
        let (admitted, _) = run(&mut ol, t0, 1000.0, 3000.0, 20.0, &from);
        let (a, b) = (admitted[..9].iter().sum::<u32>(), admitted[9]);
        let b_offered = 3000 * 20 / 10;
        assert!(
            f64::from(b) >= 0.9 * f64::from(b_offered),
            "B got {b} of its {b_offered} (A {a})"
        );
        assert!(a + b < 1050 * 20, "A {a} B {b}");
    }

    #[test]
    fn a_burst_that_drains_refuses_nothing() {
        // A queue at the start of each window (a burst) that is gone within it: no standing
        // queue, no refusal.
        let t0 = Instant::now();
        let mut ol = Overload::new(OverloadConfig::default());
        for ms in 0..3000u64 {
            let now = t0 + Duration::from_millis(ms);
            let waited = if ms % 100 < 10 { 300 } else { 0 };
            ol.observe(now, now - Duration::from_millis(waited));
            assert!(ol.admit(now, A).is_ok(), "refused at {ms} ms");
        }
    }

    #[test]
    fn a_stall_with_a_few_messages_refuses_nothing() {
        // Ten calls a second, the core descheduled for 300 ms now and then: each message of
        // some windows waited, but a handful is no standing queue.
        let t0 = Instant::now();
        let mut ol = Overload::new(OverloadConfig::default());
        for n in 0..100u64 {
            let now = t0 + Duration::from_millis(n * 100);
            let waited = if n % 7 == 0 { 300 } else { 1 };
            for _ in 0..5 {
                ol.observe(now, now - Duration::from_millis(waited));
            }
            assert!(ol.admit(now, A).is_ok(), "refused call {n}");
        }
        let state = ol.state();
        assert_eq!((state.refused, state.rate), (0, None));
    }

    #[test]
    fn off_admits_everything() {
        let t0 = Instant::now();
        let mut ol = Overload::new(OverloadConfig::off());
        for ms in 0..1000u64 {
            let now = t0 + Duration::from_millis(ms);
            ol.observe(now, now - Duration::from_secs(5));
            assert!(ol.admit(now, A).is_ok());
        }
    }
}
