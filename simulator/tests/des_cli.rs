//! `simulator des` as a user runs it: the real binary on the checked-in
//! small scenario. Same inputs give byte-identical logs and summaries equal
//! but for their wall-clock `performance`; the seed is recorded; bad input
//! is a clear error naming the file and line; an existing log is never
//! overwritten by accident.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_simulator"))
}

fn small() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv")
}

fn des(args: &[&str]) -> Output {
    bin()
        .arg("des")
        .args(args)
        .env_remove("HF_TIME_SCALE")
        .env_remove("SEED")
        .output()
        .expect("run simulator")
}

fn summary_without_performance(path: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let perf = v
        .as_object_mut()
        .unwrap()
        .remove("performance")
        .expect("performance section");
    assert!(perf["wall_seconds"].as_f64().unwrap() >= 0.0);
    v
}

#[test]
fn same_inputs_give_byte_identical_logs_and_the_seed_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = small();
    let mut logs = Vec::new();
    let mut summaries = Vec::new();
    for (i, seed) in ["7", "7", "8"].iter().enumerate() {
        let log = dir.path().join(format!("run{i}.log"));
        let summary = dir.path().join(format!("run{i}.json"));
        let out = des(&[
            scenario.to_str().unwrap(),
            "--algorithm",
            "tradeoff",
            "--ALPHA",
            "0.3",
            "--nodes",
            "4",
            "--seed",
            seed,
            "--USING_REST_MODE",
            "true",
            "--log",
            log.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.push(std::fs::read(&log).unwrap());
        summaries.push(summary_without_performance(&summary));
    }
    assert_eq!(logs[0], logs[1], "same seed: byte-identical logs");
    assert_eq!(summaries[0], summaries[1]);
    assert_eq!(summaries[0]["seed"], 7);
    assert_eq!(summaries[2]["seed"], 8);
    let scheduler = &summaries[0]["config"]["scheduler"];
    assert_eq!(scheduler["algorithm"], "tradeoff");
    assert_eq!(scheduler["params"]["ALPHA"], 0.3);
    assert_eq!(
        scheduler["params"]["BETA"], 0.5,
        "defaults are recorded too"
    );
    assert_eq!(scheduler["seed"], 7);
    assert_eq!(summaries[0]["config"]["worker"]["UsingRestMode"], true);
    assert_ne!(
        logs[0], logs[2],
        "tradeoff's random choices follow the seed"
    );
    let text = String::from_utf8(logs[0].clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 131);
    for l in &lines {
        let line = protocol::LogLine::parse(l).unwrap();
        assert!(!line.is_error(), "{l}");
        assert!(line.date.starts_with("2020/01/01"), "virtual epoch: {l}");
    }
}

#[test]
fn log_goes_to_stdout_by_default_and_can_be_skipped() {
    let scenario = small();
    let out = des(&[scenario.to_str().unwrap(), "-q"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 131);
    let out = des(&[scenario.to_str().unwrap(), "-q", "--no-log"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "W1,0\nW2,soon\n").unwrap();
    let out = des(&[bad.to_str().unwrap(), "-q", "--no-log"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:2"), "{err}");

    let unknown = dir.path().join("unknown.csv");
    std::fs::write(&unknown, "W1,0\nmyfn,10\n").unwrap();
    let out = des(&[unknown.to_str().unwrap(), "-q", "--no-log"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("myfn") && err.contains("row 2"), "{err}");
    let out = des(&[
        unknown.to_str().unwrap(),
        "-q",
        "--no-log",
        "--default-function",
        "cpu:100+sleep:50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let profile = dir.path().join("profile.json");
    std::fs::write(&profile, r#"{"rest_warm_ms": "fast"}"#).unwrap();
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--no-log",
        "--profile",
        profile.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("profile.json"), "{err}");

    let out = des(&[small().to_str().unwrap(), "-q", "--algorithm", "fastest"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown algorithm"));
}

#[test]
fn an_existing_log_is_kept_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("keep.log");
    std::fs::write(&log, "precious\n").unwrap();
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "precious\n");
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--log",
        log.to_str().unwrap(),
        "--overwrite",
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 131);
}

#[test]
fn lambda_model_reports_instances() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("s.json");
    let out = des(&[
        small().to_str().unwrap(),
        "-q",
        "--no-log",
        "--instance-model",
        "lambda",
        "--keep-alive-s",
        "60",
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = summary_without_performance(&summary);
    let inst = &v["instances"];
    let total = inst["mean_instances"].as_f64().unwrap();
    let busy = inst["mean_busy"].as_f64().unwrap();
    assert!(total > busy && busy > 0.0, "{inst}");
    assert_eq!(v["config"]["instances"]["model"], "lambda");
    assert_eq!(v["config"]["instances"]["keep_alive_s"], 60.0);
}
