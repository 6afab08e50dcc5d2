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
//! (`USING_REST_MODE`, ...) to the workers and scheduler parameters (`T`,
//! `ch.T`, ...) to the balancers. The workers get every caching option
//! explicitly, as resolved and recorded (environment variables of the same
//! names in the experiment's own environment do not reach them), and
//! `--function-sched` (how they schedule their function processes); none
//! of the worker's other environment settings reach them either
//! ([`children::scrub_worker_env`]), and each worker's `/health` is
//! checked against the record before the first run. Work areas that a
//! worker killed after its grace period left are removed at the end
//! ([`children::remove_work_areas`]). A fresh balancer per run keeps runs
//! independent and reproducible. Children run in their own process groups
//! and are always stopped, also on Ctrl-C, SIGTERM, SIGHUP or failure
//! ([`children`]); the three signals are one stop
//! ([`StopHandle::stop_on_signals`]): the run in progress is cut, the
//! children are stopped and the report marks the experiment INTERRUPTED
//! (exit status 130).
//!
//! DES mode (`--mode des`): the same scenario and algorithms through the
//! discrete-event simulator (the `des` crate), which writes the same log
//! format, so the same analysis and report follow. It uses the live run's
//! time scales. Each simulated node has its own `--node-cores` (default:
//! the cost profile's, 2), never the host's; `--machine-cores N` instead
//! models nodes that share one machine of N cores, as the live testbed's
//! workers share this host. Either is recorded, so a DES report is the same
//! on any machine.
//!
//! # Closed-loop load
//! `--clients N --duration D` (with `simulator load`'s `--functions`,
//! `--think`/`--think-ms`, `--names`, `--grace`, parsed by its own
//! [`crate::load::MixArgs`], and `--load-seed`, which is `simulator load
//! --seed` and `simulator des --load-seed`) replaces the scenario with a
//! closed loop: N clients, each sending its next call when its last one
//! returns. Live, each run is [`crate::load::load`] against the run's
//! fresh balancer; in DES mode it is the same loop on the virtual clock
//! ([`des::run_closed_loop`]): a simulated client calls the same functions
//! as the live client of the same seed and index. The loop runs in real
//! time (no `--time-scale`); the functions run at `--fn-time-scale`, else
//! `--load-factor`, of their durations. Repetition k uses load seed + k
//! (and scheduler seed + k), so repeats draw other function sequences; the
//! report adds a "Closed loop" table (throughput, latency, cold starts,
//! failed and cancelled calls, mean ± 95 % CI), `summary.csv` and
//! `runs.csv` add throughput and cancelled calls, `run.json` records every
//! load parameter (`closed_loop`) and each run's load seed and summary, and
//! each log's sidecar has `extra.load` as `simulator load` writes it. A
//! scenario (`--scenario`, `--time-scale`, `--target-seconds`) together
//! with closed-loop options is an error, on the command line or in the
//! file. `--clients 20,50,100` (or `clients = "20,50,100"` in the file)
//! runs stages of `--duration` each, back to back (k6's `stages`, rules
//! in `des::source`); each run's summary then has per-stage figures. With
//! `--cluster` the loop runs against the cluster's balancer, with its
//! management token for the first `/clear`.
//!
//! # Repetitions, sweeps, the experiment file
//! `--repeat N` runs every algorithm N times (repetition k with seed
//! `--seed` + k, recorded), interleaved (rr, ch, ..., then again), so slow
//! drifts of the machine touch every algorithm alike; the report gives the
//! mean and 95 % confidence interval of every metric ([`utils::stats`]);
//! a metric over successful calls leaves out a run that had none (its
//! cells and `summary.csv`'s `runs_with_ok_calls` say so), and
//! repetitions that came out identical are named under the table.
//! `--sweep NAME=V1,V2,...` repeats the whole comparison for each value of
//! one parameter (a worker option, a scheduler parameter, `workers`,
//! `load_factor`, `package_scale`, and in DES mode `node_cores`,
//! `machine_cores`, which live workers would ignore), with one
//! table and one plot per metric against the swept value. Every point is
//! checked before the first run starts: a value given twice (which would
//! write one log twice), a cluster beyond its mode's limit (the
//! balancer's 10,000 nodes live, the simulator's 100,000), and, in DES
//! mode, anything the simulator would refuse, under every algorithm, so a
//! sweep never fails half-way on a value it could have refused. `--file
//! exp.toml` reads all of it from an experiment file ([`spec`]); the run
//! writes the resolved file as `experiment.toml`, which reproduces it,
//! with the digests of its inputs: a run from it on changed inputs says
//! so ([`InputDigests`]).
//!
//! # The cost profile's uncertainty (DES mode)
//! The simulated costs are a calibration's, itself a measurement with a
//! spread (`des::Spread`). `--profile-variants N` simulates every
//! algorithm at every point again, with the first repetition's seed, on N
//! variants of the profile ([`des::CostProfile::variant`]: each figure
//! with a recorded spread moved within its value ± its uncertainty, by a
//! fixed sequence, so variant k is the same in every run), without logs;
//! the report's "Sensitivity to the cost profile" gives each algorithm's
//! mean and p99 latency, cold starts and failures on the profile with
//! their range over the variants, and says whether the ranking by mean
//! latency holds on every variant (in bold when it does not); `run.json`'s
//! `profile_variants` holds every figure. A profile with no spread is
//! refused (nothing to vary), as is the option in live mode.
//!
//! # Noise
//! Live runs record the host and, per run, the machine's CPU use by other
//! processes, CPU steal, load average and the replay's dispatch lag, and
//! mark a run **disturbed** by the rule in [`host`]; `--strict` fails the
//! experiment when a run is disturbed, `--retry-disturbed N` reruns it.
//!
//! # Outputs
//! The logs are analysed with the `utils` crate (the original analyzer's
//! locality, imbalance CV and cache-hit metrics, plus percentiles and
//! failed calls by cause) and `results/<name>/` gets `report.md`,
//! `summary.csv` (one row per algorithm, or per algorithm and swept value
//! with means and CIs when runs repeat), `runs.csv` (one row per run),
//! `run.json` (every parameter, per-run summaries and noise figures),
//! `experiment.toml`, `profile-variants.csv` (with `--profile-variants`),
//! `logs/<run>.log` with their `.meta.json` sidecars, `plots/` and
//! `process-logs/` (the children's output). An existing
//! run's outputs are never replaced without `--overwrite`, and a run holds
//! its directory's lock (`crate::claim_output_dir`) from before it looks
//! at it until it ends: a second run into it is refused, even with
//! `--overwrite`.
//!
//! # Time scale
//! The default scenario (`scenarios/small.csv`, 30 s) is replayed
//! `--time-scale` times faster (`auto`, the default, picks the scale that
//! sends it in about `--target-seconds`, 6 s), and the functions' work and
//! sleeps are scaled by `HF_TIME_SCALE` = `--load-factor` / time scale. A
//! load factor of 1 keeps the scenario's shape (the same calls overlap);
//! the default 0.25 runs the functions 4x shorter relative to the arrivals,
//! because at 1.0 the small scenario asks for about 3 cores and this
//! machine has 2 for all 4 nodes. Analysis slots are 1 s of *wall* time, so
//! locality and CV of a scaled run are comparable across algorithms, not
//! with unscaled runs. Every factor is recorded in the report.

pub mod children;
pub mod cluster;
pub mod host;
mod live;
mod report;
mod runs;
pub mod spec;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use policy::node::keep_alive_policy::{choose_instance_model, parse_lambda};
use policy::node::options::{self, CachingOptions};
use policy::node::{InstanceModel, KeepAlivePolicy};
use policy::scheduler::{canonical_name, registry, NodeInfo, ParamSet, SchedulerConfig};
use protocol::sidecar::{Cluster, GitRevision, RunSidecar};
use protocol::ScenarioEvent;
use sample_functions::payload::{valid_package_scale, PACKAGE_SCALE_ENV};
use sample_functions::workload::TIME_SCALE_ENV;
use serde::{Deserialize, Serialize};
use utils::stats::Estimate;
use worker_front::runtime::spawn::FunctionSched;

use crate::des::InstanceModelArg;
use crate::load::{ClosedLoop, LoadSummary};
use crate::replay::{self, parse_duration, ProgressMode, ReplayOptions, StopHandle, StopLevel};
use children::ChildProcess;
use host::{CpuSample, HostInfo, Noise, Thresholds};
use spec::{ExperimentFile, Scalar, Sweep, TimeScaleValue};

/// Default scenario of an experiment.
pub const DEFAULT_SCENARIO: &str = "scenarios/small.csv";

/// Default `--package-scale` of an experiment: with full-size packages the
/// default experiment writes more than this machine's fast memory holds,
/// and rr's mean latency drifted from 50 to 35 ms over five quiet runs
/// (±22 %); at a quarter every algorithm stayed within ±8 %.
pub const DEFAULT_PACKAGE_SCALE: f64 = 0.25;

/// At most this many variants of the cost profile (`--profile-variants`).
pub const MAX_PROFILE_VARIANTS: u32 = 64;

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
    #[error("closed loop with {algorithm}: {source}")]
    Load {
        algorithm: String,
        source: crate::load::LoadError,
    },
    #[error(transparent)]
    Scenario(replay::ReplayError),
    #[error("discrete-event run with {algorithm}: {message}")]
    Des { algorithm: String, message: String },
    #[error("analysis: {0}")]
    Analysis(String),
    #[error("{0}")]
    BadArgument(String),
    #[error(transparent)]
    File(#[from] spec::FileError),
    #[error(
        "{dir} holds the outputs of an earlier run ({found}); pass --overwrite to replace them, or choose another --name"
    )]
    WouldOverwrite { dir: PathBuf, found: String },
    #[error(
        "{dir} is being written by another run (it holds the directory's lock); wait for it to end, or choose another --name or --results-dir"
    )]
    InUse { dir: PathBuf },
    #[error("resetting worker {url}: {detail}")]
    WorkerReset { url: String, detail: String },
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("interrupted before any algorithm finished")]
    Interrupted,
    #[error("{0} of the runs were disturbed (--strict); see the report's Noise section")]
    Disturbed(usize),
}

/// Live (real processes) or discrete-event simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Live,
    Des,
}

/// The workers' runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
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

