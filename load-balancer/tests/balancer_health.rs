//! Health checks against real stub-worker processes: a worker that stops
//! goes offline and gets no calls; restarted on its port, it comes back.

mod support;

use std::time::Duration;

use support::{config, wait_within, Balancer, StubWorker};

/// The bound for a 200 ms check interval (fall 2, rise 1: about
/// 0.4-0.6 s expected).
const FLIP_WITHIN: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_goes_offline_and_comes_back_when_restarted() {
    let mut a = StubWorker::start("s0", &[]);
    let b = StubWorker::start("s1", &[]);
    let mut cfg = config("rr", &[&a, &b]);
    cfg.health.interval_ms = 200;
    cfg.health.timeout_ms = 200;
    let balancer = Balancer::start(cfg);
    let a_url = a.url.clone();
    let port = a.port;

    a.stop();
    let took = wait_within("the stopped worker offline", FLIP_WITHIN, || async {
        balancer.node_states().await[&a_url] == "offline"
    })
    .await;
    eprintln!("offline after {took:?}");
    for _ in 0..4 {
        assert_eq!(
            balancer.execute_node("W1").await,
            1,
            "offline node got a call"
        );
    }
    assert_eq!(balancer.node_states().await[&b.url], "online");

    let a = StubWorker::start_on("s0", port, &[]);
    assert_eq!(a.url, a_url);
    let took = wait_within("the restarted worker online", FLIP_WITHIN, || async {
        balancer.node_states().await[&a_url] == "online"
    })
    .await;
    eprintln!("online after {took:?}");
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(balancer.execute_node("W1").await);
    }
    assert!(
        nodes.contains(&0),
        "restarted node gets calls again: {nodes:?}"
    );
    assert!(a.stats().await["execute"]["W1"].as_u64().unwrap() >= 1);
}
