//! Pure scheduling policies: given a function name and the time, which node?
//!
//! Every algorithm is a plain struct implementing [`Policy`] (the choice),
//! made a [`Scheduler`] by [`Tracked`] (membership and in-flight counts,
//! once for all): no sockets, no clock reads (time is an argument), no
//! threads, no global state, and randomness only from a seeded RNG the
//! scheduler owns. The HTTP balancer wraps one in a lock; the
//! discrete-event simulator calls it directly.
//!
//! Membership changes (a node joins, leaves, goes offline or comes back)
//! arrive as [`Membership`] events, separate from selection. A node that goes
//! offline is `Remove`d and later `Insert`ed again with the same id, so
//! id-derived state (such as hash-ring positions) comes back unchanged.
//! Completions of calls that were running on a removed node may still arrive
//! and must be accepted (and ignored where they no longer matter).
//!
//! Algorithms (one file each, with its source in the module doc):
//! [`round_robin`] `rr`, [`least_loaded`] `ll`, [`consistent_hash`] `ch`
//! (alias `hash`), [`pasch`] `pasch`, [`ours`] `ours`, [`tradeoff`]
//! `tradeoff` (the six of HotFunctions); from the literature, [`random`]
//! `random`, [`p2c`] `p2c`, [`chbl`] `chbl`, [`chrlu`] `chrlu`,
//! [`openwhisk`] `openwhisk` (alias `sharding`), [`fnlb`] `fnlb`,
//! [`hermod`] `hermod` and [`hiku`] `hiku` (alias `pull`), with the
//! helper [`jump_hash`]. The [`registry`] lists them with their parameters
//! and builds one by name; see there how to set parameters.
//!
//! # Adding an algorithm
//! One new file defining the policy and its `pub const ALGORITHM:`
//! [`Algorithm`] (name, aliases, summary, parameters, constructor), plus
//! its module name as one line of the table below. The CLIs, `/configure`,
//! the simulator and the tests that iterate algorithms read the table.

use std::time::Duration;

pub mod by_id;
pub mod jump_hash;
pub mod load_index;
pub mod loads;
pub mod md5_ring;
pub mod registry;
pub mod tracked;

/// Declares each algorithm's module and lists its `ALGORITHM` in
/// [`REGISTRY`], in the order given.
macro_rules! algorithm_table {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every registered algorithm, in table order.
        pub const REGISTRY: &[Algorithm] = &[$($module::ALGORITHM),*];
    };
}

// The registry table: one line per algorithm, the original's order first.
algorithm_table! {
    round_robin,
    least_loaded,
    consistent_hash,
    pasch,
    ours,
    tradeoff,
    random,
    p2c,
    chbl,
    chrlu,
    openwhisk,
    fnlb,
    hermod,
    hiku,
}

pub use loads::NodeLoads;
pub use registry::{
    canonical_name, Algorithm, ConfigError, ParamError, ParamSet, SchedulerConfig, UnknownAlgorithm,
};
pub use tracked::{Policy, Tracked};

/// A worker node's id. Nodes configured at start get 0, 1, 2, ... in list
/// order, as in the original; nodes added later get the next unused id.
pub type NodeId = u32;

pub use crate::node::FunctionId;
pub use crate::time::Time;

/// What a scheduler learns about a node when it joins.
///
/// Both drivers tell all of it: the simulator from `--capacity`,
/// `--cores` and `--node-memory-mb`, the balancer from its `node_*`
/// settings or a `PUT /1/lb/nodes` body. Schedulers read it back from the
/// load index ([`load_index::LoadIndex::cores`], `memory_mb`, `capacity`),
/// where they read loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Concurrent calls the node is meant to hold (the HotFunctions
    /// schedulers ignore it).
    pub capacity: u32,
    /// Cores of the node: Hermod's "free cores" are `cores - in flight`.
    pub cores: u32,
    /// Memory for function instances, in MB: OpenWhisk's memory slots are
    /// this divided by a function's memory.
    pub memory_mb: u32,
}

impl NodeInfo {
    /// Default capacity when none is configured.
    pub const DEFAULT_CAPACITY: u32 = 64;
    /// Default cores (the simulator's default node).
    pub const DEFAULT_CORES: u32 = 2;
    /// Default memory: OpenWhisk's default invoker user memory, 2,048 MB
    /// (`whisk.container-pool.user-memory`), 8 slots of 256 MB.
    pub const DEFAULT_MEMORY_MB: u32 = 2048;

    /// Node `id` with the default resources.
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            capacity: Self::DEFAULT_CAPACITY,
            cores: Self::DEFAULT_CORES,
            memory_mb: Self::DEFAULT_MEMORY_MB,
        }
    }
}

/// A function's memory size, in MB, when nothing declared one (as AWS
/// Lambda's and OpenWhisk's default, 256 MB).
pub const DEFAULT_FUNCTION_MEMORY_MB: u32 = 256;

