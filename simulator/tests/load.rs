//! `simulator load` (issue 12, part 3) on the real binaries: a real
//! `load-balancer` over two `worker-front` processes (process runtime,
//! functions at 2 % of their work, packages at 1 % of their size).
//!
//! - The closed loop holds: from the log's start/end times, never more
//!   calls in flight than clients (and more than one: the clients do run
//!   at once); the functions in the log are exactly each client's seeded
//!   sequence, cut at the number of calls the summary gives per client.
//! - The log is the replay's: `utils analyze` (the real binary) reads it
//!   with the sidecar's cluster, and the sidecar records the load's
//!   parameters and seed.
//! - The catalog `utils import` writes beside an Azure-derived scenario is
//!   a mix (`--functions catalog:FILE`) weighted by its `rate_per_s`.
//! - Stages (`--clients 1,3`): the summary's per-stage calls add up to
//!   the calls and the log's lines; the clients that join in stage 2
//!   start all their calls there, so stage 2 counts at least theirs and
//!   stage 1 at most client 0's; each client still calls its seeded
//!   sequence.
//! - SIGTERM stops a run as Ctrl-C does: exit 130, summary written.
//! - Bad arguments are clear errors naming what is wrong (and the file and
//!   line of a bad probability file), before anything is sent.
//!
//! Builds the testbed (and the `utils` binary) first with the `cargo`
//! running this test (a no-op when current).

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use protocol::sidecar::{sidecar_path, RunSidecar};
use protocol::LogLine;
use simulator::load::mix::{FunctionMix, MixSpec};
use support::{
    build_testbed, check_closed_loop_log, check_load_parameters, free_port, staging_dir,
    start_printing_url, utils_bin, wait_healthy, workspace_root, Guard, Server,
};

/// Two process workers behind an `rr` balancer; dropped in reverse.
struct Testbed {
    balancer: Server,
    _workers: Vec<Guard>,
    _staging: tempfile::TempDir,
}

fn testbed() -> Testbed {
    let bins = build_testbed();
    let staging = staging_dir();
    let mut workers = Vec::new();
    let mut urls = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let work = staging.path().join(format!("worker-{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let mut cmd = Command::new(bins.join("worker-front"));
        cmd.args(["start", &port.to_string(), "--host", "127.0.0.1"])
            .args(["--runtime", "process"])
            .args(["--time-scale", "0.02", "--package-scale", "0.01"])
            .arg("--work-dir")
            .arg(&work)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for name in policy::node::options::ENV_NAMES {
            cmd.env_remove(name);
        }
        let mut guard = Guard(cmd.spawn().expect("start worker-front"));
        wait_healthy(port, &mut guard.0);
        workers.push(guard);
        urls.push(format!("http://127.0.0.1:{port}"));
    }
    let balancer = start_printing_url(
        &bins.join("load-balancer"),
        &[
            "rr",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--seed",
            "3",
            "--nodes",
            &urls.join(","),
        ],
        Stdio::null(),
    );
    Testbed {
        balancer,
        _workers: workers,
        _staging: staging,
    }
}

fn load_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_simulator"));
    cmd.arg("load").args(args);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What one `simulator load` run of W1-W4 (Zipf) against `bed` wrote.
struct LoadRun {
    out: Output,
    log: std::path::PathBuf,
    summary: serde_json::Value,
    per_client: Vec<usize>,
}

/// Runs `simulator load --clients CLIENTS --duration DURATION --seed SEED`
/// on W1-W4 (Zipf) against `bed`'s balancer, with a call log and a JSON
/// summary in `dir`; asserts it succeeded.
fn run_load(
    bed: &Testbed,
    dir: &Path,
    clients: &str,
    duration: &str,
    seed: u64,
    progress: &str,
) -> LoadRun {
    let log = dir.join("load.log");
    let summary = dir.join("summary.json");
    let out = load_cmd(&["--balancer", &bed.balancer.url])
        .args(["--clients", clients, "--duration", duration])
        .args(["--functions", "zipf:1", "--names", "W1,W2,W3,W4"])
        .args(["--seed", &seed.to_string(), "--progress", progress])
        .arg("--log")
        .arg(&log)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let per_client = summary["calls_per_client"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as usize)
        .collect();
    LoadRun {
        out,
        log,
        summary,
        per_client,
    }
}

#[test]
fn closed_loop_clients_keep_at_most_one_call_each_and_follow_their_seeded_sequences() {
    let bed = testbed();
    let dir = tempfile::tempdir().unwrap();
    const CLIENTS: usize = 3;
    let LoadRun {
        out,
        log,
        summary: s,
        per_client,
    } = run_load(&bed, dir.path(), &CLIENTS.to_string(), "3s", 5, "lines");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("calls/s"), "{}", text(&out));
    assert!(stdout.contains("response time p50"), "{}", text(&out));
    assert_eq!(per_client.len(), CLIENTS);
    assert!(per_client.iter().all(|&n| n >= 2), "{s}");
    let calls = s["calls"].as_u64().unwrap() as usize;
    assert_eq!(per_client.iter().sum::<usize>(), calls);
    assert_eq!(s["ok"].as_u64().unwrap() as usize, calls, "{s}");
    assert!(s["throughput_per_s"].as_f64().unwrap() > 0.0);

    // One line per call, each client's seeded sequence, read by `utils
    // analyze`.
    let in_flight = check_closed_loop_log(&log, 5, &per_client, 2);
    assert!(
        (2..=CLIENTS).contains(&in_flight),
        "{in_flight} calls in flight at once with {CLIENTS} clients"
    );

    // The sidecar: the balancer's cluster and seed, the load's parameters.
    let run = RunSidecar::parse(&std::fs::read_to_string(sidecar_path(&log)).unwrap()).unwrap();
    assert_eq!(run.producer, "simulator load");
    assert_eq!(run.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(run.algorithm.as_deref(), Some("rr"));
    assert_eq!(run.seed, Some(3));
    assert_eq!(run.cluster.size, 2);
    check_load_parameters(&run.extra["load"], CLIENTS, 5, 3.0, "none");
    assert_eq!(run.extra["load_summary"]["calls"], calls);
}

#[test]
fn stages_add_clients_and_count_each_call_in_the_stage_it_started_in() {
    let bed = testbed();
    let dir = tempfile::tempdir().unwrap();
    let LoadRun {
        out,
        log,
        summary: s,
        per_client,
    } = run_load(&bed, dir.path(), "1,3", "2s", 7, "off");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("stage 2 (3 clients from 2 s)"),
        "{}",
        text(&out)
    );
    assert_eq!(per_client.len(), 3, "{s}");
    assert!(per_client.iter().all(|&n| n >= 1), "{s}");
    let calls = s["calls"].as_u64().unwrap() as usize;
    assert_eq!(s["clients"], 3);
    let stages = s["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{s}");
    let n = |st: &serde_json::Value, k: &str| st[k].as_u64().unwrap() as usize;
    assert_eq!((n(&stages[0], "clients"), n(&stages[1], "clients")), (1, 3));
    assert_eq!(n(&stages[0], "calls") + n(&stages[1], "calls"), calls);
    for st in stages {
        assert_eq!(
            n(st, "ok") + n(st, "errors") + n(st, "cancelled"),
            n(st, "calls"),
            "{st}"
        );
    }
    // Only client 0 runs in stage 1; clients 1 and 2 call in stage 2 only.
    assert!(
        n(&stages[0], "calls") >= 1 && n(&stages[0], "calls") <= per_client[0],
        "{s}"
    );
    assert!(
        n(&stages[1], "calls") >= per_client[1] + per_client[2],
        "{s}"
    );
    assert!(stages[1]["throughput_per_s"].as_f64().unwrap() > 0.0);

    // One line per call, each client's seeded sequence, `utils analyze`
    // reads it.
    check_closed_loop_log(&log, 7, &per_client, 2);
    let run = RunSidecar::parse(&std::fs::read_to_string(sidecar_path(&log)).unwrap()).unwrap();
    assert_eq!(run.extra["load"]["clients"], serde_json::json!([1, 3]));
    assert_eq!(run.extra["load"]["total_duration_s"], 4.0);
    assert_eq!(run.extra["load_summary"]["stages"], s["stages"]);
}

