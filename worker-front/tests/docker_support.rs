//! Shared helpers of the Docker tests (`docker_*.rs` include this file with
//! `#[path]`; as a test target of its own it holds no tests).
//!
//! - [`static_hf_fn`]: builds the statically linked `hf-fn` once per test
//!   binary with `scripts/build-static-hf-fn.sh` (incremental: a no-op when
//!   fresh) and returns its path.
//! - [`engine`]: a client of the real engine; panics (the test FAILS) when no
//!   engine answers: CI guarantees one, so these tests never skip.
//! - [`LabelScope`]: a unique worker id per test; on drop (also when the test
//!   panics) it removes every container and image carrying that id, and
//!   [`LabelScope::assert_clean`] checks that nothing is left.
//! - [`EngineRelay`]: a unix socket relayed to the real engine, which a test
//!   stops and starts to simulate an engine outage.
//! - [`DockerWorker`]: the real worker (`worker_front::run`, Docker runtime)
//!   on a loopback port, optionally reaching the engine through a relay.

#![allow(dead_code)]
// Tests read the clock for deadlines.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bollard::container::{ListContainersOptions, RemoveContainerOptions};
use bollard::image::{ListImagesOptions, RemoveImageOptions};
use bollard::Docker;

/// The label every object of a worker carries (`runtime::LABEL_WORKER`).
pub const WORKER_LABEL: &str = "hotfunctions.worker";
/// Extra label the tests put on what they create through the runtime.
pub const TEST_LABEL: &str = "hotfunctions.test";

/// Path of the static `hf-fn`, built on first use.
pub fn static_hf_fn() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let script = root.join("scripts/build-static-hf-fn.sh");
            let out = std::process::Command::new("bash")
                .arg(&script)
                .current_dir(&root)
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_TARGET_DIR")
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            assert!(path.is_file(), "no static hf-fn at {}", path.display());
            path
        })
        .clone()
}

/// A client of the real engine, which must answer.
pub async fn engine() -> Docker {
    let docker = Docker::connect_with_local_defaults()
        .expect("Docker client")
        .negotiate_version()
        .await
        .expect("a Docker engine must answer for these tests (CI guarantees one)");
    docker
        .ping()
        .await
        .expect("a Docker engine must answer for these tests (CI guarantees one)");
    docker
}

/// A unique worker id for one test; cleans up everything with it on drop.
#[derive(Debug)]
pub struct LabelScope {
    pub worker_id: String,
}

impl LabelScope {
    pub fn new(test: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self {
            worker_id: format!("t-{test}-{}-{nanos:x}", std::process::id()),
        }
    }

    /// The work dir of this test's runtimes and workers (their locked work
    /// areas), removed with the scope.
    pub fn work_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("hf-docker-test-{}", self.worker_id))
    }

    fn scope(&self) -> Scope {
        Scope {
            worker_id: self.worker_id.clone(),
        }
    }

    pub async fn containers(&self, docker: &Docker) -> Vec<String> {
        self.scope().containers(docker).await
    }

    pub async fn images(&self, docker: &Docker) -> Vec<String> {
        self.scope().images(docker).await
    }

    /// Containers (any state) and tagged images (with `all`, the untagged
    /// steps of their builds too) of the engine labelled with this scope's
    /// worker id and `function`.
    pub async fn objects_of(&self, docker: &Docker, function: &str, all: bool) -> (usize, usize) {
        let labels = vec![
            format!("{WORKER_LABEL}={}", self.worker_id),
            format!("hotfunctions.function={function}"),
        ];
        let (containers, images) = labelled(docker, labels, all).await;
        (containers.len(), images.len())
    }

    /// Removes everything of this scope, then asserts that nothing is left
    /// (one-shot containers are removed in the background, so this polls
    /// with a deadline).
    pub async fn assert_clean(&self) {
        let docker = engine().await;
        let scope = self.scope();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            scope.remove_everything(&docker).await;
            let (c, i) = (scope.containers(&docker).await, scope.images(&docker).await);
            if c.is_empty() && i.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "left behind: containers {c:?}, images {i:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Label-selected clean-up, without a Drop of its own.
struct Scope {
    worker_id: String,
}

impl Scope {
    fn filters(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{WORKER_LABEL}={}", self.worker_id)],
        )])
    }

    /// Containers (any state) carrying this scope's worker id.
    pub async fn containers(&self, docker: &Docker) -> Vec<String> {
        docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: self.filters(),
                ..Default::default()
            }))
            .await
            .expect("list containers")
            .into_iter()
            .filter_map(|c| c.id)
            .collect()
    }

    /// Images carrying this scope's worker id.
    pub async fn images(&self, docker: &Docker) -> Vec<String> {
        docker
            .list_images(Some(ListImagesOptions {
                all: true,
                filters: self.filters(),
                ..Default::default()
            }))
            .await
            .expect("list images")
            .into_iter()
            .map(|i| i.id)
            .collect()
    }

    async fn remove_everything(&self, docker: &Docker) {
        for id in self.containers(docker).await {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    }),
                )
                .await;
        }
        for id in self.images(docker).await {
            let _ = docker
                .remove_image(
                    &id,
                    Some(RemoveImageOptions {
                        force: true,
                        noprune: false,
                    }),
                    None,
                )
                .await;
        }
    }
}

impl Drop for LabelScope {
    fn drop(&mut self) {
        // Runs also when the test panicked: a fresh runtime on a fresh thread
        // (the test's runtime may be shutting down).
        let _ = std::fs::remove_dir_all(self.work_dir());
        let worker_id = self.worker_id.clone();
        let _ = std::thread::spawn(move || {
            let scope = Scope { worker_id };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async {
                if let Ok(docker) = Docker::connect_with_local_defaults() {
                    if let Ok(docker) = docker.negotiate_version().await {
                        scope.remove_everything(&docker).await;
                    }
                }
            });
        })
        .join();
    }
}

