//! The expectations of the original HotFunctions tests (and of the issue),
//! checked through the public [`build`] by name, with the original's
//! parameter names.

use policy::scheduler::ours::{GreedyLocality, OursParams};
use policy::scheduler::{
    build, canonical_name, Completion, Membership, NodeId, NodeInfo, ParamSet, Scheduler,
    SelectError, Time, Tracked,
};

/// The defaults with the original's bare parameter names set.
fn params(settings: &[(&str, &str)]) -> ParamSet {
    ParamSet::from_settings(settings.iter().copied()).unwrap()
}

fn with_nodes(alg: &str, params: &ParamSet, n: u32) -> Box<dyn Scheduler> {
    let mut s = build(alg, params).unwrap();
    for id in 0..n {
        s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
    }
    s
}

fn done(node: NodeId, function: &str) -> Completion<'_> {
    Completion {
        node,
        function,
        duration: std::time::Duration::from_millis(900),
        cold: false,
        ok: true,
        internal: std::time::Duration::ZERO,
    }
}

#[test]
fn build_knows_every_name_and_the_hash_alias() {
    for (name, canonical) in [
        ("rr", "rr"),
        ("ll", "ll"),
        ("ch", "ch"),
        ("hash", "ch"),
        ("pasch", "pasch"),
        ("ours", "ours"),
        ("tradeoff", "tradeoff"),
    ] {
        assert_eq!(canonical_name(name), Ok(canonical));
        assert_eq!(build(name, &ParamSet::default()).unwrap().name(), canonical);
    }
    let err = build("nope", &ParamSet::default()).unwrap_err();
    assert!(err.to_string().contains("known: rr, ll"), "{err}");
}

#[test]
fn rr_and_ll_give_i_mod_10_over_ten_idle_nodes() {
    for alg in ["rr", "ll"] {
        let mut s = with_nodes(alg, &ParamSet::default(), 10);
        for i in 0..80u32 {
            assert_eq!(s.select("W1", Time::ZERO), Ok(i % 10), "{alg} call {i}");
        }
    }
}

#[test]
fn ch_with_4_nodes_and_t4_stays_then_spills() {
    let mut s = with_nodes("hash", &params(&[("T", "4")]), 4);
    for f in ["A", "B", "C", "W1", "T3"] {
        let home = s.select(f, Time::ZERO).unwrap();
        for _ in 1..4 {
            assert_eq!(s.select(f, Time::ZERO), Ok(home), "{f} stays home");
        }
        let spill = s.select(f, Time::ZERO).unwrap();
        assert_ne!(spill, home, "{f} spills once home holds T");
        // Undo, so the next function starts from idle nodes.
        for _ in 0..4 {
            s.finished(&done(home, f), Time::ZERO);
        }
        s.finished(&done(spill, f), Time::ZERO);
    }
}

#[test]
fn ch_refuses_when_every_node_is_full() {
    let mut s = with_nodes("ch", &params(&[("T", "1")]), 2);
    s.select("A", Time::ZERO).unwrap();
    s.select("A", Time::ZERO).unwrap();
    assert_eq!(
        s.select("A", Time::ZERO),
        Err(SelectError::AllFull { bound: 1 })
    );
}

#[test]
fn ours_stream_a_a_b_c_b_c() {
    let mut s = Tracked::new(GreedyLocality::new(OursParams {
        t_max: 4,
        t_opt: 3,
        cache_size: 1,
    }));
    for id in 0..2 {
        s.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
    }
    let picks: Vec<NodeId> = ["A", "A", "B", "C", "B", "C"]
        .iter()
        .map(|f| s.select(f, Time::ZERO).unwrap())
        .collect();
    assert_eq!(picks, vec![0, 0, 1, 1, 1, 0]);
    assert_eq!(s.policy().assigned_nodes("C"), &[0]);
    // The same through build() with T1..T3.
    let ours = params(&[("T1", "4"), ("T2", "3"), ("T3", "1")]);
    let mut s = with_nodes("ours", &ours, 2);
    let picks: Vec<NodeId> = ["A", "A", "B", "C", "B", "C"]
        .iter()
        .map(|f| s.select(f, Time::ZERO).unwrap())
        .collect();
    assert_eq!(picks, vec![0, 0, 1, 1, 1, 0]);
}

#[test]
fn tradeoff_alpha0_beta0_is_ll_and_beta1_is_a_fixed_node_per_function() {
    let ll_params = params(&[("ALPHA", "0.0"), ("BETA", "0.0"), ("seed", "99")]);
    let mut t = with_nodes("tradeoff", &ll_params, 7);
    let mut ll = with_nodes("ll", &ParamSet::default(), 7);
    for i in 0..100u32 {
        let f = ["W1", "W2", "T3"][(i % 3) as usize];
        let a = t.select(f, Time::ZERO).unwrap();
        assert_eq!(ll.select(f, Time::ZERO), Ok(a), "call {i}");
        if i % 4 == 1 {
            t.finished(&done(a, f), Time::ZERO);
            ll.finished(&done(a, f), Time::ZERO);
        }
    }
    let hash_params = params(&[("ALPHA", "0"), ("BETA", "1")]);
    let mut t = with_nodes("tradeoff", &hash_params, 7);
    let mut homes = std::collections::BTreeSet::new();
    for f in ["W1", "W2", "W3", "T1", "T3", "I1", "D1", "D8"] {
        let home = t.select(f, Time::ZERO).unwrap();
        homes.insert(home);
        for _ in 0..30 {
            assert_eq!(t.select(f, Time::ZERO), Ok(home), "{f}");
        }
    }
    assert!(homes.len() > 1, "functions hash to different nodes");
}