/// Arguments of `simulator experiment`. The options that define the
/// experiment have no clap default: a value given here overrides the
/// `--file`'s, and a value given nowhere takes the default named in its
/// help.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Experiment file (TOML; see `simulator/src/experiment/spec.rs` or the
    /// `experiment.toml` of an earlier run): flags given here override it.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Scenario CSV to replay [default: scenarios/small.csv].
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// A catalog file of more functions (e.g. `utils import`'s
    /// `<scenario>.catalog.csv`) given to every worker (`worker-front
    /// --catalog`), or to the simulator in DES mode; a scenario's per-call
    /// durations and memory travel with its calls.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Name of the run: outputs go to `<results-dir>/<name>/` [default:
    /// default].
    #[arg(long)]
    pub name: Option<String>,
    /// Parent directory of the run's outputs.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// Replace the outputs of an earlier run of the same name.
    #[arg(long)]
    pub overwrite: bool,
    /// Algorithms to compare, comma-separated, or `all` (default: the
    /// registry's comparison set).
    #[arg(
        long,
        value_delimiter = ',',
        help = format!(
            "Algorithms to compare, comma-separated, or `all` for every registered one [default: {}] (known: {})",
            registry::default_algorithms().collect::<Vec<_>>().join(","),
            registry::known_algorithms()
        )
    )]
    pub algorithms: Vec<String>,
    /// Worker nodes [default: 4].
    #[arg(long)]
    pub workers: Option<u32>,
    /// Runtime of the workers (live mode) [default: process].
    #[arg(long, value_enum)]
    pub runtime: Option<WorkerRuntime>,
    /// How the workers schedule their function processes (live mode,
    /// process runtime; the workers' `--function-sched`): normal
    /// (SCHED_OTHER) or batch (SCHED_BATCH) [default: normal]. Set for
    /// every worker the experiment starts (never taken from the
    /// environment), checked on every node it runs on, and recorded.
    #[arg(long, value_name = "normal|batch")]
    pub function_sched: Option<FunctionSched>,
    /// Live mode on a cluster instead of local processes: `compose` (the
    /// experiment's own Docker Compose project of `--workers` containers,
    /// from deploy/compose) or the URL of a running balancer
    /// (`http://host:8111`, with HF_MGMT_TOKEN set to its management
    /// token). See `simulator/src/experiment/cluster.rs`.
    #[arg(long)]
    pub cluster: Option<String>,
    /// `--cluster compose`: CPUs of each worker container [default: 1].
    #[arg(long)]
    pub worker_cpus: Option<f64>,
    /// `--cluster compose`: memory limit of each worker container
    /// [default: 1g].
    #[arg(long)]
    pub worker_memory: Option<String>,
    /// `--cluster compose`: the Compose file [default:
    /// deploy/compose/docker-compose.yml].
    #[arg(long)]
    pub compose_file: Option<PathBuf>,
    /// `--cluster compose`: tag of the images hotfunctions/load-balancer
    /// and hotfunctions/worker (deploy/build-images.sh) [default: dev].
    #[arg(long)]
    pub image_tag: Option<String>,
    /// Live processes, or the discrete-event simulator [default: live].
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Runs per algorithm (and per swept value), with seeds seed, seed+1,
    /// ...; the report gives means and 95 % confidence intervals
    /// [default: 1].
    #[arg(long)]
    pub repeat: Option<u32>,
    /// Sweep one parameter: NAME=V1,V2,... (a worker option, a scheduler
    /// parameter such as ch.T, or workers, load_factor, package_scale,
    /// node_cores, machine_cores).
    #[arg(long, value_parser = Sweep::parse)]
    pub sweep: Option<Sweep>,
    /// Replay speed-up (`auto`: the scenario is sent in --target-seconds)
    /// [default: auto].
    #[arg(long)]
    pub time_scale: Option<TimeScaleArg>,
    /// With `--time-scale auto`: seconds to send one scenario in
    /// [default: 6].
    #[arg(long)]
    pub target_seconds: Option<f64>,
    /// Offered load relative to the scenario's: the functions run
    /// `load factor / time scale` of their catalog durations
    /// (`HF_TIME_SCALE`), so 1.0 keeps the scenario's overlap of calls and
    /// 0.25 runs them 4x shorter relative to the arrivals (the scenario
    /// needs about 3 cores at 1.0; this machine has 2 for 4 nodes)
    /// [default: 0.25].
    #[arg(long)]
    pub load_factor: Option<f64>,
    /// HF_TIME_SCALE of the functions, overriding --load-factor.
    #[arg(long)]
    pub fn_time_scale: Option<f64>,
    /// HF_PACKAGE_SCALE of the workers (and of the DES): every package is
    /// this much of its catalog size (1 = the original's sizes, up to 131
    /// MB). The default 0.25 keeps the packages written by a run within the
    /// memory this 2-core machine writes at full speed, so runs repeat
    /// (README, "Numbers you can trust") [default: 0.25].
    #[arg(long, allow_negative_numbers = true)]
    pub package_scale: Option<f64>,
    /// Seed of the balancer's scheduler RNG and of the DES; repetition k
    /// uses seed + k [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// A scenario: only replay events starting before this scenario time;
    /// a closed loop (--clients): how long the clients start new calls
    /// (90s, 5m, ...).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Closed loop instead of a scenario, as `simulator load` and
    /// `simulator des --clients`: this many clients (1..=10000), each
    /// sending its next call when its last one returns (after the think
    /// time), for --duration; or stages, e.g. 20,50,100 (--duration each).
    #[arg(
        long,
        conflicts_with_all = ["scenario", "time_scale", "target_seconds"],
        help_heading = "Closed loop (as simulator load)"
    )]
    pub clients: Option<String>,
    #[command(flatten, next_help_heading = "Closed loop (as simulator load)")]
    pub mix: crate::load::MixArgs,
    /// Seed of the clients' function choices and think times (`simulator
    /// load --seed`); repetition k uses load seed + k [default: 1].
    #[arg(
        long,
        requires = "clients",
        help_heading = "Closed loop (as simulator load)"
    )]
    pub load_seed: Option<u64>,
    /// After --duration, how long calls in flight may finish before they
    /// are cancelled (logged as errors) [default: 30s].
    #[arg(long, value_parser = parse_duration, requires = "clients", help_heading = "Closed loop (as simulator load)")]
    pub grace: Option<Duration>,
    /// DES mode: cores of each simulated node [default: the cost
    /// profile's].
    #[arg(long)]
    pub node_cores: Option<u32>,
    /// DES mode: the simulated nodes share one machine of this many cores
    /// (the live testbed's workers share its host) instead of
    /// --node-cores each.
    #[arg(long, conflicts_with = "node_cores")]
    pub machine_cores: Option<u32>,
    /// Instance model of the workers and of the simulated nodes
    /// [default: hotfunctions; lambda when a keep-alive policy or a
    /// keep-alive is given].
    #[arg(long, value_enum)]
    pub instance_model: Option<InstanceModelArg>,
    /// Keep-alive policy of the Lambda model: fixed, lru, greedy-dual,
    /// histogram, ewma (the README's table) [default: fixed].
    #[arg(long)]
    pub keep_alive_policy: Option<KeepAlivePolicy>,
    /// Keep-alive of idle instances in the Lambda model, in seconds
    /// [default: 600].
    #[arg(long)]
    pub keep_alive_s: Option<f64>,
    /// Memory of each node for function instances, in MB: the workers'
    /// and simulated nodes' limit (lru, greedy-dual), told to the
    /// schedulers by the balancer [default: 2048].
    #[arg(long)]
    pub node_memory_mb: Option<u32>,
    /// Live mode: run a disturbed run again, up to N times [default: 0].
    #[arg(long)]
    pub retry_disturbed: Option<u32>,
    /// DES mode: also simulate every algorithm at every point (the first
    /// repetition's seed) on N variants of the cost profile, each figure
    /// moved within its recorded spread; the report gives each metric's
    /// range over them and says whether the algorithms' ranking holds
    /// (0-64) [default: 0].
    #[arg(long)]
    pub profile_variants: Option<u32>,
    /// Live mode: fail (exit status 3) if a run is disturbed, after
    /// writing the report.
    #[arg(long)]
    pub strict: bool,
    /// Directory of the load-balancer and worker-front binaries
    /// [default: next to this executable].
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// How long to wait for a child's /health.
    #[arg(long, value_parser = crate::replay::parse_timeout, default_value = "60s")]
    pub startup_timeout: Duration,
    /// Per-call timeout of the replay.
    #[arg(long, value_parser = crate::replay::parse_timeout, default_value = "5m")]
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
    check_setting(name.trim(), value.trim())
}

/// Checks one setting with the parser of its owner (worker or registry).
fn check_setting(name: &str, value: &str) -> Result<Setting, String> {
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

/// The experiment, every value resolved (file, then flags, then defaults).
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub results_dir: PathBuf,
    pub mode: Mode,
    pub scenario: PathBuf,
    /// The workers' (or the simulator's) `--catalog`.
    pub catalog: Option<PathBuf>,
    pub algorithms: Vec<&'static str>,
    pub workers: u32,
    pub runtime: WorkerRuntime,
    /// Live mode, process runtime: how the workers schedule their
    /// function processes.
    pub function_sched: FunctionSched,
    /// Live mode: the nodes are a cluster's, not local processes.
    pub cluster: Option<cluster::ClusterPlan>,
    pub seed: u64,
    pub repeat: u32,
    pub time_scale: TimeScaleArg,
    pub target_seconds: f64,
    pub load_factor: f64,
    pub fn_time_scale: Option<f64>,
    pub package_scale: f64,
    pub duration: Option<Duration>,
    pub node_cores: Option<u32>,
    pub machine_cores: Option<u32>,
    /// The workers' and simulated nodes' instance model, with its
    /// keep-alive policy.
    pub instances: InstanceModel,
    /// Memory of each node for instances, MB.
    pub node_memory_mb: u32,
    pub retry_disturbed: u32,
    /// DES mode: variants of the cost profile to simulate too
    /// ([`des::CostProfile::variant`]).
    pub profile_variants: u32,
    pub strict: bool,
    pub settings: Vec<Setting>,
    pub sweep: Option<Sweep>,
    /// A closed loop instead of the scenario (`--clients`); its seed is
    /// the base load seed (repetition k uses seed + k).
    pub closed_loop: Option<ClosedLoop>,
    /// `--names` of the closed loop's mix, as given.
    pub names: Option<String>,
    /// The digests the experiment file records of the inputs it names
    /// (where the command line does not name another).
    pub recorded_inputs: InputDigests,
}

/// BLAKE2b-256 of an experiment's inputs: the scenario, the catalog file
/// and (DES mode) the cost profile. A resolved `experiment.toml` records
/// them; a run from it compares its own ([`InputDigests::changes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputDigests {
    pub scenario: Option<String>,
    pub catalog: Option<String>,
    pub profile: Option<String>,
}

impl InputDigests {
    /// One line per input whose digest `self` (this run's) and
    /// `recorded` both give and that differ, naming the input's `paths`
    /// (scenario, catalog, profile).
    pub fn changes(&self, recorded: &Self, paths: [Option<&str>; 3]) -> Vec<String> {
        let pairs = [
            ("scenario", &self.scenario, &recorded.scenario),
            ("catalog", &self.catalog, &recorded.catalog),
            ("cost profile", &self.profile, &recorded.profile),
        ];
        pairs
            .iter()
            .zip(paths)
            .filter_map(|((what, now, then), path)| match (now, then) {
                (Some(now), Some(then)) if now != then => Some(format!(
                    "the {what}{} is not the one the experiment file recorded (blake2b {} then, {} now)",
                    path.map(|p| format!(" {p}")).unwrap_or_default(),
                    utils::provenance::short_digest(then),
                    utils::provenance::short_digest(now)
                )),
                _ => None,
            })
            .collect()
    }
}

