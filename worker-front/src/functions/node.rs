//! Users' functions in the node model (issue 14 §2, "a user function is
//! just a function with a package").
//!
//! Each deployed version is a function of the worker's
//! [`policy::node::NodeModel`], named `<name>@<deploy>` (the deploy label,
//! `v<version>.<n>`, unique in the worker's run, so a name deleted and
//! deployed again never meets its old image): its calls take the same
//! decisions as a sample function's (image cache by bytes with LRU
//! eviction, pre-warmed pools, REST-mode instances with their idle
//! lifetime, the Lambda model's keep-alive policies, `/clear`, `/scale`).
//! This module holds what the worker core (`crate::worker`, which drives
//! the model for both kinds) needs to turn the model's effects into
//! actions on a user function:
//!
//! - [`Version`]: a deployed version as the node sees it (its model name,
//!   its launch, its size);
//! - [`stage`] / [`unstage`]: its "image": under the process runtime a
//!   copy of the unpacked package in the data dir's staging area, under
//!   the Docker runtime its image (`runtime::docker::user`); what the
//!   image cache counts is the package's unpacked size. Evicting it
//!   removes the copy or the image; the next call stages it again (a cold
//!   start with `ImageBuilt`);
//! - [`UserInstance`]: an instance the model named: a warm HTTP instance
//!   (native or Node.js), or for a `oneshot` (CGI) function a slot whose
//!   every call runs the package once (a one-shot function has no
//!   long-lived process to keep);
//! - [`UserNode`]: what [`super::Functions`] asks of the worker core.
//!
//! What the model's steps mean for a user function: `BuildImage` stages
//! the version; `Start` starts a warm instance; `Run` calls it; `RunOnce`
//! (HotFunctions without REST mode and without a pooled instance) starts
//! an instance for this call alone, calls it and stops it (a `oneshot`
//! function runs once). A call that its instance fails (crash, timeout,
//! oversized or malformed reply) fails with its 5xx and the instance
//! leaves the model (`NodeModel::discard_call_instance`): the next call
//! gets another.

use super::instance::{self, Call, CallError, CallReply, ContainerLaunch, Launch, Running};
use super::package::RuntimeSpec;
use crate::runtime::docker::user::UserImage;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::instance_client::InstanceClient;
use policy::node::CallMeta;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future (the [`UserNode`] trait is object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A deployed version, as the node model and the worker core see it.
#[derive(Debug)]
pub struct Version {
    /// Its name in the node model: `<name>@<deploy>`.
    pub key: Arc<str>,
    /// How to launch it from its unpacked package in the data dir
    /// (`container` None: [`stage`] fills it in).
    pub launch: Launch,
    /// The deploy's label (`v<version>.<n>`).
    pub deploy: String,
    /// The Docker runtime, when functions run in containers.
    pub docker: Option<DockerRuntime>,
    /// Its calls' timeout.
    pub timeout: Duration,
    /// What its image counts in the image cache: the package's unpacked
    /// size, bytes.
    pub bytes: u64,
    /// Where the process runtime stages its copies.
    pub staging: PathBuf,
}

impl Version {
    /// The model's name of `deploy` of `name`.
    pub fn key_of(name: &str, deploy: &str) -> Arc<str> {
        Arc::from(format!("{name}@{deploy}"))
    }

    /// Whether its calls are served by long-lived HTTP instances (`http`,
    /// `node`), not by a run per call (`oneshot`).
    pub fn serves_http(&self) -> bool {
        matches!(
            self.launch.manifest.runtime,
            RuntimeSpec::Http | RuntimeSpec::Node
        )
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.launch.function
    }
}

/// A version's staged image: what its instances are launched from.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The launch (from the staged copy, or with the image).
    pub launch: Arc<Launch>,
    /// The staged copy (process runtime), removed with the image.
    dir: Option<PathBuf>,
    /// The image (Docker runtime): its runtime, function and deploy.
    image: Option<(DockerRuntime, String, String)>,
}

/// An instance of a user function that the model named.
#[derive(Debug, Clone)]
pub enum UserInstance {
    /// A warm HTTP instance (process or container).
    Warm(Arc<Running>),
    /// A `oneshot` function's slot: each call runs the package once.
    Once(Arc<Launch>),
}

impl UserInstance {
    /// Stops it (a container is removed in the background).
    pub fn stop(&self) {
        if let Self::Warm(r) = self {
            r.kill();
        }
    }
}

/// One call's outcome, with how the node served it.
#[derive(Debug)]
pub struct Served {
    pub reply: Result<CallReply, CallError>,
    pub meta: CallMeta,
    /// The instance's name (empty if none ran the call).
    pub instance: String,
    /// Time inside the function, ms.
    pub internal_ms: f64,
}

/// Why a wake (`/scale?instances=N`) started nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeRefused {
    /// The worker runs every call in an instance of its own.
    PerCallInstances,
    /// Its image is being staged by another request: ask again.
    Busy(String),
    /// Staging failed.
    Failed(CallError),
}

