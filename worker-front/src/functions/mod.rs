//! Users' own functions on a worker: the Glambdar API (issue 14, on a
//! single worker, with the process or the Docker runtime).
//!
//! Glambdar (the seed project this testbed stands beside) lets a user
//! `POST /deploy` a zip, call it at `/invoke/:name`, and read `/info`,
//! `/logs`, delete it at `/del/:name` and rate-limit it at
//! `/config/:name`, with metadata and logs in SQLite. This module does the
//! same on the worker, with the routes and shapes of [`http`].
//!
//! # Layout
//! - [`package`]: names, the manifest (`hf-function.json`), the checks and
//!   unpacking of a zip (zip slip, symlinks out, zip bombs); shared with
//!   the balancer (`sample_functions::user`).
//! - [`store`]: the data directory (locked), the content-addressed blobs,
//!   the SQLite database of functions and call logs (the blobs and the
//!   database are `sample_functions::user::store`'s, shared too).
//! - [`instance`]: running a function: warm HTTP instances (native or the
//!   Node.js bootstrap) as local processes or containers, and one-shot CGI
//!   runs (processes).
//! - [`node`]: a version in the worker's node model (its model name, its
//!   staged image, its instances) and [`node::UserNode`], what this
//!   module asks of the worker core (`crate::worker`), which drives the
//!   model for the samples and the user functions alike.
//! - [`rate`]: the token bucket of a rate limit (pure; shared).
//! - [`http`]: the actix routes.
//!
//! # Versions and atomic redeploys
//! Each deploy of a name makes a new version (1, 2, ...; a deleted name
//! starts again at 1) unpacked into a directory of its own. The table of
//! functions maps a name to its current [`Deployed`] version behind an
//! `Arc`: a call takes the `Arc` when it starts, so a call in flight
//! finishes on the version it started on while new calls get the new one.
//! A replaced version is retired in the node model at once (its idle
//! instances stop, busy ones when their calls end: it drains) and its
//! image and directory go when its last call ends (when the last `Arc`
//! goes).
//! Counters and the rate limit belong to the name and carry over to new
//! versions (a deploy's `rateLimit` replaces the limit).
//!
//! # In the node model
//! A user function is just a function with a package: each version is a
//! function of the worker's `policy::node::NodeModel` (named
//! `<name>@<deploy>`, see [`node`]), so its calls take the decisions a
//! sample's take, with the worker's options (`/configure`, the flags):
//! - its package counts in the image cache (`USER_CODE_SIZE_LIMIT`) by its
//!   unpacked size; a deploy stages it (a copy under the data dir's
//!   `staged/` with the process runtime, the version's image with the
//!   Docker runtime) and it may evict others, least recently used first,
//!   their idle instances with them; an evicted version is staged again
//!   by its next call (`ImageBuilt`, a cold start);
//! - its instances are the instance model's: HotFunctions runs a call in
//!   an instance of its own (started for it, stopped after it), or in a
//!   pre-warmed pool instance (`CONTAINER_POOL_LIMIT`,
//!   `CONTAINER_POOL_NUM`), or in REST mode (`USING_REST_MODE`) on the
//!   version's one long-lived instance, stopped after
//!   `REST_CONTAINER_LIFE_TIME` idle; the Lambda model
//!   (`--keep-alive-policy`) keeps one-call instances alive under its
//!   policy;
//! - `/instances`, `/scale` (scale to zero, wake) and `/clear` treat it as
//!   a sample (`/clear` stops its instances; with `reset_images` its
//!   staged image goes too);
//! - a call's `Meta` is the model's (`ImageBuilt`, `UsingPooledContainer`,
//!   `UsingExistingRestContainer`).
//!
//! A `oneshot` (CGI) function has no long-lived process: each of its calls
//! runs the package once, whatever instance the model names.
//!
//! # In a cluster
//! The balancer holds the store (`load_balancer::functions`) and names, on
//! each call it forwards, the version and SHA-256 the worker must run
//! (`X-Hf-Function-Version`, `X-Hf-Function-Digest`, honoured from
//! loopback peers or with the management token in `X-Hf-Authorization`);
//! [`Functions::ensure`] fetches a missing version from the balancer
//! (`--functions-from`, default `--join`), checks its digest and deploys
//! it under that version, unlimited (the balancer enforces rate limits).
//!
//! # The Docker runtime
//! A worker started with `--runtime docker` runs user functions in
//! containers of the same engine, with no registry
//! (`runtime::docker::user` builds and removes them):
//! - Each deploy builds the version's image before the version serves (a
//!   failed build leaves the previous version serving): a native (`http`)
//!   function's package under `/fn` in a `FROM scratch` image; a Node.js
//!   function's package and the bootstrap on a Node.js runtime image made
//!   once per worker from the host's `node` (`--node`) and the shared
//!   libraries its dynamic loader lists, copied at their paths with the
//!   loader.
//! - Refused with a 400 naming the problem, the previous version keeping
//!   serving: a native entry that is not a statically linked x86-64
//!   executable (it has a `PT_INTERP`, or a dynamic section naming
//!   libraries: `runtime::docker::context::check_static_elf`), since a
//!   scratch image has no loader and no libraries; and a `oneshot`
//!   function: a container per call would cost the engine's start-up on
//!   every call, so one-shot functions run on process-runtime workers only
//!   (a version of one restored from a data dir fails its calls with 502).
//! - The warm instance of a version is a container (as `nobody`, stdin
//!   held open, in the network of the sample functions' warm containers,
//!   `--docker-instance-network`), listening on the worker's 127.0.0.1 at
//!   the `$PORT` it is given; calls reach that address as they reach a
//!   process's.
//! - Images and containers carry the worker's labels (its runtime's
//!   instance id: ownership, the orphan sweep) with the function's name and
//!   a label of the deploy (`hotfunctions.user-deploy`). A replaced
//!   version's containers and image go when its last call ends; a delete
//!   removes every container and image of the name before it answers; the
//!   worker's stop removes all of them and the runtime image. `/clear`
//!   stops their containers (and with `reset_images` removes their
//!   images), as the node model says.
//! - With `--data-dir`, a restarted worker builds a version's image again
//!   on its first call (the model's `BuildImage`); evicting a version's
//!   image removes it and its containers.