impl Plan {
    /// Merges the file (if any) with the flags; checks every value.
    pub fn resolve(args: &Args) -> Result<Self, ExperimentError> {
        let bad = ExperimentError::BadArgument;
        let file = match &args.file {
            Some(p) => ExperimentFile::load(p)?,
            None => ExperimentFile::default(),
        };
        if let Some(v) = &file.written_by {
            if v != env!("CARGO_PKG_VERSION") {
                crate::note!(
                    "experiment: note: the file was written by simulator {v}; this is {}",
                    env!("CARGO_PKG_VERSION")
                );
            }
        }
        let instances = resolve_instances(args, &file)?;
        let duration = match (args.duration, &file.duration) {
            (Some(d), _) => Some(d),
            (None, Some(t)) => Some(parse_duration(t).map_err(|e| bad(format!("duration: {e}")))?),
            (None, None) => None,
        };
        let closed_loop = resolve_closed_loop(args, &file, duration)?;
        let duration = if closed_loop.is_some() {
            None
        } else {
            duration
        };
        let name = args
            .name
            .clone()
            .or(file.name)
            .unwrap_or_else(|| "default".into());
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(bad(format!(
                "--name {name:?} must be a plain directory name"
            )));
        }
        let given: Vec<String> = if !args.algorithms.is_empty() {
            args.algorithms.clone()
        } else if let Some(a) = file.algorithms {
            a
        } else {
            registry::default_algorithms().map(String::from).collect()
        };
        let mut algorithms = Vec::new();
        for a in &given {
            let names: Vec<&'static str> = if a.trim() == "all" {
                registry::names().collect()
            } else {
                vec![canonical_name(a.trim()).map_err(|e| bad(e.to_string()))?]
            };
            for n in names {
                if !algorithms.contains(&n) {
                    algorithms.push(n);
                }
            }
        }
        if algorithms.is_empty() {
            return Err(bad("no algorithm to compare".into()));
        }
        let time_scale = match (args.time_scale, &file.time_scale) {
            (Some(t), _) => t,
            (None, Some(TimeScaleValue::Factor(f))) => format!("{f}").parse().map_err(bad)?,
            (None, Some(TimeScaleValue::Text(t))) => {
                t.parse().map_err(|e| bad(format!("time_scale: {e}")))?
            }
            (None, None) => TimeScaleArg::Auto,
        };
        // The file's settings, then the flags' (a later one wins).
        let mut settings = Vec::new();
        for (k, v) in &file.settings {
            settings.push(check_setting(k, &v.text()).map_err(|e| bad(format!("settings: {e}")))?);
        }
        settings.extend(args.settings.iter().cloned());
        let node_cores = args.node_cores.or(file.node_cores);
        let machine_cores = args.machine_cores.or(file.machine_cores);
        if node_cores.is_some() && machine_cores.is_some() && args.node_cores.is_some() {
            return Err(bad("give --node-cores or --machine-cores, not both".into()));
        }
        let plan = Self {
            name,
            results_dir: args.results_dir.clone(),
            mode: args.mode.or(file.mode).unwrap_or(Mode::Live),
            scenario: args
                .scenario
                .clone()
                .or(file.scenario)
                .unwrap_or_else(|| DEFAULT_SCENARIO.into()),
            catalog: args.catalog.clone().or(file.catalog),
            algorithms,
            workers: args.workers.or(file.workers).unwrap_or(4),
            runtime: args
                .runtime
                .or(file.runtime)
                .unwrap_or(WorkerRuntime::Process),
            function_sched: args
                .function_sched
                .or(file.function_sched)
                .unwrap_or_default(),
            cluster: match args.cluster.as_deref().or(file.cluster.as_deref()) {
                Some(c) => Some(cluster::ClusterPlan::parse(
                    c,
                    args.worker_cpus.or(file.worker_cpus),
                    args.worker_memory
                        .as_deref()
                        .or(file.worker_memory.as_deref()),
                )?),
                None if args.worker_cpus.is_some() || args.worker_memory.is_some() => {
                    return Err(bad(
                        "--worker-cpus and --worker-memory need --cluster compose".into(),
                    ))
                }
                None => None,
            },
            seed: args.seed.or(file.seed).unwrap_or(0),
            repeat: args.repeat.or(file.repeat).unwrap_or(1),
            time_scale,
            target_seconds: args.target_seconds.or(file.target_seconds).unwrap_or(6.0),
            load_factor: args.load_factor.or(file.load_factor).unwrap_or(0.25),
            fn_time_scale: args.fn_time_scale.or(file.fn_time_scale),
            package_scale: args
                .package_scale
                .or(file.package_scale)
                .unwrap_or(DEFAULT_PACKAGE_SCALE),
            duration,
            // A machine on the command line replaces the file's node cores.
            node_cores: if args.machine_cores.is_some() {
                None
            } else {
                node_cores
            },
            machine_cores: if args.node_cores.is_some() {
                None
            } else {
                machine_cores
            },
            instances,
            node_memory_mb: args
                .node_memory_mb
                .or(file.node_memory_mb)
                .unwrap_or(NodeInfo::DEFAULT_MEMORY_MB),
            retry_disturbed: args.retry_disturbed.or(file.retry_disturbed).unwrap_or(0),
            profile_variants: args.profile_variants.or(file.profile_variants).unwrap_or(0),
            strict: args.strict || file.strict.unwrap_or(false),
            settings,
            sweep: args.sweep.clone().or(file.sweep),
            names: closed_loop
                .as_ref()
                .and_then(|_| args.mix.names.clone().or(file.names)),
            closed_loop,
            recorded_inputs: InputDigests {
                scenario: file.scenario_blake2b.filter(|_| args.scenario.is_none()),
                catalog: file.catalog_blake2b.filter(|_| args.catalog.is_none()),
                profile: file.profile_blake2b,
            },
        };
        let compose = matches!(plan.cluster, Some(cluster::ClusterPlan::Compose { .. }));
        if !compose && (args.compose_file.is_some() || args.image_tag.is_some()) {
            // They would be ignored.
            return Err(bad(
                "--compose-file and --image-tag apply to --cluster compose only".into(),
            ));
        }
        plan.check()?;
        Ok(plan)
    }

    fn check(&self) -> Result<(), ExperimentError> {
        let bad = |m: String| Err(ExperimentError::BadArgument(m));
        if self.workers == 0 {
            return bad("--workers must be at least 1".into());
        }
        if self.repeat == 0 || self.repeat as usize > spec::MAX_POINTS {
            return bad(format!(
                "--repeat must be between 1 and {}, got {}",
                spec::MAX_POINTS,
                self.repeat
            ));
        }
        if self.profile_variants > MAX_PROFILE_VARIANTS {
            return bad(format!(
                "--profile-variants must be between 0 and {MAX_PROFILE_VARIANTS}, got {}",
                self.profile_variants
            ));
        }
        if self.profile_variants > 0 && self.mode != Mode::Des {
            return bad(
                "--profile-variants varies the simulator's cost profile: it needs --mode des"
                    .into(),
            );
        }
        if !(self.load_factor.is_finite() && self.load_factor > 0.0) {
            return bad(format!(
                "--load-factor must be > 0, got {:?}",
                self.load_factor
            ));
        }
        if let Some(f) = self.fn_time_scale {
            if !(f.is_finite() && f > 0.0) {
                return bad(format!("--fn-time-scale must be > 0, got {f:?}"));
            }
        }
        if !valid_package_scale(self.package_scale) {
            return bad(format!(
                "--package-scale must be >= 0, got {:?}",
                self.package_scale
            ));
        }
        if self.node_cores == Some(0) || self.machine_cores == Some(0) {
            return bad("--node-cores and --machine-cores must be at least 1".into());
        }
        if self.mode == Mode::Live {
            // The simulated nodes' cores mean nothing to live workers: a
            // live run would ignore them, and a sweep of them would
            // report identical points as if the cores had changed.
            let swept = self.sweep.as_ref().map(|s| s.param.as_str());
            let given = match (self.node_cores, self.machine_cores, swept) {
                (Some(_), _, _) => Some("--node-cores"),
                (_, Some(_), _) => Some("--machine-cores"),
                (_, _, Some("node_cores")) => Some("--sweep node_cores"),
                (_, _, Some("machine_cores")) => Some("--sweep machine_cores"),
                _ => None,
            };
            if let Some(what) = given {
                return bad(format!(
                    "{what} sets the simulated nodes' cores (--mode des); live workers run \
                     on this host's cores (a Compose cluster's containers: --worker-cpus)"
                ));
            }
        }
        if self.node_memory_mb == 0 {
            return bad("--node-memory-mb must be at least 1".into());
        }
        if self.function_sched != FunctionSched::Normal {
            let sched = format!("--function-sched {}", self.function_sched.as_str());
            if self.mode != Mode::Live {
                return bad(format!(
                    "{sched} applies to live workers: the DES has no processes to schedule"
                ));
            }
            if self.runtime == WorkerRuntime::Docker {
                return bad(format!(
                    "{sched} applies to the process runtime only (the Docker engine starts the processes of containers)"
                ));
            }
        }
        if let Some(c) = &self.cluster {
            let on = format!("--cluster {}", c.arg());
            if self.mode != Mode::Live {
                return bad(format!("{on} runs live experiments: drop --mode des"));
            }
            if self.catalog.is_some() {
                return bad(format!(
                    "{on}: a catalog is not passed to the cluster's workers yet"
                ));
            }
            if self.instances != InstanceModel::HotFunctions {
                return bad(format!(
                    "{on}: the Lambda instance model is not passed to the cluster's workers yet"
                ));
            }
            let swept = self.sweep.as_ref().map(|s| s.param.as_str());
            if matches!(c, cluster::ClusterPlan::Url { .. })
                && matches!(swept, Some("workers" | "load_factor" | "package_scale"))
            {
                return bad(format!(
                    "{on}: a sweep of {} restarts workers, which only --cluster compose can do",
                    swept.unwrap_or_default()
                ));
            }
        }
        if let Some(path) = &self.catalog {
            // A bad file names its line now, before any worker starts.
            sample_functions::Catalog::with_file(path)
                .map_err(|e| ExperimentError::BadArgument(e.to_string()))?;
        }
        if let Some(s) = &self.sweep {
            if s.values.len() > spec::MAX_POINTS {
                return bad(format!(
                    "--sweep {}: {} values (at most {})",
                    s.param,
                    s.values.len(),
                    spec::MAX_POINTS
                ));
            }
        }
        let points = self.points()?;
        if let Some(s) = &self.sweep {
            // Every point must resolve, once.
            for p in &points {
                self.resolve_settings(p)?;
            }
            check_distinct_points(s, &points)?;
        }
        // Every point's cluster fits its mode, before anything starts: a
        // live experiment starts a worker per node for a balancer that
        // takes at most its limit, and the DES has its own.
        let (most, limit) = match self.mode {
            Mode::Live => (
                load_balancer::config::limits::MAX_NODES,
                "the balancer's limit, in live mode",
            ),
            Mode::Des => (
                u64::from(des::limits::MAX_NODES),
                "the simulator's limit, in des mode",
            ),
        };
        for p in &points {
            if u64::from(p.workers) > most {
                let which = match &p.label {
                    Some(label) => format!("--sweep {label}"),
                    None => format!("--workers {}", p.workers),
                };
                return bad(format!("{which}: at most {most} workers ({limit})"));
            }
        }
        Ok(())
    }

    /// The experiment's points: one per swept value, or one.
    pub fn points(&self) -> Result<Vec<Point>, ExperimentError> {
        let base = Point {
            label: None,
            x: None,
            workers: self.workers,
            load_factor: self.load_factor,
            package_scale: self.package_scale,
            node_cores: self.node_cores,
            machine_cores: self.machine_cores,
            extra_setting: None,
        };
        let Some(sweep) = &self.sweep else {
            return Ok(vec![base]);
        };
        let bad = |m: String| ExperimentError::BadArgument(format!("--sweep {}: {m}", sweep.param));
        let mut points = Vec::new();
        for v in &sweep.values {
            let text = v.text();
            let number = text.parse::<f64>().ok();
            let mut p = base.clone();
            p.label = Some(format!("{}={}", sweep.param, text));
            p.x = number.or_else(|| match v {
                Scalar::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            });
            let need_u32 = || -> Result<u32, ExperimentError> {
                text.parse::<u32>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad(format!("{text:?} is not a whole number >= 1")))
            };
            let need_f64 = || -> Result<f64, ExperimentError> {
                number
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .ok_or_else(|| bad(format!("{text:?} is not a number >= 0")))
            };
            match sweep.param.as_str() {
                "workers" => p.workers = need_u32()?,
                "load_factor" => p.load_factor = need_f64()?.max(f64::MIN_POSITIVE),
                "package_scale" => p.package_scale = need_f64()?,
                "node_cores" => {
                    p.node_cores = Some(need_u32()?);
                    p.machine_cores = None;
                }
                "machine_cores" => {
                    p.machine_cores = Some(need_u32()?);
                    p.node_cores = None;
                }
                name => {
                    p.extra_setting = Some(check_setting(name, &text).map_err(bad)?);
                }
            }
            points.push(p);
        }
        Ok(points)
    }

    /// The workers' caching options and the scheduler parameters (seed
    /// included) of a point: the defaults with the settings applied, in
    /// order, then the point's swept setting.
    fn resolve_settings(
        &self,
        point: &Point,
    ) -> Result<(CachingOptions, ParamSet), ExperimentError> {
        let bad = |e: String| ExperimentError::BadArgument(e);
        let mut worker = CachingOptions::default();
        let mut params = ParamSet::from_settings([(registry::SEED, self.seed.to_string())])
            .map_err(|e| bad(e.to_string()))?;
        for s in self.settings.iter().chain(&point.extra_setting) {
            if s.is_worker_option() {
                protocol::limits::check_worker_option(&s.name, &s.value)
                    .map_err(|e| bad(e.to_string()))?;
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

    /// The resolved experiment file: every field given, every worker option
    /// and every parameter of the compared algorithms with its value.
    fn resolved_file(&self, time_scale: f64) -> ExperimentFile {
        let mut settings = std::collections::BTreeMap::new();
        let base = self.points().ok().and_then(|p| p.into_iter().next());
        if let Some((worker, params)) = base.and_then(|p| self.resolve_settings(&p).ok()) {
            for (name, value) in worker_entries(&worker) {
                settings.insert(name.to_string(), Scalar::from_text(&value));
            }
            for a in &self.algorithms {
                if let Ok(config) = params.scheduler(a) {
                    for (param, value) in config.params() {
                        settings.insert(
                            format!("{a}.{}", param.name()),
                            Scalar::from_text(&value.to_string()),
                        );
                    }
                }
            }
        }
        // A swept setting is the sweep's, not a fixed one.
        if let Some(s) = &self.sweep {
            settings.remove(&s.param);
        }
        ExperimentFile {
            written_by: Some(env!("CARGO_PKG_VERSION").to_string()),
            name: Some(self.name.clone()),
            mode: Some(self.mode),
            scenario: self.closed_loop.is_none().then(|| self.scenario.clone()),
            catalog: self.catalog.clone(),
            algorithms: Some(self.algorithms.iter().map(|a| a.to_string()).collect()),
            workers: Some(self.workers),
            runtime: Some(self.runtime),
            function_sched: (self.mode == Mode::Live && self.runtime == WorkerRuntime::Process)
                .then_some(self.function_sched),
            cluster: self.cluster.as_ref().map(cluster::ClusterPlan::arg),
            worker_cpus: match &self.cluster {
                Some(cluster::ClusterPlan::Compose { cpus, .. }) => Some(*cpus),
                _ => None,
            },
            worker_memory: match &self.cluster {
                Some(cluster::ClusterPlan::Compose { memory, .. }) => Some(memory.clone()),
                _ => None,
            },
            seed: Some(self.seed),
            repeat: Some(self.repeat),
            time_scale: self
                .closed_loop
                .is_none()
                .then_some(TimeScaleValue::Factor(time_scale)),
            target_seconds: self.closed_loop.is_none().then_some(self.target_seconds),
            load_factor: Some(self.load_factor),
            fn_time_scale: self.fn_time_scale,
            package_scale: Some(self.package_scale),
            duration: self
                .closed_loop
                .as_ref()
                .map(|c| c.duration)
                .or(self.duration)
                .map(|d| format!("{}ms", d.as_millis())),
            clients: self
                .closed_loop
                .as_ref()
                .map(|c| spec::ClientsValue::of(&c.clients)),
            functions: self.closed_loop.as_ref().map(|c| c.functions.clone()),
            think: self.closed_loop.as_ref().map(|c| c.think.to_string()),
            think_ms: None,
            names: self.names.clone(),
            load_seed: self.closed_loop.as_ref().map(|c| c.seed),
            grace: self
                .closed_loop
                .as_ref()
                .map(|c| format!("{}ms", c.grace.as_millis())),
            node_cores: self.node_cores,
            machine_cores: self.machine_cores,
            instance_model: Some(instance_model_name(&self.instances).to_string()),
            keep_alive_policy: self.instances.keep_alive_policy().map(|p| p.to_string()),
            keep_alive_s: match self.instances {
                InstanceModel::Lambda { keep_alive, .. } => Some(keep_alive.as_secs_f64()),
                InstanceModel::HotFunctions => None,
            },
            node_memory_mb: Some(self.node_memory_mb),
            retry_disturbed: Some(self.retry_disturbed),
            profile_variants: (self.profile_variants > 0).then_some(self.profile_variants),
            strict: Some(self.strict),
            settings,
            sweep: self.sweep.clone(),
            // The run fills them in (the digests of what it read).
            scenario_blake2b: None,
            catalog_blake2b: None,
            profile_blake2b: None,
        }
    }
}

/// One point of a sweep (or the experiment's only one).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// `NAME=VALUE` of the swept value.
    pub label: Option<String>,
    /// The swept value as a number, for plots.
    pub x: Option<f64>,
    pub workers: u32,
    pub load_factor: f64,
    pub package_scale: f64,
    pub node_cores: Option<u32>,
    pub machine_cores: Option<u32>,
    /// The swept worker option or scheduler parameter.
    pub extra_setting: Option<Setting>,
}

/// What a point resolved to.
#[derive(Debug, Clone, Serialize)]
pub struct PointRecord {
    pub label: Option<String>,
    pub x: Option<f64>,
    pub workers: u32,
    pub load_factor: f64,
    /// HF_TIME_SCALE given to the functions.
    pub fn_time_scale: f64,
    pub package_scale: f64,
    /// DES: cores of each node (when nodes do not share a machine).
    pub node_cores: Option<u32>,
    /// DES: the cores of the one machine all simulated nodes share.
    pub machine_cores: Option<u32>,
    /// The workers' caching options, defaults included.
    pub worker: CachingOptions,
    /// The workers' (simulated nodes') instance model and keep-alive
    /// policy.
    pub instances: InstanceModel,
    /// Memory of each node for instances, MB.
    pub node_memory_mb: u32,
    /// Each algorithm with its resolved parameters and base seed,
    /// defaults included.
    pub schedulers: Vec<SchedulerConfig>,
}

#[cfg(test)]
impl PointRecord {
    /// A point of the defaults, for unit tests.
    pub(crate) fn for_tests() -> Self {
        Self {
            label: None,
            x: None,
            workers: 4,
            load_factor: 0.25,
            fn_time_scale: 0.05,
            package_scale: DEFAULT_PACKAGE_SCALE,
            node_cores: None,
            machine_cores: None,
            worker: CachingOptions::default(),
            instances: InstanceModel::HotFunctions,
            node_memory_mb: NodeInfo::DEFAULT_MEMORY_MB,
            schedulers: Vec::new(),
        }
    }
}

/// DES mode, `--profile-variants`: every algorithm at every point on
/// variants of the cost profile ([`des::CostProfile::variant`]).
#[derive(Debug, Clone, Serialize)]
pub struct ProfileVariants {
    /// Variants per algorithm and point.
    pub count: u32,
    /// The figures the variants move (those with a recorded spread), and
    /// those they hold.
    pub varied: Vec<String>,
    pub held: Vec<String>,
    /// Each algorithm at each point on the profile itself (variant 0: its
    /// first repetition) and on each variant, with the first repetition's
    /// seed.
    pub runs: Vec<VariantRun>,
}

/// One algorithm at one point on one variant of the cost profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantRun {
    pub point: usize,
    pub algorithm: String,
    /// 0: the profile itself; `k`: [`des::CostProfile::variant`] `k`.
    pub variant: u32,
    /// Over successful calls (None: no call succeeded).
    pub mean_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    pub cold_start_ratio: f64,
    pub failed_pct: f64,
}

