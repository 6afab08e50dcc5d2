//! `simulator experiment` end to end: real `worker-front` (process runtime)
//! and `load-balancer` binaries as child processes on loopback, the real
//! small scenario, the report checked for a sane row per algorithm; a
//! Ctrl-C stops it cleanly with every child gone; DES mode writes the same
//! report; a missing binary is a clear error.
//!
//! The other packages' binaries are built first with the `cargo` that runs
//! this test (`cargo build --workspace --bins`, a no-op when they are
//! current), so the test never runs stale binaries.

mod support;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{alive, balancer_stores_in, build_testbed, workspace_root};

/// Live experiments run one at a time: each starts its workers on this
/// machine's cores, and one of them deliberately loads every core.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live_lock() -> std::sync::MutexGuard<'static, ()> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

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
        col("failed"),
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

/// The children a run recorded (`run.json`).
fn run_children(run_json: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_json).unwrap()).unwrap();
    v["children"].as_array().unwrap().clone()
}

fn child_pids(run_json: &Path) -> Vec<(String, u32)> {
    run_children(run_json)
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["pid"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

/// The worker ids of a run's children.
fn worker_ids(run_json: &Path) -> Vec<String> {
    run_children(run_json)
        .iter()
        .filter_map(|c| c["worker_id"].as_str().map(String::from))
        .collect()
}

/// No work area (`worker_front::runtime::ownership`) under the workers'
/// work dir is recorded as one of `ids`' (or their stores of user
/// functions, `<id>+functions`): the experiment's workers left nothing
/// there, or the experiment removed it.
fn assert_no_work_area(ids: &[String]) {
    assert_no_work_area_under(&std::env::temp_dir(), ids);
}

/// [`assert_no_work_area`] with the children's temporary directory `tmp`.
fn assert_no_work_area_under(tmp: &Path, ids: &[String]) {
    use std::os::unix::fs::MetadataExt;
    assert!(!ids.is_empty());
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let namespace = tmp.join(format!("hotfunctions-{uid}"));
    let Ok(entries) = std::fs::read_dir(&namespace) else {
        return; // no area at all
    };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("owner.json")) else {
            continue;
        };
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        let owner = record["WorkerId"].as_str().unwrap_or_default();
        let owner = owner.strip_suffix("+functions").unwrap_or(owner);
        assert!(
            !ids.iter().any(|id| id == owner),
            "{} was left by the experiment's worker {owner}",
            e.path().display()
        );
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
    let _live = live_lock();
    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    // The children's temporary files go here, to be looked at after.
    let tmp = tempfile::tempdir().unwrap();
    let out = simulator()
        .env("TMPDIR", tmp.path())
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
            r.calls == 131 && r.error_lines <= 131 / 2,
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
            let misses = ((1.0 - r.ratios[0]) * (r.calls - r.error_lines) as f64).round();
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

    // The machine and the noise around every run are recorded and judged.
    assert!(report.contains("## Replays and noise"), "{report}");
    assert!(report.contains("| Host |"), "{report}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert!(record["host"]["cores"].as_u64().unwrap() >= 1, "{record}");
    for r in record["runs"].as_array().unwrap() {
        let noise = &r["noise"];
        assert!(
            noise["lag_limit_p50_us"].as_u64().unwrap() >= 2_000,
            "{noise}"
        );
        assert!(
            noise["lag_limit_p99_us"].as_u64().unwrap() >= 25_000,
            "{noise}"
        );
        assert!(noise["reasons"].is_array(), "{noise}");
        assert!(
            noise["during"]["ours_cores"].as_f64().unwrap() > 0.0,
            "{noise}"
        );
    }
    // Each log's sidecar names the cluster the calls could go to.
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("logs/ch.log.meta.json")).unwrap())
            .unwrap();
    assert_eq!(side["cluster"]["size"], 4, "{side}");
    assert_eq!(
        side["cluster"]["nodes"].as_array().unwrap().len(),
        4,
        "{side}"
    );
    assert_eq!(side["algorithm"], "ch");

    let pids = child_pids(&run.join("run.json"));
    assert_eq!(
        pids.len(),
        4 + 6,
        "4 workers and one balancer per algorithm"
    );
    assert_all_gone(&pids);
    // Every child stopped on SIGTERM, in time to clean up after itself:
    // none was killed, no balancer left its temporary store of user
    // functions, no worker its work area.
    assert!(!stderr.contains("was killed"), "{stderr}");
    let left = balancer_stores_in(tmp.path(), None);
    assert!(left.is_empty(), "left by the balancers: {left:?}\n{stderr}");
    assert_no_work_area_under(tmp.path(), &worker_ids(&run.join("run.json")));
}

