//! The 30 sample functions of HotFunctions and their catalog.
//!
//! # Layout
//! - [`catalog`]: per function, its type, original language, request rate,
//!   duration class, package size and workload shape (rounds of a CPU phase
//!   then a sleep), from `catalog.csv` beside this crate, which restates the
//!   table of the original (Prev/HotFunctions, `sample_functions/README.md`
//!   and the functions' sources). Shared by the worker, the scenario
//!   generator and the discrete-event simulator.

pub mod catalog;

pub use catalog::{catalog, Catalog, FunctionSpec, Phase};
