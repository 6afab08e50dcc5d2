//! Keep-alive with one request per instance: the AWS Lambda model.
//!
//! Each instance of a function serves one call at a time. When a call
//! arrives, it reuses the *most recently created* idle instance (so older
//! instances stay idle and expire, which is what keeps the pool small); if
//! no instance is idle, a new one is cold-started. An instance that has been
//! idle for the keep-alive period expires and is removed.
//!
//! This is the model analysed by Mahmoudi & Khazaei, "Performance Modeling
//! of Serverless Computing Platforms" (IEEE TCC, 2020) and simulated by their
//! SimFaaS ("SimFaaS: A Performance Simulator for Serverless Computing
//! Platforms", CLOSER 2021), after the behaviour of AWS Lambda. The
//! discrete-event simulator's SimFaaS oracle test drives this type.
//!
//! Pure: no I/O, no clock reads; every method takes the time as an argument
//! ([`Time`], time since the run's epoch). One [`KeepAlivePool`] holds the
//! instances of one function on one node; their ids are minted by the
//! caller (unique on the node, increasing with creation).
//!
//! Parameters: `keep_alive` (AWS Lambda keeps idle instances for minutes;
//! SimFaaS's example uses 600 s, which is [`KeepAlivePool::DEFAULT_KEEP_ALIVE`]).
//!
//! Expiry rule: an instance released at `t` is expired at every time
//! `>= t + keep_alive`; [`KeepAlivePool::acquire`] expires such instances
//! before choosing, so a call arriving exactly at the deadline cold-starts.
//!
//! # Semantics other simulators choose ([`ReuseRules`])
//!
//! Defaults are the rules above (SimFaaS's and AWS Lambda's). Two
//! alternatives, for cross-checking against simulators that chose them:
//! - [`ReuseOrder::Oldest`]: a call takes the *first free* idle instance,
//!   the oldest (lowest id), as a FIFO free list does (e.g. a simulator
//!   that scans its instance list from the front);
//! - `extend_on_reuse = false`: reuse does not extend the keep-alive. An
//!   instance's keep-alive clock starts when it first becomes idle and is
//!   never reset: it expires at `first idle + keep_alive`, or, if a call
//!   holds it then, as soon as that call ends (its deadline has passed).
//!   Choice where sources differ: the clock starts at the first release,
//!   not at creation, so the two rules agree on an instance used once.

use std::time::Duration;

use smallvec::SmallVec;

pub use super::InstanceId;
use crate::time::Time;

/// How a call got its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// An idle instance was reused.
    Warm(InstanceId),
    /// No instance was idle: a new one was created (a cold start).
    Cold(InstanceId),
}

impl Acquired {
    /// The instance that serves the call.
    pub fn instance(self) -> InstanceId {
        match self {
            Self::Warm(id) | Self::Cold(id) => id,
        }
    }

    pub fn is_cold(self) -> bool {
        matches!(self, Self::Cold(_))
    }
}

/// An instance that expired, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub instance: InstanceId,
    /// `idle since + keep_alive`: when it stopped existing (may be earlier
    /// than the `now` at which the expiry was noticed).
    pub at: Time,
}

/// A release of an instance that is not busy in this pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance {0} is not busy in this pool")]
pub struct NotBusy(pub InstanceId);

/// Which idle instance a call reuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReuseOrder {
    /// The most recently created idle instance (SimFaaS, AWS Lambda).
    #[default]
    Newest,
    /// The first free one: the oldest idle instance.
    Oldest,
}

impl std::str::FromStr for ReuseOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "newest" => Ok(Self::Newest),
            "oldest" | "first-free" => Ok(Self::Oldest),
            other => Err(format!(
                "unknown reuse order {other:?} (expected newest or oldest)"
            )),
        }
    }
}

/// How a pool picks and keeps its idle instances (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ReuseRules {
    pub order: ReuseOrder,
    /// Reuse restarts the instance's keep-alive (default true).
    pub extend_on_reuse: bool,
}