#[test]
fn think_time_and_a_probability_file_shape_the_calls() {
    let bed = testbed();
    let dir = tempfile::tempdir().unwrap();
    let probs = dir.path().join("probs.csv");
    std::fs::write(&probs, "FunctionName,Probability\nW1,1\nW2,0\n").unwrap();
    let log = dir.path().join("think.log");
    let out = load_cmd(&["--balancer", &bed.balancer.url])
        .args(["--clients", "2", "--duration", "2s", "--think-ms", "300"])
        .arg("--functions")
        .arg(format!("file:{}", probs.display()))
        .args(["--progress", "off"])
        .arg("--log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<LogLine> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| LogLine::parse(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l.function == "W1"));
    // Two clients each pausing 300 ms after every reply: a client's calls
    // start at least 300 ms apart, so at most ceil(2 s / 300 ms) = 7 each.
    assert!(lines.len() <= 14, "{} calls", lines.len());
    let run = RunSidecar::parse(&std::fs::read_to_string(sidecar_path(&log)).unwrap()).unwrap();
    assert_eq!(run.extra["load"]["think"], "const:300");
    assert_eq!(run.extra["load"]["probabilities"]["W2"], 0.0);
}

/// Waits until `path` holds at least one line (deadline 60 s).
fn wait_for_a_line(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains('\n')) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("load exited early: {status}");
        }
        assert!(Instant::now() < deadline, "no log line within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_stops_a_run_with_its_summary_and_status_130() {
    let bed = testbed();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stopped.log");
    let mut child = load_cmd(&["--balancer", &bed.balancer.url])
        .args(["--clients", "2", "--duration", "10m", "--progress", "off"])
        .args(["--names", "W1,W2"])
        .arg("--log")
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_a_line(&log, &mut child);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("load INTERRUPTED"),
        "{}",
        text(&out)
    );
    let run = RunSidecar::parse(&std::fs::read_to_string(sidecar_path(&log)).unwrap()).unwrap();
    assert_eq!(run.extra["load_summary"]["interrupted"], true);
}

