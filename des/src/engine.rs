//! The simulation core: a virtual clock, the event queue, the scheduler and
//! one node model per node.
//!
//! One call's life: it arrives at its scenario time; the scheduler (the
//! same struct the balancer runs, `policy::scheduler`) picks a node; that
//! node's [`NodeModel`] (the same type the live worker runs) answers with
//! the call's steps ([`Step`]): build the image, wait, start an instance,
//! run on a warm one, or run in a one-shot instance. This module only turns
//! each step into its modelled cost, then runs the function's phases (CPU
//! phases under processor sharing of the node's cores, sleeps without
//! CPU); at the end the model and the scheduler hear of the completion and
//! a log line is written. The simulator keeps no policy state of its own:
//! what an eviction takes with it, what expires when, what the pool
//! refills, all come from the model's [`Effects`].
//!
//! Costs (the profile, [`CostProfile`]):
//! - `BuildImage`: CPU work of `image_build_ms(package)` ms on one idle
//!   core, shared with the calls' CPU phases and other builds on the same
//!   cores (staging a package or an engine build is CPU-bound; on a live
//!   2-core testbed, concurrent first calls make each other's builds
//!   longer). Calls that wait for it go on when it ends. A build of no
//!   work (under 1 µs: the ideal profile) is done by the model as the
//!   call arrives ([`NodeModel::call_arrived_building_at_once`]), with
//!   the same outcome, and counted in `image_builds` all the same.
//! - `Start` (REST or Lambda instance): `rest_start_ms` or `lambda_cold_ms`
//!   plus `instance_load_ms_per_mb` per MB of package; the instance is up
//!   then, and the calls waiting for it go on with `rest_warm_ms`.
//! - `RunOnce`: `instance_create_ms` plus the package load.
//! - `Run`: `pooled_ms` on a pre-warmed instance, `rest_warm_ms` on a REST
//!   instance, `lambda_warm_ms` on a reused keep-alive instance.
//! - Pre-warming a pool instance: `instance_create_ms` plus the package
//!   load, off the calls' path; pre-warming a Lambda instance (histogram
//!   and EWMA keep-alive policies): `lambda_cold_ms` plus the package load.
//!
//! A scenario row's per-invocation columns ([`Workload::shapes`]): its
//! `DurationMs` replaces the function's phases (and draws) for that call:
//! `cpu_share` of it as CPU work (scaled by `cpu_scale` and
//! `fn_time_scale`, under processor sharing), then the rest as a sleep
//! (scaled by `fn_time_scale`), where `cpu_share` is the function's
//! `cpu_ms / (cpu_ms + sleep_ms)` in the catalog (its model's for a
//! `--default-function`). Its `MemoryMb` goes to the node model with the
//! call (`NodeModel::call_arrived_by_id_with_memory`: the instance's
//! memory is the largest its calls asked for).
//!
//! Refused calls: a node's admission rules ([`DesConfig::admission`]) may
//! reject a call (`Effects::rejected`); the scheduler hears at once that
//! it ended, unsuccessfully, on its node; with [`DesConfig::reroute`] it
//! is sent to the next nodes in id order (each once) until one admits it,
//! and its end is not told to the scheduler again (the scheduler's load
//! counts do not see a rerouted call: a choice, since the scheduler API
//! has no "moved" event); else it fails (an error line, `failed`).
//!
//! The SlimFaas layer ([`DesConfig::slim`], [`crate::slim`]): when set, a
//! call first meets the balancer's admission queue
//! (`policy::admission_queue`, the live balancer's code): it goes to the
//! scheduler at once if its function is under its cap, else it waits; a
//! call that held a slot frees it when it ends (completed, or failed: no
//! node, rejected by every node), and the call the queue names is
//! dispatched at that instant, after the event that freed it. A
//! synchronous call still waiting after its function's `wait_s` fails
//! (an error line from its arrival to then). A call every node refused is
//! retried after the function's delays, and the functions'
//! `min_instances` are kept started (a look every second); `crate::slim`
//! says how. Without it, nothing of this runs and the run is as before.
//!
//! Where calls come from: an [`ArrivalSource`] ([`crate::source`]): a
//! scenario's rows ([`run_workload`]), or closed-loop clients
//! ([`run_closed_loop`]), told when each of their calls ends: at the log
//! line's end for a completed call, at the moment of failure for a call no
//! node took. The run is the same loop for both.
//!
//! Ordering: events due at the same virtual microsecond run in the order
//! they were scheduled; arrivals due at a time run after every
//! queued event due at that time (completions and expiries before
//! arrivals), and among themselves in the source's order (a scenario's:
//! start time, then file order; clients': the order they became due).
//! Where a node's timers do nothing but expire idle instances (the Lambda
//! model under the fixed, LRU and Greedy-Dual policies, without an
//! admission queue or a SlimFaas layer: [`NodeModel::timers_only_expire`]),
//! they are not events: a node runs those due just before its next event,
//! each at the time its event would have run, and the instance counts'
//! time integrals (kept exactly, in instance-µs) are corrected from then.
//! Logs and summaries are the same as with timers as events (a test runs
//! both); only the summary's `events` count is lower, by up to one per
//! call under a spreading scheduler at Azure scale. Likewise, where a
//! keep-alive instance a call starts is seen by nothing but that call
//! until it ends (the Lambda model under every policy but Greedy-Dual,
//! without a SlimFaas layer: [`NodeModel::call_starts_are_private`]) and
//! the call's first work is a sleep (an exponential or percentile sleep
//! draw, or a row's duration without CPU work), the instance's start is
//! not an event: the call's sleep is scheduled from the start's end when
//! the call starts it, and the model hears of the start, at its own
//! time, just before it hears of the call's end. The summary's `events`
//! are then fewer by one per such cold start; logs and summaries are
//! otherwise the same (a test runs both), but for the order of log lines
//! of calls that end in the same microsecond (such a call's end is
//! scheduled earlier than as the start's event scheduled it, and ties
//! leave in scheduling order).
//!
//! Randomness: a call's service draws (exponential or percentile work)
//! come from its own stream, named by the run's seed, the call's number
//! in its source's order and its attempt ([`crate::stream`]): the same
//! call draws the same number under every algorithm and configuration
//! (common random numbers), whatever order events are handled in.
//!
//! Partitioned runs (`engine/partitioned.rs`): a scenario run without a log,
//! whose scheduler is oblivious (`policy::scheduler::Scheduler::oblivious`:
//! `rr`, `random`) and whose nodes share nothing else (no SlimFaas layer,
//! no shared machine cores, no rerouting, timers that only expire idle
//! instances), asks the scheduler for every call's node first, then
//! simulates each node alone, on [`DesConfig::threads`] threads, and adds
//! the nodes' figures up: the same summary, field for field, as the
//! one-queue run (a test compares them), several times faster at a
//! thousand nodes, where one queue's nodes compete for the caches.
//!
//! Times: the worker's end of a call is when its last phase ends; the
//! model and the scheduler hear of it then; the client's end (the log
//! line's end) is `network_ms + balancer_ms` of the profile later (the
//! client's transport and the balancer hop, both measured as round trips
//! by `simulator calibrate`).
//!
//! The run stops when the last call has completed and the source has no
//! more (a closed loop's clients stop at its duration); pending timers (pool
//! refills, instance expiries) after that point change nothing that is
//! reported. Time averages of instance counts are over `[0, last
//! completion]`.
//!
//! Nothing here reads a clock: the caller measures wall time
//! ([`Summary::performance`]) and shows progress ([`Progress`]).

use std::io::Write;
use std::time::Duration;

use policy::node::options::CachingOptions;
use std::sync::Arc;

use policy::node::{
    Admission, CallId, CallMeta, Effects, FunctionTable, InstanceId, InstanceKind, InstanceModel,
    NodeModel, ReuseRules, Step,
};
use policy::scheduler::{
    Completion, Membership, NodeInfo, Scheduler, SchedulerConfig, DEFAULT_FUNCTION_MEMORY_MB,
};
use policy::Time;
use protocol::scenario::CallShape;
use rand::Rng;
use rand_distr::{Distribution, Exp1};
use rustc_hash::FxHashMap;
use sample_functions::catalog::Phase;
use sample_functions::payload::{scaled_bytes, valid_package_scale};
use sample_functions::Catalog;
use serde::Serialize;

use super::cpu::{whole_us, Round, SharedCpu};
use super::function::{percentile_draw, FunctionModel};
use super::output::LogWriter;
use super::profile::CostProfile;
use super::queue::EventQueue;
use super::slim::{Gate, Gated, QueueSummary, SlimError, SlimSettings};
use super::source::{
    ArrivalSource, ClosedLoop, ClosedLoopSource, Reply, ScenarioSource, StageSummary, CANCELLED,
    NO_CLIENT,
};
use super::stream::{run_key, CallStream};
use super::workload::Workload;
use policy::admission_queue::{AttemptOutcome, CallKind, RetryDecision};

mod partitioned;

/// Bounds of a run's sizes and scales ([`check`] refuses a configuration
/// beyond them, before anything is allocated or simulated): memory and
/// time follow the workload, never a value typed on the command line
/// (`--nodes 4294967295` or `--time-scale 1e-300` used to run out of
/// memory or never end).
pub mod limits {
    /// Simulated nodes.
    pub const MAX_NODES: u32 = 100_000;
    /// Cores per node, and of a shared machine.
    pub const MAX_CORES: u32 = 4_096;
    /// Capacity per node told to the scheduler.
    pub const MAX_NODE_CAPACITY: u32 = 1_000_000;
    /// Memory per node, MB (16 TB).
    pub const MAX_NODE_MEMORY_MB: u32 = 1 << 24;
    /// Replay speed-up (`time_scale`): a thousand times slower to a
    /// million times faster, as `simulator replay`.
    pub const TIME_SCALE: (f64, f64) = (1e-3, 1e6);
    /// Functions' work scale (`fn_time_scale`).
    pub const FN_TIME_SCALE: (f64, f64) = (1e-6, 1e6);
}

/// Everything that defines a run (besides the scenario).
#[derive(Debug, Clone, Serialize)]
pub struct DesConfig {
    /// The scheduler: an algorithm of the registry with its resolved
    /// parameters; its seed seeds the scheduler and the simulator's own RNG.
    pub scheduler: SchedulerConfig,
    /// Worker nodes, ids `0..nodes`.
    pub nodes: u32,
    /// Capacity told to the scheduler per node.
    pub node_capacity: u32,
    /// Cores per node (processor sharing), also told to the scheduler.
    pub cores: u32,
    /// Memory per node for function instances, in MB, told to the
    /// scheduler (OpenWhisk's memory slots) and to each node's model (the
    /// `lru` and `greedy-dual` keep-alive policies evict under it).
    pub node_memory_mb: u32,
    /// All nodes run on one machine with this many cores, shared by every
    /// node's CPU phases (a one-host live testbed), instead of `cores` each.
    pub machine_cores: Option<u32>,
    /// The live worker's options (`USER_CODE_SIZE_LIMIT`, ...).
    pub worker: CachingOptions,
    pub instances: InstanceModel,
    pub profile: CostProfile,
    /// The catalog: the samples plus a user's functions
    /// (`sample_functions::Catalog::with_file`, `--catalog`), modelled as
    /// the samples are (phases, package, memory). None: the samples only.
    #[serde(skip)]
    pub catalog: Option<Arc<Catalog>>,
    /// The file `catalog` was read from (recorded in summaries).
    pub catalog_file: Option<String>,
    /// Model of functions not in the catalog (None: such a name is an
    /// error).
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
    /// Lambda model: which idle instance a call reuses, and whether reuse
    /// extends its keep-alive (`policy::node::keep_alive`).
    pub reuse: ReuseRules,
    /// Lambda model: the nodes' admission rules (`policy::node::admission`:
    /// a limit on running instances, and what a full node does).
    pub admission: Admission,
    /// A call a node rejects goes to the next node (ids in a ring) that
    /// admits it (`--overflow elsewhere`), else it fails.
    pub reroute: bool,
    /// The balancer's SlimFaas layer in front of the scheduler: a cap on
    /// parallel calls per function, the queue, scale to zero
    /// ([`crate::slim`]). None (the default): every call goes to the
    /// scheduler at its arrival, as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slim: Option<SlimSettings>,
    /// Threads a partitioned run may use (the module doc's "Partitioned
    /// runs"): how the host runs the simulation, not what is simulated,
    /// so every value gives the same results and summaries leave it out.
    /// Default 1; `simulator des` gives the host's available parallelism.
    #[serde(skip)]
    pub threads: u32,
}

