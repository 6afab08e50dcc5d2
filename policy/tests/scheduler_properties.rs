//! Property tests of every scheduler over random sequences of calls,
//! completions and membership changes.
//!
//! For each algorithm of the registry, built by name with random valid
//! parameters (drawn from each parameter's declared range), a random program of `select` / `finished` / `Remove` /
//! `Insert` steps is run against a reference model of the in-flight counts,
//! checking after every step:
//! - a selected node is an online member;
//! - the scheduler's per-node load equals the model's;
//! - bounded-load schedulers respect their bound while some node has room:
//!   `ch` never holds more than `T` calls on a node and refuses (AllFull)
//!   only when every online node holds `T`; `pasch` never goes above `T`
//!   and `ours` never above `TMax` when, before the call, some online node
//!   was below that bound; `chbl` never puts more than
//!   `ceil((1+EPSILON)·(m+1)/n)` calls on a node (`m` calls in flight on
//!   the `n` online nodes before the call), and never refuses a call;
//! - `p2c` never picks a node more loaded than every other online node;
//! - `chrlu` picks one of the first `RLU_CHAIN + 1` distinct nodes
//!   clockwise from the function's point on its ring, or else a least
//!   loaded online node;
//! - schedulers other than `ch` refuse a call only when no node is online;
//! - once every call is finished, every load is 0 (with all nodes online).

use std::collections::BTreeSet;

