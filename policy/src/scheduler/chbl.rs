//! `chbl`: consistent hashing with bounded loads, the bound relative to the
//! average load.
//!
//! From Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
//! Bounded Loads" (SODA 2018): with `m` balls in `n` bins, every bin has
//! capacity `ceil((1+ε)·m/n)`; a ball hashed to a point of the ring goes
//! to the first bin clockwise from that point that is below its capacity.
//! The most loaded bin then holds at most `(1+ε)` times the average while
//! the assignment stays as consistent as plain consistent hashing allows.
//! HAProxy implements it as `hash-balance-factor` (a percentage,
//! `100·(1+ε)`; "Implement bounded-load hash algorithm", A. Rodland,
//! Vimeo, 2016) and Envoy's ring hash as `hash_balance_factor`.
//!
//! This differs from HotFunctions' `ch` ([`super::consistent_hash`]),
//! whose bound is a fixed number `T` of calls per node, whatever the load
//! of the cluster: `chbl`'s bound follows the load, so it never refuses a
//! call and spreads a hot function only as much as the average requires.
//!
//! The rule, for one call of function `f`:
//! - `m` = calls in flight on the online nodes, `n` = online nodes; the
//!   capacity of every node is `c = ceil((1+ε)·(m+1)/n)` (the new call
//!   counted, as the paper inserts the ball before placing it);
//! - start at the first ring point at or after `ring_hash(f)` and walk
//!   clockwise to the first point whose node holds fewer than `c` calls;
//!   the call goes there, so no node ever exceeds `c`.
//!
//! Some node always has room: the capacities sum to at least
//! `(1+ε)·(m+1) > m`, the calls in flight. `chbl` therefore refuses a call
//! only when no node is online.
//!
//! The ring is HotFunctions' MD5 ring ([`super::md5_ring`], shared with
//! `ch`): `CHBL_POINTS` points per online node at
//! `ring_hash("<nodeId>-<k>")`, rebuilt on every membership change, point
//! hashes cached per id, so a node that comes back gets its old positions.
//! With the default 8 points it is exactly `ch`'s ring at `ch`'s default
//! `T`, so the two differ only in their bound.
//!
//! Parameters ([`ChblParams`]):
//! - `EPSILON` (key `chbl.EPSILON`, default 0.25, valid `[0, 100]`): the
//!   slack ε above the average; HAProxy's `hash-balance-factor` is
//!   `100·(1+ε)`, and 1.25 is the factor of Vimeo's deployment and of
//!   `lafikl/liblb`'s `bounded`. ε = 0 keeps every node within one call of
//!   the average (the ceiling), the tightest balance and the least
//!   locality. The name is shared with any other algorithm whose ε means
//!   the same slack over the average.
//! - `CHBL_POINTS` (default 8, valid `1..=1000`): ring points per node.
//!
//! Choices (where the paper leaves details to the implementation):
//! - `m` counts the calls in flight on *online* nodes: calls still running
//!   on a removed node do not count towards the bound (they are counted
//!   again if the node comes back). The count is kept by the policy in
//!   O(1) per call and recomputed from the load index on membership
//!   changes.
//! - `1+ε` is applied as a whole number of millionths (ε rounded to 1e-6),
//!   so that the capacity is computed exactly in integers: a float
//!   `1.1 · 10 / 11` would round up to 2 where the bound is 1.
//!
//! Complexity per decision: a hash-map lookup of the name (MD5 once per
//! name), a binary search of the ring (`O(log(n·points))`), then the
//! walk. The walk stops at the first node below capacity: a few points
//! when few nodes are at the bound (a larger ε, fewer full nodes), at most
//! one turn of the ring (`O(n·points)`) when almost every node is; Chen,
//! Coleman and Shrivastava ("Revisiting Consistent Hashing with Bounded
//! Loads", AAAI 2021) describe how full nodes cluster on the ring as the
//! load grows. No allocation per decision.

