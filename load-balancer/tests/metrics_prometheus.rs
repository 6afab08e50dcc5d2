//! `GET /metrics` scraped by a real Prometheus server (issue 15, part 3):
//! the `load-balancer` binary in front of two stub workers, a known number
//! of calls (one of them to a node that refuses connections, so retried),
//! then a real Prometheus scraping it (`prometheus` below, shared with the
//! worker's test). Its HTTP API must report the target up and the
//! counters equal to the calls made.
#![allow(clippy::disallowed_methods)] // deadlines read the wall clock

mod support;

#[path = "../../http-front/test-support/prometheus.rs"]
mod prometheus;

use std::process::Child;

use prometheus::Prometheus;
use support::{client, StubWorker};

/// A child process this test started, killed (by its pid) on drop.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `load-balancer rr` on a free loopback port in front of `nodes`
/// (URLs), health checks a minute apart (membership changes only when a
/// call finds a node dead); returns the process and its URL.
fn start_balancer(nodes: &[&str], extra: &[&str]) -> (Owned, String) {
    let nodes = nodes.join(",");
    let mut args = vec!["--nodes", &nodes, "--health-interval-ms", "60000"];
    args.extend_from_slice(extra);
    let (child, url) = support::spawn_balancer(&args);
    (Owned(child), url)
}

async fn call(balancer: &str, function: &str) -> u16 {
    client()
        .get(format!("{balancer}/execute?name={function}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_calls_made() {
    let a = StubWorker::start("a", &["--fail", "broken"]);
    let b = StubWorker::start("b", &["--fail", "broken"]);
    // Node 2 refuses connections: the first call sent there is retried on
    // the next node (a call without a reply, one retry), and node 2 goes
    // offline.
    let dead = support::dead_url();
    let (_balancer, url) = start_balancer(&[&a.url, &b.url, &dead.url], &[]);

    // A known mix: 20 + 10 successful calls (each function's first call
    // on each stub is cold: 4 cold starts), 4 failures (500).
    for (function, n, status) in [("fa", 20, 200), ("fb", 10, 200), ("broken", 4, 500)] {
        for _ in 0..n {
            assert_eq!(call(&url, function).await, status, "{function}");
        }
    }

    // The balancer's own text, before Prometheus sees it.
    let reply = client().get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert!(reply.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = reply.text().await.unwrap();
    assert!(
        text.contains(
            r#"balancer_calls_total{function="fa",node="0",status="2xx",start="cold"} 1"#
        ),
        "{text}"
    );

    let prometheus = Prometheus::start("balancer", url.strip_prefix("http://").unwrap());
    prometheus.wait_target_up().await;

    let catalog = sample_functions::catalog().functions.len() as f64;
    let expected = [
        ("sum(balancer_calls_total)", 35.0),
        (r#"sum(balancer_calls_total{status="2xx"})"#, 30.0),
        (r#"sum(balancer_calls_total{status="5xx"})"#, 4.0),
        // 20 replies, and the one sent to the dead node.
        (r#"sum(balancer_calls_total{function="fa"})"#, 21.0),
        (r#"sum(balancer_calls_total{start="cold"})"#, 4.0),
        (
            r#"sum(balancer_calls_total{node="2",status="none",start="unknown"})"#,
            1.0,
        ),
        ("sum(balancer_call_duration_seconds_count)", 35.0),
        ("count(balancer_node_up)", 3.0),
        ("sum(balancer_node_up)", 2.0),
        (r#"sum(balancer_node_up{node="2"})"#, 0.0),
        ("sum(balancer_in_flight)", 0.0),
        // The SlimFaas queue: one series per known function (the sample
        // functions' catalog), all empty.
        (r#"count(balancer_queue_waiting{kind="async"})"#, catalog),
        ("sum(balancer_queue_waiting)", 0.0),
        (
            r#"sum(balancer_retries_total{function="fa",route="execute"})"#,
            1.0,
        ),
    ];
    prometheus.wait_values(&expected).await;

    // The stubs agree on what ran.
    let ran: u64 = [&a, &b]
        .iter()
        .map(|s| async { s.stats().await })
        .collect::<futures_util::future::JoinAll<_>>()
        .await
        .iter()
        .map(|s| s["execute"]["fa"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(ran, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_answers_404_and_still_serves() {
    let a = StubWorker::start("a", &[]);
    let (_balancer, url) = start_balancer(&[&a.url], &["--no-metrics"]);
    assert_eq!(call(&url, "fa").await, 200);
    let reply = client().get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(reply.status().as_u16(), 404);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["Error"], true);
}
