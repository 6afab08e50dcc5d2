//! `simulator experiment` end to end: real `worker-front` (process runtime)
//! and `load-balancer` binaries as child processes on loopback, the real
//! small scenario, the report checked for a sane row per algorithm; a
//! Ctrl-C stops it cleanly with every child gone; DES mode writes the same
//! report; a missing binary is a clear error.
//!
//! The other packages' binaries are built first with the `cargo` that runs
//! this test (`cargo build -p load-balancer -p worker-front -p
//! sample-functions --bins`, a no-op when they are current), so the test
//! never runs stale binaries.

mod support;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{build_testbed, workspace_root};

fn simulator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_simulator"));
    c.current_dir(workspace_root());
    c
}

#[derive(Debug)]
struct Row {
    label: String,
    calls: usize,
    error_lines: usize,
    locality: f64,
    cv: f64,
    ratios: Vec<f64>,
    mean_duration_ms: f64,
}

/// Runs `simulator experiment <args> --results-dir <dir>`, which must
/// fail; returns its stderr.
fn experiment_error<S: AsRef<OsStr>>(dir: &Path, args: impl IntoIterator<Item = S>) -> String {
    let out = simulator()
        .arg("experiment")
        .args(args)
        .arg("--results-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the experiment should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_summary(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("summary.csv has no {name} column: {header:?}"))
    };
    let (label, calls, errors, locality, cv, dur) = (
        col("label"),
        col("calls"),
        col("error_lines"),
        col("locality"),
        col("cv"),
        col("mean_duration_ms"),
    );
    let ratio_cols = [
        col("image_hit_ratio"),
        col("pooled_hit_ratio"),
        col("rest_hit_ratio"),
        col("cold_start_ratio"),
    ];
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Row {
                label: f[label].to_string(),
                calls: f[calls].parse().unwrap(),
                error_lines: f[errors].parse().unwrap(),
                locality: f[locality].parse().unwrap(),
                cv: f[cv].parse().unwrap(),
                ratios: ratio_cols.iter().map(|&c| f[c].parse().unwrap()).collect(),
                mean_duration_ms: f[dur].parse().unwrap(),
            }
        })
        .collect()
}

fn child_pids(run_json: &Path) -> Vec<(String, u32)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_json).unwrap()).unwrap();
    v["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["pid"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

/// True while a process with this pid exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn assert_all_gone(pids: &[(String, u32)]) {
    // The experiment reaps its children before exiting; allow the kernel a
    // moment to tear down grandchildren.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (name, pid) in pids {
        while alive(*pid) {
            assert!(Instant::now() < deadline, "{name} (pid {pid}) survived");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn live_experiment_on_the_small_scenario_reports_every_algorithm() {
    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    let out = simulator()
        // Debug binaries run the functions' CPU loops many times slower
        // than release ones: a lighter load keeps the run short.
        .args(["experiment", "--name", "e2e", "--progress", "lines"])
        .args(["--load-factor", "0.05"])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let run = dir.path().join("e2e");

    let algorithms = ["rr", "ll", "ch", "pasch", "ours", "tradeoff"];
    for (i, a) in algorithms.iter().enumerate() {
        assert!(
            stderr.contains(&format!("[{}/6] {a}: ", i + 1)),
            "progress line for {a}: {stderr}"
        );
        assert!(run.join(format!("logs/{a}.log")).is_file());
    }

    let rows = read_summary(&run.join("summary.csv"));
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, algorithms);
    for r in &rows {
        // small.csv has 131 calls, each logged; on a loaded machine a
        // bounded-load balancer may refuse some (all nodes at their bound),
        // but most must succeed.
        assert!(
            r.calls >= 131 / 2 && r.calls + r.error_lines == 131,
            "{r:?}\n{stderr}"
        );
        assert!(r.locality >= 1.0 && r.locality.is_finite(), "{r:?}");
        assert!(r.cv >= 0.0 && r.cv.is_finite(), "{r:?}");
        assert!(r.ratios.iter().all(|x| (0.0..=1.0).contains(x)), "{r:?}");
        assert!(r.mean_duration_ms > 0.0, "{r:?}");
        // Every algorithm starts from empty workers: each of the 17
        // functions of small.csv must build its image on at least one node
        // (without the reset, later algorithms reuse earlier ones' images).
        if r.error_lines == 0 {
            let misses = ((1.0 - r.ratios[0]) * r.calls as f64).round();
            assert!(misses >= 17.0, "{} image builds only: {r:?}", misses);
        }
    }
    let by = |l: &str| rows.iter().find(|r| r.label == l).unwrap();
    assert!(
        by("ch").locality < by("rr").locality,
        "ch must place fewer distinct functions per node than rr: ch {:?} rr {:?}",
        by("ch"),
        by("rr")
    );

    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for a in algorithms {
        assert!(
            report.contains(&format!("| {a} |")),
            "row for {a}:\n{report}"
        );
    }
    assert!(
        report.contains("simulator experiment --name e2e"),
        "{report}"
    );
    assert!(report.contains("| Seed | 0"), "{report}");
    assert!(report.contains("HF_TIME_SCALE="), "{report}");
    assert!(report.contains("![Algorithms compared](plots/comparison.png)"));
    assert!(run.join("plots/comparison.png").is_file());

    let pids = child_pids(&run.join("run.json"));
    assert_eq!(
        pids.len(),
        4 + 6,
        "4 workers and one balancer per algorithm"
    );
    assert_all_gone(&pids);
}

#[test]
fn ctrl_c_stops_the_experiment_and_every_child() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    // Unscaled: the replay would take 30 s, so the signal lands mid-run.
    let mut child = simulator()
        .args([
            "experiment",
            "--name",
            "stopped",
            "--time-scale",
            "1",
            "--algorithms",
            "rr,ch",
            "--workers",
            "2",
            "--progress",
            "lines",
        ])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait until the first replay is running (its balancer is up).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no replay progress: {seen:#?}"));
        let started = line.contains("replaying") || line.contains("[1/2 rr]");
        seen.push(line);
        if started {
            break;
        }
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the experiment ignored Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(130), "{seen:#?}\n{rest:#?}");
    let run = dir.path().join("stopped");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("INTERRUPTED"), "{report}");
    assert!(!run.join("logs/ch.log").exists(), "no run after the stop");
    let pids = child_pids(&run.join("run.json"));
    assert_eq!(pids.len(), 2 + 1, "{pids:?}");
    assert_all_gone(&pids);
}

