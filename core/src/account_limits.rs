//! How many calls an account may have at once, and place a second: media ports, SIP
//! transactions and the carrier's capacity are shared by every tenant, and one account ringing
//! forty calls once took every port, so another account's call got 503. The operator sets
//! defaults (`[limits]`) and per-account values (`max_calls`/`calls_per_second` under
//! `[[accounts]]`, or the admin API, which persists them). Sans-IO: time is passed in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Calls up or ringing at once (0: none may be placed).
    pub max_calls: u32,
    /// Calls placed a second, in bursts of as many (at least one).
    pub calls_per_second: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_calls: 100,
            calls_per_second: 10.0,
        }
    }
}

/// Why a call was not placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// The account has this many calls already.
    Calls(u32),
    /// Over its calls a second: a call may be placed after this wait.
    Rate(Duration),
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Calls(n) => write!(f, "the account has {n} calls, its limit"),
            Self::Rate(_) => f.write_str("the account places calls faster than its limit"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Each account's limits and its recent placements.
#[derive(Debug)]
pub struct AccountLimits {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// From the configuration file (replaced at a reload).
    defaults: Limits,
    configured: HashMap<String, Limits>,
    /// Set through the admin API: above the configured values.
    overrides: HashMap<String, Limits>,
    /// Buckets of accounts that placed a call lately (bounded by the number of accounts).
    buckets: HashMap<String, Bucket>,
}

impl AccountLimits {
    /// `configured`: per-account values from the configuration file.
    pub fn new(defaults: Limits, configured: HashMap<String, Limits>) -> Self {
        Self {
            state: Mutex::new(State {
                defaults,
                configured,
                ..State::default()
            }),
        }
    }

    /// The configuration was read again: its defaults and per-account values apply from now
    /// on; what the admin API set stays above them.
    pub fn reconfigure(&self, defaults: Limits, configured: HashMap<String, Limits>) {
        let mut state = self.state.lock().expect("not poisoned");
        state.defaults = defaults;
        state.configured = configured;
    }

    /// The limits in force for `account`.
    pub fn of(&self, account: &str) -> Limits {
        let state = self.state.lock().expect("not poisoned");
        state
            .overrides
            .get(account)
            .or_else(|| state.configured.get(account))
            .copied()
            .unwrap_or(state.defaults)
    }

    /// Sets `account`'s limits (the admin API; the caller has stored them).
    pub fn set(&self, account: &str, limits: Limits) {
        let mut state = self.state.lock().expect("not poisoned");
        state.overrides.insert(account.to_owned(), limits);
    }

    /// Whether `account`, with `live` calls now, may place one more at `now`; takes a token
    /// from its bucket when it may.
    pub fn admit(&self, account: &str, live: usize, now: Instant) -> Result<(), Exceeded> {
        let limits = self.of(account);
        if live >= limits.max_calls as usize {
            return Err(Exceeded::Calls(limits.max_calls));
        }
        let rate = limits.calls_per_second.max(0.001);
        let burst = rate.max(1.0);
        let mut state = self.state.lock().expect("not poisoned");
        let bucket = state.buckets.entry(account.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Exceeded::Rate(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_calls_and_the_rate_are_each_accounts_own() {
        let configured = HashMap::from([(
            "ACbig".to_owned(),
            Limits {
                max_calls: 3,
                calls_per_second: 2.0,
            },
        )]);
        let limits = AccountLimits::new(
            Limits {
                max_calls: 1,
                calls_per_second: 1.0,
            },
            configured,
        );
        let now = Instant::now();
        assert_eq!(limits.admit("ACbig", 3, now), Err(Exceeded::Calls(3)));
        assert_eq!(limits.admit("ACbig", 0, now), Ok(()));
        assert_eq!(limits.admit("ACbig", 1, now), Ok(()));
        assert_eq!(
            limits.admit("ACbig", 2, now),
            Err(Exceeded::Rate(Duration::from_millis(500)))
        );
        assert_eq!(
            limits.admit("ACbig", 2, now + Duration::from_millis(500)),
            Ok(())
        );
        // Another account has its own (default) limits and bucket.
        assert_eq!(limits.admit("ACsmall", 0, now), Ok(()));
        assert_eq!(limits.admit("ACsmall", 1, now), Err(Exceeded::Calls(1)));
        // The admin API raises one account's.
        limits.set(
            "ACsmall",
            Limits {
                max_calls: 5,
                calls_per_second: 1.0,
            },
        );
        assert_eq!(limits.of("ACsmall").max_calls, 5);
        assert!(matches!(
            limits.admit("ACsmall", 1, now),
            Err(Exceeded::Rate(_))
        ));
        assert_eq!(
            limits.admit("ACsmall", 1, now + Duration::from_secs(1)),
            Ok(())
        );
    }
}
