//! Property tests of every scheduler over random sequences of calls,
//! completions and membership changes.
//!
//! For each algorithm of [`ALGORITHMS`], built by name with random
//! parameters, a random program of `select` / `finished` / `Remove` /
//! `Insert` steps is run against a reference model of the in-flight counts,
//! checking after every step:
//! - a selected node is an online member;
//! - the scheduler's per-node load equals the model's;
//! - bounded-load schedulers respect their bound while some node has room:
//!   `ch` never holds more than `T` calls on a node and refuses (AllFull)
//!   only when every online node holds `T`; `pasch` never goes above `T`
//!   and `ours` never above `TMax` when, before the call, some online node
//!   was below that bound;
//! - schedulers other than `ch` refuse a call only when no node is online;
//! - once every call is finished, every load is 0 (with all nodes online).

use std::collections::BTreeSet;

use policy::scheduler::{
    build, Completion, Membership, NodeId, NodeInfo, Params, Scheduler, SelectError, Time,
    ALGORITHMS,
};
use proptest::prelude::*;

const MAX_NODES: u32 = 8;
const FUNCTIONS: &[&str] = &["W1", "W2", "W3", "T1", "I1", "D1", "D8"];

#[derive(Debug, Clone)]
enum Step {
    /// Select for FUNCTIONS[i].
    Select(usize),
    /// Finish the k-th (mod count) call in flight.
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

fn params() -> impl Strategy<Value = Params> {
    (
        1u32..6,
        1u32..7,
        1u32..7,
        1u32..4,
        0.0f64..=1.0,
        0.0f64..=1.0,
        any::<u64>(),
    )
        .prop_map(|(t, t1, t2, t3, alpha, beta, seed)| Params {
            t,
            t1,
            t2,
            t3,
            alpha,
            beta,
            seed,
        })
}

/// Runs `steps` on `alg` and checks the invariants; returns an error
/// message on the first violation.
fn check(alg: &str, params: &Params, initial: u32, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut s: Box<dyn Scheduler> = build(alg, params).unwrap();
    let mut online: BTreeSet<NodeId> = BTreeSet::new();
    let mut model = vec![0u32; MAX_NODES as usize];
    let mut in_flight: Vec<(NodeId, &str)> = Vec::new();
    for id in 0..initial {
        s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        online.insert(id);
    }
    for (i, step) in steps.iter().enumerate() {
        let now = Time::from_millis(i as u64);
        match *step {
            Step::Select(f) => {
                let function = FUNCTIONS[f];
                let min_before = online.iter().map(|&n| model[n as usize]).min();
                match s.select(function, now) {
                    Ok(node) => {
                        prop_assert!(online.contains(&node), "{alg}: chose {node}, not online");
                        model[node as usize] += 1;
                        in_flight.push((node, function));
                        let load = model[node as usize];
                        match alg {
                            "ch" => prop_assert!(load <= params.t, "ch: load {load} > T"),
                            "pasch" if min_before.is_some_and(|m| m < params.t) => {
                                prop_assert!(load <= params.t, "pasch: load {load} > T with room")
                            }
                            "ours" if min_before.is_some_and(|m| m < params.t1) => {
                                prop_assert!(
                                    load <= params.t1,
                                    "ours: load {load} > TMax with room"
                                )
                            }
                            _ => {}
                        }
                    }
                    Err(SelectError::NoNodes) => {
                        prop_assert!(online.is_empty(), "{alg}: NoNodes with {online:?} online")
                    }
                    Err(SelectError::AllFull { bound }) => {
                        prop_assert_eq!(alg, "ch", "only ch refuses for load");
                        prop_assert_eq!(bound, params.t);
                        prop_assert!(
                            online.iter().all(|&n| model[n as usize] >= params.t),
                            "ch: AllFull with room"
                        );
                    }
                }
            }
            Step::Finish(k) => {
                if !in_flight.is_empty() {
                    let (node, function) = in_flight.swap_remove(k % in_flight.len());
                    model[node as usize] -= 1;
                    let done = Completion {
                        node,
                        function,
                        duration: std::time::Duration::from_millis(k as u64 % 5000),
                        cold: k % 3 == 0,
                        ok: k % 7 != 0,
                    };
                    s.finished(&done, now);
                }
            }
            Step::Remove(id) => {
                s.membership(Membership::Remove(id), now);
                online.remove(&id);
            }
            Step::Insert(id) => {
                s.membership(Membership::Insert(NodeInfo::new(id)), now);
                online.insert(id);
            }
        }
        prop_assert_eq!(s.members(), online.iter().copied().collect::<Vec<_>>());
        for id in 0..MAX_NODES {
            let expected = online.contains(&id).then(|| model[id as usize]);
            prop_assert_eq!(s.load(id), expected, "{} load of node {}", alg, id);
        }
    }
    // Finish everything, bring every node back: all loads are 0.
    let end = Time::from_secs(3600);
    for (node, function) in in_flight.drain(..) {
        let done = Completion {
            node,
            function,
            duration: std::time::Duration::from_secs(1),
            cold: false,
            ok: true,
        };
        s.finished(&done, end);
    }
    for id in 0..MAX_NODES {
        s.membership(Membership::Insert(NodeInfo::new(id)), end);
    }
    for id in 0..MAX_NODES {
        prop_assert_eq!(
            s.load(id),
            Some(0),
            "{} node {} after all finished",
            alg,
            id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_scheduler_keeps_its_invariants(
        alg in proptest::sample::select(ALGORITHMS),
        params in params(),
        initial in 0..=MAX_NODES,
        steps in proptest::collection::vec(step(), 0..200),
    ) {
        check(alg, &params, initial, &steps)?;
    }
}

/// Each algorithm gets its own cases too, so none is left to chance.
macro_rules! per_algorithm {
    ($($test:ident => $alg:literal),* $(,)?) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            $(
                #[test]
                fn $test(
                    params in params(),
                    initial in 0..=MAX_NODES,
                    steps in proptest::collection::vec(step(), 0..300),
                ) {
                    check($alg, &params, initial, &steps)?;
                }
            )*
        }
    };
}

per_algorithm! {
    rr_invariants => "rr",
    ll_invariants => "ll",
    ch_invariants => "ch",
    pasch_invariants => "pasch",
    ours_invariants => "ours",
    tradeoff_invariants => "tradeoff",
}

#[test]
fn ch_refuses_exactly_when_all_full() {
    // A deterministic check that the AllFull branch is reachable and exact.
    let params = Params {
        t: 2,
        ..Params::default()
    };
    let steps: Vec<Step> = (0..7).map(|i| Step::Select(i % FUNCTIONS.len())).collect();
    check("ch", &params, 3, &steps).unwrap();
    let mut s = build("ch", &params).unwrap();
    for id in 0..3 {
        s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
    }
    for _ in 0..6 {
        s.select("W1", Time::ZERO).unwrap();
    }
    assert_eq!(
        s.select("W2", Time::ZERO),
        Err(SelectError::AllFull { bound: 2 })
    );
}
