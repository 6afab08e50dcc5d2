//! The load balancer: pure schedulers plus the HTTP edge that runs them.
//!
//! # Layout
//! - [`scheduler`]: the [`scheduler::Scheduler`] trait, one file per
//!   algorithm, shared load bookkeeping, and [`scheduler::build`] by name.
//!   Pure: no I/O, no clock reads, seeded randomness. The discrete-event
//!   simulator drives these same structs.

pub mod scheduler;
