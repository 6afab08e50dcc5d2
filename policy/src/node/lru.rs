//! Least-recently-used order of idle keep-alive instances: the eviction
//! order of the `lru` keep-alive policy under a node memory limit.
//!
//! When a cold start would exceed the node's memory, the node model
//! removes the idle instance that has been idle longest (its last call
//! ended first), then the next, until the new instance fits. This is the
//! LRU baseline of FaasCache (Fuerst & Sharma, "FaasCache: Keeping
//! Serverless Computing Alive with Greedy-Dual Caching", ASPLOS 2021,
//! §4), which compares it with Greedy-Dual ([`super::greedy_dual`]).
//!
//! Ties (instances idle since the same instant) break by the smaller
//! instance id, i.e. the older instance. Pure: times are arguments.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use super::InstanceId;
use crate::time::Time;

/// Idle instances by the time they became idle.
#[derive(Debug, Clone, Default)]
pub struct IdleLru {
    order: BTreeSet<(Time, InstanceId)>,
    since: FxHashMap<InstanceId, Time>,
}

impl IdleLru {
    pub fn new() -> Self {
        Self::default()
    }

    /// `instance` became idle at `since` (replaces an earlier entry).
    pub fn insert(&mut self, instance: InstanceId, since: Time) {
        self.remove(instance);
        self.order.insert((since, instance));
        self.since.insert(instance, since);
    }

    /// `instance` is no longer an eviction candidate (reused or removed);
    /// returns whether it was one.
    pub fn remove(&mut self, instance: InstanceId) -> bool {
        match self.since.remove(&instance) {
            Some(t) => self.order.remove(&(t, instance)),
            None => false,
        }
    }

    /// Takes out the least recently used idle instance.
    pub fn pop_lowest(&mut self) -> Option<InstanceId> {
        let (_, id) = self.order.pop_first()?;
        self.since.remove(&id);
        Some(id)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn clear(&mut self) {
        self.order.clear();
        self.since.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_longest_idle_first_ties_by_older_instance() {
        let mut l = IdleLru::new();
        l.insert(3, Time::from_secs(5));
        l.insert(1, Time::from_secs(7));
        l.insert(2, Time::from_secs(5));
        // Reused and idle again: it moves to the back.
        l.insert(3, Time::from_secs(9));
        assert_eq!(l.len(), 3);
        assert_eq!(l.pop_lowest(), Some(2));
        assert_eq!(l.pop_lowest(), Some(1));
        assert!(l.remove(3));
        assert!(!l.remove(3));
        assert_eq!(l.pop_lowest(), None);
        assert!(l.is_empty());
    }
}
