//! SlimFaas's routes on the real balancer binary, with real stub-worker
//! processes over loopback: asynchronous calls queued while no worker
//! runs, the durable queue across `kill -9` of the balancer, the parallel
//! cap measured at the worker, synchronous calls ahead of queued ones,
//! retries and their delays measured at the worker, and bad input; and
//! with real `worker-front` processes, scale to zero and wake.
#![allow(clippy::disallowed_methods)] // tests read the wall clock for deadlines

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use support::{client, wait_within, RealWorker, StubWorker};

/// A `load-balancer` process, killed (SIGKILL) on drop.
struct BalancerProcess {
    child: Child,
    url: String,
}

impl BalancerProcess {
    fn start(args: &[&str]) -> Self {
        let (child, url) = support::spawn_balancer(args);
        Self { child, url }
    }

    /// `kill -9`, and wait for the process to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// `POST /async-function/<f>/`: the call id of a 202.
    async fn call_async(&self, function: &str) -> String {
        let r = client()
            .post(format!("{}/async-function/{function}/work", self.url))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let v: serde_json::Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    async fn call(&self, id: &str) -> serde_json::Value {
        let (status, v) = self.get_json(&format!("/async-calls/{id}")).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Calls of `function` stored, by state.
    async fn stored(&self, function: &str) -> serde_json::Value {
        let (status, v) = self.get_json(&format!("/status-function/{function}")).await;
        assert_eq!(status, 200, "{v}");
        v["stored"].clone()
    }

    /// The function's calls stored and not finished: queued, or running
    /// (an attempt on its way; against a dead node it soon goes back to
    /// queued for a retry, so a test cannot tell which it sees).
    async fn pending(&self, function: &str) -> u64 {
        let s = self.stored(function).await;
        s["queued"].as_u64().unwrap_or(0) + s["running"].as_u64().unwrap_or(0)
    }

    async fn wait_all_finished(&self, function: &str, n: u64, limit: Duration) {
        wait_within("every call finished", limit, || async {
            let s = self.stored(function).await;
            let finished = s["done"].as_u64().unwrap_or(0) + s["failed"].as_u64().unwrap_or(0);
            finished == n
        })
        .await;
    }
}

impl Drop for BalancerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A balancer (queue in `db`, and `extra` arguments) whose one node, a
/// stub worker, was stopped before it started: its URL, and its port to
/// start it on again.
fn before_its_worker(db: &Path, extra: &[&str]) -> (BalancerProcess, String, u16) {
    let mut stub = StubWorker::start("a", &[]);
    let port = stub.port;
    stub.stop();
    let mut args = vec![
        "--nodes",
        &stub.url,
        "--health-interval-ms",
        "100",
        "--queue-db",
        db.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (BalancerProcess::start(&args), stub.url.clone(), port)
}

fn settings_file(dir: &Path, text: &str) -> String {
    let path = dir.join("settings.json");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_wait_while_no_worker_runs_then_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let (balancer, stub_url, port) = before_its_worker(&dir.path().join("queue.sqlite3"), &[]);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(balancer.call_async("W1").await);
    }
    // Not run: no worker; still queued, no attempt spent.
    wait_within("the node seen offline", support::PATIENCE, || async {
        let (_, v) = balancer.get_json("/1/lb/nodes").await;
        v["nodes"][&stub_url] == "offline"
    })
    .await;
    for id in &ids {
        let call = balancer.call(id).await;
        assert_eq!(call["state"], "queued", "{call}");
        assert_eq!(call["attempts"], 0, "{call}");
    }
    let stub = StubWorker::start_on("a", port, &[]);
    balancer.wait_all_finished("W1", 5, support::PATIENCE).await;
    for id in &ids {
        let call = balancer.call(id).await;
        assert_eq!(call["state"], "done", "{call}");
        assert_eq!(call["status"], 200, "{call}");
        assert_eq!(call["attempts"], 1, "{call}");
        assert_eq!(call["result"]["Result"]["body"], "W1 done", "{call}");
    }
    assert_eq!(stub.stats().await["execute"]["W1"], 5);
}

/// Calls accepted and queued when the balancer is killed with SIGKILL
/// all run, each once (counted by the worker), after a restart on the
/// same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_queued_calls_then_every_call_runs_once() {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.sqlite3");
    let dead = support::dead_url();
    let mut balancer =
        BalancerProcess::start(&["--nodes", &dead.url, "--queue-db", db.to_str().unwrap()]);
    let balancer_ref = &balancer;
    let started = std::time::Instant::now();
    let mut accepted = 0;
    for chunk in 0..N / 50 {
        let calls = (0..50).map(|_| balancer_ref.call_async("W1"));
        accepted += futures_util::future::join_all(calls).await.len();
        let _ = chunk;
    }
    assert_eq!(accepted, N);
    let accepting = started.elapsed();
    assert_eq!(balancer.pending("W1").await, N as u64);
    balancer.kill();

    let stub = StubWorker::start("b", &[]);
    let balancer =
        BalancerProcess::start(&["--nodes", &stub.url, "--queue-db", db.to_str().unwrap()]);
    let restarted = std::time::Instant::now();
    balancer
        .wait_all_finished("W1", N as u64, Duration::from_secs(120))
        .await;
    eprintln!(
        "{N} calls accepted in {accepting:?}; after the restart, all run in {:?}",
        restarted.elapsed()
    );
    let stored = balancer.stored("W1").await;
    assert_eq!(stored["done"], N as u64, "{stored}");
    assert_eq!(stub.stats().await["execute"]["W1"], N as u64);
}

/// Calls in flight when the balancer is killed: after the restart, the
/// one of a function safe to repeat is sent again, the other is failed
/// with a message saying why (the module doc's "exactly once").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_at_a_kill_are_repeated_only_when_safe() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.sqlite3");
    let settings = settings_file(
        dir.path(),
        r#"{"functions": {"W2": {"safe_to_repeat": false}}}"#,
    );
    let stub = StubWorker::start("f", &["--delay", "W1=1500", "--delay", "W2=1500"]);
    let args = [
        "--nodes",
        &stub.url,
        "--queue-db",
        db.to_str().unwrap(),
        "--function-settings",
        &settings,
    ];
    let mut balancer = BalancerProcess::start(&args);
    let safe = balancer.call_async("W1").await;
    let unsafe_ = balancer.call_async("W2").await;
    wait_within("both calls running", support::PATIENCE, || async {
        balancer.call(&safe).await["state"] == "running"
            && balancer.call(&unsafe_).await["state"] == "running"
    })
    .await;
    balancer.kill();
    let balancer = BalancerProcess::start(&args);
    balancer.wait_all_finished("W1", 1, support::PATIENCE).await;
    balancer.wait_all_finished("W2", 1, support::PATIENCE).await;
    let call = balancer.call(&safe).await;
    assert_eq!(
        (&call["state"], &call["attempts"]),
        (&"done".into(), &2.into()),
        "{call}"
    );
    let call = balancer.call(&unsafe_).await;
    assert_eq!(
        (&call["state"], &call["attempts"]),
        (&"failed".into(), &1.into()),
        "{call}"
    );
    assert!(
        call["error"].as_str().unwrap().contains("not sent again"),
        "{call}"
    );
}

