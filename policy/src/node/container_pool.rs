//! Pre-warmed instance pool for the most recently used functions.
//!
//! From HotFunctions (Prev/HotFunctions, `worker_front/runner.go`
//! `manageCaches` and `pre_warming.go`): when `CONTAINER_POOL_LIMIT` is set
//! (-1 = off), after every call the worker ranks functions by recency (a
//! function with a call in flight ranks first) and keeps a pool of
//! `CONTAINER_POOL_NUM` (default 6) prepared instances for each of the first
//! `CONTAINER_POOL_LIMIT` functions, and no pool for the others. A call takes
//! a pooled instance of its function when one is ready (`UsingPooledContainer`)
//! and that instance serves only this call (it is not returned to the pool);
//! the next reconciliation tops the pool up again.
//!
//! The policy counts instances per function in two states: *pending*
//! (creation ordered, not ready yet) and *ready*. The caller applies a
//! [`PoolPlan`] and reports each creation with [`ContainerPool::instance_ready`]
//! (which says whether the instance is still wanted: the function may have
//! dropped out of the top ranks meanwhile) or [`ContainerPool::instance_failed`].
//! Ties in recency are broken by the function's key (its name, or the node
//! model's id). Time is an argument.

use crate::time::Time;
use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FunctionPool {
    last_used: Time,
    in_flight: u32,
    ready: usize,
    pending: usize,
}

/// Pool state for every function seen (named by keys of type `K`: the
/// node model's ids, or names).
#[derive(Debug, Clone)]
pub struct ContainerPool<K = String> {
    function_limit: Option<usize>,
    per_function: usize,
    functions: BTreeMap<K, FunctionPool>,
}

/// What the caller must do to reach the pool's target state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan<K = String> {
    /// Create this many instances of each function (already counted pending).
    pub create: Vec<(K, usize)>,
    /// Remove this many *ready* instances of each function (already
    /// uncounted). Pending ones of these functions are refused on arrival.
    pub remove: Vec<(K, usize)>,
}

impl<K> Default for PoolPlan<K> {
    fn default() -> Self {
        Self {
            create: Vec::new(),
            remove: Vec::new(),
        }
    }
}

impl<K> PoolPlan<K> {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.remove.is_empty()
    }
}

impl<K: Ord + Clone> ContainerPool<K> {
    /// `function_limit`: pools for that many most recent functions (`None`
    /// = pooling off); `per_function`: pool size (`CONTAINER_POOL_NUM`).
    pub fn new(function_limit: Option<usize>, per_function: usize) -> Self {
        Self {
            function_limit,
            per_function,
            functions: BTreeMap::new(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.function_limit.is_some()
    }

    /// Changes the limits; returns the plan that reaches the new target.
    #[must_use = "the plan must be carried out"]
    pub fn set_limits(
        &mut self,
        function_limit: Option<usize>,
        per_function: usize,
    ) -> PoolPlan<K> {
        self.function_limit = function_limit;
        self.per_function = per_function;
        self.reconcile()
    }

    /// A call of `function` arrives: returns true if it takes a ready
    /// pooled instance (the caller removes that instance after the call).
    pub fn call_started<Q>(&mut self, function: &Q, now: Time) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ToOwned<Owned = K> + ?Sized,
    {
        if !self.functions.contains_key(function) {
            self.functions
                .insert(function.to_owned(), FunctionPool::default());
        }
        let Some(p) = self.functions.get_mut(function) else {
            return false;
        };
        p.in_flight += 1;
        p.last_used = p.last_used.max(now);
        if p.ready > 0 {
            p.ready -= 1;
            true
        } else {
            false
        }
    }

    /// A call of `function` ended: stamps its use and returns the plan.
    #[must_use = "the plan must be carried out"]
    pub fn call_finished<Q>(&mut self, function: &Q, now: Time) -> PoolPlan<K>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(p) = self.functions.get_mut(function) {
            p.in_flight = p.in_flight.saturating_sub(1);
            p.last_used = p.last_used.max(now);
        }
        if self.function_limit.is_none() {
            return PoolPlan::default();
        }
        self.reconcile()
    }

    /// A pending instance of `function` is ready. Returns true if it joins
    /// the pool; false if it is no longer wanted (the caller removes it).
    pub fn instance_ready<Q>(&mut self, function: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let wanted = self.target_of(function);
        let Some(p) = self.functions.get_mut(function) else {
            return false;
        };
        if p.pending == 0 {
            // Not ordered by a plan (or forgotten since): not wanted.
            return false;
        }
        p.pending -= 1;
        if p.ready < wanted {
            p.ready += 1;
            true
        } else {
            false
        }
    }

    /// A pending instance of `function` could not be created.
    pub fn instance_failed<Q>(&mut self, function: &Q)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Some(p) = self.functions.get_mut(function) {
            p.pending = p.pending.saturating_sub(1);
        }
    }

