//! `fnlb`: the Fn project's load balancer (consistent hash with load-based
//! spill-over).
//!
//! From fnlb, the seed of the Fn project's balancer (github.com/fnproject/lb,
//! `lib/ch.go`, `chRouter.Route`, `besti`, `checkLoad`, `setLoad`; the same
//! router later lived in fnproject/fn, `api/server/lb`). For a call of `f`
//! over the `n` online members in ascending id order (fnlb: its node list,
//! sorted):
//!
//! - `key = SipHash-2-4(k0 = 0, k1 = 0x4c617279426f6174, f)` and the home
//!   index is `jump_consistent_hash(key, n)` ([`super::jump_hash`]).
//! - From the home index on, wrapping, each node is *accepted* or passed
//!   over according to the EWMA of the queueing delay that `(node, f)`
//!   calls saw: below 500 ms always; above 2 s with probability 10 %; in
//!   between with probability `x` % where `x = trunc(40 - 30 (d - 500 ms)
//!   / 1.5 s)`, falling linearly from 40 % to 10 % (fnlb's `translate`,
//!   truncated as Go's `int()`; a pair never measured counts as 0 ms).
//! - Each completion updates its pair's EWMA with its queueing delay `d`:
//!   the first sample is taken as is, later ones as `trunc(0.1 d + 0.9
//!   old)`, in nanoseconds (fnlb's `ewma` with `DECAY` 0.1, fed the
//!   worker's `XXX-FXLB-WAIT` header).
//!
//! Queueing delay of a completion: [`Completion::overhead`] (duration
//! minus the function's own run time: queueing, cold start, transfers),
//! this testbed's counterpart of the Fn server's reported wait. Failed
//! calls (`ok` false) do not update the EWMA: fnlb updates it only from a
//! response.
//!
//! Parameters: none beyond the run's `seed` (a [`ChaCha8Rng`], one draw
//! `0..100` per node examined whose EWMA is at least 500 ms, as Go's
//! `rng.Intn(100)`). The thresholds, 10 % floor and decay are fnlb's
//! constants.
//!
//! # Choices
//! - **Jump hash.** fnlb's `jumpConsistentHash` computes the jump with
//!   integer division, `(b + 1) * ((1 << 31) / (key >> 33) + 1)`, where
//!   the paper divides in floating point, `(b + 1) * 2^31 / ((key >> 33) +
//!   1)`; the two give different buckets (and fnlb's divides by zero when
//!   `key >> 33` is 0). This is the paper's, tested against its reference
//!   vectors; the home node therefore differs from fnlb's for some names.
//! - **Termination.** fnlb's loop is unbounded ("theoretically this could
//!   take infinite time, but practically improbable"). Here at most
//!   [`Fnlb::MAX_PROBES`] nodes are examined (each accepts with probability
//!   at least 10 %, so the cap is reached with probability below 0.9^256,
//!   about 2e-12); then the home node takes the call.
//! - EWMAs are kept per (node id, function), for offline nodes too: a node
//!   that comes back keeps its history. Only the pairs measured are kept
//!   (a small map per function), so memory follows the pairs seen, not
//!   nodes × functions. Past [`Fnlb::MAX_FUNCTIONS`] distinct names all
//!   are forgotten (names arrive from HTTP queries).
//!
//! # Complexity per decision
//! A hash-map lookup of the name (an index by the caller's id in the
//! simulator: [`Policy::choose_by_id`]; SipHash computed once per name), the jump
//! hash in O(ln n), then one map lookup (and at most one RNG draw) per
//! node examined: one node while its EWMA is below 500 ms, ten on average
//! when every node is above 2 s; never more than `MAX_PROBES`.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;

use super::jump_hash::{jump_consistent_hash, siphash24};
use super::load_index::LoadIndex;
use super::registry::{Algorithm, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::by_id::Functions;
use super::{Completion, FunctionId, NodeId, SelectError, Time};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "fnlb",
    aliases: &[],
    summary: "jump consistent hash, next node by chance when its EWMA wait is over 500 ms (Fn project fnlb)",
    params: &[],
    compared_by_default: false,
    build: |config: &SchedulerConfig| Box::new(Tracked::new(Fnlb::new(config.seed()))),
};