/// A membership change told to the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The node is (again) an online member and may be selected.
    Insert(NodeInfo),
    /// The node left or went offline; it must not be selected until it is
    /// inserted again.
    Remove(NodeId),
}

/// A call that finished (successfully or not) on `node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion<'a> {
    pub node: NodeId,
    pub function: &'a str,
    /// Measured duration of the call as seen by the caller.
    pub duration: Duration,
    /// The worker reported a cold start (no warm instance served it).
    pub cold: bool,
    /// False when the call failed (worker unreachable, error reply).
    pub ok: bool,
    /// Time the function itself ran (the reply's `InternalExecutionTime`;
    /// zero when unknown, e.g. a failed call): `duration - internal` is the
    /// call's overhead, i.e. its queueing, cold start and transfers.
    pub internal: Duration,
}

impl<'a> Completion<'a> {
    /// A successful call of `function` on `node`, served warm, that took
    /// `duration`, `internal` of it in the function.
    pub fn warm(node: NodeId, function: &'a str, duration: Duration, internal: Duration) -> Self {
        Self {
            node,
            function,
            duration,
            cold: false,
            ok: true,
            internal,
        }
    }

    /// `duration - internal`: the time the call spent outside the
    /// function (queueing, cold start, transfers).
    pub fn overhead(&self) -> Duration {
        self.duration.saturating_sub(self.internal)
    }
}

/// Why no node could be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no online node")]
    NoNodes,
    #[error("every node is at its load bound ({bound} in-flight calls)")]
    AllFull { bound: u32 },
}

/// A load-balancing policy, as its drivers see it.
///
/// Algorithms implement [`Policy`] (the choice only) and become a
/// `Scheduler` through [`Tracked`], which does the membership and
/// in-flight bookkeeping once for all of them.
///
/// Contract: every successful [`Scheduler::select`] is matched by exactly one
/// [`Scheduler::finished`] for the same node and function, whatever happened
/// to the call. Selecting returns an online member.
pub trait Scheduler: Send + std::fmt::Debug {
    /// The algorithm's canonical name (`"rr"`, `"ch"`, ...), as reported in
    /// `LoadBalancingInfo.Algorithm`.
    fn name(&self) -> &'static str;

    /// A node joined, left, went offline or came back.
    fn membership(&mut self, change: Membership, now: Time);

    /// Chooses the node for one call of `function` arriving at `now`, and
    /// counts the call as in flight there.
    fn select(&mut self, function: &str, now: Time) -> Result<NodeId, SelectError>;

    /// [`Scheduler::select`] for a caller that numbers its functions
    /// densely once (the simulator: ids `0..n` of its workload's names):
    /// `id` stands for `function` for the scheduler's whole life, so a
    /// policy may look the function up by index instead of hashing its
    /// name. The same choice as `select(function, now)`, always.
    fn select_by_id(
        &mut self,
        id: FunctionId,
        function: &str,
        now: Time,
    ) -> Result<NodeId, SelectError> {
        let _ = id;
        self.select(function, now)
    }

    /// A call chosen by `select` finished.
    fn finished(&mut self, completion: &Completion<'_>, now: Time);

    /// [`Scheduler::finished`] for a call chosen by
    /// [`Scheduler::select_by_id`] with `id`: the same bookkeeping, a
    /// policy may find the function by `id` instead of by name.
    fn finished_by_id(&mut self, id: FunctionId, completion: &Completion<'_>, now: Time) {
        let _ = id;
        self.finished(completion, now);
    }

    /// `function`'s memory size, in MB, told before its calls (or again
    /// when it changes). Functions never declared are
    /// [`DEFAULT_FUNCTION_MEMORY_MB`]. Only memory-aware schedulers
    /// (`openwhisk`) use it.
    fn declare_function(&mut self, function: &str, memory_mb: u32);

    /// In-flight calls the scheduler counts on `node` (None if not a member).
    fn load(&self, node: NodeId) -> Option<u32>;

    /// The online members, in ascending id order.
    fn members(&self) -> Vec<NodeId>;

    /// The capacity `node` joined with (None if not a member).
    fn capacity(&self, node: NodeId) -> Option<u32>;

    /// Whether its choices depend on nothing but the calls asked for (in
    /// order: function and time) and the membership: never on loads,
    /// capacities or completions (`rr`, `random`). A driver may then make
    /// every choice of a run up front, and simulate each node apart (the
    /// discrete-event simulator's partitioned run). False unless a policy
    /// says so.
    fn oblivious(&self) -> bool {
        false
    }
}

/// Builds the scheduler called `name` with `params` (no members yet).
pub fn build(name: &str, params: &ParamSet) -> Result<Box<dyn Scheduler>, UnknownAlgorithm> {
    params.build(name)
}
