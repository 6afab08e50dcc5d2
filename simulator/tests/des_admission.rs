//! `simulator des` with the balancer's SlimFaas layer (issue 15):
//! `--function-settings FILE` (the balancer's settings file),
//! `--max-parallel N` and `--scale-to-zero`, through the real binary.
//! "What if the limit were 5": the same scenario under caps 10 and 5, with
//! the queue's figures worked out by hand; the settings recorded in the
//! summary and the sidecar; a bad settings file named with its line;
//! determinism per seed; and nothing changed without the options.
//! Per-function idle times, minimum instances and retries, with their
//! timelines worked out by hand, and a file spelling out the defaults
//! changing nothing.

mod support;

use std::path::{Path, PathBuf};

use protocol::sidecar::{sidecar_path, RunSidecar};
use support::{des, json, ok};

/// Twelve calls of `X` at time 0; with `--default-function sleep:1000` and
/// `--ideal`, each is served in exactly 1 s from its dispatch.
fn burst(dir: &Path) -> PathBuf {
    let path = dir.join("burst.csv");
    std::fs::write(&path, "X,0\n".repeat(12)).unwrap();
    path
}

/// Runs the burst with `extra` options; the summary's JSON.
fn run_burst(dir: &Path, name: &str, extra: &[&str]) -> serde_json::Value {
    let summary = dir.join(format!("{name}.json"));
    let scenario = burst(dir);
    let mut args = vec![
        scenario.to_str().unwrap(),
        "-q",
        "--ideal",
        "--nodes",
        "2",
        "--default-function",
        "sleep:1000",
        "--summary-json",
        summary.to_str().unwrap(),
        "--overwrite",
    ];
    args.extend_from_slice(extra);
    ok(&des(&args));
    json(&summary)
}

#[test]
fn what_if_the_limit_were_5() {
    let dir = tempfile::tempdir().unwrap();
    // Cap 10: ten run at 0, two wait for the slots freed at 1000 s.
    // Waits: 10 x 0, 2 x 1000 ms: mean 2000 / 12, longest queue 2.
    let ten = run_burst(dir.path(), "ten", &["--max-parallel", "10"]);
    let q = &ten["queue"];
    assert_eq!(q["calls"], 12);
    assert_eq!(q["waited"], 2);
    assert_eq!(q["timed_out"], 0);
    assert_eq!(q["max_queue_length"], 2);
    assert_eq!(q["wait_ms"]["mean"].as_f64().unwrap(), 2000.0 / 12.0);
    assert_eq!(q["wait_ms"]["max"], 1000.0);
    assert_eq!(ten["config"]["slim"]["defaults"]["max_parallel"], 10);
    // Cap 5: five at 0, five at 1000, two at 2000. Waits: 5 x 0, 5 x
    // 1000, 2 x 2000: mean 9000 / 12 = 750, p50 1000, p99 2000; seven
    // waited, the longest queue is seven.
    let five = run_burst(dir.path(), "five", &["--max-parallel", "5"]);
    let q = &five["queue"];
    assert_eq!(q["waited"], 7);
    assert_eq!(q["max_queue_length"], 7);
    assert_eq!(q["wait_ms"]["mean"], 750.0);
    assert_eq!(q["wait_ms"]["p50"], 1000.0);
    assert_eq!(q["wait_ms"]["p99"], 2000.0);
    assert_eq!(q["functions"]["X"]["waited"], 7);
    // The wait is in the response time: durations 1000, 2000, 3000 ms.
    assert_eq!(
        five["duration_ms"]["mean"],
        (5.0 * 1000.0 + 5.0 * 2000.0 + 2.0 * 3000.0) / 12.0
    );
    assert_eq!(five["duration_ms"]["max"], 3000.0);
    assert_eq!(ten["duration_ms"]["max"], 2000.0);

    // The same from the balancer's settings file, the cap given for X;
    // --max-parallel replaces every function's cap.
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"defaults": {"max_parallel": 100},
 "functions": {"X": {"max_parallel": 5, "wait_s": 60}}}"#,
    )
    .unwrap();
    let from_file = run_burst(
        dir.path(),
        "file",
        &["--function-settings", settings.to_str().unwrap()],
    );
    assert_eq!(from_file["queue"], five["queue"]);
    let slim = &from_file["config"]["slim"];
    assert_eq!(slim["file"], settings.to_str().unwrap());
    assert_eq!(slim["functions"]["X"]["wait_s"], 60.0);
    assert_eq!(slim["defaults"]["max_parallel"], 100);
    let overridden = run_burst(
        dir.path(),
        "overridden",
        &[
            "--function-settings",
            settings.to_str().unwrap(),
            "--max-parallel",
            "10",
        ],
    );
    assert_eq!(overridden["queue"], ten["queue"]);
}

