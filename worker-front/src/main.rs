//! `worker-front`: the worker on :8222 (a thin CLI over `worker_front::run`).
//!
//! ```text
//! worker-front start [PORT] [--port P] [--runtime process|docker] [--docker-socket URL]
//!                    [--engine-timeout-s 60] [options]
//! ```
//! Caching options come from the original's environment variables
//! (`USER_CODE_SIZE_LIMIT`, `CONTAINER_POOL_LIMIT`, `CONTAINER_POOL_NUM`,
//! `USING_REST_MODE`, `REST_CONTAINER_LIFE_TIME`); the flags of the same
//! names override them. The instance model and its keep-alive policy take
//! the options of `simulator des`: `--instance-model hotfunctions|lambda`,
//! `--keep-alive-policy fixed|lru|greedy-dual|histogram|ewma` (selects the
//! Lambda model), `--keep-alive-s 600`, `--node-memory-mb 2048`.
//!
//! Management (`protocol::mgmt`): `/configure`, `/clear` and `/prepare`
//! from loopback peers need no token; others need the bearer token of
//! `--mgmt-token-file` (or `HF_MGMT_TOKEN`); `--mgmt-require-token` asks
//! it of loopback peers too; `--mgmt-listen ADDR` serves them on a
//! listener of their own. Every option's bound: `worker_front::limits`.
//!
//! `GET /metrics` serves Prometheus metrics (`worker_front::metrics`);
//! `--no-metrics` turns them off.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use policy::node::options::CachingOptions;
use std::path::PathBuf;
use worker_front::join::JoinConfig;
use worker_front::{RuntimeKind, WorkerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "worker-front",
    version,
    about = "HotFunctions worker: runs the 30 sample functions in Docker containers or local processes",
    after_help = "Environment: USER_CODE_SIZE_LIMIT (bytes, -1 = off), CONTAINER_POOL_LIMIT (-1 = off), \
CONTAINER_POOL_NUM (6), USING_REST_MODE (true/false), REST_CONTAINER_LIFE_TIME (10 s), \
HF_TIME_SCALE (1.0), HF_PACKAGE_SCALE (1.0), RUST_LOG (info)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuntimeArg {
    Process,
    Docker,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the worker (in the foreground; stop with Ctrl-C or SIGTERM).
    Start(StartArgs),
}

