//! Validation of `simulator des` against the live testbed (issue 5, §4).
//!
//! The checked-in small scenario (`scenarios/small.csv`, 131 calls of the W
//! and T functions) runs live, with the real binaries as a user runs them:
//! `simulator experiment --mode live` (4 `worker-front` processes, process
//! runtime, REST mode, one `load-balancer` per algorithm, the replayer), and
//! in the simulator on a cost profile that `simulator calibrate` measures
//! first on a `worker-front` built from the same sources (so debug test
//! binaries are compared with a debug-calibrated model). The DES mirrors the
//! live run's setup: 4 nodes sharing this machine's cores
//! (`machine_cores`), the same replay speed-up and `HF_TIME_SCALE`, the same
//! worker options and seed. Both logs go through the same analyzer
//! (`utils::analyze`).
//!
//! Tolerances (relative, the issue's): locality, imbalance CV and the
//! image-reuse and existing-REST-instance hit ratios within 10 %; mean
//! end-to-end latency (`end - start` of a log line, utils' "duration")
//! within 25 %. Every gap of rr, ch and ours is printed (run with
//! `--nocapture`), marked when outside its tolerance. A metric whose live
//! value is below a small floor is compared with an absolute tolerance of
//! the same size instead (a relative gap of a near-zero CV is noise).
//!
//! What is asserted, and why not more: the house rules forbid timing
//! assertions in tests (they must hold on a loaded 2-core machine), and on
//! the shared build machine the live side is at the mercy of other load: in
//! our runs the live functions ran 3x (and in one spike 40x) slower than
//! calibrated, which moves latency far outside 25 % and, for the
//! load-aware rr and ours, also moves placement and instance reuse. So the
//! test asserts the four structural metrics for `ch`, whose placement (by
//! hash, under its load bound) does not depend on timing, and reports the
//! rest. The latency tolerance and the other algorithms' gaps are measured
//! figures for the report, not pass/fail criteria here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use simulator::des::{run_scenario, CostProfile, DesConfig};
use utils::analyze::{analyze, Analysis, AnalyzeOptions};
use utils::logs::RunLog;
use worker_front::policy::options::CachingOptions;

const ALGORITHMS: [&str; 3] = ["rr", "ch", "ours"];
const NODES: u32 = 4;
const SEED: u64 = 3;
/// Replay speed-up and the functions' work scale of the live run: the 30-s
/// scenario is sent in 12 s, functions run at 1 % of their catalog work
/// (debug binaries on a shared 2-core machine overload at much more: with
/// 5 % and a 6-s replay, ch's nodes hit their load bound).
const TIME_SCALE: f64 = 2.5;
const FN_TIME_SCALE: f64 = 0.01;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_simulator"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the other packages' binaries (a no-op when current) with the
/// cargo running this test, so the test never runs stale binaries.
fn build_testbed() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root()).args([
            "build",
            "-p",
            "load-balancer",
            "-p",
            "worker-front",
            "-p",
            "sample-functions",
            "--bins",
        ]);
        if bin_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = result {
        panic!("building the testbed binaries failed:\n{e}");
    }
    bin_dir()
}

