//! `ours`: HotFunctions' greedy locality scheduler.
//!
//! From HotFunctions (Prev/HotFunctions, `scheduler/ours.go`, the
//! framework's own proposal). Each function has a list of assigned nodes,
//! learnt as it runs; each node counts the calls it runs per function.
//!
//! - A node with `TMax` or more calls in flight is unavailable.
//! - A node with `TOpt` or more (but fewer than `TMax`) accepts only its
//!   `CacheSize` most-running functions (the most calls in flight there);
//!   when it refuses an assigned function on these grounds, it is removed
//!   from that function's assigned nodes (the function is "evicted" from the
//!   node's working set and must earn its place again).
//! - A call goes to the least loaded available node among its function's
//!   assigned nodes (first assigned on ties); else to the least loaded
//!   available node of all (lowest id on ties), which becomes assigned to
//!   the function; else, when no node is available, to the globally least
//!   loaded node (lowest id on ties), without assigning it.
//!
//! Parameters ([`OursParams`]; environment variables and defaults of the
//! original `main.go`, keys `ours.T1` ...): `T1` = `TMax` (8), `T2` =
//! `TOpt` (5), `T3` = `CacheSize` (3), each at least 1: a `TMax` or `TOpt`
//! of 0 makes every node unavailable and a `CacheSize` of 0 refuses every
//! function at `TOpt`, which all degenerate to `ll` without assignments.
//! `TOpt >= TMax` is allowed: the cache rule then never applies and only
//! the `TMax` bound is left (so each parameter can be set on its own).
//!
//! Differences from the original, deliberate:
//! - **Tie defect fixed.** The original's top-`CacheSize` helper sorts the
//!   running counts, then for each count takes the first function (in Go's
//!   random map order) with that count, so two functions with equal counts
//!   yield the same function twice and the other is never accepted. Here
//!   the top `CacheSize` are distinct functions ranked by count (descending),
//!   ties broken by function name (ascending), deterministically.
//! - Only functions with calls in flight count as "running": the original
//!   keeps zero counts in its map, so a function that ran long ago could
//!   fill a cache slot.
//! - The original fails a call when no node is available; the issue asks for
//!   the global least-loaded fallback instead. `ours` therefore never
//!   refuses a call while a node is online, and never puts a call above
//!   `TMax` while some node has fewer than `TMax` calls.
//! - The original never de-assigns; the refusal at `TOpt` above does, which
//!   is what makes the assignment adaptive.
//!
//! Membership: an offline node is skipped but stays in assignments, so a
//! node that comes back keeps its functions. Cost per call: a map lookup
//! of the name, a scan of the function's assigned nodes, and O(1) for the
//! global least loaded unless every node is at `TOpt` or more.
//!
//! Memory is bounded: names arrive from HTTP queries, so past
//! [`GreedyLocality::MAX_FUNCTIONS`] distinct names every function with no
//! call in flight is forgotten (its assignments go; it earns its nodes
//! again when it comes back, like a new function) and its id is reused, as
//! [`HashCache`](super::md5_ring::HashCache) starts afresh. Functions with
//! calls in flight are kept, so completions always find their counts. A
//! sweep costs one pass over the remembered names, once per
//! `MAX_FUNCTIONS` new names at most; below the bound (every scenario of
//! the catalog) decisions are exactly those of an unbounded map.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::load_index::LoadIndex;
use super::registry::{Algorithm, Count, Param, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::by_id::ById;
use super::{Completion, FunctionId, NodeId, SelectError, Time};

/// Functions running on a node kept inline before its list spills to
/// the heap.
const RUNNING_INLINE: usize = 4;

/// `T1`: `TMax`.
pub const T1: Count = Count {
    name: "T1",
    doc: "TMax: in-flight calls at which a node takes no more calls while another has room",
    default: 8,
    min: 1,
    max: u32::MAX,
};

/// `T2`: `TOpt`.
pub const T2: Count = Count {
    name: "T2",
    doc: "TOpt: in-flight calls from which a node takes only its CacheSize most running functions",
    default: 5,
    min: 1,
    max: u32::MAX,
};

/// `T3`: `CacheSize`.
pub const T3: Count = Count {
    name: "T3",
    doc: "CacheSize: functions a node at TOpt still accepts",
    default: 3,
    min: 1,
    max: u32::MAX,
};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "ours",
    aliases: &[],
    summary: "greedy locality with TMax, TOpt and CacheSize (HotFunctions' own)",
    params: &[Param::Count(T1), Param::Count(T2), Param::Count(T3)],
    compared_by_default: true,
    build: |config| Box::new(Tracked::new(GreedyLocality::new(OursParams::resolve(config)))),
};

