//! Fan-out routes (`/clear`, `/prepare`, `/configure`) against real
//! stub-worker processes: a worker that hangs (SIGSTOPped) costs at most the
//! route's per-node timeout and makes the reply a 502 naming it; offline
//! nodes are skipped; when every node succeeds the reply is the original's.

// Tests read the wall clock to bound the waits they check.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::{config, wait_for, Balancer, StubWorker, PATIENCE};

/// The per-node budget the tests give the fan-out routes.
const NODE_TIMEOUT_MS: u64 = 1000;

/// `GET` with a client that waits far longer than any fan-out timeout:
/// (status, body text, time taken).
async fn timed_get(balancer: &Balancer, path: &str) -> (u16, String, Duration) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let started = Instant::now();
    let response = client
        .get(format!("{}{path}", balancer.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: no reply: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, text, started.elapsed())
}

/// The per-node result of `url` in a failure reply.
fn node_result<'a>(reply: &'a serde_json::Value, url: &str) -> &'a serde_json::Value {
    reply["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes list: {reply}"))
        .iter()
        .find(|n| n["url"] == url)
        .unwrap_or_else(|| panic!("{url} not listed: {reply}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_fails_fan_out_routes_within_their_timeout() {
    let a = StubWorker::start("s0", &[]);
    let b = StubWorker::start("s1", &[]);
    let mut cfg = config("rr", &[&a, &b]);
    cfg.fanout_timeout_ms = NODE_TIMEOUT_MS;
    cfg.prepare_timeout_ms = NODE_TIMEOUT_MS;
    let balancer = Balancer::start(cfg);

    // All healthy: the original's replies, unchanged.
    for route in ["clear", "prepare"] {
        let (status, text, _) = timed_get(&balancer, &format!("/{route}")).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            text,
            format!("done at {}\ndone at {}\ndone\n", a.url, b.url)
        );
    }
    let (status, text, _) = timed_get(&balancer, "/configure?image_limit=3").await;
    assert_eq!(status, 200, "{text}");
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = reply.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "lb and one reply per worker: {reply}");
    assert_eq!(reply["lb"], "rr");
    for stub in [&a, &b] {
        assert_eq!(reply[&stub.url]["State"]["image_limit"], "3", "{reply}");
    }

    // One worker hangs: each route answers within its timeout plus slack,
    // with a failure status naming that worker.
    b.signal("STOP");
    for path in ["/clear", "/prepare", "/configure?image_limit=4"] {
        let (status, text, took) = timed_get(&balancer, path).await;
        eprintln!("{path} with a hung worker: {status} after {took:?}");
        assert_eq!(status, 502, "{path}: {text}");
        assert!(took < PATIENCE, "{path} took {took:?}");
        let reply: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        assert_eq!(reply["Error"], true, "{reply}");
        let message = reply["Message"].as_str().unwrap();
        assert!(message.contains(&b.url), "{message}");
        let hung = node_result(&reply, &b.url);
        assert_eq!(hung["ok"], false, "{reply}");
        assert!(
            hung["error"].as_str().unwrap().contains("timed out"),
            "{reply}"
        );
        let fine = node_result(&reply, &a.url);
        assert_eq!(fine["ok"], true, "{reply}");
        assert_eq!(fine["status"], 200, "{reply}");
    }
    assert_eq!(a.stats().await["clear"], 2);
    assert_eq!(a.stats().await["prepare"], 2);
    b.signal("CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_nodes_are_skipped_by_fan_out_routes() {
    let a = StubWorker::start("s0", &[]);
    let b = StubWorker::start("s1", &[]);
    let mut cfg = config("rr", &[&a, &b]);
    cfg.health.interval_ms = 200;
    cfg.health.timeout_ms = 200;
    // Far beyond the test's patience: a call to the hung node would fail it.
    cfg.fanout_timeout_ms = 120_000;
    cfg.prepare_timeout_ms = 120_000;
    let balancer = Balancer::start(cfg);
    b.signal("STOP");
    wait_for("the stopped worker offline", || async {
        balancer.node_states().await[&b.url] == "offline"
    })
    .await;

    let (status, text, took) = timed_get(&balancer, "/clear").await;
    assert!(took < PATIENCE, "/clear took {took:?}");
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        text,
        format!("done at {}\nskipped at {} (offline)\ndone\n", a.url, b.url)
    );
    let (status, text, _) = timed_get(&balancer, "/configure?image_limit=3").await;
    assert_eq!(status, 200, "{text}");
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply[&a.url]["State"]["image_limit"], "3", "{reply}");
    assert_eq!(reply[&b.url], "skipped (offline)", "{reply}");

    b.signal("CONT");
    let stats = b.stats().await;
    assert_eq!(stats["clear"], 0, "{stats}");
    assert_eq!(stats["configure"].as_array().unwrap().len(), 0, "{stats}");
}