/// The literature's algorithms (every registered one the default
/// comparison leaves out; the test above runs the six of HotFunctions)
/// end to end: live on real workers, then in the discrete-event
/// simulator, on the small scenario, each with a sane row. The live run
/// also gives the workers a keep-alive policy under a node memory limit
/// (FaasCache's Greedy-Dual), and the balancer that memory.
#[test]
fn every_other_registered_algorithm_runs_live_and_simulated() {
    let others: Vec<&str> = policy::scheduler::REGISTRY
        .iter()
        .filter(|a| !a.compared_by_default)
        .map(|a| a.name)
        .collect();
    assert!(others.len() >= 8, "the literature's algorithms: {others:?}");
    let list = others.join(",");
    let dir = tempfile::tempdir().unwrap();
    let check = |run: &Path, live: bool, stderr: &str| {
        let rows = read_summary(&run.join("summary.csv"));
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, others, "{stderr}");
        for r in &rows {
            // Live, on a loaded machine, a bounded algorithm may refuse
            // some calls (every node full); simulated, none fails.
            let bound = if live { 131 / 2 } else { 0 };
            assert!(r.calls == 131 && r.error_lines <= bound, "{r:?}\n{stderr}");
            assert!(r.locality >= 1.0 && r.locality.is_finite(), "{r:?}");
            assert!(r.mean_duration_ms > 0.0, "{r:?}");
            assert!(run.join(format!("logs/{}.log", r.label)).is_file());
        }
        let report = std::fs::read_to_string(run.join("report.md")).unwrap();
        for a in &others {
            assert!(
                report.contains(&format!("| {a} |")),
                "row for {a}:\n{report}"
            );
        }
    };

    let out = simulator()
        .args([
            "experiment",
            "--mode",
            "des",
            "--name",
            "sim",
            "--algorithms",
            &list,
        ])
        .arg("--results-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    check(&dir.path().join("sim"), false, &stderr);

    let _live = live_lock();
    let bins = build_testbed();
    let out = simulator()
        .args(["experiment", "--name", "live", "--progress", "lines"])
        .args(["--algorithms", &list, "--load-factor", "0.05"])
        .args([
            "--keep-alive-policy",
            "greedy-dual",
            "--node-memory-mb",
            "1024",
        ])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = dir.path().join("live");
    check(&run, true, &stderr);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("keep-alive policy `greedy-dual`")
            && report.contains("node memory 1024 MB"),
        "{report}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        record["points"][0]["instances"]["policy"]["name"], "greedy-dual",
        "{}",
        record["points"][0]
    );
    assert_eq!(record["points"][0]["node_memory_mb"], 1024);
    assert_all_gone(&child_pids(&run.join("run.json")));
}

/// A running `simulator experiment` whose stderr is read line by line.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stderr until a line satisfies `done` (panics after `within`).
    fn wait_for_line(&mut self, within: Duration, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no replay progress: {:#?}", self.seen));
            let found = done(&line);
            self.seen.push(line);
            if found {
                return;
            }
        }
    }

    /// Waits for the exit (panics after `within`); the status and the
    /// stderr lines not read yet.
    fn wait_exit(&mut self, within: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the experiment ignored Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, self.lines.try_iter().collect())
    }
}

#[test]
fn ctrl_c_stops_the_experiment_and_every_child() {
    let _live = live_lock();
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    // Unscaled: the replay would take 30 s, so the signal lands mid-run.
    let mut cmd = simulator();
    cmd.args(["experiment", "--name", "stopped", "--time-scale", "1"])
        .args([
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
        .arg(&bins);
    let mut run = Running::spawn(cmd);
    // Wait until the first replay is running (its balancer is up).
    run.wait_for_line(Duration::from_secs(120), |line| {
        line.contains("replaying") || line.contains("[1/2 rr]")
    });
    kill(Pid::from_raw(run.child.id() as i32), Signal::SIGINT).unwrap();
    let (status, rest) = run.wait_exit(Duration::from_secs(60));
    let seen = &run.seen;
    assert_eq!(status.code(), Some(130), "{seen:#?}\n{rest:#?}");
    let run = dir.path().join("stopped");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("INTERRUPTED"), "{report}");
    assert!(!run.join("logs/ch.log").exists(), "no run after the stop");
    let pids = child_pids(&run.join("run.json"));
    assert_eq!(pids.len(), 2 + 1, "{pids:?}");
    assert_all_gone(&pids);
    assert_no_work_area(&worker_ids(&run.join("run.json")));
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

/// `--runtime docker` in DES mode simulates the Docker runtime's costs
/// (`simulator/profiles/docker.json`), as the record says; before, it ran
/// on the process runtime's profile while run.json said `docker`. A
/// profile of another runtime given by `$HF_DES_PROFILE` is refused,
/// before any output.
#[test]
fn des_mode_runs_on_the_costs_of_the_runtime_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let profile_of = |name: &str, runtime: &str| -> serde_json::Value {
        let mut c = simulator();
        c.env_remove("HF_DES_PROFILE")
            .args(["experiment", "--mode", "des", "--name", name])
            .args(["--runtime", runtime, "--algorithms", "rr", "--no-plots"])
            .arg("--results-dir")
            .arg(dir.path());
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let side = dir.path().join(name).join("logs/rr.log.meta.json");
        let side: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(side).unwrap()).unwrap();
        side["extra"]["profile"].clone()
    };
    for runtime in ["process", "docker"] {
        let profile = profile_of(runtime, runtime);
        assert_eq!(profile["runtime"], runtime, "{profile}");
        assert!(
            profile["file"]
                .as_str()
                .unwrap()
                .ends_with(&format!("simulator/profiles/{runtime}.json")),
            "{profile}"
        );
        let report = std::fs::read_to_string(dir.path().join(runtime).join("report.md")).unwrap();
        assert!(
            report.contains(&format!("on the {runtime} runtime's cost profile")),
            "{report}"
        );
        assert!(report.contains("| Cost profile | "), "{report}");
    }
    let process = workspace_root().join("simulator/profiles/process.json");
    let out = simulator()
        .env("HF_DES_PROFILE", &process)
        .args(["experiment", "--mode", "des", "--name", "mismatch"])
        .args(["--runtime", "docker", "--algorithms", "rr"])
        .arg("--results-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "the cost profile {} was measured on the \"process\" runtime, not \"docker\" (--runtime docker)",
            process.display()
        )),
        "{stderr}"
    );
    assert!(!dir.path().join("mismatch").exists());
}

