//! `tradeoff`: a random mix of random, hash and least-loaded placement.
//!
//! From HotFunctions (Prev/HotFunctions, `scheduler/tradeoff.go`), which
//! trades locality against load balance with two probabilities. Per call:
//!
//! - with probability `ALPHA`: a uniformly random online node;
//! - else with probability `BETA`: the hash node, the online member at
//!   index `ring_hash(function) mod n` (the MD5 hash of [`super::md5_ring`],
//!   members in ascending id order, `n` online members; plain modulo, not
//!   a ring, as in the original);
//! - else the least loaded online node (lowest id on ties).
//!
//! Parameters ([`TradeoffParams`]; environment variables and defaults of
//! the original `main.go`): `ALPHA` (0.0), `BETA` (0.5), keys
//! `tradeoff.ALPHA`, `tradeoff.BETA`; each a probability in `[0, 1]`.
//! `BETA` applies to the calls that the `ALPHA` test did not take, so any
//! pair is valid (no `ALPHA + BETA <= 1` rule): the shares are `ALPHA`
//! random, `(1 - ALPHA) BETA` hash, `(1 - ALPHA)(1 - BETA)` least loaded.
//! Randomness: a [`ChaCha8Rng`] seeded from the run's `seed`.
//! Each call draws one uniform number in `[0, 1)` for the `ALPHA` test; if
//! it passes, one more picks the node, otherwise one more is drawn for the
//! `BETA` test. A run is therefore reproduced exactly by its seed. A draw `u` passes a test with probability
//! `p` when `u < p`, so `ALPHA` 0 never and `BETA` 1 always passes (the
//! original's `u > 1 - p` can miss by a rounding error).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::load_index::LoadIndex;
use super::md5_ring::HashCache;
use super::registry::{Algorithm, Param, Probability, SchedulerConfig};
use super::tracked::{Policy, Tracked};
use super::{FunctionId, NodeId, SelectError, Time};

/// `ALPHA`: probability of a random node.
pub const ALPHA: Probability = Probability {
    name: "ALPHA",
    doc: "probability of a uniformly random node",
    default: 0.0,
};

/// `BETA`: probability of the hash node when the `ALPHA` test failed.
pub const BETA: Probability = Probability {
    name: "BETA",
    doc: "probability of the function's hash node, for calls not sent at random",
    default: 0.5,
};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "tradeoff",
    aliases: &[],
    summary: "random (ALPHA), hash (BETA) or least loaded, per call (HotFunctions)",
    params: &[Param::Probability(ALPHA), Param::Probability(BETA)],
    compared_by_default: true,
    build: |config| Box::new(Tracked::new(Tradeoff::new(TradeoffParams::resolve(config)))),
};

/// Parameters of `tradeoff`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeoffParams {
    /// [`ALPHA`]: probability of a random node (default 0.0).
    pub alpha: f64,
    /// [`BETA`]: probability of the hash node otherwise (default 0.5).
    pub beta: f64,
    /// Seed of the RNG: the run's seed (default 0).
    pub seed: u64,
}

impl Default for TradeoffParams {
    fn default() -> Self {
        Self {
            alpha: ALPHA.default,
            beta: BETA.default,
            seed: 0,
        }
    }
}

impl TradeoffParams {
    /// The values of a resolved configuration.
    pub fn resolve(config: &SchedulerConfig) -> Self {
        Self {
            alpha: config.probability(&ALPHA),
            beta: config.probability(&BETA),
            seed: config.seed(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tradeoff {
    alpha: f64,
    beta: f64,
    rng: ChaCha8Rng,
    hashes: HashCache,
}

impl Tradeoff {
    pub fn new(params: TradeoffParams) -> Self {
        Self {
            alpha: params.alpha,
            beta: params.beta,
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            hashes: HashCache::new(),
        }
    }
}

impl Tradeoff {
    /// The choice, with `hash` giving the function's ring hash (by name
    /// or by id: the same hash).
    fn choose_with(
        &mut self,
        loads: &LoadIndex,
        hash: impl FnOnce(&mut HashCache) -> u32,
    ) -> Result<NodeId, SelectError> {
        let online = loads.online();
        if online.is_empty() {
            return Err(SelectError::NoNodes);
        }
        if self.rng.gen::<f64>() < self.alpha {
            Ok(online[self.rng.gen_range(0..online.len())])
        } else if self.rng.gen::<f64>() < self.beta {
            let hash = hash(&mut self.hashes) as usize;
            Ok(online[hash % online.len()])
        } else {
            loads.least_loaded().ok_or(SelectError::NoNodes)
        }
    }
}

impl Policy for Tradeoff {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        self.choose_with(loads, |hashes| hashes.get(function))
    }

    fn choose_by_id(
        &mut self,
        loads: &LoadIndex,
        id: FunctionId,
        function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        self.choose_with(loads, |hashes| hashes.get_by_id(id, function))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::least_loaded::LeastLoaded;
    use crate::scheduler::md5_ring::ring_hash;
    use crate::scheduler::tracked::Tracked;
    use crate::scheduler::{Completion, Membership, NodeInfo, Scheduler};

    fn insert_all(s: &mut dyn Scheduler, n: u32) {
        for id in 0..n {
            s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
    }

    #[test]
    fn alpha_0_beta_0_is_least_loaded() {
        let mut t = Tracked::new(Tradeoff::new(TradeoffParams { alpha: 0.0, beta: 0.0, seed: 7 }));
        let mut ll = Tracked::new(LeastLoaded::new());
        insert_all(&mut t, 5);
        insert_all(&mut ll, 5);
        let mut x = 1u32;
        for i in 0..200 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let f = format!("F{}", x % 7);
            let a = t.select(&f, Time::ZERO).unwrap();
            assert_eq!(Ok(a), ll.select(&f, Time::ZERO), "call {i}");
            if x % 3 == 1 {
                let done = Completion {
                    node: a,
                    function: &f,
                    duration: std::time::Duration::ZERO,
                    cold: false,
                    ok: true,
                    internal: std::time::Duration::ZERO,
                };
                t.finished(&done, Time::ZERO);
                ll.finished(&done, Time::ZERO);
            }
        }
    }

    #[test]
    fn beta_1_sends_each_function_to_its_hash_node() {
        let mut t = Tracked::new(Tradeoff::new(TradeoffParams { alpha: 0.0, beta: 1.0, seed: 7 }));
        insert_all(&mut t, 6);
        for f in ["W1", "W2", "T3", "D8", "I5"] {
            let home = ring_hash(f.as_bytes()) % 6;
            for _ in 0..20 {
                assert_eq!(t.select(f, Time::ZERO), Ok(home));
            }
        }
    }

    #[test]
    fn alpha_1_is_random_and_seeded() {
        let run = |seed| {
            let mut t = Tracked::new(Tradeoff::new(TradeoffParams { alpha: 1.0, beta: 0.0, seed }));
            insert_all(&mut t, 8);
            (0..64)
                .map(|_| t.select("W1", Time::ZERO).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1), "same seed, same decisions");
        assert_ne!(a, run(2));
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() >= 4, "random placement spreads: {a:?}");
    }
}
