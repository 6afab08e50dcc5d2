//! `simulator des --keep-alive-policy`: the real binary on the small
//! scenario. The policy (and its parameters), the keep-alive and the node
//! memory are recorded in the sidecar and the summary; the option selects
//! the Lambda model; bad values and contradictions are clear errors.

mod support;

use std::path::{Path, PathBuf};

use support::json;

fn small() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv")
}

/// `simulator des` on the small scenario, ideal platform, with `args`.
fn des(args: &[&str]) -> std::process::Output {
    let small = small();
    let mut all = vec![small.to_str().unwrap(), "--ideal"];
    all.extend_from_slice(args);
    support::des(&all)
}

#[test]
fn the_policy_is_recorded_and_selects_the_lambda_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut cold = Vec::new();
    for policy in ["fixed", "lru", "greedy-dual", "histogram", "ewma"] {
        let log = dir.path().join(format!("{policy}.log"));
        let summary = dir.path().join(format!("{policy}.json"));
        let out = des(&[
            "--nodes",
            "1",
            "--keep-alive-policy",
            policy,
            "--keep-alive-s",
            "45",
            "--node-memory-mb",
            "512",
            "--log",
            log.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{policy}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let side = json(&protocol::sidecar::sidecar_path(&log));
        let model = &side["extra"]["instance_model"];
        assert_eq!(model["model"], "lambda", "{side}");
        assert_eq!(model["keep_alive_s"], 45.0);
        assert_eq!(model["policy"]["name"], policy);
        assert_eq!(side["extra"]["node_memory_mb"], 512);
        let s = json(&summary);
        assert_eq!(s["config"]["instances"]["policy"]["name"], policy);
        if policy == "histogram" {
            assert_eq!(model["policy"]["tail_percentile"], 99.0, "{model}");
        }
        if policy == "ewma" {
            assert_eq!(model["policy"]["interval_s"], 30.0, "{model}");
        }
        cold.push((
            policy,
            s["cold_starts"].as_u64().unwrap(),
            s["instances"]["memory_evictions"].as_u64().unwrap(),
        ));
    }
    // Under 512 MB, lru evicts and starts more calls cold than fixed.
    let (_, fixed_cold, fixed_evictions) = cold[0];
    let (_, lru_cold, lru_evictions) = cold[1];
    assert_eq!(fixed_evictions, 0);
    assert!(lru_evictions > 0 && lru_cold > fixed_cold, "{cold:?}");
}

#[test]
fn bad_policies_and_contradictions_are_clear_errors() {
    let out = des(&["--keep-alive-policy", "lfu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lfu") && err.contains("greedy-dual"), "{err}");
    let out = des(&[
        "--instance-model",
        "hotfunctions",
        "--keep-alive-policy",
        "lru",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs the Lambda model"), "{err}");
    let out = des(&["--instance-model", "lambda", "--keep-alive-s=-1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--keep-alive-s"), "{err}");
}
