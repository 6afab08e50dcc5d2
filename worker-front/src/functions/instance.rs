//! Running user functions: as local processes (the process runtime), or
//! warm instances as containers (the Docker runtime: `start` is given the
//! version's image in [`Launch::container`]; the container listens on the
//! worker's 127.0.0.1 as a process does, and is removed where a process
//! is killed).
//!
//! - `http` and `node` functions: one warm instance per deployed version,
//!   started on the first call (cold) and reused by every later call
//!   (warm, concurrently), like the worker's REST-mode instances. The
//!   instance serves HTTP/1.1 on `127.0.0.1:$PORT`; calls reach it through
//!   a keep-alive connection pool. A `node` instance is the machine's
//!   `node` running the worker's bootstrap (`bootstrap.js`) over the
//!   function's handler file.
//! - `oneshot` functions: one process per call, CGI/1.1 style (RFC 3875):
//!   `REQUEST_METHOD`, `QUERY_STRING`, `PATH_INFO`, `CONTENT_TYPE`,
//!   `CONTENT_LENGTH` and `HTTP_<HEADER>` in the environment, the body on
//!   stdin; on stdout a CGI reply (header lines such as `Status: 201` and
//!   `Content-Type: ...`, a blank line, the body), or just a body (200).
//!
//! Instances get a clean environment (`PATH`, `PORT`, `HF_FUNCTION`,
//! `HF_FUNCTION_VERSION`, `HF_WORKER_ID`, `HF_INSTANCE_NAME`): nothing of the
//! worker's own (its management token included). Their stdin is a pipe
//! the worker holds: they should end when it closes (the bootstrap does),
//! and they are killed when their version is replaced or deleted, when a
//! call fails in a way that leaves them suspect (crash, timeout, an
//! oversized reply), and when the worker stops.
//!
//! Output is bounded: what an instance writes on stdout and stderr goes
//! to a ring of [`OUTPUT_RING_BYTES`]; a reply body over
//! [`MAX_REPLY_BYTES`] fails the call.

use super::package::{Manifest, RuntimeSpec};
use crate::runtime::docker::DockerRuntime;
use crate::runtime::instance_client::{InstanceClient, Request};
use crate::runtime::spawn::FunctionSched;
use crate::runtime::Instance;
use bytes::Bytes;
pub use sample_functions::user::wire::{find, hop_by_hop};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

/// Bytes of an instance's recent output kept.
pub const OUTPUT_RING_BYTES: usize = 64 * 1024;
/// The largest reply body a function may give (Lambda's 6 MB payload).
pub const MAX_REPLY_BYTES: usize = 6 * 1024 * 1024;
/// How long an instance may take to listen on its port.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The most recent output of an instance, bounded.
#[derive(Debug, Default)]
pub struct OutputRing {
    buf: std::collections::VecDeque<u8>,
    /// Bytes ever written.
    total: u64,
}

impl OutputRing {
    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let keep = &bytes[bytes.len().saturating_sub(OUTPUT_RING_BYTES)..];
        let over = (self.buf.len() + keep.len()).saturating_sub(OUTPUT_RING_BYTES);
        self.buf.drain(..over);
        self.buf.extend(keep);
    }

    /// Bytes written so far.
    pub fn mark(&self) -> u64 {
        self.total
    }

    /// What was written since `mark` (what the ring still holds of it),
    /// its last `max` bytes, as text.
    pub fn since(&self, mark: u64, max: usize) -> String {
        let new = (self.total - mark.min(self.total)).min(self.buf.len() as u64) as usize;
        let take = new.min(max);
        let start = self.buf.len() - take;
        let bytes: Vec<u8> = self.buf.range(start..).copied().collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if new > take {
            format!("...{text}")
        } else {
            text
        }
    }
}

type Ring = Arc<Mutex<OutputRing>>;