#[derive(Debug, clap::Args)]
struct StartArgs {
    /// Port (as in the original: `worker-front start 8222`).
    port_positional: Option<u16>,
    /// Port (default 8222); overrides the positional one.
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Where functions run.
    #[arg(long, value_enum, default_value = "process")]
    runtime: RuntimeArg,
    /// The worker's name on everything it creates (default worker-<port>);
    /// ownership goes by an id drawn at start, never by this name.
    #[arg(long)]
    worker_id: Option<String>,
    /// The hf-fn binary (default: beside this executable for `process`; the
    /// static build under target/static for `docker`).
    #[arg(long)]
    fn_binary: Option<PathBuf>,
    /// Scales the functions' work and sleeps (tests: 0.01).
    #[arg(long, env = "HF_TIME_SCALE", default_value_t = 1.0)]
    time_scale: f64,
    /// Scales every package's size: bytes staged, loaded and counted by the
    /// image cache (tests: 0.25).
    #[arg(long, env = "HF_PACKAGE_SCALE", default_value_t = 1.0)]
    package_scale: f64,
    /// Base dir of the worker's own locked work area (default: the system
    /// temp dir, `TMPDIR`): `<dir>/hotfunctions-<uid>/<id>.<instance>/`.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Image cache limit in bytes, -1 = off (env USER_CODE_SIZE_LIMIT).
    #[arg(long, allow_hyphen_values = true)]
    user_code_size_limit: Option<i64>,
    /// Pools for this many most recent functions, -1 = off (env CONTAINER_POOL_LIMIT).
    #[arg(long, allow_hyphen_values = true)]
    container_pool_limit: Option<i64>,
    /// Pre-warmed instances per pooled function (env CONTAINER_POOL_NUM).
    #[arg(long)]
    container_pool_num: Option<u32>,
    /// REST mode: one shared long-lived instance per function (env USING_REST_MODE).
    #[arg(long)]
    using_rest_mode: Option<bool>,
    /// Idle lifetime of REST instances in seconds (env REST_CONTAINER_LIFE_TIME).
    #[arg(long)]
    rest_container_life_time: Option<u64>,
    /// Instance model: hotfunctions (the original's) or lambda (one call
    /// per instance, kept alive by --keep-alive-policy) [default:
    /// hotfunctions, or lambda when --keep-alive-policy or --keep-alive-s
    /// is given].
    #[arg(long, value_name = "MODEL")]
    instance_model: Option<String>,
    /// Keep-alive policy of the Lambda model (implies --instance-model
    /// lambda): fixed, lru, greedy-dual (both evict idle instances under
    /// --node-memory-mb), histogram (Serverless in the Wild), ewma
    /// (pre-warming) [default: fixed].
    #[arg(long, value_name = "POLICY")]
    keep_alive_policy: Option<String>,
    /// Keep-alive of idle instances in the Lambda model, seconds; given,
    /// it selects the Lambda model (as --keep-alive-policy does) [default:
    /// 600].
    #[arg(long)]
    keep_alive_s: Option<f64>,
    /// Memory of the node for function instances, MB (each function's is
    /// its catalog `memory_mb`).
    #[arg(long, default_value_t = WorkerConfig::default().node_memory_mb)]
    node_memory_mb: u32,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    http_workers: usize,
    /// Docker engine address, `--runtime docker` only: unix:///path/docker.sock
    /// (or the bare path) or tcp://host:port (plain HTTP, no TLS). Default: the
    /// local engine (DOCKER_HOST if it is unix://, else /var/run/docker.sock).
    #[arg(long, value_name = "URL")]
    docker_socket: Option<String>,
    /// Bound on every Docker engine request, in seconds (1 to 3600): an
    /// engine that does not answer fails the call with 503 after this
    /// long; /health probes the engine every second, each probe bounded by
    /// this (at most 10 s), and answers 503 naming the engine when it did
    /// not answer.
    #[arg(long, default_value_t = WorkerConfig::default().engine_timeout_s, value_name = "S")]
    engine_timeout_s: u64,
    /// A balancer to join (`http://HOST:PORT`): register with its
    /// `PUT /1/lb/nodes` (with the management token, if one is given),
    /// again whenever it loses this node, and leave on SIGTERM
    /// (`worker_front::join`).
    #[arg(long, env = "HF_JOIN", value_name = "URL")]
    join: Option<String>,
    /// This worker's URL as the balancer calls it (default, with --join:
    /// http://<the local address of the route to the balancer>:<port>).
    #[arg(long, env = "HF_ADVERTISE_URL", value_name = "URL", requires = "join")]
    advertise_url: Option<String>,
    /// Time between two membership checks with --join, ms (1 to 60,000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    join_interval_ms: u64,
    /// Serve /configure, /clear and /prepare on this address only, e.g.
    /// 127.0.0.1:9222 (every route is served there too).
    #[arg(long, value_name = "ADDR")]
    mgmt_listen: Option<String>,
    /// File holding the bearer token that management requests from
    /// non-loopback peers must carry (Authorization: Bearer <token>).
    #[arg(long, value_name = "PATH")]
    mgmt_token_file: Option<PathBuf>,
    /// The management token (prefer --mgmt-token-file: a command line is
    /// visible in `ps`).
    #[arg(long, env = protocol::mgmt::TOKEN_ENV, hide_env_values = true, value_name = "TOKEN")]
    mgmt_token: Option<String>,
    /// Loopback peers need the management token too.
    #[arg(long)]
    mgmt_require_token: bool,
    /// A catalog file of more functions (e.g. `utils import`'s
    /// `<scenario>.catalog.csv`), served beside the samples.
    #[arg(long, value_name = "FILE")]
    catalog: Option<PathBuf>,
    /// Keep users' own functions (POST /deploy) here across restarts; the
    /// worker locks it (default: a temporary area in the work dir).
    #[arg(long, env = "HF_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The Node.js binary for Glambdar functions (default: node on PATH).
    #[arg(long, env = "HF_NODE", value_name = "PATH")]
    node: Option<PathBuf>,
    /// Do not count calls for `GET /metrics` (it answers 404); for
    /// measuring what the metrics cost.
    #[arg(long)]
    no_metrics: bool,
    /// `--runtime docker`: network of warm instances: host (default),
    /// own-container (the container this worker runs in, for a worker in a
    /// container with the engine's socket mounted), or container:<id>.
    #[arg(long, env = "HF_DOCKER_INSTANCE_NETWORK", value_name = "MODE")]
    docker_instance_network: Option<String>,
    /// `--runtime docker`: a label KEY=VALUE on every image and container
    /// the worker creates (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    docker_label: Vec<String>,
    /// `--runtime docker`: the cgroup function containers are made under:
    /// none (default: the engine's), auto (this worker's own container's
    /// cgroup, so that the container's cpus and mem_limit bound its
    /// functions too; cgroup v1 with the engine's cgroupfs driver), or a
    /// cgroup path (/parent/path, or NAME.slice with the systemd driver).
    #[arg(long, env = "HF_DOCKER_CGROUP_PARENT", value_name = "none|auto|PATH")]
    docker_cgroup_parent: Option<String>,
    /// `--runtime process`: the Linux scheduling policy of the function
    /// processes: normal (SCHED_OTHER, default) or batch (SCHED_BATCH: the
    /// same CPU share, but waking a function does not preempt the thread
    /// running, e.g. this worker's; fewer context switches per call on a
    /// busy machine, and a woken function may wait up to a time slice).
    #[arg(
        long,
        env = "HF_FUNCTION_SCHED",
        default_value = "normal",
        value_name = "normal|batch"
    )]
    function_sched: worker_front::runtime::spawn::FunctionSched,
    /// The balancer whose user functions this worker runs: it fetches a
    /// function's package from there on its first call (default: the
    /// --join URL).
    #[arg(long, value_name = "URL")]
    functions_from: Option<String>,
}

