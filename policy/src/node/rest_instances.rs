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
//! Instances are named by ids the caller mints ([`InstanceId`]); time is
//! an argument ([`Time`]).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::time::Duration;

use super::InstanceId;
use crate::time::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Instance {
    id: InstanceId,
    state: State,
    in_flight: u32,
    idle_since: Time,
}

/// What a call must do to get its REST-mode instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestAcquire {
    /// A ready instance exists: invoke it (`UsingExistingRestContainer`).
    Existing(InstanceId),
    /// Another call is starting this instance: wait for that start.
    WaitForStart(InstanceId),
    /// Start this (new) instance, then report [`RestInstances::started`]
    /// (or, if the start fails, [`RestInstances::remove`] it).
    Start(InstanceId),
}

/// REST-mode instance state for every function (named by keys of type
/// `K`: the node model's ids, or names).
#[derive(Debug, Clone)]
pub struct RestInstances<K = String> {
    lifetime: Duration,
    instances: BTreeMap<K, Instance>,
}

impl<K: Ord + Clone> RestInstances<K> {
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
    /// [`RestInstances::call_finished`]. `mint` gives the id of a new
    /// instance when one must be started.
    pub fn call_started<Q>(
        &mut self,
        function: &Q,
        now: Time,
        mint: impl FnOnce() -> InstanceId,
    ) -> RestAcquire
    where
        K: Borrow<Q>,
        Q: Ord + ToOwned<Owned = K> + ?Sized,
    {
        match self.instances.get_mut(function) {
            Some(i) => {
                i.in_flight += 1;
                i.idle_since = i.idle_since.max(now);
                match i.state {
                    State::Ready => RestAcquire::Existing(i.id),
                    State::Starting => RestAcquire::WaitForStart(i.id),
                }
            }
            None => {
                let id = mint();
                self.instances.insert(
                    function.to_owned(),
                    Instance {
                        id,
                        state: State::Starting,
                        in_flight: 1,
                        idle_since: now,
                    },
                );
                RestAcquire::Start(id)
            }
        }
    }