/// A DES experiment says which machine its cost profile describes: in
/// report.md's table, in run.json and on stderr when it is another kind
/// of machine than this one.
#[test]
fn des_mode_says_which_machine_its_costs_describe() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere.json");
    support::write_profile_of_another_machine(&elsewhere);
    let out = simulator()
        .env("HF_DES_PROFILE", &elsewhere)
        .args(["experiment", "--mode", "des", "--name", "elsewhere"])
        .args(["--algorithms", "rr", "--no-plots"])
        .arg("--results-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("experiment: cost profile: ")
            && stderr.contains("another kind of machine (Imaginary CPU 9000, 96 cores"),
        "{stderr}"
    );
    let run = dir.path().join("elsewhere");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["cost_profile"]["verdict"], "other_kind", "{record}");
    assert_eq!(
        record["cost_profile"]["file"],
        elsewhere.to_str().unwrap(),
        "{record}"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    let row = report
        .lines()
        .find(|l| l.starts_with("| Cost profile | "))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        row.contains("Imaginary CPU 9000")
            && row.ends_with("(**another kind of machine than this one**) |"),
        "{row}"
    );
}

/// `--profile-variants`: every algorithm runs again on variants of the
/// cost profile, each figure moved within its recorded spread, and the
/// report says how far the figures move and whether the ranking holds.
#[test]
fn des_mode_runs_the_algorithms_on_variants_of_the_cost_profile() {
    let dir = tempfile::tempdir().unwrap();
    // Instance starts of 50-150 ms (three calibrations' range) and image
    // builds of 300 ± 200 ms: the calls' latencies must follow them.
    let spread = dir.path().join("spread.json");
    std::fs::write(
        &spread,
        r#"{"runtime": "process", "instance_create_ms": 100, "image_build_base_ms": 300,
            "network_ms": 1,
            "spread": {"instance_create_ms": {"n": 21, "low": 50, "high": 150, "calibrations": 3},
                       "image_build_base_ms": {"n": 7, "standard_error": 200}}}"#,
    )
    .unwrap();
    let out = simulator()
        .env("HF_DES_PROFILE", &spread)
        .args(["experiment", "--mode", "des", "--name", "variants"])
        .args([
            "--algorithms",
            "rr,ch",
            "--profile-variants",
            "4",
            "--no-plots",
        ])
        .arg("--results-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("[variant 8/8] ch, profile variant 4: "),
        "{stderr}"
    );
    let run = dir.path().join("variants");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let v = &record["profile_variants"];
    assert_eq!(v["count"], 4, "{v}");
    assert_eq!(
        v["varied"],
        serde_json::json!(["image_build_base_ms", "instance_create_ms"])
    );
    let runs = v["runs"].as_array().unwrap();
    // Two algorithms on the profile and on four variants.
    assert_eq!(runs.len(), 10, "{v}");
    let latencies = |alg: &str| -> Vec<f64> {
        runs.iter()
            .filter(|r| r["algorithm"] == alg)
            .map(|r| r["mean_latency_ms"].as_f64().unwrap())
            .collect()
    };
    for alg in ["rr", "ch"] {
        let l = latencies(alg);
        assert_eq!(l.len(), 5, "{alg}: {v}");
        let (low, high) = (
            l.iter().copied().fold(f64::MAX, f64::min),
            l.iter().copied().fold(f64::MIN, f64::max),
        );
        assert!(
            high > low,
            "{alg}'s latency did not move with its costs: {l:?}"
        );
    }
    // The profile's own figures are its first repetition's.
    let rr0 = runs
        .iter()
        .find(|r| r["algorithm"] == "rr" && r["variant"] == 0)
        .unwrap();
    let first = record["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["algorithm"] == "rr")
        .unwrap();
    assert_eq!(rr0["mean_latency_ms"], first["des"]["latency_ms"]["mean"]);
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("## Sensitivity to the cost profile")
            && report.contains("on 4 variants of the cost profile")
            && report.contains("Moved: `image_build_base_ms`, `instance_create_ms`."),
        "{report}"
    );
    let ranking = report
        .lines()
        .find(|l| l.starts_with("Ranking by mean latency on the profile: "))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(ranking.contains(" of 4 variants."), "{ranking}");
    let row = report
        .lines()
        .find(|l| l.starts_with("| rr | ") && l.matches('|').count() == 10)
        .unwrap_or_else(|| panic!("{report}"));
    assert!(row.contains('-'), "{row}");
    let csv = std::fs::read_to_string(run.join("profile-variants.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "point,algorithm,variant,mean_latency_ms,p99_latency_ms,cold_start_ratio,failed_pct"
    );
    assert_eq!(lines.len(), 11, "{csv}");
    assert!(lines[1].starts_with(",rr,0,"), "{csv}");
    // The experiment file records it, so its reproduce command runs them.
    let toml = std::fs::read_to_string(run.join("experiment.toml")).unwrap();
    assert!(toml.contains("profile_variants = 4"), "{toml}");

    // A profile with no spread has nothing to vary: refused before
    // anything runs; so is the option in live mode.
    let bare = dir.path().join("bare.json");
    std::fs::write(
        &bare,
        r#"{"runtime": "process", "instance_create_ms": 100}"#,
    )
    .unwrap();
    for (env, mode, expected) in [
        (&bare, "des", "records none"),
        (&spread, "live", "it needs --mode des"),
    ] {
        let out = simulator()
            .env("HF_DES_PROFILE", env)
            .args(["experiment", "--mode", mode, "--name", "refused"])
            .args([
                "--algorithms",
                "rr",
                "--profile-variants",
                "2",
                "--no-plots",
            ])
            .arg("--results-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{stderr}"
        );
        assert!(!dir.path().join("refused").exists());
    }
}

