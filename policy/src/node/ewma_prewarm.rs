//! EWMA pre-warming, after our seed Glambdar.
//!
//! Per function, time is cut in intervals of 30 s (`[k·30 s, (k+1)·30 s)`
//! from the run's epoch). At the end of each interval, with `n` the calls
//! that arrived in it:
//!
//! ```text
//! first interval:  estimate = n
//! then:            s = |n − estimate| / (estimate + 1)
//!                  α = clamp(0.2 + 0.8·s, 0.05, 0.95)
//!                  estimate = α·n + (1 − α)·estimate
//! warm instances = min(10, max(1, ⌊estimate / 5⌋))
//! ```
//!
//! The smoothing adapts: a count close to the estimate moves it little
//! (α near 0.2), a surprise moves it most of the way (α up to 0.95). The
//! node model keeps that many instances of the function warm: it pre-warms
//! the missing ones at the interval's end, and idle instances above the
//! target expire after the fixed keep-alive, those within it do not.
//!
//! The first interval is the one in which the function's first call
//! arrived; before it ends there is no estimate and nothing is pre-warmed.
//! Intervals with no call count as `n = 0` (so the estimate decays, down
//! to the floor of one warm instance).
//!
//! Parameters ([`EwmaParams`]): interval 30 s, calls per warm instance 5,
//! at most 10 warm instances, at least 1.

use std::time::Duration;

use crate::time::Time;

/// The EWMA pre-warmer's parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EwmaParams {
    #[serde(rename = "interval_s", serialize_with = "secs")]
    pub interval: Duration,
    /// Calls per interval that one warm instance stands for.
    pub calls_per_instance: f64,
    pub min_instances: usize,
    pub max_instances: usize,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for EwmaParams {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            calls_per_instance: 5.0,
            min_instances: 1,
            max_instances: 10,
        }
    }
}

/// The smoothing step: the next estimate after an interval of `n` calls.
pub fn next_estimate(estimate: Option<f64>, n: f64) -> f64 {
    match estimate {
        None => n,
        Some(e) => {
            let s = (n - e).abs() / (e + 1.0);
            let alpha = (0.2 + 0.8 * s).clamp(0.05, 0.95);
            alpha * n + (1.0 - alpha) * e
        }
    }
}

/// One function's call-rate estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct EwmaPrewarm {
    params: EwmaParams,
    estimate: Option<f64>,
    /// The interval being counted, and its calls so far.
    interval: u64,
    count: u64,
}

impl EwmaPrewarm {
    /// Starts counting in the interval holding `now`.
    pub fn new(params: EwmaParams, now: Time) -> Self {
        let mut e = Self {
            params,
            estimate: None,
            interval: 0,
            count: 0,
        };
        e.interval = e.index(now);
        e
    }

    fn index(&self, t: Time) -> u64 {
        t.as_micros() / (self.params.interval.as_micros() as u64).max(1)
    }

    /// Closes every interval that ended by `now` (updating the estimate).
    pub fn advance(&mut self, now: Time) {
        let current = self.index(now);
        while self.interval < current {
            self.estimate = Some(next_estimate(self.estimate, self.count as f64));
            self.count = 0;
            self.interval += 1;
            // Past many empty intervals the estimate is settled at its
            // floor; skip ahead rather than loop (only n = 0 remains).
            if self.estimate.is_some_and(|e| e < 1e-9) {
                self.interval = current;
            }
        }
    }

    /// A call arrives at `now`.
    pub fn call(&mut self, now: Time) {
        self.advance(now);
        self.count += 1;
    }

    pub fn estimate(&self) -> Option<f64> {
        self.estimate
    }

    /// When the current interval ends (the next update).
    pub fn next_update(&self) -> Time {
        Time::from_micros((self.interval + 1) * self.params.interval.as_micros() as u64)
    }

    /// How many instances to keep warm: 0 before the first estimate.
    pub fn target(&self) -> usize {
        match self.estimate {
            None => 0,
            Some(e) => {
                let p = &self.params;
                let n = (e / p.calls_per_instance).floor().max(0.0) as usize;
                n.max(p.min_instances).min(p.max_instances)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Time {
        Time::from_secs(x)
    }

    /// Hand-made count series 10, 10, 20, 0, 0, 100 (by hand):
    /// - 10: first estimate 10 → ⌊10/5⌋ = 2 warm;
    /// - 10: s = 0, α = 0.2 → 10 → 2;
    /// - 20: s = 10/11, α = 0.2 + 0.8·10/11 = 0.92727 → 0.92727·20 +
    ///   0.07273·10 = 19.2727 → 3;
    /// - 0: s = 19.27/20.27 = 0.9507, α = 0.9606 clamped to 0.95 →
    ///   0.05·19.2727 = 0.96364 → max(1, 0) = 1;
    /// - 0: s = 0.96364/1.96364 = 0.49074, α = 0.59259 → 0.40741·0.96364
    ///   = 0.39259 → 1;
    /// - 100: s = 99.61/1.39 → α = 0.95 → 95.0196 → 19, capped at 10.
    #[test]
    fn the_sequence_of_a_hand_made_count_series() {
        let counts = [10u64, 10, 20, 0, 0, 100];
        let expected = [
            (10.0, 2),
            (10.0, 2),
            (19.272_727, 3),
            (0.963_636, 1),
            (0.392_593, 1),
            (95.019_630, 10),
        ];
        let mut e = EwmaPrewarm::new(EwmaParams::default(), s(0));
        assert_eq!(e.target(), 0, "no estimate before the first interval ends");
        for (k, (&n, &(est, warm))) in counts.iter().zip(&expected).enumerate() {
            let start = 30 * k as u64;
            for i in 0..n {
                // Spread over the interval, all before its end.
                e.call(Time::from_micros(start * 1_000_000 + i * 250_000));
            }
            assert_eq!(e.next_update(), s(start + 30));
            e.advance(s(start + 30));
            let got = e.estimate().unwrap();
            assert!((got - est).abs() < 1e-5, "interval {k}: {got} != {est}");
            assert_eq!(e.target(), warm, "interval {k}");
        }
    }

    #[test]
    fn the_first_interval_is_the_first_calls_and_gaps_count_as_zero() {
        let mut e = EwmaPrewarm::new(EwmaParams::default(), s(45));
        e.call(s(45));
        e.call(s(50));
        e.advance(s(59));
        assert_eq!(e.estimate(), None);
        e.advance(s(60));
        assert_eq!(e.estimate(), Some(2.0));
        // Two empty intervals, then one with 2 calls, noticed late.
        e.call(s(125));
        e.call(s(126));
        e.advance(s(150));
        let expect = next_estimate(
            Some(next_estimate(Some(next_estimate(Some(2.0), 0.0)), 0.0)),
            2.0,
        );
        assert!((e.estimate().unwrap() - expect).abs() < 1e-12);
        assert_eq!(e.target(), 1, "never below one warm instance");
    }

    #[test]
    fn a_long_silence_settles_without_looping_per_interval() {
        let mut e = EwmaPrewarm::new(EwmaParams::default(), s(0));
        e.call(s(1));
        e.advance(Time::from_secs(3600 * 24 * 365 * 100));
        assert!(e.estimate().unwrap() < 1e-9);
        assert_eq!(e.target(), 1);
    }
}
