//! The worker node on :8222: runs the sample functions (and the synthetic
//! functions of a catalog file, `WorkerConfig::catalog`) in Docker containers
//! or local processes, with HotFunctions' caching options (image LRU by
//! bytes, pre-warmed pools, REST-mode instances with an idle lifetime).
//! A Rust port and extension of HotFunctions' `worker_front`
//! (github.com/Prev/HotFunctions).
//!
//! # Layout
//! - [`policy`]: pure caching / pooling / keep-alive policies, shared with
//!   the discrete-event simulator.
//! - [`runtime`]: the [`runtime::Runtime`] trait (build images, run
//!   instances) and its implementations (`process`, `docker`);
//!   [`runtime::ownership`]: what a worker owns (a locked work area and an
//!   instance id of its own) and how it proves leftovers orphaned.
//! - [`worker`]: the core that turns policy answers into runtime actions.
//! - [`action`]: requests parsed into a typed [`action::Action`].
//! - [`join`]: self-registration with a balancer (`--join`).
//! - [`health`]: the engine probe and readings `/health` answers from.
//! - [`http`]: the actix-web edge (routes, JSON errors, HTTP statuses,
//!   who may use the management routes: `protocol::mgmt`).
//! - [`metrics`]: `GET /metrics` (Prometheus text format).
//! - [`limits`]: the bounds of the worker's options and flags.
//! - [`functions`]: users' own functions (the Glambdar API: `/deploy`,
//!   `/invoke/:name`, `/info`, `/logs`, `/del`, `/config`), kept in a data
//!   directory (`--data-dir`), run as local processes or containers
//!   through the same node model as the samples (image cache, pools, REST
//!   mode, keep-alive: `functions::node`).
//! - [`run`]: binds it all together (`main` is a thin CLI over it).
//!
//! Output: [`run`] prints one start-up line on stdout (version, worker id,
//! address, runtime, `hf-fn`, scales, caching options), whatever
//! `RUST_LOG` says; `main` logs events on stderr (`RUST_LOG`, default
//! `info`: image builds and removals, instance starts and expiries,
//! `/clear`, never one line per call), without colour codes unless stderr
//! is a terminal.

pub mod action;
pub mod functions;
pub mod health;
pub mod http;
pub mod join;
pub mod limits;
pub mod metrics;
pub mod runtime;
pub mod worker;

use policy::node::keep_alive_policy::{choose_instance_model, parse_lambda};
use policy::node::options::CachingOptions;
use policy::node::InstanceModel;
use runtime::docker::{DockerRuntime, DockerSettings};
use runtime::process::ProcessRuntime;
use runtime::{Runtime, RuntimeError, RuntimeOptions};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use worker::Worker;

pub use runtime::docker::locate::locate_static_hf_fn;

/// Which runtime runs the functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Local `hf-fn` processes (no Docker needed).
    #[default]
    Process,
    /// Docker containers built `FROM scratch` (needs a static `hf-fn`).
    Docker,
}