/// Output to a pipe whose reader has gone (`... 2>&1 | head`, a `tee`
/// that was stopped, a terminal gone): the lines are lost, not the
/// experiment. Before, the first `eprintln!` after the pipe closed
/// panicked (exit status 101) and the run ended without its report.
#[test]
fn a_closed_output_loses_the_lines_not_the_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = simulator()
        .args(["experiment", "--mode", "des", "--name", "closed"])
        .args(["--algorithms", "rr,ch"])
        .arg("--results-dir")
        .arg(dir.path())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let report = std::fs::read_to_string(dir.path().join("closed/report.md")).unwrap();
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
        report.contains("2 per simulated node"),
        "the nodes' own cores in the report, not the host's: {report}"
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

/// Runs `simulator experiment --mode des --algorithms rr` with `extra`
/// arguments as `<dir>/<name>`; its one summary row.
fn des_rr_row(dir: &Path, name: &str, extra: &[&str]) -> Row {
    let out = simulator()
        .args(["experiment", "--mode", "des", "--name", name])
        .args(["--algorithms", "rr"])
        .args(extra)
        .arg("--results-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_summary(&dir.join(name).join("summary.csv")).remove(0)
}

#[test]
fn des_mode_takes_a_keep_alive_policy_under_a_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| des_rr_row(dir.path(), name, extra);
    // One 256 MB instance per node under LRU: idle instances of other
    // functions are evicted, so more calls start cold than with the
    // fixed keep-alive and room for eight.
    let roomy = run("fixed", &["--keep-alive-policy", "fixed"]);
    let tight = run(
        "lru",
        &["--keep-alive-policy", "lru", "--node-memory-mb", "256"],
    );
    assert!(
        tight.ratios[3] > roomy.ratios[3],
        "cold-start ratio: lru at 256 MB {tight:?}, fixed {roomy:?}"
    );
    let report = std::fs::read_to_string(dir.path().join("lru/report.md")).unwrap();
    assert!(report.contains("keep-alive policy `lru`"), "{report}");
    let toml = std::fs::read_to_string(dir.path().join("lru/experiment.toml")).unwrap();
    assert!(
        toml.contains(r#"keep_alive_policy = "lru""#) && toml.contains("node_memory_mb = 256"),
        "{toml}"
    );

    let err = experiment_error(
        dir.path(),
        [
            "--mode",
            "des",
            "--instance-model",
            "hotfunctions",
            "--keep-alive-policy",
            "lru",
        ],
    );
    assert!(err.contains("lru") && err.contains("lambda"), "{err}");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "keep_alive_policy = \"nope\"\n").unwrap();
    let err = experiment_error(
        dir.path(),
        ["--mode", "des", "--file", file.to_str().unwrap()],
    );
    assert!(
        err.contains("keep_alive_policy") && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn des_mode_takes_a_package_scale() {
    let dir = tempfile::tempdir().unwrap();
    // A 100 MB image cache: at a quarter of their sizes, far more of the
    // small scenario's packages fit, so more calls find their image.
    let run = |name: &str, scale: &str| {
        let cache = ["--set", "USER_CODE_SIZE_LIMIT=100000000"];
        des_rr_row(
            dir.path(),
            name,
            &[&["--package-scale", scale][..], &cache].concat(),
        )
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
    // Bytes that are not UTF-8: named by line, live and in the DES.
    std::fs::write(&csv, b"W1,0\nW2,1\nW\xff3,2\n").unwrap();
    for mode in ["live", "des"] {
        let stderr = experiment_error(
            dir.path(),
            [
                OsStr::new("--mode"),
                OsStr::new(mode),
                OsStr::new("--name"),
                OsStr::new("x"),
                OsStr::new("--scenario"),
                csv.as_os_str(),
            ],
        );
        assert!(
            stderr.contains(&format!("{}:3: not UTF-8 text", csv.display())),
            "{mode}: {stderr}"
        );
        assert!(!dir.path().join("x").exists());
    }
}

/// A scenario calling a function the workers do not run fails before any
/// worker starts, live as in the DES (live, every call of it failed with
/// a 404 and the experiment ended well).
#[test]
fn a_scenario_of_unknown_functions_fails_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("zipf.csv");
    std::fs::write(&csv, "W1,0\nF1,10\nW2,20\n").unwrap();
    for (mode, name) in [("live", "x"), ("des", "y")] {
        let stderr = experiment_error(
            dir.path(),
            [
                OsStr::new("--mode"),
                OsStr::new(mode),
                OsStr::new("--name"),
                OsStr::new(name),
                OsStr::new("--scenario"),
                csv.as_os_str(),
            ],
        );
        assert!(
            stderr.contains(&format!(
                "{}: function \"F1\" (first at scenario row 2) is not one the workers run",
                csv.display()
            )) && stderr.contains("--catalog"),
            "{mode}: {stderr}"
        );
        assert!(!stderr.contains("started"), "{mode}: {stderr}");
        assert!(!dir.path().join(name).exists(), "{mode}");
        // A closed loop's mix likewise.
        let stderr = experiment_error(
            dir.path(),
            [
                "--mode",
                mode,
                "--name",
                name,
                "--clients",
                "2",
                "--duration",
                "2s",
                "--names",
                "W1,F1",
            ],
        );
        assert!(
            stderr.contains(
                "function \"F1\" (in the closed loop's --names) is not one the workers run"
            ),
            "{mode}: {stderr}"
        );
        assert!(!stderr.contains("started"), "{mode}: {stderr}");
        assert!(!dir.path().join(name).exists(), "{mode}");
    }
}

/// A sweep point the simulator cannot run (5,000 cores on a machine,
/// beyond its 4,096) fails the experiment before its first run, not after
/// the points before it; and two values that are one point would write
/// one log twice.
#[test]
fn a_bad_sweep_point_fails_before_the_first_run() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = experiment_error(
        dir.path(),
        [
            "--mode",
            "des",
            "--name",
            "x",
            "--algorithms",
            "rr,ch",
            "--no-plots",
            "--sweep",
            "machine_cores=2,5000",
        ],
    );
    assert!(
        stderr.contains("discrete-event run with rr: machine_cores=5000: machine cores is 5000, outside its bounds 1..=4096"),
        "{stderr}"
    );
    assert!(!stderr.contains("[1/4]"), "a run started: {stderr}");
    assert!(!dir.path().join("x").join("runs.csv").exists());

    let stderr = experiment_error(
        dir.path(),
        ["--mode", "des", "--name", "y", "--sweep", "ch.T=2,4,2"],
    );
    assert!(
        stderr.contains(r#"--sweep ch.T: the values "2" and "2" are one point"#),
        "{stderr}"
    );
    assert!(!dir.path().join("y").exists());
}

/// Runs `simulator experiment` with `args` in the workspace; it must
/// succeed. Returns stderr.
fn experiment_ok<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let out = simulator().arg("experiment").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn des_repeats_and_sweeps_give_means_with_intervals_and_the_file_reproduces_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    experiment_ok([
        "--mode",
        "des",
        "--name",
        "sweep",
        "--results-dir",
        d,
        "--algorithms",
        "ch,ours",
        "--repeat",
        "3",
        "--sweep",
        "ch.T=2,8",
        "--seed",
        "5",
    ]);
    let run = dir.path().join("sweep");
    // One row per (point, algorithm), each over 3 runs with an interval.
    let summary = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    let mut lines = summary.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        &header[..5],
        [
            "point",
            "algorithm",
            "runs",
            "runs_with_ok_calls",
            "disturbed"
        ]
    );
    let ci = header
        .iter()
        .position(|h| *h == "mean_latency_ms_ci95")
        .unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{summary}");
    for r in &rows {
        assert_eq!((r[2], r[3]), ("3", "3"), "{summary}");
        assert!(r[ci].parse::<f64>().is_ok(), "a CI for each row: {summary}");
    }
    assert_eq!(rows[0][0], "ch.T=2");
    assert_eq!(rows[3][0], "ch.T=8");
    // Every run has its log and sidecar, with its own seed.
    for point in ["ch.T=2", "ch.T=8"] {
        for alg in ["ch", "ours"] {
            for k in 0..3 {
                let log = run.join(format!("logs/{point}/{alg}-r{k}.log"));
                assert!(log.is_file(), "{}", log.display());
                let side: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(format!("{}.meta.json", log.display())).unwrap(),
                )
                .unwrap();
                assert_eq!(side["seed"], 5 + k);
                assert_eq!(side["cluster"]["size"], 4);
                assert_eq!(side["algorithm"], alg);
            }
        }
        let side: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run.join(format!("logs/{point}/ch-r0.log.meta.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            side["parameters"]["T"],
            if point.ends_with('2') { 2 } else { 8 }
        );
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("mean ± 95 % confidence interval"),
        "{report}"
    );
    assert!(report.contains(" ± "), "{report}");
    assert!(report.contains("```toml"), "the resolved file: {report}");
    assert!(run.join("plots/sweep-mean_latency_ms.png").is_file());
    assert!(run.join("plots/comparison-ch.T=2.png").is_file());

    // The resolved file alone runs the same experiment: identical logs.
    let file = run.join("experiment.toml");
    let toml = std::fs::read_to_string(&file).unwrap();
    assert!(
        toml.contains("repeat = 3") && toml.contains("param = \"ch.T\""),
        "{toml}"
    );
    experiment_ok([
        "--file",
        file.to_str().unwrap(),
        "--name",
        "again",
        "--results-dir",
        d,
    ]);
    for k in 0..3 {
        let rel = format!("logs/ch.T=8/ours-r{k}.log");
        assert_eq!(
            std::fs::read(run.join(&rel)).unwrap(),
            std::fs::read(dir.path().join("again").join(&rel)).unwrap(),
            "{rel}"
        );
    }
}