/// A second balancer started on a queue database in use is refused with
/// a clear error, before it reads the store: it neither takes the first
/// one's running call for interrupted nor runs its queued calls, so each
/// call runs once (counted by the worker). Once the first is killed, the
/// database opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_database_serves_one_balancer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.sqlite3");
    let stub = StubWorker::start("q", &["--delay", "W1=1500"]);
    let args = ["--nodes", &stub.url, "--queue-db", db.to_str().unwrap()];
    let mut first = BalancerProcess::start(&args);
    let running = first.call_async("W1").await;
    wait_within("the call running", support::PATIENCE, || async {
        first.call(&running).await["state"] == "running"
    })
    .await;
    let mut second = Command::new(env!("CARGO_BIN_EXE_load-balancer"))
        .args(["rr", "--host", "127.0.0.1", "--port", "0", "--threads", "2"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A balancer that starts prints its address; a refused one ends
    // with nothing on stdout.
    let mut started = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(second.stdout.take().unwrap()),
        &mut started,
    )
    .unwrap();
    if !started.is_empty() {
        let _ = second.kill();
    }
    let second = second.wait_with_output().unwrap();
    assert!(
        started.is_empty() && !second.status.success(),
        "the second balancer started: {started}"
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("queue database is in use by another balancer")
            && err.contains("queue.sqlite3-lock"),
        "{err}"
    );
    first.wait_all_finished("W1", 1, support::PATIENCE).await;
    let call = first.call(&running).await;
    assert_eq!(
        (&call["state"], &call["attempts"]),
        (&"done".into(), &1.into()),
        "{call}"
    );
    assert_eq!(stub.stats().await["execute"]["W1"], 1);
    first.kill();
    let again = BalancerProcess::start(&args);
    assert_eq!(again.call(&running).await["state"], "done");
}

