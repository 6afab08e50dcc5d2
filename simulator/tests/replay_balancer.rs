//! `simulator replay` against the real `load-balancer` binary in fake mode
//! (the original's `load_balancer <algo> <fake_nodes>`): the log holds the
//! balancer's own replies, one line per event, readable by the analyzer.
//!
//! Against the real balancer over real stub workers, the log's sidecar
//! names the balancer's nodes under the ids its replies carry, its
//! algorithm, parameters and seed; an existing log or sidecar is never
//! replaced without `--overwrite`; stderr (not a terminal here) holds no
//! escape codes.
//!
//! Builds the workspace's binaries first with the `cargo` running this
//! test (`cargo build --workspace --bins`, a no-op when current).

mod support;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use protocol::sidecar::{sidecar_path, RunSidecar};

use protocol::{BalancerReply, LogLine};
use support::{balancer_stores_in, start_printing_url, workspace_bins_with, Server};

/// The balancer and the stub worker, built (a no-op when current); their
/// directory.
fn build_balancer() -> PathBuf {
    workspace_bins_with(&["load-balancer", "stub-worker"])
}

fn start_fake_balancer(algorithm: &str, nodes: u32) -> Server {
    let bin = build_balancer().join("load-balancer");
    let nodes = nodes.to_string();
    start_printing_url(
        &bin,
        &[
            algorithm,
            &nodes,
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--fake-delay-ms",
            "50",
        ],
        Stdio::null(),
    )
}

