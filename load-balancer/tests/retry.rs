//! A call in flight on a worker that dies (`kill -9`) is sent once more to
//! another node when it is safe to repeat (issue 13, part 3), so the
//! client loses no call; one that is not safe is a 502 that says why.
//! Real stub-worker processes over real sockets; the calls last 3 s, so
//! they are in flight when the worker is killed.

mod support;

use std::sync::Arc;

use support::{calls_in_flight, config, wait_for, Balancer, StubWorker};

const LONG: &str = "3000";

fn stubs() -> (StubWorker, StubWorker) {
    (
        StubWorker::start("a", &["--delay-ms", LONG]),
        StubWorker::start("b", &["--delay-ms", LONG]),
    )
}

/// The node id (0 or 1) with a call in flight, once exactly one is.
async fn busy_node(balancer: &Balancer) -> u64 {
    wait_for("one call in flight", || async {
        balancer.loads().await.iter().map(|(_, l)| l).sum::<u64>() == 1
    })
    .await;
    let loads = balancer.loads().await;
    loads
        .iter()
        .find(|(_, l)| *l == 1)
        .map(|(id, _)| *id)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_on_a_killed_worker_are_retried_on_another() {
    let (a, mut b) = stubs();
    let balancer = Arc::new(Balancer::start(config("rr", &[&a, &b])));
    // Four sample-function calls, two on each node (rr).
    let calls = calls_in_flight(&balancer, "W1", 4).await;
    assert_eq!(balancer.loads().await, vec![(0, 2), (1, 2)]);
    b.signal("KILL");
    let mut retried = 0;
    for call in calls {
        let (status, reply) = call.await.unwrap();
        assert_eq!(status, 200, "a call was lost: {reply}");
        let info = &reply["LoadBalancingInfo"];
        assert_eq!(info["WorkerNodeId"], 0, "{reply}");
        if let Some(from) = info.get("RetriedFrom") {
            retried += 1;
            assert_eq!(from["WorkerNodeId"], 1, "{reply}");
            assert_eq!(from["WorkerNodeUrl"], b.url.as_str(), "{reply}");
            assert!(
                from["Reason"].as_str().unwrap().contains("in flight"),
                "{reply}"
            );
        }
    }
    assert_eq!(retried, 2);
    b.stop();
    // An ordinary reply is the original's: no RetriedFrom key.
    let (status, reply) = balancer.execute("W1").await;
    assert_eq!(status, 200);
    assert!(
        reply["LoadBalancingInfo"].get("RetriedFrom").is_none(),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_calls_safe_to_repeat_are_retried() {
    // (query, retried): the sample functions are safe unless the caller
    // says otherwise; other functions are not, unless the caller says so.
    for (query, retried) in [
        ("W1&idempotent=false", false),
        ("my-own-function", false),
        ("my-own-function&idempotent=true", true),
    ] {
        let (a, b) = stubs();
        let mut nodes = [a, b];
        let balancer = Arc::new(Balancer::start(config("rr", &[&nodes[0], &nodes[1]])));
        let call = {
            let balancer = balancer.clone();
            let query = query.to_string();
            tokio::spawn(async move { balancer.execute(&query).await })
        };
        let busy = busy_node(&balancer).await as usize;
        nodes[busy].signal("KILL");
        let (status, reply) = call.await.unwrap();
        if retried {
            assert_eq!(status, 200, "{query}: {reply}");
            assert_eq!(
                reply["LoadBalancingInfo"]["RetriedFrom"]["WorkerNodeId"], busy as u64,
                "{query}: {reply}"
            );
        } else {
            assert_eq!(status, 502, "{query}: {reply}");
            let message = reply["Message"].as_str().unwrap();
            assert!(message.contains("not retried"), "{query}: {message}");
        }
        nodes[busy].stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dying_mid_call_on_a_reused_connection_is_not_a_connect_failure() {
    // One server thread, so the second call reuses the kept-alive
    // connection of the first (the hot-path pool is per thread). Before,
    // the pool resent the request on a fresh connection when the reused
    // one closed before the reply, so a worker killed mid-call looked like
    // a refused connection, "never reached the node", and a call that is
    // not safe to repeat was run again elsewhere.
    let (a, b) = stubs();
    let mut nodes = [a, b];
    let mut cfg = config("rr", &[&nodes[0], &nodes[1]]);
    cfg.threads = 1;
    let balancer = Arc::new(Balancer::start(cfg));
    let warm: Vec<_> = (0..2)
        .map(|_| {
            let balancer = balancer.clone();
            tokio::spawn(async move { balancer.execute("my-own-function").await })
        })
        .collect();
    for call in warm {
        assert_eq!(call.await.unwrap().0, 200);
    }
    let call = {
        let balancer = balancer.clone();
        tokio::spawn(async move { balancer.execute("my-own-function").await })
    };
    let busy = busy_node(&balancer).await as usize;
    nodes[busy].signal("KILL");
    let (status, reply) = call.await.unwrap();
    assert_eq!(status, 502, "run again elsewhere: {reply}");
    let message = reply["Message"].as_str().unwrap();
    assert!(message.contains("in flight"), "{message}");
    assert!(message.contains("not retried"), "{message}");
    nodes[busy].stop();
}
