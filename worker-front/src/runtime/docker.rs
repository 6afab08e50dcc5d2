//! The Docker runtime: function images, one-shot, pooled and REST-mode
//! containers on the local Docker engine, through its HTTP API (bollard).
//!
//! This is HotFunctions' worker (Prev/HotFunctions, `worker_front/`:
//! `image_builder.go`, `container_pool.go`, `run_container.go`,
//! `singleton_container_manager.go`) without a registry:
//!
//! - **Images** are built on request `FROM scratch` around the statically
//!   linked `hf-fn` binary plus the function's package payload, scaled by
//!   `HF_PACKAGE_SCALE` (see [`context`]; containers get the same scale in
//!   their environment), tagged `hotfunctions-<worker>-<function>:<instance id>`. Which
//!   images to keep is the image cache policy's decision, made by the worker;
//!   here images are only built and removed.
//! - **One-shot containers** run `hf-fn <NAME>`: create, attach, start, read
//!   stdout/stderr until exit, wait for the exit code. The container is
//!   removed in the background once the output is read (also when the
//!   caller's future is dropped), so the reply does not wait for the
//!   engine's clean-up, which `docker run --rm` does wait for.
//! - **Warm containers** (pool members and REST-mode instances) run
//!   `hf-fn serve --function <NAME> --port 0` in the host's network
//!   namespace (`network_mode: host`; or, for a worker that runs in a
//!   container itself, in that container's: `container:<id>`,
//!   [`DockerSettings::warm_network`]): the instance listens on a port of
//!   the (host's or worker's) 127.0.0.1 that it picks and announces as its first stdout line
//!   `{"port": N}`; calls are `GET /invoke` over kept-alive HTTP
//!   connections ([`super::instance_client`]). One-shot containers get no
//!   network (`network_mode: none`). With [`DockerSettings::cgroup_parent`]
//!   (the worker's `--docker-cgroup-parent auto`), every container is made
//!   under the worker container's own cgroup, so the worker's `cpus` and
//!   `mem_limit` bound its functions too ([`cgroup`]).
//!
//! Everything created carries the labels [`LABEL_INSTANCE`] (the runtime's
//! own instance id, drawn when it is made: see [`super::ownership`]),
//! [`LABEL_WORKER`] (the worker id, for people), [`LABEL_FUNCTION`] and
//! [`LABEL_KIND`], plus any extra labels of [`DockerSettings`] (tests add
//! their own); listing and clean-up go by the instance label, never by
//! name, so workers with the same worker id on one engine never touch each
//! other's objects, and image tags and container names include the
//! instance id (two worker ids that sanitise alike, `a.x` and `a-x`, never
//! collide). The runtime also claims a work area (a locked directory under
//! the work dir) whose record names its instance id: a worker that finds
//! such an area unlocked (its owner died, e.g. `kill -9`) removes the
//! objects labelled with that instance id, then the area
//! ([`Runtime::sweep_orphans`]).
//!
//! The engine is reached lazily: the client (its API version negotiated with
//! the engine, which may be older than bollard's default) is made on first
//! use and dropped whenever the engine does not answer, so that the runtime
//! works again once the engine is back, without a restart.
//! [`RuntimeError::EngineUnavailable`] is what the worker maps to 503.
//!
//! Parameters and defaults: [`RuntimeOptions`] (worker id, the `hf-fn`
//! binary, which must be statically linked: see [`locate`] (where it is
//! found at run time), [`DockerRuntime::default_static_fn_binary`] and
//! `scripts/build-static-hf-fn.sh`; the time scale) and [`DockerSettings`]
//! (`socket`: a `unix://` path or a plain-HTTP `tcp://host:port`, by
//! default the engine's local socket, `DOCKER_HOST` honoured when it is a
//! `unix://` address; the worker's `--docker-socket`;
//! `instance_start_timeout`: 120 s, as a warm instance reads its whole
//! package (up to 131 MB) before it announces its port; `request_timeout`:
//! 60 s, the bound on every engine request until the engine's answer
//! begins, the worker's `--engine-timeout-s` (issue 13 §3: an engine that
//! accepted requests and never answered them hung every call, and the
//! worker's clean-up, for the hour the old bound allowed); `extra_labels`:
//! none). A build's context upload and a container's removal are such
//! requests; a one-shot container's output stream is not (it lasts as long
//! as the function).

// The runtime is I/O at the edge: it reads the clock for ids and timeouts.
#![allow(clippy::disallowed_methods)]

pub mod cgroup;
pub mod context;
pub mod locate;
pub mod user;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::container::{
    AttachContainerOptions, Config, CreateContainerOptions, ListContainersOptions, LogOutput,
    LogsOptions, RemoveContainerOptions, StartContainerOptions, WaitContainerOptions,
};
use bollard::image::{BuildImageOptions, ListImagesOptions, RemoveImageOptions};
use bollard::models::HostConfig;
use bollard::Docker;
use futures_util::StreamExt;
use protocol::query::CallParams;
use protocol::FunctionOutput;
use sample_functions::payload::{scaled_bytes, PACKAGE_SCALE_ENV};
use sample_functions::workload::TIME_SCALE_ENV;
use sample_functions::FunctionSpec;

use super::instance_client::{call_query, invoke_path, InstanceClient};
use super::ownership::{claim_orphans, WorkArea};

use super::{
    parse_function_output, staged_function_file, tail, EngineHealth, Image, Instance, InstanceKind,
    Invocation, Removed, Runtime, RuntimeError, RuntimeOptions, LABEL_FUNCTION, LABEL_INSTANCE,
    LABEL_KIND, LABEL_WORKER, STDERR_TAIL_BYTES,
};

/// Default bound on every engine request ([`DockerSettings::request_timeout`]).
pub const DEFAULT_ENGINE_TIMEOUT: Duration = Duration::from_secs(60);