/// What [`super::Functions`] asks of the worker core, which drives the
/// node model (implemented by `crate::worker::Worker`).
pub trait UserNode: Send + Sync {
    /// Runs `call` on `version` through the node model.
    fn call<'a>(
        &'a self,
        version: &'a Arc<Version>,
        call: Call,
        client: &'a InstanceClient,
    ) -> BoxFuture<'a, Served>;
    /// A deploy staged `version` (the Docker runtime builds its image
    /// before it serves): the image enters the cache (which may evict
    /// others, least recently used first).
    fn staged(&self, version: &Arc<Version>, staged: Staged);
    /// Whether a call of `key` now would be warm (REST mode, instance up).
    fn serves_warm(&self, key: &str) -> bool;
    /// `key`'s instances owned by the model: (ready, starting).
    fn instances(&self, key: &str) -> (usize, usize);
    /// Scale to zero: removes `key`'s instances (busy ones when idle);
    /// how many go now.
    fn scale_to_zero(&self, key: &str) -> usize;
    /// A wake: starts instances of `version` up to `n` (staging it first
    /// if needed); how many start.
    fn wake<'a>(
        &'a self,
        version: &'a Arc<Version>,
        n: usize,
    ) -> BoxFuture<'a, Result<usize, WakeRefused>>;
    /// `key` will not be called again (replaced or deleted): its instances
    /// drain and its image goes once no call uses it. Whether the image
    /// is still held by a call (ask again when it ended).
    fn retire(&self, key: &str) -> bool;
}

/// The unpacked package `code_dir` copied to `to` (files with their
/// modes, directories, symbolic links as they are: the package checks
/// allowed only links that stay inside).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Stages `version` as `n` (a sequence number making the copy's name
/// unique): copies its package to the staging area (process runtime) or
/// builds its image (Docker runtime).
pub async fn stage(version: &Version, n: u64) -> Result<Staged, CallError> {
    let failed = |detail: String| CallError::Start {
        function: version.name().to_string(),
        detail: format!("staging its package: {detail}"),
    };
    match &version.docker {
        Some(docker) => {
            let tag = build_image(docker, &version.launch, &version.deploy)
                .await
                .map_err(failed)?;
            Ok(staged_image(version, docker, tag))
        }
        None => {
            let dir = version.staging.join(format!("{}.{n}", version.key));
            let (from, to) = (version.launch.code_dir.clone(), dir.clone());
            tokio::task::spawn_blocking(move || {
                let r = copy_tree(&from, &to);
                if r.is_err() {
                    let _ = std::fs::remove_dir_all(&to);
                }
                r
            })
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?;
            let mut launch = version.launch.clone();
            launch.code_dir.clone_from(&dir);
            Ok(Staged {
                launch: Arc::new(launch),
                dir: Some(dir),
                image: None,
            })
        }
    }
}

/// The staged image of `version` built by a deploy as `tag`.
pub fn staged_image(version: &Version, docker: &DockerRuntime, tag: String) -> Staged {
    let mut launch = version.launch.clone();
    launch.container = Some(ContainerLaunch {
        runtime: docker.clone(),
        image: tag,
        deploy: version.deploy.clone(),
    });
    Staged {
        launch: Arc::new(launch),
        dir: None,
        image: Some((
            docker.clone(),
            version.name().to_string(),
            version.deploy.clone(),
        )),
    }
}

/// Removes a staged image: the copy, or the image (and any container of
/// that deploy left).
pub async fn unstage(staged: Staged) {
    if let Some(dir) = staged.dir {
        let shown = dir.display().to_string();
        let r = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        if let Ok(Err(e)) = r {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing the staged package {shown}: {e}");
            }
        }
    }
    if let Some((docker, name, deploy)) = staged.image {
        if let Err(e) = docker.remove_user_objects(Some(&name), Some(&deploy)).await {
            tracing::warn!("removing the image of {name} {deploy}: {e}");
        }
    }
}

/// Removes a staged image now, without an async runtime (at shutdown):
/// the copy only (images go with the Docker runtime's own shutdown).
pub fn unstage_now(staged: &Staged) {
    if let Some(dir) = &staged.dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Starts an instance of `staged` named `name`: a warm HTTP instance, or
/// a `oneshot` function's slot.
pub async fn start(staged: &Staged, name: String) -> Result<UserInstance, CallError> {
    match staged.launch.manifest.runtime {
        RuntimeSpec::Oneshot => Ok(UserInstance::Once(staged.launch.clone())),
        RuntimeSpec::Http | RuntimeSpec::Node => Ok(UserInstance::Warm(Arc::new(
            instance::start(&staged.launch, name).await?,
        ))),
    }
}

/// Runs `call` of `function` on `inst` (named `name`) within `timeout`.
pub async fn invoke(
    client: &InstanceClient,
    inst: &UserInstance,
    function: &str,
    name: &str,
    call: Call,
    timeout: Duration,
) -> Result<CallReply, CallError> {
    match inst {
        UserInstance::Warm(r) => instance::invoke(client, function, r, call, timeout).await,
        UserInstance::Once(launch) => {
            if launch.container.is_some() {
                return Err(CallError::Start {
                    function: function.to_string(),
                    detail: super::ONESHOT_IN_DOCKER.into(),
                });
            }
            instance::run_once(launch, name.to_string(), call, timeout).await
        }
    }
}

/// Builds the image of `launch`'s deploy `deploy` (checked first by
/// `runs_in_docker`).
pub async fn build_image(
    docker: &DockerRuntime,
    launch: &Launch,
    deploy: &str,
) -> Result<String, String> {
    super::runs_in_docker(&launch.manifest, &launch.code_dir)
        .await
        .map_err(|e| e.to_string())?;
    let what = match launch.manifest.runtime {
        RuntimeSpec::Node => UserImage::Node {
            entry: launch.manifest.entry(),
            node: &launch.node,
            bootstrap: &launch.bootstrap,
        },
        RuntimeSpec::Http | RuntimeSpec::Oneshot => UserImage::Native {
            entry: launch.manifest.entry(),
            args: &launch.manifest.args,
        },
    };
    docker
        .build_user_image(&launch.function, deploy, &launch.code_dir, what)
        .await
        .map_err(|e| format!("building the function's image: {e}"))
}
