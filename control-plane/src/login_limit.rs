//! Login rate limiting, on three keys. Per (email, source address): a sliding window, refused
//! with 429 once the limit is reached until the oldest failure leaves it. Per account across
//! addresses and per address across accounts: a few free failures, then an exponential backoff
//! (1 s, 2 s, 4 s, … up to a cap) after the latest failure — never a hard lock, so an attacker
//! can slow a victim's logins down but not lock the account for good. In memory: a restart
//! forgets, which is acceptable for a limiter.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// How the limiter is tuned.
#[derive(Clone, Debug)]
pub struct LoginLimits {
    /// Failures allowed per (email, address) within `window`.
    pub pair_max_failures: usize,
    /// The window of the per-(email, address) limit.
    pub window: Duration,
    /// Failures per account (from any address) before the backoff starts.
    pub account_free: usize,
    /// Failures per address (on any account) before the backoff starts.
    pub address_free: usize,
    /// The first backoff step; each further failure doubles it.
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_cap: Duration,
    /// How long per-account and per-address failures are remembered.
    pub backoff_window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            pair_max_failures: 5,
            window: Duration::from_secs(60),
            account_free: 10,
            address_free: 20,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            backoff_window: Duration::from_secs(15 * 60),
        }
    }
}

/// Failure times per key, bounded in memory.
#[derive(Debug, Default)]
struct Failures(Mutex<HashMap<String, VecDeque<Instant>>>);

impl Failures {
    /// Runs `f` on the key's failures younger than `window`.
    fn with<T>(
        &self,
        key: &str,
        window: Duration,
        f: impl FnOnce(&mut VecDeque<Instant>, Instant) -> T,
    ) -> T {
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Bound memory: forget keys whose failures all left the window.
        if map.len() > 10_000 {
            map.retain(|_, l| l.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let list = map.entry(key.to_string()).or_default();
        while list
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            list.pop_front();
        }
        // No key keeps more failures than any limit needs.
        while list.len() > 64 {
            list.pop_front();
        }
        f(list, now)
    }

    fn remove(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Counts failed logins.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    pairs: Failures,
    accounts: Failures,
    addresses: Failures,
}

fn limited(wait: Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

impl LoginLimiter {
    /// A limiter with these limits.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            pairs: Failures::default(),
            accounts: Failures::default(),
            addresses: Failures::default(),
        }
    }

    fn backoff(&self, failures: &Failures, key: &str, free: usize) -> Result<(), ApiError> {
        let l = &self.limits;
        failures.with(key, l.backoff_window, |list, now| {
            if list.len() < free {
                return Ok(());
            }
            let steps = (list.len() - free).min(30) as u32;
            let wait = l.backoff_base.saturating_mul(1 << steps).min(l.backoff_cap);
            let last = list.back().copied().unwrap_or(now);
            let since = now.duration_since(last);
            if since < wait {
                Err(limited(wait - since))
            } else {
                Ok(())
            }
        })
    }

    /// Refuses when `email` from `address` may not try now (checked before any password work).
    pub fn check(&self, email: &str, address: &str) -> Result<(), ApiError> {
        let l = &self.limits;
        self.pairs
            .with(&format!("{email}|{address}"), l.window, |list, now| {
                if list.len() >= l.pair_max_failures {
                    let oldest = list.front().copied().unwrap_or(now);
                    return Err(limited(l.window.saturating_sub(now.duration_since(oldest))));
                }
                Ok(())
            })?;
        self.backoff(&self.accounts, email, l.account_free)?;
        self.backoff(&self.addresses, address, l.address_free)
    }

    /// Records a failure of `email` from `address`.
    pub fn record_failure(&self, email: &str, address: &str) {
        let l = &self.limits;
        let push = |list: &mut VecDeque<Instant>, now| list.push_back(now);
        self.pairs
            .with(&format!("{email}|{address}"), l.window, push);
        self.accounts.with(email, l.backoff_window, push);
        self.addresses.with(address, l.backoff_window, push);
    }

    /// Forgets the failures of `email` (after a successful login). The address keeps its
    /// count: logging into one's own account must not reset a spray from that address.
    pub fn clear(&self, email: &str, address: &str) {
        self.pairs.remove(&format!("{email}|{address}"));
        self.accounts.remove(email);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            pair_max_failures: 2,
            window: Duration::from_secs(60),
            account_free: 3,
            address_free: 4,
            backoff_base: Duration::from_millis(40),
            backoff_cap: Duration::from_millis(100),
            backoff_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn refuses_after_the_limit_and_per_key() {
        let l = LoginLimiter::new(limits());
        l.record_failure("a", "x");
        assert!(l.check("a", "x").is_ok());
        l.record_failure("a", "x");
        assert!(matches!(
            l.check("a", "x"),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(l.check("a", "y").is_ok());
        assert!(l.check("b", "x").is_ok());
        l.clear("a", "x");
        assert!(l.check("a", "x").is_ok());
    }

    #[test]
    fn failures_expire() {
        let l = LoginLimiter::new(LoginLimits {
            pair_max_failures: 1,
            window: Duration::from_millis(20),
            ..limits()
        });
        l.record_failure("a", "x");
        assert!(l.check("a", "x").is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(l.check("a", "x").is_ok());
    }

    #[test]
    fn accounts_back_off_across_addresses_but_never_lock() {
        let l = LoginLimiter::new(limits());
        for addr in ["1", "2", "3"] {
            assert!(l.check("a", addr).is_ok());
            l.record_failure("a", addr);
        }
        // A fourth address is slowed down, not locked: after the backoff it may try.
        assert!(l.check("a", "4").is_err());
        std::thread::sleep(Duration::from_millis(50));
        assert!(l.check("a", "4").is_ok());
        l.record_failure("a", "4");
        assert!(l.check("a", "5").is_err());
        // The cap bounds the wait however many failures came before.
        for _ in 0..20 {
            l.record_failure("a", "6");
        }
        std::thread::sleep(Duration::from_millis(110));
        assert!(l.check("a", "7").is_ok());
    }

    #[test]
    fn addresses_back_off_across_accounts() {
        let l = LoginLimiter::new(limits());
        for email in ["a", "b", "c", "d"] {
            assert!(l.check(email, "x").is_ok());
            l.record_failure(email, "x");
        }
        assert!(l.check("e", "x").is_err());
        assert!(l.check("e", "y").is_ok());
        // Logging into one's own account does not reset the address.
        l.clear("d", "x");
        assert!(l.check("e", "x").is_err());
    }
}