#[test]
fn des_mode_writes_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = simulator()
        .args(["experiment", "--mode", "des", "--name", "sim"])
        .arg("--results-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = dir.path().join("sim");
    let rows = read_summary(&run.join("summary.csv"));
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["rr", "ll", "ch", "pasch", "ours", "tradeoff"]);
    assert!(rows.iter().all(|r| r.calls == 131 && r.error_lines == 0));
    let by = |l: &str| rows.iter().find(|r| r.label == l).unwrap();
    assert!(by("ch").locality < by("rr").locality);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("discrete-event simulation"), "{report}");
    assert!(report.contains("| ch |"), "{report}");
}

#[test]
fn des_mode_takes_worker_options_and_scheduler_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let out = simulator()
        .args(["experiment", "--mode", "des", "--name", "rest"])
        .args(["--algorithms", "ch", "--set", "USING_REST_MODE=true"])
        .args(["--set", "T=2"])
        .arg("--results-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = dir.path().join("rest");
    let rows = read_summary(&run.join("summary.csv"));
    assert_eq!(rows.len(), 1);
    // REST mode keeps one instance per function per node: most calls reuse it.
    assert!(rows[0].ratios[2] > 0.5, "REST hit ratio: {:?}", rows[0]);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("`USING_REST_MODE=true`, `T=2`"), "{report}");
    assert!(
        report.contains("share"),
        "machine cores in the report: {report}"
    );

    // Every resolved parameter is recorded, defaults included.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        record["schedulers"][0],
        serde_json::json!({"algorithm": "ch", "params": {"T": 2}, "seed": 0})
    );
    assert_eq!(record["worker"]["UsingRestMode"], true);
    assert_eq!(record["worker"]["ContainerPoolNum"], 6);

    let err = experiment_error(dir.path(), ["--mode", "des", "--set", "NOPE=1"]);
    assert!(err.contains("unknown setting \"NOPE\""), "{err}");
    // The registry's keys and checks, as the balancer's: ch.T is a key,
    // and T=0 is refused naming T.
    let err = experiment_error(dir.path(), ["--mode", "des", "--set", "T=0"]);
    assert!(err.contains("T") && err.contains('0'), "{err}");
    let err = experiment_error(dir.path(), ["--mode", "des", "--set", "ch.T1=3"]);
    assert!(err.contains("ch.T1"), "{err}");
    let err = experiment_error(
        dir.path(),
        ["--mode", "des", "--set", "USING_REST_MODE=maybe"],
    );
    assert!(err.contains("USING_REST_MODE"), "{err}");
}

#[test]
fn des_mode_takes_a_package_scale() {
    let dir = tempfile::tempdir().unwrap();
    // A 100 MB image cache: at a quarter of their sizes, far more of the
    // small scenario's packages fit, so more calls find their image.
    let run = |name: &str, scale: &str| {
        let out = simulator()
            .args(["experiment", "--mode", "des", "--name", name])
            .args(["--algorithms", "rr", "--package-scale", scale])
            .args(["--set", "USER_CODE_SIZE_LIMIT=100000000"])
            .arg("--results-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        read_summary(&dir.path().join(name).join("summary.csv")).remove(0)
    };
    let full = run("full", "1");
    let quarter = run("quarter", "0.25");
    assert!(
        quarter.ratios[0] > full.ratios[0],
        "image hit ratio: {quarter:?} vs {full:?}"
    );
    let report = std::fs::read_to_string(dir.path().join("quarter/report.md")).unwrap();
    assert!(report.contains("`HF_PACKAGE_SCALE=0.25`"), "{report}");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("quarter/run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["package_scale"], 0.25);

    let err = experiment_error(dir.path(), ["--mode", "des", "--package-scale", "-1"]);
    assert!(err.contains("--package-scale"), "{err}");
}

#[test]
fn a_missing_binary_names_the_build_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let stderr = experiment_error(
        dir.path(),
        [
            OsStr::new("--name"),
            OsStr::new("x"),
            OsStr::new("--bin-dir"),
            empty.path().as_os_str(),
        ],
    );
    assert!(stderr.contains("load-balancer"), "{stderr}");
    assert!(stderr.contains("cargo build"), "{stderr}");
}

#[test]
fn a_malformed_scenario_fails_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("broken.csv");
    std::fs::write(&csv, "W1,0\nW2\n").unwrap();
    let stderr = experiment_error(
        dir.path(),
        [
            OsStr::new("--name"),
            OsStr::new("x"),
            OsStr::new("--scenario"),
            csv.as_os_str(),
        ],
    );
    assert!(
        stderr.contains(&format!("{}:2:", csv.display())),
        "{stderr}"
    );
    assert!(!dir.path().join("x").exists());
}
