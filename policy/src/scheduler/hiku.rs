//! `hiku`: pull-based scheduling with per-function idle queues.
//!
//! From Akbari & Hauswirth, "Hiku: Pull-Based Scheduling for Serverless
//! Computing", CCGrid 2025 (arXiv:2502.15534), and its implementation,
//! github.com/saman-akbari/hiku-scheduler, `src/balancer/pull_based.go`.
//! Worker selection is decoupled from task assignment: a worker that
//! becomes idle for a function *pulls*, i.e. enqueues itself in that
//! function's idle queue, and the next call of the function is assigned
//! from the queue.
//!
//! - When a call of `f` finishes on a node, the node joins `f`'s idle
//!   queue: one entry per finished call (one idle instance), keyed by the
//!   node's calls in flight after that completion.
//! - A call of `f` takes the best entry of `f`'s queue: fewest calls in
//!   flight, then the oldest entry. The entry leaves the queue. Entries of
//!   nodes that are offline when they come up are dropped and the next is
//!   tried (as Hiku drops workers no longer in its list).
//! - With no usable entry, the call goes to the least-connected online node
//!   (fewest calls in flight); ties are broken uniformly at random.
//!
//! Parameters: none beyond the run's `seed` (a [`ChaCha8Rng`], one draw per
//! least-connected choice with ties).
//!
//! # Choices
//! - **Queue order** uses a node's calls in flight *at enqueueing*. Hiku's
//!   implementation re-keys every queued entry of a node at each of its
//!   load changes (a scan of every queue per call); keys taken at
//!   enqueueing keep each operation O(log q) at the cost of ordering by a
//!   possibly older load.
//! - Every completion enqueues, failed calls too (Hiku releases the worker
//!   whatever the response). Idle instances never expire here: Hiku removes
//!   an entry when the worker reports the sandbox destroyed, an event this
//!   interface does not carry. A queue's usable entries plus the
//!   function's calls in flight never exceed the function's peak number of
//!   calls in flight (a call from the queue and its completion trade one
//!   for the other), so queues stay bounded; entries of offline nodes are
//!   dropped when they come up.
//! - Entries of a removed node stay queued while it is away: if it comes
//!   back before they come up, they are used (its instances survive);
//!   otherwise they are dropped when they come up. Past
//!   [`Hiku::MAX_FUNCTIONS`] distinct names all queues are forgotten.
//!
//! # Complexity per decision
//! A hash-map lookup of the name (an index by the caller's id in the
//! simulator: [`Policy::choose_by_id`]) and a binary-heap pop, O(log q) for a
//! queue of `q` entries (plus one pop per stale entry dropped, each paid
//! once). The least-connected fallback is O(1): nodes are kept in buckets
//! by calls in flight (moved in O(1) per call and completion), and the tie
//! is a random member of the lowest non-empty bucket, whose load the load
//! index gives.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::load_index::LoadIndex;
use super::registry::{Algorithm, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::by_id::Functions;
use super::{Completion, FunctionId, NodeId, SelectError, Time};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "hiku",
    aliases: &["pull"],
    summary: "idle nodes queue per function after a call, least connected (random tie) otherwise (Hiku, CCGrid 2025)",
    params: &[],
    compared_by_default: false,
    build: |config: &SchedulerConfig| Box::new(Tracked::new(Hiku::new(config.seed()))),
};

/// One idle queue entry: (calls in flight at enqueueing, sequence, node),
/// smallest first.
type Entry = Reverse<(u32, u64, NodeId)>;

#[derive(Debug, Clone)]
pub struct Hiku {
    rng: ChaCha8Rng,
    /// Each function's idle queue, by name or by the caller's id.
    queues: Functions<BinaryHeap<Entry>>,
    sequence: u64,
    buckets: LoadBuckets,
}

impl Hiku {
    /// Function names remembered before every queue is forgotten.
    pub const MAX_FUNCTIONS: usize = 1 << 16;

    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            queues: Functions::default(),
            sequence: 0,
            buckets: LoadBuckets::default(),
        }
    }

    /// The nodes queued idle for `function`, best first.
    pub fn idle_queue(&self, function: &str) -> Vec<NodeId> {
        let mut entries: Vec<(u32, u64, NodeId)> = self
            .queues
            .get(function)
            .map(|q| q.iter().map(|e| e.0).collect())
            .unwrap_or_default();
        entries.sort_unstable();
        entries.into_iter().map(|e| e.2).collect()
    }
}

