//! Validation of `simulator des` against the live testbed (issue 5, §4).
//!
//! The checked-in small scenario (`scenarios/small.csv`, 131 calls of the W
//! and T functions) runs live, with the real binaries as a user runs them:
//! `simulator experiment --mode live` (4 `worker-front` processes, process
//! runtime, REST mode, one `load-balancer` per algorithm, the replayer), and
//! in the simulator on a cost profile that `simulator calibrate` measures
//! first on a `worker-front` built from the same sources (so debug test
//! binaries are compared with a debug-calibrated model: the debug
//! functions' `cpu_scale` is about 2.5). The DES mirrors the
//! live run's setup: 4 nodes sharing this machine's cores
//! (`machine_cores`), the same replay speed-up and `HF_TIME_SCALE`, the same
//! worker options and seed. Both logs go through the same analyzer
//! (`utils::analyze`).
//!
//! The calibration runs on the same machine state just before the live
//! runs, and includes the balancer hop: `simulator calibrate
//! --balancer-url` against a `load-balancer` whose only node is the
//! calibration worker (the live calls all pass through a balancer).
//! Functions run at 3 % of their catalog work (about 50-60 ms of CPU per W
//! call with debug binaries) and the scenario is replayed in 20 s, so that
//! latency is dominated by work the model accounts for, not by
//! sub-millisecond overheads the worker reports in whole ms, while the
//! machine stays below about 20 % busy.
//!
//! Tolerances (the issue's, for rr, ch and ours): locality, imbalance CV
//! and the image-reuse and existing-REST-instance hit ratios within 10 %;
//! mean end-to-end latency (`end - start` of a log line, utils'
//! "duration") within 25 %. All fifteen are asserted. One exception, kept
//! small: a CV whose live value is below 0.2 is compared with an absolute
//! tolerance of 0.02. That is rr's case: round robin splits the calls
//! evenly, so its CV (about 0.05) only measures slot-boundary crossings
//! and the ±1 call of the split; with about 33 calls per node, moving one
//! call between nodes changes the CV by about 0.013, so a relative 10 %
//! (0.005) would be finer than the metric's resolution; 0.02 is 1.5 calls.
//! Every gap is printed (run with `--nocapture`), marked when outside.
//!
//! `ours` is compared by the mean of three live runs. At this load (well
//! under `TOpt` calls in flight per node) every function stays on the node
//! its first call went to, and that first call goes to the least loaded
//! node at that instant: whether a call elsewhere ended a millisecond
//! before or after decides it. So `ours`' per-node split, and its CV, is a
//! chaotic function of timing that differs from live run to live run
//! (measured on this machine: 0.97-1.20 over fifteen quiet runs, DES
//! 1.12-1.19 depending on the calibration), while locality and hit ratios
//! do not move. One live run is one draw; the mean of three is the
//! quantity the model can be held to.
//!
//! Packages: the live runs and the DES use packages at a quarter of the
//! catalog's sizes (`--package-scale 0.25`, the workers'
//! `HF_PACKAGE_SCALE`), in proportion to the functions' scaled-down work;
//! the calibration worker stages full-size packages (0.5-98 MB) for a
//! clean per-MB fit, so the test also checks that the scale carries over.
//! At full size the live rr run writes about 1.1 GB of packages in 20 s,
//! and on the virtual machines this project's CI runs on, memory beyond a
//! warm pool of about 1.3 GB costs about ten times as much to touch the
//! first time (the host backs it on demand and takes freed memory back
//! within seconds: 50 MB written to tmpfs in 15 ms, then 160 ms once the
//! pool is used up, measured with a plain write loop). Builds late in such
//! a run then took three to four times their calibrated cost (a 54 MB
//! build: 87 ms early, 250-290 ms after 5 s), a property of the host's
//! memory, not of the model under test; a quarter of that volume stays
//! well inside the pool. The workers stage in memory (`/dev/shm`, where
//! there is one) rather than on disk, so that disk writeback does not add
//! its own, similar slowdown.
//!
//! A live run on a disturbed machine is not a fair reference: a run in
//! which the balancer refused calls, or whose functions' mean
//! `InternalExecutionTime` exceeds the model's by more than 25 % (other
//! load took the cores: the function work itself is fixed), is repeated,
//! three attempts at most per algorithm; every attempt is reported. The
//! test is meant for a machine that is not overloaded by other work; on a
//! saturated one it fails with the attempts' figures.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{build_testbed, free_port, staging_dir, wait_healthy, workspace_root, Guard};

