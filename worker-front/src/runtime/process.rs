//! The `process` runtime (the embedded default): functions run as local
//! processes of the `hf-fn` binary.
//!
//! - *Image*: the function's package staged to a per-function directory
//!   under `<work_dir>/hf-process-<worker id>/`: a copy of `hf-fn` plus its
//!   generated `payload.bin` of `package_bytes` times the package scale
//!   (`HF_PACKAGE_SCALE`, told to every instance; so a large package costs a
//!   large copy to build and a large read on every cold start). A build
//!   writes into a fresh temporary directory and renames it into place.
//! - *One-shot instance*: `hf-fn <NAME>` per call, killed if the call is
//!   abandoned (kill-on-drop).
//! - *Warm instance* (pool member or REST mode): `hf-fn serve --function
//!   <NAME> --port 0 --exit-on-stdin-eof`, invoked over loopback HTTP
//!   (`GET /invoke`, through the shared keep-alive
//!   [`super::instance_client`]); the worker holds its stdin pipe, so warm instances
//!   end with the worker even when it is killed.
//!
//! Ownership (see [`super::ownership`]): the runtime claims a fresh
//! [`WorkArea`] of its own at construction (a directory locked for its
//! life, with an ownership record) and stages images in it; it knows its
//! processes by their handles (warm instances, and one-shot calls in
//! flight, which it can cancel), never by scanning for a mark, so a
//! worker with the same worker id, port or work dir is never touched.
//! Processes still carry `HF_WORKER_ID`, `HF_WORKER_INSTANCE`,
//! `HF_FUNCTION`, `HF_INSTANCE_KIND` and `HF_INSTANCE_NAME` in their
//! environment, for people and tests; nothing here reads them. At start-up
//! [`Runtime::sweep_orphans`] removes the areas (staged packages) of
//! process-runtime workers whose lock is free, i.e. that died without
//! cleaning up (`kill -9`); their warm instances ended with them (their
//! stdin closed).

use super::instance_client::{call_query, invoke_path, ClientError, InstanceClient};
use super::ownership::{claim_orphans, WorkArea, LOCK_FILE, RECORD_FILE};
use super::spawn::FunctionSched;
use super::{
    parse_function_output, staged_function_file, tail, EngineHealth, Image, Instance, InstanceKind,
    Invocation, Removed, Runtime, RuntimeError, RuntimeOptions, ENV_FUNCTION, ENV_KIND, ENV_WORKER,
    ENV_WORKER_INSTANCE, STDERR_TAIL_BYTES,
};
use protocol::query::CallParams;
use sample_functions::catalog::{CATALOG_ENV, FUNCTION_FILE_NAME};
use sample_functions::payload::{self, PACKAGE_SCALE_ENV, PAYLOAD_ENV, PAYLOAD_FILE_NAME};
use sample_functions::workload::TIME_SCALE_ENV;
use sample_functions::FunctionSpec;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Environment variable naming a process instance (`Meta.ContainerName`).
const ENV_INSTANCE_NAME: &str = "HF_INSTANCE_NAME";

/// How long a warm instance may take to print its port (it reads its
/// payload first: up to 131 MB).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A warm instance this runtime started and still holds.
#[derive(Debug)]
struct WarmProcess {
    instance: Instance,
    child: Child,
    /// Held open for the instance's life (see `--exit-on-stdin-eof`).
    _stdin: Option<tokio::process::ChildStdin>,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

/// A one-shot call in flight: what it is, and how to stop it.
#[derive(Debug)]
struct OneShotProcess {
    instance: Instance,
    /// Sending (or dropping) it kills the process through its handle.
    cancel: tokio::sync::oneshot::Sender<()>,
}

#[derive(Debug)]
struct Inner {
    options: RuntimeOptions,
    /// This runtime's own locked directory (None once shut down).
    area: Mutex<Option<WorkArea>>,
    instance_id: String,
    stage_root: PathBuf,
    warm: Mutex<HashMap<String, WarmProcess>>,
    /// One-shot calls in flight, by a sequence number.
    oneshots: Mutex<HashMap<u64, OneShotProcess>>,
    instances: InstanceClient,
    sequence: AtomicU64,
    /// How the function processes are scheduled.
    sched: FunctionSched,
}

/// Runs functions as local `hf-fn` processes. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

impl ProcessRuntime {
    /// A runtime with these options: claims a fresh work area of its own
    /// under [`RuntimeOptions::work_dir`] (nothing is started yet).
    pub fn new(options: RuntimeOptions) -> Result<Self, RuntimeError> {
        Self::with_function_sched(options, FunctionSched::Normal)
    }