/// Docker-specific settings (beyond [`RuntimeOptions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSettings {
    /// Engine address: `unix:///path/docker.sock` (or just the path), or
    /// `tcp://host:port` / `http://host:port` (plain HTTP, no TLS); checked
    /// by [`DockerRuntime::with_settings`]. `None` = local defaults
    /// (`DOCKER_HOST` if it is a `unix://` address, else
    /// `/var/run/docker.sock`).
    pub socket: Option<String>,
    /// How long a warm instance may take to announce its port and answer
    /// `/health`.
    pub instance_start_timeout: Duration,
    /// Bound on every engine request, until the engine's answer begins
    /// (bollard's request timeout; whole seconds, at least 1): an engine
    /// that accepts a request and never answers makes it fail with
    /// [`RuntimeError::EngineUnavailable`] after this long (the worker's
    /// `--engine-timeout-s`, default 60 s). Streams that last as long as
    /// a function (a one-shot container's output) are not bounded by it:
    /// a call lasts as long as its function.
    pub request_timeout: Duration,
    /// More labels put on every image and container (e.g. a test's id).
    pub extra_labels: BTreeMap<String, String>,
    /// The network mode of warm instances (pool members, REST and
    /// keep-alive instances): `host` (the default: the worker runs on the
    /// host and calls them on the host's 127.0.0.1), or
    /// `container:<id or name>`: the network namespace of that container,
    /// which is the worker's own when the worker runs in a container and
    /// starts its functions as sibling containers through the mounted
    /// engine socket; they then listen on the worker's 127.0.0.1
    /// ([`instance_network`]: the worker's `--docker-instance-network`).
    pub warm_network: String,
    /// The cgroup every function container is created under (the engine's
    /// `HostConfig.CgroupParent`): `None` = the engine's default; the
    /// worker container's own cgroup makes its `cpus` and `mem_limit`
    /// bound its functions too ([`cgroup`]: the worker's
    /// `--docker-cgroup-parent`).
    pub cgroup_parent: Option<String>,
}

/// The value of `--docker-instance-network` that names the worker's own
/// container.
pub const OWN_CONTAINER: &str = "own-container";

/// The network mode of warm instances for `--docker-instance-network
/// value`: `host`, `container:<id or name>`, or [`OWN_CONTAINER`]: the
/// container this worker runs in, named by `hostname` (Docker sets a
/// container's host name to its short id, which the engine accepts as a
/// name; `/etc/hostname` holds it). Other modes (a bridge network) are
/// refused: the worker calls its instances on 127.0.0.1.
pub fn instance_network(value: &str, hostname: Option<&str>) -> Result<String, String> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.len() <= 128
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    match value {
        "host" => Ok("host".into()),
        OWN_CONTAINER => match hostname.map(str::trim) {
            Some(h) if valid_name(h) => Ok(format!("container:{h}")),
            Some(h) => Err(format!(
                "--docker-instance-network {OWN_CONTAINER}: this host's name {h:?} is not a container's id or name (is the worker running in a container?)"
            )),
            None => Err(format!(
                "--docker-instance-network {OWN_CONTAINER}: cannot read this host's name (/etc/hostname)"
            )),
        },
        other => match other.strip_prefix("container:") {
            Some(name) if valid_name(name) => Ok(other.to_string()),
            _ => Err(format!(
                "--docker-instance-network {other:?}: expected host, {OWN_CONTAINER} or container:<id or name> (the worker calls its instances on 127.0.0.1)"
            )),
        },
    }
}

impl DockerSettings {
    /// Checks [`DockerSettings::socket`] as [`DockerRuntime::with_settings`]
    /// does, without making anything.
    pub fn check_socket(&self) -> Result<(), RuntimeError> {
        match self.socket.as_deref() {
            Some(address) => EngineAddress::parse(address)
                .map(|_| ())
                .map_err(RuntimeError::Io),
            None => Ok(()),
        }
    }
}

impl Default for DockerSettings {
    fn default() -> Self {
        Self {
            socket: None,
            instance_start_timeout: Duration::from_secs(120),
            request_timeout: DEFAULT_ENGINE_TIMEOUT,
            extra_labels: BTreeMap::new(),
            warm_network: "host".into(),
            cgroup_parent: None,
        }
    }
}

/// Where the engine listens, parsed from [`DockerSettings::socket`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum EngineAddress {
    /// The path of a unix socket.
    Unix(String),
    /// `host:port`, plain HTTP.
    Http(String),
}

impl EngineAddress {
    fn parse(address: &str) -> Result<Self, String> {
        let expected = "expected unix:///path/to/docker.sock, /path/to/docker.sock, \
tcp://host:port or http://host:port";
        let a = address.trim();
        let path = a.strip_prefix("unix://").unwrap_or(a);
        if path.starts_with('/') {
            return Ok(Self::Unix(path.to_string()));
        }
        for scheme in ["tcp://", "http://"] {
            if let Some(host_port) = a.strip_prefix(scheme) {
                let host_port = host_port.trim_end_matches('/');
                if !host_port.is_empty() && !host_port.contains('/') {
                    return Ok(Self::Http(host_port.to_string()));
                }
            }
        }
        Err(format!("Docker engine address {address:?}: {expected}"))
    }

    fn connect(&self, timeout_s: u64) -> Result<Docker, bollard::errors::Error> {
        match self {
            Self::Unix(path) => {
                Docker::connect_with_unix(path, timeout_s, bollard::API_DEFAULT_VERSION)
            }
            Self::Http(host_port) => {
                Docker::connect_with_http(host_port, timeout_s, bollard::API_DEFAULT_VERSION)
            }
        }
    }
}

/// Sorts a bollard error into "engine unavailable" or an engine answer
/// (`timeout`: the request bound, named when it ran out).
fn classify(e: bollard::errors::Error, timeout: Duration) -> EngineFailure {
    use bollard::errors::Error as E;
    match e {
        E::RequestTimeoutError => EngineFailure::Unavailable(format!(
            "no answer within {} s (the engine time-out, --engine-timeout-s)",
            timeout.as_secs()
        )),
        E::DockerResponseServerError {
            status_code,
            message,
        } => EngineFailure::Answer {
            status: status_code,
            message,
        },
        other @ (E::IOError { .. }
        | E::HyperResponseError { .. }
        | E::HttpClientError { .. }
        | E::HyperLegacyError { .. }
        | E::SocketNotFoundError(_)) => {
            EngineFailure::Unavailable(protocol::text::error_line(&other))
        }
        // Their Display drops the engine's own words ("Docker stream error").
        E::DockerStreamError { error } => EngineFailure::Answer {
            status: 500,
            message: format!("error in the engine's stream: {error}"),
        },
        E::DockerContainerWaitError { error, code } => EngineFailure::Answer {
            status: 500,
            message: format!("container wait error (code {code}): {error}"),
        },
        other => EngineFailure::Answer {
            status: 500,
            message: other.to_string(),
        },
    }
}

