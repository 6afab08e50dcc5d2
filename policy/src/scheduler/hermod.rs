//! `hermod`: Hermod's hybrid packing / least-loaded placement.
//!
//! From Kaffes, Yadwadkar & Kozyrakis, "Hermod: Principled and Practical
//! Scheduling for Serverless Functions", SoCC 2022 (preprint: "Practical
//! Scheduling for Real-World Serverless Computing", arXiv:2111.07226). Its
//! load balancer is hybrid and locality-aware: at low load it *packs*
//! calls onto few workers (consolidation, fewer cold starts), at high load
//! it balances by least load; among candidates it prefers workers holding
//! a warm instance of the function.
//!
//! Here, with `free(node) = cores - calls in flight` (the node's
//! [`NodeInfo::cores`](super::NodeInfo), calls as this scheduler counts
//! them):
//!
//! - **Low load**: some online node has a free core. The call goes to the
//!   first node, lowest id first, in the first non-empty of these tiers:
//!   1. nodes with a free core that run calls and hold a warm instance of
//!      the function;
//!   2. nodes with a free core that hold a warm instance;
//!   3. nodes with a free core that run calls (packing);
//!   4. nodes with a free core (an idle node, the lowest id).
//! - **High load**: no online node has a free core. The call goes to the
//!   least loaded online node (fewest calls in flight, lowest id on ties).
//!
//! A node *holds a warm instance* of `f` while it runs a call of `f`, and
//! for `KEEP_ALIVE_S` seconds after its last call of `f` finished (an
//! instance kept alive by the worker). Warm instances are learnt only from
//! this scheduler's calls and completions; a failed call counts as well.
//!
//! Parameters ([`HermodParams`]): `KEEP_ALIVE_S` (600 s, the node model's
//! default keep-alive [`KeepAlivePool::DEFAULT_KEEP_ALIVE`](crate::node::keep_alive::KeepAlivePool::DEFAULT_KEEP_ALIVE);
//! valid `[0, 31536000]`): how long a node is assumed to keep an idle
//! instance (key `hermod.KEEP_ALIVE_S`, or bare `KEEP_ALIVE_S`).
//! Deterministic: no randomness, no seed.
//!
//! # Choices
//! - The paper states the low/high switch and the locality preference;
//!   "low load" is made exact above (a free core anywhere), and so is the
//!   packing order (first fit by id, busy nodes before idle ones, warm
//!   before cold).
//! - Hermod also uses early binding and processor sharing on the workers;
//!   those are the workers' business (the node model), not the balancer's.
//! - Removed nodes are never chosen; their warm instances are remembered
//!   (a node that comes back within the keep-alive still holds them).
//!   Past [`Hermod::MAX_FUNCTIONS`] distinct names, functions with no call
//!   in flight are forgotten.
//!
//! # Complexity per decision
//! A hash-map lookup of the name (an index by the caller's id in the
//! simulator: [`Policy::choose_by_id`]); at low load up to four scans of
//! bit-sets over node ids (one bit per node: 16 words at 1,000 nodes),
//! each stopping at its first hit; expired warm bits met on the way are
//! cleared (amortized O(1)). At high load, O(1) from the load index.
//! Calls and completions update the bit-sets in O(1).

use rustc_hash::FxHashMap;

use super::load_index::LoadIndex;
use super::registry::{Algorithm, Param, Real, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::by_id::Functions;
use super::{Completion, FunctionId, NodeId, SelectError, Time};

/// `KEEP_ALIVE_S`: how long a node keeps an idle warm instance.
pub const KEEP_ALIVE_S: Real = Real {
    name: "KEEP_ALIVE_S",
    doc: "seconds a node is assumed to keep a warm instance after its last call of a function",
    default: 600.0,
    min: 0.0,
    max: 31_536_000.0,
};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "hermod",
    aliases: &[],
    summary: "packing onto warm then busy nodes with a free core, least loaded when none (Hermod, SoCC 2022)",
    params: &[Param::Real(KEEP_ALIVE_S)],
    compared_by_default: false,
    build: |config| Box::new(Tracked::new(Hermod::new(HermodParams::resolve(config)))),
};