/// Parameters of `ours`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OursParams {
    /// [`T1`]: `TMax` (default 8).
    pub t_max: u32,
    /// [`T2`]: `TOpt` (default 5).
    pub t_opt: u32,
    /// [`T3`]: `CacheSize` (default 3).
    pub cache_size: u32,
}

impl Default for OursParams {
    fn default() -> Self {
        Self {
            t_max: T1.default,
            t_opt: T2.default,
            cache_size: T3.default,
        }
    }
}

impl OursParams {
    /// The values of a resolved configuration.
    pub fn resolve(config: &SchedulerConfig) -> Self {
        Self {
            t_max: config.count(&T1),
            t_opt: config.count(&T2),
            cache_size: config.count(&T3),
        }
    }
}

/// Why a node does not take a call of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Availability {
    Available,
    /// At `TMax` or more.
    Overloaded,
    /// At `TOpt` or more and the function is not among its most running.
    NotCached,
}

#[derive(Debug, Clone)]
pub struct GreedyLocality {
    t_max: u32,
    t_opt: u32,
    cache_size: u32,
    /// Function name → dense function id.
    ids: FxHashMap<Box<str>, u32>,
    /// Function id → name (for deterministic tie-breaks; empty when free).
    names: Vec<Box<str>>,
    /// Function id → assigned nodes, in assignment order.
    assigned: Vec<Vec<NodeId>>,
    /// Function id → its calls in flight on all nodes.
    in_flight: Vec<u32>,
    /// Ids of forgotten functions, reused lowest first.
    free: Vec<u32>,
    /// Distinct names remembered before idle ones are forgotten.
    max_functions: usize,
    /// Node id → (function id, calls in flight > 0).
    /// A node runs few functions at once: they are kept in its slot of
    /// this vector, not behind a pointer of their own (a cache miss per
    /// look at a node, at a thousand nodes).
    running: Vec<SmallVec<[(u32, u32); RUNNING_INLINE]>>,
    /// The caller's dense function ids ([`Policy::choose_by_id`]) →
    /// function id; emptied when functions are forgotten.
    by_id: ById,
}

impl GreedyLocality {
    /// Distinct function names remembered before the idle ones (no call
    /// in flight) are forgotten, as [`HashCache::CAPACITY`](super::md5_ring::HashCache::CAPACITY).
    pub const MAX_FUNCTIONS: usize = 1 << 16;

    pub fn new(params: OursParams) -> Self {
        Self {
            t_max: params.t_max,
            t_opt: params.t_opt,
            cache_size: params.cache_size,
            ids: FxHashMap::default(),
            names: Vec::new(),
            assigned: Vec::new(),
            in_flight: Vec::new(),
            free: Vec::new(),
            max_functions: Self::MAX_FUNCTIONS,
            running: Vec::new(),
            by_id: ById::default(),
        }
    }

    /// The nodes currently assigned to `function`, in assignment order.
    pub fn assigned_nodes(&self, function: &str) -> &[NodeId] {
        self.ids
            .get(function)
            .map_or(&[], |&f| &self.assigned[f as usize])
    }

    /// Calls of `function` in flight on `node`.
    pub fn running(&self, node: NodeId, function: &str) -> u32 {
        let Some(&f) = self.ids.get(function) else {
            return 0;
        };
        self.running
            .get(node as usize)
            .and_then(|r| r.iter().find(|e| e.0 == f))
            .map_or(0, |e| e.1)
    }