pub mod http;
pub mod instance;
pub mod node;
pub mod store;
/// The package checks and the rate limit are shared with the balancer.
pub use sample_functions::user::{package, rate};

use crate::runtime::docker::DockerRuntime;
use crate::runtime::spawn::FunctionSched;
use bytes::Bytes;
use instance::{Call, CallError, CallReply, Launch};
use node::{UserNode, Version, WakeRefused};
use package::{Limits, Manifest, PackageError, RuntimeSpec};
use rate::TokenBucket;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use store::{CallRow, Counters, DataDir, Db, FunctionRow};

/// How the worker keeps and runs user functions.
#[derive(Debug, Clone)]
pub struct FunctionsConfig {
    /// A data directory kept across restarts (None: a temporary area under
    /// `work_dir`, removed when the worker stops).
    pub data_dir: Option<PathBuf>,
    pub work_dir: PathBuf,
    pub worker_id: String,
    /// The Node.js binary for `node` functions.
    pub node: PathBuf,
    pub limits: Limits,
    /// The balancer whose store this worker fetches packages from
    /// (`GET <source>/packages/<sha256>`), if any.
    pub source: Option<String>,
    /// The `Authorization` value sent with those fetches.
    pub source_bearer: Option<String>,
    /// The worker's Docker runtime, when it runs one: functions then run
    /// in containers of images built for each version (see "The Docker
    /// runtime" above). None: local processes.
    pub docker: Option<DockerRuntime>,
    /// How the function processes are scheduled (process runtime).
    pub sched: FunctionSched,
}

/// The Node.js binary: `HF_NODE`, else `node` found on `PATH`.
pub fn default_node() -> PathBuf {
    std::env::var_os("HF_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"))
}

/// Failures of the Glambdar routes (statuses are chosen in [`http`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FunctionError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("no function named {0:?}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("function {name:?} is over its rate limit of {rate} calls per second")]
    RateLimited { name: String, rate: f64 },
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("the functions' store failed: {0}")]
    Store(String),
    #[error("fetching the package from the balancer failed: {0}")]
    Fetch(String),
    /// A wake on a worker whose instance model starts nothing ahead: 409.
    #[error("{0}")]
    NothingToStart(String),
    /// Try again later (its package being staged by another request): 503.
    #[error("{0}")]
    Busy(String),
}

/// One deployed version of a function.
pub struct Deployed {
    row: FunctionRow,
    /// The version as the node model sees it (its launch, its model
    /// name `<name>@<deploy>`).
    version: Arc<Version>,
    /// The node (once attached), which retires the version when it is
    /// replaced.
    node: Arc<OnceLock<Arc<dyn UserNode>>>,
    manifest: Manifest,
    code_dir: PathBuf,
    rate: Arc<Mutex<TokenBucket>>,
    counters: Arc<Mutex<Counters>>,
    /// Set when the version is replaced or deleted: its directory goes
    /// with its last reference.
    retired: AtomicBool,
}

