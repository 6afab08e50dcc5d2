//! Per-function rate limits: a token bucket, as Glambdar's
//! (`golang.org/x/time/rate`'s limiter at `r` per second with a burst of
//! `max(1, r/10)`). Pure: the time is an argument.
//!
//! A rate of 0 means unlimited. The bucket starts full.

use std::time::{Duration, Instant};

/// The most calls per second a limit may say.
pub const MAX_RATE: f64 = 1_000_000.0;

/// A token bucket at `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket at `rate` per second (0: unlimited), burst
    /// `max(1, rate/10)`.
    pub fn new(rate: f64) -> Self {
        let burst = (rate / 10.0).max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// The rate, calls per second (0 = unlimited).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The burst.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Takes one token at `now` if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token, at `now` (zero when one is there).
    pub fn wait(&self, now: Instant) -> Duration {
        if self.rate <= 0.0 || self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        let elapsed = self
            .last
            .map(|l| now.saturating_duration_since(l).as_secs_f64())
            .unwrap_or(0.0);
        let missing = (1.0 - self.tokens - elapsed * self.rate).max(0.0);
        Duration::from_secs_f64(missing / self.rate)
    }
}

/// Whether `r` is a usable rate (finite, 0 to [`MAX_RATE`]).
pub fn valid_rate(r: f64) -> bool {
    r.is_finite() && (0.0..=MAX_RATE).contains(&r)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a start time for the buckets
mod tests {
    use super::*;

    #[test]
    fn zero_is_unlimited() {
        let mut b = TokenBucket::new(0.0);
        let t = Instant::now();
        assert!((0..10_000).all(|_| b.try_take(t)));
    }

    #[test]
    fn the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0);
        assert_eq!(b.burst(), 10.0);
        let taken = (0..50).filter(|_| b.try_take(t0)).count();
        assert_eq!(taken, 10);
        assert!(b.wait(t0) > Duration::ZERO);
        // 100 ms later: 10 more tokens, never more than the burst.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!((0..50).filter(|_| b.try_take(t1)).count(), 10);
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..50).filter(|_| b.try_take(t2)).count(), 10);
    }

    #[test]
    fn a_slow_rate_has_a_burst_of_one() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(500)));
        assert!(!valid_rate(-1.0) && !valid_rate(f64::NAN) && valid_rate(0.0));
    }
}
