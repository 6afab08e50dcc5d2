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
//! `ours` needs more than one live run. At this load (well
//! under `TOpt` calls in flight per node) every function stays on the node
//! its first call went to, and that first call goes to the least loaded
//! node at that instant: whether a call elsewhere ended a millisecond
//! before or after decides it. So `ours`' per-node split, and its CV, is a
//! chaotic function of timing that differs from live run to live run
//! (measured on this machine: 0.97-1.20 over fifteen quiet runs, 1.16-1.63
//! over five runs of one CI job on a loaded machine), while locality and
//! hit ratios do not move. One live run is one draw, so `ours` runs three
//! times, compared by their mean (the rules below) and one by one (the
//! cluster rule).
//!
//! **The model's side is an ensemble, too.** The DES is deterministic, but
//! its input, the calibrated profile, is itself a measurement: two
//! calibrations on this machine differ by several per cent, and for a
//! chaotic metric that moves the DES's answer as much as a live rerun
//! moves the live one (`ours`' DES CV: 1.12-1.19 over calibrations, 1.66
//! on one CI machine). So every algorithm is simulated on the calibrated
//! profile and on [`ENSEMBLE`] variants of it whose cost figures are each
//! multiplied by a factor in 0.9-1.1 (a fixed low-discrepancy sequence, so
//! the test is deterministic given the calibration), and the model's value
//! is the ensemble mean.
//!
//! **Tolerance and uncertainty.** A metric agrees when the gap between the
//! live mean and the model's mean is within the issue's tolerance (above),
//! *or* within three standard errors of that difference, the standard
//! error being `sqrt(s_live²/n_live + s_des²/n_des)` from the spread of the
//! live runs and of the ensemble. The second rule only widens the check
//! where the two sides themselves scatter by more than the tolerance (in
//! practice `ours`' CV); a model that is systematically off (say `ours`
//! simulated as evenly as `rr`, CV 0.05 against 1.2) still fails.
//!
//! `ours`' CV needs one more rule. Its outcomes are not spread around one
//! value but fall in two clusters (the functions' split over the nodes is
//! discrete): 1.13-1.18 or 1.61-1.72, in live runs and in the DES alike,
//! and which one a run lands in depends on timing at the millisecond. In
//! the DES it depends on the machine's speed: measured over 25 profiles
//! each, every run at the quiet calibration (`cpu_scale` 0.95) gave
//! 1.63-1.72, at 2.1 (calibrated during a build) 15 gave 1.17 and 10 gave
//! 1.61, at 3.2 all gave 1.15-1.17; live, quiet runs mostly give 1.17. A
//! mean over three runs then measures the share of each cluster, which no
//! model of this machine can be held to. So for `ours`' CV the model is
//! also run over a speed sweep (`cpu_scale` times 0.35 to 2.8, [`SWEEP`]
//! steps each side), and the metric also agrees when *every live run's*
//! CV is within the 10 % tolerance of a value the model produced: the
//! model must produce what the live runs produced, cluster by cluster. A
//! model that splits the functions differently (say as evenly as `rr`, CV
//! 0.05, or all on one node, CV 1.73) still fails. Every gap is printed
//! with the ensemble's range, its standard error and the rule that
//! accepted it, and for `ours`' CV the live values and the model's
//! clusters.
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
//! up to two extra attempts per algorithm; every attempt is reported.
//! When the attempts run out (CI machines are shared, and a neighbour can
//! hold the cores for minutes) the latest attempts are compared; and when
//! the calibration itself ran on a loaded machine, the live runs are the
//! faster ones (measured: `cpu_scale` 3.2 calibrated while a build ran,
//! live functions then 45 % faster than the model). A cliff between "fair"
//! and "disturbed" does not help either: `ours`' runs at 1.22 times the
//! calibrated function time were "fair", and their latency 26 % off. So
//! the model is always told the speed the compared runs had: its
//! `cpu_scale` is re-fitted so that its mean `InternalExecutionTime`
//! matches theirs within 2 % (fixed-point steps; on a quiet machine the
//! factor is near 1 and no step is taken), as a calibration in that
//! machine state would have measured it. The latency comparison then
//! checks what the model is for (queueing, cold starts, builds, the
//! balancer hop, on top of the functions' work), not the neighbours' load;
//! the report gives the factor. Calls must all succeed either way.

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
/// Perturbed profiles simulated besides the calibrated one (module doc).
const ENSEMBLE: usize = 24;
/// Largest relative change of a cost figure in the ensemble.
const PERTURBATION: f64 = 0.10;
/// Standard errors of the live - model difference within which a metric
/// agrees even outside its tolerance (module doc).
const STANDARD_ERRORS: f64 = 3.0;
/// Steps of the speed sweep each side of the model's speed (module doc).
const SWEEP: i32 = 6;

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
    /// Mean over the live runs.
    live: f64,
    /// Mean over the model's ensemble.
    des: f64,
    /// Smallest and largest value over the model's ensemble.
    des_range: (f64, f64),
    /// Standard error of `des - live` (0 when neither side scatters).
    se: f64,
    /// For a chaotic metric (`ours`' CV: module doc), each live run's value
    /// and the values the model produced over the speed sweep: the metric
    /// also agrees when every live value is within the tolerance of one of
    /// the model's.
    outcomes: Option<(Vec<f64>, Vec<f64>)>,
    tolerance: f64,
    /// Below this live value, `absolute` replaces the relative tolerance.
    floor: f64,
    absolute: f64,
}