/// Parameters of `hermod`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HermodParams {
    /// [`KEEP_ALIVE_S`] (default 600 s).
    pub keep_alive: std::time::Duration,
}

impl Default for HermodParams {
    fn default() -> Self {
        Self {
            keep_alive: std::time::Duration::from_secs_f64(KEEP_ALIVE_S.default),
        }
    }
}

impl HermodParams {
    /// The values of a resolved configuration.
    pub fn resolve(config: &SchedulerConfig) -> Self {
        Self {
            keep_alive: std::time::Duration::from_secs_f64(config.real(&KEEP_ALIVE_S)),
        }
    }
}

/// A set of node ids, one bit each.
#[derive(Debug, Clone, Default)]
struct NodeBits {
    words: Vec<u64>,
}

impl NodeBits {
    fn set(&mut self, id: NodeId, on: bool) {
        let (w, b) = (id as usize / 64, id % 64);
        if w >= self.words.len() {
            if !on {
                return;
            }
            self.words.resize(w + 1, 0);
        }
        if on {
            self.words[w] |= 1 << b;
        } else {
            self.words[w] &= !(1 << b);
        }
    }

    fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    fn word(&self, w: usize) -> u64 {
        self.words.get(w).copied().unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
}

/// What Hermod remembers of a function.
#[derive(Debug, Clone, Default)]
struct Function {
    /// Nodes that may hold a warm instance (checked against `on` before
    /// use; stale bits are cleared lazily).
    warm: NodeBits,
    /// The nodes it has run on and may still be warm on: calls in flight
    /// there, and the end of the keep-alive after the last completion. Only
    /// those nodes (a node found cold again is dropped), so that what is
    /// kept follows where the function ran, not functions x nodes.
    on: FxHashMap<NodeId, OnNode>,
    /// Calls in flight on all nodes.
    in_flight: u32,
}

/// A function on one node.
#[derive(Debug, Clone, Copy, Default)]
struct OnNode {
    running: u32,
    warm_until: Time,
}

impl Function {
    fn is_warm(&self, node: NodeId, now: Time) -> bool {
        self.on
            .get(&node)
            .is_some_and(|n| n.running > 0 || now < n.warm_until)
    }

    /// `node` was found cold: forgotten.
    fn cold(&mut self, node: NodeId) {
        self.warm.set(node, false);
        self.on.remove(&node);
    }
}

#[derive(Debug, Clone)]
pub struct Hermod {
    keep_alive: std::time::Duration,
    /// What it knows of each function, by name or by the caller's id.
    functions: Functions<Function>,
    /// Online nodes with a free core.
    free: NodeBits,
    /// Online nodes running at least one call.
    busy: NodeBits,
    /// Per node id: calls in flight (mirrors the load index).
    calls: Vec<u32>,
    /// Per node id: cores; online flag.
    cores: Vec<u32>,
    online: Vec<bool>,
}

impl Hermod {
    /// Function names remembered before those with no call in flight are
    /// forgotten (and with them where they are warm), as the other
    /// policies' bound on names from HTTP queries. It was 4,096 while a
    /// function's state took a slot per node: on 10,000 Zipf-popular
    /// functions over 1,000 nodes (`simulator/benches/des_azure_scale.rs`,
    /// case 10M) the forgetting then nearly doubled Hermod's cold starts
    /// (a ratio of 0.400 against 0.211 remembering them all).
    pub const MAX_FUNCTIONS: usize = 1 << 16;

    pub fn new(params: HermodParams) -> Self {
        Self {
            keep_alive: params.keep_alive,
            functions: Functions::default(),
            free: NodeBits::default(),
            busy: NodeBits::default(),
            calls: Vec::new(),
            cores: Vec::new(),
            online: Vec::new(),
        }
    }

    /// Whether `node` holds a warm instance of `function` at `now`.
    pub fn is_warm(&self, node: NodeId, function: &str, now: Time) -> bool {
        self.functions
            .get(function)
            .is_some_and(|f| f.is_warm(node, now))
    }

    /// Past [`Hermod::MAX_FUNCTIONS`], functions with no call in flight
    /// are forgotten.
    fn kept(f: &Function) -> bool {
        f.in_flight > 0
    }

