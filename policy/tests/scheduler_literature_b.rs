//! Invariants of `openwhisk`, `fnlb`, `hermod` and `hiku` over random
//! programs of calls, completions and membership changes, checked against
//! a model of the in-flight calls:
//!
//! - `openwhisk` places a call where its memory fits whenever some online
//!   node had room for it before the call (memory of the calls in flight,
//!   as declared per function);
//! - `hermod` places a call on a node with a free core whenever some online
//!   node had one, and on a least-loaded node otherwise;
//! - `hiku` places a call of a function with no usable idle entry on a
//!   least-connected node;
//! - `fnlb` sends a function none of whose calls has finished to its jump
//!   hash home over the online nodes;
//! - all four: the chosen node is online, and the same seed and program
//!   give the same decisions.

use std::collections::BTreeSet;
use std::time::Duration;

use policy::scheduler::fnlb::function_key;
use policy::scheduler::jump_hash::jump_consistent_hash;
use policy::scheduler::{
    build, Completion, Membership, NodeId, NodeInfo, ParamSet, Scheduler, Time,
};
use proptest::prelude::*;

const MAX_NODES: u32 = 6;
const FUNCTIONS: &[(&str, u32)] = &[("W1", 256), ("W2", 512), ("T1", 1024), ("D8", 128)];

#[derive(Debug, Clone)]
enum Step {
    Select(usize),
    Finish(usize),
    Remove(NodeId),
    Insert(NodeId),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..FUNCTIONS.len()).prop_map(Step::Select),
        4 => any::<usize>().prop_map(Step::Finish),
        1 => (0..MAX_NODES).prop_map(Step::Remove),
        1 => (0..MAX_NODES).prop_map(Step::Insert),
    ]
}

fn node(id: NodeId) -> NodeInfo {
    // Small nodes so that the bounds bite: 1..3 cores, 512..1536 MB.
    NodeInfo {
        cores: 1 + id % 3,
        memory_mb: 512 * (1 + id % 3),
        ..NodeInfo::new(id)
    }
}

/// Runs `steps` on `alg`, checking the invariants; returns the decisions.
fn run(alg: &str, seed: u64, steps: &[Step]) -> Result<Vec<NodeId>, TestCaseError> {
    let params = ParamSet::from_settings([("seed", seed.to_string())]).unwrap();
    let mut s: Box<dyn Scheduler> = build(alg, &params).unwrap();
    for &(f, mb) in FUNCTIONS {
        s.declare_function(f, mb);
    }
    let mut online: BTreeSet<NodeId> = BTreeSet::new();
    for id in 0..3 {
        s.membership(Membership::Insert(node(id)), Time::ZERO);
        online.insert(id);
    }
    let mut in_flight: Vec<(NodeId, usize)> = Vec::new();
    let mut finished_once = [false; 4];
    let mut decisions = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let now = Time::from_millis(i as u64);
        match *step {
            Step::Select(f) => {
                let (name, mb) = FUNCTIONS[f];
                let calls = |n: NodeId| in_flight.iter().filter(|c| c.0 == n).count() as u32;
                let used = |n: NodeId| -> u32 {
                    in_flight
                        .iter()
                        .filter(|c| c.0 == n)
                        .map(|c| FUNCTIONS[c.1].1)
                        .sum()
                };
                let room = online.iter().any(|&n| used(n) + mb <= node(n).memory_mb);
                let free_core = online.iter().any(|&n| calls(n) < node(n).cores);
                let min_calls = online.iter().map(|&n| calls(n)).min();
                let chosen = match s.select(name, now) {
                    Ok(n) => n,
                    Err(e) => {
                        prop_assert!(online.is_empty(), "{alg}: {e} with {online:?}");
                        continue;
                    }
                };
                prop_assert!(online.contains(&chosen), "{alg}: {chosen} not online");
                match alg {
                    "openwhisk" if room => prop_assert!(
                        used(chosen) + mb <= node(chosen).memory_mb,
                        "openwhisk: {name} ({mb} MB) on full node {chosen} with room elsewhere"
                    ),
                    "hermod" if free_core => prop_assert!(
                        calls(chosen) < node(chosen).cores,
                        "hermod: node {chosen} has no free core, another has"
                    ),
                    "hermod" => prop_assert_eq!(Some(calls(chosen)), min_calls),
                    "hiku" if !finished_once[f] => {
                        prop_assert_eq!(Some(calls(chosen)), min_calls, "hiku: not least connected")
                    }
                    "fnlb" if !finished_once[f] => {
                        let nodes: Vec<NodeId> = online.iter().copied().collect();
                        let home = jump_consistent_hash(function_key(name), nodes.len() as u32);
                        prop_assert_eq!(chosen, nodes[home as usize]);
                    }
                    _ => {}
                }
                in_flight.push((chosen, f));
                decisions.push(chosen);
            }
            Step::Finish(k) => {
                if !in_flight.is_empty() {
                    let (n, f) = in_flight.swap_remove(k % in_flight.len());
                    finished_once[f] = true;
                    let done = Completion {
                        node: n,
                        function: FUNCTIONS[f].0,
                        duration: Duration::from_millis(k as u64 % 4000),
                        cold: k % 3 == 0,
                        ok: k % 7 != 0,
                        internal: Duration::from_millis(k as u64 % 1000),
                    };
                    s.finished(&done, now);
                }
            }
            Step::Remove(id) => {
                s.membership(Membership::Remove(id), now);
                online.remove(&id);
            }
            Step::Insert(id) => {
                s.membership(Membership::Insert(node(id)), now);
                online.insert(id);
            }
        }
    }
    Ok(decisions)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn literature_schedulers_keep_their_rules(
        alg in proptest::sample::select(vec!["openwhisk", "fnlb", "hermod", "hiku"]),
        seed in any::<u64>(),
        steps in proptest::collection::vec(step(), 0..200),
    ) {
        let a = run(alg, seed, &steps)?;
        prop_assert_eq!(a, run(alg, seed, &steps)?, "{} is not deterministic", alg);
    }
}
