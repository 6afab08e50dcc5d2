//! The worker core: carries out what the node model decides, with a runtime.
//!
//! Every decision (is the image cached, which instance serves a call, what
//! an eviction takes with it, what `/clear` empties, when an idle instance
//! expires) is made by [`policy::node::NodeModel`], the same pure type the
//! discrete-event simulator drives. This module only executes its
//! [`Effects`]: it builds images, starts, invokes and removes instances,
//! wakes the calls the model resumes, and reports back what happened
//! (built, started, failed, finished) with the time.
//!
//! One call (`/execute?name=F`), as in HotFunctions' `runner.go`
//! (`RunFunction` then `manageCaches`), step by step ([`Step`]):
//! - `BuildImage`: this call builds F's image (single flight: the model
//!   tells later callers to `Wait` for it);
//! - `Wait`: the call sleeps until the model resumes it (a build or an
//!   instance start done by another call);
//! - `Start`: start a REST-mode or keep-alive instance, then run on it;
//! - `Run`: invoke a running instance (REST, keep-alive, or a pre-warmed
//!   pool member);
//!   if it turned out dead, the model gives the call a new step once;
//! - `RunOnce`: run the call in a fresh one-shot instance.
//!
//! Then the call ends in the model, which answers with evictions, pool
//! refills and removals; they run in the background.
//!
//! The instance model is HotFunctions' by default; with the Lambda model
//! (`--instance-model lambda` or `--keep-alive-policy P`) every call has
//! an instance of its own, kept alive by the policy; the node's memory
//! (`--node-memory-mb`) and each catalog function's `memory_mb` are told to
//! the model. Keep-alive instances run as the runtime's long-lived (REST)
//! instances; the model's keep-alive pre-warms start them in the
//! background, and the timer below expires them and triggers pre-warms.
//!
//! Functions: the samples, plus those of a catalog file (`--catalog`,
//! [`Worker::with_catalog`]), plus users' functions (`crate::functions`):
//! each deployed version is a function of the same model, driven by
//! `user` (a child module) through `crate::functions::node::UserNode`
//! with the same steps, effects, lock and timers. A call may carry its own shape
//! ([`Worker::execute_with`]: `duration_ms`, `memory_mb`, `cpu_share`,
//! `sample_functions::workload` says how it runs): it is checked here
//! before the model hears of the call (a sample refuses any shape, since
//! its work is the original's; memory is bounded by the node memory and
//! `MAX_CALL_MEMORY_MB`), then handed to the instance that runs the call
//! (`Runtime::invoke_with`, `Runtime::run_once_with`). The model knows a
//! function by its catalog `memory_mb`, not by a call's own memory (a
//! choice: the model's keep-alive accounting is per instance, and an
//! instance outlives the calls that size it).
//!
//! Logged at `info`: image builds and removals, REST/keep-alive instance
//! starts, expiries, `/clear`; pool refills (one per pooled call) at
//! `debug`; never one line per call. A timer calls
//! [`Worker::tick`] so that idle REST instances expire after their
//! lifetime even when no further call comes.
//!
//! The model and the runtime handles (images and instances by the model's
//! ids) sit behind one `std::sync::Mutex` that is never held across an
//! `.await`; the runtime does the slow work outside it.

mod user;

use crate::functions::node::{Staged, UserInstance};
use crate::health::{EngineReading, ReadingSource};
use crate::runtime::{Image, Instance, InstanceKind, Invocation, Removed, Runtime, RuntimeError};
use policy::node::options::{CachingOptions, OptionsError};
use policy::node::{self, CallId, Effects, InstanceId, InstanceModel, NodeModel, Step};
use policy::Time;
use protocol::query::CallParams;
use protocol::{ExecutionMeta, WorkerReply};
use sample_functions::workload::MAX_CALL_MEMORY_MB;
use sample_functions::{CallWork, Catalog, FunctionSpec};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::mpsc;

/// Errors of the worker's operations (mapped to HTTP statuses by the edge,
/// `crate::http`).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    /// A call's own shape that this function or worker refuses (a sample
    /// given one, memory beyond the bound): 400.
    #[error("{0}")]
    BadCall(String),
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Try again later (an image being built by another request): 503.
    #[error("{0}")]
    Busy(String),
    /// A wake on a worker whose instance model starts nothing ahead: 409.
    #[error("{0}")]
    NothingToStart(String),
}

/// The model, and the runtime's handles for what it names.
#[derive(Debug)]
struct State {
    model: NodeModel,
    images: HashMap<Arc<str>, Image>,
    instances: HashMap<InstanceId, Instance>,
    /// Calls that may be told to wait, and how to wake them.
    waiters: HashMap<CallId, mpsc::UnboundedSender<Step>>,
    /// Users' functions (`crate::functions::node`): staged images by the
    /// model's name of a version, instances by the model's ids.
    user_images: HashMap<Arc<str>, Staged>,
    user_instances: HashMap<InstanceId, UserInstance>,
}