/// A figure of [`VariantRun`] as reports show it: title, value, format.
pub(crate) type VariantFigure = (
    &'static str,
    fn(&VariantRun) -> Option<f64>,
    fn(f64) -> String,
);

/// The figures reports give over the variants of the cost profile.
pub(crate) const VARIANT_FIGURES: [VariantFigure; 4] = [
    (
        "mean latency (ms)",
        |r| r.mean_latency_ms,
        |x| format!("{x:.1}"),
    ),
    (
        "p99 latency (ms)",
        |r| r.p99_latency_ms,
        |x| format!("{x:.1}"),
    ),
    (
        "cold starts (%)",
        |r| Some(100.0 * r.cold_start_ratio),
        |x| format!("{x:.1}"),
    ),
    ("failed (%)", |r| Some(r.failed_pct), |x| format!("{x:.1}")),
];

/// `figure` of `runs` on the profile itself (variant 0) and its range
/// over all of them, as reports show them (`-` where no run has it).
pub(crate) fn on_profile_and_range(
    runs: &[&VariantRun],
    (_, value, show): &VariantFigure,
) -> (String, String) {
    let on_profile = runs.iter().find(|r| r.variant == 0).and_then(|r| value(r));
    let values: Vec<f64> = runs.iter().filter_map(|r| value(r)).collect();
    (
        on_profile.map_or_else(|| "-".to_string(), show),
        utils::stats::range_text(&values, show),
    )
}

impl ProfileVariants {
    /// `runs` on `count` variants of `profile`.
    pub(crate) fn new(count: u32, profile: &des::CostProfile, runs: Vec<VariantRun>) -> Self {
        let varied = profile.varied_figures();
        Self {
            count,
            varied: varied.iter().map(|s| s.to_string()).collect(),
            held: profile
                .figures()
                .iter()
                .map(|f| f.0)
                .filter(|f| !varied.contains(f))
                .map(str::to_string)
                .collect(),
            runs,
        }
    }
}

/// Why `profile` cannot be varied (`--profile-variants`), if it cannot:
/// it records no spread.
pub(crate) fn unvariable(profile: &des::CostProfile) -> Option<String> {
    profile.varied_figures().is_empty().then(|| {
        format!(
            "--profile-variants moves each figure of the cost profile within its recorded \
             spread, and {} records none (an ideal profile, or one calibrated before \
             profiles recorded their spread): recalibrate it with `simulator calibrate \
             --runs 3` (simulator/profiles/README.md)",
            profile.file.as_deref().unwrap_or("the profile")
        )
    })
}

impl VariantRun {
    pub(crate) fn of(point: usize, algorithm: &str, variant: u32, s: &des::Summary) -> Self {
        let ok = s.completed > 0;
        Self {
            point,
            algorithm: algorithm.to_string(),
            variant,
            mean_latency_ms: ok.then_some(s.latency_ms.mean),
            p99_latency_ms: ok.then_some(s.latency_ms.p99),
            cold_start_ratio: s.cold_start_ratio,
            failed_pct: if s.invocations > 0 {
                100.0 * s.failed as f64 / s.invocations as f64
            } else {
                0.0
            },
        }
    }
}

/// One run: an algorithm at a point, one repetition.
#[derive(Debug, Clone, Serialize)]
pub struct AlgorithmRun {
    /// `[point/]algorithm[-rK]`: the log's name under `logs/`.
    pub id: String,
    pub algorithm: String,
    /// Index into [`ExperimentRecord::points`].
    pub point: usize,
    pub repetition: u32,
    pub seed: u64,
    pub log: PathBuf,
    /// The replay summary (live mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<replay::ReplaySummary>,
    /// The closed loop's seed of this run (load seed + repetition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_seed: Option<u64>,
    /// The closed loop's summary (live mode, `--clients`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadSummary>,
    /// The simulator's summary (DES mode), as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub des: Option<serde_json::Value>,
    /// Noise figures and verdict (live mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// Earlier attempts of this run that were disturbed and rerun.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disturbed_attempts: Vec<Noise>,
    pub wall_time_s: f64,
}

impl AlgorithmRun {
    fn disturbed(&self) -> bool {
        self.noise.as_ref().is_some_and(Noise::disturbed)
    }