impl Hiku {
    /// The choice for a call whose function's queue is `q` (if any).
    fn choose_for(&mut self, loads: &LoadIndex, q: Option<u32>) -> Result<NodeId, SelectError> {
        let Some(min_load) = loads.min_load() else {
            return Err(SelectError::NoNodes);
        };
        let mut pulled = None;
        if let Some(queue) = q.map(|q| &mut self.queues[q]) {
            while let Some(Reverse((_, _, node))) = queue.pop() {
                if loads.is_online(node) {
                    pulled = Some(node);
                    break;
                }
            }
        }
        let node = match pulled {
            Some(node) => node,
            None => {
                let tied = self.buckets.at(min_load);
                debug_assert!(!tied.is_empty(), "buckets mirror the load index");
                match tied.len() {
                    0 => loads.least_loaded().ok_or(SelectError::NoNodes)?,
                    1 => tied[0],
                    n => tied[self.rng.gen_range(0..n)],
                }
            }
        };
        self.buckets.started(node);
        Ok(node)
    }

    /// A call ended on `completion.node` (of the function the caller
    /// numbers `id`, when it gives one): the node queues idle for the
    /// function.
    fn finished_into(&mut self, id: Option<FunctionId>, completion: &Completion<'_>) {
        self.buckets.finished(completion.node);
        // Past MAX_FUNCTIONS names, every queue is forgotten first.
        let q = self.queues.index(
            id,
            completion.function,
            Self::MAX_FUNCTIONS,
            |_| false,
            BinaryHeap::new,
        );
        let load = self.buckets.load(completion.node);
        self.queues[q].push(Reverse((load, self.sequence, completion.node)));
        self.sequence += 1;
    }
}

impl Policy for Hiku {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let q = self.queues.find(function);
        self.choose_for(loads, q)
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let q = self.queues.find_by_id(id, function);
        self.choose_for(loads, q)
    }

    fn members_changed(&mut self, loads: &LoadIndex, _now: Time) {
        self.buckets.rebuild(loads);
    }

    fn call_finished(&mut self, completion: &Completion<'_>, _now: Time) {
        self.finished_into(None, completion);
    }

    fn call_finished_by_id(&mut self, id: FunctionId, completion: &Completion<'_>, _now: Time) {
        self.finished_into(Some(id), completion);
    }
}

/// Online nodes grouped by calls in flight, for an O(1) uniformly random
/// pick among the least connected.
#[derive(Debug, Clone, Default)]
struct LoadBuckets {
    /// `at[l]`: online nodes with `l` calls in flight (in no set order).
    at: Vec<Vec<NodeId>>,
    /// Per node id: its index in its bucket (`usize::MAX` when offline).
    slot: Vec<usize>,
    /// Per node id: calls in flight (mirrors the load index).
    calls: Vec<u32>,
}

impl LoadBuckets {
    fn at(&self, load: u32) -> &[NodeId] {
        self.at.get(load as usize).map_or(&[], Vec::as_slice)
    }

    fn load(&self, node: NodeId) -> u32 {
        self.calls.get(node as usize).copied().unwrap_or(0)
    }

    fn rebuild(&mut self, loads: &LoadIndex) {
        self.at.iter_mut().for_each(Vec::clear);
        self.slot.iter_mut().for_each(|s| *s = usize::MAX);
        for &node in loads.online() {
            self.grow(node);
            self.calls[node as usize] = loads.load(node);
            self.insert(node);
        }
    }

    fn grow(&mut self, node: NodeId) {
        let len = node as usize + 1;
        if self.slot.len() < len {
            self.slot.resize(len, usize::MAX);
            self.calls.resize(len, 0);
        }
    }

    fn insert(&mut self, node: NodeId) {
        let load = self.calls[node as usize] as usize;
        if self.at.len() <= load {
            self.at.resize_with(load + 1, Vec::new);
        }
        self.slot[node as usize] = self.at[load].len();
        self.at[load].push(node);
    }

    fn remove(&mut self, node: NodeId) {
        let i = node as usize;
        let load = self.calls[i] as usize;
        let pos = self.slot[i];
        let bucket = &mut self.at[load];
        bucket.swap_remove(pos);
        if let Some(&moved) = bucket.get(pos) {
            self.slot[moved as usize] = pos;
        }
        self.slot[i] = usize::MAX;
    }

    fn started(&mut self, node: NodeId) {
        self.grow(node);
        let online = self.slot[node as usize] != usize::MAX;
        if online {
            self.remove(node);
        }
        self.calls[node as usize] += 1;
        if online {
            self.insert(node);
        }
    }

