//! `simulator des`: the command line of the discrete-event simulator (the
//! `des` crate), which runs a scenario on the very scheduler and node-model
//! code that runs live.
//!
//! It reads the scenario and the cost profile, builds a [`DesConfig`] from
//! its options ([`Args::to_config`]), runs [`des::run_workload`] with a
//! progress bar on long runs, measures the wall time, and writes what was
//! asked for (below).
//!
//! Closed loop: with `--clients N --duration D` instead of a scenario it
//! runs `simulator load`'s closed loop on the virtual clock
//! ([`des::run_closed_loop`], rules in `des::source`): the same options
//! (`--think`, `--think-ms`, `--functions`, `--names`, shared as
//! [`crate::load::MixArgs`]; `--load-seed` is the live `--seed`, which
//! here seeds the scheduler), the same function sequence per client for
//! the same seed, the same log, and a sidecar that records the scenario
//! as `closed loop, --functions SPEC` and the load's parameters in
//! `extra.load`, as the live command does; the summary adds
//! `closed_loop` (parameters, calls cancelled, calls per client, last
//! reply, throughput). Calls in flight at the end of `--grace` after the
//! duration are cancelled and logged as errors, as live. `--clients
//! 20,50,100` runs stages of `--duration` each, back to back (k6's
//! `stages`; rules in `des::source`): the summary's `closed_loop.stages`
//! then has each stage's calls, successes, throughput, response mean, p50
//! and p99 and cold starts, a call counted in the stage it started in;
//! one number keeps the output of a closed loop without stages.
//! `--time-scale` applies to scenarios only.
//!
//! Outputs:
//!
//! - **Log** (the replay's format, so `utils analyze` reads it): only with
//!   `--log FILE`, and then with its sidecar `FILE.meta.json`
//!   ([`protocol::sidecar`], built by [`sidecar_for`]: producer, version,
//!   git revision, start time, cluster size, algorithm with every resolved
//!   parameter, seed, scenario, scales; in `extra`: cores per node or the
//!   shared machine's cores, capacity, instance model, worker options and
//!   the profile file). `--log -` writes the log to standard output (no
//!   sidecar). Without `--log` no log is written (`--no-log`, the old way
//!   to say so, is still accepted).
//! - **Summary** (`--summary-json FILE`, `-` = standard error): the
//!   simulator's [`des::Summary`] (counts, cold starts, latency and
//!   duration percentiles, simulated time, the whole resolved
//!   [`DesConfig`]: scheduler with its parameters and seed, nodes, cores,
//!   machine cores, capacity, instance model and keep-alive, worker
//!   options, the cost profile's values and file, scales, epoch) plus a
//!   `run` section ([`RunInfo`]): producer, version (`CARGO_PKG_VERSION`),
//!   git revision its binary was built from, start time, command
//!   line, the environment variables it read, scenario, log, how the
//!   profile was found, and whether it was measured on this kind of
//!   machine (`profile_origin`: [`crate::profile_origin`]). Only
//!   `performance` (wall clock), `run.started_utc` and, on another machine
//!   or pinned to other cores, `run.profile_origin` (this machine as the
//!   process sees it) differ between two runs of the same inputs.
//! - One line on standard error (unless `-q`): calls, failures, cold
//!   starts, simulated and wall time, and the **latency** as `utils
//!   analyze` defines it: per successful call, duration (end - start)
//!   minus the reply's `InternalExecutionTime`; and a line naming the
//!   machine the cost profile describes, when it is not of this one's kind
//!   or not recorded.
//! - **Profile variants** (`--profile-variants N`, 0-64): the input again,
//!   without a log, on N variants of the cost profile
//!   ([`des::CostProfile::variant`]: each figure with a recorded spread
//!   moved within its uncertainty, the same variant k in every run). The
//!   summary gains `profile_variants` (the figures moved and held, and
//!   each run's mean and p99 latency, cold-start ratio and failures,
//!   variant 0 being the run itself, as `simulator experiment` records
//!   them), and a line gives each figure on the profile and its range. A
//!   profile without a spread is refused before anything is written.
//!
//! An existing log, sidecar or summary is never replaced without
//! `--overwrite`: every output is checked before anything is written.
//!
//! The cost profile is read at run time ([`find_profile`]): `--profile
//! PATH`, else `$HF_DES_PROFILE`, else `profiles/process.json` next to the
//! executable (an installed layout), else `simulator/profiles/process.json`
//! in the workspace found by walking up from the current directory, then
//! from the executable's directory. `simulator calibrate <worker_url>`
//! writes a profile to the place read first ([`profile_destination`]);
//! `--ideal` runs without overheads.
//!
//! Simulated results depend only on the inputs: nothing here or in the
//! `des` crate reads the host's cores, threads or clock (`--cores`, the
//! profile's `cores` by default, and `--machine-cores` are parameters); the
//! wall time is measured around the run for `performance` alone
//! (`tests/des_host_independence.rs` runs pinned to one core and not).
//!
//! Options (defaults): `--algorithm rr`, `--nodes 4`, `--cores` (the
//! profile's, 2) per node or `--machine-cores N` shared by all nodes (a
//! one-host testbed), `--capacity 64`, `--node-memory-mb 2048`, `--instance-model hotfunctions|lambda`
//! (`hotfunctions`), `--keep-alive-policy fixed|lru|greedy-dual|histogram|ewma`
//! (`fixed`; giving it selects the Lambda model), `--keep-alive-s 600`
//! (Lambda model); the worker takes the same three options; the live worker's
//! `USER_CODE_SIZE_LIMIT` (-1), `CONTAINER_POOL_LIMIT` (-1),
//! `CONTAINER_POOL_NUM` (6), `USING_REST_MODE` (false),
//! `REST_CONTAINER_LIFE_TIME` (10 s), as flags of the same name or
//! environment variables; the balancer's `T` (8), `T1` (8), `T2` (5), `T3`
//! (3), `ALPHA` (0.0), `BETA` (0.5), `seed` (0), likewise.
//!
//! Imported workloads: `--catalog FILE` adds a user's functions (the
//! catalog `utils import` writes) to the samples; a scenario's
//! per-invocation columns (`DurationMs`, `MemoryMb`) are simulated (see
//! `des::engine`). Semantics of other simulators (Lambda model, defaults
//! unchanged): `--reuse newest|oldest`, `--no-keep-alive-extension`,
//! `--max-running [N]` (unlimited; the flag alone is SimFaaS's 1000,
//! `policy::node::Admission::SIMFAAS_MAX_RUNNING`), `--overflow
//! over-commit|queue|reject|elsewhere` (`over-commit`), and the work
//! models `exp-cpu:` and `pct:`/`pct-cpu:` of `--default-function`.