impl Default for ReuseRules {
    fn default() -> Self {
        Self {
            order: ReuseOrder::Newest,
            extend_on_reuse: true,
        }
    }
}

/// The instances of one function on one node.
#[derive(Debug, Clone)]
pub struct KeepAlivePool {
    keep_alive: Duration,
    rules: ReuseRules,
    /// `extend_on_reuse = false`: busy instances that were idle before,
    /// with when they first became idle (empty otherwise).
    first_idle: Vec<(InstanceId, Time)>,
    /// Idle instances, ascending by id, with the time they became idle
    /// (the first few in the pool itself: most pools hold a few).
    idle: SmallVec<[(InstanceId, Time); 2]>,
    /// A lower bound of the idle instances' idle-since times (None when
    /// none is idle): [`KeepAlivePool::expire`] skips its scan while
    /// nothing can be due, so a call's acquire costs O(1) then.
    idle_since_bound: Option<Time>,
    /// Busy instances (small: the calls in flight), unordered.
    busy: SmallVec<[InstanceId; 2]>,
    cold_starts: u64,
    warm_starts: u64,
    /// Expiry never takes the instance count below this (EWMA policy).
    floor: usize,
}

impl KeepAlivePool {
    /// SimFaaS's example keep-alive period.
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(600);

    pub fn new(keep_alive: Duration) -> Self {
        Self {
            keep_alive,
            rules: ReuseRules {
                order: ReuseOrder::Newest,
                extend_on_reuse: true,
            },
            first_idle: Vec::new(),
            idle: SmallVec::new(),
            idle_since_bound: None,
            busy: SmallVec::new(),
            cold_starts: 0,
            warm_starts: 0,
            floor: 0,
        }
    }

    /// `pool` emptied and made new, as [`KeepAlivePool::new`]`(keep_alive)`
    /// with `rules` would be, keeping only its vectors' storage (so a pool
    /// reused for another function allocates nothing).
    pub fn reused(mut pool: Self, keep_alive: Duration, rules: ReuseRules) -> Self {
        pool.clear();
        Self {
            keep_alive,
            rules,
            first_idle: pool.first_idle,
            idle: pool.idle,
            idle_since_bound: None,
            busy: pool.busy,
            cold_starts: 0,
            warm_starts: 0,
            floor: 0,
        }
    }

    /// A pool with other reuse rules than the default.
    pub fn with_rules(mut self, rules: ReuseRules) -> Self {
        self.rules = rules;
        self
    }

    pub fn rules(&self) -> ReuseRules {
        self.rules
    }

    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// A new keep-alive period, for the idle instances too (their deadline
    /// is `idle since + keep_alive`).
    pub fn set_keep_alive(&mut self, keep_alive: Duration) {
        self.keep_alive = keep_alive;
    }

    /// Expiry keeps at least `floor` instances (busy or idle); idle ones
    /// past their keep-alive beyond it expire, oldest first.
    pub fn set_floor(&mut self, floor: usize) {
        self.floor = floor;
    }

    pub fn floor(&self) -> usize {
        self.floor
    }

    /// Removes the instances idle for `keep_alive` or longer at `now`,
    /// calling `on_expired` for each (in ascending id order).
    pub fn expire(&mut self, now: Time, mut on_expired: impl FnMut(Expired)) {
        let keep_alive = self.keep_alive;
        match self.idle_since_bound {
            None => return,
            Some(b) if b.saturating_add(keep_alive) > now => return,
            Some(_) => {}
        }
        let mut removable = self.instance_count().saturating_sub(self.floor);
        let mut bound: Option<Time> = None;
        self.idle.retain(|&mut (instance, since)| {
            let at = since.saturating_add(keep_alive);
            if at <= now && removable > 0 {
                removable -= 1;
                on_expired(Expired { instance, at });
                false
            } else {
                bound = Some(bound.map_or(since, |b: Time| b.min(since)));
                true
            }
        });
        self.idle_since_bound = bound;
    }