impl Default for DesConfig {
    fn default() -> Self {
        Self {
            scheduler: SchedulerConfig::default(),
            nodes: 4,
            node_capacity: NodeInfo::DEFAULT_CAPACITY,
            cores: NodeInfo::DEFAULT_CORES,
            node_memory_mb: NodeInfo::DEFAULT_MEMORY_MB,
            machine_cores: None,
            worker: CachingOptions::default(),
            instances: InstanceModel::HotFunctions,
            profile: CostProfile::default(),
            catalog: None,
            catalog_file: None,
            default_function: None,
            default_package_bytes: 1_000_000,
            epoch_ms: DEFAULT_EPOCH_MS,
            time_scale: 1.0,
            fn_time_scale: 1.0,
            package_scale: 1.0,
            reuse: ReuseRules::default(),
            admission: Admission::default(),
            reroute: false,
            slim: None,
            threads: 1,
        }
    }
}

impl DesConfig {
    /// The catalog functions are looked up in.
    pub fn catalog(&self) -> &Catalog {
        self.catalog
            .as_deref()
            .unwrap_or_else(|| sample_functions::catalog())
    }
}

/// 2020-01-01T00:00:00Z: virtual time zero of the log's stamps by default.
pub const DEFAULT_EPOCH_MS: i64 = 1_577_836_800_000;

/// Why a run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum DesError {
    #[error("function {name:?} (first at scenario row {row}) is not in the catalog; give a catalog file with it (--catalog, e.g. the one `utils import` writes) or a model for it with --default-function (e.g. cpu:1000 or exp:1991:2244)")]
    UnknownFunction { name: String, row: usize },
    #[error("function {name:?} (in the closed loop's --functions) is not in the catalog; give a catalog file with it (--catalog) or a model for it with --default-function (e.g. cpu:1000 or exp:1991:2244)")]
    UnknownMixFunction { name: String },
    #[error(transparent)]
    ClosedLoop(#[from] crate::source::ClosedLoopError),
    #[error("workload names function id {0} but has only {1} names")]
    BadWorkload(u32, usize),
    #[error("package scale must be finite and >= 0 (is {0})")]
    BadPackageScale(f64),
    #[error("time scales out of bounds: time_scale {0:?} (in 0.001..=1e6), fn_time_scale {1:?} (in 1e-6..=1e6)")]
    BadTimeScale(f64, f64),
    #[error("{what} is {value}, outside its bounds 1..={max}")]
    OutOfRange {
        what: &'static str,
        value: u32,
        max: u32,
    },
    #[error("--nodes must be at least 1")]
    NoNodes,
    #[error("function settings: {0}")]
    Slim(#[from] SlimError),
    #[error("scale to zero sets the instance model (Lambda, fixed keep-alive of idle_before_zero_s); the configuration has another")]
    ScaleToZeroModel,
    #[error("function settings: {0} has min_instances > 0, but the instance model runs every call in an instance of its own (nothing to keep started); add --scale-to-zero, a Lambda model (--instance-model lambda) or REST mode")]
    MinInstancesModel(String),
    #[error("writing the log: {0}")]
    Log(#[from] std::io::Error),
}

/// Mean and percentiles of one per-call figure over the successful calls,
/// in whole ms (the log's resolution); percentiles from an HDR histogram of
/// 4 significant digits, as `utils analyze` computes them.
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
    /// Idle instances evicted for memory (`lru`, `greedy-dual`), all nodes.
    pub memory_evictions: u64,
}

/// Wall-clock figures of the run, filled in by the caller that measured
/// them: the only part of the output that differs between two runs of the
/// same inputs.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Performance {
    pub wall_seconds: f64,
    pub events_per_second: f64,
    pub invocations_per_second: f64,
}

impl Performance {
    /// The figures of a run of `summary` that took `wall_seconds`.
    pub fn of(summary: &Summary, wall_seconds: f64) -> Self {
        let wall = wall_seconds.max(1e-9);
        Self {
            wall_seconds,
            events_per_second: summary.events as f64 / wall,
            invocations_per_second: summary.invocations as f64 / wall,
        }
    }
}

/// What `--summary-json` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub config: DesConfig,
    pub invocations: u64,
    pub completed: u64,
    /// Calls the balancer could not place, or that a node rejected and no
    /// other took (error lines in the log).
    pub failed: u64,
    /// A closed loop's calls cancelled at the end of its grace period
    /// ([`ClosedLoopSummary::cancelled`]; absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub cancelled: u64,
    /// Calls a node refused by its admission rules (each refusal counted;
    /// `DesConfig::admission`).
    pub rejections: u64,
    /// Calls sent on to another node than the scheduler chose
    /// (`DesConfig::reroute`), counted once each, whether a later node
    /// admitted them or they failed.
    pub rerouted: u64,
    /// Calls not served by a warm instance (no pooled, REST or reused
    /// instance): `!Meta.UsingPooledContainer && !Meta.UsingExistingRestContainer`.
    pub cold_starts: u64,
    pub cold_start_ratio: f64,
    pub image_builds: u64,
    pub pooled_starts: u64,
    pub warm_instance_starts: u64,
    /// Latency as `utils analyze` defines it: per successful call, its
    /// duration (end - start, what the client saw) minus the reply's
    /// `InternalExecutionTime` (the function's own work), i.e. everything
    /// but the function: network, balancer, image build, instance start.
    /// Computed from the log's whole-ms figures, so `utils analyze` of the
    /// log gives the same mean. (Before 2026-12 this field held the
    /// duration.)
    pub latency_ms: LatencySummary,
    /// Duration (end - start) of successful calls: what the client waited.
    pub duration_ms: LatencySummary,
    /// Virtual time of the last completion, in seconds.
    pub simulated_seconds: f64,
    /// Events handled: arrivals and queued events (a node's timers run
    /// late and the cold starts of calls whose first work is a sleep, as
    /// under most Lambda configurations, are not events: see the module
    /// docs).
    pub events: u64,
    pub instances: Option<InstanceSummary>,
    pub performance: Performance,
    /// A closed loop's parameters and figures (absent for a scenario).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_loop: Option<ClosedLoopSummary>,
    /// The SlimFaas layer's queue: calls that waited, their waits, the
    /// longest queue, overall and per function (absent without
    /// [`DesConfig::slim`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueSummary>,
    /// How the run was simulated: true when its nodes were simulated
    /// apart (the module doc's "Partitioned runs"), absent for one
    /// queue. Every other figure is the same either way.
    #[serde(skip_serializing_if = "is_false")]
    pub partitioned: bool,
}

/// What a closed loop did ([`run_closed_loop`]), in the terms of
/// `simulator load`'s summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClosedLoopSummary {
    /// [`ClosedLoop::parameters`]: clients, duration, think, mix, seed.
    pub parameters: serde_json::Value,
    /// Calls still in flight when the grace period after the duration
    /// ended: cancelled, logged as errors from their start to the
    /// cancellation (as `simulator load` logs them), and not counted in
    /// `completed`; the nodes still run them to their end.
    pub cancelled: u64,
    /// Calls sent by each client, by index.
    pub calls_per_client: Vec<u64>,
    /// Virtual time of the last reply (as its client saw it), seconds.
    pub last_reply_s: f64,
    /// Successful calls per second from the start to the last reply (the
    /// live command's throughput, on the virtual clock).
    pub throughput_per_s: f64,
    /// Each stage's figures, when there are several (`--clients A,B,...`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSummary>,
}

/// Told how many scenario calls have arrived so far (every 65,536 calls,
/// and once at the end).
pub type Progress<'p> = &'p mut dyn FnMut(u64);

/// Marks "no job" in [`Event::InstanceUp`].
const NO_JOB: u32 = u32::MAX;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// The job's current delay (start-up or a sleep phase) is over.
    Step(u32),
    /// Next completion on a CPU (ignored if no longer the live one).
    Cpu { cpu: u32 },
    /// An instance is up; `job` (or [`NO_JOB`]) started it and runs on it.
    InstanceUp {
        node: u32,
        instance: InstanceId,
        job: u32,
    },
    /// The node model's timer is due.
    Timer { node: u32 },
    /// A synchronous call waiting under `key` in the SlimFaas queue has
    /// waited its `wait_s` (nothing if it got its slot since).
    GiveUp { key: u64 },
    /// The job's call is tried again (SlimFaas retries).
    Retry { job: u32 },
    /// The functions' `min_instances` are looked at (every
    /// [`crate::slim::KEEP_TICK`]).
    KeepMin,
}

/// One call in flight, or (`build`) one image build using a CPU.
#[derive(Debug, Clone, Copy)]
struct Job {
    /// An image build of `function` on `node`, not a call.
    build: bool,
    function: u32,
    node: u32,
    /// The call's id in its node's model.
    call: CallId,
    arrival: Time,
    /// When the balancer sent it to the scheduler's node: its arrival, or
    /// the end of its wait in the SlimFaas queue.
    dispatched: Time,
    service_start: Time,
    started: bool,
    next_phase: u32,
    end_phase: u32,
    /// A service draw (or a row's duration) not yet slept, µs.
    pending_sleep: u64,
    /// CPU work (a draw, or a row's duration's CPU share) not yet run, µs
    /// of single-core work (scaled).
    pending_cpu: f64,
    /// The memory its scenario row asks for (None: its function's).
    memory_mb: Option<u32>,
    /// Nodes tried after the scheduler's (`reroute`); with any, the
    /// scheduler has been told the call ended on its node.
    reroutes: u32,
    /// Its scenario row gives its duration (no draw, no phases).
    shaped: bool,
    instance: InstanceId,
    /// A build job: the call that builds (it waits for this job).
    builder: u32,
    /// The closed-loop client that sent the call, or [`NO_CLIENT`].
    client: u32,
    /// Synchronous or asynchronous (the SlimFaas layer).
    kind: CallKind,
    /// Retries done (the SlimFaas layer).
    retries: u32,
    /// Its instance's start, done at `service_start`, is not yet told to
    /// its node's model ([`Sim::quiet_starts`]).
    start_untold: bool,
    /// The call's place in its source's order: with the attempt
    /// (`retries`), its random stream ([`crate::stream`]).
    number: u64,
}

/// Per function: where its phases are and how big its package is.
#[derive(Debug, Clone)]
struct FunctionInfo {
    first_phase: u32,
    end_phase: u32,
    draw: Option<Draw>,
    /// Share of a scenario row's duration run as CPU work.
    cpu_share: f64,
    package_bytes: u64,
    /// Its image builds in no time (under 1 µs of work): the node model
    /// builds it as the call arrives
    /// ([`NodeModel::call_arrived_building_at_once`]).
    instant_build: bool,
}

/// A function's random work, drawn per call.
#[derive(Debug, Clone)]
enum Draw {
    /// Exponential sleep, warm and cold means (ms).
    Sleep(f64, f64),
    /// Exponential CPU work, mean (ms).
    Cpu(f64),
    /// Piecewise-linear inverse CDF: sleep, or CPU work.
    Percentiles {
        cpu: bool,
        points: Arc<[(f64, f64)]>,
    },
}

#[derive(Debug)]
struct Node {
    model: NodeModel,
    /// Jobs waiting for the model to resume them, by call.
    waiting: FxHashMap<CallId, u32>,
    /// When the model's timer event is scheduled.
    timer_at: Option<Time>,
    /// Lazy timers: when the model last heard of an event.
    last_event: Time,
}