//!
//! SlimFaas layer (issue 15; off by default, the run is then as before):
//! `--function-settings FILE` (the balancer's own settings file, read by
//! `load_balancer::slim::SettingsFile`, so one file serves both) and
//! `--max-parallel N` (every function's cap; replaces the file's) put the
//! balancer's admission queue in front of the scheduler: calls over their
//! function's cap wait in arrival order and are dispatched as slots free,
//! a waiting call fails after its `wait_s` (default 120 s). Every call is
//! synchronous (the scenario format has no column saying otherwise).
//! `--scale-to-zero` removes a function's instances after its
//! `idle_before_zero_s` without a call (the Lambda model with a fixed
//! keep-alive of the defaults' time, a function with its own keeping its
//! own; `des::slim` says what that mapping keeps). A function's
//! `min_instances` are kept started, and a call a full node refuses is
//! retried after the file's `retry_delays_s` (`des::slim`). The summary's
//! `queue` has the waits (calls that waited, mean, p50, p99, longest
//! queue; overall and per function), the retries and the instances
//! started for minimums; its `config.slim` and the sidecar's
//! `extra.function_settings` the settings.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use des::{
    CostProfile, DesConfig, FunctionModel, Performance, SlimFunction, SlimSettings, Summary,
    Workload, DEFAULT_EPOCH_MS,
};
use load_balancer::cli::SchedulerArgs;
use load_balancer::slim::{FunctionSettings, SettingsFile};
use policy::node::keep_alive_policy::choose_instance_model;
use policy::node::options::CachingOptions;
use policy::node::{Admission, KeepAlivePolicy, Overflow, ReuseOrder, ReuseRules};
use policy::scheduler::registry;
use protocol::sidecar::{self, Cluster, GitRevision, RunSidecar, Scales};
use serde::Serialize;

use crate::experiment::host::HostInfo;
use crate::experiment::{
    on_profile_and_range, unvariable, ProfileVariants, VariantRun, VARIANT_FIGURES,
};
use crate::profile_origin::ProfileOrigin;

/// The producer named in sidecars and summaries.
pub const PRODUCER: &str = "simulator des";

/// Environment variable naming the cost profile when `--profile` is not
/// given.
pub const PROFILE_ENV: &str = "HF_DES_PROFILE";

/// The default profile's path in the workspace.
pub const WORKSPACE_PROFILE: &str = "simulator/profiles/process.json";

/// The default profile's path next to the executable (installed layout).
pub const INSTALLED_PROFILE: &str = "profiles/process.json";

/// How instances serve calls (CLI form of [`des::InstanceModel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InstanceModelArg {
    /// HotFunctions' worker (per-call instances + pool, or REST mode).
    Hotfunctions,
    /// AWS Lambda: one request per instance, keep-alive expiry.
    Lambda,
}

/// `--overflow`: a node's rule ([`Overflow`]), or `elsewhere` (the
/// node rejects, the simulator reroutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowArg {
    Node(Overflow),
    Elsewhere,
}

impl std::str::FromStr for OverflowArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "elsewhere" => Ok(Self::Elsewhere),
            other => other
                .parse()
                .map(Self::Node)
                .map_err(|e: String| format!("{e}, or elsewhere")),
        }
    }
}