    /// `instance` is idle from `since`, in id order.
    fn insert_idle(&mut self, instance: InstanceId, since: Time) {
        let at = self.idle.partition_point(|&(id, _)| id < instance);
        self.idle.insert(at, (instance, since));
        self.idle_since_bound = Some(self.idle_since_bound.map_or(since, |b| b.min(since)));
    }

    /// A call arrives at `now`: expires what is due, then takes the most
    /// recently created idle instance (the oldest under
    /// [`ReuseOrder::Oldest`]), or creates one with the id `mint`
    /// gives (larger than every id it gave before). The instance is busy
    /// until [`KeepAlivePool::release`] (or [`KeepAlivePool::discard`]).
    #[must_use = "the call runs on the acquired instance"]
    pub fn acquire(
        &mut self,
        now: Time,
        on_expired: impl FnMut(Expired),
        mint: impl FnOnce() -> InstanceId,
    ) -> Acquired {
        self.expire(now, on_expired);
        let reused = match self.rules.order {
            ReuseOrder::Newest => self.idle.pop(),
            ReuseOrder::Oldest if self.idle.is_empty() => None,
            ReuseOrder::Oldest => Some(self.idle.remove(0)),
        };
        let acquired = match reused {
            Some((id, since)) => {
                self.warm_starts += 1;
                if !self.rules.extend_on_reuse {
                    self.first_idle.push((id, since));
                }
                Acquired::Warm(id)
            }
            None => {
                self.cold_starts += 1;
                Acquired::Cold(mint())
            }
        };
        self.busy.push(acquired.instance());
        acquired
    }

    /// The call on `instance` finished at `now`: the instance becomes idle
    /// and will expire at `now + keep_alive` unless reused.
    /// (Without `extend_on_reuse`, an instance that was idle before keeps
    /// the time it first became idle, so it may be due at once.)
    pub fn release(&mut self, instance: InstanceId, now: Time) -> Result<(), NotBusy> {
        // (Only busy instances have a first-idle entry.)
        let since = self.take_first_idle(instance).unwrap_or(now);
        self.discard(instance)?;
        self.insert_idle(instance, since);
        Ok(())
    }

    /// A busy instance is gone without becoming idle (its start failed, or
    /// it died): forgets it.
    pub fn discard(&mut self, instance: InstanceId) -> Result<(), NotBusy> {
        let pos = self
            .busy
            .iter()
            .position(|&b| b == instance)
            .ok_or(NotBusy(instance))?;
        self.busy.swap_remove(pos);
        self.take_first_idle(instance);
        Ok(())
    }

    /// When `instance` (busy) first became idle, if it was idle before
    /// and reuse does not extend its keep-alive; forgets it.
    fn take_first_idle(&mut self, instance: InstanceId) -> Option<Time> {
        if self.first_idle.is_empty() {
            return None;
        }
        let i = self.first_idle.iter().position(|&(id, _)| id == instance)?;
        Some(self.first_idle.swap_remove(i).1)
    }

    /// Removes every idle instance at once (their image went), calling
    /// `on_removed` for each; busy ones stay.
    pub fn remove_idle(&mut self, mut on_removed: impl FnMut(InstanceId)) {
        for (id, _) in self.idle.drain(..) {
            on_removed(id);
        }
        self.idle_since_bound = None;
    }

    /// An instance started with no call (pre-warmed) is idle from `now`.
    pub fn add_idle(&mut self, instance: InstanceId, now: Time) {
        self.insert_idle(instance, now);
    }

    /// Removes one idle instance (evicted); false if it is not idle here.
    pub fn remove_idle_instance(&mut self, instance: InstanceId) -> bool {
        match self.idle.iter().position(|&(id, _)| id == instance) {
            Some(i) => {
                self.idle.remove(i);
                true
            }
            None => false,
        }
    }

