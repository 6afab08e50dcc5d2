//! Users' own functions on the real `worker-front` binary (issue 14, one
//! worker, process runtime): a native HTTP function, a Glambdar Node.js
//! function (a zip of only `index.js`) and a one-shot CGI function are
//! deployed, called (method, headers, query, body there; status, headers,
//! body back; timing and `Meta` in headers; warm instances reused),
//! inspected (`/info`, `/logs`), redeployed while a call is in flight,
//! rate-limited, deleted, and found again after a restart.

// Tests read the clock for their deadlines.
#![allow(clippy::disallowed_methods)]

mod user_functions_support;

use std::path::Path;
use user_functions_support::*;
use worker_front::runtime::spawn::{nice_of_stat, policy_of_stat, stat_field};

const NODE_ECHO: &str = r#"
exports.handler = async (req) => {
  if (req.query.mark) {
    require('fs').writeFileSync(req.query.mark, 'x');
    await new Promise((r) => setTimeout(r, Number(req.query.wait || 0)));
  }
  return {
    statusCode: 200,
    headers: { 'x-node': 'yes', 'x-pid': String(process.pid) },
    body: { version: 'VERSION', method: req.method, path: req.path, query: req.query,
            test: req.headers['x-test'], got: req.body },
  };
};
"#;

fn node_zip(version: &str) -> Vec<u8> {
    glambdar_zip(&NODE_ECHO.replace("VERSION", version))
}

