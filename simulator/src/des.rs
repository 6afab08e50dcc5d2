//! `simulator des`: the command line of the discrete-event simulator (the
//! `des` crate), which runs a scenario on the very scheduler and node-model
//! code that runs live.
//!
//! It reads the scenario and the cost profile, builds a [`DesConfig`] from
//! its options ([`Args::to_config`]), runs [`des::run_workload`] with a
//! progress bar on long runs, measures the wall time, and writes the log
//! (the replay's format) and the summary.
//!
//! Options (defaults): `--algorithm rr`, `--nodes 4`, `--cores` (the
//! profile's, 2) per node or `--machine-cores N` shared by all nodes (a
//! one-host testbed), `--capacity 64`, `--instance-model hotfunctions|lambda`
//! (`hotfunctions`), `--keep-alive-s 600` (Lambda model); the live worker's
//! `USER_CODE_SIZE_LIMIT` (-1), `CONTAINER_POOL_LIMIT` (-1),
//! `CONTAINER_POOL_NUM` (6), `USING_REST_MODE` (false),
//! `REST_CONTAINER_LIFE_TIME` (10 s), as flags of the same name or
//! environment variables; the balancer's `T` (8), `T1` (8), `T2` (5), `T3`
//! (3), `ALPHA` (0.0), `BETA` (0.5), `seed` (0), likewise.
//!

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use des::{
    CostProfile, DesConfig, FunctionModel, InstanceModel, Performance, Summary, Workload,
    DEFAULT_EPOCH_MS,
};
use load_balancer::cli::SchedulerArgs;
use policy::node::keep_alive::KeepAlivePool;
use policy::node::options::CachingOptions;
use policy::scheduler::registry;

/// How instances serve calls (CLI form of [`InstanceModel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InstanceModelArg {
    /// HotFunctions' worker (per-call instances + pool, or REST mode).
    Hotfunctions,
    /// AWS Lambda: one request per instance, keep-alive expiry.
    Lambda,
}

/// Arguments of `simulator des`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Scenario CSV (`FunctionName,StartTimeMs` rows).
    pub scenario: PathBuf,
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
    /// Cost profile JSON (default: simulator/profiles/process.json, embedded).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Use the ideal profile (no overheads) instead of a measured one.
    #[arg(long, conflicts_with = "profile")]
    pub ideal: bool,
    /// Instance concurrency model.
    #[arg(long, value_enum, default_value = "hotfunctions")]
    pub instance_model: InstanceModelArg,
    /// Keep-alive of idle instances in the Lambda model, seconds.
    #[arg(long, default_value_t = KeepAlivePool::DEFAULT_KEEP_ALIVE.as_secs_f64())]
    pub keep_alive_s: f64,
    /// Model of functions not in the catalog: cpu:MS, sleep:MS,
    /// cpu:MS+sleep:MS, exp:WARM_MS or exp:WARM_MS:COLD_MS.
    #[arg(long)]
    pub default_function: Option<FunctionModel>,
    /// Package size of functions not in the catalog, bytes.
    #[arg(long, default_value_t = DesConfig::default().default_package_bytes)]
    pub default_package_bytes: u64,

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
    #[arg(long, default_value_t = DesConfig::default().time_scale)]
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
    /// Log file (default: standard output).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Write no log (scale runs).
    #[arg(long, conflicts_with = "log")]
    pub no_log: bool,
    /// Replace an existing log or summary file.
    #[arg(long)]
    pub overwrite: bool,
    /// Write the run summary (JSON) here (`-` = standard error).
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The profile checked in for the process runtime, embedded as the default.
pub const DEFAULT_PROFILE_JSON: &str = include_str!("../profiles/process.json");

/// The profile of `profiles/process.json`, checked in and embedded: the
/// default of `simulator des` and of `simulator experiment --mode des`.
pub fn default_profile() -> anyhow::Result<CostProfile> {
    let p: CostProfile =
        serde_json::from_str(DEFAULT_PROFILE_JSON).context("embedded profiles/process.json")?;
    p.check("embedded profiles/process.json")?;
    Ok(p)
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
                options.set(name, v)?;
            }
        }
        Ok(options)
    }

    /// The run's configuration (reads the profile file if one is given).
    pub fn to_config(&self) -> anyhow::Result<DesConfig> {
        let profile = if self.ideal {
            CostProfile::default()
        } else if let Some(p) = &self.profile {
            CostProfile::load(p)?
        } else {
            default_profile()?
        };
        if !(self.keep_alive_s.is_finite() && self.keep_alive_s >= 0.0) {
            anyhow::bail!(
                "--keep-alive-s must be a number >= 0 (is {})",
                self.keep_alive_s
            );
        }
        let instances = match self.instance_model {
            InstanceModelArg::Hotfunctions => InstanceModel::HotFunctions,
            InstanceModelArg::Lambda => InstanceModel::Lambda {
                keep_alive: Duration::from_secs_f64(self.keep_alive_s),
            },
        };
        let scheduler = self.scheduler.param_set()?.scheduler(&self.algorithm)?;
        Ok(DesConfig {
            scheduler,
            nodes: self.nodes,
            node_capacity: self.capacity,
            cores: self.cores.unwrap_or(profile.cores).max(1),
            machine_cores: self.machine_cores.map(|c| c.max(1)),
            worker: self.worker_options()?,
            instances,
            profile,
            default_function: self.default_function.clone(),
            default_package_bytes: self.default_package_bytes,
            epoch_ms: self.epoch_ms,
            time_scale: self.time_scale,
            fn_time_scale: self.fn_time_scale.unwrap_or(1.0 / self.time_scale),
            package_scale: self.package_scale,
        })
    }
}

fn create(path: &Path, overwrite: bool) -> anyhow::Result<std::fs::File> {
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
            format!(
                "{} already exists (pass --overwrite to replace it)",
                path.display()
            )
        } else {
            format!("cannot create {}", path.display())
        }
    })
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

/// Runs `simulator des`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let workload = Workload::load(&args.scenario)?;
    let summary = if args.no_log {
        simulate(&workload, &config, None, args.quiet)?
    } else if let Some(path) = &args.log {
        let mut w = BufWriter::with_capacity(1 << 20, create(path, args.overwrite)?);
        let s = simulate(&workload, &config, Some(&mut w), args.quiet)?;
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
        s
    } else {
        let stdout = std::io::stdout();
        let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
        let s = simulate(&workload, &config, Some(&mut w), args.quiet)?;
        w.flush().context("writing the log to standard output")?;
        s
    };
    let json = serde_json::to_string_pretty(&summary)?;
    match &args.summary_json {
        Some(p) if p.as_os_str() == "-" => eprintln!("{json}"),
        Some(p) => {
            let mut f = create(p, args.overwrite)?;
            writeln!(f, "{json}").with_context(|| format!("writing {}", p.display()))?;
        }
        None => {}
    }
    if !args.quiet {
        eprintln!(
            "des: {} calls ({} failed, {} cold) on {} nodes with {} in {:.3} s simulated / {:.3} s wall ({:.0} calls/s); mean latency {:.1} ms, p99 {:.1} ms; seed {}",
            summary.invocations,
            summary.failed,
            summary.cold_starts,
            config.nodes,
            summary.config.scheduler.name(),
            summary.simulated_seconds,
            summary.performance.wall_seconds,
            summary.performance.invocations_per_second,
            summary.latency_ms.mean,
            summary.latency_ms.p99,
            summary.seed
        );
    }
    Ok(())
}