    /// The choice for a call of `function` (which the caller numbers
    /// `id`, when it gives one).
    fn choose_for(
        &mut self,
        loads: &LoadIndex,
        id: Option<FunctionId>,
        function: &str,
        now: Time,
    ) -> Result<NodeId, SelectError> {
        if loads.online().is_empty() {
            return Err(SelectError::NoNodes);
        }
        let f = self.functions.index(
            id,
            function,
            Self::MAX_FUNCTIONS,
            Self::kept,
            Function::default,
        );
        let Self {
            functions,
            free,
            busy,
            ..
        } = self;
        let f = &mut functions[f];
        let node = if free.is_empty() {
            loads.least_loaded().ok_or(SelectError::NoNodes)?
        } else {
            Self::first(free, busy, true, Some(&mut *f), now)
                .or_else(|| Self::first(free, busy, false, Some(&mut *f), now))
                .or_else(|| Self::first(free, busy, true, None, now))
                .or_else(|| Self::first(free, busy, false, None, now))
                .ok_or(SelectError::NoNodes)?
        };
        f.on.entry(node).or_default().running += 1;
        f.in_flight += 1;
        f.warm.set(node, true);
        self.grow(node);
        self.calls[node as usize] += 1;
        self.refresh(node);
        Ok(node)
    }

    /// A call ended on `completion.node`: that node's count, and what
    /// function `f` (if known) keeps of the node.
    fn finished_on(&mut self, f: Option<u32>, completion: &Completion<'_>, now: Time) {
        let node = completion.node;
        let i = node as usize;
        if i < self.calls.len() {
            self.calls[i] = self.calls[i].saturating_sub(1);
            self.refresh(node);
        }
        let keep_alive = self.keep_alive;
        if let Some(f) = f.map(|f| &mut self.functions[f]) {
            if let Some(on) = f.on.get_mut(&node).filter(|on| on.running > 0) {
                on.running -= 1;
                on.warm_until = now.saturating_add(keep_alive);
                f.in_flight -= 1;
            }
        }
    }

    fn grow(&mut self, node: NodeId) {
        let len = node as usize + 1;
        if self.calls.len() < len {
            self.calls.resize(len, 0);
            self.cores.resize(len, 0);
            self.online.resize(len, false);
        }
    }

    /// Recomputes the `free` and `busy` bits of `node`.
    fn refresh(&mut self, node: NodeId) {
        let i = node as usize;
        let online = self.online[i];
        self.free
            .set(node, online && self.calls[i] < self.cores[i]);
        self.busy.set(node, online && self.calls[i] > 0);
    }

    /// First node (lowest id) in `free`, and in `busy` if `need_busy`, and
    /// warm for `f` if given (clearing stale warm bits met on the way).
    fn first(
        free: &NodeBits,
        busy: &NodeBits,
        need_busy: bool,
        mut warm: Option<&mut Function>,
        now: Time,
    ) -> Option<NodeId> {
        for w in 0..free.words.len() {
            let mut word = free.word(w);
            if need_busy {
                word &= busy.word(w);
            }
            if let Some(f) = warm.as_deref_mut() {
                word &= f.warm.word(w);
                while word != 0 {
                    let id = (w * 64) as NodeId + word.trailing_zeros();
                    if f.is_warm(id, now) {
                        return Some(id);
                    }
                    f.cold(id);
                    word &= word - 1;
                }
            } else if word != 0 {
                return Some((w * 64) as NodeId + word.trailing_zeros());
            }
        }
        None
    }
}

impl Policy for Hermod {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        now: Time,
    ) -> Result<NodeId, SelectError> {
        self.choose_for(loads, None, function, now)
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        now: Time,
    ) -> Result<NodeId, SelectError> {
        self.choose_for(loads, Some(id), function, now)
    }

    fn members_changed(&mut self, loads: &LoadIndex, _now: Time) {
        self.online.iter_mut().for_each(|o| *o = false);
        self.free.clear();
        self.busy.clear();
        for &node in loads.online() {
            self.grow(node);
            let i = node as usize;
            self.online[i] = true;
            self.cores[i] = loads.cores(node);
            self.calls[i] = loads.load(node);
            self.refresh(node);
        }
    }

