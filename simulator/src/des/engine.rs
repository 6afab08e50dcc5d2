//! The simulation core: a virtual clock, the event queue, the scheduler and
//! one worker model per node.
//!
//! One call's life: it arrives at its scenario time; the scheduler (the
//! same struct the balancer runs, `policy::scheduler::build`) picks a
//! node; the node's worker policies (the same types the live worker runs,
//! `policy::node`) decide whether the image must be built, whether a
//! pooled or REST-mode instance serves it, or (Lambda model) whether an
//! idle instance is reused; the cost profile turns those answers into
//! costs; then the function's phases run (CPU phases under processor
//! sharing of the node's cores, sleeps without CPU); at the end the
//! policies and the scheduler hear of the completion and a log line is
//! written.
//!
//! Costs: an image build is CPU work of `image_build_ms(package)` ms on
//! one idle core, shared with the calls' CPU phases and other builds on
//! the same cores (staging a package or an engine build is CPU-bound; on
//! a live 2-core testbed, concurrent first calls make each other's builds
//! longer). Calls that arrive during a build wait for it (single flight)
//! and then take their instance, as the live worker does. Instance starts
//! are delays: the profile's start cost plus `instance_load_ms_per_mb` per
//! MB of package (an instance loads its package).
//!
//! Ordering: events due at the same virtual microsecond run in the order
//! they were scheduled; scenario arrivals due at a time run after every
//! queued event due at that time (completions before arrivals), and among
//! themselves in (start time, file order). Randomness (exponential service
//! draws) comes from one ChaCha8 RNG seeded from the run's seed.
//!
//! Times: the worker's end of a call is when its last phase ends; the
//! scheduler hears `finished` then; the client's end (the log line's end)
//! is `network_ms + balancer_ms` of the profile later (the client's
//! transport and the balancer hop, both measured as round trips by
//! `simulator calibrate`).
//!
//! The run stops when the last call has completed; pending timers (pool
//! refills, instance expiries) after that point change nothing that is
//! reported. Time averages of instance counts are over `[0, last
//! completion]`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use policy::node::container_pool::ContainerPool;
use policy::node::image_cache::ImageCache;
use policy::node::keep_alive::{Acquired, Expired, KeepAlivePool};
use policy::node::options::CachingOptions;
use policy::node::rest_instances::{RestAcquire, RestInstances};
use policy::scheduler::{self, Completion, Membership, NodeInfo, Params, Scheduler};
use protocol::ScenarioEvent;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1};
use sample_functions::catalog::Phase;
use sample_functions::payload::{scaled_bytes, valid_package_scale};
use serde::Serialize;

use super::cpu::SharedCpu;
use super::function::FunctionModel;
use super::output::{CallMeta, LogWriter};
use super::profile::CostProfile;
use super::queue::{EventQueue, Micros};

/// How instances serve calls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum InstanceModel {
    /// HotFunctions' worker: per-call instances (with the optional
    /// pre-warmed pool), or with `USING_REST_MODE` one shared long-lived
    /// instance per function per node.
    HotFunctions,
    /// AWS Lambda: one call per instance, idle instances kept for
    /// `keep_alive`, most recently created idle instance reused
    /// ([`policy::node::keep_alive`]).
    Lambda {
        #[serde(rename = "keep_alive_s")]
        #[serde(serialize_with = "serialize_secs")]
        keep_alive: Duration,
    },
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Everything that defines a run (besides the scenario).
#[derive(Debug, Clone, Serialize)]
pub struct DesConfig {
    /// Scheduler name (`rr`, `ll`, `ch`/`hash`, `pasch`, `ours`, `tradeoff`).
    pub algorithm: String,
    /// The balancer's parameters; `params.seed` seeds the scheduler and the
    /// simulator's own RNG.
    pub params: Params,
    /// Worker nodes, ids `0..nodes`.
    pub nodes: u32,
    /// Capacity told to the scheduler per node.
    pub node_capacity: u32,
    /// Cores per node (processor sharing).
    pub cores: u32,
    /// All nodes run on one machine with this many cores, shared by every
    /// node's CPU phases (a one-host live testbed), instead of `cores` each.
    pub machine_cores: Option<u32>,
    /// The live worker's options (`USER_CODE_SIZE_LIMIT`, ...).
    pub worker: CachingOptions,
    pub instances: InstanceModel,
    pub profile: CostProfile,
    /// Model of functions not in the sample catalog (None: such a name is
    /// an error).
    pub default_function: Option<FunctionModel>,
    /// Package size of functions not in the catalog.
    pub default_package_bytes: u64,
    /// Unix ms of virtual time zero (stamps in the log).
    pub epoch_ms: i64,
    /// Replay speed, as `simulator replay --time-scale`: a call due at
    /// `t` ms in the scenario arrives at `t / time_scale` (default 1).
    pub time_scale: f64,
    /// Work scale of the functions, as the worker's `HF_TIME_SCALE`: CPU
    /// and sleep phases (and exponential draws) are multiplied by it
    /// (default 1). Worker overheads (the profile) are not scaled, as on a
    /// live worker.
    pub fn_time_scale: f64,
    /// Package scale, as the worker's `HF_PACKAGE_SCALE`: every package
    /// (catalog sizes and `default_package_bytes`) is this much of its
    /// size, for the image cache, builds and instance loads alike
    /// (`sample_functions::payload::scaled_bytes`; default 1).
    pub package_scale: f64,
    /// Show a progress bar on stderr.
    #[serde(skip)]
    pub progress: bool,
}