use super::load_index::LoadIndex;
use super::md5_ring::{HashCache, Md5Ring};
use super::registry::{Algorithm, Count, Param, Real, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::{Completion, FunctionId, NodeId, SelectError, Time};

/// `EPSILON`: slack of the bound above the average load.
pub const EPSILON: Real = Real {
    name: "EPSILON",
    doc: "slack above the average: each node holds at most ceil((1+EPSILON)*(in flight+1)/nodes) calls",
    default: 0.25,
    min: 0.0,
    max: 100.0,
};

/// `CHBL_POINTS`: ring points per node.
pub const CHBL_POINTS: Count = Count {
    name: "CHBL_POINTS",
    doc: "ring points per node of chbl's hash ring",
    default: 8,
    min: 1,
    max: 1000,
};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "chbl",
    aliases: &[],
    summary: "consistent hashing, each node bounded by (1+EPSILON) times the average load (Mirrokni et al., SODA 2018)",
    params: &[Param::Real(EPSILON), Param::Count(CHBL_POINTS)],
    compared_by_default: false,
    build: |config| {
        Box::new(Tracked::new(ConsistentHashingBoundedLoads::new(
            ChblParams::resolve(config),
        )))
    },
};

/// Parameters of `chbl`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChblParams {
    /// [`EPSILON`] (default 0.25).
    pub epsilon: f64,
    /// [`CHBL_POINTS`] (default 8).
    pub points: u32,
}

impl Default for ChblParams {
    fn default() -> Self {
        Self {
            epsilon: EPSILON.default,
            points: CHBL_POINTS.default,
        }
    }
}

impl ChblParams {
    /// The values of a resolved configuration.
    pub fn resolve(config: &SchedulerConfig) -> Self {
        Self {
            epsilon: config.real(&EPSILON),
            points: config.count(&CHBL_POINTS),
        }
    }
}

/// `1+ε` in millionths, as [`capacity`] takes it (ε clamped to the
/// parameter's range, so any input gives a valid factor).
pub fn factor_millionths(epsilon: f64) -> u64 {
    let eps = if epsilon.is_nan() {
        0.0
    } else {
        epsilon.clamp(EPSILON.min, EPSILON.max)
    };
    ((1.0 + eps) * 1e6).round() as u64
}

/// The capacity of every node: `ceil(factor·(in_flight+1)/nodes)`, with
/// `factor = (1+ε)` given in millionths ([`factor_millionths`]). At least 1;
/// `u32::MAX` when `nodes` is 0 (no node: nothing to bound).
pub fn capacity(factor_millionths: u64, in_flight: u64, nodes: usize) -> u32 {
    if nodes == 0 {
        return u32::MAX;
    }
    let num = u128::from(factor_millionths) * (u128::from(in_flight) + 1);
    let den = 1_000_000u128 * nodes as u128;
    u32::try_from(num.div_ceil(den)).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone)]
pub struct ConsistentHashingBoundedLoads {
    /// `1+ε` in millionths.
    factor: u64,
    ring: Md5Ring,
    hashes: HashCache,
    /// Online flag per node id, mirrored from the load index on
    /// membership changes (completions do not see the index).
    online: Vec<bool>,
    /// Calls in flight on online nodes: `m`.
    in_flight: u64,
}

impl ConsistentHashingBoundedLoads {
    pub fn new(params: ChblParams) -> Self {
        Self {
            factor: factor_millionths(params.epsilon),
            ring: Md5Ring::new(params.points.max(1)),
            hashes: HashCache::new(),
            online: Vec::new(),
            in_flight: 0,
        }
    }

    /// The ring, for inspection and tests.
    pub fn ring(&self) -> &Md5Ring {
        &self.ring
    }

    /// The capacity a call arriving now would see, given `nodes` online.
    pub fn current_capacity(&self, nodes: usize) -> u32 {
        capacity(self.factor, self.in_flight, nodes)
    }

    /// Recounts `m` from the load index.
    fn recount(&mut self, loads: &LoadIndex) {
        self.in_flight = loads.online().iter().map(|&n| u64::from(loads.load(n))).sum();
    }