    fn call_finished(&mut self, completion: &Completion<'_>, now: Time) {
        let f = self.functions.find(completion.function);
        self.finished_on(f, completion, now);
    }

    fn call_finished_by_id(&mut self, id: FunctionId, completion: &Completion<'_>, now: Time) {
        let f = self.functions.find_by_id(id, completion.function);
        self.finished_on(f, completion, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Membership, NodeInfo, Scheduler};
    use std::time::Duration;

    fn with_nodes(n: u32, cores: u32, keep_alive_s: u64) -> Tracked<Hermod> {
        let mut s = Tracked::new(Hermod::new(HermodParams {
            keep_alive: Duration::from_secs(keep_alive_s),
        }));
        for id in 0..n {
            s.membership(
                Membership::Insert(NodeInfo {
                    cores,
                    ..NodeInfo::new(id)
                }),
                Time::ZERO,
            );
        }
        s
    }

    fn done(node: NodeId, function: &str) -> Completion<'_> {
        Completion {
            node,
            function,
            duration: Duration::from_millis(10),
            cold: false,
            ok: true,
            internal: Duration::from_millis(5),
        }
    }

    #[test]
    fn low_load_packs_then_high_load_balances() {
        let mut s = with_nodes(3, 2, 600);
        let t = Time::ZERO;
        // Packing: node 0 until its cores are busy, then node 1, node 2.
        let picks: Vec<NodeId> = ["A", "B", "C", "D", "E", "F"]
            .iter()
            .map(|f| s.select(f, t).unwrap())
            .collect();
        assert_eq!(picks, [0, 0, 1, 1, 2, 2]);
        // No free core anywhere: least loaded, lowest id on ties.
        assert_eq!(s.select("G", t), Ok(0));
        assert_eq!(s.select("G", t), Ok(1));
        s.finished(&done(2, "E"), t);
        // Node 2 has a free core again: low load, and it runs calls.
        assert_eq!(s.select("Z", t), Ok(2));
    }

    #[test]
    fn warm_nodes_come_first_until_the_keep_alive_ends() {
        let mut s = with_nodes(3, 2, 60);
        let t0 = Time::from_secs(10);
        // Node 0 busy with A, node 1 ran B and is idle now.
        assert_eq!(s.select("A", t0), Ok(0));
        assert_eq!(s.select("B", t0), Ok(0));
        assert_eq!(s.select("C", t0), Ok(1));
        s.finished(&done(0, "B"), t0);
        s.finished(&done(1, "C"), t0);
        assert!(s.policy().is_warm(1, "C", t0));
        // C is warm on idle node 1: preferred over busy node 0 (tier 2).
        let t1 = Time::from_secs(30);
        assert_eq!(s.select("C", t1), Ok(1));
        s.finished(&done(1, "C"), t1);
        // B is warm on busy node 0 (tier 1).
        assert_eq!(s.select("B", t1), Ok(0));
        s.finished(&done(0, "B"), t1);
        // After the keep-alive, C is cold everywhere: packing onto busy 0.
        let t2 = Time::from_secs(91);
        assert!(!s.policy().is_warm(1, "C", t2));
        assert_eq!(s.select("C", t2), Ok(0));
    }

    #[test]
    fn a_node_running_the_function_is_warm_without_completions() {
        let mut s = with_nodes(2, 4, 0);
        assert_eq!(s.select("A", Time::ZERO), Ok(0));
        assert!(s.policy().is_warm(0, "A", Time::from_secs(1_000)));
        s.finished(&done(0, "A"), Time::from_secs(1_000));
        assert!(!s.policy().is_warm(0, "A", Time::from_secs(1_000)));
    }