    /// Idle instances, ascending by id, with the time they became idle.
    pub fn idle(&self) -> &[(InstanceId, Time)] {
        &self.idle
    }

    /// When the next idle instance expires, if any is idle (and the floor
    /// lets one expire).
    pub fn next_expiry(&self) -> Option<Time> {
        if self.instance_count() <= self.floor {
            return None;
        }
        self.idle
            .iter()
            .map(|&(_, since)| since.saturating_add(self.keep_alive))
            .min()
    }

    pub fn idle_count(&self) -> usize {
        self.idle.len()
    }

    pub fn busy_count(&self) -> usize {
        self.busy.len()
    }

    /// Instances that exist (busy or idle).
    pub fn instance_count(&self) -> usize {
        self.idle.len() + self.busy.len()
    }

    pub fn cold_starts(&self) -> u64 {
        self.cold_starts
    }

    pub fn warm_starts(&self) -> u64 {
        self.warm_starts
    }

    /// Removes every instance (e.g. `/clear`); busy ones are forgotten too.
    pub fn clear(&mut self) {
        self.first_idle.clear();
        self.idle.clear();
        self.idle_since_bound = None;
        self.busy.clear();
    }
}

impl Default for KeepAlivePool {
    fn default() -> Self {
        Self::new(Self::DEFAULT_KEEP_ALIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Time {
        Time::from_secs(secs)
    }

    fn d(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    /// A pool whose `acquire` mints ids 0, 1, 2, ...
    struct Pool {
        pool: KeepAlivePool,
        next: InstanceId,
    }

    impl Pool {
        fn new(keep_alive: Duration) -> Self {
            Self {
                pool: KeepAlivePool::new(keep_alive),
                next: 0,
            }
        }

        fn acquire(&mut self, now: Time, on_expired: impl FnMut(Expired)) -> Acquired {
            let next = &mut self.next;
            self.pool.acquire(now, on_expired, || {
                *next += 1;
                *next - 1
            })
        }
    }

    impl std::ops::Deref for Pool {
        type Target = KeepAlivePool;
        fn deref(&self) -> &KeepAlivePool {
            &self.pool
        }
    }

    impl std::ops::DerefMut for Pool {
        fn deref_mut(&mut self) -> &mut KeepAlivePool {
            &mut self.pool
        }
    }

    #[test]
    fn first_call_is_cold_then_warm_on_the_same_instance() {
        let mut p = Pool::new(d(10));
        let a = p.acquire(s(0), |_| {});
        assert!(a.is_cold());
        p.release(a.instance(), s(1)).unwrap();
        let b = p.acquire(s(5), |_| {});
        assert_eq!(b, Acquired::Warm(a.instance()));
        assert_eq!((p.cold_starts(), p.warm_starts()), (1, 1));
    }

    #[test]
    fn one_call_per_instance_concurrent_calls_cold_start() {
        let mut p = Pool::new(d(10));
        let a = p.acquire(s(0), |_| {});
        let b = p.acquire(s(0), |_| {});
        assert!(a.is_cold() && b.is_cold());
        assert_ne!(a.instance(), b.instance());
        assert_eq!(p.busy_count(), 2);
        assert_eq!(p.idle_count(), 0);
    }

    #[test]
    fn reuses_the_most_recently_created_idle_instance() {
        let mut p = Pool::new(d(100));
        let ids: Vec<_> = (0..3).map(|_| p.acquire(s(0), |_| {}).instance()).collect();
        // Release newest first, so "most recently released" differs from
        // "most recently created".
        p.release(ids[2], s(1)).unwrap();
        p.release(ids[0], s(2)).unwrap();
        p.release(ids[1], s(3)).unwrap();
        assert_eq!(p.acquire(s(4), |_| {}), Acquired::Warm(ids[2]));
        assert_eq!(p.acquire(s(4), |_| {}), Acquired::Warm(ids[1]));
        assert_eq!(p.acquire(s(4), |_| {}), Acquired::Warm(ids[0]));
        assert!(p.acquire(s(4), |_| {}).is_cold());
    }

    #[test]
    fn idle_instances_expire_after_keep_alive_exactly() {
        let mut p = Pool::new(d(10));
        let a = p.acquire(s(0), |_| {}).instance();
        p.release(a, s(2)).unwrap();
        assert_eq!(p.next_expiry(), Some(s(12)));
        let mut expired = Vec::new();
        p.expire(s(11), |e| expired.push(e));
        assert!(expired.is_empty());
        assert_eq!(p.instance_count(), 1);
        let b = p.acquire(s(12), |e| expired.push(e));
        assert!(b.is_cold(), "an instance at its deadline is gone");
        assert_eq!(
            expired,
            vec![Expired {
                instance: a,
                at: s(12)
            }]
        );
        assert_eq!(p.instance_count(), 1);
        assert_eq!(p.next_expiry(), None, "the busy one does not expire");
    }

    #[test]
    fn expiry_reports_the_deadline_not_the_time_noticed() {
        let mut p = Pool::new(d(10));
        let a = p.acquire(s(0), |_| {}).instance();
        p.release(a, s(3)).unwrap();
        let mut at = None;
        p.expire(s(100), |e| at = Some(e.at));
        assert_eq!(at, Some(s(13)));
    }

    #[test]
    fn releasing_an_unknown_instance_is_an_error() {
        let mut p = Pool::new(d(10));
        assert_eq!(p.release(7, s(0)), Err(NotBusy(7)));
        let a = p.acquire(s(0), |_| {}).instance();
        p.release(a, s(1)).unwrap();
        assert_eq!(p.release(a, s(1)), Err(NotBusy(a)), "already idle");
    }

    #[test]
    fn clear_removes_everything() {
        let mut p = Pool::new(d(10));
        let a = p.acquire(s(0), |_| {}).instance();
        p.acquire(s(0), |_| {});
        p.release(a, s(1)).unwrap();
        p.clear();
        assert_eq!(p.instance_count(), 0);
    }

    #[test]
    fn the_floor_keeps_instances_and_expires_the_oldest_beyond_it() {
        let mut p = Pool::new(d(10));
        let ids: Vec<_> = (0..3).map(|_| p.acquire(s(0), |_| {}).instance()).collect();
        for &id in &ids {
            p.release(id, s(1)).unwrap();
        }
        p.set_floor(2);
        let mut gone = Vec::new();
        p.expire(s(100), |e| gone.push(e.instance));
        assert_eq!(gone, vec![ids[0]], "only one above the floor, the oldest");
        assert_eq!(p.next_expiry(), None, "at the floor nothing expires");
        p.set_floor(0);
        assert_eq!(p.next_expiry(), Some(s(11)));
        p.set_keep_alive(d(200));
        assert_eq!(p.next_expiry(), Some(s(201)), "applies to idle ones");
        assert!(p.remove_idle_instance(ids[1]));
        assert!(!p.remove_idle_instance(ids[1]));
        p.add_idle(99, s(5));
        assert_eq!(p.idle(), &[(ids[2], s(1)), (99, s(5))]);
    }

    #[test]
    fn discarded_and_removed_instances_are_gone() {
        let mut p = Pool::new(d(10));
        let a = p.acquire(s(0), |_| {}).instance();
        let b = p.acquire(s(0), |_| {}).instance();
        p.discard(a).unwrap();
        assert_eq!(p.discard(a), Err(NotBusy(a)), "only busy ones");
        assert_eq!((p.busy_count(), p.idle_count()), (1, 0));
        p.release(b, s(1)).unwrap();
        let mut removed = Vec::new();
        p.remove_idle(|id| removed.push(id));
        assert_eq!(removed, vec![b]);
        assert_eq!(p.instance_count(), 0);
        assert!(p.acquire(s(2), |_| {}).is_cold());
    }

    #[test]
    fn expiry_follows_the_oldest_idle_instance_whatever_the_release_order() {
        let mut p = Pool::new(d(10));
        let ids: Vec<_> = (0..3)
            .map(|_| p.acquire(s(0), |_| panic!()).instance())
            .collect();
        // Released out of id order: 2 at 1 s, 0 at 3 s, 1 at 5 s.
        p.release(ids[2], s(1)).unwrap();
        p.release(ids[0], s(3)).unwrap();
        p.release(ids[1], s(5)).unwrap();
        let mut gone = Vec::new();
        p.expire(s(10), |e| gone.push(e));
        assert!(gone.is_empty(), "nothing is due before 11 s");
        p.expire(s(13), |e| gone.push(e));
        assert_eq!(
            gone,
            vec![
                Expired {
                    instance: ids[0],
                    at: s(13)
                },
                Expired {
                    instance: ids[2],
                    at: s(11)
                }
            ]
        );
        assert_eq!(p.next_expiry(), Some(s(15)));
        // Reused (the newest idle, 1) and released later: due later.
        assert_eq!(p.acquire(s(14), |_| panic!()), Acquired::Warm(ids[1]));
        p.release(ids[1], s(20)).unwrap();
        gone.clear();
        p.expire(s(29), |e| gone.push(e));
        assert!(gone.is_empty());
        p.expire(s(30), |e| gone.push(e));
        assert_eq!(gone.len(), 1);
        assert_eq!(p.idle_count(), 0);
    }

    #[test]
    fn oldest_first_reuse_takes_the_first_free_instance() {
        let mut p = Pool::new(d(100));
        p.pool = KeepAlivePool::new(d(100)).with_rules(ReuseRules {
            order: ReuseOrder::Oldest,
            extend_on_reuse: true,
        });
        let ids: Vec<_> = (0..3).map(|_| p.acquire(s(0), |_| {}).instance()).collect();
        for (i, &id) in ids.iter().enumerate() {
            p.release(id, s(1 + i as u64)).unwrap();
        }
        // The newest rule would take 2, then 1; first free takes 0, then 1.
        assert_eq!(p.acquire(s(5), |_| {}), Acquired::Warm(ids[0]));
        assert_eq!(p.acquire(s(5), |_| {}), Acquired::Warm(ids[1]));
        assert_eq!("first-free".parse::<ReuseOrder>(), Ok(ReuseOrder::Oldest));
        assert!("lifo".parse::<ReuseOrder>().is_err());
    }

    #[test]
    fn without_extension_reuse_keeps_the_first_idle_deadline() {
        // Keep-alive 10 s. Released at 2 s (deadline 12 s), reused at 5 s,
        // released at 8 s: still due at 12 s (extending would give 18 s).
        // Reused at 9 s and held past 12 s: expired as soon as released.
        let rules = ReuseRules {
            order: ReuseOrder::Newest,
            extend_on_reuse: false,
        };
        let mut p = Pool::new(d(10));
        p.pool = KeepAlivePool::new(d(10)).with_rules(rules);
        let a = p.acquire(s(0), |_| {}).instance();
        p.release(a, s(2)).unwrap();
        assert_eq!(p.acquire(s(5), |_| {}), Acquired::Warm(a));
        p.release(a, s(8)).unwrap();
        assert_eq!(p.next_expiry(), Some(s(12)));
        assert_eq!(p.acquire(s(9), |_| {}), Acquired::Warm(a));
        p.release(a, s(15)).unwrap();
        let mut gone = Vec::new();
        p.expire(s(15), |e| gone.push(e));
        assert_eq!(
            gone,
            vec![Expired {
                instance: a,
                at: s(12)
            }]
        );
        // A discarded instance leaves no first-idle record behind.
        let b = p.acquire(s(20), |_| {}).instance();
        p.release(b, s(21)).unwrap();
        assert_eq!(p.acquire(s(22), |_| {}), Acquired::Warm(b));
        p.discard(b).unwrap();
        assert!(p.first_idle.is_empty());
    }
}
