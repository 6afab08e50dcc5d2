//! The cluster of the user-function tests: the real `load-balancer`
//! binary (from the same target directory as the test: `cargo build
//! --release -p load-balancer` first) holding the store, and workers that
//! join it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{try_start_with, Dirs, Worker};

/// The `load-balancer` binary beside this test's target directory.
pub fn balancer_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/load-balancer
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("load-balancer");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build --release -p load-balancer)",
        bin.display()
    );
    bin
}

/// Starts the balancer (algorithm rr, no nodes yet) on `port` (0: any)
/// with its data dir; returned as a [`Worker`] (the support's client and
/// routes; killed on drop). None when the port is not free (yet).
pub fn try_start_balancer(data: &Path, port: u16) -> Option<Worker> {
    let mut cmd = Command::new(balancer_binary());
    cmd.args([
        "rr",
        "--host",
        "127.0.0.1",
        "--threads",
        "2",
        "--start-empty",
    ])
    .arg("--port")
    .arg(port.to_string())
    .arg("--data-dir")
    .arg(data)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn load-balancer");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let Some(base) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let base = base.to_string();
    let port = base.rsplit(':').next().unwrap().parse().unwrap();
    Some(Worker {
        child,
        port,
        base,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    })
}

/// [`try_start_balancer`], retrying for a while (a restart on the same
/// port may find it held for a moment).
pub async fn start_balancer(data: &Path, port: u16) -> Worker {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(lb) = try_start_balancer(data, port) {
            return lb;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the balancer did not start on port {port}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A worker joining `balancer`.
pub fn start_worker(dirs: &Dirs, balancer: &str) -> Worker {
    start_worker_with(dirs, balancer, &[])
}

/// A worker joining `balancer`, with more flags.
pub fn start_worker_with(dirs: &Dirs, balancer: &str, extra: &[&str]) -> Worker {
    let mut args = vec!["--join", balancer, "--join-interval-ms", "100"];
    args.extend_from_slice(extra);
    try_start_with(&dirs.data(), &dirs.work(), &args).expect("worker did not start")
}

/// Waits until the balancer lists `n` online nodes.
pub async fn await_online(lb: &Worker, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, v) = lb.json("GET", "/1/lb/nodes", None).await;
        let online = v["nodes"]
            .as_object()
            .map_or(0, |m| m.values().filter(|s| *s == "online").count());
        if online == n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "not {n} online: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `LoadBalancingInfo` of a reply through the balancer.
pub fn lb_info(h: &reqwest::header::HeaderMap) -> serde_json::Value {
    serde_json::from_str(
        h.get("x-load-balancing-info")
            .expect("no X-Load-Balancing-Info")
            .to_str()
            .unwrap(),
    )
    .unwrap()
}

/// Entries of `dir` whose name starts with `prefix`.
pub fn entries(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}