    /// A function can no longer be pooled (its image was evicted): returns
    /// how many ready instances the caller must remove. It may be pooled
    /// again after its next call.
    pub fn forget<Q>(&mut self, function: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.functions.remove(function) {
            // Pending ones are refused by `instance_ready` (unknown function).
            Some(p) => p.ready,
            None => 0,
        }
    }

    /// Forgets everything (`/clear`); the caller removes all instances.
    pub fn clear(&mut self) {
        self.functions.clear();
    }

    /// Ready instances of `function`.
    pub fn ready<Q>(&self, function: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.functions.get(function).map_or(0, |p| p.ready)
    }

    /// Pending instances of `function`.
    pub fn pending<Q>(&self, function: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.functions.get(function).map_or(0, |p| p.pending)
    }

    /// Functions that should have a pool now, most recent first.
    pub fn pooled_functions(&self) -> Vec<K> {
        let Some(limit) = self.function_limit else {
            return Vec::new();
        };
        let mut v: Vec<Rank<'_, K>> = self.functions.iter().map(|(n, p)| rank(n, p)).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter()
            .take(limit)
            .map(|(_, _, Reverse(n))| n.clone())
            .collect()
    }

    /// Whether `function` ranks among the first `function_limit` (no
    /// allocation: counts the functions ranked above it).
    fn in_top<Q>(&self, function: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (Some(limit), Some(p)) = (self.function_limit, self.functions.get(function)) else {
            return false;
        };
        let mine = rank(function, p);
        self.functions
            .iter()
            .filter(|(n, q)| rank((*n).borrow(), q) > mine)
            .take(limit)
            .count()
            < limit
    }

    fn target_of<Q>(&self, function: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if self.in_top(function) {
            self.per_function
        } else {
            0
        }
    }

    /// Brings every function to its target: `per_function` (ready +
    /// pending) for the top-ranked, none for the rest.
    #[must_use = "the plan must be carried out"]
    pub fn reconcile(&mut self) -> PoolPlan<K> {
        // The lowest rank still in the top (ranks are unique: the name
        // breaks ties), or None when no function may be pooled.
        let threshold: Option<(bool, Time, K)> = match self.function_limit {
            Some(limit) if limit > 0 => {
                let mut v: Vec<Rank<'_, K>> =
                    self.functions.iter().map(|(n, p)| rank(n, p)).collect();
                v.sort_unstable_by(|a, b| b.cmp(a));
                v.get(limit - 1)
                    .or(v.last())
                    .map(|(f, t, Reverse(n))| (*f, *t, (*n).clone()))
            }
            _ => None,
        };
        let per_function = self.per_function;
        let mut plan = PoolPlan::default();
        for (name, p) in self.functions.iter_mut() {
            let in_top = threshold
                .as_ref()
                .is_some_and(|(f, t, n)| rank(name, p) >= (*f, *t, Reverse(n)));
            let target = if in_top { per_function } else { 0 };
            let have = p.ready + p.pending;
            if have < target {
                plan.create.push((name.clone(), target - have));
                p.pending += target - have;
            } else if p.ready > target {
                plan.remove.push((name.clone(), p.ready - target));
                p.ready = target;
            }
        }
        plan
    }
}

/// Pool priority: a call in flight first, then the most recent use, then
/// the key (smaller keys first: names in order, or the node model's ids in
/// the order functions were first seen), so that ranks are unique.
type Rank<'a, Q> = (bool, Time, Reverse<&'a Q>);