/// Runtime work that follows from effects, done outside the lock.
#[derive(Debug, Default)]
struct Background {
    remove_images: Vec<Image>,
    remove_instances: Vec<Instance>,
    prewarm: Vec<(InstanceId, Image, InstanceKind)>,
    remove_user_images: Vec<Staged>,
    remove_user_instances: Vec<UserInstance>,
    /// User functions' instances to start: (id, staged image, model name).
    prewarm_user: Vec<(InstanceId, Staged, Arc<str>)>,
}

impl State {
    /// Carries out `effects` as far as the state goes: wakes resumed calls,
    /// forgets removed images and instances; returns the runtime work.
    fn apply(&mut self, effects: Effects, now: Time) -> Background {
        let mut bg = Background::default();
        let effects = effects.into_lists();
        for (call, step) in effects.resume {
            if let Some(tx) = self.waiters.get(&call) {
                // A closed channel is a call that already gave up.
                let _ = tx.send(step);
            }
        }
        for id in effects.remove_instances {
            if let Some(i) = self.instances.remove(&id) {
                bg.remove_instances.push(i);
            } else if let Some(u) = self.user_instances.remove(&id) {
                bg.remove_user_instances.push(u);
            }
        }
        for f in effects.remove_images {
            if let Some(img) = self.images.remove(&f) {
                bg.remove_images.push(img);
            } else if let Some(staged) = self.user_images.remove(&f) {
                bg.remove_user_images.push(staged);
            }
        }
        for p in effects.prewarm {
            match self.images.get(&p.function) {
                Some(img) => bg
                    .prewarm
                    .push((p.instance, img.clone(), runtime_kind(p.kind))),
                None if self.user_images.contains_key(&p.function) => {
                    let staged = self.user_images[&p.function].clone();
                    bg.prewarm_user.push((p.instance, staged, p.function));
                }
                // The model only pre-warms cached images; if the handle is
                // gone, the start fails like a failed start.
                None => {
                    let more = self.model.instance_start_failed(p.instance, now);
                    let inner = self.apply(more, now);
                    bg.merge(inner);
                }
            }
        }
        bg
    }
}

impl Background {
    fn merge(&mut self, other: Background) {
        self.remove_images.extend(other.remove_images);
        self.remove_instances.extend(other.remove_instances);
        self.prewarm.extend(other.prewarm);
        self.remove_user_images.extend(other.remove_user_images);
        self.remove_user_instances
            .extend(other.remove_user_instances);
        self.prewarm_user.extend(other.prewarm_user);
    }

    fn is_empty(&self) -> bool {
        self.remove_images.is_empty()
            && self.remove_instances.is_empty()
            && self.prewarm.is_empty()
            && self.remove_user_images.is_empty()
            && self.remove_user_instances.is_empty()
            && self.prewarm_user.is_empty()
    }
}

/// Counters reported by `/health`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerStatus {
    pub worker_id: String,
    /// Image builds since start (single flight: one per miss, not per caller).
    pub image_builds: u64,
    /// Images removed by the image cache's limit (not by `/clear`).
    pub image_evictions: u64,
    pub images: usize,
    /// Package bytes of the cached images: what `USER_CODE_SIZE_LIMIT`
    /// counts.
    pub image_bytes: u64,
    /// What the cached images take on disk or in the engine (with the
    /// `hf-fn` binary each holds).
    pub image_stored_bytes: u64,
    pub pooled_instances: usize,
    pub rest_instances: usize,
    /// The instance model, with its keep-alive policy.
    pub instance_model: InstanceModel,
    /// Keep-alive instances (Lambda model): busy and idle.
    pub keep_alive_busy: u64,
    pub keep_alive_idle: u64,
    /// Memory of the keep-alive instances (MB), the node's limit, and the
    /// idle instances evicted for it.
    pub memory_in_use_mb: u64,
    pub node_memory_mb: Option<u64>,
    pub memory_evictions: u64,
    pub calls: u64,
    /// Calls received and not yet answered (queued, building, running).
    pub calls_in_flight: u64,
    /// Functions this worker serves: the samples and `noop`, plus those
    /// of its catalog file (`--catalog`).
    pub functions: usize,
    /// Largest `memory_mb` a call may ask for: the node memory, at most
    /// `sample_functions::workload::MAX_CALL_MEMORY_MB`.
    pub max_call_memory_mb: u32,
    /// `HF_TIME_SCALE` and `HF_PACKAGE_SCALE` of the functions.
    pub time_scale: f64,
    pub package_scale: f64,
    /// How the function processes are scheduled (`--function-sched`:
    /// `normal` or `batch`); null under the Docker runtime, whose engine
    /// starts them.
    pub function_sched: Option<crate::runtime::spawn::FunctionSched>,
    pub state: CachingOptions,
}