/// Instance counts integrated over time (Lambda model), exactly: in
/// instance-µs, so that a change told late ([`Sim::catch_up`]) is
/// corrected to the very sum it would have given on time.
#[derive(Debug, Default)]
struct InstanceAccounting {
    busy: u64,
    idle: u64,
    area_busy: i128,
    area_idle: i128,
    last: Time,
}

impl InstanceAccounting {
    fn advance(&mut self, now: Time) {
        if now > self.last {
            let dt = i128::from(now.micros_since(self.last));
            self.area_busy += i128::from(self.busy) * dt;
            self.area_idle += i128::from(self.idle) * dt;
            self.last = now;
        }
    }

    /// The counts went from `before` to `after` (busy, idle) at `at`,
    /// which may be earlier than the last advance.
    fn changed(&mut self, at: Time, before: (u64, u64), after: (u64, u64)) {
        if before == after {
            return;
        }
        if at >= self.last {
            self.advance(at);
        } else {
            // Told late: the new counts held from `at` on.
            let late = i128::from(self.last.micros_since(at));
            let delta = |b: u64, a: u64| i128::from(a) - i128::from(b);
            self.area_busy += delta(before.0, after.0) * late;
            self.area_idle += delta(before.1, after.1) * late;
        }
        self.busy = self.busy + after.0 - before.0;
        self.idle = self.idle + after.1 - before.1;
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: timers as events of their own even where they could run
    /// late, to check that running them late changes nothing.
    static EAGER_TIMERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Tests: instance starts as events of their own even where they
    /// could be told late, to check that telling them late changes
    /// nothing.
    static EAGER_STARTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Tests: the one-queue run even where a run could be partitioned, to
    /// check that partitioning changes nothing.
    static SEQUENTIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Tests: partitioned runs made on this thread.
    static PARTITIONED_RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Tests: each draw made on this thread, in the order made: the
    /// call's number and its standard draw (before any mean or scale).
    static DRAWS: std::cell::RefCell<Vec<(u64, f64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn sequential_forced() -> bool {
    #[cfg(test)]
    return SEQUENTIAL.get();
    #[cfg(not(test))]
    false
}

fn eager_timers_forced() -> bool {
    #[cfg(test)]
    return EAGER_TIMERS.get();
    #[cfg(not(test))]
    false
}

fn eager_starts_forced() -> bool {
    #[cfg(test)]
    return EAGER_STARTS.get();
    #[cfg(not(test))]
    false
}

/// `ms` in whole µs: `(ms * 1000.0).round().max(0.0) as u64` (half away
/// from zero), without the libm call ([`whole_us`]).
fn ms_to_us(ms: f64) -> u64 {
    whole_us(ms * 1000.0, Round::Nearest)
}

/// Runs `events` under `config`, writing log lines to `log` (if any): a
/// shorthand for [`run_workload`] without progress.
pub fn run_scenario(
    events: &[protocol::ScenarioEvent],
    config: &DesConfig,
    log: Option<&mut dyn Write>,
) -> Result<Summary, DesError> {
    run_workload(&Workload::from_events(events), config, log, &mut |_| {})
}

/// The errors [`run_workload`] would report before simulating anything
/// (no nodes, bad scales, per-invocation columns, a function with no
/// model), so a caller can
/// refuse bad input before it creates any output.
pub fn check(workload: &Workload, config: &DesConfig) -> Result<(), DesError> {
    check_config(config)?;
    if let Some(&(_, f)) = workload
        .arrivals
        .iter()
        .find(|&&(_, f)| f as usize >= workload.names.len())
    {
        return Err(DesError::BadWorkload(f, workload.names.len()));
    }
    if !workload.shapes.is_empty() && workload.shapes.len() != workload.arrivals.len() {
        return Err(DesError::BadWorkload(u32::MAX, workload.names.len()));
    }
    if config.default_function.is_none() {
        let catalog = config.catalog();
        if let Some(i) = workload.names.iter().position(|n| catalog.get(n).is_none()) {
            return Err(DesError::UnknownFunction {
                name: workload.names[i].clone(),
                row: workload.first_row(i as u32),
            });
        }
    }
    Ok(())
}

/// [`check`]'s errors of the configuration alone (no nodes, sizes out of
/// bounds, bad scales, settings that contradict the instance model),
/// whatever the workload: a caller running one workload under several
/// configurations checks the workload once and each configuration here.
pub fn check_config(config: &DesConfig) -> Result<(), DesError> {
    if config.nodes == 0 {
        return Err(DesError::NoNodes);
    }
    let sizes = [
        ("nodes", Some(config.nodes), limits::MAX_NODES),
        ("cores", Some(config.cores), limits::MAX_CORES),
        ("machine cores", config.machine_cores, limits::MAX_CORES),
        (
            "node capacity",
            Some(config.node_capacity),
            limits::MAX_NODE_CAPACITY,
        ),
        (
            "node memory (MB)",
            Some(config.node_memory_mb),
            limits::MAX_NODE_MEMORY_MB,
        ),
    ];
    for (what, value, max) in sizes {
        if let Some(value) = value.filter(|v| !(1..=max).contains(v)) {
            return Err(DesError::OutOfRange { what, value, max });
        }
    }
    let within = |x: f64, (low, high): (f64, f64)| (low..=high).contains(&x);
    if !within(config.time_scale, limits::TIME_SCALE)
        || !within(config.fn_time_scale, limits::FN_TIME_SCALE)
    {
        return Err(DesError::BadTimeScale(
            config.time_scale,
            config.fn_time_scale,
        ));
    }
    if !valid_package_scale(config.package_scale) {
        return Err(DesError::BadPackageScale(config.package_scale));
    }
    if let Some(slim) = &config.slim {
        slim.check()?;
        if slim.scale_to_zero && config.instances != slim.instance_model() {
            return Err(DesError::ScaleToZeroModel);
        }
        let starts = matches!(config.instances, InstanceModel::Lambda { .. })
            || config.worker.using_rest_mode;
        if !starts {
            let all = std::iter::once(("defaults", &slim.defaults))
                .chain(slim.functions.iter().map(|(n, f)| (n.as_str(), f)));
            if let Some((function, _)) = all.into_iter().find(|(_, f)| f.min_instances > 0) {
                return Err(DesError::MinInstancesModel(function.to_string()));
            }
        }
    }
    Ok(())
}

/// Runs an interned workload under `config`, writing log lines to `log`
/// (if any), telling `progress` how far it got.
pub fn run_workload(
    workload: &Workload,
    config: &DesConfig,
    log: Option<&mut dyn Write>,
    progress: Progress<'_>,
) -> Result<Summary, DesError> {
    check(workload, config)?;
    let names = &workload.names;
    let setup = Setup::new(names, config, |i: usize| DesError::UnknownFunction {
        name: names[i].clone(),
        row: workload.first_row(i as u32),
    })?;
    let mut scheduler = setup.scheduler(names, config);
    if partitioned::eligible(config, &setup, scheduler.as_ref(), workload, log.is_some()) {
        return partitioned::run(workload, config, &setup, scheduler.as_mut(), progress);
    }
    let mut source = ScenarioSource::new(workload, config.time_scale);
    let mut sim = Sim::new(config, names, &setup, scheduler, config.nodes, log, None);
    let arrived = sim.run(&mut source, progress)?;
    let end = sim.close()?;
    Ok(sim.summary(arrived, end))
}

/// The errors [`run_closed_loop`] would report before simulating anything
/// (bad clients or duration, a function of the mix with no model, and
/// [`check`]'s configuration errors).
pub fn check_closed_loop(closed: &ClosedLoop, config: &DesConfig) -> Result<(), DesError> {
    closed.check()?;
    let names = Workload::from_parts(closed.mix.names().to_vec(), Vec::new());
    check(&names, config).map_err(|e| match e {
        DesError::UnknownFunction { name, .. } => DesError::UnknownMixFunction { name },
        other => other,
    })
}

/// Runs the closed loop `closed` under `config` (module doc of
/// [`crate::source`]), writing log lines to `log` (if any), telling
/// `progress` how many calls were sent. The summary's
/// [`Summary::closed_loop`] has the calls per client and the throughput.
pub fn run_closed_loop(
    closed: &ClosedLoop,
    config: &DesConfig,
    log: Option<&mut dyn Write>,
    progress: Progress<'_>,
) -> Result<Summary, DesError> {
    check_closed_loop(closed, config)?;
    let mut source = ClosedLoopSource::new(closed);
    let names = closed.mix.names();
    let unknown = |i: usize| DesError::UnknownMixFunction {
        name: names[i].clone(),
    };
    // As live: calls in flight get the grace period after the duration,
    // then are cancelled.
    let cancel_at = Time::from_micros(
        u64::try_from((closed.total_duration() + closed.grace).as_micros()).unwrap_or(u64::MAX),
    );
    let mut summary = run_source(
        names,
        &mut source,
        config,
        Some(cancel_at),
        log,
        progress,
        unknown,
    )?;
    let last_reply = source.last_reply().as_secs_f64();
    summary.closed_loop = Some(ClosedLoopSummary {
        parameters: closed.parameters(),
        cancelled: summary.cancelled,
        calls_per_client: source.calls_per_client().to_vec(),
        last_reply_s: last_reply,
        throughput_per_s: if last_reply > 0.0 {
            summary.completed as f64 / last_reply
        } else {
            0.0
        },
        stages: if closed.clients.is_single() {
            Vec::new()
        } else {
            source.stage_summaries()
        },
    });
    Ok(summary)
}

/// Runs the calls of `source` (function ids index `names`) under
/// `config`; `unknown(i)` is the error for a name with no model. The
/// caller has checked the configuration ([`check`]). A call that would
/// end after `cancel_at` (a closed loop's end of grace) is cancelled
/// there, as the live clients cancel it.
pub fn run_source<S: ArrivalSource>(
    names: &[String],
    source: &mut S,
    config: &DesConfig,
    cancel_at: Option<Time>,
    log: Option<&mut dyn Write>,
    progress: Progress<'_>,
    unknown: impl Fn(usize) -> DesError,
) -> Result<Summary, DesError> {
    let setup = Setup::new(names, config, unknown)?;
    let scheduler = setup.scheduler(names, config);
    let mut sim = Sim::new(
        config,
        names,
        &setup,
        scheduler,
        config.nodes,
        log,
        cancel_at,
    );
    let arrived = sim.run(source, progress)?;
    let end = sim.close()?;
    Ok(sim.summary(arrived, end))
}

/// What a run knows of its functions, made once from the workload's
/// names (and shared by the nodes of a partitioned run).
struct Setup {
    functions: Vec<FunctionInfo>,
    /// Every function's catalog phases, in one flat table.
    phases: Vec<Phase>,
    /// Names interned once for the whole cluster: nodes share this table
    /// and are told functions by id.
    table: Arc<FunctionTable>,
    /// Each function's memory, MB (told to the scheduler).
    memory_mb: Vec<u32>,
    /// [`Sim::lazy_timers`] for this run's nodes.
    lazy_timers: bool,
    /// [`Sim::quiet_starts`] for this run's nodes.
    quiet_starts: bool,
}

impl Setup {
    fn new(
        names: &[String],
        config: &DesConfig,
        unknown: impl Fn(usize) -> DesError,
    ) -> Result<Self, DesError> {
        let catalog = config.catalog();
        let mut phases: Vec<Phase> = Vec::new();
        let mut functions = Vec::with_capacity(names.len());
        let mut memory = Vec::with_capacity(names.len());
        let mut table = FunctionTable::new();
        for (i, name) in names.iter().enumerate() {
            let (model, bytes, memory_mb) = match catalog.get(name) {
                Some(spec) => (
                    FunctionModel::Phases(spec.phases()),
                    spec.package_bytes,
                    spec.memory_mb,
                ),
                None => match &config.default_function {
                    Some(m) => (
                        m.clone(),
                        config.default_package_bytes,
                        DEFAULT_FUNCTION_MEMORY_MB,
                    ),
                    None => return Err(unknown(i)),
                },
            };
            let first = phases.len() as u32;
            let cpu_share = model.cpu_share();
            let draw = match model {
                FunctionModel::Phases(p) => {
                    phases.extend(p);
                    None
                }
                FunctionModel::Exponential {
                    warm_mean_ms,
                    cold_mean_ms,
                } => Some(Draw::Sleep(warm_mean_ms, cold_mean_ms)),
                FunctionModel::ExponentialCpu { mean_ms } => Some(Draw::Cpu(mean_ms)),
                FunctionModel::Percentiles { cpu, points } => Some(Draw::Percentiles {
                    cpu,
                    points: points.into(),
                }),
            };
            let package_bytes = scaled_bytes(bytes, config.package_scale);
            functions.push(FunctionInfo {
                first_phase: first,
                end_phase: phases.len() as u32,
                draw,
                cpu_share,
                package_bytes,
                instant_build: config.profile.image_build_ms(package_bytes) * 1000.0 < 1.0,
            });
            memory.push(memory_mb);
            table.declare(name, memory_mb);
        }
        // Scale to zero: a function's own idle time is its keep-alive.
        if let Some(slim) = &config.slim {
            for (name, keep_alive) in slim.own_keep_alives() {
                if let Some(id) = table.id(name) {
                    table.set_keep_alive(id, keep_alive);
                }
            }
        }
        let mut setup = Self {
            functions,
            phases,
            table: Arc::new(table),
            memory_mb: memory,
            lazy_timers: false,
            quiet_starts: false,
        };
        // Read once, on the caller's thread (a partitioned run's nodes
        // are made on others).
        let model = setup.node_model(config);
        setup.lazy_timers =
            !eager_timers_forced() && config.slim.is_none() && model.timers_only_expire();
        setup.quiet_starts =
            !eager_starts_forced() && config.slim.is_none() && model.call_starts_are_private();
        Ok(setup)
    }

    /// The run's scheduler, with every node a member and every function
    /// declared.
    fn scheduler(&self, names: &[String], config: &DesConfig) -> Box<dyn Scheduler> {
        let mut scheduler = config.scheduler.build();
        for id in 0..config.nodes {
            scheduler.membership(
                Membership::Insert(NodeInfo {
                    id,
                    capacity: config.node_capacity,
                    cores: config.cores,
                    memory_mb: config.node_memory_mb,
                }),
                Time::ZERO,
            );
        }
        for (name, &memory_mb) in names.iter().zip(&self.memory_mb) {
            scheduler.declare_function(name, memory_mb);
        }
        scheduler
    }

    /// A node's model, knowing no call yet.
    fn node_model(&self, config: &DesConfig) -> NodeModel {
        NodeModel::new(config.worker, config.instances)
            .with_node_memory_mb(config.node_memory_mb)
            .with_functions(self.table.clone())
            .with_reuse_rules(config.reuse)
            .with_admission(config.admission)
    }
}

#[derive(Debug, Default)]
struct Stats {
    events: u64,
    completed: u64,
    failed: u64,
    /// Cancelled at the end of a closed loop's grace period.
    cancelled: u64,
    rejections: u64,
    rerouted: u64,
    cold: u64,
    image_builds: u64,
    pooled: u64,
    warm_instance: u64,
    /// Per successful call: duration - `InternalExecutionTime`, whole ms.
    latency: MsStats,
    /// Per successful call: end - start, whole ms.
    duration: MsStats,
    /// Instances started for `min_instances`.
    min_instances_started: u64,
}

impl Stats {
    /// Adds `other`'s counts (another part of the same run: the
    /// partitioned run's nodes).
    fn merge(&mut self, other: &Stats) {
        self.events += other.events;
        self.completed += other.completed;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.rejections += other.rejections;
        self.rerouted += other.rerouted;
        self.cold += other.cold;
        self.image_builds += other.image_builds;
        self.pooled += other.pooled;
        self.warm_instance += other.warm_instance;
        self.latency.merge(&other.latency);
        self.duration.merge(&other.duration);
        self.min_instances_started += other.min_instances_started;
    }
}

/// Whole-ms values of successful calls: their exact sum and an HDR
/// histogram of the precision `utils analyze` uses (4 significant digits).
/// Zeros (every latency of an ideal run) are counted apart and put in the
/// histogram when a summary is made: a count instead of a histogram
/// update per call.
#[derive(Debug)]
pub(crate) struct MsStats {
    sum: u128,
    histogram: hdrhistogram::Histogram<u64>,
    zeros: u64,
}

impl Default for MsStats {
    fn default() -> Self {
        Self::with_sigfig(4)
    }
}

impl MsStats {
    /// Empty, with a histogram of `sigfig` (1..=5) significant digits.
    pub(crate) fn with_sigfig(sigfig: u8) -> Self {
        Self {
            sum: 0,
            zeros: 0,
            // Auto-resizing; 1..=5 significant digits is valid, so this
            // cannot fail (the fallback keeps clippy's no-panic rule).
            histogram: hdrhistogram::Histogram::new(sigfig.clamp(1, 5))
                .unwrap_or_else(|_| unreachable_hist()),
        }
    }

    /// Adds `other`'s values: the same sum, zeros and histogram as if
    /// they had been recorded here.
    pub(crate) fn merge(&mut self, other: &MsStats) {
        self.sum += other.sum;
        self.zeros += other.zeros;
        if self.histogram.add(&other.histogram).is_err() {
            // (Auto-resizing histograms of one precision always add; kept
            // exact anyway, value by value.)
            for v in other.histogram.iter_recorded() {
                let (value, n) = (v.value_iterated_to(), v.count_at_value());
                if self.histogram.record_n(value, n).is_err() {
                    self.histogram.saturating_record(value);
                }
            }
        }
    }

    /// Records `n` zeros.
    pub(crate) fn record_zeros(&mut self, n: u64) {
        self.zeros += n;
    }

    pub(crate) fn record(&mut self, ms: u64) {
        if ms == 0 {
            self.zeros += 1;
            return;
        }
        self.sum += u128::from(ms);
        if self.histogram.record(ms).is_err() {
            self.histogram.saturating_record(ms);
        }
    }

    /// Mean (as `utils analyze` computes it: the integer sum over the
    /// count) and percentiles of `count` recorded values.
    pub(crate) fn summary(&self, count: u64) -> LatencySummary {
        if count == 0 {
            return LatencySummary::default();
        }
        let with_zeros;
        let h = if self.zeros == 0 {
            &self.histogram
        } else {
            let mut h = self.histogram.clone();
            if h.record_n(0, self.zeros).is_err() {
                h.saturating_record(0);
            }
            with_zeros = h;
            &with_zeros
        };
        let q = |p: f64| h.value_at_quantile(p) as f64;
        LatencySummary {
            mean: self.sum as f64 / count as f64,
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            max: h.max() as f64,
        }
    }
}

fn unreachable_hist() -> hdrhistogram::Histogram<u64> {
    // `new(4)` only fails for sigfig > 5; keep a bounded fallback anyway.
    hdrhistogram::Histogram::new_with_bounds(1, u64::MAX / 2, 2)
        .unwrap_or_else(|_| hdrhistogram::Histogram::new(2).expect("valid histogram bounds"))
}

struct Sim<'a, 'w> {
    config: &'a DesConfig,
    names: &'a [String],
    /// The workload's names with their ids (the node models' table).
    table: Arc<FunctionTable>,
    functions: &'a [FunctionInfo],
    phases: &'a [Phase],
    scheduler: Box<dyn Scheduler>,
    nodes: Vec<Node>,
    /// One per node, or one shared by all (`machine_cores`).
    cpus: Vec<SharedCpu>,
    queue: EventQueue<Event>,
    jobs: Vec<Job>,
    free_jobs: Vec<u32>,
    in_flight: u64,
    /// The key of the calls' random streams ([`crate::stream`]).
    stream_key: u64,
    log: Option<LogWriter<&'w mut dyn Write>>,
    stats: Stats,
    instances: InstanceAccounting,
    /// Lambda model: integrate instance counts over time.
    count_instances: bool,
    /// The nodes' timers only expire idle instances
    /// ([`NodeModel::timers_only_expire`]) and no SlimFaas layer looks
    /// at instances across nodes: a node's timers run late, just before
    /// its next event ([`Sim::on_model`]) or at the end of the run,
    /// instead of as events of their own (under a spreading scheduler at
    /// Azure scale, about one per call). Outputs are the same.
    lazy_timers: bool,
    /// A keep-alive instance a call starts is seen by nothing but that
    /// call until it ends ([`NodeModel::call_starts_are_private`]) and no
    /// SlimFaas layer counts starting instances: when the call's first
    /// work is a sleep, its start is no event of its own; the sleep is
    /// scheduled from the start's end, and the model is told of the
    /// start just before it is told of the call's end
    /// ([`Job::start_untold`]).
    quiet_starts: bool,
    /// The time of the last event handled.
    clock: Time,
    done_buffer: Vec<u32>,
    last_completion: Time,
    /// Closed loop: (client, time its reply reached it) of calls that
    /// ended, for the source (drained after each event).
    ended: Vec<(u32, Time, Reply)>,
    /// When calls still in flight are cancelled (a closed loop's end of
    /// grace).
    cancel_at: Option<Time>,
    /// The SlimFaas layer ([`DesConfig::slim`]).
    gate: Option<Gate>,
    /// Functions (ids) a call of which released its slot, and when: their
    /// next waiting call is dispatched after the current event
    /// ([`Sim::dispatch_freed`]).
    freed: Vec<(u32, Time)>,
    /// Functions (ids) with `min_instances` > 0, with it.
    floors: Vec<(u32, u32)>,
    /// Instances for a minimum waiting for their image on a node: (node,
    /// function, instances wanted there).
    floor_pending: Vec<(u32, u32, usize)>,
}

impl<'a, 'w> Sim<'a, 'w> {
    /// A simulation of `nodes` nodes (ids `0..nodes`) under `config`,
    /// choosing them with `scheduler`; nothing has arrived yet.
    fn new(
        config: &'a DesConfig,
        names: &'a [String],
        setup: &'a Setup,
        scheduler: Box<dyn Scheduler>,
        nodes: u32,
        log: Option<&'w mut dyn Write>,
        cancel_at: Option<Time>,
    ) -> Self {
        let mut sim = Sim {
            config,
            names,
            table: setup.table.clone(),
            functions: &setup.functions,
            phases: &setup.phases,
            scheduler,
            nodes: (0..nodes)
                .map(|_| Node {
                    model: setup.node_model(config),
                    waiting: FxHashMap::default(),
                    timer_at: None,
                    last_event: Time::ZERO,
                })
                .collect(),
            cpus: match config.machine_cores {
                Some(cores) => vec![SharedCpu::new(cores)],
                None => (0..nodes).map(|_| SharedCpu::new(config.cores)).collect(),
            },
            queue: EventQueue::with_capacity(1024),
            jobs: Vec::with_capacity(1024),
            free_jobs: Vec::new(),
            in_flight: 0,
            stream_key: run_key(config.scheduler.seed()),
            log: log.map(|w| LogWriter::new(w, config.epoch_ms, names, config.scheduler.name())),
            stats: Stats::default(),
            instances: InstanceAccounting::default(),
            count_instances: matches!(config.instances, InstanceModel::Lambda { .. }),
            lazy_timers: setup.lazy_timers,
            quiet_starts: setup.quiet_starts,
            clock: Time::ZERO,
            done_buffer: Vec::new(),
            last_completion: Time::ZERO,
            ended: Vec::new(),
            cancel_at,
            gate: config.slim.as_ref().map(|s| Gate::new(s, names)),
            freed: Vec::new(),
            floors: match &config.slim {
                Some(slim) => (0..names.len() as u32)
                    .filter_map(|f| {
                        let min = slim.get(&names[f as usize]).min_instances;
                        (min > 0).then_some((f, min))
                    })
                    .collect(),
                None => Vec::new(),
            },
            floor_pending: Vec::new(),
        };
        if !sim.floors.is_empty() {
            sim.queue.push(Time::ZERO, Event::KeepMin);
        }
        sim
    }

    /// Takes calls from `source` and handles events until the last call
    /// has ended and the source has no more; returns how many arrived.
    fn run<S: ArrivalSource>(
        &mut self,
        source: &mut S,
        progress: Progress<'_>,
    ) -> Result<u64, DesError> {
        let mut arrived = 0u64;
        loop {
            let queued = self.queue.peek_time();
            let arrival = source.peek();
            match (queued, arrival) {
                (Some(q), Some(a)) if q <= a => self.handle_next()?,
                (Some(_), None) => {
                    if self.in_flight == 0 {
                        break;
                    }
                    self.handle_next()?;
                }
                (_, Some(_)) => {
                    let Some(a) = source.next() else { break };
                    let number = arrived;
                    arrived += 1;
                    self.stats.events += 1;
                    self.clock = a.time;
                    self.arrive(a.time, a.function, a.shape, a.client, a.kind, number)?;
                    if arrived & 0xFFFF == 0 {
                        progress(arrived);
                    }
                }
                (None, None) => break,
            }
            if !self.freed.is_empty() {
                self.dispatch_freed()?;
            }
            // Closed loop: the clients hear of their calls' ends.
            for (client, at, reply) in self.ended.drain(..) {
                source.replied(client, at, reply);
            }
        }
        progress(arrived);
        Ok(arrived)
    }

    /// The end of a run: flushes the log, runs the timers that would
    /// have run as events ([`Sim::lazy_timers`]: those due by the last
    /// event, later than the last completion when calls that failed or
    /// were refused came after it) and closes the instance counts' time
    /// integrals; returns the last completion.
    fn close(&mut self) -> Result<Time, DesError> {
        if let Some(log) = self.log.as_mut() {
            log.flush()?;
        }
        let end = self.last_completion;
        if self.lazy_timers {
            let until = self.clock.max(end);
            for n in &mut self.nodes {
                Self::catch_up(n, &mut self.instances, until);
            }
        }
        self.instances.advance(end);
        Ok(end)
    }

    fn cpu_of(&self, node: u32) -> u32 {
        if self.cpus.len() == 1 {
            0
        } else {
            node
        }
    }

    /// Calls the node's model at `now`, keeping the instance accounting.
    fn on_model<T>(&mut self, node: u32, now: Time, f: impl FnOnce(&mut NodeModel) -> T) -> T {
        let n = &mut self.nodes[node as usize];
        if !self.count_instances {
            return f(&mut n.model);
        }
        if self.lazy_timers {
            Self::catch_up(n, &mut self.instances, now);
            n.last_event = now;
        }
        let model = &mut n.model;
        let before = model.keep_alive_instances();
        let out = f(model);
        let after = model.keep_alive_instances();
        self.instances.changed(now, before, after);
        out
    }

    /// Lazy timers ([`Sim::lazy_timers`]): runs the node's timers due by
    /// `now`, each when it would have run as an event, and counts what
    /// they changed from then. That is its due time, or the time of the
    /// node's last event if it is due before it: such a timer was set by
    /// that event (those due before were run when it came), and an event
    /// of its own would have run at once, then (an instance whose
    /// keep-alive was not extended by its reuse, idle only once its call
    /// ended).
    #[inline]
    fn catch_up(node: &mut Node, instances: &mut InstanceAccounting, now: Time) {
        let model = &mut node.model;
        while let Some(t) = model.next_timer().filter(|&t| t <= now) {
            let t = t.max(node.last_event);
            let before = model.keep_alive_instances();
            // Removals only, which cost nothing here.
            model.expire_due(t);
            instances.changed(t, before, model.keep_alive_instances());
        }
    }

    fn handle_next(&mut self) -> Result<(), DesError> {
        let Some((now, event)) = self.queue.pop() else {
            return Ok(());
        };
        self.stats.events += 1;
        self.clock = now;
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
            Event::InstanceUp {
                node,
                instance,
                job,
            } => {
                let effects = self.on_model(node, now, |m| m.instance_started(instance, now));
                self.apply(node, effects, now)?;
                if job != NO_JOB {
                    // The starter runs on its instance; its start was its
                    // cost.
                    self.begin_service(job, 0, now)?;
                }
            }
            Event::Timer { node } => {
                let n = &mut self.nodes[node as usize];
                if n.timer_at == Some(now) {
                    n.timer_at = None;
                    let effects = self.on_model(node, now, |m| m.timer(now));
                    self.apply(node, effects, now)?;
                }
            }
            Event::GiveUp { key } => self.give_up(key, now)?,
            Event::Retry { job } => self.retried(job, now)?,
            Event::KeepMin => {
                self.keep_min_instances(now)?;
                self.queue
                    .push(now.saturating_add(crate::slim::KEEP_TICK), Event::KeepMin);
            }
        }
        Ok(())
    }

    /// Carries out a node model's effects at `now`, then keeps the node's
    /// timer event at the model's next timer.
    fn apply(&mut self, node: u32, effects: Effects, now: Time) -> Result<(), DesError> {
        for p in &effects.prewarm {
            let bytes = self
                .table
                .id(&p.function)
                .map_or(0, |f| self.functions[f as usize].package_bytes);
            let profile = &self.config.profile;
            let start = match p.kind {
                // A pre-warmed Lambda instance costs what its cold start does.
                InstanceKind::KeepAlive => profile.lambda_cold_ms,
                InstanceKind::Pooled | InstanceKind::Rest => profile.instance_create_ms,
            };
            let cost = start + profile.instance_load_ms(bytes);
            self.queue.push(
                now.add_micros(ms_to_us(cost)),
                Event::InstanceUp {
                    node,
                    instance: p.instance,
                    job: NO_JOB,
                },
            );
        }
        // Removals and deleted images cost nothing in the model.
        for &(call, step) in &effects.resume {
            if step == Step::Wait {
                continue;
            }
            if let Some(job) = self.nodes[node as usize].waiting.remove(&call) {
                self.take_step(job, step, now)?;
            }
        }
        for &call in &effects.rejected {
            if let Some(job) = self.nodes[node as usize].waiting.remove(&call) {
                self.rejected(job, now)?;
            }
        }
        let n = &mut self.nodes[node as usize];
        // Its storage serves the node's next events (no allocation per
        // event).
        n.model.recycle(effects);
        if self.lazy_timers {
            return Ok(());
        }
        if let Some(t) = n.model.next_timer() {
            let t = t.max(now);
            if n.timer_at.is_none_or(|cur| t < cur) {
                n.timer_at = Some(t);
                self.queue.push(t, Event::Timer { node });
            }
        }
        Ok(())
    }

    /// A scenario call arrives (with its row's duration and memory, if
    /// the scenario has them): to the scheduler, or first to the SlimFaas
    /// queue ([`DesConfig::slim`]).
    fn arrive(
        &mut self,
        now: Time,
        function: u32,
        shape: Option<CallShape>,
        client: u32,
        kind: CallKind,
        number: u64,
    ) -> Result<(), DesError> {
        if self.gate.is_some() {
            let id = self.new_call(now, function, shape, client, 0, kind, number);
            self.in_flight += 1;
            let name = self.names[function as usize].as_str();
            let gated = match self.gate.as_mut() {
                Some(gate) => gate.arrive(function, name, id, kind, now),
                None => Gated::Run,
            };
            return match gated {
                Gated::Run => self.dispatch(id, now),
                Gated::Wait { key, give_up_at } => {
                    if let Some(t) = give_up_at {
                        self.queue.push(t, Event::GiveUp { key });
                    }
                    Ok(())
                }
            };
        }
        let name = self.names[function as usize].as_str();
        let node = match self.scheduler.select_by_id(function, name, now) {
            Ok(n) => n,
            Err(e) => {
                self.stats.failed += 1;
                self.ended_for(client, now);
                if let Some(log) = self.log.as_mut() {
                    let at = now.as_millis() as i64;
                    log.error(at, name, &format!("no node for {name}: {e}"))?;
                }
                return Ok(());
            }
        };
        let id = self.new_call(now, function, shape, client, node, kind, number);
        self.in_flight += 1;
        self.send(id, node, now)
    }

    /// The job of a call of `function` arriving at `now`, for `node`;
    /// `number` is its place in its source's order (its random stream).
    #[allow(clippy::too_many_arguments)]
    fn new_call(
        &mut self,
        now: Time,
        function: u32,
        shape: Option<CallShape>,
        client: u32,
        node: u32,
        kind: CallKind,
        number: u64,
    ) -> u32 {
        let info = &self.functions[function as usize];
        let (mut first_phase, end_phase) = (info.first_phase, info.end_phase);
        let (mut pending_cpu, mut pending_sleep) = (0.0, 0);
        let mut memory_mb = None;
        if let Some(shape) = shape {
            // The row's duration replaces the function's phases: its CPU
            // share as CPU work, the rest as sleep (scaled as phases are).
            first_phase = end_phase;
            let us = shape.duration_us as f64 * self.config.fn_time_scale;
            let cpu = us * info.cpu_share;
            pending_cpu = cpu * self.config.profile.cpu_scale;
            pending_sleep = whole_us(us - cpu, Round::Nearest);
            memory_mb = shape.memory_mb;
        }
        self.new_job(Job {
            build: false,
            function,
            node,
            call: CallId::default(),
            arrival: now,
            dispatched: now,
            service_start: Time::ZERO,
            started: false,
            next_phase: first_phase,
            end_phase,
            pending_sleep,
            pending_cpu,
            memory_mb,
            reroutes: 0,
            shaped: shape.is_some(),
            instance: 0,
            builder: NO_JOB,
            client,
            kind,
            retries: 0,
            start_untold: false,
            number,
        })
    }

    /// The call `id` holds a slot of the SlimFaas queue: the scheduler
    /// picks its node now. If none, it fails and frees its slot.
    fn dispatch(&mut self, id: u32, now: Time) -> Result<(), DesError> {
        let job = &mut self.jobs[id as usize];
        job.dispatched = now;
        let (function, arrival, client) = (job.function, job.arrival, job.client);
        let names = self.names;
        let name = names[function as usize].as_str();
        match self.scheduler.select_by_id(function, name, now) {
            Ok(node) => self.send(id, node, now),
            Err(_) if self.retry(id, AttemptOutcome::NotDispatched, now) => Ok(()),
            Err(e) => {
                self.stats.failed += 1;
                self.in_flight -= 1;
                self.free_jobs.push(id);
                self.ended_for(client, now);
                self.freed.push((function, now));
                if let Some(log) = self.log.as_mut() {
                    let ms = |t: Time| t.as_millis() as i64;
                    log.error_between(
                        ms(arrival),
                        ms(now),
                        name,
                        &format!("no node for {name}: {e}"),
                    )?;
                }
                Ok(())
            }
        }
    }

    /// Slots freed during the last event go to the calls the SlimFaas
    /// queue names, dispatched at the time their slot was freed (a
    /// dispatch that fails frees its slot again, handled in this same
    /// loop, not by recursion).
    fn dispatch_freed(&mut self) -> Result<(), DesError> {
        let mut i = 0;
        while i < self.freed.len() {
            let (function, now) = self.freed[i];
            i += 1;
            let Some(gate) = self.gate.as_mut() else {
                break;
            };
            let Some((id, since)) = gate.finished(&self.names[function as usize]) else {
                continue;
            };
            let waited = now.saturating_since(since);
            gate.dispatched(function, waited);
            self.dispatch(id, now)?;
        }
        self.freed.clear();
        Ok(())
    }

    /// The SlimFaas queue's call `key` has waited its `wait_s` without a
    /// slot: it fails, as the live balancer answers 503 then.
    fn give_up(&mut self, key: u64, now: Time) -> Result<(), DesError> {
        let Some(gate) = self.gate.as_mut() else {
            return Ok(());
        };
        let Some(id) = gate.give_up(key, self.names) else {
            return Ok(()); // it got its slot in time
        };
        let job = self.jobs[id as usize];
        let name = self.names[job.function as usize].as_str();
        let message = format!(
            "no slot for {name} within {} s (max_parallel {})",
            gate.wait_s(job.function),
            gate.max_parallel(name)
        );
        self.stats.failed += 1;
        self.in_flight -= 1;
        self.free_jobs.push(id);
        self.ended_for(job.client, now);
        if let Some(log) = self.log.as_mut() {
            let ms = |t: Time| t.as_millis() as i64;
            log.error_between(ms(job.arrival), ms(now), name, &message)?;
        }
        Ok(())
    }

    /// The call `id` arrives at `node`'s model.
    fn send(&mut self, id: u32, node: u32, now: Time) -> Result<(), DesError> {
        let Job {
            function,
            memory_mb,
            ..
        } = self.jobs[id as usize];
        self.jobs[id as usize].node = node;
        let info = &self.functions[function as usize];
        // (Instances kept for `min_instances` wait for builds in
        // `build_done`.)
        let at_once = (info.instant_build && self.floors.is_empty()).then_some(info.package_bytes);
        let (call, mut effects, built) = self.on_model(node, now, |m| match at_once {
            Some(bytes) => m.call_arrived_building_at_once(function, memory_mb, bytes, now),
            None => {
                let (call, effects) = m.call_arrived_by_id_with_memory(function, memory_mb, now);
                (call, effects, false)
            }
        });
        if built {
            self.stats.image_builds += 1;
        }
        self.jobs[id as usize].call = call;
        let step = effects.take_step(call).unwrap_or(Step::Wait);
        let rejected = !effects.rejected.is_empty() && effects.rejected.contains(&call);
        self.apply(node, effects, now)?;
        if rejected {
            self.rejected(id, now)
        } else {
            self.take_step(id, step, now)
        }
    }

    /// The node of call `id` rejected it: it goes to the next node that
    /// admits it (`reroute`), or fails.
    fn rejected(&mut self, id: u32, now: Time) -> Result<(), DesError> {
        self.stats.rejections += 1;
        let job = self.jobs[id as usize];
        let name = self.names[job.function as usize].as_str();
        if job.reroutes == 0 {
            // The scheduler counted the call on its node: it ended there.
            self.scheduler.finished_by_id(
                job.function,
                &Completion {
                    node: job.node,
                    function: name,
                    duration: now.saturating_since(job.dispatched),
                    cold: true,
                    ok: false,
                    internal: Duration::ZERO,
                },
                now,
            );
        }
        if self.config.reroute && job.reroutes + 1 < self.config.nodes {
            self.jobs[id as usize].reroutes += 1;
            if job.reroutes == 0 {
                self.stats.rerouted += 1;
            }
            let next = (job.node + 1) % self.config.nodes;
            return self.send(id, next, now);
        }
        // A node without room answers as a live worker that cannot take
        // a call: 503, which the balancer retries (des::slim).
        if self.retry(id, AttemptOutcome::Replied(503), now) {
            return Ok(());
        }
        self.stats.failed += 1;
        self.in_flight -= 1;
        self.free_jobs.push(id);
        self.ended_for(job.client, now);
        if self.gate.is_some() {
            self.freed.push((job.function, now));
        }
        if let Some(log) = self.log.as_mut() {
            let at = job.arrival.as_millis() as i64;
            let message = format!("node {} rejected {name}: no room", job.node);
            match job.retries {
                0 => log.error(at, name, &message)?,
                n => log.error_between(
                    at,
                    now.as_millis() as i64,
                    name,
                    &format!("{message}; retries spent ({} attempts)", n + 1),
                )?,
            }
        }
        Ok(())
    }

    /// The SlimFaas layer's retry of the call `id` after an attempt that
    /// ended with `outcome` at `now` (des::slim): true when it is tried
    /// again (an [`Event::Retry`] is due); false when it fails now.
    fn retry(&mut self, id: u32, outcome: AttemptOutcome, now: Time) -> bool {
        let Some(gate) = self.gate.as_mut() else {
            return false;
        };
        let job = self.jobs[id as usize];
        let RetryDecision::RetryAt(at) =
            gate.retry(job.function, job.kind, outcome, job.retries, now)
        else {
            return false;
        };
        let j = &mut self.jobs[id as usize];
        if outcome != AttemptOutcome::NotDispatched {
            j.retries += 1;
        }
        j.reroutes = 0;
        if job.kind == CallKind::Async {
            // Its slot goes back until its next turn in the queue; a
            // synchronous call keeps it across its retries (as live).
            self.freed.push((job.function, now));
        }
        self.queue.push(at, Event::Retry { job: id });
        true
    }

    /// The call `id` is tried again: a synchronous one holds its slot and
    /// goes to the scheduler; an asynchronous one queues again.
    fn retried(&mut self, id: u32, now: Time) -> Result<(), DesError> {
        let job = self.jobs[id as usize];
        if job.kind == CallKind::Sync {
            return self.dispatch(id, now);
        }
        let name = self.names[job.function as usize].as_str();
        let gated = match self.gate.as_mut() {
            Some(gate) => gate.requeue(job.function, name, id, now),
            None => Gated::Run,
        };
        match gated {
            Gated::Run => self.dispatch(id, now),
            Gated::Wait { .. } => Ok(()),
        }
    }

    /// Tells a closed loop's `client` (if any) at `at` that its call failed.
    fn ended_for(&mut self, client: u32, at: Time) {
        self.ended_with(client, at, Reply::Failed);
    }

    /// Tells a closed loop's `client` (if any) at `at` how its call ended.
    fn ended_with(&mut self, client: u32, at: Time, reply: Reply) {
        if client != NO_CLIENT {
            self.ended.push((client, at, reply));
        }
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

    /// The model says what the call `id` does next, at `now`.
    fn take_step(&mut self, id: u32, step: Step, now: Time) -> Result<(), DesError> {
        let Job {
            node,
            function,
            call,
            ..
        } = self.jobs[id as usize];
        let bytes = self.functions[function as usize].package_bytes;
        let profile = &self.config.profile;
        let load = profile.instance_load_ms(bytes);
        match step {
            Step::Wait => {
                self.nodes[node as usize].waiting.insert(call, id);
                Ok(())
            }
            Step::BuildImage => self.start_build(node, function, id, now),
            Step::Start { instance, kind } => {
                self.jobs[id as usize].instance = instance;
                let cost = match kind {
                    InstanceKind::KeepAlive => profile.lambda_cold_ms,
                    InstanceKind::Rest | InstanceKind::Pooled => profile.rest_start_ms,
                } + load;
                self.count_start(id, CallMeta::default());
                let up = now.add_micros(ms_to_us(cost));
                let job = &mut self.jobs[id as usize];
                if self.quiet_starts
                    && kind == InstanceKind::KeepAlive
                    && job.pending_cpu <= 0.0
                    && job.pending_sleep > 0
                {
                    // What `InstanceUp` and `step` would do at `up`, but
                    // for telling the model, which hears of the start at
                    // the call's end (`finish`).
                    job.started = true;
                    job.service_start = up;
                    job.start_untold = true;
                    let at = up.add_micros(std::mem::take(&mut job.pending_sleep));
                    self.queue.push(at, Event::Step(id));
                    return Ok(());
                }
                self.queue.push(
                    up,
                    Event::InstanceUp {
                        node,
                        instance,
                        job: id,
                    },
                );
                Ok(())
            }
            Step::Run { instance } => {
                self.jobs[id as usize].instance = instance;
                let meta = self.nodes[node as usize]
                    .model
                    .meta(call)
                    .unwrap_or_default();
                let cost = if meta.pooled {
                    profile.pooled_ms
                } else {
                    match self.config.instances {
                        InstanceModel::Lambda { .. } => profile.lambda_warm_ms,
                        InstanceModel::HotFunctions => profile.rest_warm_ms,
                    }
                };
                // A call that waited for its REST instance to start is cold.
                self.count_start(id, meta);
                self.begin_service(id, ms_to_us(cost), now)
            }
            Step::RunOnce { instance } => {
                self.jobs[id as usize].instance = instance;
                self.count_start(id, CallMeta::default());
                let cost = ms_to_us(profile.instance_create_ms + load);
                self.begin_service(id, cost, now)
            }
        }
    }

    /// Counts how the call got its instance (`meta`: how the model serves
    /// it), and draws an exponential service time if its function has one.
    fn count_start(&mut self, id: u32, meta: CallMeta) {
        let cold = meta.is_cold();
        if cold {
            self.stats.cold += 1;
        } else if meta.pooled {
            self.stats.pooled += 1;
        } else {
            self.stats.warm_instance += 1;
        }
        let job = &mut self.jobs[id as usize];
        if job.shaped {
            return; // its row's duration is its work
        }
        let Some(draw) = &self.functions[job.function as usize].draw else {
            return;
        };
        let scale = self.config.fn_time_scale;
        let cpu_scale = self.config.profile.cpu_scale * scale;
        let mut rng = CallStream::new(self.stream_key, job.number, job.retries);
        #[cfg(test)]
        DRAWS.with_borrow_mut(|d| d.push((job.number, Exp1.sample(&mut rng.clone()))));
        match draw {
            Draw::Sleep(warm, cold_mean) => {
                let mean = if cold { cold_mean } else { warm };
                let x: f64 = Exp1.sample(&mut rng);
                job.pending_sleep = ms_to_us(x * mean * scale).max(1);
            }
            Draw::Cpu(mean) => {
                let x: f64 = Exp1.sample(&mut rng);
                job.pending_cpu = (x * mean * 1000.0 * cpu_scale).max(1.0);
            }
            Draw::Percentiles { cpu, points } => {
                let u: f64 = rng.gen();
                let ms = percentile_draw(points, u);
                if *cpu {
                    job.pending_cpu = ms * 1000.0 * cpu_scale;
                } else {
                    job.pending_sleep = ms_to_us(ms * scale);
                }
            }
        }
    }

    /// The call's instance is ready after `cost` µs: then its phases run.
    fn begin_service(&mut self, id: u32, cost: u64, now: Time) -> Result<(), DesError> {
        if cost == 0 {
            self.step(id, now)
        } else {
            self.queue.push(now.add_micros(cost), Event::Step(id));
            Ok(())
        }
    }

    /// The call `builder` builds `function`'s image on `node`: CPU work
    /// shared with the calls' phases and other builds.
    fn start_build(
        &mut self,
        node: u32,
        function: u32,
        builder: u32,
        now: Time,
    ) -> Result<(), DesError> {
        self.stats.image_builds += 1;
        let info = &self.functions[function as usize];
        if info.instant_build {
            return self.build_done(node, function, builder, now);
        }
        let work = self.config.profile.image_build_ms(info.package_bytes) * 1000.0;
        let call = match builder {
            NO_JOB => CallId::default(),
            b => self.jobs[b as usize].call,
        };
        let build = self.new_job(Job {
            build: true,
            function,
            node,
            call,
            arrival: now,
            dispatched: now,
            service_start: now,
            started: true,
            next_phase: 0,
            end_phase: 0,
            pending_sleep: 0,
            pending_cpu: 0.0,
            memory_mb: None,
            reroutes: 0,
            shaped: false,
            instance: 0,
            builder,
            client: NO_CLIENT,
            kind: CallKind::Sync,
            retries: 0,
            start_untold: false,
            number: 0,
        });
        let cpu = self.cpu_of(node);
        if let Some(t) = self.cpus[cpu as usize].add(build, work, now) {
            self.queue.push(t, Event::Cpu { cpu });
        }
        Ok(())
    }

    /// A function's image build finished on a node: the model caches it
    /// and resumes the calls that waited (the builder first).
    fn build_done(
        &mut self,
        node: u32,
        function: u32,
        builder: u32,
        now: Time,
    ) -> Result<(), DesError> {
        let bytes = self.functions[function as usize].package_bytes;
        // The builder is resumed with the calls that waited for it.
        if builder != NO_JOB {
            let call = self.jobs[builder as usize].call;
            self.nodes[node as usize].waiting.insert(call, builder);
        }
        let effects = self.on_model(node, now, |m| m.image_built_by_id(function, bytes, now));
        self.apply(node, effects, now)?;
        // Instances kept for `min_instances` that waited for this image.
        if self.floor_pending.is_empty() {
            return Ok(());
        }
        let mut i = 0;
        while i < self.floor_pending.len() {
            let (n, f, target) = self.floor_pending[i];
            if (n, f) == (node, function) {
                self.floor_pending.swap_remove(i);
                self.start_for_minimum(node, function, target, now)?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// The functions' `min_instances` (des::slim), as the live balancer's
    /// task keeps them: a function with fewer instances (ready or
    /// starting, summed over the nodes) than its minimum gets the missing
    /// ones started on the nodes the scheduler picks for as many calls
    /// (each selection ended at once, unsuccessfully, as live), each node
    /// asked for what it has plus its share. A function whose image is
    /// still being built for them is left until it is.
    fn keep_min_instances(&mut self, now: Time) -> Result<(), DesError> {
        let names = self.names;
        for i in 0..self.floors.len() {
            let (function, min) = self.floors[i];
            if self.floor_pending.iter().any(|&(_, f, _)| f == function) {
                continue;
            }
            let name = names[function as usize].as_str();
            let on = |n: &Node| {
                let (ready, starting) = n.model.function_instances(name);
                ready + starting
            };
            let have: usize = self.nodes.iter().map(on).sum();
            let Some(missing) = (min as usize).checked_sub(have).filter(|&m| m > 0) else {
                continue;
            };
            let mut picked: Vec<(u32, usize)> = Vec::new();
            for _ in 0..missing {
                let Ok(node) = self.scheduler.select_by_id(function, name, now) else {
                    break;
                };
                self.scheduler.finished_by_id(
                    function,
                    &Completion {
                        node,
                        function: name,
                        duration: Duration::ZERO,
                        cold: false,
                        ok: false,
                        internal: Duration::ZERO,
                    },
                    now,
                );
                match picked.iter_mut().find(|(n, _)| *n == node) {
                    Some((_, k)) => *k += 1,
                    None => picked.push((node, 1)),
                }
            }
            picked.sort_unstable();
            for (node, k) in picked {
                let target = on(&self.nodes[node as usize]) + k;
                let model = &mut self.nodes[node as usize].model;
                if model.image_cached(name) {
                    self.start_for_minimum(node, function, target, now)?;
                    continue;
                }
                self.floor_pending.push((node, function, target));
                if model.begin_build(name) {
                    self.start_build(node, function, NO_JOB, now)?;
                }
            }
        }
        Ok(())
    }

    /// Starts instances of `function` on `node` up to `target` (its image
    /// is cached); they cost what a cold start costs ([`Sim::apply`]).
    fn start_for_minimum(
        &mut self,
        node: u32,
        function: u32,
        target: usize,
        now: Time,
    ) -> Result<(), DesError> {
        let name = self.names[function as usize].as_str();
        let started = self.on_model(node, now, |m| m.start_instances(name, target, now));
        // Refused (no image, per-call instances): nothing starts.
        let Ok(effects) = started else {
            return Ok(());
        };
        self.stats.min_instances_started += effects.prewarm.len() as u64;
        self.apply(node, effects, now)
    }

    /// The job's current delay or CPU phase ended at `now`: run the next
    /// phase, or finish.
    fn step(&mut self, id: u32, now: Time) -> Result<(), DesError> {
        let job = &mut self.jobs[id as usize];
        if job.build {
            let (node, function, builder) = (job.node, job.function, job.builder);
            self.free_jobs.push(id);
            return self.build_done(node, function, builder, now);
        }
        if !job.started {
            job.started = true;
            job.service_start = now;
        }
        // Drawn work (or a row's duration): CPU first, then the sleep.
        if job.pending_cpu > 0.0 {
            let work = std::mem::take(&mut job.pending_cpu);
            let node = job.node;
            let cpu = self.cpu_of(node);
            if let Some(t) = self.cpus[cpu as usize].add(id, work, now) {
                self.queue.push(t, Event::Cpu { cpu });
            }
            return Ok(());
        }
        if job.pending_sleep > 0 {
            let at = now.add_micros(job.pending_sleep);
            job.pending_sleep = 0;
            self.queue.push(at, Event::Step(id));
            return Ok(());
        }
        let cpu_scale = self.config.profile.cpu_scale * self.config.fn_time_scale;
        let sleep_scale = self.config.fn_time_scale;
        while job.next_phase < job.end_phase {
            let phase = self.phases[job.next_phase as usize];
            job.next_phase += 1;
            match phase {
                Phase::Cpu { ms } if ms > 0 => {
                    let node = job.node;
                    let cpu = self.cpu_of(node);
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
                    self.queue.push(now.add_micros(d), Event::Step(id));
                    return Ok(());
                }
                _ => {}
            }
        }
        self.finish(id, now)
    }

    fn finish(&mut self, id: u32, now: Time) -> Result<(), DesError> {
        let job = self.jobs[id as usize];
        self.free_jobs.push(id);
        self.in_flight -= 1;
        if self.gate.is_some() {
            self.freed.push((job.function, now));
        }
        let (node, function) = (job.node, job.function);
        let (meta, effects) = self.on_model(node, now, |m| {
            if job.start_untold {
                let started = m.instance_started(job.instance, job.service_start);
                debug_assert!(started.is_empty(), "a private start with effects");
                m.recycle(started);
            }
            m.call_finished(job.call, now)
        });
        self.apply(node, effects, now)?;
        let name = self.names[function as usize].as_str();
        if job.reroutes == 0 {
            // (A rerouted call's end was told on its first node.)
            self.scheduler.finished_by_id(
                function,
                &Completion {
                    node,
                    function: name,
                    duration: now.saturating_since(job.dispatched),
                    cold: meta.is_cold(),
                    ok: true,
                    internal: now.saturating_since(job.service_start),
                },
                now,
            );
        }
        let profile = &self.config.profile;
        let end = now.add_micros(ms_to_us(profile.network_ms + profile.balancer_ms));
        if let Some(cancel) = self.cancel_at.filter(|&c| end > c) {
            return self.cancelled(job, meta, cancel);
        }
        self.ended_with(
            job.client,
            end,
            Reply::Ok {
                cold: meta.is_cold(),
            },
        );
        // Whole ms of the stamps, so that InternalExecutionTime <=
        // ExecutionTime <= end - start, as on a live worker; the summary's
        // duration and latency are computed from these very numbers, so
        // `utils analyze` of the log finds the same.
        let ms = |t: Time| t.as_millis();
        let (start_ms, end_ms) = (ms(job.arrival), ms(end));
        let execution_ms = ms(now) - start_ms;
        let internal_ms = ms(now) - ms(job.service_start);
        let duration_ms = end_ms - start_ms;
        self.stats.completed += 1;
        self.stats.duration.record(duration_ms);
        self.stats.latency.record(duration_ms - internal_ms);
        self.last_completion = self.last_completion.max(now);
        if let Some(log) = self.log.as_mut() {
            let i = |v: u64| v as i64;
            log.call(
                i(start_ms),
                i(end_ms),
                name,
                function,
                i(execution_ms),
                i(internal_ms),
                meta,
                node,
                job.instance,
            )?;
        }
        Ok(())
    }

    /// A call that would have ended after the closed loop's grace: the
    /// client cancelled it at `cancel` (its start counts no more).
    fn cancelled(&mut self, job: Job, meta: CallMeta, cancel: Time) -> Result<(), DesError> {
        let s = &mut self.stats;
        s.cancelled += 1;
        if meta.is_cold() {
            s.cold = s.cold.saturating_sub(1);
        } else if meta.pooled {
            s.pooled = s.pooled.saturating_sub(1);
        } else {
            s.warm_instance = s.warm_instance.saturating_sub(1);
        }
        self.ended_with(job.client, cancel, Reply::Cancelled);
        if let Some(log) = self.log.as_mut() {
            let name = self.names[job.function as usize].as_str();
            log.error_between(
                job.arrival.as_millis() as i64,
                cancel.as_millis() as i64,
                name,
                CANCELLED,
            )?;
        }
        Ok(())
    }

    fn summary(&self, invocations: u64, end: Time) -> Summary {
        let evictions = self.nodes.iter().map(|n| n.model.memory_evictions()).sum();
        let mut summary = summarize(
            self.config,
            &self.stats,
            &self.instances,
            evictions,
            invocations,
            end,
        );
        summary.queue = self.gate.as_ref().map(|g| QueueSummary {
            min_instances_started: self.stats.min_instances_started,
            ..g.summary(self.names)
        });
        summary
    }
}

/// The summary of a run of `invocations` calls whose last completion was
/// at `end`, from its counts, its instance integrals and its nodes'
/// memory evictions (no SlimFaas queue).
fn summarize(
    config: &DesConfig,
    s: &Stats,
    accounting: &InstanceAccounting,
    memory_evictions: u64,
    invocations: u64,
    end: Time,
) -> Summary {
    let end_us = end.as_micros();
    let instances = match config.instances {
        InstanceModel::Lambda { .. } if end_us > 0 => {
            let busy = accounting.area_busy as f64 / end_us as f64;
            let idle = accounting.area_idle as f64 / end_us as f64;
            Some(InstanceSummary {
                mean_instances: busy + idle,
                mean_busy: busy,
                mean_idle: idle,
                memory_evictions,
            })
        }
        _ => None,
    };
    Summary {
        seed: config.scheduler.seed(),
        config: config.clone(),
        invocations,
        completed: s.completed,
        failed: s.failed,
        cancelled: s.cancelled,
        rejections: s.rejections,
        rerouted: s.rerouted,
        cold_starts: s.cold,
        cold_start_ratio: if s.completed == 0 {
            0.0
        } else {
            s.cold as f64 / s.completed as f64
        },
        image_builds: s.image_builds,
        pooled_starts: s.pooled,
        warm_instance_starts: s.warm_instance,
        latency_ms: s.latency.summary(s.completed),
        duration_ms: s.duration.summary(s.completed),
        simulated_seconds: end.as_secs_f64(),
        events: s.events,
        instances,
        performance: Performance::default(),
        closed_loop: None,
        queue: None,
        partitioned: false,
    }
}

#[cfg(test)]
mod tests {
    use policy::node::{KeepAlivePolicy, Overflow, ReuseOrder};

    use super::*;

    /// A workload with keep-alive expiries on every node, reuses just
    /// before them, and several functions per node: 3,000 calls of 12
    /// functions over 20 minutes, a few in bursts at one instant.
    fn expiring_workload() -> Vec<protocol::ScenarioEvent> {
        let mut x = crate::test_values::SEED;
        let mut t = 0u64;
        let mut events = Vec::new();
        for i in 0..3_000u64 {
            crate::test_values::xorshift(&mut x);
            // Gaps from 0 (bursts) to 800 ms, sometimes a long pause.
            t += if i % 97 == 0 { 40_000 } else { x % 800 };
            let f = format!("F{}", (x >> 20) % 12);
            events.push(protocol::ScenarioEvent::new(f, t));
        }
        events
    }

    /// Runs `events` under `config` with timers (`eager_timers`) and
    /// instance starts (`eager_starts`) as events of their own, or not
    /// where they need not be; the summary (without its event count,
    /// which these shortcuts lower) and the log.
    fn run_with(
        events: &[protocol::ScenarioEvent],
        config: &DesConfig,
        eager_timers: bool,
        eager_starts: bool,
    ) -> (serde_json::Value, u64, Vec<u8>) {
        EAGER_TIMERS.set(eager_timers);
        EAGER_STARTS.set(eager_starts);
        let mut log = Vec::new();
        let summary = run_scenario(events, config, Some(&mut log));
        EAGER_TIMERS.set(false);
        EAGER_STARTS.set(false);
        let summary = summary.unwrap();
        let mut json = serde_json::to_value(&summary).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("performance");
        object.remove("events");
        (json, summary.events, log)
    }

    /// Lambda configurations: schedulers that spread and that pack,
    /// memory limits under LRU and Greedy-Dual, admission limits
    /// (rejected or rerouted), oldest-first reuse without extension, and
    /// no keep-alive at all.
    fn lambda_configs() -> Vec<DesConfig> {
        let lambda = |keep_alive_s: u64, policy: KeepAlivePolicy| {
            InstanceModel::lambda(Duration::from_secs(keep_alive_s), policy)
        };
        let base = DesConfig {
            nodes: 3,
            default_function: Some(FunctionModel::Exponential {
                warm_mean_ms: 900.0,
                cold_mean_ms: 1_400.0,
            }),
            instances: lambda(20, KeepAlivePolicy::Fixed),
            ..DesConfig::default()
        };
        let mut configs = vec![base.clone()];
        for algorithm in ["rr", "ch", "ll", "ours"] {
            configs.push(DesConfig {
                scheduler: SchedulerConfig::new(algorithm, [("seed", "3")]).unwrap(),
                ..base.clone()
            });
        }
        for policy in [KeepAlivePolicy::Lru, KeepAlivePolicy::GreedyDual] {
            configs.push(DesConfig {
                instances: lambda(60, policy),
                node_memory_mb: 1_024,
                ..base.clone()
            });
        }
        // Rejected, or sent to the next node.
        for reroute in [false, true] {
            configs.push(DesConfig {
                admission: Admission {
                    max_running: Some(3),
                    overflow: Overflow::Reject,
                },
                reroute,
                ..base.clone()
            });
        }
        configs.push(DesConfig {
            reuse: ReuseRules {
                order: ReuseOrder::Oldest,
                extend_on_reuse: false,
            },
            ..base.clone()
        });
        configs.push(DesConfig {
            instances: lambda(0, KeepAlivePolicy::Fixed),
            ..base.clone()
        });
        configs
    }

    /// The summary of `events` under `config` without a log (so
    /// partitioned where it can be, unless `sequential`), and whether it
    /// was partitioned.
    fn summary_of(
        events: &[protocol::ScenarioEvent],
        config: &DesConfig,
        sequential: bool,
    ) -> (serde_json::Value, bool) {
        SEQUENTIAL.set(sequential);
        let before = PARTITIONED_RUNS.get();
        let summary = run_scenario(events, config, None);
        SEQUENTIAL.set(false);
        let partitioned = PARTITIONED_RUNS.get() > before;
        let summary = summary.unwrap();
        assert_eq!(summary.partitioned, partitioned);
        let mut json = serde_json::to_value(summary).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("performance");
        assert_eq!(object.remove("partitioned").is_some(), partitioned);
        (json, partitioned)
    }

    /// A partitioned run (an oblivious scheduler: `rr`, `random`) gives
    /// the one-queue run's summary, every field of it, the event count
    /// too, on one thread or several: under every Lambda configuration
    /// above that it applies to, with CPU work shared on a node's cores,
    /// rows with their own durations and memory, and more nodes than
    /// threads. Where it does not apply (a load-aware scheduler,
    /// rerouting, one machine's cores, a log), the run is not
    /// partitioned.
    #[test]
    fn a_partitioned_run_gives_the_one_queue_runs_summary() {
        let mut events = expiring_workload();
        // Some rows with their own duration and memory.
        for (i, e) in events.iter_mut().enumerate().filter(|(i, _)| i % 5 == 0) {
            e.shape = Some(CallShape {
                duration_us: 200_000 + (i as u64 % 7) * 150_000,
                memory_mb: Some(128 + (i as u32 % 3) * 256),
            });
        }
        let mut configs = Vec::new();
        for config in lambda_configs() {
            for algorithm in ["rr", "random"] {
                configs.push(DesConfig {
                    scheduler: SchedulerConfig::new(algorithm, [("seed", "5")]).unwrap(),
                    ..config.clone()
                });
            }
        }
        let base = configs[0].clone();
        configs.push(DesConfig {
            nodes: 7,
            cores: 2,
            default_function: Some(FunctionModel::ExponentialCpu { mean_ms: 700.0 }),
            ..base.clone()
        });
        let mut partitioned_runs = 0;
        for config in &configs {
            let (one_queue, partitioned) = summary_of(&events, config, true);
            assert!(!partitioned);
            let eligible = !config.reroute;
            for threads in [1, 3] {
                let config = DesConfig {
                    threads,
                    ..config.clone()
                };
                let (summary, partitioned) = summary_of(&events, &config, false);
                assert_eq!(partitioned, eligible, "{config:?}");
                assert_eq!(summary, one_queue, "{config:?}");
                partitioned_runs += u32::from(partitioned);
            }
            assert!(
                one_queue["completed"].as_u64().unwrap() > 2_000,
                "{config:?}"
            );
        }
        assert_eq!(partitioned_runs, 2 * (configs.len() as u32 - 2));

        // Not partitioned: a load-aware scheduler, one machine's cores, a
        // log.
        let ll = DesConfig {
            scheduler: SchedulerConfig::new("ll", [("seed", "5")]).unwrap(),
            ..base.clone()
        };
        let shared = DesConfig {
            machine_cores: Some(4),
            ..base.clone()
        };
        for config in [ll, shared] {
            assert!(!summary_of(&events, &config, false).1, "{config:?}");
        }
        let before = PARTITIONED_RUNS.get();
        run_scenario(&events, &base, Some(&mut Vec::new())).unwrap();
        assert_eq!(PARTITIONED_RUNS.get(), before);
    }

    /// Each call draws its own numbers ([`crate::stream`]): under
    /// schedulers that start calls in different orders (a node runs 2
    /// calls at a time and queues the others, which draw when they
    /// start), every call draws the same number, in one-queue runs (a log
    /// is written).
    #[test]
    fn a_call_draws_the_same_number_under_every_algorithm() {
        let events = expiring_workload();
        let mut runs = Vec::new();
        for algorithm in ["rr", "ch", "ll", "random"] {
            let config = DesConfig {
                scheduler: SchedulerConfig::new(algorithm, [("seed", "9")]).unwrap(),
                nodes: 3,
                default_function: Some(FunctionModel::Exponential {
                    warm_mean_ms: 900.0,
                    cold_mean_ms: 1_400.0,
                }),
                instances: InstanceModel::lambda(Duration::from_secs(20), KeepAlivePolicy::Fixed),
                profile: CostProfile {
                    lambda_cold_ms: 400.0,
                    ..CostProfile::default()
                },
                admission: Admission {
                    max_running: Some(2),
                    overflow: Overflow::Queue,
                },
                ..DesConfig::default()
            };
            DRAWS.take();
            run_scenario(&events, &config, Some(&mut Vec::new())).unwrap();
            runs.push((algorithm, DRAWS.take()));
        }
        let order = |d: &[(u64, f64)]| d.iter().map(|&(n, _)| n).collect::<Vec<_>>();
        let by_call = |d: &[(u64, f64)]| {
            let mut d = d.to_vec();
            d.sort_by_key(|&(n, _)| n);
            d
        };
        let (_, first) = &runs[0];
        assert_eq!(first.len(), events.len());
        assert!(order(&by_call(first)) == (0..events.len() as u64).collect::<Vec<_>>());
        for (algorithm, draws) in &runs[1..] {
            assert!(
                order(draws) != order(first),
                "{algorithm}: drawn in rr's order"
            );
            assert!(
                by_call(draws) == by_call(first),
                "{algorithm}: other numbers"
            );
        }
    }

    /// Timers run late, at a node's next event (the default where a
    /// node's timers only expire instances), give the very logs and
    /// summaries that timers run as events do: under every policy and
    /// rule that allows it, with and without memory limits, admission
    /// limits and reuse rules, and a scheduler that spreads and one
    /// that packs. And they do spare events.
    #[test]
    fn late_timers_change_nothing_but_the_event_count() {
        let events = expiring_workload();
        for config in &lambda_configs() {
            let (late, late_events, late_log) = run_with(&events, config, false, true);
            let (eager, eager_events, eager_log) = run_with(&events, config, true, true);
            assert_eq!(late, eager, "{config:?}");
            assert!(late_log == eager_log, "{config:?}: the logs differ");
            assert!(
                late_events < eager_events,
                "{config:?}: {late_events} events late, {eager_events} as events"
            );
            // Instances were idle, but for no keep-alive at all.
            let idle = late["instances"]["mean_idle"].as_f64().unwrap();
            let InstanceModel::Lambda { keep_alive, .. } = config.instances else {
                unreachable!("the Lambda model")
            };
            assert_eq!(idle > 0.0, !keep_alive.is_zero(), "{config:?}");
        }
    }

    /// Cold starts told late, at the call's end (the default where a
    /// call's instance is private to it and its first work a sleep),
    /// give the summaries that starts as events give, and the same log
    /// lines (in another order only among calls that end in the same
    /// microsecond): under the configurations above and the policies that
    /// pre-warm (histogram, EWMA), with timers late and as events. They
    /// spare an event per cold start, but under Greedy-Dual (which reads
    /// start times: every start is then an event).
    #[test]
    fn quiet_starts_change_nothing_but_the_event_count() {
        let events = expiring_workload();
        let mut configs = lambda_configs();
        let base = configs[0].clone();
        for policy in [
            KeepAlivePolicy::Histogram(Default::default()),
            KeepAlivePolicy::Ewma(Default::default()),
        ] {
            configs.push(DesConfig {
                instances: InstanceModel::lambda(Duration::from_secs(30), policy),
                ..base.clone()
            });
        }
        let sorted = |log: Vec<u8>| {
            let mut lines: Vec<Vec<u8>> = log.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            lines.sort();
            lines
        };
        for config in &configs {
            let InstanceModel::Lambda { policy, .. } = config.instances else {
                unreachable!("the Lambda model")
            };
            for eager_timers in [false, true] {
                let (quiet, quiet_events, quiet_log) =
                    run_with(&events, config, eager_timers, false);
                let (eager, eager_events, eager_log) =
                    run_with(&events, config, eager_timers, true);
                assert_eq!(quiet, eager, "{config:?}");
                assert!(
                    sorted(quiet_log) == sorted(eager_log),
                    "{config:?}: the log lines differ"
                );
                let cold = quiet["cold_starts"].as_u64().unwrap();
                assert!(cold > 0, "{config:?}");
                if policy == KeepAlivePolicy::GreedyDual {
                    assert_eq!(quiet_events, eager_events, "{config:?}");
                } else {
                    // Every cold start was a call's, and spared its event.
                    assert_eq!(eager_events - quiet_events, cold, "{config:?}");
                }
            }
        }
    }

    /// The same µs as `(ms * 1000.0).round().max(0.0) as u64` for halves,
    /// neighbours of halves, negatives, NaN, infinities and huge values.
    #[test]
    fn ms_to_us_rounds_as_f64_round() {
        let reference = |ms: f64| (ms * 1000.0).round().max(0.0) as u64;
        let mut values = vec![
            -0.0004,
            -0.0006,
            0.0004999,
            0.0005,
            0.0015,
            0.4999999999999999,
            2.5e-4,
            1e12,
            9.007199254740992e12,
            9.007199254740993e12,
            f64::MIN,
        ];
        values.extend(crate::test_values::EDGE_F64);
        let mut x = crate::test_values::SEED;
        for _ in 0..100_000 {
            crate::test_values::xorshift(&mut x);
            let half = (x % 2_000_000) as f64 + 0.5;
            values.push(half / 1000.0);
            values.push(f64::from_bits(x >> 2)); // any positive magnitude
            values.push((x % 10_000_000) as f64 / 7.0);
        }
        for ms in values {
            assert_eq!(ms_to_us(ms), reference(ms), "{ms:e}");
        }
    }
}