/// The worker's whole configuration (CLI flags and environment in `main`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub runtime: RuntimeKind,
    /// The worker's name on everything it creates; default
    /// `worker-<port>`. Not what ownership goes by: two workers with the
    /// same id never touch each other's things (`runtime::ownership`).
    pub worker_id: Option<String>,
    /// The `hf-fn` binary; default: see [`default_fn_binary`].
    pub fn_binary: Option<PathBuf>,
    /// `HF_TIME_SCALE` for the functions (default 1.0).
    pub time_scale: f64,
    /// `HF_PACKAGE_SCALE`: multiplies every package's size (default 1.0).
    pub package_scale: f64,
    /// Base dir of the worker's work area (default: the system temp dir);
    /// the worker keeps its files in a fresh locked directory of its own
    /// under `<work_dir>/hotfunctions-<uid>/`.
    pub work_dir: Option<PathBuf>,
    /// HotFunctions' caching options.
    pub caching: CachingOptions,
    /// `hotfunctions` or `lambda` (None: `lambda` if a keep-alive policy
    /// is given, else `hotfunctions`), as `simulator des --instance-model`.
    pub instance_model: Option<String>,
    /// The Lambda model's keep-alive policy: fixed, lru, greedy-dual,
    /// histogram, ewma (`policy::node::keep_alive_policy`).
    pub keep_alive_policy: Option<String>,
    /// Keep-alive of idle instances in the Lambda model, seconds (None:
    /// 600); given, it selects the Lambda model (as a policy does).
    pub keep_alive_s: Option<f64>,
    /// Memory of the node for instances, MB (2048): the `lru` and
    /// `greedy-dual` policies evict idle instances under it.
    pub node_memory_mb: u32,
    /// actix-web worker threads (default 2).
    pub http_workers: usize,
    /// How often the REST-mode expiry timer looks, in ms (default 100).
    pub expiry_tick_ms: u64,
    /// The Docker engine's address (docker runtime only):
    /// `unix:///var/run/docker.sock`, a socket path, or `tcp://host:port`
    /// (plain HTTP). Default: the local engine (`DOCKER_HOST` when it is a
    /// `unix://` address, else `/var/run/docker.sock`).
    pub docker_socket: Option<String>,
    /// Bound on every engine request, in seconds (1 to 3,600; default
    /// 60): an engine that accepts a request and never answers fails the
    /// call with 503 after this long (`DockerSettings::request_timeout`).
    /// The health probe is bounded by it too, at most
    /// [`health::MAX_PROBE_BOUND`].
    pub engine_timeout_s: u64,
    /// Who may use `/configure`, `/clear` and `/prepare`
    /// (`protocol::mgmt`: loopback peers, or the bearer token).
    pub mgmt: protocol::mgmt::ManagementConfig,
    /// A catalog file (the format of `sample-functions/catalog.csv`, e.g.
    /// the one `utils import` writes): its functions are served beside
    /// the samples, each call running its row or the shape the call
    /// carries (`sample_functions::workload`). A bad file stops the
    /// start with an error naming the file and line.
    pub catalog: Option<PathBuf>,
    /// Where users' own functions are kept across restarts (locked while
    /// the worker runs). None: a temporary area under the work dir, gone
    /// with the worker.
    pub data_dir: Option<PathBuf>,
    /// The Node.js binary for Glambdar functions (default: `HF_NODE`, else
    /// `node` on `PATH`).
    pub node: Option<PathBuf>,
    /// Count calls for `GET /metrics` (default true; `--no-metrics`).
    pub metrics: bool,
    /// The docker runtime's network mode for warm instances: `host`
    /// (None), `own-container` or `container:<id>`
    /// ([`runtime::docker::instance_network`]).
    pub docker_instance_network: Option<String>,
    /// More labels on everything the docker runtime creates (`KEY=VALUE`).
    pub docker_labels: Vec<String>,
    /// The docker runtime's cgroup parent for function containers: `none`
    /// (None), `auto` (the worker's own container's cgroup) or a path
    /// ([`runtime::docker::cgroup`]).
    pub docker_cgroup_parent: Option<String>,
    /// How Linux schedules the function processes (`--function-sched`;
    /// process runtime only): [`runtime::spawn::FunctionSched`].
    pub function_sched: runtime::spawn::FunctionSched,
    /// The balancer this worker fetches user functions' packages from on
    /// their first call through it (`--functions-from`, default the
    /// `--join` URL): `crate::functions::Functions::ensure`.
    pub functions_from: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            runtime: RuntimeKind::Process,
            worker_id: None,
            fn_binary: None,
            time_scale: 1.0,
            package_scale: 1.0,
            work_dir: None,
            caching: CachingOptions::default(),
            instance_model: None,
            keep_alive_policy: None,
            keep_alive_s: None,
            node_memory_mb: policy::scheduler::NodeInfo::DEFAULT_MEMORY_MB,
            http_workers: 2,
            expiry_tick_ms: 100,
            docker_socket: None,
            engine_timeout_s: runtime::docker::DEFAULT_ENGINE_TIMEOUT.as_secs(),
            mgmt: protocol::mgmt::ManagementConfig::default(),
            catalog: None,
            data_dir: None,
            node: None,
            metrics: true,
            docker_instance_network: None,
            docker_labels: Vec::new(),
            docker_cgroup_parent: None,
            function_sched: runtime::spawn::FunctionSched::Normal,
            functions_from: None,
        }
    }
}