use des::{run_scenario, CostProfile, DesConfig};
use policy::node::options::CachingOptions;
use utils::analyze::{analyze, Analysis, AnalyzeOptions};
use utils::logs::RunLog;

const ALGORITHMS: [&str; 3] = ["rr", "ch", "ours"];
const NODES: u32 = 4;
const SEED: u64 = 3;
/// Replay speed-up and the functions' work scale of the live run: the 30-s
/// scenario is sent in 20 s, functions run at 3 % of their catalog work.
const TIME_SCALE: f64 = 1.5;
const FN_TIME_SCALE: f64 = 0.03;
/// Package scale of the live runs and the DES (see the module doc).
const PACKAGE_SCALE: f64 = 0.25;
/// Below this live CV (rr's even split: about 0.05), the CV is compared
/// with the absolute tolerance [`CV_ABSOLUTE`]: see the module doc.
const CV_FLOOR: f64 = 0.2;
const CV_ABSOLUTE: f64 = 0.02;
/// A live run whose functions' mean `InternalExecutionTime` exceeds the
/// calibrated model's by more than this factor ran on a disturbed machine
/// (other load took the cores) and is repeated.
const DISTURBED: f64 = 1.25;
/// Fair live runs of `ours`, compared by their mean (see the module doc).
const OURS_RUNS: usize = 3;
/// Attempts beyond the runs needed, to replace disturbed runs.
const EXTRA_ATTEMPTS: usize = 2;

