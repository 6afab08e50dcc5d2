//! Replay, discrete-event simulation and experiments.
//!
//! # Layout
//! - [`replay`]: real-time replay of a scenario against a live balancer.
//! - [`des`]: discrete-event simulation over the same scheduler and worker
//!   policy code.
//! - [`calibrate`]: measures a live worker's cost profile for [`des`].
//! - [`experiment`]: one command that runs a whole comparison.

pub mod calibrate;
pub mod des;
pub mod experiment;
pub mod replay;
