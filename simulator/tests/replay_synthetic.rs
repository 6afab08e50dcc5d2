//! An imported Azure trace replayed live (issue 12 §2): `utils import
//! azure2021` on the checked-in fixture writes a scenario with
//! per-invocation durations and memory and a catalog of its synthetic
//! functions; two `worker-front` processes started with that `--catalog`,
//! behind a real `load-balancer`, run `simulator replay` of it (100 times
//! faster, functions at 1 % of their durations) with no failed call; each
//! call's reply shows the duration of its own row (so the shape went
//! through the balancer); `utils analyze` reads the log.
//!
//! Builds the testbed binaries and `utils` with the cargo running this
//! test (a no-op when current).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use protocol::{BalancerReply, LogLine};
use support::{
    build_testbed, free_port, staging_dir, start_printing_url, utils_bin, wait_healthy,
    workspace_root, Guard,
};

/// The workers' `HF_TIME_SCALE`.
const FN_TIME_SCALE: f64 = 0.01;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let text = format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

fn start_worker(bins: &Path, catalog: &Path, staging: &Path) -> (Guard, String) {
    let port = free_port();
    let mut worker = Command::new(bins.join("worker-front"));
    worker
        .args(["start", &port.to_string(), "--host", "127.0.0.1"])
        .args(["--time-scale", &FN_TIME_SCALE.to_string()])
        .args(["--package-scale", "0.01"])
        .arg("--catalog")
        .arg(catalog)
        .arg("--work-dir")
        .arg(staging)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in policy::node::options::ENV_NAMES {
        worker.env_remove(name);
    }
    let mut guard = Guard(worker.spawn().expect("start worker-front"));
    wait_healthy(port, &mut guard.0);
    (guard, format!("http://127.0.0.1:{port}"))
}

#[test]
fn an_imported_azure_trace_replays_on_workers_with_its_catalog() {
    let bins = build_testbed();
    let utils = utils_bin();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("azure.csv");
    let catalog = dir.path().join("azure.csv.catalog.csv");
    let trace = workspace_root()
        .join("utils/tests/fixtures/azure2021/AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt");
    run(Command::new(&utils)
        .args(["import", "azure2021", "--file"])
        .arg(&trace)
        .arg("--out")
        .arg(&scenario)
        .arg("--catalog")
        .arg(&catalog)
        .arg("--overwrite"));
    let text = std::fs::read_to_string(&scenario).unwrap();
    let events = protocol::scenario::parse(&text, "azure.csv").unwrap();
    assert!(events.len() >= 4, "{text}");
    assert!(events.iter().all(|e| e.shape.is_some()), "{text}");

    let staging = staging_dir();
    let (_w1, url1) = start_worker(&bins, &catalog, staging.path());
    let (_w2, url2) = start_worker(&bins, &catalog, staging.path());
    let nodes = format!("{url1},{url2}");
    let lb = start_printing_url(
        &bins.join("load-balancer"),
        &[
            "rr",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--nodes",
            &nodes,
        ],
        Stdio::null(),
    );

    let log = dir.path().join("out.log");
    let replayed = run(Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["replay", &lb.url])
        .arg(&scenario)
        .arg(&log)
        .args(["--time-scale", "100", "--progress", "off", "--overwrite"]));
    assert!(replayed.contains("errors 0"), "{replayed}");

    // Each function's calls, in send order, against its rows in start
    // order: every reply ran (at least 90 % of) its own row's duration.
    let mut rows: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| e.start_ms);
    for e in &sorted {
        rows.entry(e.function.as_str())
            .or_default()
            .push(e.shape.unwrap().duration_us);
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    let mut calls: BTreeMap<String, Vec<(i64, BalancerReply)>> = BTreeMap::new();
    for line in logged.lines() {
        let l = LogLine::parse(line).unwrap();
        let reply: BalancerReply = serde_json::from_str(&l.json).unwrap();
        calls
            .entry(l.function.clone())
            .or_default()
            .push((l.start_ms, reply));
    }
    assert_eq!(logged.lines().count(), events.len(), "{logged}");
    for (function, mut replies) in calls {
        replies.sort_by_key(|(start, _)| *start);
        let durations = &rows[function.as_str()];
        assert_eq!(replies.len(), durations.len(), "{function}");
        for ((_, reply), us) in replies.iter().zip(durations) {
            // The import's CPU share is 0.5: the CPU half is calibrated
            // work (sooner on a fast idle core, later on a loaded one),
            // the sleep half holds anywhere.
            let want_ms = *us as f64 / 1000.0 * FN_TIME_SCALE * 0.5 * 0.9;
            assert!(
                reply.worker.internal_execution_time as f64 >= want_ms.floor(),
                "{function}: row of {us} µs, reply {reply:?}"
            );
            let body: serde_json::Value = serde_json::from_str(&reply.worker.result.body).unwrap();
            assert!(body["memoryMb"].as_u64().unwrap() > 0, "{body}");
        }
    }

    let analyzed = run(Command::new(&utils).arg("analyze").arg(&log));
    assert!(!analyzed.trim().is_empty(), "{analyzed}");
}