impl WorkerConfig {
    /// The instance model its options choose (the same rule as `simulator
    /// des`: a keep-alive policy selects the Lambda model).
    pub fn instance_model(&self) -> Result<InstanceModel, RunError> {
        let bad =
            |e: policy::node::keep_alive_policy::ModelChoiceError| RunError::Config(e.to_string());
        let lambda = match &self.instance_model {
            Some(name) => Some(parse_lambda(name).map_err(bad)?),
            None => None,
        };
        let policy =
            match &self.keep_alive_policy {
                Some(name) => Some(name.parse().map_err(|e| {
                    bad(policy::node::keep_alive_policy::ModelChoiceError::Policy(e))
                })?),
                None => None,
            };
        if self.node_memory_mb == 0 {
            return Err(RunError::Config(
                "--node-memory-mb must be at least 1".into(),
            ));
        }
        choose_instance_model(lambda, policy, self.keep_alive_s).map_err(bad)
    }
}

/// Failures that stop the worker from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("bad configuration: {0}")]
    Config(String),
}

/// Where the worker looks for `hf-fn` when `--fn-binary` is not given.
///
/// - process runtime: `hf-fn` beside the running executable, or one
///   directory up (so test executables in `target/<profile>/deps/` find
///   `target/<profile>/hf-fn`);
/// - docker runtime: the statically linked build, found at run time by
///   [`locate_static_hf_fn`] (`HF_FN_STATIC`, else
///   `target/static/x86_64-unknown-linux-gnu/release/hf-fn` found from the
///   executable's directory, ...).
pub fn default_fn_binary(kind: RuntimeKind) -> PathBuf {
    match kind {
        RuntimeKind::Docker => DockerRuntime::default_static_fn_binary(),
        RuntimeKind::Process => {
            let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("worker-front"));
            let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
            let beside = dir.join("hf-fn");
            if beside.is_file() {
                return beside;
            }
            match dir.parent() {
                Some(up) if up.join("hf-fn").is_file() => up.join("hf-fn"),
                _ => beside,
            }
        }
    }
}

/// Runs the worker on `listener` until `shutdown` completes, then removes
/// every instance and image it created, and its work area. At start it
/// removes the leftovers of dead workers that it can prove orphaned
/// ([`runtime::ownership`]), never anything of a live worker. Must be
/// called inside a multi-threaded tokio runtime.
pub async fn run(
    listener: std::net::TcpListener,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_management(listener, None, config, shutdown).await
}

/// [`run`], with `/configure`, `/clear` and `/prepare` served on
/// `management` only when it is given (every route is served there too).
pub async fn run_with_management(
    listener: std::net::TcpListener,
    management: Option<std::net::TcpListener>,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    limits::check_config(&config).map_err(RunError::Config)?;
    let mgmt = config
        .mgmt
        .clone()
        .validated()
        .map_err(|e| RunError::Config(e.to_string()))?;
    if let Some(l) = &management {
        l.set_nonblocking(true)?;
    }
    let listeners = http::Listeners {
        data: listener,
        management,
        mgmt,
    };
    run_listeners(listeners, config, shutdown).await
}