impl Default for DesConfig {
    fn default() -> Self {
        Self {
            algorithm: "rr".into(),
            params: Params::default(),
            nodes: 4,
            node_capacity: NodeInfo::DEFAULT_CAPACITY,
            cores: 2,
            machine_cores: None,
            worker: CachingOptions::default(),
            instances: InstanceModel::HotFunctions,
            profile: CostProfile::default(),
            default_function: None,
            default_package_bytes: 1_000_000,
            epoch_ms: DEFAULT_EPOCH_MS,
            time_scale: 1.0,
            fn_time_scale: 1.0,
            package_scale: 1.0,
            progress: false,
        }
    }
}

/// 2020-01-01T00:00:00Z: virtual time zero of the log's stamps by default.
pub const DEFAULT_EPOCH_MS: i64 = 1_577_836_800_000;

/// Why a run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum DesError {
    #[error(transparent)]
    Algorithm(#[from] scheduler::UnknownAlgorithm),
    #[error("function {name:?} (first at scenario row {row}) is not in the sample catalog; give a model for it with --default-function (e.g. cpu:1000 or exp:1991:2244)")]
    UnknownFunction { name: String, row: usize },
    #[error("workload names function id {0} but has only {1} names")]
    BadWorkload(u32, usize),
    #[error("package scale must be finite and >= 0 (is {0})")]
    BadPackageScale(f64),
    #[error("time scales must be finite and > 0 (time_scale {0}, fn_time_scale {1})")]
    BadTimeScale(f64, f64),
    #[error("--nodes must be at least 1")]
    NoNodes,
    #[error("writing the log: {0}")]
    Log(#[from] std::io::Error),
}

/// Latency percentiles of completed calls, in ms.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Time-averaged instance counts (Lambda model), over `[0, end]`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct InstanceSummary {
    pub mean_instances: f64,
    pub mean_busy: f64,
    pub mean_idle: f64,
}

/// Wall-clock figures of the run: the only part of the output that differs
/// between two runs of the same inputs.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Performance {
    pub wall_seconds: f64,
    pub events_per_second: f64,
    pub invocations_per_second: f64,
}

/// What `--summary-json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub config: DesConfig,
    pub invocations: u64,
    pub completed: u64,
    /// Calls the balancer could not place (error lines in the log).
    pub failed: u64,
    /// Calls not served by a warm instance (no pooled, REST or reused
    /// instance): `!Meta.UsingPooledContainer && !Meta.UsingExistingRestContainer`.
    pub cold_starts: u64,
    pub cold_start_ratio: f64,
    pub image_builds: u64,
    pub pooled_starts: u64,
    pub warm_instance_starts: u64,
    pub latency_ms: LatencySummary,
    /// Virtual time of the last completion, in seconds.
    pub simulated_seconds: f64,
    pub events: u64,
    pub instances: Option<InstanceSummary>,
    pub performance: Performance,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// The job's current delay (start-up or a sleep phase) is over.
    Step(u32),
    /// Next completion on a CPU (ignored if no longer the live one).
    Cpu { cpu: u32 },
    /// A pre-warmed pool instance finished starting.
    PoolReady { node: u32, function: u32 },
    /// A REST-mode instance finished starting.
    RestStarted { node: u32, function: u32 },
    /// Look for expired REST-mode instances on a node.
    RestExpiry { node: u32 },
    /// Look for expired keep-alive instances of a function on a node.
    KeepAliveExpiry { node: u32, function: u32 },
}