fn drain(mut from: impl AsyncRead + Unpin + Send + 'static, ring: Ring) {
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 8192];
        loop {
            match from.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => ring
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(&chunk[..n]),
            }
        }
    });
}

/// What an instance needs to know about its function.
#[derive(Debug, Clone)]
pub struct Launch {
    pub function: String,
    pub version: u64,
    pub manifest: Manifest,
    pub code_dir: PathBuf,
    pub worker_id: String,
    /// The machine's `node`.
    pub node: PathBuf,
    /// The bootstrap file.
    pub bootstrap: PathBuf,
    /// Under the Docker runtime: the version's image, and the runtime.
    pub container: Option<ContainerLaunch>,
    /// How a process of it is scheduled (process runtime).
    pub sched: FunctionSched,
}

/// A version's image in the Docker runtime (`runtime::docker::user`).
#[derive(Debug, Clone)]
pub struct ContainerLaunch {
    pub runtime: DockerRuntime,
    /// The image's tag.
    pub image: String,
    /// The deploy's label (`runtime::docker::user::LABEL_USER_DEPLOY`).
    pub deploy: String,
}

impl Launch {
    fn command(&self, instance: &str) -> Command {
        let entry = self.code_dir.join(self.manifest.entry());
        let mut cmd = match self.manifest.runtime {
            RuntimeSpec::Node => {
                let mut c = Command::new(&self.node);
                c.arg(&self.bootstrap).arg(&entry);
                c
            }
            RuntimeSpec::Http | RuntimeSpec::Oneshot => {
                let mut c = Command::new(&entry);
                c.args(&self.manifest.args);
                c
            }
        };
        cmd.current_dir(&self.code_dir)
            .env_clear()
            .envs(self.environment(instance))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

impl Launch {
    /// The environment of an instance (the same in a process and in a
    /// container), `PORT` aside.
    fn environment(&self, instance: &str) -> Vec<(&'static str, String)> {
        vec![
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
            ("LANG", "C.UTF-8".into()),
            ("HF_FUNCTION", self.function.clone()),
            ("HF_FUNCTION_VERSION", self.version.to_string()),
            ("HF_WORKER_ID", self.worker_id.clone()),
            ("HF_INSTANCE_NAME", instance.into()),
            ("HF_MAX_BODY_BYTES", MAX_REPLY_BYTES.to_string()),
        ]
    }
}

/// Failures of one call (each a 5xx at the edge but `Rejected`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("function {function} could not start: {detail}")]
    Start { function: String, detail: String },
    #[error("function {function} crashed ({status}); its instance was replaced. Output: {output}")]
    Crashed {
        function: String,
        status: String,
        output: String,
    },
    #[error("function {function} did not answer within its timeout of {timeout_ms} ms; its instance was replaced")]
    Timeout { function: String, timeout_ms: u64 },
    #[error("function {function} replied with more than {MAX_REPLY_BYTES} bytes; its instance was replaced")]
    ReplyTooLarge { function: String },
    #[error("function {function} gave a malformed reply: {detail}")]
    BadReply { function: String, detail: String },
}

/// A request for a function.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The path under the function (`/` at least).
    pub path: String,
    /// The query, without `?` (may be empty).
    pub query: String,
    /// Headers, hop-by-hop ones already removed.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

/// A function's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReply {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
    /// What it wrote during the call (bounded).
    pub output: String,
}

/// A warm instance of one version.
#[derive(Debug)]
pub struct Running {
    pub name: String,
    /// Where it listens (on the worker's 127.0.0.1, also as a container in
    /// the host's or the worker's network).
    addr: SocketAddr,
    what: Backing,
    output: Ring,
}

