//! Request rate limits: a token bucket per key (an account's REST requests, a source address's
//! new SIP requests), sans-IO (time is passed in).
//!
//! Written here because the whole need is a dozen lines of arithmetic over a bounded map; a
//! crate such as `governor` would add its clock and dependency tree for it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The tokens there would be at `now`.
    fn refilled(&self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate.per_second).min(rate.burst)
    }

    /// Takes a token at `now`, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.tokens = self.refilled(rate, now);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate.per_second,
            ))
        }
    }
}

/// A bucket per key, at most `capacity` of them. A bucket that has refilled to its burst is the
/// same as none, so when the map is full those are forgotten (at most once a second: the sweep
/// costs a pass over the map). If every bucket is still draining — more keys sending at once
/// than the map holds, as in a flood from forged addresses — a new key is refused until room
/// comes back, while the keys already known keep their own rate.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Option<Rate>,
    capacity: usize,
    map: HashMap<K, Bucket>,
    swept: Option<Instant>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// `None`: no limit.
    pub fn new(rate: Option<Rate>, capacity: usize) -> Self {
        Self {
            rate: rate.filter(|r| r.per_second > 0.0 && r.burst >= 1.0),
            capacity: capacity.max(1),
            map: HashMap::new(),
            swept: None,
        }
    }

    /// Counts a request of `key` at `now`: `Err(retry_after)` when over the rate.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        if let Some(bucket) = self.map.get_mut(key) {
            return bucket.take(rate, now);
        }
        if self.map.len() >= self.capacity {
            const SWEEP_EVERY: Duration = Duration::from_secs(1);
            if self
                .swept
                .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
            {
                self.swept = Some(now);
                self.map.retain(|_, b| b.refilled(rate, now) < rate.burst);
            }
            if self.map.len() >= self.capacity {
                return Err(SWEEP_EVERY);
            }
        }
        let mut bucket = Bucket {
            tokens: rate.burst,
            at: now,
        };
        let taken = bucket.take(rate, now);
        self.map.insert(key.clone(), bucket);
        taken
    }

    /// Keys with a bucket.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Per-account REST limits, shared by the HTTP handlers. Accounts are configured, so the map
/// holds one bucket per account at most.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Mutex<Buckets<String>>,
}

impl RateLimiter {
    /// `None`: no limit.
    pub fn new(rate: Option<Rate>) -> Self {
        Self {
            buckets: Mutex::new(Buckets::new(rate, usize::MAX)),
        }
    }

    /// Counts a request of `key` at `now`: `Err(retry_after)` when over the rate.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.buckets
            .lock()
            .expect("not poisoned")
            .check(&key.to_owned(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_key() {
        let limiter = RateLimiter::new(Some(Rate {
            per_second: 10.0,
            burst: 3.0,
        }));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("AC1", t0), Ok(()));
        }
        let wait = limiter.check("AC1", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(99) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another account has its own bucket.
        assert_eq!(limiter.check("AC2", t0), Ok(()));
        // A tenth of a second later one more request fits, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.check("AC1", t1), Ok(()));
        assert!(limiter.check("AC1", t1).is_err());
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.check("AC1", t2), Ok(()));
        }
        assert!(limiter.check("AC1", t2).is_err());
    }

    #[test]
    fn no_rate_means_no_limit() {
        let limiter = RateLimiter::new(None);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limiter.check("AC1", t0).is_ok()));
        let zero = RateLimiter::new(Some(Rate {
            per_second: 0.0,
            burst: 0.0,
        }));
        assert!(zero.check("AC1", t0).is_ok());
    }

    /// Sources beyond the map's capacity: refilled buckets are forgotten first, and the map
    /// never grows past its bound whatever the number of sources.
    #[test]
    fn the_map_of_sources_is_bounded() {
        let rate = Some(Rate {
            per_second: 1.0,
            burst: 2.0,
        });
        let mut buckets = Buckets::new(rate, 4);
        let t0 = Instant::now();
        for ip in 0..4u32 {
            assert!(buckets.check(&ip, t0).is_ok());
        }
        // Source 0 spends its burst; the others refill within a second.
        assert!(buckets.check(&0, t0).is_ok());
        assert!(buckets.check(&0, t0).is_err());
        let t1 = t0 + Duration::from_millis(1500);
        assert!(buckets.check(&9, t1).is_ok());
        assert_eq!(buckets.len(), 2, "the refilled three were forgotten");
        assert!(buckets.check(&0, t1).is_ok(), "1.5 tokens back");
        assert!(buckets.check(&0, t1).is_err(), "and only one of them");
        // A flood of distinct sources all draining: the map stays at its bound, new sources
        // are refused, and a known one keeps its own rate.
        let refused = (100..10_000u32)
            .filter(|ip| buckets.check(ip, t1).is_err())
            .count();
        assert_eq!((buckets.len(), refused), (4, 10_000 - 100 - 2));
        let t2 = t1 + Duration::from_millis(1000);
        assert!(buckets.check(&0, t2).is_ok());
    }
}
