//! Passive health: a node that answers calls is alive, even when its
//! `/health` cannot answer in time (a busy worker). A real stub-worker
//! process whose `/health` replies long after the check's timeout serves
//! a steady flow of calls through the real balancer.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use support::{config, wait_for, Balancer, StubWorker};

/// Health rounds that must pass while calls flow (several times `fall`).
const ROUNDS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answering_calls_stays_online_while_its_checks_fail() {
    // Every check times out (100 ms budget, 5 s reply).
    let worker = StubWorker::start("s0", &["--health-delay-ms", "5000", "--threads", "2"]);
    let mut cfg = config("rr", &[&worker]);
    cfg.health.interval_ms = 300;
    cfg.health.timeout_ms = 100;
    cfg.health.fall = 3;
    let balancer = Arc::new(Balancer::start(cfg));

    // Two callers, one call after the other, until the worker has seen
    // ROUNDS health checks.
    let ok = Arc::new(AtomicU64::new(0));
    let unavailable = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (balancer, ok, unavailable, other, done) = (
                balancer.clone(),
                ok.clone(),
                unavailable.clone(),
                other.clone(),
                done.clone(),
            );
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let status = balancer.get("/execute?name=W1").await.status().as_u16();
                    match status {
                        200 => &ok,
                        503 => &unavailable,
                        _ => &other,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_for("the health rounds", || async {
        worker.stats().await["health"].as_u64().unwrap() >= ROUNDS
    })
    .await;
    done.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let (ok, unavailable, other) = (
        ok.load(Ordering::Relaxed),
        unavailable.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    eprintln!("over {ROUNDS} failed checks: {ok} calls ok, {unavailable} 503, {other} other");
    assert_eq!(unavailable, 0, "503 'no online node' while calls succeeded");
    assert_eq!(other, 0);
    assert!(ok > 0);
    assert_eq!(balancer.node_states().await[&worker.url], "online");

    // No more calls, checks still failing: the node goes offline.
    wait_for("the idle node with failing checks offline", || async {
        balancer.node_states().await[&worker.url] == "offline"
    })
    .await;
    let (status, _) = balancer.execute("W1").await;
    assert_eq!(status, 503);
}