async fn run_listeners(
    listeners: http::Listeners,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let listener = &listeners.data;
    if !(config.time_scale.is_finite() && config.time_scale >= 0.0) {
        return Err(RunError::Config(format!(
            "time scale {} is not a non-negative number",
            config.time_scale
        )));
    }
    if !sample_functions::payload::valid_package_scale(config.package_scale) {
        return Err(RunError::Config(format!(
            "package scale {} is not a non-negative number",
            config.package_scale
        )));
    }
    config.instance_model()?;
    let catalog = match &config.catalog {
        Some(path) => sample_functions::Catalog::with_file(path)
            .map_err(|e| RunError::Config(e.to_string()))?,
        None => sample_functions::catalog().clone(),
    };
    let catalog = std::sync::Arc::new(catalog);
    if config.runtime == RuntimeKind::Process && config.docker_socket.is_some() {
        return Err(RunError::Config(
            "a Docker socket (--docker-socket) applies to the docker runtime only, \
not to the process runtime"
                .into(),
        ));
    }
    if config.runtime == RuntimeKind::Process
        && (config.docker_instance_network.is_some()
            || !config.docker_labels.is_empty()
            || config.docker_cgroup_parent.is_some())
    {
        return Err(RunError::Config(
            "--docker-instance-network, --docker-label and --docker-cgroup-parent apply to the docker runtime only".into(),
        ));
    }
    if config.runtime == RuntimeKind::Docker
        && config.function_sched != runtime::spawn::FunctionSched::Normal
    {
        return Err(RunError::Config(
            "--function-sched applies to the process runtime only (the Docker engine starts the processes of containers)".into(),
        ));
    }
    if config.function_sched != runtime::spawn::FunctionSched::Normal {
        tracing::info!(
            "function processes start under the {} scheduling policy (--function-sched)",
            config.function_sched.as_str()
        );
    }
    let port = listener.local_addr()?.port();
    let options = RuntimeOptions {
        worker_id: config
            .worker_id
            .clone()
            .unwrap_or_else(|| format!("worker-{port}")),
        fn_binary: config
            .fn_binary
            .clone()
            .unwrap_or_else(|| default_fn_binary(config.runtime)),
        time_scale: config.time_scale,
        package_scale: config.package_scale,
        work_dir: config.work_dir.clone().unwrap_or_else(std::env::temp_dir),
    };
    listener.set_nonblocking(true)?;
    match config.runtime {
        RuntimeKind::Process => {
            serve(
                ProcessRuntime::with_function_sched(options.clone(), config.function_sched)?,
                None,
                options,
                listeners,
                &config,
                catalog,
                shutdown,
            )
            .await
        }
        RuntimeKind::Docker => {
            let warm_network = match config.docker_instance_network.as_deref() {
                None => "host".to_string(),
                Some(value) => {
                    let hostname = std::fs::read_to_string("/etc/hostname").ok();
                    runtime::docker::instance_network(value, hostname.as_deref())
                        .map_err(RunError::Config)?
                }
            };
            let cgroup_parent = match config.docker_cgroup_parent.as_deref() {
                None => None,
                Some(value) => runtime::docker::cgroup::CgroupParent::parse(value)
                    .and_then(|p| {
                        let own = std::fs::read_to_string("/proc/self/cgroup").ok();
                        p.resolve(own.as_deref())
                    })
                    .map_err(RunError::Config)?,
            };
            if let Some(parent) = &cgroup_parent {
                tracing::info!(
                    "function containers are made under the cgroup {parent} (--docker-cgroup-parent)"
                );
            }
            let mut extra_labels = std::collections::BTreeMap::new();
            for label in &config.docker_labels {
                let (k, v) = label
                    .split_once('=')
                    .filter(|(k, _)| {
                        !k.is_empty()
                            && ![
                                runtime::LABEL_WORKER,
                                runtime::LABEL_INSTANCE,
                                runtime::LABEL_FUNCTION,
                                runtime::LABEL_KIND,
                            ]
                            .contains(k)
                    })
                    .ok_or_else(|| {
                        RunError::Config(format!(
                            "--docker-label {label:?}: expected KEY=VALUE, KEY not one of the runtime's own labels"
                        ))
                    })?;
                extra_labels.insert(k.to_string(), v.to_string());
            }
            let settings = DockerSettings {
                socket: config.docker_socket.clone(),
                request_timeout: Duration::from_secs(config.engine_timeout_s),
                warm_network,
                extra_labels,
                cgroup_parent,
                ..DockerSettings::default()
            };
            // Checked before a work area is made: the engine's address (it
            // is contacted on first use), and the static hf-fn, which every
            // image needs (missing, it is an error now, not at the first
            // call).
            settings
                .check_socket()
                .map_err(|e| RunError::Config(e.to_string()))?;
            match &config.fn_binary {
                Some(path) => {
                    runtime::docker::context::read_static_binary(path)
                        .map_err(|e| RunError::Config(e.to_string()))?;
                }
                None => {
                    locate_static_hf_fn(None).map_err(RunError::Config)?;
                }
            }
            let runtime = DockerRuntime::with_settings(options.clone(), settings)
                .map_err(|e| RunError::Config(e.to_string()))?;
            // User functions run in containers of this runtime too.
            let user = Some(runtime.clone());
            serve(
                runtime, user, options, listeners, &config, catalog, shutdown,
            )
            .await
        }
    }
}

