//! `load-balancer`: the HTTP balancer on :8111.
//!
//! Output: one start-up line on stdout, always (version, address,
//! algorithm with its resolved parameters, seed, nodes); log events on
//! stderr, filtered by `RUST_LOG` (default `info`: node changes, health
//! flips, reconfigurations; never one line per call; a node going offline
//! is a warning), without colour codes unless stderr is a terminal.
//!
//! `load-balancer <algorithm> [fake_nodes]`, as the original HotFunctions
//! balancer, plus flags; the algorithms are those of the scheduler
//! registry (`rr`, `ll`, `ch`/`hash`, `pasch`, `ours`, `tradeoff`, ...).
//! Workers come from `--nodes`, `--config` (a JSON array of URLs), or
//! `./nodes.config.json` as in the original.
//!
//! Scheduler parameters, applied in this order (a later one wins):
//! the original's environment variables and same-named flags, one per bare
//! parameter name of the registry (`T`, `T1`, `T2`, `T3`, `ALPHA`, `BETA`;
//! `--T 4` or `T=4` sets `T` wherever it applies); `--seed` (or `SEED`);
//! then each `--param KEY=VALUE` (`ch.T=4`, `T=4`, `seed=7`). The registry
//! checks every value, as it does for `/configure` and the simulator.
//!
//! Management (`protocol::mgmt`): `--mgmt-listen ADDR` serves the
//! management routes on a listener of their own (and refuses them on the
//! data port); `--mgmt-token-file PATH` (or `HF_MGMT_TOKEN`) sets the
//! bearer token non-loopback peers need (and that fan-out calls carry to
//! the workers); `--mgmt-require-token` asks it of loopback peers too;
//! `--node-allow CIDR,...` limits the nodes `PUT /1/lb/nodes` may add.
//!
//! `GET /metrics` serves Prometheus metrics (`load_balancer::metrics`);
//! `--no-metrics` turns them off.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use load_balancer::cli::SchedulerArgs;
use load_balancer::{BalancerConfig, HealthConfig};
use policy::scheduler::{registry, NodeInfo};

