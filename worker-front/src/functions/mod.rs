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
//! - [`rate`]: the token bucket of a rate limit (pure; shared).
//! - [`http`]: the actix routes.
//!
//! # Versions and atomic redeploys
//! Each deploy of a name makes a new version (1, 2, ...; a deleted name
//! starts again at 1) unpacked into a directory of its own. The table of
//! functions maps a name to its current [`Deployed`] version behind an
//! `Arc`: a call takes the `Arc` when it starts, so a call in flight
//! finishes on the version it started on while new calls get the new one.
//! A replaced version's warm instance is stopped, and its directory
//! removed, when its last call ends (when the last `Arc` goes).
//! Counters and the rate limit belong to the name and carry over to new
//! versions (a deploy's `rateLimit` replaces the limit).
//!
//! # Keep-alive
//! A warm instance idle for longer than the worker's `--keep-alive-s`
//! (600 s by default, the Lambda model's keep-alive) is stopped; the next
//! call starts one again (cold).
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
//!   version's container and image go when its last call ends; a delete
//!   removes every container and image of the name before it answers; the
//!   worker's stop removes all of them and the runtime image. `/clear`
//!   leaves them alone (it is about the sample functions' model).
//! - With `--data-dir`, a restarted worker builds a version's image again
//!   on its first call.
//!
//! # What is not here yet (issue 14)
//! The node model's view of user functions (their calls do not pass the
//! worker's image cache, pools or keep-alive policies; each version keeps
//! one warm instance, as REST mode does, under a fixed keep-alive).

pub mod http;
pub mod instance;
pub mod store;
/// The package checks and the rate limit are shared with the balancer.
pub use sample_functions::user::{package, rate};

use crate::runtime::docker::user::UserImage;
use crate::runtime::docker::DockerRuntime;
use bytes::Bytes;
use instance::{Call, CallError, CallReply, ContainerLaunch, Launch, Running};
use package::{Limits, Manifest, PackageError, RuntimeSpec};
use rate::TokenBucket;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
}

/// One deployed version of a function.
#[derive(Debug)]
pub struct Deployed {
    row: FunctionRow,
    /// This deploy of the version in the Docker runtime's labels
    /// (`v<version>.<n>`, unique in the worker's run).
    deploy: String,
    /// Its image under the Docker runtime, once built.
    image: tokio::sync::Mutex<Option<String>>,
    /// The Docker runtime, which removes its image and containers when
    /// the version is retired.
    docker: Option<DockerRuntime>,
    manifest: Manifest,
    code_dir: PathBuf,
    rate: Arc<Mutex<TokenBucket>>,
    counters: Arc<Mutex<Counters>>,
    warm: tokio::sync::Mutex<Option<Arc<Running>>>,
    /// When a call last ended, ms on the worker's clock ([`unix_ms`]).
    last_used: AtomicU64,
    /// Set when the version is replaced or deleted: its directory goes
    /// with its last reference.
    retired: AtomicBool,
}

impl Drop for Deployed {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Relaxed) {
            if let (Some(docker), Ok(handle)) =
                (self.docker.clone(), tokio::runtime::Handle::try_current())
            {
                let (name, deploy) = (self.row.name.clone(), self.deploy.clone());
                handle.spawn(async move {
                    if let Err(e) = docker.remove_user_objects(Some(&name), Some(&deploy)).await {
                        tracing::warn!("removing the image of {name} {deploy}: {e}");
                    }
                });
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
    /// Whether a warm instance of the current version is running.
    pub warm: bool,
}

/// A deploy's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeployReport {
    pub message: String,
    pub name: String,
    pub version: u64,
    pub digest: String,
    pub size: u64,
    pub unpacked_bytes: u64,
    pub entries: usize,
    pub runtime: String,
    pub rate_limit: f64,
    /// The version this one replaced, if any.
    pub replaced: Option<u64>,
}

