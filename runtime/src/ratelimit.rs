//! A token bucket that paces fetching: a batch loop waits until the bucket is not in debt,
//! fetches, then takes as many tokens as messages it got (the bucket may go negative, and
//! the next fetch waits until the debt is paid). Nothing is dropped: excess waits on the
//! server, in the consumer. The long-run rate is exactly the configured rate; a burst of at
//! most `rate / 20` messages (50 ms worth) plus one batch per loop can run ahead.
//!
//! One limiter is shared by every pipeline of a tenant in one worker; the fleet worker
//! lowers its rate to the tenant's limit divided by the live workers running that tenant.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Longest single sleep while waiting, so that a raised rate is noticed quickly.
const MAX_SLEEP: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn burst(&self) -> f64 {
        (self.rate / 20.0).max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst());
    }
}

/// A shared ingest limiter, in messages per second.
#[derive(Debug)]
pub struct IngestLimiter {
    bucket: Mutex<Bucket>,
}

impl IngestLimiter {
    /// A limiter of `rate` messages per second (at least 0.001), starting with a full burst.
    pub fn new(rate: f64) -> Self {
        let rate = rate.max(0.001);
        let mut bucket = Bucket {
            rate,
            tokens: 0.0,
            last: Instant::now(),
        };
        bucket.tokens = bucket.burst();
        IngestLimiter {
            bucket: Mutex::new(bucket),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current rate, in messages per second.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    /// Changes the rate (e.g. when another worker starts sharing the tenant's limit).
    pub fn set_rate(&self, rate: f64) {
        let mut bucket = self.lock();
        bucket.refill(Instant::now());
        bucket.rate = rate.max(0.001);
    }

    /// How long to wait before the next fetch may start (zero when it may start now).
    pub fn delay(&self) -> Duration {
        let mut bucket = self.lock();
        bucket.refill(Instant::now());
        if bucket.tokens > 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((-bucket.tokens + 1e-3) / bucket.rate)
        }
    }

    /// Waits until a fetch may start.
    pub async fn ready(&self) {
        loop {
            let delay = self.delay();
            if delay.is_zero() {
                return;
            }
            tokio::time::sleep(delay.min(MAX_SLEEP)).await;
        }
    }

    /// Takes `messages` tokens (the messages just fetched).
    pub fn take(&self, messages: usize) {
        let mut bucket = self.lock();
        bucket.refill(Instant::now());
        bucket.tokens -= messages as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fetching_is_paced_to_the_rate() {
        // 1 000 msg/s, burst 50: taking 300 in batches of 30 needs at least 0.25 s.
        let limiter = IngestLimiter::new(1_000.0);
        let started = Instant::now();
        let mut taken = 0usize;
        while taken < 300 {
            limiter.ready().await;
            limiter.take(30);
            taken += 30;
        }
        let secs = started.elapsed().as_secs_f64();
        assert!(secs >= 0.2, "300 messages in {secs} s at 1 000/s");
        assert!(secs < 3.0, "{secs} s");
    }

    #[test]
    fn a_lower_rate_slows_fetching_down() {
        let limiter = IngestLimiter::new(1_000.0);
        assert_eq!(limiter.delay(), Duration::ZERO);
        limiter.take(1_000);
        limiter.set_rate(100.0);
        assert!(limiter.delay() > Duration::from_secs(9));
        assert_eq!(limiter.rate(), 100.0);
    }
}
