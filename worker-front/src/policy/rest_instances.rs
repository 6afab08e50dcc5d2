//! REST-mode instances: one long-lived instance per function, shared by
//! concurrent calls, removed after an idle lifetime.
//!
//! From HotFunctions (Prev/HotFunctions, `worker_front/runner.go`,
//! `singleton_container_manager.go`; the idea of sharing one sandbox among
//! calls of the same application is the paper's "two-level isolation"):
//! with `USING_REST_MODE`, a call uses the function's running instance if
//! there is one (`UsingExistingRestContainer`), otherwise exactly one caller
//! starts it while concurrent callers wait for that start. An instance idle
//! (no call in flight) for longer than `REST_CONTAINER_LIFE_TIME` (default
//! 10 s) expires. The original only checked expiry after the next call; here
//! [`RestInstances::expire`] is meant to be driven by a timer (the live
//! worker) or by the simulator's clock, and [`RestInstances::next_expiry`]
//! says when to look next.
//!
//! Time is an argument (`Duration` since the caller's epoch).

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Starting,
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Instance {
    state: State,
    in_flight: u32,
    idle_since: Duration,
}

/// What a call must do to get its REST-mode instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestAcquire {
    /// A ready instance exists: invoke it (`UsingExistingRestContainer`).
    Existing,
    /// Another call is starting the instance: wait for that start.
    WaitForStart,
    /// Start the instance, then report [`RestInstances::started`] or
    /// [`RestInstances::start_failed`].
    Start,
}

/// REST-mode instance state for every function.
#[derive(Debug, Clone)]
pub struct RestInstances {
    lifetime: Duration,
    instances: BTreeMap<String, Instance>,
}