    /// The first node clockwise from `start` holding fewer than `cap`.
    fn walk(&self, loads: &LoadIndex, start: usize, cap: u32) -> Option<NodeId> {
        self.ring
            .clockwise_from(start)
            .find(|&n| loads.load(n) < cap)
    }
}

impl Policy for ConsistentHashingBoundedLoads {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn members_changed(&mut self, loads: &LoadIndex, _now: Time) {
        self.ring.rebuild(loads.online());
        self.online.iter_mut().for_each(|o| *o = false);
        for &id in loads.online() {
            let i = id as usize;
            if self.online.len() <= i {
                self.online.resize(i + 1, false);
            }
            self.online[i] = true;
        }
        self.recount(loads);
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let hash = self.hashes.get(function);
        self.choose_hashed(loads, hash)
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let hash = self.hashes.get_by_id(id, function);
        self.choose_hashed(loads, hash)
    }

    fn call_finished(&mut self, completion: &Completion<'_>, _now: Time) {
        if self.online.get(completion.node as usize) == Some(&true) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }
}

impl ConsistentHashingBoundedLoads {
    /// The choice for a function of ring hash `hash`.
    fn choose_hashed(&mut self, loads: &LoadIndex, hash: u32) -> Result<NodeId, SelectError> {
        let nodes = loads.online().len();
        let start = self.ring.owner_index(hash).ok_or(SelectError::NoNodes)?;
        let mut found = self.walk(loads, start, self.current_capacity(nodes));
        if found.is_none() {
            // Only if completions broke the select/finished contract and
            // `m` drifted below the truth: recount and walk again.
            self.recount(loads);
            found = self.walk(loads, start, self.current_capacity(nodes));
        }
        let node = found
            .or_else(|| loads.least_loaded())
            .ok_or(SelectError::NoNodes)?;
        self.in_flight += 1;
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::consistent_hash::{ChParams, ConsistentHashBoundedLoad};
    use crate::scheduler::{Membership, NodeInfo, Scheduler};

    fn with_nodes(n: u32, epsilon: f64) -> Tracked<ConsistentHashingBoundedLoads> {
        Tracked::over_nodes(ConsistentHashingBoundedLoads::new(ChblParams {
            epsilon,
            ..ChblParams::default()
        }), n)
    }

    fn done(node: NodeId, function: &str) -> Completion<'_> {
        Completion::warm(node, function, std::time::Duration::from_millis(10), std::time::Duration::ZERO)
    }

    #[test]
    fn capacity_is_the_ceiling_of_1_plus_epsilon_times_the_average() {
        let f = factor_millionths;
        // The paper's bound: ceil((1+ε)·m/n), with the new ball in m.
        assert_eq!(capacity(f(0.25), 0, 4), 1); // ceil(1.25/4)
        assert_eq!(capacity(f(0.25), 7, 4), 3); // ceil(10/4)
        assert_eq!(capacity(f(0.25), 15, 4), 5); // ceil(20/4) exactly
        assert_eq!(capacity(f(0.0), 7, 4), 2); // ceil(8/4): the average
        assert_eq!(capacity(f(0.0), 8, 4), 3); // ceil(9/4)
        // 1.1 · 10 / 11 is 1 exactly; floats would say 1.0000000000000002.
        assert_eq!(capacity(f(0.1), 9, 11), 1);
        assert_eq!(capacity(f(0.5), 99, 10), 15); // HAProxy factor 150
        assert_eq!(capacity(f(1.0), 0, 1), 2);
        assert_eq!(capacity(f(0.25), 5, 0), u32::MAX);
        assert_eq!(capacity(f(100.0), u64::MAX, 1), u32::MAX, "saturates");
        assert_eq!(f(f64::NAN), 1_000_000);
        assert_eq!(f(-3.0), 1_000_000);
    }

