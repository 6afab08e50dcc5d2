//! `random`: a uniformly random online node, from a seeded RNG.
//!
//! The baseline every load balancer is measured against: each call goes to
//! one of the `n` online members with probability `1/n`, whatever the
//! function and the loads. It is the `ALPHA = 1` corner of `tradeoff`
//! (HotFunctions), kept as its own algorithm so that experiments can name
//! it; pingora-load-balancing's `Random` selection is the same rule, with
//! the difference that here the RNG is seeded (its `thread_rng()` makes
//! runs irreproducible, see CONVENTIONS.md).
//!
//! Randomness: a [`ChaCha8Rng`] seeded from the run's `seed`; each call
//! draws exactly one index in `0..n` over the online members in ascending
//! id order, so a run is reproduced by its seed and its sequence of
//! membership changes. No parameters.
//!
//! Membership: the draw is over the members online at the call, so a
//! removed node is never chosen and a re-inserted one is drawn again.
//!
//! Complexity per decision: O(1) (one draw, one slice index); no
//! allocation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::load_index::LoadIndex;
use super::registry::Algorithm;
use super::tracked::{Policy, Tracked};
use super::{NodeId, SelectError, Time};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "random",
    aliases: &[],
    summary: "a uniformly random online node (seeded)",
    params: &[],
    compared_by_default: false,
    build: |config| Box::new(Tracked::new(UniformRandom::new(config.seed()))),
};

#[derive(Debug, Clone)]
pub struct UniformRandom {
    rng: ChaCha8Rng,
}

impl UniformRandom {
    /// A scheduler whose draws come from a ChaCha8 stream seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Policy for UniformRandom {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn oblivious(&self) -> bool {
        true
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        _function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let online = loads.online();
        if online.is_empty() {
            return Err(SelectError::NoNodes);
        }
        Ok(online[self.rng.gen_range(0..online.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Membership, NodeInfo, Scheduler};

    fn with_nodes(n: u32, seed: u64) -> Tracked<UniformRandom> {
        Tracked::over_nodes(UniformRandom::new(seed), n)
    }

    fn decisions(s: &mut Tracked<UniformRandom>, calls: usize) -> Vec<NodeId> {
        (0..calls)
            .map(|_| s.select("W1", Time::ZERO).unwrap())
            .collect()
    }

    #[test]
    fn same_seed_same_decisions_other_seed_others() {
        let a = decisions(&mut with_nodes(8, 11), 64);
        assert_eq!(a, decisions(&mut with_nodes(8, 11), 64));
        assert_ne!(a, decisions(&mut with_nodes(8, 12), 64));
    }

    #[test]
    fn spreads_evenly_over_the_online_nodes() {
        let mut s = with_nodes(4, 3);
        let mut counts = [0u32; 4];
        for n in decisions(&mut s, 4000) {
            counts[n as usize] += 1;
        }
        // Expected 1000 each; a binomial(4000, 1/4) is within +-150 of its
        // mean with probability above 1 - 1e-10.
        for (node, &c) in counts.iter().enumerate() {
            assert!((850..=1150).contains(&c), "node {node}: {counts:?}");
        }
    }

    #[test]
    fn never_picks_a_removed_node_and_picks_it_again_once_back() {
        let mut s = with_nodes(3, 5);
        s.membership(Membership::Remove(1), Time::ZERO);
        assert!(decisions(&mut s, 200).iter().all(|&n| n != 1));
        s.membership(Membership::Insert(NodeInfo::new(1)), Time::ZERO);
        assert!(decisions(&mut s, 200).contains(&1));
        let mut empty = Tracked::new(UniformRandom::new(0));
        assert_eq!(empty.select("W1", Time::ZERO), Err(SelectError::NoNodes));
    }
}
