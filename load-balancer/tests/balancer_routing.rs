//! Routing through the real balancer (`run` on a loopback port) in front of
//! real stub-worker processes: every algorithm decides exactly as the pure
//! scheduler does, and the load-driven ones react to calls in flight.

mod support;

use std::time::Duration;

use policy::scheduler::{registry, Completion, Membership, NodeInfo, ParamSet, Time};
use support::{calls_in_flight, config, wait_for, Balancer, StubWorker};

const FUNCTIONS: &[&str] = &["W1", "W2", "T3", "I1", "D8", "W11", "T1", "I5", "D2", "W7"];

/// Sequential calls (each finished before the next) through the balancer
/// give the same nodes as the same scheduler driven directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_routes_as_its_pure_scheduler() {
    let stubs: Vec<StubWorker> = (0..3)
        .map(|i| StubWorker::start(&format!("s{i}"), &[]))
        .collect();
    let refs: Vec<&StubWorker> = stubs.iter().collect();
    for algorithm in registry::names() {
        let mut cfg = config(algorithm, &refs);
        cfg.params = ParamSet::from_settings([("seed", "7")]).unwrap();
        let balancer = Balancer::start(cfg.clone());
        let mut expected = cfg.params.build(algorithm).unwrap();
        for id in 0..3 {
            expected.membership(Membership::Insert(NodeInfo::new(id)), Time::ZERO);
        }
        let mut used = std::collections::BTreeSet::new();
        for round in 0..4 {
            for f in FUNCTIONS {
                let want = expected.select(f, Time::ZERO).unwrap();
                expected.finished(
                    &Completion {
                        node: want,
                        function: f,
                        duration: Duration::ZERO,
                        cold: false,
                        ok: true,
                        internal: std::time::Duration::ZERO,
                    },
                    Time::ZERO,
                );
                let (status, reply) = balancer.execute(f).await;
                assert_eq!(status, 200, "{algorithm}: {reply}");
                let info = &reply["LoadBalancingInfo"];
                assert_eq!(
                    info["WorkerNodeId"], want,
                    "{algorithm} round {round} {f}: {reply}"
                );
                assert_eq!(info["Algorithm"], algorithm);
                // The reply came from the stub the id names.
                let served_by = reply["Meta"]["ContainerName"].as_str().unwrap();
                assert_eq!(served_by, format!("s{want}-{f}"));
                used.insert(want);
            }
        }
        if matches!(algorithm, "rr" | "ch" | "pasch" | "tradeoff") {
            // These spread; ll and ours with idle nodes take the first.
            assert!(used.len() > 1, "{algorithm} used only {used:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_cycles_over_the_nodes() {
    let stubs: Vec<StubWorker> = (0..3)
        .map(|i| StubWorker::start(&format!("s{i}"), &[]))
        .collect();
    let balancer = Balancer::start(config("rr", &stubs.iter().collect::<Vec<_>>()));
    let mut picks = Vec::new();
    for _ in 0..9 {
        picks.push(balancer.execute_node("W1").await);
    }
    assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
}

/// ll: with a slow call in flight on one node, every other call goes to
/// the idle node (rr would alternate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_avoids_the_busy_node() {
    let a = StubWorker::start("s0", &["--delay", "slow=4000"]);
    let b = StubWorker::start("s1", &["--delay", "slow=4000"]);
    let balancer = std::sync::Arc::new(Balancer::start(config("ll", &[&a, &b])));
    let slow = {
        let balancer = balancer.clone();
        tokio::spawn(async move { balancer.execute_node("slow").await })
    };
    wait_for("the slow call in flight", || async {
        balancer.loads().await.iter().map(|(_, l)| l).sum::<u64>() == 1
    })
    .await;
    let busy = balancer
        .loads()
        .await
        .iter()
        .find(|(_, l)| *l == 1)
        .unwrap()
        .0 as u32;
    for _ in 0..6 {
        assert_ne!(balancer.execute_node("W1").await, busy);
    }
    assert_eq!(slow.await.unwrap(), busy);
}

/// ch (bounded load, T=2): calls of one function stay on its ring node
/// until it holds T calls, then spill to another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_sticks_then_spills_at_the_bound() {
    let stubs: Vec<StubWorker> = (0..3)
        .map(|i| StubWorker::start(&format!("s{i}"), &["--delay", "slow=5000"]))
        .collect();
    let mut cfg = config("ch", &stubs.iter().collect::<Vec<_>>());
    cfg.params.set("T", "2").unwrap();
    let balancer = std::sync::Arc::new(Balancer::start(cfg));

    // Sequential calls of one function: always the same node.
    let home = balancer.execute_node("slowless").await;
    for _ in 0..5 {
        assert_eq!(balancer.execute_node("slowless").await, home);
    }

    let calls = calls_in_flight(&balancer, "slow", 3).await;
    let mut loads: Vec<u64> = balancer.loads().await.iter().map(|(_, l)| *l).collect();
    loads.sort_unstable();
    assert_eq!(
        loads,
        [0, 1, 2],
        "two calls on the ring node, the third spilled"
    );
    let mut nodes = Vec::new();
    for call in calls {
        let (status, reply) = call.await.unwrap();
        assert_eq!(status, 200, "{reply}");
        nodes.push(reply["LoadBalancingInfo"]["WorkerNodeId"].clone());
    }
    assert_eq!(nodes[0], nodes[1]);
    assert_ne!(nodes[1], nodes[2]);
}
