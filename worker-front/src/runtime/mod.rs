//! Runtimes: the only code that touches containers or processes.
//!
//! A [`Runtime`] builds a function's *image*, runs one call in a fresh
//! instance, starts warm instances (pre-warmed pool members and REST-mode
//! instances), invokes them, removes them, and lists or removes everything
//! it owns. The worker (`crate::worker`) decides *what* should exist using
//! the pure policies in `policy::node`; a runtime only does it.
//!
//! Two implementations:
//! - [`process::ProcessRuntime`] (the embedded default): the image is the
//!   function's package staged to a per-function directory (a copy of the
//!   `hf-fn` binary plus its payload file); instances are local processes.
//! - `docker::DockerRuntime` (bollard): the image is `FROM scratch` + the
//!   statically linked `hf-fn` + the payload; instances are containers.
//!
//! # The trait's shape
//! Methods return `impl Future<Output = …> + Send` (stable "async fn in
//! traits", no `async_trait` crate): an implementation may simply write
//! `async fn build_image(&self, …) -> Result<Image, RuntimeError>`, as long
//! as its futures are `Send`. The trait is therefore not object safe; the
//! worker is generic over `R: Runtime` and `crate::run` picks the
//! implementation from the configuration (static dispatch).
//!
//! # Contract for implementations
//! - A runtime owns exactly what it created (issue 13 §1; see
//!   [`ownership`]): it claims a work area of its own (a fresh directory
//!   locked for its life) and draws an instance id unique to it
//!   ([`Runtime::instance_id`]). Docker images and containers carry the
//!   label [`LABEL_INSTANCE`] (that id), and are listed and removed by it;
//!   processes are known by their handles. The worker id
//!   ([`RuntimeOptions::worker_id`], label [`LABEL_WORKER`], environment
//!   [`ENV_WORKER`]) only names things for people: two runtimes with the
//!   same worker id never touch each other's objects. Nothing is found by
//!   a name prefix. [`LABEL_FUNCTION`] / [`ENV_FUNCTION`] and
//!   [`LABEL_KIND`] / [`ENV_KIND`] describe an object.
//! - Leftovers of runtimes that died without cleaning up are removed by
//!   [`Runtime::sweep_orphans`] only when proven orphaned (their area's
//!   lock is free), and only in the runtime's own base dir.
//! - Every function instance gets `HF_TIME_SCALE` = [`RuntimeOptions::time_scale`].
//! - A function instance is the `hf-fn` binary ([`RuntimeOptions::fn_binary`]):
//!   `hf-fn <NAME>` for one call (prints one [`protocol::FunctionOutput`] JSON
//!   line on stdout), `hf-fn serve --function <NAME> [--host H] --port <P>
//!   [--exit-on-stdin-eof]` for a warm instance (prints `{"port": N}` once
//!   ready; HTTP/1.1 with keep-alive: `GET /invoke` → `FunctionOutput` JSON,
//!   `GET /health` → `{"ok": true, ...}`; see `sample_functions::serve`;
//!   in a container bind `--host 0.0.0.0`). Its payload file
//!   (`sample_functions::payload`) is found at `HF_PAYLOAD` or as
//!   `payload.bin` beside the binary, and read on every start. A function
//!   of a catalog file (not a sample) has its row staged as `function.csv`
//!   beside the binary, where `hf-fn` finds it. A call's own shape
//!   ([`protocol::query::CallParams`]) goes to a warm instance as the query
//!   of `GET /invoke` and to a one-shot instance as `--call QUERY`.
//! - Errors are typed ([`RuntimeError`]); an unreachable engine is
//!   [`RuntimeError::EngineUnavailable`] (the worker answers 503 and keeps
//!   serving; the next call tries the engine again). No method panics.
//! - All methods may be called concurrently, for the same and for different
//!   functions. The worker guarantees that `build_image` runs at most once at
//!   a time per function (single flight), that a pooled instance is invoked
//!   at most once and then removed, and that an instance is not used after
//!   `remove_instance`.
//! - Dropping a returned future (the HTTP client went away) must not leak:
//!   a one-shot instance whose `run_once` future is dropped is still removed
//!   (kill-on-drop or a spawned cleanup).