/// FaaS load balancer (a Rust port of HotFunctions' balancer).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[arg(
        help = format!("Scheduling algorithm: {}", registry::known_algorithms()),
        long_help = format!(
            "Scheduling algorithm: {}{}",
            registry::known_algorithms(),
            registry::algorithms_help()
        )
    )]
    algorithm: String,
    /// Run without workers, with this many fake nodes (0: real workers).
    #[arg(default_value_t = 0)]
    fake_nodes: u32,
    /// Port to listen on.
    #[arg(long, default_value_t = 8111)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Worker base URLs, comma-separated (ids 0.. in this order).
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// A JSON array of worker URLs (the original's nodes.config.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Sleep of one fake-mode call, in ms.
    #[arg(long, default_value_t = 4000)]
    fake_delay_ms: u64,
    /// Health-check interval, in ms.
    #[arg(long, default_value_t = 1000)]
    health_interval_ms: u64,
    /// Health-check timeout, in ms.
    #[arg(long, default_value_t = 1000)]
    health_timeout_ms: u64,
    /// Consecutive failed checks that take a node offline.
    #[arg(long, default_value_t = 2)]
    health_fall: u32,
    /// Consecutive passed checks that bring a node back online.
    #[arg(long, default_value_t = 1)]
    health_rise: u32,
    /// Budget for connecting to a worker, in ms.
    #[arg(long, default_value_t = 1000)]
    connect_timeout_ms: u64,
    /// HTTP server threads (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Budget of each worker's reply to a forwarded /clear or /configure,
    /// in ms (a worker that does not answer in time is reported failed).
    #[arg(long, default_value_t = load_balancer::config::DEFAULT_FANOUT_TIMEOUT_MS)]
    fanout_timeout_ms: u64,
    /// Budget of each worker's reply to a forwarded /prepare, in ms
    /// (building every function's image may take minutes).
    #[arg(long, default_value_t = load_balancer::config::DEFAULT_PREPARE_TIMEOUT_MS)]
    prepare_timeout_ms: u64,
    /// Start with no worker nodes; they join later (`PUT /1/lb/nodes`, or
    /// `worker-front start --join URL`).
    #[arg(long)]
    start_empty: bool,
    /// Capacity of each node, told to the scheduler.
    #[arg(long, default_value_t = NodeInfo::DEFAULT_CAPACITY)]
    node_capacity: u32,
    /// Cores of each node, told to the scheduler (hermod's free cores).
    #[arg(long, default_value_t = NodeInfo::DEFAULT_CORES)]
    node_cores: u32,
    /// Memory of each node for function instances, in MB, told to the
    /// scheduler (openwhisk's memory slots).
    #[arg(long, default_value_t = NodeInfo::DEFAULT_MEMORY_MB)]
    node_memory_mb: u32,
    /// Serve the management routes (/configure, /clear, /prepare,
    /// PUT/DELETE /1/lb/nodes) on this address only, e.g. 127.0.0.1:9111
    /// (every route is served there too).
    #[arg(long, value_name = "ADDR")]
    mgmt_listen: Option<String>,
    /// File holding the bearer token that management requests from
    /// non-loopback peers must carry (Authorization: Bearer <token>); the
    /// balancer sends it to the workers with /configure, /clear, /prepare.
    #[arg(long, value_name = "PATH")]
    mgmt_token_file: Option<PathBuf>,
    /// The management token (prefer --mgmt-token-file: a command line is
    /// visible in `ps`).
    #[arg(long, env = protocol::mgmt::TOKEN_ENV, hide_env_values = true, value_name = "TOKEN")]
    mgmt_token: Option<String>,
    /// Loopback peers need the management token too.
    #[arg(long)]
    mgmt_require_token: bool,
    /// Networks a node added at run time must be on, comma-separated CIDRs
    /// or addresses (10.0.0.0/8,fd00::/8); default: any.
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    node_allow: Vec<load_balancer::config::NodeNetwork>,
    /// The SQLite file of the asynchronous calls' queue (created if
    /// missing; one balancer at a time, locked by PATH-lock; default: in
    /// memory, lost on exit).
    #[arg(long, value_name = "PATH")]
    queue_db: Option<PathBuf>,
    /// Per-function settings of the SlimFaas routes (JSON: max_parallel,
    /// retry_delays_s, timeout_s, safe_to_repeat, ...).
    #[arg(long, value_name = "PATH")]
    function_settings: Option<PathBuf>,
    /// How long a finished asynchronous call's result is kept, in s.
    #[arg(long, default_value_t = 3600)]
    queue_retention_s: u64,
    /// Most asynchronous calls queued or running in all; over it a call
    /// is refused with a 429 (default: no bound; per function:
    /// max_queued in --function-settings).
    #[arg(long, value_name = "N")]
    queue_max: Option<u64>,
    /// The most the queue's database may grow to, in MB (10^6 bytes);
    /// past it (or on a full disk) an asynchronous call is refused with a
    /// 507, and calls already stored still run (default: the disk's room).
    #[arg(long, value_name = "MB", value_parser = parse_queue_mb)]
    queue_max_mb: Option<f64>,
    /// Do not count calls for `GET /metrics` (it answers 404); for
    /// measuring what the metrics cost.
    #[arg(long)]
    no_metrics: bool,
    /// Keep users' own functions (POST /deploy) here across restarts
    /// (default: a temporary directory removed at exit).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    scheduler: SchedulerArgs,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<(String, u16, Option<String>, BalancerConfig)> {
        let params = self.scheduler.param_set()?;
        let mgmt = protocol::mgmt::ManagementConfig::from_sources(
            self.mgmt_token_file.as_deref(),
            self.mgmt_token,
            self.mgmt_require_token,
        )?;
        let mut nodes = self.nodes;
        if let Some(path) = &self.config {
            nodes.extend(load_balancer::config::load_nodes_file(path)?);
        } else if nodes.is_empty() && self.fake_nodes == 0 {
            let default = PathBuf::from("nodes.config.json");
            if default.exists() {
                eprintln!("load-balancer: loading nodes from ./nodes.config.json");
                nodes = load_balancer::config::load_nodes_file(&default)?;
            }
        }
        let defaults = BalancerConfig::default();
        let config = BalancerConfig {
            algorithm: self.algorithm,
            nodes,
            fake_nodes: self.fake_nodes,
            fake_delay_ms: self.fake_delay_ms,
            health: HealthConfig {
                interval_ms: self.health_interval_ms,
                timeout_ms: self.health_timeout_ms,
                fall: self.health_fall,
                rise: self.health_rise,
            },
            params,
            node_capacity: self.node_capacity,
            node_cores: self.node_cores,
            node_memory_mb: self.node_memory_mb,
            connect_timeout_ms: self.connect_timeout_ms,
            threads: self.threads.unwrap_or(defaults.threads),
            fanout_timeout_ms: self.fanout_timeout_ms,
            prepare_timeout_ms: self.prepare_timeout_ms,
            start_empty: self.start_empty,
            mgmt,
            node_allow: self.node_allow,
            queue: load_balancer::slim::QueueConfig {
                db: self.queue_db,
                settings: self.function_settings,
                retention_s: self.queue_retention_s,
                max_queued: self.queue_max,
                max_mb: self.queue_max_mb,
            },
            metrics: !self.no_metrics,
            data_dir: self.data_dir,
        }
        .validated()?;
        Ok((self.host, self.port, self.mgmt_listen, config))
    }
}

