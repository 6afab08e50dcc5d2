//! Scale to zero at the balancer: when a function's instances are removed
//! on every worker, and what its next call or a wake undoes.
//!
//! The rule is SlimFaas's (github.com/SlimPlanet/SlimFaas: a function idle
//! for its `TimeoutSecondBeforeSetReplicasMin` goes down to its
//! `ReplicasMin`; default 300 s here, the issue's), written as pure state
//! so that the live balancer (its `slim` module: a task that asks every
//! worker to remove the function's instances) and the discrete-event
//! simulator can run the same code. Time is an argument; nothing here
//! reads a clock.
//!
//! - A function is *idle* from the end of its last call (or from its wake,
//!   or from when it was first seen) while no call of it is in flight or
//!   queued.
//! - Idle for at least `idle_before_zero`: [`Decision::ScaleToZero`], once
//!   (then [`Decision::AtZero`] until a call or a wake comes), unless
//!   `min_instances` > 0: then its instances are kept
//!   ([`Decision::KeptByMinimum`]; the balancer never goes below the
//!   minimum, and does not trim down to it either: a worker's own
//!   keep-alive does that).
//! - A call that arrives after the scale to zero is a cold start: its
//!   function has no instance anywhere ([`ScaleToZero::call_arrived`]
//!   says so, for the balancer's log).
//!
//! Differences from SlimFaas: it scales Kubernetes deployments (replicas);
//! here instances live on HotFunctions-style workers, which keep them by
//! their own policies too (REST lifetime, keep-alive): scale to zero
//! removes them earlier, never later. The balancer counts the calls of its
//! SlimFaas routes (`/function/`, `/async-function/`): a function is
//! tracked from its first such call or wake.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::time::Time;

/// One function's settings for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Idle time before the instances are removed.
    pub idle_before_zero: Duration,
    /// Instances never removed by the rule (any > 0 keeps them all).
    pub min_instances: u32,
}

/// What the rule says of one function now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A call of it is in flight or queued.
    Busy,
    /// Idle, not yet for long enough: look again at this time.
    IdleUntil(Time),
    /// Idle for long enough, but its minimum keeps its instances.
    KeptByMinimum,
    /// Remove its instances on every worker now, then report
    /// [`ScaleToZero::scaled_to_zero`].
    ScaleToZero,
    /// Already at zero; nothing came since.
    AtZero,
}

impl Decision {
    /// A short name for status pages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::IdleUntil(_) => "idle",
            Self::KeptByMinimum => "kept_by_min_instances",
            Self::ScaleToZero => "scaling_to_zero",
            Self::AtZero => "at_zero",
        }
    }
}

/// What the balancer knows of one function's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// When it last became idle: its last call's end, its wake, or when it
    /// was first seen.
    pub idle_since: Time,
    /// Its instances were removed and nothing came since.
    pub at_zero: bool,
    /// Calls and wakes so far (a scale to zero decided before one of them
    /// is not recorded: [`ScaleToZero::scaled_to_zero`]).
    pub arrivals: u64,
    /// Instances the balancer asked for last: a wake's number, 0 at zero,
    /// at least 1 after a call (None: nothing asked yet).
    pub requested: Option<u32>,
}

/// The rule for one function: `busy` is its calls in flight and queued.
pub fn decide(activity: &Activity, busy: u64, rule: Rule, now: Time) -> Decision {
    if busy > 0 {
        return Decision::Busy;
    }
    if activity.at_zero {
        return Decision::AtZero;
    }
    let due = activity.idle_since.saturating_add(rule.idle_before_zero);
    if now < due {
        Decision::IdleUntil(due)
    } else if rule.min_instances > 0 {
        Decision::KeptByMinimum
    } else {
        Decision::ScaleToZero
    }
}

/// Every tracked function's [`Activity`], by name.
#[derive(Debug, Clone, Default)]
pub struct ScaleToZero {
    functions: BTreeMap<String, Activity>,
}