    #[test]
    fn removed_nodes_are_never_chosen_and_keep_their_instances() {
        let mut s = with_nodes(3, 1, 600);
        assert_eq!(s.select("A", Time::ZERO), Ok(0));
        s.finished(&done(0, "A"), Time::ZERO);
        s.membership(Membership::Remove(0), Time::ZERO);
        for _ in 0..4 {
            let n = s.select("A", Time::ZERO).unwrap();
            assert_ne!(n, 0);
        }
        s.membership(Membership::Insert(NodeInfo { cores: 1, ..NodeInfo::new(0) }), Time::ZERO);
        // Node 0 is back, idle and still warm for A.
        assert!(s.policy().is_warm(0, "A", Time::from_secs(1)));
        assert_eq!(s.select("A", Time::from_secs(1)), Ok(0));
        // Completions of calls on a node removed meanwhile are accepted.
        s.membership(Membership::Remove(0), Time::from_secs(2));
        s.finished(&done(0, "A"), Time::from_secs(2));
        assert_eq!(s.loads().load(0), 0);
        let mut none = Tracked::new(Hermod::new(HermodParams::default()));
        assert_eq!(none.select("A", Time::ZERO), Err(SelectError::NoNodes));
    }

    /// Azure-scale workloads name thousands of functions: where each was
    /// warm is remembered past 4,096 of them (the bound was that once,
    /// and then forgot A here, which went to idle node 0), and a node
    /// found cold again is dropped from the function's state.
    #[test]
    fn warm_nodes_are_remembered_across_thousands_of_functions() {
        let mut s = with_nodes(2, 1, 600);
        let t = Time::from_secs(1);
        assert_eq!(s.select("X", t), Ok(0));
        // Node 0 has no free core: A runs on node 1, and is warm there.
        assert_eq!(s.select("A", t), Ok(1));
        s.finished(&done(1, "A"), t);
        for i in 0..5_000 {
            let name = format!("F{i}");
            assert_eq!(s.select(&name, t), Ok(1));
            s.finished(&done(1, &name), t);
        }
        s.finished(&done(0, "X"), t);
        assert!(s.policy().functions.len() > 5_000);
        // Both nodes idle; A is warm on node 1 only (tier 2).
        assert_eq!(s.select("A", Time::from_secs(2)), Ok(1));
        s.finished(&done(1, "A"), Time::from_secs(2));
        // Past the keep-alive, node 1 is met cold and dropped.
        let late = Time::from_secs(2 + 601);
        assert_eq!(s.select("A", late), Ok(0));
        let a = s.policy().functions.get("A").unwrap();
        assert!(!a.on.contains_key(&1), "{:?}", a.on);
        assert!(a.on.contains_key(&0));
    }

    /// Past the bound, the functions with no call in flight go and the
    /// others are renumbered: a call in flight, chosen by its id, still
    /// ends on its own state.
    #[test]
    fn forgetting_past_the_bound_keeps_the_calls_in_flight_by_id_too() {
        let mut s = with_nodes(2, 1, 600);
        let t = Time::from_secs(1);
        assert_eq!(s.select_by_id(0, "A", t), Ok(0));
        s.finished_by_id(0, &done(0, "A"), t);
        // X (id 1, the second function) in flight on node 0.
        assert_eq!(s.select_by_id(1, "X", t), Ok(0));
        for i in 2..=Hermod::MAX_FUNCTIONS as u32 {
            let name = format!("F{i}");
            let n = s.select_by_id(i, &name, t).unwrap();
            s.finished_by_id(i, &done(n, &name), t);
        }
        // X (now the first) and the last one are all that is left.
        assert_eq!(s.policy().functions.len(), 2);
        assert_eq!(s.policy().functions.get("X").unwrap().in_flight, 1);
        s.finished_by_id(1, &done(0, "X"), t);
        assert_eq!(s.policy().functions.get("X").unwrap().in_flight, 0);
        assert!(s.policy().is_warm(0, "X", Time::from_secs(2)));
        // A was forgotten: cold everywhere.
        assert!(s.policy().functions.get("A").is_none());
    }

    #[test]
    fn keep_alive_resolves_to_its_default_and_is_validated() {
        let config = SchedulerConfig::new("hermod", [("seed", "1")]).unwrap();
        assert_eq!(
            HermodParams::resolve(&config),
            HermodParams::default()
        );
        assert_eq!(HermodParams::default().keep_alive, Duration::from_secs(600));
        let p = crate::scheduler::registry::Param::Real(KEEP_ALIVE_S);
        assert!(p.parse("-1").is_err() && p.parse("nan").is_err());
        assert!(p.parse("0").is_ok() && p.parse("86400").is_ok());
    }
}