/// An engine call's failure, before it is put in the caller's terms.
#[derive(Debug)]
enum EngineFailure {
    Unavailable(String),
    Answer { status: u16, message: String },
}

impl EngineFailure {
    fn not_found(&self) -> bool {
        matches!(self, Self::Answer { status: 404, .. })
    }

    /// The engine's 409 for an image that other images are built on
    /// ("conflict: unable to delete ... (cannot be forced) - image has
    /// dependent child images").
    fn has_child_images(&self) -> bool {
        matches!(self, Self::Answer { status: 409, message } if message.contains("dependent child images"))
    }

    /// As a [`RuntimeError`] about an instance (or the engine).
    fn instance(self, instance: &str) -> RuntimeError {
        match self {
            Self::Unavailable(m) => RuntimeError::EngineUnavailable(m),
            Self::Answer { status, message } => RuntimeError::Instance {
                instance: instance.to_string(),
                detail: format!("Docker engine answered HTTP {status}: {message}"),
            },
        }
    }

    /// As a [`RuntimeError`] about building `function`'s image.
    fn build(self, function: &str) -> RuntimeError {
        match self {
            Self::Unavailable(m) => RuntimeError::EngineUnavailable(m),
            Self::Answer { status, message } => RuntimeError::Build {
                function: function.to_string(),
                detail: format!("Docker engine answered HTTP {status}: {message}"),
            },
        }
    }

    fn other(self) -> RuntimeError {
        match self {
            Self::Unavailable(m) => RuntimeError::EngineUnavailable(m),
            Self::Answer { status, message } => {
                RuntimeError::Io(format!("Docker engine answered HTTP {status}: {message}"))
            }
        }
    }
}

/// The Docker runtime. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: RuntimeOptions,
    settings: DockerSettings,
    /// [`DockerSettings::socket`], parsed; `None` = local defaults.
    engine: Option<EngineAddress>,
    /// Where the engine is expected, as error messages name it.
    engine_label: String,
    /// The worker id made fit for image and container names.
    name_part: String,
    client: Mutex<Option<Docker>>,
    /// The static binary, read once (the same in every image).
    binary: Mutex<Option<Arc<Vec<u8>>>>,
    /// Ports of the warm instances started by this runtime, by container id.
    ports: Mutex<HashMap<String, u16>>,
    /// Kept-alive connections to the warm instances.
    instances: InstanceClient,
    sequence: AtomicU64,
    /// This runtime's own id: the [`LABEL_INSTANCE`] of its objects, in
    /// its image tags and container names.
    instance_id: String,
    /// Its locked work area (None once shut down).
    area: Mutex<Option<WorkArea>>,
    /// The tag of the Node.js runtime image of user functions, once built
    /// ([`user`]).
    node_runtime: tokio::sync::Mutex<Option<String>>,
}