    /// A closed loop's throughput (successful calls per second, live from
    /// the start to the last reply in wall time, simulated likewise in
    /// virtual time).
    pub fn throughput_per_s(&self) -> Option<f64> {
        match (&self.load, &self.des) {
            (Some(l), _) => Some(l.throughput_per_s),
            (None, Some(d)) => d.pointer("/closed_loop/throughput_per_s")?.as_f64(),
            _ => None,
        }
    }

    /// A closed loop's calls cancelled after the grace period.
    pub fn cancelled(&self) -> Option<u64> {
        match (&self.load, &self.des) {
            (Some(l), _) => Some(l.cancelled),
            (None, Some(d)) => d.pointer("/closed_loop/cancelled")?.as_u64(),
            _ => None,
        }
    }
}

/// `closed loop, --functions SPEC`: how `simulator load` names the
/// workload in its logs' sidecars.
fn closed_loop_description(c: &ClosedLoop) -> String {
    format!("closed loop, --functions {}", c.functions)
}

/// The closed loop of repetition `rep`: the plan's, with load seed + rep.
fn repetition_loop(c: &ClosedLoop, rep: u32) -> ClosedLoop {
    let mut c = c.clone();
    c.seed = c.seed.wrapping_add(u64::from(rep));
    c
}

/// Everything an experiment did, written as `run.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRecord {
    pub name: String,
    /// `--results-dir`: the run's outputs are in `<results_dir>/<name>`.
    pub results_dir: PathBuf,
    pub command: String,
    pub started_utc: String,
    pub mode: Mode,
    pub runtime: WorkerRuntime,
    /// How the workers scheduled their function processes (live mode,
    /// process runtime: `normal` or `batch`; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_sched: Option<FunctionSched>,
    /// The scenario file, or `closed loop, --functions SPEC` (as the
    /// logs' sidecars say it).
    pub scenario: PathBuf,
    /// The closed loop's parameters (clients, duration, think, mix, base
    /// load seed, grace), as `simulator load` records them; absent for a
    /// scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_loop: Option<serde_json::Value>,
    /// BLAKE2b-256 of the scenario file, read once for every run's
    /// sidecar (absent for a closed loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario_blake2b: Option<String>,
    pub scenario_events: usize,
    pub scenario_span_s: f64,
    pub workers: u32,
    pub algorithms: Vec<String>,
    /// Base seed; repetition k uses seed + k.
    pub seed: u64,
    pub repeat: u32,
    /// The swept parameter, if any.
    pub sweep: Option<String>,
    /// Replay speed-up (DES mode: the live run's, for comparable reports).
    pub time_scale: f64,
    /// HF_TIME_SCALE given to the functions (first point).
    pub fn_time_scale: f64,
    /// HF_PACKAGE_SCALE of the workers (first point).
    pub package_scale: f64,
    pub duration_cap_s: Option<f64>,
    pub versions: Versions,
    /// The machine (live mode; DES results do not depend on it).
    pub host: Option<HostInfo>,
    /// DES mode: the cost profile, and whether it was measured on this
    /// kind of machine ([`crate::profile_origin`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_profile: Option<crate::profile_origin::ProfileOrigin>,
    /// DES mode, `--profile-variants`: the runs on variants of the cost
    /// profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_variants: Option<ProfileVariants>,
    /// The rule that marks a live run disturbed.
    pub noise_thresholds: Option<Thresholds>,
    /// Child processes started (live mode), all stopped at the end.
    pub children: Vec<ChildRecord>,
    /// The cluster the live runs went to (`--cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<cluster::ClusterRecord>,
    pub points: Vec<PointRecord>,
    pub runs: Vec<AlgorithmRun>,
    pub interrupted: bool,
    /// Inputs that differ from those the experiment file recorded
    /// ([`InputDigests::changes`]; absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs_changed: Vec<String>,
    pub wall_time_s: f64,
    /// `--set` worker options and scheduler parameters.
    pub settings: Vec<Setting>,
    /// The workers' caching options of the first point, defaults included.
    pub worker: CachingOptions,
    /// Each algorithm with its resolved parameters and seed (first point),
    /// defaults included.
    pub schedulers: Vec<SchedulerConfig>,
    /// The resolved experiment file (also `experiment.toml`).
    #[serde(skip)]
    pub file: ExperimentFile,
}

/// A child process of a live run.
#[derive(Debug, Clone, Serialize)]
pub struct ChildRecord {
    pub name: String,
    pub pid: u32,
    pub url: String,
    /// A worker's `--worker-id`: the label on everything it creates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
}

/// Versions of what ran.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub simulator: String,
    /// The source revision, read before the run touched anything.
    pub git: Option<GitRevision>,
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

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExperimentError {
    let what = what.into();
    move |source| ExperimentError::Io { what, source }
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

/// Options of a run that do not define the experiment.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub overwrite: bool,
    pub bin_dir: Option<PathBuf>,
    pub startup_timeout: Duration,
    pub request_timeout: Duration,
    pub progress: ProgressMode,
    pub child_nice: Option<i32>,
    pub no_plots: bool,
    pub compose_file: PathBuf,
    pub image_tag: String,
}

impl RunOptions {
    fn of(args: &Args) -> Self {
        Self {
            overwrite: args.overwrite,
            bin_dir: args.bin_dir.clone(),
            startup_timeout: args.startup_timeout,
            request_timeout: args.request_timeout,
            progress: args.progress,
            child_nice: args.child_nice,
            no_plots: args.no_plots,
            compose_file: args
                .compose_file
                .clone()
                .unwrap_or_else(|| PathBuf::from("deploy/compose/docker-compose.yml")),
            image_tag: args.image_tag.clone().unwrap_or_else(|| "dev".into()),
        }
    }
}

