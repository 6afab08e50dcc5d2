//! Shared by the process-runtime tests: starts the real worker
//! (`worker_front::run` on a loopback port 0) with the process runtime, and
//! checks on stop that nothing it created is left.

#![allow(dead_code)]

use policy::node::options::CachingOptions;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;
use worker_front::runtime::{Instance, InstanceKind};
use worker_front::{RuntimeKind, WorkerConfig};

/// The `hf-fn` binary of this workspace's target directory (built by
/// `cargo build -p sample-functions`; a test executable lives in
/// `target/<profile>/deps/`, `hf-fn` in `target/<profile>/`).
pub fn hf_fn_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_FN_BINARY") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let p = profile_dir.join("hf-fn");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p sample-functions` first (or set HF_FN_BINARY)",
        p.display()
    );
    p
}

pub struct TestWorker {
    pub kind: RuntimeKind,
    pub base: String,
    pub worker_id: String,
    pub work_dir: tempfile::TempDir,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), worker_front::RunError>>>,
}

/// A worker id unique to this test process and call.
pub fn unique_id(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestWorker {
    pub async fn start(tag: &str, caching: CachingOptions) -> Self {
        Self::start_with(tag, caching, Some(hf_fn_binary())).await
    }

    pub async fn start_with(
        tag: &str,
        caching: CachingOptions,
        fn_binary: Option<PathBuf>,
    ) -> Self {
        Self::start_runtime(tag, RuntimeKind::Process, caching, fn_binary).await
    }

    /// Any runtime (the Docker tests may reuse this with
    /// `RuntimeKind::Docker`; [`TestWorker::stop`] then checks only the
    /// worker's own exit, leftovers are the caller's to check by label).
    pub async fn start_runtime(
        tag: &str,
        kind: RuntimeKind,
        caching: CachingOptions,
        fn_binary: Option<PathBuf>,
    ) -> Self {
        let config = WorkerConfig {
            runtime: kind,
            fn_binary,
            time_scale: 0.01,
            caching,
            http_workers: 2,
            expiry_tick_ms: 50,
            ..WorkerConfig::default()
        };
        Self::start_config(tag, config).await
    }

    /// The worker of `config`, with a unique worker id and a fresh work
    /// directory of its own.
    pub async fn start_config(tag: &str, mut config: WorkerConfig) -> Self {
        let kind = config.runtime;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let worker_id = unique_id(tag);
        let work_dir = tempfile::tempdir().unwrap();
        config.worker_id = Some(worker_id.clone());
        config.work_dir = Some(work_dir.path().to_path_buf());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(worker_front::run(listener, config, async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let w = Self {
            kind,
            base,
            worker_id,
            work_dir,
            client,
            shutdown: Some(tx),
            task: Some(task),
        };
        // The listener is bound before `run`, so the first request connects;
        // wait until the server answers at all (any status).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if w.client
                .get(format!("{}/health", w.base))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
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

    /// `/execute?name=F`, expecting a 200 WorkerReply.
    pub async fn execute(&self, name: &str) -> protocol::WorkerReply {
        let (status, v) = self.get(&format!("/execute?name={name}")).await;
        assert_eq!(status, 200, "{name}: {v}");
        serde_json::from_value(v).unwrap()
    }

    pub async fn health(&self) -> serde_json::Value {
        let (status, v) = self.get("/health").await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Polls `/health` until `cond` holds on its `Worker` object.
    pub async fn await_health(&self, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let h = self.health().await;
            if cond(&h["Worker"]) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {h}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// This worker's work area (its staged images): the one directory of
    /// its worker id under `<work_dir>/hotfunctions-<uid>/`.
    pub fn stage_root(&self) -> PathBuf {
        let prefix = format!(
            "{}.",
            worker_front::runtime::ownership::escape_id(&self.worker_id)
        );
        let mut found = Vec::new();
        for ns in std::fs::read_dir(self.work_dir.path()).unwrap().flatten() {
            for area in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                if area.file_name().to_string_lossy().starts_with(&prefix) {
                    found.push(area.path());
                }
            }
        }
        assert_eq!(
            found.len(),
            1,
            "work areas of {}: {found:?}",
            self.worker_id
        );
        found.remove(0)
    }

    /// This worker's processes still alive (found by their mark in /proc:
    /// test ids are unique).
    pub async fn own_processes(&self) -> Vec<Instance> {
        let id = self.worker_id.clone();
        tokio::task::spawn_blocking(move || marked_processes(&id))
            .await
            .unwrap()
    }

    /// Polls this worker's processes until `cond` holds on them.
    pub async fn await_processes(
        &self,
        what: &str,
        cond: impl Fn(&[worker_front::runtime::Instance]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.own_processes().await;
            if cond(&now) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the worker and asserts that no process and no staged image of
    /// it remain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        if self.kind != RuntimeKind::Process {
            return;
        }
        // Killed processes take a moment to disappear from /proc.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = self.own_processes().await;
            if left.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "processes left: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<_> = std::fs::read_dir(self.work_dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left in the work dir: {left:?}");
    }
}

/// Live processes whose environment carries `HF_WORKER_ID=<worker_id>`
/// (a test's view from outside; the runtime itself never scans).
pub fn marked_processes(worker_id: &str) -> Vec<Instance> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let (mut owner, mut function, mut kind, mut name) = (None, "", None, "");
        let env = String::from_utf8_lossy(&env).into_owned();
        for var in env.split('\0') {
            match var.split_once('=') {
                Some(("HF_WORKER_ID", v)) => owner = Some(v),
                Some(("HF_FUNCTION", v)) => function = v,
                Some(("HF_INSTANCE_KIND", v)) => kind = InstanceKind::from_label(v),
                Some(("HF_INSTANCE_NAME", v)) => name = v,
                _ => {}
            }
        }
        // Zombies have an empty environ; only live marked processes count.
        if let (Some(w), Some(kind)) = (owner, kind) {
            if w == worker_id {
                out.push(Instance {
                    id: pid.to_string(),
                    name: name.to_string(),
                    function: function.to_string(),
                    kind,
                });
            }
        }
    }
    out
}
