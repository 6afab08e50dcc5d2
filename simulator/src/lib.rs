//! Replay, discrete-event simulation and experiments.
//!
//! # Layout
//! - `replay`: real-time replay of a scenario against a live balancer (issue 4).
//! - `des`: discrete-event simulation over the same scheduler and worker
//!   policy code (issue 5).
//! - `experiment`: one command that runs a whole comparison (issue 4).
