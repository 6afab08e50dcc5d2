//! Pure scheduling policies: given a function name and the time, which node?
//!
//! Every algorithm is a plain struct implementing [`Scheduler`]: no sockets,
//! no clock reads (time is an argument), no threads, no global state, and
//! randomness only from a seeded RNG the scheduler owns. The HTTP balancer
//! wraps one in a lock; the discrete-event simulator calls it directly.
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
//! `tradeoff`. [`build`] makes one by name.

use std::time::Duration;

pub mod consistent_hash;
pub mod least_loaded;
pub mod load_index;
pub mod loads;
pub mod md5_ring;
pub mod ours;
pub mod pasch;
pub mod round_robin;
pub mod tracked;
pub mod tradeoff;

pub use loads::NodeLoads;
pub use tracked::{Policy, Tracked};

/// A worker node's id. Nodes configured at start get 0, 1, 2, ... in list
/// order, as in the original; nodes added later get the next unused id.
pub type NodeId = u32;

pub use crate::time::Time;

/// What a scheduler learns about a node when it joins.
///
/// `capacity` is kept although none of the six HotFunctions schedulers
/// uses it: the next ones (memory-slot schedulers like OpenWhisk's) need
/// it, and both drivers already tell it (the simulator's `--capacity`, the
/// balancer's `node_capacity` and `PUT /1/lb/nodes` body). It is stored
/// with the loads ([`NodeLoads::capacity`], [`load_index::LoadIndex::capacity`])
/// and read back with [`Scheduler::capacity`], so a scheduler that needs
/// it reads it where it reads loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Concurrent calls the node is meant to hold (OpenWhisk-style
    /// capacity, e.g. memory slots). Schedulers that do not use capacity
    /// ignore it.
    pub capacity: u32,
}

impl NodeInfo {
    /// Default capacity when none is configured.
    pub const DEFAULT_CAPACITY: u32 = 64;

    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            capacity: Self::DEFAULT_CAPACITY,
        }
    }
}

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

    /// A call chosen by `select` finished.
    fn finished(&mut self, completion: &Completion<'_>, now: Time);

    /// In-flight calls the scheduler counts on `node` (None if not a member).
    fn load(&self, node: NodeId) -> Option<u32>;

    /// The online members, in ascending id order.
    fn members(&self) -> Vec<NodeId>;

    /// The capacity `node` joined with (None if not a member).
    fn capacity(&self, node: NodeId) -> Option<u32>;
}

/// An unknown algorithm name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {0:?}; known: rr, ll, ch (alias hash), pasch, ours, tradeoff")]
pub struct UnknownAlgorithm(pub String);

/// Algorithm parameters, with the original's environment names and defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// `T`: load bound of `ch` and `pasch` (default 8).
    #[serde(rename = "T")]
    pub t: u32,
    /// `T1`: TMax of `ours` (default 8).
    #[serde(rename = "T1")]
    pub t1: u32,
    /// `T2`: TOpt of `ours` (default 5).
    #[serde(rename = "T2")]
    pub t2: u32,
    /// `T3`: CacheSize of `ours` (default 3).
    #[serde(rename = "T3")]
    pub t3: u32,
    /// `ALPHA`: probability of a random node in `tradeoff` (default 0.0).
    #[serde(rename = "ALPHA")]
    pub alpha: f64,
    /// `BETA`: probability of the hash node in `tradeoff` (default 0.5).
    #[serde(rename = "BETA")]
    pub beta: f64,
    /// Seed of the scheduler's RNG (recorded in every run's output).
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            t: 8,
            t1: 8,
            t2: 5,
            t3: 3,
            alpha: 0.0,
            beta: 0.5,
            seed: 0,
        }
    }
}

/// The canonical algorithm names, in the original's order.
pub const ALGORITHMS: &[&str] = &["rr", "ll", "ch", "pasch", "ours", "tradeoff"];

/// The canonical name of `name` (`hash` is `ch`), or an error.
pub fn canonical_name(name: &str) -> Result<&'static str, UnknownAlgorithm> {
    let name = if name == "hash" { "ch" } else { name };
    ALGORITHMS
        .iter()
        .copied()
        .find(|a| *a == name)
        .ok_or_else(|| UnknownAlgorithm(name.to_string()))
}

/// Builds the scheduler called `name` with no members yet.
pub fn build(name: &str, params: &Params) -> Result<Box<dyn Scheduler>, UnknownAlgorithm> {
    Ok(match canonical_name(name)? {
        "rr" => Box::new(Tracked::new(round_robin::RoundRobin::new())),
        "ll" => Box::new(Tracked::new(least_loaded::LeastLoaded::new())),
        "ch" => Box::new(Tracked::new(
            consistent_hash::ConsistentHashBoundedLoad::new(params.t),
        )),
        "pasch" => Box::new(Tracked::new(pasch::PaschExtended::new(params.t))),
        "ours" => Box::new(Tracked::new(ours::GreedyLocality::new(
            params.t1, params.t2, params.t3,
        ))),
        "tradeoff" => Box::new(Tracked::new(tradeoff::Tradeoff::new(
            params.alpha,
            params.beta,
            params.seed,
        ))),
        other => return Err(UnknownAlgorithm(other.to_string())),
    })
}
