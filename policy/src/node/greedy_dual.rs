//! Greedy-Dual keep-alive: the eviction order of FaasCache.
//!
//! Source: Fuerst & Sharma, "FaasCache: Keeping Serverless Computing Alive
//! with Greedy-Dual Caching" (ASPLOS 2021), §4.2. Keeping a function's
//! instance warm is caching it; when memory runs out, the instance with the
//! lowest priority is evicted, where
//!
//! ```text
//! priority = clock + frequency × cost / size
//! ```
//!
//! - `frequency`: calls of the function (on this node) since it last had no
//!   instance (FaaSCache resets it when all of a function's containers are
//!   gone; the node model does the same);
//! - `cost`: its cold-start time minus its warm-start time, the time a warm
//!   instance saves; the node model learns it from its own observations:
//!   the mean time an instance of the function took to start (the instance
//!   start is exactly what a warm call does not pay);
//! - `size`: the function's memory (MB);
//! - `clock`: starts at 0; when an instance is evicted, the clock rises to
//!   its priority, so instances used after an eviction outrank those that
//!   sat idle since before it (aging, as in Greedy-Dual-Size).
//!
//! An instance's priority is computed when it is used (the node model does
//! it when the instance becomes idle after a call, or after pre-warming)
//! with the clock of that moment. Ties break by the smaller instance id
//! (the older instance).
//!
//! This type keeps the candidates (idle instances) and the clock; it does
//! no I/O and reads no clock.

use super::InstanceId;

/// Idle instances with their Greedy-Dual priorities, and the clock.
#[derive(Debug, Clone, Default)]
pub struct GreedyDual {
    clock: f64,
    /// Candidates (few: bounded by the node's memory), unordered.
    entries: Vec<(InstanceId, f64)>,
}

impl GreedyDual {
    pub fn new() -> Self {
        Self::default()
    }

    /// The clock: the priority of the last eviction (0 before any).
    pub fn clock(&self) -> f64 {
        self.clock
    }

    /// The priority of an instance used now: `clock + frequency × cost /
    /// size`. A size of 0 counts as 1 MB.
    pub fn priority(&self, frequency: u64, cost_ms: f64, size_mb: u32) -> f64 {
        self.clock + frequency as f64 * cost_ms.max(0.0) / f64::from(size_mb.max(1))
    }

    /// `instance` is idle with `priority` (replaces an earlier entry).
    pub fn insert(&mut self, instance: InstanceId, priority: f64) {
        self.remove(instance);
        self.entries.push((instance, priority));
    }

    /// `instance` is no longer a candidate (reused or removed); returns
    /// whether it was one.
    pub fn remove(&mut self, instance: InstanceId) -> bool {
        match self.entries.iter().position(|&(id, _)| id == instance) {
            Some(i) => {
                self.entries.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Evicts the lowest-priority instance: takes it out and raises the
    /// clock to its priority.
    pub fn pop_lowest(&mut self) -> Option<(InstanceId, f64)> {
        let i = (0..self.entries.len()).min_by(|&a, &b| {
            let (ia, pa) = self.entries[a];
            let (ib, pb) = self.entries[b];
            pa.total_cmp(&pb).then(ia.cmp(&ib))
        })?;
        let (id, p) = self.entries.swap_remove(i);
        self.clock = self.clock.max(p);
        Some((id, p))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every candidate and resets the clock.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.clock = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-worked example. Three idle instances at clock 0:
    ///
    /// | instance | frequency | cost (ms) | size (MB) | priority |
    /// |---|---|---|---|---|
    /// | 1 (A) | 1 | 1000 | 100 | 0 + 1·1000/100 = 10 |
    /// | 2 (B) | 3 | 1000 | 200 | 0 + 3·1000/200 = 15 |
    /// | 3 (C) | 1 | 100  | 50  | 0 + 1·100/50 = 2 |
    ///
    /// C goes first (clock → 2). D (1, 500 ms, 100 MB) becomes idle at
    /// clock 2: 2 + 5 = 7, below A: D goes next (clock → 7). A is used
    /// again (frequency 2): 7 + 2·1000/100 = 27, so B (15) goes before A.
    #[test]
    fn hand_worked_eviction_order() {
        let mut gd = GreedyDual::new();
        for (id, f, c, s) in [(1, 1, 1000.0, 100), (2, 3, 1000.0, 200), (3, 1, 100.0, 50)] {
            let p = gd.priority(f, c, s);
            gd.insert(id, p);
        }
        assert_eq!(gd.pop_lowest(), Some((3, 2.0)));
        assert_eq!(gd.clock(), 2.0);
        let d = gd.priority(1, 500.0, 100);
        assert_eq!(d, 7.0);
        gd.insert(4, d);
        assert_eq!(gd.pop_lowest(), Some((4, 7.0)));
        assert_eq!(gd.clock(), 7.0);
        // A is reused (no longer a candidate), then idle again.
        assert!(gd.remove(1));
        let a = gd.priority(2, 1000.0, 100);
        assert_eq!(a, 27.0);
        gd.insert(1, a);
        assert_eq!(gd.pop_lowest(), Some((2, 15.0)));
        assert_eq!(gd.clock(), 15.0);
        assert_eq!(gd.pop_lowest(), Some((1, 27.0)));
        assert_eq!(gd.pop_lowest(), None);
        assert_eq!(gd.clock(), 27.0);
    }

    #[test]
    fn ties_break_by_the_older_instance_and_the_clock_never_falls() {
        let mut gd = GreedyDual::new();
        gd.insert(9, 5.0);
        gd.insert(4, 5.0);
        assert_eq!(gd.pop_lowest(), Some((4, 5.0)));
        // A priority computed before the rise is below the clock now.
        gd.insert(7, 1.0);
        assert_eq!(gd.pop_lowest(), Some((7, 1.0)));
        assert_eq!(gd.clock(), 5.0, "the clock does not go back");
        assert_eq!(gd.priority(0, 100.0, 0), 5.0);
        assert_eq!(gd.priority(2, 100.0, 0), 205.0, "size 0 counts as 1 MB");
    }
}