    fn finished(&mut self, node: NodeId) {
        let i = node as usize;
        if i >= self.calls.len() || self.calls[i] == 0 {
            return;
        }
        let online = self.slot[i] != usize::MAX;
        if online {
            self.remove(node);
        }
        self.calls[i] -= 1;
        if online {
            self.insert(node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Membership, NodeInfo, Scheduler};
    use std::time::Duration;

    fn with_nodes(n: u32, seed: u64) -> Tracked<Hiku> {
        Tracked::over_nodes(Hiku::new(seed), n)
    }

    fn done(node: NodeId, function: &str) -> Completion<'_> {
        Completion::warm(node, function, Duration::from_millis(10), Duration::from_millis(5))
    }

    #[test]
    fn a_node_that_finished_f_takes_the_next_call_of_f() {
        let mut s = with_nodes(4, 1);
        let a = s.select("A", Time::ZERO).unwrap();
        let b = s.select("B", Time::ZERO).unwrap();
        assert_ne!(a, b, "least connected");
        s.finished(&done(a, "A"), Time::ZERO);
        assert_eq!(s.policy().idle_queue("A"), [a]);
        // Node `a` is idle and queued for A; B still runs on `b`.
        assert_eq!(s.select("A", Time::ZERO), Ok(a));
        assert!(s.policy().idle_queue("A").is_empty(), "taken entries leave");
        // B's queue is empty: least connected, not `a` or `b`.
        let c = s.select("B", Time::ZERO).unwrap();
        assert!(c != a && c != b);
    }

    #[test]
    fn the_queue_prefers_the_least_loaded_node() {
        let mut s = with_nodes(2, 1);
        let p = s.select("A", Time::ZERO).unwrap();
        let q = s.select("A", Time::ZERO).unwrap();
        assert_ne!(p, q);
        let busy = s.select("Z", Time::ZERO).unwrap();
        s.finished(&done(p, "A"), Time::ZERO);
        s.finished(&done(q, "A"), Time::ZERO);
        // The node still running Z queued with one call, the other with none.
        let idle = if busy == p { q } else { p };
        assert_eq!(s.policy().idle_queue("A"), [idle, busy]);
        assert_eq!(s.select("A", Time::ZERO), Ok(idle));
        assert_eq!(s.select("A", Time::ZERO), Ok(busy));
    }

    #[test]
    fn ties_are_broken_at_random_reproducibly() {
        let run = |seed| {
            let mut s = with_nodes(8, seed);
            (0..8)
                .map(|_| s.select("W1", Time::ZERO).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(3);
        assert_eq!(a, run(3));
        assert_ne!(a, run(4));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>(), "least connected: each once");
        assert_ne!(a, (0..8).collect::<Vec<_>>(), "not in id order");
    }

    /// Past the bound every queue is forgotten, by id too: a function
    /// asked by its id afterwards has no queue, and does not pull from
    /// another function's.
    #[test]
    fn forgetting_past_the_bound_forgets_by_id_too() {
        let mut s = with_nodes(4, 3);
        let t = Time::ZERO;
        let a = s.select_by_id(0, "A", t).unwrap();
        s.finished_by_id(0, &done(a, "A"), t);
        let last = format!("F{}", Hiku::MAX_FUNCTIONS);
        for i in 1..=Hiku::MAX_FUNCTIONS as u32 {
            let name = format!("F{i}");
            let n = s.select_by_id(i, &name, t).unwrap();
            s.finished_by_id(i, &done(n, &name), t);
        }
        assert!(s.policy().idle_queue("A").is_empty(), "forgotten");
        assert_eq!(s.policy().idle_queue(&last).len(), 1);
        s.select_by_id(0, "A", t).unwrap();
        assert_eq!(s.policy().idle_queue(&last).len(), 1, "not A's to pull");
    }

    #[test]
    fn entries_of_removed_nodes_are_skipped() {
        let mut s = with_nodes(2, 2);
        let x = s.select("A", Time::ZERO).unwrap();
        let y = s.select("A", Time::ZERO).unwrap();
        s.membership(Membership::Remove(x), Time::ZERO);
        // A completion on the removed node is accepted (and queued).
        s.finished(&done(x, "A"), Time::ZERO);
        s.finished(&done(y, "A"), Time::ZERO);
        assert_eq!(s.policy().idle_queue("A"), [x, y]);
        assert_eq!(s.select("A", Time::ZERO), Ok(y), "x is offline: skipped");
        assert!(s.policy().idle_queue("A").is_empty(), "stale entry dropped");
        s.membership(Membership::Insert(NodeInfo::new(x)), Time::ZERO);
        assert_eq!(s.select("B", Time::ZERO), Ok(x), "least connected");
        let mut none = Tracked::new(Hiku::new(0));
        assert_eq!(none.select("A", Time::ZERO), Err(SelectError::NoNodes));
    }
}