/// fnlb's SipHash key: `k0`.
pub const SIPHASH_K0: u64 = 0;
/// fnlb's SipHash key: `k1` (ASCII "LaryBoat").
pub const SIPHASH_K1: u64 = 0x4c61_7279_426f_6174;
/// Below this EWMA a node always accepts.
pub const LOWER: Duration = Duration::from_millis(500);
/// Above this EWMA a node accepts with [`FLOOR_PERCENT`].
pub const UPPER: Duration = Duration::from_secs(2);
/// Acceptance (%) above [`UPPER`].
pub const FLOOR_PERCENT: u32 = 10;
/// Acceptance (%) just above [`LOWER`].
pub const CEILING_PERCENT: u32 = 40;
/// Weight of a new sample in the EWMA.
pub const DECAY: f64 = 0.1;

/// fnlb's key of `function`: SipHash-2-4 with its fixed key.
pub fn function_key(function: &str) -> u64 {
    siphash24(SIPHASH_K0, SIPHASH_K1, function.as_bytes())
}

/// The chance (in %) that a node whose EWMA is `ewma_ns` accepts a call;
/// 100 below [`LOWER`].
pub fn accept_percent(ewma_ns: i64) -> u32 {
    let lower = LOWER.as_nanos() as i64;
    let upper = UPPER.as_nanos() as i64;
    if ewma_ns < lower {
        100
    } else if ewma_ns > upper {
        FLOOR_PERCENT
    } else {
        let span = f64::from(CEILING_PERCENT - FLOOR_PERCENT);
        let share = (ewma_ns - lower) as f64 / (upper - lower) as f64;
        (f64::from(CEILING_PERCENT) - share * span) as u32
    }
}

/// fnlb's EWMA step: `trunc(0.1 new + 0.9 old)`, nanoseconds.
pub fn ewma(old_ns: i64, new_ns: i64) -> i64 {
    (new_ns as f64 * DECAY + old_ns as f64 * (1.0 - DECAY)) as i64
}

/// What fnlb remembers of a function.
#[derive(Debug, Clone, Default)]
struct Function {
    key: u64,
    /// The EWMA of the queueing delay (ns) on each node where a call of the
    /// function has been measured (a node absent was never measured): its
    /// size follows the (node, function) pairs seen, not nodes × functions.
    wait_ns: FxHashMap<NodeId, i64>,
}

#[derive(Debug, Clone)]
pub struct Fnlb {
    rng: ChaCha8Rng,
    /// The functions measured, by name or by the caller's id.
    functions: Functions<Function>,
}

impl Fnlb {
    /// Nodes examined per call at most (see the module doc).
    pub const MAX_PROBES: usize = 256;
    /// Function names remembered before all are forgotten.
    pub const MAX_FUNCTIONS: usize = 1 << 16;

    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            functions: Functions::default(),
        }
    }

    /// The EWMA of the queueing delay of `function`'s calls on `node`.
    pub fn wait(&self, node: NodeId, function: &str) -> Option<Duration> {
        let ns = self
            .functions
            .get(function)?
            .wait_ns
            .get(&node)
            .copied()?;
        Some(Duration::from_nanos(ns.max(0) as u64))
    }

    /// A function measured for the first time (past
    /// [`Fnlb::MAX_FUNCTIONS`], every function is forgotten first).
    fn new_function(name: &str) -> impl FnOnce() -> Function + '_ {
        move || Function {
            key: function_key(name),
            wait_ns: FxHashMap::default(),
        }
    }

    /// The choice for a call of `function`, known as `f` if measured.
    fn choose_for(
        &mut self,
        loads: &LoadIndex,
        f: Option<u32>,
        function: &str,
    ) -> Result<NodeId, SelectError> {
        let nodes = loads.online();
        if nodes.is_empty() {
            return Err(SelectError::NoNodes);
        }
        let Self { rng, functions } = self;
        let Some(f) = f.map(|f| &functions[f]) else {
            let key = function_key(function);
            let home = jump_consistent_hash(key, nodes.len() as u32) as usize;
            // Never measured anywhere: the home node accepts.
            return Ok(nodes[home]);
        };
        let home = jump_consistent_hash(f.key, nodes.len() as u32) as usize;
        let mut i = home;
        for _ in 0..Self::MAX_PROBES {
            let node = nodes[i];
            let wait = f.wait_ns.get(&node).copied().unwrap_or(0);
            let percent = accept_percent(wait);
            if percent >= 100 || rng.gen_range(0..100u32) < percent {
                return Ok(node);
            }
            i = (i + 1) % nodes.len();
        }
        Ok(nodes[home])
    }

    /// A call ended (of the function the caller numbers `id`, when it
    /// gives one): a successful one updates its pair's EWMA.
    fn finished_of(&mut self, id: Option<FunctionId>, completion: &Completion<'_>) {
        if !completion.ok {
            return;
        }
        let name = completion.function;
        let f = self.functions.index(
            id,
            name,
            Self::MAX_FUNCTIONS,
            |_| false,
            Self::new_function(name),
        );
        let sample = i64::try_from(completion.overhead().as_nanos()).unwrap_or(i64::MAX);
        let f = &mut self.functions[f];
        f.wait_ns
            .entry(completion.node)
            .and_modify(|old| *old = ewma(*old, sample))
            .or_insert(sample);
    }
}

