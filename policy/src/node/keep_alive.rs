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

/// Marks a busy entry with no first-idle time (see [`KeepAlivePool`]'s
/// `entries`).
const NOT_IDLE: Time = Time::MAX;

/// The instances of one function on one node.
///
/// Compact (64 bytes, no allocation while it holds one instance), since a
/// node model keeps one inside each function's record, beside the fields
/// a call reads first: a pool's first access is then not a cache miss of
/// its own (at Azure scale a call's node and function are cold in the
/// cache).
#[derive(Debug, Clone)]
pub struct KeepAlivePool {
    /// The instances: the idle ones first, ascending by id, with the time
    /// each became idle; then the busy ones, unordered, with the time each
    /// first became idle when reuse does not extend the keep-alive and it
    /// was idle before ([`NOT_IDLE`] otherwise). (The first few in the
    /// pool itself: most pools hold one instance.)
    entries: SmallVec<[(InstanceId, Time); 1]>,
    /// How many of `entries` are idle.
    idle_len: u32,
    /// Expiry never takes the instance count below this (EWMA policy).
    floor: u32,
    /// The keep-alive, as a [`Duration`]'s parts (kept exactly, in fewer
    /// bytes than a `Duration`).
    keep_alive_secs: u64,
    keep_alive_nanos: u32,
    rules: ReuseRules,
    /// A lower bound of the idle instances' idle-since times
    /// ([`Time::MAX`] when none is idle): [`KeepAlivePool::expire`] skips
    /// its scan while nothing can be due, so a call's acquire costs O(1)
    /// then.
    idle_since_bound: Time,
}

impl KeepAlivePool {
    /// SimFaaS's example keep-alive period.
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(600);

    pub fn new(keep_alive: Duration) -> Self {
        Self {
            entries: SmallVec::new(),
            idle_len: 0,
            floor: 0,
            keep_alive_secs: keep_alive.as_secs(),
            keep_alive_nanos: keep_alive.subsec_nanos(),
            rules: ReuseRules::default(),
            idle_since_bound: Time::MAX,
        }
    }

    /// Empties the pool and makes it new, as [`KeepAlivePool::new`]`(
    /// keep_alive)` with `rules` would be, keeping its storage.
    pub fn reset(&mut self, keep_alive: Duration, rules: ReuseRules) {
        self.clear();
        self.floor = 0;
        self.set_keep_alive(keep_alive);
        self.rules = rules;
    }

    /// Gives back the storage of a pool that grew beyond one instance
    /// (the pool must be empty; it stays usable).
    pub fn shrink(&mut self) {
        self.entries.shrink_to_fit();
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
        Duration::new(self.keep_alive_secs, self.keep_alive_nanos)
    }

    /// A new keep-alive period, for the idle instances too (their deadline
    /// is `idle since + keep_alive`).
    pub fn set_keep_alive(&mut self, keep_alive: Duration) {
        self.keep_alive_secs = keep_alive.as_secs();
        self.keep_alive_nanos = keep_alive.subsec_nanos();
    }

    /// Expiry keeps at least `floor` instances (busy or idle); idle ones
    /// past their keep-alive beyond it expire, oldest first. (Kept as a
    /// `u32`: a floor beyond 4,294,967,295 instances is that many.)
    pub fn set_floor(&mut self, floor: usize) {
        self.floor = u32::try_from(floor).unwrap_or(u32::MAX);
    }

    pub fn floor(&self) -> usize {
        self.floor as usize
    }

    fn idle_len(&self) -> usize {
        self.idle_len as usize
    }

