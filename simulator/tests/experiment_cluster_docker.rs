//! `simulator experiment --cluster compose --runtime docker` (issue 16,
//! part 3): the experiment's own Compose project with the Docker runtime's
//! override, each worker running its functions as sibling containers
//! under its own cgroup (bounded by `--worker-cpus` and `--worker-memory`).
//! A small run (2 workers, rr, 12 calls of two functions: each function's
//! first call on a node builds its image, so few functions keep the test
//! short) completes with every call served, `run.json` and the report say the runtime is docker, and
//! nothing of the experiment is left on the engine after: containers,
//! network (by the project's label), function containers and images (by
//! the experiment's function label).
//!
//! Images: built by `deploy/build-images.sh` with a tag and label of this
//! test ([`support::compose::Cluster`], whose project is never brought
//! up), removed at the end, pass or fail.

mod support;

use std::path::Path;
use std::process::Command;

use support::compose::{docker, Cluster};
use support::workspace_root;

/// Ids of what `list` (`ps -aq`, `images -aq`, `network ls -q`) shows
/// with `label`.
fn labelled(list: &[&str], label: &str) -> Vec<String> {
    let out = docker(&[list, &["--filter", &format!("label={label}")]].concat());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Calls of the run's scenario.
const CALLS: usize = 12;

#[test]
fn an_experiment_runs_on_a_compose_cluster_with_the_docker_runtime_and_leaves_nothing() {
    let cluster = Cluster::build("expdk", &[]);
    let results = tempfile::tempdir().unwrap();
    let scenario = results.path().join("two-functions.csv");
    let rows: String = (0..CALLS)
        .map(|i| format!("{},{}\n", ["W1", "W2"][i % 2], i * 250))
        .collect();
    std::fs::write(&scenario, rows).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .current_dir(workspace_root())
        .arg("experiment")
        .args(["--name", "dockerrt", "--algorithms", "rr", "--no-plots"])
        .arg("--results-dir")
        .arg(results.path())
        .arg("--scenario")
        .arg(&scenario)
        .args(["--cluster", "compose", "--runtime", "docker"])
        .args(["--image-tag", &cluster.tag, "--workers", "2"])
        // 2g: the nodes' memory for instances (2048 MB) fits in each.
        .args(["--worker-cpus", "1", "--worker-memory", "2g"])
        .env_remove("HF_MGMT_TOKEN")
        .output()
        .expect("the simulator runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir = results.path().join("dockerrt");
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("run.json"))
            .unwrap_or_else(|e| panic!("run.json: {e}; {stderr}")),
    )
    .unwrap();
    let c = &run["cluster"];
    // Checked first, so that a failed run still shows what it left.
    let project = c["compose_project"].as_str().expect("a compose project");
    let project_label = format!("com.docker.compose.project={project}");
    let function_label = format!("hotfunctions.deploy={project}");
    assert_eq!(c["function_label"], function_label.as_str(), "{c}");
    for (what, list, label) in [
        ("containers", &["ps", "-aq"][..], &project_label),
        ("network", &["network", "ls", "-q"][..], &project_label),
        ("function containers", &["ps", "-aq"][..], &function_label),
        ("function images", &["images", "-aq"][..], &function_label),
    ] {
        assert_eq!(
            labelled(list, label),
            Vec::<String>::new(),
            "{what} of {project} left"
        );
    }
    assert!(out.status.success(), "{stderr}");

    assert_eq!(run["runtime"], "docker");
    assert_eq!(c["kind"], "compose", "{c}");
    assert_eq!(c["runtime"], "docker", "{c}");
    assert!(
        c["compose_override"]
            .as_str()
            .is_some_and(|f| f.ends_with("docker-compose.docker-runtime.yml")),
        "{c}"
    );
    let nodes = c["points"][0]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{c}");
    for n in nodes {
        // Each worker said so itself (`/health`).
        assert_eq!(n["runtime"], "docker", "{n}");
    }
    let runs = run["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    let log = Path::new(r["log"].as_str().unwrap());
    let lines = std::fs::read_to_string(log).unwrap().lines().count();
    assert_eq!(lines, CALLS, "{}", log.display());
    assert_eq!(r["replay"]["errors"].as_u64(), Some(0), "{r}");
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let mode = report
        .lines()
        .find(|l| l.starts_with("| Mode |"))
        .unwrap_or_else(|| panic!("no Mode line: {report}"));
    assert!(
        mode.contains("docker runtime") && mode.contains("1 CPU and 2g memory"),
        "{mode}"
    );
}