/// One call in flight, or (`build`) one image build using a CPU.
#[derive(Debug, Clone, Copy, Default)]
struct Job {
    /// An image build of `function` on `node`, not a call.
    build: bool,
    function: u32,
    node: u32,
    arrival: Micros,
    service_start: Micros,
    started: bool,
    next_phase: u32,
    end_phase: u32,
    /// An exponential service draw not yet slept.
    pending_sleep: Micros,
    instance: u64,
    meta: CallMeta,
}

/// Per function: where its phases are and how big its package is.
#[derive(Debug, Clone)]
struct FunctionInfo {
    first_phase: u32,
    end_phase: u32,
    exponential: Option<(f64, f64)>,
    package_bytes: u64,
}

/// Per node and function: what the simulator tracks beside the policies.
#[derive(Debug, Clone, Default)]
struct NodeFunction {
    /// An image build is running (single flight).
    building: bool,
    /// Calls waiting for that build (job ids, in arrival order).
    waiting: Vec<u32>,
    /// The REST instance is started from this time.
    rest_ready_at: Micros,
    /// Per-call instance counter, for container names.
    instances_made: u64,
}

#[derive(Debug)]
struct Node {
    images: ImageCache,
    pool: ContainerPool,
    rest: RestInstances,
    keep_alive: Vec<Option<KeepAlivePool>>,
    /// Per function: when its keep-alive expiry check is scheduled.
    keep_alive_check: Vec<Option<Micros>>,
    /// When the REST-mode expiry check is scheduled.
    rest_check: Option<Micros>,
    functions: Vec<NodeFunction>,
}

/// Instance counts integrated over time (Lambda model).
#[derive(Debug, Default)]
struct InstanceAccounting {
    busy: u64,
    idle: u64,
    area_busy: f64,
    area_idle: f64,
    last: Micros,
}

impl InstanceAccounting {
    fn advance(&mut self, now: Micros) {
        let dt = now.saturating_sub(self.last) as f64;
        self.area_busy += self.busy as f64 * dt;
        self.area_idle += self.idle as f64 * dt;
        self.last = now.max(self.last);
    }

    fn expired(&mut self, e: Expired, now: Micros) {
        self.idle -= 1;
        let at = e.at.as_micros() as Micros;
        self.area_idle -= now.saturating_sub(at) as f64;
    }
}

/// A scenario with function names interned to ids, arrivals sorted.
#[derive(Debug, Clone)]
pub struct Workload {
    pub names: Vec<String>,
    /// (arrival µs, function id), by time then file order.
    pub arrivals: Vec<(Micros, u32)>,
    /// 1-based scenario row of each function's first call.
    first_row: Vec<usize>,
}

impl Workload {
    /// A workload from interned names and `(arrival µs, function id)`
    /// pairs (sorted here, stably, by time). Ids must index `names`.
    pub fn from_parts(names: Vec<String>, mut arrivals: Vec<(Micros, u32)>) -> Self {
        arrivals.sort_by_key(|&(t, _)| t);
        let mut first_row = vec![0; names.len()];
        for (row, &(_, f)) in arrivals.iter().enumerate().rev() {
            if let Some(r) = first_row.get_mut(f as usize) {
                *r = row + 1;
            }
        }
        Self {
            names,
            arrivals,
            first_row,
        }
    }

    pub fn from_events(events: &[ScenarioEvent]) -> Self {
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut names = Vec::new();
        let mut first_row = Vec::new();
        let mut arrivals = Vec::with_capacity(events.len());
        for (row, e) in events.iter().enumerate() {
            let id = *ids.entry(e.function.as_str()).or_insert_with(|| {
                names.push(e.function.clone());
                first_row.push(row + 1);
                (names.len() - 1) as u32
            });
            arrivals.push((e.start_ms * 1000, id));
        }
        arrivals.sort_by_key(|&(t, _)| t);
        Self {
            names,
            arrivals,
            first_row,
        }
    }
}

fn ms_to_us(ms: f64) -> Micros {
    (ms * 1000.0).round().max(0.0) as Micros
}

fn to_time(t: Micros) -> Duration {
    Duration::from_micros(t)
}

/// Whole ms of a virtual time in µs.
fn ms_floor(us: Micros) -> i64 {
    (us / 1000) as i64
}

/// Runs `events` under `config`, writing log lines to `log` (if any).
pub fn run_scenario(
    events: &[ScenarioEvent],
    config: &DesConfig,
    log: Option<&mut dyn Write>,
) -> Result<Summary, DesError> {
    let workload = Workload::from_events(events);
    run_workload(&workload, config, log)
}