struct Shared<R> {
    runtime: R,
    catalog: Arc<Catalog>,
    max_call_memory_mb: u32,
    epoch: Instant,
    worker_id: String,
    state: Mutex<State>,
    image_builds: AtomicU64,
    /// Images the model removed outside `/clear` (the cache's limit).
    image_evictions: AtomicU64,
    calls: AtomicU64,
    calls_in_flight: AtomicU64,
    /// Stagings of users' functions (names their staged copies).
    user_stagings: AtomicU64,
    /// The latest engine reading (`crate::health`): set by the engine
    /// probe and by calls that find the engine unavailable; read by
    /// `/health` on its HTTP thread.
    engine: tokio::sync::watch::Sender<Option<EngineReading>>,
    /// Where background work (clean-up, pre-warming) runs: the runtime the
    /// worker was made on, also when a call runs on an HTTP thread.
    background: Option<tokio::runtime::Handle>,
}

/// The worker: the node model + a runtime. Cheap to clone.
pub struct Worker<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for Worker<R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<R> std::fmt::Debug for Worker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.shared.worker_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The runtime's kind of instance for the model's.
fn runtime_kind(kind: node::InstanceKind) -> InstanceKind {
    match kind {
        node::InstanceKind::Pooled => InstanceKind::Pooled,
        // Both serve calls over HTTP for as long as they live.
        node::InstanceKind::Rest | node::InstanceKind::KeepAlive => InstanceKind::Rest,
    }
}

/// [`Worker::own_step`] for `call`, woken through `wake`.
fn own_step_of(
    st: &mut State,
    call: CallId,
    wake: &mut Option<mpsc::UnboundedReceiver<Step>>,
    effects: &mut Effects,
) -> Step {
    let step = effects.take_step(call).unwrap_or(Step::Wait);
    if step == Step::Wait && wake.is_none() {
        let (tx, rx) = mpsc::unbounded_channel();
        st.waiters.insert(call, tx);
        *wake = Some(rx);
    }
    step
}

/// The next step of a waiting call.
async fn next_step_of(
    wake: &mut Option<mpsc::UnboundedReceiver<Step>>,
) -> Result<Step, RuntimeError> {
    let rx = wake
        .as_mut()
        .ok_or_else(|| RuntimeError::Io("call has no wake-up channel".into()))?;
    rx.recv()
        .await
        .ok_or_else(|| RuntimeError::Io("call was dropped while waiting".into()))
}

/// Counts a call in flight for as long as it lives (also when its future
/// is dropped).
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One call in progress: its id in the model, and how it is woken.
struct CallCtx<'a> {
    spec: &'a FunctionSpec,
    /// The call's own shape (checked), passed to the instance.
    shape: CallParams,
    call: CallId,
    wake: Option<mpsc::UnboundedReceiver<Step>>,
    image_name: String,
}

impl<R: Runtime> Worker<R> {
    /// A worker with HotFunctions' instance model.
    pub fn new(runtime: R, options: CachingOptions, worker_id: String) -> Self {
        Self::with_model(
            runtime,
            options,
            InstanceModel::HotFunctions,
            policy::scheduler::NodeInfo::DEFAULT_MEMORY_MB,
            worker_id,
        )
    }

    /// A worker with `instance_model` on a node of `node_memory_mb`; the
    /// catalog's functions are declared with their memory.
    pub fn with_model(
        runtime: R,
        options: CachingOptions,
        instance_model: InstanceModel,
        node_memory_mb: u32,
        worker_id: String,
    ) -> Self {
        Self::with_catalog(
            runtime,
            options,
            instance_model,
            node_memory_mb,
            worker_id,
            Arc::new(sample_functions::catalog().clone()),
        )
    }

    /// [`Worker::with_model`] serving the functions of `catalog` (the
    /// samples plus a catalog file's: `Catalog::with_file`). A call may
    /// ask for at most `node_memory_mb` of memory (and at most
    /// `MAX_CALL_MEMORY_MB`); the model knows each function by its
    /// catalog memory.
    pub fn with_catalog(
        runtime: R,
        options: CachingOptions,
        instance_model: InstanceModel,
        node_memory_mb: u32,
        worker_id: String,
        catalog: Arc<Catalog>,
    ) -> Self {
        let mut model = NodeModel::new(options, instance_model).with_node_memory_mb(node_memory_mb);
        for f in &catalog.functions {
            model.declare_function(&f.name, f.memory_mb);
        }
        Self {
            shared: Arc::new(Shared {
                runtime,
                catalog,
                max_call_memory_mb: node_memory_mb.min(MAX_CALL_MEMORY_MB),
                #[allow(clippy::disallowed_methods)] // the live worker's clock
                epoch: Instant::now(),
                worker_id,
                state: Mutex::new(State {
                    model,
                    images: HashMap::new(),
                    instances: HashMap::new(),
                    waiters: HashMap::new(),
                    user_images: HashMap::new(),
                    user_instances: HashMap::new(),
                }),
                image_builds: AtomicU64::new(0),
                image_evictions: AtomicU64::new(0),
                calls: AtomicU64::new(0),
                calls_in_flight: AtomicU64::new(0),
                user_stagings: AtomicU64::new(0),
                engine: tokio::sync::watch::Sender::new(None),
                background: tokio::runtime::Handle::try_current().ok(),
            }),
        }
    }