/// A child process killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `GET /health` until it answers 200 (deadline 60 s).
fn wait_healthy(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            let mut reply = String::new();
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_to_string(&mut reply).is_ok()
                && reply.starts_with("HTTP/1.1 200")
            {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("worker exited before it was healthy: {status}");
        }
        assert!(Instant::now() < deadline, "worker on {port} never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `simulator calibrate` against a fresh worker of these binaries.
fn calibrate(bins: &Path, dir: &Path) -> CostProfile {
    let port = free_port();
    let work = dir.join("calibration-worker");
    std::fs::create_dir_all(&work).unwrap();
    let mut worker = Command::new(bins.join("worker-front"));
    worker
        .args(["start", &port.to_string(), "--host", "127.0.0.1"])
        .arg("--work-dir")
        .arg(&work)
        .env("HF_TIME_SCALE", "1")
        .env("RUST_LOG", "warn")
        .env_remove("USING_REST_MODE")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut guard = Guard(worker.spawn().expect("start worker-front"));
    wait_healthy(port, &mut guard.0);
    let profile = dir.join("profile.json");
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["calibrate", &format!("http://127.0.0.1:{port}")])
        .args([
            "--repeats",
            "3",
            "--build-repeats",
            "1",
            "--runtime",
            "process",
        ])
        .arg("--out")
        .arg(&profile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "calibrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(guard);
    CostProfile::load(&profile).unwrap()
}

fn analysis(path: &Path) -> Analysis {
    let log = RunLog::read(path).unwrap();
    analyze(
        &log,
        &AnalyzeOptions {
            nodes: Some(NODES as usize),
            ..AnalyzeOptions::default()
        },
    )
    .unwrap()
}

struct Gap {
    metric: &'static str,
    live: f64,
    des: f64,
    tolerance: f64,
    floor: f64,
}

impl Gap {
    fn relative(&self) -> f64 {
        (self.des - self.live) / self.live.abs().max(self.floor)
    }

    fn ok(&self) -> bool {
        if self.live.abs() < self.floor {
            (self.des - self.live).abs() <= self.floor
        } else {
            self.relative().abs() <= self.tolerance
        }
    }
}

fn gaps(live: &Analysis, des: &Analysis) -> Vec<Gap> {
    let g = |metric, live, des, tolerance, floor| Gap {
        metric,
        live,
        des,
        tolerance,
        floor,
    };
    vec![
        g(
            "locality",
            live.locality.mean_distinct_functions,
            des.locality.mean_distinct_functions,
            0.10,
            0.1,
        ),
        g("cv", live.imbalance.cv, des.imbalance.cv, 0.10, 0.05),
        g(
            "image_hit_ratio",
            live.cache.image_reuse.hit_ratio,
            des.cache.image_reuse.hit_ratio,
            0.10,
            0.05,
        ),
        g(
            "rest_hit_ratio",
            live.cache.existing_rest_container.hit_ratio,
            des.cache.existing_rest_container.hit_ratio,
            0.10,
            0.05,
        ),
        g(
            "mean_latency_ms",
            live.mean_duration_ms,
            des.mean_duration_ms,
            0.25,
            1.0,
        ),
    ]
}

fn live_log(dir: &Path, algorithm: &str) -> PathBuf {
    dir.join(format!("live-{algorithm}/logs/{algorithm}.log"))
}

/// The error lines of a live log.
fn live_errors(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""Error":true"#))
        .map(str::to_string)
        .collect()
}

/// `simulator experiment --mode live` for one algorithm, into
/// `<dir>/live-<algorithm>/`.
fn live_run(bins: &Path, dir: &Path, algorithm: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .current_dir(workspace_root())
        .args(["experiment", "--mode", "live"])
        .args(["--name", &format!("live-{algorithm}")])
        .args(["--algorithms", algorithm])
        .args(["--workers", &NODES.to_string()])
        .args(["--seed", &SEED.to_string()])
        .args(["--time-scale", &TIME_SCALE.to_string()])
        .args(["--fn-time-scale", &FN_TIME_SCALE.to_string()])
        .args(["--scenario", "scenarios/small.csv"])
        .args(["--progress", "off", "--no-plots"])
        .arg("--results-dir")
        .arg(dir)
        .arg("--bin-dir")
        .arg(bins)
        // Inherited by the workers the experiment starts.
        .env("USING_REST_MODE", "true")
        .env_remove("CONTAINER_POOL_LIMIT")
        .env_remove("USER_CODE_SIZE_LIMIT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "live experiment with {algorithm} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn small_scenario_live_and_simulated_agree() {
    let bins = build_testbed();
    let dir = tempfile::tempdir().unwrap();
    let profile = calibrate(&bins, dir.path());

    // One experiment per algorithm: fresh workers each time, so that no run
    // inherits the images built by the previous one (the `/clear` between
    // the runs of one experiment keeps images, as the original's does).
    // A live run in which the balancer had to refuse calls (every node at
    // its load bound: the shared machine was overloaded) is not a fair
    // reference; it is repeated, at most three times in all.
    for algorithm in ALGORITHMS {
        for attempt in 1..=3 {
            live_run(&bins, dir.path(), algorithm);
            let errors = live_errors(&live_log(dir.path(), algorithm));
            if errors.is_empty() || attempt == 3 {
                break;
            }
            eprintln!(
                "{algorithm}: live attempt {attempt} had {} refused/failed calls (overloaded machine); again",
                errors.len()
            );
        }
    }

    let text = std::fs::read_to_string(workspace_root().join("scenarios/small.csv")).unwrap();
    let events = protocol::scenario::parse(&text, "small.csv").unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let mut report = String::new();
    let mut failures = Vec::new();
    for algorithm in ALGORITHMS {
        let live_log = live_log(dir.path(), algorithm);
        let live = analysis(&live_log);
        let errors = live_errors(&live_log);
        assert_eq!(
            live.calls,
            events.len(),
            "{algorithm}: every live call succeeded; errors:\n{}",
            errors.join("\n")
        );

        let config = DesConfig {
            algorithm: algorithm.into(),
            nodes: NODES,
            machine_cores: Some(cores),
            worker: CachingOptions {
                using_rest_mode: true,
                ..CachingOptions::default()
            },
            profile: profile.clone(),
            time_scale: TIME_SCALE,
            fn_time_scale: FN_TIME_SCALE,
            params: load_balancer::scheduler::Params {
                seed: SEED,
                ..Default::default()
            },
            ..DesConfig::default()
        };
        let des_log = dir.path().join(format!("des-{algorithm}.log"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&des_log).unwrap());
        run_scenario(&events, &config, Some(&mut f)).unwrap();
        f.flush().unwrap();
        drop(f);
        let des = analysis(&des_log);
        report.push_str(&format!(
            "{algorithm:>5} (calls {} live, {} des; mean internal ms {:.1} live, {:.1} des; mean worker-side latency ms {:.1} live, {:.1} des)\n",
            live.calls,
            des.calls,
            live.mean_duration_ms - live.mean_latency_ms,
            des.mean_duration_ms - des.mean_latency_ms,
            live.mean_latency_ms,
            des.mean_latency_ms,
        ));
        for gap in gaps(&live, &des) {
            let line = format!(
                "{algorithm:>5} {:<16} live {:>9.3}  des {:>9.3}  gap {:>+7.1}%  (tolerance {:.0}%){}",
                gap.metric,
                gap.live,
                gap.des,
                gap.relative() * 100.0,
                gap.tolerance * 100.0,
                if gap.ok() { "" } else { "  <-- outside" }
            );
            let asserted = algorithm == "ch" && gap.metric != "mean_latency_ms";
            if asserted && !gap.ok() {
                failures.push(line.clone());
            }
            report.push_str(&line);
            report.push('\n');
        }
    }
    let mut shown = profile.clone();
    shown.samples = serde_json::Value::Null;
    eprintln!(
        "live vs DES on scenarios/small.csv\nprofile: {}\n{report}",
        serde_json::to_string(&shown).unwrap_or_default()
    );
    assert!(
        failures.is_empty(),
        "outside tolerance:\n{}\nall:\n{report}",
        failures.join("\n")
    );
}