/// Runs the balancer; an error ends it with one line on stderr,
/// `load-balancer: error: ...` (each cause once), and exit status 1
/// (`protocol::text::exit_code`).
#[actix_web::main]
async fn main() -> std::process::ExitCode {
    protocol::text::exit_code("load-balancer", serve().await)
}

async fn serve() -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A closed stderr (a log pipe whose reader ended) loses events,
        // not the server: tracing's report of a failed write is an
        // `eprintln!`, which panics on that same closed stderr.
        .log_internal_errors(false)
        // Colours only on a terminal: a run's process log is a file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let (host, port, mgmt_listen, config) = Cli::parse().into_config()?;
    let listener = std::net::TcpListener::bind((host.as_str(), port))
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let management = match &mgmt_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr.as_str())
                .with_context(|| format!("cannot listen on --mgmt-listen {addr}"))?,
        ),
        None => None,
    };
    let addr = listener.local_addr()?;
    let management_addr = management.as_ref().map(|l| l.local_addr()).transpose()?;
    // Always printed (whatever RUST_LOG says): what this process runs;
    // once it serves (`run_announced`).
    let line = banner(addr, management_addr, &config);
    load_balancer::run_announced(listener, management, config, shutdown_signal(), || {
        println!("{line}")
    })
    .await?;
    Ok(())
}

/// The start-up line: `load-balancer <version> listening on http://ADDR
/// (algorithm ch (T=8), seed 0, 3 workers: URL, ...; ...; management ...)`.
fn banner(
    addr: std::net::SocketAddr,
    management: Option<std::net::SocketAddr>,
    config: &BalancerConfig,
) -> String {
    let algorithm = match config.params.scheduler(&config.algorithm) {
        Ok(scheduler) => {
            let params: Vec<String> = scheduler
                .params()
                .map(|(p, v)| format!("{}={v}", p.name()))
                .collect();
            if params.is_empty() {
                scheduler.name().to_string()
            } else {
                format!("{} ({})", scheduler.name(), params.join(", "))
            }
        }
        Err(_) => config.algorithm.clone(),
    };
    let nodes = if config.fake_nodes > 0 {
        format!(
            "{} fake nodes of {} ms",
            config.fake_nodes, config.fake_delay_ms
        )
    } else {
        format!(
            "{} workers: {}",
            config.nodes.len(),
            config.nodes.join(", ")
        )
    };
    format!(
        "load-balancer {} listening on http://{addr} (algorithm {algorithm}, seed {}, {nodes}; \
         node capacity {}, {} cores, {} MB; health check every {} ms, {} threads; {}{})",
        env!("CARGO_PKG_VERSION"),
        config.params.seed(),
        config.node_capacity,
        config.node_cores,
        config.node_memory_mb,
        config.health.interval_ms,
        config.threads,
        config.mgmt.describe(),
        management.map_or_else(String::new, |m| format!(", management on http://{m}")),
    )
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// `--queue-max-mb`: a size from 0.01 MB (a few pages) to 10^9 MB.
fn parse_queue_mb(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(mb) if (0.01..=1e9).contains(&mb) => Ok(mb),
        _ => Err(format!("{text:?} is not a size in MB from 0.01 to 1e9")),
    }
}