    pub fn runtime(&self) -> &R {
        &self.shared.runtime
    }

    pub fn worker_id(&self) -> &str {
        &self.shared.worker_id
    }

    /// Records what is known of the engine (`crate::health`), unless what
    /// is recorded was taken later.
    pub fn record_engine(&self, reading: EngineReading) {
        self.shared.engine.send_if_modified(|latest| {
            if latest.as_ref().is_some_and(|l| l.at > reading.at) {
                return false;
            }
            *latest = Some(reading);
            true
        });
    }

    /// The latest engine reading, if any was taken yet.
    pub fn engine_reading(&self) -> Option<EngineReading> {
        self.shared.engine.borrow().clone()
    }

    /// The latest engine reading, waiting at most `bound` for the first
    /// one (right after start); None if none came.
    pub async fn engine_reading_within(&self, bound: std::time::Duration) -> Option<EngineReading> {
        let mut rx = self.shared.engine.subscribe();
        let first = async move { rx.wait_for(Option::is_some).await.ok()?.clone() };
        tokio::time::timeout(bound, first).await.ok().flatten()
    }

    /// What this worker holds in the runtime (instances, images), as it
    /// knows them: said at shutdown when they cannot be removed.
    pub fn holdings(&self) -> (usize, usize) {
        let st = self.state();
        (
            st.instances.len() + st.user_instances.len(),
            st.images.len() + st.user_images.len(),
        )
    }

    /// The model's time: since the worker started.
    fn now(&self) -> Time {
        #[allow(clippy::disallowed_methods)] // the live worker's clock
        let now = Instant::now();
        self.time_at(now)
    }

    /// The model's time at `instant` (a clock reading taken anyway).
    fn time_at(&self, instant: Instant) -> Time {
        Time::from_duration(instant.saturating_duration_since(self.shared.epoch))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    pub fn options(&self) -> CachingOptions {
        self.state().model.options()
    }

    /// Whether a call of `name` now would be a warm REST call (image
    /// cached, instance running): no engine work, only the instance's HTTP
    /// hop. A hint for where to run the call; the call itself decides.
    pub fn serves_warm(&self, name: &str) -> bool {
        self.state().model.serves_warm(name)
    }

    /// Runs engine work (builds, instance starts, one-shot runs) on the
    /// worker's own runtime, also when the call runs on an HTTP thread, so
    /// that engine connections and child processes belong to that runtime
    /// (a warm REST call runs on the HTTP thread; if its instance expired
    /// in between, the new instance is started here). The work runs to its
    /// end even if the caller's future is dropped; calls run in tasks of
    /// their own (see `crate::http`), so callers are not cancelled.
    async fn on_background<T, F, Fut>(&self, f: F) -> Result<T, RuntimeError>
    where
        T: Send + 'static,
        F: FnOnce(Worker<R>) -> Fut,
        Fut: std::future::Future<Output = Result<T, RuntimeError>> + Send + 'static,
    {
        match &self.shared.background {
            Some(h) => h
                .spawn(f(self.clone()))
                .await
                .map_err(|e| RuntimeError::Io(format!("engine task failed: {e}")))?,
            None => f(self.clone()).await,
        }
    }

    fn spawn_background<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match &self.shared.background {
            Some(h) => drop(h.spawn(task)),
            None => drop(tokio::spawn(task)),
        }
    }

    /// Applies `effects` (decided at `now`) under the lock, then starts the
    /// runtime work.
    fn carry_out(&self, st: MutexGuard<'_, State>, effects: Effects, now: Time) {
        let mut st = st;
        // `/clear` applies its effects itself: what comes here is evicted.
        if !effects.remove_images.is_empty() {
            self.shared
                .image_evictions
                .fetch_add(effects.remove_images.len() as u64, Ordering::Relaxed);
        }
        let bg = st.apply(effects, now);
        drop(st);
        self.spawn_work(bg);
    }