    /// Function names remembered (at most [`Self::MAX_FUNCTIONS`], plus
    /// those with calls in flight).
    pub fn remembered_functions(&self) -> usize {
        self.ids.len()
    }

    fn intern(&mut self, function: &str) -> u32 {
        if let Some(&f) = self.ids.get(function) {
            return f;
        }
        if self.ids.len() >= self.max_functions {
            self.forget_idle_functions();
        }
        let f = match self.free.pop() {
            Some(f) => {
                self.names[f as usize] = function.into();
                f
            }
            None => {
                self.names.push(function.into());
                self.assigned.push(Vec::new());
                self.in_flight.push(0);
                (self.names.len() - 1) as u32
            }
        };
        self.ids.insert(function.into(), f);
        f
    }

    /// [`GreedyLocality::intern`] for a function the caller numbers `id`:
    /// one index once seen (ids from [`ById::MAX_ID`] on go by name).
    fn intern_by_id(&mut self, id: FunctionId, function: &str) -> u32 {
        if let Some(f) = self.by_id.get(id) {
            return f;
        }
        let f = self.intern(function);
        self.by_id.set(id, f);
        f
    }

    /// Forgets every function with no call in flight: its assignments go
    /// (it earns its nodes again when it comes back) and its id is reused.
    /// Functions with calls in flight stay, so completions always find
    /// their running counts.
    fn forget_idle_functions(&mut self) {
        let Self {
            ids,
            names,
            assigned,
            in_flight,
            free,
            by_id,
            ..
        } = self;
        // Ids are reused below: the caller's ids are looked up anew.
        by_id.clear();
        ids.retain(|_, &mut f| {
            let busy = in_flight[f as usize] > 0;
            if !busy {
                names[f as usize] = Box::default();
                assigned[f as usize].clear();
                free.push(f);
            }
            busy
        });
        // Lowest id reused first, whatever the map's iteration order.
        free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Whether `f` is among the `cache_size` most running functions of
    /// `node` (count descending, name ascending).
    fn is_cached(&self, node: NodeId, f: u32) -> bool {
        let Some(entries) = self.running.get(node as usize) else {
            return false;
        };
        let Some(&(_, count)) = entries.iter().find(|e| e.0 == f) else {
            return false;
        };
        let name = &self.names[f as usize];
        let ahead = entries
            .iter()
            .filter(|&&(g, c)| {
                g != f && (c > count || (c == count && self.names[g as usize] < *name))
            })
            .count();
        ahead < self.cache_size as usize
    }

    fn availability(&self, loads: &LoadIndex, node: NodeId, f: u32) -> Availability {
        let load = loads.load(node);
        if load >= self.t_max {
            Availability::Overloaded
        } else if load >= self.t_opt && !self.is_cached(node, f) {
            Availability::NotCached
        } else {
            Availability::Available
        }
    }

    /// Least loaded available node among `f`'s assigned ones; drops the
    /// assignments of nodes that refuse `f` at `TOpt`.
    fn best_assigned(&mut self, loads: &LoadIndex, f: u32) -> Option<NodeId> {
        let mut best: Option<(u32, NodeId)> = None;
        let mut evicted = false;
        for &node in &self.assigned[f as usize] {
            if !loads.is_online(node) {
                continue;
            }
            match self.availability(loads, node, f) {
                Availability::Available => {
                    let load = loads.load(node);
                    if best.is_none_or(|(b, _)| load < b) {
                        best = Some((load, node));
                    }
                }
                Availability::NotCached => evicted = true,
                Availability::Overloaded => {}
            }
        }
        if evicted {
            let mut list = std::mem::take(&mut self.assigned[f as usize]);
            list.retain(|&n| {
                !loads.is_online(n) || self.availability(loads, n, f) != Availability::NotCached
            });
            self.assigned[f as usize] = list;
        }
        best.map(|(_, n)| n)
    }

    /// Least loaded available node of all, lowest id on ties.
    fn best_of_all(&self, loads: &LoadIndex, f: u32) -> Option<NodeId> {
        let min = loads.min_load()?;
        if min < self.t_opt.min(self.t_max) {
            // Every node at the minimum load is available: the index's
            // answer is the one a scan would give.
            return loads.least_loaded();
        }
        let mut best: Option<(u32, NodeId)> = None;
        for &node in loads.online() {
            if self.availability(loads, node, f) == Availability::Available {
                let load = loads.load(node);
                if best.is_none_or(|(b, _)| load < b) {
                    best = Some((load, node));
                }
            }
        }
        best.map(|(_, n)| n)
    }
}

impl Policy for GreedyLocality {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        if loads.online().is_empty() {
            return Err(SelectError::NoNodes);
        }
        let f = self.intern(function);
        self.choose_interned(loads, f)
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        if loads.online().is_empty() {
            return Err(SelectError::NoNodes);
        }
        let f = self.intern_by_id(id, function);
        self.choose_interned(loads, f)
    }

