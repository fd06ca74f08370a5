//! Slowing down credential guessing: failed authentications are counted per source address
//! (IPv6 by /64); past a burst, the address is answered 429 — in the dialect's shape, before
//! any credential is looked at — for a back-off that doubles with each further failure. The
//! count leaks away with time not spent waiting, so a client that mistypes now and then is
//! never slowed, and one that stops is forgiven.
//!
//! Per address, not per account: a guesser elsewhere cannot lock the real account out. A
//! success does not clear the count (a guesser holding an account of its own could otherwise
//! interleave its valid requests to guess another's without limit).
//!
//! Sans-IO (time is passed in); the map is bounded.

use super::address_key;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottlePolicy {
    /// Failures an address may have outstanding before it is made to wait.
    pub burst: u32,
    /// One outstanding failure is forgotten per this much time.
    pub forget_every: Duration,
    /// The first wait; each further failure doubles it, up to `max_wait`.
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// Addresses tracked at most.
    pub capacity: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            burst: 10,
            forget_every: Duration::from_secs(30),
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(15 * 60),
            capacity: 65_536,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Outstanding failures as of `at`.
    failures: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

impl Record {
    /// Time spent made to wait forgets nothing: a guesser who retries the moment each wait
    /// ends keeps its count, and its waits keep doubling.
    fn outstanding(&self, policy: &ThrottlePolicy, now: Instant) -> f64 {
        let since = self.blocked_until.map_or(self.at, |u| u.max(self.at));
        let forgotten = now.saturating_duration_since(since).as_secs_f64()
            / policy.forget_every.as_secs_f64().max(1e-3);
        (self.failures - forgotten).max(0.0)
    }
}

/// Failed authentications per source address.
#[derive(Debug)]
pub struct AuthThrottle {
    policy: ThrottlePolicy,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl AuthThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may try to authenticate at `now`; else how long it must wait.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let records = self.records.lock().expect("not poisoned");
        match records.get(&address_key(ip)).and_then(|r| r.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// `ip` failed to authenticate at `now`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let p = &self.policy;
        let key = address_key(ip);
        let mut records = self.records.lock().expect("not poisoned");
        if !records.contains_key(&key) && records.len() >= p.capacity {
            // Forget those with nothing outstanding and no wait; if all are live, the newcomer
            // goes untracked rather than evicting a guesser.
            records.retain(|_, r| {
                r.outstanding(p, now) >= 1.0 || r.blocked_until.is_some_and(|u| u > now)
            });
            if records.len() >= p.capacity {
                return;
            }
        }
        let record = records.entry(key).or_insert(Record {
            failures: 0.0,
            at: now,
            blocked_until: None,
        });
        record.failures = record.outstanding(p, now) + 1.0;
        record.at = now;
        let over = record.failures - f64::from(p.burst);
        if over > 0.0 {
            // 1×, 2×, 4×… the first wait for the 1st, 2nd, 3rd… failure past the burst.
            let doublings = (over.ceil() as u32 - 1).min(30);
            let wait = p
                .first_wait
                .checked_mul(1u32 << doublings)
                .unwrap_or(p.max_wait)
                .min(p.max_wait);
            record.blocked_until = now.checked_add(wait);
        }
    }

    pub fn tracked(&self) -> usize {
        self.records.lock().expect("not poisoned").len()
    }
}

/// A dialect's 429 for a client that must wait this long.
pub type TooMany = fn(Duration) -> Response;

/// What a handler that authenticates inside its connection (a browser SDK's login on a
/// WebSocket) counts its failures with: [`guard`] puts it in the request's extensions.
#[derive(Clone)]
pub struct Failures {
    throttle: Arc<AuthThrottle>,
    ip: IpAddr,
}

impl Failures {
    /// A failed login from the request's address.
    pub fn failed(&self) {
        self.throttle.failed(self.ip, Instant::now());
    }
}

/// Middleware: refuses a throttled address with the dialect's 429 before the request reaches
/// any credential check, and counts the request's 401, if it gets one, against its address.
pub async fn guard(
    State((throttle, too_many)): State<(Arc<AuthThrottle>, TooMany)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(ip) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(request).await;
    };
    if let Err(wait) = throttle.check(ip, Instant::now()) {
        metrics::counter!("switchboard_http_auth_throttled_total").increment(1);
        return too_many(wait);
    }
    (request.extensions_mut()).insert(Failures {
        throttle: throttle.clone(),
        ip,
    });
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        throttle.failed(ip, Instant::now());
    }
    response
}

/// `router` behind [`guard`], answering 429 as `too_many` renders it.
pub fn guarded(
    router: axum::Router,
    throttle: &Arc<AuthThrottle>,
    too_many: TooMany,
) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        (throttle.clone(), too_many),
        guard,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_passes_then_the_wait_doubles_with_each_failure() {
        let t = AuthThrottle::new(ThrottlePolicy::default());
        let (guesser, now) = (ip("198.51.100.7"), Instant::now());
        for _ in 0..10 {
            assert_eq!(t.check(guesser, now), Ok(()));
            t.failed(guesser, now);
        }
        assert_eq!(t.check(guesser, now), Ok(()), "ten failures are a burst");
        t.failed(guesser, now);
        assert_eq!(t.check(guesser, now), Err(Duration::from_secs(1)));
        let mut at = now;
        for expected in [2, 4, 8, 16] {
            at += t.check(guesser, at).unwrap_err();
            assert_eq!(t.check(guesser, at), Ok(()));
            t.failed(guesser, at);
            assert_eq!(t.check(guesser, at), Err(Duration::from_secs(expected)));
        }
        // Another address is not slowed at all.
        assert_eq!(t.check(ip("198.51.100.8"), at), Ok(()));
        // The same /64 is the same guesser.
        t.failed(ip("2001:db8::1"), at);
        assert_eq!(t.tracked(), 2);
        t.failed(ip("2001:db8::2"), at);
        assert_eq!(t.tracked(), 2);
    }

    #[test]
    fn the_wait_is_capped_and_failures_are_forgotten_with_time() {
        let policy = ThrottlePolicy {
            max_wait: Duration::from_secs(60),
            ..Default::default()
        };
        let t = AuthThrottle::new(policy);
        let (g, mut at) = (ip("198.51.100.7"), Instant::now());
        for _ in 0..40 {
            if let Err(wait) = t.check(g, at) {
                at += wait;
            }
            t.failed(g, at);
        }
        assert_eq!(t.check(g, at), Err(Duration::from_secs(60)));
        // A user who mistypes once a minute is never made to wait.
        let (user, mut at) = (ip("192.0.2.5"), Instant::now());
        for _ in 0..100 {
            assert_eq!(t.check(user, at), Ok(()));
            t.failed(user, at);
            at += Duration::from_secs(60);
        }
    }

    #[test]
    fn the_map_is_bounded_and_keeps_live_guessers() {
        let t = AuthThrottle::new(ThrottlePolicy {
            capacity: 4,
            ..Default::default()
        });
        let now = Instant::now();
        for i in 0..4 {
            for _ in 0..12 {
                t.failed(ip(&format!("198.51.100.{i}")), now);
            }
        }
        t.failed(ip("203.0.113.1"), now);
        assert_eq!(t.tracked(), 4);
        assert!(t.check(ip("198.51.100.0"), now).is_err(), "kept");
        // Once they are forgotten, newcomers are tracked again.
        let later = now + Duration::from_secs(3600);
        t.failed(ip("203.0.113.1"), later);
        assert_eq!(t.tracked(), 1);
    }
}