/// Runs an interned workload (see [`run_scenario`]).
pub fn run_workload(
    workload: &Workload,
    config: &DesConfig,
    log: Option<&mut dyn Write>,
) -> Result<Summary, DesError> {
    let wall_start = Instant::now();
    if config.nodes == 0 {
        return Err(DesError::NoNodes);
    }
    let scales_ok = |x: f64| x.is_finite() && x > 0.0;
    if !scales_ok(config.time_scale) || !scales_ok(config.fn_time_scale) {
        return Err(DesError::BadTimeScale(
            config.time_scale,
            config.fn_time_scale,
        ));
    }
    if !valid_package_scale(config.package_scale) {
        return Err(DesError::BadPackageScale(config.package_scale));
    }
    if let Some(&(_, f)) = workload
        .arrivals
        .iter()
        .find(|&&(_, f)| f as usize >= workload.names.len())
    {
        return Err(DesError::BadWorkload(f, workload.names.len()));
    }
    let mut scheduler = scheduler::build(&config.algorithm, &config.params)?;
    for id in 0..config.nodes {
        scheduler.membership(
            Membership::Insert(NodeInfo {
                id,
                capacity: config.node_capacity,
            }),
            Duration::ZERO,
        );
    }

    // Functions: phases in one flat table.
    let catalog = sample_functions::catalog();
    let mut phases: Vec<Phase> = Vec::new();
    let mut functions = Vec::with_capacity(workload.names.len());
    for (i, name) in workload.names.iter().enumerate() {
        let (model, bytes) = match catalog.get(name) {
            Some(spec) => (FunctionModel::Phases(spec.phases()), spec.package_bytes),
            None => match &config.default_function {
                Some(m) => (m.clone(), config.default_package_bytes),
                None => {
                    return Err(DesError::UnknownFunction {
                        name: name.clone(),
                        row: workload.first_row[i],
                    })
                }
            },
        };
        let first = phases.len() as u32;
        let exponential = match model {
            FunctionModel::Phases(p) => {
                phases.extend(p);
                None
            }
            FunctionModel::Exponential {
                warm_mean_ms,
                cold_mean_ms,
            } => Some((warm_mean_ms, cold_mean_ms)),
        };
        functions.push(FunctionInfo {
            first_phase: first,
            end_phase: phases.len() as u32,
            exponential,
            package_bytes: scaled_bytes(bytes, config.package_scale),
        });
    }

    let mut sim = Sim {
        config,
        names: &workload.names,
        ids: workload
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as u32))
            .collect(),
        functions,
        phases,
        scheduler,
        nodes: (0..config.nodes)
            .map(|_| Node {
                images: ImageCache::new(config.worker.image_limit_bytes()),
                pool: ContainerPool::new(
                    config.worker.pool_function_limit(),
                    config.worker.container_pool_num as usize,
                ),
                rest: RestInstances::new(config.worker.rest_lifetime()),
                keep_alive: Vec::new(),
                keep_alive_check: Vec::new(),
                rest_check: None,
                functions: Vec::new(),
            })
            .collect(),
        cpus: match config.machine_cores {
            Some(cores) => vec![SharedCpu::new(cores)],
            None => (0..config.nodes)
                .map(|_| SharedCpu::new(config.cores))
                .collect(),
        },
        queue: EventQueue::with_capacity(1024),
        jobs: Vec::with_capacity(1024),
        free_jobs: Vec::new(),
        in_flight: 0,
        rng: ChaCha8Rng::seed_from_u64(config.params.seed ^ 0x5DE5_1A7E_D0C5_EED5),
        log: log
            .map(|w| LogWriter::new(w, config.epoch_ms, &workload.names, scheduler_name(config))),
        stats: Stats::default(),
        instances: InstanceAccounting::default(),
        done_buffer: Vec::new(),
        last_completion: 0,
    };

    let progress = if config.progress && workload.arrivals.len() >= 100_000 {
        let pb = indicatif::ProgressBar::new(workload.arrivals.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} calls ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(pb)
    } else {
        None
    };

    let mut next_arrival = 0usize;
    let arrivals = &workload.arrivals;
    let time_scale = config.time_scale;
    let arrival_time = |t: Micros| -> Micros {
        if time_scale == 1.0 {
            t
        } else {
            (t as f64 / time_scale).round() as Micros
        }
    };
    loop {
        let queued = sim.queue.peek_time();
        let arrival = arrivals.get(next_arrival).map(|a| arrival_time(a.0));
        match (queued, arrival) {
            (Some(q), Some(a)) if q <= a => sim.handle_next()?,
            (Some(_), None) => {
                if sim.in_flight == 0 {
                    break;
                }
                sim.handle_next()?;
            }
            (_, Some(_)) => {
                let (t, f) = arrivals[next_arrival];
                let t = arrival_time(t);
                next_arrival += 1;
                sim.stats.events += 1;
                sim.arrive(t, f)?;
                if next_arrival & 0xFFFF == 0 {
                    if let Some(pb) = &progress {
                        pb.set_position(next_arrival as u64);
                    }
                }
            }
            (None, None) => break,
        }
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if let Some(log) = sim.log.as_mut() {
        log.flush()?;
    }
    let end = sim.last_completion;
    sim.instances.advance(end);
    let wall = wall_start.elapsed().as_secs_f64();
    Ok(sim.summary(arrivals.len() as u64, end, wall))
}