/// Arguments of `simulator des`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Scenario CSV (`FunctionName,StartTimeMs` rows); none with
    /// --clients (a closed loop).
    #[arg(required_unless_present = "clients", conflicts_with = "clients")]
    pub scenario: Option<PathBuf>,
    /// Scheduler: an algorithm of the registry (`simulator des --help`
    /// lists them with their parameters).
    #[arg(long, short = 'a', default_value = "rr", help = format!("Scheduler: {}", registry::known_algorithms()))]
    pub algorithm: String,
    /// Worker nodes.
    #[arg(long, short = 'n', default_value_t = DesConfig::default().nodes)]
    pub nodes: u32,
    /// Cores per node (default: the profile's `cores`).
    #[arg(long)]
    pub cores: Option<u32>,
    /// All nodes share one machine of this many cores (model of a one-host
    /// live testbed) instead of --cores each.
    #[arg(long, conflicts_with = "cores")]
    pub machine_cores: Option<u32>,
    /// Capacity per node told to the scheduler.
    #[arg(long, default_value_t = DesConfig::default().node_capacity)]
    pub capacity: u32,
    /// Memory per node for function instances, in MB (told to the
    /// scheduler: OpenWhisk's memory slots).
    #[arg(long, default_value_t = DesConfig::default().node_memory_mb, value_parser = clap::value_parser!(u32).range(1..))]
    pub node_memory_mb: u32,
    /// Cost profile JSON (default, read at run time: $HF_DES_PROFILE, else
    /// profiles/process.json next to the executable, else
    /// simulator/profiles/process.json of the workspace above the current
    /// directory or above the executable; `simulator calibrate` writes one).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Use the ideal profile (no overheads) instead of a measured one.
    #[arg(long, conflicts_with = "profile")]
    pub ideal: bool,
    /// Simulate again, without a log, on N variants of the cost profile
    /// (0-64): each figure with a recorded spread moves within its
    /// uncertainty (`des::CostProfile::variant`). The summary line and
    /// `--summary-json` (`profile_variants`) give each result's range over
    /// them: how much of it the profile does not pin down.
    #[arg(
        long,
        default_value_t = 0,
        conflicts_with = "ideal",
        value_parser = clap::value_parser!(u32).range(0..=crate::experiment::MAX_PROFILE_VARIANTS as i64)
    )]
    pub profile_variants: u32,
    /// Instance concurrency model [default: hotfunctions, or lambda when
    /// --keep-alive-policy or --keep-alive-s is given].
    #[arg(long, value_enum)]
    pub instance_model: Option<InstanceModelArg>,
    /// Keep-alive policy of the Lambda model (implies --instance-model
    /// lambda): fixed, lru, greedy-dual (both evict idle instances under
    /// --node-memory-mb), histogram (Serverless in the Wild), ewma
    /// (pre-warming) [default: fixed].
    #[arg(long, value_name = "POLICY")]
    pub keep_alive_policy: Option<KeepAlivePolicy>,
    /// Keep-alive of idle instances in the Lambda model, seconds; given,
    /// it selects the Lambda model (as --keep-alive-policy does) [default:
    /// 600].
    #[arg(long)]
    pub keep_alive_s: Option<f64>,
    /// Model of functions not in the catalog: `cpu:MS`, `sleep:MS`,
    /// `cpu:MS+sleep:MS`, `exp:WARM_MS[:COLD_MS]` (exponential sleep),
    /// `exp-cpu:MEAN_MS` (exponential CPU work), `pct:p0=MS,...,p100=MS`
    /// (sleep drawn from percentiles, piecewise linear) or `pct-cpu:...`
    /// (CPU work likewise).
    #[arg(long)]
    pub default_function: Option<FunctionModel>,
    /// A catalog file of functions beyond the samples (the one `utils
    /// import` writes): they are modelled as the samples are (phases,
    /// package, memory), and a scenario row's DurationMs is split into
    /// CPU work and sleep by the function's CPU share.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Lambda model: which idle instance a call reuses, newest (the most
    /// recently created, as SimFaaS and AWS Lambda) or oldest (the first
    /// free one).
    #[arg(long, default_value = "newest", value_name = "ORDER")]
    pub reuse: ReuseOrder,
    /// Lambda model: reuse does not extend an instance's keep-alive (it
    /// runs from when the instance first became idle).
    #[arg(long)]
    pub no_keep_alive_extension: bool,
    /// Lambda model: most instances busy at once per node (SimFaaS's
    /// maximum concurrency; the flag alone means SimFaaS's 1000); a call
    /// that needs one more is handled by --overflow (rejected under
    /// over-commit) [default: unlimited].
    #[arg(
        long,
        value_name = "N",
        num_args = 0..=1,
        default_missing_value = "1000",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_running: Option<u32>,
    /// Lambda model: what a node does with a call that needs a new
    /// instance when it has no memory (--node-memory-mb) or instance slot
    /// left: over-commit (memory over-committed, as before), queue (FIFO
    /// at the node), reject (the call fails), elsewhere (the next node in
    /// id order that admits it, else it fails).
    #[arg(long, default_value = "over-commit", value_name = "RULE")]
    pub overflow: OverflowArg,
    /// Package size of functions not in the catalog, bytes.
    #[arg(long, default_value_t = DesConfig::default().default_package_bytes)]
    pub default_package_bytes: u64,

    /// The balancer's per-function settings (the JSON file of
    /// `load-balancer --function-settings`): each function's calls beyond
    /// its max_parallel wait in arrival order in front of the scheduler,
    /// a waiting call fails after wait_s (des::slim).
    #[arg(long, value_name = "FILE", help_heading = "SlimFaas layer")]
    pub function_settings: Option<PathBuf>,
    /// Cap on parallel calls of every function (replaces the settings
    /// file's max_parallel; without a file, the other settings are the
    /// defaults).
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(load_balancer::slim::settings::MAX_PARALLEL)),
        help_heading = "SlimFaas layer"
    )]
    pub max_parallel: Option<u32>,
    /// Scale to zero: a function's instances go after its
    /// idle_before_zero_s without a call (default 300 s): the Lambda model
    /// with a fixed keep-alive of that time, per function (des::slim).
    #[arg(
        long,
        conflicts_with_all = ["instance_model", "keep_alive_policy", "keep_alive_s"],
        help_heading = "SlimFaas layer"
    )]
    pub scale_to_zero: bool,

    /// Worker: image cache limit in bytes (-1 = off, the default).
    #[arg(
        long = "USER_CODE_SIZE_LIMIT",
        env = "USER_CODE_SIZE_LIMIT",
        allow_hyphen_values = true
    )]
    pub user_code_size_limit: Option<String>,
    /// Worker: pools for this many most recently used functions (-1 = off,
    /// the default).
    #[arg(
        long = "CONTAINER_POOL_LIMIT",
        env = "CONTAINER_POOL_LIMIT",
        allow_hyphen_values = true
    )]
    pub container_pool_limit: Option<String>,
    /// Worker: pooled instances per function (default 6).
    #[arg(long = "CONTAINER_POOL_NUM", env = "CONTAINER_POOL_NUM")]
    pub container_pool_num: Option<String>,
    /// Worker: REST mode, one shared instance per function (default false).
    #[arg(long = "USING_REST_MODE", env = "USING_REST_MODE")]
    pub using_rest_mode: Option<String>,
    /// Worker: idle lifetime of REST-mode instances, seconds (default 10).
    #[arg(long = "REST_CONTAINER_LIFE_TIME", env = "REST_CONTAINER_LIFE_TIME")]
    pub rest_container_life_time: Option<String>,

    /// The scheduler's parameters and seed (the seed also seeds the
    /// simulator's own RNG).
    #[command(flatten)]
    pub scheduler: SchedulerArgs,

    /// Replay speed (as `simulator replay --time-scale`): scenario times
    /// are divided by it.
    #[arg(long, default_value_t = DesConfig::default().time_scale, conflicts_with = "clients")]
    pub time_scale: f64,
    /// Functions' work scale (as the worker's HF_TIME_SCALE; default
    /// 1 / --time-scale, as `simulator experiment` runs live workers).
    #[arg(long, env = "HF_TIME_SCALE")]
    pub fn_time_scale: Option<f64>,
    /// Package scale (as the worker's HF_PACKAGE_SCALE): every package is
    /// this much of its catalog size, for the image cache, builds and
    /// instance loads.
    #[arg(long, env = "HF_PACKAGE_SCALE", default_value_t = DesConfig::default().package_scale)]
    pub package_scale: f64,
    /// Unix ms of virtual time zero (stamps of the log lines).
    #[arg(long, default_value_t = DEFAULT_EPOCH_MS, allow_negative_numbers = true)]
    pub epoch_ms: i64,
    /// Write the log (the replay's format) to this file, with its sidecar
    /// FILE.meta.json beside it; `-` writes it to standard output (no
    /// sidecar). Without --log no log is written, and a run under `rr` or
    /// `random` whose nodes share nothing else (the Lambda model with a
    /// fixed, LRU or Greedy-Dual keep-alive, no queue at nodes or at the
    /// balancer, no --overflow elsewhere, no --machine-cores) simulates
    /// its nodes apart, on every core: the same summary, faster.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Write no log: the default (kept for scripts that pass it).
    #[arg(long, conflicts_with = "log")]
    pub no_log: bool,
    /// Replace an existing log, sidecar or summary file (without it, an
    /// existing one is an error and nothing is written).
    #[arg(long)]
    pub overwrite: bool,
    /// Write the run summary (JSON) here (`-` = standard error): results,
    /// every resolved parameter, and the run's version, git revision,
    /// command line and profile file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// No progress bar and no summary line on standard error.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Closed loop instead of a scenario, as `simulator load`: this many
    /// clients (1..=10000), each sending its next call when its last one
    /// returns (after the think time), until --duration; or stages, e.g.
    /// 20,50,100: 20 clients for --duration, then 50, then 100 (at most 32).
    #[arg(
        long,
        requires = "duration",
        help_heading = "Closed loop (as simulator load)"
    )]
    pub clients: Option<String>,
    /// How long the clients start new calls, per stage (90s, 5m, ...; all
    /// stages at most 1 day).
    #[arg(long, value_parser = crate::replay::parse_duration, requires = "clients", help_heading = "Closed loop (as simulator load)")]
    pub duration: Option<std::time::Duration>,
    #[command(flatten, next_help_heading = "Closed loop (as simulator load)")]
    pub mix: crate::load::MixArgs,
    /// Seed of the clients' function choices and think times (`simulator
    /// load --seed`; --seed seeds the scheduler, as the balancer's).
    #[arg(
        long,
        default_value_t = 1,
        requires = "clients",
        help_heading = "Closed loop (as simulator load)"
    )]
    pub load_seed: u64,
    /// After --duration, how long calls in flight may finish; then they
    /// are cancelled and logged as errors, as `simulator load` does.
    #[arg(
        long,
        value_parser = crate::replay::parse_duration,
        default_value = "30s",
        requires = "clients",
        help_heading = "Closed loop (as simulator load)"
    )]
    pub grace: std::time::Duration,
}

/// What a run simulates: a scenario's calls (open loop), or clients.
#[derive(Debug)]
pub enum Input {
    Scenario(Workload),
    ClosedLoop(des::ClosedLoop),
}

impl Input {
    /// The scenario file, or `closed loop, --functions SPEC` (as `simulator
    /// load` names its runs in sidecars).
    pub fn describe(&self, args: &Args) -> String {
        match (self, &args.scenario) {
            (Self::Scenario(_), Some(path)) => path.display().to_string(),
            (Self::Scenario(_), None) => String::new(),
            (Self::ClosedLoop(c), _) => format!("closed loop, --functions {}", c.functions),
        }
    }
}

/// Where the cost profile is looked for when no `--profile` is given, in
/// the order it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSearch {
    /// `$HF_DES_PROFILE`, if set and not empty.
    pub env: Option<PathBuf>,
    /// `profiles/process.json` in the executable's directory.
    pub installed: Option<PathBuf>,
    /// The directories the workspace is looked for from (their ancestors
    /// included): the current directory, then the executable's.
    pub walk_from: Vec<PathBuf>,
}

