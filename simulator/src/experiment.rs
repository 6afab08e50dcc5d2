//! `simulator experiment`: one command that compares load-balancing
//! algorithms end to end and writes a report.
//!
//! Live mode (default): starts `--workers` worker nodes (`worker-front`,
//! embedded process runtime by default, `--runtime docker` for containers)
//! as child processes on free loopback ports and waits for their `/health`;
//! then, for each algorithm (default all six: rr ll ch pasch ours
//! tradeoff), empties every worker (`GET /clear?reset_images=true`: no
//! images, no warm instances, so no algorithm inherits another's builds),
//! starts a fresh balancer (`load-balancer <alg> --nodes ... --seed S`),
//! replays the scenario in-process with [`crate::replay`], and stops the
//! balancer. `--set NAME=VALUE` passes the original's worker caching options
//! (`USING_REST_MODE`, ...) to the workers and its scheduler parameters
//! (`T`, `ALPHA`, ...) to the balancers. A fresh balancer per run keeps runs independent and
//! reproducible. Children run in their own process groups and are always
//! stopped, also on Ctrl-C or failure ([`children`]).
//!
//! DES mode (`--mode des`): the same scenario and algorithms through the
//! discrete-event simulator ([`crate::des::run_scenario`]), which writes
//! the same log format, so the same analysis and report follow. It uses the
//! live run's time scales and lets the simulated nodes share this host's
//! cores (`--machine-cores`), so a live and a DES report compare; for
//! clusters larger than one machine run `simulator des` directly.
//!
//! Then the logs are analysed with the `utils` crate (the original
//! analyzer's locality, imbalance CV and cache-hit metrics, plus
//! percentiles) and `results/<name>/` gets `report.md` (comparison table,
//! plots, the exact command, seed, versions, time scale), `summary.csv`,
//! `run.json` (every parameter and per-run summary), `logs/<alg>.log`,
//! `plots/*.png` and `process-logs/` (the children's output).
//!
//! Time scale: the default scenario (`scenarios/small.csv`, 30 s) is
//! replayed `--time-scale` times faster (`auto`, the default, picks the
//! scale that sends it in about `--target-seconds`, 6 s), and the
//! functions' work and sleeps are scaled by `HF_TIME_SCALE` =
//! `--load-factor` / time scale. A load factor of 1 keeps the scenario's
//! shape (the same calls overlap); the default 0.25 runs the functions 4x
//! shorter relative to the arrivals, because at 1.0 the small scenario asks
//! for about 3 cores and this machine has 2 for all 4 nodes. With release
//! binaries the whole default experiment takes about a minute; debug
//! binaries run the functions' CPU loops many times slower (use a smaller
//! `--load-factor`). Analysis slots are 1 s of *wall* time, so locality and
//! CV of a scaled run are comparable across algorithms, not with unscaled
//! runs. Every factor is recorded in the report.

pub mod children;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use policy::node::options::{self, CachingOptions};
use policy::scheduler::{canonical_name, registry, ParamSet, SchedulerConfig};
use protocol::ScenarioEvent;
use sample_functions::payload::{valid_package_scale, PACKAGE_SCALE_ENV};
use sample_functions::workload::TIME_SCALE_ENV;
use serde::Serialize;

use crate::replay::{self, parse_duration, ProgressMode, ReplayOptions, StopHandle, StopLevel};
use children::ChildProcess;

/// Default scenario of an experiment.
pub const DEFAULT_SCENARIO: &str = "scenarios/small.csv";

/// Why an experiment failed.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{path} not found: build it first with `{build}` (or pass --bin-dir)")]
    MissingBinary { path: PathBuf, build: String },
    #[error("cannot start {name} ({command}): {source}")]
    Spawn {
        name: String,
        command: String,
        source: std::io::Error,
    },
    #[error("{name} did not become healthy: {detail}")]
    Unhealthy { name: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("replay with {algorithm}: {source}")]
    Replay {
        algorithm: String,
        source: replay::ReplayError,
    },
    #[error(transparent)]
    Scenario(replay::ReplayError),
    #[error("discrete-event run with {algorithm}: {message}")]
    Des { algorithm: String, message: String },
    #[error("analysis: {0}")]
    Analysis(String),
    #[error("{0}")]
    BadArgument(String),
    #[error("resetting worker {url}: {detail}")]
    WorkerReset { url: String, detail: String },
    #[error("interrupted before any algorithm finished")]
    Interrupted,
}

/// Live (real processes) or discrete-event simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Live,
    Des,
}

/// The workers' runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerRuntime {
    Process,
    Docker,
}

impl WorkerRuntime {
    fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
        }
    }
}

/// `--time-scale`: a factor, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeScaleArg {
    Auto,
    Fixed(f64),
}

impl std::str::FromStr for TimeScaleArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Self::Fixed(v)),
            _ => Err(format!("expected `auto` or a number > 0, got {s:?}")),
        }
    }
}

