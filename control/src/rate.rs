//! Request rate limits: a token bucket per key (an account), sans-IO (time is passed in).
//!
//! Written here because the whole need is a dozen lines of arithmetic over a map the caller
//! already bounds (one bucket per configured account); a crate such as `governor` would add
//! its clock and dependency tree for it.

use std::collections::HashMap;
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
    /// Takes a token at `now`, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
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

/// One bucket per key. Keys must come from a bounded set (authenticated accounts), as the map
/// keeps one entry per key seen.
#[derive(Debug)]
pub struct RateLimiter {
    rate: Option<Rate>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `None`: no limit.
    pub fn new(rate: Option<Rate>) -> Self {
        let rate = rate.filter(|r| r.per_second > 0.0 && r.burst >= 1.0);
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `key` at `now`: `Err(retry_after)` when over the rate.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().expect("not poisoned");
        let bucket = match buckets.get_mut(key) {
            Some(b) => b,
            None => buckets.entry(key.to_owned()).or_insert(Bucket {
                tokens: rate.burst,
                at: now,
            }),
        };
        bucket.take(rate, now)
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
}
