//! `simulator experiment --clients N --duration D`: closed-loop load
//! instead of a scenario, through the real binary. In DES mode over two
//! algorithms with repeats (the report's closed-loop table with intervals,
//! `summary.csv`, `runs.csv`, `run.json` and the sidecars carrying the
//! load's figures and parameters, the resolved file reproducing the logs,
//! and a run's log identical to `simulator des --clients` of the same
//! parameters); a repetition without a successful call left out of the
//! means over successful calls; live on two real workers; and mixing a
//! scenario with closed-loop options is refused before anything starts.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use support::{build_testbed, json, ok, table_after, workspace_root};

fn simulator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simulator"));
    c.current_dir(workspace_root())
        .env("RUST_BACKTRACE", "0")
        .env_remove("HF_TIME_SCALE")
        .env_remove("HF_PACKAGE_SCALE")
        .env_remove("HF_DES_PROFILE");
    c
}

fn experiment_ok<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let out = simulator().arg("experiment").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn experiment_error<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let out = simulator().arg("experiment").args(args).output().unwrap();
    assert!(!out.status.success(), "the experiment should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A CSV file as a header and rows of cells.
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no {name} column in {header:?}"))
}

#[test]
fn des_closed_loop_with_repeats_reports_throughput_with_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    experiment_ok([
        "--mode",
        "des",
        "--name",
        "loop",
        "--results-dir",
        d,
        "--algorithms",
        "rr,hiku",
        "--repeat",
        "3",
        "--clients",
        "6",
        "--duration",
        "4s",
        "--functions",
        "zipf:1",
        "--names",
        "W1,W2,W3,T1,I1",
        "--think",
        "exp:20",
        "--load-seed",
        "7",
        "--grace",
        "20s",
        "--no-plots",
    ]);
    let run = dir.path().join("loop");

    // The report's closed-loop table: one row per algorithm, 3 runs, a
    // throughput with its interval.
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let table = table_after(&report, "## Closed loop");
    assert_eq!(table.len(), 3, "{report}");
    let thr = table[0]
        .iter()
        .position(|h| h.starts_with("throughput"))
        .unwrap();
    let cancelled = table[0]
        .iter()
        .position(|h| h.starts_with("cancelled"))
        .unwrap();
    for (row, alg) in table[1..].iter().zip(["rr", "hiku"]) {
        assert_eq!((row[0].as_str(), row[1].as_str()), (alg, "3"), "{row:?}");
        let (mean, ci) = row[thr].split_once(" ± ").expect("mean ± interval");
        assert!(mean.parse::<f64>().unwrap() > 0.0, "{row:?}");
        assert!(ci.parse::<f64>().is_ok(), "{row:?}");
        assert!(row[cancelled].starts_with('0'), "{row:?}");
    }
    assert!(report.contains("6 clients for 4"), "{report}");

    // summary.csv: the throughput's mean and interval per algorithm.
    let (header, rows) = csv(&run.join("summary.csv"));
    let (m, c) = (
        column(&header, "throughput_per_s_mean"),
        column(&header, "throughput_per_s_ci95"),
    );
    column(&header, "cancelled_mean");
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r[m].parse::<f64>().unwrap() > 0.0 && r[c].parse::<f64>().is_ok());
    }

    // runs.csv and run.json: each run's load seed (load seed + k) and
    // throughput; every load parameter.
    let (header, rows) = csv(&run.join("runs.csv"));
    let (ls, tp) = (
        column(&header, "load_seed"),
        column(&header, "throughput_per_s"),
    );
    let seeds: Vec<&str> = rows.iter().map(|r| r[ls].as_str()).collect();
    assert_eq!(seeds, ["7", "7", "8", "8", "9", "9"]);
    assert!(rows.iter().all(|r| r[tp].parse::<f64>().unwrap() > 0.0));
    let record = json(&run.join("run.json"));
    let cl = &record["closed_loop"];
    assert_eq!(cl["clients"], 6);
    assert_eq!(cl["duration_s"], 4.0);
    assert_eq!(cl["grace_s"], 20.0);
    assert_eq!(cl["think"], "exp:20");
    assert_eq!(cl["functions"], "zipf:1");
    assert_eq!(cl["function_count"], 5);
    assert_eq!(cl["seed"], 7);
    assert!(cl["probabilities"]["W1"].as_f64().unwrap() > 0.3);
    let runs = record["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for r in runs {
        let calls: u64 = r["des"]["closed_loop"]["calls_per_client"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(r["des"]["invocations"], calls, "{r}");
        assert!(calls > 0);
    }
    // Each log's sidecar records the load, with its repetition's seed.
    let side = json(&run.join("logs/hiku-r2.log.meta.json"));
    assert_eq!(side["extra"]["load"]["seed"], 9);
    assert_eq!(side["extra"]["load"]["clients"], 6);
    assert_eq!(side["scenario"], "closed loop, --functions zipf:1");

    // The resolved file runs the same loops again.
    let toml = std::fs::read_to_string(run.join("experiment.toml")).unwrap();
    assert!(
        toml.contains("clients = 6") && toml.contains("load_seed = 7"),
        "{toml}"
    );
    assert!(!toml.contains("scenario"), "{toml}");
    experiment_ok([
        "--file",
        run.join("experiment.toml").to_str().unwrap(),
        "--name",
        "again",
        "--results-dir",
        d,
        "--no-plots",
    ]);
    for id in ["rr-r0", "hiku-r2"] {
        let rel = format!("logs/{id}.log");
        assert_eq!(
            std::fs::read(run.join(&rel)).unwrap(),
            std::fs::read(dir.path().join("again").join(&rel)).unwrap(),
            "{rel}"
        );
    }

    // The experiment's run is `simulator des --clients` of the same
    // parameters: the same log, line for line.
    let des_log = dir.path().join("des.log");
    ok(&support::des(&[
        "--algorithm",
        "rr",
        "--seed",
        "1",
        "--clients",
        "6",
        "--duration",
        "4s",
        "--functions",
        "zipf:1",
        "--names",
        "W1,W2,W3,T1,I1",
        "--think",
        "exp:20",
        "--load-seed",
        "8",
        "--grace",
        "20s",
        "--fn-time-scale",
        "0.25",
        "--package-scale",
        "0.25",
        "-q",
        "--log",
        des_log.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(&des_log).unwrap(),
        std::fs::read_to_string(run.join("logs/rr-r1.log")).unwrap()
    );
}

/// A repetition without a successful call has no latency, locality or hit
/// ratio: its log's analysis says 0 for each (the original's rule for one
/// log), and a mean over the repetitions must leave it out, not count it
/// as a measured 0 (which made a failing algorithm look faster). One
/// client for 1 s with no grace, calling D8 (about 90 s) or W1 (0.75 s):
/// a repetition whose first call is D8 has none, the others have one.
#[test]
fn a_repetition_without_a_successful_call_is_left_out_of_the_means_not_counted_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    experiment_ok([
        "--mode",
        "des",
        "--name",
        "lost",
        "--results-dir",
        d,
        "--algorithms",
        "rr",
        "--repeat",
        "4",
        "--clients",
        "1",
        "--duration",
        "1s",
        "--grace",
        "0s",
        "--functions",
        "uniform",
        "--names",
        "D8,W1",
        "--fn-time-scale",
        "1",
        "--no-plots",
    ]);
    let run = dir.path().join("lost");
    let (header, rows) = csv(&run.join("runs.csv"));
    let (ok_calls, latency) = (
        column(&header, "ok_calls"),
        column(&header, "mean_latency_ms"),
    );
    let with_ok: Vec<f64> = rows
        .iter()
        .filter(|r| r[ok_calls] != "0")
        .map(|r| r[latency].parse().unwrap())
        .collect();
    assert!(
        !with_ok.is_empty() && with_ok.len() < rows.len(),
        "the setup needs repetitions with and without a successful call: {rows:?}"
    );
    let expected = with_ok.iter().sum::<f64>() / with_ok.len() as f64;

    let (header, summary) = csv(&run.join("summary.csv"));
    let r = &summary[0];
    assert_eq!(r[column(&header, "runs")], "4");
    assert_eq!(
        r[column(&header, "runs_with_ok_calls")],
        with_ok.len().to_string()
    );
    let mean: f64 = r[column(&header, "mean_latency_ms_mean")].parse().unwrap();
    assert!(
        (mean - expected).abs() < 1e-9,
        "{mean} != {expected}: {r:?}"
    );
    // Every call's failure counts in its failed share: over all four.
    let failed: f64 = r[column(&header, "failed_pct_mean")].parse().unwrap();
    assert!(failed > 50.0, "{r:?}");

    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let table = table_after(&report, "## Comparison (mean");
    let lat = table[0]
        .iter()
        .position(|h| h.starts_with("mean latency"))
        .unwrap();
    assert!(
        table[1][lat].ends_with(&format!("({} of 4 runs)", with_ok.len())),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "**Runs without a successful call**: rr ({} of 4)",
            4 - with_ok.len()
        )),
        "{report}"
    );
}