impl Gap {
    fn relative(&self) -> f64 {
        (self.des - self.live) / self.live.abs().max(self.floor)
    }

    fn within_tolerance(&self) -> bool {
        if self.live.abs() < self.floor {
            (self.des - self.live).abs() <= self.absolute
        } else {
            self.relative().abs() <= self.tolerance
        }
    }

    fn within_uncertainty(&self) -> bool {
        self.se > 0.0 && (self.des - self.live).abs() <= STANDARD_ERRORS * self.se
    }

    fn within_outcomes(&self) -> bool {
        self.outcomes.as_ref().is_some_and(|(live, model)| {
            live.iter().all(|l| {
                model
                    .iter()
                    .any(|m| (m - l).abs() <= self.tolerance * l.abs())
            })
        })
    }

    fn ok(&self) -> bool {
        self.within_tolerance() || self.within_uncertainty() || self.within_outcomes()
    }

    fn line(&self, algorithm: &str) -> String {
        format!(
            "{algorithm:>5} {:<16} live {:>9.3}  des {:>9.3} ({:.3}-{:.3})  gap {:>+7.1}%  se {:>7.3}  (tolerance {}){}",
            self.metric,
            self.live,
            self.des,
            self.des_range.0,
            self.des_range.1,
            self.relative() * 100.0,
            self.se,
            if self.live.abs() < self.floor {
                format!("±{} absolute", self.absolute)
            } else {
                format!("{:.0}%", self.tolerance * 100.0)
            },
            if self.within_tolerance() {
                ""
            } else if self.within_uncertainty() {
                "  within 3 standard errors"
            } else if self.within_outcomes() {
                "  every live run near an outcome of the model (chaotic metric)"
            } else {
                "  <-- outside"
            }
        )
    }
}

