//! In-flight counts with an O(1) "least loaded online node" query.
//!
//! [`LoadIndex`] wraps the shared [`NodeLoads`] bookkeeping (online set,
//! in-flight count and capacity per id) and keeps beside it a small
//! tournament tree (a binary min-heap laid out by node id) whose leaves hold
//! `(load, id)` for online nodes and "infinite" for others. Every
//! `started`/`finished`/membership change updates one leaf; the next read
//! walks the changed leaves' paths `log2(nodes)` levels up (at most until
//! an entry stays as it was), and the least loaded online node, lowest id
//! on ties, is then the root. That is the same answer as
//! [`NodeLoads::least_loaded`] (a linear scan), which the discrete-event
//! simulator cannot afford at a thousand nodes and millions of calls per
//! second.
//!
//! Every scheduler's bookkeeping ([`super::Tracked`] keeps one); read by
//! `ll` and by the least-loaded fallbacks of `pasch`, `ours` and
//! `tradeoff`, and never by the schedulers that do not ask (`rr`, `ch`),
//! which then pay only the leaf writes.

use std::cell::RefCell;

use super::{Membership, NodeId, NodeLoads};

/// Key of an empty or offline leaf: larger than any `(load, id)` key.
const VACANT: u64 = u64::MAX;

/// [`NodeLoads`] plus an index of the least loaded online node.
///
/// The index is brought up to date when it is read: a change writes its
/// leaf and notes it, and the first [`LoadIndex::least_loaded`] or
/// [`LoadIndex::min_load`] after it walks the noted leaves up. A policy
/// that never asks (`rr`, `ch`) pays one write per change, and one that
/// asks per call the same walks as before.
#[derive(Debug, Clone, Default)]
pub struct LoadIndex {
    loads: NodeLoads,
    /// Read through `&self`, so brought up to date in place.
    tree: RefCell<Tree>,
}

/// Tournament tree: `keys[1]` is the root, leaves start at `leaves`; each
/// entry is `load << 32 | id` (or [`VACANT`]). The `dirty` leaves and the
/// entries above them may be out of date.
#[derive(Debug, Clone, Default)]
struct Tree {
    keys: Vec<u64>,
    leaves: usize,
    /// Leaves changed since the inner entries were last brought up to
    /// date (repeats allowed; at most `leaves` of them, else `all_dirty`).
    dirty: Vec<u32>,
    /// Too many changes noted: every inner entry is recomputed.
    all_dirty: bool,
}

/// The leaf key of `id` in `loads`.
fn key(loads: &NodeLoads, id: NodeId) -> u64 {
    if loads.is_online(id) {
        (u64::from(loads.load(id)) << 32) | u64::from(id)
    } else {
        VACANT
    }
}

impl Tree {
    /// Brings the changed leaves and the entries above them up to date.
    fn settle(&mut self, loads: &NodeLoads) {
        if self.all_dirty {
            for (i, leaf) in self.keys[self.leaves..].iter_mut().enumerate() {
                *leaf = key(loads, i as NodeId);
            }
            for pos in (1..self.leaves).rev() {
                self.keys[pos] = self.keys[2 * pos].min(self.keys[2 * pos + 1]);
            }
            self.all_dirty = false;
            self.dirty.clear();
            return;
        }
        for k in 0..self.dirty.len() {
            // A walk goes up while it changes an entry: an entry it leaves
            // as it was keeps its ancestors right (or another changed
            // leaf's walk reaches them).
            let id = self.dirty[k];
            let mut pos = self.leaves + id as usize;
            self.keys[pos] = key(loads, id);
            while pos > 1 {
                pos /= 2;
                let best = self.keys[2 * pos].min(self.keys[2 * pos + 1]);
                if self.keys[pos] == best {
                    break;
                }
                self.keys[pos] = best;
            }
        }
        self.dirty.clear();
    }

    /// The root, once up to date.
    fn root(&mut self, loads: &NodeLoads) -> u64 {
        if self.all_dirty || !self.dirty.is_empty() {
            self.settle(loads);
        }
        self.keys.get(1).copied().unwrap_or(VACANT)
    }
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
        match self.tree.borrow_mut().root(&self.loads) {
            VACANT => None,
            key => Some(key as u32),
        }
    }

    /// The load of [`Self::least_loaded`].
    pub fn min_load(&self) -> Option<u32> {
        match self.tree.borrow_mut().root(&self.loads) {
            VACANT => None,
            key => Some((key >> 32) as u32),
        }
    }

    /// The least loaded of `candidates`, first one on ties (a linear scan).
    pub fn least_loaded_of(&self, candidates: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
        self.loads.least_loaded_of(candidates)
    }

    /// Notes that the leaf of `id` changed, for the next read.
    fn refresh(&mut self, id: NodeId) {
        if id as usize >= self.tree.get_mut().leaves {
            // Built from the loads as they are now: nothing to note.
            self.grow(id as usize + 1);
            return;
        }
        let tree = self.tree.get_mut();
        if !tree.all_dirty {
            if tree.dirty.len() < tree.leaves {
                tree.dirty.push(id);
            } else {
                tree.all_dirty = true;
                tree.dirty.clear();
            }
        }
    }

    /// Rebuilds the tree with room for at least `ids` leaves.
    fn grow(&mut self, ids: usize) {
        let tree = self.tree.get_mut();
        let leaves = ids.next_power_of_two().max(tree.leaves * 2).max(8);
        let mut keys = vec![VACANT; 2 * leaves];
        for &id in self.loads.online() {
            keys[leaves + id as usize] = key(&self.loads, id);
        }
        for pos in (1..leaves).rev() {
            keys[pos] = keys[2 * pos].min(keys[2 * pos + 1]);
        }
        *tree = Tree {
            keys,
            leaves,
            dirty: Vec::new(),
            all_dirty: false,
        };
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

    /// One random change, the same to the index and to the scan: a node
    /// of `0..ids` inserted, removed (on one step in 3), or a call started
    /// or finished on it. `x` is a xorshift state.
    fn random_change(x: &mut u64, ids: u64, step: u64, ix: &mut LoadIndex, scan: &mut NodeLoads) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let id = (*x % ids) as NodeId;
        match *x % 5 {
            0 => {
                let c = Membership::Insert(NodeInfo::new(id));
                ix.apply(&c);
                scan.apply(&c);
            }
            1 if step.is_multiple_of(3) => {
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
    }

    #[test]
    fn agrees_with_the_linear_scan() {
        let mut ix = LoadIndex::new();
        let mut scan = NodeLoads::new();
        let mut x: u64 = 12345;
        for step in 0..5000 {
            random_change(&mut x, 37, step, &mut ix, &mut scan);
            assert_eq!(ix.least_loaded(), scan.least_loaded(), "step {step}");
        }
    }

    /// Reads far apart: many changes (more than the leaves, at times)
    /// between two reads are brought up to date at the read.
    #[test]
    fn agrees_with_the_linear_scan_when_read_now_and_then() {
        let mut ix = LoadIndex::new();
        let mut scan = NodeLoads::new();
        let mut x: u64 = 987_654_321;
        let mut next_read = 1u64;
        for step in 0..20_000u64 {
            random_change(&mut x, 53, step, &mut ix, &mut scan);
            if step == next_read {
                assert_eq!(ix.least_loaded(), scan.least_loaded(), "step {step}");
                let min = scan.least_loaded().map(|n| scan.load(n));
                assert_eq!(ix.min_load(), min, "step {step}");
                // From the next step to 300 steps on (a tree of 64 leaves).
                next_read = step + 1 + (x >> 20) % 300;
            }
        }
    }
}