/// What runs an instance.
#[derive(Debug)]
enum Backing {
    /// A local process, owned by a task that waits for its exit ([`watch`]);
    /// its stdin is held open.
    Process {
        pid: Option<u32>,
        /// How it ended, once it has (set by the task).
        ended: Arc<OnceLock<String>>,
        /// Dropped or sent: the task kills it.
        kill: Mutex<Option<oneshot::Sender<()>>>,
        _stdin: Option<ChildStdin>,
    },
    /// A container; `exited` is set when its output ends.
    Container {
        runtime: DockerRuntime,
        instance: Instance,
        exited: Arc<Mutex<Option<String>>>,
        removed: std::sync::atomic::AtomicBool,
    },
}

impl Running {
    /// How it ended, if it has.
    pub fn exit_status(&self) -> Option<String> {
        match &self.what {
            // No system call, no lock: read per call.
            Backing::Process { ended, .. } => ended.get().cloned(),
            Backing::Container { exited, .. } => {
                exited.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
        }
    }

    /// Kills it (also done when it is dropped): a container is removed in
    /// the background.
    pub fn kill(&self) {
        match &self.what {
            Backing::Process { kill, .. } => {
                if let Some(kill) = kill.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let _ = kill.send(());
                }
            }
            Backing::Container {
                runtime,
                instance,
                removed,
                ..
            } => {
                if removed.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let (runtime, instance) = (runtime.clone(), instance.clone());
                match tokio::runtime::Handle::try_current() {
                    Ok(handle) => {
                        handle.spawn(async move {
                            if let Err(e) = runtime.remove_user_instance(&instance).await {
                                tracing::warn!("removing container {}: {e}", instance.name);
                            }
                        });
                    }
                    Err(_) => tracing::warn!(
                        "container {} left behind (no async runtime); the worker's clean-up removes it",
                        instance.name
                    ),
                }
            }
        }
    }

    /// The process id (for tests and people; None for a container).
    pub fn pid(&self) -> Option<u32> {
        match &self.what {
            Backing::Process { pid, ended, .. } => pid.filter(|_| ended.get().is_none()),
            Backing::Container { .. } => None,
        }
    }

    /// The container's id, if it is one.
    pub fn container_id(&self) -> Option<&str> {
        match &self.what {
            Backing::Container { instance, .. } => Some(&instance.id),
            Backing::Process { .. } => None,
        }
    }

    fn output_since(&self, mark: u64) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .since(mark, super::store::LOG_TEXT_BYTES)
    }

    fn mark(&self) -> u64 {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).mark()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A process goes with its kill sender (its task kills it); a
        // container is removed.
        if matches!(self.what, Backing::Container { .. }) {
            self.kill();
        }
    }
}

/// A free port of the worker's 127.0.0.1, handed to an instance (it binds
/// it again at once).
fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}