/// A call's outcome, with how it was served.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub reply: CallReply,
    pub version: u64,
    pub cold: bool,
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
    worker_id: String,
    node: PathBuf,
    bootstrap: PathBuf,
    sequence: AtomicU64,
    source: Option<String>,
    source_bearer: Option<String>,
    /// Fetches from the balancer, one at a time.
    fetching: tokio::sync::Mutex<()>,
    docker: Option<DockerRuntime>,
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
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
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
            functions.insert(
                row.name.clone(),
                Arc::new(Deployed {
                    deploy: format!("v{}.{}", row.version, functions.len()),
                    image: tokio::sync::Mutex::new(None),
                    docker: config.docker.clone(),
                    manifest,
                    code_dir: code,
                    rate: Arc::new(Mutex::new(rate)),
                    counters: Arc::new(Mutex::new(counters)),
                    warm: tokio::sync::Mutex::new(None),
                    last_used: AtomicU64::new(0),
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
                worker_id: config.worker_id,
                node: config.node,
                bootstrap,
                sequence: AtomicU64::new(restored),
                source: config.source.map(|s| s.trim_end_matches('/').to_string()),
                source_bearer: config.source_bearer,
                fetching: tokio::sync::Mutex::new(()),
                docker: config.docker,
            }),
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
                std::fs::create_dir(&tmp).map_err(|e| PackageError::Io(e.to_string()))?;
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
        let image = match &self.inner.docker {
            Some(docker) => {
                match build_image(docker, &self.inner, name, &deploy, &tmp, &unpacked.manifest)
                    .await
                {
                    Ok(tag) => Some(tag),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&tmp);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let code = code_dir(&self.inner.dir, &row);
        let blob = self.inner.dir.join("blobs").join(format!("{digest}.zip"));
        let stored = {
            let (tmp, code, blob, zip) = (tmp.clone(), code.clone(), blob.clone(), zip.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                if !blob.is_file() {
                    let part = blob.with_extension("part");
                    std::fs::write(&part, &zip)?;
                    std::fs::rename(&part, &blob)?;
                }
                std::fs::rename(&tmp, &code)
            })
            .await
            .map_err(|e| FunctionError::Store(e.to_string()))?
        };
        if let Err(e) = stored {
            let _ = std::fs::remove_dir_all(&tmp);
            self.forget_image(name, &deploy).await;
            return Err(FunctionError::Store(format!("storing the package: {e}")));
        }
        if let Err(e) = self.inner.db.put(row.clone()).await {
            let _ = std::fs::remove_dir_all(&code);
            self.forget_image(name, &deploy).await;
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
            deploy,
            image: tokio::sync::Mutex::new(image),
            docker: self.inner.docker.clone(),
            manifest: unpacked.manifest.clone(),
            code_dir: code,
            rate,
            counters,
            warm: tokio::sync::Mutex::new(None),
            last_used: AtomicU64::new(0),
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
            self.forget_blob_if_unused(&o.row.digest);
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

    /// Under the Docker runtime, removes the image of a deploy that will not
    /// serve.
    async fn forget_image(&self, name: &str, deploy: &str) {
        if let Some(docker) = &self.inner.docker {
            if let Err(e) = docker.remove_user_objects(Some(name), Some(deploy)).await {
                tracing::warn!("removing the image of {name} {deploy}: {e}");
            }
        }
    }

    /// Removes the blob of `digest` when no deployed version uses it.
    fn forget_blob_if_unused(&self, digest: &str) {
        let used = self.read().values().any(|d| d.row.digest == digest);
        if !used {
            let blob = self.inner.dir.join("blobs").join(format!("{digest}.zip"));
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
        if let Some(r) = old.warm.lock().await.take() {
            r.kill();
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

    /// `/info/:name`.
    pub async fn info(&self, name: &str) -> Result<FunctionInfo, FunctionError> {
        let d = self.get(name)?;
        let warm = d.warm.lock().await.is_some();
        Ok(Self::info_of(&d, warm))
    }

    /// `/info`: every function, by name.
    pub async fn info_all(&self) -> Vec<FunctionInfo> {
        let mut all: Vec<Arc<Deployed>> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.row.name.cmp(&b.row.name));
        let mut out = Vec::with_capacity(all.len());
        for d in all {
            let warm = d.warm.lock().await.is_some();
            out.push(Self::info_of(&d, warm));
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

    fn launch(&self, d: &Deployed, container: Option<ContainerLaunch>) -> Launch {
        Launch {
            function: d.row.name.clone(),
            version: d.row.version,
            manifest: d.manifest.clone(),
            code_dir: d.code_dir.clone(),
            worker_id: self.inner.worker_id.clone(),
            node: self.inner.node.clone(),
            bootstrap: self.inner.bootstrap.clone(),
            container,
        }
    }

    /// Under the Docker runtime, `d`'s image (built now if it is not yet:
    /// a version restored from the data dir).
    async fn container_of(&self, d: &Deployed) -> Result<Option<ContainerLaunch>, CallError> {
        let Some(docker) = &self.inner.docker else {
            return Ok(None);
        };
        let mut image = d.image.lock().await;
        if image.is_none() {
            let tag = build_image(
                docker,
                &self.inner,
                &d.row.name,
                &d.deploy,
                &d.code_dir,
                &d.manifest,
            )
            .await
            .map_err(|e| CallError::Start {
                function: d.row.name.clone(),
                detail: e.to_string(),
            })?;
            *image = Some(tag);
        }
        Ok(image.clone().map(|image| ContainerLaunch {
            runtime: docker.clone(),
            image,
            deploy: d.deploy.clone(),
        }))
    }

    fn instance_name(&self, d: &Deployed) -> String {
        let seq = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.{}.v{}.{seq}",
            self.inner.worker_id, d.row.name, d.row.version
        )
    }

    /// The warm instance of `d`, started if there is none (or it ended).
    async fn warm_instance(&self, d: &Deployed) -> Result<(Arc<Running>, bool), CallError> {
        let mut slot = d.warm.lock().await;
        if let Some(r) = slot.as_ref() {
            if r.exit_status().is_none() {
                return Ok((r.clone(), false));
            }
        }
        let container = self.container_of(d).await?;
        let started =
            Arc::new(instance::start(&self.launch(d, container), self.instance_name(d)).await?);
        tracing::info!(
            "started instance {} of function {} (pid {:?}, container {:?})",
            started.name,
            d.row.name,
            started.pid(),
            started.container_id()
        );
        *slot = Some(started.clone());
        Ok((started, true))
    }

    /// Whether a call of `name` now would be warm: its current version
    /// runs as a warm instance (http or node) that is still running. Such
    /// a call is one loopback hop, which the HTTP thread can carry itself
    /// (`http`'s module doc); `false` when unsure (the slot is busy).
    pub fn serves_warm(&self, name: &str) -> bool {
        let Ok(d) = self.get(name) else {
            return false;
        };
        matches!(d.manifest.runtime, RuntimeSpec::Http | RuntimeSpec::Node) && Self::warm_ready(&d)
    }

    /// Replaces (stops) `inst` if it is still `d`'s warm instance.
    async fn replace(&self, d: &Deployed, inst: &Arc<Running>) {
        let mut slot = d.warm.lock().await;
        if slot.as_ref().is_some_and(|r| Arc::ptr_eq(r, inst)) {
            *slot = None;
        }
        inst.kill();
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
        let timeout = d.manifest.timeout();
        let (result, cold, instance_name, internal_ms) = match d.manifest.runtime {
            RuntimeSpec::Oneshot if self.inner.docker.is_some() => {
                // Refused at deploy; a version restored from a data dir
                // of the process runtime gets here.
                let e = CallError::Start {
                    function: name.into(),
                    detail: ONESHOT_IN_DOCKER.into(),
                };
                (Err(e), true, String::new(), 0.0)
            }
            RuntimeSpec::Oneshot => {
                let inst = self.instance_name(&d);
                let t = std::time::Instant::now();
                let r =
                    instance::run_once(&self.launch(&d, None), inst.clone(), call, timeout).await;
                (r, true, inst, t.elapsed().as_secs_f64() * 1e3)
            }
            RuntimeSpec::Http | RuntimeSpec::Node => match self.warm_instance(&d).await {
                Err(e) => (Err(e), true, String::new(), 0.0),
                Ok((inst, cold)) => {
                    let t = std::time::Instant::now();
                    let r =
                        instance::invoke(&self.inner.instances, name, &inst, call, timeout).await;
                    let internal = t.elapsed().as_secs_f64() * 1e3;
                    if let Err(e) = &r {
                        tracing::warn!("{e}");
                        self.replace(&d, &inst).await;
                    }
                    (r, cold, inst.name.clone(), internal)
                }
            },
        };
        let execution_ms = began.elapsed().as_secs_f64() * 1e3;
        d.last_used
            .store(unix_ms().max(0) as u64, Ordering::Relaxed);
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
                node: self.inner.worker_id.clone(),
                output: crate::runtime::tail(&output, store::LOG_TEXT_BYTES),
            },
            failed,
        );
        let reply = result?;
        Ok(Invoked {
            reply,
            version: d.row.version,
            cold,
            instance: instance_name,
            execution_ms,
            internal_ms,
        })
    }

    /// Stops the warm instances idle for longer than `keep_alive` at
    /// `now_ms` (a keep-alive, as the worker's Lambda model: the next call
    /// starts a new one, cold). An instance with a call in flight is
    /// never idle. Returns how many were stopped.
    pub async fn expire_idle(&self, now_ms: i64, keep_alive: std::time::Duration) -> usize {
        let all: Vec<Arc<Deployed>> = self.read().values().cloned().collect();
        let mut stopped = 0;
        for d in all {
            let idle_since = d.last_used.load(Ordering::Relaxed) as i64;
            if now_ms.saturating_sub(idle_since) < keep_alive.as_millis() as i64 {
                continue;
            }
            let mut slot = d.warm.lock().await;
            // Held by the slot alone: no call in flight.
            if slot.as_ref().is_some_and(|r| Arc::strong_count(r) == 1) {
                if let Some(r) = slot.take() {
                    tracing::info!(
                        "stopped idle instance {} of function {}",
                        r.name,
                        d.row.name
                    );
                    r.kill();
                    stopped += 1;
                }
            }
        }
        stopped
    }

    /// Whether `name` exists, and its warm instance: (ready, starting) as
    /// the worker's `/instances` reports them (a user function has at most
    /// one warm instance; its start is not seen while it runs).
    pub fn warm_instances(&self, name: &str) -> Result<(usize, usize), FunctionError> {
        let d = self.get(name)?;
        Ok((usize::from(Self::warm_ready(&d)), 0))
    }

    /// Whether `d`'s warm instance runs (false when unsure: the slot is
    /// busy, an instance starting).
    fn warm_ready(d: &Deployed) -> bool {
        d.warm
            .try_lock()
            .is_ok_and(|slot| slot.as_ref().is_some_and(|r| r.exit_status().is_none()))
    }

    /// Every function with a running warm instance, by name.
    pub fn warm_functions(&self) -> Vec<String> {
        let all: Vec<Arc<Deployed>> = self.read().values().cloned().collect();
        let mut names: Vec<String> = all
            .iter()
            .filter(|d| Self::warm_ready(d))
            .map(|d| d.row.name.clone())
            .collect();
        names.sort_unstable();
        names
    }

    /// Scale to zero: stops `name`'s warm instance unless a call uses it
    /// (then its keep-alive stops it later). Returns how many stopped.
    pub async fn stop_warm(&self, name: &str) -> Result<usize, FunctionError> {
        let d = self.get(name)?;
        let mut slot = d.warm.lock().await;
        // Held by the slot alone: no call in flight.
        if slot.as_ref().is_some_and(|r| Arc::strong_count(r) == 1) {
            if let Some(r) = slot.take() {
                tracing::info!(
                    "scale to zero: stopped instance {} of function {name}",
                    r.name
                );
                r.kill();
                return Ok(1);
            }
        }
        Ok(0)
    }

    /// A wake: starts `name`'s warm instance if it has none (an `http` or
    /// `node` function; a `oneshot` one has nothing to start ahead, and
    /// answers 0). Returns how many started.
    pub async fn start_warm(&self, name: &str) -> Result<usize, FunctionError> {
        let d = self.get(name)?;
        if !matches!(d.manifest.runtime, RuntimeSpec::Http | RuntimeSpec::Node) {
            return Ok(0);
        }
        let (_, started) = self.warm_instance(&d).await?;
        // Idle from now: its keep-alive counts from the wake.
        d.last_used
            .store(unix_ms().max(0) as u64, Ordering::Relaxed);
        Ok(usize::from(started))
    }

    /// Runs [`Functions::expire_idle`] every `tick` with the worker's clock.
    pub async fn keep_expiring(self, keep_alive: std::time::Duration, tick: std::time::Duration) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.expire_idle(unix_ms(), keep_alive).await;
        }
    }

    /// Commits the calls recorded so far, stops every instance; removes a
    /// temporary data area.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.db.sync().await {
            tracing::warn!("writing the last calls: {e}");
        }
        let all: Vec<Arc<Deployed>> = self
            .inner
            .functions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, d)| d)
            .collect();
        for d in all {
            if let Some(r) = d.warm.lock().await.take() {
                r.kill();
            }
        }
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

/// Builds the image of one deploy of `name` from the package in `dir`
/// (checked first by [`runs_in_docker`]).
async fn build_image(
    docker: &DockerRuntime,
    inner: &Inner,
    name: &str,
    deploy: &str,
    dir: &Path,
    manifest: &Manifest,
) -> Result<String, FunctionError> {
    runs_in_docker(manifest, dir).await?;
    let what = match manifest.runtime {
        RuntimeSpec::Node => UserImage::Node {
            entry: manifest.entry(),
            node: &inner.node,
            bootstrap: &inner.bootstrap,
        },
        RuntimeSpec::Http | RuntimeSpec::Oneshot => UserImage::Native {
            entry: manifest.entry(),
            args: &manifest.args,
        },
    };
    docker
        .build_user_image(name, deploy, dir, what)
        .await
        .map_err(|e| FunctionError::Store(format!("building the function's image: {e}")))
}