/// Arguments of `simulator experiment`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Scenario CSV to replay.
    #[arg(long, default_value = DEFAULT_SCENARIO)]
    pub scenario: PathBuf,
    /// Name of the run: outputs go to <results-dir>/<name>/.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Parent directory of the run's outputs.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// Algorithms to compare, comma-separated (default: the registry's
    /// comparison set).
    #[arg(
        long,
        value_delimiter = ',',
        help = format!(
            "Algorithms to compare, comma-separated [default: {}] (known: {})",
            registry::default_algorithms().collect::<Vec<_>>().join(","),
            registry::known_algorithms()
        )
    )]
    pub algorithms: Vec<String>,
    /// Worker nodes.
    #[arg(long, default_value_t = 4)]
    pub workers: u32,
    /// Runtime of the workers (live mode).
    #[arg(long, value_enum, default_value_t = WorkerRuntime::Process)]
    pub runtime: WorkerRuntime,
    /// Live processes, or the discrete-event simulator.
    #[arg(long, value_enum, default_value_t = Mode::Live)]
    pub mode: Mode,
    /// Replay speed-up (`auto`: the scenario is sent in --target-seconds).
    #[arg(long, default_value = "auto")]
    pub time_scale: TimeScaleArg,
    /// With `--time-scale auto`: seconds to send one scenario in.
    #[arg(long, default_value_t = 6.0)]
    pub target_seconds: f64,
    /// Offered load relative to the scenario's: the functions run
    /// `load factor / time scale` of their catalog durations
    /// (`HF_TIME_SCALE`), so 1.0 keeps the scenario's overlap of calls and
    /// 0.25 runs them 4x shorter relative to the arrivals (the scenario
    /// needs about 3 cores at 1.0; this machine has 2 for 4 nodes).
    #[arg(long, default_value_t = 0.25)]
    pub load_factor: f64,
    /// HF_TIME_SCALE of the functions, overriding --load-factor.
    #[arg(long)]
    pub fn_time_scale: Option<f64>,
    /// HF_PACKAGE_SCALE of the workers (and of the DES): every package is
    /// this much of its catalog size, staged, loaded and counted by the
    /// image cache (1 = the original's sizes, up to 131 MB).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub package_scale: f64,
    /// Seed of the balancer's scheduler RNG (and of the DES).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only replay events starting before this scenario time (90s, 5m, ...).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Directory of the load-balancer and worker-front binaries
    /// [default: next to this executable].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// How long to wait for a child's /health.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub startup_timeout: Duration,
    /// Per-call timeout of the replay.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub request_timeout: Duration,
    /// Progress of each replay.
    #[arg(long, value_enum, default_value_t = ProgressMode::Lines)]
    pub progress: ProgressMode,
    /// Run the workers and balancers under `nice -n N` so the in-process
    /// replayer keeps a precise dispatch on a busy machine.
    #[arg(long)]
    pub child_nice: Option<i32>,
    /// Skip the plots (tables only).
    #[arg(long)]
    pub no_plots: bool,
    /// A worker caching option or scheduler parameter (repeatable): the
    /// worker's `USER_CODE_SIZE_LIMIT`, `CONTAINER_POOL_LIMIT`,
    /// `CONTAINER_POOL_NUM`, `USING_REST_MODE`, `REST_CONTAINER_LIFE_TIME`
    /// (given to every worker, and to the simulator in DES mode), or any
    /// key of the scheduler registry: a bare name (`T`, `T1`, `T2`, `T3`,
    /// `ALPHA`, `BETA`) or `<algorithm>.<NAME>` (`ch.T`), given to every
    /// balancer as `--param` and to the simulator. E.g. `--set
    /// USING_REST_MODE=true --set ch.T=4`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub settings: Vec<Setting>,
}

/// Worker caching options `--set` accepts (the original worker's names).
pub const WORKER_SETTINGS: &[&str] = &options::ENV_NAMES;

/// One `--set NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

impl Setting {
    /// True for a worker caching option, false for a scheduler parameter.
    pub fn is_worker_option(&self) -> bool {
        WORKER_SETTINGS.contains(&self.name.as_str())
    }
}

fn parse_setting(s: &str) -> Result<Setting, String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, found {s:?}"))?;
    let (name, value) = (name.trim(), value.trim());
    if value.is_empty() {
        return Err(format!("{name} needs a value"));
    }
    if WORKER_SETTINGS.contains(&name) {
        // The worker's own parser: the same values are accepted.
        CachingOptions::default()
            .set(name, value)
            .map_err(|e| e.to_string())?;
    } else if ParamSet::claims(name) {
        ParamSet::default()
            .set(name, value)
            .map_err(|e| e.to_string())?;
    } else {
        return Err(format!(
            "unknown setting {name:?}; known: {}, or a scheduler parameter ({})",
            WORKER_SETTINGS.join(", "),
            registry::param_names().join(", ")
        ));
    }
    Ok(Setting {
        name: name.to_string(),
        value: value.to_string(),
    })
}

