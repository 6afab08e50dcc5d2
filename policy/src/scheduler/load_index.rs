//! In-flight counts with an O(1) "least loaded online node" query.
//!
//! [`LoadIndex`] wraps the shared [`NodeLoads`] bookkeeping (online set,
//! in-flight count and capacity per id) and keeps beside it a small
//! tournament tree (a binary min-heap laid out by node id) whose leaves hold
//! `(load, id)` for online nodes and "infinite" for others. Every
//! `started`/`finished`/membership change updates one leaf and walks
//! `log2(nodes)` levels up; the least loaded online node, lowest id on ties,
//! is then the root. That is the same answer as [`NodeLoads::least_loaded`]
//! (a linear scan), which the discrete-event simulator cannot afford at a
//! thousand nodes and millions of calls per second.
//!
//! Every scheduler's bookkeeping ([`super::Tracked`] keeps one); read by
//! `ll`, by the least-loaded fallbacks of `pasch`, `ours` and `tradeoff`,
//! and by `ch` to answer "is every node full?" in O(1).

use super::{Membership, NodeId, NodeLoads};

/// Key of an empty or offline leaf: larger than any `(load, id)` key.
const VACANT: u64 = u64::MAX;

/// [`NodeLoads`] plus an index of the least loaded online node.
#[derive(Debug, Clone, Default)]
pub struct LoadIndex {
    loads: NodeLoads,
    /// Tournament tree: `tree[1]` is the root, leaves start at `leaves`;
    /// each entry is `load << 32 | id` (or [`VACANT`]).
    tree: Vec<u64>,
    leaves: usize,
}

impl LoadIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a membership change. Returns true when the online set
    /// changed or a member's resources did ([`NodeLoads::apply`]).
    pub fn apply(&mut self, change: &Membership) -> bool {
        let changed = self.loads.apply(change);
        let id = match change {
            Membership::Insert(info) => info.id,
            Membership::Remove(id) => *id,
        };
        self.refresh(id);
        changed
    }

    /// Online members, ascending.
    pub fn online(&self) -> &[NodeId] {
        self.loads.online()
    }

    pub fn is_online(&self, id: NodeId) -> bool {
        self.loads.is_online(id)
    }

    /// In-flight calls on `id`, online or not (0 for an unknown id).
    pub fn load(&self, id: NodeId) -> u32 {
        self.loads.load(id)
    }

    /// In-flight calls if `id` is online.
    pub fn member_load(&self, id: NodeId) -> Option<u32> {
        self.loads.member_load(id)
    }

    /// Capacity told at insertion (0 for an unknown id).
    pub fn capacity(&self, id: NodeId) -> u32 {
        self.loads.capacity(id)
    }

    /// Cores told at insertion (0 for an unknown id).
    pub fn cores(&self, id: NodeId) -> u32 {
        self.loads.cores(id)
    }

    /// Memory (MB) told at insertion (0 for an unknown id).
    pub fn memory_mb(&self, id: NodeId) -> u32 {
        self.loads.memory_mb(id)
    }

    /// Counts one more call on `id`.
    pub fn started(&mut self, id: NodeId) {
        self.loads.started(id);
        self.refresh(id);
    }

    /// Counts one call fewer on `id` (never below zero).
    pub fn finished(&mut self, id: NodeId) {
        self.loads.finished(id);
        self.refresh(id);
    }

    /// The least loaded online node, lowest id first on ties.
    pub fn least_loaded(&self) -> Option<NodeId> {
        match self.tree.get(1).copied().unwrap_or(VACANT) {
            VACANT => None,
            key => Some(key as u32),
        }
    }

    /// The load of [`Self::least_loaded`].
    pub fn min_load(&self) -> Option<u32> {
        match self.tree.get(1).copied().unwrap_or(VACANT) {
            VACANT => None,
            key => Some((key >> 32) as u32),
        }
    }

    /// The least loaded of `candidates`, first one on ties (a linear scan).
    pub fn least_loaded_of(&self, candidates: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
        self.loads.least_loaded_of(candidates)
    }

    /// Recomputes the leaf of `id` and its ancestors.
    fn refresh(&mut self, id: NodeId) {
        let i = id as usize;
        if i >= self.leaves {
            self.grow(i + 1);
        }
        let key = if self.loads.is_online(id) {
            (u64::from(self.loads.load(id)) << 32) | u64::from(id)
        } else {
            VACANT
        };
        let mut pos = self.leaves + i;
        self.tree[pos] = key;
        while pos > 1 {
            pos /= 2;
            let best = self.tree[2 * pos].min(self.tree[2 * pos + 1]);
            if self.tree[pos] == best {
                break;
            }
            self.tree[pos] = best;
        }
    }

    /// Rebuilds the tree with room for at least `ids` leaves.
    fn grow(&mut self, ids: usize) {
        let leaves = ids.next_power_of_two().max(self.leaves * 2).max(8);
        let mut tree = vec![VACANT; 2 * leaves];
        for &id in self.loads.online() {
            tree[leaves + id as usize] = (u64::from(self.loads.load(id)) << 32) | u64::from(id);
        }
        for pos in (1..leaves).rev() {
            tree[pos] = tree[2 * pos].min(tree[2 * pos + 1]);
        }
        self.tree = tree;
        self.leaves = leaves;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::NodeInfo;

    #[test]
    fn root_is_the_least_loaded_online_node_lowest_id_first() {
        let mut ix = LoadIndex::new();
        assert_eq!(ix.least_loaded(), None);
        for id in [3, 0, 20] {
            ix.apply(&Membership::Insert(NodeInfo::new(id)));
        }
        assert_eq!(ix.least_loaded(), Some(0));
        ix.started(0);
        assert_eq!(ix.least_loaded(), Some(3));
        ix.started(3);
        ix.started(20);
        assert_eq!(ix.least_loaded(), Some(0), "all at 1: lowest id");
        ix.apply(&Membership::Remove(0));
        assert_eq!(ix.least_loaded(), Some(3));
        ix.finished(20);
        assert_eq!(ix.least_loaded(), Some(20));
        assert_eq!(ix.min_load(), Some(0));
        ix.finished(0);
        ix.apply(&Membership::Insert(NodeInfo::new(0)));
        assert_eq!(ix.least_loaded(), Some(0), "back online with no calls");
    }

    #[test]
    fn agrees_with_the_linear_scan() {
        let mut ix = LoadIndex::new();
        let mut scan = NodeLoads::new();
        let mut x: u64 = 12345;
        for step in 0..5000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 37) as NodeId;
            match x % 5 {
                0 => {
                    let c = Membership::Insert(NodeInfo::new(id));
                    ix.apply(&c);
                    scan.apply(&c);
                }
                1 if step % 3 == 0 => {
                    let c = Membership::Remove(id);
                    ix.apply(&c);
                    scan.apply(&c);
                }
                2 | 3 => {
                    ix.started(id);
                    scan.started(id);
                }
                _ => {
                    ix.finished(id);
                    scan.finished(id);
                }
            }
            assert_eq!(ix.least_loaded(), scan.least_loaded(), "step {step}");
        }
    }
}