    /// Tells the model how the start of `instance` went (`started`, the
    /// runtime's answer): on success `keep` stores the runtime's handle
    /// under the lock, then the model hears `instance_started`; on failure,
    /// `instance_start_failed`. Either way its effects are carried out. The
    /// one place a start is recorded, for the samples' and the users'
    /// instances, started for a call or pre-warmed.
    fn record_start<I, E>(
        &self,
        instance: InstanceId,
        started: Result<I, E>,
        keep: impl FnOnce(&mut State, I),
    ) -> Result<(), E> {
        let now = self.now();
        let mut st = self.state();
        let (effects, result) = match started {
            Ok(handle) => {
                keep(&mut st, handle);
                (st.model.instance_started(instance, now), Ok(()))
            }
            Err(e) => (st.model.instance_start_failed(instance, now), Err(e)),
        };
        self.carry_out(st, effects, now);
        result
    }

    /// Takes the call's own next step out of `effects`; if it is to wait,
    /// registers its wake-up channel first (under the lock, before any
    /// effect can resume it).
    fn own_step(&self, st: &mut State, ctx: &mut CallCtx<'_>, effects: &mut Effects) -> Step {
        own_step_of(st, ctx.call, &mut ctx.wake, effects)
    }

    /// Runs one call of `name`; the reply in the original's format.
    pub async fn execute(&self, name: &str) -> Result<WorkerReply, WorkerError> {
        self.execute_with(name, CallParams::default()).await
    }

    /// Runs one call of `name` with its own shape (`duration_ms`,
    /// `memory_mb`, `cpu_share`; see `sample_functions::workload`):
    /// checked here (a sample given a shape, or memory beyond
    /// `max_call_memory_mb`, is [`WorkerError::BadCall`]), run by the
    /// instance.
    pub async fn execute_with(
        &self,
        name: &str,
        shape: CallParams,
    ) -> Result<WorkerReply, WorkerError> {
        let spec = self
            .shared
            .catalog
            .get(name)
            .ok_or_else(|| WorkerError::UnknownFunction(name.to_string()))?;
        CallWork::resolve(spec, &shape, self.shared.max_call_memory_mb)
            .map_err(WorkerError::BadCall)?;
        // Two clock readings per call: they give ExecutionTime and the
        // model's times of the call's start and end.
        #[allow(clippy::disallowed_methods)] // ExecutionTime is measured here
        let started = Instant::now();
        self.shared.calls.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight::enter(&self.shared.calls_in_flight);
        let now = self.time_at(started);
        let (mut ctx, first) = {
            let mut st = self.state();
            let (call, mut effects) = st.model.call_arrived(name, now);
            let mut ctx = CallCtx {
                spec,
                shape,
                call,
                wake: None,
                image_name: String::new(),
            };
            let first = self.own_step(&mut st, &mut ctx, &mut effects);
            self.carry_out(st, effects, now);
            (ctx, first)
        };
        let result = self.drive(&mut ctx, first).await;
        #[allow(clippy::disallowed_methods)] // ExecutionTime is measured here
        let ended = Instant::now();
        let meta = {
            let now = self.time_at(ended);
            let mut st = self.state();
            if ctx.wake.is_some() {
                st.waiters.remove(&ctx.call);
            }
            let (meta, effects) = st.model.call_finished(ctx.call, now);
            self.carry_out(st, effects, now);
            meta
        };
        if let Err(e @ RuntimeError::EngineUnavailable(_)) = &result {
            // Shown by `/health` at once, not only after the next probe.
            self.record_engine(EngineReading::now(Err(e.to_string()), ReadingSource::Call));
        }
        let inv = result?;
        Ok(WorkerReply {
            internal_execution_time: inv.output.internal_ms(),
            result: inv.output.result,
            execution_time: ended.duration_since(started).as_millis() as i64,
            meta: ExecutionMeta {
                image_built: meta.image_built,
                using_pooled_container: meta.pooled,
                using_existing_rest_container: meta.existing_instance,
                container_name: inv.instance_name,
                image_name: ctx.image_name,
            },
        })
    }

    async fn next_step(&self, ctx: &mut CallCtx<'_>) -> Result<Step, RuntimeError> {
        next_step_of(&mut ctx.wake).await
    }

    /// The image of the call's function, as the runtime knows it, passed
    /// to `f`; its name is noted for the reply.
    fn with_image<T>(
        &self,
        ctx: &mut CallCtx<'_>,
        f: impl FnOnce(&Image) -> T,
    ) -> Result<T, RuntimeError> {
        let st = self.state();
        let img = st
            .images
            .get(ctx.spec.name.as_str())
            .ok_or_else(|| RuntimeError::Build {
                function: ctx.spec.name.clone(),
                detail: "the image was removed (cleared) before the call could use it".into(),
            })?;
        ctx.image_name.clone_from(&img.name);
        Ok(f(img))
    }