async fn serve<R: Runtime>(
    runtime: R,
    user_docker: Option<DockerRuntime>,
    options: RuntimeOptions,
    listeners: http::Listeners,
    config: &WorkerConfig,
    catalog: std::sync::Arc<sample_functions::Catalog>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    // Leftovers of workers that died without cleaning up (`kill -9`), when
    // proven orphaned (their work area's lock is free); never anything of
    // a live worker, whatever its id. Done before the start-up line, so
    // that whoever waits for the line finds them gone.
    match runtime.sweep_orphans().await {
        Ok(r) if r.instances + r.images > 0 => tracing::info!("removed orphaned leftovers: {r:?}"),
        Ok(_) => {}
        Err(e) => tracing::warn!("could not remove orphaned leftovers (will serve anyway): {e}"),
    }
    // Users' own functions: their data dir is locked before the start-up
    // line, so a worker that cannot have it never says it listens.
    let functions = functions::Functions::open(functions::FunctionsConfig {
        data_dir: config.data_dir.clone(),
        work_dir: options.work_dir.clone(),
        worker_id: options.worker_id.clone(),
        node: config.node.clone().unwrap_or_else(functions::default_node),
        limits: functions::package::Limits::default(),
        source: config.functions_from.clone(),
        source_bearer: config.mgmt.bearer(),
        docker: user_docker,
        sched: config.function_sched,
    })
    .await
    .map_err(|e| RunError::Config(format!("user functions: {e}")))?;
    tracing::info!(
        "user functions: {} deployed, kept in {}{}",
        functions.len(),
        functions.dir().display(),
        if config.data_dir.is_none() {
            " (temporary: give --data-dir to keep them)"
        } else {
            ""
        }
    );
    // The start-up line, on stdout whatever RUST_LOG says (an experiment
    // runs workers at RUST_LOG=warn and keeps their output); printed once
    // the server is made, so that a line read means a worker that serves.
    let management = match &listeners.management {
        Some(l) => format!(", management on {}", l.local_addr()?),
        None => String::new(),
    };
    let start_line = format!(
        "worker-front {} {} listening on {} ({} runtime, instance {}, hf-fn {}, time scale {}, package scale {}), caching {}; {}{management}",
        env!("CARGO_PKG_VERSION"),
        options.worker_id,
        listeners.data.local_addr()?,
        runtime.name(),
        runtime.instance_id(),
        options.fn_binary.display(),
        options.time_scale,
        options.package_scale,
        serde_json::to_string(&config.caching).unwrap_or_default(),
        listeners.mgmt.describe(),
    );
    let instance_model = config.instance_model()?;
    tracing::info!(
        "instance model {}, node memory {} MB",
        serde_json::to_string(&instance_model).unwrap_or_default(),
        config.node_memory_mb
    );
    if let Some(path) = &config.catalog {
        tracing::info!(
            "serving {} functions (the samples and {})",
            catalog.functions.len(),
            path.display()
        );
    }
    let worker = Worker::with_catalog(
        runtime,
        config.caching,
        instance_model,
        config.node_memory_mb,
        options.worker_id.clone(),
        catalog,
    );
    // Users' functions' calls go through the worker core's node model.
    functions.attach(std::sync::Arc::new(worker.clone()));
    let tick = Duration::from_millis(config.expiry_tick_ms.max(1));
    let expirer = {
        let w = worker.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                w.tick();
            }
        })
    };
    // The engine probe `/health` answers from (`health`), on its own task.
    let engine_timeout = Duration::from_secs(config.engine_timeout_s);
    let prober = {
        let w = worker.clone();
        let bound = health::probe_bound(engine_timeout);
        tokio::spawn(async move {
            let recorder = w.clone();
            health::probe_engine(w.runtime(), bound, move |r| recorder.record_engine(r)).await;
        })
    };
    let server = http::server_with_metrics(
        worker.clone(),
        listeners,
        config.http_workers,
        Some(functions.clone()),
        config
            .metrics
            .then(|| std::sync::Arc::new(metrics::Metrics::new())),
    )?;
    let handle = server.handle();
    println!("{start_line}");
    let mut server = Box::pin(server);
    let (result, engine) = tokio::select! {
        r = &mut server => (r, Ok(())),
        () = shutdown => {
            // Whether the engine answers is asked while serving stops (at
            // most `SHUTDOWN_PING_BOUND`), so a hung engine costs a
            // SIGTERM no more than that.
            let ping = health::engine_answers(
                worker.runtime(),
                engine_timeout.min(health::SHUTDOWN_PING_BOUND),
            );
            let (_, r, engine) = tokio::join!(handle.stop(true), server, ping);
            (r, engine)
        }
    };
    expirer.abort();
    prober.abort();
    worker.stop_user_functions();
    functions.shutdown().await;
    match engine {
        Ok(()) => match worker.runtime().shutdown().await {
            Ok(r) => tracing::info!("shut down; removed {r:?}"),
            Err(e) => left_behind(&worker, &e.to_string()),
        },
        Err(e) => left_behind(&worker, &e),
    }
    Ok(result?)
}