/// Lower-case letters, digits and `-`, as image and container names need.
fn name_part(worker_id: &str) -> String {
    let s: String = worker_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "worker".into()
    } else {
        s
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DockerRuntime {
    /// A runtime with default [`DockerSettings`]; the engine is contacted on
    /// first use.
    pub fn new(options: RuntimeOptions) -> Result<Self, RuntimeError> {
        Self::with_settings(options, DockerSettings::default())
    }

    /// A runtime with `settings`: claims a work area under
    /// [`RuntimeOptions::work_dir`]; fails (without contacting the engine)
    /// when [`DockerSettings::socket`] is not an address it can use or the
    /// area cannot be made.
    pub fn with_settings(
        options: RuntimeOptions,
        settings: DockerSettings,
    ) -> Result<Self, RuntimeError> {
        let engine = settings
            .socket
            .as_deref()
            .map(EngineAddress::parse)
            .transpose()
            .map_err(RuntimeError::Io)?;
        let engine_label = match &settings.socket {
            Some(s) => s.trim().to_string(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| h.starts_with("unix://"))
                .unwrap_or_else(|| "unix:///var/run/docker.sock".into()),
        };
        let area = WorkArea::claim(&options.work_dir, &options.worker_id, "docker")
            .map_err(|e| RuntimeError::Io(format!("claiming a work area: {e}")))?;
        let instance_id = area.record().instance_id.to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                name_part: name_part(&options.worker_id),
                options,
                settings,
                engine,
                engine_label,
                client: Mutex::new(None),
                binary: Mutex::new(None),
                ports: Mutex::new(HashMap::new()),
                instances: InstanceClient::new(),
                sequence: AtomicU64::new(0),
                instance_id,
                area: Mutex::new(Some(area)),
                node_runtime: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The statically linked `hf-fn` found by
    /// [`locate::locate_static_hf_fn`] from the running executable, or, if
    /// none is usable, the path `HF_FN_STATIC` names or
    /// `hf-fn-static` beside the executable (so that using it fails with a
    /// message naming it). The worker checks it at start-up instead.
    pub fn default_static_fn_binary() -> PathBuf {
        locate::locate_static_hf_fn(None).unwrap_or_else(|_| {
            [locate::HF_FN_STATIC_ENV, locate::HF_FN_STATIC_ENV_OLD]
                .iter()
                .find_map(std::env::var_os)
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::current_exe()
                        .ok()
                        .and_then(|e| e.parent().map(|d| d.join("hf-fn-static")))
                        .unwrap_or_else(|| PathBuf::from("hf-fn-static"))
                })
        })
    }

    /// The engine client, connected (and version-negotiated) on demand.
    async fn client(&self) -> Result<Docker, EngineFailure> {
        if let Some(c) = lock(&self.inner.client).as_ref() {
            return Ok(c.clone());
        }
        let timeout = self.request_timeout();
        let fresh = match &self.inner.engine {
            Some(address) => address.connect(timeout.as_secs()),
            None => Docker::connect_with_local_defaults().map(|d| d.with_timeout(timeout)),
        }
        .map_err(|e| self.unreachable(e.to_string()))?;
        let negotiated = fresh.negotiate_version().await.map_err(|e| self.fail(e))?;
        *lock(&self.inner.client) = Some(negotiated.clone());
        Ok(negotiated)
    }

    /// "Engine unavailable", naming where the engine was expected.
    fn unreachable(&self, detail: String) -> EngineFailure {
        EngineFailure::Unavailable(format!(
            "Docker engine unreachable at {}: {detail}",
            self.inner.engine_label
        ))
    }

    /// [`DockerSettings::request_timeout`] in whole seconds (at least 1,
    /// as bollard counts it).
    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.inner.settings.request_timeout.as_secs().max(1))
    }

    /// Sorts an engine error, forgetting the client if the engine is gone.
    fn fail(&self, e: bollard::errors::Error) -> EngineFailure {
        match classify(e, self.request_timeout()) {
            EngineFailure::Unavailable(detail) => {
                *lock(&self.inner.client) = None;
                self.unreachable(detail)
            }
            answer => answer,
        }
    }

    /// The tag of `function`'s image.
    pub fn image_name(&self, function: &str) -> String {
        format!(
            "hotfunctions-{}-{}:{}",
            self.inner.name_part,
            function.to_ascii_lowercase(),
            self.inner.instance_id
        )
    }

    fn labels(&self, function: &str, kind: &str) -> HashMap<String, String> {
        let mut labels: HashMap<String, String> = self
            .inner
            .settings
            .extra_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(LABEL_WORKER.into(), self.inner.options.worker_id.clone());
        labels.insert(LABEL_INSTANCE.into(), self.inner.instance_id.clone());
        labels.insert(LABEL_FUNCTION.into(), function.into());
        labels.insert(LABEL_KIND.into(), kind.into());
        labels
    }

    /// Label filters selecting the objects of the runtime `instance` (this
    /// one's, or a dead one's) and this runtime's extra labels.
    fn instance_filters(&self, instance: &str) -> HashMap<String, Vec<String>> {
        let mut label = vec![format!("{LABEL_INSTANCE}={instance}")];
        label.extend(
            self.inner
                .settings
                .extra_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
        HashMap::from([("label".to_string(), label)])
    }

    fn static_binary(&self) -> Result<Arc<Vec<u8>>, context::ContextError> {
        let mut slot = lock(&self.inner.binary);
        if let Some(b) = slot.as_ref() {
            return Ok(b.clone());
        }
        let bytes = Arc::new(context::read_static_binary(&self.inner.options.fn_binary)?);
        *slot = Some(bytes.clone());
        Ok(bytes)
    }

    /// Images of this runtime in the engine: (function, tag).
    pub async fn list_own_images(&self) -> Result<Vec<(String, String)>, RuntimeError> {
        self.list_images_of(&self.inner.instance_id).await
    }

    /// Images labelled with the runtime `instance`: (function, tag).
    async fn list_images_of(&self, instance: &str) -> Result<Vec<(String, String)>, RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let images = docker
            .list_images(Some(ListImagesOptions {
                all: false,
                filters: self.instance_filters(instance),
                digests: false,
            }))
            .await
            .map_err(|e| self.fail(e).other())?;
        let mut out: Vec<(String, String)> = images
            .into_iter()
            // User functions' images are theirs ([`user`]).
            .filter(|i| !user::is_user_kind(i.labels.get(LABEL_KIND)))
            .filter_map(|i| {
                // An intermediate image of an interrupted build carries
                // only the Dockerfile's labels (`context::dockerfile`).
                let function = i
                    .labels
                    .get(LABEL_FUNCTION)
                    .or_else(|| i.labels.get("hotfunctions.package"))?
                    .clone();
                let tag = removal_ref(i.repo_tags, i.id);
                Some((function, tag))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Whether `function`'s image exists in the engine.
    pub async fn image_exists(&self, function: &str) -> Result<bool, RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        match docker.inspect_image(&self.image_name(function)).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = self.fail(e);
                if e.not_found() {
                    Ok(false)
                } else {
                    Err(e.other())
                }
            }
        }
    }

    /// [`cgroup::FUNCTION_OOM_SCORE_ADJ`] when the containers share the
    /// worker's cgroup (memory), else the engine's default.
    fn function_oom_score_adj(&self) -> Option<i64> {
        self.inner
            .settings
            .cgroup_parent
            .as_ref()
            .map(|_| cgroup::FUNCTION_OOM_SCORE_ADJ)
    }

    fn next_container_name(&self, function: &str, kind: InstanceKind) -> String {
        let n = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        format!(
            "hotfunctions-{}-{}-{}-{}-{n}",
            self.inner.name_part,
            function.to_ascii_lowercase(),
            kind.label(),
            self.inner.instance_id
        )
    }

    /// Creates (without starting) a container of `image` (a one-shot
    /// call's shape as `--call QUERY`).
    async fn create_container(
        &self,
        image: &Image,
        kind: InstanceKind,
        call: Option<String>,
    ) -> Result<Instance, RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let name = self.next_container_name(&image.function, kind);
        let (cmd, network) = match kind {
            InstanceKind::OneShot => {
                let mut cmd = vec![image.function.clone()];
                if let Some(query) = call {
                    cmd.extend(["--call".to_string(), query]);
                }
                (cmd, "none")
            }
            InstanceKind::Pooled | InstanceKind::Rest => (
                vec![
                    "serve".into(),
                    "--function".into(),
                    image.function.clone(),
                    "--port".into(),
                    "0".into(),
                ],
                self.inner.settings.warm_network.as_str(),
            ),
        };
        let config = Config {
            image: Some(image.name.clone()),
            cmd: Some(cmd),
            env: Some(vec![
                format!("{TIME_SCALE_ENV}={}", self.inner.options.time_scale),
                format!("{PACKAGE_SCALE_ENV}={}", self.inner.options.package_scale),
            ]),
            labels: Some(self.labels(&image.function, kind.label())),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some(network.into()),
                cgroup_parent: self.inner.settings.cgroup_parent.clone(),
                oom_score_adj: self.function_oom_score_adj(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: name.clone(),
                    platform: None,
                }),
                config,
            )
            .await
            .map_err(|e| match self.fail(e) {
                EngineFailure::Answer { status: 404, .. } => RuntimeError::Instance {
                    instance: name.clone(),
                    detail: format!("image {} is missing (evicted?)", image.name),
                },
                other => other.instance(&name),
            })?;
        Ok(Instance {
            id: created.id,
            name,
            function: image.function.clone(),
            kind,
        })
    }

    /// Attaches to a created container and starts it.
    async fn attach_and_start(
        &self,
        instance: &Instance,
    ) -> Result<bollard::container::AttachContainerResults, RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let attached = docker
            .attach_container(
                &instance.id,
                Some(AttachContainerOptions::<String> {
                    stdout: Some(true),
                    stderr: Some(true),
                    stream: Some(true),
                    logs: Some(true),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| self.fail(e).instance(&instance.name))?;
        docker
            .start_container(&instance.id, None::<StartContainerOptions<String>>)
            .await
            .map_err(|e| self.fail(e).instance(&instance.name))?;
        Ok(attached)
    }

    /// Runs a created one-shot container to its end: (stdout, stderr, exit code).
    async fn run_to_exit(
        &self,
        instance: &Instance,
    ) -> Result<(String, String, i64), RuntimeError> {
        let attached = self.attach_and_start(instance).await?;
        let mut output = attached.output;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = output.next().await {
            match chunk.map_err(|e| self.fail(e).instance(&instance.name))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.extend_from_slice(&message)
                }
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                LogOutput::StdIn { .. } => {}
            }
        }
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let mut wait = docker.wait_container(
            &instance.id,
            Some(WaitContainerOptions {
                condition: "not-running",
            }),
        );
        let exit_code = match wait.next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(self.fail(e).instance(&instance.name)),
            None => {
                return Err(RuntimeError::Instance {
                    instance: instance.name.clone(),
                    detail: "the engine gave no exit status".into(),
                })
            }
        };
        Ok((
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
            exit_code,
        ))
    }

    /// Starts a created warm container and waits for its port and health.
    async fn start_warm(&self, instance: &Instance) -> Result<u16, RuntimeError> {
        let attached = self.attach_and_start(instance).await?;
        let timeout = self.inner.settings.instance_start_timeout;
        let start_error = |detail: String| RuntimeError::Instance {
            instance: instance.name.clone(),
            detail,
        };
        let mut output = attached.output;
        let (mut stdout, mut stderr) = (Vec::<u8>::new(), Vec::<u8>::new());
        let read_port = async {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| self.fail(e).instance(&instance.name))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout.extend_from_slice(&message);
                        if let Some(port) = announced_port(&stdout) {
                            return Ok(Some(port));
                        }
                    }
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
            Ok::<_, RuntimeError>(None)
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let port = match tokio::time::timeout_at(deadline, read_port).await {
            Ok(Ok(Some(port))) => port,
            Ok(Ok(None)) => {
                return Err(start_error(format!(
                    "exited before announcing its port; stderr: {}",
                    tail(&String::from_utf8_lossy(&stderr), STDERR_TAIL_BYTES)
                )))
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(start_error(format!(
                    "did not announce its port within {timeout:?}; stderr: {}",
                    tail(&String::from_utf8_lossy(&stderr), STDERR_TAIL_BYTES)
                )))
            }
        };
        // The port line follows the bind, so /health answers at once; retry
        // briefly anyway (a busy machine), up to the same deadline.
        loop {
            match self.inner.instances.get(port, "/health").await {
                Ok(r) if r.status == 200 => return Ok(port),
                result => {
                    if tokio::time::Instant::now() >= deadline {
                        let why = match result {
                            Ok(r) => format!("HTTP {}", r.status),
                            Err(e) => e.to_string(),
                        };
                        return Err(start_error(format!("GET /health: {why}")));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The host loopback port of a warm instance (pooled or REST).
    pub async fn instance_port(&self, instance: &Instance) -> Result<u16, RuntimeError> {
        self.port_of(instance).await
    }

    /// The port of a warm instance: remembered, else read from its logs
    /// (an instance left over by an earlier run of this worker).
    async fn port_of(&self, instance: &Instance) -> Result<u16, RuntimeError> {
        if let Some(&p) = lock(&self.inner.ports).get(&instance.id) {
            return Ok(p);
        }
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let mut logs = docker.logs(
            &instance.id,
            Some(LogsOptions::<String> {
                stdout: true,
                ..Default::default()
            }),
        );
        let mut stdout = Vec::new();
        while let Some(chunk) = logs.next().await {
            if let LogOutput::StdOut { message } =
                chunk.map_err(|e| self.fail(e).instance(&instance.name))?
            {
                stdout.extend_from_slice(&message);
                if let Some(port) = announced_port(&stdout) {
                    lock(&self.inner.ports).insert(instance.id.clone(), port);
                    return Ok(port);
                }
            }
        }
        Err(RuntimeError::Instance {
            instance: instance.name.clone(),
            detail: "no {\"port\": N} line in its output".into(),
        })
    }

    /// Removes a container by id (no error if gone).
    async fn remove_container(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        if let Some(port) = lock(&self.inner.ports).remove(id) {
            self.inner.instances.forget(port);
        }
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match self.fail(e) {
                // 404: gone; 409: a removal is already in progress.
                EngineFailure::Answer {
                    status: 404 | 409, ..
                } => Ok(()),
                other => Err(other.instance(name)),
            },
        }
    }

    /// Waits (up to the engine time-out) until the container `id` is gone.
    async fn await_container_gone(&self, id: &str) -> Result<(), RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let deadline = tokio::time::Instant::now() + self.request_timeout();
        loop {
            match docker.inspect_container(id, None).await {
                Err(e) => {
                    let e = self.fail(e);
                    if e.not_found() {
                        return Ok(());
                    }
                    return Err(e.instance(id));
                }
                Ok(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(RuntimeError::Instance {
                        instance: id.into(),
                        detail: format!(
                            "still there {} s after its removal",
                            self.request_timeout().as_secs()
                        ),
                    })
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    async fn remove_image_named(&self, function: &str, tag: &str) -> Result<(), RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let options = RemoveImageOptions {
            force: true,
            noprune: false,
        };
        match docker.remove_image(tag, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = self.fail(e);
                // An intermediate image of an interrupted build that still
                // has a child goes with that child (removed with its
                // untagged parents).
                if e.not_found() || e.has_child_images() {
                    Ok(())
                } else {
                    Err(e.build(function))
                }
            }
        }
    }
}

/// Removes a one-shot container when dropped: after the call, and also when
/// the caller's future is dropped mid-call (the HTTP client went away).
struct RemoveOnDrop {
    runtime: DockerRuntime,
    instance: Option<Instance>,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let Some(instance) = self.instance.take() else {
            return;
        };
        let runtime = self.runtime.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = runtime
                        .remove_container(&instance.id, &instance.name)
                        .await
                    {
                        tracing::warn!("removing container {}: {e}", instance.name);
                    }
                });
            }
            Err(_) => tracing::warn!(
                "container {} left behind (no async runtime to remove it); the next clean-up removes it",
                instance.name
            ),
        }
    }
}