    fn call_finished(&mut self, completion: &Completion<'_>, _now: Time) {
        if let Some(&f) = self.ids.get(completion.function) {
            self.finished_interned(completion.node, f);
        }
    }

    fn call_finished_by_id(&mut self, id: FunctionId, completion: &Completion<'_>, now: Time) {
        match self.by_id.get(id) {
            Some(f) => self.finished_interned(completion.node, f),
            None => self.call_finished(completion, now),
        }
    }
}

impl GreedyLocality {
    /// A call of interned function `f` finished on `node`.
    fn finished_interned(&mut self, node: NodeId, f: u32) {
        if let Some(entries) = self.running.get_mut(node as usize) {
            if let Some(pos) = entries.iter().position(|e| e.0 == f) {
                entries[pos].1 -= 1;
                if entries[pos].1 == 0 {
                    entries.swap_remove(pos);
                }
                self.in_flight[f as usize] -= 1;
            }
        }
    }

    /// The choice for interned function `f` (some node is online).
    fn choose_interned(&mut self, loads: &LoadIndex, f: u32) -> Result<NodeId, SelectError> {
        let node = match self.best_assigned(loads, f) {
            Some(node) => node,
            None => match self.best_of_all(loads, f) {
                Some(node) => {
                    let list = &mut self.assigned[f as usize];
                    if !list.contains(&node) {
                        list.push(node);
                    }
                    node
                }
                None => loads.least_loaded().ok_or(SelectError::NoNodes)?,
            },
        };
        let i = node as usize;
        if self.running.len() <= i {
            self.running.resize_with(i + 1, SmallVec::new);
        }
        match self.running[i].iter_mut().find(|e| e.0 == f) {
            Some(entry) => entry.1 += 1,
            None => self.running[i].push((f, 1)),
        }
        self.in_flight[f as usize] += 1;
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::tracked::Tracked;
    use crate::scheduler::{Membership, NodeInfo, Scheduler};

    fn done<'a>(node: NodeId, function: &'a str) -> Completion<'a> {
        Completion::warm(node, function, std::time::Duration::from_secs(1), std::time::Duration::ZERO)
    }

    fn with_nodes(n: u32, t_max: u32, t_opt: u32, cache: u32) -> Tracked<GreedyLocality> {
        Tracked::over_nodes(GreedyLocality::new(OursParams {
            t_max,
            t_opt,
            cache_size: cache,
        }), n)
    }

    #[test]
    fn original_stream_places_and_evicts() {
        let mut s = with_nodes(2, 4, 3, 1);
        let picks: Vec<NodeId> = ["A", "A", "B", "C", "B", "C"]
            .iter()
            .map(|f| s.select(f, Time::ZERO).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 0, 1, 1, 1, 0]);
        assert_eq!(s.policy().assigned_nodes("C"), &[0]);
        assert_eq!(s.policy().assigned_nodes("A"), &[0]);
        assert_eq!(s.policy().assigned_nodes("B"), &[1]);
    }

    #[test]
    fn equal_running_counts_give_distinct_cached_functions() {
        // Node 0 runs A and B once each; at TOpt = 2 with CacheSize 2 it
        // must accept both (the original could accept A twice, refusing B).
        let mut s = with_nodes(1, 10, 2, 2);
        s.select("A", Time::ZERO).unwrap();
        s.select("B", Time::ZERO).unwrap();
        let f = s.policy().ids["B"];
        assert!(s.policy().is_cached(0, s.policy().ids["A"]));
        assert!(s.policy().is_cached(0, f));
        let c = s.policy_mut().intern("C");
        assert!(!s.policy().is_cached(0, c));
        // CacheSize 1 with a tie: the name order decides, A before B.
        let mut s = with_nodes(1, 10, 2, 1);
        s.select("B", Time::ZERO).unwrap();
        s.select("A", Time::ZERO).unwrap();
        assert!(s.policy().is_cached(0, s.policy().ids["A"]));
        assert!(!s.policy().is_cached(0, s.policy().ids["B"]));
    }

    #[test]
    fn no_available_node_falls_back_to_least_loaded() {
        let mut s = with_nodes(2, 2, 2, 1);
        for _ in 0..4 {
            s.select("A", Time::ZERO).unwrap();
        }
        assert_eq!((s.load(0), s.load(1)), (Some(2), Some(2)));
        assert_eq!(s.select("B", Time::ZERO), Ok(0));
        assert_eq!(s.select("B", Time::ZERO), Ok(1));
        assert!(
            s.policy().assigned_nodes("B").is_empty(),
            "overflow is not assignment"
        );
    }

    #[test]
    fn completions_clear_running_counts() {
        let mut s = with_nodes(2, 8, 5, 3);
        let n = s.select("A", Time::ZERO).unwrap();
        assert_eq!(s.policy().running(n, "A"), 1);
        s.finished(
            &Completion {
                node: n,
                function: "A",
                duration: std::time::Duration::from_secs(1),
                cold: true,
                ok: true,
                internal: std::time::Duration::ZERO,
            },
            Time::ZERO,
        );
        assert_eq!(s.policy().running(n, "A"), 0);
        assert_eq!(s.load(n), Some(0));
        assert!(s.policy().running[n as usize].is_empty());
    }

    #[test]
    fn offline_assigned_node_is_skipped_then_used_again() {
        let mut s = with_nodes(3, 8, 5, 3);
        assert_eq!(s.select("A", Time::ZERO), Ok(0));
        s.membership(Membership::Remove(0), Time::ZERO);
        assert_eq!(s.select("A", Time::ZERO), Ok(1));
        assert_eq!(s.policy().assigned_nodes("A"), &[0, 1]);
        s.membership(Membership::Insert(NodeInfo::new(0)), Time::ZERO);
        assert_eq!(
            s.select("A", Time::ZERO),
            Ok(0),
            "0 and 1 both at 1: first assigned"
        );
    }

    #[test]
    fn function_names_are_bounded_and_busy_ones_survive() {
        let mut s = with_nodes(2, 8, 5, 3);
        s.policy_mut().max_functions = 4;
        // A stays in flight the whole time; B..Z finish at once.
        assert_eq!(s.select("A", Time::ZERO), Ok(0));
        for i in 0..40 {
            let f = format!("F{i}");
            let n = s.select(&f, Time::ZERO).unwrap();
            s.finished(&done(n, &f), Time::ZERO);
            assert!(s.policy().remembered_functions() <= 4, "after {f}");
        }
        // A's running count and assignment survived every sweep.
        assert_eq!(s.policy().running(0, "A"), 1);
        assert_eq!(s.policy().assigned_nodes("A"), &[0]);
        assert!(s.policy().names.len() <= 4, "ids are reused");
        s.finished(&done(0, "A"), Time::ZERO);
        assert_eq!(s.load(0), Some(0));
        assert_eq!(s.policy().running(0, "A"), 0);
        // A forgotten function is placed afresh, like a new one.
        assert_eq!(s.select("F0", Time::ZERO), Ok(0));
    }
}