/// Runs an experiment; `command` is recorded in the report.
pub async fn run_experiment(
    args: &Args,
    command: &str,
    stop: &StopHandle,
) -> Result<ExperimentOutcome, ExperimentError> {
    let git = crate::source_revision();
    let started = Instant::now();
    let started_utc = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let plan = Plan::resolve(args)?;
    let opts = RunOptions::of(args);
    // A closed loop has no scenario and runs in real time.
    let (events, schedule_span, time_scale) = match &plan.closed_loop {
        Some(c) => (Vec::new(), c.duration.as_millis() as u64, 1.0),
        None => {
            let events =
                replay::load_scenario(&plan.scenario).map_err(ExperimentError::Scenario)?;
            let span = events.iter().map(|e| e.start_ms).max().unwrap_or(0);
            let capped_span = match plan.duration {
                Some(d) => (span as u128).min(d.as_millis()) as u64,
                None => span,
            };
            let time_scale = resolve_time_scale(
                plan.time_scale,
                Duration::from_millis(capped_span),
                plan.target_seconds,
            )?;
            (events, span, time_scale)
        }
    };
    // `--catalog`'s functions, read once for the check below and the DES.
    let catalog = match &plan.catalog {
        Some(path) => Some(std::sync::Arc::new(
            sample_functions::Catalog::with_file(path)
                .map_err(|e| ExperimentError::BadArgument(e.to_string()))?,
        )),
        None => None,
    };
    check_called_functions(&plan, catalog.as_deref(), &events)?;
    // The DES's costs are those of the runtime the experiment names (and
    // records); a missing or mismatched profile fails before any output.
    let profile = match plan.mode {
        Mode::Des => Some(
            crate::des::profile_of_runtime(plan.runtime.as_str())
                .map_err(|e| ExperimentError::BadArgument(format!("{e:#}")))?,
        ),
        Mode::Live => None,
    };
    if let Some(why) = profile
        .as_ref()
        .filter(|_| plan.profile_variants > 0)
        .and_then(unvariable)
    {
        return Err(ExperimentError::BadArgument(why));
    }
    // The inputs' digests, against those of the experiment file.
    let digest = |p: &Path| utils::provenance::file_blake2b(p).ok();
    let inputs = InputDigests {
        scenario: plan
            .closed_loop
            .is_none()
            .then(|| digest(&plan.scenario))
            .flatten(),
        catalog: plan.catalog.as_deref().and_then(digest),
        profile: profile
            .as_ref()
            .and_then(|p| p.file.as_deref())
            .and_then(|f| digest(Path::new(f))),
    };
    let inputs_changed = inputs.changes(
        &plan.recorded_inputs,
        [
            plan.scenario.to_str(),
            plan.catalog.as_deref().and_then(Path::to_str),
            profile.as_ref().and_then(|p| p.file.as_deref()),
        ],
    );
    for change in &inputs_changed {
        crate::note!("experiment: warning: {change}: its figures may differ from the run that wrote the file");
    }
    let points = plan.points()?;
    let mut point_records = Vec::new();
    for p in &points {
        let (worker, params) = plan.resolve_settings(p)?;
        let schedulers = plan
            .algorithms
            .iter()
            .map(|a| params.scheduler(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExperimentError::BadArgument(e.to_string()))?;
        let fts = plan.fn_time_scale.unwrap_or(p.load_factor / time_scale);
        if !(fts.is_finite() && fts > 0.0) {
            return Err(ExperimentError::BadArgument(format!(
                "the functions' time scale must be > 0, got {fts}"
            )));
        }
        point_records.push(PointRecord {
            label: p.label.clone(),
            x: p.x,
            workers: p.workers,
            load_factor: p.load_factor,
            fn_time_scale: fts,
            package_scale: p.package_scale,
            node_cores: p.node_cores,
            machine_cores: p.machine_cores,
            worker,
            instances: plan.instances,
            node_memory_mb: plan.node_memory_mb,
            schedulers,
        });
    }

    let dir = plan.results_dir.join(&plan.name);
    // Held until the run ends (see `crate::claim_output_dir`).
    let _dir_lock = prepare_dir(&dir, opts.overwrite)?;

    let first = &point_records[0];
    let mut record = ExperimentRecord {
        name: plan.name.clone(),
        results_dir: plan.results_dir.clone(),
        command: command.to_string(),
        started_utc,
        mode: plan.mode,
        runtime: plan.runtime,
        function_sched: (plan.mode == Mode::Live && plan.runtime == WorkerRuntime::Process)
            .then_some(plan.function_sched),
        scenario: match &plan.closed_loop {
            Some(c) => closed_loop_description(c).into(),
            None => plan.scenario.clone(),
        },
        closed_loop: plan.closed_loop.as_ref().map(ClosedLoop::parameters),
        scenario_blake2b: inputs.scenario.clone(),
        scenario_events: events.len(),
        scenario_span_s: schedule_span as f64 / 1000.0,
        workers: plan.workers,
        algorithms: plan.algorithms.iter().map(|s| s.to_string()).collect(),
        seed: plan.seed,
        repeat: plan.repeat,
        sweep: plan.sweep.as_ref().map(|s| s.param.clone()),
        time_scale,
        fn_time_scale: first.fn_time_scale,
        package_scale: first.package_scale,
        duration_cap_s: plan.duration.map(|d| d.as_secs_f64()),
        versions: Versions {
            simulator: env!("CARGO_PKG_VERSION").to_string(),
            git,
            binaries: None,
            bin_dir: None,
        },
        host: (plan.mode == Mode::Live).then(HostInfo::read),
        cost_profile: profile
            .as_ref()
            .map(|p| crate::profile_origin::ProfileOrigin::of(p, &HostInfo::read())),
        profile_variants: None,
        noise_thresholds: (plan.mode == Mode::Live).then(Thresholds::default),
        children: Vec::new(),
        cluster: None,
        worker: first.worker,
        schedulers: first.schedulers.clone(),
        points: point_records,
        runs: Vec::new(),
        interrupted: false,
        settings: plan.settings.clone(),
        file: ExperimentFile {
            scenario_blake2b: inputs.scenario.clone(),
            catalog_blake2b: inputs.catalog.clone(),
            profile_blake2b: inputs.profile.clone(),
            ..plan.resolved_file(time_scale)
        },
        inputs_changed,
        wall_time_s: 0.0,
    };
    if let Some(origin) = record.cost_profile.as_ref().filter(|o| o.worth_a_note()) {
        crate::note!("experiment: cost profile: {}", origin.text);
    }
    let total_runs = points.len() * plan.repeat as usize * plan.algorithms.len();
    crate::note!(
        "experiment {}: {} on {}, {} mode, algorithms {}, time scale {}{}, seed {}{}{} ({total_runs} runs)",
        plan.name,
        match &plan.closed_loop {
            Some(c) => format!(
                "{} clients for {:.1} s ({}, think {}, load seed {})",
                c.clients,
                c.duration.as_secs_f64(),
                closed_loop_description(c),
                c.think,
                c.seed
            ),
            None => format!(
                "{} ({} events, {:.1} s)",
                plan.scenario.display(),
                events.len(),
                schedule_span as f64 / 1000.0
            ),
        },
        match &plan.cluster {
            Some(cluster::ClusterPlan::Url { url }) => format!("the nodes behind {url}"),
            _ => format!("{} workers", plan.workers),
        },
        match (plan.mode, &plan.cluster) {
            (Mode::Live, None) => plan.runtime.as_str(),
            (Mode::Live, Some(cluster::ClusterPlan::Compose { .. })) => match plan.runtime {
                WorkerRuntime::Process => "compose cluster",
                WorkerRuntime::Docker => "compose cluster, docker runtime",
            },
            (Mode::Live, Some(cluster::ClusterPlan::Url { .. })) => "running cluster",
            (Mode::Des, _) => "simulated",
        },
        plan.algorithms.join(","),
        time_scale,
        if plan.mode == Mode::Live {
            format!(" (HF_TIME_SCALE {:.4})", record.fn_time_scale)
        } else {
            String::new()
        },
        plan.seed,
        if plan.repeat > 1 {
            format!(", {} repetitions", plan.repeat)
        } else {
            String::new()
        },
        plan.sweep
            .as_ref()
            .map(|s| format!(", sweeping {} over {} values", s.param, s.values.len()))
            .unwrap_or_default(),
    );

    // A cost profile exactly in DES mode.
    let result = match profile {
        None => live::run_live(&plan, &opts, &events, &dir, &mut record, stop).await,
        Some(profile) => run_des(&plan, profile, catalog, &events, &dir, &mut record, stop),
    };
    record.interrupted = stop.level() != StopLevel::Run;
    record.wall_time_s = started.elapsed().as_secs_f64();
    if let Err(e) = result {
        if record.runs.is_empty() {
            return Err(e);
        }
        // Keep what finished: report it, then fail.
        crate::note!("experiment: error: {e}; writing the report of the finished runs");
        let _ = report::write_report(&opts, &dir, &record);
        return Err(e);
    }
    if record.runs.is_empty() {
        return Err(ExperimentError::Interrupted);
    }
    report::write_report(&opts, &dir, &record)?;
    Ok(ExperimentOutcome { dir, record })
}

/// Every file and directory an experiment writes in its directory.
const OUTPUTS: &[&str] = &[
    "report.md",
    "summary.csv",
    "runs.csv",
    "run.json",
    "experiment.toml",
    "profile-variants.csv",
    "logs",
    "plots",
    "process-logs",
];

/// Claims the directory (refused while another run writes into it), then
/// refuses it if it holds an earlier run's outputs, unless `overwrite`,
/// in which case exactly those outputs are removed (nothing else in the
/// directory is touched). The returned lock is to be held until the run
/// ends.
fn prepare_dir(dir: &Path, overwrite: bool) -> Result<std::fs::File, ExperimentError> {
    let lock = crate::claim_output_dir(dir)
        .map_err(io_err(format!("creating {}", dir.display())))?
        .ok_or_else(|| ExperimentError::InUse {
            dir: dir.to_path_buf(),
        })?;
    // An empty directory holds no output (a run that failed before its
    // first call leaves `logs/` and `plots/` empty).
    let holds_output = |p: &Path| {
        if p.is_dir() {
            std::fs::read_dir(p).map_or(true, |mut d| d.next().is_some())
        } else {
            p.exists()
        }
    };
    let found: Vec<&str> = OUTPUTS
        .iter()
        .copied()
        .filter(|o| holds_output(&dir.join(o)))
        .collect();
    if !found.is_empty() {
        if !overwrite {
            return Err(ExperimentError::WouldOverwrite {
                dir: dir.to_path_buf(),
                found: found.join(", "),
            });
        }
        for o in found {
            let p = dir.join(o);
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(io_err(format!("removing {}", p.display())))?;
        }
    }
    for sub in ["logs", "plots"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
    }
    Ok(lock)
}

/// Refuses a scenario (or a closed loop's mix) that calls a function the
/// experiment's workers do not run (not a sample, nor in `--catalog`),
/// before any worker starts: live, every call of it failed with a 404 and
/// the experiment still ended well; the DES refused it, naming a flag the
/// experiment does not have. Both modes now refuse it alike.
fn check_called_functions(
    plan: &Plan,
    catalog: Option<&sample_functions::Catalog>,
    events: &[ScenarioEvent],
) -> Result<(), ExperimentError> {
    if matches!(plan.cluster, Some(cluster::ClusterPlan::Url { .. })) {
        // A running cluster's workers are the user's: they may run
        // functions deployed on them (`POST /deploy`).
        return Ok(());
    }
    let catalog = catalog.unwrap_or_else(|| sample_functions::catalog());
    let unknown = match &plan.closed_loop {
        Some(closed) => closed
            .mix
            .names()
            .iter()
            .find(|n| catalog.get(n).is_none())
            .map(|n| format!("function {n:?} (in the closed loop's --names)")),
        None => events
            .iter()
            .enumerate()
            .find(|(_, e)| catalog.get(&e.function).is_none())
            .map(|(row, e)| {
                format!(
                    "{}: function {:?} (first at scenario row {})",
                    plan.scenario.display(),
                    e.function,
                    row + 1
                )
            }),
    };
    let Some(unknown) = unknown else {
        return Ok(());
    };
    let known = match &plan.catalog {
        Some(path) => format!("the sample functions and those of {}", path.display()),
        None => "the sample functions (W1-W11, T1-T6, I1-I5, D1-D8, noop)".to_string(),
    };
    Err(ExperimentError::BadArgument(format!(
        "{unknown} is not one the workers run ({known}); give a catalog file with it \
         (--catalog, e.g. the one `utils import` writes)"
    )))
}

/// Refuses a sweep that names one point twice: two values that are the
/// same number (`2,2`, or `1,1.0`) would plot one point twice, and two
/// whose labels have the same file-name form (`"a b"` and `"a_b"`) would
/// write their runs to the same logs, the second replacing the first.
fn check_distinct_points(sweep: &Sweep, points: &[Point]) -> Result<(), ExperimentError> {
    for (i, p) in points.iter().enumerate() {
        let same = points[..i].iter().find(|q| {
            (p.x.is_some() && p.x == q.x)
                || safe_name(p.label.as_deref().unwrap_or_default())
                    == safe_name(q.label.as_deref().unwrap_or_default())
        });
        if let Some(q) = same {
            let value = |p: &Point| {
                let label = p.label.as_deref().unwrap_or_default();
                label.split_once('=').map_or(label, |(_, v)| v).to_string()
            };
            return Err(ExperimentError::BadArgument(format!(
                "--sweep {}: the values {:?} and {:?} are one point (give each value once)",
                sweep.param,
                value(q),
                value(p)
            )));
        }
    }
    Ok(())
}

/// A file-name-safe form of a point label (`ch.T=4` stays as it is).
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '=' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The id (log name) of one run.
fn run_id(point: Option<&str>, algorithm: &str, repetition: u32, repeat: u32) -> String {
    let mut id = String::new();
    if let Some(p) = point {
        id.push_str(&safe_name(p));
        id.push('/');
    }
    id.push_str(algorithm);
    if repeat > 1 {
        let _ = write!(id, "-r{repetition}");
    }
    id
}

/// The log of a run, with its directory created.
fn log_path(dir: &Path, id: &str) -> Result<PathBuf, ExperimentError> {
    let log = dir.join("logs").join(format!("{id}.log"));
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io_err(format!("creating {}", parent.display())))?;
    }
    Ok(log)
}

fn write_sidecar(log: &Path, sidecar: &RunSidecar) -> Result<(), ExperimentError> {
    let p = protocol::sidecar::sidecar_path(log);
    std::fs::write(&p, sidecar.to_json()).map_err(io_err(format!("writing {}", p.display())))
}

/// The scheduler configuration of one run: the point's, with the
/// repetition's seed.
fn run_config(
    point: &PointRecord,
    algorithm: &str,
    seed: u64,
) -> Result<SchedulerConfig, ExperimentError> {
    let base = point
        .schedulers
        .iter()
        .find(|c| c.name() == algorithm)
        .ok_or_else(|| ExperimentError::BadArgument(format!("no configuration for {algorithm}")))?;
    let mut settings: Vec<(String, String)> = base
        .params()
        .map(|(p, v)| (format!("{algorithm}.{}", p.name()), v.to_string()))
        .collect();
    settings.push((registry::SEED.to_string(), seed.to_string()));
    SchedulerConfig::new(algorithm, settings)
        .map_err(|e| ExperimentError::BadArgument(e.to_string()))
}

