//! A real Prometheus server for the two `/metrics` integration tests
//! (`load-balancer/tests/metrics_prometheus.rs`,
//! `worker-front/tests/metrics_prometheus.rs`, issue 15 §3), included by
//! both with `#[path]`: Debian's `prometheus` started on a free loopback
//! port with a generated scrape configuration (one target, every second)
//! and a temporary storage directory, queried through its HTTP API.
//! Without a `prometheus` binary the tests fail (it is installed by
//! `.ci/run`).

use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Prometheus scrapes every second; a loaded 2-core machine gets time.
const PATIENCE: Duration = Duration::from_secs(60);

/// A Prometheus server this test started, killed (by its pid) on drop,
/// its storage deleted.
pub struct Prometheus {
    process: Mutex<Child>,
    /// Its base URL (`http://127.0.0.1:<port>`).
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let process = self
            .process
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = process.kill();
        let _ = process.wait();
    }
}

/// A loopback port free when asked (Prometheus binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

impl Prometheus {
    /// Starts `prometheus` scraping `target` (host:port) every second as
    /// job `job`; fails the test clearly if it cannot.
    pub fn start(job: &str, target: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: {job}\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the `prometheus` binary ({e}); this test needs a real \
                     Prometheus server: apt-get update && apt-get install -y prometheus \
                     (as .ci/run does)"
                )
            });
        Self {
            process: Mutex::new(child),
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// Polls `condition` until it holds, failing after [`PATIENCE`], or at
    /// once if the server exited.
    async fn wait_for<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + PATIENCE;
        while !condition().await {
            let exited = self
                .process
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_wait();
            if let Ok(Some(status)) = exited {
                panic!(
                    "the prometheus server exited ({status}) while waiting for {what}; it needs \
                     a free port and a writable storage directory"
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {PATIENCE:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until Prometheus reports its one target up.
    pub async fn wait_target_up(&self) {
        let url = format!("{}/api/v1/targets", self.url);
        self.wait_for("Prometheus to report the target up", || async {
            let Ok(reply) = client().get(&url).send().await else {
                return false;
            };
            let Ok(targets) = reply.json::<serde_json::Value>().await else {
                return false;
            };
            targets["data"]["activeTargets"]
                .as_array()
                .is_some_and(|t| t.len() == 1 && t[0]["health"] == "up")
        })
        .await;
    }

    /// The single value of an instant query that sums to one series
    /// (None: no answer or no series yet).
    pub async fn scalar(&self, expr: &str) -> Option<f64> {
        let reply: serde_json::Value = client()
            .get(format!("{}/api/v1/query", self.url))
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

    /// Waits until each query of `expected` gives its value.
    pub async fn wait_values(&self, expected: &[(&str, f64)]) {
        for &(expr, value) in expected {
            self.wait_for(&format!("Prometheus's {expr} to be {value}"), || async {
                self.scalar(expr).await == Some(value)
            })
            .await;
        }
    }
}