pub mod docker;
pub mod instance_client;
pub mod ownership;
pub mod process;
pub mod spawn;

use protocol::query::CallParams;
use protocol::FunctionOutput;
use sample_functions::FunctionSpec;
use std::future::Future;
use std::path::PathBuf;

/// Docker label / process mark: the id of the worker that owns the object.
pub const LABEL_WORKER: &str = "hotfunctions.worker";
/// Docker label / process mark: the [`Runtime::instance_id`] of the runtime
/// that created the object (what ownership goes by).
pub const LABEL_INSTANCE: &str = "hotfunctions.worker-instance";
/// Environment variable carrying [`LABEL_INSTANCE`] on processes.
pub const ENV_WORKER_INSTANCE: &str = "HF_WORKER_INSTANCE";
/// Docker label / process mark: the function an image or instance belongs to.
pub const LABEL_FUNCTION: &str = "hotfunctions.function";
/// Docker label / process mark: `image`, `oneshot`, `pooled` or `rest`.
pub const LABEL_KIND: &str = "hotfunctions.kind";
/// Environment variable carrying [`LABEL_WORKER`] on processes.
pub const ENV_WORKER: &str = "HF_WORKER_ID";
/// Environment variable carrying [`LABEL_FUNCTION`] on processes.
pub const ENV_FUNCTION: &str = "HF_FUNCTION";
/// Environment variable carrying [`LABEL_KIND`] on processes.
pub const ENV_KIND: &str = "HF_INSTANCE_KIND";

/// Settings every runtime receives.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeOptions {
    /// The worker's name on everything it creates (default in the
    /// binary: `worker-<port>`); not what ownership goes by (see
    /// [`Runtime::instance_id`]).
    pub worker_id: String,
    /// The `hf-fn` binary. The Docker runtime needs it statically linked
    /// (`RUSTFLAGS="-C target-feature=+crt-static"`), since images are
    /// `FROM scratch`.
    pub fn_binary: PathBuf,
    /// `HF_TIME_SCALE` passed to every function instance (1.0 = real).
    pub time_scale: f64,
    /// `HF_PACKAGE_SCALE`: images carry `package_bytes × package_scale`
    /// bytes of payload, and instances are told so (1.0 = the catalog's
    /// sizes; `sample_functions::payload::scaled_bytes`).
    pub package_scale: f64,
    /// The base dir of the runtimes' work areas ([`ownership`]): each
    /// runtime claims a fresh locked directory under
    /// `<work_dir>/hotfunctions-<uid>/` (process: staged images in it),
    /// removed by [`Runtime::shutdown`].
    pub work_dir: PathBuf,
}

/// A built image of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub function: String,
    /// What `Meta.ImageName` reports (Docker: the tag; process: the staged
    /// directory's name).
    pub name: String,
    /// The function's package (its code and dependencies: the payload,
    /// at the package scale) in bytes: what the image cache's byte limit
    /// (`USER_CODE_SIZE_LIMIT`) counts. The `hf-fn` binary in every image
    /// stands for the language runtime, shared by all functions (the
    /// original's base images), and is not user code; so the limit counts
    /// the same bytes here and in the simulator.
    pub bytes: u64,
    /// What the image takes where it is kept: the staged directory, or the
    /// engine's image size (binary and payload).
    pub stored_bytes: u64,
}

/// What an instance is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceKind {
    /// Runs one call, then is removed (started by [`Runtime::run_once`]).
    OneShot,
    /// Pre-warmed pool member: invoked at most once, then removed.
    Pooled,
    /// REST-mode instance: invoked many times, concurrently.
    Rest,
}

impl InstanceKind {
    /// The value of [`LABEL_KIND`] / [`ENV_KIND`].
    pub fn label(self) -> &'static str {
        match self {
            InstanceKind::OneShot => "oneshot",
            InstanceKind::Pooled => "pooled",
            InstanceKind::Rest => "rest",
        }
    }

    pub fn from_label(s: &str) -> Option<Self> {
        match s {
            "oneshot" => Some(InstanceKind::OneShot),
            "pooled" => Some(InstanceKind::Pooled),
            "rest" => Some(InstanceKind::Rest),
            _ => None,
        }
    }
}