    /// Removes the instances idle for `keep_alive` or longer at `now`,
    /// calling `on_expired` for each (in ascending id order).
    pub fn expire(&mut self, now: Time, mut on_expired: impl FnMut(Expired)) {
        let keep_alive = self.keep_alive();
        if self.idle_since_bound.saturating_add(keep_alive) > now {
            return; // nothing idle, or nothing due yet
        }
        let mut removable = self.instance_count().saturating_sub(self.floor());
        let mut bound = Time::MAX;
        let idle = self.idle_len();
        let mut kept = 0;
        for i in 0..idle {
            let (instance, since) = self.entries[i];
            let at = since.saturating_add(keep_alive);
            if at <= now && removable > 0 {
                removable -= 1;
                on_expired(Expired { instance, at });
            } else {
                bound = bound.min(since);
                self.entries[kept] = (instance, since);
                kept += 1;
            }
        }
        if kept < idle {
            self.entries.drain(kept..idle);
            self.idle_len = kept as u32;
        }
        self.idle_since_bound = bound;
    }

    /// `instance` is idle from `since`, in id order (a new entry).
    fn insert_idle(&mut self, instance: InstanceId, since: Time) {
        self.entries.insert(self.idle_len(), (instance, since));
        self.settle_idle(since);
    }

    /// The entry just after the idle ones (the first busy one) becomes
    /// idle from `since`, moved to its place in id order.
    fn settle_idle(&mut self, since: Time) {
        let idle = self.idle_len();
        let instance = self.entries[idle].0;
        let at = self.entries[..idle].partition_point(|&(id, _)| id < instance);
        self.entries[at..=idle].rotate_right(1);
        self.entries[at].1 = since;
        self.idle_len += 1;
        self.idle_since_bound = self.idle_since_bound.min(since);
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
        if self.idle_len == 0 {
            let id = mint();
            self.entries.push((id, NOT_IDLE));
            return Acquired::Cold(id);
        }
        if self.rules.order == ReuseOrder::Oldest {
            // The oldest goes last among the idle, which stay in order.
            let idle = self.idle_len();
            self.entries[..idle].rotate_left(1);
        }
        // The last idle entry becomes the first busy one.
        self.idle_len -= 1;
        let entry = &mut self.entries[self.idle_len as usize];
        if self.rules.extend_on_reuse {
            entry.1 = NOT_IDLE;
        }
        Acquired::Warm(entry.0)
    }

    /// The index in `entries` of busy `instance`.
    fn busy_index(&self, instance: InstanceId) -> Result<usize, NotBusy> {
        let idle = self.idle_len();
        self.entries[idle..]
            .iter()
            .position(|&(id, _)| id == instance)
            .map(|i| idle + i)
            .ok_or(NotBusy(instance))
    }

    /// The call on `instance` finished at `now`: the instance becomes idle
    /// and will expire at `now + keep_alive` unless reused.
    /// (Without `extend_on_reuse`, an instance that was idle before keeps
    /// the time it first became idle, so it may be due at once.)
    pub fn release(&mut self, instance: InstanceId, now: Time) -> Result<(), NotBusy> {
        let j = self.busy_index(instance)?;
        let idle = self.idle_len();
        // It moves to the front of the busy ones, then into the idle ones.
        self.entries.swap(j, idle);
        let first_idle = self.entries[idle].1;
        let since = if first_idle == NOT_IDLE {
            now
        } else {
            first_idle
        };
        self.settle_idle(since);
        Ok(())
    }

    /// A busy instance is gone without becoming idle (its start failed, or
    /// it died): forgets it.
    pub fn discard(&mut self, instance: InstanceId) -> Result<(), NotBusy> {
        let j = self.busy_index(instance)?;
        // The last entry is busy too (or `j` itself).
        self.entries.swap_remove(j);
        Ok(())
    }

    /// Removes every idle instance at once (their image went), calling
    /// `on_removed` for each; busy ones stay.
    pub fn remove_idle(&mut self, mut on_removed: impl FnMut(InstanceId)) {
        for (id, _) in self.entries.drain(..self.idle_len as usize) {
            on_removed(id);
        }
        self.idle_len = 0;
        self.idle_since_bound = Time::MAX;
    }

    /// An instance started with no call (pre-warmed) is idle from `now`.
    pub fn add_idle(&mut self, instance: InstanceId, now: Time) {
        self.insert_idle(instance, now);
    }