impl Runtime for DockerRuntime {
    fn options(&self) -> &RuntimeOptions {
        &self.inner.options
    }

    fn name(&self) -> &'static str {
        "docker"
    }

    fn engine_label(&self) -> String {
        format!("Docker engine at {}", self.inner.engine_label)
    }

    async fn health(&self) -> Result<EngineHealth, RuntimeError> {
        let docker = self.client().await.map_err(|e| {
            *lock(&self.inner.client) = None;
            e.other()
        })?;
        let version = docker.version().await.map_err(|e| self.fail(e).other())?;
        Ok(EngineHealth {
            runtime: "docker".into(),
            engine: format!(
                "Docker {} (API {})",
                version.version.unwrap_or_default(),
                version.api_version.unwrap_or_default()
            ),
        })
    }

    async fn build_image(&self, function: &FunctionSpec) -> Result<Image, RuntimeError> {
        let name = function.name.clone();
        let build_error = |detail: String| RuntimeError::Build {
            function: name.clone(),
            detail,
        };
        let docker = self.client().await.map_err(|e| e.build(&name))?;
        let binary = self
            .static_binary()
            .map_err(|e| build_error(e.to_string()))?;
        let package_bytes = scaled_bytes(function.package_bytes, self.inner.options.package_scale);
        let for_task = name.clone();
        let build_scope = self.inner.name_part.clone();
        let instance_id = self.inner.instance_id.clone();
        let row = staged_function_file(function);
        // Making a 131 MB context is CPU work: off the async threads.
        let tar = tokio::task::spawn_blocking(move || {
            context::build_context(
                &build_scope,
                &instance_id,
                &for_task,
                package_bytes,
                &binary,
                row.as_deref(),
            )
        })
        .await
        .map_err(|e| build_error(format!("context task failed: {e}")))?
        .map_err(|e| build_error(e.to_string()))?;
        let tag = self.image_name(&name);
        let tar: bytes::Bytes = tar.into();
        // A second attempt, without the engine's build cache, when the
        // first lost an intermediate image mid-build (see
        // `lost_an_intermediate_image`).
        for attempt in 1..=2 {
            let options = BuildImageOptions {
                dockerfile: "Dockerfile".to_string(),
                t: tag.clone(),
                rm: true,
                forcerm: true,
                nocache: attempt > 1,
                labels: self.labels(&name, "image"),
                ..Default::default()
            };
            let mut progress = docker.build_image(options, None, Some(tar.clone()));
            let mut failed = None;
            while let Some(item) = progress.next().await {
                let info = item.map_err(|e| self.fail(e).build(&name))?;
                if let Some(message) = info.error {
                    failed = Some(message);
                    break;
                }
            }
            match failed {
                None => break,
                Some(message) if attempt == 1 && lost_an_intermediate_image(&message) => {
                    tracing::warn!(
                        function = %name,
                        "the engine lost an intermediate image while building ({message}); building once more without its cache"
                    );
                }
                Some(message) => return Err(build_error(message)),
            }
        }
        let inspected = docker
            .inspect_image(&tag)
            .await
            .map_err(|e| self.fail(e).build(&name))?;
        Ok(Image {
            function: name,
            name: tag,
            bytes: package_bytes,
            stored_bytes: inspected.size.map_or(0, |s| s.max(0) as u64),
        })
    }

    async fn remove_image(&self, image: &Image) -> Result<(), RuntimeError> {
        // The engine refuses to remove an image in use; pool members of an
        // evicted image are the worker's to remove first (force removes the
        // tag even so; the layers go with the last container).
        self.remove_image_named(&image.function, &image.name).await
    }

    async fn run_once_with(
        &self,
        image: &Image,
        call: CallParams,
    ) -> Result<Invocation, RuntimeError> {
        let instance = self
            .create_container(image, InstanceKind::OneShot, call_query(&call))
            .await?;
        let guard = RemoveOnDrop {
            runtime: self.clone(),
            instance: Some(instance.clone()),
        };
        let (stdout, stderr, exit_code) = self.run_to_exit(&instance).await?;
        drop(guard);
        if exit_code != 0 {
            return Err(RuntimeError::FunctionFailed {
                function: image.function.clone(),
                status: format!("exit status {exit_code}"),
                stderr_tail: tail(&stderr, STDERR_TAIL_BYTES),
            });
        }
        let output = parse_function_output(&image.function, &stdout)?;
        Ok(Invocation {
            output,
            instance_name: instance.name,
        })
    }

    async fn start_instance(
        &self,
        image: &Image,
        kind: InstanceKind,
    ) -> Result<Instance, RuntimeError> {
        if kind == InstanceKind::OneShot {
            return Err(RuntimeError::Instance {
                instance: image.function.clone(),
                detail: "one-shot instances are started by run_once".into(),
            });
        }
        let instance = self.create_container(image, kind, None).await?;
        let mut guard = RemoveOnDrop {
            runtime: self.clone(),
            instance: Some(instance.clone()),
        };
        let port = self.start_warm(&instance).await?;
        lock(&self.inner.ports).insert(instance.id.clone(), port);
        guard.instance = None;
        Ok(instance)
    }

    async fn invoke_with(
        &self,
        instance: &Instance,
        call: CallParams,
    ) -> Result<Invocation, RuntimeError> {
        let port = self.port_of(instance).await?;
        let reply = self
            .inner
            .instances
            .get(port, &invoke_path(&call))
            .await
            .map_err(|e| RuntimeError::Instance {
                instance: instance.name.clone(),
                detail: e.to_string(),
            })?;
        let body = String::from_utf8_lossy(&reply.body);
        if reply.status != 200 {
            return Err(RuntimeError::FunctionFailed {
                function: instance.function.clone(),
                status: format!("HTTP {}", reply.status),
                stderr_tail: tail(&body, STDERR_TAIL_BYTES),
            });
        }
        let output: FunctionOutput = parse_function_output(&instance.function, &body)?;
        Ok(Invocation {
            output,
            instance_name: instance.name.clone(),
        })
    }

    async fn remove_instance(&self, instance: &Instance) -> Result<(), RuntimeError> {
        self.remove_container(&instance.id, &instance.name).await
    }

    async fn list_own_instances(&self) -> Result<Vec<Instance>, RuntimeError> {
        self.list_containers_of(&self.inner.instance_id).await
    }

    async fn remove_all_own(&self, images: bool) -> Result<Removed, RuntimeError> {
        // `/clear` leaves the user functions' objects to them.
        self.remove_all_of(&self.inner.instance_id, images, false)
            .await
    }

    fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    async fn sweep_orphans(&self) -> Result<Removed, RuntimeError> {
        let work_dir = self.inner.options.work_dir.clone();
        let own = lock(&self.inner.area)
            .as_ref()
            .map(|a| a.dir().to_path_buf())
            .unwrap_or_default();
        let orphans = tokio::task::spawn_blocking(move || claim_orphans(&work_dir, &own))
            .await
            .map_err(|e| RuntimeError::Io(format!("sweeping task: {e}")))?
            .map_err(|e| RuntimeError::Io(format!("looking for orphans: {e}")))?;
        let mut removed = Removed::default();
        for o in orphans {
            // A process-runtime area holds only files: whoever finds it
            // may remove it; a Docker one, once its objects are gone.
            if o.record.runtime == "docker" {
                match self
                    .remove_all_of(o.record.instance_id.as_str(), true, true)
                    .await
                {
                    Ok(r) => {
                        removed.instances += r.instances;
                        removed.images += r.images;
                    }
                    Err(e) => {
                        tracing::warn!(
                            "leftovers of {} stay for now (the engine failed: {e})",
                            o.dir.display()
                        );
                        continue;
                    }
                }
            }
            let dir = o.dir.clone();
            let (worker, pid) = (o.record.worker_id.clone(), o.record.pid);
            match tokio::task::spawn_blocking(move || o.remove()).await {
                Ok(Ok(())) => tracing::info!(
                    "removed the leftovers of {} (worker {worker:?}, pid {pid}, gone: its lock was free)",
                    dir.display()
                ),
                Ok(Err(e)) => tracing::warn!("removing {}: {e}", dir.display()),
                Err(e) => tracing::warn!("removing {}: {e}", dir.display()),
            }
        }
        Ok(removed)
    }

    async fn shutdown(&self) -> Result<Removed, RuntimeError> {
        let id = self.inner.instance_id.clone();
        let removed = self.remove_all_of(&id, true, true).await?;
        let area = lock(&self.inner.area).take();
        if let Some(area) = area {
            tokio::task::spawn_blocking(move || area.remove())
                .await
                .map_err(|e| RuntimeError::Io(format!("removing the work area: {e}")))?
                .map_err(|e| RuntimeError::Io(format!("removing the work area: {e}")))?;
        }
        Ok(removed)
    }
}

