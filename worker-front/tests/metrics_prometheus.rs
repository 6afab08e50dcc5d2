//! The worker's `GET /metrics` scraped by a real Prometheus server (issue
//! 15, part 3), as `load-balancer/tests/metrics_prometheus.rs` does for the
//! balancer: the `worker-front` binary (process runtime, REST mode), a
//! known number of calls, then Debian's `prometheus` started on a free
//! loopback port with a generated scrape configuration (every second) and
//! a temporary storage directory. Its HTTP API must report the target up
//! and the counters equal to the calls made, by function and cold/warm.
//! Without a `prometheus` binary the test fails (it is installed by
//! `.ci/run`).
#![allow(clippy::disallowed_methods)] // deadlines read the wall clock

mod started_worker;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use started_worker::{get, spawn, BIN};

/// Prometheus scrapes every second; a loaded 2-core machine gets time.
const PROMETHEUS_PATIENCE: Duration = Duration::from_secs(60);

/// A child process this test started, killed (by its pid) on drop.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A loopback port free when asked (Prometheus binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `prometheus` scraping `target` (host:port) every second, on a
/// free loopback port, storing into `dir` (the balancer test's way).
fn start_prometheus(target: &str, dir: &std::path::Path) -> (Owned, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: worker\n    static_configs:\n      \
             - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start the `prometheus` binary ({e}); this test needs a real Prometheus \
                 server: apt-get update && apt-get install -y prometheus (as .ci/run does)"
            )
        });
    (Owned(child), format!("http://127.0.0.1:{port}"))
}

/// The single value of an instant query that sums to one series (None:
/// no answer or no series yet).
async fn scalar(prometheus: &str, expr: &str) -> Option<f64> {
    let reply: serde_json::Value = client()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    match reply["data"]["result"].as_array()?.as_slice() {
        [r] => r["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// Polls `condition` until it holds, failing after `limit`.
async fn wait_within<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_worker(extra: &[&str]) -> started_worker::Running {
    let mut cmd = Command::new(BIN);
    cmd.args(["start", "0", "--host", "127.0.0.1"]).args(extra);
    spawn(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_calls_made() {
    let worker = start_worker(&[]);
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

    let dir = tempfile::tempdir().unwrap();
    let (prometheus_process, prometheus) =
        start_prometheus(&format!("127.0.0.1:{port}"), dir.path());
    let prometheus_process = std::sync::Mutex::new(prometheus_process);

    wait_within(
        "Prometheus to report the target up",
        PROMETHEUS_PATIENCE,
        || async {
            if let Ok(Some(status)) = prometheus_process.lock().unwrap().0.try_wait() {
                panic!("the prometheus server exited at start ({status}); it needs a free port and a writable storage directory");
            }
            let Ok(reply) = client()
                .get(format!("{prometheus}/api/v1/targets"))
                .send()
                .await
            else {
                return false;
            };
            let Ok(targets) = reply.json::<serde_json::Value>().await else {
                return false;
            };
            targets["data"]["activeTargets"]
                .as_array()
                .is_some_and(|t| t.len() == 1 && t[0]["health"] == "up")
        },
    )
    .await;

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
    for (expr, value) in expected {
        wait_within(
            &format!("Prometheus's {expr} to be {value}"),
            PROMETHEUS_PATIENCE,
            || {
                let prometheus = prometheus.clone();
                async move { scalar(&prometheus, expr).await == Some(value) }
            },
        )
        .await;
    }

    // The worker's own count agrees (an unknown function is not a call).
    let (_, health) = get(port, "/health").await;
    assert_eq!(health["Worker"]["Calls"], 15, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metrics_answers_404_and_still_serves() {
    let worker = start_worker(&["--no-metrics"]);
    let (status, _) = get(worker.port, "/execute?name=noop").await;
    assert_eq!(status, 200);
    let (status, body) = get(worker.port, "/metrics").await;
    assert_eq!(status, 404);
    assert_eq!(body["Error"], true);
}