impl Policy for Fnlb {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let f = self.functions.find(function);
        self.choose_for(loads, f, function)
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let f = self.functions.find_by_id(id, function);
        self.choose_for(loads, f, function)
    }

    fn call_finished(&mut self, completion: &Completion<'_>, _now: Time) {
        self.finished_of(None, completion);
    }

    fn call_finished_by_id(&mut self, id: FunctionId, completion: &Completion<'_>, _now: Time) {
        self.finished_of(Some(id), completion);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Membership, NodeInfo, Scheduler};

    fn with_nodes(n: u32, seed: u64) -> Tracked<Fnlb> {
        Tracked::over_nodes(Fnlb::new(seed), n)
    }

    fn done(node: NodeId, function: &str, wait_ms: u64) -> Completion<'_> {
        Completion::warm(node, function, Duration::from_millis(wait_ms + 100), Duration::from_millis(100))
    }

    #[test]
    fn acceptance_follows_fnlb_thresholds() {
        let ms = |m: i64| m * 1_000_000;
        assert_eq!(accept_percent(0), 100);
        assert_eq!(accept_percent(ms(499)), 100);
        assert_eq!(accept_percent(ms(500)), 40);
        assert_eq!(accept_percent(ms(1250)), 25);
        assert_eq!(accept_percent(ms(2000)), 10);
        assert_eq!(accept_percent(ms(2001)), 10);
        assert_eq!(accept_percent(ms(60_000)), 10);
        // Truncation as Go's int(): 40 - 30 * 1/1500 = 39.98 -> 39.
        assert_eq!(accept_percent(ms(501)), 39);
    }

    #[test]
    fn ewma_takes_a_tenth_of_each_new_sample() {
        assert_eq!(ewma(1000, 2000), 1100);
        assert_eq!(ewma(0, 5), 0, "0.5 truncates");
        let mut s = with_nodes(1, 1);
        s.select("f", Time::ZERO).unwrap();
        s.finished(&done(0, "f", 1000), Time::ZERO);
        assert_eq!(s.policy().wait(0, "f"), Some(Duration::from_millis(1000)));
        s.select("f", Time::ZERO).unwrap();
        s.finished(&done(0, "f", 0), Time::ZERO);
        assert_eq!(s.policy().wait(0, "f"), Some(Duration::from_millis(900)));
        // Failed calls are not measured.
        let mut failed = done(0, "f", 5000);
        failed.ok = false;
        s.finished(&failed, Time::ZERO);
        assert_eq!(s.policy().wait(0, "f"), Some(Duration::from_millis(900)));
    }

    #[test]
    fn unloaded_calls_go_to_the_jump_hash_home() {
        let mut s = with_nodes(7, 1);
        for f in ["W1", "W2", "T3", "D8"] {
            let home = jump_consistent_hash(function_key(f), 7);
            for _ in 0..5 {
                let node = s.select(f, Time::ZERO).unwrap();
                assert_eq!(node, home);
                s.finished(&done(node, f, 499), Time::ZERO);
            }
        }
    }

    #[test]
    fn a_slow_home_spills_to_the_next_nodes_at_random() {
        let run = |seed| {
            let mut s = with_nodes(5, seed);
            let home = jump_consistent_hash(function_key("W1"), 5);
            s.select("W1", Time::ZERO).unwrap();
            s.finished(&done(home, "W1", 10_000), Time::ZERO);
            let picks: Vec<NodeId> = (0..200).map(|_| s.select("W1", Time::ZERO).unwrap()).collect();
            (home, picks)
        };
        let (home, picks) = run(9);
        assert_eq!(run(9).1, picks, "same seed, same decisions");
        assert_ne!(run(10).1, picks);
        let at_home = picks.iter().filter(|&&n| n == home).count();
        let next = (home + 1) % 5;
        assert!(
            (5..=40).contains(&at_home),
            "home accepts about 10 %: {at_home}"
        );
        assert!(
            picks.iter().all(|&n| n == home || n == next),
            "spills only as far as the first fast node: {picks:?}"
        );
    }

    /// Memory follows the (node, function) pairs measured, not nodes ×
    /// functions (issue 18): a completion on the last of 10,000 nodes
    /// keeps one EWMA, not a slot for every node below it.
    #[test]
    fn only_the_pairs_measured_are_kept() {
        let mut s = with_nodes(10_000, 3);
        let t = Time::ZERO;
        for (i, name) in ["A", "B"].into_iter().enumerate() {
            s.select_by_id(i as u32, name, t).unwrap();
            s.finished_by_id(i as u32, &done(9_999, name, 600), t);
            s.finished_by_id(i as u32, &done(17, name, 700), t);
        }
        let policy = s.policy();
        for name in ["A", "B"] {
            let f = policy.functions.get(name).unwrap();
            assert_eq!(f.wait_ns.len(), 2, "{name}: two nodes measured");
        }
        assert_eq!(policy.wait(9_999, "A"), Some(Duration::from_millis(600)));
        assert_eq!(policy.wait(17, "B"), Some(Duration::from_millis(700)));
        assert_eq!(policy.wait(18, "B"), None, "never measured");
    }

    /// Past the bound every function is forgotten, by id too: a function
    /// asked by its id afterwards is new again (its home node), not
    /// another function's measurements.
    #[test]
    fn forgetting_past_the_bound_forgets_by_id_too() {
        let mut s = with_nodes(16, 7);
        let t = Time::ZERO;
        let a = s.select_by_id(0, "A", t).unwrap();
        s.finished_by_id(0, &done(a, "A", 3_000), t);
        for i in 1..=Fnlb::MAX_FUNCTIONS as u32 {
            let name = format!("F{i}");
            let n = s.select_by_id(i, &name, t).unwrap();
            s.finished_by_id(i, &done(n, &name, 3_000), t);
        }
        assert!(s.policy().wait(a, "A").is_none(), "forgotten");
        let fresh = with_nodes(16, 7).select("A", t).unwrap();
        assert_eq!(s.select_by_id(0, "A", t), Ok(fresh));
    }

    #[test]
    fn membership_changes_are_followed() {
        let mut s = with_nodes(4, 2);
        let home = s.select("D1", Time::ZERO).unwrap();
        s.membership(Membership::Remove(home), Time::ZERO);
        for _ in 0..20 {
            assert_ne!(s.select("D1", Time::ZERO), Ok(home));
        }
        // Completions of the removed node are accepted and remembered.
        s.finished(&done(home, "D1", 3000), Time::ZERO);
        assert_eq!(s.policy().wait(home, "D1"), Some(Duration::from_secs(3)));
        s.membership(Membership::Insert(NodeInfo::new(home)), Time::ZERO);
        let mut none = Tracked::new(Fnlb::new(0));
        assert_eq!(none.select("D1", Time::ZERO), Err(SelectError::NoNodes));
    }
}