fn scheduler_name(config: &DesConfig) -> &str {
    scheduler::canonical_name(&config.algorithm).unwrap_or("unknown")
}

#[derive(Debug)]
struct Stats {
    events: u64,
    completed: u64,
    failed: u64,
    cold: u64,
    image_builds: u64,
    pooled: u64,
    warm_instance: u64,
    latency_sum_us: u128,
    latency: hdrhistogram::Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            events: 0,
            completed: 0,
            failed: 0,
            cold: 0,
            image_builds: 0,
            pooled: 0,
            warm_instance: 0,
            latency_sum_us: 0,
            // Auto-resizing, 3 significant digits.
            latency: hdrhistogram::Histogram::new(3).unwrap_or_else(|_| unreachable_hist()),
        }
    }
}

fn unreachable_hist() -> hdrhistogram::Histogram<u64> {
    // `new(3)` only fails for sigfig > 5; keep a bounded fallback anyway.
    hdrhistogram::Histogram::new_with_bounds(1, u64::MAX / 2, 2)
        .unwrap_or_else(|_| hdrhistogram::Histogram::new(2).expect("valid histogram bounds"))
}

struct Sim<'a, 'w> {
    config: &'a DesConfig,
    names: &'a [String],
    ids: HashMap<&'a str, u32>,
    functions: Vec<FunctionInfo>,
    phases: Vec<Phase>,
    scheduler: Box<dyn Scheduler>,
    nodes: Vec<Node>,
    /// One per node, or one shared by all (`machine_cores`).
    cpus: Vec<SharedCpu>,
    queue: EventQueue<Event>,
    jobs: Vec<Job>,
    free_jobs: Vec<u32>,
    in_flight: u64,
    rng: ChaCha8Rng,
    log: Option<LogWriter<&'w mut dyn Write>>,
    stats: Stats,
    instances: InstanceAccounting,
    done_buffer: Vec<u32>,
    last_completion: Micros,
}

impl Sim<'_, '_> {
    fn node_function(&mut self, node: u32, function: u32) -> &mut NodeFunction {
        let n = &mut self.nodes[node as usize];
        if n.functions.len() <= function as usize {
            n.functions
                .resize(self.functions.len(), NodeFunction::default());
        }
        &mut n.functions[function as usize]
    }

    fn handle_next(&mut self) -> Result<(), DesError> {
        let Some((now, event)) = self.queue.pop() else {
            return Ok(());
        };
        self.stats.events += 1;
        match event {
            Event::Step(job) => self.step(job, now)?,
            Event::Cpu { cpu } => {
                let mut done = std::mem::take(&mut self.done_buffer);
                let next = self.cpus[cpu as usize].complete(now, &mut done);
                if let Some(t) = next {
                    self.queue.push(t, Event::Cpu { cpu });
                }
                for &job in &done {
                    self.step(job, now)?;
                }
                done.clear();
                self.done_buffer = done;
            }
            Event::PoolReady { node, function } => {
                let name = &self.names[function as usize];
                self.nodes[node as usize].pool.instance_ready(name);
            }
            Event::RestStarted { node, function } => {
                let name = &self.names[function as usize];
                self.nodes[node as usize].rest.started(name, to_time(now));
            }
            Event::RestExpiry { node } => {
                let n = &mut self.nodes[node as usize];
                n.rest.expire(to_time(now));
                n.rest_check = n
                    .rest
                    .next_expiry()
                    .map(|t| (t.as_micros() as Micros).max(now + 1));
                if let Some(at) = n.rest_check {
                    self.queue.push(at, Event::RestExpiry { node });
                }
            }
            Event::KeepAliveExpiry { node, function } => {
                let n = &mut self.nodes[node as usize];
                if let Some(Some(pool)) = n.keep_alive.get_mut(function as usize) {
                    let acc = &mut self.instances;
                    acc.advance(now);
                    pool.expire(to_time(now), |e| acc.expired(e, now));
                    let next = pool
                        .next_expiry()
                        .map(|t| (t.as_micros() as Micros).max(now + 1));
                    n.keep_alive_check[function as usize] = next;
                    if let Some(at) = next {
                        self.queue
                            .push(at, Event::KeepAliveExpiry { node, function });
                    }
                }
            }
        }
        Ok(())
    }