#[test]
fn the_settings_are_recorded_and_runs_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let small = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv");
    let run = |name: &str, seed: &str| {
        let log = dir.path().join(format!("{name}.log"));
        let summary = dir.path().join(format!("{name}.json"));
        ok(&des(&[
            small.to_str().unwrap(),
            "-q",
            "--ideal",
            "--algorithm",
            "p2c",
            "--seed",
            seed,
            "--max-parallel",
            "2",
            "--log",
            log.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ]));
        (std::fs::read(&log).unwrap(), json(&summary), log)
    };
    let (log_a, sum_a, path_a) = run("a", "4");
    let (log_b, sum_b, _) = run("b", "4");
    assert_eq!(log_a, log_b, "same seed, same log");
    assert_eq!(sum_a["queue"], sum_b["queue"]);
    assert!(sum_a["queue"]["waited"].as_u64().unwrap() > 0);
    let sidecar =
        RunSidecar::parse(&std::fs::read_to_string(sidecar_path(&path_a)).unwrap()).unwrap();
    assert_eq!(
        sidecar.extra["function_settings"]["defaults"]["max_parallel"],
        2
    );

    // Without the options: no queue, no settings, in either record.
    let plain = dir.path().join("plain.json");
    let plain_log = dir.path().join("plain.log");
    ok(&des(&[
        small.to_str().unwrap(),
        "-q",
        "--ideal",
        "--log",
        plain_log.to_str().unwrap(),
        "--summary-json",
        plain.to_str().unwrap(),
    ]));
    let v = json(&plain);
    assert!(v.get("queue").is_none() && v["config"].get("slim").is_none());
    let sidecar =
        RunSidecar::parse(&std::fs::read_to_string(sidecar_path(&plain_log)).unwrap()).unwrap();
    assert!(sidecar.extra.get("function_settings").is_none());
}

#[test]
fn scale_to_zero_removes_idle_instances() {
    // idle_before_zero_s 5: calls at 0 (cold), 3 s (warm: idle since 1 s),
    // 20 s (cold: the instance, idle since 4 s, was removed at 9 s).
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("idle.csv");
    std::fs::write(&scenario, "X,0\nX,3000\nX,20000\n").unwrap();
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"defaults": {"idle_before_zero_s": 5}}"#).unwrap();
    let summary = dir.path().join("s.json");
    ok(&des(&[
        scenario.to_str().unwrap(),
        "-q",
        "--ideal",
        "--nodes",
        "1",
        "--default-function",
        "sleep:1000",
        "--function-settings",
        settings.to_str().unwrap(),
        "--scale-to-zero",
        "--summary-json",
        summary.to_str().unwrap(),
    ]));
    let v = json(&summary);
    assert_eq!(v["cold_starts"], 2);
    assert_eq!(v["config"]["instances"]["model"], "lambda");
    assert_eq!(v["config"]["instances"]["keep_alive_s"], 5.0);
    assert_eq!(v["config"]["instances"]["policy"]["name"], "fixed");
    assert_eq!(v["config"]["slim"]["scale_to_zero"], true);
}

