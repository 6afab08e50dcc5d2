//! The load balancer: the HTTP edge that runs the pure schedulers of the
//! `policy` crate (`policy::scheduler`, which the discrete-event simulator
//! drives too).
//!
//! # Layout
//! - [`cluster`]: the registered worker nodes, their online/offline state
//!   and the scheduler over the online ones (pure, time as an argument).
//! - [`config`]: [`BalancerConfig`] (CLI, `nodes.config.json`, `/status`).
//! - [`action`]: HTTP requests parsed into a typed [`action::Action`].
//! - [`cli`]: the scheduler parameters as command-line flags, shared with
//!   `simulator des`.
//! - [`error`]: [`error::BalancerError`] and its HTTP form
//!   (`{"Error": true, "Message": ...}`).
//! - [`server`]: the actix-web edge and [`run`] (its doc describes
//!   `GET /1/lb/scheduler`, the algorithm, parameters, seed and node ids a
//!   run records); `health` checks workers;
//!   `state` holds what both share (clock, configuration, cluster lock);
//!   [`fake`] answers without workers (the original's fake mode);
//!   the hot path's keep-alive HTTP/1.1 client to workers is
//!   [`keepalive_http`] (shared with the worker's calls to instances).
//! - [`metrics`]: `GET /metrics` (Prometheus text format).
//! - [`functions`]: users' own functions in a cluster (the Glambdar
//!   routes; the balancer holds the store, workers fetch packages).
//! - [`slim`]: SlimFaas's routes (`/function/`, `/async-function/`,
//!   status), the durable queue of asynchronous calls (SQLite) and its
//!   drain task; their rules are `policy::admission_queue`.
//!
//! The binary `load-balancer` parses the CLI and calls [`run`]; the binary
//! `stub-worker` is a minimal worker used by the tests and the benchmark.

pub mod action;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod fake;
pub mod functions;
mod health;
pub mod metrics;
pub mod server;
pub mod slim;
mod state;

pub use config::{BalancerConfig, HealthConfig};
pub use server::{run, run_announced, run_with_management, RunError};