    /// A scenario call arrives.
    fn arrive(&mut self, now: Micros, function: u32) -> Result<(), DesError> {
        let name = self.names[function as usize].as_str();
        let node = match self.scheduler.select(name, to_time(now)) {
            Ok(n) => n,
            Err(e) => {
                self.stats.failed += 1;
                if let Some(log) = self.log.as_mut() {
                    let at = (now / 1000) as i64;
                    log.error(at, name, &format!("no node for {name}: {e}"))?;
                }
                return Ok(());
            }
        };
        let info = &self.functions[function as usize];
        let (first_phase, end_phase) = (info.first_phase, info.end_phase);
        let mut meta = CallMeta::default();
        // Image. As on the live worker, the image enters the cache when its
        // build completes; callers arriving during a build are
        // `ImageBuilt` too and wait for that one build (single flight).
        let image_present = self.nodes[node as usize]
            .images
            .call_started(name, to_time(now));
        meta.image_built = !image_present;
        let id = self.new_job(Job {
            build: false,
            function,
            node,
            arrival: now,
            service_start: 0,
            started: false,
            next_phase: first_phase,
            end_phase,
            pending_sleep: 0,
            instance: 0,
            meta,
        });
        self.in_flight += 1;
        if image_present {
            return self.start_instance(id, now);
        }
        let nf = self.node_function(node, function);
        nf.waiting.push(id);
        if nf.building {
            return Ok(());
        }
        nf.building = true;
        self.stats.image_builds += 1;
        // The build is CPU work (staging a package, an engine's image
        // build): it shares the node's cores with the calls' CPU phases, so
        // concurrent builds and busy nodes make it longer, as live.
        let package_bytes = self.functions[function as usize].package_bytes;
        let work = self.config.profile.image_build_ms(package_bytes) * 1000.0;
        if work < 1.0 {
            return self.build_done(node, function, now);
        }
        let build = self.new_job(Job {
            build: true,
            function,
            node,
            arrival: now,
            ..Job::default()
        });
        let cpu = if self.cpus.len() == 1 { 0 } else { node };
        if let Some(t) = self.cpus[cpu as usize].add(build, work, now) {
            self.queue.push(t, Event::Cpu { cpu });
        }
        Ok(())
    }

    fn new_job(&mut self, job: Job) -> u32 {
        match self.free_jobs.pop() {
            Some(id) => {
                self.jobs[id as usize] = job;
                id
            }
            None => {
                self.jobs.push(job);
                (self.jobs.len() - 1) as u32
            }
        }
    }

    /// A function's image build finished on a node: cache it, start the
    /// calls that waited for it.
    fn build_done(&mut self, node: u32, function: u32, now: Micros) -> Result<(), DesError> {
        let bytes = self.functions[function as usize].package_bytes;
        let name = &self.names[function as usize];
        self.nodes[node as usize]
            .images
            .image_built(name, bytes, to_time(now));
        let nf = self.node_function(node, function);
        nf.building = false;
        for id in std::mem::take(&mut nf.waiting) {
            self.start_instance(id, now)?;
        }
        Ok(())
    }