impl std::fmt::Debug for Deployed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployed")
            .field("version", &self.version.key)
            .finish_non_exhaustive()
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Relaxed) {
            // No call of it is left: its instances and image go now.
            if let Some(node) = self.node.get() {
                node.retire(&self.version.key);
            }
            if let Err(e) = std::fs::remove_dir_all(&self.code_dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", self.code_dir.display());
                }
            }
        }
    }
}

/// What `/info` says of a function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionInfo {
    #[serde(flatten)]
    pub row: FunctionRow,
    pub entry: String,
    pub timeout_ms: u64,
    pub calls: u64,
    pub errors: u64,
    pub mean_duration_ms: f64,
    pub last_call_ms: Option<i64>,
    /// Whether an instance of the current version is up (the node
    /// model's count).
    pub warm: bool,
}

pub use sample_functions::user::wire::DeployReport;

/// A call's outcome, with how it was served.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub reply: CallReply,
    pub version: u64,
    pub cold: bool,
    /// How the node model served it (`Meta`).
    pub meta: policy::node::CallMeta,
    pub instance: String,
    /// Wall time of the whole call at the worker, ms.
    pub execution_ms: f64,
    /// Time inside the function (from the request sent to the reply read), ms.
    pub internal_ms: f64,
}

struct Inner {
    data: Mutex<DataDir>,
    dir: PathBuf,
    db: Db,
    functions: RwLock<HashMap<String, Arc<Deployed>>>,
    /// Deploys and deletes, one at a time.
    changes: tokio::sync::Mutex<()>,
    /// Fetches of packages from the balancer.
    client: reqwest::Client,
    /// Calls to warm instances (the hot path's keep-alive client).
    instances: crate::runtime::instance_client::InstanceClient,
    limits: Limits,
    site: Site,
    sequence: AtomicU64,
    source: Option<String>,
    source_bearer: Option<String>,
    /// Fetches from the balancer, one at a time.
    fetching: tokio::sync::Mutex<()>,
    docker: Option<DockerRuntime>,
    /// The worker core that runs the calls (`Functions::attach`).
    node: Arc<OnceLock<Arc<dyn UserNode>>>,
}

/// What every version's launch shares on this worker.
#[derive(Debug, Clone)]
struct Site {
    worker_id: String,
    /// The machine's `node`, and the bootstrap file.
    node: PathBuf,
    bootstrap: PathBuf,
    /// Where the process runtime stages packages (`node::stage`): a
    /// directory of the data dir, emptied at each start and stop.
    staging: PathBuf,
    docker: Option<DockerRuntime>,
    sched: FunctionSched,
}

impl Site {
    /// The node's view of `row` (unpacked in `code_dir`) deployed as
    /// `deploy`.
    fn version(
        &self,
        row: &FunctionRow,
        manifest: &Manifest,
        code_dir: &Path,
        deploy: &str,
    ) -> Arc<Version> {
        Arc::new(Version {
            key: Version::key_of(&row.name, deploy),
            launch: Launch {
                function: row.name.clone(),
                version: row.version,
                manifest: manifest.clone(),
                code_dir: code_dir.to_path_buf(),
                worker_id: self.worker_id.clone(),
                node: self.node.clone(),
                bootstrap: self.bootstrap.clone(),
                container: None,
                sched: self.sched,
            },
            deploy: deploy.to_string(),
            docker: self.docker.clone(),
            timeout: manifest.timeout(),
            bytes: row.unpacked_bytes,
            staging: self.staging.clone(),
        })
    }
}

/// The worker's user functions. Cheap to clone.
#[derive(Clone)]
pub struct Functions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

#[allow(clippy::disallowed_methods)] // deploy and call times
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn code_dir(dir: &Path, row: &FunctionRow) -> PathBuf {
    dir.join("code").join(format!(
        "{}.v{}.{}.{}",
        row.name,
        row.version,
        &row.digest[..row.digest.len().min(16)],
        row.deployed_at_ms
    ))
}