#[test]
fn live_closed_loop_on_two_workers() {
    let bin = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    experiment_ok([
        "--name",
        "live",
        "--results-dir",
        d,
        "--bin-dir",
        bin.to_str().unwrap(),
        "--workers",
        "2",
        "--algorithms",
        "rr,ll",
        "--clients",
        "3",
        "--duration",
        "2s",
        "--functions",
        "uniform",
        "--names",
        "W1,W2",
        "--grace",
        "30s",
        "--no-plots",
        "--progress",
        "off",
    ]);
    let run = dir.path().join("live");
    let record = json(&run.join("run.json"));
    assert_eq!(record["closed_loop"]["clients"], 3);
    let runs = record["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        let load = &r["load"];
        assert_eq!(load["clients"], 3, "{r}");
        assert!(load["ok"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(load["ok"], load["calls"], "{r}");
        assert!(load["throughput_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["load_seed"], 1);
        assert!(r["noise"].is_object(), "live runs are judged for noise");
    }
    let side = json(&run.join("logs/ll.log.meta.json"));
    assert_eq!(side["extra"]["load"]["clients"], 3);
    assert_eq!(side["algorithm"], "ll");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let table = table_after(&report, "## Closed loop");
    assert_eq!(table.len(), 3, "{report}");
    assert!(report.contains("send lag"), "{report}");
    let (header, rows) = csv(&run.join("summary.csv"));
    let tp = column(&header, "throughput_per_s");
    assert!(rows.iter().all(|r| r[tp].parse::<f64>().unwrap() > 0.0));
}

#[test]
fn a_scenario_and_closed_loop_options_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let common = ["--mode", "des", "--results-dir", d];
    // On the command line: clap names both options.
    let e = experiment_error(common.iter().copied().chain([
        "--scenario",
        "scenarios/small.csv",
        "--clients",
        "2",
    ]));
    assert!(e.contains("--clients") && e.contains("--scenario"), "{e}");
    let e = experiment_error(common.iter().copied().chain([
        "--clients",
        "2",
        "--duration",
        "1s",
        "--time-scale",
        "4",
    ]));
    assert!(e.contains("--time-scale"), "{e}");
    // Loop options without a loop.
    let e = experiment_error(common.iter().copied().chain(["--think", "exp:5"]));
    assert!(e.contains("--clients"), "{e}");
    // A loop without a duration.
    let e = experiment_error(common.iter().copied().chain(["--clients", "2"]));
    assert!(e.contains("--duration"), "{e}");
    // A file's scenario with the command line's clients, and a file's
    // loop options without clients.
    let file = dir.path().join("exp.toml");
    std::fs::write(&file, "scenario = \"scenarios/small.csv\"\n").unwrap();
    let e = experiment_error(common.iter().copied().chain([
        "--file",
        file.to_str().unwrap(),
        "--clients",
        "2",
        "--duration",
        "1s",
    ]));
    assert!(e.contains("closed loop") && e.contains("scenario"), "{e}");
    std::fs::write(&file, "think = \"exp:5\"\nload_seed = 3\n").unwrap();
    let e = experiment_error(
        common
            .iter()
            .copied()
            .chain(["--file", file.to_str().unwrap()]),
    );
    assert!(
        e.contains("think") && e.contains("load_seed") && e.contains("--clients"),
        "{e}"
    );
    // Nothing was written.
    assert!(!dir.path().join("default").join("report.md").exists());
}