/// One algorithm's run.
#[derive(Debug, Clone, Serialize)]
pub struct AlgorithmRun {
    pub algorithm: String,
    pub log: PathBuf,
    /// The replay summary (live mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<replay::ReplaySummary>,
    /// The simulator's summary (DES mode), as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub des: Option<serde_json::Value>,
    pub wall_time_s: f64,
}

/// Everything an experiment did, written as `run.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRecord {
    pub name: String,
    pub command: String,
    pub started_utc: String,
    pub mode: Mode,
    pub runtime: WorkerRuntime,
    pub scenario: PathBuf,
    pub scenario_events: usize,
    pub scenario_span_s: f64,
    pub workers: u32,
    pub algorithms: Vec<String>,
    pub seed: u64,
    /// Replay speed-up (1 in DES mode: virtual time).
    pub time_scale: f64,
    /// HF_TIME_SCALE given to the functions (live mode).
    pub fn_time_scale: f64,
    /// HF_PACKAGE_SCALE of the workers.
    pub package_scale: f64,
    pub duration_cap_s: Option<f64>,
    pub versions: Versions,
    /// Child processes started (live mode), all stopped at the end.
    pub children: Vec<ChildRecord>,
    pub runs: Vec<AlgorithmRun>,
    pub interrupted: bool,
    pub wall_time_s: f64,
    /// `--set` worker options and scheduler parameters.
    pub settings: Vec<Setting>,
    /// The workers' caching options, defaults included.
    pub worker: CachingOptions,
    /// Each algorithm with its resolved parameters and seed, defaults
    /// included.
    pub schedulers: Vec<SchedulerConfig>,
    /// DES mode: the cores of the one machine all simulated nodes share
    /// (the live testbed's host), so live and DES reports compare.
    pub machine_cores: Option<usize>,
}

/// A child process of a live run.
#[derive(Debug, Clone, Serialize)]
pub struct ChildRecord {
    pub name: String,
    pub pid: u32,
    pub url: String,
}

/// Versions of what ran.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub simulator: String,
    /// `git describe --always --dirty` of the working tree, if any.
    pub git: Option<String>,
    /// Build profile of the binaries (`debug`/`release`), live mode.
    pub binaries: Option<String>,
    pub bin_dir: Option<PathBuf>,
}

/// Where an experiment's outputs went.
#[derive(Debug, Clone)]
pub struct ExperimentOutcome {
    pub dir: PathBuf,
    pub record: ExperimentRecord,
}

