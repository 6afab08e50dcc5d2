//! Pure FaaS policies: which node runs a call, and what a node keeps warm.
//!
//! Everything here is plain state answering events that carry the time as
//! an argument: no I/O, no clock reads, no threads, no async runtime, and
//! randomness only from seeded RNGs. The crate does not depend on tokio,
//! actix, reqwest or bollard, so a policy that tried to read a clock or
//! open a socket would not compile. Two drivers run the same code: the
//! live balancer and worker (wall clock, real nodes and instances) and the
//! discrete-event simulator (virtual clock, modelled costs).
//!
//! # Layout
//! - [`admission_queue`]: the balancer's per-function cap on parallel
//!   calls, waiting calls in arrival order (synchronous first) and the
//!   retry schedule (SlimFaas's rules).
//! - [`scale_to_zero`]: when the balancer removes an idle function's
//!   instances on every worker (SlimFaas's scale to zero).
//! - [`time`]: [`Time`], the one time type of schedulers, node model and
//!   simulator.
//! - [`scheduler`]: the [`scheduler::Scheduler`] trait, one file per
//!   algorithm, the load bookkeeping they share ([`scheduler::Tracked`]),
//!   and the [`scheduler::registry`] that names them, parses and checks
//!   their parameters, and builds one by name.
//! - [`node`]: one worker node's policies (image cache, pre-warmed pool,
//!   REST-mode instances, keep-alive pools, HotFunctions' caching options)
//!   and [`node::NodeModel`], which composes them and answers each event
//!   with typed effects.

pub mod admission_queue;
pub mod node;
pub mod scale_to_zero;
pub mod scheduler;
pub mod time;

pub use time::Time;