/// Waits until something listens on 127.0.0.1:`port`, or `ended` says the
/// instance ended, or `bound` passes (Err: why, with its output).
#[allow(clippy::disallowed_methods)] // the start-up bound reads the clock
async fn await_listening(
    port: u16,
    bound: Duration,
    output: &Ring,
    mut ended: impl FnMut() -> Option<String>,
) -> Result<(), String> {
    let began = std::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = ended() {
            // Let the drains take what it wrote before it ended.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let out = output
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .since(0, super::store::LOG_TEXT_BYTES);
            return Err(format!(
                "it exited ({status}) before listening on port {port}: {out}"
            ));
        }
        if began.elapsed() > bound {
            return Err(format!(
                "it did not listen on port {port} (its $PORT) within {} s",
                bound.as_secs()
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// How long a container may take to listen on its port (the engine
/// creates and starts it first).
pub const CONTAINER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a warm instance of `launch` in a container of its image.
async fn start_container(
    launch: &Launch,
    container: &ContainerLaunch,
    instance: String,
) -> Result<Running, CallError> {
    let fail = |detail: String| CallError::Start {
        function: launch.function.clone(),
        detail,
    };
    let port = free_port().map_err(|e| fail(format!("finding a free port: {e}")))?;
    let mut env: Vec<String> = launch
        .environment(&instance)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.push(format!("PORT={port}"));
    let output: Ring = Arc::default();
    let exited: Arc<Mutex<Option<String>>> = Arc::default();
    let started = {
        let (output, exited) = (output.clone(), exited.clone());
        container
            .runtime
            .start_user_instance(
                &container.image,
                &launch.function,
                &container.deploy,
                env,
                move |bytes| output.lock().unwrap_or_else(|e| e.into_inner()).push(bytes),
                move |how| *exited.lock().unwrap_or_else(|e| e.into_inner()) = Some(how),
            )
            .await
            .map_err(|e| fail(e.to_string()))?
    };
    let running = Running {
        name: instance,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        what: Backing::Container {
            runtime: container.runtime.clone(),
            instance: started,
            exited: exited.clone(),
            removed: Default::default(),
        },
        output: output.clone(),
    };
    // On failure `running` is dropped: its container is removed.
    await_listening(port, CONTAINER_START_TIMEOUT, &output, || {
        exited.lock().unwrap_or_else(|e| e.into_inner()).clone()
    })
    .await
    .map_err(fail)?;
    Ok(running)
}

/// Starts a warm instance of `launch` (http or node) and returns once it
/// accepts connections on its port: a process, or under the Docker
/// runtime a container of the version's image.
pub async fn start(launch: &Launch, instance: String) -> Result<Running, CallError> {
    if let Some(container) = &launch.container {
        return start_container(launch, container, instance).await;
    }
    let fail = |detail: String| CallError::Start {
        function: launch.function.clone(),
        detail,
    };
    let port = free_port().map_err(|e| fail(format!("finding a free port: {e}")))?;
    let mut cmd = launch.command(&instance);
    cmd.env("PORT", port.to_string());
    let mut child = crate::runtime::spawn::spawn(&mut cmd, launch.sched)
        .await
        .map_err(|e| fail(format!("spawning {}: {e}", launch.manifest.entry())))?;
    let output: Ring = Arc::default();
    if let Some(s) = child.stdout.take() {
        drain(s, output.clone());
    }
    if let Some(s) = child.stderr.take() {
        drain(s, output.clone());
    }
    let stdin = child.stdin.take();
    let pid = child.id();
    let (ended, kill) = watch(child);
    // On failure `running` is dropped: its process is killed.
    let running = Running {
        name: instance,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        what: Backing::Process {
            pid,
            ended: ended.clone(),
            kill: Mutex::new(Some(kill)),
            _stdin: stdin,
        },
        output: output.clone(),
    };
    await_listening(port, START_TIMEOUT, &output, || ended.get().cloned())
        .await
        .map_err(fail)?;
    Ok(running)
}

/// Hands `child` to a task that waits for its exit and records how it
/// ended (what [`Running::exit_status`] reads per call, instead of a
/// `wait4` under a lock), and kills it when the returned sender is used
/// or dropped.
fn watch(mut child: Child) -> (Arc<OnceLock<String>>, oneshot::Sender<()>) {
    let ended: Arc<OnceLock<String>> = Arc::default();
    let (kill, killed) = oneshot::channel::<()>();
    let record = ended.clone();
    tokio::spawn(async move {
        let status = tokio::select! {
            status = child.wait() => status,
            _ = killed => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let how = match status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        let _ = record.set(how);
    });
    (ended, kill)
}

/// Sends `call` to the warm instance `inst` within `timeout`, over
/// `client`'s keep-alive connections (the hot path's client,
/// `keepalive_http`: the method, path, query, headers and body go as
/// given; the reply's status, headers and body come back, the body at
/// most [`MAX_REPLY_BYTES`]). On a crash, a timeout or an oversized reply
/// the caller must replace `inst` ([`CallError`] says so).
pub async fn invoke(
    client: &InstanceClient,
    function: &str,
    inst: &Running,
    call: Call,
    timeout: Duration,
) -> Result<CallReply, CallError> {
    let mark = inst.mark();
    let bad = |detail: String| CallError::BadReply {
        function: function.into(),
        detail,
    };
    let mut target = String::with_capacity(call.path.len() + 1 + call.query.len());
    target.push_str(&call.path);
    if !call.query.is_empty() {
        target.push('?');
        target.push_str(&call.query);
    }
    let mut request = Request::new(&call.method, &target).map_err(|e| bad(e.to_string()))?;
    for (k, v) in &call.headers {
        request.header(k, v).map_err(|e| bad(e.to_string()))?;
    }
    request.body(call.body).max_reply_body(MAX_REPLY_BYTES);
    let crashed = |e: String| CallError::Crashed {
        function: function.into(),
        status: inst
            .exit_status()
            .map(|s| format!("instance exited: {s}"))
            .unwrap_or_else(|| format!("connection failed: {e}")),
        output: String::new(),
    };
    let r = match tokio::time::timeout(timeout, client.send_to(inst.addr, &request)).await {
        Ok(Ok(reply)) => Ok(CallReply {
            status: reply.status,
            headers: reply
                .headers
                .into_iter()
                .filter(|(k, _)| !hop_by_hop(k))
                .collect(),
            body: reply.body,
            output: String::new(),
        }),
        Ok(Err(e)) if e.reply_too_large() => Err(CallError::ReplyTooLarge {
            function: function.into(),
        }),
        Ok(Err(e)) => Err(crashed(e.to_string())),
        Err(_) => Err(CallError::Timeout {
            function: function.into(),
            timeout_ms: timeout.as_millis() as u64,
        }),
    };
    match r {
        Ok(mut reply) => {
            reply.output = inst.output_since(mark);
            Ok(reply)
        }
        Err(CallError::Crashed {
            function, status, ..
        }) => {
            // The connection broke: if the process is ending, wait (briefly)
            // for its exit status, and let the drains take its last words.
            let mut status = status;
            for _ in 0..50 {
                if let Some(s) = inst.exit_status() {
                    status = format!("instance exited: {s}");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err(CallError::Crashed {
                function,
                status,
                output: inst.output_since(mark),
            })
        }
        Err(e) => Err(e),
    }
}

/// The CGI environment of `call` (RFC 3875 §4.1).
fn cgi_env(cmd: &mut Command, call: &Call) {
    cmd.env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", &call.method)
        .env("QUERY_STRING", &call.query)
        .env("PATH_INFO", &call.path)
        .env("CONTENT_LENGTH", call.body.len().to_string())
        .env("SERVER_PROTOCOL", "HTTP/1.1");
    for (k, v) in &call.headers {
        let value = String::from_utf8_lossy(v);
        if k.eq_ignore_ascii_case("content-type") {
            cmd.env("CONTENT_TYPE", value.as_ref());
            continue;
        }
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        cmd.env(format!("HTTP_{name}"), value.as_ref());
    }
}

/// Reads at most `max` bytes of `from` (and drains the rest, counted).
async fn read_bounded(mut from: impl AsyncRead + Unpin, max: usize) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut chunk = vec![0u8; 8192];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n as u64;
                let room = max.saturating_sub(out.len());
                out.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    (out, total)
}

/// Splits a CGI reply into status, headers and body; a reply without a
/// header block is all body (status 200).
pub fn parse_cgi(stdout: &[u8]) -> (u16, Vec<(String, Vec<u8>)>, Bytes) {
    let split = find(stdout, b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| find(stdout, b"\n\n").map(|i| (i, i + 2)));
    if let Some((end, body_start)) = split {
        let head = String::from_utf8_lossy(&stdout[..end]);
        let mut status = 200;
        let mut headers = Vec::new();
        let mut ok = true;
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else {
                ok = false;
                break;
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                ok = false;
                break;
            }
            if k.eq_ignore_ascii_case("status") {
                match v
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse::<u16>().ok())
                {
                    Some(s) if (100..=999).contains(&s) => status = s,
                    _ => {
                        ok = false;
                        break;
                    }
                }
            } else if !hop_by_hop(k) {
                headers.push((k.to_string(), v.as_bytes().to_vec()));
            }
        }
        if ok {
            return (
                status,
                headers,
                Bytes::copy_from_slice(&stdout[body_start..]),
            );
        }
    }
    (200, Vec::new(), Bytes::copy_from_slice(stdout))
}

/// Runs a `oneshot` function for `call` within `timeout`.
pub async fn run_once(
    launch: &Launch,
    instance: String,
    call: Call,
    timeout: Duration,
) -> Result<CallReply, CallError> {
    let function = launch.function.clone();
    let mut cmd = launch.command(&instance);
    cgi_env(&mut cmd, &call);
    let mut child = crate::runtime::spawn::spawn(&mut cmd, launch.sched)
        .await
        .map_err(|e| CallError::Start {
            function: function.clone(),
            detail: format!("spawning {}: {e}", launch.manifest.entry()),
        })?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(CallError::Start {
            function,
            detail: "no pipes".into(),
        });
    };
    let body = call.body.clone();
    let feed = async move {
        // A function that does not read its stdin is not an error.
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    };
    let work = async {
        let (_, (out, out_total), (err, _), status) = tokio::join!(
            feed,
            read_bounded(stdout, MAX_REPLY_BYTES + 1),
            read_bounded(stderr, super::store::LOG_TEXT_BYTES),
            child.wait()
        );
        (out, out_total, err, status)
    };
    let (out, out_total, err, status) = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => {
            // `child` is dropped with the future: killed (kill_on_drop).
            return Err(CallError::Timeout {
                function,
                timeout_ms: timeout.as_millis() as u64,
            });
        }
    };
    let output =
        super::super::runtime::tail(&String::from_utf8_lossy(&err), super::store::LOG_TEXT_BYTES);
    let status = status.map_err(|e| CallError::Crashed {
        function: function.clone(),
        status: e.to_string(),
        output: output.clone(),
    })?;
    if out_total > MAX_REPLY_BYTES as u64 {
        return Err(CallError::ReplyTooLarge { function });
    }
    if !status.success() {
        return Err(CallError::Crashed {
            function,
            status: status.to_string(),
            output,
        });
    }
    let (status, headers, body) = parse_cgi(&out);
    Ok(CallReply {
        status,
        headers,
        body,
        output,
    })
}

/// Where the bootstrap is written, under the data dir.
pub fn write_bootstrap(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("bootstrap.js");
    std::fs::write(&path, include_str!("bootstrap.js"))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_bytes() {
        let mut r = OutputRing::default();
        r.push(b"hello ");
        let m = r.mark();
        r.push(b"world");
        assert_eq!(r.since(m, 100), "world");
        assert_eq!(r.since(m, 3), "...rld");
        let big = vec![b'x'; OUTPUT_RING_BYTES * 3];
        r.push(&big);
        assert_eq!(r.buf.len(), OUTPUT_RING_BYTES);
        assert_eq!(r.since(0, 10).len(), 13);
    }

    #[test]
    fn cgi_replies_are_parsed_or_taken_whole() {
        let (s, h, b) = parse_cgi(b"Status: 201 Created\r\nContent-Type: text/x\r\n\r\nbody");
        assert_eq!((s, &b[..]), (201, &b"body"[..]));
        assert_eq!(h, vec![("Content-Type".to_string(), b"text/x".to_vec())]);
        let (s, h, b) = parse_cgi(b"just text\n\nmore");
        assert_eq!((s, h.len(), &b[..]), (200, 0, &b"just text\n\nmore"[..]));
        let (s, _, b) = parse_cgi(b"plain");
        assert_eq!((s, &b[..]), (200, &b"plain"[..]));
    }
}