    /// The call's image is present at `now`: get its instance (REST,
    /// pooled, per-call or Lambda), then run it after the start-up cost.
    fn start_instance(&mut self, id: u32, now: Micros) -> Result<(), DesError> {
        let Job {
            function,
            node,
            mut meta,
            ..
        } = self.jobs[id as usize];
        let name = self.names[function as usize].as_str();
        let exponential = self.functions[function as usize].exponential;
        let profile = &self.config.profile;
        let load =
            ms_to_us(profile.instance_load_ms(self.functions[function as usize].package_bytes));
        let t = to_time(now);
        let ready = now;
        // Instance.
        let (start_cost, instance, cold) = match self.config.instances {
            InstanceModel::HotFunctions if self.config.worker.using_rest_mode => {
                match self.nodes[node as usize].rest.call_started(name, t) {
                    RestAcquire::Existing => {
                        meta.existing_instance = true;
                        (ms_to_us(profile.rest_warm_ms), 0, false)
                    }
                    RestAcquire::WaitForStart => {
                        let at = self.node_function(node, function).rest_ready_at;
                        let wait = at.saturating_sub(ready);
                        (wait + ms_to_us(profile.rest_warm_ms), 0, true)
                    }
                    RestAcquire::Start => {
                        let start = ms_to_us(profile.rest_start_ms) + load;
                        let at = ready + start;
                        self.node_function(node, function).rest_ready_at = at;
                        self.queue.push(at, Event::RestStarted { node, function });
                        (start, 0, true)
                    }
                }
            }
            InstanceModel::HotFunctions => {
                // As the live worker: the pool hears of calls only when on.
                let pool = &mut self.nodes[node as usize].pool;
                let pooled = pool.is_enabled() && pool.call_started(name, t);
                let nf = self.node_function(node, function);
                nf.instances_made += 1;
                let instance = nf.instances_made;
                if pooled {
                    meta.pooled = true;
                    (ms_to_us(profile.pooled_ms), instance, false)
                } else {
                    (ms_to_us(profile.instance_create_ms) + load, instance, true)
                }
            }
            InstanceModel::Lambda { keep_alive } => {
                let n = &mut self.nodes[node as usize];
                if n.keep_alive.len() <= function as usize {
                    n.keep_alive.resize_with(self.functions.len(), || None);
                }
                let pool = n.keep_alive[function as usize]
                    .get_or_insert_with(|| KeepAlivePool::new(keep_alive));
                let acc = &mut self.instances;
                acc.advance(now);
                let got = pool.acquire(t, |e| acc.expired(e, now));
                acc.busy += 1;
                match got {
                    Acquired::Warm(id) => {
                        acc.idle -= 1;
                        meta.existing_instance = true;
                        (ms_to_us(profile.lambda_warm_ms), id, false)
                    }
                    Acquired::Cold(id) => (ms_to_us(profile.lambda_cold_ms) + load, id, true),
                }
            }
        };
        if cold {
            self.stats.cold += 1;
        } else if meta.pooled {
            self.stats.pooled += 1;
        } else {
            self.stats.warm_instance += 1;
        }

        let pending_sleep = match exponential {
            Some((warm, cold_mean)) => {
                let mean = if cold { cold_mean } else { warm };
                let x: f64 = Exp1.sample(&mut self.rng);
                ms_to_us(x * mean * self.config.fn_time_scale).max(1)
            }
            None => 0,
        };
        let job = &mut self.jobs[id as usize];
        job.pending_sleep = pending_sleep;
        job.instance = instance;
        job.meta = meta;
        if start_cost == 0 {
            self.step(id, now)
        } else {
            self.queue.push(now + start_cost, Event::Step(id));
            Ok(())
        }
    }

    /// The job's current delay or CPU phase ended at `now`: run the next
    /// phase, or finish.
    fn step(&mut self, id: u32, now: Micros) -> Result<(), DesError> {
        let job = &mut self.jobs[id as usize];
        if job.build {
            let (node, function) = (job.node, job.function);
            self.free_jobs.push(id);
            return self.build_done(node, function, now);
        }
        if !job.started {
            job.started = true;
            job.service_start = now;
            if job.pending_sleep > 0 {
                let at = now + job.pending_sleep;
                job.pending_sleep = 0;
                self.queue.push(at, Event::Step(id));
                return Ok(());
            }
        }
        let cpu_scale = self.config.profile.cpu_scale * self.config.fn_time_scale;
        let sleep_scale = self.config.fn_time_scale;
        while job.next_phase < job.end_phase {
            let phase = self.phases[job.next_phase as usize];
            job.next_phase += 1;
            match phase {
                Phase::Cpu { ms } if ms > 0 => {
                    let cpu = if self.cpus.len() == 1 { 0 } else { job.node };
                    let work = f64::from(ms) * 1000.0 * cpu_scale;
                    if let Some(t) = self.cpus[cpu as usize].add(id, work, now) {
                        self.queue.push(t, Event::Cpu { cpu });
                    }
                    return Ok(());
                }
                Phase::Sleep { ms } if ms > 0 => {
                    let d = if sleep_scale == 1.0 {
                        u64::from(ms) * 1000
                    } else {
                        ms_to_us(f64::from(ms) * sleep_scale)
                    };
                    self.queue.push(now + d, Event::Step(id));
                    return Ok(());
                }
                _ => {}
            }
        }
        self.finish(id, now)
    }