/// The top of the workspace containing `dir` (a directory with a
/// `Cargo.toml` and `simulator/Cargo.toml`), if any.
fn workspace_root(dir: &Path) -> Option<&Path> {
    dir.ancestors()
        .find(|d| d.join("Cargo.toml").is_file() && d.join("simulator/Cargo.toml").is_file())
}

impl ProfileSearch {
    /// The search of this process: its environment, executable and
    /// current directory.
    pub fn from_environment() -> Self {
        let env = std::env::var_os(PROFILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let exe_dir = std::env::current_exe()
            .ok()
            .map(|e| std::fs::canonicalize(&e).unwrap_or(e))
            .and_then(|e| e.parent().map(Path::to_path_buf));
        let cwd = std::env::current_dir().ok();
        Self::new(env, exe_dir.as_deref(), cwd.as_deref())
    }

    /// The search given `$HF_DES_PROFILE`, the executable's directory and
    /// the current directory.
    pub fn new(env: Option<PathBuf>, exe_dir: Option<&Path>, cwd: Option<&Path>) -> Self {
        Self {
            env,
            installed: exe_dir.map(|d| d.join(INSTALLED_PROFILE)),
            walk_from: cwd
                .into_iter()
                .chain(exe_dir)
                .map(Path::to_path_buf)
                .collect(),
        }
    }

    /// The workspaces' profile paths, in search order (those whose
    /// workspace exists, the file not necessarily).
    fn workspace_profiles(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for dir in &self.walk_from {
            if let Some(root) = workspace_root(dir) {
                let p = root.join(WORKSPACE_PROFILE);
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// The first profile found, with how it was found; an error naming
    /// every place tried if there is none.
    pub fn find(&self) -> anyhow::Result<(PathBuf, CostProfile, &'static str)> {
        if let Some(p) = &self.env {
            let profile = CostProfile::load(p).with_context(|| {
                format!("{PROFILE_ENV}={} names no usable profile", p.display())
            })?;
            return Ok((p.clone(), profile, PROFILE_ENV));
        }
        if let Some(p) = self.installed.as_ref().filter(|p| p.is_file()) {
            return Ok((p.clone(), CostProfile::load(p)?, "next to the executable"));
        }
        if let Some(p) = self.workspace_profiles().into_iter().find(|p| p.is_file()) {
            let profile = CostProfile::load(&p)?;
            return Ok((p, profile, "workspace"));
        }
        let mut tried = vec![format!("${PROFILE_ENV} (not set)")];
        if let Some(p) = &self.installed {
            tried.push(format!("{} (next to the executable)", p.display()));
        }
        for dir in &self.walk_from {
            tried.push(match workspace_root(dir) {
                Some(root) => format!("{}", root.join(WORKSPACE_PROFILE).display()),
                None => format!(
                    "{WORKSPACE_PROFILE} in a workspace above {} (none there)",
                    dir.display()
                ),
            });
        }
        anyhow::bail!(
            "no cost profile found; tried: {}. Measure one with `simulator calibrate \
             <worker_url>` (it writes {WORKSPACE_PROFILE} in the workspace, or --out PATH), \
             pass one with --profile PATH or {PROFILE_ENV}=PATH, or run with --ideal (no \
             overheads)",
            tried.join("; ")
        )
    }

    /// Where a new profile goes so that this search reads it first:
    /// `$HF_DES_PROFILE` if set; else the installed profile if it exists;
    /// else the workspace's (found from the current directory, then from
    /// the executable's); else next to the executable; else
    /// `simulator/profiles/process.json` in the current directory.
    pub fn destination(&self) -> PathBuf {
        if let Some(p) = &self.env {
            return p.clone();
        }
        if let Some(p) = self.installed.as_ref().filter(|p| p.is_file()) {
            return p.clone();
        }
        if let Some(p) = self.workspace_profiles().into_iter().next() {
            return p;
        }
        self.installed
            .clone()
            .unwrap_or_else(|| PathBuf::from(WORKSPACE_PROFILE))
    }
}

/// The cost profile `simulator des` reads when no `--profile` is given
/// ([`ProfileSearch::find`] of this process), with the file it came from.
pub fn find_profile() -> anyhow::Result<(PathBuf, CostProfile)> {
    let (path, profile, _) = ProfileSearch::from_environment().find()?;
    Ok((path, profile))
}

/// The cost profile of `simulator experiment --mode des` for the workers'
/// `runtime` (`process` or `docker`): for `process`, the one `simulator
/// des` reads ([`find_profile`]); for another runtime, `<runtime>.json`
/// beside it (`simulator/profiles/` keeps both). `$HF_DES_PROFILE` is
/// taken as it is. Either way the profile must have been measured on that
/// runtime: the experiment records the runtime, and a run labelled
/// `docker` on the process runtime's costs would say what it did not do.
pub fn profile_of_runtime(runtime: &str) -> anyhow::Result<CostProfile> {
    let (found, profile, how) = ProfileSearch::from_environment().find()?;
    let (path, profile) = if how == PROFILE_ENV || runtime == "process" {
        (found, profile)
    } else {
        let path = found.with_file_name(format!("{runtime}.json"));
        if !path.is_file() {
            anyhow::bail!(
                "no cost profile of the {runtime} runtime: {} does not exist (beside {}); \
                 measure one with `simulator calibrate <worker_url of a {runtime} worker> --out {}`",
                path.display(),
                found.display(),
                path.display()
            );
        }
        let profile = CostProfile::load(&path)?;
        (path, profile)
    };
    if profile.runtime != runtime {
        anyhow::bail!(
            "the cost profile {} was measured on the {:?} runtime, not {runtime:?} (--runtime {runtime})",
            path.display(),
            profile.runtime
        );
    }
    Ok(profile)
}

/// Where `simulator calibrate` writes by default: the place
/// [`find_profile`] reads first ([`ProfileSearch::destination`]).
pub fn profile_destination() -> PathBuf {
    ProfileSearch::from_environment().destination()
}

impl Args {
    /// The worker's caching options: the defaults, with the flags given
    /// (read by the same parser as the worker's environment).
    pub fn worker_options(&self) -> anyhow::Result<CachingOptions> {
        let mut options = CachingOptions::default();
        let given = [
            &self.user_code_size_limit,
            &self.container_pool_limit,
            &self.container_pool_num,
            &self.using_rest_mode,
            &self.rest_container_life_time,
        ];
        for (name, value) in policy::node::options::ENV_NAMES.iter().zip(given) {
            if let Some(v) = value {
                // The bounds the worker and the balancer apply (a 400
                // there), so a run the live testbed refuses is refused here.
                protocol::limits::check_worker_option(name, v)?;
                options.set(name, v)?;
            }
        }
        Ok(options)
    }

    /// The cost profile and how it was chosen: `--ideal`, `--profile`, or
    /// [`ProfileSearch::find`].
    pub fn profile(&self) -> anyhow::Result<(CostProfile, &'static str)> {
        if self.ideal {
            Ok((CostProfile::default(), "--ideal"))
        } else if let Some(p) = &self.profile {
            Ok((CostProfile::load(p)?, "--profile"))
        } else {
            let (_, profile, found_by) = ProfileSearch::from_environment().find()?;
            Ok((profile, found_by))
        }
    }

    /// The scenario (read, streaming) or the closed loop (its mix read);
    /// errors name the file.
    pub fn input(&self) -> anyhow::Result<Input> {
        match (&self.scenario, &self.clients) {
            (Some(path), None) => {
                let workload = Workload::load(path)?;
                // Nothing to simulate is a mistake (a wrong or truncated
                // file), not a run of zero calls that exits 0.
                anyhow::ensure!(
                    !workload.arrivals.is_empty(),
                    "{}: no calls (the scenario is empty or only blank lines)",
                    path.display()
                );
                Ok(Input::Scenario(workload))
            }
            (None, Some(clients)) => {
                let clients = des::Stages::parse(clients)?;
                let duration = des::source::check_duration(self.duration.unwrap_or_default())?;
                des::source::check_total(clients.len(), duration)?;
                let (think, mix) = self.mix.resolve()?;
                Ok(Input::ClosedLoop(des::ClosedLoop {
                    clients,
                    duration,
                    think,
                    mix: std::sync::Arc::new(mix),
                    functions: self.mix.functions.to_string(),
                    seed: self.load_seed,
                    grace: self.grace,
                }))
            }
            _ => anyhow::bail!("give a scenario file or --clients N (a closed loop), not both"),
        }
    }

    /// The SlimFaas layer of `--function-settings`, `--max-parallel` and
    /// `--scale-to-zero` (None without any): the settings file read by the
    /// balancer's own parser (errors name the file, line and column).
    pub fn slim_settings(&self) -> anyhow::Result<Option<SlimSettings>> {
        if self.function_settings.is_none() && self.max_parallel.is_none() && !self.scale_to_zero {
            return Ok(None);
        }
        let file = match &self.function_settings {
            Some(path) => SettingsFile::load(path)?,
            None => SettingsFile::default(),
        };
        let resolve = |f: &FunctionSettings| SlimFunction {
            max_parallel: self.max_parallel.unwrap_or(f.max_parallel),
            wait_s: f.wait_s,
            idle_before_zero_s: f.idle_before_zero_s,
            min_instances: f.min_instances,
            retry_delays_s: f.retry_delays_s.clone(),
            safe_to_repeat: f.safe_to_repeat,
        };
        let named = self
            .function_settings
            .as_ref()
            .map(|p| p.display().to_string());
        let settings = SlimSettings {
            defaults: resolve(&file.defaults),
            functions: file
                .functions
                .iter()
                .map(|(name, f)| (name.clone(), resolve(f)))
                .collect(),
            file: named.clone(),
            scale_to_zero: self.scale_to_zero,
        };
        settings.check().map_err(|e| match named {
            Some(file) => anyhow::anyhow!("{file}: {e}"),
            None => anyhow::anyhow!("{e}"),
        })?;
        Ok(Some(settings))
    }

    /// The run's configuration (reads the profile).
    pub fn to_config(&self) -> anyhow::Result<DesConfig> {
        self.config_with(self.profile()?.0)
    }

    fn config_with(&self, profile: CostProfile) -> anyhow::Result<DesConfig> {
        let slim = self.slim_settings()?;
        let instances = match &slim {
            Some(s) if s.scale_to_zero => s.instance_model(),
            _ => choose_instance_model(
                self.instance_model.map(|m| m == InstanceModelArg::Lambda),
                self.keep_alive_policy,
                self.keep_alive_s,
            )?,
        };
        let scheduler = self.scheduler.param_set()?.scheduler(&self.algorithm)?;
        let catalog = match &self.catalog {
            Some(path) => Some(std::sync::Arc::new(sample_functions::Catalog::with_file(
                path,
            )?)),
            None => None,
        };
        let lambda_only = self.reuse != ReuseOrder::Newest
            || self.no_keep_alive_extension
            || self.max_running.is_some()
            || self.overflow != OverflowArg::Node(Overflow::OverCommit);
        if lambda_only && !matches!(instances, des::InstanceModel::Lambda { .. }) {
            anyhow::bail!(
                "--reuse, --no-keep-alive-extension, --max-running and --overflow apply to \
                 the Lambda model: add --instance-model lambda (or --keep-alive-policy)"
            );
        }
        Ok(DesConfig {
            scheduler,
            nodes: self.nodes,
            node_capacity: self.capacity,
            node_memory_mb: self.node_memory_mb,
            cores: self.cores.unwrap_or(profile.cores),
            machine_cores: self.machine_cores,
            worker: self.worker_options()?,
            instances,
            profile,
            catalog,
            catalog_file: self.catalog.as_ref().map(|p| p.display().to_string()),
            default_function: self.default_function.clone(),
            default_package_bytes: self.default_package_bytes,
            epoch_ms: self.epoch_ms,
            time_scale: self.time_scale,
            fn_time_scale: self.fn_time_scale.unwrap_or(1.0 / self.time_scale),
            package_scale: self.package_scale,
            reuse: ReuseRules {
                order: self.reuse,
                extend_on_reuse: !self.no_keep_alive_extension,
            },
            admission: Admission {
                max_running: self.max_running,
                overflow: match self.overflow {
                    OverflowArg::Node(o) => o,
                    OverflowArg::Elsewhere => Overflow::Reject,
                },
            },
            reroute: self.overflow == OverflowArg::Elsewhere,
            slim,
            // How fast, not what: results are the same on any host.
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        })
    }
}

/// Creates `path` (and its directory); an existing file is an error
/// naming `--overwrite` unless `overwrite`.
pub(crate) fn create(path: &Path, overwrite: bool) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let mut o = OpenOptions::new();
    o.write(true);
    if overwrite {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).with_context(|| {
        if path.exists() && !overwrite {
            already_exists(path)
        } else {
            format!("cannot create {}", path.display())
        }
    })
}

fn already_exists(path: &Path) -> String {
    format!(
        "{} already exists (pass --overwrite to replace it)",
        path.display()
    )
}

/// Fails, naming the first one, if any of `paths` exists and not
/// `overwrite`: checked before anything is written, so a refused run
/// leaves every file as it was.
pub(crate) fn refuse_existing(paths: &[&Path], overwrite: bool) -> anyhow::Result<()> {
    if overwrite {
        return Ok(());
    }
    match paths.iter().find(|p| p.exists()) {
        Some(p) => anyhow::bail!("{}", already_exists(p)),
        None => Ok(()),
    }
}

/// The sidecar of a log written under `config`: producer `simulator des`,
/// this version, `git`, `started_utc`, a cluster of `config.nodes`, the
/// algorithm's canonical name with every resolved parameter (defaults
/// included), the seed, `scenario`, the scales; in `extra`:
/// `cores_per_node` or `machine_cores`, `capacity`, `instance_model`,
/// `worker` (the caching options) and `profile` (its file, or null, with
/// its `runtime`); when given, `catalog` (its file), `default_function`
/// (the work model of functions not in the catalog, as `--default-function`
/// spells it), `semantics` (the reuse, admission and reroute rules, when
/// not the defaults) and `function_settings` (the SlimFaas layer's).
pub fn sidecar_for(
    config: &DesConfig,
    scenario: Option<&Path>,
    started_utc: String,
    git: Option<GitRevision>,
) -> RunSidecar {
    use serde_json::{json, Value};
    let mut s = RunSidecar::new(
        PRODUCER,
        env!("CARGO_PKG_VERSION"),
        started_utc,
        Cluster::of_size(config.nodes as usize),
    );
    s.git = git;
    s.algorithm = Some(config.scheduler.name().to_string());
    s.parameters = config
        .scheduler
        .params()
        .map(|(param, value)| (param.name().to_string(), json!(value)))
        .collect();
    s.seed = Some(config.scheduler.seed());
    s.scenario = scenario.map(|p| p.display().to_string());
    s.scales = Scales {
        time_scale: config.time_scale,
        fn_time_scale: Some(config.fn_time_scale),
        package_scale: Some(config.package_scale),
    };
    let extra = &mut s.extra;
    match config.machine_cores {
        Some(cores) => extra.insert("machine_cores".into(), json!(cores)),
        None => extra.insert("cores_per_node".into(), json!(config.cores)),
    };
    extra.insert("capacity".into(), json!(config.node_capacity));
    extra.insert("node_memory_mb".into(), json!(config.node_memory_mb));
    extra.insert(
        "instance_model".into(),
        serde_json::to_value(config.instances).unwrap_or(Value::Null),
    );
    extra.insert(
        "worker".into(),
        serde_json::to_value(config.worker).unwrap_or(Value::Null),
    );
    extra.insert(
        "profile".into(),
        json!({ "file": config.profile.file, "runtime": config.profile.runtime }),
    );
    // Written only when given, so older sidecars read the same.
    if let Some(file) = &config.catalog_file {
        extra.insert("catalog".into(), json!(file));
    }
    if let Some(model) = &config.default_function {
        extra.insert("default_function".into(), json!(model.to_string()));
    }
    if let Some(slim) = &config.slim {
        extra.insert(
            "function_settings".into(),
            serde_json::to_value(slim).unwrap_or(Value::Null),
        );
    }
    let semantics = (config.reuse, config.admission, config.reroute);
    if semantics != Default::default() {
        extra.insert(
            "semantics".into(),
            json!({ "reuse": config.reuse, "admission": config.admission, "reroute": config.reroute }),
        );
    }
    s
}

/// The start time as sidecars write it: `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// How a `simulator des` run came about: the `run` section of its summary.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// [`PRODUCER`].
    pub producer: &'static str,
    /// `CARGO_PKG_VERSION` of the simulator.
    pub version: &'static str,
    /// The source revision, read before anything was written.
    pub git: Option<GitRevision>,
    /// `YYYY-MM-DD HH:MM:SS UTC`.
    pub started_utc: String,
    /// The arguments as given (the program name first).
    pub command_line: Vec<String>,
    /// The environment variables the command reads that were set (the
    /// worker options, scheduler parameters, `SEED`, `HF_TIME_SCALE`,
    /// `HF_PACKAGE_SCALE`, `HF_DES_PROFILE`), as given.
    pub environment: BTreeMap<String, String>,
    pub scenario: String,
    /// The log file (`-`: standard output; null: none written).
    pub log: Option<String>,
    /// The log's sidecar, if one was written.
    pub sidecar: Option<String>,
    /// How the cost profile was chosen: `--profile`, `HF_DES_PROFILE`,
    /// `next to the executable`, `workspace` or `--ideal` (its file and
    /// values are in `config.profile`).
    pub profile_found_by: &'static str,
    /// Whether the profile was measured on this kind of machine
    /// ([`crate::profile_origin`]).
    pub profile_origin: ProfileOrigin,
}

/// What `--summary-json` writes: the [`Summary`]'s fields, then `run`.
#[derive(Debug, Serialize)]
pub struct SummaryRecord<'a> {
    #[serde(flatten)]
    pub summary: &'a Summary,
    pub run: &'a RunInfo,
    /// `--profile-variants`: the run again on variants of the cost profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_variants: Option<&'a ProfileVariants>,
}

/// The environment variables `simulator des` reads, with their values,
/// for those that are set.
fn environment_read() -> BTreeMap<String, String> {
    let names = policy::node::options::ENV_NAMES
        .iter()
        .copied()
        .chain(registry::param_names())
        .chain(["SEED", "HF_TIME_SCALE", "HF_PACKAGE_SCALE", PROFILE_ENV]);
    names
        .filter_map(|n| {
            std::env::var_os(n).map(|v| (n.to_string(), v.to_string_lossy().into_owned()))
        })
        .collect()
}

/// Runs `input` under `config`: [`simulate`] for a scenario, else the
/// closed loop ([`des::run_closed_loop`], no progress bar: its length is
/// not known before); fills in the wall-clock figures.
pub fn simulate_input(
    input: &Input,
    config: &DesConfig,
    log: Option<&mut dyn Write>,
    quiet: bool,
) -> anyhow::Result<Summary> {
    match input {
        Input::Scenario(workload) => simulate(workload, config, log, quiet),
        Input::ClosedLoop(closed) => {
            #[allow(clippy::disallowed_methods)] // the wall time of the run
            let started = std::time::Instant::now();
            let mut summary = des::run_closed_loop(closed, config, log, &mut |_| {})?;
            summary.performance = Performance::of(&summary, started.elapsed().as_secs_f64());
            Ok(summary)
        }
    }
}

/// Runs `workload` under `config`, writing the log to `log` (if any),
/// with a progress bar on stderr for long runs unless `quiet`; fills in the
/// wall-clock figures.
pub fn simulate(
    workload: &Workload,
    config: &DesConfig,
    log: Option<&mut dyn Write>,
    quiet: bool,
) -> anyhow::Result<Summary> {
    #[allow(clippy::disallowed_methods)] // the wall time of the run
    let started = std::time::Instant::now();
    let bar = (!quiet && workload.arrivals.len() >= 100_000).then(|| {
        let pb = indicatif::ProgressBar::new(workload.arrivals.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} calls ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let mut progress = |done: u64| {
        if let Some(pb) = &bar {
            pb.set_position(done);
        }
    };
    let mut summary = des::run_workload(workload, config, log, &mut progress)?;
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    summary.performance = Performance::of(&summary, started.elapsed().as_secs_f64());
    Ok(summary)
}

/// `--profile-variants`: `input` again, without a log, on each variant of
/// `config`'s cost profile; variant 0 is the run's own `summary`.
fn simulate_variants(
    args: &Args,
    input: &Input,
    config: &DesConfig,
    summary: &Summary,
) -> anyhow::Result<ProfileVariants> {
    let algorithm = config.scheduler.name();
    let count = args.profile_variants;
    if !args.quiet {
        crate::note!(
            "des: {count} runs on variants of the cost profile (moving {})",
            config.profile.varied_figures().join(", ")
        );
    }
    let mut runs = vec![VariantRun::of(0, algorithm, 0, summary)];
    for k in 1..=count {
        let on_variant = DesConfig {
            profile: config.profile.variant(k),
            ..config.clone()
        };
        let s = simulate_input(input, &on_variant, None, true)
            .with_context(|| format!("profile variant {k}"))?;
        if !args.quiet {
            crate::note!(
                "des: [variant {k}/{count}] {} calls simulated in {:.2} s",
                s.invocations,
                s.performance.wall_seconds
            );
        }
        runs.push(VariantRun::of(0, algorithm, k, &s));
    }
    Ok(ProfileVariants::new(count, &config.profile, runs))
}

/// One line: each figure on the profile and its range over the variants.
fn variants_line(v: &ProfileVariants) -> String {
    let runs: Vec<&VariantRun> = v.runs.iter().collect();
    let parts: Vec<String> = VARIANT_FIGURES
        .iter()
        .map(|figure| {
            let (on_profile, range) = on_profile_and_range(&runs, figure);
            format!("{} {on_profile} ({range})", figure.0)
        })
        .collect();
    format!(
        "over the profile and {} variants of it: {}",
        v.count,
        parts.join(", ")
    )
}

/// Runs `simulator des`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let git = crate::source_revision();
    let started_utc = utc_now();
    let (profile, profile_found_by) = args.profile()?;
    let profile_origin = ProfileOrigin::of(&profile, &HostInfo::read());
    if args.profile_variants > 0 {
        if let Some(why) = unvariable(&profile) {
            anyhow::bail!(why);
        }
    }
    let config = args.config_with(profile)?;
    let input = args.input()?;
    let described = input.describe(&args);
    // Bad input is refused before any output exists, naming the file.
    match &input {
        Input::Scenario(workload) => {
            des::check(workload, &config).map_err(|e| anyhow::anyhow!("{described}: {e}"))?
        }
        Input::ClosedLoop(closed) => des::check_closed_loop(closed, &config)?,
    }

    let log_file = args.log.as_deref().filter(|p| p.as_os_str() != "-");
    let log_stdout = args.log.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let sidecar_file = log_file.map(sidecar::sidecar_path);
    let summary_file = args
        .summary_json
        .as_deref()
        .filter(|p| p.as_os_str() != "-");
    let outputs: Vec<&Path> = [log_file, sidecar_file.as_deref(), summary_file]
        .into_iter()
        .flatten()
        .collect();
    refuse_existing(&outputs, args.overwrite)?;
    // Opened before the run, first: a summary path that cannot be written
    // fails now, before any other output, not after the simulation.
    let mut summary_out = match summary_file {
        Some(p) => Some(create(p, args.overwrite)?),
        None => None,
    };

    let summary = if let Some(path) = log_file {
        let mut w = BufWriter::with_capacity(1 << 20, create(path, args.overwrite)?);
        if let Some(side) = &sidecar_file {
            let mut record = sidecar_for(
                &config,
                args.scenario.as_deref(),
                started_utc.clone(),
                git.clone(),
            );
            record.scenario_blake2b = args
                .scenario
                .as_deref()
                .and_then(|p| utils::provenance::file_blake2b(p).ok());
            if let Input::ClosedLoop(closed) = &input {
                // As `simulator load` records its runs.
                record.scenario = Some(described.clone());
                record.extra.insert("load".into(), closed.parameters());
            }
            let mut f = create(side, args.overwrite)?;
            f.write_all(record.to_json().as_bytes())
                .with_context(|| format!("writing {}", side.display()))?;
        }
        let s = simulate_input(&input, &config, Some(&mut w), args.quiet)?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        s
    } else if log_stdout {
        let stdout = std::io::stdout();
        let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
        let s = simulate_input(&input, &config, Some(&mut w), args.quiet)?;
        w.flush().context("writing the log to standard output")?;
        s
    } else {
        simulate_input(&input, &config, None, args.quiet)?
    };

    let variants = (args.profile_variants > 0)
        .then(|| simulate_variants(&args, &input, &config, &summary))
        .transpose()?;

    if let Some(p) = &args.summary_json {
        let run = RunInfo {
            producer: PRODUCER,
            version: env!("CARGO_PKG_VERSION"),
            git,
            started_utc,
            command_line: std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            environment: environment_read(),
            scenario: described.clone(),
            log: args.log.as_ref().map(|p| p.display().to_string()),
            sidecar: sidecar_file.as_ref().map(|p| p.display().to_string()),
            profile_found_by,
            profile_origin: profile_origin.clone(),
        };
        let record = SummaryRecord {
            summary: &summary,
            run: &run,
            profile_variants: variants.as_ref(),
        };
        let json = serde_json::to_string_pretty(&record)?;
        match summary_out.as_mut() {
            Some(f) => {
                writeln!(f, "{json}").with_context(|| format!("writing {}", p.display()))?;
            }
            None => crate::note!("{json}"),
        }
    }
    if !args.quiet {
        crate::note!("des: {}", summary_line(&summary));
        if let Some(v) = &variants {
            crate::note!("des: {}", variants_line(v));
        }
        if profile_origin.worth_a_note() {
            crate::note!("des: cost profile: {}", profile_origin.text);
        }
        if let Some(q) = &summary.queue {
            let o = &q.overall;
            crate::note!(
                "des: queue (max_parallel): {} of {} calls waited ({} gave up after wait_s); wait mean {:.1} ms, p50 {:.1} ms, p99 {:.1} ms; longest queue {}",
                o.waited,
                o.calls,
                o.timed_out,
                o.wait_ms.mean,
                o.wait_ms.p50,
                o.wait_ms.p99,
                o.max_queue_length
            );
            if o.retries + o.retries_spent + q.min_instances_started > 0 {
                crate::note!(
                    "des: queue: {} retries ({} calls failed with their retries spent); {} instances started for min_instances",
                    o.retries, o.retries_spent, q.min_instances_started
                );
            }
        }
        if let Some(closed) = &summary.closed_loop {
            crate::note!(
                "des: closed loop of {} clients: throughput {:.2} calls/s (successful calls over {:.3} s to the last reply), {} cancelled after the grace",
                closed.calls_per_client.len(),
                closed.throughput_per_s,
                closed.last_reply_s,
                closed.cancelled
            );
            for st in &closed.stages {
                crate::note!("des: {}", stage_line(st));
            }
        }
        if args.log.is_none() && !args.no_log {
            crate::note!("des: no log written (--log FILE writes it, --log - to standard output)");
        }
    }
    Ok(())
}

/// One stage's figures on one line (`simulator des` and `simulator load`).
pub fn stage_line(st: &des::StageSummary) -> String {
    let response = if st.ok == 0 {
        "no response time (no successful call)".to_string()
    } else {
        format!(
            "response mean {:.1} ms, p50 {} ms, p99 {} ms",
            st.response_mean_ms, st.response_p50_ms, st.response_p99_ms
        )
    };
    format!(
        "stage {} ({} clients from {:.0} s): {} calls, {} ok, {} errors, {} cancelled, {:.2} calls/s, {response}, {} cold starts",
        st.stage,
        st.clients,
        st.start_s,
        st.calls,
        st.ok,
        st.errors,
        st.cancelled,
        st.throughput_per_s,
        st.cold_starts
    )
}

/// The run's one-line summary (after `des: `). Cancelled calls (a closed
/// loop's, at the end of its grace) are error lines of the log as failed
/// calls are, so both are named; a run without a successful call has no
/// latency, which the line says instead of a mean of 0 (the JSON summary
/// keeps its zeros beside `completed`), and a p99 over too few calls to
/// bound it says so ([`utils::stats::p99_caveat`]).
pub fn summary_line(summary: &des::Summary) -> String {
    let cancelled = if summary.cancelled > 0 {
        format!(", {} cancelled", summary.cancelled)
    } else {
        String::new()
    };
    let latency = if summary.completed == 0 {
        "no latency: no call succeeded".to_string()
    } else {
        format!(
            "latency (duration - internal execution time, successful calls): mean {:.1} ms, p99 {:.1} ms{}",
            summary.latency_ms.mean,
            summary.latency_ms.p99,
            utils::stats::p99_caveat(summary.completed)
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        )
    };
    format!(
        "{} calls ({} failed{cancelled}, {} cold) on {} nodes with {} in {:.3} s simulated / {:.3} s wall ({:.0} calls/s); {latency}; seed {}",
        summary.invocations,
        summary.failed,
        summary.cold_starts,
        summary.config.nodes,
        summary.config.scheduler.name(),
        summary.simulated_seconds,
        summary.performance.wall_seconds,
        summary.performance.invocations_per_second,
        summary.seed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake workspace under `root`, with its profile if `profile`.
    fn workspace(root: &Path, profile: bool) {
        std::fs::create_dir_all(root.join("simulator/profiles")).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(root.join("simulator/Cargo.toml"), "[package]\n").unwrap();
        if profile {
            std::fs::write(root.join(WORKSPACE_PROFILE), r#"{"runtime": "ws"}"#).unwrap();
        }
    }

    #[test]
    fn the_profile_search_order_and_its_error() {
        let t = tempfile::tempdir().unwrap();
        let (ws, exe, elsewhere) = (
            t.path().join("ws"),
            t.path().join("bin"),
            t.path().join("x"),
        );
        let deep = ws.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::create_dir_all(exe.join("profiles")).unwrap();

        // Nothing anywhere: an error naming every place and the remedies.
        let none = ProfileSearch::new(None, Some(&exe), Some(&elsewhere));
        let err = none.find().unwrap_err().to_string();
        for needle in [
            "HF_DES_PROFILE (not set)",
            &exe.join(INSTALLED_PROFILE).display().to_string(),
            &elsewhere.display().to_string(),
            "simulator calibrate <worker_url>",
            "--ideal",
        ] {
            assert!(err.contains(needle), "{needle} not in: {err}");
        }
        assert_eq!(none.destination(), exe.join(INSTALLED_PROFILE));

        // A workspace above the current directory (walked up from a/b).
        workspace(&ws, true);
        let s = ProfileSearch::new(None, Some(&exe), Some(&deep));
        let (p, profile, by) = s.find().unwrap();
        assert_eq!(
            (p.clone(), profile.runtime.as_str(), by),
            (ws.join(WORKSPACE_PROFILE), "ws", "workspace")
        );
        assert_eq!(
            profile.file.as_deref(),
            Some(p.display().to_string().as_str())
        );
        assert_eq!(s.destination(), ws.join(WORKSPACE_PROFILE));
        // ... or above the executable's directory.
        let s = ProfileSearch::new(None, Some(&deep), Some(&elsewhere));
        assert_eq!(s.find().unwrap().0, ws.join(WORKSPACE_PROFILE));

        // An installed profile next to the executable comes first.
        std::fs::write(exe.join(INSTALLED_PROFILE), r#"{"runtime": "installed"}"#).unwrap();
        let s = ProfileSearch::new(None, Some(&exe), Some(&deep));
        assert_eq!(s.find().unwrap().1.runtime, "installed");
        assert_eq!(s.destination(), exe.join(INSTALLED_PROFILE));

        // HF_DES_PROFILE before everything, and never a silent fallback.
        let env = t.path().join("env.json");
        let s = ProfileSearch::new(Some(env.clone()), Some(&exe), Some(&deep));
        assert_eq!(s.destination(), env);
        let err = format!("{:#}", s.find().unwrap_err());
        assert!(
            err.contains("HF_DES_PROFILE") && err.contains("env.json"),
            "{err}"
        );
        std::fs::write(&env, r#"{"runtime": "env"}"#).unwrap();
        assert_eq!(s.find().unwrap().1.runtime, "env");

        // A workspace without its profile: calibrate writes there.
        std::fs::remove_file(ws.join(WORKSPACE_PROFILE)).unwrap();
        std::fs::remove_file(exe.join(INSTALLED_PROFILE)).unwrap();
        let s = ProfileSearch::new(None, Some(&exe), Some(&deep));
        assert!(s.find().is_err());
        assert_eq!(s.destination(), ws.join(WORKSPACE_PROFILE));
    }

    #[test]
    fn the_sidecar_has_every_resolved_parameter() {
        let config = DesConfig {
            scheduler: policy::scheduler::SchedulerConfig::new("tradeoff", [("seed", "3")])
                .unwrap(),
            nodes: 40,
            cores: 8,
            ..DesConfig::default()
        };
        let s = sidecar_for(
            &config,
            Some(Path::new("scenarios/small.csv")),
            "2026-12-02 06:00:00 UTC".into(),
            None,
        );
        assert_eq!(s.producer, PRODUCER);
        assert_eq!(s.cluster.size, 40);
        assert_eq!(s.algorithm.as_deref(), Some("tradeoff"));
        assert_eq!(s.parameters["ALPHA"], 0.0);
        assert_eq!(s.parameters["BETA"], 0.5);
        assert_eq!(s.seed, Some(3));
        assert_eq!(s.scenario.as_deref(), Some("scenarios/small.csv"));
        assert_eq!(s.extra["cores_per_node"], 8);
        assert!(s.extra.get("machine_cores").is_none());
        assert_eq!(s.extra["profile"]["file"], serde_json::Value::Null);
        assert_eq!(RunSidecar::parse(&s.to_json()).unwrap(), s);
        // Defaults: no semantics and no default function recorded, so
        // sidecars read as before these options existed.
        assert!(s.extra.get("semantics").is_none());
        assert!(s.extra.get("default_function").is_none());
    }

    /// `simulator des` as its command line parses it.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Args {
        use clap::Parser;
        let mut argv = vec!["des", "s.csv", "--ideal", "--instance-model", "lambda"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn max_running_alone_is_simfaas_maximum_concurrency() {
        assert_eq!(parse(&[]).max_running, None);
        assert_eq!(
            parse(&["--max-running"]).max_running,
            Some(Admission::SIMFAAS_MAX_RUNNING)
        );
        assert_eq!(
            parse(&["--max-running", "--overflow", "queue"]).max_running,
            Some(1000)
        );
        assert_eq!(parse(&["--max-running", "7"]).max_running, Some(7));
    }

    #[test]
    fn the_sidecar_records_every_semantics_option() {
        let args = parse(&[
            "--reuse",
            "oldest",
            "--no-keep-alive-extension",
            "--max-running",
            "--overflow",
            "elsewhere",
            "--default-function",
            "pct-cpu:p0=1,p50=10,p100=20",
        ]);
        let config = args.config_with(CostProfile::default()).unwrap();
        let s = sidecar_for(&config, None, "2026-12-03 05:00:00 UTC".into(), None);
        let semantics = &s.extra["semantics"];
        assert_eq!(semantics["reuse"]["order"], "oldest");
        assert_eq!(semantics["reuse"]["extend_on_reuse"], false);
        assert_eq!(semantics["admission"]["max_running"], 1000);
        assert_eq!(semantics["admission"]["overflow"], "reject");
        assert_eq!(semantics["reroute"], true);
        assert_eq!(s.extra["default_function"], "pct-cpu:p0=1,p50=10,p100=20");
        assert_eq!(RunSidecar::parse(&s.to_json()).unwrap(), s);
    }
}