/// A resolved `experiment.toml` records its inputs' digests: a run from
/// it on the same inputs is quiet, one whose scenario or cost profile
/// changed (edited, recalibrated) says it is not the run that wrote the
/// file, on stderr, in run.json and at the top of report.md. A scenario
/// named on the command line instead of the file's is not compared.
#[test]
fn a_rerun_from_the_file_says_when_its_inputs_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let scenario = dir.path().join("s.csv");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv"),
        &scenario,
    )
    .unwrap();
    let first = [
        "--mode",
        "des",
        "--name",
        "first",
        "--results-dir",
        d,
        "--algorithms",
        "rr",
        "--no-plots",
        "--scenario",
        scenario.to_str().unwrap(),
    ];
    experiment_ok(first);
    let file = dir.path().join("first/experiment.toml");
    let toml = std::fs::read_to_string(&file).unwrap();
    assert!(
        toml.contains("scenario_blake2b = ") && toml.contains("profile_blake2b = "),
        "{toml}"
    );
    let rerun = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "--file",
            file.to_str().unwrap(),
            "--name",
            name,
            "--results-dir",
            d,
        ];
        args.extend_from_slice(extra);
        let err = experiment_ok(args);
        let report = std::fs::read_to_string(dir.path().join(name).join("report.md")).unwrap();
        (err, report)
    };

    let (err, report) = rerun("same", &[]);
    assert!(!err.contains("warning"), "{err}");
    assert!(!report.contains("INPUTS CHANGED"), "{report}");

    std::fs::write(
        &scenario,
        std::fs::read_to_string(&scenario).unwrap() + "W1,29000\n",
    )
    .unwrap();
    let (err, report) = rerun("edited", &[]);
    assert!(
        err.contains("warning: the scenario")
            && err.contains("is not the one the experiment file recorded"),
        "{err}"
    );
    assert!(report.contains("**INPUTS CHANGED**"), "{report}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("edited/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["inputs_changed"].as_array().unwrap().len(), 1, "{run}");
    // Its own resolved file records the scenario it read.
    let again = std::fs::read_to_string(dir.path().join("edited/experiment.toml")).unwrap();
    assert_ne!(
        again.lines().find(|l| l.starts_with("scenario_blake2b")),
        toml.lines().find(|l| l.starts_with("scenario_blake2b"))
    );

    // Another scenario on the command line is not the file's: no warning.
    let small = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/small.csv");
    let (err, _) = rerun("other", &["--scenario", small.to_str().unwrap()]);
    assert!(!err.contains("warning"), "{err}");

    // A recalibrated profile (one figure changed).
    let mut profile: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/process.json"),
        )
        .unwrap(),
    )
    .unwrap();
    profile["cpu_scale"] = serde_json::json!(2.5);
    let recalibrated = dir.path().join("process.json");
    std::fs::write(&recalibrated, profile.to_string()).unwrap();
    let out = simulator()
        .arg("experiment")
        .args(["--file", file.to_str().unwrap(), "--name", "recalibrated"])
        .args(["--results-dir", d, "--scenario", small.to_str().unwrap()])
        .env("HF_DES_PROFILE", &recalibrated)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: the cost profile"), "{err}");
}

