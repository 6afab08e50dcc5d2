//! `simulator experiment --cluster` (issue 16, part 3): the same comparison
//! and report on containerised nodes with their own CPU and memory limits,
//! first on a Compose project the experiment brings up and takes down
//! itself (with a scenario, then with a closed loop of two stages), then
//! on a running cluster given by its balancer's URL.
//!
//! Images: built once by `deploy/build-images.sh` with a tag and label of
//! this test ([`support::compose::Cluster`]), removed at the end with the
//! test's own compose project, pass or fail.

// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::compose::{docker, Cluster, TOKEN};
use support::workspace_root;

fn experiment(results: &Path, name: &str, args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_simulator"));
    cmd.current_dir(workspace_root())
        .arg("experiment")
        .args(["--name", name, "--algorithms", "rr,ll", "--no-plots"])
        .arg("--results-dir")
        .arg(results)
        .args(args)
        .env_remove("HF_MGMT_TOKEN");
    if let Some(t) = token {
        cmd.env("HF_MGMT_TOKEN", t);
    }
    cmd.output().expect("the simulator runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_json(results: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(results.join(name).join("run.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The `WorkerNodeId`s of a run's log, and its line count.
fn nodes_of_log(path: &Path) -> (std::collections::BTreeSet<u64>, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let reply: serde_json::Value =
            serde_json::from_str(&line[line.find('{').unwrap()..]).unwrap();
        if let Some(id) = reply["LoadBalancingInfo"]["WorkerNodeId"].as_u64() {
            ids.insert(id);
        }
    }
    (ids, lines)
}

/// `--cluster compose` on the test's images with 2 workers, then `more`.
fn own_compose<'a>(tag: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--cluster", "compose", "--image-tag", tag, "--workers", "2"];
    args.extend_from_slice(more);
    args
}

/// The compose project of an experiment's `run.json` is gone: containers
/// and network.
fn assert_project_gone(run: &serde_json::Value) {
    let project = run["cluster"]["compose_project"].as_str().unwrap();
    let label = format!("label=com.docker.compose.project={project}");
    let left = docker(&["ps", "-aq", "--filter", &label]);
    assert!(left.stdout.is_empty(), "containers of {project} left");
    let left = docker(&["network", "ls", "-q", "--filter", &label]);
    assert!(left.stdout.is_empty(), "network of {project} left");
}