/// Polls `condition` every 100 ms until it holds or `deadline` passes.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + deadline;
    loop {
        if condition().await {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The engine's unix socket the tests reach by default: `DOCKER_HOST` if it
/// is a `unix://` address, else `/var/run/docker.sock` (as bollard's local
/// defaults).
fn engine_socket_path() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// A unix socket relayed to the real engine that a test stops and starts:
/// the engine "goes away" and "comes back" without touching the real one.
#[derive(Debug)]
pub struct EngineRelay {
    path: PathBuf,
    /// The accept loop; it owns the relayed connections (a `JoinSet`), so
    /// aborting it cuts them all.
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl EngineRelay {
    /// A relay that will listen at `path` (not yet started).
    pub fn new(path: PathBuf) -> Self {
        Self { path, accept: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The relay's address for `DockerSettings::socket` / `--docker-socket`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Listens (again) at the path; every connection is relayed to the engine.
    pub fn start(&mut self) {
        self.stop();
        let listener = tokio::net::UnixListener::bind(&self.path).expect("bind relay socket");
        let upstream_path = engine_socket_path();
        self.accept = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                let upstream_path = upstream_path.clone();
                connections.spawn(async move {
                    if let Ok(mut upstream) = tokio::net::UnixStream::connect(&upstream_path).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        }));
    }

    /// Stops accepting, cuts every open connection, removes the socket file.
    pub fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EngineRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The real worker (`worker_front::run` on a loopback port 0) with the
/// Docker runtime, its worker id from a [`LabelScope`].
#[derive(Debug)]
pub struct DockerWorker {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), worker_front::RunError>>>,
}

impl DockerWorker {
    /// Starts a worker on the local engine; functions run with
    /// `HF_TIME_SCALE` 0.01.
    pub async fn start(scope: &LabelScope, caching: policy::node::options::CachingOptions) -> Self {
        Self::start_with(scope, caching, None).await
    }

    /// Starts a worker that reaches the engine at `docker_socket`
    /// (`WorkerConfig::docker_socket`; `None` = the local engine).
    pub async fn start_with(
        scope: &LabelScope,
        caching: policy::node::options::CachingOptions,
        docker_socket: Option<String>,
    ) -> Self {
        let config = worker_front::WorkerConfig {
            time_scale: 0.01,
            caching,
            docker_socket,
            ..Default::default()
        };
        Self::start_config(scope, config).await
    }

    /// Starts a worker of `config` with the Docker runtime, the scope's
    /// worker id, the static `hf-fn` and a 50 ms expiry tick.
    pub async fn start_config(scope: &LabelScope, config: worker_front::WorkerConfig) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = worker_front::WorkerConfig {
            runtime: worker_front::RuntimeKind::Docker,
            worker_id: Some(scope.worker_id.clone()),
            fn_binary: Some(static_hf_fn()),
            work_dir: Some(scope.work_dir()),
            expiry_tick_ms: 50,
            ..config
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(worker_front::run(listener, config, async move {
            let _ = rx.await;
        }));
        let w = Self {
            base,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            shutdown: Some(tx),
            task: Some(task),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = w.client.get(format!("{}/health", w.base)).send().await {
                assert_eq!(
                    r.status().as_u16(),
                    200,
                    "worker health: {}",
                    r.text().await.unwrap_or_default()
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "worker never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        w
    }

    /// GET `path`; (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
        (status, v)
    }

    /// `/execute?name=F`, expecting HTTP 200 and a WorkerReply.
    pub async fn execute(&self, name: &str) -> protocol::WorkerReply {
        let (status, v) = self.get(&format!("/execute?name={name}")).await;
        assert_eq!(status, 200, "{name}: {v}");
        serde_json::from_value(v).unwrap()
    }

    /// The `Worker` object of `/health`.
    pub async fn status(&self) -> serde_json::Value {
        let (status, v) = self.get("/health").await;
        assert_eq!(status, 200, "{v}");
        v["Worker"].clone()
    }

    /// Shuts the worker down (it removes what it created) and waits.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("worker task").expect("worker run");
        }
    }
}

/// Containers of `scope` of one kind (`oneshot`, `pooled`, `rest`), any state.
pub async fn containers_of_kind(docker: &Docker, scope: &LabelScope, kind: &str) -> usize {
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: HashMap::from([(
                "label".to_string(),
                vec![
                    format!("{WORKER_LABEL}={}", scope.worker_id),
                    format!("hotfunctions.kind={kind}"),
                ],
            )]),
            ..Default::default()
        }))
        .await
        .expect("list containers")
        .len()
}

/// Whether the engine has the image tagged `name`.
pub async fn image_present(docker: &Docker, name: &str) -> bool {
    docker.inspect_image(name).await.is_ok()
}

/// Ids of the containers (any state) and tagged images labelled with
/// `worker_id` (the worker's `hotfunctions.worker` label).
pub async fn objects(
    docker: &Docker,
    worker_id: &str,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    labelled(docker, vec![format!("{WORKER_LABEL}={worker_id}")], false).await
}

/// Ids of the containers (any state) and images (with `all`, the untagged
/// steps of their builds too) carrying every one of `labels`.
async fn labelled(
    docker: &Docker,
    labels: Vec<String>,
    all: bool,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let filters = HashMap::from([("label".to_string(), labels)]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: filters.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    let images = docker
        .list_images(Some(ListImagesOptions {
            all,
            filters,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    (containers, images)
}