/// Repetitions that differ in nothing (a deterministic algorithm on the
/// scenario's fixed work: the seed changes nothing) are said to be so
/// under the table: their interval of 0 is not a measured spread. A
/// randomized algorithm's repetitions differ and are not named.
#[test]
fn identical_repetitions_are_named_under_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    experiment_ok([
        "--mode",
        "des",
        "--name",
        "same",
        "--results-dir",
        d,
        "--algorithms",
        "rr,random",
        "--repeat",
        "3",
        "--no-plots",
    ]);
    let report = std::fs::read_to_string(dir.path().join("same/report.md")).unwrap();
    let note = report
        .lines()
        .find(|l| l.starts_with("**Identical repetitions**"))
        .unwrap_or_else(|| panic!("no note: {report}"));
    let (named, _) = note.split_once(". ").unwrap();
    assert_eq!(named, "**Identical repetitions**: rr", "{note}");
    // Their intervals are exactly 0, not a rounding residue of 1e-17.
    let summary = std::fs::read_to_string(dir.path().join("same/summary.csv")).unwrap();
    let mut lines = summary.lines().map(|l| l.split(',').collect::<Vec<_>>());
    let header = lines.next().unwrap();
    let rr = lines.find(|r| r[1] == "rr").unwrap();
    for (key, value) in header.iter().zip(&rr) {
        if key.ends_with("_ci95") {
            assert_eq!(*value, "0", "{key}: {summary}");
        }
    }
}

#[test]
fn an_earlier_run_is_never_replaced_silently() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let args = ["--mode", "des", "--name", "keep", "--results-dir", d];
    experiment_ok(args.iter().chain(&["--algorithms", "rr"]));
    let run = dir.path().join("keep");
    let notes = run.join("my-notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    let before = std::fs::read(run.join("logs/rr.log")).unwrap();
    let err = experiment_error(
        dir.path(),
        ["--mode", "des", "--name", "keep", "--algorithms", "ll"],
    );
    assert!(err.contains("--overwrite") && err.contains("keep"), "{err}");
    assert_eq!(
        std::fs::read(run.join("logs/rr.log")).unwrap(),
        before,
        "untouched"
    );
    // While another process writes into the directory (it holds the
    // directory's flock, as a running experiment does), even --overwrite
    // is refused, and nothing in it is touched.
    let writer = std::fs::File::open(&run).unwrap();
    writer.try_lock().unwrap();
    let err = experiment_error(
        dir.path(),
        [
            "--mode",
            "des",
            "--name",
            "keep",
            "--algorithms",
            "ll",
            "--overwrite",
        ],
    );
    assert!(
        err.contains("being written by another run") && err.contains("keep"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(run.join("logs/rr.log")).unwrap(),
        before,
        "untouched while in use"
    );
    drop(writer);
    experiment_ok(args.iter().chain(&["--overwrite", "--algorithms", "ll"]));
    assert!(run.join("logs/ll.log").is_file());
    assert!(!run.join("logs/rr.log").exists(), "the old outputs went");
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "mine",
        "not ours: kept"
    );
}