impl RestInstances {
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            instances: BTreeMap::new(),
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Changes the idle lifetime (applies to existing instances too).
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }

    /// A call of `function` arrives at `now`; it counts as in flight until
    /// [`RestInstances::call_finished`].
    pub fn call_started(&mut self, function: &str, now: Duration) -> RestAcquire {
        match self.instances.get_mut(function) {
            Some(i) => {
                i.in_flight += 1;
                i.idle_since = i.idle_since.max(now);
                match i.state {
                    State::Ready => RestAcquire::Existing,
                    State::Starting => RestAcquire::WaitForStart,
                }
            }
            None => {
                self.instances.insert(
                    function.to_string(),
                    Instance {
                        state: State::Starting,
                        in_flight: 1,
                        idle_since: now,
                    },
                );
                RestAcquire::Start
            }
        }
    }

    /// The instance of `function` is up.
    pub fn started(&mut self, function: &str, now: Duration) {
        if let Some(i) = self.instances.get_mut(function) {
            i.state = State::Ready;
            i.idle_since = i.idle_since.max(now);
        }
    }

    /// The calling start failed, and that call ends (do not also report
    /// [`RestInstances::call_finished`] for it). If other calls are waiting
    /// for the start, the instance stays `Starting` and one of them starts
    /// it again; otherwise it is forgotten.
    pub fn start_failed(&mut self, function: &str) {
        if let Some(i) = self.instances.get_mut(function) {
            i.in_flight = i.in_flight.saturating_sub(1);
            if i.in_flight == 0 {
                self.instances.remove(function);
            } else {
                i.state = State::Starting;
            }
        }
    }

    /// A call of `function` ended at `now` (successfully or not).
    pub fn call_finished(&mut self, function: &str, now: Duration) {
        if let Some(i) = self.instances.get_mut(function) {
            i.in_flight = i.in_flight.saturating_sub(1);
            i.idle_since = i.idle_since.max(now);
        }
    }

    /// Removes and returns every ready instance idle for at least the
    /// lifetime at `now`; the caller stops them.
    pub fn expire(&mut self, now: Duration) -> Vec<String> {
        let lifetime = self.lifetime;
        let expired: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, i)| {
                i.state == State::Ready
                    && i.in_flight == 0
                    && now.saturating_sub(i.idle_since) >= lifetime
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in &expired {
            self.instances.remove(n);
        }
        expired
    }

    /// The earliest time an instance could expire (if no call comes).
    pub fn next_expiry(&self) -> Option<Duration> {
        self.instances
            .values()
            .filter(|i| i.state == State::Ready && i.in_flight == 0)
            .map(|i| i.idle_since + self.lifetime)
            .min()
    }

    /// Forgets one instance (it died); returns whether it was known.
    pub fn remove(&mut self, function: &str) -> bool {
        self.instances.remove(function).is_some()
    }

    /// Forgets every instance (`/clear`); the caller stops them.
    pub fn clear(&mut self) -> Vec<String> {
        std::mem::take(&mut self.instances).into_keys().collect()
    }

    /// Whether `function` has a ready instance.
    pub fn is_ready(&self, function: &str) -> bool {
        self.instances
            .get(function)
            .is_some_and(|i| i.state == State::Ready)
    }

    /// Functions with an instance (starting or ready).
    pub fn functions(&self) -> Vec<String> {
        self.instances.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn one_start_then_shared() {
        let mut r = RestInstances::new(ms(10_000));
        assert_eq!(r.call_started("A", ms(0)), RestAcquire::Start);
        assert_eq!(r.call_started("A", ms(1)), RestAcquire::WaitForStart);
        r.started("A", ms(500));
        assert_eq!(r.call_started("A", ms(600)), RestAcquire::Existing);
        assert_eq!(r.call_started("B", ms(600)), RestAcquire::Start);
    }

    #[test]
    fn idle_instances_expire_by_time_not_while_busy() {
        let mut r = RestInstances::new(ms(10_000));
        r.call_started("A", ms(0));
        r.started("A", ms(100));
        // Busy for a long time: never expires.
        assert!(r.expire(ms(60_000)).is_empty());
        r.call_finished("A", ms(60_000));
        assert_eq!(r.next_expiry(), Some(ms(70_000)));
        assert!(r.expire(ms(69_999)).is_empty());
        assert_eq!(r.expire(ms(70_000)), vec!["A".to_string()]);
        assert!(!r.is_ready("A"));
        assert_eq!(r.call_started("A", ms(70_001)), RestAcquire::Start);
    }

    #[test]
    fn a_use_extends_the_lifetime_and_failed_start_is_forgotten() {
        let mut r = RestInstances::new(ms(1000));
        r.call_started("A", ms(0));
        r.started("A", ms(0));
        r.call_finished("A", ms(10));
        r.call_started("A", ms(900));
        r.call_finished("A", ms(950));
        assert!(r.expire(ms(1500)).is_empty());
        assert_eq!(r.expire(ms(1950)).len(), 1);
        r.call_started("B", ms(0));
        r.start_failed("B");
        assert_eq!(r.call_started("B", ms(1)), RestAcquire::Start);
        // A waiter keeps the entry: it starts the instance itself.
        assert_eq!(r.call_started("B", ms(2)), RestAcquire::WaitForStart);
        r.start_failed("B");
        assert!(!r.is_ready("B"));
        r.started("B", ms(3));
        r.call_finished("B", ms(4));
        assert_eq!(r.expire(ms(10_000)), vec!["B".to_string()]);
    }

    proptest! {
        /// Never two starts of one function without a failure or expiry in
        /// between; a busy instance never expires; after `expire(now)` no
        /// idle ready instance is older than the lifetime.
        #[test]
        fn single_start_and_expiry(
            ops in prop::collection::vec((0usize..3, 0u8..4, 0u64..3000), 1..200),
        ) {
            let mut r = RestInstances::new(ms(1000));
            let mut now = 0u64;
            let mut busy: BTreeMap<String, u32> = BTreeMap::new();
            let mut starting: BTreeMap<String, bool> = BTreeMap::new();
            for (f, op, dt) in ops {
                now += dt;
                let name = format!("F{f}");
                match op {
                    0 => {
                        let a = r.call_started(&name, ms(now));
                        if a == RestAcquire::Start {
                            prop_assert!(!starting.get(&name).copied().unwrap_or(false));
                            starting.insert(name.clone(), true);
                        }
                        *busy.entry(name).or_default() += 1;
                    }
                    1 if starting.get(&name).copied().unwrap_or(false) => {
                        r.started(&name, ms(now));
                        starting.insert(name, false);
                    }
                    2 if busy.get(&name).copied().unwrap_or(0) > 0 => {
                        *busy.get_mut(&name).unwrap() -= 1;
                        r.call_finished(&name, ms(now));
                    }
                    _ => {
                        for gone in r.expire(ms(now)) {
                            prop_assert_eq!(busy.get(&gone).copied().unwrap_or(0), 0);
                            starting.remove(&gone);
                        }
                        if let Some(t) = r.next_expiry() {
                            prop_assert!(t > ms(now));
                        }
                    }
                }
            }
        }
    }
}