    #[test]
    fn a_hot_function_spills_when_its_home_reaches_the_bound() {
        // ε = 0, 4 nodes: with m calls in flight, each node may hold
        // ceil((m+1)/4). One function calling repeatedly therefore fills
        // its home to 1, then must go elsewhere until all hold 1, etc.:
        // no node is ever more than one call above another.
        let mut s = with_nodes(4, 0.0);
        let home = s.select("W1", Time::ZERO).unwrap();
        let second = s.select("W1", Time::ZERO).unwrap();
        assert_ne!(second, home, "cap is ceil(2/4) = 1 and home holds 1");
        for _ in 2..40 {
            s.select("W1", Time::ZERO).unwrap();
            let loads: Vec<u32> = (0..4).map(|n| s.load(n).unwrap()).collect();
            let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
            assert!(hi - lo <= 1, "{loads:?}");
        }
        assert_eq!(s.load(home), Some(10));
    }

    #[test]
    fn large_epsilon_keeps_every_call_of_a_function_home_like_ch() {
        // With a huge ε the bound never bites at these loads, and chbl's
        // ring is ch's ring at T = 8: same home for every function.
        let mut chbl = with_nodes(5, 100.0);
        let mut ch = Tracked::new(ConsistentHashBoundedLoad::new(ChParams { t: 8 }));
        for id in 0..5 {
            ch.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
        assert_eq!(chbl.policy().ring().points(), ch.policy().ring().points());
        for f in ["W1", "W2", "W3", "T1", "I1", "D1", "D8"] {
            let home = ch.select(f, Time::ZERO).unwrap();
            ch.finished(&done(home, f), Time::ZERO);
            for _ in 0..4 {
                assert_eq!(chbl.select(f, Time::ZERO), Ok(home), "{f}");
            }
        }
    }

    #[test]
    fn the_bound_follows_completions_and_membership() {
        let mut s = with_nodes(2, 0.0);
        let a = s.select("W1", Time::ZERO).unwrap();
        let b = s.select("W1", Time::ZERO).unwrap();
        assert_ne!(a, b, "cap ceil(2/2) = 1");
        s.finished(&done(b, "W1"), Time::ZERO);
        // m = 1 again: cap ceil(2/2) = 1, home full, so b again.
        assert_eq!(s.select("W1", Time::ZERO), Ok(b));
        // Remove b: its call no longer counts, m = 1 on one node: cap 2.
        s.membership(Membership::Remove(b), Time::ZERO);
        assert_eq!(s.policy().current_capacity(1), 2);
        assert_eq!(s.select("W1", Time::ZERO), Ok(a));
        // The call on removed b finishes: accepted, m unchanged (2 on a).
        s.finished(&done(b, "W1"), Time::ZERO);
        assert_eq!(s.policy().current_capacity(1), 3);
        // b comes back with no calls; m = 2 over 2 nodes: cap ceil(3/2) = 2,
        // a is full, so b takes the next call even if a is home.
        s.membership(Membership::Insert(NodeInfo::new(b)), Time::ZERO);
        assert_eq!(s.select("W1", Time::ZERO), Ok(b));
        let mut none = Tracked::new(ConsistentHashingBoundedLoads::new(ChblParams::default()));
        assert_eq!(none.select("W1", Time::ZERO), Err(SelectError::NoNodes));
    }

    #[test]
    fn a_broken_contract_falls_back_instead_of_failing() {
        // Completions for calls never selected (a contract violation) make
        // `m` drift low; the recount puts it right.
        let mut s = with_nodes(3, 0.0);
        for _ in 0..6 {
            s.select("W1", Time::ZERO).unwrap();
        }
        for _ in 0..6 {
            s.policy_mut().call_finished(&done(0, "W1"), Time::ZERO);
        }
        assert_eq!(s.policy().current_capacity(3), 1);
        let n = s.select("W1", Time::ZERO).unwrap();
        assert!(s.members().contains(&n));
        assert_eq!(s.policy().current_capacity(3), 3, "recounted: m = 7");
    }
}