impl Functions {
    /// Opens the data directory (locking it) and loads every function
    /// deployed before (unpacking again a version whose directory is gone).
    pub async fn open(config: FunctionsConfig) -> Result<Self, String> {
        let data = match &config.data_dir {
            Some(d) => DataDir::claim(d)?,
            None => DataDir::temporary(&config.work_dir, &config.worker_id)?,
        };
        let dir = data.path().to_path_buf();
        let db = Db::open(&data.database())?;
        let bootstrap = instance::write_bootstrap(&dir).map_err(|e| format!("bootstrap: {e}"))?;
        // Staged copies are a cache: what a killed worker left goes.
        let staging = dir.join("staged");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
        let site = Site {
            worker_id: config.worker_id.clone(),
            node: config.node.clone(),
            bootstrap,
            staging,
            docker: config.docker.clone(),
            sched: config.sched,
        };
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let node: Arc<OnceLock<Arc<dyn UserNode>>> = Arc::default();
        let mut functions = HashMap::new();
        for (row, counters) in db.load().await? {
            let manifest: Manifest = match serde_json::from_str(&row.manifest) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(
                        "function {}: stored manifest unreadable ({e}); skipped",
                        row.name
                    );
                    continue;
                }
            };
            let code = code_dir(&dir, &row);
            if !code.is_dir() {
                let blob = data.blob(&row.digest);
                let tmp = data.tmp().join(format!("restore-{}", row.name));
                let limits = config.limits;
                let r = std::fs::read(&blob)
                    .map_err(|e| format!("{}: {e}", blob.display()))
                    .and_then(|zip| {
                        std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
                        package::unpack(&zip, &tmp, &limits).map_err(|e| e.to_string())?;
                        std::fs::rename(&tmp, &code).map_err(|e| e.to_string())
                    });
                if let Err(e) = r {
                    let _ = std::fs::remove_dir_all(&tmp);
                    tracing::warn!(
                        "function {}: its package could not be restored ({e}); skipped",
                        row.name
                    );
                    continue;
                }
            }
            let rate = TokenBucket::new(row.rate_limit);
            let deploy = format!("v{}.{}", row.version, functions.len());
            functions.insert(
                row.name.clone(),
                Arc::new(Deployed {
                    version: site.version(&row, &manifest, &code, &deploy),
                    node: node.clone(),
                    manifest,
                    code_dir: code,
                    rate: Arc::new(Mutex::new(rate)),
                    counters: Arc::new(Mutex::new(counters)),
                    retired: AtomicBool::new(false),
                    row,
                }),
            );
        }
        let restored = functions.len() as u64;
        Ok(Self {
            inner: Arc::new(Inner {
                data: Mutex::new(data),
                dir,
                db,
                functions: RwLock::new(functions),
                changes: tokio::sync::Mutex::new(()),
                client,
                instances: Default::default(),
                limits: config.limits,
                site,
                sequence: AtomicU64::new(restored),
                source: config.source.map(|s| s.trim_end_matches('/').to_string()),
                source_bearer: config.source_bearer,
                fetching: tokio::sync::Mutex::new(()),
                docker: config.docker,
                node,
            }),
        })
    }

    /// Hands the worker core that runs the calls (once, before serving).
    /// The versions restored from the data dir are staged on their first
    /// call.
    pub fn attach(&self, node: Arc<dyn UserNode>) {
        let _ = self.inner.node.set(node);
    }

    fn node(&self) -> Result<&Arc<dyn UserNode>, CallError> {
        self.inner.node.get().ok_or_else(|| CallError::Start {
            function: String::new(),
            detail: "the worker core is not attached".into(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The package limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// How many functions are deployed.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Deployed>>> {
        self.inner
            .functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, name: &str) -> Result<Arc<Deployed>, FunctionError> {
        self.read()
            .get(name)
            .cloned()
            .ok_or_else(|| FunctionError::NotFound(name.into()))
    }

    /// Deploys `zip` as `name` (a new version if it exists).
    pub async fn deploy(
        &self,
        name: &str,
        zip: Bytes,
        rate_limit: Option<f64>,
    ) -> Result<DeployReport, FunctionError> {
        self.deploy_as(name, zip, rate_limit, None).await
    }

    /// Whether [`Functions::ensure`] has nothing to do: `name` is here as
    /// `version` with package `digest`, or newer (a cheap check, for the
    /// call path).
    pub fn has_version(&self, name: &str, version: u64, digest: &str) -> bool {
        self.read().get(name).is_some_and(|d| {
            (d.row.version == version && d.row.digest == digest) || d.row.version > version
        })
    }

    /// Makes sure the current version of `name` is the balancer's
    /// `version` with package `digest` (issue 14, "In a cluster"): if not,
    /// fetches `GET <source>/packages/<digest>`, checks its SHA-256, and
    /// deploys it as that version (unlimited: the balancer enforces the
    /// rate limit). A version newer than `version` already here is kept
    /// (a call that the balancer sent before a redeploy, arriving late).
    pub async fn ensure(
        &self,
        name: &str,
        version: u64,
        digest: &str,
    ) -> Result<(), FunctionError> {
        let current = || self.has_version(name, version, digest);
        if current() {
            return Ok(());
        }
        let _fetching = self.inner.fetching.lock().await;
        if current() {
            return Ok(());
        }
        let Some(source) = &self.inner.source else {
            return Err(FunctionError::BadRequest(format!(
                "function {name} v{version} is not here and this worker has no balancer to fetch it \
                 from (--functions-from or --join)"
            )));
        };
        if !store::is_digest(digest) {
            return Err(FunctionError::BadRequest(format!(
                "X-Hf-Function-Digest {:?} is not a SHA-256 in hex",
                digest.chars().take(80).collect::<String>()
            )));
        }
        let max = self.inner.limits.max_upload_bytes;
        let mut request = self
            .inner
            .client
            .get(format!("{source}/packages/{digest}"))
            .timeout(std::time::Duration::from_secs(60));
        if let Some(b) = &self.inner.source_bearer {
            request = request.header(reqwest::header::AUTHORIZATION, b);
        }
        let fetch = |e: reqwest::Error| {
            let mut text = format!("{source}: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            FunctionError::Fetch(text)
        };
        let mut response = request.send().await.map_err(fetch)?;
        if !response.status().is_success() {
            return Err(FunctionError::Fetch(format!(
                "{source}/packages/{digest}: status {}",
                response.status().as_u16()
            )));
        }
        let mut zip = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(fetch)? {
            if (zip.len() + chunk.len()) as u64 > max {
                return Err(FunctionError::Fetch(format!(
                    "the package is larger than {max} bytes"
                )));
            }
            zip.extend_from_slice(&chunk);
        }
        let got = store::digest(&zip);
        if got != digest {
            return Err(FunctionError::Fetch(format!(
                "the package's SHA-256 is {got}, not {digest}"
            )));
        }
        let report = self
            .deploy_as(name, zip.into(), Some(0.0), Some(version))
            .await?;
        tracing::info!(
            "fetched function {name} v{} ({} bytes) from {source}",
            report.version,
            report.size
        );
        Ok(())
    }

    /// [`Functions::deploy`], as `version` when given (else the next).
    async fn deploy_as(
        &self,
        name: &str,
        zip: Bytes,
        rate_limit: Option<f64>,
        version: Option<u64>,
    ) -> Result<DeployReport, FunctionError> {
        package::check_name(name)?;
        if let Some(r) = rate_limit {
            if !rate::valid_rate(r) {
                return Err(FunctionError::BadRequest(format!(
                    "rateLimit {r} is not a number from 0 to {}",
                    rate::MAX_RATE
                )));
            }
        }
        let limits = self.inner.limits;
        if zip.len() as u64 > limits.max_upload_bytes {
            return Err(PackageError::TooLarge(limits.max_upload_bytes).into());
        }
        let seq = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        let tmp = self.inner.dir.join("tmp").join(format!("deploy-{seq}"));
        let (digest, unpacked) = {
            let (tmp, zip) = (tmp.clone(), zip.clone());
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir(&tmp).map_err(|e| package::disk_error("unpacking", e))?;
                let r = package::unpack(&zip, &tmp, &limits);
                if r.is_err() {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
                r.map(|u| (store::digest(&zip), u))
            })
            .await
            .map_err(|e| FunctionError::Store(e.to_string()))??
        };
        if self.inner.docker.is_some() {
            if let Err(e) = runs_in_docker(&unpacked.manifest, &tmp).await {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        }
        let _changing = self.inner.changes.lock().await;
        let old = self.read().get(name).cloned();
        let rate = rate_limit
            .or_else(|| {
                old.as_ref()
                    .map(|o| o.rate.lock().unwrap_or_else(|e| e.into_inner()).rate())
            })
            .unwrap_or(0.0);
        let row = FunctionRow::deployed(
            name,
            version.unwrap_or_else(|| old.as_ref().map_or(1, |o| o.row.version + 1)),
            &digest,
            zip.len() as u64,
            &unpacked,
            rate,
            unix_ms(),
        );
        // Under the Docker runtime the version's image is built before
        // the version serves: a failed build leaves the previous one.
        let deploy = format!("v{}.{seq}", row.version);
        let code = code_dir(&self.inner.dir, &row);
        let version = self
            .inner
            .site
            .version(&row, &unpacked.manifest, &code, &deploy);
        let image = match &self.inner.docker {
            Some(docker) => {
                let mut building = version.launch.clone();
                building.code_dir.clone_from(&tmp);
                match node::build_image(docker, &building, &deploy).await {
                    Ok(tag) => Some(node::staged_image(&version, docker, tag)),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&tmp);
                        return Err(FunctionError::Store(e));
                    }
                }
            }
            None => None,
        };
        let stored = {
            let (dir, tmp, code, zip) = (
                self.inner.dir.clone(),
                tmp.clone(),
                code.clone(),
                zip.clone(),
            );
            let digest = digest.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                store::store_blob(&dir, &digest, &zip, seq)?;
                std::fs::rename(&tmp, &code)
            })
            .await
            .map_err(|e| FunctionError::Store(e.to_string()))?
        };
        if let Err(e) = stored {
            let _ = std::fs::remove_dir_all(&tmp);
            if let Some(staged) = image {
                node::unstage(staged).await;
            }
            return Err(package::disk_error("storing the package", e).into());
        }
        if let Err(e) = self.inner.db.put(row.clone()).await {
            let _ = std::fs::remove_dir_all(&version.launch.code_dir);
            if let Some(staged) = image {
                node::unstage(staged).await;
            }
            return Err(FunctionError::Store(e));
        }
        let (rate, counters) = match &old {
            Some(o) => {
                if rate_limit.is_some() {
                    *o.rate.lock().unwrap_or_else(|e| e.into_inner()) =
                        TokenBucket::new(row.rate_limit);
                }
                (o.rate.clone(), o.counters.clone())
            }
            None => (
                Arc::new(Mutex::new(TokenBucket::new(row.rate_limit))),
                Arc::default(),
            ),
        };
        let deployed = Arc::new(Deployed {
            version: version.clone(),
            node: self.inner.node.clone(),
            manifest: unpacked.manifest.clone(),
            code_dir: code,
            rate,
            counters,
            retired: AtomicBool::new(false),
            row: row.clone(),
        });
        self.inner
            .functions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), deployed);
        let replaced = old.as_ref().map(|o| o.row.version);
        if let Some(o) = old {
            o.retired.store(true, Ordering::Relaxed);
            // Its idle instances go now, busy ones when their calls end;
            // its image once no call uses it (`Deployed`'s drop).
            if let Ok(node) = self.node() {
                node.retire(&o.version.key);
            }
            self.forget_blob_if_unused(&o.row.digest);
        }
        // The new version's image enters the node's cache (a deploy
        // prepares it, as `/prepare` does a sample's): built above under
        // the Docker runtime, a staged copy of the package here.
        if let Ok(node) = self.node() {
            let staged = match image {
                Some(staged) => Some(staged),
                None => {
                    let n = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
                    match node::stage(&version, n).await {
                        Ok(staged) => Some(staged),
                        Err(e) => {
                            tracing::warn!("{e} (its first call stages it again)");
                            None
                        }
                    }
                }
            };
            if let Some(staged) = staged {
                node.staged(&version, staged);
            }
        }
        tracing::info!(
            "deployed function {name} v{} ({} bytes, {}, sha256 {})",
            row.version,
            row.size,
            row.runtime,
            row.digest
        );
        Ok(DeployReport {
            message: "deployed".into(),
            name: name.into(),
            version: row.version,
            digest,
            size: row.size,
            unpacked_bytes: unpacked.bytes,
            entries: unpacked.entries,
            runtime: row.runtime,
            rate_limit: row.rate_limit,
            replaced,
        })
    }

    /// Removes the blob of `digest` when no deployed version uses it.
    fn forget_blob_if_unused(&self, digest: &str) {
        let used = self.read().values().any(|d| d.row.digest == digest);
        if !used {
            let blob = store::blob_path(&self.inner.dir, digest);
            let _ = std::fs::remove_file(blob);
        }
    }

    /// Deletes `name`: its record, logs, code and instances.
    pub async fn delete(&self, name: &str) -> Result<u64, FunctionError> {
        let _changing = self.inner.changes.lock().await;
        let old = self.get(name)?;
        self.inner
            .db
            .delete(name)
            .await
            .map_err(FunctionError::Store)?;
        self.inner
            .functions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        old.retired.store(true, Ordering::Relaxed);
        if let Ok(node) = self.node() {
            node.retire(&old.version.key);
        }
        // Under the Docker runtime: its containers and images, every
        // version's, before the answer (calls in flight fail).
        if let Some(docker) = &self.inner.docker {
            if let Err(e) = docker.remove_user_objects(Some(name), None).await {
                tracing::warn!("removing the containers and images of {name}: {e}");
            }
        }
        self.forget_blob_if_unused(&old.row.digest);
        tracing::info!("deleted function {name} (v{})", old.row.version);
        Ok(old.row.version)
    }

    /// Sets the rate limit of `name` (0 = unlimited).
    pub async fn set_rate(&self, name: &str, rate: f64) -> Result<(), FunctionError> {
        if !rate::valid_rate(rate) {
            return Err(FunctionError::BadRequest(format!(
                "rateLimit {rate} is not a number from 0 to {}",
                rate::MAX_RATE
            )));
        }
        let _changing = self.inner.changes.lock().await;
        let d = self.get(name)?;
        self.inner
            .db
            .set_rate(name, rate)
            .await
            .map_err(FunctionError::Store)?;
        *d.rate.lock().unwrap_or_else(|e| e.into_inner()) = TokenBucket::new(rate);
        Ok(())
    }

    fn info_of(d: &Deployed, warm: bool) -> FunctionInfo {
        let c = *d.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut row = d.row.clone();
        // The name's limit now (`/config` changes it between deploys).
        row.rate_limit = d.rate.lock().unwrap_or_else(|e| e.into_inner()).rate();
        FunctionInfo {
            row,
            entry: d.manifest.entry().to_string(),
            timeout_ms: d.manifest.timeout().as_millis() as u64,
            calls: c.calls,
            errors: c.errors,
            mean_duration_ms: if c.calls > 0 {
                c.total_ms / c.calls as f64
            } else {
                0.0
            },
            last_call_ms: c.last_call_ms,
            warm,
        }
    }

    /// Whether an instance of `d` is up.
    fn is_warm(&self, d: &Deployed) -> bool {
        self.node().is_ok_and(|n| n.instances(&d.version.key).0 > 0)
    }

    /// `/info/:name`.
    pub async fn info(&self, name: &str) -> Result<FunctionInfo, FunctionError> {
        let d = self.get(name)?;
        Ok(Self::info_of(&d, self.is_warm(&d)))
    }

    /// `/info`: every function, by name.
    pub async fn info_all(&self) -> Vec<FunctionInfo> {
        let mut all: Vec<Arc<Deployed>> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.row.name.cmp(&b.row.name));
        let mut out = Vec::with_capacity(all.len());
        for d in all {
            out.push(Self::info_of(&d, self.is_warm(&d)));
        }
        out
    }

    /// `/logs/:name`: the last `limit` calls, newest first.
    pub async fn logs(&self, name: &str, limit: usize) -> Result<Vec<CallRow>, FunctionError> {
        self.get(name)?;
        self.inner
            .db
            .logs(name, limit)
            .await
            .map_err(FunctionError::Store)
    }

    /// Whether a call of `name` now would be warm: its current version
    /// runs as a REST-mode instance (http or node) that is up. Such a call
    /// is one loopback hop, which the HTTP thread can carry itself
    /// (`http`'s module doc).
    pub fn serves_warm(&self, name: &str) -> bool {
        let Ok(d) = self.get(name) else {
            return false;
        };
        d.version.serves_http() && self.node().is_ok_and(|n| n.serves_warm(&d.version.key))
    }

    /// Calls `name` with `call`.
    #[allow(clippy::disallowed_methods)] // the call's timing
    pub async fn invoke(&self, name: &str, call: Call) -> Result<Invoked, FunctionError> {
        let d = self.get(name)?;
        let began = std::time::Instant::now();
        {
            let mut bucket = d.rate.lock().unwrap_or_else(|e| e.into_inner());
            if !bucket.try_take(began) {
                return Err(FunctionError::RateLimited {
                    name: name.into(),
                    rate: bucket.rate(),
                });
            }
        }
        let time_ms = unix_ms();
        let served = match self.node() {
            Ok(node) => node.call(&d.version, call, &self.inner.instances).await,
            Err(e) => node::Served {
                reply: Err(e),
                meta: Default::default(),
                instance: String::new(),
                internal_ms: 0.0,
            },
        };
        let (result, meta, instance_name, internal_ms) = (
            served.reply,
            served.meta,
            served.instance,
            served.internal_ms,
        );
        let cold = meta.is_cold();
        let execution_ms = began.elapsed().as_secs_f64() * 1e3;
        let (status, output, failed) = match &result {
            Ok(r) => (r.status, r.output.clone(), r.status >= 500),
            Err(e) => (
                http::call_status(e),
                match e {
                    CallError::Crashed { output, .. } => output.clone(),
                    other => other.to_string(),
                },
                true,
            ),
        };
        {
            let mut c = d.counters.lock().unwrap_or_else(|e| e.into_inner());
            c.calls += 1;
            c.errors += failed as u64;
            c.total_ms += execution_ms;
            c.last_call_ms = Some(time_ms);
        }
        self.inner.db.record_call(
            name,
            CallRow {
                time_ms,
                version: d.row.version,
                duration_ms: execution_ms,
                status,
                cold,
                node: self.inner.site.worker_id.clone(),
                output: crate::runtime::tail(&output, store::LOG_TEXT_BYTES),
            },
            failed,
        );
        let reply = result?;
        Ok(Invoked {
            reply,
            version: d.row.version,
            cold,
            meta,
            instance: instance_name,
            execution_ms,
            internal_ms,
        })
    }

    /// Whether `name` exists, and its current version's instances: (ready,
    /// starting) as the node model counts them.
    pub fn warm_instances(&self, name: &str) -> Result<(usize, usize), FunctionError> {
        let d = self.get(name)?;
        Ok(self.node().map_or((0, 0), |n| n.instances(&d.version.key)))
    }

    /// The function of a version's model name (`<name>@<deploy>`), if it
    /// is one.
    pub fn name_of_key(key: &str) -> Option<&str> {
        key.split_once('@').map(|(name, _)| name)
    }

    /// Scale to zero: removes `name`'s instances (busy ones once their
    /// calls end). Returns how many go now.
    pub fn stop_warm(&self, name: &str) -> Result<usize, FunctionError> {
        let d = self.get(name)?;
        Ok(self.node()?.scale_to_zero(&d.version.key))
    }

    /// A wake: starts instances of `name` up to `n` (staging its package
    /// first if needed), as the worker's instance model allows
    /// (`NodeModel::start_instances`). Returns how many start.
    pub async fn start_warm(&self, name: &str, n: usize) -> Result<usize, FunctionError> {
        let d = self.get(name)?;
        match self.node()?.wake(&d.version, n).await {
            Ok(started) => Ok(started),
            Err(WakeRefused::PerCallInstances) => Err(FunctionError::NothingToStart(format!(
                "{name}: this worker runs every call in an instance of its own (HotFunctions \
                 without REST mode): there is no instance to start ahead"
            ))),
            Err(WakeRefused::Busy(m)) => Err(FunctionError::Busy(m)),
            Err(WakeRefused::Failed(e)) => Err(e.into()),
        }
    }

    /// Commits the calls recorded so far and closes the database, stops
    /// every instance; removes a temporary data area (nothing of the
    /// database is open in it then).
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.db.close().await {
            tracing::warn!("closing the functions database: {e}");
        }
        let all: Vec<Arc<Deployed>> = self
            .inner
            .functions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, d)| d)
            .collect();
        // Their instances were stopped by the worker core
        // (`Worker::stop_user_functions`); their staged copies go with
        // the staging area below.
        drop(all);
        let _ = std::fs::remove_dir_all(&self.inner.site.staging);
        // Their containers and images are left to the Docker runtime's own
        // shutdown, which removes them with the worker's (and is skipped
        // when the engine does not answer, so a hung engine cannot hold a
        // SIGTERM here); what it leaves, the next worker's orphan sweep
        // removes.
        self.inner
            .data
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove_if_temporary();
    }
}