#[test]
fn des_results_do_not_depend_on_the_host_cores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let args = |name: &'static str| {
        vec![
            "experiment",
            "--mode",
            "des",
            "--name",
            name,
            "--results-dir",
            d,
            "--workers",
            "40",
            "--algorithms",
            "ch,ours",
            "--no-plots",
        ]
    };
    let out = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_simulator")])
        .args(args("one-core"))
        .current_dir(workspace_root())
        .output()
        .expect("taskset (util-linux) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = simulator().args(args("all-cores")).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["logs/ch.log", "logs/ours.log"] {
        assert_eq!(
            std::fs::read(dir.path().join("one-core").join(f)).unwrap(),
            std::fs::read(dir.path().join("all-cores").join(f)).unwrap(),
            "{f} differs between one core and all"
        );
        let side = |run: &str| {
            let mut v: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.path().join(run).join(format!("{f}.meta.json")))
                    .unwrap(),
            )
            .unwrap();
            v["started_utc"] = serde_json::Value::Null;
            v["extra"]["experiment"] = serde_json::Value::Null;
            v
        };
        assert_eq!(side("one-core"), side("all-cores"), "{f}'s sidecar");
    }
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("one-core/run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["points"][0]["node_cores"], 2, "recorded");
    assert!(record["points"][0]["machine_cores"].is_null());
    // The shared machine is an explicit choice, recorded too.
    experiment_ok([
        "--mode",
        "des",
        "--name",
        "shared",
        "--results-dir",
        d,
        "--algorithms",
        "rr",
        "--machine-cores",
        "2",
        "--no-plots",
    ]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("shared/run.json")).unwrap())
            .unwrap();
    assert_eq!(record["points"][0]["machine_cores"], 2);
}

#[test]
fn a_bad_experiment_file_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    std::fs::write(&file, "mode = \"des\"\nrepeat = 2\nalgoritms = [\"rr\"]\n").unwrap();
    let err = experiment_error(dir.path(), [OsStr::new("--file"), file.as_os_str()]);
    assert!(
        err.contains("exp.toml") && err.contains("line 3") && err.contains("algoritms"),
        "{err}"
    );
    std::fs::write(
        &file,
        "mode = \"des\"\n[sweep]\nparam = \"ch.T\"\nvalues = [0]\n",
    )
    .unwrap();
    let err = experiment_error(dir.path(), [OsStr::new("--file"), file.as_os_str()]);
    assert!(err.contains("ch.T"), "{err}");
    let err = experiment_error(dir.path(), ["--mode", "des", "--repeat", "0"]);
    assert!(err.contains("--repeat"), "{err}");
}

#[test]
fn docker_runtime_without_its_static_binary_says_how_to_build_it_before_starting() {
    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-hf-fn");
    let out = simulator()
        .args(["experiment", "--runtime", "docker", "--name", "d"])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .env("HF_FN_STATIC", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no-such-hf-fn") && stderr.contains("build-static-hf-fn.sh"),
        "{stderr}"
    );
    assert!(!stderr.contains("started"), "nothing was started: {stderr}");
    // Nothing ran, so nothing was recorded, and nothing blocks a rerun
    // under the same name.
    assert!(!dir.path().join("d/run.json").exists());
    let again = simulator()
        .args(["experiment", "--runtime", "docker", "--name", "d"])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .env("HF_FN_STATIC", &missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!stderr.contains("--overwrite"), "{stderr}");
}