/// The worker options as `(environment name, value)`.
fn worker_entries(w: &CachingOptions) -> [(&'static str, String); 5] {
    let n = options::ENV_NAMES;
    [
        (n[0], w.user_code_size_limit.to_string()),
        (n[1], w.container_pool_limit.to_string()),
        (n[2], w.container_pool_num.to_string()),
        (n[3], w.using_rest_mode.to_string()),
        (n[4], w.rest_container_life_time.to_string()),
    ]
}

fn run_des(
    plan: &Plan,
    profile: des::CostProfile,
    // The same functions as the live workers' `--catalog`.
    catalog: Option<std::sync::Arc<sample_functions::Catalog>>,
    events: &[ScenarioEvent],
    dir: &Path,
    record: &mut ExperimentRecord,
    stop: &StopHandle,
) -> Result<(), ExperimentError> {
    use std::io::Write as _;
    let mut workload = des::Workload::from_events(events);
    if let Some(cap) = plan.duration {
        workload = workload.truncated(policy::Time::from_duration(cap));
    }
    let points = plan.points()?;
    // Each node its own cores, unless the nodes share a machine.
    let node_cores_of = |point: &Point| point.node_cores.unwrap_or(profile.cores).max(1);
    let time_scale = record.time_scale;
    let config_of = |precord: &PointRecord, point: &Point, algorithm: &str, seed: u64| {
        Ok::<_, ExperimentError>(des::DesConfig {
            scheduler: run_config(precord, algorithm, seed)?,
            nodes: point.workers,
            cores: node_cores_of(point),
            machine_cores: point.machine_cores,
            worker: precord.worker,
            instances: precord.instances,
            node_memory_mb: precord.node_memory_mb,
            profile: profile.clone(),
            time_scale,
            fn_time_scale: precord.fn_time_scale,
            package_scale: precord.package_scale,
            catalog: catalog.clone(),
            catalog_file: plan.catalog.as_ref().map(|p| p.display().to_string()),
            ..des::DesConfig::default()
        })
    };
    // Every point under every algorithm is checked before the first run,
    // so that a bad point of a sweep (one the DES cannot run) fails the
    // experiment before it has spent any time, not after the points
    // before it. The repetitions differ only in their seeds, and every run
    // has the same calls: they are checked once, with the first
    // configuration, and the others' configurations alone.
    for (pi, point) in points.iter().enumerate() {
        for (ai, algorithm) in plan.algorithms.iter().enumerate() {
            let config = config_of(&record.points[pi], point, algorithm, plan.seed)?;
            let checked = match &plan.closed_loop {
                Some(c) => des::check_closed_loop(&repetition_loop(c, 0), &config),
                None if pi == 0 && ai == 0 => des::check(&workload, &config),
                None => des::check_config(&config),
            };
            checked.map_err(|e| ExperimentError::Des {
                algorithm: algorithm.to_string(),
                message: match &point.label {
                    Some(label) => format!("{label}: {e}"),
                    None => e.to_string(),
                },
            })?;
        }
    }
    let total = points.len() * plan.repeat as usize * plan.algorithms.len();
    let mut n = 0;
    // The profile itself, for `--profile-variants`.
    let mut on_variants = Vec::new();
    for (pi, point) in points.iter().enumerate() {
        let precord = record.points[pi].clone();
        let node_cores = node_cores_of(point);
        record.points[pi].node_cores = match point.machine_cores {
            Some(_) => None,
            None => Some(node_cores),
        };
        for rep in 0..plan.repeat {
            for algorithm in &plan.algorithms {
                if stop.level() != StopLevel::Run {
                    return Ok(());
                }
                n += 1;
                let run_started = Instant::now();
                let seed = plan.seed + u64::from(rep);
                let id = run_id(point.label.as_deref(), algorithm, rep, plan.repeat);
                let des_err = |message: String| ExperimentError::Des {
                    algorithm: algorithm.to_string(),
                    message,
                };
                let config = config_of(&precord, point, algorithm, seed)?;
                let log = log_path(dir, &id)?;
                let closed = plan.closed_loop.as_ref().map(|c| repetition_loop(c, rep));
                if let Some(c) = &closed {
                    des::check_closed_loop(c, &config).map_err(|e| des_err(e.to_string()))?;
                }
                let file = std::fs::File::create(&log)
                    .map_err(io_err(format!("creating {}", log.display())))?;
                let mut out = std::io::BufWriter::new(file);
                let summary = simulate_one(closed.as_ref(), &workload, &config, Some(&mut out))
                    .map_err(|e| des_err(format!("{e:#}")))?;
                if rep == 0 && plan.profile_variants > 0 {
                    on_variants.push(VariantRun::of(pi, algorithm, 0, &summary));
                }
                out.flush()
                    .map_err(io_err(format!("writing {}", log.display())))?;
                let mut sidecar = crate::des::sidecar_for(
                    &config,
                    Some(&record.scenario),
                    crate::des::utc_now(),
                    record.versions.git.clone(),
                );
                sidecar.scenario_blake2b = record.scenario_blake2b.clone();
                if let Some(c) = &closed {
                    // As `simulator load` and `simulator des --clients` record it.
                    sidecar.extra.insert("load".into(), c.parameters());
                }
                sidecar
                    .extra
                    .insert("experiment".into(), record.name.clone().into());
                if let Some(l) = &point.label {
                    sidecar.extra.insert("point".into(), l.clone().into());
                }
                write_sidecar(&log, &sidecar)?;
                crate::note!(
                    "[{n}/{total}] {id}: {} calls simulated in {:.2} s",
                    summary.invocations,
                    run_started.elapsed().as_secs_f64()
                );
                record.runs.push(AlgorithmRun {
                    id,
                    algorithm: algorithm.to_string(),
                    point: pi,
                    repetition: rep,
                    seed,
                    log,
                    replay: None,
                    load_seed: closed.as_ref().map(|c| c.seed),
                    load: None,
                    des: serde_json::to_value(&summary).ok(),
                    noise: None,
                    disturbed_attempts: Vec::new(),
                    wall_time_s: run_started.elapsed().as_secs_f64(),
                });
            }
        }
    }
    if plan.profile_variants > 0 {
        // Every algorithm at every point on each variant of the profile,
        // with the first repetition's seed, without logs; recorded with
        // the profile's own figures, also when stopped midway.
        let varied = profile.varied_figures();
        let mut runs = on_variants;
        let total = points.len() * plan.algorithms.len() * plan.profile_variants as usize;
        crate::note!(
            "experiment: {total} runs on {} variants of the cost profile (moving {})",
            plan.profile_variants,
            varied.join(", ")
        );
        let closed = plan.closed_loop.as_ref().map(|c| repetition_loop(c, 0));
        let mut n = 0;
        'all: for k in 1..=plan.profile_variants {
            let variant = profile.variant(k);
            for (pi, point) in points.iter().enumerate() {
                for algorithm in &plan.algorithms {
                    if stop.level() != StopLevel::Run {
                        break 'all;
                    }
                    n += 1;
                    let started = Instant::now();
                    let config = des::DesConfig {
                        profile: variant.clone(),
                        ..config_of(&record.points[pi], point, algorithm, plan.seed)?
                    };
                    let summary =
                        simulate_one(closed.as_ref(), &workload, &config, None).map_err(|e| {
                            ExperimentError::Des {
                                algorithm: algorithm.to_string(),
                                message: format!("profile variant {k}: {e:#}"),
                            }
                        })?;
                    crate::note!(
                        "[variant {n}/{total}] {algorithm}, profile variant {k}: {} calls simulated in {:.2} s",
                        summary.invocations,
                        started.elapsed().as_secs_f64()
                    );
                    runs.push(VariantRun::of(pi, algorithm, k, &summary));
                }
            }
        }
        record.profile_variants = Some(ProfileVariants::new(plan.profile_variants, &profile, runs));
    }
    Ok(())
}

/// One DES run of the scenario's `workload`, or of a closed loop.
fn simulate_one(
    closed: Option<&ClosedLoop>,
    workload: &des::Workload,
    config: &des::DesConfig,
    log: Option<&mut dyn std::io::Write>,
) -> anyhow::Result<des::Summary> {
    match closed {
        Some(c) => {
            crate::des::simulate_input(&crate::des::Input::ClosedLoop(c.clone()), config, log, true)
        }
        None => crate::des::simulate(workload, config, log, true),
    }
}

/// Runs `simulator experiment`.
pub fn run(args: Args) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let command = crate::command_line();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let stop = StopHandle::new();
        stop.stop_on_signals().map_err(|e| ExperimentError::Io {
            what: "installing the signal handlers".into(),
            source: e,
        })?;
        run_experiment(&args, &command, &stop).await
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(ExperimentError::Interrupted) => {
            crate::note!("experiment: interrupted before any algorithm finished; children stopped");
            std::process::exit(130);
        }
        Err(e) => return Err(e.into()),
    };
    crate::say!(
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
    let disturbed = outcome.record.runs.iter().filter(|r| r.disturbed()).count();
    if disturbed > 0 {
        crate::note!(
            "experiment: warning: {disturbed} of {} runs were disturbed (see the report's noise table)",
            outcome.record.runs.len()
        );
        if args.strict || outcome.record.file.strict == Some(true) {
            crate::note!(
                "experiment: error: {}",
                ExperimentError::Disturbed(disturbed)
            );
            std::process::exit(3);
        }
    }
    Ok(())
}

/// The instance model of the flags, else the file, else HotFunctions'
/// (a keep-alive policy alone selects the Lambda model, as for the worker
/// and `simulator des`).
fn resolve_instances(args: &Args, file: &ExperimentFile) -> Result<InstanceModel, ExperimentError> {
    let bad = |m: String| ExperimentError::BadArgument(m);
    let lambda = match (args.instance_model, &file.instance_model) {
        (Some(m), _) => Some(m == InstanceModelArg::Lambda),
        (None, Some(name)) => {
            Some(parse_lambda(name).map_err(|e| bad(format!("instance_model: {e}")))?)
        }
        (None, None) => None,
    };
    let policy = match (args.keep_alive_policy, &file.keep_alive_policy) {
        (Some(p), _) => Some(p),
        (None, Some(name)) => Some(
            name.parse::<KeepAlivePolicy>()
                .map_err(|e| bad(format!("keep_alive_policy: {e}")))?,
        ),
        (None, None) => None,
    };
    let keep_alive_s = args.keep_alive_s.or(file.keep_alive_s);
    choose_instance_model(lambda, policy, keep_alive_s).map_err(|e| bad(e.to_string()))
}

/// The closed loop of the flags and the file (`--clients`, `clients =`),
/// or `None` for a scenario. The mix and think time are parsed by
/// `simulator load`'s own [`crate::load::MixArgs`]; a flag left at its
/// default takes the file's value. A scenario (or its replay speed-up)
/// together with closed-loop options is an error, wherever each was given.
fn resolve_closed_loop(
    args: &Args,
    file: &ExperimentFile,
    duration: Option<Duration>,
) -> Result<Option<ClosedLoop>, ExperimentError> {
    let bad = |m: String| ExperimentError::BadArgument(m);
    let defaults = crate::load::MixArgs::default();
    let mut loop_options: Vec<&str> = Vec::new();
    for (given, name) in [
        (
            args.mix.think_ms.is_some() || file.think_ms.is_some(),
            "think_ms",
        ),
        (
            args.mix.think != defaults.think || file.think.is_some(),
            "think",
        ),
        (
            args.mix.functions != defaults.functions || file.functions.is_some(),
            "functions",
        ),
        (args.mix.names.is_some() || file.names.is_some(), "names"),
        (
            args.load_seed.is_some() || file.load_seed.is_some(),
            "load_seed",
        ),
        (args.grace.is_some() || file.grace.is_some(), "grace"),
    ] {
        if given {
            loop_options.push(name);
        }
    }
    let given = match &args.clients {
        Some(list) => Some(spec::ClientsValue::Stages(list.clone())),
        None => file.clients.clone(),
    };
    let Some(clients) = given else {
        if !loop_options.is_empty() {
            return Err(bad(format!(
                "{} only apply to a closed loop: add --clients N (or `clients` in the file)",
                loop_options.join(", ")
            )));
        }
        return Ok(None);
    };
    let mut scenario_options = Vec::new();
    if args.scenario.is_some() || file.scenario.is_some() {
        scenario_options.push("scenario");
    }
    if args.time_scale.is_some() || file.time_scale.is_some() {
        scenario_options.push("time_scale");
    }
    if args.target_seconds.is_some() || file.target_seconds.is_some() {
        scenario_options.push("target_seconds");
    }
    if !scenario_options.is_empty() {
        return Err(bad(format!(
            "a closed loop (--clients) replays no scenario: drop {} (flags or file), or drop --clients",
            scenario_options.join(", ")
        )));
    }
    let clients = clients.stages().map_err(|e| bad(e.to_string()))?;
    let duration = duration
        .ok_or_else(|| bad("--clients needs --duration (how long the clients call)".into()))?;
    let duration = des::source::check_duration(duration).map_err(|e| bad(e.to_string()))?;
    des::source::check_total(clients.len(), duration).map_err(|e| bad(e.to_string()))?;
    let mut mix_args = args.mix.clone();
    if mix_args.think_ms.is_none() && mix_args.think == defaults.think {
        mix_args.think_ms = file.think_ms;
        if let Some(t) = &file.think {
            mix_args.think = t.parse().map_err(|e| bad(format!("think: {e}")))?;
        }
    }
    if mix_args.functions == defaults.functions {
        if let Some(f) = &file.functions {
            mix_args.functions = f.parse().map_err(|e| bad(format!("functions: {e}")))?;
        }
    }
    if mix_args.names.is_none() {
        mix_args.names = file.names.clone();
    }
    let (think, mix) = mix_args.resolve().map_err(|e| bad(e.to_string()))?;
    let grace = match (args.grace, &file.grace) {
        (Some(g), _) => g,
        (None, Some(t)) => parse_duration(t).map_err(|e| bad(format!("grace: {e}")))?,
        (None, None) => Duration::from_secs(30),
    };
    Ok(Some(ClosedLoop {
        clients,
        duration,
        think,
        mix: std::sync::Arc::new(mix),
        functions: mix_args.functions.to_string(),
        seed: args.load_seed.or(file.load_seed).unwrap_or(1),
        grace,
    }))
}

