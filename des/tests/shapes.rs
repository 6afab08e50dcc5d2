//! Per-invocation durations and memory (issue 12 part 2) in the DES: a
//! scenario row's `DurationMs` replaces its function's work for that call,
//! split into CPU work and sleep by the function's catalog CPU share, and
//! its `MemoryMb` is the memory of the instance the call uses. Functions
//! come from a user's catalog file (`Catalog::with_file`), modelled as the
//! samples are. Timelines worked out by hand below.

use std::sync::Arc;
use std::time::Duration;

use des::{
    run_scenario, Admission, CostProfile, DesConfig, DesError, InstanceModel, KeepAlivePolicy,
    Overflow, Summary,
};
use protocol::{BalancerReply, LogLine};

/// A catalog file with one function, S: one round of 300 ms CPU then
/// 700 ms sleep (CPU share 0.3), 128 MB, 1 MB package.
fn catalog(dir: &std::path::Path) -> Arc<sample_functions::Catalog> {
    let header = "name,type,original_language,rate_per_s,duration_class,library,package_bytes,rounds,cpu_ms_per_round,sleep_ms_per_round,original_iterations_per_round,memory_mb";
    let path = dir.join("catalog.csv");
    std::fs::write(
        &path,
        format!("{header}\nS,synthetic,unknown,0,~1s,none,1000000,1,300,700,0,128\n"),
    )
    .unwrap();
    Arc::new(sample_functions::Catalog::with_file(&path).unwrap())
}

/// One node of one core, Lambda model, 500 ms cold starts, else ideal.
fn config(catalog: Arc<sample_functions::Catalog>) -> DesConfig {
    DesConfig {
        nodes: 1,
        cores: 1,
        instances: InstanceModel::lambda(Duration::from_secs(60), KeepAlivePolicy::Fixed),
        profile: CostProfile {
            lambda_cold_ms: 500.0,
            ..CostProfile::default()
        },
        catalog: Some(catalog),
        epoch_ms: 0,
        ..DesConfig::default()
    }
}

/// (start, end, cold, instance) per call, by start then end.
fn run(scenario: &str, config: &DesConfig) -> (Summary, Vec<(i64, i64, bool, String)>) {
    let events = protocol::scenario::parse(scenario, "t.csv").unwrap();
    let mut log = Vec::new();
    let s = run_scenario(&events, config, Some(&mut log)).unwrap();
    let mut calls: Vec<_> = String::from_utf8(log)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let line = LogLine::parse(l).unwrap();
            let r: BalancerReply = serde_json::from_str(&line.json).ok()?;
            Some((
                line.start_ms,
                line.end_ms,
                r.worker.meta.is_cold(),
                r.worker.meta.container_name,
            ))
        })
        .collect();
    calls.sort();
    (s, calls)
}

#[test]
fn row_durations_split_by_the_catalog_cpu_share() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(catalog(dir.path()));
    // A (0 ms, 2000 ms): 600 ms CPU + 1400 ms sleep; B (0 ms, 1000 ms):
    // 300 CPU + 700 sleep. Both cold-start (0 -> 500), then share the one
    // core: at half speed each, B's CPU ends at 500 + 600 = 1100, when A
    // has 300 of 600 done; A's ends alone at 1400. B sleeps to 1800, A to
    // 2800. C (3000 ms, 500 ms: 150 CPU + 350 sleep) reuses the newest
    // idle instance, B's (2), warm: 3000 -> 3150 -> 3500.
    let scenario = "S,0,2000,256\nS,0,1000,128\nS,3000,500,64\n";
    let (s, calls) = run(scenario, &config);
    let i = |n: u32| format!("des-0-S-{n}");
    assert_eq!(
        calls,
        vec![
            (0, 1800, true, i(2)),
            (0, 2800, true, i(1)),
            (3000, 3500, false, i(2)),
        ]
    );
    assert_eq!((s.completed, s.cold_starts), (3, 2));
    // Without the rows' durations, S runs its catalog phases: cold
    // 500 + 300 CPU + 700 sleep.
    let (_, calls) = run("S,0\n", &config);
    assert_eq!(calls, vec![(0, 1500, true, i(1))]);
}

#[test]
fn row_memory_is_the_instances_memory_on_the_node() {
    let dir = tempfile::tempdir().unwrap();
    // 300 MB, a full node rejects. A asks 256 MB, B 128: 384 MB do not
    // fit, B is rejected. Without a MemoryMb column both take S's
    // catalog 128 MB: 256 MB fit, both run.
    let config = DesConfig {
        node_memory_mb: 300,
        admission: Admission {
            max_running: None,
            overflow: Overflow::Reject,
        },
        ..config(catalog(dir.path()))
    };
    let (s, _) = run("S,0,2000,256\nS,0,1000,128\n", &config);
    assert_eq!((s.completed, s.failed), (1, 1));
    let (s, _) = run("S,0,2000\nS,0,1000\n", &config);
    assert_eq!((s.completed, s.failed), (2, 0));
}

#[test]
fn a_function_in_no_catalog_is_named_with_the_way_out() {
    let events = protocol::scenario::parse("S,0,10,64\n", "t.csv").unwrap();
    let config = DesConfig {
        catalog: None,
        ..config(Arc::new(sample_functions::catalog().clone()))
    };
    let e = run_scenario(&events, &config, None).unwrap_err();
    assert!(matches!(e, DesError::UnknownFunction { .. }), "{e}");
    assert!(e.to_string().contains("--catalog"), "{e}");
    // A default model serves it too; the row's duration is all sleep for
    // a `sleep:` model (CPU share 0): 500 cold + 10 ms.
    let config = DesConfig {
        default_function: Some("sleep:1000".parse().unwrap()),
        ..config
    };
    let (_, calls) = run("S,0,10,64\n", &config);
    assert_eq!(calls, vec![(0, 510, true, "des-0-S-1".to_string())]);
}