impl DockerRuntime {
    /// Containers labelled with the runtime `instance`.
    async fn list_containers_of(&self, instance: &str) -> Result<Vec<Instance>, RuntimeError> {
        let docker = self.client().await.map_err(EngineFailure::other)?;
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: self.instance_filters(instance),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.fail(e).other())?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                Some(Instance {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.first().map(|s| s.trim_start_matches('/').to_string()))
                        .unwrap_or_default(),
                    function: labels.get(LABEL_FUNCTION)?.clone(),
                    kind: InstanceKind::from_label(labels.get(LABEL_KIND)?)?,
                })
            })
            .collect())
    }

    /// Removes the containers and, with `images`, the images labelled with
    /// the runtime `instance`; with `user_too`, the user functions' too
    /// (shutdown, orphans; not `/clear`).
    async fn remove_all_of(
        &self,
        instance: &str,
        images: bool,
        user_too: bool,
    ) -> Result<Removed, RuntimeError> {
        let mut removed = Removed::default();
        if user_too {
            removed = self.remove_user_of(instance, None, None).await?;
        }
        let instances = self.list_containers_of(instance).await?;
        for i in &instances {
            self.remove_container(&i.id, &i.name).await?;
            // A removal already under way (an instance expired just
            // before) answers 409 at once: an image removed while its
            // container still exists would only lose its tag, and stay.
            if images {
                self.await_container_gone(&i.id).await?;
            }
        }
        removed.instances += instances.len();
        if images {
            for (function, tag) in self.list_images_of(instance).await? {
                self.remove_image_named(&function, &tag).await?;
                removed.images += 1;
            }
        }
        Ok(removed)
    }
}

