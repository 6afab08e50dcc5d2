//! Replay, discrete-event simulation and experiments.
//!
//! # Layout
//! - [`replay`]: real-time replay of a scenario against a live balancer;
//!   [`replay::replay`] is the library entry point (with
//!   [`replay::ReplayOptions`] and a [`replay::StopHandle`]).
//! - [`des`]: discrete-event simulation over the same scheduler and worker
//!   policy code.
//! - [`calibrate`]: measures a live worker's cost profile for [`des`].
//! - [`experiment`]: one command that runs a whole comparison (workers and
//!   balancers as child processes, or the DES), then writes
//!   `results/<name>/report.md`; [`experiment::run_experiment`].

pub mod calibrate;
pub mod des;
pub mod experiment;
pub mod replay;