use policy::scheduler::md5_ring::{ring_hash, Md5Ring};
use policy::scheduler::registry::{self, Param};
use policy::scheduler::{
    build, chbl, chrlu, consistent_hash, ours, pasch, Completion, Membership, NodeId, NodeInfo,
    ParamSet, Scheduler, SelectError, Time, REGISTRY,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

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

/// Random valid parameters for every registered algorithm: counts near
/// their minimum (where bounds bite), probabilities anywhere in [0, 1],
/// reals anywhere in their range.
fn params() -> impl Strategy<Value = ParamSet> {
    let slots: Vec<(String, Param)> = REGISTRY
        .iter()
        .flat_map(|a| {
            a.params
                .iter()
                .map(move |p| (format!("{}.{}", a.name, p.name()), *p))
        })
        .collect();
    let n = slots.len();
    (
        proptest::collection::vec(0u32..6, n),
        proptest::collection::vec(0.0f64..=1.0, n),
        any::<u64>(),
    )
        .prop_map(move |(counts, probabilities, seed)| {
            let mut set = ParamSet::default();
            for (i, (key, param)) in slots.iter().enumerate() {
                let value = match param {
                    Param::Count(c) => c.min.saturating_add(counts[i]).min(c.max).to_string(),
                    Param::Probability(_) => probabilities[i].to_string(),
                    Param::Real(r) => (r.min + probabilities[i] * (r.max - r.min))
                        .clamp(r.min, r.max)
                        .to_string(),
                };
                set.set(key, &value).unwrap();
            }
            set.set("seed", &seed.to_string()).unwrap();
            set
        })
}

/// The bounds the invariants speak of, from the resolved parameters.
struct Bounds {
    ch_t: u32,
    pasch_t: u32,
    ours_t_max: u32,
    /// `chbl`'s `1+EPSILON`, in millionths.
    chbl_factor: u64,
    chrlu_chain: usize,
    chrlu_points: u32,
}

impl Bounds {
    fn of(params: &ParamSet) -> Self {
        let count = |alg: &str, param| params.scheduler(alg).unwrap().count(param);
        Self {
            ch_t: count("ch", &consistent_hash::T),
            pasch_t: count("pasch", &pasch::T),
            ours_t_max: count("ours", &ours::T1),
            chbl_factor: chbl::factor_millionths(
                params.scheduler("chbl").unwrap().real(&chbl::EPSILON),
            ),
            chrlu_chain: count("chrlu", &chrlu::RLU_CHAIN) as usize,
            chrlu_points: count("chrlu", &chrlu::RLU_POINTS),
        }
    }
}

/// The first `len` distinct nodes clockwise from `function`'s point on an
/// MD5 ring of `points` points per node over `online`.
fn ring_chain(online: &BTreeSet<NodeId>, points: u32, function: &str, len: usize) -> Vec<NodeId> {
    let mut ring = Md5Ring::new(points);
    ring.rebuild(&online.iter().copied().collect::<Vec<_>>());
    let start = ring.owner_index(ring_hash(function.as_bytes())).unwrap();
    let all = ring.points();
    let mut out: Vec<NodeId> = Vec::new();
    for k in 0..all.len() {
        let n = all[(start + k) % all.len()].node;
        if !out.contains(&n) && out.len() < len {
            out.push(n);
        }
    }
    out
}

/// Runs `steps` on `alg` and checks the invariants; returns an error
/// message on the first violation.
fn check(alg: &str, params: &ParamSet, initial: u32, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut s: Box<dyn Scheduler> = build(alg, params).unwrap();
    let bounds = Bounds::of(params);
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
                let in_flight_before: u64 =
                    online.iter().map(|&n| u64::from(model[n as usize])).sum();
                let chbl_cap = chbl::capacity(bounds.chbl_factor, in_flight_before, online.len());
                match s.select(function, now) {
                    Ok(node) => {
                        prop_assert!(online.contains(&node), "{alg}: chose {node}, not online");
                        model[node as usize] += 1;
                        in_flight.push((node, function));
                        let load = model[node as usize];
                        let before = load - 1;
                        let others_max = online
                            .iter()
                            .filter(|&&n| n != node)
                            .map(|&n| model[n as usize])
                            .max();
                        match alg {
                            "p2c" if others_max.is_some() => prop_assert!(
                                others_max.is_some_and(|m| before <= m),
                                "p2c: chose {node} with {before}, more than all others"
                            ),
                            "chrlu" => {
                                let chain = ring_chain(
                                    &online,
                                    bounds.chrlu_points,
                                    function,
                                    bounds.chrlu_chain + 1,
                                );
                                prop_assert!(
                                    chain.contains(&node) || Some(before) == min_before,
                                    "chrlu: chose {node} (load {before}), neither in its chain \
                                     {chain:?} nor least loaded ({min_before:?})"
                                );
                            }
                            "ch" => prop_assert!(load <= bounds.ch_t, "ch: load {load} > T"),
                            "pasch" if min_before.is_some_and(|m| m < bounds.pasch_t) => {
                                prop_assert!(
                                    load <= bounds.pasch_t,
                                    "pasch: load {load} > T with room"
                                )
                            }
                            "ours" if min_before.is_some_and(|m| m < bounds.ours_t_max) => {
                                prop_assert!(
                                    load <= bounds.ours_t_max,
                                    "ours: load {load} > TMax with room"
                                )
                            }
                            "chbl" => prop_assert!(
                                load <= chbl_cap,
                                "chbl: load {load} > cap {chbl_cap} (m {in_flight_before}, n {})",
                                online.len()
                            ),
                            _ => {}
                        }
                    }
                    Err(SelectError::NoNodes) => {
                        prop_assert!(online.is_empty(), "{alg}: NoNodes with {online:?} online")
                    }
                    Err(SelectError::AllFull { bound }) => {
                        prop_assert_eq!(alg, "ch", "only ch refuses for load");
                        prop_assert_eq!(bound, bounds.ch_t);
                        prop_assert!(
                            online.iter().all(|&n| model[n as usize] >= bounds.ch_t),
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
                        internal: std::time::Duration::ZERO,
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
            internal: std::time::Duration::ZERO,
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
        alg in proptest::sample::select(registry::names().collect::<Vec<_>>()),
        params in params(),
        initial in 0..=MAX_NODES,
        steps in proptest::collection::vec(step(), 0..200),
    ) {
        check(alg, &params, initial, &steps)?;
    }
}

/// Each registered algorithm gets its own cases too, so none is left to
/// chance.
#[test]
fn each_algorithm_keeps_its_invariants() {
    for_each_algorithm(64, check);
}

/// Runs `run` on `cases` random programs (parameters, nodes at the
/// start, up to 300 steps) for each registered algorithm.
fn for_each_algorithm(
    cases: u32,
    run: fn(&str, &ParamSet, u32, &[Step]) -> Result<(), TestCaseError>,
) {
    for alg in registry::names() {
        let mut runner = TestRunner::new(Config {
            cases,
            ..Config::default()
        });
        let strategy = (
            params(),
            0..=MAX_NODES,
            proptest::collection::vec(step(), 0..300),
        );
        if let Err(e) = runner.run(&strategy, |(params, initial, steps)| {
            run(alg, &params, initial, &steps)
        }) {
            panic!("{alg}: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `chbl` with a small slack, where its bound bites often (the
    /// registry-wide cases draw EPSILON anywhere in `[0, 100]`).
    #[test]
    fn chbl_keeps_its_bound_with_a_small_epsilon(
        epsilon in 0.0f64..=0.5,
        points in 1u32..=8,
        initial in 1..=MAX_NODES,
        steps in proptest::collection::vec(step(), 0..300),
    ) {
        let params = ParamSet::from_settings([
            ("chbl.EPSILON", epsilon.to_string()),
            ("chbl.CHBL_POINTS", points.to_string()),
        ])
        .unwrap();
        check("chbl", &params, initial, &steps)?;
    }
}

#[test]
fn chbl_spreads_a_hot_function_to_the_bound() {
    // One function, EPSILON 0, 4 nodes, 12 calls in flight: the bound
    // ceil((m+1)/4) leaves every node with exactly 3.
    let params = ParamSet::from_settings([("chbl.EPSILON", "0")]).unwrap();
    let steps: Vec<Step> = (0..12).map(|_| Step::Select(0)).collect();
    check("chbl", &params, 4, &steps).unwrap();
    let mut s = build("chbl", &params).unwrap();
    for id in 0..4 {
        s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
    }
    for _ in 0..12 {
        s.select("W1", Time::ZERO).unwrap();
    }
    assert_eq!(
        (0..4).map(|n| s.load(n).unwrap()).collect::<Vec<_>>(),
        [3, 3, 3, 3]
    );
}

#[test]
fn ch_refuses_exactly_when_all_full() {
    // A deterministic check that the AllFull branch is reachable and exact.
    let params = ParamSet::from_settings([("T", "2")]).unwrap();
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

/// Runs `steps` on two schedulers of `alg` built alike, one asked by name
/// ([`Scheduler::select`], [`Scheduler::finished`]) and one by id
/// ([`Scheduler::select_by_id`], [`Scheduler::finished_by_id`], the id
/// being the function's index in `FUNCTIONS`): every choice, refusal and
/// load must be the same.
fn same_by_id(
    alg: &str,
    params: &ParamSet,
    initial: u32,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let mut by_name: Box<dyn Scheduler> = build(alg, params).unwrap();
    let mut by_id: Box<dyn Scheduler> = build(alg, params).unwrap();
    let mut in_flight: Vec<(NodeId, usize)> = Vec::new();
    for id in 0..initial {
        for s in [&mut by_name, &mut by_id] {
            s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let now = Time::from_millis(i as u64);
        match *step {
            Step::Select(f) => {
                let function = FUNCTIONS[f];
                let a = by_name.select(function, now);
                let b = by_id.select_by_id(f as u32, function, now);
                prop_assert_eq!(&a, &b, "{}: step {} ({})", alg, i, function);
                if let Ok(node) = a {
                    in_flight.push((node, f));
                }
            }
            Step::Finish(k) if !in_flight.is_empty() => {
                let (node, f) = in_flight.remove(k % in_flight.len());
                let done = Completion::warm(
                    node,
                    FUNCTIONS[f],
                    std::time::Duration::from_millis(3),
                    std::time::Duration::from_millis(2),
                );
                by_name.finished(&done, now);
                by_id.finished_by_id(f as u32, &done, now);
            }
            Step::Finish(_) => {}
            Step::Remove(node) | Step::Insert(node) => {
                let change = match *step {
                    Step::Remove(_) => Membership::Remove(node),
                    _ => Membership::Insert(NodeInfo::new(node)),
                };
                by_name.membership(change.clone(), now);
                by_id.membership(change, now);
            }
        }
        for n in 0..MAX_NODES {
            prop_assert_eq!(
                by_name.load(n),
                by_id.load(n),
                "{}: load of {} at step {}",
                alg,
                n,
                i
            );
        }
    }
    Ok(())
}

/// The simulator asks by id ([`Scheduler::select_by_id`]), the live
/// balancer by name: for every algorithm, the same decisions.
#[test]
fn every_algorithm_chooses_the_same_by_id_as_by_name() {
    for_each_algorithm(48, same_by_id);
}