fn start_stub(id: &str) -> Server {
    let bin = build_balancer().join("stub-worker");
    start_printing_url(
        &bin,
        &["--host", "127.0.0.1", "--port", "0", "--id", id],
        Stdio::null(),
    )
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    let authority = url.strip_prefix("http://").unwrap();
    let (authority, path) = match authority.find('/') {
        Some(i) => (&authority[..i], &authority[i..]),
        None => (authority, "/"),
    };
    let mut s = TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

fn replay(args: &[&OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simulator"))
        .arg("replay")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn replays_against_the_real_balancer_in_fake_mode() {
    let balancer = start_fake_balancer("ch", 3);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    std::fs::write(&csv, "W1,0\nW2,0\nW1,100\nW3,200\nW2,300\nW1,300\n").unwrap();
    let log = dir.path().join("fake.log");
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["replay", &balancer.url])
        .arg(&csv)
        .arg(&log)
        .args(["--time-scale", "2", "--progress", "off"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok 6, errors 0"), "{stdout}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<LogLine> = text.lines().map(|l| LogLine::parse(l).unwrap()).collect();
    assert_eq!(lines.len(), 6, "{text}");
    let mut node_of = std::collections::HashMap::new();
    for l in &lines {
        assert!(!l.is_error(), "{l:?}");
        let reply: BalancerReply = serde_json::from_str(&l.json).unwrap();
        assert_eq!(reply.load_balancing_info.algorithm, "ch");
        assert!((0..3).contains(&reply.load_balancing_info.worker_node_id));
        // Fake calls sleep 50 ms inside the balancer.
        assert!(l.end_ms - l.start_ms >= 50, "{l:?}");
        // Consistent hashing: one function, one node (far below the bound).
        let node = *node_of
            .entry(l.function.clone())
            .or_insert(reply.load_balancing_info.worker_node_id);
        assert_eq!(node, reply.load_balancing_info.worker_node_id, "{text}");
    }

    // Stopped as a user stops it (the test support's `stop`), the
    // balancer leaves nothing behind: its temporary store of users'
    // functions, named by its pid, is gone.
    let pid = balancer.child.id();
    drop(balancer);
    let left = balancer_stores_in(&std::env::temp_dir(), Some(pid));
    assert!(left.is_empty(), "the stopped balancer left {left:?}");
}

/// Against a balancer with no worker every call fails (503): the summary
/// says there is no response time, instead of a p50 and p99 of 0 ms over
/// no call.
#[test]
fn a_replay_without_a_successful_call_prints_no_response_time() {
    let bin = build_balancer().join("load-balancer");
    let balancer = start_printing_url(
        &bin,
        &["rr", "--port", "0", "--host", "127.0.0.1", "--start-empty"],
        Stdio::null(),
    );
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    std::fs::write(&csv, "W1,0\nW2,0\nW1,100\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["replay", &balancer.url])
        .arg(&csv)
        .arg(dir.path().join("lost.log"))
        .args(["--progress", "off", "--max-failures", "100%"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok 0, errors 3"), "{stdout}");
    assert!(
        stdout.contains("no response time: no call succeeded"),
        "{stdout}"
    );
    assert!(!stdout.contains("response time p50"), "{stdout}");
}

/// Wait until `cond` holds on the balancer's `/1/lb/scheduler` (60 s).
fn wait_scheduler(url: &str, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http("GET", &format!("{url}/1/lb/scheduler"), "");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if cond(&v) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_sidecar_describes_the_balancers_nodes_algorithm_and_seed() {
    let stubs: Vec<Server> = (0..3).map(|i| start_stub(&format!("s{i}"))).collect();
    let urls: Vec<&str> = stubs.iter().map(|s| s.url.as_str()).collect();
    let nodes = urls.join(",");
    let bin = build_balancer().join("load-balancer");
    let balancer = start_printing_url(
        &bin,
        &[
            "ch",
            "--nodes",
            &nodes,
            "--seed",
            "11",
            "--param",
            "T=3",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--health-interval-ms",
            "100",
        ],
        Stdio::null(),
    );
    // Node 0 removed and added again: it comes back as id 3, so the ids
    // are not the list order (what the fallback on /1/lb/nodes assumes).
    let body = format!(r#"{{"node": "{}"}}"#, urls[0]);
    let nodes_url = format!("{}/1/lb/nodes", balancer.url);
    assert_eq!(http("DELETE", &nodes_url, &body).0, 200);
    assert_eq!(http("PUT", &nodes_url, &body).0, 200);
    wait_scheduler(&balancer.url, "all online", |v| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "online")
    });

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    std::fs::write(
        &csv,
        "W1,0\nW2,0\nW3,20\nW4,40\nW5,60\nW6,80\nW7,100\nW8,100\n",
    )
    .unwrap();
    let log = dir.path().join("logs").join("ch.log");
    let meta = sidecar_path(&log);
    let out = replay(&[
        balancer.url.as_ref(),
        csv.as_ref(),
        log.as_ref(),
        "--progress".as_ref(),
        "bar".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok 8, errors 0"), "{stdout}");
    // stderr is a pipe here: plain lines, no colours or cursor movements.
    assert!(!stderr.contains('\x1b'), "{stderr:?}");

    let run = RunSidecar::parse(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(run.producer, "simulator replay");
    assert_eq!(run.algorithm.as_deref(), Some("ch"));
    assert_eq!(run.seed, Some(11));
    assert_eq!(run.parameters["T"], 3);
    assert_eq!(run.scales.time_scale, 1.0);
    assert_eq!(run.scenario.as_deref(), Some(csv.to_str().unwrap()));
    assert_eq!(run.cluster.size, 3);
    let ids: Vec<(usize, Option<&str>)> = run
        .cluster
        .nodes
        .iter()
        .map(|n| (n.id, n.url.as_deref()))
        .collect();
    assert_eq!(
        ids,
        [(1, Some(urls[1])), (2, Some(urls[2])), (3, Some(urls[0]))]
    );
    assert_eq!(run.extra["cluster_source"], "GET /1/lb/scheduler");
    assert_eq!(run.extra["balancer_version"], env!("CARGO_PKG_VERSION"));
    // The balancer's own revision: this build's commit (its dirty flag
    // covers its own sources only).
    assert_eq!(
        run.extra["balancer_revision"]["commit"].as_str(),
        simulator::source_revision()
            .as_ref()
            .map(|g| g.commit.as_str()),
        "{:?}",
        run.extra
    );
    assert_eq!(run.extra["replay"]["ok"], 8, "{:?}", run.extra);
    assert_eq!(run.extra["replay"]["errors"], 0);
    assert!(run.extra["replay"]["dispatch_lag_p99_us"].is_u64());
    assert!(!run.started_utc.is_empty());
    // Every reply's node is in the sidecar under the id the reply carries.
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        let line = LogLine::parse(line).unwrap();
        let reply: BalancerReply = serde_json::from_str(&line.json).unwrap();
        let info = reply.load_balancing_info;
        let node = run
            .cluster
            .nodes
            .iter()
            .find(|n| n.id as i64 == info.worker_node_id)
            .unwrap_or_else(|| panic!("node {} not in the sidecar", info.worker_node_id));
        assert_eq!(node.url.as_deref(), Some(info.worker_node_url.as_str()));
    }

    // No --overwrite: refused, and nothing already written is touched.
    let sidecar_text = std::fs::read_to_string(&meta).unwrap();
    let out = replay(&[balancer.url.as_ref(), csv.as_ref(), log.as_ref()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), text);
    assert_eq!(std::fs::read_to_string(&meta).unwrap(), sidecar_text);
    // A sidecar alone is protected too: no log is created beside it.
    std::fs::remove_file(&log).unwrap();
    let out = replay(&[balancer.url.as_ref(), csv.as_ref(), log.as_ref()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(".meta.json already exists"), "{stderr}");
    assert!(!log.exists());
    assert_eq!(std::fs::read_to_string(&meta).unwrap(), sidecar_text);
    // --overwrite replaces both.
    let out = replay(&[
        balancer.url.as_ref(),
        csv.as_ref(),
        log.as_ref(),
        "--overwrite".as_ref(),
        "--time-scale".as_ref(),
        "2".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = RunSidecar::parse(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(run.scales.time_scale, 2.0);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 8);
}

/// A "balancer" without the description routes (here a stub worker, which
/// answers /clear and /execute but neither /1/lb route): the replay still
/// runs, and its sidecar says the cluster is unknown.
#[test]
fn a_balancer_that_cannot_describe_itself_gives_size_0_and_a_warning() {
    let stub = start_stub("alone");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    std::fs::write(&csv, "W1,0\nW2,10\n").unwrap();
    let log = dir.path().join("old.log");
    let out = replay(&[
        stub.url.as_ref(),
        csv.as_ref(),
        log.as_ref(),
        "--progress".as_ref(),
        "off".as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: the balancer did not describe its cluster"),
        "{stderr}"
    );
    let run = RunSidecar::parse(&std::fs::read_to_string(sidecar_path(&log)).unwrap()).unwrap();
    assert_eq!(run.cluster.size, 0);
    assert_eq!(run.algorithm, None);
    assert_eq!(run.extra["cluster_source"], "unknown");
    let warnings = run.extra["warnings"].as_array().unwrap();
    assert!(
        warnings[0].as_str().unwrap().contains("/1/lb/scheduler"),
        "{warnings:?}"
    );
    assert_eq!(run.extra["replay"]["ok"], 2);
}