    /// Removes one idle instance (evicted); false if it is not idle here.
    pub fn remove_idle_instance(&mut self, instance: InstanceId) -> bool {
        match self.idle().iter().position(|&(id, _)| id == instance) {
            Some(i) => {
                self.entries.remove(i);
                self.idle_len -= 1;
                true
            }
            None => false,
        }
    }

    /// Idle instances, ascending by id, with the time they became idle.
    pub fn idle(&self) -> &[(InstanceId, Time)] {
        &self.entries[..self.idle_len()]
    }

    /// When the next idle instance expires, if any is idle (and the floor
    /// lets one expire).
    pub fn next_expiry(&self) -> Option<Time> {
        if self.instance_count() <= self.floor() {
            return None;
        }
        let keep_alive = self.keep_alive();
        self.idle()
            .iter()
            .map(|&(_, since)| since.saturating_add(keep_alive))
            .min()
    }

    pub fn idle_count(&self) -> usize {
        self.idle_len()
    }

    pub fn busy_count(&self) -> usize {
        self.entries.len() - self.idle_len()
    }

    /// Instances that exist (busy or idle).
    pub fn instance_count(&self) -> usize {
        self.entries.len()
    }

    /// Removes every instance (e.g. `/clear`); busy ones are forgotten too.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.idle_len = 0;
        self.idle_since_bound = Time::MAX;
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
        assert_eq!((p.busy_count(), p.idle_count()), (1, 0));
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
        assert_eq!(p.instance_count(), 0);
        assert!(p.acquire(s(23), |_| {}).is_cold());
    }

    /// The pool as first written (separate idle, busy and first-idle
    /// lists), the reference the compact one must agree with.
    #[derive(Debug, Default)]
    struct Reference {
        keep_alive: Duration,
        rules: ReuseRules,
        idle: Vec<(InstanceId, Time)>,
        busy: Vec<InstanceId>,
        first_idle: Vec<(InstanceId, Time)>,
        floor: usize,
    }

    impl Reference {
        fn expire(&mut self, now: Time) -> Vec<Expired> {
            let mut removable = (self.idle.len() + self.busy.len()).saturating_sub(self.floor);
            let mut out = Vec::new();
            let keep_alive = self.keep_alive;
            self.idle.retain(|&(instance, since)| {
                let at = since.saturating_add(keep_alive);
                if at <= now && removable > 0 {
                    removable -= 1;
                    out.push(Expired { instance, at });
                    false
                } else {
                    true
                }
            });
            out
        }

        fn insert_idle(&mut self, instance: InstanceId, since: Time) {
            let at = self.idle.partition_point(|&(id, _)| id < instance);
            self.idle.insert(at, (instance, since));
        }

        fn take_first_idle(&mut self, instance: InstanceId) -> Option<Time> {
            let i = self.first_idle.iter().position(|&(id, _)| id == instance)?;
            Some(self.first_idle.swap_remove(i).1)
        }

        fn acquire(&mut self, now: Time, next: &mut InstanceId) -> (Acquired, Vec<Expired>) {
            let expired = self.expire(now);
            let reused = match self.rules.order {
                ReuseOrder::Newest => self.idle.pop(),
                ReuseOrder::Oldest if self.idle.is_empty() => None,
                ReuseOrder::Oldest => Some(self.idle.remove(0)),
            };
            let got = match reused {
                Some((id, since)) => {
                    if !self.rules.extend_on_reuse {
                        self.first_idle.push((id, since));
                    }
                    Acquired::Warm(id)
                }
                None => {
                    *next += 1;
                    Acquired::Cold(*next - 1)
                }
            };
            self.busy.push(got.instance());
            (got, expired)
        }

        fn discard(&mut self, instance: InstanceId) -> Result<(), NotBusy> {
            let pos = self
                .busy
                .iter()
                .position(|&b| b == instance)
                .ok_or(NotBusy(instance))?;
            self.busy.swap_remove(pos);
            self.take_first_idle(instance);
            Ok(())
        }

        fn release(&mut self, instance: InstanceId, now: Time) -> Result<(), NotBusy> {
            if !self.busy.contains(&instance) {
                return Err(NotBusy(instance));
            }
            let since = self.take_first_idle(instance).unwrap_or(now);
            self.discard(instance)?;
            self.insert_idle(instance, since);
            Ok(())
        }

        fn next_expiry(&self) -> Option<Time> {
            if self.idle.len() + self.busy.len() <= self.floor {
                return None;
            }
            self.idle
                .iter()
                .map(|&(_, since)| since.saturating_add(self.keep_alive))
                .min()
        }
    }

    proptest::proptest! {
        /// Any sequence of calls gets the same answers from the compact
        /// pool as from the reference, under every reuse rule.
        #[test]
        fn the_compact_pool_answers_as_the_reference(
            newest in proptest::bool::ANY,
            extend in proptest::bool::ANY,
            ops in proptest::collection::vec((0u8..10, 0u64..40, 0u64..8), 1..300),
        ) {
            let rules = ReuseRules {
                order: if newest { ReuseOrder::Newest } else { ReuseOrder::Oldest },
                extend_on_reuse: extend,
            };
            let mut pool = KeepAlivePool::new(d(10)).with_rules(rules);
            let mut reference = Reference { keep_alive: d(10), rules, ..Reference::default() };
            let (mut now, mut next, mut next_ref): (u64, InstanceId, InstanceId) = (0, 0, 0);
            for (op, step, pick) in ops {
                now += step;
                let t = Time::from_millis(now * 500);
                // One of the 8 newest ids (busy, idle or gone), or one
                // never minted.
                let id = if pick == 7 { next } else { next.saturating_sub(pick + 1) };
                match op {
                    0..=2 => {
                        let mut expired = Vec::new();
                        let got = pool.acquire(t, |e| expired.push(e), || {
                            next += 1;
                            next - 1
                        });
                        proptest::prop_assert_eq!((got, expired), reference.acquire(t, &mut next_ref));
                    }
                    3..=4 => proptest::prop_assert_eq!(pool.release(id, t), reference.release(id, t)),
                    5 => proptest::prop_assert_eq!(pool.discard(id), reference.discard(id)),
                    6 => {
                        let mut expired = Vec::new();
                        pool.expire(t, |e| expired.push(e));
                        proptest::prop_assert_eq!(expired, reference.expire(t));
                    }
                    7 => {
                        let floor = (pick % 3) as usize;
                        pool.set_floor(floor);
                        reference.floor = floor;
                        let keep_alive = Duration::from_millis(step * 700 + 1);
                        pool.set_keep_alive(keep_alive);
                        reference.keep_alive = keep_alive;
                    }
                    8 => {
                        let removed = pool.remove_idle_instance(id);
                        let i = reference.idle.iter().position(|&(x, _)| x == id);
                        proptest::prop_assert_eq!(removed, i.is_some());
                        if let Some(i) = i {
                            reference.idle.remove(i);
                        }
                    }
                    _ => {
                        // A pre-warmed instance, with a fresh id.
                        next += 1;
                        next_ref += 1;
                        pool.add_idle(next - 1, t);
                        reference.insert_idle(next - 1, t);
                    }
                }
                proptest::prop_assert_eq!(pool.idle(), &reference.idle[..]);
                proptest::prop_assert_eq!(pool.busy_count(), reference.busy.len());
                proptest::prop_assert_eq!(pool.next_expiry(), reference.next_expiry());
                proptest::prop_assert_eq!(pool.keep_alive(), reference.keep_alive);
            }
            let mut removed = Vec::new();
            pool.remove_idle(|id| removed.push(id));
            let expected: Vec<_> = reference.idle.iter().map(|&(id, _)| id).collect();
            proptest::prop_assert_eq!(removed, expected);
            proptest::prop_assert_eq!(pool.instance_count(), reference.busy.len());
        }
    }
}