/// A running (or prepared) instance of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Runtime-specific id (Docker: container id; process: pid).
    pub id: String,
    /// What `Meta.ContainerName` reports.
    pub name: String,
    pub function: String,
    pub kind: InstanceKind,
}

/// The result of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The function's own output (its `startTime`/`endTime` give
    /// `InternalExecutionTime`).
    pub output: FunctionOutput,
    /// The instance that served the call (`Meta.ContainerName`).
    pub instance_name: String,
}

/// What [`Runtime::remove_all_own`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Removed {
    pub instances: usize,
    pub images: usize,
}

/// Engine state reported by [`Runtime::health`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineHealth {
    /// `process` or `docker`.
    pub runtime: String,
    /// Engine version or description.
    pub engine: String,
}

/// Runtime failures (the HTTP edge answers 503 for an unreachable engine,
/// 500 for the rest: `crate::http::runtime_status`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The engine (Docker daemon) does not answer: 503.
    #[error("runtime engine unavailable: {0}")]
    EngineUnavailable(String),
    /// The function exited non-zero or was killed: 500 with its stderr tail.
    #[error("function {function} failed ({status}): {stderr_tail}")]
    FunctionFailed {
        function: String,
        /// e.g. `exit status 3` or `killed by signal 9`.
        status: String,
        /// The last lines of its stderr (at most [`STDERR_TAIL_BYTES`]).
        stderr_tail: String,
    },
    /// The function's output is not a `FunctionOutput` JSON: 500.
    #[error("function {function} gave unreadable output: {detail}")]
    BadOutput { function: String, detail: String },
    /// Building or staging the image failed: 500.
    #[error("building the image of {function} failed: {detail}")]
    Build { function: String, detail: String },
    /// Creating, starting, calling or removing an instance failed: 500.
    #[error("instance {instance}: {detail}")]
    Instance { instance: String, detail: String },
    /// Any other local I/O failure: 500.
    #[error("{0}")]
    Io(String),
}

/// The catalog file staged beside `hf-fn` in `function`'s image (header
/// and its one row), or None for a sample (the binary knows those).
pub fn staged_function_file(function: &FunctionSpec) -> Option<String> {
    (!function.is_sample()).then(|| {
        format!(
            "{}\n{}\n",
            sample_functions::catalog::catalog_header(),
            function.catalog_row()
        )
    })
}

/// How much of a crashed function's stderr is kept.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// The last `max` bytes of `text` (on a char boundary), trimmed.
pub fn tail(text: &str, max: usize) -> String {
    let t = text.trim_end();
    if t.len() <= max {
        return t.to_string();
    }
    let mut start = t.len() - max;
    while !t.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &t[start..])
}

/// Parses one call's stdout: the last non-empty line must be a
/// `FunctionOutput` JSON object.
pub fn parse_function_output(function: &str, stdout: &str) -> Result<FunctionOutput, RuntimeError> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| RuntimeError::BadOutput {
            function: function.to_string(),
            detail: "empty stdout".into(),
        })?;
    serde_json::from_str(line.trim()).map_err(|e| RuntimeError::BadOutput {
        function: function.to_string(),
        detail: format!("{e}: {}", tail(line, 200)),
    })
}

