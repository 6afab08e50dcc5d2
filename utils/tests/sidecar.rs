//! The node count of an analysis: `--nodes`, else the run's sidecar
//! (`<log>.meta.json`), else `max WorkerNodeId + 1`; through the library
//! and through `utils analyze` / `utils compare`.

use std::path::{Path, PathBuf};
use std::process::Command;

use protocol::sidecar::{sidecar_path, Cluster, RunSidecar};
use utils::analyze::{analyze, AnalyzeOptions, NodeCountRule};
use utils::logs::RunLog;

/// One call per node 0..=9, starting 0-90 ms after the first, 1.5 s long
/// (so each spans both 1-s slots), function `F<node % 3>`.
fn log_text() -> String {
    (0..10)
        .map(|node| {
            let start = 1_600_000_000_000i64 + node * 10;
            format!(
                "2020/09/13 12:26:41 {start} {} F{} {{\"Result\":{{\"statusCode\":200,\"body\":\"\"}},\"ExecutionTime\":990,\"InternalExecutionTime\":900,\"Meta\":{{\"ImageBuilt\":false,\"UsingPooledContainer\":false,\"UsingExistingRestContainer\":true,\"ContainerName\":\"c\",\"ImageName\":\"i\"}},\"LoadBalancingInfo\":{{\"WorkerNodeId\":{node},\"WorkerNodeUrl\":\"u\",\"Algorithm\":\"ch\",\"AlgorithmLatency\":0.01}}}}\n",
                start + 1500,
                node % 3
            )
        })
        .collect()
}

fn write_log(dir: &Path, name: &str, sidecar_size: Option<usize>) -> PathBuf {
    let log = dir.join(name);
    std::fs::write(&log, log_text()).unwrap();
    if let Some(size) = sidecar_size {
        let mut s = RunSidecar::new(
            "test",
            "0",
            "2026-12-02 06:00:00 UTC".into(),
            Cluster::of_size(size),
        );
        s.algorithm = Some("ch-bounded".into());
        s.seed = Some(7);
        std::fs::write(sidecar_path(&log), s.to_json()).unwrap();
    }
    log
}

fn analyze_with(log: &Path, nodes: Option<usize>) -> utils::analyze::Analysis {
    let run = RunLog::read(log).unwrap();
    let options = AnalyzeOptions {
        nodes,
        ..Default::default()
    };
    analyze(&run, &options).unwrap()
}

#[test]
fn the_sidecar_sets_the_node_count_and_nodes_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let with = write_log(dir.path(), "with.log", Some(1000));
    let without = write_log(dir.path(), "without.log", None);

    let a = analyze_with(&with, None);
    assert_eq!((a.nodes, a.node_count_rule), (1000, NodeCountRule::Sidecar));
    assert_eq!(
        a.label, "ch-bounded",
        "the sidecar's algorithm names the run"
    );
    let b = analyze_with(&without, None);
    assert_eq!(
        (b.nodes, b.node_count_rule),
        (10, NodeCountRule::MaxIdPlusOne)
    );
    assert_eq!(b.label, "ch");
    let c = analyze_with(&with, Some(20));
    assert_eq!((c.nodes, c.node_count_rule), (20, NodeCountRule::Given));

    // Every node ran one call over both slots,
    // one function: per node 1 distinct function in 2 of the 2 slots.
    // 10 nodes: locality 1, CV 0. With idle nodes, both scale with the
    // busy share: locality 10/n, CV sqrt(n/10 - 1).
    let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
    assert!(close(b.locality.mean_distinct_functions, 1.0), "{b:?}");
    assert!(close(b.imbalance.cv, 0.0));
    assert!(close(c.locality.mean_distinct_functions, 0.5));
    assert!(close(c.imbalance.cv, 1.0));
    assert!(close(a.locality.mean_distinct_functions, 0.01));
    assert!(close(a.imbalance.cv, 99f64.sqrt()));
    assert_eq!(a.per_node.len(), 1000);
}

#[test]
fn an_id_outside_the_sidecars_cluster_is_an_error_naming_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), "small.log", Some(5));
    let run = RunLog::read(&log).unwrap();
    let e = analyze(&run, &AnalyzeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("small.log") && e.contains("WorkerNodeId 9"),
        "{e}"
    );
    assert!(e.contains("small.log.meta.json"), "{e}");
    // --nodes overrides the sidecar, so a large enough count is fine.
    let a = analyze_with(&log, Some(12));
    assert_eq!(a.nodes, 12);
}

fn utils(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_utils"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn analyze_and_compare_say_where_the_node_count_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let with = write_log(dir.path(), "with.log", Some(1000));
    let without = write_log(dir.path(), "without.log", None);
    let (with, without) = (with.to_str().unwrap(), without.to_str().unwrap());

    let out = utils(&["analyze", with]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("nodes: 1000 (from the run's sidecar)"),
        "{text}"
    );
    assert!(
        text.contains("run (sidecar): test 0 | algorithm ch-bounded | seed 7 | cluster 1000 nodes"),
        "{text}"
    );

    // One table, each log with its own count: 1000 from the sidecar, 10
    // inferred.
    let out = utils(&["compare", with, without]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[1].starts_with("ch-bounded ") && lines[1].contains("1000 (sidecar)"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("ch ") && lines[2].contains("10 (inferred)"),
        "{table}"
    );
    let out = utils(&["compare", "--nodes", "20", with, without]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.matches("20 (given)").count(), 2, "{table}");

    // A malformed sidecar: a clear error naming it, no panic.
    std::fs::write(sidecar_path(Path::new(with)), "{").unwrap();
    let out = utils(&["analyze", with]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("with.log.meta.json") && !err.contains("panicked"),
        "{err}"
    );
}