/// The distinct values in `values`, grouped where neighbours differ by at
/// most `tolerance` (relative), as `low-high` ranges: `1.142-1.176,
/// 1.614-1.715`.
fn clusters(values: &[f64], tolerance: f64) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut groups: Vec<(f64, f64)> = Vec::new();
    for v in sorted {
        match groups.last_mut() {
            Some((_, high)) if v - *high <= tolerance * high.abs() => *high = v,
            _ => groups.push((v, v)),
        }
    }
    groups
        .iter()
        .map(|(low, high)| format!("{low:.3}-{high:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The compared metrics of one run.
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
}

/// Mean and sample variance of one metric over runs (variance 0 for one).
fn mean_var(runs: &[Metrics], field: fn(&Metrics) -> f64) -> (f64, f64) {
    let n = runs.len() as f64;
    let mean = runs.iter().map(field).sum::<f64>() / n;
    let var = if runs.len() > 1 {
        runs.iter().map(|m| (field(m) - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var)
}

/// The compared metrics: name, value, relative tolerance, floor and the
/// absolute tolerance below the floor. Floors only matter for a near-zero
/// live value; an absolute tolerance of 10 % of the floor keeps them as
/// strict as the relative one there (the CV's is explained in the module
/// doc).
type Compared = (&'static str, fn(&Metrics) -> f64, f64, f64, f64);
const COMPARED: [Compared; 5] = [
    ("locality", |m| m.locality, 0.10, 0.1, 0.01),
    ("cv", |m| m.cv, 0.10, CV_FLOOR, CV_ABSOLUTE),
    ("image_hit_ratio", |m| m.image_hit_ratio, 0.10, 0.05, 0.005),
    ("rest_hit_ratio", |m| m.rest_hit_ratio, 0.10, 0.05, 0.005),
    ("mean_latency_ms", |m| m.duration_ms, 0.25, 1.0, 0.25),
];

/// The gaps of every compared metric; `sweep`: for an algorithm whose CV
/// is a chaotic function of timing (`ours`), the model's runs over the
/// speed sweep.
fn gaps(live: &[Metrics], des: &[Metrics], sweep: Option<&[Metrics]>) -> Vec<Gap> {
    COMPARED
        .iter()
        .map(|&(metric, field, tolerance, floor, absolute)| {
            let (live_mean, live_var) = mean_var(live, field);
            let (des_mean, des_var) = mean_var(des, field);
            let des_range = des
                .iter()
                .map(field)
                .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            Gap {
                metric,
                live: live_mean,
                des: des_mean,
                des_range,
                outcomes: sweep.filter(|_| metric == "cv").map(|sweep| {
                    (
                        live.iter().map(field).collect(),
                        des.iter().chain(sweep).map(field).collect(),
                    )
                }),
                se: (live_var / live.len() as f64 + des_var / des.len() as f64).sqrt(),
                tolerance,
                floor,
                absolute,
            }
        })
        .collect()
}

/// The calibrated profile (`k` = 0) or its `k`-th perturbed variant: each
/// cost figure times a factor in `1 ± PERTURBATION`, from an additive
/// (Weyl) sequence per figure, so the ensemble is fixed for a calibration.
fn perturbed(profile: &CostProfile, k: usize) -> CostProfile {
    let mut p = profile.clone();
    if k == 0 {
        return p;
    }
    let figures = [
        &mut p.image_build_base_ms,
        &mut p.image_build_ms_per_mb,
        &mut p.instance_create_ms,
        &mut p.pooled_ms,
        &mut p.rest_start_ms,
        &mut p.rest_warm_ms,
        &mut p.instance_load_ms_per_mb,
        &mut p.network_ms,
        &mut p.balancer_ms,
        &mut p.cpu_scale,
    ];
    for (j, figure) in figures.into_iter().enumerate() {
        // Fractional parts of k·(golden ratio) shifted per figure by
        // multiples of sqrt(2): well spread over [0, 1) for every figure.
        let u = (k as f64 * 0.618_033_988_75 + j as f64 * 0.414_213_562_37).fract();
        *figure *= 1.0 + PERTURBATION * (2.0 * u - 1.0);
    }
    p
}

/// The DES of `scenarios/small.csv` as the live run is set up, with this
/// profile, analysed like the live log.
fn simulate(
    events: &[protocol::ScenarioEvent],
    algorithm: &str,
    profile: &CostProfile,
    log: &Path,
) -> Analysis {
    let scheduler =
        policy::scheduler::SchedulerConfig::new(algorithm, [("seed", SEED.to_string())]).unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
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
    let mut f = std::io::BufWriter::new(std::fs::File::create(log).unwrap());
    run_scenario(events, &config, Some(&mut f)).unwrap();
    f.flush().unwrap();
    drop(f);
    analysis(log)
}

/// The profile with `cpu_scale` re-fitted so that the model's mean
/// `InternalExecutionTime` is within 2 % of `target_ms` (fixed-point steps
/// `cpu_scale *= target / model`: the internal time is affine in
/// `cpu_scale` with a non-negative intercept, the sleeps, so the steps
/// converge), and the factor applied.
fn fit_speed(
    events: &[protocol::ScenarioEvent],
    algorithm: &str,
    profile: &CostProfile,
    target_ms: f64,
    log: &Path,
) -> (CostProfile, f64) {
    let mut p = profile.clone();
    for _ in 0..8 {
        let internal = Metrics::of(&simulate(events, algorithm, &p, log)).internal_ms;
        if (internal / target_ms - 1.0).abs() <= 0.02 {
            break;
        }
        p.cpu_scale *= target_ms / internal;
    }
    let factor = p.cpu_scale / profile.cpu_scale;
    (p, factor)
}

/// The model at [`SWEEP`] machine speeds around `profile`'s: `cpu_scale`
/// times 2^(i/4) for i in -6..=6, about x0.35 to x2.8.
fn speed_sweep(
    events: &[protocol::ScenarioEvent],
    algorithm: &str,
    profile: &CostProfile,
    log: &Path,
) -> Vec<Metrics> {
    (-SWEEP..=SWEEP)
        .map(|i| {
            let mut p = profile.clone();
            p.cpu_scale *= 2f64.powf(f64::from(i) / 4.0);
            Metrics::of(&simulate(events, algorithm, &p, log))
        })
        .collect()
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
    let mut report = String::new();
    let mut failures = Vec::new();
    for algorithm in ALGORITHMS {
        let des_log = |name: &str| dir.path().join(format!("des-{algorithm}-{name}.log"));
        let des_internal = Metrics::of(&simulate(
            &events,
            algorithm,
            &profile,
            &des_log("calibrated"),
        ))
        .internal_ms;

        // One experiment per algorithm: fresh workers each time, so that no
        // run inherits the images built by the previous one. A live run in
        // which the balancer refused calls, or whose functions ran more
        // than DISTURBED times slower than calibrated (other load took the
        // shared machine's cores), is not a fair reference: it is repeated.
        // `ours` needs OURS_RUNS runs (its CV is a chaotic function of
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
            let internal = Metrics::of(&a).internal_ms;
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
        let live: Vec<Metrics> = fair.iter().map(|(a, _)| Metrics::of(a)).collect();
        let live_internal = mean_var(&live, |m| m.internal_ms).0;

        // The model: the calibrated profile re-fitted to the speed the
        // compared live runs had (module doc), simulated as an ensemble of
        // perturbed profiles.
        let (model, factor) =
            fit_speed(&events, algorithm, &profile, live_internal, &des_log("fit"));
        let line = format!(
            "{algorithm:>5} model re-fitted to the live runs' speed: cpu_scale x{factor:.2} ({live_internal:.1} ms live, {des_internal:.1} ms calibrated)\n"
        );
        eprint!("{line}");
        report.push_str(&line);
        let des: Vec<Metrics> = (0..=ENSEMBLE)
            .map(|k| {
                Metrics::of(&simulate(
                    &events,
                    algorithm,
                    &perturbed(&model, k),
                    &des_log(&k.to_string()),
                ))
            })
            .collect();
        report.push_str(&format!(
            "{algorithm:>5} (live: mean of {} run(s); des: mean of {} profiles; calls {}; mean internal ms {:.1} live, {:.1} des; mean overhead (duration - internal) ms {:.1} live, {:.1} des)\n",
            live.len(),
            des.len(),
            events.len(),
            live_internal,
            mean_var(&des, |m| m.internal_ms).0,
            mean_var(&live, |m| m.latency_ms).0,
            mean_var(&des, |m| m.latency_ms).0,
        ));
        let sweep = (algorithm == "ours")
            .then(|| speed_sweep(&events, algorithm, &model, &des_log("sweep")));
        for gap in gaps(&live, &des, sweep.as_deref()) {
            let mut line = gap.line(algorithm);
            if let Some((live, model)) = &gap.outcomes {
                line.push_str(&format!(
                    "\n{:>5} {:<16} live runs {}; model outcomes {}",
                    "",
                    "",
                    clusters(live, 0.0),
                    clusters(model, gap.tolerance / 2.0)
                ));
            }
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
        "outside tolerance and uncertainty:\n{}\nall:\n{report}",
        failures.join("\n")
    );
}
