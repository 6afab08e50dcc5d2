//! The worker node (being built; see issue 3).
//!
//! # Layout
//! - [`policy`]: pure caching / pooling / keep-alive policies, shared with
//!   the discrete-event simulator.

pub mod policy;