/// Why a one-shot function does not run under the Docker runtime.
const ONESHOT_IN_DOCKER: &str = "one-shot (CGI) functions do not run under the Docker runtime \
(a container per call costs the engine's start-up on every call); serve HTTP on $PORT instead \
(manifest runtime \"http\"), or use a worker with the process runtime";

/// Whether the unpacked package in `dir` can run under the Docker runtime:
/// not one-shot, and a native entry statically linked (its image is
/// `FROM scratch`). Each refusal is a 400 naming the problem.
async fn runs_in_docker(manifest: &Manifest, dir: &Path) -> Result<(), FunctionError> {
    match manifest.runtime {
        RuntimeSpec::Node => Ok(()),
        RuntimeSpec::Oneshot => Err(FunctionError::BadRequest(ONESHOT_IN_DOCKER.into())),
        RuntimeSpec::Http => {
            let entry = manifest.entry().to_string();
            let path = dir.join(&entry);
            let checked = tokio::task::spawn_blocking(move || {
                std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| crate::runtime::docker::context::check_static_elf(&bytes))
            })
            .await
            .map_err(|e| FunctionError::Store(e.to_string()))?;
            checked.map_err(|why| {
                FunctionError::BadRequest(format!(
                    "entry {entry:?} is not a statically linked x86-64 executable: {why}; the Docker \
                     runtime runs native functions in FROM scratch images (no libraries, no loader): \
                     link it statically (Rust: RUSTFLAGS=\"-C target-feature=+crt-static\"; C: -static)"
                ))
            })
        }
    }
}