/// Runs `simulator calibrate` against a fresh worker of these binaries.
fn calibrate(bins: &Path, dir: &Path, staging: &Path) -> CostProfile {
    let port = free_port();
    let work = staging.join("calibration-worker");
    std::fs::create_dir_all(&work).unwrap();
    let mut worker = Command::new(bins.join("worker-front"));
    worker
        .args(["start", &port.to_string(), "--host", "127.0.0.1"])
        .arg("--work-dir")
        .arg(&work)
        .env("HF_TIME_SCALE", "1")
        .env("HF_PACKAGE_SCALE", "1")
        .env("RUST_LOG", "warn")
        .env_remove("USING_REST_MODE")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut guard = Guard(worker.spawn().expect("start worker-front"));
    wait_healthy(port, &mut guard.0);
    // A balancer in front of that worker alone, so that calibrate measures
    // the balancer hop the live runs' calls take.
    let balancer_port = free_port();
    let mut balancer = Command::new(bins.join("load-balancer"));
    balancer
        .arg("rr")
        .args(["--port", &balancer_port.to_string(), "--host", "127.0.0.1"])
        .args(["--nodes", &format!("http://127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut balancer_guard = Guard(balancer.spawn().expect("start load-balancer"));
    wait_healthy(balancer_port, &mut balancer_guard.0);
    let profile = dir.join("profile.json");
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["calibrate", &format!("http://127.0.0.1:{port}")])
        .args([
            "--balancer-url",
            &format!("http://127.0.0.1:{balancer_port}"),
        ])
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
    drop(balancer_guard);
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
    /// Below this live value, `absolute` replaces the relative tolerance.
    floor: f64,
    absolute: f64,
}

impl Gap {
    fn relative(&self) -> f64 {
        (self.des - self.live) / self.live.abs().max(self.floor)
    }

    fn ok(&self) -> bool {
        if self.live.abs() < self.floor {
            (self.des - self.live).abs() <= self.absolute
        } else {
            self.relative().abs() <= self.tolerance
        }
    }
}

/// The compared metrics of one run, or their means over runs.
#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    locality: f64,
    cv: f64,
    image_hit_ratio: f64,
    rest_hit_ratio: f64,
    /// Mean `end - start` of a log line (utils' "duration").
    duration_ms: f64,
    /// Mean duration - `InternalExecutionTime`.
    latency_ms: f64,
    /// Mean `InternalExecutionTime`.
    internal_ms: f64,
}

impl Metrics {
    fn of(a: &Analysis) -> Self {
        Self {
            locality: a.locality.mean_distinct_functions,
            cv: a.imbalance.cv,
            image_hit_ratio: a.cache.image_reuse.hit_ratio,
            rest_hit_ratio: a.cache.existing_rest_container.hit_ratio,
            duration_ms: a.mean_duration_ms,
            latency_ms: a.mean_latency_ms,
            internal_ms: a.mean_duration_ms - a.mean_latency_ms,
        }
    }

    /// Field-wise mean over `runs` (at least one).
    fn mean(runs: &[&Analysis]) -> Self {
        let n = runs.len() as f64;
        runs.iter()
            .map(|a| Self::of(a))
            .fold(Self::default(), |s, m| Self {
                locality: s.locality + m.locality / n,
                cv: s.cv + m.cv / n,
                image_hit_ratio: s.image_hit_ratio + m.image_hit_ratio / n,
                rest_hit_ratio: s.rest_hit_ratio + m.rest_hit_ratio / n,
                duration_ms: s.duration_ms + m.duration_ms / n,
                latency_ms: s.latency_ms + m.latency_ms / n,
                internal_ms: s.internal_ms + m.internal_ms / n,
            })
    }
}

fn gaps(live: &Metrics, des: &Metrics) -> Vec<Gap> {
    // Floors only matter for a near-zero live value; an absolute tolerance
    // of 10 % of the floor keeps them as strict as the relative one there.
    let g = |metric, live, des, tolerance: f64, floor: f64| Gap {
        metric,
        live,
        des,
        tolerance,
        floor,
        absolute: tolerance * floor,
    };
    vec![
        g("locality", live.locality, des.locality, 0.10, 0.1),
        Gap {
            metric: "cv",
            live: live.cv,
            des: des.cv,
            tolerance: 0.10,
            floor: CV_FLOOR,
            absolute: CV_ABSOLUTE,
        },
        g(
            "image_hit_ratio",
            live.image_hit_ratio,
            des.image_hit_ratio,
            0.10,
            0.05,
        ),
        g(
            "rest_hit_ratio",
            live.rest_hit_ratio,
            des.rest_hit_ratio,
            0.10,
            0.05,
        ),
        g(
            "mean_latency_ms",
            live.duration_ms,
            des.duration_ms,
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
fn live_run(bins: &Path, dir: &Path, staging: &Path, algorithm: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .current_dir(workspace_root())
        .args(["experiment", "--mode", "live"])
        .args(["--name", &format!("live-{algorithm}")])
        .args(["--algorithms", algorithm])
        .args(["--workers", &NODES.to_string()])
        .args(["--seed", &SEED.to_string()])
        .args(["--time-scale", &TIME_SCALE.to_string()])
        .args(["--fn-time-scale", &FN_TIME_SCALE.to_string()])
        .args(["--package-scale", &PACKAGE_SCALE.to_string()])
        .args(["--scenario", "scenarios/small.csv"])
        .args(["--progress", "off", "--no-plots", "--overwrite"])
        .args(["--set", "USING_REST_MODE=true"])
        .arg("--results-dir")
        .arg(dir)
        .arg("--bin-dir")
        .arg(bins)
        // Inherited by the workers the experiment starts: their staging
        // directory (the system temp dir). Their caching options are the
        // experiment's resolved ones (REST mode from --set above).
        .env("TMPDIR", staging)
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
    let staging = staging_dir();
    let profile = calibrate(&bins, dir.path(), staging.path());

    let text = std::fs::read_to_string(workspace_root().join("scenarios/small.csv")).unwrap();
    let events = protocol::scenario::parse(&text, "small.csv").unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let mut report = String::new();
    let mut failures = Vec::new();
    for algorithm in ALGORITHMS {
        let scheduler =
            policy::scheduler::SchedulerConfig::new(algorithm, [("seed", SEED.to_string())])
                .unwrap();
        let config = DesConfig {
            scheduler,
            nodes: NODES,
            machine_cores: Some(cores),
            worker: CachingOptions {
                using_rest_mode: true,
                ..CachingOptions::default()
            },
            profile: profile.clone(),
            time_scale: TIME_SCALE,
            fn_time_scale: FN_TIME_SCALE,
            package_scale: PACKAGE_SCALE,
            ..DesConfig::default()
        };
        let des_log = dir.path().join(format!("des-{algorithm}.log"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&des_log).unwrap());
        run_scenario(&events, &config, Some(&mut f)).unwrap();
        f.flush().unwrap();
        drop(f);
        let des = analysis(&des_log);
        let des_internal = des.mean_duration_ms - des.mean_latency_ms;

        // One experiment per algorithm: fresh workers each time, so that no
        // run inherits the images built by the previous one. A live run in
        // which the balancer refused calls, or whose functions ran more
        // than DISTURBED times slower than calibrated (other load took the
        // shared machine's cores), is not a fair reference: it is repeated.
        // `ours` needs OURS_RUNS fair runs (its CV is a chaotic function of
        // timing: see the module doc) and is compared by their mean. At
        // most `runs + EXTRA_ATTEMPTS` attempts; when they run out, the
        // latest attempts fill the missing runs whatever they are.
        let runs = if algorithm == "ours" { OURS_RUNS } else { 1 };
        let mut fair: Vec<(Analysis, Vec<String>)> = Vec::new();
        let mut unfair: Vec<(Analysis, Vec<String>)> = Vec::new();
        for attempt in 1..=runs + EXTRA_ATTEMPTS {
            live_run(&bins, dir.path(), staging.path(), algorithm);
            let log = live_log(dir.path(), algorithm);
            let errors = live_errors(&log);
            let a = analysis(&log);
            let internal = a.mean_duration_ms - a.mean_latency_ms;
            let disturbed = internal > DISTURBED * des_internal;
            let line = format!(
                "{algorithm:>5} live attempt {attempt}: {} errors; mean InternalExecutionTime {internal:.1} ms (model {des_internal:.1} ms); CV {:.3}{}\n",
                errors.len(),
                a.imbalance.cv,
                if disturbed { ": disturbed machine" } else { "" }
            );
            eprint!("{line}");
            report.push_str(&line);
            if errors.is_empty() && !disturbed {
                fair.push((a, errors));
            } else {
                unfair.push((a, errors));
            }
            if fair.len() == runs {
                break;
            }
        }
        while fair.len() < runs {
            fair.push(unfair.pop().expect("an attempt per missing run"));
        }
        for (live, errors) in &fair {
            assert_eq!(
                live.ok_calls,
                events.len(),
                "{algorithm}: every live call succeeded; errors:\n{}",
                errors.join("\n")
            );
        }
        let lives: Vec<&Analysis> = fair.iter().map(|(a, _)| a).collect();
        let live = Metrics::mean(&lives);
        report.push_str(&format!(
            "{algorithm:>5} (live: mean of {} run(s); calls {} des; mean internal ms {:.1} live, {:.1} des; mean overhead (duration - internal) ms {:.1} live, {:.1} des)\n",
            lives.len(),
            des.ok_calls,
            live.internal_ms,
            des_internal,
            live.latency_ms,
            des.mean_latency_ms,
        ));
        for gap in gaps(&live, &Metrics::of(&des)) {
            let line = format!(
                "{algorithm:>5} {:<16} live {:>9.3}  des {:>9.3}  gap {:>+7.1}%  (tolerance {}){}",
                gap.metric,
                gap.live,
                gap.des,
                gap.relative() * 100.0,
                if gap.live.abs() < gap.floor {
                    format!("±{} absolute", gap.absolute)
                } else {
                    format!("{:.0}%", gap.tolerance * 100.0)
                },
                if gap.ok() { "" } else { "  <-- outside" }
            );
            if !gap.ok() {
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
