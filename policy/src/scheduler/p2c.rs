//! `p2c`: power of two choices over calls in flight.
//!
//! From Mitzenmacher, "The Power of Two Choices in Randomized Load
//! Balancing" (IEEE TPDS 12(10), 2001): draw two nodes uniformly at random
//! and send the call to the less loaded one. With one random choice the
//! most loaded of `n` nodes holds `Θ(log n / log log n)` more than average;
//! with two it is `Θ(log log n)`, at the cost of reading two loads. tower's
//! `p2c` balancer (tower-rs/tower, `tower/src/balance/p2c/service.rs`) is
//! the rule as implemented here: two *distinct* indices in random order,
//! the first unless the second is strictly less loaded.
//!
//! The rule, per call, with `n` online members (ascending id order):
//! - `n == 0`: [`SelectError::NoNodes`];
//! - `n == 1`: that node (nothing to compare, no draw);
//! - otherwise draw `a` uniformly in `0..n`, then `b` uniformly among the
//!   other `n - 1` indices (one draw in `0..n-1`, shifted past `a`); take
//!   `b` if it has strictly fewer calls in flight than `a`, else `a`.
//!
//! Ties go to the first drawn node, `a`, which is itself uniformly random,
//! so a tie is broken uniformly at random (as in tower). Load is the
//! number of calls in flight that the scheduler counts per node.
//!
//! Randomness: a [`ChaCha8Rng`] seeded from the run's `seed`; two draws per
//! call when two or more nodes are online, none otherwise. No parameters.
//!
//! Complexity per decision: O(1) (two draws, two load reads); no
//! allocation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::load_index::LoadIndex;
use super::registry::Algorithm;
use super::tracked::{Policy, Tracked};
use super::{NodeId, SelectError, Time};

pub const ALGORITHM: Algorithm = Algorithm {
    name: "p2c",
    aliases: &[],
    summary: "the less loaded of two random nodes (Mitzenmacher, 2001; tower's p2c)",
    params: &[],
    compared_by_default: false,
    build: |config| Box::new(Tracked::new(PowerOfTwoChoices::new(config.seed()))),
};

#[derive(Debug, Clone)]
pub struct PowerOfTwoChoices {
    rng: ChaCha8Rng,
}

impl PowerOfTwoChoices {
    /// A scheduler whose draws come from a ChaCha8 stream seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Policy for PowerOfTwoChoices {
    fn name(&self) -> &'static str {
        ALGORITHM.name
    }

    fn choose(
        &mut self,
        loads: &LoadIndex,
        _function: &str,
        _now: Time,
    ) -> Result<NodeId, SelectError> {
        let online = loads.online();
        match online.len() {
            0 => Err(SelectError::NoNodes),
            1 => Ok(online[0]),
            n => {
                let a = self.rng.gen_range(0..n);
                let mut b = self.rng.gen_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (online[a], online[b]);
                Ok(if loads.load(b) < loads.load(a) { b } else { a })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{Completion, Membership, NodeInfo, Scheduler};

    fn with_nodes(n: u32, seed: u64) -> Tracked<PowerOfTwoChoices> {
        Tracked::over_nodes(PowerOfTwoChoices::new(seed), n)
    }

    #[test]
    fn two_nodes_always_the_less_loaded_one() {
        // With two nodes both are always drawn: p2c is least loaded, and
        // alternates between them as calls pile up.
        let mut s = with_nodes(2, 9);
        for _ in 0..50 {
            let n = s.select("W1", Time::ZERO).unwrap();
            let (l0, l1) = (s.load(0).unwrap(), s.load(1).unwrap());
            assert!(l0.abs_diff(l1) <= 1, "after choosing {n}: {l0} vs {l1}");
        }
        assert_eq!((s.load(0), s.load(1)), (Some(25), Some(25)));
    }

    #[test]
    fn ties_are_broken_at_random() {
        // Idle, equal nodes: every choice is a tie, and both win some.
        let mut s = with_nodes(2, 4);
        let mut wins = [0u32; 2];
        for _ in 0..200 {
            let n = s.select("W1", Time::ZERO).unwrap();
            wins[n as usize] += 1;
            let done = Completion {
                node: n,
                function: "W1",
                duration: std::time::Duration::ZERO,
                cold: false,
                ok: true,
                internal: std::time::Duration::ZERO,
            };
            s.finished(&done, Time::ZERO);
        }
        assert!(wins.iter().all(|&w| w > 60), "{wins:?}");
    }

    #[test]
    fn never_takes_the_most_loaded_of_three_distinct_loads() {
        // Loads 0, 1, 2 on nodes 0, 1, 2: any two distinct nodes include
        // one less loaded than node 2, so node 2 is never chosen.
        let mut loads = LoadIndex::new();
        for id in 0..3 {
            loads.apply(&Membership::Insert(NodeInfo::new(id)));
        }
        for (node, calls) in [(1, 1), (2, 2)] {
            for _ in 0..calls {
                loads.started(node);
            }
        }
        let mut p = PowerOfTwoChoices::new(5);
        let mut chosen = [0u32; 3];
        for _ in 0..300 {
            chosen[p.choose(&loads, "W1", Time::ZERO).unwrap() as usize] += 1;
        }
        assert_eq!(chosen[2], 0, "{chosen:?}");
        // Node 0 wins every pair it is in (2 of the 3 pairs), node 1 the
        // remaining one: about 200 and 100.
        assert!(chosen[0] > chosen[1] && chosen[1] > 50, "{chosen:?}");
    }

    #[test]
    fn single_node_removed_nodes_and_determinism() {
        let mut s = with_nodes(1, 1);
        assert_eq!(s.select("W1", Time::ZERO), Ok(0));
        let run = |seed| {
            let mut s = with_nodes(6, seed);
            s.membership(Membership::Remove(3), Time::ZERO);
            (0..60)
                .map(|_| s.select("W1", Time::ZERO).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert!(!a.contains(&3));
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let mut empty = Tracked::new(PowerOfTwoChoices::new(0));
        assert_eq!(empty.select("W1", Time::ZERO), Err(SelectError::NoNodes));
    }
}
