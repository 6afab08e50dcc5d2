//! Wire and file formats shared by every binary of the testbed.
//!
//! The field names are those of the original HotFunctions (Prev/HotFunctions,
//! `worker_front/types/types.go` and `load_balancer/request_handler.go`), kept
//! byte-for-byte so that tools written for the original keep working. New
//! features add fields; they never rename old ones.
//!
//! # Layout
//! - [`reply`]: the worker's reply ([`WorkerReply`]), the balancer's reply
//!   ([`BalancerReply`] = worker reply + [`LoadBalancingInfo`]), the failure
//!   reply ([`ErrorReply`]) and the function's own output ([`FunctionOutput`]);
//!   the hot path's no-parse helpers ([`reply::append_load_balancing_info`],
//!   [`reply::reported_cold`]).
//! - [`query`]: query strings (percent-coding, pairs), as the routes use.
//! - [`scenario`]: scenario CSV rows `FunctionName,StartTimeMs` (no header).
//! - [`log`]: the replay log line
//!   `YYYY/MM/DD HH:MM:SS <startMs> <endMs> <function> <json>`, and the
//!   lenient view of a logged reply that analysis reads ([`log::LoggedReply`]).
//! - [`mgmt`]: who may use the management routes (loopback peers, or a
//!   bearer token), shared by the balancer and the worker.
//! - [`limits`]: the bounds of the worker's options, checked by the worker
//!   and by the balancer that forwards them.
//! - [`sidecar`]: the run description beside every log (`<log>.meta.json`):
//!   cluster, algorithm, parameters, seed, scales, version.
//! - [`text`]: text files read as UTF-8, an error naming the line of the
//!   first byte that is not.
//! - [`strict`]: users' JSON and TOML read with structs from maps only
//!   (serde's derive would read a struct from an array, by position).

pub mod limits;
pub mod log;
pub mod mgmt;
pub mod query;
pub mod reply;
pub mod scenario;
pub mod sidecar;
pub mod strict;
pub mod text;
pub mod timeouts;

pub use log::{LogLine, LogLineError};
pub use reply::{
    BalancerReply, ErrorReply, ExecutionMeta, FunctionOutput, FunctionResult, LoadBalancingInfo,
    WorkerReply,
};
pub use scenario::{ScenarioError, ScenarioEvent};