impl ScaleToZero {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, function: &str, now: Time) -> &mut Activity {
        if !self.functions.contains_key(function) {
            self.functions.insert(
                function.to_string(),
                Activity {
                    idle_since: now,
                    at_zero: false,
                    arrivals: 0,
                    requested: None,
                },
            );
        }
        self.functions
            .get_mut(function)
            .expect("inserted just above")
    }

    /// A call of `function` arrives at `now`. Returns true when the
    /// function was at zero (this call is a cold start).
    pub fn call_arrived(&mut self, function: &str, now: Time) -> bool {
        let a = self.entry(function, now);
        let was_at_zero = a.at_zero;
        a.at_zero = false;
        a.arrivals += 1;
        a.requested = Some(a.requested.unwrap_or(0).max(1));
        was_at_zero
    }

    /// A call of `function` ended at `now` (the idle time counts from the
    /// last end).
    pub fn call_ended(&mut self, function: &str, now: Time) {
        let a = self.entry(function, now);
        a.idle_since = a.idle_since.max(now);
    }

    /// `function` was woken at `now` with `instances` asked for: its idle
    /// time starts again.
    pub fn woken(&mut self, function: &str, instances: u32, now: Time) {
        let a = self.entry(function, now);
        a.at_zero = false;
        a.arrivals += 1;
        a.idle_since = a.idle_since.max(now);
        a.requested = Some(instances);
    }

    /// `function`'s instances were removed on every worker, after a
    /// [`Decision::ScaleToZero`] taken when its activity had `arrivals`.
    /// Returns false (and records nothing) when a call or wake came since.
    pub fn scaled_to_zero(&mut self, function: &str, arrivals: u64) -> bool {
        match self.functions.get_mut(function) {
            Some(a) if a.arrivals == arrivals => {
                a.at_zero = true;
                a.requested = Some(0);
                true
            }
            _ => false,
        }
    }

    /// `function`'s activity (None: never called nor woken).
    pub fn activity(&self, function: &str) -> Option<Activity> {
        self.functions.get(function).copied()
    }

    /// Every tracked function with its activity, by name.
    pub fn tracked(&self) -> impl Iterator<Item = (&str, &Activity)> {
        self.functions.iter().map(|(f, a)| (f.as_str(), a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(300);

    fn rule(min_instances: u32) -> Rule {
        Rule {
            idle_before_zero: IDLE,
            min_instances,
        }
    }

    fn s(secs: u64) -> Time {
        Time::from_secs(secs)
    }

    fn decide_now(t: &ScaleToZero, f: &str, busy: u64, min: u32, now: Time) -> Decision {
        decide(&t.activity(f).unwrap(), busy, rule(min), now)
    }

    /// A call at 10 s ending at 12 s: idle from 12 s, scaled to zero at
    /// 312 s (not at 311 s), once; the next call at 400 s is cold.
    #[test]
    fn idle_time_counts_from_the_last_end() {
        let mut t = ScaleToZero::new();
        assert!(!t.call_arrived("W1", s(10)));
        assert_eq!(decide_now(&t, "W1", 1, 0, s(11)), Decision::Busy);
        t.call_ended("W1", s(12));
        assert_eq!(
            decide_now(&t, "W1", 0, 0, s(311)),
            Decision::IdleUntil(s(312))
        );
        assert_eq!(decide_now(&t, "W1", 0, 0, s(312)), Decision::ScaleToZero);
        let arrivals = t.activity("W1").unwrap().arrivals;
        assert!(t.scaled_to_zero("W1", arrivals));
        assert_eq!(t.activity("W1").unwrap().requested, Some(0));
        assert_eq!(decide_now(&t, "W1", 0, 0, s(313)), Decision::AtZero);
        assert_eq!(decide_now(&t, "W1", 0, 0, s(9_999)), Decision::AtZero);
        // The next call is a cold start, and counts idle time anew.
        assert!(t.call_arrived("W1", s(400)));
        assert!(!t.call_arrived("W1", s(401)));
        t.call_ended("W1", s(402));
        t.call_ended("W1", s(405));
        assert_eq!(
            decide_now(&t, "W1", 0, 0, s(700)),
            Decision::IdleUntil(s(705))
        );
        assert_eq!(decide_now(&t, "W1", 0, 0, s(705)), Decision::ScaleToZero);
    }

    /// A call in flight or queued holds it, however long the idle time.
    #[test]
    fn calls_in_flight_or_queued_hold_it() {
        let mut t = ScaleToZero::new();
        let _ = t.call_arrived("W1", s(0));
        t.call_ended("W1", s(1));
        for busy in [1, 5] {
            assert_eq!(decide_now(&t, "W1", busy, 0, s(10_000)), Decision::Busy);
        }
        // An end earlier than a later one does not move the idle start
        // back (ends reported out of order).
        t.call_ended("W1", s(100));
        t.call_ended("W1", s(50));
        assert_eq!(
            decide_now(&t, "W1", 0, 0, s(300)),
            Decision::IdleUntil(s(400))
        );
    }

    /// min_instances > 0: never scaled to zero.
    #[test]
    fn the_minimum_keeps_instances() {
        let mut t = ScaleToZero::new();
        let _ = t.call_arrived("W2", s(0));
        t.call_ended("W2", s(2));
        assert_eq!(
            decide_now(&t, "W2", 0, 1, s(301)),
            Decision::IdleUntil(s(302))
        );
        assert_eq!(decide_now(&t, "W2", 0, 1, s(302)), Decision::KeptByMinimum);
        assert_eq!(
            decide_now(&t, "W2", 0, 3, s(99_999)),
            Decision::KeptByMinimum
        );
    }

    /// A call that came while the workers were removing the instances:
    /// the scale to zero is not recorded, and the idle time starts again
    /// at its end.
    #[test]
    fn a_call_during_the_removal_wins() {
        let mut t = ScaleToZero::new();
        let _ = t.call_arrived("W1", s(0));
        t.call_ended("W1", s(0));
        assert_eq!(decide_now(&t, "W1", 0, 0, s(300)), Decision::ScaleToZero);
        let seen = t.activity("W1").unwrap().arrivals;
        assert!(!t.call_arrived("W1", s(301)));
        assert!(!t.scaled_to_zero("W1", seen));
        assert_eq!(decide_now(&t, "W1", 1, 0, s(302)), Decision::Busy);
        t.call_ended("W1", s(303));
        assert_eq!(
            decide_now(&t, "W1", 0, 0, s(304)),
            Decision::IdleUntil(s(603))
        );
        // Unknown functions are never recorded at zero.
        assert!(!t.scaled_to_zero("nope", 0));
    }

    /// A wake restarts the idle time and records what it asked for.
    #[test]
    fn a_wake_restarts_the_idle_time() {
        let mut t = ScaleToZero::new();
        t.woken("W3", 2, s(50));
        let a = t.activity("W3").unwrap();
        assert_eq!(
            (a.idle_since, a.at_zero, a.requested),
            (s(50), false, Some(2))
        );
        assert_eq!(
            decide_now(&t, "W3", 0, 0, s(349)),
            Decision::IdleUntil(s(350))
        );
        assert_eq!(decide_now(&t, "W3", 0, 0, s(350)), Decision::ScaleToZero);
        assert!(t.scaled_to_zero("W3", a.arrivals));
        t.woken("W3", 1, s(400));
        assert_eq!(
            decide_now(&t, "W3", 0, 0, s(401)),
            Decision::IdleUntil(s(700))
        );
        // A call after a wake keeps the larger number asked for.
        t.woken("W4", 3, s(0));
        let _ = t.call_arrived("W4", s(1));
        assert_eq!(t.activity("W4").unwrap().requested, Some(3));
        assert_eq!(
            t.tracked().map(|(f, _)| f).collect::<Vec<_>>(),
            ["W3", "W4"]
        );
    }
}