    /// [`ProcessRuntime::new`] whose function processes start under
    /// `sched`.
    pub fn with_function_sched(
        options: RuntimeOptions,
        sched: FunctionSched,
    ) -> Result<Self, RuntimeError> {
        let area = WorkArea::claim(&options.work_dir, &options.worker_id, "process")
            .map_err(|e| RuntimeError::Io(format!("claiming a work area: {e}")))?;
        let stage_root = area.dir().to_path_buf();
        let instance_id = area.record().instance_id.to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                area: Mutex::new(Some(area)),
                instance_id,
                stage_root,
                warm: Mutex::new(HashMap::new()),
                oneshots: Mutex::new(HashMap::new()),
                instances: InstanceClient::new(),
                sequence: AtomicU64::new(0),
                sched,
            }),
        })
    }

    /// The directory holding this worker's staged images: its own work
    /// area (`<work_dir>/hotfunctions-<uid>/<worker id>.<instance id>`).
    pub fn stage_root(&self) -> &Path {
        &self.inner.stage_root
    }

    fn function_dir(&self, function: &str) -> PathBuf {
        self.inner
            .stage_root
            .join(format!("hf-{}", function.to_ascii_lowercase()))
    }

    fn next(&self) -> u64 {
        self.inner.sequence.fetch_add(1, Ordering::Relaxed)
    }

    fn check_binary(&self) -> Result<(), RuntimeError> {
        let p = &self.inner.options.fn_binary;
        if p.is_file() {
            Ok(())
        } else {
            Err(RuntimeError::EngineUnavailable(format!(
                "the hf-fn binary is not at {} (build it with `cargo build -p sample-functions`, adding --release for a release worker, or pass --fn-binary)",
                p.display()
            )))
        }
    }

    /// A command for `image` with this worker's mark.
    fn command(&self, image: &Image, kind: InstanceKind, name: &str) -> Command {
        let dir = self.function_dir(&image.function);
        let mut c = Command::new(dir.join("hf-fn"));
        c.env(TIME_SCALE_ENV, self.inner.options.time_scale.to_string())
            .env(
                PACKAGE_SCALE_ENV,
                self.inner.options.package_scale.to_string(),
            )
            .env(PAYLOAD_ENV, dir.join(PAYLOAD_FILE_NAME))
            .env(ENV_WORKER, &self.inner.options.worker_id)
            .env(ENV_WORKER_INSTANCE, &self.inner.instance_id)
            .env(ENV_FUNCTION, &image.function)
            .env(ENV_KIND, kind.label())
            .env(ENV_INSTANCE_NAME, name)
            // The function's spec is its staged `function.csv`, never a
            // catalog the worker's own environment names.
            .env_remove(CATALOG_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    fn instance_name(&self, function: &str, kind: InstanceKind) -> String {
        let tag = match kind {
            InstanceKind::OneShot => "",
            InstanceKind::Pooled => "pool_",
            InstanceKind::Rest => "rest_",
        };
        format!("hf_{}__{tag}{}", function.to_ascii_lowercase(), self.next())
    }

    fn stderr_of(&self, id: &str) -> String {
        let warm = self.inner.warm.lock().unwrap_or_else(|e| e.into_inner());
        warm.get(id)
            .map(|w| w.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Exit status of a warm instance if it has died.
    fn exit_status(&self, id: &str) -> Option<String> {
        let mut warm = self.inner.warm.lock().unwrap_or_else(|e| e.into_inner());
        let w = warm.get_mut(id)?;
        match w.child.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }
}

/// Keeps the last [`STDERR_TAIL_BYTES`] of a child's stderr.
fn collect_stderr(stderr: tokio::process::ChildStderr) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let out = Arc::clone(&buf);
    tokio::spawn(async move {
        let mut r = stderr;
        let mut chunk = vec![0u8; 4096];
        while let Ok(n) = r.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
            b.push_str(&String::from_utf8_lossy(&chunk[..n]));
            if b.len() > 4 * STDERR_TAIL_BYTES {
                *b = tail(&b, STDERR_TAIL_BYTES);
            }
        }
    });
    out
}

/// Stages `function` into `dir` (blocking): temp dir, copy, payload, the
/// function's catalog row if it is not a sample, rename.
fn stage(
    fn_binary: &Path,
    dir: &Path,
    tmp: &Path,
    package_bytes: u64,
    function_file: Option<&str>,
) -> std::io::Result<u64> {
    if tmp.exists() {
        std::fs::remove_dir_all(tmp)?;
    }
    // Not `create_dir_all`: a removed work area is never made again.
    std::fs::create_dir(tmp)?;
    let bin_bytes = std::fs::copy(fn_binary, tmp.join("hf-fn"))?;
    payload::write_payload_file(&tmp.join(PAYLOAD_FILE_NAME), package_bytes)?;
    if let Some(text) = function_file {
        std::fs::write(tmp.join(FUNCTION_FILE_NAME), text)?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(tmp, dir)?;
    Ok(bin_bytes + package_bytes)
}

/// Removes a one-shot call's entry when its future ends (or is dropped).
struct OneShotEntry<'a> {
    inner: &'a Inner,
    key: u64,
}

impl Drop for OneShotEntry<'_> {
    fn drop(&mut self) {
        self.inner
            .oneshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Starts instance `name` of `image` (past a busy executable:
/// [`super::spawn`]).
async fn spawn_for(
    cmd: &mut Command,
    image: &Image,
    name: &str,
    sched: FunctionSched,
) -> Result<Child, RuntimeError> {
    super::spawn::spawn(cmd, sched)
        .await
        .map_err(|e| RuntimeError::Instance {
            instance: name.to_string(),
            detail: format!("spawning {}: {e}", image.name),
        })
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(r: Option<R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut r) = r {
        let _ = r.read_to_end(&mut buf).await;
    }
    buf
}

/// Removes every entry of a work area but its lock and record; returns
/// how many staged images (`hf-*` directories) went.
fn empty_area(dir: &Path) -> std::io::Result<usize> {
    let mut images = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if name == LOCK_FILE || name == RECORD_FILE {
            continue;
        }
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let r = if is_dir {
            std::fs::remove_dir_all(e.path())
        } else {
            std::fs::remove_file(e.path())
        };
        match r {
            Ok(()) => {
                if is_dir && name.to_string_lossy().starts_with("hf-") {
                    images += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(images)
}

impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn options(&self) -> &RuntimeOptions {
        &self.inner.options
    }

    fn function_sched(&self) -> Option<FunctionSched> {
        Some(self.inner.sched)
    }

    fn engine_label(&self) -> String {
        format!(
            "local processes of {}",
            self.inner.options.fn_binary.display()
        )
    }

    async fn health(&self) -> Result<EngineHealth, RuntimeError> {
        self.check_binary()?;
        Ok(EngineHealth {
            runtime: "process".into(),
            engine: format!(
                "local processes of {}",
                self.inner.options.fn_binary.display()
            ),
        })
    }

    async fn build_image(&self, function: &FunctionSpec) -> Result<Image, RuntimeError> {
        self.check_binary()?;
        let dir = self.function_dir(&function.name);
        let tmp = self.inner.stage_root.join(format!(
            ".tmp-{}-{}",
            function.name.to_ascii_lowercase(),
            self.next()
        ));
        let bin = self.inner.options.fn_binary.clone();
        let bytes = payload::scaled_bytes(function.package_bytes, self.inner.options.package_scale);
        let d = dir.clone();
        let t = tmp.clone();
        let row = staged_function_file(function);
        let staged =
            tokio::task::spawn_blocking(move || stage(&bin, &d, &t, bytes, row.as_deref()))
                .await
                .map_err(|e| RuntimeError::Io(format!("staging task: {e}")))?;
        match staged {
            Ok(total) => Ok(Image {
                function: function.name.clone(),
                name: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bytes,
                stored_bytes: total,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(RuntimeError::Build {
                    function: function.name.clone(),
                    detail: format!("staging into {}: {e}", dir.display()),
                })
            }
        }
    }

    async fn remove_image(&self, image: &Image) -> Result<(), RuntimeError> {
        let dir = self.function_dir(&image.function);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::Io(format!("removing {}: {e}", dir.display()))),
        }
    }

    async fn run_once_with(
        &self,
        image: &Image,
        call: CallParams,
    ) -> Result<Invocation, RuntimeError> {
        self.check_binary()?;
        let name = self.instance_name(&image.function, InstanceKind::OneShot);
        let mut cmd = self.command(image, InstanceKind::OneShot, &name);
        cmd.arg(&image.function);
        if let Some(query) = call_query(&call) {
            cmd.args(["--call", &query]);
        }
        let mut child = spawn_for(&mut cmd, image, &name, self.inner.sched).await?;
        // Registered so that `/clear` can stop it, by its handle.
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let key = self.next();
        self.inner
            .oneshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                OneShotProcess {
                    instance: Instance {
                        id: child
                            .id()
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| name.clone()),
                        name: name.clone(),
                        function: image.function.clone(),
                        kind: InstanceKind::OneShot,
                    },
                    cancel,
                },
            );
        let _entry = OneShotEntry {
            inner: &self.inner,
            key,
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let wait = async {
            tokio::select! {
                status = child.wait() => status,
                _ = cancelled => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            }
        };
        let (status, stdout, stderr) = tokio::join!(wait, read_all(stdout), read_all(stderr));
        let status = status.map_err(|e| RuntimeError::Instance {
            instance: name.clone(),
            detail: format!("waiting: {e}"),
        })?;
        if !status.success() {
            return Err(RuntimeError::FunctionFailed {
                function: image.function.clone(),
                status: status.to_string(),
                stderr_tail: tail(&String::from_utf8_lossy(&stderr), STDERR_TAIL_BYTES),
            });
        }
        let output = parse_function_output(&image.function, &String::from_utf8_lossy(&stdout))?;
        Ok(Invocation {
            output,
            instance_name: name,
        })
    }

    async fn start_instance(
        &self,
        image: &Image,
        kind: InstanceKind,
    ) -> Result<Instance, RuntimeError> {
        self.check_binary()?;
        let name = self.instance_name(&image.function, kind);
        let mut cmd = self.command(image, kind, &name);
        cmd.args([
            "serve",
            "--function",
            &image.function,
            "--port",
            "0",
            "--exit-on-stdin-eof",
        ])
        // The instance ends when this pipe closes, i.e. when the worker
        // exits, even if it is killed: no orphans.
        .stdin(Stdio::piped());
        let mut child = spawn_for(&mut cmd, image, &name, self.inner.sched).await?;
        let stderr = match child.stderr.take() {
            Some(s) => collect_stderr(s),
            None => Arc::new(Mutex::new(String::new())),
        };
        let Some(stdout) = child.stdout.take() else {
            return Err(RuntimeError::Io("child without stdout".into()));
        };
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
        let port = match first {
            Ok(Ok(Some(line))) => serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["port"].as_u64())
                .and_then(|p| u16::try_from(p).ok()),
            _ => None,
        };
        let Some(port) = port else {
            let _ = child.start_kill();
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            // Give the stderr reader a moment to drain the pipe.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let err = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return Err(RuntimeError::FunctionFailed {
                function: image.function.clone(),
                status: format!("warm instance did not start ({status})"),
                stderr_tail: tail(&err, STDERR_TAIL_BYTES),
            });
        };
        // Keep draining stdout so the instance never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let stdin = child.stdin.take();
        let id = child
            .id()
            .map(|p| p.to_string())
            .unwrap_or_else(|| name.clone());
        self.inner
            .warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                WarmProcess {
                    instance: Instance {
                        id: id.clone(),
                        name: name.clone(),
                        function: image.function.clone(),
                        kind,
                    },
                    child,
                    _stdin: stdin,
                    port,
                    stderr,
                },
            );
        Ok(Instance {
            id,
            name,
            function: image.function.clone(),
            kind,
        })
    }

    async fn invoke_with(
        &self,
        instance: &Instance,
        call: CallParams,
    ) -> Result<Invocation, RuntimeError> {
        let port = {
            let warm = self.inner.warm.lock().unwrap_or_else(|e| e.into_inner());
            warm.get(&instance.id).map(|w| w.port)
        };
        let Some(port) = port else {
            return Err(RuntimeError::Instance {
                instance: instance.name.clone(),
                detail: "no such instance (removed)".into(),
            });
        };
        // No exit check before the call (a `wait4` per call): an instance
        // that died before it refuses the connection (a stale idle one is
        // replaced once by the client), which is the `Instance` error below.
        let reply = match self.inner.instances.get(port, &invoke_path(&call)).await {
            Ok(r) => r,
            Err(e) => {
                // Could not even connect: the instance was gone before this
                // call (an `Instance` error, so the worker may replace it).
                // Broken during the call: the function took it down.
                // A stale kept connection to an instance that had exited
                // counts as not connecting (as before the hot-path client
                // stopped hiding it), so the worker may replace it.
                let connect = matches!(e, ClientError::Connect { .. }) || e.peer_gone_after_reuse();
                if let (false, Some(status)) = (connect, self.exit_status(&instance.id)) {
                    return Err(RuntimeError::FunctionFailed {
                        function: instance.function.clone(),
                        status,
                        stderr_tail: tail(&self.stderr_of(&instance.id), STDERR_TAIL_BYTES),
                    });
                }
                self.inner.instances.forget(port);
                let status = self
                    .exit_status(&instance.id)
                    .map(|s| format!(" (instance exited: {s})"))
                    .unwrap_or_default();
                return Err(RuntimeError::Instance {
                    instance: instance.name.clone(),
                    detail: format!("{e}{status}"),
                });
            }
        };
        let body = String::from_utf8_lossy(&reply.body);
        if reply.status != 200 {
            let err = self.stderr_of(&instance.id);
            return Err(RuntimeError::FunctionFailed {
                function: instance.function.clone(),
                status: format!("HTTP {}: {}", reply.status, tail(&body, 300)),
                stderr_tail: tail(&err, STDERR_TAIL_BYTES),
            });
        }
        let output = parse_function_output(&instance.function, &body)?;
        Ok(Invocation {
            output,
            instance_name: instance.name.clone(),
        })
    }

    async fn remove_instance(&self, instance: &Instance) -> Result<(), RuntimeError> {
        let w = self
            .inner
            .warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&instance.id);
        if let Some(mut w) = w {
            self.inner.instances.forget(w.port);
            let _ = w.child.start_kill();
            let _ = w.child.wait().await;
        }
        Ok(())
    }

    async fn list_own_instances(&self) -> Result<Vec<Instance>, RuntimeError> {
        let mut out: Vec<Instance> = self
            .inner
            .warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|w| w.instance.clone())
            .collect();
        out.extend(
            self.inner
                .oneshots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|o| o.instance.clone()),
        );
        Ok(out)
    }

    async fn remove_all_own(&self, images: bool) -> Result<Removed, RuntimeError> {
        let held: Vec<WarmProcess> = self
            .inner
            .warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, w)| w)
            .collect();
        let mut removed = Removed::default();
        for mut w in held {
            self.inner.instances.forget(w.port);
            let _ = w.child.start_kill();
            let _ = w.child.wait().await;
            removed.instances += 1;
        }
        // One-shot calls in flight: stopped through their own handles
        // (their calls answer 500, as the original's forced removal did).
        let running: Vec<OneShotProcess> = self
            .inner
            .oneshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, o)| o)
            .collect();
        for o in running {
            let _ = o.cancel.send(());
            removed.instances += 1;
        }
        if images {
            let root = self.inner.stage_root.clone();
            removed.images = tokio::task::spawn_blocking(move || empty_area(&root))
                .await
                .map_err(|e| RuntimeError::Io(format!("emptying the work area: {e}")))?
                .map_err(|e| {
                    RuntimeError::Io(format!("emptying {}: {e}", self.inner.stage_root.display()))
                })?;
        }
        Ok(removed)
    }

    fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    async fn sweep_orphans(&self) -> Result<Removed, RuntimeError> {
        let work_dir = self.inner.options.work_dir.clone();
        let own = self.inner.stage_root.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = Removed::default();
            let orphans = claim_orphans(&work_dir, &own)
                .map_err(|e| RuntimeError::Io(format!("looking for orphans: {e}")))?;
            for o in orphans {
                // A Docker worker's leftovers include engine objects: a
                // Docker-runtime worker removes those (the lock is let go).
                if o.record.runtime != "process" {
                    continue;
                }
                let dir = o.dir.clone();
                let (worker, pid) = (o.record.worker_id.clone(), o.record.pid);
                removed.images += empty_area(&dir).unwrap_or(0);
                match o.remove() {
                    Ok(()) => tracing::info!(
                        "removed {}, left by worker {worker:?} (pid {pid}, gone: its lock was free)",
                        dir.display()
                    ),
                    Err(e) => tracing::warn!("removing {}: {e}", dir.display()),
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| RuntimeError::Io(format!("sweeping task: {e}")))?
    }

    async fn shutdown(&self) -> Result<Removed, RuntimeError> {
        let removed = self.remove_all_own(true).await?;
        let area = self
            .inner
            .area
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(area) = area {
            tokio::task::spawn_blocking(move || area.remove())
                .await
                .map_err(|e| RuntimeError::Io(format!("removing the work area: {e}")))?
                .map_err(|e| RuntimeError::Io(format!("removing the work area: {e}")))?;
        }
        Ok(removed)
    }
}