    /// Follows the model's steps until the call ran (or failed).
    async fn drive(&self, ctx: &mut CallCtx<'_>, first: Step) -> Result<Invocation, RuntimeError> {
        let rt = &self.shared.runtime;
        let name = ctx.spec.name.as_str();
        let mut step = first;
        let mut replaced = false;
        loop {
            step = match step {
                Step::Wait => self.next_step(ctx).await?,
                Step::BuildImage => {
                    let function = ctx.spec.clone();
                    let built = self
                        .on_background(
                            |w| async move { w.shared.runtime.build_image(&function).await },
                        )
                        .await;
                    let now = self.now();
                    let mut st = self.state();
                    match built {
                        Ok(img) => {
                            self.shared.image_builds.fetch_add(1, Ordering::Relaxed);
                            let bytes = img.bytes;
                            tracing::info!("image {} built ({bytes} bytes)", img.name);
                            st.images.insert(Arc::from(name), img);
                            let mut effects = st.model.image_built(name, bytes, now);
                            let next = self.own_step(&mut st, ctx, &mut effects);
                            self.carry_out(st, effects, now);
                            next
                        }
                        Err(e) => {
                            let effects = st.model.image_build_failed(name, now);
                            self.carry_out(st, effects, now);
                            return Err(e);
                        }
                    }
                }
                Step::Start { instance, kind } => {
                    let image = self.with_image(ctx, Image::clone)?;
                    let kind = runtime_kind(kind);
                    let started = self
                        .on_background(|w| async move {
                            w.shared.runtime.start_instance(&image, kind).await
                        })
                        .await;
                    self.record_start(instance, started, |st, inst| {
                        tracing::info!("{:?} instance {} of {name} started", inst.kind, inst.name);
                        st.instances.insert(instance, inst);
                    })?;
                    Step::Run { instance }
                }
                Step::Run { instance } => {
                    self.with_image(ctx, |_| ())?;
                    let inst = self.state().instances.get(&instance).cloned();
                    let r = match &inst {
                        Some(inst) => rt.invoke_with(inst, ctx.shape).await,
                        None => Err(RuntimeError::Instance {
                            instance: instance.to_string(),
                            detail: "removed before the call could use it".into(),
                        }),
                    };
                    match r {
                        // The instance died or is unreachable (not the
                        // function failing): the model replaces it, once.
                        Err(RuntimeError::Instance { detail, .. }) if !replaced => {
                            replaced = true;
                            tracing::warn!(
                                "instance {instance} of {name} unusable ({detail}); replacing it"
                            );
                            let now = self.now();
                            let mut st = self.state();
                            let mut effects = st.model.instance_died(ctx.call, now);
                            let next = self.own_step(&mut st, ctx, &mut effects);
                            self.carry_out(st, effects, now);
                            next
                        }
                        r => return r,
                    }
                }
                Step::RunOnce { .. } => {
                    let image = self.with_image(ctx, Image::clone)?;
                    let shape = ctx.shape;
                    return self
                        .on_background(|w| async move {
                            w.shared.runtime.run_once_with(&image, shape).await
                        })
                        .await;
                }
            };
        }
    }

    /// Removes what the effects removed and starts what they pre-warm.
    fn spawn_work(&self, mut bg: Background) {
        if bg.is_empty() {
            return;
        }
        self.spawn_user_work(&mut bg);
        for (id, image, kind) in bg.prewarm {
            let w = self.clone();
            self.spawn_background(async move {
                let r = w.shared.runtime.start_instance(&image, kind).await;
                let kept = w.record_start(id, r, |st, inst| {
                    // One per pooled call (the pool refills): debug.
                    tracing::debug!(
                        "pre-warmed {kind:?} instance {} of {} started",
                        inst.name,
                        image.function
                    );
                    st.instances.insert(id, inst);
                });
                if let Err(e) = kept {
                    tracing::warn!("pre-warming {} failed: {e}", image.function);
                }
            });
        }
        if bg.remove_instances.is_empty() && bg.remove_images.is_empty() {
            return;
        }
        let w = self.clone();
        self.spawn_background(async move {
            let rt = &w.shared.runtime;
            for i in bg.remove_instances {
                if let Err(e) = rt.remove_instance(&i).await {
                    tracing::warn!("removing instance {}: {e}", i.name);
                }
            }
            for img in bg.remove_images {
                tracing::info!("image {} removed ({} bytes)", img.name, img.bytes);
                if let Err(e) = rt.remove_image(&img).await {
                    tracing::warn!("removing image {}: {e}", img.name);
                }
            }
        });
    }