#[test]
fn bad_settings_are_clear_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = burst(dir.path());
    let summary = dir.path().join("never.json");
    let try_settings = |text: &str, extra: &[&str]| {
        let settings = dir.path().join("settings.json");
        std::fs::write(&settings, text).unwrap();
        let mut args = vec![
            scenario.to_str().unwrap(),
            "-q",
            "--ideal",
            "--default-function",
            "sleep:1000",
            "--function-settings",
            settings.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = des(&args);
        assert!(!out.status.success(), "{text} was accepted");
        assert!(!summary.exists(), "refused before any output");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = try_settings("{\"functions\": {\n  \"X\": {\"max_paralel\": 5}\n}}", &[]);
    assert!(err.contains("settings.json line 2 column"), "{err}");
    assert!(err.contains("max_paralel"), "{err}");
    let err = try_settings("{\"defaults\":\n {\"max_parallel\": 0}}", &[]);
    assert!(err.contains("settings.json line 2"), "{err}");
    // A minimum the instance model cannot keep (HotFunctions' per-call
    // instances) is refused, naming the function.
    let err = try_settings(r#"{"functions": {"X": {"min_instances": 1}}}"#, &[]);
    assert!(err.contains("X has min_instances > 0"), "{err}");
    let missing = dir.path().join("missing.json");
    let out = des(&[
        scenario.to_str().unwrap(),
        "-q",
        "--ideal",
        "--function-settings",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
    // --scale-to-zero sets the instance model: no other with it.
    let out = des(&[
        scenario.to_str().unwrap(),
        "-q",
        "--ideal",
        "--scale-to-zero",
        "--keep-alive-s",
        "60",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    let out = des(&[scenario.to_str().unwrap(), "-q", "--max-parallel", "0"]);
    assert!(!out.status.success());
}

/// Runs `scenario` (rows as text) with `settings` (JSON text) and
/// `extra` options on the ideal platform, every function `sleep:1000`;
/// the summary's JSON and the log.
fn run_with_settings(
    dir: &Path,
    name: &str,
    scenario: &str,
    settings: &str,
    extra: &[&str],
) -> (serde_json::Value, Vec<u8>) {
    let csv = dir.join(format!("{name}.csv"));
    std::fs::write(&csv, scenario).unwrap();
    let file = dir.join(format!("{name}.settings.json"));
    std::fs::write(&file, settings).unwrap();
    let summary = dir.join(format!("{name}.json"));
    let log = dir.join(format!("{name}.log"));
    let mut args = vec![
        csv.to_str().unwrap(),
        "-q",
        "--ideal",
        "--algorithm",
        "rr",
        "--default-function",
        "sleep:1000",
        "--function-settings",
        file.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&des(&args));
    (json(&summary), std::fs::read(&log).unwrap())
}

/// One node running one call at a time, refusing the rest.
const ONE_CALL_AT_A_TIME: &[&str] = &[
    "--nodes",
    "1",
    "--instance-model",
    "lambda",
    "--max-running",
    "1",
    "--overflow",
    "reject",
];

#[test]
fn idle_times_minimums_and_retries_per_function() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Per-function idle time: X on the defaults' 5 s, Y its own 20 s.
    // Both run 0-1000; at 10 s X's instance is gone since 6 s (cold), Y's
    // stays until 21 s (warm): three cold starts of four.
    let (v, _) = run_with_settings(
        d,
        "idle",
        "X,0\nY,0\nX,10000\nY,10000\n",
        r#"{"defaults": {"idle_before_zero_s": 5},
            "functions": {"Y": {"idle_before_zero_s": 20}}}"#,
        &["--nodes", "1", "--scale-to-zero"],
    );
    assert_eq!(
        (v["completed"].as_u64(), v["cold_starts"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(
        v["config"]["slim"]["functions"]["Y"]["idle_before_zero_s"],
        20.0
    );

    // X's minimum 2 on two nodes (rr picks 0, 1, 0, 1, ...): started at 0
    // on nodes 0 and 1; the call at 1 s runs warm on node 0 (1000-2000).
    // Node 1's instance goes at 5 s: the tick then starts one on node 1;
    // node 0's goes at 7 s: one started on node 0. The call at 8 s runs
    // warm on node 1. Four started, no cold call.
    let (v, log) = run_with_settings(
        d,
        "min",
        "X,1000\nX,8000\n",
        r#"{"defaults": {"idle_before_zero_s": 5},
            "functions": {"X": {"min_instances": 2, "idle_before_zero_s": 5}}}"#,
        &["--nodes", "2", "--scale-to-zero"],
    );
    assert_eq!(
        (v["completed"].as_u64(), v["cold_starts"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(v["queue"]["min_instances_started"], 4);
    let log = String::from_utf8(log).unwrap();
    let urls: Vec<&str> = log
        .lines()
        .map(|l| if l.contains("des://node-0") { "0" } else { "1" })
        .collect();
    assert_eq!(urls, ["0", "1"], "{log}");

    // Retries: one node running one call at a time, refusing the rest
    // (the live worker's 503). A runs 0-1000; B (100) again at 2100,
    // runs 2100-3100; C (200) again at 2200 (busy), again at 6200, runs
    // 6200-7200. Three retries, nobody fails.
    let (v, _) = run_with_settings(
        d,
        "retry",
        "X,0\nX,100\nX,200\n",
        r#"{"defaults": {"safe_to_repeat": true}}"#,
        ONE_CALL_AT_A_TIME,
    );
    assert_eq!(
        (v["completed"].as_u64(), v["failed"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(v["rejections"], 3);
    assert_eq!(v["queue"]["retries"], 3);
    assert_eq!(v["queue"]["functions"]["X"]["retries"], 3);
    assert_eq!(v["duration_ms"]["max"], 7000.0);
    assert_eq!(v["config"]["slim"]["defaults"]["safe_to_repeat"], true);
    // Not safe to repeat (X is not a sample function): B and C fail.
    let (v, _) = run_with_settings(d, "unsafe", "X,0\nX,100\nX,200\n", "{}", ONE_CALL_AT_A_TIME);
    assert_eq!(
        (v["completed"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(v["queue"].get("retries").is_none());
}

#[test]
fn a_file_spelling_out_the_defaults_changes_nothing() {
    // The events scenario under ch with scale to zero: a settings file
    // giving W1 the defaults (idle 300 s, delays 2, 4, 8, minimum 0)
    // writes the very log of an empty file, and neither summary has the
    // new fields.
    let dir = tempfile::tempdir().unwrap();
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv");
    let scenario = std::fs::read_to_string(events).unwrap();
    let run = |name: &str, settings: &str| {
        run_with_settings(
            dir.path(),
            name,
            &scenario,
            settings,
            &["--nodes", "3", "--scale-to-zero", "--max-parallel", "2"],
        )
    };
    let (empty, log_empty) = run("empty", "{}");
    let (spelled, log_spelled) = run(
        "spelled",
        r#"{"functions": {"W1": {"idle_before_zero_s": 300, "retry_delays_s": [2, 4, 8],
            "min_instances": 0}}}"#,
    );
    assert_eq!(log_empty, log_spelled);
    assert_eq!(empty["queue"], spelled["queue"]);
    assert!(empty["queue"]["waited"].as_u64().unwrap() > 0);
    let text = format!("{empty}{spelled}");
    for new in [
        "retries",
        "min_instances_started",
        "retry_delays_s",
        "safe_to_repeat",
    ] {
        assert!(!text.contains(new), "{new}");
    }
}
