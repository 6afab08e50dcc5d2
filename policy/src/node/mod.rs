//! One worker node's policies, and the model that composes them.
//!
//! "Given this event at this time, what should exist now?" The live worker
//! turns the answers into Docker or process actions; the discrete-event
//! simulator turns them into modelled delays. No I/O, no clock reads (time
//! is an argument, a [`Time`]), seeded randomness only.
//!
//! The caching mechanisms come from HotFunctions (Prev/HotFunctions,
//! `worker_front/runner.go`, `pre_warming.go`,
//! `singleton_container_manager.go`), configured by [`options::CachingOptions`]:
//! - [`image_cache::ImageCache`]: images (function packages) kept under a byte
//!   limit with least-recently-used eviction (`USER_CODE_SIZE_LIMIT`);
//! - [`container_pool::ContainerPool`]: pre-warmed instances for the most
//!   recently used functions (`CONTAINER_POOL_LIMIT`, `CONTAINER_POOL_NUM`);
//! - [`rest_instances::RestInstances`]: one long-lived instance per function
//!   serving concurrent calls, removed after an idle lifetime
//!   (`USING_REST_MODE`, `REST_CONTAINER_LIFE_TIME`);
//!
//! and one from AWS Lambda, as modelled by SimFaaS:
//! - [`keep_alive::KeepAlivePool`]: one call per instance, idle instances
//!   kept for a keep-alive period,
//!
//! under a keep-alive policy ([`keep_alive_policy::KeepAlivePolicy`]):
//! fixed, eviction under the node's memory by [`lru`] or FaasCache's
//! [`greedy_dual`], the [`histogram`] policy of "Serverless in the Wild",
//! or [`ewma_prewarm`] pre-warming.
//!
//! Function names are interned to dense ids ([`functions::FunctionTable`]);
//! a driver that knows every function up front shares one table with all
//! its nodes and names functions by id.
//!
//! [`model::NodeModel`] composes them for one node: it owns the image cache,
//! the pool, the REST instances and the keep-alive pools, names every
//! instance by an [`InstanceId`], and answers each event (a call arrives,
//! an image is built, an instance is up, a call ends, a timer is due, the
//! options change, `/clear`) with [`model::Effects`]. The rules that combine
//! the policies (what an evicted image takes with it, what `/clear`
//! empties, what an options change invalidates) live there and nowhere
//! else.

pub mod admission;
mod chunked;
pub mod container_pool;
pub mod ewma_prewarm;
pub mod functions;
pub mod greedy_dual;
pub mod histogram;
pub mod image_cache;
mod instance_table;
pub mod keep_alive;
pub mod keep_alive_policy;
pub mod lru;
pub mod model;
pub mod options;
pub mod rest_instances;
mod timers;

pub use crate::time::Time;
pub use admission::{Admission, Overflow};
pub use functions::{FunctionId, FunctionTable};
pub use keep_alive::{ReuseOrder, ReuseRules};
pub use keep_alive_policy::KeepAlivePolicy;
pub use model::{
    CallId, CallMeta, EffectLists, Effects, InstanceKind, InstanceModel, NodeModel, Prewarm,
    StartRefused, Step,
};

/// An instance's id, unique on its node for the node model's lifetime;
/// ids grow with creation order.
pub type InstanceId = u64;