/// Against a balancer with no worker every call fails (503): the summary
/// says there is no response time, instead of a p50 and p99 of 0 ms over
/// no call.
#[test]
fn a_run_without_a_successful_call_prints_no_response_time() {
    let bins = build_testbed();
    let balancer = start_printing_url(
        &bins.join("load-balancer"),
        &["rr", "--port", "0", "--host", "127.0.0.1", "--start-empty"],
        Stdio::null(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = load_cmd(&["--balancer", &balancer.url])
        .args(["--clients", "1", "--duration", "300ms", "--progress", "off"])
        .args(["--names", "W1", "--max-failures", "100%"])
        .arg("--log")
        .arg(dir.path().join("lost.log"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("  ok 0, errors "), "{}", text(&out));
    assert!(
        stdout.contains("no response time: no call succeeded"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("response time p50"), "{}", text(&out));
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "FunctionName,Probability\nW1,0.5\nW2,lots\n").unwrap();
    let bad_arg = format!("file:{}", bad.display());
    let missing = format!("file:{}", dir.path().join("missing.csv").display());
    // Nothing listens on this port: argument errors must come first.
    let url = format!("http://127.0.0.1:{}", free_port());
    let log = dir.path().join("x.log");
    let log = log.to_str().unwrap();
    let too_many = vec!["1"; 33].join(",");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--clients", "0"], "--clients must be 1..=10000"),
        (vec!["--clients", "10001"], "--clients must be 1..=10000"),
        (vec!["--clients", "20,,50"], "stage 2 is empty"),
        (
            vec!["--clients", "20,0"],
            "--clients must be 1..=10000, got 0",
        ),
        (vec!["--clients", "20,x"], "\"x\" is not a count of clients"),
        (vec!["--clients", &too_many], "at most 32 stages"),
        (
            vec!["--clients", "1,1", "--duration", "13h"],
            "2 stages of --duration",
        ),
        (vec!["--duration", "0s"], "--duration must be more than 0"),
        (vec!["--duration", "25h"], "at most one day"),
        (vec!["--think", "exp:-1"], "bad think time"),
        (vec!["--think-ms", "4000000"], "bad think time"),
        (vec!["--functions", "zipf:-2"], "bad Zipf exponent"),
        (vec!["--functions", "pareto"], "bad --functions"),
        (vec!["--names", "W1,W1"], "W1 is listed twice"),
        (
            vec!["--functions", &bad_arg],
            "bad.csv line 3: bad weight \"lots\"",
        ),
        (vec!["--functions", &missing], "cannot read"),
        (
            vec!["--functions", &bad_arg, "--names", "W1"],
            "--names applies to uniform and zipf only",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["--balancer", &url, "--log", log];
        if !extra.contains(&"--clients") {
            args.extend(["--clients", "2"]);
        }
        if !extra.contains(&"--duration") {
            args.extend(["--duration", "1s"]);
        }
        args.extend(&extra);
        let out = load_cmd(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{extra:?}: expected {expected:?}\n{}",
            text(&out)
        );
        assert!(!stderr.contains("panicked"), "{}", text(&out));
        assert!(!Path::new(log).exists(), "{extra:?} wrote a log");
    }
    // Good arguments, no balancer: an error before any log is written.
    let out = load_cmd(&[
        "--balancer",
        &url,
        "--clients",
        "2",
        "--duration",
        "1s",
        "--log",
        log,
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr.contains("unreachable"), "{}", text(&out));
    assert!(!Path::new(log).exists());
}

#[test]
fn the_catalog_utils_import_writes_is_a_mix_weighted_by_rate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("day1.csv");
    let imported = Command::new(utils_bin())
        .args(["import", "azure2019", "--dir"])
        .arg(workspace_root().join("utils/tests/fixtures/azure2019"))
        .args(["--day", "1", "--minutes", "0..60", "--functions", "3"])
        .args(["--pick", "top", "--seed", "0", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", text(&imported));
    // `utils import` writes its catalog beside the scenario.
    let catalog = dir.path().join("day1.csv.catalog.csv");
    let mix = FunctionMix::from_spec(&MixSpec::Catalog(Some(catalog.clone())), None).unwrap();
    // The fixture's top three make 10, 6 and 4 calls in the hour.
    assert_eq!(mix.names(), ["F001", "F002", "F003"]);
    for (i, p) in [0.5, 0.3, 0.2].into_iter().enumerate() {
        assert!(
            (mix.probability(i) - p).abs() < 1e-9,
            "{i}: {}",
            mix.probability(i)
        );
    }
    // And the command line takes it (it fails later, at the balancer).
    let url = format!("http://127.0.0.1:{}", free_port());
    let spec = format!("catalog:{}", catalog.display());
    let out = load_cmd(&["--balancer", &url, "--clients", "1", "--duration", "1s"])
        .args(["--functions", &spec])
        .arg("--log")
        .arg(dir.path().join("x.log"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("over 3 names"), "{}", text(&out));
    assert!(stderr.contains("unreachable"), "{}", text(&out));
}
