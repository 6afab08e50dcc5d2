//! The 30 sample functions of HotFunctions and their catalog.
//!
//! # Layout
//! - [`catalog`](mod@catalog): per function, its type, original language, request rate,
//!   duration class, package size and workload shape (rounds of a CPU phase
//!   then a sleep), from `catalog.csv` beside this crate, which restates the
//!   table of the original (Prev/HotFunctions, `sample_functions/README.md`
//!   and the functions' sources). Shared by the worker, the scenario
//!   generator and the discrete-event simulator.
//! - [`workload`]: the functions' work (fixed-iteration CPU loops and
//!   sleeps), the calibration constant and `HF_TIME_SCALE`; the calls of
//!   synthetic functions (a catalog file's, [`Catalog::with_file`]) with
//!   their own duration and memory ([`CallWork`]).
//! - [`payload`]: the generated package payload staged into every image.
//! - `serve` (feature `serve`, on by default): the event-loop HTTP server
//!   of warm instances (`hf-fn serve`).
//! - `user` (feature `user`): users' own functions' packages, rate limits
//!   and store, shared by the worker and the balancer (issue 14).
//! - `src/bin/hf-fn.rs`: the one binary that runs any function.

pub mod catalog;
pub mod payload;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(feature = "user")]
pub mod user;
pub mod workload;

pub use catalog::{catalog, Catalog, CatalogFileError, FunctionSpec, Phase};
pub use workload::CallWork;