/// Burns `threads` cores until dropped (work of "another user").
struct Hog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hog {
    fn start(threads: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                        std::hint::black_box(x);
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn a_run_beside_other_work_is_marked_disturbed_and_strict_fails_it() {
    let _live = live_lock();
    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    // Other work on every core of the machine, outside the experiment's
    // process tree: however busy the machine already is, this only adds.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hog = Hog::start(cores);
    let out = simulator()
        .args([
            "experiment",
            "--name",
            "busy",
            "--algorithms",
            "rr",
            "--strict",
        ])
        .args(["--load-factor", "0.05", "--progress", "lines"])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .output()
        .unwrap();
    drop(hog);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "--strict fails it: {stderr}");
    assert!(stderr.contains("DISTURBED"), "{stderr}");
    let report = std::fs::read_to_string(dir.path().join("busy/report.md")).unwrap();
    assert!(report.contains("**DISTURBED**"), "{report}");
    assert!(report.contains("other processes used"), "{report}");
    let summary = std::fs::read_to_string(dir.path().join("busy/summary.csv")).unwrap();
    assert!(summary
        .lines()
        .next()
        .unwrap()
        .ends_with(",seed,disturbed,disturbed_reasons"));
    assert!(
        summary.lines().nth(1).unwrap().contains(",true,"),
        "{summary}"
    );
    assert_all_gone(&child_pids(&dir.path().join("busy/run.json")));
}

#[test]
fn live_repetitions_and_a_sweep_over_the_worker_count() {
    let _live = live_lock();
    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    let out = simulator()
        .args(["experiment", "--name", "rep", "--algorithms", "rr"])
        .args(["--repeat", "2", "--sweep", "workers=1,2", "--seed", "3"])
        .args(["--load-factor", "0.05", "--progress", "lines", "--no-plots"])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = dir.path().join("rep");
    for (point, nodes) in [("workers=1", 1), ("workers=2", 2)] {
        for k in 0..2 {
            let log = run.join(format!("logs/{point}/rr-r{k}.log"));
            let side: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(format!("{}.meta.json", log.display())).unwrap(),
            )
            .unwrap();
            assert_eq!(side["cluster"]["size"], nodes, "{side}");
            assert_eq!(side["seed"], 3 + k, "{side}");
        }
    }
    let summary = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    let rows: Vec<&str> = summary.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{summary}");
    assert!(rows[0].starts_with("workers=1,rr,2,"), "{summary}");
    assert!(rows[1].starts_with("workers=2,rr,2,"), "{summary}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["runs"].as_array().unwrap().len(), 4);
    // 1 + 2 workers, one balancer per run; all gone.
    let pids = child_pids(&run.join("run.json"));
    assert_eq!(pids.len(), 3 + 4, "{pids:?}");
    assert_all_gone(&pids);
    assert_no_work_area(&worker_ids(&run.join("run.json")));
}

/// The statically linked hf-fn of the Docker runtime, built once with the
/// project's script (a no-op when current); its path.
fn static_hf_fn() -> std::path::PathBuf {
    let root = workspace_root();
    let out = Command::new("bash")
        .arg(root.join("scripts/build-static-hf-fn.sh"))
        .current_dir(&root)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/build-static-hf-fn.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Docker objects (`ps -a` or `images`) labelled with worker id `id`.
fn docker_objects(what: &[&str], id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(what)
        .args(["-q", "--filter", &format!("label=hotfunctions.worker={id}")])
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn an_aborted_docker_experiment_leaves_no_container_or_image() {
    let _live = live_lock();
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let bins = build_testbed();
    let hf_fn = static_hf_fn();
    let dir = tempfile::tempdir().unwrap();
    // Unscaled replay (30 s), so the run is still going when a worker is
    // killed and the experiment stopped.
    let mut cmd = simulator();
    cmd.args(["experiment", "--runtime", "docker", "--name", "dock"])
        .args(["--time-scale", "1", "--algorithms", "rr", "--workers", "2"])
        .args(["--load-factor", "0.05", "--package-scale", "0.05"])
        .args(["--progress", "lines"])
        .arg("--results-dir")
        .arg(dir.path())
        .arg("--bin-dir")
        .arg(&bins)
        .env("HF_FN_STATIC", &hf_fn);
    let mut run = Running::spawn(cmd);
    // Wait until calls have completed (images built, containers run).
    run.wait_for_line(Duration::from_secs(180), |line| {
        line.contains("[1/1 rr]") && line.contains(" done") && !line.contains(" 0/")
    });
    // Kill one worker outright (it cannot clean up): a child of the
    // experiment started with --worker-id, found through /proc by parent.
    let sim = run.child.id();
    let worker = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(sim) && String::from_utf8_lossy(&cmd).contains("--worker-id")
        })
        .expect("a worker process under the experiment");
    kill(Pid::from_raw(worker as i32), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(sim as i32), Signal::SIGINT).unwrap();
    let (status, rest) = run.wait_exit(Duration::from_secs(120));
    let seen = &run.seen;
    assert_eq!(status.code(), Some(130), "{seen:#?}\n{rest:#?}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("dock/run.json")).unwrap())
            .unwrap();
    let ids: Vec<String> = record["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["worker_id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), 2, "{record}");
    for id in &ids {
        assert!(
            docker_objects(&["ps", "-a"], id).is_empty(),
            "containers of {id} left"
        );
        assert!(
            docker_objects(&["images"], id).is_empty(),
            "images of {id} left"
        );
    }
    assert!(
        rest.iter().any(|l| l.contains("left by worker")),
        "the killed worker's leftovers were removed by the experiment: {rest:#?}"
    );
    assert_all_gone(&child_pids(&dir.path().join("dock/run.json")));
    // And its work area (the killed worker could not remove it).
    assert_no_work_area(&ids);
}

/// The workers an experiment starts take none of their settings from the
/// caller's environment: with `HF_FUNCTION_SCHED=batch`, a shared
/// `HF_DATA_DIR` (which two workers could not both lock) and an `HF_JOIN`
/// to nowhere set, a default run's workers schedule their functions as
/// normal processes (each reports it, and the experiment checks every
/// report), use no data directory of the caller's and join nothing; with
/// `--function-sched batch`, they run under SCHED_BATCH, and the record,
/// the report and the experiment file say which.
#[test]
fn live_workers_schedule_their_functions_as_the_experiment_says_whatever_the_environment() {
    let _live = live_lock();
    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = simulator()
            .args(["experiment", "--name", name, "--algorithms", "rr"])
            .args([
                "--workers",
                "2",
                "--load-factor",
                "0.05",
                "--duration",
                "5s",
            ])
            .args(["--progress", "lines", "--no-plots"])
            .args(extra)
            .arg("--results-dir")
            .arg(dir.path())
            .arg("--bin-dir")
            .arg(&bins)
            .env("HF_FUNCTION_SCHED", "batch")
            .env("HF_DATA_DIR", shared.path())
            .env("HF_JOIN", "http://127.0.0.1:9")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let run = dir.path().join(name);
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
        let report = std::fs::read_to_string(run.join("report.md")).unwrap();
        let file = std::fs::read_to_string(run.join("experiment.toml")).unwrap();
        assert_all_gone(&child_pids(&run.join("run.json")));
        assert_no_work_area(&worker_ids(&run.join("run.json")));
        (record, report, file)
    };

    let (record, report, file) = run("inherited", &[]);
    assert_eq!(record["function_sched"], "normal", "{record}");
    assert!(
        report.contains("`--function-sched normal`: SCHED_OTHER"),
        "{report}"
    );
    assert!(file.contains("function_sched = \"normal\""), "{file}");
    assert_eq!(
        std::fs::read_dir(shared.path()).unwrap().count(),
        0,
        "a worker used the caller's HF_DATA_DIR"
    );

    let (record, report, file) = run("batch", &["--function-sched", "batch"]);
    assert_eq!(record["function_sched"], "batch", "{record}");
    assert!(
        report.contains("`--function-sched batch`: SCHED_BATCH"),
        "{report}"
    );
    assert!(file.contains("function_sched = \"batch\""), "{file}");
}
