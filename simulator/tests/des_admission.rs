//! `simulator des` with the balancer's SlimFaas layer (issue 15):
//! `--function-settings FILE` (the balancer's settings file),
//! `--max-parallel N` and `--scale-to-zero`, through the real binary.
//! "What if the limit were 5": the same scenario under caps 10 and 5, with
//! the queue's figures worked out by hand; the settings recorded in the
//! summary and the sidecar; a bad settings file named with its line;
//! determinism per seed; and nothing changed without the options.

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
    // What scale to zero cannot follow is refused, naming the function.
    let err = try_settings(
        r#"{"functions": {"X": {"min_instances": 1}}}"#,
        &["--scale-to-zero"],
    );
    assert!(
        err.contains("settings.json") && err.contains("X has min_instances 1"),
        "{err}"
    );
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