/// How an image is named for its removal: its first tag, or its id when it
/// has none (engines list an untagged image as `<none>:<none>`, a name
/// that removes nothing).
fn removal_ref(tags: Vec<String>, id: String) -> String {
    tags.into_iter()
        .find(|t| !t.starts_with("<none>"))
        .unwrap_or(id)
}

/// The port of a `{"port": N}` line, once that whole line has arrived.
fn announced_port(stdout: &[u8]) -> Option<u16> {
    #[derive(serde::Deserialize)]
    struct Announce {
        port: u16,
    }
    let complete = match stdout.iter().rposition(|&b| b == b'\n') {
        Some(end) => &stdout[..end],
        None => return None,
    };
    complete
        .split(|&b| b == b'\n')
        .find_map(|line| serde_json::from_slice::<Announce>(line).ok())
        .map(|a| a.port)
}

/// A build failed because an image the engine's builder was building on
/// disappeared: the classic builder answers "unable to find image
/// sha256:..." (or "No such image") mid-stream when an intermediate or
/// cached image is removed while a build uses it, as happened once under
/// heavy load with 30 builds of one worker in flight and other workers
/// removing their images on the same engine. It is the engine's race, not
/// the function's: the build is worth one more attempt, without the
/// cache, so that it depends on no image but its own.
fn lost_an_intermediate_image(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("unable to find image") || m.contains("no such image")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_untagged_image_is_removed_by_its_id() {
        use super::removal_ref;
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(removal_ref(s(&["hf/W1:a"]), "sha256:1".into()), "hf/W1:a");
        assert_eq!(
            removal_ref(s(&["<none>:<none>"]), "sha256:1".into()),
            "sha256:1"
        );
        assert_eq!(removal_ref(s(&[]), "sha256:1".into()), "sha256:1");
        assert_eq!(
            removal_ref(s(&["<none>:<none>", "hf/W1:b"]), "sha256:1".into()),
            "hf/W1:b"
        );
    }

    #[test]
    fn instance_networks_are_host_or_a_containers() {
        use super::instance_network as net;
        assert_eq!(net("host", None).unwrap(), "host");
        assert_eq!(
            net("own-container", Some("3f2a9c1b7d4e\n")).unwrap(),
            "container:3f2a9c1b7d4e"
        );
        assert_eq!(net("container:w1", None).unwrap(), "container:w1");
        for (value, hostname) in [
            ("own-container", None),
            ("own-container", Some("")),
            ("own-container", Some("a b")),
            ("bridge", None),
            ("container:", None),
            ("container:a/b", None),
        ] {
            assert!(net(value, hostname).is_err(), "{value} {hostname:?}");
        }
    }

    #[test]
    fn an_intermediate_image_with_a_child_is_left_to_its_child() {
        let child = EngineFailure::Answer {
            status: 409,
            message: "conflict: unable to delete 3f2a (cannot be forced) - image has dependent child images".into(),
        };
        assert!(child.has_child_images());
        let in_use = EngineFailure::Answer {
            status: 409,
            message: "conflict: unable to remove repository reference (must force) - container 1c is using its referenced image".into(),
        };
        assert!(!in_use.has_child_images());
        assert!(!EngineFailure::Unavailable("down".into()).has_child_images());
    }

    #[test]
    fn a_lost_intermediate_image_is_told_from_other_build_errors() {
        assert!(super::lost_an_intermediate_image(
            "unable to find image \"sha256:1c6f55c0d1d4b99b946a3cb041a0c0d9c700b45894bc158a6d24e31f271b9591\""
        ));
        assert!(super::lost_an_intermediate_image(
            "No such image: sha256:abc"
        ));
        assert!(!super::lost_an_intermediate_image(
            "COPY failed: file not found in build context"
        ));
        assert!(!super::lost_an_intermediate_image(
            "no space left on device"
        ));
    }

    use super::*;

    fn options(worker_id: &str) -> RuntimeOptions {
        RuntimeOptions {
            worker_id: worker_id.into(),
            fn_binary: DockerRuntime::default_static_fn_binary(),
            time_scale: 0.01,
            package_scale: 1.0,
            work_dir: std::env::temp_dir(),
        }
    }

    /// Removes a test runtime's work area (no engine involved).
    fn release(rt: DockerRuntime) {
        if let Some(area) = lock(&rt.inner.area).take() {
            area.remove().unwrap();
        }
    }

    #[test]
    fn port_line_is_read_only_when_complete() {
        assert_eq!(announced_port(b"{\"port\": 41"), None);
        assert_eq!(announced_port(b"{\"port\": 4123}\n"), Some(4123));
        assert_eq!(announced_port(b"log line\n{\"port\":80}\nmore"), Some(80));
        assert_eq!(announced_port(b"{\"port\": 70000}\n"), None);
    }

    #[test]
    fn names_fit_docker() {
        assert_eq!(name_part("Worker 8222/A"), "worker-8222-a");
        assert_eq!(name_part("--"), "worker");
        let work = tempfile::tempdir().unwrap();
        let at = |id: &str| {
            DockerRuntime::new(RuntimeOptions {
                work_dir: work.path().to_path_buf(),
                ..options(id)
            })
            .unwrap()
        };
        let rt = at("node-1");
        let tag = rt.image_name("W1");
        assert_eq!(tag, format!("hotfunctions-node-1-w1:{}", rt.instance_id()));
        let a = rt.next_container_name("W1", InstanceKind::Rest);
        let b = rt.next_container_name("W1", InstanceKind::Rest);
        assert_ne!(a, b);
        assert!(a.starts_with("hotfunctions-node-1-w1-rest-"), "{a}");
        // Same worker id, or ids that sanitise alike: never the same names.
        let names = |rt: &DockerRuntime| {
            (
                rt.image_name("W1"),
                rt.next_container_name("W1", InstanceKind::Rest),
            )
        };
        let (twin, dot, dash) = (at("node-1"), at("a.x"), at("a-x"));
        assert_eq!(name_part("a.x"), name_part("a-x"));
        assert_ne!(names(&rt).0, names(&twin).0);
        assert_ne!(names(&rt).1, names(&twin).1);
        assert_ne!(names(&dot).0, names(&dash).0);
        assert_ne!(names(&dot).1, names(&dash).1);
        for r in [rt, twin, dot, dash] {
            release(r);
        }
    }

    #[tokio::test]
    async fn a_missing_engine_is_unavailable_and_not_cached() {
        let settings = DockerSettings {
            socket: Some("unix:///nonexistent/docker.sock".into()),
            ..Default::default()
        };
        let rt = DockerRuntime::with_settings(options("t"), settings).unwrap();
        for _ in 0..2 {
            let err = rt.health().await.unwrap_err();
            assert!(matches!(err, RuntimeError::EngineUnavailable(_)), "{err:?}");
            assert!(
                err.to_string()
                    .contains("Docker engine unreachable at unix:///nonexistent/docker.sock"),
                "{err}"
            );
            assert!(lock(&rt.inner.client).is_none());
        }
        let spec = sample_functions::catalog().get("noop").unwrap();
        let err = rt.build_image(spec).await.unwrap_err();
        assert!(matches!(err, RuntimeError::EngineUnavailable(_)), "{err}");
        release(rt);
    }

    #[test]
    fn engine_addresses() {
        use EngineAddress::{Http, Unix};
        let ok = |a: &str| EngineAddress::parse(a).unwrap();
        assert_eq!(
            ok("unix:///var/run/docker.sock"),
            Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            ok("/run/user/1000/docker.sock"),
            Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(ok("tcp://10.0.0.2:2375"), Http("10.0.0.2:2375".into()));
        assert_eq!(ok("http://engine:2375/"), Http("engine:2375".into()));
        for bad in [
            "",
            "docker.sock",
            "unix://relative.sock",
            "tcp://",
            "https://h:2376",
            "ssh://me@host",
        ] {
            let e = EngineAddress::parse(bad).unwrap_err();
            assert!(e.contains("expected unix:///"), "{bad}: {e}");
        }
        let e = DockerRuntime::with_settings(
            options("t"),
            DockerSettings {
                socket: Some("ssh://me@host".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"ssh://me@host\""), "{e}");
    }
}