#[test]
fn experiments_run_on_a_compose_cluster_of_their_own_and_on_a_running_cluster() {
    // Images for both halves; the test's own project is the "running
    // cluster" of the second half.
    let cluster = Cluster::build("expcl", &[]);
    let results = tempfile::tempdir().unwrap();

    // 1. The experiment's own compose project: 2 workers of 0.5 CPU and
    // 256 MB each.
    let out = experiment(
        results.path(),
        "compose",
        &own_compose(
            &cluster.tag,
            &["--worker-cpus", "0.5", "--worker-memory", "256m"],
        ),
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = run_json(results.path(), "compose");
    let c = &run["cluster"];
    assert_eq!(c["kind"], "compose", "{c}");
    assert_eq!(c["cpus_per_node"], 0.5, "{c}");
    assert_eq!(c["memory_per_node"], "256m", "{c}");
    let nodes = c["points"][0]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{c}");
    for n in nodes {
        // Each worker container answered for itself: the process runtime
        // and the experiment's time scale.
        assert_eq!(n["runtime"], "process", "{n}");
        assert_eq!(n["time_scale"], run["fn_time_scale"], "{n}");
    }
    assert_eq!(c["images"].as_object().unwrap().len(), 2, "{c}");
    for r in run["runs"].as_array().unwrap() {
        let log = Path::new(r["log"].as_str().unwrap());
        let (ids, lines) = nodes_of_log(log);
        assert_eq!(lines, 131, "{}", log.display());
        // rr and ll never refuse a call (ch, bounded, may answer 503 on
        // slow nodes): every call ran on a worker container.
        assert!(r["replay"]["errors"].as_u64() == Some(0), "{r}");
        // rr spreads over both containers.
        if r["algorithm"] == "rr" {
            assert_eq!(ids.len(), 2, "{ids:?}");
        }
    }
    let report = std::fs::read_to_string(results.path().join("compose/report.md")).unwrap();
    assert!(
        report.contains("Docker Compose project") && report.contains("0.5 CPU and 256m memory"),
        "{report}"
    );
    assert_project_gone(&run);

    // 2. A closed loop of two stages on a compose project of its own (the
    // same images): the clients' first `/clear` needs the project's fresh
    // token (none is set here), calls run on both worker containers, and
    // each run records its stages.
    let out = experiment(
        results.path(),
        "compose-loop",
        &own_compose(
            &cluster.tag,
            &[
                "--clients",
                "2,4",
                "--duration",
                "2s",
                "--functions",
                "uniform",
                "--names",
                "W1,W2,T1",
                "--grace",
                "30s",
            ],
        ),
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = run_json(results.path(), "compose-loop");
    assert_eq!(run["cluster"]["kind"], "compose");
    let cl = &run["closed_loop"];
    assert_eq!(cl["clients"], serde_json::json!([2, 4]), "{cl}");
    assert_eq!(
        (cl["stages"].as_u64(), cl["duration_s"].as_f64()),
        (Some(2), Some(2.0)),
        "{cl}"
    );
    let runs = run["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        let load = &r["load"];
        let calls = load["calls"].as_u64().unwrap();
        assert!(calls > 0, "{r}");
        assert_eq!(load["ok"], load["calls"], "{r}");
        let (ids, lines) = nodes_of_log(Path::new(r["log"].as_str().unwrap()));
        assert_eq!(lines as u64, calls, "{r}");
        if r["algorithm"] == "rr" {
            assert_eq!(ids.len(), 2, "{ids:?}");
        }
        // Per stage: 2 then 4 clients, the stages' calls adding up to the
        // run's.
        let stages = load["stages"].as_array().unwrap();
        let clients: Vec<u64> = stages
            .iter()
            .map(|s| s["clients"].as_u64().unwrap())
            .collect();
        assert_eq!(clients, [2, 4], "{r}");
        let per_stage: u64 = stages.iter().map(|s| s["calls"].as_u64().unwrap()).sum();
        assert_eq!(per_stage, calls, "{r}");
        assert!(stages.iter().all(|s| s["ok"].as_u64() > Some(0)), "{r}");
    }
    let report = std::fs::read_to_string(results.path().join("compose-loop/report.md")).unwrap();
    assert!(
        report.contains("stages of 2, then 4 clients, 2.0 s each")
            && report.contains("Docker Compose project"),
        "{report}"
    );
    assert_project_gone(&run);

    // 3. A running cluster, by its balancer's URL.
    cluster.scale(2);
    cluster.wait_online(2);
    let url = cluster.url();
    // Without the token, the first management call is refused, and the
    // error says what to set.
    // (--time-scale 5: the workers' HF_TIME_SCALE 0.05 is the default load
    // factor 0.25 over 5.)
    let out = experiment(
        results.path(),
        "url0",
        &["--cluster", &url, "--time-scale", "5"],
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HF_MGMT_TOKEN"), "{}", stderr(&out));
    // Workers started with HF_TIME_SCALE 0.05 cannot run an experiment that
    // needs 0.1 (load factor 0.5 at time scale 5): refused before any run.
    let out = experiment(
        results.path(),
        "url1",
        &[
            "--cluster",
            &url,
            "--time-scale",
            "5",
            "--load-factor",
            "0.5",
        ],
        Some(TOKEN),
    );
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("HF_TIME_SCALE 0.05") && e.contains("0.1"), "{e}");
    let out = experiment(
        results.path(),
        "url",
        &["--cluster", &url, "--time-scale", "5"],
        Some(TOKEN),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = run_json(results.path(), "url");
    assert_eq!(run["cluster"]["kind"], "url");
    assert_eq!(run["cluster"]["balancer"], url.as_str());
    assert_eq!(
        run["cluster"]["points"][0]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(run["runs"].as_array().unwrap().len(), 2);
    // The cluster's size is recorded, not --workers' default of 4.
    assert_eq!(run["workers"], 2);
    let report = std::fs::read_to_string(results.path().join("url/report.md")).unwrap();
    assert!(report.contains("running cluster behind"), "{report}");
}