/// Runs the worker; an error ends it with one line on stderr,
/// `worker-front: error: ...` (each cause once), and exit status 1
/// (`protocol::text::exit_code`).
fn main() -> std::process::ExitCode {
    protocol::text::exit_code("worker-front", serve())
}

fn serve() -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Events on stderr (the start-up line is on stdout), with colours
        // only on a terminal: an experiment's process log is a file.
        .with_writer(std::io::stderr)
        // A closed stderr (a log pipe whose reader ended) loses events,
        // not the server: tracing's report of a failed write is an
        // `eprintln!`, which panics on that same closed stderr.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let Command::Start(args) = Cli::parse().command;
    let mut caching = CachingOptions::from_lookup(|n| std::env::var(n).ok())
        .context("reading the caching options from the environment")?;
    if let Some(v) = args.user_code_size_limit {
        caching.user_code_size_limit = v;
    }
    if let Some(v) = args.container_pool_limit {
        caching.container_pool_limit = v;
    }
    if let Some(v) = args.container_pool_num {
        caching.container_pool_num = v;
    }
    if let Some(v) = args.using_rest_mode {
        caching.using_rest_mode = v;
    }
    if let Some(v) = args.rest_container_life_time {
        caching.rest_container_life_time = v;
    }
    if !(args.time_scale.is_finite() && args.time_scale >= 0.0) {
        bail!(
            "--time-scale {} is not a non-negative number",
            args.time_scale
        );
    }
    let port = args.port.or(args.port_positional).unwrap_or(8222);
    let mgmt = protocol::mgmt::ManagementConfig::from_sources(
        args.mgmt_token_file.as_deref(),
        args.mgmt_token.clone(),
        args.mgmt_require_token,
    )?;
    let config = WorkerConfig {
        runtime: match args.runtime {
            RuntimeArg::Process => RuntimeKind::Process,
            RuntimeArg::Docker => RuntimeKind::Docker,
        },
        worker_id: args.worker_id,
        fn_binary: args.fn_binary,
        time_scale: args.time_scale,
        package_scale: args.package_scale,
        work_dir: args.work_dir,
        caching,
        instance_model: args.instance_model,
        keep_alive_policy: args.keep_alive_policy,
        keep_alive_s: args.keep_alive_s,
        node_memory_mb: args.node_memory_mb,
        http_workers: args.http_workers,
        docker_socket: args.docker_socket,
        engine_timeout_s: args.engine_timeout_s,
        mgmt,
        catalog: args.catalog,
        data_dir: args.data_dir,
        node: args.node,
        metrics: !args.no_metrics,
        docker_instance_network: args.docker_instance_network,
        docker_labels: args.docker_label,
        docker_cgroup_parent: args.docker_cgroup_parent,
        function_sched: args.function_sched,
        functions_from: args.functions_from.clone().or_else(|| args.join.clone()),
        ..WorkerConfig::default()
    };
    // Bad policy options and values beyond their bounds are errors before
    // anything binds.
    config.instance_model()?;
    worker_front::limits::check_config(&config).map_err(anyhow::Error::msg)?;
    let listener = std::net::TcpListener::bind((args.host.as_str(), port))
        .with_context(|| format!("binding {}:{port}", args.host))?;
    let join = match &args.join {
        None => None,
        Some(balancer) => {
            let bound = listener
                .local_addr()
                .context("reading the bound port")?
                .port();
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
            let mut j = JoinConfig::new(
                balancer,
                args.advertise_url.as_deref(),
                bound,
                cores,
                args.node_memory_mb,
                // The cluster's shared management token: the balancer
                // asks it of a PUT /1/lb/nodes from the network.
                config.mgmt.token.clone(),
            )?;
            j.interval = std::time::Duration::from_millis(args.join_interval_ms);
            Some(j)
        }
    };
    let management = match &args.mgmt_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr.as_str())
                .with_context(|| format!("binding --mgmt-listen {addr}"))?,
        ),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let outcome = rt.block_on(async move {
        // Handlers first: a SIGTERM right after the start-up line (which
        // `run` prints) must stop the worker cleanly, not kill it.
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        let joiner = join.clone().map(|j| tokio::spawn(j.keep_joined()));
        let shutdown = async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            // Leave before serving stops: no new calls, the ones in
            // flight finish.
            if let Some(h) = joiner {
                h.abort();
            }
            if let Some(j) = join {
                j.leave().await;
            }
        };
        worker_front::run_with_management(listener, management, config, shutdown).await
    });
    // Tasks still waiting on a hung engine are dropped, and blocking
    // work is waited for only briefly: a SIGTERM is not held by either.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(outcome?)
}