fn rank<'a, Q: ?Sized>(name: &'a Q, p: &FunctionPool) -> Rank<'a, Q> {
    (p.in_flight > 0, p.last_used, Reverse(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: u64) -> Time {
        Time::from_secs(x)
    }

    /// Applies a plan as if every creation succeeded at once.
    fn apply(pool: &mut ContainerPool, plan: &PoolPlan) {
        for (f, n) in &plan.create {
            for _ in 0..*n {
                pool.instance_ready(f);
            }
        }
    }

    #[test]
    fn off_by_default_never_pools() {
        let mut p = ContainerPool::new(None, 6);
        assert!(!p.call_started("A", s(0)));
        assert!(p.call_finished("A", s(1)).is_empty());
        assert!(!p.call_started("A", s(2)));
    }

    #[test]
    fn pools_the_most_recent_functions_and_tops_up() {
        let mut p = ContainerPool::new(Some(1), 2);
        assert!(!p.call_started("A", s(0)));
        let plan = p.call_finished("A", s(1));
        assert_eq!(plan.create, vec![("A".to_string(), 2)]);
        apply(&mut p, &plan);
        assert_eq!(p.ready("A"), 2);
        // Second call of A takes a pooled instance; the pool is topped up.
        assert!(p.call_started("A", s(2)));
        assert_eq!(p.ready("A"), 1);
        let plan = p.call_finished("A", s(3));
        assert_eq!(plan.create, vec![("A".to_string(), 1)]);
        apply(&mut p, &plan);
        // B becomes the most recent: A's pool goes, B gets one.
        assert!(!p.call_started("B", s(4)));
        let plan = p.call_finished("B", s(5));
        assert_eq!(plan.remove, vec![("A".to_string(), 2)]);
        assert_eq!(plan.create, vec![("B".to_string(), 2)]);
        assert_eq!(p.pooled_functions(), ["B"]);
    }

    #[test]
    fn late_instances_of_a_dropped_function_are_refused() {
        let mut p = ContainerPool::new(Some(1), 1);
        p.call_started("A", s(0));
        let plan = p.call_finished("A", s(1));
        assert_eq!(p.pending("A"), 1);
        p.call_started("B", s(2));
        let plan_b = p.call_finished("B", s(3));
        assert_eq!(plan_b.create, vec![("B".to_string(), 1)]);
        // A's instance arrives after A dropped out: not wanted.
        assert!(!p.instance_ready("A"));
        assert!(plan.create.len() == 1);
        assert!(p.instance_ready("B"));
        assert_eq!(p.forget("B"), 1);
        assert!(!p.instance_ready("B"));
    }

    proptest! {
        /// Ready + pending never exceed the pool size, pools exist only for
        /// at most `limit` functions once reconciled, and a pooled
        /// instance is only handed out when one was ready.
        #[test]
        fn pool_bounds_hold(
            limit in 0usize..4,
            per in 0usize..4,
            ops in prop::collection::vec((0usize..6, 0u8..3), 1..200),
        ) {
            let mut p = ContainerPool::new(Some(limit), per);
            let mut open: Vec<String> = Vec::new();
            for (t, (f, op)) in ops.into_iter().enumerate() {
                let name = format!("F{f}");
                match op {
                    0 => {
                        let before = p.ready(&name);
                        let took = p.call_started(&name, s(t as u64));
                        prop_assert_eq!(took, before > 0);
                        open.push(name);
                    }
                    1 if !open.is_empty() => {
                        let done = open.remove(f % open.len());
                        let plan = p.call_finished(&done, s(t as u64));
                        apply(&mut p, &plan);
                        let pooled = p.pooled_functions();
                        prop_assert!(pooled.len() <= limit);
                        for g in 0..6 {
                            let g = format!("F{g}");
                            prop_assert_eq!(p.in_top(&g), pooled.contains(&g));
                        }
                        for g in 0..6 {
                            let g = format!("F{g}");
                            let n = p.ready(&g) + p.pending(&g);
                            prop_assert!(n <= per);
                            if !pooled.contains(&g) { prop_assert_eq!(p.ready(&g), 0); }
                        }
                    }
                    _ => { p.instance_ready(&name); }
                }
            }
        }
    }
}