/// Says what a shutdown whose engine clean-up failed or was skipped left,
/// and who removes it: the objects carry the runtime's instance label, and
/// its work area (unlocked when this process exits) records that id, so
/// the next worker started with the same work dir removes them
/// (`runtime::ownership`, `Runtime::sweep_orphans`).
fn left_behind<R: runtime::Runtime>(worker: &Worker<R>, why: &str) {
    let (instances, images) = worker.holdings();
    let options = worker.runtime().options();
    tracing::warn!(
        "shut down without cleaning up ({why}): left {instances} instance(s) and {images} image(s) \
labelled {}={} (and any call's instance still running), recorded in the work area under {}; \
the next worker started with --work-dir {} removes them",
        runtime::LABEL_INSTANCE,
        worker.runtime().instance_id(),
        options.work_dir.display(),
        options.work_dir.display(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_unknown_fields_and_keeps_defaults() {
        let c: WorkerConfig =
            serde_json::from_str(r#"{"runtime": "docker", "caching": {"UsingRestMode": true}}"#)
                .unwrap();
        assert_eq!(c.runtime, RuntimeKind::Docker);
        assert!(c.caching.using_rest_mode);
        assert_eq!(c.caching.container_pool_num, 6);
        assert_eq!(c.time_scale, 1.0);
        assert!(serde_json::from_str::<WorkerConfig>(r#"{"runtim": "docker"}"#).is_err());
        assert!(serde_json::from_str::<WorkerConfig>(r#"{"runtime": "vm"}"#).is_err());
    }

    #[tokio::test]
    async fn a_bad_time_scale_is_a_config_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = WorkerConfig {
            time_scale: -1.0,
            ..WorkerConfig::default()
        };
        let e = run(l, config, async {}).await.unwrap_err();
        assert!(matches!(e, RunError::Config(_)), "{e}");
    }

    #[tokio::test]
    async fn a_bad_package_scale_is_a_config_error() {
        for bad in [-0.5, f64::NAN, f64::INFINITY] {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let config = WorkerConfig {
                package_scale: bad,
                ..WorkerConfig::default()
            };
            let e = run(l, config, async {}).await.unwrap_err();
            assert!(e.to_string().contains("package scale"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_docker_socket_needs_the_docker_runtime_and_a_usable_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = WorkerConfig {
            docker_socket: Some("unix:///var/run/docker.sock".into()),
            ..WorkerConfig::default()
        };
        let e = run(l, config, async {}).await.unwrap_err();
        assert!(matches!(e, RunError::Config(_)), "{e}");
        assert!(e.to_string().contains("docker runtime only"), "{e}");

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = WorkerConfig {
            runtime: RuntimeKind::Docker,
            docker_socket: Some("docker.sock".into()),
            ..WorkerConfig::default()
        };
        let e = run(l, config, async {}).await.unwrap_err();
        assert!(matches!(e, RunError::Config(_)), "{e}");
        assert!(e.to_string().contains("\"docker.sock\""), "{e}");
    }
}