fn meta(h: &reqwest::header::HeaderMap) -> serde_json::Value {
    serde_json::from_str(h["x-meta"].to_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_node_and_oneshot_functions_are_deployed_called_and_inspected() {
    let dirs = Dirs::new();
    let w = start(&dirs.data(), &dirs.work());

    // A native HTTP function, named by funcName.
    let (s, v) = w
        .deploy("whatever.zip", &native_zip("v1", None), Some("echo"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["Name"].as_str(), v["Version"].as_u64()),
        (Some("echo"), Some(1))
    );
    assert_eq!(v["Runtime"], "http");
    assert_eq!(v["Digest"].as_str().unwrap().len(), 64);

    let r = w
        .client
        .post(format!("{}/invoke/echo/some/path?x=1&y=two", w.base))
        .header("x-test", "abc")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/some/path");
    assert_eq!(body["query"], "x=1&y=two");
    assert_eq!(body["headers"]["x-test"], "abc");
    assert_eq!(body["body"], "hello");
    assert_eq!(body["label"], "v1");
    assert_eq!(h["x-echo"], "v1");
    assert_eq!(h["x-function-version"], "1");
    let m = meta(&h);
    assert_eq!(m["UsingExistingRestContainer"], false, "first call is cold");
    assert!(m["ImageName"].as_str().unwrap().starts_with("echo@v1"));
    let exec: f64 = h["x-execution-time"].to_str().unwrap().parse().unwrap();
    let internal: f64 = h["x-internal-execution-time"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(exec >= internal && internal > 0.0, "{exec} {internal}");
    let pid = body["pid"].as_u64().unwrap();

    // Warm: the same instance, and the function's status comes back.
    let (s, h, text) = w.call("echo", "?status=201").await;
    assert_eq!(s, 201, "{text}");
    assert_eq!(meta(&h)["UsingExistingRestContainer"], true);
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["pid"].as_u64(),
        Some(pid),
        "the warm instance is reused"
    );

    // A Glambdar function: a zip of only index.js, named by its file.
    let (s, v) = w.deploy("greet.zip", &node_zip("n1"), None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["Name"].as_str(), v["Runtime"].as_str()),
        (Some("greet"), Some("node"))
    );
    let r = w
        .client
        .put(format!("{}/invoke/greet?who=me", w.base))
        .header("x-test", "t1")
        .header("content-type", "application/json")
        .body(r#"{"a": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-node"], "yes");
    let node_pid = r.headers()["x-pid"].to_str().unwrap().to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["got"]["a"], 1, "a JSON body is parsed: {body}");
    assert_eq!(
        (body["method"].as_str(), body["path"].as_str()),
        (Some("PUT"), Some("/"))
    );
    assert_eq!(body["query"]["who"], "me");
    assert_eq!(body["test"], "t1");
    let (s, h, _) = w.call("greet", "").await;
    assert_eq!(s, 200);
    assert_eq!(
        h["x-pid"].to_str().unwrap(),
        node_pid,
        "warm node instance reused"
    );

    // A one-shot (CGI) function.
    let manifest = r#"{"runtime": "oneshot", "entry": "fn", "args": ["--oneshot", "once"]}"#;
    let zip = zip_of(&[
        Entry::File("hf-function.json", manifest.as_bytes(), 0o644),
        Entry::File("fn", &user_fn_binary(), 0o755),
    ]);
    let (s, v) = w.deploy("once.zip", &zip, None, None).await;
    assert_eq!(s, 200, "{v}");
    let r = w
        .client
        .post(format!("{}/invoke/once/p?status=202", w.base))
        .header("x-test", "cgi")
        .body("stdin body")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-echo"], "once");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["body"], "stdin body");
    assert_eq!(body["path"], "/p");
    assert_eq!(body["headers"]["x-test"], "cgi");

    // /info and /logs.
    let (s, v) = w.json("GET", "/info", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["Count"], 3, "{v}");
    let (s, v) = w.json("GET", "/info/echo", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["Calls"], 2, "{v}");
    assert_eq!(v["Errors"], 0, "{v}");
    assert_eq!(v["Version"], 1);
    assert_eq!(v["RateLimit"], 0.0);
    assert!(v["MeanDurationMs"].as_f64().unwrap() > 0.0);
    assert!(v["LastCallMs"].as_i64().unwrap() > 0);
    assert_eq!(v["Warm"], true);
    let (s, v) = w.json("GET", "/logs/echo", None).await;
    assert_eq!(s, 200);
    let logs = v["Logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2, "{v}");
    assert_eq!(logs[0]["Status"], 201, "newest first");
    assert_eq!(
        (logs[0]["Cold"].as_bool(), logs[1]["Cold"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(logs[0]["Node"].as_str().unwrap().starts_with("worker-"));
    let (s, _) = w.json("GET", "/logs/echo?limit=0", None).await;
    assert_eq!(s, 400);
    let (s, _) = w.json("GET", "/info/nobody", None).await;
    assert_eq!(s, 404);

    // The path after the name reaches the function as it came, escapes
    // and all (a decoded space would not even make a request line).
    let r = w
        .client
        .get(format!("{}/invoke/echo/a%20b/c%2Fd/?e=%20", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let escaped: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (escaped["path"].as_str(), escaped["query"].as_str()),
        (Some("/a%20b/c%2Fd/"), Some("e=%20"))
    );

    // Rate limit: 1/s (burst 1), then unlimited again.
    let (s, v) = w
        .json("POST", "/config/echo", Some(r#"{"rateLimit": 1}"#))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Burst"], 1.0);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(w.call("echo", "").await.0);
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        limited >= 1 && statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let (s, v) = w.json("GET", "/invoke/echo", None).await;
    if s == 429 {
        assert_eq!(v["Error"], true);
        assert!(v["Message"].as_str().unwrap().contains("rate limit"), "{v}");
    }
    let (_, v) = w.json("GET", "/info/echo", None).await;
    assert_eq!(v["RateLimit"], 1.0);
    let (s, _) = w
        .json("POST", "/config/echo", Some(r#"{"rateLimit": -3}"#))
        .await;
    assert_eq!(s, 400);
    let (s, _) = w
        .json("POST", "/config/echo", Some(r#"{"rateLimit": 0}"#))
        .await;
    assert_eq!(s, 200);
    for _ in 0..5 {
        assert_eq!(w.call("echo", "").await.0, 200);
    }

    // Delete: gone from every route, its instance stopped, its code removed.
    let (s, v) = w.json("DELETE", "/del/echo", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(w.call("echo", "").await.0, 404);
    assert_eq!(w.json("GET", "/info/echo", None).await.0, 404);
    assert_eq!(w.json("GET", "/logs/echo", None).await.0, 404);
    assert_eq!(w.json("DELETE", "/del/echo", None).await.0, 404);
    await_true("the deleted function's instance ends", || !alive(pid)).await;
    let code: Vec<String> = std::fs::read_dir(dirs.data().join("code"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!code.iter().any(|c| c.starts_with("echo.")), "{code:?}");
    assert_eq!(code.len(), 2, "{code:?}");

    // A second worker may not take the same data dir.
    let err = match try_start(&dirs.data(), &dirs.work()) {
        Ok(_) => panic!("a second worker took a locked data dir"),
        Err(e) => e,
    };
    assert!(err.contains("in use by another worker"), "{err}");

    // Restart: the functions, their counters and logs are still there.
    let node_pid: u64 = node_pid.parse().unwrap();
    w.stop();
    await_true("the node instance ends with the worker", || {
        !alive(node_pid)
    })
    .await;
    let w = start(&dirs.data(), &dirs.work());
    let (_, v) = w.json("GET", "/info", None).await;
    assert_eq!(v["Count"], 2, "{v}");
    let (_, v) = w.json("GET", "/info/greet", None).await;
    assert_eq!(v["Calls"], 2, "{v}");
    let (s, h, text) = w.call("greet", "").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(meta(&h)["UsingExistingRestContainer"], false);
    let (_, v) = w.json("GET", "/logs/greet", None).await;
    assert_eq!(v["Logs"].as_array().unwrap().len(), 3, "{v}");
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_is_atomic_calls_in_flight_finish_on_the_old_version() {
    let dirs = Dirs::new();
    let w = start(&dirs.data(), &dirs.work());
    let (s, v) = w
        .deploy("slow.zip", &node_zip("one"), None, Some("0"))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, h, _) = w.call("slow", "").await;
    assert_eq!(s, 200);
    let old_pid: u64 = h["x-pid"].to_str().unwrap().parse().unwrap();

    // A call that waits inside v1 until the test has redeployed.
    let mark = dirs.root.path().join("in-flight");
    let url = format!("{}/invoke/slow?mark={}&wait=1500", w.base, mark.display());
    let client = w.client.clone();
    let in_flight = tokio::spawn(async move {
        let r = client.get(url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    await_true("the slow call reached v1", || mark.exists()).await;

    let (s, v) = w.deploy("slow.zip", &node_zip("two"), None, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["Version"].as_u64(), v["Replaced"].as_u64()),
        (Some(2), Some(1))
    );
    let (s, h, text) = w.call("slow", "").await;
    assert_eq!(s, 200);
    assert!(text.contains("\"version\":\"two\""), "{text}");
    assert_eq!(h["x-function-version"], "2");

    let (s, text) = in_flight.await.unwrap();
    assert_eq!(s, 200, "{text}");
    assert!(
        text.contains("\"version\":\"one\""),
        "the old call finished on v1: {text}"
    );
    // The old version's instance goes once its last call is done.
    await_true("v1's instance ends", || !alive(old_pid)).await;
    let (_, v) = w.json("GET", "/info/slow", None).await;
    assert_eq!(
        (v["Version"].as_u64(), v["Calls"].as_u64()),
        (Some(2), Some(3)),
        "{v}"
    );
    w.stop();
    // A clean stop leaves the data dir (kept) and no work area.
    assert!(dirs.data().join("functions.sqlite").is_file());
    let left: Vec<_> = std::fs::read_dir(dirs.work()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `--data-dir` and `--work-dir` relative to where the worker starts (as
/// a user types them): an instance runs in its version's directory, and
/// still finds its entry, and a Node.js one its bootstrap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_data_and_work_dirs_run_native_and_node_functions() {
    let dirs = Dirs::new();
    dirs.work();
    let root = dirs.root.path();
    let w = try_start_in(
        Some(root),
        Path::new("data"),
        Path::new("work"),
        &["--using-rest-mode", "true"],
    )
    .unwrap();
    let (s, v) = w.deploy("k.zip", &native_zip("k", None), None, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = w.deploy("n.zip", &node_zip("one"), None, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, _, text) = w.call("k", "").await;
    assert_eq!(s, 200, "{text}");
    assert!(text.contains("\"label\":\"k\""), "{text}");
    let (s, h, text) = w.call("n", "").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(h["x-node"], "yes", "{text}");
    w.stop();
    // The data dir is where it was named: under the worker's directory.
    assert!(root.join("data").join("functions.sqlite").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_rest_instance_ends_after_its_lifetime_and_the_next_call_is_cold() {
    let dirs = Dirs::new();
    let w = try_start_with(
        &dirs.data(),
        &dirs.work(),
        &["--rest-container-life-time", "1"],
    )
    .unwrap();
    let (s, v) = w.deploy("k.zip", &native_zip("k", None), None, None).await;
    assert_eq!(s, 200, "{v}");
    let (s, h, text) = w.call("k", "").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(meta(&h)["UsingExistingRestContainer"], false);
    let pid = serde_json::from_str::<serde_json::Value>(&text).unwrap()["pid"]
        .as_u64()
        .unwrap();
    assert_eq!(w.instances("k").await, (1, 0));
    // REST_CONTAINER_LIFE_TIME (1 s) of idleness: the node model expires it.
    await_true("the idle instance ends", || !alive(pid)).await;
    assert_eq!(w.instances("k").await, (0, 0));
    let (_, v) = w.json("GET", "/info/k", None).await;
    assert_eq!(v["Warm"], false, "{v}");
    let (s, h, _) = w.call("k", "").await;
    assert_eq!(s, 200);
    let m = meta(&h);
    assert_eq!(m["UsingExistingRestContainer"], false, "cold again: {m}");
    assert_eq!(m["ImageBuilt"], false, "the package stayed staged: {m}");
    w.stop();
}

/// The scheduling policy and the nice value of every thread of `pid`
/// (its `/proc/<pid>/task/<tid>/stat` lines).
fn thread_scheds(pid: u64) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        out.push((policy_of_stat(&stat).unwrap(), nice_of_stat(&stat).unwrap()));
    }
    out
}

/// The processes whose parent (field 4) is `ppid`.
fn children_of(ppid: u32) -> Vec<u64> {
    let ppid = ppid.to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat_field(&stat, 4) == Some(ppid.as_str()) {
            out.push(pid);
        }
    }
    out
}

/// `--function-sched batch`: every function process the worker starts
/// (a user function's, every thread of it, and a sample function's
/// instance) runs under SCHED_BATCH with the worker's nice value; the
/// worker's own threads do not. Without the option, SCHED_OTHER. The
/// Docker runtime refuses the option at start-up. `/health` reports the
/// policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_processes_run_under_the_scheduling_policy_the_worker_is_given() {
    let own = std::fs::read_to_string("/proc/self/stat").unwrap();
    let nice = nice_of_stat(&own).unwrap();
    for (sched, policy) in [("batch", 3), ("normal", 0)] {
        let dirs = Dirs::new();
        let w = try_start_with(&dirs.data(), &dirs.work(), &["--function-sched", sched]).unwrap();
        let (s, v) = w.deploy("e.zip", &native_zip("e", None), None, None).await;
        assert_eq!(s, 200, "{v}");
        // Calls at once: the function serves each connection on a thread
        // of its own, made after its start.
        let calls = (0..8).map(|_| w.call_ok("e"));
        let pids: Vec<u64> = futures_util::future::join_all(calls)
            .await
            .into_iter()
            .map(|(_, pid)| pid)
            .collect();
        assert!(
            pids.iter().all(|p| *p == pids[0]),
            "one warm instance: {pids:?}"
        );
        let threads = thread_scheds(pids[0]);
        assert!(threads.len() > 1, "{threads:?}");
        assert!(
            threads.iter().all(|t| *t == (policy, nice)),
            "--function-sched {sched}: {threads:?}"
        );
        // A sample function's instance (REST mode keeps it).
        let (s, v) = w.json("GET", "/execute?name=noop", None).await;
        assert_eq!(s, 200, "{v}");
        let worker = w.child.id();
        let samples: Vec<u64> = children_of(worker)
            .into_iter()
            .filter(|p| *p != pids[0])
            .collect();
        assert!(!samples.is_empty(), "no sample instance under the worker");
        for p in samples {
            let threads = thread_scheds(p);
            assert!(
                threads.iter().all(|t| *t == (policy, nice)),
                "sample instance {p} under --function-sched {sched}: {threads:?}"
            );
        }
        assert!(
            thread_scheds(u64::from(worker)).iter().all(|t| t.0 == 0),
            "the worker's own threads stay SCHED_OTHER"
        );
        // And it says so (what `simulator experiment` checks).
        let (s, h) = w.json("GET", "/health", None).await;
        assert_eq!(s, 200, "{h}");
        assert_eq!(h["Worker"]["FunctionSched"], sched, "{h}");
        w.stop();
    }
    let dirs = Dirs::new();
    let err = try_start_exactly(
        &dirs.data(),
        &dirs.work(),
        &["--runtime", "docker", "--function-sched", "batch"],
    )
    .err()
    .expect("the docker runtime refuses --function-sched");
    assert!(err.contains("process runtime only"), "{err}");
}