/// Builds images and runs instances of functions. See the module docs for
/// the contract.
pub trait Runtime: Send + Sync + 'static {
    /// `process` or `docker`.
    fn name(&self) -> &'static str;

    /// The settings the runtime was made with.
    fn options(&self) -> &RuntimeOptions;

    /// How the function processes it starts are scheduled
    /// (`--function-sched`), when the runtime starts them itself (the
    /// process runtime); None where an engine does (Docker).
    fn function_sched(&self) -> Option<spawn::FunctionSched> {
        None
    }

    /// The engine as messages name it (`Docker engine at unix:///...`).
    fn engine_label(&self) -> String {
        format!("the {} runtime", self.name())
    }

    /// Whether the engine answers (Docker: ping + version; process: the
    /// `hf-fn` binary exists). Never panics; `EngineUnavailable` when not.
    fn health(&self) -> impl Future<Output = Result<EngineHealth, RuntimeError>> + Send;

    /// Builds (or rebuilds, replacing) the image of `function`: the `hf-fn`
    /// binary plus `function.package_bytes` of payload, scaled by
    /// [`RuntimeOptions::package_scale`] (`sample_functions::payload`), and,
    /// for a function that is not a sample (a catalog file's), its catalog
    /// row as [`sample_functions::catalog::FUNCTION_FILE_NAME`] beside
    /// `hf-fn` ([`staged_function_file`]), which is how its instances know
    /// its spec. Labelled with the worker id.
    fn build_image(
        &self,
        function: &FunctionSpec,
    ) -> impl Future<Output = Result<Image, RuntimeError>> + Send;

    /// Removes an image built by this worker (no error if already gone).
    fn remove_image(&self, image: &Image) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Runs one call in a fresh instance (`hf-fn <NAME>`), waits for it,
    /// reads its output, and removes the instance (also on failure).
    fn run_once(
        &self,
        image: &Image,
    ) -> impl Future<Output = Result<Invocation, RuntimeError>> + Send {
        self.run_once_with(image, CallParams::default())
    }

    /// [`Runtime::run_once`] with the call's own shape (`hf-fn <NAME>
    /// --call QUERY`; none given: exactly `run_once`).
    fn run_once_with(
        &self,
        image: &Image,
        call: CallParams,
    ) -> impl Future<Output = Result<Invocation, RuntimeError>> + Send;

    /// Starts a warm instance of `image` ([`InstanceKind::Pooled`] or
    /// [`InstanceKind::Rest`]) and returns once it can be invoked (its
    /// `/health` answers), so that the start-up cost is paid here.
    fn start_instance(
        &self,
        image: &Image,
        kind: InstanceKind,
    ) -> impl Future<Output = Result<Instance, RuntimeError>> + Send;

    /// Runs one call in a warm instance. Pooled: at most once per instance.
    /// REST: concurrently, many times.
    fn invoke(
        &self,
        instance: &Instance,
    ) -> impl Future<Output = Result<Invocation, RuntimeError>> + Send {
        self.invoke_with(instance, CallParams::default())
    }

    /// [`Runtime::invoke`] with the call's own shape
    /// ([`instance_client::invoke_path`]: `GET /invoke?duration_ms=...`;
    /// none given: exactly `invoke`).
    fn invoke_with(
        &self,
        instance: &Instance,
        call: CallParams,
    ) -> impl Future<Output = Result<Invocation, RuntimeError>> + Send;

    /// Stops and removes an instance (no error if already gone).
    fn remove_instance(
        &self,
        instance: &Instance,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The instances this runtime created and has not removed.
    fn list_own_instances(
        &self,
    ) -> impl Future<Output = Result<Vec<Instance>, RuntimeError>> + Send;

    /// Removes every instance this runtime created and, with `images`,
    /// every image (and work file) it built.
    fn remove_all_own(
        &self,
        images: bool,
    ) -> impl Future<Output = Result<Removed, RuntimeError>> + Send;

    /// The id unique to this runtime (64 random bits in hex), drawn when
    /// it was made: the label its Docker objects carry.
    fn instance_id(&self) -> &str;

    /// Removes what runtimes that died without cleaning up left in this
    /// runtime's base dir, when proven orphaned (their work area's lock is
    /// free): their work areas and (Docker) their engine objects.
    fn sweep_orphans(&self) -> impl Future<Output = Result<Removed, RuntimeError>> + Send;

    /// [`Runtime::remove_all_own`] with images, then removes the work
    /// area: the runtime's last call.
    fn shutdown(&self) -> impl Future<Output = Result<Removed, RuntimeError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abc\n", 10), "abc");
        assert_eq!(tail("0123456789", 4), "...6789");
        assert_eq!(tail("ééé", 3), "...é");
    }

    #[test]
    fn output_parsing() {
        let out = parse_function_output(
            "W1",
            "noise\n{\"startTime\":1,\"endTime\":3,\"result\":{\"statusCode\":200,\"body\":\"x\"}}\n\n",
        )
        .unwrap();
        assert_eq!(out.end_time - out.start_time, 2);
        let e = parse_function_output("W1", "").unwrap_err();
        assert!(matches!(e, RuntimeError::BadOutput { .. }), "{e:?}");
        assert!(parse_function_output("W1", "not json").is_err());
    }
}