/// The workers' caching options and the scheduler parameters (seed
/// included): the defaults with the `--set`s applied, in order.
fn resolve_settings(args: &Args) -> Result<(CachingOptions, ParamSet), ExperimentError> {
    let bad = |e: String| ExperimentError::BadArgument(e);
    let mut worker = CachingOptions::default();
    let mut params = ParamSet::from_settings([(registry::SEED, args.seed.to_string())])
        .map_err(|e| bad(e.to_string()))?;
    for s in &args.settings {
        if s.is_worker_option() {
            worker
                .set(&s.name, &s.value)
                .map_err(|e| bad(e.to_string()))?;
        } else {
            params
                .set(&s.name, &s.value)
                .map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok((worker, params))
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExperimentError {
    let what = what.into();
    move |source| ExperimentError::Io { what, source }
}

fn git_describe() -> Option<String> {
    let out = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The replay speed-up for a scenario.
pub fn resolve_time_scale(
    arg: TimeScaleArg,
    span: Duration,
    target_seconds: f64,
) -> Result<f64, ExperimentError> {
    match arg {
        TimeScaleArg::Fixed(v) => Ok(v),
        TimeScaleArg::Auto => {
            if !(target_seconds.is_finite() && target_seconds > 0.0) {
                return Err(ExperimentError::BadArgument(format!(
                    "--target-seconds must be > 0, got {target_seconds}"
                )));
            }
            // Round to 2 significant digits so the report shows a tidy value.
            let raw = (span.as_secs_f64() / target_seconds).max(1.0);
            let magnitude = 10f64.powf(raw.log10().floor() - 1.0);
            Ok((raw / magnitude).round() * magnitude)
        }
    }
}

/// Runs an experiment; `command` is recorded in the report.
pub async fn run_experiment(
    args: &Args,
    command: &str,
    stop: &StopHandle,
) -> Result<ExperimentOutcome, ExperimentError> {
    let started = Instant::now();
    let started_utc = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    if args.workers == 0 {
        return Err(ExperimentError::BadArgument(
            "--workers must be at least 1".into(),
        ));
    }
    if args.name.is_empty() || args.name.contains(['/', '\\']) || args.name.starts_with('.') {
        return Err(ExperimentError::BadArgument(format!(
            "--name {:?} must be a plain directory name",
            args.name
        )));
    }
    let mut algorithms = Vec::new();
    let given: Vec<&str> = if args.algorithms.is_empty() {
        registry::default_algorithms().collect()
    } else {
        args.algorithms.iter().map(|a| a.trim()).collect()
    };
    for a in given {
        let name = canonical_name(a).map_err(|e| ExperimentError::BadArgument(e.to_string()))?;
        if !algorithms.contains(&name) {
            algorithms.push(name);
        }
    }
    let (worker, params) = resolve_settings(args)?;
    let schedulers = algorithms
        .iter()
        .map(|a| params.scheduler(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExperimentError::BadArgument(e.to_string()))?;
    let events = replay::load_scenario(&args.scenario).map_err(ExperimentError::Scenario)?;
    let schedule_span = events.iter().map(|e| e.start_ms).max().unwrap_or(0);
    let capped_span = match args.duration {
        Some(d) => (schedule_span as u128).min(d.as_millis()) as u64,
        None => schedule_span,
    };
    let span = Duration::from_millis(capped_span);
    // DES mode uses the live run's scales, so that the two reports compare.
    let (time_scale, fn_time_scale) = match args.mode {
        Mode::Live | Mode::Des => {
            let ts = resolve_time_scale(args.time_scale, span, args.target_seconds)?;
            if !(args.load_factor.is_finite() && args.load_factor > 0.0) {
                return Err(ExperimentError::BadArgument(format!(
                    "--load-factor must be > 0, got {}",
                    args.load_factor
                )));
            }
            let fts = args.fn_time_scale.unwrap_or(args.load_factor / ts);
            if !(fts.is_finite() && fts > 0.0) {
                return Err(ExperimentError::BadArgument(format!(
                    "--fn-time-scale must be > 0, got {fts}"
                )));
            }
            (ts, fts)
        }
    };
    if !valid_package_scale(args.package_scale) {
        return Err(ExperimentError::BadArgument(format!(
            "--package-scale must be >= 0, got {}",
            args.package_scale
        )));
    }

    let dir = args.results_dir.join(&args.name);
    prepare_dir(&dir)?;

    let mut record = ExperimentRecord {
        name: args.name.clone(),
        command: command.to_string(),
        started_utc,
        mode: args.mode,
        runtime: args.runtime,
        scenario: args.scenario.clone(),
        scenario_events: events.len(),
        scenario_span_s: schedule_span as f64 / 1000.0,
        workers: args.workers,
        algorithms: algorithms.iter().map(|s| s.to_string()).collect(),
        seed: args.seed,
        time_scale,
        fn_time_scale,
        package_scale: args.package_scale,
        duration_cap_s: args.duration.map(|d| d.as_secs_f64()),
        versions: Versions {
            simulator: env!("CARGO_PKG_VERSION").to_string(),
            git: git_describe(),
            binaries: None,
            bin_dir: None,
        },
        children: Vec::new(),
        runs: Vec::new(),
        interrupted: false,
        settings: args.settings.clone(),
        worker,
        schedulers,
        machine_cores: (args.mode == Mode::Des).then(host_cores),
        wall_time_s: 0.0,
    };
    eprintln!(
        "experiment {}: {} ({} events, {:.1} s) on {} workers, {} mode, algorithms {}, time scale {}{}, seed {}",
        args.name,
        args.scenario.display(),
        events.len(),
        schedule_span as f64 / 1000.0,
        args.workers,
        match args.mode {
            Mode::Live => args.runtime.as_str(),
            Mode::Des => "simulated",
        },
        algorithms.join(","),
        time_scale,
        if args.mode == Mode::Live {
            format!(" (HF_TIME_SCALE {fn_time_scale:.4})")
        } else {
            String::new()
        },
        args.seed
    );

    let result = match args.mode {
        Mode::Live => run_live(args, &events, &algorithms, &dir, &mut record, stop).await,
        Mode::Des => run_des(args, &events, &algorithms, &dir, &mut record, stop),
    };
    record.interrupted = stop.level() != StopLevel::Run;
    record.wall_time_s = started.elapsed().as_secs_f64();
    if let Err(e) = result {
        if record.runs.is_empty() {
            return Err(e);
        }
        // Keep what finished: report it, then fail.
        eprintln!("experiment: error: {e}; writing the report of the finished runs");
        let _ = write_report(args, &dir, &record);
        return Err(e);
    }
    if record.runs.is_empty() {
        return Err(ExperimentError::Interrupted);
    }
    write_report(args, &dir, &record)?;
    Ok(ExperimentOutcome { dir, record })
}

/// Empties the run's generated outputs (logs, plots, report) so a rerun
/// does not mix with an older one.
fn prepare_dir(dir: &Path) -> Result<(), ExperimentError> {
    for sub in ["logs", "plots", "process-logs"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(io_err(format!("removing {}", p.display())))?;
        }
    }
    for file in ["report.md", "summary.csv", "run.json"] {
        let p = dir.join(file);
        if p.exists() {
            std::fs::remove_file(&p).map_err(io_err(format!("removing {}", p.display())))?;
        }
    }
    for sub in ["logs", "plots"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
    }
    Ok(())
}

async fn run_live(
    args: &Args,
    events: &[ScenarioEvent],
    algorithms: &[&str],
    dir: &Path,
    record: &mut ExperimentRecord,
    stop: &StopHandle,
) -> Result<(), ExperimentError> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => children::default_bin_dir().ok_or_else(|| {
            ExperimentError::BadArgument(
                "cannot find this executable's directory; pass --bin-dir".into(),
            )
        })?,
    };
    let balancer_bin = children::locate(&bin_dir, "load-balancer", "load-balancer")?;
    let worker_bin = children::locate(&bin_dir, "worker-front", "worker-front")?;
    if args.runtime == WorkerRuntime::Process {
        children::locate(&bin_dir, "hf-fn", "sample-functions")?;
    }
    record.versions.binaries = bin_dir.file_name().map(|n| n.to_string_lossy().to_string());
    // Relative to the working directory when inside it (portable run.json).
    record.versions.bin_dir = Some(
        std::env::current_dir()
            .ok()
            .and_then(|cwd| bin_dir.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| bin_dir.clone()),
    );
    if record.versions.binaries.as_deref() == Some("debug") {
        eprintln!(
            "experiment: note: debug binaries run the functions' CPU work many times slower; \
             for real numbers build with `cargo build --release --workspace` and run target/release/simulator"
        );
    }

    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| ExperimentError::BadArgument(format!("HTTP client: {e}")))?;
    let process_logs = dir.join("process-logs");

    // Workers, started once; each replay's GET /clear resets them.
    let mut workers: Vec<ChildProcess> = Vec::new();
    for i in 0..args.workers {
        let port = children::free_port()?;
        let mut cmd = Command::new(&worker_bin);
        cmd.arg("start")
            .arg(port.to_string())
            .args(["--host", "127.0.0.1", "--runtime", args.runtime.as_str()])
            .env("RUST_LOG", "warn")
            .env(TIME_SCALE_ENV, record.fn_time_scale.to_string())
            .env(PACKAGE_SCALE_ENV, record.package_scale.to_string());
        for s in args.settings.iter().filter(|s| s.is_worker_option()) {
            cmd.env(&s.name, &s.value);
        }
        let name = format!("worker-{i}");
        workers.push(ChildProcess::spawn(
            &name,
            cmd,
            format!("http://127.0.0.1:{port}"),
            &process_logs.join(format!("{name}.log")),
            args.child_nice,
        )?);
        record
            .children
            .push(child_record(&workers[workers.len() - 1]));
    }
    eprintln!(
        "experiment: started {} workers ({} runtime): {}",
        workers.len(),
        args.runtime.as_str(),
        workers
            .iter()
            .map(|w| w.url.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    for w in &mut workers {
        tokio::select! {
            r = w.wait_healthy(&client, args.startup_timeout) => r?,
            _ = stop.reached(StopLevel::Stop) => return Err(ExperimentError::Interrupted),
        }
    }
    let nodes = workers
        .iter()
        .map(|w| w.url.as_str())
        .collect::<Vec<_>>()
        .join(",");

    for (i, algorithm) in algorithms.iter().enumerate() {
        if stop.level() != StopLevel::Run {
            break;
        }
        let run_started = Instant::now();
        // Every algorithm starts from empty workers: no images, no warm
        // instances (the replay's /clear through the balancer keeps images,
        // which would hand later algorithms earlier ones' builds).
        for w in &workers {
            reset_worker(&client, &w.url).await?;
        }
        eprintln!(
            "[{}/{}] {algorithm}: starting the balancer",
            i + 1,
            algorithms.len()
        );
        let port = children::free_port()?;
        let mut cmd = Command::new(&balancer_bin);
        cmd.arg(algorithm)
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .args(["--nodes", &nodes])
            .args(["--seed", &args.seed.to_string()])
            .env("RUST_LOG", "warn");
        for s in args.settings.iter().filter(|s| !s.is_worker_option()) {
            cmd.args(["--param", &format!("{}={}", s.name, s.value)]);
        }
        let name = format!("balancer-{algorithm}");
        let mut balancer = ChildProcess::spawn(
            &name,
            cmd,
            format!("http://127.0.0.1:{port}"),
            &process_logs.join(format!("{name}.log")),
            args.child_nice,
        )?;
        record.children.push(child_record(&balancer));
        tokio::select! {
            r = balancer.wait_healthy(&client, args.startup_timeout) => r?,
            _ = stop.reached(StopLevel::Stop) => break,
        }
        let log = dir.join("logs").join(format!("{algorithm}.log"));
        let mut options = ReplayOptions::new(balancer.url.clone());
        options.time_scale = record.time_scale;
        options.duration = args.duration;
        options.request_timeout = args.request_timeout;
        options.progress = args.progress;
        options.label = format!("{}/{} {algorithm}", i + 1, algorithms.len());
        options.overwrite = true;
        let summary = replay::replay(events, &options, &log, stop)
            .await
            .map_err(|source| ExperimentError::Replay {
                algorithm: algorithm.to_string(),
                source,
            })?;
        balancer.stop(Duration::from_secs(5));
        eprintln!(
            "[{}/{}] {algorithm}: {} calls, {} ok, {} errors{} in {:.1} s (dispatch lag p99 {} us)",
            i + 1,
            algorithms.len(),
            summary.dispatched,
            summary.ok,
            summary.errors,
            if summary.interrupted {
                ", INTERRUPTED"
            } else {
                ""
            },
            run_started.elapsed().as_secs_f64(),
            summary.dispatch_lag_p99_us
        );
        let interrupted = summary.interrupted;
        record.runs.push(AlgorithmRun {
            algorithm: algorithm.to_string(),
            log: log.clone(),
            replay: Some(summary),
            des: None,
            wall_time_s: run_started.elapsed().as_secs_f64(),
        });
        if interrupted {
            break;
        }
    }
    // Workers are stopped by their Drop; do it here to report it.
    for w in &mut workers {
        w.stop(Duration::from_secs(5));
    }
    Ok(())
}

fn child_record(c: &ChildProcess) -> ChildRecord {
    ChildRecord {
        name: c.name.clone(),
        pid: c.pid(),
        url: c.url.clone(),
    }
}

fn run_des(
    args: &Args,
    events: &[ScenarioEvent],
    algorithms: &[&str],
    dir: &Path,
    record: &mut ExperimentRecord,
    stop: &StopHandle,
) -> Result<(), ExperimentError> {
    use std::io::Write as _;
    let mut workload = des::Workload::from_events(events);
    if let Some(cap) = args.duration {
        workload = workload.truncated(policy::Time::from_duration(cap));
    }
    let profile = crate::des::default_profile()
        .map_err(|e| ExperimentError::BadArgument(format!("{e:#}")))?;
    for (i, algorithm) in algorithms.iter().enumerate() {
        if stop.level() != StopLevel::Run {
            break;
        }
        let run_started = Instant::now();
        let des_err = |message: String| ExperimentError::Des {
            algorithm: algorithm.to_string(),
            message,
        };
        let scheduler = record
            .schedulers
            .iter()
            .find(|c| c.name() == *algorithm)
            .cloned()
            .ok_or_else(|| des_err("no resolved scheduler configuration".into()))?;
        let config = des::DesConfig {
            scheduler,
            nodes: args.workers,
            cores: profile.cores.max(1),
            machine_cores: record.machine_cores.map(|c| c as u32),
            worker: record.worker,
            profile: profile.clone(),
            time_scale: record.time_scale,
            fn_time_scale: record.fn_time_scale,
            package_scale: record.package_scale,
            ..des::DesConfig::default()
        };
        let log = dir.join("logs").join(format!("{algorithm}.log"));
        let file =
            std::fs::File::create(&log).map_err(io_err(format!("creating {}", log.display())))?;
        let mut out = std::io::BufWriter::new(file);
        let summary = crate::des::simulate(&workload, &config, Some(&mut out), true)
            .map_err(|e| des_err(format!("{e:#}")))?;
        out.flush()
            .map_err(io_err(format!("writing {}", log.display())))?;
        eprintln!(
            "[{}/{}] {algorithm}: {} calls simulated in {:.2} s",
            i + 1,
            algorithms.len(),
            workload.arrivals.len(),
            run_started.elapsed().as_secs_f64()
        );
        record.runs.push(AlgorithmRun {
            algorithm: algorithm.to_string(),
            log,
            replay: None,
            des: serde_json::to_value(&summary).ok(),
            wall_time_s: run_started.elapsed().as_secs_f64(),
        });
    }
    Ok(())
}

/// Analyses the logs and writes report.md, summary.csv, run.json and plots.
fn write_report(args: &Args, dir: &Path, record: &ExperimentRecord) -> Result<(), ExperimentError> {
    use utils::{analyze, compare::Comparison, logs::RunLog, plot};
    let mut runs = Vec::new();
    let mut analyses = Vec::new();
    for r in &record.runs {
        let log = RunLog::read(&r.log).map_err(|e| ExperimentError::Analysis(e.to_string()))?;
        let options = analyze::AnalyzeOptions {
            nodes: Some(record.workers as usize),
            label: Some(r.algorithm.clone()),
            ..Default::default()
        };
        let a = analyze::analyze(&log, &options)
            .map_err(|e| ExperimentError::Analysis(format!("{}: {e}", r.log.display())))?;
        analyses.push(a);
        runs.push(log);
    }
    let table = Comparison::new(&analyses);
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(io_err(format!("writing {}", p.display())))
    };
    write("summary.csv", table.to_csv())?;
    write(
        "run.json",
        serde_json::to_string_pretty(record).unwrap_or_default() + "\n",
    )?;

    let mut plots: Vec<(String, String)> = Vec::new();
    let mut plot_errors = Vec::new();
    if !args.no_plots {
        let mut try_plot = |file: &str, title: String, r: Result<(), plot::PlotError>| match r {
            Ok(()) => plots.push((title, format!("plots/{file}"))),
            Err(e) => plot_errors.push(format!("{file}: {e}")),
        };
        let p = dir.join("plots");
        try_plot(
            "comparison.png",
            "Algorithms compared".into(),
            plot::comparison_bars(&table, &p.join("comparison.png")),
        );
        let labelled: Vec<(String, &RunLog)> = record
            .runs
            .iter()
            .map(|r| r.algorithm.clone())
            .zip(&runs)
            .collect();
        try_plot(
            "latency-cdf.png",
            "Latency CDF (duration - InternalExecutionTime)".into(),
            plot::latency_cdf(
                &labelled,
                plot::CdfMetric::Latency,
                &p.join("latency-cdf.png"),
            ),
        );
        for (r, log) in record.runs.iter().zip(&runs) {
            let file = format!("timeline-{}.png", r.algorithm);
            let options = plot::TimelineOptions {
                title: Some(format!("{}: running functions per node", r.algorithm)),
                nodes: Some(record.workers as usize),
                ..Default::default()
            };
            try_plot(
                &file,
                format!("Timeline, {}", r.algorithm),
                plot::timeline(log, &p.join(&file), &options),
            );
        }
        for e in &plot_errors {
            eprintln!("experiment: warning: plot {e}");
        }
    }
    write(
        "report.md",
        report_markdown(record, &table.to_markdown(), &plots, &plot_errors),
    )?;
    Ok(())
}

/// The build and run commands that regenerate a live run.
fn reproduce_command(record: &ExperimentRecord) -> Option<String> {
    let args = record.command.strip_prefix("simulator")?;
    match record.mode {
        Mode::Des => Some(format!("cargo run --release -p simulator --{args}")),
        Mode::Live => {
            let release = record.versions.binaries.as_deref() == Some("release");
            let profile = if release { "release" } else { "debug" };
            Some(format!(
                "cargo build{} -p simulator -p load-balancer -p worker-front -p sample-functions && target/{profile}/simulator{args}",
                if release { " --release" } else { "" }
            ))
        }
    }
}

fn report_markdown(
    record: &ExperimentRecord,
    table: &str,
    plots: &[(String, String)],
    plot_errors: &[String],
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Experiment `{}`\n", record.name);
    if record.interrupted {
        let _ = writeln!(
            o,
            "**INTERRUPTED**: only the runs below finished (the last one may be partial).\n"
        );
    }
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| Command | `{}` |", record.command);
    if let Some(reproduce) = reproduce_command(record) {
        let _ = writeln!(o, "| Reproduce | `{reproduce}` (from the workspace root) |");
    }
    let _ = writeln!(o, "| Started | {} |", record.started_utc);
    let _ = writeln!(
        o,
        "| Scenario | `{}`: {} events over {:.1} s |",
        record.scenario.display(),
        record.scenario_events,
        record.scenario_span_s
    );
    let _ = writeln!(
        o,
        "| Mode | {} |",
        match record.mode {
            Mode::Live => format!(
                "live: {} `worker-front` nodes ({} runtime), one fresh `load-balancer` per algorithm",
                record.workers,
                record.runtime.as_str()
            ),
            Mode::Des => format!(
                "discrete-event simulation (`simulator des`), {} nodes, virtual time",
                record.workers
            ),
        }
    );
    if let Some(cores) = record.machine_cores {
        let _ = writeln!(
            o,
            "| Machine | the simulated nodes share {cores} cores, as the live testbed's one host |"
        );
    }
    if !record.settings.is_empty() {
        let list: Vec<String> = record
            .settings
            .iter()
            .map(|s| format!("`{}={}`", s.name, s.value))
            .collect();
        let _ = writeln!(o, "| Settings | {} |", list.join(", "));
    }
    {
        let _ = writeln!(
            o,
            "| Time scale | replay x{} (events sent {} times faster); functions `HF_TIME_SCALE={:.4}`, \
             so the offered load is {:.2}x the scenario's |",
            record.time_scale,
            record.time_scale,
            record.fn_time_scale,
            record.fn_time_scale * record.time_scale
        );
    }
    if record.package_scale != 1.0 {
        let _ = writeln!(
            o,
            "| Package scale | `HF_PACKAGE_SCALE={}`: packages are that much of the original's sizes |",
            record.package_scale
        );
    }
    if let Some(cap) = record.duration_cap_s {
        let _ = writeln!(o, "| Duration cap | first {cap} s of the scenario |");
    }
    let _ = writeln!(o, "| Seed | {} (scheduler RNG) |", record.seed);
    let _ = writeln!(
        o,
        "| Versions | simulator {}, git {}{} |",
        record.versions.simulator,
        record.versions.git.as_deref().unwrap_or("unknown"),
        record
            .versions
            .binaries
            .as_ref()
            .map(|b| format!(", {b} binaries"))
            .unwrap_or_default()
    );
    let _ = writeln!(o, "| Wall time of the runs | {:.1} s |", record.wall_time_s);

    let _ = writeln!(o, "\n## Comparison\n");
    let _ = writeln!(o, "{}", table.trim_end());
    let _ = writeln!(
        o,
        "\nLocality: distinct functions per node per 1-s slot (lower: each node serves fewer functions, \
         so caches hit more). CV: coefficient of variation of the per-node executions per slot \
         (lower: better balance). Latency = call duration - InternalExecutionTime. Metrics as in \
         the original HotFunctions analyzer; error lines are skipped (counted in the table)."
    );
    if record.mode == Mode::Live && record.time_scale != 1.0 {
        let _ = writeln!(
            o,
            "Slots are 1 s of wall time: with time scale {} a slot spans {} s of scenario time, so \
             compare these numbers across algorithms, not with unscaled runs.",
            record.time_scale, record.time_scale
        );
    }

    if record.mode == Mode::Live {
        let _ = writeln!(o, "\n## Replays\n");
        let _ = writeln!(
            o,
            "| algorithm | sent | ok | errors | cancelled | replay wall s | dispatch lag p50 / p99 (us) | response p50 / p99 (ms) |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        for r in &record.runs {
            if let Some(s) = &r.replay {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {:.1} | {} / {} | {} / {} |",
                    r.algorithm,
                    s.dispatched,
                    s.ok,
                    s.errors,
                    s.cancelled,
                    s.wall_time_s,
                    s.dispatch_lag_p50_us,
                    s.dispatch_lag_p99_us,
                    s.response_p50_ms,
                    s.response_p99_ms
                );
            }
        }
    }

    if !plots.is_empty() || !plot_errors.is_empty() {
        let _ = writeln!(o, "\n## Plots\n");
        for (title, path) in plots {
            let _ = writeln!(o, "### {title}\n\n![{title}]({path})\n");
        }
        for e in plot_errors {
            let _ = writeln!(o, "- plot failed: {e}");
        }
    }

    let _ = writeln!(o, "\n## Files\n");
    let _ = writeln!(
        o,
        "- `summary.csv`: the comparison table\n- `run.json`: every parameter and per-run summary\n- `logs/<algorithm>.log`: the replay logs (original HotFunctions format; `utils analyze` reads them)"
    );
    if record.mode == Mode::Live {
        let _ = writeln!(o, "- `process-logs/`: output of the workers and balancers");
    }
    let _ = writeln!(o, "- `plots/`: the figures above");
    o
}

/// Runs `simulator experiment`.
pub fn run(args: Args) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let command = std::iter::once("simulator".to_string())
        .chain(std::env::args().skip(1))
        .map(|a| {
            if a.contains([' ', '"', '\'']) {
                format!("{a:?}")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let stop = StopHandle::new();
        stop.stop_on_ctrl_c();
        run_experiment(&args, &command, &stop).await
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(ExperimentError::Interrupted) => {
            eprintln!("experiment: interrupted before any algorithm finished; children stopped");
            std::process::exit(130);
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "experiment {}: {} runs in {:.1} s{}; report: {}",
        outcome.record.name,
        outcome.record.runs.len(),
        outcome.record.wall_time_s,
        if outcome.record.interrupted {
            " (INTERRUPTED)"
        } else {
            ""
        },
        outcome.dir.join("report.md").display()
    );
    if outcome.record.interrupted {
        std::process::exit(130);
    }
    Ok(())
}

/// Cores of this host (the live testbed's one machine).
fn host_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Empties a worker: `GET /clear?reset_images=true` (instances and images).
async fn reset_worker(client: &reqwest::Client, url: &str) -> Result<(), ExperimentError> {
    let target = format!("{url}/clear?reset_images=true");
    let failed = |detail: String| ExperimentError::WorkerReset {
        url: url.to_string(),
        detail,
    };
    let response = client
        .get(&target)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(failed(format!("{status}: {body}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_time_scale_targets_the_span() {
        let s = |secs, target| {
            resolve_time_scale(TimeScaleArg::Auto, Duration::from_secs(secs), target).unwrap()
        };
        assert_eq!(s(60, 6.0), 10.0);
        assert_eq!(s(300, 6.0), 50.0);
        assert_eq!(s(5, 6.0), 1.0, "never slower than real time");
        assert_eq!(s(77, 6.0), 13.0, "two significant digits");
        assert_eq!(
            resolve_time_scale(TimeScaleArg::Fixed(2.5), Duration::from_secs(60), 6.0).unwrap(),
            2.5
        );
        assert!(resolve_time_scale(TimeScaleArg::Auto, Duration::ZERO, 0.0).is_err());
    }

    #[test]
    fn time_scale_argument_parses() {
        assert_eq!("auto".parse::<TimeScaleArg>(), Ok(TimeScaleArg::Auto));
        assert_eq!("4".parse::<TimeScaleArg>(), Ok(TimeScaleArg::Fixed(4.0)));
        assert!("0".parse::<TimeScaleArg>().is_err());
        assert!("fast".parse::<TimeScaleArg>().is_err());
    }
}