    /// Runs the model's timers that are due (idle REST and keep-alive
    /// instances past their lifetime, keep-alive pre-warms); called by a
    /// periodic timer. Returns how many instances expired.
    pub fn tick(&self) -> usize {
        let now = self.now();
        let mut st = self.state();
        if st.model.next_timer().is_none_or(|t| t > now) {
            return 0;
        }
        let effects = st.model.timer(now);
        let n = effects.remove_instances.len();
        if n > 0 {
            tracing::info!("{n} idle instance(s) expired");
        }
        if !effects.prewarm.is_empty() {
            tracing::info!("pre-warming {} instance(s)", effects.prewarm.len());
        }
        self.carry_out(st, effects, now);
        n
    }

    /// `/configure`: applies query pairs; returns (message, new state).
    pub fn configure<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(String, CachingOptions), WorkerError> {
        let now = self.now();
        let mut st = self.state();
        let mut options = st.model.options();
        let changed = options.apply_query(pairs)?;
        let (applied, effects) = st.model.set_options(options, now);
        debug_assert_eq!(changed, applied);
        self.carry_out(st, effects, now);
        let message = if changed {
            "configure changed"
        } else {
            "nothing changed"
        };
        Ok((message.to_string(), options))
    }

    /// `/clear`: forgets pools and REST instances (and with `reset_images`
    /// the images), then removes everything carrying this worker's mark
    /// (also instances that calls still use: those calls fail, as the
    /// original's forced removal made them).
    pub async fn clear(&self, reset_images: bool) -> Result<Removed, WorkerError> {
        {
            let now = self.now();
            let mut st = self.state();
            let effects = st.model.clear(reset_images, now);
            // The samples' handles are dropped: everything goes below at
            // once. Users' functions' instances (and with `reset_images`
            // their staged images) go with their handles.
            let bg = st.apply(effects, now);
            drop(st);
            self.spawn_work(Background {
                remove_user_images: bg.remove_user_images,
                remove_user_instances: bg.remove_user_instances,
                ..Background::default()
            });
        }
        let removed = self.shared.runtime.remove_all_own(reset_images).await?;
        tracing::info!("cleared (images too: {reset_images}): removed {removed:?}");
        Ok(removed)
    }

    /// `/prepare`: builds every function's image that is not cached (or
    /// being built). Returns (built, failures as "NAME: error").
    pub async fn prepare(&self) -> (usize, Vec<String>) {
        let mut built = 0;
        let mut failed = Vec::new();
        for spec in &self.shared.catalog.functions {
            match self.build_if_missing(spec).await {
                Ok(true) => built += 1,
                Ok(false) => {}
                Err(e) => failed.push(format!("{}: {e}", spec.name)),
            }
        }
        (built, failed)
    }

    /// Builds `spec`'s image unless it is cached or being built (then
    /// false).
    async fn build_if_missing(&self, spec: &FunctionSpec) -> Result<bool, RuntimeError> {
        if !self.state().model.begin_build(&spec.name) {
            return Ok(false);
        }
        let function = spec.clone();
        let r = self
            .on_background(|w| async move { w.shared.runtime.build_image(&function).await })
            .await;
        let now = self.now();
        let mut st = self.state();
        let (effects, r) = match r {
            Ok(img) => {
                self.shared.image_builds.fetch_add(1, Ordering::Relaxed);
                tracing::info!("image {} built ({} bytes)", img.name, img.bytes);
                let bytes = img.bytes;
                st.images.insert(Arc::from(spec.name.as_str()), img);
                (st.model.image_built(&spec.name, bytes, now), Ok(true))
            }
            Err(e) => (st.model.image_build_failed(&spec.name, now), Err(e)),
        };
        self.carry_out(st, effects, now);
        r
    }

    /// `function`'s instances on this node: (ready, starting) (the node
    /// model's count: instances it owns, not one-shot ones).
    pub fn function_instances(&self, function: &str) -> Result<(usize, usize), WorkerError> {
        self.spec(function)?;
        Ok(self.state().model.function_instances(function))
    }

    /// Every function with instances on this node: (name, ready, starting).
    pub fn instances_by_function(&self) -> Vec<(String, usize, usize)> {
        self.state()
            .model
            .instances_by_function()
            .into_iter()
            .map(|(f, ready, starting)| (f.to_string(), ready, starting))
            .collect()
    }

    fn spec(&self, function: &str) -> Result<&FunctionSpec, WorkerError> {
        self.shared
            .catalog
            .get(function)
            .ok_or_else(|| WorkerError::UnknownFunction(function.to_string()))
    }

    /// Scale to zero: removes every instance of `function` on this node
    /// (busy ones when their calls end; `NodeModel::remove_function_instances`).
    /// Returns how many go now.
    pub fn remove_function_instances(&self, function: &str) -> Result<usize, WorkerError> {
        self.spec(function)?;
        let now = self.now();
        let mut st = self.state();
        let effects = st.model.remove_function_instances(function, now);
        let n = effects.remove_instances.len();
        tracing::info!(
            "scale to zero: {function}: {n} instance(s) removed now (busy ones when idle)"
        );
        self.carry_out(st, effects, now);
        Ok(n)
    }

