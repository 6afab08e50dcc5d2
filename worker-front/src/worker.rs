//! The worker core: turns the pure policies' answers into runtime actions.
//!
//! One call (`/execute?name=F`), as in HotFunctions' `runner.go`
//! (`RunFunction` then `manageCaches`):
//! 1. ask the [`ImageCache`] whether F's image is cached (and pin it); if
//!    not, build it (single flight per function: concurrent callers await
//!    the one build through an async per-function lock, no polling;
//!    `ImageBuilt` is true for every call that had to wait for a build);
//! 2. REST mode: use F's running instance ([`RestInstances`]) or start it
//!    (one starter, the others await it); otherwise take a pre-warmed pool
//!    instance if [`ContainerPool`] has one ready, else run a fresh one-shot
//!    instance;
//! 3. after the call: unpin, evict images over the byte limit (and their
//!    pools and idle REST instances), and reconcile the pools (create or
//!    remove pre-warmed instances in the background).
//!
//! A timer calls [`Worker::expire_rest`] so that idle REST instances go
//! after their lifetime even when no further call comes. `/clear` bumps a
//! generation number, so that background work started before it (a pool
//! instance being created, a REST instance being started) is removed
//! instead of joining the new state.
//!
//! All policy state sits behind one `std::sync::Mutex` that is never held
//! across an `.await`; the runtime does the slow work outside it.

use crate::runtime::{Image, Instance, InstanceKind, Invocation, Removed, Runtime, RuntimeError};
use policy::node::container_pool::{ContainerPool, PoolPlan};
use policy::node::image_cache::{EvictedImage, ImageCache};
use policy::node::options::{CachingOptions, OptionsError};
use policy::node::rest_instances::{RestAcquire, RestInstances};
use protocol::{ExecutionMeta, FunctionOutput, WorkerReply};
use sample_functions::{Catalog, FunctionSpec};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Errors of the worker's operations, with their HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("unknown function {0:?}")]
    UnknownFunction(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl WorkerError {
    pub fn http_status(&self) -> u16 {
        match self {
            WorkerError::UnknownFunction(_) => 404,
            WorkerError::BadRequest(_) | WorkerError::Options(_) => 400,
            WorkerError::Runtime(e) => e.http_status(),
        }
    }
}

#[derive(Debug)]
struct State {
    options: CachingOptions,
    generation: u64,
    cache: ImageCache,
    pool: ContainerPool,
    rest: RestInstances,
    images: HashMap<String, Image>,
    pooled: HashMap<String, Vec<Instance>>,
    rest_instances: HashMap<String, Instance>,
}

impl State {
    fn new(options: CachingOptions) -> Self {
        Self {
            options,
            generation: 0,
            cache: ImageCache::new(options.image_limit_bytes()),
            pool: ContainerPool::new(
                options.pool_function_limit(),
                options.container_pool_num as usize,
            ),
            rest: RestInstances::new(options.rest_lifetime()),
            images: HashMap::new(),
            pooled: HashMap::new(),
            rest_instances: HashMap::new(),
        }
    }

    /// Applies evicted images: forget them, their pools and idle REST
    /// instances; returns what the runtime must remove.
    fn evict(&mut self, evicted: Vec<EvictedImage>, cleanup: &mut Cleanup) {
        for e in evicted {
            if let Some(img) = self.images.remove(&e.function) {
                cleanup.images.push(img);
            }
            self.pool.forget(&e.function);
            if let Some(v) = self.pooled.remove(&e.function) {
                cleanup.instances.extend(v);
            }
            if !self.cache.is_pinned(&e.function) {
                self.rest.remove(&e.function);
                if let Some(i) = self.rest_instances.remove(&e.function) {
                    cleanup.instances.push(i);
                }
            }
        }
    }
}

/// Things to remove in the background.
#[derive(Debug, Default)]
struct Cleanup {
    images: Vec<Image>,
    instances: Vec<Instance>,
}

/// How a call was accounted in the policies (to finish it symmetrically).
#[derive(Debug, Clone, Copy, Default)]
struct CallTrack {
    rest: bool,
    pool: bool,
}

enum Mode {
    Rest(RestAcquire),
    Pooled(Option<Instance>),
    Fresh,
}

/// Counters reported by `/health`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerStatus {
    pub worker_id: String,
    /// Image builds since start (single flight: one per miss, not per caller).
    pub image_builds: u64,
    pub images: usize,
    pub image_bytes: u64,
    pub pooled_instances: usize,
    pub rest_instances: usize,
    pub calls: u64,
    /// `HF_TIME_SCALE` and `HF_PACKAGE_SCALE` of the functions.
    pub time_scale: f64,
    pub package_scale: f64,
    pub state: CachingOptions,
}