/// `hotfunctions` or `lambda`, as the options spell it.
pub fn instance_model_name(model: &InstanceModel) -> &'static str {
    match model {
        InstanceModel::HotFunctions => "hotfunctions",
        InstanceModel::Lambda { .. } => "lambda",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_inputs_are_those_whose_digests_both_give_and_differ() {
        let then = InputDigests {
            scenario: Some("aaaaaaaaaaaaaaaa".into()),
            catalog: None,
            profile: Some("cccccccccccccccc".into()),
        };
        let now = InputDigests {
            scenario: Some("bbbbbbbbbbbbbbbb".into()),
            catalog: Some("dddd".into()),
            profile: Some("cccccccccccccccc".into()),
        };
        assert_eq!(
            now.changes(&then, [Some("s.csv"), None, Some("p.json")]),
            [
                "the scenario s.csv is not the one the experiment file recorded \
              (blake2b aaaaaaaaaaaa then, bbbbbbbbbbbb now)"
            ]
        );
        assert!(then.changes(&then, [None; 3]).is_empty());
        // Nothing recorded (a file written by hand): nothing to compare.
        assert!(now.changes(&InputDigests::default(), [None; 3]).is_empty());
    }

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
    fn all_names_every_registered_algorithm_once() {
        let args = Args {
            algorithms: vec!["rr".into(), "all".into(), "hash".into()],
            mode: Some(Mode::Des),
            ..Args::default()
        };
        let plan = Plan::resolve(&args).unwrap();
        let mut want: Vec<&str> = registry::names().collect();
        want.retain(|n| *n != "rr");
        want.insert(0, "rr");
        assert_eq!(plan.algorithms, want);
    }

    #[test]
    fn the_function_scheduling_policy_is_checked_resolved_and_written_back() {
        let with = |sched: Option<FunctionSched>, mode: Mode, runtime: WorkerRuntime| Args {
            function_sched: sched,
            mode: Some(mode),
            runtime: Some(runtime),
            ..Args::default()
        };
        let live = WorkerRuntime::Process;
        let plan = Plan::resolve(&with(None, Mode::Live, live)).unwrap();
        assert_eq!(plan.function_sched, FunctionSched::Normal);
        let plan = Plan::resolve(&with(Some(FunctionSched::Batch), Mode::Live, live)).unwrap();
        assert_eq!(plan.function_sched, FunctionSched::Batch);
        let file = plan.resolved_file(1.0);
        assert_eq!(file.function_sched, Some(FunctionSched::Batch));
        // The file gives it back.
        let text = toml::to_string(&file).unwrap();
        assert!(text.contains("function_sched = \"batch\""), "{text}");
        let again: spec::ExperimentFile = toml::from_str(&text).unwrap();
        assert_eq!(again.function_sched, Some(FunctionSched::Batch));
        for (mode, runtime, why) in [
            (Mode::Des, live, "the DES has no processes"),
            (
                Mode::Live,
                WorkerRuntime::Docker,
                "the process runtime only",
            ),
        ] {
            let e = Plan::resolve(&with(Some(FunctionSched::Batch), mode, runtime))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("--function-sched batch") && e.contains(why),
                "{e}"
            );
            // Normal, the default, is every mode's and runtime's.
            assert!(Plan::resolve(&with(Some(FunctionSched::Normal), mode, runtime)).is_ok());
        }
        // Nothing to write where nothing is scheduled.
        let des = Plan::resolve(&with(None, Mode::Des, live)).unwrap();
        assert_eq!(des.resolved_file(1.0).function_sched, None);
    }

    #[test]
    fn a_sweep_names_each_point_once() {
        let with = |sweep: &str| Args {
            mode: Some(Mode::Des),
            sweep: Some(Sweep::parse(sweep).unwrap()),
            ..Args::default()
        };
        for (sweep, first, second) in [
            ("ch.T=2,4,2", "2", "2"),
            // Values are read as numbers: these are one point by value
            // and by label alike.
            ("load_factor=1,1.0", "1", "1"),
            ("workers=4,04", "4", "4"),
        ] {
            let e = Plan::resolve(&with(sweep)).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "the values {first:?} and {second:?} are one point"
                )),
                "{sweep}: {e}"
            );
        }
        // Labels with one file-name form would share their runs' logs.
        let points = [Some("x=a b"), Some("x=a_b")].map(|label| Point {
            label: label.map(String::from),
            x: None,
            workers: 4,
            load_factor: 1.0,
            package_scale: 1.0,
            node_cores: None,
            machine_cores: None,
            extra_setting: None,
        });
        let sweep = Sweep::parse("x=a b,a_b").unwrap();
        let e = check_distinct_points(&sweep, &points)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r#"the values "a b" and "a_b" are one point"#),
            "{e}"
        );
        assert!(Plan::resolve(&with("ch.T=2,4,8")).is_ok());
    }

    #[test]
    fn a_cluster_beyond_its_modes_limit_is_refused_before_anything_starts() {
        let live = |workers: u32, sweep: Option<&str>| Args {
            mode: Some(Mode::Live),
            workers: Some(workers),
            sweep: sweep.map(|s| Sweep::parse(s).unwrap()),
            ..Args::default()
        };
        let e = Plan::resolve(&live(10_001, None)).unwrap_err().to_string();
        assert!(
            e.contains(
                "--workers 10001: at most 10000 workers (the balancer's limit, in live mode)"
            ),
            "{e}"
        );
        assert!(Plan::resolve(&live(10_000, None)).is_ok());
        let e = Plan::resolve(&live(4, Some("workers=2,20000")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--sweep workers=20000: at most 10000 workers"),
            "{e}"
        );
        let des = Args {
            mode: Some(Mode::Des),
            workers: Some(100_001),
            ..Args::default()
        };
        let e = Plan::resolve(&des).unwrap_err().to_string();
        assert!(
            e.contains("at most 100000 workers (the simulator's limit, in des mode)"),
            "{e}"
        );
    }

    #[test]
    fn simulated_cores_are_refused_live_where_they_would_be_ignored() {
        let with =
            |mode: Mode, node: Option<u32>, machine: Option<u32>, sweep: Option<&str>| Args {
                mode: Some(mode),
                node_cores: node,
                machine_cores: machine,
                sweep: sweep.map(|s| Sweep::parse(s).unwrap()),
                ..Args::default()
            };
        for (node, machine, sweep, what) in [
            (Some(4), None, None, "--node-cores"),
            (None, Some(2), None, "--machine-cores"),
            (None, None, Some("node_cores=1,2"), "--sweep node_cores"),
            (
                None,
                None,
                Some("machine_cores=1,2"),
                "--sweep machine_cores",
            ),
        ] {
            let e = Plan::resolve(&with(Mode::Live, node, machine, sweep))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!(
                    "{what} sets the simulated nodes' cores (--mode des)"
                )),
                "{e}"
            );
            assert!(Plan::resolve(&with(Mode::Des, node, machine, sweep)).is_ok());
        }
        assert!(Plan::resolve(&with(Mode::Live, None, None, Some("workers=2,4"))).is_ok());
    }

    #[test]
    fn compose_options_are_refused_without_a_compose_cluster() {
        let with = |cluster: Option<&str>, file: Option<&str>, tag: Option<&str>| Args {
            cluster: cluster.map(String::from),
            compose_file: file.map(PathBuf::from),
            image_tag: tag.map(String::from),
            ..Args::default()
        };
        for cluster in [None, Some("http://127.0.0.1:8111")] {
            for (file, tag) in [(Some("x.yml"), None), (None, Some("v2"))] {
                let e = Plan::resolve(&with(cluster, file, tag))
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.contains("--compose-file and --image-tag apply to --cluster compose only"),
                    "{cluster:?}: {e}"
                );
            }
        }
        let plan = Plan::resolve(&with(Some("compose"), Some("x.yml"), Some("v2"))).unwrap();
        assert!(matches!(
            plan.cluster,
            Some(cluster::ClusterPlan::Compose { .. })
        ));
        let opts = RunOptions::of(&with(None, None, None));
        assert_eq!(
            (opts.compose_file.to_str(), opts.image_tag.as_str()),
            (Some("deploy/compose/docker-compose.yml"), "dev"),
            "the defaults"
        );
    }

    #[test]
    fn a_catalog_is_checked_before_anything_starts_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let header = sample_functions::catalog::catalog_header();
        let good = dir.path().join("good.csv");
        std::fs::write(
            &good,
            format!("{header}\nF1,x,u,0.5,~1s,none,1,1,1,1,0,64\n"),
        )
        .unwrap();
        let bad = dir.path().join("bad.csv");
        std::fs::write(
            &bad,
            format!("{header}\nF1,x,u,0.5,~1s,none,1,1,1,1,0,64\nW1,x\n"),
        )
        .unwrap();
        let with = |path: &Path, mode: Mode| Args {
            catalog: Some(path.to_path_buf()),
            mode: Some(mode),
            ..Args::default()
        };
        let plan = Plan::resolve(&with(&good, Mode::Live)).unwrap();
        assert_eq!(plan.catalog.as_deref(), Some(good.as_path()));
        assert_eq!(
            plan.resolved_file(1.0).catalog.as_deref(),
            Some(good.as_path())
        );
        let e = Plan::resolve(&with(&bad, Mode::Live))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.csv") && e.contains("line 3"), "{e}");
        let des = Plan::resolve(&with(&good, Mode::Des)).unwrap();
        assert_eq!(des.catalog.as_deref(), Some(good.as_path()));
    }

    #[test]
    fn a_closed_loop_takes_the_file_values_the_flags_leave_at_their_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exp.toml");
        std::fs::write(
            &file,
            "mode = \"des\"\nclients = 5\nduration = \"3s\"\nfunctions = \"zipf:1\"\n\
             names = \"W1,W2\"\nthink = \"exp:40\"\nload_seed = 4\ngrace = \"2s\"\n",
        )
        .unwrap();
        let args = Args {
            file: Some(file.clone()),
            ..Args::default()
        };
        let plan = Plan::resolve(&args).unwrap();
        let c = plan.closed_loop.as_ref().unwrap();
        assert_eq!((c.clients.counts(), c.seed), (&[5][..], 4));
        assert_eq!(c.duration, Duration::from_secs(3));
        assert_eq!(c.grace, Duration::from_secs(2));
        assert_eq!(c.think.to_string(), "exp:40");
        assert_eq!(c.mix.names(), ["W1", "W2"]);
        assert_eq!(plan.duration, None, "the loop's duration caps no scenario");
        // The resolved file says the same, with no scenario in it.
        let resolved = plan.resolved_file(1.0);
        assert_eq!(resolved.clients, Some(spec::ClientsValue::Count(5)));
        assert_eq!(resolved.think.as_deref(), Some("exp:40"));
        assert_eq!(resolved.scenario, None);
        assert_eq!(resolved.time_scale, None);
        // A flag given wins over the file.
        let args = Args {
            file: Some(file),
            clients: Some("2".into()),
            load_seed: Some(9),
            mix: crate::load::MixArgs {
                think_ms: Some(10.0),
                ..crate::load::MixArgs::default()
            },
            ..Args::default()
        };
        let c = Plan::resolve(&args).unwrap().closed_loop.unwrap();
        assert_eq!((c.clients.counts(), c.seed), (&[2][..], 9));
        assert_eq!(c.think.to_string(), "const:10");
    }

    #[test]
    fn time_scale_argument_parses() {
        assert_eq!("auto".parse::<TimeScaleArg>(), Ok(TimeScaleArg::Auto));
        assert_eq!("4".parse::<TimeScaleArg>(), Ok(TimeScaleArg::Fixed(4.0)));
        assert!("0".parse::<TimeScaleArg>().is_err());
        assert!("fast".parse::<TimeScaleArg>().is_err());
    }
}