    /// A wake: starts instances of `function` up to `n` on this node
    /// (building its image first if needed; `NodeModel::start_instances`).
    /// Returns how many start (in the background), or why none can.
    pub async fn start_instances(&self, function: &str, n: usize) -> Result<usize, WorkerError> {
        let spec = self.spec(function)?;
        let mut built = false;
        loop {
            let refused = match self.try_start_instances(function, n) {
                Ok(started) => return Ok(started),
                Err(refused) => refused,
            };
            match refused {
                node::StartRefused::ImageNotCached if !built => {
                    built = true;
                    if !self.build_if_missing(spec).await? {
                        return Err(WorkerError::Busy(format!(
                            "the image of {function} is being built; ask again once it is"
                        )));
                    }
                }
                node::StartRefused::ImageNotCached => {
                    return Err(WorkerError::Busy(format!(
                        "the image of {function} was evicted as soon as built; ask again"
                    )))
                }
                node::StartRefused::PerCallInstances => {
                    return Err(WorkerError::NothingToStart(format!(
                        "{function}: this worker runs every call in an instance of its own \
                         (HotFunctions without REST mode): there is no instance to start ahead"
                    )))
                }
            }
        }
    }

    /// One try of a wake: starts instances of `function` up to `n` if
    /// the model can (`NodeModel::start_instances`).
    fn try_start_instances(&self, function: &str, n: usize) -> Result<usize, node::StartRefused> {
        let now = self.now();
        let mut st = self.state();
        let effects = st.model.start_instances(function, n, now)?;
        let started = effects.prewarm.len();
        tracing::info!("wake: {function}: starting {started} instance(s) (up to {n})");
        self.carry_out(st, effects, now);
        Ok(started)
    }

    /// Counters for `/health`.
    pub fn status(&self) -> WorkerStatus {
        let st = self.state();
        WorkerStatus {
            worker_id: self.shared.worker_id.clone(),
            image_builds: self.shared.image_builds.load(Ordering::Relaxed),
            image_evictions: self.shared.image_evictions.load(Ordering::Relaxed),
            images: st.model.images(),
            image_bytes: st.model.image_bytes(),
            image_stored_bytes: st.images.values().map(|i| i.stored_bytes).sum(),
            pooled_instances: st.model.pooled_instances(),
            rest_instances: st.model.rest_instances(),
            instance_model: st.model.instance_model(),
            keep_alive_busy: st.model.keep_alive_instances().0,
            keep_alive_idle: st.model.keep_alive_instances().1,
            memory_in_use_mb: st.model.memory_in_use_mb(),
            node_memory_mb: st.model.node_memory_mb(),
            memory_evictions: st.model.memory_evictions(),
            calls: self.shared.calls.load(Ordering::Relaxed),
            calls_in_flight: self.shared.calls_in_flight.load(Ordering::Relaxed),
            functions: self.shared.catalog.functions.len(),
            max_call_memory_mb: self.shared.max_call_memory_mb,
            time_scale: self.shared.runtime.options().time_scale,
            package_scale: self.shared.runtime.options().package_scale,
            function_sched: self.shared.runtime.function_sched(),
            state: st.model.options(),
        }
    }

    /// What `GET /metrics` reads now (`crate::metrics`): one pass under
    /// the state lock, per scrape.
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let st = self.state();
        let (busy, idle) = st.model.keep_alive_instances();
        let mut per_function: HashMap<(&str, &'static str), u64> = HashMap::new();
        for inst in st.instances.values() {
            let kind = match inst.kind {
                InstanceKind::Pooled => "pooled",
                InstanceKind::Rest => "long_lived",
                InstanceKind::OneShot => "one_shot",
            };
            *per_function
                .entry((inst.function.as_str(), kind))
                .or_default() += 1;
        }
        crate::metrics::Snapshot {
            calls_in_flight: self.shared.calls_in_flight.load(Ordering::Relaxed),
            instances: vec![
                ("pooled", st.model.pooled_instances() as u64),
                ("rest", st.model.rest_instances() as u64),
                ("keep_alive_busy", busy),
                ("keep_alive_idle", idle),
            ],
            function_instances: per_function
                .into_iter()
                .map(|((f, kind), n)| (f.to_string(), kind, n))
                .collect(),
            images: st.model.images() as u64,
            image_bytes: st.model.image_bytes(),
            image_stored_bytes: st.images.values().map(|i| i.stored_bytes).sum(),
            image_builds: self.shared.image_builds.load(Ordering::Relaxed),
            image_evictions: self.shared.image_evictions.load(Ordering::Relaxed),
            memory_evictions: st.model.memory_evictions(),
        }
    }
}