struct Shared<R> {
    runtime: R,
    catalog: &'static Catalog,
    epoch: Instant,
    worker_id: String,
    state: Mutex<State>,
    build_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    rest_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    image_builds: AtomicU64,
    calls: AtomicU64,
    /// Where background work (clean-up, pre-warming) runs: the runtime the
    /// worker was made on, also when a call runs on an HTTP thread.
    background: Option<tokio::runtime::Handle>,
}

/// The worker: policies + a runtime. Cheap to clone.
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

fn keyed_lock(
    map: &Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    key: &str,
) -> Arc<tokio::sync::Mutex<()>> {
    Arc::clone(lock(map).entry(key.to_string()).or_default())
}

impl<R: Runtime> Worker<R> {
    pub fn new(runtime: R, options: CachingOptions, worker_id: String) -> Self {
        Self {
            shared: Arc::new(Shared {
                runtime,
                catalog: sample_functions::catalog(),
                #[allow(clippy::disallowed_methods)] // the live worker's clock
                epoch: Instant::now(),
                worker_id,
                state: Mutex::new(State::new(options)),
                build_locks: Mutex::new(HashMap::new()),
                rest_locks: Mutex::new(HashMap::new()),
                image_builds: AtomicU64::new(0),
                calls: AtomicU64::new(0),
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

    /// The policies' time: since the worker started.
    fn now(&self) -> Duration {
        self.shared.epoch.elapsed()
    }

    /// The policies' time at `instant` (a clock reading taken anyway).
    fn time_at(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.shared.epoch)
    }

    pub fn options(&self) -> CachingOptions {
        lock(&self.shared.state).options
    }

    /// Whether a call of `name` now would be a warm REST call (image
    /// cached, instance running): no engine work, only the instance's HTTP
    /// hop. A hint for where to run the call; the call itself decides.
    pub fn serves_warm(&self, name: &str) -> bool {
        let st = lock(&self.shared.state);
        st.options.using_rest_mode
            && st.images.contains_key(name)
            && st.rest_instances.contains_key(name)
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

    async fn run_once(&self, image: &Image) -> Result<Invocation, RuntimeError> {
        let image = image.clone();
        self.on_background(|w| async move { w.shared.runtime.run_once(&image).await })
            .await
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

    /// Runs one call of `name`; the reply in the original's format.
    pub async fn execute(&self, name: &str) -> Result<WorkerReply, WorkerError> {
        let spec = self
            .shared
            .catalog
            .get(name)
            .ok_or_else(|| WorkerError::UnknownFunction(name.to_string()))?;
        // Two clock readings per call: they give ExecutionTime and the
        // policies' times of the call's start and end.
        #[allow(clippy::disallowed_methods)] // ExecutionTime is measured here
        let started = Instant::now();
        self.shared.calls.fetch_add(1, Ordering::Relaxed);
        let now = self.time_at(started);
        let mut track = CallTrack::default();
        let (generation, cached, mode) = {
            let mut st = lock(&self.shared.state);
            let cached = if st.cache.call_started(name, now) {
                st.images.get(name).cloned()
            } else {
                None
            };
            let mode = if st.options.using_rest_mode {
                track.rest = true;
                Mode::Rest(st.rest.call_started(name, now))
            } else if st.pool.is_enabled() {
                track.pool = true;
                let took = st.pool.call_started(name, now);
                Mode::Pooled(if took {
                    st.pooled.get_mut(name).and_then(Vec::pop)
                } else {
                    None
                })
            } else {
                Mode::Fresh
            };
            (st.generation, cached, mode)
        };
        let result = self.serve(spec, generation, cached, mode, &mut track).await;
        #[allow(clippy::disallowed_methods)] // ExecutionTime is measured here
        let ended = Instant::now();
        self.finish(name, generation, track, self.time_at(ended));
        let (output, meta) = result?;
        Ok(WorkerReply {
            internal_execution_time: output.internal_ms(),
            result: output.result,
            execution_time: ended.duration_since(started).as_millis() as i64,
            meta,
        })
    }

    async fn serve(
        &self,
        spec: &FunctionSpec,
        generation: u64,
        cached: Option<Image>,
        mode: Mode,
        track: &mut CallTrack,
    ) -> Result<(FunctionOutput, ExecutionMeta), RuntimeError> {
        let mut meta = ExecutionMeta::default();
        let image = match cached {
            Some(i) => i,
            None => {
                meta.image_built = true;
                self.ensure_image(spec).await?
            }
        };
        meta.image_name = image.name.clone();
        let rt = &self.shared.runtime;
        let inv = match mode {
            Mode::Rest(first) => {
                // At most one retry: when the instance turns out to be dead
                // (not when the function fails), it is forgotten and a new
                // one is started for this call.
                let mut acquire = first;
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let (inst, existing, orphan) = self
                        .rest_instance(spec, &image, acquire, generation, track)
                        .await?;
                    meta.using_existing_rest_container = existing;
                    let r = rt.invoke(&inst).await;
                    let dead = matches!(r, Err(RuntimeError::Instance { .. }));
                    let mut forgotten = false;
                    if orphan || dead {
                        let mut st = lock(&self.shared.state);
                        if !orphan
                            && st.rest_instances.get(&spec.name).map(|i| &i.id) == Some(&inst.id)
                        {
                            st.rest_instances.remove(&spec.name);
                            st.rest.remove(&spec.name);
                            track.rest = false;
                            forgotten = true;
                        }
                        drop(st);
                        self.spawn_cleanup(Cleanup {
                            images: Vec::new(),
                            instances: vec![inst],
                        });
                    }
                    if forgotten && attempt < 2 {
                        let mut st = lock(&self.shared.state);
                        if st.generation == generation && st.options.using_rest_mode {
                            tracing::warn!(
                                "REST instance of {} was dead; starting a new one",
                                spec.name
                            );
                            acquire = st.rest.call_started(&spec.name, self.now());
                            track.rest = true;
                            continue;
                        }
                    }
                    break r?;
                }
            }
            Mode::Pooled(Some(inst)) => {
                let r = rt.invoke(&inst).await;
                let name = inst.name.clone();
                self.spawn_cleanup(Cleanup {
                    images: Vec::new(),
                    instances: vec![inst],
                });
                match r {
                    Ok(inv) => {
                        meta.using_pooled_container = true;
                        inv
                    }
                    // The pooled instance died or is unreachable (not the
                    // function failing): serve the call cold instead.
                    Err(RuntimeError::Instance { detail, .. }) => {
                        tracing::warn!("pooled instance {name} unusable ({detail}); running cold");
                        self.run_once(&image).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            Mode::Pooled(None) | Mode::Fresh => self.run_once(&image).await?,
        };
        meta.container_name = inv.instance_name;
        Ok((inv.output, meta))
    }

    /// The image of `spec`, built once however many callers wait for it.
    async fn ensure_image(&self, spec: &FunctionSpec) -> Result<Image, RuntimeError> {
        let gate = keyed_lock(&self.shared.build_locks, &spec.name);
        let _building = gate.lock().await;
        if let Some(img) = lock(&self.shared.state).images.get(&spec.name) {
            return Ok(img.clone());
        }
        let function = spec.clone();
        let img = self
            .on_background(|w| async move { w.shared.runtime.build_image(&function).await })
            .await?;
        self.shared.image_builds.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let mut cleanup = Cleanup::default();
        {
            let mut st = lock(&self.shared.state);
            st.images.insert(spec.name.clone(), img.clone());
            let evicted = st.cache.image_built(&spec.name, img.bytes, now);
            st.evict(evicted, &mut cleanup);
        }
        self.spawn_cleanup(cleanup);
        Ok(img)
    }

    /// The REST instance for this call: (instance, was it already running,
    /// is it an orphan of a cleared generation to remove after the call).
    async fn rest_instance(
        &self,
        spec: &FunctionSpec,
        image: &Image,
        acquire: RestAcquire,
        generation: u64,
        track: &mut CallTrack,
    ) -> Result<(Instance, bool, bool), RuntimeError> {
        let name = &spec.name;
        if acquire == RestAcquire::Existing {
            if let Some(i) = lock(&self.shared.state).rest_instances.get(name) {
                return Ok((i.clone(), true, false));
            }
        }
        let gate = keyed_lock(&self.shared.rest_locks, name);
        let _starting = gate.lock().await;
        if let Some(i) = lock(&self.shared.state).rest_instances.get(name) {
            return Ok((i.clone(), false, false));
        }
        let start = image.clone();
        match self
            .on_background(|w| async move {
                w.shared
                    .runtime
                    .start_instance(&start, InstanceKind::Rest)
                    .await
            })
            .await
        {
            Ok(inst) => {
                let now = self.now();
                let mut st = lock(&self.shared.state);
                if st.generation == generation && st.options.using_rest_mode {
                    st.rest_instances.insert(name.clone(), inst.clone());
                    st.rest.started(name, now);
                    Ok((inst, false, false))
                } else {
                    Ok((inst, false, true))
                }
            }
            Err(e) => {
                let mut st = lock(&self.shared.state);
                if st.generation == generation {
                    st.rest.start_failed(name);
                }
                track.rest = false;
                Err(e)
            }
        }
    }

    /// Ends a call (at `now`) in the policies and applies what they decide.
    fn finish(&self, name: &str, generation: u64, track: CallTrack, now: Duration) {
        let mut cleanup = Cleanup::default();
        let mut plan = PoolPlan::default();
        {
            let mut st = lock(&self.shared.state);
            let evicted = st.cache.call_finished(name, now);
            if st.generation == generation {
                if track.rest {
                    st.rest.call_finished(name, now);
                }
                if track.pool && !st.options.using_rest_mode {
                    plan = st.pool.call_finished(name, now);
                }
            }
            st.evict(evicted, &mut cleanup);
            self.take_plan_removals(&mut st, &mut plan, &mut cleanup);
        }
        self.spawn_cleanup(cleanup);
        self.spawn_pool_creations(plan, generation);
    }

    fn take_plan_removals(&self, st: &mut State, plan: &mut PoolPlan, cleanup: &mut Cleanup) {
        for (f, n) in std::mem::take(&mut plan.remove) {
            if let Some(v) = st.pooled.get_mut(&f) {
                let keep = v.len().saturating_sub(n);
                cleanup.instances.extend(v.drain(keep..));
            }
        }
    }

    fn spawn_pool_creations(&self, plan: PoolPlan, generation: u64) {
        for (f, n) in plan.create {
            let image = lock(&self.shared.state).images.get(&f).cloned();
            let Some(image) = image else {
                let mut st = lock(&self.shared.state);
                for _ in 0..n {
                    st.pool.instance_failed(&f);
                }
                continue;
            };
            for _ in 0..n {
                let w = self.clone();
                let image = image.clone();
                self.spawn_background(async move {
                    let r = w
                        .shared
                        .runtime
                        .start_instance(&image, InstanceKind::Pooled)
                        .await;
                    let mut st = lock(&w.shared.state);
                    let same = st.generation == generation;
                    match r {
                        Ok(inst) => {
                            if same && st.pool.instance_ready(&image.function) {
                                st.pooled
                                    .entry(image.function.clone())
                                    .or_default()
                                    .push(inst);
                            } else {
                                drop(st);
                                w.spawn_cleanup(Cleanup {
                                    images: Vec::new(),
                                    instances: vec![inst],
                                });
                            }
                        }
                        Err(e) => {
                            if same {
                                st.pool.instance_failed(&image.function);
                            }
                            tracing::warn!("pre-warming {} failed: {e}", image.function);
                        }
                    }
                });
            }
        }
    }

    fn spawn_cleanup(&self, cleanup: Cleanup) {
        if cleanup.images.is_empty() && cleanup.instances.is_empty() {
            return;
        }
        let w = self.clone();
        self.spawn_background(async move {
            let rt = &w.shared.runtime;
            for i in cleanup.instances {
                if let Err(e) = rt.remove_instance(&i).await {
                    tracing::warn!("removing instance {}: {e}", i.name);
                }
            }
            for img in cleanup.images {
                tracing::info!("image {} evicted ({} bytes)", img.name, img.bytes);
                if let Err(e) = rt.remove_image(&img).await {
                    tracing::warn!("removing image {}: {e}", img.name);
                }
            }
        });
    }

    /// Removes REST instances idle for their lifetime (called by a timer).
    pub fn expire_rest(&self) -> usize {
        let now = self.now();
        let mut cleanup = Cleanup::default();
        {
            let mut st = lock(&self.shared.state);
            for f in st.rest.expire(now) {
                if let Some(i) = st.rest_instances.remove(&f) {
                    tracing::info!("REST instance {} expired", i.name);
                    cleanup.instances.push(i);
                }
            }
        }
        let n = cleanup.instances.len();
        self.spawn_cleanup(cleanup);
        n
    }

    /// `/configure`: applies query pairs; returns (message, new state).
    pub fn configure<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(String, CachingOptions), WorkerError> {
        let now = self.now();
        let mut cleanup = Cleanup::default();
        let (changed, options, plan, generation) = {
            let mut st = lock(&self.shared.state);
            let old = st.options;
            let changed = st.options.apply_query(pairs)?;
            let new = st.options;
            let mut plan = PoolPlan::default();
            if changed {
                let evicted = st.cache.set_limit(new.image_limit_bytes(), now);
                st.evict(evicted, &mut cleanup);
                st.rest.set_lifetime(new.rest_lifetime());
                if old.using_rest_mode && !new.using_rest_mode {
                    st.rest.clear();
                    let gone: Vec<Instance> = st.rest_instances.drain().map(|(_, i)| i).collect();
                    cleanup.instances.extend(gone);
                }
                if new.using_rest_mode {
                    st.pool = ContainerPool::new(
                        new.pool_function_limit(),
                        new.container_pool_num as usize,
                    );
                    let gone: Vec<Instance> = st.pooled.drain().flat_map(|(_, v)| v).collect();
                    cleanup.instances.extend(gone);
                } else {
                    plan = st
                        .pool
                        .set_limits(new.pool_function_limit(), new.container_pool_num as usize);
                    let mut st_plan = plan;
                    self.take_plan_removals(&mut st, &mut st_plan, &mut cleanup);
                    plan = st_plan;
                }
            }
            (changed, new, plan, st.generation)
        };
        self.spawn_cleanup(cleanup);
        self.spawn_pool_creations(plan, generation);
        let message = if changed {
            "configure changed"
        } else {
            "nothing changed"
        };
        Ok((message.to_string(), options))
    }

    /// `/clear`: forgets pools and REST instances (and with `reset_images`
    /// the images), then removes everything carrying this worker's mark.
    pub async fn clear(&self, reset_images: bool) -> Result<Removed, WorkerError> {
        {
            let mut st = lock(&self.shared.state);
            let options = st.options;
            st.generation += 1;
            st.pool = ContainerPool::new(
                options.pool_function_limit(),
                options.container_pool_num as usize,
            );
            st.rest = RestInstances::new(options.rest_lifetime());
            st.pooled.clear();
            st.rest_instances.clear();
            if reset_images {
                st.images.clear();
                st.cache.clear();
            }
        }
        Ok(self.shared.runtime.remove_all_own(reset_images).await?)
    }

    /// `/prepare`: builds every function's image that is not cached.
    /// Returns (built, failures as "NAME: error").
    pub async fn prepare(&self) -> (usize, Vec<String>) {
        let mut built = 0;
        let mut failed = Vec::new();
        for spec in &self.shared.catalog.functions {
            if lock(&self.shared.state).images.contains_key(&spec.name) {
                continue;
            }
            match self.ensure_image(spec).await {
                Ok(_) => built += 1,
                Err(e) => failed.push(format!("{}: {e}", spec.name)),
            }
        }
        (built, failed)
    }

    /// Counters for `/health`.
    pub fn status(&self) -> WorkerStatus {
        let st = lock(&self.shared.state);
        WorkerStatus {
            worker_id: self.shared.worker_id.clone(),
            image_builds: self.shared.image_builds.load(Ordering::Relaxed),
            images: st.images.len(),
            image_bytes: st.cache.total_bytes(),
            pooled_instances: st.pooled.values().map(Vec::len).sum(),
            rest_instances: st.rest_instances.len(),
            calls: self.shared.calls.load(Ordering::Relaxed),
            time_scale: self.shared.runtime.options().time_scale,
            package_scale: self.shared.runtime.options().package_scale,
            state: st.options,
        }
    }
}
