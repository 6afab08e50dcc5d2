//! The worker node (being built; see issue 3).
//!
//! # Layout
//! - [`policy`]: pure caching / pooling / keep-alive policies, shared with
//!   the discrete-event simulator.
//! - [`runtime`]: the [`runtime::Runtime`] trait (build images, run
//!   instances) and its implementations.

pub mod policy;
pub mod runtime;