/// The cap on parallel calls of a function, measured at the worker, with
/// synchronous and asynchronous calls together; and a synchronous call
/// goes before queued asynchronous ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parallel_cap_holds_and_sync_calls_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_file(
        dir.path(),
        r#"{"functions": {"W1": {"max_parallel": 3}, "W2": {"max_parallel": 1}}}"#,
    );
    let stub = StubWorker::start(
        "c",
        &["--delay", "W1=150", "--delay", "W2=300", "--threads", "4"],
    );
    let balancer =
        BalancerProcess::start(&["--nodes", &stub.url, "--function-settings", &settings]);
    let b = &balancer;
    let asyncs = (0..24).map(|_| b.call_async("W1"));
    let syncs = (0..8).map(|_| async {
        let r = client()
            .get(format!("{}/function/W1/x", b.url))
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    });
    let (ids, statuses) = futures_util::future::join(
        futures_util::future::join_all(asyncs),
        futures_util::future::join_all(syncs),
    )
    .await;
    assert_eq!(ids.len(), 24);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    balancer
        .wait_all_finished("W1", 24, support::PATIENCE)
        .await;
    let stats = stub.stats().await;
    assert_eq!(stats["execute"]["W1"], 32);
    assert_eq!(stats["max_in_flight"]["W1"], 3, "{stats}");

    // W2, one at a time: four queued, then a synchronous call runs right
    // after the one in flight.
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(b.call_async("W2").await);
    }
    wait_within("the first W2 call running", support::PATIENCE, || async {
        b.call(&ids[0]).await["state"] == "running"
    })
    .await;
    let r = client()
        .get(format!("{}/function/W2/", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut done = 0;
    for id in &ids {
        if b.call(id).await["state"] == "done" {
            done += 1;
        }
    }
    assert!(
        done <= 1,
        "{done} queued calls ran before the synchronous one"
    );
    balancer.wait_all_finished("W2", 4, support::PATIENCE).await;
    assert_eq!(stub.stats().await["max_in_flight"]["W2"], 1);
}

/// Retries after 500s, with the configured delays measured at the worker;
/// a synchronous call is retried only when the function is safe to repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_are_retried_after_their_delays() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_file(
        dir.path(),
        r#"{"functions": {
            "W2": {"retry_delays_s": [0.3, 0.6]},
            "W3": {"retry_delays_s": [0.3], "safe_to_repeat": false},
            "W4": {"retry_delays_s": [0.2, 0.2]},
            "W5": {"retry_delays_s": [0.1], "timeout_s": 0.3}
        }}"#,
    );
    let stub = StubWorker::start(
        "d",
        &[
            "--fail", "W2", "--fail", "W3", "--fail", "W4", "--delay", "W5=3000",
        ],
    );
    let balancer =
        BalancerProcess::start(&["--nodes", &stub.url, "--function-settings", &settings]);
    let id = balancer.call_async("W2").await;
    balancer.wait_all_finished("W2", 1, support::PATIENCE).await;
    let call = balancer.call(&id).await;
    assert_eq!(call["state"], "failed", "{call}");
    assert_eq!(call["attempts"], 3, "{call}");
    assert_eq!(call["status"], 500, "{call}");
    assert!(
        call["error"].as_str().unwrap().contains("retries spent"),
        "{call}"
    );
    let stats = stub.stats().await;
    let arrivals: Vec<u64> = stats["arrivals_ms"]["W2"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(arrivals.len(), 3, "{stats}");
    let gaps = [arrivals[1] - arrivals[0], arrivals[2] - arrivals[1]];
    eprintln!("W2 retry delays measured at the worker: {gaps:?} ms (configured 300, 600)");
    assert!(gaps[0] >= 300 && gaps[1] >= 600, "{gaps:?}");

    // Synchronous: W3 is not safe to repeat (one attempt), W4 is (three).
    let r = client()
        .get(format!("{}/function/W3/", balancer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert_eq!(r.headers()["x-slim-attempts"], "1");
    let r = client()
        .post(format!("{}/function/W4/", balancer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert_eq!(r.headers()["x-slim-attempts"], "3");
    let stats = stub.stats().await;
    assert_eq!(stats["failed"]["W3"], 1);
    assert_eq!(stats["failed"]["W4"], 3);

    // A time-out is retried too.
    let id = balancer.call_async("W5").await;
    balancer.wait_all_finished("W5", 1, support::PATIENCE).await;
    let call = balancer.call(&id).await;
    assert_eq!(
        (&call["state"], &call["attempts"]),
        (&"failed".into(), &2.into()),
        "{call}"
    );
    assert!(
        call["error"]
            .as_str()
            .unwrap()
            .contains("no reply within 0.3 s"),
        "{call}"
    );
    let stats = stub.stats().await;
    assert_eq!(
        stats["arrivals_ms"]["W5"].as_array().unwrap().len(),
        2,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error() {
    let stub = StubWorker::start("e", &[]);
    let balancer = BalancerProcess::start(&["--nodes", &stub.url]);
    let c = client();
    for path in [
        "/function/NoSuchFn/",
        "/async-function/NoSuchFn/x",
        "/status-function/NoSuchFn",
    ] {
        let r = c
            .get(format!("{}{path}", balancer.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["Error"], true, "{path}: {v}");
        assert!(
            v["Message"].as_str().unwrap().contains("unknown function"),
            "{v}"
        );
    }
    for id in ["999999", "abc", "-1"] {
        let (status, v) = balancer.get_json(&format!("/async-calls/{id}")).await;
        assert_eq!(status, 404, "{id}: {v}");
        assert!(
            v["Message"].as_str().unwrap().contains("unknown call id"),
            "{v}"
        );
    }
    let big = vec![b'x'; load_balancer::slim::MAX_CALL_BODY + 1];
    for path in ["/function/W1/", "/async-function/W1/"] {
        let r = c
            .post(format!("{}{path}", balancer.url))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 413, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["Message"].as_str().unwrap().contains("larger than"),
            "{v}"
        );
    }
    // Nothing was queued by the refused calls.
    let (_, all) = balancer.get_json("/status-functions").await;
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["stored"].as_object().unwrap().is_empty()));

    // Settings through the API: checked, then in force.
    let url = format!("{}/function-settings/W1", balancer.url);
    let r = c
        .put(&url)
        .body(r#"{"max_parallel": 0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("max_parallel must be in 1..="),
        "{v}"
    );
    // An array is no set of settings (serde's derive read `[]` as the
    // defaults and `[5]` as max_parallel 5, by position).
    for body in ["[]", "[5]"] {
        let r = c.put(&url).body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["Message"].as_str().unwrap().contains(
                "function settings: invalid type: sequence, expected struct FunctionSettings"
            ),
            "{body}: {v}"
        );
    }
    let r = c
        .put(&url)
        .body(r#"{"max_parallel": 4}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, v) = balancer.get_json("/status-function/W1").await;
    assert_eq!(v["settings"]["max_parallel"], 4, "{v}");

    // A malformed settings file: the balancer does not start, and says
    // which file and line.
    let dir = tempfile::tempdir().unwrap();
    let path = settings_file(
        dir.path(),
        "{\"functions\": {\n  \"W1\": {\"max_parallel\": 2},\n  \"W2\": {\"max_parallell\": 2}\n}}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_load-balancer"))
        .args([
            "rr",
            "--port",
            "0",
            "--nodes",
            &stub.url,
            "--function-settings",
            &path,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{path} line 3 column")),
        "{stderr}"
    );
    assert!(stderr.contains("max_parallell"), "{stderr}");
}

/// The real worker (`worker-front`, process runtime, sample function W1):
/// queued calls run under the cap, counted at the worker (its `/health`
/// reports `Calls` and `CallsInFlight`, polled while the queue drains).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_worker_runs_queued_calls_under_the_cap() {
    const N: u64 = 12;
    let worker = RealWorker::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let health = || worker.health();
    let settings = settings_file(dir.path(), r#"{"functions": {"W1": {"max_parallel": 2}}}"#);
    let balancer =
        BalancerProcess::start(&["--nodes", &worker.url, "--function-settings", &settings]);
    let calls = (0..N).map(|_| balancer.call_async("W1"));
    let ids = futures_util::future::join_all(calls).await;
    let max_in_flight = std::sync::atomic::AtomicU64::new(0);
    wait_within("the queue drained", Duration::from_secs(120), || async {
        if let Some(h) = health().await {
            max_in_flight.fetch_max(
                h["Worker"]["CallsInFlight"].as_u64().unwrap(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let s = balancer.stored("W1").await;
        s["done"].as_u64().unwrap_or(0) + s["failed"].as_u64().unwrap_or(0) == N
    })
    .await;
    for id in &ids {
        let call = balancer.call(id).await;
        assert_eq!(
            (&call["state"], &call["status"]),
            (&"done".into(), &200.into()),
            "{call}"
        );
    }
    let h = health().await.unwrap();
    let max_in_flight = max_in_flight.into_inner();
    eprintln!("worker-front: most calls in flight seen {max_in_flight} (cap 2)");
    assert!(
        max_in_flight <= 2,
        "{max_in_flight} calls in flight at the worker"
    );
    assert_eq!(h["Worker"]["Calls"], N, "{h}");
}

/// `GET url` (any status): the status and the JSON body.
async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// A worker's instances of `function`: (ready, starting).
async fn worker_instances(worker: &RealWorker, function: &str) -> (u64, u64) {
    let (status, v) = get_json(&format!("{}/instances?name={function}", worker.url)).await;
    assert_eq!(status, 200, "{v}");
    (
        v["Ready"].as_u64().unwrap(),
        v["Starting"].as_u64().unwrap(),
    )
}

impl BalancerProcess {
    /// `GET /function/<f>/x`: the worker's reply (200 asserted).
    async fn call_sync(&self, function: &str) -> serde_json::Value {
        let (status, v) = get_json(&format!("{}/function/{function}/x", self.url)).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// `PUT /function-settings/<f>`.
    async fn put_settings(&self, function: &str, settings: &str) {
        let r = client()
            .put(format!("{}/function-settings/{function}", self.url))
            .body(settings.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }

    /// `/status-function/<f>`'s `instances`.
    async fn instances(&self, function: &str) -> serde_json::Value {
        let (status, v) = self.get_json(&format!("/status-function/{function}")).await;
        assert_eq!(status, 200, "{v}");
        v["instances"].clone()
    }
}

/// Scale to zero and wake with two real workers in REST mode (one long-
/// lived instance per function, kept 600 s by the worker itself): W1's
/// idle time is lowered once both workers hold its instance, and it is
/// scaled to zero on both; its next call is cold (the worker's `Meta`),
/// without rebuilding the image; W2, idle as long but with
/// `min_instances` 1, keeps its instance; a wake starts
/// `instances_at_start` instances, one per worker the scheduler picks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_functions_scale_to_zero_and_wake_on_real_workers() {
    let rest = [
        "--using-rest-mode",
        "true",
        "--rest-container-life-time",
        "600",
    ];
    let workers = [
        RealWorker::start(&rest).await,
        RealWorker::start(&rest).await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_file(
        dir.path(),
        r#"{"functions": {"W1": {"idle_before_zero_s": 600},
                          "W2": {"idle_before_zero_s": 1, "min_instances": 1}}}"#,
    );
    let nodes = format!("{},{}", workers[0].url, workers[1].url);
    let balancer = BalancerProcess::start(&["--nodes", &nodes, "--function-settings", &settings]);
    // W2's minimum is started by the balancer itself (its selection moves
    // round robin on): wait for it first.
    wait_within("W2 at its minimum", Duration::from_secs(60), || async {
        balancer.instances("W2").await["ready"] == 1
    })
    .await;
    // Round robin: one W1 call per worker, each a cold start there.
    for _ in 0..2 {
        let reply = balancer.call_sync("W1").await;
        assert_eq!(
            reply["Meta"]["UsingExistingRestContainer"], false,
            "{reply}"
        );
    }
    let _ = balancer.call_sync("W2").await;
    for w in &workers {
        assert_eq!(worker_instances(w, "W1").await, (1, 0));
    }
    let s = balancer.instances("W1").await;
    assert_eq!(
        (&s["ready"], &s["requested"]),
        (&2.into(), &1.into()),
        "{s}"
    );
    assert_eq!(s["scale_to_zero"], "idle", "{s}");

    // Idle time down to 1 s: scaled to zero on every worker.
    balancer
        .put_settings("W1", r#"{"idle_before_zero_s": 1}"#)
        .await;
    let took = wait_within("W1 scaled to zero", support::PATIENCE, || async {
        let s = balancer.instances("W1").await;
        s["scale_to_zero"] == "at_zero" && s["ready"] == 0 && s["starting"] == 0
    })
    .await;
    eprintln!("W1 scaled to zero {took:?} after its idle time was set to 1 s");
    for w in &workers {
        assert_eq!(worker_instances(w, "W1").await, (0, 0));
    }
    assert_eq!(balancer.instances("W1").await["requested"], 0);

    // W2 was idle as long, but its minimum keeps its instances (the one
    // the balancer started, and the one its call started on the other
    // worker: the minimum is a floor).
    wait_within("W2 held by its minimum", support::PATIENCE, || async {
        balancer.instances("W2").await["scale_to_zero"] == "kept_by_min_instances"
    })
    .await;
    let s = balancer.instances("W2").await;
    assert_eq!(s["ready"], 2, "{s}");

    // The next call is a cold start (the image is still there).
    let reply = balancer.call_sync("W1").await;
    let meta = &reply["Meta"];
    assert_eq!(meta["UsingExistingRestContainer"], false, "{reply}");
    assert_eq!(meta["UsingPooledContainer"], false, "{reply}");
    assert_eq!(meta["ImageBuilt"], false, "{reply}");

    // A wake: instances_at_start 2, on the two workers round robin picks.
    balancer
        .put_settings(
            "W1",
            r#"{"idle_before_zero_s": 600, "instances_at_start": 2}"#,
        )
        .await;
    let r = client()
        .post(format!("{}/wake-function/W1", balancer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    wait_within("W1's woken instances up", support::PATIENCE, || async {
        let s = balancer.instances("W1").await;
        s["ready"] == 2 && s["starting"] == 0
    })
    .await;
    for w in &workers {
        assert_eq!(worker_instances(w, "W1").await, (1, 0));
    }
    let s = balancer.instances("W1").await;
    assert_eq!(
        (&s["requested"], &s["scale_to_zero"]),
        (&2.into(), &"idle".into()),
        "{s}"
    );
    let reply = balancer.call_sync("W1").await;
    assert_eq!(reply["Meta"]["UsingExistingRestContainer"], true, "{reply}");

    // Bad input: an unknown function (balancer and worker), bad /scale
    // queries (JSON errors, nothing changed).
    let (status, v) = get_json(&format!("{}/wake-function/nope", balancer.url)).await;
    assert_eq!((status, &v["Error"]), (404, &true.into()), "{v}");
    let w = &workers[0].url;
    for (query, want) in [
        ("/scale?name=nope&instances=0", 404),
        ("/instances?name=nope", 404),
        ("/scale?name=W1", 400),
        ("/scale?instances=1", 400),
        ("/scale?name=W1&instances=-1", 400),
        ("/scale?name=W1&instances=1001", 400),
        ("/scale?name=W1&instances=1&extra=1", 400),
    ] {
        let (status, v) = get_json(&format!("{w}{query}")).await;
        assert_eq!(status, want, "{query}: {v}");
        assert_eq!(v["Error"], true, "{query}: {v}");
        assert!(v["Message"].as_str().is_some_and(|m| m.len() < 200), "{v}");
    }
    assert_eq!(worker_instances(&workers[0], "W1").await, (1, 0));
}

/// A worker that runs every call in an instance of its own (HotFunctions
/// without REST mode) has none to start ahead: its `/scale` says so
/// (409), and scale to zero is a no-op there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_worker_has_nothing_to_start() {
    let worker = RealWorker::start(&[]).await;
    let (status, v) = get_json(&format!("{}/scale?name=W1&instances=1", worker.url)).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("instance of its own"),
        "{v}"
    );
    let (status, v) = get_json(&format!("{}/scale?name=W1&instances=0", worker.url)).await;
    assert_eq!((status, &v["Removed"]), (200, &0.into()), "{v}");
    let (status, v) = get_json(&format!("{}/instances", worker.url)).await;
    assert_eq!(
        (status, &v["Functions"]),
        (200, &serde_json::json!([])),
        "{v}"
    );
}

#[path = "../../worker-front/tests/user_functions_support/shared.rs"]
mod user_functions_shared;

/// A user function's package: the static echo function
/// (`worker-front/tests/user_functions_support/static_echo.rs`) as a
/// native HTTP function labelled `label`.
fn echo_package(label: &str) -> Vec<u8> {
    use std::io::Write as _;
    let manifest =
        format!("{{\"runtime\": \"http\", \"entry\": \"bin/fn\", \"args\": [\"{label}\"]}}");
    let binary = std::fs::read(user_functions_shared::static_echo()).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in [
        ("hf-function.json", manifest.as_bytes(), 0o644),
        ("bin/fn", &binary[..], 0o755),
    ] {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        zip.start_file(name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

impl BalancerProcess {
    /// `POST /deploy` of `zip` as `name` (Glambdar's multipart form).
    async fn deploy(&self, name: &str, zip: &[u8]) {
        let r = user_functions_shared::post_deploy(
            &client(),
            &self.url,
            &[("funcName", name)],
            "f.zip",
            zip,
        )
        .await;
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }

    /// Waits until `n` nodes are online.
    async fn await_online(&self, n: usize) {
        wait_within("the nodes online", Duration::from_secs(60), || async {
            let (_, v) = self.get_json("/1/lb/nodes").await;
            v["nodes"]
                .as_object()
                .is_some_and(|m| m.values().filter(|s| *s == "online").count() == n)
        })
        .await;
    }

    /// `GET /metrics`'s value of the series `series` (exact labels).
    async fn metric(&self, series: &str) -> Option<f64> {
        let text = client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }
}

/// A user function (deployed at the balancer, run by a real worker that
/// fetches it) called through `/function/<fn>/<path>` and
/// `/async-function/<fn>/<path>`: the function sees the method, the path
/// under it, the query, a header and the body; its status and body come
/// back, and the asynchronous call's result holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_functions_are_called_through_the_slimfaas_routes() {
    let balancer = BalancerProcess::start(&["--start-empty", "--health-interval-ms", "100"]);
    let _worker = RealWorker::start(&["--join", &balancer.url, "--join-interval-ms", "100"]).await;
    balancer.await_online(1).await;
    balancer.deploy("echo", &echo_package("slim")).await;

    let r = client()
        .post(format!("{}/function/echo/some/path?x=1", balancer.url))
        .header("x-test", "sync")
        .body("hello")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let info = r.headers().get("x-load-balancing-info").cloned();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(info.is_some(), "no X-Load-Balancing-Info");
    let echo: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            &echo["label"],
            &echo["method"],
            &echo["path"],
            &echo["query"],
            &echo["test"],
            &echo["body"]
        ),
        (
            &"slim".into(),
            &"POST".into(),
            &"/some/path".into(),
            &"x=1".into(),
            &"sync".into(),
            &"hello".into()
        ),
        "{echo}"
    );
    // The function's own status comes back.
    let r = client()
        .put(format!("{}/function/echo/p?status=418", balancer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 418);

    let r = client()
        .post(format!("{}/async-function/echo/later/on?y=2", balancer.url))
        .header("x-test", "async")
        .body("queued body")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_within("the async call done", support::PATIENCE, || async {
        balancer.call(&id).await["state"] == "done"
    })
    .await;
    let call = balancer.call(&id).await;
    assert_eq!(call["status"], 200, "{call}");
    let echo = &call["result"];
    assert_eq!(
        (
            &echo["method"],
            &echo["path"],
            &echo["query"],
            &echo["test"],
            &echo["body"]
        ),
        (
            &"POST".into(),
            &"/later/on".into(),
            &"y=2".into(),
            &"async".into(),
            &"queued body".into()
        ),
        "{call}"
    );
    // The store's counters saw the calls (the sync two and the async one).
    let (_, info) = balancer.get_json("/info/echo").await;
    assert_eq!(info["Calls"], 3, "{info}");
    // Sample functions keep working.
    let (status, v) = get_json(&format!("{}/function/W1/x", balancer.url)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Result"]["statusCode"], 200, "{v}");
}

/// A function called only through `/execute` is tracked from its first
/// call, is not scaled to zero while a call runs (busy), and is once idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_calls_count_for_scale_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_file(
        dir.path(),
        r#"{"functions": {"W1": {"idle_before_zero_s": 0.2}}}"#,
    );
    let stub = StubWorker::start("z", &["--delay", "W1=2500"]);
    let balancer = std::sync::Arc::new(BalancerProcess::start(&[
        "--nodes",
        &stub.url,
        "--function-settings",
        &settings,
    ]));
    let state = |b: std::sync::Arc<BalancerProcess>| async move {
        b.instances("W1").await["scale_to_zero"].clone()
    };
    assert_eq!(state(balancer.clone()).await, "untracked");
    let b = balancer.clone();
    let call = tokio::spawn(async move { get_json(&format!("{}/execute?name=W1", b.url)).await });
    wait_within("the call tracked", support::PATIENCE, || async {
        state(balancer.clone()).await == "busy"
    })
    .await;
    // Well past its idle time, still busy while the call runs.
    let watched = std::time::Instant::now();
    while !call.is_finished() {
        let s = state(balancer.clone()).await;
        assert!(call.is_finished() || s == "busy", "{s} during the call");
        if watched.elapsed() > Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, v) = call.await.unwrap();
    assert_eq!(status, 200, "{v}");
    wait_within("W1 scaled to zero", support::PATIENCE, || async {
        state(balancer.clone()).await == "at_zero"
    })
    .await;
}

/// `min_instances` kept running: two REST-mode workers, W1 with a
/// minimum of 2 gets its instances without any call or wake; a worker
/// killed and restarted on its port (instances gone) gets them back; and
/// `/metrics` reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_instances_are_kept_running() {
    let rest = [
        "--using-rest-mode",
        "true",
        "--rest-container-life-time",
        "600",
    ];
    let mut workers = vec![
        RealWorker::start(&rest).await,
        RealWorker::start(&rest).await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_file(dir.path(), r#"{"functions": {"W1": {"min_instances": 2}}}"#);
    let nodes = format!("{},{}", workers[0].url, workers[1].url);
    let balancer = BalancerProcess::start(&[
        "--nodes",
        &nodes,
        "--function-settings",
        &settings,
        "--health-interval-ms",
        "100",
    ]);
    let ready = |n: u64| {
        let b = &balancer;
        move || async move {
            let s = b.instances("W1").await;
            s["ready"] == n && s["starting"] == 0
        }
    };
    wait_within("W1 at its minimum", Duration::from_secs(60), ready(2)).await;
    for w in &workers {
        assert_eq!(worker_instances(w, "W1").await, (1, 0));
    }
    wait_within("the instances in /metrics", support::PATIENCE, || async {
        balancer
            .metric(r#"balancer_instances{function="W1",state="ready"}"#)
            .await
            == Some(2.0)
    })
    .await;
    // A restart of one worker: its instance is gone, and comes back.
    let port = workers[1].port();
    workers[1].kill();
    workers[1] = RealWorker::start_on(port, &rest).await;
    balancer.await_online(2).await;
    wait_within("W1 back at its minimum", Duration::from_secs(60), ready(2)).await;
    let total: u64 = {
        let mut t = 0;
        for w in &workers {
            t += worker_instances(w, "W1").await.0;
        }
        t
    };
    assert_eq!(total, 2);
}

/// The asynchronous queue is bounded: per function (`max_queued`) and in
/// all (`--queue-max`); over it a call is a 429 JSON error and is not
/// stored; the bound shows in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_queue_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_file(dir.path(), r#"{"functions": {"W2": {"max_queued": 2}}}"#);
    let dead = support::dead_url();
    let balancer = BalancerProcess::start(&[
        "--nodes",
        &dead.url,
        "--function-settings",
        &settings,
        "--queue-max",
        "3",
    ]);
    let post = |f: &str| {
        let url = format!("{}/async-function/{f}/", balancer.url);
        async move {
            let r = client().post(url).body("x").send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    for _ in 0..2 {
        assert_eq!(post("W2").await.0, 202);
    }
    let (status, v) = post("W2").await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["Error"], true, "{v}");
    assert!(
        v["Message"].as_str().unwrap().contains("max_queued 2"),
        "{v}"
    );
    assert_eq!(balancer.pending("W2").await, 2);
    // In all: one more fits (3), then none.
    assert_eq!(post("W3").await.0, 202);
    let (status, v) = post("W3").await;
    assert_eq!(status, 429, "{v}");
    assert!(
        v["Message"].as_str().unwrap().contains("--queue-max 3"),
        "{v}"
    );
    assert_eq!(balancer.pending("W3").await, 1);
    assert_eq!(
        balancer
            .metric(r#"balancer_queue_max_queued{function="W2"}"#)
            .await,
        Some(2.0)
    );
    assert_eq!(
        balancer
            .metric(r#"balancer_queue_stored{function="W2",state="queued"}"#)
            .await,
        Some(2.0)
    );
}

/// A queue database at its size bound (`--queue-max-mb`, as on a full
/// disk) refuses new calls with a 507, and every call it already holds
/// still runs and records its result (the pages reserved for them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_database_refuses_new_calls_and_runs_those_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.sqlite3");
    let (balancer, _, port) = before_its_worker(&db, &["--queue-max-mb", "0.3"]);
    let body = "x".repeat(20_000);
    let url = format!("{}/async-function/W1/work", balancer.url);
    let mut accepted = 0u64;
    let refused = loop {
        let r = client().post(&url).body(body.clone()).send().await.unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        match status {
            202 => accepted += 1,
            _ => break (status, v),
        }
        assert!(accepted < 100, "0.3 MB never filled");
    };
    assert_eq!(refused.0, 507, "{}", refused.1);
    assert_eq!(refused.1["Error"], true);
    assert!(
        refused.1["Message"].as_str().unwrap().contains("full"),
        "{}",
        refused.1
    );
    assert!(accepted >= 5, "{accepted}");
    // The worker comes: every call held runs once and is recorded.
    let stub = StubWorker::start_on("a", port, &[]);
    balancer
        .wait_all_finished("W1", accepted, support::PATIENCE)
        .await;
    let stored = balancer.stored("W1").await;
    assert_eq!(stored["done"].as_u64(), Some(accepted), "{stored}");
    assert_eq!(stub.stats().await["execute"]["W1"], accepted);
}
