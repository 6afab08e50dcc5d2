//! `utils analyze` on hostile values (issue 13, part 5): memory follows the
//! log's size, not the numbers in it. Each case used to abort on an
//! allocation sized by a value of the log (34 GB for `WorkerNodeId`
//! 4294967295 or `--nodes 4294967295`, 58 GB for `--per-slot` over two
//! lines 2,300 years apart) or to wrap around (`end - start` of i64
//! extremes gave a duration of -2 ms). Now each is a clear error, exit 1,
//! or an unreadable line, and the analysis of what remains goes on.

use std::path::Path;
use std::process::{Command, Output};

fn analyze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_utils"))
        .arg("analyze")
        .args(args)
        .output()
        .expect("run utils")
}

/// A successful call's log line on `node`, from `start` to `end` (ms).
fn line(start: &str, end: &str, node: &str) -> String {
    format!(
        r#"2023/11/14 22:13:21 {start} {end} W4 {{"Result":{{"statusCode":200,"body":""}},"ExecutionTime":1909,"InternalExecutionTime":853,"Meta":{{"ImageBuilt":true,"UsingPooledContainer":true,"UsingExistingRestContainer":false,"ContainerName":"","ImageName":""}},"LoadBalancingInfo":{{"WorkerNodeId":{node},"WorkerNodeUrl":"x","Algorithm":"rr","AlgorithmLatency":0.0095}}}}"#
    ) + "\n"
}

fn write(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.concat()).unwrap();
    path.to_str().unwrap().to_string()
}

/// Exit code 1 (an error, not an abort: 134 or a signal) and stderr.
fn error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_huge_worker_node_id_or_node_count_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let log = write(
        dir.path(),
        "big.log",
        &[line("1700000000024", "1700000001935", "4294967295")],
    );
    let stderr = error(&analyze(&[&log]));
    assert!(
        stderr.contains("4294967296 nodes") && stderr.contains("limit of 100000"),
        "{stderr}"
    );

    let small = write(
        dir.path(),
        "small.log",
        &[line("1700000000024", "1700000001935", "0")],
    );
    let stderr = error(&analyze(&["--nodes", "4294967295", &small]));
    assert!(stderr.contains("4294967295 nodes (given)"), "{stderr}");
    // At the limit, the analysis runs.
    assert!(analyze(&["--nodes", "100000", &small]).status.success());
}

#[test]
fn per_slot_detail_follows_the_calls_and_refuses_a_span_beyond_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let far = write(
        dir.path(),
        "far.log",
        &[
            line("1700000000024", "1700000001935", "0"),
            line("9000000000024", "9000000001935", "1"),
        ],
    );
    let stderr = error(&analyze(&["--per-slot", &far]));
    assert!(
        stderr.contains("one-second slots") && stderr.contains("without --per-slot"),
        "{stderr}"
    );
    // Twenty days of slots are beyond the limit too (14 days, one printed
    // row each), but not two weeks minus a second.
    let weeks = |name: &str, last_start: &str, last_end: &str| {
        write(
            dir.path(),
            name,
            &[
                line("1700000000000", "1700000000500", "0"),
                line(last_start, last_end, "0"),
            ],
        )
    };
    let twenty_days = weeks("20d.log", "1701728000000", "1701728000500");
    let stderr = error(&analyze(&["--per-slot", &twenty_days]));
    assert!(stderr.contains("1728001 one-second slots"), "{stderr}");
    let two_weeks = weeks("14d.log", "1701209599000", "1701209599500");
    let out = analyze(&["--per-slot", "--json", &two_weeks]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the detail, the same log is analyzed.
    let out = analyze(&["--json", &far]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Many nodes and a day of slots: the detail no longer holds nodes ×
    // slots (100,000 × 86,400 cells would be 138 GB of counters).
    let wide = write(
        dir.path(),
        "wide.log",
        &[
            line("1700000000000", "1700000002500", "0"),
            line("1700000001000", "1700000001500", "0"),
            line("1700000000500", "1700000001200", "99999"),
            line("1700086399000", "1700086400000", "5"),
        ],
    );
    let out = analyze(&["--per-slot", "--json", &wide]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slots = json[0]["per_slot"].as_array().unwrap();
    assert_eq!(slots.len(), 86_401);
    // Slot 0: node 0 runs 1 call, node 99999 runs 1; slot 1: node 0 runs
    // 2, node 99999 runs 1; slot 2: node 0 runs 1. Over 100,000 nodes.
    let n = 100_000f64;
    let cv = |counts: &[f64]| {
        let sum: f64 = counts.iter().sum();
        let squares: f64 = counts.iter().map(|c| c * c).sum();
        (n * squares - sum * sum).sqrt() / sum
    };
    for (slot, executions, counts) in [
        (0, 2, vec![1.0, 1.0]),
        (1, 3, vec![2.0, 1.0]),
        (2, 1, vec![1.0]),
        (3, 0, vec![]),
    ] {
        let s = &slots[slot];
        assert_eq!(s["executions"], executions, "slot {slot}: {s}");
        let expected = if counts.is_empty() { 0.0 } else { cv(&counts) };
        let got = s["executions_cv"].as_f64().unwrap();
        assert!(
            (got - expected).abs() < 1e-9,
            "slot {slot}: {got} vs {expected}"
        );
    }
    assert_eq!(slots[86_399]["executions"], 1);
    assert_eq!(slots[86_400]["executions"], 0);
    // Distinct functions per node: W4 on nodes 0 and 99999 in slot 0.
    let distinct = slots[0]["mean_distinct_functions"].as_f64().unwrap();
    assert!((distinct - 2.0 / n).abs() < 1e-12, "{distinct}");
}

#[test]
fn times_and_execution_times_at_the_integer_extremes_are_unreadable_lines() {
    let dir = tempfile::tempdir().unwrap();
    let extreme = write(
        dir.path(),
        "extreme.log",
        &[
            line("-9223372036854775807", "9223372036854775807", "0"),
            line("1700000000024", "1700000001935", "0").replace(
                r#""InternalExecutionTime":853"#,
                r#""InternalExecutionTime":1e300"#,
            ),
            line("1700000000024", "1700000001935", "0"),
        ],
    );
    let out = analyze(&["--json", &extreme]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &json[0];
    assert_eq!(a["ok_calls"], 1, "{a}");
    assert_eq!(a["unparseable_lines"], 2, "{a}");
    assert_eq!(a["mean_duration_ms"], 1911.0, "{a}");
}
