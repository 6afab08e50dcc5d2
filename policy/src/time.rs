//! The one time type of every policy, scheduler and of the discrete-event
//! simulator: [`Time`], an instant in whole microseconds since the run's
//! epoch (the start of a live balancer or worker, or virtual time zero of a
//! simulation). Spans between instants are [`std::time::Duration`]s.
//!
//! Policies never read a clock: every method that needs the time takes a
//! `Time` argument (linkerd's `get_at(now)`), so that the same code runs on
//! a wall clock (the live drivers convert `Instant`s with
//! [`Time::from_duration`]) and on a virtual one (the simulator's event
//! queue is keyed by `Time`).
//!
//! Microseconds in a `u64` cover 584,000 years, are `Copy` and compare as
//! integers (cheaper than `Duration`'s two fields on the simulator's hot
//! path). Arithmetic saturates: an instant never wraps around.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::Duration;

/// An instant: whole microseconds since the run's epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(0);
    /// The latest representable instant ("never").
    pub const MAX: Time = Time(u64::MAX);

    pub const fn from_micros(us: u64) -> Self {
        Self(us)
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(ms.saturating_mul(1_000))
    }

    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1_000_000))
    }

    /// Seconds as a float, rounded to the nearest microsecond (negative
    /// and NaN give the epoch, too large gives [`Time::MAX`]).
    pub fn from_secs_f64(s: f64) -> Self {
        Self::from_micros_f64(s * 1e6)
    }

    /// Microseconds as a float, rounded to the nearest microsecond
    /// (negative and NaN give the epoch, too large gives [`Time::MAX`]).
    pub fn from_micros_f64(us: f64) -> Self {
        // `as` saturates float-to-int conversions and maps NaN to 0.
        Self(us.round().max(0.0) as u64)
    }

    /// The instant `since_epoch` after the epoch, truncated to whole
    /// microseconds (a live driver's `instant - epoch`).
    pub fn from_duration(since_epoch: Duration) -> Self {
        Self(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX))
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the epoch (rounded down).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// The span since the epoch.
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// `self + d`, at most [`Time::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(us))
    }

    /// `self + us` microseconds, at most [`Time::MAX`].
    pub const fn add_micros(self, us: u64) -> Self {
        Self(self.0.saturating_add(us))
    }

    /// The span from `earlier` to `self`; zero when `earlier` is later.
    pub const fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// Microseconds from `earlier` to `self`; zero when `earlier` is later.
    pub const fn micros_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl fmt::Display for Time {
    /// Seconds since the epoch with microsecond precision, e.g. `12.000345s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_saturate() {
        assert_eq!(Time::from_millis(1500), Time::from_micros(1_500_000));
        assert_eq!(Time::from_secs(2).as_duration(), Duration::from_secs(2));
        assert_eq!(Time::from_secs_f64(0.0000016), Time::from_micros(2));
        assert_eq!(Time::from_secs_f64(-1.0), Time::ZERO);
        assert_eq!(Time::from_secs_f64(f64::NAN), Time::ZERO);
        assert_eq!(Time::from_secs_f64(f64::INFINITY), Time::MAX);
        assert_eq!(
            Time::from_duration(Duration::from_nanos(1_999)),
            Time::from_micros(1)
        );
        assert_eq!(Time::from_duration(Duration::MAX), Time::MAX);
        assert_eq!(Time::from_micros(1_234_567).as_millis(), 1_234);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_secs(10);
        assert_eq!(t + Duration::from_secs(5), Time::from_secs(15));
        assert_eq!(Time::MAX + Duration::from_secs(1), Time::MAX);
        assert_eq!(Time::MAX.add_micros(1), Time::MAX);
        assert_eq!(
            t.saturating_since(Time::from_secs(4)),
            Duration::from_secs(6)
        );
        assert_eq!(Time::from_secs(4).saturating_since(t), Duration::ZERO);
        assert_eq!(t.micros_since(Time::from_secs(11)), 0);
        let mut u = t;
        u += Duration::from_millis(1);
        assert_eq!(u.to_string(), "10.001000s");
    }
}