    fn finish(&mut self, id: u32, now: Micros) -> Result<(), DesError> {
        let job = self.jobs[id as usize];
        self.free_jobs.push(id);
        self.in_flight -= 1;
        let (node, function) = (job.node, job.function);
        let name = self.names[function as usize].as_str();
        let t = to_time(now);
        let n = &mut self.nodes[node as usize];
        n.images.call_finished(name, t);
        match self.config.instances {
            InstanceModel::HotFunctions if self.config.worker.using_rest_mode => {
                n.rest.call_finished(name, t);
                // One pending check per node: it reschedules itself at the
                // policy's next expiry, which is never later than this one.
                if n.rest_check.is_none() {
                    let at = now + self.config.worker.rest_lifetime().as_micros() as Micros;
                    n.rest_check = Some(at);
                    self.queue.push(at, Event::RestExpiry { node });
                }
            }
            InstanceModel::HotFunctions if n.pool.is_enabled() => {
                let plan = n.pool.call_finished(name, t);
                if !plan.create.is_empty() {
                    let profile = &self.config.profile;
                    for (f, count) in &plan.create {
                        if let Some(&fid) = self.ids.get(f.as_str()) {
                            let bytes = self.functions[fid as usize].package_bytes;
                            let at = now
                                + ms_to_us(
                                    profile.instance_create_ms + profile.instance_load_ms(bytes),
                                );
                            for _ in 0..*count {
                                self.queue.push(
                                    at,
                                    Event::PoolReady {
                                        node,
                                        function: fid,
                                    },
                                );
                            }
                        }
                    }
                }
            }
            InstanceModel::HotFunctions => {}
            InstanceModel::Lambda { keep_alive } => {
                if let Some(Some(pool)) = n.keep_alive.get_mut(function as usize) {
                    self.instances.advance(now);
                    if pool.release(job.instance, t).is_ok() {
                        self.instances.busy -= 1;
                        self.instances.idle += 1;
                    }
                    if n.keep_alive_check.len() <= function as usize {
                        n.keep_alive_check.resize(self.functions.len(), None);
                    }
                    let check = &mut n.keep_alive_check[function as usize];
                    if check.is_none() {
                        let at = now + keep_alive.as_micros() as Micros;
                        *check = Some(at);
                        self.queue
                            .push(at, Event::KeepAliveExpiry { node, function });
                    }
                }
            }
        }
        let cold = !job.meta.pooled && !job.meta.existing_instance;
        self.scheduler.finished(
            &Completion {
                node,
                function: name,
                duration: to_time(now - job.arrival),
                cold,
                ok: true,
            },
            t,
        );
        let profile = &self.config.profile;
        let end = now + ms_to_us(profile.network_ms + profile.balancer_ms);
        let latency = end - job.arrival;
        self.stats.completed += 1;
        self.stats.latency_sum_us += u128::from(latency);
        let _ = self.stats.latency.record(latency.max(1));
        self.last_completion = self.last_completion.max(now);
        if let Some(log) = self.log.as_mut() {
            log.call(
                (job.arrival / 1000) as i64,
                (end / 1000) as i64,
                name,
                function,
                // Whole ms of the stamps, so that InternalExecutionTime <=
                // ExecutionTime <= end - start, as on a live worker.
                ms_floor(now) - ms_floor(job.arrival),
                ms_floor(now) - ms_floor(job.service_start),
                job.meta,
                node,
                job.instance,
            )?;
        }
        Ok(())
    }

    fn summary(&self, invocations: u64, end: Micros, wall: f64) -> Summary {
        let s = &self.stats;
        let h = &s.latency;
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        let latency_ms = if s.completed == 0 {
            LatencySummary::default()
        } else {
            LatencySummary {
                mean: s.latency_sum_us as f64 / s.completed as f64 / 1000.0,
                p50: q(0.5),
                p90: q(0.9),
                p95: q(0.95),
                p99: q(0.99),
                max: h.max() as f64 / 1000.0,
            }
        };
        let instances = match self.config.instances {
            InstanceModel::Lambda { .. } if end > 0 => {
                let busy = self.instances.area_busy / end as f64;
                let idle = self.instances.area_idle / end as f64;
                Some(InstanceSummary {
                    mean_instances: busy + idle,
                    mean_busy: busy,
                    mean_idle: idle,
                })
            }
            _ => None,
        };
        let wall_pos = wall.max(1e-9);
        Summary {
            seed: self.config.params.seed,
            config: self.config.clone(),
            invocations,
            completed: s.completed,
            failed: s.failed,
            cold_starts: s.cold,
            cold_start_ratio: if s.completed == 0 {
                0.0
            } else {
                s.cold as f64 / s.completed as f64
            },
            image_builds: s.image_builds,
            pooled_starts: s.pooled,
            warm_instance_starts: s.warm_instance,
            latency_ms,
            simulated_seconds: end as f64 / 1e6,
            events: s.events,
            instances,
            performance: Performance {
                wall_seconds: wall,
                events_per_second: s.events as f64 / wall_pos,
                invocations_per_second: invocations as f64 / wall_pos,
            },
        }
    }
}
