//! The worker's `GET /metrics` scraped by a real Prometheus server (issue
//! 15, part 3), as `load-balancer/tests/metrics_prometheus.rs` does for the
//! balancer: the `worker-front` binary (process runtime, REST mode), a
//! known number of calls, then a real Prometheus scraping it
//! (`prometheus` below, shared with the balancer's test). Its HTTP API
//! must report the target up and the counters equal to the calls made, by
//! function and cold/warm.
#![allow(clippy::disallowed_methods)] // deadlines read the wall clock

mod started_worker;

#[path = "../../http-front/test-support/prometheus.rs"]
mod prometheus;

use std::process::Command;

use prometheus::Prometheus;
use started_worker::{get, spawn, BIN};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A worker with a work dir of its own: what it leaves if a failing test
/// kills it goes with the directory, not into the machine's shared one.
fn start_worker(extra: &[&str]) -> (started_worker::Running, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["start", "0", "--host", "127.0.0.1", "--work-dir"])
        .arg(work.path())
        .args(extra);
    (spawn(cmd), work)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_calls_made() {
    let (mut worker, _work) = start_worker(&[]);
    let port = worker.port;

    // A known mix, in REST mode: each function's first call is cold (image
    // built, instance started), the next ones warm; and an unknown
    // function (404, counted under `_other`).
    for (function, n) in [("noop", 10), ("W1", 5)] {
        for _ in 0..n {
            let (status, reply) = get(port, &format!("/execute?name={function}")).await;
            assert_eq!(status, 200, "{function}: {reply}");
        }
    }
    let (status, _) = get(port, "/execute?name=nosuch").await;
    assert_eq!(status, 404);

    // The worker's own text, before Prometheus sees it.
    let reply = client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert!(reply.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = reply.text().await.unwrap();
    assert!(
        text.contains(r#"worker_calls_total{function="noop",status="2xx",start="cold"} 1"#),
        "{text}"
    );
    assert!(!text.contains("nosuch"), "{text}");

    let prometheus = Prometheus::start("worker", &format!("127.0.0.1:{port}"));
    prometheus.wait_target_up().await;

    let expected = [
        ("sum(worker_calls_total)", 16.0),
        (r#"sum(worker_calls_total{status="2xx"})"#, 15.0),
        (
            r#"sum(worker_calls_total{function="noop",start="cold"})"#,
            1.0,
        ),
        (
            r#"sum(worker_calls_total{function="noop",start="warm"})"#,
            9.0,
        ),
        (
            r#"sum(worker_calls_total{function="W1",start="cold"})"#,
            1.0,
        ),
        (
            r#"sum(worker_calls_total{function="W1",start="warm"})"#,
            4.0,
        ),
        (
            r#"sum(worker_calls_total{function="_other",status="4xx",start="unknown"})"#,
            1.0,
        ),
        ("sum(worker_call_duration_seconds_count)", 16.0),
        ("sum(worker_calls_in_flight)", 0.0),
        // One REST instance per function called, both images cached.
        (r#"sum(worker_instances{state="rest"})"#, 2.0),
        (
            r#"sum(worker_function_instances{function="noop",kind="long_lived"})"#,
            1.0,
        ),
        ("sum(worker_images)", 2.0),
        ("sum(worker_image_builds_total)", 2.0),
        ("sum(worker_image_evictions_total)", 0.0),
        (r#"up{job="worker"}"#, 1.0),
    ];
    prometheus.wait_values(&expected).await;

    // The worker's own count agrees (an unknown function is not a call).
    let (_, health) = get(port, "/health").await;
    assert_eq!(health["Worker"]["Calls"], 15, "{health}");
    worker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_answers_404_and_still_serves() {
    let (mut worker, _work) = start_worker(&["--no-metrics"]);
    let (status, _) = get(worker.port, "/execute?name=noop").await;
    assert_eq!(status, 200);
    let (status, body) = get(worker.port, "/metrics").await;
    assert_eq!(status, 404);
    assert_eq!(body["Error"], true);
    worker.terminate();
}