    /// The instance of `function` is up.
    pub fn started<Q>(&mut self, function: &Q, now: Time)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(i) = self.instances.get_mut(function) {
            i.state = State::Ready;
            i.idle_since = i.idle_since.max(now);
        }
    }

    /// A call of `function` ended at `now` (successfully or not).
    pub fn call_finished<Q>(&mut self, function: &Q, now: Time)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(i) = self.instances.get_mut(function) {
            i.in_flight = i.in_flight.saturating_sub(1);
            i.idle_since = i.idle_since.max(now);
        }
    }

    fn expired(&self, i: &Instance, now: Time) -> bool {
        i.state == State::Ready
            && i.in_flight == 0
            && now.saturating_since(i.idle_since) >= self.lifetime
    }

    /// Removes and returns every ready instance idle for at least the
    /// lifetime at `now`; the caller stops them.
    #[must_use = "expired or forgotten instances must be stopped"]
    pub fn expire(&mut self, now: Time) -> Vec<(K, InstanceId)> {
        let expired: Vec<(K, InstanceId)> = self
            .instances
            .iter()
            .filter(|(_, i)| self.expired(i, now))
            .map(|(n, i)| (n.clone(), i.id))
            .collect();
        for (n, _) in &expired {
            self.instances.remove(n);
        }
        expired
    }

    /// Removes the instance of `function` if it is idle for at least the
    /// lifetime at `now`, and returns its id.
    #[must_use = "expired or forgotten instances must be stopped"]
    pub fn expire_function<Q>(&mut self, function: &Q, now: Time) -> Option<InstanceId>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.instances.get(function)?;
        if !self.expired(i, now) {
            return None;
        }
        let id = i.id;
        self.instances.remove(function);
        Some(id)
    }

    /// When the instance of `function` expires if no call comes (None
    /// while it starts or serves a call).
    pub fn deadline<Q>(&self, function: &Q) -> Option<Time>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.instances.get(function)?;
        (i.state == State::Ready && i.in_flight == 0).then(|| i.idle_since + self.lifetime)
    }

    /// The earliest time an instance could expire (if no call comes).
    pub fn next_expiry(&self) -> Option<Time> {
        self.instances
            .values()
            .filter(|i| i.state == State::Ready && i.in_flight == 0)
            .map(|i| i.idle_since + self.lifetime)
            .min()
    }

    /// Forgets the instance of `function` (it died, or its image went);
    /// returns its id if it was known.
    pub fn remove<Q>(&mut self, function: &Q) -> Option<InstanceId>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.instances.remove(function).map(|i| i.id)
    }

    /// Forgets every instance (`/clear`); the caller stops them.
    #[must_use = "expired or forgotten instances must be stopped"]
    pub fn clear(&mut self) -> Vec<(K, InstanceId)> {
        std::mem::take(&mut self.instances)
            .into_iter()
            .map(|(n, i)| (n, i.id))
            .collect()
    }

    /// The id of `function`'s instance (starting or ready).
    pub fn instance<Q>(&self, function: &Q) -> Option<InstanceId>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.instances.get(function).map(|i| i.id)
    }

    /// Whether `function` has a ready instance.
    pub fn is_ready<Q>(&self, function: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.instances
            .get(function)
            .is_some_and(|i| i.state == State::Ready)
    }

    /// Whether `function`'s instance has calls in flight (or starting).
    pub fn is_busy<Q>(&self, function: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.instances
            .get(function)
            .is_some_and(|i| i.in_flight > 0)
    }

    /// Instances that exist (starting or ready).
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// Functions with an instance (starting or ready).
    pub fn functions(&self) -> Vec<K> {
        self.instances.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(x: u64) -> Time {
        Time::from_millis(x)
    }

    /// Mints ids 1, 2, 3, ...
    #[derive(Default)]
    struct Ids(InstanceId);
    impl Ids {
        fn mint(&mut self) -> impl FnOnce() -> InstanceId + '_ {
            || {
                self.0 += 1;
                self.0
            }
        }
    }

    #[test]
    fn one_start_then_shared() {
        let mut ids = Ids::default();
        let mut r = RestInstances::new(Duration::from_secs(10));
        assert_eq!(
            r.call_started("A", ms(0), ids.mint()),
            RestAcquire::Start(1)
        );
        assert_eq!(
            r.call_started("A", ms(1), ids.mint()),
            RestAcquire::WaitForStart(1)
        );
        r.started("A", ms(500));
        assert_eq!(
            r.call_started("A", ms(600), ids.mint()),
            RestAcquire::Existing(1)
        );
        assert_eq!(
            r.call_started("B", ms(600), ids.mint()),
            RestAcquire::Start(2)
        );
        assert_eq!(r.instance("B"), Some(2));
    }

    #[test]
    fn idle_instances_expire_by_time_not_while_busy() {
        let mut ids = Ids::default();
        let mut r = RestInstances::new(Duration::from_secs(10));
        r.call_started("A", ms(0), ids.mint());
        r.started("A", ms(100));
        // Busy for a long time: never expires.
        assert!(r.expire(ms(60_000)).is_empty());
        assert_eq!(r.deadline("A"), None, "busy: no deadline");
        r.call_finished("A", ms(60_000));
        assert_eq!(r.next_expiry(), Some(ms(70_000)));
        assert_eq!(r.deadline("A"), Some(ms(70_000)));
        assert!(r.expire(ms(69_999)).is_empty());
        assert_eq!(r.expire_function("A", ms(69_999)), None);
        assert_eq!(r.expire_function("A", ms(70_000)), Some(1));
        assert!(!r.is_ready("A"));
        assert_eq!(
            r.call_started("A", ms(70_001), ids.mint()),
            RestAcquire::Start(2)
        );
    }

    #[test]
    fn a_use_extends_the_lifetime_and_a_removed_instance_is_started_anew() {
        let mut ids = Ids::default();
        let mut r = RestInstances::new(Duration::from_secs(1));
        r.call_started("A", ms(0), ids.mint());
        r.started("A", ms(0));
        r.call_finished("A", ms(10));
        r.call_started("A", ms(900), ids.mint());
        r.call_finished("A", ms(950));
        assert!(r.expire(ms(1500)).is_empty());
        assert_eq!(r.expire(ms(1950)), vec![("A".to_string(), 1)]);
        // A failed start is forgotten (the node model then gets every
        // waiting call its instance anew): the next call starts another.
        r.call_started("B", ms(0), ids.mint());
        assert_eq!(r.remove("B"), Some(2));
        assert_eq!(
            r.call_started("B", ms(1), ids.mint()),
            RestAcquire::Start(3)
        );
        assert_eq!(
            r.call_started("B", ms(2), ids.mint()),
            RestAcquire::WaitForStart(3)
        );
        assert!(!r.is_ready("B"));
        r.started("B", ms(3));
        r.call_finished("B", ms(4));
        r.call_finished("B", ms(4));
        assert_eq!(r.expire(ms(10_000)), vec![("B".to_string(), 3)]);
    }

    proptest! {
        /// Never two starts of one function without a failure or expiry in
        /// between; a busy instance never expires; after `expire(now)` no
        /// idle ready instance is older than the lifetime.
        #[test]
        fn single_start_and_expiry(
            ops in prop::collection::vec((0usize..3, 0u8..4, 0u64..3000), 1..200),
        ) {
            let mut ids = Ids::default();
            let mut r = RestInstances::new(Duration::from_secs(1));
            let mut now = 0u64;
            let mut busy: BTreeMap<String, u32> = BTreeMap::new();
            let mut starting: BTreeMap<String, bool> = BTreeMap::new();
            for (f, op, dt) in ops {
                now += dt;
                let name = format!("F{f}");
                match op {
                    0 => {
                        let a = r.call_started(&name, ms(now), ids.mint());
                        if matches!(a, RestAcquire::Start(_)) {
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
                        for (gone, _) in r.expire(ms(now)) {
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
